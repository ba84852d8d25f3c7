use bytes::Bytes;

use crate::WireError;

fn malformed(kind: &'static str, reason: &'static str) -> WireError {
    WireError::Malformed { kind, reason }
}

/// The status and headers a worker's app gave to `start_response`.
///
/// Header names and values are only split here; the edge validates them as
/// HTTP before they reach a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseStart {
    /// The numeric status, 100..=999.
    pub status: u16,
    /// The header (name, value) pairs, in the app's order.
    pub headers: Vec<(Bytes, Bytes)>,
}

impl ResponseStart {
    /// Parses `status line \0 name \0 value \0 ...`, e.g. `200 OK\0Content-Type\0text/plain`.
    pub fn parse(payload: &Bytes) -> Result<Self, WireError> {
        const KIND: &str = "response_start";
        let mut fields = payload.split(|&b| b == 0);
        let status_line = fields.next().ok_or(malformed(KIND, "empty"))?;
        if status_line.len() < 3 || (status_line.len() > 3 && status_line[3] != b' ') {
            return Err(malformed(KIND, "status line is not `NNN reason`"));
        }
        let digits = &status_line[..3];
        if !digits.iter().all(u8::is_ascii_digit) || digits[0] == b'0' {
            return Err(malformed(KIND, "status code is not three digits"));
        }
        let status = digits
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
        let mut headers = Vec::new();
        let mut offset = status_line.len() + 1;
        while let Some(name) = fields.next() {
            let value = fields
                .next()
                .ok_or(malformed(KIND, "a header name without a value"))?;
            let name_at = offset;
            let value_at = name_at + name.len() + 1;
            offset = value_at + value.len() + 1;
            headers.push((
                payload.slice(name_at..name_at + name.len()),
                payload.slice(value_at..value_at + value.len()),
            ));
        }
        Ok(ResponseStart { status, headers })
    }
}

/// Which part of a passed file descriptor to send (wsgi.file_wrapper).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRef {
    /// Where to start reading.
    pub offset: u64,
    /// How many bytes to send; `None` = to the end of the file.
    pub length: Option<u64>,
}

impl FileRef {
    /// Parses `offset (u64 LE) | length (u64 LE, u64::MAX = to the end)`.
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        let bytes: &[u8; 16] = payload
            .try_into()
            .map_err(|_| malformed("response_file", "payload is not 16 bytes"))?;
        let offset = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        let length = u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes"));
        Ok(FileRef {
            offset,
            length: (length != u64::MAX).then_some(length),
        })
    }

    /// The payload for this reference.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..].copy_from_slice(&self.length.unwrap_or(u64::MAX).to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_headers_are_split_on_nul() {
        let payload = Bytes::from_static(b"404 Not Found\0Content-Type\0text/plain\0X-A\0");
        let start = ResponseStart::parse(&payload).unwrap();
        assert_eq!(start.status, 404);
        assert_eq!(start.headers.len(), 2);
        assert_eq!(&start.headers[0].0[..], b"Content-Type");
        assert_eq!(&start.headers[0].1[..], b"text/plain");
        assert_eq!(&start.headers[1].0[..], b"X-A");
        assert_eq!(&start.headers[1].1[..], b"");
    }

    #[test]
    fn a_bare_status_code_is_accepted() {
        let start = ResponseStart::parse(&Bytes::from_static(b"204")).unwrap();
        assert_eq!(start.status, 204);
        assert!(start.headers.is_empty());
    }

    #[test]
    fn bad_status_lines_and_dangling_names_are_malformed() {
        for bad in [
            &b""[..],
            b"20",
            b"abc OK",
            b"099 Odd",
            b"200OK",
            b"200 OK\0Content-Type",
        ] {
            assert!(
                ResponseStart::parse(&Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_file_ref_round_trips() {
        for file in [
            FileRef {
                offset: 0,
                length: None,
            },
            FileRef {
                offset: 10,
                length: Some(99),
            },
        ] {
            assert_eq!(FileRef::parse(&file.encode()), Ok(file));
        }
        assert!(FileRef::parse(b"short").is_err());
    }
}
