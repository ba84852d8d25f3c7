//! The daemon under constant load: consecutive deploys of two apps, deploys
//! that fail at each step, a SIGKILL of the daemon and its restart; and the
//! control socket against a user who may not use it.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::daemon_support::{flask_app, git, AppUserGuard, Checkout, Daemon};
use crate::fixture::{self, capstan};
use crate::load::Load;

/// The longest any load here may run.
const LOAD_LIMIT: Duration = Duration::from_secs(600);

/// A temp folder the app users may enter (as root they run the workers).
fn reachable_temp() -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    temp
}

/// A Flask app whose `/` answers `text` and whose `/health` answers `health`.
fn app_with_health(text: &str, health: u16) -> String {
    format!(
        "{}\n@app.get('/health')\ndef health():\n    return 'health', {health}\n",
        flask_app(text)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_deploys_of_two_apps_under_load_lose_no_request_and_never_mix_their_hosts() {
    let temp = reachable_temp();
    let _users = (AppUserGuard("loada"), AppUserGuard("loadb"));
    let daemon = Daemon::start(&temp.path().join("root"));
    let repo_a = daemon.create_app("loada", "a.example.com");
    let repo_b = daemon.create_app("loadb", "b.example.com");
    let a = Checkout::new(&temp.path().join("a"), &flask_app("a-1"), "");
    let b = Checkout::new(&temp.path().join("b"), &flask_app("b-1"), "");
    for (checkout, repo) in [(&a, &repo_a), (&b, &repo_b)] {
        let (ok, output) = checkout.push(repo);
        assert!(ok, "{output}\n{}", daemon.stderr());
    }

    let load = Load::start(
        daemon.port,
        &[("a.example.com", "a-"), ("b.example.com", "b-")],
        2,
        LOAD_LIMIT,
    );
    for deploy in 2..=11 {
        let (checkout, repo, host, text) = match deploy % 2 {
            0 => (&a, &repo_a, "a.example.com", format!("a-{deploy}")),
            _ => (&b, &repo_b, "b.example.com", format!("b-{deploy}")),
        };
        checkout.commit(&flask_app(&text), &text);
        let (ok, output) = checkout.push(repo);
        assert!(ok, "deploy {deploy}: {output}\n{}", daemon.stderr());
        assert_eq!(daemon.get(host).await, (200, text));
    }
    let tally = load.finish();
    tally.assert_clean(200, "ten deploys");

    let (status, page) = daemon.get("c.example.com").await;
    assert_eq!(status, 404);
    assert!(!page.contains("a-") && !page.contains("b-"), "{page}");
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_failing_at_any_step_keeps_the_ref_and_the_live_release_under_load() {
    let temp = reachable_temp();
    let _user = AppUserGuard("failing");
    let daemon = Daemon::start(&temp.path().join("root"));
    let repo = daemon.create_app("failing", "fail.example.com");
    let health = "[health]\npath = \"/health\"\ntimeout = \"2s\"\nretries = 1\n";
    let checkout = Checkout::new(temp.path(), &app_with_health("live", 200), health);
    let (ok, output) = checkout.push(&repo);
    assert!(ok, "{output}\n{}", daemon.stderr());
    let live_ref = git(&repo, &checkout.home, &["rev-parse", "refs/heads/main"]).stdout;

    let load = Load::start(daemon.port, &[("fail.example.com", "live")], 3, LOAD_LIMIT);
    let python = crate::daemon_support::SYSTEM_PYTHON;
    let cases: [(&str, String, String, &[&str]); 3] = [
        (
            "an import error",
            format!("{python}{health}"),
            "import not_a_module\n".to_owned() + &app_with_health("broken", 200),
            &["No module named 'not_a_module'"],
        ),
        (
            "a failing migration",
            format!("{python}{health}[release]\ncommands = [\"echo no such table; exit 4\"]\n"),
            app_with_health("migrated", 200),
            &["no such table", "release command"],
        ),
        (
            "a failing health check",
            format!("{python}{health}"),
            app_with_health("unhealthy", 500),
            &["/health", "500"],
        ),
    ];
    for (what, toml, app_py, expected) in cases {
        checkout.write("capstan.toml", &toml);
        checkout.commit(&app_py, what);
        let (ok, output) = checkout.push(&repo);
        assert!(!ok, "{what} was deployed: {output}");
        for text in expected {
            assert!(output.contains(text), "{what}: no {text:?} in\n{output}");
        }
        assert!(
            output.contains("release 1 is still serving"),
            "{what}: {output}"
        );
        let head = git(&repo, &checkout.home, &["rev-parse", "refs/heads/main"]).stdout;
        assert_eq!(head, live_ref, "{what} moved the ref");
        assert_eq!(daemon.get("fail.example.com").await, (200, "live".into()));
    }
    load.finish().assert_clean(50, "failing deploys");
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_leaves_no_process_and_its_next_start_serves_every_app() {
    let temp = reachable_temp();
    let _users = (AppUserGuard("killa"), AppUserGuard("killb"));
    let root = temp.path().join("root");
    let port = fixture::free_port();
    let mut daemon = Daemon::start_with(&root, port, &[]);
    for (name, text) in [("killa", "killed-a"), ("killb", "killed-b")] {
        let repo = daemon.create_app(name, &format!("{name}.example.com"));
        let checkout = Checkout::new(&temp.path().join(name), &flask_app(text), "");
        let (ok, output) = checkout.push(&repo);
        assert!(ok, "{output}\n{}", daemon.stderr());
    }
    let targets = [
        ("killa.example.com", "killed-a"),
        ("killb.example.com", "killed-b"),
    ];
    // Requests in flight when the daemon dies fail; what matters is what is
    // left behind and what the next daemon serves.
    let load = Load::start(port, &targets, 1, LOAD_LIMIT);
    let started = Instant::now();
    while load.ok() < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no load got through"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let children = daemon.processes();
    assert!(children.len() >= 2, "{children:?}");
    let mut child = daemon.child.take().unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while children.iter().any(|&pid| fixture::alive(pid)) {
        let left: Vec<u32> = children
            .iter()
            .copied()
            .filter(|&p| fixture::alive(p))
            .collect();
        assert!(
            Instant::now() < deadline,
            "left running after SIGKILL: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(load.finish());

    let daemon = Daemon::start_with(&root, port, &[]);
    for (host, text) in targets {
        assert_eq!(daemon.get(host).await, (200, text.to_owned()));
    }
    let load = Load::start(port, &targets, 2, Duration::from_secs(3));
    std::thread::sleep(Duration::from_secs(3));
    load.finish().assert_clean(20, "after the restart");
    daemon.stop();
}

#[test]
fn the_control_socket_refuses_a_user_outside_the_capstan_group() {
    let temp = reachable_temp();
    let root = temp.path().join("root");
    let daemon = Daemon::start(&root);
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The binary where `nobody` can run it: the build folder may be closed.
    let bin = temp.path().join("capstan");
    std::fs::copy(capstan(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&bin)
            .args(args)
            .env("CAPSTAN_ROOT", &root)
            .output()
            .unwrap()
    };
    for args in [
        &["apps"][..],
        &["apps", "create", "intruder", "--domain", "x.example.com"],
    ] {
        let refused = as_nobody(args);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success(),
            "{args:?} was let through: {refused:?}"
        );
        assert!(
            stderr.contains("you may not use the control socket")
                && stderr.contains("capstan group"),
            "{args:?}: {stderr}"
        );
    }
    assert!(!root.join("apps/intruder").exists());
    // Root still gets in.
    assert!(daemon.capstan(&["apps"]).status.success());
    daemon.stop();
}
