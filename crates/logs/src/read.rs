//! Reading the last lines of a logs folder, merged by time, without a lock.
//!
//! The writer may rotate while we read. Files are opened newest first and,
//! once open, keep their content whatever their name becomes; afterwards each
//! name is checked to still be the file opened under it. If not, a rotation
//! happened in between (a line might be missed or seen twice), so we read
//! again.

use std::fs::{self, File};
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::follow::Cursor;
use crate::line::decode;
use crate::writer::rotated;
use crate::{Error, Line, ProcessName};

/// How often a read is retried when rotations keep getting in the way.
const ATTEMPTS: usize = 10;

/// The last `n` lines of the chosen processes (every process with a log when
/// `None`), oldest first, merged by time; lines with the same time keep the
/// order of their files, and of `processes`. Rotated files are read when the
/// live one has fewer than `n` lines.
pub fn tail(dir: &Path, processes: Option<&[ProcessName]>, n: usize) -> Result<Vec<Line>, Error> {
    is_dir(dir)?;
    let processes = match processes {
        Some(chosen) => chosen.to_vec(),
        None => list(dir)?,
    };
    Ok(snapshot(dir, &processes, n)?.0)
}

/// An error that says so if `dir` is not a folder.
pub(crate) fn is_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    let missing = io::Error::new(io::ErrorKind::NotFound, "no such logs folder");
    Err(Error::io(dir)(missing))
}

/// The processes that have a live log file in `dir`, by name.
pub fn list(dir: &Path) -> Result<Vec<ProcessName>, Error> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        if let Some(name) = entry
            .file_name()
            .to_str()
            .and_then(ProcessName::from_file_name)
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The last `n` lines, and for each process where its live file ends (the
/// last whole line), so following goes on from exactly there.
pub(crate) fn snapshot(
    dir: &Path,
    processes: &[ProcessName],
    n: usize,
) -> Result<(Vec<Line>, Vec<Cursor>), Error> {
    let mut lines = Vec::new();
    let mut cursors = Vec::new();
    for process in processes {
        let (mut own, cursor) = process_tail(dir, process, n)?;
        lines.append(&mut own);
        cursors.push(cursor);
    }
    lines.sort_by_key(|line| line.at); // stable: equal times keep their order
    let skip = lines.len().saturating_sub(n);
    lines.drain(..skip);
    Ok((lines, cursors))
}

/// A file's identity, which survives renames.
pub(crate) type Id = (u64, u64);

pub(crate) fn id(meta: &fs::Metadata) -> Id {
    (meta.dev(), meta.ino())
}

/// Opens `path` with its identity; `None` if there is no such file.
pub(crate) fn open(path: &Path) -> Result<Option<(File, Id, u64)>, Error> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path)(e)),
    };
    let meta = file.metadata().map_err(Error::io(path))?;
    Ok(Some((file, id(&meta), meta.len())))
}

fn still(path: &Path, expected: Id) -> bool {
    fs::metadata(path).is_ok_and(|meta| id(&meta) == expected)
}

fn process_tail(dir: &Path, process: &ProcessName, n: usize) -> Result<(Vec<Line>, Cursor), Error> {
    let live = dir.join(process.file_name());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut opened: Vec<(PathBuf, Id)> = Vec::new();
        let mut raw: Vec<Vec<Vec<u8>>> = Vec::new(); // newest file first
        let mut need = n;
        let mut cursor = Cursor::waiting(process.clone());
        if let Some((file, id, len)) = open(&live)? {
            let (lines, end) = last_lines(&file, len, need, true).map_err(Error::io(&live))?;
            need -= lines.len();
            raw.push(lines);
            opened.push((live.clone(), id));
            cursor = Cursor::at(process.clone(), file, id, end);
        }
        let mut k = 1;
        while need > 0 {
            let path = rotated(&live, k);
            let Some((file, id, len)) = open(&path)? else {
                break;
            };
            let (lines, _) = last_lines(&file, len, need, false).map_err(Error::io(&path))?;
            need -= lines.len();
            raw.push(lines);
            opened.push((path, id));
            k += 1;
        }
        let stable = opened.iter().all(|(path, id)| still(path, *id));
        if !stable && attempt < ATTEMPTS {
            continue;
        }
        let mut at = SystemTime::UNIX_EPOCH;
        let mut lines = Vec::new();
        for line in raw.iter().rev().flatten() {
            let line = decode(line, process, at);
            at = line.at;
            lines.push(line);
        }
        if let Some(last) = lines.last() {
            cursor.last_at = last.at;
        }
        return Ok((lines, cursor));
    }
}

/// The last `n` lines of `file` before `end`, without their newlines, and
/// where the last whole line ends. With `whole_only` (a live file, which may
/// be in the middle of a write) a last line without its newline is left
/// out; otherwise (a rotated file, which is complete) it is a line.
pub(crate) fn last_lines(
    mut file: &File,
    end: u64,
    n: usize,
    whole_only: bool,
) -> io::Result<(Vec<Vec<u8>>, u64)> {
    const BLOCK: u64 = 64 * 1024;
    let mut blocks = Vec::new(); // newest first, joined once at the end
    let mut newlines = 0;
    let mut pos = end;
    // n + 2 newlines: the first piece may be a cut line, the last unfinished.
    while pos > 0 && newlines < n + 2 {
        let from = pos.saturating_sub(BLOCK);
        let mut block = vec![0; (pos - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        newlines += block.iter().filter(|b| **b == b'\n').count();
        blocks.push(block);
        pos = from;
    }
    blocks.reverse();
    let buf = blocks.concat();
    let whole_end = match buf.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None if pos == 0 => 0,
        None => buf.len(), // cannot happen: we read until n + 2 newlines
    };
    let region = if whole_only {
        &buf[..whole_end]
    } else {
        &buf[..]
    };
    let mut lines: Vec<Vec<u8>> = if region.is_empty() {
        Vec::new()
    } else {
        let region = region.strip_suffix(b"\n").unwrap_or(region);
        region.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
    };
    if pos > 0 && !lines.is_empty() {
        lines.remove(0); // began before what we read
    }
    let skip = lines.len().saturating_sub(n);
    lines.drain(..skip);
    Ok((lines, pos + whole_end as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn file_with(text: &[u8]) -> (tempfile::NamedTempFile, u64) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text).unwrap();
        (file, text.len() as u64)
    }

    fn strings(lines: Vec<Vec<u8>>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn the_last_lines_of_a_file_leave_an_unfinished_line_out() {
        let (file, len) = file_with(b"a\nb\nc\npart");
        let (lines, end) = last_lines(file.as_file(), len, 2, true).unwrap();
        assert_eq!((strings(lines), end), (vec!["b".into(), "c".into()], 6));
        let (lines, _) = last_lines(file.as_file(), len, 2, false).unwrap();
        assert_eq!(strings(lines), ["c", "part"]);
        let (lines, end) = last_lines(file.as_file(), len, 0, true).unwrap();
        assert_eq!((lines.len(), end), (0, 6));
    }

    #[test]
    fn the_last_lines_are_found_across_read_blocks() {
        let text: String = (0..30_000).map(|i| format!("line {i}\n")).collect();
        let (file, len) = file_with(text.as_bytes());
        let (lines, end) = last_lines(file.as_file(), len, 20_000, true).unwrap();
        let lines = strings(lines);
        assert_eq!(end, len);
        assert_eq!(lines.len(), 20_000);
        assert_eq!(
            (lines[0].as_str(), lines[19_999].as_str()),
            ("line 10000", "line 29999")
        );
        let (all, _) = last_lines(file.as_file(), len, 50_000, true).unwrap();
        assert_eq!(all.len(), 30_000);
    }

    #[test]
    fn an_empty_or_unfinished_file_has_no_lines() {
        let (file, len) = file_with(b"");
        assert_eq!(
            last_lines(file.as_file(), len, 5, true).unwrap(),
            (vec![], 0)
        );
        let (file, len) = file_with(b"half");
        assert_eq!(
            last_lines(file.as_file(), len, 5, true).unwrap(),
            (vec![], 0)
        );
        assert_eq!(
            last_lines(file.as_file(), len, 5, false).unwrap().0,
            vec![b"half".to_vec()]
        );
        let (file, len) = file_with(b"\n");
        assert_eq!(
            last_lines(file.as_file(), len, 5, true).unwrap(),
            (vec![vec![]], 1)
        );
    }
}
