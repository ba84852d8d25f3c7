//! The one response body type the edge hands to hyper.

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};

/// Every response body the edge produces: a full buffer, nothing, a file being
/// read, or frames arriving from a Python worker.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A body that is already complete in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body with no bytes (HEAD, 204, 304).
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}
