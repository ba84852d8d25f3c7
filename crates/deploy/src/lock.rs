//! One deploy of an app at a time: an exclusive `flock` on `deploy.lock` in the
//! app's folder, which also holds who took it (pid, commit, start time).
//!
//! The kernel drops an flock when the last descriptor of its holder closes,
//! which includes the holder being killed, so a deploy killed halfway never
//! blocks the next one; no stale-lock cleanup exists or is needed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::layout::AppDir;

/// Who holds an app's deploy lock, as written into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holding process.
    pub pid: u32,
    /// The commit it deploys (short), or what it does, e.g. "rollback to 3".
    pub commit: String,
    /// When it took the lock.
    pub started_at: DateTime<Utc>,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("{}", busy_message(app, holder.as_ref()))]
    Busy {
        /// The app.
        app: String,
        /// Who holds it, when the lock file says (it may be just starting).
        holder: Option<Holder>,
    },
    /// The lock file could not be opened or written.
    #[error("could not take the deploy lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// The app's deploy lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct DeployLock {
    _file: Flock<File>,
    holder: Holder,
    app: PathBuf,
}

impl DeployLock {
    /// Takes the lock for a deploy of `commit`, or says who holds it. Never waits.
    pub fn acquire(app: &AppDir, commit: &str) -> Result<DeployLock, LockError> {
        let path = app.lock_file();
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((_, Errno::EWOULDBLOCK)) => {
                // Between another holder's flock and its write the file is
                // empty or a dead holder's; then nobody is named.
                let holder = fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Holder>(&b).ok());
                return Err(LockError::Busy {
                    app: app.name().to_string(),
                    holder,
                });
            }
            Err((_, errno)) => return Err(io_err(errno.into())),
        };
        let holder = Holder {
            pid: std::process::id(),
            commit: commit.to_owned(),
            started_at: Utc::now(),
        };
        let json = serde_json::to_vec(&holder).expect("a holder always serializes");
        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        file.write_all(&json).map_err(io_err)?;
        Ok(DeployLock {
            _file: file,
            holder,
            app: app.path().to_owned(),
        })
    }

    /// Who holds it: this process.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Panics unless this is `app`'s lock: a change to one app's releases
    /// under another app's lock is a bug, not a condition to handle.
    pub(crate) fn assert_for(&self, app: &AppDir) {
        assert_eq!(self.app, app.path(), "the deploy lock of another app");
    }
}

fn busy_message(app: &str, holder: Option<&Holder>) -> String {
    match holder {
        Some(h) => {
            let ago = (Utc::now() - h.started_at).num_seconds().max(0);
            format!(
                "a deploy of {app} is running (commit {}, started {ago} s ago by pid {}); \
                 wait for it to end and push again",
                h.commit, h.pid
            )
        }
        None => format!(
            "a deploy of {app} is running (it is just starting); wait for it to end and push again"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_config::AppName;

    #[test]
    fn a_second_holder_in_the_same_process_is_refused_until_the_first_drops() {
        let root = tempfile::tempdir().unwrap();
        let app = AppDir::create(root.path(), &AppName::new("blog").unwrap()).unwrap();
        let first = DeployLock::acquire(&app, "a1b2c3d").unwrap();
        let err = DeployLock::acquire(&app, "bbbbbbb").unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("a deploy of blog is running (commit a1b2c3d, started "),
            "{message}"
        );
        assert!(
            message.contains(&format!("by pid {}", std::process::id())),
            "{message}"
        );
        drop(first);
        DeployLock::acquire(&app, "bbbbbbb").unwrap();
    }

    #[test]
    fn a_holder_that_has_not_written_its_name_yet_is_just_starting() {
        let root = tempfile::tempdir().unwrap();
        let app = AppDir::create(root.path(), &AppName::new("blog").unwrap()).unwrap();
        let _first = DeployLock::acquire(&app, "a1b2c3d").unwrap();
        fs::write(app.lock_file(), "").unwrap();
        let err = DeployLock::acquire(&app, "bbbbbbb").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a deploy of blog is running (it is just starting); wait for it to end and push again"
        );
    }
}
