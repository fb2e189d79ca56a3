//! End-to-end test harness: the real `mcp-gateway` binary on port 0 with real `mcp-demo-server`
//! children, spoken to over real loopback HTTP. Every wait has a deadline, so no test can hang.
#![allow(dead_code)] // each test file uses a different part of the harness

pub mod oauth;

use mcp_gateway::http::SseParser;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The demo server binary built alongside the tests.
pub fn demo_server() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-demo-server")
}

pub fn gateway_binary() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-gateway")
}

/// A local server entry running the demo server with extra flags.
pub fn demo(name: &str, flags: &[&str]) -> Value {
    let mut command = vec![demo_server().to_string()];
    command.extend(flags.iter().map(|f| f.to_string()));
    json!({ "name": name, "command": command })
}

/// Every built-in tool of the demo server, in the order it lists them.
pub const DEMO_TOOLS: [&str; 15] = [
    "echo",
    "add",
    "sleep",
    "fail",
    "crash",
    "progress",
    "big",
    "env",
    "pid",
    "log",
    "roots",
    "sample",
    "elicit",
    "notify_changed",
    "touch",
];

/// A file `make test` installs under `target/interop/` (the interop tests' third-party software).
pub fn installed(relative: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/interop")
        .join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `make test` (it installs the interop software under target/interop)",
        path.display()
    );
    path
}

/// The Python of the venv with the official MCP SDK.
pub fn python() -> PathBuf {
    installed("venv/bin/python")
}

/// A script of `tests/interop/`.
pub fn interop_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// A keep-alive HTTP/1.1 request as bytes (`Host: localhost`; `Content-Length` when there is a body
/// or the method is POST).
pub fn request_bytes(method: &str, path: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Runs a Python SDK script of `tests/interop/` with `args` to its end and returns the JSON object
/// of each line it printed; panics (with its output and the gateway's log) when it fails.
pub fn run_interop_script(gw: &Gateway, script: &str, args: &[&str]) -> Vec<Value> {
    let output = Command::new(python())
        .arg(interop_script(script))
        .args(args)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .expect("run the Python SDK script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        gw.logs()
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON line per check"))
        .collect()
}

/// A fresh private directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mcp-gateway-test-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `check` until it returns Some or `timeout` passes (then panics with `what`).
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running gateway process.
pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    /// `gateway.authToken` when the config sets it literally: `health()` sends it.
    pub auth_token: Option<String>,
    log: Arc<Mutex<String>>,
}

impl Gateway {
    /// Starts the gateway on `config` (its `gateway.port` is forced to 0) and waits until it listens.
    pub fn start(config: Value) -> Gateway {
        Self::start_with(config, &[], &[])
    }

    /// Same, with extra environment variables and command-line arguments.
    pub fn start_with(mut config: Value, env: &[(&str, &str)], args: &[&str]) -> Gateway {
        let dir = temp_dir("gw");
        if config.get("gateway").is_none() {
            config["gateway"] = json!({});
        }
        config["gateway"]["port"] = json!(0);
        let auth_token = config["gateway"]["authToken"].as_str().and_then(|t| {
            match t.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
                Some(var) => env
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| v.to_string()),
                None => Some(t.to_string()),
            }
        });
        let config_path = dir.join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        Self::spawn(dir, config_path, auth_token, env, args)
    }

    /// Starts the gateway on a config file written verbatim (`name` in its own directory, e.g. a
    /// client's `claude_desktop_config.json`), on port 0 by `--port 0`.
    pub fn start_file(name: &str, text: &str, args: &[&str]) -> Gateway {
        let dir = temp_dir("gw");
        let config_path = dir.join(name);
        std::fs::create_dir_all(config_path.parent().unwrap()).unwrap();
        std::fs::write(&config_path, text).unwrap();
        let mut all = vec!["--port", "0"];
        all.extend_from_slice(args);
        Self::spawn(dir, config_path, None, &[], &all)
    }

    fn spawn(
        dir: PathBuf,
        config_path: PathBuf,
        auth_token: Option<String>,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Gateway {
        let mut command = Command::new(gateway_binary());
        command
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env("RUST_LOG", "debug")
            .env("XDG_STATE_HOME", dir.join("state"))
            .env_remove("MCP_GATEWAY_CONFIG")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start mcp-gateway");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        {
            let log = log.clone();
            std::thread::spawn(move || drain(stderr, log));
        }
        let port = wait_for(Duration::from_secs(20), "the gateway to listen", || {
            let text = log.lock().unwrap().clone();
            if let Some(pos) = text.find("listening on http://") {
                let rest = &text[pos + "listening on http://".len()..];
                let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                return addr.rsplit(':').next().and_then(|p| p.parse().ok());
            }
            None
        });
        Gateway {
            child,
            port,
            dir,
            config_path,
            auth_token,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the gateway wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    /// Waits for a log line containing `needle`; on a timeout the panic shows the whole log.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while !self.logs().contains(needle) {
            if std::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for a log line containing {needle:?}; \
                     the log:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr()).expect("connect to the gateway");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, &[], b"")
    }

    pub fn post_json(&self, path: &str, body: &Value) -> HttpResponse {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            &serde_json::to_vec(body).unwrap(),
        )
    }

    /// One request on a fresh connection (`Connection: close`).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        http_request(&self.addr(), method, path, headers, body)
    }

    /// Opens a Streamable HTTP session.
    pub fn mcp(&self) -> McpSession {
        McpSession::open(self)
    }

    /// Sends raw bytes on a fresh connection and reads one response.
    pub fn raw(&self, bytes: &[u8]) -> HttpResponse {
        let mut stream = self.connect();
        stream.write_all(bytes).unwrap();
        read_response(&mut stream).expect("a complete HTTP response")
    }

    /// `POST /tools/call`.
    pub fn call(&self, name: &str, arguments: Value) -> HttpResponse {
        self.post_json(
            "/tools/call",
            &json!({"name": name, "arguments": arguments}),
        )
    }

    /// The full `/health` document (with the bearer token when one is configured).
    /// The exposed tool names, from `GET /tools`.
    pub fn tool_names(&self) -> Vec<String> {
        self.get("/tools").json()["tools"]
            .as_array()
            .expect("GET /tools lists tools")
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn health(&self) -> Value {
        match &self.auth_token {
            Some(token) => {
                let auth = format!("Bearer {token}");
                self.request("GET", "/health", &[("Authorization", &auth)], b"")
                    .json()
            }
            None => self.get("/health").json(),
        }
    }

    /// The health entry of one server.
    pub fn server_health(&self, name: &str) -> Value {
        self.health()["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no server {name} in /health"))
    }

    /// Waits until every enabled server reports "up".
    pub fn wait_up(&self) -> Value {
        wait_for(Duration::from_secs(20), "all servers up", || {
            let health = self.health();
            let all_up = health["servers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["enabled"] == true)
                .all(|s| s["status"] == "up");
            all_up.then_some(health)
        })
    }

    /// Opens a legacy SSE session.
    pub fn sse(&self) -> SseSession {
        SseSession::open(self)
    }

    /// Sends a signal to the gateway.
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2).
        unsafe {
            libc::kill(self.pid() as i32, signal);
        }
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(30))
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_for(timeout, "the gateway to exit", || {
            self.child.try_wait().unwrap()
        })
    }

    /// Pids of the gateway's direct children (the server processes).
    pub fn children(&self) -> Vec<u32> {
        children_of(self.pid())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn drain(mut stderr: impl Read, log: Arc<Mutex<String>>) {
    let mut buf = [0u8; 8192];
    let echo = std::env::var_os("GATEWAY_TEST_LOG").is_some();
    loop {
        match stderr.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                if echo {
                    eprint!("{text}");
                }
                log.lock().unwrap().push_str(&text);
            }
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): status {} body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response (Content-Length or until close; 1xx responses are skipped).
pub fn read_response(stream: &mut TcpStream) -> Option<HttpResponse> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            if (100..200).contains(&status) {
                buf.drain(..end + 4);
                continue;
            }
            let chunked = headers.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
            });
            let body_start = end + 4;
            if chunked {
                buf.drain(..body_start);
                let body = read_chunked(stream, buf)?;
                return Some(HttpResponse {
                    status,
                    headers,
                    body,
                });
            }
            let length = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse::<usize>().ok());
            loop {
                let have = buf.len() - body_start;
                if length.is_some_and(|l| have >= l) {
                    let l = length.unwrap();
                    return Some(HttpResponse {
                        status,
                        headers,
                        body: buf[body_start..body_start + l].to_vec(),
                    });
                }
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => {
                        return Some(HttpResponse {
                            status,
                            headers,
                            body: buf[body_start..].to_vec(),
                        })
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Decodes a chunked body whose first bytes are in `buf`; reads the rest from `stream`.
fn read_chunked(stream: &mut TcpStream, mut buf: Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        // Need a complete size line.
        let Some(line_end) = find(&buf, b"\r\n") else {
            let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
            buf.extend_from_slice(&chunk[..n]);
            continue;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        let needed = line_end + 2 + size + 2;
        while buf.len() < needed {
            let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
            buf.extend_from_slice(&chunk[..n]);
        }
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
        buf.drain(..needed);
    }
}

/// The events of an SSE body, as (event name, data).
pub fn sse_events(body: &[u8]) -> Vec<(String, String)> {
    SseParser::new()
        .feed(body)
        .into_iter()
        .map(|e| (e.event, e.data))
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A legacy SSE session: the GET stream plus POSTs to its endpoint.
pub struct SseSession {
    stream: TcpStream,
    parser: SseParser,
    pending: VecDeque<(String, String)>,
    pub endpoint: String,
    pub session_id: String,
    addr: String,
    next_id: u64,
}

impl SseSession {
    pub fn open(gw: &Gateway) -> SseSession {
        let mut stream = gw.connect();
        write!(
            stream,
            "GET /sse HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            gw.addr()
        )
        .unwrap();
        // Read the head byte by byte so no event bytes are consumed with it.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                stream.read(&mut byte).unwrap(),
                1,
                "stream closed in the head"
            );
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "unexpected head: {head}");
        assert!(head
            .to_ascii_lowercase()
            .contains("content-type: text/event-stream"));
        let mut session = SseSession {
            stream,
            parser: SseParser::new(),
            pending: VecDeque::new(),
            endpoint: String::new(),
            session_id: String::new(),
            addr: gw.addr(),
            next_id: 1,
        };
        let (event, data) = session
            .next_event(Duration::from_secs(10))
            .expect("endpoint event");
        assert_eq!(event, "endpoint");
        session.session_id = data.rsplit('=').next().unwrap().to_string();
        session.endpoint = data;
        session
    }

    /// The next event (name, data), or None on timeout/close.
    pub fn next_event(&mut self, timeout: Duration) -> Option<(String, String)> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 65536];
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => {
                    for e in self.parser.feed(&buf[..n]) {
                        self.pending.push_back((e.event, e.data));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(_) => return None,
            }
        }
    }

    /// The next `message` event as JSON.
    pub fn next_message(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (event, data) = self.next_event(left)?;
            if event == "message" {
                return Some(serde_json::from_str(&data).expect("message data is JSON"));
            }
        }
    }

    /// POSTs a raw body to the session endpoint; returns the response.
    pub fn post_raw(&self, body: &[u8]) -> HttpResponse {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.endpoint,
            self.addr,
            body.len()
        )
        .unwrap();
        stream.write_all(body).unwrap();
        read_response(&mut stream).unwrap()
    }

    /// POSTs one message; asserts 202.
    pub fn send(&self, message: &Value) {
        let response = self.post_raw(&serde_json::to_vec(message).unwrap());
        assert_eq!(
            response.status,
            202,
            "POST {}: {}",
            message,
            response.text()
        );
    }

    /// Sends a request with a fresh numeric id and waits for its response, keeping other messages
    /// (notifications, other responses) for later.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response_to(&json!(id), Duration::from_secs(30))
    }

    /// Waits for the response with this id; other messages are put back in order.
    pub fn response_to(&mut self, id: &Value, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        let found = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_message(left) {
                Some(m) if &m["id"] == id && m.get("method").is_none() => break Some(m),
                Some(m) => skipped.push(m),
                None => break None,
            }
        };
        for m in skipped.into_iter().rev() {
            self.pending.push_front(("message".into(), m.to_string()));
        }
        found.unwrap_or_else(|| panic!("no response to id {id} within {timeout:?}"))
    }

    /// initialize + notifications/initialized; returns the initialize result.
    pub fn initialize(&mut self) -> Value {
        let result = self.request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        result
    }

    /// Closes the stream (the session ends).
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A Streamable HTTP session on `/mcp`.
pub struct McpSession {
    addr: String,
    pub session_id: String,
    next_id: u64,
}

/// What a POST to `/mcp` produced: the HTTP response, and its JSON-RPC messages (one for a JSON
/// answer; every event of an SSE answer, the response last).
pub struct McpReply {
    pub http: HttpResponse,
    pub messages: Vec<Value>,
}

impl McpReply {
    /// The last message: the response.
    pub fn response(&self) -> &Value {
        self.messages
            .last()
            .expect("no JSON-RPC message in the answer")
    }

    /// The names in a `tools/list` result.
    pub fn tool_names(&self) -> Vec<&str> {
        self.response()["result"]["tools"]
            .as_array()
            .expect("a tools/list result")
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect()
    }
}

impl McpSession {
    /// `initialize` + `notifications/initialized` with the given client capabilities.
    pub fn open_with(gw: &Gateway, capabilities: Value) -> McpSession {
        let mut session = McpSession {
            addr: gw.addr(),
            session_id: String::new(),
            next_id: 1,
        };
        let reply = session.post(&json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": capabilities,
                       "clientInfo": {"name": "test", "version": "1"}}
        }));
        assert_eq!(reply.http.status, 200, "initialize: {}", reply.http.text());
        session.session_id = reply
            .http
            .header("mcp-session-id")
            .expect("initialize answers with Mcp-Session-Id")
            .to_string();
        let note = session.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert_eq!(note.http.status, 202);
        session
    }

    pub fn open(gw: &Gateway) -> McpSession {
        Self::open_with(gw, json!({}))
    }

    /// POSTs one message with this session's headers.
    pub fn post(&self, message: &Value) -> McpReply {
        self.post_bytes(&serde_json::to_vec(message).unwrap())
    }

    /// POSTs a message given as bytes, exactly as written.
    pub fn post_bytes(&self, body: &[u8]) -> McpReply {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        if !self.session_id.is_empty() {
            headers.push(("Mcp-Session-Id", self.session_id.as_str()));
            headers.push(("MCP-Protocol-Version", "2025-11-25"));
        }
        let http = http_request(&self.addr, "POST", "/mcp", &headers, body);
        let messages = mcp_messages(&http);
        McpReply { http, messages }
    }

    /// A request with a fresh id; the whole reply.
    pub fn request(&mut self, method: &str, params: Value) -> McpReply {
        let id = self.next_id;
        self.next_id += 1;
        self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
    }

    /// `tools/call` with a fresh id; the JSON-RPC response (asserting HTTP 200).
    pub fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        let reply = self.request("tools/call", json!({"name": name, "arguments": arguments}));
        assert_eq!(reply.http.status, 200, "{}", reply.http.text());
        reply.response().clone()
    }

    /// `DELETE /mcp`.
    pub fn delete(&self) -> HttpResponse {
        http_request(
            &self.addr,
            "DELETE",
            "/mcp",
            &[("Mcp-Session-Id", self.session_id.as_str())],
            b"",
        )
    }

    /// `GET /mcp`: the server→client stream, as a raw connection (head already checked).
    pub fn open_stream(&self) -> (HttpResponse, Option<TcpStream>) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET /mcp HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {}\r\nConnection: close\r\n\r\n",
            self.addr, self.session_id
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).unwrap_or(0) == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = text
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let response = HttpResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if status == 200 {
            (response, Some(stream))
        } else {
            // Read the error body for the caller.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            (
                HttpResponse {
                    body: rest,
                    ..response
                },
                None,
            )
        }
    }
}

/// One request on a fresh connection (`Connection: close`), to any address.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    read_response(&mut stream).expect("a complete HTTP response")
}

/// The JSON-RPC messages of a `/mcp` answer (JSON body, or SSE events).
pub fn mcp_messages(http: &HttpResponse) -> Vec<Value> {
    let content_type = http.header("content-type").unwrap_or("");
    if content_type.starts_with("text/event-stream") {
        sse_events(&http.body)
            .into_iter()
            .filter(|(event, _)| event == "message")
            .map(|(_, data)| serde_json::from_str(&data).expect("event data is JSON"))
            .collect()
    } else if http.body.is_empty() {
        Vec::new()
    } else {
        vec![http.json()]
    }
}

/// Reads SSE events from a raw stream until `want` says stop or `timeout` passes.
pub fn read_events(
    stream: &mut TcpStream,
    timeout: Duration,
    mut want: impl FnMut(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let deadline = Instant::now() + timeout;
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut buf = [0u8; 65536];
    while !want(&events) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => events.extend(
                parser
                    .feed(&buf[..n])
                    .into_iter()
                    .map(|e| (e.event, e.data)),
            ),
        }
    }
    events
}

/// Direct children of a process (from /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return children;
    };
    for entry in entries.flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((ppid, state)) = stat(child) {
            if ppid == pid && state != 'Z' {
                children.push(child);
            }
        }
    }
    children.sort();
    children
}

/// (parent pid, state letter) of a process, if it exists.
pub fn stat(pid: u32) -> Option<(u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// True if a process with this pid exists (zombies included).
pub fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Everything `pipe` (a child's stderr, say) writes, collected line by line on a thread of its own,
/// for a test to look at (and show when it fails).
pub fn capture_lines(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    use std::io::BufRead;
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    text
}

/// A Python script of `tests/interop` that serves on a port it prints first (`PORT <n>`), started
/// with `args`, its stderr captured; killed on drop.
pub struct PyProcess {
    pub child: Child,
    pub port: u16,
    pub stderr: Arc<Mutex<String>>,
}

impl PyProcess {
    /// Starts `script` and returns once its port accepts connections (uvicorn accepts only when
    /// its startup is done).
    pub fn start(script: &str, args: &[&std::ffi::OsStr]) -> PyProcess {
        use std::io::BufRead;
        let mut child = Command::new(python())
            .arg(interop_script(script))
            .args(args)
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {script}: {e}"));
        let stderr = capture_lines(child.stderr.take().unwrap());
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("read the port {script} prints: {e}"));
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                // Let the stderr thread catch up with the traceback before reporting it.
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "{script} did not start: {line:?}\n{}",
                    stderr.lock().unwrap()
                )
            });
        wait_for(
            Duration::from_secs(20),
            &format!("{script} to accept"),
            || TcpStream::connect(("127.0.0.1", port)).ok(),
        );
        PyProcess {
            child,
            port,
            stderr,
        }
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for PyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
