//! Requests to a Python worker pool: environ in, the app's response out.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use capstan_runtime::{
    CallError, Chunk, Pool, PreparedRequest, RequestBody, ResponseBody, WorkerResponse,
};
use futures_util::Stream;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, Take};
use tokio_util::io::ReaderStream;

use crate::body::Body;
use crate::environ::{self, Connection};
use crate::errors::{bad_request, error_response};
use crate::forwarded::Client;

/// How much of a passed file is read at a time.
const FILE_CHUNK: usize = 256 * 1024;

/// Hands a request whose body is already read to the pool and turns the
/// outcome into a response.
pub async fn handle(
    pool: &Pool,
    parts: &http::request::Parts,
    request_body: RequestBody,
    client: &Client,
    conn: &Connection,
) -> Response<Body> {
    let frame = match environ::encode(parts, request_body.len(), client, conn) {
        Ok(frame) => frame,
        Err(environ::EnvironError::Nul) => {
            return bad_request("A NUL byte is not allowed in a request.")
        }
    };
    let outcome = pool
        .call(PreparedRequest {
            frame,
            body: request_body,
        })
        .await;
    match outcome {
        Ok(response) => into_response(response),
        Err(error) => call_error_response(error, parts),
    }
}

fn call_error_response(error: CallError, parts: &http::request::Parts) -> Response<Body> {
    let (status, text) = match &error {
        CallError::QueueFull(_) | CallError::QueueTimeout(_) | CallError::ShuttingDown => {
            let mut response = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy. Please try again in a moment.",
            );
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        CallError::WorkerLost => (
            StatusCode::BAD_GATEWAY,
            "The application worker stopped while handling this request.",
        ),
        CallError::BadResponse(reason) => {
            tracing::error!(method = %parts.method, path = parts.uri.path(), %reason, "invalid response from the app");
            (
                StatusCode::BAD_GATEWAY,
                "The application sent an invalid response.",
            )
        }
        CallError::Timeout(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "The application did not answer in time.",
        ),
        CallError::AppError(_) => (
            // The traceback was already printed by the worker to its stderr.
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
        ),
    };
    if !matches!(error, CallError::BadResponse(_)) {
        tracing::warn!(method = %parts.method, path = parts.uri.path(), status = status.as_u16(), "{error}");
    }
    error_response(status, text)
}

fn into_response(response: WorkerResponse) -> Response<Body> {
    let WorkerResponse { start, body } = response;
    let Ok(status) = StatusCode::from_u16(start.status) else {
        return error_response(
            StatusCode::BAD_GATEWAY,
            "The application sent an invalid status.",
        );
    };
    let mut builder = Response::builder().status(status);
    let headers = builder.headers_mut().expect("a fresh builder has headers");
    headers.reserve(start.headers.len());
    for (name, value) in start.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&name),
            HeaderValue::from_maybe_shared(value),
        ) else {
            tracing::error!("the app sent a header that is not valid HTTP");
            return error_response(
                StatusCode::BAD_GATEWAY,
                "The application sent an invalid header.",
            );
        };
        // Hop-by-hop headers belong to the connection, which the edge owns.
        if is_hop_by_hop(&name) {
            continue;
        }
        headers.append(name, value);
    }
    builder
        .body(stream_body(body))
        .expect("status and headers were validated")
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-connection"
            | "te"
            | "trailer"
    )
}

/// The worker's body chunks as an HTTP body; files are read here, in the edge.
fn stream_body(body: ResponseBody) -> Body {
    AppBody { body, file: None }.boxed_unsync()
}

/// A response body fed by the worker's frames. Polling it polls the worker's
/// channel directly: no task, no extra buffering.
struct AppBody {
    body: ResponseBody,
    /// A wsgi.file_wrapper file being sent.
    file: Option<ReaderStream<Take<tokio::fs::File>>>,
}

impl http_body::Body for AppBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        loop {
            if let Some(file) = self.file.as_mut() {
                match Pin::new(file).poll_next(cx) {
                    Poll::Ready(Some(chunk)) => return Poll::Ready(Some(chunk.map(Frame::data))),
                    Poll::Ready(None) => self.file = None,
                    Poll::Pending => return Poll::Pending,
                }
            }
            return match self.body.poll_next(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Ready(Some(Ok(Chunk::Bytes(bytes)))) => {
                    Poll::Ready(Some(Ok(Frame::data(bytes))))
                }
                Poll::Ready(Some(Ok(Chunk::File(file, range)))) => match open_range(file, range) {
                    Ok(reader) => {
                        self.file = Some(reader);
                        continue;
                    }
                    Err(error) => Poll::Ready(Some(Err(error))),
                },
                Poll::Ready(Some(Err(error))) => {
                    tracing::warn!("response cut short: {error}");
                    Poll::Ready(Some(Err(std::io::Error::other(error.to_string()))))
                }
            };
        }
    }
}

/// The part of a passed file that the app asked to send.
fn open_range(
    file: std::fs::File,
    range: capstan_wire::FileRef,
) -> std::io::Result<ReaderStream<Take<tokio::fs::File>>> {
    use std::io::{Seek, SeekFrom};
    let mut file = file;
    // A seek on a regular file does not block.
    file.seek(SeekFrom::Start(range.offset))?;
    let limit = range.length.unwrap_or(u64::MAX);
    Ok(ReaderStream::with_capacity(
        tokio::fs::File::from_std(file).take(limit),
        FILE_CHUNK,
    ))
}
