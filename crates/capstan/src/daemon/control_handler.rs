//! The control API's [`Handler`]: each call becomes an [`Event`] for the
//! state loop, with a oneshot for its answer. An operation (rollback,
//! restart, scale, env set/unset, destroy) first asks the loop to begin,
//! runs in the call's task, and says it ended even if it panicked.

use capstan_config::AppName;
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

use super::operations;
use super::state::{Begun, Event};

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

impl ControlHandler {
    /// Begins `what` on `app` (refused while another operation runs there),
    /// runs it, and ends it.
    async fn operate<T, F>(
        &self,
        app: &AppName,
        what: &'static str,
        run: impl FnOnce(Begun) -> F,
    ) -> Result<T, ApiError>
    where
        F: std::future::Future<Output = Result<T, ApiError>>,
    {
        let begun = self
            .ask(|answer| Event::Begin {
                app: app.clone(),
                what,
                answer,
            })
            .await??;
        let mut end = EndOnDrop {
            app: Some(app.clone()),
            events: self.events.clone(),
        };
        let result = run(begun).await;
        // Ended before the answer goes out, so the caller's next operation
        // is not refused as overlapping this one.
        if let Some(app) = end.app.take() {
            let _ = self.events.send(Event::End { app }).await;
        }
        result
    }
}

/// Tells the loop the operation ended when its task ends without saying so
/// (a panic).
struct EndOnDrop {
    app: Option<AppName>,
    events: mpsc::Sender<Event>,
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        if let Some(app) = self.app.take() {
            let events = self.events.clone();
            tokio::spawn(async move {
                let _ = events.send(Event::End { app }).await;
            });
        }
    }
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

    async fn apps_destroy(
        &self,
        _: Caller,
        request: AppsDestroy,
    ) -> Result<AppDestroyed, ApiError> {
        let app = request.name;
        self.operate(&app.clone(), "destroy", |begun| async move {
            operations::destroy(&begun, app).await
        })
        .await
    }

    async fn releases(&self, _: Caller, request: Releases) -> Result<ReleaseList, ApiError> {
        self.ask(|answer| Event::Releases {
            app: request.app,
            answer,
        })
        .await?
    }

    async fn rollback(
        &self,
        _: Caller,
        request: Rollback,
        progress: Progress,
    ) -> Result<Live, ApiError> {
        self.operate(&request.app.clone(), "rollback", |begun| async move {
            operations::rollback(&begun, request, &progress).await
        })
        .await
    }

    async fn env_list(&self, _: Caller, request: EnvList) -> Result<EnvVars, ApiError> {
        self.ask(|answer| Event::EnvList {
            app: request.app,
            answer,
        })
        .await?
    }

    async fn env_set(
        &self,
        _: Caller,
        request: EnvSet,
        progress: Progress,
    ) -> Result<Restarted, ApiError> {
        self.operate(&request.app.clone(), "env set", |begun| async move {
            operations::env_set(&begun, request, &progress).await
        })
        .await
    }

    async fn env_unset(
        &self,
        _: Caller,
        request: EnvUnset,
        progress: Progress,
    ) -> Result<Restarted, ApiError> {
        self.operate(&request.app.clone(), "env unset", |begun| async move {
            operations::env_unset(&begun, request, &progress).await
        })
        .await
    }

    async fn ps(&self, _: Caller, request: Ps) -> Result<ProcessList, ApiError> {
        self.ask(|answer| Event::Ps {
            app: request.app,
            answer,
        })
        .await?
    }

    async fn scale(
        &self,
        _: Caller,
        request: Scale,
        progress: Progress,
    ) -> Result<Scaled, ApiError> {
        self.operate(&request.app.clone(), "scale", |begun| async move {
            operations::scale(&begun, request, &progress).await
        })
        .await
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

    async fn restart(
        &self,
        _: Caller,
        request: Restart,
        progress: Progress,
    ) -> Result<Restarted, ApiError> {
        let app = request.app;
        self.operate(&app.clone(), "restart", |begun| async move {
            operations::restart(&begun, app, &progress).await
        })
        .await
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
