//! Request bodies: small ones stay in memory, large ones are spilled to an
//! unlinked temporary file in the app's state folder and streamed from it to
//! the worker (or the proxied command), so capstan's memory stays bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::fixture::{app_copy, app_with, Opts, Server};

const MIB: usize = 1 << 20;

/// The highest resident memory a process has had so far (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

/// Block `n` of a test body: 1 MiB that no other block repeats.
fn block(n: u64) -> Bytes {
    static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let base = BASE.get_or_init(|| (0..MIB).map(|i| (i % 251) as u8).collect());
    let mut data = base.clone();
    for (i, byte) in n.to_le_bytes().iter().enumerate() {
        data[i * 4096] = *byte;
    }
    Bytes::from(data)
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// A client that lets a large upload take its time (the fixture's stops at 30 s).
fn patient_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

/// The probe with a larger body limit and request timeout.
fn probe_accepting(max_body_size: &str) -> tempfile::TempDir {
    let app = app_copy("probe");
    std::fs::write(
        app.path().join("capstan.toml"),
        format!(
            "name = \"probe\"\n\n[web]\nwsgi = \"app:app\"\ntimeout = \"120s\"\n\n[http]\nmax_body_size = \"{max_body_size}\"\n"
        ),
    )
    .unwrap();
    app
}

/// What capstan has open in `dir`, by descriptor target.
/// Waits (at most 10 s) until `pid` holds no deleted file of `dir` open:
/// every spilled body's file closed with its request.
fn wait_until_no_spilled_file(pid: u32, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_in(pid, dir).iter().any(|f| f.ends_with("(deleted)")) {
        assert!(Instant::now() < deadline, "{:?}", open_in(pid, dir));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn open_in(pid: u32, dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap().display().to_string();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .map(|target| target.display().to_string())
                .filter(|target| target.starts_with(&dir))
                .collect()
        })
        .unwrap_or_default()
}

/// The names in a folder, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_streamed_upload_reaches_the_app_whole_while_capstans_memory_stays_bounded() {
    const BLOCKS: u64 = 1024;
    let app = probe_accepting("2GiB");
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let before = peak_rss(server.pid());

    // The test hashes what it sends as it sends it, in 1 MiB blocks, with no
    // Content-Length (chunked), so capstan cannot know the size in advance.
    let hasher = Arc::new(Mutex::new(ring::digest::Context::new(
        &ring::digest::SHA256,
    )));
    let body = futures_util::stream::iter(0..BLOCKS).map({
        let hasher = Arc::clone(&hasher);
        move |n| {
            let block = block(n);
            hasher.lock().unwrap().update(&block);
            Ok::<_, std::io::Error>(block)
        }
    });
    let started = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(240),
        patient_client()
            .post(server.url("/sha256"))
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    )
    .await
    .expect("a 1 GiB loopback upload finishes in time")
    .unwrap();
    assert_eq!(response.status(), 200, "{}", server.stderr());
    let answer: serde_json::Value = response.json().await.unwrap();
    let elapsed = started.elapsed();
    let expected = hex(hasher.lock().unwrap().clone().finish().as_ref());

    assert_eq!(answer["length"].as_u64(), Some(BLOCKS * MIB as u64));
    assert_eq!(answer["sha256"].as_str(), Some(expected.as_str()));
    let peak = peak_rss(server.pid());
    eprintln!(
        "1 GiB upload: {elapsed:.1?}, capstan peak RSS {} MiB (before the upload {} MiB)",
        peak >> 20,
        before >> 20
    );
    assert!(
        peak < 200 * MIB as u64,
        "capstan's peak RSS reached {} MiB",
        peak >> 20
    );
    // The spilled body's file closed with the request.
    let state = app.path().join(".capstan");
    wait_until_no_spilled_file(server.pid(), &state);
}

#[test]
fn a_large_body_is_held_in_an_unlinked_file_and_a_small_one_in_memory() {
    let app = probe_accepting("100MiB");
    let server = Server::start(app.path(), Opts::args(&["--workers", "1"]));
    let state = app.path().join(".capstan");
    let names_before = names_in(&state);

    // A small body still works, and no file is involved.
    let small = crate::fixture::raw_exchange(
        server.http,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        Duration::from_secs(5),
    );
    let small = String::from_utf8_lossy(&small);
    assert!(small.starts_with("HTTP/1.1 200"), "{small}");
    assert!(small.ends_with("\r\n\r\nhello"), "{small}");

    // A 4 MiB body, sent in two parts: while capstan holds the first 3 MiB, it
    // has them in a file that no longer has a name.
    let body: Vec<u8> = (0..4 * MIB).map(|i| (i % 253) as u8).collect();
    let mut stream = TcpStream::connect(server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..3 * MIB]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let held = loop {
        let open = open_in(server.pid(), &state);
        if let Some(file) = open.iter().find(|f| f.ends_with("(deleted)")) {
            break file.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no spilled body in {}: {open:?}",
            state.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        names_in(&state),
        names_before,
        "the spilled body ({held}) must have no name in the folder"
    );

    stream.write_all(&body[3 * MIB..]).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let json: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["length"].as_u64(), Some(body.len() as u64));
    assert_eq!(json["sha256"].as_str(), Some(sha256(&body).as_str()));

    // Once answered, the file is closed: nothing open, nothing left behind.
    wait_until_no_spilled_file(server.pid(), &state);
    assert_eq!(names_in(&state), names_before);
}

/// A command web process that answers POSTs with the SHA-256 and length of
/// the body it read (by Content-Length, as many simple servers do).
const HASHING_SERVER: &str = r#"
import hashlib, http.server, os

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        left = int(self.headers.get("Content-Length", "0"))
        digest = hashlib.sha256()
        length = 0
        while left:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            digest.update(chunk)
            length += len(chunk)
            left -= len(chunk)
        body = ("%s %d" % (digest.hexdigest(), length)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

#[tokio::test]
async fn a_spilled_chunked_body_is_proxied_to_a_command_whole_with_its_length() {
    let app = app_with(&[
        (
            "capstan.toml",
            "[web]\ncommand = \"python3 hashing_server.py\"\n",
        ),
        ("hashing_server.py", HASHING_SERVER),
    ]);
    let server = Server::start(app.path(), Opts::default());
    let blocks: Vec<Bytes> = (0..5).map(block).collect();
    let expected = sha256(&blocks.concat());
    let body = futures_util::stream::iter(blocks.into_iter().map(Ok::<_, std::io::Error>));
    let response = patient_client()
        .post(server.url("/"))
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", server.stderr());
    assert_eq!(
        response.text().await.unwrap(),
        format!("{expected} {}", 5 * MIB)
    );
}
