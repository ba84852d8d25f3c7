//! Process names, which become file names, and the labels lines carry.

use std::fmt;

use crate::Error;

/// A process whose output has a log file: `web`, `tasks`, `cron.backup`,
/// `deploy`, `access`. Checked once, here, because it becomes a file name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcessName(String);

impl ProcessName {
    /// Checks `name`.
    pub fn new(name: &str) -> Result<ProcessName, Error> {
        // SECURITY: the name becomes `logs/<name>.log`; only a plain name of
        // safe characters can never point outside the folder, be hidden, or
        // collide with a rotated file.
        let bad = |reason| {
            Err(Error::BadProcessName {
                name: name.to_owned(),
                reason,
            })
        };
        if name.is_empty() {
            return bad("it is empty");
        }
        if name.len() > 64 {
            return bad("it is longer than 64 bytes");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return bad("it has a character other than letters, digits, `-`, `_` and `.`");
        }
        if name.starts_with(['.', '-']) || name.ends_with('.') || name.contains("..") {
            return bad("a `.` or `-` cannot start it, a `.` cannot end it or follow another");
        }
        Ok(ProcessName(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The label of this process's lines.
    pub fn label(&self) -> Label {
        Label {
            process: self.clone(),
            instance: None,
        }
    }

    /// The label of one of several copies of this process (`web.1`, `web.2`),
    /// as the lines of pool workers are labelled on the terminal.
    pub fn instance(&self, n: u32) -> Label {
        Label {
            process: self.clone(),
            instance: Some(n),
        }
    }

    pub(crate) fn file_name(&self) -> String {
        format!("{}.log", self.0)
    }

    /// The process a live log file's name belongs to (`web.log` -> `web`).
    pub(crate) fn from_file_name(file: &str) -> Option<ProcessName> {
        ProcessName::new(file.strip_suffix(".log")?).ok()
    }
}

impl fmt::Display for ProcessName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Who said a line: a process, or one copy of it (`web.1`). The file is the
/// process's; the label is what the line shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// The process, which names the file.
    pub process: ProcessName,
    /// Which copy, for processes that run several.
    pub instance: Option<u32>,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.instance {
            None => f.pad(self.process.as_str()),
            Some(n) => f.pad(&format!("{}.{n}", self.process)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_names_of_every_kind_are_accepted() {
        for name in [
            "web",
            "tasks",
            "cron.backup",
            "deploy",
            "access",
            "cron.db-dump_2",
        ] {
            assert_eq!(ProcessName::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn names_that_could_leave_the_folder_or_hide_are_refused() {
        for name in [
            "", "../web", "a/b", ".web", "web.", "a..b", "-web", "we b", "wéb", "web\n", "x\0",
        ] {
            let err = ProcessName::new(name).unwrap_err();
            assert!(matches!(err, Error::BadProcessName { .. }), "{name:?}");
            assert!(err.to_string().contains("like `web`"), "{err}");
        }
        assert!(ProcessName::new(&"a".repeat(65)).is_err());
    }

    #[test]
    fn an_instance_is_labelled_as_on_the_terminal() {
        let web = ProcessName::new("web").unwrap();
        assert_eq!(web.instance(2).to_string(), "web.2");
        assert_eq!(format!("{:<7}|", web.label()), "web    |");
    }

    #[test]
    fn only_live_files_name_a_process() {
        assert_eq!(
            ProcessName::from_file_name("cron.backup.log")
                .unwrap()
                .as_str(),
            "cron.backup"
        );
        assert!(ProcessName::from_file_name("web.log.1").is_none());
        assert!(ProcessName::from_file_name(".writer.lock").is_none());
    }
}
