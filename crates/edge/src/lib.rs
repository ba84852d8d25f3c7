//! capstan's front: it owns every client connection.
//!
//! Listeners accept TCP (and TLS) connections and serve HTTP/1.1 and HTTP/2
//! with hyper ([`server`]). Each request goes through one pipeline
//! ([`site::Site::handle`]): the RFCs' request rules, HTTPS redirect, static files or the
//! app (a Python worker pool or a proxied command), HSTS; around it,
//! compression and the access log.

pub mod access_log;
pub mod body;
mod compression;
pub mod environ;
mod errors;
pub mod forwarded;
mod proxy;
mod python_app;
mod raw_head;
mod redirect;
pub mod request_body;
mod request_rules;
pub mod server;
pub mod site;
pub mod static_files;
pub mod tls;

pub use proxy::Proxy;
pub use server::{bind, serve, Listener, ServeOptions};
pub use site::{Backend, Site};
