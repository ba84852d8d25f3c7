//! `examples/blog` deployed to a real daemon from scratch, with a real Redis
//! for its rq worker: the venv built, translations compiled by `[build]`, the
//! database migrated by `[release]`, a job run by the worker; then a second
//! deploy adds a column by migration and keeps the data written before.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::daemon_support::{git, AppUserGuard, Daemon, SYSTEM_PYTHON};
use crate::fixture;

/// A redis-server of Debian's on a free loopback port, stopped by its PID.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = fixture::free_port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let redis = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Copies examples/blog to `work`, leaving out what a checkout would not have.
fn copy_example(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "__pycache__" || name == ".capstan" || name.ends_with(".mo") || name == "blog.db"
        {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_example(&entry.path(), &to.join(&*name));
        } else {
            std::fs::copy(entry.path(), to.join(&*name)).unwrap();
        }
    }
}

/// The app as it was before migration 0002: its file gone and the lines it
/// added (marked `# migration 0002`) left out.
fn before_second_migration(work: &Path) {
    std::fs::remove_file(work.join("migrations/versions/0002_post_title.py")).unwrap();
    for file in ["app/models.py", "app/routes.py"] {
        let path = work.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|line| !line.ends_with("# migration 0002"))
            .collect();
        assert!(
            kept.len() < text.lines().count(),
            "{file} has no marked line"
        );
        std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    }
}

fn commit_all(work: &Path, home: &Path, message: &str) {
    for args in [&["add", "-A"][..], &["commit", "-q", "-m", message]] {
        let done = git(work, home, args);
        assert!(done.status.success(), "{done:?}");
    }
}

fn push(work: &Path, home: &Path, repo: &Path) -> String {
    let pushed = git(work, home, &["push", repo.to_str().unwrap(), "main"]);
    let output = String::from_utf8_lossy(&pushed.stderr).into_owned();
    assert!(pushed.status.success(), "the push was refused:\n{output}");
    output
}

/// `GET path` as the blog's Host, with an Accept-Language.
async fn get(daemon: &Daemon, path: &str, language: &str) -> (u16, String) {
    let response = fixture::client()
        .get(format!("http://127.0.0.1:{}{path}", daemon.port))
        .header("Host", "blog.example.com")
        .header("Accept-Language", language)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn post(daemon: &Daemon, fields: serde_json::Value) -> serde_json::Value {
    let response = fixture::client()
        .post(format!("http://127.0.0.1:{}/posts", daemon.port))
        .header("Host", "blog.example.com")
        .json(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// Waits until the rq worker has counted post `id`'s words.
async fn counted_words(daemon: &Daemon, id: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(daemon, &format!("/posts/{id}"), "en").await;
        assert_eq!(status, 200, "{body}");
        let post: serde_json::Value = serde_json::from_str(&body).unwrap();
        if !post["words"].is_null() {
            return post;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never counted post {id}:\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_blog_example_deploys_migrates_translates_runs_its_worker_and_keeps_its_data() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (work, home) = (temp.path().join("work"), temp.path().join("home"));
    std::fs::create_dir_all(&home).unwrap();
    let _user = AppUserGuard("blog");
    let redis = Redis::start();
    let daemon = Daemon::start(&temp.path().join("root"));
    let repo = daemon.create_app("blog", "blog.example.com");
    let redis_url = format!("REDIS_URL=redis://127.0.0.1:{}/0", redis.port);
    let set = daemon.capstan(&["env", "blog", "set", &redis_url]);
    assert!(set.status.success(), "{set:?}");

    copy_example(&fixture::workspace().join("examples/blog"), &work);
    // The system's Python: the app's user cannot reach one under root's home.
    let toml = std::fs::read_to_string(work.join("capstan.toml")).unwrap();
    std::fs::write(work.join("capstan.toml"), format!("{SYSTEM_PYTHON}{toml}")).unwrap();
    before_second_migration(&work);
    assert!(git(&work, &home, &["init", "-q", "-b", "main"])
        .status
        .success());
    commit_all(&work, &home, "a blog");

    let output = push(&work, &home, &repo);
    for step in [
        "venv built",
        "build command: pybabel compile -d app/translations",
        "Running upgrade  -> 0001",
        "blog release 1 is live",
    ] {
        assert!(output.contains(step), "no {step:?} in\n{output}");
    }
    let (status, page) = get(&daemon, "/", "fr").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Derniers billets"), "{page}");
    let (_, page) = get(&daemon, "/", "en").await;
    assert!(page.contains("Latest posts"), "{page}");

    let first = post(&daemon, serde_json::json!({"body": "one two three"})).await;
    let id = first["id"].as_u64().unwrap();
    assert_eq!(counted_words(&daemon, id).await["words"], 3);
    let data = daemon.root.join("apps/blog/data");
    assert!(
        data.join("blog.db").is_file(),
        "no database in {}",
        data.display()
    );

    // The second migration and the code that uses it.
    copy_example(&fixture::workspace().join("examples/blog"), &work);
    std::fs::write(work.join("capstan.toml"), format!("{SYSTEM_PYTHON}{toml}")).unwrap();
    commit_all(&work, &home, "posts get a title");
    let output = push(&work, &home, &repo);
    for step in [
        "venv reused",
        "Running upgrade 0001 -> 0002",
        "blog release 2 is live",
    ] {
        assert!(output.contains(step), "no {step:?} in\n{output}");
    }
    let (status, body) = get(&daemon, &format!("/posts/{id}"), "en").await;
    assert_eq!(status, 200, "{body}");
    let kept: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(kept["body"], "one two three", "{kept}");
    assert_eq!(kept["words"], 3, "{kept}");
    assert!(kept["title"].is_null(), "{kept}");
    let titled = post(
        &daemon,
        serde_json::json!({"body": "four words right here", "title": "Hello"}),
    )
    .await;
    assert_eq!(titled["title"], "Hello");
    let titled = counted_words(&daemon, titled["id"].as_u64().unwrap()).await;
    assert_eq!(titled["words"], 4);
    // The worker moved to the new release with the web workers.
    let ps = daemon.capstan(&["ps", "blog", "--json"]);
    let ps: serde_json::Value = serde_json::from_slice(&ps.stdout).unwrap();
    let processes = ps["apps"][0]["processes"].as_array().unwrap();
    let tasks: Vec<&serde_json::Value> = processes
        .iter()
        .filter(|p| p["name"].as_str().unwrap().starts_with("tasks"))
        .collect();
    assert_eq!(tasks.len(), 1, "{ps}");
    assert_eq!(tasks[0]["release"], 2, "{ps}");
    assert_eq!(tasks[0]["state"], "running", "{ps}");

    daemon.stop();
}
