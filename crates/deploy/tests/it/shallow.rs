//! Pushes from shallow clones. git runs pre-receive for them either way; when
//! the server lacks the history it rejects the push only after the hook
//! ("shallow update not allowed"), so the hook must look first.

use capstan_deploy::Releases;

use crate::fixture::{commit_in, Fixture};

#[test]
fn a_shallow_clone_of_history_the_server_lacks_is_refused_before_anything_is_built() {
    let f = Fixture::new(&[]);
    for n in 1..=3 {
        f.commit(&[("app.py", &format!("v = {n}\n"))], &format!("Commit {n}"));
    }
    // A shallow clone of the client (as of a laptop cloning GitHub with --depth 1),
    // pushed to an app that has never seen that history.
    let shallow = f.dir.path().join("shallow");
    let source = format!("file://{}", f.client().display());
    f.git_in(
        f.dir.path(),
        &["clone", "--quiet", "--depth", "1", &source, "shallow"],
    );
    let sha = commit_in(&f, &shallow, &[("app.py", "v = 4\n")], "Commit 4");

    let pushed = f.push_from(&shallow, "HEAD:main");
    assert!(!pushed.ok, "{}", pushed.output);
    assert!(
        pushed.output.contains(&format!(
            "remote: {} comes from a shallow clone and the server does not have its history",
            &sha[..7]
        )),
        "{}",
        pushed.output
    );
    assert!(
        pushed
            .output
            .contains("run `git fetch --unshallow` and push again"),
        "{}",
        pushed.output
    );
    assert_eq!(f.server_ref("refs/heads/main"), None);
    assert!(
        Releases::open(&f.app).list().unwrap().is_empty(),
        "no number was used"
    );

    // Unshallowed, the same commit deploys as release 1.
    f.git_in(&shallow, &["fetch", "--quiet", "--unshallow"]);
    let pushed = f.push_from(&shallow, "HEAD:main");
    pushed.assert_live(1);
}

#[test]
fn a_shallow_clone_of_the_apps_own_repository_deploys() {
    let f = Fixture::new(&[]);
    for n in 1..=3 {
        f.commit(&[("app.py", &format!("v = {n}\n"))], &format!("Commit {n}"));
    }
    assert!(f.push("main").ok);
    let shallow = f.dir.path().join("shallow");
    let source = format!("file://{}", f.app.repo().display());
    f.git_in(
        f.dir.path(),
        &["clone", "--quiet", "--depth", "1", &source, "shallow"],
    );
    let sha = commit_in(&f, &shallow, &[("app.py", "v = 4\n")], "Commit 4");

    let pushed = f.push_from(&shallow, "HEAD:main");
    assert!(pushed.ok, "{}", pushed.output);
    assert_eq!(
        f.server_ref("refs/heads/main").as_deref(),
        Some(sha.as_str())
    );
    // The server has every commit, so it stays a complete repository.
    assert!(!f.app.repo().join("shallow").exists());
}
