//! The control socket of a `capstan run`: `<app>/.capstan/control.sock`, how
//! `capstan reload` reaches the running process. One line in ("reload"), the
//! outcome out ("ok ..." or "error: ...").

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// The socket's path for an app's state folder.
pub fn socket_path(state: &Path) -> PathBuf {
    state.join("control.sock")
}

/// Binds the control socket, refusing to start a second capstan for the same app.
pub async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            bail!(
                "capstan is already running for this app (its control socket {} answers). \
                 Stop it first, or use `capstan reload` to load new code into it.",
                path.display()
            );
        }
        // Left behind by a capstan that was killed.
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("could not create the control socket {}", path.display()))?;
    // SECURITY: only this user may steer the server.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// A request for a new generation, handed to the loop that owns the live one.
pub struct Reload {
    reply: Option<oneshot::Sender<Result<String, String>>>,
}

impl Reload {
    /// A reload nobody waits on (SIGHUP); the log tells its outcome.
    pub fn unanswered() -> Self {
        Reload { reply: None }
    }

    /// Tells the asker what became of it: what serves now, or why the old
    /// generation still does.
    pub fn answer(self, outcome: Result<String, String>) {
        if let Some(reply) = self.reply {
            let _ = reply.send(outcome);
        }
    }
}

/// Answers control requests until the task is dropped; reloads go to `reloads`.
pub async fn serve(listener: UnixListener, reloads: mpsc::Sender<Reload>) {
    let own_uid = nix::unistd::getuid().as_raw();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // SECURITY: the peer must be this user (or root), whatever the file mode says.
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == own_uid || cred.uid() == 0 => {}
            _ => continue,
        }
        let reloads = reloads.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match line.trim() {
                "reload" => {
                    tracing::info!("reloading: starting a new generation from the current code");
                    let (reply, outcome) = oneshot::channel();
                    let sent = reloads.send(Reload { reply: Some(reply) }).await;
                    match (sent, outcome.await) {
                        (Ok(()), Ok(Ok(done))) => format!("ok: {done}\n"),
                        (Ok(()), Ok(Err(error))) => format!("error: {error}\n"),
                        _ => "error: capstan is stopping\n".to_owned(),
                    }
                }
                other => format!("error: unknown command {other:?}\n"),
            };
            let _ = write.write_all(answer.as_bytes()).await;
        });
    }
}

/// Sends `command` to the capstan running for the app whose state folder is `state`.
pub async fn request(state: &Path, command: &str) -> anyhow::Result<String> {
    let path = socket_path(state);
    let mut stream = UnixStream::connect(&path).await.map_err(|_| {
        anyhow::anyhow!(
            "no capstan is running for this app (nothing answers at {}). Start it with `capstan run`.",
            path.display()
        )
    })?;
    stream.write_all(format!("{command}\n").as_bytes()).await?;
    stream.shutdown().await?;
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer).await?;
    Ok(answer)
}
