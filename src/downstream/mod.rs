//! The servers behind the gateway, one pooled handle at a time.
//!
//! - `link`: a pooled handle of either kind;
//! - `process`: spawning a child safely and stopping it (stdin close → SIGTERM → SIGKILL, reaped);
//! - `stdio`: a running child as a handle: write a request, wait for the answer in its inbox;
//! - `child_io`: the one thread that reads every child's stdout and stderr;
//! - `message`: what a server sent (request, notification, response) and what a notification means;
//! - `remote`: a remote MCP server reached over HTTP(S), one MCP session per handle (`remote::link`);
//! - `handshake`: `initialize` + `notifications/initialized` + the listings the registry needs;
//! - `wanted`: what clients asked every server process to be told (log level, subscriptions).

pub mod child_io;
pub mod handshake;
pub mod link;
pub mod message;
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

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout => write!(f, "no answer in time"),
            CallError::Closed(note) => write!(f, "{note}"),
            CallError::TooLarge(limit) => write!(f, "the answer exceeds {limit} bytes"),
        }
    }
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
    /// Ends the handshake: `notifications/initialized`.
    fn initialized(&self) {
        self.notify("notifications/initialized", None);
    }
    /// A request whose answer nobody awaits (it is dropped when it comes); best effort, never
    /// blocks the caller for long.
    fn send_unawaited(&self, method: &str, params: Map<String, Value>);
    /// Answers one of the server's own requests, best effort.
    fn respond(&self, id: &Value, outcome: Result<&Value, &Value>);
    /// Refuses one of the server's own requests with -32601.
    fn refuse(&self, id: &Value, method: &str) {
        let error = serde_json::json!({
            "code": crate::rpc::codes::METHOD_NOT_FOUND,
            "message": format!("the gateway cannot forward {method} here: no client is waiting on this server"),
        });
        self.respond(id, Err(&error));
    }
    /// The server asks something no client is waiting on: only `ping` and `roots/list` have an
    /// answer (the gateway is the server's client and must never leave a request hanging).
    fn answer_alone(&self, id: &Value, method: &str) {
        match method {
            "ping" => self.respond(id, Ok(&serde_json::json!({}))),
            "roots/list" => self.respond(id, Ok(&serde_json::json!({"roots": []}))),
            _ => {
                log::debug!("{}: refusing its request {method}", self.label());
                self.refuse(id, method)
            }
        }
    }
}

/// The JSON-RPC response answering a server's request `id`.
pub fn response_to(id: &Value, outcome: Result<&Value, &Value>) -> Vec<u8> {
    let id = id.to_string();
    match outcome {
        Ok(result) => crate::rpc::result_response(&id, &result.to_string()),
        Err(error) => crate::rpc::raw_error_response(&id, &error.to_string()),
    }
}
