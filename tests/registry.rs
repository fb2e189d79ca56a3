//! Naming and routing of tools through the real gateway: `mapping` (prefix, stripPrefix as a string
//! and as `true`, exact renames), `toolFilters` (globs on original names), collisions between servers
//! (first keeps the name, the other becomes `<server>_<name>`; reported in the log, `/health` and
//! `mcp-gateway check`), name sanitizing and shortening, schemas passed through untouched, disabled
//! and remote (unsupported) servers, `notifications/tools/list_changed` for a late server, and two
//! SSE sessions reusing the same request ids at the same time.
//!
//! Every routing check calls a tool through its exposed name and looks at what came back: `echo`
//! (and `--extra-tool` aliases) return their text, `add` a sum, `env` a per-server variable and `pid`
//! the process id, so a call that reached the wrong tool or the wrong server shows.

mod util;

use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use util::{
    demo, demo_server, gateway_binary, temp_dir, wait_for, Gateway, HttpResponse, DEMO_TOOLS,
};

/// A demo server entry with extra `env`.
fn demo_env(name: &str, flags: &[&str], env: Value) -> Value {
    let mut server = demo(name, flags);
    server["env"] = env;
    server
}

/// The `GET /tools` entries.
fn rest_tools(gw: &Gateway) -> Vec<Value> {
    let response = gw.get("/tools");
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["tools"].as_array().unwrap().clone()
}

/// Exposed names in listing order.
fn names(gw: &Gateway) -> Vec<String> {
    rest_tools(gw)
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn name_set(gw: &Gateway) -> BTreeSet<String> {
    names(gw).into_iter().collect()
}

/// The `GET /tools` entry of one exposed name.
fn entry(gw: &Gateway, name: &str) -> Value {
    rest_tools(gw)
        .into_iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tool {name} in GET /tools: {:?}", names(gw)))
}

/// `POST /tools/call`, asserting 200 and no isError; returns the CallToolResult.
fn call_ok(gw: &Gateway, name: &str, arguments: Value) -> Value {
    let response = gw.call(name, arguments.clone());
    assert_eq!(
        response.status,
        200,
        "call {name} {arguments}: {}",
        response.text()
    );
    let result = response.json()["result"].clone();
    assert_ne!(result["isError"], true, "call {name} {arguments}: {result}");
    result
}

/// The first text content of a successful call.
fn call_text(gw: &Gateway, name: &str, arguments: Value) -> String {
    call_ok(gw, name, arguments)["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("call {name}: no text content"))
        .to_string()
}

/// Waits until one server (not necessarily all) is up.
fn wait_server_up(gw: &Gateway, name: &str) -> Value {
    wait_for(
        Duration::from_secs(20),
        &format!("server {name} up"),
        || {
            let server = gw.server_health(name);
            (server["status"] == "up").then_some(server)
        },
    )
}

/// True for names every client accepts: `^[a-zA-Z0-9_-]{1,64}$`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn assert_unknown_tool(gw: &Gateway, name: &str) {
    let response = gw.call(name, json!({"text": "x"}));
    assert_eq!(
        response.status,
        404,
        "{name} must not be exposed: {}",
        response.text()
    );
}

#[test]
fn prefix_is_prepended_and_each_prefixed_name_reaches_its_own_server() {
    let gw = Gateway::start(json!({
        "servers": [
            demo_env("one", &[], json!({"WHO": "server-one"})),
            demo_env("two", &[], json!({"WHO": "server-two"})),
        ],
        "mapping": {"one": {"prefix": "a_"}, "two": {"prefix": "b_"}},
    }));
    gw.wait_up();
    let expected: BTreeSet<String> = DEMO_TOOLS
        .iter()
        .flat_map(|t| [format!("a_{t}"), format!("b_{t}")])
        .collect();
    assert_eq!(name_set(&gw), expected);
    assert_eq!(tool_collisions(&gw), Vec::<String>::new());

    assert_eq!(
        call_text(&gw, "a_env", json!({"name": "WHO"})),
        "server-one"
    );
    assert_eq!(
        call_text(&gw, "b_env", json!({"name": "WHO"})),
        "server-two"
    );
    assert_eq!(call_text(&gw, "a_echo", json!({"text": "via a"})), "via a");
    let sum = call_ok(&gw, "b_add", json!({"a": 2, "b": 40}));
    assert_eq!(sum["structuredContent"]["sum"], 42);
    let pid_a = call_ok(&gw, "a_pid", json!({}))["structuredContent"]["pid"].clone();
    let pid_b = call_ok(&gw, "b_pid", json!({}))["structuredContent"]["pid"].clone();
    assert_ne!(pid_a, pid_b, "two servers, two processes");

    let a_echo = entry(&gw, "a_echo");
    assert_eq!(a_echo["server"], "one");
    assert_eq!(a_echo["originalName"], "echo");
    // Unprefixed names are not exposed.
    assert_unknown_tool(&gw, "echo");
}

#[test]
fn string_strip_prefix_is_removed_before_the_prefix_is_added() {
    let gw = Gateway::start(json!({
        "servers": [demo(
            "strs",
            &["--tools", "echo", "--extra-tool", "srv_alpha", "--extra-tool", "srv_beta", "--extra-tool", "srv_"],
        )],
        "mapping": {"strs": {"prefix": "x_", "stripPrefix": "srv_"}},
    }));
    gw.wait_up();
    let expected: BTreeSet<String> = ["x_echo", "x_alpha", "x_beta", "x_srv_"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        name_set(&gw),
        expected,
        "stripping never leaves an empty name"
    );
    for (exposed, original) in [
        ("x_alpha", "srv_alpha"),
        ("x_beta", "srv_beta"),
        ("x_srv_", "srv_"),
        ("x_echo", "echo"),
    ] {
        assert_eq!(entry(&gw, exposed)["originalName"], original);
        // The demo server answers -32602 "Unknown tool" to a wrong original name: a 200 with the text
        // proves the call went back to `original`.
        let text = format!("called {exposed}");
        assert_eq!(call_text(&gw, exposed, json!({"text": text})), text);
    }
    assert_unknown_tool(&gw, "x_srv_alpha");
    assert_unknown_tool(&gw, "srv_alpha");
}

#[test]
fn strip_prefix_true_strips_the_servers_own_prefix() {
    let gw = Gateway::start(json!({
        "servers": [demo("own", &["--tools", "echo", "--extra-tool", "gh_issues", "--extra-tool", "pulls"])],
        "mapping": {"own": {"prefix": "gh_", "stripPrefix": true}},
    }));
    gw.wait_up();
    let expected: BTreeSet<String> = ["gh_echo", "gh_issues", "gh_pulls"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(name_set(&gw), expected, "no gh_gh_issues");
    for (exposed, original) in [
        ("gh_issues", "gh_issues"),
        ("gh_pulls", "pulls"),
        ("gh_echo", "echo"),
    ] {
        assert_eq!(entry(&gw, exposed)["originalName"], original);
        let text = format!("through {exposed}");
        assert_eq!(call_text(&gw, exposed, json!({"text": text})), text);
    }
    assert_unknown_tool(&gw, "gh_gh_issues");
}

#[test]
fn renames_are_exact_and_round_trip_even_onto_another_tools_name() {
    let gw = Gateway::start(json!({
        "servers": [demo_env("ren", &["--tools", "echo,add,env,pid"], json!({"WHO": "renamed-server"}))],
        "mapping": {"ren": {"prefix": "r_", "rename": {"echo": "say", "add": "echo"}}},
    }));
    gw.wait_up();
    let expected: BTreeSet<String> = ["say", "echo", "r_env", "r_pid"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        name_set(&gw),
        expected,
        "rename values get no prefix; other tools do"
    );
    assert_eq!(entry(&gw, "say")["originalName"], "echo");
    assert_eq!(entry(&gw, "echo")["originalName"], "add");

    // `say` reaches the original echo...
    assert_eq!(call_text(&gw, "say", json!({"text": "said it"})), "said it");
    // ...and `echo` reaches the original add: echo would reject {a, b} with -32602 (400).
    let sum = call_ok(&gw, "echo", json!({"a": 20, "b": 22}));
    assert_eq!(sum["structuredContent"]["sum"], 42);
    let wrong_args = gw.call("echo", json!({"text": "hi"}));
    assert_eq!(
        wrong_args.status,
        400,
        "`echo` is add now, so echo's arguments are wrong: {}",
        wrong_args.text()
    );
    assert_eq!(
        call_text(&gw, "r_env", json!({"name": "WHO"})),
        "renamed-server"
    );
    assert_unknown_tool(&gw, "r_echo");
    assert_unknown_tool(&gw, "r_add");
    assert_unknown_tool(&gw, "r_say");

    // The same over SSE.
    let mut session = gw.sse();
    session.initialize();
    let said = session.request(
        "tools/call",
        json!({"name": "say", "arguments": {"text": "sse say"}}),
    );
    assert_eq!(said["result"]["content"][0]["text"], "sse say");
    let added = session.request(
        "tools/call",
        json!({"name": "echo", "arguments": {"a": 1, "b": 2}}),
    );
    assert_eq!(added["result"]["structuredContent"]["sum"], 3);
    session.close();
}

#[test]
fn tool_filters_apply_globs_to_original_names_also_with_a_prefix() {
    let gw = Gateway::start(json!({
        "servers": [
            demo("inc", &[]),
            demo("exc", &[]),
        ],
        "mapping": {"inc": {"prefix": "f_"}, "exc": {"prefix": "g_"}},
        "toolFilters": {
            // Globs on original names: "e*" must not be tested against "f_echo".
            "inc": {"include": ["e*", "add", "f_*"], "exclude": ["env"]},
            "exc": {"exclude": ["*a*", "p*s", "f_*"]},
        },
    }));
    gw.wait_up();
    let mut expected: BTreeSet<String> = ["f_echo", "f_elicit", "f_add"]
        .into_iter()
        .map(String::from)
        .collect();
    // "*a*" removes add, fail, crash, sample, notify_changed; "p*s" removes progress.
    let excluded = [
        "add",
        "fail",
        "crash",
        "sample",
        "notify_changed",
        "progress",
    ];
    for tool in DEMO_TOOLS.iter().filter(|t| !excluded.contains(t)) {
        expected.insert(format!("g_{tool}"));
    }
    assert_eq!(name_set(&gw), expected);
    assert_eq!(gw.server_health("inc")["tools"], 3);
    assert_eq!(
        gw.server_health("exc")["tools"],
        DEMO_TOOLS.len() - excluded.len()
    );

    assert_eq!(call_text(&gw, "f_echo", json!({"text": "kept"})), "kept");
    assert_eq!(
        call_ok(&gw, "f_add", json!({"a": 1, "b": 1}))["structuredContent"]["sum"],
        2
    );
    assert_eq!(
        call_text(&gw, "g_echo", json!({"text": "g kept"})),
        "g kept"
    );
    for filtered in ["f_env", "f_sleep", "f_pid", "g_add", "g_fail", "g_progress"] {
        assert_unknown_tool(&gw, filtered);
    }
}

/// The config of the collision tests: two unprefixed demo servers offering the same names.
fn colliding_servers() -> Value {
    json!({
        "servers": [
            demo_env("alpha", &["--tools", "echo,env,pid"], json!({"WHO": "alpha-server"})),
            demo_env("beta", &["--tools", "echo,env,pid"], json!({"WHO": "beta-server"})),
        ],
    })
}

#[test]
fn colliding_names_first_server_keeps_them_and_the_other_is_qualified() {
    let gw = Gateway::start(colliding_servers());
    gw.wait_up();
    let expected: BTreeSet<String> = ["echo", "env", "pid", "beta_echo", "beta_env", "beta_pid"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(name_set(&gw), expected);

    assert_eq!(
        call_text(&gw, "env", json!({"name": "WHO"})),
        "alpha-server"
    );
    assert_eq!(
        call_text(&gw, "beta_env", json!({"name": "WHO"})),
        "beta-server"
    );
    assert_eq!(call_text(&gw, "echo", json!({"text": "first"})), "first");
    assert_eq!(
        call_text(&gw, "beta_echo", json!({"text": "second"})),
        "second"
    );
    let beta_echo = entry(&gw, "beta_echo");
    assert_eq!(beta_echo["server"], "beta");
    assert_eq!(beta_echo["originalName"], "echo");
    assert_eq!(entry(&gw, "echo")["server"], "alpha");

    let collisions = tool_collisions(&gw);
    assert_eq!(collisions.len(), 3, "{collisions:?}");
    assert!(
        collisions.iter().any(|c| {
            let c = c.as_str();
            c.contains("\"echo\"") && c.contains("beta_echo") && c.contains("alpha")
        }),
        "{collisions:?}"
    );
    gw.wait_log("name collision", Duration::from_secs(5));
    let logs = gw.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("name collision") && l.contains("beta_echo")),
        "{logs}"
    );
}

/// Runs the gateway binary as a command (not a server) with a deadline; returns (exit code, stdout, stderr).
fn run_cli(args: &[&str], cwd: &std::path::Path) -> (i32, String, String) {
    let mut child = Command::new(gateway_binary())
        .args(args)
        .env("XDG_STATE_HOME", cwd.join("state"))
        .env_remove("MCP_GATEWAY_CONFIG")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mcp-gateway");
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = wait_for(
        Duration::from_secs(20),
        &format!("mcp-gateway {args:?} to exit"),
        || child.try_wait().unwrap(),
    );
    (
        status.code().expect("exited, not killed"),
        out.join().unwrap(),
        err.join().unwrap(),
    )
}

#[test]
fn check_prints_collisions_and_exits_0_when_all_up_and_1_when_a_server_is_down() {
    let dir = temp_dir("check");
    let path = dir.join("config.json");
    std::fs::write(&path, colliding_servers().to_string()).unwrap();
    let (code, stdout, stderr) = run_cli(&["check", "--config", path.to_str().unwrap()], &dir);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("collisions:"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("\"echo\"") && l.contains("beta_echo")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("beta_echo") && l.contains("beta/echo")),
        "the tool table routes beta_echo to beta/echo: {stdout}"
    );

    let mut config = colliding_servers();
    let mut broken = demo("broken", &["--exit-at-start", "3"]);
    broken["initTimeout"] = json!(2000);
    config["servers"].as_array_mut().unwrap().push(broken);
    std::fs::write(&path, config.to_string()).unwrap();
    let (code, stdout, stderr) = run_cli(&["check", "--config", path.to_str().unwrap()], &dir);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("server broken: down") && l.contains("status 3")),
        "{stdout}"
    );
    assert!(stdout.contains("collisions:"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn invalid_and_long_names_are_sanitized_stably_and_route_back() {
    let shared = "t".repeat(70);
    let long_a = format!("{shared}_first");
    let long_b = format!("{shared}_second");
    let long_c = format!("{shared}_third");
    let config = json!({
        "servers": [
            demo("one", &["--tools", "pid", "--extra-tool", &long_a, "--extra-tool", "files.read", "--extra-tool", &long_c]),
            demo("two", &["--tools", "env", "--extra-tool", &long_b]),
        ],
    });
    let gw = Gateway::start(config.clone());
    let again = Gateway::start(config);
    gw.wait_up();
    again.wait_up();

    let tools = rest_tools(&gw);
    for tool in &tools {
        let name = tool["name"].as_str().unwrap();
        assert!(valid_name(name), "invalid exposed name {name:?}");
    }
    let by_original: HashMap<String, String> = tools
        .iter()
        .map(|t| {
            (
                t["originalName"].as_str().unwrap().to_string(),
                t["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(by_original["files.read"], "files_read");
    let exposed: Vec<String> = [&long_a, &long_b, &long_c]
        .iter()
        .map(|original| by_original[*original].clone())
        .collect();
    for (original, name) in [&long_a, &long_b, &long_c].iter().zip(&exposed) {
        assert_eq!(name.len(), 64, "{name}");
        assert!(name.starts_with(&original[..55]), "{name}");
        let tail = &name[55..];
        assert!(
            tail.starts_with('_') && tail[1..].bytes().all(|b| b.is_ascii_hexdigit()),
            "shortened names end in _ + 8 hex digits: {name}"
        );
    }
    assert_eq!(
        exposed.iter().collect::<BTreeSet<_>>().len(),
        3,
        "long names sharing their first 64+ characters stay distinct: {exposed:?}"
    );
    assert_eq!(tool_collisions(&gw), Vec::<String>::new());
    let (exposed_a, exposed_b, exposed_c) = (&exposed[0], &exposed[1], &exposed[2]);

    assert_eq!(
        names(&gw),
        names(&again),
        "exposed names are the same in every run"
    );

    // Each call reaches the one server that has that original name (the other answers "Unknown
    // tool", which would be a 400).
    assert_eq!(
        call_text(&gw, exposed_a, json!({"text": "long a"})),
        "long a"
    );
    assert_eq!(
        call_text(&gw, exposed_b, json!({"text": "long b"})),
        "long b"
    );
    assert_eq!(
        call_text(&gw, exposed_c, json!({"text": "long c"})),
        "long c"
    );
    assert_eq!(
        call_text(&gw, "files_read", json!({"text": "dotted"})),
        "dotted"
    );
    assert_eq!(entry(&gw, exposed_a)["server"], "one");
    assert_eq!(entry(&gw, exposed_b)["server"], "two");
    assert_unknown_tool(&gw, "files.read");
    assert_unknown_tool(&gw, &long_a);

    // Over SSE too.
    let mut session = gw.sse();
    session.initialize();
    let listed = session.request("tools/list", json!({}));
    let sse_names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(sse_names.iter().all(|n| valid_name(n)), "{sse_names:?}");
    let answer = session.request(
        "tools/call",
        json!({"name": exposed_b, "arguments": {"text": "sse long b"}}),
    );
    assert_eq!(answer["result"]["content"][0]["text"], "sse long b");
    session.close();
}

/// Asks a demo server directly (over its stdio, no gateway) for its complete tool list.
fn direct_tool_list(flags: &[&str]) -> Vec<Value> {
    let mut child = Command::new(demo_server())
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mcp-demo-server");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Ok(value) = serde_json::from_str(&line) {
                if tx.send(value).is_err() {
                    return;
                }
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let response_to = |id: u64| -> Value {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("demo server: no response to {id}"));
            if message["id"] == id {
                return message;
            }
        }
    };
    let mut send = |message: Value| {
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    );
    assert!(response_to(1).get("result").is_some());
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let mut tools = Vec::new();
    let mut cursor: Option<Value> = None;
    for id in 2..100 {
        let mut params = json!({});
        if let Some(c) = &cursor {
            params["cursor"] = c.clone();
        }
        send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": params}));
        let page = response_to(id);
        tools.extend(page["result"]["tools"].as_array().unwrap().iter().cloned());
        match page["result"].get("nextCursor") {
            Some(c) if !c.is_null() => cursor = Some(c.clone()),
            _ => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    tools
}

#[test]
fn schemas_and_annotations_pass_through_untouched_and_absent_stays_absent() {
    let flags = ["--extra-tool", "plain_alias"];
    let direct = direct_tool_list(&flags);
    assert_eq!(direct.len(), DEMO_TOOLS.len() + 1);
    let gw = Gateway::start(json!({
        "servers": [demo("raw", &flags), demo("pre", &flags)],
        "mapping": {"pre": {"prefix": "p_"}},
    }));
    gw.wait_up();

    let mut session = gw.sse();
    session.initialize();
    let listed = session.request("tools/list", json!({}));
    session.close();
    let listed = listed["result"]["tools"].as_array().unwrap().clone();
    let sse_by_name: HashMap<String, Value> = listed
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t.clone()))
        .collect();
    assert_eq!(listed.len(), 2 * direct.len());
    let rest = rest_tools(&gw);
    let rest_by_name: HashMap<String, Value> = rest
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t.clone()))
        .collect();

    for def in &direct {
        let original = def["name"].as_str().unwrap();
        for exposed in [original.to_string(), format!("p_{original}")] {
            // tools/list: the server's definition, with only the name changed.
            let mut expected = def.clone();
            expected["name"] = json!(exposed);
            let got = sse_by_name
                .get(&exposed)
                .unwrap_or_else(|| panic!("{exposed} missing from tools/list"));
            assert_eq!(got, &expected, "tools/list entry of {exposed}");
            // GET /tools: the same fields, absent ones absent (not null).
            let got = &rest_by_name[&exposed];
            for key in [
                "title",
                "description",
                "inputSchema",
                "outputSchema",
                "annotations",
            ] {
                assert_eq!(got.get(key), def.get(key), "GET /tools {exposed}.{key}");
            }
        }
    }

    let add = &sse_by_name["add"];
    assert!(
        add.get("outputSchema").is_some() && add.get("annotations").is_some(),
        "add has both: {add}"
    );
    for name in ["plain_alias", "p_plain_alias"] {
        for (what, tool) in [
            ("tools/list", &sse_by_name[name]),
            ("GET /tools", &rest_by_name[name]),
        ] {
            for key in ["outputSchema", "annotations", "title"] {
                assert!(
                    tool.get(key).is_none(),
                    "{what} {name}: {key} must be absent, got {tool}"
                );
            }
        }
    }
}

#[test]
fn disabled_server_contributes_nothing_and_an_unreachable_remote_is_down_without_harming_others() {
    let mut off = demo("off", &[]);
    off["enabled"] = json!(false);
    let gw = Gateway::start(json!({
        "servers": [
            off,
            {"name": "far", "type": "remote", "url": "http://127.0.0.1:9/mcp"},
            demo("local", &["--tools", "echo,pid"]),
        ],
        "mapping": {"off": {"prefix": "off_"}, "far": {"prefix": "far_"}},
    }));
    wait_server_up(&gw, "local");
    let off = gw.server_health("off");
    assert_eq!(off["enabled"], false, "{off}");
    assert_eq!(off["status"], "disabled", "{off}");
    assert_eq!(off["tools"], 0, "{off}");
    assert_eq!(off["spawns"], 0, "{off}");

    // Port 9 (discard) has no listener on loopback: connection refused.
    let far = wait_for(Duration::from_secs(5), "remote server down", || {
        let far = gw.server_health("far");
        (far["status"] == "down").then_some(far)
    });
    assert_eq!(far["type"], "remote", "{far}");
    assert_eq!(far["tools"], 0, "{far}");
    let error = far["lastError"]
        .as_str()
        .unwrap_or_else(|| panic!("lastError: {far}"));
    assert!(
        error.contains("127.0.0.1:9") && error.contains("unreachable"),
        "{error}"
    );
    let health = gw.health();
    assert_eq!(health["status"], "degraded", "{health}");

    let expected: BTreeSet<String> = ["echo", "pid"].into_iter().map(String::from).collect();
    assert_eq!(name_set(&gw), expected);
    assert!(rest_tools(&gw).iter().all(|t| t["server"] == "local"));
    assert_eq!(
        call_text(&gw, "echo", json!({"text": "local ok"})),
        "local ok"
    );
    assert_unknown_tool(&gw, "off_echo");
    assert_eq!(gw.server_health("off")["spawns"], 0);
    // Only the local server's process exists.
    assert_eq!(gw.children().len(), 1, "{:?}", gw.children());
}

fn tool_names_of(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("not a tools/list result: {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_session_started_before_a_slow_server_is_told_the_tool_list_changed() {
    let gw = Gateway::start(json!({
        "servers": [
            demo("fast", &["--tools", "echo"]),
            demo("slow", &["--tools", "echo", "--init-delay", "800"]),
        ],
        "mapping": {"slow": {"prefix": "slow_"}},
    }));
    let mut session = gw.sse();
    session.initialize();
    let first = session.request("tools/list", json!({}));
    assert!(
        !tool_names_of(&first).contains(&"slow_echo".to_string()),
        "premise: the slow server is still starting when the session initializes: {first}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut notifications = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = session
            .next_message(left)
            .expect("notifications/tools/list_changed after the slow server came up");
        if message["method"] != "notifications/tools/list_changed" {
            continue;
        }
        assert!(
            message.get("id").is_none(),
            "a notification has no id: {message}"
        );
        notifications += 1;
        let list = session.request("tools/list", json!({}));
        if tool_names_of(&list).contains(&"slow_echo".to_string()) {
            break;
        }
    }
    assert!(notifications >= 1);
    let answer = session.request(
        "tools/call",
        json!({"name": "slow_echo", "arguments": {"text": "late"}}),
    );
    assert_eq!(answer["result"]["content"][0]["text"], "late");
    session.close();
}

/// Reads a session's messages until every id in `ids` has an answer, then a little longer to catch
/// strays; returns every response (messages with an id and no method).
fn collect_responses(session: &mut util::SseSession, ids: &[Value]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut responses: Vec<Value> = Vec::new();
    while !ids
        .iter()
        .all(|id| responses.iter().any(|r| &r["id"] == id))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = session
            .next_message(left)
            .unwrap_or_else(|| panic!("responses to {ids:?}; got only {responses:?}"));
        if message.get("id").is_some() && message.get("method").is_none() {
            responses.push(message);
        }
    }
    while let Some(message) = session.next_message(Duration::from_millis(300)) {
        if message.get("id").is_some() && message.get("method").is_none() {
            responses.push(message);
        }
    }
    responses
}

#[test]
fn two_sessions_using_the_same_ids_at_once_each_get_only_their_own_answers() {
    let gw = Gateway::start(json!({"servers": [demo("demo", &["--tools", "echo,sleep"])]}));
    gw.wait_up();
    let mut a = gw.sse();
    let mut b = gw.sse();
    a.initialize();
    b.initialize();
    // Both sessions have the same two ids in flight at the same time: 1 (a number) and "1" (a string).
    a.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sleep", "arguments": {"ms": 400}}}));
    b.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sleep", "arguments": {"ms": 200}}}));
    a.send(&json!({"jsonrpc": "2.0", "id": "1", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "from session a"}}}));
    b.send(&json!({"jsonrpc": "2.0", "id": "1", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "from session b"}}}));

    let ids = [json!(1), json!("1")];
    for (session, slept, echoed) in [
        (&mut a, "slept 400 ms", "from session a"),
        (&mut b, "slept 200 ms", "from session b"),
    ] {
        let responses = collect_responses(session, &ids);
        assert_eq!(
            responses.len(),
            2,
            "exactly one answer per id: {responses:?}"
        );
        let number = responses.iter().find(|r| r["id"] == json!(1)).unwrap();
        let string = responses.iter().find(|r| r["id"] == json!("1")).unwrap();
        assert_eq!(number["result"]["content"][0]["text"], slept, "{number}");
        assert_eq!(string["result"]["content"][0]["text"], echoed, "{string}");
    }
    a.close();
    b.close();
}

/// Guards against a helper silently accepting anything.
#[test]
fn unknown_names_are_404_over_rest() {
    let gw = Gateway::start(json!({"servers": [demo("demo", &["--tools", "echo"])]}));
    gw.wait_up();
    let response: HttpResponse = gw.call("nope", json!({}));
    assert_eq!(response.status, 404, "{}", response.text());
    assert_eq!(response.json()["error"]["code"], -32602);
}

/// The tool collisions in /health (two demo servers also share prompt names and resource URIs,
/// which are reported too; these tests are about tools).
fn tool_collisions(gw: &Gateway) -> Vec<String> {
    gw.health()["collisions"]
        .as_array()
        .expect("collisions is an array")
        .iter()
        .map(|c| c.as_str().expect("collisions are strings").to_string())
        .filter(|c| c.starts_with("tool "))
        .collect()
}

#[test]
fn tool_overrides_fix_what_clients_see_without_changing_what_runs() {
    let gw = Gateway::start(json!({
        "servers": [demo("demo", &[])],
        "mapping": {"demo": {"tools": {
            "echo": {"name": "say", "description": "Repeats your words", "annotations": {"readOnlyHint": true}},
            "crash": {"hidden": true},
            "nothere": {"title": "x"}
        }}},
    }));
    gw.wait_up();
    let listed = gw.get("/tools").json();
    let tools = listed["tools"].as_array().unwrap();
    let say = tools.iter().find(|t| t["name"] == "say").expect("renamed");
    assert_eq!(say["description"], "Repeats your words");
    assert_eq!(say["annotations"]["readOnlyHint"], true);
    assert!(!tools
        .iter()
        .any(|t| t["name"] == "crash" || t["name"] == "echo"));
    // Over MCP too, and the call reaches the original tool.
    let mut session = gw.mcp();
    let page = session.request("tools/list", json!({}));
    let say = page.response()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "say")
        .cloned()
        .unwrap();
    assert_eq!(say["description"], "Repeats your words");
    let echoed = gw.call("say", json!({"text": "hi"}));
    assert_eq!(echoed.json()["result"]["content"][0]["text"], "hi");
    let hidden = gw.call("crash", json!({}));
    assert_eq!(
        hidden.status,
        404,
        "a hidden tool is unknown: {}",
        hidden.text()
    );
    let notes = gw.health()["notes"].to_string();
    assert!(
        notes.contains("mapping.demo.tools: server demo has no tool named \\\"nothere\\\""),
        "{notes}"
    );
}
