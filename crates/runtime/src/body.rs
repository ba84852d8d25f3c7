//! A request body the edge has read whole, in memory or spilled to a file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

/// A request body that has fully arrived: small ones in memory, large ones in
/// an unlinked temporary file that closes (and so disappears) when the last
/// clone is dropped.
#[derive(Clone, Debug)]
pub enum RequestBody {
    /// The whole body in memory (empty for none).
    Memory(Bytes),
    /// The whole body in a file.
    File(SpilledBody),
}

impl RequestBody {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            RequestBody::Memory(bytes) => bytes.len() as u64,
            RequestBody::File(file) => file.len(),
        }
    }

    /// Whether there is no body at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Bytes> for RequestBody {
    fn from(bytes: Bytes) -> Self {
        RequestBody::Memory(bytes)
    }
}

/// A request body in a file, read back by position so that any number of
/// senders (a retry on another worker, a proxy) can read it without sharing a
/// file offset.
#[derive(Clone, Debug)]
pub struct SpilledBody {
    file: Arc<File>,
    len: u64,
}

impl SpilledBody {
    /// A body of `len` bytes at the start of `file`. The file should already
    /// be unlinked, so nothing is left behind whatever happens to the request.
    pub fn new(file: File, len: u64) -> Self {
        SpilledBody {
            file: Arc::new(file),
            len,
        }
    }

    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Up to `max` bytes from `offset` (empty at or past the end), read on
    /// the blocking pool so the caller's thread never waits for the disk.
    pub async fn read_chunk(&self, offset: u64, max: usize) -> io::Result<Bytes> {
        let size = self.len.saturating_sub(offset).min(max as u64) as usize;
        if size == 0 {
            return Ok(Bytes::new());
        }
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; size];
            file.read_exact_at(&mut buf, offset)?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[tokio::test]
    async fn a_spilled_body_reads_back_in_chunks_from_any_offset() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|n| n as u8).collect();
        file.write_all(&data).unwrap();
        let body = SpilledBody::new(file, data.len() as u64);
        let mut read = Vec::new();
        let mut offset = 0;
        loop {
            let chunk = body.read_chunk(offset, 4096).await.unwrap();
            if chunk.is_empty() {
                break;
            }
            assert!(chunk.len() <= 4096);
            offset += chunk.len() as u64;
            read.extend_from_slice(&chunk);
        }
        assert_eq!(read, data);
        assert_eq!(body.read_chunk(9_999, 4096).await.unwrap().len(), 1);
        assert!(body.read_chunk(20_000, 4096).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_spilled_body_shorter_than_it_claims_is_an_error_not_garbage() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"short").unwrap();
        let body = SpilledBody::new(file, 100);
        let error = body.read_chunk(0, 4096).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }
}
