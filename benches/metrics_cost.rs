//! What metering and auditing calls cost (not part of `make bench`; run by hand):
//!
//! ```text
//! cargo bench --bench metrics_cost                         # the in-process figures only
//! cargo bench --bench metrics_cost -- --gateway BIN --demo BIN \
//!     [--base-gateway BIN --base-demo BIN] [--calls N] [--rounds R]
//! ```
//!
//! In process: the per-call work the gateway added (classifying an answer on its carrier,
//! labelling and recording it on the reactor), and rendering `/metrics` for a few hundred series.
//! End to end: keep-alive `POST /tools/call` of the demo's `echo` from 4 client threads against a
//! release gateway (its demo offering 100 more tools, each called once first, so that `/metrics` has
//! 100+ series), as is, with `/metrics` scraped every 100 ms, and with the audit log on; with
//! `--base-…`, the same load against a build without metrics first, rounds interleaved. Prints
//! figures; asserts nothing. Read ratios within one run: these machines are noisy.

use mcp_gateway::metrics::{classify, CallMetrics, Ended, ErrorType, Exposition, Method};
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    in_process();
    let (Some(gateway), Some(demo)) = (flag("--gateway"), flag("--demo")) else {
        return;
    };
    let calls: usize = flag("--calls")
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let rounds: usize = flag("--rounds").and_then(|n| n.parse().ok()).unwrap_or(3);
    let base = flag("--base-gateway").zip(flag("--base-demo"));
    let mut variants: Vec<(&str, String, String, Variant)> = Vec::new();
    if let Some((g, d)) = &base {
        variants.push(("base (no metrics)", g.clone(), d.clone(), Variant::Plain));
    }
    variants.push(("metrics", gateway.clone(), demo.clone(), Variant::Plain));
    variants.push((
        "metrics + scrape/100ms",
        gateway.clone(),
        demo.clone(),
        Variant::Scrape,
    ));
    variants.push((
        "metrics + audit log",
        gateway.clone(),
        demo.clone(),
        Variant::Audit,
    ));
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for (i, (name, g, d, variant)) in variants.iter().enumerate() {
            let run = end_to_end(g, d, *variant, calls);
            eprintln!(
                "round {round} {name:<24} {:>8.0} calls/s  p50 {:>6.1} µs  p99 {:>7.1} µs  gateway CPU {:>5.1} µs/call  scrapes {}",
                run.throughput, run.p50_us, run.p99_us, run.cpu_us_per_call, run.scrapes
            );
            results[i].push(run);
        }
    }
    println!("\nmedian of {rounds} rounds, {calls} calls each, 4 client threads:");
    let first = median(&results[0], |r| r.throughput);
    let first_cpu = median(&results[0], |r| r.cpu_us_per_call);
    for (i, (name, ..)) in variants.iter().enumerate() {
        let throughput = median(&results[i], |r| r.throughput);
        let cpu = median(&results[i], |r| r.cpu_us_per_call);
        println!(
            "{name:<24} {throughput:>8.0} calls/s ({:.3}×)  p50 {:>6.1} µs  p99 {:>7.1} µs  gateway CPU {cpu:>5.1} µs/call ({:.3}×)",
            throughput / first,
            median(&results[i], |r| r.p50_us),
            median(&results[i], |r| r.p99_us),
            cpu / first_cpu,
        );
    }
    println!("(× = against the first row)");
}

fn median(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn per_op(what: &str, n: u64, started: Instant) {
    let ns = started.elapsed().as_nanos() as f64 / n as f64;
    println!("{what:<58} {ns:>9.1} ns");
}

fn in_process() {
    println!("in process (per operation):");
    let result = r#"{"content":[{"type":"text","text":"hello, a typical short tool answer"}],"structuredContent":{"ok":true}}"#;
    let big = format!(
        r#"{{"content":[{{"type":"image","mimeType":"image/png","data":"{}"}}]}}"#,
        "A".repeat(1 << 20)
    );
    let n = 2_000_000;
    let t = Instant::now();
    for _ in 0..n {
        black_box(classify(Ok(black_box(result))));
    }
    per_op("classify a short result (carrier)", n, t);
    let t = Instant::now();
    for _ in 0..100 {
        black_box(classify(Ok(black_box(&big))));
    }
    per_op("classify a 1 MiB result (carrier)", 100, t);
    let error = r#"{"code":-32602,"message":"Unknown tool: x"}"#;
    let t = Instant::now();
    for _ in 0..n {
        black_box(classify(Err(black_box(error))));
    }
    per_op("classify a JSON-RPC error (carrier)", n, t);

    // A populated table: 50 tools × 3 servers × 3 outcomes.
    let mut metrics = CallMetrics::default();
    let servers = ["filesystem", "github", "memory"];
    let tools: Vec<String> = (0..50).map(|i| format!("tool_number_{i}")).collect();
    let ended = |tool, error, micros| Ended {
        method: Method::ToolsCall,
        tool,
        server: 0,
        elapsed: Duration::from_micros(micros),
        error,
        code: None,
        answer_bytes: 100,
    };
    for (i, tool) in tools.iter().enumerate() {
        let label = metrics.tool_label(tool);
        for error in [ErrorType::None, ErrorType::ToolError, ErrorType::Timeout] {
            metrics.record(&ended(label, error, 300 + i as u64), servers[i % 3]);
        }
    }
    let t = Instant::now();
    for i in 0..n {
        let label = metrics.tool_label(black_box(&tools[(i % 50) as usize]));
        metrics.record(
            &ended(label, ErrorType::None, 250 + i % 1000),
            black_box(servers[(i % 3) as usize]),
        );
    }
    per_op("label + record one call (reactor)", n, t);
    let t = Instant::now();
    let renders = 2_000;
    let mut bytes = 0;
    for _ in 0..renders {
        let mut out = Exposition::default();
        metrics.write(&mut out);
        bytes = out.finish().len();
    }
    let mut out = Exposition::default();
    metrics.write(&mut out);
    let series = out.finish().matches("_count{").count();
    per_op(
        &format!(
            "render the histogram, {series} series ({} KiB)",
            bytes / 1024
        ),
        renders,
        t,
    );
    let args = vec![b'x'; 1024];
    let t = Instant::now();
    for _ in 0..200_000 {
        black_box(mcp_gateway::audit::fnv1a(black_box(&args)));
    }
    per_op("hash 1 KiB of arguments (audit, worker)", 200_000, t);
}

const EXTRA_TOOLS: usize = 100;

#[derive(Debug, Clone, Copy)]
enum Variant {
    Plain,
    Scrape,
    Audit,
}

#[derive(Debug, Clone)]
struct Run {
    /// CPU time of the gateway process (all its threads, not its children) per call.
    cpu_us_per_call: f64,
    throughput: f64,
    p50_us: f64,
    p99_us: f64,
    scrapes: usize,
}

struct Gw {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(gateway: &str, demo: &str, audit: bool) -> Gw {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mcp-gateway-metrics-cost-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut gateway_section = serde_json::json!({"port": 0});
    if audit {
        gateway_section["auditLog"] = dir.join("audit.jsonl").to_string_lossy().into();
    }
    // 100 more tools, each called once before the load: a page of 100+ series to scrape.
    let mut command = vec![demo.to_string()];
    for i in 0..EXTRA_TOOLS {
        command.push("--extra-tool".into());
        command.push(format!("tool_{i}"));
    }
    let config = serde_json::json!({
        "gateway": gateway_section,
        "servers": [{"name": "demo", "command": command}],
    });
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut child = Command::new(gateway)
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .env("XDG_STATE_HOME", dir.join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the gateway");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let port = loop {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("the gateway ended before listening");
        }
        if let Some(at) = line.find("listening on http://") {
            let rest = &line[at + "listening on http://".len()..];
            let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Gw { child, port, dir }
}

/// User + system CPU time of a process so far (Linux: `/proc/PID/stat`, in clock ticks).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    // SAFETY: sysconf only reads a constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / per_second
}

/// One keep-alive connection.
struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Conn {
            stream: BufReader::new(stream),
        }
    }

    fn exchange(&mut self, request: &[u8]) -> (u16, Vec<u8>) {
        self.stream.get_mut().write_all(request).unwrap();
        let mut status = 0;
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(rest) = l.strip_prefix("HTTP/1.1 ") {
                status = rest[..3].parse().unwrap();
            } else if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).unwrap();
        (status, body)
    }
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn end_to_end(gateway: &str, demo: &str, variant: Variant, calls: usize) -> Run {
    let gw = start(gateway, demo, matches!(variant, Variant::Audit));
    let call = post(
        "/tools/call",
        r#"{"name":"echo","arguments":{"text":"hello"}}"#,
    );
    // Warm: the demo is up and the call path is hot.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut warm = Conn::open(gw.port);
    loop {
        let (status, _) = warm.exchange(&call);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the demo never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..500 {
        warm.exchange(&call);
    }
    for i in 0..EXTRA_TOOLS {
        let body = format!(r#"{{"name":"tool_{i}","arguments":{{"text":"x"}}}}"#);
        assert_eq!(warm.exchange(&post("/tools/call", &body)).0, 200);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = matches!(variant, Variant::Scrape).then(|| {
        let stop = stop.clone();
        let port = gw.port;
        std::thread::spawn(move || {
            let get = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec();
            let mut conn = Conn::open(port);
            let mut scrapes = 0;
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = conn.exchange(&get);
                assert_eq!(status, 200);
                assert!(!body.is_empty());
                scrapes += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            scrapes
        })
    });
    let threads = 4;
    let cpu_before = cpu_seconds(gw.child.id());
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let call = call.clone();
            let port = gw.port;
            std::thread::spawn(move || {
                let mut conn = Conn::open(port);
                let mut latencies = Vec::with_capacity(calls / threads);
                for _ in 0..calls / threads {
                    let t = Instant::now();
                    let (status, _) = conn.exchange(&call);
                    latencies.push(t.elapsed());
                    assert_eq!(status, 200);
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(gw.child.id()) - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let scrapes = scraper.map_or(0, |s| s.join().unwrap());
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    Run {
        cpu_us_per_call: cpu * 1e6 / latencies.len() as f64,
        throughput: latencies.len() as f64 / seconds,
        p50_us: at(0.5),
        p99_us: at(0.99),
        scrapes,
    }
}
