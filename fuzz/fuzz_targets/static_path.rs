//! The static file path sanitizer: from the untrusted rest of a request path
//! to a path relative to the route's directory. Whatever it accepts must stay
//! inside the directory: only plain, visible names, no NUL or backslash.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rest) = std::str::from_utf8(data) else {
        return;
    };
    let Some(relative) = capstan_edge::static_files::relative_path(rest) else {
        return;
    };
    assert!(rest.is_empty() || rest.starts_with('/'), "{rest:?}");
    assert!(
        !relative.contains('\0') && !relative.contains('\\'),
        "{rest:?} -> {relative:?}"
    );
    assert!(
        !relative.starts_with('/') && !relative.ends_with('/'),
        "{rest:?} -> {relative:?}"
    );
    if relative.is_empty() {
        return;
    }
    for segment in relative.split('/') {
        assert!(
            !segment.is_empty() && !segment.starts_with('.'),
            "{rest:?} -> {relative:?}"
        );
    }
    let root = Path::new("/srv/static");
    let joined = root.join(&relative);
    assert!(joined.starts_with(root), "{rest:?} -> {joined:?}");
    assert!(
        Path::new(&relative)
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "{rest:?} -> {relative:?}"
    );
});
