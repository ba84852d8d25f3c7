//! Release commands (`[release] commands`, a Procfile `release:` line): run
//! once, in order, before `capstan run` starts anything that serves, e.g.
//! `flask db upgrade` or `python manage.py migrate`.

use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use capstan_config::App;
use capstan_proc::{Child, Spec};

use crate::app_env;

/// Runs each release command through `/bin/sh -c` in its own process group,
/// with the commands' environment ([`App::command_env`], so `.flaskenv`
/// counts) and the venv first on PATH, its output in the log as `release`.
/// The first one that fails stops here with an error naming it.
pub async fn run(app: &App, venv: &capstan_venv::Venv, workdir: &Path) -> anyhow::Result<()> {
    if app.release.is_empty() {
        return Ok(());
    }
    let env = app_env::process_env(&app.command_env(), venv);
    for command in &app.release {
        tracing::info!("release: running `{command}`");
        let started = Instant::now();
        let mut spec = Spec::shell("release", command, workdir.to_owned());
        spec.env = env.clone();
        let mut child = Child::spawn(spec)?;
        let exit = child.wait().await;
        // Whatever it left running in its group must not outlive the release step.
        child.signal_group(nix::sys::signal::Signal::SIGKILL);
        if !exit.success() {
            bail!(
                "the release command `{command}` {exit}, so nothing was started; its output is \
                 above (labelled release). Fix it (try it with `capstan exec {} -- {command}`) \
                 and run capstan again.",
                app.root.display()
            );
        }
        tracing::info!(elapsed = ?started.elapsed(), "release: `{command}` done");
    }
    Ok(())
}
