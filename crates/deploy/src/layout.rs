//! Where an app's things live: `<root>/apps/<name>/{repo.git,releases,venvs,data,logs}`
//! and the few files beside them. Every path is an accessor here, so no other
//! module joins path strings.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use capstan_config::AppName;

use crate::release::ReleaseId;
use crate::DeployError;

/// An app's folder under a capstan root, known to exist.
#[derive(Debug, Clone)]
pub struct AppDir {
    name: AppName,
    path: PathBuf,
}

impl AppDir {
    /// Makes the app's folder and its subfolders. An existing app is an error,
    /// so two `apps create` never share a folder.
    pub fn create(root: &Path, name: &AppName) -> Result<AppDir, DeployError> {
        let apps = root.join("apps");
        fs::create_dir_all(&apps).map_err(|e| DeployError::io("create", &apps, e))?;
        let app = AppDir {
            name: name.clone(),
            path: apps.join(name.as_str()),
        };
        match fs::create_dir(&app.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(DeployError::AppExists {
                    app: name.to_string(),
                    path: app.path,
                })
            }
            Err(e) => return Err(DeployError::io("create", &app.path, e)),
        }
        for dir in [
            app.repo(),
            app.releases(),
            app.venvs(),
            app.data(),
            app.logs(),
        ] {
            fs::create_dir(&dir).map_err(|e| DeployError::io("create", &dir, e))?;
        }
        capstan_fsutil::sync_dir(&apps).map_err(|e| DeployError::io("sync", &apps, e))?;
        Ok(app)
    }

    /// The folder of an existing app.
    pub fn open(root: &Path, name: &AppName) -> Result<AppDir, DeployError> {
        let path = root.join("apps").join(name.as_str());
        if !path.is_dir() {
            return Err(DeployError::NoSuchApp {
                app: name.to_string(),
                path,
            });
        }
        Ok(AppDir {
            name: name.clone(),
            path,
        })
    }

    /// The app's name.
    pub fn name(&self) -> &AppName {
        &self.name
    }

    /// `<root>/apps/<name>`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bare repository pushes land in: `repo.git`.
    pub fn repo(&self) -> PathBuf {
        self.path.join("repo.git")
    }

    /// The folder holding every release and its record: `releases`.
    pub fn releases(&self) -> PathBuf {
        self.path.join("releases")
    }

    /// One release's folder: `releases/<n>-<shortsha>`.
    pub fn release(&self, id: &ReleaseId) -> PathBuf {
        self.releases().join(id.dir_name())
    }

    /// One release's record, next to its folder: `releases/<n>-<shortsha>.json`.
    /// It lives outside the folder because its status changes after the folder
    /// is sealed.
    pub fn release_record(&self, id: &ReleaseId) -> PathBuf {
        self.releases().join(format!("{}.json", id.dir_name()))
    }

    /// The symlink to the live release: `current`.
    pub fn current(&self) -> PathBuf {
        self.path.join("current")
    }

    /// Where `current` is staged before it is renamed into place: `current.tmp`.
    pub(crate) fn current_tmp(&self) -> PathBuf {
        self.path.join("current.tmp")
    }

    /// The virtualenvs, one per dependency hash: `venvs`.
    pub fn venvs(&self) -> PathBuf {
        self.path.join("venvs")
    }

    /// The app's persistent files, kept across releases: `data`.
    pub fn data(&self) -> PathBuf {
        self.path.join("data")
    }

    /// One log file per process: `logs`.
    pub fn logs(&self) -> PathBuf {
        self.path.join("logs")
    }

    /// The app's secrets (mode 0600, never in a release): `env`.
    pub fn env_file(&self) -> PathBuf {
        self.path.join("env")
    }

    /// The file the deploy lock is taken on: `deploy.lock`.
    pub fn lock_file(&self) -> PathBuf {
        self.path.join("deploy.lock")
    }

    /// The branch that deploys, once the first push chose it: `deploy-branch`.
    pub fn deploy_branch_file(&self) -> PathBuf {
        self.path.join("deploy-branch")
    }

    /// The next release number, so numbers are never reused even after the
    /// records of failed builds are pruned: `next-release`.
    pub(crate) fn next_release_file(&self) -> PathBuf {
        self.path.join("next-release")
    }

    /// The temporary index a checkout builds its tree in: `releases/.<n>.index`.
    pub(crate) fn checkout_index(&self, id: &ReleaseId) -> PathBuf {
        self.releases().join(format!(".{}.index", id.number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> AppName {
        AppName::new(s).unwrap()
    }

    #[test]
    fn create_makes_every_folder_and_open_finds_it() {
        let root = tempfile::tempdir().unwrap();
        let app = AppDir::create(root.path(), &name("blog")).unwrap();
        assert_eq!(app.path(), root.path().join("apps/blog"));
        for dir in [
            app.repo(),
            app.releases(),
            app.venvs(),
            app.data(),
            app.logs(),
        ] {
            assert!(dir.is_dir(), "{} is missing", dir.display());
        }
        let opened = AppDir::open(root.path(), &name("blog")).unwrap();
        assert_eq!(opened.path(), app.path());
    }

    #[test]
    fn creating_an_app_twice_says_it_exists() {
        let root = tempfile::tempdir().unwrap();
        AppDir::create(root.path(), &name("blog")).unwrap();
        let err = AppDir::create(root.path(), &name("blog")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("an app called blog already exists"),
            "{err}"
        );
    }

    #[test]
    fn opening_an_unknown_app_says_how_to_create_it() {
        let root = tempfile::tempdir().unwrap();
        let err = AppDir::open(root.path(), &name("shop")).unwrap_err();
        assert!(
            err.to_string()
                .contains("create it with `capstan apps create shop`"),
            "{err}"
        );
    }
}
