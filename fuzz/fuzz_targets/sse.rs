//! The SSE parser: never panics, and yields the same events however the stream is split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_gateway::http::SseParser;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let at = usize::from(split) * data.len() / 256;
    let whole = SseParser::new().feed(data);
    let mut parser = SseParser::new();
    let mut split = parser.feed(&data[..at]);
    split.extend(parser.feed(&data[at..]));
    assert_eq!(whole, split, "split at {at}");
});
