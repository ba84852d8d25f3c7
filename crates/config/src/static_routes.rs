//! Static routes: URL prefixes the edge serves straight from a directory (`[static]`,
//! or a `static/` directory).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use crate::app::{StaticRoute, DEFAULT_STATIC_MAX_AGE};
use crate::error::ConfigError;
use crate::toml_tree::{Table, Value};

const STATIC_TABLE_KEYS: &[&str] = &["dir", "max_age"];

/// Checks a URL prefix and drops a trailing `/` (`"/static/"` becomes `"/static"`).
pub(crate) fn normalize_url_prefix(prefix: &str) -> Result<String, String> {
    let bad = |why: &str| format!("{prefix:?} is not a URL prefix: {why}");
    if !prefix.starts_with('/') {
        return Err(bad("it must start with '/', like \"/static\""));
    }
    // SECURITY: the edge matches request paths against these prefixes; characters
    // that are escaped or stripped in request paths would make a route unreachable
    // or ambiguous, and dot segments would make it mean something else than it says.
    if let Some(c) = prefix
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%' | '\\'))
    {
        return Err(bad(&format!("it contains {c:?}")));
    }
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok("/".to_owned());
    }
    if trimmed[1..]
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(bad("it has an empty, '.' or '..' segment"));
    }
    Ok(trimmed.to_owned())
}

/// Resolves a directory named in a settings file against the (canonical) app root;
/// it must exist and be inside the root.
pub(crate) fn resolve_dir_inside(root: &Path, dir: &str) -> Result<PathBuf, String> {
    let real = match root.join(dir).canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!(
                "directory {dir:?} does not exist in the app directory; create it or fix the path"
            ))
        }
        Err(e) => return Err(format!("cannot open directory {dir:?}: {e}")),
    };
    // SECURITY: everything under a static dir is served to anyone who asks; a path
    // (or symlink) leading out of the app could publish the server's files.
    if !real.starts_with(root) {
        return Err(format!(
            "directory {dir:?} is outside the app directory; keep it inside the app"
        ));
    }
    if !real.is_dir() {
        return Err(format!("{dir:?} is not a directory"));
    }
    Ok(real)
}

/// The route `/static` for a `static/` directory, used when the app file has no `[static]`.
pub(crate) fn default_static_route(root: &Path) -> Option<StaticRoute> {
    let dir = resolve_dir_inside(root, "static").ok()?;
    Some(StaticRoute {
        url_prefix: "/static".to_owned(),
        dir,
        max_age: DEFAULT_STATIC_MAX_AGE,
    })
}

/// Longest prefix first, so the first matching route is the most specific one.
pub(crate) fn sort_routes(routes: &mut [StaticRoute]) {
    routes.sort_by(|a, b| {
        b.url_prefix
            .len()
            .cmp(&a.url_prefix.len())
            .then_with(|| a.url_prefix.cmp(&b.url_prefix))
    });
}

/// The one bare key `[static]` has; every other key is a URL prefix.
const KEEP_PREVIOUS: &str = "keep_previous";

/// Reads `[static]`: `"/prefix" = "dir"` or `"/prefix" = { dir = "dir", max_age = "1h" }`,
/// and the option `keep_previous = "1h"` (a key that does not start with `/`).
pub(crate) fn read_static(
    root: &Path,
    table: &Table<'_>,
) -> Result<(Vec<StaticRoute>, Option<Duration>), ConfigError> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut routes = Vec::new();
    let mut keep_previous = None;
    for f in table.fields() {
        if f.key == KEEP_PREVIOUS {
            keep_previous = Some(f.duration()?);
            continue;
        }
        let url_prefix = normalize_url_prefix(f.key).map_err(|e| f.bad(e))?;
        if let Some(&first_line) = seen.get(&url_prefix) {
            return Err(ConfigError::Duplicate {
                file: table.file().to_path_buf(),
                line: f.key_line,
                key: url_prefix,
                first_line,
            });
        }
        seen.insert(url_prefix.clone(), f.key_line);
        let (dir_field, max_age) = match &f.item.value {
            Value::String(_) => (f.clone(), DEFAULT_STATIC_MAX_AGE),
            Value::Table(_) => {
                let t = f.table()?;
                t.check_keys(STATIC_TABLE_KEYS)?;
                let dir = t.get("dir").ok_or_else(|| t.missing("dir"))?;
                let max_age = match t.get("max_age") {
                    Some(m) => m.duration()?,
                    None => DEFAULT_STATIC_MAX_AGE,
                };
                (dir, max_age)
            }
            other => {
                return Err(f.bad(format_args!(
                    "expected a directory like \"app/static\" or a table like \
                     {{ dir = \"media\", max_age = \"1h\" }}, found {}",
                    other.kind()
                )))
            }
        };
        let dir =
            resolve_dir_inside(root, dir_field.nonempty_str()?).map_err(|e| dir_field.bad(e))?;
        routes.push(StaticRoute {
            url_prefix,
            dir,
            max_age,
        });
    }
    sort_routes(&mut routes);
    Ok((routes, keep_previous))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn prefixes_lose_their_trailing_slash() {
        assert_eq!(normalize_url_prefix("/static/").unwrap(), "/static");
        assert_eq!(normalize_url_prefix("/a/b").unwrap(), "/a/b");
        assert_eq!(normalize_url_prefix("/").unwrap(), "/");
        assert_eq!(normalize_url_prefix("//").unwrap(), "/");
    }

    #[test]
    fn bad_prefixes_are_rejected() {
        for bad in [
            "static", "", "/a//b", "/a/../b", "/./x", "/a b", "/a?x", "/%2e", "/a\\b",
        ] {
            assert!(normalize_url_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dirs_must_exist_inside_the_app() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("app/static")).unwrap();
        fs::write(root.join("file"), "").unwrap();
        assert_eq!(
            resolve_dir_inside(&root, "app/static").unwrap(),
            root.join("app/static")
        );
        assert!(resolve_dir_inside(&root, "nope")
            .unwrap_err()
            .contains("does not exist"));
        assert!(resolve_dir_inside(&root, "file")
            .unwrap_err()
            .contains("not a directory"));
        assert!(resolve_dir_inside(&root, "..")
            .unwrap_err()
            .contains("outside"));
        assert!(resolve_dir_inside(&root, "/")
            .unwrap_err()
            .contains("outside"));
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        assert!(resolve_dir_inside(&root, "escape")
            .unwrap_err()
            .contains("outside"));
    }

    #[test]
    fn routes_sort_longest_first() {
        let route = |p: &str| StaticRoute {
            url_prefix: p.into(),
            dir: PathBuf::from("/x"),
            max_age: DEFAULT_STATIC_MAX_AGE,
        };
        let mut routes = vec![route("/"), route("/static"), route("/static/img")];
        sort_routes(&mut routes);
        let order: Vec<_> = routes.iter().map(|r| r.url_prefix.as_str()).collect();
        assert_eq!(order, ["/static/img", "/static", "/"]);
    }
}
