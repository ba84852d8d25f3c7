//! The daemon's control API: HTTP/1.1 + JSON over the Unix socket `<root>/control.sock`.
//!
//! - [`api`]: one request type per command, each naming its route and its answer
//!   ([`Call`]) or the end of its progress stream ([`StreamCall`]); [`answers`]: what
//!   comes back; [`ApiError`]: `{"error": {"kind", "message"}}` with a fitting status.
//! - [`bind`] makes the socket (mode 0660, group `capstan`), [`serve`] answers on it,
//!   checking every peer's credentials ([`Access`]) before any request reaches the
//!   [`Handler`] the daemon implements.
//! - [`Client`] is the CLI's side: typed calls, and [`ProgressStream`]s that yield
//!   each line as it comes and end with the outcome.

#![warn(missing_docs)]

pub mod answers;
pub mod api;
mod client;
mod error;
mod handler;
mod peer;
mod progress;
mod server;
mod socket;

pub use api::{Call, StreamCall};
pub use client::{Client, ClientError, ProgressStream};
pub use error::{ApiError, ErrorKind};
pub use handler::Handler;
pub use peer::{Access, Caller, DEFAULT_GROUP};
pub use progress::{Event, Progress};
pub use server::serve;
pub use socket::{bind, socket_path, BindError, SOCKET_NAME};
