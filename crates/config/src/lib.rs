//! The app's own file: loads an app directory (`capstan.toml`, `[tool.capstan]` in
//! `pyproject.toml`, or a Procfile with `.env`) into one validated [`App`].
//!
//! Everything is checked here, once, and every mistake is reported with the file,
//! line and key. Loading never runs the app's code and never reads or changes
//! capstan's own process environment.

#![warn(missing_docs)]

mod app;
mod app_file;
mod cron;
mod daemon_settings;
mod discover;
mod dotenv;
mod duration;
mod error;
mod files;
mod flask_app;
mod flask_debug;
mod gunicorn;
mod gunicorn_flags;
mod http;
mod load;
mod names;
mod origin;
mod procfile;
mod schedule;
mod shell_words;
mod size;
mod static_routes;
mod tls;
mod toml_de;
mod toml_tree;
mod wsgi;

pub use app::{
    AcmeChallenge, App, CronJob, HttpSettings, Overlap, Process, Requirements, Source, StaticRoute,
    TlsSettings, Web, DEFAULT_GRACEFUL_TIMEOUT, DEFAULT_HEALTH_PATH, DEFAULT_HEALTH_RETRIES,
    DEFAULT_HEALTH_TIMEOUT, DEFAULT_KEEP_PREVIOUS, DEFAULT_MAX_BODY_SIZE, DEFAULT_STATIC_MAX_AGE,
    DEFAULT_THREADS, DEFAULT_TIMEOUT, LETS_ENCRYPT_PRODUCTION, LETS_ENCRYPT_STAGING,
    MAX_WORKERS_OR_THREADS,
};
pub use daemon_settings::{load_daemon_settings, DaemonSettings};
pub use duration::{format_duration, parse_duration, InvalidDuration};
pub use error::ConfigError;
pub use load::load;
pub use names::{check_email, check_env_name, normalize_domain, AppName, InvalidAppName};
pub use schedule::{InvalidSchedule, Schedule};
pub use size::{parse_size, InvalidSize};
pub use wsgi::{InvalidWsgiTarget, WsgiTarget};
