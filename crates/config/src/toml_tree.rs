//! Typed access to a parsed TOML file that turns mistakes into errors naming the
//! file, the line and the key (`[tool.capstan.web]`, not just `web`).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::duration::parse_duration;
use crate::error::ConfigError;
use crate::size::parse_size;
pub(crate) use crate::toml_de::{Entry, Item, Span, Value};

/// A file's text and its name relative to the app directory, for error messages.
pub(crate) struct Doc<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl<'a> Doc<'a> {
    /// Parses the whole file; a syntax error names the file and line.
    pub fn parse(&self) -> Result<Item, ConfigError> {
        crate::toml_de::parse(self.text).map_err(|e| ConfigError::Syntax {
            file: self.file.to_path_buf(),
            line: self.line(&e.span(), 1),
            message: format!("invalid TOML: {}", e.message().trim_end()),
        })
    }

    /// The 1-based line of a span's start, or `fallback` when there is no span.
    pub fn line(&self, span: &Span, fallback: usize) -> usize {
        match span {
            Some(r) => line_at(self.text, r.start),
            None => fallback,
        }
    }

    /// The top-level table of a parsed document.
    pub fn root(&'a self, item: &'a Item) -> Table<'a> {
        let Value::Table(entries) = &item.value else {
            unreachable!("a TOML document is a table")
        };
        Table {
            doc: self,
            path: String::new(),
            line: 1,
            entries,
        }
    }
}

/// The 1-based line containing byte `offset`.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// A table being validated, with its dotted path for messages.
#[derive(Clone)]
pub(crate) struct Table<'a> {
    doc: &'a Doc<'a>,
    /// `web`, `tool.capstan.web`; empty for the top level.
    path: String,
    /// Where the table's key (or header) is.
    line: usize,
    entries: &'a [Entry],
}

impl<'a> Table<'a> {
    /// `[web]`, or the file name for the top level.
    pub fn name(&self) -> String {
        if self.path.is_empty() {
            self.doc.file.display().to_string()
        } else {
            format!("[{}]", self.path)
        }
    }

    /// Fails on the first key (in file order) that is not in `allowed`.
    pub fn check_keys(&self, allowed: &[&'static str]) -> Result<(), ConfigError> {
        match self.fields().find(|f| !allowed.contains(&f.key)) {
            None => Ok(()),
            Some(f) => Err(ConfigError::UnknownKey {
                file: self.doc.file.to_path_buf(),
                line: f.key_line,
                key: f.key.to_owned(),
                table: self.name(),
                expected: allowed.to_vec(),
            }),
        }
    }

    /// The entry for `key`, if present.
    pub fn get(&self, key: &str) -> Option<Field<'a>> {
        self.fields().find(|f| f.key == key)
    }

    /// All entries in file order.
    pub fn fields(&self) -> impl Iterator<Item = Field<'a>> + '_ {
        self.entries.iter().map(|e| Field {
            doc: self.doc,
            parent: self.path.clone(),
            key: &e.key,
            key_line: self
                .doc
                .line(&e.key_span, self.doc.line(&e.item.span, self.line)),
            item: &e.item,
        })
    }

    /// The error for a required key that is absent.
    pub fn missing(&self, key: &'static str) -> ConfigError {
        ConfigError::MissingKey {
            file: self.doc.file.to_path_buf(),
            line: self.line,
            key,
            table: self.name(),
        }
    }

    /// The file this table is in.
    pub fn file(&self) -> &'a Path {
        self.doc.file
    }
}

/// One `key = value` being validated.
#[derive(Clone)]
pub(crate) struct Field<'a> {
    doc: &'a Doc<'a>,
    parent: String,
    pub key: &'a str,
    pub key_line: usize,
    pub item: &'a Item,
}

impl<'a> Field<'a> {
    /// Where the value starts (array elements have their own line).
    pub fn line(&self) -> usize {
        self.doc.line(&self.item.span, self.key_line)
    }

    /// The file this field is in.
    pub fn file(&self) -> &'a Path {
        self.doc.file
    }

    /// A `BadValue` error for this key at this value's line.
    pub fn bad(&self, problem: impl fmt::Display) -> ConfigError {
        ConfigError::BadValue {
            file: self.doc.file.to_path_buf(),
            line: self.line(),
            key: self.key.to_owned(),
            problem: problem.to_string(),
        }
    }

    fn expected(&self, what: &str) -> ConfigError {
        self.bad(format_args!(
            "expected {what}, found {}",
            self.item.value.kind()
        ))
    }

    /// The value as a string.
    pub fn str(&self) -> Result<&'a str, ConfigError> {
        match &self.item.value {
            Value::String(s) => Ok(s),
            _ => Err(self.expected("a string")),
        }
    }

    /// The value as a non-empty string without NUL bytes (commands, paths).
    pub fn nonempty_str(&self) -> Result<&'a str, ConfigError> {
        let s = self.str()?;
        if s.trim().is_empty() {
            return Err(self.bad("must not be empty"));
        }
        // SECURITY: a NUL cannot be passed to exec or open and would be cut silently.
        if s.contains('\0') {
            return Err(self.bad("must not contain a NUL character"));
        }
        Ok(s)
    }

    /// The value as a boolean.
    pub fn bool(&self) -> Result<bool, ConfigError> {
        match self.item.value {
            Value::Boolean(b) => Ok(b),
            _ => Err(self.expected("true or false")),
        }
    }

    /// The value as an integer in `range`.
    pub fn int_in(&self, range: std::ops::RangeInclusive<i64>) -> Result<i64, ConfigError> {
        match self.item.value {
            Value::Integer(n) if range.contains(&n) => Ok(n),
            Value::Integer(n) => Err(self.bad(format_args!(
                "{n} is out of range (use {} to {})",
                range.start(),
                range.end()
            ))),
            _ => Err(self.expected("an integer")),
        }
    }

    /// The value as a sub-table.
    pub fn table(&self) -> Result<Table<'a>, ConfigError> {
        match &self.item.value {
            Value::Table(entries) => Ok(Table {
                doc: self.doc,
                path: join_path(&self.parent, self.key),
                line: self.key_line,
                entries,
            }),
            _ => Err(self.expected("a table")),
        }
    }

    /// The elements of an array value; each keeps this key for messages.
    pub fn array(&self) -> Result<Vec<Field<'a>>, ConfigError> {
        match &self.item.value {
            Value::Array(items) => Ok(items
                .iter()
                .map(|item| Field {
                    item,
                    ..self.clone()
                })
                .collect()),
            _ => Err(self.expected("an array")),
        }
    }
}

impl Field<'_> {
    /// A duration: `"30s"` and friends, or an integer number of seconds.
    pub fn duration(&self) -> Result<Duration, ConfigError> {
        match &self.item.value {
            Value::String(s) => parse_duration(s).map_err(|e| self.bad(e)),
            Value::Integer(n) if *n >= 0 => Ok(Duration::from_secs(*n as u64)),
            Value::Integer(n) => Err(self.bad(format_args!("{n} is negative"))),
            other => Err(self.bad(format_args!(
                "expected a duration like \"30s\" or \"5m\", found {}",
                other.kind()
            ))),
        }
    }

    /// A size: `"100MiB"` and friends, or an integer number of bytes.
    pub fn size(&self) -> Result<u64, ConfigError> {
        match &self.item.value {
            Value::String(s) => parse_size(s).map_err(|e| self.bad(e)),
            Value::Integer(n) if *n >= 0 => Ok(*n as u64),
            Value::Integer(n) => Err(self.bad(format_args!("{n} is negative"))),
            other => Err(self.bad(format_args!(
                "expected a size like \"100MiB\", found {}",
                other.kind()
            ))),
        }
    }
}

/// `tool.capstan` + `web`, quoting keys that are not bare TOML keys.
fn join_path(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn with_table<R>(text: &str, f: impl FnOnce(Table<'_>) -> R) -> R {
        let doc = Doc {
            file: Path::new("capstan.toml"),
            text,
        };
        let item = doc.parse().unwrap();
        f(doc.root(&item))
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let text =
            "a = 1\n\n[processes.tasks]\ncommand = \"rq\"\nlist = [\n  \"x\",\n  \"y\",\n]\n";
        with_table(text, |t| {
            let processes = t.get("processes").unwrap();
            assert_eq!(processes.key_line, 3);
            let tasks = processes.table().unwrap().get("tasks").unwrap();
            assert_eq!(tasks.key_line, 3);
            let table = tasks.table().unwrap();
            assert_eq!(table.name(), "[processes.tasks]");
            let command = table.get("command").unwrap();
            assert_eq!((command.key_line, command.line()), (4, 4));
            assert_eq!(command.str().unwrap(), "rq");
            let lines: Vec<usize> = table
                .get("list")
                .unwrap()
                .array()
                .unwrap()
                .iter()
                .map(|f| f.line())
                .collect();
            assert_eq!(lines, vec![6, 7]);
        });
    }

    #[test]
    fn dates_floats_and_inline_tables_are_values() {
        let text = "when = 1979-05-27T07:32:00Z\npi = 3.5\n[s]\n\"/media\" = { dir = \"m\" }\n";
        with_table(text, |t| {
            assert_eq!(t.get("when").unwrap().item.value.kind(), "a date");
            assert_eq!(t.get("pi").unwrap().item.value.kind(), "a float");
            let s = t.get("s").unwrap().table().unwrap();
            let media = s.get("/media").unwrap();
            assert_eq!(media.key_line, 4);
            assert_eq!(media.table().unwrap().name(), "[s.\"/media\"]");
        });
    }

    #[test]
    fn dotted_keys_make_tables() {
        with_table("web.workers = 4\n", |t| {
            let web = t.get("web").unwrap().table().unwrap();
            let workers = web.get("workers").unwrap();
            assert_eq!(workers.int_in(1..=8).unwrap(), 4);
            assert_eq!(workers.line(), 1);
        });
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let doc = Doc {
            file: Path::new("capstan.toml"),
            text: "name = \"a\"\n[web\nwsgi = 1\n",
        };
        let err = doc.parse().unwrap_err().to_string();
        assert!(err.starts_with("capstan.toml:2: invalid TOML"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_syntax_errors() {
        let doc = Doc {
            file: Path::new("capstan.toml"),
            text: "name = \"a\"\n\nname = \"b\"\n",
        };
        let err = doc.parse().unwrap_err().to_string();
        assert!(err.starts_with("capstan.toml:3: invalid TOML"), "{err}");
    }

    #[test]
    fn type_errors_say_what_was_expected() {
        with_table("[web]\nworkers = \"four\"\n", |t| {
            let web = t.get("web").unwrap().table().unwrap();
            let err = web
                .get("workers")
                .unwrap()
                .int_in(1..=8)
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                "capstan.toml:2: bad value for `workers`: expected an integer, found a string"
            );
        });
    }

    #[test]
    fn unknown_keys_list_the_allowed_ones() {
        with_table("[web]\nwsgi = \"a:b\"\nwrokers = 4\n", |t| {
            let web = t.get("web").unwrap().table().unwrap();
            let err = web
                .check_keys(&["wsgi", "workers"])
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                "capstan.toml:3: unknown key `wrokers` in [web]; expected one of: wsgi, workers"
            );
        });
    }

    #[test]
    fn line_at_counts_newlines() {
        assert_eq!(line_at("a\nb\nc", 0), 1);
        assert_eq!(line_at("a\nb\nc", 2), 2);
        assert_eq!(line_at("a\nb\nc", 99), 3);
    }
}
