//! The control transport, end to end: a real server on a real Unix socket in a
//! temp folder, a small handler written here, and the real client; peers that
//! are not root run as real processes under another uid (this binary, re-run).

mod access;
mod calls;
mod socket;
mod streams;
mod support;
