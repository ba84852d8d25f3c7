//! Precompressed siblings (`app.js.br`, `app.js.gz`) and the `Accept-Encoding` choice.

use http::header::ACCEPT_ENCODING;
use http::{HeaderMap, HeaderValue};

/// Which file a response is read from: the file itself or a precompressed sibling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Encoding {
    Identity,
    Brotli,
    Gzip,
}

impl Encoding {
    /// The sibling's extension, appended to the file name (`app.js` -> `app.js.br`).
    pub(super) fn extension(self) -> &'static str {
        match self {
            Encoding::Identity => "",
            Encoding::Brotli => ".br",
            Encoding::Gzip => ".gz",
        }
    }

    /// The `Content-Encoding` header value, `None` for the identity file.
    pub(super) fn content_encoding(self) -> Option<HeaderValue> {
        match self {
            Encoding::Identity => None,
            Encoding::Brotli => Some(HeaderValue::from_static("br")),
            Encoding::Gzip => Some(HeaderValue::from_static("gzip")),
        }
    }

    /// Appended inside the ETag's quotes, so each encoding has its own validator.
    pub(super) fn etag_suffix(self) -> &'static str {
        match self {
            Encoding::Identity => "",
            Encoding::Brotli => "-br",
            Encoding::Gzip => "-gz",
        }
    }
}

/// The client's `Accept-Encoding` weights, in thousandths (q=0.5 is 500).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Accepted {
    br: u16,
    gzip: u16,
    identity: u16,
}

/// Reads every `Accept-Encoding` header. Unparseable entries count as refused. No
/// header means only the identity file: RFC 9110 would allow any coding, but a client
/// that sends nothing may decode nothing.
pub(super) fn accepted(headers: &HeaderMap) -> Accepted {
    let mut br = None;
    let mut gzip = None;
    let mut identity = None;
    let mut any = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        // SECURITY: header bytes are untrusted; anything not ASCII is skipped, and a
        // malformed weight means "refused", so the worst outcome is the identity file.
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            if name.is_empty() {
                continue;
            }
            let mut q = Some(1000);
            for param in parts {
                if let Some((key, value)) = param.split_once('=') {
                    if key.trim().eq_ignore_ascii_case("q") {
                        q = parse_q(value.trim());
                    }
                }
            }
            let q = q.unwrap_or(0);
            if name.eq_ignore_ascii_case("br") {
                br = Some(q);
            } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(q);
            } else if name.eq_ignore_ascii_case("identity") {
                identity = Some(q);
            } else if name == "*" {
                any = Some(q);
            }
        }
    }
    Accepted {
        br: br.or(any).unwrap_or(0),
        gzip: gzip.or(any).unwrap_or(0),
        // Only an explicit `identity;q=` competes with the encodings: everyone accepts
        // the identity coding, but a client that lists encodings wants them.
        identity: identity.unwrap_or(0),
    }
}

/// The encoding to serve, given which siblings exist. Highest weight wins; on a tie
/// brotli beats gzip and both beat an explicit `identity`. The identity file is the
/// fallback even when the client refused it: a 406 helps nobody.
pub(super) fn choose(accepted: Accepted, has_br: bool, has_gzip: bool) -> Encoding {
    let br = if has_br { accepted.br } else { 0 };
    let gzip = if has_gzip { accepted.gzip } else { 0 };
    let (best, q) = if br >= gzip {
        (Encoding::Brotli, br)
    } else {
        (Encoding::Gzip, gzip)
    };
    if q == 0 || q < accepted.identity {
        Encoding::Identity
    } else {
        best
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_q(text: &str) -> Option<u16> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    let whole: u16 = match whole {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    for (i, digit) in fraction.bytes().enumerate() {
        thousandths += u16::from(digit - b'0') * [100, 10, 1][i];
    }
    let q = whole * 1000 + thousandths;
    (q <= 1000).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> Accepted {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        accepted(&headers)
    }

    #[test]
    fn q_values_parse_to_thousandths() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.05"), Some(50));
        assert_eq!(parse_q("0.001"), Some(1));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.0001"), None);
        assert_eq!(parse_q("2"), None);
        assert_eq!(parse_q("-1"), None);
        assert_eq!(parse_q(""), None);
    }

    #[test]
    fn a_browser_header_gets_brotli_when_both_siblings_exist() {
        let a = accepting("gzip, deflate, br, zstd");
        assert_eq!(choose(a, true, true), Encoding::Brotli);
        assert_eq!(choose(a, false, true), Encoding::Gzip);
        assert_eq!(choose(a, false, false), Encoding::Identity);
    }

    #[test]
    fn q_zero_refuses_an_encoding() {
        let a = accepting("br;q=0, gzip");
        assert_eq!(choose(a, true, true), Encoding::Gzip);
        let a = accepting("br;q=0, gzip;q=0");
        assert_eq!(choose(a, true, true), Encoding::Identity);
    }

    #[test]
    fn a_higher_weight_beats_the_brotli_preference() {
        let a = accepting("br;q=0.5, gzip;q=0.9");
        assert_eq!(choose(a, true, true), Encoding::Gzip);
    }

    #[test]
    fn the_wildcard_covers_unnamed_encodings() {
        assert_eq!(choose(accepting("*"), true, true), Encoding::Brotli);
        assert_eq!(choose(accepting("gzip, *;q=0"), true, true), Encoding::Gzip);
    }

    #[test]
    fn no_header_means_the_identity_file() {
        assert_eq!(
            choose(accepted(&HeaderMap::new()), true, true),
            Encoding::Identity
        );
    }

    #[test]
    fn a_preferred_identity_wins_over_a_weaker_encoding() {
        let a = accepting("identity, br;q=0.1");
        assert_eq!(choose(a, true, false), Encoding::Identity);
    }

    #[test]
    fn malformed_weights_and_names_count_as_refused() {
        let a = accepting("br;q=high, GZIP;Q=1");
        assert_eq!(choose(a, true, true), Encoding::Gzip);
        let a = accepting(" ,;, x-gzip");
        assert_eq!(choose(a, true, true), Encoding::Gzip);
    }
}
