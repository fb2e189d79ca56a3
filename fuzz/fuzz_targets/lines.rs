//! The stdio line framers — the bridge's (stdin of a client) and child-I/O's (stdout of a server) —
//! never panic, stay within their limits, and frame the same lines however the stream is split;
//! reading the id of an oversized line never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_gateway::bridge::lines::{Line, Lines};
use mcp_gateway::downstream::child_io::lines::{leading_id, LineBuf, Piece};

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

/// What child-I/O's framer makes of the pieces: lines, and oversized lines' ids.
fn frame_child(pieces: &[&[u8]]) -> Vec<Result<Vec<u8>, Option<u64>>> {
    let mut buf = LineBuf::default();
    let mut out = Vec::new();
    for piece in pieces {
        buf.feed(piece, MAX, |p| match p {
            Piece::Line(line) => {
                assert!(line.len() <= MAX);
                out.push(Ok(line.to_vec()))
            }
            Piece::TooLong { head } => out.push(Err(leading_id(&head))),
        });
    }
    if let Some(rest) = buf.rest() {
        out.push(Ok(rest));
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
    let whole = frame_child(&[data]);
    let split = frame_child(&[&data[..at], &data[at..]]);
    // An oversized line's head (and so its id) may be cut where the split fell: compare the lines
    // and how many were too long.
    let lines = |v: &[Result<Vec<u8>, Option<u64>>]| -> (Vec<Vec<u8>>, usize) {
        (
            v.iter().filter_map(|r| r.as_ref().ok().cloned()).collect(),
            v.iter().filter(|r| r.is_err()).count(),
        )
    };
    assert_eq!(lines(&whole), lines(&split), "child-io split at {at}");
});
