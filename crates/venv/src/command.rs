//! Running python/pip: stream each output line to the caller as it comes and keep the
//! last few for error messages.

use std::collections::VecDeque;
use std::io;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tracing::Instrument;

/// How many lines of output an error message carries.
pub(crate) const TAIL_LINES: usize = 20;

/// A command that ran to its end.
#[derive(Debug)]
pub(crate) struct Finished {
    pub status: ExitStatus,
    /// The last [`TAIL_LINES`] lines of stdout and stderr, interleaved as they arrived.
    pub last_lines: Vec<String>,
}

/// Runs `cmd` with stdout and stderr piped, passing every line of both to `progress` as
/// it arrives. Fails only if the command cannot be spawned or its output cannot be read;
/// a non-zero exit is a [`Finished`] for the caller to judge.
///
/// The child is killed if the returned future is dropped, so an interrupted `capstan`
/// leaves no pip running behind it.
pub(crate) async fn run(
    mut cmd: Command,
    progress: &mut (dyn FnMut(&str) + Send),
) -> io::Result<Finished> {
    let std_cmd = cmd.as_std();
    let span = tracing::info_span!(
        "venv.command",
        program = %std_cmd.get_program().to_string_lossy(),
        args = ?std_cmd.get_args().collect::<Vec<_>>(),
        pid = tracing::field::Empty,
    );
    async move {
        // Python block-buffers a pipe; unbuffered output is what lets progress stream.
        cmd.env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        if let Some(pid) = child.id() {
            tracing::Span::current().record("pid", pid);
        }
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");

        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        let mut emit = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            let line = text.trim_end_matches(['\n', '\r']);
            tracing::trace!(line, "output");
            progress(line);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.to_owned());
        };
        read_lines(stdout, stderr, &mut emit).await?;

        let status = child.wait().await?;
        tracing::debug!(code = status.code(), "exited");
        Ok(Finished {
            status,
            last_lines: tail.into(),
        })
    }
    .instrument(span)
    .await
}

/// Reads both streams to their end, calling `emit` once per line (a final line without
/// a newline included).
async fn read_lines(
    stdout: impl AsyncRead + Unpin,
    stderr: impl AsyncRead + Unpin,
    emit: &mut impl FnMut(&[u8]),
) -> io::Result<()> {
    let mut out = BufReader::new(stdout);
    let mut err = BufReader::new(stderr);
    // The buffers outlive each select! round: read_until keeps a partial line in them
    // when the other branch wins, which is what makes it safe to race. That kept part
    // is not counted in the next call's return value, so at EOF (0) the buffer may
    // still hold a last line.
    let (mut out_buf, mut err_buf) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            read = out.read_until(b'\n', &mut out_buf), if out_open => {
                out_open = read? > 0;
                if !out_buf.is_empty() {
                    emit(&out_buf);
                    out_buf.clear();
                }
            }
            read = err.read_until(b'\n', &mut err_buf), if err_open => {
                err_open = read? > 0;
                if !err_buf.is_empty() {
                    emit(&err_buf);
                    err_buf.clear();
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_line_of_both_streams_reaches_progress_and_the_tail_keeps_the_last() {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("for i in $(seq 1 30); do echo out$i; echo err$i >&2; done; printf partial");
        let mut seen = Vec::new();
        let finished = run(cmd, &mut |line: &str| seen.push(line.to_owned()))
            .await
            .unwrap();
        assert!(finished.status.success());
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
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("echo boom >&2; exit 3");
        let finished = run(cmd, &mut |_: &str| {}).await.unwrap();
        assert_eq!(finished.status.code(), Some(3));
        assert_eq!(finished.last_lines, ["boom"]);
    }
}
