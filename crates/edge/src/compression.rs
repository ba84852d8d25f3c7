//! Which responses are worth compressing on the fly (gzip or brotli, as the
//! client accepts): text-like types of some size, never ranges or anything
//! already encoded.

use http::{header, HeaderMap, StatusCode, Version};
use tower_http::compression::predicate::{Predicate, SizeAbove};

/// The compression rule of the edge.
#[derive(Clone, Copy, Debug)]
pub struct Compressible;

impl Predicate for Compressible {
    fn should_compress<B>(&self, response: &http::Response<B>) -> bool
    where
        B: http_body::Body,
    {
        SizeAbove::new(256).should_compress(response)
            && compressible(response.status(), response.version(), response.headers())
    }
}

fn compressible(status: StatusCode, _version: Version, headers: &HeaderMap) -> bool {
    if status == StatusCode::PARTIAL_CONTENT || headers.contains_key(header::CONTENT_RANGE) {
        return false;
    }
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "text/event-stream" {
        // Server-sent events must reach the client as they are written.
        return false;
    }
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/wasm"
                | "image/svg+xml"
                | "font/ttf"
                | "font/otf"
                | "application/x-font-ttf"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, content_type: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        compressible(
            StatusCode::from_u16(status).unwrap(),
            Version::HTTP_11,
            &headers,
        )
    }

    #[test]
    fn text_and_json_are_compressed_binaries_and_streams_are_not() {
        assert!(check(200, "text/html; charset=utf-8"));
        assert!(check(200, "application/json"));
        assert!(check(200, "application/problem+json"));
        assert!(!check(200, "image/png"));
        assert!(!check(200, "application/octet-stream"));
        assert!(!check(200, "text/event-stream"));
        assert!(!check(206, "text/plain"));
    }
}
