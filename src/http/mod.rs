//! Sans-IO HTTP/1.x layer of the gateway: pure functions and state machines over byte buffers.
//!
//! Nothing in here touches a socket, a clock or a thread. The mio reactor owns the connections,
//! appends what it reads to a per-connection buffer, hands that buffer to a [`RequestReader`], and
//! writes the bytes produced by [`response`] and [`sse`] back out. Keeping the protocol logic free
//! of I/O is what lets every framing rule be unit-tested byte by byte.
//!
//! Invariants shared by every submodule:
//! - No network input can make this code panic: slicing is bounds-checked, arithmetic on numbers
//!   that come off the wire is checked, and malformed input becomes an [`HttpError`] (whose
//!   [`HttpError::status`] is the response to send) or, for the SSE parser, is skipped.
//! - Work is linear in the bytes received, however they are split across reads.
//! - Everything this layer writes is HTTP/1.1 with CRLF line ends (SSE bodies use LF).
//!
//! Submodules:
//! - [`request`]: the incremental request reader, one per connection ([`RequestReader`]).
//! - `chunked` (private): the incremental decoder for `Transfer-Encoding: chunked` bodies.
//! - [`response`]: response heads, bodies and JSON error bodies.
//! - [`sse`]: Server-Sent Events framing (writer) and an incremental SSE parser.

mod chunked;
pub mod request;
pub mod response;
pub mod sse;

pub use chunked::{ChunkError, ChunkedDecoder};
pub use request::{percent_decode, HttpError, Limits, Method, Progress, Request, RequestReader};
pub use response::{
    escape_json_str, json_error_body, jsonrpc_error_body, reason, write_chunk, write_head,
    write_response, write_sse_head, CONTINUE, LAST_CHUNK,
};
pub use sse::{write_comment, write_event, SseEvent, SseParser};
