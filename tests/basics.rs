//! The gateway's everyday paths: REST listing and calls, health, and a legacy SSE session.

mod util;

use serde_json::json;
use std::time::Duration;
use util::{demo, Gateway};

fn one_demo() -> serde_json::Value {
    json!({
        "servers": [demo("demo", &[])],
        "mapping": {"demo": {"prefix": "demo_"}},
    })
}

#[test]
fn rest_lists_and_calls_tools() {
    let gw = Gateway::start(one_demo());
    gw.wait_up();
    let tools = gw.get("/tools").json();
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"demo_echo"), "{names:?}");
    let echo =
        &tools["tools"].as_array().unwrap()[names.iter().position(|n| *n == "demo_echo").unwrap()];
    assert_eq!(echo["server"], "demo");
    assert_eq!(echo["inputSchema"]["required"], json!(["text"]));

    let response = gw.call("demo_echo", json!({"text": "hello"}));
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["result"]["content"][0]["text"], "hello");

    let failed = gw.call("demo_fail", json!({"message": "nope"}));
    assert_eq!(failed.status, 200, "an isError result is still a result");
    assert_eq!(failed.json()["result"]["isError"], true);
}

#[test]
fn sse_session_initializes_lists_and_calls() {
    let gw = Gateway::start(one_demo());
    gw.wait_up();
    let mut session = gw.sse();
    assert!(session.endpoint.starts_with("/messages?sessionId="));
    let init = session.initialize();
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-gateway");
    let list = session.request("tools/list", json!({}));
    assert!(list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "demo_add"));
    let sum = session.request(
        "tools/call",
        json!({"name": "demo_add", "arguments": {"a": 2, "b": 40}}),
    );
    assert_eq!(sum["result"]["structuredContent"]["sum"], 42);
    assert_eq!(gw.health()["sessions"], 1);
    session.close();
    util::wait_for(
        Duration::from_secs(5),
        "the session to be cleaned up",
        || (gw.health()["sessions"] == 0).then_some(()),
    );
}

#[test]
fn streamable_http_session_initializes_lists_calls_and_streams_progress() {
    let gw = Gateway::start(one_demo());
    gw.wait_up();
    let mut session = gw.mcp();
    // A signed id (restart-proof: tests/restart.rs), in visible ASCII as the spec requires.
    assert!(
        session.session_id.starts_with("g1."),
        "{}",
        session.session_id
    );
    assert!(session
        .session_id
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b)));
    let list = session.request("tools/list", json!({}));
    assert_eq!(list.http.header("content-type"), Some("application/json"));
    assert!(list.response()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "demo_echo"));
    let progress = session.request(
        "tools/call",
        json!({"name": "demo_progress", "arguments": {"steps": 2, "intervalMs": 1},
               "_meta": {"progressToken": "p"}}),
    );
    assert_eq!(
        progress.http.header("content-type"),
        Some("text/event-stream")
    );
    let methods: Vec<&str> = progress
        .messages
        .iter()
        .map(|m| m["method"].as_str().unwrap_or("response"))
        .collect();
    assert_eq!(
        methods,
        [
            "notifications/progress",
            "notifications/progress",
            "response"
        ]
    );
    assert_eq!(progress.messages[0]["params"]["progressToken"], "p");
    assert_eq!(
        progress.response()["result"]["content"][0]["text"],
        "done 2 steps"
    );
    assert_eq!(session.delete().status, 200);
    assert_eq!(session.request("ping", json!({})).http.status, 404);
}
