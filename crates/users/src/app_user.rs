//! The app's system user `capstan-<app>`: made when missing, read back, removed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;

use capstan_config::AppName;
use capstan_proc::Identity;
use nix::unistd::{Uid, User};

use crate::UserError;

/// The prefix of every app user's name.
const PREFIX: &str = "capstan-";
/// The longest user name shadow-utils and most tools handle.
const MAX_USER_NAME: usize = 32;
/// Where the app users' shell sends anyone who tries to log in.
const NOLOGIN: &str = "/usr/sbin/nologin";

/// A user the app's processes run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUser {
    /// The user name, e.g. `capstan-blog`.
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
    /// Its home directory.
    pub home: PathBuf,
    /// True for [`current_user`]: there is nothing to switch to.
    pub is_current: bool,
}

impl AppUser {
    /// What to give `capstan_proc::Spec::identity`: the app's user, or `None`
    /// when it is the current user (a non-root process cannot even set its own
    /// groups, and needs not).
    pub fn identity(&self) -> Option<Identity> {
        (!self.is_current).then(|| Identity {
            user: self.name.clone(),
            uid: self.uid,
            gid: self.gid,
            groups: vec![self.gid],
            home: self.home.clone(),
        })
    }

    fn from_user(user: User, is_current: bool) -> AppUser {
        AppUser {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
            is_current,
        }
    }
}

/// The system user name for an app: `capstan-<app>`, checked to fit in 32 characters.
pub fn user_name(app: &AppName) -> Result<String, UserError> {
    let max = MAX_USER_NAME - PREFIX.len();
    let len = app.as_str().len();
    if len > max {
        return Err(UserError::NameTooLong {
            app: app.to_string(),
            len,
            max,
        });
    }
    Ok(format!("{PREFIX}{app}"))
}

/// Makes sure the app's system user exists and returns it.
///
/// As root: creates `capstan-<app>` when missing, with its own group, `home` as
/// its home directory (not created), and no login shell; an existing one is
/// returned unchanged. Not root: returns [`current_user`], and the first such
/// call logs that everything runs as the current user.
pub fn ensure_app_user(app: &AppName, home: &Path) -> Result<AppUser, UserError> {
    if !nix::unistd::geteuid().is_root() {
        return current_user();
    }
    let name = user_name(app)?;
    if let Some(user) = lookup(&name)? {
        return Ok(AppUser::from_user(user, false));
    }
    let home = home.to_string_lossy();
    let outcome = run(
        &format!("create the system user {name}"),
        "useradd",
        &[
            "--system",
            "--no-create-home",
            "--home-dir",
            &home,
            "--shell",
            NOLOGIN,
            "--user-group",
            &name,
        ],
    );
    // Two callers may race: if the user is there now, the other one made it.
    match (lookup(&name)?, outcome) {
        (Some(user), _) => {
            let user = AppUser::from_user(user, false);
            tracing::info!(user = %user.name, uid = user.uid, gid = user.gid, "created the app's system user");
            Ok(user)
        }
        (None, Err(error)) => Err(error),
        (None, Ok(())) => Err(UserError::Vanished { name }),
    }
}

/// Removes the app's system user and its group (`userdel`); a missing user is
/// already removed. Not root: there is no app user, so nothing to do.
pub fn remove_app_user(app: &AppName) -> Result<(), UserError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let name = user_name(app)?;
    if lookup(&name)?.is_some() {
        run(
            &format!("remove the system user {name}"),
            "userdel",
            &[&name],
        )?;
    }
    // userdel removes the user's own group only when USERGROUPS_ENAB says so.
    if nix::unistd::Group::from_name(&name)
        .ok()
        .flatten()
        .is_some()
    {
        crate::remove_group(&name)?;
    }
    Ok(())
}

/// The user capstan itself runs as, for when it is not root. Logs once per
/// process that apps run as this user.
pub fn current_user() -> Result<AppUser, UserError> {
    static SAID: Once = Once::new();
    let uid = nix::unistd::getuid();
    let user = User::from_uid(uid)
        .map_err(|e| UserError::Lookup {
            name: format!("uid {uid}"),
            source: e.into(),
        })?
        .map(|user| AppUser::from_user(user, true))
        .unwrap_or_else(|| nameless(uid));
    SAID.call_once(|| {
        tracing::info!(
            user = %user.name,
            uid = user.uid,
            "not running as root: every app's processes run as the current user"
        );
    });
    Ok(user)
}

/// A uid with no passwd entry (some containers): named by its number.
fn nameless(uid: Uid) -> AppUser {
    AppUser {
        name: uid.to_string(),
        uid: uid.as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        home: std::env::var_os("HOME").map_or_else(|| "/".into(), PathBuf::from),
        is_current: true,
    }
}

fn lookup(name: &str) -> Result<Option<User>, UserError> {
    User::from_name(name).map_err(|e| UserError::Lookup {
        name: name.into(),
        source: e.into(),
    })
}

/// Runs a shadow-utils command to its end. These are short and start nothing of
/// their own, so they run here rather than through `capstan_proc`, which logs
/// output instead of keeping it for the error.
pub(crate) fn run(what: &str, program: &str, args: &[&str]) -> Result<(), UserError> {
    let command = format!("{program} {}", args.join(" "));
    let error = |outcome: String| UserError::Command {
        what: what.into(),
        command: command.clone(),
        outcome,
    };
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| error(format!("could not start ({e})")))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let how = output.status.code().map_or("was killed".to_owned(), |c| {
        format!("exited with status {c}")
    });
    Err(error(format!("{how}: {}", stderr.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_name_up_to_24_characters_becomes_a_user_name() {
        let app = AppName::new(&"a".repeat(24)).unwrap();
        assert_eq!(
            user_name(&app).unwrap(),
            format!("capstan-{}", "a".repeat(24))
        );
        assert_eq!(user_name(&app).unwrap().len(), 32);
    }

    #[test]
    fn an_app_name_too_long_for_a_user_name_says_how_long_it_may_be() {
        let app = AppName::new(&"b".repeat(25)).unwrap();
        let text = user_name(&app).unwrap_err().to_string();
        assert!(
            text.contains("is 25 characters")
                && text.contains("at most 24")
                && text.contains("up to 63")
                && text.ends_with("Choose a shorter name."),
            "{text}"
        );
    }

    #[test]
    fn the_current_user_has_no_identity_to_switch_to() {
        let user = current_user().unwrap();
        assert_eq!(user.uid, nix::unistd::getuid().as_raw());
        assert!(user.is_current);
        assert_eq!(user.identity(), None);
    }
}
