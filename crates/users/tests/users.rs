//! Real system users and groups, made with shadow-utils: these run as root, as CI
//! does. Each test makes its own throwaway names and a guard removes them, even
//! when an assertion fails.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use capstan_config::AppName;
use capstan_users::{
    ensure_app_user, ensure_group, group_exists, remove_app_user, remove_group, user_name,
};

/// A unique app name per test and run: `t<pid>x<n>`, short enough for a user name.
fn throwaway_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes the app's user (and group) when dropped.
struct UserGuard(AppName);

impl Drop for UserGuard {
    fn drop(&mut self) {
        if let Err(error) = remove_app_user(&self.0) {
            eprintln!("could not clean up: {error}");
        }
    }
}

/// Removes a group when dropped.
struct GroupGuard(String);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Err(error) = remove_group(&self.0) {
            eprintln!("could not clean up: {error}");
        }
    }
}

fn as_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create system users, so they run as root (as CI does)"
    );
}

/// `getent DATABASE KEY`'s line, or `None` when there is none.
fn getent(database: &str, key: &str) -> Option<String> {
    let out = Command::new("getent")
        .args([database, key])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

#[test]
fn an_app_user_is_a_system_user_with_its_own_group_and_no_login() {
    as_root();
    let app = AppName::new(&throwaway_name()).unwrap();
    let name = user_name(&app).unwrap();
    let _guard = UserGuard(app.clone());
    assert_eq!(getent("passwd", &name), None, "no such user before");

    let home = Path::new("/var/lib/capstan-test/apps/x");
    let user = ensure_app_user(&app, home).unwrap();
    let line = getent("passwd", &name).expect("the user exists");
    let fields: Vec<&str> = line.split(':').collect();
    assert_eq!(fields[0], name);
    assert_eq!(fields[2], user.uid.to_string());
    assert_eq!(fields[3], user.gid.to_string());
    assert_eq!(fields[5], home.to_str().unwrap(), "the home given");
    assert_eq!(fields[6], "/usr/sbin/nologin");
    assert!(user.uid < 1000, "a system uid, got {}", user.uid);
    assert!(!home.exists(), "no home folder is made");
    let group = getent("group", &name).expect("a group of its own");
    assert!(
        group.starts_with(&format!("{name}:x:{}:", user.gid)),
        "{group}"
    );
    let identity = user.identity().expect("root switches to it");
    assert_eq!((identity.uid, identity.gid), (user.uid, user.gid));
}

#[test]
fn ensuring_an_app_user_twice_changes_nothing() {
    as_root();
    let app = AppName::new(&throwaway_name()).unwrap();
    let name = user_name(&app).unwrap();
    let _guard = UserGuard(app.clone());
    let home = Path::new("/nonexistent");
    let first = ensure_app_user(&app, home).unwrap();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let again = ensure_app_user(&app, home).unwrap();
    assert_eq!(first, again);
    assert_eq!(std::fs::read_to_string("/etc/passwd").unwrap(), passwd);
    assert!(getent("passwd", &name).is_some());
}

#[test]
fn removing_an_app_user_removes_its_group_and_a_second_removal_is_fine() {
    as_root();
    let app = AppName::new(&throwaway_name()).unwrap();
    let name = user_name(&app).unwrap();
    let _guard = UserGuard(app.clone());
    ensure_app_user(&app, Path::new("/nonexistent")).unwrap();
    remove_app_user(&app).unwrap();
    assert_eq!(getent("passwd", &name), None);
    assert_eq!(getent("group", &name), None);
    remove_app_user(&app).unwrap();
}

#[test]
fn an_app_name_too_long_for_a_user_is_refused_before_anything_is_made() {
    as_root();
    let app = AppName::new(&format!("{}{}", throwaway_name(), "y".repeat(20))).unwrap();
    let error = ensure_app_user(&app, Path::new("/nonexistent"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("at most 24"), "{error}");
    assert_eq!(getent("passwd", &format!("capstan-{app}")), None);
}

#[test]
fn a_group_is_made_once_and_removed() {
    as_root();
    let name = format!("capstan-{}", throwaway_name());
    let _guard = GroupGuard(name.clone());
    assert!(!group_exists(&name).unwrap());
    let gid = ensure_group(&name).unwrap();
    assert!(group_exists(&name).unwrap());
    assert!(getent("group", &name)
        .unwrap()
        .starts_with(&format!("{name}:x:{gid}:")));
    assert_eq!(
        ensure_group(&name).unwrap(),
        gid,
        "a second call changes nothing"
    );
    remove_group(&name).unwrap();
    assert!(!group_exists(&name).unwrap());
}

/// The child half of the next test: runs as `nobody` and asks for an app user.
#[test]
fn helper_that_asks_for_an_app_user_as_nobody_for_the_next_test() {
    if std::env::var_os("CAPSTAN_USERS_AS_NOBODY").is_none() {
        return;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let app = AppName::new("blog").unwrap();
    let first = ensure_app_user(&app, Path::new("/nonexistent")).unwrap();
    let second = ensure_app_user(&app, Path::new("/nonexistent")).unwrap();
    println!("{} {} {:?}", first.uid, first == second, first.identity());
}

#[test]
fn not_root_the_current_user_is_used_and_the_log_says_so_once() {
    use std::os::unix::process::CommandExt;
    as_root();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_that_asks_for_an_app_user_as_nobody_for_the_next_test",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CAPSTAN_USERS_AS_NOBODY", "1")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("65534 true None"), "{stdout}");
    let said = "not running as root: every app's processes run as the current user";
    assert_eq!(stderr.matches(said).count(), 1, "{stderr}");
    assert_eq!(getent("passwd", "capstan-blog"), None, "no user was made");
}
