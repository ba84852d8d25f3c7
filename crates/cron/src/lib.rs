//! Cron jobs: this crate owns when each `[cron.NAME]` job runs and what its last
//! runs were.
//!
//! [`Scheduler::start`] spawns one task per job. It sleeps until the job's next
//! fire time, in the server's local time zone as crontab does, then asks the
//! caller's [`Launcher`] to start the run (the caller knows the app's user, env
//! and live release) and applies the job's overlap policy and timeout to it.
//! Each run is its own process group, stopped as a whole. [`Scheduler::status`]
//! is each job's last run, skipped fires and runs in progress, for `capstan ps`;
//! [`Scheduler::stop`] stops every run and leaves no process behind.
//!
//! A fire missed while the machine slept or the clock jumped is run once, late,
//! never once per missed time (as cronie does). Across a DST change the times are
//! croner's, as Vixie cron has them: a job at a fixed time in a skipped hour runs
//! right after it, once in a repeated hour; a `*/n` job follows the wall clock.

#![warn(missing_docs)]

mod clock;
mod job;
mod launcher;
mod run;
mod scheduler;
mod status;

pub use clock::{Clock, ScaledClock, SystemClock};
pub use launcher::{LaunchError, Launcher, ShellLauncher};
pub use scheduler::{Handover, Options, Retired, Scheduler};
pub use status::{Ending, JobStatus, LastRun, RunningRun};
