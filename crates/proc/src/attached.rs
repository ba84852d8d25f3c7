//! A one-off command attached to the caller's terminal (`capstan exec APP`):
//! it inherits stdin, stdout and stderr and stays in the caller's process
//! group, so the terminal's Ctrl-C and job control reach it, and it runs as
//! the app's user when given an [`Identity`].

use std::ffi::OsString;
use std::io;
use std::path::Path;

use crate::Identity;

/// Starts `program` with `args` in `cwd`, with `env` added to the caller's
/// environment (and the identity's HOME/USER/LOGNAME), as `identity` when
/// given. Fails rather than run it as the caller's own user.
pub fn spawn_attached(
    program: &Path,
    arg0: &OsString,
    args: &[OsString],
    env: &[(OsString, OsString)],
    cwd: &Path,
    identity: Option<&Identity>,
) -> io::Result<tokio::process::Child> {
    use std::os::unix::process::CommandExt as _;
    let mut command = std::process::Command::new(program);
    command
        .arg0(arg0)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd);
    if let Some(identity) = identity {
        command.envs(identity.env());
        let prepared = identity.prepared();
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe system calls (setgroups, setgid, setuid);
        // it allocates nothing.
        unsafe {
            command.pre_exec(move || prepared.apply());
        }
    }
    tokio::process::Command::from(command).spawn()
}
