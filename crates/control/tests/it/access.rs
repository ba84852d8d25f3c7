//! Who gets in: real client processes under other uids (this test binary, re-run
//! through `setpriv` as `nobody`, uid 65534), against sockets served here as root.
//! Groups are throwaway ones made with `groupadd` and removed with `groupdel`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;

use capstan_control::api::Status;
use capstan_control::Access;

use crate::support::{Daemon, PATIENCE};

/// Set in a child: the socket it is to call.
const CHILD_SOCKET: &str = "CAPSTAN_CONTROL_TEST_SOCKET";
/// Set in a child: send raw keep-alive requests instead of using the client.
const CHILD_RAW: &str = "CAPSTAN_CONTROL_TEST_RAW";

/// In a child run, calls `status` on the socket, prints the outcome, and says so.
async fn child_role() -> bool {
    let Some(socket) = std::env::var_os(CHILD_SOCKET) else {
        return false;
    };
    if std::env::var_os(CHILD_RAW).is_some() {
        // Two requests on one kept-alive connection: the answer to the first, then EOF.
        let request = "POST /v1/status HTTP/1.1\r\nHost: capstan\r\nContent-Length: 2\r\n\r\n{}";
        let answer = crate::support::raw(Path::new(&socket), &request.repeat(2)).await;
        println!("RESULT: {}", answer.replace("\r\n", " | "));
        return true;
    }
    let outcome = match capstan_control::Client::connect(&socket).await {
        Ok(client) => client.call(&Status {}).await.map(|s| s.version),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(version) => println!("RESULT: ok {version}"),
        Err(error) => println!("RESULT: err {error}"),
    }
    true
}

/// Runs `test` of this binary as uid 65534 with `ids` (setpriv's gid and group
/// options), calling `socket`; returns what the child printed after `RESULT: `.
async fn as_nobody(test: &str, ids: &[&str], socket: &Path) -> String {
    as_nobody_with(test, ids, socket, &[]).await
}

async fn as_nobody_with(test: &str, ids: &[&str], socket: &Path, env: &[(&str, &str)]) -> String {
    // The binary in a folder everyone may enter: the build folder may not be.
    let bin_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.path().join("control-test");
    let exe = std::env::current_exe().unwrap();
    // A hard link when the build folder is on the same file system, else a copy.
    if std::fs::hard_link(&exe, &bin).is_err() {
        std::fs::copy(&exe, &bin).unwrap();
    }
    let child = tokio::process::Command::new("setpriv")
        .arg("--reuid=65534")
        .args(ids)
        .arg("--")
        .arg(&bin)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_SOCKET, socket)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("setpriv runs");
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("the child ends")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("RESULT: ").map(|(_, said)| said))
        .unwrap_or_else(|| panic!("the child said nothing: {stdout}"))
        .to_owned()
}

/// A group that exists for one test.
struct TempGroup {
    name: String,
    gid: u32,
}

/// groupadd/groupdel lock /etc/group: one at a time in this binary.
static GROUP_FILES: Mutex<()> = Mutex::new(());

impl TempGroup {
    fn create(tag: &str) -> TempGroup {
        let name = format!("capt-{}-{tag}", std::process::id());
        let _lock = GROUP_FILES.lock().unwrap();
        // Another process on the machine (useradd, a package) may hold the lock
        // on /etc/group for a moment: groupadd then exits 10 and can be retried.
        let mut tries = 0;
        loop {
            let status = std::process::Command::new("groupadd")
                .arg(&name)
                .status()
                .unwrap();
            tries += 1;
            if status.success() {
                break;
            }
            assert!(
                status.code() == Some(10) && tries < 50,
                "groupadd {name}: {status}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let gid = nix::unistd::Group::from_name(&name)
            .unwrap()
            .expect("the new group exists")
            .gid
            .as_raw();
        TempGroup { name, gid }
    }
}

impl Drop for TempGroup {
    fn drop(&mut self) {
        let _lock = GROUP_FILES.lock().unwrap_or_else(|e| e.into_inner());
        let status = std::process::Command::new("groupdel")
            .arg(&self.name)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()) || std::thread::panicking(),
            "groupdel {}",
            self.name
        );
    }
}

/// Ids for a child that is nobody, in no group but nobody's own.
const OUTSIDER: &[&str] = &["--regid=65534", "--clear-groups"];

/// A new group named after `tag`, and a daemon that lets its members in.
async fn daemon_for_new_group(tag: &str) -> (TempGroup, Daemon) {
    let group = TempGroup::create(tag);
    let daemon = Daemon::start_with(Access::new(&group.name)).await;
    (group, daemon)
}

fn open_to_all(socket: &Path) {
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).unwrap();
}

#[tokio::test]
async fn the_socket_is_0660_and_belongs_to_the_group() {
    let (group, daemon) = daemon_for_new_group("mode").await;
    let meta = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!((meta.uid(), meta.gid()), (0, group.gid));
    daemon.stop().await;
}

#[tokio::test]
async fn a_user_outside_the_group_cannot_open_the_socket_and_is_told_how_to_get_in() {
    if child_role().await {
        return;
    }
    let (_group, daemon) = daemon_for_new_group("out").await;
    let said = as_nobody(
        "access::a_user_outside_the_group_cannot_open_the_socket_and_is_told_how_to_get_in",
        OUTSIDER,
        &daemon.socket,
    )
    .await;
    assert_eq!(
        said,
        format!(
            "err you may not use the control socket {}: only root and members of the capstan \
             group may control capstan; ask an admin to run `usermod -aG capstan <you>`, then \
             log in again",
            daemon.socket.display()
        )
    );
    daemon.stop().await;
}

#[tokio::test]
async fn the_daemon_refuses_a_user_outside_the_group_even_when_the_socket_lets_him_connect() {
    if child_role().await {
        return;
    }
    let (group, daemon) = daemon_for_new_group("wide").await;
    open_to_all(&daemon.socket);
    let said = as_nobody(
        "access::the_daemon_refuses_a_user_outside_the_group_even_when_the_socket_lets_him_connect",
        OUTSIDER,
        &daemon.socket,
    )
    .await;
    assert_eq!(
        said,
        format!(
            "err only root and members of the {0} group may control capstan (you are uid \
             65534); ask an admin to run `usermod -aG {0} nobody`, then log in again so the \
             new group applies",
            group.name
        )
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_member_of_the_group_through_supplementary_groups_gets_in() {
    if child_role().await {
        return;
    }
    let (group, daemon) = daemon_for_new_group("supp").await;
    let said = as_nobody(
        "access::a_member_of_the_group_through_supplementary_groups_gets_in",
        &["--regid=65534", &format!("--groups={}", group.gid)],
        &daemon.socket,
    )
    .await;
    assert_eq!(said, "ok test, caller uid 65534");
    daemon.stop().await;
}

#[tokio::test]
async fn a_user_whose_primary_group_is_the_group_gets_in() {
    if child_role().await {
        return;
    }
    let (group, daemon) = daemon_for_new_group("prim").await;
    let said = as_nobody(
        "access::a_user_whose_primary_group_is_the_group_gets_in",
        &[&format!("--regid={}", group.gid), "--clear-groups"],
        &daemon.socket,
    )
    .await;
    assert_eq!(said, "ok test, caller uid 65534");
    daemon.stop().await;
}

#[tokio::test]
async fn without_the_group_only_root_gets_in_and_the_refusal_says_to_create_it() {
    if child_role().await {
        return;
    }
    let missing = format!("capt-{}-none", std::process::id());
    let daemon = Daemon::start_with(Access::new(&missing)).await;
    let meta = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(meta.gid(), 0, "the socket stays root's group");
    open_to_all(&daemon.socket);
    let said = as_nobody(
        "access::without_the_group_only_root_gets_in_and_the_refusal_says_to_create_it",
        OUTSIDER,
        &daemon.socket,
    )
    .await;
    assert!(
        said.contains(&format!(
            "(the {missing} group does not exist yet: `groupadd --system {missing}`, then \
             restart the daemon)"
        )),
        "{said}"
    );
    // Root still gets in.
    daemon.client().await.call(&Status {}).await.unwrap();
    daemon.stop().await;
}

#[tokio::test]
async fn a_refused_connection_is_closed_after_its_403() {
    if child_role().await {
        return;
    }
    let (_group, daemon) = daemon_for_new_group("close").await;
    open_to_all(&daemon.socket);
    let said = as_nobody_with(
        "access::a_refused_connection_is_closed_after_its_403",
        OUTSIDER,
        &daemon.socket,
        &[(CHILD_RAW, "1")],
    )
    .await;
    assert!(said.starts_with("HTTP/1.1 403 Forbidden"), "{said}");
    assert!(said.contains(r#"{"error":{"kind":"refused""#), "{said}");
    assert_eq!(
        said.matches("HTTP/1.1").count(),
        1,
        "one answer, then EOF: {said}"
    );
    daemon.stop().await;
}
