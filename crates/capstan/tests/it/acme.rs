//! Automatic HTTPS against a real ACME server (Pebble on loopback): issuance
//! over HTTP-01 and TLS-ALPN-01, renewal while serving, a failing challenge
//! reported in plain words, retries when the ACME server is down, and a
//! restart that reuses the stored certificate without asking again.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::fixture::{app_copy, client, free_port, run_to_exit, Opts, Server};
use crate::pebble::{write_https_identity, Pebble, PebbleOpts};

const DOMAIN: &str = "a.capstan.test";

/// The log says DOMAIN's certificate was issued over `challenge`.
fn assert_issued(log: &str, challenge: &str) {
    assert!(
        log.contains(&format!("{DOMAIN}: certificate issued ({challenge})")),
        "{log}"
    );
}

/// A port that refuses connections and that no other test can take while
/// the returned socket lives: bound, but not listening.
fn refusing_port() -> (std::os::fd::OwnedFd, u16) {
    use nix::sys::socket::{
        bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(127, 0, 0, 1, 0),
    )
    .unwrap();
    let addr: SockaddrIn = getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).unwrap();
    (fd, addr.port())
}

/// The hello app, with `tls` appended to its capstan.toml.
fn app(tls: &str) -> tempfile::TempDir {
    let app = app_copy("hello");
    let file = app.path().join("capstan.toml");
    let mut text = fs::read_to_string(&file).unwrap();
    text.push_str(tls);
    fs::write(file, text).unwrap();
    app
}

fn start(app: &Path, pebble_directory: &str, ca_root: &Path, ports: (u16, u16)) -> Server {
    Server::start(
        app,
        Opts {
            tls: true,
            http_port: Some(ports.0),
            https_port: Some(ports.1),
            args: [
                "--workers",
                "1",
                "--domain",
                DOMAIN,
                "--acme-directory",
                pebble_directory,
                "--acme-ca-root",
                ca_root.to_str().unwrap(),
                "--acme-email",
                "ops@capstan.test",
            ]
            .map(String::from)
            .to_vec(),
            ..Opts::default()
        },
    )
}

/// A client that trusts only Pebble's issuing root and finds DOMAIN on loopback.
fn trusting(root_pem: &str, https_port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap())
        .resolve(DOMAIN, ([127, 0, 0, 1], https_port).into())
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// GET / over HTTPS as DOMAIN; the served leaf certificate and the response.
async fn fetch(
    client: &reqwest::Client,
    https_port: u16,
) -> Result<(Vec<u8>, reqwest::Response), reqwest::Error> {
    crate::pebble::get_with_leaf(client, &format!("https://{DOMAIN}:{https_port}/")).await
}

/// Polls until DOMAIN is served with a certificate Pebble issued.
async fn wait_for_certificate(
    root_pem: &str,
    https_port: u16,
    server: &Server,
    timeout: Duration,
) -> (Vec<u8>, reqwest::Response) {
    let deadline = Instant::now() + timeout;
    loop {
        // A fresh client each time: a new handshake.
        if let Ok(found) = fetch(&trusting(root_pem, https_port), https_port).await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no ACME certificate served within {timeout:?}:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn http01_certificate_is_served_with_hsts_and_reused_after_a_restart() {
    let ports = (free_port(), free_port());
    let pebble = Pebble::start(PebbleOpts::checking(ports.0, ports.1));
    let app = app("\n[tls]\nchallenges = [\"http-01\"]\n");
    let started = Instant::now();
    let server = start(app.path(), &pebble.directory, &pebble.ca_root(), ports);
    let root = pebble.issuing_root().await;
    let (leaf, response) =
        wait_for_certificate(&root, ports.1, &server, Duration::from_secs(60)).await;
    eprintln!(
        "ACME certificate served {:?} after capstan started",
        started.elapsed()
    );
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    assert_issued(&server.stderr(), "http-01");
    assert_eq!(response.text().await.unwrap(), "Hello from capstan!\n");

    // Keys and account on disk, owner-only.
    let store = app.path().join(".capstan/acme").join(
        pebble
            .directory
            .replace("https://", "")
            .replace([':', '/'], "_"),
    );
    for file in [
        "account.json",
        &format!("{DOMAIN}/privkey.pem"),
        &format!("{DOMAIN}/fullchain.pem"),
    ] {
        let mode = fs::metadata(store.join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    // A name without a CA certificate keeps the self-signed one, and no HSTS.
    let local = client().get(server.https_url("/")).send().await.unwrap();
    assert_eq!(local.status(), 200);
    assert!(local.headers().get("strict-transport-security").is_none());
    drop(local.text().await);
    // Plain HTTP redirects; HSTS only ever goes out over HTTPS.
    let plain = client()
        .get(server.url("/json"))
        .header("host", DOMAIN)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 301);
    assert!(plain.headers().get("strict-transport-security").is_none());
    drop(plain.text().await);

    // Restart with the ACME server gone: the stored certificate is served,
    // and nothing asks the ACME server (it would fail, and say so).
    assert!(server.stop(Duration::from_secs(20)).success());
    let directory = pebble.directory.clone();
    let ca_root = tempfile::NamedTempFile::new().unwrap();
    fs::copy(pebble.ca_root(), ca_root.path()).unwrap();
    drop(pebble);
    let server = start(app.path(), &directory, ca_root.path(), ports);
    assert!(
        server.wait_for_stderr(
            &format!("{DOMAIN}: using the stored certificate"),
            Duration::from_secs(5)
        ),
        "{}",
        server.stderr()
    );
    let (again, response) = fetch(&trusting(&root, ports.1), ports.1).await.unwrap();
    assert_eq!(again, leaf, "the same certificate, not a new one");
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let log = server.stderr();
    assert!(
        !log.contains("could not") && !log.contains("certificate issued"),
        "{log}"
    );
}

#[tokio::test]
async fn tls_alpn01_certificate_is_issued_for_the_domains_of_the_app_file() {
    let ports = (free_port(), free_port());
    let pebble = Pebble::start(PebbleOpts::checking(ports.0, ports.1));
    // Everything from the app's file this time, no flags.
    let app = app(&format!(
        "\n[tls]\nchallenges = [\"tls-alpn-01\"]\nacme_directory = \"{}\"\nacme_ca_root = \"acme-ca.pem\"\nemail = \"ops@capstan.test\"\n",
        pebble.directory
    ));
    let file = app.path().join("capstan.toml");
    let text = fs::read_to_string(&file).unwrap();
    fs::write(&file, format!("domains = [\"{DOMAIN}\"]\n{text}")).unwrap();
    fs::copy(pebble.ca_root(), app.path().join("acme-ca.pem")).unwrap();
    let server = Server::start(
        app.path(),
        Opts {
            tls: true,
            http_port: Some(ports.0),
            https_port: Some(ports.1),
            args: vec!["--workers".into(), "1".into()],
            ..Opts::default()
        },
    );
    let root = pebble.issuing_root().await;
    let (_, response) =
        wait_for_certificate(&root, ports.1, &server, Duration::from_secs(60)).await;
    assert_eq!(response.text().await.unwrap(), "Hello from capstan!\n");
    let log = server.stderr();
    assert_issued(&log, "tls-alpn-01");
    assert!(!log.contains("http-01"), "{log}");
}

#[tokio::test]
async fn a_failing_challenge_is_explained_and_the_next_one_is_tried() {
    // Pebble checks HTTP-01 on a port where nothing listens.
    let ports = (free_port(), free_port());
    let (_refusing, closed) = refusing_port();
    let pebble = Pebble::start(PebbleOpts::checking(closed, ports.1));
    let app = app("");
    let server = start(app.path(), &pebble.directory, &pebble.ca_root(), ports);
    let root = pebble.issuing_root().await;
    let (_, response) =
        wait_for_certificate(&root, ports.1, &server, Duration::from_secs(60)).await;
    drop(response.text().await);
    let log = server.stderr();
    assert!(
        log.contains(&format!(
            "{DOMAIN}: http-01 failed: the ACME server could not connect to {DOMAIN} on port 80 (http-01 check)"
        )),
        "{log}"
    );
    assert!(
        log.contains("connection refused") && log.contains("Trying tls-alpn-01 instead."),
        "{log}"
    );
    assert_issued(&log, "tls-alpn-01");
}

#[tokio::test]
async fn when_every_challenge_fails_the_self_signed_certificate_stays_and_a_retry_is_planned() {
    let ports = (free_port(), free_port());
    let (_refusing, closed) = refusing_port();
    let pebble = Pebble::start(PebbleOpts::checking(closed, ports.1));
    let app = app("\n[tls]\nchallenges = [\"http-01\"]\n");
    let server = start(app.path(), &pebble.directory, &pebble.ca_root(), ports);
    let expected = format!(
        "{DOMAIN}: could not get a certificate: the ACME server could not connect to {DOMAIN} on port 80 (http-01 check)"
    );
    assert!(
        server.wait_for_stderr(&expected, Duration::from_secs(30)),
        "{}",
        server.stderr()
    );
    assert!(
        server.wait_for_stderr("Trying again in 1m.", Duration::from_secs(1)),
        "{}",
        server.stderr()
    );
    // Still serving, self-signed, without HSTS.
    let response = client().get(server.https_url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("strict-transport-security")
        .is_none());
    let root = pebble.issuing_root().await;
    assert!(
        fetch(&trusting(&root, ports.1), ports.1).await.is_err(),
        "no CA certificate yet"
    );
}

#[tokio::test]
async fn an_acme_server_that_is_down_at_start_is_retried_until_it_answers() {
    let ports = (free_port(), free_port());
    let pebble_port = free_port();
    let identity = tempfile::tempdir().unwrap();
    write_https_identity(identity.path());
    let directory = format!("https://127.0.0.1:{pebble_port}/dir");
    let app = app("");
    let server = start(
        app.path(),
        &directory,
        &identity.path().join("ca.crt"),
        ports,
    );
    assert!(
        server.wait_for_stderr(
            &format!("could not reach the ACME server at {directory}"),
            Duration::from_secs(20)
        ),
        "{}",
        server.stderr()
    );
    assert!(
        server.wait_for_stderr("Trying again in 10s.", Duration::from_secs(1)),
        "{}",
        server.stderr()
    );
    let pebble = Pebble::start(PebbleOpts {
        port: Some(pebble_port),
        identity: Some(identity.path().to_owned()),
        ..PebbleOpts::checking(ports.0, ports.1)
    });
    let root = pebble.issuing_root().await;
    let (_, response) =
        wait_for_certificate(&root, ports.1, &server, Duration::from_secs(40)).await;
    drop(response.text().await);
    assert!(server
        .stderr()
        .contains(&format!("{DOMAIN}: certificate issued")));
}

#[tokio::test]
async fn a_certificate_is_renewed_while_serving_and_open_connections_carry_on() {
    let ports = (free_port(), free_port());
    // 15-second certificates: renewal is due after 10.
    let pebble = Pebble::start(PebbleOpts {
        validity_secs: Some(15),
        ..PebbleOpts::checking(ports.0, ports.1)
    });
    let app = app("");
    let server = start(app.path(), &pebble.directory, &pebble.ca_root(), ports);
    let root = pebble.issuing_root().await;
    let (first, response) =
        wait_for_certificate(&root, ports.1, &server, Duration::from_secs(30)).await;
    drop(response.text().await);

    // One client keeps its connection (and handshake) across the renewal;
    // new clients see the new certificate as soon as it is in.
    let steady = trusting(&root, ports.1);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut steady_requests = 0;
    loop {
        let (leaf, response) = fetch(&steady, ports.1)
            .await
            .expect("the open connection keeps working");
        assert_eq!(response.status(), 200);
        assert_eq!(leaf, first, "still the first connection");
        drop(response.text().await);
        steady_requests += 1;
        if let Ok((leaf, response)) = fetch(&trusting(&root, ports.1), ports.1).await {
            drop(response.text().await);
            if leaf != first {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not renewed in time:\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("{steady_requests} requests on one connection across the renewal");
    let log = server.stderr();
    assert!(
        log.contains(&format!("{DOMAIN}: renewing the certificate")),
        "{log}"
    );
    assert_eq!(log.matches("certificate issued").count(), 2, "{log}");
}

#[test]
fn bad_acme_settings_are_refused_at_start_with_a_clear_message() {
    let app = app("");
    let dir = app.path().to_str().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let tls_listen = format!("127.0.0.1:{}", free_port());
    let base = [
        "run",
        dir,
        "--listen",
        &listen,
        "--tls-listen",
        &tls_listen,
        "--domain",
        DOMAIN,
    ];
    for (extra, expected) in [
        (
            vec!["--acme-ca-root", "/nonexistent/ca.pem"],
            "cannot read the ACME CA root /nonexistent/ca.pem",
        ),
        (
            vec!["--acme-directory", "http://127.0.0.1:14000/dir"],
            "ACME directories are served over HTTPS: give an https:// URL",
        ),
        (
            vec!["--domain", "https://www.example.com/"],
            "is not a domain: remove the scheme",
        ),
        (
            vec!["--acme-email", "ops at example.com"],
            "\"ops at example.com\" is not an email address",
        ),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        let (status, stderr) = run_to_exit(&args, Duration::from_secs(30));
        assert!(!status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}:\n{stderr}");
    }
    // A CA root that is not PEM.
    let not_pem = app.path().join("ca.pem");
    fs::write(&not_pem, "hello").unwrap();
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--acme-ca-root", not_pem.to_str().unwrap()])
        .collect();
    let (status, stderr) = run_to_exit(&args, Duration::from_secs(30));
    assert!(!status.success());
    assert!(stderr.contains("has no certificate in it"), "{stderr}");
}

#[tokio::test]
async fn local_names_and_ip_addresses_get_the_self_signed_certificate_and_say_why() {
    let app = app("");
    let server = Server::start(
        app.path(),
        Opts {
            args: [
                "--workers",
                "1",
                "--domain",
                "localhost",
                "--domain",
                "10.0.0.7",
            ]
            .map(String::from)
            .to_vec(),
            ..Opts::tls()
        },
    );
    let log = server.stderr();
    assert!(
        log.contains("localhost: served with the self-signed certificate, as ACME servers do not issue for it (it is a local name)"),
        "{log}"
    );
    assert!(log.contains("10.0.0.7: served with the self-signed certificate, as ACME servers do not issue for it (it is an IP address)"), "{log}");
    assert!(
        !log.contains("ACME account"),
        "the ACME server is never asked: {log}"
    );
    let response = client().get(server.https_url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("strict-transport-security")
        .is_none());
}

#[test]
fn domains_without_an_https_listener_or_with_acme_off_say_what_happens() {
    let app = app("");
    let server = Server::start(
        app.path(),
        Opts::args(&["--workers", "1", "--domain", DOMAIN]),
    );
    assert!(
        server.stderr().contains(
            "domains are set but there is no HTTPS listener, so no certificate is requested; add --tls-listen 0.0.0.0:443"
        ),
        "{}",
        server.stderr()
    );
    drop(server);

    let app = self::app("\n[tls]\nacme = false\n");
    let server = Server::start(
        app.path(),
        Opts {
            args: vec![
                "--workers".into(),
                "1".into(),
                "--domain".into(),
                DOMAIN.into(),
            ],
            ..Opts::tls()
        },
    );
    let log = server.stderr();
    assert!(
        log.contains("[tls] acme = false: the domains are served with the self-signed certificate"),
        "{log}"
    );
    assert!(!log.contains("ACME account"), "{log}");
}
