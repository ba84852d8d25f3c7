//! `Range: bytes=...` (RFC 9110 §14). One range is served as a 206; several are
//! answered with the whole file, which the RFC allows and which keeps multipart out.

use http::HeaderValue;

/// What a `Range` header asks of a file of a given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ranges {
    /// Malformed, or not in bytes: ignored, the whole file is served.
    Ignored,
    /// More than one range: the whole file is served (200).
    Several,
    /// One satisfiable range; both ends inclusive, `end < size`.
    One { start: u64, end: u64 },
    /// Nothing in the file: 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Parses `value` against a file of `size` bytes.
pub(super) fn parse(value: &HeaderValue, size: u64) -> Ranges {
    // SECURITY: the header is untrusted. Every malformed form falls back to the whole
    // file; numbers saturate instead of overflowing, and the returned range always lies
    // inside the file, so slicing with it cannot panic.
    let Ok(value) = value.to_str() else {
        return Ranges::Ignored;
    };
    let Some((unit, set)) = value.split_once('=') else {
        return Ranges::Ignored;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranges::Ignored;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let Some(spec) = specs.next() else {
        return Ranges::Ignored;
    };
    if specs.next().is_some() {
        return Ranges::Several;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ranges::Ignored;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // `-n`: the last n bytes.
        let Some(suffix) = digits(last) else {
            return Ranges::Ignored;
        };
        if suffix == 0 || size == 0 {
            return Ranges::Unsatisfiable;
        }
        return Ranges::One {
            start: size.saturating_sub(suffix),
            end: size - 1,
        };
    }
    let Some(start) = digits(first) else {
        return Ranges::Ignored;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match digits(last) {
            Some(end) if end >= start => end,
            _ => return Ranges::Ignored,
        }
    };
    if start >= size {
        return Ranges::Unsatisfiable;
    }
    Ranges::One {
        start,
        end: end.min(size - 1),
    }
}

/// `1*DIGIT`, saturating at `u64::MAX` (a huge position is past any file, not an error).
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Ranges {
        parse(&HeaderValue::from_str(value).unwrap(), size)
    }

    #[test]
    fn a_closed_range_is_clamped_to_the_file() {
        assert_eq!(range("bytes=0-9", 100), Ranges::One { start: 0, end: 9 });
        assert_eq!(
            range("bytes=90-200", 100),
            Ranges::One { start: 90, end: 99 }
        );
        assert_eq!(
            range("Bytes = 5 - 5", 100),
            Ranges::One { start: 5, end: 5 }
        );
    }

    #[test]
    fn an_open_range_runs_to_the_end() {
        assert_eq!(range("bytes=10-", 100), Ranges::One { start: 10, end: 99 });
    }

    #[test]
    fn a_suffix_range_takes_the_last_bytes() {
        assert_eq!(range("bytes=-10", 100), Ranges::One { start: 90, end: 99 });
        assert_eq!(range("bytes=-1000", 100), Ranges::One { start: 0, end: 99 });
    }

    #[test]
    fn ranges_outside_the_file_are_unsatisfiable() {
        assert_eq!(range("bytes=100-", 100), Ranges::Unsatisfiable);
        assert_eq!(range("bytes=100-200", 100), Ranges::Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), Ranges::Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), Ranges::Unsatisfiable);
        assert_eq!(range("bytes=-5", 0), Ranges::Unsatisfiable);
        assert_eq!(
            range("bytes=99999999999999999999999999-", 100),
            Ranges::Unsatisfiable
        );
    }

    #[test]
    fn several_ranges_are_reported_as_such() {
        assert_eq!(range("bytes=0-1, 5-6", 100), Ranges::Several);
        assert_eq!(range("bytes=0-1,", 100), Ranges::One { start: 0, end: 1 });
    }

    #[test]
    fn malformed_ranges_are_ignored() {
        for value in [
            "bytes=5-4",
            "bytes=a-b",
            "bytes=-",
            "bytes=",
            "bytes=5",
            "items=0-5",
            "0-5",
            "bytes=--5",
            "bytes=+5-",
            "bytes=0x10-",
        ] {
            assert_eq!(range(value, 100), Ranges::Ignored, "{value}");
        }
    }

    #[test]
    fn a_huge_end_is_clamped_not_overflowed() {
        assert_eq!(
            range("bytes=1-99999999999999999999999999", 100),
            Ranges::One { start: 1, end: 99 }
        );
    }
}
