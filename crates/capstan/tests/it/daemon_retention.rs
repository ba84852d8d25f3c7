//! Retention: old releases go (the newest five, the live one and the one
//! before it stay), and so do the venvs no kept release runs with.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::daemon_support::{flask_app, AppUserGuard, Checkout, Daemon};

/// The store's venvs: its key links, not its `.builds` folder.
fn store_venvs(store: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    names
}

#[test]
fn old_releases_and_the_venvs_only_they_used_are_removed() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let _user = AppUserGuard("retained");
    let daemon = Daemon::start(&temp.path().join("root"));
    let repo = daemon.create_app("retained", "retained.example.com");
    let store = daemon.root.join("apps/retained/venvs");
    let checkout = Checkout::new(temp.path(), &flask_app("1"), "");
    let (ok, output) = checkout.push(&repo);
    assert!(ok, "{output}\n{}", daemon.stderr());
    let first_venv = store_venvs(&store);
    assert_eq!(first_venv.len(), 1, "{first_venv:?}");

    // New dependency input (the file's bytes are the key): a second venv.
    let requirements = std::fs::read_to_string(checkout.work.join("requirements.txt")).unwrap();
    checkout.write(
        "requirements.txt",
        &format!("{requirements}# pinned again\n"),
    );
    checkout.commit(&flask_app("2"), "2");
    let (ok, output) = checkout.push(&repo);
    assert!(ok, "{output}");
    assert!(output.contains("venv built"), "{output}");
    assert_eq!(store_venvs(&store).len(), 2);

    let mut removed_at = None;
    for n in 3..=7 {
        checkout.commit(&flask_app(&n.to_string()), &n.to_string());
        let (ok, output) = checkout.push(&repo);
        assert!(ok, "{output}");
        if output.contains("removed 1 unused venv(s)") {
            removed_at.get_or_insert(n);
        }
    }
    // Release 1 went at the 6th deploy (6..2 were the newest five), and with
    // it the venv it alone used.
    assert_eq!(removed_at, Some(6));
    let left = store_venvs(&store);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left, first_venv);
    let releases = daemon.capstan(&["releases", "retained", "--json"]);
    let releases: serde_json::Value = serde_json::from_slice(&releases.stdout).unwrap();
    let mut numbers: Vec<u64> = releases["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_u64().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, [3, 4, 5, 6, 7]);

    // The oldest kept release still rolls back: its venv is there.
    let rollback = daemon.capstan(&["rollback", "retained", "3"]);
    assert!(rollback.status.success(), "{rollback:?}");
    daemon.stop();
}
