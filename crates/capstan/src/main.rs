//! The `capstan` command.

mod app_env;
mod app_logs;
mod cli;
mod commands;
mod control;
mod daemon;
mod exec;
mod generation;
mod logging;
mod loopback;
mod run;
mod static_routes;
mod user_error;

use std::process::ExitCode;

use clap::Parser;

/// Threads for the edge: half the cores. The Python workers need the rest,
/// and fewer edge threads wake each other less often (measured on 2 cores:
/// one thread used 40% less CPU per proxied request than two). The
/// `TOKIO_WORKER_THREADS` variable overrides it.
fn edge_threads() -> usize {
    if let Some(threads) = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return threads;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores / 2).max(1)
}

/// Every client connection is a descriptor: like nginx's worker_rlimit_nofile,
/// the soft limit goes up to the hard one, so a thousand idle clients fit.
fn raise_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    raise_descriptor_limit();
    logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(edge_threads())
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("capstan: could not start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Run(args) => run::run(args).await.map(|()| ExitCode::SUCCESS),
            cli::Command::Reload(args) => run::reload(args).await.map(|()| ExitCode::SUCCESS),
            cli::Command::Exec(args) => {
                let root = args.root.path();
                match daemon::exec::is_daemon_app(&root, &args.dir) {
                    Some(app) => daemon::exec::exec(&root, &app, &args.command).await,
                    None => exec::exec(args).await,
                }
            }
            cli::Command::Daemon(args) => daemon::daemon(args).await.map(|()| ExitCode::SUCCESS),
            cli::Command::Apps(args) => daemon::client::apps(args).await,
            cli::Command::Releases(args) => daemon::client::releases(args).await,
            cli::Command::Rollback(args) => daemon::ops_client::rollback(args).await,
            cli::Command::Restart(args) => daemon::ops_client::restart(args).await,
            cli::Command::Env(args) => daemon::ops_client::env(args).await,
            cli::Command::Scale(args) => daemon::ops_client::scale(args).await,
            cli::Command::Ps(args) => daemon::ops_client::ps(args).await,
            cli::Command::Logs(args) => daemon::client::logs(args).await,
            cli::Command::Hook(args) => daemon::client::hook(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("\ncapstan: {}", user_error::render(&error));
            std::process::ExitCode::FAILURE
        }
    }
}
