//! The WSGI target, `"module:callable"`, as gunicorn spells it.

use std::fmt;
use std::str::FromStr;

/// Which Python object serves requests: `module` is imported and `callable` looked up
/// in it. `pkg.mod:create_app()` names a factory: it is called once per worker and
/// returns the WSGI callable (gunicorn's syntax).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WsgiTarget {
    /// Dotted module path, e.g. `microblog` or `mysite.wsgi`.
    pub module: String,
    /// Attribute in the module; `application` when the target has no `:`.
    pub callable: String,
    /// True when written as `module:callable()`: call it to get the app.
    pub factory: bool,
}

/// A string that is not a WSGI target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a WSGI target: write \"module:callable\", e.g. \"microblog:app\", \
     \"mysite.wsgi:application\" or \"app:create_app()\""
)]
pub struct InvalidWsgiTarget(pub String);

impl WsgiTarget {
    /// Parses `module`, `module:callable` or `module:callable()`.
    pub fn parse(input: &str) -> Result<WsgiTarget, InvalidWsgiTarget> {
        let bad = || InvalidWsgiTarget(input.to_owned());
        let (module, callable) = match input.split_once(':') {
            Some((m, c)) => (m, c),
            None => (input, "application"),
        };
        let (callable, factory) = match callable.strip_suffix("()") {
            Some(c) => (c, true),
            None => (callable, false),
        };
        // SECURITY: both halves end up in Python's import machinery in the worker;
        // restricting them to identifiers keeps arguments and expressions out.
        // `app.py` would import a submodule `py` of package `app`: surely a file name.
        let file_name = module.ends_with(".py");
        if file_name || !module.split('.').all(is_identifier) || !is_identifier(callable) {
            return Err(bad());
        }
        Ok(WsgiTarget {
            module: module.to_owned(),
            callable: callable.to_owned(),
            factory,
        })
    }
}

impl fmt::Display for WsgiTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.module, self.callable)?;
        if self.factory {
            f.write_str("()")?;
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
    fn expressions_and_junk_are_rejected() {
        for bad in [
            "",
            ":app",
            "app:",
            "a..b:app",
            "1app:app",
            "app:create_app('prod')",
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
