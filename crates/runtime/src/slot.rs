//! One worker slot: start a worker, wait for its hello, serve until it ends,
//! restart it with backoff. The slot owns the process; nobody else waits on it.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_proc::{socketpair, Child, FdSocket, Spec};
use capstan_wire::{Hello, Kind};
use tokio::sync::{mpsc, oneshot};

use crate::stop::{is_stopped, stopped};

use crate::frames::FrameReader;
use crate::pool::PoolInner;
use crate::worker::Worker;
use crate::BootError;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A worker that lived this long had no boot problem: restart it quickly.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// How long a worker that exited while booting gets its last frame read. Its end
/// of the socket is closed, so this only waits if a child of it inherited the socket.
const LEFTOVER_WAIT: Duration = Duration::from_secs(1);

/// What a slot can be asked to do while its worker serves.
pub(crate) enum SlotCommand {
    /// Start a new worker beside the current one and report whether it booted;
    /// then swap it in if `commit` says true, or throw it away.
    Replace {
        booted: oneshot::Sender<Result<(), BootError>>,
        commit: oneshot::Receiver<bool>,
    },
}

pub(crate) async fn run(
    pool: Arc<PoolInner>,
    index: usize,
    booted: oneshot::Sender<Result<(), BootError>>,
    mut commands: mpsc::Receiver<SlotCommand>,
) {
    let mut booted = Some(booted);
    let mut backoff = FIRST_BACKOFF;
    let mut stop = pool.stop.subscribe();
    let name = format!("web.{index}");
    while !is_stopped(&stop) {
        let started = Instant::now();
        match boot(&pool, index, &name).await {
            Ok((child, worker, reader)) => {
                if let Some(booted) = booted.take() {
                    let _ = booted.send(Ok(()));
                }
                let (mut child, mut worker) = go_live(&pool, child, worker, reader);
                let mut memory_check = tokio::time::interval(MEMORY_CHECK);
                // False once a replacement failed to start: no retry on every check.
                let mut can_recycle = true;
                let exit = loop {
                    tokio::select! {
                        _ = memory_check.tick(), if pool.spec.max_rss.is_some() && can_recycle => {
                            if resident_bytes(child.pid()) > pool.spec.max_rss {
                                tracing::warn!(worker = %name, pid = child.pid(), max_rss = pool.spec.max_rss, "worker uses more memory than max_rss");
                                worker.recycle.notify_one();
                            }
                        }
                        exit = child.wait() => break exit,
                        _ = worker.kill.notified() => break child.terminate(pool.spec.kill_grace).await,
                        _ = worker.recycle.notified() => {
                            tracing::info!(worker = %name, pid = child.pid(), served = worker.served(), "recycling the worker");
                            pool.spec.log.note(|| format!("{name} (pid {}) is replaced after {} requests", child.pid(), worker.served())).await;
                            // Whatever the reason, one replacement at a time.
                            worker.stop_recycling();
                            match boot(&pool, index, &name).await {
                                Ok(next) => (child, worker) = swap(&pool, (child, worker), next),
                                Err(error) => {
                                    // Keep the old worker; trying again on every request would spin.
                                    can_recycle = false;
                                    tracing::error!(worker = %name, "could not start a replacement, so the worker is not recycled: {error}");
                                }
                            }
                        }
                        Some(command) = commands.recv() => {
                            let SlotCommand::Replace { booted, commit } = command;
                            match boot(&pool, index, &name).await {
                                Ok(next) => {
                                    let _ = booted.send(Ok(()));
                                    if commit.await == Ok(true) {
                                        (child, worker) = swap(&pool, (child, worker), next);
                                    } else {
                                        let (mut unused, _, _) = next;
                                        unused.terminate(pool.spec.kill_grace).await;
                                    }
                                }
                                Err(error) => {
                                    let _ = booted.send(Err(error));
                                }
                            }
                        }
                        _ = stopped(&mut stop) => break retire(&worker, &mut child, pool.spec.kill_grace, pool.spec.kill_grace).await,
                    }
                };
                pool.remove(&worker);
                if is_stopped(&stop) {
                    break;
                }
                if started.elapsed() > HEALTHY_AFTER {
                    backoff = FIRST_BACKOFF;
                }
                tracing::warn!(worker = %name, pid = child.pid(), %exit, restart_in = ?backoff, "worker ended; starting a new one");
                pool.count_restart(&name);
                pool.spec
                    .log
                    .note(|| {
                        format!(
                            "{name} (pid {}) {exit}; starting a new one in {backoff:?}",
                            child.pid()
                        )
                    })
                    .await;
            }
            Err(error) => {
                if let Some(booted) = booted.take() {
                    let _ = booted.send(Err(error));
                    return;
                }
                tracing::error!(worker = %name, restart_in = ?backoff, "worker failed to start: {error}");
                pool.count_restart(&name);
                pool.spec
                    .log
                    .note(|| {
                        format!("{name} failed to start: {error}; trying again in {backoff:?}")
                    })
                    .await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut stop) => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// How often a worker's memory is compared with max_rss.
const MEMORY_CHECK: Duration = Duration::from_secs(1);

/// A process's resident memory, from /proc (None if it is gone).
fn resident_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Starts reading a booted worker's frames and offers it requests.
fn go_live(
    pool: &Arc<PoolInner>,
    child: Child,
    worker: Arc<Worker>,
    reader: FrameReader,
) -> (Child, Arc<Worker>) {
    tokio::spawn(Arc::clone(&worker).read_loop(reader, Arc::clone(pool)));
    pool.add(Arc::clone(&worker));
    tracing::debug!(worker = %worker.name, pid = child.pid(), "worker ready");
    (child, worker)
}

/// Puts `next` in the place of `current`: the new worker takes requests from
/// now on, the old one finishes what it holds and exits in the background.
fn swap(
    pool: &Arc<PoolInner>,
    current: (Child, Arc<Worker>),
    next: (Child, Arc<Worker>, FrameReader),
) -> (Child, Arc<Worker>) {
    let (next_child, next_worker, reader) = next;
    let live = go_live(pool, next_child, next_worker, reader);
    let (mut old_child, old_worker) = current;
    pool.remove(&old_worker);
    let pool = Arc::clone(pool);
    tokio::spawn(async move {
        let patience = pool.spec.graceful_timeout;
        let exit = retire(&old_worker, &mut old_child, patience, pool.spec.kill_grace).await;
        tracing::debug!(worker = %old_worker.name, pid = old_child.pid(), %exit, "old worker stopped");
    });
    live
}

/// Stops a worker that takes no new requests: it finishes the ones it holds
/// (up to the graceful timeout), then exits; failing that, its group is killed.
async fn retire(
    worker: &Worker,
    child: &mut Child,
    patience: Duration,
    kill_grace: Duration,
) -> capstan_proc::Exit {
    worker.shutdown().await;
    match tokio::time::timeout(patience, child.wait()).await {
        Ok(exit) => exit,
        Err(_) => child.terminate(kill_grace).await,
    }
}

/// Starts one worker process and waits for its hello.
async fn boot(
    pool: &PoolInner,
    index: usize,
    name: &str,
) -> Result<(Child, Arc<Worker>, FrameReader), BootError> {
    let spec = &pool.spec;
    // One worker, the first one, is asked for the app's static folders, once:
    // the others would only say the same again (and log the same skips).
    let ask_static = index == 1 && pool.static_mounts.get().is_none();
    let (parent, child_end) =
        socketpair().map_err(|e| BootError::Protocol(format!("socketpair: {e}")))?;
    let mut env: Vec<(OsString, OsString)> = spec.env.clone();
    env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    let args: Vec<OsString> = vec![
        spec.shim.clone().into(),
        "--fd".into(),
        capstan_proc::INHERITED_FD.to_string().into(),
        "--app".into(),
        spec.target.clone().into(),
        "--threads".into(),
        spec.threads.to_string().into(),
        "--root".into(),
        spec.root.clone().into(),
        "--name".into(),
        name.into(),
    ];
    let mut args = args;
    if ask_static {
        args.push("--static-mounts".into());
    }
    let mut child = Child::spawn(Spec {
        name: name.to_owned(),
        program: spec.python.clone().into(),
        args,
        env,
        cwd: spec.root.clone(),
        inherit: Some(child_end),
        identity: spec.identity.clone(),
        lines: None,
        log: spec.log.clone(),
    })?;
    let socket = Arc::new(
        FdSocket::new(parent).map_err(|e| BootError::Protocol(format!("worker socket: {e}")))?,
    );
    let mut reader = FrameReader::new(Arc::clone(&socket));
    let target = spec.target.clone();
    let first = tokio::select! {
        frame = tokio::time::timeout(spec.boot_timeout, reader.next()) => frame,
        exit = child.wait() => {
            // A worker that fails to import sends its traceback, then exits at once:
            // the exit may be seen first, with the traceback still in the socket.
            let leftover = tokio::time::timeout(LEFTOVER_WAIT, reader.next()).await;
            if let Ok(Ok(Some(incoming))) = leftover {
                if incoming.frame.kind == Kind::BootError {
                    return Err(BootError::Import {
                        target,
                        traceback: String::from_utf8_lossy(&incoming.frame.payload).into_owned(),
                    });
                }
            }
            return Err(BootError::Exited { target, exit });
        }
    };
    let failure = match first {
        Ok(Ok(Some(incoming))) => match incoming.frame.kind {
            Kind::Hello => match Hello::parse(&incoming.frame.payload) {
                Ok(hello) => {
                    if ask_static {
                        let _ = pool.static_mounts.set(hello.static_mounts);
                    }
                    let worker = Worker::new(
                        name.to_owned(),
                        child.pid(),
                        hello.threads as usize,
                        spec.pipeline,
                        socket,
                    );
                    worker.recycle_after(spec.recycle_limit());
                    return Ok((child, Arc::new(worker), reader));
                }
                Err(error) => BootError::Protocol(error.to_string()),
            },
            Kind::BootError => BootError::Import {
                target,
                traceback: String::from_utf8_lossy(&incoming.frame.payload).into_owned(),
            },
            other => BootError::Protocol(format!("expected hello, got {}", other.name())),
        },
        Ok(Ok(None)) => {
            let exit = child.wait().await;
            BootError::Exited { target, exit }
        }
        Ok(Err(error)) => BootError::Protocol(error.to_string()),
        Err(_) => BootError::Timeout {
            target,
            timeout: spec.boot_timeout,
        },
    };
    child.terminate(spec.kill_grace).await;
    Err(failure)
}
