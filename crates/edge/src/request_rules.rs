//! The rules RFC 9110/9112/9113 make a server enforce on a parsed request
//! before anything acts on it: Host, target forms, singleton fields, field
//! size, transfer codings, trailers. One function per concern, each rule
//! named by its section; what hyper cannot show (the raw framing headers)
//! is checked by `raw_head`.

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Version};

/// The longest header field line accepted (name, ": ", value), as nginx's
/// `large_client_header_buffers 8k` allows.
pub const MAX_FIELD_LINE_BYTES: usize = 8 * 1024;

/// Why a request is refused: the status and the short text the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The status code.
    pub status: StatusCode,
    /// One line for the client.
    pub text: &'static str,
}

impl Refusal {
    /// The response: the text, `Connection: close` (after a refused request
    /// nothing else on the connection can be trusted), and for 405 the
    /// methods the edge does pass on (RFC 9110, 15.5.6: Allow is required).
    pub fn response(self) -> http::Response<crate::body::Body> {
        let mut response = crate::errors::closing_response(self.status, self.text);
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            response.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
        }
        response
    }
}

const fn refuse(status: StatusCode, text: &'static str) -> Refusal {
    Refusal { status, text }
}

const fn bad(text: &'static str) -> Refusal {
    refuse(StatusCode::BAD_REQUEST, text)
}

/// What step 0 decides about a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Serve,
    /// `OPTIONS *`: about the server as a whole, answered by the edge.
    ServerOptions,
    /// Refuse it, and close the connection.
    Refuse(Refusal),
}

/// Checks a request's head, and for an absolute-form target makes its
/// authority the Host the app sees (RFC 9112, 3.2.2).
pub fn check<B>(request: &mut Request<B>) -> Verdict {
    let version = request.version();
    let h1 = version == Version::HTTP_10 || version == Version::HTTP_11;
    let checks = [
        field_sizes(request.headers()),
        singletons(request.headers()),
        transfer_codings(request.headers()),
    ];
    if let Some(refusal) = checks.into_iter().flatten().next() {
        return Verdict::Refuse(refusal);
    }
    let target = if h1 {
        h1_target(request)
    } else {
        h2_target(request)
    };
    match target {
        Err(refusal) => Verdict::Refuse(refusal),
        Ok(verdict) => verdict,
    }
}

/// SECURITY: one field line past 8 KiB is refused with 431 (RFC 6585, 5),
/// so no single header can fill the head budget or an app's buffers.
fn field_sizes(headers: &HeaderMap) -> Option<Refusal> {
    headers
        .iter()
        .any(|(name, value)| name.as_str().len() + 2 + value.len() > MAX_FIELD_LINE_BYTES)
        .then_some(refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "A header field is larger than 8 KiB.",
        ))
}

/// SECURITY: fields that name one thing may appear once. Two Host lines
/// must get 400 (RFC 9112, 3.2); two Content-Types leave the app to pick one
/// (RFC 9110, 5.3: only list-based fields may repeat).
fn singletons(headers: &HeaderMap) -> Option<Refusal> {
    let twice = |name: HeaderName| headers.get_all(name).iter().nth(1).is_some();
    if twice(header::HOST) {
        return Some(bad("A request may carry one Host header."));
    }
    if twice(header::CONTENT_TYPE) {
        return Some(bad("A request may carry one Content-Type header."));
    }
    None
}

/// RFC 9112, 6.1 and 7: chunked is the only transfer coding the edge
/// decodes (hyper refuses a request whose last coding is not chunked); any
/// other coding before it is not implemented (501), and chunked may be
/// applied once.
fn transfer_codings(headers: &HeaderMap) -> Option<Refusal> {
    let mut chunked = 0;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let Ok(value) = value.to_str() else {
            return Some(bad("The Transfer-Encoding header is not valid."));
        };
        for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if coding.eq_ignore_ascii_case("chunked") {
                chunked += 1;
            } else {
                return Some(refuse(
                    StatusCode::NOT_IMPLEMENTED,
                    "Only the chunked transfer coding is supported.",
                ));
            }
        }
    }
    (chunked > 1).then_some(bad("The chunked transfer coding may be applied once."))
}

/// The request target and Host of an HTTP/1.x request.
fn h1_target<B>(request: &mut Request<B>) -> Result<Verdict, Refusal> {
    let uri = request.uri();
    let method = request.method();
    // RFC 9112, 3.2.3: authority-form is only for CONNECT, and capstan
    // tunnels nothing (RFC 9110, 9.3.6: 405 for a method it will not apply).
    if method == Method::CONNECT {
        return Err(refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "This server does not tunnel (CONNECT).",
        ));
    }
    if uri.scheme().is_none() && uri.authority().is_some() {
        return Err(bad("An authority-form target is only for CONNECT."));
    }
    // RFC 9112, 3.2.4: asterisk-form is only for OPTIONS.
    let asterisk = uri.scheme().is_none() && uri.path() == "*";
    if asterisk && method != Method::OPTIONS {
        return Err(bad("The target * is only for OPTIONS."));
    }
    // RFC 9112, 3.2: a missing Host (HTTP/1.1) or an invalid one gets 400.
    let host = request.headers().get(header::HOST);
    if request.version() == Version::HTTP_11 && host.is_none() {
        return Err(bad("A Host header is required."));
    }
    if host.is_some_and(|host| !valid_host(host.as_bytes())) {
        return Err(bad("The Host header is not a valid host[:port]."));
    }
    if let Some(authority) = uri.authority() {
        // RFC 9112, 3.2.2 and RFC 9110, 4.2: an absolute-form target names
        // the host, and http(s) URIs carry no userinfo.
        let scheme = uri.scheme_str().unwrap_or_default();
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(bad("An absolute-form target must be an http or https URI."));
        }
        if !valid_host(authority.as_str().as_bytes()) || authority.host().is_empty() {
            return Err(bad("The request target's host is not a valid host[:port]."));
        }
        // SECURITY: the target's authority wins over the Host header, so
        // the app sees the host the request was really addressed to.
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| bad("The request target's host is not valid."))?;
        request.headers_mut().insert(header::HOST, host);
    }
    Ok(if asterisk {
        Verdict::ServerOptions
    } else {
        Verdict::Serve
    })
}

/// The target and Host of an HTTP/2 request (the h2 crate already refuses
/// connection-specific fields and duplicate or misplaced pseudo-headers).
fn h2_target<B>(request: &Request<B>) -> Result<Verdict, Refusal> {
    if request.method() == Method::CONNECT {
        return Err(refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "This server does not tunnel (CONNECT).",
        ));
    }
    let host = request.headers().get(header::HOST);
    if host.is_some_and(|host| !valid_host(host.as_bytes())) {
        return Err(bad("The Host header is not a valid host[:port]."));
    }
    match (request.uri().authority(), host) {
        // RFC 9113, 8.3.1: a request names its host in :authority or Host.
        (None, None) => Err(bad("A request must carry :authority or Host.")),
        // RFC 9113, 8.3.1: a Host that names another entity than
        // :authority makes the request malformed.
        (Some(authority), Some(host))
            if !same_entity(
                authority.as_str().as_bytes(),
                host.as_bytes(),
                request.uri().scheme_str(),
            ) =>
        {
            Err(bad("The Host header disagrees with :authority."))
        }
        _ if request.uri().path() == "*" && request.method() == Method::OPTIONS => {
            Ok(Verdict::ServerOptions)
        }
        _ => Ok(Verdict::Serve),
    }
}

/// Whether two authorities name one entity: equal but for case, or for the
/// scheme's default port written out (RFC 9110, 4.2.3).
fn same_entity(a: &[u8], b: &[u8], scheme: Option<&str>) -> bool {
    let default_port: &[u8] = match scheme {
        Some("http") => b":80",
        _ => b":443",
    };
    let bare = |x: &[u8]| -> Vec<u8> {
        let x = x.strip_suffix(default_port).unwrap_or(x);
        x.to_ascii_lowercase()
    };
    bare(a) == bare(b)
}

/// RFC 9112, 3.2 and RFC 3986, 3.2.2-3.2.3: `host [":" port]`, where host is
/// a reg-name (unreserved, pct-encoded, sub-delims) or an IP literal in
/// brackets, and port is digits. No userinfo, no path. Empty is allowed
/// (RFC 9110, 7.2: a target without an authority).
fn valid_host(host: &[u8]) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..end];
        let after = &rest[end + 1..];
        // IPv6 (with a zone, RFC 6874) or IPvFuture: the characters they may use.
        let valid_literal = !literal.is_empty()
            && literal
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b":._~%-!$&'()*+,;=".contains(&b));
        if !valid_literal {
            return false;
        }
        match after {
            [] => return true,
            [b':', port @ ..] => (&b""[..], port),
            _ => return false,
        }
    } else {
        match host.iter().position(|&b| b == b':') {
            Some(colon) => (&host[..colon], &host[colon + 1..]),
            None => (host, &b""[..]),
        }
    };
    let reg_name = name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b));
    reg_name && port.iter().all(u8::is_ascii_digit)
}

/// RFC 9110, 6.5.1: fields that frame, route, authenticate or describe the
/// content must be known before the content, so a trailer may not carry
/// them; one that does is refused rather than silently dropped.
pub fn forbidden_trailer(trailers: &HeaderMap) -> Option<Refusal> {
    const FORBIDDEN: &[HeaderName] = &[
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::HOST,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::CONTENT_RANGE,
        header::TRAILER,
        header::AUTHORIZATION,
        header::COOKIE,
        header::EXPECT,
        header::RANGE,
        header::TE,
        header::CONNECTION,
        header::UPGRADE,
    ];
    FORBIDDEN
        .iter()
        .any(|name| trailers.contains_key(name))
        .then_some(bad(
            "A trailer may not carry framing, routing or content fields.",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw_target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().uri(raw_target);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn hosts_follow_rfc_3986() {
        for good in [
            "example.com",
            "example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "[fe80::1%25eth0]:8080",
            "xn--bcher-kva.example",
            "a%20b",
            "",
            "host:",
        ] {
            assert!(valid_host(good.as_bytes()), "{good} is valid");
        }
        for bad in [
            "user@example.com",
            "example.com/path",
            "a b",
            "example.com:80x",
            "[::1",
            "[::1]x",
            "a:1:2",
            "[]",
            "ex\"ample",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad} is invalid");
        }
    }

    #[test]
    fn a_default_port_written_out_names_the_same_entity() {
        assert!(same_entity(
            b"Example.com",
            b"example.com:443",
            Some("https")
        ));
        assert!(same_entity(b"example.com:80", b"example.com", Some("http")));
        assert!(!same_entity(
            b"example.com",
            b"example.com:8443",
            Some("https")
        ));
        assert!(!same_entity(
            b"example.com",
            b"other.example",
            Some("https")
        ));
    }

    #[test]
    fn transfer_codings_other_than_chunked_are_not_implemented_and_chunked_twice_is_bad() {
        let verdict = |te: &str| {
            check(&mut request(
                "/",
                &[("host", "x"), ("transfer-encoding", te)],
            ))
        };
        assert_eq!(verdict("chunked"), Verdict::Serve);
        assert_eq!(verdict("Chunked"), Verdict::Serve);
        let Verdict::Refuse(gzip) = verdict("gzip, chunked") else {
            panic!()
        };
        assert_eq!(gzip.status, StatusCode::NOT_IMPLEMENTED);
        let Verdict::Refuse(twice) = verdict("chunked, chunked") else {
            panic!()
        };
        assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn an_absolute_form_target_becomes_the_host_the_app_sees() {
        let mut absolute = request("http://target.example:8080/p?q", &[("host", "other")]);
        assert_eq!(check(&mut absolute), Verdict::Serve);
        assert_eq!(absolute.headers()[header::HOST], "target.example:8080");
        let mut userinfo = request("http://user@target.example/", &[("host", "x")]);
        assert!(matches!(check(&mut userinfo), Verdict::Refuse(_)));
        let mut ftp = request("ftp://target.example/", &[("host", "x")]);
        assert!(matches!(check(&mut ftp), Verdict::Refuse(_)));
    }

    #[test]
    fn a_trailer_with_content_length_is_forbidden_and_an_ordinary_one_is_not() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("abc"));
        assert_eq!(forbidden_trailer(&trailers), None);
        trailers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert!(forbidden_trailer(&trailers).is_some());
    }
}
