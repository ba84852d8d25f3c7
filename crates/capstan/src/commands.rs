//! Build and release commands (`[build] commands`, `[release] commands`, a
//! Procfile `release:` line): shell lines run once, in order, each through
//! `proc` in its own process group, with every output line labelled and
//! handed to the caller as it comes. `capstan run` and a daemon deploy both
//! run them through here.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use capstan_config::App;
use capstan_proc::{Child, Exit, Identity, Spec};
use nix::sys::signal::Signal;

use crate::app_env;

/// How long the last output lines of a finished command may take to arrive.
const LAST_LINES_WAIT: Duration = Duration::from_secs(1);

/// Which kind of command: the label of its output and the word in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Build,
    Release,
}

impl Step {
    /// `build` or `release`.
    pub fn label(self) -> &'static str {
        match self {
            Step::Build => "build",
            Step::Release => "release",
        }
    }
}

/// What happens while the commands run, for the caller to show.
#[derive(Debug)]
pub enum Event {
    /// A command starts.
    Started(String),
    /// One line of its output (stdout or stderr).
    Line(String),
    /// It ended successfully after this long.
    Done(Duration),
}

/// Where the caller shows what happens: a deploy's progress, the log.
pub trait Report: Send {
    fn event(&mut self, event: Event) -> impl std::future::Future<Output = ()> + Send;
}

/// Where and as whom the commands run.
pub struct Commands<'a> {
    pub step: Step,
    pub commands: &'a [String],
    pub cwd: &'a Path,
    /// The whole environment capstan adds: the app's, the venv's PATH, and
    /// whatever the caller gives (`CAPSTAN_DATA_DIR`).
    pub env: Vec<(OsString, OsString)>,
    /// The app's user; `None` runs them as capstan's own user.
    pub identity: Option<Identity>,
}

/// A failed command: which one and how it ended ("the build command `make`
/// exited with status 2"); callers say where its output is.
#[derive(Debug)]
pub struct Failed {
    pub step: Step,
    pub command: String,
    pub exit: Exit,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (step, command, exit) = (self.step.label(), &self.command, &self.exit);
        write!(f, "the {step} command `{command}` {exit}")
    }
}

impl std::error::Error for Failed {}

/// A running command's process group, killed whole when this is dropped: at
/// the command's end (what it left behind must not outlive the step) and
/// when the caller's future is dropped mid-command.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        self.0.signal_group(Signal::SIGKILL);
    }
}

impl Commands<'_> {
    /// Runs each command through `/bin/sh -c`, in order, telling `report`
    /// what happens; the first that fails stops the rest with a [`Failed`]
    /// (a command that cannot start is a `SpawnError`).
    pub async fn run(&self, report: &mut impl Report) -> anyhow::Result<()> {
        for command in self.commands {
            report.event(Event::Started(command.clone())).await;
            let started = Instant::now();
            let (lines, mut output) = tokio::sync::mpsc::unbounded_channel();
            let mut spec = Spec::shell(self.step.label(), command, self.cwd.to_owned());
            spec.env = self.env.clone();
            spec.identity = self.identity.clone();
            spec.lines = Some(lines);
            let mut group = Group(Child::spawn(spec)?);
            let exit = {
                let waited = group.0.wait();
                tokio::pin!(waited);
                loop {
                    tokio::select! {
                        exit = &mut waited => break exit,
                        Some(line) = output.recv() => report.event(Event::Line(line)).await,
                    }
                }
            };
            drop(group);
            // The last lines may still be in the pipe's readers; the channel
            // closes once both streams ended (a leftover held them open until
            // the kill above).
            while let Ok(Some(line)) = tokio::time::timeout(LAST_LINES_WAIT, output.recv()).await {
                report.event(Event::Line(line)).await;
            }
            if !exit.success() {
                return Err(Failed {
                    step: self.step,
                    command: command.clone(),
                    exit,
                }
                .into());
            }
            report.event(Event::Done(started.elapsed())).await;
        }
        Ok(())
    }
}

/// `capstan run`'s build and release commands: `[build]` then `[release]`,
/// before anything that serves starts, their output in the log as `build`
/// and `release`.
///
/// Runs the app's build commands, then its release commands, each through
/// `/bin/sh -c` in its own process group with the commands' environment
/// ([`App::command_env`], so `.flaskenv` counts) and the venv first on PATH.
/// The first one that fails stops here with an error naming it.
pub async fn run_for_app(
    app: &App,
    venv: &capstan_venv::Venv,
    workdir: &Path,
) -> anyhow::Result<()> {
    let env = app_env::process_env(&app.command_env(), venv);
    for (step, commands) in [(Step::Build, &app.build), (Step::Release, &app.release)] {
        let commands = Commands {
            step,
            commands,
            cwd: workdir,
            env: env.clone(),
            identity: None,
        };
        let label = step.label();
        let mut log = ToLog {
            label,
            command: String::new(),
        };
        let outcome = commands.run(&mut log).await;
        if let Err(error) = outcome {
            let Some(failed) = error.downcast_ref::<Failed>() else {
                return Err(error);
            };
            anyhow::bail!(
                "{failed}, so nothing was started; its output is above (labelled {label}). \
                 Fix it (try it with `capstan exec {} -- {}`) and run capstan again.",
                app.root.display(),
                failed.command
            );
        }
    }
    Ok(())
}

/// `capstan run`'s report: the log, each output line under the step's label.
struct ToLog {
    label: &'static str,
    /// The command running now, for its "done" line.
    command: String,
}

impl Report for ToLog {
    async fn event(&mut self, event: Event) {
        let label = self.label;
        match event {
            Event::Started(command) => {
                tracing::info!("{label}: running `{command}`");
                self.command = command;
            }
            Event::Line(line) => {
                tracing::info!(target: "capstan::output", process = label, "{line}")
            }
            Event::Done(elapsed) => {
                tracing::info!(?elapsed, "{label}: `{}` done", self.command)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps every event, for the assertions.
    #[derive(Default)]
    struct Kept(Vec<String>);

    impl Report for Kept {
        async fn event(&mut self, event: Event) {
            self.0.push(match event {
                Event::Started(command) => format!("started {command}"),
                Event::Line(line) => format!("line {line}"),
                Event::Done(_) => "done".to_owned(),
            });
        }
    }

    fn commands<'a>(list: &'a [String], cwd: &'a Path) -> Commands<'a> {
        Commands {
            step: Step::Build,
            commands: list,
            cwd,
            env: vec![("GREETING".into(), "hello".into())],
            identity: None,
        }
    }

    fn alive(pid: i32) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        state.is_some_and(|s| s != 'Z' && s != 'X')
    }

    #[tokio::test]
    async fn the_first_failure_stops_the_rest_and_names_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let list = [
            "echo $GREETING".to_owned(),
            "exit 3".to_owned(),
            "echo no".to_owned(),
        ];
        let mut kept = Kept::default();
        let error = commands(&list, dir.path())
            .run(&mut kept)
            .await
            .unwrap_err();
        let failed = error.downcast_ref::<Failed>().unwrap();
        assert_eq!(
            failed.to_string(),
            "the build command `exit 3` exited with status 3"
        );
        assert_eq!(
            kept.0,
            [
                "started echo $GREETING",
                "line hello",
                "done",
                "started exit 3"
            ]
        );
    }

    #[tokio::test]
    async fn a_dropped_run_and_a_finished_command_leave_no_process() {
        let dir = tempfile::tempdir().unwrap();
        // What a command leaves in its group ends with the command.
        let list = ["sleep 100 & echo $! > left".to_owned()];
        commands(&list, dir.path())
            .run(&mut Kept::default())
            .await
            .unwrap();
        let left: i32 = std::fs::read_to_string(dir.path().join("left"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // And a run whose caller gives up takes its command with it.
        let list = ["echo $$ > running; sleep 100".to_owned()];
        let running = dir.path().join("running");
        let run = async { commands(&list, dir.path()).run(&mut Kept::default()).await };
        tokio::select! {
            _ = run => panic!("sleep 100 ended"),
            () = async {
                let deadline = Instant::now() + Duration::from_secs(10);
                while std::fs::read_to_string(&running).unwrap_or_default().trim().is_empty() {
                    assert!(Instant::now() < deadline, "the command did not start");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            } => {}
        }
        let pid: i32 = std::fs::read_to_string(&running)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(left) || alive(pid) {
            assert!(Instant::now() < deadline, "{left} or {pid} still runs");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
