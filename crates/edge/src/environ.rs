//! The WSGI environ of a request, encoded straight into a Request frame.

use std::net::SocketAddr;

use bytes::BytesMut;
use capstan_wire::{encode_request, RequestFlags};
use http::request::Parts;
use http::{header, Version};
use percent_encoding::percent_decode;

use crate::forwarded::Client;

/// Facts about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    /// The address the client connected to.
    pub local: SocketAddr,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Whether it is TLS.
    pub tls: bool,
}

/// Why a request cannot be handed to the app.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvironError {
    /// SECURITY: a NUL byte (e.g. `%00` in the path) is refused outright.
    Nul,
}

/// Encodes the environ of a request with a body of `body_len` bytes.
///
/// PATH_INFO is percent-decoded bytes (the shim reads them as latin-1, per
/// PEP 3333); repeated headers are joined with ", " (cookies with "; ").
pub fn encode(
    parts: &Parts,
    body_len: u64,
    client: &Client,
    conn: &Connection,
) -> Result<BytesMut, EnvironError> {
    let uri = &parts.uri;
    let path = uri.path();
    let path_info: Vec<u8> = percent_decode(path.as_bytes()).collect();
    let query = uri.query().unwrap_or("");
    let raw_uri = uri.path_and_query().map_or(path, |pq| pq.as_str());
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()));
    let (server_name, server_port) = split_host(host.as_deref(), conn);
    let protocol = match parts.version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    };
    let remote_addr = client.ip.to_string();
    let remote_port = client.port.to_string();
    let content_length = body_len.to_string();

    let mut env: Vec<(&[u8], &[u8])> = Vec::with_capacity(24 + parts.headers.len());
    env.push((b"REQUEST_METHOD", parts.method.as_str().as_bytes()));
    env.push((b"SCRIPT_NAME", b""));
    env.push((b"PATH_INFO", &path_info));
    env.push((b"QUERY_STRING", query.as_bytes()));
    env.push((b"RAW_URI", raw_uri.as_bytes()));
    env.push((b"REQUEST_URI", raw_uri.as_bytes()));
    env.push((b"SERVER_NAME", server_name.as_bytes()));
    env.push((b"SERVER_PORT", server_port.as_bytes()));
    env.push((b"SERVER_PROTOCOL", protocol.as_bytes()));
    env.push((b"REMOTE_ADDR", remote_addr.as_bytes()));
    env.push((b"REMOTE_PORT", remote_port.as_bytes()));
    env.push((b"wsgi.url_scheme", client.scheme.as_bytes()));
    if body_len > 0 || parts.headers.contains_key(header::CONTENT_LENGTH) {
        env.push((b"CONTENT_LENGTH", content_length.as_bytes()));
    }

    // Header names become HTTP_UPPER_CASE; the storage lives until encoding.
    let mut names: Vec<Vec<u8>> = Vec::with_capacity(parts.headers.keys_len());
    let mut joined: Vec<Vec<u8>> = Vec::new();
    let mut values: Vec<(usize, ValueRef)> = Vec::with_capacity(parts.headers.keys_len());
    let mut has_host = false;
    for name in parts.headers.keys() {
        if is_replaced_by_edge(name) {
            continue;
        }
        // SECURITY: HTTP_X_FOO could come from "X-Foo" or "X_Foo"; like nginx and
        // gunicorn, headers with underscores are dropped so none can pose as another.
        if name.as_str().contains('_') {
            continue;
        }
        let cgi_name = if name == header::CONTENT_TYPE {
            b"CONTENT_TYPE".to_vec()
        } else if name == header::CONTENT_LENGTH {
            continue;
        } else {
            has_host |= name == header::HOST;
            let mut cgi = Vec::with_capacity(5 + name.as_str().len());
            cgi.extend_from_slice(b"HTTP_");
            cgi.extend(name.as_str().bytes().map(|b| match b {
                b'-' => b'_',
                other => other.to_ascii_uppercase(),
            }));
            cgi
        };
        let mut all = parts.headers.get_all(name).iter();
        let first = all.next().expect("a key has a value");
        let value = match all.next() {
            None => ValueRef::Single(first.as_bytes()),
            Some(second) => {
                let separator: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
                let mut out = first.as_bytes().to_vec();
                for more in std::iter::once(second).chain(all) {
                    out.extend_from_slice(separator);
                    out.extend_from_slice(more.as_bytes());
                }
                joined.push(out);
                ValueRef::Joined(joined.len() - 1)
            }
        };
        names.push(cgi_name);
        values.push((names.len() - 1, value));
    }
    for (name_index, value) in &values {
        let value: &[u8] = match value {
            ValueRef::Single(v) => v,
            ValueRef::Joined(i) => &joined[*i],
        };
        env.push((&names[*name_index], value));
    }
    if !has_host {
        if let Some(host) = host.as_deref() {
            env.push((b"HTTP_HOST", host.as_bytes()));
        }
    }
    let real_ip = remote_addr.as_bytes();
    env.push((b"HTTP_X_FORWARDED_FOR", client.forwarded_for.as_bytes()));
    env.push((b"HTTP_X_FORWARDED_PROTO", client.scheme.as_bytes()));
    env.push((b"HTTP_X_REAL_IP", real_ip));

    let mut frame = BytesMut::with_capacity(512 + raw_uri.len());
    encode_request(0, RequestFlags::NONE, env, &mut frame).map_err(|_| EnvironError::Nul)?;
    Ok(frame)
}

enum ValueRef<'a> {
    Single(&'a [u8]),
    Joined(usize),
}

/// Headers the edge sets itself from what it knows (see [`crate::forwarded`]).
fn is_replaced_by_edge(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "x-forwarded-for" | "x-forwarded-proto" | "x-real-ip"
    )
}

/// SERVER_NAME and SERVER_PORT from the Host header, else the local address.
fn split_host(host: Option<&str>, conn: &Connection) -> (String, String) {
    let default_port = conn.local.port().to_string();
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return (conn.local.ip().to_string(), default_port);
    };
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        if let Some((ip, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').unwrap_or("");
            let port = if port.is_empty() {
                default_port
            } else {
                port.to_owned()
            };
            return (ip.to_owned(), port);
        }
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty() => {
            (name.to_owned(), port.to_owned())
        }
        _ => (
            host.to_owned(),
            if conn.tls { "443".into() } else { default_port },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn environ_of(request: http::Request<()>, body_len: u64) -> Vec<(String, String)> {
        let (parts, ()) = request.into_parts();
        let conn = Connection {
            local: "127.0.0.1:8000".parse().unwrap(),
            peer: "127.0.0.1:50000".parse().unwrap(),
            tls: false,
        };
        let client = crate::forwarded::resolve(conn.peer, false, &parts.headers, &[]);
        let mut frame = encode(&parts, body_len, &client, &conn).unwrap();
        let frame = capstan_wire::decode(&mut frame).unwrap().unwrap();
        let payload: Bytes = frame.payload.slice(1..);
        let text: String = payload.iter().map(|&b| b as char).collect();
        let parts: Vec<&str> = text.split('\0').collect();
        parts
            .chunks(2)
            .map(|kv| (kv[0].to_owned(), kv[1].to_owned()))
            .collect()
    }

    fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn path_is_decoded_and_query_kept_raw() {
        let req = http::Request::get("/a%20b/%C3%A9?x=%20y&z")
            .header("host", "example.com:8080")
            .body(())
            .unwrap();
        let env = environ_of(req, 0);
        assert_eq!(get(&env, "PATH_INFO"), Some("/a b/\u{c3}\u{a9}"));
        assert_eq!(get(&env, "QUERY_STRING"), Some("x=%20y&z"));
        assert_eq!(get(&env, "RAW_URI"), Some("/a%20b/%C3%A9?x=%20y&z"));
        assert_eq!(get(&env, "SERVER_NAME"), Some("example.com"));
        assert_eq!(get(&env, "SERVER_PORT"), Some("8080"));
        assert_eq!(get(&env, "HTTP_HOST"), Some("example.com:8080"));
        assert_eq!(get(&env, "CONTENT_LENGTH"), None);
    }

    #[test]
    fn repeated_headers_are_joined_and_cookies_with_semicolons() {
        let req = http::Request::get("/")
            .header("accept", "a")
            .header("accept", "b")
            .header("cookie", "x=1")
            .header("cookie", "y=2")
            .header("content-type", "text/plain")
            .body(())
            .unwrap();
        let env = environ_of(req, 5);
        assert_eq!(get(&env, "HTTP_ACCEPT"), Some("a, b"));
        assert_eq!(get(&env, "HTTP_COOKIE"), Some("x=1; y=2"));
        assert_eq!(get(&env, "CONTENT_TYPE"), Some("text/plain"));
        assert_eq!(get(&env, "CONTENT_LENGTH"), Some("5"));
        assert_eq!(get(&env, "HTTP_CONTENT_TYPE"), None);
    }

    #[test]
    fn underscore_headers_and_client_forwarding_headers_are_dropped() {
        let req = http::Request::get("/")
            .header("x_forwarded_for", "6.6.6.6")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-real-ip", "6.6.6.6")
            .body(())
            .unwrap();
        let env = environ_of(req, 0);
        assert_eq!(get(&env, "HTTP_X_FORWARDED_FOR"), Some("127.0.0.1"));
        assert_eq!(get(&env, "HTTP_X_REAL_IP"), Some("127.0.0.1"));
        assert_eq!(get(&env, "REMOTE_ADDR"), Some("127.0.0.1"));
        assert_eq!(
            env.iter()
                .filter(|(k, _)| k == "HTTP_X_FORWARDED_FOR")
                .count(),
            1
        );
    }

    #[test]
    fn a_nul_in_the_path_is_refused() {
        let (parts, ()) = http::Request::get("/a%00b").body(()).unwrap().into_parts();
        let conn = Connection {
            local: "127.0.0.1:8000".parse().unwrap(),
            peer: "127.0.0.1:1".parse().unwrap(),
            tls: false,
        };
        let client = crate::forwarded::resolve(conn.peer, false, &parts.headers, &[]);
        assert_eq!(encode(&parts, 0, &client, &conn), Err(EnvironError::Nul));
    }

    #[test]
    fn without_a_host_header_the_local_address_is_the_server() {
        let env = environ_of(http::Request::get("/").body(()).unwrap(), 0);
        assert_eq!(get(&env, "SERVER_NAME"), Some("127.0.0.1"));
        assert_eq!(get(&env, "SERVER_PORT"), Some("8000"));
    }
}
