//! The daemon's state and its one owner: a loop over [`Event`]s. Control
//! requests (through `control_handler`) and deploy steps that change what
//! serves (`Switch`) come in through one channel; nothing else touches the
//! apps, their live generations or the route table.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use capstan_config::AppName;
use capstan_control::answers::{
    AppCreated, AppList, AppState, AppSummary, DaemonStatus, Live, ReleaseInfo, ReleaseList,
    ReleaseStatus,
};
use capstan_control::api::{AppsCreate, Deploy};
use capstan_control::{ApiError, Progress};
use capstan_deploy::{AppDir, HookCommand, Repo};
use capstan_edge::{RouteTable, Routes};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::apps::{self, AppRecord};
use super::deploy;
use super::https::{Certificates, Https};
use super::logs;
use crate::app_logs::AppLogs;
use crate::generation::Generation;

/// How long a replaced generation gets to finish what it holds.
const DRAIN: Duration = Duration::from_secs(30);

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
        generation: Generation,
        answer: oneshot::Sender<()>,
    },
    /// A deploy ended, either way.
    DeployEnded { app: AppName },
    /// `logs APP`: where its files are (the reading happens outside the loop).
    LogsDir {
        app: AppName,
        answer: oneshot::Sender<Result<PathBuf, ApiError>>,
    },
}

/// One app as the loop knows it.
struct AppEntry {
    name: AppName,
    domains: Vec<String>,
    live: Option<(u32, Generation)>,
    deploying: bool,
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
                deploying: false,
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
                    let files = AppLogs::Files(logs.clone());
                    let (instance, _) =
                        deploy::instance(&app_dir, &dir, &record, https, &files).await?;
                    Generation::start(&instance).await
                };
                match started.await {
                    Ok(generation) => {
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
                let Some(entry) = self.apps.get_mut(request.app.as_str()) else {
                    let _ = answer.send(Err(ApiError::unknown_app(request.app.as_str())));
                    return;
                };
                entry.deploying = true;
                let ctx = deploy::Context {
                    root: self.root.clone(),
                    http_port: self.http_port,
                    https: self.https.as_ref().map(|(https, _)| https.clone()),
                    events: self.events.clone(),
                    logs: entry.logs.clone(),
                };
                tokio::spawn(async move {
                    let app = request.app.clone();
                    let result = logs::logged_deploy(&ctx, request, &progress).await;
                    let _ = ctx.events.send(Event::DeployEnded { app }).await;
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
                    let old = entry.live.replace((release, generation));
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
            Event::DeployEnded { app } => {
                if let Some(entry) = self.apps.get_mut(app.as_str()) {
                    entry.deploying = false;
                }
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
        };
        Repo::init(&app_dir, &hook).map_err(|e| failed(&e))?;
        record.write(app_dir.path()).map_err(|e| failed(&e))?;
        let logs = logs::open(&app_dir, self.rotation).map_err(|e| failed(&e))?;
        let entry = AppEntry {
            name: name.clone(),
            domains: request.domains,
            live: None,
            deploying: false,
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
    let state = if entry.deploying {
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
