//! The front over a real loopback listener: two Sites on two hosts, and a
//! table with no default.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::routes::{RouteTable, Routes};
use crate::server::{bind, serve, Listener, ServeOptions};
use crate::site::{Backend, Site};
use crate::static_files::{StaticFiles, StaticRoute};
use crate::Proxy;

/// A Site whose only content is `index.txt` saying `text`.
fn static_site(dir: &std::path::Path, text: &str) -> Arc<Site> {
    std::fs::write(dir.join("index.txt"), text).unwrap();
    Arc::new(Site {
        static_files: StaticFiles::new(vec![StaticRoute {
            url_prefix: "/".into(),
            dir: dir.canonicalize().unwrap(),
            max_age: Duration::from_secs(60),
        }])
        .unwrap(),
        // Never reached: every path is a static file.
        backend: Backend::Proxy(Box::new(Proxy::new(9))),
        trusted_proxies: Vec::new(),
        max_body_size: 1 << 20,
        client_timeout: Duration::from_secs(10),
        body_temp_dir: None,
        https_port: None,
        hsts: false,
        certs: None,
        access_log: false,
        access_log_to: capstan_runtime::Log::Capstan,
        compression: false,
        dropped: None,
    })
}

/// Serves `routes` on a loopback port until the returned sender is dropped.
async fn start(routes: Routes) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let tcp = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions {
        access_log: false,
        certs: None,
        graceful_timeout: Duration::from_secs(5),
        client_timeout: Duration::from_secs(10),
    };
    tokio::spawn(serve(
        vec![Listener { tcp, tls: None }],
        routes,
        options,
        async {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// One HTTP/1.1 request with `host`; the status code and body.
async fn get(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (status, body)
}

#[tokio::test]
async fn two_sites_on_two_hosts_each_see_only_their_own_requests() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let table = RouteTable::new()
        .with_host("a.example", static_site(a.path(), "alpha"))
        .with_host("B.Example", static_site(b.path(), "bravo"));
    let (addr, _stop) = start(Routes::new(table)).await;
    assert_eq!(
        get(addr, "a.example", "/index.txt").await,
        (200, "alpha".into())
    );
    assert_eq!(
        get(addr, "b.example:8080", "/index.txt").await,
        (200, "bravo".into())
    );
    assert_eq!(
        get(addr, "A.EXAMPLE.", "/index.txt").await,
        (200, "alpha".into())
    );
    // The absolute-form target names the host, whatever the Host header says.
    assert_eq!(
        get(addr, "a.example", "http://b.example/index.txt").await,
        (200, "bravo".into())
    );
}

#[tokio::test]
async fn an_unknown_host_gets_a_404_that_names_no_app_when_there_is_no_default() {
    let dir = tempfile::tempdir().unwrap();
    let table = RouteTable::new().with_host("a.example", static_site(dir.path(), "alpha"));
    let (addr, _stop) = start(Routes::new(table)).await;
    let (status, body) = get(addr, "other.example", "/index.txt").await;
    assert_eq!(status, 404);
    assert_eq!(body, "There is no site at this address.\n");
    assert!(!body.contains("a.example") && !body.contains("alpha"));
}

#[tokio::test]
async fn the_default_site_answers_any_host_and_a_swap_reaches_the_next_request() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let routes = Routes::new(RouteTable::new().with_default(static_site(a.path(), "old")));
    let (addr, _stop) = start(routes.clone()).await;
    assert_eq!(
        get(addr, "anything.example", "/index.txt").await,
        (200, "old".into())
    );
    routes.swap(RouteTable::new().with_default(static_site(b.path(), "new")));
    assert_eq!(
        get(addr, "localhost", "/index.txt").await,
        (200, "new".into())
    );
}
