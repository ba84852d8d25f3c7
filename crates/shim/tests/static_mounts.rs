//! The static folders a worker reports in its HELLO, found by looking at the
//! loaded app: Flask-shaped and Django-shaped apps, duck-typed with the
//! standard library only, through wrappers, and apps that are odd.

mod common;

use std::path::PathBuf;

use common::Setup;

/// A Flask look-alike: what the shim reads (url_map, view_functions,
/// blueprints, static_folder, send_static_file), nothing more.
const FAKE_FLASK: &str = r#"
import os

HERE = os.path.dirname(os.path.abspath(__file__))
for folder in ("static", "bp_static", "odd"):
    os.makedirs(os.path.join(HERE, folder), exist_ok=True)


class Rule:
    def __init__(self, rule, endpoint, subdomain="", methods=("GET", "HEAD", "OPTIONS")):
        self.rule, self.endpoint, self.subdomain, self.host = rule, endpoint, subdomain, None
        self.methods = set(methods)


class Map:
    def __init__(self, rules):
        self.rules = rules

    def iter_rules(self):
        return iter(self.rules)


class Blueprint:
    def __init__(self, folder):
        self.static_folder = os.path.join(HERE, folder)

    def send_static_file(self, filename):
        raise NotImplementedError


class App:
    def __init__(self):
        self.static_folder = os.path.join(HERE, "static")
        self.blueprints = {
            "bp": Blueprint("bp_static"),
            "converter": Blueprint("odd"),
            "sub": Blueprint("odd"),
            "root": Blueprint("odd"),
            "gone": Blueprint("missing"),
        }
        self.url_map = Map([
            Rule("/static/<path:filename>", "static"),
            Rule("/bp/static/<path:filename>", "bp.static"),
            Rule("/c/<int:n>/<path:filename>", "converter.static"),
            Rule("/sub/<path:filename>", "sub.static", subdomain="cdn"),
            Rule("/<path:filename>", "root.static"),
            Rule("/gone/<path:filename>", "gone.static"),
            Rule("/", "index"),
        ])
        self.view_functions = {"static": self.send_static_file, "index": None}
        for name, bp in self.blueprints.items():
            self.view_functions[name + ".static"] = bp.send_static_file

    def send_static_file(self, filename):
        raise NotImplementedError

    def __call__(self, environ, start_response):
        start_response("200 OK", [])
        return [b""]


class WhiteNoiseLike:
    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        return self.application(environ, start_response)


app = WhiteNoiseLike(App())
"#;

#[test]
fn hello_lists_the_static_folders_of_a_flask_like_app_found_through_a_wrapper() {
    let (worker, hello) = Setup::app("fakeflask:app")
        .static_mounts()
        .module("fakeflask", FAKE_FLASK)
        .start();
    let root = worker.dir.path().canonicalize().unwrap();
    let mounts: Vec<(String, PathBuf)> = hello
        .static_mounts
        .iter()
        .map(|m| (m.url_prefix.clone(), m.dir.clone()))
        .collect();
    assert_eq!(
        mounts,
        [
            ("/static".to_owned(), root.join("static")),
            ("/bp/static".to_owned(), root.join("bp_static")),
        ]
    );
    let stderr = worker.stderr();
    for why in [
        "leaving /c/<int:n> (converter.static) to Flask: its rule /c/<int:n>/<path:filename> has parts the front cannot match",
        "leaving /sub (sub.static) to Flask: it is served on a subdomain or host of its own",
        "(root.static) to Flask: it is served at /, where the front would hide the app's own pages",
        "leaving /gone (gone.static) to Flask: the folder does not exist",
    ] {
        assert!(stderr.contains(why), "{why}\nstderr:\n{stderr}");
    }
}

#[test]
fn without_static_mounts_the_shim_does_not_look_and_hello_lists_none() {
    let (worker, hello) = Setup::app("fakeflask:app")
        .module("fakeflask", FAKE_FLASK)
        .start();
    assert!(hello.static_mounts.is_empty());
    assert!(!worker.stderr().contains("leaving"), "{}", worker.stderr());
}

#[test]
fn an_app_that_fails_to_be_looked_at_still_boots_and_the_failure_is_logged() {
    let (worker, hello) = Setup::app("odd:app")
        .static_mounts()
        .module(
            "odd",
            "class Odd:\n    static_folder = view_functions = blueprints = None\n    \
             @property\n    def url_map(self):\n        raise RuntimeError('no map today')\n    \
             def __call__(self, environ, start_response):\n        return []\napp = Odd()\n",
        )
        .start();
    assert!(hello.static_mounts.is_empty());
    assert!(
        worker
            .stderr()
            .contains("could not look for Flask's static folders: RuntimeError('no map today')"),
        "{}",
        worker.stderr()
    );
}

/// A module that sets Django up the way `get_wsgi_application` leaves it:
/// DJANGO_SETTINGS_MODULE set and `django.conf.settings` configured.
const FAKE_DJANGO: &str = r#"
import os, sys, types

HERE = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(HERE, "collected"), exist_ok=True)
os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
settings = types.SimpleNamespace(
    configured=True,
    STATIC_URL="/assets/",
    STATIC_ROOT=os.path.join(HERE, "collected"),
    WHITENOISE_ROOT=os.path.join(HERE, "collected"),
)
sys.modules["django"] = types.ModuleType("django")
sys.modules["django.conf"] = conf = types.ModuleType("django.conf")
conf.settings = settings


def application(environ, start_response):
    start_response("200 OK", [])
    return [b""]
"#;

#[test]
fn hello_lists_djangos_static_root_and_leaves_whitenoise_root_to_the_app() {
    let (worker, hello) = Setup::app("fakedjango:application")
        .static_mounts()
        .module("fakedjango", FAKE_DJANGO)
        .start();
    let root = worker.dir.path().canonicalize().unwrap();
    assert_eq!(hello.static_mounts.len(), 1, "{:?}", hello.static_mounts);
    assert_eq!(hello.static_mounts[0].url_prefix, "/assets");
    assert_eq!(hello.static_mounts[0].dir, root.join("collected"));
    assert!(
        worker
            .stderr()
            .contains("WHITENOISE_ROOT is left to WhiteNoise"),
        "{}",
        worker.stderr()
    );
}
