//! JSON-RPC classification of a client's message: never panics, and an error always says why.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(invalid) = mcp_gateway::rpc::classify(data) {
        assert!(!invalid.message.is_empty());
    }
});
