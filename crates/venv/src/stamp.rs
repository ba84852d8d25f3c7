//! The stamp file `<venv>/.capstan-stamp`: what the venv was last successfully built
//! from. The venv is up to date when the stamp's bytes equal the bytes we would write
//! now, so any change to the interpreter version, the requirements or the format itself
//! triggers a rebuild.

use std::io;
use std::path::{Path, PathBuf};

use crate::{Requirements, VenvError};

/// The stamp's file name inside the venv directory.
pub(crate) const STAMP_FILE: &str = ".capstan-stamp";

/// The stamp's permissions before the umask: what `File::create` gives a file.
const STAMP_MODE: u32 = 0o666;

/// Bump when the encoding or the way venvs are built changes, so old venvs are redone.
const FORMAT: &str = "capstan-venv-stamp 1";

/// The requirements input exactly as the stamp records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// The bytes of a requirements file.
    Txt(Vec<u8>),
    /// A list of requirement specifiers.
    Packages(Vec<String>),
    /// Nothing to install.
    None,
}

impl Input {
    /// Reads what `requirements` currently says.
    pub(crate) async fn read(requirements: &Requirements) -> Result<Input, VenvError> {
        Ok(match requirements {
            Requirements::Txt(path) => {
                let bytes = tokio::fs::read(path).await.map_err(|source| {
                    VenvError::RequirementsUnreadable {
                        path: path.clone(),
                        source,
                    }
                })?;
                Input::Txt(bytes)
            }
            Requirements::Packages { packages, .. } => Input::Packages(packages.clone()),
            Requirements::None => Input::None,
        })
    }
}

/// The contents of a stamp file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    bytes: Vec<u8>,
    /// Length of the format and interpreter version lines at the start of `bytes`.
    header_len: usize,
}

/// How a venv's stamp compares with the one it should have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// No stamp: the venv was never finished (or is not ours).
    Missing,
    /// The venv was built from exactly this interpreter version and input.
    Matches,
    /// Same interpreter version and stamp format; other requirements.
    RequirementsChanged,
    /// Another interpreter version or stamp format: the venv itself is stale.
    PythonChanged,
}

impl Stamp {
    /// The stamp for a venv on Python `python_version` with `input` installed.
    pub(crate) fn new(python_version: &str, input: &Input) -> Stamp {
        // Every variable-length field is length-prefixed, so no two different inputs
        // can encode to the same bytes.
        let mut bytes = format!("{FORMAT}\npython {python_version}\n").into_bytes();
        let header_len = bytes.len();
        match input {
            Input::Txt(content) => {
                bytes.extend_from_slice(format!("requirements-txt {}\n", content.len()).as_bytes());
                bytes.extend_from_slice(content);
                bytes.push(b'\n');
            }
            Input::Packages(packages) => {
                bytes.extend_from_slice(format!("packages {}\n", packages.len()).as_bytes());
                for package in packages {
                    bytes.extend_from_slice(format!("{} {package}\n", package.len()).as_bytes());
                }
            }
            Input::None => bytes.extend_from_slice(b"none\n"),
        }
        Stamp { bytes, header_len }
    }

    /// The stamp's bytes: an unambiguous encoding of the version and input.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Compares the stamp in `venv_dir` with this one.
    pub(crate) async fn check(&self, venv_dir: &Path) -> Result<Check, VenvError> {
        let path = path(venv_dir);
        match tokio::fs::read(&path).await {
            Ok(found) if found == self.bytes => Ok(Check::Matches),
            Ok(found) if found.starts_with(&self.bytes[..self.header_len]) => {
                Ok(Check::RequirementsChanged)
            }
            Ok(_) => Ok(Check::PythonChanged),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Check::Missing),
            Err(e) => Err(VenvError::io("read the stamp", path, e)),
        }
    }

    /// Writes this stamp into `venv_dir` through `capstan_fsutil::write_atomic`, so a
    /// crash leaves either the old stamp or the new one, never half of one.
    pub(crate) async fn write(&self, venv_dir: &Path) -> Result<(), VenvError> {
        let target = path(venv_dir);
        let bytes = self.bytes.clone();
        let into = target.clone();
        tokio::task::spawn_blocking(move || capstan_fsutil::write_atomic(&into, &bytes, STAMP_MODE))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)))
            .map_err(|e| VenvError::io("write the stamp", target, e))
    }
}

/// `<venv_dir>/.capstan-stamp`.
pub(crate) fn path(venv_dir: &Path) -> PathBuf {
    venv_dir.join(STAMP_FILE)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn txt(s: &str) -> Input {
        Input::Txt(s.as_bytes().to_vec())
    }

    fn packages(list: &[&str]) -> Input {
        Input::Packages(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn same_version_and_input_make_the_same_stamp() {
        assert_eq!(
            Stamp::new("3.11.7", &txt("six==1.16.0\n")),
            Stamp::new("3.11.7", &txt("six==1.16.0\n"))
        );
    }

    #[test]
    fn any_change_to_version_or_input_makes_a_different_stamp() {
        let base = Stamp::new("3.11.7", &txt("six==1.16.0\n"));
        let others = [
            Stamp::new("3.11.8", &txt("six==1.16.0\n")),
            Stamp::new("3.11.7", &txt("six==1.16.0")),
            Stamp::new("3.11.7", &txt("six==1.17.0\n")),
            Stamp::new("3.11.7", &packages(&["six==1.16.0"])),
            Stamp::new("3.11.7", &Input::None),
        ];
        for other in others {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn empty_inputs_of_different_kinds_differ() {
        let stamps = [
            Stamp::new("3.11.7", &txt("")),
            Stamp::new("3.11.7", &packages(&[])),
            Stamp::new("3.11.7", &Input::None),
        ];
        assert_ne!(stamps[0], stamps[1]);
        assert_ne!(stamps[1], stamps[2]);
        assert_ne!(stamps[0], stamps[2]);
    }

    #[test]
    fn package_boundaries_are_part_of_the_stamp() {
        assert_ne!(
            Stamp::new("3.11.7", &packages(&["a b", "c"])),
            Stamp::new("3.11.7", &packages(&["a", "b c"]))
        );
        assert_ne!(
            Stamp::new("3.11.7", &packages(&["a", "b"])),
            Stamp::new("3.11.7", &packages(&["b", "a"]))
        );
    }

    #[test]
    fn stamp_starts_with_the_format_version() {
        let stamp = Stamp::new("3.11.7", &Input::None);
        assert!(stamp
            .bytes
            .starts_with(b"capstan-venv-stamp 1\npython 3.11.7\n"));
    }

    #[tokio::test]
    async fn a_written_stamp_matches_and_a_different_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let old = Stamp::new("3.11.7", &txt("six\n"));
        let new = Stamp::new("3.11.7", &txt("six\nitsdangerous\n"));
        assert_eq!(old.check(dir.path()).await.unwrap(), Check::Missing);

        old.write(dir.path()).await.unwrap();
        assert_eq!(old.check(dir.path()).await.unwrap(), Check::Matches);
        assert_eq!(
            new.check(dir.path()).await.unwrap(),
            Check::RequirementsChanged
        );
        let newer_python = Stamp::new("3.12.1", &txt("six\n"));
        assert_eq!(
            newer_python.check(dir.path()).await.unwrap(),
            Check::PythonChanged
        );

        new.write(dir.path()).await.unwrap();
        assert_eq!(new.check(dir.path()).await.unwrap(), Check::Matches);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [STAMP_FILE], "no temp file is left behind");
    }

    #[tokio::test]
    async fn a_written_stamp_has_the_mode_a_plainly_created_file_has() {
        let dir = tempfile::tempdir().unwrap();
        Stamp::new("3.11.7", &Input::None)
            .write(dir.path())
            .await
            .unwrap();
        let plain = dir.path().join("plain");
        fs::File::create(&plain).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path(dir.path())), mode(&plain));
    }

    #[tokio::test]
    async fn writing_into_a_missing_directory_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let err = Stamp::new("3.11.7", &Input::None)
            .write(&gone)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("gone/.capstan-stamp"), "{err}");
        match err {
            VenvError::Io { path, source, .. } => {
                assert_eq!(path, gone.join(STAMP_FILE));
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected an Io error, got {other:?}"),
        }
    }
}
