//! One line of a log file: how it is written and read back.
//!
//! `<UTC time, RFC 3339 with milliseconds> <label, padded to 7> | <text>\n`.
//! The time has a fixed width, so lines of several files merge by it, and the
//! label pads as `capstan run` pads it on the terminal.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::ProcessName;

/// A line longer than this (in bytes, without the newline) is cut, and says so.
pub const MAX_LINE: usize = 64 * 1024;

/// A line read back from a log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// When the line was written (to the millisecond).
    pub at: SystemTime,
    /// The process whose file holds it.
    pub process: ProcessName,
    /// Who said it, as the line shows it (`web.1`, `tasks`).
    pub label: String,
    /// What was said.
    pub text: String,
}

impl fmt::Display for Line {
    /// The line as it stands in its file, without the newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:<7} | {}",
            timestamp(self.at),
            self.label,
            self.text
        )
    }
}

/// Appends one stored line to `out`: time, label, text cut to [`MAX_LINE`].
pub(crate) fn encode(out: &mut Vec<u8>, at: SystemTime, label: &dyn fmt::Display, text: &[u8]) {
    use std::io::Write as _;
    let _ = write!(out, "{} {label:<7} | ", timestamp(at));
    out.extend_from_slice(cut(text).as_bytes());
    out.push(b'\n');
}

/// Reads a stored line (without its newline). A line not in the format (a
/// file someone else wrote into) is kept whole as text, at `fallback`.
pub(crate) fn decode(raw: &[u8], process: &ProcessName, fallback: SystemTime) -> Line {
    let raw = String::from_utf8_lossy(raw);
    let parsed = raw.split_once(' ').and_then(|(at, rest)| {
        let at = OffsetDateTime::parse(at, &Rfc3339).ok()?;
        let (label, text) = rest.split_once(" | ")?;
        Some((SystemTime::from(at), label.trim_end(), text))
    });
    match parsed {
        Some((at, label, text)) => Line {
            at,
            process: process.clone(),
            label: label.to_owned(),
            text: text.to_owned(),
        },
        None => Line {
            at: fallback,
            process: process.clone(),
            label: process.to_string(),
            text: raw.into_owned(),
        },
    }
}

/// `2026-12-02T03:57:55.123Z`: always 24 bytes.
fn timestamp(at: SystemTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from(at)
        .format(format)
        .unwrap_or_else(|_| "0000-00-00T00:00:00.000Z".to_owned())
}

/// `at` to the millisecond, as it will read back.
pub(crate) fn to_millis(at: SystemTime) -> SystemTime {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64)
}

/// The text as UTF-8 (invalid bytes replaced), at most [`MAX_LINE`] bytes of
/// it, with a marker saying how long it was when cut.
fn cut(text: &[u8]) -> Cow<'_, str> {
    if text.len() <= MAX_LINE {
        let lossy = String::from_utf8_lossy(text);
        if lossy.len() <= MAX_LINE {
            return lossy;
        }
    }
    // SECURITY: one line's size is bounded whatever a process prints.
    let head = String::from_utf8_lossy(&text[..text.len().min(MAX_LINE)]);
    let mut end = head.len().min(MAX_LINE);
    while !head.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!(
        "{} [line cut: {} bytes, {end} kept]",
        &head[..end],
        text.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> ProcessName {
        ProcessName::new("web").unwrap()
    }

    #[test]
    fn a_line_reads_back_as_written() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_647_875_123);
        let mut out = Vec::new();
        encode(&mut out, at, &web().instance(1), b"GET / 200 | ok");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "2025-12-02T03:57:55.123Z web.1   | GET / 200 | ok\n"
        );
        let line = decode(&out[..out.len() - 1], &web(), SystemTime::UNIX_EPOCH);
        assert_eq!(line.at, at);
        assert_eq!(line.label, "web.1");
        assert_eq!(line.text, "GET / 200 | ok");
        assert_eq!(format!("{line}\n").as_bytes(), out);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_written_lossily() {
        let mut out = Vec::new();
        encode(&mut out, SystemTime::now(), &web().label(), b"caf\xe9 ok");
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with("| caf\u{fffd} ok\n"));
    }

    #[test]
    fn a_long_line_is_cut_with_a_marker() {
        // 90,000 bytes of 3-byte chars: 65,536 falls inside one, so 65,535 are kept.
        let text = "€".repeat(30_000);
        let cut = cut(text.as_bytes());
        assert!(cut.len() < MAX_LINE + 64);
        assert!(cut.starts_with("€€€"));
        assert!(cut.ends_with("€ [line cut: 90000 bytes, 65535 kept]"));
        let short = "x".repeat(MAX_LINE);
        assert_eq!(super::cut(short.as_bytes()), short);
    }

    #[test]
    fn a_foreign_line_is_kept_whole() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(7);
        let line = decode(b"not a log line", &web(), at);
        assert_eq!(
            (line.at, line.label.as_str(), line.text.as_str()),
            (at, "web", "not a log line")
        );
    }
}
