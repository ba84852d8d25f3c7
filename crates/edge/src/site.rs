//! One app as the edge serves it: the steps a request passes once the front
//! has routed it here (HTTPS redirect, static files or the backend, HSTS), in
//! order, on one screen.

use std::sync::Arc;

use bytes::Bytes;
use capstan_runtime::Pool;
use http::{header, HeaderValue, Request, Response};
use ipnet::IpNet;

use crate::body::Body;
use crate::environ::Connection;
use crate::forwarded;
use crate::proxy::Proxy;
use crate::redirect;
use crate::request_body::{self, BodyLimits, BODY_MEMORY_LIMIT};
use crate::routes::{normalize, request_host};
use crate::static_files::StaticFiles;
use crate::tls::CertStore;

/// Where requests that are not static files go.
pub enum Backend {
    /// The built-in Python runtime.
    Python(Pool),
    /// A command listening on a local port (whoever started the command
    /// owns it; the edge only forwards to its port).
    Proxy(Box<Proxy>),
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
    /// When TLS is on: plain HTTP is redirected to HTTPS on this port, for
    /// a Host the certificate store serves a certificate for (with no
    /// fallback certificate, a domain still waiting for its own stays on
    /// plain HTTP rather than being sent to a handshake that fails).
    pub https_port: Option<u16>,
    /// Send Strict-Transport-Security on HTTPS responses for hosts whose
    /// certificate a CA issued (never with a self-signed one: browsers would
    /// refuse the site with no way past the warning).
    pub hsts: bool,
    /// The certificates served, to tell a CA-issued one (HSTS) from the
    /// self-signed fallback.
    pub certs: Option<Arc<CertStore>>,
    /// Write the access log for this app's requests.
    pub access_log: bool,
    /// Where it goes: capstan's output, or the app's `access.log`.
    pub access_log_to: capstan_runtime::Log,
    /// Compress this app's text responses for clients that accept it.
    pub compression: bool,
    /// Dropped with the Site, so its receiver wakes once nothing (no table,
    /// no request) holds the Site any more: how a generation knows it drained.
    pub dropped: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Site {
    /// Answers one request that the front has checked and routed here;
    /// the health check calls it directly with a request it built.
    pub async fn handle<B>(&self, request: Request<B>, conn: Connection) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let host = request_host(&request).map(normalize);
        // 1. Plain HTTP goes to HTTPS when the app asks for it, TLS is on
        //    and there is a certificate to show for the Host.
        if let (false, Some(port)) = (conn.tls, self.https_port) {
            let certified = match (&self.certs, &host) {
                (Some(certs), Some(host)) => certs.serves(host),
                (Some(_), None) => false,
                (None, _) => true,
            };
            if certified {
                return redirect::to_https(&request, port);
            }
        }
        // 2. Static files, straight from disk; 3. or the app.
        let hsts = self.wants_hsts(&conn, host.as_deref());
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
            Backend::Proxy(proxy) => proxy.handle(parts, body, &client).await,
        }
    }

    /// HSTS goes out over TLS, for a host whose certificate a CA issued.
    fn wants_hsts(&self, conn: &Connection, host: Option<&str>) -> bool {
        if !(conn.tls && self.hsts) {
            return false;
        }
        let Some(certs) = &self.certs else {
            return false;
        };
        host.is_some_and(|host| certs.is_trusted(host))
    }
}

fn add_hsts(response: &mut Response<Body>) {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
}
