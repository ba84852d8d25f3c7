//! `[cron.NAME]` jobs under `capstan run`: run on their schedule in the app's
//! folder with the app's env, and stopped with everything else.

use std::time::{Duration, Instant};

use crate::fixture::{app_with, Opts, Server};

const APP: &str = "def app(environ, start_response):\n    \
                   start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
                   return [b'ok']\n";

#[test]
fn a_cron_job_runs_every_minute_in_the_apps_folder_with_its_env() {
    let dir = app_with(&[
        ("app.py", APP),
        (
            "capstan.toml",
            "[web]\nwsgi = \"app:app\"\n[env]\nGREETING = \"from-env\"\n\
             [cron.stamp]\nschedule = \"* * * * *\"\n\
             command = \"echo \\\"$GREETING $(pwd)\\\" >> ran.txt\"\n",
        ),
    ]);
    let server = Server::start(dir.path(), Opts::default());
    assert!(
        server.stderr().contains("starting cron jobs"),
        "{}",
        server.stderr()
    );
    // The first fire is at the next minute: at most 60 s away.
    let ran = dir.path().join("ran.txt");
    let deadline = Instant::now() + Duration::from_secs(75);
    while !ran.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = std::fs::read_to_string(&ran).expect("the job ran within 75 s");
    let root = dir.path().canonicalize().unwrap();
    assert_eq!(text.trim(), format!("from-env {}", root.display()));
    assert!(
        server.stderr().contains("cron.stamp"),
        "{}",
        server.stderr()
    );
    assert!(server.stop(Duration::from_secs(20)).success());
}
