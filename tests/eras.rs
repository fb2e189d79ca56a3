//! Both protocol eras, end to end against the real binary.
//!
//! Upstream: the official Python SDK 2.3 as a 2026-07-28 client (its default once the gateway
//! answers `server/discover`) and pinned to the 2025 handshake, in front of the demo server and
//! server-everything over stdio; raw HTTP for what the SDK never sends: the whole error table of
//! the stateless era (status, code, the request's id echoed, in the 2025 era too),
//! `Mcp-Method`/`Mcp-Name` mismatches, `resultType` and the caching hints of merged lists, progress
//! and log messages on a call's stream, cancellation by closing it (the server's stderr shows the
//! `notifications/cancelled`), `subscriptions/listen` receiving the `list_changed` a child caused,
//! a call held while its server starts.
//!
//! Downstream: the `protocol` key — a 2026-only demo server probed and spoken to statelessly for
//! clients of both eras (and its `list_changed` through the listen the gateway holds on it), a
//! dual-era one pinned either way, a 2025 one falling back to `initialize`, the SDK's own dual-era
//! stdio server and its Streamable HTTP server as a remote in either era, a remote's 400 with a
//! JSON-RPC error never taken for "no Streamable HTTP", and a 2026 server's `input_required`
//! round trip relayed to a 2026 client (raw, and the SDK's own retry loop).

mod util;

use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use util::{demo, installed, mcp_messages, wait_for, Gateway, HttpResponse};

const ANSWER: Duration = Duration::from_secs(10);
const MODERN: &str = "2026-07-28";

fn demo_gateway(flags: &[&str]) -> Gateway {
    let gw = Gateway::start(json!({
        "servers": [demo("demo", flags)],
        "mapping": {"demo": {"prefix": "demo_"}},
    }));
    gw.wait_up();
    gw
}

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "eras-test", "version": "1"},
    })
}

/// A stateless request body: `params` with the required `_meta` added.
fn request(id: Value, method: &str, mut params: Value) -> Value {
    params["_meta"] = meta();
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// `POST /mcp` with `headers` (plus Accept for both kinds) and `body`.
fn post(gw: &Gateway, headers: &[(&str, &str)], body: &Value) -> HttpResponse {
    let mut all = vec![
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
    ];
    all.extend_from_slice(headers);
    gw.request("POST", "/mcp", &all, body.to_string().as_bytes())
}

/// A stateless request with the headers a conforming client sends.
fn call(gw: &Gateway, id: Value, method: &str, params: Value) -> HttpResponse {
    let name = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut headers = vec![("MCP-Protocol-Version", MODERN), ("Mcp-Method", method)];
    if let Some(name) = name.as_deref() {
        headers.push(("Mcp-Name", name));
    }
    post(gw, &headers, &request(id, method, params))
}

/// The one JSON-RPC answer of a response (the last message of an SSE answer).
fn answer(http: &HttpResponse) -> Value {
    mcp_messages(http)
        .pop()
        .unwrap_or_else(|| panic!("no message in {} {}", http.status, http.text()))
}

/// Asserts an error answer: HTTP status, JSON-RPC code, and the request's id echoed.
fn assert_error(http: &HttpResponse, status: u16, code: i64, id: &Value) -> Value {
    let body = answer(http);
    assert_eq!(http.status, status, "{}", http.text());
    assert_eq!(body["error"]["code"], code, "{}", http.text());
    assert_eq!(&body["id"], id, "the id is echoed: {}", http.text());
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "a human message: {}",
        http.text()
    );
    body
}

fn sdk(gw: &Gateway, mode: &str, target: &str) -> Vec<Value> {
    let url = format!("http://{}/mcp", gw.addr());
    util::run_interop_script(gw, "eras_client.py", &[mode, target, &url])
}

/// The same through `mcp-gateway bridge` (the SDK launches it as a stdio server).
fn sdk_bridged(gw: &Gateway, mode: &str, target: &str) -> Vec<Value> {
    let url = format!("http://{}/mcp", gw.addr());
    let bridge = util::gateway_binary();
    util::run_interop_script(gw, "eras_client.py", &[mode, target, &url, bridge])
}

/// What eras_client.py checks on any server, in order.
const CHECKS: [&str; 6] = [
    "connect",
    "tools/list",
    "tools/call",
    "progress",
    "resources/read",
    "prompts",
];

/// What it checks on the demo server, which also has an unknown tool refused; a 2026-07-28
/// client there also holds a listen.
fn demo_checks(listen: bool) -> Vec<&'static str> {
    let mut checks = CHECKS.to_vec();
    checks.push("unknown tool");
    if listen {
        checks.push("listen");
    }
    checks
}

fn names(checks: &[Value]) -> Vec<&str> {
    checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The official SDK in either era
// ---------------------------------------------------------------------------------------------

#[test]
fn python_sdk_speaks_2026_07_28_by_default() {
    let gw = demo_gateway(&[]);
    let checks = sdk(&gw, "auto", "demo");
    assert_eq!(names(&checks), demo_checks(true));
    assert_eq!(checks[0]["protocolVersion"], MODERN);
    assert_eq!(checks[3]["steps"], json!([1.0, 2.0, 3.0]));
    assert_eq!(
        checks[4]["unknownCode"], -32602,
        "2026-07-28: unknown resource is -32602"
    );
    assert_eq!(checks[6]["code"], -32602);
    assert_eq!(checks[7]["event"], "ToolsListChanged");
    // No session was opened for any of it (the listen stream's ends with it).
    assert!(
        !gw.logs().contains("opened (Streamable HTTP)"),
        "2026-07-28 opens no session: {}",
        gw.logs()
    );
    wait_for(ANSWER, "no session left", || {
        (gw.health()["sessions"] == 0).then_some(())
    });
}

#[test]
fn python_sdk_pinned_to_2025_keeps_its_session() {
    let gw = demo_gateway(&[]);
    let checks = sdk(&gw, "legacy", "demo");
    assert_eq!(names(&checks), demo_checks(false));
    assert_eq!(checks[0]["protocolVersion"], "2025-11-25");
    assert_eq!(
        checks[4]["unknownCode"], -32002,
        "2025: resource not found stays -32002"
    );
    // One session, opened by its initialize and used for everything after.
    assert_eq!(
        gw.logs().matches("opened (Streamable HTTP)").count(),
        1,
        "{}",
        gw.logs()
    );
}

#[test]
fn the_bridge_relays_either_era_for_a_stdio_client() {
    let gw = demo_gateway(&[]);
    let modern = sdk_bridged(&gw, "auto", "demo");
    assert_eq!(names(&modern), demo_checks(true));
    assert_eq!(modern[0]["protocolVersion"], MODERN);
    assert_eq!(modern[4]["unknownCode"], -32602);
    let legacy = sdk_bridged(&gw, "legacy", "demo");
    assert_eq!(names(&legacy).len(), 7, "{legacy:?}");
    assert_eq!(legacy[0]["protocolVersion"], "2025-11-25");
    assert_eq!(legacy[4]["unknownCode"], -32002);

    // The gateway's 2026-07-28 errors come through whole, `data` included.
    use std::io::{BufRead, Write};
    let url = format!("http://{}/mcp", gw.addr());
    let mut bridge = std::process::Command::new(util::gateway_binary())
        .args(["bridge", &url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the bridge");
    let mut unsupported = request(json!("v"), "tools/list", json!({}));
    unsupported["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let stdin = bridge.stdin.as_mut().unwrap();
    writeln!(stdin, "{unsupported}").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(bridge.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let answer: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(answer["id"], "v", "{answer}");
    assert_eq!(answer["error"]["code"], -32022, "{answer}");
    assert_eq!(
        answer["error"]["data"]["requested"], "2099-01-01",
        "{answer}"
    );
    assert!(
        answer["error"]["data"]["supported"]
            .as_array()
            .is_some_and(|v| v.contains(&json!(MODERN))),
        "{answer}"
    );
    drop(bridge.stdin.take());
    let _ = bridge.wait();
}

fn everything_gateway() -> Gateway {
    let server = installed("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let gw = Gateway::start(json!({
        "servers": [{"name": "ev", "command": ["node", server, "stdio"]}],
        "mapping": {"ev": {"prefix": "ev_"}},
    }));
    gw.wait_up();
    gw
}

#[test]
fn python_sdk_in_both_eras_in_front_of_server_everything() {
    let gw = everything_gateway();
    let expected = CHECKS;
    let modern = sdk(&gw, "auto", "everything");
    assert_eq!(names(&modern), expected);
    assert_eq!(modern[0]["protocolVersion"], MODERN);
    let legacy = sdk(&gw, "legacy", "everything");
    assert_eq!(names(&legacy), expected);
    assert_eq!(legacy[0]["protocolVersion"], "2025-11-25");
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP: discovery, results, the error table
// ---------------------------------------------------------------------------------------------

#[test]
fn discover_names_the_versions_capabilities_and_server() {
    let gw = demo_gateway(&[]);
    let http = call(&gw, json!("d-1"), "server/discover", json!({}));
    assert_eq!(http.status, 200, "{}", http.text());
    assert!(http.header("mcp-session-id").is_none(), "no session");
    let result = &answer(&http)["result"];
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["supportedVersions"][0], MODERN);
    assert!(result["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("2025-11-25")));
    assert!(result["capabilities"]["tools"].is_object(), "{result}");
    assert!(result["capabilities"]["prompts"].is_object(), "{result}");
    assert!(result["capabilities"]["resources"].is_object(), "{result}");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcp-gateway"
    );
    assert!(result["ttlMs"].is_u64() && result["cacheScope"].is_string());
    // The old SSE URL, POSTed to, is the same endpoint.
    let body = request(json!("d-2"), "server/discover", json!({}));
    let http = gw.request(
        "POST",
        "/sse",
        &[
            ("Accept", "application/json, text/event-stream"),
            ("Content-Type", "application/json"),
            ("MCP-Protocol-Version", MODERN),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(
        answer(&http)["result"]["supportedVersions"][0],
        MODERN,
        "{}",
        http.text()
    );
}

#[test]
fn every_result_has_a_result_type_and_reads_carry_caching_hints() {
    let gw = demo_gateway(&[]);
    let echo = call(
        &gw,
        json!(1),
        "tools/call",
        json!({"name": "demo_echo", "arguments": {"text": "hi"}}),
    );
    let result = &answer(&echo)["result"];
    assert_eq!(result["resultType"], "complete", "{}", echo.text());
    assert_eq!(result["content"][0]["text"], "hi");
    let read = call(
        &gw,
        json!(2),
        "resources/read",
        json!({"uri": "demo://readme"}),
    );
    let result = &answer(&read)["result"];
    assert_eq!(result["resultType"], "complete", "{}", read.text());
    assert_eq!(result["ttlMs"], 0);
    assert_eq!(result["cacheScope"], "private");
    let prompt = call(
        &gw,
        json!(3),
        "prompts/get",
        json!({"name": "demo_greet", "arguments": {"name": "bob"}}),
    );
    assert_eq!(answer(&prompt)["result"]["resultType"], "complete");
    for method in [
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
    ] {
        let list = call(&gw, json!(method), method, json!({}));
        let result = &answer(&list)["result"];
        assert_eq!(
            result["resultType"],
            "complete",
            "{method}: {}",
            list.text()
        );
        assert!(result["ttlMs"].is_u64(), "{method}: {}", list.text());
        assert!(
            result["cacheScope"].is_string(),
            "{method}: {}",
            list.text()
        );
    }
}

#[test]
fn merged_lists_take_the_smallest_ttl_and_private_if_any_part_is() {
    let gw = Gateway::start(json!({
        "servers": [
            demo("a", &["--cache-ttl", "60000", "--tools", "echo"]),
            demo("b", &["--cache-ttl", "5000", "--cache-private", "--tools", "add"]),
        ],
        "mapping": {"a": {"prefix": "a_"}, "b": {"prefix": "b_"}},
    }));
    gw.wait_up();
    wait_for(ANSWER, "both servers listed", || {
        let tools = gw.get("/tools").json();
        (tools["tools"].as_array().map(Vec::len) == Some(2)).then_some(())
    });
    let list = call(&gw, json!(1), "tools/list", json!({}));
    let result = &answer(&list)["result"];
    assert_eq!(result["ttlMs"], 5000, "{}", list.text());
    assert_eq!(result["cacheScope"], "private", "{}", list.text());
    assert_eq!(result["tools"].as_array().unwrap().len(), 2);
    // The 2025 era's lists are what they were.
    let mut session = gw.mcp();
    let legacy = session.request("tools/list", json!({}));
    assert!(
        legacy.response()["result"].get("ttlMs").is_none(),
        "{:?}",
        legacy.response()
    );
}

#[test]
fn the_error_table_echoes_every_id() {
    let gw = demo_gateway(&[]);
    let id = json!("req-7");
    // Required _meta fields missing: 400 -32602.
    let no_meta = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {}});
    assert_error(
        &post(&gw, &[("MCP-Protocol-Version", MODERN)], &no_meta),
        400,
        -32602,
        &id,
    );
    let mut no_caps = request(id.clone(), "tools/list", json!({}));
    no_caps["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    assert_error(
        &post(&gw, &[("MCP-Protocol-Version", MODERN)], &no_caps),
        400,
        -32602,
        &id,
    );
    // Header and _meta disagree: 400 -32020.
    let body = request(id.clone(), "tools/list", json!({}));
    assert_error(
        &post(&gw, &[("MCP-Protocol-Version", "2025-11-25")], &body),
        400,
        -32020,
        &id,
    );
    // An unsupported version, in the header or in _meta: 400 -32022 with supported/requested.
    let refused = assert_error(
        &post(&gw, &[("MCP-Protocol-Version", "2099-01-01")], &body),
        400,
        -32022,
        &id,
    );
    assert_eq!(refused["error"]["data"]["requested"], "2099-01-01");
    assert!(refused["error"]["data"]["supported"]
        .as_array()
        .unwrap()
        .contains(&json!(MODERN)));
    let mut future = body.clone();
    future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let refused = assert_error(&post(&gw, &[], &future), 400, -32022, &id);
    assert_eq!(refused["error"]["data"]["requested"], "2099-01-01");
    // Removed and unknown methods: 404 -32601.
    for method in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "no/such/method",
    ] {
        let http = call(&gw, json!(42), method, json!({"uri": "demo://readme"}));
        assert_error(&http, 404, -32601, &json!(42));
    }
    // An unknown tool: -32602; an unknown resource (the demo server's -32002): -32602 with
    // data.uri.
    let tool = call(
        &gw,
        json!(5),
        "tools/call",
        json!({"name": "nope", "arguments": {}}),
    );
    assert_error(&tool, 400, -32602, &json!(5));
    let resource = call(
        &gw,
        json!(6),
        "resources/read",
        json!({"uri": "demo://nothing"}),
    );
    let body = assert_error(&resource, 400, -32602, &json!(6));
    assert_eq!(body["error"]["data"]["uri"], "demo://nothing");
    // A bad cursor: -32602.
    let cursor = call(&gw, json!(9), "tools/list", json!({"cursor": "bogus"}));
    assert_error(&cursor, 400, -32602, &json!(9));
    // An invalid message with an id: its error carries it.
    let bad =
        json!({"jsonrpc": "1.0", "id": 10, "method": "tools/list", "params": {"_meta": meta()}});
    assert_error(
        &post(&gw, &[("MCP-Protocol-Version", MODERN)], &bad),
        400,
        -32600,
        &json!(10),
    );
    // Nothing of it opened a session.
    assert_eq!(gw.health()["sessions"], 0);
}

#[test]
fn mirrored_headers_must_match_the_body() {
    let gw = demo_gateway(&[]);
    let body = request(
        json!(1),
        "tools/call",
        json!({"name": "demo_echo", "arguments": {"text": "x"}}),
    );
    let version = ("MCP-Protocol-Version", MODERN);
    let wrong_method = post(&gw, &[version, ("Mcp-Method", "tools/list")], &body);
    assert_error(&wrong_method, 400, -32020, &json!(1));
    let wrong_name = post(
        &gw,
        &[
            version,
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "demo_add"),
        ],
        &body,
    );
    assert_error(&wrong_name, 400, -32020, &json!(1));
    let bad_encoding = post(&gw, &[version, ("Mcp-Name", "=?base64?***?=")], &body);
    assert_error(&bad_encoding, 400, -32020, &json!(1));
    // Base64 of "demo_echo": the same name.
    let encoded = post(
        &gw,
        &[
            version,
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "=?base64?ZGVtb19lY2hv?="),
        ],
        &body,
    );
    assert_eq!(encoded.status, 200, "{}", encoded.text());
    assert_eq!(answer(&encoded)["result"]["content"][0]["text"], "x");
    // A resource's Mcp-Name is its URI.
    let read = request(json!(2), "resources/read", json!({"uri": "demo://readme"}));
    let wrong_uri = post(&gw, &[version, ("Mcp-Name", "demo://data.json")], &read);
    assert_error(&wrong_uri, 400, -32020, &json!(2));
}

#[test]
fn the_2025_era_echoes_ids_in_its_refusals_too() {
    let gw = demo_gateway(&[]);
    let session = gw.mcp();
    let ping = json!({"jsonrpc": "2.0", "id": 77, "method": "ping"});
    // An unsupported version header on a session's request.
    let http = gw.request(
        "POST",
        "/mcp",
        &[
            ("Accept", "application/json, text/event-stream"),
            ("Content-Type", "application/json"),
            ("Mcp-Session-Id", &session.session_id),
            ("MCP-Protocol-Version", "2099-01-01"),
        ],
        ping.to_string().as_bytes(),
    );
    assert_error(&http, 400, -32022, &json!(77));
    // A request without its session, and with an unknown one.
    let http = gw.request(
        "POST",
        "/mcp",
        &[
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
        ],
        ping.to_string().as_bytes(),
    );
    assert_error(&http, 400, -32600, &json!(77));
    let http = gw.request(
        "POST",
        "/mcp",
        &[
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
            ("Mcp-Session-Id", "00000000000000000000000000000000"),
        ],
        ping.to_string().as_bytes(),
    );
    assert_error(&http, 404, -32600, &json!(77));
    // The legacy transport's POST to an unknown session.
    let http = gw.request(
        "POST",
        "/messages?sessionId=00000000000000000000000000000000",
        &[("Content-Type", "application/json")],
        ping.to_string().as_bytes(),
    );
    assert_eq!(http.status, 404, "{}", http.text());
    assert_eq!(http.json()["id"], 77, "{}", http.text());
}

// ---------------------------------------------------------------------------------------------
// Streams: progress, cancellation, subscriptions/listen
// ---------------------------------------------------------------------------------------------

/// Sends a request on a connection of its own and returns it, unread.
fn send_on_own_connection(gw: &Gateway, body: &Value, headers: &[(&str, &str)]) -> TcpStream {
    let mut stream = gw.connect();
    stream.set_read_timeout(Some(ANSWER)).unwrap();
    let text = body.to_string();
    let mut all = vec![
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
    ];
    all.extend_from_slice(headers);
    stream
        .write_all(&util::request_bytes("POST", "/mcp", &all, text.as_bytes()))
        .unwrap();
    stream
}

#[test]
fn progress_rides_the_calls_stream() {
    let gw = demo_gateway(&[]);
    let mut body = request(
        json!(3),
        "tools/call",
        json!({"name": "demo_progress", "arguments": {"steps": 3, "intervalMs": 5}}),
    );
    body["params"]["_meta"]["progressToken"] = json!("p-1");
    let http = post(&gw, &[("MCP-Protocol-Version", MODERN)], &body);
    assert!(
        http.header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{:?}",
        http.headers
    );
    let messages = mcp_messages(&http);
    let progress: Vec<&Value> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{messages:?}");
    assert!(progress
        .iter()
        .all(|p| p["params"]["progressToken"] == "p-1"));
    let last = messages.last().unwrap();
    assert_eq!(last["id"], 3);
    assert_eq!(last["result"]["resultType"], "complete");
}

#[test]
fn closing_the_response_stream_cancels_the_call_downstream() {
    let gw = demo_gateway(&[]);
    let mut body = request(
        json!("slow"),
        "tools/call",
        json!({"name": "demo_progress", "arguments": {"steps": 1000, "intervalMs": 20}}),
    );
    body["params"]["_meta"]["progressToken"] = json!(1);
    let mut stream = send_on_own_connection(&gw, &body, &[("MCP-Protocol-Version", MODERN)]);
    // The stream has begun (progress came): the call runs on the server.
    let events = util::read_events(&mut stream, ANSWER, |events| !events.is_empty());
    assert!(!events.is_empty(), "no progress before closing");
    drop(stream);
    gw.wait_log("demo: cancelled request", ANSWER);
    wait_for(ANSWER, "the call to end", || {
        (gw.health()["inFlight"] == 0).then_some(())
    });
}

#[test]
fn listen_is_acknowledged_then_carries_tagged_list_changed_from_a_child() {
    let gw = demo_gateway(&[]);
    let body = request(
        json!("sub-1"),
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true, "promptsListChanged": true,
                                 "resourceSubscriptions": ["demo://readme"]}}),
    );
    let mut stream = send_on_own_connection(&gw, &body, &[("MCP-Protocol-Version", MODERN)]);
    let tag = "io.modelcontextprotocol/subscriptionId";
    let events = util::read_events(&mut stream, ANSWER, |events| !events.is_empty());
    let ack: Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(ack["params"]["_meta"][tag], "sub-1");
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true, "promptsListChanged": true,
               "resourceSubscriptions": ["demo://readme"]})
    );
    // A child announces changed lists: the stream hears of it, tagged.
    let changed = call(
        &gw,
        json!(1),
        "tools/call",
        json!({"name": "demo_notify_changed", "arguments": {}}),
    );
    assert_eq!(changed.status, 200, "{}", changed.text());
    // The downstream subscription is made asynchronously (through the supervisor): touch until
    // the update comes.
    let mut events = Vec::new();
    for attempt in 0..20 {
        let touch = call(
            &gw,
            json!(attempt),
            "tools/call",
            json!({"name": "demo_touch", "arguments": {"uri": "demo://readme"}}),
        );
        assert_eq!(touch.status, 200, "{}", touch.text());
        events.extend(util::read_events(
            &mut stream,
            Duration::from_millis(500),
            |events| {
                [
                    "resources/updated",
                    "tools/list_changed",
                    "prompts/list_changed",
                ]
                .iter()
                .all(|m| events.iter().any(|(_, d)| d.contains(m)))
            },
        ));
        if events.iter().any(|(_, d)| d.contains("resources/updated")) {
            break;
        }
    }
    let frames: Vec<Value> = events
        .iter()
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    assert!(
        frames.iter().all(|f| f["params"]["_meta"][tag] == "sub-1"),
        "{frames:?}"
    );
    let methods: Vec<&str> = frames
        .iter()
        .map(|f| f["method"].as_str().unwrap())
        .collect();
    for wanted in [
        "notifications/resources/updated",
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
    ] {
        assert!(methods.contains(&wanted), "{wanted}: {methods:?}");
    }
    assert!(
        !methods.contains(&"notifications/resources/list_changed"),
        "not asked for: {methods:?}"
    );
    // Closing the stream ends the subscription (counted while it is open).
    assert_eq!(gw.health()["sessionsByTransport"]["listen"], 1);
    drop(stream);
    wait_for(ANSWER, "the subscription to end", || {
        (gw.health()["sessions"] == 0).then_some(())
    });
}

#[test]
fn listen_needs_an_event_stream() {
    let gw = demo_gateway(&[]);
    let body = request(json!(4), "subscriptions/listen", json!({}));
    let http = gw.request(
        "POST",
        "/mcp",
        &[
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
            ("MCP-Protocol-Version", MODERN),
        ],
        body.to_string().as_bytes(),
    );
    assert_error(&http, 406, -32600, &json!(4));
}

#[test]
fn a_stateless_notification_is_accepted_and_a_posted_response_refused() {
    let gw = demo_gateway(&[]);
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                      "params": {"requestId": 1}});
    let http = post(&gw, &[("MCP-Protocol-Version", MODERN)], &note);
    assert_eq!(http.status, 202, "{}", http.text());
    let response = json!({"jsonrpc": "2.0", "id": 5, "result": {}});
    let http = post(&gw, &[("MCP-Protocol-Version", MODERN)], &response);
    assert_error(&http, 400, -32600, &json!(5));
}

// ---------------------------------------------------------------------------------------------
// Downstream: each server in its own era
// ---------------------------------------------------------------------------------------------

/// A gateway with `server`, probed for its era (`"protocol": "auto"` unless it says otherwise).
fn gateway_for(mut server: Value) -> Gateway {
    if server.get("protocol").is_none() {
        server["protocol"] = json!("auto");
    }
    let gw = Gateway::start(json!({
        "servers": [server],
        "mapping": {"demo": {"prefix": "demo_"}},
    }));
    gw.wait_up();
    gw
}

#[test]
fn a_2026_only_child_is_probed_and_spoken_to_statelessly_by_clients_of_both_eras() {
    let gw = gateway_for(demo("demo", &["--protocol", "modern"]));
    gw.wait_log("ready (protocol 2026-07-28)", ANSWER);
    // Its tools, but not the one it lists with an invalid x-mcp-header (on a number).
    wait_for(ANSWER, "its tools listed", || {
        let tools = gw.get("/tools").json();
        (tools["tools"].as_array().map(Vec::len) == Some(util::DEMO_TOOLS.len())).then_some(())
    });
    assert!(
        gw.logs()
            .contains("its tool \"misannotated\" is not offered"),
        "{}",
        gw.logs()
    );
    // A 2025 client's call reaches it with the protocol _meta the gateway adds.
    let mut session = gw.mcp();
    let echo = session.request(
        "tools/call",
        json!({"name": "demo_echo", "arguments": {"text": "from 2025"}}),
    );
    assert_eq!(
        echo.response()["result"]["content"][0]["text"],
        "from 2025",
        "{:?}",
        echo.response()
    );
    // A 2026 client's call too, with progress.
    let mut body = request(
        json!(1),
        "tools/call",
        json!({"name": "demo_progress", "arguments": {"steps": 2, "intervalMs": 1}}),
    );
    body["params"]["_meta"]["progressToken"] = json!("t");
    let http = post(&gw, &[("MCP-Protocol-Version", MODERN)], &body);
    let messages = mcp_messages(&http);
    assert_eq!(
        messages
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .count(),
        2,
        "{messages:?}"
    );
    assert_eq!(
        messages.last().unwrap()["result"]["content"][0]["text"],
        "done 2 steps"
    );
    let read = call(
        &gw,
        json!(2),
        "resources/read",
        json!({"uri": "demo://readme"}),
    );
    assert_eq!(
        answer(&read)["result"]["resultType"],
        "complete",
        "{}",
        read.text()
    );
    let logs = gw.logs();
    assert!(
        logs.contains("demo: tools/call with the 2026-07-28 _meta"),
        "{logs}"
    );
    assert!(
        logs.contains("demo: tools/list with the 2026-07-28 _meta"),
        "{logs}"
    );
    assert!(!logs.contains("demo: refused"), "{logs}");
}

#[test]
fn the_python_sdks_own_stdio_server_is_spoken_to_statelessly_for_clients_of_both_eras() {
    let script = util::interop_script("eras_server.py");
    let gw = Gateway::start(json!({
        "servers": [{"name": "py", "command": [util::python(), script], "protocol": "auto"}],
        "mapping": {"py": {"prefix": "py_"}},
    }));
    gw.wait_up();
    gw.wait_log("ready (protocol 2026-07-28)", ANSWER);
    let expected = CHECKS;
    let modern = sdk(&gw, "auto", "python");
    assert_eq!(names(&modern), expected);
    assert_eq!(modern[0]["protocolVersion"], MODERN);
    let legacy = sdk(&gw, "legacy", "python");
    assert_eq!(names(&legacy), expected);
    assert_eq!(legacy[0]["protocolVersion"], "2025-11-25");
    // Its own elicitation (the SDK's Resolve/Elicit): an input_required round trip for a 2026
    // client, requests on the session of a 2025 client that the gateway turns it into.
    for mode in ["auto", "legacy"] {
        let checks = sdk(&gw, mode, "python_input_required");
        assert_eq!(names(&checks), ["connect", "input_required"], "{mode}");
        assert_eq!(checks[1]["text"], "Hello, Ada!", "{mode}");
    }
    // Its caching hints reach the merged lists.
    let list = call(&gw, json!(1), "tools/list", json!({}));
    assert_eq!(
        answer(&list)["result"]["cacheScope"],
        "private",
        "{}",
        list.text()
    );
}

#[test]
fn a_2026_stdio_childs_log_messages_and_resource_updates_reach_2025_sessions() {
    // The Python SDK's stdio server, spoken to statelessly (auto): a 2025 session's log level
    // rides its calls, and its resource subscriptions join the listen the gateway holds.
    let script = util::interop_script("eras_server.py");
    let gw = Gateway::start(json!({
        "servers": [{"name": "py", "command": [util::python(), script]}],
        "mapping": {"py": {"prefix": "py_"}},
    }));
    gw.wait_up();
    gw.wait_log("ready (protocol 2026-07-28)", ANSWER);
    let mut sse = gw.sse();
    sse.initialize();
    sse.request("logging/setLevel", json!({"level": "info"}));
    let murmured = sse.request(
        "tools/call",
        json!({"name": "py_murmur", "arguments": {"text": "for the session"}}),
    );
    assert_eq!(
        murmured["result"]["content"][0]["text"], "murmured",
        "{murmured}"
    );
    let log = wait_for(ANSWER, "the log message", || {
        let m = sse.next_message(ANSWER)?;
        (m["method"] == "notifications/message").then_some(m)
    });
    assert_eq!(log["params"]["data"], "for the session", "{log}");
    assert!(
        log["params"]["logger"]
            .as_str()
            .is_some_and(|l| l.starts_with("py")),
        "{log}"
    );

    // A subscription: the child's listen is opened again with the resource, then an update.
    let subscribed = sse.request("resources/subscribe", json!({"uri": "py://note"}));
    assert!(subscribed.get("result").is_some(), "{subscribed}");
    let announced = wait_for(ANSWER, "the update", || {
        let http = gw.call("py_announce", json!({"uri": "py://note"}));
        assert_eq!(http.status, 200, "{}", http.text());
        let mut seen = Vec::new();
        while let Some(m) = sse.next_message(Duration::from_millis(500)) {
            seen.push(m);
        }
        seen.iter()
            .any(|m| m["method"] == "notifications/resources/updated")
            .then_some(seen)
    });
    let update = announced
        .iter()
        .find(|m| m["method"] == "notifications/resources/updated")
        .unwrap();
    assert_eq!(
        update,
        &json!({"jsonrpc": "2.0", "method": "notifications/resources/updated",
                                "params": {"uri": "py://note"}})
    );

    // A 2026-07-28 client gets the child's log message on its call's own stream, when it asks.
    let mut body = request(
        json!(5),
        "tools/call",
        json!({"name": "py_murmur", "arguments": {"text": "for the caller"}}),
    );
    body["params"]["_meta"]["io.modelcontextprotocol/logLevel"] = json!("info");
    let messages = mcp_messages(&post(&gw, &[("MCP-Protocol-Version", MODERN)], &body));
    assert!(
        messages
            .iter()
            .any(|m| m["method"] == "notifications/message"
                && m["params"]["data"] == "for the caller"),
        "{messages:?}"
    );
}

#[test]
fn a_dual_era_child_is_spoken_to_in_the_era_its_protocol_key_names() {
    let gw = gateway_for(demo("demo", &["--protocol", "dual"]));
    gw.wait_log("ready (protocol 2026-07-28)", ANSWER);
    drop(gw);
    let pinned = json!({"name": "demo", "command": [util::demo_server(), "--protocol", "dual"],
                        "protocol": "2025-11-25"});
    let gw = gateway_for(pinned);
    gw.wait_log("ready (protocol 2025-11-25)", ANSWER);
    let http = gw.call("demo_echo", json!({"text": "pinned"}));
    assert_eq!(http.json()["result"]["content"][0]["text"], "pinned");
}

#[test]
fn a_2025_child_answers_the_probe_with_an_error_and_is_initialized() {
    let gw = gateway_for(demo("demo", &[]));
    gw.wait_log("ready (protocol 2025-11-25)", ANSWER);
    let http = gw.call("demo_echo", json!({"text": "legacy"}));
    assert_eq!(http.json()["result"]["content"][0]["text"], "legacy");
    // Insisting on 2026-07-28 for it fails its start, and /health says why.
    let strict =
        json!({"name": "demo", "command": [util::demo_server()], "protocol": "2026-07-28"});
    let gw = Gateway::start(json!({"servers": [strict]}));
    let error = wait_for(ANSWER, "the start to fail", || {
        gw.server_health("demo")["lastError"]
            .as_str()
            .map(str::to_string)
    });
    assert!(error.contains("server/discover"), "{error}");
}

#[test]
fn under_auto_a_2025_childs_later_processes_skip_the_probe_and_one_it_kills_comes_up_without() {
    // Learned once: the second process (after the first is recycled) is not probed.
    let mut server = demo("demo", &[]);
    server["maxCalls"] = json!(1);
    let gw = gateway_for(server);
    gw.wait_log("ready (protocol 2025-11-25)", ANSWER);
    let http = gw.call("demo_echo", json!({"text": "one"}));
    assert_eq!(http.json()["result"]["content"][0]["text"], "one");
    wait_for(ANSWER, "the second process ready", || {
        gw.logs()
            .lines()
            .any(|l| l.contains("demo#2 (pid") && l.contains("ready (protocol 2025-11-25)"))
            .then_some(())
    });
    let probed = |serial: &str| {
        gw.logs()
            .lines()
            .any(|l| l.contains(&format!("demo#{serial} (pid")) && l.contains("; initializing"))
    };
    assert!(probed("1"), "the first is probed: {}", gw.logs());
    assert!(!probed("2"), "the second is not: {}", gw.logs());

    // A 2025 server that dies of the probe: its next start goes without it.
    let gw = gateway_for(demo("demo", &["--exit-on-probe"]));
    let logs = gw.logs();
    assert!(logs.contains("demo: exiting on server/discover"), "{logs}");
    assert!(
        logs.contains("its next start goes without the server/discover probe"),
        "{logs}"
    );
    let http = gw.call("demo_echo", json!({"text": "after all"}));
    assert_eq!(http.json()["result"]["content"][0]["text"], "after all");
}

#[test]
fn a_stateless_call_waits_for_a_server_that_is_still_starting() {
    let gw = Gateway::start(json!({
        "servers": [demo("demo", &["--init-delay", "1500"])],
        "mapping": {"demo": {"prefix": "demo_"}},
    }));
    // Sent before the server has listed its tools (without holding: −32602 unknown tool).
    assert!(!gw.logs().contains("ready (protocol"), "{}", gw.logs());
    let http = call(
        &gw,
        json!("early"),
        "tools/call",
        json!({"name": "demo_echo", "arguments": {"text": "waited"}}),
    );
    assert_eq!(http.status, 200, "{}", http.text());
    let body = answer(&http);
    assert_eq!(body["id"], "early");
    assert_eq!(body["result"]["content"][0]["text"], "waited", "{body}");
}

#[test]
fn a_2026_childs_list_changed_comes_through_the_subscription_the_gateway_holds_on_it() {
    let gw = gateway_for(demo("demo", &["--protocol", "modern"]));
    gw.wait_log(
        "demo: subscriptions/listen with the 2026-07-28 _meta",
        ANSWER,
    );
    let body = request(
        json!(9),
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let mut stream = send_on_own_connection(&gw, &body, &[("MCP-Protocol-Version", MODERN)]);
    let acked = util::read_events(&mut stream, ANSWER, |events| !events.is_empty());
    assert!(
        acked[0].1.contains("subscriptions/acknowledged"),
        "{acked:?}"
    );
    // The child sends list_changed only on a listen (and only what it asked for).
    let changed = call(
        &gw,
        json!(1),
        "tools/call",
        json!({"name": "demo_notify_changed", "arguments": {}}),
    );
    assert_eq!(changed.status, 200, "{}", changed.text());
    let events = util::read_events(&mut stream, ANSWER, |events| {
        events.iter().any(|(_, d)| d.contains("tools/list_changed"))
    });
    assert!(
        events.iter().any(|(_, d)| d.contains("tools/list_changed")),
        "{events:?}\n{}",
        gw.logs()
    );
}

/// A remote that refuses every POST with 400 and a JSON-RPC error (as a 2026-07-28-only server
/// refuses `initialize`), and counts the GETs it is sent.
fn refusing_remote() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let gets = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = gets.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            stream.set_read_timeout(Some(ANSWER)).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break 0,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            if head_end == 0 {
                continue;
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            if head.starts_with("get ") {
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            }
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < head_end + length {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let request: Value = serde_json::from_slice(&buf[head_end..]).unwrap_or(Value::Null);
            let body = json!({"jsonrpc": "2.0", "id": request["id"],
                "error": {"code": -32601, "message": "Method not found: initialize (2026-07-28 only)"}})
            .to_string();
            let response = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (addr, gets)
}

#[test]
fn a_remotes_400_with_a_json_rpc_error_is_not_taken_for_a_legacy_sse_server() {
    let (addr, gets) = refusing_remote();
    let gw = Gateway::start(json!({
        "servers": [{"name": "r", "url": format!("http://{addr}/mcp"), "minConnections": 1}],
    }));
    let error = wait_for(ANSWER, "the start to fail", || {
        gw.server_health("r")["lastError"]
            .as_str()
            .map(str::to_string)
    });
    assert!(error.contains("HTTP 400"), "{error}");
    assert!(error.contains("2026-07-28 only"), "{error}");
    assert_eq!(
        gets.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no fall-back to the legacy SSE transport: {}",
        gw.logs()
    );
}

#[test]
fn log_messages_of_a_call_ride_its_stream_when_its_meta_asks_for_them() {
    let gw = demo_gateway(&[]);
    let mut body = request(
        json!(1),
        "tools/call",
        json!({"name": "demo_log", "arguments": {"message": "to the caller", "level": "warning"}}),
    );
    body["params"]["_meta"]["io.modelcontextprotocol/logLevel"] = json!("info");
    let http = post(&gw, &[("MCP-Protocol-Version", MODERN)], &body);
    let messages = mcp_messages(&http);
    let logs: Vec<&Value> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .collect();
    assert_eq!(logs.len(), 1, "{messages:?}");
    assert_eq!(logs[0]["params"]["level"], "warning");
    assert!(logs[0].to_string().contains("to the caller"), "{}", logs[0]);
    assert_eq!(
        messages.last().unwrap()["result"]["content"][0]["text"],
        "logged"
    );
    // Above the level asked for: not sent; without the field: not sent.
    body["params"]["_meta"]["io.modelcontextprotocol/logLevel"] = json!("error");
    let quiet = mcp_messages(&post(&gw, &[("MCP-Protocol-Version", MODERN)], &body));
    assert_eq!(quiet.len(), 1, "{quiet:?}");
    let mut plain = body.clone();
    plain["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/logLevel");
    let quiet = mcp_messages(&post(&gw, &[("MCP-Protocol-Version", MODERN)], &plain));
    assert_eq!(quiet.len(), 1, "{quiet:?}");
}

/// `tests/interop/remote_server.py streamable` (the Python SDK's own Streamable HTTP server, which
/// serves both eras) with more of its flags (`--modern-only`); killed when dropped.
fn py_remote(flags: &[&str]) -> util::PyProcess {
    let mut args: Vec<&std::ffi::OsStr> = ["streamable", "--port", "0"]
        .iter()
        .map(std::ffi::OsStr::new)
        .collect();
    args.extend(flags.iter().map(std::ffi::OsStr::new));
    util::PyProcess::start("remote_server.py", &args)
}

#[test]
fn a_remote_that_speaks_2026_07_28_is_spoken_to_statelessly_and_a_pinned_one_in_a_session() {
    let py = py_remote(&[]);
    let url = format!("http://127.0.0.1:{}/mcp", py.port);
    let gw = Gateway::start(json!({
        "servers": [
            {"name": "modern", "url": url, "protocol": "auto"},
            {"name": "pinned", "url": url, "protocol": "2025-11-25"},
        ],
        "mapping": {"modern": {"prefix": "m_"}, "pinned": {"prefix": "p_"}},
    }));
    gw.wait_up();
    gw.wait_log("modern#1", ANSWER);
    wait_for(ANSWER, "both remotes listed", || {
        let logs = gw.logs();
        (logs.contains("ready (protocol 2026-07-28)")
            && logs.contains("ready (protocol 2025-11-25)"))
        .then_some(())
    });
    let logs = gw.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("modern#") && l.contains("ready (protocol 2026-07-28)")),
        "{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("pinned#") && l.contains("ready (protocol 2025-11-25)")),
        "{logs}"
    );
    wait_for(ANSWER, "their tools routable", || {
        let tools = gw.get("/tools").json();
        let names: Vec<&str> = tools["tools"]
            .as_array()?
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        (names.contains(&"m_add") && names.contains(&"p_add")).then_some(())
    });
    // Clients of both eras reach both, calls with progress included.
    let mut session = gw.mcp();
    for tool in ["m_echo", "p_echo"] {
        let echo = session.request(
            "tools/call",
            json!({"name": tool, "arguments": {"text": "via 2025"}}),
        );
        assert_eq!(
            echo.response()["result"]["content"][0]["text"],
            "via 2025",
            "{tool}: {:?}",
            echo.response()
        );
        let mut body = request(
            json!(tool),
            "tools/call",
            json!({"name": tool.replace("echo", "slow"), "arguments": {"steps": 2}}),
        );
        body["params"]["_meta"]["progressToken"] = json!("p");
        let http = post(&gw, &[("MCP-Protocol-Version", MODERN)], &body);
        let messages = mcp_messages(&http);
        let progress = messages
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .count();
        assert_eq!(progress, 2, "{tool}: {messages:?}");
        let last = messages.last().unwrap();
        assert_eq!(
            last["result"]["content"][0]["text"], "done after 2 steps",
            "{last}"
        );
        assert_eq!(last["result"]["resultType"], "complete");
    }
    // x-mcp-header: mirrored into Mcp-Param-Region (the SDK server refuses the call without it).
    let regional = gw.call("m_regional", json!({"region": "eu-north-1"}));
    assert_eq!(
        regional.json()["result"]["content"][0]["text"],
        "served in eu-north-1",
        "{}",
        regional.text()
    );
    // And the gateway holds 2026 clients to the same rule for that tool.
    let body = request(
        json!(7),
        "tools/call",
        json!({"name": "m_regional", "arguments": {"region": "eu-north-1"}}),
    );
    let version = ("MCP-Protocol-Version", MODERN);
    assert_error(&post(&gw, &[version], &body), 400, -32020, &json!(7));
    let wrong = post(&gw, &[version, ("Mcp-Param-Region", "us-east-1")], &body);
    assert_error(&wrong, 400, -32020, &json!(7));
    let right = post(&gw, &[version, ("Mcp-Param-Region", "eu-north-1")], &body);
    assert_eq!(
        answer(&right)["result"]["content"][0]["text"],
        "served in eu-north-1",
        "{}",
        right.text()
    );
    let encoded = post(
        &gw,
        &[version, ("Mcp-Param-Region", "=?base64?ZXUtbm9ydGgtMQ==?=")],
        &body,
    );
    assert_eq!(encoded.status, 200, "{}", encoded.text());
    // The remote's own elicitation: relayed to a 2026 client, turned into requests on the session
    // of a 2025 client (by the worker carrying the call).
    for mode in ["auto", "legacy"] {
        let checks = sdk(&gw, mode, "remote_input_required");
        assert_eq!(names(&checks), ["connect", "input_required"], "{mode}");
        assert_eq!(checks[1]["text"], "Hello, Ada!", "{mode}");
    }
    // The remote pinned to 2025 elicits on its session mid-call: for a 2026 client the worker's
    // call is suspended and the client gets input_required (signed requestState); its retry's
    // answer goes to the server and the call ends there. A 2025 client is simply asked.
    for mode in ["auto", "legacy"] {
        let checks = sdk(&gw, mode, "pinned_input_required");
        assert_eq!(
            names(&checks),
            ["connect", "input_required"],
            "{mode}: {checks:?}"
        );
        assert_eq!(checks[1]["text"], "Hello, Ada!", "{mode}");
    }
}

#[test]
fn a_2026_only_remote_serves_clients_of_both_eras_and_refuses_to_be_pinned_to_2025() {
    let py = py_remote(&["--modern-only"]);
    let url = format!("http://127.0.0.1:{}/mcp", py.port);
    let gw = Gateway::start(json!({
        "servers": [
            {"name": "modern", "url": url},
            {"name": "pinned", "url": url, "protocol": "2025-11-25", "initTimeout": 3000},
        ],
        "mapping": {"modern": {"prefix": "m_"}, "pinned": {"prefix": "p_"}},
    }));
    wait_for(ANSWER, "modern up", || {
        (gw.server_health("modern")["status"] == "up").then_some(())
    });
    assert!(
        gw.logs()
            .lines()
            .any(|l| l.contains("modern#") && l.contains("ready (protocol 2026-07-28)")),
        "{}",
        gw.logs()
    );
    // Pinned to 2025, it cannot start: its -32022 says why, and /health says so.
    let pinned = wait_for(ANSWER, "pinned down", || {
        let health = gw.server_health("pinned");
        (health["status"] == "down" && health["lastError"].is_string()).then_some(health)
    });
    assert!(
        pinned["lastError"]
            .as_str()
            .unwrap()
            .contains("Unsupported protocol version"),
        "{pinned}"
    );
    // Both eras of the SDK reach it, its elicitation included (relayed to a 2026 client, turned
    // into requests on the session of a 2025 client).
    for mode in ["auto", "legacy"] {
        let checks = sdk(&gw, mode, "remote_input_required");
        assert_eq!(names(&checks), ["connect", "input_required"], "{mode}");
        assert_eq!(checks[1]["text"], "Hello, Ada!", "{mode}");
    }
}

#[test]
fn a_2026_servers_input_required_result_is_relayed_and_the_retry_reaches_it() {
    let gw = gateway_for(demo("demo", &["--protocol", "modern"]));
    gw.wait_log("ready (protocol 2026-07-28)", ANSWER);
    let first = call(
        &gw,
        json!(1),
        "tools/call",
        json!({"name": "demo_elicit", "arguments": {"message": "Who are you?"}}),
    );
    let result = answer(&first)["result"].clone();
    assert_eq!(result["resultType"], "input_required", "{}", first.text());
    assert_eq!(
        result["inputRequests"]["answer"]["method"],
        "elicitation/create"
    );
    assert_eq!(result["requestState"], "demo-elicit-state");
    assert!(
        result.get("ttlMs").is_none(),
        "an interim result has no caching hints"
    );
    let retry = |state: &str| {
        call(
            &gw,
            json!(2),
            "tools/call",
            json!({"name": "demo_elicit", "arguments": {"message": "Who are you?"},
                   "inputResponses": {"answer": {"action": "accept", "content": {"name": "Ada"}}},
                   "requestState": state}),
        )
    };
    let done = retry("demo-elicit-state");
    let text = answer(&done)["result"]["content"][0]["text"].clone();
    assert!(text.as_str().unwrap().contains("Ada"), "{}", done.text());
    // A state the server did not issue is the server's to refuse.
    assert_error(&retry("forged"), 400, -32602, &json!(2));
    // The official SDK drives the same round trip itself.
    let checks = sdk(&gw, "auto", "input_required");
    assert_eq!(names(&checks), ["connect", "input_required"]);
}

#[test]
fn a_2026_servers_input_required_becomes_requests_to_a_2025_client_and_the_answers_its_retry() {
    let gw = gateway_for(demo("demo", &["--protocol", "modern"]));
    gw.wait_log("ready (protocol 2026-07-28)", ANSWER);
    // The SDK pinned to 2025 answers the elicitation the gateway sends on its session; the
    // server gets it as inputResponses with its own requestState (or refuses: -32602).
    let checks = sdk(&gw, "legacy", "input_required");
    assert_eq!(names(&checks), ["connect", "input_required"]);
    assert_eq!(checks[0]["protocolVersion"], "2025-11-25");
    assert!(
        checks[1]["text"].as_str().unwrap().contains("Ada"),
        "{}",
        checks[1]
    );
    // A 2025 client that cannot answer (no elicitation capability) gets the refusal as its
    // call's error, not the interim result.
    let mut session = gw.mcp();
    let refused = session.request(
        "tools/call",
        json!({"name": "demo_elicit", "arguments": {"message": "Who?"}}),
    );
    let response = refused.response();
    assert!(response.get("result").is_none(), "{response}");
    assert!(
        response["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("elicitation")),
        "{response}"
    );
}

#[test]
fn a_stateless_request_is_served_from_its_profiles_view() {
    let gw = Gateway::start(json!({
        "servers": [demo("demo", &[]), {"name": "py", "url": "http://127.0.0.1:9/mcp", "enabled": false}],
        "mapping": {"demo": {"prefix": "demo_"}},
        "profiles": {"find": {"toolExposure": "search"}, "nothing": {"servers": ["py"]}},
    }));
    gw.wait_up();
    let post_to = |path: &str, body: &Value| {
        let headers = [
            ("Accept", "application/json, text/event-stream"),
            ("Content-Type", "application/json"),
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", body["method"].as_str().unwrap()),
        ];
        gw.request("POST", path, &headers, body.to_string().as_bytes())
    };
    // A search profile lists the three search tools, as it does for a session.
    let listed = post_to("/mcp/find", &request(json!(1), "tools/list", json!({})));
    let names: Vec<String> = answer(&listed)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["search_tools", "describe_tools", "call_tool"],
        "{}",
        listed.text()
    );
    // A listen through a profile that leaves demo out honours no subscription to its resources.
    let listen = request(
        json!(2),
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true,
                                 "resourceSubscriptions": ["demo://readme"]}}),
    );
    let text = listen.to_string();
    let headers = [
        ("Accept", "text/event-stream"),
        ("Content-Type", "application/json"),
        ("MCP-Protocol-Version", MODERN),
        ("Mcp-Method", "subscriptions/listen"),
    ];
    let acknowledged = |path: &str| {
        let mut stream = gw.connect();
        stream.set_read_timeout(Some(ANSWER)).unwrap();
        stream
            .write_all(&util::request_bytes(
                "POST",
                path,
                &headers,
                text.as_bytes(),
            ))
            .unwrap();
        let events = util::read_events(&mut stream, ANSWER, |events| !events.is_empty());
        let ack: Value = serde_json::from_str(&events[0].1).unwrap();
        ack["params"]["notifications"].clone()
    };
    assert_eq!(
        acknowledged("/mcp")["resourceSubscriptions"],
        json!(["demo://readme"]),
        "the whole catalog offers it"
    );
    let elsewhere = acknowledged("/mcp/nothing");
    assert!(
        elsewhere.get("resourceSubscriptions").is_none(),
        "{elsewhere}"
    );
    assert_eq!(elsewhere["toolsListChanged"], true, "{elsewhere}");
}

#[test]
fn a_suspended_call_that_ends_unresumed_answers_nobody_on_its_connection() {
    // The call times out while suspended: its end must not be taken for the answer to the next
    // request the same keep-alive connection carries.
    let gw = Gateway::start(json!({
        "servers": [{"name": "demo", "command": [util::demo_server()], "callTimeout": 1000}],
        "mapping": {"demo": {"prefix": "demo_"}},
    }));
    gw.wait_up();
    let mut stream = TcpStream::connect(gw.addr()).unwrap();
    stream.set_read_timeout(Some(ANSWER)).unwrap();
    let send = |stream: &mut TcpStream, body: &Value| {
        let headers = [
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
            ("MCP-Protocol-Version", MODERN),
        ];
        stream
            .write_all(&util::request_bytes(
                "POST",
                "/mcp",
                &headers,
                body.to_string().as_bytes(),
            ))
            .unwrap();
        util::read_response(stream).expect("an answer")
    };
    let asked = send(
        &mut stream,
        &request(
            json!("e-1"),
            "tools/call",
            json!({"name": "demo_elicit", "arguments": {"message": "Your name?"}}),
        ),
    );
    assert_eq!(
        asked.json()["result"]["resultType"],
        "input_required",
        "{}",
        asked.text()
    );
    // In flight (from 0.5 s to 1.3 s) when the suspended call's 1 s run out.
    std::thread::sleep(Duration::from_millis(500));
    let slept = send(
        &mut stream,
        &request(
            json!("s"),
            "tools/call",
            json!({"name": "demo_sleep", "arguments": {"ms": 800}}),
        ),
    );
    assert_eq!(slept.json()["id"], "s", "{}", slept.text());
    assert!(slept.json().get("result").is_some(), "{}", slept.text());
    // And the timed-out call was counted as ended.
    wait_for(ANSWER, "no call in flight", || {
        (gw.health()["inFlight"] == 0).then_some(())
    });
}

#[test]
fn a_2025_servers_request_becomes_an_input_required_round_trip_for_a_2026_client() {
    let gw = demo_gateway(&[]);
    // The demo server (2025) asks its client elicitation/create during the call.
    let first = call(
        &gw,
        json!("e-1"),
        "tools/call",
        json!({"name": "demo_elicit", "arguments": {"message": "Your name?"}}),
    );
    let result = answer(&first)["result"].clone();
    assert_eq!(result["resultType"], "input_required", "{}", first.text());
    let request = &result["inputRequests"]["input"];
    assert_eq!(request["method"], "elicitation/create", "{result}");
    assert_eq!(request["params"]["message"], "Your name?");
    let state = result["requestState"].as_str().unwrap().to_string();
    assert!(state.starts_with("mcp-gateway."), "{state}");
    // An altered state is refused, and continues nothing.
    let tampered = call(
        &gw,
        json!("e-2"),
        "tools/call",
        json!({"name": "demo_elicit", "arguments": {"message": "Your name?"},
               "requestState": format!("{state}0"),
               "inputResponses": {"input": {"action": "accept", "content": {"name": "Eve"}}}}),
    );
    assert_error(&tampered, 400, -32602, &json!("e-2"));
    assert!(
        tampered.text().contains("signature does not verify"),
        "{}",
        tampered.text()
    );
    // The retry with the input continues the same call on the server.
    let done = call(
        &gw,
        json!("e-3"),
        "tools/call",
        json!({"name": "demo_elicit", "arguments": {"message": "Your name?"},
               "requestState": state,
               "inputResponses": {"input": {"action": "accept", "content": {"name": "Ada"}}}}),
    );
    let body = answer(&done);
    assert_eq!(body["id"], "e-3");
    let text = body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("Ada"), "{}", done.text());
    // The same state cannot be used twice.
    let again = call(
        &gw,
        json!("e-4"),
        "tools/call",
        json!({"name": "demo_echo", "arguments": {"text": "x"},
               "requestState": state,
               "inputResponses": {"input": {}}}),
    );
    assert_error(&again, 400, -32602, &json!("e-4"));
    // The official SDK drives the same round trip with its elicitation callback.
    let checks = sdk(&gw, "auto", "input_required");
    assert_eq!(names(&checks), ["connect", "input_required"]);
}
