//! How a run is started: the caller's [`Launcher`] turns a job into a running
//! process group (the app's user, env and live release are the caller's to know).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use capstan_config::CronJob;
use capstan_proc::{Child, Identity, Log, SpawnError, Spec};

/// Starts one run of a job. The child must lead its own process group, as every
/// [`capstan_proc::Child`] does, so the scheduler can stop it and all it started.
pub trait Launcher: Send + Sync + 'static {
    /// Starts a run of the job `name`.
    fn launch(&self, name: &str, job: &CronJob) -> Result<Child, LaunchError>;
}

impl<F> Launcher for F
where
    F: Fn(&str, &CronJob) -> Result<Child, LaunchError> + Send + Sync + 'static,
{
    fn launch(&self, name: &str, job: &CronJob) -> Result<Child, LaunchError> {
        self(name, job)
    }
}

/// Why a run could not be started; recorded as that fire's outcome.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LaunchError(pub String);

impl From<SpawnError> for LaunchError {
    fn from(e: SpawnError) -> Self {
        LaunchError(e.to_string())
    }
}

/// Runs the job's command with `/bin/sh -c` in `cwd` with `env`, its output
/// logged under `cron.NAME` (the name of its log file).
#[derive(Clone)]
pub struct ShellLauncher {
    /// The directory runs start in: the live release.
    pub cwd: PathBuf,
    /// Variables added to the environment: the app's env.
    pub env: Vec<(OsString, OsString)>,
    /// The app's user; `None` runs as capstan's own.
    pub identity: Option<Identity>,
    /// Where each job's lines go, by job name (the daemon's
    /// `logs/cron.NAME.log`); a job not in it logs to capstan's own output.
    pub logs: BTreeMap<String, Log>,
}

impl Launcher for ShellLauncher {
    fn launch(&self, name: &str, job: &CronJob) -> Result<Child, LaunchError> {
        let mut spec = Spec::shell(format!("cron.{name}"), &job.command, self.cwd.clone());
        spec.env = self.env.clone();
        spec.identity = self.identity.clone();
        spec.log = self.logs.get(name).cloned().unwrap_or_default();
        Ok(Child::spawn(spec)?)
    }
}
