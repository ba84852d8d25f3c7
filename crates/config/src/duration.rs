//! Durations as users write them in capstan.toml: `"30s"`, `"500ms"`, `"5m"`, `"2h"`,
//! `"30d"`, or a bare integer meaning seconds.

use std::fmt;
use std::time::Duration;

/// A string that is not a duration capstan understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDuration {
    /// The text as written.
    pub input: String,
}

impl fmt::Display for InvalidDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a duration (use e.g. \"30s\", \"5m\")",
            self.input
        )
    }
}

impl std::error::Error for InvalidDuration {}

/// Parses `"<integer><unit>"` where unit is `ms`, `s`, `m`, `h` or `d`; a bare integer
/// is seconds. No fractions, no spaces, no negative numbers.
///
/// ```
/// # use std::time::Duration;
/// assert_eq!(capstan_config::parse_duration("5m"), Ok(Duration::from_secs(300)));
/// assert_eq!(capstan_config::parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert!(capstan_config::parse_duration("30 parsecs").is_err());
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, InvalidDuration> {
    let bad = || InvalidDuration {
        input: input.to_owned(),
    };
    let digits_end = input
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(input.len());
    let (digits, unit) = input.split_at(digits_end);
    if digits.is_empty() {
        return Err(bad());
    }
    // SECURITY: parse as u64 and multiply with checks, so "99999999999999999999d"
    // is an error instead of an overflow panic.
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    let millis = n.checked_mul(millis_per_unit).ok_or_else(bad)?;
    Ok(Duration::from_millis(millis))
}

/// Formats a duration the way [`parse_duration`] reads it, with the largest exact unit.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && (ms / size) * size == ms {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
    }

    #[test]
    fn bare_integer_is_seconds() {
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn nonsense_is_rejected_with_a_hint() {
        for s in [
            "",
            "s",
            "30 parsecs",
            "30 s",
            "-5s",
            "1.5s",
            "5M",
            "5sec",
            " 5s",
        ] {
            let err = parse_duration(s).unwrap_err();
            assert!(err.to_string().contains("use e.g. \"30s\""), "{s}: {err}");
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(parse_duration("18446744073709551615d").is_err());
        assert!(parse_duration("99999999999999999999999").is_err());
    }

    #[test]
    fn format_round_trips() {
        for s in ["500ms", "30s", "5m", "2h", "30d", "90s", "1500ms"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(format_duration(Duration::ZERO), "0ms");
    }
}
