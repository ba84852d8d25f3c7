//! Children started as another user, for real: these run as root, as CI does,
//! and switch to `nobody` (65534).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use capstan_proc::{Child, Identity, Spec};

fn nobody() -> Identity {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests switch users, so they run as root (as CI does)"
    );
    let user = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("the system has a nobody user");
    Identity {
        user: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups: vec![user.gid.as_raw()],
        home: user.dir,
    }
}

/// A temp folder anyone may write into, for the child's answers.
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

async fn run(script: &str, cwd: &Path, identity: Option<Identity>) -> capstan_proc::Exit {
    let mut spec = Spec::shell("as-user", script, cwd.to_owned());
    spec.identity = identity;
    let mut child = Child::spawn(spec).unwrap();
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the child finishes")
}

#[tokio::test]
async fn a_child_started_as_nobody_reports_its_uid_groups_and_home() {
    let dir = open_dir();
    let exit = run(
        "id -u > out; id -G >> out; echo \"$HOME $USER $LOGNAME\" >> out",
        dir.path(),
        Some(nobody()),
    )
    .await;
    assert!(exit.success(), "{exit}");
    let out = std::fs::read_to_string(dir.path().join("out")).unwrap();
    let nobody = nobody();
    let home = nobody.home.display();
    assert_eq!(
        out,
        format!("65534\n65534\n{home} nobody nobody\n"),
        "uid, then every group (no root group left), then who it thinks it is"
    );
}

#[tokio::test]
async fn a_child_started_as_nobody_cannot_write_a_root_owned_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exit = run("touch release-file", dir.path(), Some(nobody())).await;
    assert_eq!(exit.code, Some(1), "touch is refused: {exit}");
    assert!(!dir.path().join("release-file").exists());
    // The same command as root does write there, so the refusal is the user's.
    let exit = run("touch release-file", dir.path(), None).await;
    assert!(exit.success(), "{exit}");
    assert!(dir.path().join("release-file").exists());
}

#[tokio::test]
async fn a_child_started_as_another_user_still_dies_with_capstan() {
    // Changing credentials clears the parent-death signal, so it must be set after.
    let dir = open_dir();
    let script = "exec python3 -c 'import ctypes, sys; v = ctypes.c_int(); \
                  ctypes.CDLL(None).prctl(2, ctypes.byref(v)); sys.exit(v.value)'";
    let mut spec = Spec::shell("pdeathsig", script, dir.path().to_owned());
    spec.env
        .push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    spec.identity = Some(nobody());
    let exit = Child::spawn(spec).unwrap().wait().await;
    assert_eq!(exit.code, Some(nix::libc::SIGTERM), "{exit}");
}

#[tokio::test]
async fn an_identity_the_kernel_refuses_fails_the_spawn_and_names_the_user() {
    let mut identity = nobody();
    // More supplementary groups than the kernel allows (NGROUPS_MAX is 65536).
    identity.groups = (0..70_000).collect();
    let dir = open_dir();
    let mut spec = Spec::shell("web.1", "touch ran", dir.path().to_owned());
    spec.identity = Some(identity);
    let error = Child::spawn(spec).unwrap_err().to_string();
    assert!(
        error
            .starts_with("could not start web.1 (/bin/sh) as user nobody (uid 65534, gid 65534): "),
        "{error}"
    );
    assert!(!dir.path().join("ran").exists(), "nothing ran");
}
