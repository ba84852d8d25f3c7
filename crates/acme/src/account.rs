//! The ACME account: made once per ACME server and kept in the store, and
//! the HTTPS client it talks through (the system's CAs, plus an extra root
//! when the ACME server uses a private one, as test servers do).

use std::path::Path;

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{Account, AccountBuilder, AccountCredentials, NewAccount};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::explain::Failure;
use crate::store::Store;
use crate::Settings;

/// Reads the extra CA root now, so a bad path is reported at start.
pub fn check_ca_root(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the ACME CA root {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the ACME CA root {} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "the ACME CA root {} has no certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// `extra_roots`: the CA root from the settings, read at start.
fn builder(extra_roots: &[CertificateDer<'static>]) -> Result<AccountBuilder, Failure> {
    if extra_roots.is_empty() {
        return Account::builder().map_err(|e| Failure::local(format!("no HTTPS client: {e}")));
    }
    let mut roots = rustls::RootCertStore::empty();
    // The system's roots too: the extra one is added, not swapped in.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    for cert in extra_roots {
        roots
            .add(cert.clone())
            .map_err(|e| Failure::local(format!("the ACME CA root cannot be used: {e}")))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::local(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client = Client::builder(TokioExecutor::new()).build(connector);
    Ok(Account::builder_with_http(Box::new(client)))
}

/// The account for this ACME server: the stored one, or a new one (saved).
pub async fn load_or_create(
    settings: &Settings,
    extra_roots: &[CertificateDer<'static>],
    store: &Store,
) -> Result<Account, Failure> {
    let unreachable = |e| Failure::unreachable(&settings.directory, e);
    if let Some(json) = store.account() {
        match serde_json::from_str::<AccountCredentials>(&json) {
            Ok(credentials) => {
                return builder(extra_roots)?
                    .from_credentials(credentials)
                    .await
                    .map_err(unreachable)
            }
            Err(error) => tracing::warn!(
                path = %store.dir().join("account.json").display(),
                %error,
                "the stored ACME account cannot be read; making a new one"
            ),
        }
    }
    let contact = settings.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder(extra_roots)?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await
        .map_err(unreachable)?;
    let json = serde_json::to_string(&credentials)
        .map_err(|e| Failure::local(format!("cannot save the ACME account: {e}")))?;
    store
        .save_account(&json)
        .map_err(|e| Failure::local(e.to_string()))?;
    tracing::info!(directory = %settings.directory, "made an ACME account");
    Ok(account)
}
