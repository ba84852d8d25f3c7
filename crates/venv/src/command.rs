//! Running python, pip and uv through `capstan_proc`: each in its own process
//! group, every output line streamed to the caller as it comes and the last few
//! kept for error messages, the whole group killed when the future is dropped.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::time::Duration;

use capstan_proc::{Child, Exit, Spec};
use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tracing::Instrument;

/// How many lines of output an error message carries.
pub(crate) const TAIL_LINES: usize = 20;

/// How long output may still arrive after the command exited and its group was
/// killed: only a process that left the group can hold the pipes open longer.
const DRAIN: Duration = Duration::from_secs(2);

/// A command that ran to its end.
#[derive(Debug)]
pub(crate) struct Finished {
    pub exit: Exit,
    /// The last [`TAIL_LINES`] lines of stdout and stderr, interleaved as they arrived.
    pub last_lines: Vec<String>,
}

/// A command to [`run`]: `program` in `cwd`, labelled `name` in logs.
pub(crate) fn spec(name: &str, program: impl Into<OsString>, cwd: &Path) -> Spec {
    Spec::new(name, program, cwd.to_owned())
}

/// Runs `spec`, passing every line of its stdout and stderr to `progress` as it
/// arrives. Fails only if the command cannot be spawned; a non-zero exit is a
/// [`Finished`] for the caller to judge.
///
/// If the returned future is dropped, the command's whole process group is
/// killed, so an interrupted build leaves neither pip nor anything pip started.
/// When it exits by itself, whatever it left in its group is killed too.
pub(crate) async fn run(
    mut spec: Spec,
    progress: &mut (dyn FnMut(&str) + Send),
) -> io::Result<Finished> {
    let span = tracing::info_span!(
        "venv.command",
        program = %spec.program.to_string_lossy(),
        args = ?spec.args,
        pid = tracing::field::Empty,
    );
    async move {
        // Python block-buffers a pipe; unbuffered output is what lets progress stream.
        spec.env.push(("PYTHONUNBUFFERED".into(), "1".into()));
        let (lines_to, mut lines) = mpsc::unbounded_channel();
        spec.lines = Some(lines_to);
        let child = Child::spawn(spec).map_err(io::Error::other)?;
        tracing::Span::current().record("pid", child.pid());
        let mut group = KillGroupOnDrop(Some(child));
        let child = group.0.as_mut().expect("just set");

        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        let mut emit = |line: String| {
            tracing::trace!(line, "output");
            progress(&line);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        };
        let mut open = true;
        let exit = loop {
            tokio::select! {
                line = lines.recv(), if open => match line {
                    Some(line) => emit(line),
                    None => open = false,
                },
                exit = child.wait() => break exit,
            }
        };
        child.signal_group(Signal::SIGKILL);
        // The group is gone; only a reaped pid is left, which must not be signalled.
        group.0 = None;
        let _ = tokio::time::timeout(DRAIN, async {
            while let Some(line) = lines.recv().await {
                emit(line);
            }
        })
        .await;
        tracing::debug!(%exit, "exited");
        Ok(Finished {
            exit,
            last_lines: tail.into(),
        })
    }
    .instrument(span)
    .await
}

/// Kills the child's process group when dropped before the child was waited for.
struct KillGroupOnDrop(Option<Child>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &self.0 {
            tracing::info!(
                process = child.name(),
                pid = child.pid(),
                "interrupted; killing its process group"
            );
            child.signal_group(Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Spec {
        Spec::shell("test", script, std::env::temp_dir())
    }

    #[tokio::test]
    async fn every_line_of_both_streams_reaches_progress_and_the_tail_keeps_the_last() {
        let script = "for i in $(seq 1 30); do echo out$i; echo err$i >&2; done; printf partial";
        let mut seen = Vec::new();
        let finished = run(sh(script), &mut |line: &str| seen.push(line.to_owned()))
            .await
            .unwrap();
        assert!(finished.exit.success());
        // The two pipes race, so only each stream's own order is fixed.
        let out: Vec<_> = seen.iter().filter(|l| l.starts_with("out")).collect();
        let err: Vec<_> = seen.iter().filter(|l| l.starts_with("err")).collect();
        assert_eq!(out.len(), 30);
        assert_eq!(err.len(), 30);
        assert_eq!((out[29].as_str(), err[29].as_str()), ("out30", "err30"));
        assert!(
            seen.contains(&"partial".to_owned()),
            "a last line without newline counts"
        );
        assert_eq!(seen.len(), 61);
        assert_eq!(finished.last_lines, seen[seen.len() - TAIL_LINES..]);
    }

    #[tokio::test]
    async fn a_failing_command_is_a_finished_value_not_an_error() {
        let finished = run(sh("echo boom >&2; exit 3"), &mut |_: &str| {})
            .await
            .unwrap();
        assert_eq!(finished.exit.code, Some(3));
        assert_eq!(finished.last_lines, ["boom"]);
    }

    #[tokio::test]
    async fn a_dropped_run_kills_the_commands_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!(
            "sleep 300 & echo $! > {0}.tmp; mv {0}.tmp {0}; echo started; wait",
            pidfile.display()
        );
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let mut started_tx = Some(started_tx);
        let task = tokio::spawn(async move {
            run(sh(&script), &mut move |_: &str| {
                if let Some(tx) = started_tx.take() {
                    let _ = tx.send(());
                }
            })
            .await
        });
        started.await.unwrap();
        task.abort();
        let _ = task.await;
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !gone(grandchild) {
            assert!(std::time::Instant::now() < deadline, "the sleep survived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Gone or a zombie waiting for its (killed) parent's reaper.
    fn gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        }
    }
}
