//! Who shares a server process (`share`), end to end with the official `server-memory` (npm), whose
//! knowledge graph lives in its process and its `MEMORY_FILE_PATH` (given a private directory per
//! process with `${MCP_GATEWAY_PROCESS_DIR}`), driven by two official Python SDK sessions at once
//! (`tests/interop/share_client.py`) over both MCP transports.

mod util;

use serde_json::{json, Value};
use std::time::Duration;
use util::{installed, wait_for, Gateway};

fn memory_server(share: &str) -> Value {
    let server = installed("node_modules/@modelcontextprotocol/server-memory/dist/index.js");
    json!({
        "name": "memory",
        "command": ["node", server],
        "env": {"MEMORY_FILE_PATH": "${MCP_GATEWAY_PROCESS_DIR}/memory.jsonl"},
        "share": share,
        "minConnections": 0,
        "idleTimeout": 1000,
    })
}

/// What each session saw: label → entity names.
fn run_sessions(gw: &Gateway, transport: &str) -> Value {
    let path = if transport == "sse" { "/sse" } else { "/mcp" };
    let url = format!("http://{}{path}", gw.addr());
    let mut seen = serde_json::Map::new();
    for check in util::run_interop_script(gw, "share_client.py", &[&url, transport]) {
        seen.insert(
            check["label"].as_str().unwrap().into(),
            check["seen"].clone(),
        );
    }
    Value::Object(seen)
}

fn memory_pool(gw: &Gateway) -> Value {
    gw.server_health("memory")
}

fn wait_no_processes(gw: &Gateway) {
    wait_for(
        Duration::from_secs(15),
        "every memory process stopped",
        || gw.children().is_empty().then_some(()),
    );
}

#[test]
fn with_share_session_each_client_sees_only_its_own_data_on_both_transports() {
    let gw = Gateway::start(json!({"servers": [memory_server("session")]}));
    gw.wait_up();
    for transport in ["streamable", "sse"] {
        let spawns_before = memory_pool(&gw)["spawns"].as_u64().unwrap();
        let seen = run_sessions(&gw, transport);
        assert_eq!(
            seen["A"],
            json!(["alice_secret_project"]),
            "{transport}: {seen}"
        );
        assert_eq!(seen["B"], json!(["bob_project"]), "{transport}: {seen}");
        assert_eq!(
            seen["later"],
            json!([]),
            "{transport}: a new session starts empty"
        );
        let spawns = memory_pool(&gw)["spawns"].as_u64().unwrap() - spawns_before;
        // A and B ran at once on processes of their own ("later" may get the warm spare).
        assert!(
            spawns >= 2,
            "{transport}: a process per session, {spawns} started"
        );
        // Every session ended: its process is stopped and its private directory removed.
        wait_no_processes(&gw);
    }
    let prefix = format!("mcp-gateway-{}-process-", gw.pid());
    wait_for(
        Duration::from_secs(10),
        "process directories removed",
        || {
            let left = std::fs::read_dir(std::env::temp_dir())
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix));
            (!left).then_some(())
        },
    );
}

#[test]
fn with_share_shared_every_client_sees_the_same_graph() {
    // The default, shown for what it is: one process, one graph, for every client.
    let mut server = memory_server("shared");
    server["minConnections"] = json!(1);
    let gw = Gateway::start(json!({"servers": [server]}));
    gw.wait_up();
    let seen = run_sessions(&gw, "streamable");
    let both = json!(["alice_secret_project", "bob_project"]);
    assert_eq!(seen["A"], both, "{seen}");
    assert_eq!(seen["B"], both, "{seen}");
    assert_eq!(seen["later"], both, "{seen}");
    assert_eq!(memory_pool(&gw)["spawns"], 1);
}

#[test]
fn with_share_call_every_call_gets_a_fresh_process_and_nothing_is_left() {
    let gw = Gateway::start(json!({"servers": [memory_server("call")]}));
    gw.wait_up();
    let seen = run_sessions(&gw, "streamable");
    // Each call ran in a process of its own: what one call created, the next never sees.
    assert_eq!(seen["A"], json!([]), "{seen}");
    assert_eq!(seen["B"], json!([]), "{seen}");
    let health = memory_pool(&gw);
    // Five calls (two creates, three reads), each in a fresh process (the first may be the one
    // that listed the tools, if it was not reaped yet).
    assert!(health["spawns"].as_u64().unwrap() >= 5, "{health}");
    wait_no_processes(&gw);
}
