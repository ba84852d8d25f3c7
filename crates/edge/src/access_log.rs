//! The access log, in the combined format nginx and Apache write, one line
//! per response once its body has been sent (so the byte count is true).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Buf;
use capstan_runtime::Log;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// What is known of a request when its response starts.
pub struct Entry {
    /// The client's address.
    pub client: String,
    /// `GET /path?q HTTP/1.1`
    pub request_line: String,
    /// The status sent.
    pub status: u16,
    /// The Referer header, or "-".
    pub referer: String,
    /// The User-Agent header, or "-".
    pub user_agent: String,
    /// When the request arrived.
    pub started: Instant,
    /// Its wall-clock arrival time, for the log line.
    pub at: SystemTime,
    /// Where the line goes: capstan's output (stdout under `capstan run`)
    /// or the app's `access.log`.
    pub to: Log,
}

/// A response body that writes the access log line when it ends or is dropped.
pub struct Logged<B> {
    inner: B,
    entry: Option<Entry>,
    sent: u64,
}

impl<B> Logged<B> {
    /// Wraps `inner`; `None` turns logging off for this response.
    pub fn new(inner: B, entry: Option<Entry>) -> Self {
        Logged {
            inner,
            entry,
            sent: 0,
        }
    }
}

impl<B> HttpBody for Logged<B>
where
    B: HttpBody + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.sent += data.remaining() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Logged<B> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            let when = common_log_time(entry.at);
            let micros = entry.started.elapsed().as_micros();
            let line = format!(
                "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\" {}us",
                entry.client,
                when,
                entry.request_line,
                entry.status,
                self.sent,
                entry.referer,
                entry.user_agent,
                micros
            );
            match entry.to {
                Log::Capstan => tracing::info!(target: "capstan::access", "{line}"),
                // A drop cannot wait for the sink; its own task can. The
                // file's time is when the line is written, a moment later.
                Log::To(sink) => drop(tokio::spawn(sink.line("access", line))),
            }
        }
    }
}

/// `21/Nov/2026:22:30:00 +0000`, the time format of the combined log, in UTC.
fn common_log_time(at: SystemTime) -> String {
    // httpdate gives "Sat, 21 Nov 2026 22:30:00 GMT"; the fields only move.
    let http = httpdate::fmt_http_date(at);
    let fields: Vec<&str> = http.split(' ').collect();
    match fields.as_slice() {
        [_, day, month, year, time, _] => format!("{day}/{month}/{year}:{time} +0000"),
        _ => http,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn log_times_use_the_common_log_format() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_300_000);
        assert_eq!(common_log_time(at), "21/Nov/2026:22:26:40 +0000");
    }
}
