//! Reading the app's files: only inside the app directory, only up to a size limit.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::ConfigError;

/// Settings files larger than this are refused; real ones are a few KiB.
pub(crate) const MAX_FILE_SIZE: u64 = 1 << 20;

/// Reads `<root>/<rel>` as UTF-8, or `None` when there is no such file.
///
/// `root` must be canonical.
pub(crate) fn read_text(root: &Path, rel: &str) -> Result<Option<String>, ConfigError> {
    let err = |source: io::Error| ConfigError::Read {
        file: PathBuf::from(rel),
        source,
    };
    let Some(path) = resolve_inside(root, rel).map_err(err)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    File::open(&path)
        .map_err(err)?
        .take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(err(io::Error::new(
            io::ErrorKind::InvalidData,
            "file is larger than 1 MiB; is this really a settings file?",
        )));
    }
    String::from_utf8(bytes).map(Some).map_err(|_| {
        err(io::Error::new(
            io::ErrorKind::InvalidData,
            "file is not valid UTF-8; save it as UTF-8",
        ))
    })
}

/// Like [`read_text`] for Python sources that are only scanned: reads at most
/// [`MAX_FILE_SIZE`] bytes and replaces invalid UTF-8.
pub(crate) fn read_source_lossy(root: &Path, rel: &str) -> Result<Option<String>, ConfigError> {
    let err = |source: io::Error| ConfigError::Read {
        file: PathBuf::from(rel),
        source,
    };
    let Some(path) = resolve_inside(root, rel).map_err(err)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    File::open(&path)
        .map_err(err)?
        .take(MAX_FILE_SIZE)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// `<root>/<rel>` if it is a regular file whose real path is inside `root`;
/// `None` when it does not exist.
pub(crate) fn resolve_inside(root: &Path, rel: &str) -> io::Result<Option<PathBuf>> {
    let path = root.join(rel);
    let real = match path.canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // SECURITY: capstan may read these files with more privileges than the app has,
    // and their contents end up in the app's environment. A symlink such as
    // `.env -> /etc/shadow` must not turn into a way to read files outside the app.
    if !real.starts_with(root) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "it is a symlink to a file outside the app directory; copy the file into the app instead",
        ));
    }
    if !real.is_file() {
        return Ok(None);
    }
    Ok(Some(real))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        (dir, root)
    }

    #[test]
    fn missing_file_is_none() {
        let (_dir, root) = root();
        assert!(read_text(&root, "capstan.toml").unwrap().is_none());
    }

    #[test]
    fn a_directory_with_the_name_is_not_a_file() {
        let (_dir, root) = root();
        fs::create_dir(root.join("Procfile")).unwrap();
        assert!(read_text(&root, "Procfile").unwrap().is_none());
    }

    #[test]
    fn symlink_out_of_the_app_is_refused() {
        let (_dir, root) = root();
        let (_other, outside) = self::root();
        fs::write(outside.join("secret"), "A=1").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), root.join(".env")).unwrap();
        let err = read_text(&root, ".env").unwrap_err().to_string();
        assert!(err.starts_with("cannot read .env: "), "{err}");
        assert!(err.contains("outside the app directory"), "{err}");
    }

    #[test]
    fn symlink_inside_the_app_is_fine() {
        let (_dir, root) = root();
        fs::write(root.join("real.env"), "A=1").unwrap();
        std::os::unix::fs::symlink("real.env", root.join(".env")).unwrap();
        assert_eq!(read_text(&root, ".env").unwrap().unwrap(), "A=1");
    }

    #[test]
    fn huge_and_binary_files_are_refused() {
        let (_dir, root) = root();
        fs::write(
            root.join("capstan.toml"),
            vec![b'#'; MAX_FILE_SIZE as usize + 1],
        )
        .unwrap();
        let err = read_text(&root, "capstan.toml").unwrap_err().to_string();
        assert!(
            err.contains("cannot read capstan.toml") && err.contains("larger than 1 MiB"),
            "{err}"
        );
        fs::write(root.join("Procfile"), [0xff, 0xfe, b'\n']).unwrap();
        let err = read_text(&root, "Procfile").unwrap_err().to_string();
        assert!(
            err.contains("cannot read Procfile") && err.contains("UTF-8"),
            "{err}"
        );
        assert!(read_source_lossy(&root, "Procfile").unwrap().is_some());
    }
}
