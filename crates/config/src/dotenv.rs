//! `.env` and `.flaskenv`: `KEY=value` files read into an environment map (never
//! into capstan's own environment) the way python-dotenv, foreman and Docker read them.
//!
//! - Blank lines, `# comments`, a UTF-8 BOM and a bare `KEY` are skipped; CRLF is fine.
//! - `[export ]KEY=value`, spaces allowed around `=`; a key is `[A-Za-z_][A-Za-z0-9_.-]*`.
//! - Unquoted values run to the end of the line, minus a `#` comment that follows
//!   whitespace, trimmed: `A=hello world # hi` is `hello world`, `A=a#b` is `a#b`.
//! - `'single'` quotes are literal (only `\'` and `\\` are escapes); `"double"` quotes
//!   decode `\n \r \t \" \\ \$` (another `\x` stays as is). Both may span lines; only
//!   whitespace or a comment may follow the closing quote.
//! - `$NAME`, `${NAME}` and `${NAME:-default}` in unquoted and double-quoted values
//!   expand to what the app's environment holds so far (the app file's `[env]`, then
//!   `.flaskenv`, then earlier lines); a missing name expands to nothing. `\$`, `$$`,
//!   single quotes and a `$` not followed by a name or `{` keep a literal `$`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;
use crate::files::read_text;
use crate::toml_tree::line_at;

type Env = BTreeMap<String, String>;

const BAD_LINE: &str = "cannot parse this line; write KEY=value, with a key made of \
                        letters, digits and `_.-` that does not start with a digit";

/// Reads `<root>/<file>` if it exists and adds its variables to `env`, overriding.
/// Returns whether the file exists.
pub(crate) fn merge_dotenv(root: &Path, file: &str, env: &mut Env) -> Result<bool, ConfigError> {
    let Some(text) = read_text(root, file)? else {
        return Ok(false);
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let text = text.replace("\r\n", "\n");
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let start = text.len() - rest.len();
        let syntax = |message: &str| ConfigError::Syntax {
            file: PathBuf::from(file),
            line: line_at(&text, start),
            message: message.to_owned(),
        };
        let (found, next) = entry(rest).map_err(syntax)?;
        rest = next;
        let Some((key, raw, quote)) = found else {
            continue;
        };
        let value = decode(raw, quote, env).map_err(syntax)?;
        if value.contains('\0') {
            let message = format!("the value of {key} contains a NUL character");
            return Err(syntax(&message));
        }
        env.insert(key.to_owned(), value);
    }
    Ok(true)
}

/// A key, raw value and the quote around it (`None` for a blank line, comment or bare
/// key) from the start of some text, and the text after it.
type Entry<'a> = (Option<(&'a str, &'a str, Option<char>)>, &'a str);

fn entry(s: &str) -> Result<Entry<'_>, &'static str> {
    let (line, next) = s.split_once('\n').unwrap_or((s, ""));
    let stmt = line.trim_start();
    if stmt.is_empty() || stmt.starts_with('#') {
        return Ok((None, next));
    }
    let stmt = stmt
        .strip_prefix("export")
        .filter(|r| r.starts_with([' ', '\t']))
        .map_or(stmt, str::trim_start);
    let key_len = stmt
        .find(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c)))
        .unwrap_or(stmt.len());
    let (key, after_key) = stmt.split_at(key_len);
    let after_key = after_key.trim_start_matches([' ', '\t']);
    let valid_key = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    if valid_key && (after_key.is_empty() || after_key.starts_with('#')) {
        return Ok((None, next)); // python-dotenv gives a bare `KEY` no value
    }
    let Some(value) = after_key.strip_prefix('=').filter(|_| valid_key) else {
        return Err(BAD_LINE);
    };
    let trimmed = value.trim_start_matches([' ', '\t']);
    let quote = trimmed.chars().next().filter(|c| *c == '\'' || *c == '"');
    if quote.is_none() {
        let end = [" #", "\t#"].iter().filter_map(|p| value.find(p)).min();
        let value = value[..end.unwrap_or(value.len())].trim();
        return Ok((Some((key, value, None)), next));
    }
    // `trimmed` is a suffix of `line`: this is the value and all the text after it.
    let quoted = &s[line.len() - trimmed.len()..];
    let close = closing_quote(quoted).ok_or("the quote opening this value is never closed")?;
    let after = &quoted[close + 1..];
    let (tail, next) = after.split_once('\n').unwrap_or((after, ""));
    let tail = tail.trim_start();
    if !tail.is_empty() && !tail.starts_with('#') {
        return Err("unexpected text after the closing quote; put all of the value inside");
    }
    Ok((Some((key, &quoted[1..close], quote)), next))
}

/// The offset of the quote that closes the one `quoted` starts with.
fn closing_quote(quoted: &str) -> Option<usize> {
    let mut chars = quoted.char_indices();
    let (_, open) = chars.next()?;
    while let Some((at, c)) = chars.next() {
        if c == open {
            return Some(at);
        }
        if c == '\\' {
            chars.next();
        }
    }
    None
}

/// The value `raw` stands for: escapes decoded and variables expanded from `env`.
fn decode(raw: &str, quote: Option<char>, env: &Env) -> Result<String, &'static str> {
    let escapes = match quote {
        None => "$",
        Some('\'') => "'\\",
        Some(_) => "\"\\$nrt",
    };
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match rest.chars().next() {
            Some(e) if c == '\\' && escapes.contains(e) => {
                out.push("nrt".find(e).map_or(e, |i| ['\n', '\r', '\t'][i]));
                rest = &rest[1..];
            }
            _ if c == '$' && quote != Some('\'') => rest = expand(rest, env, &mut out)?,
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Writes what the `$` just before `rest` stands for to `out`; returns the text after it.
fn expand<'a>(rest: &'a str, env: &Env, out: &mut String) -> Result<&'a str, &'static str> {
    // SECURITY: names come from the app's env only, never from capstan's own process
    // environment, which would copy the server's variables (tokens, paths) into the app.
    let lookup = |name: &str, default| env.get(name).map_or(default, String::as_str);
    if let Some(braced) = rest.strip_prefix('{') {
        let (inner, after) = braced
            .split_once('}')
            .ok_or("`${` without a closing `}`; write `\\$` or use single quotes for a `$`")?;
        let (name, default) = inner.split_once(":-").unwrap_or((inner, ""));
        out.push_str(lookup(name, default));
        return Ok(after);
    }
    let len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.push_str(lookup(&rest[..len], ""));
        return Ok(&rest[len..]);
    }
    // A lone `$` is literal, and so is `$$` (`pa$$word`).
    let dollars = if rest.starts_with('$') { 2 } else { 1 };
    out.push_str(&"$$"[..dollars]);
    Ok(&rest[dollars - 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` to a temp app dir and merges `.flaskenv` then `.env` into `start`.
    fn load(files: &[(&str, &str)], start: &[(&str, &str)]) -> Result<Env, ConfigError> {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let mut env: Env = start
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (name, text) in files {
            std::fs::write(root.join(name), text).unwrap();
        }
        merge_dotenv(&root, ".flaskenv", &mut env)?;
        merge_dotenv(&root, ".env", &mut env)?;
        Ok(env)
    }

    fn dotenv(text: &str) -> Env {
        load(&[(".env", text)], &[]).unwrap()
    }

    fn error(file: &str, text: &str) -> String {
        load(&[(file, text)], &[]).unwrap_err().to_string()
    }

    #[test]
    fn later_files_win() {
        let files = [
            (".flaskenv", "FLASK_APP=microblog.py\nA=flask\n"),
            (".env", "export A=dotenv\nB='x y'\n"),
        ];
        let env = load(&files, &[("A", "toml"), ("C", "toml")]).unwrap();
        assert_eq!(env["A"], "dotenv");
        assert_eq!(env["B"], "x y");
        assert_eq!(env["C"], "toml");
        assert_eq!(env["FLASK_APP"], "microblog.py");
    }

    #[test]
    fn unquoted_value_with_spaces_is_accepted() {
        let env = dotenv("GREETING=hello from .env\nB = two  words \n");
        assert_eq!(env["GREETING"], "hello from .env");
        assert_eq!(env["B"], "two  words");
    }

    #[test]
    fn variables_expand_from_the_app_env_only() {
        // HOME and PATH are set in capstan's own environment; they must not leak in.
        assert!(std::env::var_os("PATH").is_some());
        let text = "BASE=/srv\nDIR=$BASE/app\nURL=\"${BASE}/x\"\nP=$PATH\nH=${HOME}\n\
                    LIT='$BASE'\nESC=\\$BASE\nQ=\"\\$BASE\"\nT=$TOML_VAR\nD=${NO:-dflt}\n";
        let env = load(&[(".env", text)], &[("TOML_VAR", "t")]).unwrap();
        assert_eq!(env["DIR"], "/srv/app");
        assert_eq!(env["URL"], "/srv/x");
        assert_eq!(env["P"], "");
        assert_eq!(env["H"], "");
        assert_eq!(env["LIT"], "$BASE");
        assert_eq!(env["ESC"], "$BASE");
        assert_eq!(env["Q"], "$BASE");
        assert_eq!(env["T"], "t");
        assert_eq!(env["D"], "dflt");
    }

    #[test]
    fn dollar_signs_in_passwords_survive() {
        let env = dotenv(
            "PW='pa$$word'\nPW2=pa$$word\nPW3=\"pa$$word\"\nPRICE=5$\nCOST=$5\n\
             UNDERSCORE=$MY_VAR\nMY_VAR=x\n",
        );
        assert_eq!(env["PW"], "pa$$word");
        assert_eq!(env["PW2"], "pa$$word");
        assert_eq!(env["PW3"], "pa$$word");
        assert_eq!(env["PRICE"], "5$");
        assert_eq!(env["COST"], "$5");
        assert_eq!(env["UNDERSCORE"], "");
        let err = error(".env", "A=1\nB=\"${A\"\n");
        assert!(err.starts_with(".env:2: `${` without a"), "{err}");
    }

    #[test]
    fn comments_quotes_and_multiline_values() {
        let env = dotenv(
            "# it's a comment\r\n  # indented\nA=1 # trailing, isn't it\nB=\"line1\n\
             line2 $A\"  # note\nC=a#b\nBARE\nD='it\\'s\n$A \\n'\nE=\"\\t\\\"q\\\" \\x\"\n",
        );
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "line1\nline2 1");
        assert_eq!(env["C"], "a#b");
        assert_eq!(env["D"], "it's\n$A \\n");
        assert_eq!(env["E"], "\t\"q\" \\x");
        assert!(!env.contains_key("BARE"));
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let err = error(".env", "A=1\n\nthis is not valid\n");
        assert!(err.starts_with(".env:3: cannot parse this line"), "{err}");
        let err = error(".flaskenv", "A=1\n1B=x\n");
        assert!(err.starts_with(".flaskenv:2: cannot parse this"), "{err}");
        let err = error(".env", "A=1\nB=\"never closed\nC=2\n");
        assert!(err.starts_with(".env:2: the quote opening"), "{err}");
        // Line 4, after a value spanning lines 2 and 3 that repeats it.
        let err = error(".env", "A=1\nB=\"x\nnot valid\"\nnot valid\n");
        assert!(err.starts_with(".env:4: cannot parse this line"), "{err}");
        let err = error(".env", "A=1\nB=\"x\ny\" z\n");
        assert!(err.starts_with(".env:2: unexpected text after"), "{err}");
    }

    #[test]
    fn nul_in_a_value_names_the_line() {
        let err = error(".env", "A=1\nB=x\0y\n");
        assert_eq!(err, ".env:2: the value of B contains a NUL character");
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        assert_eq!(dotenv("\u{feff}A=1\n")["A"], "1");
    }

    #[test]
    fn missing_files_change_nothing() {
        assert_eq!(load(&[], &[("A", "1")]).unwrap().len(), 1);
    }
}
