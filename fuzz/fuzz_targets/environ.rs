//! The WSGI environ built from an untrusted request (method, target, headers),
//! encoded into a Request frame. No request may panic it; what it encodes must
//! decode as one Request frame whose NUL-separated fields pair up (no value can
//! forge another variable), with each CGI variable the edge sets exactly once.
#![no_main]

use std::net::SocketAddr;

use capstan_edge::environ::{encode, Connection};
use capstan_edge::forwarded::Client;
use capstan_wire::{decode, Kind};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // method NUL target NUL name NUL value NUL name NUL value ...
    let mut fields = data.split(|&b| b == 0);
    let (Some(method), Some(target)) = (fields.next(), fields.next()) else {
        return;
    };
    let (Ok(method), Ok(uri)) = (
        Method::from_bytes(method),
        Uri::from_maybe_shared(bytes::Bytes::copy_from_slice(target)),
    ) else {
        return;
    };
    let mut request = Request::builder().method(method).uri(uri);
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            request = request.header(name, value);
        }
    }
    let Ok(request) = request.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let peer: SocketAddr = "192.0.2.7:5555".parse().unwrap();
    let conn = Connection {
        local: "127.0.0.1:8000".parse().unwrap(),
        peer,
        tls: data.len() % 2 == 1,
    };
    let client = Client {
        ip: peer.ip(),
        port: peer.port(),
        scheme: if conn.tls { "https" } else { "http" },
        forwarded_for: peer.ip().to_string(),
    };
    let body_len = u64::from(data.first().copied().unwrap_or(0));
    let Ok(mut frame) = encode(&parts, body_len, &client, &conn) else {
        return;
    };
    let whole = frame.len();
    let decoded = decode(&mut frame)
        .expect("the edge's own frame decodes")
        .expect("whole");
    assert!(frame.is_empty(), "one frame, {whole} bytes");
    assert_eq!(decoded.kind, Kind::Request);
    let text = &decoded.payload[1..];
    let fields: Vec<&[u8]> = text.split(|&b| b == 0).collect();
    assert_eq!(
        fields.len() % 2,
        0,
        "fields pair up: {:?}",
        String::from_utf8_lossy(text)
    );
    let keys: Vec<&[u8]> = fields.iter().step_by(2).copied().collect();
    for key in [
        &b"REQUEST_METHOD"[..],
        b"PATH_INFO",
        b"QUERY_STRING",
        b"SERVER_NAME",
        b"SERVER_PORT",
        b"REMOTE_ADDR",
        b"wsgi.url_scheme",
    ] {
        assert_eq!(
            keys.iter().filter(|k| **k == key).count(),
            1,
            "{}",
            String::from_utf8_lossy(key)
        );
    }
    for key in &keys {
        // SECURITY: a header name with an underscore never reaches the app.
        if let Some(name) = key.strip_prefix(b"HTTP_") {
            assert!(!name.is_empty());
        }
        assert!(
            keys.iter().filter(|k| *k == key).count() == 1,
            "{:?} twice",
            String::from_utf8_lossy(key)
        );
    }
});
