//! Apps shaped like real ones, in a venv with what they use (Flask-SQLAlchemy,
//! Flask-Migrate, Flask-Babel, Django): release commands create their tables
//! before serving, `capstan exec` runs their tools, and the static folders the
//! app itself declares are served by the front with the 30-day cache.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fixture::{self, app_copy, app_with, client, get, real_apps_venv, Opts, Server};

/// What the front says on a static file: Flask would say `no-cache`.
const FRONT_CACHE: &str = "public, max-age=2592000";

fn with_venv(venv: &Path) -> Opts {
    Opts {
        no_venv_flag: true,
        args: vec!["--venv".into(), venv.display().to_string()],
        ..Opts::default()
    }
}

/// What `capstan exec` printed and how it ended.
struct Exec {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `capstan exec DIR --venv VENV -- CMD...` to its end (bounded in time).
fn exec(dir: &Path, venv: &Path, command: &[&str]) -> Exec {
    let mut child = Command::new(fixture::capstan())
        .arg("exec")
        .arg(dir)
        .arg("--venv")
        .arg(venv)
        .arg("--")
        .args(command)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("capstan exec {command:?} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Exec {
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// `POST /posts` with `body`: the microblog's write.
async fn post_a_post(server: &Server, body: &'static str) -> reqwest::Response {
    client()
        .post(server.url("/posts"))
        .body(body)
        .send()
        .await
        .unwrap()
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap()
}

// ---- Flask, shaped like the tutorial ----

#[tokio::test]
async fn a_tutorial_flask_app_gets_its_table_from_the_release_command_before_it_serves() {
    let app = app_copy("microblog");
    let server = Server::start(app.path(), with_venv(&real_apps_venv()));
    let stderr = server.stderr();
    let release = stderr
        .find("release: `flask db upgrade` done")
        .unwrap_or_else(|| panic!("no release line:\n{stderr}"));
    let workers = stderr.find("starting workers").unwrap();
    assert!(
        release < workers,
        "release ran after the workers:\n{stderr}"
    );
    assert!(
        stderr.contains("release | INFO  [alembic.runtime.migration] Running upgrade"),
        "the command's output is labelled release:\n{stderr}"
    );

    let response = post_a_post(&server, "first post").await;
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["bodies"], serde_json::json!(["first post"]));
}

#[tokio::test]
async fn flask_static_folders_of_the_app_and_its_blueprints_are_served_by_the_front() {
    let app = app_copy("microblog");
    let server = Server::start(app.path(), with_venv(&real_apps_venv()));
    assert!(
        server.stderr().contains(
            "serving /static from app/static, /main-static from app/main/static (reported by the app)"
        ),
        "{}",
        server.stderr()
    );
    for (path, file) in [
        ("/static/style.css", "app/static/style.css"),
        ("/main-static/main.js", "app/main/static/main.js"),
    ] {
        let response = get(&server, path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["cache-control"], FRONT_CACHE, "{path}");
        let expected = std::fs::read_to_string(app.path().join(file)).unwrap();
        assert_eq!(response.text().await.unwrap(), expected, "{path}");
    }
    let missing = get(&server, "/static/missing.css").await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_blueprint_static_prefix_that_the_app_also_routes_is_left_to_flask() {
    let app = app_copy("microblog");
    let server = Server::start(app.path(), with_venv(&real_apps_venv()));
    assert!(
        server.stderr().contains(
            "leaving /admin/static (admin.static) to Flask: the app also routes /admin/static/report under it"
        ),
        "{}",
        server.stderr()
    );
    let view = get(&server, "/admin/static/report").await;
    assert_eq!(view.status(), 200);
    assert_eq!(view.text().await.unwrap(), "a view under the static prefix");
    let file = get(&server, "/admin/static/admin.css").await;
    assert_eq!(file.status(), 200);
    assert_eq!(
        file.headers()["cache-control"],
        "no-cache",
        "Flask serves it"
    );
}

#[tokio::test]
async fn the_static_folders_are_asked_once_per_generation_and_served_after_a_reload() {
    let app = app_copy("microblog");
    let server = Server::start(app.path(), with_venv(&real_apps_venv()));
    let (status, output) = fixture::run_to_exit(
        &["reload", app.path().to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert!(status.success(), "{output}");
    let css = get(&server, "/static/style.css").await;
    assert_eq!(css.headers()["cache-control"], FRONT_CACHE);
    // Two workers and a reload: a reload is a new generation, whose static
    // routes are what its own workers found, so one look at start and one at
    // the reload, each by one worker.
    let skips = server.stderr().matches("leaving /admin/static").count();
    assert_eq!(skips, 2, "{}", server.stderr());
}

#[tokio::test]
async fn a_static_route_in_the_app_file_wins_over_the_folder_the_app_reports() {
    let app = app_copy("microblog");
    std::fs::create_dir(app.path().join("public")).unwrap();
    std::fs::write(app.path().join("public/style.css"), "from public\n").unwrap();
    let toml = std::fs::read_to_string(app.path().join("capstan.toml")).unwrap();
    std::fs::write(
        app.path().join("capstan.toml"),
        toml + "\n[static]\n\"/static\" = { dir = \"public\", max_age = \"1h\" }\n",
    )
    .unwrap();
    let server = Server::start(app.path(), with_venv(&real_apps_venv()));
    let expected = "the app serves /static from app/static, but the app file serves that \
                    prefix from public, which wins";
    assert!(server.stderr().contains(expected), "{}", server.stderr());
    let response = get(&server, "/static/style.css").await;
    assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
    assert_eq!(response.text().await.unwrap(), "from public\n");
}

#[tokio::test]
async fn a_static_folder_that_is_the_app_folder_is_not_served_by_the_front() {
    let app = app_with(&[
        ("capstan.toml", "[web]\nwsgi = \"webapp:app\"\n"),
        (
            "webapp.py",
            "from flask import Flask\napp = Flask(__name__, static_folder='.', static_url_path='/files')\n",
        ),
    ]);
    let server = Server::start(app.path(), Opts::default());
    let expected = format!(
        "not serving /files from {} (reported by the app): that folder is the app's folder or holds it",
        canonical(app.path()).display()
    );
    assert!(server.stderr().contains(&expected), "{}", server.stderr());
    let response = get(&server, "/files/capstan.toml").await;
    // Flask still answers, as it did without capstan; the front adds nothing.
    assert_eq!(response.headers()["cache-control"], "no-cache");
}

#[tokio::test]
async fn a_procfile_release_line_runs_before_the_gunicorn_app_is_served() {
    let app = app_copy("microblog");
    std::fs::remove_file(app.path().join("capstan.toml")).unwrap();
    std::fs::write(
        app.path().join("Procfile"),
        "web: gunicorn microblog:app\nrelease: flask db upgrade\n",
    )
    .unwrap();
    let server = Server::start(app.path(), with_venv(&real_apps_venv()));
    let response = post_a_post(&server, "from a Procfile").await;
    assert_eq!(response.status(), 200, "{}", server.stderr());
    let css = get(&server, "/static/style.css").await;
    assert_eq!(css.headers()["cache-control"], FRONT_CACHE);
}

#[test]
fn a_failing_release_command_stops_capstan_run_and_nothing_is_started() {
    let app = app_copy("microblog");
    std::fs::write(
        app.path().join("capstan.toml"),
        "[web]\nwsgi = \"microblog:app\"\n\n[release]\ncommands = [\"echo first\", \"exit 3\", \"touch not-run\"]\n",
    )
    .unwrap();
    let venv = real_apps_venv();
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
        stderr
            .contains("the release command `exit 3` exited with status 3, so nothing was started"),
        "{stderr}"
    );
    assert!(stderr.contains("release | first"), "{stderr}");
    assert!(!stderr.contains("starting workers"), "{stderr}");
    assert!(!app.path().join("not-run").exists());
}

// ---- capstan exec ----

#[test]
fn capstan_exec_runs_flask_and_pybabel_from_the_venv() {
    let app = app_copy("microblog");
    let venv = real_apps_venv();
    let upgrade = exec(app.path(), &venv, &["flask", "db", "upgrade"]);
    assert_eq!(upgrade.code, Some(0), "{}", upgrade.stderr);
    let current = exec(app.path(), &venv, &["flask", "db", "current"]);
    assert_eq!(current.code, Some(0), "{}", current.stderr);
    assert!(current.stdout.contains("(head)"), "{}", current.stdout);
    let babel = exec(app.path(), &venv, &["pybabel", "--version"]);
    assert_eq!(babel.code, Some(0), "{}", babel.stderr);
    assert!(babel.stdout.starts_with("pybabel "), "{}", babel.stdout);
}

#[test]
fn capstan_exec_gives_the_command_the_apps_env_folder_and_venv() {
    let app = app_copy("microblog");
    let venv = real_apps_venv();
    let out = exec(
        app.path(),
        &venv,
        &[
            "sh",
            "-c",
            "echo $FLASK_APP; pwd -P; echo $VIRTUAL_ENV; command -v python",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "microblog.py".to_owned(),
            canonical(app.path()).display().to_string(),
            venv.display().to_string(),
            venv.join("bin/python").display().to_string(),
        ]
    );
}

#[test]
fn capstan_exec_exits_with_the_commands_status_or_128_plus_its_signal() {
    let app = app_copy("microblog");
    let venv = real_apps_venv();
    assert_eq!(
        exec(app.path(), &venv, &["sh", "-c", "exit 7"]).code,
        Some(7)
    );
    assert_eq!(
        exec(app.path(), &venv, &["sh", "-c", "kill -TERM $$"]).code,
        Some(128 + 15)
    );
}

#[test]
fn capstan_exec_passes_sigterm_on_to_the_command() {
    let app = app_copy("microblog");
    let mut child = Command::new(fixture::capstan())
        .arg("exec")
        .arg(app.path())
        .arg("--venv")
        .arg(real_apps_venv())
        .args(["--", "sleep", "300"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // capstan runs the venv's python to check it first: wait for the command itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    let sleeper = loop {
        let running = fixture::descendants_of(child.id()).into_iter().find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == b"sleep\x00300\x00")
        });
        if let Some(pid) = running {
            break pid;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the command never started");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(sleeper as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.kill();
            panic!("capstan exec did not end after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(128 + 15), "{status:?}");
    assert!(!fixture::alive(sleeper));
}

#[test]
fn capstan_exec_of_a_command_that_does_not_exist_says_so_in_one_line() {
    let app = app_copy("microblog");
    let out = exec(app.path(), &real_apps_venv(), &["flsk", "db", "upgrade"]);
    assert_eq!(out.code, Some(127));
    assert!(
        out.stderr
            .contains("capstan: no command `flsk` in the venv's bin or on PATH"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
}

// ---- Django ----

#[tokio::test]
async fn a_startproject_django_site_has_its_admin_css_served_by_the_front_after_collectstatic() {
    let venv = real_apps_venv();
    let site = tempfile::tempdir().unwrap();
    let made = Command::new(venv.join("bin/django-admin"))
        .args(["startproject", "mysite"])
        .arg(site.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let settings = site.path().join("mysite/settings.py");
    let text = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(
        &settings,
        text + "\nSTATIC_ROOT = BASE_DIR / \"staticfiles\"\n",
    )
    .unwrap();

    // Before collectstatic the folder is missing: the worker says what to run.
    let server = Server::start(site.path(), with_venv(&venv));
    assert!(
        server
            .stderr()
            .contains("does not exist: run `python manage.py collectstatic`"),
        "{}",
        server.stderr()
    );
    let before = get(&server, "/static/admin/css/base.css").await;
    assert_eq!(before.status(), 404);
    server.stop(Duration::from_secs(30));

    let collected = exec(
        site.path(),
        &venv,
        &["python", "manage.py", "collectstatic", "--noinput"],
    );
    assert_eq!(collected.code, Some(0), "{}", collected.stderr);
    assert!(
        collected.stdout.contains("static files copied"),
        "{}",
        collected.stdout
    );

    let server = Server::start(site.path(), with_venv(&venv));
    assert!(
        server
            .stderr()
            .contains("serving /static from staticfiles (reported by the app)"),
        "{}",
        server.stderr()
    );
    let css = get(&server, "/static/admin/css/base.css").await;
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["cache-control"], FRONT_CACHE);
    let expected = std::fs::read(site.path().join("staticfiles/admin/css/base.css")).unwrap();
    assert_eq!(css.bytes().await.unwrap(), expected);
}

// ---- The tutorial as it is, with no capstan file ----

/// The microblog copy as the tutorial has it: `.flaskenv` naming the app and
/// asking for debug, no capstan.toml.
fn tutorial_without_an_app_file() -> tempfile::TempDir {
    let app = app_copy("microblog");
    std::fs::remove_file(app.path().join("capstan.toml")).unwrap();
    std::fs::write(
        app.path().join(".flaskenv"),
        "FLASK_APP=microblog.py\nFLASK_DEBUG=1\n",
    )
    .unwrap();
    app
}

#[tokio::test]
async fn the_tutorial_with_only_flaskenv_is_found_migrated_by_exec_and_served_without_debug() {
    let app = tutorial_without_an_app_file();
    let venv = real_apps_venv();
    let upgrade = exec(app.path(), &venv, &["flask", "db", "upgrade"]);
    assert_eq!(
        upgrade.code,
        Some(0),
        "{}{}",
        upgrade.stdout,
        upgrade.stderr
    );

    let server = Server::start(app.path(), with_venv(&venv));
    let stderr = server.stderr();
    assert!(
        stderr.contains("serving microblog:app, named by FLASK_APP in .flaskenv"),
        "{stderr}"
    );
    assert!(
        stderr.contains(".flaskenv sets FLASK_DEBUG=1, which is not applied to the web processes"),
        "no debug warning:\n{stderr}"
    );
    // The table the migration made is there.
    let response = post_a_post(&server, "hello").await;
    assert_eq!(response.status(), 200);
    // .flaskenv named the app but does not reach the workers.
    let env: serde_json::Value = get(&server, "/env").await.json().await.unwrap();
    assert_eq!(env["debug"], false, "{env}");
    assert_eq!(env["FLASK_DEBUG"], serde_json::Value::Null, "{env}");
    assert_eq!(env["FLASK_APP"], serde_json::Value::Null, "{env}");
    // Flask's own static folder comes from the front.
    let css = get(&server, "/static/style.css").await;
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["cache-control"], FRONT_CACHE);
}

#[tokio::test]
async fn the_tutorials_procfile_line_migrates_before_capstan_serves_in_place_of_gunicorn() {
    let app = tutorial_without_an_app_file();
    std::fs::write(
        app.path().join("Procfile"),
        "web: flask db upgrade; gunicorn -w 2 microblog:app\n",
    )
    .unwrap();
    let server = Server::start(
        app.path(),
        Opts {
            own_workers: true,
            ..with_venv(&real_apps_venv())
        },
    );
    let stderr = server.stderr();
    let release = stderr
        .find("release: `flask db upgrade` done")
        .unwrap_or_else(|| panic!("the web line's step did not run first:\n{stderr}"));
    assert!(
        release < stderr.find("starting workers").unwrap(),
        "{stderr}"
    );
    assert!(stderr.contains("workers=2"), "{stderr}");
    let response = post_a_post(&server, "hello").await;
    assert_eq!(response.status(), 200);
}
