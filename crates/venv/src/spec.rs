//! What the caller asks for ([`VenvSpec`], [`Requirements`]) and what it gets back
//! ([`Venv`]).

use std::path::{Path, PathBuf};

/// Where the app's virtualenv lives, which interpreter builds it and what goes in it.
#[derive(Debug, Clone)]
pub struct VenvSpec<'a> {
    /// The virtualenv directory, e.g. `<app>/.capstan/venv`. A relative path is taken
    /// relative to the current directory.
    pub dir: PathBuf,
    /// The interpreter that creates the venv: a name looked up on `PATH` (`"python3"`)
    /// or a path (`"/usr/bin/python3.12"`).
    pub python: &'a str,
    /// What to install into the venv.
    pub requirements: Requirements,
    /// The app's root directory; pip runs with it as the current directory, so relative
    /// paths inside a requirements file (`-e .`, `./libs/x`) resolve against the app.
    pub app_root: &'a Path,
}

/// What to install into the venv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirements {
    /// A pip requirements file, installed with `pip install -r`.
    ///
    /// Only this file's bytes decide whether the venv is up to date: files it pulls in
    /// with `-r`/`-c`, and local packages it names, are not tracked.
    Txt(PathBuf),
    /// A list of requirement specifiers, e.g. the `[project] dependencies` of a
    /// `pyproject.toml`.
    Packages {
        /// The file the list came from; named in error messages.
        source: PathBuf,
        /// PEP 508 requirement specifiers, passed to `pip install` as arguments.
        packages: Vec<String>,
    },
    /// Nothing to install: a bare venv, without even pip, for apps that only use the
    /// standard library.
    None,
}

/// A ready virtualenv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venv {
    /// The venv directory (absolute).
    pub dir: PathBuf,
    /// `<dir>/bin/python`.
    pub python: PathBuf,
    /// The interpreter's version, e.g. `"3.11.7"`.
    pub version: String,
}

impl Venv {
    pub(crate) fn new(dir: PathBuf, version: String) -> Self {
        let python = python_in(&dir);
        Venv {
            dir,
            python,
            version,
        }
    }
}

/// The interpreter inside a venv directory.
pub(crate) fn python_in(dir: &Path) -> PathBuf {
    dir.join("bin").join("python")
}
