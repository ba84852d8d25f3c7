//! Who a child runs as: a user id, a group id, supplementary groups and the
//! user's HOME/USER/LOGNAME. Applied between fork and exec by [`Child::spawn`].
//!
//! [`Child::spawn`]: crate::Child::spawn

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

use nix::unistd::{Gid, Uid};

/// The user a child runs as instead of capstan's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user's name, given to the child as `USER` and `LOGNAME`.
    pub user: String,
    /// The user id the child switches to.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary groups; usually just `gid`.
    pub groups: Vec<u32>,
    /// The user's home directory, given to the child as `HOME`.
    pub home: PathBuf,
}

impl Identity {
    /// The variables that say who the child is, set over any inherited ones.
    pub(crate) fn env(&self) -> [(OsString, OsString); 3] {
        [
            ("HOME".into(), self.home.clone().into_os_string()),
            ("USER".into(), self.user.clone().into()),
            ("LOGNAME".into(), self.user.clone().into()),
        ]
    }

    /// The ids in nix's types, made before fork so the hook allocates nothing.
    pub(crate) fn prepared(&self) -> Prepared {
        Prepared {
            uid: Uid::from_raw(self.uid),
            gid: Gid::from_raw(self.gid),
            groups: self.groups.iter().copied().map(Gid::from_raw).collect(),
        }
    }
}

/// An [`Identity`] ready to apply between fork and exec.
#[derive(Debug)]
pub(crate) struct Prepared {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
}

impl Prepared {
    /// Drops to this identity: groups first, then the group id, then the user id,
    /// since after setuid the process may no longer change its groups. Runs in
    /// the forked child: only system calls, no allocation.
    pub(crate) fn apply(&self) -> io::Result<()> {
        nix::unistd::setgroups(&self.groups)?;
        nix::unistd::setgid(self.gid)?;
        nix::unistd::setuid(self.uid)?;
        Ok(())
    }
}
