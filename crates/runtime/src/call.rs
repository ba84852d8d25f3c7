use std::fs::File;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use capstan_wire::{encode_header, FileRef, Kind, ResponseStart, HEADER_LEN};
use tokio::sync::mpsc;

use crate::worker::{Event, Refused, Worker};
use crate::{CallError, Pool, RequestBody};

/// Request bodies travel in frames of at most this size.
pub(crate) const BODY_CHUNK: usize = 1024 * 1024;
/// How many workers that turn out to be dead (before they ran it) a request
/// tries before it fails.
const MAX_ATTEMPTS: usize = 3;

/// A request ready to go to any worker: the encoded Request frame (its id is
/// filled in when a worker is chosen) and the whole body, which the edge has
/// already read so that a slow client never holds a worker.
pub struct PreparedRequest {
    /// A Request frame from [`capstan_wire::encode_request`], with any id.
    pub frame: BytesMut,
    /// The request body (empty for none); a spilled one is streamed to the
    /// worker a frame at a time, never read whole into memory.
    pub body: RequestBody,
}

/// The app's answer: status and headers now, the body as it comes.
pub struct WorkerResponse {
    /// Status and headers as the app gave them (validated by the edge).
    pub start: ResponseStart,
    /// The body, chunk by chunk.
    pub body: ResponseBody,
}

/// One piece of a response body.
pub enum Chunk {
    /// Bytes the app produced.
    Bytes(Bytes),
    /// A file the app handed to wsgi.file_wrapper: the edge sends it.
    File(File, FileRef),
}

/// The rest of a response, streamed from the worker. Dropping it early (the
/// client left) tells the worker to stop.
pub struct ResponseBody {
    worker: Arc<Worker>,
    id: u32,
    events: mpsc::Receiver<Event>,
    timeout: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The app has the request: a sequential worker got to it. Only then does
    /// the timeout run, so time spent queued behind other requests is not counted.
    running: bool,
    finished: bool,
}

impl Pool {
    /// Sends the request to a free worker (waiting in the bounded queue if
    /// all are busy) and waits for the app to start its response.
    pub async fn call(&self, request: PreparedRequest) -> Result<WorkerResponse, CallError> {
        let inner = &self.inner;
        let PreparedRequest { frame, body } = request;
        let frame = frame.freeze();
        // A request goes to another worker only when the app cannot have seen it.
        for _ in 0..MAX_ATTEMPTS {
            let lease = inner.acquire().await?;
            let (id, events) = lease.worker().open_request();
            let parts = request_parts(&frame, &body, id);
            // Sent without awaiting, so no cancellation can cut a frame in half; from
            // here the worker's answer (or its death) frees the slot.
            let worker = lease.commit();
            let sent = match &body {
                RequestBody::Memory(_) => worker.send_request(id, parts),
                RequestBody::File(file) => worker.send_with_body_file(parts, id, file.clone()),
            };
            if let Err(Refused) = sent {
                // The worker died before its reader noticed, and never saw a byte
                // of this request.
                inner.remove(&worker);
                continue;
            }
            let mut response = ResponseBody {
                running: !worker.is_sequential(),
                worker,
                id,
                events,
                timeout: inner.spec.timeout,
                deadline: None,
                finished: false,
            };
            match response.next_event().await? {
                Event::Start(start) => {
                    return Ok(WorkerResponse {
                        start,
                        body: response,
                    })
                }
                Event::AppError(traceback) => {
                    response.finished = true;
                    return Err(CallError::AppError(traceback));
                }
                // Its worker died with the request still queued behind the one
                // it was running.
                Event::Requeue => response.finished = true,
                Event::Bad(reason) => return Err(CallError::BadResponse(reason)),
                _ => {
                    return Err(CallError::BadResponse(
                        "the response did not begin with its status".into(),
                    ))
                }
            }
        }
        Err(CallError::WorkerLost)
    }
}

/// A request's frames for request `id` of a worker: a copy of the Request
/// frame's header and flags byte (which differ per worker), then the environ
/// and, for a body in memory, its pieces, which share the original memory.
/// A body in a file is left for the worker's writer to stream.
fn request_parts(frame: &Bytes, body: &RequestBody, id: u32) -> Vec<Bytes> {
    let mut head = BytesMut::with_capacity(HEADER_LEN + 1);
    head.extend_from_slice(&frame[..=HEADER_LEN]);
    head[4..8].copy_from_slice(&id.to_le_bytes());
    if !body.is_empty() {
        head[HEADER_LEN] |= capstan_wire::RequestFlags::HAS_BODY.0;
    }
    let RequestBody::Memory(body) = body else {
        return vec![head.freeze(), frame.slice(HEADER_LEN + 1..)];
    };
    let mut parts = Vec::with_capacity(3 + 2 * body.len().div_ceil(BODY_CHUNK));
    parts.push(head.freeze());
    parts.push(frame.slice(HEADER_LEN + 1..));
    if !body.is_empty() {
        let mut headers = BytesMut::new();
        for chunk in body_chunks(body) {
            encode_header(Kind::Body, id, chunk.len() as u32, &mut headers);
            parts.push(headers.split().freeze());
            parts.push(chunk);
        }
        encode_header(Kind::BodyEnd, id, 0, &mut headers);
        parts.push(headers.freeze());
    }
    parts
}

/// The body in frame-sized pieces, sharing its memory.
fn body_chunks(body: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    (0..body.len())
        .step_by(BODY_CHUNK)
        .map(move |start| body.slice(start..(start + BODY_CHUNK).min(body.len())))
}

impl ResponseBody {
    /// The next chunk, `None` at the end, or why the body was cut.
    pub async fn next(&mut self) -> Option<Result<Chunk, CallError>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Poll form of [`ResponseBody::next`], for HTTP body implementations.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Chunk, CallError>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let event = match self.poll_event(cx) {
            Poll::Ready(Ok(event)) => event,
            Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error))),
            Poll::Pending => return Poll::Pending,
        };
        Poll::Ready(match event {
            Event::Body(bytes) => Some(Ok(Chunk::Bytes(bytes))),
            Event::File(fd, file) => Some(Ok(Chunk::File(File::from(fd), file))),
            Event::End => {
                self.finished = true;
                None
            }
            Event::AppError(traceback) => {
                self.finished = true;
                Some(Err(CallError::AppError(traceback)))
            }
            Event::Start(_) => Some(Err(CallError::BadResponse("a second status".into()))),
            Event::Bad(reason) => Some(Err(CallError::BadResponse(reason))),
            // Requeue comes only before the response started; Turn is never returned.
            Event::Lost | Event::Requeue | Event::Turn => Some(Err(CallError::WorkerLost)),
        })
    }

    async fn next_event(&mut self) -> Result<Event, CallError> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// The next event from the worker, within the timeout that restarts at
    /// each one and runs only while the app has the request.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, CallError>> {
        loop {
            match self.events.poll_recv(cx) {
                Poll::Ready(Some(Event::Lost)) | Poll::Ready(None) => {
                    self.finished = true;
                    return Poll::Ready(Err(CallError::WorkerLost));
                }
                Poll::Ready(Some(Event::Turn)) => {
                    self.running = true;
                    self.deadline = None;
                }
                Poll::Ready(Some(event)) => {
                    // The app's silence is timed from its last sign of life.
                    self.deadline = None;
                    return Poll::Ready(Ok(event));
                }
                Poll::Pending if !self.running => return Poll::Pending,
                Poll::Pending => {
                    let timeout = self.timeout;
                    let deadline = self
                        .deadline
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if deadline.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.finished = true;
                    tracing::error!(worker = %self.worker.name, pid = self.worker.pid, timeout = ?self.timeout,
                        "request timed out; replacing the worker");
                    self.worker.kill.notify_one();
                    return Poll::Ready(Err(CallError::Timeout(self.timeout)));
                }
            }
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // HTTP stops reading a body once Content-Length bytes have come, so a
        // complete response is usually dropped with its end still queued:
        // then there is nothing to cancel (and no frame to send per request).
        while let Ok(event) = self.events.try_recv() {
            if matches!(
                event,
                Event::End | Event::AppError(_) | Event::Lost | Event::Requeue
            ) {
                return;
            }
        }
        self.worker.cancel(self.id);
    }
}
