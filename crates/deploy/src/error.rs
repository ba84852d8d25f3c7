//! The errors of this crate's operations on disk and with git.

use std::io;
use std::path::PathBuf;

/// What went wrong while working on an app's folder, repository or releases.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A file system operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "create" or "read".
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// `apps create` for a name that already has a folder.
    #[error(
        "an app called {app} already exists (its folder is {}); pick another name, \
         or remove the app first",
        path.display()
    )]
    AppExists {
        /// The app's name.
        app: String,
        /// Its folder.
        path: PathBuf,
    },
    /// An app name with no folder under the root.
    #[error(
        "there is no app called {app} (no folder {}); create it with `capstan apps create {app}`",
        path.display()
    )]
    NoSuchApp {
        /// The app's name.
        app: String,
        /// The folder that is missing.
        path: PathBuf,
    },
    /// git could not be started (not installed, or not on PATH).
    #[error("could not run git ({source}); install it (Debian: `apt install git`) and try again")]
    GitMissing {
        /// The spawn error.
        source: io::Error,
    },
    /// A git command exited with an error.
    #[error("`git {command}` failed: {stderr}")]
    Git {
        /// The git subcommand and its arguments.
        command: String,
        /// What git printed on stderr, trimmed.
        stderr: String,
    },
    /// The commit a hook was handed is not visible to git.
    #[error(
        "the pushed commit {sha} is not visible to git: a pre-receive hook must run git \
         with the environment git gave it (GIT_OBJECT_DIRECTORY, \
         GIT_ALTERNATE_OBJECT_DIRECTORIES and GIT_QUARANTINE_PATH point at the push's objects)"
    )]
    PushedCommitMissing {
        /// The commit.
        sha: String,
    },
    /// A release number that no kept release has.
    #[error("{app} has no release {number}; `capstan releases {app}` lists the ones kept")]
    NoSuchRelease {
        /// The app's name.
        app: String,
        /// The number asked for.
        number: u64,
    },
    /// A release that cannot be made live: it failed, or is still being built.
    #[error(
        "release {number} of {app} is {status}, not a built release; pick a release marked ready"
    )]
    NotBuilt {
        /// The app's name.
        app: String,
        /// Its number.
        number: u64,
        /// Its status in words.
        status: String,
    },
    /// A rollback to the release that is already live.
    #[error("release {number} of {app} is already live")]
    AlreadyLive {
        /// The app's name.
        app: String,
        /// Its number.
        number: u64,
    },
    /// A rollback with no earlier built release to go back to.
    #[error("{app} has no built release before {live} to roll back to; name one with `capstan rollback {app} N`")]
    NothingToRollBackTo {
        /// The app's name.
        app: String,
        /// The live release.
        live: u64,
    },
    /// A rollback when nothing is live yet.
    #[error("{app} has no live release yet; push the deploy branch first")]
    NothingLive {
        /// The app's name.
        app: String,
    },
    /// A release record that cannot be read.
    #[error("the release record {} is damaged ({reason}); move it away and try again", path.display())]
    BadRecord {
        /// The record's path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl DeployError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        DeployError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
