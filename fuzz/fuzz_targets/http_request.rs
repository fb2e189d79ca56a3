//! The HTTP request reader: never panics, and reads the same requests however the bytes are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_gateway::http::{Limits, Progress, RequestReader};

const LIMITS: Limits = Limits {
    max_head_bytes: 4096,
    max_body_bytes: 8192,
    max_headers: 32,
};

/// Every outcome of feeding `pieces` one after the other, as text (requests compared by Debug).
fn outcomes(pieces: &[&[u8]]) -> Vec<String> {
    let mut reader = RequestReader::new(LIMITS);
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match reader.advance(&mut buf) {
                Ok(Progress::Incomplete) => break,
                Ok(Progress::ContinueWanted) => {} // interim answers depend on timing: not compared
                Ok(Progress::Complete(request)) => seen.push(format!("{request:?}")),
                Err(error) => {
                    seen.push(format!("error {error:?}"));
                    return seen;
                }
            }
        }
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let at = usize::from(split) * data.len() / 256;
    // The reader parses when a line or the head ends (or the bytes doubled), so an unfinished
    // head may be refused sooner or later depending on the split; an end of head after the input
    // makes every split decide.
    let end: &[u8] = b"\r\n\r\n";
    let whole = outcomes(&[data, end]);
    let split = outcomes(&[&data[..at], &data[at..], end]);
    assert_eq!(whole, split, "split at {at}");
});
