//! `make bench`: latency, throughput, connection reuse and footprint of the gateway, measured against
//! two baselines in the same run — calling the demo server directly over stdio (the floor) and
//! spawning a fresh server per call (the problem the gateway removes). `--peers` adds other
//! gateways in front of the same demo server (installed by `make bench-peers`).
//!
//! Prints a table and writes `target/bench/results.json`. Figures are for comparison within one run:
//! these machines are noisy, so read ratios, not absolutes. Nothing here asserts a time.

mod client;
mod peers;
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
        }
    } else {
        Scale {
            sequential: 5000,
            per_thread: 500,
            spawn_per_call: 40,
            idle_sessions: &[1000, 10000],
        }
    };
    raise_fd_limit();
    let mut rows = Vec::new();

    eprintln!("baselines…");
    rows.push(direct_stdio(scale.sequential));
    rows.push(spawn_per_call(scale.spawn_per_call));

    eprintln!("mcp-gateway…");
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
    for &sessions in scale.idle_sessions {
        rows.push(idle_sessions(&gw, sessions, scale.sequential / 5));
    }
    let mut idle = Row::new("gateway idle (after warm-up)", Vec::new(), 0.0);
    idle.rss_kib = Some(idle_rss);
    idle.note = "RSS of the gateway process alone, servers excluded".into();
    rows.push(idle);
    drop(gw);

    eprintln!("pool burst…");
    rows.push(pool_burst(scale.per_thread.min(20)));

    if with_peers {
        eprintln!("peers…");
        rows.extend(peers::run(scale.sequential / 5, scale.per_thread / 5));
    }

    print_table(&rows);
    print_ratios(&rows);
    write_json(&rows, quick);
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
        "{:<66} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9}",
        "scenario",
        "calls",
        "calls/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "max µs",
        "spawns",
        "per child",
        "RSS KiB"
    );
    for row in rows {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        println!(
            "{:<66} {:>7} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>7} {:>9} {:>9}",
            row.name,
            row.calls,
            row.throughput(),
            row.percentile(0.50),
            row.percentile(0.90),
            row.percentile(0.99),
            row.percentile(1.0),
            opt(row.spawns_after_warmup.map(|s| s.to_string())),
            opt(row.calls_per_child.map(|c| format!("{c:.0}"))),
            opt(row.rss_kib.map(|r| r.to_string())),
        );
        if !row.note.is_empty() {
            println!("    {}", row.note);
        }
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
            "FastMCP proxy Streamable HTTP, c=1",
            "gateway Streamable HTTP, c=1",
        ),
        (
            "FastMCP proxy Streamable HTTP, c=8",
            "gateway Streamable HTTP, c=8",
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

fn write_json(rows: &[Row], quick: bool) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    let path = dir.join("results.json");
    let report = json!({
        "quick": quick,
        "machine": target::machine(),
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
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
