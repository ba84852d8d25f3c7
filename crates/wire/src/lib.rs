//! The worker protocol between capstan's runtime and its Python shim.
//!
//! Bytes in, frames out: this crate does no I/O and never panics on input.
//! Every frame is a fixed 12-byte little-endian header followed by a payload:
//!
//! ```text
//! magic "CW" (2) | version (1) | kind (1) | request id (u32) | payload length (u32)
//! ```
//!
//! The payload layouts are described on [`Kind`]. Text inside payloads is
//! separated by NUL bytes, which lets the Python side split a whole environ or
//! header list with one C-level call; the encoders refuse any value that itself
//! contains a NUL.

mod error;
mod frame;
mod hello;
mod request;
mod response;

pub use error::WireError;
pub use frame::{
    decode, encode_frame, encode_header, Frame, Kind, HEADER_LEN, MAGIC, MAX_PAYLOAD, VERSION,
};
pub use hello::{Hello, StaticMount};
pub use request::{encode_request, RequestFlags};
pub use response::{FileRef, ResponseStart};
