//! Bad input and HTTP edge cases, end to end against the real binary: malformed heads, size limits
//! (431/413, including the exact boundaries), 405 with `Allow`, 404, HEAD, OPTIONS/CORS; every REST
//! `/tools/call` error shape; every legacy SSE `/messages` error (on the POST or on the stream, with
//! the client's id echoed with its own type); and robustness: `Expect: 100-continue`, chunked bodies,
//! keep-alive, pipelining, stalled and vanishing clients, `maxClients`, and 1-byte writes; and that
//! a server /health calls "up" has its tools routable (probed with pipelined health + call pairs).

mod util;

use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};
use util::{demo, request_bytes, Gateway, HttpResponse, SseSession};

/// The body limit the tests configure (small, so oversized bodies are cheap to send).
const MAX_BODY: usize = 2048;
/// How long any single expected answer may take before the test fails.
const ANSWER: Duration = Duration::from_secs(10);

fn config() -> Value {
    json!({
        "gateway": {"maxBodyBytes": MAX_BODY},
        "servers": [demo("demo", &[])],
    })
}

/// A gateway with one demo server, its tools (`echo`, `sleep`, `fail`, ...) listed.
fn gateway() -> Gateway {
    let gw = Gateway::start(config());
    ready(&gw);
    gw
}

/// Waits until the servers are up AND the router routes their tools. `wait_up` alone is not
/// enough: /health can say "up" a moment before the tool list reaches the router (see
/// `health_up_and_tool_routing_agree_at_startup`), and a call then gets 404 "unknown tool".
fn ready(gw: &Gateway) {
    gw.wait_up();
    util::wait_for(ANSWER, "the demo tools to be routable", || {
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

/// A raw client connection that keeps bytes it read past one response, so pipelined responses and
/// interim `100 Continue` responses can be read one by one (the harness reader drops extra bytes and
/// skips 1xx).
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

enum Fill {
    Data,
    Eof,
    Timeout,
}

impl Client {
    fn open(gw: &Gateway) -> Client {
        let stream = gw.connect();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads what arrives before `deadline` into the buffer.
    fn fill(&mut self, deadline: Instant) -> Fill {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Fill::Timeout;
        }
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => Fill::Eof,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Fill::Data
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Fill::Timeout
            }
            Err(_) => Fill::Eof,
        }
    }

    /// The next response (1xx included), or None on timeout or close before a complete one.
    /// `head_request`: the response answers a HEAD, so it has no body whatever it declares.
    fn try_response(&mut self, head_request: bool, timeout: Duration) -> Option<HttpResponse> {
        let deadline = Instant::now() + timeout;
        let head_end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Eof | Fill::Timeout => return None,
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        assert!(
            status_line.starts_with("HTTP/1.1 "),
            "not a status line: {status_line:?} (buffer {:?})",
            String::from_utf8_lossy(&self.buf)
        );
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let content_length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse::<usize>().expect("numeric Content-Length"));
        self.buf.drain(..head_end + 4);
        let no_body = head_request || (100..200).contains(&status) || status == 204;
        let body = if no_body {
            Vec::new()
        } else if let Some(length) = content_length {
            while self.buf.len() < length {
                match self.fill(deadline) {
                    Fill::Data => {}
                    Fill::Eof | Fill::Timeout => return None,
                }
            }
            self.buf.drain(..length).collect()
        } else {
            // Delimited by the connection closing.
            loop {
                match self.fill(deadline) {
                    Fill::Data => {}
                    Fill::Eof => break,
                    Fill::Timeout => return None,
                }
            }
            std::mem::take(&mut self.buf)
        };
        Some(HttpResponse {
            status,
            headers,
            body,
        })
    }

    fn response(&mut self) -> HttpResponse {
        self.try_response(false, ANSWER)
            .expect("a complete HTTP response in time")
    }

    /// Waits for the server to close the connection; panics if more bytes arrive instead.
    fn expect_closed(&mut self) {
        let deadline = Instant::now() + ANSWER;
        loop {
            assert!(
                self.buf.is_empty(),
                "bytes after the response where the connection should close: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            match self.fill(deadline) {
                Fill::Eof => return,
                Fill::Data => {}
                Fill::Timeout => panic!("the connection was not closed within {ANSWER:?}"),
            }
        }
    }

    /// True if nothing arrives (and the connection stays open) for `quiet`.
    fn silent_for(&mut self, quiet: Duration) -> bool {
        matches!(self.fill(Instant::now() + quiet), Fill::Timeout) && self.buf.is_empty()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn call_body(name: &str, arguments: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"name": name, "arguments": arguments})).unwrap()
}

/// Asserts a JSON error response `{"error": {"code", "message"}}` and returns the message. The
/// message must be a readable sentence mentioning every one of `mentions` (case-insensitive).
fn assert_rest_error(
    response: &HttpResponse,
    status: u16,
    code: Option<i64>,
    mentions: &[&str],
) -> String {
    assert_eq!(
        response.status,
        status,
        "unexpected status; body {}",
        response.text()
    );
    assert!(
        response
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "error bodies are JSON: {:?}",
        response.headers
    );
    let body = response.json();
    let error = &body["error"];
    assert!(
        error["code"].is_i64(),
        "error.code must be an integer: {body}"
    );
    if let Some(code) = code {
        assert_eq!(error["code"], code, "{body}");
    }
    assert_readable(&error["message"], mentions);
    error["message"].as_str().unwrap().to_string()
}

/// A message is a non-trivial sentence of printable text naming what went wrong.
fn assert_readable(message: &Value, mentions: &[&str]) {
    let text = message
        .as_str()
        .unwrap_or_else(|| panic!("message must be a string: {message}"));
    assert!(
        text.len() >= 10 && text.contains(' '),
        "message too terse to help a human: {text:?}"
    );
    assert!(
        !text.chars().any(char::is_control),
        "control characters in {text:?}"
    );
    let lower = text.to_lowercase();
    for needle in mentions {
        assert!(
            lower.contains(&needle.to_lowercase()),
            "message {text:?} does not mention {needle:?}"
        );
    }
}

/// Asserts a JSON-RPC error response with the given id and code; returns its message.
fn assert_rpc_error(message: &Value, id: &Value, code: i64, mentions: &[&str]) -> String {
    assert_eq!(message["jsonrpc"], "2.0", "{message}");
    assert!(
        message.get("id").is_some(),
        "a JSON-RPC error response always has an id member: {message}"
    );
    assert_eq!(&message["id"], id, "{message}");
    assert!(message.get("result").is_none(), "{message}");
    assert_eq!(message["error"]["code"], code, "{message}");
    assert_readable(&message["error"]["message"], mentions);
    message["error"]["message"].as_str().unwrap().to_string()
}

/// An initialized legacy SSE session.
fn session(gw: &Gateway) -> SseSession {
    let mut session = gw.sse();
    session.initialize();
    session
}

/// Proves nothing was queued on the stream before now: a fresh ping's answer is the very next
/// message.
fn assert_stream_quiet(session: &mut SseSession, marker: &str) {
    session.send(&json!({"jsonrpc": "2.0", "id": marker, "method": "ping"}));
    let next = session.next_message(ANSWER).expect("the ping's answer");
    assert_eq!(
        next,
        json!({"jsonrpc": "2.0", "id": marker, "result": {}}),
        "something else was sent on the stream before the ping's answer"
    );
}

/// Posts a body to the session endpoint, expects 400 with a JSON-RPC error (id null) in the body,
/// and checks that nothing went to the stream.
fn assert_message_refused(session: &mut SseSession, body: &[u8], code: i64, mentions: &[&str]) {
    let response = session.post_raw(body);
    assert_eq!(
        response.status,
        400,
        "body {:?}: {}",
        String::from_utf8_lossy(body),
        response.text()
    );
    assert!(response
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/json")));
    assert_rpc_error(&response.json(), &Value::Null, code, mentions);
    assert_stream_quiet(session, "after-refusal");
}

/// Sends an invalid message that has an id: 202, and the error arrives on the stream with the id.
fn stream_error(session: &mut SseSession, message: &Value) -> Value {
    let response = session.post_raw(&serde_json::to_vec(message).unwrap());
    assert_eq!(response.status, 202, "{message}: {}", response.text());
    assert_eq!(response.text(), "Accepted");
    session.response_to(&message["id"], ANSWER)
}

// ---------------------------------------------------------------------------------------------
// HTTP framing and limits
// ---------------------------------------------------------------------------------------------

#[test]
fn garbage_request_line_gets_400_json_and_the_connection_closes() {
    let gw = Gateway::start(config());
    let mut client = Client::open(&gw);
    client.send(b"this is not http at all\r\n\r\n");
    let response = client.response();
    assert_rest_error(&response, 400, None, &["malformed"]);
    assert_eq!(response.header("connection"), Some("close"));
    client.expect_closed();
    // The gateway itself is fine.
    assert_eq!(gw.get("/health").status, 200);
}

#[test]
fn head_over_16_kib_gets_431() {
    let gw = Gateway::start(config());
    let mut client = Client::open(&gw);
    let big = "a".repeat(17 * 1024);
    client.send(
        format!("GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    );
    let response = client.response();
    assert_rest_error(&response, 431, None, &["header", "16384"]);
    client.expect_closed();
}

#[test]
fn head_of_exactly_16_kib_is_accepted_one_byte_more_is_431() {
    let gw = Gateway::start(config());
    let head_of = |total: usize| {
        let start = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Pad: ";
        let end = "\r\n\r\n";
        let pad = "p".repeat(total - start.len() - end.len());
        let head = format!("{start}{pad}{end}");
        assert_eq!(head.len(), total);
        head
    };
    let fits = gw.raw(head_of(16 * 1024).as_bytes());
    assert_eq!(fits.status, 200, "a 16384-byte head is within the limit");
    assert!(fits.json()["servers"].is_array());
    let over = gw.raw(head_of(16 * 1024 + 1).as_bytes());
    assert_rest_error(&over, 431, None, &["header"]);
}

#[test]
fn more_than_64_headers_get_431() {
    let gw = Gateway::start(config());
    let mut client = Client::open(&gw);
    // Host + 64 more = 65 fields.
    let mut head = String::from("GET /health HTTP/1.1\r\nHost: localhost\r\n");
    for i in 0..64 {
        head.push_str(&format!("X-H{i}: v\r\n"));
    }
    head.push_str("\r\n");
    client.send(head.as_bytes());
    let response = client.response();
    assert_rest_error(&response, 431, None, &["64"]);
    client.expect_closed();
}

#[test]
fn exactly_64_headers_are_accepted() {
    let gw = Gateway::start(config());
    // Host + Connection + 62 more = 64 fields.
    let mut head = String::from("GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for i in 0..62 {
        head.push_str(&format!("X-H{i}: v\r\n"));
    }
    head.push_str("\r\n");
    let response = gw.raw(head.as_bytes());
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn content_length_over_max_body_gets_413_before_the_body_is_sent() {
    let gw = Gateway::start(config());
    let mut client = Client::open(&gw);
    // Only the head: the answer must come from Content-Length alone.
    client.send(
        format!(
            "POST /tools/call HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            100 * MAX_BODY
        )
        .as_bytes(),
    );
    let response = client.response();
    assert_rest_error(&response, 413, None, &["2048", "maxBodyBytes"]);
    assert_eq!(response.header("connection"), Some("close"));
    client.expect_closed();
}

#[test]
fn oversized_body_with_expect_continue_gets_413_and_no_100_continue() {
    let gw = Gateway::start(config());
    let mut client = Client::open(&gw);
    client.send(
        format!(
            "POST /tools/call HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        )
        .as_bytes(),
    );
    let first = client.response();
    assert_eq!(
        first.status, 413,
        "the client must not be invited to send a body that will be refused"
    );
    client.expect_closed();
}

#[test]
fn chunked_body_over_max_body_gets_413() {
    let gw = Gateway::start(config());
    let mut client = Client::open(&gw);
    // Two chunks, each under the limit, together over it.
    let mut bytes =
        b"POST /tools/call HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..2 {
        bytes.extend_from_slice(format!("{:x}\r\n", MAX_BODY / 2 + 100).as_bytes());
        bytes.resize(bytes.len() + MAX_BODY / 2 + 100, b'x');
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    client.send(&bytes);
    let response = client.response();
    assert_rest_error(&response, 413, None, &["2048", "maxBodyBytes"]);
    client.expect_closed();
}

#[test]
fn body_of_exactly_max_body_bytes_is_accepted_one_more_is_413() {
    let gw = gateway();
    let body_of = |total: usize| {
        let empty = call_body("echo", json!({"text": ""}));
        let text = "t".repeat(total - empty.len());
        let body = call_body("echo", json!({ "text": text }));
        assert_eq!(body.len(), total);
        (body, text)
    };
    let (body, text) = body_of(MAX_BODY);
    let fits = gw.request(
        "POST",
        "/tools/call",
        &[("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(fits.status, 200, "{}", fits.text());
    assert_eq!(fits.json()["result"]["content"][0]["text"], text.as_str());
    let (body, _) = body_of(MAX_BODY + 1);
    let over = gw.request(
        "POST",
        "/tools/call",
        &[("Content-Type", "application/json")],
        &body,
    );
    assert_rest_error(&over, 413, None, &["2048"]);
}

#[test]
fn wrong_method_gets_405_with_allow_on_every_endpoint() {
    let gw = gateway();
    // (wrong method, path, methods Allow must list). Allow may also list OPTIONS (answered
    // everywhere) and HEAD where GET is listed; every method it lists must really be served.
    let cases: &[(&str, &str, &[&str])] = &[
        ("PUT", "/mcp", &["GET", "POST", "DELETE"]),
        ("DELETE", "/sse", &["GET", "POST"]),
        ("GET", "/messages", &["POST"]),
        ("GET", "/tools/call", &["POST"]),
        ("PUT", "/tools/call", &["POST"]),
        ("POST", "/tools", &["GET", "HEAD"]),
        ("DELETE", "/health", &["GET", "HEAD"]),
        ("POST", "/", &["GET", "HEAD"]),
    ];
    for (method, path, expected) in cases {
        let response = gw.request(method, path, &[], b"");
        let context = format!("{method} {path}");
        assert_eq!(response.status, 405, "{context}: {}", response.text());
        let allow = response
            .header("allow")
            .unwrap_or_else(|| panic!("{context}: no Allow header"))
            .to_string();
        let listed: Vec<&str> = allow.split(',').map(str::trim).collect();
        for wanted in *expected {
            assert!(listed.contains(wanted), "{context}: Allow: {allow}");
        }
        for listed_method in &listed {
            let optional = *listed_method == "OPTIONS"
                || (*listed_method == "HEAD" && listed.contains(&"GET"));
            assert!(
                expected.contains(listed_method) || optional,
                "{context}: Allow lists {listed_method}: {allow}"
            );
            assert_ne!(
                status_of(&gw, listed_method, path),
                405,
                "{path} lists {listed_method} in Allow but refuses it"
            );
        }
        assert_rest_error(&response, 405, None, &[method, path]);
    }
}

/// Only the status of `method path` (the connection is dropped after the status line, so this
/// works for streams too).
fn status_of(gw: &Gateway, method: &str, path: &str) -> u16 {
    let mut client = Client::open(gw);
    let body: &[u8] = if method == "POST" { b"{}" } else { b"" };
    client.send(&request_bytes(
        method,
        path,
        &[
            ("Content-Type", "application/json"),
            ("Connection", "close"),
        ],
        body,
    ));
    let deadline = Instant::now() + ANSWER;
    while find(&client.buf, b"\r\n").is_none() {
        match client.fill(deadline) {
            Fill::Data => {}
            Fill::Eof | Fill::Timeout => panic!("no status line for {method} {path}"),
        }
    }
    let line = String::from_utf8_lossy(&client.buf).into_owned();
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"))
}

#[test]
fn unknown_path_gets_404_json() {
    let gw = Gateway::start(config());
    for (method, path) in [
        ("GET", "/nope"),
        ("POST", "/nope"),
        ("GET", "/tools/"),
        ("GET", "/health/x"),
    ] {
        let response = gw.request(method, path, &[], b"");
        assert_rest_error(&response, 404, None, &[path]);
    }
}

#[test]
fn head_on_health_sends_content_length_and_no_body() {
    let gw = gateway();
    let mut client = Client::open(&gw);
    // HEAD then GET on one connection: a body after the HEAD's head would be read as the next
    // response's status line.
    client.send(&request_bytes("HEAD", "/health", &[], b""));
    let head = client.try_response(true, ANSWER).expect("HEAD answer");
    assert_eq!(head.status, 200);
    assert!(head
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/json")));
    let length: usize = head
        .header("content-length")
        .expect("HEAD carries the Content-Length of the GET")
        .parse()
        .unwrap();
    assert!(length > 20, "Content-Length {length}");
    client.send(&request_bytes("GET", "/", &[("Connection", "close")], b""));
    let index = client.response();
    assert_eq!(index.status, 200);
    assert_eq!(index.json()["name"], "mcp-gateway");
    client.expect_closed();

    // For the stable index, HEAD's Content-Length is exactly the GET body's length.
    let mut client = Client::open(&gw);
    client.send(&request_bytes("HEAD", "/", &[("Connection", "close")], b""));
    let head = client.try_response(true, ANSWER).expect("HEAD answer");
    let get = gw.get("/");
    assert_eq!(
        head.header("content-length"),
        Some(get.body.len().to_string().as_str())
    );
    client.expect_closed();
}

#[test]
fn head_on_sse_is_answered_like_get_without_opening_a_session() {
    // HEAD works on GET endpoints (RFC 9110 §9.3.2): same head as GET, no body, and here no
    // session either, since no stream follows.
    let gw = gateway();
    let mut client = Client::open(&gw);
    client.send(&request_bytes(
        "HEAD",
        "/sse",
        &[("Connection", "close")],
        b"",
    ));
    let head = client.try_response(true, ANSWER).expect("HEAD answer");
    assert_eq!(head.status, 200, "{:?}", head.headers);
    assert!(head
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("text/event-stream")));
    client.expect_closed();
    assert_eq!(gw.health()["sessions"], 0);
}

#[test]
fn options_preflight_echoes_an_allowed_origin_only() {
    let mut config = config();
    config["gateway"]["cors"] = json!(["http://localhost:1234"]);
    let gw = Gateway::start(config);
    let preflight = |origin: &str| {
        gw.request(
            "OPTIONS",
            "/mcp",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            b"",
        )
    };
    let allowed = preflight("http://localhost:1234");
    assert_eq!(allowed.status, 204);
    assert!(allowed.body.is_empty());
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("http://localhost:1234")
    );
    let methods = allowed
        .header("access-control-allow-methods")
        .expect("Access-Control-Allow-Methods");
    assert!(methods.contains("POST"), "{methods}");
    let headers = allowed
        .header("access-control-allow-headers")
        .expect("Access-Control-Allow-Headers")
        .to_ascii_lowercase();
    assert!(headers.contains("content-type"), "{headers}");
    assert!(allowed
        .header("vary")
        .is_some_and(|v| v.to_ascii_lowercase().contains("origin")));

    let other = preflight("http://evil.example");
    assert_eq!(other.status, 204);
    assert_eq!(
        other.header("access-control-allow-origin"),
        None,
        "a disallowed origin must not be granted: {:?}",
        other.headers
    );
    assert_eq!(other.header("access-control-allow-methods"), None);

    // Actual requests from the allowed origin carry the grant too.
    let health = gw.request(
        "GET",
        "/health",
        &[("Origin", "http://localhost:1234")],
        b"",
    );
    assert_eq!(
        health.header("access-control-allow-origin"),
        Some("http://localhost:1234")
    );
}

#[test]
fn options_preflight_with_cors_true_allows_any_origin() {
    let mut config = config();
    config["gateway"]["cors"] = json!(true);
    let gw = Gateway::start(config);
    let response = gw.request(
        "OPTIONS",
        "/tools/call",
        &[
            ("Origin", "https://anywhere.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(response.status, 204);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert!(response
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    let tools = gw.request(
        "GET",
        "/tools",
        &[("Origin", "https://anywhere.example")],
        b"",
    );
    assert_eq!(tools.status, 200);
    assert_eq!(tools.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn endless_request_line_gets_431_without_waiting_for_its_end() {
    let gw = Gateway::start(config());
    let mut client = Client::open(&gw);
    // No line end at all: the limit must fire on size alone.
    client.send(b"GET /");
    client.send(&vec![b'a'; 20 * 1024]);
    let response = client.response();
    assert_rest_error(&response, 431, None, &["16384"]);
    client.expect_closed();
}

#[test]
fn client_still_sending_an_oversized_body_reads_the_413() {
    let gw = Gateway::start(config());
    let mut client = Client::open(&gw);
    let size = 4 * 1024 * 1024;
    let mut bytes =
        format!("POST /tools/call HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n\r\n")
            .into_bytes();
    bytes.resize(bytes.len() + size, b'x');
    // The gateway answers and closes before taking the whole body, so the write may fail.
    let _ = client.stream.write_all(&bytes);
    let response = client.response();
    assert_rest_error(&response, 413, None, &["2048"]);
}

#[test]
fn ambiguous_framing_is_refused_with_400_and_closed() {
    let gw = Gateway::start(config());
    let heads = [
        // Request smuggling shapes.
        "POST /tools/call HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /tools/call HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
        "POST /tools/call HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
        "POST /tools/call HTTP/1.1\r\nHost: localhost\r\nContent-Length: four\r\n\r\n",
        "POST /tools/call HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        // Other malformed heads.
        "GET /he alth HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /health HTTP/1.1\r\nBad Header: x\r\n\r\n",
        "GET /%zz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET health HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ];
    for head in heads {
        let mut client = Client::open(&gw);
        client.send(head.as_bytes());
        let response = client.response();
        assert_eq!(response.status, 400, "{head:?}: {}", response.text());
        assert_rest_error(&response, 400, None, &[]);
        client.expect_closed();
    }
}

#[test]
fn unsupported_version_and_transfer_coding_get_505_and_501() {
    let gw = Gateway::start(config());
    let version = gw.raw(b"GET /health HTTP/2.0\r\nHost: localhost\r\n\r\n");
    assert_rest_error(&version, 505, None, &["HTTP/1.1"]);
    let coding =
        gw.raw(b"POST /tools/call HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_rest_error(&coding, 501, None, &[]);
}

#[test]
fn http_1_0_closes_by_default_and_keeps_alive_when_asked() {
    let gw = Gateway::start(config());
    let mut plain = Client::open(&gw);
    plain.send(b"GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(plain.response().status, 200);
    plain.expect_closed();

    let mut kept = Client::open(&gw);
    kept.send(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let first = kept.response();
    assert_eq!(first.status, 200);
    assert!(first
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")));
    kept.send(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(kept.response().json()["name"], "mcp-gateway");
    kept.expect_closed();
}

// ---------------------------------------------------------------------------------------------
// REST /tools/call errors
// ---------------------------------------------------------------------------------------------

fn post_call(gw: &Gateway, body: &[u8]) -> HttpResponse {
    gw.request(
        "POST",
        "/tools/call",
        &[("Content-Type", "application/json")],
        body,
    )
}

#[test]
fn rest_bad_json_is_400_parse_error() {
    let gw = gateway();
    let response = post_call(&gw, br#"{"name": "echo", "arguments": {"text": "hi"#);
    assert_rest_error(&response, 400, Some(-32700), &["json"]);
}

#[test]
fn rest_non_object_body_is_400_invalid_params() {
    let gw = gateway();
    for body in [&b"[1, 2]"[..], b"\"echo\"", b"42", b"null"] {
        let response = post_call(&gw, body);
        assert_rest_error(&response, 400, Some(-32602), &["object"]);
    }
}

#[test]
fn rest_missing_name_is_400_invalid_params() {
    let gw = gateway();
    let response = post_call(&gw, br#"{"arguments": {"text": "hi"}}"#);
    assert_rest_error(&response, 400, Some(-32602), &["name"]);
}

#[test]
fn rest_name_not_a_string_is_400_invalid_params() {
    let gw = gateway();
    let response = post_call(&gw, br#"{"name": 7, "arguments": {}}"#);
    assert_rest_error(&response, 400, Some(-32602), &["name", "string"]);
}

#[test]
fn rest_arguments_not_an_object_is_400_invalid_params() {
    let gw = gateway();
    let response = post_call(&gw, br#"{"name": "echo", "arguments": ["hi"]}"#);
    assert_rest_error(&response, 400, Some(-32602), &["arguments", "object"]);
}

#[test]
fn rest_unknown_field_is_400_invalid_params() {
    let gw = gateway();
    let response = post_call(&gw, br#"{"name": "echo", "args": {"text": "hi"}}"#);
    assert_rest_error(&response, 400, Some(-32602), &["args"]);
}

#[test]
fn rest_unknown_tool_is_404() {
    let gw = gateway();
    let response = gw.call("no_such_tool", json!({}));
    assert_rest_error(&response, 404, Some(-32602), &["no_such_tool"]);
}

#[test]
fn rest_echo_without_text_is_400_with_the_servers_error() {
    let gw = gateway();
    let response = gw.call("echo", json!({}));
    let message = assert_rest_error(&response, 400, Some(-32602), &["echo", "text"]);
    // The server's own error object, not a gateway rewording.
    assert!(message.contains("'text'"), "{message}");
    assert_eq!(gw.server_health("demo")["status"], "up");
}

#[test]
fn rest_sleep_with_negative_ms_is_400_with_the_servers_error() {
    let gw = gateway();
    let response = gw.call("sleep", json!({"ms": -1}));
    let message = assert_rest_error(&response, 400, Some(-32602), &["sleep", "ms"]);
    assert!(message.contains("'ms'"), "{message}");
}

#[test]
fn rest_tool_returning_is_error_is_200() {
    let gw = gateway();
    let response = gw.call("fail", json!({"message": "deliberate failure"}));
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert!(body.get("error").is_none(), "{body}");
    assert_eq!(body["result"]["isError"], true);
    assert_eq!(body["result"]["content"][0]["text"], "deliberate failure");
}

// ---------------------------------------------------------------------------------------------
// Legacy SSE /messages errors
// ---------------------------------------------------------------------------------------------

#[test]
fn messages_without_session_id_is_400() {
    let gw = gateway();
    let ping = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    for path in ["/messages", "/messages?session=abc"] {
        let response = gw.request("POST", path, &[("Content-Type", "application/json")], ping);
        assert_eq!(response.status, 400, "{path}: {}", response.text());
        // The request's id is echoed, never null (it had one).
        assert_rpc_error(&response.json(), &json!(1), -32600, &["sessionId"]);
    }
}

#[test]
fn messages_for_unknown_session_is_404() {
    let gw = gateway();
    let ping = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let response = gw.request(
        "POST",
        "/messages?sessionId=0123456789abcdef0123456789abcdef",
        &[("Content-Type", "application/json")],
        ping,
    );
    assert_eq!(response.status, 404, "{}", response.text());
    assert_rpc_error(&response.json(), &json!(1), -32600, &["session"]);
}

#[test]
fn messages_for_a_closed_session_is_404() {
    let gw = gateway();
    let session = session(&gw);
    let endpoint = session.endpoint.clone();
    session.close();
    util::wait_for(ANSWER, "the session to end", || {
        (gw.health()["sessions"] == 0).then_some(())
    });
    let response = gw.request(
        "POST",
        &endpoint,
        &[("Content-Type", "application/json")],
        br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    );
    assert_eq!(response.status, 404, "{}", response.text());
}

#[test]
fn messages_bad_json_is_400_with_a_parse_error_body() {
    let gw = gateway();
    let mut session = session(&gw);
    assert_message_refused(
        &mut session,
        br#"{"jsonrpc":"2.0","id":1,"method":"#,
        -32700,
        &["parse"],
    );
}

#[test]
fn messages_batch_array_is_400_invalid_request() {
    let gw = gateway();
    let mut session = session(&gw);
    assert_message_refused(&mut session, b"[]", -32600, &[]);
}

#[test]
fn messages_object_that_is_no_message_is_400_invalid_request() {
    let gw = gateway();
    let mut session = session(&gw);
    assert_message_refused(&mut session, br#"{"foo":1}"#, -32600, &[]);
}

#[test]
fn messages_null_id_is_400_invalid_request() {
    let gw = gateway();
    let mut session = session(&gw);
    assert_message_refused(
        &mut session,
        br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
        -32600,
        &["id"],
    );
}

#[test]
fn messages_jsonrpc_1_0_with_id_gets_202_and_invalid_request_on_the_stream() {
    let gw = gateway();
    let mut session = session(&gw);
    let answer = stream_error(
        &mut session,
        &json!({"jsonrpc": "1.0", "id": 5, "method": "ping"}),
    );
    assert_rpc_error(&answer, &json!(5), -32600, &["jsonrpc"]);
}

#[test]
fn messages_params_array_with_id_gets_202_and_invalid_params_on_the_stream() {
    let gw = gateway();
    let mut session = session(&gw);
    let answer = stream_error(
        &mut session,
        &json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": ["echo"]}),
    );
    assert_rpc_error(&answer, &json!(6), -32602, &["params"]);
}

#[test]
fn messages_unknown_method_is_method_not_found() {
    let gw = gateway();
    let mut session = session(&gw);
    let answer = session.request("resources/frobnicate", json!({}));
    let id = answer["id"].clone();
    assert_rpc_error(&answer, &id, -32601, &["resources/frobnicate"]);
}

#[test]
fn messages_tools_call_without_name_is_invalid_params() {
    let gw = gateway();
    let mut session = session(&gw);
    let answer = session.request("tools/call", json!({"arguments": {"text": "hi"}}));
    let id = answer["id"].clone();
    assert_rpc_error(&answer, &id, -32602, &["name"]);
}

#[test]
fn messages_tools_call_unknown_tool_is_invalid_params() {
    let gw = gateway();
    let mut session = session(&gw);
    let answer = session.request("tools/call", json!({"name": "nope_tool", "arguments": {}}));
    let id = answer["id"].clone();
    let message = assert_rpc_error(&answer, &id, -32602, &["nope_tool"]);
    assert_eq!(message, "Unknown tool: nope_tool");
}

#[test]
fn messages_tools_call_with_non_object_arguments_is_invalid_params() {
    let gw = gateway();
    let mut session = session(&gw);
    for arguments in [json!("hi"), json!([1]), json!(3)] {
        let answer = session.request(
            "tools/call",
            json!({"name": "echo", "arguments": arguments}),
        );
        let id = answer["id"].clone();
        assert_rpc_error(&answer, &id, -32602, &["arguments", "object"]);
    }
}

#[test]
fn messages_initialize_without_protocol_version_is_invalid_params() {
    let gw = gateway();
    let mut session = gw.sse();
    let answer = session.request(
        "initialize",
        json!({"capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    let id = answer["id"].clone();
    assert_rpc_error(&answer, &id, -32602, &["protocolVersion"]);
}

#[test]
fn messages_tools_list_with_a_cursor_is_invalid_params() {
    let gw = gateway();
    let mut session = session(&gw);
    let answer = session.request("tools/list", json!({"cursor": "page-2"}));
    let id = answer["id"].clone();
    assert_rpc_error(&answer, &id, -32602, &["cursor"]);
}

#[test]
fn messages_string_and_number_ids_come_back_with_their_own_type() {
    let gw = gateway();
    let mut session = session(&gw);
    // Answered by the gateway itself: same digits, different types, different outcomes.
    session.send(&json!({"jsonrpc": "2.0", "id": "1", "method": "ping"}));
    session.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "no/such/method"}));
    let first = session.next_message(ANSWER).expect("answer to \"1\"");
    let second = session.next_message(ANSWER).expect("answer to 1");
    assert_eq!(first, json!({"jsonrpc": "2.0", "id": "1", "result": {}}));
    assert_eq!(second["id"], json!(1), "{second}");
    assert!(second["id"].is_u64(), "the number id stays a number");
    assert_eq!(second["error"]["code"], -32601);

    // Through the server (ids are rewritten downstream and restored): both in flight at once.
    session.send(&json!({"jsonrpc": "2.0", "id": "7", "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "string id"}}}));
    session.send(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "number id"}}}));
    let by_string = session.response_to(&json!("7"), ANSWER);
    let by_number = session.response_to(&json!(7), ANSWER);
    assert!(by_string["id"].is_string(), "{by_string}");
    assert!(by_number["id"].is_u64(), "{by_number}");
    assert_eq!(by_string["result"]["content"][0]["text"], "string id");
    assert_eq!(by_number["result"]["content"][0]["text"], "number id");
}

#[test]
fn messages_ids_of_every_legal_shape_come_back_exactly() {
    let gw = gateway();
    let mut session = session(&gw);
    let ids = [
        json!("quote \" backslash \\ slash / unicode é 😀 tab \t"),
        json!(""),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(0),
        json!(-3),
    ];
    for (i, id) in ids.iter().enumerate() {
        // Answered by the gateway.
        session.send(&json!({"jsonrpc": "2.0", "id": id, "method": "ping"}));
        let pong = session.response_to(id, ANSWER);
        assert_eq!(pong, json!({"jsonrpc": "2.0", "id": id, "result": {}}));
        // Answered by the server, through the downstream id rewrite.
        let text = format!("id shape {i}");
        session.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": text}}}));
        let echoed = session.response_to(id, ANSWER);
        assert_eq!(&echoed["id"], id, "{echoed}");
        assert_eq!(echoed["result"]["content"][0]["text"], text.as_str());
    }
}

#[test]
fn messages_non_integer_id_is_400_invalid_request() {
    let gw = gateway();
    let mut session = session(&gw);
    for body in [
        &br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#[..],
        br#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
        br#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#,
        br#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#,
    ] {
        assert_message_refused(&mut session, body, -32600, &["id"]);
    }
}

#[test]
fn sse_stream_closed_mid_call_leaves_the_gateway_healthy() {
    let gw = gateway();
    let session = session(&gw);
    session.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 400}}}));
    util::wait_for(ANSWER, "the sleep call to be in flight", || {
        (gw.health()["inFlight"] == 1).then_some(())
    });
    session.close();
    util::wait_for(ANSWER, "the session gone and the call finished", || {
        let health = gw.health();
        (health["sessions"] == 0 && health["inFlight"] == 0).then_some(())
    });
    let mut fresh = self::session(&gw);
    let answer = fresh.request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "next session"}}),
    );
    assert_eq!(answer["result"]["content"][0]["text"], "next session");
    assert_eq!(gw.server_health("demo")["restarts"], 0);
}

#[test]
fn messages_notifications_and_stray_responses_get_no_answer() {
    let gw = gateway();
    let mut session = session(&gw);
    for message in [
        json!({"jsonrpc": "2.0", "method": "notifications/no_such_thing"}),
        json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "nope"}}),
        json!({"jsonrpc": "2.0", "id": 99, "result": {}}),
        json!({"jsonrpc": "2.0", "id": "x", "error": {"code": 1, "message": "m"}}),
    ] {
        session.send(&message);
    }
    assert_stream_quiet(&mut session, "after-notifications");
}

// ---------------------------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------------------------

#[test]
fn expect_100_continue_gets_100_then_the_answer() {
    let gw = gateway();
    let body = call_body("echo", json!({"text": "after continue"}));
    let mut client = Client::open(&gw);
    client.send(
        format!(
            "POST /tools/call HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let interim = client
        .try_response(false, ANSWER)
        .expect("100 Continue before the body is sent");
    assert_eq!(interim.status, 100);
    client.send(&body);
    let answer = client.response();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.json()["result"]["content"][0]["text"],
        "after continue"
    );
}

#[test]
fn chunked_tools_call_works() {
    let gw = gateway();
    let body = call_body("echo", json!({"text": "sent in chunks"}));
    let (a, b) = body.split_at(body.len() / 3);
    let mut bytes = b"POST /tools/call HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for piece in [a, b] {
        bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        bytes.extend_from_slice(piece);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let response = gw.raw(&bytes);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["result"]["content"][0]["text"],
        "sent in chunks"
    );
}

#[test]
fn keep_alive_serves_three_requests_on_one_connection() {
    let gw = gateway();
    let mut client = Client::open(&gw);
    client.send(&request_bytes("GET", "/health", &[], b""));
    let health = client.response();
    assert_eq!(health.status, 200);
    assert_ne!(health.header("connection"), Some("close"));
    client.send(&request_bytes(
        "POST",
        "/tools/call",
        &[("Content-Type", "application/json")],
        &call_body("echo", json!({"text": "second"})),
    ));
    let call = client.response();
    assert_eq!(call.status, 200);
    assert_eq!(call.json()["result"]["content"][0]["text"], "second");
    assert_ne!(call.header("connection"), Some("close"));
    client.send(&request_bytes("GET", "/tools", &[], b""));
    let tools = client.response();
    assert_eq!(tools.status, 200);
    assert!(tools.json()["tools"].as_array().unwrap().len() > 3);
    // Still open, and still idle: nothing unasked-for arrives.
    assert!(client.silent_for(Duration::from_millis(200)));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let gw = gateway();
    let mut client = Client::open(&gw);
    // The first is slow and the second fast: the answers must still come in request order.
    let mut bytes = request_bytes(
        "POST",
        "/tools/call",
        &[("Content-Type", "application/json")],
        &call_body("sleep", json!({"ms": 300})),
    );
    bytes.extend(request_bytes(
        "POST",
        "/tools/call",
        &[("Content-Type", "application/json")],
        &call_body("echo", json!({"text": "second"})),
    ));
    bytes.extend(request_bytes(
        "GET",
        "/health",
        &[("Connection", "close")],
        b"",
    ));
    client.send(&bytes);
    let first = client.response();
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["result"]["content"][0]["text"], "slept 300 ms");
    let second = client.response();
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(second.json()["result"]["content"][0]["text"], "second");
    let third = client.response();
    assert_eq!(third.status, 200);
    assert_eq!(third.json()["status"], "ok");
    client.expect_closed();
}

#[test]
fn stalled_half_request_does_not_block_other_clients() {
    let gw = gateway();
    // One client stalls inside its head, another inside its body.
    let mut in_head = Client::open(&gw);
    in_head.send(b"POST /tools/call HTTP/1.1\r\nHost: localhost\r\nContent-Le");
    let body = call_body("echo", json!({"text": "late body"}));
    let mut in_body = Client::open(&gw);
    in_body.send(
        format!(
            "POST /tools/call HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    in_body.send(&body[..5]);

    // Everyone else is served meanwhile.
    for i in 0..3 {
        let text = format!("meanwhile {i}");
        let response = gw.call("echo", json!({ "text": text }));
        assert_eq!(response.status, 200);
        assert_eq!(response.json()["result"]["content"][0]["text"], text);
        assert_eq!(gw.health()["status"], "ok");
    }
    // The stalled clients got nothing (their requests are incomplete) and are still connected.
    assert!(in_head.silent_for(Duration::from_millis(100)));
    assert!(in_body.silent_for(Duration::from_millis(100)));

    // Once they finish, they are answered too.
    let head_body = call_body("echo", json!({"text": "late head"}));
    in_head.send(format!("ngth: {}\r\n\r\n", head_body.len()).as_bytes());
    in_head.send(&head_body);
    in_body.send(&body[5..]);
    let late_head = in_head.response();
    assert_eq!(
        late_head.json()["result"]["content"][0]["text"],
        "late head"
    );
    let late_body = in_body.response();
    assert_eq!(
        late_body.json()["result"]["content"][0]["text"],
        "late body"
    );
}

#[test]
fn client_vanishing_mid_call_leaves_the_gateway_healthy() {
    // One handle only: later calls can run only if the abandoned call's handle comes back.
    let mut server = demo("demo", &[]);
    server["poolSize"] = json!(1);
    let gw = Gateway::start(json!({"servers": [server]}));
    ready(&gw);
    let mut client = Client::open(&gw);
    client.send(&request_bytes(
        "POST",
        "/tools/call",
        &[("Content-Type", "application/json")],
        &call_body("sleep", json!({"ms": 500})),
    ));
    util::wait_for(ANSWER, "the sleep call to be in flight", || {
        (gw.health()["inFlight"] == 1).then_some(())
    });
    client.stream.shutdown(Shutdown::Both).unwrap();
    drop(client);

    let next = gw.call("echo", json!({"text": "still fine"}));
    assert_eq!(next.status, 200, "{}", next.text());
    assert_eq!(next.json()["result"]["content"][0]["text"], "still fine");
    // The reply is counted out before the handle is back in the pool: wait for both.
    util::wait_for(ANSWER, "inFlight back to 0 and the handle idle", || {
        let health = gw.health();
        (health["inFlight"] == 0 && health["servers"][0]["pool"]["busy"] == 0).then_some(())
    });
    let demo = gw.server_health("demo");
    assert_eq!(demo["status"], "up", "{demo}");
    assert_eq!(demo["pool"]["busy"], 0, "{demo}");
    assert_eq!(demo["pool"]["total"], 1, "{demo}");
    assert_eq!(demo["restarts"], 0, "{demo}");
    let again = gw.call("sleep", json!({"ms": 10}));
    assert_eq!(again.status, 200, "{}", again.text());
}

#[test]
fn connections_over_max_clients_get_503_json() {
    let mut config = config();
    config["gateway"]["maxClients"] = json!(4);
    let gw = Gateway::start(config);
    ready(&gw);
    // Four keep-alive connections, each proven accepted by an answered request. (The connection
    // `ready` used may take a moment to be counted out: until then a new one may be refused.)
    let mut held: Vec<Client> = (0..4)
        .map(|_| {
            util::wait_for(ANSWER, "a connection slot", || {
                let mut client = Client::open(&gw);
                client.send(&request_bytes("GET", "/health", &[], b""));
                (client.response().status == 200).then_some(client)
            })
        })
        .collect();
    let mut fifth = Client::open(&gw);
    let refused = fifth.response();
    let message = assert_rest_error(&refused, 503, Some(-32000), &["maxClients"]);
    assert!(message.contains('4'), "{message}");
    fifth.expect_closed();
    // The held connections still work.
    held[0].send(&request_bytes("GET", "/health", &[], b""));
    assert_eq!(held[0].response().status, 200);

    // Once one leaves, a new client gets in.
    drop(held.pop());
    util::wait_for(ANSWER, "a free connection slot", || {
        let mut client = Client::open(&gw);
        client.send(&request_bytes(
            "GET",
            "/health",
            &[("Connection", "close")],
            b"",
        ));
        (client.response().status == 200).then_some(())
    });
}

#[test]
fn request_arriving_in_one_byte_writes_works() {
    let gw = gateway();
    let bytes = request_bytes(
        "POST",
        "/tools/call",
        &[
            ("Content-Type", "application/json"),
            ("Connection", "close"),
        ],
        &call_body("echo", json!({"text": "byte by byte"})),
    );
    let mut client = Client::open(&gw);
    for byte in &bytes {
        client.send(std::slice::from_ref(byte));
        std::thread::sleep(Duration::from_millis(1));
    }
    let response = client.response();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["result"]["content"][0]["text"],
        "byte by byte"
    );
    client.expect_closed();
}

#[test]
fn pipelined_request_after_connection_close_is_not_answered() {
    let gw = Gateway::start(config());
    let mut client = Client::open(&gw);
    let mut bytes = request_bytes("GET", "/health", &[("Connection", "close")], b"");
    bytes.extend(request_bytes("GET", "/", &[], b""));
    client.send(&bytes);
    let first = client.response();
    assert_eq!(first.status, 200);
    assert_eq!(first.header("connection"), Some("close"));
    client.expect_closed();
}

#[test]
fn pipelined_garbage_after_a_good_request_gets_the_answer_then_400() {
    let gw = gateway();
    let mut client = Client::open(&gw);
    let mut bytes = request_bytes(
        "POST",
        "/tools/call",
        &[("Content-Type", "application/json")],
        &call_body("echo", json!({"text": "good one"})),
    );
    bytes.extend_from_slice(b"NOT HTTP\x00\x01\r\n\r\n");
    client.send(&bytes);
    let good = client.response();
    assert_eq!(good.status, 200, "{}", good.text());
    assert_eq!(good.json()["result"]["content"][0]["text"], "good one");
    let bad = client.response();
    assert_rest_error(&bad, 400, None, &[]);
    client.expect_closed();
}

#[test]
fn client_that_half_closes_after_its_request_still_gets_the_answer() {
    let gw = gateway();
    let mut client = Client::open(&gw);
    client.send(&request_bytes(
        "POST",
        "/tools/call",
        &[("Content-Type", "application/json")],
        &call_body("sleep", json!({"ms": 100})),
    ));
    client.stream.shutdown(Shutdown::Write).unwrap();
    // The gateway checks that a half-closed client is still there with an interim 100 Continue
    // (which HTTP/1.1 clients skip): one that is gone answers it with a reset.
    let response = loop {
        let response = client.response();
        if response.status >= 200 {
            break response;
        }
        assert_eq!(response.status, 100);
    };
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["result"]["content"][0]["text"],
        "slept 100 ms"
    );
    client.expect_closed();
}

#[test]
fn client_over_max_clients_that_sends_at_once_still_reads_the_503() {
    let mut config = config();
    config["gateway"]["maxClients"] = json!(1);
    let gw = Gateway::start(config);
    let mut holder = Client::open(&gw);
    holder.send(&request_bytes("GET", "/health", &[], b""));
    assert_eq!(holder.response().status, 200);
    // An ordinary client: writes its request right after connecting, then reads.
    let refused = gw.raw(&request_bytes(
        "GET",
        "/health",
        &[("Connection", "close")],
        b"",
    ));
    assert_rest_error(&refused, 503, Some(-32000), &["maxClients"]);
    assert!(refused.header("retry-after").is_some());
}

#[test]
fn many_pipelined_requests_beyond_the_read_ahead_are_all_answered_in_order() {
    let gw = gateway();
    let mut client = Client::open(&gw);
    // ~120 KiB of requests, more than the gateway reads ahead while a call is out; calls (which
    // go to a worker) alternate with requests answered at once.
    let count = 600;
    let mut bytes = Vec::new();
    for i in 0..count {
        if i % 2 == 0 {
            bytes.extend(request_bytes(
                "POST",
                "/tools/call",
                &[
                    ("Content-Type", "application/json"),
                    ("X-Pad", &"p".repeat(200)),
                ],
                &call_body("echo", json!({ "text": format!("call {i}") })),
            ));
        } else {
            bytes.extend(request_bytes("GET", &format!("/nope/{i}"), &[], b""));
        }
    }
    assert!(bytes.len() > 100 * 1024, "{}", bytes.len());
    let mut writer = client.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&bytes));
    for i in 0..count {
        let response = client
            .try_response(false, ANSWER)
            .unwrap_or_else(|| panic!("no answer to pipelined request {i}"));
        if i % 2 == 0 {
            assert_eq!(response.status, 200, "request {i}: {}", response.text());
            assert_eq!(
                response.json()["result"]["content"][0]["text"],
                format!("call {i}")
            );
        } else {
            assert_eq!(response.status, 404, "request {i}");
            assert!(response.text().contains(&format!("/nope/{i}")));
        }
    }
    sender.join().unwrap().unwrap();
    assert!(client.silent_for(Duration::from_millis(100)));
}

#[test]
fn tls_handshake_on_the_plain_port_gets_400_and_is_closed() {
    let gw = Gateway::start(config());
    let mut client = Client::open(&gw);
    // The start of a TLS 1.2 ClientHello record.
    client.send(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x8a, 0x11, 0x00, 0x00,
    ]);
    let response = client.response();
    assert_rest_error(&response, 400, None, &[]);
    client.expect_closed();
}

#[test]
fn deeply_nested_json_is_a_parse_error_not_a_crash() {
    let gw = gateway();
    let nested = format!("{}{}", "[".repeat(900), "]".repeat(900));
    let body = format!(r#"{{"name": "echo", "arguments": {{"text": "x", "deep": {nested}}}}}"#);
    assert!(body.len() <= MAX_BODY);
    let rest = post_call(&gw, body.as_bytes());
    assert_rest_error(&rest, 400, Some(-32700), &[]);
    let mut session = session(&gw);
    let message =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"deep":{nested}}}}}"#);
    assert_message_refused(&mut session, message.as_bytes(), -32700, &[]);
    assert_eq!(gw.call("echo", json!({"text": "alive"})).status, 200);
}

#[test]
fn health_up_and_tool_routing_agree_at_startup() {
    // A client that sees a server "up" in /health must be able to call its tools at once. Probe
    // with pipelined pairs (GET /health, then a call, on one connection) from several threads
    // while the server's initialize is slow; in every pair where health already said "up", the
    // call must not be refused as an unknown tool.
    for _ in 0..2 {
        let gw = Gateway::start(json!({"servers": [demo("demo", &["--init-delay", "300"])]}));
        let up = std::sync::atomic::AtomicBool::new(false);
        let deadline = Instant::now() + Duration::from_secs(15);
        let pair = {
            let mut bytes = request_bytes("GET", "/health", &[], b"");
            bytes.extend(request_bytes(
                "POST",
                "/tools/call",
                &[
                    ("Content-Type", "application/json"),
                    ("Connection", "close"),
                ],
                &call_body("echo", json!({"text": "probe"})),
            ));
            bytes
        };
        let disagreements: Vec<String> = std::thread::scope(|scope| {
            let probes: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let mut seen = Vec::new();
                        while !up.load(std::sync::atomic::Ordering::Relaxed) {
                            assert!(Instant::now() < deadline, "the server never came up");
                            let mut client = Client::open(&gw);
                            client.send(&pair);
                            let health = client.response().json();
                            let call = client.response();
                            if health["servers"][0]["status"] == "up" {
                                up.store(true, std::sync::atomic::Ordering::Relaxed);
                                if call.status != 200 {
                                    seen.push(format!("{} {}", call.status, call.text()));
                                }
                            }
                        }
                        seen
                    })
                })
                .collect();
            probes.into_iter().flat_map(|p| p.join().unwrap()).collect()
        });
        assert!(
            disagreements.is_empty(),
            "/health said the server was up, but calls in the same pipelined pair got: {disagreements:?}"
        );
    }
}
