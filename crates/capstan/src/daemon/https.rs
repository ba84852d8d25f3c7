//! HTTPS for every app of the daemon: the TLS listener, the certificate
//! store every handshake picks from by SNI, and the ACME tasks that obtain
//! and renew each app's domains' certificates into `<root>/certs/`.
//!
//! The store has no fallback certificate: a name with none of its own (an
//! unknown Host, or a domain still waiting for its first certificate) fails
//! the handshake, as Caddy does, rather than being shown a self-signed or
//! another app's certificate. Such a domain is served on plain HTTP, with no
//! redirect, until its certificate is in.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use capstan_config::{DaemonSettings, LETS_ENCRYPT_PRODUCTION};
use capstan_edge::tls::{self, CertStore};
use capstan_edge::Listener;
use tokio_rustls::TlsAcceptor;

/// What a generation and a deploy need to know about HTTPS.
#[derive(Clone)]
pub struct Https {
    /// The TLS listener's port: where plain HTTP redirects to.
    pub port: u16,
    /// The certificates served (redirect and HSTS decisions, the deploy's
    /// last line).
    pub certs: Arc<CertStore>,
}

impl Https {
    /// The address a person types for `domain`.
    pub fn url(&self, domain: &str) -> String {
        match self.port {
            443 => format!("https://{domain}"),
            port => format!("https://{domain}:{port}"),
        }
    }
}

/// Keeps every app's domains certified; owned by the state loop.
pub struct Certificates {
    acme: capstan_acme::Acme,
}

impl Certificates {
    /// Starts the ACME tasks; call it once the listeners accept (the ACME
    /// server connects to them to check its challenges).
    pub fn begin(&mut self) {
        self.acme.begin();
    }

    /// Asks for (or loads back) a certificate for each of `domains` an ACME
    /// server can issue for; the others are said to stay on plain HTTP.
    pub fn manage(&mut self, app: &str, domains: &[String]) {
        for domain in domains {
            match capstan_acme::not_issuable(domain) {
                Some(reason) => tracing::info!(
                    app,
                    "{domain}: served on plain HTTP only, as ACME servers do not issue \
                     certificates for it ({reason})"
                ),
                None => self.acme.add(domain),
            }
        }
    }
}

impl Certificates {
    /// Stops keeping `domains` certified and serving their certificates
    /// (an app destroyed); the files stay in the store.
    pub fn forget(&mut self, domains: &[String]) {
        for domain in domains {
            self.acme.remove(domain);
        }
    }
}

/// Where the ACME state is kept.
fn store_dir(root: &Path) -> std::path::PathBuf {
    root.join("certs")
}

/// Binds the TLS listener and sets up the certificates: the stored ones are
/// served from the first handshake on; [`Certificates::manage`] adds each
/// app's domains. A settings problem that can never work (an unreadable CA
/// root) or a busy port is an error now.
pub async fn setup(
    root: &Path,
    addr: SocketAddr,
    settings: &DaemonSettings,
) -> anyhow::Result<(Listener, Https, Certificates)> {
    let certs = Arc::new(CertStore::without_fallback());
    let acme_settings = capstan_acme::Settings {
        directory: settings
            .acme_directory
            .clone()
            .unwrap_or_else(|| LETS_ENCRYPT_PRODUCTION.to_owned()),
        email: settings.acme_email.clone(),
        ca_root: settings.acme_ca_root.clone(),
        // As `capstan run` by default: HTTP-01 on the plain listener first,
        // then TLS-ALPN-01 on this one when port 80 cannot be reached.
        challenges: vec![
            capstan_acme::Challenge::Http01,
            capstan_acme::Challenge::TlsAlpn01,
        ],
        store_dir: store_dir(root),
    };
    let directory = acme_settings.directory.clone();
    let acme = capstan_acme::start(acme_settings, &[], Arc::clone(&certs)).map_err(|problem| {
        anyhow!(
            "{problem}; fix [acme] ca_root in {}",
            root.join("capstan.toml").display()
        )
    })?;
    // Bound before anything starts, like the plain listener.
    let tcp = crate::run::bind(addr, "--tls-listen").await?;
    let config = tls::server_config(Arc::clone(&certs)).context("could not set up TLS")?;
    tracing::info!(
        "certificates for every app's domains from {directory}, kept in {}",
        store_dir(root).display()
    );
    Ok((
        Listener {
            tcp,
            tls: Some(TlsAcceptor::from(config)),
        },
        Https {
            port: addr.port(),
            certs,
        },
        Certificates { acme },
    ))
}
