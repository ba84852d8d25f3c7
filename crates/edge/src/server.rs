//! Listeners and connections: accept, TLS handshake, HTTP/1.1 or HTTP/2 by
//! ALPN, and a graceful stop that lets responses in flight finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{header, Request};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tower_http::compression::CompressionLayer;

use crate::access_log::{Entry, Logged};
use crate::body::Body;
use crate::compression::Compressible;
use crate::environ::Connection;
use crate::front;
use crate::raw_head;
use crate::routes::Routes;
use crate::site::Site;
use crate::tls::CertStore;

/// How long a client gets to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Past this much buffered head (request line and headers) a request gets
/// 431; hyper checks between reads, so the real limit lands within 2x of it.
const MAX_HEADER_BYTES: usize = 32 * 1024;
/// The most header fields a request may have.
const MAX_HEADERS: usize = 100;

/// A bound socket, plain or TLS.
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// Set for HTTPS listeners.
    pub tls: Option<TlsAcceptor>,
}

/// Edge-wide settings that are not per app.
#[derive(Clone)]
pub struct ServeOptions {
    /// Write the access log for what the front answers itself (refusals,
    /// ACME, the 404 for an unknown Host); each Site says for its own.
    pub access_log: bool,
    /// The certificates served, and the ACME challenges in progress.
    pub certs: Option<Arc<CertStore>>,
    /// How long in-flight responses get to finish after the stop signal.
    pub graceful_timeout: Duration,
    /// How long a client gets to send a request's head; also how long an idle
    /// keep-alive connection stays open (nginx: client_header_timeout).
    pub client_timeout: Duration,
}

/// Serves the Sites of `routes` on every listener until `shutdown`
/// resolves, then stops accepting and waits (up to the graceful timeout)
/// for open responses. Each request reads the table once, so a swap moves
/// keep-alive connections to the new Sites on their next request.
pub async fn serve(
    listeners: Vec<Listener>,
    routes: Routes,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = Arc::new(GracefulShutdown::new());
    let timeout = options.graceful_timeout;
    let options = Arc::new(options);
    let mut accept_loops = tokio::task::JoinSet::new();
    for listener in listeners {
        accept_loops.spawn(accept_loop(
            listener,
            routes.clone(),
            Arc::clone(&options),
            Arc::clone(&graceful),
        ));
    }
    shutdown.await;
    accept_loops.abort_all();
    while accept_loops.join_next().await.is_some() {}
    let graceful =
        Arc::try_unwrap(graceful).unwrap_or_else(|_| unreachable!("accept loops are gone"));
    if tokio::time::timeout(timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?timeout,
            "connections still open at the shutdown deadline; closing them"
        );
    }
}

async fn accept_loop(
    listener: Listener,
    routes: Routes,
    options: Arc<ServeOptions>,
    graceful: Arc<GracefulShutdown>,
) {
    let local = listener.tcp.local_addr().ok();
    loop {
        let (stream, peer) = match listener.tcp.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = local.unwrap_or_else(|| {
            stream
                .local_addr()
                .expect("a connected socket has an address")
        });
        let conn = Connection {
            local,
            peer,
            tls: listener.tls.is_some(),
        };
        let routes = routes.clone();
        let options = Arc::clone(&options);
        let watcher = graceful.watcher();
        let tls = listener.tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, conn, routes, options, watcher, None).await,
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let alpn = stream.get_ref().1.alpn_protocol();
                    if alpn == Some(crate::tls::ACME_TLS_ALPN) {
                        // A TLS-ALPN-01 check: the handshake was the answer.
                        return;
                    }
                    let h2 = alpn == Some(b"h2");
                    serve_connection(stream, conn, routes, options, watcher, Some(h2)).await
                }
            }
        });
    }
}

async fn serve_connection<S>(
    stream: S,
    conn: Connection,
    routes: Routes,
    options: Arc<ServeOptions>,
    watcher: hyper_util::server::graceful::Watcher,
    h2: Option<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let h2 = h2 == Some(true);
    let client_timeout = options.client_timeout;
    // HTTP/1: the raw heads are watched for what hyper's parser hides.
    let (stream, verdicts) = raw_head::Watched::new(stream, !h2);
    let verdicts = (!h2).then_some(verdicts);
    let compression = CompressionLayer::new().compress_when(Compressible);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        // The one lookup: this request keeps its Site to the last body byte.
        let site = routes.site_for(&request);
        let options = Arc::clone(&options);
        let compression = compression.clone();
        let refusal = verdicts.as_ref().and_then(raw_head::Verdicts::next);
        async move {
            let access_log = site.as_ref().map_or(options.access_log, |s| s.access_log);
            let compress = site.as_ref().is_some_and(|s| s.compression);
            let to = site
                .as_ref()
                .map(|s| s.access_log_to.clone())
                .unwrap_or_default();
            let entry = access_log.then(|| entry_for(&request, &conn, to));
            let held = site.clone();
            let app = tower::service_fn(move |request: Request<Incoming>| {
                let site = site.clone();
                let options = Arc::clone(&options);
                async move {
                    Ok::<_, Infallible>(match refusal {
                        Some(refusal) => refusal.response(),
                        None => front::handle(request, conn, site, options.certs.as_deref()).await,
                    })
                }
            });
            let response = if compress {
                tower::Layer::layer(&compression, app)
                    .oneshot(request)
                    .await
                    .map(|r| r.map(|body| body.map_err(std::io::Error::other).boxed_unsync()))
            } else {
                app.oneshot(request).await
            };
            let response = match response {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let entry = entry.map(|mut entry| {
                entry.status = response.status().as_u16();
                entry
            });
            Ok::<_, Infallible>(response.map(|body| Logged::new(Holding::new(body, held), entry)))
        }
    });
    let io = TokioIo::new(stream);
    // No protocol sniffing: plain listeners speak HTTP/1.1 (as nginx's do), TLS
    // ones what ALPN chose. Sniffing would wrap the socket in a type that hides
    // vectored writes, and every body would be copied into the header buffer.
    let result = if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new()).max_concurrent_streams(250);
        watcher.watch(builder.serve_connection(io, service)).await
    } else {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(client_timeout)
            .keep_alive(true)
            // nginx allows 32 KiB of headers by default.
            .max_buf_size(MAX_HEADER_BYTES)
            .max_headers(MAX_HEADERS)
            .writev(true);
        watcher.watch(builder.serve_connection(io, service)).await
    };
    if let Err(error) = result {
        tracing::debug!(peer = %conn.peer, %error, "connection ended with an error");
    }
}

fn entry_for(request: &Request<Incoming>, conn: &Connection, to: capstan_runtime::Log) -> Entry {
    let header = |name: header::HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    Entry {
        client: client_ip(conn.peer),
        request_line: format!("{} {} {:?}", request.method(), target, request.version()),
        status: 0,
        referer: header(header::REFERER),
        user_agent: header(header::USER_AGENT),
        started: Instant::now(),
        at: SystemTime::now(),
        to,
    }
}

fn client_ip(peer: SocketAddr) -> String {
    match peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        v4 => v4.to_string(),
    }
}

/// A TCP listener bound now, so a port in use is reported before anything starts.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(2048)
}

/// A response body that keeps its request's Site alive until it is sent,
/// so a drained generation stops only after its last byte went out.
struct Holding {
    inner: Body,
    _site: Option<Arc<Site>>,
}

impl Holding {
    fn new(inner: Body, site: Option<Arc<Site>>) -> Self {
        Holding { inner, _site: site }
    }
}

impl http_body::Body for Holding {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
