//! Log lines: capstan's own events and its children's output on standard
//! error, the access log on standard output.
//!
//! ```text
//! 22:40:01 capstan | serving hello at http://127.0.0.1:8000
//! 22:40:02 web.1   | Traceback (most recent call last): ...
//! ```

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

const ACCESS: &str = "capstan::access";
const OUTPUT: &str = "capstan::output";

/// Installs the log format. `RUST_LOG` may change levels (e.g. `debug`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let events = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(Lines)
        .with_filter(filter_fn(|meta| meta.target() != ACCESS));
    let access = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .event_format(Lines)
        .with_filter(filter_fn(|meta| meta.target() == ACCESS));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(events)
        .with(access)
        .try_init();
}

struct Lines;

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        if meta.target() == ACCESS {
            return writeln!(writer, "{}", fields.message);
        }
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        write!(writer, "{h:02}:{m:02}:{s:02} ")?;
        if meta.target() == OUTPUT {
            let name = fields.take("process").unwrap_or_default();
            return writeln!(writer, "{name:<7} | {}", fields.message);
        }
        write!(writer, "{:<7} | ", "capstan")?;
        match *meta.level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            _ => {}
        }
        write!(writer, "{}", fields.message)?;
        for (name, value) in &fields.rest {
            write!(writer, " {name}={value}")?;
        }
        writeln!(writer)
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(&'static str, String)>,
}

impl Fields {
    fn take(&mut self, name: &str) -> Option<String> {
        let at = self.rest.iter().position(|(n, _)| *n == name)?;
        Some(self.rest.remove(at).1)
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else if field.name() != "stream" {
            self.rest.push((field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else if field.name() != "stream" {
            self.rest.push((field.name(), format!("{value:?}")));
        }
    }
}
