//! Remote MCP servers reached over HTTP (Streamable HTTP and the legacy SSE transport).
//!
//! The HTTP client, bottom up (each layer uses only those below it):
//! - `wait`: deadline-bounded socket waits and [`conn::ConnError`];
//! - `tls`: trust settings (system roots + `caFile`) and deadline-bound rustls driving;
//! - `socket`: TCP (+ TLS) byte streams and the `Closer` that stops one from another thread;
//! - `framing` (private): sans-IO response heads, body delimiting and chunked decoding;
//! - `url`: `http`/`https` URLs and resolving references against them;
//! - `conn`: one blocking keep-alive HTTP/1.1 exchange at a time over a socket, with SSE reading;
//! - `shared`: what every MCP-over-HTTP client here needs (idle connections, the legacy endpoint).
//!
//! One MCP session as a pooled handle, on top:
//! - `target`: what every handle of one server shares, with its deadline-bounded name resolver;
//! - `link`: the handle ([`link::RemoteLink`]): its life, and what it sends itself;
//! - `session`: transport negotiation, `initialize`, renewing a lost session;
//! - `call`: one request in flight, stepped by the worker that made it, resumed when cut short;
//! - `stream`: the handle's one long-lived thread (server→client stream + outgoing queue);
//! - `flights`: the calls in flight, and who takes a request that names no call.
//!
//! Modules `use` each other only downward, in the order listed.
//!
//! Everything blocks on std sockets, on worker threads or the handle's own stream thread; every
//! wait is bounded by a caller's deadline.

pub mod call;
pub mod conn;
mod flights;
mod framing;
pub mod link;
mod session;
pub mod shared;
mod socket;
mod stream;
pub mod target;
pub mod tls;
pub mod url;
mod wait;

/// Locks `mutex`, going on with its data even if a thread panicked holding it (every value kept
/// under these locks stays consistent between statements).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
