use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use capstan_proc::FdSocket;
use capstan_wire::{encode_frame, encode_header, FileRef, Kind, ResponseStart};
use tokio::sync::{mpsc, Notify, OwnedMutexGuard};

use crate::call::BODY_CHUNK;
use crate::frames::{FrameReader, ReadError};
use crate::pool::PoolInner;
use crate::SpilledBody;

/// What the worker's reader tells the task that owns a request.
#[derive(Debug)]
pub(crate) enum Event {
    Start(ResponseStart),
    Body(Bytes),
    File(OwnedFd, FileRef),
    End,
    AppError(String),
    Bad(String),
    /// The worker died while it held the request.
    Lost,
    /// A sequential worker reached the request: the app is running it now.
    Turn,
    /// The worker died before it reached the request: the app never saw it,
    /// so another worker may run it.
    Requeue,
}

/// The worker's socket refused a request's first write: the worker is gone and
/// never saw the request.
#[derive(Debug)]
pub(crate) struct Refused;

/// One live Python worker process as the pool sees it.
pub(crate) struct Worker {
    /// `web.N`, for logs.
    pub name: String,
    pub pid: u32,
    /// Requests it may hold at once: its thread count, or for a worker with
    /// one thread, the one it runs plus those queued behind it.
    pub capacity: usize,
    /// It runs one request at a time, in the order they were sent.
    sequential: bool,
    /// Requests it holds now; changed only under the pool's lock.
    pub inflight: AtomicUsize,
    alive: AtomicBool,
    socket: Arc<FdSocket>,
    /// Frames of one request are written as a whole: no interleaving.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    routes: Mutex<Routes>,
    next_id: AtomicU32,
    /// Asks the slot that owns the process to stop it (timeout, protocol error).
    pub kill: Notify,
    /// Asks the slot to replace it between requests (max_requests).
    pub recycle: Notify,
    /// Requests finished so far.
    served: AtomicU64,
    /// Recycle once `served` reaches this (u64::MAX: never).
    recycle_at: AtomicU64,
    /// False once it left the pool's ready set: no new request may be handed to it.
    in_pool: AtomicBool,
}

/// The requests a worker holds, by id, and for a sequential worker the order
/// it runs them in. One lock for both, so a request can never be queued after
/// it finished.
#[derive(Default)]
struct Routes {
    by_id: HashMap<u32, mpsc::Sender<Event>>,
    /// Requests in the order their last frame was written; the first one runs.
    order: VecDeque<u32>,
}

impl Routes {
    /// Forgets a finished request; returns the request whose turn it is now.
    fn finish(&mut self, id: u32) -> Option<mpsc::Sender<Event>> {
        self.by_id.remove(&id);
        if self.order.front() == Some(&id) {
            self.order.pop_front();
            let next = self.order.front()?;
            return self.by_id.get(next).cloned();
        }
        // Cancelled before its body was whole: the worker ended it out of turn.
        self.order.retain(|queued| *queued != id);
        None
    }
}

impl Worker {
    /// A worker with `threads` threads. A worker with one thread is also sent
    /// up to `queued` requests beyond the one it runs, so it never waits for
    /// the edge between two requests.
    pub fn new(
        name: String,
        pid: u32,
        threads: usize,
        queued: usize,
        socket: Arc<FdSocket>,
    ) -> Self {
        let sequential = threads == 1;
        Worker {
            name,
            pid,
            capacity: if sequential { 1 + queued } else { threads },
            sequential,
            inflight: AtomicUsize::new(0),
            alive: AtomicBool::new(true),
            socket,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            routes: Mutex::new(Routes::default()),
            next_id: AtomicU32::new(1),
            kill: Notify::new(),
            recycle: Notify::new(),
            served: AtomicU64::new(0),
            recycle_at: AtomicU64::new(u64::MAX),
            in_pool: AtomicBool::new(true),
        }
    }

    /// Recycle the worker after `limit` requests (`None`: never).
    pub fn recycle_after(&self, limit: Option<u64>) {
        self.recycle_at
            .store(limit.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Never recycle this worker (its replacement could not start).
    pub fn stop_recycling(&self) {
        self.recycle_after(None);
    }

    /// Requests finished so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Counts a finished request; asks for recycling when the limit is reached.
    pub fn count_served(&self) {
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        if served >= self.recycle_at.load(Ordering::Relaxed) {
            self.recycle.notify_one();
        }
    }

    /// Whether new requests may still be handed to it.
    pub fn takes_requests(&self) -> bool {
        self.is_alive() && self.in_pool.load(Ordering::Acquire)
    }

    /// It left the ready set (retired, replaced or dead).
    pub fn leave_pool(&self) {
        self.in_pool.store(false, Ordering::Release);
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Whether a request sent to it waits for [`Event::Turn`] before it runs.
    pub fn is_sequential(&self) -> bool {
        self.sequential
    }

    /// Registers a new request and returns its id and the channel its events arrive on.
    pub fn open_request(&self) -> (u32, mpsc::Receiver<Event>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).max(1);
        let (tx, rx) = mpsc::channel(16);
        self.routes
            .lock()
            .expect("routes lock")
            .by_id
            .insert(id, tx);
        (id, rx)
    }

    /// Request `id` is complete on the socket from here on (called under the
    /// write lock, before its last frame is written): a sequential worker runs
    /// requests in this order, so this is its place in the queue.
    fn queue(&self, id: u32) {
        if !self.sequential {
            return;
        }
        let mut routes = self.routes.lock().expect("routes lock");
        let Some(route) = routes.by_id.get(&id) else {
            return; // it already ended (cancelled)
        };
        let first = routes.order.is_empty().then(|| route.clone());
        routes.order.push_back(id);
        drop(routes);
        if let Some(route) = first {
            // Its first event: the channel has room.
            let _ = route.try_send(Event::Turn);
        }
    }

    /// Writes whole frames without making the caller wait: what the socket
    /// does not take at once is written by a task that holds the write lock.
    ///
    /// Nothing here can be cancelled halfway, so a client that leaves never
    /// leaves half a frame on the socket. A failed write means the worker is
    /// broken: it is stopped, and its reader fails the requests it held.
    /// `Err(Refused)` says the very first write failed, so not one byte of
    /// `parts` reached the worker (it died before the pool noticed).
    pub fn send_detached(self: &Arc<Self>, parts: Vec<Bytes>) -> Result<(), Refused> {
        self.send_parts(parts, None, None)
    }

    /// [`Worker::send_detached`] for request `id` whose frames are all in
    /// `parts`: it takes its place in the worker's queue as they are written.
    pub fn send_request(self: &Arc<Self>, id: u32, parts: Vec<Bytes>) -> Result<(), Refused> {
        self.send_parts(parts, Some(id), None)
    }

    /// [`Worker::send_detached`] for a request whose body is in a file: after
    /// `parts` (the Request frame), the body follows as Body frames read one
    /// at a time, then BodyEnd, so memory stays bounded whatever its size.
    /// The write lock is taken per frame, so a Cancel or another request's
    /// frames can go out between them.
    pub fn send_with_body_file(
        self: &Arc<Self>,
        parts: Vec<Bytes>,
        id: u32,
        body: SpilledBody,
    ) -> Result<(), Refused> {
        self.send_parts(parts, None, Some((id, body)))
    }

    /// Writes `parts`; `request` is the id of a request they complete, queued
    /// on the worker under the write lock just before they go out.
    fn send_parts(
        self: &Arc<Self>,
        mut parts: Vec<Bytes>,
        request: Option<u32>,
        body: Option<(u32, SpilledBody)>,
    ) -> Result<(), Refused> {
        let guard = Arc::clone(&self.write_lock).try_lock_owned().ok();
        if let Some(guard) = guard {
            if let Some(id) = request {
                self.queue(id);
            }
            let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
            match self.socket.try_send_vectored(&slices) {
                Ok(mut written) => {
                    drop(slices);
                    parts.retain_mut(|part| {
                        let taken = written.min(part.len());
                        written -= taken;
                        part.advance(taken);
                        !part.is_empty()
                    });
                    if parts.is_empty() && body.is_none() {
                        return Ok(());
                    }
                }
                Err(_) => {
                    self.kill.notify_one();
                    return Err(Refused);
                }
            }
            self.finish_writing(Some(guard), parts, None, body);
        } else {
            self.finish_writing(None, parts, request, body);
        }
        Ok(())
    }

    fn finish_writing(
        self: &Arc<Self>,
        guard: Option<OwnedMutexGuard<()>>,
        parts: Vec<Bytes>,
        request: Option<u32>,
        body: Option<(u32, SpilledBody)>,
    ) {
        let worker = Arc::clone(self);
        tokio::spawn(async move {
            {
                let _guard = match guard {
                    Some(guard) => guard,
                    None => Arc::clone(&worker.write_lock).lock_owned().await,
                };
                if let Some(id) = request {
                    worker.queue(id);
                }
                for part in &parts {
                    if worker.socket.send_all(part).await.is_err() {
                        worker.kill.notify_one();
                        return;
                    }
                }
            }
            if let Some((id, body)) = body {
                worker.stream_body_file(id, body).await;
            }
        });
    }

    /// Sends a spilled body as Body frames and a BodyEnd, reading one frame's
    /// worth of the file at a time.
    async fn stream_body_file(self: &Arc<Self>, id: u32, body: SpilledBody) {
        let mut offset = 0;
        let mut header = BytesMut::with_capacity(capstan_wire::HEADER_LEN);
        while offset < body.len() {
            // The request ended (cancelled, answered early) or the worker died:
            // the rest of the body has nobody to go to.
            if !self.holds(id) {
                return;
            }
            let chunk = match body.read_chunk(offset, BODY_CHUNK).await {
                Ok(chunk) if !chunk.is_empty() => chunk,
                result => {
                    let error = result
                        .err()
                        .map_or("it ended early".into(), |e| e.to_string());
                    tracing::error!(worker = %self.name, id, %error, "could not read a request body back from its temporary file");
                    // The worker has part of the body: cancelling ends the request
                    // there without a response, which the caller reports as 502.
                    self.cancel(id);
                    return;
                }
            };
            offset += chunk.len() as u64;
            encode_header(Kind::Body, id, chunk.len() as u32, &mut header);
            let frame_header = header.split().freeze();
            let _guard = self.write_lock.lock().await;
            if self.socket.send_all(&frame_header).await.is_err()
                || self.socket.send_all(&chunk).await.is_err()
            {
                self.kill.notify_one();
                return;
            }
        }
        encode_header(Kind::BodyEnd, id, 0, &mut header);
        let _guard = self.write_lock.lock().await;
        // With BodyEnd the worker has the whole request: this is its place in line.
        self.queue(id);
        if self.socket.send_all(&header).await.is_err() {
            self.kill.notify_one();
        }
    }

    /// Whether request `id` is still open on this worker.
    fn holds(&self, id: u32) -> bool {
        self.is_alive()
            && self
                .routes
                .lock()
                .expect("routes lock")
                .by_id
                .contains_key(&id)
    }

    /// Tells the worker the client of request `id` is gone.
    pub fn cancel(self: &Arc<Self>, id: u32) {
        if !self.is_alive() {
            return;
        }
        let mut frame = BytesMut::with_capacity(capstan_wire::HEADER_LEN);
        encode_frame(Kind::Cancel, id, &[], &mut frame);
        // A worker that refuses it is dead, and the request with it.
        let _ = self.send_detached(vec![frame.freeze()]);
    }

    /// Asks the worker to finish what it holds and exit.
    pub async fn shutdown(&self) {
        let mut frame = BytesMut::with_capacity(capstan_wire::HEADER_LEN);
        encode_frame(Kind::Shutdown, 0, &[], &mut frame);
        let _guard = self.write_lock.lock().await;
        let _ = self.socket.send_all(&frame).await;
    }

    /// Reads the worker's frames until it closes the socket, routing each to its
    /// request. When the worker is gone, every request it held learns so.
    pub async fn read_loop(self: Arc<Self>, mut reader: FrameReader, pool: Arc<PoolInner>) {
        loop {
            let incoming = match reader.next().await {
                Ok(Some(incoming)) => incoming,
                Ok(None) => break,
                // A killed worker's socket may report a reset instead of a clean end.
                Err(ReadError::Io(error))
                    if error.kind() == std::io::ErrorKind::ConnectionReset =>
                {
                    break
                }
                Err(error) => {
                    tracing::error!(worker = %self.name, %error, "worker broke the protocol; stopping it");
                    self.kill.notify_one();
                    break;
                }
            };
            let id = incoming.frame.request_id;
            let payload = incoming.frame.payload;
            let (event, last) = match incoming.frame.kind {
                Kind::ResponseStart => match ResponseStart::parse(&payload) {
                    Ok(start) => (Event::Start(start), false),
                    Err(error) => (Event::Bad(error.to_string()), false),
                },
                Kind::ResponseBody => (Event::Body(payload), false),
                Kind::ResponseFile => match (incoming.fd, FileRef::parse(&payload)) {
                    (Some(fd), Ok(file)) => (Event::File(fd, file), false),
                    (_, Err(error)) => (Event::Bad(error.to_string()), false),
                    (None, Ok(_)) => (Event::Bad("file without descriptor".into()), false),
                },
                Kind::ResponseEnd => (Event::End, true),
                Kind::AppError => (
                    Event::AppError(String::from_utf8_lossy(&payload).into_owned()),
                    true,
                ),
                Kind::Pong => continue,
                other => {
                    tracing::error!(worker = %self.name, kind = other.name(), "unexpected frame from worker; stopping it");
                    self.kill.notify_one();
                    break;
                }
            };
            let route = self
                .routes
                .lock()
                .expect("routes lock")
                .by_id
                .get(&id)
                .cloned();
            if let Some(route) = route {
                // A closed receiver means the client left; the frames are dropped.
                let _ = route.send(event).await;
            }
            if last {
                let next = self.routes.lock().expect("routes lock").finish(id);
                if let Some(next) = next {
                    // A queued request has had no event yet: the channel has room.
                    let _ = next.try_send(Event::Turn);
                }
                self.count_served();
                pool.release(&self);
            }
        }
        self.alive.store(false, Ordering::Release);
        pool.remove(&self);
        let Routes { by_id, order } =
            std::mem::take(&mut *self.routes.lock().expect("routes lock"));
        for (id, route) in by_id {
            // Only the request a sequential worker was running can have reached
            // the app; the ones behind it go to another worker. A threaded
            // worker may have been running any of them.
            let reached_app = !self.sequential || order.front() == Some(&id);
            let _ = route.try_send(if reached_app {
                Event::Lost
            } else {
                Event::Requeue
            });
        }
    }
}
