//! The shim as a process: boot, HELLO or BOOT_ERROR, threads, PING, CANCEL,
//! SHUTDOWN and the runtime going away, against real CPython.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use capstan_wire::{encode_frame, encode_request, Kind, RequestFlags};
use common::{environ, python, threaded_worker, worker, Setup, Worker};

use Kind::{ResponseBody, ResponseEnd, ResponseStart};

fn python_version() -> String {
    let out = Command::new(python())
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .expect("run python");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn hello_reports_the_pid_the_python_version_and_the_thread_count() {
    let (w, hello) = Setup::app("testapp:app").start();
    assert_eq!(hello.pid, w.child.id());
    assert_eq!(hello.python, python_version());
    assert_eq!(hello.threads, 1);
    let (_, hello) = Setup::app("testapp:app").threads(4).start();
    assert_eq!(hello.threads, 4);
}

/// Starts a worker that must fail to boot; returns the BOOT_ERROR text after
/// checking the exit status and that the traceback also went to stderr.
fn boot_error(setup: Setup) -> String {
    let mut w = setup.spawn();
    let frame = w.frame();
    assert_eq!(
        frame.kind,
        Kind::BootError,
        "{}",
        String::from_utf8_lossy(&frame.payload)
    );
    assert_eq!(frame.request_id, 0);
    let traceback = String::from_utf8(frame.payload.to_vec()).unwrap();
    assert!(
        traceback.starts_with("Traceback (most recent call last)"),
        "{traceback}"
    );
    let status = w.wait_exit();
    assert_eq!(
        status.code(),
        Some(capstan_shim::EXIT_BOOT_ERROR),
        "{status:?}"
    );
    let last_line = traceback.trim_end().lines().last().unwrap().to_owned();
    assert!(w.stderr().contains(&last_line), "stderr:\n{}", w.stderr());
    traceback
}

#[test]
fn an_import_error_in_the_app_is_a_boot_error_with_exit_status_3() {
    let traceback =
        boot_error(Setup::app("broken:app").module("broken", "import no_such_module_here\n"));
    assert!(traceback.contains("ModuleNotFoundError: No module named 'no_such_module_here'"));
    assert!(
        traceback.contains("broken.py"),
        "the app's own frame is in it"
    );
}

#[test]
fn a_missing_app_module_is_a_boot_error() {
    let traceback = boot_error(Setup::app("nowhere:app"));
    assert!(
        traceback.contains("No module named 'nowhere'"),
        "{traceback}"
    );
}

#[test]
fn a_syntax_error_in_the_app_is_a_boot_error_showing_the_line() {
    let source = "x = 1\ndef app(environ, start_response:\n    pass\n";
    let traceback = boot_error(Setup::app("broken:app").module("broken", source));
    assert!(traceback.contains("SyntaxError"), "{traceback}");
    assert!(traceback.contains("line 2"), "{traceback}");
}

#[test]
fn a_missing_attribute_is_a_boot_error() {
    let traceback = boot_error(Setup::app("testapp:no_such_app"));
    assert!(traceback.contains("AttributeError"), "{traceback}");
    assert!(traceback.contains("no_such_app"), "{traceback}");
}

#[test]
fn an_app_that_is_not_callable_is_a_boot_error() {
    let traceback = boot_error(Setup::app("broken:app").module("broken", "app = 42\n"));
    assert!(
        traceback.contains("TypeError: --app broken:app is a int, not a WSGI callable"),
        "{traceback}"
    );
}

#[test]
fn system_exit_during_import_is_a_boot_error() {
    let traceback =
        boot_error(Setup::app("broken:app").module("broken", "import sys\nsys.exit(5)\n"));
    assert!(traceback.contains("SystemExit: 5"), "{traceback}");
}

#[test]
fn a_factory_that_raises_is_a_boot_error() {
    let source = "def create_app():\n    raise RuntimeError('no config')\n";
    let traceback = boot_error(Setup::app("broken:create_app()").module("broken", source));
    assert!(traceback.contains("RuntimeError: no config"), "{traceback}");
}

#[test]
fn ping_is_answered_with_pong() {
    let mut w = worker();
    w.send(Kind::Ping, 0, b"");
    let pong = w.pong();
    assert_eq!((pong.request_id, pong.payload.len()), (0, 0));
}

#[test]
fn ping_is_answered_while_every_thread_is_busy() {
    let mut w = threaded_worker(2);
    for (id, name) in [(1, "a"), (2, "b")] {
        w.send_request(
            id,
            &environ("GET", &format!("/wait?name={name}"), &[]),
            None,
        );
    }
    w.wait_for_file("started-a");
    w.wait_for_file("started-b");
    w.send(Kind::Ping, 0, b"");
    assert_eq!(w.pong().kind, Kind::Pong);
    w.release("a");
    w.release("b");
    assert_eq!(w.response(1).ok_text(), "released a");
    assert_eq!(w.response(2).ok_text(), "released b");
}

#[test]
fn four_threads_serve_four_sleeping_requests_at_once() {
    let mut w = threaded_worker(4);
    let started = Instant::now();
    for id in 1..=4 {
        w.send_request(id, &environ("GET", "/sleep?seconds=1.5", &[]), None);
    }
    for id in 1..=4 {
        assert_eq!(w.response(id).ok_text(), "slept");
    }
    let elapsed = started.elapsed();
    // One after another would take 6 s.
    assert!(elapsed < Duration::from_millis(4500), "took {elapsed:?}");
}

#[test]
fn threads_receive_interleaved_bodies_intact() {
    let mut w = threaded_worker(2);
    let one = vec![b'1'; 300_000];
    let two = vec![b'2'; 2_000_000];
    let mut out = bytes::BytesMut::new();
    for (id, body) in [(1, &one), (2, &two)] {
        let length = body.len().to_string();
        let env = environ("POST", "/body", &[("CONTENT_LENGTH", length.as_bytes())]);
        encode_request(
            id,
            RequestFlags::HAS_BODY,
            env.iter().map(|(k, v)| (&k[..], &v[..])),
            &mut out,
        )
        .unwrap();
    }
    for (a, b) in one.chunks(100_000).zip(two.chunks(700_000)) {
        encode_frame(Kind::Body, 2, b, &mut out);
        encode_frame(Kind::Body, 1, a, &mut out);
    }
    encode_frame(Kind::BodyEnd, 2, b"", &mut out);
    encode_frame(Kind::BodyEnd, 1, b"", &mut out);
    w.send_raw(&out);
    assert!(w.response(1).body == one);
    assert!(w.response(2).body == two);
}

/// Streams /endless, cancels it after the first chunk, and checks that the
/// response ends and close() ran.
fn cancel_stops_the_stream(mut w: Worker) {
    w.send_request(5, &environ("GET", "/endless?name=endless", &[]), None);
    assert_eq!(w.frame_for(5).kind, ResponseStart);
    assert_eq!(w.frame_for(5).kind, ResponseBody);
    w.send(Kind::Cancel, 5, b"");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let frame = w.frame_for(5);
        match frame.kind {
            ResponseBody => assert!(Instant::now() < deadline, "still streaming after CANCEL"),
            ResponseEnd => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    w.wait_for_file("closed-endless");
    assert_eq!(
        w.get(6, "/hello").ok_text(),
        "hello",
        "the worker serves on"
    );
}

#[test]
fn cancel_stops_a_streaming_generator_and_runs_close_inline() {
    cancel_stops_the_stream(worker());
}

#[test]
fn cancel_stops_a_streaming_generator_and_runs_close_on_a_thread() {
    cancel_stops_the_stream(threaded_worker(2));
}

#[test]
fn cancel_of_a_request_whose_body_never_finished_ends_it_at_once() {
    let mut w = worker();
    let env = environ("POST", "/body", &[("CONTENT_LENGTH", b"100")]);
    let mut out = bytes::BytesMut::new();
    encode_request(
        3,
        RequestFlags::HAS_BODY,
        env.iter().map(|(k, v)| (&k[..], &v[..])),
        &mut out,
    )
    .unwrap();
    encode_frame(Kind::Body, 3, b"only part of it", &mut out);
    encode_frame(Kind::Cancel, 3, b"", &mut out);
    w.send_raw(&out);
    let response = w.response(3);
    assert_eq!(response.kinds, [ResponseEnd]);
    assert_eq!(w.get(4, "/hello").ok_text(), "hello");
}

#[test]
fn cancel_of_an_unknown_request_is_ignored() {
    let mut w = worker();
    w.send(Kind::Cancel, 42, b"");
    assert_eq!(w.get(1, "/hello").ok_text(), "hello");
    w.expect_silence(Duration::from_millis(100));
}

#[test]
fn shutdown_finishes_the_request_in_flight_then_exits_zero() {
    let mut w = threaded_worker(2);
    w.send_request(1, &environ("GET", "/wait?name=inflight", &[]), None);
    w.wait_for_file("started-inflight");
    w.send(Kind::Shutdown, 0, b"");
    // Still alive and reading while the request runs.
    w.send(Kind::Ping, 0, b"");
    assert_eq!(w.pong().kind, Kind::Pong);
    assert_eq!(w.child.try_wait().unwrap(), None);
    w.release("inflight");
    assert_eq!(w.response(1).ok_text(), "released inflight");
    assert_eq!(w.wait_exit().code(), Some(0));
}

#[test]
fn shutdown_while_serving_inline_finishes_first() {
    let mut w = worker();
    w.send_request(1, &environ("GET", "/wait?name=inline", &[]), None);
    w.wait_for_file("started-inline");
    w.send(Kind::Shutdown, 0, b"");
    w.release("inline");
    assert_eq!(w.response(1).ok_text(), "released inline");
    assert_eq!(w.wait_exit().code(), Some(0));
}

#[test]
fn shutdown_when_idle_exits_zero() {
    let mut w = worker();
    w.send(Kind::Shutdown, 0, b"");
    assert_eq!(w.wait_exit().code(), Some(0));
}

#[test]
fn end_of_file_on_the_socket_exits_zero() {
    let mut w = worker();
    w.close_socket();
    assert_eq!(w.wait_exit().code(), Some(0));
}

#[test]
fn end_of_file_exits_at_once_even_with_requests_in_flight() {
    let mut w = threaded_worker(2);
    w.send_request(1, &environ("GET", "/wait?name=never", &[]), None);
    w.wait_for_file("started-never");
    w.close_socket();
    // The app would wait 30 s for its go file; the shim must not.
    assert_eq!(w.wait_exit_within(Duration::from_secs(5)).code(), Some(0));
}

#[test]
fn the_socket_is_not_inherited_by_the_apps_subprocesses() {
    const LISTER: &str = r#"
import os
for fd in os.listdir("/proc/self/fd"):
    try:
        print(fd, os.readlink("/proc/self/fd/" + fd))
    except OSError:
        pass  # the listing's own directory handle, already closed
"#;
    // close_fds=False: the child gets every inheritable descriptor the worker has.
    const APP: &str = r#"
import subprocess, sys
def app(environ, start_response):
    out = subprocess.run([sys.executable, "lister.py"], stdout=subprocess.PIPE, close_fds=False).stdout
    start_response("200 OK", [])
    return [out]
"#;
    let setup = Setup::app("child:app")
        .module("child", APP)
        .module("lister", LISTER);
    let (mut w, _) = setup.start();
    let listing = w.get(1, "/").ok_text();
    assert!(listing.contains("pipe:"), "the listing works: {listing}");
    assert!(!listing.contains("socket:"), "{listing}");
}

#[test]
fn sigint_is_ignored() {
    let mut w = worker();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(w.child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(w.get(1, "/hello").ok_text(), "hello");
}

#[test]
fn sigterm_terminates() {
    let mut w = worker();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(w.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = w.wait_exit();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
}

#[test]
fn a_generator_streams_on_a_thread_too() {
    let mut w = threaded_worker(2);
    w.send_request(1, &environ("GET", "/stream?name=t", &[]), None);
    assert_eq!(w.frame_for(1).kind, ResponseStart);
    assert_eq!(&w.frame_for(1).payload[..], b"first");
    w.release("t");
    assert_eq!(&w.frame_for(1).payload[..], b"second");
    assert_eq!(w.frame_for(1).kind, ResponseEnd);
}

#[test]
fn ping_is_answered_between_the_chunks_of_an_inline_stream() {
    let mut w = worker();
    w.send_request(1, &environ("GET", "/endless?name=e", &[]), None);
    assert_eq!(w.frame_for(1).kind, ResponseStart);
    w.send(Kind::Ping, 0, b"");
    assert_eq!(w.pong().kind, Kind::Pong);
    w.send(Kind::Cancel, 1, b"");
    assert_eq!(w.response(1).kinds.last(), Some(&ResponseEnd));
}

#[test]
fn a_request_sent_during_an_inline_stream_is_served_after_it() {
    let mut w = worker();
    w.send_request(1, &environ("GET", "/endless?name=first", &[]), None);
    assert_eq!(w.frame_for(1).kind, ResponseStart);
    w.send_request(2, &environ("GET", "/hello", &[]), None);
    w.send(Kind::Cancel, 1, b"");
    assert_eq!(w.response(1).kinds.last(), Some(&ResponseEnd));
    assert_eq!(w.response(2).ok_text(), "hello");
}

#[test]
fn shutdown_waits_for_a_request_whose_large_body_is_still_arriving() {
    let mut w = worker();
    let body = vec![b'b'; 1024 * 1024];
    let length = body.len().to_string();
    let env = environ("POST", "/body", &[("CONTENT_LENGTH", length.as_bytes())]);
    let mut out = bytes::BytesMut::new();
    encode_request(
        1,
        RequestFlags::HAS_BODY,
        env.iter().map(|(k, v)| (&k[..], &v[..])),
        &mut out,
    )
    .unwrap();
    encode_frame(Kind::Shutdown, 0, b"", &mut out);
    encode_frame(Kind::Body, 1, &body, &mut out);
    encode_frame(Kind::BodyEnd, 1, b"", &mut out);
    // Half of the body frame now, the rest a little later: the shim must wait for
    // it while shutting down, neither spinning nor leaving.
    let half = out.len() / 2;
    w.send_raw(&out[..half]);
    std::thread::sleep(Duration::from_millis(200));
    w.send_raw(&out[half..]);
    assert!(w.response(1).body == body);
    assert_eq!(w.wait_exit().code(), Some(0));
}

#[test]
fn an_app_spec_without_a_name_uses_application_or_app() {
    let (mut w, _) = Setup::app("testapp").start();
    assert_eq!(w.get(1, "/hello").ok_text(), "hello");
    let source = "def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'application']\napp = None\n";
    let (mut w, _) = Setup::app("named").module("named", source).start();
    assert_eq!(w.get(1, "/").ok_text(), "application");
}
