//! ACME failures in plain words: what went wrong for which domain, and what
//! to check, instead of an RFC 8555 error URN.

use instant_acme::Problem;

use crate::Challenge;

/// Why getting a certificate failed, ready to log.
#[derive(Debug)]
pub struct Failure {
    /// What happened and what to do about it.
    pub message: String,
    /// The ACME server could not be reached: worth retrying soon. Refusals
    /// are retried slowly (failed validations count against rate limits).
    pub transient: bool,
}

impl Failure {
    /// Something on this machine (files, keys).
    pub fn local(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            transient: false,
        }
    }

    /// A request to the ACME server failed: a refusal if it answered with a
    /// problem, otherwise it could not be reached.
    pub fn unreachable(directory: &str, error: instant_acme::Error) -> Failure {
        match error {
            instant_acme::Error::Api(problem) => Failure {
                message: problem_in_words(None, None, &problem),
                transient: false,
            },
            other => Failure {
                message: format!(
                    "could not reach the ACME server at {directory}: {}",
                    chain(&other)
                ),
                transient: true,
            },
        }
    }

    /// A request about `domain` failed.
    pub fn about(domain: &str, directory: &str, error: instant_acme::Error) -> Failure {
        match error {
            instant_acme::Error::Api(problem) => Failure {
                message: problem_in_words(Some(domain), None, &problem),
                transient: false,
            },
            other => Failure::unreachable(directory, other),
        }
    }

    /// The ACME server's check of `challenge` for `domain` failed.
    pub fn challenge(domain: &str, challenge: Challenge, problem: Option<&Problem>) -> Failure {
        let message = match problem {
            Some(problem) => problem_in_words(Some(domain), Some(challenge), problem),
            None => {
                format!("the ACME server's {challenge} check of {domain} failed without saying why")
            }
        };
        Failure {
            message,
            transient: false,
        }
    }
}

/// An error and its causes, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The problem document in words, with advice for the usual causes.
fn problem_in_words(domain: Option<&str>, challenge: Option<Challenge>, p: &Problem) -> String {
    let detail = p
        .detail
        .as_deref()
        .unwrap_or("no detail given")
        .trim_end_matches('.');
    let kind = p
        .r#type
        .as_deref()
        .and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:"))
        .unwrap_or("");
    let name = domain.unwrap_or("the domain");
    let (port, is) = match challenge {
        Some(Challenge::Http01) => ("port 80", "is"),
        Some(Challenge::TlsAlpn01) => ("port 443", "is"),
        None => ("ports 80 and 443", "are"),
    };
    let check = challenge.map_or(String::new(), |c| format!(" ({c} check)"));
    match kind {
        "dns" => format!(
            "DNS for {name} does not lead here{check}: {detail}. \
             Point {name}'s A/AAAA records at this server's address."
        ),
        "connection" => format!(
            "the ACME server could not connect to {name} on {port}{check}: {detail}. \
             Check that {name}'s DNS points at this server and that {port} {is} open to the internet."
        ),
        "unauthorized" | "incorrectResponse" => format!(
            "the ACME server got a wrong answer from {name}{check}: {detail}. \
             Something else answers for {name}: DNS may point at another server, or a proxy or CDN is in front."
        ),
        "tls" => format!(
            "the TLS handshake with {name} failed{check}: {detail}. \
             Check that {port} reaches capstan and not another server."
        ),
        "rateLimited" => format!(
            "the ACME server's rate limit was hit for {name}: {detail}. \
             capstan retries later; meanwhile the self-signed certificate is served."
        ),
        "rejectedIdentifier" => format!(
            "the ACME server will not issue a certificate for {name}: {detail}"
        ),
        "caa" => format!(
            "a CAA record of {name} forbids this certificate authority: {detail}"
        ),
        "invalidContact" | "unsupportedContact" => format!(
            "the ACME server refused the contact email: {detail}. Fix `email` in [tls]."
        ),
        "userActionRequired" => format!(
            "the ACME server needs something done by a person: {detail}"
        ),
        _ if kind.is_empty() => format!("the ACME server refused ({name}): {detail}"),
        _ => format!("the ACME server refused ({name}): {detail} ({kind})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: &str, detail: &str) -> Problem {
        serde_json::from_value(serde_json::json!({
            "type": format!("urn:ietf:params:acme:error:{kind}"),
            "detail": detail,
            "status": 400,
        }))
        .unwrap()
    }

    #[test]
    fn common_failures_say_what_to_check() {
        let p = problem("connection", "dial tcp 1.2.3.4:80: connection refused");
        let text = Failure::challenge("example.com", Challenge::Http01, Some(&p)).message;
        assert!(
            text.contains("could not connect to example.com on port 80"),
            "{text}"
        );
        assert!(text.contains("connection refused"), "{text}");
        let p = problem("dns", "NXDOMAIN looking up A for example.com");
        let text = Failure::challenge("example.com", Challenge::TlsAlpn01, Some(&p)).message;
        assert!(
            text.starts_with("DNS for example.com does not lead here"),
            "{text}"
        );
        let p = problem("rateLimited", "too many certificates already issued");
        let text = Failure::about("example.com", "https://ca", instant_acme::Error::Api(p)).message;
        assert!(
            text.contains("rate limit was hit for example.com"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_problem_keeps_its_type() {
        let p = problem("badCSR", "key too small");
        let failure = Failure::about("example.com", "https://ca", instant_acme::Error::Api(p));
        assert!(!failure.transient);
        assert!(
            failure.message.ends_with("key too small (badCSR)"),
            "{}",
            failure.message
        );
    }
}
