//! Who may control capstan: root, the daemon's own user, and members of its group
//! (`capstan` unless told otherwise). Checked on every accepted connection from the
//! kernel's word on the peer, not from anything the peer sends.

use nix::unistd::{Group, Uid, User};
use serde::{Deserialize, Serialize};
use tokio::net::unix::UCred;

use crate::error::{ApiError, ErrorKind};

/// The group whose members may control capstan.
pub const DEFAULT_GROUP: &str = "capstan";

/// The peer of a control connection, as the kernel reports it (SO_PEERCRED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// Its effective uid when it connected.
    pub uid: u32,
    /// Its effective gid when it connected.
    pub gid: u32,
    /// Its process id, when the kernel knows it.
    pub pid: Option<i32>,
}

/// Who is let in: uid 0, the daemon's own uid, and members of one group.
#[derive(Debug, Clone)]
pub struct Access {
    own_uid: u32,
    group: String,
    gid: Option<u32>,
}

impl Access {
    /// Root, this process's user, and members of `group`. The group is looked up
    /// once, now: one created later counts after the daemon restarts; while it does
    /// not exist, only root and this user get in.
    pub fn new(group: &str) -> Access {
        let gid = match Group::from_name(group) {
            Ok(found) => found.map(|g| g.gid.as_raw()),
            Err(error) => {
                tracing::warn!(group, %error, "could not look up the control group");
                None
            }
        };
        Access {
            own_uid: Uid::current().as_raw(),
            group: group.to_owned(),
            gid,
        }
    }

    /// Root, this user and members of group `capstan`.
    pub fn capstan_group() -> Access {
        Access::new(DEFAULT_GROUP)
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The group's id, if the group exists.
    pub fn gid(&self) -> Option<u32> {
        self.gid
    }

    /// Lets `cred` in, or says why not and what to do.
    pub(crate) fn check(&self, cred: &UCred) -> Result<Caller, ApiError> {
        let caller = Caller {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
        };
        if caller.uid == 0 || caller.uid == self.own_uid {
            return Ok(caller);
        }
        if let Some(gid) = self.gid {
            if caller.gid == gid || caller.pid.is_some_and(|pid| in_group(pid, caller.uid, gid)) {
                return Ok(caller);
            }
        }
        Err(self.refusal(caller.uid))
    }

    /// The 403 for `uid`, naming the fix.
    fn refusal(&self, uid: u32) -> ApiError {
        let group = &self.group;
        let you = User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "<you>".to_owned());
        let missing = if self.gid.is_none() {
            format!(
                " (the {group} group does not exist yet: `groupadd --system {group}`, then \
                 restart the daemon)"
            )
        } else {
            String::new()
        };
        ApiError::new(
            ErrorKind::Refused,
            format!(
                "only root and members of the {group} group may control capstan (you are uid \
                 {uid}); ask an admin to run `usermod -aG {group} {you}`{missing}, then log in \
                 again so the new group applies"
            ),
        )
    }
}

/// Whether process `pid`, running as `uid`, has `gid` among its supplementary groups.
///
/// SO_PEERCRED gives only the primary gid; the supplementary groups are read from
/// `/proc/<pid>/status` (`Groups:`). SECURITY: that file describes the process as it
/// is now, and a pid can be reused once its process exits, so the same file's
/// effective uid must still be the one the kernel gave for the connection; a peer
/// that exited or changed identity is refused, never let in.
fn in_group(pid: i32, uid: u32, gid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    match parse_status(&status) {
        Some((effective_uid, groups)) => effective_uid == uid && groups.contains(&gid),
        None => false,
    }
}

/// The effective uid and the supplementary groups from a `/proc/<pid>/status` text.
fn parse_status(status: &str) -> Option<(u32, Vec<u32>)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
    };
    // Uid: real, effective, saved, filesystem.
    let effective_uid = field("Uid")?.split_whitespace().nth(1)?.parse().ok()?;
    let groups = field("Groups")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<Vec<u32>, _>>()
        .ok()?;
    Some((effective_uid, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_gives_the_effective_uid_and_the_groups() {
        let status = "Name:\tbash\nUid:\t1000\t1001\t1000\t1000\nGid:\t100\t100\t100\t100\n\
                      Groups:\t4 24 999 \nNgid:\t0\n";
        assert_eq!(parse_status(status), Some((1001, vec![4, 24, 999])));
    }

    #[test]
    fn a_process_without_supplementary_groups_has_an_empty_list() {
        let status = "Uid:\t65534\t65534\t65534\t65534\nGroups:\t\n";
        assert_eq!(parse_status(status), Some((65534, vec![])));
    }

    #[test]
    fn an_unreadable_status_lets_nobody_in() {
        assert_eq!(parse_status("Name:\tx\n"), None);
        assert_eq!(parse_status("Uid:\t1\t2\t3\t4\nGroups:\t1 x\n"), None);
    }

    #[test]
    fn this_process_is_in_its_own_groups_and_not_in_others() {
        let me = std::process::id() as i32;
        let uid = Uid::current().as_raw();
        let groups = parse_status(&std::fs::read_to_string("/proc/self/status").unwrap())
            .unwrap()
            .1;
        if let Some(&gid) = groups.first() {
            assert!(in_group(me, uid, gid));
        }
        // The same pid with another uid is a reused pid or a changed identity.
        assert!(!in_group(
            me,
            uid.wrapping_add(1),
            groups.first().copied().unwrap_or(0)
        ));
        assert!(!in_group(me, uid, 4_000_000_000));
    }
}
