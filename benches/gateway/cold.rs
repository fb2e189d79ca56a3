//! Cold start: 30 servers configured, their manifests from an earlier run present. How soon after
//! the gateway is started does `tools/list` answer with every server's tools, and how many server
//! processes run by then (none should: `minConnections: 0` servers start on their first call).

use crate::client::McpSession;
use crate::target::{children_of, demo_server, Target, TempDir};
use crate::Row;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const SERVERS: usize = 30;

fn config(state: &std::path::Path) -> Value {
    let servers: Vec<Value> = (0..SERVERS)
        .map(|n| {
            json!({"name": format!("s{n}"), "command": [demo_server(), "--name", format!("demo-{n}")],
                   "minConnections": 0})
        })
        .collect();
    let mapping: serde_json::Map<String, Value> = (0..SERVERS)
        .map(|n| (format!("s{n}"), json!({"prefix": format!("s{n}_")})))
        .collect();
    json!({"gateway": {"stateDir": state}, "servers": servers, "mapping": mapping})
}

/// `runs` cold starts after one warm run that wrote the manifests.
pub fn run(runs: usize) -> Row {
    let state = TempDir::new("bench-cold-state");
    {
        let warm = Target::gateway_with(config(&state.0), "s0_");
        let deadline = Instant::now() + Duration::from_secs(60);
        while tool_count(&warm) < SERVERS && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(tool_count(&warm), SERVERS, "every server listed once");
    } // stopped: its manifests stay
    let mut latencies = Vec::with_capacity(runs);
    let mut most_children = 0;
    let started_all = Instant::now();
    for _ in 0..runs {
        let started = Instant::now();
        let gw = Target::gateway_with(config(&state.0), "s0_");
        let mut session = McpSession::open(&gw.addr(), &gw.mcp_path);
        let listed = session.request("tools/list", json!({}));
        latencies.push(started.elapsed());
        let names = listed["result"]["tools"].as_array().map_or(0, Vec::len);
        assert!(names >= SERVERS, "listed {names} tools at once");
        most_children = most_children.max(children_of(gw.pid()).len());
    }
    let seconds = started_all.elapsed().as_secs_f64();
    let mut row = Row::new(
        &format!("cold start, {SERVERS} servers listed from manifests: start → tools/list"),
        latencies,
        seconds,
    );
    row.processes = Some(most_children as u64);
    row.note = format!(
        "from spawning the gateway to the answer of its first tools/list (every server's tools); \
         at most {most_children} server processes running by then"
    );
    row
}

/// How many servers' `echo` tools the gateway lists (one per server once each is known).
fn tool_count(gw: &Target) -> usize {
    let Ok(tools) = std::panic::catch_unwind(|| gw.health()) else {
        return 0;
    };
    tools["servers"].as_array().map_or(0, |s| {
        s.iter()
            .filter(|s| s["tools"].as_u64().unwrap_or(0) > 0)
            .count()
    })
}
