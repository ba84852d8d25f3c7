use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc::UnboundedSender;

use crate::Log;

/// Copies a child's output into `log`, one entry per line, under the child's
/// name; or, given `lines`, sends each line there instead. `lines` closes when
/// both streams have ended.
///
/// Lines are read as bytes so output that is not UTF-8 is shown, not dropped.
pub(crate) fn forward<R>(
    name: String,
    stream: &'static str,
    reader: R,
    lines_to: Option<UnboundedSender<String>>,
    log: Log,
) where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader);
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            match lines.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        line.pop();
                    }
                    let text = String::from_utf8_lossy(&line);
                    match &lines_to {
                        // A receiver that is gone no longer wants them; keep draining.
                        Some(to) => drop(to.send(text.into_owned())),
                        None => match &log {
                            Log::Capstan => {
                                tracing::info!(target: "capstan::output", process = %name, stream, "{text}")
                            }
                            Log::To(sink) => sink.line(&name, text.into_owned()).await,
                        },
                    }
                }
            }
        }
    });
}
