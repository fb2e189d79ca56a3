//! "8 sessions × real servers": the gateway in front of the seven real third-party servers that
//! `make interop-deps` installs under `target/interop/` (npm: everything, filesystem, memory,
//! sequential-thinking; PyPI, own venv: fetch, git, time), with the default pool (one process kept
//! warm, at most 5). After warm-up, 8 Streamable HTTP sessions keep 2 calls each in flight on every
//! server at once (16 per server: what one process carries by default with `maxConcurrency`).
//!
//! Reported: latency and throughput of those calls, processes started after warm-up (from
//! `/health`), live server processes after the burst and the peak RSS of the whole tree (gateway
//! plus every descendant, from `/proc`) — the figures that tell whether a burst of clients costs
//! processes.

use crate::client::McpSession;
use crate::target::{descendants, Target, TempDir};
use crate::Row;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

pub const SESSIONS: usize = 8;
/// Connections per session per server, each with one call in flight.
pub const PER_SERVER: usize = 2;

/// Server names (tool prefixes are the name plus `_`).
const SERVERS: [&str; 7] = ["ev", "fs", "mem", "think", "fetch", "git", "time"];

fn installed(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/interop")
        .join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `make bench` (it installs the real servers under target/interop)",
        path.display()
    );
    path.display().to_string()
}

/// The servers' material: a directory with a file, a memory file's directory, a git repository
/// with one commit, a loopback page server for fetch.
struct Fixture {
    dir: TempDir,
    fs_dir: PathBuf,
    git_repo: PathBuf,
    fetch_base: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = TempDir::new("bench-real");
        let fs_dir = dir.0.join("files");
        let git_repo = dir.0.join("repo");
        std::fs::create_dir_all(&fs_dir).unwrap();
        std::fs::create_dir_all(&git_repo).unwrap();
        // Canonical: server-filesystem compares real paths with its allowed directories.
        let fs_dir = fs_dir.canonicalize().unwrap();
        let git_repo = git_repo.canonicalize().unwrap();
        std::fs::write(fs_dir.join("file.txt"), "content of the file").unwrap();
        git(&git_repo, &["init", "-q"]);
        git(
            &git_repo,
            &[
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.invalid",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "bench commit",
            ],
        );
        Fixture {
            dir,
            fs_dir,
            git_repo,
            fetch_base: page_server(),
        }
    }

    fn config(&self) -> Value {
        let npm = |package: &str| {
            installed(&format!(
                "node_modules/@modelcontextprotocol/{package}/dist/index.js"
            ))
        };
        let venv = |script: &str| installed(&format!("servers-venv/bin/{script}"));
        let mapping: serde_json::Map<String, Value> = SERVERS
            .iter()
            .map(|name| (name.to_string(), json!({"prefix": format!("{name}_")})))
            .collect();
        json!({
            "pool": {"minConnections": 1, "acquireTimeout": 60000},
            "servers": [
                {"name": "ev", "command": ["node", npm("server-everything"), "stdio"]},
                {"name": "fs", "command": ["node", npm("server-filesystem"), self.fs_dir]},
                {"name": "mem", "command": ["node", npm("server-memory")],
                 "env": {"MEMORY_FILE_PATH": self.dir.0.join("memory.jsonl")}},
                {"name": "think", "command": ["node", npm("server-sequential-thinking")],
                 "env": {"DISABLE_THOUGHT_LOGGING": "true"}},
                {"name": "fetch", "command": [venv("mcp-server-fetch"), "--allow-private-ips"]},
                {"name": "git", "command": [venv("mcp-server-git"), "--repository", self.git_repo]},
                {"name": "time", "command": [venv("mcp-server-time")]},
            ],
            "mapping": mapping,
        })
    }

    /// Call `n` on `server`: (tool, arguments, a piece of text its answer must hold).
    fn call(&self, server: &str, n: u64) -> (String, Value, String) {
        let tag = format!("call-{n}");
        let (tool, arguments, expect) = match server {
            "ev" => ("echo", json!({"message": tag}), format!("Echo: {tag}")),
            "fs" => (
                "read_text_file",
                json!({"path": self.fs_dir.join("file.txt")}),
                "content of the file".into(),
            ),
            "mem" => (
                "open_nodes",
                json!({"names": ["bench"]}),
                "shared observation".into(),
            ),
            "think" => (
                "sequentialthinking",
                json!({"thought": tag, "nextThoughtNeeded": false, "thoughtNumber": 1, "totalThoughts": 1}),
                "thoughtNumber".into(),
            ),
            "fetch" => (
                "fetch",
                json!({"url": format!("{}/page/{tag}", self.fetch_base)}),
                format!("page at /page/{tag}"),
            ),
            "git" => (
                "git_log",
                json!({"repo_path": self.git_repo, "max_count": 1}),
                "bench commit".into(),
            ),
            _ => (
                "convert_time",
                json!({"source_timezone": "Etc/UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}),
                "T21:00:00+09:00".into(),
            ),
        };
        (format!("{server}_{tool}"), arguments, expect)
    }
}

fn git(repo: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?} failed");
}

/// Loopback pages for mcp-server-fetch: `/robots.txt` 404 (all allowed), else `page at <path>`.
fn page_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let response = if path == "/robots.txt" {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                } else {
                    let body = format!("page at {path}");
                    format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                };
                let _ = stream.write_all(response.as_bytes());
            });
        }
    });
    base
}

fn check(answer: &Value, tool: &str, expect: &str) {
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        answer["result"]["isError"] != true && text.contains(expect),
        "{tool}: unexpected answer {answer}"
    );
}

/// Per server from `/health`: (name, spawns, processes in the pool).
fn pools(gw: &Target) -> Vec<(String, u64, u64)> {
    gw.health()["servers"]
        .as_array()
        .map(|servers| {
            servers
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or("?").to_string(),
                        s["spawns"].as_u64().unwrap_or(0),
                        s["pool"]["total"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn wait_all_up(gw: &Target) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let health = gw.health();
        let servers = health["servers"].as_array().cloned().unwrap_or_default();
        if servers.len() == SERVERS.len() && servers.iter().all(|s| s["status"] == "up") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the real servers never came up: {health}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The scenario: `calls` calls per connection (SESSIONS × PER_SERVER connections per server).
pub fn run(calls: usize) -> Row {
    let fx = Fixture::new();
    let gw = Target::gateway_with(fx.config(), "ev_");
    wait_all_up(&gw);
    // Warm-up: the entity memory's calls read, then one call to every server.
    let mut warm = McpSession::open(&gw.addr(), &gw.mcp_path);
    let created = warm.request(
        "tools/call",
        json!({"name": "mem_create_entities", "arguments": {"entities": [
            {"name": "bench", "entityType": "bench", "observations": ["shared observation"]}]}}),
    );
    check(&created, "mem_create_entities", "bench");
    for server in SERVERS {
        let (tool, arguments, expect) = fx.call(server, 0);
        let answer = warm.request("tools/call", json!({"name": tool, "arguments": arguments}));
        check(&answer, &tool, &expect);
    }
    let before = pools(&gw);
    let idle_tree = gw.tree_rss_kib();
    let spawned = |pools: &[(String, u64, u64)]| pools.iter().map(|p| p.1).sum::<u64>();

    // Sessions and their connections open before the clock starts.
    let sessions: Vec<McpSession> = (0..SESSIONS)
        .map(|_| McpSession::open(&gw.addr(), &gw.mcp_path))
        .collect();
    let mut lanes: Vec<(&str, McpSession)> = Vec::new();
    for session in &sessions {
        for server in SERVERS {
            for _ in 0..PER_SERVER {
                let first_id = (lanes.len() as u64 + 1) * 1_000_000;
                lanes.push((server, session.another_connection(first_id)));
            }
        }
    }
    let sampling = Arc::new(AtomicBool::new(true));
    let peak_tree = Arc::new(AtomicU64::new(0));
    let peak_processes = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, peak_tree, peak_processes) =
            (sampling.clone(), peak_tree.clone(), peak_processes.clone());
        let pid = gw.pid();
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let tree = descendants(pid);
                peak_processes.fetch_max(tree.len() as u64, Ordering::Relaxed);
                let rss = std::iter::once(pid)
                    .chain(tree)
                    .map(crate::target::rss_of)
                    .sum();
                peak_tree.fetch_max(rss, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let start = Barrier::new(lanes.len());
    let started = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = lanes
            .into_iter()
            .enumerate()
            .map(|(lane, (server, mut session))| {
                let (fx, start) = (&fx, &start);
                scope.spawn(move || {
                    start.wait();
                    (0..calls)
                        .map(|n| {
                            let (tool, arguments, expect) =
                                fx.call(server, (lane * calls + n) as u64);
                            let began = Instant::now();
                            let answer = session.request(
                                "tools/call",
                                json!({"name": tool, "arguments": arguments}),
                            );
                            let took = began.elapsed();
                            check(&answer, &tool, &expect);
                            took
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let after = pools(&gw);
    let live = descendants(gw.pid());
    let servers_live = crate::target::children_of(gw.pid()).len();

    let mut row = Row::new(
        &format!(
            "gateway {SESSIONS} sessions × {} real servers, {} in flight per server",
            SERVERS.len(),
            SESSIONS * PER_SERVER
        ),
        latencies,
        seconds,
    );
    row.spawns_after_warmup = Some(spawned(&after) - spawned(&before));
    row.processes = Some(servers_live as u64);
    row.rss_kib = Some(peak_tree.load(Ordering::Relaxed));
    row.rss_scope = "tree";
    let per_server: Vec<String> = after
        .iter()
        .map(|(name, spawns, total)| {
            let earlier = before.iter().find(|b| &b.0 == name).map_or(0, |b| b.1);
            format!("{name} {total} (+{})", spawns - earlier)
        })
        .collect();
    row.note = format!(
        "server processes after the burst (+ started during it): {}; RSS = peak of gateway + all {} \
         descendants (idle after warm-up: {idle_tree} KiB; peak descendants {})",
        per_server.join(", "),
        live.len(),
        peak_processes.load(Ordering::Relaxed)
    );
    eprintln!(
        "  {}: p50 {:.0} µs, {} server processes",
        row.name,
        row.percentile(0.5),
        servers_live
    );
    drop(sessions);
    row
}
