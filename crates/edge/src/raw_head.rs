//! A thin watch over the raw bytes of an HTTP/1 connection, for the two
//! things hyper's parser hides: a request with both Content-Length and
//! Transfer-Encoding (hyper drops the Content-Length) and a repeated
//! Content-Length of one value (hyper keeps one). It sees the bytes as hyper
//! reads them, without copying them (only a head split across reads is
//! gathered), follows each message's framing to find the next head, and
//! queues one verdict per head; the service takes them in order (HTTP/1
//! requests on a connection are served one after the other).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::request_rules::Refusal;

/// A head larger than this is hyper's to refuse (431); past it the watch stops.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A chunk-size or trailer line longer than this stops the watch.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// More header fields than hyper accepts (100): hyper refuses those itself.
const MAX_FIELDS: usize = 128;

/// The verdicts on the heads read so far, oldest first; shared by the
/// connection's stream and its service.
#[derive(Clone, Default)]
pub struct Verdicts(Arc<Mutex<VecDeque<Option<Refusal>>>>);

impl Verdicts {
    /// The verdict on the next request: `Some` when it must be refused.
    /// `None` too when the watch had stopped (nothing known: hyper decides).
    pub fn next(&self) -> Option<Refusal> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
            .flatten()
    }

    fn push(&self, verdict: Option<Refusal>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(verdict);
    }
}

/// Where in the stream of messages the watch is.
#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Reading a request head (gathered in `pending` when split).
    Head,
    /// This many body bytes left (Content-Length).
    Sized(u64),
    /// A chunk-size line (gathered in `pending`).
    ChunkSize,
    /// This many chunk bytes left, then CRLF.
    ChunkData(u64),
    /// The CRLF after a chunk's data; how many of its bytes were seen.
    ChunkEnd(u8),
    /// A trailer line or the empty line that ends the message.
    Trailer,
    /// Something this watch cannot follow (an upgrade, a tunnel, a parse
    /// it disagrees with): from here on it says nothing.
    Stopped,
}

/// Follows message framing over the bytes of one connection.
struct Tracker {
    state: State,
    /// A head or line split across reads.
    pending: Vec<u8>,
    verdicts: Verdicts,
}

impl Tracker {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let used = match self.state {
                State::Stopped => return,
                State::Head => self.head(data),
                State::Sized(left) => {
                    let used = left.min(data.len() as u64);
                    self.state = match left - used {
                        0 => State::Head,
                        left => State::Sized(left),
                    };
                    used as usize
                }
                State::ChunkSize => self.line(data, Self::chunk_size),
                State::ChunkData(left) => {
                    let used = left.min(data.len() as u64);
                    self.state = match left - used {
                        0 => State::ChunkEnd(0),
                        left => State::ChunkData(left),
                    };
                    used as usize
                }
                State::ChunkEnd(seen) => {
                    let expected = b"\r\n"[usize::from(seen)];
                    self.state = match (data[0] == expected, seen) {
                        (false, _) => State::Stopped,
                        (true, 0) => State::ChunkEnd(1),
                        (true, _) => State::ChunkSize,
                    };
                    1
                }
                State::Trailer => self.line(data, |tracker, line| {
                    if line == b"\r\n" {
                        tracker.state = State::Head;
                    }
                }),
            };
            data = &data[used..];
        }
    }

    /// Parses a head from `data` (after what was pending); returns how much
    /// of `data` it used.
    fn head(&mut self, data: &[u8]) -> usize {
        // The usual case: the whole head in one read, parsed where it lies.
        let gathered = !self.pending.is_empty();
        if gathered {
            self.pending.extend_from_slice(data);
        }
        let buf = if gathered { &self.pending[..] } else { data };
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut request = httparse::Request::new(&mut fields);
        let outcome = request.parse(buf);
        let (len, next) = match outcome {
            Ok(httparse::Status::Complete(len)) => (len, framing(&request)),
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => {
                if !gathered {
                    self.pending.extend_from_slice(data);
                }
                return data.len();
            }
            // hyper refuses such a head and closes; nothing more to watch.
            _ => (0, Framing::Stop),
        };
        let already = buf.len() - data.len();
        self.pending.clear();
        let (verdict, state) = match next {
            Framing::Stop => (None, State::Stopped),
            Framing::Refuse(refusal) => (Some(refusal), State::Stopped),
            Framing::Body(state) => (None, state),
        };
        if state != State::Stopped || verdict.is_some() {
            self.verdicts.push(verdict);
        }
        self.state = state;
        len.saturating_sub(already).min(data.len())
    }

    /// Gathers one CRLF-ended line, then hands it to `done`.
    fn line(&mut self, data: &[u8], done: impl FnOnce(&mut Self, &[u8])) -> usize {
        let Some(end) = data.iter().position(|&b| b == b'\n') else {
            self.pending.extend_from_slice(data);
            if self.pending.len() > MAX_LINE_BYTES {
                self.state = State::Stopped;
            }
            return data.len();
        };
        let mut line = std::mem::take(&mut self.pending);
        line.extend_from_slice(&data[..=end]);
        done(self, &line);
        line.clear();
        self.pending = line;
        end + 1
    }

    fn chunk_size(&mut self, line: &[u8]) {
        self.state = match httparse::parse_chunk_size(line) {
            Ok(httparse::Status::Complete((_, 0))) => State::Trailer,
            Ok(httparse::Status::Complete((_, size))) => State::ChunkData(size),
            _ => State::Stopped,
        };
    }
}

/// What follows a head.
enum Framing {
    Body(State),
    Refuse(Refusal),
    Stop,
}

/// The verdict on a parsed head and how its body is framed (RFC 9112, 6.3).
fn framing(request: &httparse::Request<'_, '_>) -> Framing {
    let mut lengths = request
        .headers
        .iter()
        .filter(|field| field.name.eq_ignore_ascii_case("content-length"));
    let transfer_encoding = request
        .headers
        .iter()
        .any(|field| field.name.eq_ignore_ascii_case("transfer-encoding"));
    let first_length = lengths.next();
    // SECURITY: RFC 9112, 6.3 lets a server refuse a request framed both
    // ways, and it is how requests are smuggled past a proxy in front: refused.
    if transfer_encoding && first_length.is_some() {
        return Framing::Refuse(Refusal {
            status: http::StatusCode::BAD_REQUEST,
            text: "Content-Length and Transfer-Encoding cannot both be sent.",
        });
    }
    // SECURITY: RFC 9110, 8.6 lets a recipient refuse a repeated
    // Content-Length even of one value; proxies disagree on which one counts.
    if lengths.next().is_some() {
        return Framing::Refuse(Refusal {
            status: http::StatusCode::BAD_REQUEST,
            text: "A request may carry one Content-Length header.",
        });
    }
    if request.method == Some("CONNECT") {
        // A tunnel (refused, and closed) is not HTTP after its head.
        return Framing::Stop;
    }
    if transfer_encoding {
        return Framing::Body(State::ChunkSize);
    }
    let length = first_length.map(|field| {
        std::str::from_utf8(field.value)
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok())
    });
    match length {
        None | Some(Some(0)) => Framing::Body(State::Head),
        Some(Some(len)) => Framing::Body(State::Sized(len)),
        // hyper refuses a Content-Length that is not a number.
        Some(None) => Framing::Stop,
    }
}

/// A connection's stream, watched as hyper reads it.
pub struct Watched<S> {
    inner: S,
    tracker: Tracker,
}

impl<S> Watched<S> {
    /// Wraps `inner`; the verdicts go to the returned queue. Unless `watch`
    /// (HTTP/2), the bytes only pass through.
    pub fn new(inner: S, watch: bool) -> (Self, Verdicts) {
        let verdicts = Verdicts::default();
        let tracker = Tracker {
            state: if watch { State::Head } else { State::Stopped },
            pending: Vec::new(),
            verdicts: verdicts.clone(),
        };
        (Watched { inner, tracker }, verdicts)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.tracker.feed(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    // Forwarded, or hyper would copy every body into its header buffer.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdicts on a byte stream fed in pieces of `step` bytes.
    fn verdicts(stream: &[u8], step: usize) -> Vec<Option<Refusal>> {
        let (mut watched, verdicts) = Watched::new((), true);
        for piece in stream.chunks(step) {
            watched.tracker.feed(piece);
        }
        let queue = verdicts.0.lock().unwrap();
        queue.iter().copied().collect()
    }

    const PIPELINE: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
13;ext=1\r\nContent-Length: 1\r\n\r\n0\r\nX-T: 1\r\n\r\n\
POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 21\r\n\r\nGET / HTTP/1.1\r\n\r\nxyz\
GET /c HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";

    #[test]
    fn framing_is_followed_whatever_the_read_sizes() {
        for step in [1, 2, 3, 7, 64, PIPELINE.len()] {
            let got = verdicts(PIPELINE, step);
            assert_eq!(got.len(), 3, "step {step}: {got:?}");
            assert_eq!(got[0], None, "step {step}");
            assert_eq!(got[1], None, "step {step}");
            assert!(got[2].is_some(), "step {step}");
        }
    }

    #[test]
    fn a_mutated_stream_gets_the_same_verdicts_however_it_is_split_and_never_panics() {
        // A small LCG: deterministic, so a failure reproduces.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize
        };
        let alphabet = b"\r\n:0123456789abcdefxX ;,\t-Content-Length Transfer-Encoding chunked";
        for _ in 0..5000 {
            let mut stream = PIPELINE.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = next() % stream.len();
                match next() % 3 {
                    0 => stream[at] = alphabet[next() % alphabet.len()],
                    1 => stream.insert(at, alphabet[next() % alphabet.len()]),
                    _ => {
                        stream.remove(at);
                    }
                }
            }
            let whole = verdicts(&stream, stream.len());
            for step in [1, 2, 5, 13] {
                assert_eq!(
                    verdicts(&stream, step),
                    whole,
                    "step {step}: {:?}",
                    String::from_utf8_lossy(&stream)
                );
            }
        }
    }

    #[test]
    fn both_framings_are_refused_in_either_order() {
        for head in [
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            &b"POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n"[..],
        ] {
            let got = verdicts(head, head.len());
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].unwrap().status, http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn a_broken_chunk_stops_the_watch_instead_of_guessing() {
        let stream = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX\
GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
        assert_eq!(verdicts(stream, 5), vec![None]);
    }
}
