//! Python worker pools: spawn the workers, dispatch requests to them over the
//! worker protocol, time requests out, restart workers that die, stop them all.
//!
//! The edge hands a prepared request to [`Pool::call`] and gets back the app's
//! status and headers plus a [`ResponseBody`] to stream, or a [`CallError`]
//! that becomes a 5xx. Long-running non-WSGI processes (background workers, a
//! `command` web process) are kept alive by [`Supervised`].

mod body;
mod call;
mod error;
mod frames;
mod pool;
mod process;
mod slot;
mod spec;
mod stop;
mod worker;

pub use body::{RequestBody, SpilledBody};
pub use call::{Chunk, PreparedRequest, ResponseBody, WorkerResponse};
/// Who a worker or process runs as (re-exported for the binary).
pub use capstan_proc::Identity;
/// Where a worker's or process's output goes (re-exported for the edge and the binary).
pub use capstan_proc::{Log, LogLines};
/// A static folder a worker reported in its HELLO (re-exported for the binary).
pub use capstan_wire::StaticMount;
pub use error::{BootError, CallError};
pub use pool::{Pool, WorkerStatus};
pub use process::{ProcessSpec, ProcessStatus, Supervised};
pub use spec::PoolSpec;
