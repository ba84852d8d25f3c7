//! `capstan daemon`: apps created through the control socket, deployed by a
//! real `git push` to their repository, served by Host, brought back after a
//! restart.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon_support::{commit, flask_app, git, process_uid, AppUserGuard, Daemon};
use crate::fixture::{self, capstan};

#[tokio::test]
async fn a_pushed_app_is_live_by_host_a_broken_push_is_rejected_and_a_restart_serves_it_again() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("root");
    let home = temp.path().join("home");
    let work = temp.path().join("work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    // As root the app runs as capstan-pushblog, who must reach its folders.
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let _user = AppUserGuard("pushblog");
    let daemon = Daemon::start(&root);

    let created = daemon.capstan(&["apps", "create", "pushblog", "--domain", "blog.example.com"]);
    assert!(created.status.success(), "{created:?}");
    let repo = root.join("apps/pushblog/repo.git");
    assert!(String::from_utf8_lossy(&created.stdout).contains("git push"));

    // The same requirements as the shared test venv: one store venv, built once.
    std::fs::copy(
        fixture::workspace().join("examples/hello/requirements.txt"),
        work.join("requirements.txt"),
    )
    .unwrap();
    // The system's Python: one under root's home (pyenv) is out of the app
    // user's reach when the daemon runs as root.
    let python = "python = \"/usr/bin/python3\"\n";
    std::fs::write(work.join("capstan.toml"), python).unwrap();
    assert!(git(&work, &home, &["init", "-q", "-b", "main"])
        .status
        .success());
    commit(&work, &home, &flask_app("first"), "first");
    let push = git(&work, &home, &["push", repo.to_str().unwrap(), "main"]);
    let output = String::from_utf8_lossy(&push.stderr).into_owned();
    assert!(push.status.success(), "{output}\n{}", daemon.stderr());
    assert!(output.contains("building release 1 ("), "{output}");
    assert!(output.contains("venv "), "{output}");
    assert!(output.contains("health check passed"), "{output}");
    assert!(
        output.contains(&format!(
            "pushblog release 1 is live at http://blog.example.com:{}",
            daemon.port
        )),
        "{output}"
    );
    assert_eq!(daemon.get("blog.example.com").await, (200, "first".into()));
    let (status, page) = daemon.get("other.example.com").await;
    assert_eq!(status, 404);
    assert!(!page.contains("first"), "{page}");

    let first_generation = daemon.processes();
    assert!(!first_generation.is_empty());
    if nix::unistd::geteuid().is_root() {
        let user = nix::unistd::User::from_name("capstan-pushblog")
            .unwrap()
            .unwrap();
        for pid in &first_generation {
            assert_eq!(
                process_uid(*pid),
                Some(user.uid.as_raw()),
                "pid {pid} is not the app's user"
            );
        }
    }

    let listed = daemon.capstan(&["apps", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["apps"][0]["live_release"], 1);
    assert_eq!(listed["apps"][0]["state"], "running");

    std::fs::write(
        work.join("capstan.toml"),
        format!("{python}[release]\ncommands = [\"echo migrating into $CAPSTAN_DATA_DIR\"]\n"),
    )
    .unwrap();
    commit(&work, &home, &flask_app("second"), "second");
    let push = git(&work, &home, &["push", repo.to_str().unwrap(), "main"]);
    let output = String::from_utf8_lossy(&push.stderr).into_owned();
    assert!(push.status.success(), "{output}");
    assert!(output.contains("venv reused"), "{output}");
    assert!(
        output.contains("release command: echo migrating into $CAPSTAN_DATA_DIR"),
        "{output}"
    );
    let data = root.canonicalize().unwrap().join("apps/pushblog/data");
    assert!(
        output.contains(&format!("migrating into {}", data.display())),
        "{output}"
    );
    assert!(output.contains("pushblog release 2 is live"), "{output}");
    assert!(output.contains("(previous: 1, draining)"), "{output}");
    assert_eq!(daemon.get("blog.example.com").await, (200, "second".into()));
    // The first generation drained: its workers are gone.
    let deadline = Instant::now() + Duration::from_secs(40);
    while first_generation.iter().any(|&pid| fixture::alive(pid)) {
        assert!(Instant::now() < deadline, "release 1's workers still run");
        std::thread::sleep(Duration::from_millis(50));
    }

    std::fs::write(
        work.join("capstan.toml"),
        format!("{python}[release]\ncommands = [\"echo the migration broke; exit 3\"]\n"),
    )
    .unwrap();
    commit(&work, &home, &flask_app("third"), "migration fails");
    let push = git(&work, &home, &["push", repo.to_str().unwrap(), "main"]);
    let output = String::from_utf8_lossy(&push.stderr).into_owned();
    assert!(!push.status.success(), "{output}");
    assert!(output.contains("the migration broke"), "{output}");
    assert!(output.contains("release 3 failed"), "{output}");
    assert!(output.contains("release 2 is still serving"), "{output}");
    assert_eq!(daemon.get("blog.example.com").await, (200, "second".into()));

    std::fs::write(work.join("capstan.toml"), python).unwrap();
    commit(&work, &home, "import not_a_module\napp = None\n", "broken");
    let push = git(&work, &home, &["push", repo.to_str().unwrap(), "main"]);
    let output = String::from_utf8_lossy(&push.stderr).into_owned();
    assert!(!push.status.success(), "{output}");
    assert!(output.contains("release 4 failed"), "{output}");
    assert!(output.contains("not_a_module"), "{output}");
    assert!(output.contains("release 2 is still serving"), "{output}");
    let head = git(&repo, &home, &["rev-parse", "refs/heads/main"]);
    let local = git(&work, &home, &["rev-parse", "HEAD~2"]);
    assert_eq!(
        head.stdout, local.stdout,
        "the ref moved to the broken commit"
    );
    assert_eq!(daemon.get("blog.example.com").await, (200, "second".into()));

    let listed = daemon.capstan(&["releases", "pushblog", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let releases = listed["releases"].as_array().unwrap();
    let summary: Vec<(u64, &str, bool)> = releases
        .iter()
        .map(|r| {
            (
                r["number"].as_u64().unwrap(),
                r["status"].as_str().unwrap(),
                r["live"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "ready", false),
            (2, "ready", true),
            (3, "failed", false),
            (4, "failed", false)
        ]
    );
    assert_eq!(releases[1]["message"], "second");
    let table = daemon.capstan(&["releases", "pushblog"]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("* 2 ") && l.ends_with(" second")),
        "{table}"
    );

    daemon.stop();
    let daemon = Daemon::start(&root);
    assert_eq!(daemon.get("blog.example.com").await, (200, "second".into()));
    daemon.stop();
}

#[test]
fn apps_on_a_new_daemon_says_how_to_make_one() {
    let temp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(temp.path());
    // Whoever runs the tests, the log says once whose user the apps run as.
    let says = |text: &str| daemon.stderr().matches(text).count();
    assert_eq!(
        says("running as root: each app") + says("not running as root: every app"),
        1
    );
    let out = daemon.capstan(&["apps"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("capstan apps create NAME --domain DOMAIN"),
        "{out:?}"
    );
    daemon.stop();
}

/// `capstan daemon --root ROOT ARGS...`, which must exit: its status and stderr.
fn daemon_exit(root: &Path, args: &[&str]) -> (std::process::ExitStatus, String) {
    let root = root.to_str().unwrap();
    let mut all = vec!["daemon", "--root", root];
    all.extend_from_slice(args);
    fixture::run_to_exit(&all, Duration::from_secs(30))
}

#[test]
fn a_busy_port_stops_the_daemon_before_anything_starts() {
    let temp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, stderr) = daemon_exit(temp.path(), &["--listen", &addr]);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("{addr} is already in use")),
        "{stderr}"
    );
    assert!(!temp.path().join("control.sock").exists());
}

#[test]
fn a_bad_settings_file_stops_the_daemon_naming_its_line() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(
        temp.path().join("capstan.toml"),
        "# the daemon's settings\nlisten = \"port 80\"\n",
    )
    .unwrap();
    let (status, stderr) = daemon_exit(temp.path(), &[]);
    assert!(!status.success());
    assert!(
        stderr.contains("capstan.toml:2: bad value for `listen`: \"port 80\" is not an address"),
        "{stderr}"
    );
}

#[test]
fn the_listen_setting_is_used_and_the_flag_overrides_it() {
    let temp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    std::fs::write(
        temp.path().join("capstan.toml"),
        format!("listen = \"{addr}\"\n"),
    )
    .unwrap();
    // The file's address is the busy one...
    let (status, stderr) = daemon_exit(temp.path(), &[]);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("{addr} is already in use")),
        "{stderr}"
    );
    // ...and the flag's is used instead of it.
    let daemon = Daemon::start(temp.path());
    assert!(daemon
        .stderr()
        .contains(&format!("127.0.0.1:{}", daemon.port)));
    daemon.stop();
}

#[test]
fn an_app_name_or_domain_taken_already_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(temp.path());
    let create =
        |name: &str, domain: &str| daemon.capstan(&["apps", "create", name, "--domain", domain]);
    assert!(create("blog", "blog.example.com").status.success());
    let again = create("blog", "other.example.com");
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("an app named blog exists already"),
        "{stderr}"
    );
    let taken = create("shop", "Blog.Example.com");
    assert!(!taken.status.success());
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert!(
        stderr.contains("blog.example.com is a domain of the app blog already"),
        "{stderr}"
    );
    let listed = daemon.capstan(&["apps"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("blog") && listed.contains("new"),
        "{listed}"
    );
    assert!(!listed.contains("shop"), "{listed}");
    daemon.stop();
}

#[test]
fn the_server_commands_without_a_daemon_say_how_to_start_one() {
    let temp = tempfile::tempdir().unwrap();
    let out = Command::new(capstan())
        .args(["apps", "--root"])
        .arg(temp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no capstan daemon is running"), "{stderr}");
}

#[tokio::test]
async fn an_operation_on_an_app_that_does_not_exist_is_answered_so() {
    let temp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(temp.path());
    let client = capstan_control::Client::connect(temp.path()).await.unwrap();
    let app = capstan_config::AppName::new("blog").unwrap();
    let Err(error) = client
        .stream(&capstan_control::api::Rollback { app, to: None })
        .await
    else {
        panic!("rollback was accepted");
    };
    let message = error.to_string();
    assert!(
        message.contains("there is no app called \"blog\" on this server"),
        "{message}"
    );
    daemon.stop();
}
