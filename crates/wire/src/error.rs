use thiserror::Error;

/// What can be wrong with bytes that claim to be frames.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The first two bytes were not the protocol's magic: the peer is not a capstan shim.
    #[error("not a capstan worker frame (bad magic {0:02x?})")]
    BadMagic([u8; 2]),
    /// The peer speaks another protocol version.
    #[error("worker protocol version {0} is not supported (expected {expected})", expected = crate::VERSION)]
    BadVersion(u8),
    /// A frame kind this side does not know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A payload larger than the protocol allows.
    #[error("frame payload of {0} bytes is over the limit")]
    TooLarge(u32),
    /// A payload whose contents do not match its kind.
    #[error("malformed {kind} payload: {reason}")]
    Malformed {
        kind: &'static str,
        reason: &'static str,
    },
    /// A value to encode contains a NUL byte, which the framing reserves as separator.
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
}
