//! `capstan run`: one app, in the foreground, state in its own folder.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _};
use capstan_config::{AcmeChallenge, App};
use capstan_edge::tls::{self, CertStore};
use capstan_edge::{Listener, RouteTable, Routes, ServeOptions};
use tokio_rustls::TlsAcceptor;

use crate::cli::{ReloadArgs, RunArgs};
use crate::generation::{Generation, Instance};
use crate::{app_env, commands, control};

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
    // Build and release commands, like every Procfile entry, start in the app's root;
    // `workdir` (gunicorn's --chdir) is where the Python workers start.
    commands::run_for_app(&app, &venv, &app.root).await?;

    let access_log = app.http.access_log && !args.no_access_log;
    let options = ServeOptions {
        access_log,
        certs: certs.clone(),
        graceful_timeout: app.graceful_timeout,
        client_timeout: app.http.client_timeout,
    };
    let instance = Instance {
        workdir: app_env::workdir(&app),
        venv,
        env,
        state: state.clone(),
        workers: args.workers.map(usize::from),
        threads: args.threads.map(usize::from),
        https_port: args
            .tls_listen
            .filter(|_| app.http.https_redirect)
            .map(|addr| addr.port()),
        certs,
        access_log,
        logs: crate::app_logs::AppLogs::Capstan,
        identity: None,
        health_host: domains
            .first()
            .cloned()
            .unwrap_or_else(|| "localhost".to_owned()),
        app,
    };
    let app = &instance.app;
    let mut live = Generation::start(&instance).await?;
    // `capstan run` is the one-app case: its Site answers every Host.
    let routes = Routes::new(RouteTable::new().with_default(live.site()));

    // Its cron jobs start with it; a reload hands them to the next one.
    live.go_live(None);

    let (reloads, mut reload_requests) = tokio::sync::mpsc::channel(4);
    let control_task = tokio::spawn(control::serve(control, reloads.clone()));
    let hangup_task = tokio::spawn(reload_on_hangup(reloads));

    tracing::info!("serving {} at http://{}", app.name.as_str(), args.listen);
    if let Some(addr) = args.tls_listen {
        tracing::info!("serving {} at https://{}", app.name.as_str(), addr);
    }
    // Certificates are asked for once the listeners accept (the ACME server
    // connects to them to check challenges).
    if let Some(acme) = acme.as_mut() {
        acme.begin();
    }
    let (stop_serving, serving_stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(capstan_edge::serve(
        listeners,
        routes.clone(),
        options,
        async {
            let _ = serving_stopped.await;
        },
    ));

    // One owner for the live generation: reloads and the stop signal take turns.
    let mut draining = tokio::task::JoinSet::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(reload) = reload_requests.recv() => {
                // Finished drains are collected as they come.
                while draining.try_join_next().is_some() {}
                reload.answer(switch(&instance, &routes, &mut live, &mut draining).await);
            }
        }
    }

    let stopping = Instant::now();
    let _ = stop_serving.send(());
    let _ = serving.await;
    drop(acme);
    tracing::info!("stopping");
    control_task.abort();
    hangup_task.abort();
    let _ = std::fs::remove_file(control::socket_path(&state));
    // Whatever connections are still open, everything of the app stops.
    routes.swap(RouteTable::new());
    live.drain(stopping + app.graceful_timeout).await;
    while draining.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

/// A reload: a new generation, health-checked, in the table in place of
/// `live`, which drains meanwhile. On failure `live` keeps serving.
async fn switch(
    instance: &Instance,
    routes: &Routes,
    live: &mut Generation,
    draining: &mut tokio::task::JoinSet<()>,
) -> Result<String, String> {
    match Generation::start(instance).await {
        Ok(mut new) => {
            routes.swap(RouteTable::new().with_default(new.site()));
            new.go_live(Some(live));
            let old = std::mem::replace(live, new);
            draining.spawn(old.drain(Instant::now() + instance.app.graceful_timeout));
            let done = match live.pool() {
                Some(pool) => format!("{} new workers are serving", pool.ready_workers()),
                None => "the new web command is serving".to_owned(),
            };
            tracing::info!("reloaded: {done}");
            Ok(done)
        }
        Err(error) => {
            tracing::error!("reload failed; the old generation keeps serving: {error:#}");
            Err(format!("{error:#}"))
        }
    }
}

/// `capstan reload`: asks the running `capstan run` of DIR for a new generation.
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

/// Each SIGHUP starts a new generation, as it reloads gunicorn's workers.
async fn reload_on_hangup(reloads: tokio::sync::mpsc::Sender<control::Reload>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("reloading: starting a new generation from the current code");
        if reloads.send(control::Reload::unanswered()).await.is_err() {
            return;
        }
    }
}

pub async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<tokio::net::TcpListener> {
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
        store_dir: state.join("acme"),
    };
    let acme = capstan_acme::start(settings, &issuable, Arc::clone(certs))
        .map_err(|problem| anyhow!("{problem}"))?;
    Ok(Some(acme))
}

/// Resolves on the first SIGTERM or SIGINT; a second one stops at once.
pub async fn shutdown_signal() {
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
