//! The scheduler with real `sh -c` runs started through `ShellLauncher` (crates/proc),
//! on a clock that runs 30 times faster, so an every-minute job fires every two
//! real seconds. Every run's pid is written to a file by the run itself and
//! checked against /proc.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_config::{CronJob, Overlap, Schedule};
use capstan_cron::{
    Ending, JobStatus, LaunchError, Options, ScaledClock, Scheduler, ShellLauncher,
};
use chrono::{DateTime, TimeDelta, Utc};

/// Two seconds before the first fire at 00:01:00, at 30x: 67 ms of real time.
fn start() -> DateTime<Utc> {
    utc("2026-01-05T00:00:58Z")
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn job(command: &str, overlap: Overlap, timeout: Option<Duration>) -> CronJob {
    CronJob {
        schedule: Schedule::parse("* * * * *").unwrap(),
        command: command.to_owned(),
        overlap,
        timeout,
    }
}

fn one(name: &str, job: CronJob) -> BTreeMap<String, CronJob> {
    BTreeMap::from([(name.to_owned(), job)])
}

fn launcher(dir: &Path) -> ShellLauncher {
    ShellLauncher {
        cwd: dir.to_path_buf(),
        env: vec![("GREETING".into(), "hello".into())],
        identity: None,
        logs: Default::default(),
    }
}

fn options(clock: Arc<ScaledClock>) -> Options {
    Options {
        clock,
        grace: Duration::from_secs(5),
    }
}

fn fast_clock() -> Arc<ScaledClock> {
    Arc::new(ScaledClock::new(start(), 30))
}

/// Polls the scheduler's status until `done` says yes, for at most `limit`.
async fn wait_for(
    scheduler: &Scheduler,
    limit: Duration,
    what: &str,
    done: impl Fn(&JobStatus) -> bool,
) -> JobStatus {
    let deadline = Instant::now() + limit;
    loop {
        let status = scheduler.status().remove(0);
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {limit:?}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pids a run wrote, one per line, to `file` in `dir`.
fn pids(dir: &Path, file: &str) -> Vec<i32> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The process's state letter from /proc, `None` when it is gone. A zombie
/// (`Z`) has ended and only waits to be reaped.
fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the command name, which is in parentheses.
    stat.rsplit_once(") ")?.1.chars().next()
}

fn alive(pid: i32) -> bool {
    state(pid).is_some_and(|s| s != 'Z' && s != 'X')
}

/// Live processes whose process group is `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        // state ppid pgrp ...
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && alive(pid) {
            members.push(pid);
        }
    }
    members
}

async fn wait_gone(pids: &[i32]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| alive(p)) {
        assert!(Instant::now() < deadline, "still running: {pids:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    (dir, path)
}

#[tokio::test]
async fn a_job_runs_on_schedule_in_its_dir_with_its_env_and_its_exit_status_and_duration_are_recorded(
) {
    let (_guard, dir) = dir();
    let command = "echo \"$GREETING from $PWD\" >> out; sleep 0.3; exit 3";
    let scheduler = Scheduler::start_with(
        one("report", job(command, Overlap::Skip, None)),
        launcher(&dir),
        options(fast_clock()),
    );
    let status = wait_for(&scheduler, Duration::from_secs(10), "first run", |s| {
        s.last_run.is_some()
    })
    .await;
    let last = status.last_run.clone().unwrap();
    assert!(last.started_at >= utc("2026-01-05T00:01:00Z"), "{last:?}");
    assert_eq!(last.ending, Ending::Exited);
    assert_eq!((last.code, last.signal.as_deref()), (Some(3), None));
    assert_eq!(last.status, "exited with status 3");
    assert!(last.duration >= Duration::from_millis(300), "{last:?}");
    assert!(last.duration < Duration::from_secs(5), "{last:?}");
    assert!(status.next_run.unwrap() > last.started_at);
    let out = std::fs::read_to_string(dir.join("out")).unwrap();
    assert_eq!(
        out.lines().next(),
        Some(format!("hello from {}", dir.display()).as_str())
    );

    // The control API's view of it.
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["name"], "report");
    assert_eq!(json["schedule"], "* * * * *");
    assert_eq!(json["overlap"], "skip");
    assert!(json["next_run"]
        .as_str()
        .unwrap()
        .starts_with("2026-01-05T00:"));
    assert_eq!(json["last_run"]["ending"], "exited");
    assert_eq!(json["last_run"]["code"], 3);
    assert!(json["last_run"]["duration_secs"].as_f64().unwrap() >= 0.3);

    // And it comes back at the next minute.
    let status = wait_for(&scheduler, Duration::from_secs(10), "second run", |s| {
        s.last_run
            .as_ref()
            .is_some_and(|l| l.started_at >= utc("2026-01-05T00:02:00Z"))
    })
    .await;
    assert!(status.runs >= 2 && status.skipped == 0, "{status:?}");
    scheduler.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn skip_skips_fires_while_a_slow_run_is_going() {
    let (_guard, dir) = dir();
    let scheduler = Scheduler::start_with(
        one(
            "slow",
            job("echo $$ >> pids; sleep 100", Overlap::Skip, None),
        ),
        launcher(&dir),
        options(fast_clock()),
    );
    let status = wait_for(
        &scheduler,
        Duration::from_secs(15),
        "two skipped fires",
        |s| s.skipped >= 2,
    )
    .await;
    assert_eq!(status.runs, 1, "{status:?}");
    assert_eq!(status.running.len(), 1, "{status:?}");
    let started = pids(&dir, "pids");
    assert_eq!(started.len(), 1, "a second run started: {started:?}");
    assert_eq!(status.running[0].pid as i32, started[0]);
    assert!(alive(started[0]));
    scheduler.stop(Duration::from_secs(5)).await;
    assert!(!alive(started[0]));
}

#[tokio::test]
async fn allow_runs_two_at_once() {
    let (_guard, dir) = dir();
    let scheduler = Scheduler::start_with(
        one(
            "side",
            job("echo $$ >> pids; sleep 100", Overlap::Allow, None),
        ),
        launcher(&dir),
        options(fast_clock()),
    );
    let status = wait_for(
        &scheduler,
        Duration::from_secs(15),
        "two runs at once",
        |s| s.running.len() >= 2,
    )
    .await;
    assert_eq!(status.skipped, 0);
    let wait_pids = Instant::now() + Duration::from_secs(5);
    while pids(&dir, "pids").len() < 2 {
        assert!(
            Instant::now() < wait_pids,
            "the runs did not write their pids"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let both = &pids(&dir, "pids")[..2];
    assert!(both.iter().all(|&p| alive(p)), "{both:?}");
    scheduler.stop(Duration::from_secs(5)).await;
    assert!(!both.iter().any(|&p| alive(p)), "{both:?}");
}

#[tokio::test]
async fn replace_stops_the_running_group_then_starts_the_new_run() {
    let (_guard, dir) = dir();
    // The run leaves a child in its group, which must go with it.
    let command = "sleep 100 & echo $! >> kids; echo $$ >> pids; wait";
    let scheduler = Scheduler::start_with(
        one("fresh", job(command, Overlap::Replace, None)),
        launcher(&dir),
        options(fast_clock()),
    );
    let status = wait_for(&scheduler, Duration::from_secs(15), "a replaced run", |s| {
        s.last_run
            .as_ref()
            .is_some_and(|l| l.ending == Ending::Replaced)
    })
    .await;
    let last = status.last_run.unwrap();
    assert_eq!(last.signal.as_deref(), Some("SIGTERM"), "{last:?}");
    assert_eq!(
        last.status,
        "was replaced by a newer run and was killed by SIGTERM"
    );
    let wait_pids = Instant::now() + Duration::from_secs(5);
    while pids(&dir, "pids").len() < 2 {
        assert!(Instant::now() < wait_pids, "the new run did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (runs, kids) = (pids(&dir, "pids"), pids(&dir, "kids"));
    // The first run and its child are gone; the group it led is empty.
    wait_gone(&[runs[0], kids[0]]).await;
    assert!(group_members(runs[0]).is_empty());
    assert!(alive(runs[1]), "the new run is not going");
    assert_eq!(status.skipped, 0);
    scheduler.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_timeout_stops_a_hanging_run_and_its_group() {
    let (_guard, dir) = dir();
    let command = "sleep 100 & echo $! >> kids; echo $$ >> pids; wait";
    let scheduler = Scheduler::start_with(
        one(
            "hang",
            job(command, Overlap::Skip, Some(Duration::from_secs(1))),
        ),
        launcher(&dir),
        options(fast_clock()),
    );
    let status = wait_for(
        &scheduler,
        Duration::from_secs(10),
        "a timed-out run",
        |s| s.last_run.is_some(),
    )
    .await;
    let last = status.last_run.unwrap();
    assert_eq!(last.ending, Ending::TimedOut, "{last:?}");
    assert_eq!(last.status, "timed out after 1s and was killed by SIGTERM");
    assert!(last.duration >= Duration::from_secs(1), "{last:?}");
    assert!(last.duration < Duration::from_secs(4), "{last:?}");
    let (runs, kids) = (pids(&dir, "pids"), pids(&dir, "kids"));
    wait_gone(&[runs[0], kids[0]]).await;
    assert!(group_members(runs[0]).is_empty());
    scheduler.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn stop_leaves_no_process_behind_even_one_that_ignores_sigterm() {
    let (_guard, dir) = dir();
    let command = "trap '' TERM; sleep 100 & echo $! >> kids; echo $$ >> pids; wait";
    let scheduler = Scheduler::start_with(
        one("stubborn", job(command, Overlap::Allow, None)),
        launcher(&dir),
        options(fast_clock()),
    );
    wait_for(
        &scheduler,
        Duration::from_secs(15),
        "two runs at once",
        |s| s.running.len() >= 2,
    )
    .await;
    let stopping = Instant::now();
    let status = scheduler.stop(Duration::from_millis(300)).await.remove(0);
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
    assert!(status.running.is_empty(), "{status:?}");
    let last = status.last_run.unwrap();
    assert_eq!(last.ending, Ending::Stopped);
    assert_eq!(
        last.status,
        "was stopped with the scheduler and was killed by SIGKILL"
    );
    let (runs, kids) = (pids(&dir, "pids"), pids(&dir, "kids"));
    assert!(runs.len() >= 2, "{runs:?}");
    wait_gone(&kids).await;
    for pid in runs.iter().chain(&kids) {
        assert!(!alive(*pid), "{pid} survived the stop");
    }
    for pid in &runs {
        assert!(group_members(*pid).is_empty(), "group {pid} is not empty");
    }
}

#[tokio::test]
async fn what_a_run_leaves_behind_in_its_group_ends_with_it() {
    let (_guard, dir) = dir();
    let scheduler = Scheduler::start_with(
        one(
            "forks",
            job("sleep 100 & echo $! >> kids", Overlap::Skip, None),
        ),
        launcher(&dir),
        options(fast_clock()),
    );
    let status = wait_for(&scheduler, Duration::from_secs(10), "a run", |s| {
        s.last_run.is_some()
    })
    .await;
    assert_eq!(status.last_run.unwrap().status, "exited with status 0");
    wait_gone(&pids(&dir, "kids")[..1]).await;
    scheduler.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_late_fire_runs_once_not_once_per_missed_time() {
    let (_guard, dir) = dir();
    // Real time here: the clock only jumps, as after a suspend.
    let clock = Arc::new(ScaledClock::new(utc("2026-01-05T00:00:59.7Z"), 1));
    let scheduler = Scheduler::start_with(
        one("nightly", job("echo run >> runs", Overlap::Skip, None)),
        launcher(&dir),
        options(clock.clone()),
    );
    wait_for(&scheduler, Duration::from_secs(10), "the first run", |s| {
        s.last_run.is_some()
    })
    .await;
    // Ten fire times (00:02 to 00:11) go by while "asleep".
    clock.jump(TimeDelta::seconds(10 * 60 + 20));
    let status = wait_for(&scheduler, Duration::from_secs(10), "the late run", |s| {
        s.runs >= 2
            && s.last_run
                .as_ref()
                .is_some_and(|l| l.started_at > utc("2026-01-05T00:11:00Z"))
    })
    .await;
    assert_eq!(status.next_run, Some(utc("2026-01-05T00:12:00Z")));
    // Nothing else comes for the missed times.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = scheduler.status().remove(0);
    assert_eq!(status.runs, 2, "{status:?}");
    let lines = std::fs::read_to_string(dir.join("runs")).unwrap();
    assert_eq!(lines.lines().count(), 2);
    scheduler.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_run_that_cannot_start_is_recorded_with_the_reason() {
    let launcher = |_: &str, _: &CronJob| -> Result<capstan_proc::Child, LaunchError> {
        Err(LaunchError("the app has no live release yet".into()))
    };
    let scheduler = Scheduler::start_with(
        one("early", job("true", Overlap::Skip, None)),
        launcher,
        options(fast_clock()),
    );
    let status = wait_for(&scheduler, Duration::from_secs(10), "a failed start", |s| {
        s.last_run.is_some()
    })
    .await;
    let last = status.last_run.unwrap();
    assert_eq!(last.ending, Ending::FailedToStart);
    assert_eq!(
        last.status,
        "could not start: the app has no live release yet"
    );
    assert!(status.running.is_empty());
    scheduler.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_retired_scheduler_lets_its_run_finish_and_the_next_one_fires_once_at_its_time() {
    let (_guard, dir) = dir();
    let clock = fast_clock();
    let old = Scheduler::start_with(
        one(
            "tick",
            job("echo old $$ >> fires; sleep 3", Overlap::Skip, None),
        ),
        launcher(&dir),
        options(clock.clone()),
    );
    let status = wait_for(&old, Duration::from_secs(15), "the first run", |s| {
        s.running.len() == 1
    })
    .await;
    let old_pid = status.running[0].pid as i32;
    let (handover, retired) = old.retire();
    let new = Scheduler::take_over(
        one("tick", job("echo new $$ >> fires", Overlap::Skip, None)),
        launcher(&dir),
        options(clock.clone()),
        handover,
    );
    // The fire the old one ran is not run again: the new one's first is the next minute.
    let first = wait_for(&new, Duration::from_secs(5), "a next run", |s| {
        s.next_run.is_some()
    })
    .await
    .next_run
    .unwrap();
    assert_eq!(first, utc("2026-01-05T00:02:00Z"));
    assert!(alive(old_pid), "the retired run was stopped");
    wait_for(&new, Duration::from_secs(15), "the new run", |s| {
        s.last_run.is_some()
    })
    .await;
    let fires = std::fs::read_to_string(dir.join("fires")).unwrap();
    let lines: Vec<&str> = fires.lines().collect();
    assert_eq!(lines.len(), 2, "{fires}");
    assert!(
        lines[0].starts_with("old ") && lines[1].starts_with("new "),
        "{fires}"
    );
    // The retired run ends on its own, recorded as an exit, not a stop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = retired.status().remove(0);
    assert_eq!(status.next_run, None, "{status:?}");
    retired.finish(deadline, Duration::from_secs(1)).await;
    assert!(!alive(old_pid));
    new.stop(Duration::from_secs(5)).await;
}
