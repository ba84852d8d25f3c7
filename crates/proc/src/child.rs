use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use thiserror::Error;
use tokio::sync::mpsc::UnboundedSender;

use crate::output;
use crate::{Exit, Identity, Log};

/// The descriptor number at which a child finds its inherited socket.
pub const INHERITED_FD: i32 = 3;

/// What to start.
#[derive(Debug)]
pub struct Spec {
    /// The name in logs, e.g. `web.1` or `tasks`.
    pub name: String,
    /// The program, looked up on PATH when it has no slash.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Variables added to (and overriding) capstan's own environment.
    pub env: Vec<(OsString, OsString)>,
    /// The working directory.
    pub cwd: PathBuf,
    /// A socket the child finds at descriptor [`INHERITED_FD`].
    pub inherit: Option<OwnedFd>,
    /// The user the child runs as; `None` runs it as capstan's own user.
    pub identity: Option<Identity>,
    /// Where its output lines go instead of the log, for a caller that shows
    /// them (a build's progress) or keeps the last ones for an error message.
    pub lines: Option<UnboundedSender<String>>,
    /// Where its output goes otherwise: capstan's own (the default) or a
    /// sink such as the app's log files.
    pub log: Log,
}

impl Spec {
    /// A spec that runs `program` with no arguments in `cwd`, as capstan's own
    /// user, its output in the log; set the other fields as needed.
    pub fn new(name: impl Into<String>, program: impl Into<OsString>, cwd: PathBuf) -> Self {
        Spec {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd,
            inherit: None,
            identity: None,
            lines: None,
            log: Log::Capstan,
        }
    }

    /// A spec that runs `command` through `/bin/sh -c`, as Procfiles expect.
    pub fn shell(name: impl Into<String>, command: &str, cwd: PathBuf) -> Self {
        let mut spec = Spec::new(name, "/bin/sh", cwd);
        spec.args = vec!["-c".into(), command.into()];
        spec
    }
}

/// Why a child could not be started.
#[derive(Debug, Error)]
#[error("could not start {name} ({program}){as_user}: {source}{}", hint(.as_user, .source))]
pub struct SpawnError {
    name: String,
    program: String,
    /// ` as user NAME (uid U, gid G)`, or empty without an identity.
    as_user: String,
    #[source]
    source: io::Error,
}

fn as_user(identity: Option<&Identity>) -> String {
    identity.map_or(String::new(), |i| {
        format!(" as user {} (uid {}, gid {})", i.user, i.uid, i.gid)
    })
}

/// What to do about the one failure a person can fix: switching user as non-root.
fn hint(as_user: &str, source: &io::Error) -> &'static str {
    if !as_user.is_empty() && source.raw_os_error() == Some(nix::libc::EPERM) {
        "; switching to another user needs capstan to run as root"
    } else {
        ""
    }
}

/// A running child, leader of its own process group.
#[derive(Debug)]
pub struct Child {
    name: String,
    pid: u32,
    inner: tokio::process::Child,
}

impl Child {
    /// Starts the child in a new process group, with stdout and stderr sent to
    /// the log. It gets SIGTERM if capstan itself dies, so nothing is left behind.
    /// With an [`Identity`] it switches user before exec, and the spawn fails
    /// rather than run the program as capstan's own user.
    ///
    /// Must be called from inside a tokio runtime (the output is read by tasks).
    pub fn spawn(spec: Spec) -> Result<Child, SpawnError> {
        let mut command = tokio::process::Command::new(&spec.program);
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        if let Some(identity) = &spec.identity {
            command.envs(identity.env());
        }
        let inherit = spec.inherit.as_ref().map(AsRawFd::as_raw_fd);
        let identity = spec.identity.as_ref().map(Identity::prepared);
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (setgroups, setgid, setuid, prctl, dup2,
        // fcntl); it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                if let Some(identity) = &identity {
                    identity.apply()?;
                }
                // After the switch: changing credentials clears the death signal.
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
                if let Some(fd) = inherit {
                    place_inherited_fd(fd)?;
                }
                Ok(())
            });
        }
        let mut inner = command.spawn().map_err(|source| SpawnError {
            name: spec.name.clone(),
            program: spec.program.to_string_lossy().into_owned(),
            as_user: as_user(spec.identity.as_ref()),
            source,
        })?;
        // The child has its copy now; the parent's must go so EOF works.
        drop(spec.inherit);
        let pid = inner.id().expect("a just-spawned child has a pid");
        if let Some(stdout) = inner.stdout.take() {
            output::forward(
                spec.name.clone(),
                "stdout",
                stdout,
                spec.lines.clone(),
                spec.log.clone(),
            );
        }
        if let Some(stderr) = inner.stderr.take() {
            output::forward(spec.name.clone(), "stderr", stderr, spec.lines, spec.log);
        }
        tracing::debug!(process = %spec.name, pid, "started");
        Ok(Child {
            name: spec.name,
            pid,
            inner,
        })
    }

    /// The name in logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits until the child exits.
    pub async fn wait(&mut self) -> Exit {
        match self.inner.wait().await {
            Ok(status) => status.into(),
            Err(error) => {
                tracing::warn!(process = %self.name, %error, "could not wait for child");
                Exit {
                    code: None,
                    signal: None,
                }
            }
        }
    }

    /// Sends `signal` to the child's whole process group.
    pub fn signal_group(&self, signal: Signal) {
        // ESRCH means the group is already gone, which is what we wanted.
        let _ = killpg(Pid::from_raw(self.pid as i32), signal);
    }

    /// Stops the whole process group: SIGTERM, then SIGKILL after `grace`.
    pub async fn terminate(&mut self, grace: Duration) -> Exit {
        self.signal_group(Signal::SIGTERM);
        let exit = match tokio::time::timeout(grace, self.inner.wait()).await {
            Ok(Ok(status)) => status.into(),
            _ => {
                tracing::warn!(process = %self.name, ?grace, "did not stop in time; killing it");
                self.signal_group(Signal::SIGKILL);
                self.wait().await
            }
        };
        // Grandchildren that outlived the leader still belong to the group.
        self.signal_group(Signal::SIGKILL);
        exit
    }
}

/// Puts `fd` at [`INHERITED_FD`] without close-on-exec. Runs between fork and exec.
fn place_inherited_fd(fd: i32) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    if fd == INHERITED_FD {
        // dup2 onto itself would keep FD_CLOEXEC set.
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
    } else {
        // dup2 clears FD_CLOEXEC on the new descriptor.
        nix::unistd::dup2(fd, INHERITED_FD)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn sh(script: &str) -> Spec {
        Spec::shell("test", script, std::env::temp_dir())
    }

    #[tokio::test]
    async fn a_child_reports_its_exit_code() {
        let mut child = Child::spawn(sh("exit 7")).unwrap();
        let exit = child.wait().await;
        assert_eq!(exit.code, Some(7));
        assert_eq!(exit.to_string(), "exited with status 7");
    }

    #[tokio::test]
    async fn terminate_stops_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.to_str().unwrap());
        let mut child = Child::spawn(sh(&script)).unwrap();
        let grandchild = loop {
            if let Ok(text) = std::fs::read_to_string(&pidfile) {
                if let Ok(pid) = text.trim().parse::<i32>() {
                    break pid;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        child.terminate(Duration::from_secs(5)).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while nix::sys::signal::kill(Pid::from_raw(grandchild), None).is_ok() {
            assert!(std::time::Instant::now() < deadline, "grandchild survived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn terminate_kills_a_child_that_ignores_sigterm() {
        let mut child = Child::spawn(sh("trap '' TERM; while :; do sleep 0.05; done")).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let exit = child.terminate(Duration::from_millis(200)).await;
        assert_eq!(exit.signal, Some(libc_sigkill()));
    }

    fn libc_sigkill() -> i32 {
        Signal::SIGKILL as i32
    }

    #[tokio::test]
    async fn the_inherited_socket_is_at_fd_3() {
        let (mut parent, child_end) = crate::socketpair().unwrap();
        let mut spec = sh("echo hi >&3; cat <&3 >&3");
        spec.inherit = Some(child_end);
        let mut child = Child::spawn(spec).unwrap();
        parent.write_all(b"pong").unwrap();
        parent.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = String::new();
        parent.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hi\npong");
        assert!(child.wait().await.success());
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error_naming_it() {
        let spec = Spec {
            name: "web".into(),
            program: "/nonexistent/python".into(),
            args: vec![],
            env: vec![],
            cwd: std::env::temp_dir(),
            inherit: None,
            identity: None,
            lines: None,
            log: crate::Log::Capstan,
        };
        let error = Child::spawn(spec).unwrap_err().to_string();
        assert!(
            error.contains("web") && error.contains("/nonexistent/python"),
            "{error}"
        );
    }

    #[test]
    fn a_refused_user_switch_says_that_it_needs_root() {
        let error = SpawnError {
            name: "web.1".into(),
            program: "python".into(),
            as_user: as_user(Some(&Identity {
                user: "capstan-blog".into(),
                uid: 999,
                gid: 998,
                groups: vec![998],
                home: "/var/lib/capstan/apps/blog".into(),
            })),
            source: io::Error::from_raw_os_error(nix::libc::EPERM),
        };
        let text = error.to_string();
        assert!(
            text.starts_with(
                "could not start web.1 (python) as user capstan-blog (uid 999, gid 998): "
            ) && text.ends_with("; switching to another user needs capstan to run as root"),
            "{text}"
        );
    }
}
