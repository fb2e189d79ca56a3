//! Interop with real third-party software, installed by `make test` under `target/interop/`:
//!
//! - the official Python MCP SDK (PyPI `mcp`): its `ClientSession` connects to the gateway over each
//!   transport (Streamable HTTP on `/mcp`, legacy SSE on `/sse`), initializes, pings, lists tools,
//!   calls tools (plain, structured, isError, with progress, concurrently), gets prompts, lists and
//!   reads resources and templates, and sees an unknown resource and tool refused
//!   (`tests/interop/client.py`);
//! - the official reference server `@modelcontextprotocol/server-everything` (npm) as a downstream
//!   server behind the gateway, driven end to end by the same SDK client: tools, progress, prompts,
//!   completion, resources and templates, logging, and sampling requested by the server during a
//!   call and answered by the client (`tests/interop/everything.py`).

mod util;

use serde_json::json;
use util::{demo, installed, Gateway};

/// Runs an SDK client script over `transport`; returns its checks (one JSON object per line).
fn run_script(gw: &Gateway, name: &str, transport: &str, path: &str) -> Vec<serde_json::Value> {
    let url = format!("http://{}{path}", gw.addr());
    util::run_interop_script(gw, name, &[transport, &url])
}

fn names(checks: &[serde_json::Value]) -> Vec<&str> {
    checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect()
}

/// Runs the SDK client script over `transport` against a gateway with the demo server.
fn run_client(transport: &str, path: &str) {
    let gw = Gateway::start(json!({
        "servers": [demo("demo", &[])],
        "mapping": {"demo": {"prefix": "demo_"}},
    }));
    gw.wait_up();
    let checks = run_script(&gw, "client.py", transport, path);
    let names = names(&checks);
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

/// server-everything behind the gateway, driven by the SDK over `transport`.
fn run_everything(transport: &str, path: &str) {
    let server = installed("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let gw = Gateway::start(json!({
        "servers": [{"name": "ev", "command": ["node", server, "stdio"]}],
        "mapping": {"ev": {"prefix": "ev_"}},
    }));
    gw.wait_up();
    let checks = run_script(&gw, "everything.py", transport, path);
    assert_eq!(
        names(&checks),
        [
            "initialize",
            "tools/list",
            "tools/call",
            "progress",
            "prompts/get",
            "completion",
            "resources",
            "logging",
            "sampling"
        ]
    );
}

#[test]
fn server_everything_behind_the_gateway_over_streamable_http() {
    run_everything("streamable", "/mcp");
}

#[test]
fn server_everything_behind_the_gateway_over_legacy_sse() {
    run_everything("sse", "/sse");
}
