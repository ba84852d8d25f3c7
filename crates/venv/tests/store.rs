//! The venv store with real venvs: Flask from PyPI (pip's cache makes reruns
//! quick), built by pip with the `python3` on PATH.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use capstan_venv::{
    ensure_in_store, prune, Installer, Outcome, Requirements, StoreSpec, StoredVenv, VenvError,
};
use tempfile::TempDir;

/// An app folder and a store beside it.
struct Fixture {
    root: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("app")).unwrap();
        Fixture { root }
    }

    fn app(&self) -> PathBuf {
        self.root.path().join("app")
    }

    fn store(&self) -> PathBuf {
        self.root.path().join("venvs")
    }

    fn requirements(&self, text: &str) -> Requirements {
        let path = self.app().join("requirements.txt");
        fs::write(&path, text).unwrap();
        Requirements::Txt(path)
    }

    async fn ensure(&self, requirements: Requirements) -> Result<StoredVenv, VenvError> {
        self.ensure_with(requirements, &mut |_: &str| {}).await
    }

    async fn ensure_with(
        &self,
        requirements: Requirements,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<StoredVenv, VenvError> {
        let app = self.app();
        let spec = StoreSpec {
            python: "python3",
            requirements,
            app_root: &app,
            installer: Installer::Pip,
        };
        ensure_in_store(&self.store(), &spec, progress).await
    }

    /// Every name in the store folder but `.builds`, and everything in `.builds`
    /// but lock files.
    fn listing(&self) -> (Vec<String>, Vec<String>) {
        let names = |dir: PathBuf| -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(dir)
                .map(|d| {
                    d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        };
        let top = names(self.store())
            .into_iter()
            .filter(|n| n != ".builds")
            .collect();
        let builds = names(self.store().join(".builds"))
            .into_iter()
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        (top, builds)
    }
}

/// Runs a program from the venv's bin and returns its trimmed stdout.
fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Pids of live processes whose command line mentions `path`.
fn processes_mentioning(path: &Path) -> Vec<i32> {
    let needle = path.to_string_lossy().into_owned();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

/// Waits (up to 10 s) until no process mentions `path`.
async fn assert_no_process_mentions(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_mentioning(path);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still running: {left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_second_ensure_with_the_same_requirements_reuses_the_venv_quickly() {
    let fixture = Fixture::new();
    let first = fixture
        .ensure(fixture.requirements("flask\n"))
        .await
        .unwrap();
    let Outcome::Built { elapsed } = first.outcome else {
        panic!("the first one builds: {:?}", first.outcome);
    };
    assert_eq!(first.venv.dir, fixture.store().join(first.key.as_str()));
    assert_eq!(
        run(
            &first.venv.python,
            &["-c", "import flask, sys; print(sys.prefix)"]
        ),
        first.venv.dir.to_str().unwrap()
    );
    // Scripts pip wrote point at an interpreter that exists.
    assert!(run(&first.venv.dir.join("bin/flask"), &["--version"]).contains("Flask"));

    let started = Instant::now();
    let second = fixture
        .ensure(fixture.requirements("flask\n"))
        .await
        .unwrap();
    let reuse = started.elapsed();
    assert_eq!(second.outcome, Outcome::Reused);
    assert_eq!((&second.venv, &second.key), (&first.venv, &first.key));
    eprintln!("built in {elapsed:?}, reused in {reuse:?}");
    assert!(reuse < Duration::from_secs(3), "reuse took {reuse:?}");
}

#[tokio::test]
async fn a_changed_requirements_file_gives_a_new_venv_beside_the_old_one() {
    let fixture = Fixture::new();
    let old = fixture
        .ensure(fixture.requirements("flask\n"))
        .await
        .unwrap();
    let new = fixture
        .ensure(fixture.requirements("flask\nsix==1.16.0\n"))
        .await
        .unwrap();
    assert_ne!(old.key, new.key);
    assert!(matches!(new.outcome, Outcome::Built { .. }));
    assert_eq!(
        run(
            &new.venv.python,
            &["-c", "import six; print(six.__version__)"]
        ),
        "1.16.0"
    );
    assert!(
        old.venv.python.exists(),
        "the old one stays for releases that use it"
    );
    let (top, _) = fixture.listing();
    let mut keys = vec![old.key.to_string(), new.key.to_string()];
    keys.sort();
    assert_eq!(top, keys);
}

#[tokio::test]
async fn concurrent_ensures_of_one_key_wait_for_one_build() {
    let fixture = Fixture::new();
    let requirements = fixture.requirements("flask\n");
    let (a, b) = tokio::join!(
        fixture.ensure(requirements.clone()),
        fixture.ensure(requirements)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.venv, b.venv);
    let mut outcomes = [a.outcome, b.outcome].map(|o| matches!(o, Outcome::Built { .. }));
    outcomes.sort();
    assert_eq!(
        outcomes,
        [false, true],
        "one built, one reused: {a:?} {b:?}"
    );
    let (_, builds) = fixture.listing();
    assert_eq!(builds.len(), 1, "one build folder: {builds:?}");
}

/// A local package whose build hangs, in a subprocess pip starts: a grandchild.
const SLOW_SETUP: &str = "import time\ntime.sleep(300)\n";

#[tokio::test]
async fn a_cancelled_build_leaves_no_venv_and_no_pip_or_its_children_behind() {
    let fixture = Fixture::new();
    fs::create_dir(fixture.app().join("slowpkg")).unwrap();
    fs::write(fixture.app().join("slowpkg/setup.py"), SLOW_SETUP).unwrap();
    let requirements = fixture.requirements("./slowpkg\n");
    let (building, mut started) = tokio::sync::mpsc::unbounded_channel();
    {
        let mut progress = |line: &str| {
            if line.contains("metadata") || line.contains("to build wheel") {
                let _ = building.send(line.to_owned());
            }
        };
        let build = fixture.ensure_with(requirements, &mut progress);
        tokio::pin!(build);
        tokio::select! {
            result = &mut build => panic!("finished before it was cancelled: {result:?}"),
            _ = started.recv() => {}
        }
        // Wait, still polling the build, for pip's build subprocess (the hook runner).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let hook = processes_mentioning(&fixture.store())
                .into_iter()
                .any(|pid| {
                    fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("_in_process"))
                });
            if hook {
                break;
            }
            assert!(Instant::now() < deadline, "pip never ran the build hook");
            tokio::select! {
                result = &mut build => panic!("finished before it was cancelled: {result:?}"),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        // Dropping the future here is the cancel.
    }
    assert_no_process_mentions(&fixture.store()).await;
    let (top, _) = fixture.listing();
    assert!(top.is_empty(), "nothing looks ready: {top:?}");

    let again = fixture
        .ensure(fixture.requirements("flask\n"))
        .await
        .unwrap();
    assert!(matches!(again.outcome, Outcome::Built { .. }));
    run(&again.venv.python, &["-c", "import flask"]);
}

#[tokio::test]
async fn a_build_whose_pip_is_killed_fails_and_leaves_no_venv_and_no_process() {
    let fixture = Fixture::new();
    let store = fixture.store();
    let mut killed = false;
    let result = fixture
        .ensure_with(fixture.requirements("flask\n"), &mut |line: &str| {
            if killed || !line.starts_with("Collecting") {
                return;
            }
            // pip's first line: kill its whole process group, as an OOM killer might.
            if let Some(pid) = processes_mentioning(&store).first() {
                let group = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(*pid))).unwrap();
                nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).unwrap();
                killed = true;
            }
        })
        .await;
    assert!(killed);
    let error = result.unwrap_err();
    assert!(
        matches!(error, VenvError::InstallFailed { code: None, .. }),
        "{error}"
    );
    assert_no_process_mentions(&fixture.store()).await;
    assert_eq!(
        fixture.listing(),
        (vec![], vec![]),
        "no venv, no build left"
    );
}

#[tokio::test]
async fn prune_keeps_the_live_venvs_and_removes_the_rest_and_abandoned_builds() {
    let fixture = Fixture::new();
    let bare = fixture.ensure(Requirements::None).await.unwrap();
    let empty = fixture
        .ensure(Requirements::Packages {
            source: fixture.app().join("pyproject.toml"),
            packages: vec![],
        })
        .await
        .unwrap();
    assert_ne!(bare.key, empty.key);
    let abandoned = fixture
        .store()
        .join(".builds")
        .join(format!("{}-1", "f".repeat(32)));
    fs::create_dir_all(abandoned.join("bin")).unwrap();

    let removed = prune(&fixture.store(), std::slice::from_ref(&bare.key))
        .await
        .unwrap();
    assert_eq!(removed, std::slice::from_ref(&empty.key));
    assert!(!abandoned.exists());
    let (top, builds) = fixture.listing();
    assert_eq!(top, [bare.key.to_string()]);
    assert_eq!(builds.len(), 1, "{builds:?}");
    run(&bare.venv.python, &["-c", "print()"]);
    assert!(!empty.venv.dir.exists());
}

#[tokio::test]
async fn with_uv_the_store_builds_the_venv_with_uv_venv_and_uv_pip() {
    // uv is not part of this machine; the test gets it from PyPI, into a venv of its own.
    let tools = tempfile::tempdir().unwrap();
    let uv_requirements = tools.path().join("requirements.txt");
    fs::write(&uv_requirements, "uv\n").unwrap();
    let uv_venv = capstan_venv::ensure(
        &capstan_venv::VenvSpec {
            dir: tools.path().join("venv"),
            python: "python3",
            requirements: Requirements::Txt(uv_requirements),
            app_root: tools.path(),
        },
        &mut |_: &str| {},
    )
    .await
    .unwrap();
    let uv = uv_venv.dir.join("bin/uv");

    let fixture = Fixture::new();
    let app = fixture.app();
    let spec = StoreSpec {
        python: "python3",
        requirements: fixture.requirements("flask\n"),
        app_root: &app,
        installer: Installer::Uv(uv),
    };
    let mut lines = Vec::new();
    let stored = ensure_in_store(&fixture.store(), &spec, &mut |line: &str| {
        lines.push(line.to_owned())
    })
    .await
    .unwrap();
    assert!(matches!(stored.outcome, Outcome::Built { .. }));
    run(&stored.venv.python, &["-c", "import flask"]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Creating virtual environment"))
            && lines.iter().any(|l| l.contains("+ flask")),
        "uv's own output: {lines:#?}"
    );
    assert!(!stored.venv.dir.join("bin/pip").exists(), "uv seeds no pip");
    // Same key as a pip build: the installer does not change what is installed.
    let again = fixture
        .ensure(fixture.requirements("flask\n"))
        .await
        .unwrap();
    assert_eq!((again.outcome, again.key), (Outcome::Reused, stored.key));
}

#[tokio::test]
async fn a_store_venv_built_as_root_runs_as_the_apps_user_who_cannot_change_it() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test switches users, so it runs as root (as CI does)"
    );
    let fixture = Fixture::new();
    // tempdir makes 0700 folders; a server's <root>/apps/<app> is open to the app's user.
    fs::set_permissions(fixture.root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let app = fixture.app();
    // The system interpreter: one under root's 0700 home would not run as another user.
    let spec = StoreSpec {
        python: "/usr/bin/python3",
        requirements: fixture.requirements("flask\n"),
        app_root: &app,
        installer: Installer::Pip,
    };
    let stored = ensure_in_store(&fixture.store(), &spec, &mut |_: &str| {})
        .await
        .unwrap();
    let site = run(
        &stored.venv.python,
        &[
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
    );
    let as_nobody = |code: &str| {
        Command::new(&stored.venv.python)
            .args(["-c", code])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let out = as_nobody("import flask, os; print(os.getuid())");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "65534");
    let out = as_nobody(&format!("open({:?} + '/evil.py', 'w')", site));
    assert!(!out.status.success(), "the app's user wrote into its venv");
    assert!(String::from_utf8_lossy(&out.stderr).contains("PermissionError"));
}
