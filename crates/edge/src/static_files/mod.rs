//! Static file serving: nginx's `location /static/ { alias dir; expires 30d; }`, but
//! refusing every path that could leave the directory.
//!
//! A request walks one pipeline, top to bottom in [`serve`]:
//! method check -> [`resolve`] (URL path to a safe relative path) -> [`cache`] hit,
//! validated by one `stat`, or [`lookup`] (canonicalize, stay inside the root, read) ->
//! [`encoding`] (precompressed sibling) -> [`conditional`] (304) -> [`range`] (206/416)
//! -> response.

mod cache;
mod conditional;
mod encoding;
mod lookup;
mod range;
mod resolve;
mod route;
mod serve;

#[cfg(test)]
mod tests;

pub use route::{StaticError, StaticFiles, StaticRoute};
