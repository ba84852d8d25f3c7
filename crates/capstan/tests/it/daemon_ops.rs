//! The daemon's operations besides a push, on a real daemon with real
//! pushes and real app users: rollback, restart, env set and scale while
//! clients hit the app (no request may fail), ps, exec as the app's user,
//! apps destroy, one operation per app at a time, and every refusal's
//! message.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::daemon_support::{process_uid, AppUserGuard, Checkout, Daemon};
use crate::load::Load;

/// A Flask app that says `text` and its GREETING variable.
fn greeting_app(text: &str) -> String {
    format!(
        "import os\nfrom flask import Flask\napp = Flask(__name__)\n\n@app.get('/')\ndef index():\n    \
         return {text:?} + ' ' + os.environ.get('GREETING', '-')\n"
    )
}

const TASKS: &str =
    "[env]\nGREETING = \"default\"\n\n[processes.tasks]\ncommand = \"echo tasks up; exec sleep 1000\"\n";

/// One GET with its own connection: the status and the body, or what failed.
fn get_once(port: u16, host: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `args` under load; it must succeed.
fn under_load(daemon: &Daemon, host: &'static str, args: &[&str]) -> String {
    // Four clients, each request on a new connection.
    let load = Load::start_fresh(daemon.port, &[(host, "")], 4, Duration::from_secs(150));
    // Let the clients get going before the change.
    std::thread::sleep(Duration::from_millis(300));
    let output = daemon.capstan(args);
    load.finish().assert_clean(1, &args.join(" "));
    assert!(
        output.status.success(),
        "{args:?}: {}\n{}",
        text(&output),
        daemon.stderr()
    );
    text(&output)
}

/// A failing command's message.
fn refused(daemon: &Daemon, args: &[&str]) -> String {
    let output = daemon.capstan(args);
    assert!(
        !output.status.success(),
        "{args:?} worked: {}",
        text(&output)
    );
    text(&output)
}

fn ps(daemon: &Daemon, app: &str) -> serde_json::Value {
    let output = daemon.capstan(&["ps", app, "--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    list["apps"][0]["processes"].clone()
}

fn names(processes: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = processes
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn served(daemon: &Daemon, host: &str) -> String {
    let (status, body) = get_once(daemon.port, host).unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn open_temp() -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    // As root the app runs as its own user, who must reach its folders.
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    temp
}

fn push_ok(checkout: &Checkout, repo: &Path, daemon: &Daemon) -> String {
    let (ok, output) = checkout.push(repo);
    assert!(ok, "{output}\n{}", daemon.stderr());
    output
}

#[test]
fn rollback_restart_env_and_scale_change_a_live_app_without_a_failed_request() {
    const HOST: &str = "ops.example.com";
    let temp = open_temp();
    let root = temp.path().join("root");
    let _user = AppUserGuard("opsblog");
    let mut daemon = Daemon::start(&root);
    let repo = daemon.create_app("opsblog", HOST);
    let checkout = Checkout::new(temp.path(), &greeting_app("one"), TASKS);
    push_ok(&checkout, &repo, &daemon);
    checkout.commit(&greeting_app("two"), "second");
    push_ok(&checkout, &repo, &daemon);
    assert_eq!(served(&daemon, HOST), "two default");

    // Rollback: release 1's code again, no build, while clients hit it.
    let output = under_load(&daemon, HOST, &["rollback", "opsblog"]);
    assert!(output.contains("rolling back to release 1"), "{output}");
    assert!(!output.contains("release command:"), "{output}");
    assert!(output.contains("opsblog release 1 is live"), "{output}");
    assert_eq!(served(&daemon, HOST), "one default");
    let releases = daemon.capstan(&["releases", "opsblog", "--json"]);
    let releases: serde_json::Value = serde_json::from_slice(&releases.stdout).unwrap();
    let live: Vec<u64> = releases["releases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["live"] == true)
        .map(|r| r["number"].as_u64().unwrap())
        .collect();
    assert_eq!(live, [1]);
    let message = refused(&daemon, &["rollback", "opsblog", "1"]);
    assert!(
        message.contains("release 1 of opsblog is already live"),
        "{message}"
    );
    let message = refused(&daemon, &["rollback", "opsblog", "9"]);
    assert!(message.contains("opsblog has no release 9"), "{message}");

    // Restart: new workers for the same release.
    let before: Vec<u64> = ps(&daemon, "opsblog")
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["pid"].as_u64())
        .collect();
    let output = under_load(&daemon, HOST, &["restart", "opsblog"]);
    assert!(output.contains("opsblog release 1 restarted"), "{output}");
    let after = ps(&daemon, "opsblog");
    for process in after.as_array().unwrap() {
        let pid = process["pid"].as_u64().unwrap();
        assert!(
            !before.contains(&pid),
            "pid {pid} is from before the restart"
        );
    }

    // env set: the server's value wins over the app file's [env].
    let output = under_load(
        &daemon,
        HOST,
        &["env", "opsblog", "set", "GREETING=hello there"],
    );
    assert!(output.contains("runs with the new environment"), "{output}");
    assert_eq!(served(&daemon, HOST), "one hello there");
    let env_file = root.join("apps/opsblog/env");
    let meta = std::fs::metadata(&env_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    for release in std::fs::read_dir(root.join("apps/opsblog/releases")).unwrap() {
        let release = release.unwrap().path();
        assert!(!release.join("env").exists(), "{}", release.display());
    }
    let listed = daemon.capstan(&["env", "opsblog", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["vars"]["GREETING"], "hello there");
    let message = refused(&daemon, &["env", "opsblog", "unset", "NOT_SET"]);
    assert!(
        message.contains("NOT_SET is not set on the server for opsblog"),
        "{message}"
    );
    let message = refused(&daemon, &["env", "opsblog", "set", "1BAD=x"]);
    assert!(
        message.contains("not a valid environment variable name"),
        "{message}"
    );
    let message = refused(&daemon, &["env", "opsblog", "set", "NOVALUE"]);
    assert!(message.contains("is not K=V"), "{message}");

    // Scale: 3 workers and 2 copies of tasks.
    let output = under_load(&daemon, HOST, &["scale", "opsblog", "web=3", "tasks=2"]);
    assert!(output.contains("opsblog runs tasks=2 web=3"), "{output}");
    let processes = ps(&daemon, "opsblog");
    assert_eq!(
        names(&processes),
        ["tasks.1", "tasks.2", "web.1", "web.2", "web.3"]
    );
    // The copies share their entry's log file, each line labelled with its copy.
    let logs = root.join("apps/opsblog/logs");
    let deadline = Instant::now() + Duration::from_secs(20);
    let copies_logged = || {
        let log = std::fs::read_to_string(logs.join("tasks.log")).unwrap_or_default();
        ["tasks.1 ", "tasks.2 "].iter().all(|label| {
            log.lines()
                .any(|l| l.contains(label) && l.ends_with("| tasks up"))
        })
    };
    while !copies_logged() {
        assert!(Instant::now() < deadline, "no copy's line in tasks.log");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!logs.join("tasks.1.log").exists());
    let user = nix::unistd::geteuid().is_root().then(|| {
        nix::unistd::User::from_name("capstan-opsblog")
            .unwrap()
            .unwrap()
    });
    for process in processes.as_array().unwrap() {
        let pid = process["pid"].as_u64().expect("a pid") as u32;
        assert_eq!(process["state"], "running");
        assert_eq!(process["release"], 1);
        assert!(process["rss_bytes"].as_u64().unwrap() > 0, "{process}");
        assert!(process["uptime_secs"].as_f64().is_some(), "{process}");
        if let Some(user) = &user {
            assert_eq!(process_uid(pid), Some(user.uid.as_raw()), "{process}");
        }
    }
    let table = daemon.capstan(&["ps"]);
    let table = text(&table);
    assert!(
        table.contains("PID") && table.contains("tasks.2"),
        "{table}"
    );
    let message = refused(&daemon, &["scale", "opsblog", "worker=2"]);
    assert!(
        message.contains("opsblog has no process named worker; it has web, tasks"),
        "{message}"
    );
    let message = refused(&daemon, &["scale", "opsblog", "web=0"]);
    assert!(
        message.contains("the worker count goes from 1 to 1024"),
        "{message}"
    );
    let message = refused(&daemon, &["scale", "opsblog", "tasks=65"]);
    assert!(
        message.contains("a process runs 0 to 64 copies"),
        "{message}"
    );
    let message = refused(&daemon, &["ps", "nosuchapp"]);
    assert!(message.contains("nosuchapp"), "{message}");

    // A restart of the daemon keeps the rollback, the env and the scale.
    let port = daemon.port;
    daemon.stop();
    daemon = Daemon::start_with(&root, port, &[]);
    assert_eq!(served(&daemon, HOST), "one hello there");
    assert_eq!(
        names(&ps(&daemon, "opsblog")),
        ["tasks.1", "tasks.2", "web.1", "web.2", "web.3"]
    );

    // tasks=0 stops it; a deploy keeps the scale.
    under_load(&daemon, HOST, &["scale", "opsblog", "tasks=0"]);
    assert_eq!(names(&ps(&daemon, "opsblog")), ["web.1", "web.2", "web.3"]);
    checkout.commit(&greeting_app("three"), "third");
    push_ok(&checkout, &repo, &daemon);
    assert_eq!(served(&daemon, HOST), "three hello there");
    assert_eq!(names(&ps(&daemon, "opsblog")), ["web.1", "web.2", "web.3"]);
    daemon.stop();
}

#[test]
fn exec_runs_as_the_app_user_and_destroy_removes_everything() {
    const HOST: &str = "gone.example.com";
    let temp = open_temp();
    let root = temp.path().join("root");
    let _user = AppUserGuard("opsgone");
    let daemon = Daemon::start(&root);
    let repo = daemon.create_app("opsgone", HOST);

    let message = refused(&daemon, &["exec", "opsgone", "--", "true"]);
    assert!(
        message.contains("opsgone has no live release to run a command in"),
        "{message}"
    );

    let checkout = Checkout::new(temp.path(), &greeting_app("here"), TASKS);
    push_ok(&checkout, &repo, &daemon);
    let output = under_load(
        &daemon,
        HOST,
        &["env", "opsgone", "set", "GREETING=from the server"],
    );
    assert!(output.contains("runs with the new environment"), "{output}");

    let exec = daemon.capstan(&[
        "exec",
        "opsgone",
        "--",
        "sh",
        "-c",
        "id -u; echo \"$GREETING\"; echo \"$CAPSTAN_DATA_DIR\"; command -v python; exit 7",
    ]);
    assert_eq!(exec.status.code(), Some(7), "{}", text(&exec));
    let stdout = String::from_utf8_lossy(&exec.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    if nix::unistd::geteuid().is_root() {
        let user = nix::unistd::User::from_name("capstan-opsgone")
            .unwrap()
            .unwrap();
        assert_eq!(lines[0], user.uid.as_raw().to_string(), "{stdout}");
    }
    assert_eq!(lines[1], "from the server", "{stdout}");
    let data = root.canonicalize().unwrap().join("apps/opsgone/data");
    assert_eq!(lines[2], data.display().to_string(), "{stdout}");
    assert!(lines[3].contains("/venvs/"), "{stdout}");
    let exec = daemon.capstan(&["exec", "opsgone", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(exec.status.code(), Some(128 + 15), "{}", text(&exec));
    let exec = daemon.capstan(&["exec", "opsgone", "--", "no-such-tool"]);
    assert_eq!(exec.status.code(), Some(127), "{}", text(&exec));
    assert!(
        text(&exec).contains("no command `no-such-tool`"),
        "{}",
        text(&exec)
    );

    let pids: Vec<u32> = ps(&daemon, "opsgone")
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["pid"].as_u64().map(|p| p as u32))
        .collect();
    assert!(!pids.is_empty());

    // Without --yes and without a terminal: refused, nothing removed.
    let message = refused(&daemon, &["apps", "destroy", "opsgone"]);
    assert!(message.contains("pass --yes to confirm"), "{message}");
    assert_eq!(served(&daemon, HOST), "here from the server");

    let output = daemon.capstan(&["apps", "destroy", "opsgone", "--yes"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("destroyed opsgone"));
    let (status, _) = get_once(daemon.port, HOST).unwrap();
    assert_eq!(status, 404);
    assert!(!root.join("apps/opsgone").exists());
    assert!(nix::unistd::User::from_name("capstan-opsgone")
        .unwrap()
        .is_none());
    let deadline = Instant::now() + Duration::from_secs(40);
    while pids.iter().any(|&pid| crate::fixture::alive(pid)) {
        assert!(Instant::now() < deadline, "the app's processes still run");
        std::thread::sleep(Duration::from_millis(50));
    }
    let listed = daemon.capstan(&["apps", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["apps"].as_array().unwrap().len(), 0);
    let message = refused(&daemon, &["restart", "opsgone"]);
    assert!(message.contains("opsgone"), "{message}");
    daemon.stop();
}

#[test]
fn an_operation_during_a_slow_deploy_is_refused_and_rollback_says_what_it_cannot_do() {
    const HOST: &str = "slow.example.com";
    let temp = open_temp();
    let root = temp.path().join("root");
    let _user = AppUserGuard("opsslow");
    let daemon = Daemon::start(&root);
    let repo = daemon.create_app("opsslow", HOST);

    let message = refused(&daemon, &["restart", "opsslow"]);
    assert!(
        message.contains("opsslow has no live release to restart"),
        "{message}"
    );
    let message = refused(&daemon, &["rollback", "opsslow"]);
    assert!(
        message.contains("opsslow has no live release yet"),
        "{message}"
    );
    let message = refused(&daemon, &["scale", "opsslow", "web=2"]);
    assert!(
        message.contains("opsslow has no live release to scale"),
        "{message}"
    );

    let checkout = Checkout::new(
        temp.path(),
        &greeting_app("slow"),
        "[release]\ncommands = [\"sleep 5\"]\n",
    );
    let pusher = {
        let checkout = Checkout {
            work: checkout.work.clone(),
            home: checkout.home.clone(),
        };
        let repo = repo.clone();
        std::thread::spawn(move || checkout.push(&repo))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = daemon.capstan(&["apps", "--json"]);
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        if listed["apps"][0]["state"] == "deploying" {
            break;
        }
        assert!(Instant::now() < deadline, "the deploy did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    for args in [
        &["restart", "opsslow"][..],
        &["env", "opsslow", "set", "A=1"],
        &["scale", "opsslow", "web=2"],
        &["apps", "destroy", "opsslow", "--yes"],
    ] {
        let message = refused(&daemon, args);
        assert!(
            message.contains("a deploy of opsslow is running since"),
            "{args:?}: {message}"
        );
    }
    // A second push in the meantime, from another clone.
    let other = Checkout::new(&temp.path().join("other"), &greeting_app("other"), "");
    let (ok, output) = other.push(&repo);
    assert!(!ok, "{output}");
    assert!(
        output.contains("a deploy of opsslow is running since"),
        "{output}"
    );
    let (ok, output) = pusher.join().unwrap();
    assert!(ok, "{output}");
    assert_eq!(served(&daemon, HOST), "slow -");

    let message = refused(&daemon, &["rollback", "opsslow"]);
    assert!(
        message.contains("opsslow has no built release before 1 to roll back to"),
        "{message}"
    );
    checkout.write(
        "capstan.toml",
        "python = \"/usr/bin/python3\"\n[release]\ncommands = [\"exit 3\"]\n",
    );
    checkout.commit(&greeting_app("broken"), "broken");
    let (ok, output) = checkout.push(&repo);
    assert!(!ok, "{output}");
    let message = refused(&daemon, &["rollback", "opsslow", "2"]);
    assert!(
        message.contains("release 2 of opsslow is a failed build, not a built release"),
        "{message}"
    );
    // Nothing was left running after the refusals.
    let restarted = daemon.capstan(&["restart", "opsslow"]);
    assert!(restarted.status.success(), "{}", text(&restarted));
    daemon.stop();
}

#[test]
fn ps_counts_a_worker_started_again_after_it_was_killed() {
    const HOST: &str = "psblog.example.com";
    let temp = open_temp();
    let _user = AppUserGuard("psblog");
    let daemon = Daemon::start(&temp.path().join("root"));
    let repo = daemon.create_app("psblog", HOST);
    let checkout = Checkout::new(temp.path(), &greeting_app("one"), "[web]\nworkers = 2\n");
    push_ok(&checkout, &repo, &daemon);
    let web = |processes: &serde_json::Value, name: &str| {
        processes
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    };
    let before = ps(&daemon, "psblog");
    let first = web(&before, "web.1").expect("web.1 runs");
    assert_eq!(first["restarts"], 0, "{before}");
    let pid = first["pid"].as_u64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = ps(&daemon, "psblog");
        if let Some(again) = web(&now, "web.1") {
            if again["pid"].as_u64() != Some(pid as u64) {
                assert_eq!(again["restarts"], 1, "{now}");
                assert_eq!(web(&now, "web.2").unwrap()["restarts"], 0, "{now}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "web.1 was not started again: {now}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(served(&daemon, HOST), "one -");
    daemon.stop();
}
