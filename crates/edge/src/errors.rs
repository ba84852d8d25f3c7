//! The short plain-text answers the edge gives when it answers by itself.

use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{self, Body};

/// A short text response with the given status.
pub fn error_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(body::full(format!("{text}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A short text response after which the connection is closed: after a
/// malformed or refused request nothing else on it can be trusted (RFC 9112, 11.2).
pub fn closing_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = error_response(status, text);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A 400 that also ends the connection.
pub fn bad_request(text: &'static str) -> Response<Body> {
    closing_response(StatusCode::BAD_REQUEST, text)
}
