//! `GET /metrics` end to end: the real gateway and demo server, the page parsed by the official
//! Prometheus Python client (`prometheus_client`, installed by `make interop-deps`).

mod util;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use util::{demo, run_interop_script, wait_for, Gateway, DEMO_TOOLS};

const HISTOGRAM: &str = "mcp_server_operation_duration_seconds";

/// One parsed sample.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Value,
    value: f64,
}

/// The page as the Prometheus client read it.
struct Scrape {
    content_type: String,
    samples: Vec<Sample>,
}

impl Scrape {
    fn of(gw: &Gateway) -> Scrape {
        let url = format!("http://{}/metrics", gw.addr());
        let mut args = vec![url.as_str()];
        if let Some(token) = &gw.auth_token {
            args.push(token);
        }
        let mut lines = run_interop_script(gw, "metrics_scrape.py", &args).into_iter();
        let head = lines.next().expect("the content type line");
        Scrape {
            content_type: head["contentType"].as_str().unwrap_or_default().to_string(),
            samples: lines
                .map(|l| Sample {
                    name: l["name"].as_str().unwrap().to_string(),
                    labels: l["labels"].clone(),
                    value: l["value"].as_f64().unwrap(),
                })
                .collect(),
        }
    }

    /// Samples named `name` whose labels include every one of `labels`.
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels[*k] == *v))
            .collect()
    }

    /// The one sample named `name` with exactly these labels (besides none others); 0 if absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self
            .find(name, labels)
            .into_iter()
            .filter(|s| s.labels.as_object().unwrap().len() == labels.len())
            .collect();
        assert!(found.len() <= 1, "several {name} {labels:?}: {found:?}");
        found.first().map_or(0.0, |s| s.value)
    }

    /// The histogram's count for one series.
    fn calls(&self, tool: &str, error: &str, server: &str) -> f64 {
        self.value(&format!("{HISTOGRAM}_count"), &series(tool, error, server))
    }
}

fn series<'a>(tool: &'a str, error: &'a str, server: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("mcp_method_name", "tools/call"),
        ("gen_ai_tool_name", tool),
        ("error_type", error),
        ("server", server),
    ]
}

#[test]
fn the_histogram_counts_calls_by_tool_error_type_and_server() {
    let gw = Gateway::start(json!({"servers": [demo("demo", &[])]}));
    gw.wait_up();
    let before = Scrape::of(&gw);
    assert_eq!(
        before.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(before.calls("echo", "", "demo"), 0.0);

    let mut session = gw.mcp();
    for i in 0..3 {
        let answer = session.call_tool("echo", json!({"text": format!("hi {i}")}));
        assert_eq!(answer["result"]["content"][0]["text"], format!("hi {i}"));
    }
    let failed = session.call_tool("fail", json!({}));
    assert_eq!(failed["result"]["isError"], true);
    let unknown = session.call_tool("no_such_tool", json!({}));
    assert_eq!(unknown["error"]["code"], -32602);
    assert_eq!(gw.call("echo", json!({"text": "rest"})).status, 200);
    let mut legacy = gw.sse();
    legacy.initialize();

    let after = Scrape::of(&gw);
    assert_eq!(after.calls("echo", "", "demo"), 4.0, "3 MCP + 1 REST");
    assert_eq!(after.calls("fail", "tool_error", "demo"), 1.0);
    assert_eq!(
        after.calls("other", "-32602", ""),
        1.0,
        "unknown: no server"
    );
    // The buckets are cumulative and end with every call.
    let buckets: Vec<f64> = after
        .find(&format!("{HISTOGRAM}_bucket"), &series("echo", "", "demo"))
        .iter()
        .map(|s| s.value)
        .collect();
    assert_eq!(buckets.len(), 17);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(buckets.last(), Some(&4.0));
    let inf = series("echo", "", "demo")
        .into_iter()
        .chain([("le", "+Inf")])
        .collect::<Vec<_>>();
    assert_eq!(after.value(&format!("{HISTOGRAM}_bucket"), &inf), 4.0);
    assert!(after.value(&format!("{HISTOGRAM}_sum"), &series("echo", "", "demo")) >= 0.0);

    let errors = "mcp_gateway_call_errors_total";
    let demo_tool_errors = [("server", "demo"), ("error_type", "tool_error")];
    assert_eq!(after.value(errors, &demo_tool_errors), 1.0);
    assert_eq!(
        after.value(errors, &[("server", ""), ("error_type", "-32602")]),
        1.0
    );
    // The pools' own counters, the same numbers /health shows.
    let health = gw.server_health("demo");
    let server = [("server", "demo")];
    assert_eq!(
        after.value("mcp_gateway_calls_total", &server),
        health["calls"].as_f64().unwrap()
    );
    assert!(after.value("mcp_gateway_calls_total", &server) >= 5.0);
    assert_eq!(
        after.value("mcp_gateway_spawns_total", &server),
        health["spawns"].as_f64().unwrap()
    );
    assert_eq!(after.value("mcp_gateway_restarts_total", &server), 0.0);
    let handles: f64 = after
        .find("mcp_gateway_handles", &server)
        .iter()
        .map(|s| s.value)
        .sum();
    assert_eq!(handles, health["pool"]["total"].as_f64().unwrap());
    assert_eq!(
        after.value(
            "mcp_gateway_server_up",
            &[("server", "demo"), ("status", "up")]
        ),
        1.0
    );
    assert_eq!(
        after.value(
            "mcp_gateway_sessions",
            &[("transport", "streamable_http"), ("era", "2025-11-25")]
        ),
        1.0
    );
    assert_eq!(
        after.value(
            "mcp_gateway_sessions",
            &[("transport", "legacy_sse"), ("era", "2025-11-25")]
        ),
        1.0
    );
    assert_eq!(
        before.value(
            "mcp_gateway_sessions",
            &[("transport", "legacy_sse"), ("era", "2025-11-25")]
        ),
        0.0
    );
    let listen = [("transport", "listen"), ("era", "2026-07-28")];
    assert!(
        !after.find("mcp_gateway_sessions", &listen).is_empty(),
        "the stateless era's listen streams have their series"
    );
    assert_eq!(after.value("mcp_gateway_sessions", &listen), 0.0);
    assert_eq!(
        after.value("mcp_gateway_reloads_total", &[("result", "applied")]),
        0.0
    );
    assert_eq!(after.value("mcp_gateway_calls_in_flight", &[]), 0.0);
    assert_eq!(after.value("mcp_gateway_jobs_waiting", &server), 0.0);
    // RSS is measured once a second: it shows up, and is the process's.
    wait_for(Duration::from_secs(5), "the demo's RSS in /metrics", || {
        let rss = Scrape::of(&gw).value("mcp_gateway_server_rss_bytes", &server);
        (rss > 0.0).then_some(())
    });
}

#[test]
fn labels_stay_bounded_under_calls_to_a_thousand_unknown_tools() {
    let gw = Gateway::start(json!({"servers": [demo("demo", &[])]}));
    gw.wait_up();
    let mut session = gw.mcp();
    for i in 0..1000 {
        let answer = session.call_tool(&format!("made_up_{i}"), json!({}));
        assert_eq!(answer["error"]["code"], -32602);
    }
    session.call_tool("echo", json!({"text": "known"}));
    let scrape = Scrape::of(&gw);
    assert_eq!(scrape.calls("other", "-32602", ""), 1000.0);
    let tools: BTreeSet<String> = scrape
        .samples
        .iter()
        .filter(|s| s.name.starts_with(HISTOGRAM))
        .map(|s| s.labels["gen_ai_tool_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tools,
        BTreeSet::from(["echo".to_string(), "other".to_string()]),
        "only routed names and `other` are labels"
    );
    assert!(tools
        .iter()
        .all(|t| t == "other" || DEMO_TOOLS.contains(&t.as_str())));
    let series = scrape.find(&format!("{HISTOGRAM}_count"), &[]).len();
    assert_eq!(series, 2, "one series for the unknown names, one for echo");
}

#[test]
fn metrics_need_the_token_when_one_is_set_and_health_stays_open() {
    let gw = Gateway::start(json!({
        "gateway": {"authToken": "metrics-token"},
        "servers": [demo("demo", &[])],
    }));
    gw.wait_up();
    let bare = gw.get("/metrics");
    assert_eq!(bare.status, 401, "{}", bare.text());
    assert!(bare.header("www-authenticate").is_some());
    let wrong = gw.request(
        "GET",
        "/metrics",
        &[("Authorization", "Bearer not-it")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(gw.get("/health").status, 200, "/health needs no token");
    let scrape = Scrape::of(&gw); // with the token
    assert!(scrape.content_type.starts_with("text/plain; version=0.0.4"));
    assert!(!scrape.find("mcp_gateway_build_info", &[]).is_empty());
}
