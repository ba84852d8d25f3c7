//! `.env` and `.flaskenv`: `KEY=value` files read with dotenvy's parser into the
//! app's environment map, never into capstan's own process environment.
//!
//! `$NAME` and `${NAME}` in unquoted and double-quoted values expand to what the
//! app's environment holds so far (the app file's `[env]`, then `.flaskenv`, then
//! earlier lines); a missing name expands to nothing. Single quotes and `\$` keep a
//! literal `$`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;
use crate::files::read_text;
use crate::toml_tree::line_at;

// Stand-ins for `$` while dotenvy parses (private-use characters, never typed).
const SUBST: char = '\u{E000}';
const LITERAL: char = '\u{E001}';

/// Reads `<root>/<file>` if it exists and adds its variables to `env`, overriding.
/// Returns whether the file exists.
pub(crate) fn merge_dotenv(
    root: &Path,
    file: &str,
    env: &mut BTreeMap<String, String>,
) -> Result<bool, ConfigError> {
    let Some(text) = read_text(root, file)? else {
        return Ok(false);
    };
    let syntax = |line: usize, message: &str| ConfigError::Syntax {
        file: PathBuf::from(file),
        line,
        message: message.to_owned(),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if let Some(at) = text.find([SUBST, LITERAL]) {
        return Err(syntax(
            line_at(text, at),
            "contains a private-use character (U+E000 or U+E001), which capstan reserves",
        ));
    }
    let protected = protect_dollars(text);
    for item in dotenvy::from_read_iter(protected.as_bytes()) {
        match item {
            Ok((key, value)) => {
                let value = expand(&value, env);
                if let Some(at) = value.contains('\0').then(|| text.find('\0')).flatten() {
                    return Err(syntax(
                        line_at(text, at),
                        &format!("the value of {key} contains a NUL character"),
                    ));
                }
                env.insert(key, value);
            }
            Err(dotenvy::Error::LineParse(bad_line, _)) => {
                return Err(syntax(
                    error_line(&protected, &bad_line),
                    "cannot parse this line; write KEY=value, and quote values that contain \
                     spaces or '#' (\"like this\")",
                ));
            }
            Err(e) => {
                return Err(ConfigError::Read {
                    file: PathBuf::from(file),
                    source: std::io::Error::other(e.to_string()),
                })
            }
        }
    }
    Ok(true)
}

/// Replaces every `$` that dotenvy could expand with a stand-in, so dotenvy never
/// expands anything itself.
///
/// SECURITY: dotenvy expands `$NAME` from capstan's own process environment first,
/// which would copy the server's variables (tokens, paths) into the app. Every `$`
/// not escaped by an odd run of backslashes is replaced, whatever the quoting, so
/// that cannot happen even where this scanner misjudges quotes; the quote tracking
/// below only decides whether the `$` is later expanded (from the app's env) or kept.
fn protect_dollars(text: &str) -> String {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut out = String::with_capacity(text.len());
    let mut quote = Quote::None;
    let mut backslashes = 0usize;
    let mut line_start = true; // only whitespace since the last newline outside quotes
    let mut after_space = false;
    let mut in_comment = false;
    for c in text.chars() {
        if in_comment {
            if c == '\n' {
                in_comment = false;
                line_start = true;
            }
            out.push(c);
            continue;
        }
        let escaped = backslashes % 2 == 1 && quote != Quote::Single;
        match c {
            '$' if backslashes % 2 == 1 => out.push('$'),
            '$' if quote == Quote::Single => out.push(LITERAL),
            '$' => out.push(SUBST),
            '#' if quote == Quote::None && !escaped && (line_start || after_space) => {
                in_comment = true;
                out.push(c);
            }
            '\'' if !escaped && quote == Quote::None => {
                quote = Quote::Single;
                out.push(c);
            }
            '\'' if quote == Quote::Single => {
                quote = Quote::None;
                out.push(c);
            }
            '"' if !escaped && quote == Quote::None => {
                quote = Quote::Double;
                out.push(c);
            }
            '"' if !escaped && quote == Quote::Double => {
                quote = Quote::None;
                out.push(c);
            }
            _ => out.push(c),
        }
        backslashes = if c == '\\' { backslashes + 1 } else { 0 };
        if c == '\n' && quote == Quote::None {
            line_start = true;
        } else if !c.is_whitespace() {
            line_start = false;
        }
        after_space = c.is_whitespace() && quote == Quote::None;
    }
    out
}

/// Turns stand-ins back into `$` or expands them from `env`.
fn expand(value: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find([SUBST, LITERAL]) {
        out.push_str(&rest[..at]);
        let marker = rest[at..].chars().next().unwrap_or(LITERAL);
        rest = &rest[at + marker.len_utf8()..];
        if marker == LITERAL {
            out.push('$');
            continue;
        }
        let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
            match braced.split_once('}') {
                Some((name, after)) => (name, after),
                None => ("", rest),
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if name.is_empty() {
            out.push('$');
        } else if let Some(v) = env.get(name) {
            out.push_str(v);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The line of the parse error whose payload (the logical line, or just its value)
/// is `payload`.
///
/// dotenvy does not say where an error is, and a logical line may span several
/// physical ones (quoted newlines). So ask dotenvy itself: the error is on the
/// first physical line `k` such that parsing lines `1..=k` fails the same way,
/// minus the newlines inside the payload. Only runs when there is an error.
fn error_line(text: &str, payload: &str) -> usize {
    let ends: Vec<usize> = text
        .match_indices('\n')
        .map(|(at, _)| at + 1)
        .chain((!text.ends_with('\n')).then_some(text.len()))
        .collect();
    let fails_the_same = |lines: usize| {
        let prefix = &text[..ends[lines - 1]];
        dotenvy::from_read_iter(prefix.as_bytes())
            .find_map(Result::err)
            .is_some_and(|e| matches!(e, dotenvy::Error::LineParse(p, _) if p == payload))
    };
    // Binary search over 1..=len: once the failing line is in, the error stays the same.
    let (mut lo, mut hi) = (1, ends.len().max(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fails_the_same(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let inner_newlines = payload.trim_end_matches(['\n', '\r']).matches('\n').count();
    lo.saturating_sub(inner_newlines).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn load(
        files: &[(&str, &str)],
        start: &[(&str, &str)],
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let mut env: BTreeMap<String, String> = start
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (name, text) in files {
            fs::write(root.join(name), text).unwrap();
        }
        merge_dotenv(&root, ".flaskenv", &mut env)?;
        merge_dotenv(&root, ".env", &mut env)?;
        Ok(env)
    }

    #[test]
    fn later_files_win() {
        let env = load(
            &[
                (".flaskenv", "FLASK_APP=microblog.py\nA=flask\n"),
                (".env", "export A=dotenv\nB='x y'\n"),
            ],
            &[("A", "toml"), ("C", "toml")],
        )
        .unwrap();
        assert_eq!(env["A"], "dotenv");
        assert_eq!(env["B"], "x y");
        assert_eq!(env["C"], "toml");
        assert_eq!(env["FLASK_APP"], "microblog.py");
    }

    #[test]
    fn variables_expand_from_the_app_env_only() {
        // HOME and PATH are set in capstan's own environment; they must not leak in.
        assert!(std::env::var_os("PATH").is_some());
        let env = load(
            &[(
                ".env",
                "BASE=/srv\nDIR=$BASE/app\nURL=\"${BASE}/x\"\nP=$PATH\nH=${HOME}\nLIT='$BASE'\nESC=\\$BASE\nT=$TOML_VAR\n",
            )],
            &[("TOML_VAR", "t")],
        )
        .unwrap();
        assert_eq!(env["DIR"], "/srv/app");
        assert_eq!(env["URL"], "/srv/x");
        assert_eq!(env["P"], "");
        assert_eq!(env["H"], "");
        assert_eq!(env["LIT"], "$BASE");
        assert_eq!(env["ESC"], "$BASE");
        assert_eq!(env["T"], "t");
    }

    #[test]
    fn dollar_signs_in_passwords_survive() {
        let env = load(
            &[(
                ".env",
                "PW='pa$$word'\nPRICE=5$\nUNDERSCORE=$MY_VAR\nMY_VAR=x\n",
            )],
            &[],
        )
        .unwrap();
        assert_eq!(env["PW"], "pa$$word");
        assert_eq!(env["PRICE"], "5$");
        assert_eq!(env["UNDERSCORE"], "");
    }

    #[test]
    fn comments_quotes_and_multiline_values() {
        let env = load(
            &[(
                ".env",
                "# it's a comment\nA=1 # trailing, isn't it\nB=\"line1\nline2 $A\"\nC=ok\n",
            )],
            &[],
        )
        .unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "line1\nline2 1");
        assert_eq!(env["C"], "ok");
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let err = load(&[(".env", "A=1\n\nthis is not valid\n")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(".env:3: cannot parse this line"), "{err}");
        let err = load(&[(".flaskenv", "A=1\nB=two words\n")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(".flaskenv:2: cannot parse this line"),
            "{err}"
        );
        let err = load(&[(".env", "A=1\nB=\"never closed\n")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(".env:2: cannot parse this line"), "{err}");
        // The error is on line 4, after a value spanning lines 2 and 3 that repeats it.
        let err = load(&[(".env", "A=1\nB=\"x\nC=two words\"\nC=two words\n")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(".env:4: cannot parse this line"), "{err}");
        let err = load(&[(".env", "A=1\nB=\"x\ny\" z\n")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(".env:2: cannot parse this line"), "{err}");
    }

    #[test]
    fn nul_in_a_value_names_the_line() {
        let err = load(&[(".env", "A=1\nB=x\0y\n")], &[])
            .unwrap_err()
            .to_string();
        assert_eq!(err, ".env:2: the value of B contains a NUL character");
    }

    #[test]
    fn reserved_characters_name_the_line() {
        let err = load(&[(".env", "A=1\nB=\u{E000}\n")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(".env:2: contains a private-use character"),
            "{err}"
        );
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let env = load(&[(".env", "\u{feff}A=1\n")], &[]).unwrap();
        assert_eq!(env["A"], "1");
    }

    #[test]
    fn missing_files_change_nothing() {
        assert!(load(&[], &[("A", "1")]).unwrap().len() == 1);
    }
}
