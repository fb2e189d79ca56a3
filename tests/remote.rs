//! Remote MCP servers behind the gateway (`"type": "remote"`), end to end against a real
//! third-party server: an MCP server built with the official Python SDK (`tests/interop/
//! remote_server.py`, run from the venv `make test` installs under `target/interop/`), serving
//! Streamable HTTP (SSE-stream or JSON answers) or the legacy HTTP+SSE transport, over http or
//! https with a certificate the test mints.
//!
//! Covered: every upstream transport reaching a remote tool, progress through it, resources and
//! prompts, transport negotiation (auto fallback, explicit choices), the remote restarting in the
//! middle of a session (a new session transparently), an unreachable URL and a silent one not
//! delaying the other servers, TLS trusted through `caFile` and refused without it, configured
//! headers sent and the client's own token never forwarded, call timeouts, and handle reuse;
//! a sampling request on the standalone GET stream reaching the one client calling (a Python SDK
//! client, `tests/interop/remote_client.py`) and refused between two clients, an answer stream
//! the server cuts short resumed with `Last-Event-ID`, a server without a GET stream pinged so
//! its death shows in `/health`, and one handle carrying eight threads' calls at once across a
//! restart (one renewal). The TypeScript reference server as a remote: `tests/remote_everything.rs`.

mod util;

use serde_json::{json, Value};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use util::{demo, wait_for, Gateway, McpSession};

/// The Python SDK server, killed when dropped.
struct PyServer(util::PyProcess);

impl PyServer {
    /// Starts `remote_server.py TRANSPORT` (on `port`, 0 for any) and waits for it to listen.
    fn start(transport: &str, port: u16, tls_dir: Option<&Path>) -> PyServer {
        PyServer::start_with(transport, port, tls_dir, &[])
    }

    /// The same with more of the script's flags (`--no-get-stream`, `--resumable`).
    fn start_with(transport: &str, port: u16, tls_dir: Option<&Path>, flags: &[&str]) -> PyServer {
        let port = port.to_string();
        let mut args: Vec<&OsStr> = vec![transport.as_ref()];
        args.extend(flags.iter().map(OsStr::new));
        args.extend([OsStr::new("--port"), port.as_ref()]);
        if let Some(dir) = tls_dir {
            args.extend([OsStr::new("--tls-dir"), dir.as_os_str()]);
        }
        PyServer(util::PyProcess::start("remote_server.py", &args))
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.0.port)
    }

    fn stderr(&self) -> String {
        self.0.stderr()
    }

    fn kill(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

fn remote(name: &str, url: &str) -> Value {
    json!({"name": name, "type": "remote", "url": url})
}

/// A remote spoken to in one era: the Python SDK's server speaks both, and `auto` (the default)
/// picks 2026-07-28; what only a 2025 session has (a GET stream, resumption, a session to lose)
/// is tested with the server pinned to 2025-11-25.
fn remote_in(name: &str, url: &str, protocol: &str) -> Value {
    json!({"name": name, "type": "remote", "url": url, "protocol": protocol})
}

fn wait_up(gw: &Gateway, name: &str) -> Value {
    wait_for(
        Duration::from_secs(30),
        &format!("server {name} up"),
        || {
            let health = gw.server_health(name);
            (health["status"] == "up").then_some(health)
        },
    )
}

fn call(gw: &Gateway, name: &str, arguments: Value) -> Value {
    let response = gw.call(name, arguments);
    assert_eq!(
        response.status,
        200,
        "{name}: {}\n{}",
        response.text(),
        gw.logs()
    );
    response.json()["result"].clone()
}

fn text_of(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_streamable_remote_serves_every_upstream_transport() {
    let py = PyServer::start("streamable", 0, None);
    let gw = Gateway::start(json!({
        "servers": [remote("py", &py.url("http", "/mcp")), demo("local", &[])],
        "mapping": {"py": {"prefix": "py_"}},
    }));
    wait_up(&gw, "py");
    wait_up(&gw, "local");

    // REST: listing (full schemas passed through) and calling.
    let tools = gw.get("/tools").json();
    let add = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "py_add")
        .unwrap_or_else(|| panic!("py_add missing: {tools}"))
        .clone();
    assert_eq!(add["server"], "py");
    assert_eq!(add["inputSchema"]["required"], json!(["a", "b"]), "{add}");
    assert_eq!(
        text_of(&call(&gw, "py_add", json!({"a": 2, "b": 40}))),
        "42"
    );

    // Streamable HTTP upstream: a call with progress streams the remote's progress back.
    let mut session = McpSession::open(&gw);
    let reply = session.request(
        "tools/call",
        json!({"name": "py_slow", "arguments": {"steps": 3}, "_meta": {"progressToken": "p-1"}}),
    );
    let progress: Vec<&Value> = reply
        .messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{:?}", reply.messages);
    assert!(progress
        .iter()
        .all(|m| m["params"]["progressToken"] == "p-1"));
    assert_eq!(progress[2]["params"]["progress"], 3.0);
    assert_eq!(
        text_of(&reply.response()["result"]),
        "done after 3 steps",
        "{:?}",
        reply.messages
    );

    // Resources and prompts of the remote.
    let read = session.request("resources/read", json!({"uri": "memo://greeting"}));
    assert_eq!(
        read.response()["result"]["contents"][0]["text"],
        "hello from python",
        "{}",
        read.response()
    );
    let prompt = session.request(
        "prompts/get",
        json!({"name": "py_review", "arguments": {"code": "x = 1"}}),
    );
    let prompt = prompt.response();
    assert_eq!(
        prompt["result"]["messages"][0]["content"]["text"], "Please review: x = 1",
        "{prompt}"
    );

    // Legacy SSE upstream.
    let mut sse = gw.sse();
    sse.initialize();
    let answer = sse.request(
        "tools/call",
        json!({"name": "py_echo", "arguments": {"text": "over sse"}}),
    );
    assert_eq!(text_of(&answer["result"]), "over sse", "{answer}");

    // Reuse: many calls, still the one session the pool opened at start.
    for n in 0..20 {
        assert_eq!(
            text_of(&call(&gw, "py_add", json!({"a": n, "b": 1}))),
            (n + 1).to_string()
        );
    }
    let health = gw.server_health("py");
    assert_eq!(health["spawns"], 1, "{health}");
    assert_eq!(health["restarts"], 0, "{health}");
}

#[test]
fn sampling_and_logging_from_a_remote_reach_the_client_that_called() {
    // (transport, protocol): a 2025 session (the GET stream and the legacy transport), and the
    // 2026-07-28 era, where the session's log level rides each call and its log messages come on
    // that call's own stream.
    for (transport, protocol) in [
        ("streamable", "2025-11-25"),
        ("streamable", "auto"),
        ("sse", "auto"),
    ] {
        let py = PyServer::start(transport, 0, None);
        let path = if transport == "sse" { "/sse" } else { "/mcp" };
        let gw =
            Gateway::start(json!({"servers": [remote_in("py", &py.url("http", path), protocol)]}));
        let health = wait_up(&gw, "py");
        let modern = transport == "streamable" && protocol == "auto";
        let case = format!("{transport}, {protocol}");
        assert_eq!(
            gw.logs().contains("ready (protocol 2026-07-28)"),
            modern,
            "{case}: {health}"
        );
        let mut sse = gw.sse();
        sse.request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}},
                   "clientInfo": {"name": "test", "version": "1"}}),
        );
        sse.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        sse.request("logging/setLevel", json!({"level": "info"}));

        // A log message the remote sends while serving a call reaches the session.
        sse.send(&json!({"jsonrpc": "2.0", "id": 100, "method": "tools/call",
                         "params": {"name": "shout", "arguments": {"text": "loud and clear"}}}));
        let log = wait_for(Duration::from_secs(10), "the log message", || {
            let m = sse.next_message(Duration::from_secs(10))?;
            (m["method"] == "notifications/message").then_some(m)
        });
        assert_eq!(log["params"]["data"], "loud and clear", "{case}: {log}");
        assert_eq!(log["params"]["logger"], "py", "{case}: {log}");
        let shouted = sse.response_to(&json!(100), Duration::from_secs(10));
        assert_eq!(text_of(&shouted["result"]), "shouted", "{case}: {shouted}");
        if modern {
            // A session that asked for warnings only: the level the call carries says so.
            sse.request("logging/setLevel", json!({"level": "warning"}));
            sse.send(&json!({"jsonrpc": "2.0", "id": 102, "method": "tools/call",
                             "params": {"name": "shout", "arguments": {"text": "hush"}}}));
            let mut seen = Vec::new();
            let answer = wait_for(Duration::from_secs(10), "the quiet answer", || {
                let m = sse.next_message(Duration::from_secs(10))?;
                if m["id"] == 102 {
                    return Some(m);
                }
                seen.push(m);
                None
            });
            assert_eq!(text_of(&answer["result"]), "shouted", "{case}: {answer}");
            assert!(
                !seen.iter().any(|m| m["method"] == "notifications/message"),
                "{case}: an info message for a session at warning: {seen:?}"
            );
            // The sampling half is the 2025 session's (`ask` uses the session API; the
            // 2026-07-28 round trip is tests/eras.rs).
            continue;
        }

        // The remote asks the client's model mid-call; the client's answer goes back to it.
        sse.send(&json!({"jsonrpc": "2.0", "id": 101, "method": "tools/call",
                         "params": {"name": "ask", "arguments": {"question": "Capital of France?"}}}));
        let ask = wait_for(Duration::from_secs(10), "the sampling request", || {
            let m = sse.next_message(Duration::from_secs(10))?;
            (m["method"] == "sampling/createMessage").then_some(m)
        });
        assert_eq!(
            ask["params"]["messages"][0]["content"]["text"], "Capital of France?",
            "{case}: {ask}"
        );
        sse.send(&json!({"jsonrpc": "2.0", "id": ask["id"],
                         "result": {"role": "assistant", "model": "test-model",
                                    "content": {"type": "text", "text": "Paris"}}}));
        let answer = sse.response_to(&json!(101), Duration::from_secs(10));
        assert_eq!(
            text_of(&answer["result"]),
            "the model says: Paris",
            "{case}: {answer}\n{}",
            gw.logs()
        );
    }
}

#[test]
fn json_answers_and_the_legacy_transport_work_and_auto_picks_the_right_one() {
    let json_server = PyServer::start("json", 0, None);
    let legacy = PyServer::start("sse", 0, None);
    let gw = Gateway::start(json!({
        "servers": [
            remote("plain", &json_server.url("http", "/mcp")),
            remote("auto_legacy", &legacy.url("http", "/sse")),
            {"name": "forced_legacy", "type": "remote", "url": legacy.url("http", "/sse"), "transport": "sse"},
            {"name": "wrong", "type": "remote", "url": legacy.url("http", "/sse"), "transport": "streamable"},
        ],
        "mapping": {
            "plain": {"prefix": "plain_"},
            "auto_legacy": {"prefix": "auto_"},
            "forced_legacy": {"prefix": "forced_"},
            "wrong": {"prefix": "wrong_"},
        },
    }));
    for name in ["plain", "auto_legacy", "forced_legacy"] {
        wait_up(&gw, name);
    }
    assert_eq!(
        text_of(&call(&gw, "plain_add", json!({"a": 1, "b": 2}))),
        "3"
    );
    for prefix in ["auto_", "forced_"] {
        let result = call(&gw, &format!("{prefix}slow"), json!({"steps": 2}));
        assert_eq!(text_of(&result), "done after 2 steps");
    }
    // Progress over the legacy transport reaches a Streamable HTTP client.
    let mut session = McpSession::open(&gw);
    let reply = session.request(
        "tools/call",
        json!({"name": "auto_slow", "arguments": {"steps": 2}, "_meta": {"progressToken": 9}}),
    );
    let progress = reply
        .messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress" && m["params"]["progressToken"] == 9)
        .count();
    assert_eq!(progress, 2, "{:?}", reply.messages);
    assert!(gw.logs().contains("trying the legacy SSE transport"));

    // `transport: streamable` never falls back: the server is down, and says why.
    let wrong = wait_for(Duration::from_secs(10), "wrong down", || {
        let h = gw.server_health("wrong");
        (h["status"] == "down").then_some(h)
    });
    let error = wrong["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("HTTP 405"), "{wrong}");
}

#[test]
fn a_remote_restarting_mid_session_gets_a_new_session_transparently() {
    // Without a GET stream nothing tells the handle of the restart before the next call's 404.
    let no_get = ["--no-get-stream"];
    for protocol in ["2025-11-25", "auto"] {
        let mut py = PyServer::start_with("streamable", 0, None, &no_get);
        let port = py.0.port;
        let gw = Gateway::start(json!({
            "pool": {"minConnections": 1, "maxConnections": 1},
            "servers": [remote_in("py", &py.url("http", "/mcp"), protocol)],
        }));
        wait_up(&gw, "py");
        let first = text_of(&call(&gw, "whoami", json!({})));
        assert_eq!(text_of(&call(&gw, "whoami", json!({}))), first);

        py.kill();
        let py = PyServer::start_with("streamable", port, None, &no_get);
        // The handle's session died with the old process; the next call renews it and succeeds.
        // (2026-07-28 has no session: the call simply reaches the new process.)
        let second = text_of(&call(&gw, "whoami", json!({})));
        assert_ne!(second, first, "{protocol}: a new process answers");
        assert_eq!(
            gw.logs().contains("no longer knows our session"),
            protocol == "2025-11-25",
            "{protocol}: {}",
            gw.logs()
        );
        assert_eq!(text_of(&call(&gw, "add", json!({"a": 5, "b": 5}))), "10");
        drop(py);
    }
}

#[test]
fn an_unreachable_or_silent_remote_does_not_hold_up_the_others() {
    // A listener that accepts connections (the kernel does) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/mcp", silent.local_addr().unwrap());
    let gw = Gateway::start(json!({
        "servers": [
            {"name": "silent", "type": "remote", "url": silent_url, "initTimeout": 60000},
            remote("gone", "http://127.0.0.1:9/mcp"),
            demo("local", &[]),
        ],
        "mapping": {"local": {"prefix": "local_"}},
    }));
    wait_up(&gw, "local");
    assert_eq!(
        text_of(&call(&gw, "local_echo", json!({"text": "still here"}))),
        "still here"
    );
    assert_eq!(gw.server_health("silent")["status"], "starting");
    let gone = wait_for(Duration::from_secs(10), "gone down", || {
        let h = gw.server_health("gone");
        (h["status"] == "down").then_some(h)
    });
    let error = gone["lastError"].as_str().unwrap_or_default();
    assert!(
        error.contains("unreachable") && error.contains("127.0.0.1:9"),
        "{gone}"
    );
    // Its failures back off instead of spinning.
    std::thread::sleep(Duration::from_millis(1500));
    let attempts = gw.server_health("gone")["spawns"].as_u64().unwrap();
    assert!(attempts < 10, "{attempts} connection attempts in about 2 s");
}

#[test]
fn https_is_verified_against_ca_file_and_refused_without_it() {
    let dir = util::temp_dir("tls");
    let py = PyServer::start("streamable", 0, Some(&dir));
    let ca = dir.join("ca.pem");
    let url = py.url("https", "/mcp");
    let gw = Gateway::start(json!({
        "servers": [
            {"name": "trusted", "type": "remote", "url": url, "caFile": ca},
            {"name": "untrusted", "type": "remote", "url": url},
        ],
        "mapping": {"trusted": {"prefix": "t_"}, "untrusted": {"prefix": "u_"}},
    }));
    wait_up(&gw, "trusted");
    assert_eq!(
        text_of(&call(&gw, "t_echo", json!({"text": "secure"}))),
        "secure"
    );
    let untrusted = wait_for(Duration::from_secs(10), "untrusted down", || {
        let h = gw.server_health("untrusted");
        (h["status"] == "down").then_some(h)
    });
    let error = untrusted["lastError"].as_str().unwrap_or_default();
    assert!(
        error.contains("TLS") && error.contains("certificate"),
        "{untrusted}"
    );
    let unknown = gw.call("u_echo", json!({"text": "x"}));
    assert_eq!(unknown.status, 404, "{}", unknown.text());
}

#[test]
fn configured_headers_are_sent_and_the_clients_token_never_is() {
    let py = PyServer::start("streamable", 0, None);
    let gw = Gateway::start_with(
        json!({
            "gateway": {"authToken": "client-secret"},
            "servers": [{
                "name": "py", "type": "remote", "url": py.url("http", "/mcp"),
                "headers": {"Authorization": "Bearer ${REMOTE_KEY}"},
            }],
        }),
        &[("REMOTE_KEY", "remote-key-1")],
        &[],
    );
    wait_up(&gw, "py");
    let response = gw.request(
        "POST",
        "/tools/call",
        &[
            ("Authorization", "Bearer client-secret"),
            ("Content-Type", "application/json"),
        ],
        br#"{"name": "echo", "arguments": {"text": "auth"}}"#,
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = py.stderr();
    assert!(seen.contains("AUTH Bearer remote-key-1"), "{seen}");
    assert!(!seen.contains("client-secret"), "{seen}");
}

#[test]
fn a_slow_remote_call_times_out_and_the_handle_serves_the_next_call() {
    let py = PyServer::start("streamable", 0, None);
    let gw = Gateway::start(json!({
        "pool": {"minConnections": 1, "maxConnections": 1},
        "servers": [{"name": "py", "type": "remote", "url": py.url("http", "/mcp"), "callTimeout": 300}],
    }));
    wait_up(&gw, "py");
    let slow = gw.call("sleep", json!({"ms": 3000}));
    assert_eq!(slow.status, 504, "{}", slow.text());
    assert!(slow.text().contains("300 ms"), "{}", slow.text());
    assert_eq!(text_of(&call(&gw, "add", json!({"a": 1, "b": 1}))), "2");
    let health = gw.server_health("py");
    assert_eq!(health["spawns"], 1, "{health}");
}

/// Runs `remote_client.py CHECK` (the Python SDK client) through the gateway; returns its checks.
fn run_client(gw: &Gateway, check: &str) -> Vec<Value> {
    let url = format!("http://{}/mcp", gw.addr());
    util::run_interop_script(gw, "remote_client.py", &[check, &url])
}

#[test]
fn a_sampling_request_on_the_get_stream_reaches_the_client_whose_call_is_in_flight() {
    let py = PyServer::start("streamable", 0, None);
    let gw = Gateway::start(json!({
        "pool": {"minConnections": 1, "maxConnections": 1},
        "servers": [remote_in("py", &py.url("http", "/mcp"), "2025-11-25")],
    }));
    wait_up(&gw, "py");
    // The SDK drops what it would send on a GET stream nobody holds: wait until it is held.
    gw.wait_log("GET stream open", Duration::from_secs(10));
    let checks = run_client(&gw, "aside");
    assert_eq!(checks[0]["check"], "aside", "{checks:?}");
    assert!(
        gw.logs()
            .contains("sampling/createMessage on its own stream goes to the one client"),
        "the request came on the GET stream: {}",
        gw.logs()
    );
    // A call without a client (REST) cannot take it: the server hears a refusal and passes it on.
    let response = gw.call("ask_aside", json!({"question": "anyone?"}));
    let error = response.json()["error"].clone();
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot forward sampling/createMessage here")),
        "{}\n{}",
        response.text(),
        py.stderr()
    );
}

#[test]
fn an_answer_stream_the_server_closes_early_is_resumed_with_last_event_id() {
    // Resumable streams are the 2025 sessions' (2026-07-28 has none).
    let py = PyServer::start_with("streamable", 0, None, &["--resumable"]);
    let url = py.url("http", "/mcp");
    let gw = Gateway::start(json!({"servers": [remote_in("py", &url, "2025-11-25")]}));
    wait_up(&gw, "py");
    // A client with progress: both notifications and the answer arrive, across the cut.
    let checks = run_client(&gw, "resume");
    assert_eq!(checks[0]["check"], "resume", "{checks:?}");
    // REST too.
    let result = call(&gw, "interrupted", json!({}));
    assert_eq!(text_of(&result), "answered after the cut");
    let resumed = py.stderr().matches("RESUMED").count();
    assert_eq!(resumed, 2, "one resumption per call:\n{}", py.stderr());
}

#[test]
fn a_remote_without_a_get_stream_is_watched_by_its_listen_or_a_probe_so_its_death_shows_in_health()
{
    // 2025: no GET stream (405), so it is pinged. 2026-07-28 has neither a GET stream nor ping:
    // its subscriptions/listen stream is held instead, and with nothing to listen for it is
    // probed with server/discover.
    for (protocol, flags, sign) in [
        (
            "2025-11-25",
            &["--no-get-stream"][..],
            "probing it with ping every",
        ),
        (
            "auto",
            &["--no-get-stream"][..],
            "subscriptions/listen open",
        ),
        (
            "auto",
            &["--no-get-stream", "--no-listen"][..],
            "probing it with server/discover every",
        ),
    ] {
        let mut py = PyServer::start_with("streamable", 0, None, flags);
        let gw = Gateway::start(json!({
            "pool": {"minConnections": 1, "maxConnections": 1},
            "servers": [remote_in("py", &py.url("http", "/mcp"), protocol)],
        }));
        wait_up(&gw, "py");
        gw.wait_log(sign, Duration::from_secs(10));
        py.kill();
        // No call is made: the stream's end (or the next probe) finds the server gone.
        let down = wait_for(Duration::from_secs(40), "py down", || {
            let health = gw.server_health("py");
            (health["status"] == "down").then_some(health)
        });
        assert!(
            down["lastError"].is_string(),
            "{protocol} {flags:?}: {down}"
        );
    }
}

#[test]
fn a_2026_remote_tells_2025_sessions_of_list_changes_and_resource_updates_through_its_listen() {
    let py = PyServer::start("streamable", 0, None);
    let gw = Gateway::start(json!({
        "pool": {"minConnections": 1, "maxConnections": 1},
        "servers": [remote("py", &py.url("http", "/mcp"))],
    }));
    wait_up(&gw, "py");
    gw.wait_log("subscriptions/listen open", Duration::from_secs(10));
    let mut sse = gw.sse();
    sse.initialize();
    // A 2025 subscription: the handle's listen is opened again with the resource in its filter.
    let subscribed = sse.request("resources/subscribe", json!({"uri": "memo://greeting"}));
    assert!(subscribed.get("result").is_some(), "{subscribed}");
    wait_for(Duration::from_secs(10), "a second listen", || {
        (gw.logs().matches("subscriptions/listen open").count() >= 2).then_some(())
    });
    assert_eq!(
        text_of(&call(&gw, "announce", json!({"uri": "memo://greeting"}))),
        "announced"
    );
    let mut seen = Vec::new();
    wait_for(Duration::from_secs(10), "both notifications", || {
        if let Some(m) = sse.next_message(Duration::from_secs(10)) {
            seen.push(m);
        }
        let got = |method: &str| seen.iter().any(|m| m["method"] == method);
        (got("notifications/tools/list_changed") && got("notifications/resources/updated"))
            .then_some(())
    });
    let update = seen
        .iter()
        .find(|m| m["method"] == "notifications/resources/updated")
        .unwrap();
    assert_eq!(update["params"]["uri"], "memo://greeting", "{update}");
    assert!(
        update["params"]
            .get("_meta")
            .is_none_or(|m| m.get("io.modelcontextprotocol/subscriptionId").is_none()),
        "the server's subscription id is the gateway's business: {update}"
    );
    // Unsubscribed: the listen is opened once more, without the resource, and the old one ends.
    sse.request("resources/unsubscribe", json!({"uri": "memo://greeting"}));
    wait_for(Duration::from_secs(10), "a third listen", || {
        (gw.logs().matches("subscriptions/listen open").count() >= 3).then_some(())
    });
    assert_eq!(
        text_of(&call(&gw, "announce", json!({"uri": "memo://greeting"}))),
        "announced"
    );
    let mut after = Vec::new();
    wait_for(Duration::from_secs(10), "the list change", || {
        if let Some(m) = sse.next_message(Duration::from_secs(10)) {
            after.push(m);
        }
        after
            .iter()
            .any(|m| m["method"] == "notifications/tools/list_changed")
            .then_some(())
    });
    // The server sends the update right after the list change: whatever came is read.
    while let Some(m) = sse.next_message(Duration::from_millis(500)) {
        after.push(m);
    }
    assert!(
        !after
            .iter()
            .any(|m| m["method"] == "notifications/resources/updated"),
        "no update after unsubscribing: {after:?}"
    );
    assert!(
        py.stderr().is_empty() || !py.stderr().contains("Traceback"),
        "{}",
        py.stderr()
    );
}

#[test]
fn one_remote_handle_carries_concurrent_calls_and_renews_a_lost_session_once() {
    use mcp_gateway::config::{RemoteServer, RemoteTransport};
    use mcp_gateway::downstream::child_io::ChildEvent;
    use mcp_gateway::downstream::handshake::handshake;
    use mcp_gateway::downstream::remote::link::{Events, RemoteLink, Target};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    let no_get = ["--no-get-stream"];
    let mut py = PyServer::start_with("streamable", 0, None, &no_get);
    let port = py.0.port;
    let config = RemoteServer {
        url: py.url("http", "/mcp"),
        transport: RemoteTransport::Auto,
        headers: Vec::new(),
        ca_file: None,
        auth: None,
    };
    let target = Arc::new(Target::new(&config, 1 << 20).unwrap());
    let renewed = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let events: Events = {
        let (renewed, closed) = (renewed.clone(), closed.clone());
        Arc::new(move |event| match event {
            ChildEvent::Renewed { .. } => {
                renewed.fetch_add(1, Ordering::SeqCst);
            }
            ChildEvent::Closed { .. } => {
                closed.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        })
    };
    let link = RemoteLink::new(0, "py".into(), 1, target, events);
    handshake(&*link, Instant::now() + Duration::from_secs(20)).expect("handshake");

    // Eight threads, five calls each, all on the one handle: every answer reaches its own caller.
    let calls = |link: &RemoteLink| {
        std::thread::scope(|scope| {
            for thread in 0..8 {
                scope.spawn(move || {
                    for n in 0..5 {
                        let text = format!("thread {thread} call {n}");
                        let params = json!({"name": "echo", "arguments": {"text": text}});
                        let deadline = Instant::now() + Duration::from_secs(20);
                        let params = params
                            .as_object()
                            .cloned()
                            .map(mcp_gateway::rpc::Params::from_map);
                        let mut call = link
                            .begin("tools/call", params, false, deadline, None)
                            .expect("begin");
                        let answer = call.answer().expect("an answer").expect("a result");
                        let result: Value = serde_json::from_str(answer.get()).unwrap();
                        assert_eq!(text_of(&result), text);
                    }
                });
            }
        })
    };
    calls(&link);
    assert_eq!(renewed.load(Ordering::SeqCst), 0);

    // The server restarts: all eight threads find the session lost; it is renewed once.
    py.kill();
    let py = PyServer::start_with("streamable", port, None, &no_get);
    calls(&link);
    assert_eq!(renewed.load(Ordering::SeqCst), 1, "{}", py.stderr());
    assert_eq!(closed.load(Ordering::SeqCst), 0);
    assert!(link.is_alive());
    // Retiring returns at once; the handle's stream thread ends the session on the server.
    link.retire();
    assert!(!link.is_alive());
    wait_for(Duration::from_secs(10), "the session's DELETE", || {
        py.stderr().contains("DELETE /mcp").then_some(())
    });
}

#[test]
fn a_get_stream_request_goes_to_the_only_client_calling_and_is_refused_between_two_or_when_orphaned(
) {
    use mcp_gateway::config::{RemoteServer, RemoteTransport};
    use mcp_gateway::downstream::handshake::handshake;
    use mcp_gateway::downstream::remote::link::{Events, RemoteLink, Target};
    use mcp_gateway::downstream::Inbound;
    use mcp_gateway::job::Slot;
    use std::time::Instant;

    let py = PyServer::start("streamable", 0, None);
    let config = RemoteServer {
        url: py.url("http", "/mcp"),
        transport: RemoteTransport::Streamable,
        headers: Vec::new(),
        ca_file: None,
        auth: None,
    };
    let target = Arc::new(Target::new(&config, 1 << 20).unwrap());
    let events: Events = Arc::new(|_| {});
    let link = RemoteLink::new(0, "py".into(), 1, target, events);
    handshake(&*link, Instant::now() + Duration::from_secs(20)).expect("handshake");
    let (alice, bob) = (Slot { key: 1, gen: 1 }, Slot { key: 2, gen: 1 });
    let tool = |name: &str, arguments: Value| {
        json!({"name": name, "arguments": arguments})
            .as_object()
            .cloned()
            .map(mcp_gateway::rpc::Params::from_map)
    };
    let start = |name: &str, arguments: Value, client| {
        let deadline = Instant::now() + Duration::from_secs(20);
        link.begin(
            "tools/call",
            tool(name, arguments),
            false,
            deadline,
            Some(client),
        )
        .unwrap()
    };
    let sampled = json!({"role": "assistant", "model": "m",
                         "content": {"type": "text", "text": "here"}});

    // One client calling: the request reaches that call. (Until the handle's GET stream is open
    // the SDK drops such requests, so the first tries may time out.)
    let answer = wait_for(Duration::from_secs(20), "an aside answered", || {
        let deadline = Instant::now() + Duration::from_secs(2);
        let args = json!({"question": "where?"});
        let mut call = link
            .begin(
                "tools/call",
                tool("ask_aside", args),
                false,
                deadline,
                Some(alice),
            )
            .unwrap();
        loop {
            match call.step() {
                Ok(Inbound::ChildRequest { id, method, .. }) => {
                    assert_eq!(method, "sampling/createMessage");
                    link.respond_to(&id, Ok(&sampled));
                }
                Ok(Inbound::Response(answer)) => return Some(answer),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    });
    let result: Value = serde_json::from_str(answer.unwrap().get()).unwrap();
    assert_eq!(text_of(&result), "aside, the model says: here");

    // Routed to the client's oldest call, which ends before answering: the server is told, rather
    // than left waiting (the tool fails at once with the reason).
    // (Long sleeps: the race is the server's request against them, and nothing waits for them to
    // end, so a slow machine must not decide it.)
    let mut older = start("sleep", json!({"ms": 15000}), alice);
    let mut asking = start("ask_aside", json!({"question": "when?"}), alice);
    loop {
        match older.step().expect("the older call takes the request") {
            Inbound::ChildRequest { method, .. } => {
                break assert_eq!(method, "sampling/createMessage")
            }
            Inbound::Response(_) => panic!("the sleep ended first"),
            _ => {}
        }
    }
    drop(older);
    let orphaned = loop {
        match asking.step().expect("the asking call ends with an answer") {
            Inbound::Response(answer) => break answer,
            Inbound::ChildRequest { method, .. } => panic!("{method} came twice"),
            _ => {}
        }
    };
    let error = orphaned.expect_err("its sampling was refused");
    assert!(
        error.get().contains("ended before its client answered"),
        "{}",
        error.get()
    );
    drop(asking);

    // Two clients with calls in flight: nobody can tell whose it is; the server is told why.
    let _alices = start("sleep", json!({"ms": 15000}), alice);
    let mut bobs = start("ask_aside", json!({"question": "who?"}), bob);
    let refused = loop {
        match bobs.step().expect("bob's call ends with an answer") {
            Inbound::Response(answer) => break answer,
            Inbound::ChildRequest { method, .. } => panic!("{method} was guessed to be bob's"),
            _ => {}
        }
    };
    let error = refused.expect_err("the tool fails: its sampling was refused");
    assert!(
        error.get().contains("cannot tell which of the 2 clients"),
        "{}",
        error.get()
    );
}

#[test]
fn a_panic_on_a_handles_stream_thread_kills_the_handle_instead_of_the_thread_alone() {
    use mcp_gateway::config::{RemoteServer, RemoteTransport};
    use mcp_gateway::downstream::child_io::ChildEvent;
    use mcp_gateway::downstream::handshake::handshake;
    use mcp_gateway::downstream::remote::link::{Events, RemoteLink, Target};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    let py = PyServer::start("streamable", 0, None);
    let config = RemoteServer {
        url: py.url("http", "/mcp"),
        transport: RemoteTransport::Streamable,
        headers: Vec::new(),
        ca_file: None,
        auth: None,
    };
    let target = Arc::new(Target::new(&config, 1 << 20).unwrap());
    let closed = Arc::new(AtomicUsize::new(0));
    // What the stream thread hands on for a list_changed panics (standing in for any bug there).
    let events: Events = {
        let closed = closed.clone();
        Arc::new(move |event| match event {
            ChildEvent::ListChanged { .. } => panic!("a bug while handling list_changed"),
            ChildEvent::Closed { .. } => {
                closed.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        })
    };
    let link = RemoteLink::new(0, "py".into(), 1, target, events);
    handshake(&*link, Instant::now() + Duration::from_secs(20)).expect("handshake");
    // Until the GET stream is open the SDK drops what it would send there: call until it is.
    wait_for(Duration::from_secs(20), "the handle to die", || {
        let params = json!({"name": "changed", "arguments": {}})
            .as_object()
            .cloned()
            .map(mcp_gateway::rpc::Params::from_map);
        let deadline = Instant::now() + Duration::from_secs(5);
        if let Ok(mut call) = link.begin("tools/call", params, false, deadline, None) {
            let _ = call.answer();
        }
        std::thread::sleep(Duration::from_millis(100));
        (!link.is_alive()).then_some(())
    });
    assert_eq!(closed.load(Ordering::SeqCst), 1, "the pool is told, once");
    assert!(
        link.death_note().contains("panicked"),
        "{}",
        link.death_note()
    );
}

#[test]
fn a_get_stream_the_server_closes_is_resumed_with_last_event_id() {
    use mcp_gateway::config::{RemoteServer, RemoteTransport};
    use mcp_gateway::downstream::child_io::ChildEvent;
    use mcp_gateway::downstream::handshake::handshake;
    use mcp_gateway::downstream::remote::link::{Events, RemoteLink, Target};
    use std::time::Instant;

    let py = PyServer::start_with("streamable", 0, None, &["--resumable"]);
    let config = RemoteServer {
        url: py.url("http", "/mcp"),
        transport: RemoteTransport::Streamable,
        headers: Vec::new(),
        ca_file: None,
        auth: None,
    };
    let target = Arc::new(Target::new(&config, 1 << 20).unwrap());
    let changed = Arc::new(Mutex::new(Vec::<String>::new()));
    let events: Events = {
        let changed = changed.clone();
        Arc::new(move |event| {
            if let ChildEvent::ListChanged { kind, .. } = event {
                changed.lock().unwrap().push(kind);
            }
        })
    };
    let link = RemoteLink::new(0, "py".into(), 1, target, events);
    handshake(&*link, Instant::now() + Duration::from_secs(20)).expect("handshake");
    // Until the GET stream is open the SDK drops what it would send there: call until the first
    // notification arrives.
    wait_for(
        Duration::from_secs(20),
        "tools list_changed on the GET stream",
        || {
            let params = json!({"name": "cut_get", "arguments": {}})
                .as_object()
                .cloned()
                .map(mcp_gateway::rpc::Params::from_map);
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut call = link
                .begin("tools/call", params, false, deadline, None)
                .unwrap();
            let _ = call.answer();
            std::thread::sleep(Duration::from_millis(300));
            changed
                .lock()
                .unwrap()
                .contains(&"tools".to_string())
                .then_some(())
        },
    );
    // Sent while no GET stream was open: only a resumption replays it.
    wait_for(
        Duration::from_secs(10),
        "resources list_changed replayed",
        || {
            changed
                .lock()
                .unwrap()
                .contains(&"resources".to_string())
                .then_some(())
        },
    );
    assert!(
        py.stderr().contains("RESUMED _GET_stream"),
        "{}",
        py.stderr()
    );
    assert!(link.is_alive());
}

#[test]
fn tool_arguments_reach_a_remote_server_as_the_client_wrote_them() {
    // 10^30 + 1 is only right if 10^30 arrived as the integer it was written as (as a float it
    // would be 1000000000000000019884624838656).
    let py = PyServer::start("streamable", 0, None);
    let gw = Gateway::start(json!({"servers": [remote("py", &py.url("http", "/mcp"))]}));
    wait_up(&gw, "py");
    let body = br#"{"name": "add", "arguments": {"a": 1000000000000000000000000000000, "b": 1}}"#;
    let response = gw.request(
        "POST",
        "/tools/call",
        &[("Content-Type", "application/json")],
        body,
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        text_of(&response.json()["result"]),
        "1000000000000000000000000000001"
    );
}
