//! The Python worker shim: one standard-library-only file, `capstan_shim.py`,
//! embedded in the binary and written next to the runtime's state before
//! workers start.
//!
//! The runtime starts each worker as
//!
//! ```text
//! <venv>/bin/python capstan_shim.py --fd N --app module:callable [--threads N] [--root DIR] [--name NAME] [--static-mounts]
//! ```
//!
//! with one end of a Unix socketpair inherited as fd `N`. The shim imports the
//! app (`module:callable`, `module:factory()` or just `module`), answers HELLO or
//! BOOT_ERROR (then exits with [`EXIT_BOOT_ERROR`]; with `--static-mounts`,
//! HELLO also lists the static folders the app serves itself), and serves the frames of
//! `capstan-wire`. Every request gets exactly one terminal frame, RESPONSE_END
//! or APP_ERROR, even after a CANCEL; SHUTDOWN and end of file exit with 0.
//!
//! Architecture Invariant: this crate does no process management and no
//! socket I/O; it only owns the Python source and how it lands on disk.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The shim's Python source.
pub const SOURCE: &str = include_str!("../capstan_shim.py");

/// The file name the shim is written under (Python needs a `.py` name to run it).
pub const FILE_NAME: &str = "capstan_shim.py";

/// The exit status of a shim whose app failed to load, after it sent BOOT_ERROR.
pub const EXIT_BOOT_ERROR: i32 = 3;

/// Writes the shim into `dir` as [`FILE_NAME`] and returns its path.
///
/// An identical file is left alone, so running workers never see it change
/// under them; otherwise the new content goes to a temporary file that is
/// synced and renamed over the old one, so a worker starting meanwhile reads
/// either the old shim or the new one, never half of one.
pub fn write_to(dir: &Path) -> io::Result<PathBuf> {
    let path = dir.join(FILE_NAME);
    if fs::read(&path).is_ok_and(|existing| existing == SOURCE.as_bytes()) {
        return Ok(path);
    }
    capstan_fsutil::write_atomic(&path, SOURCE.as_bytes(), 0o644)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn write_to_creates_the_shim_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_to(dir.path()).unwrap();
        assert_eq!(path, dir.path().join(FILE_NAME));
        assert_eq!(fs::read_to_string(&path).unwrap(), SOURCE);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name != FILE_NAME)
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    }

    #[test]
    fn write_to_leaves_an_identical_copy_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_to(dir.path()).unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        write_to(dir.path()).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
    }

    #[test]
    fn write_to_replaces_a_stale_copy() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), "# an older shim\n").unwrap();
        let path = write_to(dir.path()).unwrap();
        assert_eq!(fs::read_to_string(path).unwrap(), SOURCE);
    }

    #[test]
    fn write_to_a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_to(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn the_source_is_standard_library_python_with_a_main_guard() {
        assert!(SOURCE.starts_with("\"\"\""), "module docstring first");
        assert!(SOURCE.contains("if __name__ == \"__main__\":"));
        assert!(SOURCE.contains(&format!("EXIT_BOOT_ERROR = {EXIT_BOOT_ERROR}")));
    }
}
