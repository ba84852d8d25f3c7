//! A push's deploy, step by step: lock, checkout, venv from the store,
//! release commands, a health-checked generation, the switch (done by the
//! state loop), `current`, retention. Each step is a progress line with its
//! time; a failure leaves the live release serving.
//!
//! Also what a restart of the daemon uses to bring a live release back
//! ([`instance`]): the same venv and environment as its deploy had.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use capstan_control::answers::Live;
use capstan_control::{ApiError, Progress};
use capstan_deploy::{AppDir, DeployLock, Git, Oid, Releases, Repo, DEFAULT_KEEP};
use capstan_proc::{Child, Spec};
use tokio::sync::{mpsc, oneshot};

use super::apps::AppRecord;
use super::https::Https;
use super::state::Event;
use crate::app_env;
use crate::app_logs::AppLogs;
use crate::generation::{Generation, Instance};

/// The git variables a hook may hand over, all paths into the repository.
const GIT_ENV: [&str; 3] = [
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
];

/// How long the last output lines of a finished release command may take.
const LAST_LINES_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What a deploy needs from the daemon.
pub struct Context {
    pub root: PathBuf,
    /// The plain HTTP port, for the URL in the last line.
    pub http_port: u16,
    /// With a TLS listener: the URL is https, and the Site redirects.
    pub https: Option<Https>,
    /// Where `Switch` goes.
    pub events: mpsc::Sender<Event>,
    /// The app's log files, for its new generation.
    pub logs: capstan_logs::LogSink,
}

/// Runs the deploy of `request`, streaming its steps to `progress`.
pub async fn run(
    ctx: &Context,
    request: capstan_control::api::Deploy,
    progress: &Progress,
) -> Result<Live, ApiError> {
    let app_dir = AppDir::open(&ctx.root, &request.app)
        .map_err(|_| ApiError::unknown_app(request.app.as_str()))?;
    let sha = Oid::new(&request.new)
        .ok_or_else(|| ApiError::bad_request("the pushed commit id is not valid"))?;
    let git_env = checked_git_env(&app_dir, &request.git_env)?;
    let lock =
        DeployLock::acquire(&app_dir, sha.short()).map_err(|e| ApiError::busy(e.to_string()))?;
    let releases = Releases::open(&app_dir);
    let previous = releases
        .live()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let still_serving = match &previous {
        Some(id) => format!("release {} is still serving", id.number),
        None => "nothing was serving, and nothing is now".to_owned(),
    };
    let repo = Repo::open(&app_dir);
    let git = Git::new(app_dir.repo()).with_env(git_env);
    let building = releases
        .begin(&lock, &git, &sha)
        .map_err(|e| ApiError::failed(format!("checkout failed: {e}; {still_serving}")))?;
    let number = building.id().number;
    progress
        .line(format!("building release {number} ({})", sha.short()))
        .await;
    let dir = building.dir();
    let record = AppRecord::read(app_dir.path()).map_err(|e| ApiError::internal(e.to_string()))?;

    let logs = AppLogs::Files(ctx.logs.clone());
    let started = build(&app_dir, &dir, &record, ctx.https.as_ref(), &logs, progress).await;
    let generation = match started {
        Ok(generation) => generation,
        Err(error) => {
            let _ = building.fail(&format!("{error:#}"));
            return Err(ApiError::failed(format!(
                "release {number} failed: {error:#}\n{still_serving}"
            )));
        }
    };
    if let Err(error) = building.finish() {
        let _ = generation.drain(Instant::now()).await;
        return Err(ApiError::failed(format!(
            "release {number} could not be sealed: {error}; {still_serving}"
        )));
    }

    let (answer, switched) = oneshot::channel();
    let switch = Event::Switch {
        app: request.app.clone(),
        release: number as u32,
        generation,
        answer,
    };
    if ctx.events.send(switch).await.is_err() {
        return Err(ApiError::new(
            capstan_control::ErrorKind::Unavailable,
            "the daemon is stopping",
        ));
    }
    let _ = switched.await;
    releases
        .activate(&lock, number)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if repo.deploy_branch().ok().flatten().is_none() {
        if let Some(branch) = request.refname.strip_prefix("refs/heads/") {
            let _ = repo.remember_deploy_branch(branch);
        }
    }
    match releases.prune(&lock, DEFAULT_KEEP) {
        Ok(pruned) if !pruned.is_empty() => {
            let numbers: Vec<String> = pruned.iter().map(|id| id.number.to_string()).collect();
            progress
                .line(format!("removed old releases {}", numbers.join(", ")))
                .await;
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(app = %request.app.as_str(), %error, "could not prune releases")
        }
    }
    let http_url = |d: &str| match ctx.http_port {
        80 => format!("http://{d}"),
        port => format!("http://{d}:{port}"),
    };
    let url = record.domains.first().map(|d| match &ctx.https {
        Some(https) => https.url(d),
        None => http_url(d),
    });
    // A domain whose first order is still under way (or failing) is
    // served on plain HTTP only; the pusher should know that.
    let uncertified = ctx.https.iter().flat_map(|https| {
        record
            .domains
            .iter()
            .filter(|d| !https.certs.serves(d))
            .map(|d| {
                format!(
                    "{d} has no certificate yet (the daemon's log says how its order goes); \
                     until it has one it is served at {}",
                    http_url(d)
                )
            })
    });
    let pending_certificate: Vec<String> = uncertified.collect();
    for line in pending_certificate {
        progress.line(line).await;
    }
    let previous = previous.map(|id| id.number as u32);
    let mut last = format!("{} release {number} is live", request.app.as_str());
    if let Some(url) = &url {
        last.push_str(&format!(" at {url}"));
    }
    if let Some(previous) = previous {
        last.push_str(&format!(" (previous: {previous}, draining)"));
    }
    progress.line(last).await;
    Ok(Live {
        app: request.app,
        release: number as u32,
        commit: sha.to_string(),
        previous,
        url,
    })
}

/// The steps between the checkout and a healthy generation.
async fn build(
    app_dir: &AppDir,
    dir: &Path,
    record: &AppRecord,
    https: Option<&Https>,
    logs: &AppLogs,
    progress: &Progress,
) -> anyhow::Result<Generation> {
    let (instance, venv_line) = instance(app_dir, dir, record, https, logs).await?;
    progress.line(venv_line).await;
    progress
        .line("build commands: skipped (capstan does not read [build] yet)")
        .await;
    release_commands(&instance, dir, progress).await?;
    let started = Instant::now();
    let generation = Generation::start(&instance).await?;
    progress
        .line(format!(
            "health check passed ({:.1} s)",
            started.elapsed().as_secs_f64()
        ))
        .await;
    Ok(generation)
}

/// `[release] commands` (or a Procfile `release:`) in the release folder,
/// in order, with the commands' env and the venv first on PATH, each in its
/// own process group; every output line goes to the pusher as it comes. The
/// first that fails ends the deploy.
async fn release_commands(
    instance: &Instance,
    dir: &Path,
    progress: &Progress,
) -> anyhow::Result<()> {
    let app = &instance.app;
    let mut env = app_env::process_env(&app.command_env(), &instance.venv);
    env.extend(
        instance
            .env
            .iter()
            .filter(|(k, _)| k == "CAPSTAN_DATA_DIR")
            .cloned(),
    );
    for command in &app.release {
        progress.line(format!("release command: {command}")).await;
        let started = Instant::now();
        let (lines, mut output) = tokio::sync::mpsc::unbounded_channel();
        let mut spec = Spec::shell("release", command, dir.to_owned());
        spec.env = env.clone();
        spec.identity = instance.identity.clone();
        spec.lines = Some(lines);
        let mut child = Child::spawn(spec)?;
        let exit = {
            let waited = child.wait();
            tokio::pin!(waited);
            loop {
                tokio::select! {
                    exit = &mut waited => break exit,
                    Some(line) = output.recv() => progress.line(format!("  {line}")).await,
                }
            }
        };
        // Whatever it left running in its group must not outlive the step.
        child.signal_group(nix::sys::signal::Signal::SIGKILL);
        drop(child);
        // The last lines may still be in the pipe's readers.
        while let Ok(Some(line)) = tokio::time::timeout(LAST_LINES_WAIT, output.recv()).await {
            progress.line(format!("  {line}")).await;
        }
        if !exit.success() {
            anyhow::bail!("the release command `{command}` {exit} (its output is above)");
        }
        progress
            .line(format!(
                "release command done ({:.1} s)",
                started.elapsed().as_secs_f64()
            ))
            .await;
    }
    Ok(())
}

/// What a generation of the release in `dir` starts from: its app file, the
/// store's venv for its dependencies, its env, and HTTPS when the daemon
/// serves it (`https_redirect` in the app's file decides the redirect). Also
/// says how the venv came.
pub async fn instance(
    app_dir: &AppDir,
    dir: &Path,
    record: &AppRecord,
    https: Option<&Https>,
    logs: &AppLogs,
) -> anyhow::Result<(Instance, String)> {
    let app = capstan_config::load(dir)?;
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
        workers: None,
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

/// The live release's folder (resolved, so a later switch of `current` does
/// not move a running generation) and number.
pub fn live_release(app_dir: &AppDir) -> anyhow::Result<Option<(u32, PathBuf)>> {
    let Some(id) = Releases::open(app_dir).live()? else {
        return Ok(None);
    };
    Ok(Some((id.number as u32, app_dir.release(&id))))
}

/// The hook's git variables, each path inside the app's repository.
fn checked_git_env(
    app_dir: &AppDir,
    env: &[(String, String)],
) -> Result<Vec<(String, String)>, ApiError> {
    let repo = app_dir
        .repo()
        .canonicalize()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut checked = Vec::new();
    for (name, value) in env {
        // SECURITY: these tell git where to read objects from, as the daemon's
        // user; only the app's own repository may be named.
        if !GIT_ENV.contains(&name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "{name} is not a git variable a deploy may pass"
            )));
        }
        for path in std::env::split_paths(value) {
            let inside = path
                .canonicalize()
                .map(|p| p.starts_with(&repo))
                .unwrap_or(false);
            if !inside {
                return Err(ApiError::bad_request(format!(
                    "{name} names {}, which is not inside the app's repository",
                    path.display()
                )));
            }
        }
        checked.push((name.clone(), value.clone()));
    }
    Ok(checked)
}
