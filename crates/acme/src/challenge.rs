//! A challenge answer put up in the edge for as long as the ACME server
//! may check it, and taken down whatever happens (drop guard).

use std::sync::Arc;

use capstan_edge::tls::CertStore;

use crate::Challenge;

/// Takes the answer down when dropped.
pub struct Posted {
    certs: Arc<CertStore>,
    kind: Challenge,
    /// The token (HTTP-01) or the domain (TLS-ALPN-01).
    key: String,
}

impl Posted {
    /// Serves `answer` at `/.well-known/acme-challenge/<token>`.
    pub fn http(certs: &Arc<CertStore>, token: &str, answer: &str) -> Posted {
        certs.set_http_challenge(token, Some(answer.to_owned()));
        Posted {
            certs: Arc::clone(certs),
            kind: Challenge::Http01,
            key: token.to_owned(),
        }
    }

    /// Shows `key` to acme-tls/1 handshakes for `domain`.
    pub fn tls_alpn(
        certs: &Arc<CertStore>,
        domain: &str,
        key: Arc<rustls::sign::CertifiedKey>,
    ) -> Posted {
        certs.set_alpn_challenge(domain, Some(key));
        Posted {
            certs: Arc::clone(certs),
            kind: Challenge::TlsAlpn01,
            key: domain.to_owned(),
        }
    }
}

impl Drop for Posted {
    fn drop(&mut self) {
        match self.kind {
            Challenge::Http01 => self.certs.set_http_challenge(&self.key, None),
            Challenge::TlsAlpn01 => self.certs.set_alpn_challenge(&self.key, None),
        }
    }
}
