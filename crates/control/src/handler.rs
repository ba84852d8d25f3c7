//! The daemon's side of the API: one method per command, each taking its typed
//! request and returning its typed answer, or, for long operations, sending
//! progress lines and returning how it ended.
//!
//! A daemon whose state has one owner (a loop over `enum Event`) implements each
//! method by sending the request, with a oneshot for the answer (and the
//! `Progress` for a long one), to its loop and awaiting the answer; nothing here
//! needs a lock on that state.
//!
//! Every call runs in its own task: it runs to its end even if the client goes
//! away (a deploy is not cut in half by a dropped connection), and a panic in it
//! becomes an `internal` error for the client, never a stream without an end.

use std::future::Future;

use crate::answers::{
    AppCreated, AppDestroyed, AppList, DaemonStatus, EnvVars, Live, LogsEnd, ProcessList,
    ReleaseList, Restarted, Scaled,
};
use crate::api::{
    AppsCreate, AppsDestroy, AppsList, Deploy, EnvList, EnvSet, EnvUnset, Logs, Ps, Releases,
    Restart, Rollback, Scale, Status,
};
use crate::error::ApiError;
use crate::peer::Caller;
use crate::progress::Progress;

/// What the daemon implements to answer control requests. `caller` is the peer
/// whose credentials were checked (for "who is deploying" messages and logs).
///
/// A streaming call that fails before sending any line is answered as a plain
/// error with its status (404, 409...); after the first line, its error is the
/// stream's `failed` event.
pub trait Handler: Send + Sync + 'static {
    /// `status`.
    fn status(
        &self,
        caller: Caller,
        request: Status,
    ) -> impl Future<Output = Result<DaemonStatus, ApiError>> + Send;

    /// `apps create`.
    fn apps_create(
        &self,
        caller: Caller,
        request: AppsCreate,
    ) -> impl Future<Output = Result<AppCreated, ApiError>> + Send;

    /// `apps` (list).
    fn apps_list(
        &self,
        caller: Caller,
        request: AppsList,
    ) -> impl Future<Output = Result<AppList, ApiError>> + Send;

    /// `apps destroy`.
    fn apps_destroy(
        &self,
        caller: Caller,
        request: AppsDestroy,
    ) -> impl Future<Output = Result<AppDestroyed, ApiError>> + Send;

    /// `releases APP`.
    fn releases(
        &self,
        caller: Caller,
        request: Releases,
    ) -> impl Future<Output = Result<ReleaseList, ApiError>> + Send;

    /// `rollback APP [N]`, streamed.
    fn rollback(
        &self,
        caller: Caller,
        request: Rollback,
        progress: Progress,
    ) -> impl Future<Output = Result<Live, ApiError>> + Send;

    /// `env APP` (list).
    fn env_list(
        &self,
        caller: Caller,
        request: EnvList,
    ) -> impl Future<Output = Result<EnvVars, ApiError>> + Send;

    /// `env APP set K=V...`, streamed (it restarts the app).
    fn env_set(
        &self,
        caller: Caller,
        request: EnvSet,
        progress: Progress,
    ) -> impl Future<Output = Result<Restarted, ApiError>> + Send;

    /// `env APP unset K...`, streamed (it restarts the app).
    fn env_unset(
        &self,
        caller: Caller,
        request: EnvUnset,
        progress: Progress,
    ) -> impl Future<Output = Result<Restarted, ApiError>> + Send;

    /// `ps [APP]`.
    fn ps(
        &self,
        caller: Caller,
        request: Ps,
    ) -> impl Future<Output = Result<ProcessList, ApiError>> + Send;

    /// `scale APP web=N ...`, streamed.
    fn scale(
        &self,
        caller: Caller,
        request: Scale,
        progress: Progress,
    ) -> impl Future<Output = Result<Scaled, ApiError>> + Send;

    /// `logs APP`, streamed; with `follow` it ends when [`Progress::closed`] resolves.
    fn logs(
        &self,
        caller: Caller,
        request: Logs,
        progress: Progress,
    ) -> impl Future<Output = Result<LogsEnd, ApiError>> + Send;

    /// `restart APP`, streamed.
    fn restart(
        &self,
        caller: Caller,
        request: Restart,
        progress: Progress,
    ) -> impl Future<Output = Result<Restarted, ApiError>> + Send;

    /// A push from the pre-receive hook, streamed to the pusher's terminal.
    fn deploy(
        &self,
        caller: Caller,
        request: Deploy,
        progress: Progress,
    ) -> impl Future<Output = Result<Live, ApiError>> + Send;
}
