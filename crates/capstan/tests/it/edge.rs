//! The front: HTTP/1.1 keep-alive and pipelining, HTTP/2 over TLS, the HTTPS
//! redirect, static files, compression, proxy headers, the access log and the
//! request limits, against examples/hello and the probe app.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::fixture::{app_copy, client, get, raw_exchange, Opts, Server};

/// How long raw exchanges wait for more bytes before deciding the server is done.
const QUIET: Duration = Duration::from_secs(5);

fn one_worker() -> Opts {
    Opts::args(&["--workers", "1"])
}

/// A client that sends no Accept-Encoding and decodes nothing, so what is on
/// the wire is what the test sees.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .no_gzip()
        .no_brotli()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Appends `text` to a file of the copied app.
fn append(app: &Path, file: &str, text: &str) {
    let path = app.join(file);
    let mut contents = fs::read_to_string(&path).unwrap_or_default();
    contents.push_str(text);
    fs::write(path, contents).unwrap();
}

// ---- HTTP/1.1 ----

#[tokio::test]
async fn http1_keeps_the_connection_open_for_a_second_request() {
    let app = app_copy("hello");
    let server = Server::start(app.path(), one_worker());
    let mut stream = TcpStream::connect(server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();

    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let first = read_response(&mut stream);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body, b"Hello from capstan!\n");
    assert_eq!(first.header("connection"), None, "{first:?}");

    // The same socket: it was kept open.
    stream
        .write_all(b"GET /static/style.css HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let second = read_response(&mut stream);
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(
        second.body,
        fs::read(app.path().join("static/style.css")).unwrap()
    );
}

#[tokio::test]
async fn three_pipelined_requests_in_one_write_get_three_answers_in_order() {
    let app = app_copy("hello");
    let server = Server::start(app.path(), one_worker());
    let requests = b"GET /json HTTP/1.1\r\nHost: localhost\r\n\r\n\
                     GET /static/style.css HTTP/1.1\r\nHost: localhost\r\n\r\n\
                     GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let bytes = raw_exchange(server.http, requests, QUIET);
    let responses = parse_responses(&bytes);
    assert_eq!(responses.len(), 3, "{}", String::from_utf8_lossy(&bytes));
    assert!(responses.iter().all(|r| r.status == 200), "{responses:?}");
    let json: serde_json::Value = serde_json::from_slice(&responses[0].body).unwrap();
    assert_eq!(json["message"], "hello");
    assert_eq!(
        responses[1].body,
        fs::read(app.path().join("static/style.css")).unwrap()
    );
    assert_eq!(responses[2].body, b"Hello from capstan!\n");
}

// ---- TLS ----

#[tokio::test]
async fn https_speaks_http2_by_alpn_and_http1_when_asked() {
    let app = app_copy("hello");
    let server = Server::start(
        app.path(),
        Opts {
            args: vec!["--workers".into(), "1".into()],
            ..Opts::tls()
        },
    );

    let h2 = client().get(server.https_url("/")).send().await.unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    assert_eq!(h2.status(), 200);
    assert_eq!(h2.text().await.unwrap(), "Hello from capstan!\n");

    let http1 = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let h1 = http1.get(server.https_url("/json")).send().await.unwrap();
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    assert_eq!(h1.status(), 200);
    let json: serde_json::Value = h1.json().await.unwrap();
    assert_eq!(json["message"], "hello");
}

#[tokio::test]
async fn with_tls_plain_http_redirects_get_with_301_and_post_with_308() {
    let app = app_copy("hello");
    let server = Server::start(
        app.path(),
        Opts {
            args: vec!["--workers".into(), "1".into()],
            ..Opts::tls()
        },
    );
    let tls_port = server.https.unwrap().port();
    let expected = format!("https://127.0.0.1:{tls_port}/json?a=1&b=two");

    let get = get(&server, "/json?a=1&b=two").await;
    assert_eq!(get.status(), 301);
    assert_eq!(get.headers()["location"], expected.as_str());

    let post = client()
        .post(server.url("/json?a=1&b=two"))
        .body("form=data")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 308);
    assert_eq!(post.headers()["location"], expected.as_str());
}

// ---- Static files ----

#[tokio::test]
async fn static_files_answer_if_none_match_and_if_modified_since_with_304() {
    let app = app_copy("hello");
    let server = Server::start(app.path(), one_worker());
    let http = raw_client();
    let url = server.url("/static/style.css");

    let full = http.get(&url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    let etag = full.headers()["etag"].clone();
    let last_modified = full.headers()["last-modified"].clone();
    assert!(etag.to_str().unwrap().starts_with('"'), "{etag:?}");

    let by_etag = http
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(by_etag.status(), 304);
    assert_eq!(by_etag.headers()["etag"], etag);
    assert!(by_etag.bytes().await.unwrap().is_empty());

    let by_date = http
        .get(&url)
        .header("if-modified-since", last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(by_date.status(), 304);

    let other_etag = http
        .get(&url)
        .header("if-none-match", "\"some-other-version\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other_etag.status(), 200);
}

#[tokio::test]
async fn static_files_serve_a_byte_range_with_206_and_head_without_a_body() {
    let app = app_copy("hello");
    let server = Server::start(app.path(), one_worker());
    let css = fs::read(app.path().join("static/style.css")).unwrap();

    let range = client()
        .get(server.url("/static/style.css"))
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(
        range.headers()["content-range"],
        format!("bytes 0-9/{}", css.len()).as_str()
    );
    assert_eq!(range.bytes().await.unwrap(), css[..10]);

    let head = raw_exchange(
        server.http,
        b"HEAD /static/style.css HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        QUIET,
    );
    let text = String::from_utf8_lossy(&head);
    let (headers, rest) = text.split_once("\r\n\r\n").expect("a complete head");
    assert!(headers.starts_with("HTTP/1.1 200"), "{text}");
    let lower = headers.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("\r\ncontent-length: {}\r\n", css.len())),
        "{text}"
    );
    assert!(
        lower.contains("\r\ncontent-type: text/css; charset=utf-8"),
        "{text}"
    );
    assert!(lower.contains("\r\netag: "), "{text}");
    assert_eq!(rest, "", "HEAD must not send a body");
}

#[tokio::test]
async fn static_files_are_public_for_30_days_unless_a_max_age_is_configured() {
    let app = app_copy("hello");
    fs::create_dir(app.path().join("assets")).unwrap();
    fs::write(app.path().join("assets/app.js"), "console.log('hi');\n").unwrap();
    let toml = fs::read_to_string(app.path().join("capstan.toml")).unwrap();
    let toml = toml.replace(
        "\"/static\" = \"static\"",
        "\"/static\" = { dir = \"static\", max_age = \"1h\" }\n\"/assets\" = \"assets\"",
    );
    fs::write(app.path().join("capstan.toml"), toml).unwrap();
    let server = Server::start(app.path(), one_worker());

    let configured = get(&server, "/static/style.css").await;
    assert_eq!(configured.status(), 200);
    assert_eq!(
        configured.headers()["cache-control"],
        "public, max-age=3600"
    );

    let default = get(&server, "/assets/app.js").await;
    assert_eq!(default.status(), 200);
    assert_eq!(
        default.headers()["cache-control"],
        "public, max-age=2592000"
    );
}

#[tokio::test]
async fn precompressed_siblings_are_sent_to_clients_that_accept_them() {
    let app = app_copy("hello");
    let css = fs::read(app.path().join("static/style.css")).unwrap();
    // Not real compressed data: the exact bytes prove which file answered.
    fs::write(
        app.path().join("static/style.css.br"),
        b"brotli sibling bytes",
    )
    .unwrap();
    fs::write(
        app.path().join("static/style.css.gz"),
        b"gzip sibling bytes",
    )
    .unwrap();
    let server = Server::start(app.path(), one_worker());
    let http = raw_client();
    let url = server.url("/static/style.css");

    let br = http
        .get(&url)
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(br.status(), 200);
    assert_eq!(br.headers()["content-encoding"], "br");
    assert_eq!(br.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(br.headers()["vary"], "Accept-Encoding");
    assert_eq!(br.bytes().await.unwrap(), &b"brotli sibling bytes"[..]);

    let gzip = http
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    assert_eq!(gzip.bytes().await.unwrap(), &b"gzip sibling bytes"[..]);

    let both = http
        .get(&url)
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(both.headers()["content-encoding"], "br");

    let plain = http.get(&url).send().await.unwrap();
    assert_eq!(plain.headers().get("content-encoding"), None);
    assert_eq!(plain.headers()["vary"], "Accept-Encoding");
    assert_eq!(plain.bytes().await.unwrap(), css);
}

#[tokio::test]
async fn a_directory_is_served_by_its_index_html_and_redirected_without_its_slash() {
    let app = app_copy("hello");
    fs::create_dir(app.path().join("static/docs")).unwrap();
    fs::write(
        app.path().join("static/docs/index.html"),
        "<h1>the docs</h1>\n",
    )
    .unwrap();
    let server = Server::start(app.path(), one_worker());

    let index = get(&server, "/static/docs/").await;
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(index.text().await.unwrap(), "<h1>the docs</h1>\n");

    let bare = get(&server, "/static/docs?page=2").await;
    assert_eq!(bare.status(), 301);
    assert_eq!(bare.headers()["location"], "/static/docs/?page=2");
}

#[tokio::test]
async fn path_traversal_out_of_static_never_reveals_the_app_source() {
    let app = app_copy("hello");
    std::os::unix::fs::symlink("../app.py", app.path().join("static/source.py")).unwrap();
    let server = Server::start(app.path(), one_worker());
    let source = fs::read_to_string(app.path().join("app.py")).unwrap();
    assert!(source.contains("from flask import"));

    for target in [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/%2E%2E/app.py",
        "/static/..%2fapp.py",
        "/static/%2F..%2Fapp.py",
        "/static/..%5capp.py",
        "/static/./../app.py",
        "/static/source.py",
    ] {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let bytes = raw_exchange(server.http, request.as_bytes(), QUIET);
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.starts_with("HTTP/1.1 404") || text.starts_with("HTTP/1.1 400"),
            "{target}: {text}"
        );
        assert!(
            !text.contains("from flask import"),
            "{target} leaked the source: {text}"
        );
    }
    // The files themselves are still served.
    let css = get(&server, "/static/style.css").await;
    assert_eq!(css.status(), 200);
}

// ---- Compression ----

#[tokio::test]
async fn text_and_svg_are_compressed_as_accepted_and_octet_streams_are_not() {
    let app = app_copy("probe");
    fs::create_dir(app.path().join("static")).unwrap();
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100\" height=\"100\">{}</svg>\n",
        "<rect x=\"1\" y=\"1\" width=\"10\" height=\"10\" fill=\"#336699\"/>".repeat(20)
    );
    fs::write(app.path().join("static/logo.svg"), &svg).unwrap();
    fs::write(
        app.path().join("static/blob.bin"),
        "binary-ish ".repeat(200),
    )
    .unwrap();
    append(
        app.path(),
        "capstan.toml",
        "\n[static]\n\"/static\" = \"static\"\n",
    );
    let server = Server::start(app.path(), one_worker());
    let expected = "capstan compresses text. ".repeat(200);
    let raw = raw_client();

    // On the wire: the coding asked for, and a smaller body.
    for coding in ["gzip", "br"] {
        let response = raw
            .get(server.url("/text"))
            .header("accept-encoding", coding)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-encoding"], coding);
        let body = response.bytes().await.unwrap();
        assert!(
            body.len() < expected.len() / 4,
            "{coding}: {} bytes",
            body.len()
        );
        if coding == "gzip" {
            assert_eq!(
                &body[..2],
                &[0x1f, 0x8b],
                "a gzip stream starts with its magic"
            );
        }
    }
    // Decoded by a client that accepts only that coding: the same text.
    for single_coding in [
        reqwest::Client::builder().no_proxy().no_brotli(),
        reqwest::Client::builder().no_proxy().no_gzip(),
    ] {
        let client = single_coding.build().unwrap();
        let response = client.get(server.url("/text")).send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), expected);
    }

    let identity = raw.get(server.url("/text")).send().await.unwrap();
    assert_eq!(identity.headers().get("content-encoding"), None);
    assert_eq!(identity.text().await.unwrap(), expected);

    let logo = raw
        .get(server.url("/static/logo.svg"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(logo.headers()["content-type"], "image/svg+xml");
    assert_eq!(logo.headers()["content-encoding"], "gzip");

    for path in ["/static/blob.bin", "/big?bytes=4096"] {
        let binary = raw
            .get(server.url(path))
            .header("accept-encoding", "gzip, br")
            .send()
            .await
            .unwrap();
        assert_eq!(binary.status(), 200, "{path}");
        assert_eq!(
            binary.headers()["content-type"],
            "application/octet-stream",
            "{path}"
        );
        assert_eq!(binary.headers().get("content-encoding"), None, "{path}");
    }
}

// ---- Proxy headers ----

async fn environ(server: &Server, headers: &[(&str, &str)]) -> serde_json::Value {
    let mut request = client().get(server.url("/environ"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_client_are_replaced() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());
    let env = environ(
        &server,
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("x-real-ip", "203.0.113.8"),
        ],
    )
    .await;
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1");
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert_eq!(env["HTTP_X_REAL_IP"], "127.0.0.1");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_and_scheme_reach_the_app() {
    let app = app_copy("probe");
    append(
        app.path(),
        "capstan.toml",
        "\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    let server = Server::start(app.path(), one_worker());
    let env = environ(
        &server,
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(env["REMOTE_ADDR"], "203.0.113.7");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "203.0.113.7, 127.0.0.1");
    assert_eq!(env["wsgi.url_scheme"], "https");

    // Without the headers, the proxy itself is the client.
    let env = environ(&server, &[]).await;
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["wsgi.url_scheme"], "http");
}

// ---- Access log ----

#[tokio::test]
async fn each_request_is_logged_to_stdout_in_the_combined_format() {
    let app = app_copy("hello");
    let server = Server::start(app.path(), one_worker());
    let response = raw_client()
        .get(server.url("/?from=access-log-test"))
        .header("user-agent", "capstan-test/1.0 (edge)")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), 20);

    let line = wait_for_stdout_line(&server, "access-log-test", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no access log line; stdout:\n{}", server.stdout()));
    let rest = line
        .strip_prefix("127.0.0.1 - - [")
        .unwrap_or_else(|| panic!("{line}"));
    let (time, rest) = rest.split_once("] ").unwrap_or_else(|| panic!("{line}"));
    assert!(is_common_log_time(time), "{time:?} in {line}");
    let expected =
        "\"GET /?from=access-log-test HTTP/1.1\" 200 20 \"-\" \"capstan-test/1.0 (edge)\"";
    assert!(rest.starts_with(expected), "{line}");
    assert!(
        !server.stderr().contains("access-log-test"),
        "the access log goes to stdout only"
    );
}

#[tokio::test]
async fn no_access_log_keeps_stdout_empty() {
    let app = app_copy("hello");
    let server = Server::start(
        app.path(),
        Opts::args(&["--workers", "1", "--no-access-log"]),
    );
    for _ in 0..2 {
        let response = get(&server, "/?from=silent").await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    // A line is written when its response ends, before capstan logs that it stopped.
    server.signal(Signal::SIGTERM);
    assert!(
        server.wait_for_stderr("capstan | stopped\n", Duration::from_secs(30)),
        "{}",
        server.stderr()
    );
    assert_eq!(
        server.stdout(),
        "",
        "nothing on stdout with --no-access-log"
    );
}

// ---- Limits ----

#[tokio::test]
async fn a_body_over_max_body_size_gets_413_with_or_without_content_length() {
    let app = app_copy("probe");
    append(
        app.path(),
        "capstan.toml",
        "\n[http]\nmax_body_size = \"1KiB\"\n",
    );
    let server = Server::start(app.path(), one_worker());

    let small = client()
        .post(server.url("/input"))
        .body(vec![b'a'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);

    let declared = client()
        .post(server.url("/input"))
        .body(vec![b'a'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413);

    let mut chunked = b"POST /input HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
                        Connection: close\r\n\r\n"
        .to_vec();
    for _ in 0..2 {
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend_from_slice(&[b'a'; 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let bytes = raw_exchange(server.http, &chunked, QUIET);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

#[tokio::test]
async fn an_http11_request_without_host_gets_400() {
    let app = app_copy("probe");
    let server = Server::start(app.path(), one_worker());
    let bytes = raw_exchange(
        server.http,
        b"GET /environ HTTP/1.1\r\nConnection: close\r\n\r\n",
        QUIET,
    );
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(!text.contains("REMOTE_ADDR"), "{text}");
}

// ---- Helpers ----

fn wait_for_stdout_line(server: &Server, needle: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(line) = server.stdout().lines().find(|l| l.contains(needle)) {
            return Some(line.to_owned());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// `21/Nov/2026:22:26:40 +0000`
fn is_common_log_time(time: &str) -> bool {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let Some((date, zone)) = time.split_once(' ') else {
        return false;
    };
    let parts: Vec<&str> = date.splitn(3, '/').collect();
    let [day, month, rest] = parts.as_slice() else {
        return false;
    };
    let clock: Vec<&str> = rest.split(':').collect();
    zone == "+0000"
        && digits(day, 2)
        && MONTHS.contains(month)
        && clock.len() == 4
        && digits(clock[0], 4)
        && clock[1..].iter().all(|c| digits(c, 2))
}

/// One HTTP/1.1 response as it came off the wire.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads exactly one response (Content-Length or chunked) from an open connection.
fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((response, used)) = parse_one(&buf) {
            assert_eq!(used, buf.len(), "bytes after the response");
            return response;
        }
        assert!(Instant::now() < deadline, "no complete response");
        let n = stream.read(&mut chunk).expect("the response arrives");
        assert!(
            n > 0,
            "connection closed after {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Every response in `bytes`, in order.
fn parse_responses(mut bytes: &[u8]) -> Vec<RawResponse> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        match parse_one(bytes) {
            Some((response, used)) => {
                out.push(response);
                bytes = &bytes[used..];
            }
            None => panic!("incomplete response: {}", String::from_utf8_lossy(bytes)),
        }
    }
    out
}

/// The first complete response in `buf` and the bytes it took, or None if more are needed.
fn parse_one(buf: &[u8]) -> Option<(RawResponse, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut response = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let mut at = end + 4;
    if response.status == 304 || response.status == 204 {
        return Some((response, at));
    }
    if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let line_end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&buf[at..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                // No trailers expected: the final CRLF.
                if buf.len() < at + 2 {
                    return None;
                }
                return Some((response, at + 2));
            }
            if buf.len() < at + size + 2 {
                return None;
            }
            response.body.extend_from_slice(&buf[at..at + size]);
            at += size + 2;
        }
    }
    let length: usize = response
        .header("content-length")
        .expect("a length or chunks")
        .parse()
        .unwrap();
    if buf.len() < at + length {
        return None;
    }
    response.body = buf[at..at + length].to_vec();
    Some((response, at + length))
}
