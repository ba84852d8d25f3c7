//! `capstan exec APP -- CMD...` on a server: a one-off command in the live
//! release's folder, with its venv's bin first on PATH and the app's env
//! (the app file's defaults, the server's variables, CAPSTAN_DATA_DIR), as
//! the app's user, attached to the terminal. The CLI (as root) prepares it
//! the way `launch` prepares a generation and runs it itself; the daemon's
//! generations are not touched.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use capstan_config::AppName;
use capstan_deploy::AppDir;

use super::apps::AppRecord;
use super::{deploy, launch, server_env};
use crate::app_env;
use crate::exec::{find_program, wait_attached, NOT_FOUND};

/// Whether `capstan exec NAME` means the daemon's app NAME: NAME is not a
/// folder here and `<root>/apps/NAME` is an app.
pub fn is_daemon_app(root: &Path, dir: &Path) -> Option<AppName> {
    if dir.is_dir() {
        return None;
    }
    let name = AppName::new(dir.to_str()?).ok()?;
    root.join("apps")
        .join(name.as_str())
        .join("app.json")
        .is_file()
        .then_some(name)
}

/// Runs `command` for the daemon's app `name`; its exit status is capstan's.
pub async fn exec(root: &Path, name: &AppName, command: &[OsString]) -> anyhow::Result<ExitCode> {
    let app_dir = AppDir::open(root, name)?;
    let Some((number, dir)) = deploy::live_release(&app_dir)? else {
        bail!(
            "{} has no live release to run a command in; `git push` to its repository deploys one",
            name.as_str()
        );
    };
    let record = AppRecord::read(app_dir.path())?;
    let vars = server_env::read(&app_dir)?;
    let (instance, _) = launch::prepare(
        &app_dir,
        &dir,
        &record,
        &vars,
        None,
        &crate::app_logs::AppLogs::Capstan,
    )
    .await
    .with_context(|| format!("could not prepare {} release {number}", name.as_str()))?;
    let mut env = app_env::process_env(&instance.app.command_env(), &instance.venv);
    env.push(("CAPSTAN_DATA_DIR".into(), app_dir.data().into()));
    let workdir = instance.app.root.clone();
    let (program, rest) = command.split_first().expect("clap requires a command");
    let search = app_env::search_path(&instance.venv).unwrap_or_default();
    let Some(resolved) = find_program(program, &search, &workdir) else {
        eprintln!(
            "capstan: no command `{}` in {}'s venv or on PATH. Check the spelling, or add \
             the package that provides it to the app's requirements.",
            program.to_string_lossy(),
            name.as_str()
        );
        return Ok(ExitCode::from(NOT_FOUND));
    };
    let child = capstan_proc::spawn_attached(
        &resolved,
        program,
        rest,
        &env,
        &workdir,
        instance.identity.as_ref(),
    )
    .with_context(|| format!("could not start `{}`", resolved.display()))?;
    wait_attached(child).await
}
