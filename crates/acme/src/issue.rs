//! One order for one domain: post the challenge answer, let the ACME server
//! check it, then send a signing request and collect the certificate chain.

use std::sync::Arc;
use std::time::Duration;

use capstan_edge::tls::CertStore;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};

use crate::certificate;
use crate::challenge::Posted;
use crate::explain::Failure;
use crate::Challenge;

/// How long the ACME server gets to check a challenge, and to sign.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(120);

/// A newly issued certificate.
pub struct Issued {
    /// The chain, leaf first (PEM).
    pub chain_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
}

/// Orders a certificate for `domain`, proving control with `challenge`.
pub async fn issue(
    account: &Account,
    directory: &str,
    domain: &str,
    challenge: Challenge,
    certs: &Arc<CertStore>,
) -> Result<Issued, Failure> {
    let api = |e| Failure::about(domain, directory, e);
    let identifiers = [Identifier::Dns(domain.to_owned())];
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(api)?;

    // Answers stay up until the order is settled, then come down (drop).
    let mut posted = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(api)?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            // Proven recently; the ACME server remembers.
            AuthorizationStatus::Valid => continue,
            status => {
                return Err(Failure::local(format!(
                    "the ACME server's authorization for {domain} is {status:?}; a new order is tried later"
                )))
            }
        }
        let kind = match challenge {
            Challenge::Http01 => ChallengeType::Http01,
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let mut handle = authorization.challenge(kind).ok_or_else(|| {
            Failure::local(format!(
                "the ACME server does not offer the {challenge} challenge for {domain}"
            ))
        })?;
        let key_authorization = handle.key_authorization();
        posted.push(match challenge {
            Challenge::Http01 => Posted::http(certs, &handle.token, key_authorization.as_str()),
            Challenge::TlsAlpn01 => {
                let key = certificate::alpn_challenge(domain, key_authorization.digest().as_ref())
                    .map_err(|e| {
                        Failure::local(format!("cannot make the challenge certificate: {e}"))
                    })?;
                Posted::tls_alpn(certs, domain, key)
            }
        });
        handle.set_ready().await.map_err(api)?;
    }

    let polling = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(VALIDATION_TIMEOUT);
    let status = order.poll_ready(&polling).await.map_err(|e| match e {
        // The order went invalid: the problem is the challenge's.
        instant_acme::Error::Api(problem) => Failure::challenge(domain, challenge, Some(&problem)),
        other => api(other),
    })?;
    drop(posted);
    if status != OrderStatus::Ready {
        return Err(why_invalid(&mut order, domain, challenge).await);
    }

    let (key_pem, csr) = certificate::key_and_csr(domain)
        .map_err(|e| Failure::local(format!("cannot make a key for {domain}: {e}")))?;
    order.finalize_csr(&csr).await.map_err(api)?;
    let chain_pem = order.poll_certificate(&polling).await.map_err(api)?;
    Ok(Issued { chain_pem, key_pem })
}

/// The challenge's own error, which says what the ACME server saw.
async fn why_invalid(
    order: &mut instant_acme::Order,
    domain: &str,
    challenge: Challenge,
) -> Failure {
    {
        let mut authorizations = order.authorizations();
        while let Some(Ok(authorization)) = authorizations.next().await {
            if let Some(error) = authorization
                .challenges
                .iter()
                .find_map(|c| c.error.as_ref())
            {
                return Failure::challenge(domain, challenge, Some(error));
            }
        }
    }
    Failure::challenge(domain, challenge, order.state().error.as_ref())
}
