//! The fixture: a daemon-side handler that answers from the request (so both
//! directions are checked), a served socket in a temp folder, and running this
//! test binary as another user.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use capstan_config::AppName;
use capstan_control::answers::*;
use capstan_control::api::*;
use capstan_control::{
    Access, ApiError, Caller, Client, ClientError, ErrorKind, Handler, Progress,
};
use chrono::{TimeZone, Utc};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// How long any one step may take before a test gives up (generous: 2 shared cores).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Asserts that `error` is the daemon's typed error of `kind`, with a message
/// that says each of `says`.
pub fn assert_api_error(error: ClientError, kind: ErrorKind, says: &[&str]) {
    let ClientError::Api(error) = error else {
        panic!("not an API error: {error}");
    };
    assert_eq!(error.kind, kind);
    for part in says {
        assert!(error.message.contains(part), "{}", error.message);
    }
}

/// Signals between a test and the handler.
#[derive(Default)]
pub struct Signals {
    /// The test read the first line; the handler may go on.
    pub go_on: Notify,
    /// The handler saw its client go away.
    pub client_gone: Notify,
}

/// The handler: answers from what it was asked; a few app names trigger errors.
/// `missing`: unknown app; `busy`: deploy refused at once; `broken`: fails after
/// a line; `panics`: panics after a line; `waits`: waits for `go_on` mid-stream.
pub struct Fake {
    pub signals: Arc<Signals>,
}

pub fn app(name: &str) -> AppName {
    AppName::new(name).unwrap()
}

fn summary(name: &AppName, domains: Vec<String>) -> AppSummary {
    AppSummary {
        name: name.clone(),
        domains,
        live_release: Some(3),
        state: AppState::Running,
    }
}

fn check(app: &AppName) -> Result<(), ApiError> {
    match app.as_str() {
        "missing" => Err(ApiError::unknown_app(app.as_str())),
        "busy" => Err(ApiError::busy(
            "a deploy of busy is in progress (release 4, pushed by uid 1000): wait for it to end",
        )),
        _ => Ok(()),
    }
}

/// The middle of every streamed call: a line, then the app's behaviour.
async fn steps(app: &AppName, progress: &Progress, signals: &Signals) -> Result<(), ApiError> {
    check(app)?;
    progress.line(format!("{app}: first step")).await;
    match app.as_str() {
        "broken" => Err(ApiError::failed(
            "the build command `flask translate compile` exited with status 1; release 3 is still serving",
        )),
        "panics" => panic!("a handler bug"),
        "waits" => {
            tokio::time::timeout(PATIENCE, signals.go_on.notified())
                .await
                .map_err(|_| ApiError::internal("the test never said go on"))?;
            progress.line(format!("{app}: second step")).await;
            Ok(())
        }
        _ => {
            progress.line(format!("{app}: second step")).await;
            Ok(())
        }
    }
}

fn live(app: AppName, release: u32) -> Live {
    Live {
        url: Some(format!("https://{app}.example.com")),
        app,
        release,
        commit: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678".into(),
        previous: Some(2),
    }
}

impl Handler for Fake {
    async fn status(&self, caller: Caller, _: Status) -> Result<DaemonStatus, ApiError> {
        Ok(DaemonStatus {
            version: format!("test, caller uid {}", caller.uid),
            pid: std::process::id(),
            root: PathBuf::from("/srv/capstan"),
            apps: 2,
            uptime_secs: 1.5,
        })
    }

    async fn apps_create(&self, _: Caller, r: AppsCreate) -> Result<AppCreated, ApiError> {
        if r.name.as_str() == "blog" {
            return Err(ApiError::new(
                capstan_control::ErrorKind::AlreadyExists,
                "an app called blog exists already",
            ));
        }
        Ok(AppCreated {
            repo: PathBuf::from(format!("/srv/capstan/apps/{}/repo.git", r.name)),
            app: summary(&r.name, r.domains),
        })
    }

    async fn apps_list(&self, _: Caller, _: AppsList) -> Result<AppList, ApiError> {
        Ok(AppList {
            apps: vec![
                summary(&app("blog"), vec!["blog.example.com".into()]),
                AppSummary {
                    name: app("shop"),
                    domains: vec![],
                    live_release: None,
                    state: AppState::New,
                },
            ],
        })
    }

    async fn apps_destroy(&self, _: Caller, r: AppsDestroy) -> Result<AppDestroyed, ApiError> {
        check(&r.name)?;
        Ok(AppDestroyed { name: r.name })
    }

    async fn releases(&self, _: Caller, r: Releases) -> Result<ReleaseList, ApiError> {
        check(&r.app)?;
        Ok(ReleaseList {
            releases: vec![ReleaseInfo {
                number: 3,
                commit: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678".into(),
                message: "Add comments".into(),
                built_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 30, 0).unwrap(),
                build_secs: 4.25,
                status: ReleaseStatus::Ready,
                live: true,
            }],
            app: r.app,
        })
    }

    async fn rollback(&self, _: Caller, r: Rollback, p: Progress) -> Result<Live, ApiError> {
        steps(&r.app, &p, &self.signals).await?;
        Ok(live(r.app, r.to.unwrap_or(2)))
    }

    async fn env_list(&self, _: Caller, r: EnvList) -> Result<EnvVars, ApiError> {
        check(&r.app)?;
        let vars = BTreeMap::from([("SECRET_KEY".to_owned(), "s3cr=t with spaces".to_owned())]);
        Ok(EnvVars { app: r.app, vars })
    }

    async fn env_set(&self, _: Caller, r: EnvSet, p: Progress) -> Result<Restarted, ApiError> {
        for name in r.vars.keys() {
            p.line(format!("set {name}={}", r.vars[name])).await;
        }
        steps(&r.app, &p, &self.signals).await?;
        Ok(Restarted {
            app: r.app,
            release: Some(3),
        })
    }

    async fn env_unset(&self, _: Caller, r: EnvUnset, p: Progress) -> Result<Restarted, ApiError> {
        p.line(format!("unset {}", r.names.join(" "))).await;
        steps(&r.app, &p, &self.signals).await?;
        Ok(Restarted {
            app: r.app,
            release: None,
        })
    }

    async fn ps(&self, _: Caller, r: Ps) -> Result<ProcessList, ApiError> {
        let name = r.app.unwrap_or_else(|| app("blog"));
        Ok(ProcessList {
            apps: vec![AppProcesses {
                app: name,
                processes: vec![ProcessInfo {
                    name: "web.1".into(),
                    pid: Some(4242),
                    state: ProcessState::Running,
                    release: Some(3),
                    uptime_secs: Some(61.0),
                    restarts: 1,
                    rss_bytes: Some(31_000_000),
                }],
                cron: serde_json::json!([{"name": "nightly", "last_run": {"status": "exited with status 0"}}]),
            }],
        })
    }

    async fn scale(&self, _: Caller, r: Scale, p: Progress) -> Result<Scaled, ApiError> {
        steps(&r.app, &p, &self.signals).await?;
        Ok(Scaled {
            app: r.app,
            counts: r.counts,
        })
    }

    async fn logs(&self, _: Caller, r: Logs, p: Progress) -> Result<LogsEnd, ApiError> {
        check(&r.app)?;
        let process = r.process.unwrap_or_else(|| "web".into());
        let lines = r.lines.unwrap_or(2);
        for n in 0..lines {
            p.line(format!("10:00:0{n} {process} | line {n}")).await;
        }
        if r.follow {
            p.closed().await;
            self.signals.client_gone.notify_one();
        }
        Ok(LogsEnd {
            lines: u64::from(lines),
        })
    }

    async fn restart(&self, _: Caller, r: Restart, p: Progress) -> Result<Restarted, ApiError> {
        steps(&r.app, &p, &self.signals).await?;
        Ok(Restarted {
            app: r.app,
            release: Some(3),
        })
    }

    async fn deploy(&self, _: Caller, r: Deploy, p: Progress) -> Result<Live, ApiError> {
        check(&r.app)?;
        p.line(format!("receiving {} at {}", r.refname, &r.new[..7]))
            .await;
        steps(&r.app, &p, &self.signals).await?;
        Ok(Live {
            commit: r.new,
            ..live(r.app, 4)
        })
    }
}

/// A served control socket in its own temp folder.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub signals: Arc<Signals>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Daemon {
    /// Binds and serves with the default group (`capstan`).
    pub async fn start() -> Daemon {
        Daemon::start_with(Access::capstan_group()).await
    }

    /// Binds and serves, letting in what `access` allows. The folder is 0755 so
    /// another user can reach the socket; its mode decides the rest.
    pub async fn start_with(access: Access) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = capstan_control::socket_path(dir.path());
        let listener = capstan_control::bind(&socket, &access).await.unwrap();
        let signals = Arc::new(Signals::default());
        let (stop, stopped) = oneshot::channel();
        let handler = Fake {
            signals: signals.clone(),
        };
        let task = tokio::spawn(capstan_control::serve(listener, access, handler, async {
            let _ = stopped.await;
        }));
        Daemon {
            dir,
            socket,
            signals,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.dir.path()).await.unwrap()
    }

    /// Resolves the server's `shutdown` future, without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
    }

    /// Stops the server, waits until `serve` returned, and hands back the folder.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.begin_stop();
        tokio::time::timeout(PATIENCE, self.task.take().unwrap())
            .await
            .expect("serve returns after shutdown")
            .unwrap();
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, placeholder)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Sends raw bytes on the socket and reads until the server closes the
/// connection (panicking after `PATIENCE`), as curl would.
pub async fn raw(socket: &Path, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer
}

/// A POST of `body` to `/v1/<name>`, closing after the answer.
pub fn post(name: &str, body: &str) -> String {
    format!(
        "POST /v1/{name} HTTP/1.1\r\nHost: capstan\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
