//! `capstan ps`: one live generation's processes as the answer lists them
//! (`web.1`.., `tasks.1`..), with what the kernel says of each pid: its
//! resident memory (`VmRSS`) and how long it has run.

use capstan_control::answers::{ProcessInfo, ProcessState};
use capstan_runtime::Supervised;

use crate::generation::Generation;

/// The clock ticks per second /proc counts in: Linux's USER_HZ, 100 on
/// every architecture it runs user space on.
const USER_HZ: f64 = 100.0;

/// The workers (or the web command) and the `[processes]` of `generation`,
/// which runs `release`.
pub fn processes(release: u32, generation: &Generation) -> Vec<ProcessInfo> {
    let mut list = Vec::new();
    if let Some(pool) = generation.pool() {
        for worker in pool.workers() {
            list.push(running(worker.name, worker.pid, release, worker.restarts));
        }
    }
    if let Some(web) = generation.web_command() {
        list.push(supervised("web.1".to_owned(), web, release));
    }
    for process in generation.processes() {
        // A process not scaled runs once, under its own name.
        let name = match process.name().contains('.') {
            true => process.name().to_owned(),
            false => format!("{}.1", process.name()),
        };
        list.push(supervised(name, process, release));
    }
    list
}

fn supervised(name: String, process: &Supervised, release: u32) -> ProcessInfo {
    let status = process.status();
    match status.pid {
        Some(pid) => running(name, pid, release, status.restarts),
        None => ProcessInfo {
            name,
            pid: None,
            state: ProcessState::Backoff,
            release: Some(release),
            uptime_secs: None,
            restarts: status.restarts,
            rss_bytes: None,
        },
    }
}

fn running(name: String, pid: u32, release: u32, restarts: u32) -> ProcessInfo {
    ProcessInfo {
        name,
        pid: Some(pid),
        state: ProcessState::Running,
        release: Some(release),
        uptime_secs: uptime_secs(pid),
        restarts,
        rss_bytes: rss_bytes(pid),
    }
}

/// `VmRSS` of /proc/PID/status, in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Seconds since the process started: its start time (field 22 of
/// /proc/PID/stat, in clock ticks after boot) against /proc/uptime.
fn uptime_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it don't.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let start_ticks: f64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let since_boot: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    Some((since_boot - start_ticks / USER_HZ).max(0.0))
}
