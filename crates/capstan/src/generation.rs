//! An app generation: the web backend (a worker pool or the proxied web
//! command), the `[processes]`, the static routes and the Site built from
//! them, started together, health-checked before any traffic reaches them,
//! and stopped together once no request holds the Site.
//!
//! It lives in the binary, not in the runtime crate, because it needs what
//! only the binary has: the venv, the shim, the static-route merge and the
//! loopback checks.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use std::collections::BTreeMap;

use capstan_config::{App, CronJob, Web};
use capstan_cron::{Handover, JobStatus, Retired, Scheduler, ShellLauncher};
use capstan_edge::environ::Connection;
use capstan_edge::static_files::StaticFiles;
use capstan_edge::tls::CertStore;
use capstan_edge::{Backend, Proxy, Site};
use capstan_runtime::{Pool, PoolSpec, ProcessSpec, Supervised};
use http_body_util::BodyExt;

use crate::{loopback, static_routes};

/// How long a `command` web process gets to start listening on $PORT.
const COMMAND_BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// The pause between two health checks.
const HEALTH_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// How much of a failed health check's answer goes into the error.
const HEALTH_BODY_SHOWN: usize = 500;

/// What every generation of one app is started from: the app file and the
/// flags, resolved once.
pub struct Instance {
    /// The app, as its files say.
    pub app: App,
    /// Its Python.
    pub venv: capstan_venv::Venv,
    /// The env of its processes.
    pub env: Vec<(OsString, OsString)>,
    /// Where the Python workers and the web command start.
    pub workdir: PathBuf,
    /// `<app>/.capstan`: the shim and spilled bodies go here.
    pub state: PathBuf,
    /// `--workers`, over the app file's.
    pub workers: Option<usize>,
    /// `--threads`, over the app file's.
    pub threads: Option<usize>,
    /// Plain HTTP is redirected to HTTPS on this port.
    pub https_port: Option<u16>,
    /// The certificates served (for the HSTS decision).
    pub certs: Option<Arc<CertStore>>,
    /// Write the access log for the app's requests.
    pub access_log: bool,
    /// Where the processes' lines and the access log go.
    pub logs: crate::app_logs::AppLogs,
    /// The user every process of the generation runs as; `None`: capstan's own.
    pub identity: Option<capstan_proc::Identity>,
    /// The Host of the health check: the first domain (`--domain` or the
    /// app file's), else `localhost`.
    pub health_host: String,
}

/// One running generation of an app.
pub struct Generation {
    site: Arc<Site>,
    /// Wakes when the Site is dropped.
    site_dropped: tokio::sync::oneshot::Receiver<()>,
    pool: Option<Pool>,
    web: Option<Supervised>,
    processes: Vec<Supervised>,
    cron: Cron,
    /// `[static] keep_previous`: how long the previous generation's static
    /// files answer for what this one's lack.
    keep_previous: Duration,
}

/// A generation's `[cron]` jobs: planned at start, running only while it is
/// the live one ([`Generation::go_live`]), retired when the next goes live.
struct Cron {
    jobs: BTreeMap<String, CronJob>,
    /// Runs start as the app's user, with its env, in its release folder.
    launcher: ShellLauncher,
    live: Option<Scheduler>,
    retired: Option<Retired>,
}

/// How long a cron run being stopped has between SIGTERM and SIGKILL.
const CRON_GRACE: Duration = Duration::from_secs(10);

impl Generation {
    /// Boots the backend, builds the Site and health-checks it through the
    /// Site itself, then starts the `[processes]`. Returns once all of it
    /// is up; on any failure it stops what it started and says why.
    pub async fn start(instance: &Instance) -> anyhow::Result<Generation> {
        let app = &instance.app;
        let (backend, pool, web) = start_backend(instance).await?;
        let (dropped, site_dropped) = tokio::sync::oneshot::channel();
        let site = match build_site(instance, backend, pool.as_ref(), dropped) {
            Ok(site) => Arc::new(site),
            Err(error) => {
                // Nothing serves yet, so the backend can go at once.
                stop(pool, web, Vec::new(), Duration::ZERO).await;
                return Err(error.into());
            }
        };
        let mut generation = Generation {
            site,
            site_dropped,
            pool,
            web,
            processes: Vec::new(),
            // Cron jobs run in the app's root, as crontab would run them from
            // there; for the daemon, the release folder.
            cron: Cron {
                jobs: app.cron.clone(),
                launcher: ShellLauncher {
                    cwd: app.root.clone(),
                    env: instance.env.clone(),
                    identity: instance.identity.clone(),
                    logs: app
                        .cron
                        .keys()
                        .map(|name| (name.clone(), instance.logs.process(&format!("cron.{name}"))))
                        .collect(),
                },
                live: None,
                retired: None,
            },
            keep_previous: app.keep_previous,
        };
        if let Err(error) = health_check(&generation.site, app, &instance.health_host).await {
            let Generation { pool, web, .. } = generation;
            stop(pool, web, Vec::new(), Duration::ZERO).await;
            return Err(error);
        }
        // Only a healthy generation's processes start (a worker queue
        // would otherwise run jobs for code that never serves).
        for (name, process) in &app.processes {
            generation.processes.push(Supervised::start_as(
                ProcessSpec {
                    name: name.clone(),
                    command: process.command.clone(),
                    cwd: app.root.clone(),
                    env: instance.env.clone(),
                    kill_grace: Duration::from_secs(10),
                    // Scaled copies (`tasks.1`, `tasks.2`) share their entry's
                    // file, each line labelled with the copy, as web.N do.
                    log: instance.logs.process(
                        name.split_once('.')
                            .map_or(name.as_str(), |(entry, _)| entry),
                    ),
                },
                instance.identity.clone(),
            ));
        }
        Ok(generation)
    }

    /// The Site that serves this generation.
    pub fn site(&self) -> Arc<Site> {
        Arc::clone(&self.site)
    }

    /// Makes this the app's live generation, called by whoever switches
    /// traffic to it (and for the first one): its cron jobs start, and
    /// `previous`'s scheduler fires no more; a run of it in progress may
    /// finish (until `previous` drains), and a job of the same name and
    /// schedule fires next when the old one would have, so no fire runs twice.
    /// For `keep_previous`, `previous`'s static files answer what this one's
    /// lack, for a while.
    pub fn go_live(&mut self, previous: Option<&mut Generation>) {
        let mut handover = Handover::default();
        if let Some(previous) = previous {
            let old_routes = previous.site.static_files.routes();
            // A duration too long to add to now means forever, near enough.
            let keep = self
                .keep_previous
                .min(Duration::from_secs(10 * 365 * 86_400));
            let until = Instant::now() + keep;
            if let Err(error) = self.site.static_files.keep_previous(old_routes, until) {
                tracing::warn!(%error, "the previous release's static files are not kept");
            }
            if let Some(scheduler) = previous.cron.live.take() {
                let (next, retired) = scheduler.retire();
                handover = next;
                previous.cron.retired = Some(retired);
            }
        }
        let cron = &mut self.cron;
        if !cron.jobs.is_empty() && cron.live.is_none() {
            tracing::info!(jobs = cron.jobs.len(), "starting cron jobs");
            cron.live = Some(Scheduler::take_over(
                cron.jobs.clone(),
                cron.launcher.clone(),
                capstan_cron::Options::default(),
                handover,
            ));
        }
    }

    /// Each cron job's status: the live scheduler's, or once retired, the
    /// runs it still has; empty before [`go_live`](Self::go_live).
    #[allow(dead_code)] // for `capstan ps`, which reads it through the state loop
    pub fn cron_status(&self) -> Vec<JobStatus> {
        match (&self.cron.live, &self.cron.retired) {
            (Some(live), _) => live.status(),
            (None, Some(retired)) => retired.status(),
            (None, None) => Vec::new(),
        }
    }

    /// The worker pool, when the app is a WSGI app.
    pub fn pool(&self) -> Option<&Pool> {
        self.pool.as_ref()
    }

    /// The web command (an app with `web = "command"`), when it has one.
    pub fn web_command(&self) -> Option<&Supervised> {
        self.web.as_ref()
    }

    /// The `[processes]`, one entry per running copy.
    pub fn processes(&self) -> &[Supervised] {
        &self.processes
    }

    /// Once its Site is out of the route table: waits until no request
    /// holds it (or `deadline`), then stops everything of the generation.
    pub async fn drain(self, deadline: Instant) {
        let Generation {
            site,
            site_dropped,
            pool,
            web,
            processes,
            cron,
            ..
        } = self;
        drop(site);
        // A generation that is still live (the daemon or capstan run stops)
        // fires no more; a retired one's runs may end until the deadline.
        let cron_stopped = async {
            if let Some(live) = cron.live {
                live.stop(CRON_GRACE).await;
            }
            if let Some(retired) = cron.retired {
                let deadline = tokio::time::Instant::from_std(deadline);
                retired.finish(deadline, CRON_GRACE).await;
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let (site_gone, ()) = tokio::join!(tokio::time::timeout(left, site_dropped), cron_stopped);
        if site_gone.is_err() {
            tracing::warn!(
                "requests still running at the drain deadline; stopping the old generation anyway"
            );
        }
        stop(
            pool,
            web,
            processes,
            deadline.saturating_duration_since(Instant::now()),
        )
        .await;
    }
}

/// Stops the pool (giving requests in flight `grace`), the web command and
/// every process.
async fn stop(
    pool: Option<Pool>,
    web: Option<Supervised>,
    processes: Vec<Supervised>,
    grace: Duration,
) {
    if let Some(pool) = &pool {
        pool.stop(grace).await;
    }
    if let Some(web) = web {
        web.stop().await;
    }
    for process in processes {
        process.stop().await;
    }
}

/// The worker pool, or the web command with a proxy to its port.
async fn start_backend(
    instance: &Instance,
) -> anyhow::Result<(Backend, Option<Pool>, Option<Supervised>)> {
    let app = &instance.app;
    match &app.web {
        Web::Wsgi(target) => {
            let state = &instance.state;
            let shim = capstan_shim::write_to(state).with_context(|| {
                format!("could not write the worker shim into {}", state.display())
            })?;
            let mut spec = PoolSpec::new(
                app.name.as_str(),
                instance.venv.python.clone(),
                shim,
                &target.to_string(),
                instance.workdir.clone(),
            );
            spec.env = instance.env.clone();
            spec.identity = instance.identity.clone();
            spec.log = instance.logs.process("web");
            if let Some(workers) = instance.workers.or(app.workers) {
                spec.workers = workers;
            }
            spec.threads = instance.threads.unwrap_or(app.threads);
            spec.timeout = app.timeout;
            spec.graceful_timeout = app.graceful_timeout;
            spec.max_requests = app.max_requests;
            spec.max_requests_jitter = app.max_requests_jitter;
            spec.max_rss = app.max_rss;
            if let Some(max_queue) = app.max_queue {
                spec.max_queue = max_queue;
            }
            if let Some(queue_timeout) = app.queue_timeout {
                spec.queue_timeout = queue_timeout;
            }
            if let Some(pipeline) = app.pipeline {
                spec.pipeline = pipeline;
            }
            tracing::info!(app = %target, workers = spec.workers, threads = spec.threads, "starting workers");
            let pool = Pool::start(spec).await?;
            Ok((Backend::Python(pool.clone()), Some(pool), None))
        }
        Web::Command { command } => {
            let port = free_port()?;
            let web = Supervised::start_as(
                ProcessSpec {
                    name: "web".into(),
                    command: command.clone(),
                    cwd: instance.workdir.clone(),
                    env: loopback::command_env(&instance.env, port),
                    kill_grace: Duration::from_secs(10),
                    log: instance.logs.process("web"),
                },
                instance.identity.clone(),
            );
            if let Err(error) = wait_for_port(port, COMMAND_BOOT_TIMEOUT).await {
                web.stop().await;
                return Err(error);
            }
            if let Some(addr) = loopback::exposed(port) {
                tracing::warn!(
                    "web command listens on {addr}, so anyone can reach it directly, without \
                     TLS, limits or logs; make it listen on 127.0.0.1:$PORT, e.g. gunicorn \
                     --bind 127.0.0.1:$PORT"
                );
            }
            Ok((Backend::Proxy(Box::new(Proxy::new(port))), None, Some(web)))
        }
    }
}

/// The Site of a generation: the app file's routes plus what its workers
/// reported, in front of `backend`.
fn build_site(
    instance: &Instance,
    backend: Backend,
    pool: Option<&Pool>,
    dropped: tokio::sync::oneshot::Sender<()>,
) -> Result<Site, capstan_edge::static_files::StaticError> {
    let app = &instance.app;
    let reported = pool.map_or(&[][..], |pool| pool.static_mounts());
    let static_files = StaticFiles::new(static_routes::routes(app, reported))?;
    Ok(Site {
        static_files,
        backend,
        trusted_proxies: app.http.trusted_proxies.clone(),
        max_body_size: app.http.max_body_size,
        client_timeout: app.http.client_timeout,
        body_temp_dir: Some(instance.state.clone()),
        https_port: instance.https_port,
        hsts: app.http.hsts,
        certs: instance.certs.clone(),
        access_log: instance.access_log,
        access_log_to: instance.logs.access(),
        compression: app.http.compression,
        dropped: Some(dropped),
    })
}

/// GETs `[health] path` through the Site itself, with the app's first
/// domain as Host, until it answers 2xx/3xx (with the default `/`, any
/// answer that is not a server failure) or the retries are used up.
async fn health_check(site: &Site, app: &App, host: &str) -> anyhow::Result<()> {
    let loopback = SocketAddr::from((IpAddr::from([127, 0, 0, 1]), 0));
    // Over "TLS" when the Site redirects plain HTTP: the check is for the app.
    let conn = Connection {
        local: loopback,
        peer: loopback,
        tls: site.https_port.is_some(),
    };
    // With no `[health] path`, `/` may be a 404 (an API) or a 501 (a
    // POST-only app): the app answered, so it is up. Only what says it is
    // broken or not answering fails: 500, 502, 503, 504.
    let passes = |status: http::StatusCode| {
        status.is_success()
            || status.is_redirection()
            || (!app.health_path_set && !matches!(status.as_u16(), 500 | 502..=504))
    };
    let mut last = String::new();
    for attempt in 0..=app.health_retries {
        if attempt > 0 {
            tokio::time::sleep(HEALTH_RETRY_PAUSE).await;
        }
        let request = http::Request::get(app.health_path.as_str())
            .header(http::header::HOST, host)
            .header(http::header::USER_AGENT, "capstan-health-check")
            .body(http_body_util::Empty::<Bytes>::new())
            .context("the health check path is not a valid request target")?;
        let answer = tokio::time::timeout(app.health_timeout, async {
            let response = site.handle(request, conn).await;
            let status = response.status();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            (status, body)
        })
        .await;
        match answer {
            Ok((status, Ok(_))) if passes(status) => return Ok(()),
            Ok((status, body)) => {
                let body = body.unwrap_or_default();
                let shown = String::from_utf8_lossy(&body[..body.len().min(HEALTH_BODY_SHOWN)]);
                last = format!("it answered {status}: {}", shown.trim_end());
            }
            Err(_) => last = format!("it did not answer within {:?}", app.health_timeout),
        }
    }
    bail!(
        "the health check failed: GET {} with Host {host} must answer 2xx or 3xx, but {last} \
         (tried {} times). Fix the app, or point [health] path at a page that answers when the app is up.",
        app.health_path,
        app.health_retries + 1
    )
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind((IpAddr::from([127, 0, 0, 1]), 0))
        .context("could not find a free local port for the web command")?;
    Ok(listener.local_addr()?.port())
}

async fn wait_for_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect((IpAddr::from([127, 0, 0, 1]), port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the web command did not start listening on $PORT ({port}) within {timeout:?}. \
                 Make sure it binds to the port given in the PORT environment variable; its output is above."
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
