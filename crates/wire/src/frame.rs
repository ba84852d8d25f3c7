use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::WireError;

/// The first two bytes of every frame.
pub const MAGIC: [u8; 2] = *b"CW";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 12;
/// The largest payload one frame may carry; bodies larger than this are split.
pub const MAX_PAYLOAD: u32 = 16 * 1024 * 1024;

/// The frame kinds, with the direction they travel and their payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// worker -> runtime, once after the app imported: `pid \0 python version \0 threads`,
    /// then optionally `\0 url prefix \0 directory` per static folder the app serves.
    Hello = 1,
    /// worker -> runtime, instead of Hello: the traceback text of the failed import.
    BootError = 2,
    /// runtime -> worker: `flags (u8)` then `key \0 value \0 key \0 value` (the WSGI environ).
    /// With [`crate::RequestFlags::HAS_BODY`], Body frames follow, then BodyEnd.
    Request = 3,
    /// runtime -> worker: a chunk of the request body.
    Body = 4,
    /// runtime -> worker: the request body is complete.
    BodyEnd = 5,
    /// worker -> runtime: `status line \0 name \0 value \0 name \0 value`.
    ResponseStart = 6,
    /// worker -> runtime: a chunk of the response body.
    ResponseBody = 7,
    /// worker -> runtime: `offset (u64) | length (u64, u64::MAX = to the end)`, with the
    /// open file descriptor passed alongside (SCM_RIGHTS); the runtime sends the file.
    ResponseFile = 8,
    /// worker -> runtime: the response is complete.
    ResponseEnd = 9,
    /// worker -> runtime: the app raised; the traceback text. Before ResponseStart it
    /// becomes a 500; after, the response is cut.
    AppError = 10,
    /// runtime -> worker: the client is gone; stop producing this response.
    Cancel = 11,
    /// runtime -> worker: are you alive? (empty)
    Ping = 12,
    /// worker -> runtime: the answer to Ping (empty).
    Pong = 13,
    /// runtime -> worker: finish what is in flight, then exit.
    Shutdown = 14,
}

impl Kind {
    fn from_u8(byte: u8) -> Result<Self, WireError> {
        Ok(match byte {
            1 => Kind::Hello,
            2 => Kind::BootError,
            3 => Kind::Request,
            4 => Kind::Body,
            5 => Kind::BodyEnd,
            6 => Kind::ResponseStart,
            7 => Kind::ResponseBody,
            8 => Kind::ResponseFile,
            9 => Kind::ResponseEnd,
            10 => Kind::AppError,
            11 => Kind::Cancel,
            12 => Kind::Ping,
            13 => Kind::Pong,
            14 => Kind::Shutdown,
            other => return Err(WireError::UnknownKind(other)),
        })
    }

    /// A short lowercase name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::BootError => "boot_error",
            Kind::Request => "request",
            Kind::Body => "body",
            Kind::BodyEnd => "body_end",
            Kind::ResponseStart => "response_start",
            Kind::ResponseBody => "response_body",
            Kind::ResponseFile => "response_file",
            Kind::ResponseEnd => "response_end",
            Kind::AppError => "app_error",
            Kind::Cancel => "cancel",
            Kind::Ping => "ping",
            Kind::Pong => "pong",
            Kind::Shutdown => "shutdown",
        }
    }
}

/// One decoded frame. The payload shares the read buffer's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload means.
    pub kind: Kind,
    /// Which request it belongs to (0 for frames about the worker itself).
    pub request_id: u32,
    /// The payload bytes.
    pub payload: Bytes,
}

/// Takes one whole frame off the front of `buf`.
///
/// `Ok(None)` means not enough bytes yet: read more and call again. On an
/// error the stream is unusable (the peer is broken) and should be closed.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    // SECURITY: every field is checked before the length is trusted.
    let magic = [buf[0], buf[1]];
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    if buf[2] != VERSION {
        return Err(WireError::BadVersion(buf[2]));
    }
    let kind = Kind::from_u8(buf[3])?;
    let request_id = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let len = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    if len > MAX_PAYLOAD {
        return Err(WireError::TooLarge(len));
    }
    let total = HEADER_LEN + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let payload = buf.split_to(len as usize).freeze();
    Ok(Some(Frame {
        kind,
        request_id,
        payload,
    }))
}

/// Appends a frame header announcing `len` payload bytes.
pub fn encode_header(kind: Kind, request_id: u32, len: u32, out: &mut BytesMut) {
    out.reserve(HEADER_LEN);
    out.put_slice(&MAGIC);
    out.put_u8(VERSION);
    out.put_u8(kind as u8);
    out.put_u32_le(request_id);
    out.put_u32_le(len);
}

/// Appends a whole frame. Payloads over [`MAX_PAYLOAD`] must be split by the caller.
pub fn encode_frame(kind: Kind, request_id: u32, payload: &[u8], out: &mut BytesMut) {
    debug_assert!(payload.len() <= MAX_PAYLOAD as usize);
    encode_header(kind, request_id, payload.len() as u32, out);
    out.put_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_through_encode_and_decode() {
        let mut buf = BytesMut::new();
        encode_frame(Kind::ResponseBody, 7, b"hello", &mut buf);
        encode_frame(Kind::ResponseEnd, 7, b"", &mut buf);
        let first = decode(&mut buf).unwrap().unwrap();
        assert_eq!(first.kind, Kind::ResponseBody);
        assert_eq!(first.request_id, 7);
        assert_eq!(&first.payload[..], b"hello");
        let second = decode(&mut buf).unwrap().unwrap();
        assert_eq!(second.kind, Kind::ResponseEnd);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_partial_frame_asks_for_more_bytes() {
        let mut whole = BytesMut::new();
        encode_frame(Kind::Body, 1, &[1, 2, 3, 4], &mut whole);
        for cut in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..cut]);
            assert_eq!(decode(&mut part), Ok(None), "cut at {cut}");
            assert_eq!(part.len(), cut, "nothing consumed at {cut}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        assert_eq!(decode(&mut buf), Err(WireError::BadMagic(*b"HT")));
        let mut buf = BytesMut::from(&[b'C', b'W', 9, 1, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(decode(&mut buf), Err(WireError::BadVersion(9)));
        let mut buf = BytesMut::from(&[b'C', b'W', 1, 99, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(decode(&mut buf), Err(WireError::UnknownKind(99)));
        let mut buf = BytesMut::from(&[b'C', b'W', 1, 7, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(decode(&mut buf), Err(WireError::TooLarge(u32::MAX)));
    }

    #[test]
    fn every_byte_sequence_decodes_without_panicking() {
        // A cheap exhaustive-ish sweep over short inputs; the fuzz target goes further.
        let mut seed = 0x2545_f491_u32;
        for _ in 0..20_000 {
            let len = (seed % 40) as usize;
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                bytes.push(seed as u8);
            }
            if bytes.len() >= 3 {
                bytes[0] = b'C';
                bytes[1] = b'W';
                bytes[2] = VERSION;
            }
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode(&mut buf) {}
        }
    }
}
