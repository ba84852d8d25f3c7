//! The in-memory cache: small files' bytes and prebuilt headers, plus the resolved,
//! checked paths of big ones. An entry is trusted only after one `stat` shows the
//! file it is about to answer from is the one it was built from.
//!
//! Only the representation being served is checked, so a precompressed sibling
//! added after an entry was built is picked up when the entry is next rebuilt: when
//! the file or a sibling changes, or the entry is evicted. Deploys replace both.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderValue;

use super::encoding::Encoding;

/// How much the cache may hold.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// Files up to this size are kept in memory; bigger ones are streamed.
    pub(super) max_file: u64,
    /// Total bytes held, content plus a fixed overhead per entry.
    pub(super) max_total: usize,
    /// Entries held, so many tiny or streamed files cannot grow the maps forever.
    pub(super) max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Big enough for typical bundles and images: serving them from memory
            // beats a read per request, which is what sendfile saves nginx.
            max_file: 4 * 1024 * 1024,
            max_total: 128 * 1024 * 1024,
            max_entries: 8192,
        }
    }
}

/// What identifies one version of one file. Equal fingerprints: same bytes (as far as
/// anything short of reading the file can tell; `ctime` catches writes that restore
/// the mtime).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fingerprint {
    dev: u64,
    ino: u64,
    pub(super) size: u64,
    pub(super) mtime: SystemTime,
    ctime: (i64, i64),
}

impl Fingerprint {
    /// The fingerprint of whatever `meta` describes.
    pub(super) fn of(meta: &Metadata) -> Self {
        Fingerprint {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: meta.modified().unwrap_or(UNIX_EPOCH),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Same inode on the same device: the same file, whatever it is called.
    pub(super) fn same_file(&self, other: &Fingerprint) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// One file that can answer for a URL: the file itself or a precompressed sibling.
#[derive(Debug)]
pub(super) struct Representation {
    pub(super) encoding: Encoding,
    /// The path as requested (root joined with the URL path; it may pass through
    /// symlinks). Stat'ed on every hit, so a replaced file or a repointed symlink is
    /// noticed.
    pub(super) stat_path: PathBuf,
    /// The canonical path, checked to be inside the root. The one that is opened.
    pub(super) open_path: PathBuf,
    pub(super) fingerprint: Fingerprint,
    /// The whole file, when it is small enough to keep; `None`: stream from disk.
    pub(super) content: Option<Bytes>,
    pub(super) etag: HeaderValue,
    pub(super) last_modified: HeaderValue,
    /// `Last-Modified` as whole seconds, for date comparisons.
    pub(super) modified_secs: u64,
    pub(super) content_length: HeaderValue,
}

impl Representation {
    /// The file's size in bytes.
    pub(super) fn size(&self) -> u64 {
        self.fingerprint.size
    }

    /// One `stat` (following symlinks, as the request would): is the file at the
    /// requested path still the one this was built from?
    pub(super) fn is_current(&self) -> bool {
        // A stat on a path the kernel has cached takes a microsecond or two, less than
        // handing it to the blocking pool would; it runs on the async thread.
        std::fs::metadata(&self.stat_path)
            .map(|meta| Fingerprint::of(&meta) == self.fingerprint)
            .unwrap_or(false)
    }
}

/// Everything needed to answer for one URL path of one route.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) content_type: HeaderValue,
    pub(super) identity: Representation,
    pub(super) brotli: Option<Representation>,
    pub(super) gzip: Option<Representation>,
    /// Bytes charged against [`Limits::max_total`].
    weight: usize,
    /// Used since the eviction scan last passed (second-chance eviction).
    hot: AtomicBool,
}

/// Charged per entry on top of its content: paths, headers, map slot.
const ENTRY_OVERHEAD: usize = 1024;

impl Entry {
    /// Bundles a file and its precompressed siblings.
    pub(super) fn new(
        content_type: HeaderValue,
        identity: Representation,
        brotli: Option<Representation>,
        gzip: Option<Representation>,
    ) -> Self {
        let weight = [Some(&identity), brotli.as_ref(), gzip.as_ref()]
            .into_iter()
            .flatten()
            .map(|rep| rep.content.as_ref().map_or(0, Bytes::len))
            .sum::<usize>()
            + ENTRY_OVERHEAD;
        Entry {
            content_type,
            identity,
            brotli,
            gzip,
            weight,
            hot: AtomicBool::new(false),
        }
    }

    /// A precompressed sibling exists, so responses vary with `Accept-Encoding`.
    pub(super) fn has_siblings(&self) -> bool {
        self.brotli.is_some() || self.gzip.is_some()
    }

    /// The representation for `encoding`, the identity file when there is no such sibling.
    pub(super) fn representation(&self, encoding: Encoding) -> &Representation {
        match encoding {
            Encoding::Brotli => self.brotli.as_ref(),
            Encoding::Gzip => self.gzip.as_ref(),
            Encoding::Identity => None,
        }
        .unwrap_or(&self.identity)
    }
}

/// Entries by route and decoded URL path, bounded by [`Limits`].
pub(super) struct Cache {
    limits: Limits,
    inner: RwLock<Inner>,
}

struct Inner {
    /// One map per route (same index as the route table), so a lookup borrows the
    /// request's `&str` and allocates nothing.
    routes: Vec<HashMap<Box<str>, Arc<Entry>>>,
    weight: usize,
    entries: usize,
}

impl Cache {
    /// An empty cache for `routes` routes.
    pub(super) fn new(routes: usize, limits: Limits) -> Self {
        Cache {
            limits,
            inner: RwLock::new(Inner {
                routes: (0..routes).map(|_| HashMap::new()).collect(),
                weight: 0,
                entries: 0,
            }),
        }
    }

    pub(super) fn limits(&self) -> Limits {
        self.limits
    }

    /// The entry for `key`, not yet validated: call [`Representation::is_current`].
    pub(super) fn get(&self, route: usize, key: &str) -> Option<Arc<Entry>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let entry = inner.routes.get(route)?.get(key)?;
        // Load first: most hits find it set already and skip dirtying the cache line.
        if !entry.hot.load(Ordering::Relaxed) {
            entry.hot.store(true, Ordering::Relaxed);
        }
        Some(Arc::clone(entry))
    }

    /// Stores `entry`, evicting others if needed. An entry bigger than the whole
    /// cache is not stored.
    pub(super) fn insert(&self, route: usize, key: &str, entry: Arc<Entry>) {
        // SECURITY: keys come from requests, but only paths that passed every check and
        // name an existing file get here, and the limits bound memory whatever clients
        // ask for. Keys are decoded paths, so escaping tricks cannot duplicate entries.
        let limits = self.limits;
        if entry.weight > limits.max_total || limits.max_entries == 0 {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let Inner {
            routes,
            weight,
            entries,
        } = &mut *inner;
        if route >= routes.len() {
            return;
        }
        if let Some(old) = routes[route].remove(key) {
            *weight -= old.weight;
            *entries -= 1;
        }
        let fits = |weight: usize, entries: usize| {
            weight + entry.weight <= limits.max_total && entries < limits.max_entries
        };
        // Second chance: the first pass spares entries used since the last scan (and
        // clears their mark), the second evicts whatever it meets.
        for spare_hot in [true, false] {
            for map in routes.iter_mut() {
                map.retain(|_, old| {
                    if fits(*weight, *entries)
                        || (spare_hot && old.hot.swap(false, Ordering::Relaxed))
                    {
                        return true;
                    }
                    *weight -= old.weight;
                    *entries -= 1;
                    false
                });
            }
            if fits(*weight, *entries) {
                break;
            }
        }
        *weight += entry.weight;
        *entries += 1;
        routes[route].insert(key.into(), entry);
    }

    /// Drops `stale` if it is still the entry for `key` (another request may have
    /// replaced it with a fresh one meanwhile).
    pub(super) fn remove(&self, route: usize, key: &str, stale: &Arc<Entry>) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let Inner {
            routes,
            weight,
            entries,
        } = &mut *inner;
        let Some(map) = routes.get_mut(route) else {
            return;
        };
        if map.get(key).is_some_and(|entry| Arc::ptr_eq(entry, stale)) {
            map.remove(key);
            *weight -= stale.weight;
            *entries -= 1;
        }
    }

    #[cfg(test)]
    fn totals(&self) -> (usize, usize) {
        let inner = self.inner.read().unwrap();
        (inner.weight, inner.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(content_len: usize) -> Arc<Entry> {
        let meta = std::fs::metadata(".").unwrap();
        let rep = Representation {
            encoding: Encoding::Identity,
            stat_path: PathBuf::from("/nonexistent"),
            open_path: PathBuf::from("/nonexistent"),
            fingerprint: Fingerprint::of(&meta),
            content: Some(Bytes::from(vec![0; content_len])),
            etag: HeaderValue::from_static("\"x\""),
            last_modified: HeaderValue::from_static("x"),
            modified_secs: 0,
            content_length: HeaderValue::from_static("0"),
        };
        Arc::new(Entry::new(
            HeaderValue::from_static("text/plain"),
            rep,
            None,
            None,
        ))
    }

    fn cache(max_total: usize, max_entries: usize) -> Cache {
        Cache::new(
            2,
            Limits {
                max_file: 1 << 20,
                max_total,
                max_entries,
            },
        )
    }

    #[test]
    fn entries_are_found_by_route_and_key() {
        let cache = cache(1 << 20, 10);
        let e = entry(10);
        cache.insert(0, "/a", Arc::clone(&e));
        assert!(Arc::ptr_eq(&cache.get(0, "/a").unwrap(), &e));
        assert!(cache.get(1, "/a").is_none());
        assert!(cache.get(0, "/b").is_none());
        assert!(cache.get(7, "/a").is_none());
    }

    #[test]
    fn the_entry_count_limit_evicts_older_entries() {
        let cache = cache(1 << 20, 3);
        for key in ["/a", "/b", "/c", "/d", "/e"] {
            cache.insert(0, key, entry(1));
        }
        assert_eq!(cache.totals().1, 3);
        assert!(cache.get(0, "/e").is_some());
    }

    #[test]
    fn the_byte_limit_holds_after_every_insert() {
        let limit = 10 * (ENTRY_OVERHEAD + 1000);
        let cache = cache(limit, 1000);
        for i in 0..50 {
            cache.insert(i % 2, &format!("/{i}"), entry(1000));
            assert!(cache.totals().0 <= limit);
        }
        assert_eq!(cache.totals(), (limit, 10));
    }

    #[test]
    fn recently_used_entries_survive_one_eviction_scan() {
        let cache = cache(1 << 20, 2);
        cache.insert(0, "/hot", entry(1));
        cache.insert(0, "/cold", entry(1));
        cache.get(0, "/hot");
        cache.insert(0, "/new", entry(1));
        assert!(cache.get(0, "/hot").is_some());
        assert!(cache.get(0, "/cold").is_none());
    }

    #[test]
    fn an_entry_bigger_than_the_cache_is_not_stored() {
        let cache = cache(100, 10);
        cache.insert(0, "/big", entry(1000));
        assert!(cache.get(0, "/big").is_none());
        assert_eq!(cache.totals(), (0, 0));
    }

    #[test]
    fn replacing_a_key_does_not_count_it_twice() {
        let cache = cache(1 << 20, 10);
        cache.insert(0, "/a", entry(10));
        cache.insert(0, "/a", entry(20));
        assert_eq!(cache.totals(), (ENTRY_OVERHEAD + 20, 1));
    }

    #[test]
    fn remove_leaves_a_newer_entry_alone() {
        let cache = cache(1 << 20, 10);
        let old = entry(1);
        cache.insert(0, "/a", Arc::clone(&old));
        let new = entry(2);
        cache.insert(0, "/a", Arc::clone(&new));
        cache.remove(0, "/a", &old);
        assert!(Arc::ptr_eq(&cache.get(0, "/a").unwrap(), &new));
        cache.remove(0, "/a", &new);
        assert!(cache.get(0, "/a").is_none());
        assert_eq!(cache.totals(), (0, 0));
    }
}
