//! Supervision: workers that die or hang are replaced, a stop lets requests in
//! flight finish and leaves no process behind, an app that cannot load stops
//! capstan with its traceback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::fixture::{alive, app_copy, app_with, client, pid_serving, Opts, Server};

fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
}

/// Opts for a probe whose /hold route reports, in `log`, that the app has the request.
pub(crate) fn with_event_log(log: &Path, workers: &str) -> Opts {
    Opts {
        env: vec![("PROBE_EVENT_LOG".into(), log.display().to_string())],
        ..Opts::args(&["--workers", workers])
    }
}

/// Waits (without blocking the test's runtime, where requests are in flight)
/// until `log` has the line "`mark` PID", and returns the PID.
pub(crate) async fn wait_for_hold(log: &Path, mark: &str, timeout: Duration) -> u32 {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|line| line.strip_prefix(mark)?.strip_prefix(' '))
            .find_map(|pid| pid.parse().ok());
        if let Some(pid) = found {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "the app never got the /hold?mark={mark} request"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `pid` has exited (a zombie counts as exited).
async fn wait_until_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Waits until capstan has `count` workers again, none of them in `dead`.
async fn wait_for_workers(
    server: &Server,
    count: usize,
    dead: &[u32],
    timeout: Duration,
) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let workers = server.descendants();
        if workers.len() == count && !workers.iter().any(|pid| dead.contains(pid)) {
            return workers;
        }
        assert!(
            Instant::now() < deadline,
            "workers now: {workers:?}\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Processes whose command line mentions `dir` (capstan's workers name their app root).
fn processes_mentioning(dir: &Path) -> Vec<(u32, String)> {
    let needles: Vec<String> = [dir.to_path_buf(), dir.canonicalize().unwrap()]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if needles.iter().any(|n| cmdline.contains(n.as_str())) && alive(pid) {
            found.push((pid, cmdline));
        }
    }
    found
}

#[tokio::test]
async fn a_worker_killed_with_sigkill_is_replaced_while_the_other_keeps_serving() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), Opts::default());
    let http = client();

    let before = server.descendants();
    assert_eq!(before.len(), 2, "two workers: {before:?}");
    let victim = before[0];

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut statuses = Vec::new();
    let mut replacement = None;
    let mut replacement_served = false;
    for i in 0..2000 {
        let response = http.get(server.url("/environ")).send().await.unwrap();
        let status = response.status().as_u16();
        statuses.push(status);
        if status == 200 {
            let env: serde_json::Value = response.json().await.unwrap();
            let pid = env["pid"].as_u64().unwrap() as u32;
            replacement_served |= Some(pid) == replacement;
        }
        if i == 3 {
            sigkill(victim);
            // SIGKILL is asynchronous: a request sent before the kernel has ended
            // the worker is one it died holding (that is the 502 case below).
            // From here on, the worker is gone and the other one must serve.
            assert!(wait_until_gone(victim, Duration::from_secs(10)).await);
        }
        if i > 3 && replacement.is_none() {
            replacement = server
                .descendants()
                .into_iter()
                .find(|pid| !before.contains(pid));
        }
        if replacement_served || Instant::now() > deadline {
            break;
        }
    }

    let failed: Vec<_> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the kill: {failed:?}\n{}",
        failed.len(),
        statuses.len(),
        server.stderr()
    );
    assert!(
        replacement.is_some(),
        "no new worker appeared:\n{}",
        server.stderr()
    );
    assert!(
        replacement_served,
        "the new worker served nothing:\n{}",
        server.stderr()
    );
}

/// Regression: a request that the pool handed to a worker which had died an
/// instant before (its reader had not seen the socket close yet) got 502,
/// though the worker never saw it and another one was free.
#[tokio::test]
async fn a_request_sent_to_a_worker_that_died_unnoticed_is_served_by_the_other_one() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), Opts::default());
    let mut workers = server.descendants();
    assert_eq!(workers.len(), 2, "two workers: {workers:?}");

    let mut answers = Vec::new();
    for _round in 0..4 {
        // Stopped, capstan cannot notice the death before the requests arrive:
        // on resume it learns of both at once, as under heavy load.
        let victim = workers[0];
        server.signal(Signal::SIGSTOP);
        sigkill(victim);
        let gone = wait_until_gone(victim, Duration::from_secs(10)).await;
        let requests: Vec<TcpStream> = (0..6)
            .map(|_| {
                let mut stream = TcpStream::connect(server.http).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                stream
                    .write_all(
                        b"GET /environ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                    )
                    .unwrap();
                stream
            })
            .collect();
        server.signal(Signal::SIGCONT);
        assert!(gone, "SIGKILL did not end worker {victim}");
        for mut stream in requests {
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).unwrap();
            let status_line = answer.split(|b| *b == b'\r').next().unwrap().to_vec();
            answers.push(String::from_utf8_lossy(&status_line).into_owned());
        }
        workers = wait_for_workers(&server, 2, &[victim], Duration::from_secs(10)).await;
    }

    let failed: Vec<_> = answers.iter().filter(|a| *a != "HTTP/1.1 200 OK").collect();
    assert!(
        failed.is_empty(),
        "{failed:?} of {} requests\n{}",
        answers.len(),
        server.stderr()
    );
}

#[tokio::test]
async fn a_worker_killed_mid_request_gives_that_request_502_and_the_next_one_succeeds() {
    let app = app_copy("probe");
    let log = app.path().join("events.log");
    let server = Server::start(app.path(), with_event_log(&log, "1"));
    let http = client();

    let worker = pid_serving(&server).await;
    let request = http.get(server.url("/hold?s=5&mark=doomed")).send();
    let started = Instant::now();
    let request = tokio::spawn(request);
    let holding = wait_for_hold(&log, "doomed", Duration::from_secs(10)).await;
    assert_eq!(holding, worker);
    sigkill(worker);

    let response = request.await.unwrap().unwrap();
    assert_eq!(response.status(), 502);
    // The 502 came from the death, not from the app finishing its 5 s sleep.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    let next = pid_serving(&server).await;
    assert_ne!(next, worker);
}

#[tokio::test]
async fn a_request_past_the_apps_timeout_gets_504_and_its_worker_is_replaced() {
    let app = app_copy("probe");
    std::fs::write(
        app.path().join("capstan.toml"),
        "name = \"probe\"\n\n[web]\nwsgi = \"app:app\"\ntimeout = \"1s\"\n",
    )
    .unwrap();
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let http = client();

    let worker = pid_serving(&server).await;
    let started = Instant::now();
    let response = http.get(server.url("/sleep?s=20")).send().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(response.status(), 504);
    assert!(
        waited >= Duration::from_millis(900),
        "504 before the timeout: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "504 long after the timeout: {waited:?}"
    );

    assert!(
        wait_until_gone(worker, Duration::from_secs(10)).await,
        "the hung worker {worker} is still running:\n{}",
        server.stderr()
    );
    let next = pid_serving(&server).await;
    assert_ne!(next, worker);
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_0_leaving_no_process() {
    let app = app_copy("probe");
    let log = app.path().join("events.log");
    let server = Server::start(app.path(), with_event_log(&log, "2"));

    let request = client().get(server.url("/hold?s=1&mark=graceful")).send();
    let request = tokio::spawn(async move {
        let response = request.await.unwrap();
        (response.status(), response.text().await.unwrap())
    });
    wait_for_hold(&log, "graceful", Duration::from_secs(10)).await;
    let processes = server.descendants();
    assert_eq!(processes.len(), 2, "two workers: {processes:?}");

    // stop() blocks; the request's task must keep running meanwhile.
    let stopped = tokio::task::spawn_blocking(move || server.stop(Duration::from_secs(30)));
    let (status, body) = request.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "held");
    let exit = stopped.await.unwrap();
    assert_eq!(exit.code(), Some(0), "{exit}");

    let left: Vec<_> = processes.iter().filter(|pid| alive(**pid)).collect();
    assert!(
        left.is_empty(),
        "still running after capstan exited: {left:?}"
    );
}

#[tokio::test]
async fn sigint_stops_capstan_like_sigterm() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let processes = server.descendants();
    assert_eq!(processes.len(), 1, "one worker: {processes:?}");

    server.signal(Signal::SIGINT);
    assert!(
        wait_until_gone(server.pid(), Duration::from_secs(30)).await,
        "capstan did not stop on SIGINT:\n{}",
        server.stderr()
    );
    let stderr = server.stderr();
    // capstan has exited (it is a zombie until reaped): stop() only collects its status.
    let exit = server.stop(Duration::from_secs(5));
    assert_eq!(exit.code(), Some(0), "{exit}\n{stderr}");
    let left: Vec<_> = processes.iter().filter(|pid| alive(**pid)).collect();
    assert!(
        left.is_empty(),
        "still running after capstan exited: {left:?}"
    );
}

#[tokio::test]
async fn an_app_that_raises_at_import_stops_capstan_with_the_traceback() {
    let app = app_with(&[
        (
            "capstan.toml",
            "name = \"boom\"\n\n[web]\nwsgi = \"app:app\"\n",
        ),
        (
            "app.py",
            "raise RuntimeError(\"boom at import\")\n\napp = None\n",
        ),
    ]);

    let started = Instant::now();
    let output = match Server::try_start(app.path(), Opts::default()) {
        Ok(server) => panic!(
            "capstan serves an app that cannot load:\n{}",
            server.stderr()
        ),
        Err(output) => output,
    };
    // try_start reports "exited with <status>" first.
    let first = output.lines().next().unwrap();
    assert!(
        first.starts_with("exited with exit status: ") && first != "exited with exit status: 0",
        "{output}"
    );
    assert!(
        output.contains("Traceback (most recent call last):"),
        "{output}"
    );
    assert!(output.contains("RuntimeError: boom at import"), "{output}");
    assert!(
        output
            .lines()
            .any(|l| l.starts_with("capstan: ") && l.contains("the app failed to load")),
        "no line from capstan saying the app failed to load:\n{output}"
    );
    // No restart loop spun on the broken app.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    let left = processes_mentioning(app.path());
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[tokio::test]
async fn ctrl_c_with_a_connection_held_past_the_graceful_timeout_still_stops_every_process() {
    let app = app_copy("probe");
    std::fs::write(
        app.path().join("capstan.toml"),
        "name = \"probe\"\n\n[web]\nwsgi = \"app:app\"\ngraceful_timeout = \"1s\"\n\n\
         [processes.marker]\ncommand = \"echo $$ > marker.pid; exec sleep 600\"\n",
    )
    .unwrap();
    let log = app.path().join("events.log");
    let server = Server::start(app.path(), with_event_log(&log, "1"));
    let marker_file = app.path().join("marker.pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    let marker: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(&marker_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "the process never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let request = client().get(server.url("/hold?s=60&mark=held")).send();
    let request = tokio::spawn(request);
    let worker = wait_for_hold(&log, "held", Duration::from_secs(10)).await;
    // An upload that stalls once the edge reads its body (the 100 Continue
    // says so): its request holds the app past every deadline.
    let mut upload = tokio::net::TcpStream::connect(server.http).await.unwrap();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        upload
            .write_all(
                b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\
                  Expect: 100-continue\r\n\r\n",
            )
            .await
            .unwrap();
        let mut answer = [0u8; 64];
        let n = upload.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 100 Continue"), "{answer}");
        upload.write_all(b"a few bytes").await.unwrap();
    }

    server.signal(Signal::SIGINT);
    assert!(
        wait_until_gone(server.pid(), Duration::from_secs(30)).await,
        "capstan did not stop:\n{}",
        server.stderr()
    );
    let stderr = server.stderr();
    let exit = server.stop(Duration::from_secs(5));
    assert_eq!(exit.code(), Some(0), "{exit}\n{stderr}");
    assert!(stderr.contains("connections still open"), "{stderr}");
    for (what, pid) in [("worker", worker), ("process", marker)] {
        assert!(!alive(pid), "the {what} {pid} still runs:\n{stderr}");
    }
    request.abort();
    drop(upload);
}
