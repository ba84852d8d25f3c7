"""The bench app's own cost per request, with no server: the WSGI callable is
called in a loop, in-process, with a minimal environ. This is the floor that
any server's CPU per request is compared with.

    <venv with Flask>/bin/python bench/app_cost.py ../shared/bench/apps/hello
"""
import io
import os
import sys
import time


def main():
    app_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "../shared/bench/apps/hello")
    sys.path.insert(0, app_dir)
    os.chdir(app_dir)
    from app import app  # noqa: E402  (the bench app)

    body = bytes(range(256)) * 256  # 64 KiB, like the /echo workload

    def call(method, path, data=b""):
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "50000",
            "HTTP_HOST": "127.0.0.1:8000",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(data),
            "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if data:
            environ["CONTENT_LENGTH"] = str(len(data))
            environ["CONTENT_TYPE"] = "application/octet-stream"
        result = app(environ, lambda status, headers, exc_info=None: None)
        for _ in result:
            pass
        if hasattr(result, "close"):
            result.close()

    for label, method, path, data in [
        ("GET /", "GET", "/", b""),
        ("GET /json", "GET", "/json", b""),
        ("GET /page", "GET", "/page", b""),
        ("POST /echo", "POST", "/echo", body),
    ]:
        for _ in range(300):
            call(method, path, data)
        best = None
        for _ in range(5):
            count = 2000
            started = time.process_time()
            for _ in range(count):
                call(method, path, data)
            per_call = (time.process_time() - started) / count * 1e6
            best = per_call if best is None else min(best, per_call)
        print("%-11s %7.1f us CPU per call (best of 5 x 2000)" % (label, best))


if __name__ == "__main__":
    main()
