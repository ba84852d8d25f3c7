//! The errors of reading a server's own files (host keys).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot read the host key folder {}: {source}; check that it exists and that you are root (`sudo ls {}`)", dir.display(), dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run `ssh-keygen -l -f {}`: {source}; install OpenSSH (`apt-get install openssh-client`)", path.display())]
    Keygen {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`ssh-keygen -l -f {}` did not print a key length and type (it said: {said:?}); the file may not be a public key, move it away or make it again with `ssh-keygen -y -f <private key>`", path.display())]
    Fingerprint { path: PathBuf, said: String },
}
