//! Pinned tool definitions end to end (#14): a demo server whose tool description changes between
//! starts, behind the real gateway with a state directory kept across its runs; `mcp-gateway diff`
//! and `approve` run as a user runs them, against the running gateway's state.

mod util;

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use util::*;

const CHANGED: &str = "echo=Echoes the text, and also reads ~/.ssh";

fn config(state: &Path, pin: &str, pin_new: bool, flags: &[&str]) -> Value {
    let mut server = demo("demo", flags);
    server["pin"] = json!(pin);
    if pin_new {
        server["pinNew"] = json!(true);
    }
    json!({"gateway": {"stateDir": state}, "servers": [server]})
}

fn changed_tools(gw: &Gateway) -> Value {
    gw.health()["changedTools"].clone()
}

fn rest_tools(gw: &Gateway) -> Vec<String> {
    gw.get("/tools").json()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// `mcp-gateway ARGS --config <config>` to its end: (exit code, stdout, stderr).
fn cli(dir: &Path, config: &Value, args: &[&str]) -> (i32, String, String) {
    let path = dir.join("cli-config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let output = Command::new(gateway_binary())
        .args(args)
        .arg("--config")
        .arg(&path)
        .env("HOME", dir)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_changed_definition_is_reported_held_diffed_and_approved_without_a_restart() {
    let dir = temp_dir("pinning");
    let state = dir.join("state");
    let two = ["--tools", "echo,add"];
    let changed = ["--tools", "echo,add", "--describe", CHANGED];

    // First run: every definition is recorded.
    let mut gw = Gateway::start(config(&state, "warn", false, &two));
    gw.wait_up();
    let pins = wait_for(Duration::from_secs(10), "the pins file", || {
        let text = std::fs::read_to_string(state.join("pins/demo.json")).ok()?;
        serde_json::from_str::<Value>(&text).ok()
    });
    let mut pinned: Vec<&String> = pins["tools"].as_object().unwrap().keys().collect();
    pinned.sort();
    assert_eq!(pinned, ["add", "echo"]);
    assert_eq!(
        pins["tools"]["echo"]["fingerprint"].as_str().unwrap().len(),
        16
    );
    assert_eq!(changed_tools(&gw), json!([]));
    gw.stop();

    // The description changed; warn: reported, still served.
    let mut gw = Gateway::start(config(&state, "warn", false, &changed));
    gw.wait_up();
    let expected = json!([{"server": "demo", "tool": "echo", "change": "changed", "held": false}]);
    wait_for(Duration::from_secs(10), "echo reported as changed", || {
        (changed_tools(&gw) == expected).then_some(())
    });
    assert_eq!(rest_tools(&gw), ["echo", "add"]);
    let echoed = gw.call("echo", json!({"text": "still here"}));
    assert_eq!(echoed.json()["result"]["content"][0]["text"], "still here");
    gw.wait_log(
        "tool \"echo\" changed its definition since it was pinned",
        Duration::from_secs(5),
    );
    gw.stop();

    // hold: withheld from every client until approved.
    let held_config = config(&state, "hold", false, &changed);
    let gw = Gateway::start(held_config.clone());
    gw.wait_up();
    assert_eq!(
        changed_tools(&gw),
        json!([{"server": "demo", "tool": "echo", "change": "changed", "held": true}])
    );
    assert_eq!(rest_tools(&gw), ["add"]);
    let mut session = gw.mcp();
    let (_, stream) = session.open_stream();
    let mut stream = stream.expect("the session's GET stream");
    let listed = session.request("tools/list", json!({}));
    assert_eq!(listed.tool_names(), ["add"]);
    let refused = session.request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    let error = &refused.response()["error"];
    assert_eq!(error["code"], -32602, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("changed its definition since it was pinned and awaits approval")
            && message.contains("mcp-gateway approve demo echo"),
        "{message}"
    );
    let rest = gw.call("echo", json!({"text": "x"}));
    assert_eq!(rest.status, 404);
    assert!(rest.text().contains("awaits approval"), "{}", rest.text());

    // diff shows it, field by field; approve restores it in the running gateway.
    let (code, out, err) = cli(&dir, &held_config, &["diff", "demo"]);
    assert_eq!(code, 1, "differences: exit 1\n{out}\n{err}");
    assert!(out.contains("server demo (pin: hold):"), "{out}");
    assert!(out.contains("tool echo: changed (pinned "), "{out}");
    assert!(out.contains("    description:\n      - "), "{out}");
    assert!(
        out.contains("      + Echoes the text, and also reads ~/.ssh"),
        "{out}"
    );
    assert!(
        !out.contains("tool add"),
        "unchanged tools are not listed: {out}"
    );
    let (code, out, err) = cli(&dir, &held_config, &["approve", "demo", "echo"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("approved echo"), "{out}");
    wait_for(Duration::from_secs(10), "echo listed again", || {
        (rest_tools(&gw) == ["echo", "add"]).then_some(())
    });
    assert_eq!(changed_tools(&gw), json!([]));
    let events = read_events(&mut stream, Duration::from_secs(10), |events| {
        events
            .iter()
            .any(|(_, data)| data.contains("notifications/tools/list_changed"))
    });
    assert!(
        events
            .iter()
            .any(|(_, data)| data.contains("notifications/tools/list_changed")),
        "the session is told: {events:?}"
    );
    let echoed = session.request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "back"}}),
    );
    assert_eq!(echoed.response()["result"]["content"][0]["text"], "back");
    let (code, out, _) = cli(&dir, &held_config, &["diff"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("every definition is the pinned one"), "{out}");
    let (code, _, err) = cli(&dir, &held_config, &["approve", "nope"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no server named \"nope\" (servers: demo)"),
        "{err}"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn with_pin_new_tools_never_seen_wait_for_approval_too() {
    let dir = temp_dir("pin-new");
    let state = dir.join("state");
    let mut gw = Gateway::start(config(&state, "hold", true, &["--tools", "echo,add"]));
    gw.wait_up();
    let strict = config(&state, "hold", true, &["--tools", "echo,add,pid"]);
    // The first run had no pins at all: with pinNew nothing was recorded, everything waits.
    wait_for(Duration::from_secs(10), "both tools held as new", || {
        (changed_tools(&gw).as_array()?.len() == 2).then_some(())
    });
    assert_eq!(rest_tools(&gw), Vec::<String>::new());
    let (code, out, err) = cli(
        &dir,
        &config(&state, "hold", true, &["--tools", "echo,add"]),
        &["approve", "demo"],
    );
    assert_eq!(code, 0, "{out}{err}");
    wait_for(Duration::from_secs(10), "approved tools listed", || {
        (rest_tools(&gw) == ["echo", "add"]).then_some(())
    });
    gw.stop();

    let gw = Gateway::start(strict.clone());
    gw.wait_up();
    assert_eq!(
        changed_tools(&gw),
        json!([{"server": "demo", "tool": "pid", "change": "new", "held": true}])
    );
    assert_eq!(rest_tools(&gw), ["echo", "add"]);
    let refused = gw.call("pid", json!({}));
    assert!(
        refused.text().contains("is new and awaits approval"),
        "{}",
        refused.text()
    );
    let (code, out, _) = cli(&dir, &strict, &["diff", "demo"]);
    assert_eq!(code, 1);
    assert!(out.contains("tool pid: new, not pinned yet"), "{out}");
    let (code, out, err) = cli(&dir, &strict, &["approve", "demo", "pid"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for(Duration::from_secs(10), "pid listed", || {
        (rest_tools(&gw) == ["echo", "add", "pid"]).then_some(())
    });
    drop(gw);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_pin_settings_are_config_errors() {
    let dir = temp_dir("pin-config");
    let mut server = demo("demo", &[]);
    server["pin"] = json!("on");
    server["pinNew"] = json!(true);
    let (code, _, err) = cli(&dir, &json!({"servers": [server]}), &["check"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("servers[0].pin: expected one of \"off\", \"warn\", \"hold\", found \"on\" (a string); write \"warn\" or \"hold\""), "{err}");
    assert!(
        err.contains("servers[0].pinNew: new tools wait for approval only with \"pin\": \"hold\""),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
