//! What clients speak: routing each HTTP request to its endpoint, and the session table.
//!
//! `Router::handle` is sans-IO: it takes a parsed request and returns what the reactor should do
//! (respond now, wait for a worker's answer, or turn the connection into an SSE stream). Bytes for
//! *other* connections (events on a session's stream) go to the outbox, which the reactor drains after
//! every call. Everything here runs on the reactor thread: no blocking, no locks but the pool stats'
//! last-error string read by `/health`.

mod health;
pub mod mcp;
mod rest;
pub mod session;
mod sse;

use crate::config::{Cors, ServerConfig};
use crate::http::{Method, Request};
use crate::job::Slot;
use crate::registry::Snapshot;
use crate::rpc;
use crate::supervisor::ServerPool;
use crate::workers::WorkerMsg;
use crossbeam_channel::Sender;
use session::Sessions;
use std::sync::Arc;
use std::time::Instant;

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
    /// A job was dispatched for this connection; answer with its outcome, adding `headers`.
    Await {
        headers: Vec<(&'static str, String)>,
    },
    /// The connection becomes the SSE stream of a session; `head` are its first bytes.
    Stream {
        head: Vec<u8>,
        session: Slot,
    },
}

/// Shared state of the client-facing side.
pub struct Router {
    pub registry: Arc<Snapshot>,
    pub sessions: Sessions,
    jobs: Sender<WorkerMsg>,
    pools: Arc<[ServerPool]>,
    servers: Arc<[ServerConfig]>,
    cors: Cors,
    started: Instant,
    /// Jobs dispatched and not yet answered.
    pub in_flight: usize,
    /// Bytes for session streams: (stream connection, bytes).
    outbox: Vec<(Slot, Vec<u8>)>,
    pub shutting_down: bool,
}

impl Router {
    pub fn new(
        registry: Arc<Snapshot>,
        jobs: Sender<WorkerMsg>,
        pools: Arc<[ServerPool]>,
        servers: Arc<[ServerConfig]>,
        cors: Cors,
    ) -> Router {
        Router {
            registry,
            sessions: Sessions::default(),
            jobs,
            pools,
            servers,
            cors,
            started: Instant::now(),
            in_flight: 0,
            outbox: Vec::new(),
            shutting_down: false,
        }
    }

    /// Routes one request.
    pub fn handle(&mut self, conn: Slot, req: &Request, now: Instant) -> Outcome {
        if req.method == Method::Options {
            return Outcome::Respond(self.preflight(req));
        }
        let cors = self.cors_headers(req);
        let mut outcome = self.route(conn, req, now);
        match &mut outcome {
            Outcome::Respond(response) => response.headers.extend(cors),
            Outcome::Await { headers } => headers.extend(cors),
            Outcome::Stream { .. } => {}
        }
        outcome
    }

    fn route(&mut self, conn: Slot, req: &Request, now: Instant) -> Outcome {
        let path = req.path.as_str();
        let allowed: &[Method] = match path {
            "/sse" => &[Method::Get],
            "/messages" => &[Method::Post],
            "/tools/call" => &[Method::Post],
            "/tools" | "/health" | "/" => &[Method::Get, Method::Head],
            _ => {
                return Outcome::Respond(Response::error(
                    404,
                    rpc::codes::INVALID_REQUEST,
                    &format!(
                        "no endpoint at {path}; the gateway serves /sse, /messages, /tools, /tools/call and /health"
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
        match path {
            "/sse" => self.open_sse(conn, req),
            "/messages" => Outcome::Respond(self.post_message(req, now)),
            "/tools" => Outcome::Respond(Response::json(
                200,
                self.registry.rest_body.clone().into_bytes(),
            )),
            "/tools/call" => self.rest_call(conn, req, now),
            "/health" => Outcome::Respond(self.health()),
            _ => Outcome::Respond(index()),
        }
    }

    /// Sends a job to the workers and counts it as in flight.
    fn dispatch(&mut self, job: crate::job::Job) {
        self.in_flight += 1;
        // The workers live as long as the reactor; a send can only fail during teardown.
        let _ = self.jobs.send(WorkerMsg::Submit(job));
    }

    /// A worker's message for a session: it goes out as an SSE `message` event on its stream.
    pub fn to_session(&mut self, session: Slot, json: &[u8]) {
        if let Some(s) = self.sessions.get(session) {
            let mut event = Vec::with_capacity(json.len() + 24);
            crate::http::sse::write_event(&mut event, Some("message"), None, json);
            self.outbox.push((s.stream, event));
        }
    }

    /// Takes the bytes queued for session streams.
    pub fn take_outbox(&mut self) -> Vec<(Slot, Vec<u8>)> {
        std::mem::take(&mut self.outbox)
    }

    /// The stream of a session closed: the session ends.
    pub fn stream_closed(&mut self, session: Slot) {
        if let Some(s) = self.sessions.close(session) {
            log::debug!("session {} closed", s.id);
        }
    }

    /// A worker's final answer arrived.
    pub fn answered(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Installs a new registry; sessions hear about a changed tool list.
    pub fn set_registry(&mut self, registry: Arc<Snapshot>) {
        let changed = registry.list_result != self.registry.list_result;
        self.registry = registry;
        if changed {
            let note = rpc::notification::<()>("notifications/tools/list_changed", None);
            let targets: Vec<Slot> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.initialized)
                .map(|(slot, _)| slot)
                .collect();
            for session in targets {
                self.to_session(session, &note);
            }
        }
    }

    fn cors_headers(&self, req: &Request) -> Vec<(&'static str, String)> {
        let Some(origin) = req.header("origin") else {
            return Vec::new();
        };
        let allow = match &self.cors {
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
            headers: vec![("Allow", "GET, HEAD, POST, OPTIONS".into())],
            body: Vec::new(),
            close: false,
        };
        if !cors.is_empty() {
            response.headers.extend(cors);
            response.headers.extend([
                ("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS".into()),
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

/// `GET /`: what this is and where to go.
fn index() -> Response {
    Response::json(
        200,
        serde_json::json!({
            "name": "mcp-gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "endpoints": {
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
