//! Real git against real folders: a client repository pushes into an app's bare
//! repository whose pre-receive hook is the `pre_receive` example, built on
//! this crate.

mod fixture;
mod lock;
mod push;
mod releases;
mod shallow;
