//! Integration tests: the real `capstan` binary, real CPython workers in a
//! real venv (Flask from the package registry, built once per run), real
//! HTTP/1.1, HTTP/2 and TLS clients, on loopback.

mod fixture;
mod host;
mod pebble;

mod acme;
mod apps;
mod bodies;
mod conformance;
mod crashes;
mod cron;
mod daemon;
mod daemon_blog;
mod daemon_build;
mod daemon_load;
mod daemon_ops;
mod daemon_retention;
// Shared by the daemon tests; not every file uses every helper.
mod daemon_logs;
#[allow(dead_code)]
mod daemon_support;
mod daemon_tls;
mod discovery;
mod edge;
mod errors;
mod limits;
mod load;
mod real_apps;
mod reload;
mod serving;
mod supervision;
mod test_host;
mod wsgi;
