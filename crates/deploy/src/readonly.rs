//! Sealing a release folder read-only once it is built, lending a fresh
//! checkout to the app's user for its build, and unsealing a folder only to
//! delete it.
//!
//! A folder lent to the app's user holds whatever its build left, so the seal
//! trusts none of it (SECURITY): each directory is taken (owner and mode
//! changed through its own descriptor) before its entries are read, so
//! nobody else can change them meanwhile; entries are opened relative to
//! that descriptor and never through a symlink; a symlink is re-owned
//! itself, never its target; a regular file is replaced by a fresh copy
//! capstan owns, so no hard link the build planted is chowned or chmodded,
//! and no descriptor the build kept open writes into the sealed release.

use std::ffi::{CStr, CString, OsStr};
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{
    chownat, fchmod, fchown, fstat, openat, renameat, statat, unlinkat, AtFlags, Dir, FileType,
    Gid, Mode, OFlags, Stat, Uid, CWD,
};

/// Gives every entry under `dir` (and `dir` itself) to `uid:gid`, the
/// symlinks themselves rather than what they point at, so the build can
/// write into its own release. The tree is a checkout nobody else has seen.
pub(crate) fn lend(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            lend(&entry.path(), uid, gid)?;
        } else {
            std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
        }
    }
    Ok(())
}

/// Makes every directory under `dir` 0555 and every file 0444 (0555 if it was
/// executable), all owned by capstan's user; symlinks stay as they are
/// (their mode means nothing) but are re-owned. With `lent_to`, the folder
/// was lent to that user: every regular file must be that user's (anything
/// else got there by a hard link) and is replaced by a fresh copy, and
/// anything that is not a directory, file or symlink is removed.
pub(crate) fn seal(dir: &Path, lent_to: Option<u32>) -> io::Result<()> {
    let fd = open_dir(CWD, dir.as_os_str())?;
    seal_dir(&fd, dir, lent_to)
}

fn open_dir(parent: impl std::os::fd::AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(openat(parent, name, flags, Mode::empty())?)
}

fn me() -> (Uid, Gid) {
    (
        Uid::from_raw(nix::unistd::geteuid().as_raw()),
        Gid::from_raw(nix::unistd::getegid().as_raw()),
    )
}

fn seal_dir(dir: &OwnedFd, path: &Path, lent_to: Option<u32>) -> io::Result<()> {
    let (uid, gid) = me();
    // SECURITY: take it before reading it; from here on only capstan changes
    // its entries, so what is checked below is what is sealed.
    fchown(dir, Some(uid), Some(gid))?;
    fchmod(dir, Mode::from_raw_mode(0o700))?;
    let mut names: Vec<CString> = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    for name in &names {
        let stat = statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        let os_name = OsStr::from_bytes(name.to_bytes());
        let entry_path = path.join(os_name);
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                let sub = open_dir(dir, os_name)?;
                seal_dir(&sub, &entry_path, lent_to)?;
            }
            FileType::RegularFile => seal_file(dir, name, &stat, &entry_path, lent_to)?,
            FileType::Symlink => chownat(
                dir,
                name.as_c_str(),
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )?,
            _ if lent_to.is_some() => unlinkat(dir, name.as_c_str(), AtFlags::empty())?,
            _ => {}
        }
    }
    fchmod(dir, Mode::from_raw_mode(0o555))?;
    Ok(())
}

fn seal_file(
    dir: &OwnedFd,
    name: &CStr,
    stat: &Stat,
    path: &Path,
    lent_to: Option<u32>,
) -> io::Result<()> {
    let mode = Mode::from_raw_mode(if stat.st_mode & 0o111 != 0 {
        0o555
    } else {
        0o444
    });
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let source = openat(dir, name, flags, Mode::empty())?;
    let opened = fstat(&source)?;
    if (opened.st_dev, opened.st_ino) != (stat.st_dev, stat.st_ino) {
        return Err(io::Error::other(format!(
            "{} changed while the release was sealed",
            path.display()
        )));
    }
    let Some(lent_to) = lent_to else {
        fchmod(&source, mode)?;
        return Ok(());
    };
    if opened.st_uid != lent_to {
        return Err(io::Error::other(format!(
            "{} belongs to uid {}, not to the app's user: the build linked in a file that is \
             not its own; make the build create its files instead of linking them",
            path.display(),
            opened.st_uid
        )));
    }
    let (temp_name, copy) = create_temp(dir)?;
    let mut to = fs::File::from(copy);
    io::copy(&mut fs::File::from(source), &mut to)?;
    fchmod(&to, mode)?;
    drop(to);
    renameat(dir, temp_name.as_c_str(), dir, name)?;
    Ok(())
}

/// A new, empty file of capstan's own in `dir`, under a name nothing else has.
fn create_temp(dir: &OwnedFd) -> io::Result<(CString, OwnedFd)> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for n in 0..1000 {
        let name = CString::new(format!(".capstan-seal-{n}")).expect("no NUL in the name");
        match openat(dir, name.as_c_str(), flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => return Ok((name, fd)),
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other(
        "no free temporary name to seal a file with",
    ))
}

/// Takes back a folder lent for a build that failed, before it is deleted:
/// every directory becomes capstan's, 0700, through its own descriptor, so
/// nobody else can change what [`remove`] then walks. Nothing else is
/// touched (a file may be a link to anything).
pub(crate) fn take_back(dir: &Path) -> io::Result<()> {
    take_dir(&open_dir(CWD, dir.as_os_str())?)
}

fn take_dir(dir: &OwnedFd) -> io::Result<()> {
    let (uid, gid) = me();
    fchown(dir, Some(uid), Some(gid))?;
    fchmod(dir, Mode::from_raw_mode(0o700))?;
    let mut subdirs: Vec<CString> = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            let stat = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
            if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
                subdirs.push(name.to_owned());
            }
        }
    }
    for name in &subdirs {
        take_dir(&open_dir(dir, OsStr::from_bytes(name.to_bytes()))?)?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_lent_folder_is_sealed_without_following_links_or_keeping_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "x").unwrap();
        fs::set_permissions(outside.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
        let release = tmp.path().join("release");
        fs::create_dir_all(release.join("sub")).unwrap();
        fs::write(release.join("sub/page.txt"), "built").unwrap();
        std::os::unix::fs::symlink(&outside, release.join("sub/out")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), release.join("file-out")).unwrap();
        // A descriptor the build kept open must not write into the sealed release.
        let mut kept = fs::OpenOptions::new()
            .write(true)
            .open(release.join("sub/page.txt"))
            .unwrap();
        let me = nix::unistd::geteuid().as_raw();
        seal(&release, Some(me)).unwrap();
        kept.write_all(b"changed later").unwrap();
        assert_eq!(
            fs::read_to_string(release.join("sub/page.txt")).unwrap(),
            "built"
        );
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&release.join("sub/page.txt")), 0o444);
        assert_eq!((mode(&release), mode(&release.join("sub"))), (0o555, 0o555));
        assert_eq!(mode(&outside.join("secret")), 0o600);
        assert!(fs::symlink_metadata(release.join("sub/out"))
            .unwrap()
            .file_type()
            .is_symlink());
        remove(&release).unwrap();
        assert!(outside.join("secret").exists());
    }

    #[test]
    fn a_failed_lent_folder_is_taken_back_and_removed_without_following_its_links() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o711)).unwrap();
        fs::write(outside.join("kept"), "x").unwrap();
        let release = tmp.path().join("release");
        fs::create_dir_all(release.join("sub")).unwrap();
        std::os::unix::fs::symlink(&outside, release.join("sub/out")).unwrap();
        take_back(&release).unwrap();
        remove(&release).unwrap();
        assert!(!release.exists());
        assert!(outside.join("kept").exists());
        let mode = fs::metadata(&outside).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o711);
    }

    #[test]
    fn a_lent_folder_with_a_file_of_another_user_is_not_sealed() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("linked"), "not the app's").unwrap();
        let other = nix::unistd::geteuid().as_raw() + 1;
        let got = seal(tmp.path(), Some(other)).unwrap_err().to_string();
        assert!(got.contains("linked belongs to uid"), "{got}");
        assert!(got.contains("not to the app's user"), "{got}");
    }
}
