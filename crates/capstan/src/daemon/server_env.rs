//! The variables set on the server with `capstan env APP set`: kept in
//! `<app>/env` (JSON, mode 0600, owned by the daemon's user), never in a
//! release folder, so a secret is not in the code nor readable by the app's
//! other files. The app file's `[env]` is the default under them.

use std::collections::BTreeMap;

use anyhow::Context as _;
use capstan_deploy::AppDir;

/// The server's variables of the app in `app_dir` (none when never set).
pub fn read(app_dir: &AppDir) -> anyhow::Result<BTreeMap<String, String>> {
    let path = app_dir.env_file();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("could not read {}", path.display())),
    };
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a JSON object of variables; fix it or remove it and set them again",
            path.display()
        )
    })
}

/// Replaces the server's variables with `vars`, atomically, readable by the
/// daemon's user only.
pub fn write(app_dir: &AppDir, vars: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let path = app_dir.env_file();
    let json = serde_json::to_vec_pretty(vars)?;
    capstan_fsutil::write_atomic(&path, &json, 0o600)
        .with_context(|| format!("could not write {}", path.display()))
}
