//! The WSGI target, `"module:callable"`, as gunicorn spells it, and a factory's
//! literal arguments (`module:create_app('prod')`).

use std::fmt;
use std::str::FromStr;

/// Which Python object serves requests: `module` is imported and `callable` looked up
/// in it. `pkg.mod:create_app()` names a factory: it is called once per worker and
/// returns the WSGI callable (gunicorn's syntax); `pkg:create_app('prod', debug=False)`
/// passes it Python literals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WsgiTarget {
    /// Dotted module path, e.g. `microblog` or `mysite.wsgi`.
    pub module: String,
    /// Attribute in the module; `application` when the target has no `:`.
    pub callable: String,
    /// True when written as `module:callable(...)`: call it to get the app.
    pub factory: bool,
    /// A factory's arguments as written between the parentheses (Python literals,
    /// checked), e.g. `'prod'`; empty for none.
    pub args: String,
}

/// A string that is not a WSGI target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a WSGI target: write \"module:callable\", e.g. \"microblog:app\", \
     \"mysite.wsgi:application\", \"app:create_app()\" or \"app:create_app('prod')\" \
     (a factory's arguments must be Python literals)"
)]
pub struct InvalidWsgiTarget(pub String);

impl WsgiTarget {
    /// Parses `module`, `module:callable`, `module:callable()` or
    /// `module:callable(literal, name=literal)`.
    pub fn parse(input: &str) -> Result<WsgiTarget, InvalidWsgiTarget> {
        let bad = || InvalidWsgiTarget(input.to_owned());
        let (module, callable) = match input.split_once(':') {
            Some((m, c)) => (m, c),
            None => (input, "application"),
        };
        let (callable, factory, args) = match callable.split_once('(') {
            Some((c, rest)) => {
                let args = rest.strip_suffix(')').ok_or_else(bad)?;
                (c, true, args.trim())
            }
            None => (callable, false, ""),
        };
        // SECURITY: the names end up in Python's import machinery in the worker and
        // the arguments in `ast.literal_eval`; identifiers and plain literals only
        // keep expressions out. `app.py` would import a submodule `py` of package
        // `app`: surely a file name.
        let file_name = module.ends_with(".py");
        if file_name
            || !module.split('.').all(is_identifier)
            || !is_identifier(callable)
            || !literal_args(args)
        {
            return Err(bad());
        }
        Ok(WsgiTarget {
            module: module.to_owned(),
            callable: callable.to_owned(),
            factory,
            args: args.to_owned(),
        })
    }

    /// `module:callable`, not called.
    pub fn attribute(module: &str, callable: &str) -> WsgiTarget {
        WsgiTarget {
            module: module.to_owned(),
            callable: callable.to_owned(),
            factory: false,
            args: String::new(),
        }
    }
}

/// Whether `args` is a comma-separated list of Python literals, each maybe
/// `name=`: strings without prefixes, numbers, `True`, `False`, `None`.
fn literal_args(args: &str) -> bool {
    let mut rest = args.trim();
    while !rest.is_empty() {
        // `name=` before the value (but not `==`).
        if let Some(eq) = rest.find('=') {
            let name = rest[..eq].trim();
            if is_identifier(name) && !rest[eq + 1..].starts_with('=') {
                rest = rest[eq + 1..].trim_start();
            }
        }
        let Some(len) = literal_len(rest) else {
            return false;
        };
        rest = rest[len..].trim_start();
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start(),
            None if rest.is_empty() => break,
            None => return false,
        }
    }
    true
}

/// The length of the literal `s` starts with.
fn literal_len(s: &str) -> Option<usize> {
    let first = s.chars().next()?;
    if first == '\'' || first == '"' {
        let mut chars = s.char_indices().skip(1);
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '\n' => return None,
                c if c == first => return Some(at + 1),
                _ => {}
            }
        }
        return None;
    }
    let word_len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || "_.+-".contains(c)))
        .unwrap_or(s.len());
    let word = &s[..word_len];
    let number = word.strip_prefix('-').unwrap_or(word);
    let is_number = number.starts_with(|c: char| c.is_ascii_digit())
        && number
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '_');
    (is_number || matches!(word, "True" | "False" | "None")).then_some(word_len)
}

impl fmt::Display for WsgiTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.module, self.callable)?;
        if self.factory {
            write!(f, "({})", self.args)?;
        }
        Ok(())
    }
}

impl FromStr for WsgiTarget {
    type Err = InvalidWsgiTarget;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WsgiTarget::parse(s)
    }
}

/// An ASCII Python identifier. (Python allows Unicode ones too; nobody names a WSGI
/// module that way, and ASCII keeps the check obvious.)
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> WsgiTarget {
        WsgiTarget::parse(s).unwrap()
    }

    #[test]
    fn module_and_callable() {
        let w = t("microblog:app");
        assert_eq!(
            (w.module.as_str(), w.callable.as_str(), w.factory),
            ("microblog", "app", false)
        );
        assert_eq!(t("my_site.wsgi:application").module, "my_site.wsgi");
    }

    #[test]
    fn callable_defaults_to_application_like_gunicorn() {
        let w = t("mysite.wsgi");
        assert_eq!(w.callable, "application");
        assert_eq!(w.to_string(), "mysite.wsgi:application");
    }

    #[test]
    fn trailing_parens_mark_a_factory() {
        let w = t("app:create_app()");
        assert!(w.factory);
        assert_eq!(w.callable, "create_app");
        assert_eq!(w.to_string(), "app:create_app()");
    }

    #[test]
    fn a_factory_takes_literal_arguments() {
        let w = t("app:create_app('prod', debug=False, workers=2, ratio=-0.5, name=\"a,b\")");
        assert!(w.factory);
        assert_eq!(w.callable, "create_app");
        assert_eq!(
            w.args,
            "'prod', debug=False, workers=2, ratio=-0.5, name=\"a,b\""
        );
        assert_eq!(
            w.to_string(),
            "app:create_app('prod', debug=False, workers=2, ratio=-0.5, name=\"a,b\")"
        );
        assert_eq!(t("app:create_app( None )").args, "None");
        assert_eq!(
            t("app:create_app('a',)").to_string(),
            "app:create_app('a',)"
        );
    }

    #[test]
    fn expressions_and_junk_are_rejected() {
        for bad in [
            "",
            ":app",
            "app:",
            "a..b:app",
            "1app:app",
            "app:create_app(os.environ['X'])",
            "app:create_app(f'x')",
            "app:create_app('x)",
            "app:create_app('a' 'b')",
            "app:create_app(x=y)",
            "app:create_app(1,,2)",
            "app:create_app(__import__('os'))",
            "app:create_app()x",
            "app:a.b",
            "app:app:app",
            "my-app:app",
            "app :app",
            "app:()",
            "/x/app.py:app",
            "app.py",
            "app.py:app",
        ] {
            let err = WsgiTarget::parse(bad).unwrap_err();
            assert!(err.to_string().contains("module:callable"), "{bad}");
        }
    }
}
