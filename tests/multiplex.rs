//! Multiplexing on real servers: after warm-up, a burst of concurrent client sessions calling six real
//! third-party MCP servers through the gateway starts no process — one process per server carries
//! every call in flight (`maxConcurrency`, default 16) — and every call gets its own answer.
//!
//! The servers are the ones `make test` installs under `target/interop/`: `server-everything`,
//! `server-filesystem` (on a temp dir), `server-memory` (its file in a temp dir) from npm;
//! `mcp-server-fetch` (fetching from a loopback HTTP server the test runs), `mcp-server-git` (on a
//! repository the test makes) and `mcp-server-time` from PyPI, in their own venv. The clients are the
//! official Python SDK (`tests/interop/multiplex.py`, 8 sessions in one process) and raw Streamable
//! HTTP sessions from Rust threads. Spawns come from `/health`, processes from `/proc`.
//!
//! The second test runs the same burst with `maxConcurrency: 1` (one call at a time per process, the
//! behaviour before multiplexing): the pools must grow, which shows the first test can tell.

mod util;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Barrier;
use std::time::Duration;
use util::{children_of, installed, temp_dir, Gateway};

/// Concurrent client sessions in each burst.
const SESSIONS: usize = 8;
/// Rounds per session; in each, `PER_SERVER` calls in flight on every server at once.
const ROUNDS: usize = 3;
/// At most SESSIONS × PER_SERVER = 16 calls in flight on one server: what one process carries by
/// default, so no burst needs a second one.
const PER_SERVER: usize = 2;

/// Each server's name (also its tool prefix, plus `_`) and a piece of its command line that tells
/// its processes apart in `/proc/<pid>/cmdline`.
const SERVERS: [(&str, &str); 6] = [
    ("ev", "server-everything"),
    ("fs", "server-filesystem"),
    ("mem", "server-memory"),
    ("fetch", "mcp-server-fetch"),
    ("git", "mcp-server-git"),
    ("time", "mcp-server-time"),
];

/// The six servers' working material: temp dirs, a git repository, a page server for fetch.
struct Fixture {
    fs_dir: PathBuf,
    memory_dir: PathBuf,
    git_repo: PathBuf,
    fetch_base: String,
}

impl Fixture {
    fn new() -> Fixture {
        // Canonical: server-filesystem compares real paths with its allowed directories.
        let fs_dir = temp_dir("fs").canonicalize().unwrap();
        for s in 0..SESSIONS {
            std::fs::write(
                fs_dir.join(format!("file-{s}.txt")),
                format!("content of file {s}"),
            )
            .unwrap();
        }
        let memory_dir = temp_dir("memory");
        let git_repo = temp_dir("repo").canonicalize().unwrap();
        git(&git_repo, &["init", "-q"]);
        git(
            &git_repo,
            &[
                "-c",
                "user.name=test",
                "-c",
                "user.email=test@example.invalid",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "multiplex test commit",
            ],
        );
        Fixture {
            fs_dir,
            memory_dir,
            git_repo,
            fetch_base: page_server(),
        }
    }

    /// The gateway config: the six servers, one process each kept warm, at most 3.
    fn config(&self, max_concurrency: Option<u64>) -> Value {
        let npm = |package: &str| {
            installed(&format!(
                "node_modules/@modelcontextprotocol/{package}/dist/index.js"
            ))
            .display()
            .to_string()
        };
        let venv = |script: &str| {
            installed(&format!("servers-venv/bin/{script}"))
                .display()
                .to_string()
        };
        let mut servers = vec![
            json!({"name": "ev", "command": ["node", npm("server-everything"), "stdio"]}),
            json!({"name": "fs", "command": ["node", npm("server-filesystem"), self.fs_dir]}),
            json!({"name": "mem", "command": ["node", npm("server-memory")],
                   "env": {"MEMORY_FILE_PATH": self.memory_dir.join("memory.jsonl")}}),
            // Loopback only: the page server below. Private addresses are refused unless allowed.
            json!({"name": "fetch", "command": [venv("mcp-server-fetch"), "--allow-private-ips"]}),
            json!({"name": "git", "command": [venv("mcp-server-git"), "--repository", self.git_repo]}),
            json!({"name": "time", "command": [venv("mcp-server-time")]}),
        ];
        if let Some(limit) = max_concurrency {
            for server in &mut servers {
                server["maxConcurrency"] = json!(limit);
            }
        }
        let mapping: serde_json::Map<String, Value> = SERVERS
            .iter()
            .map(|(name, _)| (name.to_string(), json!({"prefix": format!("{name}_")})))
            .collect();
        json!({
            "pool": {"minConnections": 1, "maxConnections": 3, "acquireTimeout": 30000},
            "servers": servers,
            "mapping": mapping,
        })
    }

    /// What one call of a burst asks and what its answer must say: (tool, arguments, expected text).
    fn calls(&self, session: usize, round: usize) -> Vec<(String, Value, Expect)> {
        let mut out = Vec::new();
        for k in 0..PER_SERVER {
            let tag = format!("s{session}r{round}k{k}");
            let hour = (session * 7 + round * 3 + k) % 24;
            out.push((
                "ev_echo".into(),
                json!({"message": tag}),
                Expect::Exact(format!("Echo: {tag}")),
            ));
            out.push((
                "fs_read_text_file".into(),
                json!({"path": self.fs_dir.join(format!("file-{session}.txt"))}),
                Expect::Exact(format!("content of file {session}")),
            ));
            out.push((
                "mem_open_nodes".into(),
                json!({"names": ["multiplex"]}),
                Expect::Contains("shared observation".into()),
            ));
            out.push((
                "fetch_fetch".into(),
                json!({"url": format!("{}/page/{tag}", self.fetch_base)}),
                Expect::Contains(format!("page at /page/{tag}")),
            ));
            out.push((
                "git_git_log".into(),
                json!({"repo_path": self.git_repo, "max_count": 1}),
                Expect::Contains("multiplex test commit".into()),
            ));
            out.push((
                "time_convert_time".into(),
                json!({"source_timezone": "Etc/UTC", "time": format!("{hour:02}:00"), "target_timezone": "Asia/Tokyo"}),
                Expect::Contains(format!("T{:02}:00:00+09:00", (hour + 9) % 24)),
            ));
        }
        out
    }

    /// The same calls, described for the Python script.
    fn spec(&self) -> Value {
        json!({
            "sessions": SESSIONS, "rounds": ROUNDS, "perServer": PER_SERVER,
            "fsDir": self.fs_dir, "fetchBase": self.fetch_base, "gitRepo": self.git_repo,
        })
    }
}

enum Expect {
    Exact(String),
    Contains(String),
}

impl Expect {
    fn holds(&self, text: &str) -> bool {
        match self {
            Expect::Exact(want) => text == want,
            Expect::Contains(want) => text.contains(want.as_str()),
        }
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

/// A loopback HTTP server for mcp-server-fetch: `/robots.txt` is 404 (everything allowed), any other
/// path answers `page at <path>` as text/plain. Lives as long as the test process.
fn page_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
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
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(response.as_bytes());
            });
        }
    });
    base
}

/// `POST /tools/call`; the answer's first text, asserting it is not an error.
fn rest_call(gw: &Gateway, name: &str, arguments: Value) -> String {
    let response = gw.call(name, arguments);
    assert_eq!(response.status, 200, "{name}: {}", response.text());
    let body = response.json();
    assert_ne!(body["result"]["isError"], true, "{name}: {body}");
    body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Every server up, one call to each (memory gets the entity the bursts read).
fn warm_up(gw: &Gateway, fx: &Fixture) {
    gw.wait_up();
    rest_call(
        gw,
        "mem_create_entities",
        json!({"entities": [{"name": "multiplex", "entityType": "test", "observations": ["shared observation"]}]}),
    );
    for (name, arguments, expect) in fx.calls(0, 0).into_iter().take(SERVERS.len()) {
        let text = rest_call(gw, &name, arguments);
        assert!(expect.holds(&text), "warm-up {name}: {text:?}");
    }
}

/// Per server: (spawns so far, processes in the pool) from `/health`.
fn pool_counts(gw: &Gateway) -> BTreeMap<&'static str, (u64, u64)> {
    let health = gw.health();
    SERVERS
        .iter()
        .map(|(name, _)| {
            let server = health["servers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == *name)
                .unwrap_or_else(|| panic!("no server {name} in /health: {health}"));
            (
                *name,
                (
                    server["spawns"].as_u64().unwrap(),
                    server["pool"]["total"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Per server: the gateway's live child processes running it (from `/proc`).
fn processes(gw: &Gateway) -> BTreeMap<&'static str, usize> {
    let cmdlines: Vec<String> = children_of(gw.pid())
        .into_iter()
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .collect();
    SERVERS
        .iter()
        .map(|(name, marker)| {
            (
                *name,
                cmdlines.iter().filter(|c| c.contains(marker)).count(),
            )
        })
        .collect()
}

/// The Python SDK burst: SESSIONS sessions in one client process; returns the calls answered.
fn python_burst(gw: &Gateway, fx: &Fixture) -> u64 {
    let url = format!("http://{}/mcp", gw.addr());
    let checks = util::run_interop_script(gw, "multiplex.py", &[&url, &fx.spec().to_string()]);
    let summary = checks.last().cloned().unwrap_or_default();
    assert_eq!(summary["check"], "burst", "{checks:?}");
    summary["calls"].as_u64().unwrap()
}

/// The raw burst: SESSIONS Streamable HTTP sessions, each a thread that, every round, sends all its
/// calls at once (a connection per call); every answer is checked. Returns the calls answered.
fn rust_burst(gw: &Gateway, fx: &Fixture) -> u64 {
    let sessions: Vec<_> = (0..SESSIONS).map(|_| gw.mcp()).collect();
    let start = Barrier::new(SESSIONS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = sessions
            .iter()
            .enumerate()
            .map(|(s, session)| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    let mut answered = 0;
                    for round in 0..ROUNDS {
                        std::thread::scope(|calls| {
                            let pending: Vec<_> = fx
                                .calls(s, round)
                                .into_iter()
                                .enumerate()
                                .map(|(i, (name, arguments, expect))| {
                                    calls.spawn(move || {
                                        let id = format!("{s}-{round}-{i}");
                                        let reply = session.post(&json!({
                                            "jsonrpc": "2.0", "id": id, "method": "tools/call",
                                            "params": {"name": name, "arguments": arguments}
                                        }));
                                        assert_eq!(
                                            reply.http.status,
                                            200,
                                            "{name}: {}",
                                            reply.http.text()
                                        );
                                        let answer = reply.response();
                                        assert_eq!(
                                            answer["id"],
                                            id.as_str(),
                                            "answer for another call: {answer}"
                                        );
                                        let text = answer["result"]["content"][0]["text"]
                                            .as_str()
                                            .unwrap_or_default();
                                        assert!(
                                            answer["result"]["isError"] != true
                                                && expect.holds(text),
                                            "{name}: {answer}"
                                        );
                                    })
                                })
                                .collect();
                            for call in pending {
                                call.join().unwrap();
                                answered += 1;
                            }
                        });
                    }
                    answered
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

const CALLS_PER_BURST: u64 = (SESSIONS * ROUNDS * PER_SERVER * SERVERS.len()) as u64;

#[test]
fn concurrent_sessions_on_real_servers_start_no_process() {
    let fx = Fixture::new();
    let gw = Gateway::start(fx.config(None));
    warm_up(&gw, &fx);
    let before = pool_counts(&gw);
    assert!(
        before.values().all(|&(_, total)| total == 1),
        "one process per server after warm-up: {before:?}"
    );
    assert!(
        processes(&gw).values().all(|&n| n == 1),
        "processes after warm-up: {:?}",
        processes(&gw)
    );

    assert_eq!(python_burst(&gw, &fx), CALLS_PER_BURST);
    let after_python = pool_counts(&gw);
    let live = processes(&gw);
    assert_eq!(
        after_python, before,
        "(spawns, processes) per server changed during the Python SDK burst; processes now {live:?}\n/health: {}",
        gw.health()
    );
    assert!(
        live.values().all(|&n| n == 1),
        "processes after the Python SDK burst: {live:?}"
    );

    assert_eq!(rust_burst(&gw, &fx), CALLS_PER_BURST);
    let after_rust = pool_counts(&gw);
    let live = processes(&gw);
    assert_eq!(
        after_rust, before,
        "(spawns, processes) per server changed during the raw Streamable HTTP burst; processes now {live:?}\n/health: {}",
        gw.health()
    );
    assert!(
        live.values().all(|&n| n == 1),
        "processes after the raw burst: {live:?}"
    );
}

#[test]
fn the_same_burst_one_call_at_a_time_grows_the_pools() {
    let fx = Fixture::new();
    let gw = Gateway::start(fx.config(Some(1)));
    warm_up(&gw, &fx);
    let before = pool_counts(&gw);
    assert_eq!(rust_burst(&gw, &fx), CALLS_PER_BURST);
    let after = pool_counts(&gw);
    let grown: Vec<_> = SERVERS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| after[name].0 > before[name].0)
        .collect();
    // 16 calls arrive at once per server, one process takes one: every pool reached its maximum in
    // every run so far; a majority is asked, so one quick server that keeps up cannot flake this.
    assert!(
        grown.len() > SERVERS.len() / 2,
        "one call at a time per process, yet only {grown:?} grew: before {before:?}, after {after:?}"
    );
    assert!(
        processes(&gw).values().sum::<usize>() > SERVERS.len(),
        "processes: {:?}",
        processes(&gw)
    );
}
