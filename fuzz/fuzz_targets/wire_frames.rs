//! Bytes from a worker, as the runtime reads them: split into reads at
//! arbitrary points, decoded frame by frame, each payload handed to the parser
//! its kind uses. No input may panic; every frame decoded must re-encode to
//! exactly the bytes it came from.
#![no_main]

use bytes::BytesMut;
use capstan_wire::{
    decode, encode_frame, FileRef, Hello, Kind, ResponseStart, HEADER_LEN, MAX_PAYLOAD,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    // Reads of 1..=256 bytes, as a socket may deliver them.
    let step = usize::from(step) + 1;
    let mut buf = BytesMut::new();
    let mut consumed = 0;
    for piece in stream.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match decode(&mut buf) {
                Ok(Some(frame)) => {
                    let len = before - buf.len();
                    assert_eq!(len, HEADER_LEN + frame.payload.len());
                    assert!(frame.payload.len() <= MAX_PAYLOAD as usize);
                    let mut again = BytesMut::new();
                    encode_frame(frame.kind, frame.request_id, &frame.payload, &mut again);
                    assert_eq!(&again[..], &stream[consumed..consumed + len]);
                    consumed += len;
                    match frame.kind {
                        Kind::ResponseStart => {
                            let _ = ResponseStart::parse(&frame.payload);
                        }
                        Kind::ResponseFile => {
                            let _ = FileRef::parse(&frame.payload);
                        }
                        Kind::Hello => {
                            let _ = Hello::parse(&frame.payload);
                        }
                        _ => {}
                    }
                }
                Ok(None) => break,
                // A broken stream is closed by the runtime: nothing more is read.
                Err(_) => return,
            }
        }
    }
});
