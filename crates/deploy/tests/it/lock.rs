//! One deploy at a time, across processes, and a killed holder never blocks.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use capstan_deploy::{DeployLock, LockError};

use crate::fixture::{example, Fixture};

#[test]
fn a_second_deploy_is_refused_with_who_holds_the_lock_and_a_killed_holder_frees_it() {
    let f = Fixture::new(&[]);
    let mut holder = Command::new(example())
        .arg("hold-lock")
        .arg(f.root())
        .args(["blog", "a1b2c3d"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");
    let pid = holder.id();

    let err = DeployLock::acquire(&f.app, "fffffff").unwrap_err();
    assert!(matches!(err, LockError::Busy { .. }));
    let message = err.to_string();
    assert!(
        message.starts_with("a deploy of blog is running (commit a1b2c3d, started "),
        "{message}"
    );
    assert!(
        message.ends_with(&format!(
            " s ago by pid {pid}); wait for it to end and push again"
        )),
        "{message}"
    );

    // A push meanwhile is refused with the same words, and its ref stays unset.
    f.commit(&[("app.py", "v = 1\n")], "One");
    let pushed = f.push("main");
    assert!(!pushed.ok, "{}", pushed.output);
    assert!(
        pushed
            .output
            .contains("remote: a deploy of blog is running (commit a1b2c3d"),
        "{}",
        pushed.output
    );
    assert!(
        pushed.output.contains(&format!("by pid {pid})")),
        "{}",
        pushed.output
    );
    assert_eq!(f.server_ref("refs/heads/main"), None);

    // SIGKILL: no cleanup runs, yet the kernel drops the flock.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let lock = DeployLock::acquire(&f.app, "fffffff").unwrap();
    assert_eq!(lock.holder().pid, std::process::id());
    drop(lock);
    let pushed = f.push("main");
    assert!(pushed.ok, "{}", pushed.output);
}
