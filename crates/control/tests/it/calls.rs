//! JSON calls: every request type there and back with its typed answer, and
//! errors arriving as typed errors with their message and status.

use std::collections::BTreeMap;

use capstan_control::answers::*;
use capstan_control::api::*;
use capstan_control::ErrorKind;

use crate::support::{app, assert_api_error, post, raw, Daemon};

#[tokio::test]
async fn status_answers_with_the_daemon_and_the_caller_it_saw() {
    let daemon = Daemon::start().await;
    let status = daemon.client().await.call(&Status {}).await.unwrap();
    assert_eq!(status.pid, std::process::id());
    assert_eq!(status.version, "test, caller uid 0");
    assert_eq!(status.root, std::path::Path::new("/srv/capstan"));
    daemon.stop().await;
}

#[tokio::test]
async fn apps_create_list_and_destroy_round_trip() {
    let daemon = Daemon::start().await;
    let client = daemon.client().await;
    let created = client
        .call(&AppsCreate {
            name: app("shop"),
            domains: vec!["shop.example.com".into(), "www.shop.example.com".into()],
        })
        .await
        .unwrap();
    assert_eq!(created.app.name, app("shop"));
    assert_eq!(
        created.app.domains,
        ["shop.example.com", "www.shop.example.com"]
    );
    assert_eq!(
        created.repo,
        std::path::Path::new("/srv/capstan/apps/shop/repo.git")
    );

    let list = client.call(&AppsList {}).await.unwrap();
    assert_eq!(list.apps.len(), 2);
    assert_eq!(list.apps[0].live_release, Some(3));
    assert_eq!(list.apps[1].state, AppState::New);

    let destroyed = client
        .call(&AppsDestroy { name: app("shop") })
        .await
        .unwrap();
    assert_eq!(destroyed.name, app("shop"));
    daemon.stop().await;
}

#[tokio::test]
async fn releases_env_and_ps_round_trip_their_listings() {
    let daemon = Daemon::start().await;
    let client = daemon.client().await;

    let releases = client.call(&Releases { app: app("blog") }).await.unwrap();
    let release = &releases.releases[0];
    assert_eq!(
        (release.number, release.status, release.live),
        (3, ReleaseStatus::Ready, true)
    );
    assert_eq!(release.built_at.to_rfc3339(), "2026-12-01T10:30:00+00:00");
    assert_eq!(release.build_secs, 4.25);

    let env = client.call(&EnvList { app: app("blog") }).await.unwrap();
    assert_eq!(env.vars["SECRET_KEY"], "s3cr=t with spaces");

    let ps = client
        .call(&Ps {
            app: Some(app("shop")),
        })
        .await
        .unwrap();
    let web = &ps.apps[0].processes[0];
    assert_eq!(ps.apps[0].app, app("shop"));
    assert_eq!(
        (web.pid, web.state, web.restarts, web.rss_bytes),
        (Some(4242), ProcessState::Running, 1, Some(31_000_000))
    );
    assert_eq!(
        ps.apps[0].cron[0]["last_run"]["status"],
        "exited with status 0"
    );
    let all = client.call(&Ps { app: None }).await.unwrap();
    assert_eq!(all.apps[0].app, app("blog"));
    daemon.stop().await;
}

#[tokio::test]
async fn an_unknown_app_reaches_the_client_as_its_typed_error_with_the_message() {
    let daemon = Daemon::start().await;
    let error = daemon
        .client()
        .await
        .call(&Releases {
            app: app("missing"),
        })
        .await
        .unwrap_err();
    assert_api_error(
        error,
        ErrorKind::UnknownApp,
        &["no app called \"missing\"", "capstan apps create missing"],
    );
    daemon.stop().await;
}

#[tokio::test]
async fn an_existing_app_is_a_409_with_its_message() {
    let daemon = Daemon::start().await;
    let answer = raw(
        &daemon.socket,
        &post(
            "apps/create",
            r#"{"name":"blog","domains":["blog.example.com"]}"#,
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");
    assert!(
        answer.contains(
            r#"{"error":{"kind":"already_exists","message":"an app called blog exists already"}}"#
        ),
        "{answer}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn an_invalid_app_name_is_refused_with_400_before_the_handler() {
    let daemon = Daemon::start().await;
    let answer = raw(
        &daemon.socket,
        &post("apps/create", r#"{"name":"../etc","domains":[]}"#),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains(r#""kind":"bad_request""#)
            && answer.contains("the `apps/create` request is not valid")
            && answer.contains("is not a valid app name"),
        "{answer}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_domain_with_a_scheme_or_an_env_name_with_a_dash_is_a_400_that_says_why() {
    let daemon = Daemon::start().await;
    let answer = raw(
        &daemon.socket,
        &post(
            "apps/create",
            r#"{"name":"shop","domains":["https://shop.example.com"]}"#,
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("remove the scheme"), "{answer}");

    let answer = raw(
        &daemon.socket,
        &post("env/set", r#"{"app":"shop","vars":{"MY-VAR":"1"}}"#),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("not a valid environment variable name"),
        "{answer}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn an_unknown_request_is_a_404_that_points_at_mismatched_versions() {
    let daemon = Daemon::start().await;
    let answer = raw(&daemon.socket, &post("apps/rename", "{}")).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        answer.contains(r#""kind":"not_found""#) && answer.contains("different versions"),
        "{answer}"
    );
    let answer = raw(
        &daemon.socket,
        "GET /v1/status HTTP/1.1\r\nHost: capstan\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("control requests are POST"), "{answer}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_body_past_one_mebibyte_is_refused() {
    let daemon = Daemon::start().await;
    let value = "x".repeat(1 << 20);
    let body = format!(r#"{{"app":"shop","vars":{{"BIG":"{value}"}}}}"#);
    let answer = raw(&daemon.socket, &post("env/set", &body)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:.200}");
    assert!(answer.contains("at most 1 MiB"), "{answer:.400}");
    daemon.stop().await;
}

#[tokio::test]
async fn env_values_keep_equals_signs_spaces_and_unicode() {
    let daemon = Daemon::start().await;
    let vars = BTreeMap::from([("DATABASE_URL".to_owned(), "a=b c ü".to_owned())]);
    let lines = std::sync::Mutex::new(Vec::new());
    let done = daemon
        .client()
        .await
        .stream(&EnvSet {
            app: app("shop"),
            vars,
        })
        .await
        .unwrap()
        .finish(|line| lines.lock().unwrap().push(line.to_owned()))
        .await
        .unwrap();
    assert_eq!(done.release, Some(3));
    assert_eq!(lines.lock().unwrap()[0], "set DATABASE_URL=a=b c ü");
    daemon.stop().await;
}
