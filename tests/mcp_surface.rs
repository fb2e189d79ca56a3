//! The whole MCP surface of the gateway through real `mcp-demo-server` children: initialize
//! capabilities, the gateway's own pagination of the merged lists, prompts/get, completion,
//! resources/read (routing, unknown URIs, a URI listed by two servers), resource subscriptions,
//! logging, progress tokens, cancellation, list_changed and the requests a server sends to the
//! client mid-call (sampling, elicitation, roots). Most of it over Streamable HTTP (`/mcp`); the
//! stream-borne behaviours (server->client requests, cancellation, progress, subscriptions, logging,
//! list_changed) over the legacy SSE transport too.

mod util;

use mcp_gateway::http::SseParser;
use serde_json::{json, Value};
use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::{demo, wait_for, Gateway, McpSession, SseSession};

const WAIT: Duration = Duration::from_secs(10);
/// How long we listen to be sure something does NOT arrive (after the positive case arrived).
const QUIET: Duration = Duration::from_millis(600);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// One demo server named `demo` exposed with the prefix `d_`, plus extra gateway settings.
fn prefixed_demo(flags: &[&str], gateway: Value) -> Value {
    json!({
        "gateway": gateway,
        "servers": [demo("demo", flags)],
        "mapping": {"demo": {"prefix": "d_"}},
    })
}

/// A gateway with one prefixed demo server, up.
fn start_demo(flags: &[&str]) -> Gateway {
    let gw = Gateway::start(prefixed_demo(flags, json!({})));
    gw.wait_up();
    gw
}

/// The `result` of a JSON-RPC response (panics with the message otherwise).
fn result(response: &Value) -> &Value {
    assert!(
        response.get("error").is_none() && response.get("result").is_some(),
        "expected a result, got {response}"
    );
    &response["result"]
}

/// The error code of a JSON-RPC response (panics if it is not an error).
fn error_code(response: &Value) -> i64 {
    response["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("expected an error, got {response}"))
}

/// The first text content of a CallToolResult.
fn text(result: &Value) -> &str {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {result}"))
}

/// Anything that delivers server->client JSON-RPC messages with a deadline.
trait Inbox {
    fn next_msg(&mut self, timeout: Duration) -> Option<Value>;

    /// Everything that arrives within `window`.
    fn collect_for(&mut self, window: Duration) -> Vec<Value> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return out;
            }
            match self.next_msg(left) {
                Some(m) => out.push(m),
                None => return out,
            }
        }
    }

    /// Waits for a message with `method`; returns it and the messages seen before it.
    fn wait_method(&mut self, method: &str, timeout: Duration) -> (Value, Vec<Value>) {
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_msg(left) {
                Some(m) if m["method"] == method => return (m, before),
                Some(m) => before.push(m),
                None => panic!("no {method} within {timeout:?}; saw {before:?}"),
            }
        }
    }

    /// Waits for the response with `id`; returns it and the messages seen before it.
    fn wait_response(&mut self, id: &Value, timeout: Duration) -> (Value, Vec<Value>) {
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_msg(left) {
                Some(m) if &m["id"] == id && m.get("method").is_none() => return (m, before),
                Some(m) => before.push(m),
                None => panic!("no response to {id} within {timeout:?}; saw {before:?}"),
            }
        }
    }
}

impl Inbox for SseSession {
    fn next_msg(&mut self, timeout: Duration) -> Option<Value> {
        self.next_message(timeout)
    }
}

/// Reads SSE events off a raw byte source; `chunked` decodes `Transfer-Encoding: chunked` first.
struct EventReader {
    stream: TcpStream,
    chunked: bool,
    /// Undecoded chunked bytes.
    raw: Vec<u8>,
    parser: SseParser,
    pending: VecDeque<Value>,
    /// The body ended (last chunk, or the connection closed).
    ended: bool,
}

impl EventReader {
    fn new(stream: TcpStream, chunked: bool) -> EventReader {
        EventReader {
            stream,
            chunked,
            raw: Vec::new(),
            parser: SseParser::new(),
            pending: VecDeque::new(),
            ended: false,
        }
    }

    fn feed_events(&mut self, bytes: &[u8]) {
        for event in self.parser.feed(bytes) {
            if event.event == "message" {
                let value: Value = serde_json::from_str(&event.data)
                    .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", event.data));
                self.pending.push_back(value);
            }
        }
    }

    /// Decodes every complete chunk in `raw`.
    fn decode_chunks(&mut self) {
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {size_text:?}"));
            let needed = line_end + 2 + size + 2;
            if self.raw.len() < needed {
                return;
            }
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                return;
            }
            let data = self.raw[line_end + 2..line_end + 2 + size].to_vec();
            assert_eq!(
                &self.raw[needed - 2..needed],
                b"\r\n",
                "chunk not CRLF-terminated"
            );
            self.raw.drain(..needed);
            self.feed_events(&data);
        }
    }

    fn accept(&mut self, bytes: &[u8]) {
        if self.chunked {
            self.raw.extend_from_slice(bytes);
            self.decode_chunks();
        } else {
            self.feed_events(bytes);
        }
    }

    /// Reads until the body ends or `timeout` passes; true if it ended.
    fn wait_end(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.ended {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.read_some(left) {
                break;
            }
        }
        self.ended
    }

    /// One read; false on timeout.
    fn read_some(&mut self, timeout: Duration) -> bool {
        let mut buf = [0u8; 65536];
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.ended = true;
                true
            }
            Ok(n) => {
                self.accept(&buf[..n]);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(_) => {
                self.ended = true;
                true
            }
        }
    }
}

impl Inbox for EventReader {
    fn next_msg(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Some(m);
            }
            if self.ended {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.read_some(left) {
                return None;
            }
        }
    }
}

/// Reads an HTTP response head byte by byte (so no body byte is consumed): (status, headers).
fn read_head(stream: &mut TcpStream) -> (u16, Vec<(String, String)>) {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("reading the response head");
        assert_eq!(n, 1, "connection closed in the head: {head:?}");
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = text
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The `GET /mcp` stream of a Streamable HTTP session.
fn get_stream(session: &McpSession) -> EventReader {
    let (response, stream) = session.open_stream();
    assert_eq!(response.status, 200, "GET /mcp: {}", response.text());
    EventReader::new(stream.expect("the GET stream"), false)
}

/// A `POST /mcp` whose answer is read as it arrives (the harness' `McpSession::post` waits for the
/// whole body, which never comes while the server waits for the client's answer).
struct StreamingPost {
    status: u16,
    headers: Vec<(String, String)>,
    events: EventReader,
}

impl StreamingPost {
    /// Sends the request; does not read anything yet.
    fn send(gw: &Gateway, session_id: &str, message: &Value) -> TcpStream {
        let body = serde_json::to_vec(message).unwrap();
        let mut stream = gw.connect();
        write!(
            stream,
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMcp-Session-Id: {session_id}\r\n\
             MCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n\r\n",
            gw.addr(),
            body.len()
        )
        .unwrap();
        stream.write_all(&body).unwrap();
        stream
    }

    /// Reads the head of the answer on `stream`; a JSON answer is read whole.
    fn answer(mut stream: TcpStream) -> StreamingPost {
        let (status, headers) = read_head(&mut stream);
        let sse =
            header(&headers, "content-type").is_some_and(|c| c.starts_with("text/event-stream"));
        let chunked = header(&headers, "transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
        let mut events = EventReader::new(stream, chunked);
        if !sse {
            let length: usize = header(&headers, "content-length")
                .and_then(|l| l.parse().ok())
                .expect("a JSON answer has a Content-Length");
            let mut body = vec![0u8; length];
            events.stream.read_exact(&mut body).unwrap();
            if !body.is_empty() {
                events
                    .pending
                    .push_back(serde_json::from_slice(&body).unwrap());
            }
            events.ended = true;
        }
        StreamingPost {
            status,
            headers,
            events,
        }
    }

    fn start(gw: &Gateway, session_id: &str, message: &Value) -> StreamingPost {
        Self::answer(Self::send(gw, session_id, message))
    }

    fn content_type(&self) -> &str {
        header(&self.headers, "content-type").unwrap_or("")
    }
}

/// A keep-alive connection POSTing to `/mcp` for one session: requests in quick succession, the way
/// a real client sends them, with no connection setup between an answer and the next request.
struct KeepAlive {
    stream: TcpStream,
    addr: String,
    session_id: String,
    next_id: u64,
}

impl KeepAlive {
    fn new(gw: &Gateway, session: &McpSession) -> KeepAlive {
        let stream = gw.connect();
        stream.set_nodelay(true).unwrap();
        KeepAlive {
            stream,
            addr: gw.addr(),
            session_id: session.session_id.clone(),
            next_id: 1000,
        }
    }

    /// One request; its JSON answer.
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let body =
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
                .to_string();
        let request = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json\r\nMcp-Session-Id: {}\r\n\
             MCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            self.session_id,
            body.len()
        );
        // One write: no Nagle delay between the head and the body.
        self.stream.write_all(request.as_bytes()).unwrap();
        let response = util::read_response(&mut self.stream).expect("an answer");
        assert_eq!(response.status, 200, "{method}: {}", response.text());
        let answer = response.json();
        assert_eq!(answer["id"], self.next_id);
        answer
    }
}

/// Initializes a legacy session with the given client capabilities.
fn legacy_session(gw: &Gateway, capabilities: Value) -> SseSession {
    let mut session = gw.sse();
    let init = session.request(
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": capabilities,
               "clientInfo": {"name": "test", "version": "1"}}),
    );
    result(&init);
    session.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    session
}

/// The results of `requests` sent straight to a fresh demo server over stdio (no gateway): what the
/// demo itself offers, to compare the gateway's merged view with.
fn demo_direct(flags: &[&str], requests: &[(&str, Value)]) -> Vec<Value> {
    let mut child = Command::new(util::demo_server())
        .args(flags)
        .env_remove("DEMO_SERVER_NAME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mcp-demo-server");
    let mut input = String::new();
    input.push_str(
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "direct", "version": "1"}}})
        .to_string(),
    );
    input.push('\n');
    input.push_str(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string());
    input.push('\n');
    for (i, (method, params)) in requests.iter().enumerate() {
        input.push_str(
            &json!({"jsonrpc": "2.0", "id": i + 1, "method": method, "params": params}).to_string(),
        );
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin); // EOF: the demo answers what it has and exits
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect();
        let _ = tx.send(lines);
    });
    let lines = rx
        .recv_timeout(WAIT)
        .expect("the demo server answers and exits on EOF");
    let _ = child.kill();
    let _ = child.wait();
    let messages: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("demo output is JSON"))
        .collect();
    (1..=requests.len())
        .map(|id| {
            let response = messages
                .iter()
                .find(|m| m["id"] == id)
                .unwrap_or_else(|| panic!("the demo did not answer request {id}: {lines:?}"));
            result(response).clone()
        })
        .collect()
}

/// Walks a list method by `nextCursor` until it is absent; returns the pages.
fn walk_pages(session: &mut McpSession, method: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut cursor: Option<Value> = None;
    loop {
        assert!(pages.len() < 50, "{method}: the cursor chain does not end");
        let params = match &cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let reply = session.request(method, params);
        assert_eq!(reply.http.status, 200);
        let page = result(reply.response()).clone();
        cursor = page.get("nextCursor").cloned();
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
        assert!(
            cursor.as_ref().unwrap().is_string(),
            "nextCursor is a string: {cursor:?}"
        );
    }
}

/// `def` with its `name` prefixed (how the gateway exposes the demo's tools and prompts).
fn with_prefix(def: &Value, prefix: &str) -> Value {
    let mut def = def.clone();
    let name = def["name"].as_str().unwrap().to_string();
    def["name"] = json!(format!("{prefix}{name}"));
    def
}

/// Waits until the server's pool has `n` handles, all idle.
fn wait_idle_handles(gw: &Gateway, server: &str, n: u64) {
    wait_for(WAIT, &format!("{n} idle handles of {server}"), || {
        let pool = gw.server_health(server)["pool"].clone();
        (pool["total"] == n && pool["idle"] == n).then_some(())
    });
}

fn wait_in_flight(gw: &Gateway, n: u64) {
    wait_for(WAIT, &format!("/health inFlight == {n}"), || {
        (gw.health()["inFlight"] == n).then_some(())
    });
}

fn count_method(messages: &[Value], method: &str) -> usize {
    messages.iter().filter(|m| m["method"] == method).count()
}

// ---------------------------------------------------------------------------------------------
// initialize capabilities
// ---------------------------------------------------------------------------------------------

#[test]
fn initialize_advertises_every_capability_the_demo_offers_on_both_transports() {
    let gw = start_demo(&[]);
    let expected = json!({
        "tools": {"listChanged": true},
        "prompts": {"listChanged": true},
        "resources": {"listChanged": true, "subscribe": true},
        "logging": {},
        "completions": {},
    });
    // Streamable HTTP: the initialize answer itself.
    let answer = util::http_request(
        &gw.addr(),
        "POST",
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
               "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                          "clientInfo": {"name": "t", "version": "1"}}})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["result"]["capabilities"], expected);
    // Legacy SSE: the same.
    let mut legacy = gw.sse();
    let init = legacy.initialize();
    assert_eq!(init["result"]["capabilities"], expected);
}

#[test]
fn initialize_advertises_the_capabilities_of_a_server_that_has_not_listed_yet() {
    // The demo answers initialize only after 2 s: sessions opened meanwhile still learn that
    // prompts, resources, logging and completions may come.
    let gw = Gateway::start(prefixed_demo(&["--init-delay", "2000"], json!({})));
    assert_ne!(gw.server_health("demo")["status"], "up", "too late to test");
    let mut legacy = gw.sse();
    let init = legacy.initialize();
    assert_ne!(
        gw.server_health("demo")["status"],
        "up",
        "the server came up before we asked; the test proves nothing"
    );
    let caps = &init["result"]["capabilities"];
    for key in ["tools", "prompts", "resources", "logging", "completions"] {
        assert!(caps.get(key).is_some(), "{key} missing from {caps}");
    }
}

#[test]
fn initialize_offers_only_tools_when_the_only_server_is_disabled() {
    let mut server = demo("demo", &[]);
    server["enabled"] = json!(false);
    let gw = Gateway::start(json!({"servers": [server]}));
    assert_eq!(gw.server_health("demo")["status"], "disabled");
    let answer = util::http_request(
        &gw.addr(),
        "POST",
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ],
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
               "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                          "clientInfo": {"name": "t", "version": "1"}}})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(
        answer.json()["result"]["capabilities"],
        json!({"tools": {"listChanged": true}})
    );
    assert_eq!(answer.json()["result"]["protocolVersion"], "2025-06-18");
}

// ---------------------------------------------------------------------------------------------
// Pagination
// ---------------------------------------------------------------------------------------------

#[test]
fn lists_are_paged_by_the_gateway_and_hold_every_demo_item_exactly_once() {
    // The demo pages its own lists by 2 (the gateway must fetch every page downstream); the
    // gateway pages the merged lists by 3 with its own cursors.
    let gw = Gateway::start(prefixed_demo(&["--page-size", "2"], json!({"pageSize": 3})));
    gw.wait_up();
    let direct = demo_direct(
        &[],
        &[
            ("tools/list", json!({})),
            ("prompts/list", json!({})),
            ("resources/list", json!({})),
            ("resources/templates/list", json!({})),
        ],
    );
    let mut session = gw.mcp();
    for (i, (method, key, prefix)) in [
        ("tools/list", "tools", "d_"),
        ("prompts/list", "prompts", "d_"),
        ("resources/list", "resources", ""),
        ("resources/templates/list", "resourceTemplates", ""),
    ]
    .into_iter()
    .enumerate()
    {
        let full: Vec<Value> = direct[i][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                if prefix.is_empty() {
                    d.clone()
                } else {
                    with_prefix(d, prefix)
                }
            })
            .collect();
        assert!(
            direct[i].get("nextCursor").is_none(),
            "the direct list is whole"
        );
        let pages = walk_pages(&mut session, method);
        let mut items = Vec::new();
        for (n, page) in pages.iter().enumerate() {
            let page_items = page[key]
                .as_array()
                .unwrap_or_else(|| panic!("{method}: {page}"));
            assert!(
                page_items.len() <= 3,
                "{method} page {n} has {} items",
                page_items.len()
            );
            if n + 1 < pages.len() {
                assert_eq!(
                    page_items.len(),
                    3,
                    "{method}: only the last page may be short"
                );
            }
            items.extend(page_items.iter().cloned());
        }
        assert_eq!(
            pages.len(),
            full.len().div_ceil(3).max(1),
            "{method}: {} items in pages of 3",
            full.len()
        );
        assert_eq!(
            items, full,
            "{method}: every item once, as the demo defines it"
        );
    }
    // The demo's 15 tools needed several downstream pages of 2 and several gateway pages of 3.
    assert_eq!(direct[0]["tools"].as_array().unwrap().len(), 15);
}

#[test]
fn list_cursors_the_gateway_never_issued_are_invalid_params() {
    let gw = Gateway::start(prefixed_demo(&["--page-size", "2"], json!({"pageSize": 3})));
    gw.wait_up();
    let mut session = gw.mcp();
    let first_tools = session.request("tools/list", json!({}));
    let tools_cursor = result(first_tools.response())["nextCursor"].clone();
    assert!(tools_cursor.is_string(), "15 tools by 3 have a second page");
    let first_resources = session.request("resources/list", json!({}));
    let resources_cursor = result(first_resources.response())["nextCursor"].clone();
    assert!(resources_cursor.is_null(), "3 resources fit one page of 3");

    let bogus = [
        json!("bogus"),
        json!("tools-999"),
        json!(""),
        json!(7),
        json!({"page": 1}),
    ];
    for method in [
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
    ] {
        for cursor in &bogus {
            let reply = session.request(method, json!({ "cursor": cursor }));
            assert_eq!(reply.http.status, 200);
            assert_eq!(
                error_code(reply.response()),
                -32602,
                "{method} with cursor {cursor}"
            );
        }
    }
    // A real cursor of the tools list means nothing to the other lists.
    for method in ["prompts/list", "resources/list", "resources/templates/list"] {
        let reply = session.request(method, json!({ "cursor": tools_cursor }));
        assert_eq!(
            error_code(reply.response()),
            -32602,
            "{method} with the tools cursor {tools_cursor}"
        );
    }
    // ... and it still works where it belongs.
    let second = session.request("tools/list", json!({ "cursor": tools_cursor }));
    assert_eq!(
        result(second.response())["tools"].as_array().unwrap().len(),
        3
    );
}

// ---------------------------------------------------------------------------------------------
// Prompts and completion
// ---------------------------------------------------------------------------------------------

#[test]
fn prompts_get_goes_through_the_prefix_and_unknown_prompts_are_invalid_params() {
    let gw = start_demo(&[]);
    let mut session = gw.mcp();
    let reply = session.request(
        "prompts/get",
        json!({"name": "d_greet", "arguments": {"name": "Ada"}}),
    );
    let prompt = result(reply.response());
    assert_eq!(prompt["description"], "A warm greeting for Ada");
    assert_eq!(
        prompt["messages"][0]["content"]["text"],
        "Please greet Ada warmly."
    );
    let summarize = session.request(
        "prompts/get",
        json!({"name": "d_summarize", "arguments": {"text": "x", "style": "short"}}),
    );
    assert!(text_of_prompt(summarize.response()).contains("short summary"));

    for unknown in ["greet", "d_nope", "d_"] {
        let reply = session.request("prompts/get", json!({ "name": unknown }));
        assert_eq!(reply.http.status, 200);
        assert_eq!(error_code(reply.response()), -32602, "prompt {unknown}");
    }
    // The demo's own -32602 (a missing required argument) passes through.
    let missing = session.request("prompts/get", json!({"name": "d_greet"}));
    assert_eq!(error_code(missing.response()), -32602);
    assert!(missing.response()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("name"));
}

fn text_of_prompt(response: &Value) -> String {
    result(response)["messages"][0]["content"]["text"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn completion_complete_maps_the_prefixed_prompt_and_the_echo_template() {
    let gw = start_demo(&[]);
    let mut session = gw.mcp();
    let prompt = session.request(
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "d_greet"},
               "argument": {"name": "name", "value": "a"}}),
    );
    assert_eq!(
        result(prompt.response())["completion"]["values"],
        json!(["alice"])
    );
    let all = session.request(
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "d_greet"},
               "argument": {"name": "name", "value": ""}}),
    );
    assert_eq!(
        result(all.response())["completion"]["values"],
        json!(["alice", "bob", "carol", "dave"])
    );
    let template = session.request(
        "completion/complete",
        json!({"ref": {"type": "ref/resource", "uri": "demo://echo/{text}"},
               "argument": {"name": "text", "value": "w"}}),
    );
    assert_eq!(
        result(template.response())["completion"]["values"],
        json!(["world"])
    );
    let unknown = session.request(
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "greet"},
               "argument": {"name": "name", "value": "a"}}),
    );
    assert_eq!(
        error_code(unknown.response()),
        -32602,
        "the unprefixed name is not exposed"
    );
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

#[test]
fn resources_read_returns_each_demo_resource_as_the_demo_serves_it() {
    let gw = start_demo(&[]);
    let uris = [
        "demo://readme",
        "demo://data.json",
        "demo://logo.png",
        "demo://echo/abc",
        "demo://echo/hello%20world",
    ];
    let requests: Vec<(&str, Value)> = uris
        .iter()
        .map(|u| ("resources/read", json!({ "uri": u })))
        .collect();
    let direct = demo_direct(&[], &requests);
    let mut session = gw.mcp();
    for (uri, expected) in uris.iter().zip(&direct) {
        let reply = session.request("resources/read", json!({ "uri": uri }));
        assert_eq!(reply.http.status, 200);
        assert_eq!(result(reply.response()), expected, "{uri}");
    }
    // And what that content is.
    let read = |session: &mut McpSession, uri: &str| {
        result(
            session
                .request("resources/read", json!({ "uri": uri }))
                .response(),
        )["contents"][0]
            .clone()
    };
    let readme = read(&mut session, "demo://readme");
    assert_eq!(readme["mimeType"], "text/markdown");
    assert!(!readme["text"].as_str().unwrap().is_empty());
    let data = read(&mut session, "demo://data.json");
    assert_eq!(data["mimeType"], "application/json");
    serde_json::from_str::<Value>(data["text"].as_str().unwrap()).expect("data.json is JSON");
    let logo = read(&mut session, "demo://logo.png");
    assert_eq!(logo["mimeType"], "image/png");
    assert!(
        logo["blob"].as_str().unwrap().starts_with("iVBORw0KGgo"),
        "a base64 PNG: {logo}"
    );
    assert!(logo.get("text").is_none());
    let echo = read(&mut session, "demo://echo/abc");
    assert_eq!(echo["text"], "abc");
    assert_eq!(echo["uri"], "demo://echo/abc");
}

#[test]
fn unknown_resource_uri_is_resource_not_found_with_the_uri() {
    // One resource server: the gateway forwards the URI to it and its -32002 passes through.
    let gw = start_demo(&[]);
    let mut session = gw.mcp();
    let reply = session.request("resources/read", json!({"uri": "demo://missing"}));
    assert_eq!(reply.http.status, 200);
    assert_eq!(error_code(reply.response()), -32002, "{}", reply.response());
    assert_eq!(reply.response()["error"]["data"]["uri"], "demo://missing");

    // Two resource servers: nobody lists or templates the URI, the gateway answers itself.
    let gw2 = Gateway::start(json!({
        "servers": [demo("a", &[]), demo("b", &[])],
        "mapping": {"a": {"prefix": "a_"}, "b": {"prefix": "b_"}},
    }));
    gw2.wait_up();
    let mut session2 = gw2.mcp();
    let reply = session2.request("resources/read", json!({"uri": "file:///etc/passwd"}));
    assert_eq!(error_code(reply.response()), -32002, "{}", reply.response());
    assert_eq!(
        reply.response()["error"]["data"],
        json!({"uri": "file:///etc/passwd"})
    );
    let calls = |gw: &Gateway| -> u64 {
        ["a", "b"]
            .iter()
            .map(|s| gw.server_health(s)["calls"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        calls(&gw2),
        0,
        "no server was bothered with the unknown URI"
    );
}

#[test]
fn a_uri_listed_by_two_servers_is_reported_and_read_from_the_first() {
    let gw = Gateway::start(json!({
        "servers": [demo("a", &[]), demo("b", &[])],
        "mapping": {"a": {"prefix": "a_"}, "b": {"prefix": "b_"}},
    }));
    let health = gw.wait_up();
    let collisions: Vec<&str> = health["collisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for uri in ["demo://readme", "demo://data.json", "demo://logo.png"] {
        let report = format!("resource {uri} is listed by servers a and b; a serves it");
        assert!(
            collisions.contains(&report.as_str()),
            "{report} not in {collisions:?}"
        );
    }
    let mut session = gw.mcp();
    let list = walk_pages(&mut session, "resources/list");
    let uris: Vec<&str> = list
        .iter()
        .flat_map(|p| p["resources"].as_array().unwrap())
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        ["demo://readme", "demo://data.json", "demo://logo.png"],
        "each URI listed once"
    );
    let before_a = gw.server_health("a")["calls"].as_u64().unwrap();
    let before_b = gw.server_health("b")["calls"].as_u64().unwrap();
    for uri in ["demo://readme", "demo://logo.png", "demo://echo/x"] {
        let reply = session.request("resources/read", json!({ "uri": uri }));
        assert_eq!(result(reply.response())["contents"][0]["uri"], uri);
    }
    assert_eq!(
        gw.server_health("a")["calls"].as_u64().unwrap(),
        before_a + 3
    );
    assert_eq!(
        gw.server_health("b")["calls"].as_u64().unwrap(),
        before_b,
        "b never serves a URI a lists (or templates)"
    );
}

// ---------------------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------------------

/// A gateway whose demo server runs three children, all warm.
fn three_children() -> Gateway {
    let mut server = demo("demo", &[]);
    server["poolSize"] = json!(3);
    server["minConnections"] = json!(3);
    let gw = Gateway::start(json!({"servers": [server], "mapping": {"demo": {"prefix": "d_"}}}));
    gw.wait_up();
    wait_idle_handles(&gw, "demo", 3);
    gw
}

/// Touches `uri` over REST; the tool answers "touched".
fn touch(gw: &Gateway, uri: &str) {
    let response = gw.call("d_touch", json!({ "uri": uri }));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(text(&response.json()["result"]), "touched");
}

/// Waits for exactly one `resources/updated` for `uri` (none may follow within QUIET).
fn expect_one_update(inbox: &mut impl Inbox, uri: &str, round: &str) {
    let (update, _) = inbox.wait_method("notifications/resources/updated", WAIT);
    assert_eq!(update["params"]["uri"], uri, "{round}");
    let more = inbox.collect_for(QUIET);
    assert_eq!(
        count_method(&more, "notifications/resources/updated"),
        0,
        "{round}: a second update arrived: {more:?}"
    );
}

/// Touches demo://readme with 0, 2 and 1 of the three children busy sleeping (so the touch runs on
/// different children); each time exactly one update must reach `inbox`.
fn touch_rounds(gw: &Gateway, inbox: &mut impl Inbox) {
    for busy in [0, 2, 1] {
        let sleepers: Vec<_> = (0..busy)
            .map(|_| {
                let addr = gw.addr();
                std::thread::spawn(move || {
                    util::http_request(
                        &addr,
                        "POST",
                        "/tools/call",
                        &[("Content-Type", "application/json")],
                        json!({"name": "d_sleep", "arguments": {"ms": 700}})
                            .to_string()
                            .as_bytes(),
                    )
                })
            })
            .collect();
        wait_for(WAIT, &format!("{busy} busy children"), || {
            (gw.server_health("demo")["pool"]["busy"] == busy).then_some(())
        });
        touch(gw, "demo://readme");
        expect_one_update(inbox, "demo://readme", &format!("{busy} children busy"));
        for sleeper in sleepers {
            assert_eq!(sleeper.join().unwrap().status, 200);
        }
    }
}

#[test]
fn subscribed_streamable_session_gets_exactly_one_update_per_touch_from_any_child() {
    let gw = three_children();
    let mut subscriber = gw.mcp();
    let mut subscriber_stream = get_stream(&subscriber);
    let bystander = gw.mcp();
    let mut bystander_stream = get_stream(&bystander);

    let reply = subscriber.request("resources/subscribe", json!({"uri": "demo://readme"}));
    assert_eq!(result(reply.response()), &json!({}));

    touch_rounds(&gw, &mut subscriber_stream);
    // A URI nobody subscribed to: nothing.
    touch(&gw, "demo://data.json");
    let quiet = subscriber_stream.collect_for(QUIET);
    assert_eq!(
        count_method(&quiet, "notifications/resources/updated"),
        0,
        "{quiet:?}"
    );

    // The other session never subscribed: it heard none of it.
    let heard = bystander_stream.collect_for(Duration::from_millis(100));
    assert_eq!(
        count_method(&heard, "notifications/resources/updated"),
        0,
        "an unsubscribed session got updates: {heard:?}"
    );

    // After unsubscribe: nothing more.
    let reply = subscriber.request("resources/unsubscribe", json!({"uri": "demo://readme"}));
    assert_eq!(result(reply.response()), &json!({}));
    touch(&gw, "demo://readme");
    let after = subscriber_stream.collect_for(QUIET);
    assert_eq!(
        count_method(&after, "notifications/resources/updated"),
        0,
        "an update after unsubscribe: {after:?}"
    );
}

#[test]
fn subscribed_legacy_session_gets_the_update_on_its_stream_until_it_unsubscribes() {
    let gw = three_children();
    let mut subscriber = legacy_session(&gw, json!({}));
    let mut bystander = legacy_session(&gw, json!({}));
    let reply = subscriber.request("resources/subscribe", json!({"uri": "demo://readme"}));
    assert_eq!(result(&reply), &json!({}));
    touch_rounds(&gw, &mut subscriber);
    let heard = bystander.collect_for(Duration::from_millis(100));
    assert_eq!(
        count_method(&heard, "notifications/resources/updated"),
        0,
        "{heard:?}"
    );
    let reply = subscriber.request("resources/unsubscribe", json!({"uri": "demo://readme"}));
    assert_eq!(result(&reply), &json!({}));
    touch(&gw, "demo://readme");
    let after = subscriber.collect_for(QUIET);
    assert_eq!(
        count_method(&after, "notifications/resources/updated"),
        0,
        "{after:?}"
    );
}

#[test]
fn an_update_right_after_the_subscribe_answer_is_not_lost() {
    // Once `resources/subscribe` is answered the subscription is in force: a change made right
    // after must be reported. Each round subscribes a new URI (so the gateway must subscribe
    // downstream again) and touches it at once.
    let gw = three_children();
    let session = gw.mcp();
    let mut stream = get_stream(&session);
    let mut conn = KeepAlive::new(&gw, &session);
    for round in 0..300 {
        let uri = format!("demo://echo/round-{round}");
        let reply = conn.request("resources/subscribe", json!({ "uri": uri }));
        assert_eq!(result(&reply), &json!({}));
        let touched = conn.request(
            "tools/call",
            json!({"name": "d_touch", "arguments": {"uri": uri}}),
        );
        assert_eq!(text(result(&touched)), "touched");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(m) = stream.next_msg(left) else {
                panic!(
                    "round {round}: the touch right after the subscribe answer was not reported \
                     (the children were not subscribed yet when the gateway said they were)"
                );
            };
            if m["method"] == "notifications/resources/updated" && m["params"]["uri"] == uri {
                break;
            }
        }
    }
}

#[test]
fn subscribing_to_an_unknown_uri_is_resource_not_found() {
    let gw = Gateway::start(json!({
        "servers": [demo("a", &[]), demo("b", &[])],
        "mapping": {"a": {"prefix": "a_"}, "b": {"prefix": "b_"}},
    }));
    gw.wait_up();
    let mut session = gw.mcp();
    let reply = session.request("resources/subscribe", json!({"uri": "nope://x"}));
    assert_eq!(error_code(reply.response()), -32002);
    assert_eq!(reply.response()["error"]["data"]["uri"], "nope://x");
}

// ---------------------------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------------------------

fn log_via_rest(gw: &Gateway, message: &str, level: &str) {
    let response = gw.call("d_log", json!({"message": message, "level": level}));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(text(&response.json()["result"]), "logged");
}

#[test]
fn log_messages_reach_only_streamable_sessions_whose_level_allows_them() {
    let gw = start_demo(&[]);
    let mut verbose = gw.mcp();
    let mut verbose_stream = get_stream(&verbose);
    let silent = gw.mcp(); // never sets a level
    let mut silent_stream = get_stream(&silent);
    let mut strict = gw.mcp();
    let mut strict_stream = get_stream(&strict);

    let reply = verbose.request("logging/setLevel", json!({"level": "debug"}));
    assert_eq!(result(reply.response()), &json!({}));
    let reply = strict.request("logging/setLevel", json!({"level": "error"}));
    assert_eq!(result(reply.response()), &json!({}));

    log_via_rest(&gw, "careful", "warning");
    let (message, _) = verbose_stream.wait_method("notifications/message", WAIT);
    assert_eq!(message["params"]["level"], "warning");
    assert_eq!(message["params"]["logger"], "demo/demo");
    assert_eq!(message["params"]["data"], "careful");

    // Debug messages need the downstream level lowered to debug (the demo's default is info).
    log_via_rest(&gw, "details", "debug");
    let (message, _) = verbose_stream.wait_method("notifications/message", WAIT);
    assert_eq!(message["params"]["level"], "debug");
    assert_eq!(message["params"]["data"], "details");

    let silent_heard = silent_stream.collect_for(QUIET);
    assert_eq!(
        count_method(&silent_heard, "notifications/message"),
        0,
        "a session without a level got log messages: {silent_heard:?}"
    );
    let strict_heard = strict_stream.collect_for(Duration::from_millis(100));
    assert_eq!(
        count_method(&strict_heard, "notifications/message"),
        0,
        "a session at level error got warning/debug messages: {strict_heard:?}"
    );
    // ... but an error does reach it.
    log_via_rest(&gw, "broken", "error");
    let (message, _) = strict_stream.wait_method("notifications/message", WAIT);
    assert_eq!(message["params"]["level"], "error");
    assert_eq!(message["params"]["data"], "broken");
}

#[test]
fn log_messages_reach_a_legacy_session_after_it_sets_a_level() {
    let gw = start_demo(&[]);
    let mut verbose = legacy_session(&gw, json!({}));
    let mut silent = legacy_session(&gw, json!({}));
    let reply = verbose.request("logging/setLevel", json!({"level": "debug"}));
    assert_eq!(result(&reply), &json!({}));
    // The session's own call emits it: it still arrives on the stream, before or after the result.
    let call = verbose.request(
        "tools/call",
        json!({"name": "d_log", "arguments": {"message": "careful", "level": "warning"}}),
    );
    assert_eq!(text(result(&call)), "logged");
    let (message, _) = verbose.wait_method("notifications/message", WAIT);
    assert_eq!(message["params"]["level"], "warning");
    assert_eq!(message["params"]["logger"], "demo/demo");
    assert_eq!(message["params"]["data"], "careful");
    // Debug messages need the servers' level lowered (the demo's default is info).
    log_via_rest(&gw, "details", "debug");
    let (message, _) = verbose.wait_method("notifications/message", WAIT);
    assert_eq!(message["params"]["level"], "debug");
    assert_eq!(message["params"]["data"], "details");
    let heard = silent.collect_for(QUIET);
    assert_eq!(
        count_method(&heard, "notifications/message"),
        0,
        "{heard:?}"
    );
}

#[test]
fn a_log_message_right_after_set_level_is_not_lost() {
    // Once `logging/setLevel` is answered the level is in force: a debug message logged right after
    // must arrive. Each round goes back to info first, so the servers' level changes every time.
    let gw = start_demo(&[]);
    let session = gw.mcp();
    let mut stream = get_stream(&session);
    let mut conn = KeepAlive::new(&gw, &session);
    for round in 0..300 {
        result(&conn.request("logging/setLevel", json!({"level": "info"})));
        result(&conn.request("logging/setLevel", json!({"level": "debug"})));
        let message = format!("round {round}");
        let logged = conn.request(
            "tools/call",
            json!({"name": "d_log", "arguments": {"message": message, "level": "debug"}}),
        );
        assert_eq!(text(result(&logged)), "logged");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(m) = stream.next_msg(left) else {
                panic!(
                    "{message}: the debug message logged right after the setLevel answer was lost \
                     (the server's level was not lowered yet when the gateway answered)"
                );
            };
            if m["method"] == "notifications/message" && m["params"]["data"] == message.as_str() {
                break;
            }
        }
    }
}

#[test]
fn set_level_with_an_unknown_level_is_invalid_params_on_both_transports() {
    let gw = start_demo(&[]);
    let mut session = gw.mcp();
    for level in [json!("verbose"), json!("DEBUG"), json!(3), json!(null)] {
        let reply = session.request("logging/setLevel", json!({ "level": level }));
        assert_eq!(reply.http.status, 200);
        assert_eq!(error_code(reply.response()), -32602, "level {level}");
    }
    let missing = session.request("logging/setLevel", json!({}));
    assert_eq!(error_code(missing.response()), -32602);
    let mut legacy = legacy_session(&gw, json!({}));
    let reply = legacy.request("logging/setLevel", json!({"level": "loud"}));
    assert_eq!(error_code(&reply), -32602);
}

// ---------------------------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------------------------

/// Checks the progress notifications that came before a `progress` tool's result.
fn check_progress(before: &[Value], token: &Value, steps: u64) {
    let progress: Vec<&Value> = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len() as u64, steps, "{before:?}");
    for (i, note) in progress.iter().enumerate() {
        assert_eq!(
            &note["params"]["progressToken"], token,
            "token unchanged: {note}"
        );
        assert_eq!(note["params"]["progress"], i as u64 + 1);
        assert_eq!(note["params"]["total"], steps);
    }
}

#[test]
fn progress_tokens_come_back_unchanged_over_legacy_sse() {
    let gw = start_demo(&[]);
    let mut session = legacy_session(&gw, json!({}));
    for (id, token) in [
        (json!(101), json!("tok-α 1")),
        (json!("r2"), json!(42)),
        (json!(103), json!(-7)),
    ] {
        session.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "d_progress", "arguments": {"steps": 3, "intervalMs": 1},
                       "_meta": {"progressToken": token}}}));
        let (response, before) = session.wait_response(&id, WAIT);
        assert_eq!(text(result(&response)), "done 3 steps");
        check_progress(&before, &token, 3);
    }
}

#[test]
fn progress_tokens_come_back_unchanged_over_streamable_http() {
    let gw = start_demo(&[]);
    let mut session = gw.mcp();
    for token in [json!("tok-α 1"), json!(42), json!(0)] {
        let reply = session.request(
            "tools/call",
            json!({"name": "d_progress", "arguments": {"steps": 3, "intervalMs": 1},
                   "_meta": {"progressToken": token}}),
        );
        assert_eq!(reply.http.header("content-type"), Some("text/event-stream"));
        assert_eq!(text(result(reply.response())), "done 3 steps");
        let before = &reply.messages[..reply.messages.len() - 1];
        check_progress(before, &token, 3);
    }
}

// ---------------------------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------------------------

const SLEEP_MS: u64 = 3000;

/// One demo child, so a call stuck on it would hold up the next.
fn one_child() -> Gateway {
    let mut server = demo("demo", &[]);
    server["poolSize"] = json!(1);
    server["minConnections"] = json!(1);
    let gw = Gateway::start(json!({"servers": [server], "mapping": {"demo": {"prefix": "d_"}}}));
    gw.wait_up();
    wait_idle_handles(&gw, "demo", 1);
    gw
}

/// After the cancelled sleep would have ended: the child never answered it (had it not stopped,
/// its late answer would have been dropped, and logged as such).
fn assert_child_stopped(gw: &Gateway, started: Instant) {
    let end = started + Duration::from_millis(SLEEP_MS + 700);
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    let logs = gw.logs();
    assert!(
        !logs.contains("dropping a late answer"),
        "the child kept sleeping and answered the cancelled call: {}",
        logs.lines()
            .filter(|l| l.contains("late answer"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        gw.server_health("demo")["spawns"],
        1,
        "the child was not replaced"
    );
}

#[test]
fn cancelled_call_on_legacy_sse_gets_no_answer_and_stops_the_child() {
    let gw = one_child();
    let mut session = legacy_session(&gw, json!({}));
    let started = Instant::now();
    session.send(
        &json!({"jsonrpc": "2.0", "id": "sleepy", "method": "tools/call",
        "params": {"name": "d_sleep", "arguments": {"ms": SLEEP_MS}}}),
    );
    wait_for(WAIT, "the sleep to run", || {
        (gw.server_health("demo")["pool"]["busy"] == 1).then_some(())
    });
    session.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": "sleepy", "reason": "changed my mind"}}),
    );
    // The only child is free again: an echo is answered while the sleep would still be running.
    let echo = session.request(
        "tools/call",
        json!({"name": "d_echo", "arguments": {"text": "hi"}}),
    );
    let echoed_at = Instant::now();
    assert_eq!(text(result(&echo)), "hi");
    assert!(
        echoed_at < started + Duration::from_millis(SLEEP_MS),
        "the echo waited for the cancelled sleep"
    );
    wait_in_flight(&gw, 0);
    // No answer for the cancelled id.
    let later = session.collect_for(Duration::from_secs(1));
    assert!(
        later.iter().all(|m| m["id"] != "sleepy"),
        "the cancelled call was answered: {later:?}"
    );
    let ping = session.request("ping", json!({}));
    assert_eq!(result(&ping), &json!({}));
    assert_child_stopped(&gw, started);
    let rest = session.collect_for(Duration::from_millis(100));
    assert!(rest.iter().all(|m| m["id"] != "sleepy"), "{rest:?}");
}

#[test]
fn cancelled_call_on_streamable_http_gets_minus_32800_and_stops_the_child() {
    let gw = one_child();
    let session = gw.mcp();
    let started = Instant::now();
    let pending = StreamingPost::send(
        &gw,
        &session.session_id,
        &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                "params": {"name": "d_sleep", "arguments": {"ms": SLEEP_MS}}}),
    );
    wait_for(WAIT, "the sleep to run", || {
        (gw.server_health("demo")["pool"]["busy"] == 1).then_some(())
    });
    let note = session.post(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 9, "reason": "changed my mind"}}),
    );
    assert_eq!(note.http.status, 202);
    let mut answer = StreamingPost::answer(pending);
    assert_eq!(answer.status, 200);
    let response = answer
        .events
        .next_msg(WAIT)
        .expect("an answer to the cancelled POST");
    let answered_at = Instant::now();
    assert_eq!(response["id"], 9);
    assert_eq!(error_code(&response), -32800, "{response}");
    assert!(
        answered_at < started + Duration::from_millis(SLEEP_MS),
        "the -32800 came only after the sleep would have ended"
    );
    let echo = session.post(&json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
        "params": {"name": "d_echo", "arguments": {"text": "hi"}}}));
    let echoed_at = Instant::now();
    assert_eq!(text(result(echo.response())), "hi");
    assert!(
        echoed_at < started + Duration::from_millis(SLEEP_MS),
        "the echo waited for the cancelled sleep"
    );
    wait_in_flight(&gw, 0);
    assert_child_stopped(&gw, started);
}

// ---------------------------------------------------------------------------------------------
// list_changed
// ---------------------------------------------------------------------------------------------

const LIST_CHANGED: [&str; 3] = [
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
];

fn expect_list_changed(inbox: &mut impl Inbox, transport: &str) {
    let deadline = Instant::now() + WAIT;
    let mut seen = BTreeSet::new();
    let mut all = Vec::new();
    while seen.len() < LIST_CHANGED.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(m) = inbox.next_msg(left) else {
            panic!("{transport}: got only {seen:?} of the list_changed notifications; saw {all:?}");
        };
        if let Some(method) = m["method"].as_str() {
            if LIST_CHANGED.contains(&method) {
                seen.insert(method.to_string());
            }
        }
        all.push(m);
    }
}

#[test]
fn notify_changed_reaches_sessions_as_list_changed_on_both_transports() {
    let gw = start_demo(&[]);
    let mut legacy = legacy_session(&gw, json!({}));
    let streamable = gw.mcp();
    let mut stream = get_stream(&streamable);
    let response = gw.call("d_notify_changed", json!({}));
    assert_eq!(text(&response.json()["result"]), "notified");
    expect_list_changed(&mut legacy, "legacy SSE");
    expect_list_changed(&mut stream, "Streamable HTTP GET stream");
}

#[test]
fn lists_growing_when_a_late_server_comes_up_are_announced() {
    // Server b answers initialize after 1.5 s: its tools, prompts and resources join the lists.
    let gw = Gateway::start(json!({
        "servers": [demo("a", &["--tools", "echo"]), demo("b", &["--init-delay", "1500"])],
        "mapping": {"a": {"prefix": "a_"}, "b": {"prefix": "b_"}},
    }));
    wait_for(WAIT, "server a up", || {
        (gw.server_health("a")["status"] == "up").then_some(())
    });
    let mut legacy = legacy_session(&gw, json!({}));
    let streamable = gw.mcp();
    let mut stream = get_stream(&streamable);
    assert_ne!(
        gw.server_health("b")["status"],
        "up",
        "b came up too early for the test"
    );
    expect_list_changed(&mut legacy, "legacy SSE");
    expect_list_changed(&mut stream, "Streamable HTTP GET stream");
}

// ---------------------------------------------------------------------------------------------
// Server -> client requests
// ---------------------------------------------------------------------------------------------

/// One kind of request a demo tool sends to the client.
struct Ask {
    tool: &'static str,
    arguments: Value,
    capability: &'static str,
    method: &'static str,
    /// What the test client answers.
    answer: Value,
}

fn asks() -> [Ask; 3] {
    [
        Ask {
            tool: "d_sample",
            arguments: json!({"prompt": "Capital of France?"}),
            capability: "sampling",
            method: "sampling/createMessage",
            answer: json!({"role": "assistant", "content": {"type": "text", "text": "Paris"},
                           "model": "test-model", "stopReason": "endTurn"}),
        },
        Ask {
            tool: "d_elicit",
            arguments: json!({"message": "Proceed?"}),
            capability: "elicitation",
            method: "elicitation/create",
            answer: json!({"action": "accept", "content": {"answer": "yes"}}),
        },
        Ask {
            tool: "d_roots",
            arguments: json!({}),
            capability: "roots",
            method: "roots/list",
            answer: json!({"roots": [{"uri": "file:///tmp/project", "name": "project"}]}),
        },
    ]
}

impl Ask {
    /// The request the client received is the demo's, under a gateway id.
    fn check_request(&self, request: &Value) -> String {
        assert_eq!(request["method"], self.method, "{request}");
        let id = request["id"]
            .as_str()
            .unwrap_or_else(|| panic!("string id: {request}"));
        assert!(id.starts_with("gw-"), "gateway id: {request}");
        match self.method {
            "sampling/createMessage" => assert_eq!(
                request["params"]["messages"][0]["content"]["text"],
                self.arguments["prompt"]
            ),
            "elicitation/create" => {
                assert_eq!(request["params"]["message"], self.arguments["message"])
            }
            _ => {}
        }
        id.to_string()
    }

    /// The tool result reflects the client's answer.
    fn check_result(&self, result: &Value) {
        assert_ne!(result["isError"], true, "{result}");
        match self.method {
            "sampling/createMessage" => assert_eq!(text(result), "Paris"),
            _ => {
                let echoed: Value = serde_json::from_str(text(result)).unwrap();
                assert_eq!(echoed, self.answer);
            }
        }
    }
}

#[test]
fn server_requests_are_forwarded_to_a_capable_legacy_client_and_answered() {
    let gw = start_demo(&[]);
    let mut session = legacy_session(
        &gw,
        json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}}),
    );
    for (n, ask) in asks().iter().enumerate() {
        let call_id = json!(format!("call-{n}"));
        session.send(
            &json!({"jsonrpc": "2.0", "id": call_id, "method": "tools/call",
            "params": {"name": ask.tool, "arguments": ask.arguments}}),
        );
        let (request, _) = session.wait_method(ask.method, WAIT);
        let id = ask.check_request(&request);
        session.send(&json!({"jsonrpc": "2.0", "id": id, "result": ask.answer}));
        let (response, _) = session.wait_response(&call_id, WAIT);
        ask.check_result(result(&response));
    }
}

#[test]
fn server_requests_ride_the_streamable_post_answer_and_are_answered() {
    let gw = start_demo(&[]);
    let session = McpSession::open_with(
        &gw,
        json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}}),
    );
    for (n, ask) in asks().iter().enumerate() {
        let call_id = json!(100 + n);
        let mut post = StreamingPost::start(
            &gw,
            &session.session_id,
            &json!({"jsonrpc": "2.0", "id": call_id, "method": "tools/call",
                    "params": {"name": ask.tool, "arguments": ask.arguments}}),
        );
        assert_eq!(post.status, 200);
        assert_eq!(post.content_type(), "text/event-stream", "{}", ask.method);
        let request = post.events.next_msg(WAIT).expect("the server's request");
        let id = ask.check_request(&request);
        // The client's answer goes on another connection, while the first is still open.
        let accepted = session.post(&json!({"jsonrpc": "2.0", "id": id, "result": ask.answer}));
        assert_eq!(accepted.http.status, 202, "{}", accepted.http.text());
        assert!(accepted.http.body.is_empty());
        let response = post.events.next_msg(WAIT).expect("the tool result");
        assert_eq!(response["id"], call_id);
        ask.check_result(result(&response));
        assert!(
            post.events.wait_end(WAIT),
            "the SSE answer ends after the result"
        );
        assert!(post.events.next_msg(Duration::ZERO).is_none());
    }
}

/// The tool result when the client did not declare the capability.
fn check_refused(ask: &Ask, response: &Value) {
    let result = result(response);
    assert_eq!(result["isError"], true, "{}: {result}", ask.tool);
    let message = text(result);
    assert!(
        message.contains(&format!("{} capability", ask.capability)),
        "{}: {message}",
        ask.tool
    );
}

#[test]
fn server_requests_to_a_legacy_client_without_the_capability_fail_the_tool() {
    let gw = start_demo(&[]);
    let mut session = legacy_session(&gw, json!({}));
    for ask in asks() {
        let response = session.request(
            "tools/call",
            json!({"name": ask.tool, "arguments": ask.arguments}),
        );
        check_refused(&ask, &response);
    }
    // Nothing was forwarded to the client.
    let heard = session.collect_for(Duration::from_millis(200));
    assert!(
        heard.iter().all(|m| m.get("method").is_none()
            || m["method"].as_str().unwrap().starts_with("notifications/")),
        "{heard:?}"
    );
}

#[test]
fn server_requests_to_a_streamable_client_without_the_capability_fail_the_tool() {
    let gw = start_demo(&[]);
    // Declares only roots: sampling and elicitation are refused, roots still works.
    let mut session = McpSession::open_with(&gw, json!({"roots": {}}));
    for ask in asks().iter().filter(|a| a.capability != "roots") {
        let reply = session.request(
            "tools/call",
            json!({"name": ask.tool, "arguments": ask.arguments}),
        );
        assert_eq!(reply.http.status, 200);
        assert_eq!(
            reply.messages.len(),
            1,
            "nothing but the result: {:?}",
            reply.messages
        );
        check_refused(ask, reply.response());
    }
    let bare = McpSession::open(&gw);
    let roots = asks()
        .into_iter()
        .find(|a| a.capability == "roots")
        .unwrap();
    let reply = bare.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": roots.tool, "arguments": roots.arguments}}));
    check_refused(&roots, reply.response());
}
