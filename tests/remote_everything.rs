//! The official TypeScript reference server (`@modelcontextprotocol/server-everything`, installed
//! by `make interop-deps`) as a *remote* of the gateway, over Streamable HTTP and the legacy SSE
//! transport: the real server process on a free loopback port, killed and restarted on the same
//! port in the middle of the run.
//!
//! Checked: calls through the gateway work; while the server is dead `/health` does not say `up`
//! (it says `down`, with a `lastError`) and calls fail with an error instead of hanging; once the
//! server is back, later calls succeed again on a new session (a TypeScript-SDK server answers a
//! restarted server's old session with HTTP 400, not 404, and the gateway must recognize it).

mod util;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use util::{installed, wait_for, Gateway};

/// server-everything in one transport mode on a fixed port, killed when dropped.
struct Everything {
    child: Child,
}

impl Everything {
    fn start(mode: &str, port: u16) -> Everything {
        let script =
            installed("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        let child = Command::new("node")
            .arg(script)
            .arg(mode)
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server-everything (node)");
        wait_for(
            Duration::from_secs(30),
            "server-everything to listen",
            || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
        );
        Everything { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Everything {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port free at the time of asking (server-everything takes its port from `PORT`
/// and does not print the one it got for 0).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn echo(gw: &Gateway, message: &str) -> Result<String, String> {
    let response = gw.call("ev_echo", json!({ "message": message }));
    let body = response.json();
    match response.status {
        200 => Ok(body["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()),
        status => Err(format!("HTTP {status}: {body}")),
    }
}

fn wait_status(gw: &Gateway, status: &str) -> Value {
    wait_for(Duration::from_secs(30), &format!("ev {status}"), || {
        let health = gw.server_health("ev");
        (health["status"] == status).then_some(health)
    })
}

/// Kills and restarts server-everything in `mode` under a running gateway; `via_relay` puts a
/// TCP relay in between, which keeps accepting connections while the server is dead (as a
/// proxy or load balancer would) and closes them at once.
fn survives_a_restart(mode: &str, path: &str, via_relay: bool) {
    let port = free_port();
    let mut server = Everything::start(mode, port);
    let relay = via_relay.then(|| Relay::start(port));
    let gateway_port = relay.as_ref().map_or(port, |r| r.port);
    let gw = Gateway::start(json!({
        "pool": {"minConnections": 1, "maxConnections": 2},
        "servers": [{"name": "ev", "type": "remote", "url": format!("http://127.0.0.1:{gateway_port}{path}")}],
        "mapping": {"ev": {"prefix": "ev_"}},
    }));
    wait_status(&gw, "up");
    assert_eq!(echo(&gw, "one").unwrap(), "Echo: one", "{mode}");
    assert_eq!(echo(&gw, "two").unwrap(), "Echo: two", "{mode}");

    server.kill();
    // Nobody calls: the handle's stream thread notices, and /health tells the truth.
    let down = wait_status(&gw, "down");
    assert!(
        down["lastError"].as_str().is_some_and(|e| !e.is_empty()),
        "{mode}: {down}"
    );
    let health = gw.health();
    assert_eq!(health["status"], "degraded", "{mode}: {health}");
    if via_relay {
        // Connections still open (to the relay): the GET stream's failures in a row tell.
        assert!(
            gw.logs()
                .contains("3 attempts in a row to reach it failed (last: GET stream"),
            "{}",
            gw.logs()
        );
    }
    // A call meanwhile fails with an error, it does not hang or claim success.
    let failed = echo(&gw, "nobody home");
    assert!(failed.is_err(), "{mode}: {failed:?}");

    let server = Everything::start(mode, port);
    wait_status(&gw, "up");
    let back = wait_for(Duration::from_secs(20), "a call to succeed again", || {
        echo(&gw, "three").ok()
    });
    assert_eq!(back, "Echo: three", "{mode}");
    for n in 0..5 {
        assert_eq!(
            echo(&gw, &format!("again {n}")).unwrap(),
            format!("Echo: again {n}"),
            "{mode}"
        );
    }
    let health = gw.server_health("ev");
    assert_eq!(health["status"], "up", "{mode}: {health}");
    drop(server);
}

#[test]
fn server_everything_over_streamable_http_survives_a_restart() {
    survives_a_restart("streamableHttp", "/mcp", false);
}

#[test]
fn server_everything_over_streamable_http_behind_a_relay_survives_a_restart() {
    survives_a_restart("streamableHttp", "/mcp", true);
}

#[test]
fn server_everything_over_legacy_sse_survives_a_restart() {
    survives_a_restart("sse", "/sse", false);
}

/// A TCP relay in front of the server that can hold new connections (accepted, not yet
/// forwarded) while paused: so requests of the gateway's can be made to reach a restarted
/// server with the old session, deterministically.
struct Relay {
    port: u16,
    paused: Arc<AtomicBool>,
    held: Arc<AtomicUsize>,
}

impl Relay {
    fn start(backend: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let paused = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicUsize::new(0));
        let (p, h) = (paused.clone(), held.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let (paused, held) = (p.clone(), h.clone());
                std::thread::spawn(move || {
                    if paused.load(Ordering::SeqCst) {
                        held.fetch_add(1, Ordering::SeqCst);
                        while paused.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                    let Ok(server) = TcpStream::connect(("127.0.0.1", backend)) else {
                        return;
                    };
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    std::thread::spawn(move || pipe(c2, s2));
                    pipe(server, client);
                });
            }
        });
        Relay { port, paused, held }
    }
}

/// Copies `from` to `to` until either ends, then ends both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

#[test]
fn a_restarted_typescript_servers_http_400_for_the_old_session_renews_it() {
    let port = free_port();
    let mut server = Everything::start("streamableHttp", port);
    let relay = Relay::start(port);
    let gw = Gateway::start(json!({
        "pool": {"minConnections": 1, "maxConnections": 1},
        "servers": [{"name": "ev", "type": "remote", "url": format!("http://127.0.0.1:{}/mcp", relay.port)}],
        "mapping": {"ev": {"prefix": "ev_"}},
    }));
    wait_status(&gw, "up");
    gw.wait_log("GET stream open", Duration::from_secs(10));
    assert_eq!(echo(&gw, "before").unwrap(), "Echo: before");

    // New connections wait in the relay; the server restarts meanwhile (its sessions are gone).
    relay.paused.store(true, Ordering::SeqCst);
    server.kill();
    let server = Everything::start("streamableHttp", port);
    // The GET stream's reconnection and a call both reach the new server with the old session.
    let call = {
        let addr = gw.addr();
        std::thread::spawn(move || {
            let body = json!({"name": "ev_echo", "arguments": {"message": "after"}}).to_string();
            let request = format!(
                "POST /tools/call HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            util::read_response(&mut stream).expect("a response")
        })
    };
    wait_for(Duration::from_secs(10), "two connections held", || {
        (relay.held.load(Ordering::SeqCst) >= 2).then_some(())
    });
    relay.paused.store(false, Ordering::SeqCst);
    let response = call.join().unwrap();
    assert_eq!(response.status, 200, "{}\n{}", response.text(), gw.logs());
    assert_eq!(
        response.json()["result"]["content"][0]["text"],
        "Echo: after",
        "{}",
        response.text()
    );
    assert!(
        gw.logs().contains("no longer knows our session (HTTP 400)"),
        "{}",
        gw.logs()
    );
    assert_eq!(echo(&gw, "later").unwrap(), "Echo: later");
    assert_eq!(gw.server_health("ev")["status"], "up");
    drop(server);
}
