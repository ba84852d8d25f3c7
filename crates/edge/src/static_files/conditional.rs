//! Validators (ETag, Last-Modified) and the conditional headers that use them:
//! `If-None-Match`, `If-Modified-Since` (304) and `If-Range` (RFC 9110 §13).

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE};
use http::{HeaderMap, HeaderValue};

/// A strong ETag for one version of one file: `"<mtime secs>-<mtime nanos>-<size><suffix>"`
/// in hex. Any write that changes the size or the mtime changes it.
pub(super) fn etag(mtime: SystemTime, size: u64, suffix: &str) -> HeaderValue {
    let since_epoch = mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
    let tag = format!(
        "\"{:x}-{:x}-{:x}{suffix}\"",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos(),
        size
    );
    HeaderValue::try_from(tag).expect("hex digits and a fixed suffix are a valid header value")
}

/// Whole seconds since the epoch: the precision of `Last-Modified`.
pub(super) fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The `Last-Modified` value for an mtime.
pub(super) fn last_modified(mtime: SystemTime) -> HeaderValue {
    HeaderValue::try_from(httpdate::fmt_http_date(mtime)).expect("an HTTP date is ASCII")
}

/// True when the client's copy is current and a 304 is the answer (GET and HEAD).
/// `If-None-Match` decides when present; only without it does `If-Modified-Since`.
pub(super) fn not_modified(headers: &HeaderMap, etag: &HeaderValue, modified_secs: u64) -> bool {
    let mut if_none_match = headers.get_all(IF_NONE_MATCH).iter().peekable();
    if if_none_match.peek().is_some() {
        return if_none_match.any(|value| list_matches_weakly(value.as_bytes(), etag.as_bytes()));
    }
    match single(headers, IF_MODIFIED_SINCE).and_then(parse_date) {
        Some(since) => modified_secs <= since,
        None => false,
    }
}

/// True when a `Range` may be honoured: no `If-Range`, or one naming this exact version
/// (strong ETag comparison, or the exact `Last-Modified` date).
pub(super) fn if_range_allows(headers: &HeaderMap, etag: &HeaderValue, modified_secs: u64) -> bool {
    let Some(value) = headers.get(IF_RANGE) else {
        return true;
    };
    let bytes = value.as_bytes().trim_ascii();
    if bytes.starts_with(b"\"") || bytes.starts_with(b"W/") {
        // A weak tag never matches here: a range of a "similar" body would corrupt it.
        return bytes == etag.as_bytes();
    }
    parse_date(value) == Some(modified_secs)
}

/// The one value of a header, `None` when absent or repeated (RFC 9110 says a
/// list where one date is expected must be ignored).
fn single(headers: &HeaderMap, name: http::header::HeaderName) -> Option<&HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

// SECURITY: dates come from the client; an unparseable one is ignored, never trusted.
fn parse_date(value: &HeaderValue) -> Option<u64> {
    let text = value.to_str().ok()?;
    httpdate::parse_http_date(text.trim()).ok().map(unix_secs)
}

/// `If-None-Match: *` or a comma-separated list of entity tags, compared weakly (the
/// `W/` prefix is ignored on both sides).
fn list_matches_weakly(list: &[u8], etag: &[u8]) -> bool {
    let ours = etag.strip_prefix(b"W/").unwrap_or(etag);
    let list = list.trim_ascii();
    if list == b"*" {
        return true;
    }
    // SECURITY: a hand-rolled scan over untrusted bytes: every step advances `rest`,
    // and anything that is not `[W/]"..."` ends the scan with "no match".
    let mut rest = list;
    loop {
        rest = rest.trim_ascii_start();
        while let Some(after) = rest.strip_prefix(b",") {
            rest = after.trim_ascii_start();
        }
        if rest.is_empty() {
            return false;
        }
        let tag_start = rest.strip_prefix(b"W/").unwrap_or(rest);
        let Some(inner) = tag_start.strip_prefix(b"\"") else {
            return false;
        };
        let Some(close) = inner.iter().position(|&b| b == b'"') else {
            return false;
        };
        let tag = &tag_start[..close + 2];
        if tag == ours {
            return true;
        }
        rest = &inner[close + 1..];
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn headers(pairs: &[(http::header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn tag() -> HeaderValue {
        HeaderValue::from_static("\"65-0-a\"")
    }

    #[test]
    fn the_etag_changes_with_size_mtime_and_encoding() {
        let t = UNIX_EPOCH + Duration::new(0x65, 0x10);
        assert_eq!(etag(t, 10, ""), "\"65-10-a\"");
        assert_eq!(etag(t, 10, "-br"), "\"65-10-a-br\"");
        assert_ne!(etag(t, 11, ""), etag(t, 10, ""));
        assert_ne!(etag(t + Duration::from_nanos(1), 10, ""), etag(t, 10, ""));
    }

    #[test]
    fn if_none_match_matches_in_a_list_weakly_or_by_star() {
        for value in [
            "\"65-0-a\"",
            "W/\"65-0-a\"",
            "\"x\", \"65-0-a\"",
            "\"a,b\" ,W/\"65-0-a\"",
            "*",
            " * ",
        ] {
            let h = headers(&[(IF_NONE_MATCH, value)]);
            assert!(not_modified(&h, &tag(), 0), "{value}");
        }
    }

    #[test]
    fn if_none_match_does_not_match_other_or_malformed_tags() {
        for value in [
            "\"65-0-b\"",
            "65-0-a",
            "\"65-0-a",
            "\"x\" junk \"65-0-a\"",
            "",
        ] {
            let h = headers(&[(IF_NONE_MATCH, value)]);
            assert!(!not_modified(&h, &tag(), 0), "{value}");
        }
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let h = headers(&[
            (IF_NONE_MATCH, "\"other\""),
            (IF_MODIFIED_SINCE, "Sun, 06 Nov 2050 08:49:37 GMT"),
        ]);
        assert!(!not_modified(&h, &tag(), 100));
    }

    #[test]
    fn if_modified_since_is_not_modified_at_or_after_the_mtime() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let secs = unix_secs(httpdate::parse_http_date(date).unwrap());
        let h = headers(&[(IF_MODIFIED_SINCE, date)]);
        assert!(not_modified(&h, &tag(), secs));
        assert!(not_modified(&h, &tag(), secs - 1));
        assert!(!not_modified(&h, &tag(), secs + 1));
    }

    #[test]
    fn a_bad_or_repeated_if_modified_since_is_ignored() {
        let h = headers(&[(IF_MODIFIED_SINCE, "yesterday")]);
        assert!(!not_modified(&h, &tag(), 0));
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let h = headers(&[(IF_MODIFIED_SINCE, date), (IF_MODIFIED_SINCE, date)]);
        assert!(!not_modified(&h, &tag(), 0));
    }

    #[test]
    fn if_range_needs_the_strong_etag_or_the_exact_date() {
        let allows =
            |value: &str, secs| if_range_allows(&headers(&[(IF_RANGE, value)]), &tag(), secs);
        assert!(if_range_allows(&HeaderMap::new(), &tag(), 5));
        assert!(allows("\"65-0-a\"", 5));
        assert!(!allows("W/\"65-0-a\"", 5), "a weak tag never matches");
        assert!(!allows("\"old\"", 5));
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let secs = unix_secs(httpdate::parse_http_date(date).unwrap());
        assert!(allows(date, secs));
        assert!(!allows(date, secs + 1));
        assert!(!allows("garbage", secs));
    }
}
