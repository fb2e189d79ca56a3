//! The servers behind the gateway, as pooled handles that each carry many calls at once.
//!
//! - `link`: a pooled handle of either kind;
//! - `flight`: one client's call in flight, whatever carries it: progress, answer, failure, and the
//!   release of its claim on the handle, always in that order;
//! - `process`: spawning a child safely and stopping it (stdin close → SIGTERM → SIGKILL, reaped);
//! - `stdio`: a running child as a handle: the address of its owner, child I/O;
//! - `child_io`: the one thread that owns every child's pipes, both ways, and its calls in flight;
//! - `message`: what a server sent (request, notification, response) and what a notification means;
//! - `remote`: a remote MCP server reached over HTTP(S), one MCP session per handle (`remote::link`);
//! - `handshake`: `initialize` + `notifications/initialized` + the listings the registry needs;
//! - `servers`: the server table by slot (what a reload keeps, adds and retires), shared with the
//!   carriers of calls;
//! - `wanted`: what clients asked every server process to be told (log level, subscriptions).

pub mod child_io;
pub mod era;
pub mod flight;
pub mod handshake;
pub mod link;
pub mod message;
pub mod process;
pub mod remote;
pub mod servers;
pub mod stdio;
pub mod wanted;

use crate::job::{Mailbox, Signal};
use crossbeam_channel::Sender;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::time::Instant;

/// A message for a call in flight on a thread that waits for it (a remote call on a worker).
#[derive(Debug)]
pub enum Inbound {
    /// The answer: `Ok(result)` or `Err(error object)`, both raw JSON.
    Response(Answer),
    /// `notifications/progress` for this request.
    Progress(Map<String, Value>),
    /// `notifications/message` on this request's own stream (Streamable HTTP).
    Log(Map<String, Value>),
    /// The server asks the client something while this request runs (sampling, elicitation, roots).
    ChildRequest {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    /// The client's answer to a `ChildRequest` of this call (delivered by the reactor).
    ClientAnswer {
        child_id: Value,
        outcome: Result<Value, Value>,
    },
    /// A 2026-07-28 client's retry of this call, suspended on a server's request
    /// (`Flight::suspend`): the answer goes to `to` as `answer` now, `outcome` to the server.
    Resume {
        to: crate::job::ReplyTo,
        answer: crate::job::Answer,
        child_id: Value,
        outcome: Result<Value, Value>,
    },
    /// The client cancelled the request.
    Cancelled,
    /// A message from the server exceeded `maxMessageBytes` and was discarded.
    TooLarge { limit: usize },
    /// The connection closed: the server is gone or going.
    Closed,
}

impl Mailbox for Sender<Inbound> {
    fn post(&self, signal: Signal) {
        let _ = self.send(match signal {
            Signal::Cancelled => Inbound::Cancelled,
            Signal::ClientAnswer { child_id, outcome } => {
                Inbound::ClientAnswer { child_id, outcome }
            }
            Signal::Resume {
                to,
                answer,
                child_id,
                outcome,
            } => Inbound::Resume {
                to,
                answer,
                child_id,
                outcome,
            },
        });
    }
}

/// A server's answer: `Ok(result)` or `Err(error object)`, both raw JSON.
pub type Answer = Result<Box<RawValue>, Box<RawValue>>;

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No answer before the deadline (the server was told to cancel).
    Timeout,
    /// The deadline passed before the server read the request (its stdin stayed full).
    Stalled,
    /// The server went away (process exited, connection lost); the text says what is known.
    Closed(String),
    /// The server's answer was larger than the configured limit.
    TooLarge(usize),
    /// The server refused the gateway's OAuth token and no other one can be had now (the text
    /// says what to do: log in, usually).
    Unauthorized(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout => write!(f, "no answer in time"),
            CallError::Stalled => write!(f, "the server did not read its input in time"),
            CallError::Closed(note) => write!(f, "{note}"),
            CallError::TooLarge(limit) => write!(f, "the answer exceeds {limit} bytes"),
            CallError::Unauthorized(why) => write!(f, "{why}"),
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
    /// Whether the handshake chose 2026-07-28 for this handle (`era`).
    fn modern(&self) -> bool {
        false
    }
    /// The handshake chose 2026-07-28: every request to the handle carries `_meta` from now on.
    fn set_modern(&self) {}
    /// The `x-mcp-header` annotations of the handle's tools, by the server's own tool name
    /// (`era::param_headers`): what its calls mirror into `Mcp-Param-*` headers over HTTP.
    fn set_param_headers(&self, _headers: era::ParamHeaders) {}
    /// Ends the handshake: `notifications/initialized`.
    fn initialized(&self) {
        self.notify("notifications/initialized", None);
    }
    /// A request whose answer nobody awaits (it is dropped when it comes); best effort, never
    /// blocks the caller for long.
    fn send_unawaited(&self, method: &str, params: Map<String, Value>);
    /// A 2026-07-28 handle: a change of what its `subscriptions/listen` asks for (its owner holds
    /// the listen and renews it).
    fn listen(&self, change: era::Listen);
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
