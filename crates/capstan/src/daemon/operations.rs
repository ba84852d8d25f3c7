//! The operations on an app besides a push: rollback, restart, env set and
//! unset, scale and destroy. Each runs once the state loop let it begin
//! (one operation per app at a time), and every one that changes what
//! serves goes through `launch::relaunch`: a new health-checked generation,
//! then the switch, so no request is dropped. A failure leaves the live
//! generation, the app's record and its env as they were.

use std::collections::BTreeMap;
use std::time::Instant;

use capstan_config::{AppName, Web};
use capstan_control::answers::{AppDestroyed, Live, Restarted, Scaled};
use capstan_control::api::{EnvSet, EnvUnset, Rollback, Scale};
use capstan_control::{ApiError, ErrorKind, Progress};
use capstan_deploy::{AppDir, DeployError, DeployLock, Releases};
use tokio::sync::oneshot;

use super::apps::AppRecord;
use super::launch::{self, WEB};
use super::state::{Begun, Event, DRAIN};
use super::{deploy, server_env};

/// Most copies of one `[processes]` entry.
const MAX_COPIES: u32 = 64;

/// `rollback APP [N]`: release N (default: the built one before the live
/// one) goes live again with the store's venv; no build, no release commands.
pub async fn rollback(
    begun: &Begun,
    request: Rollback,
    progress: &Progress,
) -> Result<Live, ApiError> {
    let ctx = &begun.ctx;
    let app_dir = open(ctx, &request.app)?;
    let releases = Releases::open(&app_dir);
    let target = releases
        .rollback_target(request.to.map(u64::from))
        .map_err(refusal)?;
    let number = target.id.number;
    let lock = DeployLock::acquire(&app_dir, target.id.short_sha())
        .map_err(|e| ApiError::busy(e.to_string()))?;
    progress
        .line(format!(
            "rolling back to release {number} ({}): no build, no release commands",
            target.id.short_sha()
        ))
        .await;
    let record = read_record(&app_dir)?;
    let env = read_env(&app_dir)?;
    let dir = app_dir.release(&target.id);
    launch::relaunch(ctx, &app_dir, number as u32, &dir, &record, &env, progress).await?;
    releases
        .activate(&lock, number)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let url = launch::url(ctx, &record);
    let mut last = format!("{} release {number} is live", request.app.as_str());
    if let Some(url) = &url {
        last.push_str(&format!(" at {url}"));
    }
    if let Some(previous) = begun.live {
        last.push_str(&format!(" (previous: {previous}, draining)"));
    }
    progress.line(last).await;
    Ok(Live {
        app: request.app,
        release: number as u32,
        commit: target.record.sha,
        previous: begun.live,
        url,
    })
}

/// `restart APP`: a new generation of the live release.
pub async fn restart(
    begun: &Begun,
    app: AppName,
    progress: &Progress,
) -> Result<Restarted, ApiError> {
    let app_dir = open(&begun.ctx, &app)?;
    let Some((number, dir)) = deploy::live_release(&app_dir).map_err(internal)? else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!(
                "{} has no live release to restart; `git push` to its repository deploys one",
                app.as_str()
            ),
        ));
    };
    progress
        .line(format!("restarting {} release {number}", app.as_str()))
        .await;
    let record = read_record(&app_dir)?;
    let env = read_env(&app_dir)?;
    launch::relaunch(&begun.ctx, &app_dir, number, &dir, &record, &env, progress).await?;
    progress
        .line(format!("{} release {number} restarted", app.as_str()))
        .await;
    Ok(Restarted {
        app,
        release: Some(number),
    })
}

/// `env APP set K=V...`: stored, then applied by a restart when a release is live.
pub async fn env_set(
    begun: &Begun,
    request: EnvSet,
    progress: &Progress,
) -> Result<Restarted, ApiError> {
    let app_dir = open(&begun.ctx, &request.app)?;
    let mut env = read_env(&app_dir)?;
    env.extend(request.vars);
    apply_env(begun, &request.app, &app_dir, env, progress).await
}

/// `env APP unset K...`: each must be set on the server.
pub async fn env_unset(
    begun: &Begun,
    request: EnvUnset,
    progress: &Progress,
) -> Result<Restarted, ApiError> {
    let app_dir = open(&begun.ctx, &request.app)?;
    let mut env = read_env(&app_dir)?;
    for name in &request.names {
        if env.remove(name).is_none() {
            return Err(ApiError::bad_request(format!(
                "{name} is not set on the server for {app}; `capstan env {app}` lists what is \
                 (a default from the app file's [env] is changed in the app file)",
                app = request.app.as_str()
            )));
        }
    }
    apply_env(begun, &request.app, &app_dir, env, progress).await
}

/// A new generation with `env` when something is live, then `env` stored.
async fn apply_env(
    begun: &Begun,
    app: &AppName,
    app_dir: &AppDir,
    env: BTreeMap<String, String>,
    progress: &Progress,
) -> Result<Restarted, ApiError> {
    let live = deploy::live_release(app_dir).map_err(internal)?;
    if let Some((number, dir)) = &live {
        progress
            .line(format!(
                "restarting {} release {number} with the new environment",
                app.as_str()
            ))
            .await;
        let record = read_record(app_dir)?;
        launch::relaunch(&begun.ctx, app_dir, *number, dir, &record, &env, progress).await?;
    }
    server_env::write(app_dir, &env).map_err(internal)?;
    match &live {
        Some((number, _)) => {
            progress
                .line(format!(
                    "{} release {number} runs with the new environment",
                    app.as_str()
                ))
                .await
        }
        None => {
            progress
                .line(format!(
                    "stored; {} has no live release yet, its first deploy uses it",
                    app.as_str()
                ))
                .await
        }
    }
    Ok(Restarted {
        app: app.clone(),
        release: live.map(|(n, _)| n),
    })
}

/// `scale APP web=N NAME=M`: kept in the app's record, applied by a new
/// generation of the live release.
pub async fn scale(begun: &Begun, request: Scale, progress: &Progress) -> Result<Scaled, ApiError> {
    let app = &request.app;
    let app_dir = open(&begun.ctx, app)?;
    let Some((number, dir)) = deploy::live_release(&app_dir).map_err(internal)? else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!(
                "{} has no live release to scale; `git push` deploys one first \
                 (its app file says which processes it has)",
                app.as_str()
            ),
        ));
    };
    if request.counts.is_empty() {
        return Err(ApiError::bad_request(
            "say what to scale, like `capstan scale APP web=4 tasks=2`",
        ));
    }
    let file = capstan_config::load(&dir).map_err(|e| internal(e.into()))?;
    for (name, &count) in &request.counts {
        check_count(app, &file, name, count)?;
    }
    let mut record = read_record(&app_dir)?;
    record
        .scale
        .extend(request.counts.iter().map(|(k, v)| (k.clone(), *v)));
    progress
        .line(format!(
            "scaling {} release {number} to {}",
            app.as_str(),
            words(&request.counts)
        ))
        .await;
    let env = read_env(&app_dir)?;
    launch::relaunch(&begun.ctx, &app_dir, number, &dir, &record, &env, progress).await?;
    record.write(app_dir.path()).map_err(internal)?;
    let mut counts = BTreeMap::new();
    if matches!(file.web, Web::Wsgi(_)) {
        let default = file.workers.unwrap_or_else(default_workers) as u32;
        counts.insert(WEB.to_owned(), *record.scale.get(WEB).unwrap_or(&default));
    }
    for name in file.processes.keys() {
        counts.insert(name.clone(), *record.scale.get(name).unwrap_or(&1));
    }
    progress
        .line(format!("{} runs {}", app.as_str(), words(&counts)))
        .await;
    Ok(Scaled {
        app: request.app,
        counts,
    })
}

/// The pool's default size, as `PoolSpec::new` picks it.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn words(counts: &BTreeMap<String, u32>) -> String {
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(" ")
}

/// `web` is the worker count (1..=1024) of a WSGI app; any other name must be
/// a `[processes]` entry (0..=64 copies).
fn check_count(
    app: &AppName,
    file: &capstan_config::App,
    name: &str,
    count: u32,
) -> Result<(), ApiError> {
    let max_workers = capstan_config::MAX_WORKERS_OR_THREADS as u32;
    if name == WEB {
        if !matches!(file.web, Web::Wsgi(_)) {
            return Err(ApiError::bad_request(format!(
                "{} runs its own web command, which is one process; web=N sets the number \
                 of capstan's Python workers, for a WSGI app",
                app.as_str()
            )));
        }
        if !(1..=max_workers).contains(&count) {
            return Err(ApiError::bad_request(format!(
                "web={count}: the worker count goes from 1 to {max_workers}"
            )));
        }
        return Ok(());
    }
    if !file.processes.contains_key(name) {
        let mut known = vec![WEB.to_owned()];
        known.extend(file.processes.keys().cloned());
        return Err(ApiError::bad_request(format!(
            "{} has no process named {name}; it has {} ([processes] in the app file)",
            app.as_str(),
            known.join(", ")
        )));
    }
    if count > MAX_COPIES {
        return Err(ApiError::bad_request(format!(
            "{name}={count}: a process runs 0 to {MAX_COPIES} copies"
        )));
    }
    Ok(())
}

/// `apps destroy APP`: out of the route table and the ACME tasks, its
/// generation drained, then its folder and its system user removed.
pub async fn destroy(begun: &Begun, app: AppName) -> Result<AppDestroyed, ApiError> {
    let app_dir = open(&begun.ctx, &app)?;
    let (answer, removed) = oneshot::channel();
    let remove = Event::Remove {
        app: app.clone(),
        answer,
    };
    let stopping = || ApiError::new(ErrorKind::Unavailable, "the daemon is stopping");
    begun
        .ctx
        .events
        .send(remove)
        .await
        .map_err(|_| stopping())?;
    if let Some(generation) = removed.await.map_err(|_| stopping())? {
        generation.drain(Instant::now() + DRAIN).await;
    }
    let path = app_dir.path().to_owned();
    std::fs::remove_dir_all(&path).map_err(|e| {
        ApiError::failed(format!(
            "{} is stopped and no longer served, but {} could not be removed: {e}; remove it by hand",
            app.as_str(),
            path.display()
        ))
    })?;
    capstan_users::remove_app_user(&app).map_err(|e| {
        ApiError::failed(format!(
            "{} is removed, but not its system user: {e}",
            app.as_str()
        ))
    })?;
    tracing::info!(app = app.as_str(), "app destroyed");
    Ok(AppDestroyed { name: app })
}

fn open(ctx: &deploy::Context, app: &AppName) -> Result<AppDir, ApiError> {
    AppDir::open(&ctx.root, app).map_err(|_| ApiError::unknown_app(app.as_str()))
}

fn read_record(app_dir: &AppDir) -> Result<AppRecord, ApiError> {
    AppRecord::read(app_dir.path()).map_err(internal)
}

fn read_env(app_dir: &AppDir) -> Result<BTreeMap<String, String>, ApiError> {
    server_env::read(app_dir).map_err(internal)
}

fn internal(error: anyhow::Error) -> ApiError {
    ApiError::internal(format!("{error:#}"))
}

/// A rollback the releases do not allow, as the person's mistake it is.
fn refusal(error: DeployError) -> ApiError {
    match error {
        DeployError::NoSuchRelease { .. } => ApiError::new(ErrorKind::NotFound, error.to_string()),
        DeployError::NotBuilt { .. }
        | DeployError::AlreadyLive { .. }
        | DeployError::NothingToRollBackTo { .. }
        | DeployError::NothingLive { .. } => ApiError::bad_request(error.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}
