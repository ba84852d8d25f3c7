//! The one error type of this crate: every way loading an app directory can fail.
//!
//! Each variant's `Display` is the whole sentence a user reads, with the file
//! (relative to the app directory), the 1-based line and the key, so the CLI can
//! print it as is.

use std::io;
use std::path::PathBuf;

/// Why an app directory could not be loaded.
///
/// `file` fields hold the path relative to the app directory (`capstan.toml`,
/// `pyproject.toml`, `Procfile`, `.env`), which is how users name these files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The app directory itself is missing or unreadable.
    #[error(
        "app directory {} cannot be opened: {source}; pass the directory that holds the app's \
         code (the one with capstan.toml, a Procfile, wsgi.py or app.py)",
        dir.display()
    )]
    NoSuchDir {
        /// The directory as given.
        dir: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// The path given as the app directory is a file.
    #[error(
        "{} is not a directory; pass the directory that holds the app's code, not a file in it",
        dir.display()
    )]
    NotADirectory {
        /// The path as given.
        dir: PathBuf,
    },

    /// A file exists but could not be read (permissions, not UTF-8, too large).
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file, relative to the app directory.
        file: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },

    /// A file is not well-formed: a TOML syntax error, a Procfile line without
    /// `name: command`, a `.env` line that is not `KEY=value`.
    #[error("{}:{line}: {message}", file.display())]
    Syntax {
        /// The file, relative to the app directory.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong, and how to fix it when that is not obvious.
        message: String,
    },

    /// A key that capstan does not know (often a typo).
    #[error(
        "{}:{line}: unknown key `{key}` in {table}; expected one of: {}",
        file.display(),
        expected.join(", ")
    )]
    UnknownKey {
        /// The file, relative to the app directory.
        file: PathBuf,
        /// 1-based line of the key.
        line: usize,
        /// The key as written.
        key: String,
        /// Where it was found: `[web]`, `[tool.capstan.web]`, or the file name for the top level.
        table: String,
        /// The keys that are allowed there.
        expected: Vec<&'static str>,
    },

    /// A known key with a value of the wrong type or outside its range.
    #[error("{}:{line}: bad value for `{key}`: {problem}", file.display())]
    BadValue {
        /// The file, relative to the app directory.
        file: PathBuf,
        /// 1-based line of the value.
        line: usize,
        /// The key (or Procfile flag such as `--workers`).
        key: String,
        /// What is wrong with the value and what a good one looks like.
        problem: String,
    },

    /// A table that lacks a key it needs, such as `command` in `[processes.tasks]`.
    #[error("{}:{line}: missing key `{key}` in {table}", file.display())]
    MissingKey {
        /// The file, relative to the app directory.
        file: PathBuf,
        /// 1-based line where the table starts.
        line: usize,
        /// The key that must be set.
        key: &'static str,
        /// The table, e.g. `[processes.tasks]`.
        table: String,
    },

    /// The same name defined twice: a Procfile process, a static URL prefix, a domain.
    #[error(
        "{}:{line}: `{key}` is defined twice (first on line {first_line}); keep one",
        file.display()
    )]
    Duplicate {
        /// The file, relative to the app directory.
        file: PathBuf,
        /// 1-based line of the second definition.
        line: usize,
        /// The repeated name.
        key: String,
        /// 1-based line of the first definition.
        first_line: usize,
    },

    /// No file names the WSGI app and discovery found none.
    #[error(
        "no web app found in {}: no capstan.toml [web] or Procfile web: line names one, no \
         FLASK_APP is set (in .flaskenv, .env or [env]), and none of wsgi.py, app.py or main.py \
         defines a module-level `application` or `app` (nor does <package>/wsgi.py next to a \
         Django manage.py); create capstan.toml with [web] wsgi = \"module:callable\", or a \
         Procfile with a web: line",
        dir.display()
    )]
    NoApp {
        /// The app directory.
        dir: PathBuf,
    },

    /// The app found is an ASGI app (FastAPI, Starlette, Quart, Litestar), which
    /// capstan's own workers cannot run.
    #[error(
        "{}:{line} defines a {framework} app, which speaks ASGI; capstan's own workers run \
         WSGI apps for now. Run it behind capstan with an ASGI server: put [web] command = \
         \"uvicorn {target} --port $PORT\" in capstan.toml (and uvicorn in requirements.txt)",
        file.display()
    )]
    AsgiApp {
        /// The file, relative to the app directory.
        file: PathBuf,
        /// 1-based line of the app.
        line: usize,
        /// `FastAPI`, `Starlette`, ...
        framework: String,
        /// `main:app`, for the command to write.
        target: String,
    },

    /// No `name` was set and the directory's name cannot be turned into one.
    #[error(
        "cannot make an app name from the directory name {dir_name:?}; set name = \"my-app\" in \
         capstan.toml (lowercase letters, digits, '-' and '_')"
    )]
    NoName {
        /// The directory's last path component.
        dir_name: String,
    },
}
