"""The WSGI app the shim's tests serve: one route per behaviour under test.

Files in this directory are its side channel to the test: `go-NAME` releases a
waiting request, `started-NAME` and `closed-NAME` report that a request reached
the app and that the server called close().
"""

import io
import os
import sys
import time
from urllib.parse import parse_qs

ROOT = os.path.dirname(os.path.abspath(__file__))
WAIT_LIMIT = 30.0  # seconds; a broken test fails on its own timeout well before this


def mark(kind, name):
    with open(os.path.join(ROOT, "%s-%s" % (kind, name)), "w") as f:
        f.write(str(os.getpid()))


def wait_for_go(name):
    path = os.path.join(ROOT, "go-" + name)
    deadline = time.monotonic() + WAIT_LIMIT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError("nobody created " + path)
        time.sleep(0.005)


class Recorded(object):
    """An iterable over `chunks` (callables are run, not yielded) that marks close()."""

    def __init__(self, name, chunks):
        self.name = name
        self.chunks = chunks

    def __iter__(self):
        for chunk in self.chunks:
            if callable(chunk):
                chunk()
            else:
                yield chunk

    def close(self):
        mark("closed", self.name)


class RecordedFile(io.FileIO):
    def close(self):
        if not self.closed:
            mark("closed", os.path.basename(self.name))
        super().close()


def text(start_response, body, status="200 OK", extra=()):
    body = body.encode("latin-1") if isinstance(body, str) else body
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    start_response(status, headers + list(extra))
    return [body]


def describe(value):
    return value if isinstance(value, str) else repr(value)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = dict((k, v[0]) for k, v in parse_qs(environ["QUERY_STRING"]).items())
    name = query.get("name", "x")

    if path == "/hello":
        return text(start_response, "hello")

    if path == "/environ":
        lines = []
        for key in sorted(environ):
            value = environ[key]
            if key == "wsgi.input":
                value = type(value).__name__
            elif key == "wsgi.errors":
                value = "stderr" if value is sys.stderr else repr(value)
            elif key == "wsgi.file_wrapper":
                value = value.__name__
            lines.append("%s=%s\n" % (key, describe(value)))
        return text(start_response, "".join(lines))

    if path == "/body":
        stream = environ["wsgi.input"]
        body = stream.read()
        return text(start_response, body, extra=[("X-Input-Type", type(stream).__name__)])

    if path == "/read-in-pieces":
        stream = environ["wsgi.input"]
        pieces = [stream.read(2), stream.readline(), stream.readline(3), stream.readline()]
        pieces.append(stream.readlines())
        pieces.append(stream.read())
        return text(start_response, repr(pieces))

    if path == "/iterate":
        stream = environ["wsgi.input"]
        lines = [line for line in stream]
        longest = max(len(line) for line in lines) if lines else 0
        summary = "%d lines, %d bytes, longest %d, %s" % (
            len(lines),
            sum(len(line) for line in lines),
            longest,
            type(stream).__name__,
        )
        return text(start_response, summary)

    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"one ")
        write(b"")
        write(b"two ")
        return Recorded(name, [b"three"])

    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Recorded(name, [b"first", lambda: wait_for_go(name), b"second"])

    if path == "/stream-three":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"a", b"b", b"c"])

    if path == "/endless":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def tick():
            time.sleep(0.01)

        chunks = [b"tick"]
        for _ in range(int(WAIT_LIMIT / 0.01)):
            chunks += [tick, b"tick"]
        return Recorded(name, chunks)

    if path == "/content-length":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return Recorded(name, [b"whole"])

    if path == "/error-before":
        raise RuntimeError("boom before start_response")

    if path == "/error-after-start-response":
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise RuntimeError("boom after start_response")

    if path == "/error-mid-stream":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def boom():
            raise RuntimeError("boom mid-stream")

        return Recorded(name, [b"partial", boom])

    if path == "/exc-info-before-headers":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("handled")
        except ValueError:
            start_response("500 Handled", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"sorry"]

    if path == "/exc-info-after-headers":

        def generate():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"first"
            try:
                raise ValueError("too late to handle")
            except ValueError:
                start_response("500 Handled", [("Content-Type", "text/plain")], sys.exc_info())
            yield b"never"

        return generate()

    if path == "/start-response-twice":
        start_response("200 OK", [])
        start_response("404 Not Found", [])
        return [b"never"]

    if path == "/no-start-response":
        return [b"never"]

    if path == "/bad-header":
        headers = {
            "lf": [("X-Evil", "a\nSet-Cookie: stolen=1")],
            "cr": [("X-Evil", "a\rb")],
            "nul": [("X-Evil", "a\0b")],
            "name": [("X-Ev\nil", "a")],
            "bytes": [(b"X-Bytes", "a")],
            "not-latin-1": [("X-Snow", "\u2603")],
            "triple": [("X-A", "a", "b")],
        }
        start_response("200 OK", headers[query["kind"]])
        return [b"never"]

    if path == "/bad-status":
        status = {"no-code": "OK", "lf": "200 OK\nX: y", "bytes": b"200 OK", "short": "20"}
        start_response(status[query["kind"]], [])
        return [b"never"]

    if path == "/str-body":
        start_response("200 OK", [])
        return ["a str, not bytes"]

    if path == "/exit":
        sys.exit(1)

    if path == "/empty":
        start_response("204 No Content", [])
        return Recorded(name, [])

    if path == "/big":
        size = int(query["size"])
        start_response("200 OK", [("Content-Length", str(size))])
        return [b"z" * size]

    if path == "/file":
        f = RecordedFile(os.path.join(ROOT, name), "rb")
        f.seek(int(query.get("seek", "0")))
        headers = [("Content-Type", "application/octet-stream")]
        if "length" in query:
            headers.append(("Content-Length", query["length"]))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f, 4096)

    if path == "/file-like":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"0123456789" * 1000), 4096)

    if path == "/sleep":
        time.sleep(float(query["seconds"]))
        return text(start_response, "slept")

    if path == "/wait":
        mark("started", name)
        wait_for_go(name)
        return text(start_response, "released " + name)

    if path == "/pid":
        return text(start_response, str(os.getpid()))

    return text(start_response, "no route " + path, status="404 Not Found")


def counting_app():
    """`app`, with a /sends route that says how many socket writes the previous request took.

    A profile hook counts the shim's sendall/sendmsg calls on this (the serving) thread."""
    count = [0]
    at_previous_entry = [0]

    def hook(frame, event, arg):
        if event == "c_call" and getattr(arg, "__name__", "") in ("sendall", "sendmsg", "send"):
            count[0] += 1

    sys.setprofile(hook)

    def counting(environ, start_response):
        previous = count[0] - at_previous_entry[0]
        at_previous_entry[0] = count[0]
        if environ["PATH_INFO"] == "/sends":
            return text(start_response, str(previous))
        return app(environ, start_response)

    return counting


factory_calls = []


def create_app(greeting="hello"):
    factory_calls.append(greeting)

    def greeter(environ, start_response):
        return text(start_response, "%s, factory called %d time(s)" % (greeting, len(factory_calls)))

    return greeter
