//! One pooled handle on a remote MCP server: an MCP session over Streamable HTTP or the legacy
//! HTTP+SSE transport, usable by many calls from several worker threads at once.
//!
//! This file owns the handle's state (the session, the calls in flight, the stream thread's
//! queue), its life, and the plain HTTP requests it sends; the rest is split by job, each an
//! `impl RemoteLink` of its own that `use`s this file (never the other way):
//! - `call`: `begin` and one request in flight, stepped by the worker that made it (its answer
//!   comes on the worker's own connection with Streamable HTTP, through its inbox with the legacy
//!   transport);
//! - `session`: negotiating the transport, `initialize`, and renewing a session the server lost
//!   (a call that finds its session lost renews it, and renewing is a call: the two recurse);
//! - `stream`: the handle's one long-lived thread, which holds the server→client stream (the
//!   standalone GET stream, or the legacy stream that carries everything) and sends what nobody
//!   waits for from a queue: notifications, responses to the server, detached requests, the final
//!   `DELETE`;
//! - `flights`: the calls in flight, for what the server says outside a call's own stream.
//!
//! Invariants:
//! - A handle is alive until `die` (the server is unreachable, its stream ended, a new session
//!   could not be had, an internal error) or `retire` (the pool is done with it). `die` reports
//!   `ChildEvent::Closed` through `events` exactly once, so the pool replaces the handle with
//!   backoff and `/health` says why; calls in flight are told at once.
//! - Apart from the calls themselves (their POSTs run on the calling workers), the handshake's own
//!   requests (on the supervisor's handshake thread) and a renewal's `initialize` (on whichever
//!   thread found the session lost), everything this handle sends goes through its stream thread's
//!   queue: no thread is ever spawned per request, and `retire` never blocks.
//! - Only the configured `headers` go to the server: nothing of the clients' own requests (their
//!   tokens included) is passed on.

use super::conn::{Closer, Conn, ConnError, ResponseHead, Url};
use super::flights::Flights;
use super::lock;
use super::shared::IdleConns;
pub use super::target::Target;
use crate::downstream::child_io::ChildEvent;
use crate::downstream::message::{notification_event, Message};
use crate::downstream::{response_to, Answer, CallError, Requester};
use crate::rpc::{self, Params};
use crossbeam_channel::Sender;
use mio::Waker;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Where what a remote server says outside a call goes (the same place as for children).
pub type Events = Arc<dyn Fn(ChildEvent) + Send + Sync>;

/// Keep-alive connections kept per handle between requests (as many as calls a handle carries
/// at once by default, so a busy handle does not reconnect for every call).
const IDLE_CONNS: usize = 16;
/// Bound on notifications, responses to the server, detached requests, and ending a session.
pub(super) const SIDE_LIMIT: Duration = Duration::from_secs(5);
/// Most of an error response's body quoted in an error message.
pub(super) const ERROR_PREVIEW: usize = 300;

#[derive(Clone)]
pub enum Mode {
    /// Before `initialize` succeeded.
    New,
    Streamable,
    Legacy {
        endpoint: Url,
    },
}

pub struct Session {
    pub mode: Mode,
    /// `Mcp-Session-Id`, when the server issued one.
    pub id: Option<String>,
    /// The negotiated version, sent as `MCP-Protocol-Version` after `initialize`.
    pub protocol: Option<String>,
    /// The `initialize` parameters, to open a new session after the server forgot ours.
    pub init: Option<Map<String, Value>>,
    /// Bumped by every successful `initialize`: a call that saw the loss of an older generation
    /// does not initialize again.
    pub generation: u64,
}

impl Default for Session {
    fn default() -> Session {
        Session {
            mode: Mode::New,
            id: None,
            protocol: None,
            init: None,
            generation: 0,
        }
    }
}

/// What the stream thread is asked to do.
pub enum Out {
    /// POST a notification or a response to the server; its HTTP answer is read and dropped.
    Message { body: Vec<u8>, what: &'static str },
    /// A request whose answer nobody waits for.
    Request {
        method: String,
        params: Map<String, Value>,
    },
    /// Streamable HTTP: hold the standalone GET stream from now on.
    Listen,
    /// 2026-07-28: a change of what the handle's `subscriptions/listen` stream asks for.
    Subscribe(crate::downstream::era::Listen),
    /// Legacy transport: the stream opened during `initialize`, to read from now on.
    Legacy(Box<(Conn, ResponseHead)>),
    /// `DELETE` the session, then stop.
    End { session_id: String },
}

/// The sending side of the stream thread's queue (`stream` starts the thread and sends).
#[derive(Default)]
pub struct Outbox {
    pub(super) owner: Mutex<Option<Owner>>,
}

pub(super) struct Owner {
    pub(super) tx: Sender<Out>,
    pub(super) waker: Arc<Waker>,
}

impl Outbox {
    /// Rings the thread (it looks at the handle's state and its queue).
    pub fn wake(&self) {
        if let Some(owner) = lock(&self.owner).as_ref() {
            let _ = owner.waker.wake();
        }
    }
}

/// A session with a remote MCP server, usable from several threads at once.
pub struct RemoteLink {
    pub server: usize,
    pub name: Arc<str>,
    pub serial: u64,
    pub(super) target: Arc<Target>,
    pub(super) events: Events,
    pub(super) me: Weak<RemoteLink>,
    alive: AtomicBool,
    next_id: AtomicU64,
    pub(super) session: Mutex<Session>,
    /// Keep-alive connections not in use.
    idle: IdleConns,
    /// The stream the stream thread holds (GET or legacy), shut down when the handle dies.
    pub(super) stream: Mutex<Option<Closer>>,
    /// Calls in flight, by request id.
    pub(super) flights: Mutex<Flights>,
    /// One re-initialization at a time.
    pub(super) renewing: Mutex<()>,
    /// Why the handle died, for errors.
    death: Mutex<Option<String>>,
    /// The stream thread's queue (the thread starts with the first message).
    pub(super) outbox: Outbox,
    /// The handshake chose protocol 2026-07-28: no session, headers mirroring every request.
    modern: AtomicBool,
    /// Its tools' `x-mcp-header` annotations (2026-07-28), by tool name.
    pub(super) param_headers: Mutex<crate::downstream::era::ParamHeaders>,
}

impl RemoteLink {
    pub fn new(
        server: usize,
        name: Arc<str>,
        serial: u64,
        target: Arc<Target>,
        events: Events,
    ) -> Arc<RemoteLink> {
        Arc::new_cyclic(|me| RemoteLink {
            server,
            name,
            serial,
            target,
            events,
            me: me.clone(),
            alive: AtomicBool::new(true),
            next_id: AtomicU64::new(1),
            session: Mutex::new(Session::default()),
            idle: IdleConns::new(IDLE_CONNS),
            stream: Mutex::new(None),
            flights: Mutex::new(Flights::default()),
            renewing: Mutex::new(()),
            death: Mutex::new(None),
            outbox: Outbox::default(),
            modern: AtomicBool::new(false),
            param_headers: Mutex::new(Default::default()),
        })
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Why the handle is gone, as far as known.
    pub fn death_note(&self) -> String {
        lock(&self.death)
            .clone()
            .unwrap_or_else(|| format!("server {}: the session ended", self.name))
    }

    pub(super) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Answers one of the server's own requests (through the stream thread's queue).
    pub fn respond_to(&self, id: &Value, outcome: Result<&Value, &Value>) {
        lock(&self.flights).answered(id);
        self.post(Out::Message {
            body: response_to(id, outcome),
            what: "a response",
        });
    }

    /// Stops the handle: streams closed, callers told, and the session ended on the server by
    /// the stream thread (bounded by `SIDE_LIMIT`; this returns at once).
    pub fn retire(&self) {
        let session_id = lock(&self.session).id.take();
        if let Some(session_id) = session_id {
            // Queued before the handle is marked dead, so the stream thread still finds it.
            self.post(Out::End { session_id });
        }
        self.stop(format!("server {}: the handle was closed", self.name));
    }

    /// Marks the handle dead and tells the pool (through the supervisor). The server's session
    /// is not ended: a handle dies when the server cannot be used.
    pub(super) fn die(&self, why: String) {
        if self.is_alive() {
            log::warn!("{}: {why}", self.label());
            lock(&self.session).id = None;
            self.stop(why);
            (self.events)(ChildEvent::Closed {
                server: self.server,
                serial: self.serial,
            });
        }
    }

    fn stop(&self, why: String) {
        let mut death = lock(&self.death);
        if !self.alive.swap(false, Ordering::AcqRel) {
            return;
        }
        *death = Some(why);
        drop(death);
        if let Some(closer) = lock(&self.stream).take() {
            closer.shutdown();
        }
        self.idle.clear();
        lock(&self.flights).close_all();
        self.outbox.wake();
    }

    /// A request failed for a reason that is the network's, not the server's answer: an
    /// unreachable server kills the handle (the pool backs off and `/health` shows it).
    pub(super) fn failed(&self, error: &ConnError) -> CallError {
        let words = format!(
            "server {} ({}): {error}",
            self.name,
            self.target.url.redacted()
        );
        match error {
            ConnError::Io(_) => self.die(format!("{words}; the server is unreachable")),
            ConnError::Tls(_) => self.die(words),
            _ => return CallError::Closed(words),
        }
        CallError::Closed(self.death_note())
    }

    pub(super) fn message_url(&self) -> Url {
        match &lock(&self.session).mode {
            Mode::Legacy { endpoint } => endpoint.clone(),
            _ => self.target.url.clone(),
        }
    }

    /// The header fields of a request in the session: the configured ones, then the protocol's.
    pub(super) fn headers(&self, post: bool) -> Vec<(String, String)> {
        self.headers_in(post, true)
    }

    /// The same; without `in_session`, no session id or protocol version (for `initialize`).
    fn headers_in(&self, post: bool, in_session: bool) -> Vec<(String, String)> {
        let mut headers = self.target.headers.clone();
        // OAuth: a token issued for this server (refreshed first when about to expire).
        if let Some(auth) = &self.target.auth {
            if let Some(value) = auth.authorization(Instant::now() + SIDE_LIMIT) {
                headers.push(("Authorization".into(), value));
            }
        }
        let accept = if post {
            headers.push(("Content-Type".into(), "application/json".into()));
            "application/json, text/event-stream"
        } else {
            "text/event-stream"
        };
        headers.push(("Accept".into(), accept.into()));
        if !in_session {
            return headers;
        }
        let session = lock(&self.session);
        if let Some(id) = &session.id {
            headers.push(("Mcp-Session-Id".into(), id.clone()));
        }
        if let Some(version) = &session.protocol {
            headers.push(("MCP-Protocol-Version".into(), version.clone()));
        }
        headers
    }

    /// A new connection to `url`'s origin (name resolution bounded by `deadline` too).
    pub(super) fn connect(&self, url: &Url, deadline: Instant) -> Result<Conn, ConnError> {
        self.target.connect(url, deadline)
    }

    /// An idle keep-alive connection to `url`'s origin, or a new one; the bool says reused.
    fn conn(&self, url: &Url, deadline: Instant) -> Result<(Conn, bool), ConnError> {
        match self.idle.take_idle(url) {
            Some(conn) => Ok((conn, true)),
            None => self.connect(url, deadline).map(|conn| (conn, false)),
        }
    }

    pub(super) fn put_back(&self, conn: Conn) {
        if self.is_alive() {
            self.idle.keep(conn);
        }
    }

    /// Streamable HTTP: POSTs `body` to the server's URL without waiting for the answer;
    /// `in_session` is false for `initialize`, which must not carry the session's id.
    pub(super) fn start_post(
        &self,
        body: &[u8],
        in_session: bool,
        mirrored: &[(String, String)],
        deadline: Instant,
    ) -> Result<(Conn, bool), CallError> {
        let url = &self.target.url;
        let mut headers = self.headers_in(true, in_session);
        headers.extend_from_slice(mirrored);
        let (mut conn, reused) = self.conn(url, deadline).map_err(|e| self.failed(&e))?;
        match conn.start("POST", &url.path, &refs(&headers), body, deadline) {
            Ok(()) => Ok((conn, reused)),
            Err(ConnError::Closed) if reused => {
                let mut conn = self.connect(url, deadline).map_err(|e| self.failed(&e))?;
                conn.start("POST", &url.path, &refs(&headers), body, deadline)
                    .map_err(|e| self.failed(&e))?;
                Ok((conn, false))
            }
            Err(e) => Err(self.failed(&e)),
        }
    }

    /// Starts a GET on the server's URL with `Last-Event-ID`: resuming a stream the server
    /// closed before it was done.
    pub(super) fn start_resume(
        &self,
        last_event_id: &str,
        deadline: Instant,
    ) -> Result<Conn, CallError> {
        let url = &self.target.url;
        let mut headers = self.headers(false);
        headers.push(("Last-Event-ID".into(), last_event_id.into()));
        let mut conn = self.connect(url, deadline).map_err(|e| self.failed(&e))?;
        conn.start("GET", &url.path, &refs(&headers), b"", deadline)
            .map_err(|e| self.failed(&e))?;
        Ok(conn)
    }

    /// POSTs a message that needs no answer in the body (a notification, a response, or any
    /// message on the legacy transport) and reads the response to its end. A status other than
    /// 2xx is an error.
    pub(super) fn post_whole(
        &self,
        url: &Url,
        body: &[u8],
        deadline: Instant,
    ) -> Result<(), ConnError> {
        let headers = self.headers(true);
        let send = |conn: &mut Conn| conn.send("POST", &url.path, &refs(&headers), body, deadline);
        let (mut conn, reused) = self.conn(url, deadline)?;
        let head = match send(&mut conn) {
            Err(ConnError::Closed) if reused => {
                conn = self.connect(url, deadline)?;
                send(&mut conn)?
            }
            other => other?,
        };
        if !(200..300).contains(&head.status) {
            let preview = error_preview(&error_body(&mut conn, &head, deadline));
            return Err(ConnError::Protocol(format!(
                "HTTP {} from {}{preview}",
                head.status,
                url.redacted()
            )));
        }
        conn.finish_body(&head, deadline)?;
        self.put_back(conn);
        Ok(())
    }

    /// Sends a notification or response now, on the calling thread, best effort.
    pub(super) fn send_now(&self, body: &[u8], what: &str) {
        if !self.is_alive() {
            return;
        }
        let deadline = Instant::now() + SIDE_LIMIT;
        if let Err(e) = self.post_whole(&self.message_url(), body, deadline) {
            log::debug!("{}: could not send {what}: {e}", self.label());
        }
    }

    /// What the server says outside any call of ours (or on a call's stream, but not for it).
    pub(super) fn notice(&self, method: &str, params: Option<Map<String, Value>>) {
        let label = self.label();
        if let Some(event) = notification_event(self.server, self.serial, &label, method, params) {
            (self.events)(event);
        }
    }

    /// A request whose answer nobody waits for, sent by the stream thread: with Streamable HTTP
    /// its answer is read and dropped (the server's requests on the way answered alone); on the
    /// legacy transport it is only POSTed, as the answer comes on the stream this thread reads.
    pub(super) fn request_detached(&self, method: &str, params: Map<String, Value>) {
        let deadline = Instant::now() + SIDE_LIMIT;
        let legacy = match &lock(&self.session).mode {
            Mode::Legacy { endpoint } => Some(endpoint.clone()),
            _ => None,
        };
        let outcome = match legacy {
            Some(endpoint) => {
                let body = rpc::request(self.next_id(), method, Some(&params));
                self.post_whole(&endpoint, &body, deadline)
                    .map_err(|e| CallError::Closed(e.to_string()))
            }
            None => self
                .begin(
                    method,
                    Some(Params::from_map(params)),
                    false,
                    deadline,
                    None,
                )
                .and_then(|mut call| call.answer().map(drop)),
        };
        if let Err(e) = outcome {
            log::debug!("{}: {method}: {e}", self.label());
        }
    }

    /// `DELETE` of the session, as the spec asks of a client that is done with it.
    pub(super) fn end_session(&self, session_id: &str) {
        let deadline = Instant::now() + SIDE_LIMIT;
        let mut headers = self.target.headers.clone();
        headers.push(("Mcp-Session-Id".into(), session_id.into()));
        let url = &self.target.url;
        let result = self.connect(url, deadline).and_then(|mut conn| {
            let head = conn.send("DELETE", &url.path, &refs(&headers), b"", deadline)?;
            let _ = conn.finish_body(&head, deadline);
            Ok(head.status)
        });
        match result {
            Ok(status) => log::debug!("{}: session ended (HTTP {status})", self.label()),
            Err(e) => log::debug!("{}: could not end its session: {e}", self.label()),
        }
    }

    /// Parses a message from the server, logging what is not one.
    pub(super) fn parse(&self, data: &str) -> Option<Message> {
        if data.len() > self.target.max_message {
            log::warn!(
                "{}: dropping a message of {} bytes (maxMessageBytes is {})",
                self.label(),
                data.len(),
                self.target.max_message
            );
            return None;
        }
        let message = Message::parse(data.as_bytes());
        if message.is_none() && !data.trim().is_empty() {
            let preview: String = data.chars().take(ERROR_PREVIEW).collect();
            log::warn!(
                "{}: ignoring a message that is not JSON-RPC: {preview}",
                self.label()
            );
        }
        message
    }

    /// Why its server needs an OAuth login first, when it does.
    pub fn needs_login(&self) -> Option<String> {
        self.target.auth.as_ref()?.needs_login()
    }

    /// Keeps `closer` to stop the stream when the handle dies (at once if it already has).
    pub(super) fn hold(&self, closer: Closer) {
        let mut stream = lock(&self.stream);
        if self.is_alive() {
            *stream = Some(closer);
        } else {
            closer.shutdown();
        }
    }
}

impl Requester for RemoteLink {
    fn modern(&self) -> bool {
        self.modern.load(Ordering::Acquire)
    }

    /// From now on every POST says `MCP-Protocol-Version: 2026-07-28`, and no session is opened.
    fn set_modern(&self) {
        let mut session = lock(&self.session);
        session.mode = Mode::Streamable;
        session.protocol = Some(crate::downstream::era::MODERN_VERSION.to_string());
        self.modern.store(true, Ordering::Release);
    }

    fn set_param_headers(&self, headers: crate::downstream::era::ParamHeaders) {
        *lock(&self.param_headers) = headers;
    }

    fn label(&self) -> String {
        format!(
            "{}#{} ({})",
            self.name,
            self.serial,
            self.target.url.redacted()
        )
    }

    fn request(
        &self,
        method: &str,
        params: Option<Map<String, Value>>,
        deadline: Instant,
    ) -> Result<Answer, CallError> {
        if method == "initialize" {
            return self.initialize(params, deadline);
        }
        self.begin(method, params.map(Params::from_map), false, deadline, None)?
            .answer()
    }

    fn notify(&self, method: &str, params: Option<&Value>) {
        self.post(Out::Message {
            body: rpc::notification(method, params),
            what: "a notification",
        });
    }

    /// `notifications/initialized` goes out at once, on this thread (nothing may reach the
    /// server before it); then, with Streamable HTTP, the stream thread opens the GET stream.
    fn initialized(&self) {
        self.send_now(
            &rpc::notification::<Value>("notifications/initialized", None),
            "notifications/initialized",
        );
        if matches!(lock(&self.session).mode, Mode::Streamable) {
            self.post(Out::Listen);
        }
    }

    fn send_unawaited(&self, method: &str, params: Map<String, Value>) {
        self.post(Out::Request {
            method: method.to_string(),
            params,
        });
    }

    fn listen(&self, change: crate::downstream::era::Listen) {
        self.post(Out::Subscribe(change));
    }

    fn respond(&self, id: &Value, outcome: Result<&Value, &Value>) {
        self.respond_to(id, outcome);
    }
}

/// The body of an error response (up to 64 KiB, within a second), empty when there is none.
pub(super) fn error_body(
    conn: &mut Conn,
    head: &super::conn::ResponseHead,
    deadline: Instant,
) -> Vec<u8> {
    let deadline = deadline.min(Instant::now() + Duration::from_secs(1));
    conn.read_body(head, 64 * 1024, deadline)
        .unwrap_or_default()
}

/// `: first characters of the body` of an error response, for messages (empty for none).
pub(super) fn error_preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.trim().chars().take(ERROR_PREVIEW).collect();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

pub(super) fn refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}
