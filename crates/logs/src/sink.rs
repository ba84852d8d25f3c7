//! The writer on a thread of its own, for async code.
//!
//! A thread rather than `tokio::fs`: `tokio::fs` hands every write to the
//! blocking pool and waits for it, a thread switch per line, and lines of one
//! file from several tasks would need ordering on top. One thread that owns
//! the [`LogDir`] writes in the order lines arrive, stamps them in that order
//! (so the times in a folder never go back) and rotates in one place. The
//! channel is bounded: if the disk is slower than a process prints, senders
//! wait, and the process waits on its pipe, instead of memory growing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use capstan_proc::LogLines;

use tokio::sync::{mpsc, oneshot};

use crate::{Error, Label, LogDir, ProcessName};

/// Lines waiting for the writer thread before senders wait.
const QUEUE: usize = 1024;

/// A handle to a [`LogDir`] on its own thread. Clones share the thread; it
/// ends when the last handle is dropped, after writing what was sent.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<Message>,
}

/// Writes one process's (or one copy's) lines through a [`LogSink`].
#[derive(Clone)]
pub struct ProcessWriter {
    sink: LogSink,
    label: Label,
}

enum Message {
    Line { label: Label, text: Vec<u8> },
    Flush(oneshot::Sender<Result<(), Error>>),
}

impl LogDir {
    /// Moves the writer to a thread of its own and returns a handle to it.
    pub fn spawn(self) -> Result<LogSink, Error> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dir = self.path().to_owned();
        std::thread::Builder::new()
            .name("capstan-logs".into())
            .spawn(move || run(self, rx))
            .map_err(Error::io(dir))?;
        Ok(LogSink { tx })
    }
}

impl LogSink {
    /// A writer for `process`'s lines, labelled with its name.
    pub fn writer(&self, process: &ProcessName) -> ProcessWriter {
        self.writer_as(process.label())
    }

    /// A writer labelled `label` (e.g. `web.1`), into its process's file.
    pub fn writer_as(&self, label: Label) -> ProcessWriter {
        ProcessWriter {
            sink: self.clone(),
            label,
        }
    }

    /// Appends `text` to `process`'s file; waits only when the queue is full.
    pub async fn append(
        &self,
        process: &ProcessName,
        text: impl Into<Vec<u8>>,
    ) -> Result<(), Error> {
        self.send(process.label(), text.into()).await
    }

    /// `process`'s file as a child's [`capstan_proc::Log`] sink: each line
    /// keeps the label the child is named by (`web.1`, `tasks`).
    pub fn lines_of(&self, process: &ProcessName) -> Arc<dyn LogLines> {
        Arc::new(ProcessLog {
            sink: self.clone(),
            process: process.clone(),
        })
    }

    /// Waits until everything sent before is written, and returns the first
    /// write error since the last flush, if any.
    pub async fn flush(&self) -> Result<(), Error> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Message::Flush(done))
            .await
            .map_err(|_| Error::Stopped)?;
        wait.await.map_err(|_| Error::Stopped)?
    }

    async fn send(&self, label: Label, text: Vec<u8>) -> Result<(), Error> {
        self.tx
            .send(Message::Line { label, text })
            .await
            .map_err(|_| Error::Stopped)
    }
}

impl ProcessWriter {
    /// Appends one line (or several, split at `\n`).
    pub async fn line(&self, text: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.sink.send(self.label.clone(), text.into()).await
    }

    /// The label its lines carry.
    pub fn label(&self) -> &Label {
        &self.label
    }
}

/// One process's file, for children's output.
struct ProcessLog {
    sink: LogSink,
    process: ProcessName,
}

impl LogLines for ProcessLog {
    fn line(&self, label: &str, text: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let label = label_of(&self.process, label);
        let sink = self.sink.clone();
        // A stopped writer (the daemon going down) drops the line: nothing
        // is left to write it.
        Box::pin(async move { drop(sink.send(label, text.into_bytes()).await) })
    }

    fn note(&self, text: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let sink = self.sink.clone();
        Box::pin(async move {
            let capstan = ProcessName::new("capstan").expect("a valid name");
            drop(sink.send(capstan.label(), text.into_bytes()).await)
        })
    }
}

/// `web.2` of process `web` is its second copy; any other name is the process.
fn label_of(process: &ProcessName, name: &str) -> Label {
    name.strip_prefix(process.as_str())
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|n| n.parse().ok())
        .map_or_else(|| process.label(), |n| process.instance(n))
}

fn run(mut logs: LogDir, mut rx: mpsc::Receiver<Message>) {
    let mut failed: Option<Error> = None;
    while let Some(message) = rx.blocking_recv() {
        match message {
            Message::Line { label, text } => {
                if let Err(e) = logs.append_from(&label, SystemTime::now(), &text) {
                    // Keep going: the next line may succeed (disk freed).
                    if failed.is_none() {
                        tracing::warn!(dir = %logs.path().display(), "cannot write a log line: {e}");
                        failed = Some(e);
                    }
                }
            }
            Message::Flush(done) => {
                let _ = done.send(failed.take().map_or(Ok(()), Err));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_named_as_a_copy_keeps_its_number() {
        let web = ProcessName::new("web").unwrap();
        assert_eq!(label_of(&web, "web.3"), web.instance(3));
        assert_eq!(label_of(&web, "web"), web.label());
        assert_eq!(label_of(&web, "webby.3"), web.label());
    }

    #[tokio::test]
    async fn a_childs_lines_land_in_its_processs_file() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = LogDir::open(tmp.path(), crate::Rotation::default())
            .unwrap()
            .spawn()
            .unwrap();
        let web = ProcessName::new("web").unwrap();
        sink.lines_of(&web).line("web.2", "hello".into()).await;
        sink.flush().await.unwrap();
        let text = std::fs::read_to_string(tmp.path().join("web.log")).unwrap();
        assert!(text.ends_with(" web.2   | hello\n"), "{text}");
    }
}
