//! What RFC 9110/9112/9113 make a server refuse, one test per rule with its
//! section in the name, over raw TCP (and raw HTTP/2 frames over TLS): the
//! status, the closed connection, and that the app saw nothing. And the
//! valid requests next to them that must still be served.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::fixture::{app_copy, Opts, Server};

/// What the probe app prints when /log reaches it.
const APP_MARK: &str = "probe printed to stdout";

/// A probe server with one worker.
fn probe() -> (tempfile::TempDir, Server) {
    let app = app_copy("probe");
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    (app, server)
}

/// What the server answered, and whether it then closed the connection.
struct Answer {
    bytes: Vec<u8>,
    closed: bool,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The status of each response in the answer, in order.
    fn statuses(&self) -> Vec<u16> {
        // A status line may follow a body with no CRLF between them.
        let text = self.text();
        text.match_indices("HTTP/1.")
            .filter_map(|(at, _)| {
                let rest = text.get(at + 9..at + 13)?;
                let status = rest.get(..3)?.parse().ok()?;
                (rest.ends_with(' ') && text[at + 8..].starts_with(' ')).then_some(status)
            })
            .collect()
    }

    fn status(&self) -> u16 {
        self.statuses()
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no response in {:?}", self.text()))
    }
}

/// Writes `request` (then half-closes when `eof`), reads until the server
/// closes or is quiet for 5 s.
fn exchange_on(stream: &mut TcpStream, request: &[u8], eof: bool) -> Answer {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    if eof {
        stream.shutdown(Shutdown::Write).unwrap();
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    Answer { bytes, closed }
}

fn exchange(server: &Server, request: &[u8]) -> Answer {
    exchange_on(
        &mut TcpStream::connect(server.http).unwrap(),
        request,
        false,
    )
}

/// The request is refused with `status` and the connection closed, and the
/// app never saw it.
fn assert_refused(request: &[u8], status: u16) {
    let (_app, server) = probe();
    let answer = exchange(&server, request);
    assert_eq!(answer.status(), status, "{}", answer.text());
    assert!(
        answer.closed,
        "the connection stayed open: {}",
        answer.text()
    );
    assert_app_saw_nothing(&server);
}

fn assert_app_saw_nothing(server: &Server) {
    // A request that reaches the app after the refused one proves the
    // worker was idle and its output is read: the mark is not in it.
    if server.https.is_some() {
        let control = [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", "/environ"),
        ];
        assert_eq!(h2_exchange(server, &control), H2::Status(200));
    } else {
        let control = exchange(
            server,
            b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(control.status(), 200, "{}", control.text());
    }
    assert!(!server.stderr().contains(APP_MARK), "{}", server.stderr());
}

#[test]
fn rfc9112_3_2_two_host_headers_get_400_and_the_app_sees_nothing() {
    assert_refused(b"GET /log HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
}

#[test]
fn rfc9112_3_2_http_1_1_without_host_gets_400() {
    assert_refused(b"GET /log HTTP/1.1\r\n\r\n", 400);
}

#[test]
fn rfc9112_3_2_a_host_with_userinfo_gets_400() {
    assert_refused(b"GET /log HTTP/1.1\r\nHost: user@example.com\r\n\r\n", 400);
}

#[test]
fn rfc9112_3_2_a_host_with_a_path_or_a_bad_port_gets_400() {
    assert_refused(b"GET /log HTTP/1.1\r\nHost: example.com/x\r\n\r\n", 400);
    assert_refused(b"GET /log HTTP/1.1\r\nHost: example.com:80x\r\n\r\n", 400);
}

#[test]
fn rfc9110_5_3_two_content_type_headers_get_400() {
    assert_refused(
        b"POST /log HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        400,
    );
}

#[test]
fn rfc6585_5_a_header_field_over_8_kib_gets_431() {
    let request = format!(
        "GET /log HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    assert_refused(request.as_bytes(), 431);
}

#[test]
fn rfc6585_5_a_header_field_just_under_8_kib_is_served() {
    let (_app, server) = probe();
    let request = format!(
        "GET /environ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(8 * 1024 - 8)
    );
    assert_eq!(exchange(&server, request.as_bytes()).status(), 200);
}

#[test]
fn rfc9112_5_1_whitespace_between_a_field_name_and_its_colon_gets_400() {
    assert_refused(b"GET /log HTTP/1.1\r\nHost : x\r\n\r\n", 400);
}

#[test]
fn rfc9112_2_2_whitespace_before_the_first_field_gets_400() {
    assert_refused(b"GET /log HTTP/1.1\r\n Host: x\r\nHost: x\r\n\r\n", 400);
}

#[test]
fn rfc9112_2_2_a_bare_cr_in_a_field_value_gets_400() {
    assert_refused(b"GET /log HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400);
}

#[test]
fn rfc9112_5_2_obsolete_line_folding_gets_400() {
    assert_refused(
        b"GET /log HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
        400,
    );
}

#[test]
fn rfc9110_6_5_1_trailers_carrying_content_length_host_or_transfer_encoding_get_400() {
    for field in [
        "Content-Length: 3",
        "Host: other",
        "Transfer-Encoding: chunked",
    ] {
        let request = format!(
            "POST /log HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n{field}\r\n\r\n"
        );
        assert_refused(request.as_bytes(), 400);
    }
}

#[test]
fn rfc9112_3_2_3_an_authority_form_target_on_get_gets_400() {
    assert_refused(
        b"GET example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        400,
    );
}

#[test]
fn rfc9112_3_2_4_an_asterisk_target_on_get_gets_400() {
    assert_refused(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

#[test]
fn rfc9110_9_3_6_connect_gets_405_with_allow_instead_of_a_closed_connection() {
    let request = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    assert_refused(request, 405);
    let (_app, server) = probe();
    let answer = exchange(&server, request);
    // RFC 9110, 15.5.6: a 405 says which methods are allowed.
    assert!(
        answer
            .text()
            .to_ascii_lowercase()
            .contains("\r\nallow: get, head, post"),
        "{}",
        answer.text()
    );
}

#[test]
fn rfc9112_6_1_a_transfer_coding_other_than_chunked_gets_501() {
    assert_refused(
        b"POST /log HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    );
}

#[test]
fn rfc9112_6_1_a_final_coding_that_is_not_chunked_gets_400() {
    assert_refused(
        b"POST /log HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn rfc9112_7_chunked_applied_twice_gets_400() {
    assert_refused(
        b"POST /log HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn rfc9112_6_1_transfer_encoding_in_http_1_0_gets_400() {
    assert_refused(
        b"POST /log HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn rfc9112_6_3_content_length_with_transfer_encoding_gets_400_and_nothing_is_smuggled() {
    for request in [
        &b"POST /log HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /log HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"POST /log HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /log HTTP/1.1\r\nHost: x\r\n\r\n"[..],
    ] {
        assert_refused(request, 400);
    }
}

#[test]
fn rfc9110_8_6_two_equal_content_lengths_get_400() {
    assert_refused(
        b"POST /log HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
    );
}

#[test]
fn rfc9110_8_6_two_different_content_lengths_get_400() {
    assert_refused(
        b"POST /log HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    );
}

#[test]
fn rfc9110_8_6_a_content_length_list_gets_400() {
    assert_refused(
        b"POST /log HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc",
        400,
    );
}

#[test]
fn rfc9112_7_1_a_chunked_body_cut_off_by_the_client_closing_gets_400_at_once() {
    let (_app, server) = probe();
    let mut stream = TcpStream::connect(server.http).unwrap();
    let started = std::time::Instant::now();
    let answer = exchange_on(
        &mut stream,
        b"POST /log HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n",
        true,
    );
    assert_eq!(answer.status(), 400, "{}", answer.text());
    assert!(answer.closed);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_app_saw_nothing(&server);
}

#[test]
fn rfc9112_7_1_a_chunked_body_that_stops_before_its_end_gets_408_at_client_timeout() {
    let app = app_copy("probe");
    std::fs::write(
        app.path().join("capstan.toml"),
        "name = \"probe\"\n\n[web]\nwsgi = \"app:app\"\n\n[http]\nclient_timeout = \"1s\"\n",
    )
    .unwrap();
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let answer = exchange(
        &server,
        b"POST /log HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n",
    );
    assert_eq!(answer.status(), 408, "{}", answer.text());
    assert!(answer.closed);
    assert_app_saw_nothing(&server);
}

// What must still be served.

#[test]
fn rfc9112_3_2_http_1_0_without_host_is_served() {
    let (_app, server) = probe();
    let answer = exchange(&server, b"GET /log HTTP/1.0\r\n\r\n");
    assert_eq!(answer.status(), 200, "{}", answer.text());
    assert!(server.wait_for_stderr(APP_MARK, Duration::from_secs(5)));
}

#[test]
fn rfc9112_3_2_4_options_asterisk_is_answered_200() {
    let (_app, server) = probe();
    let answer = exchange(
        &server,
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(answer.status(), 200, "{}", answer.text());
}

#[test]
fn rfc9112_3_2_2_an_absolute_form_target_is_served_and_the_app_sees_its_host() {
    let (_app, server) = probe();
    let answer = exchange(
        &server,
        b"GET http://target.example:8080/environ?q=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(answer.status(), 200, "{}", answer.text());
    let text = answer.text();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let environ: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(environ["HTTP_HOST"], "target.example:8080");
    assert_eq!(environ["SERVER_NAME"], "target.example");
    assert_eq!(environ["PATH_INFO"], "/environ");
    assert_eq!(environ["QUERY_STRING"], "q=1");
}

#[test]
fn rfc9112_7_1_2_a_chunked_body_with_a_valid_trailer_is_served() {
    let (_app, server) = probe();
    let answer = exchange(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Checksum: 1234\r\n\r\n",
    );
    assert_eq!(answer.status(), 200, "{}", answer.text());
    assert!(
        answer.text().ends_with("\r\n\r\nabcde"),
        "{}",
        answer.text()
    );
}

#[test]
fn rfc9112_9_3_2_pipelined_requests_after_chunked_and_sized_bodies_are_all_answered_in_order() {
    let (_app, server) = probe();
    let answer = exchange(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nfirst\r\n0\r\nX-T: 1\r\n\r\n\
POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond\
POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthird\r\n0\r\n\r\n\
GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        answer.statuses(),
        vec![200, 200, 200, 200],
        "{}",
        answer.text()
    );
    let text = answer.text();
    let (first, second, third) = (
        text.find("first").unwrap(),
        text.find("second").unwrap(),
        text.find("third").unwrap(),
    );
    assert!(first < second && second < third, "{text}");
}

#[test]
fn rfc9112_6_2_a_body_that_contains_a_content_length_line_is_served_whole() {
    let (_app, server) = probe();
    let body = "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nGET /x HTTP/1.1\r\n\r\n";
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let answer = exchange(&server, request.as_bytes());
    assert_eq!(answer.statuses(), vec![200, 200], "{}", answer.text());
    assert!(answer.text().contains(body), "{}", answer.text());
}

// HTTP/2, hand-encoded over TLS (ALPN h2): an h2 client will not send a
// malformed request.

/// How the server met one HTTP/2 request on stream 1.
#[derive(Debug, PartialEq, Eq)]
enum H2 {
    /// A response with this status (those in HPACK's static table).
    Status(u16),
    /// A response whose status is not in the static table.
    OtherStatus,
    /// RST_STREAM with this error code.
    Reset(u32),
    /// GOAWAY with this error code.
    GoAway(u32),
    /// The connection ended or went quiet without an answer.
    Nothing,
}

const PROTOCOL_ERROR: u32 = 1;

#[derive(Debug)]
struct AnyCertificate;

impl tokio_rustls::rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &tokio_rustls::rustls::pki_types::CertificateDer<'_>,
        _: &[tokio_rustls::rustls::pki_types::CertificateDer<'_>],
        _: &tokio_rustls::rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: tokio_rustls::rustls::pki_types::UnixTime,
    ) -> Result<tokio_rustls::rustls::client::danger::ServerCertVerified, tokio_rustls::rustls::Error>
    {
        Ok(tokio_rustls::rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &tokio_rustls::rustls::pki_types::CertificateDer<'_>,
        _: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        Ok(tokio_rustls::rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &tokio_rustls::rustls::pki_types::CertificateDer<'_>,
        _: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        Ok(tokio_rustls::rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        tokio_rustls::rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// One frame: 3-byte length, type, flags, stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK literal fields without indexing, no Huffman (RFC 7541, 6.2.2).
fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        assert!(name.len() < 127 && value.len() < 127);
        out.push(0x00);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(value.len() as u8);
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Sends one request (END_STREAM) with exactly these fields on stream 1
/// and says how the server met it.
fn h2_exchange(server: &Server, fields: &[(&str, &str)]) -> H2 {
    use tokio_rustls::rustls;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AnyCertificate))
    .with_no_client_auth();
    let mut config = config;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(server.https.unwrap()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let mut request = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    request.extend(frame(4, 0, 0, &[]));
    request.extend(frame(1, 0x5, 1, &hpack(fields)));
    tls.write_all(&request).unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        // Whole frames first.
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let (kind, stream) = (
                buf[3],
                u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff,
            );
            let payload = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            let code = |at: usize| u32::from_be_bytes(payload[at..at + 4].try_into().unwrap());
            match (kind, stream) {
                (1, 1) => {
                    // The first field is :status: indexed 0x88.. in the static table.
                    let statuses = [200, 204, 206, 304, 400, 404, 500];
                    return match payload.first() {
                        Some(&b) if (0x88..=0x8e).contains(&b) => {
                            H2::Status(statuses[usize::from(b - 0x88)])
                        }
                        _ => H2::OtherStatus,
                    };
                }
                (3, 1) => return H2::Reset(code(0)),
                (7, _) => return H2::GoAway(code(4)),
                _ => {}
            }
        }
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return H2::Nothing,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn tls_probe() -> (tempfile::TempDir, Server) {
    let app = app_copy("probe");
    let mut opts = Opts::tls();
    opts.args = vec!["--workers".into(), "1".into()];
    let server = Server::start(app.path(), opts);
    (app, server)
}

/// The fields of a valid GET /log over HTTPS, with `extra` after them.
fn h2_get<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", "/log"),
    ];
    fields.extend_from_slice(extra);
    fields
}

/// The h2 request is refused as `expected` says and the app saw nothing.
fn assert_h2_refused(fields: &[(&str, &str)], expected: &[H2]) {
    let (_app, server) = tls_probe();
    let outcome = h2_exchange(&server, fields);
    assert!(expected.contains(&outcome), "{outcome:?} for {fields:?}");
    assert_app_saw_nothing(&server);
}

#[test]
fn rfc9113_8_3_1_a_valid_request_with_a_matching_host_is_served() {
    let (_app, server) = tls_probe();
    assert_eq!(h2_exchange(&server, &h2_get(&[])), H2::Status(200));
    assert_eq!(
        h2_exchange(&server, &h2_get(&[("host", "LOCALHOST")])),
        H2::Status(200)
    );
    assert!(server.wait_for_stderr(APP_MARK, Duration::from_secs(5)));
}

#[test]
fn rfc9113_8_3_1_a_host_that_disagrees_with_authority_gets_400() {
    assert_h2_refused(&h2_get(&[("host", "other.example")]), &[H2::Status(400)]);
}

#[test]
fn rfc9113_8_3_1_two_host_fields_get_400() {
    assert_h2_refused(
        &h2_get(&[("host", "localhost"), ("host", "localhost")]),
        &[H2::Status(400)],
    );
}

#[test]
fn rfc9113_8_2_2_connection_specific_fields_are_a_protocol_error() {
    for field in [
        ("connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("te", "gzip"),
        ("upgrade", "websocket"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
    ] {
        assert_h2_refused(
            &h2_get(&[field]),
            &[H2::Reset(PROTOCOL_ERROR), H2::GoAway(PROTOCOL_ERROR)],
        );
    }
}

#[test]
fn rfc9113_8_2_2_te_trailers_is_allowed() {
    let (_app, server) = tls_probe();
    assert_eq!(
        h2_exchange(&server, &h2_get(&[("te", "trailers")])),
        H2::Status(200)
    );
}

#[test]
fn rfc9113_8_3_a_repeated_pseudo_header_is_a_protocol_error() {
    let mut fields = h2_get(&[]);
    fields.push((":path", "/other"));
    assert_h2_refused(
        &fields,
        &[H2::Reset(PROTOCOL_ERROR), H2::GoAway(PROTOCOL_ERROR)],
    );
}

#[test]
fn rfc9113_8_3_a_pseudo_header_after_a_regular_field_is_a_protocol_error() {
    let fields = [
        (":method", "GET"),
        (":scheme", "https"),
        ("x-a", "1"),
        (":authority", "localhost"),
        (":path", "/log"),
    ];
    assert_h2_refused(
        &fields,
        &[H2::Reset(PROTOCOL_ERROR), H2::GoAway(PROTOCOL_ERROR)],
    );
}

#[test]
fn rfc9113_8_2_an_uppercase_field_name_is_a_protocol_error() {
    assert_h2_refused(
        &h2_get(&[("X-Upper", "1")]),
        &[H2::Reset(PROTOCOL_ERROR), H2::GoAway(PROTOCOL_ERROR)],
    );
}

#[test]
fn rfc9113_8_3_1_a_request_without_authority_or_host_gets_400() {
    let fields = [(":method", "GET"), (":scheme", "https"), (":path", "/log")];
    assert_h2_refused(&fields, &[H2::Status(400)]);
}
