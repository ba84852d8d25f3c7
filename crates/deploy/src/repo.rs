//! An app's bare repository: made with `git init --bare`, with a pre-receive
//! hook that runs a given program (the daemon's `capstan hook pre-receive`), and
//! the deploy branch the first push chose.
//!
//! git runs pre-receive after the pushed objects arrived, in a quarantine
//! directory, and before any ref moves; a non-zero exit rejects the whole push
//! and leaves every ref as it was. So everything a deploy must check happens in
//! the hook, and a failed deploy is a refused push.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::git::Git;
use crate::layout::AppDir;
use crate::push::{check_push, parse_updates, Deploy, PushRefused};
use crate::DeployError;

/// The program the pre-receive hook runs, with its arguments and environment.
/// It gets git's stdin (the ref updates) and its exit status decides the push.
#[derive(Debug, Clone)]
pub struct HookCommand {
    /// The program, best an absolute path (the hook runs with git's PATH).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables exported to it, e.g. `CAPSTAN_ROOT` and `CAPSTAN_APP`.
    pub env: Vec<(String, String)>,
}

/// An app's repository, with the app folder it belongs to.
#[derive(Debug, Clone)]
pub struct Repo {
    app: AppDir,
    git: Git,
}

impl Repo {
    /// Makes the bare repository in the app's `repo.git` and installs the hook.
    pub fn init(app: &AppDir, hook: &HookCommand) -> Result<Repo, DeployError> {
        let repo = Repo::open(app);
        // `git init` itself needs no repository; --git-dir would confuse it.
        let out = std::process::Command::new("git")
            .args(["init", "--quiet", "--bare"])
            .arg(app.repo())
            .output()
            .map_err(|source| DeployError::GitMissing { source })?;
        if !out.status.success() {
            return Err(DeployError::Git {
                command: "init --bare".into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        // Objects from the network are checked before anything reads them.
        repo.git.run(&["config", "receive.fsckObjects", "true"])?;
        repo.install_hook(hook)?;
        Ok(repo)
    }

    /// The repository of an app whose folder exists.
    pub fn open(app: &AppDir) -> Repo {
        Repo {
            app: app.clone(),
            git: Git::new(app.repo()),
        }
    }

    /// git on this repository.
    pub fn git(&self) -> &Git {
        &self.git
    }

    /// Writes (or replaces) `hooks/pre-receive` so it runs `hook`, passing stdin
    /// through and exiting with its status.
    pub fn install_hook(&self, hook: &HookCommand) -> Result<(), DeployError> {
        let path = self.app.repo().join("hooks").join("pre-receive");
        let script = hook_script(hook).map_err(|e| DeployError::io("write", &path, e))?;
        capstan_fsutil::write_atomic(&path, script.as_bytes(), 0o755)
            .map_err(|e| DeployError::io("write", &path, e))?;
        // The mode given at creation is cut by the umask; a hook must be executable.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .map_err(|e| DeployError::io("make executable", &path, e))
    }

    /// The deploy branch, once a push chose it.
    pub fn deploy_branch(&self) -> Result<Option<String>, DeployError> {
        let path = self.app.deploy_branch_file();
        match fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DeployError::io("read", path, e)),
        }
    }

    /// Records `branch` as the deploy branch and points the repository's HEAD
    /// at it, so a clone of `repo.git` checks out what is deployed.
    pub fn remember_deploy_branch(&self, branch: &str) -> Result<(), DeployError> {
        let path = self.app.deploy_branch_file();
        capstan_fsutil::write_atomic(&path, format!("{branch}\n").as_bytes(), 0o644)
            .map_err(|e| DeployError::io("write", &path, e))?;
        let target = format!("refs/heads/{branch}");
        let mut cmd = self.git.command();
        // git refuses every ref change inside a push's quarantine; HEAD needs none
        // of the pushed objects, so this one command runs outside it.
        cmd.env_remove("GIT_QUARANTINE_PATH")
            .args(["symbolic-ref", "HEAD", &target]);
        let out = cmd
            .output()
            .map_err(|source| DeployError::GitMissing { source })?;
        if !out.status.success() {
            return Err(DeployError::Git {
                command: format!("symbolic-ref HEAD {target}"),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }

    /// Reads pre-receive's stdin and decides: the update to deploy, or why the
    /// push is refused (branch rules, then a shallow history).
    pub fn accept(&self, hook_stdin: &str) -> Result<Result<Deploy, PushRefused>, DeployError> {
        let updates = match parse_updates(hook_stdin) {
            Ok(u) => u,
            Err(refused) => return Ok(Err(refused)),
        };
        let branch = self.deploy_branch()?;
        let deploy = match check_push(self.app.name(), branch.as_deref(), &updates) {
            Ok(d) => d,
            Err(refused) => return Ok(Err(refused)),
        };
        if let Err(detail) = self.git.history_is_complete(&deploy.new)? {
            return Ok(Err(PushRefused::Shallow {
                short: deploy.new.short().to_owned(),
                detail,
            }));
        }
        Ok(Ok(deploy))
    }
}

/// The hook: export the variables, then `exec` the program so stdin, stdout,
/// stderr and the exit status are its own.
fn hook_script(hook: &HookCommand) -> io::Result<String> {
    let mut script = String::from(
        "#!/bin/sh\n# Written by capstan: hands each push to the deploy. \
         A non-zero exit rejects the push.\n",
    );
    for (name, value) in &hook.env {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not an environment variable name"),
            ));
        }
        script.push_str(&format!("export {name}={}\n", quote(value)));
    }
    let program = hook.program.to_str().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the hook program's path is not UTF-8",
        )
    })?;
    script.push_str("exec ");
    script.push_str(&quote(program));
    for arg in &hook.args {
        script.push(' ');
        script.push_str(&quote(arg));
    }
    script.push('\n');
    Ok(script)
}

/// Single-quotes `s` for sh: nothing inside is special but `'` itself.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_script_quotes_what_the_shell_would_expand() {
        let hook = HookCommand {
            program: "/usr/bin/capstan".into(),
            args: vec!["hook".into(), "it's $HOME".into()],
            env: vec![("CAPSTAN_ROOT".into(), "/srv/a b".into())],
        };
        let script = hook_script(&hook).unwrap();
        assert!(
            script.contains("export CAPSTAN_ROOT='/srv/a b'\n"),
            "{script}"
        );
        assert!(
            script.ends_with("exec '/usr/bin/capstan' 'hook' 'it'\\''s $HOME'\n"),
            "{script}"
        );
    }

    #[test]
    fn a_variable_name_that_is_not_one_is_refused() {
        let hook = HookCommand {
            program: "/bin/true".into(),
            args: vec![],
            env: vec![("A;rm -rf /".into(), "x".into())],
        };
        assert!(hook_script(&hook).is_err());
    }
}
