//! `capstan run`: one app, in the foreground, state in its own folder.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use capstan_config::{AcmeChallenge, App, Web};
use capstan_edge::static_files::StaticFiles;
use capstan_edge::tls::{self, CertStore};
use capstan_edge::{Backend, Listener, Proxy, ServeOptions, Site};
use capstan_runtime::{Pool, PoolSpec, ProcessSpec, Supervised};
use tokio_rustls::TlsAcceptor;

use crate::cli::{ReloadArgs, RunArgs};
use crate::{app_env, control, loopback, release, static_routes};

/// How long a `command` web process gets to start listening on $PORT.
const COMMAND_BOOT_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let app = capstan_config::load(&args.dir)?;
    for note in &app.notes {
        tracing::info!("{note}");
    }
    for warning in &app.warnings {
        tracing::warn!("{warning}");
    }
    let state = app.root.join(".capstan");
    std::fs::create_dir_all(&state)
        .with_context(|| format!("could not create {}", state.display()))?;
    let control = control::bind(&control::socket_path(&state)).await?;

    // Bind first: a port in use is reported before anything is started.
    let mut listeners = vec![Listener {
        tcp: bind(args.listen, "--listen").await?,
        tls: None,
    }];
    let domains = if args.domains.is_empty() {
        app.domains.clone()
    } else {
        args.domains.clone()
    };
    let mut certs = None;
    let mut acme = None;
    if let Some(addr) = args.tls_listen {
        let tcp = bind(addr, "--tls-listen").await?;
        let names = certificate_names(&domains, addr);
        let fallback = tls::self_signed(&state.join("tls"), &names)?;
        let store = Arc::new(CertStore::new(fallback));
        acme = start_acme(&app, &args, &state, &domains, &store)?;
        let config = tls::server_config(Arc::clone(&store))?;
        certs = Some(store);
        listeners.push(Listener {
            tcp,
            tls: Some(TlsAcceptor::from(config)),
        });
    } else if !domains.is_empty() {
        tracing::warn!(
            "domains are set but there is no HTTPS listener, so no certificate is requested; \
             add --tls-listen 0.0.0.0:443"
        );
    }

    let venv = app_env::python_env(&app, args.venv.as_deref(), &state).await?;
    let env = app_env::process_env(&app.env, &venv);
    let workdir = app_env::workdir(&app);
    // Release commands, like every Procfile entry, start in the app's root;
    // `workdir` (gunicorn's --chdir) is where the Python workers start.
    release::run(&app, &venv, &app.root).await?;

    let backend = match &app.web {
        Web::Wsgi(target) => {
            let shim = capstan_shim::write_to(&state).with_context(|| {
                format!("could not write the worker shim into {}", state.display())
            })?;
            let mut spec = PoolSpec::new(
                app.name.as_str(),
                venv.python.clone(),
                shim,
                &target.to_string(),
                workdir.clone(),
            );
            spec.env = env.clone();
            if let Some(workers) = args.workers.map(usize::from).or(app.workers) {
                spec.workers = workers;
            }
            spec.threads = args.threads.map_or(app.threads, usize::from);
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
            Backend::Python(Pool::start(spec).await?)
        }
        Web::Command { command } => {
            let port = free_port()?;
            let web = Supervised::start(ProcessSpec {
                name: "web".into(),
                command: command.clone(),
                cwd: workdir.clone(),
                env: loopback::command_env(&env, port),
                kill_grace: Duration::from_secs(10),
            });
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
            Backend::Proxy(Box::new(Proxy::new(port)), web)
        }
    };

    // Cron jobs run in the app's root with the processes' env, as crontab
    // would run them from there.
    let cron = (!app.cron.is_empty()).then(|| {
        tracing::info!(jobs = app.cron.len(), "starting cron jobs");
        capstan_cron::Scheduler::start(
            app.cron.clone(),
            capstan_cron::ShellLauncher {
                cwd: app.root.clone(),
                env: env.clone(),
            },
        )
    });

    let mut processes = Vec::new();
    for (name, process) in &app.processes {
        processes.push(Supervised::start(ProcessSpec {
            name: name.clone(),
            command: process.command.clone(),
            cwd: app.root.clone(),
            env: env.clone(),
            kill_grace: Duration::from_secs(10),
        }));
    }

    let reported = match &backend {
        Backend::Python(pool) => pool.static_mounts().to_vec(),
        Backend::Proxy(..) => Vec::new(),
    };
    let static_files = StaticFiles::new(static_routes::routes(&app, &reported))?;
    let site = Arc::new(Site {
        static_files,
        backend,
        trusted_proxies: app.http.trusted_proxies.clone(),
        max_body_size: app.http.max_body_size,
        client_timeout: app.http.client_timeout,
        body_temp_dir: Some(state.clone()),
        https_port: args
            .tls_listen
            .filter(|_| app.http.https_redirect)
            .map(|addr| addr.port()),
        hsts: app.http.hsts,
        certs,
    });
    let options = ServeOptions {
        access_log: app.http.access_log && !args.no_access_log,
        compression: app.http.compression,
        graceful_timeout: app.graceful_timeout,
        client_timeout: app.http.client_timeout,
    };

    let pool = match &site.backend {
        Backend::Python(pool) => Some(pool.clone()),
        Backend::Proxy(..) => None,
    };
    let control_task = tokio::spawn(control::serve(control, pool.clone()));
    let hangup_task = pool.map(|pool| tokio::spawn(reload_on_hangup(pool)));

    tracing::info!("serving {} at http://{}", app.name.as_str(), args.listen);
    if let Some(addr) = args.tls_listen {
        tracing::info!("serving {} at https://{}", app.name.as_str(), addr);
    }
    // Certificates are asked for once the listeners accept (the ACME server
    // connects to them to check challenges).
    if let Some(acme) = acme.as_mut() {
        acme.begin();
    }
    capstan_edge::serve(listeners, Arc::clone(&site), options, shutdown_signal()).await;
    drop(acme);

    tracing::info!("stopping");
    control_task.abort();
    if let Some(task) = hangup_task {
        task.abort();
    }
    let _ = std::fs::remove_file(control::socket_path(&state));
    match &site.backend {
        Backend::Python(pool) => pool.stop(app.graceful_timeout).await,
        Backend::Proxy(..) => {}
    }
    let site = Arc::try_unwrap(site).map_err(|_| anyhow!("connections still hold the app"))?;
    if let Backend::Proxy(_, web) = site.backend {
        web.stop().await;
    }
    if let Some(cron) = cron {
        cron.stop(Duration::from_secs(10)).await;
    }
    for process in processes {
        process.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// `capstan reload`: asks the running `capstan run` of DIR for new workers.
pub async fn reload(args: ReloadArgs) -> anyhow::Result<()> {
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("{} is not a folder capstan can read", args.dir.display()))?;
    let answer = control::request(&dir.join(".capstan"), "reload").await?;
    match answer.strip_prefix("ok: ") {
        Some(done) => {
            println!("reloaded: {}", done.trim_end());
            Ok(())
        }
        None => bail!(
            "{}",
            answer
                .trim_end()
                .strip_prefix("error: ")
                .unwrap_or("capstan did not answer the reload")
        ),
    }
}

/// Each SIGHUP reloads the workers, as it does for gunicorn.
async fn reload_on_hangup(pool: Pool) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        let _ = control::reload(&pool).await;
    }
}

async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<tokio::net::TcpListener> {
    capstan_edge::bind(addr)
        .await
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::AddrInUse => anyhow!(
                "{addr} is already in use: another capstan or web server is listening there. \
             Stop it, or pick a free port with {flag} {}:{}.",
                addr.ip(),
                addr.port().wrapping_add(1)
            ),
            std::io::ErrorKind::PermissionDenied => anyhow!(
                "not allowed to listen on {addr}: ports below 1024 need root. \
             Use a port above 1024 with {flag}, or run capstan as root."
            ),
            std::io::ErrorKind::AddrNotAvailable => anyhow!(
                "cannot listen on {addr}: this machine has no such address. \
             Use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface) with {flag}."
            ),
            _ => anyhow!("cannot listen on {addr}: {error}"),
        })
}

fn certificate_names(domains: &[String], addr: SocketAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
        names.push(addr.ip().to_string());
    }
    names.extend(domains.iter().cloned());
    names.dedup();
    names
}

/// Starts getting certificates for the domains an ACME server can issue for;
/// the others keep the self-signed certificate, and the log says why.
fn start_acme(
    app: &App,
    args: &RunArgs,
    state: &Path,
    domains: &[String],
    certs: &Arc<CertStore>,
) -> anyhow::Result<Option<capstan_acme::Acme>> {
    if !app.tls.acme {
        if !domains.is_empty() {
            tracing::info!(
                "[tls] acme = false: the domains are served with the self-signed certificate"
            );
        }
        return Ok(None);
    }
    let mut issuable = Vec::new();
    for domain in domains {
        match capstan_acme::not_issuable(domain) {
            Some(reason) => tracing::info!(
                "{domain}: served with the self-signed certificate, as ACME servers do not issue for it ({reason})"
            ),
            None => issuable.push(domain.clone()),
        }
    }
    if issuable.is_empty() {
        if domains.is_empty() {
            tracing::info!("HTTPS uses a self-signed certificate (no domains are set); browsers will warn about it");
        }
        return Ok(None);
    }
    let challenges = app
        .tls
        .challenges
        .iter()
        .map(|c| match c {
            AcmeChallenge::Http01 => capstan_acme::Challenge::Http01,
            AcmeChallenge::TlsAlpn01 => capstan_acme::Challenge::TlsAlpn01,
        })
        .collect();
    let settings = capstan_acme::Settings {
        directory: args
            .acme_directory
            .clone()
            .unwrap_or_else(|| app.tls.acme_directory.clone()),
        email: args.acme_email.clone().or_else(|| app.tls.email.clone()),
        ca_root: args
            .acme_ca_root
            .clone()
            .or_else(|| app.tls.acme_ca_root.clone()),
        challenges,
        state_dir: state.to_owned(),
    };
    let acme = capstan_acme::start(settings, &issuable, Arc::clone(certs))
        .map_err(|problem| anyhow!("{problem}"))?;
    Ok(Some(acme))
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

/// Resolves on the first SIGTERM or SIGINT; a second one stops at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("finishing requests in flight (signal again to stop at once)");
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("stopping at once");
        std::process::exit(130);
    });
}
