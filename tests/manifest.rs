//! Starting nothing until needed: a server's lists are kept in a manifest under `gateway.stateDir`,
//! so after a restart a `minConnections: 0` server is listed at once and started by its first call.

mod util;

use serde_json::json;
use std::time::Duration;
use util::{demo, temp_dir, Gateway};

fn config(flags: &[&str]) -> serde_json::Value {
    let mut server = demo("demo", flags);
    server["minConnections"] = json!(0);
    json!({"servers": [server]})
}

#[test]
fn after_a_restart_tools_are_listed_from_the_manifest_and_nothing_starts_until_a_call() {
    let state = temp_dir("state");
    let env = [("XDG_STATE_HOME", state.to_str().unwrap())];
    let mut first = Gateway::start_with(config(&[]), &env, &[]);
    first.wait_up();
    let live = first.tool_names();
    assert!(live.contains(&"echo".to_string()), "{live:?}");
    first.stop();
    let manifests = state.join("mcp-gateway/manifests");
    assert_eq!(
        std::fs::read_dir(&manifests).unwrap().count(),
        1,
        "one manifest written"
    );

    let second = Gateway::start_with(config(&[]), &env, &[]);
    // Listed without a process: the same tools, and no child at all.
    assert_eq!(second.tool_names(), live);
    let health = second.server_health("demo");
    assert_eq!(health["status"], "up", "{health}");
    assert_eq!(health["spawns"], 0, "{health}");
    assert!(second.children().is_empty());
    let mut session = second.mcp();
    let listed = session.request("tools/list", json!({}));
    assert!(listed.tool_names().contains(&"echo"));
    assert!(second.children().is_empty(), "listing started nothing");
    // The first call starts it.
    let echo = second.call("echo", json!({"text": "woke up"}));
    assert_eq!(echo.json()["result"]["content"][0]["text"], "woke up");
    assert_eq!(second.children().len(), 1);
    assert_eq!(second.server_health("demo")["spawns"], 1);
}

#[test]
fn a_changed_definition_is_not_listed_from_the_old_manifest() {
    let state = temp_dir("state");
    let env = [("XDG_STATE_HOME", state.to_str().unwrap())];
    let mut first = Gateway::start_with(config(&["--tools", "echo,add"]), &env, &[]);
    first.wait_up();
    first.stop();
    // Another definition (other arguments): its manifest does not apply, it is started to list.
    let changed = Gateway::start_with(config(&["--tools", "echo"]), &env, &[]);
    changed.wait_up();
    assert_eq!(changed.tool_names(), ["echo"]);
    assert_eq!(changed.server_health("demo")["spawns"], 1);
    drop(changed);
}

#[test]
fn when_the_live_list_differs_the_manifest_is_updated_and_sessions_are_told() {
    // The same definition (command) lists what a file says: the first run sees "echo", the second
    // starts from that manifest while the server would now list "echo,add".
    let state = temp_dir("state");
    let env = [("XDG_STATE_HOME", state.to_str().unwrap())];
    let tools_file = state.join("tools");
    std::fs::write(&tools_file, "echo").unwrap();
    let script = format!(r#"exec "$0" --tools "$(cat {})""#, tools_file.display());
    let server = json!({"name": "demo", "command": ["/bin/sh", "-c", script, util::demo_server()],
                        "minConnections": 0});
    let mut first = Gateway::start_with(json!({"servers": [server.clone()]}), &env, &[]);
    first.wait_up();
    assert_eq!(first.tool_names(), ["echo"]);
    first.stop();

    std::fs::write(&tools_file, "echo,add").unwrap();
    let gw = Gateway::start_with(json!({"servers": [server]}), &env, &[]);
    assert_eq!(gw.tool_names(), ["echo"], "from the manifest");
    let mut session = gw.sse();
    session.initialize();
    let echo = gw.call("echo", json!({"text": "x"}));
    assert_eq!(echo.status, 200);
    let note = session
        .next_message(Duration::from_secs(10))
        .expect("a notification once the live list is in");
    assert_eq!(note["method"], "notifications/tools/list_changed", "{note}");
    let mut names = gw.tool_names();
    names.sort();
    assert_eq!(names, ["add", "echo"]);
    let manifest_dir = state.join("mcp-gateway/manifests");
    let manifest = std::fs::read_dir(&manifest_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let text = std::fs::read_to_string(manifest.path()).unwrap();
    assert!(text.contains("\"add\""), "the manifest was updated: {text}");
}

#[test]
fn a_server_that_is_down_keeps_its_tools_listed_and_a_call_says_why() {
    // The same command both runs; the second time the program it runs fails (as when `uvx` is gone).
    let state = temp_dir("state");
    let env = [("XDG_STATE_HOME", state.to_str().unwrap())];
    let script = state.join("server.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec {} \"$@\"\n", util::demo_server()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let server = json!({"name": "fetch", "command": [script], "minConnections": 0,
                        "acquireTimeout": 2000});
    let mut first = Gateway::start_with(json!({"servers": [server.clone()]}), &env, &[]);
    first.wait_up();
    first.stop();
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'error: uvx: command not found' >&2\nexit 127\n",
    )
    .unwrap();

    let gw = Gateway::start_with(json!({"servers": [server]}), &env, &[]);
    assert!(
        gw.tool_names().contains(&"echo".to_string()),
        "still listed"
    );
    let response = gw.call("echo", json!({"text": "anyone?"}));
    assert_eq!(response.status, 503, "{}", response.text());
    let message = response.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("server \"fetch\" is down"), "{message}");
    assert!(message.contains("uvx: command not found"), "{message}");
    assert!(message.contains("next start attempt"), "{message}");
    // Not "unknown tool": over MCP too.
    let mut session = gw.mcp();
    let reply = session.request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    let error = &reply.response()["error"];
    assert_eq!(error["code"], -32000, "{error}");
}
