//! What the app's processes run with: its virtualenv (built or checked), the
//! environment that puts it first on PATH, and the folder they start in.
//! Shared by `capstan run` (workers, processes, release commands) and `capstan exec`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use capstan_config::App;

/// The app's Python: an existing venv the user named (`--venv`, else the app
/// file's `venv`), or `<app>/.capstan/venv` built or updated now.
pub async fn python_env(
    app: &App,
    venv_flag: Option<&Path>,
    state: &Path,
) -> anyhow::Result<capstan_venv::Venv> {
    if let Some(dir) = venv_flag.or(app.venv.as_deref()) {
        return Ok(capstan_venv::existing(dir).await?);
    }
    let spec = capstan_venv::VenvSpec {
        dir: state.join("venv"),
        python: app.python.as_deref().unwrap_or("python3"),
        requirements: requirements(app),
        app_root: &app.root,
    };
    let started = Instant::now();
    let mut printed = false;
    let venv = capstan_venv::ensure(&spec, &mut |line: &str| {
        if !printed {
            tracing::info!("preparing the app's virtualenv in {}", spec.dir.display());
            printed = true;
        }
        tracing::info!(target: "capstan::output", process = "pip", "{line}");
    })
    .await?;
    if printed {
        tracing::info!(elapsed = ?started.elapsed(), "virtualenv ready");
    }
    Ok(venv)
}

/// What the venv builder installs: the app's dependencies as its file lists them.
pub fn requirements(app: &App) -> capstan_venv::Requirements {
    match &app.requirements {
        capstan_config::Requirements::Txt(path) => capstan_venv::Requirements::Txt(path.clone()),
        capstan_config::Requirements::Pyproject { path, dependencies } => {
            capstan_venv::Requirements::Packages {
                source: path.clone(),
                packages: dependencies.clone(),
            }
        }
        capstan_config::Requirements::None => capstan_venv::Requirements::None,
    }
}

/// `vars` (the app's env for its processes, or [`App::command_env`] for the
/// commands capstan runs), with the venv's `bin` first on PATH and VIRTUAL_ENV set.
pub fn process_env(
    vars: &BTreeMap<String, String>,
    venv: &capstan_venv::Venv,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> =
        vars.iter().map(|(k, v)| (k.into(), v.into())).collect();
    if let Some(path) = search_path(venv) {
        env.push(("PATH".into(), path));
    }
    env.push(("VIRTUAL_ENV".into(), venv.dir.clone().into()));
    env
}

/// capstan's own PATH with the venv's `bin` in front (None if it cannot be joined).
pub fn search_path(venv: &capstan_venv::Venv) -> Option<OsString> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![venv.dir.join("bin")];
    paths.extend(std::env::split_paths(&path));
    std::env::join_paths(paths).ok()
}

/// The folder the app's processes start in: `workdir` (gunicorn's --chdir), else the app's root.
pub fn workdir(app: &App) -> PathBuf {
    app.workdir.clone().unwrap_or_else(|| app.root.clone())
}
