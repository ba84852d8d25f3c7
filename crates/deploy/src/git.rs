//! Running Debian's `git` as a process against an app's bare repository.
//!
//! Every command inherits this process's environment on purpose: inside a
//! pre-receive hook the pushed objects are still in the quarantine directory
//! (`GIT_OBJECT_DIRECTORY`, with the repository's own objects as
//! `GIT_ALTERNATE_OBJECT_DIRECTORIES`), and only a git that sees those
//! variables can read the commit being pushed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::push::Oid;
use crate::DeployError;

/// A bare repository, reached through the `git` program.
#[derive(Debug, Clone)]
pub struct Git {
    git_dir: PathBuf,
    /// Variables set on every git command over this process's environment
    /// (a daemon running a checkout for a hook passes the hook's quarantine).
    env: Vec<(String, String)>,
}

/// What a release records about its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The full object id.
    pub sha: Oid,
    /// The first line of the message.
    pub subject: String,
    /// `Name <email>` of the author.
    pub author: String,
}

impl Git {
    /// git on the repository at `git_dir`.
    pub fn new(git_dir: impl Into<PathBuf>) -> Git {
        Git {
            git_dir: git_dir.into(),
            env: Vec::new(),
        }
    }

    /// The same repository, with `env` set on every git command: a daemon
    /// doing a hook's checkout passes the hook's `GIT_OBJECT_DIRECTORY` and
    /// friends, so git sees the pushed objects in their quarantine.
    pub fn with_env(mut self, env: Vec<(String, String)>) -> Git {
        self.env = env;
        self
    }

    /// The repository's folder.
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// A `git --git-dir=<repo>` command, with this process's environment.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir").arg(&self.git_dir);
        // A deploy has no one to answer a prompt.
        cmd.env("GIT_TERMINAL_PROMPT", "0");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `git <args>` and returns its stdout; a non-zero exit is an error
    /// with git's stderr.
    pub(crate) fn run(&self, args: &[&str]) -> Result<String, DeployError> {
        let mut cmd = self.command();
        cmd.args(args);
        let out = output(&mut cmd, args)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The subject and author of commit `sha`.
    pub fn commit(&self, sha: &Oid) -> Result<Commit, DeployError> {
        let text = self.run(&["show", "-s", "--format=%an <%ae>%x00%s", sha.as_str()])?;
        let (author, subject) = text
            .trim_end_matches('\n')
            .split_once('\0')
            .ok_or_else(|| DeployError::Git {
                command: format!("show {sha}"),
                stderr: "unexpected output".into(),
            })?;
        Ok(Commit {
            sha: sha.clone(),
            subject: subject.to_owned(),
            author: author.to_owned(),
        })
    }

    /// Writes the tree of `sha` into `dest` (which must not exist yet), exactly as
    /// committed: file bytes, the executable bit and symlinks.
    ///
    /// `read-tree` into a private index file, then `checkout-index` with the release folder as work tree:
    /// the repository's own index is never touched (two deploys cannot race on
    /// it), no ref is updated (refused inside the quarantine), and unlike
    /// `git archive` no `export-ignore`/`export-subst` attribute changes what
    /// lands on disk.
    pub(crate) fn checkout(&self, sha: &Oid, dest: &Path, index: &Path) -> Result<(), DeployError> {
        fs::create_dir(dest).map_err(|e| DeployError::io("create", dest, e))?;
        let _ = fs::remove_file(index);
        let result = (|| {
            let mut read = self.command();
            read.env("GIT_INDEX_FILE", index)
                .args(["read-tree", sha.as_str()]);
            output(&mut read, &["read-tree", sha.as_str()])?;
            // checkout-index writes into the work tree; the bare repository has
            // none, so the release folder is given as one for this command.
            let mut check = self.command();
            check
                .env("GIT_INDEX_FILE", index)
                .arg("--work-tree")
                .arg(dest)
                .args(["checkout-index", "--all", "--force"]);
            output(&mut check, &["checkout-index", "--all"])?;
            Ok(())
        })();
        let _ = fs::remove_file(index);
        result
    }

    /// Whether every commit reachable from `sha` is in the repository (with the
    /// quarantine). A push from a shallow clone whose history the server lacks is
    /// not: git runs pre-receive for it anyway and only rejects it afterwards
    /// ("shallow update not allowed"), so the hook must look before it deploys.
    /// `Err` carries git's words about what is missing.
    pub(crate) fn history_is_complete(&self, sha: &Oid) -> Result<Result<(), String>, DeployError> {
        // The commit itself must be there; if it is not, git was not given the
        // push's quarantine, which is a fault of the hook, not of the push.
        let mut exists = self.command();
        exists.args(["cat-file", "-e", &format!("{sha}^{{commit}}")]);
        let out = exists
            .output()
            .map_err(|source| DeployError::GitMissing { source })?;
        if !out.status.success() {
            return Err(DeployError::PushedCommitMissing {
                sha: sha.to_string(),
            });
        }
        let mut cmd = self.command();
        // With receive.shallowUpdate, git hands the hook the client's shallow
        // boundary in GIT_SHALLOW_FILE, which would make the walk stop early.
        cmd.env_remove("GIT_SHALLOW_FILE").args([
            "rev-list",
            "--quiet",
            sha.as_str(),
            "--not",
            "--all",
        ]);
        let out = cmd
            .output()
            .map_err(|source| DeployError::GitMissing { source })?;
        if out.status.success() {
            Ok(Ok(()))
        } else {
            Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()))
        }
    }
}

fn output(cmd: &mut Command, args: &[&str]) -> Result<Output, DeployError> {
    let out = cmd
        .output()
        .map_err(|source| DeployError::GitMissing { source })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(DeployError::Git {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}
