//! Rollback targets and retention over releases made by real pushes.

use capstan_deploy::{DeployLock, ReleaseStatus, Releases};

use crate::fixture::Fixture;

/// Pushes releases 1-3, a failed build 4, then 5-9; nothing pruned on the way.
fn nine_releases() -> Fixture {
    let f = Fixture::new(&["--keep", "100"]);
    for n in 1..=9 {
        if n == 4 {
            f.set_hook(&["--fail-build"]);
        }
        f.commit(
            &[("app.py", &format!("v = {n}\n"))],
            &format!("Release {n}"),
        );
        let pushed = f.push("main");
        assert_eq!(pushed.ok, n != 4, "{}", pushed.output);
        if n == 4 {
            f.set_hook(&["--keep", "100"]);
        }
    }
    f
}

fn numbers(releases: &Releases) -> Vec<u64> {
    releases
        .list()
        .unwrap()
        .iter()
        .map(|r| r.id.number)
        .collect()
}

#[test]
fn rollback_goes_to_the_built_release_before_the_live_one_or_the_one_named() {
    let f = nine_releases();
    let releases = Releases::open(&f.app);
    assert_eq!(releases.rollback_target(None).unwrap().id.number, 8);
    assert_eq!(releases.rollback_target(Some(2)).unwrap().id.number, 2);

    let err = releases.rollback_target(Some(9)).unwrap_err();
    assert_eq!(err.to_string(), "release 9 of blog is already live");
    let err = releases.rollback_target(Some(4)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "release 4 of blog is a failed build, not a built release; pick a release marked ready"
    );
    let err = releases.rollback_target(Some(42)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "blog has no release 42; `capstan releases blog` lists the ones kept"
    );

    let lock = DeployLock::acquire(&f.app, "rollback to 5").unwrap();
    let err = releases.activate(&lock, 4).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("release 4 of blog is a failed build"),
        "{err}"
    );
    assert_eq!(
        releases.live().unwrap().unwrap().number,
        9,
        "a refused activation moves nothing"
    );

    // After rolling back to 5, "the one before" skips the failed 4.
    releases.activate(&lock, 5).unwrap();
    assert_eq!(releases.rollback_target(None).unwrap().id.number, 3);
    releases.activate(&lock, 1).unwrap();
    let err = releases.rollback_target(None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "blog has no built release before 1 to roll back to; name one with `capstan rollback blog N`"
    );
}

#[test]
fn retention_keeps_the_newest_the_live_one_and_the_one_before_it() {
    let f = nine_releases();
    let releases = Releases::open(&f.app);
    assert_eq!(numbers(&releases), [9, 8, 7, 6, 5, 4, 3, 2, 1]);
    let lock = DeployLock::acquire(&f.app, "test").unwrap();

    // Rolled back to 3: keep 2 newest (9, 8), the live 3 and the one before (2);
    // the failed 4 is newer than the oldest kept, so its record stays.
    releases.activate(&lock, 3).unwrap();
    let deleted = releases.prune(&lock, 2).unwrap();
    let deleted: Vec<u64> = deleted.iter().map(|id| id.number).collect();
    assert_eq!(deleted, [1, 5, 6, 7]);
    assert_eq!(numbers(&releases), [9, 8, 4, 3, 2]);
    for info in releases.list().unwrap() {
        let exists = f.app.release(&info.id).exists();
        assert_eq!(
            exists,
            info.record.status == ReleaseStatus::Ready,
            "{}",
            info.id.dir_name()
        );
    }
    let names: Vec<String> = std::fs::read_dir(f.app.releases())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".json"))
        .collect();
    assert_eq!(names.len(), 4, "only the kept folders are left: {names:?}");
    assert_eq!(releases.live().unwrap().unwrap().number, 3);
    assert_eq!(
        std::fs::read_to_string(f.app.current().join("app.py")).unwrap(),
        "v = 3\n"
    );

    // Even keeping none, the live release and the one before it stay.
    let deleted = releases.prune(&lock, 0).unwrap();
    let deleted: Vec<u64> = deleted.iter().map(|id| id.number).collect();
    assert_eq!(deleted, [8, 9]);
    assert_eq!(numbers(&releases), [4, 3, 2]);
    drop(lock);

    // Numbers are never reused after pruning: the next push is release 10.
    f.commit(&[("app.py", "v = 10\n")], "Release 10");
    let pushed = f.push("main");
    pushed.assert_live(10);
}

#[test]
fn a_build_left_by_a_killed_deploy_is_recorded_as_abandoned_by_the_next_one() {
    let (f, sha) = Fixture::deployed();
    let releases = Releases::open(&f.app);
    {
        // A deploy that checked out release 2 and was stopped before it ended.
        let lock = DeployLock::acquire(&f.app, "a1b2c3d").unwrap();
        let oid = capstan_deploy::Oid::new(&sha).unwrap();
        let building = releases.begin(&lock, f.repo.git(), &oid).unwrap();
        assert!(building.dir().join("app.py").exists());
        std::mem::forget(building);
    }
    assert_eq!(
        releases.list().unwrap()[0].record.status,
        ReleaseStatus::Building
    );

    f.commit(&[("app.py", "v = 3\n")], "Three");
    let pushed = f.push("main");
    pushed.assert_live(3);
    let abandoned = releases
        .list()
        .unwrap()
        .into_iter()
        .find(|r| r.id.number == 2)
        .unwrap();
    assert_eq!(abandoned.record.status, ReleaseStatus::Failed);
    assert_eq!(
        abandoned.record.failure.as_deref(),
        Some("abandoned: the deploy building it was stopped")
    );
    assert!(!f.app.release(&abandoned.id).exists());
}

#[test]
fn a_rollback_before_any_deploy_says_to_push_first() {
    let f = Fixture::new(&[]);
    let err = Releases::open(&f.app).rollback_target(None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "blog has no live release yet; push the deploy branch first"
    );
}

#[test]
fn a_damaged_release_record_is_named_with_what_to_do() {
    let (f, _) = Fixture::deployed();
    let releases = Releases::open(&f.app);
    let id = releases.list().unwrap()[0].id.clone();
    std::fs::write(f.app.release_record(&id), "{ not json").unwrap();
    let err = releases.list().unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "the release record {} is damaged (",
            f.app.release_record(&id).display()
        )),
        "{err}"
    );
    assert!(err.ends_with("); move it away and try again"), "{err}");
}

#[test]
fn a_hook_on_a_machine_without_git_says_to_install_it() {
    let f = Fixture::new(&[]);
    let sha = f.commit(&[("app.py", "v = 1\n")], "One");
    let mut child = std::process::Command::new(crate::fixture::example())
        .arg("hook")
        .env("CAPSTAN_ROOT", f.root())
        .env("CAPSTAN_APP", "blog")
        .env("PATH", f.dir.path().join("no-bin"))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let line = format!("{} {sha} refs/heads/main\n", "0".repeat(40));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not run git (")
            && stderr.contains("); install it (Debian: `apt install git`) and try again"),
        "{stderr}"
    );
}
