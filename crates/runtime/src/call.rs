use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use capstan_wire::{encode_header, FileRef, Kind, ResponseStart, HEADER_LEN};
use tokio::sync::mpsc;

use crate::worker::{Event, Worker};
use crate::{CallError, Pool};

/// Request bodies travel in frames of at most this size.
const BODY_CHUNK: usize = 1024 * 1024;

/// A request ready to go to any worker: the encoded Request frame (its id is
/// filled in when a worker is chosen) and the whole body, which the edge has
/// already read so that a slow client never holds a worker.
pub struct PreparedRequest {
    /// A Request frame from [`capstan_wire::encode_request`], with any id.
    pub frame: BytesMut,
    /// The request body (empty for none).
    pub body: Bytes,
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
    finished: bool,
}

impl Pool {
    /// Sends the request to a free worker (waiting in the bounded queue if
    /// all are busy) and waits for the app to start its response.
    pub async fn call(&self, request: PreparedRequest) -> Result<WorkerResponse, CallError> {
        let inner = &self.inner;
        let worker = inner.acquire().await?;
        let (id, events) = worker.open_request();
        let PreparedRequest { mut frame, body } = request;
        frame[4..8].copy_from_slice(&id.to_le_bytes());
        let has_body = !body.is_empty();
        if has_body {
            frame[HEADER_LEN] |= capstan_wire::RequestFlags::HAS_BODY.0;
        }
        let sent = if has_body {
            send_with_body(&worker, id, &frame, &body).await
        } else {
            worker.send(&[&frame]).await
        };
        if sent.is_err() {
            // The worker died before or while taking the request; its reader
            // fails the route and frees the slot.
            return Err(CallError::WorkerLost);
        }
        let timeout = inner.spec.timeout;
        let mut body = ResponseBody {
            worker,
            id,
            events,
            timeout,
            finished: false,
        };
        match body.next_event().await? {
            Event::Start(start) => Ok(WorkerResponse { start, body }),
            Event::AppError(traceback) => {
                body.finished = true;
                Err(CallError::AppError(traceback))
            }
            Event::Bad(reason) => Err(CallError::BadResponse(reason)),
            _ => Err(CallError::BadResponse(
                "the response did not begin with its status".into(),
            )),
        }
    }
}

async fn send_with_body(
    worker: &Worker,
    id: u32,
    frame: &[u8],
    body: &Bytes,
) -> std::io::Result<()> {
    let chunks = body.chunks(BODY_CHUNK);
    let mut headers = BytesMut::with_capacity(HEADER_LEN * (chunks.len() + 1));
    let mut parts: Vec<&[u8]> = Vec::with_capacity(2 * chunks.len() + 2);
    for chunk in body.chunks(BODY_CHUNK) {
        encode_header(Kind::Body, id, chunk.len() as u32, &mut headers);
    }
    encode_header(Kind::BodyEnd, id, 0, &mut headers);
    parts.push(frame);
    for (i, chunk) in body.chunks(BODY_CHUNK).enumerate() {
        parts.push(&headers[i * HEADER_LEN..(i + 1) * HEADER_LEN]);
        parts.push(chunk);
    }
    parts.push(&headers[headers.len() - HEADER_LEN..]);
    worker.send(&parts).await
}

impl ResponseBody {
    /// The next chunk, `None` at the end, or why the body was cut.
    pub async fn next(&mut self) -> Option<Result<Chunk, CallError>> {
        if self.finished {
            return None;
        }
        let event = match self.next_event().await {
            Ok(event) => event,
            Err(error) => return Some(Err(error)),
        };
        match event {
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
            Event::Lost => Some(Err(CallError::WorkerLost)),
        }
    }

    async fn next_event(&mut self) -> Result<Event, CallError> {
        match tokio::time::timeout(self.timeout, self.events.recv()).await {
            Ok(Some(Event::Lost)) | Ok(None) => {
                self.finished = true;
                Err(CallError::WorkerLost)
            }
            Ok(Some(event)) => Ok(event),
            Err(_) => {
                self.finished = true;
                tracing::error!(worker = %self.worker.name, pid = self.worker.pid, timeout = ?self.timeout,
                    "request timed out; replacing the worker");
                self.worker.kill.notify_one();
                Err(CallError::Timeout(self.timeout))
            }
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if !self.finished {
            self.worker.cancel(self.id);
        }
    }
}
