//! From the untrusted URL path to a relative path that cannot name anything outside
//! the route's directory. Pure string work; the file system checks are in `lookup`.

use std::borrow::Cow;

/// The part of a request path below a route's prefix, percent-decoded and checked.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RelPath<'a> {
    /// Empty (the route's own path, no trailing `/`), or starts with `/`. A trailing
    /// `/` is kept: it asks for a directory.
    decoded: Cow<'a, str>,
}

/// Why a path was refused before touching the file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rejection {
    /// Answered like a missing file, so nothing is revealed.
    NotFound,
    /// Malformed percent-encoding, NUL or bytes that are not UTF-8.
    BadRequest,
}

impl RelPath<'_> {
    /// The cache key: the decoded path. Two spellings of one file share it.
    pub(super) fn key(&self) -> &str {
        &self.decoded
    }

    /// The request ended with `/`: it names a directory, served by its `index.html`.
    pub(super) fn wants_dir(&self) -> bool {
        self.decoded.ends_with('/')
    }

    /// The path to join to the route's root: no leading or trailing `/`, empty for the
    /// root itself. Every segment is a plain name (checked by [`decode`]).
    pub(super) fn fs_relative(&self) -> &str {
        let path = self.decoded.strip_prefix('/').unwrap_or(&self.decoded);
        path.strip_suffix('/').unwrap_or(path)
    }
}

/// Decodes and checks `rest`, the request path after the route's prefix (empty or
/// starting with `/`).
pub(super) fn decode(rest: &str) -> Result<RelPath<'_>, Rejection> {
    if rest.is_empty() {
        return Ok(RelPath {
            decoded: Cow::Borrowed(""),
        });
    }
    // SECURITY: the route matched at a `/` boundary, so anything else is a caller bug;
    // refuse rather than join a name glued to the prefix.
    if !rest.starts_with('/') {
        return Err(Rejection::NotFound);
    }
    // SECURITY: checks on the raw path first. A backslash is a separator on some
    // systems and in some proxies' eyes; NUL truncates C strings. http::Uri already
    // refuses raw NUL, but `serve` must be safe whatever it is handed.
    if rest.contains('\\') {
        return Err(Rejection::NotFound);
    }
    if rest.contains('\0') {
        return Err(Rejection::BadRequest);
    }
    // SECURITY: `..` before decoding; the same check runs again on the decoded path,
    // which catches `%2e%2e`.
    if rest.split('/').any(|segment| segment == "..") {
        return Err(Rejection::NotFound);
    }
    let decoded = percent_decode_strict(rest)?;
    check_segments(&decoded)?;
    Ok(RelPath { decoded })
}

/// Percent-decodes, refusing what `percent_encoding::percent_decode_str` would let
/// through silently.
fn percent_decode_strict(raw: &str) -> Result<Cow<'_, str>, Rejection> {
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        // SECURITY: a `%` not followed by two hex digits is malformed (400), not a
        // literal `%`: the client and any proxy in front might read it differently.
        let hi = bytes.get(i + 1).copied().and_then(hex_value);
        let lo = bytes.get(i + 2).copied().and_then(hex_value);
        let (Some(hi), Some(lo)) = (hi, lo) else {
            return Err(Rejection::BadRequest);
        };
        match hi << 4 | lo {
            // SECURITY: NUL would truncate the path in the kernel.
            0 => return Err(Rejection::BadRequest),
            // SECURITY: an encoded separator would become a separator after decoding,
            // hiding segments (`..%2F`, `..%5C`) from the raw-path checks above.
            b'/' | b'\\' => return Err(Rejection::NotFound),
            byte => out.push(byte),
        }
        i += 3;
    }
    // SECURITY: names are compared and joined as UTF-8; other bytes are refused rather
    // than guessed at.
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| Rejection::BadRequest)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Every segment of the decoded path must be a plain, visible name.
fn check_segments(decoded: &str) -> Result<(), Rejection> {
    let inner = &decoded[1..];
    if inner.is_empty() {
        return Ok(()); // "/": the root directory.
    }
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    for segment in inner.split('/') {
        // SECURITY: an empty segment (`a//b`) would be a second spelling of a path and
        // could turn a redirect's `Location` into `//host`, another site.
        // `.` and `..` move around the tree; both start with `.`, and so do dotfiles
        // (`.env`, `.git/`), which are never served.
        if segment.is_empty() || segment.starts_with('.') {
            return Err(Rejection::NotFound);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(rest: &str) -> Result<String, Rejection> {
        decode(rest).map(|rel| rel.key().to_owned())
    }

    #[test]
    fn plain_paths_pass_through_without_copying() {
        let rel = decode("/css/app.css").unwrap();
        assert!(matches!(rel.decoded, Cow::Borrowed(_)));
        assert_eq!(rel.key(), "/css/app.css");
        assert_eq!(rel.fs_relative(), "css/app.css");
        assert!(!rel.wants_dir());
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(decoded("/my%20file.txt").unwrap(), "/my file.txt");
        assert_eq!(decoded("/caf%C3%A9.txt").unwrap(), "/café.txt");
    }

    #[test]
    fn a_trailing_slash_asks_for_a_directory() {
        let rel = decode("/docs/").unwrap();
        assert!(rel.wants_dir());
        assert_eq!(rel.fs_relative(), "docs");
        let root = decode("/").unwrap();
        assert!(root.wants_dir());
        assert_eq!(root.fs_relative(), "");
    }

    #[test]
    fn the_prefix_alone_is_the_root_without_a_slash() {
        let rel = decode("").unwrap();
        assert!(!rel.wants_dir());
        assert_eq!(rel.fs_relative(), "");
    }

    #[test]
    fn dot_dot_segments_are_not_found_raw_or_encoded() {
        for rest in [
            "/../Cargo.toml",
            "/a/../../etc/passwd",
            "/..",
            "/%2e%2e/Cargo.toml",
            "/%2E%2E/x",
            "/.%2e/x",
            "/a/%2e%2e",
            "/./x",
            "/%2e/x",
        ] {
            assert_eq!(decoded(rest), Err(Rejection::NotFound), "{rest}");
        }
    }

    #[test]
    fn encoded_slashes_and_backslashes_are_not_found() {
        for rest in [
            "/a%2Fb",
            "/a%2fb",
            "/..%2F..%2Fetc",
            "/..%5C..%5Cx",
            "/a%5cb",
            "/a\\b",
            "/..\\x",
        ] {
            assert_eq!(decoded(rest), Err(Rejection::NotFound), "{rest}");
        }
    }

    #[test]
    fn nul_and_malformed_escapes_are_bad_requests() {
        for rest in [
            "/a%00b", "/a\0b", "/a%", "/a%4", "/a%zz", "/a%g0", "/%ff%fe",
        ] {
            assert_eq!(decoded(rest), Err(Rejection::BadRequest), "{rest}");
        }
    }

    #[test]
    fn dotfiles_and_dot_directories_are_not_found() {
        for rest in ["/.env", "/.git/config", "/a/.hidden/b.txt", "/%2eenv"] {
            assert_eq!(decoded(rest), Err(Rejection::NotFound), "{rest}");
        }
    }

    #[test]
    fn empty_segments_are_not_found() {
        for rest in ["//", "//evil.example/", "/a//b", "/a//"] {
            assert_eq!(decoded(rest), Err(Rejection::NotFound), "{rest}");
        }
    }

    #[test]
    fn dots_inside_names_are_fine() {
        assert_eq!(decoded("/app.min.js").unwrap(), "/app.min.js");
        assert_eq!(decoded("/v1..2/x").unwrap(), "/v1..2/x");
    }

    #[test]
    fn a_path_not_starting_with_a_slash_is_refused() {
        assert_eq!(decoded("ky/x"), Err(Rejection::NotFound));
    }
}
