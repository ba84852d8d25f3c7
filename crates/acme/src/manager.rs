//! One background task per domain: serve the stored certificate if there is
//! one, obtain one if not, and renew it two thirds into its lifetime, with
//! retries that back off exponentially when the ACME server fails.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use capstan_config::format_duration;
use capstan_edge::tls::CertStore;
use instant_acme::Account;
use tokio::sync::OnceCell;
use tokio::task::{AbortHandle, JoinSet};

use crate::account;
use crate::certificate::Validity;
use crate::explain::Failure;
use crate::issue::issue;
use crate::store::Store;
use crate::Settings;

/// The certificate tasks, one per domain; dropping it stops them.
pub struct Acme {
    shared: Arc<Shared>,
    /// Domains added before [`Acme::begin`], with their stored validity.
    pending: Vec<(String, Option<Validity>)>,
    begun: bool,
    tasks: JoinSet<()>,
    by_domain: HashMap<String, AbortHandle>,
}

impl Acme {
    /// Starts the tasks. Call it once the listeners accept: the ACME server
    /// checks challenges by connecting to them, and a connection waiting in
    /// the backlog while the app boots would fail its check. Domains added
    /// from now on start at once.
    pub fn begin(&mut self) {
        self.begun = true;
        for (domain, validity) in std::mem::take(&mut self.pending) {
            self.spawn(domain, validity);
        }
    }

    /// Serves `domain`'s stored certificate from now on, if it has a current
    /// one, and keeps it certified: a task obtains one if there is none and
    /// renews it when due. A domain already added is left as it is.
    pub fn add(&mut self, domain: &str) {
        let known = self.by_domain.contains_key(domain)
            || self.pending.iter().any(|(pending, _)| pending == domain);
        if known {
            return;
        }
        let validity = load_stored(&self.shared, domain);
        if self.begun {
            self.spawn(domain.to_owned(), validity);
        } else {
            self.pending.push((domain.to_owned(), validity));
        }
    }

    /// Stops keeping `domain` certified and stops serving its certificate
    /// (its files stay on disk, so adding it again reuses them).
    pub fn remove(&mut self, domain: &str) {
        self.pending.retain(|(pending, _)| pending != domain);
        if let Some(task) = self.by_domain.remove(domain) {
            task.abort();
        }
        self.shared.certs.remove(domain);
    }

    fn spawn(&mut self, domain: String, validity: Option<Validity>) {
        let task = self.tasks.spawn(keep_certified(
            Arc::clone(&self.shared),
            domain.clone(),
            validity,
        ));
        self.by_domain.insert(domain, task);
    }
}

struct Shared {
    settings: Settings,
    /// The settings' CA root, read once at start.
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    store: Store,
    certs: Arc<CertStore>,
    account: OnceCell<Account>,
}

/// Puts the stored certificates of `domains` into `certs` now, and makes
/// the task per domain that obtains and renews them ([`Acme::begin`] starts
/// them; [`Acme::add`] adds more). Fails only on settings that can never
/// work (an unreadable CA root).
pub fn start(
    settings: Settings,
    domains: &[String],
    certs: Arc<CertStore>,
) -> Result<Acme, String> {
    let extra_roots = match &settings.ca_root {
        Some(path) => account::check_ca_root(path)?,
        None => Vec::new(),
    };
    let store = Store::new(&settings.store_dir, &settings.directory);
    let shared = Arc::new(Shared {
        settings,
        extra_roots,
        store,
        certs,
        account: OnceCell::new(),
    });
    let mut acme = Acme {
        shared,
        pending: Vec::new(),
        begun: false,
        tasks: JoinSet::new(),
        by_domain: HashMap::new(),
    };
    for domain in domains {
        acme.add(domain);
    }
    Ok(acme)
}

/// Serves `domain`'s stored certificate when it is still valid; its validity,
/// or `None` when a new one must be asked for.
fn load_stored(shared: &Shared, domain: &str) -> Option<Validity> {
    match shared.store.certificate(domain) {
        Ok(Some(found)) if found.is_current(SystemTime::now()) => {
            tracing::info!(
                "{domain}: using the stored certificate, valid until {}",
                httpdate::fmt_http_date(found.validity.not_after)
            );
            let validity = found.validity;
            shared.certs.insert(domain, Arc::new(found.key), true);
            Some(validity)
        }
        Ok(Some(_)) => {
            tracing::info!("{domain}: the stored certificate has expired; asking for a new one");
            None
        }
        Ok(None) => None,
        Err(error) => {
            tracing::warn!("{domain}: {error}; asking for a new certificate");
            None
        }
    }
}

/// Forever: wait until the certificate is due, then get a new one.
async fn keep_certified(shared: Arc<Shared>, domain: String, mut validity: Option<Validity>) {
    let mut failures = 0u32;
    loop {
        if let Some(current) = validity {
            let due = current.renew_at();
            if let Ok(wait) = due.duration_since(SystemTime::now()) {
                tracing::debug!(domain, ?wait, "next renewal");
                tokio::time::sleep(wait).await;
            }
            tracing::info!("{domain}: renewing the certificate");
        } else if failures == 0 && shared.certs.serves(&domain) {
            tracing::info!(
                "{domain}: no certificate yet; serving a self-signed one while {} is asked",
                shared.settings.directory
            );
        } else if failures == 0 {
            tracing::info!(
                "{domain}: no certificate yet; asking {} (HTTPS for it waits until then, \
                 plain HTTP serves it meanwhile)",
                shared.settings.directory
            );
        }
        match obtain(&shared, &domain).await {
            Ok(new) => {
                validity = Some(new);
                failures = 0;
            }
            Err(failure) => {
                failures += 1;
                let mut delay = retry_delay(failures, failure.transient);
                // Never wait past the current certificate's last day.
                if let Some(left) = validity.map(|v| v.not_after.duration_since(SystemTime::now()))
                {
                    let left = left.unwrap_or(Duration::ZERO);
                    delay = delay.min(left / 2).max(Duration::from_secs(1));
                }
                let message = failure.message.trim_end_matches('.');
                tracing::warn!(
                    "{domain}: could not get a certificate: {message}. Trying again in {}.",
                    format_duration(delay)
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Tries each challenge in turn; the first certificate wins.
async fn obtain(shared: &Shared, domain: &str) -> Result<Validity, Failure> {
    let started = Instant::now();
    let settings = &shared.settings;
    let account = shared
        .account
        .get_or_try_init(|| account::load_or_create(settings, &shared.extra_roots, &shared.store))
        .await?;
    let mut last = None;
    for (i, &challenge) in settings.challenges.iter().enumerate() {
        match issue(
            account,
            &settings.directory,
            domain,
            challenge,
            &shared.certs,
        )
        .await
        {
            Ok(issued) => {
                let store = &shared.store;
                store
                    .save_certificate(domain, &issued.chain_pem, &issued.key_pem)
                    .map_err(|e| Failure::local(e.to_string()))?;
                let saved = store
                    .certificate(domain)
                    .map_err(|e| Failure::local(e.to_string()))?
                    .ok_or_else(|| Failure::local("the saved certificate vanished"))?;
                let validity = saved.validity;
                shared.certs.insert(domain, Arc::new(saved.key), true);
                tracing::info!(
                    "{domain}: certificate issued ({challenge}) in {:.1?}, valid until {}; renewal after {}",
                    started.elapsed(),
                    httpdate::fmt_http_date(validity.not_after),
                    httpdate::fmt_http_date(validity.renew_at()),
                );
                return Ok(validity);
            }
            Err(failure) => {
                if let Some(next) = settings
                    .challenges
                    .get(i + 1)
                    .filter(|_| !failure.transient)
                {
                    tracing::warn!(
                        "{domain}: {challenge} failed: {}. Trying {next} instead.",
                        failure.message.trim_end_matches('.')
                    );
                }
                if failure.transient {
                    return Err(failure);
                }
                last = Some(failure);
            }
        }
    }
    Err(last.unwrap_or_else(|| Failure::local("no challenge type is enabled")))
}

/// The wait before attempt `failures + 1`: doubling from 10 s (server not
/// reachable) or 1 min (refused: failed validations count against the CA's
/// rate limits), up to 10 min and 6 h.
fn retry_delay(failures: u32, transient: bool) -> Duration {
    let (first, most) = if transient {
        (Duration::from_secs(10), Duration::from_secs(600))
    } else {
        (Duration::from_secs(60), Duration::from_secs(6 * 3600))
    };
    first
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(most)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_and_stop_growing() {
        let secs = |n, t| retry_delay(n, t).as_secs();
        assert_eq!([secs(1, true), secs(2, true), secs(3, true)], [10, 20, 40]);
        assert_eq!(secs(30, true), 600);
        assert_eq!([secs(1, false), secs(2, false)], [60, 120]);
        assert_eq!(secs(40, false), 6 * 3600);
    }
}
