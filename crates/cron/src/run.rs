//! One run of a job: a process group watched until its command ends, its
//! timeout passes, or its job asks it to stop (replaced, or the scheduler stops).

use std::time::{Duration, Instant};

use capstan_proc::Child;
use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use crate::status::{Ending, LastRun};

/// Why a job asks its run to stop.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StopReason {
    Replaced,
    Stopped,
}

/// What a run's watcher needs besides the child.
pub(crate) struct RunSettings {
    pub started_at: DateTime<Utc>,
    pub timeout: Option<Duration>,
    /// How long SIGTERM has before SIGKILL.
    pub grace: Duration,
}

/// Watches `child` until it ends and returns how it ended. Whatever ends it,
/// its whole process group is gone when this returns.
pub(crate) async fn watch(
    mut child: Child,
    settings: RunSettings,
    stop: oneshot::Receiver<(StopReason, Duration)>,
) -> LastRun {
    let started = Instant::now();
    let deadline = async {
        match settings.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let (ending, exit) = tokio::select! {
        exit = child.wait() => {
            // A run is its process group, as a systemd service is its cgroup:
            // what it left behind in the group ends with it.
            child.signal_group(Signal::SIGKILL);
            (Ending::Exited, exit)
        }
        () = deadline => {
            tracing::warn!(process = %child.name(), timeout = ?settings.timeout, "timed out; stopping it");
            (Ending::TimedOut, child.terminate(settings.grace).await)
        }
        Ok((reason, grace)) = stop => {
            let ending = match reason {
                StopReason::Replaced => Ending::Replaced,
                StopReason::Stopped => Ending::Stopped,
            };
            (ending, child.terminate(grace).await)
        }
    };
    tracing::info!(process = %child.name(), pid = child.pid(), %exit, ?ending, "cron run ended");
    LastRun::ended(
        settings.started_at,
        started.elapsed(),
        ending,
        exit,
        settings.timeout,
    )
}
