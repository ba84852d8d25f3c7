//! One worker slot: start a worker, wait for its hello, serve until it ends,
//! restart it with backoff. The slot owns the process; nobody else waits on it.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_proc::{socketpair, Child, FdSocket, Spec};
use capstan_wire::{Hello, Kind};
use tokio::sync::oneshot;

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

pub(crate) async fn run(
    pool: Arc<PoolInner>,
    index: usize,
    booted: oneshot::Sender<Result<(), BootError>>,
) {
    let mut booted = Some(booted);
    let mut backoff = FIRST_BACKOFF;
    let mut stop = pool.stop.subscribe();
    let name = format!("web.{index}");
    while !is_stopped(&stop) {
        let started = Instant::now();
        match boot(&pool, &name).await {
            Ok((mut child, worker, reader)) => {
                if let Some(booted) = booted.take() {
                    let _ = booted.send(Ok(()));
                }
                tokio::spawn(Arc::clone(&worker).read_loop(reader, Arc::clone(&pool)));
                pool.add(Arc::clone(&worker));
                tracing::debug!(worker = %name, pid = child.pid(), "worker ready");
                let exit = tokio::select! {
                    exit = child.wait() => exit,
                    _ = worker.kill.notified() => child.terminate(pool.spec.kill_grace).await,
                    _ = stopped(&mut stop) => {
                        worker.shutdown().await;
                        match tokio::time::timeout(pool.spec.kill_grace, child.wait()).await {
                            Ok(exit) => exit,
                            Err(_) => child.terminate(pool.spec.kill_grace).await,
                        }
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
            }
            Err(error) => {
                if let Some(booted) = booted.take() {
                    let _ = booted.send(Err(error));
                    return;
                }
                tracing::error!(worker = %name, restart_in = ?backoff, "worker failed to start: {error}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut stop) => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Starts one worker process and waits for its hello.
async fn boot(
    pool: &PoolInner,
    name: &str,
) -> Result<(Child, Arc<Worker>, FrameReader), BootError> {
    let spec = &pool.spec;
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
    let mut child = Child::spawn(Spec {
        name: name.to_owned(),
        program: spec.python.clone().into(),
        args,
        env,
        cwd: spec.root.clone(),
        inherit: Some(child_end),
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
                    let worker =
                        Worker::new(name.to_owned(), child.pid(), hello.threads as usize, socket);
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
