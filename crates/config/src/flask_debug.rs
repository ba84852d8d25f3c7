//! Flask's debug mode asked for by the app's environment files.
//!
//! `.flaskenv` is a development file: python-dotenv loads it for the `flask`
//! command only, so gunicorn never applies its `FLASK_DEBUG=1`, and neither do
//! capstan's web processes. Asking for debug there gets a warning that says so.
//! Asking for it in the production environment (`[env]`, `.env`) gets a louder one:
//! Flask reads `FLASK_DEBUG` when the app is made, under any server. A web
//! command that runs the `flask` CLI (`flask run`) reads `.flaskenv` itself, and
//! there debug mode is the Werkzeug debugger: the loud warning too.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The warnings for debug mode asked for in `env` (`[env]` < `.env`, set in
/// the file `env_file` says) and in `flaskenv`; `flask_cli` when the web
/// command runs the `flask` CLI, which loads `.flaskenv` itself.
pub(crate) fn debug_warnings(
    env: &BTreeMap<String, String>,
    flaskenv: &BTreeMap<String, String>,
    env_file: impl Fn(&str) -> PathBuf,
    flask_cli: bool,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some((key, value)) = asks_for_debug(env) {
        warnings.push(format!(
            "{key}={value} in {} turns on Flask's debug mode in the web processes: errors \
             show their details, and an app that runs the Werkzeug debugger lets anyone who \
             reaches an error page run code on this server. Remove it from there (keep it in \
             .flaskenv, for development)",
            env_file(key).display()
        ));
    }
    match asks_for_debug(flaskenv) {
        Some((key, value)) if flask_cli => warnings.push(format!(
            ".flaskenv sets {key}={value}, and the web command runs the flask CLI, which \
             loads .flaskenv itself: the Werkzeug debugger lets anyone who reaches an error \
             page run code on this server. Serve the app with capstan's own workers \
             ([web] wsgi = \"module:app\" in capstan.toml), or remove {key} from .flaskenv"
        )),
        Some((key, value)) => warnings.push(format!(
            ".flaskenv sets {key}={value}, which is not applied to the web processes: \
             .flaskenv is a development file that python-dotenv loads only for the flask \
             command (gunicorn ignores it too), so the app serves with debug off. capstan \
             uses .flaskenv only to find the app and for the flask commands it runs"
        )),
        None => {}
    }
    warnings
}

/// Whether a command line runs the `flask` CLI: `flask ...`, `.venv/bin/flask`,
/// `python -m flask`.
pub(crate) fn runs_flask_cli(command: &str) -> bool {
    let words: Vec<&str> = command
        .split(|c: char| c.is_whitespace() || ";&|()".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    words.iter().enumerate().any(|(i, w)| {
        w.rsplit('/').next() == Some("flask")
            || *w == "-mflask"
            || (*w == "-m" && words.get(i + 1) == Some(&"flask"))
    })
}

/// `FLASK_DEBUG` with a value Flask's `get_debug_flag` takes as true, or the
/// older `FLASK_ENV=development`.
fn asks_for_debug(env: &BTreeMap<String, String>) -> Option<(&'static str, &str)> {
    if let Some(value) = env.get("FLASK_DEBUG") {
        let off = ["", "0", "false", "no"].contains(&value.to_ascii_lowercase().as_str());
        if !off {
            return Some(("FLASK_DEBUG", value));
        }
    }
    env.get("FLASK_ENV")
        .filter(|v| v.as_str() == "development")
        .map(|v| ("FLASK_ENV", v.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn warnings(production: &[(&str, &str)], flaskenv: &[(&str, &str)]) -> Vec<String> {
        debug_warnings(
            &env(production),
            &env(flaskenv),
            |_| PathBuf::from(".env"),
            false,
        )
    }

    #[test]
    fn flask_s_true_values_ask_for_debug() {
        for value in ["1", "true", "True", "yes", "on"] {
            assert_eq!(warnings(&[], &[("FLASK_DEBUG", value)]).len(), 1, "{value}");
        }
        for value in ["0", "false", "False", "no", ""] {
            assert!(warnings(&[("FLASK_DEBUG", value)], &[("FLASK_DEBUG", value)]).is_empty());
        }
        assert_eq!(warnings(&[], &[("FLASK_ENV", "development")]).len(), 1);
        assert!(warnings(&[], &[("FLASK_ENV", "production")]).is_empty());
    }

    #[test]
    fn flaskenv_debug_is_said_not_to_reach_the_web_processes() {
        let w = warnings(&[], &[("FLASK_DEBUG", "1")]);
        assert!(
            w[0].starts_with(
                ".flaskenv sets FLASK_DEBUG=1, which is not applied to the web processes"
            ),
            "{w:?}"
        );
        assert!(w[0].contains("only for the flask command"), "{w:?}");
    }

    #[test]
    fn a_web_command_running_flask_reads_flaskenv_and_gets_the_loud_warning() {
        let w = debug_warnings(
            &env(&[]),
            &env(&[("FLASK_DEBUG", "1")]),
            |_| PathBuf::from(".env"),
            true,
        );
        assert!(
            w[0].starts_with(
                ".flaskenv sets FLASK_DEBUG=1, and the web command runs the flask CLI"
            ),
            "{w:?}"
        );
        assert!(w[0].contains("run code on this server"), "{w:?}");
        for command in [
            "flask run --port $PORT",
            "python -m flask run",
            ".venv/bin/flask run",
            "cd x && flask run",
        ] {
            assert!(runs_flask_cli(command), "{command}");
        }
        for command in ["gunicorn app:app", "python flasky.py", "node flask.js"] {
            assert!(!runs_flask_cli(command), "{command}");
        }
    }

    #[test]
    fn production_debug_names_the_file_and_the_danger() {
        let w = warnings(&[("FLASK_DEBUG", "1")], &[]);
        assert!(
            w[0].starts_with(
                "FLASK_DEBUG=1 in .env turns on Flask's debug mode in the web processes"
            ),
            "{w:?}"
        );
        assert!(w[0].contains("run code on this server"), "{w:?}");
    }
}
