//! A pool's workers and a supervised process started as another user: real
//! CPython workers as `nobody`. These run as root, as CI does.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use bytes::BytesMut;
use capstan_runtime::{Chunk, Identity, Pool, PoolSpec, PreparedRequest, ProcessSpec, Supervised};
use capstan_wire::{encode_request, RequestFlags};

const APP: &str = r#"
import os

def app(environ, start_response):
    body = ("%d %d %s" % (os.getuid(), os.getgid(), os.environ["HOME"])).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"#;

fn nobody() -> Identity {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests switch users, so they run as root (as CI does)"
    );
    let user = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    Identity {
        user: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups: vec![user.gid.as_raw()],
        home: user.dir,
    }
}

/// A temp folder `nobody` may read (tempdir makes them 0700).
fn readable_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[tokio::test]
async fn a_pools_workers_run_as_the_identity_it_is_given() {
    let dir = readable_dir();
    std::fs::write(dir.path().join("app.py"), APP).unwrap();
    let shim = capstan_shim::write_to(dir.path()).unwrap();
    // The system interpreter: one under root's home would not run as nobody.
    let mut spec = PoolSpec::new(
        "test",
        "/usr/bin/python3".into(),
        shim,
        "app:app",
        dir.path().to_owned(),
    );
    spec.workers = 2;
    spec.identity = Some(nobody());
    let pool = Pool::start(spec).await.unwrap();
    for pid in pool.worker_pids() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert_eq!(
            uid_line.split_whitespace().collect::<Vec<_>>(),
            ["Uid:", "65534", "65534", "65534", "65534"],
            "real, effective, saved and filesystem uid of worker {pid}"
        );
    }
    let mut frame = BytesMut::new();
    let env: [(&[u8], &[u8]); 2] = [(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/")];
    encode_request(0, RequestFlags::NONE, env, &mut frame).unwrap();
    let request = PreparedRequest {
        frame,
        body: bytes::Bytes::new().into(),
    };
    let mut response = pool.call(request).await.unwrap();
    let mut body = Vec::new();
    while let Some(chunk) = response.body.next().await {
        if let Chunk::Bytes(bytes) = chunk.unwrap() {
            body.extend_from_slice(&bytes);
        }
    }
    let home = nobody().home;
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!("65534 65534 {}", home.display())
    );
    pool.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_supervised_process_runs_as_the_identity_it_is_given() {
    let dir = readable_dir();
    let out = tempfile::tempdir().unwrap();
    std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let answer = out.path().join("id");
    let process = Supervised::start_as(
        ProcessSpec {
            name: "tasks".into(),
            command: format!(
                "id -u > {0}.tmp; mv {0}.tmp {0}; exec sleep 60",
                answer.display()
            ),
            cwd: dir.path().to_owned(),
            env: vec![],
            kill_grace: Duration::from_secs(2),
            log: capstan_runtime::Log::Capstan,
        },
        Some(nobody()),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let id = loop {
        if let Ok(text) = std::fs::read_to_string(&answer) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the process never wrote its id"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(id, "65534\n");
    process.stop().await;
}
