//! What the daemon tests share: a real `capstan daemon` on a temp root,
//! stopped by its PID, and git as a pusher with no user or system config.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::fixture::{self, capstan, free_port};

pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A daemon on a temp root, stopped by its PID.
pub struct Daemon {
    pub child: Option<Child>,
    pub port: u16,
    pub root: PathBuf,
    pub stderr: Arc<Mutex<String>>,
}

impl Daemon {
    pub fn start(root: &Path) -> Daemon {
        Daemon::start_with(root, free_port(), &[])
    }

    /// A daemon on `--listen 127.0.0.1:PORT`, with more flags.
    pub fn start_with(root: &Path, port: u16, args: &[&str]) -> Daemon {
        let mut child = Command::new(capstan())
            .args(["daemon", "--root"])
            .arg(root)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("capstan daemon starts");
        let stderr = fixture::collect(child.stderr.take().unwrap());
        let mut daemon = Daemon {
            child: Some(child),
            port,
            root: root.to_owned(),
            stderr,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !daemon.stderr().contains("serving every app") {
            if let Some(status) = daemon.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the daemon exited with {status}:\n{}", daemon.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "not serving:\n{}",
                daemon.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    /// The daemon's child processes (the app workers) now.
    pub fn processes(&self) -> Vec<u32> {
        fixture::descendants_of(self.child.as_ref().unwrap().id())
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn capstan(&self, args: &[&str]) -> Output {
        Command::new(capstan())
            .args(args)
            .env("CAPSTAN_ROOT", &self.root)
            .output()
            .unwrap()
    }

    /// SIGTERM, then waits for it to exit.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "daemon exit {status}:\n{}", self.stderr());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "did not stop:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn get(&self, host: &str) -> (u16, String) {
        let response = fixture::client()
            .get(format!("http://127.0.0.1:{}/", self.port))
            .header("Host", host)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            for pid in fixture::descendants_of(child.id()) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Removes the app's system user (made when the daemon runs as root) at the end.
pub struct AppUserGuard(pub &'static str);

impl Drop for AppUserGuard {
    fn drop(&mut self) {
        let _ = capstan_users::remove_app_user(&capstan_config::AppName::new(self.0).unwrap());
    }
}

/// The real uid of a process, from /proc.
pub fn process_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// git with no system or user config, as a pusher with a name.
pub fn git(dir: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", home)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .unwrap()
}

pub fn commit(work: &Path, home: &Path, app_py: &str, message: &str) {
    std::fs::write(work.join("app.py"), app_py).unwrap();
    let ok = |o: Output| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ok(git(work, home, &["add", "."]));
    ok(git(work, home, &["commit", "-q", "-m", message]));
}

pub fn flask_app(text: &str) -> String {
    format!(
        "from flask import Flask\napp = Flask(__name__)\n\n@app.get('/')\ndef index():\n    return {text:?}\n"
    )
}

/// The system's Python, for the app file: one under root's home (pyenv) is
/// out of an app user's reach when the daemon runs as root.
pub const SYSTEM_PYTHON: &str = "python = \"/usr/bin/python3\"\n";

/// A developer's checkout of an app: a git work tree with its own HOME, the
/// shared test venv's requirements (one store venv, built once) and the
/// system's Python in its app file.
pub struct Checkout {
    pub work: PathBuf,
    pub home: PathBuf,
}

impl Checkout {
    /// A new checkout in `dir` with `app.py` and `capstan.toml` committed.
    pub fn new(dir: &Path, app_py: &str, capstan_toml: &str) -> Checkout {
        let work = dir.join("work");
        let home = dir.join("home");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::copy(
            fixture::workspace().join("examples/hello/requirements.txt"),
            work.join("requirements.txt"),
        )
        .unwrap();
        let checkout = Checkout { work, home };
        assert!(checkout.git(&["init", "-q", "-b", "main"]).status.success());
        checkout.write("capstan.toml", &format!("{SYSTEM_PYTHON}{capstan_toml}"));
        commit(&checkout.work, &checkout.home, app_py, "first");
        checkout
    }

    /// Writes `text` to `path` in the work tree (not committed).
    pub fn write(&self, path: &str, text: &str) {
        let path = self.work.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Writes `app.py` and commits everything.
    pub fn commit(&self, app_py: &str, message: &str) {
        commit(&self.work, &self.home, app_py, message);
    }

    pub fn git(&self, args: &[&str]) -> Output {
        git(&self.work, &self.home, args)
    }

    /// `git push REPO main`: whether it was accepted, and what it printed.
    pub fn push(&self, repo: &Path) -> (bool, String) {
        let push = self.git(&["push", repo.to_str().unwrap(), "main"]);
        let output = String::from_utf8_lossy(&push.stderr).into_owned();
        (push.status.success(), output)
    }
}

impl Daemon {
    /// `apps create NAME --domain DOMAIN`, which must work; the app's repository.
    pub fn create_app(&self, name: &str, domain: &str) -> PathBuf {
        let created = self.capstan(&["apps", "create", name, "--domain", domain]);
        assert!(created.status.success(), "{created:?}");
        self.root.join("apps").join(name).join("repo.git")
    }
}
