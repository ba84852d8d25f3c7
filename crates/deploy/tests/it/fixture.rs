//! A capstan root in a temp folder with one app, and a client repository to
//! push from. git runs with a temp HOME and no system config, so nothing of the
//! machine's git settings leaks in.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use capstan_config::AppName;
use capstan_deploy::{AppDir, HookCommand, Repo};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub app: AppDir,
    pub repo: Repo,
}

/// The result of a `git push`.
pub struct Pushed {
    pub ok: bool,
    /// git's stderr, where the hook's lines appear as `remote: ...`.
    pub output: String,
}

impl Pushed {
    /// Asserts that the push succeeded and the hook said release `number` is live.
    pub fn assert_live(&self, number: u32) {
        assert!(self.ok, "{}", self.output);
        let live = format!("remote: release {number} is live");
        assert!(self.output.contains(&live), "{}", self.output);
    }
}

impl Fixture {
    /// An app `blog` whose hook runs `pre_receive hook <args>`, and an empty
    /// client repository on branch main.
    pub fn new(hook_args: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("home")).unwrap();
        let root = dir.path().join("root");
        let name = AppName::new("blog").unwrap();
        let app = AppDir::create(&root, &name).unwrap();
        let repo = Repo::init(&app, &hook(&root, hook_args)).unwrap();
        let f = Fixture { dir, app, repo };
        f.git_in(&f.client(), &["init", "--quiet", "-b", "main"]);
        f
    }

    /// [`Fixture::new`] with no hook args, after a first push of main with
    /// `app.py` at `v = 1`; returns the fixture and that commit's id.
    pub fn deployed() -> (Fixture, String) {
        let f = Fixture::new(&[]);
        let sha = f.commit(&[("app.py", "v = 1\n")], "One");
        assert!(f.push("main").ok, "the first push deploys");
        (f, sha)
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn client(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// Replaces the app's hook so it runs `pre_receive hook <args>`.
    pub fn set_hook(&self, hook_args: &[&str]) {
        self.repo
            .install_hook(&hook(&self.root(), hook_args))
            .unwrap();
    }

    /// git with the test's own settings, in `cwd`.
    pub fn git_command(&self, cwd: &Path) -> Command {
        let home = self.dir.path().join("home");
        let mut cmd = Command::new("git");
        cmd.current_dir(cwd)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", &home)
            .env("GIT_AUTHOR_NAME", "Ada Lovelace")
            .env("GIT_AUTHOR_EMAIL", "ada@example.com")
            .env("GIT_COMMITTER_NAME", "Ada Lovelace")
            .env("GIT_COMMITTER_EMAIL", "ada@example.com");
        cmd
    }

    /// Runs git in `cwd` and returns stdout; panics on failure.
    pub fn git_in(&self, cwd: &Path, args: &[&str]) -> String {
        fs::create_dir_all(cwd).unwrap();
        let out = self.git_command(cwd).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes `files` into the client (a trailing `*` on a name makes it
    /// executable), commits them with `message` and returns the commit id.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        commit_in(self, &self.client(), files, message)
    }

    /// `git push <app repo> <refspec>` from the client.
    pub fn push(&self, refspec: &str) -> Pushed {
        self.push_from(&self.client(), refspec)
    }

    pub fn push_from(&self, client: &Path, refspec: &str) -> Pushed {
        let repo = self.app.repo();
        let out: Output = self
            .git_command(client)
            .args(["push", "--porcelain"])
            .arg(&repo)
            .arg(refspec)
            .output()
            .unwrap();
        Pushed {
            ok: out.status.success(),
            output: String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout),
        }
    }

    /// Where `name` points in the app's repository, if it exists.
    pub fn server_ref(&self, name: &str) -> Option<String> {
        let out = self
            .git_command(&self.app.repo())
            .args(["rev-parse", "--verify", "--quiet", name])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap().trim().to_owned())
    }
}

impl Drop for Fixture {
    /// Sealed release folders are 0555: as a user other than root the temp
    /// folder could not be removed without making them writable again.
    fn drop(&mut self) {
        fn unseal(dir: &Path) {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    unseal(&entry.path());
                }
            }
        }
        unseal(&self.app.releases());
    }
}

pub fn commit_in(f: &Fixture, client: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (name, content) in files {
        let (name, exec) = match name.strip_suffix('*') {
            Some(n) => (n, true),
            None => (*name, false),
        };
        let path = client.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        if exec {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    f.git_in(client, &["add", "--all"]);
    f.git_in(client, &["commit", "--quiet", "-m", message]);
    f.git_in(client, &["rev-parse", "HEAD"]).trim().to_owned()
}

/// The `pre_receive` example, which `cargo test -p capstan-deploy` builds
/// beside the test binaries.
pub fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join("pre_receive");
    // `cargo test --test it` alone does not rebuild examples; a stale hook
    // program would test old code, so say how to rebuild it instead.
    let built = fs::metadata(&path).and_then(|m| m.modified()).ok();
    let newest_source = ["src", "examples"]
        .iter()
        .flat_map(|d| fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(d)).unwrap())
        .filter_map(|e| e.unwrap().metadata().unwrap().modified().ok())
        .max()
        .unwrap();
    assert!(
        built.is_some_and(|b| b >= newest_source),
        "{} is missing or older than the crate's code: run `cargo test -p capstan-deploy` \
         (it builds the examples) or `cargo build -p capstan-deploy --examples`",
        path.display()
    );
    path
}

fn hook(root: &Path, args: &[&str]) -> HookCommand {
    let mut all = vec!["hook".to_owned()];
    all.extend(args.iter().map(|a| a.to_string()));
    HookCommand {
        program: example(),
        args: all,
        env: vec![
            ("CAPSTAN_ROOT".into(), root.to_str().unwrap().into()),
            ("CAPSTAN_APP".into(), "blog".into()),
        ],
    }
}
