//! [`load`]: one app directory in, one validated [`App`] out.
//!
//! The settings file is the first of capstan.toml, pyproject.toml with a
//! `[tool.capstan]` table, and Procfile. What it leaves out is discovered (the WSGI
//! app, a `static/` directory, the requirements) or defaulted, and `.env` is merged
//! over its `[env]`. `.flaskenv` is kept apart, for the commands capstan runs.

use std::path::{Path, PathBuf};

use crate::app::{
    App, Partial, Source, Web, DEFAULT_GRACEFUL_TIMEOUT, DEFAULT_HEALTH_PATH,
    DEFAULT_HEALTH_RETRIES, DEFAULT_HEALTH_TIMEOUT, DEFAULT_KEEP_PREVIOUS, DEFAULT_THREADS,
    DEFAULT_TIMEOUT,
};
use crate::app_file::{read_capstan_toml, read_pyproject, Pyproject};
use crate::discover::{find_wsgi, requirements, Hints, Setting};
use crate::dotenv::merge_dotenv;
use crate::error::ConfigError;
use crate::files::read_text;
use crate::flask_debug::{debug_warnings, runs_flask_cli};
use crate::gunicorn;
use crate::names::AppName;
use crate::origin::origin;
use crate::procfile::read_procfile;
use crate::static_routes::default_static_route;

/// Loads and validates the app in `dir`.
///
/// Reads only files inside `dir`, never runs the app's code, and never reads or
/// changes capstan's own environment variables.
pub fn load(dir: &Path) -> Result<App, ConfigError> {
    let root = dir
        .canonicalize()
        .map_err(|source| ConfigError::NoSuchDir {
            dir: dir.to_path_buf(),
            source,
        })?;
    if !root.is_dir() {
        return Err(ConfigError::NotADirectory {
            dir: dir.to_path_buf(),
        });
    }

    let capstan_toml = read_text(&root, "capstan.toml")?;
    let Pyproject {
        capstan: tool_capstan,
        has_tool_capstan,
        dependencies,
    } = match read_text(&root, "pyproject.toml")? {
        Some(text) => read_pyproject(&root, &text, capstan_toml.is_none())?,
        None => Pyproject::default(),
    };
    let (mut partial, source) = match read_settings_file(&root, capstan_toml, tool_capstan)? {
        Some((partial, source)) => (partial, Some(source)),
        None => (Partial::default(), None),
    };
    if has_tool_capstan && matches!(source, Some(Source::CapstanToml(_))) {
        partial
            .notes
            .push("ignored [tool.capstan] in pyproject.toml: capstan.toml comes first".into());
    }

    let mut env = std::mem::take(&mut partial.env);
    // `.flaskenv` expands against `[env]`, as it did when it was merged.
    let mut flaskenv = env.clone();
    merge_dotenv(&root, ".flaskenv", &mut flaskenv)?;
    flaskenv.retain(|key, value| env.get(key) != Some(value));
    merge_dotenv(&root, ".env", &mut env)?;
    let settings_file = source.as_ref().map(settings_file_name);
    // Where a variable of `env` was set: `.env` wins over the settings file.
    let env_origin = |key: &str| {
        let files: Vec<&str> = [Some(".env"), settings_file]
            .into_iter()
            .flatten()
            .collect();
        origin(&root, key, &files).unwrap_or_else(|| (PathBuf::from(files[0]), 1))
    };
    let took_over_gunicorn =
        matches!(source, Some(Source::Procfile(_))) && matches!(partial.web, Some(Web::Wsgi(_)));
    let (web, source) = match (partial.web.take(), source) {
        (Some(web), Some(source)) => (web, source),
        // No file names the web app: look for it in the code.
        (_, source) => {
            let setting = |value: &String, origin: (PathBuf, usize)| Setting {
                value: value.clone(),
                file: origin.0,
                line: origin.1,
            };
            let hints = Hints {
                // The production environment wins over .flaskenv.
                flask_app: match (env.get("FLASK_APP"), flaskenv.get("FLASK_APP")) {
                    (Some(value), _) => Some(setting(value, env_origin("FLASK_APP"))),
                    (None, Some(value)) => Some(setting(
                        value,
                        origin(&root, "FLASK_APP", &[".flaskenv"])
                            .unwrap_or_else(|| (PathBuf::from(".flaskenv"), 1)),
                    )),
                    (None, None) => None,
                },
                django_settings: env
                    .get("DJANGO_SETTINGS_MODULE")
                    .map(|value| setting(value, env_origin("DJANGO_SETTINGS_MODULE"))),
            };
            let found = find_wsgi(&root, &hints)?
                .ok_or_else(|| ConfigError::NoApp { dir: root.clone() })?;
            if let Some(how) = found.how {
                partial.notes.push(how);
            } else if source.is_some() {
                partial.notes.push(format!(
                    "serving {} found in {}",
                    found.target,
                    relative(&root, &found.file).display()
                ));
            }
            if partial.workdir.is_none() {
                partial.workdir = found.workdir;
            }
            let source = source.unwrap_or(Source::Detected {
                file: found.file.clone(),
            });
            (Web::Wsgi(found.target), source)
        }
    };

    // A taken-over gunicorn would have read these from the environment too.
    if took_over_gunicorn {
        let from_env = gunicorn::from_env(&env, partial.workers, |key| env_origin(key).0);
        partial.workers = from_env.workers;
        partial.notes.extend(from_env.notes);
    }

    let flask_cli = match &web {
        Web::Command { command } => runs_flask_cli(command),
        Web::Wsgi(_) => false,
    };
    partial.warnings.extend(debug_warnings(
        &env,
        &flaskenv,
        |key| env_origin(key).0,
        flask_cli,
    ));

    let static_routes = match partial.static_routes.take() {
        Some(routes) => routes,
        None => default_static_route(&root).into_iter().collect(),
    };

    let name = match partial.name.take() {
        Some(name) => name,
        None => default_name(&root)?,
    };

    Ok(App {
        requirements: requirements(&root, dependencies)?,
        name,
        source,
        web,
        workers: partial.workers,
        threads: partial.threads.unwrap_or(DEFAULT_THREADS),
        timeout: partial.timeout.unwrap_or(DEFAULT_TIMEOUT),
        graceful_timeout: partial.graceful_timeout.unwrap_or(DEFAULT_GRACEFUL_TIMEOUT),
        max_requests: partial.max_requests,
        max_requests_jitter: partial.max_requests_jitter.unwrap_or(0),
        max_rss: partial.max_rss,
        max_queue: partial.max_queue,
        queue_timeout: partial.queue_timeout,
        pipeline: partial.pipeline,
        static_routes,
        keep_previous: partial.keep_previous.unwrap_or(DEFAULT_KEEP_PREVIOUS),
        env,
        flaskenv,
        processes: partial.processes,
        cron: partial.cron,
        build: partial.build,
        release: partial.release,
        python: partial.python,
        venv: partial.venv,
        domains: partial.domains,
        http: partial.http,
        tls: partial.tls,
        health_path_set: partial.health_path.is_some(),
        health_path: partial
            .health_path
            .unwrap_or_else(|| DEFAULT_HEALTH_PATH.to_owned()),
        health_timeout: partial.health_timeout.unwrap_or(DEFAULT_HEALTH_TIMEOUT),
        health_retries: partial.health_retries.unwrap_or(DEFAULT_HEALTH_RETRIES),
        workdir: partial.workdir,
        notes: partial.notes,
        warnings: partial.warnings,
        root,
    })
}

/// The first settings file found, parsed, or `None` when there is none.
/// `capstan_toml` is that file's text and `tool_capstan` pyproject.toml's
/// `[tool.capstan]`, both already read.
fn read_settings_file(
    root: &Path,
    capstan_toml: Option<String>,
    tool_capstan: Option<Partial>,
) -> Result<Option<(Partial, Source)>, ConfigError> {
    if let Some(text) = capstan_toml {
        let partial = read_capstan_toml(root, &text)?;
        return Ok(Some((
            partial,
            Source::CapstanToml(root.join("capstan.toml")),
        )));
    }
    if let Some(partial) = tool_capstan {
        return Ok(Some((
            partial,
            Source::Pyproject(root.join("pyproject.toml")),
        )));
    }
    if let Some(text) = read_text(root, "Procfile")? {
        let partial = read_procfile(root, &text)?;
        return Ok(Some((partial, Source::Procfile(root.join("Procfile")))));
    }
    Ok(None)
}

/// The settings file's name, relative to the app directory.
fn settings_file_name(source: &Source) -> &'static str {
    match source {
        Source::CapstanToml(_) => "capstan.toml",
        Source::Pyproject(_) => "pyproject.toml",
        Source::Procfile(_) => "Procfile",
        Source::Detected { .. } => ".env",
    }
}

fn default_name(root: &Path) -> Result<AppName, ConfigError> {
    let dir_name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    AppName::from_dir_name(&dir_name).ok_or(ConfigError::NoName { dir_name })
}

fn relative<'a>(root: &Path, path: &'a Path) -> &'a Path {
    path.strip_prefix(root).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Requirements, DEFAULT_STATIC_MAX_AGE};
    use std::fs;
    use std::path::PathBuf;
    use std::time::Duration;

    /// A temp dir with an app directory called `microblog` inside.
    fn app_dir(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap().join("microblog");
        fs::create_dir(&root).unwrap();
        for (name, text) in files {
            let path = root.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            if name.ends_with('/') {
                fs::create_dir_all(&path).unwrap();
            } else {
                fs::write(path, text).unwrap();
            }
        }
        (tmp, root)
    }

    #[test]
    fn a_bare_flask_app_is_detected_with_defaults() {
        let (_t, root) = app_dir(&[
            ("app.py", "from flask import Flask\napp = Flask(__name__)\n"),
            ("static/", ""),
            ("requirements.txt", "flask\n"),
        ]);
        let app = load(&root).unwrap();
        assert_eq!(app.root, root);
        assert_eq!(app.name.as_str(), "microblog");
        assert_eq!(
            app.source,
            Source::Detected {
                file: root.join("app.py")
            }
        );
        assert_eq!(app.web, Web::Wsgi("app:app".parse().unwrap()));
        assert_eq!((app.workers, app.threads), (None, 1));
        assert_eq!(
            (app.timeout, app.graceful_timeout),
            (Duration::from_secs(30), Duration::from_secs(30))
        );
        assert_eq!(app.static_routes.len(), 1);
        assert_eq!(app.static_routes[0].url_prefix, "/static");
        assert_eq!(app.static_routes[0].dir, root.join("static"));
        assert_eq!(app.static_routes[0].max_age, DEFAULT_STATIC_MAX_AGE);
        assert_eq!(
            app.requirements,
            Requirements::Txt(root.join("requirements.txt"))
        );
        assert_eq!(app.health_path, "/");
        assert!(!app.health_path_set);
        assert_eq!(app.health_timeout, DEFAULT_HEALTH_TIMEOUT);
        assert_eq!(app.health_retries, DEFAULT_HEALTH_RETRIES);
        assert!(app.env.is_empty() && app.processes.is_empty() && app.release.is_empty());
        assert!(app.notes.is_empty());
    }

    #[test]
    fn capstan_toml_with_only_name_and_static_still_finds_the_app() {
        let (_t, root) = app_dir(&[
            (
                "capstan.toml",
                "name = \"blog\"\n[static]\n\"/assets\" = \"assets\"\n",
            ),
            ("app.py", "app = make()\n"),
            ("assets/", ""),
            ("static/", ""),
        ]);
        let app = load(&root).unwrap();
        assert_eq!(app.name.as_str(), "blog");
        assert_eq!(app.source, Source::CapstanToml(root.join("capstan.toml")));
        assert_eq!(app.web, Web::Wsgi("app:app".parse().unwrap()));
        let prefixes: Vec<_> = app
            .static_routes
            .iter()
            .map(|r| r.url_prefix.as_str())
            .collect();
        assert_eq!(
            prefixes,
            ["/assets"],
            "[static] replaces the static/ default"
        );
        assert_eq!(app.notes, ["serving app:app found in app.py"]);
    }

    #[test]
    fn capstan_toml_wins_over_pyproject_and_procfile() {
        let (_t, root) = app_dir(&[
            ("capstan.toml", "[web]\nwsgi = \"a:b\"\n"),
            (
                "pyproject.toml",
                "[tool.capstan.web]\nwsgi = \"c:d\"\nbroken = 1\n",
            ),
            ("Procfile", "web: gunicorn e:f\n"),
        ]);
        let app = load(&root).unwrap();
        assert_eq!(app.web, Web::Wsgi("a:b".parse().unwrap()));
        assert_eq!(
            app.notes,
            ["ignored [tool.capstan] in pyproject.toml: capstan.toml comes first"]
        );
    }

    #[test]
    fn pyproject_tool_capstan_and_its_dependencies() {
        let (_t, root) = app_dir(&[
            (
                "pyproject.toml",
                "[project]\nname = \"microblog\"\ndependencies = [\"flask>=3\", \"rq\"]\n\n[tool.capstan]\ndomains = [\"blog.example.com\"]\n[tool.capstan.web]\nwsgi = \"microblog:create_app()\"\n",
            ),
            ("Procfile", "web: gunicorn e:f\n"),
        ]);
        let app = load(&root).unwrap();
        assert_eq!(app.source, Source::Pyproject(root.join("pyproject.toml")));
        assert_eq!(
            app.web.clone(),
            Web::Wsgi("microblog:create_app()".parse().unwrap())
        );
        assert_eq!(app.domains, ["blog.example.com"]);
        assert_eq!(
            app.requirements,
            Requirements::Pyproject {
                path: root.join("pyproject.toml"),
                dependencies: vec!["flask>=3".into(), "rq".into()]
            }
        );
    }

    #[test]
    fn procfile_app_with_env_files() {
        let (_t, root) = app_dir(&[
            ("pyproject.toml", "[project]\nname = \"x\"\n"),
            ("Procfile", "web: gunicorn -w 2 -e FROM_GUNICORN=1 microblog:app --bind :$PORT\nworker: rq worker\nrelease: flask db upgrade\n"),
            (".flaskenv", "FLASK_APP=microblog.py\nFROM_GUNICORN=flaskenv\nSHARED=flaskenv\n"),
            (".env", "SHARED=env\nURL=${FLASK_APP}/x\n"),
        ]);
        let app = load(&root).unwrap();
        assert_eq!(app.source, Source::Procfile(root.join("Procfile")));
        assert_eq!(app.web, Web::Wsgi("microblog:app".parse().unwrap()));
        assert_eq!(app.workers, Some(2));
        assert_eq!(app.release, ["flask db upgrade"]);
        assert_eq!(app.processes["worker"].command, "rq worker");
        // .flaskenv is for the flask command, never the web processes.
        assert_eq!(app.env["FROM_GUNICORN"], "1");
        assert_eq!(app.env["SHARED"], "env");
        assert_eq!(app.env["URL"], "/x");
        assert!(!app.env.contains_key("FLASK_APP"));
        assert_eq!(app.flaskenv["FLASK_APP"], "microblog.py");
        let commands = app.command_env();
        assert_eq!(commands["FLASK_APP"], "microblog.py");
        assert_eq!(commands["FROM_GUNICORN"], "1");
        assert_eq!(commands["SHARED"], "env");
        assert_eq!(app.requirements, Requirements::None);
        assert_eq!(
            app.notes,
            ["Procfile:1: ignored gunicorn flag --bind: capstan listens itself"]
        );
    }

    #[test]
    fn procfile_without_web_falls_back_to_discovery() {
        let (_t, root) = app_dir(&[
            ("Procfile", "worker: rq worker\n"),
            ("wsgi.py", "application = x\n"),
        ]);
        let app = load(&root).unwrap();
        assert_eq!(app.source, Source::Procfile(root.join("Procfile")));
        assert_eq!(app.web, Web::Wsgi("wsgi:application".parse().unwrap()));
        assert_eq!(app.notes, ["serving wsgi:application found in wsgi.py"]);
    }

    #[test]
    fn env_is_toml_then_env_and_commands_add_flaskenv_under_it() {
        let (_t, root) = app_dir(&[
            (
                "capstan.toml",
                "[web]\ncommand = \"node s.js\"\n[env]\nA = \"toml\"\nB = \"toml\"\nC = \"toml\"\n",
            ),
            (".flaskenv", "B=flaskenv\nC=flaskenv\n"),
            (".env", "C=env\n"),
        ]);
        let app = load(&root).unwrap();
        let env = &app.env;
        assert_eq!(
            (env["A"].as_str(), env["B"].as_str(), env["C"].as_str()),
            ("toml", "toml", "env")
        );
        assert_eq!(app.flaskenv["B"], "flaskenv");
        assert_eq!(app.command_env()["B"], "toml");
    }

    #[test]
    fn the_tutorial_app_is_found_through_flask_app_in_flaskenv() {
        let (_t, root) = app_dir(&[
            (".flaskenv", "FLASK_APP=microblog.py\nFLASK_DEBUG=1\n"),
            (
                "microblog.py",
                "from app import create_app\napp = create_app()\n",
            ),
            ("app/__init__.py", "def create_app():\n    pass\n"),
        ]);
        let app = load(&root).unwrap();
        assert_eq!(app.web, Web::Wsgi("microblog:app".parse().unwrap()));
        assert_eq!(
            app.source,
            Source::Detected {
                file: root.join("microblog.py")
            }
        );
        assert_eq!(
            app.notes,
            ["serving microblog:app, named by FLASK_APP in .flaskenv"]
        );
        assert!(!app.env.contains_key("FLASK_DEBUG"));
        assert_eq!(app.warnings.len(), 1, "{:?}", app.warnings);
        assert!(app.warnings[0].starts_with(".flaskenv sets FLASK_DEBUG=1"));
    }

    #[test]
    fn flask_app_in_the_production_env_wins_over_flaskenv_and_errors_point_at_it() {
        let (_t, root) = app_dir(&[
            ("capstan.toml", "[env]\nFLASK_APP = \"web:server\"\n"),
            (".flaskenv", "FLASK_APP=microblog.py\n"),
            ("web.py", "server = make()\n"),
            ("microblog.py", "app = make()\n"),
        ]);
        let app = load(&root).unwrap();
        assert_eq!(app.web, Web::Wsgi("web:server".parse().unwrap()));
        assert_eq!(
            app.notes,
            ["serving web:server, named by FLASK_APP in capstan.toml"]
        );
        fs::write(root.join(".env"), "A=1\nFLASK_APP=nope.py\n").unwrap();
        let msg = load(&root).unwrap_err().to_string();
        assert!(
            msg.starts_with(".env:2: bad value for `FLASK_APP`: \"nope.py\" names the module nope"),
            "{msg}"
        );
        // A file that names the web app wins over FLASK_APP.
        fs::write(
            root.join("capstan.toml"),
            "[web]\nwsgi = \"microblog:app\"\n",
        )
        .unwrap();
        assert_eq!(
            load(&root).unwrap().web,
            Web::Wsgi("microblog:app".parse().unwrap())
        );
    }

    #[test]
    fn flask_debug_in_the_production_env_is_a_warning_naming_its_file() {
        let (_t, root) = app_dir(&[(
            "capstan.toml",
            "[web]\nwsgi = \"a:b\"\n[env]\nFLASK_DEBUG = \"1\"\n",
        )]);
        let app = load(&root).unwrap();
        assert_eq!(app.warnings.len(), 1);
        assert!(
            app.warnings[0]
                .starts_with("FLASK_DEBUG=1 in capstan.toml turns on Flask's debug mode"),
            "{:?}",
            app.warnings
        );
    }

    #[test]
    fn web_concurrency_counts_for_a_taken_over_gunicorn_only() {
        let (_t, root) = app_dir(&[
            ("Procfile", "web: gunicorn app:app\n"),
            (".env", "WEB_CONCURRENCY=3\n"),
        ]);
        let app = load(&root).unwrap();
        assert_eq!(app.workers, Some(3));
        assert_eq!(
            app.notes,
            ["3 workers, from WEB_CONCURRENCY in .env, which gunicorn reads too"]
        );
        fs::write(root.join("Procfile"), "worker: rq worker\n").unwrap();
        fs::write(root.join("app.py"), "app = make()\n").unwrap();
        let app = load(&root).unwrap();
        assert_eq!(app.workers, None);
    }

    #[test]
    fn the_tutorial_procfile_gives_release_commands_and_the_web_app() {
        let (_t, root) = app_dir(&[
            (".flaskenv", "FLASK_APP=microblog.py\n"),
            (
                "Procfile",
                "web: flask db upgrade; flask translate compile; gunicorn microblog:app\n",
            ),
        ]);
        let app = load(&root).unwrap();
        assert_eq!(app.web, Web::Wsgi("microblog:app".parse().unwrap()));
        assert_eq!(app.release, ["flask db upgrade", "flask translate compile"]);
        assert_eq!(app.command_env()["FLASK_APP"], "microblog.py");
        assert_eq!(app.notes.len(), 1, "{:?}", app.notes);
    }

    #[test]
    fn django_settings_module_in_dotenv_is_named_in_the_note() {
        let (_t, root) = app_dir(&[
            (".env", "DJANGO_SETTINGS_MODULE=shop.settings\n"),
            ("shop/wsgi.py", "application = get_wsgi_application()\n"),
        ]);
        let app = load(&root).unwrap();
        assert_eq!(app.web, Web::Wsgi("shop.wsgi:application".parse().unwrap()));
        assert_eq!(
            app.notes,
            ["serving shop.wsgi:application, the package of DJANGO_SETTINGS_MODULE in .env"]
        );
    }

    #[test]
    fn nested_django_project_sets_the_workers_folder() {
        let (_t, root) = app_dir(&[
            (
                "mysite/manage.py",
                "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n",
            ),
            (
                "mysite/mysite/wsgi.py",
                "application = get_wsgi_application()\n",
            ),
        ]);
        let app = load(&root).unwrap();
        assert_eq!(
            app.web,
            Web::Wsgi("mysite.wsgi:application".parse().unwrap())
        );
        assert_eq!(app.workdir, Some(root.join("mysite")));
        assert_eq!(app.notes.len(), 1);
    }

    #[test]
    fn errors_from_each_file_reach_the_caller() {
        let (_t, root) = app_dir(&[
            ("capstan.toml", "[web]\nwsgi = \"a:b\"\n"),
            (".env", "A=1\nnot valid\n"),
        ]);
        assert!(load(&root)
            .unwrap_err()
            .to_string()
            .starts_with(".env:2: cannot parse this line"));
        let (_t, root) = app_dir(&[("pyproject.toml", "[tool.capstan]\nweb = 3\n")]);
        assert_eq!(
            load(&root).unwrap_err().to_string(),
            "pyproject.toml:2: bad value for `web`: expected a table, found an integer"
        );
    }

    #[test]
    fn no_app_says_what_was_looked_for_and_what_to_do() {
        let (_t, root) = app_dir(&[("app.py", "print('no app here')\n")]);
        let err = load(&root).unwrap_err();
        assert!(matches!(err, ConfigError::NoApp { .. }));
        let msg = err.to_string();
        for part in [
            "no web app found in",
            "wsgi.py, app.py or main.py",
            "manage.py",
            "[web] wsgi = \"module:callable\"",
            "web: line",
        ] {
            assert!(msg.contains(part), "{part}: {msg}");
        }
    }

    #[test]
    fn missing_dir_and_file_as_dir_are_explained() {
        let (_t, root) = app_dir(&[("app.py", "app = 1\n")]);
        let msg = load(&root.join("nope")).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!(
                "app directory {} cannot be opened",
                root.join("nope").display()
            )),
            "{msg}"
        );
        assert!(
            msg.contains("pass the directory that holds the app's code"),
            "{msg}"
        );
        let msg = load(&root.join("app.py")).unwrap_err().to_string();
        assert!(msg.ends_with("is not a directory; pass the directory that holds the app's code, not a file in it"), "{msg}");
    }

    #[test]
    fn a_directory_name_with_no_usable_characters_needs_a_name() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("___");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("app.py"), "app = 1\n").unwrap();
        let msg = load(&root).unwrap_err().to_string();
        assert!(
            msg.starts_with("cannot make an app name from the directory name \"___\"; set name = "),
            "{msg}"
        );
        fs::write(root.join("capstan.toml"), "name = \"ok\"\n").unwrap();
        assert_eq!(load(&root).unwrap().name.as_str(), "ok");
    }

    #[test]
    fn venv_is_resolved_but_need_not_exist() {
        let (_t, root) = app_dir(&[("capstan.toml", "venv = \".venv\"\n[web]\nwsgi = \"a:b\"\n")]);
        assert_eq!(load(&root).unwrap().venv, Some(root.join(".venv")));
    }

    #[test]
    fn relative_app_dir_becomes_absolute() {
        let (_t, root) = app_dir(&[("app.py", "app = 1\n")]);
        let dotted = root.join("..").join("microblog");
        assert_eq!(load(&dotted).unwrap().root, root);
    }
}

#[cfg(test)]
mod example_tests {
    #[test]
    fn the_blog_example_loads_with_its_build_and_release_commands() {
        let blog = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/blog");
        let app = crate::load(&blog).unwrap();
        assert_eq!(app.build, ["pybabel compile -d app/translations"]);
        assert_eq!(app.release, ["flask db upgrade"]);
        assert_eq!(app.keep_previous, crate::DEFAULT_KEEP_PREVIOUS);
        assert!(app.processes.contains_key("tasks") && app.cron.contains_key("stats"));
    }
}
