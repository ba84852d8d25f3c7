//! Let's Encrypt's test ACME server, Pebble (Debian's `pebble` package), on
//! loopback, with `pebble-challtestsrv` as its DNS server so every test name
//! resolves to 127.0.0.1. Each test gets its own pair, stopped on drop.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fixture::free_port;

/// How Pebble is set up.
pub struct PebbleOpts {
    /// Where Pebble's validator connects for HTTP-01 (capstan's --listen port).
    pub http_port: u16,
    /// Where it connects for TLS-ALPN-01 (capstan's --tls-listen port).
    pub tls_port: u16,
    /// Lifetime of issued certificates, in seconds (Pebble's default is years).
    pub validity_secs: Option<u64>,
    /// Pebble's own port, when capstan must be told it before Pebble starts.
    pub port: Option<u16>,
    /// A folder already holding Pebble's HTTPS identity ([`write_https_identity`]).
    pub identity: Option<PathBuf>,
}

impl PebbleOpts {
    /// Pebble checking challenges on these ports; the rest by default.
    pub fn checking(http_port: u16, tls_port: u16) -> PebbleOpts {
        PebbleOpts {
            http_port,
            tls_port,
            validity_secs: None,
            port: None,
            identity: None,
        }
    }
}

pub struct Pebble {
    pebble: Child,
    dns: Child,
    dir: tempfile::TempDir,
    identity: PathBuf,
    /// The directory URL.
    pub directory: String,
    management_port: u16,
    output: Arc<Mutex<String>>,
}

impl Pebble {
    /// Starts challtestsrv and Pebble, and waits until Pebble serves.
    pub fn start(opts: PebbleOpts) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let identity = opts.identity.clone().unwrap_or_else(|| {
            write_https_identity(dir.path());
            dir.path().to_owned()
        });
        let dns_port = free_port();
        let dns_management = free_port();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv runs (apt-get install pebble)");

        let port = opts.port.unwrap_or_else(free_port);
        let management_port = free_port();
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": identity.join("pebble.crt"),
                "privateKey": identity.join("pebble.key"),
                "httpPort": opts.http_port,
                "tlsPort": opts.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        if let Some(secs) = opts.validity_secs {
            config["pebble"]["certificateValidityPeriod"] = secs.into();
        }
        let config_path = dir.path().join("pebble.json");
        fs::write(&config_path, config.to_string()).unwrap();
        let mut pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // No random validation delays, no random nonce rejections, and a
            // fresh validation for every order (so renewals prove control again).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pebble runs (apt-get install pebble)");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(pebble.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(pebble.stderr.take().unwrap()),
        ] {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut output = output.lock().unwrap();
                    output.push_str(&line);
                    output.push('\n');
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pebble did not start:\n{}",
                output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Pebble {
            pebble,
            dns,
            dir,
            identity,
            directory: format!("https://127.0.0.1:{port}/dir"),
            management_port,
            output,
        }
    }

    /// The CA certificate Pebble's own HTTPS listener uses (for --acme-ca-root).
    pub fn ca_root(&self) -> PathBuf {
        self.identity.join("ca.crt")
    }

    /// The root that issued certificates chain to, as PEM (random per run).
    pub async fn issuing_root(&self) -> String {
        let client = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&fs::read(self.ca_root()).unwrap()).unwrap(),
            )
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let url = format!("https://127.0.0.1:{}/roots/0", self.management_port);
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// Everything Pebble logged.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.pebble.kill();
        let _ = self.dns.kill();
        let _ = self.pebble.wait();
        let _ = self.dns.wait();
    }
}

/// A CA and a certificate for 127.0.0.1 and localhost signed by it, for
/// Pebble's own HTTPS (capstan is told to trust the CA).
pub fn write_https_identity(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "capstan test ACME CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    fs::write(dir.join("pebble.crt"), cert.pem()).unwrap();
    fs::write(dir.join("pebble.key"), key.serialize_pem()).unwrap();
}

/// GETs `url` with `client` (built with `tls_info(true)`): the leaf
/// certificate the server showed, and the response.
pub async fn get_with_leaf(
    client: &reqwest::Client,
    url: &str,
) -> Result<(Vec<u8>, reqwest::Response), reqwest::Error> {
    let response = client.get(url).send().await?;
    let leaf = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info")
        .to_vec();
    Ok((leaf, response))
}
