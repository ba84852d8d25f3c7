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
        let outcome = commands.run(&mut ToLog(label)).await;
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
struct ToLog(&'static str);

impl Report for ToLog {
    async fn event(&mut self, event: Event) {
        let label = self.0;
        match event {
            Event::Started(command) => tracing::info!("{label}: running `{command}`"),
            Event::Line(line) => {
                tracing::info!(target: "capstan::output", process = label, "{line}")
            }
            Event::Done(elapsed) => tracing::info!(?elapsed, "{label}: done"),
        }
    }
}
