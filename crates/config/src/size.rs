//! Byte sizes as users write them: `"100MiB"`, `"10MB"`, `"512k"`, `"1G"`, or a bare
//! integer meaning bytes.
//!
//! Units (case-insensitive): `B`; `K`, `KiB` = 1024 and `KB` = 1000; `M`, `MiB` = 1024²
//! and `MB` = 1000²; `G`, `GiB` = 1024³ and `GB` = 1000³. A single letter is binary,
//! because that is what nginx's `client_max_body_size 10m` means.

use std::fmt;

/// A string that is not a size capstan understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSize {
    /// The text as written.
    pub input: String,
}

impl fmt::Display for InvalidSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a size (use e.g. \"100MiB\", \"10MB\", \"512K\" or a number of bytes)",
            self.input
        )
    }
}

impl std::error::Error for InvalidSize {}

/// Parses `"<integer><unit>"` into bytes; see the module docs for units.
///
/// ```
/// assert_eq!(capstan_config::parse_size("100MiB"), Ok(100 * 1024 * 1024));
/// assert_eq!(capstan_config::parse_size("10MB"), Ok(10_000_000));
/// assert_eq!(capstan_config::parse_size("512k"), Ok(512 * 1024));
/// ```
pub fn parse_size(input: &str) -> Result<u64, InvalidSize> {
    let bad = || InvalidSize {
        input: input.to_owned(),
    };
    let digits_end = input
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(input.len());
    let (digits, unit) = input.split_at(digits_end);
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "kb" => 1_000,
        "m" | "mib" => 1 << 20,
        "mb" => 1_000_000,
        "g" | "gib" => 1 << 30,
        "gb" => 1_000_000_000,
        _ => return Err(bad()),
    };
    // SECURITY: checked, so a huge number is a config error rather than a wrapped limit.
    n.checked_mul(multiplier).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_units() {
        assert_eq!(parse_size("100MiB"), Ok(100 << 20));
        assert_eq!(parse_size("100mib"), Ok(100 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("2KB"), Ok(2_000));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("7M"), Ok(7 << 20));
    }

    #[test]
    fn bare_integer_is_bytes() {
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("1234B"), Ok(1234));
    }

    #[test]
    fn nonsense_and_overflow_are_rejected() {
        for s in [
            "",
            "MiB",
            "10 MB",
            "1.5G",
            "-1",
            "10TB",
            "lots",
            "99999999999999999999G",
        ] {
            let err = parse_size(s).unwrap_err();
            assert!(err.to_string().contains("is not a size"), "{s}: {err}");
        }
    }
}
