//! The request pipeline of one app: every step a request passes, in order,
//! on one screen.

use std::sync::Arc;

use bytes::Bytes;
use capstan_runtime::Pool;
use http::{header, HeaderValue, Request, Response, StatusCode};
use ipnet::IpNet;

use crate::body::Body;
use crate::environ::Connection;
use crate::errors::{bad_request, closing_response};
use crate::forwarded;
use crate::proxy::Proxy;
use crate::redirect;
use crate::request_body::{self, BodyLimits, BODY_MEMORY_LIMIT};
use crate::request_rules::{self, Verdict};
use crate::static_files::StaticFiles;
use crate::tls::CertStore;

/// Where ACME servers fetch HTTP-01 tokens (RFC 8555, 8.3).
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The longest request target (path and query) accepted.
const MAX_TARGET_BYTES: usize = 8 * 1024;

/// Where requests that are not static files go.
pub enum Backend {
    /// The built-in Python runtime.
    Python(Pool),
    /// A command listening on a local port, and its supervision.
    Proxy(Box<Proxy>, capstan_runtime::Supervised),
}

/// One app as the edge serves it.
pub struct Site {
    /// Static routes, answered by the edge itself.
    pub static_files: StaticFiles,
    /// Everything else.
    pub backend: Backend,
    /// Proxies whose X-Forwarded-* headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The largest request body accepted.
    pub max_body_size: u64,
    /// How long a client may pause while sending a body (then 408).
    pub client_timeout: std::time::Duration,
    /// Where bodies too large to keep in memory are spilled; `None`: $TMPDIR.
    pub body_temp_dir: Option<std::path::PathBuf>,
    /// When TLS is on: plain HTTP is redirected to HTTPS on this port.
    pub https_port: Option<u16>,
    /// Send Strict-Transport-Security on HTTPS responses for hosts whose
    /// certificate a CA issued (never with a self-signed one: browsers would
    /// refuse the site with no way past the warning).
    pub hsts: bool,
    /// The certificates served, and the ACME challenges in progress.
    pub certs: Option<Arc<CertStore>>,
}

impl Site {
    /// Answers one request.
    pub async fn handle<B>(
        self: &Arc<Self>,
        mut request: Request<B>,
        conn: Connection,
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
        // 1. ACME HTTP-01 challenges, on any listener, before the redirect.
        if let Some(answer) = self.acme_challenge(&request) {
            return answer;
        }
        // 2. Plain HTTP goes to HTTPS when TLS is on.
        if let (false, Some(port)) = (conn.tls, self.https_port) {
            return redirect::to_https(&request, port);
        }
        // 3. Static files, straight from disk; 4. or the app.
        let hsts = self.wants_hsts(&conn, request.uri(), request.headers());
        let mut response = if self.static_files.matches(request.uri().path()) {
            let (method, uri, headers) = (request.method(), request.uri(), request.headers());
            self.static_files.serve(method, uri, headers).await
        } else {
            self.app(request, conn).await
        };
        if hsts {
            add_hsts(&mut response);
        }
        response
    }

    /// The app: the whole body is read first, so a slow client never holds a worker.
    async fn app<B>(&self, request: Request<B>, conn: Connection) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = request.into_parts();
        let limits = BodyLimits {
            max_size: self.max_body_size,
            client_timeout: self.client_timeout,
            memory_limit: BODY_MEMORY_LIMIT,
            temp_dir: self.body_temp_dir.clone(),
        };
        let body = match request_body::read(&limits, &parts.headers, body).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let client = forwarded::resolve(conn.peer, conn.tls, &parts.headers, &self.trusted_proxies);
        match &self.backend {
            Backend::Python(pool) => {
                crate::python_app::handle(pool, &parts, body, &client, &conn).await
            }
            Backend::Proxy(proxy, _) => proxy.handle(parts, body, &client).await,
        }
    }

    /// The answer to an HTTP-01 challenge request, when one is in progress
    /// for its token; unknown tokens fall through to the app (as nginx would
    /// serve them from disk).
    fn acme_challenge<B>(&self, request: &Request<B>) -> Option<Response<Body>> {
        let token = request.uri().path().strip_prefix(ACME_CHALLENGE_PREFIX)?;
        let answer = self.certs.as_ref()?.http_challenge(token)?;
        tracing::debug!(token, "answered an ACME HTTP-01 challenge");
        let mut response = Response::new(crate::body::full(answer));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Some(response)
    }

    /// HSTS goes out over TLS, for a host whose certificate a CA issued.
    fn wants_hsts(&self, conn: &Connection, uri: &http::Uri, headers: &http::HeaderMap) -> bool {
        if !(conn.tls && self.hsts) {
            return false;
        }
        let Some(certs) = &self.certs else {
            return false;
        };
        // HTTP/2 names the host in :authority, HTTP/1.1 in Host.
        let host = uri.host().or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(|host| host.rsplit_once(':').map_or(host, |(name, _)| name))
        });
        host.is_some_and(|host| certs.is_trusted(host))
    }
}

/// `OPTIONS *` asks about the server as a whole (RFC 9110, 9.3.7): 200, no body.
fn server_options() -> Response<Body> {
    let mut response = Response::new(crate::body::empty());
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

fn add_hsts(response: &mut Response<Body>) {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
}
