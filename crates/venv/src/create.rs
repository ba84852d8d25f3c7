//! Building a fresh venv: `python -m venv --without-pip` into a temp directory, renamed
//! into place. pip comes later, from [`pip`](crate::pip), and only if there is
//! something to install.
//!
//! Why without pip: ensurepip writes `bin/pip` with an absolute `#!<tmp>/bin/python`
//! line, which would dangle after the rename. So the rename happens while the only
//! files naming the venv's path are the activate scripts, which are rewritten first,
//! and pip (and every console script pip installs) is written at the final path. It also makes a venv for a stdlib-only app take a
//! fraction of a second, and work on Debian without `python3-venv`.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use crate::command;
use crate::interpreter::Interpreter;
use crate::VenvError;

/// Replaces whatever is at `dir` (nothing, or a broken venv) with a new, empty venv
/// made by `base`. `python` is the interpreter as configured, for messages.
pub(crate) async fn create(
    base: &Interpreter,
    python: &str,
    dir: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), VenvError> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| VenvError::io("create the directory", parent, e))?;
    check_replaceable(dir).await?;
    remove_stale_temps(dir).await;

    let temp = temp_dir(dir, std::process::id());
    tracing::info!(temp = %temp.display(), "creating venv");
    let built = async {
        build(base, python, &temp, dir, progress).await?;
        if tokio::fs::symlink_metadata(dir).await.is_ok() {
            tracing::info!("removing the broken venv");
            tokio::fs::remove_dir_all(dir)
                .await
                .map_err(|e| VenvError::io("remove the broken venv", dir, e))?;
        }
        tokio::fs::rename(&temp, dir)
            .await
            .map_err(|e| VenvError::io("move the new venv into place at", dir, e))
    };
    if let Err(e) = built.await {
        let _ = tokio::fs::remove_dir_all(&temp).await;
        return Err(e);
    }
    Ok(())
}

/// Runs `python -m venv --without-pip <temp>` and readies the result to become `dir`.
async fn build(
    base: &Interpreter,
    python: &str,
    temp: &Path,
    dir: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), VenvError> {
    let mut cmd = command::spec(
        "venv",
        &base.program,
        temp.parent().unwrap_or(Path::new("/")),
    );
    cmd.args = vec![
        "-m".into(),
        "venv".into(),
        "--without-pip".into(),
        temp.into(),
    ];
    let finished = command::run(cmd, progress)
        .await
        .map_err(|e| VenvError::io("run", PathBuf::from(&base.program), e))?;
    if !finished.exit.success() {
        return Err(creation_failed(python, dir, finished));
    }
    point_at_final_path(temp, dir).await
}

/// venv writes its own absolute path into the activate scripts (and, informationally,
/// pyvenv.cfg); rewrite the temp path there to the path the venv is about to have, so
/// `source <dir>/bin/activate` works.
async fn point_at_final_path(temp: &Path, dir: &Path) -> Result<(), VenvError> {
    let (Some(from), Some(to)) = (temp.to_str(), dir.to_str()) else {
        // Not UTF-8: leave the files as they are; only `activate` would be affected.
        return Ok(());
    };
    for file in [
        "bin/activate",
        "bin/activate.csh",
        "bin/activate.fish",
        "pyvenv.cfg",
    ] {
        let path = temp.join(file);
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(VenvError::io("read", path, e)),
        };
        if text.contains(from) {
            tokio::fs::write(&path, text.replace(from, to))
                .await
                .map_err(|e| VenvError::io("write", path, e))?;
        }
    }
    Ok(())
}

/// The error for a failed `venv` or `ensurepip` run, told apart by its output.
pub(crate) fn creation_failed(python: &str, dir: &Path, finished: command::Finished) -> VenvError {
    if module_missing(&finished.last_lines) {
        VenvError::VenvModuleMissing {
            python: python.to_owned(),
            last_lines: finished.last_lines,
        }
    } else {
        VenvError::CreateFailed {
            python: python.to_owned(),
            dir: dir.to_owned(),
            code: finished.exit.code,
            last_lines: finished.last_lines,
        }
    }
}

/// Whether the output says the interpreter lacks venv or ensurepip, as Debian's and
/// Ubuntu's Python does until `python3-venv` is installed.
fn module_missing(lines: &[String]) -> bool {
    const SIGNS: [&str; 4] = [
        "ensurepip is not available",
        "ensurepip is disabled",
        "no module named venv",
        "no module named ensurepip",
    ];
    // Debian wraps its message mid-sentence, so search the output as one line.
    let text = lines
        .join(" ")
        .to_lowercase()
        .replace(['\'', '"'], "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    SIGNS.iter().any(|sign| text.contains(sign))
}

/// Refuses to delete a directory at the venv path unless it is a venv (or empty):
/// a mistyped venv setting must not cost the user a directory.
async fn check_replaceable(dir: &Path) -> Result<(), VenvError> {
    let meta = match tokio::fs::symlink_metadata(dir).await {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(VenvError::io("inspect", dir, e)),
    };
    let is_venv = meta.is_dir()
        && tokio::fs::try_exists(dir.join("pyvenv.cfg"))
            .await
            .unwrap_or(false);
    let is_empty = meta.is_dir()
        && tokio::fs::read_dir(dir)
            .await
            .map_err(|e| VenvError::io("inspect", dir, e))?
            .next_entry()
            .await
            .map_err(|e| VenvError::io("inspect", dir, e))?
            .is_none();
    if is_venv || is_empty {
        Ok(())
    } else {
        Err(VenvError::NotAVenv {
            dir: dir.to_owned(),
        })
    }
}

/// `<dir>.tmp-<pid>`, next to `dir` so the final rename stays on one filesystem.
fn temp_dir(dir: &Path, pid: u32) -> PathBuf {
    let mut name = dir.file_name().unwrap_or(OsStr::new("venv")).to_owned();
    name.push(format!(".tmp-{pid}"));
    dir.with_file_name(name)
}

/// Removes `<dir>.tmp-<pid>` directories left by builds that were killed: ours, and
/// those whose process is gone. Best effort; a leftover only costs disk space.
async fn remove_stale_temps(dir: &Path) {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return;
    };
    let prefix = format!("{}.tmp-", name.to_string_lossy());
    let Ok(mut entries) = tokio::fs::read_dir(parent).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || !process_alive(pid) {
            tracing::debug!(path = %entry.path().display(), "removing a stale venv build");
            let _ = tokio::fs::remove_dir_all(entry.path()).await;
        }
    }
}

/// Whether process `pid` exists. Where there is no `/proc` we cannot tell, and say yes
/// so nothing in use is removed.
fn process_alive(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn debians_missing_python3_venv_messages_are_recognised() {
        let debian =
            "The virtual environment was not created successfully because ensurepip is not\n\
                      available.  On Debian/Ubuntu systems, you need to install the python3-venv\n\
                      package using the following command.\n\n    apt install python3.11-venv";
        assert!(module_missing(&lines(debian)));
        assert!(module_missing(&lines(
            "error: ensurepip is disabled in Debian/Ubuntu for the system python."
        )));
        assert!(module_missing(&lines(
            "/usr/bin/python3: No module named venv"
        )));
        assert!(module_missing(&lines(
            "/x/bin/python: No module named ensurepip"
        )));
        assert!(module_missing(&lines(
            "ModuleNotFoundError: No module named 'ensurepip'"
        )));
        assert!(!module_missing(&lines(
            "OSError: [Errno 28] No space left on device"
        )));
    }

    #[test]
    fn temp_dir_is_a_sibling_named_after_the_venv_and_pid() {
        assert_eq!(
            temp_dir(Path::new("/app/.capstan/venv"), 42),
            Path::new("/app/.capstan/venv.tmp-42")
        );
    }

    #[tokio::test]
    async fn a_directory_that_is_not_a_venv_is_not_replaced() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("src");
        std::fs::create_dir(&dir).unwrap();
        assert!(check_replaceable(&dir).await.is_ok(), "empty is fine");
        std::fs::write(dir.join("app.py"), "").unwrap();
        assert!(matches!(
            check_replaceable(&dir).await,
            Err(VenvError::NotAVenv { .. })
        ));
        std::fs::write(dir.join("pyvenv.cfg"), "").unwrap();
        assert!(
            check_replaceable(&dir).await.is_ok(),
            "a venv may be rebuilt"
        );
    }

    #[tokio::test]
    async fn stale_builds_of_dead_processes_are_removed_and_live_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("venv");
        let ours = temp_dir(&dir, std::process::id());
        // Pid 1 is always alive; u32::MAX is never a pid.
        let live = temp_dir(&dir, 1);
        let dead = temp_dir(&dir, u32::MAX);
        let unrelated = root.path().join("venv.tmp-notapid");
        for d in [&ours, &live, &dead, &unrelated] {
            std::fs::create_dir_all(d.join("bin")).unwrap();
        }
        remove_stale_temps(&dir).await;
        assert!(!ours.exists());
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(unrelated.exists());
    }
}
