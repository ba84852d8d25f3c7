//! The daemon's state and its one owner: a loop over [`Event`]s. Control
//! requests (through `control_handler`) and deploy steps that change what
//! serves (`Switch`) come in through one channel; nothing else touches the
//! apps, their live generations or the route table.
//!
//! One operation per app at a time: a deploy, rollback, restart, scale, env
//! change or destroy begins here (`Deploy`, `Begin`) and is refused while
//! another runs on the same app; it says so with `End`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use capstan_config::AppName;
use capstan_control::answers::{
    AppCreated, AppList, AppProcesses, AppState, AppSummary, DaemonStatus, EnvVars, Live,
    ProcessList, ReleaseInfo, ReleaseList, ReleaseStatus,
};
use capstan_control::api::{AppsCreate, Deploy};
use capstan_control::{ApiError, Progress};
use capstan_deploy::{AppDir, HookCommand, Repo};
use capstan_edge::{RouteTable, Routes};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::apps::{self, AppRecord};
use super::https::{Certificates, Https};
use super::{deploy, launch, logs, ps, server_env};
use crate::app_logs::AppLogs;
use crate::generation::Generation;

/// How long a replaced generation gets to finish what it holds.
pub const DRAIN: Duration = Duration::from_secs(30);

/// Everything the loop reacts to.
pub enum Event {
    /// `status`.
    Status {
        answer: oneshot::Sender<DaemonStatus>,
    },
    /// `apps create`.
    Create {
        request: AppsCreate,
        answer: oneshot::Sender<Result<AppCreated, ApiError>>,
    },
    /// `apps` (list).
    List { answer: oneshot::Sender<AppList> },
    /// `releases APP`.
    Releases {
        app: AppName,
        answer: oneshot::Sender<Result<ReleaseList, ApiError>>,
    },
    /// A push: the loop starts its pipeline in a task of its own.
    Deploy {
        request: Deploy,
        progress: Progress,
        answer: oneshot::Sender<Result<Live, ApiError>>,
    },
    /// A deploy's new generation is healthy: route the app's domains to it
    /// and drain the one it replaces.
    Switch {
        app: AppName,
        release: u32,
        /// Boxed: a generation is large, and events are moved through a channel.
        generation: Box<Generation>,
        answer: oneshot::Sender<()>,
    },
    /// An operation that is not a push (rollback, restart, scale, env
    /// set/unset, destroy) asks to begin: refused while another runs.
    Begin {
        app: AppName,
        what: &'static str,
        answer: oneshot::Sender<Result<Begun, ApiError>>,
    },
    /// A deploy or another operation ended, either way.
    End { app: AppName },
    /// `apps destroy`, under its operation: the app leaves the state and the
    /// route table; its generation comes back to be drained.
    Remove {
        app: AppName,
        answer: oneshot::Sender<Option<Generation>>,
    },
    /// `ps [APP]`.
    Ps {
        app: Option<AppName>,
        answer: oneshot::Sender<Result<ProcessList, ApiError>>,
    },
    /// `env APP` (list).
    EnvList {
        app: AppName,
        answer: oneshot::Sender<Result<EnvVars, ApiError>>,
    },
    /// `logs APP`: where its files are (the reading happens outside the loop).
    LogsDir {
        app: AppName,
        answer: oneshot::Sender<Result<PathBuf, ApiError>>,
    },
}

/// What an operation that began gets: what it needs from the daemon and
/// which release was live.
pub struct Begun {
    pub ctx: deploy::Context,
    pub live: Option<u32>,
}

/// The operation running on an app, for the refusal of a second one.
struct Operation {
    what: &'static str,
    since: chrono::DateTime<chrono::Utc>,
}

/// One app as the loop knows it.
struct AppEntry {
    name: AppName,
    domains: Vec<String>,
    live: Option<(u32, Generation)>,
    operation: Option<Operation>,
    /// Its live release could not be started when the daemon started.
    failed: bool,
    /// The one writer of its `logs/` folder.
    logs: capstan_logs::LogSink,
}

/// The daemon's state.
pub struct State {
    root: PathBuf,
    http_port: u16,
    routes: Routes,
    apps: BTreeMap<String, AppEntry>,
    draining: JoinSet<()>,
    events: mpsc::Sender<Event>,
    started: Instant,
    /// With a TLS listener: HTTPS as generations see it, and the ACME tasks
    /// that keep every app's domains certified.
    https: Option<(Https, Certificates)>,
    /// How every app's log files rotate (`[logs]` in the settings file).
    rotation: capstan_logs::Rotation,
}

impl State {
    pub fn new(
        root: PathBuf,
        http_port: u16,
        routes: Routes,
        events: mpsc::Sender<Event>,
    ) -> State {
        State {
            root,
            http_port,
            routes,
            apps: BTreeMap::new(),
            draining: JoinSet::new(),
            events,
            started: Instant::now(),
            https: None,
            rotation: capstan_logs::Rotation::default(),
        }
    }

    /// Rotates every app's log files as `rotation` says.
    pub fn with_log_rotation(mut self, rotation: capstan_logs::Rotation) -> State {
        self.rotation = rotation;
        self
    }

    /// Serves every app over HTTPS too, with certificates for its domains.
    pub fn with_https(mut self, https: Https, certificates: Certificates) -> State {
        self.https = Some((https, certificates));
        self
    }

    /// Keeps `domains` certified (from the store, or a new order).
    fn certify(&mut self, app: &AppName, domains: &[String]) {
        if let Some((_, certificates)) = &mut self.https {
            certificates.manage(app.as_str(), domains);
        }
    }

    /// Brings back every app with a live release, one after the other.
    pub async fn restore(&mut self) -> anyhow::Result<()> {
        for name in apps::list(&self.root)? {
            let app_dir = AppDir::open(&self.root, &name)?;
            let record = AppRecord::read(app_dir.path())?;
            self.certify(&name, &record.domains);
            let https = self.https.as_ref().map(|(https, _)| https);
            let logs = logs::open(&app_dir, self.rotation)?;
            let mut entry = AppEntry {
                name: name.clone(),
                domains: record.domains.clone(),
                live: None,
                operation: None,
                failed: false,
                logs: logs.clone(),
            };
            if let Some((number, dir)) = deploy::live_release(&app_dir)? {
                tracing::info!(
                    app = name.as_str(),
                    release = number,
                    "starting the live release"
                );
                let started = async {
                    let server_env = server_env::read(&app_dir)?;
                    let files = AppLogs::Files(logs.clone());
                    let (instance, _) =
                        launch::prepare(&app_dir, &dir, &record, &server_env, https, &files)
                            .await?;
                    Generation::start(&instance).await
                };
                match started.await {
                    Ok(mut generation) => {
                        generation.go_live(None);
                        logs::note(&logs, format!("release {number} started")).await;
                        entry.live = Some((number, generation));
                    }
                    Err(error) => {
                        logs::note(&logs, format!("release {number} did not start: {error:#}"))
                            .await;
                        tracing::error!(
                            app = name.as_str(),
                            release = number,
                            "the live release did not start: {error:#}; push a fix to deploy a new one"
                        );
                        entry.failed = true;
                    }
                }
            }
            self.apps.insert(name.as_str().to_owned(), entry);
            self.publish_routes();
        }
        Ok(())
    }

    /// Handles events until `stop` resolves, then drains every app.
    pub async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Event>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                Some(event) = inbox.recv() => self.handle(event),
                Some(_) = self.draining.join_next(), if !self.draining.is_empty() => {}
            }
        }
        let deadline = Instant::now() + DRAIN;
        self.routes.swap(RouteTable::new());
        for entry in self.apps.values_mut() {
            if let Some((_, generation)) = entry.live.take() {
                self.draining.spawn(generation.drain(deadline));
            }
        }
        while self.draining.join_next().await.is_some() {}
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Status { answer } => {
                let _ = answer.send(DaemonStatus {
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    pid: std::process::id(),
                    root: self.root.clone(),
                    apps: self.apps.len() as u32,
                    uptime_secs: self.started.elapsed().as_secs_f64(),
                });
            }
            Event::Create { request, answer } => {
                let _ = answer.send(self.create(request));
            }
            Event::List { answer } => {
                let apps = self.apps.values().map(summary).collect();
                let _ = answer.send(AppList { apps });
            }
            Event::Releases { app, answer } => {
                let _ = answer.send(self.releases(app));
            }
            Event::Deploy {
                request,
                progress,
                answer,
            } => {
                let ctx = match self.begin(&request.app, "deploy") {
                    Ok(begun) => begun.ctx,
                    Err(error) => {
                        let _ = answer.send(Err(error));
                        return;
                    }
                };
                tokio::spawn(async move {
                    let app = request.app.clone();
                    let result = logs::logged_deploy(&ctx, request, &progress).await;
                    let _ = ctx.events.send(Event::End { app }).await;
                    let _ = answer.send(result);
                });
            }
            Event::Switch {
                app,
                release,
                generation,
                answer,
            } => {
                if let Some(entry) = self.apps.get_mut(app.as_str()) {
                    let mut generation = *generation;
                    let mut old = entry.live.take();
                    generation.go_live(old.as_mut().map(|(_, g)| g));
                    entry.live = Some((release, generation));
                    entry.failed = false;
                    let logs = entry.logs.clone();
                    self.publish_routes();
                    let live = format!("release {release} is live");
                    self.draining.spawn(async move {
                        logs::note(&logs, live).await;
                        if let Some((number, old)) = old {
                            old.drain(Instant::now() + DRAIN).await;
                            logs::note(&logs, format!("release {number} drained")).await;
                        }
                    });
                }
                let _ = answer.send(());
            }
            Event::Begin { app, what, answer } => {
                let _ = answer.send(self.begin(&app, what));
            }
            Event::End { app } => {
                if let Some(entry) = self.apps.get_mut(app.as_str()) {
                    entry.operation = None;
                }
            }
            Event::Remove { app, answer } => {
                let removed = self.apps.remove(app.as_str());
                self.publish_routes();
                let generation = removed.and_then(|entry| {
                    if let Some((_, certificates)) = &mut self.https {
                        certificates.forget(&entry.domains);
                    }
                    entry.live.map(|(_, generation)| generation)
                });
                let _ = answer.send(generation);
            }
            Event::Ps { app, answer } => {
                let _ = answer.send(self.ps(app));
            }
            Event::EnvList { app, answer } => {
                let _ = answer.send(self.env_list(app));
            }
            Event::LogsDir { app, answer } => {
                let dir = match self.apps.get(app.as_str()) {
                    Some(_) => AppDir::open(&self.root, &app)
                        .map(|dir| dir.logs())
                        .map_err(|e| ApiError::internal(e.to_string())),
                    None => Err(ApiError::unknown_app(app.as_str())),
                };
                let _ = answer.send(dir);
            }
        }
    }

    /// Marks `what` as running on `app`, unless something else runs there.
    fn begin(&mut self, app: &AppName, what: &'static str) -> Result<Begun, ApiError> {
        let Some(entry) = self.apps.get_mut(app.as_str()) else {
            return Err(ApiError::unknown_app(app.as_str()));
        };
        if let Some(running) = &entry.operation {
            return Err(ApiError::busy(format!(
                "a {} of {} is running since {} UTC; try again when it is done",
                running.what,
                app.as_str(),
                running.since.format("%H:%M:%S")
            )));
        }
        entry.operation = Some(Operation {
            what,
            since: chrono::Utc::now(),
        });
        Ok(Begun {
            ctx: deploy::Context {
                root: self.root.clone(),
                http_port: self.http_port,
                https: self.https.as_ref().map(|(https, _)| https.clone()),
                events: self.events.clone(),
                logs: entry.logs.clone(),
            },
            live: entry.live.as_ref().map(|(n, _)| *n),
        })
    }

    fn ps(&self, app: Option<AppName>) -> Result<ProcessList, ApiError> {
        if let Some(app) = &app {
            if !self.apps.contains_key(app.as_str()) {
                return Err(ApiError::unknown_app(app.as_str()));
            }
        }
        let apps = self
            .apps
            .values()
            .filter(|entry| app.as_ref().is_none_or(|app| app == &entry.name))
            .map(|entry| AppProcesses {
                app: entry.name.clone(),
                processes: entry
                    .live
                    .as_ref()
                    .map(|(release, generation)| ps::processes(*release, generation))
                    .unwrap_or_default(),
                // The cron jobs and their last runs, from the live generation's
                // scheduler (or the retired one still finishing a run).
                cron: entry
                    .live
                    .as_ref()
                    .and_then(|(_, generation)| serde_json::to_value(generation.cron_status()).ok())
                    .unwrap_or_else(|| serde_json::Value::Array(Vec::new())),
            })
            .collect();
        Ok(ProcessList { apps })
    }

    fn env_list(&self, app: AppName) -> Result<EnvVars, ApiError> {
        if !self.apps.contains_key(app.as_str()) {
            return Err(ApiError::unknown_app(app.as_str()));
        }
        let app_dir =
            AppDir::open(&self.root, &app).map_err(|e| ApiError::internal(e.to_string()))?;
        let vars = server_env::read(&app_dir).map_err(|e| ApiError::internal(format!("{e:#}")))?;
        Ok(EnvVars { app, vars })
    }

    fn create(&mut self, request: AppsCreate) -> Result<AppCreated, ApiError> {
        let name = request.name;
        if self.apps.contains_key(name.as_str()) {
            return Err(ApiError::new(
                capstan_control::ErrorKind::AlreadyExists,
                format!(
                    "an app named {} exists already; `capstan apps` lists them",
                    name.as_str()
                ),
            ));
        }
        for domain in &request.domains {
            if let Some(other) = self.apps.values().find(|a| a.domains.contains(domain)) {
                return Err(ApiError::new(
                    capstan_control::ErrorKind::AlreadyExists,
                    format!(
                        "{domain} is a domain of the app {} already; a Host can lead to one app only",
                        other.name.as_str()
                    ),
                ));
            }
        }
        let failed = |e: &dyn std::fmt::Display| ApiError::failed(e.to_string());
        let app_dir = AppDir::create(&self.root, &name).map_err(|e| failed(&e))?;
        let program = std::env::current_exe().map_err(|e| failed(&e))?;
        let hook = HookCommand {
            program,
            args: vec!["hook".into(), "pre-receive".into()],
            env: vec![
                ("CAPSTAN_ROOT".into(), self.root.display().to_string()),
                ("CAPSTAN_APP".into(), name.as_str().to_owned()),
            ],
        };
        let record = AppRecord {
            domains: request.domains.clone(),
            ..AppRecord::default()
        };
        Repo::init(&app_dir, &hook).map_err(|e| failed(&e))?;
        record.write(app_dir.path()).map_err(|e| failed(&e))?;
        let logs = logs::open(&app_dir, self.rotation).map_err(|e| failed(&e))?;
        let entry = AppEntry {
            name: name.clone(),
            domains: request.domains,
            live: None,
            operation: None,
            failed: false,
            logs,
        };
        let app = summary(&entry);
        self.apps.insert(name.as_str().to_owned(), entry);
        tracing::info!(app = name.as_str(), "app created");
        // Asked for now, not at the first deploy: HTTP-01 is answered by the
        // front whether or not the app serves yet, so its first release is
        // live over HTTPS from the start.
        self.certify(&name, &record.domains);
        Ok(AppCreated {
            app,
            repo: app_dir.repo(),
        })
    }

    fn releases(&self, app: AppName) -> Result<ReleaseList, ApiError> {
        if !self.apps.contains_key(app.as_str()) {
            return Err(ApiError::unknown_app(app.as_str()));
        }
        let app_dir =
            AppDir::open(&self.root, &app).map_err(|e| ApiError::internal(e.to_string()))?;
        let list = capstan_deploy::Releases::open(&app_dir)
            .list()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let releases = list
            .into_iter()
            .rev()
            .map(|info| ReleaseInfo {
                number: info.record.number as u32,
                commit: info.record.sha,
                message: info.record.subject,
                built_at: info.record.started_at,
                build_secs: info.record.build_seconds.unwrap_or(0.0),
                status: match info.record.status {
                    capstan_deploy::ReleaseStatus::Building => ReleaseStatus::Building,
                    capstan_deploy::ReleaseStatus::Ready => ReleaseStatus::Ready,
                    capstan_deploy::ReleaseStatus::Failed => ReleaseStatus::Failed,
                },
                live: info.live,
            })
            .collect();
        Ok(ReleaseList { app, releases })
    }

    /// Every app's domains to its live Site; an unknown Host gets the 404 page.
    fn publish_routes(&self) {
        let mut table = RouteTable::new();
        for entry in self.apps.values() {
            if let Some((_, generation)) = &entry.live {
                for domain in &entry.domains {
                    table = table.with_host(domain, generation.site());
                }
            }
        }
        self.routes.swap(table);
    }
}

fn summary(entry: &AppEntry) -> AppSummary {
    let state = if entry.operation.is_some() {
        AppState::Deploying
    } else if entry.failed {
        AppState::Failed
    } else if entry.live.is_some() {
        AppState::Running
    } else {
        AppState::New
    };
    AppSummary {
        name: entry.name.clone(),
        domains: entry.domains.clone(),
        live_release: entry.live.as_ref().map(|(n, _)| *n),
        state,
    }
}
