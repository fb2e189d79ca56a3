//! End-to-end tests of `mcp-gateway bridge`: the real bridge binary, started the way a stdio
//! client starts a server, relaying to the real gateway (and, for the legacy fallback, to a server
//! of the official Python SDK that only speaks HTTP+SSE).
//!
//! The Rust tests write raw bytes to the bridge's stdin (merged and split lines, split UTF-8,
//! blank lines, large messages) and read its stdout line by line; the interop test drives it with
//! the official Python SDK's `stdio_client` (`tests/interop/bridge_client.py`). Every wait has a
//! deadline; nothing asserts how long something took.

mod util;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use util::{demo, gateway_binary, interop_script, python, wait_for, Gateway};

/// How long any single expected message may take to arrive.
const WAIT: Duration = Duration::from_secs(30);

/// A running bridge: its stdin, the lines of its stdout, its stderr.
struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Messages read while waiting for something else.
    seen: Vec<Value>,
    log: Arc<Mutex<String>>,
}

impl Bridge {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Bridge {
        Self::start_program(gateway_binary().as_ref(), args, env)
    }

    fn start_program(program: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Bridge {
        let mut command = Command::new(program);
        command
            .args(args)
            .env_remove("MCP_GATEWAY_URL")
            .env_remove("MCP_GATEWAY_TOKEN")
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start the bridge");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    log.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Bridge {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            log,
        }
    }

    /// A bridge to the gateway's `/mcp`.
    fn to(gw: &Gateway) -> Bridge {
        Self::start(&["bridge", &url(gw)], &[])
    }

    fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn write_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    fn send(&mut self, message: &Value) {
        let mut line = serde_json::to_vec(message).unwrap();
        line.push(b'\n');
        self.write_raw(&line);
    }

    /// The next line of stdout, which must be one JSON message.
    fn next(&mut self, timeout: Duration) -> Option<Value> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Some(serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("stdout carried a line that is not JSON ({e}): {line:?}")
            })),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The first message (already seen or still to come) that `wanted` accepts; the others read
    /// meanwhile are kept in `seen`.
    fn until(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(position) = self.seen.iter().position(&wanted) {
            return self.seen.remove(position);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(message) = self.next(left) else {
                panic!(
                    "no {what} within {WAIT:?}; seen {:?}\nbridge log:\n{}",
                    self.seen,
                    self.logs()
                );
            };
            if wanted(&message) {
                return message;
            }
            self.seen.push(message);
        }
    }

    /// The response to `id`.
    fn response(&mut self, id: &Value) -> Value {
        self.until(&format!("response to {id}"), |m| {
            m.get("method").is_none() && m.get("id") == Some(id)
        })
    }

    /// The first message with `method`.
    fn method(&mut self, method: &str) -> Value {
        self.until(method, |m| m["method"] == method)
    }

    /// Sends a request and returns its response.
    fn request(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(&id)
    }

    fn call(&mut self, id: Value, tool: &str, arguments: Value) -> Value {
        self.request(
            id,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        )
    }

    /// The client's handshake: initialize, then notifications/initialized.
    fn initialize(&mut self, capabilities: Value) -> Value {
        let answer = self.request(
            json!(0),
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": capabilities,
                   "clientInfo": {"name": "bridge-test", "version": "1"}}),
        );
        assert!(answer.get("result").is_some(), "initialize: {answer}");
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        answer
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn wait_exit(&mut self) -> ExitStatus {
        wait_for(WAIT, "the bridge to exit", || {
            self.child.try_wait().unwrap()
        })
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url(gw: &Gateway) -> String {
    format!("http://{}/mcp", gw.addr())
}

/// A gateway with one demo server (one process, so a call that is not cancelled holds it).
fn demo_config() -> Value {
    json!({
        "servers": [demo("demo", &[])],
        "mapping": {"demo": {"prefix": "demo_"}},
        "pool": {"minConnections": 1, "maxConnections": 1},
    })
}

fn gateway() -> Gateway {
    let gw = Gateway::start(demo_config());
    gw.wait_up();
    gw
}

fn text(response: &Value) -> &str {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("not a text result: {response}"))
}

/// Asserts `response` is an error with `code` whose message contains `words`.
fn assert_error(response: &Value, code: i64, words: &str) {
    let message = response["error"]["message"].as_str().unwrap_or_default();
    assert!(
        response["error"]["code"] == code && message.contains(words),
        "expected error {code} saying {words:?}: {response}"
    );
}

/// The params of a client's initialize.
fn initialize_params() -> Value {
    json!({"protocolVersion": "2025-11-25", "capabilities": {},
           "clientInfo": {"name": "bridge-test", "version": "1"}})
}

/// Waits until the gateway is running `n` calls.
fn wait_in_flight(gw: &Gateway, n: u64) {
    wait_for(WAIT, "the call to reach the gateway", || {
        (gw.health()["inFlight"].as_u64() == Some(n)).then_some(())
    });
}

/// The id of the session the gateway opened for the bridge (from its debug log).
fn session_ids(gw: &Gateway) -> Vec<String> {
    gw.logs()
        .lines()
        .filter_map(|l| l.split("session ").nth(1))
        .filter_map(|rest| rest.strip_suffix(" opened (Streamable HTTP)"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn initialize_listing_and_calls_are_relayed_faithfully() {
    let gw = gateway();
    let mut bridge = Bridge::to(&gw);
    let answer = bridge.initialize(json!({}));
    // The gateway's own answer, with the version the client asked for.
    assert_eq!(answer["result"]["serverInfo"]["name"], "mcp-gateway");
    assert_eq!(answer["result"]["protocolVersion"], "2025-06-18");

    // Tools with full schemas: exactly what a direct client of the gateway sees.
    let listed = bridge.request(json!(1), "tools/list", json!({}));
    let mut direct = gw.mcp();
    let expected = direct.request("tools/list", json!({}));
    assert_eq!(listed["result"], expected.response()["result"]);

    // Ids pass through untouched, strings and integers alike.
    let added = bridge.call(json!("a-string-id"), "demo_add", json!({"a": 2, "b": 40}));
    assert_eq!(added["result"]["structuredContent"], json!({"sum": 42}));
    let echoed = bridge.call(
        json!(9007199254740993u64),
        "demo_echo",
        json!({"text": "x"}),
    );
    assert_eq!(text(&echoed), "x");
    let failed = bridge.call(json!(3), "demo_fail", json!({"message": "no"}));
    assert_eq!(failed["result"]["isError"], true);
    let unknown = bridge.call(json!(4), "nope", json!({}));
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");

    let prompt = bridge.request(
        json!(5),
        "prompts/get",
        json!({"name": "demo_greet", "arguments": {"name": "Ada"}}),
    );
    assert!(
        prompt["result"]["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("Ada"),
        "{prompt}"
    );
    let resource = bridge.request(json!(6), "resources/read", json!({"uri": "demo://echo/hi"}));
    assert_eq!(resource["result"]["contents"][0]["text"], "hi");
    let missing = bridge.request(json!(7), "resources/read", json!({"uri": "nowhere://x"}));
    assert_eq!(missing["error"]["code"], -32002);
    let pong = bridge.request(json!(8), "ping", json!({}));
    assert_eq!(pong["result"], json!({}));
    assert!(
        bridge.seen.is_empty(),
        "unsolicited messages: {:?}",
        bridge.seen
    );
}

#[test]
fn progress_server_requests_and_stream_notifications_are_relayed() {
    let gw = gateway();
    let mut bridge = Bridge::to(&gw);
    bridge.initialize(json!({"sampling": {}, "roots": {"listChanged": true}}));

    // Progress comes before the result, in order, with the client's token.
    let done = bridge.request(
        json!(1),
        "tools/call",
        json!({"name": "demo_progress", "arguments": {"steps": 3, "intervalMs": 1},
               "_meta": {"progressToken": "tok"}}),
    );
    assert_eq!(text(&done), "done 3 steps");
    let progress: Vec<Value> = bridge
        .seen
        .drain(..)
        .map(|m| {
            assert_eq!(m["method"], "notifications/progress", "{m}");
            assert_eq!(m["params"]["progressToken"], "tok");
            m["params"]["progress"].clone()
        })
        .collect();
    assert_eq!(progress, [json!(1), json!(2), json!(3)]);

    // The gateway asks the client (sampling) during a call; the client's answer goes back.
    bridge.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": {"name": "demo_sample", "arguments": {"prompt": "hi"}}}));
    let ask = bridge.method("sampling/createMessage");
    bridge.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {
        "role": "assistant", "content": {"type": "text", "text": "sampled by the client"},
        "model": "test"}}));
    let sampled = bridge.response(&json!(2));
    assert!(
        text(&sampled).contains("sampled by the client"),
        "{sampled}"
    );

    // Roots: a request of the gateway's, answered by the client.
    bridge.send(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                        "params": {"name": "demo_roots", "arguments": {}}}));
    let ask = bridge.method("roots/list");
    bridge.send(&json!({"jsonrpc": "2.0", "id": ask["id"],
                        "result": {"roots": [{"uri": "file:///work", "name": "work"}]}}));
    let roots = bridge.response(&json!(3));
    assert!(text(&roots).contains("file:///work"), "{roots}");

    // Server-initiated notifications arrive on the session's GET stream.
    let notified = bridge.call(json!(4), "demo_notify_changed", json!({}));
    assert_eq!(text(&notified), "notified");
    let changed = bridge.method("notifications/tools/list_changed");
    assert!(changed.get("id").is_none());
}

#[test]
fn framing_survives_merged_split_and_large_messages() {
    let gw = gateway();
    let mut bridge = Bridge::to(&gw);
    bridge.initialize(json!({}));

    // Several messages in one write, with blank lines and CRLF line ends between them.
    let mut merged = Vec::new();
    for (id, word) in [(1, "one"), (2, "two"), (3, "three")] {
        merged.extend_from_slice(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                   "params": {"name": "demo_echo", "arguments": {"text": word}}})
            .to_string()
            .as_bytes(),
        );
        merged.extend_from_slice(b"\r\n\n   \n");
    }
    bridge.write_raw(&merged);
    for (id, word) in [(1, "one"), (2, "two"), (3, "three")] {
        assert_eq!(text(&bridge.response(&json!(id))), word);
    }

    // One message split across writes, the cut falling inside a 4-byte UTF-8 character.
    let word = "h\u{e9}llo \u{2603} \u{1f600} end";
    let line = format!(
        "{}\n",
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
               "params": {"name": "demo_echo", "arguments": {"text": word}}})
    );
    let bytes = line.as_bytes();
    let emoji = line.find('\u{1f600}').unwrap();
    for part in [&bytes[..10], &bytes[10..emoji + 2], &bytes[emoji + 2..]] {
        bridge.write_raw(part);
        std::thread::sleep(Duration::from_millis(30)); // let each part be its own read
    }
    assert_eq!(text(&bridge.response(&json!(4))), word);

    // A 2 MB answer comes out as one line; a 1 MB request goes in as one.
    let big = bridge.call(json!(5), "demo_big", json!({"bytes": 2_000_000}));
    assert_eq!(text(&big).len(), 2_000_000);
    let long = "x".repeat(1 << 20);
    let echoed = bridge.call(json!(6), "demo_echo", json!({"text": long}));
    assert_eq!(text(&echoed).len(), 1 << 20);

    // A line that is not JSON gets a parse error (id null); the bridge goes on.
    bridge.write_raw(b"this is not json\n");
    let error = bridge.next(WAIT).expect("an error for the bad line");
    assert_eq!(error["error"]["code"], -32700, "{error}");
    assert_eq!(error["id"], Value::Null);
    assert_eq!(
        text(&bridge.call(json!(7), "demo_echo", json!({"text": "ok"}))),
        "ok"
    );
    assert!(bridge.seen.is_empty(), "unexpected: {:?}", bridge.seen);
}

#[test]
fn stdin_eof_ends_the_session_and_exits_zero() {
    let gw = gateway();
    let mut bridge = Bridge::to(&gw);
    bridge.initialize(json!({}));
    assert_eq!(
        text(&bridge.call(json!(1), "demo_echo", json!({"text": "a"}))),
        "a"
    );
    let id = session_ids(&gw).pop().expect("the bridge's session");
    // An unterminated last line is still a message.
    bridge.write_raw(br#"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#);
    bridge.close_stdin();
    assert!(bridge.wait_exit().success(), "{}", bridge.logs());
    gw.wait_log(&format!("session {id} deleted by the client"), WAIT);
    assert!(bridge.next(Duration::ZERO).is_none());
}

#[test]
fn cancellation_reaches_the_gateway() {
    let gw = gateway();
    let mut bridge = Bridge::to(&gw);
    bridge.initialize(json!({}));
    bridge.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": {"name": "demo_sleep", "arguments": {"ms": 600000}}}));
    wait_in_flight(&gw, 1);
    bridge.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": 1, "reason": "changed my mind"}}),
    );
    // The demo server has one process: it is free again only if the sleep was cancelled there.
    assert_eq!(
        text(&bridge.call(json!(2), "demo_echo", json!({"text": "free"}))),
        "free"
    );
    // The cancelled request gets no answer (the client expects none).
    assert!(bridge.seen.iter().all(|m| m.get("id") != Some(&json!(1))));
    assert!(bridge.next(Duration::from_millis(200)).is_none());
}

#[test]
fn a_gateway_restart_mid_session_fails_calls_in_flight_and_reconnects() {
    let mut gw = gateway();
    let port = gw.port.to_string();
    let mut bridge = Bridge::start(&["bridge", &url(&gw), "--reconnect-timeout", "60000"], &[]);
    bridge.initialize(json!({}));
    assert_eq!(
        text(&bridge.call(json!(1), "demo_echo", json!({"text": "a"}))),
        "a"
    );
    bridge.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": {"name": "demo_sleep", "arguments": {"ms": 600000}}}));
    wait_in_flight(&gw, 1);

    // The gateway dies: the call in flight gets an error with its own id, not a hang.
    gw.child.kill().unwrap();
    gw.wait_exit(WAIT);
    assert_error(&bridge.response(&json!(2)), -32603, "lost during the call");

    // A call made while the gateway is down waits for it to come back on the same port.
    bridge.send(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                        "params": {"name": "demo_echo", "arguments": {"text": "waited"}}}));
    drop(gw);
    let gw = Gateway::start_with(demo_config(), &[], &["--port", &port]);
    gw.wait_up();
    assert_eq!(text(&bridge.response(&json!(3))), "waited");
    assert_eq!(
        text(&bridge.call(json!(4), "demo_echo", json!({"text": "b"}))),
        "b"
    );

    // The bridge initialized again by itself, with the client's params, and said nothing.
    assert_eq!(session_ids(&gw).len(), 1, "{}", gw.logs());
    assert!(bridge.seen.is_empty(), "unexpected: {:?}", bridge.seen);
    // Logged before the answers were relayed, but read from another pipe by another thread.
    let logged = wait_for(WAIT, "the bridge to say it re-initialized", || {
        Some(bridge.logs()).filter(|log| log.contains("re-initialized"))
    });
    assert!(
        !logged.contains("re-initializing:"),
        "the replay failed: {logged}"
    );
}

#[test]
fn a_forgotten_session_is_opened_again_with_the_clients_subscriptions() {
    let gw = gateway();
    let mut bridge = Bridge::to(&gw);
    bridge.initialize(json!({}));
    let subscribed = bridge.request(
        json!(1),
        "resources/subscribe",
        json!({"uri": "demo://readme"}),
    );
    assert_eq!(subscribed["result"], json!({}), "{subscribed}");
    let old = session_ids(&gw).pop().unwrap();

    // The gateway forgets the session (as after an expiry): the next call gets 404 inside the
    // bridge, which opens a new session and replays the subscription before the call goes out.
    let deleted = util::http_request(
        &gw.addr(),
        "DELETE",
        "/mcp",
        &[("Mcp-Session-Id", old.as_str())],
        b"",
    );
    assert_eq!(deleted.status, 200);
    let touched = bridge.call(json!(2), "demo_touch", json!({"uri": "demo://readme"}));
    assert_eq!(text(&touched), "touched");
    let updated = bridge.method("notifications/resources/updated");
    assert_eq!(updated["params"]["uri"], "demo://readme");
    let sessions = session_ids(&gw);
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_ne!(sessions[1], old);
}

#[test]
fn a_token_is_sent_from_the_flag_or_the_environment() {
    let mut config = demo_config();
    config["gateway"] = json!({"authToken": "s3cret"});
    let gw = Gateway::start(config);
    gw.wait_up();

    let mut flag = Bridge::start(&["bridge", &url(&gw), "--token", "s3cret"], &[]);
    flag.initialize(json!({}));
    assert_eq!(
        text(&flag.call(json!(1), "demo_echo", json!({"text": "a"}))),
        "a"
    );

    let mut env = Bridge::start(
        &["bridge"],
        &[
            ("MCP_GATEWAY_URL", &url(&gw)),
            ("MCP_GATEWAY_TOKEN", "s3cret"),
        ],
    );
    env.initialize(json!({}));
    assert_eq!(
        text(&env.call(json!(1), "demo_echo", json!({"text": "b"}))),
        "b"
    );

    // Without it the client's initialize gets a clear error with its own id.
    let mut none = Bridge::to(&gw);
    let refused = none.request(json!("init"), "initialize", initialize_params());
    assert_error(&refused, -32000, "(401");
    assert_error(&refused, -32000, "MCP_GATEWAY_TOKEN");
}

#[test]
fn an_unreachable_gateway_is_a_clear_error_after_the_reconnect_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut bridge = Bridge::start(&["bridge", &url, "--reconnect-timeout", "300"], &[]);
    let refused = bridge.request(json!(1), "initialize", initialize_params());
    assert_error(&refused, -32000, "cannot connect");
    bridge.close_stdin();
    assert!(bridge.wait_exit().success());
}

#[test]
fn bad_arguments_are_a_usage_error() {
    let output = Command::new(gateway_binary())
        .args(["bridge", "ftp://nowhere/"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        output.stdout.is_empty(),
        "stdout is for protocol messages only"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("scheme"));
}

#[test]
fn runs_under_the_name_mcp_gateway_bridge() {
    let gw = gateway();
    let dir = util::temp_dir("bridge-link");
    let link = dir.join("mcp-gateway-bridge");
    std::os::unix::fs::symlink(gateway_binary(), &link).unwrap();
    let mut bridge = Bridge::start_program(&link, &[&url(&gw)], &[]);
    bridge.initialize(json!({}));
    assert_eq!(
        text(&bridge.call(json!(1), "demo_echo", json!({"text": "linked"}))),
        "linked"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A server of the Python SDK that only speaks the legacy HTTP+SSE transport.
struct LegacyServer {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    port: String,
}

impl LegacyServer {
    /// On `port`, or one the system picks ("0").
    fn start(port: &str) -> LegacyServer {
        let mut child = Command::new(python())
            .arg(interop_script("bridge_sse_server.py"))
            .arg(port)
            .env("PYTHONWARNINGS", "ignore")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the legacy SSE server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines.next().expect("the server's port").unwrap();
        LegacyServer { child, lines, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/sse", self.port)
    }

    /// Waits for the server to say a `sleep` call started.
    fn wait_sleeping(&mut self) {
        let line = self.lines.next().expect("the server's note").unwrap();
        assert_eq!(line, "sleeping");
    }
}

impl Drop for LegacyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Streamable HTTP is tried first; a server that only has the legacy transport (the Python SDK's
/// `sse` app, where `POST /sse` is 405) is reached through the fallback — also after it restarts.
#[test]
fn falls_back_to_a_legacy_sse_only_server_and_survives_its_restart() {
    let mut server = LegacyServer::start("0");
    let mut bridge = Bridge::start(
        &["bridge", &server.url(), "--reconnect-timeout", "60000"],
        &[],
    );
    let answer = bridge.initialize(json!({}));
    assert_eq!(
        answer["result"]["serverInfo"]["name"], "legacy-sse-only",
        "{answer}"
    );
    assert!(bridge
        .logs()
        .contains("trying the legacy HTTP+SSE transport"));
    let listed = bridge.request(json!(1), "tools/list", json!({}));
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "progress", "sleep"]);
    assert_eq!(
        text(&bridge.call(json!("e"), "echo", json!({"text": "via sse"}))),
        "via sse"
    );
    let done = bridge.request(
        json!(2),
        "tools/call",
        json!({"name": "progress", "arguments": {"steps": 2}, "_meta": {"progressToken": 7}}),
    );
    assert_eq!(text(&done), "done 2 steps");
    let steps: Vec<Option<f64>> = bridge
        .seen
        .drain(..)
        .map(|m| m["params"]["progress"].as_f64())
        .collect();
    assert_eq!(steps, [Some(1.0), Some(2.0)]);

    // The server dies with a call in flight: its answer would have come on the stream, which
    // ended, so the call fails at once; after the restart the bridge goes straight to the legacy
    // transport and calls work again.
    bridge.send(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                        "params": {"name": "sleep", "arguments": {"ms": 600000}}}));
    server.wait_sleeping();
    let port = server.port.clone();
    drop(server);
    assert_error(&bridge.response(&json!(3)), -32603, "lost during the call");
    let _server = LegacyServer::start(&port);
    assert_eq!(
        text(&bridge.call(json!(4), "echo", json!({"text": "again"}))),
        "again"
    );
    assert!(bridge.seen.is_empty(), "unexpected: {:?}", bridge.seen);
    bridge.close_stdin();
    assert!(bridge.wait_exit().success());
}

/// The official Python SDK's stdio client starts the bridge, as Claude Desktop would, and works
/// through it: listing, calls, progress, cancellation, resources, prompts, a gateway restart in
/// the middle of the session (with a call in flight), and the end of the session on stdin EOF.
#[test]
fn python_sdk_stdio_client_through_the_bridge() {
    let mut gw = gateway();
    let port = gw.port.to_string();
    let mut client = Command::new(python())
        .arg(interop_script("bridge_client.py"))
        .arg(gateway_binary())
        .arg(url(&gw))
        .env("PYTHONWARNINGS", "ignore")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Python SDK client");
    let stderr = client.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let mut checks = Vec::new();
    for line in BufReader::new(client.stdout.take().unwrap()).lines() {
        let check: Value = serde_json::from_str(&line.unwrap()).expect("one JSON line per check");
        if check["check"] == "restart" {
            wait_in_flight(&gw, 1);
            gw.child.kill().unwrap();
            gw.wait_exit(WAIT);
            drop(gw);
            gw = Gateway::start_with(demo_config(), &[], &["--port", &port]);
            gw.wait_up();
            writeln!(client.stdin.as_mut().unwrap(), "restarted").unwrap();
        }
        checks.push(check);
    }
    let status = wait_for(WAIT, "the Python client to exit", || {
        client.try_wait().unwrap()
    });
    let errors = errors.join().unwrap();
    assert!(
        status.success(),
        "the Python SDK client failed:\n{checks:?}\n{errors}\ngateway log:\n{}",
        gw.logs()
    );
    let names: Vec<&str> = checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "initialize",
            "tools/list",
            "tools/call",
            "progress",
            "cancellation",
            "resources",
            "prompts",
            "restart",
            "after restart",
            "closed"
        ]
    );
    assert_eq!(checks[3]["steps"], json!([1.0, 2.0, 3.0]));
    let in_flight_error = checks[8]["in_flight_error"].as_str().unwrap();
    assert!(
        in_flight_error.contains("lost during the call"),
        "{in_flight_error}"
    );
    // On the new gateway: one session, opened by the bridge's re-initialize; stdin EOF deleted it.
    let ids = session_ids(&gw);
    assert_eq!(ids.len(), 1, "{}", gw.logs());
    gw.wait_log(&format!("session {} deleted by the client", ids[0]), WAIT);
}
