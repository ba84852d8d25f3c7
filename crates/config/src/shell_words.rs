//! Splitting a command line the way `sh` would, for what a Procfile usually holds:
//! steps joined by `;` and `&&`, each a simple command of plain words. Anything
//! beyond that is refused, not guessed.

/// One shell word; `dynamic` when it expands a variable (`$PORT`) at run time.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Word {
    pub text: String,
    pub dynamic: bool,
}

/// Splits a command line like a POSIX shell would for simple commands; `None` when it
/// uses anything more (operators, redirections, command substitution, bad quoting).
pub(crate) fn split_words(s: &str) -> Option<Vec<Word>> {
    let mut words = Vec::new();
    let mut text = String::new();
    let mut dynamic = false;
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(Word {
                        text: std::mem::take(&mut text),
                        dynamic,
                    });
                    dynamic = false;
                    in_word = false;
                }
                continue;
            }
            '#' if !in_word => break,
            '\'' => loop {
                match chars.next()? {
                    '\'' => break,
                    c => text.push(c),
                }
            },
            '"' => loop {
                match chars.next()? {
                    '"' => break,
                    '`' => return None,
                    '$' => {
                        dynamic = true;
                        text.push('$');
                    }
                    '\\' => match chars.next()? {
                        c @ ('"' | '\\' | '$' | '`') => text.push(c),
                        c => {
                            text.push('\\');
                            text.push(c);
                        }
                    },
                    c => text.push(c),
                }
            },
            '\\' => text.push(chars.next()?),
            '$' => {
                dynamic = true;
                text.push('$');
            }
            ';' | '&' | '|' | '<' | '>' | '`' | '(' | ')' => return None,
            c => text.push(c),
        }
        in_word = true;
    }
    if in_word {
        words.push(Word { text, dynamic });
    }
    Some(words)
}

/// Splits a command line into the simple commands it runs one after another, at
/// `;`, `&&` and newlines outside quotes; each step as written, trimmed. `Err`
/// names the shell syntax it has beyond that (`||`, a pipe, `&`, a redirection,
/// `$(...)`, backquotes, parentheses, an unclosed quote).
pub(crate) fn split_steps<'a>(s: &'a str) -> Result<Vec<&'a str>, &'static str> {
    let mut steps = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    let mut end_step = |steps: &mut Vec<&'a str>, end: usize, next: usize, required: bool| {
        let step = s[start..end].trim();
        if step.is_empty() && required {
            return Err("an empty command between `;` or `&&`");
        }
        if !step.is_empty() {
            steps.push(step);
        }
        start = next;
        Ok(())
    };
    let mut word_start = true;
    while let Some((at, c)) = chars.next() {
        let was_word_start = word_start;
        word_start = c.is_whitespace();
        match c {
            '\'' => loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some(_) => {}
                    None => return Err("an unclosed quote"),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => {
                        chars.next();
                    }
                    Some((_, '`')) => return Err("backquotes"),
                    Some((_, '$')) if chars.peek().is_some_and(|(_, c)| *c == '(') => {
                        return Err("`$(...)`")
                    }
                    Some(_) => {}
                    None => return Err("an unclosed quote"),
                }
            },
            '\\' => {
                chars.next();
            }
            '#' if was_word_start => {
                end_step(&mut steps, at, s.len(), false)?;
                return Ok(steps);
            }
            ';' | '\n' => {
                end_step(&mut steps, at, at + 1, c == ';')?;
                word_start = true;
            }
            '&' => match chars.peek() {
                Some((_, '&')) => {
                    chars.next();
                    end_step(&mut steps, at, at + 2, true)?;
                    word_start = true;
                }
                _ => return Err("`&` (a command in the background)"),
            },
            '|' => {
                return Err(match chars.peek() {
                    Some((_, '|')) => "`||`",
                    _ => "a pipe (`|`)",
                })
            }
            '<' | '>' => return Err("a redirection (`<` or `>`)"),
            '`' => return Err("backquotes"),
            '$' if chars.peek().is_some_and(|(_, c)| *c == '(') => return Err("`$(...)`"),
            '(' | ')' => return Err("parentheses"),
            _ => {}
        }
    }
    end_step(&mut steps, s.len(), s.len(), false)?;
    if steps.is_empty() {
        return Err("no command");
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_split_at_semicolons_and_double_ampersands_outside_quotes() {
        assert_eq!(
            split_steps("flask db upgrade; flask translate compile; gunicorn microblog:app"),
            Ok(vec![
                "flask db upgrade",
                "flask translate compile",
                "gunicorn microblog:app"
            ])
        );
        assert_eq!(
            split_steps("python manage.py migrate && gunicorn mysite.wsgi"),
            Ok(vec!["python manage.py migrate", "gunicorn mysite.wsgi"])
        );
        assert_eq!(
            split_steps("echo 'a; b' \"c && d\" e\\;f; g #; h"),
            Ok(vec!["echo 'a; b' \"c && d\" e\\;f", "g"])
        );
        assert_eq!(
            split_steps("gunicorn app:app;"),
            Ok(vec!["gunicorn app:app"])
        );
        assert_eq!(split_steps("a#b"), Ok(vec!["a#b"]));
    }

    #[test]
    fn other_shell_syntax_is_named() {
        for (s, why) in [
            ("a || b", "`||`"),
            ("a | b", "a pipe (`|`)"),
            ("a & b", "`&` (a command in the background)"),
            ("a > log", "a redirection (`<` or `>`)"),
            ("a 2>&1", "a redirection (`<` or `>`)"),
            ("a $(b)", "`$(...)`"),
            ("a \"$(b)\"", "`$(...)`"),
            ("a `b`", "backquotes"),
            ("(a)", "parentheses"),
            ("a 'b", "an unclosed quote"),
            ("a && && b", "an empty command between `;` or `&&`"),
            ("; a", "an empty command between `;` or `&&`"),
        ] {
            assert_eq!(split_steps(s), Err(why), "{s}");
        }
    }

    fn texts(s: &str) -> Vec<String> {
        split_words(s)
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[test]
    fn words_follow_quoting_rules() {
        assert_eq!(
            texts(r#"a 'b c' "d $E" f\ g "" # comment"#),
            ["a", "b c", "d $E", "f g", ""]
        );
        assert_eq!(texts(r#"x"y"'z' "a\"b" "\q""#), ["xyz", "a\"b", "\\q"]);
        assert_eq!(texts("  spaced\tout  "), ["spaced", "out"]);
    }

    #[test]
    fn variables_make_a_word_dynamic() {
        let w = split_words("gunicorn -w $N '$LITERAL' \"$Q\"").unwrap();
        let dynamic: Vec<bool> = w.iter().map(|w| w.dynamic).collect();
        assert_eq!(dynamic, [false, false, true, false, true]);
    }

    #[test]
    fn shell_syntax_is_refused() {
        for s in [
            "a 'b",
            "a \"b",
            "a \\",
            "a $(b)",
            "a `b`",
            "a \"`b`\"",
            "a > b",
            "a; b",
            "a && b",
            "a | b",
        ] {
            assert!(split_words(s).is_none(), "{s}");
        }
    }
}
