//! The request pipeline: one function, each step a call, top to bottom.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::header::{
    ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, LAST_MODIFIED, LOCATION, RANGE, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::cache::{Entry, Representation};
use super::conditional;
use super::encoding::{self, Encoding};
use super::lookup::{self, Failure, Found};
use super::range::{self, Ranges};
use super::resolve::{self, Rejection, RelPath};
use super::route::{Route, StaticFiles};
use crate::body::{self, Body};

/// Bytes per read when streaming a file too big for the cache.
const CHUNK: usize = 256 * 1024;

/// A file that changes under a request is looked up again this many times in all.
const ATTEMPTS: usize = 3;

impl StaticFiles {
    /// Serves the request. Only called when matches() was true. A file these
    /// routes do not have may come from the previous release's
    /// (`keep_previous`), under the same checks.
    pub async fn serve(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response<Body> {
        let response = self.serve_here(method, uri, headers).await;
        if response.status() != StatusCode::NOT_FOUND {
            return response;
        }
        match self.live_previous() {
            Some(previous) if previous.matches(uri.path()) => {
                let older = previous.serve_here(method, uri, headers).await;
                if older.status() == StatusCode::NOT_FOUND {
                    response
                } else {
                    older
                }
            }
            _ => response,
        }
    }

    /// Serves the request from these routes alone.
    async fn serve_here(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response<Body> {
        let head = method == Method::HEAD;
        if !head && method != Method::GET {
            return method_not_allowed();
        }
        let path = uri.path();
        let Some((index, route)) = self.route_for(path) else {
            return plain(StatusCode::NOT_FOUND, head);
        };
        let rel = match resolve::decode(&path[route.prefix.len()..]) {
            Ok(rel) => rel,
            Err(Rejection::NotFound) => return plain(StatusCode::NOT_FOUND, head),
            Err(Rejection::BadRequest) => return plain(StatusCode::BAD_REQUEST, head),
        };
        let mut cached = self.cache.get(index, rel.key());
        for _ in 0..ATTEMPTS {
            let (entry, fresh) = match cached.take() {
                Some(entry) => (entry, false),
                None => match self.load(index, route, &rel).await {
                    Ok(Found::File(entry)) => (entry, true),
                    Ok(Found::Directory) => return redirect_to_directory(uri, head),
                    Err(Failure::Changed) => continue,
                    Err(failure) => return failure_response(failure, head),
                },
            };
            let rep = pick(&entry, method, headers);
            // The one stat of a cache hit: never serve a file that changed.
            if !fresh && !rep.is_current() {
                self.cache.remove(index, rel.key(), &entry);
                continue;
            }
            match respond(route, &entry, rep, head, headers).await {
                Ok(response) => return response,
                Err(Failure::Changed) => self.cache.remove(index, rel.key(), &entry),
                Err(failure) => return failure_response(failure, head),
            }
        }
        tracing::error!(path = %path, "static file kept changing while being served");
        plain(StatusCode::INTERNAL_SERVER_ERROR, head)
    }

    /// The slow path, on the blocking pool: resolve, check, read; cache the result.
    async fn load(
        &self,
        index: usize,
        route: &Route,
        rel: &RelPath<'_>,
    ) -> Result<Found<Arc<Entry>>, Failure> {
        let root = Arc::clone(&route.root);
        let fs_relative = rel.fs_relative().to_owned();
        let wants_dir = rel.wants_dir();
        let max_file = self.cache.limits().max_file;
        let found = tokio::task::spawn_blocking(move || {
            lookup::load(&root, &fs_relative, wants_dir, max_file)
        })
        .await
        .map_err(|join_error| Failure::Io {
            path: route.root.join(rel.fs_relative()),
            error: std::io::Error::other(join_error),
        })??;
        Ok(match found {
            Found::File(entry) => {
                let entry = Arc::new(entry);
                self.cache.insert(index, rel.key(), Arc::clone(&entry));
                Found::File(entry)
            }
            Found::Directory => Found::Directory,
        })
    }
}

/// Which file answers: the identity file for a range request (a byte range of a
/// compressed body is useless to most clients), else what `Accept-Encoding` prefers.
fn pick<'e>(entry: &'e Entry, method: &Method, headers: &HeaderMap) -> &'e Representation {
    if !entry.has_siblings() || (method == Method::GET && headers.contains_key(RANGE)) {
        return &entry.identity;
    }
    let accepted = encoding::accepted(headers);
    let encoding = encoding::choose(accepted, entry.brotli.is_some(), entry.gzip.is_some());
    entry.representation(encoding)
}

/// Builds the answer for a current representation: 304, 416, 206 or 200.
async fn respond(
    route: &Route,
    entry: &Entry,
    rep: &Representation,
    head: bool,
    request: &HeaderMap,
) -> Result<Response<Body>, Failure> {
    let mut headers = HeaderMap::with_capacity(12);
    headers.insert(ETAG, rep.etag.clone());
    headers.insert(LAST_MODIFIED, rep.last_modified.clone());
    headers.insert(CACHE_CONTROL, route.cache_control.clone());
    if entry.has_siblings() {
        headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if conditional::not_modified(request, &rep.etag, rep.modified_secs) {
        return Ok(response(StatusCode::NOT_MODIFIED, headers, body::empty()));
    }
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));

    let size = rep.size();
    // RFC 9110 §14.2: Range is defined for GET only; HEAD answers as a plain GET would.
    let ranges = match request.get(RANGE) {
        Some(value)
            if !head
                && rep.encoding == Encoding::Identity
                && conditional::if_range_allows(request, &rep.etag, rep.modified_secs) =>
        {
            range::parse(value, size)
        }
        _ => Ranges::Ignored,
    };
    let (status, start, len) = match ranges {
        Ranges::One { start, end } => {
            headers.insert(
                CONTENT_RANGE,
                header_value(format!("bytes {start}-{end}/{size}")),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Ranges::Unsatisfiable => {
            headers.insert(CONTENT_RANGE, header_value(format!("bytes */{size}")));
            headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
            return Ok(response(
                StatusCode::RANGE_NOT_SATISFIABLE,
                headers,
                body::empty(),
            ));
        }
        Ranges::Ignored | Ranges::Several => (StatusCode::OK, 0, size),
    };

    headers.insert(CONTENT_TYPE, entry.content_type.clone());
    if let Some(content_encoding) = rep.encoding.content_encoding() {
        headers.insert(CONTENT_ENCODING, content_encoding);
    }
    let content_length = if len == size {
        rep.content_length.clone()
    } else {
        HeaderValue::from(len)
    };
    headers.insert(CONTENT_LENGTH, content_length);

    let body = if head {
        body::empty()
    } else if let Some(content) = &rep.content {
        // Both ends lie inside the content (range.rs clamps to the size, and the
        // content's length is the size, checked when it was read).
        body::full(content.slice(start as usize..(start + len) as usize))
    } else {
        stream(rep, start, len).await?
    };
    Ok(response(status, headers, body))
}

/// A body read from disk in [`CHUNK`]s, `len` bytes from `start`.
async fn stream(rep: &Representation, start: u64, len: u64) -> Result<Body, Failure> {
    let path = rep.open_path.clone();
    let fingerprint = rep.fingerprint;
    let opened = tokio::task::spawn_blocking(move || lookup::open(&path, fingerprint, start))
        .await
        .map_err(|join_error| Failure::Io {
            path: rep.open_path.clone(),
            error: std::io::Error::other(join_error),
        })??;
    // `take`: a file that grows while being sent must not overrun Content-Length.
    let reader = tokio::fs::File::from_std(opened).take(len);
    let frames = ReaderStream::with_capacity(reader, CHUNK).map_ok(Frame::data);
    Ok(StreamBody::new(frames).boxed_unsync())
}

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn header_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("digits, spaces and ASCII punctuation")
}

/// 301 to the same path with a `/` added, keeping the query.
fn redirect_to_directory(uri: &Uri, head: bool) -> Response<Body> {
    // SECURITY: the path passed resolve::decode: it starts with `/` and has no empty
    // segment, so the `Location` is a path on this host, never `//other.host`. The
    // query is echoed as the client sent it; http::Uri allows only URI characters.
    let path = uri.path();
    let query = uri.query();
    let mut location = String::with_capacity(path.len() + 2 + query.map_or(0, str::len));
    location.push_str(path);
    location.push('/');
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    let Ok(location) = HeaderValue::try_from(location) else {
        return plain(StatusCode::NOT_FOUND, head);
    };
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(LOCATION, location);
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    response(StatusCode::MOVED_PERMANENTLY, headers, body::empty())
}

fn method_not_allowed() -> Response<Body> {
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, false);
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// Turns a lookup failure into 404, 403 or 500, logging the last two.
fn failure_response(failure: Failure, head: bool) -> Response<Body> {
    match failure {
        Failure::NotFound => plain(StatusCode::NOT_FOUND, head),
        Failure::Io { path, error } if error.kind() == std::io::ErrorKind::PermissionDenied => {
            tracing::warn!(path = %path.display(), %error, "static file not readable");
            plain(StatusCode::FORBIDDEN, head)
        }
        Failure::Io { path, error } => {
            tracing::error!(path = %path.display(), %error, "static file could not be read");
            plain(StatusCode::INTERNAL_SERVER_ERROR, head)
        }
        Failure::Changed => {
            tracing::error!("static file kept changing while being served");
            plain(StatusCode::INTERNAL_SERVER_ERROR, head)
        }
    }
}

/// A short text answer such as `404 Not Found`. HEAD gets the headers only.
fn plain(status: StatusCode, head: bool) -> Response<Body> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    let body = if head {
        body::empty()
    } else {
        body::full(Bytes::from(text))
    };
    response(status, headers, body)
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn io_failure(kind: io::ErrorKind) -> Failure {
        Failure::Io {
            path: "/srv/static/x".into(),
            error: io::Error::from(kind),
        }
    }

    #[test]
    fn permission_denied_is_403_and_other_io_errors_are_500() {
        let denied = failure_response(io_failure(io::ErrorKind::PermissionDenied), false);
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
        let broken = failure_response(io_failure(io::ErrorKind::Other), false);
        assert_eq!(broken.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let missing = failure_response(Failure::NotFound, false);
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn an_error_answer_to_head_keeps_its_length_but_has_no_body() {
        let get = plain(StatusCode::NOT_FOUND, false);
        let head = plain(StatusCode::NOT_FOUND, true);
        assert_eq!(get.headers(), head.headers());
        assert_eq!(head.headers()[CONTENT_LENGTH], "14");
        assert_eq!(http_body::Body::size_hint(head.body()).exact(), Some(0));
    }

    #[test]
    fn the_directory_redirect_adds_the_slash_before_the_query() {
        let uri: Uri = "/static/docs?a=1&b".parse().unwrap();
        let response = redirect_to_directory(&uri, false);
        assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(response.headers()[LOCATION], "/static/docs/?a=1&b");
    }

    #[test]
    fn static_files_can_be_shared_and_serve_can_move_between_threads() {
        fn is_send_sync<T: Send + Sync>(_: &T) {}
        fn is_send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().unwrap();
        let files = StaticFiles::new(vec![super::super::StaticRoute {
            url_prefix: "/static".into(),
            dir: dir.path().into(),
            max_age: std::time::Duration::ZERO,
        }])
        .unwrap();
        is_send_sync(&files);
        let (method, uri, headers) = (Method::GET, Uri::from_static("/static/x"), HeaderMap::new());
        let future = files.serve(&method, &uri, &headers);
        is_send(&future);
    }
}
