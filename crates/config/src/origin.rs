//! Where a variable of the app's environment was set (file and line), so a
//! message about its value can point at it.

use std::path::{Path, PathBuf};

use crate::files::read_text;

/// The file and 1-based line that set `key`: the first of `files` (highest
/// precedence first, relative to `root`) with a line setting it, the last such
/// line in it. `None` when no line can be found.
pub(crate) fn origin(root: &Path, key: &str, files: &[&str]) -> Option<(PathBuf, usize)> {
    files.iter().find_map(|file| {
        let text = read_text(root, file).ok()??;
        let line = text
            .lines()
            .enumerate()
            .filter(|(_, line)| sets(line, key))
            .last()?
            .0;
        Some((PathBuf::from(file), line + 1))
    })
}

/// Whether a line sets `key`: `KEY=v`, `export KEY=v`, `KEY = "v"` (TOML),
/// `"KEY" = "v"`, or `-e KEY=v` in a command.
fn sets(line: &str, key: &str) -> bool {
    line.match_indices(key).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let starts_word = before.is_none_or(|c| c.is_whitespace() || c == '"' || c == '\'');
        let after = line[at + key.len()..]
            .trim_start_matches(['"', '\''])
            .trim_start();
        starts_word && after.starts_with('=') && !after.starts_with("==")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn the_last_setting_line_of_the_first_file_that_has_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::write(root.join(".env"), "A=1\n").unwrap();
        fs::write(
            root.join("capstan.toml"),
            "[env]\nFLASK_APP = \"a\"\n\"FLASK_APP\" = \"b\"\n",
        )
        .unwrap();
        assert_eq!(
            origin(&root, "FLASK_APP", &[".env", "capstan.toml"]),
            Some((PathBuf::from("capstan.toml"), 3))
        );
        fs::write(root.join(".env"), "# FLASK_APP\nexport FLASK_APP=x\n").unwrap();
        assert_eq!(
            origin(&root, "FLASK_APP", &[".env", "capstan.toml"]),
            Some((PathBuf::from(".env"), 2))
        );
        assert_eq!(origin(&root, "OTHER", &[".env", "nope"]), None);
    }

    #[test]
    fn lookalikes_do_not_set_the_key() {
        assert!(sets("web: gunicorn -e FLASK_APP=x app:app", "FLASK_APP"));
        assert!(!sets("MY_FLASK_APP=x", "FLASK_APP"));
        assert!(!sets("FLASK_APP_X=1", "FLASK_APP"));
        assert!(!sets("# FLASK_APP is set below", "FLASK_APP"));
    }
}
