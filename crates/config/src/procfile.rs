//! Procfiles, as Heroku, Dokku and Piku read them: `name: command` per line.
//!
//! `web:` is the web process (gunicorn commands are taken over by capstan's own
//! workers, see [`crate::gunicorn`]; in `web: flask db upgrade; gunicorn app:app`
//! the steps before gunicorn become release commands, after the `release:` line's),
//! `release:` a release command, and every other entry a supervised background
//! process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::app::{Partial, Process, Web};
use crate::error::ConfigError;
use crate::gunicorn::{self, Gunicorn, GunicornRun};
use crate::names::is_name;
use crate::shell_words::{split_steps, split_words};
use crate::static_routes::resolve_dir_inside;

const FILE: &str = "Procfile";

/// Reads a Procfile. `root` is the canonical app directory.
pub(crate) fn read_procfile(root: &Path, text: &str) -> Result<Partial, ConfigError> {
    let mut p = Partial::default();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    // `release:` runs first, then the steps taken out of the `web:` line.
    let mut release_line = Vec::new();
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
            "release" => release_line.push(command.to_owned()),
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
    release_line.append(&mut p.release);
    p.release = release_line;
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
        crate::names::check_not_a_log_name(name).map_err(|e| syntax(line, e))?;
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

/// A `web:` line: gunicorn is taken over; leading steps (`a; b && gunicorn ...`)
/// become release commands, a leading `cd DIR` the workers' folder. Anything else
/// runs as is, behind capstan's proxy.
fn read_web(root: &Path, line: usize, command: &str, p: &mut Partial) -> Result<(), ConfigError> {
    let bad = |key: &str, problem: String| ConfigError::BadValue {
        file: PathBuf::from(FILE),
        line,
        key: key.to_owned(),
        problem,
    };
    let as_command = |p: &mut Partial, why: Option<String>| {
        if let Some(why) = why {
            p.notes.push(format!(
                "{FILE}:{line}: running the web: command as is, behind capstan's proxy, because \
                 {why}; it must listen on 127.0.0.1:$PORT"
            ));
        }
        p.web = Some(Web::Command {
            command: command.to_owned(),
        });
    };
    let steps = match split_steps(command) {
        Ok(steps) => steps,
        Err(syntax) => {
            let why = gunicorn::mentions_gunicorn(command)
                .then(|| format!("it uses {syntax}, which capstan does not take apart"));
            as_command(p, why);
            return Ok(());
        }
    };
    let (last, before) = steps
        .split_last()
        .expect("split_steps gives at least one step");
    let parsed = gunicorn::parse(last).map_err(|e| bad(&e.flag, e.problem))?;
    let run = match parsed {
        Gunicorn::No => {
            as_command(p, None);
            return Ok(());
        }
        Gunicorn::AsCommand(why) => {
            as_command(p, Some(why));
            return Ok(());
        }
        Gunicorn::Run(run) => *run,
    };
    // The steps before gunicorn: `cd DIR` moves the rest, others are release commands.
    let mut cd: Option<String> = None;
    let mut release = Vec::new();
    for step in before {
        match cd_target(step) {
            Some(dir) => {
                cd = Some(match cd {
                    Some(prev) => format!("{prev}/{dir}"),
                    None => dir,
                })
            }
            None => release.push(match &cd {
                Some(dir) => format!("cd {dir} && {step}"),
                None => (*step).to_owned(),
            }),
        }
    }
    let GunicornRun {
        target,
        settings: run,
    } = run;
    if !before.is_empty() {
        let mut done = Vec::new();
        if !release.is_empty() {
            done.push(format!(
                "{} became release commands, run in order before the web processes start",
                release
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(dir) = &cd {
            done.push(format!("the workers start in {dir}/"));
        }
        p.notes.push(format!(
            "{FILE}:{line}: the web: line runs steps before gunicorn: {}; capstan's own workers \
             serve {target} in place of `{last}`",
            done.join("; ")
        ));
    }
    p.release.extend(release);
    p.web = Some(Web::Wsgi(target));
    p.workers = run.workers;
    p.threads = run.threads;
    p.timeout = run.timeout;
    p.graceful_timeout = run.graceful_timeout;
    p.max_requests = run.max_requests;
    p.max_requests_jitter = run.max_requests_jitter;
    let dir = match (cd, run.chdir) {
        (Some(cd), Some(chdir)) if !chdir.starts_with('/') => Some(format!("{cd}/{chdir}")),
        (_, Some(chdir)) => Some(chdir),
        (cd, None) => cd,
    };
    if let Some(dir) = dir {
        p.workdir = Some(resolve_dir_inside(root, &dir).map_err(|e| bad("--chdir", e))?);
    }
    p.env.extend(run.env);
    p.notes
        .extend(run.notes.into_iter().map(|n| format!("{FILE}:{line}: {n}")));
    Ok(())
}

/// `DIR` from a `cd DIR` step with one plain word.
fn cd_target(step: &str) -> Option<String> {
    let words = split_words(step)?;
    match words.as_slice() {
        [cd, dir] if cd.text == "cd" && !dir.dynamic => Some(dir.text.clone()),
        _ => None,
    }
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
    fn steps_before_gunicorn_become_release_commands_after_the_release_line() {
        let p = read(
            "web: flask db upgrade; flask translate compile; gunicorn microblog:app -w 4\n\
             release: python manage.py check\n",
        )
        .unwrap();
        assert_eq!(p.web, Some(Web::Wsgi("microblog:app".parse().unwrap())));
        assert_eq!(p.workers, Some(4));
        assert_eq!(
            p.release,
            [
                "python manage.py check",
                "flask db upgrade",
                "flask translate compile"
            ]
        );
        assert_eq!(
            p.notes,
            [
                "Procfile:1: the web: line runs steps before gunicorn: `flask db upgrade`, \
              `flask translate compile` became release commands, run in order before the web \
              processes start; capstan's own workers serve microblog:app in place of \
              `gunicorn microblog:app -w 4`"
            ]
        );
    }

    #[test]
    fn the_procfile_shapes_of_heroku_and_dokku_docs() {
        let (_dir, root) = root();
        fs::create_dir(root.join("src")).unwrap();
        let web = |text: &str| read_procfile(&root, text).unwrap();

        let p = web("web: python manage.py migrate && gunicorn mysite.wsgi\n");
        assert_eq!(
            p.web,
            Some(Web::Wsgi("mysite.wsgi:application".parse().unwrap()))
        );
        assert_eq!(p.release, ["python manage.py migrate"]);

        let p = web("web: cd src && gunicorn app:app\n");
        assert_eq!(p.web, Some(Web::Wsgi("app:app".parse().unwrap())));
        assert_eq!(p.workdir, Some(root.join("src")));
        assert!(p.release.is_empty());
        assert_eq!(
            p.notes,
            [
                "Procfile:1: the web: line runs steps before gunicorn: the workers start in src/; \
              capstan's own workers serve app:app in place of `gunicorn app:app`"
            ]
        );

        let p = web("web: cd src && flask db upgrade && gunicorn app:app\n");
        assert_eq!(p.release, ["cd src && flask db upgrade"]);
        assert_eq!(p.workdir, Some(root.join("src")));

        let p = web("web: FOO=bar gunicorn app:app\n");
        assert_eq!(p.env["FOO"], "bar");
        assert!(p.notes.is_empty());

        let p = web("web: exec gunicorn -w 4 -b 0.0.0.0:$PORT app:app --preload\n");
        assert_eq!(p.workers, Some(4));
        assert_eq!(p.notes.len(), 2, "{:?}", p.notes);

        let p = web(
            "web: gunicorn gettingstarted.wsgi --log-file -\nrelease: python manage.py migrate\n",
        );
        assert_eq!(
            p.web,
            Some(Web::Wsgi(
                "gettingstarted.wsgi:application".parse().unwrap()
            ))
        );
        assert_eq!(p.release, ["python manage.py migrate"]);

        let p = web("web: bin/start-something\n");
        assert_eq!(
            p.web,
            Some(Web::Command {
                command: "bin/start-something".into()
            })
        );
        assert!(p.notes.is_empty());

        // Steps before something that is not gunicorn: the shell runs the line.
        let p = web("web: python manage.py migrate && python manage.py runserver $PORT\n");
        assert!(matches!(p.web, Some(Web::Command { .. })));
        assert!(p.release.is_empty() && p.notes.is_empty());
    }

    #[test]
    fn shell_syntax_around_gunicorn_runs_as_is_with_the_reason() {
        for (text, why) in [
            ("web: flask db upgrade || true; gunicorn app:app\n", "`||`"),
            ("web: gunicorn app:app | tee log\n", "a pipe"),
            ("web: gunicorn app:app > log\n", "a redirection"),
            ("web: gunicorn $(cat target)\n", "`$(...)`"),
            ("web: worker & gunicorn app:app\n", "`&`"),
        ] {
            let p = read(text).unwrap();
            assert_eq!(
                p.web,
                Some(Web::Command {
                    command: text[5..text.len() - 1].into()
                }),
                "{text}"
            );
            assert!(p.notes[0].starts_with("Procfile:1: running the web: command as is"));
            assert!(p.notes[0].contains(why), "{text}: {:?}", p.notes);
            assert!(p.notes[0].ends_with("it must listen on 127.0.0.1:$PORT"));
        }
        // Not gunicorn: nothing to say.
        assert!(read("web: node s.js > log\n").unwrap().notes.is_empty());
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
