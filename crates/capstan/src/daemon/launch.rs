//! One path from a release folder to a live generation, shared by deploy,
//! rollback, restart, scale and env changes: [`prepare`] (the Instance: app
//! file, venv from the store, env, identity, scale), [`start`] (a
//! health-checked Generation) and [`switch`] (the state loop routes the
//! app's domains to it and drains the one it replaces). [`relaunch`] is the
//! three in a row for a release that is already built.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use capstan_config::{App, AppName};
use capstan_control::{ApiError, ErrorKind, Progress};
use capstan_deploy::AppDir;
use tokio::sync::{mpsc, oneshot};

use super::apps::AppRecord;
use super::deploy::Context;
use super::https::Https;
use super::state::Event;
use crate::app_env;
use crate::app_logs::AppLogs;
use crate::generation::{Generation, Instance};

/// The name `capstan scale` gives the worker pool.
pub const WEB: &str = "web";

/// Prepare: what a generation of the release in `dir` starts from: its app
/// file with the server's variables over its `[env]` and the app's scale, the
/// store's venv for its dependencies (built again if it was pruned), its
/// identity, and HTTPS when the daemon serves it (`https_redirect` in the
/// app's file decides the redirect). Also says how the venv came.
pub async fn prepare(
    app_dir: &AppDir,
    dir: &Path,
    record: &AppRecord,
    server_env: &BTreeMap<String, String>,
    https: Option<&Https>,
    logs: &AppLogs,
) -> anyhow::Result<(Instance, String)> {
    let mut app = capstan_config::load(dir)?;
    // The server's values win over the app file's defaults, for every
    // process of the app (workers, release commands, processes, cron, exec).
    app.env
        .extend(server_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    scale_processes(&mut app, &record.scale);
    let spec = capstan_venv::StoreSpec {
        python: app.python.as_deref().unwrap_or("python3"),
        requirements: app_env::requirements(&app),
        app_root: dir,
        installer: capstan_venv::Installer::detect(),
    };
    let started = Instant::now();
    let name = app_dir.name().as_str().to_owned();
    let stored = capstan_venv::ensure_in_store(&app_dir.venvs(), &spec, &mut |line: &str| {
        tracing::info!(target: "capstan::output", process = "pip", app = %name, "{line}");
    })
    .await?;
    let venv_line = match stored.outcome {
        capstan_venv::Outcome::Reused => {
            format!("venv reused ({:.1} s)", started.elapsed().as_secs_f64())
        }
        capstan_venv::Outcome::Built { elapsed } => {
            format!("venv built ({:.1} s)", elapsed.as_secs_f64())
        }
    };
    let venv = stored.venv;
    let mut env = app_env::process_env(&app.env, &venv);
    env.push(("CAPSTAN_DATA_DIR".into(), app_dir.data().into()));
    // As root, the app's own system user; its data folder is its own.
    let user = capstan_users::ensure_app_user(app_dir.name(), &app_dir.data())?;
    let identity = user.identity();
    if let Some(identity) = &identity {
        std::os::unix::fs::chown(app_dir.data(), Some(identity.uid), Some(identity.gid))
            .with_context(|| {
                format!(
                    "could not give {} to {}",
                    app_dir.data().display(),
                    user.name
                )
            })?;
    }
    let state = app_dir.path().join(".capstan");
    std::fs::create_dir_all(&state)
        .with_context(|| format!("could not create {}", state.display()))?;
    let instance = Instance {
        workdir: app_env::workdir(&app),
        venv,
        env,
        state,
        workers: record.scale.get(WEB).map(|&n| n as usize),
        threads: None,
        https_port: https
            .filter(|_| app.http.https_redirect)
            .map(|https| https.port),
        certs: https.map(|https| std::sync::Arc::clone(&https.certs)),
        access_log: app.http.access_log,
        logs: logs.clone(),
        identity,
        health_host: record
            .domains
            .first()
            .cloned()
            .unwrap_or_else(|| "localhost".to_owned()),
        app,
    };
    Ok((instance, venv_line))
}

/// A `[processes]` entry scaled to M runs as M copies `NAME.1`..`NAME.M`
/// (none with 0); one not scaled runs once, under its own name.
fn scale_processes(app: &mut App, scale: &BTreeMap<String, u32>) {
    for (name, &count) in scale {
        if name == WEB {
            continue;
        }
        let Some(process) = app.processes.remove(name) else {
            continue;
        };
        for copy in 1..=count {
            app.processes
                .insert(format!("{name}.{copy}"), process.clone());
        }
    }
}

/// Start: boots the generation and health-checks it, saying how long it took.
pub async fn start(instance: &Instance, progress: &Progress) -> anyhow::Result<Generation> {
    let started = Instant::now();
    let generation = Generation::start(instance).await?;
    progress
        .line(format!(
            "health check passed ({:.1} s)",
            started.elapsed().as_secs_f64()
        ))
        .await;
    Ok(generation)
}

/// Switch: hands `generation` to the state loop, which routes `app`'s
/// domains to it and drains the one it replaces; returns once it serves.
pub async fn switch(
    events: &mpsc::Sender<Event>,
    app: &AppName,
    release: u32,
    generation: Generation,
) -> Result<(), ApiError> {
    let (answer, switched) = oneshot::channel();
    let switch = Event::Switch {
        app: app.clone(),
        release,
        generation: Box::new(generation),
        answer,
    };
    if events.send(switch).await.is_err() {
        return Err(ApiError::new(
            ErrorKind::Unavailable,
            "the daemon is stopping",
        ));
    }
    let _ = switched.await;
    Ok(())
}

/// Prepare, start and switch the built release `release` in `dir`, with
/// `record` and `server_env` as they will be once this succeeds. A failure
/// leaves the live generation serving.
pub async fn relaunch(
    ctx: &Context,
    app_dir: &AppDir,
    release: u32,
    dir: &Path,
    record: &AppRecord,
    server_env: &BTreeMap<String, String>,
    progress: &Progress,
) -> Result<(), ApiError> {
    let app = app_dir.name();
    let failed = |error: anyhow::Error| {
        ApiError::failed(format!(
            "the new generation of {} release {release} did not start: {error:#}; \
             the one before it is still serving",
            app.as_str()
        ))
    };
    let logs = AppLogs::Files(ctx.logs.clone());
    let (instance, venv_line) =
        prepare(app_dir, dir, record, server_env, ctx.https.as_ref(), &logs)
            .await
            .map_err(failed)?;
    progress.line(venv_line).await;
    let generation = start(&instance, progress).await.map_err(failed)?;
    switch(&ctx.events, app, release, generation).await
}

/// `http://DOMAIN[:PORT]`.
pub fn http_url(port: u16, domain: &str) -> String {
    match port {
        80 => format!("http://{domain}"),
        port => format!("http://{domain}:{port}"),
    }
}

/// Where the app answers: its first domain, over HTTPS when the daemon serves it.
pub fn url(ctx: &Context, record: &AppRecord) -> Option<String> {
    record.domains.first().map(|d| match &ctx.https {
        Some(https) => https.url(d),
        None => http_url(ctx.http_port, d),
    })
}
