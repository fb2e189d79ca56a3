//! The stdio line framer: never panics, stays within its limit, and frames the same lines however
//! the stream is split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_gateway::bridge::lines::{Line, Lines};

const MAX: usize = 256;

fn frame(pieces: &[&[u8]]) -> Vec<Line> {
    let mut lines = Lines::new(MAX);
    let mut out: Vec<Line> = pieces.iter().flat_map(|p| lines.feed(p)).collect();
    out.extend(lines.finish());
    for line in &out {
        if let Line::Message(bytes) = line {
            assert!(bytes.len() <= MAX);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let at = usize::from(split) * data.len() / 256;
    assert_eq!(
        frame(&[data]),
        frame(&[&data[..at], &data[at..]]),
        "split at {at}"
    );
});
