use thiserror::Error;

/// Why a request got no answer from the app. Each becomes a 5xx at the edge.
#[derive(Debug, Error)]
pub enum CallError {
    /// Every worker is busy and the wait queue is full (503).
    #[error("all workers are busy and {0} requests are already waiting")]
    QueueFull(usize),
    /// No worker became free within the queue timeout (503).
    #[error("no worker became free within {0:?}")]
    QueueTimeout(std::time::Duration),
    /// The pool is stopping (503).
    #[error("the app is shutting down")]
    ShuttingDown,
    /// The worker died while it held the request (502).
    #[error("the worker died while handling the request")]
    WorkerLost,
    /// The app took longer than its timeout; its worker is being replaced (504).
    #[error("the app did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The app raised before it started a response (500); the traceback is logged.
    #[error("the app raised an exception")]
    AppError(String),
    /// The worker sent something that is not a valid response (502).
    #[error("the worker sent an invalid response: {0}")]
    BadResponse(String),
}

/// Why the app's workers could not start.
#[derive(Debug, Error)]
pub enum BootError {
    /// The app failed to import; the Python traceback is attached.
    #[error("the app failed to load ({target}):\n\n{traceback}")]
    Import {
        /// The WSGI target that was being imported.
        target: String,
        /// The Python traceback.
        traceback: String,
    },
    /// The worker process ended before it said hello.
    #[error("the Python worker {exit} before loading the app ({target}); its output is above")]
    Exited {
        /// The WSGI target.
        target: String,
        /// How the worker ended.
        exit: capstan_proc::Exit,
    },
    /// The worker could not be started at all.
    #[error(transparent)]
    Spawn(#[from] capstan_proc::SpawnError),
    /// The worker took too long to load the app.
    #[error("the app did not load within {timeout:?} ({target})")]
    Timeout {
        /// The WSGI target.
        target: String,
        /// The boot timeout.
        timeout: std::time::Duration,
    },
    /// The worker spoke something other than the worker protocol.
    #[error("the worker broke the protocol while starting: {0}")]
    Protocol(String),
    /// The pool was stopped while starting.
    #[error("stopped while starting")]
    Stopped,
}
