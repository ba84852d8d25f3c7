//! The loaded, validated app: everything capstan needs to know to run it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::names::AppName;
use crate::schedule::Schedule;
use crate::wsgi::WsgiTarget;

/// One app directory, loaded and validated by [`load`](crate::load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Canonical absolute app directory.
    pub root: PathBuf,
    /// From `name`, else derived from the directory name.
    pub name: AppName,
    /// Which file the settings came from.
    pub source: Source,
    /// What serves HTTP requests.
    pub web: Web,
    /// Worker processes; `None` lets the runtime use the number of cores.
    pub workers: Option<usize>,
    /// Requests in flight per worker process, 1..=1024 (default 1).
    pub threads: usize,
    /// How long one request may take (default 30s).
    pub timeout: Duration,
    /// How long shutdown and reload wait for in-flight requests (default 30s).
    pub graceful_timeout: Duration,
    /// Replace a worker after this many requests (none: never).
    pub max_requests: Option<u64>,
    /// Up to this many more per worker, so workers do not restart together.
    pub max_requests_jitter: u64,
    /// Replace a worker whose resident memory grows past this many bytes.
    pub max_rss: Option<u64>,
    /// Requests that may wait for a busy pool before new ones get 503.
    pub max_queue: Option<usize>,
    /// How long a request may wait for a worker before it gets 503.
    pub queue_timeout: Option<Duration>,
    /// Requests sent ahead to a busy single-threaded worker (`None`: the runtime's default).
    pub pipeline: Option<usize>,
    /// Directories the edge serves itself, longest URL prefix first.
    pub static_routes: Vec<StaticRoute>,
    /// How long, after a switch, a static file the new release no longer has
    /// is still served from the previous release (`[static] keep_previous`).
    pub keep_previous: Duration,
    /// The environment of the app's web and background processes: `[env]` <
    /// `.env` (later wins). `.flaskenv` is not in it: it is a development file,
    /// which python-dotenv loads only for the `flask` command.
    pub env: BTreeMap<String, String>,
    /// The variables of `.flaskenv`, for the commands capstan runs (build and
    /// release commands, `capstan exec`), where `env` wins over them, as in
    /// Flask's CLI. See [`App::command_env`].
    pub flaskenv: BTreeMap<String, String>,
    /// Supervised background processes by name (`[processes.x]`, Procfile `worker:`).
    pub processes: BTreeMap<String, Process>,
    /// Scheduled commands by name (`[cron.x]`).
    pub cron: BTreeMap<String, CronJob>,
    /// Build commands (`[build]`), run in order in the new release folder,
    /// before it is sealed and before the release commands.
    pub build: Vec<String>,
    /// Release commands, run in order by deploy before the new code takes traffic.
    pub release: Vec<String>,
    /// Interpreter used to create the venv, e.g. `python3.11`; `None` means `python3`.
    pub python: Option<String>,
    /// An existing virtualenv to use instead of `<root>/.capstan/venv` (absolute;
    /// not checked here, the runtime reports a missing one).
    pub venv: Option<PathBuf>,
    /// Where the app's dependencies are listed.
    pub requirements: Requirements,
    /// Lowercased host names the app answers to.
    pub domains: Vec<String>,
    /// Edge settings.
    pub http: HttpSettings,
    /// Where certificates for `domains` come from.
    pub tls: TlsSettings,
    /// Path that must answer 2xx/3xx before traffic moves (default `/`).
    pub health_path: String,
    /// Whether `[health] path` was set; with the default `/`, which many
    /// apps do not serve, any answer but 500, 502, 503 or 504 passes.
    pub health_path_set: bool,
    /// How long one health check may take (`[health] timeout`).
    pub health_timeout: Duration,
    /// How many times a failed health check is tried again (`[health] retries`).
    pub health_retries: u32,
    /// Directory workers start in (gunicorn `--chdir`), absolute; `None` = `root`.
    pub workdir: Option<PathBuf>,
    /// Things the user may want to know: settings that were ignored or guessed,
    /// e.g. "ignored gunicorn flag --bind: capstan listens itself". The CLI prints them.
    pub notes: Vec<String>,
    /// Things the user should fix, e.g. Flask's debug mode turned on in the
    /// production environment. The CLI prints them as warnings.
    pub warnings: Vec<String>,
}

impl App {
    /// The environment of a command capstan runs for the app (build, release,
    /// `capstan exec`): `env`, plus the `.flaskenv` variables it does not set.
    pub fn command_env(&self) -> BTreeMap<String, String> {
        let mut env = self.flaskenv.clone();
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }
}

/// Where an app's settings came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `capstan.toml`.
    CapstanToml(PathBuf),
    /// The `[tool.capstan]` table of `pyproject.toml`.
    Pyproject(PathBuf),
    /// A Procfile (with `.env`).
    Procfile(PathBuf),
    /// No settings file: the WSGI app was found in `file`.
    Detected {
        /// The Python file that defines the app.
        file: PathBuf,
    },
}

/// What serves HTTP requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Web {
    /// capstan's own Python workers import and call this WSGI app.
    Wsgi(WsgiTarget),
    /// Any program that listens on `$PORT`; the edge proxies to it. Run by a shell.
    Command {
        /// The command line as written.
        command: String,
    },
}

/// A URL prefix served from a directory by the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    /// Starts with `/`, no trailing `/` (except `/` itself).
    pub url_prefix: String,
    /// Canonical absolute directory inside the app directory.
    pub dir: PathBuf,
    /// `Cache-Control: max-age` for files under it (default 30 days).
    pub max_age: Duration,
}

/// A supervised background process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// The command line, run by a shell in the app directory with the app's env.
    pub command: String,
}

/// A command run on a schedule (`[cron.x]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronJob {
    /// When it runs, in the server's local time zone, as crontab does.
    pub schedule: Schedule,
    /// The command line, run by a shell like a `[processes]` command.
    pub command: String,
    /// What a fire does while an earlier run is still going (default skip).
    pub overlap: Overlap,
    /// A run past this is stopped, its whole process group (none: never).
    pub timeout: Option<Duration>,
}

/// What a cron job's fire does while an earlier run of it is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// This fire is skipped (and counted): a job never has two runs at once.
    #[default]
    Skip,
    /// Another run starts beside the one going.
    Allow,
    /// The run going is stopped, then the new one starts.
    Replace,
}

impl Overlap {
    /// How it is written in capstan.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Allow => "allow",
            Overlap::Replace => "replace",
        }
    }
}

/// Where the app's Python dependencies are listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirements {
    /// `requirements.txt`, for `pip install -r`.
    Txt(PathBuf),
    /// `[project] dependencies` of `pyproject.toml`.
    Pyproject {
        /// The pyproject.toml file.
        path: PathBuf,
        /// The PEP 508 requirement strings, as written.
        dependencies: Vec<String>,
    },
    /// Nothing to install.
    None,
}

/// Settings for the edge (`[http]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Peers whose `X-Forwarded-For`/`-Proto` headers are believed. Empty by default.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Largest request body accepted, in bytes (default 100 MiB).
    pub max_body_size: u64,
    /// Log one line per request (default true).
    pub access_log: bool,
    /// Compress responses when the client accepts it (default true).
    pub compression: bool,
    /// Send `Strict-Transport-Security` on HTTPS responses (default true).
    pub hsts: bool,
    /// With an HTTPS listener, redirect plain HTTP to it (default true).
    pub https_redirect: bool,
    /// How long a client may take to send a request's head, or between two
    /// pieces of its body, and how long an idle keep-alive connection stays open.
    pub client_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            trusted_proxies: Vec::new(),
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            access_log: true,
            compression: true,
            hsts: true,
            https_redirect: true,
            client_timeout: Duration::from_secs(30),
        }
    }
}

/// Let's Encrypt's production ACME directory, the default.
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging ACME directory (`staging = true`).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// How an ACME server may check that this server answers for a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// A token fetched over plain HTTP on port 80.
    Http01,
    /// A special certificate shown in a TLS handshake on port 443.
    TlsAlpn01,
}

/// Settings for certificates (`[tls]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Obtain certificates for the app's domains from an ACME server (default true).
    pub acme: bool,
    /// Contact address given to the ACME server (expiry warnings go there).
    pub email: Option<String>,
    /// The ACME server's directory URL (default Let's Encrypt production).
    pub acme_directory: String,
    /// A CA certificate (PEM) trusted for the ACME server besides the system's.
    pub acme_ca_root: Option<PathBuf>,
    /// Challenges to try, in order (default HTTP-01, then TLS-ALPN-01).
    pub challenges: Vec<AcmeChallenge>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            acme: true,
            email: None,
            acme_directory: LETS_ENCRYPT_PRODUCTION.to_owned(),
            acme_ca_root: None,
            challenges: vec![AcmeChallenge::Http01, AcmeChallenge::TlsAlpn01],
        }
    }
}

/// Default `threads`.
pub const DEFAULT_THREADS: usize = 1;
/// Largest `workers` and `threads` accepted.
pub const MAX_WORKERS_OR_THREADS: usize = 1024;
/// Default per-request `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `graceful_timeout`.
pub const DEFAULT_GRACEFUL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `max_age` of static routes: 30 days.
pub const DEFAULT_STATIC_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// `[static] keep_previous` when the file does not say.
pub const DEFAULT_KEEP_PREVIOUS: Duration = Duration::from_secs(3600);
/// Default `max_body_size`: 100 MiB.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 100 << 20;
/// Default `[health] path`.
pub const DEFAULT_HEALTH_PATH: &str = "/";
/// Default `[health] timeout`.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `[health] retries`.
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;

/// What one settings file said, before discovery fills the gaps and `.env` is merged.
/// Both the TOML reader and the Procfile reader produce this.
#[derive(Debug, Default)]
pub(crate) struct Partial {
    pub name: Option<AppName>,
    pub web: Option<Web>,
    pub workers: Option<usize>,
    pub threads: Option<usize>,
    pub timeout: Option<Duration>,
    pub graceful_timeout: Option<Duration>,
    pub max_requests: Option<u64>,
    pub max_requests_jitter: Option<u64>,
    pub max_rss: Option<u64>,
    pub max_queue: Option<usize>,
    pub queue_timeout: Option<Duration>,
    pub pipeline: Option<usize>,
    /// `None` when the file has no `[static]`, so `static/` may be picked up.
    pub static_routes: Option<Vec<StaticRoute>>,
    pub keep_previous: Option<Duration>,
    pub env: BTreeMap<String, String>,
    pub processes: BTreeMap<String, Process>,
    pub cron: BTreeMap<String, CronJob>,
    pub build: Vec<String>,
    pub release: Vec<String>,
    pub python: Option<String>,
    pub venv: Option<PathBuf>,
    pub domains: Vec<String>,
    pub http: HttpSettings,
    pub tls: TlsSettings,
    pub health_path: Option<String>,
    pub health_timeout: Option<Duration>,
    pub health_retries: Option<u32>,
    pub workdir: Option<PathBuf>,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}
