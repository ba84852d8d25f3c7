//! The daemon's log files: each app's processes, access log and deploys
//! write to `<app>/logs/`, rotated as `[logs]` in the settings file says, and
//! `capstan logs` reads them back (merged, by process, followed).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::daemon_support::{AppUserGuard, Checkout, Daemon};
use crate::fixture::{self, capstan};

/// How long a line may take to reach its file.
const LINE_WAIT: Duration = Duration::from_secs(20);

/// A Flask app whose `/` prints a line (to the worker's stdout) and whose
/// `/say/<n>` prints a long marker line.
const APP: &str = "from flask import Flask\napp = Flask(__name__)\n\n\
@app.get('/')\ndef index():\n    print('hello from the request', flush=True)\n    return 'logged'\n\n\
@app.get('/say/<int:n>')\ndef say(n):\n    print(f'marker {n} ' + 'x' * 300, flush=True)\n    return 'said'\n";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until `path` holds `needle`.
fn wait_for_text(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + LINE_WAIT;
    loop {
        let text = read(path);
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never had {needle:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn get(daemon: &Daemon, host: &str, path: &str) -> u16 {
    fixture::client()
        .get(format!("http://127.0.0.1:{}{path}", daemon.port))
        .header("Host", host)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_apps_output_lands_in_its_log_files_and_capstan_logs_reads_and_follows_them() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = temp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    // Tiny files, so a few requests rotate web.log.
    std::fs::write(
        root.join("capstan.toml"),
        "[logs]\nmax_size = \"1KB\"\nkeep = 2\n",
    )
    .unwrap();
    let _user = AppUserGuard("logblog");
    let daemon = Daemon::start(&root);
    let repo = daemon.create_app("logblog", "logs.example.com");
    let logs = root.join("apps/logblog/logs");

    // A reserved name is refused at the push, with the file and line.
    let checkout = Checkout::new(
        temp.path(),
        APP,
        "[processes.deploy]\ncommand = \"sleep 600\"\n",
    );
    let (pushed, output) = checkout.push(&repo);
    assert!(!pushed, "{output}");
    assert!(
        output.contains("capstan.toml:2") && output.contains("`deploy` is reserved"),
        "{output}"
    );

    // A working release with a [processes] entry.
    checkout.write(
        "capstan.toml",
        &format!(
            "{}[processes.tasks]\ncommand = \"echo tasks-started; exec sleep 600\"\n\
             [processes.flaky]\ncommand = \"exit 4\"\n",
            crate::daemon_support::SYSTEM_PYTHON
        ),
    );
    checkout.commit(APP, "with tasks");
    let (pushed, output) = checkout.push(&repo);
    assert!(pushed, "{output}\n{}", daemon.stderr());
    assert_eq!(get(&daemon, "logs.example.com", "/").await, 200);
    let web = wait_for_text(&logs.join("web.log"), "hello from the request");
    assert!(
        web.lines()
            .any(|l| l.contains(" web.") && l.ends_with("   | hello from the request")),
        "{web}"
    );
    let access = wait_for_text(&logs.join("access.log"), "\"GET / HTTP/1.1\" 200");
    assert!(access.contains(" access  | 127.0.0.1 - - ["), "{access}");
    wait_for_text(&logs.join("tasks.log"), " tasks   | tasks-started");
    wait_for_text(&logs.join("capstan.log"), "is live");
    // The daemon's own lines about the app: a process that ends is restarted.
    wait_for_text(
        &logs.join("capstan.log"),
        " capstan | flaky exited with status 4; starting it again in ",
    );
    // Not on the daemon's own stderr any more.
    assert!(!daemon.stderr().contains("hello from the request"));

    // The last N lines of every process, merged by time.
    let shown = daemon.capstan(&["logs", "logblog", "-n", "4"]);
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8_lossy(&shown.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let times: Vec<&str> = lines.iter().map(|l| &l[..24]).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "{text}");
    let json = daemon.capstan(&["logs", "logblog", "-n", "1", "--json", "-p", "tasks"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        json["line"].as_str().unwrap().ends_with("| tasks-started"),
        "{json}"
    );

    // A failed deploy's whole output is kept, after the push was refused.
    checkout.write(
        "capstan.toml",
        &format!(
            "{}[release]\ncommands = [\"echo the migration broke; exit 3\"]\n",
            crate::daemon_support::SYSTEM_PYTHON
        ),
    );
    checkout.commit(APP, "broken release");
    let (pushed, output) = checkout.push(&repo);
    assert!(!pushed, "{output}");
    let deploys = daemon.capstan(&["logs", "logblog", "-p", "deploy", "-n", "1000"]);
    assert!(deploys.status.success(), "{deploys:?}");
    let deploys = String::from_utf8_lossy(&deploys.stdout).into_owned();
    for needle in [
        "deploy of ",
        "building release 3 (",
        "the migration broke",
        "failed: release 3 failed",
    ] {
        assert!(deploys.contains(needle), "{needle:?} not in:\n{deploys}");
    }
    assert_eq!(get(&daemon, "logs.example.com", "/").await, 200);

    // Unknown apps and processes are clear errors.
    let unknown = daemon.capstan(&["logs", "nosuchapp"]);
    assert!(!unknown.status.success());
    let said = String::from_utf8_lossy(&unknown.stderr).into_owned();
    assert!(said.contains("nosuchapp"), "{said}");
    let unknown = daemon.capstan(&["logs", "logblog", "-p", "nosuch"]);
    assert!(!unknown.status.success());
    let said = String::from_utf8_lossy(&unknown.stderr).into_owned();
    assert!(
        said.contains("no log for `nosuch`") && said.contains("web"),
        "{said}"
    );

    // -f follows new lines, across rotations of web.log.
    let mut follower = Command::new(capstan())
        .args(["logs", "logblog", "-f", "-p", "web", "-n", "0"])
        .env("CAPSTAN_ROOT", &root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let followed = fixture::collect(follower.stdout.take().unwrap());
    // It has started once `follow` returned; give the client its stream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // One at a time: a file holds two of these lines, so the writer rotates
    // every other request (faster than a reader polls, old files would go
    // before it looks, as with any rotation that outruns its reader).
    const SAID: u32 = 8;
    for n in 0..SAID {
        assert_eq!(
            get(&daemon, "logs.example.com", &format!("/say/{n}")).await,
            200
        );
        let deadline = Instant::now() + LINE_WAIT;
        while !followed.lock().unwrap().contains(&format!("| marker {n} ")) {
            assert!(
                Instant::now() < deadline,
                "marker {n} not followed:\n{}",
                followed.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(logs.join("web.log.1").exists(), "web.log was not rotated");
    assert!(!logs.join("web.log.3").exists(), "keep = 2 kept more");
    kill(Pid::from_raw(follower.id() as i32), Signal::SIGTERM).unwrap();
    let _ = follower.wait();
    daemon.stop();
}

#[test]
fn bad_logs_settings_stop_the_daemon_with_the_file_and_line() {
    for (settings, said) in [
        (
            "[logs]\nmax_size = \"12\"\n",
            "capstan.toml:2: bad value for `max_size`",
        ),
        (
            "\n[logs]\nkeep = \"five\"\n",
            "capstan.toml:3: bad value for `keep`",
        ),
        (
            "[logs]\nrotate = 1\n",
            "capstan.toml:2: unknown key `rotate`",
        ),
    ] {
        let temp = tempfile::tempdir().unwrap();
        std::fs::write(temp.path().join("capstan.toml"), settings).unwrap();
        let out = Command::new(capstan())
            .args(["daemon", "--root"])
            .arg(temp.path())
            .args(["--listen", &format!("127.0.0.1:{}", fixture::free_port())])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{settings}: {stderr}");
        assert!(stderr.contains(said), "{settings}: {stderr}");
    }
}
