//! What the daemon answers: one type per listing or outcome. These are also what
//! every listing command prints with `--json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use capstan_config::AppName;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The daemon, as `capstan status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// The daemon's capstan version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// Where it keeps its state (`/var/lib/capstan` or `--root`).
    pub root: PathBuf,
    /// How many apps it runs.
    pub apps: u32,
    /// Seconds since it started.
    pub uptime_secs: f64,
}

/// One app, as a line of `capstan apps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSummary {
    /// Its name.
    pub name: AppName,
    /// The Host names it answers.
    pub domains: Vec<String>,
    /// The live release's number, if one is live.
    pub live_release: Option<u32>,
    /// What it is doing.
    pub state: AppState,
}

/// What an app is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppState {
    /// Created, nothing deployed yet.
    New,
    /// Its live release serves.
    Running,
    /// A deploy, rollback or restart is under way (the live release still serves).
    Deploying,
    /// Its live release could not be started (see `capstan logs APP`).
    Failed,
    /// Stopped on purpose.
    Stopped,
}

/// The answer to `apps create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCreated {
    /// The new app.
    pub app: AppSummary,
    /// Its bare repository: `git push <repo> main` deploys it.
    pub repo: PathBuf,
}

/// The answer to `apps` (list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppList {
    /// Every app, by name.
    pub apps: Vec<AppSummary>,
}

/// The answer to `apps destroy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppDestroyed {
    /// The app that is gone.
    pub name: AppName,
}

/// The answer to `releases APP`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseList {
    /// Whose releases.
    pub app: AppName,
    /// The kept releases, oldest first.
    pub releases: Vec<ReleaseInfo>,
}

/// One release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    /// Its number, counting up from 1 per app.
    pub number: u32,
    /// The full commit id it was built from.
    pub commit: String,
    /// The commit message's first line.
    pub message: String,
    /// When its build started.
    pub built_at: DateTime<Utc>,
    /// How long from the push to ready (or to the failure), in seconds.
    pub build_secs: f64,
    /// How its build went.
    pub status: ReleaseStatus,
    /// Whether it is the one serving.
    pub live: bool,
}

/// How a release's build went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// Being built now.
    Building,
    /// Built and health-checked: it can be live or be rolled back to.
    Ready,
    /// A step failed; it never served.
    Failed,
}

/// The answer to `env APP`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVars {
    /// Whose environment.
    pub app: AppName,
    /// The variables set on the server (the app file's `[env]` is the default under them).
    pub vars: BTreeMap<String, String>,
}

/// The answer to `ps [APP]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessList {
    /// Each app asked for, by name.
    pub apps: Vec<AppProcesses>,
}

/// One app's processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppProcesses {
    /// The app.
    pub app: AppName,
    /// Its workers and `[processes]`.
    pub processes: Vec<ProcessInfo>,
    /// Its cron jobs and their last runs, as the scheduler reports them
    /// (capstan-cron's `JobStatus` list), passed through as it is.
    pub cron: serde_json::Value,
}

/// One process of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// `web.1`, `tasks.2`, ...
    pub name: String,
    /// Its pid, while it runs.
    pub pid: Option<u32>,
    /// What it is doing.
    pub state: ProcessState,
    /// The release it runs.
    pub release: Option<u32>,
    /// Seconds since it started, while it runs.
    pub uptime_secs: Option<f64>,
    /// How many times it was restarted after ending.
    pub restarts: u32,
    /// Resident memory in bytes, while it runs.
    pub rss_bytes: Option<u64>,
}

/// What a process is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessState {
    /// Started, not ready yet.
    Starting,
    /// Serving or running.
    Running,
    /// Ended; waiting before the next start.
    Backoff,
    /// Finishing what it holds before it stops.
    Stopping,
    /// Not running.
    Stopped,
}

/// How a deploy or rollback ended well: which release is live now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Live {
    /// The app.
    pub app: AppName,
    /// The release now live.
    pub release: u32,
    /// Its commit.
    pub commit: String,
    /// The one before it, now draining.
    pub previous: Option<u32>,
    /// Where it answers, like `https://blog.example.com`.
    pub url: Option<String>,
}

/// How a restart (or an env change, applied by one) ended well.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restarted {
    /// The app.
    pub app: AppName,
    /// The release the new generation runs; `None` when nothing was live to restart
    /// (an env change is stored and used by the first deploy).
    pub release: Option<u32>,
}

/// How a scale ended well.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaled {
    /// The app.
    pub app: AppName,
    /// How many of each process run now.
    pub counts: BTreeMap<String, u32>,
}

/// How a `logs` stream ended (without `follow`, after the last line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LogsEnd {
    /// How many lines were sent.
    pub lines: u64,
}
