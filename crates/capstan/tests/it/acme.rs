//! Automatic HTTPS against a real ACME server (Pebble on loopback): issuance
//! over HTTP-01 and TLS-ALPN-01, renewal while serving, a failing challenge
//! reported in plain words, retries when the ACME server is down, and a
//! restart that reuses the stored certificate without asking again.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::fixture::{app_copy, client, free_port, Opts, Server};
use crate::pebble::{Pebble, PebbleOpts};

const DOMAIN: &str = "a.capstan.test";

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
    let response = client
        .get(format!("https://{DOMAIN}:{https_port}/"))
        .send()
        .await?;
    let leaf = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info")
        .to_vec();
    Ok((leaf, response))
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
    let pebble = Pebble::start(PebbleOpts {
        http_port: ports.0,
        tls_port: ports.1,
        validity_secs: None,
        port: None,
    });
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
    assert!(
        server
            .stderr()
            .contains(&format!("{DOMAIN}: certificate issued (http-01)")),
        "{}",
        server.stderr()
    );
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
