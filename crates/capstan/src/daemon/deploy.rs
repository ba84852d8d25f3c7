//! A push's deploy, step by step: lock, checkout, the app file, venv from
//! the store, build commands (as the app's user, in the release folder lent
//! to it), the seal, release commands, a health-checked generation, the
//! switch (done by the state loop), `current`, retention. Each step is a progress line with its
//! time; a failure leaves the live release serving.
//!
//! Its last steps (prepare, start, switch) are `launch`'s, which rollback,
//! restart, scale and env changes share.

use std::path::{Path, PathBuf};
use std::time::Instant;

use capstan_control::answers::Live;
use capstan_control::{ApiError, Progress};
use capstan_deploy::{
    AppDir, Building, DeployLock, Git, Oid, ReleaseStatus, Releases, Repo, DEFAULT_KEEP,
};
use tokio::sync::mpsc;

use super::apps::AppRecord;
use super::https::Https;
use super::launch;
use super::state::Event;
use crate::app_env;
use crate::app_logs::AppLogs;
use crate::commands::{self, Commands, Event as CommandEvent, Step};
use crate::generation::{Generation, Instance};

/// The git variables a hook may hand over, all paths into the repository.
const GIT_ENV: [&str; 3] = [
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
];

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
    let mut building = releases
        .begin(&lock, &git, &sha)
        .map_err(|e| ApiError::failed(format!("checkout failed: {e}; {still_serving}")))?;
    let number = building.id().number;
    progress
        .line(format!("building release {number} ({})", sha.short()))
        .await;
    let record = AppRecord::read(app_dir.path()).map_err(|e| ApiError::internal(e.to_string()))?;

    let logs = AppLogs::Files(ctx.logs.clone());
    let started = build(
        &app_dir,
        &mut building,
        &record,
        ctx.https.as_ref(),
        &logs,
        progress,
    )
    .await;
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
            "release {number} could not be recorded as ready: {error}; {still_serving}"
        )));
    }

    launch::switch(&ctx.events, &request.app, number as u32, generation).await?;
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
    prune_venvs(&app_dir, &releases, progress).await;
    let http_url = |d: &str| launch::http_url(ctx.http_port, d);
    let url = launch::url(ctx, &record);
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

/// Retention for the venv store: removes the venvs no kept release runs
/// with. A release recorded before releases named their venv keeps them all.
async fn prune_venvs(app_dir: &AppDir, releases: &Releases, progress: &Progress) {
    let Ok(list) = releases.list() else { return };
    let mut keep = Vec::new();
    for info in list
        .iter()
        .filter(|r| r.record.status == ReleaseStatus::Ready)
    {
        match info
            .record
            .venv
            .as_deref()
            .and_then(capstan_venv::StoreKey::parse)
        {
            Some(key) => keep.push(key),
            None => return,
        }
    }
    match capstan_venv::prune(&app_dir.venvs(), &keep).await {
        Ok(removed) if !removed.is_empty() => {
            progress
                .line(format!("removed {} unused venv(s)", removed.len()))
                .await;
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(app = %app_dir.name().as_str(), %error, "could not prune venvs")
        }
    }
}

/// The steps between the checkout and a healthy generation.
async fn build(
    app_dir: &AppDir,
    building: &mut Building,
    record: &AppRecord,
    https: Option<&Https>,
    logs: &AppLogs,
    progress: &Progress,
) -> anyhow::Result<Generation> {
    let dir = building.dir();
    let server_env = super::server_env::read(app_dir)?;
    let (instance, venv_line) =
        launch::prepare(app_dir, &dir, record, &server_env, https, logs).await?;
    if let Some(name) = instance.venv.dir.file_name() {
        building.uses_venv(&name.to_string_lossy());
    }
    progress.line(venv_line).await;
    if !instance.app.build.is_empty() {
        // The build writes into its release, as the app's user: the folder is
        // the user's until the seal takes it back.
        if let Some(identity) = &instance.identity {
            building.lend(identity.uid, identity.gid)?;
        }
        commands(&instance, Step::Build, &instance.app.build, &dir, progress).await?;
    }
    let started = Instant::now();
    building.seal()?;
    progress
        .line(format!(
            "release sealed ({:.1} s)",
            started.elapsed().as_secs_f64()
        ))
        .await;
    commands(
        &instance,
        Step::Release,
        &instance.app.release,
        &dir,
        progress,
    )
    .await?;
    launch::start(&instance, progress).await
}

/// `[build]` or `[release] commands` (or a Procfile `release:`) in the
/// release folder, in order, as the app's user with the commands' env,
/// `CAPSTAN_DATA_DIR` and the venv first on PATH, each in its own process
/// group; every output line goes to the pusher as it comes. The first that
/// fails ends the deploy.
async fn commands(
    instance: &Instance,
    step: Step,
    commands: &[String],
    dir: &Path,
    progress: &Progress,
) -> anyhow::Result<()> {
    if commands.is_empty() {
        return Ok(());
    }
    let mut env = app_env::process_env(&instance.app.command_env(), &instance.venv);
    env.extend(
        instance
            .env
            .iter()
            .filter(|(k, _)| k == "CAPSTAN_DATA_DIR")
            .cloned(),
    );
    let commands = Commands {
        step,
        commands,
        cwd: dir,
        env,
        identity: instance.identity.clone(),
    };
    let label = step.label();
    let started = Instant::now();
    commands
        .run(&mut ToProgress { label, progress })
        .await
        .map_err(|error| match error.downcast::<commands::Failed>() {
            Ok(failed) => anyhow::anyhow!("{failed} (its output is above)"),
            Err(error) => error,
        })?;
    progress
        .line(format!(
            "{label} commands done ({:.1} s)",
            started.elapsed().as_secs_f64()
        ))
        .await;
    Ok(())
}

/// A deploy's report: every line to the pusher.
struct ToProgress<'a> {
    label: &'static str,
    progress: &'a Progress,
}

impl commands::Report for ToProgress<'_> {
    async fn event(&mut self, event: CommandEvent) {
        let label = self.label;
        let line = match event {
            CommandEvent::Started(command) => format!("{label} command: {command}"),
            CommandEvent::Line(line) => format!("  {line}"),
            CommandEvent::Done(took) => {
                format!("{label} command done ({:.1} s)", took.as_secs_f64())
            }
        };
        self.progress.line(line).await;
    }
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
