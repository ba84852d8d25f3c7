use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinSet;

use crate::slot::{self, SlotCommand};
use crate::worker::Worker;
use crate::{BootError, CallError, PoolSpec};
use capstan_wire::StaticMount;

/// A running pool of Python workers for one app.
///
/// Cloning is cheap; all clones drive the same workers.
#[derive(Clone)]
pub struct Pool {
    pub(crate) inner: Arc<PoolInner>,
}

pub(crate) struct PoolInner {
    pub spec: PoolSpec,
    state: Mutex<State>,
    /// Rung whenever a request finishes, for draining.
    idle: Notify,
    pub stop: watch::Sender<bool>,
    slots: Mutex<Option<JoinSet<()>>>,
    /// One command channel per slot, for reloads.
    commands: Mutex<Vec<mpsc::Sender<SlotCommand>>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// The static folders worker 1 reported when it first booted.
    pub static_mounts: OnceLock<Vec<StaticMount>>,
    /// How many times each slot (`web.N`) started a worker again after one
    /// ended or failed to start; replacements (reload, recycling) are not.
    restarts: Mutex<BTreeMap<String, u32>>,
}

struct State {
    ready: Vec<Arc<Worker>>,
    waiters: VecDeque<oneshot::Sender<Lease>>,
    closed: bool,
    next: usize,
}

impl Pool {
    /// Starts every worker and waits until each has loaded the app.
    ///
    /// If the app fails to load, everything started is stopped again and the
    /// error carries the Python traceback: no restart loop spins on a broken app.
    pub async fn start(spec: PoolSpec) -> Result<Pool, BootError> {
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(PoolInner {
            state: Mutex::new(State {
                ready: Vec::new(),
                waiters: VecDeque::new(),
                closed: false,
                next: 0,
            }),
            idle: Notify::new(),
            stop,
            slots: Mutex::new(None),
            commands: Mutex::new(Vec::new()),
            reloading: tokio::sync::Mutex::new(()),
            static_mounts: OnceLock::new(),
            restarts: Mutex::new(BTreeMap::new()),
            spec,
        });
        let mut slots = JoinSet::new();
        let mut booted = Vec::new();
        for index in 1..=inner.spec.workers {
            let (tx, rx) = oneshot::channel();
            let (commands, receiver) = mpsc::channel(1);
            inner.commands.lock().expect("commands lock").push(commands);
            slots.spawn(slot::run(Arc::clone(&inner), index, tx, receiver));
            booted.push(rx);
        }
        *inner.slots.lock().expect("slots lock") = Some(slots);
        let pool = Pool { inner };
        for rx in booted {
            let result = rx.await.unwrap_or(Err(BootError::Stopped));
            if let Err(error) = result {
                pool.stop(Duration::ZERO).await;
                return Err(error);
            }
        }
        Ok(pool)
    }

    /// Stops the pool: new requests get 503, requests in flight get up to
    /// `grace` to finish, then every worker is asked to exit and, failing
    /// that, its process group is terminated.
    pub async fn stop(&self, grace: Duration) {
        let waiters = {
            let mut state = self.inner.state.lock().expect("pool lock");
            state.closed = true;
            std::mem::take(&mut state.waiters)
        };
        drop(waiters);
        let drained = tokio::time::timeout(grace, self.inner.drained()).await;
        if drained.is_err() {
            tracing::warn!(?grace, "requests still running at the shutdown deadline");
        }
        self.inner.stop.send_replace(true);
        let slots = self.inner.slots.lock().expect("slots lock").take();
        if let Some(mut slots) = slots {
            while slots.join_next().await.is_some() {}
        }
    }

    /// Replaces every worker with a new one running the app's current code,
    /// with no request lost: the new workers all load the app first, then take
    /// over at once, and the old ones finish what they hold and exit.
    ///
    /// If any new worker fails to load the app, none takes over: the old
    /// generation keeps serving and the error (with its traceback) is returned.
    pub async fn reload(&self) -> Result<(), BootError> {
        let _one_at_a_time = self.inner.reloading.lock().await;
        let slots = self.inner.commands.lock().expect("commands lock").clone();
        let mut pending = Vec::with_capacity(slots.len());
        for slot in slots {
            let (booted, booted_rx) = oneshot::channel();
            let (commit, commit_rx) = oneshot::channel();
            let command = SlotCommand::Replace {
                booted,
                commit: commit_rx,
            };
            if slot.send(command).await.is_ok() {
                pending.push((booted_rx, commit));
            }
        }
        // A slot that is restarting a crashed worker answers once that one is up.
        let wait = self.inner.spec.boot_timeout * 2 + self.inner.spec.kill_grace;
        let mut failure = None;
        let mut commits = Vec::with_capacity(pending.len());
        for (booted, commit) in pending {
            match tokio::time::timeout(wait, booted).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => {
                    failure.get_or_insert(error);
                }
                Ok(Err(_)) => {
                    failure.get_or_insert(BootError::Stopped);
                }
                Err(_) => {
                    failure.get_or_insert(BootError::Timeout {
                        target: self.inner.spec.target.clone(),
                        timeout: wait,
                    });
                }
            }
            commits.push(commit);
        }
        let go = failure.is_none();
        for commit in commits {
            let _ = commit.send(go);
        }
        match failure {
            None => Ok(()),
            Some(error) => Err(error),
        }
    }

    /// The static folders the app reported when worker 1 first booted
    /// (Flask's static folders, Django's STATIC_ROOT). Only that worker is
    /// asked; a later one, even one started by a reload, does not change them.
    pub fn static_mounts(&self) -> &[StaticMount] {
        self.inner.static_mounts.get().map_or(&[], Vec::as_slice)
    }

    /// The number of workers ready to take requests.
    pub fn ready_workers(&self) -> usize {
        self.inner.state.lock().expect("pool lock").ready.len()
    }

    /// The process ids of the workers ready now.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.workers().into_iter().map(|w| w.pid).collect()
    }

    /// The workers serving now, in slot order: name, pid, restarts.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        let restarts = self.inner.restarts.lock().expect("restarts lock").clone();
        let state = self.inner.state.lock().expect("pool lock");
        let mut workers: Vec<WorkerStatus> = state
            .ready
            .iter()
            .map(|w| WorkerStatus {
                name: w.name.clone(),
                pid: w.pid,
                restarts: restarts.get(&w.name).copied().unwrap_or(0),
            })
            .collect();
        // web.2 before web.10.
        workers.sort_by(|a, b| (a.name.len(), &a.name).cmp(&(b.name.len(), &b.name)));
        workers
    }
}

/// One worker of [`Pool::workers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStatus {
    /// Its slot's name, `web.N`.
    pub name: String,
    pub pid: u32,
    /// How many times its slot started a worker again after one died.
    pub restarts: u32,
}

impl PoolInner {
    /// Counts a restart of the slot `name`.
    pub(crate) fn count_restart(&self, name: &str) {
        *self
            .restarts
            .lock()
            .expect("restarts lock")
            .entry(name.to_owned())
            .or_insert(0) += 1;
    }
}

/// One slot of one worker, held for a request. Dropped before the request
/// went out (the client left while it waited), it frees the slot again, so no
/// cancellation can leak a slot.
pub(crate) struct Lease {
    worker: Option<Arc<Worker>>,
    pool: Arc<PoolInner>,
}

impl Lease {
    fn new(worker: Arc<Worker>, pool: &Arc<PoolInner>) -> Self {
        Lease {
            worker: Some(worker),
            pool: Arc::clone(pool),
        }
    }

    /// The request was sent: from now on its last frame, or the worker's
    /// death, frees the slot (see `Worker::read_loop`).
    pub fn commit(mut self) -> Arc<Worker> {
        self.worker.take().expect("a lease is committed once")
    }

    /// Forgets the slot without freeing it (the caller frees it).
    fn disarm(&mut self) {
        self.worker = None;
    }

    pub fn worker(&self) -> &Arc<Worker> {
        self.worker
            .as_ref()
            .expect("an uncommitted lease has its worker")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.pool.release(&worker);
        }
    }
}

impl PoolInner {
    /// Leases a worker with a free slot, waiting in the bounded queue if needed.
    pub async fn acquire(self: &Arc<Self>) -> Result<Lease, CallError> {
        let rx = {
            let mut state = self.state.lock().expect("pool lock");
            if state.closed {
                return Err(CallError::ShuttingDown);
            }
            let count = state.ready.len();
            let start = state.next;
            let mut best: Option<(usize, usize)> = None;
            for offset in 0..count {
                let i = (start + offset) % count;
                let worker = &state.ready[i];
                let load = worker.inflight.load(Ordering::Relaxed);
                if load < worker.capacity && best.is_none_or(|(_, b)| load < b) {
                    best = Some((i, load));
                    if load == 0 {
                        break;
                    }
                }
            }
            if let Some((i, _)) = best {
                state.next = i + 1;
                let worker = Arc::clone(&state.ready[i]);
                worker.inflight.fetch_add(1, Ordering::Relaxed);
                return Ok(Lease::new(worker, self));
            }
            if state.waiters.len() >= self.spec.max_queue {
                tracing::warn!(
                    max_queue = self.spec.max_queue,
                    "request queue full; answering 503"
                );
                return Err(CallError::QueueFull(state.waiters.len()));
            }
            let (tx, rx) = oneshot::channel();
            state.waiters.push_back(tx);
            rx
        };
        match tokio::time::timeout(self.spec.queue_timeout, rx).await {
            Ok(Ok(lease)) => Ok(lease),
            Ok(Err(_)) => Err(CallError::ShuttingDown),
            Err(_) => {
                tracing::warn!(queue_timeout = ?self.spec.queue_timeout, "request waited too long for a worker; answering 503");
                Err(CallError::QueueTimeout(self.spec.queue_timeout))
            }
        }
    }

    /// A request on `worker` is finished: hand the slot to the first waiter, or free it.
    pub fn release(self: &Arc<Self>, worker: &Arc<Worker>) {
        let mut state = self.state.lock().expect("pool lock");
        if worker.takes_requests() {
            while let Some(waiter) = state.waiters.pop_front() {
                match waiter.send(Lease::new(Arc::clone(worker), self)) {
                    Ok(()) => return,
                    // Disarmed: dropping it here would release under the lock.
                    Err(mut lease) => lease.disarm(),
                }
            }
        }
        worker.inflight.fetch_sub(1, Ordering::Relaxed);
        drop(state);
        self.idle.notify_waiters();
    }

    /// A worker is ready: give it waiting requests first.
    pub fn add(self: &Arc<Self>, worker: Arc<Worker>) {
        let mut state = self.state.lock().expect("pool lock");
        while worker.inflight.load(Ordering::Relaxed) < worker.capacity {
            let Some(waiter) = state.waiters.pop_front() else {
                break;
            };
            worker.inflight.fetch_add(1, Ordering::Relaxed);
            if let Err(mut lease) = waiter.send(Lease::new(Arc::clone(&worker), self)) {
                // Disarmed: dropping it here would release under the lock.
                lease.disarm();
                worker.inflight.fetch_sub(1, Ordering::Relaxed);
            }
        }
        state.ready.push(worker);
    }

    /// A worker is gone: no new request goes to it.
    pub fn remove(&self, worker: &Arc<Worker>) {
        worker.leave_pool();
        let mut state = self.state.lock().expect("pool lock");
        state.ready.retain(|w| !Arc::ptr_eq(w, worker));
        drop(state);
        self.idle.notify_waiters();
    }

    async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            let busy = {
                let state = self.state.lock().expect("pool lock");
                state
                    .ready
                    .iter()
                    .any(|w| w.inflight.load(Ordering::Relaxed) > 0)
            };
            if !busy {
                return;
            }
            notified.await;
        }
    }
}
