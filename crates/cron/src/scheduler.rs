//! The scheduler: one task per job, their statuses, and stopping them all.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_config::CronJob;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::job::JobTask;
use crate::launcher::Launcher;
use crate::status::JobStatus;

/// How a scheduler reads the time and stops runs.
#[derive(Clone)]
pub struct Options {
    /// Where the time comes from (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// How long a run being replaced or past its timeout has between SIGTERM and
    /// SIGKILL (default 10 s, as supervisor's `stopwaitsecs`).
    pub grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            grace: Duration::from_secs(10),
        }
    }
}

/// The cron jobs of one app, running.
///
/// Call [`Scheduler::stop`] to stop it and wait for its runs to end. Dropping it
/// stops it too, without waiting.
pub struct Scheduler {
    jobs: Vec<Handle>,
}

struct Handle {
    status: Arc<Mutex<JobStatus>>,
    stop: oneshot::Sender<Duration>,
    task: JoinHandle<()>,
}

impl Scheduler {
    /// Starts one task per job, on the system clock. Must be called inside a
    /// tokio runtime.
    pub fn start(jobs: BTreeMap<String, CronJob>, launcher: impl Launcher) -> Scheduler {
        Scheduler::start_with(jobs, launcher, Options::default())
    }

    /// [`Scheduler::start`] with a clock and grace period of the caller's.
    pub fn start_with(
        jobs: BTreeMap<String, CronJob>,
        launcher: impl Launcher,
        options: Options,
    ) -> Scheduler {
        let launcher: Arc<dyn Launcher> = Arc::new(launcher);
        let jobs = jobs
            .into_iter()
            .map(|(name, job)| {
                let status = Arc::new(Mutex::new(JobStatus {
                    name: name.clone(),
                    schedule: job.schedule.to_string(),
                    overlap: job.overlap.as_str(),
                    next_run: None,
                    runs: 0,
                    skipped: 0,
                    running: Vec::new(),
                    last_run: None,
                }));
                let (stop, stopped) = oneshot::channel();
                let task = JobTask {
                    name,
                    job,
                    launcher: launcher.clone(),
                    clock: options.clock.clone(),
                    grace: options.grace,
                    status: status.clone(),
                };
                Handle {
                    status,
                    stop,
                    task: tokio::spawn(task.run(stopped)),
                }
            })
            .collect();
        Scheduler { jobs }
    }

    /// Every job's status, by name.
    pub fn status(&self) -> Vec<JobStatus> {
        self.jobs
            .iter()
            .map(|h| h.status.lock().expect("status lock").clone())
            .collect()
    }

    /// Stops firing, stops every run's process group (SIGTERM, then SIGKILL
    /// after `grace`) and returns, with every job's last status, when all of
    /// them are gone.
    pub async fn stop(self, grace: Duration) -> Vec<JobStatus> {
        let mut statuses = Vec::with_capacity(self.jobs.len());
        let mut tasks = Vec::with_capacity(self.jobs.len());
        for h in self.jobs {
            let _ = h.stop.send(grace);
            tasks.push(h.task);
            statuses.push(h.status);
        }
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a cron job's task failed");
            }
        }
        statuses
            .iter()
            .map(|s| s.lock().expect("status lock").clone())
            .collect()
    }
}
