//! What clients speak: routing each HTTP request to its endpoint, and the session table.
//!
//! `Router::handle` is sans-IO: it takes a parsed request and returns what the reactor should do
//! (respond now, wait for a worker's answer, or turn the connection into an SSE stream). Bytes for
//! *other* connections (events on a session's stream) and streams to end go to the outbox, which the
//! reactor drains after every call. Everything here runs on the reactor thread: no blocking, no locks
//! but the pools' short ones read by `/health` and `/metrics` (last error, handles' load).
//!
//! Every request first passes the host check (`gate`): HTTP/1.1 without `Host` is 400; on a gateway listening
//! on loopback (or with `gateway.allowedHosts` set) a `Host` that is neither a loopback name or
//! address nor listed is 403, whatever the `Origin` (DNS rebinding). Every endpoint but `/health`
//! then passes the gate: a present `Origin` must be allowed (403), and when `gateway.authToken` is
//! set, `Authorization: Bearer <token>` must match (401; the scheme is case-insensitive); with
//! `gateway.oauth`, a JWT access token may pass instead (`oauth`: 401 `invalid_token`, 403
//! `insufficient_scope`, 503 while its key set is not there). `/health` without a valid token
//! (when one is required) tells only its status; the RFC 9728 metadata document needs none.
//!
//! Every call waiting on a connection is known by that connection's slot (`conn_calls`): when the
//! connection closes the call is cancelled, and when the gateway stops it is answered "stopping".
//! What goes to sessions unasked (server notifications, `list_changed`, a server's requests) is in
//! `fanout`.

mod fanout;
mod gate;
mod health;
mod held;
mod listen;
pub mod mcp;
mod metrics;
pub mod modern;
pub mod oauth;
pub mod profiles;
pub mod redact;
mod rest;
pub mod search;
pub mod session;
pub mod signed;
mod sse;
mod streamable;

use crate::config::Cors;
use crate::config::{ServerConfig, ServerKind};
use crate::downstream::servers::{LiveServers, Servers};
use crate::http::{Method, Request};
use crate::job::{CallControl, CallKey, Inbox, ReplyTo, Signal, Slot};
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
    /// The gateway's own notes for `/health` (before the registry's): an unauthenticated bind.
    pub notes: Vec<String>,
}

impl Settings {
    /// From the `gateway` section; `loopback_only`: where the gateway listens (fixed until a
    /// restart); `notes`: the gateway's own notes for `/health`.
    pub fn from_gateway(
        gateway: &crate::config::GatewayConfig,
        loopback_only: bool,
        notes: Vec<String>,
    ) -> Settings {
        Settings {
            cors: gateway.cors.clone(),
            auth_token: gateway.auth_token.clone(),
            allowed_origins: gateway.allowed_origins.clone(),
            session_timeout: gateway.session_timeout,
            allowed_hosts: gateway.allowed_hosts.clone(),
            loopback_only,
            max_sessions: gateway.max_sessions,
            max_in_flight_per_session: gateway.max_in_flight_per_session,
            notes,
        }
    }
}

/// Reloads so far, for `/health`.
#[derive(Debug, Default)]
struct Reloads {
    applied: u64,
    refused: u64,
    /// The last one's summary line, and whether it was applied.
    last: Option<(String, bool)>,
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
    /// Where jobs for local servers go (child I/O offers them to their pools): a worker would
    /// only pass them on.
    child_io: Option<crate::downstream::child_io::ChildIo>,
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
    /// Where a reload publishes the server table; read again with every new snapshot.
    live: LiveServers,
    /// The table the current snapshot was built on (or a newer one).
    servers: Servers,
    settings: Settings,
    reloads: Reloads,
    /// Signs Streamable HTTP session ids so they outlive this process (`signed`); None without a
    /// state dir.
    signer: Option<signed::Signer>,
    started: Instant,
    /// Jobs dispatched and not yet answered.
    pub in_flight: usize,
    /// Calls whose answer a connection waits for, by that connection.
    conn_calls: HashMap<Slot, ConnCall>,
    /// 2026-07-28 calls waiting for their client's retry, by the `requestState` it was given.
    suspended: HashMap<String, modern::Suspended>,
    outbox: Vec<Outgoing>,
    pub shutting_down: bool,
    /// The call histogram of `/metrics` (`metrics.rs`).
    metrics: crate::metrics::CallMetrics,
    /// `gateway.auditLog`, when set.
    audit: Option<crate::audit::AuditLog>,
    /// `gateway.oauth`, when set: the JWT guard (`oauth`).
    oauth: Option<oauth::Guard>,
    /// The request being routed: the tag of its OAuth token's subject (`gate`), which owns the
    /// sessions it opens (`Session::owner`).
    principal: Option<String>,
}

impl Router {
    pub fn new(
        registry: Arc<Snapshot>,
        jobs: Sender<WorkerMsg>,
        control: Sender<Control>,
        live: LiveServers,
        settings: Settings,
    ) -> Router {
        Router {
            registry,
            sessions: Sessions::default(),
            jobs,
            child_io: None,
            control,
            subscribers: HashMap::new(),
            last_update: HashMap::new(),
            downstream_level: None,
            held: Vec::new(),
            servers: live.get(),
            live,
            settings,
            reloads: Reloads::default(),
            signer: None,
            started: Instant::now(),
            in_flight: 0,
            conn_calls: HashMap::new(),
            suspended: HashMap::new(),
            outbox: Vec::new(),
            shutting_down: false,
            metrics: Default::default(),
            audit: None,
            oauth: None,
            principal: None,
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
        if let Some(mut metadata) = self.protected_resource(req) {
            metadata.headers.extend(cors);
            return Outcome::Respond(metadata);
        }
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

    fn route(&mut self, conn: Slot, req: &Request, now: Instant) -> Outcome {
        // `/mcp/<profile>` is `/mcp` for that profile (see `profiles`).
        let (path, _) = profiles::split_path(&req.path);
        let allowed: &[Method] = match path {
            "/mcp" => &[Method::Get, Method::Post, Method::Delete],
            "/sse" => &[Method::Get, Method::Head, Method::Post],
            "/messages" | "/tools/call" => &[Method::Post],
            "/tools" | "/health" | "/metrics" | "/" => &[Method::Get, Method::Head],
            _ => {
                return Outcome::Respond(Response::error(
                    404,
                    rpc::codes::INVALID_REQUEST,
                    &format!(
                        "no endpoint at {path}; the gateway serves /mcp, /sse, /messages, /tools, /tools/call, /health and /metrics (and /mcp/<profile>, /sse/<profile>)"
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
        if path != "/health" && path != "/" {
            if let Some(refusal) = self.check_profile(req, path.starts_with("/tools")) {
                return Outcome::Respond(refusal);
            }
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
            ("/messages", _) => {
                Outcome::Respond(modern::echo_id(self.post_message(req, now), &req.body))
            }
            ("/tools", _) => Outcome::Respond(Response::json(
                200,
                self.view(&profiles::requested(req))
                    .rest_body
                    .clone()
                    .into_bytes(),
            )),
            ("/tools/call", _) => self.rest_call(conn, req, now),
            ("/health", _) => {
                let full = self.authorized(req);
                Outcome::Respond(self.health(full))
            }
            ("/metrics", _) => Outcome::Respond(self.metrics()),
            _ => Outcome::Respond(index(&self.registry.profile_names())),
        }
    }

    /// Sends a job to the workers and counts it as in flight; an MCP call becomes cancellable.
    pub(super) fn dispatch(&mut self, mut job: crate::job::Job) {
        self.meter(&mut job);
        self.in_flight += 1;
        if let ReplyTo::Conn(conn) = job.to {
            let id = job.answer.id().cloned();
            let control = job.control.clone();
            self.conn_calls.insert(conn, ConnCall { control, id });
        }
        if let Some(key) = job.key() {
            if let Some(session) = self.sessions.get_mut(key.session) {
                session.calls.insert(key.id, job.control.clone());
            }
        }
        let local = matches!(
            self.servers.configs.get(job.server).map(|s| &s.kind),
            Some(ServerKind::Local(_))
        );
        match &self.child_io {
            Some(child_io) if local => child_io.submit(job),
            // The workers live as long as the reactor; a send can only fail during teardown.
            _ => {
                let _ = self.jobs.send(WorkerMsg::Submit(job));
            }
        }
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

    /// Sends jobs for local servers straight to child I/O.
    pub fn carry_local_calls(&mut self, child_io: crate::downstream::child_io::ChildIo) {
        self.child_io = Some(child_io);
    }

    /// Guards every endpoint but `/health` with JWT access tokens (`gateway.oauth`).
    pub fn guard_with_oauth(&mut self, guard: oauth::Guard) {
        self.oauth = Some(guard);
    }

    /// Makes Streamable HTTP sessions restart-proof with the key in the file `key` (made if
    /// missing). A key that cannot be had is logged: sessions then end with the process.
    pub fn sign_sessions(&mut self, key: &std::path::Path) {
        match signed::Signer::load_or_create(key) {
            Ok(signer) => self.signer = Some(signer),
            Err(e) => log::warn!("{e}; sessions will not survive a restart"),
        }
    }

    /// A reload was applied (`gateway` is the new section) or refused (None).
    pub fn reloaded(
        &mut self,
        gateway: Option<&crate::config::GatewayConfig>,
        notes: Vec<String>,
        summary: String,
    ) {
        match gateway {
            Some(gateway) => {
                self.settings = Settings::from_gateway(gateway, self.settings.loopback_only, notes);
                if let (Some(guard), Some(oauth)) = (self.oauth.as_mut(), &gateway.oauth) {
                    guard.update(oauth);
                }
                self.reloads.applied += 1;
            }
            None => self.reloads.refused += 1,
        }
        crate::metrics::record_reload(gateway.is_some());
        self.reloads.last = Some((summary, gateway.is_some()));
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
        if self.servers.in_force().any(|(_, s, _)| per_session(s)) {
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
            Transport::LegacySse | Transport::Listen => {
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
        let stopping = crate::job::Failure::Unavailable(
            "gateway stopping: the call was still running when the shutdown grace period ended"
                .into(),
        );
        let mut answers = Vec::new();
        for (conn, call) in self.conn_calls.drain() {
            call.control.cancel();
            answers.push((conn, 503, stopping.body(call.id.as_ref())));
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
                self.to_session(session, &stopping.body(Some(&id)));
            }
        }
        answers
    }

    /// A worker's final answer arrived (for `to`); `finished` says how a job ended.
    pub fn answered(
        &mut self,
        done: Option<CallKey>,
        to: ReplyTo,
        finished: Option<crate::job::Finished>,
    ) {
        if let Some(finished) = finished {
            self.finish(finished);
        }
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
}

/// `GET /`: what this is and where to go.
fn index(profiles: &[&str]) -> Response {
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
                "metrics": "/metrics",
            },
            "profiles": profiles,
            "profileEndpoints": {
                "mcp": "/mcp/<profile>",
                "sse": "/sse/<profile>",
                "tools": "/tools?profile=<profile>",
            }
        })
        .to_string()
        .into_bytes(),
    )
}
