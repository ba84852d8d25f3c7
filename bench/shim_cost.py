"""One Python worker (the real shim and the bench app) driven over its socket
with no edge and no HTTP: the worker's CPU per request when requests come one
at a time (it sleeps between them) and when several wait in its socket (as
with `pipeline`). The difference is what waking a sleeping process costs.

    python3 bench/shim_cost.py --python <venv>/bin/python [--app-dir DIR]
        [--path /] [--requests 20000] [--depth 1 --depth 8] [--body BYTES]

With --body, each request is a POST carrying that many bytes (--path /echo).
WARMUP=N sets the requests sent before measuring (default 2000).

The venv needs the bench app's requirements (Flask); the driver itself uses
only the standard library.
"""
import argparse
import os
import socket
import struct
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.path.join(HERE, "..", "crates", "shim", "capstan_shim.py")
HEADER = struct.Struct("<3sBII")
MAGIC = b"CW\x01"
HELLO, REQUEST, BODY, BODY_END, RESPONSE_END = 1, 3, 4, 5, 9
HAS_BODY = 1


class Frames(object):
    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def next(self):
        while True:
            if len(self.buffer) >= 12:
                _, kind, rid, size = HEADER.unpack_from(self.buffer)
                if len(self.buffer) >= 12 + size:
                    self.buffer = self.buffer[12 + size :]
                    return kind, rid
            data = self.sock.recv(1 << 20)
            if not data:
                raise SystemExit("the worker closed its socket")
            self.buffer += data


def request_frames(rid, path, body):
    environ = {
        "REQUEST_METHOD": "POST" if body else "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "9980",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:9980",
        "HTTP_USER_AGENT": "h2load nghttp2/1.52.0",
        "HTTP_ACCEPT": "*/*",
        "wsgi.url_scheme": "http",
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["CONTENT_TYPE"] = "application/octet-stream"
    flags = bytes((HAS_BODY if body else 0,))
    payload = flags + "\0".join(x for pair in environ.items() for x in pair).encode("latin-1")
    frames = HEADER.pack(MAGIC, REQUEST, rid, len(payload)) + payload
    if body:
        frames += HEADER.pack(MAGIC, BODY, rid, len(body)) + body + HEADER.pack(MAGIC, BODY_END, rid, 0)
    return frames


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(python, app_dir, path, requests, depth, body):
    ours, theirs = socket.socketpair()
    worker = subprocess.Popen(
        [python, SHIM, "--fd", str(theirs.fileno()), "--app", "app:app", "--root", app_dir],
        pass_fds=(theirs.fileno(),),
    )
    theirs.close()
    frames = Frames(ours)
    if frames.next()[0] != HELLO:
        raise SystemExit("the worker did not say hello")
    rid = 0

    def run(count):
        nonlocal rid
        sent = done = 0
        while done < count:
            while sent < count and sent - done < depth:
                rid += 1
                sent += 1
                ours.sendall(request_frames(rid, path, body))
            if frames.next()[0] == RESPONSE_END:
                done += 1

    run(int(os.environ.get("WARMUP", "2000")))  # warm up
    cpu, wall = cpu_seconds(worker.pid), time.monotonic()
    run(requests)
    cpu, wall = cpu_seconds(worker.pid) - cpu, time.monotonic() - wall
    ours.close()
    worker.wait()
    print(
        "%s depth %d: worker CPU %.1f us/request, %.1f us/request wall"
        % (path, depth, cpu / requests * 1e6, wall / requests * 1e6)
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, help="a venv's python with Flask")
    parser.add_argument("--app-dir", default=os.path.join(HERE, "..", "..", "shared", "bench", "apps", "hello"))
    parser.add_argument("--path", default="/")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--depth", type=int, action="append", help="requests in the socket at once")
    parser.add_argument("--body", type=int, default=0, help="POST a body of this many bytes")
    args = parser.parse_args()
    body = bytes(range(256)) * (args.body // 256) + bytes(args.body % 256)
    for depth in args.depth or [1, 8]:
        measure(args.python, os.path.abspath(args.app_dir), args.path, args.requests, depth, body)


if __name__ == "__main__":
    main()
