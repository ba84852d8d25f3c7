//! Apps found and run right with no app file: the Flask tutorial's shape
//! (`FLASK_APP` in `.flaskenv`, a factory in a package, `FLASK_DEBUG=1` kept out of
//! the web processes), a Procfile `web:` line with steps before gunicorn, ASGI
//! apps and bad `FLASK_APP` values refused, and command apps kept on loopback.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::fixture::{app_with, client, get, run_to_exit, Opts, Server};

/// microblog.py as the tutorial has it: the app made by the package's factory.
const MICROBLOG_PY: &str = "from app import create_app\n\napp = create_app()\n";

/// The tutorial's package, with a route that shows what the worker sees.
const APP_INIT_PY: &str = "\
import os

from flask import Flask, jsonify


def create_app(config_class=None):
    app = Flask(__name__)

    @app.route('/debug')
    def debug():
        return jsonify(flask_debug=os.environ.get('FLASK_DEBUG'),
                       flask_app=os.environ.get('FLASK_APP'),
                       debug=app.debug)

    return app
";

const FLASKENV: &str = "FLASK_APP=microblog.py\nFLASK_DEBUG=1\n";

fn tutorial(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let mut files = vec![
        (".flaskenv", FLASKENV),
        ("microblog.py", MICROBLOG_PY),
        ("app/__init__.py", APP_INIT_PY),
    ];
    files.extend_from_slice(extra);
    app_with(&files)
}

fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

async fn get_json(server: &Server, path: &str) -> serde_json::Value {
    let response = client().get(server.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_tutorial_app_is_served_through_flask_app_in_flaskenv_without_its_debug_mode() {
    let app = tutorial(&[]);
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));

    let seen = get_json(&server, "/debug").await;
    assert_eq!(seen["flask_debug"], serde_json::Value::Null, "{seen}");
    assert_eq!(seen["flask_app"], serde_json::Value::Null, "{seen}");
    assert_eq!(seen["debug"], false, "{seen}");

    let stderr = server.stderr();
    assert!(
        stderr.contains("serving microblog:app, named by FLASK_APP in .flaskenv"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "warning: .flaskenv sets FLASK_DEBUG=1, which is not applied to the web processes"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.matches(".flaskenv sets FLASK_DEBUG").count(), 1);
}

#[tokio::test]
async fn flask_debug_in_dotenv_reaches_the_app_and_gets_the_loud_warning() {
    let app = tutorial(&[(".env", "FLASK_DEBUG=1\n")]);
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));

    let seen = get_json(&server, "/debug").await;
    assert_eq!(seen["debug"], true, "{seen}");
    let stderr = server.stderr();
    assert!(
        stderr.contains(
            "warning: FLASK_DEBUG=1 in .env turns on Flask's debug mode in the web processes"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_procfile_web_line_with_steps_before_gunicorn_is_taken_over_with_its_workers() {
    let app = tutorial(&[(
        "Procfile",
        "web: flask --version; echo compiled && gunicorn microblog:app -w 2 --bind 0.0.0.0:$PORT\n",
    )]);
    let server = Server::start(
        app.path(),
        Opts {
            own_workers: true,
            ..Opts::default()
        },
    );

    let seen = get_json(&server, "/debug").await;
    assert_eq!(seen["debug"], false, "{seen}");
    let workers: Vec<u32> = server
        .descendants()
        .into_iter()
        .filter(|pid| cmdline(*pid).contains("capstan_shim"))
        .collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert!(cmdline(workers[0]).contains("--app microblog:app"));

    let stderr = server.stderr();
    assert!(
        stderr.contains(
            "Procfile:1: the web: line runs steps before gunicorn: `flask --version`, \
             `echo compiled` became release commands, run in order before the web processes \
             start; capstan's own workers serve microblog:app in place of \
             `gunicorn microblog:app -w 2 --bind 0.0.0.0:$PORT`"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("Procfile:1: ignored gunicorn flag --bind: capstan listens itself"),
        "{stderr}"
    );
    assert!(stderr.contains("workers=2"), "{stderr}");
}

/// `capstan run` on `app`, which must fail; what it said on stderr.
fn refused_to_run(app: &Path) -> String {
    let dir = app.to_str().unwrap();
    let (status, stderr) = run_to_exit(
        &["run", dir, "--listen", "127.0.0.1:0"],
        Duration::from_secs(30),
    );
    assert!(!status.success(), "{stderr}");
    stderr
}

#[test]
fn an_asgi_app_is_refused_with_the_command_to_write() {
    let app = app_with(&[(
        "main.py",
        "from fastapi import FastAPI\n\napp = FastAPI()\n",
    )]);
    let stderr = refused_to_run(app.path());
    assert!(
        stderr.contains(
            "main.py:3 defines a FastAPI app, which speaks ASGI; capstan's own workers run WSGI \
             apps for now. Run it behind capstan with an ASGI server: put [web] command = \
             \"uvicorn main:app --port $PORT\" in capstan.toml"
        ),
        "{stderr}"
    );
}

#[test]
fn a_flask_app_naming_no_file_is_an_error_at_its_line() {
    let app = app_with(&[(".flaskenv", "# dev settings\nFLASK_APP=microblog.py\n")]);
    let stderr = refused_to_run(app.path());
    assert!(
        stderr.contains(
            ".flaskenv:2: bad value for `FLASK_APP`: \"microblog.py\" names the module \
             microblog, but there is no microblog.py or microblog/__init__.py in the app directory"
        ),
        "{stderr}"
    );
}

// ---- Command apps stay on loopback ----

/// A server that listens where $HOST and $PORT say and shows its environment.
const SERVE_PY: &str = "\
import http.server, json, os


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        keys = ['HOST', 'PORT', 'GUNICORN_CMD_ARGS', 'UVICORN_HOST', 'FLASK_RUN_HOST', 'FLASK_RUN_PORT']
        body = json.dumps({key: os.environ.get(key) for key in keys}).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.HTTPServer((os.environ['HOST'], int(os.environ['PORT'])), Handler).serve_forever()
";

const EXPOSED: &str = "web command listens on";

#[tokio::test]
async fn a_command_app_that_uses_host_and_port_listens_on_loopback_without_a_warning() {
    let app = app_with(&[
        ("capstan.toml", "[web]\ncommand = \"python3 serve.py\"\n"),
        ("serve.py", SERVE_PY),
    ]);
    let server = Server::start(app.path(), Opts::default());

    let seen = get_json(&server, "/").await;
    assert_eq!(seen["HOST"], "127.0.0.1", "{seen}");
    let port = seen["PORT"].as_str().unwrap().to_owned();
    assert_eq!(
        seen["GUNICORN_CMD_ARGS"],
        format!("--bind=127.0.0.1:{port}")
    );
    assert_eq!(seen["UVICORN_HOST"], "127.0.0.1");
    assert_eq!(seen["FLASK_RUN_HOST"], "127.0.0.1");
    assert_eq!(seen["FLASK_RUN_PORT"], port.as_str());
    assert!(!server.stderr().contains(EXPOSED), "{}", server.stderr());
}

/// A command app running Python's http.server bound to `address`, started and
/// answering `/` with 200.
async fn http_server_bound_to(address: &str) -> (tempfile::TempDir, Server) {
    let procfile = format!("web: python3 -m http.server --bind {address} $PORT\n");
    let app = app_with(&[("Procfile", &procfile)]);
    let server = Server::start(app.path(), Opts::default());
    let response = get(&server, "/").await;
    assert_eq!(response.status(), 200);
    (app, server)
}

#[tokio::test]
async fn a_command_app_that_binds_every_interface_gets_one_warning_with_the_fix() {
    let (_app, server) = http_server_bound_to("0.0.0.0").await;
    let stderr = server.stderr();
    assert!(
        stderr.contains("warning: web command listens on 0.0.0.0:"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "so anyone can reach it directly, without TLS, limits or logs; make it listen on \
             127.0.0.1:$PORT, e.g. gunicorn --bind 127.0.0.1:$PORT"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.matches(EXPOSED).count(), 1, "{stderr}");
}

#[tokio::test]
async fn a_command_app_that_binds_loopback_gets_no_warning() {
    let (_app, server) = http_server_bound_to("127.0.0.1").await;
    assert!(!server.stderr().contains(EXPOSED), "{}", server.stderr());
}
