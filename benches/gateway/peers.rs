//! Peers people use today, in front of the same demo server, measured with the same clients:
//! `supergateway` (npm) over SSE and Streamable HTTP, a FastMCP proxy (PyPI) and the Rust
//! `mcp-proxy` crate (crates.io, tower/tokio) over Streamable HTTP. Installed under
//! `target/bench-peers/` by `make bench-peers`.

use crate::target::{demo_server, Target, TempDir};
use crate::{measure, sse_calls, streamable_calls, Row};
use std::path::PathBuf;
use std::process::Command;

fn installed(relative: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-peers")
        .join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `make bench-peers` (it installs the peers under target/bench-peers)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn supergateway(transport: &str, port: u16) -> Command {
    let mut command = Command::new("node");
    command
        .arg(installed("node_modules/supergateway/dist/index.js"))
        .args(["--stdio", &demo_server(), "--port", &port.to_string()])
        .args(["--outputTransport", transport, "--logLevel", "none"]);
    if transport == "streamableHttp" {
        command.arg("--stateful");
    }
    command
}

pub fn run(sequential: usize, per_thread: usize) -> Vec<Row> {
    let mut rows = Vec::new();

    let port = free_port();
    let peer = Target::peer(supergateway("sse", port), port, "/sse", "/mcp", "");
    rows.push(tag(measure(
        &peer,
        "supergateway legacy SSE, c=1",
        1,
        sequential,
        sse_calls,
    )));
    drop(peer);

    let port = free_port();
    let peer = Target::peer(
        supergateway("streamableHttp", port),
        port,
        "/sse",
        "/mcp",
        "",
    );
    rows.push(tag(measure(
        &peer,
        "supergateway Streamable HTTP, c=1",
        1,
        sequential,
        streamable_calls,
    )));
    rows.push(tag(measure(
        &peer,
        "supergateway Streamable HTTP, c=8",
        8,
        per_thread,
        streamable_calls,
    )));
    rows.push(tag(measure(
        &peer,
        "supergateway Streamable HTTP, c=16",
        16,
        per_thread,
        streamable_calls,
    )));
    drop(peer);

    let port = free_port();
    let mut command = Command::new(installed("venv/bin/python"));
    command
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/peers/fastmcp_proxy.py"))
        .arg(demo_server())
        .arg(port.to_string());
    let peer = Target::peer(command, port, "/sse", "/mcp", "");
    rows.push(tag(measure(
        &peer,
        "FastMCP proxy Streamable HTTP, c=1",
        1,
        sequential,
        streamable_calls,
    )));
    rows.push(tag(measure(
        &peer,
        "FastMCP proxy Streamable HTTP, c=8",
        8,
        per_thread,
        streamable_calls,
    )));
    rows.push(tag(measure(
        &peer,
        "FastMCP proxy Streamable HTTP, c=16",
        16,
        per_thread,
        streamable_calls,
    )));
    drop(peer);

    let port = free_port();
    let dir = TempDir::new("bench-mcp-proxy");
    let peer = Target::peer(mcp_proxy(&dir, port), port, "/sse", "/", "demo/");
    for (name, threads, calls) in [
        ("mcp-proxy (Rust) Streamable HTTP, c=1", 1, sequential),
        ("mcp-proxy (Rust) Streamable HTTP, c=8", 8, per_thread),
        ("mcp-proxy (Rust) Streamable HTTP, c=16", 16, per_thread),
    ] {
        rows.push(tag(measure(&peer, name, threads, calls, streamable_calls)));
    }
    drop(peer);
    rows
}

/// The `mcp-proxy` crate with one stdio backend, the demo server: it serves Streamable HTTP on `/`
/// and names the tools `<backend>/<tool>` (its default separator). No middleware is configured.
fn mcp_proxy(dir: &TempDir, port: u16) -> Command {
    let config = format!(
        "[proxy]\nname = \"bench\"\n\n[proxy.listen]\nhost = \"127.0.0.1\"\nport = {port}\n\n\
         [[backends]]\nname = \"demo\"\ntransport = \"stdio\"\ncommand = {:?}\n",
        demo_server()
    );
    let path = dir.0.join("proxy.toml");
    std::fs::write(&path, config).expect("write the mcp-proxy config");
    let mut command = Command::new(installed("bin/mcp-proxy"));
    command.arg("--config").arg(path).env("RUST_LOG", "error");
    command
}

fn tag(mut row: Row) -> Row {
    row.note = "peer: RSS is its main process alone".into();
    row.rss_scope = "peer main process";
    row
}
