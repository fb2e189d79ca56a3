//! The per-server pool, end to end: bursts never exceed `poolSize`, parked calls are served first
//! come first served, `acquireTimeout` gives 503, surplus idle handles are reaped (their processes
//! exit), warm pools spawn nothing, `minConnections: 0` pools start on demand, children dying
//! mid-call (REST 502, SSE -32603) or between calls are noticed, reaped and replaced, crash loops
//! back off and fail calls fast without hurting other servers, junk stdout is skipped, slow or
//! failing starts are waited for or reported, `callTimeout` gives 504 without poisoning the handle
//! (a late answer never reaches the next call), large answers pass intact up to
//! `maxMessageBytes`, and a server `/health` calls "up" has its tools routable.

mod util;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};
use util::{demo, demo_server, stat, wait_for, Gateway, HttpResponse};

/// A gateway with these servers and this global `pool` section.
fn start(servers: Vec<Value>, pool: Value) -> Gateway {
    Gateway::start(json!({ "servers": servers, "pool": pool }))
}

/// A demo server entry with extra settings merged in (`poolSize`, `idleTimeout`, ...).
fn demo_with(name: &str, flags: &[&str], settings: Value) -> Value {
    let mut server = demo(name, flags);
    for (k, v) in settings.as_object().unwrap() {
        server[k] = v.clone();
    }
    server
}

/// The first text content of a successful REST call.
fn text_of(response: &HttpResponse) -> String {
    assert_eq!(response.status, 200, "call failed: {}", response.text());
    response.json()["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content: {}", response.text()))
        .to_string()
}

/// The pid of the child that served a call of the demo `pid` tool (exposed as `name`).
fn served_by(gw: &Gateway, name: &str) -> u32 {
    let response = gw.call(name, json!({}));
    assert_eq!(response.status, 200, "pid call failed: {}", response.text());
    response.json()["result"]["structuredContent"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no pid: {}", response.text())) as u32
}

fn pool_of(gw: &Gateway, server: &str) -> Value {
    gw.server_health(server)
}

fn n(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

/// Waits until the server's health entry satisfies `check`; returns that entry.
fn wait_health(gw: &Gateway, server: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(Duration::from_secs(10), what, || {
        let health = pool_of(gw, server);
        check(&health).then_some(health)
    })
}

/// Waits until the process is gone from /proc (exited and reaped: no zombie left behind).
fn wait_reaped(pid: u32) {
    wait_for(
        Duration::from_secs(10),
        &format!("pid {pid} to be reaped"),
        || stat(pid).is_none().then_some(()),
    );
}

/// Sends a signal to one of the gateway's children.
fn signal(pid: u32, signal: i32) {
    // SAFETY: plain kill(2).
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// The REST error object of a failed call, after checking the HTTP status.
fn error_of(response: &HttpResponse, status: u16) -> Value {
    assert_eq!(
        response.status,
        status,
        "expected {status}, got: {}",
        response.text()
    );
    response.json()["error"].clone()
}

#[test]
fn a_burst_never_grows_the_pool_beyond_pool_size() {
    // One call at a time per handle, so the burst needs every handle the pool may have.
    let gw = start(
        vec![demo_with(
            "demo",
            &[],
            json!({"poolSize": 3, "maxConcurrency": 1}),
        )],
        json!({}),
    );
    gw.wait_up();
    let (mut max_children, mut max_total, mut max_spawns) = (0usize, 0u64, 0u64);
    let results: Vec<HttpResponse> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..12)
            .map(|_| scope.spawn(|| gw.call("sleep", json!({"ms": 300}))))
            .collect();
        while !calls.iter().all(|c| c.is_finished()) {
            max_children = max_children.max(gw.children().len());
            let health = pool_of(&gw, "demo");
            max_total = max_total.max(n(&health["pool"]["total"]));
            max_spawns = max_spawns.max(n(&health["spawns"]));
            std::thread::sleep(Duration::from_millis(10));
        }
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for response in &results {
        assert_eq!(text_of(response), "slept 300 ms");
    }
    assert!(
        max_children <= 3,
        "{max_children} children during the burst"
    );
    assert!(max_total <= 3, "pool.total reached {max_total}");
    assert!(max_spawns <= 3, "spawns reached {max_spawns}");
    let health = pool_of(&gw, "demo");
    assert_eq!(health["spawns"], 3, "the burst grows the pool to poolSize");
    assert!(gw.children().len() <= 3);
}

#[test]
fn a_burst_on_a_warm_handle_is_carried_by_that_one_process() {
    // The default maxConcurrency (16): twelve concurrent slow calls all run on the one warm
    // process, at once, and nothing is started.
    let gw = start(
        vec![demo_with(
            "demo",
            &[],
            json!({"poolSize": 3, "minConnections": 1}),
        )],
        json!({}),
    );
    gw.wait_up();
    let warm = pool_of(&gw, "demo");
    assert_eq!(warm["spawns"], 1);
    let warm_pids = gw.children();
    assert_eq!(warm_pids.len(), 1);
    let mut most_in_flight = 0;
    let results: Vec<(u32, String)> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..12)
            .map(|_| {
                let gw = &gw;
                scope.spawn(move || {
                    let slow = gw.call("sleep", json!({"ms": 400}));
                    (served_by(gw, "pid"), text_of(&slow))
                })
            })
            .collect();
        while !calls.iter().all(|c| c.is_finished()) {
            let health = pool_of(&gw, "demo");
            if let Some(handles) = health["pool"]["handles"].as_array() {
                for handle in handles {
                    most_in_flight = most_in_flight.max(n(&handle["inFlight"]));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for (pid, text) in &results {
        assert_eq!(text, "slept 400 ms");
        assert_eq!(*pid, warm_pids[0], "served by the warm process");
    }
    assert!(
        most_in_flight >= 6,
        "/health showed at most {most_in_flight} calls in flight on the handle"
    );
    let after = pool_of(&gw, "demo");
    assert_eq!(after["spawns"], 1, "the burst started nothing");
    assert_eq!(gw.children(), warm_pids);
}

#[test]
fn parked_calls_are_served_first_come_first_served() {
    let gw = start(
        vec![demo_with(
            "demo",
            &[],
            json!({"poolSize": 1, "maxConcurrency": 1}),
        )],
        json!({}),
    );
    gw.wait_up();
    let order: Vec<String> = std::thread::scope(|scope| {
        let long = scope.spawn(|| gw.call("sleep", json!({"ms": 800})));
        wait_health(&gw, "demo", "the long call to hold the only handle", |h| {
            h["pool"]["busy"] == 1
        });
        // B, C and D park one after the other: each is issued only once the previous one waits.
        let mut parked = Vec::new();
        for (i, ms) in [150, 160, 170].into_iter().enumerate() {
            let gw = &gw;
            parked.push(scope.spawn(move || {
                let response = gw.call("sleep", json!({"ms": ms}));
                (Instant::now(), text_of(&response))
            }));
            wait_health(gw, "demo", &format!("{} parked calls", i + 1), |h| {
                h["pool"]["waiting"] == i as u64 + 1
            });
        }
        assert_eq!(text_of(&long.join().unwrap()), "slept 800 ms");
        let mut done: Vec<(Instant, String)> =
            parked.into_iter().map(|c| c.join().unwrap()).collect();
        done.sort_by_key(|(at, _)| *at);
        done.into_iter().map(|(_, text)| text).collect()
    });
    assert_eq!(
        order,
        ["slept 150 ms", "slept 160 ms", "slept 170 ms"],
        "completion order must be arrival order B, C, D"
    );
}

#[test]
fn a_call_waiting_longer_than_acquire_timeout_gets_503_while_the_holder_still_runs() {
    let gw = start(
        vec![demo_with(
            "demo",
            &[],
            json!({"poolSize": 1, "maxConcurrency": 1, "acquireTimeout": 300}),
        )],
        json!({}),
    );
    gw.wait_up();
    std::thread::scope(|scope| {
        let holder = scope.spawn(|| gw.call("sleep", json!({"ms": 3000})));
        wait_health(&gw, "demo", "the sleep to hold the only handle", |h| {
            h["pool"]["busy"] == 1
        });
        let refused = gw.call("echo", json!({"text": "too late"}));
        assert!(
            !holder.is_finished(),
            "the 503 must arrive while the 3 s call still runs"
        );
        let error = error_of(&refused, 503);
        assert_eq!(error["code"], -32000);
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("acquireTimeout"), "{message}");
        assert_eq!(text_of(&holder.join().unwrap()), "slept 3000 ms");
    });
    assert_eq!(pool_of(&gw, "demo")["pool"]["waiting"], 0);
}

#[test]
fn surplus_idle_handles_are_closed_after_idle_timeout_and_their_processes_exit() {
    let gw = start(
        vec![demo_with(
            "demo",
            &[],
            json!({"poolSize": 3, "minConnections": 1, "idleTimeout": 300, "maxConcurrency": 1}),
        )],
        json!({}),
    );
    gw.wait_up();
    let burst_pids: Vec<u32> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| gw.call("sleep", json!({"ms": 1000}))))
            .collect();
        wait_health(&gw, "demo", "the burst to grow the pool to 3", |h| {
            h["pool"]["total"] == 3 && h["pool"]["busy"] == 3
        });
        let pids = gw.children();
        for call in calls {
            assert_eq!(text_of(&call.join().unwrap()), "slept 1000 ms");
        }
        pids
    });
    assert_eq!(burst_pids.len(), 3, "three children during the burst");
    let health = wait_health(&gw, "demo", "the pool to shrink back to min", |h| {
        h["pool"]["total"] == 1
    });
    assert_eq!(health["status"], "up");
    let remaining = wait_for(
        Duration::from_secs(10),
        "the surplus children to exit",
        || {
            let children = gw.children();
            (children.len() == 1).then(|| children[0])
        },
    );
    assert!(burst_pids.contains(&remaining));
    for pid in burst_pids.iter().filter(|p| **p != remaining) {
        wait_reaped(*pid);
    }
    assert_eq!(
        served_by(&gw, "pid"),
        remaining,
        "the handle kept is reused"
    );
    let health = pool_of(&gw, "demo");
    assert_eq!(
        health["spawns"], 3,
        "no new child for the call after reaping"
    );
    assert_eq!(health["restarts"], 0, "reaping is not a failure");
}

#[test]
fn a_warm_pool_serves_sequential_and_concurrent_calls_without_spawning() {
    let gw = start(
        vec![demo_with(
            "demo",
            &[],
            json!({"poolSize": 4, "minConnections": 4}),
        )],
        json!({}),
    );
    let warm = wait_health(&gw, "demo", "four warm handles", |h| {
        h["status"] == "up" && h["pool"]["idle"] == 4 && h["pool"]["starting"] == 0
    });
    assert_eq!(warm["spawns"], 4, "warm-up needs exactly minConnections");
    let warm_pids: BTreeSet<u32> = gw.children().into_iter().collect();
    assert_eq!(warm_pids.len(), 4, "{warm_pids:?}");
    let calls_before = n(&warm["calls"]);

    for _ in 0..50 {
        let pid = served_by(&gw, "pid");
        assert!(warm_pids.contains(&pid), "pid {pid} is not a warm handle");
    }
    let concurrent: Vec<u32> = std::thread::scope(|scope| {
        let threads: Vec<_> = [13, 13, 12, 12]
            .into_iter()
            .map(|count| {
                let gw = &gw;
                scope.spawn(move || (0..count).map(|_| served_by(gw, "pid")).collect::<Vec<_>>())
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    assert_eq!(concurrent.len(), 50);
    for pid in &concurrent {
        assert!(warm_pids.contains(pid), "pid {pid} is not a warm handle");
    }
    let after = pool_of(&gw, "demo");
    assert_eq!(after["spawns"], 4, "calls after warm-up spawn nothing");
    assert_eq!(n(&after["calls"]), calls_before + 100);
    assert_eq!(
        gw.children().into_iter().collect::<BTreeSet<u32>>(),
        warm_pids
    );
}

#[test]
fn min_connections_zero_lists_tools_reaps_to_zero_and_starts_on_demand() {
    let gw = start(
        vec![demo_with(
            "demo",
            &[],
            json!({"poolSize": 2, "minConnections": 0, "idleTimeout": 300}),
        )],
        json!({}),
    );
    wait_for(Duration::from_secs(10), "the tools to be listed", || {
        let tools = gw.get("/tools").json();
        tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo")
            .then_some(())
    });
    // Once listed, the handle becomes idle (total 1) and is then reaped (total 0, none starting).
    let health = wait_health(&gw, "demo", "the listing handle to be reaped", |h| {
        n(&h["tools"]) > 0 && h["pool"]["total"] == 0 && h["pool"]["starting"] == 0
    });
    assert_eq!(
        health["status"], "up",
        "an empty pool after work is still up"
    );
    assert_eq!(health["spawns"], 1, "one handle to list the tools");
    assert_eq!(health["restarts"], 0);
    wait_for(Duration::from_secs(10), "the child to exit", || {
        gw.children().is_empty().then_some(())
    });
    assert_eq!(gw.health()["status"], "ok");

    let response = gw.call("echo", json!({"text": "on demand"}));
    assert_eq!(text_of(&response), "on demand");
    assert_eq!(pool_of(&gw, "demo")["spawns"], 2);
}

#[test]
fn a_crash_mid_call_gives_502_reaps_the_child_and_a_replacement_serves_the_next_call() {
    let gw = start(
        vec![demo_with("demo", &[], json!({"poolSize": 1}))],
        json!({}),
    );
    gw.wait_up();
    let crashed = served_by(&gw, "pid");

    let response = gw.call("crash", json!({"code": 7}));
    let error = error_of(&response, 502);
    assert_eq!(error["code"], -32603);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("exited with status 7"), "{message}");
    assert!(message.contains(&crashed.to_string()), "{message}");

    wait_reaped(crashed);
    wait_health(&gw, "demo", "restarts to count the crash", |h| {
        n(&h["restarts"]) >= 1
    });
    let replacement = served_by(&gw, "pid");
    assert_ne!(replacement, crashed);
    assert_eq!(gw.children(), vec![replacement]);
}

#[test]
fn a_crash_mid_call_on_an_sse_session_arrives_on_the_stream_as_internal_error() {
    let gw = start(
        vec![demo_with("demo", &[], json!({"poolSize": 1}))],
        json!({}),
    );
    gw.wait_up();
    let crashed = served_by(&gw, "pid");
    let mut session = gw.sse();
    session.initialize();
    session.send(&json!({
        "jsonrpc": "2.0", "id": "crash-1", "method": "tools/call",
        "params": {"name": "crash", "arguments": {"code": 9}}
    }));
    let answer = session.response_to(&json!("crash-1"), Duration::from_secs(10));
    assert_eq!(answer["id"], "crash-1");
    assert_eq!(answer["error"]["code"], -32603, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("exited with status 9"), "{message}");
    assert!(answer.get("result").is_none());

    wait_reaped(crashed);
    let next = session.request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "still here"}}),
    );
    assert_eq!(next["result"]["content"][0]["text"], "still here");
    assert_ne!(served_by(&gw, "pid"), crashed);
    session.close();
}

#[test]
fn a_child_killed_between_calls_is_noticed_and_replaced_without_any_call() {
    let gw = start(vec![demo("demo", &[])], json!({}));
    gw.wait_up();
    let victim = served_by(&gw, "pid");
    let before = pool_of(&gw, "demo");
    signal(victim, libc::SIGKILL);
    let health = wait_health(&gw, "demo", "the death to be noticed", |h| {
        n(&h["restarts"]) >= 1
    });
    let message = health["lastError"].as_str().unwrap_or_default().to_string();
    assert!(
        message.contains(&format!("(pid {victim}) was killed by signal 9")),
        "lastError says how it ended: {message}"
    );
    let replacement = wait_for(Duration::from_secs(10), "a replacement child", || {
        let health = pool_of(&gw, "demo");
        let children = gw.children();
        (health["pool"]["total"] == 1 && children.len() == 1 && children[0] != victim)
            .then(|| children[0])
    });
    wait_reaped(victim);
    let after = pool_of(&gw, "demo");
    assert_eq!(n(&after["spawns"]), n(&before["spawns"]) + 1);
    assert_eq!(after["calls"], before["calls"], "noticed without any call");
    assert_eq!(after["status"], "up");
    assert_eq!(served_by(&gw, "pid"), replacement);
}

#[test]
fn a_crash_looping_server_backs_off_reports_down_and_leaves_other_servers_working() {
    let gw = Gateway::start(json!({
        "servers": [demo("bad", &["--exit-at-start", "3"]), demo("good", &[])],
        "mapping": {"bad": {"prefix": "bad_"}, "good": {"prefix": "good_"}},
    }));
    wait_health(&gw, "good", "the good server up", |h| h["status"] == "up");
    let started = Instant::now();
    let mut calls = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        let text = text_of(&gw.call("good_echo", json!({"text": format!("ok {calls}")})));
        assert_eq!(text, format!("ok {calls}"));
        calls += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let bad = pool_of(&gw, "bad");
    let spawns = n(&bad["spawns"]);
    assert!(
        (2..=8).contains(&spawns),
        "{spawns} spawns in 2.5 s: the failing server must be retried, with backoff"
    );
    assert_eq!(bad["status"], "down");
    assert_eq!(bad["pool"]["total"], 0);
    let last = bad["lastError"].as_str().unwrap_or_default();
    assert!(last.contains("exited with status 3"), "lastError: {last}");
    let health = gw.health();
    assert_eq!(health["status"], "degraded");
    let good = pool_of(&gw, "good");
    assert_eq!(good["status"], "up");
    assert_eq!(good["restarts"], 0);
    assert_eq!(
        text_of(&gw.call("good_echo", json!({"text": "still fine"}))),
        "still fine"
    );
}

#[test]
fn a_call_to_a_server_stuck_in_a_crash_loop_is_refused_at_once_with_503() {
    // Works on its first start, then every restart exits with status 3 (the marker file exists).
    // The marker is relative: children run in the gateway's own directory, removed with it.
    let script = r#"if [ -e "$1" ]; then echo "refusing to start again" >&2; exit 3; fi; : > "$1"; exec "$0""#;
    let gw = start(
        vec![json!({
            "name": "flaky",
            "command": ["/bin/sh", "-c", script, demo_server(), "started-once"],
            "poolSize": 1,
            "acquireTimeout": 3000,
        })],
        json!({}),
    );
    gw.wait_up();
    assert_eq!(error_of(&gw.call("crash", json!({})), 502)["code"], -32603);
    // Six failures in a row (the crash, then failed restarts): the next attempt is >= 4 s away,
    // later than any new call's acquireTimeout (3 s).
    let down = wait_health(&gw, "flaky", "six failures in a row", |h| {
        n(&h["restarts"]) >= 6 && h["pool"]["starting"] == 0
    });
    assert_eq!(down["status"], "down");
    let asked = Instant::now();
    let response = gw.call("echo", json!({"text": "anyone?"}));
    let waited = asked.elapsed();
    let error = error_of(&response, 503);
    assert_eq!(error["code"], -32000);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("down") && message.contains("exited with status 3"),
        "{message}"
    );
    assert!(
        waited < Duration::from_millis(2000),
        "refused after {waited:?}: it waited out (most of) acquireTimeout instead of failing fast"
    );
}

#[test]
fn junk_lines_on_a_childs_stdout_are_skipped_and_logged() {
    let gw = start(
        vec![demo(
            "demo",
            &["--banner", "hello junk", "--junk-every", "2"],
        )],
        json!({}),
    );
    gw.wait_up();
    for i in 0..10 {
        let text = format!("message {i}");
        assert_eq!(text_of(&gw.call("echo", json!({"text": text}))), text);
    }
    let pid = served_by(&gw, "pid");
    gw.wait_log("hello junk", Duration::from_secs(5));
    // Junk came before every 2nd of the 13 responses (handshake included), not only at start.
    gw.wait_log("junk line 6", Duration::from_secs(5));
    let logs = gw.logs();
    for junk in ["hello junk", "junk line 6"] {
        let line = logs.lines().find(|l| l.contains(junk)).unwrap();
        assert!(
            line.contains("demo") && line.contains(&pid.to_string()),
            "the log line names the server and its pid: {line}"
        );
    }
    let health = pool_of(&gw, "demo");
    assert_eq!(health["restarts"], 0, "junk does not count as a failure");
    assert_eq!(health["spawns"], 1);
}

#[test]
fn a_call_issued_while_a_slow_initialize_runs_waits_for_it() {
    let gw = start(
        vec![demo_with(
            "demo",
            &["--init-delay", "700"],
            json!({"poolSize": 1, "acquireTimeout": 5000}),
        )],
        json!({}),
    );
    gw.wait_up();
    let first = served_by(&gw, "pid");
    signal(first, libc::SIGKILL);
    // The replacement is starting and will take 700 ms to answer initialize.
    wait_health(&gw, "demo", "the death to be noticed", |h| {
        n(&h["restarts"]) >= 1 && h["pool"]["total"] == 0
    });
    let response = gw.call("pid", json!({}));
    assert_eq!(response.status, 200, "{}", response.text());
    let second = n(&response.json()["result"]["structuredContent"]["pid"]) as u32;
    assert_ne!(second, first);
    assert_eq!(pool_of(&gw, "demo")["status"], "up");
}

#[test]
fn a_call_made_right_at_startup_waits_for_a_slow_initialize() {
    let gw = start(
        vec![demo_with(
            "demo",
            &["--init-delay", "700"],
            json!({"poolSize": 1, "acquireTimeout": 5000}),
        )],
        json!({}),
    );
    // The gateway listens at once; the server's initialize takes 700 ms. A client calling now
    // must be served once the server is up (acquireTimeout covers start-up and handshake).
    let health = pool_of(&gw, "demo");
    assert_eq!(health["status"], "starting", "{health}");
    let response = gw.call("echo", json!({"text": "early bird"}));
    assert_eq!(
        response.status,
        200,
        "a call made while the server was starting: {}",
        response.text()
    );
    assert_eq!(text_of(&response), "early bird");
    assert_eq!(pool_of(&gw, "demo")["spawns"], 1);
}

#[test]
fn an_initialize_slower_than_init_timeout_marks_the_server_down() {
    let gw = Gateway::start(json!({
        "servers": [
            demo_with("slow", &["--init-delay", "2000"], json!({"initTimeout": 300})),
            demo("good", &[]),
        ],
        "mapping": {"slow": {"prefix": "slow_"}, "good": {"prefix": "good_"}},
    }));
    let slow = wait_health(&gw, "slow", "the slow server to be down", |h| {
        h["status"] == "down"
    });
    let last = slow["lastError"].as_str().unwrap_or_default();
    assert!(last.contains("initTimeout"), "lastError: {last}");
    wait_health(&gw, "good", "the good server up", |h| h["status"] == "up");
    assert_eq!(
        text_of(&gw.call("good_echo", json!({"text": "fine"}))),
        "fine"
    );
}

#[test]
fn a_server_whose_program_does_not_exist_is_down_and_the_others_work() {
    let gw = Gateway::start(json!({
        "servers": [
            {"name": "ghost", "command": ["/nonexistent/mcp-server-that-is-not-there"]},
            demo("good", &[]),
        ],
        "mapping": {"good": {"prefix": "good_"}},
    }));
    let ghost = wait_health(&gw, "ghost", "the missing program to be reported", |h| {
        h["status"] == "down"
    });
    let last = ghost["lastError"].as_str().unwrap_or_default();
    assert!(
        last.contains("cannot start") && last.contains("/nonexistent/mcp-server-that-is-not-there"),
        "lastError: {last}"
    );
    wait_health(&gw, "good", "the good server up", |h| h["status"] == "up");
    assert_eq!(
        text_of(&gw.call("good_echo", json!({"text": "fine"}))),
        "fine"
    );
    assert_eq!(gw.health()["status"], "degraded");
}

#[test]
fn a_call_timeout_gives_504_and_the_handle_serves_the_next_call_cleanly() {
    let gw = start(
        vec![demo_with(
            "demo",
            &[],
            json!({"poolSize": 1, "callTimeout": 300}),
        )],
        json!({}),
    );
    gw.wait_up();
    let pid = served_by(&gw, "pid");
    let spawns = pool_of(&gw, "demo")["spawns"].clone();

    let asked = Instant::now();
    let response = gw.call("sleep", json!({"ms": 5000}));
    let waited = asked.elapsed();
    let error = error_of(&response, 504);
    assert_eq!(error["code"], -32001);
    assert!(
        waited < Duration::from_millis(4000),
        "the 504 came after {waited:?}, not before the 5 s sleep would have ended"
    );
    let text = text_of(&gw.call("echo", json!({"text": "right after"})));
    assert_eq!(text, "right after", "the cancelled call's answer leaked");
    assert_eq!(served_by(&gw, "pid"), pid, "the same handle is reused");
    let health = pool_of(&gw, "demo");
    assert_eq!(health["spawns"], spawns);
    assert_eq!(health["restarts"], 0);
}

#[test]
fn the_late_answer_of_a_timed_out_call_is_dropped_not_given_to_the_next_call() {
    let gw = start(
        vec![demo_with(
            "demo",
            &[],
            json!({"poolSize": 1, "callTimeout": 1000}),
        )],
        json!({}),
    );
    gw.wait_up();
    let pid = served_by(&gw, "pid");
    let calls = n(&pool_of(&gw, "demo")["calls"]);
    // Frozen, the child cannot answer in time; once thawed it reads the timed-out request before
    // the cancellation that follows it, so it answers it late, while the next call is waiting.
    signal(pid, libc::SIGSTOP);
    let timed_out = gw.call("echo", json!({"text": "late answer"}));
    let next = std::thread::scope(|scope| {
        let next = scope.spawn(|| gw.call("echo", json!({"text": "fresh answer"})));
        wait_for(
            Duration::from_secs(5),
            "the next call on the handle",
            || {
                let health = pool_of(&gw, "demo");
                (health["calls"] == calls + 2 && health["pool"]["busy"] == 1).then_some(())
            },
        );
        signal(pid, libc::SIGCONT);
        next.join().unwrap()
    });
    let error = error_of(&timed_out, 504);
    assert_eq!(error["code"], -32001);
    assert_eq!(
        text_of(&next),
        "fresh answer",
        "the next call got another call's answer"
    );
    gw.wait_log("dropping a late answer", Duration::from_secs(5));
    assert_eq!(served_by(&gw, "pid"), pid, "the same handle is reused");
    assert_eq!(pool_of(&gw, "demo")["spawns"], 1);
}

#[test]
fn a_five_megabyte_result_arrives_intact_over_rest() {
    let gw = start(vec![demo("demo", &[])], json!({}));
    gw.wait_up();
    let response = gw.call("big", json!({"bytes": 5_000_000}));
    let text = text_of(&response);
    assert_eq!(text.len(), 5_000_000);
    assert!(text.is_ascii());
    assert_eq!(text_of(&gw.call("echo", json!({"text": "after"}))), "after");
}

#[test]
fn an_answer_over_max_message_bytes_gives_502_and_the_next_call_works() {
    let gw = Gateway::start(json!({
        "gateway": {"maxMessageBytes": 1_048_576},
        "servers": [demo_with("demo", &[], json!({"poolSize": 1}))],
    }));
    gw.wait_up();
    let error = error_of(&gw.call("big", json!({"bytes": 2_000_000})), 502);
    assert_eq!(error["code"], -32603);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("maxMessageBytes"), "{message}");
    assert_eq!(text_of(&gw.call("echo", json!({"text": "after"}))), "after");
    let fits = text_of(&gw.call("big", json!({"bytes": 500_000})));
    assert_eq!(fits.len(), 500_000);
}

/// Reads pipelined responses from one connection, keeping bytes that belong to the next one
/// (the harness's `read_response` reads one response and drops whatever followed it).
struct Pipelined {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
}

impl Pipelined {
    /// The next response (bodies with Content-Length only), or None if the connection ended first.
    fn next(&mut self) -> Option<(u16, Vec<u8>)> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let status = head.split_whitespace().nth(1)?.parse().ok()?;
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("a Content-Length");
                if self.buf.len() >= end + 4 + length {
                    let body = self.buf[end + 4..end + 4 + length].to_vec();
                    self.buf.drain(..end + 4 + length);
                    return Some((status, body));
                }
            }
            let mut chunk = [0u8; 65536];
            match std::io::Read::read(&mut self.stream, &mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

#[test]
fn once_health_reports_a_server_up_its_tools_are_routable() {
    // Requests pipelined on one connection are handled in order. Back-to-back batches of /health
    // requests with a call at the end keep the gateway busy while the server starts (its init delay
    // makes it come up mid-stream): every health answer that says "up" must count the server's
    // tools, and the call behind an "up" must find its tool.
    let gw = start(vec![demo("demo", &["--init-delay", "300"])], json!({}));
    let mut conn = Pipelined {
        stream: gw.connect(),
        buf: Vec::new(),
    };
    const HEALTHS: usize = 100;
    let call = json!({"name": "pid", "arguments": {}}).to_string();
    let mut batch = format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", gw.addr()).repeat(HEALTHS);
    batch.push_str(&format!(
        "POST /tools/call HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{call}",
        gw.addr(),
        call.len()
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut problems = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "the server never came up");
        conn.stream.write_all(batch.as_bytes()).unwrap();
        let mut up = false;
        for _ in 0..HEALTHS {
            let (_, health) = conn.next().expect("a health answer");
            let health: Value = serde_json::from_slice(&health).unwrap();
            let server = &health["servers"][0];
            up = server["status"] == "up";
            if up && n(&server["tools"]) == 0 && problems.is_empty() {
                problems.push(format!("/health says up but counts no tools: {server}"));
            }
        }
        let (status, body) = conn.next().expect("the call's answer");
        if up && status != 200 {
            problems.push(format!(
                "/health said up, but the call right behind it got {status} {}",
                String::from_utf8_lossy(&body)
            ));
        }
        if up {
            break;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn recycling_by_max_calls_under_steady_load_fails_no_call() {
    let gw = start(
        vec![demo_with(
            "demo",
            &[],
            json!({"poolSize": 2, "minConnections": 1, "maxCalls": 10}),
        )],
        json!({}),
    );
    gw.wait_up();
    let first = served_by(&gw, "pid");
    // Four clients calling steadily: 4 × 25 calls, each answered, over several recycled processes.
    let pids: Vec<u32> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|client| {
                let gw = &gw;
                scope.spawn(move || {
                    (0..25)
                        .map(|n| {
                            let text = format!("c{client} n{n}");
                            let echo = gw.call("echo", json!({"text": text}));
                            assert_eq!(echo.status, 200, "{}", echo.text());
                            assert_eq!(text_of(&echo), text);
                            served_by(gw, "pid")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    let distinct: BTreeSet<u32> = pids.iter().copied().chain([first]).collect();
    let health = pool_of(&gw, "demo");
    let recycled = n(&health["recycles"]["maxCalls"]);
    // 201 calls at 10 per process: about 20 processes, each recycled after its tenth.
    assert!(recycled >= 15, "recycled {recycled} times: {health}");
    assert!(distinct.len() >= 15, "{} processes served", distinct.len());
    assert_eq!(health["restarts"], 0, "a recycle is not a failure");
    let live = gw.children();
    assert!(
        live.len() <= 3,
        "at most poolSize plus one overlapping: {live:?}"
    );
}

#[test]
fn a_process_over_max_rss_bytes_is_recycled() {
    // The demo server holds a few MiB resident; 1 MiB is always exceeded.
    let gw = start(
        vec![demo_with(
            "demo",
            &[],
            json!({"minConnections": 1, "maxRssBytes": 1048576}),
        )],
        json!({}),
    );
    gw.wait_up();
    let first = served_by(&gw, "pid");
    let health = wait_health(&gw, "demo", "a recycle for memory", |h| {
        n(&h["recycles"]["maxRssBytes"]) >= 1
    });
    assert_eq!(health["restarts"], 0);
    wait_reaped(first);
    let next = served_by(&gw, "pid");
    assert_ne!(next, first, "a fresh process serves");
    assert!(gw.logs().contains("over maxRssBytes"), "the log says why");
}

#[test]
fn a_crash_looping_server_says_why_in_its_own_words_and_logs_once_not_per_retry() {
    // What `npx` prints for a package that does not exist, footer last.
    let script = r#"echo "npm error code E404" >&2
echo "npm error 404 Not Found - GET https://registry.npmjs.org/@acme%2fnope - Not found" >&2
echo "npm error A complete log of this run can be found in: /root/.npm/_logs/debug-0.log" >&2
exit 1"#;
    let gw = start(
        vec![
            json!({"name": "broken", "command": ["/bin/sh", "-c", script], "acquireTimeout": 500}),
            demo_with("demo", &[], json!({})),
        ],
        json!({}),
    );
    let down = wait_health(&gw, "broken", "several failed starts", |h| {
        n(&h["restarts"]) >= 4
    });
    let last = down["lastError"].as_str().unwrap_or_default();
    assert!(last.contains("404 Not Found"), "lastError: {last}");
    assert!(!last.contains("complete log"), "lastError: {last}");
    assert!(down["nextRetryMs"].is_u64(), "{down}");
    let warnings = gw
        .logs()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("server broken:"))
        .count();
    assert!(
        warnings <= 2,
        "{warnings} warnings for {} failures: a crash loop is logged once, then once a minute",
        n(&down["restarts"])
    );
    assert_eq!(pool_of(&gw, "demo")["status"], "up");
}
