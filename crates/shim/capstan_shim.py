"""capstan's Python worker shim: serves one WSGI app (PEP 3333) to capstan's runtime.

    python capstan_shim.py --fd N --app module:callable [--threads N] [--root DIR] [--name NAME]
                           [--static-mounts]

The runtime and this process talk over the inherited Unix socket N in frames: a
12-byte little-endian header  b"CW" | version 1 | kind u8 | request id u32 | length u32
and a payload of at most 16 MiB. The shim imports the app and sends HELLO
(pid \\0 python version \\0 threads, then with --static-mounts \\0 url prefix \\0 folder
for each static folder the app serves itself, see static_mounts) or BOOT_ERROR (the traceback; exit status 3).
Then, per request: REQUEST (flags byte, then the environ as key \\0 value \\0 ...;
with flag bit 0, BODY frames and a BODY_END follow) is answered with RESPONSE_START
(status \\0 name \\0 value ...), RESPONSE_BODY chunks or one RESPONSE_FILE (offset u64,
length u64, the fd passed alongside with SCM_RIGHTS), and exactly one terminal frame:
RESPONSE_END, or APP_ERROR (a traceback) if the app failed. CANCEL stops a response
(it still ends with RESPONSE_END), PING gets PONG, SHUTDOWN finishes in-flight
requests and exits 0, end of file on the socket exits 0 at once.

Standard library only; runs on CPython 3.8+ and PyPy, in any virtualenv.
"""

import argparse
import array
import ast
import errno
import importlib
import io
import os
import select
import signal
import socket
import stat
import struct
import sys
import tempfile
import threading
import traceback
from collections import deque
from queue import SimpleQueue

# Frame kinds (capstan-wire's `Kind`).
HELLO = 1
BOOT_ERROR = 2
REQUEST = 3
BODY = 4
BODY_END = 5
RESPONSE_START = 6
RESPONSE_BODY = 7
RESPONSE_FILE = 8
RESPONSE_END = 9
APP_ERROR = 10
CANCEL = 11
PING = 12
PONG = 13
SHUTDOWN = 14

HAS_BODY = 1
MAX_PAYLOAD = 16 * 1024 * 1024
EXIT_BOOT_ERROR = 3

_MAGIC = b"CW\x01"  # magic and version: every header starts with these three bytes
_TO_THE_END = 2 ** 64 - 1  # RESPONSE_FILE length meaning "the rest of the file"

# One bytes object per kind, so a header is a single precompiled pack call.
_P_BOOT_ERROR = _MAGIC + bytes((BOOT_ERROR,))
_P_HELLO = _MAGIC + bytes((HELLO,))
_P_START = _MAGIC + bytes((RESPONSE_START,))
_P_BODY = _MAGIC + bytes((RESPONSE_BODY,))
_P_FILE = _MAGIC + bytes((RESPONSE_FILE,))
_P_END = _MAGIC + bytes((RESPONSE_END,))
_P_ERROR = _MAGIC + bytes((APP_ERROR,))
_P_PONG = _MAGIC + bytes((PONG,))

_header = struct.Struct("<4sII").pack
_unpack_header = struct.Struct("<3sBII").unpack_from
_file_ref = struct.Struct("<QQ").pack

_RECV_SIZE = 256 * 1024  # one recv normally holds a whole request; bigger frames are read apart
_SPOOL_LIMIT = 1024 * 1024  # request bodies past this go to a temporary file, not memory
_JOIN_LIMIT = 256 * 1024  # responses up to this size are joined into one write; bigger ones are not copied
_SHUTDOWN_POLL = 0.05  # seconds between checks for in-flight requests while shutting down

_name = "worker"


class FileWrapper(object):
    """wsgi.file_wrapper: a regular file is handed to the runtime as a descriptor
    (RESPONSE_FILE), anything else is read in blocks of `blksize` bytes."""

    def __init__(self, filelike, blksize=64 * 1024):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


class ClientGone(OSError):
    """Raised from write() once the runtime cancelled the request (the client left).

    An OSError, like the broken-pipe errors other servers raise there, so apps that
    already handle a vanished client handle this one too."""


def _log(message):
    try:
        sys.stderr.write("[capstan-shim %s] %s\n" % (_name, message))
        sys.stderr.flush()
    except Exception:
        pass


def _flush_std():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _runtime_gone():
    # The runtime closed its end: nobody is left to answer, so leave at once without
    # waiting for threads or running the app's exit hooks.
    _flush_std()
    os._exit(0)


def _send_failed(exc):
    if exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
        _runtime_gone()
    _log("writing to the runtime failed: %r" % (exc,))
    _flush_std()
    os._exit(1)


def _protocol_error(message):
    _log("protocol error, exiting: " + message)
    _flush_std()
    os._exit(1)


def _as_bytes(chunk):
    # PEP 3333 bodies are bytes; bytearray and memoryview are copied so a later
    # mutation by the app cannot change what was already queued.
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(
        ("a WSGI response body chunk must be bytes, not %s: %r" % (type(chunk).__name__, chunk))[:300]
    )


def _next_chunk(iterator):
    """The next non-empty chunk of `iterator`, or b"" once it is exhausted."""
    for chunk in iterator:
        if chunk.__class__ is not bytes:
            chunk = _as_bytes(chunk)
        if chunk:
            return chunk
    return b""


def _add_body(parts, rid, chunk):
    """Appends RESPONSE_BODY frames for `chunk`, split at the payload limit."""
    size = len(chunk)
    if size <= MAX_PAYLOAD:
        parts.append(_header(_P_BODY, rid, size))
        parts.append(chunk)
        return
    view = memoryview(chunk)
    for at in range(0, size, MAX_PAYLOAD):
        piece = view[at : at + MAX_PAYLOAD]
        parts.append(_header(_P_BODY, rid, len(piece)))
        parts.append(piece)


def _encode_head(status, headers):
    """Checks start_response's arguments and returns (RESPONSE_START payload, Content-Length or None)."""
    if status.__class__ is not str:
        raise TypeError("the WSGI status must be a str, not %s" % type(status).__name__)
    code = status[:3]
    valid = len(code) == 3 and code.isdigit() and code.isascii() and code[0] != "0"
    if not (valid and status[3:4] in ("", " ")):
        raise ValueError("the WSGI status must look like '200 OK', not %r" % (status,))
    fields = [status]
    length = None
    for name, value in headers:
        fields.append(name)
        fields.append(value)
        if len(name) == 14 and name.lower() == "content-length":
            length = value
    # join() raises TypeError for anything but str names and values.
    text = "\0".join(fields)
    # SECURITY: a CR or LF would let the app forge headers, a NUL would forge fields
    # in the frame; such a response is an app error and is never sent.
    if "\n" in text or "\r" in text or text.count("\0") != len(fields) - 1:
        raise ValueError("a CR, LF or NUL in the response status or headers: %r" % (fields,))
    # PEP 3333: status and headers are latin-1 native strings (UnicodeEncodeError otherwise).
    head = text.encode("latin-1")
    if length is not None:
        length = int(length) if length.isdigit() and length.isascii() else None
    return head, length


def _regular_file(wrapper):
    """(fd, offset) when a FileWrapper holds a regular file the runtime can send itself."""
    filelike = wrapper.filelike
    try:
        fd = filelike.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return fd, filelike.tell()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


class _Reader(object):
    """Frames off the socket through one buffer; one recv usually holds a whole request.

    Only the main thread reads. End of file means the runtime is gone."""

    __slots__ = ("sock", "store", "view", "start", "end")

    def __init__(self, sock):
        self.sock = sock
        # One buffer for the worker's life: recv_into it allocates nothing, where
        # recv(256 KiB) would mmap and munmap a fresh buffer for every request.
        self.store = bytearray(_RECV_SIZE)
        self.view = memoryview(self.store)
        self.start = 0  # the first byte not consumed yet
        self.end = 0  # the end of the bytes received

    def next(self, block=True):
        """The next (kind, request id, payload); None if `block` is false and no whole frame is here."""
        start = self.start
        if self.end - start >= 12:
            store = self.store
            magic, kind, rid, size = _unpack_header(store, start)
            stop = start + 12 + size
            if stop <= self.end and magic == _MAGIC:
                self.start = stop
                # bytes, not a bytearray slice: a BODY payload then becomes the
                # wsgi.input's buffer as it is (BytesIO shares bytes, copies the rest).
                return kind, rid, bytes(self.view[start + 12 : stop])
        return self._more(block)

    def _more(self, block):
        store = self.store
        while True:
            start = self.start
            have = self.end - start
            if have >= 12:
                magic, kind, rid, size = _unpack_header(store, start)
                # SECURITY: the header is checked before its length is trusted.
                if magic != _MAGIC:
                    _protocol_error("bad frame header %r" % (bytes(store[start : start + 12]),))
                if size > MAX_PAYLOAD:
                    _protocol_error("frame payload of %d bytes is over the limit" % size)
                if have >= 12 + size:
                    self.start = start + 12 + size
                    return kind, rid, bytes(self.view[start + 12 : self.start])
                if 12 + size > _RECV_SIZE:
                    # Not while streaming: that would block a response until the frame is whole.
                    return self._big(kind, rid, size) if block else None
            if start:
                # Move a partial frame to the front so the rest of it fits behind.
                if have:
                    store[:have] = store[start : self.end]
                self.start = 0
                self.end = have
            try:
                received = self.sock.recv_into(self.view[have:], 0, 0 if block else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return None
            except OSError:
                received = 0
            if not received:
                _runtime_gone()
            self.end = have + received

    def _big(self, kind, rid, size):
        # A frame bigger than the buffer (a large BODY chunk) is read into its own
        # bytes; MSG_WAITALL lets the kernel fill it in a few calls.
        start = self.start + 12
        parts = [bytes(self.view[start : self.end])]
        need = size - len(parts[0])
        self.start = self.end = 0
        recv = self.sock.recv
        while need:
            try:
                data = recv(need, socket.MSG_WAITALL)
            except OSError:
                data = b""
            if not data:
                _runtime_gone()
            parts.append(data)
            need -= len(data)
        return kind, rid, b"".join(parts)


class _Body(object):
    """A request body being received: chunks in memory, or a temporary file past the limit."""

    __slots__ = ("environ", "chunks", "size", "file")

    def __init__(self, environ):
        self.environ = environ
        self.chunks = []
        self.size = 0
        self.file = None

    def add(self, chunk):
        if self.file is not None:
            self.file.write(chunk)
            return
        self.size += len(chunk)
        if self.size <= _SPOOL_LIMIT:
            self.chunks.append(chunk)
            return
        # Past the limit the body moves to disk so a worker's memory stays bounded.
        # A plain TemporaryFile rather than a SpooledTemporaryFile: the body is known to
        # be over the spool limit already, and before 3.11 the spooled wrapper lacks
        # readable(), readinto() and read1() that some body parsers call.
        self.file = tempfile.TemporaryFile()
        for earlier in self.chunks:
            self.file.write(earlier)
        self.file.write(chunk)
        self.chunks = None

    def input(self):
        """The wsgi.input for the whole body."""
        if self.file is not None:
            self.file.seek(0)
            return self.file
        chunks = self.chunks
        # BytesIO over a bytes object shares it instead of copying.
        return io.BytesIO(chunks[0] if len(chunks) == 1 else b"".join(chunks))


def serve_forever(sock, app, threads):
    """Serves requests from `sock` until SHUTDOWN has been handled (then returns);
    exits the process if the runtime goes away."""
    sendall = sock.sendall
    lock = threading.Lock()  # one writer at a time, so frames never interleave
    active = set()  # request ids received and not finished
    cancelled = set()  # active request ids whose client is gone
    pending = {}  # request id -> _Body still being received
    backlog = deque()  # complete requests the main thread serves next (inline mode)
    reader = _Reader(sock)
    shutting_down = []  # non-empty once SHUTDOWN arrived
    BytesIO = io.BytesIO
    base = {
        "wsgi.version": (1, 0),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": threads > 1,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }

    if threads > 1:

        def send(data):
            try:
                with lock:
                    sendall(data)
            except OSError as exc:
                _send_failed(exc)

    else:

        def send(data):
            # One thread writes: no lock needed.
            try:
                sendall(data)
            except OSError as exc:
                _send_failed(exc)

    def send_parts(parts, size):
        # A small response is one write. A big one is written piece by piece, still
        # under one hold of the lock, instead of being copied into one buffer.
        if size <= _JOIN_LIMIT:
            send(b"".join(parts))
            return
        try:
            with lock:
                for part in parts:
                    sendall(part)
        except OSError as exc:
            _send_failed(exc)

    def send_with_fd(data, fd):
        # SCM_RIGHTS rides on the same sendmsg as the RESPONSE_FILE frame, so the
        # descriptor reaches the runtime no later than the frame that uses it.
        fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", (fd,)))]
        try:
            with lock:
                sent = sock.sendmsg((data,), fds)
                if sent < len(data):
                    sendall(data[sent:])
        except OSError as exc:
            _send_failed(exc)

    def send_error(rid, text):
        data = text.encode("utf-8", "replace")[-MAX_PAYLOAD:]
        send(_header(_P_ERROR, rid, len(data)) + data)

    def serve(rid, environ):
        head = None  # the RESPONSE_START payload, once start_response was called
        length = None  # the app's Content-Length, if it gave one
        started = False  # RESPONSE_START has been sent: the status can no longer change
        end = _header(_P_END, rid, 0)

        def start_response(status, headers, exc_info=None):
            nonlocal head, length
            if exc_info is not None:
                try:
                    if started:
                        # PEP 3333: too late to change the status; the error propagates.
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None  # no frame <-> traceback cycle
            elif head is not None:
                raise AssertionError("start_response() was called a second time without exc_info")
            head, length = _encode_head(status, headers)
            return write

        def write(data):
            nonlocal started
            if head is None:
                raise AssertionError("write() was called before start_response()")
            if data.__class__ is not bytes:
                data = _as_bytes(data)
            if poll is not None:
                poll()
            if cancelled and rid in cancelled:
                raise ClientGone("the client of request %d is gone" % rid)
            if not data:
                return
            if started:
                parts = []
            else:
                parts = [_header(_P_START, rid, len(head)), head]
                started = True
            _add_body(parts, rid, data)
            send_parts(parts, len(data))

        body = environ["wsgi.input"]
        result = None
        try:
            if cancelled and rid in cancelled:
                raise ClientGone()  # it waited in the queue while its client left
            result = app(environ, start_response)
            kind = result.__class__
            if kind is list or kind is tuple:
                # Everything is here already: the whole response is one write.
                if head is None:
                    raise AssertionError("the app returned without calling start_response()")
                parts = [] if started else [_header(_P_START, rid, len(head)), head]
                size = 0
                for chunk in result:
                    if chunk.__class__ is not bytes:
                        chunk = _as_bytes(chunk)
                    if chunk:
                        _add_body(parts, rid, chunk)
                        size += len(chunk)
                parts.append(end)
                started = True
                send_parts(parts, size)
                return
            if kind is FileWrapper:
                found = _regular_file(result)
                if found is not None:
                    if head is None:
                        raise AssertionError("the app returned without calling start_response()")
                    fd, offset = found
                    parts = [] if started else [_header(_P_START, rid, len(head)), head]
                    parts.append(_header(_P_FILE, rid, 16))
                    parts.append(_file_ref(offset, _TO_THE_END if length is None else length))
                    parts.append(end)
                    started = True
                    send_with_fd(b"".join(parts), fd)
                    return
            # Any other iterable streams: each chunk is sent as soon as the app yields it.
            iterator = iter(result)
            for chunk in iterator:
                if chunk.__class__ is not bytes:
                    chunk = _as_bytes(chunk)
                if not chunk:
                    continue
                if head is None:
                    raise AssertionError("the app yielded body data before calling start_response()")
                if started:
                    if poll is not None:
                        poll()
                    if cancelled and rid in cancelled:
                        raise ClientGone()
                    parts = []
                else:
                    if cancelled and rid in cancelled:
                        raise ClientGone()
                    if length is not None and len(chunk) >= length:
                        # The first chunk is the whole body: if the iterable ends here,
                        # start, body and end go out in one write.
                        more = _next_chunk(iterator)
                        parts = [_header(_P_START, rid, len(head)), head]
                        started = True
                        _add_body(parts, rid, chunk)
                        if not more:
                            parts.append(end)
                            send_parts(parts, len(chunk))
                            return
                        _add_body(parts, rid, more)
                        send_parts(parts, len(chunk) + len(more))
                        continue
                    parts = [_header(_P_START, rid, len(head)), head]
                    started = True
                _add_body(parts, rid, chunk)
                send_parts(parts, len(chunk))
            if started:
                send(end)
            elif head is None:
                raise AssertionError("the app returned without calling start_response()")
            else:
                started = True
                send(_header(_P_START, rid, len(head)) + head + end)
        except ClientGone:
            if cancelled and rid in cancelled:
                send(end)
            else:  # the app raised it itself
                report(rid, environ)
        except BaseException:
            report(rid, environ)
        finally:
            if result is not None:
                close = getattr(result, "close", None)
                if close is not None:
                    try:
                        close()
                    except BaseException:
                        text = traceback.format_exc()
                        _log("close() of the response to request %d raised:\n%s" % (rid, text))
            if body.__class__ is not BytesIO:
                body.close()  # removes the temporary file now rather than at garbage collection
            active.discard(rid)
            cancelled.discard(rid)

    def report(rid, environ):
        text = traceback.format_exc()
        _log(
            "%s %s (request %d) raised:\n%s"
            % (environ.get("REQUEST_METHOD", "?"), environ.get("PATH_INFO", "?"), rid, text.rstrip("\n"))
        )
        send_error(rid, text)

    def handle(kind, rid, payload):
        if kind == REQUEST:
            if not payload:
                _protocol_error("empty REQUEST payload")
            fields = iter(payload[1:].decode("latin-1").split("\0"))
            environ = dict(zip(fields, fields))
            environ.update(base)
            if "wsgi.url_scheme" not in environ:
                environ["wsgi.url_scheme"] = "http"
            active.add(rid)
            if payload[0] & HAS_BODY:
                pending[rid] = _Body(environ)
            else:
                environ["wsgi.input"] = BytesIO()
                dispatch((rid, environ))
        elif kind == BODY:
            request = pending.get(rid)
            if request is not None:
                request.add(payload)
        elif kind == BODY_END:
            request = pending.pop(rid, None)
            if request is not None:
                environ = request.environ
                environ["wsgi.input"] = request.input()
                dispatch((rid, environ))
        elif kind == CANCEL:
            request = pending.pop(rid, None)
            if request is not None:
                # Never dispatched: finish it here, the runtime may send no more body.
                if request.file is not None:
                    request.file.close()
                active.discard(rid)
                send(_header(_P_END, rid, 0))
                return
            # Added before the check, so a request that finishes meanwhile (and then
            # discards its id) leaves no stale entry behind.
            cancelled.add(rid)
            if rid not in active:
                cancelled.discard(rid)
        elif kind == PING:
            send(_header(_P_PONG, rid, 0))
        elif kind == SHUTDOWN:
            shutting_down.append(True)
        else:
            _log("ignoring an unexpected frame of kind %d for request %d" % (kind, rid))

    if threads > 1:
        queue = SimpleQueue()
        dispatch = queue.put
        poll = None  # the main thread reads CANCEL and PING itself

        def work():
            get = queue.get
            while True:
                rid, environ = get()
                try:
                    serve(rid, environ)
                except BaseException:  # serve() reports app errors itself; this is a shim bug
                    _log("serving request %d failed:\n%s" % (rid, traceback.format_exc()))

        for number in range(threads):
            threading.Thread(target=work, name="%s-%d" % (_name, number + 1), daemon=True).start()
    else:
        dispatch = backlog.append

        def poll():
            # Serving inline, the socket is read only between requests; while a response
            # streams, take in CANCEL, PING and SHUTDOWN without blocking.
            while True:
                frame = reader.next(False)
                if frame is None:
                    return
                handle(*frame)

    next_frame = reader.next
    while True:
        if shutting_down:
            if not active:
                return
            frame = next_frame(False)
            if frame is None:
                # Threads finish requests without telling this loop: wait for the
                # socket only briefly, then look at `active` again.
                if not select.select([sock], [], [], _SHUTDOWN_POLL)[0]:
                    continue
                frame = next_frame()  # bytes are arriving: read the frame whole
        else:
            frame = next_frame()
        handle(*frame)
        while backlog:
            rid, environ = backlog.popleft()
            serve(rid, environ)


def load_app(spec):
    """The WSGI callable named by `module:attribute`, `module:factory(...)` or `module`.

    A factory is called with literal arguments only, e.g. `app:create_app('prod')`."""
    module_name, _, expression = spec.partition(":")
    module = importlib.import_module(module_name)
    if not expression:
        for default in ("application", "app"):
            if hasattr(module, default):
                expression = default
                break
        else:
            raise AttributeError(
                "module %r has neither `application` nor `app`; name it: --app %s:NAME"
                % (module_name, module_name)
            )
    node = ast.parse(expression.strip(), mode="eval").body
    call = None
    if isinstance(node, ast.Call):
        call = node
        node = node.func
    path = []
    while isinstance(node, ast.Attribute):
        path.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise ValueError("--app %s: expected module:name or module:factory(...)" % spec)
    path.append(node.id)
    target = module
    for attribute in reversed(path):
        target = getattr(target, attribute)
    if call is not None:
        args = [ast.literal_eval(arg) for arg in call.args]
        kwargs = dict((keyword.arg, ast.literal_eval(keyword.value)) for keyword in call.keywords)
        target = target(*args, **kwargs)
    if not callable(target):
        raise TypeError("--app %s is a %s, not a WSGI callable" % (spec, type(target).__name__))
    return target


_FLASK_STATIC_TAIL = "/<path:filename>"


def static_mounts(app):
    """(url prefix, absolute folder) for each folder of files the app serves itself:
    Flask's static folders (the app's and its blueprints') and Django's STATIC_ROOT.

    Found by looking at the loaded app, never by importing a framework. Anything odd
    is logged and skipped: the app then keeps serving those files itself, so a
    failure here never fails the boot."""
    mounts = []
    for framework, finder in (("Flask", _flask_mounts), ("Django", _django_mounts)):
        try:
            mounts.extend(finder(app))
        except Exception as exc:
            _log("could not look for %s's static folders: %r; the app serves them" % (framework, exc))
    seen = set()
    usable = []
    for prefix, folder in mounts:
        if prefix in seen:
            continue
        seen.add(prefix)
        try:
            if "\0" in prefix or "\0" in folder:
                raise ValueError("NUL")
            prefix.encode("utf-8")
            folder.encode("utf-8")
        except (UnicodeError, ValueError):
            _log("static folder %r for %r has a name that cannot be sent; the app serves it"
                 % (folder, prefix))
            continue
        usable.append((prefix, folder))
    return usable


def _unwrapped_flask(app):
    """The Flask app inside `app`, through common middleware (`.wsgi_app`,
    WhiteNoise's `.application`, werkzeug's `.app`), duck-typed; or None."""
    seen = set()
    while app is not None and id(app) not in seen and len(seen) < 8:
        seen.add(id(app))
        if all(hasattr(app, name) for name in ("url_map", "view_functions", "blueprints", "static_folder")):
            return app
        app = next((getattr(app, name) for name in ("application", "app", "wsgi_app")
                    if getattr(app, name, None) is not None), None)
    return None


def _flask_mounts(app):
    """The static rules of a Flask app that the front can serve exactly as Flask would."""
    flask_app = _unwrapped_flask(app)
    if flask_app is None:
        return []
    # The endpoint of each static folder, and the view Flask registers for it.
    folders = {}
    if flask_app.static_folder:
        folders["static"] = (flask_app, flask_app.static_folder)
    for name, blueprint in flask_app.blueprints.items():
        folder = getattr(blueprint, "static_folder", None)
        if folder:
            folders[name + ".static"] = (blueprint, folder)
    rules = list(flask_app.url_map.iter_rules())
    static_endpoints = set(folders)
    mounts = []
    for rule in rules:
        if rule.endpoint not in folders:
            continue
        owner, folder = folders[rule.endpoint]
        text = rule.rule
        why = None
        prefix = text[: -len(_FLASK_STATIC_TAIL)] if text.endswith(_FLASK_STATIC_TAIL) else None
        if getattr(rule, "subdomain", None) or getattr(rule, "host", None):
            why = "it is served on a subdomain or host of its own"
        elif prefix is None or "<" in prefix:
            why = "its rule %s has parts the front cannot match" % text
        elif not prefix:
            why = "it is served at /, where the front would hide the app's own pages"
        elif "GET" not in (rule.methods or ()):
            why = "its rule does not answer GET"
        elif not _is_static_view(flask_app, owner, flask_app.view_functions.get(rule.endpoint)):
            why = "the app serves it with a view of its own"
        else:
            # Werkzeug sends a URL under the prefix to another view when one is
            # routed there; the front would answer it from disk instead.
            clash = next((other.rule for other in rules if other.endpoint not in static_endpoints
                          and (other.rule == prefix or other.rule.startswith(prefix + "/"))), None)
            if clash is not None:
                why = "the app also routes %s under it" % clash
            elif not os.path.isdir(folder):
                why = "the folder does not exist"
        if why:
            _log("leaving %s (%s) to Flask: %s" % (prefix or text, rule.endpoint, why))
            continue
        mounts.append((prefix, os.path.realpath(folder)))
    return mounts


def _is_static_view(flask_app, owner, view):
    """True when `view` is the send_static_file Flask registered for `owner`."""
    if view is None:
        return False
    if view == getattr(owner, "send_static_file", None):
        return True
    # Flask 2.2+ registers a lambda that calls the app's send_static_file through a weakref.
    return owner is flask_app and getattr(view, "__qualname__", "").startswith("Flask.__init__")


def _django_mounts(app):
    """Django's STATIC_ROOT at STATIC_URL, once collectstatic has filled it."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE") or "django.conf" not in sys.modules:
        return []
    settings = sys.modules["django.conf"].settings
    if not settings.configured:
        return []
    mounts = []
    url = str(getattr(settings, "STATIC_URL", None) or "")
    root = getattr(settings, "STATIC_ROOT", None)
    if url and root:
        root = os.fspath(root)
        prefix = url.rstrip("/")
        if not url.startswith("/") or url.startswith("//"):
            _log("STATIC_URL %s is not a path on this site; the front serves nothing for it" % url)
        elif not prefix:
            _log("STATIC_URL is /: the front would hide the app's own pages, so it is left to the app")
        elif not os.path.isdir(root):
            _log("STATIC_ROOT %s does not exist: run `python manage.py collectstatic` "
                 "(capstan exec DIR -- python manage.py collectstatic) and restart to serve %s"
                 % (root, url))
        else:
            mounts.append((prefix, os.path.realpath(root)))
    if getattr(settings, "WHITENOISE_ROOT", None):
        # The front serves a prefix whole: it has no "file if it exists, else the app".
        _log("WHITENOISE_ROOT is left to WhiteNoise: served from the front at /, it would "
             "hide every page of the app")
    return mounts


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="capstan_shim.py", description="capstan's WSGI worker")
    parser.add_argument("--fd", type=int, required=True, help="the inherited Unix socket to the runtime")
    parser.add_argument("--app", required=True, help="module:callable, or module:factory()")
    parser.add_argument("--threads", type=int, default=1, help="requests served at once")
    parser.add_argument("--root", help="the app's directory: working directory and first on sys.path")
    parser.add_argument("--name", default="worker", help="this worker's name in log lines")
    parser.add_argument("--static-mounts", action="store_true",
                        help="list the static folders the app serves itself in HELLO")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def main(argv=None):
    global _name
    args = _parse_args(argv)
    _name = args.name
    # The runtime decides when a worker stops: Ctrl-C in a terminal reaches the whole
    # process group, and only the runtime should act on it. SIGTERM keeps its default
    # even if the parent ignored it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        sock = socket.socket(fileno=args.fd)
    except OSError as exc:
        _log("--fd %d is not a socket: %s" % (args.fd, exc))
        return 2
    sock.setblocking(True)
    # Subprocesses the app starts must not hold the runtime's socket open.
    os.set_inheritable(args.fd, False)

    # The app's directory replaces the shim's own on sys.path.
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.realpath(sys.path[0] or ".") == os.path.realpath(here):
        del sys.path[0]
    try:
        root = os.path.abspath(args.root) if args.root else os.getcwd()
        os.chdir(root)
        sys.path.insert(0, root)
        app = load_app(args.app)
    except BaseException:
        text = traceback.format_exc()
        _log("could not load the app %s:\n%s" % (args.app, text.rstrip("\n")))
        data = text.encode("utf-8", "replace")[-MAX_PAYLOAD:]
        try:
            sock.sendall(_header(_P_BOOT_ERROR, 0, len(data)) + data)
        except OSError:
            pass
        # os._exit: threads the half-imported app started must not keep it alive.
        _flush_std()
        os._exit(EXIT_BOOT_ERROR)

    version = "%d.%d.%d" % sys.version_info[:3]
    fields = ["%d" % os.getpid(), version, "%d" % args.threads]
    if args.static_mounts:
        for prefix, folder in static_mounts(app):
            fields.extend((prefix, folder))
    hello = "\0".join(fields).encode("utf-8")
    try:
        sock.sendall(_header(_P_HELLO, 0, len(hello)) + hello)
    except OSError as exc:
        _send_failed(exc)
    serve_forever(sock, app, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
