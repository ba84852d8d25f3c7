//! Releases on disk: `releases/<n>-<shortsha>/` holds a commit's tree, sealed
//! read-only once built, with its record `releases/<n>-<shortsha>.json` beside
//! it; `current` is the symlink to the live one, swapped by rename.
//!
//! Numbers grow by one and are never reused, not even after a failed build:
//! the next number is kept in `next-release`. Every change here takes the
//! app's [`DeployLock`], so two deploys never interleave.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::git::Git;
use crate::layout::AppDir;
use crate::lock::DeployLock;
use crate::push::Oid;
use crate::readonly;
use crate::DeployError;

/// How many built releases retention keeps by default (besides the live one
/// and the one before it).
pub const DEFAULT_KEEP: usize = 5;

/// A release's number and short commit id: its folder is `<n>-<shortsha>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseId {
    /// The release number, from 1.
    pub number: u64,
    short: String,
}

impl ReleaseId {
    /// The folder name, `<n>-<shortsha>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.number, self.short)
    }

    /// The commit's first 7 hex digits.
    pub fn short_sha(&self) -> &str {
        &self.short
    }

    /// Reads a folder name back; `None` for anything else in `releases/`.
    fn parse(name: &str) -> Option<ReleaseId> {
        let (number, short) = name.split_once('-')?;
        let number: u64 = number.parse().ok()?;
        let hex = short.len() == 7 && short.bytes().all(|b| b.is_ascii_hexdigit());
        (hex && number > 0).then(|| ReleaseId {
            number,
            short: short.to_owned(),
        })
    }
}

/// Where a release is in its life. Which release is live is not a status: it
/// is wherever `current` points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    /// Being checked out and built (or abandoned by a killed deploy).
    Building,
    /// Built and sealed: it can go live.
    Ready,
    /// Its build failed; the folder is gone, the record stays.
    Failed,
}

/// `release.json`: what `capstan releases` shows about one release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// The release number.
    pub number: u64,
    /// The full commit id.
    pub sha: String,
    /// The commit's subject line.
    pub subject: String,
    /// The commit's author, `Name <email>`.
    pub author: String,
    /// When the build began.
    pub started_at: DateTime<Utc>,
    /// When the build ended (ready or failed).
    pub built_at: Option<DateTime<Utc>>,
    /// How long the build took, in seconds.
    pub build_seconds: Option<f64>,
    /// Where the release is in its life.
    pub status: ReleaseStatus,
    /// Why the build failed, in a line.
    pub failure: Option<String>,
    /// Each time it became live (deploys and rollbacks), oldest first.
    pub live_since: Vec<DateTime<Utc>>,
    /// The name of the venv it runs with in the app's store (its key), so
    /// retention knows which venvs a kept release still needs.
    #[serde(default)]
    pub venv: Option<String>,
}

/// One release as listed: its id, record and whether it is live.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseInfo {
    /// Its number and short sha.
    pub id: ReleaseId,
    /// What its record says.
    pub record: ReleaseRecord,
    /// Whether `current` points at it.
    pub live: bool,
}

/// An app's releases.
#[derive(Debug, Clone)]
pub struct Releases {
    app: AppDir,
}

/// A release being built: its folder is writable until [`Building::finish`]
/// seals it. Build commands run in [`Building::dir`]. Dropped without
/// `finish` or `fail` (or with its process killed), it stays `building` until
/// the next [`Releases::begin`] records it as abandoned.
#[derive(Debug)]
#[must_use = "a release being built must end with finish() or fail()"]
pub struct Building {
    app: AppDir,
    id: ReleaseId,
    record: ReleaseRecord,
    started: Instant,
    /// The uid the folder was lent to for the build, if it was.
    lent_to: Option<u32>,
    sealed: bool,
}

impl Releases {
    /// The releases of `app`.
    pub fn open(app: &AppDir) -> Releases {
        Releases { app: app.clone() }
    }

    /// Starts release `n` (the next number) of commit `sha`: writes its record
    /// as building and checks the commit's tree out into its folder. Inside a
    /// pre-receive hook `git` must carry the hook's environment (the quarantine).
    pub fn begin(&self, lock: &DeployLock, git: &Git, sha: &Oid) -> Result<Building, DeployError> {
        lock.assert_for(&self.app);
        let commit = git.commit(sha)?;
        self.end_abandoned()?;
        let number = self.allocate()?;
        let id = ReleaseId {
            number,
            short: sha.short().to_owned(),
        };
        let record = ReleaseRecord {
            number,
            sha: sha.to_string(),
            subject: commit.subject,
            author: commit.author,
            started_at: Utc::now(),
            built_at: None,
            build_seconds: None,
            status: ReleaseStatus::Building,
            failure: None,
            live_since: vec![],
            venv: None,
        };
        write_record(&self.app.release_record(&id), &record)?;
        let building = Building {
            app: self.app.clone(),
            id,
            record,
            started: Instant::now(),
            lent_to: None,
            sealed: false,
        };
        let dir = building.dir();
        let index = self.app.checkout_index(&building.id);
        if let Err(e) = git.checkout(sha, &dir, &index) {
            building.fail(&e.to_string())?;
            return Err(e);
        }
        Ok(building)
    }

    /// Every kept release, newest first, with which one is live.
    pub fn list(&self) -> Result<Vec<ReleaseInfo>, DeployError> {
        let dir = self.app.releases();
        let live = self.live()?;
        let mut out = vec![];
        for entry in fs::read_dir(&dir).map_err(|e| DeployError::io("read", &dir, e))? {
            let entry = entry.map_err(|e| DeployError::io("read", &dir, e))?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(ReleaseId::parse)
            else {
                continue;
            };
            let record = read_record(&entry.path())?;
            out.push(ReleaseInfo {
                live: live.as_ref() == Some(&id),
                id,
                record,
            });
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.id.number));
        Ok(out)
    }

    /// The release `current` points at, if any.
    pub fn live(&self) -> Result<Option<ReleaseId>, DeployError> {
        let current = self.app.current();
        match fs::read_link(&current) {
            Ok(target) => Ok(target
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(ReleaseId::parse)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DeployError::io("read", current, e)),
        }
    }

    /// Makes `number` the live release: `current.tmp` is made pointing at it and
    /// renamed over `current`, so `current` always names a complete release and
    /// a reader sees the old one or the new one. Only a ready release can go live.
    pub fn activate(&self, lock: &DeployLock, number: u64) -> Result<ReleaseId, DeployError> {
        lock.assert_for(&self.app);
        let info = self.find(number)?;
        if info.record.status != ReleaseStatus::Ready {
            return Err(DeployError::NotBuilt {
                app: self.app.name().to_string(),
                number,
                status: status_word(info.record.status).into(),
            });
        }
        let tmp = self.app.current_tmp();
        let _ = fs::remove_file(&tmp);
        // Relative, so the whole root can move.
        let target = Path::new("releases").join(info.id.dir_name());
        symlink(&target, &tmp).map_err(|e| DeployError::io("create", &tmp, e))?;
        let current = self.app.current();
        fs::rename(&tmp, &current).map_err(|e| DeployError::io("replace", &current, e))?;
        capstan_fsutil::sync_dir(self.app.path())
            .map_err(|e| DeployError::io("sync", self.app.path(), e))?;
        let mut record = info.record;
        record.live_since.push(Utc::now());
        write_record(&self.app.release_record(&info.id), &record)?;
        Ok(info.id)
    }

    /// The release a rollback goes to: `number`, or with `None` the newest built
    /// release older than the live one.
    pub fn rollback_target(&self, number: Option<u64>) -> Result<ReleaseInfo, DeployError> {
        let app = self.app.name().to_string();
        let list = self.list()?;
        let live = list.iter().find(|r| r.live).map(|r| r.id.number);
        let target = match number {
            Some(n) => {
                let info = list.into_iter().find(|r| r.id.number == n).ok_or(
                    DeployError::NoSuchRelease {
                        app: app.clone(),
                        number: n,
                    },
                )?;
                if info.live {
                    return Err(DeployError::AlreadyLive { app, number: n });
                }
                info
            }
            None => {
                let live = live.ok_or(DeployError::NothingLive { app: app.clone() })?;
                list.into_iter()
                    .find(|r| r.id.number < live && r.record.status == ReleaseStatus::Ready)
                    .ok_or(DeployError::NothingToRollBackTo {
                        app: app.clone(),
                        live,
                    })?
            }
        };
        if target.record.status != ReleaseStatus::Ready {
            return Err(DeployError::NotBuilt {
                app,
                number: target.id.number,
                status: status_word(target.record.status).into(),
            });
        }
        Ok(target)
    }

    /// Retention: keeps the newest `keep` built releases, the live one and the
    /// built one before it, and the records of failed builds newer than the
    /// oldest release kept; deletes the rest (folder and record). Returns what
    /// it deleted, oldest first. The live release is never deleted.
    pub fn prune(&self, lock: &DeployLock, keep: usize) -> Result<Vec<ReleaseId>, DeployError> {
        lock.assert_for(&self.app);
        let list = self.list()?;
        let live = list.iter().find(|r| r.live).map(|r| r.id.number);
        let ready: Vec<&ReleaseInfo> = list
            .iter()
            .filter(|r| r.record.status == ReleaseStatus::Ready)
            .collect();
        let mut kept: Vec<u64> = ready.iter().take(keep).map(|r| r.id.number).collect();
        if let Some(live) = live {
            kept.push(live);
            if let Some(before) = ready.iter().find(|r| r.id.number < live) {
                kept.push(before.id.number);
            }
        }
        let oldest_kept = kept.iter().copied().min().unwrap_or(u64::MAX);
        let mut deleted = vec![];
        for info in list.iter().rev() {
            let n = info.id.number;
            let keep_it = match info.record.status {
                ReleaseStatus::Ready => kept.contains(&n),
                ReleaseStatus::Building | ReleaseStatus::Failed => n > oldest_kept,
            };
            if keep_it || Some(n) == live {
                continue;
            }
            let dir = self.app.release(&info.id);
            readonly::remove(&dir).map_err(|e| DeployError::io("delete", &dir, e))?;
            let record = self.app.release_record(&info.id);
            fs::remove_file(&record).map_err(|e| DeployError::io("delete", &record, e))?;
            deleted.push(info.id.clone());
        }
        let releases = self.app.releases();
        capstan_fsutil::sync_dir(&releases).map_err(|e| DeployError::io("sync", &releases, e))?;
        Ok(deleted)
    }

    /// Records every release still `building` as failed and deletes its
    /// half-built folder. Called with the lock held, so no build is running:
    /// these are left by a deploy that was killed.
    fn end_abandoned(&self) -> Result<(), DeployError> {
        for info in self.list()? {
            if info.record.status != ReleaseStatus::Building {
                continue;
            }
            let mut record = info.record;
            record.status = ReleaseStatus::Failed;
            record.failure = Some("abandoned: the deploy building it was stopped".into());
            write_record(&self.app.release_record(&info.id), &record)?;
            let dir = self.app.release(&info.id);
            readonly::remove(&dir).map_err(|e| DeployError::io("delete", &dir, e))?;
        }
        Ok(())
    }

    fn find(&self, number: u64) -> Result<ReleaseInfo, DeployError> {
        self.list()?
            .into_iter()
            .find(|r| r.id.number == number)
            .ok_or(DeployError::NoSuchRelease {
                app: self.app.name().to_string(),
                number,
            })
    }

    /// The next release number, recorded before it is used so it is never
    /// handed out twice; the records on disk are a floor, in case the counter
    /// file was lost.
    fn allocate(&self) -> Result<u64, DeployError> {
        let path = self.app.next_release_file();
        let stored = match fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<u64>().unwrap_or(1),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
            Err(e) => return Err(DeployError::io("read", path, e)),
        };
        let on_disk = self.list()?.first().map_or(1, |r| r.id.number + 1);
        let number = stored.max(on_disk);
        capstan_fsutil::write_atomic(&path, format!("{}\n", number + 1).as_bytes(), 0o644)
            .map_err(|e| DeployError::io("write", &path, e))?;
        Ok(number)
    }
}

impl Building {
    /// The release's id.
    pub fn id(&self) -> &ReleaseId {
        &self.id
    }

    /// The release folder, writable while building.
    pub fn dir(&self) -> PathBuf {
        self.app.release(&self.id)
    }

    /// Records the store venv (its name, the key) the release runs with.
    pub fn uses_venv(&mut self, name: &str) {
        self.record.venv = Some(name.to_owned());
    }

    /// Gives the folder to `uid:gid` until [`finish`](Self::finish), so a
    /// build running as the app's user can write into it.
    pub fn lend(&mut self, uid: u32, gid: u32) -> Result<(), DeployError> {
        let dir = self.dir();
        readonly::lend(&dir, uid, gid).map_err(|e| DeployError::io("lend", &dir, e))?;
        self.lent_to = Some(uid);
        Ok(())
    }

    /// Seals the folder read-only, owned by capstan's user, and records the
    /// release as ready. A folder that was lent is trusted in nothing: its
    /// files become fresh copies, no symlink is followed, and a file that is
    /// not the borrower's fails the seal.
    pub fn finish(mut self) -> Result<ReleaseInfo, DeployError> {
        self.seal()?;
        self.record.status = ReleaseStatus::Ready;
        self.end()?;
        Ok(ReleaseInfo {
            id: self.id,
            record: self.record,
            live: false,
        })
    }

    /// Seals the folder as [`finish`](Self::finish) does, before the
    /// release is ready (its release commands and health check still to
    /// come); `finish` then only records it.
    pub fn seal(&mut self) -> Result<(), DeployError> {
        if !self.sealed {
            let dir = self.dir();
            readonly::seal(&dir, self.lent_to)
                .map_err(|e| DeployError::io("make read-only", &dir, e))?;
            self.sealed = true;
        }
        Ok(())
    }

    /// Records the build as failed with `reason` and deletes its folder; the
    /// number stays used.
    pub fn fail(mut self, reason: &str) -> Result<(), DeployError> {
        self.record.status = ReleaseStatus::Failed;
        self.record.failure = Some(reason.to_owned());
        self.end()?;
        let dir = self.dir();
        if self.lent_to.is_some() && !self.sealed {
            // SECURITY: the borrower may still have processes (its other
            // generation runs as the same user); take the folders back first.
            readonly::take_back(&dir).map_err(|e| DeployError::io("take back", &dir, e))?;
        }
        readonly::remove(&dir).map_err(|e| DeployError::io("delete", &dir, e))
    }

    fn end(&mut self) -> Result<(), DeployError> {
        self.record.built_at = Some(Utc::now());
        self.record.build_seconds = Some(self.started.elapsed().as_secs_f64());
        write_record(&self.app.release_record(&self.id), &self.record)
    }
}

fn status_word(status: ReleaseStatus) -> &'static str {
    match status {
        ReleaseStatus::Building => "still building (or was abandoned)",
        ReleaseStatus::Ready => "ready",
        ReleaseStatus::Failed => "a failed build",
    }
}

fn write_record(path: &Path, record: &ReleaseRecord) -> Result<(), DeployError> {
    let mut json = serde_json::to_vec_pretty(record).expect("a record always serializes");
    json.push(b'\n');
    capstan_fsutil::write_atomic(path, &json, 0o644).map_err(|e| DeployError::io("write", path, e))
}

fn read_record(path: &Path) -> Result<ReleaseRecord, DeployError> {
    let bytes = fs::read(path).map_err(|e| DeployError::io("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| DeployError::BadRecord {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_name_reads_back_and_strangers_do_not() {
        let id = ReleaseId::parse("12-a1b2c3d").unwrap();
        assert_eq!(id.number, 12);
        assert_eq!(id.dir_name(), "12-a1b2c3d");
        for other in [
            "0-a1b2c3d",
            "x-a1b2c3d",
            "3-a1b2c3",
            "3-zzzzzzz",
            ".3.index",
            "3",
        ] {
            assert_eq!(ReleaseId::parse(other), None, "{other}");
        }
    }
}
