//! The control API's [`Handler`]: each call becomes an [`Event`] for the
//! state loop, with a oneshot for its answer. Commands this daemon does not
//! do yet answer so, as a 404 with what exists instead.

use capstan_control::answers::{
    AppCreated, AppDestroyed, AppList, DaemonStatus, EnvVars, Live, LogsEnd, ProcessList,
    ReleaseList, Restarted, Scaled,
};
use capstan_control::api::{
    AppsCreate, AppsDestroy, AppsList, Deploy, EnvList, EnvSet, EnvUnset, Logs, Ps, Releases,
    Restart, Rollback, Scale, Status,
};
use capstan_control::{ApiError, Caller, ErrorKind, Handler, Progress};
use tokio::sync::{mpsc, oneshot};

use super::state::Event;

/// Sends every call to the state loop.
pub struct ControlHandler {
    pub events: mpsc::Sender<Event>,
}

impl ControlHandler {
    async fn ask<T>(&self, event: impl FnOnce(oneshot::Sender<T>) -> Event) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let stopping = || ApiError::new(ErrorKind::Unavailable, "the daemon is stopping");
        self.events.send(event(tx)).await.map_err(|_| stopping())?;
        rx.await.map_err(|_| stopping())
    }
}

fn not_yet<T>(command: &str) -> Result<T, ApiError> {
    Err(ApiError::new(
        ErrorKind::NotFound,
        format!(
            "`capstan {command}` is not in this version of the daemon yet; \
             what works now: apps, apps create, releases, and deploying with git push"
        ),
    ))
}

impl Handler for ControlHandler {
    async fn status(&self, _: Caller, _: Status) -> Result<DaemonStatus, ApiError> {
        self.ask(|answer| Event::Status { answer }).await
    }

    async fn apps_create(&self, _: Caller, request: AppsCreate) -> Result<AppCreated, ApiError> {
        self.ask(|answer| Event::Create { request, answer }).await?
    }

    async fn apps_list(&self, _: Caller, _: AppsList) -> Result<AppList, ApiError> {
        self.ask(|answer| Event::List { answer }).await
    }

    async fn apps_destroy(&self, _: Caller, _: AppsDestroy) -> Result<AppDestroyed, ApiError> {
        not_yet("apps destroy")
    }

    async fn releases(&self, _: Caller, request: Releases) -> Result<ReleaseList, ApiError> {
        self.ask(|answer| Event::Releases {
            app: request.app,
            answer,
        })
        .await?
    }

    async fn rollback(&self, _: Caller, _: Rollback, _: Progress) -> Result<Live, ApiError> {
        not_yet("rollback")
    }

    async fn env_list(&self, _: Caller, _: EnvList) -> Result<EnvVars, ApiError> {
        not_yet("env")
    }

    async fn env_set(&self, _: Caller, _: EnvSet, _: Progress) -> Result<Restarted, ApiError> {
        not_yet("env set")
    }

    async fn env_unset(&self, _: Caller, _: EnvUnset, _: Progress) -> Result<Restarted, ApiError> {
        not_yet("env unset")
    }

    async fn ps(&self, _: Caller, _: Ps) -> Result<ProcessList, ApiError> {
        not_yet("ps")
    }

    async fn scale(&self, _: Caller, _: Scale, _: Progress) -> Result<Scaled, ApiError> {
        not_yet("scale")
    }

    async fn logs(
        &self,
        _: Caller,
        request: Logs,
        progress: Progress,
    ) -> Result<LogsEnd, ApiError> {
        let app = request.app.clone();
        let dir = self.ask(|answer| Event::LogsDir { app, answer }).await??;
        super::logs::stream(dir, request, progress).await
    }

    async fn restart(&self, _: Caller, _: Restart, _: Progress) -> Result<Restarted, ApiError> {
        not_yet("restart")
    }

    async fn deploy(
        &self,
        _: Caller,
        request: Deploy,
        progress: Progress,
    ) -> Result<Live, ApiError> {
        self.ask(|answer| Event::Deploy {
            request,
            progress,
            answer,
        })
        .await?
    }
}
