//! Building a whole venv at a path that never moves afterwards: `uv venv` +
//! `uv pip install` when uv is there, `python -m venv` + pip otherwise.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::interpreter::Interpreter;
use crate::spec::python_in;
use crate::{command, create, pip, Requirements, VenvError};

/// What installs the packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installer {
    /// `python -m venv`, then the venv's own pip (bootstrapped with ensurepip).
    Pip,
    /// `uv venv` and `uv pip install`, with this `uv` program.
    Uv(PathBuf),
}

impl Installer {
    /// uv when a `uv` program is on `PATH`, pip otherwise.
    pub fn detect() -> Installer {
        detect_in(&std::env::var_os("PATH").unwrap_or_default())
    }
}

/// [`Installer::detect`] for a given `PATH` value.
fn detect_in(path: &std::ffi::OsStr) -> Installer {
    std::env::split_paths(path)
        .map(|dir| dir.join("uv"))
        .find(|uv| is_executable(uv))
        .map_or(Installer::Pip, Installer::Uv)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Builds a venv at `dir` (which must not exist) with `base`, and installs
/// `requirements` into it from `app_root`. `python` is the interpreter as
/// configured, for messages.
pub(crate) async fn build(
    installer: &Installer,
    base: &Interpreter,
    python: &str,
    dir: &Path,
    app_root: &Path,
    requirements: &Requirements,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), VenvError> {
    match installer {
        Installer::Pip => {
            let mut cmd = command::spec("venv", &base.program, app_root);
            cmd.args = vec![
                "-m".into(),
                "venv".into(),
                "--without-pip".into(),
                dir.into(),
            ];
            let finished = run(cmd, &base.program, progress).await?;
            if !finished.exit.success() {
                return Err(create::creation_failed(python, dir, finished));
            }
            pip::install(python, dir, app_root, requirements, progress).await
        }
        Installer::Uv(uv) => {
            let mut cmd = command::spec("uv", uv, app_root);
            cmd.args = vec![
                "venv".into(),
                "--python".into(),
                base.program.clone(),
                dir.into(),
            ];
            let finished = run(cmd, uv, progress).await?;
            if !finished.exit.success() {
                return Err(create::creation_failed(python, dir, finished));
            }
            let mut cmd = command::spec("uv", uv, app_root);
            cmd.args = ["pip", "install", "--python"].map(OsString::from).into();
            cmd.args.push(python_in(dir).into());
            match requirements {
                Requirements::Txt(path) => cmd.args.extend(["-r".into(), path.into()]),
                Requirements::Packages { packages, .. } if !packages.is_empty() => {
                    // `--` so that no entry can be taken for an option.
                    cmd.args.push("--".into());
                    cmd.args.extend(packages.iter().map(OsString::from));
                }
                Requirements::Packages { .. } | Requirements::None => return Ok(()),
            }
            tracing::info!("installing requirements with uv");
            let finished = run(cmd, uv, progress).await?;
            if finished.exit.success() {
                return Ok(());
            }
            Err(VenvError::InstallFailed {
                requirements: pip::describe(requirements, app_root),
                code: finished.exit.code,
                last_lines: finished.last_lines,
            })
        }
    }
}

async fn run(
    cmd: capstan_proc::Spec,
    program: impl AsRef<Path>,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<command::Finished, VenvError> {
    command::run(cmd, progress)
        .await
        .map_err(|e| VenvError::io("run", program.as_ref(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn uv_is_used_when_an_executable_uv_is_on_path() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert_eq!(detect_in(&path), Installer::Pip, "no uv at all");
        std::fs::write(a.path().join("uv"), "").unwrap();
        assert_eq!(detect_in(&path), Installer::Pip, "a uv that cannot run");
        let uv = b.path().join("uv");
        std::fs::write(&uv, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&uv, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(detect_in(&path), Installer::Uv(uv));
    }
}
