//! Flask's debug mode asked for by the app's environment files.
//!
//! `.flaskenv` is a development file: python-dotenv loads it for the `flask`
//! command only, so gunicorn never applies its `FLASK_DEBUG=1`, and neither do
//! capstan's web processes. Asking for debug there gets a warning that says so.
//! Asking for it in the production environment (`[env]`, `.env`) gets a louder one:
//! Flask reads `FLASK_DEBUG` when the app is made, under any server.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The warnings for debug mode asked for in `env` (`[env]` < `.env`, set in
/// the file `env_file` says) and in `flaskenv`.
pub(crate) fn debug_warnings(
    env: &BTreeMap<String, String>,
    flaskenv: &BTreeMap<String, String>,
    env_file: impl Fn(&str) -> PathBuf,
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
    if let Some((key, value)) = asks_for_debug(flaskenv) {
        warnings.push(format!(
            ".flaskenv sets {key}={value}, which is not applied to the web processes: \
             .flaskenv is a development file that python-dotenv loads only for the flask \
             command (gunicorn ignores it too), so the app serves with debug off. capstan \
             uses .flaskenv only to find the app and for the flask commands it runs"
        ));
    }
    warnings
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
        debug_warnings(&env(production), &env(flaskenv), |_| PathBuf::from(".env"))
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
