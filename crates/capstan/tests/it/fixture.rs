//! Starting and stopping the real binary on free ports, with the app folders
//! and the shared venv the tests need.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long a server may take to say it is serving (a venv build included).
const START_TIMEOUT: Duration = Duration::from_secs(180);

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn capstan() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_capstan"))
}

/// A venv with Flask (examples/hello/requirements.txt), built once per run by
/// capstan's own builder into target/test-venv and reused while it matches.
pub fn flask_venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| shared_venv("test-venv", "examples/hello/requirements.txt"))
        .clone()
}

/// A venv with what real apps use (Flask-SQLAlchemy, Flask-Migrate,
/// Flask-Babel, Django, WhiteNoise; tests/apps/real-apps-requirements.txt),
/// built once per run into target/test-venv-real-apps like [`flask_venv`].
pub fn real_apps_venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        shared_venv(
            "test-venv-real-apps",
            "crates/capstan/tests/apps/real-apps-requirements.txt",
        )
    })
    .clone()
}

/// Builds (or reuses, while its stamp matches) target/NAME from a requirements
/// file of the workspace, under a file lock so parallel test processes build it once.
fn shared_venv(name: &str, requirements: &str) -> PathBuf {
    let root = workspace();
    let dir = root.join("target").join(name);
    fs::create_dir_all(root.join("target")).unwrap();
    // Test processes may run in parallel (nextest): one builds, the others wait.
    let lock = fs::File::create(root.join(format!("target/{name}.lock"))).unwrap();
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let requirements = root.join(requirements);
    let target = dir.clone();
    // Its own thread: the caller may be inside an async test's runtime.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let spec = capstan_venv::VenvSpec {
            dir: target,
            python: "python3",
            requirements: capstan_venv::Requirements::Txt(requirements),
            app_root: &root,
        };
        runtime
            .block_on(capstan_venv::ensure(&spec, &mut |line: &str| {
                eprintln!("pip: {line}")
            }))
            .expect("the test venv builds");
    })
    .join()
    .unwrap();
    dir
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh copy of one of the test apps (tests/apps/NAME) or examples (examples/NAME).
pub fn app_copy(name: &str) -> tempfile::TempDir {
    let root = workspace();
    let source = [
        root.join("crates/capstan/tests/apps").join(name),
        root.join("examples").join(name),
    ]
    .into_iter()
    .find(|p| p.is_dir())
    .unwrap_or_else(|| panic!("no test app or example called {name}"));
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&source, dir.path());
    dir
}

/// An app folder made of the given files.
pub fn app_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in files {
        let path = dir.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_name() == ".capstan" || entry.file_name() == "__pycache__" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A running `capstan run`, stopped (and its process group killed) on drop.
pub struct Server {
    child: Option<Child>,
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

/// Options for [`Server::start`].
#[derive(Default, Clone)]
pub struct Opts {
    pub tls: bool,
    /// Use the shared Flask venv (`--venv`); off to let capstan build its own.
    pub no_venv_flag: bool,
    pub args: Vec<String>,
    /// No `--workers 2`: the app's own worker count applies.
    pub own_workers: bool,
    pub env: Vec<(String, String)>,
    /// Fixed ports (when another process must know them first), else free ones.
    pub http_port: Option<u16>,
    pub https_port: Option<u16>,
}

impl Opts {
    pub fn tls() -> Self {
        Opts {
            tls: true,
            ..Opts::default()
        }
    }

    pub fn args(args: &[&str]) -> Self {
        Opts {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Opts::default()
        }
    }
}

impl Server {
    /// Starts capstan on `dir` with two workers and waits until it serves.
    pub fn start(dir: &Path, opts: Opts) -> Server {
        // Free ports are picked before capstan binds them; a test running in
        // parallel may take one in between. Pick again then.
        let mut attempts = 0;
        loop {
            match Server::try_start(dir, opts.clone()) {
                Ok(server) => return server,
                Err(output) if output.contains("already in use") && attempts < 3 => attempts += 1,
                Err(output) => panic!("capstan did not start:\n{output}"),
            }
        }
    }

    /// Like [`Server::start`], but a failure to start is returned with the output.
    pub fn try_start(dir: &Path, opts: Opts) -> Result<Server, String> {
        let port = |fixed: Option<u16>| fixed.unwrap_or_else(free_port);
        let http: SocketAddr = format!("127.0.0.1:{}", port(opts.http_port))
            .parse()
            .unwrap();
        let https: Option<SocketAddr> = opts.tls.then(|| {
            format!("127.0.0.1:{}", port(opts.https_port))
                .parse()
                .unwrap()
        });
        let mut command = Command::new(capstan());
        command
            .arg("run")
            .arg(dir)
            .arg("--listen")
            .arg(http.to_string());
        if let Some(https) = https {
            command.arg("--tls-listen").arg(https.to_string());
        }
        if !opts.no_venv_flag {
            command.arg("--venv").arg(flask_venv());
        }
        if !opts.own_workers && !opts.args.iter().any(|a| a == "--workers") {
            command.args(["--workers", "2"]);
        }
        command.args(&opts.args);
        command.envs(opts.env.iter().map(|(k, v)| (k, v)));
        command.env_remove("RUST_LOG");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("capstan starts");
        let stderr = collect(child.stderr.take().unwrap());
        let stdout = collect(child.stdout.take().unwrap());
        let mut server = Server {
            child: Some(child),
            http,
            https,
            stderr,
            stdout,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // "serving NAME at http://...", not a note such as "serving
            // microblog:app, named by FLASK_APP", which comes first.
            if server
                .stderr()
                .lines()
                .any(|line| line.contains(" serving ") && line.contains(" at http://"))
            {
                return Ok(server);
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                // Let the readers drain what is left.
                std::thread::sleep(Duration::from_millis(100));
                server.child = None;
                return Err(format!("exited with {status}\n{}", server.stderr()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not serving after {START_TIMEOUT:?}\n{}",
                    server.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.https.unwrap().port(), path)
    }

    /// Everything capstan wrote to standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything capstan wrote to standard output (the access log) so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until standard error contains `text`.
    pub fn wait_for_stderr(&self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stderr().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Every process started under capstan (workers and their children).
    pub fn descendants(&self) -> Vec<u32> {
        descendants_of(self.pid())
    }

    /// Sends a signal to capstan itself.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// SIGTERM, then waits for capstan to exit (at most `timeout`).
    pub fn stop(mut self, timeout: Duration) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "capstan did not stop within {timeout:?}:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            for pid in descendants_of(child.id()) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn collect<R: Read + Send + 'static>(stream: R) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let reader = BufReader::new(stream);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("CAPSTAN_TEST_ECHO").is_some() {
                eprintln!("{line}");
            }
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    text
}

/// All processes whose parent chain leads to `root`.
pub fn descendants_of(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces or parentheses; fields resume after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        if let Some(ppid) = fields.get(1).and_then(|p| p.parse::<u32>().ok()) {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for (pid, ppid) in &parents {
            if *ppid == parent && !found.contains(pid) {
                found.push(*pid);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Runs capstan to completion (for commands that must fail), bounded in time.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> (ExitStatus, String) {
    let mut child = Command::new(capstan())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = collect(child.stderr.take().unwrap());
    let _stdout = collect(child.stdout.take().unwrap());
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(100));
            let text = stderr.lock().unwrap().clone();
            return (status, text);
        }
        if Instant::now() > deadline {
            for pid in descendants_of(child.id()) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = child.kill();
            panic!(
                "capstan {args:?} did not exit within {timeout:?}:\n{}",
                stderr.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP client for the tests: no proxy from the environment, bounded waits,
/// self-signed certificates accepted.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET path` from `server` with [`client`]; panics when no answer comes.
pub async fn get(server: &Server, path: &str) -> reqwest::Response {
    client().get(server.url(path)).send().await.unwrap()
}

/// Sends raw bytes and returns everything the server answers until it closes
/// or stays quiet for `quiet`.
pub fn raw_exchange(addr: SocketAddr, request: &[u8], quiet: Duration) -> Vec<u8> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(quiet)).unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// The pid of the probe app's worker that answered a GET /environ.
pub async fn pid_serving(server: &Server) -> u32 {
    let response = client().get(server.url("/environ")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let env: serde_json::Value = response.json().await.unwrap();
    env["pid"].as_u64().unwrap() as u32
}
