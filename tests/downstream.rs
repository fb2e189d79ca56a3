//! Servers that misbehave, end to end: one that stops reading its stdin, one that floods its
//! stdout and stderr, each beside a healthy server that must keep answering; and arguments that
//! must reach a server exactly as the client wrote them. The misbehaving server is
//! `tests/interop/misbehaving_server.py` (raw stdio JSON-RPC); the healthy one is the demo server.

mod util;

use serde_json::{json, Value};
use std::time::Duration;
use util::{demo, interop_script, python, wait_for, Gateway, HttpResponse};

fn misbehaving(name: &str, mode: &str, settings: Value) -> Value {
    let mut entry = json!({
        "name": name,
        "command": [python(), interop_script("misbehaving_server.py"), mode],
    });
    for (k, v) in settings.as_object().unwrap() {
        entry[k] = v.clone();
    }
    entry
}

fn text_of(response: &HttpResponse) -> String {
    let body = response.json();
    body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {body}"))
        .to_string()
}

fn wait_server_up(gw: &Gateway, name: &str) {
    wait_for(Duration::from_secs(30), &format!("{name} up"), || {
        (gw.server_health(name)["status"] == "up").then_some(())
    });
}

#[test]
fn a_server_that_stops_reading_its_stdin_fails_only_its_own_calls() {
    let gw = Gateway::start(json!({
        "servers": [
            misbehaving("stuck", "stall", json!({"callTimeout": 1500, "poolSize": 1})),
            demo("demo", &[]),
        ],
        "mapping": {"stuck": {"prefix": "stuck_"}},
    }));
    wait_server_up(&gw, "stuck");
    wait_server_up(&gw, "demo");
    // The first call makes it stop reading; the second (1 MB) cannot fit in the pipe; more wait
    // behind it in the gateway's queue for that server.
    let big = "x".repeat(1024 * 1024);
    let results: Vec<(String, HttpResponse)> = std::thread::scope(|scope| {
        let mut calls =
            vec![scope.spawn(|| ("first".to_string(), gw.call("stuck_raw", json!({}))))];
        std::thread::sleep(Duration::from_millis(200));
        calls.push({
            let (gw, big) = (&gw, &big);
            scope.spawn(move || {
                (
                    "big".to_string(),
                    gw.call("stuck_raw", json!({"text": big})),
                )
            })
        });
        std::thread::sleep(Duration::from_millis(200));
        for n in 0..3 {
            let gw = &gw;
            calls.push(
                scope.spawn(move || (format!("queued {n}"), gw.call("stuck_raw", json!({"n": n})))),
            );
        }
        // Meanwhile the healthy server answers, call after call.
        for n in 0..20 {
            let echo = gw.call("echo", json!({"text": format!("still here {n}")}));
            assert_eq!(text_of(&echo), format!("still here {n}"));
        }
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert_eq!(results.len(), 5);
    for (what, response) in &results {
        assert_eq!(response.status, 504, "{what}: {}", response.text());
        let message = response.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains("server stuck"), "{what}: {message}");
        if what.starts_with("queued") {
            assert!(
                message.contains("did not read its input"),
                "{what}: a call that never left the queue says why: {message}"
            );
        }
    }
    assert_eq!(text_of(&gw.call("echo", json!({"text": "after"}))), "after");
}

#[test]
fn a_server_flooding_its_output_starves_nobody_and_its_log_is_bounded() {
    let gw = Gateway::start(json!({
        "servers": [misbehaving("noisy", "flood", json!({})), demo("demo", &[])],
        "mapping": {"noisy": {"prefix": "noisy_"}},
    }));
    wait_server_up(&gw, "noisy");
    wait_server_up(&gw, "demo");
    // Let the flood run for a while, calling the healthy server meanwhile.
    for n in 0..15 {
        let echo = gw.call("echo", json!({"text": format!("call {n}")}));
        assert_eq!(echo.status, 200);
        assert_eq!(text_of(&echo), format!("call {n}"));
        std::thread::sleep(Duration::from_millis(100));
    }
    // The flooding server itself still answers between its junk.
    assert_eq!(text_of(&gw.call("noisy_raw", json!({}))), "ok");
    let logs = gw.logs();
    let noisy_lines = logs.lines().filter(|l| l.contains("noisy#")).count();
    assert!(
        noisy_lines <= 2 * 200 + 20,
        "{noisy_lines} log lines from the flooding server in ~2 s"
    );
    assert!(
        logs.contains("further lines are counted, not logged"),
        "the log says it suppresses"
    );
    assert!(
        !logs.contains('\u{1b}'),
        "a raw ESC byte of the server reached the log"
    );
    assert!(logs.contains("\\x1b[31mjunk"), "escaped, not dropped");
}

#[test]
fn tool_arguments_reach_the_server_byte_for_byte() {
    let gw = Gateway::start(json!({"servers": [misbehaving("exact", "echo", json!({}))]}));
    wait_server_up(&gw, "exact");
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"raw","arguments":{"big":1000000000000000000000000000000,"f":1.10,"u":"\u00e9","k":[1,  2]}}}"#;
    let reply = gw.mcp().post_bytes(body);
    let reply = reply.response();
    let text = reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{reply}"))
        .to_string();
    let sent = r#"{"big":1000000000000000000000000000000,"f":1.10,"u":"\u00e9","k":[1,  2]}"#;
    assert_eq!(
        text, sent,
        "the server saw other bytes than the client sent"
    );
    // REST too.
    let body = format!(r#"{{"name": "raw", "arguments": {sent}}}"#);
    let rest = gw.request(
        "POST",
        "/tools/call",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(rest.json()["result"]["content"][0]["text"], sent);
}
