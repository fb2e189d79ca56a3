//! One pooled handle on a remote MCP server: an MCP session over Streamable HTTP or the legacy
//! HTTP+SSE transport, driven by blocking connections from the threads that use it.
//!
//! - Streamable HTTP: every message is a POST. The answer comes as JSON, or as an SSE stream that
//!   may carry progress, notifications and the server's own requests first; the calling thread reads
//!   it in short slices, so a cancellation or a client's answer is acted on at once. Keep-alive
//!   connections are reused. After `notifications/initialized`, one thread per handle holds the GET
//!   stream for what the server says outside calls. A 404 for the session means the server forgot
//!   it (restart, expiry): the handle initializes a new session with the same parameters (once,
//!   whichever call sees it first) and the request is sent again, once.
//! - Legacy HTTP+SSE: one thread per handle reads the GET stream, which carries every message from
//!   the server; requests are POSTed to the endpoint the stream named (resolved against the stream
//!   URL, same origin only) and answers reach their caller through its inbox.
//! - `transport: auto` POSTs `initialize` first and falls back to the legacy transport on 400, 404
//!   or 405, as the spec's backwards-compatibility section says.
//!
//! A handle dies when its server cannot be reached, the legacy stream ends, or a new session cannot
//! be had; the pool then replaces it, with backoff. Only the configured `headers` go to the server:
//! nothing of the clients' own requests (their tokens included) is passed on.

use super::conn::{no_deadline, Closer, Conn, ConnError, ResponseHead, Url};
use super::shared::{await_endpoint, IdleConns};
use super::tls::Tls;
use crate::config::{RemoteServer, RemoteTransport};
use crate::downstream::child_io::ChildEvent;
use crate::downstream::message::{notification_event, Message};
use crate::downstream::{response_to, set_progress_token, Answer, CallError, Inbound, Requester};
use crate::rpc;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Where what a remote server says outside a call goes (the same place as for children).
pub type Events = Arc<dyn Fn(ChildEvent) + Send + Sync>;

/// How long a call waits on its connection before looking at its inbox (cancellation, client
/// answers) again.
const SLICE: Duration = Duration::from_millis(50);
/// Keep-alive connections kept per handle between requests.
const IDLE_CONNS: usize = 4;
/// Bound on notifications, responses to the server, and ending a session.
const SIDE_LIMIT: Duration = Duration::from_secs(5);
/// Bound on connecting and on the head of a stream request.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// Most of an error response's body quoted in an error message.
const ERROR_PREVIEW: usize = 300;
/// Longest wait between attempts to reopen the GET stream.
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(30);
const STREAM_STACK: usize = 256 * 1024;
const LEGACY_STREAM: &str = "legacy";
const GET_STREAM: &str = "get";

/// What every handle of one remote server shares: where it is, how to trust it, what to send.
pub struct Target {
    pub url: Url,
    tls: Option<Tls>,
    headers: Vec<(String, String)>,
    transport: RemoteTransport,
    max_message: usize,
}

impl Target {
    /// Errors are sentences for `/health` (a bad `caFile`, say).
    pub fn new(remote: &RemoteServer, max_message: usize) -> Result<Target, String> {
        let url = Url::parse(&remote.url).map_err(|e| format!("url: {e}"))?;
        let tls = match (url.tls, &remote.ca_file) {
            (false, _) => None,
            (true, None) => Some(Tls::system()?),
            (true, Some(path)) => Some(Tls::new(Some(path))?),
        };
        Ok(Target {
            url,
            tls,
            headers: remote.headers.clone(),
            transport: remote.transport,
            max_message,
        })
    }
}

#[derive(Clone)]
enum Mode {
    /// Before `initialize` succeeded.
    New,
    Streamable,
    Legacy {
        endpoint: Url,
    },
}

struct Session {
    mode: Mode,
    /// `Mcp-Session-Id`, when the server issued one.
    id: Option<String>,
    /// The negotiated version, sent as `MCP-Protocol-Version` after `initialize`.
    protocol: Option<String>,
    /// The `initialize` parameters, to open a new session after the server forgot ours.
    init: Option<Map<String, Value>>,
    /// Bumped by every successful `initialize`: a call that saw a 404 under an older generation
    /// does not initialize again.
    generation: u64,
}

/// A caller waiting for its answer on the legacy transport.
struct Waiter {
    tx: Sender<Inbound>,
    /// The server's own requests go to this call (the pooled call of the handle's holder).
    takes_requests: bool,
}

/// A session with a remote MCP server, usable from several threads at once.
pub struct RemoteLink {
    pub server: usize,
    pub name: Arc<str>,
    pub serial: u64,
    target: Arc<Target>,
    events: Events,
    me: Weak<RemoteLink>,
    alive: AtomicBool,
    listening: AtomicBool,
    next_id: AtomicU64,
    session: Mutex<Session>,
    /// Keep-alive connections not in use.
    idle: IdleConns,
    /// The streams held open by this handle's threads (by kind: the legacy stream, the GET
    /// stream), shut down when it dies.
    streams: Mutex<HashMap<&'static str, Closer>>,
    /// Legacy transport: callers by request id.
    waiters: Mutex<HashMap<u64, Waiter>>,
    /// One re-initialization at a time.
    renewing: Mutex<()>,
    /// Why the handle died, for errors.
    death: Mutex<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

enum Wire {
    /// The request went out on `conn`; its response head has not come yet.
    Head {
        conn: Conn,
        reused: bool,
    },
    /// The answer comes as an SSE stream on `conn`.
    Stream {
        conn: Conn,
        head: ResponseHead,
    },
    /// Legacy transport: everything comes through the inbox.
    Inbox,
    Over,
}

/// One request in flight on a remote session.
pub struct RemoteCall<'a> {
    link: &'a RemoteLink,
    /// Our id for it downstream (also its progress token).
    pub id: u64,
    method: String,
    request: Vec<u8>,
    rx: Receiver<Inbound>,
    tx: Sender<Inbound>,
    deadline: Instant,
    wire: Wire,
    /// Sent a second time already (after a new session, or a keep-alive race).
    resent: bool,
    /// The session generation it was last sent under.
    generation: u64,
    /// `Mcp-Session-Id` of the response (for `initialize`).
    session_id: Option<String>,
    /// The HTTP status of a response that was not a success.
    status: Option<u16>,
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
            listening: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            session: Mutex::new(Session {
                mode: Mode::New,
                id: None,
                protocol: None,
                init: None,
                generation: 0,
            }),
            idle: IdleConns::new(IDLE_CONNS),
            streams: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            renewing: Mutex::new(()),
            death: Mutex::new(None),
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

    /// Sends a request. With `progress`, `params` gets `_meta.progressToken` = the request's id;
    /// `takes_requests` routes the server's own requests to this call while it runs.
    pub fn begin(
        &self,
        method: &str,
        mut params: Option<Map<String, Value>>,
        progress: bool,
        deadline: Instant,
        takes_requests: bool,
    ) -> Result<RemoteCall<'_>, CallError> {
        if !self.is_alive() {
            return Err(CallError::Closed(self.death_note()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if progress {
            set_progress_token(params.get_or_insert_with(Map::new), Value::from(id));
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut call = RemoteCall {
            link: self,
            id,
            method: method.to_string(),
            request: rpc::request(id, method, params.as_ref()),
            rx,
            tx,
            deadline,
            wire: Wire::Over,
            resent: false,
            generation: 0,
            session_id: None,
            status: None,
        };
        let (mode, generation) = {
            let session = lock(&self.session);
            (session.mode.clone(), session.generation)
        };
        call.generation = generation;
        match mode {
            Mode::Legacy { endpoint } => {
                let waiter = Waiter {
                    tx: call.tx.clone(),
                    takes_requests,
                };
                lock(&self.waiters).insert(id, waiter);
                self.post_whole(&endpoint, &call.request, deadline)
                    .map_err(|e| self.failed(&e))?;
                call.wire = Wire::Inbox;
            }
            Mode::New | Mode::Streamable => {
                let (conn, reused) = self.start_post(&call.request, deadline)?;
                call.wire = Wire::Head { conn, reused };
            }
        }
        Ok(call)
    }

    /// Answers one of the server's own requests.
    pub fn respond_to(&self, id: &Value, outcome: Result<&Value, &Value>) {
        self.send_side(&response_to(id, outcome), "a response");
    }

    /// Stops the handle: streams closed, callers told, the session ended on the server (best
    /// effort, on a short-lived thread).
    pub fn retire(&self) {
        let session_id = lock(&self.session).id.clone();
        self.stop(format!("server {}: the handle was closed", self.name));
        let (Some(session_id), Some(link)) = (session_id, self.me.upgrade()) else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name(format!("end-{}", self.name))
            .stack_size(STREAM_STACK)
            .spawn(move || link.end_session(&session_id));
        if let Err(e) = spawned {
            log::debug!("cannot start a thread to end a session: {e}");
        }
    }

    /// `DELETE` of the session, as the spec asks of a client that is done with it.
    fn end_session(&self, session_id: &str) {
        let deadline = Instant::now() + SIDE_LIMIT;
        let mut headers = self.target.headers.clone();
        headers.push(("Mcp-Session-Id".into(), session_id.into()));
        let url = &self.target.url;
        let result = Conn::connect(url, self.target.tls.as_ref(), deadline).and_then(|mut conn| {
            let head = conn.send("DELETE", &url.path, &refs(&headers), b"", deadline)?;
            let _ = conn.finish_body(&head, deadline);
            Ok(head.status)
        });
        match result {
            Ok(status) => log::debug!("{}: session ended (HTTP {status})", self.label()),
            Err(e) => log::debug!("{}: could not end its session: {e}", self.label()),
        }
    }

    /// Marks the handle dead and tells the pool (through the supervisor).
    fn die(&self, why: String) {
        if self.is_alive() {
            log::warn!("{}: {why}", self.label());
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
        for (_, closer) in lock(&self.streams).drain() {
            closer.shutdown();
        }
        self.idle.clear();
        for (_, waiter) in lock(&self.waiters).drain() {
            let _ = waiter.tx.send(Inbound::Closed);
        }
    }

    /// A request failed for a reason that is the network's, not the server's answer: an
    /// unreachable server kills the handle (the pool backs off and `/health` shows it).
    fn failed(&self, error: &ConnError) -> CallError {
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

    fn message_url(&self) -> Url {
        match &lock(&self.session).mode {
            Mode::Legacy { endpoint } => endpoint.clone(),
            _ => self.target.url.clone(),
        }
    }

    /// The header fields of a request: the configured ones, then the protocol's.
    fn headers(&self, post: bool) -> Vec<(String, String)> {
        let mut headers = self.target.headers.clone();
        let accept = if post {
            headers.push(("Content-Type".into(), "application/json".into()));
            "application/json, text/event-stream"
        } else {
            "text/event-stream"
        };
        headers.push(("Accept".into(), accept.into()));
        let session = lock(&self.session);
        if let Some(id) = &session.id {
            headers.push(("Mcp-Session-Id".into(), id.clone()));
        }
        if let Some(version) = &session.protocol {
            headers.push(("MCP-Protocol-Version".into(), version.clone()));
        }
        headers
    }

    /// A pooled keep-alive connection, else a new one. The bool says it was reused.
    fn conn(&self, url: &Url, deadline: Instant) -> Result<(Conn, bool), ConnError> {
        self.idle.take(url, self.target.tls.as_ref(), deadline)
    }

    fn put_back(&self, conn: Conn) {
        if self.is_alive() {
            self.idle.keep(conn);
        }
    }

    /// Streamable HTTP: POSTs `body` to the server's URL without waiting for the answer.
    fn start_post(&self, body: &[u8], deadline: Instant) -> Result<(Conn, bool), CallError> {
        let url = &self.target.url;
        let headers = self.headers(true);
        let (mut conn, reused) = self.conn(url, deadline).map_err(|e| self.failed(&e))?;
        match conn.start("POST", &url.path, &refs(&headers), body, deadline) {
            Ok(()) => Ok((conn, reused)),
            Err(ConnError::Closed) if reused => {
                let mut conn = Conn::connect(url, self.target.tls.as_ref(), deadline)
                    .map_err(|e| self.failed(&e))?;
                conn.start("POST", &url.path, &refs(&headers), body, deadline)
                    .map_err(|e| self.failed(&e))?;
                Ok((conn, false))
            }
            Err(e) => Err(self.failed(&e)),
        }
    }

    /// POSTs a message that needs no answer in the body (a notification, a response, or any
    /// message on the legacy transport) and reads the response to its end. A status other than
    /// 2xx is an error.
    fn post_whole(&self, url: &Url, body: &[u8], deadline: Instant) -> Result<(), ConnError> {
        let headers = self.headers(true);
        let send = |conn: &mut Conn| conn.send("POST", &url.path, &refs(&headers), body, deadline);
        let (mut conn, reused) = self.conn(url, deadline)?;
        let head = match send(&mut conn) {
            Err(ConnError::Closed) if reused => {
                conn = Conn::connect(url, self.target.tls.as_ref(), deadline)?;
                send(&mut conn)?
            }
            other => other?,
        };
        if !(200..300).contains(&head.status) {
            let preview = error_preview(&mut conn, &head, deadline);
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

    /// A notification or response to the server, best effort.
    fn send_side(&self, body: &[u8], what: &str) {
        if !self.is_alive() {
            return;
        }
        let deadline = Instant::now() + SIDE_LIMIT;
        if let Err(e) = self.post_whole(&self.message_url(), body, deadline) {
            log::debug!("{}: could not send {what}: {e}", self.label());
        }
    }

    /// What the server says outside any call of ours (or on a call's stream, but not for it).
    fn notice(&self, method: &str, params: Option<Map<String, Value>>) {
        let label = self.label();
        if let Some(event) = notification_event(self.server, self.serial, &label, method, params) {
            (self.events)(event);
        }
    }

    /// `initialize`: negotiates the transport (see the module docs) and records the session.
    fn initialize(
        &self,
        params: Option<Map<String, Value>>,
        deadline: Instant,
    ) -> Result<Answer, CallError> {
        let params = params.unwrap_or_default();
        lock(&self.session).init = Some(params.clone());
        if self.target.transport != RemoteTransport::Sse {
            let mut call =
                self.begin("initialize", Some(params.clone()), false, deadline, false)?;
            match call.answer() {
                Ok(answer) => {
                    self.adopt(Mode::Streamable, call.session_id.take(), &answer);
                    return Ok(answer);
                }
                Err(e) => {
                    let legacy = matches!(call.status, Some(400 | 404 | 405));
                    if self.target.transport == RemoteTransport::Streamable || !legacy {
                        return Err(e);
                    }
                    log::info!(
                        "{}: no Streamable HTTP here ({e}); trying the legacy SSE transport",
                        self.label()
                    );
                }
            }
        }
        let endpoint = self.open_legacy(deadline)?;
        lock(&self.session).mode = Mode::Legacy {
            endpoint: endpoint.clone(),
        };
        let answer = self
            .begin("initialize", Some(params), false, deadline, false)?
            .answer()?;
        self.adopt(Mode::Legacy { endpoint }, None, &answer);
        Ok(answer)
    }

    /// Records a successful `initialize`.
    fn adopt(&self, mode: Mode, id: Option<String>, answer: &Answer) {
        let Ok(result) = answer else {
            return;
        };
        let version = serde_json::from_str::<Value>(result.get())
            .ok()
            .and_then(|v| v.get("protocolVersion")?.as_str().map(str::to_string));
        let mut session = lock(&self.session);
        session.mode = mode;
        session.id = id;
        session.protocol = version;
        session.generation += 1;
    }

    /// The server forgot session `generation` (404): opens a new one with the same `initialize`
    /// parameters, unless another call already did. A failure kills the handle.
    fn renew(&self, generation: u64, deadline: Instant) -> Result<(), CallError> {
        let _one_at_a_time = lock(&self.renewing);
        let init = {
            let mut session = lock(&self.session);
            if session.generation != generation {
                return Ok(());
            }
            session.id = None;
            session.init.clone()
        };
        log::info!(
            "{}: the server no longer knows our session (HTTP 404); starting a new one",
            self.label()
        );
        let outcome = self
            .begin("initialize", init, false, deadline, false)
            .and_then(|mut call| {
                let answer = call.answer()?;
                Ok((answer, call.session_id.take()))
            });
        match outcome {
            Ok((answer @ Ok(_), id)) => {
                self.adopt(Mode::Streamable, id, &answer);
                self.initialized();
                (self.events)(ChildEvent::Renewed {
                    server: self.server,
                    serial: self.serial,
                });
                Ok(())
            }
            Ok((Err(error), _)) => {
                self.die(format!(
                    "server {}: initializing a new session failed: {}",
                    self.name,
                    error.get()
                ));
                Err(CallError::Closed(self.death_note()))
            }
            Err(e) => {
                self.die(format!(
                    "server {}: initializing a new session failed: {e:?}",
                    self.name
                ));
                Err(CallError::Closed(self.death_note()))
            }
        }
    }

    /// Legacy transport: opens the GET stream, waits for its `endpoint` event, and leaves a
    /// thread reading the stream. Returns the endpoint.
    fn open_legacy(&self, deadline: Instant) -> Result<Url, CallError> {
        let url = &self.target.url;
        let fail = |words: String| {
            CallError::Closed(format!(
                "server {} ({}): {words}",
                self.name,
                url.redacted()
            ))
        };
        let mut conn = Conn::connect(url, self.target.tls.as_ref(), deadline)
            .map_err(|e| fail(e.to_string()))?;
        let headers = self.headers(false);
        let head = conn
            .send("GET", &url.path, &refs(&headers), b"", deadline)
            .map_err(|e| fail(e.to_string()))?;
        if head.status != 200 || !head.content_type_is("text/event-stream") {
            let preview = error_preview(&mut conn, &head, deadline);
            return Err(fail(format!(
                "neither Streamable HTTP nor the legacy SSE transport answers here \
                 (GET: HTTP {}{preview})",
                head.status
            )));
        }
        let endpoint =
            await_endpoint(&mut conn, &head, url, deadline).map_err(|e| fail(e.to_string()))?;
        self.hold(LEGACY_STREAM, conn.closer());
        let Some(link) = self.me.upgrade() else {
            return Err(fail("the handle is gone".into()));
        };
        std::thread::Builder::new()
            .name(format!("sse-{}", self.name))
            .stack_size(STREAM_STACK)
            .spawn(move || link.read_legacy(conn, head))
            .map_err(|e| fail(format!("cannot start its stream reader: {e}")))?;
        Ok(endpoint)
    }

    /// Legacy transport: every message from the server, until the stream ends.
    fn read_legacy(&self, mut conn: Conn, head: ResponseHead) {
        let why = loop {
            match conn.next_event(&head, no_deadline()) {
                Ok(Some(event)) if event.event == "message" => self.dispatch_legacy(&event.data),
                Ok(Some(event)) => log::debug!("{}: {} event ignored", self.label(), event.event),
                Ok(None) => break "the server ended its event stream".to_string(),
                Err(e) => break format!("its event stream failed: {e}"),
            }
        };
        self.die(format!("server {}: {why}", self.name));
    }

    fn dispatch_legacy(&self, data: &str) {
        let Some(message) = self.parse(data) else {
            return;
        };
        match message {
            Message::Response { id, outcome } => {
                let waiters = lock(&self.waiters);
                match id.as_u64().and_then(|id| waiters.get(&id)) {
                    Some(waiter) => {
                        let _ = waiter.tx.send(Inbound::Response(outcome));
                    }
                    None => log::debug!("{}: dropping a late answer to {id}", self.label()),
                }
            }
            Message::Notification { method, params } if method == "notifications/progress" => {
                let params = params.unwrap_or_default();
                let token = params.get("progressToken").and_then(Value::as_u64);
                if let Some(waiter) =
                    token.and_then(|t| lock(&self.waiters).get(&t).map(|w| w.tx.clone()))
                {
                    let _ = waiter.send(Inbound::Progress(params));
                }
            }
            Message::Notification { method, params } => self.notice(&method, params),
            Message::Request { id, method, params } => {
                let taker = lock(&self.waiters)
                    .values()
                    .find(|w| w.takes_requests)
                    .map(|w| w.tx.clone());
                match taker {
                    Some(tx) => {
                        let _ = tx.send(Inbound::ChildRequest { id, method, params });
                    }
                    None => self.answer_alone(&id, &method),
                }
            }
        }
    }

    /// Parses a message from the server, logging what is not one.
    fn parse(&self, data: &str) -> Option<Message> {
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

    /// Streamable HTTP: after `notifications/initialized`, a thread holds the GET stream open for
    /// what the server says outside calls (reopened while the handle lives; 405 means the server
    /// has no such stream).
    fn listen(&self) {
        let streamable = matches!(lock(&self.session).mode, Mode::Streamable);
        if !streamable || self.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(link) = self.me.upgrade() else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name(format!("get-{}", self.name))
            .stack_size(STREAM_STACK)
            .spawn(move || link.hold_stream());
        if let Err(e) = spawned {
            log::warn!("{}: cannot start its stream thread: {e}", self.label());
        }
    }

    fn hold_stream(&self) {
        let url = &self.target.url;
        let mut backoff = Duration::from_millis(500);
        while self.is_alive() {
            let deadline = Instant::now() + CONNECT_LIMIT;
            let headers = self.headers(false);
            let opened =
                Conn::connect(url, self.target.tls.as_ref(), deadline).and_then(|mut c| {
                    self.hold(GET_STREAM, c.closer());
                    let head = c.send("GET", &url.path, &refs(&headers), b"", deadline)?;
                    Ok((c, head))
                });
            match opened {
                Ok((_, head)) if head.status == 405 => {
                    log::debug!("{}: no server-initiated stream (405)", self.label());
                    return;
                }
                Ok((mut conn, head))
                    if head.status == 200 && head.content_type_is("text/event-stream") =>
                {
                    backoff = Duration::from_millis(500);
                    while let Ok(Some(event)) = conn.next_event(&head, no_deadline()) {
                        if event.event != "message" {
                            continue;
                        }
                        match self.parse(&event.data) {
                            Some(Message::Notification { method, params }) => {
                                self.notice(&method, params)
                            }
                            Some(Message::Request { id, method, .. }) => {
                                self.answer_alone(&id, &method)
                            }
                            Some(Message::Response { .. }) | None => {}
                        }
                    }
                }
                Ok((_, head)) => log::debug!(
                    "{}: its GET stream answered HTTP {}",
                    self.label(),
                    head.status
                ),
                Err(e) => log::debug!("{}: its GET stream: {e}", self.label()),
            }
            lock(&self.streams).remove(GET_STREAM);
            self.pause(backoff);
            backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
        }
    }

    /// Keeps `closer` to stop a stream when the handle dies (at once if it already has).
    fn hold(&self, kind: &'static str, closer: Closer) {
        let mut streams = lock(&self.streams);
        if self.is_alive() {
            streams.insert(kind, closer);
        } else {
            closer.shutdown();
        }
    }

    /// Sleeps up to `time`, waking early when the handle dies.
    fn pause(&self, time: Duration) {
        let until = Instant::now() + time;
        while self.is_alive() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100).min(time));
        }
    }
}

impl Requester for RemoteLink {
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
        self.begin(method, params, false, deadline, false)?.answer()
    }

    fn notify(&self, method: &str, params: Option<&Value>) {
        self.send_side(&rpc::notification(method, params), method);
    }

    /// Then, with Streamable HTTP, the GET stream opens for what the server says outside calls.
    fn initialized(&self) {
        self.notify("notifications/initialized", None);
        self.listen();
    }

    fn send_unawaited(&self, method: &str, params: Map<String, Value>) {
        let Some(link) = self.me.upgrade() else {
            return;
        };
        let method = method.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("send-{}", self.name))
            .stack_size(STREAM_STACK)
            .spawn(move || {
                let deadline = Instant::now() + SIDE_LIMIT;
                if let Err(e) = link.request(&method, Some(params), deadline) {
                    log::debug!("{}: {method}: {e:?}", link.label());
                }
            });
        if let Err(e) = spawned {
            log::debug!("cannot start a thread to send a request: {e}");
        }
    }

    fn respond(&self, id: &Value, outcome: Result<&Value, &Value>) {
        self.respond_to(id, outcome);
    }
}

impl RemoteCall<'_> {
    /// Where others (the reactor) put messages for this call.
    pub fn sender(&self) -> Sender<Inbound> {
        self.tx.clone()
    }

    /// The next step; `Err(Timeout)` after the deadline (the server is told to stop).
    pub fn step(&mut self) -> Result<Inbound, CallError> {
        loop {
            while let Ok(message) = self.rx.try_recv() {
                if let Some(step) = self.inbound(message)? {
                    return Ok(step);
                }
            }
            let now = Instant::now();
            if now >= self.deadline {
                self.cancel("timed out");
                return Err(CallError::Timeout);
            }
            let slice = (now + SLICE).min(self.deadline);
            match std::mem::replace(&mut self.wire, Wire::Over) {
                Wire::Inbox => {
                    self.wire = Wire::Inbox;
                    match self.rx.recv_deadline(self.deadline) {
                        Ok(message) => {
                            if let Some(step) = self.inbound(message)? {
                                return Ok(step);
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => {
                            return Err(CallError::Closed(self.link.death_note()))
                        }
                    }
                }
                Wire::Head { mut conn, reused } => match conn.response_head(slice) {
                    Ok(head) => {
                        if let Some(step) = self.on_head(conn, head)? {
                            return Ok(step);
                        }
                    }
                    Err(ConnError::Timeout) => self.wire = Wire::Head { conn, reused },
                    // The server closed an idle keep-alive connection as we used it.
                    Err(ConnError::Closed) if reused && !self.resent => self.resend()?,
                    Err(e) => return Err(self.link.failed(&e)),
                },
                Wire::Stream { mut conn, head } => match conn.next_event(&head, slice) {
                    Ok(Some(event)) => match self.on_event(&event.event, &event.data)? {
                        Some(step @ Inbound::Response(_)) => {
                            if conn.finish_body(&head, now + SLICE).is_ok() {
                                self.link.put_back(conn);
                            }
                            return Ok(step);
                        }
                        other => {
                            self.wire = Wire::Stream { conn, head };
                            if let Some(step) = other {
                                return Ok(step);
                            }
                        }
                    },
                    Ok(None) => {
                        return Err(CallError::Closed(format!(
                            "server {}: its event stream ended without an answer to {}",
                            self.link.name, self.method
                        )))
                    }
                    Err(ConnError::Timeout) => self.wire = Wire::Stream { conn, head },
                    Err(e) => return Err(self.link.failed(&e)),
                },
                Wire::Over => {
                    return Err(CallError::Closed(format!(
                        "server {}: the call is over",
                        self.link.name
                    )))
                }
            }
        }
    }

    /// Waits for the answer, answering the server's own requests without a client: for the
    /// gateway's own requests.
    pub fn answer(&mut self) -> Result<Answer, CallError> {
        loop {
            match self.step()? {
                Inbound::Response(answer) => return Ok(answer),
                Inbound::ChildRequest { id, method, .. } => self.link.answer_alone(&id, &method),
                _ => {}
            }
        }
    }

    /// Tells the server to stop working on this request; its answer, if any, is dropped.
    pub fn cancel(&mut self, reason: &str) {
        self.wire = Wire::Over;
        let params = json!({ "requestId": self.id, "reason": reason });
        self.link.notify("notifications/cancelled", Some(&params));
    }

    /// A message from the call's inbox: `Closed` and `TooLarge` end the call.
    fn inbound(&self, message: Inbound) -> Result<Option<Inbound>, CallError> {
        match message {
            Inbound::Closed => Err(CallError::Closed(self.link.death_note())),
            Inbound::TooLarge { limit } => Err(CallError::TooLarge(limit)),
            other => Ok(Some(other)),
        }
    }

    /// The response head came: JSON (the answer), a stream (read on), or an error status.
    fn on_head(
        &mut self,
        mut conn: Conn,
        head: ResponseHead,
    ) -> Result<Option<Inbound>, CallError> {
        let link = self.link;
        if let Some(id) = head.header("mcp-session-id") {
            self.session_id = Some(id.to_string());
        }
        let has_session = lock(&link.session).id.is_some();
        match head.status {
            200..=299 if head.content_type_is("text/event-stream") => {
                self.wire = Wire::Stream { conn, head };
                Ok(None)
            }
            200..=299 if head.content_type_is("application/json") => {
                let body = conn
                    .read_body(&head, link.target.max_message, self.deadline)
                    .map_err(|e| match e {
                        ConnError::TooLarge(limit) => CallError::TooLarge(limit),
                        e => link.failed(&e),
                    })?;
                link.put_back(conn);
                match Message::parse(&body) {
                    Some(Message::Response { id, outcome }) if id.as_u64() == Some(self.id) => {
                        Ok(Some(Inbound::Response(outcome)))
                    }
                    _ => Err(CallError::Closed(format!(
                        "server {}: its answer to {} is not a JSON-RPC response to it",
                        link.name, self.method
                    ))),
                }
            }
            404 if has_session && !self.resent => {
                let _ = conn.finish_body(&head, self.deadline);
                link.renew(self.generation, self.deadline)?;
                self.resend()?;
                Ok(None)
            }
            status => {
                self.status = Some(status);
                let preview = error_preview(&mut conn, &head, self.deadline);
                let what = match status {
                    200..=299 => format!(
                        "HTTP {status} without an answer (content type {:?})",
                        head.header("content-type").unwrap_or("none")
                    ),
                    401 | 403 => format!(
                        "HTTP {status}: the server refused the gateway's credentials \
                         (see the server's `headers` in the config){preview}"
                    ),
                    _ => format!("HTTP {status}{preview}"),
                };
                Err(CallError::Closed(format!(
                    "server {} answered {} with {what}",
                    link.name, self.method
                )))
            }
        }
    }

    /// A message on the call's stream: the answer, progress, a request for the client, or
    /// something for everyone.
    fn on_event(&self, kind: &str, data: &str) -> Result<Option<Inbound>, CallError> {
        if kind != "message" {
            return Ok(None);
        }
        if data.len() > self.link.target.max_message {
            return Err(CallError::TooLarge(self.link.target.max_message));
        }
        let Some(message) = self.link.parse(data) else {
            return Ok(None);
        };
        Ok(match message {
            Message::Response { id, outcome } if id.as_u64() == Some(self.id) => {
                Some(Inbound::Response(outcome))
            }
            Message::Response { id, .. } => {
                log::debug!(
                    "{}: an answer to {id} on another's stream",
                    self.link.label()
                );
                None
            }
            Message::Notification { method, params } if method == "notifications/progress" => {
                let params = params.unwrap_or_default();
                let ours = params.get("progressToken").and_then(Value::as_u64) == Some(self.id);
                ours.then_some(Inbound::Progress(params))
            }
            Message::Notification { method, params } => {
                self.link.notice(&method, params);
                None
            }
            Message::Request { id, method, params } => {
                Some(Inbound::ChildRequest { id, method, params })
            }
        })
    }

    /// Sends the request again, on the current session and a fresh connection.
    fn resend(&mut self) -> Result<(), CallError> {
        self.resent = true;
        self.generation = lock(&self.link.session).generation;
        let (conn, reused) = self.link.start_post(&self.request, self.deadline)?;
        self.wire = Wire::Head { conn, reused };
        Ok(())
    }
}

impl Drop for RemoteCall<'_> {
    fn drop(&mut self) {
        lock(&self.link.waiters).remove(&self.id);
    }
}

/// `: first bytes of the body` of an error response, for messages (empty when there is none).
fn error_preview(conn: &mut Conn, head: &ResponseHead, deadline: Instant) -> String {
    let deadline = deadline.min(Instant::now() + Duration::from_secs(1));
    match conn.read_body(head, 64 * 1024, deadline) {
        Ok(body) if !body.is_empty() => {
            let text = String::from_utf8_lossy(&body);
            let text: String = text.trim().chars().take(ERROR_PREVIEW).collect();
            format!(": {text}")
        }
        _ => String::new(),
    }
}

fn refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}
