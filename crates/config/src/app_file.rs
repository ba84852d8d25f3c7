//! `capstan.toml` and the `[tool.capstan]` table of `pyproject.toml` (same schema).
//!
//! Every key is checked: an unknown key or a bad value is an error naming the file,
//! the line and the key. Keys that are absent are left to discovery and defaults.

use std::collections::BTreeMap;
use std::path::Path;

use crate::app::{Partial, Process, Web, MAX_WORKERS_OR_THREADS};
use crate::cron::read_cron;
use crate::error::ConfigError;
use crate::http::read_http;
use crate::names::{check_env_name, check_process_name, normalize_domain, AppName};
use crate::static_routes::read_static;
use crate::tls::read_tls;
use crate::toml_tree::{Doc, Field, Table, Value};
use crate::wsgi::WsgiTarget;

const TOP_KEYS: &[&str] = &[
    "name",
    "domains",
    "python",
    "venv",
    "web",
    "static",
    "build",
    "release",
    "processes",
    "cron",
    "health",
    "http",
    "tls",
    "env",
];
const WEB_KEYS: &[&str] = &[
    "wsgi",
    "command",
    "workers",
    "threads",
    "timeout",
    "graceful_timeout",
    "max_requests",
    "max_requests_jitter",
    "max_rss",
    "max_queue",
    "queue_timeout",
    "pipeline",
];
const COMMANDS_KEYS: &[&str] = &["commands"];
const PROCESS_KEYS: &[&str] = &["command"];
const HEALTH_KEYS: &[&str] = &["path", "timeout", "retries"];

/// Reads `capstan.toml`. `root` is the canonical app directory.
pub(crate) fn read_capstan_toml(root: &Path, text: &str) -> Result<Partial, ConfigError> {
    let doc = Doc {
        file: Path::new("capstan.toml"),
        text,
    };
    let item = doc.parse()?;
    read_settings(root, &doc.root(&item))
}

/// What capstan uses from `pyproject.toml`.
#[derive(Debug, Default)]
pub(crate) struct Pyproject {
    /// The `[tool.capstan]` table, if there is one.
    pub capstan: Option<Partial>,
    /// Whether there is a `[tool.capstan]` table (read or not).
    pub has_tool_capstan: bool,
    /// `[project] dependencies`, if listed.
    pub dependencies: Option<Vec<String>>,
}

/// Reads `pyproject.toml`: `[tool.capstan]` strictly, `[project] dependencies`, and
/// nothing else. `[tool.capstan]` is only read when `read_tool_capstan` (there is no
/// capstan.toml to take precedence).
pub(crate) fn read_pyproject(
    root: &Path,
    text: &str,
    read_tool_capstan: bool,
) -> Result<Pyproject, ConfigError> {
    let doc = Doc {
        file: Path::new("pyproject.toml"),
        text,
    };
    let item = doc.parse()?;
    let top = doc.root(&item);
    let mut out = Pyproject::default();

    // Other tools' tables may be anything; only look further if `tool` is a table.
    if let Some(tool) = top.get("tool").and_then(|f| f.table().ok()) {
        if let Some(capstan) = tool.get("capstan") {
            out.has_tool_capstan = true;
            if read_tool_capstan {
                out.capstan = Some(read_settings(root, &capstan.table()?)?);
            }
        }
    }
    if let Some(project) = top.get("project").and_then(|f| f.table().ok()) {
        if let Some(deps) = project.get("dependencies") {
            let list = deps
                .array()?
                .iter()
                .map(|d| d.nonempty_str().map(str::to_owned))
                .collect::<Result<Vec<_>, _>>()?;
            out.dependencies = Some(list);
        }
    }
    Ok(out)
}

/// The shared schema, for the top level of capstan.toml or `[tool.capstan]`.
fn read_settings(root: &Path, table: &Table<'_>) -> Result<Partial, ConfigError> {
    table.check_keys(TOP_KEYS)?;
    let mut p = Partial::default();
    for f in table.fields() {
        match f.key {
            "name" => p.name = Some(AppName::new(f.str()?).map_err(|e| f.bad(e))?),
            "domains" => p.domains = read_domains(&f)?,
            "python" => {
                let python = f.nonempty_str()?;
                if python.chars().any(char::is_whitespace) {
                    return Err(f.bad(format_args!(
                        "{python:?} has a space; name one interpreter, like \"python3.11\""
                    )));
                }
                p.python = Some(python.to_owned());
            }
            "venv" => p.venv = Some(root.join(f.nonempty_str()?)),
            "web" => read_web(&f.table()?, &mut p)?,
            "static" => {
                let (routes, keep_previous) = read_static(root, &f.table()?)?;
                p.static_routes = Some(routes);
                p.keep_previous = keep_previous;
            }
            "build" => p.build = read_commands(&f.table()?)?,
            "release" => p.release = read_commands(&f.table()?)?,
            "processes" => p.processes = read_processes(&f.table()?)?,
            "cron" => p.cron = read_cron(&f.table()?)?,
            "health" => read_health(&f.table()?, &mut p)?,
            "http" => p.http = read_http(&f.table()?)?,
            "tls" => p.tls = read_tls(root, &f.table()?)?,
            "env" => p.env = read_env(&f.table()?)?,
            _ => unreachable!("check_keys let through {}", f.key),
        }
    }
    Ok(p)
}

fn read_domains(f: &Field<'_>) -> Result<Vec<String>, ConfigError> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut domains = Vec::new();
    for d in f.array()? {
        let domain = normalize_domain(d.str()?).map_err(|e| d.bad(e))?;
        if let Some(&first_line) = seen.get(&domain) {
            return Err(ConfigError::Duplicate {
                file: d.file().to_path_buf(),
                line: d.line(),
                key: domain,
                first_line,
            });
        }
        seen.insert(domain.clone(), d.line());
        domains.push(domain);
    }
    Ok(domains)
}

fn read_web(web: &Table<'_>, p: &mut Partial) -> Result<(), ConfigError> {
    web.check_keys(WEB_KEYS)?;
    let max = MAX_WORKERS_OR_THREADS as i64;
    for f in web.fields() {
        match f.key {
            "wsgi" => {
                let target = WsgiTarget::parse(f.str()?).map_err(|e| f.bad(e))?;
                p.web = Some(Web::Wsgi(target));
            }
            "command" => {
                let command = f.nonempty_str()?.to_owned();
                if web.get("wsgi").is_some() {
                    return Err(f.bad(format_args!(
                        "{} sets both `wsgi` and `command`; keep one: `wsgi` for a Python WSGI \
                         app, `command` for any other server listening on $PORT",
                        web.name()
                    )));
                }
                p.web = Some(Web::Command { command });
            }
            "workers" => p.workers = Some(f.int_in(1..=max)? as usize),
            "threads" => p.threads = Some(f.int_in(1..=max)? as usize),
            "timeout" => {
                let timeout = f.duration()?;
                if timeout.is_zero() {
                    return Err(f.bad("must be more than 0 (e.g. \"30s\")"));
                }
                p.timeout = Some(timeout);
            }
            "graceful_timeout" => p.graceful_timeout = Some(f.duration()?),
            "max_requests" => p.max_requests = Some(f.int_in(1..=i64::MAX)? as u64),
            "max_requests_jitter" => p.max_requests_jitter = Some(f.int_in(0..=i64::MAX)? as u64),
            "max_rss" => p.max_rss = Some(f.size()?),
            "max_queue" => p.max_queue = Some(f.int_in(0..=1_000_000)? as usize),
            "queue_timeout" => p.queue_timeout = Some(f.duration()?),
            "pipeline" => p.pipeline = Some(f.int_in(0..=1024)? as usize),
            _ => unreachable!(),
        }
    }
    Ok(())
}

/// `[build]` or `[release]`: `commands = ["...", ...]`, each a shell line.
fn read_commands(table: &Table<'_>) -> Result<Vec<String>, ConfigError> {
    table.check_keys(COMMANDS_KEYS)?;
    match table.get("commands") {
        None => Ok(Vec::new()),
        Some(f) => f
            .array()?
            .iter()
            .map(|c| c.nonempty_str().map(str::to_owned))
            .collect(),
    }
}

fn read_processes(table: &Table<'_>) -> Result<BTreeMap<String, Process>, ConfigError> {
    let mut processes = BTreeMap::new();
    for f in table.fields() {
        check_process_name(f.key).map_err(|e| f.bad(e))?;
        let t = f.table()?;
        t.check_keys(PROCESS_KEYS)?;
        let command = t.get("command").ok_or_else(|| t.missing("command"))?;
        let command = command.nonempty_str()?.to_owned();
        processes.insert(f.key.to_owned(), Process { command });
    }
    Ok(processes)
}

fn read_health(table: &Table<'_>, p: &mut Partial) -> Result<(), ConfigError> {
    table.check_keys(HEALTH_KEYS)?;
    if let Some(f) = table.get("timeout") {
        let timeout = f.duration()?;
        if timeout.is_zero() {
            return Err(f.bad("must be more than 0s, like \"10s\""));
        }
        p.health_timeout = Some(timeout);
    }
    if let Some(f) = table.get("retries") {
        p.health_retries = Some(f.int_in(0..=100)? as u32);
    }
    let Some(f) = table.get("path") else {
        return Ok(());
    };
    let path = f.str()?;
    // SECURITY: the path goes into a request line; whitespace or control characters
    // would split or corrupt it.
    if !path.starts_with('/')
        || path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(f.bad(format_args!(
            "{path:?} is not a URL path: it must start with '/' and have no spaces or '#', \
             like \"/healthz\""
        )));
    }
    p.health_path = Some(path.to_owned());
    Ok(())
}

fn read_env(table: &Table<'_>) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut env = BTreeMap::new();
    for f in table.fields() {
        check_env_name(f.key).map_err(|e| f.bad(e))?;
        let value = match &f.item.value {
            Value::String(_) => f.str()?.to_owned(),
            Value::Integer(n) => n.to_string(),
            Value::Boolean(b) => b.to_string(),
            other => {
                return Err(f.bad(format_args!(
                    "expected a string, integer or boolean, found {}; put it in quotes",
                    other.kind()
                )))
            }
        };
        // SECURITY: a NUL cannot be passed in an environment and would be cut silently.
        if value.contains('\0') {
            return Err(f.bad("must not contain a NUL character"));
        }
        env.insert(f.key.to_owned(), value);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{HttpSettings, DEFAULT_STATIC_MAX_AGE};
    use std::fs;
    use std::path::PathBuf;
    use std::time::Duration;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("app/static")).unwrap();
        fs::create_dir_all(root.join("media")).unwrap();
        (dir, root)
    }

    fn read(text: &str) -> Result<Partial, ConfigError> {
        let (_dir, root) = root();
        read_capstan_toml(&root, text)
    }

    fn err(text: &str) -> String {
        read(text).unwrap_err().to_string()
    }

    #[test]
    fn the_design_example_reads_completely() {
        let (_dir, root) = root();
        let p = read_capstan_toml(
            &root,
            r#"
name = "microblog"
domains = ["Blog.Example.com"]
python = "python3.11"
venv = ".venv"
[web]
wsgi = "microblog:app"
workers = 4
threads = 2
timeout = "45s"
graceful_timeout = 10
pipeline = 0
[static]
"/static/" = "app/static"
"/media" = { dir = "media", max_age = "1h" }
[release]
commands = ["flask db upgrade", "flask translate compile"]
[processes.tasks]
command = "rq worker microblog-tasks"
[cron.cleanup]
schedule = "*/5 * * * *"
command = "flask cleanup"
[health]
path = "/healthz"
timeout = "5s"
retries = 2
[http]
trusted_proxies = ["10.0.0.0/8", "192.168.1.10", "10.1.2.3/16"]
max_body_size = "10MB"
access_log = false
compression = false
hsts = false
[env]
FLASK_APP = "microblog.py"
PORTS = 3
DEBUG = false
"#,
        )
        .unwrap();
        assert_eq!(p.name.unwrap().as_str(), "microblog");
        assert_eq!(p.domains, ["blog.example.com"]);
        assert_eq!(p.python.as_deref(), Some("python3.11"));
        assert_eq!(p.venv, Some(root.join(".venv")));
        assert_eq!(p.web, Some(Web::Wsgi("microblog:app".parse().unwrap())));
        assert_eq!((p.workers, p.threads), (Some(4), Some(2)));
        assert_eq!(p.pipeline, Some(0));
        assert_eq!(p.timeout, Some(Duration::from_secs(45)));
        assert_eq!(p.graceful_timeout, Some(Duration::from_secs(10)));
        let routes = p.static_routes.unwrap();
        assert_eq!(routes[0].url_prefix, "/static");
        assert_eq!(routes[0].dir, root.join("app/static"));
        assert_eq!(routes[0].max_age, DEFAULT_STATIC_MAX_AGE);
        assert_eq!(
            (routes[1].url_prefix.as_str(), routes[1].max_age),
            ("/media", Duration::from_secs(3600))
        );
        assert_eq!(p.release, ["flask db upgrade", "flask translate compile"]);
        assert_eq!(p.processes["tasks"].command, "rq worker microblog-tasks");
        assert_eq!(p.cron["cleanup"].schedule.as_str(), "*/5 * * * *");
        assert_eq!(p.health_path.as_deref(), Some("/healthz"));
        assert_eq!(p.health_timeout, Some(Duration::from_secs(5)));
        assert_eq!(p.health_retries, Some(2));
        let nets: Vec<String> = p
            .http
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.168.1.10/32", "10.1.0.0/16"]);
        assert_eq!(p.http.max_body_size, 10_000_000);
        assert!(!p.http.access_log && !p.http.compression && !p.http.hsts);
        assert_eq!(p.env["FLASK_APP"], "microblog.py");
        assert_eq!(p.env["PORTS"], "3");
        assert_eq!(p.env["DEBUG"], "false");
    }

    #[test]
    fn an_empty_file_leaves_everything_to_defaults() {
        let p = read("").unwrap();
        assert!(p.web.is_none() && p.static_routes.is_none() && p.name.is_none());
        assert_eq!(p.http, HttpSettings::default());
    }

    #[test]
    fn command_web_and_dotted_keys() {
        let p = read("web.command = \"node server.js\"\n").unwrap();
        assert_eq!(
            p.web,
            Some(Web::Command {
                command: "node server.js".into()
            })
        );
    }

    #[test]
    fn the_brief_s_example_messages() {
        assert_eq!(
            err("[web]\nwsgi = \"a:app\"\n\n\n\n\nwrokers = 4\n"),
            "capstan.toml:7: unknown key `wrokers` in [web]; expected one of: wsgi, command, \
             workers, threads, timeout, graceful_timeout, max_requests, max_requests_jitter, \
             max_rss, max_queue, queue_timeout, pipeline"
        );
        assert_eq!(
            err("[web]\n\n\n\n\n\n\n\ntimeout = \"30 parsecs\"\n"),
            "capstan.toml:9: bad value for `timeout`: \"30 parsecs\" is not a duration (use e.g. \"30s\", \"5m\")"
        );
    }

    /// Every error path of the schema, as (file, message). Each message names the
    /// file, the line and the key.
    #[test]
    fn every_mistake_names_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            ("nmae = \"x\"\n", "capstan.toml:1: unknown key `nmae` in capstan.toml; expected one of: name, domains,"),
            ("\nname = \"My App\"\n", "capstan.toml:2: bad value for `name`: \"My App\" is not a valid app name"),
            ("name = 3\n", "capstan.toml:1: bad value for `name`: expected a string, found an integer"),
            ("domains = [\n  \"a.com\",\n  \"https://b.com\",\n]\n", "capstan.toml:3: bad value for `domains`: \"https://b.com\" is not a domain: remove the scheme"),
            ("domains = \"a.com\"\n", "capstan.toml:1: bad value for `domains`: expected an array, found a string"),
            ("domains = [\"a.com\",\n\"A.com\"]\n", "capstan.toml:2: `a.com` is defined twice (first on line 1); keep one"),
            ("python = \"python 3\"\n", "capstan.toml:1: bad value for `python`: \"python 3\" has a space"),
            ("venv = \"\"\n", "capstan.toml:1: bad value for `venv`: must not be empty"),
            ("web = 1\n", "capstan.toml:1: bad value for `web`: expected a table, found an integer"),
            ("[web]\nwsgi = \"app.py\"\n", "capstan.toml:2: bad value for `wsgi`: \"app.py\" is not a WSGI target"),
            ("[web]\nwsgi = \"a:b\"\ncommand = \"x\"\n", "capstan.toml:3: bad value for `command`: [web] sets both `wsgi` and `command`"),
            ("[web]\ncommand = \"\"\n", "capstan.toml:2: bad value for `command`: must not be empty"),
            ("[web]\ncommand = \"a\\u0000b\"\n", "capstan.toml:2: bad value for `command`: must not contain a NUL character"),
            ("[web]\nworkers = 0\n", "capstan.toml:2: bad value for `workers`: 0 is out of range (use 1 to 1024)"),
            ("[web]\npipeline = 2000\n", "capstan.toml:2: bad value for `pipeline`: 2000 is out of range (use 0 to 1024)"),
            ("[web]\nthreads = \"4\"\n", "capstan.toml:2: bad value for `threads`: expected an integer, found a string"),
            ("[web]\ntimeout = 0\n", "capstan.toml:2: bad value for `timeout`: must be more than 0"),
            ("[web]\ngraceful_timeout = -1\n", "capstan.toml:2: bad value for `graceful_timeout`: -1 is negative"),
            ("[web]\ngraceful_timeout = 1.5\n", "capstan.toml:2: bad value for `graceful_timeout`: expected a duration like \"30s\" or \"5m\", found a float"),
            ("[static]\nstatic = \"app/static\"\n", "capstan.toml:2: bad value for `static`: \"static\" is not a URL prefix: it must start with '/'"),
            ("[static]\n\"/s\" = \"nope\"\n", "capstan.toml:2: bad value for `/s`: directory \"nope\" does not exist in the app directory"),
            ("[static]\n\"/s\" = \"../..\"\n", "capstan.toml:2: bad value for `/s`: directory \"../..\" is outside the app directory"),
            ("[static]\n\"/s\" = { dir = \"nope\" }\n", "capstan.toml:2: bad value for `dir`: directory \"nope\" does not exist"),
            ("[static]\n\"/s\" = 5\n", "capstan.toml:2: bad value for `/s`: expected a directory like \"app/static\" or a table"),
            ("[static]\n\"/s\" = { dir = \"media\", maxage = \"1h\" }\n", "capstan.toml:2: unknown key `maxage` in [static.\"/s\"]; expected one of: dir, max_age"),
            ("[static.\"/s\"]\nmax_age = \"1h\"\n", "capstan.toml:1: missing key `dir` in [static.\"/s\"]"),
            ("[static]\n\"/s\" = { dir = \"media\", max_age = \"1 hour\" }\n", "capstan.toml:2: bad value for `max_age`: \"1 hour\" is not a duration"),
            ("[static]\n\"/m\" = \"media\"\n\"/m/\" = \"media\"\n", "capstan.toml:3: `/m` is defined twice (first on line 2); keep one"),
            ("[release]\ncommand = \"x\"\n", "capstan.toml:2: unknown key `command` in [release]; expected one of: commands"),
            ("[release]\ncommands = \"x\"\n", "capstan.toml:2: bad value for `commands`: expected an array, found a string"),
            ("[release]\ncommands = [\"a\", \"\"]\n", "capstan.toml:2: bad value for `commands`: must not be empty"),
            ("[processes.web]\ncommand = \"x\"\n", "capstan.toml:1: bad value for `web`: `web` is reserved"),
            ("[processes.\"a/b\"]\ncommand = \"x\"\n", "capstan.toml:1: bad value for `a/b`: \"a/b\" is not a valid process name"),
            ("[processes.tasks]\ncmd = \"x\"\n", "capstan.toml:2: unknown key `cmd` in [processes.tasks]; expected one of: command"),
            ("\n[processes.tasks]\n", "capstan.toml:2: missing key `command` in [processes.tasks]"),
            ("[processes]\ntasks = \"rq worker\"\n", "capstan.toml:2: bad value for `tasks`: expected a table, found a string"),
            ("[health]\npath = \"healthz\"\n", "capstan.toml:2: bad value for `path`: \"healthz\" is not a URL path"),
            ("[health]\nurl = \"/\"\n", "capstan.toml:2: unknown key `url` in [health]; expected one of: path, timeout, retries"),
            ("[health]\ntimeout = \"0s\"\n", "capstan.toml:2: bad value for `timeout`: must be more than 0s"),
            ("[health]\ntimeout = \"soon\"\n", "capstan.toml:2: bad value for `timeout`: \"soon\" is not a duration"),
            ("[health]\nretries = -1\n", "capstan.toml:2: bad value for `retries`:"),
            ("[env]\n\"MY-VAR\" = \"x\"\n", "capstan.toml:2: bad value for `MY-VAR`: \"MY-VAR\" is not a valid environment variable name"),
            ("[env]\nRATIO = 1.5\n", "capstan.toml:2: bad value for `RATIO`: expected a string, integer or boolean, found a float; put it in quotes"),
            ("[env]\nA = \"x\\u0000y\"\n", "capstan.toml:2: bad value for `A`: must not contain a NUL character"),
            ("name = \"a\"\n[web\n", "capstan.toml:2: invalid TOML:"),
        ];
        for (text, want) in cases {
            let got = err(text);
            assert!(
                got.starts_with(want),
                "for {text:?}\n got: {got}\nwant: {want}"
            );
        }
    }

    #[test]
    fn build_commands_and_keep_previous_are_read() {
        let p = read(
            "[build]\ncommands = [\"pybabel compile -d app/translations\", \"make css\"]\n\
             [static]\nkeep_previous = \"2s\"\n\"/static\" = \"app/static\"\n",
        )
        .unwrap();
        assert_eq!(p.build, ["pybabel compile -d app/translations", "make css"]);
        assert_eq!(p.keep_previous, Some(Duration::from_secs(2)));
        assert_eq!(p.static_routes.unwrap().len(), 1);
        let p = read("[static]\n\"/static\" = \"app/static\"\n").unwrap();
        assert_eq!((p.keep_previous, p.build.len()), (None, 0));
        let (_dir, root) = root();
        let text = "[tool.capstan.build]\ncommands = [\"make\"]\n";
        let p = read_pyproject(&root, text, true).unwrap().capstan.unwrap();
        assert_eq!(p.build, ["make"]);
    }

    #[test]
    fn build_and_keep_previous_mistakes_name_file_line_and_key() {
        let cases = [
            (
                "[build]\ncommand = \"x\"\n",
                "capstan.toml:2: unknown key `command` in [build]; expected one of: commands",
            ),
            (
                "[build]\ncommands = \"x\"\n",
                "capstan.toml:2: bad value for `commands`: expected an array, found a string",
            ),
            (
                "[build]\ncommands = [1]\n",
                "capstan.toml:2: bad value for `commands`: expected a string, found an integer",
            ),
            (
                "[build]\ncommands = [\"\"]\n",
                "capstan.toml:2: bad value for `commands`: must not be empty",
            ),
            (
                "[static]\nkeep_previous = \"an hour\"\n",
                "capstan.toml:2: bad value for `keep_previous`: \"an hour\" is not a duration",
            ),
            (
                "[static]\n\"/s\" = \"media\"\nkeep_previous = true\n",
                "capstan.toml:3: bad value for `keep_previous`: expected a duration",
            ),
            (
                "[static]\nkeep = \"1h\"\n",
                "capstan.toml:2: bad value for `keep`: \"keep\" is not a URL prefix",
            ),
        ];
        for (text, want) in cases {
            let got = err(text);
            assert!(
                got.starts_with(want),
                "for {text:?}\n got: {got}\nwant: {want}"
            );
        }
        let (_dir, root) = root();
        let got = read_pyproject(&root, "[tool.capstan.build]\ncmds = []\n", true)
            .unwrap_err()
            .to_string();
        assert!(
            got.starts_with("pyproject.toml:2: unknown key `cmds` in [tool.capstan.build]"),
            "{got}"
        );
    }

    #[test]
    fn pyproject_errors_use_pyproject_lines_and_tool_capstan_names() {
        let (_dir, root) = root();
        let text = "[project]\nname = \"x\"\n\n[tool.black]\nline-length = 100\n\n[tool.capstan.web]\nwsgi = \"a:b\"\nwrokers = 2\n";
        let got = read_pyproject(&root, text, true).unwrap_err().to_string();
        assert!(
            got.starts_with("pyproject.toml:9: unknown key `wrokers` in [tool.capstan.web]; expected one of: wsgi,"),
            "{got}"
        );
        let got = read_pyproject(&root, "[tool.capstan]\nnmae = 1\n", true)
            .unwrap_err()
            .to_string();
        assert!(
            got.starts_with("pyproject.toml:2: unknown key `nmae` in [tool.capstan]; expected"),
            "{got}"
        );
        let text =
            "[tool.capstan.cron.backup]\nschedule = \"@daily\"\ncommand = \"x\"\nevery = 1\n";
        let got = read_pyproject(&root, text, true).unwrap_err().to_string();
        assert!(
            got.starts_with("pyproject.toml:4: unknown key `every` in [tool.capstan.cron.backup]; expected one of: schedule,"),
            "{got}"
        );
        let text = "[tool.capstan.cron.backup]\nschedule = \"@daily\"\ncommand = \"x\"\n";
        let p = read_pyproject(&root, text, true).unwrap().capstan.unwrap();
        assert_eq!(p.cron["backup"].command, "x");
        let got = read_pyproject(&root, "[tool]\ncapstan = 1\n", true)
            .unwrap_err()
            .to_string();
        assert_eq!(
            got,
            "pyproject.toml:2: bad value for `capstan`: expected a table, found an integer"
        );
        let got = read_pyproject(&root, "[project]\ndependencies = [\"flask\", 3]\n", true)
            .unwrap_err()
            .to_string();
        assert_eq!(
            got,
            "pyproject.toml:2: bad value for `dependencies`: expected a string, found an integer"
        );
        let got = read_pyproject(&root, "[project\n", true)
            .unwrap_err()
            .to_string();
        assert!(got.starts_with("pyproject.toml:1: invalid TOML"), "{got}");
    }

    #[test]
    fn pyproject_outside_tool_capstan_is_not_checked() {
        let (_dir, root) = root();
        let text = "[project]\nname = \"x\"\ndependencies = [\"flask>=3\"]\nreleased = 2024-01-01\n[tool.other]\nanything = { goes = 1.5 }\n";
        let p = read_pyproject(&root, text, true).unwrap();
        assert!(p.capstan.is_none());
        assert_eq!(p.dependencies, Some(vec!["flask>=3".to_owned()]));
        let p = read_pyproject(
            &root,
            "[tool.capstan]\nname = \"x\"\n[tool.capstan.web]\nworkers = 2\n",
            true,
        )
        .unwrap();
        assert!(p.has_tool_capstan);
        assert_eq!(p.capstan.unwrap().workers, Some(2));
        // When capstan.toml takes precedence, [tool.capstan] is noticed but not checked.
        let p = read_pyproject(&root, "[tool.capstan]\nnonsense = 1\n", false).unwrap();
        assert!(p.has_tool_capstan && p.capstan.is_none());
    }
}
