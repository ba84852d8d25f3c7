//! Procfiles, as Heroku, Dokku and Piku read them: `name: command` per line.
//!
//! `web:` is the web process (gunicorn commands are taken over by capstan's own
//! workers, see [`crate::gunicorn`]), `release:` a release command, and every other
//! entry a supervised background process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::app::{Partial, Process, Web};
use crate::error::ConfigError;
use crate::gunicorn::{self, Gunicorn, GunicornRun};
use crate::names::is_name;
use crate::static_routes::resolve_dir_inside;

const FILE: &str = "Procfile";

/// Reads a Procfile. `root` is the canonical app directory.
pub(crate) fn read_procfile(root: &Path, text: &str) -> Result<Partial, ConfigError> {
    let mut p = Partial::default();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (line, name, command) in entries(text)? {
        if let Some(&first_line) = seen.get(name) {
            return Err(ConfigError::Duplicate {
                file: PathBuf::from(FILE),
                line,
                key: name.to_owned(),
                first_line,
            });
        }
        seen.insert(name.to_owned(), line);
        match name {
            "web" => read_web(root, line, command, &mut p)?,
            "release" => p.release.push(command.to_owned()),
            _ => {
                p.processes.insert(
                    name.to_owned(),
                    Process {
                        command: command.to_owned(),
                    },
                );
            }
        }
    }
    Ok(p)
}

/// `(line, name, command)` for each entry; comments and blank lines skipped.
fn entries(text: &str) -> Result<Vec<(usize, &str, &str)>, ConfigError> {
    let syntax = |line: usize, message: String| ConfigError::Syntax {
        file: PathBuf::from(FILE),
        line,
        message,
    };
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, command)) = trimmed.split_once(':') else {
            return Err(syntax(
                line,
                "expected `name: command`, like `web: gunicorn app:app`".into(),
            ));
        };
        let (name, command) = (name.trim_end(), command.trim());
        // SECURITY: process names become file and unit names on the server.
        if !is_name(name, true) {
            return Err(syntax(
                line,
                format!(
                    "{name:?} is not a valid process name: use letters, digits, '-' and '_', \
                     starting with a letter or digit"
                ),
            ));
        }
        if command.is_empty() {
            return Err(syntax(
                line,
                format!("`{name}` has no command after the ':'"),
            ));
        }
        if command.contains('\0') {
            return Err(syntax(line, "the command contains a NUL character".into()));
        }
        out.push((line, name, command));
    }
    Ok(out)
}

fn read_web(root: &Path, line: usize, command: &str, p: &mut Partial) -> Result<(), ConfigError> {
    let bad = |key: &str, problem: String| ConfigError::BadValue {
        file: PathBuf::from(FILE),
        line,
        key: key.to_owned(),
        problem,
    };
    let parsed = gunicorn::parse(command).map_err(|e| bad(&e.flag, e.problem))?;
    match parsed {
        Gunicorn::No => {
            p.web = Some(Web::Command {
                command: command.to_owned(),
            });
        }
        Gunicorn::AsCommand(why) => {
            p.notes.push(format!(
                "{FILE}:{line}: running the web: command as is, behind capstan's proxy, because \
                 {why}; it must listen on $PORT"
            ));
            p.web = Some(Web::Command {
                command: command.to_owned(),
            });
        }
        Gunicorn::Run(GunicornRun {
            target,
            settings: run,
        }) => {
            p.web = Some(Web::Wsgi(target));
            p.workers = run.workers;
            p.threads = run.threads;
            p.timeout = run.timeout;
            p.graceful_timeout = run.graceful_timeout;
            p.max_requests = run.max_requests;
            p.max_requests_jitter = run.max_requests_jitter;
            if let Some(dir) = run.chdir {
                p.workdir = Some(resolve_dir_inside(root, &dir).map_err(|e| bad("--chdir", e))?);
            }
            p.env.extend(run.env);
            p.notes
                .extend(run.notes.into_iter().map(|n| format!("{FILE}:{line}: {n}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Duration;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        (dir, root)
    }

    fn read(text: &str) -> Result<Partial, ConfigError> {
        let (_dir, root) = root();
        read_procfile(&root, text)
    }

    #[test]
    fn entries_split_into_web_release_and_processes() {
        let p = read(
            "# deploy\n\nweb: gunicorn microblog:app -w 3 --bind 0.0.0.0:$PORT\n\
             release: flask db upgrade\nworker: rq worker microblog-tasks\nclock: python clock.py\n",
        )
        .unwrap();
        assert_eq!(p.web, Some(Web::Wsgi("microblog:app".parse().unwrap())));
        assert_eq!(p.workers, Some(3));
        assert_eq!(p.release, ["flask db upgrade"]);
        assert_eq!(p.processes["worker"].command, "rq worker microblog-tasks");
        assert_eq!(p.processes["clock"].command, "python clock.py");
        assert_eq!(
            p.notes,
            ["Procfile:3: ignored gunicorn flag --bind: capstan listens itself"]
        );
    }

    #[test]
    fn non_gunicorn_web_is_a_command() {
        let p = read("web: node server.js --port $PORT\r\n").unwrap();
        assert_eq!(
            p.web,
            Some(Web::Command {
                command: "node server.js --port $PORT".into()
            })
        );
        assert!(p.notes.is_empty());
    }

    #[test]
    fn gunicorn_that_cannot_be_taken_over_runs_as_is_with_a_note() {
        let p = read("web: gunicorn -c gunicorn.conf.py app:app\n").unwrap();
        assert!(matches!(p.web, Some(Web::Command { .. })));
        assert!(
            p.notes[0].starts_with("Procfile:1: running the web: command as is"),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn gunicorn_settings_are_kept() {
        let (_dir, root) = root();
        fs::create_dir(root.join("src")).unwrap();
        let p = read_procfile(
            &root,
            "web: gunicorn --chdir src -t 60 --threads 4 -e X=1 app:app\n",
        )
        .unwrap();
        assert_eq!(p.workdir, Some(root.join("src")));
        assert_eq!(p.timeout, Some(Duration::from_secs(60)));
        assert_eq!(p.threads, Some(4));
        assert_eq!(p.env["X"], "1");
    }

    #[test]
    fn missing_chdir_names_line_and_flag() {
        let err = read("\nweb: gunicorn --chdir nope app:app\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "Procfile:2: bad value for `--chdir`: directory \"nope\" does not exist"
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_gunicorn_value_names_line_and_flag() {
        let err = read("web: gunicorn --workers lots app:app\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "Procfile:1: bad value for `--workers`: \"lots\" is not a number from 1 to 1024"
        );
    }

    #[test]
    fn malformed_line_names_the_line() {
        let err = read("web: gunicorn app:app\njust some words\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "Procfile:2: expected `name: command`, like `web: gunicorn app:app`"
        );
    }

    #[test]
    fn bad_name_and_empty_command_name_the_line() {
        let err = read("my worker: x\n").unwrap_err().to_string();
        assert!(
            err.starts_with("Procfile:1: \"my worker\" is not a valid process name"),
            "{err}"
        );
        let err = read("web: a:b\nworker:   \n").unwrap_err().to_string();
        assert_eq!(err, "Procfile:2: `worker` has no command after the ':'");
    }

    #[test]
    fn nul_in_a_command_names_the_line() {
        let err = read("web: a\nworker: b\0c\n").unwrap_err().to_string();
        assert_eq!(err, "Procfile:2: the command contains a NUL character");
    }

    #[test]
    fn duplicate_entry_names_both_lines() {
        let err = read("worker: a\n\nworker: b\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "Procfile:3: `worker` is defined twice (first on line 1); keep one"
        );
    }
}
