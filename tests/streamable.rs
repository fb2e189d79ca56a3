//! The Streamable HTTP transport on `/mcp` (and `POST /sse`) and the security gate, end to end
//! against the real binary: every refusal of `POST /mcp` (415, 406, 400 protocol version, 400 batch,
//! 400 -32700, 400 -32600, 200 with the error for an invalid message with an id); the session
//! lifecycle (no header 400, unknown 404, after DELETE 404, expired after `sessionTimeout` 404 but
//! not while its GET stream is open or a call of it runs, a refused initialize creates no session, a
//! stale header on initialize is ignored, session ids do not cross transports); JSON answers vs
//! SSE answers (progress) and keep-alive reuse of the connection after an SSE answer; 202 for
//! notifications and responses; the GET stream (head, keepalive comments, one per session, closed by
//! DELETE, carries list_changed when a slow server comes up); `POST /sse` as Streamable HTTP beside
//! the legacy transport; protocol version negotiation; the Origin gate; the bearer token; CORS
//! preflight and response headers; a client vanishing in the middle of an SSE answer.

mod util;

use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};
use util::{demo, mcp_messages, read_response, wait_for, Gateway, HttpResponse};

/// How long any single expected answer or event may take before the test fails.
const ANSWER: Duration = Duration::from_secs(10);
const ACCEPT_BOTH: (&str, &str) = ("Accept", "application/json, text/event-stream");
const JSON_BODY: (&str, &str) = ("Content-Type", "application/json");
const TOKEN: &str = "s3cret-Token_42";

fn config() -> Value {
    json!({"servers": [demo("demo", &[])]})
}

/// A gateway with one demo server whose tools are routable.
fn gateway_with(config: Value) -> Gateway {
    let gw = Gateway::start(config);
    ready(&gw);
    gw
}

fn gateway() -> Gateway {
    gateway_with(config())
}

/// Waits until the servers are up and their tools listed by the router.
fn ready(gw: &Gateway) {
    gw.wait_up();
    wait_for(ANSWER, "the demo tools to be routable", || {
        let tools = gw.get("/tools").json();
        tools["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "echo"))
            .then_some(())
    });
}

// ---------------------------------------------------------------------------------------------
// Helpers of this file
// ---------------------------------------------------------------------------------------------

fn rpc(id: Value, method: &str, params: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
        .unwrap()
}

fn initialize_body(version: &str) -> Vec<u8> {
    rpc(
        json!(0),
        "initialize",
        json!({"protocolVersion": version, "capabilities": {},
               "clientInfo": {"name": "streamable-test", "version": "1"}}),
    )
}

/// `POST path` with exactly these headers (plus Host, Connection: close and Content-Length).
fn post(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    gw.request("POST", path, headers, body)
}

/// `POST /mcp` the way a well-behaved client does, for session `session` (if any), plus `extra`.
fn post_mcp(
    gw: &Gateway,
    session: Option<&str>,
    extra: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut headers = vec![JSON_BODY, ACCEPT_BOTH];
    if let Some(id) = session {
        headers.push(("Mcp-Session-Id", id));
    }
    headers.extend_from_slice(extra);
    post(gw, "/mcp", &headers, body)
}

/// initialize with `extra` headers; returns the session id (asserting the answer is a success).
fn open_session(gw: &Gateway, path: &str, extra: &[(&str, &str)]) -> String {
    let mut headers = vec![JSON_BODY, ACCEPT_BOTH];
    headers.extend_from_slice(extra);
    let response = post(gw, path, &headers, &initialize_body("2025-11-25"));
    assert_eq!(response.status, 200, "initialize: {}", response.text());
    assert!(
        response.json()["result"]["protocolVersion"].is_string(),
        "{}",
        response.text()
    );
    let id = response
        .header("mcp-session-id")
        .expect("initialize answers with Mcp-Session-Id")
        .to_string();
    let mut note_headers = headers.clone();
    note_headers.push(("Mcp-Session-Id", id.as_str()));
    let note = post(
        gw,
        path,
        &note_headers,
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(
        note.status,
        202,
        "notifications/initialized: {}",
        note.text()
    );
    id
}

/// The JSON-RPC error code of a body `{"jsonrpc":"2.0","id":..,"error":{"code":..}}`.
fn rpc_code(response: &HttpResponse) -> i64 {
    let body = response.json();
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    body["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no JSON-RPC error in {body}"))
}

fn health_sessions(gw: &Gateway) -> u64 {
    gw.health()["sessions"].as_u64().unwrap()
}

/// A signed session id (`g1.<payload>.<mac>`, restart-proof: tests/restart.rs), all visible ASCII
/// as the spec requires of session ids.
fn is_session_id(id: &str) -> bool {
    id.starts_with("g1.")
        && id.split('.').count() == 3
        && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn connect(gw: &Gateway) -> TcpStream {
    let stream = gw.connect();
    stream.set_read_timeout(Some(ANSWER)).unwrap();
    stream
}

/// Reads a response head byte by byte (so nothing after it is consumed); body left empty.
fn read_head(stream: &mut TcpStream) -> HttpResponse {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => panic!(
                "the connection ended inside the head: {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let headers = text
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: Vec::new(),
    }
}

/// Opens `GET path` as an event stream with these extra headers; returns the head and the socket.
fn get_stream(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> (HttpResponse, TcpStream) {
    let mut stream = connect(gw);
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", gw.addr());
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let head = read_head(&mut stream);
    (head, stream)
}

/// `GET path` on a stream endpoint, bounded: the head (and, unless it is 200, the body by its
/// Content-Length). A 200 event stream is closed at once. Unlike a plain request, this cannot hang
/// if the gateway wrongly opens a stream (keepalives would keep a read-to-close reader waiting).
fn get_once(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let (mut head, mut stream) = get_stream(gw, path, headers);
    if head.status != 200 {
        let length: usize = head
            .header("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).expect("the error body");
        head.body = body;
    }
    head
}

/// Reads raw bytes until `done` holds for everything read so far, the peer closes, or `timeout`.
/// Returns the bytes and whether the peer closed (EOF or reset).
fn read_raw(
    stream: &mut TcpStream,
    timeout: Duration,
    mut done: impl FnMut(&[u8]) -> bool,
) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + timeout;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 65536];
    while !done(&bytes) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (bytes, false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (bytes, true),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return (bytes, true),
        }
    }
    (bytes, false)
}

fn count(haystack: &[u8], needle: &str) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

/// One `POST /mcp` written on an existing (keep-alive) connection.
fn write_post(stream: &mut TcpStream, addr: &str, session: &str, body: &[u8]) {
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\n\
         MCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
}

fn methods(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["method"].as_str().unwrap_or("response").to_string())
        .collect()
}

fn progress_call(id: u64, steps: u64, interval_ms: u64, token: &str) -> Vec<u8> {
    rpc(
        json!(id),
        "tools/call",
        json!({"name": "progress", "arguments": {"steps": steps, "intervalMs": interval_ms},
               "_meta": {"progressToken": token}}),
    )
}

fn echo_call(id: u64, text: &str) -> Vec<u8> {
    rpc(
        json!(id),
        "tools/call",
        json!({"name": "echo", "arguments": {"text": text}}),
    )
}

// ---------------------------------------------------------------------------------------------
// POST /mcp refusals
// ---------------------------------------------------------------------------------------------

#[test]
fn post_with_a_content_type_other_than_json_is_415() {
    let gw = gateway();
    let session = gw.mcp();
    let body = rpc(json!(1), "ping", json!({}));
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/json",
    ] {
        let response = post(
            &gw,
            "/mcp",
            &[
                ("Content-Type", content_type),
                ACCEPT_BOTH,
                ("Mcp-Session-Id", &session.session_id),
            ],
            &body,
        );
        assert_eq!(response.status, 415, "{content_type}: {}", response.text());
        assert_eq!(rpc_code(&response), -32600);
    }
    // Parameters and case do not matter; a missing Content-Type is tolerated.
    for headers in [
        vec![("Content-Type", "application/json; charset=utf-8")],
        vec![("Content-Type", "Application/JSON")],
        vec![],
    ] {
        let mut headers = headers;
        headers.push(ACCEPT_BOTH);
        headers.push(("Mcp-Session-Id", &session.session_id));
        let response = post(&gw, "/mcp", &headers, &body);
        assert_eq!(response.status, 200, "{headers:?}: {}", response.text());
        assert_eq!(response.json()["result"], json!({}));
    }
}

#[test]
fn post_accepting_neither_json_nor_event_stream_is_406() {
    let gw = gateway();
    let session = gw.mcp();
    let body = rpc(json!(1), "ping", json!({}));
    for accept in ["text/html", "image/png, text/plain", "application/xml"] {
        let response = post(
            &gw,
            "/mcp",
            &[
                JSON_BODY,
                ("Accept", accept),
                ("Mcp-Session-Id", &session.session_id),
            ],
            &body,
        );
        assert_eq!(response.status, 406, "Accept {accept}: {}", response.text());
        assert_eq!(rpc_code(&response), -32600);
    }
    // Accepted: either type alone, */*, application/*, or no Accept at all.
    for accept in [
        Some("application/json"),
        Some("text/event-stream"),
        Some("*/*"),
        Some("application/*"),
        None,
    ] {
        let mut headers = vec![JSON_BODY, ("Mcp-Session-Id", session.session_id.as_str())];
        if let Some(accept) = accept {
            headers.push(("Accept", accept));
        }
        let response = post(&gw, "/mcp", &headers, &body);
        assert_eq!(
            response.status,
            200,
            "Accept {accept:?}: {}",
            response.text()
        );
    }
}

#[test]
fn unsupported_protocol_version_header_is_400() {
    let gw = gateway();
    let session = gw.mcp();
    let body = rpc(json!(1), "ping", json!({}));
    for bad in ["2099-01-01", "2025-11-24", "latest", ""] {
        let response = post_mcp(
            &gw,
            Some(&session.session_id),
            &[("MCP-Protocol-Version", bad)],
            &body,
        );
        assert_eq!(response.status, 400, "version {bad:?}: {}", response.text());
        // 2026-07-28's code for it, naming what the gateway speaks, with the request's id.
        assert_eq!(rpc_code(&response), -32022);
        assert_eq!(response.json()["id"], 1, "{}", response.text());
        assert!(response.json()["error"]["data"]["supported"]
            .as_array()
            .is_some_and(|s| s.contains(&json!("2025-11-25"))));
    }
    // Also on initialize: no session comes of it.
    let response = post_mcp(
        &gw,
        None,
        &[("MCP-Protocol-Version", "1999-12-31")],
        &initialize_body("2025-11-25"),
    );
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.header("mcp-session-id").is_none());
    for good in ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"] {
        let response = post_mcp(
            &gw,
            Some(&session.session_id),
            &[("MCP-Protocol-Version", good)],
            &body,
        );
        assert_eq!(response.status, 200, "version {good}: {}", response.text());
    }
}

#[test]
fn batch_array_is_400_invalid_request() {
    let gw = gateway();
    let session = gw.mcp();
    for body in [
        format!(
            "[{}]",
            String::from_utf8(rpc(json!(1), "ping", json!({}))).unwrap()
        ),
        "  \r\n [ ]".to_string(),
    ] {
        let response = post_mcp(&gw, Some(&session.session_id), &[], body.as_bytes());
        assert_eq!(response.status, 400, "{body}: {}", response.text());
        assert_eq!(rpc_code(&response), -32600);
        assert_eq!(response.json()["id"], Value::Null);
    }
    // A batched initialize opens nothing either.
    let batch = format!(
        "[{}]",
        String::from_utf8(initialize_body("2025-11-25")).unwrap()
    );
    let response = post_mcp(&gw, None, &[], batch.as_bytes());
    assert_eq!(response.status, 400);
    assert!(response.header("mcp-session-id").is_none());
}

#[test]
fn invalid_json_is_400_parse_error() {
    let gw = gateway();
    let session = gw.mcp();
    for body in [&b"{\"jsonrpc\": \"2.0\", \"id\": 1,"[..], b"not json", b""] {
        let response = post_mcp(&gw, Some(&session.session_id), &[], body);
        assert_eq!(
            response.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(body),
            response.text()
        );
        assert_eq!(rpc_code(&response), -32700);
        assert_eq!(response.json()["id"], Value::Null);
    }
}

#[test]
fn invalid_message_without_an_id_is_400_invalid_request() {
    let gw = gateway();
    let session = gw.mcp();
    for body in [
        r#"{"foo": 1}"#,
        r#"{"jsonrpc": "2.0", "id": null, "method": "ping"}"#,
        r#"42"#,
        r#""ping""#,
    ] {
        let response = post_mcp(&gw, Some(&session.session_id), &[], body.as_bytes());
        assert_eq!(response.status, 400, "{body}: {}", response.text());
        assert_eq!(rpc_code(&response), -32600);
        assert_eq!(response.json()["id"], Value::Null);
    }
}

#[test]
fn invalid_message_with_an_id_is_200_with_the_error_for_that_id() {
    let gw = gateway();
    let session = gw.mcp();
    let cases = [
        (
            r#"{"jsonrpc": "1.0", "id": 7, "method": "ping"}"#,
            json!(7),
            -32600,
        ),
        (
            r#"{"jsonrpc": "2.0", "id": "seven", "method": "tools/list", "params": [1]}"#,
            json!("seven"),
            -32602,
        ),
    ];
    for (body, id, code) in cases {
        let response = post_mcp(&gw, Some(&session.session_id), &[], body.as_bytes());
        assert_eq!(response.status, 200, "{body}: {}", response.text());
        assert_eq!(response.header("content-type"), Some("application/json"));
        let answer = response.json();
        assert_eq!(answer["id"], id, "{answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        assert!(answer.get("result").is_none());
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

#[test]
fn initialize_creates_a_session_with_a_signed_id() {
    let gw = gateway();
    assert_eq!(health_sessions(&gw), 0);
    let a = open_session(&gw, "/mcp", &[]);
    let b = open_session(&gw, "/mcp", &[]);
    assert!(is_session_id(&a), "{a}");
    assert!(is_session_id(&b), "{b}");
    assert_ne!(a, b);
    assert_eq!(health_sessions(&gw), 2);
}

#[test]
fn request_without_session_header_is_400() {
    let gw = gateway();
    let _session = gw.mcp();
    let response = post_mcp(&gw, None, &[], &rpc(json!(1), "tools/list", json!({})));
    assert_eq!(response.status, 400, "{}", response.text());
    assert_eq!(rpc_code(&response), -32600);
    let response = post_mcp(
        &gw,
        None,
        &[],
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(response.status, 400, "a notification needs a session too");
    let get = get_once(&gw, "/mcp", &[("Accept", "text/event-stream")]);
    assert_eq!(get.status, 400, "GET: {}", get.text());
    let delete = gw.request("DELETE", "/mcp", &[], b"");
    assert_eq!(delete.status, 400, "DELETE: {}", delete.text());
}

#[test]
fn unknown_session_is_404() {
    let gw = gateway();
    let session = gw.mcp();
    let mut unknown = session.session_id.clone();
    // Same shape, one digit changed.
    let last = if unknown.ends_with('0') { "1" } else { "0" };
    unknown.replace_range(31.., last);
    for id in [
        unknown.as_str(),
        "nonsense",
        "00000000000000000000000000000000",
    ] {
        let response = post_mcp(&gw, Some(id), &[], &rpc(json!(1), "ping", json!({})));
        assert_eq!(response.status, 404, "{id}: {}", response.text());
        assert_eq!(rpc_code(&response), -32600);
        let get = get_once(
            &gw,
            "/mcp",
            &[("Accept", "text/event-stream"), ("Mcp-Session-Id", id)],
        );
        assert_eq!(get.status, 404, "GET {id}: {}", get.text());
        let delete = gw.request("DELETE", "/mcp", &[("Mcp-Session-Id", id)], b"");
        assert_eq!(delete.status, 404, "DELETE {id}: {}", delete.text());
    }
    // The real session is untouched.
    let ping = post_mcp(
        &gw,
        Some(&session.session_id),
        &[],
        &rpc(json!(1), "ping", json!({})),
    );
    assert_eq!(ping.status, 200);
}

#[test]
fn legacy_sse_session_id_is_404_on_mcp() {
    let gw = gateway();
    let legacy = gw.sse();
    let response = post_mcp(
        &gw,
        Some(&legacy.session_id),
        &[],
        &rpc(json!(1), "ping", json!({})),
    );
    assert_eq!(response.status, 404, "{}", response.text());
}

#[test]
fn streamable_session_id_is_404_on_messages() {
    let gw = gateway();
    let session = gw.mcp();
    let response = post(
        &gw,
        &format!("/messages?sessionId={}", session.session_id),
        &[JSON_BODY],
        &rpc(json!(1), "ping", json!({})),
    );
    // 202 would promise an answer on a legacy stream this session does not have.
    assert_eq!(response.status, 404, "{}", response.text());
    assert_eq!(rpc_code(&response), -32600);
}

#[test]
fn session_is_404_after_delete() {
    let gw = gateway();
    let mut session = gw.mcp();
    let other = gw.mcp();
    assert_eq!(session.request("ping", json!({})).http.status, 200);
    assert_eq!(health_sessions(&gw), 2);
    let deleted = session.delete();
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(health_sessions(&gw), 1);
    let ping = session.request("ping", json!({}));
    assert_eq!(ping.http.status, 404, "{}", ping.http.text());
    let note = session.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    assert_eq!(note.http.status, 404);
    let get = get_once(
        &gw,
        "/mcp",
        &[
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &session.session_id),
        ],
    );
    assert_eq!(get.status, 404, "{}", get.text());
    assert_eq!(session.delete().status, 404, "a second DELETE");
    // The other session lives on.
    let ping = other.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
    assert_eq!(ping.http.status, 200);
}

#[test]
fn idle_session_expires_after_session_timeout_unless_its_stream_is_open() {
    let gw = gateway_with(json!({
        "gateway": {"sessionTimeout": 1000},
        "servers": [demo("demo", &[])],
    }));
    let idle = gw.mcp();
    let streaming = gw.mcp();
    let (head, stream) = streaming.open_stream();
    assert_eq!(head.status, 200);
    // Fresh sessions work.
    let ping = rpc(json!(1), "ping", json!({}));
    assert_eq!(
        post_mcp(&gw, Some(&idle.session_id), &[], &ping).status,
        200
    );
    assert_eq!(health_sessions(&gw), 2);
    // Watched through /health (a POST would refresh the session).
    wait_for(ANSWER, "the idle session to be forgotten", || {
        (health_sessions(&gw) == 1).then_some(())
    });
    let response = post_mcp(&gw, Some(&idle.session_id), &[], &ping);
    assert_eq!(response.status, 404, "expired: {}", response.text());
    let response = post_mcp(&gw, Some(&streaming.session_id), &[], &ping);
    assert_eq!(response.status, 200, "the session with a stream open stays");
    // Once its stream is gone, it expires too.
    drop(stream);
    wait_for(
        ANSWER,
        "the session to expire once its stream closed",
        || (health_sessions(&gw) == 0).then_some(()),
    );
    let response = post_mcp(&gw, Some(&streaming.session_id), &[], &ping);
    assert_eq!(response.status, 404);
}

#[test]
fn session_with_a_call_running_longer_than_session_timeout_is_kept() {
    let gw = gateway_with(json!({
        "gateway": {"sessionTimeout": 1000},
        "servers": [demo("demo", &[])],
    }));
    let mut session = gw.mcp();
    // The session is in use for the whole call: it must neither expire nor lose the call.
    let call = session.request(
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 3000}}),
    );
    assert_eq!(call.http.status, 200);
    assert_eq!(
        call.response()["result"]["content"][0]["text"],
        "slept 3000 ms",
        "the session expired under a running call: {}",
        call.response()
    );
    let ping = session.request("ping", json!({}));
    assert_eq!(
        ping.http.status,
        200,
        "the session expired while its call ran: {}",
        ping.http.text()
    );
}

#[test]
fn refused_initialize_creates_no_session() {
    let gw = gateway();
    let body = rpc(
        json!("init"),
        "initialize",
        json!({"capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}),
    );
    let response = post_mcp(&gw, None, &[], &body);
    assert_eq!(response.status, 200, "{}", response.text());
    let answer = response.json();
    assert_eq!(answer["id"], "init");
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert!(
        response.header("mcp-session-id").is_none(),
        "{:?}",
        response.headers
    );
    assert_eq!(health_sessions(&gw), 0);
    // And protocolVersion of the wrong type likewise.
    let body = rpc(json!(2), "initialize", json!({"protocolVersion": 20251125}));
    let response = post_mcp(&gw, None, &[], &body);
    assert_eq!(response.json()["error"]["code"], -32602);
    assert!(response.header("mcp-session-id").is_none());
    assert_eq!(health_sessions(&gw), 0);
}

#[test]
fn initialize_ignores_a_stale_session_header() {
    let gw = gateway();
    let old = gw.mcp();
    assert_eq!(old.delete().status, 200);
    for stale in [old.session_id.as_str(), "ffffffffffffffffffffffffffffffff"] {
        let response = post_mcp(&gw, Some(stale), &[], &initialize_body("2025-11-25"));
        assert_eq!(response.status, 200, "{}", response.text());
        let id = response
            .header("mcp-session-id")
            .expect("a new session")
            .to_string();
        assert!(is_session_id(&id));
        assert_ne!(id, stale);
        let ping = post_mcp(&gw, Some(&id), &[], &rpc(json!(1), "ping", json!({})));
        assert_eq!(ping.status, 200);
    }
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_request_gets_a_json_answer() {
    let gw = gateway();
    let mut session = gw.mcp();
    let reply = session.request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "plain"}}),
    );
    assert_eq!(reply.http.status, 200);
    assert_eq!(reply.http.header("content-type"), Some("application/json"));
    assert!(reply.http.header("transfer-encoding").is_none());
    assert_eq!(
        reply.http.header("content-length"),
        Some(reply.http.body.len().to_string().as_str())
    );
    assert_eq!(
        reply.http.header("mcp-session-id"),
        Some(session.session_id.as_str())
    );
    assert_eq!(reply.messages.len(), 1);
    assert_eq!(reply.response()["id"], 1);
    assert_eq!(reply.response()["result"]["content"][0]["text"], "plain");
}

#[test]
fn progress_gets_an_sse_answer_and_the_connection_is_reused_after_it() {
    let gw = gateway();
    let session = gw.mcp();
    let mut stream = connect(&gw);
    // 1: an SSE answer on a keep-alive connection.
    write_post(
        &mut stream,
        &gw.addr(),
        &session.session_id,
        &progress_call(1, 3, 20, "tok-1"),
    );
    let first = read_response(&mut stream).expect("the SSE answer");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("text/event-stream"));
    assert_eq!(first.header("transfer-encoding"), Some("chunked"));
    assert_ne!(first.header("connection"), Some("close"));
    let messages = mcp_messages(&first);
    assert_eq!(
        methods(&messages),
        [
            "notifications/progress",
            "notifications/progress",
            "notifications/progress",
            "response"
        ]
    );
    for (i, m) in messages[..3].iter().enumerate() {
        assert_eq!(m["params"]["progressToken"], "tok-1");
        assert_eq!(m["params"]["progress"], i as u64 + 1);
    }
    assert_eq!(messages[3]["id"], 1);
    assert_eq!(messages[3]["result"]["content"][0]["text"], "done 3 steps");
    // 2: the same connection carries the next request, answered as JSON.
    write_post(
        &mut stream,
        &gw.addr(),
        &session.session_id,
        &rpc(json!(2), "ping", json!({})),
    );
    let second = read_response(&mut stream).expect("an answer on the reused connection");
    assert_eq!(second.status, 200);
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert_eq!(
        second.json(),
        json!({"jsonrpc": "2.0", "id": 2, "result": {}})
    );
    // 3: and another SSE answer after that.
    write_post(
        &mut stream,
        &gw.addr(),
        &session.session_id,
        &progress_call(3, 1, 0, "tok-3"),
    );
    let third = read_response(&mut stream).expect("a second SSE answer");
    let messages = mcp_messages(&third);
    assert_eq!(methods(&messages), ["notifications/progress", "response"]);
    assert_eq!(messages[0]["params"]["progressToken"], "tok-3");
    assert_eq!(messages[1]["id"], 3);
}

#[test]
fn progress_is_not_streamed_to_a_client_accepting_only_json() {
    let gw = gateway();
    let session = gw.mcp();
    let response = post(
        &gw,
        "/mcp",
        &[
            JSON_BODY,
            ("Accept", "application/json"),
            ("Mcp-Session-Id", &session.session_id),
        ],
        &progress_call(5, 3, 1, "p"),
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let answer = response.json();
    assert_eq!(answer["id"], 5);
    assert_eq!(answer["result"]["content"][0]["text"], "done 3 steps");
}

#[test]
fn notifications_and_responses_get_202_with_an_empty_body() {
    let gw = gateway();
    let session = gw.mcp();
    for body in [
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}),
        json!({"jsonrpc": "2.0", "method": "notifications/whatever"}),
        json!({"jsonrpc": "2.0", "id": "gw-999", "result": {}}),
        json!({"jsonrpc": "2.0", "id": 5, "error": {"code": -1, "message": "no"}}),
    ] {
        let response = post_mcp(
            &gw,
            Some(&session.session_id),
            &[],
            &serde_json::to_vec(&body).unwrap(),
        );
        assert_eq!(response.status, 202, "{body}: {}", response.text());
        assert!(response.body.is_empty(), "{body}: {:?}", response.text());
    }
    // Nothing broke.
    let ping = post_mcp(
        &gw,
        Some(&session.session_id),
        &[],
        &rpc(json!(1), "ping", json!({})),
    );
    assert_eq!(ping.json()["result"], json!({}));
}

// ---------------------------------------------------------------------------------------------
// GET stream
// ---------------------------------------------------------------------------------------------

#[test]
fn get_stream_opens_as_event_stream_with_the_session_id() {
    let gw = gateway();
    let session = gw.mcp();
    let (head, stream) = session.open_stream();
    assert_eq!(head.status, 200);
    assert!(stream.is_some());
    assert!(head
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream")));
    assert_eq!(
        head.header("mcp-session-id"),
        Some(session.session_id.as_str())
    );
}

#[test]
fn get_stream_sends_keepalive_comments() {
    let gw = gateway_with(json!({
        "gateway": {"keepaliveInterval": 200},
        "servers": [demo("demo", &[])],
    }));
    let session = gw.mcp();
    let (head, stream) = session.open_stream();
    assert_eq!(head.status, 200);
    let mut stream = stream.unwrap();
    let (bytes, closed) = read_raw(&mut stream, ANSWER, |b| count(b, ": keepalive\n") >= 2);
    assert!(
        !closed,
        "the stream closed: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(
        count(&bytes, ": keepalive\n") >= 2,
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn second_get_stream_is_409() {
    let gw = gateway();
    let session = gw.mcp();
    let (first, stream) = session.open_stream();
    assert_eq!(first.status, 200);
    let headers = [
        ("Accept", "text/event-stream"),
        ("Mcp-Session-Id", session.session_id.as_str()),
    ];
    let second = get_once(&gw, "/mcp", &headers);
    assert_eq!(second.status, 409, "{}", second.text());
    assert_eq!(rpc_code(&second), -32600);
    // Once the first is gone, a new one may open.
    drop(stream);
    wait_for(ANSWER, "a new GET stream after the first closed", || {
        let (head, stream) = get_stream(&gw, "/mcp", &headers);
        (head.status == 200).then_some(stream)
    });
}

#[test]
fn get_without_accepting_event_stream_is_406() {
    let gw = gateway();
    let session = gw.mcp();
    for accept in [Some("application/json"), None] {
        let mut headers = vec![("Mcp-Session-Id", session.session_id.as_str())];
        if let Some(accept) = accept {
            headers.push(("Accept", accept));
        }
        let response = get_once(&gw, "/mcp", &headers);
        assert_eq!(
            response.status,
            406,
            "Accept {accept:?}: {}",
            response.text()
        );
    }
    // The refused GETs did not take the session's one stream.
    let (head, _stream) = session.open_stream();
    assert_eq!(head.status, 200);
}

#[test]
fn delete_closes_the_get_stream() {
    let gw = gateway();
    let session = gw.mcp();
    let (head, stream) = session.open_stream();
    assert_eq!(head.status, 200);
    let mut stream = stream.unwrap();
    assert_eq!(session.delete().status, 200);
    let (_, closed) = read_raw(&mut stream, ANSWER, |_| false);
    assert!(
        closed,
        "the GET stream was still open {ANSWER:?} after DELETE"
    );
    assert_eq!(health_sessions(&gw), 0);
}

#[test]
fn list_changed_arrives_on_the_get_stream_when_a_slow_server_comes_up() {
    let gw = Gateway::start(json!({
        "servers": [demo("fast", &[]), demo("slow", &["--init-delay", "2000"])],
        "mapping": {"fast": {"prefix": "fast_"}, "slow": {"prefix": "slow_"}},
    }));
    wait_for(ANSWER, "the fast server up", || {
        (gw.server_health("fast")["status"] == "up").then_some(())
    });
    let mut session = gw.mcp();
    let (head, stream) = session.open_stream();
    assert_eq!(head.status, 200);
    let mut stream = stream.unwrap();
    assert_ne!(
        gw.server_health("slow")["status"],
        "up",
        "the slow server must come up after the stream opened for this test to mean anything"
    );
    let before = session.request("tools/list", json!({}));
    let names = |reply: &util::McpReply| -> Vec<String> {
        reply.response()["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(!names(&before).iter().any(|n| n.starts_with("slow_")));
    let events = util::read_events(&mut stream, ANSWER, |events| {
        events.iter().any(|(_, data)| data.contains("list_changed"))
    });
    let note = events
        .iter()
        .filter(|(event, _)| event == "message")
        .map(|(_, data)| serde_json::from_str::<Value>(data).unwrap())
        .find(|m| m["method"] == "notifications/tools/list_changed")
        .unwrap_or_else(|| panic!("no tools/list_changed on the GET stream: {events:?}"));
    assert!(note.get("id").is_none());
    assert_eq!(gw.server_health("slow")["status"], "up");
    let after = session.request("tools/list", json!({}));
    assert!(
        names(&after).contains(&"slow_echo".to_string()),
        "{:?}",
        names(&after)
    );
}

// ---------------------------------------------------------------------------------------------
// /sse and the legacy transport beside /mcp
// ---------------------------------------------------------------------------------------------

#[test]
fn post_sse_works_as_streamable_http() {
    let gw = gateway();
    let id = open_session(&gw, "/sse", &[]);
    assert!(is_session_id(&id));
    let headers = [JSON_BODY, ACCEPT_BOTH, ("Mcp-Session-Id", id.as_str())];
    let call = post(&gw, "/sse", &headers, &echo_call(1, "via /sse"));
    assert_eq!(call.status, 200, "{}", call.text());
    assert_eq!(call.json()["result"]["content"][0]["text"], "via /sse");
    // An SSE answer on /sse too.
    let progress = post(&gw, "/sse", &headers, &progress_call(2, 2, 1, "s"));
    assert_eq!(progress.header("content-type"), Some("text/event-stream"));
    assert_eq!(
        methods(&mcp_messages(&progress)),
        [
            "notifications/progress",
            "notifications/progress",
            "response"
        ]
    );
    // The same session on /mcp.
    let ping = post_mcp(&gw, Some(&id), &[], &rpc(json!(3), "ping", json!({})));
    assert_eq!(ping.status, 200);
    // Same refusals as /mcp.
    let missing = post(&gw, "/sse", &[JSON_BODY, ACCEPT_BOTH], &echo_call(4, "x"));
    assert_eq!(missing.status, 400);
    let wrong_type = post(
        &gw,
        "/sse",
        &[
            ("Content-Type", "text/plain"),
            ACCEPT_BOTH,
            ("Mcp-Session-Id", &id),
        ],
        &echo_call(5, "x"),
    );
    assert_eq!(wrong_type.status, 415);
}

#[test]
fn legacy_sse_and_messages_still_work_beside_mcp() {
    let gw = gateway();
    let mut streamable = gw.mcp();
    let mut legacy = gw.sse();
    assert!(legacy.endpoint.starts_with("/messages?sessionId="));
    let init = legacy.initialize();
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-gateway");
    assert_eq!(health_sessions(&gw), 2);
    // Same ids on both transports; each gets its own answer.
    let on_mcp = streamable.post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "streamable"}}}));
    legacy.send(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "legacy"}}}));
    let on_sse = legacy.response_to(&json!(9), ANSWER);
    assert_eq!(on_mcp.response()["id"], 9);
    assert_eq!(
        on_mcp.response()["result"]["content"][0]["text"],
        "streamable"
    );
    assert_eq!(on_sse["result"]["content"][0]["text"], "legacy");
    // The legacy stream still gets progress before the result.
    legacy.send(&json!({"jsonrpc": "2.0", "id": 50, "method": "tools/call",
        "params": {"name": "progress", "arguments": {"steps": 2, "intervalMs": 1},
                   "_meta": {"progressToken": 7}}}));
    let first = legacy.next_message(ANSWER).expect("progress");
    assert_eq!(first["method"], "notifications/progress");
    assert_eq!(first["params"]["progressToken"], 7);
    let result = legacy.response_to(&json!(50), ANSWER);
    assert_eq!(result["result"]["content"][0]["text"], "done 2 steps");
    legacy.close();
    wait_for(ANSWER, "the legacy session to end", || {
        (health_sessions(&gw) == 1).then_some(())
    });
    assert_eq!(streamable.request("ping", json!({})).http.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Protocol versions
// ---------------------------------------------------------------------------------------------

#[test]
fn supported_protocol_versions_are_echoed_and_unknown_ones_get_the_latest() {
    let gw = gateway();
    for (requested, expected) in [
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", "2024-11-05"),
        ("2025-11-25", "2025-11-25"),
        ("2099-01-01", "2025-11-25"),
        ("1.0", "2025-11-25"),
    ] {
        let response = post_mcp(&gw, None, &[], &initialize_body(requested));
        assert_eq!(response.status, 200, "{requested}: {}", response.text());
        assert_eq!(
            response.json()["result"]["protocolVersion"],
            expected,
            "requested {requested}"
        );
        let id = response
            .header("mcp-session-id")
            .expect("a session")
            .to_string();
        if expected == requested {
            // Later requests carry the negotiated version.
            let ping = post_mcp(
                &gw,
                Some(&id),
                &[("MCP-Protocol-Version", expected)],
                &rpc(json!(1), "tools/list", json!({})),
            );
            assert_eq!(ping.status, 200, "{requested}: {}", ping.text());
            assert!(ping.json()["result"]["tools"].is_array());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Origin gate
// ---------------------------------------------------------------------------------------------

fn assert_forbidden(response: &HttpResponse, what: &str) {
    assert_eq!(response.status, 403, "{what}: {}", response.text());
    assert!(
        response.json()["error"]["message"].as_str().is_some(),
        "{what}: {}",
        response.text()
    );
}

#[test]
fn foreign_origin_is_403_on_mcp_sse_messages_and_rest() {
    let gw = gateway();
    let session = gw.mcp();
    let legacy = gw.sse();
    for evil in ["http://evil.example", "https://localhost.evil.com", "null"] {
        let origin = ("Origin", evil);
        let response = post_mcp(&gw, None, &[origin], &initialize_body("2025-11-25"));
        assert_forbidden(&response, &format!("POST /mcp initialize from {evil}"));
        assert!(response.header("mcp-session-id").is_none());
        let response = post_mcp(
            &gw,
            Some(&session.session_id),
            &[origin],
            &echo_call(1, "x"),
        );
        assert_forbidden(&response, "POST /mcp tools/call");
        let response = get_once(
            &gw,
            "/mcp",
            &[
                origin,
                ("Accept", "text/event-stream"),
                ("Mcp-Session-Id", &session.session_id),
            ],
        );
        assert_forbidden(&response, "GET /mcp");
        let response = gw.request(
            "DELETE",
            "/mcp",
            &[origin, ("Mcp-Session-Id", &session.session_id)],
            b"",
        );
        assert_forbidden(&response, "DELETE /mcp");
        let response = get_once(&gw, "/sse", &[origin, ("Accept", "text/event-stream")]);
        assert_forbidden(&response, "GET /sse");
        let response = post(
            &gw,
            "/sse",
            &[origin, JSON_BODY, ACCEPT_BOTH],
            &initialize_body("2025-11-25"),
        );
        assert_forbidden(&response, "POST /sse");
        let response = post(
            &gw,
            &legacy.endpoint,
            &[origin, JSON_BODY],
            &rpc(json!(1), "ping", json!({})),
        );
        assert_forbidden(&response, "POST /messages");
        let response = gw.request("GET", "/tools", &[origin], b"");
        assert_forbidden(&response, "GET /tools");
        let response = post(
            &gw,
            "/tools/call",
            &[origin, JSON_BODY],
            br#"{"name":"echo","arguments":{"text":"x"}}"#,
        );
        assert_forbidden(&response, "POST /tools/call");
        let response = gw.request("GET", "/", &[origin], b"");
        assert_forbidden(&response, "GET /");
    }
    // The refused DELETE did not end the session; no session was created.
    assert_eq!(health_sessions(&gw), 2);
    let ping = post_mcp(
        &gw,
        Some(&session.session_id),
        &[],
        &rpc(json!(1), "ping", json!({})),
    );
    assert_eq!(ping.status, 200);
}

#[test]
fn health_is_never_403() {
    let gw = gateway();
    for origin in ["http://evil.example", "null"] {
        let response = gw.request("GET", "/health", &[("Origin", origin)], b"");
        assert_eq!(response.status, 200, "{origin}: {}", response.text());
        assert_eq!(response.json()["status"], "ok");
        let head = gw.request("HEAD", "/health", &[("Origin", origin)], b"");
        assert_eq!(head.status, 200);
    }
}

#[test]
fn loopback_origins_are_allowed() {
    let gw = gateway();
    for origin in [
        "http://localhost",
        "http://localhost:5173",
        "https://localhost:8443",
        "http://127.0.0.1:6274",
        "http://127.1.2.3",
        "http://[::1]:3000",
    ] {
        let response = post_mcp(
            &gw,
            None,
            &[("Origin", origin)],
            &initialize_body("2025-11-25"),
        );
        assert_eq!(response.status, 200, "{origin}: {}", response.text());
        assert!(response.header("mcp-session-id").is_some(), "{origin}");
        let tools = gw.request("GET", "/tools", &[("Origin", origin)], b"");
        assert_eq!(tools.status, 200, "{origin}");
        // cors is off: no CORS headers even for allowed origins.
        assert!(response.header("access-control-allow-origin").is_none());
    }
}

#[test]
fn allowed_origins_entry_is_allowed() {
    let gw = gateway_with(json!({
        "gateway": {"allowedOrigins": ["https://app.example.com"]},
        "servers": [demo("demo", &[])],
    }));
    let origin = ("Origin", "https://app.example.com");
    let response = post_mcp(&gw, None, &[origin], &initialize_body("2025-11-25"));
    assert_eq!(response.status, 200, "{}", response.text());
    let id = response.header("mcp-session-id").unwrap().to_string();
    let call = post_mcp(&gw, Some(&id), &[origin], &echo_call(1, "allowed"));
    assert_eq!(call.json()["result"]["content"][0]["text"], "allowed");
    let (head, _stream) = get_stream(&gw, "/sse", &[origin, ("Accept", "text/event-stream")]);
    assert_eq!(head.status, 200);
    assert_eq!(gw.request("GET", "/tools", &[origin], b"").status, 200);
    // Exact match only.
    for near in [
        "https://app.example.com.evil.net",
        "http://app.example.com",
        "https://app.example.com:8443",
    ] {
        let response = post_mcp(
            &gw,
            None,
            &[("Origin", near)],
            &initialize_body("2025-11-25"),
        );
        assert_forbidden(&response, near);
    }
}

// ---------------------------------------------------------------------------------------------
// Bearer token
// ---------------------------------------------------------------------------------------------

fn token_gateway() -> Gateway {
    let gw = Gateway::start_with(
        json!({
            "gateway": {"authToken": "${STREAMABLE_TEST_TOKEN}"},
            "servers": [demo("demo", &[])],
        }),
        &[("STREAMABLE_TEST_TOKEN", TOKEN)],
        &[],
    );
    gw.wait_up();
    gw
}

fn assert_unauthorized(response: &HttpResponse, what: &str) {
    assert_eq!(response.status, 401, "{what}: {}", response.text());
    assert_eq!(
        response.header("www-authenticate"),
        Some("Bearer realm=\"mcp-gateway\""),
        "{what}"
    );
    assert!(response.json()["error"]["message"].is_string(), "{what}");
}

#[test]
fn missing_or_wrong_bearer_token_is_401_with_www_authenticate() {
    let gw = token_gateway();
    let wrong_values = [
        None,
        Some("Bearer wrong".to_string()),
        Some("Bearer ${STREAMABLE_TEST_TOKEN}".to_string()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
    ];
    for auth in &wrong_values {
        let mut extra = Vec::new();
        if let Some(auth) = auth {
            extra.push(("Authorization", auth.as_str()));
        }
        let what = format!("Authorization {auth:?}");
        let response = post_mcp(&gw, None, &extra, &initialize_body("2025-11-25"));
        assert_unauthorized(&response, &format!("POST /mcp, {what}"));
        assert!(response.header("mcp-session-id").is_none());
        let mut get = extra.clone();
        get.push(("Accept", "text/event-stream"));
        assert_unauthorized(&get_once(&gw, "/sse", &get), &format!("GET /sse, {what}"));
        assert_unauthorized(
            &gw.request("GET", "/tools", &extra, b""),
            &format!("GET /tools, {what}"),
        );
        let mut call = extra.clone();
        call.push(JSON_BODY);
        let response = post(
            &gw,
            "/tools/call",
            &call,
            br#"{"name":"echo","arguments":{"text":"x"}}"#,
        );
        assert_unauthorized(&response, &format!("POST /tools/call, {what}"));
    }
    assert_eq!(health_sessions(&gw), 0);
    assert_eq!(gw.server_health("demo")["calls"], 0, "no call got through");
}

#[test]
fn right_bearer_token_works_on_mcp() {
    let gw = token_gateway();
    ready_with_token(&gw);
    let bearer = format!("Bearer {TOKEN}");
    let auth = ("Authorization", bearer.as_str());
    let id = open_session(&gw, "/mcp", &[auth]);
    let call = post_mcp(&gw, Some(&id), &[auth], &echo_call(1, "authorized"));
    assert_eq!(call.status, 200, "{}", call.text());
    assert_eq!(call.json()["result"]["content"][0]["text"], "authorized");
    let (head, _stream) = get_stream(
        &gw,
        "/mcp",
        &[
            auth,
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &id),
        ],
    );
    assert_eq!(head.status, 200);
    // A session id is no credential: the token is needed on every request.
    let response = post_mcp(&gw, Some(&id), &[], &echo_call(2, "x"));
    assert_unauthorized(&response, "POST /mcp with a session but no token");
    let response = gw.request("DELETE", "/mcp", &[("Mcp-Session-Id", &id)], b"");
    assert_unauthorized(&response, "DELETE /mcp without a token");
    let delete = gw.request("DELETE", "/mcp", &[auth, ("Mcp-Session-Id", &id)], b"");
    assert_eq!(delete.status, 200);
}

/// `ready`, with the token.
fn ready_with_token(gw: &Gateway) {
    let bearer = format!("Bearer {TOKEN}");
    wait_for(ANSWER, "the demo tools to be routable", || {
        let tools = gw.request("GET", "/tools", &[("Authorization", &bearer)], b"");
        assert_eq!(
            tools.status,
            200,
            "GET /tools with the token: {}",
            tools.text()
        );
        tools.json()["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "echo"))
            .then_some(())
    });
}

#[test]
fn right_bearer_token_works_on_rest_and_legacy_sse() {
    let gw = token_gateway();
    ready_with_token(&gw);
    let bearer = format!("Bearer {TOKEN}");
    let auth = ("Authorization", bearer.as_str());
    let call = post(
        &gw,
        "/tools/call",
        &[auth, JSON_BODY],
        br#"{"name":"echo","arguments":{"text":"rest"}}"#,
    );
    assert_eq!(call.status, 200, "{}", call.text());
    assert_eq!(call.json()["result"]["content"][0]["text"], "rest");
    // "bearer" in lower case is the same scheme.
    let lower = format!("bearer {TOKEN}");
    let tools = gw.request("GET", "/tools", &[("Authorization", &lower)], b"");
    assert_eq!(tools.status, 200);

    let (head, mut stream) = get_stream(&gw, "/sse", &[auth, ("Accept", "text/event-stream")]);
    assert_eq!(head.status, 200);
    let events = util::read_events(&mut stream, ANSWER, |e| !e.is_empty());
    assert_eq!(
        events.first().map(|e| e.0.as_str()),
        Some("endpoint"),
        "{events:?}"
    );
    let endpoint = events[0].1.clone();
    let message = rpc(json!(1), "ping", json!({}));
    let refused = post(&gw, &endpoint, &[JSON_BODY], &message);
    assert_unauthorized(&refused, "POST /messages without a token");
    let accepted = post(&gw, &endpoint, &[auth, JSON_BODY], &message);
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let events = util::read_events(&mut stream, ANSWER, |e| e.iter().any(|e| e.0 == "message"));
    let answer: Value = serde_json::from_str(
        &events
            .iter()
            .find(|e| e.0 == "message")
            .unwrap_or_else(|| panic!("no answer on the legacy stream: {events:?}"))
            .1,
    )
    .unwrap();
    assert_eq!(answer, json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
}

#[test]
fn health_and_options_need_no_token() {
    let gw = token_gateway();
    // Without the token /health answers, but tells only its status.
    let health = gw.get("/health");
    assert_eq!(health.status, 200, "{}", health.text());
    assert!(health.json()["status"].is_string());
    assert!(health.json()["servers"].is_null(), "{}", health.text());
    for path in ["/mcp", "/tools/call", "/sse"] {
        let response = gw.request(
            "OPTIONS",
            path,
            &[
                ("Origin", "http://localhost:5173"),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
            ],
            b"",
        );
        assert_eq!(response.status, 204, "OPTIONS {path}: {}", response.text());
    }
}

// ---------------------------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------------------------

fn assert_preflight_headers(response: &HttpResponse, origin: &str) {
    assert_eq!(response.status, 204, "{}", response.text());
    assert_eq!(response.header("access-control-allow-origin"), Some(origin));
    let methods = response
        .header("access-control-allow-methods")
        .expect("Access-Control-Allow-Methods")
        .to_ascii_uppercase();
    for method in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(method), "{method} not in {methods}");
    }
    let allowed: Vec<String> = response
        .header("access-control-allow-headers")
        .expect("Access-Control-Allow-Headers")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for header in [
        "authorization",
        "content-type",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
    ] {
        assert!(
            allowed.iter().any(|h| h == header),
            "{header} not in {allowed:?}"
        );
    }
}

fn preflight(gw: &Gateway, path: &str, origin: &str) -> HttpResponse {
    gw.request(
        "OPTIONS",
        path,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "content-type, mcp-session-id, mcp-protocol-version",
            ),
        ],
        b"",
    )
}

fn assert_exposes_session_id(response: &HttpResponse, what: &str) {
    let exposed = response
        .header("access-control-expose-headers")
        .unwrap_or_else(|| {
            panic!(
                "{what}: no Access-Control-Expose-Headers in {:?}",
                response.headers
            )
        });
    assert!(
        exposed
            .split(',')
            .any(|h| h.trim().eq_ignore_ascii_case("mcp-session-id")),
        "{what}: {exposed}"
    );
}

#[test]
fn cors_list_answers_preflight_and_marks_responses_for_its_origin() {
    let gw = gateway_with(json!({
        "gateway": {"cors": ["http://localhost:5173"]},
        "servers": [demo("demo", &[])],
    }));
    let app = "http://localhost:5173";
    for path in ["/mcp", "/sse", "/tools/call", "/messages"] {
        assert_preflight_headers(&preflight(&gw, path, app), app);
    }
    // The JSON answer to initialize, with the session id readable by the page.
    let init = post_mcp(
        &gw,
        None,
        &[("Origin", app)],
        &initialize_body("2025-11-25"),
    );
    assert_eq!(init.status, 200);
    assert_eq!(init.header("access-control-allow-origin"), Some(app));
    assert_exposes_session_id(&init, "initialize");
    let id = init.header("mcp-session-id").unwrap().to_string();
    // An SSE answer.
    let progress = post_mcp(
        &gw,
        Some(&id),
        &[("Origin", app)],
        &progress_call(1, 1, 0, "c"),
    );
    assert_eq!(progress.header("content-type"), Some("text/event-stream"));
    assert_eq!(progress.header("access-control-allow-origin"), Some(app));
    assert_exposes_session_id(&progress, "SSE answer");
    // A 202.
    let note = post_mcp(
        &gw,
        Some(&id),
        &[("Origin", app)],
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(note.status, 202);
    assert_eq!(note.header("access-control-allow-origin"), Some(app));
    // The GET stream.
    let (head, _stream) = get_stream(
        &gw,
        "/mcp",
        &[
            ("Origin", app),
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &id),
        ],
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.header("access-control-allow-origin"), Some(app));
    assert_exposes_session_id(&head, "GET stream");
    // REST and errors too.
    let tools = gw.request("GET", "/tools", &[("Origin", app)], b"");
    assert_eq!(tools.header("access-control-allow-origin"), Some(app));
    let missing = post_mcp(&gw, None, &[("Origin", app)], &echo_call(2, "x"));
    assert_eq!(missing.status, 400);
    assert_eq!(missing.header("access-control-allow-origin"), Some(app));

    // Another loopback origin is let in but gets no CORS headers; a foreign one is refused.
    let other = "http://localhost:3000";
    let response = post_mcp(
        &gw,
        None,
        &[("Origin", other)],
        &initialize_body("2025-11-25"),
    );
    assert_eq!(response.status, 200);
    assert!(response.header("access-control-allow-origin").is_none());
    let response = preflight(&gw, "/mcp", other);
    assert_eq!(response.status, 204);
    assert!(response.header("access-control-allow-origin").is_none());
    assert!(response.header("access-control-allow-headers").is_none());
    let foreign = post_mcp(
        &gw,
        None,
        &[("Origin", "https://evil.example")],
        &initialize_body("2025-11-25"),
    );
    assert_forbidden(&foreign, "a foreign origin with a cors list");
    // No Origin, no CORS headers.
    let plain = post_mcp(&gw, None, &[], &initialize_body("2025-11-25"));
    assert!(plain.header("access-control-allow-origin").is_none());
}

#[test]
fn cors_true_allows_any_origin() {
    let gw = gateway_with(json!({
        "gateway": {"cors": true},
        "servers": [demo("demo", &[])],
    }));
    let origin = "https://any.example.org";
    assert_preflight_headers(&preflight(&gw, "/mcp", origin), "*");
    let init = post_mcp(
        &gw,
        None,
        &[("Origin", origin)],
        &initialize_body("2025-11-25"),
    );
    assert_eq!(
        init.status,
        200,
        "cors: true lets any origin in: {}",
        init.text()
    );
    assert_eq!(init.header("access-control-allow-origin"), Some("*"));
    assert_exposes_session_id(&init, "initialize");
    let id = init.header("mcp-session-id").unwrap().to_string();
    let call = post_mcp(
        &gw,
        Some(&id),
        &[("Origin", origin)],
        &echo_call(1, "anywhere"),
    );
    assert_eq!(call.json()["result"]["content"][0]["text"], "anywhere");
    assert_eq!(call.header("access-control-allow-origin"), Some("*"));
    let tools = gw.request("GET", "/tools", &[("Origin", origin)], b"");
    assert_eq!(tools.status, 200);
    assert_eq!(tools.header("access-control-allow-origin"), Some("*"));
}

// ---------------------------------------------------------------------------------------------
// A client vanishing mid-answer
// ---------------------------------------------------------------------------------------------

#[test]
fn client_closing_during_an_sse_answer_leaves_the_gateway_healthy() {
    let gw = gateway();
    let mut session = gw.mcp();
    let mut stream = connect(&gw);
    write_post(
        &mut stream,
        &gw.addr(),
        &session.session_id,
        &progress_call(1, 10, 200, "gone"),
    );
    let head = read_head(&mut stream);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let (bytes, closed) = read_raw(&mut stream, ANSWER, |b| {
        count(b, "notifications/progress") >= 1
    });
    assert!(
        !closed && count(&bytes, "notifications/progress") == 1,
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(gw.health()["inFlight"], 1, "the call is running");
    stream.shutdown(Shutdown::Both).unwrap();
    drop(stream);
    wait_for(ANSWER, "inFlight back to 0", || {
        (gw.health()["inFlight"] == 0).then_some(())
    });
    let health = gw.health();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(gw.server_health("demo")["restarts"], 0);
    // The session and the server still work, SSE answers included.
    let echo = session.request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "still here"}}),
    );
    assert_eq!(
        echo.response()["result"]["content"][0]["text"],
        "still here"
    );
    let progress = session.request(
        "tools/call",
        json!({"name": "progress", "arguments": {"steps": 2, "intervalMs": 1},
               "_meta": {"progressToken": "again"}}),
    );
    assert_eq!(
        methods(&progress.messages),
        [
            "notifications/progress",
            "notifications/progress",
            "response"
        ]
    );
    assert_eq!(gw.call("echo", json!({"text": "rest"})).status, 200);
}
