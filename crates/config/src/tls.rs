//! The `[tls]` table: where certificates for the app's domains come from.

use std::path::Path;

use crate::app::{AcmeChallenge, TlsSettings, LETS_ENCRYPT_STAGING};
use crate::error::ConfigError;
use crate::names::check_email;
use crate::toml_tree::Table;

const TLS_KEYS: &[&str] = &[
    "acme",
    "email",
    "acme_directory",
    "staging",
    "acme_ca_root",
    "challenges",
];

/// Reads `[tls]`; absent keys keep their defaults. `root` is the app directory,
/// which a relative `acme_ca_root` is read from.
pub(crate) fn read_tls(root: &Path, table: &Table<'_>) -> Result<TlsSettings, ConfigError> {
    table.check_keys(TLS_KEYS)?;
    let mut tls = TlsSettings::default();
    let mut directory_line = None;
    let mut staging_line = None;
    for f in table.fields() {
        match f.key {
            "acme" => tls.acme = f.bool()?,
            "email" => tls.email = Some(check_email(f.nonempty_str()?).map_err(|e| f.bad(e))?),
            "acme_directory" => {
                let url = f.nonempty_str()?;
                if !url.starts_with("https://") {
                    return Err(f.bad(format_args!(
                        "{url:?} is not an https:// URL; ACME directories are only served over HTTPS"
                    )));
                }
                tls.acme_directory = url.to_owned();
                directory_line = Some(f.line());
            }
            "staging" => {
                if f.bool()? {
                    staging_line = Some(f.line());
                }
            }
            "acme_ca_root" => tls.acme_ca_root = Some(root.join(f.nonempty_str()?)),
            "challenges" => {
                let mut challenges = Vec::new();
                for c in f.array()? {
                    let challenge = match c.str()? {
                        "http-01" => AcmeChallenge::Http01,
                        "tls-alpn-01" => AcmeChallenge::TlsAlpn01,
                        other => {
                            return Err(c.bad(format_args!(
                                "unknown challenge {other:?}; capstan answers \"http-01\" and \"tls-alpn-01\""
                            )))
                        }
                    };
                    if !challenges.contains(&challenge) {
                        challenges.push(challenge);
                    }
                }
                if challenges.is_empty() {
                    return Err(f.bad("needs at least one of \"http-01\", \"tls-alpn-01\""));
                }
                tls.challenges = challenges;
            }
            _ => unreachable!(),
        }
    }
    if let Some(line) = staging_line {
        if directory_line.is_some() {
            return Err(ConfigError::BadValue {
                file: table.file().to_path_buf(),
                line,
                key: "staging".into(),
                problem: "staging and acme_directory both name the ACME server; keep one".into(),
            });
        }
        tls.acme_directory = LETS_ENCRYPT_STAGING.to_owned();
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::LETS_ENCRYPT_PRODUCTION;
    use crate::toml_tree::Doc;

    fn read(text: &str) -> Result<TlsSettings, ConfigError> {
        let doc = Doc {
            file: Path::new("capstan.toml"),
            text,
        };
        let item = doc.parse()?;
        let top = doc.root(&item);
        read_tls(Path::new("/app"), &top.get("tls").unwrap().table()?)
    }

    #[test]
    fn defaults_are_lets_encrypt_production_with_both_challenges() {
        let tls = read("[tls]\n").unwrap();
        assert_eq!(tls, TlsSettings::default());
        assert!(tls.acme);
        assert_eq!(tls.acme_directory, LETS_ENCRYPT_PRODUCTION);
        assert_eq!(
            tls.challenges,
            [AcmeChallenge::Http01, AcmeChallenge::TlsAlpn01]
        );
    }

    #[test]
    fn every_key_is_read() {
        let tls = read(
            "[tls]\nemail = \"ops@example.com\"\nacme_directory = \"https://127.0.0.1:14000/dir\"\n\
             acme_ca_root = \"ca/root.pem\"\nchallenges = [\"tls-alpn-01\"]\nacme = true\n",
        )
        .unwrap();
        assert_eq!(tls.email.as_deref(), Some("ops@example.com"));
        assert_eq!(tls.acme_directory, "https://127.0.0.1:14000/dir");
        assert_eq!(tls.acme_ca_root.unwrap(), Path::new("/app/ca/root.pem"));
        assert_eq!(tls.challenges, [AcmeChallenge::TlsAlpn01]);
        let staging = read("[tls]\nstaging = true\n").unwrap();
        assert_eq!(staging.acme_directory, LETS_ENCRYPT_STAGING);
    }

    #[test]
    fn mistakes_name_the_line_and_key() {
        for (text, expected) in [
            ("[tls]\nemail = \"ops\"\n", "capstan.toml:2: bad value for `email`: \"ops\" is not an email address"),
            ("[tls]\nacme_directory = \"http://ca.test/dir\"\n", "capstan.toml:2: bad value for `acme_directory`: \"http://ca.test/dir\" is not an https:// URL"),
            ("[tls]\nchallenges = [\"dns-01\"]\n", "capstan.toml:2: bad value for `challenges`: unknown challenge \"dns-01\""),
            ("[tls]\nchallenges = []\n", "capstan.toml:2: bad value for `challenges`: needs at least one"),
            ("[tls]\nacme_directory = \"https://ca.test/dir\"\nstaging = true\n", "capstan.toml:3: bad value for `staging`: staging and acme_directory both name the ACME server"),
            ("[tls]\ncert = \"x.pem\"\n", "capstan.toml:2: unknown key `cert` in [tls]"),
        ] {
            let error = read(text).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{text:?} gave {error}");
        }
    }
}
