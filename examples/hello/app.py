"""The example app of capstan's README: run it with `capstan run examples/hello`.

Routes:
  GET  /            plain text
  GET  /json        a small JSON object
  GET  /page        a Jinja template
  POST /echo        the sha256 of the request body, in hex
  GET  /stream      a streamed response, one line at a time
  GET  /static/...  files from ./static, served by capstan itself
"""
import hashlib
import os
import time

from flask import Flask, Response, jsonify, render_template, request

app = Flask(__name__)


@app.get("/")
def hello():
    return Response("Hello from capstan!\n", mimetype="text/plain")


@app.get("/json")
def json_view():
    return jsonify(message="hello", pid=os.getpid(), ok=True)


@app.get("/page")
def page():
    rows = [{"n": n, "square": n * n} for n in range(1, 11)]
    return render_template("page.html", title="Squares", rows=rows)


@app.post("/echo")
def echo():
    body = request.get_data(cache=False)
    return Response(hashlib.sha256(body).hexdigest() + "\n", mimetype="text/plain")


@app.get("/stream")
def stream():
    def lines():
        for n in range(5):
            yield f"line {n}\n"
            time.sleep(0.05)

    return Response(lines(), mimetype="text/plain")
