//! The daemon's side of each app's log files: opening its one writer, the
//! lines it writes itself (`deploy.log`: every line of every deploy, failed
//! ones included; `capstan.log`: what the daemon did to the app), and the
//! `logs` stream that reads them back.

use std::path::PathBuf;

use capstan_control::answers::{Live, LogsEnd};
use capstan_control::api::{Deploy, Logs};
use capstan_control::{ApiError, ErrorKind, Progress};
use capstan_deploy::AppDir;
use capstan_logs::{LogDir, LogSink, ProcessName, Rotation};
use futures_util::StreamExt as _;

use super::deploy;

/// `logs APP` without `-n`.
const DEFAULT_LINES: usize = 100;

/// Names the daemon writes under itself, never a `[processes]` entry's.
const DEPLOY: &str = "deploy";
const CAPSTAN: &str = "capstan";

/// Opens the app's `logs/` folder and moves its writer to a thread.
pub fn open(app_dir: &AppDir, rotation: Rotation) -> anyhow::Result<LogSink> {
    Ok(LogDir::open(app_dir.logs(), rotation)?.spawn()?)
}

/// A line of the daemon's own about the app, into `capstan.log`.
pub async fn note(logs: &LogSink, line: impl Into<String>) {
    append(logs, CAPSTAN, line.into()).await;
}

/// Runs the deploy with every progress line copied into `deploy.log`, after
/// a header line, and its outcome last.
pub async fn logged_deploy(
    ctx: &deploy::Context,
    request: Deploy,
    progress: &Progress,
) -> Result<Live, ApiError> {
    let logs = ctx.logs.clone();
    let commit = request.new.get(..7).unwrap_or(&request.new).to_owned();
    append(
        &logs,
        DEPLOY,
        format!("deploy of {commit} ({})", request.refname),
    )
    .await;
    let (teed, mut lines) = Progress::channel();
    let run = async move {
        let result = deploy::run(ctx, request, &teed).await;
        drop(teed);
        result
    };
    let copy = async {
        while let Some(line) = lines.recv().await {
            append(&logs, DEPLOY, line.clone()).await;
            progress.line(line).await;
        }
    };
    let (result, ()) = tokio::join!(run, copy);
    let outcome = match &result {
        Ok(live) => format!("deploy of {commit} done: release {} is live", live.release),
        Err(error) => format!("deploy of {commit} failed: {}", error.message),
    };
    append(&logs, DEPLOY, outcome).await;
    result
}

async fn append(logs: &LogSink, process: &str, line: String) {
    let name = ProcessName::new(process).expect("the daemon's own log names are valid");
    // A writer that stopped has said so in the daemon's log already.
    let _ = logs.append(&name, line).await;
}

/// Streams the app's lines: the last `-n` (merged by time), then with
/// `follow` every new one until the client goes away.
pub async fn stream(dir: PathBuf, request: Logs, progress: Progress) -> Result<LogsEnd, ApiError> {
    let app = request.app.as_str();
    let chosen = match &request.process {
        None => None,
        Some(process) => Some(vec![known_process(&dir, app, process)?]),
    };
    let n = request.lines.map_or(DEFAULT_LINES, |n| n as usize);
    let unreadable =
        |e: capstan_logs::Error| ApiError::internal(format!("cannot read the logs of {app}: {e}"));
    let mut sent = 0;
    if !request.follow {
        let dir2 = dir.clone();
        let lines =
            tokio::task::spawn_blocking(move || capstan_logs::tail(&dir2, chosen.as_deref(), n))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(unreadable)?;
        for line in lines {
            progress.line(line.to_string()).await;
            sent += 1;
        }
        return Ok(LogsEnd { lines: sent });
    }
    let mut lines = capstan_logs::follow(dir, chosen.as_deref(), n)
        .await
        .map_err(unreadable)?;
    loop {
        tokio::select! {
            () = progress.closed() => break,
            line = lines.next() => match line {
                Some(line) => {
                    progress.line(line.to_string()).await;
                    sent += 1;
                }
                None => break,
            },
        }
    }
    Ok(LogsEnd { lines: sent })
}

/// `-p NAME` names a process that has a log file in the folder.
fn known_process(dir: &std::path::Path, app: &str, process: &str) -> Result<ProcessName, ApiError> {
    let name = ProcessName::new(process).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let have = capstan_logs::list(dir).unwrap_or_default();
    if have.contains(&name) {
        return Ok(name);
    }
    let names: Vec<&str> = have.iter().map(ProcessName::as_str).collect();
    let what = if names.is_empty() {
        "none yet".to_owned()
    } else {
        names.join(", ")
    };
    Err(ApiError::new(
        ErrorKind::NotFound,
        format!("{app} has no log for `{process}`; the processes with logs: {what}"),
    ))
}
