//! Owns the files under an app's `logs/` folder: writing, rotating, reading,
//! following.
//!
//! Each process has one file, `logs/<process>.log` (`web`, `tasks`,
//! `cron.backup`, `deploy`, `access`), rotated by size to `<process>.log.1`
//! ... `.<keep>`. Every line says when and who, so a file read alone is
//! complete and files merge by time:
//!
//! ```text
//! 2026-12-02T03:57:55.123Z web.1   | GET / 200
//! ```
//!
//! [`LogDir`] is the one writer (the daemon owns it; [`LogDir::spawn`] moves it
//! to a thread of its own), [`tail`] and [`follow`] are readers that never
//! take a lock.

mod error;
mod follow;
mod line;
mod name;
mod read;
mod sink;
mod writer;

pub use error::Error;
pub use follow::{follow, POLL, REORDER};
pub use line::{Line, MAX_LINE};
pub use name::{Label, ProcessName};
pub use read::{list, tail};
pub use sink::{LogSink, ProcessWriter};
pub use writer::{LogDir, Rotation};
