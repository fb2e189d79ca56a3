//! The chunked-body decoder: never panics, stays within its budgets, and decodes the same body
//! however the bytes are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_gateway::http::ChunkedDecoder;

const MAX_BODY: usize = 4096;
const MAX_META: usize = 512;

fn decode(pieces: &[&[u8]]) -> Result<(Vec<u8>, bool), String> {
    let mut decoder = ChunkedDecoder::new(MAX_BODY, MAX_META);
    let mut body = Vec::new();
    for piece in pieces {
        let used = decoder
            .decode(piece, &mut body)
            .map_err(|e| format!("{e:?}"))?;
        assert!(used <= piece.len());
        if decoder.is_done() {
            break;
        }
    }
    assert!(body.len() <= MAX_BODY);
    Ok((body, decoder.is_done()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let at = usize::from(split) * data.len() / 256;
    assert_eq!(
        decode(&[data]),
        decode(&[&data[..at], &data[at..]]),
        "split at {at}"
    );
});
