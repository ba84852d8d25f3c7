//! Reloads and recycling: a new generation (workers or web command, static
//! routes, `[processes]`) takes over with no request lost, keep-alive
//! connections move to it, and a reload whose code cannot load or whose health
//! check fails leaves the old generation serving.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::fixture::{app_copy, capstan, client, pid_serving, run_to_exit, Opts, Server};

/// `capstan reload DIR`, without blocking the test's runtime (load runs on it).
async fn reload(dir: &Path) -> (bool, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(capstan())
            .arg("reload")
            .arg(dir)
            .output(),
    )
    .await
    .expect("capstan reload finishes")
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Requests from `clients` keep-alive clients until `stop`, bounded by `limit`.
struct Load {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(url: String, clients: usize, limit: Duration) -> Load {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + limit;
        let tasks = (0..clients)
            .map(|_| {
                let (ok, failed, stop, url) =
                    (ok.clone(), failed.clone(), stop.clone(), url.clone());
                tokio::spawn(async move {
                    let http = client();
                    let mut errors = Vec::new();
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        match http.get(&url).send().await {
                            Ok(response) if response.status() == 200 => {
                                match response.bytes().await {
                                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                                    Err(error) => {
                                        errors.push(error.to_string());
                                        failed.fetch_add(1, Ordering::Relaxed)
                                    }
                                }
                            }
                            Ok(response) => {
                                errors.push(format!("status {}", response.status()));
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(error) => {
                                errors.push(error.to_string());
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                    errors
                })
            })
            .collect();
        Load {
            ok,
            failed,
            stop,
            tasks,
        }
    }

    async fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        for task in self.tasks {
            errors.extend(task.await.unwrap());
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_constant_load_lose_no_request() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), Opts::default());
    let before = pid_serving(&server).await;
    let load = Load::start(server.url("/environ"), 4, Duration::from_secs(120));
    for round in 1..=20 {
        let (ok, output) = reload(app.path()).await;
        assert!(ok, "reload {round} failed: {output}\n{}", server.stderr());
    }
    // Some traffic after the last switch too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, failed, errors) = load.finish().await;
    assert_eq!(failed, 0, "{errors:?}\n{}", server.stderr());
    assert!(ok > 100, "only {ok} requests went through");
    assert_ne!(pid_serving(&server).await, before);
    eprintln!("20 reloads under load: {ok} requests, {failed} failed");
    assert!(server.stop(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_whose_code_cannot_load_keeps_the_old_workers_serving() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let before = pid_serving(&server).await;
    // The probe refuses to import while this file exists.
    let marker = app.path().join("FAIL_BOOT");
    std::fs::write(&marker, "").unwrap();
    let (ok, output) = reload(app.path()).await;
    assert!(!ok, "a broken reload must fail: {output}");
    assert!(
        output.contains("FAIL_BOOT exists") && output.contains("Traceback"),
        "{output}"
    );
    assert_eq!(
        pid_serving(&server).await,
        before,
        "the old worker still serves"
    );
    std::fs::remove_file(&marker).unwrap();
    let (ok, output) = reload(app.path()).await;
    assert!(ok, "{output}");
    assert_ne!(pid_serving(&server).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_workers() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let before = pid_serving(&server).await;
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_for_stderr("reloaded", Duration::from_secs(30)),
        "{}",
        server.stderr()
    );
    assert_ne!(pid_serving(&server).await, before);
}

#[test]
fn reload_without_a_running_capstan_says_so() {
    let app = app_copy("probe");
    let (status, output) = run_to_exit(
        &["reload", app.path().to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(!status.success());
    assert!(
        output.contains("no capstan is running for this app") && output.contains("capstan run"),
        "{output}"
    );
}

#[test]
fn a_second_capstan_for_the_same_app_is_refused() {
    let app = app_copy("probe");
    let _first = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let second = Server::try_start(app.path(), Opts::args(&["--workers", "1"]));
    let output = second.err().expect("the second one refuses to start");
    assert!(output.contains("already running for this app"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_recycled_after_max_requests_without_failing_a_request() {
    let app = app_copy("probe");
    std::fs::write(
        app.path().join("capstan.toml"),
        "name = \"probe\"\n\n[web]\nwsgi = \"app:app\"\nmax_requests = 25\nmax_requests_jitter = 5\n",
    )
    .unwrap();
    let server = Server::start(app.path(), Opts::default());
    let http = client();
    let mut pids = HashSet::new();
    for _ in 0..300 {
        let response = http.get(server.url("/environ")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let env: serde_json::Value = response.json().await.unwrap();
        pids.insert(env["pid"].as_u64().unwrap());
    }
    // 2 workers recycled every 25-30 requests would be about 12 pids; while a
    // replacement boots on a busy machine the old worker serves on, so ask for
    // clearly more than the 2 that never recycle.
    assert!(
        pids.len() >= 4,
        "only {} worker pids served 300 requests",
        pids.len()
    );
    assert!(server.stderr().contains("recycling the worker"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_past_max_rss_is_replaced_between_requests() {
    let app = app_copy("probe");
    std::fs::write(
        app.path().join("capstan.toml"),
        "name = \"probe\"\n\n[web]\nwsgi = \"app:app\"\nmax_rss = \"100MiB\"\n",
    )
    .unwrap();
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let before = pid_serving(&server).await;
    let grown = client()
        .get(server.url("/grow?mib=150"))
        .send()
        .await
        .unwrap();
    assert_eq!(grown.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Every request in between is answered, by the old worker or the new one.
        if pid_serving(&server).await != before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not replaced:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        server.stderr().contains("more memory than max_rss"),
        "{}",
        server.stderr()
    );
}

/// Waits until `path` has a line starting with `prefix`; returns the rest.
async fn wait_for_line(path: &Path, prefix: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(rest) = text.lines().find_map(|l| l.strip_prefix(prefix)) {
            return rest.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no line {prefix:?} in {}: {text:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A probe with a `[processes]` entry that logs the VERSION it started with
/// and its pid into processes.log.
fn probe_with_a_process() -> tempfile::TempDir {
    let app = app_copy("probe");
    std::fs::write(
        app.path().join("capstan.toml"),
        "name = \"probe\"\n\n[web]\nwsgi = \"app:app\"\n\n[processes.marker]\n\
         command = \"echo \\\"$(cat VERSION) $$\\\" >> processes.log; exec sleep 600\"\n",
    )
    .unwrap();
    std::fs::write(app.path().join("VERSION"), "v1").unwrap();
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_load_loses_no_request_and_restarts_the_processes_with_the_new_code() {
    let app = probe_with_a_process();
    let log = app.path().join("processes.log");
    let server = Server::start(app.path(), Opts::default());
    let old: u32 = wait_for_line(&log, "v1 ", Duration::from_secs(20))
        .await
        .parse()
        .unwrap();
    let before = pid_serving(&server).await;
    let load = Load::start(server.url("/environ"), 6, Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(app.path().join("VERSION"), "v2").unwrap();
    let started = Instant::now();
    let (ok, output) = reload(app.path()).await;
    let took = started.elapsed();
    assert!(ok, "{output}\n{}", server.stderr());
    // Traffic across the old generation's drain too.
    let new: u32 = wait_for_line(&log, "v2 ", Duration::from_secs(20))
        .await
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::fixture::alive(old) {
        assert!(
            Instant::now() < deadline,
            "the old process {old} still runs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ok, failed, errors) = load.finish().await;
    assert_eq!(failed, 0, "{errors:?}\n{}", server.stderr());
    assert!(ok > 20, "only {ok} requests went through");
    eprintln!("a reload under load took {took:?}: {ok} requests, {failed} failed");
    assert!(crate::fixture::alive(new), "the new process runs");
    assert_ne!(pid_serving(&server).await, before);
    assert!(server.stop(Duration::from_secs(30)).success());
    assert!(
        !crate::fixture::alive(new),
        "the process stopped with capstan"
    );
}

/// Sends GET `path` on an open keep-alive connection; the JSON body.
async fn get_on(stream: &mut tokio::net::TcpStream, path: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(!head.contains("connection: close"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .expect("a content-length")
                .trim()
                .parse()
                .unwrap();
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the connection closed mid-body");
                buf.extend_from_slice(&chunk[..n]);
            }
            return serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap();
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before a response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_opened_before_a_reload_is_served_by_the_new_generation() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let mut stream = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let first = get_on(&mut stream, "/environ").await;
    let (ok, output) = reload(app.path()).await;
    assert!(ok, "{output}");
    let second = get_on(&mut stream, "/environ").await;
    assert_eq!(
        first["REMOTE_PORT"], second["REMOTE_PORT"],
        "the same connection"
    );
    assert_ne!(
        first["pid"],
        second["pid"],
        "the new generation's worker answered:\n{}",
        server.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_fails_its_health_check_keeps_the_old_generation_serving() {
    let app = app_copy("probe");
    std::fs::write(
        app.path().join("capstan.toml"),
        "name = \"probe\"\n\n[web]\nwsgi = \"app:app\"\n\n[health]\npath = \"/health\"\n\
         timeout = \"5s\"\nretries = 1\n",
    )
    .unwrap();
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let before = pid_serving(&server).await;
    let workers = server.descendants();
    std::fs::write(app.path().join("UNHEALTHY"), "").unwrap();
    let (ok, output) = reload(app.path()).await;
    assert!(!ok, "an unhealthy reload must fail: {output}");
    for text in [&output, &server.stderr()] {
        assert!(
            text.contains("the health check failed: GET /health with Host localhost")
                && text.contains("503")
                && text.contains("UNHEALTHY existed at import")
                && text.contains("tried 2 times"),
            "{text}"
        );
    }
    assert!(
        server.stderr().contains("the old generation keeps serving"),
        "{}",
        server.stderr()
    );
    assert_eq!(pid_serving(&server).await, before, "the old worker serves");
    assert_eq!(
        server.descendants(),
        workers,
        "the unhealthy generation's workers are stopped"
    );
}

/// The probe app for `domain`, health-checked at /health with no retries, and
/// unhealthy from the start (its UNHEALTHY marker is there before it imports).
fn unhealthy_probe(domain: &str) -> tempfile::TempDir {
    let app = app_copy("probe");
    std::fs::write(
        app.path().join("capstan.toml"),
        format!(
            "name = \"probe\"\ndomains = [\"{domain}\"]\n\n[web]\nwsgi = \"app:app\"\n\n\
             [health]\npath = \"/health\"\nretries = 0\n"
        ),
    )
    .unwrap();
    std::fs::write(app.path().join("UNHEALTHY"), "").unwrap();
    app
}

#[test]
fn an_app_that_fails_its_health_check_at_start_does_not_serve() {
    let app = unhealthy_probe("probe.example");
    let output = Server::try_start(app.path(), Opts::args(&["--workers", "1"]))
        .err()
        .expect("capstan refuses to serve an unhealthy app");
    assert!(
        output.contains("GET /health with Host probe.example must answer 2xx or 3xx")
            && output.contains("point [health] path at a page"),
        "{output}"
    );
}

#[test]
fn with_no_health_path_an_app_whose_front_page_fails_does_not_serve() {
    let app = crate::fixture::app_with(&[
        (
            "app.py",
            "def app(environ, start_response):\n    raise RuntimeError('broken at /')\n",
        ),
        (
            "capstan.toml",
            "name = \"broken\"\n\n[web]\nwsgi = \"app:app\"\n",
        ),
    ]);
    let output = Server::try_start(app.path(), Opts::args(&["--workers", "1"]))
        .err()
        .expect("capstan refuses to serve an app whose / fails");
    assert!(
        output.contains("GET / with Host localhost")
            && output.contains("500 Internal Server Error")
            && output.contains("tried 4 times"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_command_app_reloads_into_a_new_command_and_the_old_one_stops() {
    let app = crate::fixture::app_with(&[
        (
            "capstan.toml",
            "[web]\ncommand = \"echo $$ >> web.pids; exec python3 -m http.server $PORT --bind 127.0.0.1\"\n",
        ),
        ("page.txt", "hi\n"),
    ]);
    let server = Server::start(app.path(), Opts::default());
    let pids = app.path().join("web.pids");
    let first: u32 = std::fs::read_to_string(&pids)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (ok, output) = reload(app.path()).await;
    assert!(ok, "{output}\n{}", server.stderr());
    assert!(
        output.contains("the new web command is serving"),
        "{output}"
    );
    let response = client().get(server.url("/page.txt")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = std::fs::read_to_string(&pids).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::fixture::alive(first) {
        assert!(
            Instant::now() < deadline,
            "the old web command {first} still runs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.stop(Duration::from_secs(30)).success());
}

#[test]
fn the_health_check_asks_for_the_domain_given_with_the_flag() {
    let app = unhealthy_probe("file.example");
    let output = Server::try_start(
        app.path(),
        Opts::args(&["--workers", "1", "--domain", "flag.example"]),
    )
    .err()
    .expect("capstan refuses to serve an unhealthy app");
    assert!(output.contains("with Host flag.example"), "{output}");
}
