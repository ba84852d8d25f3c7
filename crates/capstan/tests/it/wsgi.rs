//! PEP 3333 over real HTTP: what the probe app (tests/apps/probe) sees in its
//! environ and wsgi.input, and what its responses look like to a client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fixture::{app_copy, client, raw_exchange, Opts, Server};

/// The tests need no more than one worker; fewer processes keep them quick.
fn one_worker() -> Opts {
    Opts::args(&["--workers", "1"])
}

async fn environ_of(server: &Server) -> Value {
    let response = client().get(server.url("/environ")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A response read off a raw connection that the server closed after it.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn parse(bytes: &[u8]) -> RawResponse {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(bytes)));
        let head = std::str::from_utf8(&bytes[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        RawResponse {
            status,
            headers,
            body: bytes[end + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends `request` (which asks for `Connection: close`) on a fresh connection
/// and returns the client's own port with the response.
fn exchange_from_known_port(addr: SocketAddr, request: &[u8]) -> (u16, RawResponse) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let port = stream.local_addr().unwrap().port();
    stream.write_all(request).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    (port, RawResponse::parse(&bytes))
}

/// Waits for the mark close() leaves in the log (close() runs after the response
/// has been sent, so it may come a moment after the client has it). Async, so the
/// client's connection tasks keep running meanwhile.
async fn wait_for_line(path: &Path, line: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().any(|l| l == line) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The lines of capstan's standard error that carry `text` from a worker,
/// as (process name, message).
fn worker_lines(stderr: &str, text: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter(|line| line.contains(text))
        .filter_map(|line| {
            let (head, message) = line.split_once(" | ")?;
            let name = head.split_whitespace().last()?;
            Some((name.to_owned(), message.to_owned()))
        })
        .collect()
}

fn is_worker_name(name: &str) -> bool {
    name == "web.1" || name == "web.2"
}

// ---------------------------------------------------------------- environ

#[tokio::test]
async fn the_environ_of_a_get_follows_pep_3333() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());

    let (client_port, response) = exchange_from_known_port(
        server.http,
        b"GET /environ/a%20b/%C3%A9?x=%20y&z=1 HTTP/1.1\r\n\
          Host: example.test:8123\r\n\
          Connection: close\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    let env = response.json();

    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["SCRIPT_NAME"], "");
    // Percent-decoded bytes, each shown as one latin-1 character (PEP 3333).
    assert_eq!(env["PATH_INFO"], "/environ/a b/\u{c3}\u{a9}");
    assert_eq!(env["QUERY_STRING"], "x=%20y&z=1");
    assert_eq!(env["RAW_URI"], "/environ/a%20b/%C3%A9?x=%20y&z=1");
    assert_eq!(env["SERVER_NAME"], "example.test");
    assert_eq!(env["SERVER_PORT"], "8123");
    assert_eq!(env["HTTP_HOST"], "example.test:8123");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["REMOTE_PORT"], client_port.to_string());
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert_eq!(env["wsgi.version"], json!([1, 0]));
    assert_eq!(env["wsgi.multithread"], false);
    assert_eq!(env["wsgi.multiprocess"], true);
    assert_eq!(env["wsgi.run_once"], false);
    assert_eq!(env["wsgi.input_terminated"], true);
    assert_eq!(env["has_file_wrapper"], true);
    assert_eq!(env["errors_is_stderr"], true);
}

#[tokio::test]
async fn a_post_has_content_type_and_content_length_and_no_http_copies_of_them() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());

    let response = client()
        .post(server.url("/environ"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=1&b=22")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let env: Value = response.json().await.unwrap();
    assert_eq!(env["REQUEST_METHOD"], "POST");
    assert_eq!(env["CONTENT_TYPE"], "application/x-www-form-urlencoded");
    assert_eq!(env["CONTENT_LENGTH"], "8");
    assert_eq!(env.get("HTTP_CONTENT_TYPE"), None);
    assert_eq!(env.get("HTTP_CONTENT_LENGTH"), None);
}

#[tokio::test]
async fn repeated_request_headers_reach_the_app_joined_with_a_comma() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());

    let answer = raw_exchange(
        server.http,
        b"GET /environ HTTP/1.1\r\n\
          Host: localhost\r\n\
          X-Probe: one\r\n\
          X-Probe: two\r\n\
          Connection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    let response = RawResponse::parse(&answer);
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["HTTP_X_PROBE"], "one, two");
}

#[tokio::test]
async fn a_spoofed_x_forwarded_for_is_replaced_and_an_underscored_header_is_dropped() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());

    let answer = raw_exchange(
        server.http,
        b"GET /environ HTTP/1.1\r\n\
          Host: localhost\r\n\
          X-Forwarded-For: 6.6.6.6\r\n\
          X-Real-IP: 6.6.6.6\r\n\
          X_Forwarded_For: 6.6.6.6\r\n\
          X_Sneaky: yes\r\n\
          Connection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    let response = RawResponse::parse(&answer);
    assert_eq!(response.status, 200);
    let env = response.json();
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1");
    assert_eq!(env["HTTP_X_REAL_IP"], "127.0.0.1");
    let sneaky: Vec<&String> = env
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| {
            v.as_str()
                .is_some_and(|v| v.contains("6.6.6.6") || v == "yes")
        })
        .map(|(k, _)| k)
        .collect();
    assert!(
        sneaky.is_empty(),
        "spoofed values reached the app in {sneaky:?}"
    );
    assert_eq!(env.get("HTTP_X_SNEAKY"), None);
}

#[tokio::test]
async fn wsgi_multithread_is_true_when_workers_have_threads() {
    let app = app_copy("probe");
    let server = Server::start(
        app.path(),
        Opts::args(&["--workers", "1", "--threads", "4"]),
    );

    let env = environ_of(&server).await;
    assert_eq!(env["wsgi.multithread"], true);
    assert_eq!(env["wsgi.multiprocess"], true);
}

// ---------------------------------------------------------------- wsgi.input

#[tokio::test]
async fn wsgi_input_reads_a_multiline_body_in_every_way_pep_3333_names() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());
    let http = client();
    let body = "first line\nsecond\nthird";

    let input = |how: &'static str| {
        let request = http
            .post(server.url(&format!("/input?how={how}")))
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "how={how}");
            response.json::<Value>().await.unwrap()
        }
    };

    assert_eq!(input("read").await, json!({"body": body}));
    assert_eq!(
        input("readsome").await,
        json!({"first": "fir", "rest": "st line\nsecond\nthird"})
    );
    assert_eq!(
        input("readline").await,
        json!({"lines": ["first line\n", "se", "cond\n"]})
    );
    let lines = json!({"lines": ["first line\n", "second\n", "third"]});
    assert_eq!(input("readlines").await, lines);
    assert_eq!(input("iter").await, lines);
}

#[tokio::test]
async fn a_3_mib_request_body_reaches_the_app_whole() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());

    // Every byte value, in an order that a shifted or dropped block would break.
    let body: Vec<u8> = (0..3 * 1024 * 1024 + 17u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let response = client()
        .post(server.url("/echo"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-environ-content-length"],
        body.len().to_string().as_str()
    );
    let echoed = response.bytes().await.unwrap();
    assert_eq!(echoed.len(), body.len());
    assert!(echoed == body, "the echoed body differs from the one sent");
}

#[tokio::test]
async fn a_chunked_request_body_arrives_whole_with_content_length_set() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());

    let answer = raw_exchange(
        server.http,
        b"POST /echo HTTP/1.1\r\n\
          Host: localhost\r\n\
          Transfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n\
          5\r\nhello\r\n\
          7\r\n, world\r\n\
          0\r\n\r\n",
        Duration::from_secs(10),
    );
    let response = RawResponse::parse(&answer);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-environ-content-length"), Some("12"));
    assert_eq!(response.body, b"hello, world");
}

// ---------------------------------------------------------------- responses

#[tokio::test]
async fn what_write_sends_comes_before_the_returned_iterable() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());

    let response = client().get(server.url("/write")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "written then returned");
}

#[tokio::test]
async fn start_response_with_exc_info_replaces_the_headers_before_anything_is_sent() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());

    let response = client().get(server.url("/exc_info")).send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-replaced"], "yes");
    assert_eq!(response.text().await.unwrap(), "error page");
}

#[tokio::test]
async fn close_is_called_on_the_returned_iterable() {
    let app = app_copy("probe");
    let log = app.path().join("close.log");
    let server = Server::start(
        app.path(),
        Opts {
            env: vec![("PROBE_CLOSE_LOG".into(), log.display().to_string())],
            ..one_worker()
        },
    );

    let response = client()
        .get(server.url("/close?mark=finished"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ab");
    assert!(
        wait_for_line(&log, "finished", Duration::from_secs(10)).await,
        "close() was not called:\n{}",
        server.stderr()
    );
}

#[tokio::test]
async fn close_is_called_when_the_client_leaves_mid_stream() {
    let app = app_copy("probe");
    let log = app.path().join("close.log");
    let server = Server::start(
        app.path(),
        Opts {
            env: vec![("PROBE_CLOSE_LOG".into(), log.display().to_string())],
            ..one_worker()
        },
    );
    let http = client();

    // 300 chunks 0.1 s apart: the stream would take 30 s to end by itself.
    let started = Instant::now();
    let mut response = http
        .get(server.url("/close_stream?mark=left&n=300&pause=0.1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"chunk 0\n"), "{first:?}");
    // Dropping an unfinished response closes its connection.
    drop(response);

    assert!(
        wait_for_line(&log, "left", Duration::from_secs(10)).await,
        "close() was not called after the client left:\n{}",
        server.stderr()
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    // The only worker is free again.
    let next = http.get(server.url("/write")).send().await.unwrap();
    assert_eq!(next.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn wsgi_file_wrapper_sends_the_file_exactly_from_any_offset() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());
    let http = client();
    let data = std::fs::read(app.path().join("data.bin")).unwrap();

    for offset in [0usize, 1000] {
        let response = http
            .get(server.url(&format!("/file?offset={offset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-length"],
            (data.len() - offset).to_string().as_str()
        );
        let body = response.bytes().await.unwrap();
        assert_eq!(body.len(), data.len() - offset, "offset {offset}");
        assert!(
            body == data[offset..],
            "the bytes from offset {offset} differ"
        );
    }
}

#[tokio::test]
async fn a_20_mb_response_arrives_intact() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());

    const SIZE: usize = 20_000_000;
    let response = client()
        .get(server.url(&format!("/big?bytes={SIZE}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        SIZE.to_string().as_str()
    );
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), SIZE);
    // The app sends bytes 0..=255 over and over.
    let wrong = body
        .iter()
        .enumerate()
        .position(|(i, &b)| b != (i % 256) as u8);
    assert_eq!(wrong, None, "the first wrong byte");
}

#[tokio::test]
async fn a_streamed_response_reaches_the_client_while_the_app_still_produces_it() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());

    // Four chunks 0.5 s apart: the last one is produced at least 1.5 s after the first.
    let mut response = client()
        .get(server.url("/stream?n=4&pause=0.5"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = Vec::new();
    let mut first_at = None;
    while let Some(chunk) = response.chunk().await.unwrap() {
        first_at.get_or_insert_with(Instant::now);
        if body.is_empty() {
            assert_eq!(
                &chunk[..],
                b"chunk 0\n",
                "the first chunk came with later ones"
            );
        }
        body.extend_from_slice(&chunk);
    }
    let gap = first_at.unwrap().elapsed();
    assert_eq!(body, b"chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
    // Buffered, everything would arrive at once; streamed, the end comes >= 1.5 s later.
    assert!(
        gap > Duration::from_millis(900),
        "the body arrived in one go ({gap:?})"
    );
}

#[tokio::test]
async fn wsgi_errors_and_print_lines_appear_in_capstans_log_under_the_worker_name() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());

    let response = client().get(server.url("/log")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "logged");

    for text in ["probe wrote to wsgi.errors", "probe printed to stdout"] {
        assert!(
            server.wait_for_stderr(text, Duration::from_secs(10)),
            "{text:?} is not in the log:\n{}",
            server.stderr()
        );
        let lines = worker_lines(&server.stderr(), text);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let (name, message) = &lines[0];
        assert!(is_worker_name(name), "{text:?} came under {name:?}");
        assert_eq!(message, text);
    }
}

#[tokio::test]
async fn repeated_set_cookie_headers_both_reach_the_client() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());

    let response = client().get(server.url("/headers")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let cookies: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(response.headers()["x-custom"], "yes");
}

#[tokio::test]
async fn an_app_exception_gives_500_logs_the_traceback_and_the_worker_serves_on() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());
    let http = client();

    let before = environ_of(&server).await["pid"].clone();
    let response = http.get(server.url("/raise")).send().await.unwrap();
    assert_eq!(response.status(), 500);

    let error = "RuntimeError: probe asked to raise";
    assert!(
        server.wait_for_stderr(error, Duration::from_secs(10)),
        "no traceback in the log:\n{}",
        server.stderr()
    );
    let stderr = server.stderr();
    let traceback = worker_lines(&stderr, "Traceback (most recent call last):");
    assert!(
        traceback.iter().any(|(name, _)| is_worker_name(name)),
        "no traceback from a worker in the log:\n{stderr}"
    );
    assert!(
        worker_lines(&stderr, error)
            .iter()
            .any(|(name, _)| is_worker_name(name)),
        "{stderr}"
    );

    // The same worker answers the next request.
    let after = environ_of(&server).await["pid"].clone();
    assert_eq!(before, after);
}
