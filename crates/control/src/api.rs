//! The requests, one type per command the CLI sends. Each is the JSON body of
//! `POST /v1/<NAME>` and names what comes back: a JSON answer ([`Call`]) or a
//! progress stream that ends with its `Done` value ([`StreamCall`]).
//!
//! Values that become paths, users or environment entries are checked while the
//! request is read ([`AppName`], domains, variable names), so a bad one is a 400
//! before any handler sees it.

use std::collections::BTreeMap;

use capstan_config::AppName;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::answers::{
    AppCreated, AppDestroyed, AppList, DaemonStatus, EnvVars, Live, LogsEnd, ProcessList,
    ReleaseList, Restarted, Scaled,
};

/// A request answered with one JSON value.
pub trait Call: Serialize + DeserializeOwned + Send + 'static {
    /// The route: the request is `POST /v1/<NAME>`.
    const NAME: &'static str;
    /// What a successful call answers.
    type Answer: Serialize + DeserializeOwned + Send + 'static;
}

/// A request answered with a progress stream: lines, then `Done` or an error.
pub trait StreamCall: Serialize + DeserializeOwned + Send + 'static {
    /// The route: the request is `POST /v1/<NAME>`.
    const NAME: &'static str;
    /// What the stream ends with when the operation succeeded.
    type Done: Serialize + DeserializeOwned + Send + 'static;
}

/// `capstan status`: is a daemon there, and which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Status {}

impl Call for Status {
    const NAME: &'static str = "status";
    type Answer = DaemonStatus;
}

/// `capstan apps create NAME --domain D...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppsCreate {
    /// The new app's name.
    pub name: AppName,
    /// The Host names it answers, lowercased and checked.
    #[serde(deserialize_with = "domains")]
    pub domains: Vec<String>,
}

impl Call for AppsCreate {
    const NAME: &'static str = "apps/create";
    type Answer = AppCreated;
}

/// `capstan apps`: every app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AppsList {}

impl Call for AppsList {
    const NAME: &'static str = "apps/list";
    type Answer = AppList;
}

/// `capstan apps destroy NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppsDestroy {
    /// The app to stop and remove.
    pub name: AppName,
}

impl Call for AppsDestroy {
    const NAME: &'static str = "apps/destroy";
    type Answer = AppDestroyed;
}

/// `capstan releases APP`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Releases {
    /// Whose releases.
    pub app: AppName,
}

impl Call for Releases {
    const NAME: &'static str = "releases";
    type Answer = ReleaseList;
}

/// `capstan rollback APP [N]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    /// The app to roll back.
    pub app: AppName,
    /// The release to go to; `None`: the one before the live one.
    pub to: Option<u32>,
}

impl StreamCall for Rollback {
    const NAME: &'static str = "rollback";
    type Done = Live;
}

/// `capstan env APP`: the server's variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvList {
    /// Whose environment.
    pub app: AppName,
}

impl Call for EnvList {
    const NAME: &'static str = "env/list";
    type Answer = EnvVars;
}

/// `capstan env APP set K=V...`: stored, then applied by a zero-downtime restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvSet {
    /// Whose environment.
    pub app: AppName,
    /// The variables to set, names checked.
    #[serde(deserialize_with = "env_vars")]
    pub vars: BTreeMap<String, String>,
}

impl StreamCall for EnvSet {
    const NAME: &'static str = "env/set";
    type Done = Restarted;
}

/// `capstan env APP unset K...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvUnset {
    /// Whose environment.
    pub app: AppName,
    /// The variables to remove, names checked.
    #[serde(deserialize_with = "env_names")]
    pub names: Vec<String>,
}

impl StreamCall for EnvUnset {
    const NAME: &'static str = "env/unset";
    type Done = Restarted;
}

/// `capstan ps [APP]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Ps {
    /// One app, or `None` for every app.
    pub app: Option<AppName>,
}

impl Call for Ps {
    const NAME: &'static str = "ps";
    type Answer = ProcessList;
}

/// `capstan scale APP web=N tasks=M`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scale {
    /// The app to scale.
    pub app: AppName,
    /// How many of each process: `web` is the worker count, the others are
    /// `[processes]` names (the handler checks they exist).
    #[serde(deserialize_with = "process_counts")]
    pub counts: BTreeMap<String, u32>,
}

impl StreamCall for Scale {
    const NAME: &'static str = "scale";
    type Done = Scaled;
}

/// `capstan logs APP [-f] [-p PROC] [-n N]`: the lines stream; with `follow`
/// the stream goes on until the client goes away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    /// Whose logs.
    pub app: AppName,
    /// Keep sending new lines as they are written.
    #[serde(default)]
    pub follow: bool,
    /// One process (`web`, `tasks`, `cron.NAME`, `deploy`), or all of them merged.
    #[serde(default, deserialize_with = "log_name")]
    pub process: Option<String>,
    /// How many past lines to send first (`None`: the handler's default).
    pub lines: Option<u32>,
}

impl StreamCall for Logs {
    const NAME: &'static str = "logs";
    type Done = LogsEnd;
}

/// `capstan restart APP`: a new generation, zero downtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restart {
    /// The app to restart.
    pub app: AppName,
}

impl StreamCall for Restart {
    const NAME: &'static str = "restart";
    type Done = Restarted;
}

/// A push, from the app repository's pre-receive hook: one updated ref.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deploy {
    /// The app whose repository was pushed to.
    pub app: AppName,
    /// The ref's old commit (all zeros for a new ref), as git gives it: 40 or 64
    /// lowercase hex digits.
    #[serde(deserialize_with = "commit_id")]
    pub old: String,
    /// The ref's new commit (all zeros when the ref is deleted).
    #[serde(deserialize_with = "commit_id")]
    pub new: String,
    /// The ref, like `refs/heads/main`.
    #[serde(deserialize_with = "ref_name")]
    pub refname: String,
    /// The hook's git quarantine (`GIT_OBJECT_DIRECTORY`,
    /// `GIT_ALTERNATE_OBJECT_DIRECTORIES`, `GIT_QUARANTINE_PATH`): until the
    /// hook says yes, the pushed objects are only there. The daemon checks
    /// that each path is inside the app's repository before using it.
    #[serde(default)]
    pub git_env: Vec<(String, String)>,
}

impl StreamCall for Deploy {
    const NAME: &'static str = "deploy";
    type Done = Live;
}

fn domains<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    // SECURITY: domains become Host matches, certificate names and file names.
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|d| capstan_config::normalize_domain(d).map_err(serde::de::Error::custom))
        .collect()
}

fn env_vars<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let vars = BTreeMap::<String, String>::deserialize(deserializer)?;
    for (name, value) in &vars {
        capstan_config::check_env_name(name).map_err(serde::de::Error::custom)?;
        // SECURITY: a NUL would cut the value short in the child's environment block.
        if value.contains('\0') {
            return Err(serde::de::Error::custom(format!(
                "the value of {name} contains a NUL character, which no environment can hold"
            )));
        }
    }
    Ok(vars)
}

fn env_names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    for name in &names {
        capstan_config::check_env_name(name).map_err(serde::de::Error::custom)?;
    }
    Ok(names)
}

/// `[A-Za-z0-9][A-Za-z0-9_-]{0,62}`: a process or cron job name.
fn is_plain_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() <= 63
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn process_counts<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, u32>, D::Error> {
    let counts = BTreeMap::<String, u32>::deserialize(deserializer)?;
    // SECURITY: process names become unit, log and file names.
    if let Some(bad) = counts.keys().find(|name| !is_plain_name(name)) {
        return Err(serde::de::Error::custom(format!(
            "{bad:?} is not a process name: use `web` or a name from [processes]"
        )));
    }
    Ok(counts)
}

fn log_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let name = Option::<String>::deserialize(deserializer)?;
    // SECURITY: the name picks the file `logs/<name>.log`: no '/', no '..'.
    if let Some(name) = &name {
        let plain = match name.strip_prefix("cron.") {
            Some(job) => is_plain_name(job),
            None => is_plain_name(name),
        };
        if !plain {
            return Err(serde::de::Error::custom(format!(
                "{name:?} is not a process: use web, a name from [processes], cron.NAME or deploy"
            )));
        }
    }
    Ok(name)
}

fn commit_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let id = String::deserialize(deserializer)?;
    // SECURITY: commit ids are handed to git; only hex gets through, never an option.
    let hex = id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex && (id.len() == 40 || id.len() == 64) {
        Ok(id)
    } else {
        Err(serde::de::Error::custom(format!(
            "{id:?} is not a commit id (40 or 64 lowercase hex digits, as git's hooks give them)"
        )))
    }
}

fn ref_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let name = String::deserialize(deserializer)?;
    // SECURITY: handed to git as an argument: a full ref, no option, no control bytes,
    // no `..` (git refuses those in ref names too).
    let ok = name.starts_with("refs/")
        && !name.contains("..")
        && !name
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\');
    if ok {
        Ok(name)
    } else {
        Err(serde::de::Error::custom(format!(
            "{name:?} is not a full ref name like refs/heads/main"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: DeserializeOwned>(json: serde_json::Value) -> Result<T, String> {
        serde_json::from_value(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_deploy_takes_hex_commit_ids_and_full_ref_names_only() {
        let zeros = "0".repeat(40);
        let sha = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
        let deploy = |old: &str, new: &str, refname: &str| {
            parse::<Deploy>(serde_json::json!({
                "app": "blog", "old": old, "new": new, "refname": refname
            }))
        };
        assert!(deploy(&zeros, sha, "refs/heads/main").is_ok());
        assert!(deploy(&zeros, &"f".repeat(64), "refs/heads/master").is_ok());
        for bad in [
            "--upload-pack=x",
            "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678",
            "abc",
            "",
        ] {
            let error = deploy(&zeros, bad, "refs/heads/main").unwrap_err();
            assert!(error.contains("is not a commit id"), "{bad}: {error}");
        }
        for bad in [
            "main",
            "-x",
            "refs/heads/a..b",
            "refs/heads/a b",
            "refs/heads/a\nb",
        ] {
            let error = deploy(&zeros, sha, bad).unwrap_err();
            assert!(error.contains("is not a full ref name"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_log_process_is_a_name_or_cron_dot_name_never_a_path() {
        let logs =
            |process: &str| parse::<Logs>(serde_json::json!({"app": "blog", "process": process}));
        for ok in ["web", "tasks", "cron.nightly", "deploy", "Clock_2"] {
            assert_eq!(logs(ok).unwrap().process.as_deref(), Some(ok));
        }
        for bad in ["../web", "cron/../../x", "web.log", "cron.", "", "a b"] {
            assert!(logs(bad).unwrap_err().contains("is not a process"), "{bad}");
        }
        let all = parse::<Logs>(serde_json::json!({"app": "blog"})).unwrap();
        assert_eq!((all.process, all.follow, all.lines), (None, false, None));
    }

    #[test]
    fn scale_counts_name_processes_only() {
        let scale = |counts: serde_json::Value| {
            parse::<Scale>(serde_json::json!({"app": "blog", "counts": counts}))
        };
        assert!(scale(serde_json::json!({"web": 4, "tasks": 2})).is_ok());
        let error = scale(serde_json::json!({"../x": 1})).unwrap_err();
        assert!(error.contains("is not a process name"), "{error}");
        assert!(scale(serde_json::json!({"web": -1})).is_err());
    }

    #[test]
    fn env_values_may_hold_anything_but_nul() {
        let set = |vars: serde_json::Value| {
            parse::<EnvSet>(serde_json::json!({"app": "blog", "vars": vars}))
        };
        assert!(set(serde_json::json!({"URL": "a=b; c\n"})).is_ok());
        let error = set(serde_json::json!({"URL": "a\0b"})).unwrap_err();
        assert!(error.contains("contains a NUL character"), "{error}");
        let error =
            parse::<EnvUnset>(serde_json::json!({"app": "blog", "names": ["1X"]})).unwrap_err();
        assert!(
            error.contains("not a valid environment variable name"),
            "{error}"
        );
    }
}
