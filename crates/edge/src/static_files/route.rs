//! The route table: which URL prefixes are served from which directories.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use super::cache::{Cache, Limits};

/// One `location <url_prefix> { alias <dir>; expires <max_age>; }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticRoute {
    /// The URL path prefix, e.g. `/static`. A trailing `/` is ignored; `/` serves every path.
    pub url_prefix: String,
    /// The directory whose files are served under the prefix.
    pub dir: PathBuf,
    /// How long clients and proxies may cache the files (`Cache-Control: public, max-age`).
    pub max_age: Duration,
}

/// Why the static routes could not be set up. Each names the route and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    /// The URL prefix is not a plain absolute path.
    #[error(
        "static route {prefix:?}: the URL prefix must start with '/' and contain no '%', '\\', \
         '?', '#', NUL or '.'/'..' segment; write it as clients request it, e.g. \"/static\""
    )]
    InvalidPrefix {
        /// The prefix as configured.
        prefix: String,
    },
    /// Two routes have the same prefix (after dropping a trailing `/`).
    #[error(
        "static route {prefix:?} is declared twice; each URL prefix can serve only one directory"
    )]
    DuplicatePrefix {
        /// The prefix as configured (second occurrence).
        prefix: String,
    },
    /// The directory could not be canonicalized: it is missing or unreadable.
    #[error(
        "static route {prefix:?}: cannot open directory {}; check that it exists and that \
         capstan's user may read it",
        dir.display()
    )]
    Dir {
        /// The prefix as configured.
        prefix: String,
        /// The directory as configured.
        dir: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The path exists but is a file, not a directory.
    #[error(
        "static route {prefix:?}: {} is not a directory; point the route at the folder that \
         holds the files",
        dir.display()
    )]
    NotADirectory {
        /// The prefix as configured.
        prefix: String,
        /// The directory as configured.
        dir: PathBuf,
    },
}

/// Serves files for a set of [`StaticRoute`]s, with a small in-memory cache.
pub struct StaticFiles {
    /// Longest prefix first, so the first match is the most specific.
    pub(super) routes: Vec<Route>,
    pub(super) cache: Cache,
    /// The previous release's files, for `[static] keep_previous`; set once.
    pub(super) previous: std::sync::OnceLock<super::previous::Previous>,
}

/// A validated [`StaticRoute`].
#[derive(Debug)]
pub(super) struct Route {
    /// No trailing `/`; the empty string for the route `/`.
    pub(super) prefix: Box<str>,
    /// Canonical: absolute, symlinks resolved. Every served file must be inside it.
    pub(super) root: Arc<Path>,
    /// `public, max-age=<secs>`, built once.
    pub(super) cache_control: HeaderValue,
    /// What the route was made from, for a later generation's `keep_previous`.
    pub(super) max_age: Duration,
}

impl fmt::Debug for StaticFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticFiles")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl StaticFiles {
    /// Canonicalizes each dir once; an error names the route and the dir.
    pub fn new(routes: Vec<StaticRoute>) -> Result<Self, StaticError> {
        Self::with_limits(routes, Limits::default())
    }

    pub(super) fn with_limits(
        routes: Vec<StaticRoute>,
        limits: Limits,
    ) -> Result<Self, StaticError> {
        let mut table: Vec<Route> = Vec::with_capacity(routes.len());
        for route in routes {
            let prefix =
                normalize_prefix(&route.url_prefix).ok_or_else(|| StaticError::InvalidPrefix {
                    prefix: route.url_prefix.clone(),
                })?;
            if table.iter().any(|r| *r.prefix == *prefix) {
                return Err(StaticError::DuplicatePrefix {
                    prefix: route.url_prefix,
                });
            }
            let root = std::fs::canonicalize(&route.dir).map_err(|source| StaticError::Dir {
                prefix: route.url_prefix.clone(),
                dir: route.dir.clone(),
                source,
            })?;
            if !root.is_dir() {
                return Err(StaticError::NotADirectory {
                    prefix: route.url_prefix,
                    dir: route.dir,
                });
            }
            let cache_control =
                HeaderValue::try_from(format!("public, max-age={}", route.max_age.as_secs()))
                    .expect("digits and ASCII are a valid header value");
            table.push(Route {
                prefix: prefix.into(),
                root: root.into(),
                cache_control,
                max_age: route.max_age,
            });
        }
        table.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let cache = Cache::new(table.len(), limits);
        Ok(StaticFiles {
            routes: table,
            cache,
            previous: std::sync::OnceLock::new(),
        })
    }

    /// The route whose prefix matches this path (longest prefix, matching only at a '/' boundary:
    /// "/static" matches "/static" and "/static/x", not "/staticky"), or None: the request is not ours.
    pub fn matches(&self, path: &str) -> bool {
        self.route_for(path).is_some()
    }

    /// The index (into `routes`, also the cache's route number) and route serving `path`.
    pub(super) fn route_for(&self, path: &str) -> Option<(usize, &Route)> {
        // SECURITY: matched against the raw path. A client spelling the prefix with
        // escapes (`/st%61tic/x`) does not match and goes to the app, which sees the
        // same raw path; the prefix can never be decoded into existence.
        self.routes
            .iter()
            .enumerate()
            .find(|(_, route)| prefix_matches(&route.prefix, path))
    }
}

/// `prefix` (normalized) covers `path` when it is followed by nothing or by a `/`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Drops a trailing `/`; `None` when the prefix is not a plain absolute path.
fn normalize_prefix(prefix: &str) -> Option<&str> {
    if !prefix.starts_with('/') {
        return None;
    }
    // The prefix is compared with the raw (still percent-encoded) request path, so it
    // must be spelled the way it appears on the wire, without anything that a
    // client could spell differently.
    if prefix.contains(['%', '\\', '?', '#', '\0']) {
        return None;
    }
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    let has_bad_segment = trimmed
        .split('/')
        .skip(1)
        .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    (!has_bad_segment).then_some(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_only_at_a_slash_boundary() {
        assert!(prefix_matches("/static", "/static"));
        assert!(prefix_matches("/static", "/static/"));
        assert!(prefix_matches("/static", "/static/app.css"));
        assert!(!prefix_matches("/static", "/staticky"));
        assert!(!prefix_matches("/static", "/stat"));
    }

    #[test]
    fn the_root_prefix_matches_every_path() {
        assert!(prefix_matches("", "/"));
        assert!(prefix_matches("", "/anything/at/all"));
    }

    #[test]
    fn a_trailing_slash_in_the_prefix_is_dropped() {
        assert_eq!(normalize_prefix("/static/"), Some("/static"));
        assert_eq!(normalize_prefix("/static"), Some("/static"));
        assert_eq!(normalize_prefix("/"), Some(""));
        assert_eq!(normalize_prefix("/a/b/"), Some("/a/b"));
    }

    #[test]
    fn prefixes_that_are_not_plain_paths_are_refused() {
        for bad in [
            "static",
            "",
            "/st%61tic",
            "/a\\b",
            "/a?b",
            "/a#b",
            "/a/../b",
            "/a/./b",
            "//a",
            "/a//",
        ] {
            assert_eq!(normalize_prefix(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn new_names_the_route_and_dir_when_the_dir_is_missing() {
        let err = StaticFiles::new(vec![StaticRoute {
            url_prefix: "/static".into(),
            dir: "/definitely/not/here".into(),
            max_age: Duration::from_secs(60),
        }])
        .expect_err("a missing dir is an error");
        let message = err.to_string();
        assert!(message.contains("\"/static\""), "{message}");
        assert!(message.contains("/definitely/not/here"), "{message}");
    }

    #[test]
    fn new_refuses_a_file_as_the_dir() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = StaticFiles::new(vec![StaticRoute {
            url_prefix: "/static".into(),
            dir: file.path().into(),
            max_age: Duration::ZERO,
        }])
        .expect_err("a file is not a dir");
        assert!(matches!(err, StaticError::NotADirectory { .. }), "{err}");
    }

    #[test]
    fn new_refuses_the_same_prefix_twice() {
        let dir = tempfile::tempdir().unwrap();
        let route = |prefix: &str| StaticRoute {
            url_prefix: prefix.into(),
            dir: dir.path().into(),
            max_age: Duration::ZERO,
        };
        let err =
            StaticFiles::new(vec![route("/static"), route("/static/")]).expect_err("duplicate");
        assert!(matches!(err, StaticError::DuplicatePrefix { .. }), "{err}");
    }
}
