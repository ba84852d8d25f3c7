"""A plain WSGI app with no framework, given to capstan by its Procfile."""
import json
import os


def application(environ, start_response):
    body = json.dumps(
        {
            "path": environ["PATH_INFO"],
            "greeting": os.environ.get("GREETING", "hello"),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
