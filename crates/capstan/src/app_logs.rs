//! Where one app's output goes: capstan's own (under `capstan run`, as it
//! always has) or the app's log files (under the daemon, which owns one
//! writer per app).

use capstan_logs::{LogSink, ProcessName};
use capstan_proc::Log;

/// The destination of every line of an app's generation.
#[derive(Clone, Default)]
pub enum AppLogs {
    /// capstan's stderr (the processes) and stdout (the access log).
    #[default]
    Capstan,
    /// `<app>/logs/<process>.log`, through the app's writer.
    Files(LogSink),
}

impl AppLogs {
    /// Where the output of `process` (`web`, a `[processes]` name,
    /// `release`) goes.
    pub fn process(&self, process: &str) -> Log {
        match self {
            AppLogs::Capstan => Log::Capstan,
            AppLogs::Files(sink) => match ProcessName::new(process) {
                Ok(name) => Log::To(sink.lines_of(&name)),
                // The app file's names are checked at load; one that makes
                // no file name still has its lines shown somewhere.
                Err(error) => {
                    tracing::warn!(%error, "its lines go to the daemon's own log");
                    Log::Capstan
                }
            },
        }
    }

    /// Where the access log goes.
    pub fn access(&self) -> Log {
        self.process("access")
    }
}
