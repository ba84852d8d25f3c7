use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::BytesMut;
use capstan_proc::FdSocket;
use capstan_wire::{decode, Frame, Kind, WireError};

/// A frame from a worker, with the descriptor that came with a ResponseFile.
pub(crate) struct Incoming {
    pub frame: Frame,
    pub fd: Option<OwnedFd>,
}

/// Reads whole frames from a worker socket.
pub(crate) struct FrameReader {
    socket: Arc<FdSocket>,
    buf: BytesMut,
    fds: VecDeque<OwnedFd>,
}

/// Why reading from a worker stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    Protocol(WireError),
    MissingFd,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Protocol(e) => write!(f, "{e}"),
            ReadError::MissingFd => write!(f, "a response_file frame came without a descriptor"),
        }
    }
}

impl FrameReader {
    pub fn new(socket: Arc<FdSocket>) -> Self {
        FrameReader {
            socket,
            buf: BytesMut::with_capacity(64 * 1024),
            fds: VecDeque::new(),
        }
    }

    /// The next frame; `Ok(None)` at end of stream.
    pub async fn next(&mut self) -> Result<Option<Incoming>, ReadError> {
        loop {
            if let Some(frame) = decode(&mut self.buf).map_err(ReadError::Protocol)? {
                // The descriptor travels in the same message as its frame, so it
                // has always arrived by the time the frame is complete.
                let fd = if frame.kind == Kind::ResponseFile {
                    Some(self.fds.pop_front().ok_or(ReadError::MissingFd)?)
                } else {
                    None
                };
                return Ok(Some(Incoming { frame, fd }));
            }
            let n = self
                .socket
                .recv(&mut self.buf, &mut self.fds)
                .await
                .map_err(ReadError::Io)?;
            if n == 0 {
                return Ok(None);
            }
        }
    }
}
