//! `capstan daemon`: every app of a server in one process. The front for all
//! of them (a `Front` with a RouteTable by Host, no default Site), the control
//! socket, and the state loop that owns the apps and their generations.
//!
//! - `state`: the loop over `Event`, the one owner of the apps;
//! - `control_handler`: control requests as events;
//! - `deploy`: a push's pipeline, from checkout to live;
//! - `launch`: release folder to live generation (prepare, start, switch),
//!   shared by deploy and the operations;
//! - `operations`: rollback, restart, env set/unset, scale, destroy;
//! - `server_env`: the server's variables of an app (`<app>/env`);
//! - `ps`: a generation's processes as `capstan ps` lists them;
//! - `exec`: `capstan exec APP`, run by the CLI as the app's user;
//! - `apps`: the app record beside the deploy crate's folders;
//! - `https`: the TLS listener, certificates by SNI and their ACME tasks;
//! - `systemd_unit`: the unit file `--systemd-unit` prints;
//! - `client`: the CLI's side (`apps`, `hook pre-receive`);
//! - `ops_client`: the CLI's side of the operations (rollback, restart, env,
//!   scale, ps, apps destroy).

mod apps;
pub mod client;
mod control_handler;
mod deploy;
pub mod exec;
mod https;
mod launch;
mod logs;
mod operations;
pub mod ops_client;
mod ps;
mod server_env;
mod state;
mod systemd_unit;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use capstan_edge::{Listener, RouteTable, Routes, ServeOptions};

use crate::cli::DaemonArgs;

/// The default plain HTTP address.
const DEFAULT_LISTEN: &str = "0.0.0.0:80";

pub async fn daemon(args: DaemonArgs) -> anyhow::Result<()> {
    let root = args.root.path();
    if args.systemd_unit {
        let program = std::env::current_exe()
            .context("could not tell where this capstan binary is, for ExecStart")?;
        let root = std::path::absolute(&root)
            .with_context(|| format!("could not resolve {}", root.display()))?;
        print!(
            "{}",
            systemd_unit::unit(&systemd_unit::UnitArgs {
                program: &program,
                root: &root,
                listen: args.listen,
                tls_listen: args.tls_listen,
            })
        );
        return Ok(());
    }
    std::fs::create_dir_all(root.join("apps"))
        .with_context(|| format!("could not create {}", root.join("apps").display()))?;
    let root = root
        .canonicalize()
        .with_context(|| format!("could not resolve {}", root.display()))?;
    // Flags over `<root>/capstan.toml`, over the defaults.
    let settings = capstan_config::load_daemon_settings(&root)?;
    let listen: SocketAddr = args
        .listen
        .or(settings.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid address"));
    let tls_listen = args.tls_listen.or(settings.tls_listen);
    // Bind first: a port in use is reported before anything is started.
    let mut listeners = vec![Listener {
        tcp: crate::run::bind(listen, "--listen").await?,
        tls: None,
    }];
    let mut https = None;
    if let Some(addr) = tls_listen {
        let (listener, served, certificates) = https::setup(&root, addr, &settings).await?;
        listeners.push(listener);
        https = Some((served, certificates));
    } else {
        tracing::info!(
            "HTTPS is off: every app is served on plain HTTP only; \
             add --tls-listen 0.0.0.0:443 (or tls_listen in {}) for certificates",
            root.join("capstan.toml").display()
        );
    }
    let access = capstan_control::Access::capstan_group();
    let control = capstan_control::bind(&capstan_control::socket_path(&root), &access).await?;
    if nix::unistd::Uid::effective().is_root() {
        tracing::info!(
            "running as root: each app's processes run as its own system user, capstan-<app>"
        );
    } else {
        tracing::info!(
            "not running as root: every app runs as the current user ({})",
            std::env::var("USER").unwrap_or_else(|_| "this user".into())
        );
    }

    let routes = Routes::new(RouteTable::new());
    let (stop_serving, serving_stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions {
        access_log: true,
        certs: https.as_ref().map(|(served, _)| Arc::clone(&served.certs)),
        graceful_timeout: std::time::Duration::from_secs(30),
        client_timeout: std::time::Duration::from_secs(30),
    };
    let serving = tokio::spawn(capstan_edge::serve(
        listeners,
        routes.clone(),
        options,
        async {
            let _ = serving_stopped.await;
        },
    ));

    let (events, inbox) = tokio::sync::mpsc::channel(64);
    let (stop_control, control_stopped) = tokio::sync::oneshot::channel::<()>();
    let handler = control_handler::ControlHandler {
        events: events.clone(),
    };
    let control_task = tokio::spawn(capstan_control::serve(control, access, handler, async {
        let _ = control_stopped.await;
    }));

    let mut rotation = capstan_logs::Rotation::default();
    rotation.max_bytes = settings.logs_max_size.unwrap_or(rotation.max_bytes);
    rotation.keep = settings.logs_keep.unwrap_or(rotation.keep);
    let mut state =
        state::State::new(root.clone(), listen.port(), routes, events).with_log_rotation(rotation);
    if let Some((served, mut certificates)) = https {
        // The listeners accept now: the ACME server's checks reach the front.
        certificates.begin();
        state = state.with_https(served, certificates);
    }
    state.restore().await?;
    let addresses = match tls_listen {
        Some(addr) => format!("http://{listen} and https://{addr}"),
        None => format!("http://{listen}"),
    };
    tracing::info!(
        "serving every app at {addresses}; control socket in {}",
        root.display()
    );
    state.run(inbox, crate::run::shutdown_signal()).await;
    let _ = stop_control.send(());
    let _ = stop_serving.send(());
    let _ = serving.await;
    let _ = control_task.await;
    tracing::info!("stopped");
    Ok(())
}
