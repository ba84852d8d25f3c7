//! The control socket's file: `<root>/control.sock`, mode 0660, group `capstan`.
//! One daemon per root: a socket that answers means another daemon has it; one
//! that does not is left from a daemon that died, and is replaced.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use crate::peer::Access;

/// The socket's file name under the root.
pub const SOCKET_NAME: &str = "control.sock";

/// The control socket of the daemon whose state is under `root`.
pub fn socket_path(root: &Path) -> PathBuf {
    root.join(SOCKET_NAME)
}

/// Why the control socket could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another daemon answers on the socket.
    #[error(
        "a capstan daemon already runs on {root} ({pid}): stop it first, or give this one \
         another root with --root",
        root = root.display(),
        pid = pid.map_or_else(|| "its pid is unknown".to_owned(), |p| format!("pid {p}"))
    )]
    AlreadyRunning {
        /// The folder the socket is in.
        root: PathBuf,
        /// The other daemon's pid, as the kernel reports it.
        pid: Option<i32>,
    },
    /// Something that is not a socket has the socket's name.
    #[error(
        "{path} exists and is not a socket, so capstan will not remove it: move it away and \
         start the daemon again",
        path = path.display()
    )]
    NotASocket {
        /// The socket's path.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("could not {action} the control socket {path}: {source}", path = path.display())]
    Io {
        /// What was being done ("create", "remove the stale", ...).
        action: &'static str,
        /// The socket's path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Creates the control socket at `path`: mode 0660 and, when `access`'s group exists,
/// owned by that group (as root, or as a member of it; otherwise the group stays the
/// user's own and a warning says so). A socket file nothing answers on is removed
/// first; one a daemon answers on is [`BindError::AlreadyRunning`].
///
/// The file mode is a first fence only: [`serve`](crate::serve) checks every peer's
/// credentials whatever the mode lets through.
pub async fn bind(path: &Path, access: &Access) -> Result<UnixListener, BindError> {
    let io_error = |action, source| BindError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path).await {
            Ok(stream) => {
                let root = path.parent().unwrap_or(Path::new("/")).to_owned();
                let pid = stream.peer_cred().ok().and_then(|c| c.pid());
                return Err(BindError::AlreadyRunning { root, pid });
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "removing the control socket a stopped daemon left");
                std::fs::remove_file(path).map_err(|e| io_error("remove the stale", e))?;
            }
            Err(e) => return Err(io_error("check the existing", e)),
        },
        Ok(_) => {
            return Err(BindError::NotASocket {
                path: path.to_owned(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("look at", e)),
    }

    let listener = UnixListener::bind(path).map_err(|e| io_error("create", e))?;
    // SECURITY: connecting needs write permission on the socket: owner and group only.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| io_error("set the mode of", e))?;
    match access.gid() {
        Some(gid) => {
            if let Err(error) = std::os::unix::fs::chown(path, None, Some(gid)) {
                tracing::warn!(
                    group = access.group(),
                    %error,
                    "the control socket could not be given to the group (run the daemon as \
                     root, or as a member of the group); only this user and root can use it"
                );
            }
        }
        // Not root, the socket is this user's anyway: nothing to say.
        None if !nix::unistd::Uid::effective().is_root() => {}
        None => tracing::warn!(
            group = access.group(),
            "the group does not exist, so only root can use the control socket; create it \
             (`groupadd --system {}`) and restart the daemon to let its members in",
            access.group()
        ),
    }
    Ok(listener)
}
