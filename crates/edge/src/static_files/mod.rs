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
mod previous;
mod range;
mod resolve;
mod route;
mod serve;

#[cfg(test)]
mod tests;

pub use route::{StaticError, StaticFiles, StaticRoute};

/// The file a request path names below a static route, as [`StaticFiles::serve`]
/// would open it relative to the route's directory: percent-decoded and checked,
/// with no file system access. `rest` is the request path after the route's
/// prefix (empty or starting with `/`). `None`: refused (404 or 400).
///
/// Public so the sanitizer can be fuzzed and reused on its own.
pub fn relative_path(rest: &str) -> Option<String> {
    // SECURITY: the same check `serve` runs first; the result has no `..`, `.`,
    // empty or hidden segment, no NUL and no backslash.
    resolve::decode(rest)
        .ok()
        .map(|rel| rel.fs_relative().to_owned())
}
