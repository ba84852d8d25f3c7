//! Crontab schedules (`[cron.NAME] schedule = "*/5 * * * *"`): parsed once, at
//! load, so a bad schedule is a config error and not a job that never runs.
//!
//! Five fields as in crontab(5) (minute, hour, day of month, month, day of week;
//! no seconds), names like `MON` and `JAN`, and the `@hourly`-style nicknames.
//! Evaluation is croner's, which follows Vixie cron: when both day fields are
//! restricted a day matching either one fires, and across a DST change a job at a
//! fixed time runs once (right after a skipped hour, or in the first of a repeated
//! one) while an interval job follows the wall clock.

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A parsed five-field crontab schedule.
#[derive(Clone)]
pub struct Schedule {
    /// As written, for messages and status.
    text: String,
    cron: Cron,
}

/// A schedule that is not five valid crontab fields or a known `@nickname`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSchedule(String);

/// The fields in order, with what each one takes, for messages.
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, 0 and 7 being Sunday"),
];
const NICKNAMES: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];
const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const EXAMPLE: &str =
    "e.g. \"*/5 * * * *\" for every five minutes or \"30 3 * * *\" for 03:30 daily";

impl Schedule {
    /// Parses a five-field crontab expression or an `@nickname`.
    ///
    /// ```
    /// let s = capstan_config::Schedule::parse("*/5 * * * *").unwrap();
    /// assert_eq!(s.as_str(), "*/5 * * * *");
    /// assert!(capstan_config::Schedule::parse("* * * *").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Schedule, InvalidSchedule> {
        let trimmed = text.trim();
        let expression = if trimmed.starts_with('@') {
            nickname(trimmed)?
        } else {
            trimmed
        };
        let fields: Vec<&str> = expression.split_whitespace().collect();
        if fields.len() != 5 {
            let seconds = if fields.len() == 6 {
                " (there is no seconds field)"
            } else {
                ""
            };
            return Err(InvalidSchedule(format!(
                "{text:?} has {} fields{seconds}; a schedule has five: minute, hour, \
                 day-of-month, month, day-of-week ({EXAMPLE}), or one of {}",
                fields.len(),
                nickname_list()
            )));
        }
        for (i, field) in fields.iter().enumerate() {
            check_field(i, field)?;
        }
        // Vixie cron ORs the two day fields only when neither starts with `*`:
        // `*/2` counts as a star there, and croner would OR it.
        let star = fields[2].starts_with('*') || fields[4].starts_with('*');
        let cron = parser(star).parse(&fields.join(" ")).map_err(|e| {
            // Each field passed alone, so what is left is how they combine.
            InvalidSchedule(format!("{text:?} is not a valid schedule: {}", explain(&e)))
        })?;
        let schedule = Schedule {
            text: trimmed.to_owned(),
            cron,
        };
        // Every date comes back within 28 years, so one that does not come after
        // 2000 never does.
        let epoch = DateTime::<Utc>::from_timestamp(946_684_800, 0).expect("2000-01-01 is a time");
        if schedule.next_after(&epoch).is_none() {
            return Err(InvalidSchedule(format!(
                "{text:?} never fires: no date matches it (like February 30); check the \
                 day-of-month and month fields"
            )));
        }
        Ok(schedule)
    }

    /// The schedule as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first fire time strictly after `after`, in `after`'s time zone; `None`
    /// when there is none (a date like February 30, or past the year 5000).
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.cron.find_next_occurrence(after, false).ok()
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.text).finish()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.cron == other.cron
    }
}

impl Eq for Schedule {}

/// Five fields exactly, no year: what crontab(5) reads. `dom_and_dow`: a day
/// must match both day fields (else either, when both are restricted).
fn parser(dom_and_dow: bool) -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .dom_and_dow(dom_and_dow)
        .build()
}

fn nickname(text: &str) -> Result<&'static str, InvalidSchedule> {
    let lower = text.to_ascii_lowercase();
    if let Some((_, expression)) = NICKNAMES.iter().find(|(n, _)| *n == lower) {
        return Ok(expression);
    }
    let hint = if lower == "@reboot" {
        "; jobs at start belong in [release] commands or [processes]"
    } else {
        ""
    };
    Err(InvalidSchedule(format!(
        "{text:?} is not a schedule nickname{hint}; use one of {} or five fields ({EXAMPLE})",
        nickname_list()
    )))
}

fn nickname_list() -> String {
    NICKNAMES
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks field `i` on its own, so the message can say which field is wrong.
fn check_field(i: usize, field: &str) -> Result<(), InvalidSchedule> {
    let (name, takes) = FIELDS[i];
    let bad = |why: String| {
        InvalidSchedule(format!(
            "the {name} field {field:?} is wrong: {why}; it takes {takes}, `*`, \
             ranges `a-b`, lists `a,b` and steps `*/n`"
        ))
    };
    // croner swaps names for numbers across the whole pattern, so `MON` in the
    // month field would quietly become January: names are checked here.
    let words = field
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty());
    for word in words {
        let upper = word.to_ascii_uppercase();
        let ok = match i {
            2 => matches!(upper.as_str(), "L" | "W" | "LW"),
            3 => MONTHS.contains(&upper.as_str()),
            4 => DAYS.contains(&upper.as_str()) || upper == "L",
            _ => false,
        };
        if !ok {
            return Err(bad(format!("{word:?} is not a value here")));
        }
    }
    let mut probe = ["*"; 5];
    probe[i] = field;
    parser(false)
        .parse(&probe.join(" "))
        .map(drop)
        .map_err(|e| bad(explain(&e)))
}

/// croner's message without its prefix and final period.
fn explain(e: &croner::errors::CronError) -> String {
    let text = e.to_string();
    let text = [
        "Component error: ",
        "Invalid pattern: ",
        "Pattern contains illegal characters: ",
    ]
    .iter()
    .find_map(|p| text.strip_prefix(p))
    .unwrap_or(&text);
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expression: &str, after: &str) -> String {
        Schedule::parse(expression)
            .unwrap()
            .next_after(&utc(after))
            .unwrap()
            .to_rfc3339()
    }

    fn err(expression: &str) -> String {
        Schedule::parse(expression).unwrap_err().to_string()
    }

    #[test]
    fn next_fire_times_at_fixed_utc_times() {
        let cases = [
            (
                "*/5 * * * *",
                "2026-03-01T10:02:30Z",
                "2026-03-01T10:05:00+00:00",
            ),
            // Strictly after: a fire time itself is not its own next.
            (
                "*/5 * * * *",
                "2026-03-01T10:05:00Z",
                "2026-03-01T10:10:00+00:00",
            ),
            (
                "30 3 * * *",
                "2026-03-01T03:30:00Z",
                "2026-03-02T03:30:00+00:00",
            ),
            (
                "0 9 * * MON-FRI",
                "2026-03-06T09:00:00Z",
                "2026-03-09T09:00:00+00:00",
            ),
            (
                "0 0 29 2 *",
                "2026-03-01T00:00:00Z",
                "2028-02-29T00:00:00+00:00",
            ),
            (
                "15 14 1 * *",
                "2026-12-31T23:59:59Z",
                "2027-01-01T14:15:00+00:00",
            ),
            (
                "0 0 * JAN,jul *",
                "2026-02-01T00:00:00Z",
                "2026-07-01T00:00:00+00:00",
            ),
            (
                "@hourly",
                "2026-03-01T10:59:59Z",
                "2026-03-01T11:00:00+00:00",
            ),
            (
                "@daily",
                "2026-03-01T10:00:00Z",
                "2026-03-02T00:00:00+00:00",
            ),
            (
                "@midnight",
                "2026-03-01T10:00:00Z",
                "2026-03-02T00:00:00+00:00",
            ),
            // 2026-03-01 is a Sunday.
            (
                "@weekly",
                "2026-03-01T00:00:00Z",
                "2026-03-08T00:00:00+00:00",
            ),
            (
                "@monthly",
                "2026-03-01T00:00:00Z",
                "2026-04-01T00:00:00+00:00",
            ),
            (
                "@yearly",
                "2026-03-01T00:00:00Z",
                "2027-01-01T00:00:00+00:00",
            ),
            (
                "@annually",
                "2026-03-01T00:00:00Z",
                "2027-01-01T00:00:00+00:00",
            ),
            // Sunday is 0 and 7.
            (
                "0 12 * * 7",
                "2026-03-02T00:00:00Z",
                "2026-03-08T12:00:00+00:00",
            ),
        ];
        for (expression, after, want) in cases {
            assert_eq!(next(expression, after), want, "{expression} after {after}");
        }
    }

    #[test]
    fn restricted_day_of_month_and_day_of_week_fire_on_either_like_vixie_cron() {
        // The 13th or any Friday: from Sunday 2026-03-01 the first is Friday the 6th,
        // then the 13th (also a Friday), then Friday the 20th.
        let s = Schedule::parse("0 0 13 * FRI").unwrap();
        let mut t = utc("2026-03-01T00:00:00Z");
        let mut got = Vec::new();
        for _ in 0..3 {
            t = s.next_after(&t).unwrap();
            got.push(t.format("%d").to_string());
        }
        assert_eq!(got, ["06", "13", "20"]);
        // With a star in one of them, only the other counts.
        assert_eq!(
            next("0 0 13 * *", "2026-03-01T00:00:00Z"),
            "2026-03-13T00:00:00+00:00"
        );
        // A field starting with `*` is a star to Vixie cron: odd days that are
        // Mondays (the 9th), not odd days or Mondays (the 2nd).
        assert_eq!(
            next("0 0 */2 * MON", "2026-03-01T00:00:00Z"),
            "2026-03-09T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 1-31/2 * MON", "2026-03-01T00:00:00Z"),
            "2026-03-02T00:00:00+00:00"
        );
    }

    #[test]
    fn a_wrong_field_count_says_there_are_five_and_no_seconds() {
        let got = err("*/5 * * *");
        assert!(
            got.starts_with("\"*/5 * * *\" has 4 fields; a schedule has five: minute, hour,"),
            "{got}"
        );
        assert!(err("0 */5 * * * *").contains("has 6 fields (there is no seconds field)"));
        assert!(err("").contains("has 0 fields"));
    }

    #[test]
    fn a_bad_value_names_its_field() {
        let cases = [
            ("61 * * * *", "the minute field \"61\" is wrong:"),
            ("* 24 * * *", "the hour field \"24\" is wrong:"),
            ("* * 0 * *", "the day-of-month field \"0\" is wrong:"),
            ("* * * 13 *", "the month field \"13\" is wrong:"),
            ("* * * * 8", "the day-of-week field \"8\" is wrong:"),
            (
                "* * * * MONDAY",
                "the day-of-week field \"MONDAY\" is wrong: \"MONDAY\" is not a value here",
            ),
            (
                "* * * MON *",
                "the month field \"MON\" is wrong: \"MON\" is not a value here",
            ),
            (
                "x * * * *",
                "the minute field \"x\" is wrong: \"x\" is not a value here",
            ),
            ("*/0 * * * *", "the minute field \"*/0\" is wrong:"),
            ("5-1 * * * *", "the minute field \"5-1\" is wrong:"),
        ];
        for (expression, want) in cases {
            let got = err(expression);
            assert!(
                got.starts_with(want),
                "for {expression:?}\n got: {got}\nwant: {want}"
            );
            assert!(got.contains("it takes"), "{got}");
        }
    }

    #[test]
    fn a_date_that_never_comes_is_refused() {
        assert_eq!(
            err("0 0 30 2 *"),
            "\"0 0 30 2 *\" never fires: no date matches it (like February 30); check the \
             day-of-month and month fields"
        );
        assert!(Schedule::parse("0 0 31 1,2 *").is_ok());
    }

    #[test]
    fn unknown_nicknames_list_the_known_ones() {
        let got = err("@fortnightly");
        assert!(
            got.starts_with("\"@fortnightly\" is not a schedule nickname; use one of @yearly,"),
            "{got}"
        );
        assert!(err("@reboot").contains("[release] commands or [processes]"));
        assert!(Schedule::parse("@Daily").is_ok());
    }

    #[test]
    fn schedules_compare_by_meaning() {
        assert_eq!(
            Schedule::parse("@daily").unwrap(),
            Schedule::parse("0 0 * * *").unwrap()
        );
        assert_ne!(
            Schedule::parse("@daily").unwrap(),
            Schedule::parse("@hourly").unwrap()
        );
    }
}
