//! More than one machine: two gateways sharing one session key (`gateway.sessionKeyFile`) behind
//! haproxy (the Debian package `make test` installs), round robin per request, as in
//! `deploy/haproxy.cfg`. An official Python SDK session whose requests alternate between the
//! replicas sees no error; a replica killed mid-run costs at most the call in flight on it.

mod util;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use util::{demo, interop_script, python, temp_dir, wait_for, Gateway};

const CALLS: u64 = 40;

fn haproxy() -> PathBuf {
    ["haproxy", "/usr/sbin/haproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .arg("-v")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("haproxy is missing: run `make test` (it installs the Debian package)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// haproxy in the foreground, stopped with the test.
struct Balancer(Child);

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn balancer(dir: &std::path::Path, port: u16, replicas: &[u16]) -> Balancer {
    let servers: String = replicas
        .iter()
        .enumerate()
        .map(|(i, p)| format!("    server gw{i} 127.0.0.1:{p} check inter 200ms fall 1 rise 1\n"))
        .collect();
    let config = format!(
        "global\n    maxconn 256\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 60s\n    timeout server 60s\n\
         \x20   retries 3\n    option redispatch\n    option http-server-close\n\
         frontend mcp\n    bind 127.0.0.1:{port}\n    default_backend gateways\n\
         backend gateways\n    balance roundrobin\n    option httpchk GET /health\n\
         \x20   http-check expect status 200\n{servers}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(haproxy())
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let balancer = Balancer(child);
    wait_for(Duration::from_secs(10), "haproxy to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    balancer
}

fn replica(key: &std::path::Path) -> Gateway {
    let gw = Gateway::start(json!({
        "gateway": {"sessionKeyFile": key},
        "servers": [demo("demo", &[])],
    }));
    gw.wait_up();
    gw
}

fn calls_served(gw: &Gateway) -> u64 {
    gw.server_health("demo")["calls"].as_u64().unwrap()
}

#[test]
fn a_session_alternates_between_replicas_and_survives_losing_one() {
    let dir = temp_dir("scale");
    let key = dir.join("session-key");
    let a = replica(&key);
    let mut b = replica(&key);
    let port = free_port();
    let _balancer = balancer(&dir, port, &[a.port, b.port]);

    let mut client = Command::new(python())
        .arg(interop_script("scale_client.py"))
        .arg(format!("http://127.0.0.1:{port}/mcp"))
        .arg(CALLS.to_string())
        .env("PYTHONWARNINGS", "ignore")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut done = None;
    let mut served_by_b_before_kill = 0;
    for line in lines {
        let line: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if line["check"] == "call" && line["n"] == CALLS / 2 {
            served_by_b_before_kill = calls_served(&b);
            b.child.kill().unwrap();
            b.child.wait().unwrap();
        }
        if line["check"] == "done" {
            done = Some(line);
        }
    }
    let status = client.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut client.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    let done = done.expect("the client's summary");
    let errors = done["errors"].as_array().unwrap();
    assert!(
        errors.len() <= 1,
        "more than the call in flight was lost: {errors:?}\nA:\n{}",
        a.logs()
    );
    assert_eq!(done["ok"].as_u64().unwrap() + errors.len() as u64, CALLS);
    // Both replicas served the one session before the kill (round robin per request): the one
    // that did not open it restored it from its signed id.
    assert!(served_by_b_before_kill > 0, "b served nothing");
    assert!(calls_served(&a) > 0, "a served nothing");
    let restored = a.logs().contains("restored from its signed id")
        || b.logs().contains("restored from its signed id");
    assert!(
        restored,
        "a replica served the session without restoring it?"
    );
}
