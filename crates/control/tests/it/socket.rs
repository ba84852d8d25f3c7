//! The socket file: its mode, one daemon per root, stale files, no daemon, shutdown.

use std::os::unix::fs::PermissionsExt;

use capstan_control::api::Status;
use capstan_control::{bind, socket_path, Access, BindError, Client, ClientError};

use crate::support::Daemon;

#[tokio::test]
async fn the_socket_is_0660() {
    let daemon = Daemon::start().await;
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "{mode:o}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_second_bind_on_a_live_socket_says_which_daemon_has_it() {
    let daemon = Daemon::start().await;
    let error = bind(&daemon.socket, &Access::capstan_group())
        .await
        .unwrap_err();
    assert!(
        matches!(error, BindError::AlreadyRunning { .. }),
        "{error:?}"
    );
    let expected = format!(
        "a capstan daemon already runs on {} (pid {})",
        daemon.dir.path().display(),
        std::process::id()
    );
    assert!(error.to_string().starts_with(&expected), "{error}");
    // The first daemon still answers.
    daemon.client().await.call(&Status {}).await.unwrap();
    daemon.stop().await;
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(dir.path());
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let error = Client::connect(dir.path()).await.unwrap_err();
    assert!(matches!(error, ClientError::NotRunning { .. }), "{error:?}");

    let listener = bind(&path, &Access::capstan_group()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handler = crate::support::Fake {
        signals: Default::default(),
    };
    let server = tokio::spawn(capstan_control::serve(
        listener,
        Access::capstan_group(),
        handler,
        async {
            let _ = stopped.await;
        },
    ));
    let client = Client::connect(&path).await.unwrap();
    client.call(&Status {}).await.unwrap();
    stop.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(dir.path());
    std::fs::write(&path, "notes").unwrap();
    let error = bind(&path, &Access::capstan_group()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{} exists and is not a socket, so capstan will not remove it: move it away and \
             start the daemon again",
            path.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "notes");
}

#[tokio::test]
async fn no_daemon_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let error = Client::connect(dir.path()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "no capstan daemon is running on {}: start it with `capstan daemon` (with the same \
             --root or CAPSTAN_ROOT if it keeps its state elsewhere)",
            socket_path(dir.path()).display()
        )
    );
    let missing_root = dir.path().join("no-such-root");
    let error = Client::connect(&missing_root).await.unwrap_err();
    assert!(
        error.to_string().starts_with(&format!(
            "no capstan daemon is running on {}",
            socket_path(&missing_root).display()
        )),
        "{error}"
    );
}

#[tokio::test]
async fn shutdown_stops_serving_and_removes_the_socket() {
    let daemon = Daemon::start().await;
    let client = daemon.client().await;
    let socket = daemon.socket.clone();
    let dir = daemon.stop().await;
    assert!(dir.path().is_dir());
    assert!(!socket.exists(), "the socket file is removed");
    let error = client.call(&Status {}).await.unwrap_err();
    assert!(matches!(error, ClientError::NotRunning { .. }), "{error:?}");
}

#[tokio::test]
async fn shutdown_leaves_a_socket_that_replaced_its_own() {
    let daemon = Daemon::start().await;
    let socket = daemon.socket.clone();
    std::fs::remove_file(&socket).unwrap();
    let newer = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let _dir = daemon.stop().await;
    assert!(socket.exists(), "the newer socket is still there");
    drop(newer);
}
