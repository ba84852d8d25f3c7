//! The daemon's record of each app beside what `capstan_deploy` keeps on
//! disk: `<root>/apps/<app>/app.json`, the domains it answers and its scale.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use capstan_config::AppName;
use serde::{Deserialize, Serialize};

/// The record's name inside the app's folder.
const RECORD: &str = "app.json";

/// What `apps create` remembers about an app.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppRecord {
    /// The Host names it answers, normalized.
    pub domains: Vec<String>,
    /// `capstan scale`: `web` (the worker count) and `[processes]` copies;
    /// a name not here runs as the app file says.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scale: BTreeMap<String, u32>,
}

impl AppRecord {
    /// Reads the record in `app_dir`.
    pub fn read(app_dir: &Path) -> anyhow::Result<AppRecord> {
        let path = app_dir.join(RECORD);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("could not read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not an app record capstan can read; restore it from a backup",
                path.display()
            )
        })
    }

    /// Writes it into `app_dir`, atomically.
    pub fn write(&self, app_dir: &Path) -> anyhow::Result<()> {
        let path = app_dir.join(RECORD);
        let json = serde_json::to_vec_pretty(self)?;
        capstan_fsutil::write_atomic(&path, &json, 0o644)
            .with_context(|| format!("could not write {}", path.display()))
    }
}

/// Every app folder under `<root>/apps` that has a record, by name.
pub fn list(root: &Path) -> anyhow::Result<Vec<AppName>> {
    let apps = root.join("apps");
    let entries = match std::fs::read_dir(&apps) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("could not list {}", apps.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Ok(name) = AppName::new(&name) {
            if entry.path().join(RECORD).is_file() {
                names.push(name);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(names)
}
