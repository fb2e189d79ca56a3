//! Remote MCP servers reached over HTTP (Streamable HTTP and the legacy SSE transport).
//!
//! - `url`: `http`/`https` URLs and resolving references against them;
//! - `framing` (private): sans-IO response heads, body delimiting and chunked decoding;
//! - `tls`: trust settings (system roots + `caFile`) and deadline-bound rustls driving;
//! - `conn`: one blocking keep-alive HTTP/1.1 connection, plain or TLS, with SSE reading;
//! - `link`: one MCP session on a remote server as a pooled handle (both transports);
//! - `shared`: what every MCP-over-HTTP client here needs (idle connections, the legacy endpoint).
//!
//! Everything here blocks on std sockets and is meant for worker threads; every wait is bounded
//! by a caller's deadline.

pub mod conn;
mod framing;
pub mod link;
pub mod shared;
pub mod tls;
pub mod url;
