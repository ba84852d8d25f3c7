//! The app's Python virtualenv, built the way a PaaS build step would: created when
//! missing, reinstalled when its requirements change, left alone when up to date.
//!
//! [`ensure`] owns a venv (usually `<app>/.capstan/venv`): it creates it with
//! `python -m venv`, installs the requirements with pip, and records what it installed
//! in a stamp file so the next run can skip all of it. [`existing`] only checks a venv
//! the user made.
//!
//! Invariant: a venv whose stamp matches was fully built; a build that failed or was
//! interrupted leaves no matching stamp, so the next [`ensure`] picks it up again.

mod command;
mod create;
mod ensure;
mod error;
mod interpreter;
mod pip;
mod spec;
mod stamp;

pub use ensure::{ensure, existing};
pub use error::VenvError;
pub use spec::{Requirements, Venv, VenvSpec};
