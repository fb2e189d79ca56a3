//! What clients speak: routing each HTTP request to its endpoint, and the session table.
//!
//! `Router::handle` is sans-IO: it takes a parsed request and returns what the reactor should do
//! (respond now, wait for a worker's answer, or turn the connection into an SSE stream). Bytes for
//! *other* connections (events on a session's stream) and streams to end go to the outbox, which the
//! reactor drains after every call. Everything here runs on the reactor thread: no blocking, no locks
//! but the pool stats' last-error string read by `/health`.
//!
//! Every request first passes the host check: HTTP/1.1 without `Host` is 400; on a gateway listening
//! on loopback (or with `gateway.allowedHosts` set) a `Host` that is neither a loopback name or
//! address nor listed is 403, whatever the `Origin` (DNS rebinding). Every endpoint but `/health`
//! then passes the gate: a present `Origin` must be allowed (403), and when `gateway.authToken` is
//! set, `Authorization: Bearer <token>` must match (401; the scheme is case-insensitive). `/health`
//! without a valid token (when one is set) tells only its status.
//!
//! Every call waiting on a connection is known by that connection's slot (`conn_calls`): when the
//! connection closes the call is cancelled, and when the gateway stops it is answered "stopping".

mod health;
mod held;
pub mod mcp;
pub mod redact;
mod rest;
pub mod session;
mod sse;
mod streamable;

use crate::config::Cors;
use crate::config::ServerConfig;
use crate::downstream::link::ServerPool;
use crate::http::{Method, Request};
use crate::job::{Answer, CallControl, CallKey, Inbox, ReplyTo, Signal, Slot};
use crate::registry::{ListKind, Snapshot};
use crate::rpc;
use crate::rpc::Id;
use crate::supervisor::Control;
use crate::workers::WorkerMsg;
use crossbeam_channel::Sender;
use serde_json::{Map, Value};
use session::{Session, Sessions, Transport};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The same resource update reported again within this window is one change.
const UPDATE_FOLD: Duration = Duration::from_millis(100);

/// A complete response to write now.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Close the connection after this response.
    pub close: bool,
}

impl Response {
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
            close: false,
        }
    }

    /// `{"error":{"code":..,"message":..}}`.
    pub fn error(status: u16, code: i64, message: &str) -> Response {
        Response::json(status, crate::job::rest_error(code, message))
    }

    /// A JSON-RPC error with a null id: the MCP endpoints' shape for errors without a request id.
    pub fn rpc_error(status: u16, code: i64, message: &str) -> Response {
        Response::json(status, crate::http::jsonrpc_error_body(code, message))
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// What the reactor does with a request.
#[derive(Debug)]
pub enum Outcome {
    Respond(Response),
    /// A job was dispatched for this connection; answer with its outcome, adding `headers`. With
    /// `sse`, messages that come before the outcome (progress) turn the answer into an event stream.
    Await {
        headers: Vec<(&'static str, String)>,
        sse: bool,
    },
    /// The connection becomes the SSE stream of a session; `head` are its first bytes.
    Stream {
        head: Vec<u8>,
        session: Slot,
    },
}

/// Work for the reactor on connections other than the one being handled.
#[derive(Debug)]
pub enum Outgoing {
    /// Bytes for a session's stream.
    Send(Slot, Vec<u8>),
    /// End a stream (its session was deleted).
    Close(Slot),
    /// The answer for a connection waiting on a request the router handled later (a held one).
    Answer {
        conn: Slot,
        status: u16,
        body: Vec<u8>,
    },
}

/// Security and session settings of the client-facing side.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cors: Cors,
    pub auth_token: Option<String>,
    pub allowed_origins: Vec<String>,
    pub session_timeout: Duration,
    /// `gateway.allowedHosts`: `Host` values accepted besides loopback names and addresses.
    pub allowed_hosts: Vec<String>,
    /// The gateway listens on a loopback address: only loopback (or allowed) hosts may be named.
    pub loopback_only: bool,
    /// `gateway.maxSessions`.
    pub max_sessions: usize,
    /// `gateway.maxInFlightPerSession`.
    pub max_in_flight_per_session: usize,
}

/// A session opened and never used (no `notifications/initialized`, no request) is forgotten
/// after this, whatever `sessionTimeout` says: an `initialize` flood cannot pile up sessions.
pub const UNUSED_SESSION_TIMEOUT: Duration = Duration::from_secs(60);

/// What the client of a dispatched call waits on its connection.
#[derive(Debug)]
struct ConnCall {
    control: Arc<CallControl>,
    /// The JSON-RPC id for an MCP call; None for REST.
    id: Option<Id>,
}

/// Shared state of the client-facing side.
pub struct Router {
    pub registry: Arc<Snapshot>,
    pub sessions: Sessions,
    jobs: Sender<WorkerMsg>,
    /// To the supervisor: downstream subscriptions and log level.
    control: Sender<Control>,
    /// How many sessions subscribe to each (server, URI): subscribed downstream while > 0.
    subscribers: HashMap<(usize, String), usize>,
    /// When each URI's last update went out, to fold the same change reported by several children.
    last_update: HashMap<String, Instant>,
    /// The most verbose level any session asked for (what servers are set to).
    downstream_level: Option<usize>,
    /// Requests waiting for a starting server to list what they name, with their deadlines.
    held: Vec<(held::Held, Instant)>,
    pools: Arc<[ServerPool]>,
    servers: Arc<[ServerConfig]>,
    settings: Settings,
    started: Instant,
    /// Jobs dispatched and not yet answered.
    pub in_flight: usize,
    /// Calls whose answer a connection waits for, by that connection.
    conn_calls: HashMap<Slot, ConnCall>,
    outbox: Vec<Outgoing>,
    pub shutting_down: bool,
}

impl Router {
    pub fn new(
        registry: Arc<Snapshot>,
        jobs: Sender<WorkerMsg>,
        control: Sender<Control>,
        pools: Arc<[ServerPool]>,
        servers: Arc<[ServerConfig]>,
        settings: Settings,
    ) -> Router {
        Router {
            registry,
            sessions: Sessions::default(),
            jobs,
            control,
            subscribers: HashMap::new(),
            last_update: HashMap::new(),
            downstream_level: None,
            held: Vec::new(),
            pools,
            servers,
            settings,
            started: Instant::now(),
            in_flight: 0,
            conn_calls: HashMap::new(),
            outbox: Vec::new(),
            shutting_down: false,
        }
    }

    /// Routes one request.
    pub fn handle(&mut self, conn: Slot, req: &Request, now: Instant) -> Outcome {
        if let Some(refusal) = self.check_host(req) {
            return Outcome::Respond(refusal);
        }
        if req.method == Method::Options {
            return Outcome::Respond(self.preflight(req));
        }
        let cors = self.cors_headers(req);
        let mut outcome = match self.gate(req) {
            Some(refusal) => Outcome::Respond(refusal),
            None => self.route(conn, req, now),
        };
        match &mut outcome {
            Outcome::Respond(response) => response.headers.extend(cors),
            Outcome::Await { headers, .. } => headers.extend(cors),
            Outcome::Stream { .. } => {}
        }
        outcome
    }

    /// `Host` must be present (HTTP/1.1) and, on a loopback gateway, name loopback or an allowed
    /// host: a page whose DNS name was rebound to 127.0.0.1 still sends its own name. `Some` is the
    /// refusal.
    fn check_host(&self, req: &Request) -> Option<Response> {
        let Some(host) = req.header("host") else {
            if req.minor_version >= 1 {
                return Some(Response {
                    close: true,
                    ..Response::error(
                        400,
                        rpc::codes::INVALID_REQUEST,
                        "an HTTP/1.1 request must carry a Host header",
                    )
                });
            }
            return None; // HTTP/1.0 may omit it; browsers never do
        };
        if !self.settings.loopback_only && self.settings.allowed_hosts.is_empty() {
            return None;
        }
        if host_allowed(host, &self.settings.allowed_hosts) {
            return None;
        }
        Some(Response::error(
            403,
            rpc::codes::INVALID_REQUEST,
            &format!(
                "Host {host} is not allowed: this gateway answers requests for localhost, loopback addresses and gateway.allowedHosts only (a protection against DNS rebinding)"
            ),
        ))
    }

    /// Whether the request carries the right bearer token (true when none is configured).
    fn authorized(&self, req: &Request) -> bool {
        let Some(token) = self.settings.auth_token.as_deref() else {
            return true;
        };
        bearer_token(req.header("authorization"))
            .is_some_and(|presented| constant_time_eq(presented.as_bytes(), token.as_bytes()))
    }

    /// Origin and bearer-token checks; `Some` is the refusal.
    fn gate(&self, req: &Request) -> Option<Response> {
        if req.path == "/health" {
            return None; // tells only its status without the token (see `health`)
        }
        if let Some(origin) = req.header("origin") {
            if !self.origin_allowed(origin) {
                return Some(Response::error(
                    403,
                    rpc::codes::INVALID_REQUEST,
                    &format!(
                        "origin {origin} is not allowed; add it to gateway.allowedOrigins (or gateway.cors)"
                    ),
                ));
            }
        }
        match self.authorized(req) {
            true => None,
            false => Some(
                Response::error(
                    401,
                    rpc::codes::INVALID_REQUEST,
                    "missing or wrong bearer token: send Authorization: Bearer <gateway.authToken>",
                )
                .header("WWW-Authenticate", "Bearer realm=\"mcp-gateway\""),
            ),
        }
    }

    /// Loopback origins are always allowed (DNS rebinding cannot produce them), plus configured ones.
    fn origin_allowed(&self, origin: &str) -> bool {
        match &self.settings.cors {
            Cors::Any => return true,
            Cors::Origins(list) if list.iter().any(|o| o == origin) => return true,
            _ => {}
        }
        self.settings.allowed_origins.iter().any(|o| o == origin) || is_loopback_origin(origin)
    }

    fn route(&mut self, conn: Slot, req: &Request, now: Instant) -> Outcome {
        let path = req.path.as_str();
        let allowed: &[Method] = match path {
            "/mcp" => &[Method::Get, Method::Post, Method::Delete],
            "/sse" => &[Method::Get, Method::Head, Method::Post],
            "/messages" | "/tools/call" => &[Method::Post],
            "/tools" | "/health" | "/" => &[Method::Get, Method::Head],
            _ => {
                return Outcome::Respond(Response::error(
                    404,
                    rpc::codes::INVALID_REQUEST,
                    &format!(
                        "no endpoint at {path}; the gateway serves /mcp, /sse, /messages, /tools, /tools/call and /health"
                    ),
                ))
            }
        };
        if !allowed.contains(&req.method) {
            let allow = allowed
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            return Outcome::Respond(
                Response::error(
                    405,
                    rpc::codes::INVALID_REQUEST,
                    &format!(
                        "{} does not accept {}; use {allow}",
                        path,
                        req.method.as_str()
                    ),
                )
                .header("Allow", allow),
            );
        }
        if self.shutting_down && path != "/health" {
            return Outcome::Respond(Response {
                close: true,
                ..Response::error(
                    503,
                    rpc::codes::SERVER_UNAVAILABLE,
                    "the gateway is shutting down",
                )
            });
        }
        match (path, &req.method) {
            // A client configured with the old URL that tries the new transport first gets it.
            ("/mcp" | "/sse", Method::Post) => self.mcp_post(conn, req, now),
            ("/mcp", Method::Get) => self.mcp_get(conn, req, now),
            ("/mcp", _) => Outcome::Respond(self.mcp_delete(req)),
            // The head a GET would get, without opening a session (no stream follows).
            ("/sse", Method::Head) => Outcome::Respond(Response {
                status: 200,
                content_type: "text/event-stream",
                headers: vec![("Cache-Control", "no-cache".to_string())],
                body: Vec::new(),
                close: true,
            }),
            ("/sse", _) => self.open_sse(conn, req, now),
            ("/messages", _) => Outcome::Respond(self.post_message(req, now)),
            ("/tools", _) => Outcome::Respond(Response::json(
                200,
                self.registry.rest_body.clone().into_bytes(),
            )),
            ("/tools/call", _) => self.rest_call(conn, req, now),
            ("/health", _) => Outcome::Respond(self.health(self.authorized(req))),
            _ => Outcome::Respond(index()),
        }
    }

    /// Sends a job to the workers and counts it as in flight; an MCP call becomes cancellable.
    pub(super) fn dispatch(&mut self, job: crate::job::Job) {
        self.in_flight += 1;
        if let ReplyTo::Conn(conn) = job.to {
            let id = match &job.answer {
                Answer::JsonRpc(id) => Some(id.clone()),
                Answer::Rest => None,
            };
            let control = job.control.clone();
            self.conn_calls.insert(conn, ConnCall { control, id });
        }
        if let Some(key) = job.key() {
            if let Some(session) = self.sessions.get_mut(key.session) {
                session.calls.insert(key.id, job.control.clone());
            }
        }
        // The workers live as long as the reactor; a send can only fail during teardown.
        let _ = self.jobs.send(WorkerMsg::Submit(job));
    }

    pub(super) fn count_subscription(&mut self, server: usize, uri: String, subscribe: bool) {
        let key = (server, uri);
        let count = self.subscribers.entry(key.clone()).or_insert(0);
        let before = *count;
        if subscribe {
            *count += 1;
        } else {
            *count = count.saturating_sub(1);
        }
        let after = *count;
        if after == 0 {
            self.subscribers.remove(&key);
        }
        if (before == 0) != (after == 0) {
            let _ = self.control.send(Control::Subscription {
                server: key.0,
                uri: key.1,
                subscribe: after > 0,
            });
        }
    }

    /// Servers are set to the most verbose level any session wants.
    pub(super) fn update_log_level(&mut self) {
        let wanted = self.sessions.iter().filter_map(|(_, s)| s.log_level).min();
        if wanted != self.downstream_level {
            self.downstream_level = wanted;
            let level = wanted.map(|rank| mcp::LOG_LEVELS[rank]);
            let _ = self.control.send(Control::LogLevel(level));
        }
    }

    /// Ends a session and whatever it held (subscriptions, its share of the log level).
    fn close_session(&mut self, session: Slot) -> Option<Session> {
        let closed = self.sessions.close(session)?;
        let per_session = |s: &ServerConfig| s.pool.share == crate::config::Share::Session;
        if self.servers.iter().any(per_session) {
            // After the cancellations of its calls (sent by `close`), so they release first.
            let _ = self.control.send(Control::SessionEnded(session));
        }
        let uris: Vec<String> = closed.subscriptions.iter().cloned().collect();
        for uri in uris {
            if let Some(server) = self.registry.route_uri(&uri) {
                self.count_subscription(server, uri, false);
            }
        }
        if closed.log_level.is_some() {
            self.update_log_level();
        }
        Some(closed)
    }

    /// A notification a server sent on its own: log messages go to sessions that asked for that
    /// level, resource updates to the sessions subscribed to the URI.
    pub fn server_notification(
        &mut self,
        server: usize,
        method: &str,
        mut params: Map<String, Value>,
        now: Instant,
    ) {
        let targets: Vec<Slot> = match method {
            "notifications/message" => {
                let rank = params
                    .get("level")
                    .and_then(Value::as_str)
                    .and_then(mcp::log_rank)
                    .unwrap_or(0);
                let name = &self.servers[server].name;
                let logger = match params.get("logger").and_then(Value::as_str) {
                    Some(logger) => format!("{name}/{logger}"),
                    None => name.clone(),
                };
                params.insert("logger".into(), Value::String(logger));
                self.sessions
                    .iter()
                    .filter(|(_, s)| s.log_level.is_some_and(|level| level <= rank))
                    .map(|(slot, _)| slot)
                    .collect()
            }
            "notifications/resources/updated" => {
                let Some(uri) = params.get("uri").and_then(Value::as_str) else {
                    return;
                };
                let recent = self
                    .last_update
                    .get(uri)
                    .is_some_and(|at| now.saturating_duration_since(*at) < UPDATE_FOLD);
                if recent {
                    return;
                }
                self.last_update
                    .retain(|_, at| now.saturating_duration_since(*at) < UPDATE_FOLD);
                self.last_update.insert(uri.to_string(), now);
                self.sessions
                    .iter()
                    .filter(|(_, s)| s.subscriptions.contains(uri))
                    .map(|(slot, _)| slot)
                    .collect()
            }
            "notifications/tools/list_changed"
            | "notifications/prompts/list_changed"
            | "notifications/resources/list_changed" => return self.tell_all(&[method]),
            _ => return,
        };
        let json = rpc::notification(method, Some(&params));
        for session in targets {
            self.to_session(session, &json);
        }
    }

    /// A message for a session's stream, as an SSE `message` event. Dropped when the session has no
    /// stream open (a Streamable HTTP client that never opened its GET stream).
    pub fn to_session(&mut self, session: Slot, json: &[u8]) {
        if let Some(stream) = self.sessions.get(session).and_then(|s| s.stream) {
            let mut event = Vec::with_capacity(json.len() + 24);
            crate::http::sse::write_event(&mut event, Some("message"), None, json);
            self.outbox.push(Outgoing::Send(stream, event));
        }
    }

    /// Takes the work queued for other connections.
    pub fn take_outbox(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    /// A session's stream closed: a legacy session ends with it; a Streamable HTTP session only loses
    /// its stream.
    pub fn stream_closed(&mut self, session: Slot, now: Instant) {
        let Some(s) = self.sessions.get_mut(session) else {
            return;
        };
        match s.transport {
            Transport::LegacySse => {
                let id = self.close_session(session).map(|s| s.id);
                log::debug!("session {} closed", id.unwrap_or_default());
            }
            Transport::Streamable => {
                s.stream = None;
                s.last_seen = now;
            }
        }
    }

    /// Forgets Streamable HTTP sessions unused for `sessionTimeout` with no stream open, and those
    /// never used at all after `UNUSED_SESSION_TIMEOUT`.
    pub fn reap_sessions(&mut self, now: Instant) {
        let timeout = self.settings.session_timeout;
        let expired: Vec<Slot> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.expired(now, timeout, UNUSED_SESSION_TIMEOUT))
            .map(|(slot, _)| slot)
            .collect();
        for slot in expired {
            if let Some(s) = self.close_session(slot) {
                log::debug!(
                    "session {} expired after {} ms unused",
                    s.id,
                    timeout.as_millis()
                );
            }
        }
    }

    /// A connection closed: the call it waited for (if any) is cancelled, which tells the server
    /// (`notifications/cancelled`) and frees the handle; a request held for it is dropped.
    pub fn conn_closed(&mut self, conn: Slot) {
        if let Some(call) = self.conn_calls.remove(&conn) {
            call.control.cancel();
        }
        self.drop_held_for(conn);
    }

    /// The grace period is over: every running call is cancelled. Returns the "gateway stopping"
    /// answers for the connections that wait (503, or -32000 for MCP); legacy SSE sessions get
    /// theirs through the outbox.
    pub fn stop_calls(&mut self) -> Vec<(Slot, u16, Vec<u8>)> {
        const STOPPING: &str =
            "gateway stopping: the call was still running when the shutdown grace period ended";
        let code = rpc::codes::SERVER_UNAVAILABLE;
        let mut answers = Vec::new();
        for (conn, call) in self.conn_calls.drain() {
            call.control.cancel();
            let body = match call.id {
                Some(id) => rpc::error_response(Some(id.json()), code, STOPPING),
                None => crate::job::rest_error(code, STOPPING),
            };
            answers.push((conn, 503, body));
        }
        let legacy: Vec<(Slot, Vec<Id>)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.transport == Transport::LegacySse)
            .map(|(slot, s)| (slot, s.calls.keys().cloned().collect()))
            .collect();
        for (session, ids) in legacy {
            for id in ids {
                if let Some(control) = self
                    .sessions
                    .get_mut(session)
                    .and_then(|s| s.calls.remove(&id))
                {
                    control.cancel();
                }
                self.to_session(
                    session,
                    &rpc::error_response(Some(id.json()), code, STOPPING),
                );
            }
        }
        answers
    }

    /// A worker's final answer arrived (for `to`).
    pub fn answered(&mut self, done: Option<CallKey>, to: ReplyTo) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let ReplyTo::Conn(conn) = to {
            self.conn_calls.remove(&conn);
        }
        if let Some(key) = done {
            if let Some(session) = self.sessions.get_mut(key.session) {
                session.calls.remove(&key.id);
                // A call that just ended was a use of the session: its sessionTimeout restarts.
                session.last_seen = Instant::now();
            }
        }
    }

    /// A server asks the client something during a call. Returns the request to send, or None when
    /// the client cannot answer (the server has been told why).
    pub fn client_request(
        &mut self,
        session: Slot,
        child_id: Value,
        method: &str,
        params: Option<Value>,
        reply: Inbox,
    ) -> Option<Vec<u8>> {
        let refuse = |reply: &Inbox, child_id: Value, why: String| {
            let error = serde_json::json!({"code": rpc::codes::METHOD_NOT_FOUND, "message": why});
            reply.post(Signal::ClientAnswer {
                child_id,
                outcome: Err(error),
            });
        };
        let Some(state) = self.sessions.get_mut(session) else {
            refuse(&reply, child_id, "the client went away".into());
            return None;
        };
        let capability = match method {
            "sampling/createMessage" => "sampling",
            "elicitation/create" => "elicitation",
            _ => "roots",
        };
        if !state.client_capabilities.contains_key(capability) {
            refuse(
                &reply,
                child_id,
                format!("the client did not declare the {capability} capability, so it cannot answer {method}"),
            );
            return None;
        }
        let id = state.ask(child_id, reply);
        let mut request = serde_json::Map::new();
        request.insert("jsonrpc".into(), "2.0".into());
        request.insert("id".into(), Value::String(id));
        request.insert("method".into(), method.into());
        if let Some(params) = params {
            request.insert("params".into(), params);
        }
        Some(Value::Object(request).to_string().into_bytes())
    }

    /// A forwarded request could not be delivered (the HTTP request it rode on cannot stream).
    pub fn client_request_failed(&mut self, session: Slot, request: &[u8], why: &str) {
        let id = serde_json::from_slice::<Value>(request)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_string));
        if let (Some(state), Some(id)) = (self.sessions.get_mut(session), id) {
            let error = serde_json::json!({"code": rpc::codes::INTERNAL_ERROR, "message": why});
            state.answer_ask(&id, Err(error));
        }
    }

    /// Installs a new registry; sessions hear which lists changed, held requests are tried again.
    pub fn set_registry(&mut self, registry: Arc<Snapshot>, now: Instant) {
        let mut methods: Vec<&str> = registry
            .changed_lists(&self.registry)
            .into_iter()
            .map(|kind| match kind {
                ListKind::Tools => "notifications/tools/list_changed",
                ListKind::Prompts => "notifications/prompts/list_changed",
                ListKind::Resources | ListKind::Templates => "notifications/resources/list_changed",
            })
            .collect();
        methods.dedup();
        self.registry = registry;
        self.tell_all(&methods);
        self.retry_held(now);
    }

    /// Sends parameterless notifications to every initialized session.
    fn tell_all(&mut self, methods: &[&str]) {
        let targets: Vec<Slot> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.initialized)
            .map(|(slot, _)| slot)
            .collect();
        for method in methods {
            let note = rpc::notification::<()>(method, None);
            for &session in &targets {
                self.to_session(session, &note);
            }
        }
    }

    fn cors_headers(&self, req: &Request) -> Vec<(&'static str, String)> {
        let Some(origin) = req.header("origin") else {
            return Vec::new();
        };
        let allow = match &self.settings.cors {
            Cors::Off => return Vec::new(),
            Cors::Any => "*".to_string(),
            Cors::Origins(list) if list.iter().any(|o| o == origin) => origin.to_string(),
            Cors::Origins(_) => return Vec::new(),
        };
        vec![
            ("Access-Control-Allow-Origin", allow),
            ("Access-Control-Expose-Headers", "Mcp-Session-Id".into()),
            ("Vary", "Origin".into()),
        ]
    }

    fn preflight(&self, req: &Request) -> Response {
        let cors = self.cors_headers(req);
        let mut response = Response {
            status: 204,
            content_type: "application/json",
            headers: vec![("Allow", "GET, HEAD, POST, DELETE, OPTIONS".into())],
            body: Vec::new(),
            close: false,
        };
        if !cors.is_empty() {
            response.headers.extend(cors);
            response.headers.extend([
                (
                    "Access-Control-Allow-Methods",
                    "GET, POST, DELETE, OPTIONS".into(),
                ),
                (
                    "Access-Control-Allow-Headers",
                    "Authorization, Content-Type, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID"
                        .into(),
                ),
                ("Access-Control-Max-Age", "86400".into()),
            ]);
        }
        response
    }
}

/// The credentials of `Authorization: Bearer <token>`; the scheme name is case-insensitive.
fn bearer_token(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether a `Host` value names loopback (`localhost`, `127.x.x.x`, `[::1]`, any port) or is listed
/// in `allowed` (compared with and without its port, case-insensitively).
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim();
    let name = if let Some(v6) = host.strip_prefix('[') {
        match v6.split_once(']') {
            Some((name, rest)) if rest.is_empty() || rest.starts_with(':') => name,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            Some(_) => return false,
            None => host,
        }
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback
        || allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(name))
}

/// `http(s)://localhost`, `127.x.x.x`, `[::1]`, with any port.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((host, _)) => return host == "::1",
            None => return false,
        }
    } else {
        rest.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Compares secrets without a timing side channel on their content.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /`: what this is and where to go.
fn index() -> Response {
    Response::json(
        200,
        serde_json::json!({
            "name": "mcp-gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "endpoints": {
                "mcp": "/mcp",
                "sse": "/sse",
                "messages": "/messages?sessionId=...",
                "tools": "/tools",
                "call": "/tools/call",
                "health": "/health",
            }
        })
        .to_string()
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins() {
        for ok in [
            "http://localhost",
            "http://localhost:6274",
            "https://127.0.0.1:8080",
            "http://127.5.0.1",
            "http://[::1]:3000",
            "http://LOCALHOST",
        ] {
            assert!(is_loopback_origin(ok), "{ok}");
        }
        for bad in [
            "http://localhost.evil.com",
            "http://evil.com",
            "null",
            "file://",
            "http://[::2]",
            "http://10.0.0.1",
            "ws://localhost",
        ] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
    }

    #[test]
    fn hosts() {
        let none: Vec<String> = Vec::new();
        for ok in [
            "localhost",
            "LocalHost:4298",
            "127.0.0.1",
            "127.0.0.1:80",
            "127.9.9.9:1",
            "[::1]",
            "[::1]:4298",
        ] {
            assert!(host_allowed(ok, &none), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "evil.example.com:4298",
            "localhost.evil.com",
            "10.0.0.1",
            "[::2]:80",
            "[::1]x",
            "localhost:80x",
            "",
        ] {
            assert!(!host_allowed(bad, &none), "{bad}");
        }
        let allowed = vec!["gw.internal".to_string(), "box:8080".to_string()];
        assert!(host_allowed("GW.internal:4298", &allowed));
        assert!(host_allowed("box:8080", &allowed));
        assert!(!host_allowed("box:9090", &allowed));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("BEARER abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
