//! Progress streams: what a long operation (deploy, rollback, restart, scale, env
//! changes, logs) sends while it runs. On the wire, newline-delimited JSON:
//! `{"line": "..."}` for each line, then exactly one `{"done": {...}}` or
//! `{"failed": {"kind": "...", "message": "..."}}`.

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::ApiError;

/// How many lines may wait for a slow client before [`Progress::line`] waits too.
pub(crate) const BUFFERED_LINES: usize = 64;

/// One event of a progress stream, as it crosses the socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event<D> {
    /// A line of progress, for a person.
    Line(String),
    /// The operation succeeded; always the last event.
    Done(D),
    /// The operation failed; always the last event.
    Failed(ApiError),
}

/// The handler's end of a progress stream: each [`line`](Progress::line) is written
/// to the client as it is sent. The stream's last event comes from what the
/// handler's call returns, so a handler cannot forget to end it.
#[derive(Debug, Clone)]
pub struct Progress {
    pub(crate) tx: mpsc::Sender<String>,
}

impl Progress {
    /// Sends one line to the client. Waits while the client is slow to read (a
    /// bounded buffer); a client that went away is no error: the line is dropped
    /// and the operation goes on (see [`closed`](Progress::closed)).
    pub async fn line(&self, line: impl Into<String>) {
        let _ = self.tx.send(line.into()).await;
    }

    /// A progress whose lines come out of the receiver, for a caller that
    /// passes them on (to the client and to a log file).
    pub fn channel() -> (Progress, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(BUFFERED_LINES);
        (Progress { tx }, rx)
    }

    /// Whether the client went away (its connection closed).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when the client goes away. The server never cancels a handler, so a
    /// call that would go on forever (`logs --follow`) ends by waiting on this.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}
