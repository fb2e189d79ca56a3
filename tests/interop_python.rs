//! Interop with the official Python MCP SDK (PyPI `mcp`, installed by `make test` into a venv under
//! `target/`): its `ClientSession` connects to the gateway over each transport (Streamable HTTP on
//! `/mcp`, legacy SSE on `/sse`), initializes, pings, lists tools, calls tools (plain, structured,
//! isError, with progress, concurrently), gets prompts, lists and reads resources and templates, and
//! sees an unknown resource and an unknown tool refused. The script
//! (`tests/interop/client.py`) asserts each step.

mod util;

use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use util::{demo, Gateway};

/// The venv's python: `MCP_GATEWAY_TEST_PYTHON`, else the one `make test` creates.
fn python() -> PathBuf {
    let path = std::env::var_os("MCP_GATEWAY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/interop/venv/bin/python")
        });
    assert!(
        path.exists(),
        "{} is missing: run `make test` (it installs the Python MCP SDK into target/interop/venv)",
        path.display()
    );
    path
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// Runs the SDK client script over `transport` against a gateway with the demo server.
fn run_client(transport: &str, path: &str) {
    let gw = Gateway::start(json!({
        "servers": [demo("demo", &[])],
        "mapping": {"demo": {"prefix": "demo_"}},
    }));
    gw.wait_up();
    let output = Command::new(python())
        .arg(script("client.py"))
        .arg(transport)
        .arg(format!("http://{}{path}", gw.addr()))
        .output()
        .expect("run the Python SDK client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Python SDK client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let checks: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON line per check"))
        .collect();
    let names: Vec<&str> = checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "initialize",
            "ping",
            "tools/list",
            "tools/call echo",
            "tools/call add",
            "tools/call isError",
            "progress",
            "concurrent calls",
            "prompts",
            "resources",
            "unknown resource",
            "unknown tool"
        ]
    );
    assert_eq!(checks[6]["steps"], json!([1.0, 2.0, 3.0]));
}

#[test]
fn python_sdk_client_over_streamable_http() {
    run_client("streamable", "/mcp");
}

#[test]
fn python_sdk_client_over_legacy_sse() {
    run_client("sse", "/sse");
}

#[test]
fn python_sdk_client_posting_to_the_old_sse_url_gets_streamable_http() {
    // Clients configured with the legacy URL that try the new transport first must succeed.
    run_client("streamable", "/sse");
}
