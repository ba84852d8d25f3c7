//! Sealing a release folder read-only once it is built, and unsealing it only
//! to delete it.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Makes every directory under `dir` 0555 and every file 0444 (0555 if it was
/// executable). Symlinks are left as they are: their mode means nothing.
/// Children go first, so a directory is sealed only after its contents.
pub(crate) fn seal(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            seal(&path)?;
        } else if kind.is_file() {
            let exec = entry.metadata()?.permissions().mode() & 0o111 != 0;
            let mode = if exec { 0o555 } else { 0o444 };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o555))
}

/// Deletes a sealed (or half-built) folder: directories become writable by
/// their owner first, since unlinking needs write permission on the directory,
/// not on the file.
pub(crate) fn remove(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    unseal_dirs(dir)?;
    fs::remove_dir_all(dir)
}

fn unseal_dirs(dir: &Path) -> io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            unseal_dirs(&entry.path())?;
        }
    }
    Ok(())
}
