//! The server-wide steps every request passes before any app sees it: what
//! RFC 9110/9112/9113 make a server refuse, ACME HTTP-01 answers, and the
//! Site its Host names (or the 404 page that names no app).

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};

use crate::body::Body;
use crate::environ::Connection;
use crate::errors::{bad_request, closing_response, error_response};
use crate::request_rules::{self, Verdict};
use crate::site::Site;
use crate::tls::CertStore;

/// Where ACME servers fetch HTTP-01 tokens (RFC 8555, 8.3).
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The longest request target (path and query) accepted.
const MAX_TARGET_BYTES: usize = 8 * 1024;

/// Answers one request: the front's own checks, then `site` (looked up by
/// the caller from the request's Host, once).
pub async fn handle<B>(
    mut request: Request<B>,
    conn: Connection,
    site: Option<Arc<Site>>,
    certs: Option<&CertStore>,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    // 0. What RFC 9110/9112/9113 make a server refuse (edge::request_rules).
    match request_rules::check(&mut request) {
        Verdict::Serve => {}
        Verdict::ServerOptions => return server_options(),
        Verdict::Refuse(refusal) => return refusal.response(),
    }
    // SECURITY: both framings at once is how requests are smuggled past
    // proxies. On HTTP/1 edge::raw_head refuses the pair before hyper
    // drops the Content-Length (and h2 refuses Transfer-Encoding); this
    // refuses it should any transport ever pass both through.
    if request.headers().contains_key(header::TRANSFER_ENCODING)
        && request.headers().contains_key(header::CONTENT_LENGTH)
    {
        return bad_request("Content-Length and Transfer-Encoding cannot both be sent.");
    }
    // nginx's limit for a request line is 8 KiB; longer targets are refused.
    if request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len())
        > MAX_TARGET_BYTES
    {
        return closing_response(StatusCode::URI_TOO_LONG, "The request target is too long.");
    }
    // 1. ACME HTTP-01 challenges, on any listener, for any Host, before the redirect.
    if let Some(answer) = certs.and_then(|certs| acme_challenge(certs, &request)) {
        return answer;
    }
    // 2. The app the Host names.
    match site {
        Some(site) => site.handle(request, conn).await,
        None => no_site(),
    }
}

/// The page for a Host no app answers to.
// SECURITY: it names nothing of any app, so probing Hosts learns nothing.
pub fn no_site() -> Response<Body> {
    error_response(StatusCode::NOT_FOUND, "There is no site at this address.")
}

/// The answer to an HTTP-01 challenge request, when one is in progress
/// for its token; unknown tokens fall through to the app (as nginx would
/// serve them from disk).
fn acme_challenge<B>(certs: &CertStore, request: &Request<B>) -> Option<Response<Body>> {
    let token = request.uri().path().strip_prefix(ACME_CHALLENGE_PREFIX)?;
    let answer = certs.http_challenge(token)?;
    tracing::debug!(token, "answered an ACME HTTP-01 challenge");
    let mut response = Response::new(crate::body::full(answer));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Some(response)
}

/// `OPTIONS *` asks about the server as a whole (RFC 9110, 9.3.7): 200, no body.
fn server_options() -> Response<Body> {
    let mut response = Response::new(crate::body::empty());
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

#[cfg(test)]
#[path = "front_tests.rs"]
mod tests;
