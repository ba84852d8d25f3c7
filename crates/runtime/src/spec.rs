use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use capstan_proc::{Identity, Log};

/// Everything needed to run one app's pool of Python workers.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    /// The app's name; workers are called `web.1`, `web.2`, ... in logs.
    pub name: String,
    /// The venv's Python interpreter.
    pub python: PathBuf,
    /// The shim file written out of the binary.
    pub shim: PathBuf,
    /// The WSGI target, `module:callable` (or `module:factory()`).
    pub target: String,
    /// The directory workers start in and import from.
    pub root: PathBuf,
    /// Variables added to the workers' environment.
    pub env: Vec<(OsString, OsString)>,
    /// How many worker processes.
    pub workers: usize,
    /// Requests in flight per worker process.
    pub threads: usize,
    /// Requests sent ahead to a worker with one thread while it runs another,
    /// so it goes from one to the next without waiting for the edge. Only
    /// when every worker is busy; if the worker dies, they go to another one.
    pub pipeline: usize,
    /// How long the app may take to start a response, or between two chunks of it.
    pub timeout: Duration,
    /// How long a worker may take to import the app and say hello.
    pub boot_timeout: Duration,
    /// How many requests may wait for a worker before new ones get 503.
    pub max_queue: usize,
    /// How long a request may wait for a worker before it gets 503.
    pub queue_timeout: Duration,
    /// How long a worker gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// How long a worker that is being replaced gets to finish its requests.
    pub graceful_timeout: Duration,
    /// Replace a worker after this many requests (gunicorn's max_requests).
    pub max_requests: Option<u64>,
    /// Up to this many more, chosen per worker, so workers do not all restart at once.
    pub max_requests_jitter: u64,
    /// Replace a worker whose resident memory grows past this many bytes.
    pub max_rss: Option<u64>,
    /// The user the workers run as (the app's user on a server); `None` runs
    /// them as capstan's own user.
    pub identity: Option<Identity>,
    /// Where the workers' output goes, each line labelled `web.1`, `web.2`...
    pub log: Log,
}

/// Default [`PoolSpec::pipeline`]: enough that a busy worker always finds its
/// next request waiting (bench/RESULTS.md measures 1, 2, 4 and 8).
pub const DEFAULT_PIPELINE: usize = 8;

impl PoolSpec {
    /// This worker's request limit: max_requests plus a random share of the jitter.
    pub(crate) fn recycle_limit(&self) -> Option<u64> {
        let limit = self.max_requests?;
        if self.max_requests_jitter == 0 {
            return Some(limit);
        }
        // Any varying number will do; the clock's nanoseconds are one.
        let noise = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()));
        Some(limit + noise % (self.max_requests_jitter + 1))
    }
}

impl PoolSpec {
    /// A spec with capstan's defaults for everything but what identifies the app.
    pub fn new(name: &str, python: PathBuf, shim: PathBuf, target: &str, root: PathBuf) -> Self {
        PoolSpec {
            name: name.to_owned(),
            python,
            shim,
            target: target.to_owned(),
            root,
            env: Vec::new(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            threads: 1,
            pipeline: DEFAULT_PIPELINE,
            timeout: Duration::from_secs(30),
            boot_timeout: Duration::from_secs(60),
            max_queue: 1024,
            queue_timeout: Duration::from_secs(30),
            kill_grace: Duration::from_secs(5),
            graceful_timeout: Duration::from_secs(30),
            max_requests: None,
            max_requests_jitter: 0,
            max_rss: None,
            identity: None,
            log: Log::Capstan,
        }
    }
}
