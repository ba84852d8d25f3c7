//! capstan's front: it owns every client connection.
//!
//! Listeners accept TCP (and TLS) connections and serve HTTP/1.1 and HTTP/2
//! with hyper ([`server`]). Each request looks up its Site once in the
//! [`routes::Routes`] table, then passes the server-wide [`front`] (the RFCs'
//! request rules, ACME answers, the 404 for an unknown Host) and its Site's
//! pipeline ([`site::Site::handle`]: HTTPS redirect, static files or the app,
//! a Python worker pool or a proxied command, HSTS); around it, the Site's
//! compression and access log.

pub mod access_log;
pub mod body;
mod compression;
pub mod environ;
mod errors;
pub mod forwarded;
pub mod front;
mod proxy;
mod python_app;
mod raw_head;
mod redirect;
pub mod request_body;
mod request_rules;
pub mod routes;
pub mod server;
pub mod site;
pub mod static_files;
pub mod tls;

pub use proxy::Proxy;
pub use routes::{RouteTable, Routes};
pub use server::{bind, serve, Listener, ServeOptions};
pub use site::{Backend, Site};
