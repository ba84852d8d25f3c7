//! The pool against real CPython workers running the real shim, with a tiny
//! standard-library WSGI app: dispatch, queueing, cancellation, death, timeout.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use capstan_runtime::{
    CallError, Chunk, Pool, PoolSpec, PreparedRequest, RequestBody, SpilledBody,
};
use capstan_wire::{encode_request, RequestFlags};

const APP: &str = r#"
import os, time

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or "1"))
    if path == "/exit":
        os._exit(1)
    body = ("%s %d" % (path, os.getpid())).encode()
    if path == "/echo":
        body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"#;

fn spec(dir: &Path, workers: usize) -> PoolSpec {
    std::fs::write(dir.join("app.py"), APP).unwrap();
    let shim = capstan_shim::write_to(dir).unwrap();
    let mut spec = PoolSpec::new("test", "python3".into(), shim, "app:app", dir.to_owned());
    spec.workers = workers;
    spec.timeout = Duration::from_secs(10);
    spec.kill_grace = Duration::from_secs(2);
    spec
}

fn request(path: &str, query: &str, body: &[u8]) -> PreparedRequest {
    let mut frame = BytesMut::new();
    let env: [(&[u8], &[u8]); 3] = [
        (b"REQUEST_METHOD", b"GET"),
        (b"PATH_INFO", path.as_bytes()),
        (b"QUERY_STRING", query.as_bytes()),
    ];
    encode_request(0, RequestFlags::NONE, env, &mut frame).unwrap();
    PreparedRequest {
        frame,
        body: Bytes::copy_from_slice(body).into(),
    }
}

async fn body_of(pool: &Pool, path: &str, query: &str, body: &[u8]) -> Result<Vec<u8>, CallError> {
    let mut response = pool.call(request(path, query, body)).await?;
    assert_eq!(response.start.status, 200);
    let mut out = Vec::new();
    while let Some(chunk) = response.body.next().await {
        match chunk? {
            Chunk::Bytes(bytes) => out.extend_from_slice(&bytes),
            Chunk::File(..) => panic!("no files here"),
        }
    }
    Ok(out)
}

#[tokio::test]
async fn requests_abandoned_while_queued_or_in_flight_do_not_leak_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::start(spec(dir.path(), 1)).await.unwrap();
    // One request holds the only worker; others queue behind it and give up.
    let busy = spawn_call(&pool, "/sleep", "0.5");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..5 {
        let abandoned =
            tokio::time::timeout(Duration::from_millis(20), pool.call(request("/", "", b""))).await;
        assert!(abandoned.is_err(), "it should still be queued");
    }
    // And one that gives up after being sent.
    let sent = tokio::time::timeout(
        Duration::from_millis(50),
        body_of(&pool, "/sleep", "0.3", b""),
    )
    .await;
    assert!(sent.is_err());
    busy.await.unwrap().unwrap();
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), body_of(&pool, "/", "", b""))
        .await
        .expect("the worker is free again")
        .unwrap();
    assert!(answer.starts_with(b"/ "));
    assert!(started.elapsed() < Duration::from_secs(5));
    pool.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_large_body_arrives_whole_in_several_frames() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::start(spec(dir.path(), 1)).await.unwrap();
    let body: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let echoed = body_of(&pool, "/echo", "", &body).await.unwrap();
    assert_eq!(echoed.len(), body.len());
    assert!(echoed == body);
    pool.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_body_in_a_file_is_streamed_to_the_worker_whole() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::start(spec(dir.path(), 2)).await.unwrap();
    let body: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&body).unwrap();
    let spilled = RequestBody::File(SpilledBody::new(file, body.len() as u64));
    // Several requests share the one file, as retries on another worker would.
    let calls = (0..3).map(|_| {
        let pool = pool.clone();
        let mut request = request("/echo", "", b"");
        request.body = spilled.clone();
        async move {
            let mut response = pool.call(request).await.unwrap();
            let mut out = Vec::new();
            while let Some(chunk) = response.body.next().await {
                match chunk.unwrap() {
                    Chunk::Bytes(bytes) => out.extend_from_slice(&bytes),
                    Chunk::File(..) => panic!("no files here"),
                }
            }
            out
        }
    });
    for echoed in futures_join_all(calls).await {
        assert_eq!(echoed.len(), body.len());
        assert!(echoed == body);
    }
    // The worker still serves after streamed bodies.
    assert_eq!(
        body_of(&pool, "/echo", "", b"after").await.unwrap(),
        b"after"
    );
    pool.stop(Duration::from_secs(5)).await;
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_worker_that_dies_mid_request_gives_worker_lost_and_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::start(spec(dir.path(), 1)).await.unwrap();
    let before = pool.worker_pids();
    let lost = body_of(&pool, "/exit", "", b"").await;
    assert!(matches!(lost, Err(CallError::WorkerLost)), "{lost:?}");
    assert_replaced(&pool, &before).await;
    pool.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_request_past_the_timeout_gets_timeout_and_its_worker_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), 1);
    spec.timeout = Duration::from_millis(300);
    let pool = Pool::start(spec).await.unwrap();
    let before = pool.worker_pids();
    let slow = body_of(&pool, "/sleep", "5", b"").await;
    assert!(matches!(slow, Err(CallError::Timeout(_))), "{slow:?}");
    assert_replaced(&pool, &before).await;
    pool.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_full_queue_answers_queue_full_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), 1);
    spec.max_queue = 1;
    spec.pipeline = 0;
    let pool = Pool::start(spec).await.unwrap();
    let busy = spawn_call(&pool, "/sleep", "0.5");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queued = spawn_call(&pool, "/", "");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = pool.call(request("/", "", b"")).await;
    assert!(
        matches!(refused, Err(CallError::QueueFull(1))),
        "{:?}",
        refused.err()
    );
    busy.await.unwrap().unwrap();
    queued.await.unwrap().unwrap();
    pool.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_busy_worker_is_sent_up_to_pipeline_requests_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), 1);
    spec.max_queue = 0;
    spec.pipeline = 2;
    let pool = Pool::start(spec).await.unwrap();
    // One runs and two wait in the worker: no request waits in the pool's queue.
    let held: Vec<_> = (0..3).map(|_| spawn_call(&pool, "/sleep", "0.3")).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = pool.call(request("/", "", b"")).await;
    assert!(
        matches!(refused, Err(CallError::QueueFull(0))),
        "{:?}",
        refused.err()
    );
    for handle in held {
        handle.await.unwrap().unwrap();
    }
    pool.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn requests_queued_behind_one_that_kills_the_worker_run_on_its_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::start(spec(dir.path(), 1)).await.unwrap();
    let before = pool.worker_pids();
    let first = spawn_call(&pool, "/sleep", "0.2");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fatal = spawn_call(&pool, "/exit", "");
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Sent to the same worker behind the two, before either finished.
    let queued: Vec<_> = (0..5).map(|_| spawn_call(&pool, "/", "")).collect();
    assert!(first.await.unwrap().is_ok());
    let lost = fatal.await.unwrap();
    assert!(matches!(lost, Err(CallError::WorkerLost)), "{lost:?}");
    assert_ran_on_a_new_worker(queued, &before).await;
    pool.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn time_spent_queued_in_a_worker_does_not_count_toward_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), 1);
    spec.timeout = Duration::from_secs(1);
    let pool = Pool::start(spec).await.unwrap();
    let started = Instant::now();
    // 3 x 0.6 s on one worker: the last ends 1.8 s in, each within its second.
    let calls: Vec<_> = (0..3).map(|_| spawn_call(&pool, "/sleep", "0.6")).collect();
    for handle in calls {
        handle.await.unwrap().expect("no timeout");
    }
    assert!(started.elapsed() >= Duration::from_millis(1800));
    pool.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn requests_queued_behind_a_timed_out_one_run_on_the_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), 1);
    spec.timeout = Duration::from_secs(1);
    let pool = Pool::start(spec).await.unwrap();
    let before = pool.worker_pids();
    let stuck = spawn_call(&pool, "/sleep", "30");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let queued: Vec<_> = (0..3).map(|_| spawn_call(&pool, "/", "")).collect();
    let timed_out = stuck.await.unwrap();
    assert!(
        matches!(timed_out, Err(CallError::Timeout(_))),
        "{timed_out:?}"
    );
    assert_ran_on_a_new_worker(queued, &before).await;
    pool.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_app_that_fails_to_import_is_a_boot_error_with_its_traceback() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), 2);
    std::fs::write(
        dir.path().join("broken.py"),
        "raise RuntimeError('boom at import')\n",
    )
    .unwrap();
    spec.target = "broken:app".into();
    let error = Pool::start(spec).await.err().expect("boot fails");
    let text = error.to_string();
    assert!(
        text.contains("boom at import") && text.contains("Traceback"),
        "{text}"
    );
}

/// Calls `path?query` in a task of its own, so several can be in flight.
fn spawn_call(
    pool: &Pool,
    path: &'static str,
    query: &'static str,
) -> tokio::task::JoinHandle<Result<Vec<u8>, CallError>> {
    let pool = pool.clone();
    tokio::spawn(async move { body_of(&pool, path, query, b"").await })
}

/// Each call answered "/ PID" from a worker that is not one of `before`.
async fn assert_ran_on_a_new_worker(
    calls: Vec<tokio::task::JoinHandle<Result<Vec<u8>, CallError>>>,
    before: &[u32],
) {
    for call in calls {
        let answer = call.await.unwrap().expect("the replacement runs it");
        let pid: u32 = String::from_utf8_lossy(&answer[2..]).parse().unwrap();
        assert!(!before.contains(&pid), "ran on the dead worker {pid}");
    }
}

/// A new worker (not one of `before`) answers within 10 s.
async fn assert_replaced(pool: &Pool, before: &[u32]) {
    let answer = tokio::time::timeout(Duration::from_secs(10), body_of(pool, "/", "", b""))
        .await
        .expect("a new worker answers")
        .unwrap();
    assert!(answer.starts_with(b"/ "));
    assert_ne!(pool.worker_pids(), before);
}
