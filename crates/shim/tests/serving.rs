//! How the shim serves one request: environ, bodies, start_response, streaming,
//! errors and files, against real CPython.

mod common;

use std::collections::HashMap;
use std::fs;
use std::time::{Duration, Instant};

use capstan_wire::Kind;
use common::{environ, threaded_worker, worker, Setup};

use Kind::{AppError, ResponseBody, ResponseEnd, ResponseFile, ResponseStart};

fn parse_lines(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(|line| {
            let (key, value) = line.split_once('=').expect("key=value");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn a_list_response_arrives_as_start_body_end() {
    let mut w = worker();
    let response = w.get(7, "/hello");
    assert_eq!(response.kinds, [ResponseStart, ResponseBody, ResponseEnd]);
    assert_eq!(response.status(), "200 OK");
    assert_eq!(response.header("Content-Type"), Some("text/plain"));
    assert_eq!(response.header("Content-Length"), Some("5"));
    assert_eq!(response.ok_text(), "hello");
}

#[test]
fn the_environ_passes_through_and_gets_the_pep_3333_keys() {
    let mut w = worker();
    let env = environ(
        "GET",
        "/environ?a=1&b=%20",
        &[
            ("HTTP_X_MULTI", b"one, two"),
            ("CONTENT_TYPE", b""),
            ("wsgi.url_scheme", b"https"),
        ],
    );
    w.send_request(1, &env, None);
    let got = parse_lines(&w.response(1).ok_text());
    for (key, value) in &env {
        let key = String::from_utf8(key.clone()).unwrap();
        assert_eq!(
            got.get(&key).map(String::as_bytes),
            Some(&value[..]),
            "{key}"
        );
    }
    assert_eq!(got["QUERY_STRING"], "a=1&b=%20");
    assert_eq!(got["wsgi.version"], "(1, 0)");
    assert_eq!(got["wsgi.multithread"], "False");
    assert_eq!(got["wsgi.multiprocess"], "True");
    assert_eq!(got["wsgi.run_once"], "False");
    assert_eq!(got["wsgi.input_terminated"], "True");
    assert_eq!(got["wsgi.input"], "BytesIO");
    assert_eq!(got["wsgi.errors"], "stderr");
    assert_eq!(got["wsgi.file_wrapper"], "FileWrapper");
    let wsgi_keys: Vec<_> = got.keys().filter(|k| k.starts_with("wsgi.")).collect();
    assert_eq!(wsgi_keys.len(), 9, "{wsgi_keys:?}");
}

#[test]
fn environ_values_are_latin_1_strings_byte_for_byte() {
    let mut w = worker();
    // PEP 3333: bytes the server cannot interpret reach the app as latin-1 code points.
    let env = environ(
        "GET",
        "/environ",
        &[("PATH_INFO", b"/environ"), ("HTTP_X_RAW", b"caf\xe9 \xff")],
    );
    w.send_request(1, &env, None);
    let body = w.response(1).body;
    // testapp encodes its answer as latin-1 again, so the bytes must come back unchanged.
    assert!(
        body.windows(18)
            .any(|line| line == b"HTTP_X_RAW=caf\xe9 \xff\n"),
        "{body:?}"
    );
}

#[test]
fn threaded_workers_say_wsgi_multithread() {
    let mut w = threaded_worker(2);
    let got = parse_lines(&w.get(1, "/environ").ok_text());
    assert_eq!(got["wsgi.multithread"], "True");
}

#[test]
fn a_request_without_a_body_reads_an_empty_input() {
    let mut w = worker();
    let response = w.get(1, "/body");
    assert_eq!(response.ok_text(), "");
    assert_eq!(response.header("X-Input-Type"), Some("BytesIO"));
}

#[test]
fn a_small_body_in_one_frame_is_read_from_memory() {
    let mut w = worker();
    let response = w.post(1, "/body", b"name=capstan&x=1", 1 << 20);
    assert_eq!(response.ok_text(), "name=capstan&x=1");
    assert_eq!(response.header("X-Input-Type"), Some("BytesIO"));
}

#[test]
fn a_body_in_many_small_frames_is_joined_in_order() {
    let mut w = worker();
    let body: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let response = w.post(1, "/body", &body, 333);
    assert_eq!(response.body, body);
    assert_eq!(response.header("X-Input-Type"), Some("BytesIO"));
}

#[test]
fn a_three_mib_body_in_several_frames_goes_to_a_temporary_file() {
    let mut w = worker();
    let body: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    // Frames smaller than the shim's read buffer: the spill happens mid-stream.
    let response = w.post(1, "/body", &body, 100_000);
    assert_eq!(response.error, None);
    assert_eq!(response.body.len(), body.len());
    assert!(response.body == body, "the body came back changed");
    let input_type = response.header("X-Input-Type").unwrap();
    assert_ne!(
        input_type, "BytesIO",
        "a body over 1 MiB must not stay in memory"
    );
}

#[test]
fn a_body_frame_larger_than_the_read_buffer_arrives_whole() {
    let mut w = worker();
    let body = vec![b'q'; 5 * 1024 * 1024 + 17];
    let response = w.post(1, "/body", &body, body.len());
    assert!(response.body == body);
}

#[test]
fn wsgi_input_supports_read_readline_and_readlines() {
    let mut w = worker();
    let response = w.post(1, "/read-in-pieces", b"abcd\nefgh\nij\nkl\nmn", 4);
    assert_eq!(
        response.ok_text(),
        r"[b'ab', b'cd\n', b'efg', b'h\n', [b'ij\n', b'kl\n', b'mn'], b'']"
    );
}

#[test]
fn wsgi_input_iterates_by_line_in_memory_and_on_disk() {
    let mut w = worker();
    let small = b"one\ntwo\nthree\n";
    assert_eq!(
        w.post(1, "/iterate", small, 5).ok_text(),
        "3 lines, 14 bytes, longest 6, BytesIO"
    );
    let line = [vec![b'x'; 99], vec![b'\n']].concat();
    let big: Vec<u8> = line.iter().copied().cycle().take(100 * 30_000).collect();
    let summary = w.post(2, "/iterate", &big, 1 << 20).ok_text();
    assert!(
        summary.starts_with("30000 lines, 3000000 bytes, longest 100, "),
        "{summary}"
    );
    assert!(!summary.ends_with("BytesIO"), "{summary}");
}

#[test]
fn the_write_callable_sends_before_the_returned_iterable() {
    let mut w = worker();
    let response = w.get(1, "/write?name=write");
    assert_eq!(response.ok_text(), "one two three");
    assert_eq!(
        response.kinds,
        [
            ResponseStart,
            ResponseBody,
            ResponseBody,
            ResponseBody,
            ResponseEnd
        ],
        "empty writes send nothing"
    );
    w.wait_for_file("closed-write");
}

#[test]
fn a_generator_streams_each_chunk_as_it_is_produced() {
    let mut w = worker();
    w.send_request(1, &environ("GET", "/stream?name=s", &[]), None);
    let start = w.frame_for(1);
    assert_eq!(start.kind, ResponseStart);
    let first = w.frame_for(1);
    assert_eq!(
        (first.kind, &first.payload[..]),
        (ResponseBody, &b"first"[..])
    );
    // Only now may the app produce its second chunk: the first was not held back.
    assert!(!w.path("closed-s").exists());
    w.release("s");
    let second = w.frame_for(1);
    assert_eq!(
        (second.kind, &second.payload[..]),
        (ResponseBody, &b"second"[..])
    );
    assert_eq!(w.frame_for(1).kind, ResponseEnd);
    w.wait_for_file("closed-s");
}

#[test]
fn close_is_called_after_success_error_and_an_empty_body() {
    let mut w = worker();
    assert_eq!(w.get(1, "/content-length?name=ok").ok_text(), "whole");
    w.wait_for_file("closed-ok");
    assert!(w.get(2, "/error-mid-stream?name=err").error.is_some());
    w.wait_for_file("closed-err");
    let empty = w.get(3, "/empty?name=empty");
    assert_eq!(empty.kinds, [ResponseStart, ResponseEnd]);
    assert_eq!(empty.status(), "204 No Content");
    w.wait_for_file("closed-empty");
}

#[test]
fn an_exception_before_start_response_is_an_app_error_without_a_start() {
    let mut w = worker();
    let response = w.get(1, "/error-before");
    assert_eq!(response.kinds, [AppError]);
    let traceback = response.error.unwrap();
    assert!(
        traceback.starts_with("Traceback (most recent call last)"),
        "{traceback}"
    );
    assert!(
        traceback.contains("RuntimeError: boom before start_response"),
        "{traceback}"
    );
    assert!(w
        .stderr()
        .contains("RuntimeError: boom before start_response"));
    assert!(w.stderr().contains("GET /error-before"));
    // The worker lives on.
    assert_eq!(w.get(2, "/hello").ok_text(), "hello");
}

#[test]
fn an_exception_after_start_response_but_before_any_body_sends_no_start() {
    let mut w = worker();
    let response = w.get(1, "/error-after-start-response");
    assert_eq!(
        response.kinds,
        [AppError],
        "headers wait for the first body bytes"
    );
    assert!(response
        .error
        .unwrap()
        .contains("boom after start_response"));
}

#[test]
fn an_exception_mid_stream_comes_after_the_start_and_the_partial_body() {
    let mut w = worker();
    let response = w.get(1, "/error-mid-stream?name=mid");
    assert_eq!(response.kinds, [ResponseStart, ResponseBody, AppError]);
    assert_eq!(response.body, b"partial");
    assert!(response
        .error
        .unwrap()
        .contains("RuntimeError: boom mid-stream"));
    w.wait_for_file("closed-mid");
}

#[test]
fn start_response_with_exc_info_before_headers_replaces_the_status() {
    let mut w = worker();
    let response = w.get(1, "/exc-info-before-headers");
    assert_eq!(response.status(), "500 Handled");
    assert_eq!(response.ok_text(), "sorry");
}

#[test]
fn start_response_with_exc_info_after_headers_reraises_and_cuts_the_response() {
    let mut w = worker();
    let response = w.get(1, "/exc-info-after-headers");
    assert_eq!(response.kinds, [ResponseStart, ResponseBody, AppError]);
    assert_eq!(response.status(), "200 OK");
    assert!(response
        .error
        .unwrap()
        .contains("ValueError: too late to handle"));
}

#[test]
fn a_second_start_response_without_exc_info_is_an_app_error() {
    let mut w = worker();
    let response = w.get(1, "/start-response-twice");
    assert_eq!(response.kinds, [AppError]);
    assert!(response
        .error
        .unwrap()
        .contains("second time without exc_info"));
}

#[test]
fn returning_without_start_response_is_an_app_error() {
    let mut w = worker();
    let response = w.get(1, "/no-start-response");
    assert_eq!(response.kinds, [AppError]);
    assert!(response
        .error
        .unwrap()
        .contains("without calling start_response"));
}

#[test]
fn invalid_headers_are_app_errors_and_never_sent() {
    let mut w = worker();
    let cases = [
        ("lf", "CR, LF or NUL"),
        ("cr", "CR, LF or NUL"),
        ("nul", "CR, LF or NUL"),
        ("name", "CR, LF or NUL"),
        ("bytes", "TypeError"),
        ("not-latin-1", "UnicodeEncodeError"),
        ("triple", "ValueError"),
    ];
    for (id, (kind, expected)) in (1..).zip(cases) {
        let response = w.get(id, &format!("/bad-header?kind={kind}"));
        assert_eq!(response.kinds, [AppError], "{kind}");
        let error = response.error.unwrap();
        assert!(error.contains(expected), "{kind}: {error}");
    }
    assert_eq!(w.get(99, "/hello").ok_text(), "hello");
}

#[test]
fn invalid_status_lines_are_app_errors() {
    let mut w = worker();
    for (id, kind) in (1..).zip(["no-code", "lf", "bytes", "short"]) {
        let response = w.get(id, &format!("/bad-status?kind={kind}"));
        assert_eq!(response.kinds, [AppError], "{kind}");
    }
}

#[test]
fn a_str_body_chunk_is_an_app_error() {
    let mut w = worker();
    let response = w.get(1, "/str-body");
    assert_eq!(response.kinds, [AppError]);
    assert!(response.error.unwrap().contains("must be bytes, not str"));
}

#[test]
fn sys_exit_inside_a_request_is_an_app_error_and_the_worker_survives() {
    let mut w = worker();
    let response = w.get(1, "/exit");
    assert_eq!(response.kinds, [AppError]);
    assert!(response.error.unwrap().contains("SystemExit"));
    assert_eq!(w.get(2, "/hello").ok_text(), "hello");
}

#[test]
fn a_chunk_over_16_mib_is_split_into_frames_within_the_limit() {
    let mut w = worker();
    let size = 16 * 1024 * 1024 + 1000;
    let response = w.get(1, &format!("/big?size={size}"));
    assert_eq!(
        response.kinds,
        [ResponseStart, ResponseBody, ResponseBody, ResponseEnd]
    );
    assert_eq!(response.body.len(), size);
    assert!(response.body.iter().all(|&b| b == b'z'));
}

/// Reads a descriptor received with SCM_RIGHTS (through /proc, no unsafe) and closes it.
fn read_passed_file(fd: std::os::fd::RawFd) -> Vec<u8> {
    let content = fs::read(format!("/proc/self/fd/{fd}")).expect("read the passed file");
    nix::unistd::close(fd).expect("close the passed fd");
    content
}

#[test]
fn file_wrapper_over_a_regular_file_passes_the_descriptor() {
    let mut w = worker();
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 199) as u8).collect();
    fs::write(w.path("payload.bin"), &content).unwrap();
    let response = w.get(1, "/file?name=payload.bin");
    assert_eq!(response.kinds, [ResponseStart, ResponseFile, ResponseEnd]);
    assert_eq!(response.status(), "200 OK");
    let (file, fd) = response.files[0];
    assert_eq!(file.offset, 0);
    assert_eq!(file.length, None, "no Content-Length: to the end");
    assert!(read_passed_file(fd) == content);
    w.wait_for_file("closed-payload.bin");
}

#[test]
fn file_wrapper_sends_the_offset_after_a_seek_and_the_content_length() {
    let mut w = worker();
    let content: Vec<u8> = (0..5000u32).map(|i| (i % 97) as u8).collect();
    fs::write(w.path("part.bin"), &content).unwrap();
    let response = w.get(1, "/file?name=part.bin&seek=1234&length=100");
    assert_eq!(response.kinds, [ResponseStart, ResponseFile, ResponseEnd]);
    assert_eq!(response.header("Content-Length"), Some("100"));
    let (file, fd) = response.files[0];
    assert_eq!(file.offset, 1234);
    assert_eq!(file.length, Some(100));
    let passed = read_passed_file(fd);
    assert!(passed[1234..1334] == content[1234..1334]);
    w.wait_for_file("closed-part.bin");
}

#[test]
fn file_wrapper_over_a_non_file_is_read_in_blocks() {
    let mut w = worker();
    let response = w.get(1, "/file-like");
    assert!(response.files.is_empty());
    assert_eq!(response.body, b"0123456789".repeat(1000));
    let bodies = response
        .kinds
        .iter()
        .filter(|k| **k == ResponseBody)
        .count();
    assert_eq!(bodies, 3, "10000 bytes in blocks of 4096");
}

#[test]
fn a_complete_body_with_content_length_goes_out_in_one_write() {
    let (mut w, _) = Setup::app("testapp:counting_app()").start();
    let writes =
        |w: &mut common::Worker, id: u32| w.get(id, "/sends").ok_text().parse::<u32>().unwrap();

    let response = w.get(1, "/content-length?name=cl");
    assert_eq!(response.kinds, [ResponseStart, ResponseBody, ResponseEnd]);
    assert_eq!(
        writes(&mut w, 2),
        1,
        "a generator whose first chunk is the whole Content-Length"
    );

    assert_eq!(w.get(3, "/hello").ok_text(), "hello");
    assert_eq!(writes(&mut w, 4), 1, "a list");

    assert_eq!(
        w.get(5, "/empty?name=e").kinds,
        [ResponseStart, ResponseEnd]
    );
    assert_eq!(writes(&mut w, 6), 1, "an empty iterable");

    assert_eq!(w.get(7, "/stream-three").ok_text(), "abc");
    assert_eq!(
        writes(&mut w, 8),
        4,
        "a stream without Content-Length: start+a, b, c, end"
    );
}

#[test]
fn a_factory_in_the_app_spec_is_called_once_with_its_arguments() {
    let (mut w, _) = Setup::app("testapp:create_app()").start();
    assert_eq!(w.get(1, "/").ok_text(), "hello, factory called 1 time(s)");
    assert_eq!(w.get(2, "/").ok_text(), "hello, factory called 1 time(s)");
    let (mut w, _) = Setup::app("testapp:create_app('hey')").start();
    assert_eq!(w.get(1, "/").ok_text(), "hey, factory called 1 time(s)");
}

#[test]
fn consecutive_requests_on_one_worker_keep_their_ids() {
    let mut w = worker();
    let started = Instant::now();
    for id in 1..=200 {
        assert_eq!(w.get(id, "/hello").ok_text(), "hello");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn pipelined_requests_straddling_the_read_buffer_are_all_answered() {
    let mut w = worker();
    let pad = "p".repeat(300);
    let mut out = bytes::BytesMut::new();
    for id in 1..=3000u32 {
        let target = format!("/hello?n={id}");
        let env = environ("GET", &target, &[("HTTP_X_PAD", pad.as_bytes())]);
        capstan_wire::encode_request(
            id,
            capstan_wire::RequestFlags::NONE,
            env.iter().map(|(k, v)| (&k[..], &v[..])),
            &mut out,
        )
        .unwrap();
    }
    assert!(
        out.len() > 4 * 256 * 1024,
        "more than the shim reads at once"
    );
    // Written from another thread: the shim answers while the requests still arrive.
    let mut writer = w.writer();
    let sending = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &out));
    for id in 1..=3000u32 {
        assert_eq!(w.response(id).ok_text(), "hello", "request {id}");
    }
    sending.join().unwrap().unwrap();
}
