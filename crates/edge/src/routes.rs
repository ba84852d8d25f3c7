//! Which Site answers a request: a table from normalized host names to
//! Sites, swapped whole when an app's generation changes, read once per
//! request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use http::{header, Request};

use crate::site::Site;

/// An immutable map from host names to Sites, with an optional Site that
/// answers every other Host (`capstan run`'s one app).
#[derive(Clone, Default)]
pub struct RouteTable {
    hosts: HashMap<String, Arc<Site>>,
    default: Option<Arc<Site>>,
}

impl RouteTable {
    /// A table with no Sites: every request gets the 404 page.
    pub fn new() -> Self {
        RouteTable::default()
    }

    /// This table with `site` answering `host` (normalized here).
    pub fn with_host(mut self, host: &str, site: Arc<Site>) -> Self {
        self.hosts.insert(normalize(host).to_owned(), site);
        self
    }

    /// This table with `site` answering every Host no entry names.
    pub fn with_default(mut self, site: Arc<Site>) -> Self {
        self.default = Some(site);
        self
    }

    /// The Site for a Host as the client sent it (port and case allowed).
    pub fn site_for(&self, host: Option<&str>) -> Option<Arc<Site>> {
        host.and_then(|host| self.hosts.get(normalize(host).as_str()))
            .or(self.default.as_ref())
            .cloned()
    }
}

/// The live table, shared by every connection.
///
/// A short `RwLock` around an `Arc`: a read clones one pointer, a write
/// happens once per switch, so nothing contends; a lock-free swap crate
/// would buy nothing measurable here.
#[derive(Clone, Default)]
pub struct Routes(Arc<RwLock<Arc<RouteTable>>>);

impl Routes {
    /// Routes that start with `table`.
    pub fn new(table: RouteTable) -> Self {
        Routes(Arc::new(RwLock::new(Arc::new(table))))
    }

    /// The table now in force.
    pub fn current(&self) -> Arc<RouteTable> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts `table` in force; requests already under way keep their Site.
    pub fn swap(&self, table: RouteTable) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }

    /// The Site that answers `request`, looked up once for its whole life.
    pub fn site_for<B>(&self, request: &Request<B>) -> Option<Arc<Site>> {
        self.current().site_for(request_host(request))
    }
}

/// The host a request names: the target's authority (HTTP/2's :authority,
/// an absolute-form target), else the Host header.
pub fn request_host<B>(request: &Request<B>) -> Option<&str> {
    request.uri().authority().map(|a| a.as_str()).or_else(|| {
        request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
    })
}

/// A host as the table keys it: lowercase, no port, no trailing dot.
// SECURITY: the Host is client input; anything odd just matches no entry.
pub fn normalize(host: &str) -> String {
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let name = if host.starts_with('[') {
        host.split_once(']')
            .map_or(host, |(v6, _)| &host[..v6.len() + 1])
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_without_case_port_or_trailing_dot() {
        assert_eq!(normalize("Blog.Example.COM:8443"), "blog.example.com");
        assert_eq!(normalize("blog.example.com."), "blog.example.com");
        assert_eq!(normalize("blog.example.com.:80"), "blog.example.com");
        assert_eq!(normalize("[::1]:8080"), "[::1]");
        assert_eq!(normalize("[::1]"), "[::1]");
        assert_eq!(normalize("localhost"), "localhost");
    }

    #[test]
    fn the_targets_authority_wins_over_the_host_header() {
        let request = Request::get("http://a.example/x")
            .header("host", "b.example")
            .body(())
            .unwrap();
        assert_eq!(request_host(&request), Some("a.example"));
        let request = Request::get("/x")
            .header("host", "b.example:81")
            .body(())
            .unwrap();
        assert_eq!(request_host(&request), Some("b.example:81"));
    }
}
