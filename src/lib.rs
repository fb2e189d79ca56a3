//! mcp-gateway: one small process between MCP clients and many MCP servers. Clients configure one
//! URL; the gateway keeps a pool of each server's processes warm and shares them across all clients.
//!
//! # Threads, and how a call travels
//!
//! ```text
//!  clients ──TCP──▶ [reactor: one mio Poll for sockets and pipes] ──stdin──▶ children
//!                    listener, Slab<Conn>, Sessions             ◀─stdout/stderr─
//!                    httparse → Router → JSON-RPC
//!                    answers initialize, ping, tools/list, /tools, /health from the snapshot
//!                    child I/O (IoLoop): every child's pipes, write queues, calls in flight by
//!                    id, deadlines, the child's own requests, stdout EOF → supervisor
//!                         │ local server: Command::Submit, on this thread ▲ ▼ claim / release
//!                         │                                      [Pool per server]
//!                         │ remote server: Job{(key, gen), …}     fewest-in-flight handle,
//!                         ▼ crossbeam channel            submit ▲ FIFO parked jobs, min/max
//!                    [workers: N threads] ────────────────────────┘
//!                         │ remote calls carried here (Flight, blocking HTTP)
//!                         ▼ ToReactor{(key, gen), bytes} + mio::Waker
//!                    reactor writes the HTTP response / SSE event
//!
//!  [supervisor]: runs the pools' timers, spawns children (it lives as long as the process, which
//!  PR_SET_PDEATHSIG needs), runs each handshake on a short-lived thread, stops and reaps children.
//!  [rstream-<srv>]: one per remote handle: its server→client stream and its queue of sends.
//!  [signals]: sigwait for SIGTERM/SIGINT → graceful stop; SIGHUP → [config-watch], which also
//!  looks at the config file once a second and hands a valid new config to the supervisor.
//!  [audit]: with `gateway.auditLog`, writes and rotates the audit lines the reactor queues.
//!  [pins]: stats the pins files once a second; a changed one (approve) rebuilds the snapshot.
//!  [oauth-keys]: with `gateway.oauth`, fetches the issuer's key set for the reactor's token checks.
//! ```
//!
//! # Modules
//! - `base64`: RFC 4648 in both alphabets (header values, signed tokens).
//! - `config`: the file format, validation with JSON paths, `${VAR}` expansion, lookup, `init`.
//! - `http`: sans-IO HTTP/1.1 request reading, response writing, SSE framing.
//! - `reactor`: the event loop and connection state machine.
//! - `upstream`: the endpoints clients use (legacy SSE, REST, health), profiles in the URL, the
//!   search tools, and the session table.
//! - `rpc`: JSON-RPC messages, ids, error codes.
//! - `registry`: naming rules, the merged, routable snapshot of all servers' tools with each
//!   profile's view and search index, manifests.
//! - `catalog`: every server's latest listing, and the one place that publishes snapshots.
//! - `pool`: one server's pool of handles, each carrying up to `maxConcurrency` calls.
//! - `downstream`: handles of both kinds (children, remote sessions), a call in flight (`Flight`),
//!   child I/O (the loop the reactor drives), the handshake.
//! - `job`: the messages between threads (the bottom layer: it knows only `rpc`, `registry`,
//!   `metrics` and `audit`).
//! - `metrics`: the call histogram of `/metrics`, its bounded labels, the Prometheus text format.
//! - `audit`: the audit log: one JSON line per forwarded call, written and rotated by its own thread.
//! - `panics`: what a long-lived thread does when code under it panics.
//! - `logging`: stderr log lines, text or one JSON object per line.
//! - `status`: `mcp-gateway status`, a running gateway's `/health` as a table.
//! - `import`: `mcp-gateway import`, a client's MCP config moved behind the gateway.
//! - `reload`: the config watcher (SIGHUP, file changes), the pid file, `mcp-gateway reload`.
//! - `pins`: `mcp-gateway diff` and `approve`, pinned tool definitions against the saved listings.
//! - `supervisor`, `workers`, `signals`, `gateway`: the threads and their wiring.
//! - `bridge`: `mcp-gateway bridge`, a stdio MCP server relaying to a running gateway.

pub mod audit;
pub mod base64;
pub mod bridge;
pub mod catalog;
pub mod config;
pub mod downstream;
pub mod gateway;
pub mod http;
pub mod import;
pub mod job;
pub mod logging;
pub mod metrics;
pub mod oauth;
pub mod panics;
pub mod pins;
pub mod pool;
pub mod reactor;
pub mod registry;
pub mod reload;
pub mod rpc;
pub mod signals;
pub mod status;
pub mod supervisor;
pub mod upstream;
pub mod workers;
