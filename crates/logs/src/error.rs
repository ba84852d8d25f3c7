//! What can go wrong writing or reading a logs folder.

use std::io;
use std::path::PathBuf;

/// An error from the logs folder, with the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A process name that cannot be a log file's name.
    #[error(
        "`{name}` cannot name a log: {reason}. A process name is 1 to 64 letters, digits, \
         `-`, `_` or `.` (not first or last, never two in a row), like `web`, `tasks` or `cron.backup`."
    )]
    BadProcessName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Another writer holds the folder.
    #[error(
        "the logs in {} are already being written by another capstan (it holds {}). \
         Only one daemon may write an app's logs: stop the other one, or give this one another root.",
        dir.display(), lock.display()
    )]
    Busy {
        /// The logs folder.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The writer thread is gone (it stopped or panicked).
    #[error("the log writer has stopped")]
    Stopped,
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
