//! What people type.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// capstan serves a Python web app: HTTP front, TLS, static files and a
/// supervised pool of Python workers, from one binary and one file in the app.
#[derive(Debug, Parser)]
#[command(
    name = "capstan",
    version,
    propagate_version = true,
    after_help = "Example:\n  capstan run ./myapp --listen 0.0.0.0:80 --tls-listen 0.0.0.0:443 --workers 4\n\n\
                  --listen is the plain HTTP address, --tls-listen adds HTTPS (plain HTTP then \
                  redirects to it), --workers sets the number of Python worker processes. \
                  `capstan run --help` lists every option."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve an app from its folder, in the foreground.
    ///
    /// capstan reads capstan.toml, [tool.capstan] in pyproject.toml, or a
    /// Procfile (+ .env); with none of them it finds wsgi.py, app.py or main.py.
    /// It builds the app's virtualenv in <DIR>/.capstan/venv from
    /// requirements.txt or pyproject.toml when it is missing or out of date,
    /// runs the app's release commands ([release] commands, a Procfile
    /// `release:` line), starts the workers, and serves until Ctrl-C or
    /// SIGTERM, which let requests in flight finish. All state stays in
    /// <DIR>/.capstan.
    Run(RunArgs),

    /// Run every app of this server, in the foreground: the front for all of
    /// them (by Host), their workers, and the control socket the other
    /// server commands talk to. Ctrl-C or SIGTERM stops it gracefully.
    Daemon(DaemonArgs),

    /// Apps of the daemon: `capstan apps` lists them, `capstan apps create`
    /// makes one.
    Apps(AppsArgs),

    /// An app's releases, newest last: number, commit, built at, how long,
    /// status, and which one is live (*).
    Releases(ReleasesArgs),

    /// Put an earlier release of an app live again: no build, no release
    /// commands, zero downtime. Without N, the built release before the live one.
    Rollback(RollbackArgs),

    /// Start a new generation of an app's live release, zero downtime.
    Restart(AppArg),

    /// An app's variables set on the server (over its app file's [env]):
    /// `capstan env APP` lists them, `set K=V...` and `unset K...` change
    /// them and restart the app, zero downtime. Kept in <root>/apps/APP/env
    /// (mode 0600), never in a release.
    Env(EnvArgs),

    /// How many of each of an app's processes run: `web=N` is the number of
    /// Python workers, `NAME=M` runs M copies of a [processes] entry (0 stops
    /// it). Applied with a new generation, zero downtime; kept across deploys
    /// and daemon restarts.
    Scale(ScaleArgs),

    /// Every app's processes (or one app's): name, pid, state, release,
    /// uptime, restarts, memory.
    Ps(PsArgs),
    /// An app's log lines, every process merged by time: the last `-n`, then
    /// with `-f` each new one as it is written (across rotations).
    Logs(LogsArgs),

    /// What git runs in an app's repository (the pre-receive hook): hands the
    /// push to the daemon and shows its progress.
    #[command(hide = true)]
    Hook(HookArgs),

    /// Load new code into a running `capstan run` without dropping a request.
    ///
    /// New workers start from the app's current code; once every one has
    /// loaded the app they take over, and the old ones finish what they hold.
    /// If the new code fails to load, the old workers keep serving and the
    /// traceback is shown. Sending SIGHUP to capstan does the same.
    Reload(ReloadArgs),

    /// Run a one-off command the way the app's processes run: its virtualenv
    /// (built first if needed; its bin first on PATH, so `flask`, `pybabel`
    /// and `python` are the app's), its environment (`[env]`, .env, .flaskenv)
    /// and the app's folder.
    ///
    /// On a server, name an app of the daemon instead of a folder: the
    /// command runs in its live release with its venv, its env (with the
    /// server's variables) and as the app's user.
    ///
    /// Standard input and output are the terminal's, so `flask shell` works;
    /// capstan exits with the command's exit status.
    #[command(after_help = "Examples:\n  capstan exec . -- flask db upgrade\n  \
                      capstan exec ./mysite -- python manage.py collectstatic --noinput\n  \
                      capstan exec -- flask shell\n  \
                      capstan exec blog -- flask shell   (the daemon's app blog)")]
    Exec(ExecArgs),
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The app's folder, or the name of a daemon's app (when no such folder is here).
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    #[command(flatten)]
    pub root: RootArg,

    /// Use this existing virtualenv instead of <DIR>/.capstan/venv.
    #[arg(long, value_name = "DIR")]
    pub venv: Option<PathBuf>,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The app's folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The app's folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    /// Address for plain HTTP. With --tls-listen, it redirects to HTTPS.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// Also serve HTTPS (HTTP/2 and HTTP/1.1) here: with certificates from
    /// the ACME server for the app's domains, and a self-signed certificate
    /// (kept in <DIR>/.capstan/tls) for other names and until they arrive.
    #[arg(long, value_name = "ADDR:PORT")]
    pub tls_listen: Option<SocketAddr>,

    /// Python worker processes [default: the app's setting, else the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// Requests each worker handles at once, in threads [default: the app's setting, else 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,

    /// Use this existing virtualenv instead of building <DIR>/.capstan/venv.
    #[arg(long, value_name = "DIR")]
    pub venv: Option<PathBuf>,

    /// Do not write the access log (it goes to standard output).
    #[arg(long)]
    pub no_access_log: bool,

    /// A domain to get a certificate for from the ACME server (repeat for
    /// more) [default: `domains` in the app's file]. Needs --tls-listen.
    #[arg(long = "domain", value_name = "NAME", value_parser = parse_domain)]
    pub domains: Vec<String>,

    /// The ACME server's directory URL [default: [tls] acme_directory, else
    /// Let's Encrypt production].
    #[arg(long, value_name = "URL", value_parser = parse_https_url)]
    pub acme_directory: Option<String>,

    /// A CA certificate (PEM) to trust for the ACME server, besides the
    /// system's (for a private or test ACME server).
    #[arg(long, value_name = "FILE")]
    pub acme_ca_root: Option<PathBuf>,

    /// Contact email for the ACME account (expiry warnings go there).
    #[arg(long, value_name = "ADDR", value_parser = capstan_config::check_email)]
    pub acme_email: Option<String>,
}

fn parse_domain(s: &str) -> Result<String, String> {
    capstan_config::normalize_domain(s)
}

fn parse_https_url(s: &str) -> Result<String, String> {
    if s.starts_with("https://") && s.len() > "https://".len() {
        Ok(s.to_owned())
    } else {
        Err("ACME directories are served over HTTPS: give an https:// URL".into())
    }
}

/// Where the daemon keeps its state; the server commands find it there too.
#[derive(Debug, Args)]
pub struct RootArg {
    /// The daemon's state folder [default: $CAPSTAN_ROOT, else /var/lib/capstan].
    #[arg(long = "root", value_name = "DIR")]
    flag: Option<PathBuf>,
}

impl RootArg {
    /// `--root`, else `CAPSTAN_ROOT`, else /var/lib/capstan.
    pub fn path(&self) -> PathBuf {
        self.flag
            .clone()
            .or_else(|| std::env::var_os("CAPSTAN_ROOT").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/lib/capstan"))
    }
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// Plain HTTP address for every app [default: listen in <root>/capstan.toml,
    /// else 0.0.0.0:80]. With HTTPS on, a domain with a certificate redirects to it.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Also serve every app's domains over HTTPS here, each with its own
    /// certificate from the ACME server ([acme] in <root>/capstan.toml; Let's
    /// Encrypt by default), kept in <root>/certs [default: tls_listen in
    /// <root>/capstan.toml].
    #[arg(long, value_name = "ADDR:PORT")]
    pub tls_listen: Option<SocketAddr>,
    /// Print a systemd unit that runs this daemon with these --root, --listen
    /// and --tls-listen, and exit. Install it with
    /// `capstan daemon --systemd-unit > /etc/systemd/system/capstan.service`.
    #[arg(long)]
    pub systemd_unit: bool,
}

#[derive(Debug, Args)]
pub struct AppsArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<AppsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Make an app: its folder, its git repository to push to, its domains.
    Create {
        /// The app's name (letters, digits, dashes).
        name: String,
        /// A Host name it answers (repeat for more).
        #[arg(long = "domain", value_name = "DOMAIN")]
        domains: Vec<String>,
    },
    /// Stop an app and remove it: its processes, its domains, its
    /// certificates' renewal, its folder (releases, data, env) and its user.
    Destroy {
        /// The app's name.
        name: String,
        /// Do not ask to type the app's name to confirm.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct HookArgs {
    #[command(subcommand)]
    pub hook: HookKind,
}

#[derive(Debug, Subcommand)]
pub enum HookKind {
    /// git's pre-receive: the ref updates on stdin, CAPSTAN_ROOT and CAPSTAN_APP set.
    PreReceive,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// The app.
    pub app: String,
    /// Keep printing new lines as they are written, until Ctrl-C.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only this process's lines: web, tasks (a `[processes]` name),
    /// cron.NAME, deploy, access, capstan.
    #[arg(short = 'p', long = "process", value_name = "NAME")]
    pub process: Option<String>,
    /// How many past lines to print first.
    #[arg(short = 'n', long = "lines", default_value_t = 100)]
    pub lines: u32,
    /// Print each line as a JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// The app.
    pub app: String,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AppArg {
    #[command(flatten)]
    pub root: RootArg,
    /// The app.
    pub app: String,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// The app.
    pub app: String,
    /// The release to put live [default: the built one before the live one].
    pub release: Option<u32>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  capstan env blog\n  \
                  capstan env blog set SECRET_KEY=abc DATABASE_URL=postgres://db/blog\n  \
                  capstan env blog unset DATABASE_URL")]
pub struct EnvArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// The app.
    pub app: String,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<EnvCommand>,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Set variables (K=V ...), then restart the app.
    Set {
        #[arg(required = true, value_name = "K=V")]
        vars: Vec<String>,
    },
    /// Remove variables set on the server (K ...), then restart the app.
    Unset {
        #[arg(required = true, value_name = "K")]
        names: Vec<String>,
    },
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  capstan scale blog web=4 tasks=2")]
pub struct ScaleArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// The app.
    pub app: String,
    /// `web=N` (workers) and `NAME=M` ([processes] copies).
    #[arg(required = true, value_name = "NAME=N")]
    pub counts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub root: RootArg,
    /// One app [default: every app].
    pub app: Option<String>,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}
