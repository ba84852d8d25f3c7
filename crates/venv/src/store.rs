//! The venv store, `<store>/<key>`: one venv per distinct Python version and
//! dependency input, shared by every release that has the same ones.
//!
//! Layout: `<store>/.builds/<key>-<nonce>/` is a venv's real folder, built in
//! place (venvs cannot move: pip writes their absolute path into every script);
//! `<store>/<key>` is a symlink to it, made by renaming a fresh symlink over it
//! once the build is complete. So a venv in the store is complete or absent: a
//! build that fails, is cancelled or is killed leaves only a `.builds` folder
//! nothing points to, removed by the next build of its key or by [`prune`].
//! `<store>/.builds/<key>.lock` is flocked by whoever builds that key, so
//! concurrent callers wait for one build and then reuse it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use tracing::Instrument;

use crate::build::{self, Installer};
use crate::stamp::{Input, Stamp};
use crate::{interpreter, Requirements, Venv, VenvError};

/// Where the builds live inside the store, with their locks.
const BUILDS: &str = ".builds";
/// Bump when the key's input or the way store venvs are built changes.
const FORMAT: &str = "capstan-venv-store 1";
/// Lock files next to a `pyproject.toml` whose content is part of the key.
const LOCK_FILES: [&str; 2] = ["uv.lock", "poetry.lock"];

/// What to build a store venv from.
#[derive(Debug, Clone)]
pub struct StoreSpec<'a> {
    /// The interpreter: a name on `PATH` (`"python3"`) or a path.
    pub python: &'a str,
    /// What to install. For [`Requirements::Packages`] from a `pyproject.toml`,
    /// a `uv.lock` or `poetry.lock` beside it is part of the key too.
    pub requirements: Requirements,
    /// The app's root; the installer runs there, so relative paths resolve.
    pub app_root: &'a Path,
    /// pip or uv ([`Installer::detect`] picks uv when it is on `PATH`).
    pub installer: Installer,
}

/// A store key: the hex SHA-256 (first 128 bits) of the Python version and the
/// dependency input. Also the venv's name in the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey(String);

impl StoreKey {
    /// The key as its folder name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key a store venv's folder name is, if `name` has a key's shape
    /// (32 lowercase hex digits).
    pub fn parse(name: &str) -> Option<StoreKey> {
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        (name.len() == 32 && name.chars().all(hex)).then(|| StoreKey(name.to_owned()))
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How [`ensure_in_store`] came by its venv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was there already (perhaps built by a concurrent caller we waited for).
    Reused,
    /// It was built now, in this long.
    Built {
        /// From the start of the build to the venv being in place.
        elapsed: Duration,
    },
}

/// A venv from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVenv {
    /// The venv, at `<store>/<key>`.
    pub venv: Venv,
    /// Its key, to give [`prune`] among those to keep.
    pub key: StoreKey,
    /// Reused or built.
    pub outcome: Outcome,
}

/// Returns the store's venv for `spec`, building it first when there is none.
///
/// Reuse costs two interpreter version checks and reading the dependency files.
/// A build happens under the key's lock (a second caller waits, then reuses
/// it) and becomes visible only once complete. Dropping the future kills the
/// installer's whole process group and leaves no venv in the store.
pub async fn ensure_in_store(
    store: &Path,
    spec: &StoreSpec<'_>,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<StoredVenv, VenvError> {
    let store = absolute(store)?;
    let span = tracing::info_span!(
        "venv.store",
        store = %store.display(),
        python = spec.python,
        key = tracing::field::Empty,
    );
    ensure_at(store, spec, progress).instrument(span).await
}

/// Removes every venv in the store whose key is not in `keep`, and every build
/// nothing points to (failed or interrupted) that no one is working on.
/// Returns the keys removed.
pub async fn prune(store: &Path, keep: &[StoreKey]) -> Result<Vec<StoreKey>, VenvError> {
    let store = absolute(store)?;
    let mut removed = Vec::new();
    let mut live = Vec::new();
    for (key, link) in entries(&store).await? {
        let target = tokio::fs::read_link(&link)
            .await
            .map_err(|e| VenvError::io("read the link", &link, e))?;
        if keep.contains(&key) {
            live.push(store.join(target));
            continue;
        }
        tracing::info!(%key, "removing an unused venv");
        // The link first: from then on the venv is absent, never half there.
        tokio::fs::remove_file(&link)
            .await
            .map_err(|e| VenvError::io("remove", &link, e))?;
        remove_dir(&store.join(target)).await?;
        removed.push(key);
    }
    let builds = store.join(BUILDS);
    let Ok(mut dirs) = tokio::fs::read_dir(&builds).await else {
        return Ok(removed);
    };
    while let Some(entry) = dirs
        .next_entry()
        .await
        .map_err(|e| VenvError::io("list", &builds, e))?
    {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(key) = name.split('-').next().and_then(StoreKey::parse) else {
            continue;
        };
        if live.contains(&path) || !entry.file_type().await.is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // A build in progress holds its key's lock; leave it be.
        if let Some(_lock) = try_lock(&builds, &key).await? {
            tracing::info!(build = %path.display(), "removing an unfinished venv build");
            remove_dir(&path).await?;
        }
    }
    Ok(removed)
}

async fn ensure_at(
    store: PathBuf,
    spec: &StoreSpec<'_>,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<StoredVenv, VenvError> {
    let app_root = absolute(spec.app_root)?;
    let requirements = match &spec.requirements {
        Requirements::Txt(path) => Requirements::Txt(absolute(path)?),
        other => other.clone(),
    };
    let base = interpreter::base(spec.python).await?;
    let key = key(&base.version, &requirements).await?;
    tracing::Span::current().record("key", key.as_str());
    let link = store.join(key.as_str());
    let found = |outcome| StoredVenv {
        venv: Venv::new(link.clone(), base.version.clone()),
        key: key.clone(),
        outcome,
    };
    if is_ready(&link).await {
        tracing::debug!("venv is in the store");
        return Ok(found(Outcome::Reused));
    }

    let builds = store.join(BUILDS);
    tokio::fs::create_dir_all(&builds)
        .await
        .map_err(|e| VenvError::io("create the directory", &builds, e))?;
    let _lock = lock(&builds, &key).await?;
    if is_ready(&link).await {
        tracing::info!("venv was built meanwhile by another caller");
        return Ok(found(Outcome::Reused));
    }
    // We hold the lock, so any build of this key still there was abandoned.
    remove_builds_of(&builds, &key).await?;

    let started = Instant::now();
    let name = format!("{key}-{}", nonce());
    let dir = builds.join(&name);
    tracing::info!(build = %dir.display(), installer = ?spec.installer, "building venv");
    let built = build::build(
        &spec.installer,
        &base,
        spec.python,
        &dir,
        &app_root,
        &requirements,
        progress,
    )
    .await;
    if let Err(error) = built {
        let _ = tokio::fs::remove_dir_all(&dir).await;
        return Err(error);
    }
    publish(&store, &link, &Path::new(BUILDS).join(&name)).await?;
    let elapsed = started.elapsed();
    tracing::info!(?elapsed, "venv is ready in the store");
    Ok(found(Outcome::Built { elapsed }))
}

/// The key for a venv on Python `version` with `requirements` installed: the
/// same length-prefixed encoding as the stamp, plus any lock file.
async fn key(version: &str, requirements: &Requirements) -> Result<StoreKey, VenvError> {
    let input = Input::read(requirements).await?;
    let mut bytes = format!("{FORMAT}\n").into_bytes();
    bytes.extend_from_slice(Stamp::new(version, &input).bytes());
    if let Requirements::Packages { source, .. } = requirements {
        let dir = source.parent().unwrap_or(Path::new("."));
        for name in LOCK_FILES {
            let path = dir.join(name);
            match tokio::fs::read(&path).await {
                Ok(content) => {
                    bytes.extend_from_slice(format!("{name} {}\n", content.len()).as_bytes());
                    bytes.extend_from_slice(&content);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(VenvError::io("read", path, e)),
            }
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(StoreKey(hex))
}

/// Whether `<store>/<key>` is there; being there means complete.
async fn is_ready(link: &Path) -> bool {
    tokio::fs::metadata(link).await.is_ok_and(|m| m.is_dir())
}

/// Points `link` at `target` (relative to the store) by renaming a new symlink
/// over it, then makes the rename durable.
async fn publish(store: &Path, link: &Path, target: &Path) -> Result<(), VenvError> {
    let temp = store.join(format!(".{}.link-{}", nonce(), std::process::id()));
    let (store, link, target) = (store.to_owned(), link.to_owned(), target.to_owned());
    tokio::task::spawn_blocking(move || {
        std::os::unix::fs::symlink(&target, &temp)
            .map_err(|e| VenvError::io("create the link", &temp, e))?;
        std::fs::rename(&temp, &link).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            VenvError::io("move the venv into place at", &link, e)
        })?;
        std::fs::File::open(&store)
            .and_then(|d| d.sync_all())
            .map_err(|e| VenvError::io("sync", &store, e))
    })
    .await
    .map_err(|e| VenvError::io("publish", PathBuf::new(), io::Error::other(e)))?
}

/// The store's venvs: every `<key>` symlink.
async fn entries(store: &Path) -> Result<Vec<(StoreKey, PathBuf)>, VenvError> {
    let mut found = Vec::new();
    let mut dir = match tokio::fs::read_dir(store).await {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(VenvError::io("list", store, e)),
    };
    while let Some(entry) = dir
        .next_entry()
        .await
        .map_err(|e| VenvError::io("list", store, e))?
    {
        let Some(key) = StoreKey::parse(&entry.file_name().to_string_lossy()) else {
            continue;
        };
        if entry.file_type().await.is_ok_and(|t| t.is_symlink()) {
            found.push((key, entry.path()));
        }
    }
    Ok(found)
}

/// Removes `<builds>/<key>-*`: builds of this key that were abandoned.
async fn remove_builds_of(builds: &Path, key: &StoreKey) -> Result<(), VenvError> {
    let prefix = format!("{key}-");
    let mut dir = tokio::fs::read_dir(builds)
        .await
        .map_err(|e| VenvError::io("list", builds, e))?;
    while let Some(entry) = dir
        .next_entry()
        .await
        .map_err(|e| VenvError::io("list", builds, e))?
    {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            tracing::info!(build = %entry.path().display(), "removing an abandoned venv build");
            remove_dir(&entry.path()).await?;
        }
    }
    Ok(())
}

async fn remove_dir(path: &Path) -> Result<(), VenvError> {
    match tokio::fs::remove_dir_all(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(VenvError::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Waits for the key's build lock. Held until dropped; the kernel lets go if
/// the process dies, so a killed build never blocks the next one.
async fn lock(builds: &Path, key: &StoreKey) -> Result<Flock<std::fs::File>, VenvError> {
    let path = builds.join(format!("{key}.lock"));
    tokio::task::spawn_blocking(move || {
        let file = open_lock(&path)?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| VenvError::io("lock", &path, errno.into()))
    })
    .await
    .map_err(|e| VenvError::io("lock", builds, io::Error::other(e)))?
}

/// The key's lock if no one holds it.
async fn try_lock(
    builds: &Path,
    key: &StoreKey,
) -> Result<Option<Flock<std::fs::File>>, VenvError> {
    let path = builds.join(format!("{key}.lock"));
    let file = open_lock(&path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(VenvError::io("lock", &path, errno.into())),
    }
}

fn open_lock(path: &Path) -> Result<std::fs::File, VenvError> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| VenvError::io("open the lock", path, e))
}

/// A name part no other build uses: our pid and the clock's nanoseconds.
fn nonce() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}{nanos:09}", std::process::id())
}

fn absolute(path: &Path) -> Result<PathBuf, VenvError> {
    std::path::absolute(path).map_err(|e| VenvError::io("resolve", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_key_changes_with_the_python_version_the_requirements_and_a_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let pyproject = dir.path().join("pyproject.toml");
        let packages = |list: &[&str]| Requirements::Packages {
            source: pyproject.clone(),
            packages: list.iter().map(|s| s.to_string()).collect(),
        };
        let a = key("3.11.7", &packages(&["flask"])).await.unwrap();
        assert_eq!(a, key("3.11.7", &packages(&["flask"])).await.unwrap());
        assert!(StoreKey::parse(a.as_str()).is_some(), "{a}");
        assert_ne!(a, key("3.11.8", &packages(&["flask"])).await.unwrap());
        assert_ne!(a, key("3.11.7", &packages(&["flask", "rq"])).await.unwrap());
        std::fs::write(dir.path().join("uv.lock"), "version = 1\n").unwrap();
        let locked = key("3.11.7", &packages(&["flask"])).await.unwrap();
        assert_ne!(a, locked);
        std::fs::write(dir.path().join("uv.lock"), "version = 2\n").unwrap();
        assert_ne!(locked, key("3.11.7", &packages(&["flask"])).await.unwrap());
    }

    #[test]
    fn only_32_hex_digits_are_a_key() {
        assert!(StoreKey::parse(&"0a".repeat(16)).is_some());
        assert!(StoreKey::parse(&"0A".repeat(16)).is_none());
        assert!(StoreKey::parse("0a").is_none());
        assert!(StoreKey::parse(".builds").is_none());
    }
}
