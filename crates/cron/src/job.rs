//! One job's task: sleeps until the next fire time, applies the overlap policy,
//! starts runs through the launcher and records how they end. It alone changes
//! the job's status; others only read it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_config::{CronJob, Overlap, Schedule};
use chrono::{DateTime, Local, TimeZone, Utc};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::launcher::Launcher;
use crate::run::{self, RunSettings, StopReason};
use crate::status::{JobStatus, LastRun, RunningRun};

/// Everything one job's task needs.
pub(crate) struct JobTask {
    pub name: String,
    pub job: CronJob,
    pub launcher: Arc<dyn Launcher>,
    pub clock: Arc<dyn Clock>,
    /// How long a replaced or timed-out run has between SIGTERM and SIGKILL.
    pub grace: Duration,
    pub status: Arc<Mutex<JobStatus>>,
    /// The fire time a retired scheduler's job of the same name and schedule
    /// had next: this one fires then (even if it has just passed), so a hand
    /// over neither runs a fire twice nor loses one.
    pub first: Option<NextFire>,
}

/// A retiring scheduler's question to a job: its next fire time, after which
/// it fires no more.
pub(crate) type Retire = oneshot::Sender<Option<DateTime<Utc>>>;

/// Where its answer arrives.
pub(crate) type NextFire = oneshot::Receiver<Option<DateTime<Utc>>>;

/// A run in progress, by pid.
struct Running {
    started_at: DateTime<Utc>,
    stop: oneshot::Sender<(StopReason, Duration)>,
}

/// The runs of one job: their watchers, and how to reach each.
#[derive(Default)]
struct Runs {
    watchers: JoinSet<(u32, LastRun)>,
    running: BTreeMap<u32, Running>,
}

/// How long to sleep when the schedule has no next time: only a stop can come.
const FOREVER: Duration = Duration::from_secs(86_400);

impl JobTask {
    /// Runs the job until `stop` says so (with the grace period for its runs),
    /// or its sender is dropped; then stops every run and returns. Once
    /// `retire` asks, it answers with its next fire time and fires no more;
    /// it returns when its runs in progress have ended on their own.
    pub async fn run(
        mut self,
        mut stop: oneshot::Receiver<Duration>,
        mut retire: oneshot::Receiver<Retire>,
    ) {
        let mut runs = Runs::default();
        // The retired job answers at once (it only has to see the question);
        // one that is gone already has no time to hand over.
        let first = match self.first.take() {
            Some(answer) => answer.await.ok().flatten(),
            None => None,
        };
        let mut next = first.or_else(|| next_fire(&self.job.schedule, self.clock.now(), &Local));
        let mut retired = false;
        // Until the question came (or the scheduler was dropped, which `stop`
        // sees): a finished receiver must not be polled again.
        let mut may_retire = true;
        self.publish(next, &runs);
        loop {
            if retired && runs.running.is_empty() {
                return;
            }
            let sleep = next.map_or(FOREVER, |t| self.clock.sleep_for(t));
            tokio::select! {
                asked = &mut retire, if may_retire => {
                    may_retire = false;
                    if let Ok(answer) = asked {
                        retired = true;
                        let _ = answer.send(next.take());
                    }
                }
                grace = &mut stop => {
                    self.stop_all(&mut runs, StopReason::Stopped, grace.unwrap_or(self.grace))
                        .await;
                    self.publish(None, &runs);
                    return;
                }
                Some(done) = runs.watchers.join_next() => self.record(&mut runs, done),
                () = tokio::time::sleep(sleep) => {
                    let now = self.clock.now();
                    if let Some(due) = next.filter(|due| now >= *due) {
                        if now - due > chrono::TimeDelta::minutes(1) {
                            // Asleep or busy: the missed times collapse into this one run.
                            tracing::info!(job = %self.name, %due, %now, "late; running once for the missed times");
                        }
                        self.fire(&mut runs, now).await;
                        next = next_fire(&self.job.schedule, now, &Local);
                    }
                }
            }
            self.publish(next, &runs);
        }
    }

    /// One fire time has come: skip, run beside, or replace, per the policy.
    async fn fire(&self, runs: &mut Runs, now: DateTime<Utc>) {
        if !runs.running.is_empty() {
            match self.job.overlap {
                Overlap::Skip => {
                    tracing::info!(job = %self.name, "a run is still going; this fire is skipped");
                    self.update(|s| s.skipped += 1);
                    return;
                }
                Overlap::Allow => {}
                Overlap::Replace => {
                    tracing::info!(job = %self.name, "a run is still going; replacing it");
                    self.stop_all(runs, StopReason::Replaced, self.grace).await;
                }
            }
        }
        match self.launcher.launch(&self.name, &self.job) {
            Ok(child) => {
                let pid = child.pid();
                let (stop, stopped) = oneshot::channel();
                let settings = RunSettings {
                    started_at: now,
                    timeout: self.job.timeout,
                    grace: self.grace,
                };
                runs.watchers
                    .spawn(async move { (pid, run::watch(child, settings, stopped).await) });
                runs.running.insert(
                    pid,
                    Running {
                        started_at: now,
                        stop,
                    },
                );
                self.update(|s| s.runs += 1);
            }
            Err(error) => {
                tracing::warn!(job = %self.name, %error, "could not start the run");
                self.update(|s| {
                    s.runs += 1;
                    s.last_run = Some(LastRun::failed_to_start(now, &error));
                });
            }
        }
    }

    /// Stops every run (each with `grace`, all at once) and waits for them all.
    async fn stop_all(&self, runs: &mut Runs, reason: StopReason, grace: Duration) {
        for (_, r) in std::mem::take(&mut runs.running) {
            // A watcher that already finished dropped its receiver; nothing to stop.
            let _ = r.stop.send((reason, grace));
        }
        while let Some(done) = runs.watchers.join_next().await {
            self.record(runs, done);
        }
    }

    fn record(&self, runs: &mut Runs, done: Result<(u32, LastRun), tokio::task::JoinError>) {
        match done {
            Ok((pid, last)) => {
                runs.running.remove(&pid);
                self.update(|s| s.last_run = Some(last));
            }
            // A watcher never panics by design; if one did, its run is unknown.
            Err(error) => tracing::error!(job = %self.name, %error, "a run's watcher failed"),
        }
    }

    /// Writes what changes from one event to the next into the shared status.
    fn publish(&self, next: Option<DateTime<Utc>>, runs: &Runs) {
        let running = runs
            .running
            .iter()
            .map(|(&pid, r)| RunningRun {
                pid,
                started_at: r.started_at,
            })
            .collect();
        self.update(|s| {
            s.next_run = next;
            s.running = running;
        });
    }

    fn update(&self, f: impl FnOnce(&mut JobStatus)) {
        f(&mut self.status.lock().expect("status lock"));
    }
}

/// The first fire time after `now`, with the schedule read in `tz` (the server's
/// local zone, as crontab reads it). Counting from now, not from the fire time
/// that was due, is what keeps a late job from running once per missed time.
pub(crate) fn next_fire<Tz: TimeZone>(
    schedule: &Schedule,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Option<DateTime<Utc>> {
    schedule
        .next_after(&now.with_timezone(tz))
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn next_fire_counts_from_now_so_a_late_job_skips_the_missed_times() {
        let every_five = Schedule::parse("*/5 * * * *").unwrap();
        // Due at 10:05, noticed at 10:47 (the machine slept): next is 10:50, not 10:10.
        assert_eq!(
            next_fire(&every_five, utc("2026-03-01T10:47:12Z"), &Utc),
            Some(utc("2026-03-01T10:50:00Z"))
        );
        let nightly = Schedule::parse("30 3 * * *").unwrap();
        assert_eq!(
            next_fire(&nightly, utc("2026-03-01T03:30:00Z"), &Utc),
            Some(utc("2026-03-02T03:30:00Z"))
        );
    }

    #[test]
    fn next_fire_reads_the_schedule_in_the_given_zone() {
        // 03:30 at UTC+02:00 is 01:30 UTC.
        let zone = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
        let nightly = Schedule::parse("30 3 * * *").unwrap();
        assert_eq!(
            next_fire(&nightly, utc("2026-03-01T00:00:00Z"), &zone),
            Some(utc("2026-03-01T01:30:00Z"))
        );
    }
}
