//! Pushes through the hook: what deploys, what is refused, and that a refused
//! push leaves the repository's refs as they were.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use capstan_deploy::{ReleaseStatus, Releases};

use crate::fixture::Fixture;

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_pushed_commit_is_checked_out_from_inside_the_hook_into_a_sealed_release() {
    let f = Fixture::new(&[]);
    let sha = f.commit(
        &[
            ("app.py", "print('hello')\n"),
            ("static/css/site.css", "body {}\n"),
            ("bin/start*", "#!/bin/sh\necho start\n"),
        ],
        "First version\n\nWith a body.",
    );
    std::os::unix::fs::symlink("app.py", f.client().join("link.py")).unwrap();
    let sha = {
        f.git_in(&f.client(), &["add", "link.py"]);
        f.git_in(&f.client(), &["commit", "--quiet", "--amend", "--no-edit"]);
        let amended = f
            .git_in(&f.client(), &["rev-parse", "HEAD"])
            .trim()
            .to_owned();
        assert_ne!(amended, sha);
        amended
    };

    let pushed = f.push("main");
    assert!(pushed.ok, "{}", pushed.output);
    assert!(
        pushed
            .output
            .contains(&format!("remote: deploy main {sha}")),
        "{}",
        pushed.output
    );
    pushed.assert_live(1);
    assert_eq!(
        f.server_ref("refs/heads/main").as_deref(),
        Some(sha.as_str())
    );

    let list = Releases::open(&f.app).list().unwrap();
    assert_eq!(list.len(), 1);
    let release = &list[0];
    assert!(release.live);
    assert_eq!(release.id.dir_name(), format!("1-{}", &sha[..7]));
    assert_eq!(release.record.sha, sha);
    assert_eq!(release.record.subject, "First version");
    assert_eq!(release.record.author, "Ada Lovelace <ada@example.com>");
    assert_eq!(release.record.status, ReleaseStatus::Ready);
    assert!(release.record.build_seconds.unwrap() >= 0.0);

    // The folder holds exactly the commit's tree, byte for byte.
    let dir = f.app.release(&release.id);
    assert_eq!(
        fs::read_to_string(dir.join("app.py")).unwrap(),
        "print('hello')\n"
    );
    assert_eq!(
        fs::read_to_string(dir.join("static/css/site.css")).unwrap(),
        "body {}\n"
    );
    assert_eq!(
        fs::read_link(dir.join("link.py")).unwrap(),
        Path::new("app.py")
    );
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["app.py", "bin", "link.py", "static"]);

    // Sealed: directories 0555, files 0444, executables 0555.
    assert_eq!(mode(&dir), 0o555);
    assert_eq!(mode(&dir.join("static/css")), 0o555);
    assert_eq!(mode(&dir.join("app.py")), 0o444);
    assert_eq!(mode(&dir.join("bin/start")), 0o555);

    // current is a relative symlink to it.
    assert_eq!(
        fs::read_link(f.app.current()).unwrap(),
        Path::new("releases").join(release.id.dir_name())
    );
    assert_eq!(
        fs::read_to_string(f.app.current().join("app.py")).unwrap(),
        "print('hello')\n"
    );
}

#[test]
fn a_checkout_without_the_hooks_environment_cannot_see_the_pushed_commit() {
    let f = Fixture::new(&["--drop-quarantine-env"]);
    f.commit(&[("app.py", "x = 1\n")], "First");
    let pushed = f.push("main");
    assert!(!pushed.ok, "{}", pushed.output);
    // git cannot find the object outside the quarantine, so the hook fails...
    assert!(
        pushed.output.contains("is not visible to git: a pre-receive hook must run git with the environment git gave it"),
        "{}",
        pushed.output
    );
    // ...and the push is rejected with nothing moved or built.
    assert_eq!(f.server_ref("refs/heads/main"), None);
    assert!(Releases::open(&f.app).list().unwrap().is_empty());
}

#[test]
fn a_failing_hook_rejects_the_push_and_the_ref_stays_where_it_was() {
    let (f, first) = Fixture::deployed();

    f.set_hook(&["--fail-build"]);
    f.commit(&[("app.py", "v = 2\n")], "Two");
    let pushed = f.push("main");
    assert!(!pushed.ok, "{}", pushed.output);
    assert!(
        pushed
            .output
            .contains("remote: build of release 2 failed; release 1 is still serving"),
        "{}",
        pushed.output
    );
    assert!(
        pushed.output.contains("pre-receive hook declined"),
        "{}",
        pushed.output
    );
    assert_eq!(
        f.server_ref("refs/heads/main").as_deref(),
        Some(first.as_str())
    );

    let releases = Releases::open(&f.app);
    let list = releases.list().unwrap();
    assert_eq!(list[0].record.number, 2);
    assert_eq!(list[0].record.status, ReleaseStatus::Failed);
    assert_eq!(
        list[0].record.failure.as_deref(),
        Some("the build command failed")
    );
    assert!(
        !f.app.release(&list[0].id).exists(),
        "a failed build's folder is removed"
    );
    assert_eq!(releases.live().unwrap().unwrap().number, 1);

    // The failed build used its number: the next one is 3.
    f.set_hook(&[]);
    let third = f.commit(&[("app.py", "v = 3\n")], "Three");
    let pushed = f.push("main");
    pushed.assert_live(3);
    assert_eq!(
        f.server_ref("refs/heads/main").as_deref(),
        Some(third.as_str())
    );
    let live = releases.live().unwrap().unwrap();
    assert_eq!(live.dir_name(), format!("3-{}", &third[..7]));
}

#[test]
fn after_main_another_branch_is_refused_with_the_push_to_make_instead() {
    let (f, _) = Fixture::deployed();
    assert_eq!(
        fs::read_to_string(f.app.deploy_branch_file()).unwrap(),
        "main\n"
    );

    f.commit(&[("app.py", "v = 2\n")], "Two");
    let pushed = f.push("HEAD:feature");
    assert!(!pushed.ok);
    assert!(
        pushed.output.contains(
            "remote: blog deploys the branch main, not feature; push it with `git push <remote> HEAD:main`"
        ),
        "{}",
        pushed.output
    );
    assert_eq!(f.server_ref("refs/heads/feature"), None);
    assert_eq!(
        Releases::open(&f.app).list().unwrap().len(),
        1,
        "nothing was built"
    );
}

#[test]
fn a_first_push_of_master_makes_master_the_deploy_branch_and_head() {
    let f = Fixture::new(&[]);
    f.commit(&[("app.py", "v = 1\n")], "One");
    assert!(f.push("HEAD:master").ok);
    let head = f.git_in(&f.app.repo(), &["symbolic-ref", "HEAD"]);
    assert_eq!(head.trim(), "refs/heads/master");

    let pushed = f.push("main");
    assert!(!pushed.ok);
    assert!(
        pushed
            .output
            .contains("remote: blog deploys the branch master, not main"),
        "{}",
        pushed.output
    );
}

#[test]
fn a_tag_pushed_alone_is_refused_and_not_stored() {
    let (f, _) = Fixture::deployed();
    f.git_in(&f.client(), &["tag", "v1"]);
    let pushed = f.push("v1");
    assert!(!pushed.ok);
    assert!(
        pushed.output.contains(
            "remote: a push of the tag v1 alone does not deploy: blog deploys the branch main; \
             push it with `git push <remote> HEAD:main`"
        ),
        "{}",
        pushed.output
    );
    assert_eq!(f.server_ref("refs/tags/v1"), None);
}

#[test]
fn deleting_the_deploy_branch_is_refused() {
    let (f, sha) = Fixture::deployed();
    let pushed = f.push(":main");
    assert!(!pushed.ok);
    assert!(
        pushed
            .output
            .contains("remote: blog refuses deleting branches (here main)"),
        "{}",
        pushed.output
    );
    assert_eq!(
        f.server_ref("refs/heads/main").as_deref(),
        Some(sha.as_str())
    );
}

#[test]
fn a_second_push_moves_current_to_the_new_release() {
    let (f, _) = Fixture::deployed();
    let second = f.commit(&[("app.py", "v = 2\n")], "Two");
    assert!(f.push("main").ok);

    let releases = Releases::open(&f.app);
    let list = releases.list().unwrap();
    let numbers: Vec<(u64, bool)> = list.iter().map(|r| (r.id.number, r.live)).collect();
    assert_eq!(numbers, [(2, true), (1, false)]);
    assert_eq!(
        fs::read_link(f.app.current()).unwrap(),
        Path::new("releases").join(format!("2-{}", &second[..7]))
    );
    assert_eq!(
        fs::read_to_string(f.app.current().join("app.py")).unwrap(),
        "v = 2\n"
    );
    assert!(!f.app.path().join("current.tmp").exists());
    assert_eq!(list[0].record.live_since.len(), 1);
}
