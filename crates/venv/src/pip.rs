//! `pip install` of the app's requirements into its venv, bootstrapping pip first
//! when the venv has none.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::spec::python_in;
use crate::{command, create};
use crate::{Requirements, VenvError};

/// Installs `requirements` into the venv at `dir`, running pip in `app_root`. Does
/// nothing for [`Requirements::None`] or an empty package list; otherwise installs pip
/// first if the venv lacks a working one. `python` is the interpreter as configured,
/// for messages.
///
/// `requirements` paths must be absolute: pip runs in another directory than ours.
pub(crate) async fn install(
    python: &str,
    dir: &Path,
    app_root: &Path,
    requirements: &Requirements,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), VenvError> {
    let venv_python = python_in(dir);
    let mut cmd = command::spec("pip", &venv_python, app_root);
    cmd.args = [
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
    ]
    .map(OsString::from)
    .into();
    cmd.env
        .push(("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into()));
    match requirements {
        Requirements::Txt(path) => {
            cmd.args.extend(["-r".into(), path.into()]);
        }
        Requirements::Packages { packages, .. } if !packages.is_empty() => {
            // `--` so that no entry can be taken for a pip option.
            cmd.args.push("--".into());
            cmd.args.extend(packages.iter().map(OsString::from));
        }
        Requirements::Packages { .. } | Requirements::None => return Ok(()),
    }

    if !pip_works(&venv_python).await {
        bootstrap(python, dir, progress).await?;
    }
    tracing::info!("installing requirements");
    let finished = command::run(cmd, progress)
        .await
        .map_err(|e| VenvError::io("run", &venv_python, e))?;
    if finished.exit.success() {
        return Ok(());
    }
    Err(VenvError::InstallFailed {
        requirements: describe(requirements, app_root),
        code: finished.exit.code,
        last_lines: finished.last_lines,
    })
}

/// Whether the venv's pip starts. A venv built for no requirements has none, and a
/// killed bootstrap can leave a partial one.
async fn pip_works(venv_python: &Path) -> bool {
    let status = Command::new(venv_python)
        .args(["-m", "pip", "--version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await;
    status.is_ok_and(|s| s.success())
}

/// Installs pip into the venv with the interpreter's own `ensurepip`.
async fn bootstrap(
    python: &str,
    dir: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), VenvError> {
    tracing::info!("installing pip into the venv");
    let venv_python = python_in(dir);
    let mut cmd = command::spec("ensurepip", &venv_python, dir);
    cmd.args = ["-m", "ensurepip", "--upgrade", "--default-pip"]
        .map(OsString::from)
        .into();
    let finished = command::run(cmd, progress)
        .await
        .map_err(|e| VenvError::io("run", &venv_python, e))?;
    if finished.exit.success() {
        Ok(())
    } else {
        Err(create::creation_failed(python, dir, finished))
    }
}

/// How error messages name the requirements: `requirements.txt`, or
/// `the dependencies in pyproject.toml`, relative to the app when inside it.
pub(crate) fn describe(requirements: &Requirements, app_root: &Path) -> String {
    let shown = |path: &Path| {
        path.strip_prefix(app_root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    match requirements {
        Requirements::Txt(path) => shown(path),
        Requirements::Packages { source, .. } => {
            format!("the dependencies in {}", shown(source))
        }
        Requirements::None => "nothing".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_inside_the_app_are_named_relative_to_it() {
        let app = Path::new("/srv/app");
        assert_eq!(
            describe(&Requirements::Txt("/srv/app/requirements.txt".into()), app),
            "requirements.txt"
        );
        assert_eq!(
            describe(&Requirements::Txt("/etc/reqs.txt".into()), app),
            "/etc/reqs.txt"
        );
        let packages = Requirements::Packages {
            source: "/srv/app/pyproject.toml".into(),
            packages: vec!["six".into()],
        };
        assert_eq!(
            describe(&packages, app),
            "the dependencies in pyproject.toml"
        );
    }
}
