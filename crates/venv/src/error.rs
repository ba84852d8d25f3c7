//! [`VenvError`]: every way building or checking a venv can fail, worded for the person
//! who has to fix it.

use std::io;
use std::path::PathBuf;

/// Why [`ensure`](crate::ensure) or [`existing`](crate::existing) could not produce a
/// working venv.
///
/// Each message is one paragraph saying what is wrong and what to do; variants that come
/// from a failed command also carry its last lines of output (`last_lines`), which the
/// message shows below the paragraph.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VenvError {
    /// The interpreter to build the venv with does not exist.
    #[error("{}", python_not_found(python))]
    PythonNotFound {
        /// The interpreter as configured (`"python3"` or a path).
        python: String,
    },

    /// The interpreter exists but could not even report its version.
    #[error(
        "{python} was found but did not run properly ({}). Check that it is a working \
         Python 3 interpreter, or set `python = \"/path/to/python3\"` in capstan.toml.{}",
        exit(*code),
        tail(last_lines)
    )]
    PythonUnusable {
        /// The interpreter as configured.
        python: String,
        /// Its exit code; `None` if a signal ended it.
        code: Option<i32>,
        /// Its last lines of output.
        last_lines: Vec<String>,
    },

    /// The interpreter is older than the oldest Python capstan supports.
    #[error(
        "{python} is Python {version}, but capstan needs Python {min} or newer. Install a \
         newer Python and set `python = \"/path/to/python3\"` in capstan.toml.",
        min = crate::interpreter::MIN_VERSION_TEXT
    )]
    PythonTooOld {
        /// The interpreter as configured.
        python: String,
        /// The version it reported, e.g. `"3.6.9"`.
        version: String,
    },

    /// The interpreter has no working `venv`/`ensurepip`, as on Debian and Ubuntu
    /// without the `python3-venv` package.
    #[error(
        "{python} cannot create virtual environments because its venv/ensurepip module is \
         missing. On Debian or Ubuntu install it with `apt-get install python3-venv` (or \
         the python3.X-venv package matching this Python), then run again.{}",
        tail(last_lines)
    )]
    VenvModuleMissing {
        /// The interpreter as configured.
        python: String,
        /// The failing command's last lines of output.
        last_lines: Vec<String>,
    },

    /// `python -m venv` or `python -m ensurepip` failed for another reason.
    #[error(
        "creating the virtualenv {} with {python} failed ({}). Check that the directory is \
         writable and the disk has room, fix what the output below reports, and run \
         again.{}",
        dir.display(),
        exit(*code),
        tail(last_lines)
    )]
    CreateFailed {
        /// The interpreter as configured.
        python: String,
        /// The venv directory being created.
        dir: PathBuf,
        /// The command's exit code; `None` if a signal ended it.
        code: Option<i32>,
        /// The command's last lines of output.
        last_lines: Vec<String>,
    },

    /// `pip install` failed. The stamp was not updated, so the next run tries again.
    #[error(
        "pip could not install {requirements}: {}. Fix the file and run again; the \
         previous environment is unchanged.{}",
        summary(last_lines),
        tail(last_lines)
    )]
    InstallFailed {
        /// The requirements input, e.g. `"requirements.txt"` or
        /// `"the dependencies in pyproject.toml"`.
        requirements: String,
        /// pip's exit code; `None` if a signal ended it.
        code: Option<i32>,
        /// pip's last lines of output.
        last_lines: Vec<String>,
    },

    /// The requirements file named by [`Requirements::Txt`](crate::Requirements::Txt)
    /// could not be read.
    #[error(
        "could not read the requirements file {}: {source}. Check that it exists and is \
         readable, or remove it if the app has no dependencies.",
        path.display()
    )]
    RequirementsUnreadable {
        /// The requirements file.
        path: PathBuf,
        /// Why reading it failed.
        source: io::Error,
    },

    /// The venv directory exists, is not a venv, and is not capstan's to delete.
    #[error(
        "{} exists but is not a virtualenv (it has no pyvenv.cfg), so capstan will not \
         replace it. Move it out of the way or choose another venv directory.",
        dir.display()
    )]
    NotAVenv {
        /// The directory that was in the way.
        dir: PathBuf,
    },

    /// A venv given by the user has no `bin/python` that runs.
    #[error(
        "{} is not a usable virtualenv: {reason}. Point the setting at a venv with a \
         working bin/python (create one with `python3 -m venv {}`), or remove the setting \
         so capstan builds one.{}",
        dir.display(),
        dir.display(),
        tail(last_lines)
    )]
    ExistingVenvInvalid {
        /// The directory given.
        dir: PathBuf,
        /// What is wrong with it, e.g. `"bin/python does not exist"`.
        reason: String,
        /// The interpreter's last lines of output, if it ran.
        last_lines: Vec<String>,
    },

    /// A filesystem operation or process spawn failed.
    #[error(
        "could not {action} {}: {source}. Check the path's permissions and free disk space, \
         then run again.",
        path.display()
    )]
    Io {
        /// What was being done, e.g. `"rename"` or `"write the stamp"`.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl VenvError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        VenvError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

fn python_not_found(python: &str) -> String {
    if python.contains('/') {
        format!(
            "{python} was not found. Install Python 3 there (Debian: apt-get install \
             python3 python3-venv) or set `python = \"/path/to/python3\"` in capstan.toml \
             to an interpreter that exists."
        )
    } else {
        format!(
            "{python} was not found on PATH. Install it (Debian: apt-get install python3 \
             python3-venv) or set `python = \"/path/to/python3\"` in capstan.toml."
        )
    }
}

fn exit(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_owned(),
    }
}

/// The one line of pip's output that best says what went wrong: its last `ERROR:` line,
/// else its last non-empty line.
fn summary(lines: &[String]) -> String {
    let line = lines
        .iter()
        .rev()
        .find(|l| l.trim_start().starts_with("ERROR:"))
        .or_else(|| lines.iter().rev().find(|l| !l.trim().is_empty()))
        .map(|l| l.trim());
    match line {
        Some(line) => {
            let line = line.strip_prefix("ERROR:").unwrap_or(line).trim();
            line.trim_end_matches('.').to_owned()
        }
        None => "pip printed nothing".to_owned(),
    }
}

/// The last lines of a command's output, shown below the message's paragraph.
fn tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n\nLast lines of output:");
    for line in lines {
        out.push_str("\n    ");
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn install_failed_names_pips_error_line_and_shows_the_tail() {
        let err = VenvError::InstallFailed {
            requirements: "requirements.txt".into(),
            code: Some(1),
            last_lines: lines(
                "Collecting nope==1.0\n\
                 ERROR: Could not find a version that satisfies the requirement nope==1.0\n\
                 ERROR: No matching distribution found for nope==1.0\n",
            ),
        };
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "pip could not install requirements.txt: No matching distribution found for \
                 nope==1.0. Fix the file and run again; the previous environment is unchanged."
            ),
            "{msg}"
        );
        assert!(msg.contains("\n    Collecting nope==1.0\n"), "{msg}");
    }

    #[test]
    fn python_not_found_on_path_suggests_installing_it() {
        let msg = VenvError::PythonNotFound {
            python: "python3".into(),
        }
        .to_string();
        assert_eq!(
            msg,
            "python3 was not found on PATH. Install it (Debian: apt-get install python3 \
             python3-venv) or set `python = \"/path/to/python3\"` in capstan.toml."
        );
    }

    #[test]
    fn python_not_found_as_a_path_does_not_mention_path_lookup() {
        let msg = VenvError::PythonNotFound {
            python: "/opt/py/bin/python3".into(),
        }
        .to_string();
        assert!(
            msg.starts_with("/opt/py/bin/python3 was not found. "),
            "{msg}"
        );
    }

    #[test]
    fn summary_falls_back_to_the_last_non_empty_line() {
        assert_eq!(summary(&lines("a\nKilled\n\n")), "Killed");
        assert_eq!(summary(&[]), "pip printed nothing");
    }
}
