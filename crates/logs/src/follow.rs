//! Following a logs folder: the last lines, then new ones as they are
//! written, across rotations, merged by time.
//!
//! Polling, every [`POLL`], on a thread of its own: a log that changes many
//! times a second costs one `read` and one `stat` per file per poll, which is
//! what inotify would save, and polling needs no crate, works the same on
//! every filesystem, and cannot miss an event while a file is renamed.
//!
//! Rotation is seen by identity (device, inode): when `web.log` is no longer
//! the file we read, that file is complete (the writer renames it after its
//! last line; we look at the name before we read), so we read it to its end, find it among `web.log.1`, `.2`, ...
//! and go on with the next newer one, from its start: no line is missed or
//! read twice, even over several rotations between two polls (up to `keep`
//! of them). A live file that shrank under the same identity was truncated
//! by someone else and is read again from its start.
//!
//! Merging: lines from all files are held for [`REORDER`] after their time
//! before they go out, so a line written just before another, in another
//! file, but read just after it, still comes first. A held line goes out
//! anyway after two polls, so a clock that stepped back delays nothing.

use std::fs::{self, File};
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};

use crate::line::decode;
use crate::read::{id, is_dir, list, open, snapshot, Id};
use crate::writer::rotated;
use crate::{Error, Line, ProcessName};

/// How often files are looked at.
pub const POLL: Duration = Duration::from_millis(100);

/// How long a line waits for older lines of other files before it goes out.
pub const REORDER: Duration = Duration::from_millis(100);

/// Lines read ahead of the consumer before the follower waits.
const QUEUE: usize = 4096;

/// The last `from_end` lines of the chosen processes (all when `None`, and
/// processes whose log appears later), then every new line, in time order,
/// until the stream is dropped. Returns once the last lines are read, so
/// everything written after it returns is in the stream.
pub async fn follow(
    dir: impl Into<PathBuf>,
    processes: Option<&[ProcessName]>,
    from_end: usize,
) -> Result<impl Stream<Item = Line> + Send + Unpin + 'static, Error> {
    let dir = dir.into();
    is_dir(&dir)?;
    let chosen = processes.map(<[ProcessName]>::to_vec);
    let (tx, rx) = mpsc::channel(QUEUE);
    let (ready, started) = oneshot::channel();
    std::thread::Builder::new()
        .name("capstan-logs-follow".into())
        .spawn(move || run(&dir, chosen, from_end, ready, &tx))
        .map_err(Error::io("capstan-logs-follow thread"))?;
    started.await.map_err(|_| Error::Stopped)??;
    Ok(Box::pin(futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|line| (line, rx)) },
    )))
}

struct Held {
    line: Line,
    round: u64,
}

fn run(
    dir: &Path,
    chosen: Option<Vec<ProcessName>>,
    from_end: usize,
    ready: oneshot::Sender<Result<(), Error>>,
    tx: &mpsc::Sender<Line>,
) {
    let mut started = SystemTime::now();
    let first = match &chosen {
        Some(chosen) => Ok(chosen.clone()),
        None => list(dir),
    }
    .and_then(|processes| snapshot(dir, &processes, from_end));
    let (lines, mut cursors) = match first {
        Ok(first) => first,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return;
    }
    let mut held: Vec<Held> = lines
        .into_iter()
        .map(|line| Held { line, round: 0 })
        .collect();
    let mut round = 0;
    loop {
        if !release(&mut held, started, round, tx) || tx.is_closed() {
            return;
        }
        std::thread::sleep(POLL);
        round += 1;
        started = SystemTime::now();
        if chosen.is_none() {
            // A folder removed under us lists nothing; its files stay open.
            for name in list(dir).unwrap_or_default() {
                if !cursors.iter().any(|c| c.process == name) {
                    cursors.push(Cursor::waiting(name));
                }
            }
        }
        let mut new = Vec::new();
        for cursor in &mut cursors {
            if let Err(e) = cursor.poll(dir, &mut new) {
                // A file can vanish under us (deleted by hand); look again next time.
                tracing::debug!(process = %cursor.process, "reading the log: {e}");
            }
        }
        held.extend(new.into_iter().map(|line| Held { line, round }));
        held.sort_by_key(|h| h.line.at); // stable: equal times keep file order
    }
}

/// Sends the held lines that waited long enough, oldest first; `false` when
/// nobody listens any more.
fn release(held: &mut Vec<Held>, now: SystemTime, round: u64, tx: &mpsc::Sender<Line>) -> bool {
    let cutoff = now.checked_sub(REORDER).unwrap_or(SystemTime::UNIX_EPOCH);
    let due = held
        .iter()
        .rposition(|h| h.line.at <= cutoff || round >= h.round + 2)
        .map_or(0, |i| i + 1);
    held.drain(..due).all(|h| tx.blocking_send(h.line).is_ok())
}

/// Where following one process's log has got to.
pub(crate) struct Cursor {
    pub(crate) process: ProcessName,
    file: Option<(File, Id)>,
    /// Just past the last whole line read.
    offset: u64,
    /// The time of the last line read, for lines not in the format.
    pub(crate) last_at: SystemTime,
    /// Our file was not among the rotated ones last time we looked.
    lost: bool,
}

impl Cursor {
    /// For a process with no log yet: its first file is read from the start.
    pub(crate) fn waiting(process: ProcessName) -> Cursor {
        Cursor {
            process,
            file: None,
            offset: 0,
            last_at: SystemTime::UNIX_EPOCH,
            lost: false,
        }
    }

    /// At `offset` in `file`.
    pub(crate) fn at(process: ProcessName, file: File, id: Id, offset: u64) -> Cursor {
        Cursor {
            file: Some((file, id)),
            offset,
            ..Cursor::waiting(process)
        }
    }

    /// Reads every line written since the last poll into `out`.
    fn poll(&mut self, dir: &Path, out: &mut Vec<Line>) -> Result<(), Error> {
        let live = dir.join(self.process.file_name());
        // Each turn moves one file on; more turns than files means a writer
        // rotating faster than we read, and the next poll goes on.
        for _ in 0..64 {
            let Some((_, ours)) = self.file else {
                let Some((file, id, _)) = open(&live)? else {
                    return Ok(());
                };
                self.file = Some((file, id));
                self.offset = 0;
                continue;
            };
            // Look at the name first, then read: if it already names another
            // file, ours was renamed before this read began and is complete.
            match fs::metadata(&live) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Between a rename and the new file: read, go on next time.
                    return self.read(out, false).map_err(Error::io(&live));
                }
                Err(e) => return Err(Error::io(&live)(e)),
                Ok(meta) if id(&meta) == ours => {
                    if meta.len() < self.offset {
                        self.offset = 0; // truncated in place
                    }
                    return self.read(out, false).map_err(Error::io(&live));
                }
                Ok(_) => {
                    self.read(out, true).map_err(Error::io(&live))?;
                    let Some(next) = self.successor(&live)? else {
                        return Ok(());
                    };
                    self.file = Some(next);
                    self.offset = 0;
                }
            }
        }
        Ok(())
    }

    /// The file written after ours: the one just below it in the rotated
    /// names, or the live one.
    fn successor(&mut self, live: &Path) -> Result<Option<(File, Id)>, Error> {
        let ours = self.file.as_ref().map(|(_, id)| *id);
        let mut k = 1;
        let found = loop {
            match fs::metadata(rotated(live, k)) {
                Ok(meta) if Some(id(&meta)) == ours => break Some(k),
                Ok(_) => k += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break None,
                Err(e) => return Err(Error::io(rotated(live, k))(e)),
            }
        };
        let next = match found {
            Some(1) => live.to_owned(),
            Some(k) => rotated(live, k - 1),
            // Not found: a rotation is half done (look again next poll), or
            // ours was deleted (more than `keep` rotations since we looked):
            // go on with the oldest file left.
            None if !self.lost => {
                self.lost = true;
                return Ok(None);
            }
            None if k > 1 => rotated(live, k - 1),
            None => live.to_owned(),
        };
        let Some((file, next_id, _)) = open(&next)? else {
            return Ok(None);
        };
        if let Some(k) = found {
            // If ours moved meanwhile, `next` may not be the file after it.
            let still = fs::metadata(rotated(live, k)).is_ok_and(|m| Some(id(&m)) == ours);
            if !still {
                return Ok(None);
            }
        }
        self.lost = false;
        Ok(Some((file, next_id)))
    }

    /// Reads the lines after `offset`; a last line without its newline only
    /// when the file is `complete`.
    fn read(&mut self, out: &mut Vec<Line>, complete: bool) -> io::Result<()> {
        let Some((file, _)) = &self.file else {
            return Ok(());
        };
        let mut file: &File = file;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let whole = match buf.iter().rposition(|b| *b == b'\n') {
            _ if complete => buf.len(),
            Some(i) => i + 1,
            None => 0,
        };
        if whole == 0 {
            return Ok(());
        }
        let region = &buf[..whole];
        let region = region.strip_suffix(b"\n").unwrap_or(region);
        for raw in region.split(|b| *b == b'\n') {
            let line = decode(raw, &self.process, self.last_at);
            self.last_at = line.at;
            out.push(line);
        }
        self.offset += whole as u64;
        Ok(())
    }
}
