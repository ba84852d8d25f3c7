//! The daemon's own settings, `<root>/capstan.toml` on a server: where it
//! listens and how it gets certificates. Read with the same checks and
//! file:line errors as an app's file; flags override each value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;
use crate::names::check_email;
use crate::toml_tree::{Doc, Field};

const KEYS: &[&str] = &["listen", "tls_listen", "acme", "logs"];
const ACME_KEYS: &[&str] = &["email", "directory", "ca_root"];
const LOGS_KEYS: &[&str] = &["max_size", "keep"];

/// The smallest `[logs] max_size`: a file must hold at least a few lines.
const MIN_LOG_SIZE: u64 = 1000;

/// What `<root>/capstan.toml` says; every value is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonSettings {
    /// `listen = "0.0.0.0:80"`: plain HTTP for every app.
    pub listen: Option<SocketAddr>,
    /// `tls_listen = "0.0.0.0:443"`: HTTPS for every app.
    pub tls_listen: Option<SocketAddr>,
    /// `[acme] email`: the account's contact.
    pub acme_email: Option<String>,
    /// `[acme] directory`: the ACME server's directory URL.
    pub acme_directory: Option<String>,
    /// `[acme] ca_root`: a CA certificate to trust for that server (relative
    /// paths are read from the root).
    pub acme_ca_root: Option<PathBuf>,
    /// `[logs] max_size = "10MB"`: an app's log file is rotated past this.
    pub logs_max_size: Option<u64>,
    /// `[logs] keep = 5`: how many rotated files of each stay.
    pub logs_keep: Option<usize>,
}

/// Reads `<root>/capstan.toml`; a missing file is all defaults.
pub fn load_daemon_settings(root: &Path) -> Result<DaemonSettings, ConfigError> {
    let path = root.join("capstan.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DaemonSettings::default()),
        Err(source) => return Err(ConfigError::Read { file: path, source }),
    };
    let doc = Doc {
        file: &path,
        text: &text,
    };
    let item = doc.parse()?;
    let top = doc.root(&item);
    top.check_keys(KEYS)?;
    let mut settings = DaemonSettings::default();
    for f in top.fields() {
        match f.key {
            "listen" => settings.listen = Some(address(&f)?),
            "tls_listen" => settings.tls_listen = Some(address(&f)?),
            "acme" => {
                let acme = f.table()?;
                acme.check_keys(ACME_KEYS)?;
                for f in acme.fields() {
                    match f.key {
                        "email" => {
                            settings.acme_email =
                                Some(check_email(f.nonempty_str()?).map_err(|e| f.bad(e))?)
                        }
                        "directory" => {
                            let url = f.nonempty_str()?;
                            if !url.starts_with("https://") {
                                return Err(f.bad(format_args!(
                                    "{url:?} is not an https:// URL; ACME directories are \
                                     served over HTTPS"
                                )));
                            }
                            settings.acme_directory = Some(url.to_owned());
                        }
                        "ca_root" => {
                            let path = root.join(f.nonempty_str()?);
                            if !path.is_file() {
                                return Err(f.bad(format_args!(
                                    "{} is not a file; give the PEM file of the ACME \
                                     server's CA (relative paths are read from {})",
                                    path.display(),
                                    root.display()
                                )));
                            }
                            settings.acme_ca_root = Some(path);
                        }
                        _ => unreachable!("check_keys let through {}", f.key),
                    }
                }
            }
            "logs" => {
                let logs = f.table()?;
                logs.check_keys(LOGS_KEYS)?;
                for f in logs.fields() {
                    match f.key {
                        "max_size" => {
                            let size = f.size()?;
                            if size < MIN_LOG_SIZE {
                                return Err(f.bad(format_args!(
                                    "{size} bytes is too small for a log file; give at \
                                     least \"1KB\" (e.g. \"10MB\")"
                                )));
                            }
                            settings.logs_max_size = Some(size);
                        }
                        "keep" => settings.logs_keep = Some(f.int_in(0..=1000)? as usize),
                        _ => unreachable!("check_keys let through {}", f.key),
                    }
                }
            }
            _ => unreachable!("check_keys let through {}", f.key),
        }
    }
    Ok(settings)
}

fn address(f: &Field<'_>) -> Result<SocketAddr, ConfigError> {
    let text = f.nonempty_str()?;
    text.parse().map_err(|_| {
        f.bad(format_args!(
            "{text:?} is not an address and port; write it like \"0.0.0.0:80\" or \"[::]:443\""
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<DaemonSettings, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("capstan.toml"), text).unwrap();
        load_daemon_settings(dir.path()).map_err(|e| {
            e.to_string()
                .replace(&dir.path().display().to_string(), "<root>")
        })
    }

    #[test]
    fn a_missing_settings_file_is_all_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load_daemon_settings(dir.path()).unwrap(),
            DaemonSettings::default()
        );
    }

    #[test]
    fn settings_are_read_with_their_acme_table() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pebble.pem"), "a CA").unwrap();
        std::fs::write(
            dir.path().join("capstan.toml"),
            "listen = \"127.0.0.1:8080\"\ntls_listen = \"[::]:443\"\n[acme]\n\
             email = \"ops@example.com\"\ndirectory = \"https://127.0.0.1:14000/dir\"\n\
             ca_root = \"pebble.pem\"\n",
        )
        .unwrap();
        let s = load_daemon_settings(dir.path()).unwrap();
        assert_eq!(s.listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(s.tls_listen, Some("[::]:443".parse().unwrap()));
        assert_eq!(s.acme_email.as_deref(), Some("ops@example.com"));
        assert!(s.acme_ca_root.unwrap().ends_with("pebble.pem"));
    }

    #[test]
    fn logs_rotation_is_read_and_checked() {
        let s = load("[logs]\nmax_size = \"2KB\"\nkeep = 2\n").unwrap();
        assert_eq!((s.logs_max_size, s.logs_keep), (Some(2000), Some(2)));
        let err = load("[logs]\nmax_size = \"12\"\n").unwrap_err();
        assert!(
            err.starts_with("<root>/capstan.toml:2: bad value for `max_size`"),
            "{err}"
        );
        assert!(err.contains("too small"), "{err}");
        let err = load("[logs]\nkeep = -1\n").unwrap_err();
        assert!(err.starts_with("<root>/capstan.toml:2:"), "{err}");
        let err = load("[logs]\nsize = 3\n").unwrap_err();
        assert!(err.contains("expected one of: max_size, keep"), "{err}");
    }

    #[test]
    fn bad_settings_name_the_file_line_and_key() {
        assert_eq!(
            load("listen = \"127.0.0.1:8080\"\ntls_listen = \"localhost\"\n").unwrap_err(),
            "<root>/capstan.toml:2: bad value for `tls_listen`: \"localhost\" is not an \
             address and port; write it like \"0.0.0.0:80\" or \"[::]:443\""
        );
        assert_eq!(
            load("listn = \"x\"\n").unwrap_err(),
            "<root>/capstan.toml:1: unknown key `listn` in <root>/capstan.toml; expected one of: \
             listen, tls_listen, acme, logs"
        );
        assert!(load("[acme]\ndirectory = \"http://x\"\n")
            .unwrap_err()
            .starts_with("<root>/capstan.toml:2: bad value for `directory`"));
        assert_eq!(
            load("[acme]\nemail = \"ops@example.com\"\nca_root = \"ca.pem\"\n").unwrap_err(),
            "<root>/capstan.toml:3: bad value for `ca_root`: <root>/ca.pem is not a file; give \
             the PEM file of the ACME server's CA (relative paths are read from <root>)"
        );
    }
}
