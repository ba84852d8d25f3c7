//! Long-running processes that are not WSGI workers: `[processes.NAME]`
//! entries and a `command` web process. Each is kept alive with backoff.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
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
    name: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    status: Arc<Mutex<ProcessStatus>>,
}

/// What a supervised process is doing now, for `ps`.
#[derive(Debug, Clone, Default)]
pub struct ProcessStatus {
    /// Its pid while it runs; `None` between two starts.
    pub pid: Option<u32>,
    /// When the running one started.
    pub started: Option<Instant>,
    /// How many times it was started again after ending.
    pub restarts: u32,
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
        let status = Arc::new(Mutex::new(ProcessStatus::default()));
        let name = spec.name.clone();
        let task = tokio::spawn(supervise(spec, identity, stopped, Arc::clone(&status)));
        Supervised {
            name,
            stop,
            task,
            status,
        }
    }

    /// Its name, as given in its spec.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pid, start time and restart count now.
    pub fn status(&self) -> ProcessStatus {
        self.status.lock().expect("status lock").clone()
    }

    /// Stops the process group (SIGTERM, grace, SIGKILL) and its supervision.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

async fn supervise(
    spec: ProcessSpec,
    identity: Option<Identity>,
    mut stop: watch::Receiver<bool>,
    status: Arc<Mutex<ProcessStatus>>,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut first = true;
    while !is_stopped(&stop) {
        if !first {
            status.lock().expect("status lock").restarts += 1;
        }
        first = false;
        let mut command = Spec::shell(spec.name.clone(), &spec.command, spec.cwd.clone());
        command.env = spec.env.clone();
        command.identity = identity.clone();
        command.log = spec.log.clone();
        let started = Instant::now();
        match Child::spawn(command) {
            Ok(mut child) => {
                tracing::info!(process = %spec.name, pid = child.pid(), command = %spec.command, "started");
                {
                    let mut now = status.lock().expect("status lock");
                    now.pid = Some(child.pid());
                    now.started = Some(Instant::now());
                }
                tokio::select! {
                    exit = child.wait() => {
                        {
                            let mut now = status.lock().expect("status lock");
                            now.pid = None;
                            now.started = None;
                        }
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
