//! An app's folder on a server and what a deploy does on disk: the bare git
//! repository a push lands in (with its pre-receive hook and the branch rules),
//! the release folders checked out from it, the `current` symlink, retention,
//! and the lock that lets one deploy of an app run at a time.
//!
//! No daemon state lives here: every function works from the app's folder, so
//! the daemon, the hook program and the tests all see the same truth on disk.

mod error;
mod git;
mod layout;
mod lock;
mod push;
mod readonly;
mod release;
mod repo;

pub use error::DeployError;
pub use git::{Commit, Git};
pub use layout::AppDir;
pub use lock::{DeployLock, Holder, LockError};
pub use push::{check_push, parse_updates, Deploy, Oid, PushRefused, RefUpdate};
pub use release::{
    Building, ReleaseId, ReleaseInfo, ReleaseRecord, ReleaseStatus, Releases, DEFAULT_KEEP,
};
pub use repo::{HookCommand, Repo};
