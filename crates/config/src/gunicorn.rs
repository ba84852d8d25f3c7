//! Reading a Procfile's `web: gunicorn ...` line, so an app that already runs on
//! gunicorn gets capstan's own workers with the same settings.
//!
//! Only a command that is fully understood is converted: `NAME=value` before it,
//! the app target (a factory may get literal arguments) and `-w/--workers`,
//! `--threads`, `-t/--timeout`, `--graceful-timeout`, `--max-requests[-jitter]`,
//! `--chdir`, `-e/--env`, plus flags that are safe to drop, each with a note saying
//! why (`--bind`, logging, TLS...). Anything else (a config file, an async worker
//! class, shell syntax, an unknown flag) runs the command as is, behind capstan's
//! proxy, with a note saying why.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::app::MAX_WORKERS_OR_THREADS;
use crate::gunicorn_flags::{Action, OPTIONS};
use crate::shell_words::{split_words, Word};
use crate::wsgi::WsgiTarget;

/// What a Procfile `web:` command turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Gunicorn {
    /// Not gunicorn at all.
    No,
    /// gunicorn, but not something capstan can take over; the reason, for a note.
    AsCommand(String),
    /// gunicorn serving a WSGI target capstan can run itself.
    Run(Box<GunicornRun>),
}

/// A gunicorn command line capstan can run itself.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct GunicornRun {
    pub target: WsgiTarget,
    pub settings: Settings,
}

/// The settings read from gunicorn's options.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    pub workers: Option<usize>,
    pub threads: Option<usize>,
    pub timeout: Option<Duration>,
    pub graceful_timeout: Option<Duration>,
    pub max_requests: Option<u64>,
    pub max_requests_jitter: Option<u64>,
    pub chdir: Option<String>,
    pub env: Vec<(String, String)>,
    /// "ignored gunicorn flag --bind: capstan listens itself", ...
    pub notes: Vec<String>,
}

/// A flag whose value gunicorn would refuse too, e.g. `--workers many`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadFlag {
    pub flag: String,
    pub problem: String,
}

/// Reads one simple command of a Procfile `web:` line (no `;` or `&&`): maybe
/// `NAME=value` assignments, then `[exec] gunicorn ...`.
pub(crate) fn parse(command: &str) -> Result<Gunicorn, BadFlag> {
    // A quick look first: most commands are not gunicorn at all.
    if !mentions_gunicorn(command) {
        return Ok(Gunicorn::No);
    }
    let Some(words) = split_words(command) else {
        return Ok(Gunicorn::AsCommand(
            "it uses shell syntax (quotes capstan cannot read, '|', redirections)".into(),
        ));
    };
    let mut env = Vec::new();
    for word in words.iter().take_while(|w| assignment(&w.text).is_some()) {
        let Some((name, value)) = assignment(&word.text) else {
            break;
        };
        if word.dynamic {
            return Ok(Gunicorn::AsCommand(format!(
                "its {name}= value comes from a variable"
            )));
        }
        env.push((name.to_owned(), value.to_owned()));
    }
    let words = &words[env.len()..];
    let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    let Some(start) = gunicorn_args_start(&texts) else {
        return Ok(Gunicorn::No);
    };
    let mut parsed = parse_args(&words[start..])?;
    if let Gunicorn::Run(run) = &mut parsed {
        env.append(&mut run.settings.env);
        run.settings.env = env;
    }
    Ok(parsed)
}

/// `NAME=value` as a shell reads an assignment before a command.
fn assignment(word: &str) -> Option<(&str, &str)> {
    let (name, value) = word.split_once('=')?;
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then_some((name, value))
}

/// Whether a simple command runs gunicorn (for notes about lines that cannot
/// be taken over).
pub(crate) fn mentions_gunicorn(command: &str) -> bool {
    command
        .split(|c: char| c.is_whitespace() || ";&|()".contains(c))
        .any(|w| w.rsplit('/').next() == Some("gunicorn") || w == "-mgunicorn")
}

/// What gunicorn reads from its environment, for a taken-over command: the
/// worker count and the notes about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FromEnv {
    pub workers: Option<usize>,
    pub notes: Vec<String>,
}

/// gunicorn's `WEB_CONCURRENCY` (the default `--workers`, which Heroku sets) and
/// `GUNICORN_CMD_ARGS` in the app's environment `env`; `workers` is what the
/// command line gave, and `file` says where a variable was set.
pub(crate) fn from_env(
    env: &BTreeMap<String, String>,
    workers: Option<usize>,
    file: impl Fn(&str) -> PathBuf,
) -> FromEnv {
    let mut notes = Vec::new();
    let mut out = workers;
    if let Some(value) = env.get("WEB_CONCURRENCY") {
        let at = file("WEB_CONCURRENCY");
        let count = value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_WORKERS_OR_THREADS).contains(n));
        match (workers, count) {
            (Some(_), _) => notes.push(format!(
                "ignored WEB_CONCURRENCY={value} in {}: the web: line's --workers comes first, as \
                 in gunicorn",
                at.display()
            )),
            (None, Some(n)) => {
                out = Some(n);
                notes.push(format!(
                    "{n} workers, from WEB_CONCURRENCY in {}, which gunicorn reads too",
                    at.display()
                ));
            }
            (None, None) => notes.push(format!(
                "ignored WEB_CONCURRENCY={value:?} in {}: it is not a number from 1 to \
                 {MAX_WORKERS_OR_THREADS}",
                at.display()
            )),
        }
    }
    if let Some(value) = env.get("GUNICORN_CMD_ARGS") {
        notes.push(format!(
            "ignored GUNICORN_CMD_ARGS={value:?} in {}: capstan's own workers serve the app \
             instead of gunicorn; put these settings on the web: line or in capstan.toml [web]",
            file("GUNICORN_CMD_ARGS").display()
        ));
    }
    FromEnv {
        workers: out,
        notes,
    }
}

/// Index of gunicorn's first argument: after `[exec] gunicorn` or
/// `[exec] python[3[.N]] -m gunicorn` (the program may be a path, like `.venv/bin/gunicorn`).
fn gunicorn_args_start(words: &[&str]) -> Option<usize> {
    let mut i = 0;
    if words.first() == Some(&"exec") {
        i = 1;
    }
    let program = words.get(i)?.rsplit('/').next()?;
    if program == "gunicorn" {
        return Some(i + 1);
    }
    let is_python = program
        .strip_prefix("python")
        .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'));
    match (is_python, words.get(i + 1), words.get(i + 2)) {
        (true, Some(&"-mgunicorn"), _) => Some(i + 2),
        (true, Some(&"-m"), Some(&"gunicorn")) => Some(i + 3),
        _ => None,
    }
}

fn parse_args(args: &[Word]) -> Result<Gunicorn, BadFlag> {
    let mut run = Settings::default();
    let mut positional: Vec<&Word> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let text = arg.text.as_str();
        if text == "--" {
            positional.extend(&args[i..]);
            break;
        }
        if !text.starts_with('-') || text == "-" {
            positional.push(arg);
            continue;
        }
        // `--name=value`, `--name value`, `-w3`, `-w 3`.
        let (name, inline) = if text.starts_with("--") {
            match text.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (text, None),
            }
        } else {
            let split = text.char_indices().nth(2).map_or(text.len(), |(at, _)| at);
            let (n, rest) = text.split_at(split);
            (n, (!rest.is_empty()).then_some(rest))
        };
        let Some(&(long, _, takes_value, action)) = OPTIONS
            .iter()
            .find(|(long, short, ..)| *long == name || (!short.is_empty() && *short == name))
        else {
            return Ok(Gunicorn::AsCommand(format!(
                "it uses the gunicorn option {name}, which capstan does not know"
            )));
        };
        let value = if takes_value {
            match inline {
                Some(v) => Some((v, arg.dynamic)),
                None => match args.get(i) {
                    Some(next) => {
                        i += 1;
                        Some((next.text.as_str(), next.dynamic))
                    }
                    None => {
                        return Err(BadFlag {
                            flag: name.to_owned(),
                            problem: "it needs a value".into(),
                        })
                    }
                },
            }
        } else if inline.is_some() {
            return Ok(Gunicorn::AsCommand(format!(
                "it combines short options in {text}"
            )));
        } else {
            None
        };
        if let Some(outcome) = apply(&mut run, name, long, action, value)? {
            return Ok(outcome);
        }
    }

    match positional.as_slice() {
        [] => Ok(Gunicorn::AsCommand("it names no app module".into())),
        [target] if target.dynamic => Ok(Gunicorn::AsCommand(
            "its app module comes from a variable".into(),
        )),
        [target] => match WsgiTarget::parse(&target.text) {
            Ok(target) => Ok(Gunicorn::Run(Box::new(GunicornRun {
                target,
                settings: run,
            }))),
            Err(_) => Ok(Gunicorn::AsCommand(format!(
                "capstan cannot read the app target {:?}",
                target.text
            ))),
        },
        _ => Ok(Gunicorn::AsCommand(
            "it has more than one positional argument".into(),
        )),
    }
}

/// Applies one option; `Some` ends parsing with that outcome.
fn apply(
    run: &mut Settings,
    name: &str,
    long: &str,
    action: Action,
    value: Option<(&str, bool)>,
) -> Result<Option<Gunicorn>, BadFlag> {
    let bad = |problem: String| BadFlag {
        flag: name.to_owned(),
        problem,
    };
    let (v, dynamic) = value.unwrap_or(("", false));
    let numeric = matches!(
        action,
        Action::Workers
            | Action::Threads
            | Action::Timeout
            | Action::GracefulTimeout
            | Action::MaxRequests
            | Action::MaxRequestsJitter
    );
    if dynamic && numeric {
        run.notes.push(format!(
            "ignored gunicorn flag {long} {v}: its value comes from a variable; set it in \
             capstan.toml [web] instead"
        ));
        return Ok(None);
    }
    if dynamic && matches!(action, Action::Chdir | Action::Env | Action::WorkerClass) {
        return Ok(Some(Gunicorn::AsCommand(format!(
            "its {name} value comes from a variable"
        ))));
    }
    let count = |v: &str| {
        v.parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_WORKERS_OR_THREADS).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "{v:?} is not a number from 1 to {MAX_WORKERS_OR_THREADS}"
                ))
            })
    };
    let whole = |v: &str| {
        v.parse::<u64>()
            .map_err(|_| bad(format!("{v:?} is not a whole number")))
    };
    let seconds = |v: &str| {
        v.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| bad(format!("{v:?} is not a whole number of seconds")))
    };
    match action {
        Action::Workers => run.workers = Some(count(v)?),
        Action::Threads => run.threads = Some(count(v)?),
        Action::Timeout => {
            let t = seconds(v)?;
            if t.is_zero() {
                return Err(bad(
                    "0 (no timeout) is not supported; give a number of seconds, e.g. --timeout 300"
                        .into(),
                ));
            }
            run.timeout = Some(t);
        }
        Action::GracefulTimeout => run.graceful_timeout = Some(seconds(v)?),
        // gunicorn's 0 means "never", as an absent setting does here.
        Action::MaxRequests => run.max_requests = Some(whole(v)?).filter(|&n| n > 0),
        Action::MaxRequestsJitter => run.max_requests_jitter = Some(whole(v)?),
        Action::Chdir => run.chdir = Some(v.to_owned()),
        Action::Env => match v.split_once('=') {
            Some((k, val)) if crate::names::check_env_name(k).is_ok() => {
                run.env.push((k.to_owned(), val.to_owned()))
            }
            _ => return Err(bad(format!("{v:?} is not KEY=VALUE"))),
        },
        Action::WorkerClass => {
            let class = v.rsplit('.').next().unwrap_or(v);
            if !matches!(v, "sync" | "gthread") && !matches!(class, "SyncWorker" | "ThreadWorker") {
                return Ok(Some(Gunicorn::AsCommand(format!(
                    "it uses the {v} worker class; capstan's own workers are WSGI (sync/gthread) only"
                ))));
            }
        }
        Action::Ignore(why) => run
            .notes
            .push(format!("ignored gunicorn flag {long}: {why}")),
        Action::RunAsIs => {
            return Ok(Some(Gunicorn::AsCommand(format!(
                "it uses gunicorn's {long}"
            ))))
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cmd: &str) -> GunicornRun {
        match parse(cmd) {
            Ok(Gunicorn::Run(run)) => *run,
            other => panic!("{cmd}: {other:?}"),
        }
    }

    fn as_command(cmd: &str) -> String {
        match parse(cmd) {
            Ok(Gunicorn::AsCommand(why)) => why,
            other => panic!("{cmd}: {other:?}"),
        }
    }

    #[test]
    fn plain_gunicorn_gives_the_target() {
        let r = run("gunicorn microblog:app");
        assert_eq!(r.target.to_string(), "microblog:app");
        assert!(r.settings.notes.is_empty());
    }

    #[test]
    fn python_dash_m_and_paths_and_exec_are_gunicorn() {
        for cmd in [
            "python -m gunicorn app:app",
            "python3 -m gunicorn app:app",
            "python3.11 -m gunicorn app:app",
            "python -mgunicorn app:app",
            "exec gunicorn app:app",
            ".venv/bin/gunicorn app:app",
        ] {
            assert_eq!(run(cmd).target.to_string(), "app:app", "{cmd}");
        }
    }

    #[test]
    fn other_programs_are_not_gunicorn() {
        for cmd in [
            "node server.js",
            "uvicorn app:app",
            "python app.py",
            "newrelic-admin run-program gunicorn app:app",
        ] {
            assert_eq!(parse(cmd), Ok(Gunicorn::No), "{cmd}");
        }
    }

    #[test]
    fn settings_in_every_spelling() {
        let r = run("gunicorn -w 4 --threads=2 -t30 --graceful-timeout 10 --chdir src -e A=1 --env=B=2 'app:create_app()'");
        assert_eq!(r.settings.workers, Some(4));
        assert_eq!(r.settings.threads, Some(2));
        assert_eq!(r.settings.timeout, Some(Duration::from_secs(30)));
        assert_eq!(r.settings.graceful_timeout, Some(Duration::from_secs(10)));
        assert_eq!(r.settings.chdir.as_deref(), Some("src"));
        assert_eq!(
            r.settings.env,
            vec![("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert!(r.target.factory);
        assert_eq!(
            run("gunicorn --workers=3 app:app").settings.workers,
            Some(3)
        );
        assert_eq!(run("gunicorn -w3 app:app").settings.workers, Some(3));
    }

    #[test]
    fn assignments_before_gunicorn_become_its_environment() {
        let r = run("FOO=bar WEB_X='a b' gunicorn -e C=1 app:app");
        assert_eq!(
            r.settings.env,
            vec![
                ("FOO".into(), "bar".into()),
                ("WEB_X".into(), "a b".into()),
                ("C".into(), "1".into())
            ]
        );
    }

    #[test]
    fn a_factory_with_literal_arguments_is_taken_over() {
        let r = run("gunicorn 'app:create_app(\"prod\")'");
        assert_eq!(r.target.to_string(), "app:create_app(\"prod\")");
    }

    #[test]
    fn bind_and_friends_are_ignored_with_a_note() {
        let r = run("gunicorn --bind 0.0.0.0:$PORT --log-file - --preload -k gthread app:app");
        assert_eq!(
            r.settings.notes,
            [
                "ignored gunicorn flag --bind: capstan listens itself",
                "ignored gunicorn flag --log-file: capstan collects the app's output",
                "ignored gunicorn flag --preload: each worker imports the app itself, which changes nothing in what it serves",
            ]
        );
        assert_eq!(r.target.to_string(), "app:app");
    }

    #[test]
    fn every_flag_capstan_drops_gets_one_note_saying_why() {
        for (long, short, takes_value, action) in OPTIONS {
            let Action::Ignore(why) = action else {
                continue;
            };
            for name in [*long, *short].into_iter().filter(|n| !n.is_empty()) {
                let value = if *takes_value { " x" } else { "" };
                let r = run(&format!("gunicorn {name}{value} app:app"));
                assert_eq!(
                    r.settings.notes,
                    [format!("ignored gunicorn flag {long}: {why}")],
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn the_shapes_from_heroku_and_dokku_docs_are_taken_over() {
        let r = run("gunicorn gettingstarted.wsgi --log-file -");
        assert_eq!(r.target.to_string(), "gettingstarted.wsgi:application");
        assert_eq!(
            r.settings.notes,
            ["ignored gunicorn flag --log-file: capstan collects the app's output"]
        );
        let r = run("gunicorn -w 4 -b 0.0.0.0:$PORT app:app");
        assert_eq!(r.settings.workers, Some(4));
        assert_eq!(
            r.settings.notes,
            ["ignored gunicorn flag --bind: capstan listens itself"]
        );
        assert_eq!(run("gunicorn app:app --preload").settings.notes.len(), 1);
        assert_eq!(run("exec gunicorn app:app").target.to_string(), "app:app");
    }

    #[test]
    fn web_concurrency_and_gunicorn_cmd_args_from_the_environment_are_not_lost() {
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let dotenv = |_: &str| PathBuf::from(".env");
        let r = from_env(&env(&[("WEB_CONCURRENCY", "3")]), None, dotenv);
        assert_eq!(r.workers, Some(3));
        assert_eq!(
            r.notes,
            ["3 workers, from WEB_CONCURRENCY in .env, which gunicorn reads too"]
        );
        let r = from_env(&env(&[("WEB_CONCURRENCY", "3")]), Some(2), dotenv);
        assert_eq!(r.workers, Some(2));
        assert!(r.notes[0].starts_with(
            "ignored WEB_CONCURRENCY=3 in .env: the web: line's --workers comes first"
        ));
        let r = from_env(&env(&[("WEB_CONCURRENCY", "lots")]), None, dotenv);
        assert_eq!(r.workers, None);
        assert!(r.notes[0].contains("not a number"), "{:?}", r.notes);
        let r = from_env(&env(&[("GUNICORN_CMD_ARGS", "--timeout 90")]), None, dotenv);
        assert_eq!(
            r.notes,
            ["ignored GUNICORN_CMD_ARGS=\"--timeout 90\" in .env: capstan's own workers serve \
              the app instead of gunicorn; put these settings on the web: line or in capstan.toml [web]"]
        );
        assert_eq!(
            from_env(&env(&[]), None, dotenv),
            FromEnv {
                workers: None,
                notes: vec![]
            }
        );
    }

    #[test]
    fn variable_worker_counts_are_noted_not_errors() {
        let r = run("gunicorn -w $WEB_CONCURRENCY app:app");
        assert_eq!(r.settings.workers, None);
        assert!(
            r.settings.notes[0].starts_with("ignored gunicorn flag --workers $WEB_CONCURRENCY"),
            "{:?}",
            r.settings.notes
        );
    }

    #[test]
    fn what_capstan_cannot_take_over_runs_as_is() {
        assert!(as_command("gunicorn -c gunicorn.conf.py").contains("--config"));
        assert!(
            as_command("gunicorn -k uvicorn.workers.UvicornWorker app:app")
                .contains("worker class")
        );
        assert!(as_command("gunicorn --frobnicate app:app").contains("--frobnicate"));
        assert!(as_command("gunicorn app:app | tee log").contains("shell syntax"));
        assert!(as_command("FOO=$BAR gunicorn app:app").contains("FOO= value"));
        assert!(as_command("gunicorn 'app:create_app(os.environ)'").contains("app target"));
        assert!(as_command("gunicorn a:app b:app").contains("more than one"));
        assert!(as_command("gunicorn $APP").contains("variable"));
        assert!(as_command("gunicorn -Dw3 app:app").contains("combines"));
    }

    #[test]
    fn bad_values_are_errors_naming_the_flag() {
        let e = parse("gunicorn -w many app:app").unwrap_err();
        assert_eq!(e.flag, "-w");
        assert!(e.problem.contains("\"many\""));
        assert_eq!(
            parse("gunicorn --threads 0 app:app").unwrap_err().flag,
            "--threads"
        );
        assert!(parse("gunicorn -t 0 app:app")
            .unwrap_err()
            .problem
            .contains("no timeout"));
        assert_eq!(
            parse("gunicorn app:app --workers").unwrap_err().problem,
            "it needs a value"
        );
        assert_eq!(parse("gunicorn -e nope app:app").unwrap_err().flag, "-e");
    }
}
