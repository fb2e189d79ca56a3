//! What the benchmark measures: a process serving MCP over HTTP (our gateway, or a peer), started
//! on a free port with the demo server behind it, and read from `/proc` for its footprint.

use crate::client::Http;
use serde_json::{json, Value};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn demo_server() -> String {
    env!("CARGO_BIN_EXE_mcp-demo-server").to_string()
}

pub struct Target {
    child: Child,
    port: u16,
    /// Path of the legacy SSE endpoint.
    pub sse_path: String,
    /// Path of the Streamable HTTP endpoint.
    pub mcp_path: String,
    /// Only our gateway has `/health` with pool counters.
    has_health: bool,
    /// What the demo's tools are called behind this target (`demo_echo` or `echo`).
    pub tool_prefix: String,
    _dir: Option<TempDir>,
}

impl Target {
    /// mcp-gateway with the demo server, `min`..`max` processes kept/allowed.
    pub fn gateway(min: usize, max: usize) -> Target {
        Target::gateway_with(
            json!({
                "pool": {"minConnections": min, "maxConnections": max, "acquireTimeout": 60000},
                "servers": [{"name": "demo", "command": [demo_server()]}],
                "mapping": {"demo": {"prefix": "demo_"}},
            }),
            "demo_",
        )
    }

    /// mcp-gateway on `config` (its port forced to 0); `tool_prefix` names the demo's tools.
    /// `MCP_GATEWAY_BENCH_BINARY` names another build to measure (a before/after comparison
    /// with the same harness); by default, this one.
    pub fn gateway_with(mut config: Value, tool_prefix: &str) -> Target {
        let dir = TempDir::new("bench-gw");
        // Room for the 10,000 idle sessions of the footprint scenario (the default cap is 10,000);
        // a state directory of its own unless the scenario names one (manifests of other runs
        // must not change what is measured).
        let mut gateway = json!({"port": 0, "maxSessions": 100_000,
                                 "stateDir": dir.0.join("state")});
        if let Some(given) = config.get("gateway").and_then(Value::as_object) {
            for (key, value) in given {
                gateway[key] = value.clone();
            }
        }
        config["gateway"] = gateway;
        let path = dir.0.join("config.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let mut child = Command::new(gateway_binary())
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mcp-gateway");
        let log = drain(child.stderr.take().unwrap());
        let port = wait_for_port(&log, "listening on http://127.0.0.1:");
        Target {
            child,
            port,
            sse_path: "/sse".into(),
            mcp_path: "/mcp".into(),
            has_health: true,
            tool_prefix: tool_prefix.into(),
            _dir: Some(dir),
        }
    }

    /// A peer process already started by `command`, listening on `port`.
    pub fn peer(
        mut command: Command,
        port: u16,
        sse_path: &str,
        mcp_path: &str,
        tool_prefix: &str,
    ) -> Target {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the peer");
        let target = Target {
            child,
            port,
            sse_path: sse_path.into(),
            mcp_path: mcp_path.into(),
            has_health: false,
            tool_prefix: tool_prefix.into(),
            _dir: None,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(target.addr()).is_err() {
            assert!(
                Instant::now() < deadline,
                "the peer never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        target
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn rss_kib(&self) -> u64 {
        rss_of(self.pid())
    }

    /// Resident memory of this process and all its descendants (servers, their helpers), in KiB:
    /// the sum of their VmRSS, so pages they share are counted once per process.
    pub fn tree_rss_kib(&self) -> u64 {
        let pid = self.pid();
        std::iter::once(pid)
            .chain(descendants(pid))
            .map(rss_of)
            .sum()
    }

    pub fn health(&self) -> Value {
        if !self.has_health {
            return Value::Null;
        }
        let mut http = Http::connect(&self.addr());
        let response = http.request("GET", "/health", &[], b"");
        serde_json::from_slice(&response.body).unwrap_or(Value::Null)
    }

    fn demo_stat(&self, key: &str) -> Option<u64> {
        self.health()["servers"][0][key].as_u64()
    }

    /// Children started for the demo server, ever (our gateway only).
    pub fn spawns(&self) -> Option<u64> {
        self.demo_stat("spawns")
    }

    /// Calls served (our gateway only).
    pub fn calls(&self) -> Option<u64> {
        self.demo_stat("calls")
    }

    /// Waits until the pool is warm: every kept process up.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = self.health();
            let pool = &health["servers"][0]["pool"];
            if health["servers"][0]["status"] == "up" && pool["total"] == pool["min"] {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway never warmed up: {health}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our child (the gateway stops its servers on SIGTERM).
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process in KiB (0 if it is gone).
pub fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// (pid, parent pid) of every live process (zombies left out), from `/proc/<pid>/stat`.
fn process_table() -> Vec<(u32, u32)> {
    let mut table = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: read after the last ')'.
        let Some(rest) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        if let (false, Some(Ok(ppid))) = (state == "Z", fields.next().map(str::parse)) {
            table.push((pid, ppid));
        }
    }
    table
}

/// The live direct children of `pid`: for the gateway, its server processes.
pub fn children_of(pid: u32) -> Vec<u32> {
    process_table()
        .into_iter()
        .filter(|&(_, ppid)| ppid == pid)
        .map(|(child, _)| child)
        .collect()
}

/// Every live descendant of `pid` (children, their children…).
pub fn descendants(pid: u32) -> Vec<u32> {
    let table = process_table();
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(child, ppid) in &table {
            if ppid == parent && !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// What the run happened on, for the report.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.trim().to_string())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo.lines().next().unwrap_or("").to_string();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cpu": model,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory": memory,
        "kernel": kernel.trim(),
    })
}

fn drain(mut stderr: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    log
}

fn wait_for_port(log: &Mutex<String>, marker: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = log.lock().unwrap();
        if let Some(pos) = text.find(marker) {
            let digits: String = text[pos + marker.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(port) = digits.parse() {
                return port;
            }
        }
        assert!(Instant::now() < deadline, "no listening line: {text}");
        drop(text);
        // Finely: the cold-start scenario's figure includes this wait (at 20 ms it was a step
        // function of when the line came, 23 or 43 ms).
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mcp-gateway-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The gateway binary under test.
fn gateway_binary() -> String {
    std::env::var("MCP_GATEWAY_BENCH_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_mcp-gateway").to_string())
}
