//! Finding what the app files leave out: the WSGI app in the usual Python files, and
//! where the dependencies are listed.

use std::path::{Path, PathBuf};

use crate::app::Requirements;
use crate::error::ConfigError;
use crate::files::{read_source_lossy, resolve_inside};
use crate::wsgi::{is_identifier, WsgiTarget};

/// Files looked at, in order, for a module-level `application` or `app`.
pub(crate) const CANDIDATE_FILES: &[&str] = &["wsgi.py", "app.py", "main.py"];

/// A WSGI app found by looking at the code.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub target: WsgiTarget,
    /// The file that defines it, absolute.
    pub file: PathBuf,
}

/// Looks for the WSGI app: `application` (preferred) or `app` defined at module level
/// in wsgi.py, app.py or main.py; then Django's `<package>/wsgi.py` when there is a
/// manage.py.
pub(crate) fn find_wsgi(root: &Path) -> Result<Option<Found>, ConfigError> {
    for file in CANDIDATE_FILES {
        let Some(source) = read_source_lossy(root, file)? else {
            continue;
        };
        let module = file.trim_end_matches(".py");
        if let Some(callable) = ["application", "app"]
            .into_iter()
            .find(|name| defines(&source, name))
        {
            return Ok(Some(found(root, module, callable, file)));
        }
    }
    find_django(root)
}

fn found(root: &Path, module: &str, callable: &str, file: &str) -> Found {
    Found {
        target: WsgiTarget {
            module: module.to_owned(),
            callable: callable.to_owned(),
            factory: false,
        },
        file: root.join(file),
    }
}

/// Django: `<pkg>/wsgi.py` defining `application`, next to manage.py. The package
/// named in manage.py's `DJANGO_SETTINGS_MODULE` is tried first, then the others
/// in name order.
fn find_django(root: &Path) -> Result<Option<Found>, ConfigError> {
    let Some(manage) = read_source_lossy(root, "manage.py")? else {
        return Ok(None);
    };
    let mut packages: Vec<String> = Vec::new();
    if let Some(pkg) = settings_package(&manage) {
        packages.push(pkg);
    }
    let mut dirs: Vec<String> = std::fs::read_dir(root)
        .map_err(|source| ConfigError::Read {
            file: PathBuf::from("."),
            source,
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    dirs.sort();
    packages.extend(dirs);
    for pkg in packages {
        // SECURITY: the name becomes a Python module path; only identifiers.
        if !is_identifier(&pkg) {
            continue;
        }
        let file = format!("{pkg}/wsgi.py");
        if let Some(source) = read_source_lossy(root, &file)? {
            if defines(&source, "application") {
                return Ok(Some(found(
                    root,
                    &format!("{pkg}.wsgi"),
                    "application",
                    &file,
                )));
            }
        }
    }
    Ok(None)
}

/// `mysite` from `os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")`.
fn settings_package(manage_py: &str) -> Option<String> {
    let line = manage_py
        .lines()
        .find(|l| l.contains("DJANGO_SETTINGS_MODULE"))?;
    let after = line.split("DJANGO_SETTINGS_MODULE").nth(1)?;
    let value = after.split(['"', '\'']).find(|part| {
        part.contains('.')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })?;
    Some(value.split('.').next()?.to_owned())
}

/// Whether `source` binds `name` at module level (column 0): `name = ...`,
/// `name: T = ...`, `def name(`, or `from x import name` / `from x import y as name`.
///
/// A line scan, not a parser: it is a guess that the user can always override with
/// `[web] wsgi`, and it must never run the code.
pub(crate) fn defines(source: &str, name: &str) -> bool {
    source.lines().any(|line| {
        if let Some(rest) = line.strip_prefix("def ") {
            return rest
                .trim_start()
                .strip_prefix(name)
                .is_some_and(|r| r.trim_start().starts_with('('));
        }
        if line.starts_with("from ") {
            return imports(line, name);
        }
        let Some(rest) = line.strip_prefix(name) else {
            return false;
        };
        let rest = rest.trim_start();
        if let Some(value) = rest.strip_prefix('=') {
            return !value.starts_with('=');
        }
        // Annotated: `app: Flask = Flask(__name__)`.
        rest.strip_prefix(':').is_some_and(|annotated| {
            annotated
                .split_once('=')
                .is_some_and(|(_, value)| !value.starts_with('='))
        })
    })
}

/// Whether an import line binds `name`: `from x import a, name`, `... import y as name`.
fn imports(line: &str, name: &str) -> bool {
    let line = line.split('#').next().unwrap_or("");
    let Some((_, names)) = line.split_once("import ") else {
        return false;
    };
    names
        .trim_matches(|c: char| c == '(' || c == ')' || c.is_whitespace())
        .split(',')
        .any(|item| {
            let words: Vec<&str> = item.split_whitespace().collect();
            match words.as_slice() {
                [single] => *single == name,
                [_, "as", alias] => *alias == name,
                _ => false,
            }
        })
}

/// `requirements.txt`, else `[project] dependencies` of pyproject.toml, else nothing.
pub(crate) fn requirements(
    root: &Path,
    pyproject_dependencies: Option<Vec<String>>,
) -> Result<Requirements, ConfigError> {
    let txt = resolve_inside(root, "requirements.txt").map_err(|source| ConfigError::Read {
        file: PathBuf::from("requirements.txt"),
        source,
    })?;
    if let Some(path) = txt {
        return Ok(Requirements::Txt(path));
    }
    Ok(match pyproject_dependencies {
        Some(dependencies) => Requirements::Pyproject {
            path: root.join("pyproject.toml"),
            dependencies,
        },
        None => Requirements::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        (dir, root)
    }

    #[test]
    fn assignments_defs_and_imports_count() {
        assert!(defines(
            "from flask import Flask\napp = Flask(__name__)\n",
            "app"
        ));
        assert!(defines("app: Flask = Flask(__name__)\n", "app"));
        assert!(defines("app=make()\n", "app"));
        assert!(defines(
            "def application(environ, start_response):\n    pass\n",
            "application"
        ));
        assert!(defines("from microblog import app\n", "app"));
        assert!(defines(
            "from microblog import create_app, db as database, app  # noqa\n",
            "app"
        ));
        assert!(defines(
            "from x import make as application\n",
            "application"
        ));
    }

    #[test]
    fn lookalikes_do_not_count() {
        assert!(!defines("if x:\n    app = Flask(__name__)\n", "app"));
        assert!(!defines("app == 3\n", "app"));
        assert!(!defines("app.config['X'] = 1\n", "app"));
        assert!(!defines("apple = 1\n", "app"));
        assert!(!defines("app: Flask\n", "app"));
        assert!(!defines("def apps():\n", "app"));
        assert!(!defines("# app = 1\n", "app"));
        assert!(!defines("from app import thing\n", "app"));
        assert!(!defines("import app\n", "app"));
        assert!(!defines("application = 1\n", "app"));
    }

    #[test]
    fn files_are_tried_in_order_and_application_wins() {
        let (_d, root) = root();
        fs::write(root.join("main.py"), "application = 1\n").unwrap();
        fs::write(root.join("app.py"), "app = 1\napplication = 2\n").unwrap();
        let found = find_wsgi(&root).unwrap().unwrap();
        assert_eq!(found.target.to_string(), "app:application");
        assert_eq!(found.file, root.join("app.py"));
        fs::write(root.join("wsgi.py"), "from app import app\n").unwrap();
        assert_eq!(
            find_wsgi(&root).unwrap().unwrap().target.to_string(),
            "wsgi:app"
        );
    }

    #[test]
    fn a_file_without_an_app_is_skipped() {
        let (_d, root) = root();
        fs::write(root.join("wsgi.py"), "print('hi')\n").unwrap();
        fs::write(root.join("main.py"), "app = 1\n").unwrap();
        assert_eq!(
            find_wsgi(&root).unwrap().unwrap().target.to_string(),
            "main:app"
        );
    }

    #[test]
    fn django_project_is_found_through_manage_py() {
        let (_d, root) = root();
        fs::write(
            root.join("manage.py"),
            "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n",
        )
        .unwrap();
        for pkg in ["aaa", "mysite"] {
            fs::create_dir(root.join(pkg)).unwrap();
            fs::write(
                root.join(pkg).join("wsgi.py"),
                "application = get_wsgi_application()\n",
            )
            .unwrap();
        }
        let found = find_wsgi(&root).unwrap().unwrap();
        assert_eq!(found.target.to_string(), "mysite.wsgi:application");
        assert_eq!(found.file, root.join("mysite/wsgi.py"));
    }

    #[test]
    fn package_wsgi_without_manage_py_is_not_django() {
        let (_d, root) = root();
        fs::create_dir(root.join("mysite")).unwrap();
        fs::write(root.join("mysite/wsgi.py"), "application = 1\n").unwrap();
        assert_eq!(find_wsgi(&root).unwrap(), None);
    }

    #[test]
    fn requirements_txt_beats_pyproject() {
        let (_d, root) = root();
        let deps = Some(vec!["flask>=3".to_owned()]);
        assert_eq!(
            requirements(&root, deps.clone()).unwrap(),
            Requirements::Pyproject {
                path: root.join("pyproject.toml"),
                dependencies: vec!["flask>=3".into()]
            }
        );
        assert_eq!(requirements(&root, None).unwrap(), Requirements::None);
        fs::write(root.join("requirements.txt"), "flask\n").unwrap();
        assert_eq!(
            requirements(&root, deps).unwrap(),
            Requirements::Txt(root.join("requirements.txt"))
        );
    }
}
