//! The certificates capstan makes itself: a private key with its signing
//! request for an order, and the one-off TLS-ALPN-01 challenge certificate.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

/// When a certificate may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Not valid before.
    pub not_before: SystemTime,
    /// Not valid after.
    pub not_after: SystemTime,
}

impl Validity {
    /// When to renew: two thirds into the lifetime, as certbot and Let's
    /// Encrypt advise (30 days before expiry for a 90-day certificate).
    pub fn renew_at(&self) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO);
        self.not_before + lifetime * 2 / 3
    }
}

/// The validity of a DER certificate.
pub fn validity(cert: &CertificateDer<'_>) -> Result<Validity, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("it is not a valid X.509 certificate ({e})"))?;
    let at = |t: &x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH
        }
    };
    let v = parsed.validity();
    Ok(Validity {
        not_before: at(&v.not_before),
        not_after: at(&v.not_after),
    })
}

/// A fresh ECDSA P-256 key (PEM) and a signing request for `domain` (DER).
pub fn key_and_csr(domain: &str) -> Result<(String, Vec<u8>), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.der().to_vec()))
}

/// The TLS-ALPN-01 certificate for `domain` (RFC 8737, 3): self-signed,
/// carrying the SHA-256 digest of the key authorization.
pub fn alpn_challenge(domain: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = any_supported_type(&der).map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_two_thirds_into_the_lifetime() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let v = Validity {
            not_before: start,
            not_after: start + Duration::from_secs(90 * 86400),
        };
        assert_eq!(v.renew_at(), start + Duration::from_secs(60 * 86400));
    }

    #[test]
    fn the_challenge_certificate_names_the_domain_and_reads_back() {
        let key = alpn_challenge("example.com", &[7u8; 32]).unwrap();
        let v = validity(&key.cert[0]).unwrap();
        assert!(v.not_before < v.not_after);
        let (_, parsed) = x509_parser::parse_x509_certificate(key.cert[0].as_ref()).unwrap();
        // id-pe-acmeIdentifier, critical, holding the digest.
        let ext = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        assert!(ext.value.ends_with(&[7u8; 32]));
    }

    #[test]
    fn a_csr_is_made_with_a_fresh_key() {
        let (key_pem, csr) = key_and_csr("example.com").unwrap();
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(!csr.is_empty());
        assert!(
            validity(&CertificateDer::from(csr)).is_err(),
            "a CSR is not a certificate"
        );
    }
}
