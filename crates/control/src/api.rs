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
    /// The ref's old commit (all zeros for a new ref), as git gives it.
    pub old: String,
    /// The ref's new commit (all zeros when the ref is deleted).
    pub new: String,
    /// The ref, like `refs/heads/main`.
    pub refname: String,
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
