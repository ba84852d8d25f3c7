//! What a hardened capstan server's sshd and firewall must be, and how to check
//! that a running one is so.
//!
//! Everything here is pure: text in, text out. So far: the OpenSSH version a
//! server runs ([`parse_openssh_version`]) and the ssh-audit hardening guide's
//! algorithm lists cut to that version. Getting text onto a server (SSH, files,
//! reloads) belongs to the callers.

// The lists are read by the sshd drop-in, which comes next.
#[allow(dead_code)]
mod algorithms;
mod error;
mod openssh;

pub use error::ServerError;
pub use openssh::parse_openssh_version;
