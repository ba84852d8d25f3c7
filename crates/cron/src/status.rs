//! What a job did: its last run, skipped fires and runs in progress, as
//! [`Scheduler::status`](crate::Scheduler::status) returns them to the control API.

use std::fmt;
use std::time::Duration;

use capstan_proc::Exit;
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

/// One job, as `capstan ps` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobStatus {
    /// The job's name, `NAME` of `[cron.NAME]`.
    pub name: String,
    /// The schedule as written.
    pub schedule: String,
    /// `skip`, `allow` or `replace`.
    pub overlap: &'static str,
    /// When it fires next (`None`: never again).
    pub next_run: Option<DateTime<Utc>>,
    /// Runs started since the scheduler started.
    pub runs: u64,
    /// Fires skipped because a run was still going (overlap `skip`).
    pub skipped: u64,
    /// Runs going now.
    pub running: Vec<RunningRun>,
    /// The last run that ended.
    pub last_run: Option<LastRun>,
}

/// A run in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningRun {
    /// Its process id, which is also its process group id.
    pub pid: u32,
    /// When it started (wall clock).
    pub started_at: DateTime<Utc>,
}

/// A run that ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastRun {
    /// When it started (wall clock).
    pub started_at: DateTime<Utc>,
    /// How long it ran (monotonic time, so a clock change does not skew it).
    #[serde(rename = "duration_secs", serialize_with = "seconds")]
    pub duration: Duration,
    /// Why it ended.
    pub ending: Ending,
    /// Its exit code, when it exited by itself.
    pub code: Option<i32>,
    /// The signal that ended it, like `SIGTERM`.
    pub signal: Option<String>,
    /// All of the above in words: "exited with status 0", "timed out after 10m
    /// and was killed by SIGTERM".
    pub status: String,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Its command ended by itself (with any status).
    Exited,
    /// It ran past the job's `timeout` and was stopped.
    TimedOut,
    /// A new fire replaced it (overlap `replace`).
    Replaced,
    /// The scheduler was stopped.
    Stopped,
    /// It could not be started.
    FailedToStart,
}

impl LastRun {
    /// A run that ended with `exit` for `ending`. `timeout` is the job's, for the words.
    pub(crate) fn ended(
        started_at: DateTime<Utc>,
        duration: Duration,
        ending: Ending,
        exit: Exit,
        timeout: Option<Duration>,
    ) -> LastRun {
        let status = match ending {
            Ending::Exited | Ending::FailedToStart => exit.to_string(),
            Ending::TimedOut => format!(
                "timed out after {} and {}",
                capstan_config::format_duration(timeout.unwrap_or(duration)),
                exit
            ),
            Ending::Replaced => format!("was replaced by a newer run and {exit}"),
            Ending::Stopped => format!("was stopped with the scheduler and {exit}"),
        };
        LastRun {
            started_at,
            duration,
            ending,
            code: exit.code,
            signal: exit.signal.map(signal_name),
            status,
        }
    }

    /// A fire whose run could not be started.
    pub(crate) fn failed_to_start(started_at: DateTime<Utc>, error: impl fmt::Display) -> LastRun {
        LastRun {
            started_at,
            duration: Duration::ZERO,
            ending: Ending::FailedToStart,
            code: None,
            signal: None,
            status: format!("could not start: {error}"),
        }
    }
}

fn signal_name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(s) => s.as_str().to_owned(),
        Err(_) => format!("signal {signal}"),
    }
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
