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
        // hyper drops the Content-Length and reads the chunked body, then closes
        // the connection (RFC 9112, 6.3): nothing can be smuggled behind it.
        (
            "Content-Length and Transfer-Encoding together",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            200,
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
