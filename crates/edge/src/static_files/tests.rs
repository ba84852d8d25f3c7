//! Whole requests through `StaticFiles::serve`, against files in a temp dir.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED,
    LOCATION, RANGE, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use http_body_util::BodyExt;

use super::cache::Limits;
use super::{StaticFiles, StaticRoute};

const THIRTY_DAYS: Duration = Duration::from_secs(30 * 24 * 3600);

/// A temp dir holding `outside/` (with a `Cargo.toml` that must never be served) and
/// `static/`, the root of the route `/static`.
struct Fixture {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    files: StaticFiles,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }
}

fn fixture() -> Fixture {
    fixture_with(Limits::default())
}

fn fixture_with(limits: Limits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("static");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(base.join("outside")).unwrap();
    std::fs::write(base.join("Cargo.toml"), "[secret]").unwrap();
    std::fs::write(base.join("outside/secret.txt"), "secret").unwrap();
    let files = StaticFiles::with_limits(vec![route("/static", &root)], limits).unwrap();
    Fixture {
        _dir: dir,
        base,
        root,
        files,
    }
}

fn route(prefix: &str, dir: &Path) -> StaticRoute {
    StaticRoute {
        url_prefix: prefix.into(),
        dir: dir.into(),
        max_age: THIRTY_DAYS,
    }
}

impl Fixture {
    fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    async fn get(&self, target: &str) -> Reply {
        self.send(Method::GET, target, &[]).await
    }

    async fn send(&self, method: Method, target: &str, headers: &[(HeaderName, &str)]) -> Reply {
        send(&self.files, method, target, headers).await
    }
}

async fn send(
    files: &StaticFiles,
    method: Method,
    target: &str,
    headers: &[(HeaderName, &str)],
) -> Reply {
    let uri: Uri = target.parse().unwrap();
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    let response = files.serve(&method, &uri, &map).await;
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn set_mtime(path: &Path, time: SystemTime) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(time).unwrap();
}

// Content and headers.

#[tokio::test]
async fn a_css_file_is_served_with_type_length_validators_and_cache_headers() {
    let f = fixture();
    f.write("css/app.css", "body { color: red }");
    let reply = f.get("/static/css/app.css").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "body { color: red }");
    assert_eq!(reply.header(CONTENT_TYPE), "text/css; charset=utf-8");
    assert_eq!(reply.header(CONTENT_LENGTH), "19");
    assert_eq!(reply.header(CACHE_CONTROL), "public, max-age=2592000");
    assert_eq!(reply.header(ACCEPT_RANGES), "bytes");
    assert!(httpdate::parse_http_date(reply.header(LAST_MODIFIED)).is_ok());
    let etag = reply.header(ETAG);
    assert!(etag.starts_with('"') && etag.ends_with("-13\""), "{etag}");
    assert!(reply.headers.get(VARY).is_none());
    assert!(reply.headers.get(CONTENT_ENCODING).is_none());
}

#[tokio::test]
async fn content_types_follow_the_extension_with_a_charset_only_for_text() {
    let f = fixture();
    for (name, expected) in [
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.mjs", "application/javascript; charset=utf-8"),
        ("a.json", "application/json; charset=utf-8"),
        ("a.html", "text/html; charset=utf-8"),
        ("a.png", "image/png"),
        ("a.woff2", "font/woff2"),
        ("a.weird", "application/octet-stream"),
    ] {
        f.write(name, "x");
        let reply = f.get(&format!("/static/{name}")).await;
        assert_eq!(reply.header(CONTENT_TYPE), expected, "{name}");
    }
}

#[tokio::test]
async fn percent_encoded_names_and_query_strings_are_served() {
    let f = fixture();
    f.write("my file.txt", "spaced");
    assert_eq!(f.get("/static/my%20file.txt").await.body, "spaced");
    assert_eq!(f.get("/static/my%20file.txt?v=3").await.body, "spaced");
}

#[tokio::test]
async fn an_empty_file_is_served_with_length_zero() {
    let f = fixture();
    f.write("empty.txt", "");
    let reply = f.get("/static/empty.txt").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(CONTENT_LENGTH), "0");
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn a_missing_file_is_not_found_with_a_short_text_body() {
    let f = fixture();
    let reply = f.get("/static/nope.css").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body, "404 Not Found\n");
    assert_eq!(reply.header(CONTENT_TYPE), "text/plain; charset=utf-8");
}

#[tokio::test]
async fn head_has_the_same_headers_as_get_and_no_body() {
    let f = fixture();
    f.write("app.js", "console.log(1)");
    let get = f.get("/static/app.js").await;
    let head = f.send(Method::HEAD, "/static/app.js", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers, get.headers);
    assert!(head.body.is_empty());
    let missing = f.send(Method::HEAD, "/static/missing.js", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.is_empty());
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let f = fixture();
    f.write("app.js", "x");
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let reply = f.send(method.clone(), "/static/app.js", &[]).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.header(ALLOW), "GET, HEAD");
    }
}

// Conditional requests.

#[tokio::test]
async fn a_matching_etag_gets_304_with_validators_and_no_body() {
    let f = fixture();
    f.write("app.css", "a{}");
    let first = f.get("/static/app.css").await;
    let etag = first.header(ETAG).to_owned();
    for value in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"nope\", {etag}"),
        "*".to_owned(),
    ] {
        let reply = f
            .send(Method::GET, "/static/app.css", &[(IF_NONE_MATCH, &value)])
            .await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{value}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header(ETAG), etag);
        assert_eq!(reply.header(LAST_MODIFIED), first.header(LAST_MODIFIED));
        assert_eq!(reply.header(CACHE_CONTROL), "public, max-age=2592000");
        assert!(reply.headers.get(CONTENT_LENGTH).is_none());
    }
    let head = f
        .send(Method::HEAD, "/static/app.css", &[(IF_NONE_MATCH, &etag)])
        .await;
    assert_eq!(head.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn another_etag_gets_the_full_file() {
    let f = fixture();
    f.write("app.css", "a{}");
    let reply = f
        .send(
            Method::GET,
            "/static/app.css",
            &[(IF_NONE_MATCH, "\"old\"")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "a{}");
}

#[tokio::test]
async fn an_if_modified_since_at_or_after_the_mtime_gets_304() {
    let f = fixture();
    let path = f.write("app.css", "a{}");
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    set_mtime(&path, mtime);
    for since in [mtime, mtime + Duration::from_secs(3600)] {
        let date = httpdate::fmt_http_date(since);
        let reply = f
            .send(
                Method::GET,
                "/static/app.css",
                &[(IF_MODIFIED_SINCE, &date)],
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{date}");
    }
}

#[tokio::test]
async fn an_if_modified_since_before_the_mtime_gets_the_full_file() {
    let f = fixture();
    let path = f.write("app.css", "a{}");
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    set_mtime(&path, mtime);
    let date = httpdate::fmt_http_date(mtime - Duration::from_secs(1));
    let reply = f
        .send(
            Method::GET,
            "/static/app.css",
            &[(IF_MODIFIED_SINCE, &date)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_mismatched_if_none_match_overrides_a_fresh_if_modified_since() {
    let f = fixture();
    f.write("app.css", "a{}");
    let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
    let reply = f
        .send(
            Method::GET,
            "/static/app.css",
            &[(IF_NONE_MATCH, "\"old\""), (IF_MODIFIED_SINCE, &future)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

// Ranges.

const DIGITS: &str = "0123456789abcdefghij";

#[tokio::test]
async fn a_single_range_gets_206_with_content_range() {
    let f = fixture();
    f.write("d.txt", DIGITS);
    for (range, body, content_range) in [
        ("bytes=0-4", "01234", "bytes 0-4/20"),
        ("bytes=15-", "fghij", "bytes 15-19/20"),
        ("bytes=-3", "hij", "bytes 17-19/20"),
        ("bytes=18-100", "ij", "bytes 18-19/20"),
    ] {
        let reply = f
            .send(Method::GET, "/static/d.txt", &[(RANGE, range)])
            .await;
        assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(reply.body, body, "{range}");
        assert_eq!(reply.header(CONTENT_RANGE), content_range);
        assert_eq!(reply.header(CONTENT_LENGTH), body.len().to_string());
    }
}

#[tokio::test]
async fn an_unsatisfiable_range_gets_416_with_the_size() {
    let f = fixture();
    f.write("d.txt", DIGITS);
    for range in ["bytes=20-", "bytes=100-200", "bytes=-0"] {
        let reply = f
            .send(Method::GET, "/static/d.txt", &[(RANGE, range)])
            .await;
        assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(reply.header(CONTENT_RANGE), "bytes */20");
        assert!(reply.body.is_empty());
    }
}

#[tokio::test]
async fn several_ranges_or_a_malformed_one_get_the_whole_file() {
    let f = fixture();
    f.write("d.txt", DIGITS);
    for range in ["bytes=0-1,5-6", "bytes=5-1", "lines=1-2"] {
        let reply = f
            .send(Method::GET, "/static/d.txt", &[(RANGE, range)])
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{range}");
        assert_eq!(reply.body, DIGITS);
        assert!(reply.headers.get(CONTENT_RANGE).is_none());
    }
}

#[tokio::test]
async fn if_range_honours_the_range_only_for_the_current_version() {
    let f = fixture();
    let path = f.write("d.txt", DIGITS);
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    set_mtime(&path, mtime);
    let etag = f.get("/static/d.txt").await.header(ETAG).to_owned();
    let date = httpdate::fmt_http_date(mtime);
    let old_date = httpdate::fmt_http_date(mtime - Duration::from_secs(10));
    for (if_range, status) in [
        (etag.as_str(), StatusCode::PARTIAL_CONTENT),
        (date.as_str(), StatusCode::PARTIAL_CONTENT),
        ("\"old\"", StatusCode::OK),
        (old_date.as_str(), StatusCode::OK),
    ] {
        let reply = f
            .send(
                Method::GET,
                "/static/d.txt",
                &[(RANGE, "bytes=0-1"), (IF_RANGE, if_range)],
            )
            .await;
        assert_eq!(reply.status, status, "{if_range}");
    }
    let weak = format!("W/{etag}");
    let reply = f
        .send(
            Method::GET,
            "/static/d.txt",
            &[(RANGE, "bytes=0-1"), (IF_RANGE, &weak)],
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "a weak tag never matches If-Range"
    );
}

#[tokio::test]
async fn head_ignores_range_and_reports_the_whole_file() {
    let f = fixture();
    f.write("d.txt", DIGITS);
    let reply = f
        .send(Method::HEAD, "/static/d.txt", &[(RANGE, "bytes=0-4")])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header(CONTENT_LENGTH), "20");
}

// Precompressed siblings.

fn with_siblings(f: &Fixture) {
    f.write("app.js", "identity-identity");
    f.write("app.js.br", "br!");
    f.write("app.js.gz", "gzip!!");
}

#[tokio::test]
async fn brotli_is_preferred_when_both_siblings_are_accepted() {
    let f = fixture();
    with_siblings(&f);
    let identity = f.get("/static/app.js").await;
    let reply = f
        .send(
            Method::GET,
            "/static/app.js",
            &[(ACCEPT_ENCODING, "gzip, deflate, br")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "br!");
    assert_eq!(reply.header(CONTENT_ENCODING), "br");
    assert_eq!(reply.header(CONTENT_TYPE), "text/javascript; charset=utf-8");
    assert_eq!(reply.header(CONTENT_LENGTH), "3");
    assert_eq!(reply.header(VARY), "Accept-Encoding");
    assert!(reply.header(ETAG).ends_with("-br\""));
    assert_ne!(reply.header(ETAG), identity.header(ETAG));
}

#[tokio::test]
async fn gzip_is_served_when_brotli_is_refused_with_q_zero() {
    let f = fixture();
    with_siblings(&f);
    let reply = f
        .send(
            Method::GET,
            "/static/app.js",
            &[(ACCEPT_ENCODING, "br;q=0, gzip")],
        )
        .await;
    assert_eq!(reply.body, "gzip!!");
    assert_eq!(reply.header(CONTENT_ENCODING), "gzip");
    assert!(reply.header(ETAG).ends_with("-gz\""));
}

#[tokio::test]
async fn the_identity_file_is_served_when_no_encoding_is_accepted() {
    let f = fixture();
    with_siblings(&f);
    for accept in [None, Some("br;q=0, gzip;q=0"), Some("deflate")] {
        let headers: Vec<(HeaderName, &str)> =
            accept.map(|a| (ACCEPT_ENCODING, a)).into_iter().collect();
        let reply = f.send(Method::GET, "/static/app.js", &headers).await;
        assert_eq!(reply.body, "identity-identity", "{accept:?}");
        assert!(reply.headers.get(CONTENT_ENCODING).is_none());
        assert_eq!(reply.header(VARY), "Accept-Encoding");
    }
}

#[tokio::test]
async fn ranges_are_served_from_the_identity_file_even_when_brotli_is_accepted() {
    let f = fixture();
    with_siblings(&f);
    let reply = f
        .send(
            Method::GET,
            "/static/app.js",
            &[(ACCEPT_ENCODING, "br"), (RANGE, "bytes=0-7")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.body, "identity");
    assert!(reply.headers.get(CONTENT_ENCODING).is_none());
}

#[tokio::test]
async fn a_304_for_the_brotli_file_needs_the_brotli_etag() {
    let f = fixture();
    with_siblings(&f);
    let br = f
        .send(Method::GET, "/static/app.js", &[(ACCEPT_ENCODING, "br")])
        .await;
    let br_etag = br.header(ETAG).to_owned();
    let identity_etag = f.get("/static/app.js").await.header(ETAG).to_owned();
    let again = f
        .send(
            Method::GET,
            "/static/app.js",
            &[(ACCEPT_ENCODING, "br"), (IF_NONE_MATCH, &br_etag)],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(again.header(VARY), "Accept-Encoding");
    let mismatched = f
        .send(
            Method::GET,
            "/static/app.js",
            &[(ACCEPT_ENCODING, "br"), (IF_NONE_MATCH, &identity_etag)],
        )
        .await;
    assert_eq!(mismatched.status, StatusCode::OK);
}

// Directories.

#[tokio::test]
async fn a_directory_with_a_slash_serves_its_index() {
    let f = fixture();
    f.write("docs/index.html", "<h1>docs</h1>");
    f.write("index.html", "<h1>root</h1>");
    let reply = f.get("/static/docs/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "<h1>docs</h1>");
    assert_eq!(reply.header(CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(f.get("/static/").await.body, "<h1>root</h1>");
}

#[tokio::test]
async fn a_directory_without_a_slash_redirects_and_keeps_the_query() {
    let f = fixture();
    f.write("docs/index.html", "<h1>docs</h1>");
    let reply = f.get("/static/docs?lang=en&x=1").await;
    assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(reply.header(LOCATION), "/static/docs/?lang=en&x=1");
    let plain = f.get("/static/docs").await;
    assert_eq!(plain.header(LOCATION), "/static/docs/");
    let root = f.get("/static").await;
    assert_eq!(root.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(root.header(LOCATION), "/static/");
}

#[tokio::test]
async fn a_directory_without_an_index_is_not_found_and_never_listed() {
    let f = fixture();
    f.write("empty/readme.txt", "x");
    let reply = f.get("/static/empty/").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(!String::from_utf8_lossy(&reply.body).contains("readme"));
}

#[tokio::test]
async fn a_file_with_a_trailing_slash_is_not_found() {
    let f = fixture();
    f.write("app.css", "x");
    assert_eq!(
        f.get("/static/app.css/").await.status,
        StatusCode::NOT_FOUND
    );
}

// Path safety.

#[tokio::test]
async fn dot_dot_traversal_is_not_found() {
    let f = fixture();
    for target in [
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/%2E%2E/Cargo.toml",
        "/static/.%2e/Cargo.toml",
        "/static/css/../../Cargo.toml",
        "/static/../outside/secret.txt",
    ] {
        let reply = f.get(target).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{target}");
        assert_eq!(reply.body, "404 Not Found\n", "{target}");
    }
}

#[tokio::test]
async fn encoded_slashes_and_backslashes_are_not_found() {
    let f = fixture();
    f.write("a/b.txt", "x");
    for target in [
        "/static/a%2Fb.txt",
        "/static/a%2fb.txt",
        "/static/..%2FCargo.toml",
        "/static/..%5CCargo.toml",
        "/static/..%5cCargo.toml",
    ] {
        assert_eq!(
            f.get(target).await.status,
            StatusCode::NOT_FOUND,
            "{target}"
        );
    }
}

#[tokio::test]
async fn nul_and_malformed_escapes_are_bad_requests() {
    let f = fixture();
    f.write("a.txt", "x");
    for target in [
        "/static/a.txt%00",
        "/static/a.txt%00.png",
        "/static/a%zz",
        "/static/a%2",
    ] {
        assert_eq!(
            f.get(target).await.status,
            StatusCode::BAD_REQUEST,
            "{target}"
        );
    }
}

#[tokio::test]
async fn dotfiles_and_dot_directories_are_not_found() {
    let f = fixture();
    f.write(".env", "SECRET=1");
    f.write(".git/config", "[core]");
    f.write(".well-hidden/x.txt", "x");
    for target in [
        "/static/.env",
        "/static/.git/config",
        "/static/%2eenv",
        "/static/.well-hidden/x.txt",
    ] {
        assert_eq!(
            f.get(target).await.status,
            StatusCode::NOT_FOUND,
            "{target}"
        );
    }
}

#[tokio::test]
async fn a_symlink_out_of_the_root_is_not_found_like_a_missing_file() {
    let f = fixture();
    symlink(f.base.join("outside/secret.txt"), f.root.join("leak.txt")).unwrap();
    symlink(
        f.base.join("outside/absent.txt"),
        f.root.join("dangling.txt"),
    )
    .unwrap();
    symlink(f.base.join("outside"), f.root.join("leakdir")).unwrap();
    let missing = f.get("/static/never-existed.txt").await;
    for target in [
        "/static/leak.txt",
        "/static/dangling.txt",
        "/static/leakdir/secret.txt",
        "/static/leakdir/absent.txt",
    ] {
        let reply = f.get(target).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{target}");
        assert_eq!(reply.headers, missing.headers, "{target}");
        assert_eq!(reply.body, missing.body, "{target}");
    }
}

#[tokio::test]
async fn a_symlink_inside_the_root_is_served_with_its_own_name_type() {
    let f = fixture();
    f.write("real/app.v1.css", "a{}");
    symlink(f.root.join("real/app.v1.css"), f.root.join("app.css")).unwrap();
    symlink("real", f.root.join("current")).unwrap();
    let reply = f.get("/static/app.css").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "a{}");
    assert_eq!(f.get("/static/current/app.v1.css").await.body, "a{}");
}

#[tokio::test]
async fn a_symlink_repointed_out_of_the_root_after_caching_is_not_found() {
    let f = fixture();
    f.write("real.txt", "inside");
    let link = f.root.join("link.txt");
    symlink(f.root.join("real.txt"), &link).unwrap();
    assert_eq!(f.get("/static/link.txt").await.body, "inside");
    std::fs::remove_file(&link).unwrap();
    symlink(f.base.join("outside/secret.txt"), &link).unwrap();
    assert_eq!(
        f.get("/static/link.txt").await.status,
        StatusCode::NOT_FOUND
    );
}

// The cache.

#[tokio::test]
async fn a_changed_file_is_never_served_stale() {
    let f = fixture();
    let path = f.write("app.css", "old");
    set_mtime(&path, SystemTime::now() - Duration::from_secs(60));
    let first = f.get("/static/app.css").await;
    assert_eq!(first.body, "old");
    assert_eq!(
        f.get("/static/app.css").await.body,
        "old",
        "served from the cache"
    );
    std::fs::write(&path, "new and longer").unwrap();
    set_mtime(&path, SystemTime::now());
    let second = f.get("/static/app.css").await;
    assert_eq!(second.body, "new and longer");
    assert_ne!(second.header(ETAG), first.header(ETAG));
    let stale = f
        .send(
            Method::GET,
            "/static/app.css",
            &[(IF_NONE_MATCH, first.header(ETAG))],
        )
        .await;
    assert_eq!(stale.status, StatusCode::OK);
}

#[tokio::test]
async fn a_file_replaced_by_rename_with_the_same_size_and_mtime_is_not_served_stale() {
    let f = fixture();
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let path = f.write("app.css", "AAAA");
    set_mtime(&path, mtime);
    assert_eq!(f.get("/static/app.css").await.body, "AAAA");
    let staged = f.write("app.css.tmp", "BBBB");
    set_mtime(&staged, mtime);
    std::fs::rename(&staged, &path).unwrap();
    assert_eq!(f.get("/static/app.css").await.body, "BBBB");
}

#[tokio::test]
async fn a_deleted_file_is_not_found_after_being_cached() {
    let f = fixture();
    let path = f.write("gone.txt", "here");
    assert_eq!(f.get("/static/gone.txt").await.status, StatusCode::OK);
    std::fs::remove_file(path).unwrap();
    assert_eq!(
        f.get("/static/gone.txt").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_new_index_is_picked_up_after_a_404() {
    let f = fixture();
    std::fs::create_dir(f.root.join("docs")).unwrap();
    assert_eq!(f.get("/static/docs/").await.status, StatusCode::NOT_FOUND);
    f.write("docs/index.html", "hi");
    assert_eq!(f.get("/static/docs/").await.body, "hi");
}

// Big files, streamed from disk.

fn big_content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn a_file_bigger_than_the_cache_limit_is_streamed_in_full() {
    let f = fixture();
    let content = big_content(700 * 1024);
    f.write("big.bin", &content);
    for _ in 0..2 {
        let reply = f.get("/static/big.bin").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header(CONTENT_LENGTH), content.len().to_string());
        assert_eq!(reply.body, content);
    }
}

#[tokio::test]
async fn a_range_of_a_streamed_file_reads_only_that_range() {
    let f = fixture();
    let content = big_content(700 * 1024);
    f.write("big.bin", &content);
    let reply = f
        .send(
            Method::GET,
            "/static/big.bin",
            &[(RANGE, "bytes=300000-600000")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.body, content[300_000..=600_000]);
    assert_eq!(reply.header(CONTENT_LENGTH), "300001");
}

#[tokio::test]
async fn a_streamed_file_that_changed_is_reloaded() {
    let f = fixture_with(Limits {
        max_file: 4,
        ..Limits::default()
    });
    let path = f.write("big.txt", "0123456789");
    assert_eq!(f.get("/static/big.txt").await.body, "0123456789");
    std::fs::write(&path, "abcdefghijklmnop").unwrap();
    assert_eq!(f.get("/static/big.txt").await.body, "abcdefghijklmnop");
    let head = f.send(Method::HEAD, "/static/big.txt", &[]).await;
    assert_eq!(head.header(CONTENT_LENGTH), "16");
    assert!(head.body.is_empty());
}

// Routing.

#[tokio::test]
async fn the_longest_matching_prefix_wins_at_a_slash_boundary() {
    let f = fixture();
    let vendor = f.base.join("vendor");
    std::fs::create_dir(&vendor).unwrap();
    std::fs::write(vendor.join("lib.js"), "vendor").unwrap();
    f.write("lib.js", "static");
    f.write("vendor/lib.js", "static/vendor");
    let files = StaticFiles::new(vec![
        route("/static/", &f.root),
        route("/static/vendor", &vendor),
    ])
    .unwrap();
    let body = |target: &'static str| {
        let files = &files;
        async move { send(files, Method::GET, target, &[]).await.body }
    };
    assert_eq!(body("/static/vendor/lib.js").await, "vendor");
    assert_eq!(body("/static/lib.js").await, "static");
    assert!(files.matches("/static"));
    assert!(files.matches("/static/vendor"));
    assert!(files.matches("/static/vendorx/lib.js"));
    assert!(!files.matches("/staticky"));
    assert!(!files.matches("/"));
    assert!(!files.matches("/api/static/x"));
}

#[tokio::test]
async fn keep_previous_serves_what_the_new_release_lost_until_it_expires_and_never_outside() {
    let old = fixture();
    old.write("app-v1.css", "old css");
    old.write("both.css", "old both");
    let new = fixture();
    new.write("both.css", "new both");
    let until = std::time::Instant::now() + Duration::from_millis(400);
    assert!(new.files.keep_previous(old.files.routes(), until).unwrap());
    let reply = new.get("/static/app-v1.css").await;
    assert_eq!(
        (reply.status, &reply.body[..]),
        (StatusCode::OK, &b"old css"[..])
    );
    // The new release's own file always wins.
    assert_eq!(&new.get("/static/both.css").await.body[..], b"new both");
    // The same sanitizer: nothing outside the previous roots.
    for target in [
        "/static/../outside/secret.txt",
        "/static/%2e%2e/outside/secret.txt",
        "/static/..%2fCargo.toml",
    ] {
        let reply = new.get(target).await;
        assert!(reply.status.is_client_error(), "{target}: {}", reply.status);
        assert!(!reply.body.starts_with(b"secret") && !reply.body.starts_with(b"[secret]"));
    }
    // Set once.
    assert!(!new.files.keep_previous(Vec::new(), until).unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        new.get("/static/app-v1.css").await.status,
        StatusCode::NOT_FOUND
    );
}
