//! Config loading: any text gives a config or a list of problems, never a panic; every problem
//! names where it is.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name == "SET").then(|| "value".to_string());
    if let Err(error) = mcp_gateway::config::parse_str(text, &env) {
        assert!(!error.to_string().is_empty());
    }
});
