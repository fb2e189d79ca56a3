//! The servers behind the gateway, one pooled handle at a time.
//!
//! - `link`: a pooled handle of either kind;
//! - `process`: spawning a child safely and stopping it (stdin close → SIGTERM → SIGKILL, reaped);
//! - `stdio`: a running child as a handle: write a request, wait for the answer in its inbox;
//! - `child_io`: the one thread that reads every child's stdout and stderr;
//! - `remote`: a remote MCP server reached over HTTP(S), one MCP session per handle;
//! - `handshake`: `initialize` + `notifications/initialized` + the listings the registry needs;
//! - `wanted`: what clients asked every server process to be told (log level, subscriptions).

pub mod child_io;
pub mod handshake;
pub mod link;
pub mod process;
pub mod remote;
pub mod stdio;
pub mod wanted;

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::time::Instant;

/// A server's answer: `Ok(result)` or `Err(error object)`, both raw JSON.
pub type Answer = Result<Box<RawValue>, Box<RawValue>>;

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No answer before the deadline (the server was told to cancel).
    Timeout,
    /// The server went away (process exited, connection lost); the text says what is known.
    Closed(String),
    /// The server's answer was larger than the configured limit.
    TooLarge(usize),
}

/// What the handshake and the gateway's own requests need from a handle of any kind.
pub trait Requester {
    /// `server#serial (…)`, for logs and errors.
    fn label(&self) -> String;
    /// A request whose answer the gateway itself needs; the server's own requests meanwhile are
    /// refused (no client is involved).
    fn request(
        &self,
        method: &str,
        params: Option<Map<String, Value>>,
        deadline: Instant,
    ) -> Result<Answer, CallError>;
    /// A notification, best effort.
    fn notify(&self, method: &str, params: Option<&Value>);
    /// A request whose answer nobody awaits (it is dropped when it comes); best effort, never
    /// blocks the caller for long.
    fn send_unawaited(&self, method: &str, params: Map<String, Value>);
}
