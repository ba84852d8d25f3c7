//! HTTP to HTTPS, the way nginx's `return 301 https://$host$request_uri` does,
//! with 308 for methods whose body must survive the redirect.

use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use crate::body::{self, Body};
use crate::errors::bad_request;

/// The redirect of this request to HTTPS on `port`.
pub fn to_https<B>(request: &Request<B>, port: u16) -> Response<Body> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    let Some(host) = host else {
        return bad_request("A Host header is required.");
    };
    let name = strip_port(&host);
    let authority = if port == 443 {
        name.to_owned()
    } else {
        format!("{name}:{port}")
    };
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = format!("https://{authority}{target}");
    // SECURITY: the Host header is client input; only a valid header value goes out.
    let Ok(location) = HeaderValue::from_str(&location) else {
        return bad_request("Bad Host header.");
    };
    let status = if matches!(*request.method(), Method::GET | Method::HEAD) {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    let mut response = Response::new(body::empty());
    *response.status_mut() = status;
    response.headers_mut().insert(header::LOCATION, location);
    response
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(v6, _)| &host[..v6.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_is_moved_permanently_and_post_keeps_its_method() {
        let get = Request::get("/a?b=1")
            .header("host", "example.com:8080")
            .body(())
            .unwrap();
        let response = to_https(&get, 8443);
        assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            response.headers()["location"],
            "https://example.com:8443/a?b=1"
        );
        let post = Request::post("/form")
            .header("host", "example.com")
            .body(())
            .unwrap();
        let response = to_https(&post, 443);
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(response.headers()["location"], "https://example.com/form");
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        let get = Request::get("/")
            .header("host", "[::1]:8000")
            .body(())
            .unwrap();
        assert_eq!(
            to_https(&get, 8443).headers()["location"],
            "https://[::1]:8443/"
        );
    }
}
