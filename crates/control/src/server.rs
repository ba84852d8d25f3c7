//! The server: accepts on the control socket, checks each peer, and answers
//! `POST /v1/<NAME>` by calling the [`Handler`] method for that request type.
//!
//! A connection's peer is checked once, at accept, from SO_PEERCRED; a refused
//! peer's requests are answered 403 and never parsed or handed to the handler.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle, JoinSet};

use crate::api::{
    AppsCreate, AppsDestroy, AppsList, Call, Deploy, EnvList, EnvSet, EnvUnset, Logs, Ps, Releases,
    Restart, Rollback, Scale, Status, StreamCall,
};
use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::handler::Handler;
use crate::peer::{Access, Caller};
use crate::progress::{Event, Progress, BUFFERED_LINES};

/// The largest request body read (env values are the biggest thing sent).
const MAX_BODY: usize = 1 << 20;
/// How long a connection has to send a request's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long, after `shutdown`, answers in progress get to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Answers control requests on `listener` with `handler` until `shutdown` resolves,
/// letting in only the peers `access` allows. Then it stops accepting, removes the
/// socket file, gives answers in progress up to 10 s to finish, and closes the
/// connections still open after that (the handler calls themselves go on).
pub async fn serve<H: Handler>(
    listener: UnixListener,
    access: Access,
    handler: H,
    shutdown: impl Future<Output = ()>,
) {
    let handler = Arc::new(handler);
    let socket_file = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(PathBuf::from));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!(%error, "could not accept a control connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // SECURITY: the kernel's word on the peer, taken before any byte is read.
        let verdict = match stream.peer_cred() {
            Ok(cred) => access.check(&cred),
            Err(error) => Err(ApiError::new(
                ErrorKind::Refused,
                format!("capstan could not tell who you are ({error}), so it refuses"),
            )),
        };
        let verdict_ok = verdict.is_ok();
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let handler = handler.clone();
            let verdict = verdict.clone();
            async move { Ok::<_, Infallible>(respond(handler, verdict, request).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            // A refused peer gets its 403 and the connection closes.
            .keep_alive(verdict_ok)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "control connection ended with an error");
            }
        });
    }
    drop(listener);
    remove_socket_file(socket_file).await;
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        // A stream that would not end (`logs --follow`): its client reads the cut.
        tracing::warn!("closing control connections still open after the grace period");
        connections.shutdown().await;
    }
}

/// Removes the socket file once this server's listener is closed, unless another
/// daemon answers on it (someone removed this one by hand and started another).
async fn remove_socket_file(path: Option<PathBuf>) {
    let Some(path) = path else { return };
    match tokio::net::UnixStream::connect(&path).await {
        Ok(_) => {
            tracing::info!(path = %path.display(), "another daemon answers on the control socket; leaving it")
        }
        Err(_) => {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// One request: the peer's verdict first, then the route, the body, the handler.
async fn respond<H: Handler>(
    handler: Arc<H>,
    verdict: Result<Caller, ApiError>,
    request: Request<Incoming>,
) -> Response<Body> {
    let caller = match verdict {
        Ok(caller) => caller,
        Err(refusal) => {
            tracing::warn!(message = %refusal.message, "refused a control request");
            return error(refusal);
        }
    };
    if request.method() != Method::POST {
        return error(ApiError::bad_request(format!(
            "control requests are POST with a JSON body, not {}",
            request.method()
        )));
    }
    let Some(name) = request.uri().path().strip_prefix("/v1/") else {
        return error(unknown_route(request.uri().path()));
    };
    let name = name.to_owned();
    // SECURITY: a bounded body, whoever the peer is.
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(cause) => {
            return error(ApiError::bad_request(format!(
                "could not read the request body ({cause}); it may be at most 1 MiB"
            )))
        }
    };
    dispatch(handler, caller, &name, body).await
}

/// The route table: each request type's name to its handler method.
async fn dispatch<H: Handler>(
    h: Arc<H>,
    caller: Caller,
    name: &str,
    body: Bytes,
) -> Response<Body> {
    // The type is named twice on each line (route and call), so a route and its
    // request type cannot drift apart without the mismatch being in plain view.
    macro_rules! json {
        ($request:ty, $method:ident) => {
            call::<$request, _, _>(body, move |request| async move {
                h.$method(caller, request).await
            })
            .await
        };
    }
    macro_rules! streamed {
        ($request:ty, $method:ident) => {
            streamed::<$request, _, _>(body, move |request, progress| async move {
                h.$method(caller, request, progress).await
            })
            .await
        };
    }
    match name {
        Status::NAME => json!(Status, status),
        AppsCreate::NAME => json!(AppsCreate, apps_create),
        AppsList::NAME => json!(AppsList, apps_list),
        AppsDestroy::NAME => json!(AppsDestroy, apps_destroy),
        Releases::NAME => json!(Releases, releases),
        Rollback::NAME => streamed!(Rollback, rollback),
        EnvList::NAME => json!(EnvList, env_list),
        EnvSet::NAME => streamed!(EnvSet, env_set),
        EnvUnset::NAME => streamed!(EnvUnset, env_unset),
        Ps::NAME => json!(Ps, ps),
        Scale::NAME => streamed!(Scale, scale),
        Logs::NAME => streamed!(Logs, logs),
        Restart::NAME => streamed!(Restart, restart),
        Deploy::NAME => streamed!(Deploy, deploy),
        other => error(unknown_route(other)),
    }
}

/// A call answered with one JSON value; the handler runs in its own task.
async fn call<C, F, Fut>(body: Bytes, run: F) -> Response<Body>
where
    C: Call,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = Result<C::Answer, ApiError>> + Send + 'static,
{
    let request = match parse::<C>(C::NAME, &body) {
        Ok(request) => request,
        Err(bad) => return error(bad),
    };
    match tokio::spawn(run(request)).await {
        Ok(Ok(answer)) => json(StatusCode::OK, &answer),
        Ok(Err(failure)) => error(failure),
        Err(join) => error(ended_abnormally(C::NAME, join)),
    }
}

/// A call answered with a progress stream; the handler runs in its own task.
async fn streamed<S, F, Fut>(body: Bytes, run: F) -> Response<Body>
where
    S: StreamCall,
    F: FnOnce(S, Progress) -> Fut,
    Fut: Future<Output = Result<S::Done, ApiError>> + Send + 'static,
{
    let request = match parse::<S>(S::NAME, &body) {
        Ok(request) => request,
        Err(bad) => return error(bad),
    };
    let (tx, mut rx) = mpsc::channel(BUFFERED_LINES);
    let mut task = tokio::spawn(run(request, Progress { tx }));
    // Wait for the first line or the end: an error before any line is a plain
    // error answer with its status (404, 409...), not a stream.
    let mut pending = VecDeque::new();
    tokio::select! {
        biased;
        Some(line) = rx.recv() => pending.push_back(Event::Line(line)),
        result = &mut task => {
            let last = end_event(S::NAME, result);
            while let Ok(line) = rx.try_recv() {
                pending.push_back(Event::Line(line));
            }
            match last {
                Event::Failed(failure) if pending.is_empty() => return error(failure),
                last => pending.push_back(last),
            }
            return stream_response(ProgressState::<S::Done> { pending, rx, task: None, name: S::NAME });
        }
    }
    stream_response(ProgressState {
        pending,
        rx,
        task: Some(task),
        name: S::NAME,
    })
}

/// What a progress stream still has to send.
struct ProgressState<D> {
    pending: VecDeque<Event<D>>,
    rx: mpsc::Receiver<String>,
    task: Option<JoinHandle<Result<D, ApiError>>>,
    name: &'static str,
}

/// Writes each event as its own line as soon as it exists; the stream's last
/// event is always `done` or `failed`.
fn stream_response<D: Serialize + Send + 'static>(state: ProgressState<D>) -> Response<Body> {
    let events = stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((event_line(&event), state));
            }
            let task = state.task.as_mut()?;
            tokio::select! {
                biased;
                Some(line) = state.rx.recv() => return Some((event_line(&Event::<D>::Line(line)), state)),
                result = task => {
                    state.task = None;
                    // Lines sent just before the end come before it.
                    while let Ok(line) = state.rx.try_recv() {
                        state.pending.push_back(Event::Line(line));
                    }
                    state.pending.push_back(end_event(state.name, result));
                }
            }
        }
    });
    let body = StreamBody::new(events.map(|line| Ok::<_, Infallible>(Frame::data(line))));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(BodyExt::boxed_unsync(body))
        .expect("a valid response")
}

/// The last event for how the handler's task ended.
fn end_event<D>(name: &str, result: Result<Result<D, ApiError>, JoinError>) -> Event<D> {
    match result {
        Ok(Ok(done)) => Event::Done(done),
        Ok(Err(failure)) => Event::Failed(failure),
        Err(join) => Event::Failed(ended_abnormally(name, join)),
    }
}

fn event_line<D: Serialize>(event: &Event<D>) -> Bytes {
    let mut line = serde_json::to_vec(event).unwrap_or_else(|e| {
        serde_json::to_vec(&Event::<()>::Failed(ApiError::internal(format!(
            "capstan could not encode its answer: {e}"
        ))))
        .expect("an error encodes")
    });
    line.push(b'\n');
    Bytes::from(line)
}

/// A handler task that panicked or was stopped with the runtime.
fn ended_abnormally(name: &str, join: JoinError) -> ApiError {
    if join.is_panic() {
        tracing::error!(request = name, "a control handler panicked");
        ApiError::internal(format!(
            "the daemon failed while handling `{name}`; this is a bug in capstan: please report \
             it with the daemon's log"
        ))
    } else {
        ApiError::new(
            ErrorKind::Unavailable,
            format!("the daemon stopped before `{name}` ended; start it again and retry"),
        )
    }
}

fn parse<T: serde::de::DeserializeOwned>(name: &str, body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the `{name}` request is not valid: {e}")))
}

fn unknown_route(name: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!(
            "this daemon does not know the request {name:?}; the capstan command and the \
             running daemon may be different versions: restart the daemon after an upgrade"
        ),
    )
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(BodyExt::boxed_unsync(Full::new(Bytes::from(bytes))))
            .expect("a valid response"),
        Err(e) => error(ApiError::internal(format!(
            "capstan could not encode its answer: {e}"
        ))),
    }
}

fn error(error: ApiError) -> Response<Body> {
    let status = error.kind.status();
    json(status, &ErrorBody { error })
}
