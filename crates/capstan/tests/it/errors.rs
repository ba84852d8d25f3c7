//! Every mistake a user can make with `capstan run`: a one-paragraph message
//! that says what is wrong and what to do, a non-zero exit, nothing left running.

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use crate::fixture::{app_copy, app_with, flask_venv, free_port, run_to_exit};

/// Configuration mistakes are found before anything runs.
const QUICK: Duration = Duration::from_secs(30);
/// Mistakes found while building a venv or starting workers.
const SLOW: Duration = Duration::from_secs(240);

const WSGI_PY: &str = "def application(environ, start_response):\n    \
                       start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
                       return [b'ok']\n";

fn listen() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Runs `capstan run DIR ARGS...`, checks it failed cleanly, and returns the
/// message it printed last (everything after `capstan: `).
fn run_fails(dir: &Path, args: &[&str], timeout: Duration) -> String {
    let dir_text = dir.to_str().unwrap();
    let listen = listen();
    let mut all = vec!["run", dir_text, "--listen", &listen];
    all.extend_from_slice(args);
    let (status, stderr) = run_to_exit(&all, timeout);
    assert!(!status.success(), "capstan {all:?} succeeded:\n{stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Os {"), "a debug-printed error:\n{stderr}");
    let left = processes_mentioning(dir);
    assert!(
        left.is_empty(),
        "still running after capstan exited: {left:?}\n{stderr}"
    );
    let at = stderr
        .rfind("\ncapstan: ")
        .map(|i| i + 1)
        .or_else(|| stderr.starts_with("capstan: ").then_some(0))
        .unwrap_or_else(|| panic!("no error message:\n{stderr}"));
    stderr[at + "capstan: ".len()..].trim_end().to_owned()
}

/// The message is one paragraph: no line breaks at all.
fn assert_one_paragraph(message: &str) {
    assert!(
        !message.contains('\n'),
        "more than one paragraph:\n{message}"
    );
}

/// Processes (other than this test) whose command line or working directory
/// lies in `dir`.
pub fn processes_mentioning(dir: &Path) -> Vec<(u32, String)> {
    let mut needles = vec![dir.to_string_lossy().into_owned()];
    if let Ok(canonical) = dir.canonicalize() {
        needles.push(canonical.to_string_lossy().into_owned());
    }
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me || !crate::fixture::alive(pid) {
            continue;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cwd = fs::read_link(format!("/proc/{pid}/cwd"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let inside = |text: &str| needles.iter().any(|n| text.contains(n.as_str()));
        if inside(&cmdline) || inside(&cwd) {
            found.push((pid, format!("{cmdline} (cwd {cwd})")));
        }
    }
    found
}

#[tokio::test]
async fn a_missing_app_directory_is_named_with_what_to_pass_instead() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("no-such-app");
    let message = run_fails(&missing, &[], QUICK);
    assert_one_paragraph(&message);
    assert!(message.contains(missing.to_str().unwrap()), "{message}");
    assert!(message.contains("cannot be opened"), "{message}");
    assert!(
        message.contains("pass the directory that holds the app's code"),
        "{message}"
    );
}

#[tokio::test]
async fn a_folder_without_an_app_says_which_files_were_looked_for() {
    let app = app_with(&[
        ("README.md", "# not an app\n"),
        ("notes.py", "print('hi')\n"),
    ]);
    let message = run_fails(app.path(), &[], QUICK);
    assert_one_paragraph(&message);
    assert!(message.contains("no web app found"), "{message}");
    assert!(message.contains("wsgi.py, app.py or main.py"), "{message}");
    assert!(message.contains("capstan.toml"), "{message}");
    assert!(
        !app.path().join(".capstan/venv").exists(),
        "nothing was built"
    );
}

#[tokio::test]
async fn an_unknown_key_in_capstan_toml_names_the_file_the_line_and_the_key() {
    let app = app_with(&[
        ("wsgi.py", WSGI_PY),
        (
            "capstan.toml",
            "name = \"typo\"\n\n[web]\nwsgi = \"wsgi:application\"\nwrokers = 2\n",
        ),
    ]);
    let message = run_fails(app.path(), &[], QUICK);
    assert_one_paragraph(&message);
    assert!(message.starts_with("capstan.toml:5: "), "{message}");
    assert!(
        message.contains("unknown key `wrokers` in [web]"),
        "{message}"
    );
    assert!(
        message.contains("workers"),
        "the keys allowed are listed: {message}"
    );
}

#[tokio::test]
async fn a_bad_duration_names_the_key_and_shows_a_good_value() {
    let app = app_with(&[
        ("wsgi.py", WSGI_PY),
        (
            "capstan.toml",
            "[web]\nwsgi = \"wsgi:application\"\ntimeout = \"30 parsecs\"\n",
        ),
    ]);
    let message = run_fails(app.path(), &[], QUICK);
    assert_one_paragraph(&message);
    assert!(message.starts_with("capstan.toml:3: "), "{message}");
    assert!(message.contains("`timeout`"), "{message}");
    assert!(
        message.contains("\"30 parsecs\" is not a duration"),
        "{message}"
    );
    assert!(message.contains("\"30s\""), "{message}");
}

#[tokio::test]
async fn a_port_in_use_says_so_and_suggests_another_with_the_same_flag() {
    let app = app_copy("hello");
    let venv = flask_venv();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();

    let (status, stderr) = run_to_exit(
        &[
            "run",
            app.path().to_str().unwrap(),
            "--listen",
            &taken_addr,
            "--venv",
            venv.to_str().unwrap(),
        ],
        QUICK,
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    let message = stderr.trim_end().rsplit("\ncapstan: ").next().unwrap();
    assert_one_paragraph(message);
    assert!(
        message.contains(&format!("{taken_addr} is already in use")),
        "{message}"
    );
    assert!(message.contains("--listen 127.0.0.1:"), "{message}");
    assert!(processes_mentioning(app.path()).is_empty());

    let message = run_fails(
        app.path(),
        &[
            "--tls-listen",
            &taken_addr,
            "--venv",
            venv.to_str().unwrap(),
        ],
        QUICK,
    );
    assert_one_paragraph(&message);
    assert!(message.contains("already in use"), "{message}");
    assert!(message.contains("--tls-listen"), "{message}");
    drop(taken);
}

#[tokio::test]
async fn a_python_that_does_not_exist_is_reported_as_not_found() {
    let app = app_with(&[
        ("wsgi.py", WSGI_PY),
        ("capstan.toml", "python = \"/nonexistent/python3\"\n"),
    ]);
    let message = run_fails(app.path(), &[], QUICK);
    assert_one_paragraph(&message);
    assert!(
        message.starts_with("/nonexistent/python3 was not found"),
        "{message}"
    );
    assert!(
        message.contains("python = \"/path/to/python3\""),
        "{message}"
    );
}

#[tokio::test]
async fn requirements_pip_cannot_install_are_reported_with_the_file_name() {
    let app = app_with(&[
        ("wsgi.py", WSGI_PY),
        (
            "requirements.txt",
            "this-package-does-not-exist-capstan==1.0\n",
        ),
    ]);
    let message = run_fails(app.path(), &[], SLOW);
    let paragraph = message.split("\n\n").next().unwrap();
    assert!(
        paragraph.starts_with("pip could not install requirements.txt"),
        "{message}"
    );
    assert!(
        paragraph.contains("this-package-does-not-exist-capstan"),
        "{message}"
    );
    assert!(
        paragraph.contains("Fix the file and run again"),
        "{message}"
    );
}

#[tokio::test]
async fn a_venv_flag_pointing_at_a_folder_that_is_not_a_venv_is_refused() {
    let app = app_with(&[("wsgi.py", WSGI_PY)]);
    let not_a_venv = tempfile::tempdir().unwrap();
    fs::write(not_a_venv.path().join("README"), "just a folder\n").unwrap();
    let message = run_fails(
        app.path(),
        &["--venv", not_a_venv.path().to_str().unwrap()],
        QUICK,
    );
    assert_one_paragraph(&message);
    assert!(
        message.contains(not_a_venv.path().to_str().unwrap()),
        "{message}"
    );
    assert!(
        message.contains("is not a usable virtualenv: it has no bin/python"),
        "{message}"
    );
    assert!(message.contains("python3 -m venv"), "{message}");
}

#[tokio::test]
async fn an_app_whose_module_does_not_exist_shows_the_python_traceback() {
    let app = app_with(&[
        ("wsgi.py", WSGI_PY),
        ("capstan.toml", "[web]\nwsgi = \"nosuchmodule:app\"\n"),
    ]);
    let venv = flask_venv();
    let message = run_fails(
        app.path(),
        &["--venv", venv.to_str().unwrap(), "--workers", "2"],
        SLOW,
    );
    let paragraph = message.split("\n\n").next().unwrap();
    assert!(
        paragraph.contains("the app failed to load (nosuchmodule:app)"),
        "{message}"
    );
    assert!(
        message.contains("Traceback (most recent call last)"),
        "{message}"
    );
    assert!(
        message.contains("ModuleNotFoundError: No module named 'nosuchmodule'"),
        "{message}"
    );
}

#[tokio::test]
async fn help_explains_listen_tls_listen_and_workers() {
    for args in [&["--help"][..], &["run", "--help"][..]] {
        let output = std::process::Command::new(crate::fixture::capstan())
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", output.status);
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.contains("capstan run"), "{args:?}:\n{text}");
        for flag in ["--listen", "--tls-listen", "--workers"] {
            assert!(
                text.contains(flag),
                "{args:?}: {flag} missing from:\n{text}"
            );
        }
        assert!(text.contains("redirects to"), "{args:?}:\n{text}");
        assert!(
            text.contains("Python worker processes"),
            "{args:?}:\n{text}"
        );
        if args == ["run", "--help"] {
            assert!(text.contains("self-signed certificate"), "{text}");
            assert!(text.contains("--venv"), "{text}");
        }
    }
}
