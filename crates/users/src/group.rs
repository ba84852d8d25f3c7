//! System groups: the `capstan` group whose members may use the control socket.

use nix::unistd::Group;

use crate::app_user::run;
use crate::UserError;

/// Whether the group `name` exists.
pub fn group_exists(name: &str) -> Result<bool, UserError> {
    Ok(lookup(name)?.is_some())
}

/// Creates the system group `name` when missing (`groupadd --system`) and
/// returns its gid. Calling it again changes nothing.
pub fn ensure_group(name: &str) -> Result<u32, UserError> {
    if let Some(group) = lookup(name)? {
        return Ok(group.gid.as_raw());
    }
    let outcome = run(
        &format!("create the system group {name}"),
        "groupadd",
        &["--system", name],
    );
    // Another caller may have made it in between; what counts is that it exists.
    match (lookup(name)?, outcome) {
        (Some(group), _) => {
            tracing::info!(
                group = name,
                gid = group.gid.as_raw(),
                "created the system group"
            );
            Ok(group.gid.as_raw())
        }
        (None, Err(error)) => Err(error),
        (None, Ok(())) => Err(UserError::Vanished { name: name.into() }),
    }
}

/// Removes the group `name` (`groupdel`); a missing group is already removed.
pub fn remove_group(name: &str) -> Result<(), UserError> {
    if lookup(name)?.is_none() {
        return Ok(());
    }
    run(&format!("remove the group {name}"), "groupdel", &[name])
}

fn lookup(name: &str) -> Result<Option<Group>, UserError> {
    Group::from_name(name).map_err(|e| UserError::Lookup {
        name: name.into(),
        source: e.into(),
    })
}
