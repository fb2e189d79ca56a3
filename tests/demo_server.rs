//! End-to-end tests of `mcp-demo-server`: each test spawns the binary and speaks
//! JSON-RPC over its pipes. Every read has a deadline, so no test can hang.

mod util;

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-demo-server");
const DEADLINE: Duration = Duration::from_secs(5);

struct Demo {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    backlog: VecDeque<Value>,
    next_id: u64,
}

impl Demo {
    fn spawn(args: &[&str]) -> Demo {
        Demo::spawn_env(args, &[])
    }

    fn spawn_env(args: &[&str], envs: &[(&str, &str)]) -> Demo {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("DEMO_SERVER_NAME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn mcp-demo-server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    return;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdin = child.stdin.take();
        Demo {
            child,
            stdin,
            lines: rx,
            stderr,
            backlog: VecDeque::new(),
            next_id: 0,
        }
    }

    fn send_raw(&mut self, line: &str) {
        // The server may already have exited on purpose (crash, --exit-after-init);
        // the assertions on its output catch anything unexpected.
        let stdin = self.stdin.as_mut().expect("stdin open");
        let _ = stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush());
    }

    fn send(&mut self, v: &Value) {
        self.send_raw(&format!("{v}\n"));
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next raw stdout line (without its newline), or None on timeout/EOF.
    fn line_within(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(mut l) => {
                assert!(l.ends_with('\n'), "line not newline-terminated: {l:?}");
                l.pop();
                Some(l)
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    fn msg_within(&mut self, timeout: Duration) -> Option<Value> {
        if let Some(v) = self.backlog.pop_front() {
            return Some(v);
        }
        let line = self.line_within(timeout)?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}")))
    }

    fn msg(&mut self) -> Value {
        self.msg_within(DEADLINE)
            .expect("timed out waiting for a message")
    }

    /// Reads until the response with `id`; other messages go to the backlog, in order.
    fn response(&mut self, id: &Value) -> Value {
        let deadline = Instant::now() + DEADLINE;
        let mut skipped = Vec::new();
        // Look in the backlog first.
        if let Some(pos) = self
            .backlog
            .iter()
            .position(|m| is_response(m) && &m["id"] == id)
        {
            return self.backlog.remove(pos).unwrap();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .line_within(left)
                .unwrap_or_else(|| panic!("no response for id {id}; skipped {skipped:?}"));
            let v: Value = serde_json::from_str(&line).unwrap();
            if is_response(&v) && &v["id"] == id {
                self.backlog.extend(skipped);
                return v;
            }
            skipped.push(v);
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = json!(self.next_id);
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(&id)
    }

    fn result(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params);
        assert!(r.get("error").is_none(), "{method} failed: {r}");
        r["result"].clone()
    }

    fn error(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params);
        assert!(r.get("result").is_none(), "{method} should fail: {r}");
        r["error"].clone()
    }

    fn call(&mut self, tool: &str, args: Value) -> Value {
        self.result("tools/call", json!({"name": tool, "arguments": args}))
    }

    fn init_with(&mut self, caps: Value) -> Value {
        let r = self.result(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": caps,
                   "clientInfo": {"name": "demo-test", "version": "0"}}),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        r
    }

    fn init(&mut self) -> Value {
        self.init_with(json!({}))
    }

    /// Asserts that no stdout line arrives for `dur`.
    fn expect_silence(&mut self, dur: Duration) {
        assert!(self.backlog.is_empty(), "unexpected {:?}", self.backlog);
        if let Some(l) = self.line_within(dur) {
            panic!("unexpected output: {l}");
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "server did not exit in time");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let s = self.stderr.lock().unwrap().clone();
            if s.contains(needle) {
                return s;
            }
            assert!(Instant::now() < deadline, "stderr lacks {needle:?}: {s}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_response(v: &Value) -> bool {
    v.get("method").is_none() && (v.get("result").is_some() || v.get("error").is_some())
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().expect("text content")
}

#[test]
fn initialize_negotiates_versions() {
    let mut d = Demo::spawn(&[]);
    for v in [
        "2025-11-25",
        "2025-06-18",
        "2025-03-26",
        "2024-11-05",
        "1999-01-01",
    ] {
        let r = d.result(
            "initialize",
            json!({"protocolVersion": v, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        );
        let expected = if v == "1999-01-01" { "2025-11-25" } else { v };
        assert_eq!(r["protocolVersion"], expected);
        assert_eq!(
            r["capabilities"],
            json!({"tools": {"listChanged": true},
                   "resources": {"subscribe": true, "listChanged": true},
                   "prompts": {"listChanged": true}, "logging": {}, "completions": {}})
        );
        assert_eq!(r["serverInfo"]["name"], "mcp-demo-server");
        assert!(r["serverInfo"]["version"].is_string());
        assert!(r["instructions"].is_string());
    }
    let e = d.error("initialize", json!({"capabilities": {}}));
    assert_eq!(e["code"], -32602);
}

#[test]
fn ping_ids_and_protocol_errors() {
    let mut d = Demo::spawn(&[]);
    // ping before initialize; ids are echoed exactly, 1 and "1" are distinct.
    d.send_raw("{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"method\":\"ping\"}\r\n\n   \n");
    let r = d.msg();
    assert_eq!(r, json!({"jsonrpc": "2.0", "id": "1", "result": {}}));
    d.send_raw("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n");
    assert_eq!(d.msg(), json!({"jsonrpc": "2.0", "id": 1, "result": {}}));

    d.send_raw("this is not json\n");
    let e = d.msg();
    assert_eq!(e["id"], Value::Null);
    assert_eq!(e["error"]["code"], -32700);

    d.send_raw("{\"jsonrpc\":\"2.0\",\"id\":5}\n");
    let e = d.msg();
    assert_eq!(
        (e["id"].clone(), e["error"]["code"].clone()),
        (json!(5), json!(-32600))
    );
    d.send_raw("{\"jsonrpc\":\"1.0\",\"id\":\"x\",\"method\":\"ping\"}\n");
    let e = d.msg();
    assert_eq!(
        (e["id"].clone(), e["error"]["code"].clone()),
        (json!("x"), json!(-32600))
    );
    d.send_raw("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}\n");
    let e = d.msg();
    assert_eq!(
        (e["id"].clone(), e["error"]["code"].clone()),
        (Value::Null, json!(-32600))
    );
    d.send_raw("[]\n");
    assert_eq!(d.msg()["error"]["code"], -32600);
    d.send_raw("42\n");
    assert_eq!(d.msg()["error"]["code"], -32600);

    let e = d.error("foo/bar", json!({}));
    assert_eq!(e["code"], -32601);
    assert_eq!(e["message"], "Method not found: foo/bar");

    // Unknown notifications and stray responses produce nothing.
    d.send(&json!({"jsonrpc": "2.0", "method": "notifications/whatever", "params": {}}));
    d.send(&json!({"jsonrpc": "2.0", "id": "s-999", "result": {}}));
    d.expect_silence(Duration::from_millis(150));
    d.wait_stderr("unknown id");
    assert_eq!(d.result("ping", json!({})), json!({}));

    // A batch: responses come back as one array; notifications get none.
    d.send_raw(concat!(
        r#"[{"jsonrpc":"2.0","id":"b1","method":"ping"},"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"},"#,
        r#"{"jsonrpc":"2.0","id":"b2","method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}]"#,
        "\n"
    ));
    let b = d.msg();
    let arr = b.as_array().expect("batch response");
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["id"], "b1");
    assert_eq!(arr[1]["result"]["content"][0]["text"], "x");
}

#[test]
fn tools_list_shape() {
    let mut d = Demo::spawn(&[]);
    d.init();
    let r = d.result("tools/list", json!({}));
    assert!(r.get("nextCursor").is_none());
    let tools = r["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, util::DEMO_TOOLS);
    for t in tools {
        assert!(
            t["title"].is_string() && t["description"].is_string(),
            "{t}"
        );
        let s = &t["inputSchema"];
        assert_eq!(s["type"], "object", "{t}");
        assert!(s["properties"].is_object(), "{t}");
        assert_eq!(s["additionalProperties"], false, "{t}");
    }
    let add = &tools[1];
    assert_eq!(add["outputSchema"]["properties"]["sum"]["type"], "number");
    assert_eq!(add["annotations"], json!({"readOnlyHint": true}));
    assert_eq!(add["inputSchema"]["required"], json!(["a", "b"]));
    let echo = &tools[0];
    assert!(echo.get("outputSchema").is_none() && echo.get("annotations").is_none());
}

#[test]
fn simple_tools() {
    let mut d = Demo::spawn_env(&[], &[("DEMO_TEST_VAR", "value-42")]);
    d.init();
    assert_eq!(text(&d.call("echo", json!({"text": "héllo"}))), "héllo");

    let r = d.call("add", json!({"a": 2, "b": 40}));
    assert_eq!(text(&r), "42");
    assert_eq!(r["structuredContent"], json!({"sum": 42}));
    assert!(r["structuredContent"]["sum"].is_i64());
    let r = d.call("add", json!({"a": 1.5, "b": 2}));
    assert_eq!(r["structuredContent"]["sum"], json!(3.5));

    let r = d.call("fail", json!({}));
    assert_eq!(r["isError"], true);
    assert_eq!(text(&r), "this tool always fails");
    assert_eq!(text(&d.call("fail", json!({"message": "boom"}))), "boom");

    assert_eq!(
        text(&d.call("env", json!({"name": "DEMO_TEST_VAR"}))),
        "value-42"
    );
    let r = d.call("env", json!({"name": "DEMO_SURELY_UNSET_VAR"}));
    assert_eq!((r["isError"].clone(), text(&r)), (json!(true), "not set"));

    let r = d.result("tools/call", json!({"name": "pid"}));
    assert_eq!(r["structuredContent"]["pid"], d.child.id());
    assert_eq!(text(&r), d.child.id().to_string());

    let n = 3 * 1024 * 1024 + 7;
    let r = d.call("big", json!({"bytes": n}));
    let t = text(&r);
    assert_eq!(t.len(), n);
    assert!(t.starts_with("abcdefghijklmnopqrstuvwxyz0123456789abc"));
    assert_eq!(text(&d.call("big", json!({"bytes": 0}))), "");

    assert_eq!(text(&d.call("sleep", json!({"ms": 10}))), "slept 10 ms");

    let e = d.error("tools/call", json!({"name": "nope", "arguments": {}}));
    assert_eq!(
        (e["code"].clone(), e["message"].clone()),
        (json!(-32602), json!("Unknown tool: nope"))
    );
    for (tool, args, needle) in [
        ("sleep", json!({"ms": -1}), "'ms'"),
        ("sleep", json!({}), "'ms'"),
        ("echo", json!({"text": 5}), "'text'"),
        ("add", json!({"a": 1}), "'b'"),
        ("big", json!({"bytes": 67_108_865}), "'bytes'"),
        ("echo", json!({"text": "x", "extra": 1}), "'extra'"),
    ] {
        let e = d.error("tools/call", json!({"name": tool, "arguments": args}));
        assert_eq!(e["code"], -32602);
        assert!(e["message"].as_str().unwrap().contains(needle), "{e}");
    }
}

#[test]
fn sleep_is_concurrent_and_cancellable() {
    let mut d = Demo::spawn(&[]);
    d.init();
    let start = Instant::now();
    d.send(
        &json!({"jsonrpc": "2.0", "id": "long", "method": "tools/call",
                   "params": {"name": "sleep", "arguments": {"ms": 30000}}}),
    );
    d.send(
        &json!({"jsonrpc": "2.0", "id": "short", "method": "tools/call",
                   "params": {"name": "sleep", "arguments": {"ms": 50}}}),
    );
    // ping is not blocked by the sleeps, and the short sleep finishes first.
    assert_eq!(d.result("ping", json!({})), json!({}));
    assert_eq!(text(&d.response(&json!("short"))["result"]), "slept 50 ms");
    d.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": "long", "reason": "test"}}),
    );
    // Cancelling an unknown id is ignored.
    d.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": 12345}}),
    );
    d.expect_silence(Duration::from_millis(300));
    assert_eq!(d.result("ping", json!({})), json!({}));
    assert!(start.elapsed() < Duration::from_secs(5));
    // The cancelled request's id can be used again.
    d.send(
        &json!({"jsonrpc": "2.0", "id": "long", "method": "tools/call",
                   "params": {"name": "sleep", "arguments": {"ms": 1}}}),
    );
    assert_eq!(text(&d.response(&json!("long"))["result"]), "slept 1 ms");
}

#[test]
fn progress_notifications() {
    let mut d = Demo::spawn(&[]);
    d.init();
    d.send(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                   "params": {"name": "progress", "arguments": {"steps": 3, "intervalMs": 5},
                              "_meta": {"progressToken": "tok"}}}));
    for i in 1..=3 {
        let n = d.msg();
        assert_eq!(
            n,
            json!({"jsonrpc": "2.0", "method": "notifications/progress",
                   "params": {"progressToken": "tok", "progress": i, "total": 3,
                              "message": format!("step {i} of 3")}})
        );
    }
    let r = d.msg();
    assert_eq!(r["id"], 7);
    assert_eq!(text(&r["result"]), "done 3 steps");

    // Without a token: no notifications.
    d.send(&json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                   "params": {"name": "progress", "arguments": {"steps": 2, "intervalMs": 1}}}));
    let r = d.msg();
    assert_eq!(r["id"], 8);
    assert_eq!(text(&r["result"]), "done 2 steps");

    // Cancelled between steps: the notifications stop and no response is sent.
    d.send(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                   "params": {"name": "progress", "arguments": {"steps": 1000, "intervalMs": 20},
                              "_meta": {"progressToken": 99}}}));
    assert_eq!(d.msg()["params"]["progress"], 1);
    d.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": 9}}),
    );
    // Notifications already on their way may still arrive; then the stream stops.
    let mut late = 0;
    while let Some(m) = d.msg_within(Duration::from_millis(150)) {
        assert_eq!(m["method"], "notifications/progress", "{m}");
        late += 1;
        assert!(late < 20, "progress did not stop after cancellation");
    }
    d.expect_silence(Duration::from_millis(200));
    assert_eq!(d.result("ping", json!({})), json!({}));
}

#[test]
fn logging_and_change_notifications() {
    let mut d = Demo::spawn(&[]);
    d.init();
    assert_eq!(
        d.result("logging/setLevel", json!({"level": "warning"})),
        json!({})
    );
    assert_eq!(
        d.error("logging/setLevel", json!({"level": "loud"}))["code"],
        -32602
    );
    assert_eq!(
        text(&d.call("log", json!({"message": "quiet one"}))),
        "logged"
    );
    assert!(
        d.backlog.is_empty(),
        "info must be filtered: {:?}",
        d.backlog
    );
    d.call("log", json!({"message": "loud one", "level": "error"}));
    assert_eq!(
        d.msg(),
        json!({"jsonrpc": "2.0", "method": "notifications/message",
               "params": {"level": "error", "logger": "demo", "data": "loud one"}})
    );
    let err = d.wait_stderr("demo: loud one");
    assert!(err.contains("demo: quiet one"));

    assert_eq!(text(&d.call("notify_changed", json!({}))), "notified");
    let kinds: Vec<Value> = (0..3).map(|_| d.msg()["method"].clone()).collect();
    assert_eq!(
        kinds,
        [
            "notifications/tools/list_changed",
            "notifications/resources/list_changed",
            "notifications/prompts/list_changed"
        ]
    );

    assert_eq!(
        text(&d.call("touch", json!({"uri": "demo://readme"}))),
        "touched"
    );
    assert!(d.backlog.is_empty());
    d.result("resources/subscribe", json!({"uri": "demo://readme"}));
    d.call("touch", json!({"uri": "demo://readme"}));
    assert_eq!(
        d.msg(),
        json!({"jsonrpc": "2.0", "method": "notifications/resources/updated",
               "params": {"uri": "demo://readme"}})
    );
    d.result("resources/unsubscribe", json!({"uri": "demo://readme"}));
    d.call("touch", json!({"uri": "demo://readme"}));
    assert!(d.backlog.is_empty());
}

/// Answers the next server-to-client request with `answer` and returns that request.
fn answer_request(d: &mut Demo, method: &str, answer: Value) -> Value {
    let req = d.msg();
    assert_eq!(req["method"], method, "{req}");
    let id = req["id"].clone();
    assert!(id.as_str().unwrap().starts_with("s-"));
    let mut resp = json!({"jsonrpc": "2.0", "id": id});
    let key = if answer.get("code").is_some() {
        "error"
    } else {
        "result"
    };
    resp[key] = answer;
    d.send(&resp);
    req
}

fn start_call(d: &mut Demo, id: &str, tool: &str, args: Value) {
    d.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                   "params": {"name": tool, "arguments": args}}));
}

#[test]
fn requests_to_the_client() {
    let mut d = Demo::spawn(&[]);
    d.init_with(json!({"roots": {"listChanged": true}, "sampling": {}, "elicitation": {}}));

    start_call(&mut d, "r", "roots", json!({}));
    let roots = json!({"roots": [{"uri": "file:///tmp", "name": "tmp"}]});
    let req = answer_request(&mut d, "roots/list", roots.clone());
    assert_eq!(req["id"], "s-1");
    let r = d.response(&json!("r"))["result"].clone();
    assert_eq!(serde_json::from_str::<Value>(text(&r)).unwrap(), roots);

    start_call(&mut d, "s", "sample", json!({"prompt": "say pong"}));
    let req = answer_request(
        &mut d,
        "sampling/createMessage",
        json!({"role": "assistant", "content": {"type": "text", "text": "pong"}, "model": "m"}),
    );
    assert_eq!(
        req["params"],
        json!({"messages": [{"role": "user", "content": {"type": "text", "text": "say pong"}}],
               "maxTokens": 100})
    );
    assert_eq!(text(&d.response(&json!("s"))["result"]), "pong");

    start_call(&mut d, "e", "elicit", json!({"message": "name?"}));
    let answer = json!({"action": "accept", "content": {"answer": "x"}});
    let req = answer_request(&mut d, "elicitation/create", answer.clone());
    assert_eq!(req["params"]["message"], "name?");
    assert_eq!(
        req["params"]["requestedSchema"]["properties"]["answer"]["type"],
        "string"
    );
    let r = d.response(&json!("e"))["result"].clone();
    assert_eq!(serde_json::from_str::<Value>(text(&r)).unwrap(), answer);

    // An error from the client becomes a tool error.
    start_call(&mut d, "r2", "roots", json!({}));
    answer_request(&mut d, "roots/list", json!({"code": -1, "message": "nope"}));
    let r = d.response(&json!("r2"))["result"].clone();
    assert_eq!(r["isError"], true);

    // Cancelling a call that waits for the client also cancels the server's request.
    start_call(&mut d, "r3", "roots", json!({}));
    let req = d.msg();
    d.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": "r3"}}),
    );
    let n = d.msg();
    assert_eq!(n["method"], "notifications/cancelled");
    assert_eq!(n["params"]["requestId"], req["id"]);
    d.expect_silence(Duration::from_millis(100));
}

#[test]
fn client_requests_need_capabilities_and_time_out() {
    let mut d = Demo::spawn(&["--request-timeout", "150"]);
    d.init_with(json!({"elicitation": {"url": {}}}));
    for (tool, args) in [
        ("roots", json!({})),
        ("sample", json!({"prompt": "p"})),
        ("elicit", json!({"message": "m"})),
    ] {
        let r = d.call(tool, args);
        assert_eq!(r["isError"], true, "{tool}");
        assert!(text(&r).contains("does not support"), "{r}");
    }
    d.init_with(json!({"roots": {}}));
    start_call(&mut d, "t", "roots", json!({}));
    let req = d.msg();
    assert_eq!(req["method"], "roots/list");
    // No answer: after the timeout the server cancels its request and reports an error.
    let n = d.msg();
    assert_eq!(n["method"], "notifications/cancelled");
    let r = d.response(&json!("t"))["result"].clone();
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("timed out"));
}

#[test]
fn resources() {
    let mut d = Demo::spawn(&[]);
    d.init();
    let r = d.result("resources/list", json!({}));
    let uris: Vec<&str> = r["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        ["demo://readme", "demo://data.json", "demo://logo.png"]
    );
    let t = d.result("resources/templates/list", json!({}));
    assert_eq!(
        t["resourceTemplates"][0]["uriTemplate"],
        "demo://echo/{text}"
    );
    assert_eq!(t["resourceTemplates"][0]["name"], "echo");

    let c = &d.result("resources/read", json!({"uri": "demo://readme"}))["contents"][0];
    assert_eq!(c["mimeType"], "text/markdown");
    assert!(c["text"].as_str().unwrap().contains("mcp-demo-server"));
    let c = d.result("resources/read", json!({"uri": "demo://data.json"}))["contents"][0].clone();
    assert!(serde_json::from_str::<Value>(c["text"].as_str().unwrap()).is_ok());
    let c = d.result("resources/read", json!({"uri": "demo://logo.png"}))["contents"][0].clone();
    assert_eq!(c["mimeType"], "image/png");
    assert!(c["blob"].as_str().unwrap().starts_with("iVBORw0KGgo"));
    let c = d.result(
        "resources/read",
        json!({"uri": "demo://echo/hello%20w%C3%B6rld"}),
    )["contents"][0]
        .clone();
    assert_eq!(c["text"], "hello wörld");
    assert_eq!(c["uri"], "demo://echo/hello%20w%C3%B6rld");

    let e = d.error("resources/read", json!({"uri": "demo://nope"}));
    assert_eq!(
        e,
        json!({"code": -32002, "message": "Resource not found", "data": {"uri": "demo://nope"}})
    );
}

#[test]
fn prompts_and_completion() {
    let mut d = Demo::spawn(&[]);
    d.init();
    let r = d.result("prompts/list", json!({}));
    let names: Vec<&str> = r["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["greet", "summarize"]);
    let g = d.result(
        "prompts/get",
        json!({"name": "greet", "arguments": {"name": "Bea"}}),
    );
    assert!(g["description"].is_string());
    assert_eq!(
        g["messages"],
        json!([{"role": "user", "content": {"type": "text", "text": "Please greet Bea warmly."}}])
    );
    let s = d.result(
        "prompts/get",
        json!({"name": "summarize", "arguments": {"text": "T", "style": "short"}}),
    );
    assert!(s["messages"][0]["content"]["text"]
        .as_str()
        .unwrap()
        .ends_with("T"));
    let e = d.error("prompts/get", json!({"name": "greet", "arguments": {}}));
    assert_eq!(e["code"], -32602);
    assert!(e["message"].as_str().unwrap().contains("'name'"));
    assert_eq!(
        d.error("prompts/get", json!({"name": "nope"}))["code"],
        -32602
    );

    let c = d.result(
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "greet"},
               "argument": {"name": "name", "value": "a"}}),
    );
    assert_eq!(
        c,
        json!({"completion": {"values": ["alice"], "total": 1, "hasMore": false}})
    );
    let c = d.result(
        "completion/complete",
        json!({"ref": {"type": "ref/resource", "uri": "demo://echo/{text}"},
               "argument": {"name": "text", "value": ""}}),
    );
    assert_eq!(c["completion"]["values"], json!(["hello", "world"]));
    let e = d.error(
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "nope"},
               "argument": {"name": "x", "value": ""}}),
    );
    assert_eq!(e["code"], -32602);
}

#[test]
fn pagination() {
    let mut d = Demo::spawn(&["--page-size", "4"]);
    d.init();
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let r = d.result("tools/list", params);
        let page = r["tools"].as_array().unwrap();
        assert!(!page.is_empty() && page.len() <= 4);
        names.extend(page.iter().map(|t| t["name"].as_str().unwrap().to_string()));
        pages += 1;
        match r.get("nextCursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(names.len(), 15);
    assert_eq!(names[0], "echo");
    assert_eq!(names[14], "touch");
    let e = d.error("tools/list", json!({"cursor": "bogus"}));
    assert_eq!(e["code"], -32602);
    let r = d.result("resources/list", json!({}));
    assert_eq!(r["resources"].as_array().unwrap().len(), 3);
    assert!(r.get("nextCursor").is_none());
}

#[test]
fn crash_exits_without_answering() {
    let mut d = Demo::spawn(&[]);
    d.init();
    start_call(&mut d, "c", "crash", json!({"code": 3}));
    let status = d.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(3));
    assert!(d.line_within(Duration::from_millis(200)).is_none());
    d.wait_stderr("crash");
}

#[test]
fn banner_and_junk_lines() {
    let mut d = Demo::spawn(&[
        "--banner",
        "hello banner",
        "--banner=second",
        "--junk-every",
        "2",
    ]);
    assert_eq!(d.line_within(DEADLINE).unwrap(), "hello banner");
    assert_eq!(d.line_within(DEADLINE).unwrap(), "second");
    d.send_raw("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n");
    assert!(d.line_within(DEADLINE).unwrap().starts_with('{'));
    d.send_raw("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n");
    assert_eq!(d.line_within(DEADLINE).unwrap(), "junk line 1");
    assert!(d.line_within(DEADLINE).unwrap().starts_with('{'));
    d.send_raw("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}\n");
    assert!(d.line_within(DEADLINE).unwrap().starts_with('{'));
    d.send_raw("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}\n");
    assert_eq!(d.line_within(DEADLINE).unwrap(), "junk line 2");
}

#[test]
fn start_and_exit_flags() {
    let mut d = Demo::spawn(&["--exit-at-start", "7"]);
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(7));

    let mut d = Demo::spawn(&["--no-such-flag"]);
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(2));
    d.wait_stderr("Usage");

    let mut d = Demo::spawn(&["--exit-after-init", "--stderr-lines", "3"]);
    d.wait_stderr("demo: starting line 3");
    let r = d.init();
    assert_eq!(r["protocolVersion"], "2025-11-25");
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(0));
}

#[test]
fn names_tool_selection_and_extra_tools() {
    let mut d = Demo::spawn_env(&[], &[("DEMO_SERVER_NAME", "from-env")]);
    assert_eq!(d.init()["serverInfo"]["name"], "from-env");
    let mut d = Demo::spawn_env(
        &["--name", "from-flag"],
        &[("DEMO_SERVER_NAME", "from-env")],
    );
    assert_eq!(d.init()["serverInfo"]["name"], "from-flag");

    let long = "x".repeat(100);
    let mut d = Demo::spawn(&[
        "--tools",
        "echo,add",
        "--extra-tool",
        "my.tool",
        "--extra-tool",
        &long,
    ]);
    d.init();
    let r = d.result("tools/list", json!({}));
    let tools = r["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["echo", "add", "my.tool", long.as_str()]);
    assert!(tools[2].get("title").is_none() && tools[2].get("annotations").is_none());
    assert!(tools[2]["description"].as_str().unwrap().contains("echo"));
    assert_eq!(
        text(&d.call("my.tool", json!({"text": "aliased"}))),
        "aliased"
    );
    assert_eq!(text(&d.call(&long, json!({"text": "long"}))), "long");
    let e = d.error(
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 1}}),
    );
    assert_eq!(e["message"], "Unknown tool: sleep");
}

#[test]
fn init_delay_does_not_block_ping() {
    let mut d = Demo::spawn(&["--init-delay", "300"]);
    let start = Instant::now();
    d.send(
        &json!({"jsonrpc": "2.0", "id": "init", "method": "initialize",
                   "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                              "clientInfo": {"name": "t", "version": "1"}}}),
    );
    d.send(&json!({"jsonrpc": "2.0", "id": "p", "method": "ping"}));
    assert_eq!(d.msg()["id"], "p");
    let r = d.msg();
    assert_eq!(r["id"], "init");
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[test]
fn eof_lets_running_calls_finish_then_exits_cleanly() {
    let mut d = Demo::spawn(&[]);
    d.init();
    start_call(&mut d, "z", "sleep", json!({"ms": 200}));
    d.close_stdin();
    let r = d.msg();
    assert_eq!(r["id"], "z");
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(0));

    // A call that would outlast the grace period does not keep the server alive.
    let mut d = Demo::spawn(&[]);
    d.init();
    start_call(&mut d, "long", "sleep", json!({"ms": 60000}));
    let start = Instant::now();
    d.close_stdin();
    assert_eq!(d.wait_exit(DEADLINE).code(), Some(0));
    assert!(start.elapsed() < Duration::from_secs(3));
}
