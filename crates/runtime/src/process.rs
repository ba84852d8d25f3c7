//! Long-running processes that are not WSGI workers: `[processes.NAME]`
//! entries and a `command` web process. Each is kept alive with backoff.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use capstan_proc::{Child, Identity, Log, Spec};
use tokio::sync::watch;

use crate::stop::{is_stopped, stopped};
use tokio::task::JoinHandle;

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// A process to keep running: a shell command, as in a Procfile.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Its name in logs.
    pub name: String,
    /// The command, run by `/bin/sh -c`.
    pub command: String,
    /// Its working directory.
    pub cwd: PathBuf,
    /// Variables added to its environment.
    pub env: Vec<(OsString, OsString)>,
    /// How long it gets between SIGTERM and SIGKILL when stopping.
    pub kill_grace: Duration,
    /// Where its output goes, each line labelled with its name.
    pub log: Log,
}

/// A supervised process: restarted with exponential backoff whenever it ends,
/// until [`Supervised::stop`].
pub struct Supervised {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Supervised {
    /// Starts the process and its supervision, as capstan's own user.
    pub fn start(spec: ProcessSpec) -> Supervised {
        Supervised::start_as(spec, None)
    }

    /// Starts the process and its supervision as `identity` (every restart too);
    /// `None` is [`Supervised::start`].
    pub fn start_as(spec: ProcessSpec, identity: Option<Identity>) -> Supervised {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(spec, identity, stopped));
        Supervised { stop, task }
    }

    /// Stops the process group (SIGTERM, grace, SIGKILL) and its supervision.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

async fn supervise(spec: ProcessSpec, identity: Option<Identity>, mut stop: watch::Receiver<bool>) {
    let mut backoff = FIRST_BACKOFF;
    while !is_stopped(&stop) {
        let mut command = Spec::shell(spec.name.clone(), &spec.command, spec.cwd.clone());
        command.env = spec.env.clone();
        command.identity = identity.clone();
        command.log = spec.log.clone();
        let started = Instant::now();
        match Child::spawn(command) {
            Ok(mut child) => {
                tracing::info!(process = %spec.name, pid = child.pid(), command = %spec.command, "started");
                tokio::select! {
                    exit = child.wait() => {
                        // Children the leader left in its group would run on beside
                        // the replacement: two copies of one worker.
                        child.signal_group(nix::sys::signal::Signal::SIGKILL);
                        if started.elapsed() > HEALTHY_AFTER {
                            backoff = FIRST_BACKOFF;
                        }
                        tracing::warn!(process = %spec.name, %exit, restart_in = ?backoff, "process ended; restarting it");
                        spec.log.note(|| format!("{} {exit}; starting it again in {backoff:?}", spec.name)).await;
                    }
                    _ = stopped(&mut stop) => {
                        let exit = child.terminate(spec.kill_grace).await;
                        tracing::info!(process = %spec.name, %exit, "stopped");
                        return;
                    }
                }
            }
            Err(error) => {
                tracing::error!(process = %spec.name, %error, restart_in = ?backoff, "could not start");
                spec.log
                    .note(|| format!("{error}; trying again in {backoff:?}"))
                    .await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut stop) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
