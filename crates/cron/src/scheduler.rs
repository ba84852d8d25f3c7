//! The scheduler: one task per job, their statuses, and stopping them all.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_config::CronJob;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::job::{JobTask, NextFire, Retire};
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
    name: String,
    schedule: String,
    status: Arc<Mutex<JobStatus>>,
    stop: oneshot::Sender<Duration>,
    retire: oneshot::Sender<Retire>,
    task: JoinHandle<()>,
}

/// What a retired scheduler hands to the one that replaces it: each job's
/// next fire time, as its task answers (with its schedule, so a changed
/// schedule starts afresh).
#[derive(Debug, Default)]
pub struct Handover {
    next: BTreeMap<String, (String, NextFire)>,
}

/// A scheduler that fires no more, whose runs in progress may finish.
/// Dropping it stops them (SIGTERM, grace, SIGKILL) without waiting.
pub struct Retired {
    jobs: Vec<Handle>,
}

impl Scheduler {
    /// Starts one task per job, on the system clock. Must be called inside a
    /// tokio runtime.
    pub fn start(jobs: BTreeMap<String, CronJob>, launcher: impl Launcher) -> Scheduler {
        Scheduler::start_with(jobs, launcher, Options::default())
    }

    /// [`Scheduler::start`] in place of a retired scheduler: a job with the
    /// same name and schedule fires first at the time the retired one would
    /// have (at once if that has passed), the others from now.
    pub fn take_over(
        jobs: BTreeMap<String, CronJob>,
        launcher: impl Launcher,
        options: Options,
        handover: Handover,
    ) -> Scheduler {
        Scheduler::spawn(jobs, launcher, options, handover)
    }

    /// [`Scheduler::start`] with a clock and grace period of the caller's.
    pub fn start_with(
        jobs: BTreeMap<String, CronJob>,
        launcher: impl Launcher,
        options: Options,
    ) -> Scheduler {
        Scheduler::spawn(jobs, launcher, options, Handover::default())
    }

    fn spawn(
        jobs: BTreeMap<String, CronJob>,
        launcher: impl Launcher,
        options: Options,
        mut handover: Handover,
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
                let (retire, retired) = oneshot::channel();
                let schedule = job.schedule.to_string();
                let first = handover
                    .next
                    .remove(&name)
                    .filter(|(was, _)| *was == schedule)
                    .map(|(_, at)| at);
                let task = JobTask {
                    name: name.clone(),
                    first,
                    job,
                    launcher: launcher.clone(),
                    clock: options.clock.clone(),
                    grace: options.grace,
                    status: status.clone(),
                };
                Handle {
                    name,
                    schedule,
                    status,
                    stop,
                    retire,
                    task: tokio::spawn(task.run(stopped, retired)),
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

    /// Stops firing and hands over when each job would have fired next, for
    /// the scheduler that takes over ([`Scheduler::take_over`]: its job
    /// waits for the answer before it sleeps); the runs in progress go on
    /// until they end (their timeouts still hold).
    pub fn retire(self) -> (Handover, Retired) {
        let mut handover = Handover::default();
        let mut jobs = Vec::with_capacity(self.jobs.len());
        for mut h in self.jobs {
            let (answer, answered) = oneshot::channel();
            let (dead, _) = oneshot::channel();
            let _ = std::mem::replace(&mut h.retire, dead).send(answer);
            handover
                .next
                .insert(h.name.clone(), (h.schedule.clone(), answered));
            jobs.push(h);
        }
        (handover, Retired { jobs })
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

impl Retired {
    /// Every job's status, by name.
    pub fn status(&self) -> Vec<JobStatus> {
        self.jobs
            .iter()
            .map(|h| h.status.lock().expect("status lock").clone())
            .collect()
    }

    /// Waits until the runs in progress end on their own, or until
    /// `deadline`, then stops what is left (SIGTERM, then SIGKILL after
    /// `grace`).
    pub async fn finish(self, deadline: tokio::time::Instant, grace: Duration) {
        for Handle { stop, mut task, .. } in self.jobs {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                let _ = stop.send(grace);
                let _ = task.await;
            }
        }
    }
}
