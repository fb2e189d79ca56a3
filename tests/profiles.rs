//! Profiles and tool search end to end (#14): the real gateway in front of the official reference
//! server (`@modelcontextprotocol/server-everything`, stdio) and the demo server, driven by the
//! official Python SDK (`tests/interop/profiles.py`) over Streamable HTTP, legacy SSE and the
//! bridge; REST and the refusals over raw HTTP; `mcp-gateway check` as a user runs it.

mod util;

use serde_json::{json, Value};
use std::io::Write;
use std::process::Command;
use std::time::Duration;
use util::*;

/// In catalog order (the demo server's).
const DEMO_PROFILE: [&str; 4] = ["demo_echo", "demo_add", "demo_fail", "demo_progress"];

fn config() -> Value {
    let everything =
        installed("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    json!({
        "servers": [
            {"name": "ev", "command": ["node", everything, "stdio"]},
            demo("demo", &[]),
        ],
        "mapping": {"ev": {"prefix": "ev_"}, "demo": {"prefix": "demo_"}},
        "profiles": {
            "ev": {"servers": ["ev"]},
            "demo": {"servers": ["demo"], "include": DEMO_PROFILE, "prompts": false},
            "find": {"toolExposure": "search"},
            "auto": {"servers": ["demo"], "toolExposure": "auto", "maxTools": 10},
            "auto-roomy": {"servers": ["demo"], "toolExposure": "auto"},
            "short": {"servers": ["ev"], "maxToolNameLength": 16}
        }
    })
}

fn start() -> Gateway {
    let gw = Gateway::start(config());
    gw.wait_up();
    gw
}

fn by_check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

fn names(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("an array: {value}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

fn rest_names(gw: &Gateway, profile: &str) -> Vec<String> {
    let listed = gw.get(&format!("/tools?profile={profile}"));
    assert_eq!(listed.status, 200, "{}", listed.text());
    listed.json()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// The SDK on profile `demo` and profile `ev` over `transport`: each sees only its own tools,
/// prompts and resources, and a call outside the profile is -32602 as for a tool that does not exist.
fn each_profile_sees_only_its_own(gw: &Gateway, transport: &str, endpoint: &str) {
    let url = |profile: &str| format!("http://{}/{endpoint}/{profile}", gw.addr());
    let bridge = gateway_binary();
    let args = |profile: &str, tool: &str, arguments: &str, outside: &str| {
        let mut args = vec!["view".to_string(), transport.into(), url(profile)];
        args.extend([tool, arguments, outside].map(String::from));
        args.push(bridge.to_string());
        args
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_interop_script(gw, "profiles.py", &args)
    };

    let demo = run(args("demo", "demo_echo", r#"{"text": "hi"}"#, "ev_echo"));
    assert_eq!(names(&by_check(&demo, "tools")["names"]), DEMO_PROFILE);
    assert_eq!(
        by_check(&demo, "prompts")["names"],
        json!([]),
        "prompts off"
    );
    let demo_uris = names(&by_check(&demo, "resources")["uris"]);
    assert!(
        demo_uris.contains(&"demo://readme".to_string()),
        "{demo_uris:?}"
    );
    assert_eq!(by_check(&demo, "call")["content"][0]["text"], "hi");
    let outside = by_check(&demo, "outside");
    assert_eq!(outside["code"], -32602, "{outside}");
    assert_eq!(outside["message"], "Unknown tool: ev_echo");

    let ev = run(args("ev", "ev_echo", r#"{"message": "hi"}"#, "demo_echo"));
    let tools = names(&by_check(&ev, "tools")["names"]);
    assert_eq!(tools, rest_names(gw, "ev"));
    assert!(
        tools.len() > 5 && tools.iter().all(|t| t.starts_with("ev_")),
        "{tools:?}"
    );
    let prompts = names(&by_check(&ev, "prompts")["names"]);
    assert!(
        !prompts.is_empty() && prompts.iter().all(|p| p.starts_with("ev_")),
        "{prompts:?}"
    );
    let uris = names(&by_check(&ev, "resources")["uris"]);
    assert!(!uris.is_empty(), "server-everything lists resources");
    assert!(uris.iter().all(|u| !demo_uris.contains(u)), "{uris:?}");
    assert_eq!(by_check(&ev, "call")["content"][0]["text"], "Echo: hi");
    assert_eq!(by_check(&ev, "outside")["code"], -32602);
}

#[test]
fn profiles_over_streamable_http() {
    let gw = start();
    each_profile_sees_only_its_own(&gw, "streamable", "mcp");
}

#[test]
fn profiles_over_legacy_sse() {
    let gw = start();
    each_profile_sees_only_its_own(&gw, "sse", "sse");
}

#[test]
fn profiles_through_the_bridge() {
    let gw = start();
    each_profile_sees_only_its_own(&gw, "bridge", "mcp");
}

#[test]
fn profiles_over_rest_and_unknown_profiles() {
    let gw = start();
    assert_eq!(rest_names(&gw, "demo"), DEMO_PROFILE);
    let all = rest_names(&gw, "default");
    assert_eq!(
        all,
        names(&json!(gw.get("/tools").json()["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].clone())
            .collect::<Vec<_>>()))
    );
    assert!(
        all.len() > DEMO_PROFILE.len() + 10,
        "the plain endpoints serve everything"
    );
    let call = |name: &str| {
        let body = json!({"name": name, "arguments": {"text": "x"}});
        gw.post_json("/tools/call?profile=demo", &body)
    };
    assert_eq!(
        call("demo_echo").json()["result"]["content"][0]["text"],
        "x"
    );
    let outside = call("ev_echo");
    assert_eq!(outside.status, 404, "{}", outside.text());
    assert_eq!(outside.json()["error"]["code"], -32602);
    assert_eq!(
        call("demo_sleep").status,
        404,
        "excluded by the profile's globs"
    );

    let expected = json!([
        "default",
        "ev",
        "demo",
        "find",
        "auto",
        "auto-roomy",
        "short"
    ]);
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let mcp_headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    for response in [
        gw.get("/tools?profile=nope"),
        gw.post_json("/tools/call?profile=nope", &json!({"name": "demo_echo"})),
        gw.request(
            "POST",
            "/mcp/nope",
            &mcp_headers,
            initialize.to_string().as_bytes(),
        ),
        gw.request("GET", "/sse/nope", &[("Accept", "text/event-stream")], b""),
        gw.request("POST", "/messages/nope?sessionId=x", &mcp_headers, b"{}"),
    ] {
        assert_eq!(response.status, 404, "{}", response.text());
        let error = &response.json()["error"];
        assert_eq!(error["data"]["profiles"], expected, "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("unknown profile \"nope\"; the profiles are: default, ev, demo"),
            "{error}"
        );
    }
    let index = gw.get("/").json();
    assert_eq!(index["profiles"], expected);
}

#[test]
fn a_session_is_used_only_through_its_profile() {
    let gw = start();
    let headers = |session: &str| {
        vec![
            ("Content-Type", "application/json".to_string()),
            ("Accept", "application/json, text/event-stream".to_string()),
            ("Mcp-Session-Id", session.to_string()),
        ]
    };
    let post = |path: &str, session: &str, body: &Value| {
        let headers = headers(session);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        gw.request("POST", path, &headers, body.to_string().as_bytes())
    };
    let opened = post(
        "/mcp/demo",
        "",
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    );
    assert_eq!(opened.status, 200, "{}", opened.text());
    let session = opened.header("mcp-session-id").unwrap().to_string();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let own = post("/mcp/demo", &session, &list);
    assert_eq!(own.status, 200, "{}", own.text());
    let listed = mcp_messages(&own)[0]["result"]["tools"].clone();
    assert_eq!(listed.as_array().unwrap().len(), DEMO_PROFILE.len());
    for elsewhere in ["/mcp/ev", "/mcp"] {
        let refused = post(elsewhere, &session, &list);
        assert_eq!(refused.status, 404, "{elsewhere}: {}", refused.text());
        let message = refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message.starts_with("this session belongs to profile \"demo\" (/mcp/demo); it cannot be used through profile"),
            "{message}"
        );
    }

    // Legacy SSE: the endpoint carries the profile, and only that endpoint takes the session.
    let mut stream = gw.connect();
    write!(
        stream,
        "GET /sse/demo HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        gw.addr()
    )
    .unwrap();
    let events = read_events(&mut stream, Duration::from_secs(10), |events| {
        !events.is_empty()
    });
    let (event, endpoint) = &events[0];
    assert_eq!(event, "endpoint");
    assert!(
        endpoint.starts_with("/messages/demo?sessionId="),
        "{endpoint}"
    );
    let id = endpoint.rsplit('=').next().unwrap();
    let plain = gw.request(
        "POST",
        &format!("/messages?sessionId={id}"),
        &[("Content-Type", "application/json")],
        list.to_string().as_bytes(),
    );
    assert_eq!(plain.status, 404, "{}", plain.text());
    assert!(
        plain
            .text()
            .contains("belongs to profile \\\"demo\\\" (/messages/demo)"),
        "{}",
        plain.text()
    );
    let own = gw.request(
        "POST",
        endpoint,
        &[("Content-Type", "application/json")],
        list.to_string().as_bytes(),
    );
    assert_eq!(own.status, 202, "{}", own.text());
}

#[test]
fn search_finds_describes_and_calls_like_a_direct_call() {
    let gw = start();
    let url = format!("http://{}/mcp/find", gw.addr());
    let checks = run_interop_script(&gw, "profiles.py", &["search", "streamable", &url]);
    let instructions = by_check(&checks, "initialize")["instructions"].to_string();
    assert!(instructions.contains("search_tools"), "{instructions}");
    let found = names(&by_check(&checks, "search")["names"]);
    assert_eq!(
        found[0], "demo_progress",
        "words of its description: {found:?}"
    );
    assert_eq!(by_check(&checks, "search limit")["count"], 1);
    let described = by_check(&checks, "describe");
    assert_eq!(described["name"], "demo_progress");
    assert!(
        described["inputSchema"]["properties"]["steps"].is_object(),
        "{described}"
    );
    let echo = checks
        .iter()
        .find(|c| c["check"] == "call_tool" && c["name"] == "demo_echo")
        .unwrap();
    assert_eq!(echo["content"][0]["text"], "same either way");
    let fail = checks
        .iter()
        .find(|c| c["check"] == "call_tool" && c["name"] == "demo_fail")
        .unwrap();
    assert_eq!(
        fail["isError"], true,
        "the tool's own error, as a direct call gets it"
    );
    let progress = by_check(&checks, "call_tool progress");
    assert_eq!(progress["wrapped"], json!([1.0, 2.0, 3.0]), "{progress}");
    assert_eq!(progress["direct"], progress["wrapped"]);
    assert_eq!(progress["text"], "done 3 steps");
    let unknown = by_check(&checks, "call_tool unknown");
    assert_eq!(unknown["code"], -32602);
    assert_eq!(unknown["message"], "Unknown tool: no_such_tool");
    // Figures for the profile: the catalog's size, and what a client is shown instead.
    let health = gw.health();
    let find = health["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "find")
        .unwrap()
        .clone();
    assert_eq!(find["listed"], "search");
    assert!(
        find["listedTokens"].as_u64().unwrap() < find["estimatedTokens"].as_u64().unwrap() / 4,
        "{find}"
    );
    assert_eq!(
        find["estimatedTokens"],
        find["definitionBytes"].as_u64().unwrap() / 4
    );
}

#[test]
fn auto_switches_on_the_count_and_stays_full_for_claude_code() {
    let gw = start();
    let listed = |profile: &str, client: &str| {
        let url = format!("http://{}/mcp/{profile}", gw.addr());
        let checks = run_interop_script(&gw, "profiles.py", &["list", "streamable", &url, client]);
        names(&by_check(&checks, "tools")["names"])
    };
    let search = ["search_tools", "describe_tools", "call_tool"];
    assert_eq!(
        listed("auto", "some-agent"),
        search,
        "15 tools > maxTools 10"
    );
    assert_eq!(
        listed("auto", "claude-code"),
        DEMO_TOOLS.map(|t| format!("demo_{t}")),
        "searches itself"
    );
    assert_eq!(
        listed("auto-roomy", "some-agent").len(),
        DEMO_TOOLS.len(),
        "15 <= 128"
    );
    let health = gw.health();
    let auto = health["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "auto")
        .unwrap()
        .clone();
    assert_eq!(
        (auto["tools"].clone(), auto["listed"].clone()),
        (json!(15), json!("search"))
    );
}

#[test]
fn names_fit_the_budget_and_calls_still_reach_the_tool() {
    let gw = start();
    let full = gw.get("/tools?profile=ev").json();
    let short = gw.get("/tools?profile=short").json();
    let (full, short) = (
        full["tools"].as_array().unwrap(),
        short["tools"].as_array().unwrap(),
    );
    assert_eq!(full.len(), short.len());
    let mut shortened = 0;
    for (long, fitted) in full.iter().zip(short) {
        let (long, fitted) = (
            long["name"].as_str().unwrap(),
            fitted["name"].as_str().unwrap(),
        );
        assert!(
            fitted.len() <= 16
                && fitted
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{fitted}"
        );
        if long.len() > 16 {
            shortened += 1;
            assert!(fitted.starts_with(&long[..7]), "{long} -> {fitted}");
        } else {
            assert_eq!(long, fitted);
        }
    }
    assert!(shortened > 3, "server-everything has long names");
    let structured = short
        .iter()
        .find(|t| t["originalName"] == "get-structured-content")
        .unwrap();
    let name = structured["name"].as_str().unwrap();
    assert!(name.len() <= 16);
    let called = gw.post_json(
        "/tools/call?profile=short",
        &json!({"name": name, "arguments": {"location": "Chicago"}}),
    );
    assert_eq!(called.status, 200, "{}", called.text());
    assert!(
        called.json()["result"]["structuredContent"]["temperature"].is_number(),
        "{}",
        called.text()
    );
    // Over MCP too: the SDK lists the same short names.
    let url = format!("http://{}/mcp/short", gw.addr());
    let checks = run_interop_script(&gw, "profiles.py", &["list", "streamable", &url, "t"]);
    let over_mcp = names(&by_check(&checks, "tools")["names"]);
    assert_eq!(
        over_mcp,
        short
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    );
}

#[test]
fn check_shows_each_profile_and_overrides_of_missing_tools() {
    let dir = temp_dir("profiles-check");
    let mut config = config();
    config["mapping"]["demo"]["tools"] = json!({"nothere": {"title": "x"}});
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let output = Command::new(gateway_binary())
        .args(["check", "--config", path.to_str().unwrap()])
        .env("HOME", &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("profiles (tokens estimated as definition bytes / 4):"),
        "{stdout}"
    );
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for profile {name}: {stdout}"))
            .to_string()
    };
    assert!(
        line("demo").contains(" 4 tools, ~") && line("demo").contains("(toolExposure all)"),
        "{stdout}"
    );
    assert!(
        line("find").contains("toolExposure search, listed as 3 search tools"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mapping.demo.tools: server demo has no tool named \"nothere\""),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
