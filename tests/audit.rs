//! The audit log end to end (`gateway.auditLog`): the real gateway, demo servers, real calls, the
//! file read back.

mod util;

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use util::{demo, demo_server, gateway_binary, temp_dir, wait_for, Gateway};

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn wait_lines(path: &Path, count: usize) -> Vec<Value> {
    wait_for(
        Duration::from_secs(10),
        &format!("{count} audit lines"),
        || {
            let got = lines(path);
            (got.len() >= count).then_some(got)
        },
    )
}

/// `2026-12-01T12:00:55.123Z`.
fn is_rfc3339_utc(time: &str) -> bool {
    let b = time.as_bytes();
    b.len() == 24
        && time.ends_with('Z')
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|&i| b[i] == b':')
        && b[19] == b'.'
        && time.starts_with("20")
}

#[test]
fn one_line_per_call_with_who_what_and_how_it_ended() {
    // `flaky` works on its first start, then every restart exits with status 3.
    let script = r#"if [ -e "$1" ]; then echo "refusing to start again" >&2; exit 3; fi; : > "$1"; exec "$0""#;
    let gw = Gateway::start(json!({
        "gateway": {"auditLog": "audit.jsonl"},
        "servers": [
            demo("demo", &[]),
            {"name": "flaky", "command": ["/bin/sh", "-c", script, demo_server(), "started-once"],
             "poolSize": 1, "acquireTimeout": 3000},
        ],
        "mapping": {"flaky": {"prefix": "flaky_"}},
    }));
    gw.wait_up();
    let path = gw.dir.join("audit.jsonl");
    let mut session = gw.mcp();
    let ok = session.call_tool("echo", json!({"text": "top-secret-value"}));
    assert_eq!(ok["result"]["content"][0]["text"], "top-secret-value");
    assert_eq!(
        session.call_tool("fail", json!({}))["result"]["isError"],
        true
    );
    assert_eq!(
        session.call_tool("nope", json!({}))["error"]["code"],
        -32602
    );
    assert_eq!(
        session.call_tool("flaky_crash", json!({}))["error"]["code"],
        -32603
    );
    wait_for(Duration::from_secs(20), "flaky down", || {
        let h = gw.server_health("flaky");
        (h["status"] == "down" && h["restarts"].as_u64() >= Some(6) && h["pool"]["starting"] == 0)
            .then_some(())
    });
    let down = session.call_tool("flaky_echo", json!({"text": "anyone?"}));
    assert_eq!(down["error"]["code"], -32000, "{down}");
    assert_eq!(gw.call("echo", json!({"text": "by rest"})).status, 200);

    let got = wait_lines(&path, 6);
    assert_eq!(got.len(), 6, "one line per call: {got:#?}");
    let prefix: String = session.session_id.chars().take(8).collect();
    for line in &got[..5] {
        assert!(is_rfc3339_utc(line["time"].as_str().unwrap()), "{line}");
        assert_eq!(line["client"]["transport"], "streamable_http");
        assert_eq!(line["client"]["name"], "test");
        assert_eq!(line["client"]["version"], "1");
        assert_eq!(line["client"]["session"], prefix.as_str());
        assert_eq!(line["profile"], "default");
        assert_eq!(line["method"], "tools/call");
        assert!(line["durationMs"].as_f64().unwrap() >= 0.0);
        assert!(line.get("arguments").is_none(), "no values: {line}");
    }
    let summary: Vec<(String, String, String, Value, Value)> = got
        .iter()
        .map(|l| {
            (
                l["tool"].as_str().unwrap().to_string(),
                l["server"].as_str().unwrap_or("-").to_string(),
                l["outcome"].as_str().unwrap().to_string(),
                l["errorCode"].clone(),
                l["errorType"].clone(),
            )
        })
        .collect();
    let s = |t: &str, srv: &str, o: &str, code: Value, ty: Value| {
        (t.to_string(), srv.to_string(), o.to_string(), code, ty)
    };
    assert_eq!(
        summary,
        vec![
            s("echo", "demo", "ok", Value::Null, Value::Null),
            s("fail", "demo", "isError", Value::Null, "tool_error".into()),
            s("nope", "-", "error", (-32602).into(), "-32602".into()),
            s(
                "flaky_crash",
                "flaky",
                "error",
                (-32603).into(),
                "bad_gateway".into()
            ),
            s(
                "flaky_echo",
                "flaky",
                "error",
                (-32000).into(),
                "unavailable".into()
            ),
            s("echo", "demo", "ok", Value::Null, Value::Null),
        ]
    );
    let first = &got[0];
    let arguments = r#"{"text":"top-secret-value"}"#;
    assert!(first["requestBytes"].as_u64().unwrap() > arguments.len() as u64);
    let answer_bytes = first["answerBytes"].as_u64().unwrap();
    assert!(answer_bytes > "top-secret-value".len() as u64, "{first}");
    assert!(first["argumentsHash"]
        .as_str()
        .unwrap()
        .starts_with("fnv1a64:"));
    assert_eq!(got[5]["client"]["transport"], "rest");
    assert!(got[5]["client"]["session"].is_null());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("top-secret-value"),
        "argument values stay out"
    );

    let health = gw.health();
    assert_eq!(health["audit"]["written"], 6);
    assert_eq!(health["audit"]["dropped"], 0);
    let page = gw.get("/metrics").text();
    assert!(
        page.contains("\nmcp_gateway_audit_lines_total 6\n"),
        "{page}"
    );
    assert!(
        page.contains("\nmcp_gateway_audit_dropped_total 0\n"),
        "{page}"
    );
}

#[test]
fn argument_values_are_written_only_with_audit_arguments() {
    let gw = Gateway::start(json!({
        "gateway": {"auditLog": "audit.jsonl", "auditArguments": true},
        "servers": [demo("demo", &[])],
    }));
    gw.wait_up();
    let arguments = json!({"text": "kept \"as is\" \u{e9}"});
    assert_eq!(gw.call("echo", arguments.clone()).status, 200);
    let got = wait_lines(&gw.dir.join("audit.jsonl"), 1);
    assert_eq!(got[0]["arguments"], arguments);
    assert!(got[0]["argumentsHash"].is_string());
}

#[test]
fn files_rotate_by_size_keeping_three_old_ones() {
    let gw = Gateway::start(json!({
        "gateway": {"auditLog": "audit.jsonl", "auditLogMaxBytes": 4096, "auditArguments": true},
        "servers": [demo("demo", &[])],
    }));
    gw.wait_up();
    let mut session = gw.mcp();
    for i in 0..80 {
        session.call_tool("echo", json!({"text": format!("call-{i:03}")}));
    }
    let path = gw.dir.join("audit.jsonl");
    wait_for(Duration::from_secs(10), "the 80th line", || {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains("call-079")
            .then_some(())
    });
    let numbers = |name: &str| -> Vec<u32> {
        let file = gw.dir.join(name);
        let size = std::fs::metadata(&file).unwrap().len();
        assert!(size <= 4096, "{name} has {size} bytes");
        lines(&file)
            .iter()
            .map(|l| {
                l["arguments"]["text"].as_str().unwrap()[5..]
                    .parse()
                    .unwrap()
            })
            .collect()
    };
    let files = [
        "audit.jsonl.3",
        "audit.jsonl.2",
        "audit.jsonl.1",
        "audit.jsonl",
    ];
    let all: Vec<u32> = files.iter().flat_map(|f| numbers(f)).collect();
    assert!(!gw.dir.join("audit.jsonl.4").exists());
    // Oldest to newest, no gap, ending with the last call; older lines were dropped.
    assert_eq!(all.last(), Some(&79));
    assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "{all:?}");
    assert!(all[0] > 0, "the oldest file was rotated away");
}

#[test]
fn stderr_is_a_target_and_a_path_that_cannot_work_stops_the_start() {
    let gw = Gateway::start(json!({
        "gateway": {"auditLog": "stderr"},
        "servers": [demo("demo", &[])],
    }));
    gw.wait_up();
    assert_eq!(gw.call("echo", json!({"text": "to stderr"})).status, 200);
    wait_for(Duration::from_secs(10), "an audit line on stderr", || {
        gw.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["method"] == "tools/call" && v["tool"] == "echo")
    });

    let dir = temp_dir("audit-bad");
    let config = dir.join("config.json");
    let body = json!({
        "gateway": {"port": 0, "auditLog": dir.join("missing/dir/audit.jsonl")},
        "servers": [demo("demo", &[])],
    });
    std::fs::write(&config, body.to_string()).unwrap();
    let out = Command::new(gateway_binary())
        .arg("--config")
        .arg(&config)
        .env("XDG_STATE_HOME", dir.join("state"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("gateway.auditLog: cannot open") && stderr.contains("missing/dir"),
        "{stderr}"
    );
    // `check` does not write the audit log: it still checks the servers.
    let out = Command::new(gateway_binary())
        .args(["check", "--config"])
        .arg(&config)
        .env("XDG_STATE_HOME", dir.join("state"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("server demo: up"));
}

#[test]
fn the_official_python_sdk_client_is_audited_over_both_transports() {
    for (transport, path, label) in [
        ("streamable", "/mcp", "streamable_http"),
        ("sse", "/sse", "legacy_sse"),
    ] {
        let gw = Gateway::start(json!({
            "gateway": {"auditLog": "audit.jsonl"},
            "servers": [demo("demo", &[])],
            "mapping": {"demo": {"prefix": "demo_"}},
        }));
        gw.wait_up();
        let url = format!("http://{}{path}", gw.addr());
        util::run_interop_script(&gw, "client.py", &[transport, &url]);
        let path = gw.dir.join("audit.jsonl");
        // Every forwarded call has ended before the script did.
        let calls = gw.health()["servers"][0]["calls"].as_u64().unwrap() as usize;
        let got = wait_lines(&path, calls + 1);
        for line in &got {
            assert_eq!(line["client"]["transport"], label, "{line}");
            assert!(
                line["client"]["name"]
                    .as_str()
                    .is_some_and(|n| !n.is_empty()),
                "{line}"
            );
            assert_eq!(
                line["client"]["session"].as_str().map(str::len),
                Some(8),
                "{line}"
            );
        }
        let has = |method: &str, outcome: &str, field: &str, name: &str| {
            got.iter()
                .any(|l| l["method"] == method && l["outcome"] == outcome && l[field] == name)
        };
        assert!(has("tools/call", "ok", "tool", "demo_echo"), "{got:#?}");
        assert!(
            has("tools/call", "isError", "tool", "demo_fail"),
            "{got:#?}"
        );
        assert!(
            got.iter().any(|l| l["outcome"] == "error"
                && l["errorCode"] == -32602
                && l["server"].is_null()),
            "the unknown tool: {got:#?}"
        );
        assert!(got
            .iter()
            .any(|l| l["method"] == "prompts/get" && l["prompt"].is_string()));
        assert!(got
            .iter()
            .any(|l| l["method"] == "resources/read" && l["uri"].is_string()));
    }
}
