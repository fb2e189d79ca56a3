//! mcp-gateway: one small process between MCP clients and many MCP servers. Clients configure one
//! URL; the gateway keeps a pool of each server's processes warm and shares them across all clients.
//!
//! # Threads, and how a call travels
//!
//! ```text
//!  clients ──TCP──▶ [reactor: mio Poll]                          [child-io: mio Poll]
//!                    listener, Slab<Conn>, Sessions                every child's stdout + stderr
//!                    httparse → Router → JSON-RPC                  lines → JSON → handle inbox
//!                    answers initialize, ping, tools/list,         child requests answered,
//!                    /tools, /health from the registry snapshot    EOF → supervisor
//!                         │ Job{(key, gen), …}                          ▲ write line
//!                         ▼ crossbeam channel                           │
//!                    [workers: N threads] ── submit ──▶ [Pool per server] ──▶ child stdin
//!                         │ ToReactor{(key, gen), bytes}     FIFO parked jobs, min/max,
//!                         ▼ channel + mio::Waker             idle reap, backoff
//!                    reactor writes the HTTP response / SSE event
//!
//!  [supervisor]: runs the pools' timers, spawns children (it lives as long as the process, which
//!  PR_SET_PDEATHSIG needs), runs each handshake on a short-lived thread, stops and reaps children.
//!  [signals]: sigwait for SIGTERM/SIGINT → graceful stop.
//! ```
//!
//! # Modules
//! - `config`: the file format, validation with JSON paths, `${VAR}` expansion, lookup, `init`.
//! - `http`: sans-IO HTTP/1.1 request reading, response writing, SSE framing.
//! - `reactor`: the event loop and connection state machine.
//! - `upstream`: the endpoints clients use (legacy SSE, REST, health) and the session table.
//! - `rpc`: JSON-RPC messages, ids, error codes.
//! - `registry`: naming rules and the merged, routable snapshot of all servers' tools.
//! - `pool`: one server's pool of handles.
//! - `downstream`: child processes as handles; the child-I/O thread; the handshake.
//! - `supervisor`, `workers`, `signals`, `gateway`: the threads and their wiring.
//! - `bridge`: `mcp-gateway bridge`, a stdio MCP server relaying to a running gateway.

pub mod bridge;
pub mod config;
pub mod downstream;
pub mod gateway;
pub mod http;
pub mod job;
pub mod panics;
pub mod pool;
pub mod reactor;
pub mod registry;
pub mod rpc;
pub mod signals;
pub mod supervisor;
pub mod upstream;
pub mod workers;
