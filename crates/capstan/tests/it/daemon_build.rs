//! `capstan daemon` deploys with `[build]` commands: they run in the new
//! release as the app's user, then the release is sealed (root's, read-only
//! to that user, no planted link followed); a failing build rejects the push.
//! Also cron in the daemon and `[static] keep_previous` across a switch.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::daemon_support::{AppUserGuard, Checkout, Daemon};
use crate::fixture;

/// A Flask app that shows what its build wrote, and says whether it can
/// write into its own release folder.
const BUILT_APP: &str = r#"import os
from flask import Flask
app = Flask(__name__)
HERE = os.path.dirname(os.path.abspath(__file__))

@app.get('/')
def index():
    with open(os.path.join(HERE, 'built.txt')) as f:
        return f.read().strip()

@app.get('/write')
def write():
    answers = []
    for path in ['scribble.txt', 'built.txt', 'static/scribble.css']:
        try:
            with open(os.path.join(HERE, path), 'a') as f:
                f.write('x')
            answers.append('wrote ' + path)
        except OSError:
            answers.append('denied ' + path)
    return ', '.join(answers)
"#;

async fn get(daemon: &Daemon, host: &str, path: &str) -> (u16, String) {
    let response = fixture::client()
        .get(format!("http://127.0.0.1:{}{path}", daemon.port))
        .header("Host", host)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A temp folder every app user can reach (the daemon runs as root).
fn reachable_temp() -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    temp
}

fn rev_parse(repo: &Path, home: &Path) -> String {
    let out = crate::daemon_support::git(repo, home, &["rev-parse", "refs/heads/main"]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn release_dirs(root: &Path, app: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("apps").join(app).join("releases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    dirs.sort();
    dirs
}

#[tokio::test]
async fn a_build_writes_into_its_release_which_is_then_sealed_and_a_failing_build_is_rejected() {
    if !nix::unistd::geteuid().is_root() {
        return; // app users, and so the seal's owner change, need root
    }
    let temp = reachable_temp();
    let root = temp.path().join("root");
    let _user = AppUserGuard("buildblog");
    // Outside every release: the build links to it, the seal must not touch it.
    let outside = temp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), "keep out").unwrap();
    std::fs::set_permissions(
        outside.join("secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let daemon = Daemon::start(&root);
    let repo = daemon.create_app("buildblog", "build.example.com");

    let build = format!(
        "[build]\ncommands = [\"echo built by $(id -un) in $PWD > built.txt\", \
         \"ln -s {} planted && ln -s {}/secret planted-file && echo linked\"]\n",
        outside.display(),
        outside.display()
    );
    let checkout = Checkout::new(temp.path(), BUILT_APP, &build);
    let (ok, output) = checkout.push(&repo);
    assert!(ok, "{output}\n{}", daemon.stderr());
    assert!(output.contains("build command: echo built by"), "{output}");
    assert!(output.contains("  linked"), "{output}");
    assert!(output.contains("build command done ("), "{output}");
    assert!(output.contains("build commands done ("), "{output}");
    assert!(output.contains("release sealed ("), "{output}");
    let build_at = output.find("build commands done").unwrap();
    let health_at = output.find("health check passed").unwrap();
    assert!(build_at < health_at, "{output}");
    let release = release_dirs(&root, "buildblog").pop().unwrap();
    let (status, page) = get(&daemon, "build.example.com", "/").await;
    assert_eq!(status, 200);
    assert_eq!(
        page,
        format!("built by capstan-buildblog in {}", release.display())
    );

    // Sealed: root's, and the app's own workers cannot write into it.
    let meta = std::fs::metadata(release.join("built.txt")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o444));
    assert_eq!(std::fs::metadata(&release).unwrap().uid(), 0);
    let (status, page) = get(&daemon, "build.example.com", "/write").await;
    assert_eq!(status, 200);
    assert_eq!(
        page,
        "denied scribble.txt, denied built.txt, denied static/scribble.css"
    );
    // The planted links are still links, and what they point at is untouched.
    assert!(std::fs::symlink_metadata(release.join("planted"))
        .unwrap()
        .file_type()
        .is_symlink());
    for path in [outside.clone(), outside.join("secret")] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.uid(), 0, "{}", path.display());
    }
    assert_eq!(
        std::fs::metadata(outside.join("secret")).unwrap().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::metadata(&outside).unwrap().mode() & 0o777, 0o755);

    // A bad app file fails first, with its file and line.
    let before = rev_parse(&repo, &checkout.home);
    checkout.write(
        "capstan.toml",
        &format!(
            "{}[build]\ncommand = \"make\"\n",
            crate::daemon_support::SYSTEM_PYTHON
        ),
    );
    checkout.commit(BUILT_APP, "bad app file");
    let (ok, output) = checkout.push(&repo);
    assert!(!ok, "{output}");
    assert!(
        output.contains("release 2 failed: capstan.toml:3: unknown key `command` in [build]"),
        "{output}"
    );
    assert!(!output.contains("venv "), "{output}");
    assert_eq!(rev_parse(&repo, &checkout.home), before);

    // A failing build: rejected, the ref unchanged, the old release serving.
    checkout.write(
        "capstan.toml",
        &format!(
            "{}[build]\ncommands = [\"echo compiling; echo the compiler broke >&2; exit 4\", \
             \"echo never runs\"]\n",
            crate::daemon_support::SYSTEM_PYTHON
        ),
    );
    checkout.commit(BUILT_APP, "build breaks");
    let (ok, output) = checkout.push(&repo);
    assert!(!ok, "{output}");
    assert!(output.contains("  the compiler broke"), "{output}");
    assert!(!output.contains("never runs"), "{output}");
    assert!(
        output.contains("release 3 failed: the build command `echo compiling; echo the compiler broke >&2; exit 4` exited with status 4 (its output is above)"),
        "{output}"
    );
    assert!(output.contains("release 1 is still serving"), "{output}");
    assert!(!output.contains("health check passed"), "{output}");
    assert_eq!(rev_parse(&repo, &checkout.home), before);
    let (status, page) = get(&daemon, "build.example.com", "/").await;
    assert_eq!((status, page.starts_with("built by")), (200, true));
    assert_eq!(release_dirs(&root, "buildblog"), [release]);
    let releases = daemon.capstan(&["releases", "buildblog", "--json"]);
    let releases = String::from_utf8_lossy(&releases.stdout).into_owned();
    assert!(releases.contains("failed"), "{releases}");
    daemon.stop();
}

#[tokio::test]
async fn cron_runs_in_the_daemon_as_the_app_user_in_the_live_release_and_moves_with_a_deploy() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let temp = reachable_temp();
    let root = temp.path().join("root");
    let _user = AppUserGuard("cronblog");
    let daemon = Daemon::start(&root);
    let repo = daemon.create_app("cronblog", "cron.example.com");
    let cron = "[cron.tick]\nschedule = \"* * * * *\"\n\
                command = \"echo $(date +%H:%M) $(id -un) $PWD >> $CAPSTAN_DATA_DIR/ticks; echo tick done\"\n";
    let checkout = Checkout::new(temp.path(), &crate::daemon_support::flask_app("one"), cron);
    let (ok, output) = checkout.push(&repo);
    assert!(ok, "{output}\n{}", daemon.stderr());
    let first = release_dirs(&root, "cronblog").pop().unwrap();
    let ticks = root.join("apps/cronblog/data/ticks");
    let read = || std::fs::read_to_string(&ticks).unwrap_or_default();
    // Minute-granular: the first fire comes within 61 s of the deploy.
    let wait_for = |dir: &Path| {
        let deadline = Instant::now() + Duration::from_secs(75);
        let want = format!(" capstan-cronblog {}", dir.display());
        while !read().lines().any(|l| l.ends_with(&want)) {
            assert!(
                Instant::now() < deadline,
                "no run in {}: {:?}\n{}",
                dir.display(),
                read(),
                daemon.stderr()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for(&first);

    checkout.commit(&crate::daemon_support::flask_app("two"), "second");
    let (ok, output) = checkout.push(&repo);
    assert!(ok, "{output}\n{}", daemon.stderr());
    let second = release_dirs(&root, "cronblog").pop().unwrap();
    assert_ne!(first, second);
    let runs_before = read().lines().count();
    wait_for(&second);
    let lines: Vec<String> = read().lines().map(str::to_owned).collect();
    // After the switch only the new release runs it, and no minute ran twice.
    assert!(
        lines[runs_before..]
            .iter()
            .all(|l| l.ends_with(&second.display().to_string())),
        "{lines:?}"
    );
    let mut minutes: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    minutes.dedup();
    assert_eq!(
        minutes.len(),
        lines.len(),
        "a minute fired twice: {lines:?}"
    );
    // Each run's output is in its own log file, and ps shows the last run.
    let log = std::fs::read_to_string(root.join("apps/cronblog/logs/cron.tick.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains(" cron.tick") && l.ends_with("| tick done")),
        "{log}"
    );
    let ps = daemon.capstan(&["ps", "cronblog", "--json"]);
    let ps: serde_json::Value = serde_json::from_slice(&ps.stdout).unwrap();
    let job = &ps["apps"][0]["cron"][0];
    assert_eq!(job["name"], "tick", "{ps}");
    assert_eq!(job["last_run"]["status"], "exited with status 0", "{ps}");
    let table = daemon.capstan(&["ps", "cronblog"]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains("cron.tick") && table.contains("last: exited with status 0"),
        "{table}"
    );
    daemon.stop();
}

#[tokio::test]
async fn keep_previous_serves_an_asset_the_new_release_removed_until_it_expires() {
    let temp = reachable_temp();
    let root = temp.path().join("root");
    let _user = AppUserGuard("assetblog");
    let daemon = Daemon::start(&root);
    let repo = daemon.create_app("assetblog", "assets.example.com");
    let routes = "[static]\n\"/static\" = \"static\"\n";
    let app = crate::daemon_support::flask_app("page");
    let checkout = Checkout::new(temp.path(), &app, routes);
    checkout.write("static/app-v1.css", "v1");
    checkout.commit(&app, "v1");
    let (ok, output) = checkout.push(&repo);
    assert!(ok, "{output}\n{}", daemon.stderr());
    let host = "assets.example.com";
    assert_eq!(
        get(&daemon, host, "/static/app-v1.css").await,
        (200, "v1".into())
    );

    // Release 2 renames the asset; the default keeps release 1's for an hour.
    std::fs::remove_file(checkout.work.join("static/app-v1.css")).unwrap();
    checkout.write("static/app-v2.css", "v2");
    checkout.commit(&app, "v2");
    let (ok, output) = checkout.push(&repo);
    assert!(ok, "{output}");
    assert_eq!(
        get(&daemon, host, "/static/app-v2.css").await,
        (200, "v2".into())
    );
    assert_eq!(
        get(&daemon, host, "/static/app-v1.css").await,
        (200, "v1".into())
    );
    assert_eq!(get(&daemon, host, "/static/app-v0.css").await.0, 404);

    // Release 3 keeps release 2's for 2 s only, and never release 1's.
    std::fs::remove_file(checkout.work.join("static/app-v2.css")).unwrap();
    checkout.write("static/app-v3.css", "v3");
    checkout.write(
        "capstan.toml",
        &format!(
            "{}{routes}keep_previous = \"2s\"\n",
            crate::daemon_support::SYSTEM_PYTHON
        ),
    );
    checkout.commit(&app, "v3");
    let (ok, output) = checkout.push(&repo);
    assert!(ok, "{output}");
    assert_eq!(
        get(&daemon, host, "/static/app-v3.css").await,
        (200, "v3".into())
    );
    assert_eq!(get(&daemon, host, "/static/app-v1.css").await.0, 404);
    let deadline = Instant::now() + Duration::from_secs(15);
    while get(&daemon, host, "/static/app-v2.css").await.0 != 404 {
        assert!(Instant::now() < deadline, "release 2's asset still served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daemon.stop();
}

#[tokio::test]
async fn capstan_run_runs_build_commands_before_release_commands_in_the_app_folder() {
    let app = fixture::app_with(&[
        (
            "app.py",
            "from flask import Flask\napp = Flask(__name__)\n\n@app.get('/')\ndef index():\n    return open('steps.txt').read()\n",
        ),
        (
            "capstan.toml",
            "[web]\nwsgi = \"app:app\"\n[build]\ncommands = [\"echo built > steps.txt\", \"echo said by the build\"]\n\
             [release]\ncommands = [\"echo released >> steps.txt\"]\n",
        ),
    ]);
    let server = fixture::Server::start(app.path(), fixture::Opts::default());
    let page = fixture::get(&server, "/").await.text().await.unwrap();
    assert_eq!(page, "built\nreleased\n");
    let stderr = server.stderr();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains(" build ") && l.ends_with("| said by the build")),
        "{stderr}"
    );
    server.stop(Duration::from_secs(20));

    // A failing build command stops capstan run before anything starts.
    std::fs::write(
        app.path().join("capstan.toml"),
        "[web]\nwsgi = \"app:app\"\n[build]\ncommands = [\"exit 5\"]\n",
    )
    .unwrap();
    let venv = fixture::flask_venv();
    let listen = format!("127.0.0.1:{}", fixture::free_port());
    let (status, stderr) = fixture::run_to_exit(
        &[
            "run",
            app.path().to_str().unwrap(),
            "--listen",
            &listen,
            "--venv",
            venv.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(!status.success());
    assert!(
        stderr.contains("the build command `exit 5` exited with status 5, so nothing was started"),
        "{stderr}"
    );
    assert!(!stderr.contains("starting workers"), "{stderr}");
}
