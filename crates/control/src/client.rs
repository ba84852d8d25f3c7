//! The CLI's side: connects to `<root>/control.sock`, sends typed requests and
//! reads typed answers, or a progress stream line by line as the daemon writes it.

use std::io;
use std::marker::PhantomData;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes, BytesMut};
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::api::{Call, StreamCall};
use crate::error::{ApiError, ErrorBody};
use crate::progress::Event;
use crate::socket::SOCKET_NAME;

/// Why a control call did not get its answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket.
    #[error(
        "no capstan daemon is running on {path}: start it with `capstan daemon` (with the \
         same --root or CAPSTAN_ROOT if it keeps its state elsewhere)",
        path = path.display()
    )]
    NotRunning {
        /// The socket's path.
        path: PathBuf,
    },
    /// The socket's mode keeps this user out.
    #[error(
        "you may not use the control socket {path}: only root and members of the capstan \
         group may control capstan; ask an admin to run `usermod -aG capstan <you>`, then \
         log in again",
        path = path.display()
    )]
    PermissionDenied {
        /// The socket's path.
        path: PathBuf,
    },
    /// Connecting failed otherwise.
    #[error("could not connect to the capstan daemon at {path}: {source}", path = path.display())]
    Connect {
        /// The socket's path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The daemon answered with an error (refused, unknown app, busy, failed...).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The connection broke while the request or answer was on its way.
    #[error("the connection to the capstan daemon broke: {0}; `capstan status` tells whether it still runs")]
    Broken(#[source] hyper::Error),
    /// A progress stream ended without saying how the operation ended.
    #[error(
        "the daemon closed the connection before saying how `{0}` ended: it may have stopped; \
         `capstan status` tells whether it runs, and the daemon's log what happened"
    )]
    Cut(&'static str),
    /// The daemon's answer was not what this client understands.
    #[error(
        "the daemon's answer to `{request}` is not understood ({problem}); the capstan command \
         and the running daemon may be different versions: restart the daemon after an upgrade"
    )]
    Protocol {
        /// The request.
        request: &'static str,
        /// What was wrong with the answer.
        problem: String,
    },
}

/// A connection point to the daemon. Each call opens its own connection, so a
/// stream that follows logs does not hold up other calls.
#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
}

impl Client {
    /// Connects to the daemon whose root is `root` (its `control.sock`), or whose
    /// socket is `root` itself (a path ending in `.sock`, or a socket). Fails with
    /// [`ClientError::NotRunning`] or [`ClientError::PermissionDenied`] when the
    /// socket cannot be reached.
    pub async fn connect(root: impl AsRef<Path>) -> Result<Client, ClientError> {
        let root = root.as_ref();
        let is_socket = std::fs::metadata(root).is_ok_and(|m| m.file_type().is_socket());
        let path = if is_socket || root.extension().is_some_and(|e| e == "sock") {
            root.to_owned()
        } else {
            root.join(SOCKET_NAME)
        };
        let client = Client { path };
        drop(client.open().await?);
        Ok(client)
    }

    /// The socket this client talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `request` and returns its answer, or the daemon's error.
    pub async fn call<C: Call>(&self, request: &C) -> Result<C::Answer, ClientError> {
        let body = self.send(C::NAME, request).await?;
        let bytes = body
            .collect()
            .await
            .map_err(ClientError::Broken)?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            request: C::NAME,
            problem: e.to_string(),
        })
    }

    /// Sends `request` and returns its progress stream. An error the daemon gives
    /// before the first line (unknown app, deploy in progress, refused) is returned
    /// here; one after it is the stream's last event.
    pub async fn stream<S: StreamCall>(
        &self,
        request: &S,
    ) -> Result<ProgressStream<S::Done>, ClientError> {
        let body = self.send(S::NAME, request).await?;
        Ok(ProgressStream {
            name: S::NAME,
            body,
            buffer: BytesMut::new(),
            ended: false,
            done: PhantomData,
        })
    }

    async fn open(&self) -> Result<UnixStream, ClientError> {
        UnixStream::connect(&self.path).await.map_err(|source| {
            let path = self.path.clone();
            match source.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    ClientError::NotRunning { path }
                }
                io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { path },
                _ => ClientError::Connect { path, source },
            }
        })
    }

    /// Posts `request` to `/v1/<name>`; a non-200 answer becomes its error.
    async fn send<T: serde::Serialize>(
        &self,
        name: &'static str,
        request: &T,
    ) -> Result<Incoming, ClientError> {
        let stream = self.open().await?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::Broken)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let json = serde_json::to_vec(request).expect("requests always encode");
        let request = Request::post(format!("/v1/{name}"))
            .header(header::HOST, "capstan")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json)))
            .expect("a valid request");
        let response = sender
            .send_request(request)
            .await
            .map_err(ClientError::Broken)?;
        let status = response.status();
        let body = response.into_body();
        if status == StatusCode::OK {
            return Ok(body);
        }
        let bytes = body
            .collect()
            .await
            .map_err(ClientError::Broken)?
            .to_bytes();
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(ErrorBody { error }) => Err(ClientError::Api(error)),
            Err(_) => Err(ClientError::Protocol {
                request: name,
                problem: format!("status {status}: {}", String::from_utf8_lossy(&bytes)),
            }),
        }
    }
}

/// A progress stream being read: each line as the daemon sends it, then `done`
/// or `failed`.
#[derive(Debug)]
pub struct ProgressStream<D> {
    name: &'static str,
    body: Incoming,
    buffer: BytesMut,
    ended: bool,
    done: PhantomData<fn() -> D>,
}

impl<D: DeserializeOwned> ProgressStream<D> {
    /// The next event as soon as it arrives; `None` after the last one. A stream
    /// cut before its last event is [`ClientError::Cut`].
    pub async fn next(&mut self) -> Result<Option<Event<D>>, ClientError> {
        if self.ended {
            return Ok(None);
        }
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line = self.buffer.split_to(end + 1);
                let event: Event<D> =
                    serde_json::from_slice(&line[..end]).map_err(|e| ClientError::Protocol {
                        request: self.name,
                        problem: e.to_string(),
                    })?;
                self.ended = !matches!(event, Event::Line(_));
                return Ok(Some(event));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buffer.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
                Some(Err(error)) => return Err(ClientError::Broken(error)),
                None => return Err(ClientError::Cut(self.name)),
            }
        }
    }

    /// Reads the stream to its end, giving each line to `on_line` as it comes;
    /// returns the `done` value, or the `failed` error as [`ClientError::Api`].
    pub async fn finish(mut self, mut on_line: impl FnMut(&str)) -> Result<D, ClientError> {
        loop {
            match self.next().await? {
                Some(Event::Line(line)) => on_line(&line),
                Some(Event::Done(done)) => return Ok(done),
                Some(Event::Failed(failure)) => return Err(ClientError::Api(failure)),
                None => return Err(ClientError::Cut(self.name)),
            }
        }
    }
}
