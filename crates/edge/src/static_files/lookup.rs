//! The file system side: from a checked relative path to a cache [`Entry`], never
//! leaving the route's root. Blocking; `serve` runs it on the blocking pool.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::HeaderValue;

use super::cache::{Entry, Fingerprint, Representation};
use super::conditional;
use super::encoding::Encoding;

/// What a checked path names.
#[derive(Debug)]
pub(super) enum Found<E = Entry> {
    /// A file, or a directory's `index.html`.
    File(E),
    /// A directory asked for without the trailing `/`: redirect.
    Directory,
}

/// Why there is nothing to serve.
#[derive(Debug)]
pub(super) enum Failure {
    /// Missing, outside the root, hidden, or not a regular file: all look the same.
    NotFound,
    /// The file changed between two looks at it; looking again will do.
    Changed,
    /// The operating system refused (permission) or failed (I/O).
    Io { path: PathBuf, error: io::Error },
}

/// How many times a file that keeps changing under us is looked up again.
const ATTEMPTS: usize = 3;

/// Finds what `rel` (from `resolve::RelPath::fs_relative`) names under `root` (canonical).
pub(super) fn load(
    root: &Path,
    rel: &str,
    wants_dir: bool,
    max_file: u64,
) -> Result<Found, Failure> {
    let mut result = Err(Failure::Changed);
    for _ in 0..ATTEMPTS {
        result = load_once(root, rel, wants_dir, max_file);
        if !matches!(result, Err(Failure::Changed)) {
            break;
        }
    }
    result
}

fn load_once(root: &Path, rel: &str, wants_dir: bool, max_file: u64) -> Result<Found, Failure> {
    let (mut requested, mut canonical, mut meta) = resolve_inside(root, root.join(rel))?;
    if meta.is_dir() {
        if !wants_dir {
            return Ok(Found::Directory);
        }
        // No listings: a directory is served by its index.html or not at all.
        (requested, canonical, meta) = resolve_inside(root, requested.join("index.html"))?;
    } else if wants_dir {
        return Err(Failure::NotFound);
    }
    // SECURITY: regular files only. Opening a FIFO would block a thread forever and a
    // device could be endless.
    if !meta.is_file() {
        return Err(Failure::NotFound);
    }
    let content_type = content_type_for(&requested);
    let identity = read(
        requested.clone(),
        canonical,
        &meta,
        Encoding::Identity,
        max_file,
    )?;
    let brotli = sibling(root, &requested, Encoding::Brotli, max_file);
    let gzip = sibling(root, &requested, Encoding::Gzip, max_file);
    Ok(Found::File(Entry::new(
        content_type,
        identity,
        brotli,
        gzip,
    )))
}

/// Opens a streamed representation for a body starting at `start`, checking that the
/// file is still the one the representation describes
/// (`path` and `fingerprint` are the representation's `open_path` and `fingerprint`,
/// owned so this can run on the blocking pool.)
pub(super) fn open(path: &Path, fingerprint: Fingerprint, start: u64) -> Result<File, Failure> {
    let mut file = File::open(path).map_err(|error| classify(error, path))?;
    let meta = file.metadata().map_err(|error| classify(error, path))?;
    // SECURITY: the same inode, size and times as when the path was checked: nothing
    // swapped the file, or a directory on its path, since.
    if Fingerprint::of(&meta) != fingerprint {
        return Err(Failure::Changed);
    }
    file.seek(SeekFrom::Start(start))
        .map_err(|error| classify(error, path))?;
    Ok(file)
}

/// Canonicalizes `requested` and checks the result is a visible path inside `root`.
/// Returns the requested path back, the canonical one and its metadata.
fn resolve_inside(
    root: &Path,
    requested: PathBuf,
) -> Result<(PathBuf, PathBuf, Metadata), Failure> {
    let canonical =
        std::fs::canonicalize(&requested).map_err(|error| classify(error, &requested))?;
    // SECURITY: the URL path holds no `..` or separators (resolve.rs), but a symlink
    // inside the root may point anywhere. Whatever it names must be under the root;
    // otherwise the answer is the same 404 as for a missing file, so nothing about
    // the rest of the file system leaks. strip_prefix compares whole components:
    // `/srv/static2` is not inside `/srv/static`.
    let Ok(inside) = canonical.strip_prefix(root) else {
        tracing::debug!(
            path = %requested.display(),
            resolved = %canonical.display(),
            "static file resolves outside its root"
        );
        return Err(Failure::NotFound);
    };
    // SECURITY: a symlink with a plain name must not expose a dotfile (`config.txt ->
    // .env`): the checks of resolve.rs apply to the resolved path too.
    if inside
        .components()
        .any(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."))
    {
        return Err(Failure::NotFound);
    }
    let meta = std::fs::metadata(&canonical).map_err(|error| classify(error, &canonical))?;
    Ok((requested, canonical, meta))
}

/// Opens and (if small) reads one representation, checking it is the file whose
/// metadata `checked` was taken inside the root.
fn read(
    stat_path: PathBuf,
    open_path: PathBuf,
    checked: &Metadata,
    encoding: Encoding,
    max_file: u64,
) -> Result<Representation, Failure> {
    let mut file = File::open(&open_path).map_err(|error| classify(error, &open_path))?;
    let before = file
        .metadata()
        .map_err(|error| classify(error, &open_path))?;
    let fingerprint = Fingerprint::of(&before);
    // SECURITY: between canonicalize and open, a path component could have been
    // swapped for a symlink. The same inode means the file opened is the file checked.
    if !fingerprint.same_file(&Fingerprint::of(checked)) || !before.is_file() {
        return Err(Failure::Changed);
    }
    let content = if fingerprint.size <= max_file {
        let mut buf = Vec::with_capacity(fingerprint.size as usize);
        (&mut file)
            .take(fingerprint.size + 1)
            .read_to_end(&mut buf)
            .map_err(|error| classify(error, &open_path))?;
        let after = file
            .metadata()
            .map_err(|error| classify(error, &open_path))?;
        // A write while reading: the bytes may be half old, half new.
        if buf.len() as u64 != fingerprint.size || Fingerprint::of(&after) != fingerprint {
            return Err(Failure::Changed);
        }
        Some(Bytes::from(buf))
    } else {
        None
    };
    Ok(Representation {
        encoding,
        etag: conditional::etag(fingerprint.mtime, fingerprint.size, encoding.etag_suffix()),
        last_modified: conditional::last_modified(fingerprint.mtime),
        modified_secs: conditional::unix_secs(fingerprint.mtime),
        content_length: HeaderValue::from(fingerprint.size),
        stat_path,
        open_path,
        fingerprint,
        content,
    })
}

/// `file.br` or `file.gz` next to `file`, under the same rules as the file itself.
/// Any problem with a sibling just means it is not used.
fn sibling(root: &Path, file: &Path, encoding: Encoding, max_file: u64) -> Option<Representation> {
    let mut name = file.as_os_str().to_owned();
    name.push(encoding.extension());
    let (requested, canonical, meta) = match resolve_inside(root, PathBuf::from(name)) {
        Ok(found) => found,
        Err(Failure::Io { path, error }) => {
            tracing::debug!(path = %path.display(), %error, "precompressed sibling unusable");
            return None;
        }
        Err(_) => return None,
    };
    if !meta.is_file() {
        return None;
    }
    read(requested, canonical, &meta, encoding, max_file).ok()
}

/// Errors that mean "nothing here": ENOTDIR (a file used as a directory), ENAMETOOLONG
/// and ELOOP, by their Linux numbers (`ErrorKind` names them only from Rust 1.83).
const MISSING_ERRNOS: [i32; 3] = [20, 36, 40];

fn classify(error: io::Error, path: &Path) -> Failure {
    let missing = error.kind() == io::ErrorKind::NotFound
        || error
            .raw_os_error()
            .is_some_and(|code| MISSING_ERRNOS.contains(&code));
    if missing {
        Failure::NotFound
    } else {
        Failure::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// `Content-Type` from the requested name (for a symlink, the link's name, as nginx
/// does), with a charset for text.
fn content_type_for(path: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let essence = mime.essence_str();
    let is_text = mime.type_() == mime_guess::mime::TEXT
        || essence == "application/javascript"
        || essence == "application/json";
    let value = if is_text {
        HeaderValue::try_from(format!("{essence}; charset=utf-8"))
    } else {
        HeaderValue::try_from(essence)
    };
    value.unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        (dir, root)
    }

    fn entry(found: Result<Found, Failure>) -> Entry {
        match found {
            Ok(Found::File(entry)) => entry,
            other => panic!("expected a file, got {other:?}"),
        }
    }

    #[test]
    fn text_types_get_a_utf8_charset() {
        let ct = |name: &str| content_type_for(Path::new(name));
        assert_eq!(ct("a.css"), "text/css; charset=utf-8");
        assert_eq!(ct("a.html"), "text/html; charset=utf-8");
        assert_eq!(ct("a.js"), "text/javascript; charset=utf-8");
        assert_eq!(ct("a.mjs"), "application/javascript; charset=utf-8");
        assert_eq!(ct("a.json"), "application/json; charset=utf-8");
        assert_eq!(ct("a.png"), "image/png");
        assert_eq!(ct("a.unknownext"), "application/octet-stream");
        assert_eq!(ct("noext"), "application/octet-stream");
    }

    #[test]
    fn small_files_are_read_into_memory_and_big_ones_are_not() {
        let (_dir, root) = root();
        std::fs::write(root.join("small.txt"), "hello").unwrap();
        std::fs::write(root.join("big.bin"), vec![7u8; 100]).unwrap();
        let small = entry(load(&root, "small.txt", false, 10));
        assert_eq!(small.identity.content.as_deref(), Some(&b"hello"[..]));
        assert_eq!(small.identity.content_length, "5");
        let big = entry(load(&root, "big.bin", false, 10));
        assert_eq!(big.identity.content, None);
        assert_eq!(big.identity.size(), 100);
    }

    #[test]
    fn a_cached_representation_is_current_until_the_file_changes() {
        let (_dir, root) = root();
        let path = root.join("a.txt");
        std::fs::write(&path, "one").unwrap();
        let a = entry(load(&root, "a.txt", false, 1024));
        assert!(a.identity.is_current());
        std::fs::write(&path, "three").unwrap();
        assert!(!a.identity.is_current());
    }

    #[test]
    fn a_directory_without_slash_is_a_redirect_and_with_slash_its_index() {
        let (_dir, root) = root();
        std::fs::create_dir(root.join("docs")).unwrap();
        assert!(matches!(
            load(&root, "docs", false, 1024),
            Ok(Found::Directory)
        ));
        assert!(matches!(
            load(&root, "docs", true, 1024),
            Err(Failure::NotFound)
        ));
        std::fs::write(root.join("docs/index.html"), "<h1>").unwrap();
        let index = entry(load(&root, "docs", true, 1024));
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert_eq!(index.identity.stat_path, root.join("docs/index.html"));
    }

    #[test]
    fn a_file_asked_for_as_a_directory_is_not_found() {
        let (_dir, root) = root();
        std::fs::write(root.join("a.txt"), "x").unwrap();
        assert!(matches!(
            load(&root, "a.txt", true, 1024),
            Err(Failure::NotFound)
        ));
        assert!(matches!(
            load(&root, "a.txt/b", false, 1024),
            Err(Failure::NotFound)
        ));
    }

    #[test]
    fn a_symlink_to_a_dotfile_inside_the_root_is_not_found() {
        let (_dir, root) = root();
        std::fs::write(root.join(".env"), "SECRET=1").unwrap();
        symlink(root.join(".env"), root.join("innocent.txt")).unwrap();
        assert!(matches!(
            load(&root, "innocent.txt", false, 1024),
            Err(Failure::NotFound)
        ));
    }

    #[test]
    fn a_fifo_is_not_found_rather_than_opened() {
        let (_dir, root) = root();
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        assert!(matches!(
            load(&root, "pipe", false, 1024),
            Err(Failure::NotFound)
        ));
    }

    #[test]
    fn a_sibling_pointing_outside_the_root_is_ignored() {
        let (_dir, root) = root();
        let (_outside_dir, outside) = self::root();
        std::fs::write(root.join("app.js"), "js").unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        symlink(outside.join("secret"), root.join("app.js.br")).unwrap();
        std::fs::write(root.join("app.js.gz"), "gz").unwrap();
        let e = entry(load(&root, "app.js", false, 1024));
        assert!(e.brotli.is_none());
        assert_eq!(
            e.gzip.as_ref().unwrap().content.as_deref(),
            Some(&b"gz"[..])
        );
        assert!(e
            .gzip
            .as_ref()
            .unwrap()
            .etag
            .to_str()
            .unwrap()
            .ends_with("-gz\""));
    }

    #[test]
    fn open_refuses_a_file_that_changed_since_it_was_checked() {
        let (_dir, root) = root();
        let path = root.join("big.bin");
        std::fs::write(&path, vec![1u8; 100]).unwrap();
        let e = entry(load(&root, "big.bin", false, 10));
        let rep = &e.identity;
        let mut file = open(&rep.open_path, rep.fingerprint, 90).unwrap();
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).unwrap();
        assert_eq!(tail.len(), 10);
        std::fs::write(&path, vec![2u8; 50]).unwrap();
        assert!(matches!(
            open(&rep.open_path, rep.fingerprint, 0),
            Err(Failure::Changed)
        ));
    }
}
