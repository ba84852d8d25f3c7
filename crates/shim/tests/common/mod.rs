//! A real CPython running the real shim on one end of a socketpair, and the
//! test on the other, speaking frames through `capstan-wire`.
//!
//! Every wait is bounded by [`TIMEOUT`]: a broken shim fails the test with its
//! stderr instead of hanging it.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{IoSliceMut, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use capstan_wire::{decode, encode_frame, encode_request, Frame, Hello, Kind, RequestFlags};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// The longest any single wait in a test may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The test app every worker can serve (`testapp:app`, `testapp:counting_app()`, ...).
pub const TEST_APP: &str = include_str!("testapp.py");

/// The interpreter under test: `CAPSTAN_TEST_PYTHON` (e.g. a 3.8 build) or `python3`.
pub fn python() -> String {
    std::env::var("CAPSTAN_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Held while a child end of a socketpair is inheritable, so no other test's
/// child inherits it by accident.
static SPAWN: Mutex<()> = Mutex::new(());

/// How to start a worker.
pub struct Setup {
    pub app: String,
    pub threads: u32,
    /// Python modules (name without `.py`, source) written next to the test app.
    pub modules: Vec<(String, String)>,
    /// Pass `--static-mounts`: ask for the app's static folders in HELLO.
    pub static_mounts: bool,
}

impl Setup {
    pub fn app(app: &str) -> Self {
        Setup {
            app: app.to_owned(),
            threads: 1,
            modules: Vec::new(),
            static_mounts: false,
        }
    }

    pub fn threads(mut self, threads: u32) -> Self {
        self.threads = threads;
        self
    }

    pub fn static_mounts(mut self) -> Self {
        self.static_mounts = true;
        self
    }

    pub fn module(mut self, name: &str, source: &str) -> Self {
        self.modules.push((name.to_owned(), source.to_owned()));
        self
    }

    /// Starts the shim without reading anything from it.
    pub fn spawn(self) -> Worker {
        let dir = tempfile::tempdir().expect("temp dir");
        let shim = capstan_shim::write_to(dir.path()).expect("write the shim");
        fs::write(dir.path().join("testapp.py"), TEST_APP).expect("write the test app");
        for (name, source) in &self.modules {
            fs::write(dir.path().join(format!("{name}.py")), source).expect("write a module");
        }
        let log = File::create(dir.path().join("stderr.log")).expect("stderr log");
        let (sock, child_end) = UnixStream::pair().expect("socketpair");
        // A shim that stops reading must fail the test, not block it on a full socket.
        sock.set_write_timeout(Some(TIMEOUT)).expect("SO_SNDTIMEO");
        let child = {
            let _inheritable = SPAWN
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            fcntl(child_end.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
                .expect("clear FD_CLOEXEC");
            let child = Command::new(python())
                .arg(&shim)
                .args(["--fd", &child_end.as_raw_fd().to_string()])
                .args(["--app", &self.app])
                .args(["--threads", &self.threads.to_string()])
                .arg("--root")
                .arg(dir.path())
                .args(["--name", "test.1"])
                .args(self.static_mounts.then_some("--static-mounts"))
                .env("PYTHONUNBUFFERED", "1")
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .expect("spawn python");
            drop(child_end);
            child
        };
        Worker {
            dir,
            child,
            sock: Some(sock),
            buf: BytesMut::new(),
            stash: VecDeque::new(),
            fds: VecDeque::new(),
            scratch: vec![0; 256 * 1024],
        }
    }

    /// Starts the shim and reads its HELLO.
    pub fn start(self) -> (Worker, Hello) {
        let mut worker = self.spawn();
        let frame = worker.frame();
        assert_eq!(
            frame.kind,
            Kind::Hello,
            "expected HELLO, got {:?}: {}\nstderr:\n{}",
            frame.kind,
            String::from_utf8_lossy(&frame.payload),
            worker.stderr()
        );
        let hello = Hello::parse(&frame.payload).expect("a well-formed HELLO");
        (worker, hello)
    }
}

/// A worker serving `testapp:app` inline (one thread).
pub fn worker() -> Worker {
    Setup::app("testapp:app").start().0
}

/// A worker serving `testapp:app` with `threads` threads.
pub fn threaded_worker(threads: u32) -> Worker {
    Setup::app("testapp:app").threads(threads).start().0
}

/// The frames that answered one request.
#[derive(Debug, Default)]
pub struct Response {
    pub status_line: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The kinds of the frames, in order.
    pub kinds: Vec<Kind>,
    /// The APP_ERROR traceback, if the app failed.
    pub error: Option<String>,
    /// RESPONSE_FILE payloads, with the descriptor that came along.
    pub files: Vec<(capstan_wire::FileRef, RawFd)>,
}

impl Response {
    pub fn status(&self) -> &str {
        self.status_line.as_deref().expect("a RESPONSE_START")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }

    /// Asserts a plain successful response and returns its body as text.
    pub fn ok_text(&self) -> String {
        assert_eq!(self.error, None, "unexpected APP_ERROR");
        assert_eq!(
            self.kinds.last(),
            Some(&Kind::ResponseEnd),
            "{:?}",
            self.kinds
        );
        self.text()
    }
}

/// The environ the runtime would send for `method path?query`, with `extra` added.
pub fn environ(method: &str, target: &str, extra: &[(&str, &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = [
        ("REQUEST_METHOD", method),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", path),
        ("QUERY_STRING", query),
        ("RAW_URI", target),
        ("REQUEST_URI", target),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "8000"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "54321"),
        ("HTTP_HOST", "localhost:8000"),
        ("wsgi.url_scheme", "http"),
    ]
    .iter()
    .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect();
    for (key, value) in extra {
        env.retain(|(k, _)| k != key.as_bytes());
        env.push((key.as_bytes().to_vec(), value.to_vec()));
    }
    env
}

/// One running shim and the test's end of its socket.
pub struct Worker {
    pub dir: tempfile::TempDir,
    pub child: Child,
    sock: Option<UnixStream>,
    buf: BytesMut,
    /// Frames read while looking for another request's.
    stash: VecDeque<Frame>,
    /// Descriptors received with SCM_RIGHTS, in arrival order.
    fds: VecDeque<RawFd>,
    scratch: Vec<u8>,
}

impl Worker {
    fn sock(&self) -> &UnixStream {
        self.sock.as_ref().expect("the socket is open")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(self.path("stderr.log")).unwrap_or_default()
    }

    /// Sends one frame.
    pub fn send(&mut self, kind: Kind, request_id: u32, payload: &[u8]) {
        let mut out = BytesMut::new();
        encode_frame(kind, request_id, payload, &mut out);
        self.sock().write_all(&out).expect("write a frame");
    }

    /// A second handle on the test's end of the socket, for writing from another thread.
    pub fn writer(&self) -> UnixStream {
        self.sock().try_clone().expect("clone the socket")
    }

    /// Sends bytes as they are (frames encoded by the test).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.sock().write_all(bytes).expect("write frames");
    }

    /// Sends a REQUEST; with `body`, BODY frames of at most `chunk` bytes and a BODY_END follow.
    pub fn send_request(
        &mut self,
        id: u32,
        env: &[(Vec<u8>, Vec<u8>)],
        body: Option<(&[u8], usize)>,
    ) {
        let mut out = BytesMut::new();
        let flags = if body.is_some() {
            RequestFlags::HAS_BODY
        } else {
            RequestFlags::NONE
        };
        encode_request(
            id,
            flags,
            env.iter().map(|(k, v)| (&k[..], &v[..])),
            &mut out,
        )
        .expect("encode");
        if let Some((body, chunk)) = body {
            for piece in body.chunks(chunk) {
                encode_frame(Kind::Body, id, piece, &mut out);
            }
            encode_frame(Kind::BodyEnd, id, b"", &mut out);
        }
        self.sock().write_all(&out).expect("write a request");
    }

    /// GET `target` as request `id` and read the whole response.
    pub fn get(&mut self, id: u32, target: &str) -> Response {
        self.send_request(id, &environ("GET", target, &[]), None);
        self.response(id)
    }

    /// POST `body` (in BODY frames of at most `chunk` bytes) and read the whole response.
    pub fn post(&mut self, id: u32, target: &str, body: &[u8], chunk: usize) -> Response {
        let length = body.len().to_string();
        let env = environ(
            "POST",
            target,
            &[
                ("CONTENT_LENGTH", length.as_bytes()),
                ("CONTENT_TYPE", b"application/octet-stream"),
            ],
        );
        self.send_request(id, &env, Some((body, chunk)));
        self.response(id)
    }

    /// The next frame, whatever it is.
    pub fn frame(&mut self) -> Frame {
        if let Some(frame) = self.stash.pop_front() {
            return frame;
        }
        match self.read_frame(Instant::now() + TIMEOUT) {
            Read::Frame(frame) => frame,
            Read::Eof => panic!("the shim closed its socket\nstderr:\n{}", self.stderr()),
            Read::TimedOut => panic!("no frame within {TIMEOUT:?}\nstderr:\n{}", self.stderr()),
        }
    }

    /// The next frame of request `id` (others are kept for later).
    pub fn frame_for(&mut self, id: u32) -> Frame {
        if let Some(at) = self
            .stash
            .iter()
            .position(|f| f.request_id == id && f.kind != Kind::Pong)
        {
            return self.stash.remove(at).expect("present");
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.read_frame(deadline) {
                Read::Frame(frame) if frame.request_id == id && frame.kind != Kind::Pong => {
                    return frame
                }
                Read::Frame(other) => self.stash.push_back(other),
                Read::Eof => panic!("the shim closed its socket\nstderr:\n{}", self.stderr()),
                Read::TimedOut => panic!(
                    "no frame for request {id} within {TIMEOUT:?}\nstderr:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// The next PONG.
    pub fn pong(&mut self) -> Frame {
        if let Some(at) = self.stash.iter().position(|f| f.kind == Kind::Pong) {
            return self.stash.remove(at).expect("present");
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.read_frame(deadline) {
                Read::Frame(frame) if frame.kind == Kind::Pong => return frame,
                Read::Frame(other) => self.stash.push_back(other),
                Read::Eof => panic!("the shim closed its socket\nstderr:\n{}", self.stderr()),
                Read::TimedOut => panic!("no PONG within {TIMEOUT:?}\nstderr:\n{}", self.stderr()),
            }
        }
    }

    /// Reads the frames of request `id` up to its terminal frame (RESPONSE_END or APP_ERROR).
    pub fn response(&mut self, id: u32) -> Response {
        let mut response = Response::default();
        loop {
            let frame = self.frame_for(id);
            self.add(&mut response, frame);
            if matches!(
                response.kinds.last(),
                Some(Kind::ResponseEnd | Kind::AppError)
            ) {
                return response;
            }
        }
    }

    /// Adds one frame of a request to what is known of its response.
    pub fn add(&mut self, response: &mut Response, frame: Frame) {
        response.kinds.push(frame.kind);
        match frame.kind {
            Kind::ResponseStart => {
                let text = String::from_utf8(frame.payload.to_vec())
                    .expect("latin-1 test headers are ASCII");
                let mut fields = text.split('\0').map(str::to_owned);
                response.status_line = fields.next();
                let rest: Vec<String> = fields.collect();
                let pairs = rest.chunks_exact(2);
                assert!(
                    pairs.remainder().is_empty(),
                    "a header name without a value: {text:?}"
                );
                response.headers = pairs.map(|p| (p[0].clone(), p[1].clone())).collect();
            }
            Kind::ResponseBody => response.body.extend_from_slice(&frame.payload),
            Kind::ResponseFile => {
                let file = capstan_wire::FileRef::parse(&frame.payload).expect("a file reference");
                let fd = self
                    .fds
                    .pop_front()
                    .expect("a descriptor arrived with RESPONSE_FILE");
                response.files.push((file, fd));
            }
            Kind::AppError => {
                response.error = Some(String::from_utf8_lossy(&frame.payload).into_owned())
            }
            Kind::ResponseEnd => {}
            other => panic!("unexpected {other:?} in a response"),
        }
    }

    fn read_frame(&mut self, deadline: Instant) -> Read {
        loop {
            match decode(&mut self.buf) {
                Ok(Some(frame)) => return Read::Frame(frame),
                Ok(None) => {}
                Err(err) => panic!(
                    "the shim sent a bad frame: {err}\nstderr:\n{}",
                    self.stderr()
                ),
            }
            let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                return Read::TimedOut;
            };
            match self.recv(left) {
                Ok(0) => return Read::Eof,
                Ok(_) => {}
                Err(Errno::EAGAIN) => return Read::TimedOut,
                Err(Errno::EINTR) => {}
                Err(err) => panic!("recvmsg: {err}"),
            }
        }
    }

    /// One recvmsg: bytes into the buffer, descriptors into the queue.
    fn recv(&mut self, timeout: Duration) -> nix::Result<usize> {
        let sock = self.sock.as_ref().expect("the socket is open");
        sock.set_read_timeout(Some(timeout)).expect("SO_RCVTIMEO");
        let mut space = nix::cmsg_space!([RawFd; 8]);
        let mut iov = [IoSliceMut::new(&mut self.scratch)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let n = msg.bytes;
        for cmsg in msg.cmsgs().expect("control messages") {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                self.fds.extend(fds);
            }
        }
        self.buf.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }

    /// Waits until nothing more arrives for `quiet`; panics if a frame does.
    pub fn expect_silence(&mut self, quiet: Duration) {
        assert!(self.stash.is_empty(), "stashed frames: {:?}", self.stash);
        match self.read_frame(Instant::now() + quiet) {
            Read::TimedOut => {}
            Read::Frame(frame) => panic!("unexpected frame {frame:?}"),
            Read::Eof => panic!("unexpected end of file"),
        }
    }

    /// Closes the test's end of the socket: the runtime "died".
    pub fn close_socket(&mut self) {
        self.sock = None;
    }

    /// Waits for the shim to exit, at most [`TIMEOUT`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_within(TIMEOUT)
    }

    pub fn wait_exit_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the shim did not exit within {limit:?}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Creates `go-NAME`, releasing requests that wait for it.
    pub fn release(&self, name: &str) {
        fs::write(self.path(&format!("go-{name}")), b"go").expect("write the go file");
    }

    /// Waits for the file `name` in the app's directory to appear.
    pub fn wait_for_file(&self, name: &str) {
        wait_for_path(&self.path(name), &|| self.stderr());
    }
}

pub fn wait_for_path(path: &Path, stderr: &dyn Fn() -> String) {
    let deadline = Instant::now() + TIMEOUT;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {TIMEOUT:?}\nstderr:\n{}",
            path.display(),
            stderr()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

enum Read {
    Frame(Frame),
    Eof,
    TimedOut,
}

impl Drop for Worker {
    fn drop(&mut self) {
        for fd in self.fds.drain(..) {
            let _ = nix::unistd::close(fd);
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
