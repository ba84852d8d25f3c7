//! Where a child's output lines go: capstan's own output (as under `capstan
//! run`), or a sink the caller hands in (the daemon's per-app log files).
//!
//! A trait rather than a dependency on the log files' crate: `proc` stays a
//! leaf, and whoever owns the files implements [`LogLines`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Takes the lines of one process (or one copy of it).
pub trait LogLines: Send + Sync + 'static {
    /// Stores one line (without its newline) said by `label` (`web.1`,
    /// `tasks`). The future waits while the sink is full, so a child that
    /// prints faster than the disk writes waits on its pipe.
    fn line(&self, label: &str, text: String) -> Pin<Box<dyn Future<Output = ()> + Send>>;

    /// Stores a line of capstan's own about the child (it ended, it is
    /// started again), apart from the child's output.
    fn note(&self, text: String) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Where a child's lines go.
#[derive(Clone, Default)]
pub enum Log {
    /// capstan's own output, each line labelled with the child's name.
    #[default]
    Capstan,
    /// A sink of the caller's.
    To(Arc<dyn LogLines>),
}

impl Log {
    /// Passes a line of capstan's own about a child to the sink; with
    /// [`Log::Capstan`] the caller's `tracing` line says it already.
    pub async fn note(&self, text: impl FnOnce() -> String) {
        if let Log::To(sink) = self {
            sink.note(text()).await;
        }
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Log::Capstan => f.write_str("Log::Capstan"),
            Log::To(_) => f.write_str("Log::To(..)"),
        }
    }
}
