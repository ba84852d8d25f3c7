//! TLS: certificates by SNI, a self-signed one kept in the app's state
//! folder for when nothing better exists, and rustls set up with safe defaults.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use thiserror::Error;

/// Why TLS could not be set up.
#[derive(Debug, Error)]
pub enum TlsError {
    /// Reading or writing a key or certificate file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Generating the self-signed certificate failed.
    #[error("could not generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A stored certificate or key could not be used.
    #[error(
        "the certificate in {path} cannot be used: {reason}; delete it and capstan makes a new one"
    )]
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The ALPN protocol of the TLS-ALPN-01 challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Certificates by server name, with an optional fallback for names that
/// have none, and the answers to ACME challenges in progress.
///
/// Without a fallback (the daemon's store), a handshake for a name with no
/// certificate fails, as Caddy's does: a name the server holds nothing for
/// is never shown another site's certificate.
///
/// Everything can change while serving; new handshakes and requests see the
/// change at once.
#[derive(Debug)]
pub struct CertStore {
    by_name: RwLock<HashMap<String, Served>>,
    fallback: Option<Arc<CertifiedKey>>,
    /// TLS-ALPN-01: the challenge certificate by domain.
    alpn_challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01: the key authorization by token.
    http_challenges: RwLock<HashMap<String, String>>,
}

#[derive(Debug)]
struct Served {
    key: Arc<CertifiedKey>,
    /// Issued by a CA browsers trust (so HSTS is safe to send).
    trusted: bool,
}

impl CertStore {
    /// A store that answers every name with `fallback` until told otherwise.
    pub fn new(fallback: Arc<CertifiedKey>) -> Self {
        CertStore::with_fallback(Some(fallback))
    }

    /// A store that answers only the names it holds a certificate for.
    pub fn without_fallback() -> Self {
        CertStore::with_fallback(None)
    }

    fn with_fallback(fallback: Option<Arc<CertifiedKey>>) -> Self {
        CertStore {
            by_name: RwLock::new(HashMap::new()),
            fallback,
            alpn_challenges: RwLock::new(HashMap::new()),
            http_challenges: RwLock::new(HashMap::new()),
        }
    }

    /// Serves `key` for `name` from now on. `trusted` says it was issued by a
    /// CA (not self-signed).
    pub fn insert(&self, name: &str, key: Arc<CertifiedKey>, trusted: bool) {
        self.by_name
            .write()
            .expect("cert lock")
            .insert(name.to_ascii_lowercase(), Served { key, trusted });
    }

    /// Stops serving `name`'s own certificate (the fallback, if any, is
    /// served for it from now on).
    pub fn remove(&self, name: &str) {
        self.by_name
            .write()
            .expect("cert lock")
            .remove(&name.to_ascii_lowercase());
    }

    /// Whether a handshake for `name` gets a certificate: its own, or the
    /// fallback.
    pub fn serves(&self, name: &str) -> bool {
        self.fallback.is_some()
            || self
                .by_name
                .read()
                .expect("cert lock")
                .contains_key(&name.to_ascii_lowercase())
    }

    /// Whether `name` is served with a CA-issued certificate.
    pub fn is_trusted(&self, name: &str) -> bool {
        self.by_name
            .read()
            .expect("cert lock")
            .get(&name.to_ascii_lowercase())
            .is_some_and(|served| served.trusted)
    }

    /// Answers TLS-ALPN-01 handshakes for `domain` with `key` until removed.
    pub fn set_alpn_challenge(&self, domain: &str, key: Option<Arc<CertifiedKey>>) {
        let mut challenges = self.alpn_challenges.write().expect("cert lock");
        match key {
            Some(key) => challenges.insert(domain.to_ascii_lowercase(), key),
            None => challenges.remove(&domain.to_ascii_lowercase()),
        };
    }

    /// Answers HTTP-01 requests for `token` with `key_authorization` until removed.
    pub fn set_http_challenge(&self, token: &str, key_authorization: Option<String>) {
        let mut challenges = self.http_challenges.write().expect("cert lock");
        match key_authorization {
            Some(answer) => challenges.insert(token.to_owned(), answer),
            None => challenges.remove(token),
        };
    }

    /// The key authorization for an HTTP-01 token, if a challenge is in progress.
    pub fn http_challenge(&self, token: &str) -> Option<String> {
        self.http_challenges
            .read()
            .expect("cert lock")
            .get(token)
            .cloned()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(str::to_ascii_lowercase);
        // SECURITY: the challenge certificate is only ever shown to a client
        // that asks for nothing but acme-tls/1 (RFC 8737, 4), and such a
        // connection is closed after the handshake.
        let acme_only = hello
            .alpn()
            .map(|mut protocols| protocols.all(|p| p == ACME_TLS_ALPN))
            .unwrap_or(false);
        if acme_only {
            let challenges = self.alpn_challenges.read().expect("cert lock");
            return name.and_then(|name| challenges.get(&name).cloned());
        }
        if let Some(name) = &name {
            let by_name = self.by_name.read().expect("cert lock");
            if let Some(served) = by_name.get(name) {
                return Some(Arc::clone(&served.key));
            }
        }
        if self.fallback.is_none() {
            tracing::debug!(
                server_name = name.as_deref().unwrap_or("(none)"),
                "no certificate for this name; the handshake fails"
            );
        }
        self.fallback.clone()
    }
}

/// rustls set up as capstan serves: TLS 1.2 and 1.3 only with ring's modern
/// AEAD suites (rustls has no others), ALPN h2 then http/1.1 (and
/// acme-tls/1 for TLS-ALPN-01 challenges), session
/// resumption by cache and by tickets.
pub fn server_config(certs: Arc<CertStore>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    // acme-tls/1 last: only a client offering nothing else gets it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    config.ignore_client_order = true;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// The self-signed certificate in `dir` (`self-signed.crt`, `self-signed.key`,
/// mode 0600), made for `names` on first use and kept across restarts.
pub fn self_signed(dir: &Path, names: &[String]) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_path = dir.join("self-signed.crt");
    let key_path = dir.join("self-signed.key");
    let stamp_path = dir.join("self-signed.names");
    let wanted = names.join("\n");
    let reusable = fs::read_to_string(&stamp_path).is_ok_and(|s| s == wanted)
        && cert_path.exists()
        && key_path.exists();
    if !reusable {
        create_private_dir(dir)?;
        let generated = rcgen::generate_simple_self_signed(names.to_vec())?;
        write_private(&key_path, generated.key_pair.serialize_pem().as_bytes())?;
        write_private(&cert_path, generated.cert.pem().as_bytes())?;
        write_private(&stamp_path, wanted.as_bytes())?;
        tracing::info!(path = %cert_path.display(), names = ?names, "made a self-signed certificate");
    }
    load_pem(&cert_path, &key_path).map(Arc::new)
}

/// Creates `dir` (and its parents) and makes it readable by its owner only.
pub fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        action: "creating",
        path: dir.to_owned(),
        source,
    })?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| TlsError::Io {
        action: "restricting",
        path: dir.to_owned(),
        source,
    })
}

/// A certificate chain and key from PEM files.
pub fn load_pem(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        fs::read(path).map_err(|source| TlsError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        })
    };
    let unusable = |path: &Path, reason: String| TlsError::Unusable {
        path: path.to_owned(),
        reason,
    };
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| unusable(cert_path, e.to_string()))?;
    if chain.is_empty() {
        return Err(unusable(cert_path, "no certificate in it".into()));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| unusable(key_path, e.to_string()))?
        .ok_or_else(|| unusable(key_path, "no private key in it".into()))?;
    let signing = any_supported_type(&key).map_err(|e| unusable(key_path, e.to_string()))?;
    Ok(CertifiedKey::new(chain, signing))
}

/// Writes a file readable by its owner only (temp file, fsync, rename), so
/// a crash never leaves half a key behind.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        action: "writing",
        path: path.to_owned(),
        source,
    };
    capstan_fsutil::write_atomic(path, contents, 0o600).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_signed_certificate_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let first = self_signed(dir.path(), &names).unwrap();
        let mode = fs::metadata(dir.path().join("self-signed.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = self_signed(dir.path(), &names).unwrap();
        assert_eq!(first.cert, second.cert, "reused, not regenerated");
        let other = self_signed(dir.path(), &["example.test".to_owned()]).unwrap();
        assert_ne!(first.cert, other.cert, "new names, new certificate");
    }

    #[test]
    fn a_garbage_key_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned()];
        self_signed(dir.path(), &names).unwrap();
        fs::write(dir.path().join("self-signed.key"), "garbage").unwrap();
        let error = self_signed(dir.path(), &names).unwrap_err().to_string();
        assert!(error.contains("self-signed.key"), "{error}");
    }

    #[test]
    fn the_server_config_offers_h2_and_only_modern_versions() {
        let dir = tempfile::tempdir().unwrap();
        let key = self_signed(dir.path(), &["localhost".to_owned()]).unwrap();
        let config = server_config(Arc::new(CertStore::new(key))).unwrap();
        assert_eq!(config.alpn_protocols[0], b"h2");
        assert_eq!(config.alpn_protocols.last().unwrap(), ACME_TLS_ALPN);
        assert!(config.ignore_client_order);
    }

    #[test]
    fn challenge_answers_come_and_go_and_only_ca_certificates_count_as_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let key = self_signed(dir.path(), &["localhost".to_owned()]).unwrap();
        let store = CertStore::new(Arc::clone(&key));
        store.set_http_challenge("tok", Some("tok.thumb".into()));
        assert_eq!(store.http_challenge("tok").as_deref(), Some("tok.thumb"));
        assert_eq!(store.http_challenge("other"), None);
        store.set_http_challenge("tok", None);
        assert_eq!(store.http_challenge("tok"), None);
        store.insert("Self.Example", Arc::clone(&key), false);
        store.insert("ca.example", key, true);
        assert!(!store.is_trusted("self.example"));
        assert!(store.is_trusted("CA.example"));
        assert!(!store.is_trusted("unknown.example"));
    }

    #[test]
    fn a_store_without_fallback_serves_only_the_names_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let key = self_signed(dir.path(), &["localhost".to_owned()]).unwrap();
        let store = CertStore::without_fallback();
        assert!(!store.serves("a.example"));
        store.insert("A.example", key, true);
        assert!(store.serves("a.example"));
        assert!(!store.serves("b.example"));
        store.remove("a.example");
        assert!(!store.serves("a.example"));
        assert!(
            CertStore::new(self_signed(dir.path(), &["localhost".to_owned()]).unwrap())
                .serves("anything.example")
        );
    }
}
