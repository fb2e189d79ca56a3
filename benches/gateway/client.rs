//! Load-generating clients for the benchmark: a keep-alive HTTP/1.1 client, a legacy SSE session, a
//! Streamable HTTP session, and a direct stdio client for the baseline. Blocking sockets, one per
//! thread: the load generator must be simple enough that it is not what gets measured.

use mcp_gateway::http::SseParser;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// One keep-alive HTTP connection.
pub struct Http {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

/// A response: status, headers (lower-case names), body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Http {
    pub fn connect(addr: &str) -> Http {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Http {
            stream,
            host: addr.to_string(),
            buf: Vec::with_capacity(8192),
        }
    }

    /// Sends a request and reads its response (Content-Length or chunked).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut out = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        for (k, v) in headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        self.stream.write_all(&out).expect("write request");
        self.read_response()
    }

    pub fn post_json(&mut self, path: &str, headers: &[(&str, &str)], body: &Value) -> Response {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        self.request("POST", path, &all, &serde_json::to_vec(body).unwrap())
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).expect("read response");
        assert!(n > 0, "connection closed by the server");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    fn read_response(&mut self) -> Response {
        let head_end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            self.fill();
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let body = if chunked {
            self.read_chunked()
        } else {
            let length: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while self.buf.len() < length {
                self.fill();
            }
            self.buf.drain(..length).collect()
        };
        Response {
            status,
            headers,
            body,
        }
    }

    fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(end) = find(&self.buf, b"\r\n") {
                    break end;
                }
                self.fill();
            };
            let size =
                usize::from_str_radix(String::from_utf8_lossy(&self.buf[..line_end]).trim(), 16)
                    .expect("chunk size");
            while self.buf.len() < line_end + 2 + size + 2 {
                self.fill();
            }
            body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
            self.buf.drain(..line_end + 2 + size + 2);
            if size == 0 {
                return body;
            }
        }
    }

    /// Opens an event stream on this connection: returns the head; events follow via `next_event`.
    pub fn open_stream(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut out = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
            self.host
        );
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        self.stream.write_all(out.as_bytes()).expect("write");
        let head_end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            self.fill();
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        self.buf.drain(..head_end + 4);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Raw bytes already read past the last response (stream data).
    fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    fn read_some(&mut self) -> Vec<u8> {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).expect("read stream");
        assert!(n > 0, "stream closed by the server");
        chunk[..n].to_vec()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A legacy SSE session: a stream connection plus a keep-alive connection for the POSTs.
pub struct SseSession {
    stream: Http,
    parser: SseParser,
    events: VecDeque<(String, String)>,
    post: Http,
    endpoint: String,
    next_id: u64,
}

impl SseSession {
    /// `base` is e.g. "127.0.0.1:4298"; `sse_path` "/sse".
    pub fn open(base: &str, sse_path: &str) -> SseSession {
        let mut stream = Http::connect(base);
        let head = stream.open_stream(sse_path, &[]);
        assert_eq!(head.status, 200, "GET {sse_path}");
        let mut session = SseSession {
            stream,
            parser: SseParser::new(),
            events: VecDeque::new(),
            post: Http::connect(base),
            endpoint: String::new(),
            next_id: 1,
        };
        let buffered = session.stream.take_buffered();
        session.feed(&buffered);
        let (event, data) = session.next_event();
        assert_eq!(event, "endpoint");
        // The endpoint may be absolute or relative: keep the path.
        session.endpoint = match data.find("://") {
            Some(scheme) => {
                let rest = &data[scheme + 3..];
                rest[rest.find('/').unwrap_or(rest.len())..].to_string()
            }
            None => data,
        };
        session
    }

    fn feed(&mut self, bytes: &[u8]) {
        for e in self.parser.feed(bytes) {
            self.events.push_back((e.event, e.data));
        }
    }

    fn next_event(&mut self) -> (String, String) {
        loop {
            if let Some(event) = self.events.pop_front() {
                return event;
            }
            let bytes = self.stream.read_some();
            self.feed(&bytes);
        }
    }

    /// A request; waits for its response on the stream.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let endpoint = self.endpoint.clone();
        let response = self.post.post_json(
            &endpoint,
            &[],
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        );
        assert!(
            response.status / 100 == 2,
            "POST {endpoint}: {}",
            response.status
        );
        loop {
            let (event, data) = self.next_event();
            if event != "message" {
                continue;
            }
            let message: Value = serde_json::from_str(&data).expect("JSON message");
            if message["id"] == json!(id) {
                return message;
            }
        }
    }

    pub fn notify(&mut self, method: &str) {
        let endpoint = self.endpoint.clone();
        self.post
            .post_json(&endpoint, &[], &json!({"jsonrpc": "2.0", "method": method}));
    }

    pub fn initialize(&mut self) {
        let init = self.request("initialize", init_params());
        assert!(init.get("result").is_some(), "initialize: {init}");
        self.notify("notifications/initialized");
    }
}

/// A Streamable HTTP session over one keep-alive connection.
pub struct McpSession {
    http: Http,
    path: String,
    session: Option<String>,
    next_id: u64,
}

impl McpSession {
    pub fn open(base: &str, path: &str) -> McpSession {
        let mut session = McpSession {
            http: Http::connect(base),
            path: path.to_string(),
            session: None,
            next_id: 1,
        };
        let (response, init) = session.post(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init_params()}),
        );
        assert!(init.get("result").is_some(), "initialize: {init}");
        session.session = response.header("mcp-session-id").map(str::to_string);
        session.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        session
    }

    /// Another keep-alive connection into the same session, for calls in flight side by side; its
    /// request ids start at `first_id`, so ids in flight in one session stay distinct.
    pub fn another_connection(&self, first_id: u64) -> McpSession {
        McpSession {
            http: Http::connect(&self.http.host),
            path: self.path.clone(),
            session: self.session.clone(),
            next_id: first_id,
        }
    }

    fn post(&mut self, message: Value) -> (Response, Value) {
        let mut headers = vec![("Accept", "application/json, text/event-stream")];
        if let Some(id) = &self.session {
            headers.push(("Mcp-Session-Id", id.as_str()));
        }
        let path = self.path.clone();
        let response = self.http.post_json(&path, &headers, &message);
        assert!(
            response.status / 100 == 2,
            "POST {path}: {}",
            response.status
        );
        let last = if response.body.is_empty() {
            Value::Null
        } else if response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"))
        {
            SseParser::new()
                .feed(&response.body)
                .into_iter()
                .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
                .next_back()
                .unwrap_or(Value::Null)
        } else {
            serde_json::from_slice(&response.body).expect("JSON answer")
        };
        (response, last)
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .1
    }
}

pub fn init_params() -> Value {
    json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
}

/// An MCP stdio server spoken to directly: the floor the gateway is compared with.
pub struct Direct {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    line: String,
}

impl Direct {
    pub fn spawn(command: &[String]) -> Direct {
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the server");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut server = Direct {
            child,
            stdin,
            stdout,
            next_id: 1,
            line: String::new(),
        };
        server.request("initialize", init_params());
        server.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        server
    }

    fn send(&mut self, message: &Value) {
        let mut line = serde_json::to_vec(message).unwrap();
        line.push(b'\n');
        self.stdin.write_all(&line).expect("write to the server");
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            self.line.clear();
            let n = self.stdout.read_line(&mut self.line).expect("read");
            assert!(n > 0, "the server closed its output");
            if let Ok(message) = serde_json::from_str::<Value>(&self.line) {
                if message["id"] == json!(id) {
                    return message;
                }
            }
        }
    }

    pub fn close(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}
