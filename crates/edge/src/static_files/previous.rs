//! `[static] keep_previous`: for a while after a switch, a static file the
//! new release no longer has is served from the previous release's folders.
//! Hashed asset names change with every build, so a page the old release
//! rendered just before the switch still finds its assets.
//!
//! The previous files are a [`StaticFiles`] of their own, made from the old
//! routes (the same sanitizer, lookup and root check), consulted only for a
//! path one of the new routes matches and does not find, and only until the
//! expiry; after it, a 404 as usual. They never chain: the previous files
//! have no previous of their own.

use std::time::Instant;

use super::route::{StaticError, StaticFiles, StaticRoute};

/// The previous release's static files and until when they answer.
pub(super) struct Previous {
    files: Box<StaticFiles>,
    until: Instant,
}

impl StaticFiles {
    /// The routes these files were made from, with their canonical folders.
    pub fn routes(&self) -> Vec<StaticRoute> {
        self.routes
            .iter()
            .map(|route| StaticRoute {
                url_prefix: if route.prefix.is_empty() {
                    "/".to_owned()
                } else {
                    route.prefix.to_string()
                },
                dir: route.root.to_path_buf(),
                max_age: route.max_age,
            })
            .collect()
    }

    /// Serves what these routes do not find from `previous` (the previous
    /// release's routes, e.g. [`StaticFiles::routes`] of its files) until
    /// `until`. Set once; a second call changes nothing and returns false.
    /// A previous folder that is gone is left out.
    pub fn keep_previous(
        &self,
        previous: Vec<StaticRoute>,
        until: Instant,
    ) -> Result<bool, StaticError> {
        let present = previous.into_iter().filter(|r| r.dir.is_dir()).collect();
        let files = Box::new(StaticFiles::new(present)?);
        Ok(self.previous.set(Previous { files, until }).is_ok())
    }

    /// The previous files, while they still answer.
    pub(super) fn live_previous(&self) -> Option<&StaticFiles> {
        self.previous
            .get()
            .filter(|previous| Instant::now() < previous.until)
            .map(|previous| &*previous.files)
    }
}
