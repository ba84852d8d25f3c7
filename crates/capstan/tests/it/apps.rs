//! The forms an app can take: a Procfile with .env, nothing but a wsgi.py,
//! `[tool.capstan]` in pyproject.toml, a `[web] command`, background
//! `[processes]`, and an app whose venv capstan builds itself.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::errors::processes_mentioning;
use crate::fixture::{
    alive, app_copy, app_with, capstan, client, descendants_of, flask_venv, free_port, Opts, Server,
};

const WSGI_PY: &str = "\
import os


def application(environ, start_response):
    body = ('app saw ' + environ['PATH_INFO']).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
";

fn one_worker() -> Opts {
    Opts::args(&["--workers", "1"])
}

/// The command line of a process, arguments separated by spaces.
fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The process group of a process.
fn process_group(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Descendants of `root` whose command line contains `needle`.
fn descendants_running(root: u32, needle: &str) -> Vec<u32> {
    descendants_of(root)
        .into_iter()
        .filter(|pid| cmdline(*pid).contains(needle))
        .collect()
}

/// Polls `check` every 20 ms until it returns Some, for at most `timeout`.
fn wait_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn line_count(path: &Path) -> usize {
    fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

/// Lines capstan logged for a child called `name` (`12:00:00 pip     | ...`).
fn output_lines_of<'a>(stderr: &'a str, name: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|line| {
            line.split_once(' ')
                .and_then(|(_, rest)| rest.split_once(" | "))
                .is_some_and(|(who, _)| who.trim() == name)
        })
        .collect()
}

// ---- Procfile ----

/// `capstan run` started directly, without the fixture's `--workers`, so the
/// app's own worker count applies.
struct Foreground {
    child: Child,
    http: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Foreground {
    fn start(dir: &Path) -> Foreground {
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut child = Command::new(capstan())
            .arg("run")
            .arg(dir)
            .arg("--listen")
            .arg(http.to_string())
            .arg("--venv")
            .arg(flask_venv())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let server = Foreground {
            child,
            http,
            stderr,
        };
        let mut server = server;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !server
            .stderr()
            .lines()
            .any(|line| line.contains(" serving ") && line.contains(" at http://"))
        {
            if let Some(status) = server.child.try_wait().unwrap() {
                // Let the reader drain what is left.
                std::thread::sleep(Duration::from_millis(100));
                panic!("capstan exited with {status}:\n{}", server.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "capstan did not start:\n{}",
                server.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        for pid in descendants_of(self.child.id()) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_procfile_app_runs_as_many_workers_as_gunicorn_was_given_with_the_dotenv_values() {
    let app = app_copy("procfile");
    let server = Foreground::start(app.path());

    let response = client()
        .get(format!("http://{}/some/path", server.http))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["greeting"], "hello from .env");
    assert_eq!(json["path"], "/some/path");

    // `--workers 2` in the Procfile, and no --workers on the command line.
    let workers = descendants_running(server.child.id(), "capstan_shim");
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert!(
        cmdline(workers[0]).contains("--app wsgi:application"),
        "{}",
        cmdline(workers[0])
    );

    let stderr = server.stderr();
    for bad in ["error:", "warning:", "Traceback", "panicked"] {
        assert!(!stderr.contains(bad), "{bad} in:\n{stderr}");
    }
    drop(server);

    // Two is also a common core count (the default): a different number in the
    // Procfile shows it is the Procfile's.
    let procfile = app.path().join("Procfile");
    let text = fs::read_to_string(&procfile).unwrap();
    assert!(text.contains("--workers 2"), "{text}");
    fs::write(&procfile, text.replace("--workers 2", "--workers 3")).unwrap();
    let server = Foreground::start(app.path());
    let workers = descendants_running(server.child.id(), "capstan_shim");
    assert_eq!(workers.len(), 3, "{workers:?}");
}

// ---- Discovery ----

#[tokio::test]
async fn with_no_settings_file_a_wsgi_py_is_served_and_static_is_served_at_static() {
    let app = app_with(&[("wsgi.py", WSGI_PY), ("static/hello.txt", "static hello\n")]);
    let server = Server::start(app.path(), one_worker());

    let root = client().get(server.url("/anything")).send().await.unwrap();
    assert_eq!(root.status(), 200);
    assert_eq!(root.text().await.unwrap(), "app saw /anything");

    let file = client()
        .get(server.url("/static/hello.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["cache-control"], "public, max-age=2592000");
    assert_eq!(file.text().await.unwrap(), "static hello\n");

    // The edge answers for /static: a missing file never reaches the app.
    let missing = client()
        .get(server.url("/static/nope.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn tool_capstan_in_pyproject_toml_names_the_app_and_its_environment() {
    let app = app_with(&[
        (
            "pyproject.toml",
            "[project]\nname = \"greeter\"\nversion = \"0.1.0\"\n\n\
             [tool.black]\nline-length = 100\n\n\
             [tool.capstan]\nname = \"greeter\"\n\n\
             [tool.capstan.web]\nwsgi = \"service:handler\"\n\n\
             [tool.capstan.env]\nGREETING = \"from pyproject\"\n",
        ),
        (
            "service.py",
            "import os\n\n\ndef handler(environ, start_response):\n    \
             body = os.environ['GREETING'].encode()\n    \
             start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
             return [body]\n",
        ),
        // Discovery would pick this one; [tool.capstan] must win.
        ("wsgi.py", WSGI_PY),
    ]);
    let server = Server::start(app.path(), one_worker());
    let response = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "from pyproject");
    assert!(
        server.stderr().contains("serving greeter at"),
        "{}",
        server.stderr()
    );
}

// ---- [web] command ----

#[tokio::test]
async fn a_web_command_is_proxied_and_stopped_with_capstan() {
    let app = app_with(&[
        (
            "capstan.toml",
            "[web]\ncommand = \"python3 -m http.server $PORT --bind 127.0.0.1\"\n",
        ),
        ("listed-file.txt", "hi\n"),
    ]);
    let server = Server::start(app.path(), Opts::default());

    let response = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let listing = response.text().await.unwrap();
    assert!(listing.contains("Directory listing for /"), "{listing}");
    assert!(listing.contains("listed-file.txt"), "{listing}");

    let web = descendants_running(server.pid(), "http.server");
    assert!(!web.is_empty(), "no http.server under capstan");
    let everything = server.descendants();
    let status = server.stop(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let left: Vec<u32> = everything.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(left.is_empty(), "still running: {left:?}");
    assert!(processes_mentioning(app.path()).is_empty());
}

// ---- [processes] ----

#[tokio::test]
async fn a_background_process_runs_is_restarted_after_sigkill_and_stops_with_capstan() {
    let app = app_with(&[
        ("wsgi.py", WSGI_PY),
        (
            "capstan.toml",
            "[processes.tick]\ncommand = \"while true; do date >> ticks.log; sleep 0.2; done\"\n",
        ),
    ]);
    let ticks = app.path().join("ticks.log");
    let server = Server::start(app.path(), one_worker());

    let grew = wait_until(Duration::from_secs(15), || {
        (line_count(&ticks) >= 3).then_some(())
    });
    assert!(
        grew.is_some(),
        "ticks.log did not grow:\n{}",
        server.stderr()
    );

    // The leader of its process group: the shell running the loop.
    let leader = || {
        descendants_running(server.pid(), "ticks.log")
            .into_iter()
            .find(|pid| process_group(*pid) == Some(*pid))
    };
    let first = leader().expect("the tick shell leads its own process group");
    kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();

    let second = wait_until(Duration::from_secs(15), || {
        leader().filter(|pid| *pid != first)
    });
    let second = second.unwrap_or_else(|| panic!("not restarted:\n{}", server.stderr()));
    assert!(!alive(first));
    assert!(
        server.stderr().contains("process ended; restarting it"),
        "{}",
        server.stderr()
    );
    let after_restart = line_count(&ticks);
    let grew = wait_until(Duration::from_secs(15), || {
        (line_count(&ticks) >= after_restart + 3).then_some(())
    });
    assert!(
        grew.is_some(),
        "ticks.log stopped growing after the restart"
    );

    let everything = server.descendants();
    assert!(everything.contains(&second));
    let status = server.stop(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let left: Vec<u32> = everything.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(left.is_empty(), "still running: {left:?}");
    assert!(processes_mentioning(app.path()).is_empty());
}

#[tokio::test]
async fn a_background_process_whose_leader_dies_leaves_no_children_behind() {
    let app = app_with(&[
        ("wsgi.py", WSGI_PY),
        (
            "capstan.toml",
            "[processes.holder]\ncommand = \"sleep 300 & echo $! >> sleepers.txt; wait\"\n",
        ),
    ]);
    let sleepers = app.path().join("sleepers.txt");
    let server = Server::start(app.path(), one_worker());
    let first_sleeper: u32 = wait_until(Duration::from_secs(15), || {
        fs::read_to_string(&sleepers)
            .ok()?
            .lines()
            .next()?
            .parse()
            .ok()
    })
    .expect("the holder started its sleeper");
    let leader = process_group(first_sleeper).expect("the sleeper runs");
    assert_ne!(leader, first_sleeper);
    kill(Pid::from_raw(leader as i32), Signal::SIGKILL).unwrap();

    // The holder is started again, with a new sleeper...
    let restarted = wait_until(Duration::from_secs(15), || {
        (line_count(&sleepers) >= 2).then_some(())
    });
    assert!(restarted.is_some(), "not restarted:\n{}", server.stderr());
    // ...and the old one, left in the dead leader's group, is gone: two sleepers
    // would be two copies of a worker doing the same jobs.
    let gone = wait_until(Duration::from_secs(10), || {
        (!alive(first_sleeper)).then_some(())
    });
    if gone.is_none() {
        // Orphaned to init, out of reach of the fixture's cleanup.
        let _ = kill(Pid::from_raw(first_sleeper as i32), Signal::SIGKILL);
    }
    assert!(
        gone.is_some(),
        "the first holder's child {first_sleeper} outlived it"
    );
}

// ---- The venv ----

#[tokio::test]
async fn without_venv_capstan_builds_the_apps_venv_from_requirements_and_reuses_it() {
    let app = app_copy("hello");
    let opts = Opts {
        no_venv_flag: true,
        ..one_worker()
    };

    let started = Instant::now();
    let first = Server::start(app.path(), opts.clone());
    let first_took = started.elapsed();
    let venv = app.path().join(".capstan/venv");
    assert!(venv.join("pyvenv.cfg").is_file());
    let stderr = first.stderr();
    assert!(
        stderr.contains("preparing the app's virtualenv"),
        "{stderr}"
    );
    assert!(!output_lines_of(&stderr, "pip").is_empty(), "{stderr}");
    let workers = descendants_running(first.pid(), "capstan_shim");
    assert!(
        workers
            .iter()
            .all(|pid| cmdline(*pid).starts_with(venv.to_str().unwrap())),
        "workers run the app's venv: {:?}",
        workers.iter().map(|pid| cmdline(*pid)).collect::<Vec<_>>()
    );
    let page = client().get(first.url("/page")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(first.stop(Duration::from_secs(30)).success());

    let started = Instant::now();
    let second = Server::start(app.path(), opts);
    let second_took = started.elapsed();
    let stderr = second.stderr();
    assert!(
        !stderr.contains("preparing the app's virtualenv"),
        "{stderr}"
    );
    assert!(output_lines_of(&stderr, "pip").is_empty(), "{stderr}");
    assert!(
        second_took < Duration::from_secs(15),
        "the second start took {second_took:?} (the first {first_took:?})"
    );
    let root = client().get(second.url("/")).send().await.unwrap();
    assert_eq!(root.text().await.unwrap(), "Hello from capstan!\n");
}
