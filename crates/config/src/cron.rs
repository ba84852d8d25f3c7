//! The `[cron.NAME]` tables: commands run on a crontab schedule.

use std::collections::BTreeMap;

use crate::app::{CronJob, Overlap};
use crate::error::ConfigError;
use crate::names::check_cron_name;
use crate::schedule::Schedule;
use crate::toml_tree::Table;

const CRON_KEYS: &[&str] = &["schedule", "command", "overlap", "timeout"];

/// Reads `[cron]`: one table per job, `schedule` and `command` required.
pub(crate) fn read_cron(table: &Table<'_>) -> Result<BTreeMap<String, CronJob>, ConfigError> {
    let mut jobs = BTreeMap::new();
    for f in table.fields() {
        check_cron_name(f.key).map_err(|e| f.bad(e))?;
        let t = f.table()?;
        t.check_keys(CRON_KEYS)?;
        let schedule = t.get("schedule").ok_or_else(|| t.missing("schedule"))?;
        let schedule = Schedule::parse(schedule.str()?).map_err(|e| schedule.bad(e))?;
        let command = t.get("command").ok_or_else(|| t.missing("command"))?;
        let command = command.nonempty_str()?.to_owned();
        let overlap = match t.get("overlap") {
            None => Overlap::default(),
            Some(o) => match o.str()? {
                "skip" => Overlap::Skip,
                "allow" => Overlap::Allow,
                "replace" => Overlap::Replace,
                other => {
                    return Err(o.bad(format_args!(
                        "{other:?} is not an overlap policy; use \"skip\" (the default: no \
                         new run while one is going), \"allow\" (runs side by side) or \
                         \"replace\" (stop the one going, start the new one)"
                    )))
                }
            },
        };
        let timeout = match t.get("timeout") {
            None => None,
            Some(d) => {
                let timeout = d.duration()?;
                if timeout.is_zero() {
                    return Err(d.bad(
                        "must be more than 0 (e.g. \"10m\"); leave it out for no time limit",
                    ));
                }
                Some(timeout)
            }
        };
        jobs.insert(
            f.key.to_owned(),
            CronJob {
                schedule,
                command,
                overlap,
                timeout,
            },
        );
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toml_tree::Doc;
    use std::path::Path;
    use std::time::Duration;

    fn read(text: &str) -> Result<BTreeMap<String, CronJob>, ConfigError> {
        let doc = Doc {
            file: Path::new("capstan.toml"),
            text,
        };
        let item = doc.parse()?;
        let top = doc.root(&item);
        read_cron(&top.get("cron").unwrap().table()?)
    }

    #[test]
    fn a_job_reads_with_its_defaults() {
        let jobs = read(
            "[cron.cleanup]\nschedule = \"*/5 * * * *\"\ncommand = \"flask cleanup\"\n\
             [cron.report]\nschedule = \"@daily\"\ncommand = \"flask report\"\n\
             overlap = \"replace\"\ntimeout = \"10m\"\n",
        )
        .unwrap();
        let cleanup = &jobs["cleanup"];
        assert_eq!(cleanup.schedule.as_str(), "*/5 * * * *");
        assert_eq!(cleanup.command, "flask cleanup");
        assert_eq!((cleanup.overlap, cleanup.timeout), (Overlap::Skip, None));
        let report = &jobs["report"];
        assert_eq!(report.schedule, Schedule::parse("0 0 * * *").unwrap());
        assert_eq!(report.overlap, Overlap::Replace);
        assert_eq!(report.timeout, Some(Duration::from_secs(600)));
        let allow =
            read("[cron.a]\nschedule = \"@hourly\"\ncommand = \"x\"\noverlap = \"allow\"\n")
                .unwrap();
        assert_eq!(allow["a"].overlap, Overlap::Allow);
    }

    #[test]
    fn every_mistake_names_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            ("[cron.a]\nschedule = \"61 * * * *\"\ncommand = \"x\"\n", "capstan.toml:2: bad value for `schedule`: the minute field \"61\" is wrong:"),
            ("[cron.a]\ncommand = \"x\"\nschedule = \"* * * * 9\"\n", "capstan.toml:3: bad value for `schedule`: the day-of-week field \"9\" is wrong:"),
            ("[cron.a]\nschedule = \"*/5 * * *\"\ncommand = \"x\"\n", "capstan.toml:2: bad value for `schedule`: \"*/5 * * *\" has 4 fields; a schedule has five"),
            ("[cron.a]\nschedule = \"0 */5 * * * *\"\ncommand = \"x\"\n", "capstan.toml:2: bad value for `schedule`: \"0 */5 * * * *\" has 6 fields (there is no seconds field)"),
            ("[cron.a]\nschedule = \"@often\"\ncommand = \"x\"\n", "capstan.toml:2: bad value for `schedule`: \"@often\" is not a schedule nickname"),
            ("[cron.a]\nschedule = 5\ncommand = \"x\"\n", "capstan.toml:2: bad value for `schedule`: expected a string, found an integer"),
            ("[cron.a]\nschedule = \"@daily\"\ncommand = \"x\"\nschedul = \"y\"\n", "capstan.toml:4: unknown key `schedul` in [cron.a]; expected one of: schedule, command, overlap, timeout"),
            ("[cron.a]\nschedule = \"@daily\"\ncommand = \"x\"\noverlap = \"queue\"\n", "capstan.toml:4: bad value for `overlap`: \"queue\" is not an overlap policy; use \"skip\""),
            ("[cron.a]\nschedule = \"@daily\"\ncommand = \"x\"\noverlap = true\n", "capstan.toml:4: bad value for `overlap`: expected a string, found a boolean"),
            ("\n[cron.a]\nschedule = \"@daily\"\n", "capstan.toml:2: missing key `command` in [cron.a]"),
            ("[cron.a]\ncommand = \"x\"\n", "capstan.toml:1: missing key `schedule` in [cron.a]"),
            ("[cron.a]\nschedule = \"@daily\"\ncommand = \" \"\n", "capstan.toml:3: bad value for `command`: must not be empty"),
            ("[cron.a]\nschedule = \"@daily\"\ncommand = \"x\"\ntimeout = \"soon\"\n", "capstan.toml:4: bad value for `timeout`: \"soon\" is not a duration"),
            ("[cron.a]\nschedule = \"@daily\"\ncommand = \"x\"\ntimeout = 0\n", "capstan.toml:4: bad value for `timeout`: must be more than 0"),
            ("[cron.\"a.b\"]\nschedule = \"@daily\"\ncommand = \"x\"\n", "capstan.toml:1: bad value for `a.b`: \"a.b\" is not a valid cron job name"),
            ("[cron]\na = \"@daily\"\n", "capstan.toml:2: bad value for `a`: expected a table, found a string"),
        ];
        for (text, want) in cases {
            let got = read(text).unwrap_err().to_string();
            assert!(
                got.starts_with(want),
                "for {text:?}\n got: {got}\nwant: {want}"
            );
        }
    }
}
