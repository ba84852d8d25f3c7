//! Bad and oversized requests get the right status and a closed connection,
//! and never reach a worker. One table, one server.

use std::time::Duration;

use crate::fixture::{app_copy, raw_exchange, Opts, Server};

/// (what, raw request, expected status)
fn cases() -> Vec<(&'static str, Vec<u8>, u16)> {
    let big_header = format!(
        "GET /environ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let many_headers = {
        let mut request = String::from("GET /environ HTTP/1.1\r\nHost: x\r\n");
        for i in 0..200 {
            request.push_str(&format!("X-H{i}: v\r\n"));
        }
        request.push_str("\r\n");
        request
    };
    let long_uri = format!(
        "GET /environ?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "q".repeat(16_000)
    );
    vec![
        ("a header section over 64 KiB", big_header.into_bytes(), 431),
        ("more than 100 headers", many_headers.into_bytes(), 431),
        ("a request target over 8 KiB", long_uri.into_bytes(), 414),
        ("no Host in HTTP/1.1", b"GET /environ HTTP/1.1\r\n\r\n".to_vec(), 400),
        (
            "a chunk size that is not hex",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        // Refused before hyper's reading of it matters (RFC 9112, 6.3):
        // nothing can be smuggled behind it.
        (
            "Content-Length and Transfer-Encoding together",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "two different Content-Length values",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
            400,
        ),
        (
            "a Content-Length that is not a number",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\nabc".to_vec(),
            400,
        ),
        (
            "a space in a header name",
            b"GET /environ HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n".to_vec(),
            400,
        ),
        (
            "obsolete line folding",
            b"GET /environ HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a NUL in a header value",
            b"GET /environ HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a bare CR inside a header value",
            b"GET /environ HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a NUL in the path, percent-encoded",
            b"GET /environ/a%00b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a transfer coding that is not chunked",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc".to_vec(),
            400,
        ),
    ]
}

fn status_of(response: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(response);
    let line = text.lines().next()?;
    line.split(' ').nth(1)?.parse().ok()
}

#[test]
fn each_malformed_or_oversized_request_gets_its_status_and_a_closed_connection() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let mut wrong = Vec::new();
    for (what, request, expected) in cases() {
        // After the answer the server closes: reading ends before the quiet timeout.
        let started = std::time::Instant::now();
        let response = raw_exchange(server.http, &request, Duration::from_secs(5));
        let closed = started.elapsed() < Duration::from_secs(4);
        let status = status_of(&response);
        if status != Some(expected) || !closed {
            wrong.push(format!(
                "{what}: got {status:?} (closed: {closed}), expected {expected}: {:?}",
                String::from_utf8_lossy(&response[..response.len().min(200)])
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    assert!(
        !server.stdout().contains("/smuggled"),
        "{}",
        server.stdout()
    );
    // None of them reached the app: the worker never logged a request error.
    assert!(
        !server.stderr().contains("Traceback"),
        "{}",
        server.stderr()
    );
}

/// The probe app with extra `[web]` and `[http]` settings.
fn probe_with(web: &str, http: &str) -> tempfile::TempDir {
    let app = app_copy("probe");
    std::fs::write(
        app.path().join("capstan.toml"),
        format!("name = \"probe\"\n\n[web]\nwsgi = \"app:app\"\n{web}\n\n[http]\n{http}\n"),
    )
    .unwrap();
    app
}

/// Reads until the server closes the connection; how long that took.
fn time_until_closed(stream: &mut std::net::TcpStream, limit: Duration) -> (Duration, Vec<u8>) {
    use std::io::Read;
    let started = std::time::Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (started.elapsed(), got)
}

#[test]
fn a_client_that_sends_its_head_too_slowly_is_disconnected_without_holding_a_worker() {
    use std::io::Write;
    let app = probe_with("", "client_timeout = \"1s\"");
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let mut slow = std::net::TcpStream::connect(server.http).unwrap();
    slow.write_all(b"GET /environ HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Meanwhile the only worker serves others.
    let other = raw_exchange(
        server.http,
        b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&other), Some(200));
    let (waited, _) = time_until_closed(&mut slow, Duration::from_secs(10));
    assert!(
        waited < Duration::from_secs(5),
        "closed only after {waited:?}"
    );
}

#[test]
fn a_body_that_stalls_gets_408() {
    use std::io::Write;
    let app = probe_with("", "client_timeout = \"1s\"");
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let mut slow = std::net::TcpStream::connect(server.http).unwrap();
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
        .unwrap();
    let (waited, answer) = time_until_closed(&mut slow, Duration::from_secs(10));
    assert_eq!(
        status_of(&answer),
        Some(408),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        waited < Duration::from_secs(5),
        "answered only after {waited:?}"
    );
}

#[test]
fn a_thousand_idle_connections_do_not_stop_other_clients_and_are_closed_when_idle() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // This test process needs the descriptors too.
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let app = probe_with("", "client_timeout = \"2s\"");
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let idle: Vec<_> = (0..1000)
        .map(|_| std::net::TcpStream::connect(server.http).unwrap())
        .collect();
    let answer = raw_exchange(
        server.http,
        b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(status_of(&answer), Some(200));
    // The idle ones are closed by the server after client_timeout.
    for mut stream in idle.into_iter().step_by(100) {
        let (waited, _) = time_until_closed(&mut stream, Duration::from_secs(15));
        assert!(
            waited < Duration::from_secs(10),
            "still open after {waited:?}"
        );
    }
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_so_does_a_long_wait() {
    // pipeline = 0: the busy worker is sent nothing ahead, so requests wait in the queue.
    let app = probe_with("max_queue = 1\nqueue_timeout = \"1s\"\npipeline = 0", "");
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let hold = |seconds: &str| {
        let addr = server.http;
        let request =
            format!("GET /sleep?s={seconds} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        std::thread::spawn(move || raw_exchange(addr, request.as_bytes(), Duration::from_secs(20)))
    };
    let busy = hold("3");
    std::thread::sleep(Duration::from_millis(300));
    let queued = hold("0");
    std::thread::sleep(Duration::from_millis(300));
    let refused = raw_exchange(
        server.http,
        b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&refused).to_ascii_lowercase();
    assert_eq!(status_of(&refused), Some(503), "{text}");
    assert!(text.contains("retry-after: 1"), "{text}");
    // The queued one waited more than queue_timeout behind a 3 s request: 503 too.
    assert_eq!(status_of(&queued.join().unwrap()), Some(503));
    assert_eq!(status_of(&busy.join().unwrap()), Some(200));
    assert!(
        server.stderr().contains("request queue full"),
        "{}",
        server.stderr()
    );
}
