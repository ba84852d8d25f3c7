//! Every gunicorn command-line option, and what capstan does with it when it takes
//! over a `web: gunicorn ...` Procfile line.

/// What capstan does with a gunicorn option.
#[derive(Clone, Copy)]
pub(crate) enum Action {
    Workers,
    Threads,
    Timeout,
    GracefulTimeout,
    MaxRequests,
    MaxRequestsJitter,
    Chdir,
    Env,
    WorkerClass,
    /// Safe to drop; the reason goes in the note.
    Ignore(&'static str),
    /// Changes how the app runs in ways capstan cannot reproduce.
    RunAsIs,
}

const LISTEN: &str = "capstan listens itself";
const LOGS: &str = "capstan collects the app's output";
const SUPERVISE: &str = "capstan supervises the workers";
const TLS: &str = "capstan terminates TLS";
const STATSD: &str = "capstan sends no statsd metrics";
const EDGE: &str = "capstan's edge handles client connections";

/// (long name, short name, takes a value, action), from `gunicorn --help` (22.0).
pub(crate) const OPTIONS: &[(&str, &str, bool, Action)] = &[
    ("--workers", "-w", true, Action::Workers),
    ("--threads", "", true, Action::Threads),
    ("--timeout", "-t", true, Action::Timeout),
    ("--graceful-timeout", "", true, Action::GracefulTimeout),
    ("--chdir", "", true, Action::Chdir),
    ("--env", "-e", true, Action::Env),
    ("--worker-class", "-k", true, Action::WorkerClass),
    ("--config", "-c", true, Action::RunAsIs),
    ("--pythonpath", "", true, Action::RunAsIs),
    ("--paste", "", true, Action::RunAsIs),
    ("--paster", "", true, Action::RunAsIs),
    ("--paste-global", "", true, Action::RunAsIs),
    ("--bind", "-b", true, Action::Ignore(LISTEN)),
    ("--backlog", "", true, Action::Ignore(LISTEN)),
    ("--reuse-port", "", false, Action::Ignore(LISTEN)),
    ("--proxy-protocol", "", false, Action::Ignore(LISTEN)),
    (
        "--reload",
        "",
        false,
        Action::Ignore("capstan restarts the workers on deploy"),
    ),
    (
        "--reload-engine",
        "",
        true,
        Action::Ignore("capstan restarts the workers on deploy"),
    ),
    (
        "--reload-extra-file",
        "",
        true,
        Action::Ignore("capstan restarts the workers on deploy"),
    ),
    ("--daemon", "-D", false, Action::Ignore(SUPERVISE)),
    ("--pid", "-p", true, Action::Ignore(SUPERVISE)),
    ("--name", "-n", true, Action::Ignore(SUPERVISE)),
    (
        "--user",
        "-u",
        true,
        Action::Ignore("capstan runs the app as the app's own user"),
    ),
    (
        "--group",
        "-g",
        true,
        Action::Ignore("capstan runs the app as the app's own user"),
    ),
    (
        "--umask",
        "-m",
        true,
        Action::Ignore("the workers keep capstan's umask"),
    ),
    (
        "--initgroups",
        "",
        false,
        Action::Ignore("the workers keep capstan's user and groups"),
    ),
    (
        "--worker-tmp-dir",
        "",
        true,
        Action::Ignore("capstan's workers keep no heartbeat files"),
    ),
    (
        "--preload",
        "",
        false,
        Action::Ignore(
            "each worker imports the app itself, which changes nothing in what it serves",
        ),
    ),
    ("--no-sendfile", "", false, Action::Ignore(EDGE)),
    ("--keep-alive", "", true, Action::Ignore(EDGE)),
    ("--worker-connections", "", true, Action::Ignore(EDGE)),
    ("--limit-request-line", "", true, Action::Ignore(EDGE)),
    ("--limit-request-fields", "", true, Action::Ignore(EDGE)),
    ("--limit-request-field_size", "", true, Action::Ignore(EDGE)),
    ("--strip-header-spaces", "", false, Action::Ignore(EDGE)),
    ("--header-map", "", true, Action::Ignore(EDGE)),
    (
        "--forwarded-allow-ips",
        "",
        true,
        Action::Ignore("set [http] trusted_proxies in capstan.toml instead"),
    ),
    (
        "--proxy-allow-from",
        "",
        true,
        Action::Ignore("set [http] trusted_proxies in capstan.toml instead"),
    ),
    ("--max-requests", "", true, Action::MaxRequests),
    ("--max-requests-jitter", "", true, Action::MaxRequestsJitter),
    (
        "--access-logfile",
        "",
        true,
        Action::Ignore("capstan writes the access log"),
    ),
    (
        "--access-logformat",
        "",
        true,
        Action::Ignore("capstan writes the access log"),
    ),
    ("--error-logfile", "", true, Action::Ignore(LOGS)),
    ("--log-file", "", true, Action::Ignore(LOGS)),
    ("--log-level", "", true, Action::Ignore(LOGS)),
    ("--logger-class", "", true, Action::Ignore(LOGS)),
    ("--log-config", "", true, Action::Ignore(LOGS)),
    ("--log-config-json", "", true, Action::Ignore(LOGS)),
    ("--log-syslog", "", false, Action::Ignore(LOGS)),
    ("--log-syslog-to", "", true, Action::Ignore(LOGS)),
    ("--log-syslog-prefix", "", true, Action::Ignore(LOGS)),
    ("--log-syslog-facility", "", true, Action::Ignore(LOGS)),
    (
        "--disable-redirect-access-to-syslog",
        "",
        false,
        Action::Ignore(LOGS),
    ),
    ("--capture-output", "", false, Action::Ignore(LOGS)),
    (
        "--enable-stdio-inheritance",
        "-R",
        false,
        Action::Ignore(LOGS),
    ),
    ("--statsd-host", "", true, Action::Ignore(STATSD)),
    ("--statsd-prefix", "", true, Action::Ignore(STATSD)),
    ("--dogstatsd-tags", "", true, Action::Ignore(STATSD)),
    ("--certfile", "", true, Action::Ignore(TLS)),
    ("--keyfile", "", true, Action::Ignore(TLS)),
    ("--ca-certs", "", true, Action::Ignore(TLS)),
    ("--ssl-version", "", true, Action::Ignore(TLS)),
    ("--cert-reqs", "", true, Action::Ignore(TLS)),
    ("--ciphers", "", true, Action::Ignore(TLS)),
    ("--do-handshake-on-connect", "", false, Action::Ignore(TLS)),
    ("--suppress-ragged-eofs", "", false, Action::Ignore(TLS)),
    (
        "--spew",
        "",
        false,
        Action::Ignore("capstan has no line-by-line tracing"),
    ),
    ("--check-config", "", false, Action::RunAsIs),
    ("--print-config", "", false, Action::RunAsIs),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_is_listed_once() {
        let mut names: Vec<&str> = OPTIONS
            .iter()
            .flat_map(|(long, short, ..)| [*long, *short])
            .filter(|n| !n.is_empty())
            .collect();
        let total = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), total, "an option is listed twice");
        assert!(OPTIONS
            .iter()
            .all(|(.., action)| !matches!(action, Action::Ignore(""))));
        assert!(OPTIONS
            .iter()
            .all(|(long, short, ..)| long.starts_with("--")
                && (short.is_empty() || (short.len() == 2 && short.starts_with('-')))));
    }
}
