//! Restart-proof sessions (`upstream::signed`): an official Python SDK session keeps working across
//! a gateway restart on the same port and state dir with zero errors; a forged, tampered or
//! deleted id is still 404; a gateway with another key does not know the session.

mod util;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use util::{demo, interop_script, python, temp_dir, Gateway, McpSession};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config() -> Value {
    json!({"servers": [demo("demo", &[])]})
}

fn start(state: &std::path::Path, port: u16) -> Gateway {
    let port = port.to_string();
    let gw = Gateway::start_with(
        config(),
        &[("XDG_STATE_HOME", state.to_str().unwrap())],
        &["--port", &port],
    );
    gw.wait_up();
    gw
}

#[test]
fn a_python_sdk_session_outlives_a_gateway_restart() {
    let state = temp_dir("restart-state");
    let port = free_port();
    let mut first = start(&state, port);
    let mut client = Command::new(python())
        .arg(interop_script("restart_client.py"))
        .arg(format!("http://127.0.0.1:{port}/mcp"))
        .env("PYTHONWARNINGS", "ignore")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let before: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(before["echo"], "before", "{before}");

    assert!(first.stop().success());
    let second = start(&state, port);
    writeln!(client.stdin.as_mut().unwrap(), "go").unwrap();
    let after = lines.next().map(|l| l.unwrap()).unwrap_or_default();
    let status = client.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut client.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        status.success(),
        "the client failed after the restart:\n{after}\n{stderr}\ngateway log:\n{}",
        second.logs()
    );
    let after: Value = serde_json::from_str(&after).unwrap();
    assert_eq!(after["echo"], "after");
    assert_eq!(after["sum"], 42);
    assert!(after["tools"].as_u64().unwrap() > 0);
    assert!(
        second.logs().contains("restored from its signed id"),
        "{}",
        second.logs()
    );
    assert!(
        !second.logs().contains("opened (Streamable HTTP)"),
        "the client had to initialize again:\n{}",
        second.logs()
    );
}

#[test]
fn only_a_valid_id_of_a_live_session_is_restored() {
    let state = temp_dir("restart-ids");
    let port = free_port();
    let mut first = start(&state, port);
    let mut kept = McpSession::open(&first);
    let deleted = McpSession::open(&first);
    assert!(kept.session_id.starts_with("g1."), "{}", kept.session_id);
    assert_eq!(deleted.delete().status, 200);
    // Within this process: a deleted session's id is not brought back.
    let again = deleted.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
    assert_eq!(again.http.status, 404);

    assert!(first.stop().success());
    let second = start(&state, port);
    let pong = kept.request("ping", json!({}));
    assert_eq!(pong.http.status, 200, "{}", pong.http.text());
    assert!(pong.response()["result"].is_object());

    let mut tampered = kept.session_id.clone().into_bytes();
    let at = tampered.len() - 3;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let forged = util::http_request(
        &second.addr(),
        "POST",
        "/mcp",
        &[
            ("Mcp-Session-Id", std::str::from_utf8(&tampered).unwrap()),
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    );
    assert_eq!(forged.status, 404, "{}", forged.text());
    drop(second);

    // Another state dir, another key: the id means nothing there.
    let other = start(&temp_dir("restart-other"), port);
    let stranger = kept.request("ping", json!({}));
    assert_eq!(stranger.http.status, 404);
    drop(other);
}
