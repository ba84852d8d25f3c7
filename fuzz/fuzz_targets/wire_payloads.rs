//! The payload parsers for what a worker sends: ResponseStart, Hello and
//! FileRef. No input may panic, and whatever parses must describe its input
//! exactly (it re-encodes to the same bytes, or to a canonical form that
//! parses back to the same value).
#![no_main]

use bytes::Bytes;
use capstan_wire::{FileRef, Hello, ResponseStart};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let payload = Bytes::copy_from_slice(payload);
            if let Ok(start) = ResponseStart::parse(&payload) {
                assert!((100..=999).contains(&start.status));
                // The status line, then each name and value, NUL-separated: nothing
                // dropped, nothing invented.
                let status_line = payload.split(|&b| b == 0).next().unwrap();
                assert_eq!(&status_line[..3], start.status.to_string().as_bytes());
                let mut rebuilt = status_line.to_vec();
                for (name, value) in &start.headers {
                    assert!(!name.contains(&0) && !value.contains(&0));
                    rebuilt.push(0);
                    rebuilt.extend_from_slice(name);
                    rebuilt.push(0);
                    rebuilt.extend_from_slice(value);
                }
                assert_eq!(rebuilt, &payload[..]);
            }
        }
        1 => {
            if let Ok(hello) = Hello::parse(payload) {
                assert!(hello.threads >= 1);
                assert!(!hello.python.contains('\0'));
                assert_eq!(Hello::parse(&hello.encode()).as_ref(), Ok(&hello));
            }
        }
        _ => {
            if let Ok(file) = FileRef::parse(payload) {
                assert_eq!(&file.encode()[..], payload);
                assert_eq!(FileRef::parse(&file.encode()), Ok(file));
            }
        }
    }
});
