//! The one writer of a logs folder: appends lines and rotates files by size.
//!
//! Blocking on purpose: each line is one `write(2)` on a file opened with
//! `O_APPEND`, so a reader sees whole lines as soon as they are written and
//! nothing waits in a buffer. From async code, use [`LogDir::spawn`], which
//! moves it to a thread of its own.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};

use crate::line::{encode, to_millis};
use crate::{Error, Label, ProcessName};

/// When a file is rotated and how many old ones stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// A file is rotated before a line would take it past this size. (A
    /// single line longer than this still gets a file of its own.)
    pub max_bytes: u64,
    /// How many rotated files (`web.log.1` ... `web.log.<keep>`) are kept;
    /// the oldest beyond that is deleted.
    pub keep: usize,
}

impl Default for Rotation {
    /// 10 MiB per file, 5 old files: supervisor's `stdout_logfile_maxbytes`
    /// and `stdout_logfile_backups` defaults, less one old file.
    fn default() -> Rotation {
        Rotation {
            max_bytes: 10 * 1024 * 1024,
            keep: 5,
        }
    }
}

/// An app's logs folder, open for writing. There is one per folder: opening
/// takes a lock that another writer (in this process or another) cannot
/// take; readers never look at it.
pub struct LogDir {
    dir: PathBuf,
    rotation: Rotation,
    files: HashMap<ProcessName, Open>,
    /// The last time written, so times in the folder never go backwards,
    /// even if the clock does; readers rely on each file being in order.
    last: SystemTime,
    buf: Vec<u8>,
    _lock: Flock<File>,
}

struct Open {
    file: File,
    size: u64,
}

const LOCK: &str = ".writer.lock";

impl LogDir {
    /// Opens (creating it if needed) the logs folder at `path`.
    pub fn open(path: impl Into<PathBuf>, rotation: Rotation) -> Result<LogDir, Error> {
        let dir = path.into();
        fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let lock = dir.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(Error::io(&lock))?;
        let lock_held = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(held) => held,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Err(Error::Busy { dir, lock }),
            Err((_, errno)) => return Err(Error::io(&lock)(errno.into())),
        };
        Ok(LogDir {
            dir,
            rotation,
            files: HashMap::new(),
            last: SystemTime::UNIX_EPOCH,
            buf: Vec::with_capacity(512),
            _lock: lock_held,
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Appends `text` to the process's file, labelled with its name, at the
    /// current time. Several lines (split at `\n`) become several entries.
    pub fn append(&mut self, process: &ProcessName, text: impl AsRef<[u8]>) -> Result<(), Error> {
        self.append_from(&process.label(), SystemTime::now(), text.as_ref())
    }

    /// Appends `text` to `from.process`'s file, labelled `from`, at `at` (or
    /// just after the last line written, if that was later).
    pub fn append_from(&mut self, from: &Label, at: SystemTime, text: &[u8]) -> Result<(), Error> {
        let at = to_millis(at.max(self.last));
        self.last = at;
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        self.buf.clear();
        for line in text.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            encode(&mut self.buf, at, from, line);
        }
        let buf = std::mem::take(&mut self.buf);
        let written = self.write(&from.process, &buf);
        self.buf = buf;
        written
    }

    /// Writes whole lines; rotates first if they would not fit.
    fn write(&mut self, process: &ProcessName, lines: &[u8]) -> Result<(), Error> {
        let live = self.dir.join(process.file_name());
        if !self.files.contains_key(process) {
            let open = open_live(&live)?;
            self.files.insert(process.clone(), open);
        }
        let open = self.files.get_mut(process).expect("opened above");
        if open.size > 0 && open.size + lines.len() as u64 > self.rotation.max_bytes {
            // The old file is complete when it is renamed: every line went
            // out in one write before, and none goes to it after.
            rotate(&live, self.rotation.keep)?;
            *open = open_live(&live)?;
        }
        open.file.write_all(lines).map_err(Error::io(&live))?;
        open.size += lines.len() as u64;
        Ok(())
    }
}

fn open_live(path: &Path) -> Result<Open, Error> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(Error::io(path))?;
    let size = file.metadata().map_err(Error::io(path))?.len();
    Ok(Open { file, size })
}

/// `web.log` -> `web.log.1` -> ... -> `web.log.<keep>`, the oldest dropped.
/// Each step is a rename, so at any moment each line is in exactly one file.
fn rotate(live: &Path, keep: usize) -> Result<(), Error> {
    let old = |n: usize| rotated(live, n);
    // Files past `keep` (left by a larger setting before) go first.
    let mut n = keep + 1;
    while old(n).exists() {
        fs::remove_file(old(n)).map_err(Error::io(old(n)))?;
        n += 1;
    }
    if keep == 0 {
        return fs::remove_file(live).map_err(Error::io(live));
    }
    for n in (1..keep).rev() {
        match fs::rename(old(n), old(n + 1)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            done => done.map_err(Error::io(old(n)))?,
        }
    }
    fs::rename(live, old(1)).map_err(Error::io(live))
}

/// `web.log.<n>`.
pub(crate) fn rotated(live: &Path, n: usize) -> PathBuf {
    let mut name = live.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rotation_keeps_exactly_keep_old_files_and_every_line_once() {
        let tmp = tempfile::tempdir().unwrap();
        let rotation = Rotation {
            max_bytes: 1000,
            keep: 3,
        };
        let mut logs = LogDir::open(tmp.path(), rotation).unwrap();
        let web = ProcessName::new("web").unwrap();
        for i in 0..200 {
            logs.append(&web, format!("line {i:04}")).unwrap(); // 46 bytes each
        }
        assert_eq!(
            names(tmp.path()),
            ["web.log", "web.log.1", "web.log.2", "web.log.3"]
        );
        let mut seen = Vec::new();
        let mut counts = Vec::new();
        for name in ["web.log.3", "web.log.2", "web.log.1", "web.log"] {
            let text = fs::read_to_string(tmp.path().join(name)).unwrap();
            assert!(text.len() <= 1000, "{name} has {} bytes", text.len());
            counts.push(text.lines().count());
            seen.extend(
                text.lines()
                    .map(|l| l[l.len() - 4..].parse::<u32>().unwrap()),
            );
        }
        // Each old file was full; together with the live one they hold the
        // newest lines, each once and in order, up to the last.
        let fits = 1000
            / (fs::read_to_string(tmp.path().join("web.log"))
                .unwrap()
                .find('\n')
                .unwrap()
                + 1);
        assert_eq!(counts[..3], [fits; 3]);
        assert!(counts[3] >= 1 && counts[3] <= fits);
        let first = seen[0];
        assert_eq!(seen, (first..200).collect::<Vec<_>>());
    }

    #[test]
    fn a_smaller_keep_removes_the_extra_old_files() {
        let tmp = tempfile::tempdir().unwrap();
        let web = ProcessName::new("web").unwrap();
        let mut logs = LogDir::open(
            tmp.path(),
            Rotation {
                max_bytes: 100,
                keep: 4,
            },
        )
        .unwrap();
        for i in 0..10 {
            logs.append(&web, format!("{i}")).unwrap();
        }
        drop(logs);
        assert_eq!(names(tmp.path()).len(), 5);
        let mut logs = LogDir::open(
            tmp.path(),
            Rotation {
                max_bytes: 100,
                keep: 1,
            },
        )
        .unwrap();
        for i in 0..3 {
            logs.append(&web, format!("{i}")).unwrap();
        }
        assert_eq!(names(tmp.path()), ["web.log", "web.log.1"]);
    }

    #[test]
    fn keep_zero_starts_the_file_over() {
        let tmp = tempfile::tempdir().unwrap();
        let web = ProcessName::new("web").unwrap();
        let mut logs = LogDir::open(
            tmp.path(),
            Rotation {
                max_bytes: 60,
                keep: 0,
            },
        )
        .unwrap();
        logs.append(&web, "one").unwrap();
        logs.append(&web, "two").unwrap();
        assert_eq!(names(tmp.path()), ["web.log"]);
        let text = fs::read_to_string(tmp.path().join("web.log")).unwrap();
        assert!(
            text.ends_with("| two\n") && text.lines().count() == 1,
            "{text}"
        );
    }

    #[test]
    fn a_second_writer_of_the_same_folder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = LogDir::open(tmp.path(), Rotation::default()).unwrap();
        let err = LogDir::open(tmp.path(), Rotation::default()).err().unwrap();
        assert!(matches!(err, Error::Busy { .. }));
        assert!(err.to_string().contains("Only one daemon"), "{err}");
    }

    #[test]
    fn text_with_newlines_becomes_several_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let web = ProcessName::new("web").unwrap();
        let mut logs = LogDir::open(tmp.path(), Rotation::default()).unwrap();
        logs.append(&web, "Traceback:\r\n  boom\n").unwrap();
        let text = fs::read_to_string(tmp.path().join("web.log")).unwrap();
        let texts: Vec<&str> = text
            .lines()
            .map(|l| l.split_once(" | ").unwrap().1)
            .collect();
        assert_eq!(texts, ["Traceback:", "  boom"]);
    }
}
