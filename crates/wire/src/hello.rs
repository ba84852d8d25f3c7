//! HELLO: what a worker says once its app has been imported.

use std::path::PathBuf;

use crate::WireError;

/// What a worker says once its app has been imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The worker's process id, as the worker sees it.
    pub pid: u32,
    /// The Python version, e.g. "3.11.7".
    pub python: String,
    /// How many requests the worker serves at once.
    pub threads: u32,
    /// The static folders the app serves itself (Flask's static folder, its
    /// blueprints', Django's STATIC_ROOT), as the app reported them: not
    /// checked here; whoever mounts them decides which to trust.
    pub static_mounts: Vec<StaticMount>,
}

/// One folder of files an app serves under a URL prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMount {
    /// The URL path prefix, e.g. `/static`, as the app reported it.
    pub url_prefix: String,
    /// The folder, as the app reported it (normally absolute).
    pub dir: PathBuf,
}

impl Hello {
    /// Parses a Hello payload: `pid \0 python version \0 threads`, then any
    /// number of `\0 url prefix \0 directory` pairs (older shims send none).
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        const BAD: fn(&'static str) -> WireError = |reason| WireError::Malformed {
            kind: "hello",
            reason,
        };
        let text = std::str::from_utf8(payload).map_err(|_| BAD("not UTF-8"))?;
        let mut parts = text.split('\0');
        let pid = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or(BAD("bad pid"))?;
        let python = parts.next().ok_or(BAD("no python version"))?.to_owned();
        let threads = parts
            .next()
            .and_then(|t| t.parse().ok())
            .filter(|&t| t >= 1)
            .ok_or(BAD("bad thread count"))?;
        let mut static_mounts = Vec::new();
        while let Some(url_prefix) = parts.next() {
            let dir = parts
                .next()
                .ok_or(BAD("a static mount without a directory"))?;
            static_mounts.push(StaticMount {
                url_prefix: url_prefix.to_owned(),
                dir: PathBuf::from(dir),
            });
        }
        Ok(Hello {
            pid,
            python,
            threads,
            static_mounts,
        })
    }

    /// The payload for this Hello (used by tests and helper workers).
    ///
    /// Panics if a mount's directory is not UTF-8 (tests only build UTF-8 ones).
    pub fn encode(&self) -> Vec<u8> {
        let mut text = format!("{}\0{}\0{}", self.pid, self.python, self.threads);
        for mount in &self.static_mounts {
            let dir = mount.dir.to_str().expect("a UTF-8 directory");
            text.push('\0');
            text.push_str(&mount.url_prefix);
            text.push('\0');
            text.push_str(dir);
        }
        text.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips() {
        let hello = Hello {
            pid: 42,
            python: "3.11.7".into(),
            threads: 4,
            static_mounts: vec![],
        };
        assert_eq!(Hello::parse(&hello.encode()), Ok(hello));
    }

    #[test]
    fn hello_with_static_mounts_round_trips() {
        let hello = Hello {
            pid: 42,
            python: "3.11.7".into(),
            threads: 1,
            static_mounts: vec![
                StaticMount {
                    url_prefix: "/static".into(),
                    dir: "/srv/app/app/static".into(),
                },
                StaticMount {
                    url_prefix: "/admin/static".into(),
                    dir: "/srv/app/app/admin/static".into(),
                },
            ],
        };
        assert_eq!(Hello::parse(&hello.encode()), Ok(hello));
    }

    #[test]
    fn an_older_hello_without_mounts_still_parses() {
        let hello = Hello::parse(b"42\x003.8.10\x002").unwrap();
        assert_eq!((hello.pid, hello.threads), (42, 2));
        assert!(hello.static_mounts.is_empty());
    }

    #[test]
    fn a_static_mount_without_its_directory_is_malformed() {
        assert!(Hello::parse(b"42\x003.11\x001\x00/static").is_err());
        assert!(Hello::parse(b"42\x003.11\x001\x00/static\x00/d\x00/more").is_err());
    }

    #[test]
    fn a_hello_without_threads_is_malformed() {
        assert!(Hello::parse(b"42\x003.11").is_err());
        assert!(Hello::parse(b"x\x003.11\x001").is_err());
        assert!(Hello::parse(b"42\x003.11\x000").is_err());
        assert!(Hello::parse(&[0xff, 0xfe]).is_err());
    }
}
