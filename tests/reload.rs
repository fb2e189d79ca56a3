//! Reloading the config without a restart (`reload`, the supervisor's diff): end to end with the
//! real binary, the official `server-memory` (npm) as a server that must keep its process and its
//! data through every reload, demo servers to add, change and remove, and one open Streamable HTTP
//! session and one open legacy SSE session that must keep working and be told `list_changed`.

mod util;

use mcp_gateway::http::SseParser;
use serde_json::{json, Value};
use std::io::Read;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};
use util::{demo, installed, wait_for, Gateway, McpSession, SseSession};

const WAIT: Duration = Duration::from_secs(30);

fn memory_server(dir: &std::path::Path) -> Value {
    let server = installed("node_modules/@modelcontextprotocol/server-memory/dist/index.js");
    json!({
        "name": "memory",
        "command": ["node", server],
        "env": {"MEMORY_FILE_PATH": dir.join("memory.jsonl")},
    })
}

/// Writes a new config over the gateway's file (port 0 as the harness runs it).
fn write_config(gw: &Gateway, config: &Value) {
    let mut config = config.clone();
    config["gateway"]["port"] = json!(0);
    let text = serde_json::to_vec_pretty(&config).unwrap();
    // Written whole, then renamed over the old file: what editors do; the watcher sees one change.
    let tmp = gw.config_path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &gw.config_path).unwrap();
}

fn reloads(gw: &Gateway) -> (u64, u64) {
    let health = gw.health();
    (
        health["reloads"]["applied"].as_u64().unwrap(),
        health["reloads"]["refused"].as_u64().unwrap(),
    )
}

/// Waits until the gateway has applied (or refused) one more reload than `before`.
fn wait_reload(gw: &Gateway, before: (u64, u64)) -> Value {
    wait_for(WAIT, "the reload to be reported in /health", || {
        let health = gw.health();
        let now = (
            health["reloads"]["applied"].as_u64().unwrap(),
            health["reloads"]["refused"].as_u64().unwrap(),
        );
        (now.0 + now.1 > before.0 + before.1).then_some(health)
    })
}

/// The GET stream of a Streamable HTTP session, read as SSE messages.
struct Listener {
    stream: TcpStream,
    parser: SseParser,
    seen: Vec<Value>,
}

impl Listener {
    fn open(session: &McpSession) -> Listener {
        let (head, stream) = session.open_stream();
        assert_eq!(head.status, 200, "{}", head.text());
        Listener {
            stream: stream.unwrap(),
            parser: SseParser::new(),
            seen: Vec::new(),
        }
    }

    /// Waits for a notification with this method (ones seen before count once).
    fn wait_for(&mut self, method: &str) {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 8192];
        loop {
            if let Some(at) = self.seen.iter().position(|m| m["method"] == method) {
                self.seen.remove(at);
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {method} on the GET stream");
            self.stream.set_read_timeout(Some(left)).unwrap();
            let n = self.stream.read(&mut buf).unwrap_or(0);
            assert!(n > 0, "the GET stream ended while waiting for {method}");
            for event in self.parser.feed(&buf[..n]) {
                if let Ok(message) = serde_json::from_str::<Value>(&event.data) {
                    self.seen.push(message);
                }
            }
        }
    }
}

fn sse_wait_for(sse: &mut SseSession, method: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = sse
            .next_message(left)
            .unwrap_or_else(|| panic!("no {method} on the SSE session"));
        if message["method"] == method {
            return;
        }
    }
}

/// The pid of the process behind `server`'s `pid` tool, through a session.
fn pid_via(session: &mut McpSession, tool: &str) -> u64 {
    let reply = session.request("tools/call", json!({"name": tool, "arguments": {}}));
    let text = reply.response()["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{tool}: {}", reply.response()))
        .to_string();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{tool} said {text}"))
}

fn echo_via_sse(sse: &mut SseSession, tool: &str) -> Value {
    sse.request(
        "tools/call",
        json!({"name": tool, "arguments": {"text": "still here"}}),
    )
}

fn memory_pids(gw: &Gateway) -> Vec<u64> {
    gw.server_health("memory")["pool"]["handles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["pid"].as_u64().unwrap())
        .collect()
}

fn read_graph(session: &mut McpSession) -> String {
    let reply = session.request("tools/call", json!({"name": "read_graph", "arguments": {}}));
    reply.response()["result"].to_string()
}

#[test]
fn add_change_remove_and_a_broken_file_leave_sessions_connected_and_unchanged_servers_alone() {
    let dir = util::temp_dir("reload-memory");
    let prefix = |p: &str| json!({ "prefix": p });
    let mut config = json!({
        "servers": [memory_server(&dir), demo("a", &[]), demo("b", &[]), demo("c", &[])],
        "mapping": {"a": prefix("a_"), "b": prefix("b_"), "c": prefix("c_")},
    });
    let gw = Gateway::start(config.clone());
    gw.wait_up();

    let mut session = McpSession::open(&gw);
    let mut listener = Listener::open(&session);
    let mut sse = SseSession::open(&gw);
    sse.initialize();
    let created = session.request(
        "tools/call",
        json!({"name": "create_entities", "arguments": {"entities": [
            {"name": "reload_survivor", "entityType": "test", "observations": ["kept"]}
        ]}}),
    );
    assert!(
        created.response()["result"].is_object(),
        "{}",
        created.response()
    );
    let memory_before = memory_pids(&gw);
    assert_eq!(memory_before.len(), 1);
    let a_pid = pid_via(&mut session, "a_pid");
    let b_pid = pid_via(&mut session, "b_pid");

    // 1. Add a server: a file change, seen by the watcher.
    let before = reloads(&gw);
    config["servers"]
        .as_array_mut()
        .unwrap()
        .push(demo("d", &[]));
    config["mapping"]["d"] = prefix("d_");
    write_config(&gw, &config);
    let health = wait_reload(&gw, before);
    assert_eq!(health["reloads"]["lastApplied"], true);
    let summary = health["reloads"]["last"].as_str().unwrap();
    assert!(
        summary.contains("added d") && summary.contains("4 unchanged"),
        "{summary}"
    );
    listener.wait_for("notifications/tools/list_changed");
    sse_wait_for(&mut sse, "notifications/tools/list_changed");
    wait_for(WAIT, "d to be up", || {
        (gw.server_health("d")["status"] == "up").then_some(())
    });
    let echoed = echo_via_sse(&mut sse, "d_echo");
    assert_eq!(
        echoed["result"]["content"][0]["text"], "still here",
        "{echoed}"
    );
    assert_eq!(pid_via(&mut session, "a_pid"), a_pid);

    // 2. Change b (a new tool): SIGHUP. A call in flight on the old b finishes there.
    let slow = {
        let addr = gw.addr();
        let id = session.session_id.clone();
        std::thread::spawn(move || {
            let body = json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call",
                "params": {"name": "b_sleep", "arguments": {"ms": 1500}}});
            util::http_request(
                &addr,
                "POST",
                "/mcp",
                &[
                    ("Mcp-Session-Id", id.as_str()),
                    ("Content-Type", "application/json"),
                    ("Accept", "application/json, text/event-stream"),
                ],
                body.to_string().as_bytes(),
            )
        })
    };
    wait_for(WAIT, "the slow call to be in flight on b", || {
        (gw.server_health("b")["pool"]["inFlight"] == 1).then_some(())
    });
    let before = reloads(&gw);
    config["servers"][2] = demo("b", &["--extra-tool", "shiny"]);
    write_config(&gw, &config);
    gw.signal(libc::SIGHUP);
    let health = wait_reload(&gw, before);
    let summary = health["reloads"]["last"].as_str().unwrap().to_string();
    assert!(summary.contains("restarted (changed) b"), "{summary}");
    let slow = slow.join().unwrap();
    let answer = util::mcp_messages(&slow);
    let last = answer.last().expect("an answer to the slow call");
    assert!(
        last["result"].is_object() && last["result"]["isError"] != true,
        "the call in flight on the old b was lost: {last}"
    );
    listener.wait_for("notifications/tools/list_changed");
    sse_wait_for(&mut sse, "notifications/tools/list_changed");
    let shiny = echo_via_sse(&mut sse, "b_shiny");
    assert!(shiny["result"].is_object(), "{shiny}");
    let new_b = pid_via(&mut session, "b_pid");
    assert_ne!(new_b, b_pid, "b runs its new definition");
    wait_for(WAIT, "the old b process to be stopped", || {
        (!gw.children().contains(&(b_pid as u32))).then_some(())
    });
    assert_eq!(pid_via(&mut session, "a_pid"), a_pid, "a was not touched");

    // 3. Remove c: `mcp-gateway reload`, which finds the gateway by its pid file.
    let c_pid = pid_via(&mut session, "c_pid");
    config["servers"].as_array_mut().unwrap().remove(3);
    config["mapping"].as_object_mut().unwrap().remove("c");
    write_config(&gw, &config);
    let out = Command::new(util::gateway_binary())
        .args(["reload", "--config"])
        .arg(&gw.config_path)
        .env("XDG_STATE_HOME", gw.dir.join("state"))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("removed c"), "{printed}");
    listener.wait_for("notifications/tools/list_changed");
    sse_wait_for(&mut sse, "notifications/tools/list_changed");
    let gone = session.request(
        "tools/call",
        json!({"name": "c_echo", "arguments": {"text": "x"}}),
    );
    assert_eq!(
        gone.response()["error"]["code"],
        -32602,
        "{}",
        gone.response()
    );
    wait_for(WAIT, "c's process to be stopped", || {
        (!gw.children().contains(&(c_pid as u32))).then_some(())
    });
    assert!(gw.health()["servers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["name"] != "c"));

    // 4. Break the file: refused, everything as it was.
    let before = reloads(&gw);
    std::fs::write(&gw.config_path, "{\"servers\": [ this is not json").unwrap();
    let health = wait_reload(&gw, before);
    assert_eq!(health["reloads"]["lastApplied"], false);
    assert!(
        health["reloads"]["last"]
            .as_str()
            .unwrap()
            .contains("the config in force stays"),
        "{health}"
    );
    gw.wait_log("config reload refused", WAIT);
    let echoed = echo_via_sse(&mut sse, "a_echo");
    assert_eq!(echoed["result"]["content"][0]["text"], "still here");

    // Through all four: the same memory process, with its data.
    assert_eq!(
        memory_pids(&gw),
        memory_before,
        "server-memory was restarted"
    );
    assert!(read_graph(&mut session).contains("reload_survivor"));
    assert_eq!(pid_via(&mut session, "a_pid"), a_pid);
    assert_eq!(reloads(&gw), (3, 1));
}

#[test]
fn gateway_settings_apply_live_and_socket_settings_say_they_need_a_restart() {
    let mut config = json!({
        "gateway": {"watchConfig": false},
        "servers": [demo("demo", &[])],
    });
    let gw = Gateway::start(config.clone());
    gw.wait_up();
    assert_eq!(gw.get("/tools").status, 200);

    let before = reloads(&gw);
    config["gateway"]["authToken"] = json!("t0ken");
    config["gateway"]["maxSessions"] = json!(7);
    write_config(&gw, &config);
    // The file is not watched: nothing happens until asked.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(reloads(&gw), before);
    gw.signal(libc::SIGHUP);
    wait_for(WAIT, "the token to be required", || {
        (gw.get("/tools").status == 401).then_some(())
    });
    gw.wait_log("gateway.authToken changed", WAIT);
    assert!(
        !gw.logs().contains("t0ken"),
        "the token itself is never logged"
    );

    // A port change cannot be applied to the open socket: reported, and the port stays.
    let mut text: Value = serde_json::from_slice(&std::fs::read(&gw.config_path).unwrap()).unwrap();
    text["gateway"]["port"] = json!(1);
    std::fs::write(&gw.config_path, serde_json::to_vec(&text).unwrap()).unwrap();
    gw.signal(libc::SIGHUP);
    gw.wait_log("gateway.port changed to 1: needs a restart (still 0)", WAIT);
    let health = util::http_request(
        &gw.addr(),
        "GET",
        "/health",
        &[("Authorization", "Bearer t0ken")],
        b"",
    );
    assert_eq!(health.json()["status"], "ok");
}

#[test]
fn an_unsafe_new_config_is_refused_and_reload_says_so() {
    let mut config = json!({
        "gateway": {"watchConfig": false},
        "servers": [demo("demo", &[])],
    });
    let gw = Gateway::start(config.clone());
    gw.wait_up();
    // Unknown keys and a server without a command: every problem is told, nothing changes.
    config["servers"] = json!([{"name": "x", "comand": ["y"]}]);
    write_config(&gw, &config);
    let out = Command::new(util::gateway_binary())
        .args(["reload", "--pid", &gw.pid().to_string(), "--config"])
        .arg(&gw.config_path)
        .env("XDG_STATE_HOME", gw.dir.join("state"))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(printed.contains("config reload refused"), "{printed}");
    assert!(printed.contains("comand"), "names the problem: {printed}");
    assert_eq!(gw.call("echo", json!({"text": "hi"})).status, 200);

    // No gateway behind the state dir: nothing is signalled.
    config["servers"] = json!([demo("demo", &[])]);
    write_config(&gw, &config);
    let out = Command::new(util::gateway_binary())
        .args(["reload", "--config"])
        .arg(&gw.config_path)
        .env("XDG_STATE_HOME", gw.dir.join("elsewhere"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running gateway found"));
}
