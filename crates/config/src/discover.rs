//! Finding what the app files leave out: the WSGI app (named by `FLASK_APP` or
//! `DJANGO_SETTINGS_MODULE`, or found in the usual Python files), and where the
//! dependencies are listed.

use std::path::{Path, PathBuf};

use crate::app::Requirements;
use crate::error::ConfigError;
use crate::files::{read_source_lossy, resolve_inside};
use crate::flask_app;
use crate::wsgi::{is_identifier, WsgiTarget};

/// Files looked at, in order, for a module-level `application` or `app`.
pub(crate) const CANDIDATE_FILES: &[&str] = &["wsgi.py", "app.py", "main.py"];

/// ASGI frameworks: (class, the package it is imported from).
const ASGI_APPS: &[(&str, &str)] = &[
    ("FastAPI", "fastapi"),
    ("Starlette", "starlette"),
    ("Quart", "quart"),
    ("Litestar", "litestar"),
];

/// A WSGI app found by looking at the code.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub target: WsgiTarget,
    /// The file that defines it, absolute.
    pub file: PathBuf,
    /// Where the workers must start for the module to import, when not the app
    /// directory (absolute).
    pub workdir: Option<PathBuf>,
    /// How it was found, for a note, when the file alone does not say it.
    pub how: Option<String>,
}

/// An environment variable that tells where the app is, and where it was set.
#[derive(Debug, Clone)]
pub(crate) struct Setting {
    pub value: String,
    /// The file, relative to the app directory.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
}

/// What the app's environment says about where the app is.
#[derive(Debug, Default)]
pub(crate) struct Hints {
    /// `FLASK_APP`, from `[env]`, `.env` or `.flaskenv`.
    pub flask_app: Option<Setting>,
    /// `DJANGO_SETTINGS_MODULE`, from `[env]` or `.env`.
    pub django_settings: Option<Setting>,
}

/// Looks for the WSGI app: the one `FLASK_APP` names; else `application`
/// (preferred) or `app` defined at module level in wsgi.py, app.py or main.py; then
/// Django's `<package>/wsgi.py` next to a manage.py (or one folder down, as
/// `django-admin startproject mysite` makes it).
pub(crate) fn find_wsgi(root: &Path, hints: &Hints) -> Result<Option<Found>, ConfigError> {
    if let Some(setting) = &hints.flask_app {
        return flask_app::find(root, setting).map(Some);
    }
    for file in CANDIDATE_FILES {
        let Some(source) = read_source_lossy(root, file)? else {
            continue;
        };
        let module = file.trim_end_matches(".py");
        check_not_asgi(&source, module, file)?;
        if let Some(callable) = ["application", "app"]
            .into_iter()
            .find(|name| defines(&source, name))
        {
            return Ok(Some(found(root, module, callable, file)));
        }
    }
    find_django(root, hints.django_settings.as_ref())
}

fn found(root: &Path, module: &str, callable: &str, file: &str) -> Found {
    Found {
        target: WsgiTarget::attribute(module, callable),
        file: root.join(file),
        workdir: None,
        how: None,
    }
}

/// An app of an ASGI framework is refused with what to write instead, rather
/// than served by workers that would answer every request with an error.
fn check_not_asgi(source: &str, module: &str, file: &str) -> Result<(), ConfigError> {
    for (class, package) in ASGI_APPS {
        let imported = source.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with(&format!("from {package}")) || l.starts_with(&format!("import {package}"))
        });
        if !imported {
            continue;
        }
        if let Some((name, line)) = instances(source, class).into_iter().next() {
            return Err(ConfigError::AsgiApp {
                file: PathBuf::from(file),
                line,
                framework: (*class).to_owned(),
                target: format!("{module}:{name}"),
            });
        }
    }
    Ok(())
}

/// Module-level `name = Class(...)` (or `pkg.Class(...)`, or annotated), as
/// `(name, line)`.
pub(crate) fn instances<'a>(source: &'a str, class: &str) -> Vec<(&'a str, usize)> {
    let mut out = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let Some((left, value)) = line.split_once('=') else {
            continue;
        };
        let name = left.split(':').next().unwrap_or("").trim_end();
        if !is_identifier(name) || line.starts_with(char::is_whitespace) {
            continue;
        }
        let callee = value
            .trim_start()
            .split('(')
            .next()
            .unwrap_or("")
            .trim_end();
        let called = value.trim_start().len() > callee.len();
        let last = callee.rsplit('.').next().unwrap_or("");
        if called && last == class {
            out.push((name, i + 1));
        }
    }
    out
}

/// Django: `<pkg>/wsgi.py` defining `application`, next to manage.py, or in the
/// one folder that holds a manage.py. The package of `DJANGO_SETTINGS_MODULE` in
/// the app's environment is tried first (it serves even without a manage.py),
/// then the one named in manage.py, then the others in name order.
fn find_django(root: &Path, settings: Option<&Setting>) -> Result<Option<Found>, ConfigError> {
    let from_env = settings.and_then(|s| {
        let pkg = settings_package(&s.value)?;
        Some((pkg, s))
    });
    if let Some((pkg, setting)) = &from_env {
        if let Some(mut found) = django_package(root, "", pkg)? {
            found.how = Some(format!(
                "serving {}, the package of DJANGO_SETTINGS_MODULE in {}",
                found.target,
                setting.file.display()
            ));
            return Ok(Some(found));
        }
    }
    if let Some(found) = django_in(root, "")? {
        return Ok(Some(found));
    }
    // `django-admin startproject mysite` (no trailing dot): mysite/manage.py.
    for dir in subdirs(root, "")? {
        if read_source_lossy(root, &format!("{dir}/manage.py"))?.is_none() {
            continue;
        }
        let pkg_first = from_env.as_ref().map(|(pkg, _)| pkg.as_str());
        let found = match pkg_first {
            Some(pkg) => django_package(root, &dir, pkg)?,
            None => None,
        };
        let found = match found {
            Some(found) => Some(found),
            None => django_in(root, &dir)?,
        };
        if let Some(mut found) = found {
            found.workdir = Some(root.join(&dir));
            found.how = Some(format!(
                "serving {} from {dir}/, where manage.py is: the workers start in {dir}/ so \
                 that {} imports",
                found.target, found.target.module
            ));
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Django's wsgi.py next to `<dir>/manage.py` (`dir` relative, "" for the root).
fn django_in(root: &Path, dir: &str) -> Result<Option<Found>, ConfigError> {
    let Some(manage) = read_source_lossy(root, &join(dir, "manage.py"))? else {
        return Ok(None);
    };
    let mut packages: Vec<String> = Vec::new();
    if let Some(pkg) = manage_py_settings(&manage).and_then(|v| settings_package(&v)) {
        packages.push(pkg);
    }
    packages.extend(subdirs(root, dir)?);
    for pkg in packages {
        if let Some(found) = django_package(root, dir, &pkg)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// `<dir>/<pkg>/wsgi.py` if it defines `application`.
fn django_package(root: &Path, dir: &str, pkg: &str) -> Result<Option<Found>, ConfigError> {
    // SECURITY: the name becomes a Python module path; only identifiers.
    if !is_identifier(pkg) {
        return Ok(None);
    }
    let file = join(dir, &format!("{pkg}/wsgi.py"));
    match read_source_lossy(root, &file)? {
        Some(source) if defines(&source, "application") => Ok(Some(found(
            root,
            &format!("{pkg}.wsgi"),
            "application",
            &file,
        ))),
        _ => Ok(None),
    }
}

fn join(dir: &str, file: &str) -> String {
    if dir.is_empty() {
        file.to_owned()
    } else {
        format!("{dir}/{file}")
    }
}

/// The folders of `<root>/<dir>` whose names are Python identifiers, sorted.
fn subdirs(root: &Path, dir: &str) -> Result<Vec<String>, ConfigError> {
    let read = |source| ConfigError::Read {
        file: PathBuf::from(if dir.is_empty() { "." } else { dir }),
        source,
    };
    let mut dirs: Vec<String> = std::fs::read_dir(root.join(dir))
        .map_err(read)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| is_identifier(name))
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// `mysite.settings` from `os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")`.
fn manage_py_settings(manage_py: &str) -> Option<String> {
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
    Some(value.to_owned())
}

/// `mysite` from `mysite.settings` (or `mysite.settings.production`).
fn settings_package(module: &str) -> Option<String> {
    let (pkg, _) = module.trim().split_once('.')?;
    is_identifier(pkg).then(|| pkg.to_owned())
}

/// How a module binds a name at module level.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    /// `def name(`.
    Def,
    /// `from module import original [as name]`.
    Import { module: String, original: String },
    /// `name = ...` or `name: T = ...`.
    Assign,
}

/// Whether `source` binds `name` at module level (column 0): `name = ...`,
/// `name: T = ...`, `def name(`, or `from x import name` / `from x import y as name`.
///
/// A line scan, not a parser: it is a guess that the user can always override with
/// `[web] wsgi`, and it must never run the code.
pub(crate) fn defines(source: &str, name: &str) -> bool {
    binding(source, name).is_some()
}

/// How `source` binds `name` at module level, the last binding winning.
pub(crate) fn binding(source: &str, name: &str) -> Option<Binding> {
    source.lines().rev().find_map(|line| binds(line, name))
}

fn binds(line: &str, name: &str) -> Option<Binding> {
    if let Some(rest) = line.strip_prefix("def ") {
        return rest
            .trim_start()
            .strip_prefix(name)
            .is_some_and(|r| r.trim_start().starts_with('('))
            .then_some(Binding::Def);
    }
    if line.starts_with("from ") {
        return imports(line, name);
    }
    let rest = line.strip_prefix(name)?.trim_start();
    if let Some(value) = rest.strip_prefix('=') {
        return (!value.starts_with('=')).then_some(Binding::Assign);
    }
    // Annotated: `app: Flask = Flask(__name__)`.
    rest.strip_prefix(':')
        .and_then(|annotated| annotated.split_once('='))
        .filter(|(_, value)| !value.starts_with('='))
        .map(|_| Binding::Assign)
}

/// Whether an import line binds `name`: `from x import a, name`, `... import y as name`.
fn imports(line: &str, name: &str) -> Option<Binding> {
    let line = line.split('#').next().unwrap_or("");
    let (from, names) = line.split_once(" import ")?;
    let module = from.strip_prefix("from ")?.trim().to_owned();
    names
        .trim_matches(|c: char| c == '(' || c == ')' || c.is_whitespace())
        .split(',')
        .find_map(|item| {
            let words: Vec<&str> = item.split_whitespace().collect();
            let original = match words.as_slice() {
                [single] if *single == name => *single,
                [original, "as", alias] if *alias == name => *original,
                _ => return None,
            };
            Some(Binding::Import {
                module: module.clone(),
                original: original.to_owned(),
            })
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

    /// The target found in `root` with no hints; panics when none is found.
    fn found_target(root: &Path) -> String {
        find_wsgi(root, &Hints::default())
            .unwrap()
            .unwrap()
            .target
            .to_string()
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
        let found = find_wsgi(&root, &Hints::default()).unwrap().unwrap();
        assert_eq!(found.target.to_string(), "app:application");
        assert_eq!(found.file, root.join("app.py"));
        fs::write(root.join("wsgi.py"), "from app import app\n").unwrap();
        assert_eq!(found_target(&root), "wsgi:app");
    }

    #[test]
    fn a_file_without_an_app_is_skipped() {
        let (_d, root) = root();
        fs::write(root.join("wsgi.py"), "print('hi')\n").unwrap();
        fs::write(root.join("main.py"), "app = 1\n").unwrap();
        assert_eq!(found_target(&root), "main:app");
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
        let found = find_wsgi(&root, &Hints::default()).unwrap().unwrap();
        assert_eq!(found.target.to_string(), "mysite.wsgi:application");
        assert_eq!(found.file, root.join("mysite/wsgi.py"));
    }

    #[test]
    fn package_wsgi_without_manage_py_is_not_django() {
        let (_d, root) = root();
        fs::create_dir(root.join("mysite")).unwrap();
        fs::write(root.join("mysite/wsgi.py"), "application = 1\n").unwrap();
        assert_eq!(find_wsgi(&root, &Hints::default()).unwrap(), None);
    }

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            let path = root.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
    }

    fn django_settings(value: &str) -> Hints {
        Hints {
            flask_app: None,
            django_settings: Some(Setting {
                value: value.into(),
                file: PathBuf::from(".env"),
                line: 1,
            }),
        }
    }

    const WSGI: &str = "application = get_wsgi_application()\n";

    #[test]
    fn django_settings_module_in_the_environment_picks_the_package() {
        let (_d, root) = root();
        write(
            &root,
            &[
                (
                    "manage.py",
                    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'aaa.settings')\n",
                ),
                ("aaa/wsgi.py", WSGI),
                ("mysite/wsgi.py", WSGI),
            ],
        );
        let found = find_wsgi(&root, &django_settings("mysite.settings.production"))
            .unwrap()
            .unwrap();
        assert_eq!(found.target.to_string(), "mysite.wsgi:application");
        assert_eq!(
            found.how.as_deref(),
            Some("serving mysite.wsgi:application, the package of DJANGO_SETTINGS_MODULE in .env")
        );
        // Without it, manage.py's package.
        let found = find_wsgi(&root, &Hints::default()).unwrap().unwrap();
        assert_eq!(found.target.to_string(), "aaa.wsgi:application");
        // It serves even without a manage.py.
        fs::remove_file(root.join("manage.py")).unwrap();
        let found = find_wsgi(&root, &django_settings("mysite.settings"))
            .unwrap()
            .unwrap();
        assert_eq!(found.target.to_string(), "mysite.wsgi:application");
    }

    #[test]
    fn startproject_without_the_dot_is_found_one_folder_down() {
        let (_d, root) = root();
        write(
            &root,
            &[
                ("README.md", "hi\n"),
                (
                    "mysite/manage.py",
                    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n",
                ),
                ("mysite/mysite/wsgi.py", WSGI),
                ("mysite/polls/__init__.py", ""),
            ],
        );
        let found = find_wsgi(&root, &Hints::default()).unwrap().unwrap();
        assert_eq!(found.target.to_string(), "mysite.wsgi:application");
        assert_eq!(found.file, root.join("mysite/mysite/wsgi.py"));
        assert_eq!(found.workdir, Some(root.join("mysite")));
        assert_eq!(
            found.how.as_deref(),
            Some(
                "serving mysite.wsgi:application from mysite/, where manage.py is: the workers \
                 start in mysite/ so that mysite.wsgi imports"
            )
        );
    }

    #[test]
    fn an_asgi_app_is_refused_with_what_to_write() {
        let (_d, root) = root();
        write(
            &root,
            &[(
                "main.py",
                "from fastapi import FastAPI\n\napp = FastAPI(title='x')\n",
            )],
        );
        let err = find_wsgi(&root, &Hints::default()).unwrap_err().to_string();
        assert_eq!(
            err,
            "main.py:3 defines a FastAPI app, which speaks ASGI; capstan's own workers run WSGI \
             apps for now. Run it behind capstan with an ASGI server: put [web] command = \
             \"uvicorn main:app --port $PORT\" in capstan.toml (and uvicorn in requirements.txt)"
        );
        for (source, framework) in [
            (
                "import starlette.applications\napi = starlette.applications.Starlette()\n",
                "Starlette",
            ),
            ("from quart import Quart\napp = Quart(__name__)\n", "Quart"),
            (
                "from litestar import Litestar\napp: Litestar = Litestar([])\n",
                "Litestar",
            ),
        ] {
            fs::write(root.join("main.py"), source).unwrap();
            let err = find_wsgi(&root, &Hints::default()).unwrap_err().to_string();
            assert!(err.contains(&format!("defines a {framework} app")), "{err}");
        }
        // The name alone is not enough: a Flask app that mentions FastAPI is fine.
        fs::write(
            root.join("main.py"),
            "from flask import Flask\napp = Flask(__name__)\nFastAPI = None\n",
        )
        .unwrap();
        assert_eq!(found_target(&root), "main:app");
    }

    #[test]
    fn bindings_say_how_a_name_is_bound() {
        assert_eq!(
            binding("def create_app(c=None):\n", "create_app"),
            Some(Binding::Def)
        );
        assert_eq!(
            binding("app = create_app()\n", "app"),
            Some(Binding::Assign)
        );
        assert_eq!(
            binding("from app import make as create_app\n", "create_app"),
            Some(Binding::Import {
                module: "app".into(),
                original: "make".into()
            })
        );
        assert_eq!(binding("x = 1\n", "app"), None);
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
