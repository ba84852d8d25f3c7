//! The two entry points: [`ensure`] (build or update capstan's own venv) and
//! [`existing`] (accept a venv the user made).

use std::io;
use std::path::{Path, PathBuf};

use tracing::Instrument;

use crate::interpreter::{self, ProbeError};
use crate::spec::python_in;
use crate::stamp::{Check, Input, Stamp};
use crate::{create, pip, Requirements, Venv, VenvError, VenvSpec};

/// Creates or updates the venv `spec` describes, and returns it ready to use.
///
/// - Up to date (its `bin/python` runs the same Python version as `spec.python`, and the
///   stamp records that version and the current requirements): returns at once, running
///   nothing but the two interpreters' version checks.
/// - Requirements changed: runs `pip install` in place, then rewrites the stamp.
/// - Missing, broken, or built by another Python version: builds a new venv next to it,
///   swaps it in, then installs pip and the requirements (a venv for
///   [`Requirements::None`] gets no pip).
///
/// The stamp is written only after pip succeeds, so a failed or interrupted install is
/// retried on the next call. `progress` receives each line venv and pip print.
pub async fn ensure(
    spec: &VenvSpec<'_>,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Venv, VenvError> {
    let dir = absolute(&spec.dir)?;
    let span = tracing::info_span!(
        "venv.ensure",
        dir = %dir.display(),
        python = spec.python,
        version = tracing::field::Empty,
    );
    ensure_at(dir, spec, progress).instrument(span).await
}

/// Checks a venv the user made and points capstan at: it must have a `bin/python` that
/// runs a supported Python. Never creates, changes or installs anything.
pub async fn existing(dir: &Path) -> Result<Venv, VenvError> {
    let dir = absolute(dir)?;
    let python = python_in(&dir);
    let invalid = |reason: String, last_lines: Vec<String>| VenvError::ExistingVenvInvalid {
        dir: dir.clone(),
        reason,
        last_lines,
    };
    if !tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir()) {
        return Err(invalid("the directory does not exist".into(), vec![]));
    }
    match interpreter::version(&python).await {
        Ok(version) if interpreter::supported(&version) => Ok(Venv::new(dir, version)),
        Ok(version) => Err(VenvError::PythonTooOld {
            python: python.display().to_string(),
            version,
        }),
        Err(ProbeError::Spawn(e)) if e.kind() == io::ErrorKind::NotFound => {
            let reason = if tokio::fs::symlink_metadata(&python).await.is_ok() {
                "its bin/python points to an interpreter that no longer exists"
            } else {
                "it has no bin/python"
            };
            Err(invalid(reason.into(), vec![]))
        }
        Err(ProbeError::Spawn(e)) => {
            Err(invalid(format!("bin/python could not run ({e})"), vec![]))
        }
        Err(ProbeError::Failed { code, last_lines }) => {
            let how = code.map_or("was killed".to_owned(), |c| format!("exited with code {c}"));
            Err(invalid(
                format!("bin/python {how} instead of reporting its version"),
                last_lines,
            ))
        }
    }
}

async fn ensure_at(
    dir: PathBuf,
    spec: &VenvSpec<'_>,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Venv, VenvError> {
    let app_root = absolute(spec.app_root)?;
    let requirements = match &spec.requirements {
        Requirements::Txt(path) => Requirements::Txt(absolute(path)?),
        other => other.clone(),
    };
    let input = Input::read(&requirements).await?;
    let base = interpreter::base(spec.python).await?;
    tracing::Span::current().record("version", base.version.as_str());
    let stamp = Stamp::new(&base.version, &input);

    // A venv that does not run, or runs another Python than the one asked for, cannot
    // be repaired by pip: it is rebuilt.
    let venv_version = interpreter::version(python_in(&dir)).await.ok();
    let check = match &venv_version {
        Some(version) if *version == base.version => stamp.check(&dir).await?,
        _ => Check::PythonChanged,
    };
    match check {
        Check::Matches => {
            tracing::debug!("venv is up to date");
            return Ok(Venv::new(dir, base.version));
        }
        Check::RequirementsChanged => {
            tracing::info!("requirements changed; updating the venv in place");
        }
        Check::Missing => {
            // A build that stopped after the venv was moved into place (killed, or pip
            // failed): finish it rather than start over.
            tracing::info!("venv was never finished; completing it");
        }
        Check::PythonChanged => {
            tracing::info!(found = ?venv_version, "venv is missing, broken or stale; creating it");
            create::create(&base, spec.python, &dir, progress).await?;
        }
    }
    pip::install(spec.python, &dir, &app_root, &requirements, progress).await?;
    stamp.write(&dir).await?;
    tracing::info!("venv is ready");
    Ok(Venv::new(dir, base.version))
}

fn absolute(path: &Path) -> Result<PathBuf, VenvError> {
    std::path::absolute(path).map_err(|e| VenvError::io("resolve", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: T) {}

    #[test]
    fn ensure_and_existing_can_run_on_a_spawned_task() {
        let spec = VenvSpec {
            dir: "venv".into(),
            python: "python3",
            requirements: Requirements::None,
            app_root: Path::new("."),
        };
        let mut progress = |_: &str| {};
        assert_send(ensure(&spec, &mut progress));
        assert_send(existing(Path::new("venv")));
    }
}
