//! The test host itself: made fast, reachable over SSH on IPv4 and IPv6 with
//! the root key only, its files its own, and gone without a trace.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::host::TestHost;

#[test]
fn a_test_host_serves_ssh_on_both_addresses_and_leaves_nothing_behind() {
    let started = Instant::now();
    let host = TestHost::start();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "a host took {took:?}");

    for address in [host.v4.to_string(), host.v6.to_string()] {
        let output = Command::new("ssh")
            .arg("-F")
            .arg(host.ssh_config())
            .arg(format!("root@{address}"))
            .args(["cat /etc/hostname; hostname; id -u"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "ssh root@{address}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("capstan-test-host\n0"), "{stdout}");
    }

    // A key the host never saw is refused.
    let stranger = host.scratch().join("id_stranger");
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap()
        .success());
    // The stranger's key alone (no config, so no other key is tried).
    let alone = Command::new("ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(&stranger)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            host.known_hosts().display()
        ))
        .arg(format!("root@{}", host.v4))
        .arg("true")
        .output()
        .unwrap();
    assert!(!alone.status.success());
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("Permission denied (publickey"),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );

    // Its /etc is its own.
    host.run_ok("echo planted > /etc/capstan-test-planted; useradd -M capstan-host-only");
    assert!(host.path("/etc/capstan-test-planted").exists());
    assert!(!Path::new("/etc/capstan-test-planted").exists());
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(!passwd.contains("capstan-host-only"));

    let (name, pid, scratch) = (
        host.name.clone(),
        host.init_pid(),
        host.scratch().to_owned(),
    );
    let side = format!("{name}a");
    drop(host);

    let namespaces = ip(&["netns", "list"]);
    assert!(
        !namespaces.split_whitespace().any(|n| n == name),
        "{namespaces}"
    );
    let links = ip(&["-o", "link"]);
    assert!(!links.contains(&format!(" {side}@")), "{links}");
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(!scratch.exists());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&scratch.display().to_string()), "{mounts}");
}

/// What `ip ARGS` prints.
fn ip(args: &[&str]) -> String {
    let output = Command::new("ip").args(args).output().unwrap();
    String::from_utf8(output.stdout).unwrap()
}
