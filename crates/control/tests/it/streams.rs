//! Progress streams: lines arrive as the handler sends them, and every stream
//! ends with `done` or `failed`.

use std::collections::BTreeMap;

use capstan_control::api::*;
use capstan_control::{ClientError, ErrorKind, Event, ProgressStream};

use crate::support::{app, assert_api_error, post, raw, Daemon, PATIENCE};

/// Reads a whole stream: its lines and how it ended.
async fn read_all<D: serde::de::DeserializeOwned>(
    mut stream: ProgressStream<D>,
) -> (Vec<String>, Result<D, capstan_control::ApiError>) {
    let mut lines = Vec::new();
    loop {
        match tokio::time::timeout(PATIENCE, stream.next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(Event::Line(line)) => lines.push(line),
            Some(Event::Done(done)) => return (lines, Ok(done)),
            Some(Event::Failed(failed)) => return (lines, Err(failed)),
            None => panic!("a stream ended without done or failed"),
        }
    }
}

fn deploy(name: &str) -> Deploy {
    Deploy {
        app: app(name),
        old: "0".repeat(40),
        new: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678".into(),
        refname: "refs/heads/main".into(),
        git_env: Vec::new(),
    }
}

/// Follows blog's log from its last line: a stream that ends only when it is cut.
fn follow_blog() -> Logs {
    Logs {
        app: app("blog"),
        follow: true,
        process: None,
        lines: Some(1),
    }
}

#[tokio::test]
async fn deploy_streams_its_lines_and_ends_with_the_live_release() {
    let daemon = Daemon::start().await;
    let stream = daemon.client().await.stream(&deploy("blog")).await.unwrap();
    let (lines, done) = read_all(stream).await;
    assert_eq!(
        lines,
        [
            "receiving refs/heads/main at a1b2c3d",
            "blog: first step",
            "blog: second step"
        ]
    );
    let live = done.unwrap();
    assert_eq!((live.release, live.previous), (4, Some(2)));
    assert_eq!(live.commit, "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678");
    assert_eq!(live.url.as_deref(), Some("https://blog.example.com"));
    daemon.stop().await;
}

#[tokio::test]
async fn rollback_restart_scale_env_unset_and_logs_round_trip_their_done() {
    let daemon = Daemon::start().await;
    let client = daemon.client().await;

    let (lines, done) = read_all(
        client
            .stream(&Rollback {
                app: app("blog"),
                to: Some(1),
            })
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(lines.len(), 2);
    assert_eq!(done.unwrap().release, 1);

    let (_, done) = read_all(client.stream(&Restart { app: app("blog") }).await.unwrap()).await;
    assert_eq!(done.unwrap().release, Some(3));

    let counts = BTreeMap::from([("web".to_owned(), 4), ("tasks".to_owned(), 2)]);
    let (_, done) = read_all(
        client
            .stream(&Scale {
                app: app("blog"),
                counts: counts.clone(),
            })
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(done.unwrap().counts, counts);

    let (lines, done) = read_all(
        client
            .stream(&EnvUnset {
                app: app("blog"),
                names: vec!["DEBUG".into(), "SENTRY_DSN".into()],
            })
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(lines[0], "unset DEBUG SENTRY_DSN");
    assert_eq!(done.unwrap().release, None);

    let (lines, done) = read_all(
        client
            .stream(&Logs {
                app: app("blog"),
                follow: false,
                process: Some("cron.nightly".into()),
                lines: Some(3),
            })
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(lines[2], "10:00:02 cron.nightly | line 2");
    assert_eq!(done.unwrap().lines, 3);

    // No line at all: the stream is just its end.
    let (lines, done) = read_all(
        client
            .stream(&Logs {
                app: app("blog"),
                follow: false,
                process: None,
                lines: Some(0),
            })
            .await
            .unwrap(),
    )
    .await;
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(done.unwrap().lines, 0);
    daemon.stop().await;
}

#[tokio::test]
async fn each_line_reaches_the_client_while_the_operation_still_runs() {
    let daemon = Daemon::start().await;
    let mut stream = daemon
        .client()
        .await
        .stream(&deploy("waits"))
        .await
        .unwrap();
    // The handler now blocks until told to go on: had the server held the lines
    // back until the end, these reads would time out.
    for expected in ["receiving refs/heads/main at a1b2c3d", "waits: first step"] {
        let event = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("the line arrives before the operation ends")
            .unwrap();
        assert_eq!(event, Some(Event::Line(expected.to_owned())));
    }
    daemon.signals.go_on.notify_one();
    let (lines, done) = read_all(stream).await;
    assert_eq!(lines, ["waits: second step"]);
    assert_eq!(done.unwrap().release, 4);
    daemon.stop().await;
}

#[tokio::test]
async fn a_deploy_refused_before_any_line_is_a_409_with_who_holds_the_app() {
    let daemon = Daemon::start().await;
    let error = daemon
        .client()
        .await
        .stream(&deploy("busy"))
        .await
        .unwrap_err();
    assert_api_error(error, ErrorKind::Busy, &["a deploy of busy is in progress"]);

    let body = serde_json::to_string(&deploy("busy")).unwrap();
    let answer = raw(&daemon.socket, &post("deploy", &body)).await;
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_failure_after_the_first_line_ends_the_stream_with_failed_and_its_message() {
    let daemon = Daemon::start().await;
    let stream = daemon
        .client()
        .await
        .stream(&Restart { app: app("broken") })
        .await
        .unwrap();
    let mut lines = Vec::new();
    let error = stream
        .finish(|line| lines.push(line.to_owned()))
        .await
        .unwrap_err();
    assert_eq!(lines, ["broken: first step"]);
    assert_api_error(error, ErrorKind::Failed, &["release 3 is still serving"]);
    daemon.stop().await;
}

#[tokio::test]
async fn a_handler_that_panics_still_ends_its_stream_with_failed() {
    let daemon = Daemon::start().await;
    let stream = daemon
        .client()
        .await
        .stream(&Scale {
            app: app("panics"),
            counts: BTreeMap::new(),
        })
        .await
        .unwrap();
    let (lines, done) = read_all(stream).await;
    assert_eq!(lines, ["panics: first step"]);
    let error = done.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Internal);
    assert!(
        error.message.contains("while handling `scale`")
            && error.message.contains("a bug in capstan"),
        "{}",
        error.message
    );
    // The server goes on answering.
    daemon.client().await.call(&Status {}).await.unwrap();
    daemon.stop().await;
}

#[tokio::test]
async fn the_stream_is_newline_delimited_json_ending_in_done() {
    let daemon = Daemon::start().await;
    let body = serde_json::to_string(&Restart { app: app("blog") }).unwrap();
    let answer = raw(&daemon.socket, &post("restart", &body)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("application/x-ndjson"), "{answer}");
    let events: Vec<serde_json::Value> = answer
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events,
        [
            serde_json::json!({"line": "blog: first step"}),
            serde_json::json!({"line": "blog: second step"}),
            serde_json::json!({"done": {"app": "blog", "release": 3}}),
        ]
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_follower_sees_its_client_go_away() {
    let daemon = Daemon::start().await;
    let mut stream = daemon.client().await.stream(&follow_blog()).await.unwrap();
    let first = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, Some(Event::Line("10:00:00 web | line 0".into())));
    let gone = daemon.signals.client_gone.notified();
    drop(stream);
    tokio::time::timeout(PATIENCE, gone)
        .await
        .expect("the handler learns that its client went away");
    daemon.stop().await;
}

#[tokio::test]
async fn a_stream_in_progress_at_shutdown_still_ends_with_done() {
    let mut daemon = Daemon::start().await;
    let mut stream = daemon
        .client()
        .await
        .stream(&deploy("waits"))
        .await
        .unwrap();
    let first = tokio::time::timeout(PATIENCE, stream.next()).await.unwrap();
    assert!(matches!(first, Ok(Some(Event::Line(_)))), "{first:?}");
    daemon.begin_stop();
    daemon.signals.go_on.notify_one();
    let (lines, done) = read_all(stream).await;
    assert_eq!(lines, ["waits: first step", "waits: second step"]);
    assert_eq!(done.unwrap().release, 4);
    daemon.stop().await;
}

#[tokio::test]
async fn shutdown_cuts_a_stream_that_would_not_end_after_the_grace_period() {
    let daemon = Daemon::start().await;
    let mut stream = daemon.client().await.stream(&follow_blog()).await.unwrap();
    let first = tokio::time::timeout(PATIENCE, stream.next()).await.unwrap();
    assert!(matches!(first, Ok(Some(Event::Line(_)))), "{first:?}");
    let signals = daemon.signals.clone();
    let started = std::time::Instant::now();
    daemon.stop().await;
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(9),
        "the stream had its grace period: {waited:?}"
    );
    let error = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Cut("logs") | ClientError::Broken(_)),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("`capstan status` tells whether it"),
        "{error}"
    );
    tokio::time::timeout(PATIENCE, signals.client_gone.notified())
        .await
        .expect("the follower learns that its client is gone");
}

#[tokio::test]
async fn a_stream_that_follows_does_not_hold_up_other_calls() {
    let daemon = Daemon::start().await;
    let client = daemon.client().await;
    let mut follow = client.stream(&follow_blog()).await.unwrap();
    let first = tokio::time::timeout(PATIENCE, follow.next()).await.unwrap();
    assert!(matches!(first, Ok(Some(Event::Line(_)))), "{first:?}");
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.call(&Status {}).await })
        })
        .collect();
    for call in calls {
        tokio::time::timeout(PATIENCE, call)
            .await
            .expect("a call answers while a stream is open")
            .unwrap()
            .unwrap();
    }
    drop(follow);
    daemon.stop().await;
}
