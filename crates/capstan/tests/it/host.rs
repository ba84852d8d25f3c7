//! A test host: what a rented server is, made by the test itself on this one
//! machine. Its own network namespace joined to the test's side by a veth pair
//! (192.0.2.0/24 and 2001:db8::/32 only), its own mount namespace with an
//! overlayfs over the machine's root (its /etc, /home and /var are thrown
//! away with it), its own PID namespace, and a real Debian sshd that lets the
//! test in as root with a key of the test's own. Dropping it kills the PID
//! namespace, deletes the network namespace and the scratch folder: nothing
//! is left behind.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The hosts take /30s of the upper half of 192.0.2.0/24 (.128 to .255):
/// a machine that itself sits in 192.0.2.0/24 usually has its gateway and
/// its neighbours low, and a slot that holds one of them is skipped anyway.
const FIRST_SLOT: u32 = 32;
const SLOTS: u32 = 64;

pub struct TestHost {
    /// The network namespace's name, also the prefix of the veth pair.
    pub name: String,
    /// The host's addresses; the test's side has the one before each.
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
    /// The scratch folder on the test's side: keys, known_hosts, ssh config.
    scratch: tempfile::TempDir,
    /// `unshare`, whose child is the host's PID 1 (killed with it).
    unshare: Child,
    /// The host's PID 1 as the test's side sees it.
    init_pid: u32,
}

impl TestHost {
    /// A new host with sshd listening on port 22 of both addresses.
    pub fn start() -> TestHost {
        let scratch = tempfile::Builder::new()
            .prefix("capstan-host-")
            .tempdir()
            .unwrap();
        let (slot, name) = claim_netns();
        let v4 = Ipv4Addr::new(192, 0, 2, (slot * 4 + 2) as u8);
        let side_v4 = Ipv4Addr::new(192, 0, 2, (slot * 4 + 1) as u8);
        let v6: Ipv6Addr = format!("2001:db8:c0:{slot:x}::2").parse().unwrap();
        let side_v6: Ipv6Addr = format!("2001:db8:c0:{slot:x}::1").parse().unwrap();
        let (side, inside) = (format!("{name}a"), format!("{name}b"));
        let netns = |args: &str| format!("ip netns exec {name} {args}");
        sh(&[
            format!("ip link add {side} type veth peer name {inside}"),
            format!("ip link set {inside} netns {name}"),
            format!("ip addr add {side_v4}/30 dev {side}"),
            format!("ip -6 addr add {side_v6}/64 dev {side} nodad"),
            format!("ip link set {side} up"),
            netns(&format!("ip addr add {v4}/30 dev {inside}")),
            netns(&format!("ip -6 addr add {v6}/64 dev {inside} nodad")),
            netns(&format!("ip link set {inside} up")),
            netns("ip link set lo up"),
        ]);

        let dir = scratch.path();
        keygen(&dir.join("id_root"));
        keygen(&dir.join("ssh_host_ed25519_key"));
        let init = init_script(dir);
        fs::write(dir.join("init.sh"), init).unwrap();
        let unshare = Command::new("ip")
            .args([
                "netns", "exec", &name, "unshare", "--mount", "--pid", "--uts", "--ipc",
            ])
            .args(["--fork", "--kill-child", "--propagation", "private"])
            .args(["bash"])
            .arg(dir.join("init.sh"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("init.log")).unwrap())
            .spawn()
            .expect("unshare starts the host");
        let mut host = TestHost {
            name,
            v4,
            v6,
            scratch,
            init_pid: 0,
            unshare,
        };
        host.init_pid = host.wait_for_init();
        let host_key =
            fs::read_to_string(host.scratch.path().join("ssh_host_ed25519_key.pub")).unwrap();
        let key = host_key
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        fs::write(host.known_hosts(), format!("{v4} {key}\n{v6} {key}\n")).unwrap();
        fs::write(host.ssh_config(), ssh_config(host.scratch.path())).unwrap();
        host.wait_for_sshd();
        host
    }

    /// The host's PID 1 appears as unshare's only child.
    fn wait_for_init(&mut self) -> u32 {
        let pid = self.unshare.id();
        let children = format!("/proc/{pid}/task/{pid}/children");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = fs::read_to_string(&children)
                .ok()
                .and_then(|text| text.split_whitespace().next().map(str::to_owned))
            {
                return child.parse().unwrap();
            }
            if let Ok(Some(status)) = self.unshare.try_wait() {
                panic!("the host did not start ({status}):\n{}", self.init_log());
            }
            assert!(
                Instant::now() < deadline,
                "no host init:\n{}",
                self.init_log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn wait_for_sshd(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&(self.v4, 22).into(), Duration::from_millis(200)).is_err()
        {
            if let Ok(Some(status)) = self.unshare.try_wait() {
                panic!("the host stopped ({status}):\n{}", self.init_log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd does not listen on {}:22:\n{}",
                self.v4,
                self.init_log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn init_log(&self) -> String {
        fs::read_to_string(self.scratch.path().join("init.log")).unwrap_or_default()
    }

    /// known_hosts with the host's ed25519 key for both addresses.
    pub fn known_hosts(&self) -> PathBuf {
        self.scratch.path().join("known_hosts")
    }

    /// An ssh config (for `ssh -F`) with the root key and the pinned host key,
    /// in batch mode: what a CI job would have.
    pub fn ssh_config(&self) -> PathBuf {
        self.scratch.path().join("ssh_config")
    }

    /// A folder on the test's side for the test's own files (other keys).
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// A path of the host's file system, as the test's side reaches it.
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root/{}",
            self.init_pid,
            inside.trim_start_matches('/')
        ))
    }

    /// Runs a shell script on the host as its root, in all its namespaces,
    /// without SSH (to plant or inspect what a test needs).
    pub fn run(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.init_pid.to_string()])
            .args(["-m", "-u", "-i", "-n", "-p", "-r", "-w"])
            .args(["/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter runs")
    }

    /// [`TestHost::run`], which must succeed; its stdout.
    pub fn run_ok(&self, script: &str) -> String {
        let output = self.run(script);
        assert!(
            output.status.success(),
            "on the host, `{script}` failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The host's PID 1, as the test's side sees it.
    pub fn init_pid(&self) -> u32 {
        self.init_pid
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Killing unshare kills PID 1 (--kill-child), and with it every
        // process of the PID namespace; the mount namespace, its overlay and
        // its tmpfs go with the last of them.
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{}", self.init_pid)).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The veth pair goes with the namespace.
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// The first free slot: `ip netns add` fails when the name exists, so test
/// processes running at once never share one.
fn claim_netns() -> (u32, String) {
    let taken = addresses_in_use();
    for slot in FIRST_SLOT..SLOTS {
        // A machine may itself sit in 192.0.2.0/24 (its address, its
        // gateway): a slot that holds one of them would shadow it.
        if (0..4).any(|i| taken.contains(&Ipv4Addr::new(192, 0, 2, (slot * 4 + i) as u8))) {
            continue;
        }
        let name = format!("cth{slot}");
        let added = Command::new("ip")
            .args(["netns", "add", &name])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if added.success() {
            return (slot, name);
        }
    }
    panic!(
        "all {} test host slots are taken (`ip netns list`)",
        SLOTS - FIRST_SLOT
    );
}

/// The IPv4 addresses this machine's interfaces and routes already use.
fn addresses_in_use() -> Vec<Ipv4Addr> {
    let mut text = String::new();
    for args in [
        &["-o", "-4", "addr"][..],
        &["-4", "route", "show", "table", "all"][..],
    ] {
        let output = Command::new("ip").args(args).output().unwrap();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        text.push(' ');
    }
    text.split(|c: char| c.is_whitespace() || c == '/')
        .filter_map(|word| word.parse().ok())
        .collect()
}

fn sh(commands: &[String]) {
    for command in commands {
        let status = Command::new("sh").args(["-c", command]).status().unwrap();
        assert!(status.success(), "`{command}` failed");
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "capstan-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The host's PID 1: mount its world, then chroot into it, start sshd the
/// way Debian does (daemonized, /run/sshd.pid) and reap orphans forever.
fn init_script(scratch: &Path) -> String {
    let s = scratch.display();
    format!(
        r#"set -e
M={s}/fs
mkdir -p $M
mount -t tmpfs -o mode=0755 tmpfs $M
mkdir $M/upper $M/work $M/root
mount -t overlay overlay -o lowerdir=/,upperdir=$M/upper,workdir=$M/work $M/root
R=$M/root
mount -t proc proc $R/proc
mount --rbind /dev $R/dev
mount -t sysfs sysfs $R/sys
mount -t tmpfs -o mode=0755 tmpfs $R/run
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
mkdir -p $R/run/sshd $R/root/.ssh
chmod 0700 $R/root/.ssh
cp {s}/id_root.pub $R/root/.ssh/authorized_keys
cp {s}/ssh_host_ed25519_key $R/etc/ssh/ssh_host_ed25519_key
cp {s}/ssh_host_ed25519_key.pub $R/etc/ssh/ssh_host_ed25519_key.pub
rm -f $R/etc/ssh/sshd_config.d/*.conf $R/etc/nologin $R/run/nologin
hostname capstan-test-host
exec chroot $R /bin/bash -c '/usr/sbin/sshd -E /var/log/sshd.log; trap : CHLD; while :; do sleep 1 & wait $!; done'
"#
    )
}

fn ssh_config(scratch: &Path) -> String {
    let s = scratch.display();
    format!(
        "Host *\n  IdentityFile {s}/id_root\n  IdentitiesOnly yes\n  UserKnownHostsFile {s}/known_hosts\n  \
         GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n  \
         ConnectTimeout 5\n  LogLevel ERROR\n"
    )
}
