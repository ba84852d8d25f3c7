//! The app's Python virtualenv, built the way a PaaS build step would: created when
//! missing, reinstalled when its requirements change, left alone when up to date.
//!
//! [`ensure`] owns a venv (usually `<app>/.capstan/venv`): it creates it with
//! `python -m venv`, installs the requirements with pip, and records what it installed
//! in a stamp file so the next run can skip all of it. [`existing`] only checks a venv
//! the user made.
//!
//! On a server, [`ensure_in_store`] keeps one venv per Python version and
//! dependency input under `<app>/venvs/<key>`, shared by every release with the
//! same ones, built by uv when it is on `PATH` and pip otherwise; [`prune`]
//! removes those no release uses.
//!
//! Invariant: a venv in the store is complete or absent.
//!
//! Invariant: a venv whose stamp matches was fully built; a build that failed or was
//! interrupted leaves no matching stamp, so the next [`ensure`] picks it up again.

mod build;
mod command;
mod create;
mod ensure;
mod error;
mod interpreter;
mod pip;
mod spec;
mod stamp;
mod store;

pub use build::Installer;
pub use ensure::{ensure, existing};
pub use error::VenvError;
pub use spec::{Requirements, Venv, VenvSpec};
pub use store::{ensure_in_store, prune, Outcome, StoreKey, StoreSpec, StoredVenv};
