//! `make bench`: latency, throughput, connection reuse and footprint of the gateway, measured against
//! two baselines in the same run — calling the demo server directly over stdio (the floor) and
//! spawning a fresh server per call (the problem the gateway removes) — plus a burst of sessions on
//! real third-party servers (`real.rs`). `--peers` adds other gateways in front of the same demo
//! server (installed by `make bench-peers`).
//!
//! Flags: `--quick` (small counts, a smoke run), `--peers`, `--only GROUP[,GROUP…]` with groups
//! `baselines`, `gateway`, `single`, `pool`, `cold`, `real`, `peers` (default: all of them).
//!
//! Prints a table and writes `target/bench/results.json`. Figures are for comparison within one run:
//! these machines are noisy, so read ratios, not absolutes. Nothing here asserts a time.

mod client;
mod cold;
mod peers;
mod real;
mod target;

use client::{Direct, Http, McpSession, SseSession};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use target::Target;

/// One scenario's figures.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    name: String,
    calls: usize,
    seconds: f64,
    latencies_us: Vec<f64>,
    spawns_after_warmup: Option<u64>,
    calls_per_child: Option<f64>,
    rss_kib: Option<u64>,
    /// Whose memory `rss_kib` is: "gateway" (its process alone), "tree" (the gateway and all its
    /// descendants) or "peer main process".
    rss_scope: &'static str,
    /// Live server processes under the gateway after the scenario.
    processes: Option<u64>,
    pub(crate) note: String,
}

impl Row {
    fn new(name: &str, mut latencies: Vec<Duration>, seconds: f64) -> Row {
        latencies.sort();
        Row {
            name: name.to_string(),
            calls: latencies.len(),
            seconds,
            latencies_us: latencies.iter().map(|d| d.as_secs_f64() * 1e6).collect(),
            spawns_after_warmup: None,
            calls_per_child: None,
            rss_kib: None,
            rss_scope: "gateway",
            processes: None,
            note: String::new(),
        }
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[index]
    }

    fn throughput(&self) -> f64 {
        self.calls as f64 / self.seconds.max(1e-9)
    }

    fn json(&self) -> Value {
        json!({
            "scenario": self.name,
            "calls": self.calls,
            "seconds": self.seconds,
            "throughput_per_s": self.throughput(),
            "latency_us": {
                "p50": self.percentile(0.50),
                "p90": self.percentile(0.90),
                "p99": self.percentile(0.99),
                "max": self.percentile(1.0),
            },
            "spawns_after_warmup": self.spawns_after_warmup,
            "calls_per_child": self.calls_per_child,
            "rss_kib": self.rss_kib,
            "rss_scope": self.rss_scope,
            "processes_after": self.processes,
            "note": self.note,
        })
    }
}

/// Scale of the run: `--quick` for a smoke run.
struct Scale {
    sequential: usize,
    per_thread: usize,
    spawn_per_call: usize,
    idle_sessions: &'static [usize],
    /// Calls per connection in the real-servers burst (SESSIONS × PER_SERVER per server).
    real_calls: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let with_peers = args.iter().any(|a| a == "--peers");
    let scale = if quick {
        Scale {
            sequential: 300,
            per_thread: 50,
            spawn_per_call: 5,
            idle_sessions: &[200],
            real_calls: 3,
        }
    } else {
        Scale {
            sequential: 5000,
            per_thread: 500,
            spawn_per_call: 40,
            idle_sessions: &[1000, 10000],
            real_calls: 25,
        }
    };
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|at| args.get(at + 1))
        .map(|list| list.split(',').map(str::to_string).collect());
    let wanted = |group: &str| only.as_ref().is_none_or(|o| o.iter().any(|g| g == group));
    raise_fd_limit();
    let mut rows = Vec::new();

    if wanted("baselines") {
        eprintln!("baselines…");
        rows.push(direct_stdio(scale.sequential));
        rows.push(spawn_per_call(scale.spawn_per_call));
    }

    if wanted("gateway") {
        eprintln!("mcp-gateway…");
        gateway_rows(&scale, &mut rows);
    }

    if wanted("single") {
        eprintln!("one demo process, c=16…");
        let gw = Target::gateway(1, 1);
        gw.wait_ready();
        let mut row = measure(
            &gw,
            "gateway Streamable HTTP, c=16, one server process",
            16,
            scale.per_thread,
            streamable_calls,
        );
        row.note = format!(
            "a pool of exactly 1 process: all 16 clients share it; {}",
            row.note
        );
        rows.push(row);
    }

    if wanted("pool") {
        eprintln!("pool burst…");
        rows.push(pool_burst(scale.per_thread.min(20)));
    }

    if wanted("cold") {
        eprintln!("cold start with {} servers' manifests…", cold::SERVERS);
        rows.push(cold::run(if quick { 3 } else { 20 }));
    }

    if wanted("real") {
        eprintln!("{} sessions × real servers…", real::SESSIONS);
        rows.push(real::run(scale.real_calls));
    }

    if with_peers && wanted("peers") {
        eprintln!("peers…");
        rows.extend(peers::run(scale.sequential / 5, scale.per_thread / 5));
    }

    print_table(&rows);
    print_ratios(&rows);
    let target = c16_target(&rows);
    print_c16_target(&target);
    write_json(&rows, quick, &target);
}

/// The gateway with a pool of 8 demo processes: every transport, c=1 to c=64, idle sessions.
fn gateway_rows(scale: &Scale, rows: &mut Vec<Row>) {
    let gw = Target::gateway(8, 8);
    gw.wait_ready();
    let idle_rss = gw.rss_kib();
    rows.push(measure(
        &gw,
        "gateway GET /tools (answered by the reactor), c=1",
        1,
        scale.sequential,
        list_calls,
    ));
    rows.push(measure(
        &gw,
        "gateway REST keep-alive, c=1",
        1,
        scale.sequential,
        rest_calls,
    ));
    rows.push(measure(
        &gw,
        "gateway REST keep-alive, c=8",
        8,
        scale.per_thread * 2,
        rest_calls,
    ));
    rows.push(measure(
        &gw,
        "gateway REST keep-alive, c=64",
        64,
        scale.per_thread / 2,
        rest_calls,
    ));
    rows.push(measure(
        &gw,
        "gateway legacy SSE session, c=1",
        1,
        scale.sequential,
        sse_calls,
    ));
    rows.push(measure(
        &gw,
        "gateway Streamable HTTP, c=1",
        1,
        scale.sequential,
        streamable_calls,
    ));
    rows.push(measure(
        &gw,
        "gateway Streamable HTTP, c=8",
        8,
        scale.per_thread * 2,
        streamable_calls,
    ));
    rows.push(measure(
        &gw,
        "gateway Streamable HTTP, c=16",
        16,
        scale.per_thread,
        streamable_calls,
    ));
    for &sessions in scale.idle_sessions {
        rows.push(idle_sessions(&gw, sessions, scale.sequential / 5));
    }
    let mut idle = Row::new("gateway idle (after warm-up)", Vec::new(), 0.0);
    idle.rss_kib = Some(idle_rss);
    idle.note = "RSS of the gateway process alone, servers excluded".into();
    rows.push(idle);
}

/// Runs `threads` clients doing `per_thread` calls each with `work`; samples RSS meanwhile.
pub(crate) fn measure(
    target: &Target,
    name: &str,
    threads: usize,
    per_thread: usize,
    work: fn(&Target, usize) -> Vec<Duration>,
) -> Row {
    let spawns_before = target.spawns();
    let calls_before = target.calls();
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, peak, pid) = (sampling.clone(), peak.clone(), target.pid());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(target::rss_of(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| work(target, per_thread)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let mut row = Row::new(name, latencies, seconds);
    row.rss_kib = Some(peak.load(Ordering::Relaxed));
    if let (Some(before), Some(after)) = (spawns_before, target.spawns()) {
        row.spawns_after_warmup = Some(after - before);
    }
    if let (Some(spawns), Some(calls)) = (target.spawns(), target.calls()) {
        let served = calls - calls_before.unwrap_or(0);
        row.calls_per_child = Some(calls as f64 / spawns.max(1) as f64);
        row.note = format!("{served} calls served by {spawns} children started in all");
    }
    eprintln!("  {name}: p50 {:.0} µs", row.percentile(0.5));
    row
}

fn echo_args(target: &Target, n: usize) -> Value {
    json!({"name": format!("{}echo", target.tool_prefix), "arguments": {"text": format!("call {n}")}})
}

fn rest_calls(target: &Target, calls: usize) -> Vec<Duration> {
    let mut http = Http::connect(&target.addr());
    (0..calls)
        .map(|n| {
            let started = Instant::now();
            let response = http.post_json("/tools/call", &[], &echo_args(target, n));
            let took = started.elapsed();
            assert_eq!(
                response.status,
                200,
                "{}",
                String::from_utf8_lossy(&response.body)
            );
            took
        })
        .collect()
}

/// The HTTP floor of the gateway: a request the reactor answers itself, no server involved.
fn list_calls(target: &Target, calls: usize) -> Vec<Duration> {
    let mut http = Http::connect(&target.addr());
    (0..calls)
        .map(|_| {
            let started = Instant::now();
            let response = http.request("GET", "/tools", &[], b"");
            let took = started.elapsed();
            assert_eq!(response.status, 200);
            took
        })
        .collect()
}

pub(crate) fn sse_calls(target: &Target, calls: usize) -> Vec<Duration> {
    let mut session = SseSession::open(&target.addr(), &target.sse_path);
    session.initialize();
    timed_calls(calls, |n| {
        session.request("tools/call", echo_args(target, n))
    })
}

pub(crate) fn streamable_calls(target: &Target, calls: usize) -> Vec<Duration> {
    let mut session = McpSession::open(&target.addr(), &target.mcp_path);
    timed_calls(calls, |n| {
        session.request("tools/call", echo_args(target, n))
    })
}

fn timed_calls(calls: usize, mut call: impl FnMut(usize) -> Value) -> Vec<Duration> {
    (0..calls)
        .map(|n| {
            let started = Instant::now();
            let answer = call(n);
            let took = started.elapsed();
            assert_eq!(
                answer["result"]["content"][0]["text"],
                format!("call {n}"),
                "unexpected answer {answer}"
            );
            took
        })
        .collect()
}

/// The floor: the demo server spoken to directly over stdio.
fn direct_stdio(calls: usize) -> Row {
    let mut server = Direct::spawn(&[target::demo_server()]);
    let started = Instant::now();
    let latencies = (0..calls)
        .map(|n| {
            let started = Instant::now();
            let answer = server.request(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": format!("call {n}")}}),
            );
            let took = started.elapsed();
            assert!(answer.get("result").is_some());
            took
        })
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    server.close();
    let mut row = Row::new(
        "baseline: demo server direct over stdio, c=1",
        latencies,
        seconds,
    );
    row.note = "the floor: what the gateway adds is the difference".into();
    row
}

/// The problem: a fresh server process (spawn + initialize) for every call.
fn spawn_per_call(calls: usize) -> Row {
    let started = Instant::now();
    let latencies = (0..calls)
        .map(|n| {
            let started = Instant::now();
            let mut server = Direct::spawn(&[target::demo_server()]);
            server.request(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": format!("call {n}")}}),
            );
            server.close();
            started.elapsed()
        })
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    let mut row = Row::new("baseline: spawn a server per call, c=1", latencies, seconds);
    row.spawns_after_warmup = Some(calls as u64);
    row.calls_per_child = Some(1.0);
    row.note = "a compiled Rust server; node/python servers start 10-100x slower".into();
    row
}

/// `sessions` idle SSE sessions held open: memory per session, and calls on another session.
fn idle_sessions(gw: &Target, sessions: usize, calls: usize) -> Row {
    let before = gw.rss_kib();
    let mut streams = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let mut http = Http::connect(&gw.addr());
        let head = http.open_stream("/sse", &[]);
        assert_eq!(head.status, 200);
        streams.push(http);
    }
    // Let the reactor settle, then read the footprint with every session open.
    let health = wait_sessions(gw, sessions);
    let with_sessions = gw.rss_kib();
    let per_session = (with_sessions.saturating_sub(before)) as f64 * 1024.0 / sessions as f64;
    let mut row = measure(
        gw,
        &format!("gateway Streamable HTTP, c=1, with {sessions} idle SSE sessions"),
        1,
        calls,
        streamable_calls,
    );
    row.rss_kib = Some(with_sessions);
    row.note = format!(
        "{sessions} sessions open ({health} counted by /health): RSS {before} → {with_sessions} KiB, {per_session:.0} bytes per session"
    );
    drop(streams);
    row
}

fn wait_sessions(gw: &Target, sessions: usize) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = gw.health()["sessions"].as_u64().unwrap_or(0);
        if open >= sessions as u64 || Instant::now() > deadline {
            return open;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A pool of 4 under a burst of 64 concurrent calls that each hold a server for 20 ms.
fn pool_burst(per_thread: usize) -> Row {
    let gw = Target::gateway(4, 4);
    gw.wait_ready();
    let mut row = measure(
        &gw,
        "gateway pool of 4, burst of 64 clients × sleep 20 ms",
        64,
        per_thread.max(2),
        |target, calls| {
            let mut http = Http::connect(&target.addr());
            (0..calls)
                .map(|_| {
                    let started = Instant::now();
                    let response = http.post_json(
                        "/tools/call",
                        &[],
                        &json!({"name": "demo_sleep", "arguments": {"ms": 20}}),
                    );
                    assert_eq!(
                        response.status,
                        200,
                        "{}",
                        String::from_utf8_lossy(&response.body)
                    );
                    started.elapsed()
                })
                .collect()
        },
    );
    let ideal = row.calls as f64 * 0.020 / 4.0;
    row.note = format!(
        "{}; queueing: {:.2} s for {} calls, ideal {ideal:.2} s (4 servers × 20 ms)",
        row.note, row.seconds, row.calls
    );
    row
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<66} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>6}",
        "scenario",
        "calls",
        "calls/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "max µs",
        "spawns",
        "per child",
        "RSS KiB",
        "procs"
    );
    for row in rows {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        println!(
            "{:<66} {:>7} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>7} {:>9} {:>9} {:>6}",
            row.name,
            row.calls,
            row.throughput(),
            row.percentile(0.50),
            row.percentile(0.90),
            row.percentile(0.99),
            row.percentile(1.0),
            opt(row.spawns_after_warmup.map(|s| s.to_string())),
            opt(row.calls_per_child.map(|c| format!("{c:.0}"))),
            opt(row.rss_kib.map(|r| match row.rss_scope {
                "tree" => format!("{r}*"),
                _ => r.to_string(),
            })),
            opt(row.processes.map(|p| p.to_string())),
        );
        if !row.note.is_empty() {
            println!("    {}", row.note);
        }
    }
    if rows.iter().any(|r| r.rss_scope == "tree") {
        println!(
            "\n* RSS of the whole tree: the gateway and every descendant (its servers included)"
        );
    }
    if let (Some(floor), Some(gw)) = (
        rows.iter()
            .find(|r| r.name.starts_with("baseline: demo server direct")),
        rows.iter()
            .find(|r| r.name == "gateway REST keep-alive, c=1"),
    ) {
        println!(
            "\ngateway overhead over a direct stdio call at c=1: p50 {:.0} µs, p99 {:.0} µs",
            gw.percentile(0.5) - floor.percentile(0.5),
            gw.percentile(0.99) - floor.percentile(0.99)
        );
    }
}

/// Each peer scenario against ours with the same transport and concurrency, as ratios.
fn print_ratios(rows: &[Row]) {
    let floor = rows
        .iter()
        .find(|r| r.name.starts_with("baseline: demo server direct"))
        .map(|r| r.percentile(0.5))
        .unwrap_or(0.0);
    let ours = |name: &str| rows.iter().find(|r| r.name == name);
    let pairs = [
        (
            "supergateway legacy SSE, c=1",
            "gateway legacy SSE session, c=1",
        ),
        (
            "supergateway Streamable HTTP, c=1",
            "gateway Streamable HTTP, c=1",
        ),
        (
            "supergateway Streamable HTTP, c=8",
            "gateway Streamable HTTP, c=8",
        ),
        (
            "supergateway Streamable HTTP, c=16",
            "gateway Streamable HTTP, c=16",
        ),
        (
            "FastMCP proxy Streamable HTTP, c=1",
            "gateway Streamable HTTP, c=1",
        ),
        (
            "FastMCP proxy Streamable HTTP, c=8",
            "gateway Streamable HTTP, c=8",
        ),
        (
            "FastMCP proxy Streamable HTTP, c=16",
            "gateway Streamable HTTP, c=16",
        ),
        (
            "mcp-proxy (Rust) Streamable HTTP, c=1",
            "gateway Streamable HTTP, c=1",
        ),
        (
            "mcp-proxy (Rust) Streamable HTTP, c=8",
            "gateway Streamable HTTP, c=8",
        ),
        (
            "mcp-proxy (Rust) Streamable HTTP, c=16",
            "gateway Streamable HTTP, c=16",
        ),
    ];
    let mut header = false;
    for (peer, mine) in pairs {
        let (Some(p), Some(m)) = (ours(peer), ours(mine)) else {
            continue;
        };
        if !header {
            println!(
                "\npeer / mcp-gateway, same run (overhead = p50 minus the direct-stdio floor):"
            );
            header = true;
        }
        let overhead = |r: &Row| (r.percentile(0.5) - floor).max(1.0);
        println!(
            "  {peer:<38} p50 overhead {:>6.1}x   p99 {:>6.1}x   throughput {:>6.2}x   RSS {:>6.1}x",
            overhead(p) / overhead(m),
            p.percentile(0.99) / m.percentile(0.99).max(1.0),
            p.throughput() / m.throughput().max(1e-9),
            p.rss_kib.unwrap_or(0) as f64 / m.rss_kib.unwrap_or(1).max(1) as f64,
        );
    }
}

/// The target at c=16: at least 2× lower p50 and 2× the throughput of the best peer
/// (lowest p50, highest throughput, each taken over the peers' c=16 rows). Plain p50 here, not
/// overhead: at c=16 the queueing is the figure.
fn c16_target(rows: &[Row]) -> Value {
    let peers: Vec<&Row> = rows
        .iter()
        .filter(|r| r.rss_scope == "peer main process" && r.name.ends_with(", c=16"))
        .collect();
    let (Some(best_p50), Some(best_throughput)) = (
        peers
            .iter()
            .min_by(|a, b| a.percentile(0.5).total_cmp(&b.percentile(0.5))),
        peers
            .iter()
            .max_by(|a, b| a.throughput().total_cmp(&b.throughput())),
    ) else {
        return Value::Null;
    };
    let verdicts: Vec<Value> = rows
        .iter()
        .filter(|r| r.name.starts_with("gateway Streamable HTTP, c=16"))
        .map(|ours| {
            let p50_ratio = best_p50.percentile(0.5) / ours.percentile(0.5).max(1.0);
            let throughput_ratio = ours.throughput() / best_throughput.throughput().max(1e-9);
            json!({
                "ours": ours.name,
                "best_peer_p50": best_p50.name,
                "p50_lower_by": p50_ratio,
                "best_peer_throughput": best_throughput.name,
                "throughput_higher_by": throughput_ratio,
                "met": p50_ratio >= 2.0 && throughput_ratio >= 2.0,
            })
        })
        .collect();
    Value::Array(verdicts)
}

fn print_c16_target(target: &Value) {
    let Some(verdicts) = target.as_array() else {
        return;
    };
    println!("\ntarget at c=16: >= 2x lower p50 and >= 2x throughput than the best peer:");
    for v in verdicts {
        println!(
            "  {:<52} p50 {:>5.1}x lower than {}; throughput {:>5.2}x {}: {}",
            v["ours"].as_str().unwrap_or(""),
            v["p50_lower_by"].as_f64().unwrap_or(0.0),
            v["best_peer_p50"].as_str().unwrap_or(""),
            v["throughput_higher_by"].as_f64().unwrap_or(0.0),
            v["best_peer_throughput"].as_str().unwrap_or(""),
            if v["met"] == true { "met" } else { "NOT met" },
        );
    }
}

fn write_json(rows: &[Row], quick: bool, c16_target: &Value) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    let path = dir.join("results.json");
    let report = json!({
        "quick": quick,
        "machine": target::machine(),
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
        "c16_target": c16_target,
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&report).unwrap()).expect("write results");
    println!("\nresults: {}", path.display());
}

/// Many connections need many fds.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
