"""A plain WSGI app (no framework) that shows the tests what the worker sees.

Every route answers something a test can check exactly; none needs a package.
"""
import ctypes
import hashlib
import json
import os
import sys
import time

CLOSE_LOG = os.environ.get("PROBE_CLOSE_LOG")

# A test makes the next boot (a reload, a replacement worker) fail by creating
# this file next to the app, and heals it by removing the file.
FAIL_BOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "FAIL_BOOT")
if os.path.exists(FAIL_BOOT):
    raise RuntimeError("probe asked to fail at boot: FAIL_BOOT exists")

# Workers that import the app while this file exists answer /health with 503
# (a generation that loads but is not healthy); the others with 200.
UNHEALTHY = os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "UNHEALTHY"))


def _json(start_response, data, status="200 OK"):
    body = json.dumps(data, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _query(environ):
    out = {}
    for pair in environ.get("QUERY_STRING", "").split("&"):
        if "=" in pair:
            key, value = pair.split("=", 1)
            out[key] = value
    return out


class Closing:
    """An iterable whose close() leaves a mark, as PEP 3333 requires it be called."""

    def __init__(self, chunks, mark):
        self.chunks = chunks
        self.mark = mark

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        if CLOSE_LOG:
            with open(CLOSE_LOG, "a") as log:
                log.write(self.mark + "\n")


def health_view(environ, start_response):
    if UNHEALTHY:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"probe is unhealthy: UNHEALTHY existed at import"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"healthy"]


def environ_view(environ, start_response):
    shown = {k: v for k, v in environ.items() if isinstance(v, str)}
    shown["wsgi.version"] = list(environ["wsgi.version"])
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated"):
        shown[key] = environ.get(key)
    shown["has_file_wrapper"] = "wsgi.file_wrapper" in environ
    shown["errors_is_stderr"] = environ["wsgi.errors"] is sys.stderr
    shown["pid"] = os.getpid()
    return _json(start_response, shown)


def input_view(environ, start_response):
    stream = environ["wsgi.input"]
    how = _query(environ).get("how", "read")
    if how == "read":
        result = {"body": stream.read().decode("latin-1")}
    elif how == "readsome":
        result = {"first": stream.read(3).decode(), "rest": stream.read().decode()}
    elif how == "readline":
        result = {"lines": [stream.readline().decode(), stream.readline(2).decode(), stream.readline().decode()]}
    elif how == "readlines":
        result = {"lines": [line.decode() for line in stream.readlines()]}
    else:
        result = {"lines": [line.decode() for line in stream]}
    return _json(start_response, result)


def write_view(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    write(b"then ")
    return [b"returned"]


def exc_info_view(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("replaced before anything was sent")
    except ValueError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain"), ("X-Replaced", "yes")], sys.exc_info())
    return [b"error page"]


def close_view(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing([b"a", b"b"], _query(environ).get("mark", "closed"))


def file_view(environ, start_response):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data.bin")
    size = os.path.getsize(path)
    handle = open(path, "rb")
    offset = int(_query(environ).get("offset", "0"))
    handle.seek(offset)
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size - offset))])
    return environ["wsgi.file_wrapper"](handle, 65536)


def big_view(environ, start_response):
    size = int(_query(environ).get("bytes", "1000000"))
    block = bytes(range(256)) * 256
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])

    def chunks():
        left = size
        while left > 0:
            piece = block[: min(left, len(block))]
            left -= len(piece)
            yield piece

    return chunks()


def stream_view(environ, start_response):
    count = int(_query(environ).get("n", "3"))
    pause = float(_query(environ).get("pause", "0.2"))
    start_response("200 OK", [("Content-Type", "text/plain")])

    def chunks():
        for n in range(count):
            yield ("chunk %d\n" % n).encode()
            time.sleep(pause)

    return chunks()


def sleep_view(environ, start_response):
    seconds = float(_query(environ).get("s", "1"))
    time.sleep(seconds)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept"]


def raise_view(environ, start_response):
    raise RuntimeError("probe asked to raise")


def log_view(environ, start_response):
    environ["wsgi.errors"].write("probe wrote to wsgi.errors\n")
    print("probe printed to stdout")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"logged"]


def headers_view(environ, start_response):
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Custom", "yes")],
    )
    return [b"headers"]


def text_view(environ, start_response):
    body = ("capstan compresses text. " * 200).encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


# Routes added for the wsgi and supervision tests.

EVENT_LOG = os.environ.get("PROBE_EVENT_LOG")


def echo_view(environ, start_response):
    """The request body back, exactly, and the CONTENT_LENGTH the app saw."""
    body = environ["wsgi.input"].read()
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(body))),
            ("X-Environ-Content-Length", environ.get("CONTENT_LENGTH", "absent")),
        ],
    )
    return [body]


def close_stream_view(environ, start_response):
    """A slow stream whose close() leaves a mark: for clients that leave mid-stream."""
    query = _query(environ)
    count = int(query.get("n", "100"))
    pause = float(query.get("pause", "0.1"))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def chunks():
        for n in range(count):
            yield ("chunk %d\n" % n).encode()
            time.sleep(pause)

    return Closing(chunks(), query.get("mark", "closed"))


def hold_view(environ, start_response):
    """Says "MARK PID" in PROBE_EVENT_LOG once the app has the request, then sleeps."""
    query = _query(environ)
    if EVENT_LOG:
        with open(EVENT_LOG, "a") as log:
            log.write("%s %d\n" % (query.get("mark", "holding"), os.getpid()))
    time.sleep(float(query.get("s", "1")))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"held"]


HOARD = []


def grow_view(environ, start_response):
    """Keeps N MiB alive in this worker, to test max_rss."""
    mib = int(_query(environ).get("mib", "1"))
    HOARD.append(bytearray(mib << 20))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"grown"]


def sha256_view(environ, start_response):
    """SHA-256 and length of the body, read from wsgi.input 1 MiB at a time."""
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    length = 0
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        digest.update(chunk)
        length += len(chunk)
    return _json(start_response, {"sha256": digest.hexdigest(), "length": length, "pid": os.getpid()})


def _mark(environ, default):
    if EVENT_LOG:
        with open(EVENT_LOG, "a") as log:
            log.write("%s %d\n" % (_query(environ).get("mark", default), os.getpid()))


def segfault_view(environ, start_response):
    """Crashes the worker in C, as a broken extension would: SIGSEGV."""
    _mark(environ, "segfault")
    ctypes.string_at(0)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"survived a segfault"]


def exit_view(environ, start_response):
    """Ends the worker at once, skipping every cleanup: os._exit."""
    _mark(environ, "exit")
    os._exit(int(_query(environ).get("code", "3")))


ROUTES = {
    "/environ": environ_view,
    "/health": health_view,
    "/input": input_view,
    "/write": write_view,
    "/exc_info": exc_info_view,
    "/close": close_view,
    "/file": file_view,
    "/big": big_view,
    "/stream": stream_view,
    "/sleep": sleep_view,
    "/raise": raise_view,
    "/log": log_view,
    "/headers": headers_view,
    "/text": text_view,
    "/grow": grow_view,
    "/echo": echo_view,
    "/close_stream": close_stream_view,
    "/hold": hold_view,
    "/sha256": sha256_view,
    "/segfault": segfault_view,
    "/exit": exit_view,
}


def app(environ, start_response):
    view = ROUTES.get(environ["PATH_INFO"])
    if view is None:
        if environ["PATH_INFO"].startswith("/environ/"):
            return environ_view(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such probe route"]
    return view(environ, start_response)
