//! Child processes for capstan: each runs in its own process group, may inherit
//! one socket at a fixed descriptor, dies with capstan, and has its output
//! captured line by line into the log under its name.
//!
//! A child may run as another user ([`Identity`]): the switch happens before
//! exec, so not one instruction of the program runs as capstan's user.
//!
//! This is the only crate allowed `unsafe` code: the `pre_exec` hook that switches
//! user and moves the inherited socket into place, and the worker socket's `recvmsg` into a
//! buffer and ownership of the descriptors it receives.

mod attached;
mod child;
mod exit;
mod identity;
mod log;
mod output;
mod socket;

pub use attached::spawn_attached;
pub use child::{Child, SpawnError, Spec, INHERITED_FD};
pub use exit::Exit;
pub use identity::Identity;
pub use log::{Log, LogLines};
pub use socket::{socketpair, FdSocket};
