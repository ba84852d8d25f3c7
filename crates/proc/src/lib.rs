//! Child processes for capstan: each runs in its own process group, may inherit
//! one socket at a fixed descriptor, dies with capstan, and has its output
//! captured line by line into the log under its name.
//!
//! This is the only crate allowed `unsafe` code: the `pre_exec` hook that moves
//! the inherited socket into place, and the worker socket's `recvmsg` into a
//! buffer and ownership of the descriptors it receives.

mod child;
mod exit;
mod output;
mod socket;

pub use child::{Child, SpawnError, Spec, INHERITED_FD};
pub use exit::Exit;
pub use socket::{socketpair, FdSocket};
