//! Hardening: what a careless or hostile client sends, holds open or drops cannot take the gateway
//! down, fill its memory or read what it should not. Each test is one row of the table,
//! against the real binary on loopback, asserting answers, statuses and the gateway's counters.

mod util;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use util::{demo, request_bytes, Gateway};

const ANSWER: Duration = Duration::from_secs(20);

fn demo_config(extra: Value) -> Value {
    let mut config = json!({"servers": [demo("demo", &[])]});
    config["gateway"] = extra;
    config
}

/// Waits until the demo tools are routable (so calls are not held as "server starting").
fn ready(gw: &Gateway) {
    gw.wait_up();
    util::wait_for(ANSWER, "the demo tools to be routable", || {
        let tools = gw.get("/tools").json();
        tools["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "echo"))
            .then_some(())
    });
}

fn rest_call_bytes(name: &str, arguments: Value) -> Vec<u8> {
    request_bytes(
        "POST",
        "/tools/call",
        &[("Content-Type", "application/json")],
        &serde_json::to_vec(&json!({"name": name, "arguments": arguments})).unwrap(),
    )
}

fn mcp_bytes(session: &str, message: &Value) -> Vec<u8> {
    request_bytes(
        "POST",
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Session-Id", session),
        ],
        &serde_json::to_vec(message).unwrap(),
    )
}

/// Reads consecutive Content-Length responses off one connection.
struct Responses {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Responses {
    /// The next (status, body), 1xx skipped; None when the connection ends first.
    fn next(&mut self) -> Option<(u16, Vec<u8>)> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
                let length = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + length {
                    let body = self.buf[end + 4..end + 4 + length].to_vec();
                    self.buf.drain(..end + 4 + length);
                    if (100..200).contains(&status) {
                        continue;
                    }
                    return Some((status, body));
                }
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[test]
fn fifty_thousand_pipelined_pings_on_one_connection_are_all_answered() {
    const PINGS: usize = 50_000;
    let gw = Gateway::start(json!({"servers": []}));
    let session = gw.mcp();
    let stream = gw.connect();
    let mut writer = stream.try_clone().unwrap();
    let id = session.session_id.clone();
    // The whole batch is written while the answers are read: the gateway must neither recurse
    // per pipelined request nor buffer without bound.
    let sender = std::thread::spawn(move || {
        let mut batch = Vec::new();
        for i in 0..PINGS {
            batch.extend_from_slice(&mcp_bytes(
                &id,
                &json!({"jsonrpc": "2.0", "id": i, "method": "ping"}),
            ));
            if batch.len() > 256 * 1024 || i == PINGS - 1 {
                writer.write_all(&batch).unwrap();
                batch.clear();
            }
        }
    });
    let mut responses = Responses {
        stream,
        buf: Vec::new(),
    };
    for i in 0..PINGS {
        let (status, body) = responses
            .next()
            .unwrap_or_else(|| panic!("the connection ended after {i} answers"));
        assert_eq!(status, 200);
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["id"], i, "answers come in request order");
        assert_eq!(answer["result"], json!({}));
    }
    sender.join().unwrap();
    assert_eq!(gw.health()["status"], "ok", "the gateway is still alive");
}

#[test]
fn hosts_that_are_not_loopback_are_refused_on_a_loopback_gateway() {
    let gw = Gateway::start(demo_config(json!({"allowedHosts": ["gw.internal"]})));
    let with_host = |host: &str, method: &str, path: &str, body: &[u8]| {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        head.push_str(&String::from_utf8_lossy(body));
        gw.raw(head.as_bytes())
    };
    let initialize = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
    .unwrap();
    for (method, path, body) in [
        ("GET", "/tools", &b""[..]),
        ("GET", "/sse", b""),
        ("POST", "/mcp", &initialize),
        ("GET", "/health", b""),
        ("OPTIONS", "/mcp", b""),
    ] {
        let refused = with_host("evil.example.com", method, path, body);
        assert_eq!(refused.status, 403, "{method} {path}: {}", refused.text());
        let message = refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains("evil.example.com"), "{message}");
        assert!(message.contains("gateway.allowedHosts"), "{message}");
        let port = format!("evil.example.com:{}", gw.port);
        assert_eq!(with_host(&port, method, path, body).status, 403);
    }
    assert_eq!(
        sessions_open(&gw),
        0,
        "no session was opened for a refused host"
    );
    for host in [
        "localhost",
        &format!("localhost:{}", gw.port),
        &gw.addr(),
        "[::1]",
        "gw.internal",
        "GW.INTERNAL:4298",
    ] {
        let ok = with_host(host, "GET", "/tools", b"");
        assert_eq!(ok.status, 200, "{host}: {}", ok.text());
    }
    let no_host = gw.raw(b"GET /tools HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(no_host.status, 400, "{}", no_host.text());
    assert!(no_host.text().contains("Host header"), "{}", no_host.text());
    let old_client = gw.raw(b"GET /tools HTTP/1.0\r\n\r\n");
    assert_eq!(old_client.status, 200, "HTTP/1.0 may omit Host");
}

/// The number of open MCP sessions, from `/health`.
fn sessions_open(gw: &Gateway) -> u64 {
    gw.health()["sessions"].as_u64().unwrap()
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_health_tells_only_its_status_without_it() {
    let leaky = json!({"name": "leaky", "command": ["sh", "-c",
        "echo 'connect failed: API_KEY=sk-live-0123456789abcdefXYZ token=hunter2 Authorization: Bearer abc.def' >&2; exit 3"]});
    let gw = Gateway::start(json!({
        "gateway": {"authToken": "s3cret"},
        "servers": [demo("demo", &[]), leaky],
    }));
    for scheme in ["Bearer", "bearer", "BEARER", "BeArEr"] {
        let auth = format!("{scheme} s3cret");
        let tools = gw.request("GET", "/tools", &[("Authorization", &auth)], b"");
        assert_eq!(tools.status, 200, "{scheme}: {}", tools.text());
    }
    let wrong = gw.request("GET", "/tools", &[("Authorization", "Bearer nope")], b"");
    assert_eq!(wrong.status, 401);

    let anonymous = gw.get("/health");
    let body = anonymous.json();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["status"],
        "{body}"
    );
    let with_wrong = gw
        .request("GET", "/health", &[("Authorization", "Bearer nope")], b"")
        .json();
    assert_eq!(with_wrong.as_object().unwrap().len(), 1, "{with_wrong}");

    let full = |gw: &Gateway| {
        gw.request("GET", "/health", &[("Authorization", "BEARER s3cret")], b"")
            .json()
    };
    let leaky = util::wait_for(ANSWER, "the leaky server to fail", || {
        let health = full(&gw);
        let leaky = health["servers"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "leaky")?
            .clone();
        leaky["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("connect failed"))
            .then_some(leaky)
    });
    let error = leaky["lastError"].as_str().unwrap();
    for secret in ["sk-live", "0123456789abcdef", "hunter2", "abc.def"] {
        assert!(!error.contains(secret), "{secret} leaked: {error}");
    }
    assert!(error.contains("API_KEY=***"), "{error}");
    assert!(full(&gw)["servers"].as_array().unwrap().len() == 2);
}

#[test]
fn sessions_are_capped_with_a_503() {
    let gw = Gateway::start(demo_config(json!({"maxSessions": 3})));
    let sessions: Vec<_> = (0..3).map(|_| gw.mcp()).collect();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let refused = gw.request(
        "POST",
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        &serde_json::to_vec(&initialize).unwrap(),
    );
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], -32000);
    assert!(refused.text().contains("gateway.maxSessions is 3"));
    assert!(refused.header("mcp-session-id").is_none());
    let legacy = gw.get("/sse");
    assert_eq!(legacy.status, 503, "{}", legacy.text());
    assert_eq!(sessions_open(&gw), 3);

    assert_eq!(sessions[0].delete().status, 200);
    assert_eq!(sessions_open(&gw), 2);
    let again = gw.mcp();
    assert!(!again.session_id.is_empty());
    assert_eq!(sessions_open(&gw), 3);
}

#[test]
fn in_flight_calls_per_session_are_capped() {
    let gw = Gateway::start(demo_config(json!({"maxInFlightPerSession": 2})));
    ready(&gw);
    let session = gw.mcp();
    // Two slow calls on their own connections (each POST waits for its answer).
    let mut slow = Vec::new();
    for id in 0..2 {
        let mut stream = gw.connect();
        stream
            .write_all(&mcp_bytes(
                &session.session_id,
                &json!({"jsonrpc": "2.0", "id": 100 + id, "method": "tools/call",
                        "params": {"name": "sleep", "arguments": {"ms": 60_000}}}),
            ))
            .unwrap();
        slow.push(stream);
    }
    util::wait_for(ANSWER, "two calls in flight", || {
        (gw.health()["inFlight"] == 2).then_some(())
    });
    let third = session.post(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x"}}}));
    let answer = third.response();
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("gateway.maxInFlightPerSession is 2"),
        "{message}"
    );
    // Cheap methods answered by the gateway itself are not calls: still served.
    let ping = session.post(&json!({"jsonrpc": "2.0", "id": 8, "method": "ping"}));
    assert_eq!(ping.response()["result"], json!({}));
    // Another session has its own budget.
    let mut other = gw.mcp();
    let echo = other.request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "other"}}),
    );
    assert_eq!(
        echo.response()["result"]["content"][0]["text"],
        "other",
        "{}",
        echo.http.text()
    );
    drop(slow); // the clients leave: their calls are cancelled
    util::wait_for(ANSWER, "the dropped calls cancelled", || {
        (gw.health()["inFlight"] == 0).then_some(())
    });
    let after = session.post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "again"}}}));
    assert_eq!(after.response()["result"]["content"][0]["text"], "again");
}

#[test]
fn clients_that_drop_their_connection_cancel_their_calls_on_every_transport() {
    let server = json!({"name": "demo", "command": [util::demo_server()], "poolSize": 2,
                        "minConnections": 1, "acquireTimeout": 60000});
    let gw = Gateway::start(json!({"servers": [server]}));
    ready(&gw);
    let session = gw.mcp();
    let mut dropped = Vec::new();
    for i in 0..50 {
        let mut stream = gw.connect();
        let bytes = if i % 2 == 0 {
            rest_call_bytes("sleep", json!({"ms": 300_000}))
        } else {
            mcp_bytes(
                &session.session_id,
                &json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                        "params": {"name": "sleep", "arguments": {"ms": 300_000}}}),
            )
        };
        stream.write_all(&bytes).unwrap();
        dropped.push(stream);
    }
    util::wait_for(ANSWER, "50 calls in flight", || {
        (gw.health()["inFlight"] == 50).then_some(())
    });
    util::wait_for(ANSWER, "both handles running a sleep", || {
        (gw.server_health("demo")["pool"]["busy"] == 2).then_some(())
    });
    drop(dropped);
    util::wait_for(ANSWER, "every dropped call cancelled", || {
        let health = gw.health();
        let pool = &health["servers"][0]["pool"];
        (health["inFlight"] == 0 && pool["busy"] == 0).then_some(())
    });
    let next = gw.call("echo", json!({"text": "at once"}));
    assert_eq!(next.status, 200, "{}", next.text());
    assert_eq!(next.json()["result"]["content"][0]["text"], "at once");
    assert!(
        gw.logs().contains("cancelling it"),
        "the gateway says why the calls ended"
    );
}

#[test]
fn big_answers_nobody_reads_are_capped_and_memory_comes_back() {
    const BIG: u64 = 20 << 20;
    let gw = Gateway::start(demo_config(json!({"maxMemoryBytes": 128 << 20})));
    ready(&gw);
    // Warm up: one big answer read in full, so the baseline includes what one call costs.
    let warm = gw.call("big", json!({"bytes": 1 << 20}));
    assert_eq!(warm.status, 200);
    let baseline = vm_rss_kib(gw.pid());

    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut stream = gw.connect();
        stream
            .write_all(&rest_call_bytes("big", json!({"bytes": BIG})))
            .unwrap();
        idle.push(stream); // never read
    }
    util::wait_for(
        Duration::from_secs(60),
        "all 20 answered or refused",
        || (gw.health()["inFlight"] == 0).then_some(()),
    );
    let peak = vm_rss_kib(gw.pid());
    // A client that does read now: the memory for queued answers is full.
    let refused = gw.call("big", json!({"bytes": BIG}));
    assert_eq!(
        refused.status,
        503,
        "{}",
        &refused.text()[..200.min(refused.body.len())]
    );
    assert!(refused.text().contains("gateway.maxMemoryBytes"));
    // Small answers still pass.
    assert_eq!(gw.call("echo", json!({"text": "small"})).status, 200);
    assert!(
        peak < baseline + (128 << 10) + 3 * (BIG >> 10),
        "RSS {peak} KiB: more than the cap plus the answers in transit (baseline {baseline} KiB)"
    );

    drop(idle);
    let after = util::wait_for(ANSWER, "RSS back near the baseline", || {
        let rss = vm_rss_kib(gw.pid());
        (rss <= baseline + baseline / 5).then_some(rss)
    });
    eprintln!("RSS baseline {baseline} KiB, peak {peak} KiB, after {after} KiB");
    let again = gw.call("big", json!({"bytes": BIG}));
    assert_eq!(again.status, 200, "the memory is free again");
    assert_eq!(
        again.json()["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .len() as u64,
        BIG
    );
}

#[test]
fn an_answer_larger_than_max_queued_bytes_is_refused_with_a_502() {
    let gw = Gateway::start(demo_config(json!({"maxQueuedBytes": 1 << 20})));
    ready(&gw);
    let refused = gw.call("big", json!({"bytes": 2 << 20}));
    assert_eq!(refused.status, 502, "{}", refused.text());
    assert!(refused.text().contains("gateway.maxQueuedBytes is 1048576"));
    let mut session = gw.mcp();
    let reply = session.request(
        "tools/call",
        json!({"name": "big", "arguments": {"bytes": 2 << 20}}),
    );
    assert_eq!(reply.response()["error"]["code"], -32603);
    assert!(reply.response()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gateway.maxQueuedBytes"));
    assert_eq!(gw.call("big", json!({"bytes": 512 << 10})).status, 200);
}

#[test]
fn an_event_stream_its_client_does_not_read_is_closed_past_max_queued_bytes() {
    let gw = Gateway::start(demo_config(json!({"maxQueuedBytes": 1 << 20})));
    ready(&gw);
    let mut sse = gw.sse();
    sse.initialize();
    assert_eq!(sessions_open(&gw), 1);
    // Answers of 900 KiB each, never read: more than the socket buffers and the cap together.
    for id in 0..30 {
        sse.send(
            &json!({"jsonrpc": "2.0", "id": 100 + id, "method": "tools/call",
                         "params": {"name": "big", "arguments": {"bytes": 900 << 10}}}),
        );
    }
    gw.wait_log("would pass gateway.maxQueuedBytes = 1048576", ANSWER);
    util::wait_for(ANSWER, "the legacy session ended with its stream", || {
        (sessions_open(&gw) == 0).then_some(())
    });
    util::wait_for(ANSWER, "the remaining calls done", || {
        (gw.health()["inFlight"] == 0).then_some(())
    });
    assert_eq!(gw.call("echo", json!({"text": "fine"})).status, 200);
}

#[test]
fn calls_running_when_the_grace_period_ends_are_answered_gateway_stopping() {
    let mut gw = Gateway::start(demo_config(json!({"shutdownTimeout": 300})));
    ready(&gw);
    let session = gw.mcp();
    let mut rest = gw.connect();
    rest.write_all(&rest_call_bytes("sleep", json!({"ms": 60_000})))
        .unwrap();
    let mut mcp = gw.connect();
    mcp.write_all(&mcp_bytes(
        &session.session_id,
        &json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                "params": {"name": "sleep", "arguments": {"ms": 60_000}}}),
    ))
    .unwrap();
    util::wait_for(ANSWER, "two calls in flight", || {
        (gw.health()["inFlight"] == 2).then_some(())
    });
    gw.signal(libc::SIGTERM);
    let rest = util::read_response(&mut rest).expect("an answer, not a bare close");
    assert_eq!(rest.status, 503, "{}", rest.text());
    assert!(rest.text().contains("gateway stopping"), "{}", rest.text());
    let mcp = util::read_response(&mut mcp).expect("an answer, not a bare close");
    let answer = util::mcp_messages(&mcp).pop().unwrap();
    assert_eq!(answer["id"], 5);
    assert_eq!(answer["error"]["code"], -32000);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gateway stopping"));
    assert!(gw.wait_exit(ANSWER).success());
}

#[test]
fn clients_over_max_clients_read_a_503_not_a_reset() {
    let gw = Gateway::start(json!({"gateway": {"maxClients": 4}, "servers": []}));
    let mut holders = Vec::new();
    for _ in 0..4 {
        let mut stream = gw.connect();
        stream
            .write_all(&request_bytes("GET", "/health", &[], b""))
            .unwrap();
        let mut responses = Responses {
            stream,
            buf: Vec::new(),
        };
        assert_eq!(responses.next().unwrap().0, 200);
        holders.push(responses);
    }
    let addr = gw.addr();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for _ in 0..25 {
                    let mut stream = TcpStream::connect(&addr).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(20)))
                        .unwrap();
                    // An ordinary client: writes its request at once, then reads.
                    let _ = stream.write_all(&request_bytes("GET", "/health", &[], b""));
                    statuses.push(util::read_response(&mut stream).map(|r| {
                        let text = r.text();
                        (r.status, text.contains("gateway.maxClients is 4"))
                    }));
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<_> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(statuses.len(), 200);
    let refused = statuses.iter().filter(|s| **s == Some((503, true))).count();
    assert_eq!(refused, 200, "every client read the 503: {statuses:?}");
    // The holders are still served, and the gateway takes new clients once they leave.
    let (status, _) = {
        holders[0]
            .stream
            .write_all(&request_bytes("GET", "/health", &[], b""))
            .unwrap();
        holders[0].next().unwrap()
    };
    assert_eq!(status, 200);
    drop(holders);
    util::wait_for(ANSWER, "room for a new client", || {
        (gw.get("/health").status == 200).then_some(())
    });
}

/// Every descendant of `pid` (from /proc), excluding zombies.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for child in util::children_of(parent) {
            found.push(child);
            frontier.push(child);
        }
    }
    found
}

fn alive(pid: u32) -> bool {
    util::stat(pid).is_some_and(|(_, state)| state != 'Z')
}

#[test]
fn nothing_the_gateway_started_outlives_its_sigkill_not_even_setsid_grandchildren() {
    nothing_outlives(libc::SIGKILL);
}

#[test]
fn nothing_the_gateway_started_outlives_a_graceful_stop_not_even_setsid_grandchildren() {
    nothing_outlives(libc::SIGTERM);
}

fn nothing_outlives(signal: i32) {
    // A server that leaves behind a grandchild in its process group and one in a new session,
    // neither reading stdin, then becomes the demo server.
    let script = format!(
        "sleep 600 </dev/null >/dev/null 2>&1 & setsid sleep 601 </dev/null >/dev/null 2>&1 & exec {}",
        util::demo_server()
    );
    let mut gw = Gateway::start(json!({"servers": [
        {"name": "spawner", "command": ["sh", "-c", script], "poolSize": 2, "minConnections": 2},
    ]}));
    ready(&gw);
    let tree = util::wait_for(ANSWER, "two servers with two grandchildren each", || {
        let tree = descendants(gw.pid());
        let sleeps = tree
            .iter()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
            .count();
        (sleeps == 4).then_some(tree)
    });
    assert!(tree.len() >= 6, "{tree:?}");
    gw.signal(signal);
    let _ = gw.wait_exit(ANSWER);
    let left = util::wait_for(ANSWER, "every process of the gateway gone", || {
        let left: Vec<u32> = tree.iter().copied().filter(|pid| alive(*pid)).collect();
        left.is_empty().then_some(left)
    });
    assert!(left.is_empty());
}

#[test]
fn a_legacy_client_posting_without_waiting_is_capped_per_session() {
    let gw = Gateway::start(demo_config(json!({"maxInFlightPerSession": 2})));
    ready(&gw);
    let mut sse = gw.sse();
    sse.initialize();
    for id in 0..6 {
        sse.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                         "params": {"name": "sleep", "arguments": {"ms": 60_000}}}));
    }
    // Four are refused on the stream at once; two run.
    let mut refused = Vec::new();
    while refused.len() < 4 {
        let message = sse.next_message(ANSWER).expect("a refusal on the stream");
        assert_eq!(message["error"]["code"], -32000, "{message}");
        assert!(message["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gateway.maxInFlightPerSession is 2"));
        refused.push(message["id"].as_u64().unwrap());
    }
    refused.sort();
    assert_eq!(refused, [2, 3, 4, 5]);
    assert_eq!(gw.health()["inFlight"], 2);
    sse.close(); // the stream closes: the session's calls are cancelled
    util::wait_for(ANSWER, "the session's calls cancelled", || {
        (gw.health()["inFlight"] == 0).then_some(())
    });
}
