//! What crosses threads: a `Job` goes from the reactor to a worker, a `ToReactor` message comes back.
//!
//! Every message for a connection or session carries `(slab key, generation)`: the reactor drops any
//! whose generation no longer matches, so a reused slab slot never receives another client's data.
//! The reactor is woken through a `mio::Waker` after each send: the waker is the doorbell, the channel
//! the mailbox. A send from the thread that drives that waker's poll rings no bell (`ring`): that
//! thread looks at its mailboxes before it blocks again.

use crate::metrics::{self, Ended, ErrorType, ToolLabel};
use crate::registry::Snapshot;
use crate::rpc::{self, codes, Id};
use crossbeam_channel::Sender;
use serde_json::{Map, Value};
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::Instant;

thread_local! {
    /// The waker of the poll this thread drives (its address), if any: see `drive`.
    static DRIVEN: Cell<usize> = const { Cell::new(0) };
}

/// Declares that the calling thread drives the poll behind `waker` and, before every blocking
/// `poll`, looks at every mailbox that `waker` is the doorbell of. A message it sends to one of them
/// then needs no wake-up (`ring`).
pub fn drive(waker: &Arc<mio::Waker>) {
    DRIVEN.set(Arc::as_ptr(waker) as usize);
}

/// Rings `waker` for a message just put in one of its mailboxes, unless the calling thread is the
/// one that drives it (`drive`): a write to an eventfd, and often a wake-up on another CPU, saved.
pub fn ring(waker: &Arc<mio::Waker>) {
    if DRIVEN.get() != Arc::as_ptr(waker) as usize {
        // Fails only when the poll is gone (shutdown): nobody is left to wake.
        let _ = waker.wake();
    }
}

/// A slab key plus the generation it had when the message was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    pub key: usize,
    pub gen: u64,
}

/// Where the outcome of a job goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyTo {
    /// An HTTP connection waiting for its response (REST).
    Conn(Slot),
    /// A legacy SSE session: the outcome is an `event: message` on its stream.
    Session(Slot),
    /// A call suspended for a 2026-07-28 client, which got its answer (`input_required`) on the
    /// connection: what the call says until the client's retry resumes it (a timeout, say) is
    /// counted but sent to nobody (the connection carries another request by now).
    Nowhere,
}

/// How the outcome is shaped.
#[derive(Debug, Clone)]
pub enum Answer {
    /// REST: `{"result": ...}` or `{"error": ...}` with an HTTP status.
    Rest,
    /// MCP: a JSON-RPC response carrying the client's own id.
    JsonRpc(Id),
    /// MCP 2026-07-28 (stateless): as `JsonRpc`, with the result stamped (`rpc::stamp`: resultType,
    /// and for a read its caching hints), a server's -32002 turned into -32602, and an error's
    /// HTTP status taken from its code. `read` is the URI of a `resources/read`.
    Modern { id: Id, read: Option<String> },
}

impl Answer {
    /// The client's id, for an MCP answer.
    pub fn id(&self) -> Option<&Id> {
        match self {
            Answer::Rest => None,
            Answer::JsonRpc(id) | Answer::Modern { id, .. } => Some(id),
        }
    }
}

/// One downstream call to make on behalf of a client.
#[derive(Debug)]
pub struct Job {
    pub to: ReplyTo,
    /// The MCP session the call belongs to (None for REST): whose capabilities decide whether the
    /// server may ask the client things, and where cancellation comes from.
    pub session: Option<Slot>,
    pub answer: Answer,
    /// Index of the server (and its pool).
    pub server: usize,
    /// The downstream method, e.g. `tools/call`.
    pub method: &'static str,
    /// Params as they go downstream (names already mapped back to the server's own), every
    /// member the gateway did not rewrite exactly as the client wrote it.
    pub params: rpc::Params,
    /// The client's progress token, if it asked for progress.
    pub progress_token: Option<Value>,
    /// When the reactor created the job: `acquireTimeout` counts from here.
    pub created: Instant,
    /// Shared with the reactor, which cancels through it.
    pub control: Arc<CallControl>,
    /// How the call is counted (`/metrics`) and logged (the audit log).
    pub meter: Meter,
    /// A 2025 session's call: what that session declared, for a 2026-07-28 server to read
    /// (`downstream::era::declare`). None for REST and 2026-07-28 clients (whose own `_meta` says it).
    pub declared: Option<Declared>,
}

/// What a 2025 session declared that a 2026-07-28 server reads from each request instead: the
/// capabilities of its `initialize` and the level of its `logging/setLevel`. Cheap to copy into
/// every job (the capabilities are shared).
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub capabilities: Arc<serde_json::Map<String, Value>>,
    /// A rank in `upstream::mcp::LOG_LEVELS`.
    pub log_level: Option<usize>,
}

/// How a call is counted and logged: set where the reactor makes the job (`Router::dispatch`),
/// carried with the outcome's route, back to the reactor with the final answer (`Finished`).
#[derive(Debug, Clone, Default)]
pub struct Meter {
    /// The tool, prompt or resource URI the call names, as the client wrote it; the router takes
    /// it when it dispatches (for the tool label and the audit line).
    pub target: Option<String>,
    /// `gen_ai_tool_name` (a `tools/call` the registry routed), else `ToolLabel::NONE`.
    pub tool: ToolLabel,
    /// The call's audit line in the making, when `gateway.auditLog` is set.
    pub audit: Option<Arc<crate::audit::Call>>,
}

/// A call's end as the reactor records it.
#[derive(Debug, Clone)]
pub struct Finished {
    pub ended: Ended,
    pub audit: Option<Arc<crate::audit::Call>>,
}

impl Job {
    /// The key under which the reactor tracks this call for cancellation.
    pub fn key(&self) -> Option<CallKey> {
        match (self.answer.id(), self.session) {
            (Some(id), Some(session)) => Some(CallKey {
                session,
                id: id.clone(),
            }),
            _ => None,
        }
    }

    /// Where and how the outcome goes.
    pub fn route(&self) -> Route {
        Route {
            to: self.to,
            answer: self.answer.clone(),
            done: self.key(),
            server: self.server,
            method: self.method,
            created: self.created,
            meter: self.meter.clone(),
        }
    }
}

/// Everything needed to send a job's outcome, detached from the job.
#[derive(Debug, Clone)]
pub struct Route {
    pub to: ReplyTo,
    pub answer: Answer,
    /// With the final message of an MCP call: which call ended.
    pub done: Option<CallKey>,
    pub server: usize,
    pub method: &'static str,
    /// When the reactor made the job: the call's duration counts from here.
    pub created: Instant,
    pub meter: Meter,
}

impl Route {
    /// What the reactor records of the call ending now.
    fn finished(&self, error: ErrorType, code: Option<i64>, answer_bytes: usize) -> Finished {
        Finished {
            ended: Ended {
                method: metrics::Method::of(self.method),
                tool: self.meter.tool,
                server: self.server,
                elapsed: self.created.elapsed(),
                error,
                code,
                answer_bytes,
            },
            audit: self.meter.audit.clone(),
        }
    }
}

/// A client's request in flight: its session and its own id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallKey {
    pub session: Slot,
    pub id: Id,
}

/// What the reactor tells a call in flight.
#[derive(Debug)]
pub enum Signal {
    /// The client cancelled the call (or went away).
    Cancelled,
    /// The client's answer to a request the server made during the call (`child_id` is the
    /// server's own id for it).
    ClientAnswer {
        child_id: Value,
        outcome: Result<Value, Value>,
    },
    /// A call suspended for a 2026-07-28 client (`ToReactor::Suspend`) goes on: its answer now goes
    /// to `to` as `answer` (the client's retry), and the server gets the client's input.
    Resume {
        to: ReplyTo,
        answer: Answer,
        child_id: Value,
        outcome: Result<Value, Value>,
    },
}

/// Whoever carries a call in flight (child I/O for a child, a worker for a remote):
/// where the reactor's signals for that call go. Never blocks.
pub trait Mailbox: Send + Sync {
    fn post(&self, signal: Signal);
}

/// A call's mailbox, shared with the reactor.
pub type Inbox = Arc<dyn Mailbox>;

impl std::fmt::Debug for dyn Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mailbox")
    }
}

/// Lets the reactor cancel a call, and reach it with the client's answers to the server's requests.
#[derive(Default)]
pub struct CallControl {
    state: Mutex<ControlState>,
}

impl std::fmt::Debug for CallControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallControl")
    }
}

#[derive(Default)]
enum ControlState {
    #[default]
    Queued,
    Running(Inbox),
    Cancelled,
}

impl CallControl {
    /// The client cancelled: the call stops wherever it is.
    pub fn cancel(&self) {
        let mut state = self.lock();
        if let ControlState::Running(inbox) = &*state {
            inbox.post(Signal::Cancelled);
        }
        *state = ControlState::Cancelled;
    }

    /// The call reached its server; false if it was cancelled before.
    pub fn start(&self, inbox: Inbox) -> bool {
        let mut state = self.lock();
        if matches!(*state, ControlState::Cancelled) {
            return false;
        }
        *state = ControlState::Running(inbox);
        true
    }

    /// Posts `signal` to the call where it runs; false when it is not running (queued or over).
    pub fn post(&self, signal: Signal) -> bool {
        match &*self.lock() {
            ControlState::Running(inbox) => {
                inbox.post(signal);
                true
            }
            _ => false,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        matches!(*self.lock(), ControlState::Cancelled)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A failure of the gateway or of a server to produce an answer (not a JSON-RPC error the server sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server is down or no handle was free within `acquireTimeout` (503).
    Unavailable(String),
    /// The call did not answer in time (504).
    Timeout(String),
    /// The server died or broke the protocol during the call (502).
    BadGateway(String),
    /// The gateway itself failed (500).
    Internal(String),
}

impl Failure {
    pub fn status(&self) -> u16 {
        match self {
            Failure::Unavailable(_) => 503,
            Failure::Timeout(_) => 504,
            Failure::BadGateway(_) => 502,
            Failure::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> i64 {
        match self {
            Failure::Unavailable(_) => codes::SERVER_UNAVAILABLE,
            Failure::Timeout(_) => codes::REQUEST_TIMEOUT,
            Failure::BadGateway(_) | Failure::Internal(_) => codes::INTERNAL_ERROR,
        }
    }

    /// The error body for the caller: a JSON-RPC error response echoing `id`, or (REST, no id)
    /// `{"error": {code, message}}`.
    pub fn body(&self, id: Option<&Id>) -> Vec<u8> {
        match id {
            Some(id) => rpc::error_response(Some(id.json()), self.code(), self.message()),
            None => rest_error(self.code(), self.message()),
        }
    }

    /// The `error_type` of a call that ended so.
    pub fn error_type(&self) -> ErrorType {
        match self {
            Failure::Unavailable(_) => ErrorType::Unavailable,
            Failure::Timeout(_) => ErrorType::Timeout,
            Failure::BadGateway(_) => ErrorType::BadGateway,
            Failure::Internal(_) => ErrorType::Internal,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Failure::Unavailable(m)
            | Failure::Timeout(m)
            | Failure::BadGateway(m)
            | Failure::Internal(m) => m,
        }
    }
}

/// Messages to the reactor thread.
#[derive(Debug)]
pub enum ToReactor {
    /// An outcome or an intermediate message (progress) for a client.
    Reply {
        to: ReplyTo,
        /// HTTP status (used for `ReplyTo::Conn`; SSE events ignore it).
        status: u16,
        /// Empty for "no answer" (a call the client cancelled).
        body: Vec<u8>,
        /// True for the job's final message.
        last: bool,
        /// With the final message of an MCP call: which call ended.
        done: Option<CallKey>,
        /// With the final message of a job: how it ended, for `/metrics` and the audit log.
        finished: Option<Finished>,
    },
    /// A server asks the client something during a call (sampling, elicitation, roots). The answer
    /// goes to `reply` as `Signal::ClientAnswer`.
    ClientRequest {
        to: ReplyTo,
        session: Slot,
        child_id: Value,
        method: String,
        params: Option<Value>,
        reply: Inbox,
    },
    /// A 2025 server asked a 2026-07-28 client something during its call: the call waits
    /// (`control`), and the client gets an `input_required` answer on `to`, whose retry resumes it.
    Suspend {
        to: ReplyTo,
        id: Id,
        control: Arc<CallControl>,
        child_id: Value,
        method: String,
        params: Option<Value>,
        deadline: Instant,
    },
    /// A new registry to serve from now on.
    Registry(Arc<Snapshot>),
    /// A reload was applied (`gateway`: the new `gateway` section, `notes` the gateway's own for
    /// `/health`) or refused (`gateway` None); `summary` is the one line that says what happened.
    Reloaded {
        gateway: Option<Box<crate::config::GatewayConfig>>,
        notes: Vec<String>,
        summary: String,
    },
    /// A notification a server sent on its own (log message, resource update).
    ServerNotification {
        server: usize,
        method: String,
        params: Map<String, Value>,
    },
    /// Stop accepting and drain (SIGTERM/SIGINT); a second one skips the grace period.
    Shutdown,
}

/// The sending side of the reactor's mailbox.
#[derive(Clone)]
pub struct ReactorSink {
    tx: Sender<ToReactor>,
    waker: Arc<mio::Waker>,
}

impl ReactorSink {
    pub fn new(tx: Sender<ToReactor>, waker: Arc<mio::Waker>) -> ReactorSink {
        ReactorSink { tx, waker }
    }

    pub fn send(&self, msg: ToReactor) {
        // Both fail only when the reactor is gone (shutdown): nobody is left to answer.
        if self.tx.send(msg).is_ok() {
            ring(&self.waker);
        }
    }

    /// Sends the final outcome of a call the server answered.
    pub fn answer(&self, route: &Route, outcome: Result<&str, &str>) {
        let (error, code) = metrics::classify(outcome);
        let size = match outcome {
            Ok(raw) | Err(raw) => raw.len(),
        };
        let finished = route.finished(error, code, size);
        let (status, body) = match (&route.answer, outcome) {
            (Answer::JsonRpc(id), Ok(result)) => (200, rpc::result_response(id.json(), result)),
            (Answer::JsonRpc(id), Err(error)) => (200, rpc::raw_error_response(id.json(), error)),
            (Answer::Modern { id, read }, Ok(result)) => modern_result(id, read.as_deref(), result),
            (Answer::Modern { id, read }, Err(error)) => modern_error(id, read.as_deref(), error),
            (Answer::Rest, Ok(result)) => (200, wrap("result", result)),
            (Answer::Rest, Err(error)) => (rest_status_for(error), wrap("error", error)),
        };
        self.send(ToReactor::Reply {
            to: route.to,
            status,
            body,
            last: true,
            done: route.done.clone(),
            finished: Some(finished),
        });
    }

    /// Sends a message that comes before the outcome (progress).
    pub fn before_answer(&self, route: &Route, body: Vec<u8>) {
        self.send(ToReactor::Reply {
            to: route.to,
            status: 200,
            body,
            last: false,
            done: None,
            finished: None,
        });
    }

    /// Ends a call the client cancelled: no answer on a session stream (the spec says none is sent);
    /// a waiting HTTP request still needs one, so it gets an error saying so.
    pub fn cancelled(&self, route: &Route) {
        let body = match (route.to, route.answer.id()) {
            (ReplyTo::Conn(_), Some(id)) => rpc::error_response(
                Some(id.json()),
                codes::REQUEST_CANCELLED,
                "the request was cancelled by the client",
            ),
            _ => Vec::new(),
        };
        let finished = route.finished(ErrorType::Cancelled, Some(codes::REQUEST_CANCELLED), 0);
        self.send(ToReactor::Reply {
            to: route.to,
            status: 200,
            body,
            last: true,
            done: route.done.clone(),
            finished: Some(finished),
        });
    }

    /// Sends the final outcome of a job that failed before the server answered.
    pub fn fail(&self, route: &Route, failure: &Failure) {
        // MCP clients get a JSON-RPC error in an ordinary answer; REST maps failures to statuses.
        let (status, id) = match route.answer.id() {
            Some(id) => (200, Some(id)),
            None => (failure.status(), None),
        };
        let body = failure.body(id);
        let finished = route.finished(failure.error_type(), Some(failure.code()), 0);
        self.send(ToReactor::Reply {
            to: route.to,
            status,
            body,
            last: true,
            done: route.done.clone(),
            finished: Some(finished),
        });
    }
}

/// A server's result for a 2026-07-28 client: stamped; a read of nothing is "not found".
fn modern_result(id: &Id, read: Option<&str>, result: &str) -> (u16, Vec<u8>) {
    if let Some(uri) = read {
        let empty = rpc::Params::parse(result.as_bytes())
            .ok()
            .and_then(|r| r.raw("contents").map(|c| c.get().trim() == "[]"))
            .unwrap_or(false);
        if empty {
            return not_found(id, uri);
        }
    }
    let cache = read.map(|_| rpc::stamp::Cache::READ_DEFAULT);
    (
        200,
        rpc::result_response(id.json(), &rpc::stamp::complete(result, cache)),
    )
}

/// A server's error for a 2026-07-28 client, with the status its code has in that revision.
fn modern_error(id: &Id, read: Option<&str>, error: &str) -> (u16, Vec<u8>) {
    let code = serde_json::from_str::<Value>(error)
        .ok()
        .and_then(|e| e.get("code").and_then(Value::as_i64));
    match (code, read) {
        // The code resource-not-found had until 2025-11-25; this revision says -32602.
        (Some(codes::RESOURCE_NOT_FOUND), Some(uri)) => not_found(id, uri),
        (Some(code), _) => (
            codes::modern_http_status(code),
            rpc::raw_error_response(id.json(), error),
        ),
        (None, _) => (200, rpc::raw_error_response(id.json(), error)),
    }
}

fn not_found(id: &Id, uri: &str) -> (u16, Vec<u8>) {
    let body = rpc::error_response_with_data(
        Some(id.json()),
        codes::INVALID_PARAMS,
        &format!("Resource not found: {uri}"),
        Some(&serde_json::json!({ "uri": uri })),
    );
    (400, body)
}

/// `{"error":{"code":..,"message":..}}`: the REST error shape.
pub fn rest_error(code: i64, message: &str) -> Vec<u8> {
    crate::http::json_error_body(code, message)
}

fn wrap(key: &str, raw: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + key.len() + 5);
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(raw.as_bytes());
    out.push(b'}');
    out
}

/// A server's JSON-RPC error, seen from REST: bad arguments are the caller's fault (400), anything
/// else is the server's (502).
fn rest_status_for(error: &str) -> u16 {
    let code = serde_json::from_str::<Value>(error)
        .ok()
        .and_then(|e| e.get("code").and_then(Value::as_i64));
    match code {
        Some(codes::INVALID_PARAMS) => 400,
        Some(codes::RESOURCE_NOT_FOUND) => 404,
        _ => 502,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn woken(poll: &mut mio::Poll) -> bool {
        let mut events = mio::Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_millis(200)))
            .unwrap();
        !events.is_empty()
    }

    #[test]
    fn only_a_thread_that_does_not_drive_the_poll_rings_its_bell() {
        let mut poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        ring(&waker);
        assert!(woken(&mut poll), "this thread does not drive it yet");
        drive(&waker);
        ring(&waker);
        assert!(!woken(&mut poll), "the driver looks before it blocks");
        let other = waker.clone();
        std::thread::spawn(move || ring(&other)).join().unwrap();
        assert!(woken(&mut poll), "another thread must wake it");
        let mut another = mio::Poll::new().unwrap();
        let elsewhere = Arc::new(mio::Waker::new(another.registry(), mio::Token(0)).unwrap());
        ring(&elsewhere);
        assert!(
            woken(&mut another),
            "driving one poll says nothing of another"
        );
    }
}
