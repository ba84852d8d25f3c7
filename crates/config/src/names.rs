//! Names that end up in paths, unit names, host headers and environments: app names,
//! process names, domains and environment variable names. Each is checked here, once.

use std::fmt;
use std::str::FromStr;

/// An app's name: `[a-z0-9][a-z0-9-_]{0,62}`.
///
/// It becomes part of directory names, user names and log prefixes on the server,
/// so it is restricted to characters that are safe in all of them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppName(String);

/// A string that is not a valid [`AppName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid app name: use 1 to 63 lowercase letters, digits, '-' or '_', \
     starting with a letter or digit"
)]
pub struct InvalidAppName(pub String);

impl AppName {
    /// The longest name allowed.
    pub const MAX_LEN: usize = 63;

    /// Checks `name` and wraps it.
    pub fn new(name: &str) -> Result<AppName, InvalidAppName> {
        if is_name(name, false) {
            Ok(AppName(name.to_owned()))
        } else {
            Err(InvalidAppName(name.to_owned()))
        }
    }

    /// The default name for an app living in a directory called `dir_name`: lowercased,
    /// other characters replaced by `-`, leading `-`/`_` dropped, cut to 63 characters.
    /// `None` when nothing usable is left (e.g. a directory called `___`).
    pub fn from_dir_name(dir_name: &str) -> Option<AppName> {
        let mapped: String = dir_name
            .chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let trimmed: String = mapped
            .trim_start_matches(['-', '_'])
            .chars()
            .take(Self::MAX_LEN)
            .collect();
        AppName::new(&trimmed).ok()
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AppName {
    type Err = InvalidAppName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AppName::new(s)
    }
}

impl AsRef<str> for AppName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for AppName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AppName {
    // SECURITY: a name read from a request is checked like one read from a file.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        AppName::new(&name).map_err(serde::de::Error::custom)
    }
}

/// `[a-z0-9][a-z0-9-_]{0,62}`, or with `upper` also A-Z (Procfile process names).
pub(crate) fn is_name(s: &str, upper: bool) -> bool {
    let ok =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || (upper && c.is_ascii_uppercase());
    let mut chars = s.chars();
    match chars.next() {
        Some(first) if ok(first) => {}
        _ => return false,
    }
    s.len() <= AppName::MAX_LEN && chars.all(|c| ok(c) || c == '-' || c == '_')
}

/// Checks a process name (`[processes.<name>]` or a Procfile entry); returns the problem.
pub(crate) fn check_process_name(name: &str) -> Result<(), String> {
    // SECURITY: process names become log file names and unit names; no '/', '.', spaces.
    if !is_name(name, true) {
        return Err(format!(
            "{name:?} is not a valid process name: use letters, digits, '-' and '_', \
             starting with a letter or digit, at most 63 characters"
        ));
    }
    if name == "web" || name == "release" {
        return Err(format!(
            "`{name}` is reserved: the web process is set in [web] and release commands in \
             [release]; pick another name"
        ));
    }
    check_not_a_log_name(name)
}

/// Refuses the names of an app's log files that are not a process's.
pub(crate) fn check_not_a_log_name(name: &str) -> Result<(), String> {
    if let Some(log) = LOG_NAMES.iter().find(|reserved| **reserved == name) {
        return Err(format!(
            "`{name}` is reserved: on a server logs/{log}.log holds {}; pick another name",
            match *log {
                "deploy" => "every deploy's output",
                "access" => "the access log",
                "capstan" => "the daemon's lines about the app",
                _ => "the build commands' output",
            }
        ));
    }
    Ok(())
}

/// Log files of an app that are not a `[processes]` entry's.
const LOG_NAMES: [&str; 4] = ["deploy", "access", "capstan", "build"];

/// Checks a cron job name (`[cron.<name>]`); returns the problem.
pub(crate) fn check_cron_name(name: &str) -> Result<(), String> {
    // SECURITY: the name becomes the log file name `cron.<name>.log`; no '/', '.', spaces.
    if is_name(name, true) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid cron job name: use letters, digits, '-' and '_', \
             starting with a letter or digit, at most 63 characters"
        ))
    }
}

/// Lowercases and checks a domain: a hostname only, no scheme, port, path or wildcard.
pub fn normalize_domain(input: &str) -> Result<String, String> {
    let hint = |what: &str| {
        format!("{input:?} is not a domain: {what}; write just the host name, like \"blog.example.com\"")
    };
    if input.contains("://") {
        return Err(hint("remove the scheme"));
    }
    if input.contains('/') {
        return Err(hint("remove the path"));
    }
    if input.contains(':') {
        return Err(hint("remove the port (capstan listens on 80 and 443)"));
    }
    if input.starts_with("*.") {
        return Err(hint("wildcard domains are not supported, list each name"));
    }
    let domain = input
        .strip_suffix('.')
        .unwrap_or(input)
        .to_ascii_lowercase();
    if !domain.is_ascii() {
        return Err(hint(
            "use the punycode form (xn--...) of international names",
        ));
    }
    // SECURITY: domains are matched against Host headers and used in certificate
    // requests and file names; only LDH labels get through.
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(hint(
            "labels are 1 to 63 letters, digits or '-', separated by dots",
        ));
    }
    Ok(domain)
}

/// Checks a contact email for the ACME account. ACME servers refuse what is
/// not a mail address; saying so at start beats a failed round trip.
pub fn check_email(input: &str) -> Result<String, String> {
    let ok = input
        .split_once('@')
        .is_some_and(|(user, host)| !user.is_empty() && host.contains('.') && !host.contains('@'))
        && !input.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(input.to_owned())
    } else {
        Err(format!(
            "{input:?} is not an email address (e.g. \"admin@example.com\")"
        ))
    }
}

/// Checks an environment variable name (from `[env]`, or `capstan env set`); returns the problem.
pub fn check_env_name(name: &str) -> Result<(), String> {
    // SECURITY: a name with '=' or NUL would corrupt the child's environment block.
    let mut chars = name.chars();
    let first_ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid environment variable name: use letters, digits and '_', \
             not starting with a digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_follow_the_pattern() {
        for ok in ["a", "microblog", "my-app_2", "0day", &"a".repeat(63)] {
            assert!(AppName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "_a", "My", "a.b", "a b", "a/b", &"a".repeat(64)] {
            let err = AppName::new(bad).unwrap_err();
            assert!(err.to_string().contains("not a valid app name"), "{bad}");
        }
    }

    #[test]
    fn app_names_are_checked_when_deserialized_and_serialize_as_strings() {
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        struct Named {
            name: AppName,
        }
        let named: Named = toml::from_str("name = \"blog\"").unwrap();
        assert_eq!(named.name.as_str(), "blog");
        assert_eq!(toml::to_string(&named).unwrap(), "name = \"blog\"\n");
        let error = toml::from_str::<Named>("name = \"../etc\"").unwrap_err();
        assert!(
            error.to_string().contains("not a valid app name"),
            "{error}"
        );
    }

    #[test]
    fn dir_names_become_app_names() {
        let name = |d: &str| AppName::from_dir_name(d).map(|n| n.to_string());
        assert_eq!(name("Microblog"), Some("microblog".into()));
        assert_eq!(name("my.site v2"), Some("my-site-v2".into()));
        assert_eq!(name("_private"), Some("private".into()));
        assert_eq!(name("-x"), Some("x".into()));
        assert_eq!(name("___"), None);
        assert_eq!(name("日本"), None);
        assert_eq!(name(&"b".repeat(100)).unwrap().len(), 63);
    }

    #[test]
    fn process_names_reject_paths_and_reserved_names() {
        assert!(check_process_name("worker").is_ok());
        assert!(check_process_name("Clock_2").is_ok());
        assert!(check_process_name("../x").is_err());
        assert!(check_process_name("a b").is_err());
        assert!(check_process_name("web").unwrap_err().contains("reserved"));
        for name in ["deploy", "access", "capstan", "build"] {
            let error = check_process_name(name).unwrap_err();
            assert!(error.contains(&format!("logs/{name}.log")), "{error}");
        }
    }

    #[test]
    fn cron_names_reject_paths_and_dots() {
        assert!(check_cron_name("backup").is_ok());
        assert!(check_cron_name("Nightly_2").is_ok());
        assert!(check_cron_name("web").is_ok());
        for bad in ["", "../x", "a.b", "a b", "-a", &"a".repeat(64)] {
            assert!(check_cron_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn domains_are_lowercased_and_checked() {
        assert_eq!(
            normalize_domain("Blog.Example.COM").unwrap(),
            "blog.example.com"
        );
        assert_eq!(normalize_domain("example.com.").unwrap(), "example.com");
        assert_eq!(normalize_domain("localhost").unwrap(), "localhost");
        assert!(normalize_domain("https://example.com")
            .unwrap_err()
            .contains("scheme"));
        assert!(normalize_domain("example.com:8080")
            .unwrap_err()
            .contains("port"));
        assert!(normalize_domain("example.com/x")
            .unwrap_err()
            .contains("path"));
        assert!(normalize_domain("*.example.com")
            .unwrap_err()
            .contains("wildcard"));
        assert!(normalize_domain("bücher.de")
            .unwrap_err()
            .contains("punycode"));
        for bad in [
            "",
            "a..b",
            "-a.com",
            "a-.com",
            "a_b.com",
            "a b.com",
            &format!("{}.com", "x".repeat(64)),
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_names_are_identifiers() {
        assert!(check_env_name("FLASK_APP").is_ok());
        assert!(check_env_name("_x1").is_ok());
        for bad in ["", "1A", "A-B", "A=B", "A B", "A\0"] {
            assert!(check_env_name(bad).is_err(), "{bad:?}");
        }
    }
}
