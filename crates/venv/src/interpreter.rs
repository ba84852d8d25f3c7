//! Finding out which Python an interpreter is, by running it.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::command::TAIL_LINES;
use crate::VenvError;

/// The oldest Python capstan builds venvs with.
pub(crate) const MIN_VERSION: (u32, u32) = (3, 8);
/// [`MIN_VERSION`] as users read it.
pub(crate) const MIN_VERSION_TEXT: &str = "3.8";

/// Valid Python 2 and 3 alike, so an old interpreter gets "too old", not "broken".
const VERSION_SCRIPT: &str = "import sys; print('.'.join(map(str, sys.version_info[:3])))";

/// An interpreter that ran and said which version it is.
#[derive(Debug, Clone)]
pub(crate) struct Interpreter {
    /// What to execute: a bare name (looked up on `PATH`) or an absolute path.
    pub program: OsString,
    /// e.g. `"3.11.7"`.
    pub version: String,
}

/// Why an interpreter could not say its version.
#[derive(Debug)]
pub(crate) enum ProbeError {
    /// It could not be started; `NotFound` if it does not exist.
    Spawn(io::Error),
    /// It started but failed, or printed something other than a version.
    Failed {
        code: Option<i32>,
        last_lines: Vec<String>,
    },
}

/// Checks the interpreter the venv is to be built with: it exists, runs and is new
/// enough.
pub(crate) async fn base(python: &str) -> Result<Interpreter, VenvError> {
    // A relative path like `./py/bin/python3` means relative to our current directory,
    // whatever directory the child later runs in.
    let program = if python.contains('/') {
        std::path::absolute(python)
            .map_err(|e| VenvError::io("resolve the interpreter path", python, e))?
            .into_os_string()
    } else {
        OsString::from(python)
    };
    match version(&program).await {
        Ok(version) if !supported(&version) => Err(VenvError::PythonTooOld {
            python: python.to_owned(),
            version,
        }),
        Ok(version) => Ok(Interpreter { program, version }),
        Err(ProbeError::Spawn(e)) if e.kind() == io::ErrorKind::NotFound => {
            Err(VenvError::PythonNotFound {
                python: python.to_owned(),
            })
        }
        Err(ProbeError::Spawn(e)) => Err(VenvError::io("run", python, e)),
        Err(ProbeError::Failed { code, last_lines }) => Err(VenvError::PythonUnusable {
            python: python.to_owned(),
            code,
            last_lines,
        }),
    }
}

/// Runs `program` and asks for its version, e.g. `"3.11.7"`.
pub(crate) async fn version(program: impl AsRef<Path>) -> Result<String, ProbeError> {
    let program = program.as_ref();
    let output = Command::new(program)
        .args(["-c", VERSION_SCRIPT])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(ProbeError::Spawn)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reported = stdout.lines().last().map(str::trim).unwrap_or_default();
    if output.status.success() && parse(reported).is_some() {
        tracing::debug!(program = %program.display(), version = reported, "probed interpreter");
        return Ok(reported.to_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<String> = stdout
        .lines()
        .chain(stderr.lines())
        .map(str::to_owned)
        .collect();
    let skip = lines.len().saturating_sub(TAIL_LINES);
    Err(ProbeError::Failed {
        code: output.status.code(),
        last_lines: lines.into_iter().skip(skip).collect(),
    })
}

/// Whether capstan can build a venv with this version.
pub(crate) fn supported(version: &str) -> bool {
    parse(version).is_some_and(|(major, minor, _)| (major, minor) >= MIN_VERSION)
}

/// `"3.11.7"` → `(3, 11, 7)`.
fn parse(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let triple = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(triple)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_three_numbers_only() {
        assert_eq!(parse("3.11.7"), Some((3, 11, 7)));
        assert_eq!(parse("3.11"), None);
        assert_eq!(parse("3.11.7.1"), None);
        assert_eq!(parse("pyenv: python3: command not found"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn python_3_8_is_the_oldest_supported() {
        assert!(supported("3.8.0"));
        assert!(supported("3.13.1"));
        assert!(supported("4.0.0"));
        assert!(!supported("3.7.17"));
        assert!(!supported("2.7.18"));
    }
}
