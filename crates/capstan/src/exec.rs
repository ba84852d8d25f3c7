//! `capstan exec [DIR] -- CMD ARGS...`: one command run the way the app's
//! processes run (its venv first on PATH, its environment, its working
//! folder), attached to the terminal, ending with the command's exit status.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};

use crate::app_env;
use crate::cli::ExecArgs;

/// The exit status of a command that could not be found, as shells use it.
pub(crate) const NOT_FOUND: u8 = 127;

pub async fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let app = capstan_config::load(&args.dir)?;
    let state = app.root.join(".capstan");
    std::fs::create_dir_all(&state)
        .with_context(|| format!("could not create {}", state.display()))?;
    let venv = app_env::python_env(&app, args.venv.as_deref(), &state).await?;
    let env = app_env::process_env(&app.command_env(), &venv);
    // Like `heroku run` and `dokku run`: in the app's root, where release
    // commands and Procfile entries start too.
    let workdir = app.root.clone();
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let search = app_env::search_path(&venv).unwrap_or_default();
    let Some(resolved) = find_program(program, &search, &workdir) else {
        eprintln!(
            "\ncapstan: no command `{}` in the venv's bin or on PATH (the venv is {}). \
             Check the spelling, or add the package that provides it to the app's requirements.",
            program.to_string_lossy(),
            venv.dir.display()
        );
        return Ok(ExitCode::from(NOT_FOUND));
    };

    let child = tokio::process::Command::new(&resolved)
        .arg0(program)
        .args(rest)
        .envs(env)
        .current_dir(&workdir)
        .spawn()
        .with_context(|| format!("could not start `{}`", resolved.display()))?;
    wait_attached(child).await
}

/// Waits for a command attached to the terminal and gives its exit status
/// (128+N when signal N ended it).
pub(crate) async fn wait_attached(mut child: tokio::process::Child) -> anyhow::Result<ExitCode> {
    // Ctrl-C and Ctrl-\ reach the command from the terminal; capstan only
    // waits (these handlers keep it alive). TERM and HUP sent to capstan are
    // passed on, so a supervisor can stop the command.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let pid = child.id().map(|id| Pid::from_raw(id as i32));
    let forward = |signal: Signal| {
        if let Some(pid) = pid {
            let _ = kill(pid, signal);
        }
    };
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            _ = interrupt.recv() => {}
            _ = quit.recv() => {}
            _ = terminate.recv() => forward(Signal::SIGTERM),
            _ = hangup.recv() => forward(Signal::SIGHUP),
        }
    };
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    Ok(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)))
}

/// Where `program` is: as given when it has a slash (relative to the working
/// folder), else the first executable file of that name on `search`.
pub(crate) fn find_program(program: &OsStr, search: &OsStr, workdir: &Path) -> Option<PathBuf> {
    let name = Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        let path = workdir.join(name);
        return is_executable(&path).then_some(path);
    }
    if program.is_empty() {
        return None;
    }
    std::env::split_paths(search)
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_found_in_the_first_folder_of_the_search_path_that_has_it() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        for dir in [&first, &second] {
            let path = dir.path().join("tool");
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let search = std::env::join_paths([first.path(), second.path()]).unwrap();
        assert_eq!(
            find_program(OsStr::new("tool"), &search, Path::new("/")),
            Some(first.path().join("tool"))
        );
        assert_eq!(
            find_program(OsStr::new("nope"), &search, Path::new("/")),
            None
        );
    }

    #[test]
    fn a_file_that_is_not_executable_is_not_a_command() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes"), "text").unwrap();
        let search = dir.path().as_os_str();
        assert_eq!(
            find_program(OsStr::new("notes"), search, Path::new("/")),
            None
        );
        assert_eq!(
            find_program(OsStr::new("./notes"), search, dir.path()),
            None
        );
    }
}
