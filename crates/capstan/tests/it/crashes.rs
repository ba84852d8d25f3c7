//! Workers that crash on their own (a segfault in C code, os._exit) mid-request:
//! that request gets 502, nobody else notices, the worker is back within a
//! second; and a worker whose app no longer boots is retried with backoff.

use std::time::{Duration, Instant};

use crate::fixture::{app_copy, client, pid_serving, Server};
use crate::supervision::{wait_for_hold, with_event_log};

/// Requests sent alongside the crash, all of which must succeed.
const OTHERS: usize = 40;
/// How many of them are in flight at once.
const CLIENTS: usize = 4;

/// Sends `route` (which ends the worker mid-request) to a one-worker probe
/// while `OTHERS` requests arrive from `CLIENTS` clients, and checks the
/// outcome; returns how long after the 502 a new worker answered.
async fn crash_mid_request(route: &str) -> Duration {
    let app = app_copy("probe");
    let log = app.path().join("events.log");
    let server = Server::start(app.path(), with_event_log(&log, "1"));
    let http = client();
    let worker = pid_serving(&server).await;

    let crash = tokio::spawn(http.get(server.url(&format!("{route}?mark=crash"))).send());
    // The worker has the request (it wrote its mark just before crashing);
    // the others arrive now, while it dies and is replaced. Those sent ahead
    // to it (queued behind the crash) must run on its replacement.
    assert_eq!(
        wait_for_hold(&log, "crash", Duration::from_secs(10)).await,
        worker
    );
    let others: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let http = http.clone();
            let url = server.url("/environ");
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..OTHERS / CLIENTS {
                    let answer = match http.get(&url).send().await {
                        Ok(response) => response.status().as_u16(),
                        Err(_) => 0,
                    };
                    answers.push(answer);
                }
                answers
            })
        })
        .collect();

    let response = crash.await.unwrap().unwrap();
    let crashed_at = Instant::now();
    assert_eq!(response.status(), 502, "{}", server.stderr());
    let text = response.text().await.unwrap();
    assert!(text.contains("worker stopped"), "{text}");

    // Replaced: a different worker answers.
    let replaced_in = loop {
        if pid_serving(&server).await != worker {
            break crashed_at.elapsed();
        }
        assert!(
            crashed_at.elapsed() < Duration::from_secs(30),
            "{}",
            server.stderr()
        );
    };

    let mut statuses = Vec::new();
    for task in others {
        statuses.extend(task.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    eprintln!(
        "{route}: 502 for the crashing request, replaced in {replaced_in:.2?}, {ok}/{} others ok",
        statuses.len()
    );
    assert_eq!(ok, OTHERS, "statuses: {statuses:?}\n{}", server.stderr());
    replaced_in
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_segfaults_mid_request_gives_it_502_and_is_replaced_within_a_second() {
    let replaced_in = crash_mid_request("/segfault").await;
    assert!(replaced_in < Duration::from_secs(1), "{replaced_in:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_calls_os_exit_mid_request_gives_it_502_and_is_replaced_within_a_second() {
    let replaced_in = crash_mid_request("/exit").await;
    assert!(replaced_in < Duration::from_secs(1), "{replaced_in:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_worker_whose_app_no_longer_boots_is_retried_with_backoff_until_it_does() {
    let app = app_copy("probe");
    let log = app.path().join("events.log");
    let server = Server::start(app.path(), with_event_log(&log, "1"));
    let http = client();
    let worker = pid_serving(&server).await;

    // The code on disk breaks, then the running worker crashes.
    std::fs::write(app.path().join("FAIL_BOOT"), "").unwrap();
    let response = http.get(server.url("/segfault")).send().await.unwrap();
    assert_eq!(response.status(), 502);
    let broken_at = Instant::now();
    assert!(
        server.wait_for_stderr("FAIL_BOOT exists", Duration::from_secs(10)),
        "the boot traceback is shown\n{}",
        server.stderr()
    );
    // Over three seconds the boots back off (0.1, 0.2, 0.4, 0.8, 1.6 s...):
    // a handful of attempts, not a spin.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(broken_at.elapsed())).await;
    let attempts = server.stderr().matches("worker failed to start").count();
    assert!(
        (1..=6).contains(&attempts),
        "{attempts} boot attempts in 3 s\n{}",
        server.stderr()
    );
    assert!(server.stderr().contains("Traceback"), "{}", server.stderr());

    // Fixed on disk: the next attempt boots, and a request that waits gets it.
    std::fs::remove_file(app.path().join("FAIL_BOOT")).unwrap();
    let fixed_at = Instant::now();
    let next = pid_serving(&server).await;
    assert_ne!(next, worker);
    // The next attempt was at most one backoff (3.2 s at this point) away.
    assert!(
        fixed_at.elapsed() < Duration::from_secs(15),
        "{:?}",
        fixed_at.elapsed()
    );
}
