//! Reading a request body whole before the app sees it: in memory up to a
//! threshold, past it into an unlinked temporary file (nginx's
//! client_body_buffer_size and client_body_temp_path).

use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use capstan_runtime::{RequestBody, SpilledBody};
use futures_util::Stream;
use http::{header, HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use tokio::io::AsyncWriteExt;

use crate::body::Body;
use crate::errors::{bad_request, closing_response, error_response};

/// Bodies up to this size stay in memory; larger ones go to a temporary file.
pub const BODY_MEMORY_LIMIT: usize = 1024 * 1024;

/// How much of a spilled body is read back at a time (proxied bodies).
const READ_BACK_CHUNK: usize = 256 * 1024;

/// How a request body is received.
#[derive(Clone, Debug)]
pub struct BodyLimits {
    /// The largest body accepted (413 past it).
    pub max_size: u64,
    /// How long the client may pause while sending (408 past it).
    pub client_timeout: Duration,
    /// Bodies larger than this are written to a temporary file.
    pub memory_limit: usize,
    /// Where temporary files go; `None`: the system's ($TMPDIR).
    pub temp_dir: Option<PathBuf>,
}

/// Reads the whole body, or returns the error response the client gets
/// (413 too large, 408 too slow, 400 broken, 500 nowhere to store it).
pub async fn read<B>(
    limits: &BodyLimits,
    headers: &HeaderMap,
    body: B,
) -> Result<RequestBody, Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is larger than this server accepts.",
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // SECURITY: refuse an announced oversize body before reading any of it.
    if declared.is_some_and(|len| len > limits.max_size) {
        return Err(too_large());
    }
    if declared == Some(0) || (declared.is_none() && body.is_end_stream()) {
        return Ok(RequestBody::Memory(Bytes::new()));
    }
    let limit = usize::try_from(limits.max_size).unwrap_or(usize::MAX);
    let mut body = std::pin::pin!(Limited::new(body, limit));
    // A declared length sizes the buffer once (no copies as it grows).
    let expected = declared.map_or(0, |len| len.min(limits.memory_limit as u64) as usize);
    let mut sink = Sink::Memory(BytesMut::with_capacity(expected));
    loop {
        // SECURITY: a client that stalls mid-body is cut off (nginx:
        // client_body_timeout); it never holds a worker meanwhile anyway.
        let frame = match tokio::time::timeout(limits.client_timeout, body.frame()).await {
            Err(_) => {
                return Err(closing_response(
                    StatusCode::REQUEST_TIMEOUT,
                    "The request body did not arrive in time.",
                ))
            }
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(error))) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(too_large())
            }
            Ok(Some(Err(error))) => {
                tracing::debug!(%error, "request body could not be read");
                return Err(bad_request("The request body could not be read."));
            }
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Some(refusal) = frame
                    .trailers_ref()
                    .and_then(crate::request_rules::forbidden_trailer)
                {
                    return Err(refusal.response());
                }
                continue;
            }
        };
        match &mut sink {
            Sink::Memory(chunks) if chunks.is_empty() && http_body::Body::is_end_stream(&*body) => {
                // The whole body in one piece: no copy.
                if data.len() <= limits.memory_limit {
                    return Ok(RequestBody::Memory(data));
                }
                sink = spill(limits, &data, &[]).await?;
            }
            Sink::Memory(chunks) if chunks.len() + data.len() <= limits.memory_limit => {
                chunks.extend_from_slice(&data);
            }
            Sink::Memory(chunks) => {
                let earlier = std::mem::take(chunks);
                sink = spill(limits, &earlier, &data).await?;
            }
            Sink::File(file, len) => {
                file.write_all(&data).await.map_err(store_failed)?;
                *len += data.len() as u64;
            }
        }
    }
    match sink {
        Sink::Memory(chunks) => Ok(RequestBody::Memory(chunks.freeze())),
        Sink::File(mut file, len) => {
            file.flush().await.map_err(store_failed)?;
            Ok(RequestBody::File(SpilledBody::new(
                file.into_std().await,
                len,
            )))
        }
    }
}

/// A spilled body as a stream of chunks, read back a piece at a time.
pub fn chunks(body: SpilledBody) -> impl Stream<Item = std::io::Result<Bytes>> + Send {
    futures_util::stream::try_unfold((body, 0u64), |(body, offset)| async move {
        let chunk = body.read_chunk(offset, READ_BACK_CHUNK).await?;
        if chunk.is_empty() {
            if offset < body.len() {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
            return Ok(None);
        }
        let next = offset + chunk.len() as u64;
        Ok(Some((chunk, (body, next))))
    })
}

/// Where the body goes while it arrives.
enum Sink {
    Memory(BytesMut),
    /// The file and how many bytes it holds.
    File(tokio::fs::File, u64),
}

/// Moves a body that outgrew memory into a new unlinked temporary file.
async fn spill(limits: &BodyLimits, first: &[u8], second: &[u8]) -> Result<Sink, Response<Body>> {
    let dir = limits.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    // tempfile() has no name from the start (O_TMPFILE) or unlinks it at once,
    // so no crash can leave a body behind.
    let file = tokio::task::spawn_blocking(move || tempfile::tempfile_in(&dir).map_err(|e| (dir, e)))
        .await
        .map_err(|e| store_failed(std::io::Error::other(e)))?
        .map_err(|(dir, error)| {
            tracing::error!(dir = %dir.display(), %error, "could not create a temporary file for a request body");
            store_failed_response()
        })?;
    let mut file = tokio::fs::File::from_std(file);
    file.write_all(first).await.map_err(store_failed)?;
    file.write_all(second).await.map_err(store_failed)?;
    Ok(Sink::File(file, (first.len() + second.len()) as u64))
}

fn store_failed(error: std::io::Error) -> Response<Body> {
    tracing::error!(%error, "could not write a request body to its temporary file");
    store_failed_response()
}

fn store_failed_response() -> Response<Body> {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The server could not store the request body.",
    )
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures_util::TryStreamExt;
    use http_body::Frame;
    use http_body_util::StreamBody;

    use super::*;

    fn limits(dir: &std::path::Path) -> BodyLimits {
        BodyLimits {
            max_size: 1 << 30,
            client_timeout: Duration::from_secs(5),
            memory_limit: 1000,
            temp_dir: Some(dir.to_path_buf()),
        }
    }

    /// A body that arrives in the given pieces, with no length announced.
    fn streamed(
        pieces: Vec<Vec<u8>>,
    ) -> StreamBody<impl Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static> {
        StreamBody::new(futures_util::stream::iter(
            pieces
                .into_iter()
                .map(|p| Ok::<_, Infallible>(Frame::data(Bytes::from(p)))),
        ))
    }

    /// The open descriptors of this process that point into `dir`.
    fn open_files_in(dir: &std::path::Path) -> Vec<String> {
        let dir = dir.canonicalize().unwrap().display().to_string();
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .map(|target| target.display().to_string())
            .filter(|target| target.starts_with(&dir))
            .collect()
    }

    async fn read_all(body: RequestBody) -> Vec<u8> {
        match body {
            RequestBody::Memory(bytes) => bytes.to_vec(),
            RequestBody::File(file) => chunks(file)
                .try_fold(Vec::new(), |mut all, chunk| async move {
                    all.extend_from_slice(&chunk);
                    Ok(all)
                })
                .await
                .unwrap(),
        }
    }

    #[tokio::test]
    async fn a_small_body_stays_in_memory_and_touches_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let body = read(
            &limits(dir.path()),
            &HeaderMap::new(),
            streamed(vec![b"hello ".to_vec(), b"world".to_vec()]),
        )
        .await
        .unwrap();
        assert!(matches!(body, RequestBody::Memory(_)));
        assert_eq!(read_all(body).await, b"hello world");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_body_past_the_memory_limit_goes_to_an_unlinked_file_that_closes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let pieces: Vec<Vec<u8>> = (0..50u8).map(|n| vec![n; 333]).collect();
        let expected = pieces.concat();
        let body = read(&limits(dir.path()), &HeaderMap::new(), streamed(pieces))
            .await
            .unwrap();
        let RequestBody::File(file) = &body else {
            panic!("a body of {} bytes stayed in memory", expected.len());
        };
        assert_eq!(file.len(), expected.len() as u64);
        // The file is open but has no name: nothing in the folder, and its
        // descriptor says it is deleted.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let open = open_files_in(dir.path());
        assert_eq!(open.len(), 1, "{open:?}");
        assert!(open[0].ends_with("(deleted)"), "{open:?}");
        assert_eq!(read_all(body).await, expected);
        assert!(open_files_in(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn a_single_large_piece_is_spilled_too() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![7u8; 5000];
        let body = read(
            &limits(dir.path()),
            &HeaderMap::new(),
            streamed(vec![data.clone()]),
        )
        .await
        .unwrap();
        assert!(matches!(body, RequestBody::File(_)));
        assert_eq!(read_all(body).await, data);
    }

    #[tokio::test]
    async fn a_body_that_cannot_be_stored_gets_500() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir");
        let response = read(
            &limits(&missing),
            &HeaderMap::new(),
            streamed(vec![vec![1u8; 600], vec![2u8; 600]]),
        )
        .await
        .unwrap_err();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn a_streamed_body_past_the_maximum_gets_413_even_when_spilled() {
        let dir = tempfile::tempdir().unwrap();
        let limits = BodyLimits {
            max_size: 4000,
            ..limits(dir.path())
        };
        let pieces: Vec<Vec<u8>> = (0..10).map(|_| vec![0u8; 500]).collect();
        let response = read(&limits, &HeaderMap::new(), streamed(pieces))
            .await
            .unwrap_err();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
