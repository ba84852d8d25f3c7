//! `FLASK_APP`, read the way Flask's CLI reads it (`prepare_import`,
//! `locate_app` and `find_best_app` in flask/cli.py), by looking at the files
//! only, never running them.
//!
//! The value is `path[:name]`. The path is a module (`microblog`, `app.web`) or a
//! file (`microblog.py`, `app/__init__.py`, `src/app.py`) relative to the app
//! directory; a file's module name goes up through folders that have an
//! `__init__.py`, and the first folder without one is where it is imported from.
//! The name is an attribute (`app`) or a factory call with literal arguments
//! (`create_app('prod')`); a bare name bound by `def` is called too, as Flask
//! calls any function. Without a name: `app`, `application`, the one
//! `x = Flask(...)`, then a `create_app` or `make_app` factory.

use std::path::{Component, Path};

use crate::discover::{binding, instances, Binding, Found, Setting};
use crate::error::ConfigError;
use crate::files::read_source_lossy;
use crate::wsgi::{is_identifier, WsgiTarget};

/// The app `FLASK_APP` names, or why it names none.
pub(crate) fn find(root: &Path, setting: &Setting) -> Result<Found, ConfigError> {
    let bad = |problem: String| ConfigError::BadValue {
        file: setting.file.clone(),
        line: setting.line,
        key: "FLASK_APP".into(),
        problem,
    };
    let value = setting.value.trim();
    let (path, name) = split_app_import(value);
    let module = Module::locate(root, path).map_err(|why| {
        bad(format!(
            "{value:?} {why}; set FLASK_APP to the file or module that makes the Flask app, \
             relative to the app directory, e.g. FLASK_APP=microblog.py or \
             FLASK_APP=\"app:create_app()\""
        ))
    })?;
    let source = read_source_lossy(root, &module.file)?.unwrap_or_default();
    let target = match name {
        Some(name) => named(root, &module, &source, name).map_err(bad)?,
        None => best_app(&module, &source).ok_or_else(|| {
            bad(format!(
                "{value:?}: {} defines no module-level `app` or `application`, no `x = \
                 Flask(...)`, and no `create_app` or `make_app` factory; name the app: \
                 FLASK_APP={}:name, or FLASK_APP=\"{}:create_app()\" for a factory",
                module.file, module.name, module.name
            ))
        })?,
    };
    let mut how = format!(
        "serving {target}, named by FLASK_APP in {}",
        setting.file.display()
    );
    if !module.dir.is_empty() {
        how.push_str(&format!(
            " (the workers start in {}/, where Flask imports it from)",
            module.dir
        ));
    }
    Ok(Found {
        target,
        file: root.join(&module.file),
        workdir: (!module.dir.is_empty()).then(|| root.join(&module.dir)),
        how: Some(how),
    })
}

/// `path` and `name` split at the first `:` that does not start a Windows path
/// (Flask's `re.split(r":(?![\\/])", ...)`).
fn split_app_import(value: &str) -> (&str, Option<&str>) {
    let bytes = value.as_bytes();
    for (at, b) in bytes.iter().enumerate() {
        if *b == b':' && !matches!(bytes.get(at + 1), Some(b'\\' | b'/')) {
            return (&value[..at], Some(&value[at + 1..]));
        }
    }
    (value, None)
}

/// A module found in the app directory.
#[derive(Debug, PartialEq, Eq)]
struct Module {
    /// Dotted name, e.g. `microblog` or `app.web`.
    name: String,
    /// The folder it is imported from, relative to the app directory ("" for it).
    dir: String,
    /// Its source file, relative to the app directory.
    file: String,
}

impl Module {
    /// Flask's `prepare_import`, kept inside the app directory.
    fn locate(root: &Path, path: &str) -> Result<Module, String> {
        let mut parts: Vec<String> = Vec::new();
        for component in Path::new(path).components() {
            match component {
                Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
                Component::CurDir => {}
                // SECURITY: the app is looked for, and imported, inside the app
                // directory only.
                _ => return Err("leaves the app directory".into()),
            }
        }
        let Some(last) = parts.pop() else {
            return Err("names no module".into());
        };
        let last = last.strip_suffix(".py").unwrap_or(&last).to_owned();
        if last != "__init__" {
            parts.push(last);
        } else if parts.is_empty() {
            return Err("names an __init__.py outside any package".into());
        }
        // Up through the packages: the first folder without __init__.py is the
        // import root. Flask may go above the app directory; capstan stops there.
        let mut names = vec![parts.pop().unwrap_or_default()];
        while !parts.is_empty() && root.join(parts.join("/")).join("__init__.py").is_file() {
            names.push(parts.pop().unwrap_or_default());
        }
        names.reverse();
        let name = names.join(".");
        // SECURITY: the name is imported by the workers; identifiers only.
        if !name.split('.').all(is_identifier) {
            return Err(format!(
                "names the module {name:?}, which is not a Python module name"
            ));
        }
        let dir = parts.join("/");
        let base = if dir.is_empty() {
            name.replace('.', "/")
        } else {
            format!("{dir}/{}", name.replace('.', "/"))
        };
        for file in [format!("{base}.py"), format!("{base}/__init__.py")] {
            if root.join(&file).is_file() {
                return Ok(Module { name, dir, file });
            }
        }
        Err(format!(
            "names the module {name}, but there is no {base}.py or {base}/__init__.py in the \
             app directory"
        ))
    }
}

/// `module:name` or `module:name(args)`: checked against what the module binds.
fn named(root: &Path, module: &Module, source: &str, name: &str) -> Result<WsgiTarget, String> {
    let spec = format!("{}:{}", module.name, name.trim());
    let mut target = WsgiTarget::parse(&spec).map_err(|_| {
        format!(
            "{spec:?}: after the ':' write a name, e.g. app, or a factory call with literal \
             arguments, e.g. create_app('prod')"
        )
    })?;
    let Some(how) = binding(source, &target.callable) else {
        return Err(format!(
            "{spec:?}: {} does not define `{}` at module level; name something it defines, \
             e.g. FLASK_APP={}:app",
            module.file, target.callable, module.name
        ));
    };
    // Flask calls the attribute when it is a function, parentheses or not.
    if !target.factory && is_function(root, module, how) {
        target.factory = true;
    }
    Ok(target)
}

/// Whether a binding is a function: `def`, or an import of one from a module in
/// the app directory (followed one step).
fn is_function(root: &Path, module: &Module, how: Binding) -> bool {
    match how {
        Binding::Def => true,
        Binding::Assign => false,
        Binding::Import {
            module: from,
            original,
        } => {
            let Some(source) = imported_source(root, module, &from) else {
                return false;
            };
            matches!(binding(&source, &original), Some(Binding::Def))
        }
    }
}

/// The source of the module `from` (absolute, or relative to `module`'s
/// package), when it is in the app directory.
fn imported_source(root: &Path, module: &Module, from: &str) -> Option<String> {
    let dots = from.chars().take_while(|c| *c == '.').count();
    let rest = &from[dots..];
    let mut parts: Vec<&str> = if dots == 0 {
        Vec::new()
    } else {
        // The package of `module`: itself for an __init__.py, else its parent.
        let mut package: Vec<&str> = module.name.split('.').collect();
        if !module.file.ends_with("__init__.py") {
            package.pop();
        }
        for _ in 1..dots {
            package.pop()?;
        }
        package
    };
    parts.extend(rest.split('.').filter(|p| !p.is_empty()));
    if !parts.iter().all(|p| is_identifier(p)) {
        return None;
    }
    let base = match module.dir.as_str() {
        "" => parts.join("/"),
        dir => format!("{dir}/{}", parts.join("/")),
    };
    [format!("{base}.py"), format!("{base}/__init__.py")]
        .into_iter()
        .find_map(|file| read_source_lossy(root, &file).ok().flatten())
}

/// Flask's `find_best_app`, on the source.
fn best_app(module: &Module, source: &str) -> Option<WsgiTarget> {
    for name in ["app", "application"] {
        if matches!(
            binding(source, name),
            Some(Binding::Assign | Binding::Import { .. })
        ) {
            return Some(WsgiTarget::attribute(&module.name, name));
        }
    }
    if let [(name, _)] = instances(source, "Flask").as_slice() {
        return Some(WsgiTarget::attribute(&module.name, name));
    }
    for name in ["create_app", "make_app"] {
        if binding(source, name).is_some() {
            let mut target = WsgiTarget::attribute(&module.name, name);
            target.factory = true;
            return Some(target);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    fn app(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for (name, text) in files {
            let path = root.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        (dir, root)
    }

    fn setting(value: &str) -> Setting {
        Setting {
            value: value.into(),
            file: PathBuf::from(".flaskenv"),
            line: 2,
        }
    }

    fn target(files: &[(&str, &str)], value: &str) -> Found {
        let (_d, root) = app(files);
        find(&root, &setting(value)).unwrap()
    }

    fn error(files: &[(&str, &str)], value: &str) -> String {
        let (_d, root) = app(files);
        find(&root, &setting(value)).unwrap_err().to_string()
    }

    const FACTORY_PKG: (&str, &str) = (
        "app/__init__.py",
        "from flask import Flask\n\ndef create_app(config_class=None):\n    app = Flask(__name__)\n    return app\n",
    );

    #[test]
    fn a_file_path_names_its_module_as_in_the_tutorial() {
        let found = target(
            &[
                (
                    "microblog.py",
                    "from app import create_app\napp = create_app()\n",
                ),
                FACTORY_PKG,
            ],
            "microblog.py",
        );
        assert_eq!(found.target.to_string(), "microblog:app");
        assert!(found.file.ends_with("microblog.py"));
        assert_eq!(found.workdir, None);
        assert_eq!(
            found.how.as_deref(),
            Some("serving microblog:app, named by FLASK_APP in .flaskenv")
        );
    }

    #[test]
    fn a_package_alone_gets_its_factory_called() {
        for value in ["app", "app/__init__.py", "app/", "./app"] {
            let found = target(&[FACTORY_PKG], value);
            assert_eq!(found.target.to_string(), "app:create_app()", "{value}");
            assert!(found.file.ends_with("app/__init__.py"));
        }
    }

    #[test]
    fn a_file_in_a_plain_folder_is_imported_from_that_folder() {
        let found = target(&[("src/web.py", "app = Flask(__name__)\n")], "src/web.py");
        assert_eq!(found.target.to_string(), "web:app");
        assert!(found.workdir.as_ref().unwrap().ends_with("src"));
        assert!(
            found
                .how
                .as_deref()
                .unwrap()
                .ends_with("(the workers start in src/, where Flask imports it from)"),
            "{:?}",
            found.how
        );
    }

    #[test]
    fn a_file_in_a_package_keeps_its_dotted_name() {
        let found = target(
            &[
                ("app/__init__.py", ""),
                ("app/web.py", "application = make()\n"),
            ],
            "app/web.py",
        );
        assert_eq!(found.target.to_string(), "app.web:application");
        assert_eq!(found.workdir, None);
        let found = target(
            &[
                ("app/__init__.py", ""),
                ("app/web.py", "application = make()\n"),
            ],
            "app.web",
        );
        assert_eq!(found.target.to_string(), "app.web:application");
    }

    #[test]
    fn module_colon_name_and_factory_calls() {
        let files = [
            (
                "microblog.py",
                "from app import create_app\nserver = create_app()\n",
            ),
            FACTORY_PKG,
        ];
        assert_eq!(
            target(&files, "microblog:server").target.to_string(),
            "microblog:server"
        );
        assert_eq!(
            target(&files, "app:create_app()").target.to_string(),
            "app:create_app()"
        );
        assert_eq!(
            target(&files, "app:create_app('prod', debug=False)")
                .target
                .to_string(),
            "app:create_app('prod', debug=False)"
        );
        // A function is called, as Flask does, even without parentheses; an
        // imported one too, when its module is in the app.
        assert_eq!(
            target(&files, "app:create_app").target.to_string(),
            "app:create_app()"
        );
        assert_eq!(
            target(&files, "microblog:create_app").target.to_string(),
            "microblog:create_app()"
        );
        assert_eq!(
            target(&files, "microblog.py:server").target.to_string(),
            "microblog:server"
        );
    }

    #[test]
    fn without_a_name_flask_s_order_is_followed() {
        let t = |source: &str| target(&[("web.py", source)], "web").target.to_string();
        assert_eq!(t("application = 1\napp = 2\n"), "web:app");
        assert_eq!(t("application = 1\n"), "web:application");
        assert_eq!(t("server = Flask(__name__)\n"), "web:server");
        assert_eq!(t("server: Flask = flask.Flask(__name__)\n"), "web:server");
        assert_eq!(t("def make_app():\n    pass\n"), "web:make_app()");
        assert_eq!(
            t("def create_app():\n    pass\ndef make_app():\n    pass\n"),
            "web:create_app()"
        );
    }

    #[test]
    fn a_missing_file_or_module_names_where_flask_app_was_set() {
        let msg = error(&[], "microblog.py");
        assert!(
            msg.starts_with(
                ".flaskenv:2: bad value for `FLASK_APP`: \"microblog.py\" names the module \
                 microblog, but there is no microblog.py or microblog/__init__.py in the app directory; \
                 set FLASK_APP to the file or module"
            ),
            "{msg}"
        );
        assert!(msg.contains("FLASK_APP=microblog.py"), "{msg}");
        assert!(error(&[], "app:create_app()").contains("no app.py or app/__init__.py"));
    }

    #[test]
    fn paths_out_of_the_app_and_odd_names_are_refused() {
        for (value, why) in [
            ("../other/app.py", "leaves the app directory"),
            ("/srv/app.py", "leaves the app directory"),
            ("my-app.py", "not a Python module name"),
            ("", "names no module"),
        ] {
            let msg = error(&[("my-app.py", "app = 1\n")], value);
            assert!(msg.contains(why), "{value}: {msg}");
        }
    }

    #[test]
    fn a_name_the_module_does_not_define_is_an_error() {
        let msg = error(&[("web.py", "app = 1\n")], "web:server");
        assert_eq!(
            msg,
            ".flaskenv:2: bad value for `FLASK_APP`: \"web:server\": web.py does not define \
             `server` at module level; name something it defines, e.g. FLASK_APP=web:app"
        );
        let msg = error(&[("web.py", "app = 1\n")], "web:create_app(os.environ)");
        assert!(msg.contains("literal arguments"), "{msg}");
        let msg = error(&[("web.py", "print('hi')\n")], "web");
        assert!(
            msg.contains("web.py defines no module-level `app` or `application`"),
            "{msg}"
        );
        assert!(msg.contains("FLASK_APP=web:name"), "{msg}");
    }

    #[test]
    fn windows_paths_are_not_split_at_the_drive_colon() {
        assert_eq!(split_app_import("a:b"), ("a", Some("b")));
        assert_eq!(split_app_import("C:\\x\\a.py"), ("C:\\x\\a.py", None));
        assert_eq!(split_app_import("a"), ("a", None));
    }
}
