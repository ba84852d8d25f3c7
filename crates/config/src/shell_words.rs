//! Splitting a command line into words the way `sh` would, for the simple commands a
//! Procfile usually holds. Anything beyond plain words is refused, not guessed.

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

#[cfg(test)]
mod tests {
    use super::*;

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
