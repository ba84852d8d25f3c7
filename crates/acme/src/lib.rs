//! Certificates for the served domains from an ACME server (RFC 8555), such
//! as Let's Encrypt: obtained when a domain is added (at start, or when the
//! daemon gets a new app), stored on disk, renewed in the background well
//! before they expire, and handed to the edge's [`CertStore`] so new
//! handshakes use them at once.
//!
//! The edge answers the challenges: HTTP-01 tokens on the plain listener,
//! TLS-ALPN-01 certificates in the TLS handshake. Until a domain has a
//! certificate, the edge serves its self-signed one.

#![warn(missing_docs)]

mod account;
mod certificate;
mod challenge;
mod explain;
mod issue;
mod manager;
mod store;

use std::path::PathBuf;

pub use manager::{start, Acme};
pub use store::Store;

/// How an ACME server may check that this server answers for a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// A token fetched over plain HTTP (port 80).
    Http01,
    /// A special certificate shown in a TLS handshake (port 443).
    TlsAlpn01,
}

impl std::fmt::Display for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
        })
    }
}

/// What the ACME client needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The ACME server's directory URL.
    pub directory: String,
    /// Contact address for the account.
    pub email: Option<String>,
    /// A CA certificate (PEM) trusted for the ACME server besides the system's.
    pub ca_root: Option<PathBuf>,
    /// Challenges to try, in order; each needs its listener.
    pub challenges: Vec<Challenge>,
    /// Where the ACME state is kept: one folder per ACME server in it
    /// (`capstan run`: `<app>/.capstan/acme`; the daemon: `<root>/certs`).
    pub store_dir: PathBuf,
}

/// Why a name gets no ACME certificate: ACME servers only issue for public
/// DNS names. `None` when the name is one they might issue for.
pub fn not_issuable(name: &str) -> Option<&'static str> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Some("it is an IP address");
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return Some("it is a local name");
    }
    if !name.contains('.') {
        return Some("it has no dot, so it is not a public DNS name");
    }
    if name.ends_with(".local") || name.ends_with(".internal") || name.ends_with(".lan") {
        return Some("it is a private network name");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_ip_names_are_not_sent_to_the_acme_server() {
        for name in [
            "127.0.0.1",
            "::1",
            "localhost",
            "app.localhost",
            "intranet",
            "nas.local",
            "db.internal",
        ] {
            assert!(not_issuable(name).is_some(), "{name}");
        }
        for name in ["example.com", "www.example.com", "capstan.test"] {
            assert_eq!(not_issuable(name), None, "{name}");
        }
    }
}
