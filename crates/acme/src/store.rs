//! Where ACME state lives on disk: one folder per ACME server (an account or
//! certificate from staging is no use with production), holding the account
//! key and, per domain, the certificate chain and its key. Everything is
//! readable by the owner only and written atomically.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use capstan_edge::tls::{self, TlsError};
use rustls::sign::CertifiedKey;

use crate::certificate::{validity, Validity};

/// The ACME state for one ACME server: its account and a certificate per domain.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// A certificate read back from disk.
pub struct Stored {
    /// Ready to serve.
    pub key: CertifiedKey,
    /// When the leaf certificate is valid.
    pub validity: Validity,
}

impl Store {
    /// The store for `directory_url` in `store_dir`.
    pub fn new(store_dir: &Path, directory_url: &str) -> Store {
        Store {
            dir: store_dir.join(slug(directory_url)),
        }
    }

    /// The folder everything is kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The saved account credentials (JSON), if an account was made.
    pub fn account(&self) -> Option<String> {
        fs::read_to_string(self.dir.join("account.json")).ok()
    }

    /// Saves the account credentials.
    pub fn save_account(&self, json: &str) -> Result<(), TlsError> {
        tls::create_private_dir(&self.dir)?;
        tls::write_private(&self.dir.join("account.json"), json.as_bytes())
    }

    /// The stored certificate for `domain`: `Ok(None)` when there is none,
    /// an error when files exist but cannot be used.
    pub fn certificate(&self, domain: &str) -> Result<Option<Stored>, TlsError> {
        let (cert_path, key_path) = self.paths(domain);
        if !cert_path.exists() || !key_path.exists() {
            return Ok(None);
        }
        let key = tls::load_pem(&cert_path, &key_path)?;
        let validity = validity(&key.cert[0]).map_err(|reason| TlsError::Unusable {
            path: cert_path.clone(),
            reason,
        })?;
        Ok(Some(Stored { key, validity }))
    }

    /// Saves a newly issued chain and its key for `domain`.
    pub fn save_certificate(
        &self,
        domain: &str,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<(), TlsError> {
        let (cert_path, key_path) = self.paths(domain);
        tls::create_private_dir(cert_path.parent().expect("a domain folder"))?;
        // The key first: a chain on disk always has its key beside it.
        tls::write_private(&key_path, key_pem.as_bytes())?;
        tls::write_private(&cert_path, chain_pem.as_bytes())
    }

    fn paths(&self, domain: &str) -> (PathBuf, PathBuf) {
        // Domains were checked to be LDH labels and dots, safe as a file name.
        let dir = self.dir.join(domain);
        (dir.join("fullchain.pem"), dir.join("privkey.pem"))
    }
}

impl Stored {
    /// Whether the certificate can still be served.
    pub fn is_current(&self, now: SystemTime) -> bool {
        now < self.validity.not_after
    }
}

/// A folder name for an ACME directory URL: its host and path, with anything
/// but letters, digits, dots and dashes made `_`.
fn slug(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_acme_server_gets_its_own_folder() {
        assert_eq!(
            slug("https://acme-v02.api.letsencrypt.org/directory"),
            "acme-v02.api.letsencrypt.org_directory"
        );
        assert_eq!(slug("https://127.0.0.1:14000/dir"), "127.0.0.1_14000_dir");
        assert_eq!(slug("https://x/../../etc"), "x_.._.._etc");
        let store = Store::new(Path::new("/s"), "https://x/../../etc");
        assert_eq!(store.dir(), Path::new("/s/x_.._.._etc"));
    }

    #[test]
    fn nothing_stored_is_none_and_garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), "https://ca.test/dir");
        assert!(store.certificate("example.com").unwrap().is_none());
        store
            .save_certificate("example.com", "not a pem", "not a key")
            .unwrap();
        let error = store.certificate("example.com").err().unwrap().to_string();
        assert!(error.contains("example.com/fullchain.pem"), "{error}");
    }
}
