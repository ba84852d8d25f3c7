//! Builds real venvs with the `python3` on PATH, installing tiny pure-Python packages
//! from PyPI (pip's cache makes reruns quick).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use capstan_venv::{ensure, existing, Requirements, Venv, VenvError, VenvSpec};
use tempfile::TempDir;

/// An app directory with its venv at `.capstan/venv`.
struct App {
    root: TempDir,
}

impl App {
    fn new() -> App {
        App {
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    fn venv_dir(&self) -> PathBuf {
        self.path().join(".capstan").join("venv")
    }

    fn stamp(&self) -> PathBuf {
        self.venv_dir().join(".capstan-stamp")
    }

    fn write_requirements(&self, text: &str) -> Requirements {
        let path = self.path().join("requirements.txt");
        fs::write(&path, text).unwrap();
        Requirements::Txt(path)
    }

    fn spec(&self, requirements: Requirements) -> VenvSpec<'_> {
        VenvSpec {
            dir: self.venv_dir(),
            python: "python3",
            requirements,
            app_root: self.path(),
        }
    }

    /// Runs `ensure`, returning its result and every progress line.
    async fn ensure(&self, requirements: Requirements) -> (Result<Venv, VenvError>, Vec<String>) {
        let mut lines = Vec::new();
        let result = ensure(&self.spec(requirements), &mut |line: &str| {
            lines.push(line.to_owned())
        })
        .await;
        (result, lines)
    }
}

/// Runs `code` with the venv's python and returns its trimmed stdout.
fn python(venv: &Venv, code: &str) -> String {
    let out = Command::new(&venv.python)
        .args(["-c", code])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn system_python_version() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn requirements_none_builds_a_bare_venv_whose_python_runs() {
    let app = App::new();
    let (venv, lines) = app.ensure(Requirements::None).await;
    let venv = venv.unwrap();

    assert_eq!(venv.dir, app.venv_dir());
    assert_eq!(venv.python, app.venv_dir().join("bin/python"));
    assert_eq!(venv.version, system_python_version());
    assert_eq!(
        python(&venv, "import sys; print(sys.prefix)"),
        venv.dir.to_str().unwrap()
    );
    assert!(
        !venv.dir.join("bin/pip").exists(),
        "nothing to install, no pip"
    );
    // Built in a temp dir, but activates as itself.
    let activated = Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1/bin/activate" && echo "$VIRTUAL_ENV" && command -v python"#)
        .arg("bash")
        .arg(&venv.dir)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(activated.stdout).unwrap(),
        format!("{}\n{}\n", venv.dir.display(), venv.python.display())
    );
    assert!(app.stamp().exists());
    assert!(lines.is_empty(), "venv prints nothing: {lines:#?}");
    let leftovers: Vec<_> = fs::read_dir(app.path().join(".capstan"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != "venv")
        .collect();
    assert!(leftovers.is_empty(), "no temp dir is left: {leftovers:?}");
}

#[tokio::test]
async fn requirements_txt_is_installed_once_and_again_only_when_it_changes() {
    let app = App::new();
    let requirements = app.write_requirements("six==1.16.0\n");
    let (venv, lines) = app.ensure(requirements.clone()).await;
    let venv = venv.unwrap();
    assert_eq!(
        python(&venv, "import six; print(six.__version__)"),
        "1.16.0"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Successfully installed six-1.16.0")),
        "pip's output reaches progress: {lines:#?}"
    );
    // pip's scripts must point at the venv's final path, not the temp dir it was built in.
    let pip_script = fs::read_to_string(venv.dir.join("bin/pip")).unwrap();
    assert!(
        pip_script.starts_with(&format!("#!{}\n", venv.python.display())),
        "{pip_script}"
    );

    // Unchanged: nothing runs.
    let stamped = fs::metadata(app.stamp()).unwrap().modified().unwrap();
    let (again, lines) = app.ensure(requirements).await;
    assert_eq!(again.unwrap(), venv);
    assert!(lines.is_empty(), "nothing ran: {lines:#?}");
    assert_eq!(
        fs::metadata(app.stamp()).unwrap().modified().unwrap(),
        stamped
    );

    // Changed: pip runs again, in the same venv (a rebuild would lose the marker).
    let marker = venv.dir.join("marker");
    fs::write(&marker, "").unwrap();
    let requirements = app.write_requirements("six==1.16.0\nitsdangerous==2.2.0\n");
    let (venv, lines) = app.ensure(requirements).await;
    let venv = venv.unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Successfully installed itsdangerous-2.2.0")),
        "{lines:#?}"
    );
    assert_eq!(
        python(&venv, "import itsdangerous, six; print(six.__version__)"),
        "1.16.0"
    );
    assert!(marker.exists(), "the venv was updated in place");
    let stamp = fs::read_to_string(app.stamp()).unwrap();
    assert!(stamp.contains("itsdangerous==2.2.0"), "{stamp}");
}

#[tokio::test]
async fn packages_given_to_a_bare_venv_are_installed_after_bootstrapping_pip() {
    let app = App::new();
    let venv = app.ensure(Requirements::None).await.0.unwrap();
    let marker = venv.dir.join("marker");
    fs::write(&marker, "").unwrap();

    let packages = Requirements::Packages {
        source: app.path().join("pyproject.toml"),
        packages: vec!["six==1.16.0".into()],
    };
    let (venv, lines) = app.ensure(packages.clone()).await;
    let venv = venv.unwrap();
    assert_eq!(
        python(&venv, "import six; print(six.__version__)"),
        "1.16.0"
    );
    assert!(venv.dir.join("bin/pip").exists());
    assert!(marker.exists(), "the venv was updated in place");
    assert!(lines
        .iter()
        .any(|l| l.contains("Successfully installed six-1.16.0")));
    assert!(
        app.ensure(packages).await.1.is_empty(),
        "then it is up to date"
    );
}

#[tokio::test]
async fn broken_requirement_fails_with_pips_message_writes_no_stamp_and_is_retried() {
    let app = App::new();
    let broken = app.write_requirements("this-package-does-not-exist-capstan==1.0\n");
    let (result, _) = app.ensure(broken).await;
    let err = result.unwrap_err();
    let VenvError::InstallFailed {
        requirements,
        code,
        last_lines,
    } = &err
    else {
        panic!("expected InstallFailed, got {err:?}");
    };
    assert_eq!(requirements, "requirements.txt");
    assert_eq!(*code, Some(1));
    assert!(
        last_lines
            .iter()
            .any(|l| l.contains("this-package-does-not-exist-capstan")),
        "{last_lines:#?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(
            "pip could not install requirements.txt: No matching distribution found for \
             this-package-does-not-exist-capstan==1.0. Fix the file and run again"
        ),
        "{message}"
    );
    assert!(!app.stamp().exists());

    // Fixed file: the next run installs it without starting the venv over.
    let marker = app.venv_dir().join("marker");
    fs::write(&marker, "").unwrap();
    let fixed = app.write_requirements("six==1.16.0\n");
    let venv = app.ensure(fixed).await.0.unwrap();
    assert_eq!(
        python(&venv, "import six; print(six.__version__)"),
        "1.16.0"
    );
    assert!(app.stamp().exists());
    assert!(marker.exists());
}

#[tokio::test]
async fn a_venv_whose_python_is_gone_is_rebuilt() {
    let app = App::new();
    let dir = app.venv_dir();
    // What is left when the Python a venv was made with is uninstalled.
    let made = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(made.success());
    for name in ["python", "python3"] {
        fs::remove_file(dir.join("bin").join(name)).unwrap();
    }
    fs::write(dir.join("marker"), "").unwrap();

    let (venv, _) = app.ensure(Requirements::None).await;
    let venv = venv.unwrap();
    assert_eq!(python(&venv, "print('ok')"), "ok");
    assert!(!dir.join("marker").exists(), "the broken venv was replaced");
    assert!(app.stamp().exists());
}

#[tokio::test]
async fn missing_python_is_reported_as_not_found_with_what_to_do() {
    let app = App::new();
    for python in ["capstan-no-such-python3", "/nonexistent/bin/python3"] {
        let spec = VenvSpec {
            python,
            ..app.spec(Requirements::None)
        };
        let err = ensure(&spec, &mut |_: &str| {}).await.unwrap_err();
        assert!(
            matches!(&err, VenvError::PythonNotFound { python: p } if p == python),
            "{err:?}"
        );
        assert!(err.to_string().contains("capstan.toml"), "{err}");
    }
    assert!(!app.venv_dir().exists());
}

#[tokio::test]
async fn python_older_than_3_8_is_refused_naming_its_version() {
    let app = App::new();
    // Stands in for an old interpreter: answers the version question like Python 3.6.
    let old = app.path().join("python3.6");
    fs::write(&old, "#!/bin/sh\necho 3.6.9\n").unwrap();
    make_executable(&old);
    let spec = VenvSpec {
        python: old.to_str().unwrap(),
        ..app.spec(Requirements::None)
    };
    let err = ensure(&spec, &mut |_: &str| {}).await.unwrap_err();
    assert!(
        matches!(&err, VenvError::PythonTooOld { version, .. } if version == "3.6.9"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("is Python 3.6.9, but capstan needs Python 3.8"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_requirements_file_is_reported_with_its_path() {
    let app = App::new();
    let missing = app.path().join("requirements.txt");
    let (result, _) = app.ensure(Requirements::Txt(missing.clone())).await;
    let err = result.unwrap_err();
    assert!(
        matches!(&err, VenvError::RequirementsUnreadable { path, .. } if *path == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains(missing.to_str().unwrap()), "{err}");
}

#[tokio::test]
async fn a_directory_in_the_venvs_place_that_is_not_a_venv_is_left_alone() {
    let app = App::new();
    fs::create_dir_all(app.venv_dir()).unwrap();
    fs::write(app.venv_dir().join("app.py"), "print('mine')").unwrap();
    let (result, _) = app.ensure(Requirements::None).await;
    let err = result.unwrap_err();
    assert!(matches!(err, VenvError::NotAVenv { .. }), "{err:?}");
    assert!(app.venv_dir().join("app.py").exists());
}

#[tokio::test]
async fn existing_accepts_a_venv_with_a_working_python_and_never_installs() {
    let app = App::new();
    let dir = app.venv_dir();
    let made = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(made.success());

    let venv = existing(&dir).await.unwrap();
    assert_eq!(venv.python, dir.join("bin/python"));
    assert_eq!(venv.version, system_python_version());
    assert!(!dir.join(".capstan-stamp").exists());
    assert!(!dir.join("bin/pip").exists());
}

#[tokio::test]
async fn existing_rejects_a_directory_without_a_working_python() {
    let app = App::new();
    let err = existing(&app.path().join("nope")).await.unwrap_err();
    assert!(
        matches!(&err, VenvError::ExistingVenvInvalid { reason, .. } if reason.contains("does not exist")),
        "{err:?}"
    );

    let err = existing(app.path()).await.unwrap_err();
    assert!(
        matches!(&err, VenvError::ExistingVenvInvalid { reason, .. } if reason.contains("no bin/python")),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("is not a usable virtualenv"),
        "{err}"
    );

    let bin = app.path().join("bin");
    fs::create_dir(&bin).unwrap();
    fs::write(
        bin.join("python"),
        "#!/bin/sh\necho 'it broke' >&2\nexit 2\n",
    )
    .unwrap();
    make_executable(&bin.join("python"));
    let err = existing(app.path()).await.unwrap_err();
    assert!(
        matches!(&err, VenvError::ExistingVenvInvalid { last_lines, .. } if last_lines == &["it broke"]),
        "{err:?}"
    );
    assert!(err.to_string().contains("exited with code 2"), "{err}");
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}
