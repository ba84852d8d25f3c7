use bytes::{BufMut, BytesMut};

use crate::{encode_header, Kind, WireError, HEADER_LEN};

/// Flags in the first byte of a Request payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFlags(pub u8);

impl RequestFlags {
    /// Body frames follow this request, then BodyEnd.
    pub const HAS_BODY: RequestFlags = RequestFlags(1);
    /// No flags.
    pub const NONE: RequestFlags = RequestFlags(0);
}

/// Appends a Request frame carrying `environ` (already decoded CGI/WSGI variables).
///
/// Keys and values are bytes that the shim turns into latin-1 strings, as
/// PEP 3333 prescribes. A NUL in any of them is refused: the edge answers 400.
pub fn encode_request<'a, I>(
    request_id: u32,
    flags: RequestFlags,
    environ: I,
    out: &mut BytesMut,
) -> Result<(), WireError>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let start = out.len();
    // The length is patched in once the payload is written.
    encode_header(Kind::Request, request_id, 0, out);
    out.put_u8(flags.0);
    let mut first = true;
    for (key, value) in environ {
        // SECURITY: NUL separates fields; one inside a value would forge a variable.
        if key.contains(&0) {
            out.truncate(start);
            return Err(WireError::Nul("environ key"));
        }
        if value.contains(&0) {
            out.truncate(start);
            return Err(WireError::Nul("environ value"));
        }
        if !first {
            out.put_u8(0);
        }
        first = false;
        out.put_slice(key);
        out.put_u8(0);
        out.put_slice(value);
    }
    let len = (out.len() - start - HEADER_LEN) as u32;
    out[start + 8..start + 12].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode;

    #[test]
    fn environ_is_nul_separated_after_the_flags() {
        let mut buf = BytesMut::new();
        let env: [(&[u8], &[u8]); 2] = [(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/")];
        encode_request(3, RequestFlags::HAS_BODY, env, &mut buf).unwrap();
        let frame = decode(&mut buf).unwrap().unwrap();
        assert_eq!(frame.kind, Kind::Request);
        assert_eq!(frame.request_id, 3);
        assert_eq!(&frame.payload[..], b"\x01REQUEST_METHOD\0GET\0PATH_INFO\0/");
    }

    #[test]
    fn a_nul_in_a_value_is_refused_and_nothing_is_written() {
        let mut buf = BytesMut::from(&b"keep"[..]);
        let env: [(&[u8], &[u8]); 1] = [(b"PATH_INFO", b"/a\0b")];
        let err = encode_request(1, RequestFlags::NONE, env, &mut buf).unwrap_err();
        assert_eq!(err, WireError::Nul("environ value"));
        assert_eq!(&buf[..], b"keep");
    }
}
