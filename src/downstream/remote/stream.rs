//! The one long-lived thread of a remote handle (`rstream-…`): it holds the server→client stream and
//! sends, from a queue, everything the handle says that nobody waits for.
//!
//! - The stream: with Streamable HTTP the standalone GET stream (opened after
//!   `notifications/initialized`, reopened when the server ends it — with `Last-Event-ID` when it
//!   had event ids, after its `retry` time — and given up on 405); for a 2026-07-28 server, which
//!   has no GET stream, the `subscriptions/listen` POST for what the handle's `Subscription` asks
//!   (a change opens a new one, then drops the old: closing a listen stream ends it); with the
//!   legacy transport the stream opened during `initialize`, which carries every message from
//!   the server.
//! - The queue ([`Out`]): notifications, responses to the server's requests, detached requests
//!   (`logging/setLevel`, subscriptions), changes of the listen, and the final `DELETE` of a
//!   retired handle, in order. The thread waits on a `mio::Poll` with the stream's socket and a
//!   `Waker` rung by every send, so it sleeps until either has something; each item is bounded by
//!   `SIDE_LIMIT`.
//! - What the stream brings: answers and progress go to their call's inbox (by id or progress
//!   token); the server's requests go to the call of the only client with calls in flight, else
//!   `ping`/`roots/list` are answered here and the rest refused with a JSON-RPC error (see
//!   `flights`); other notifications go to `events`.
//! - A server without such a stream (GET answered 405, a 2026-07-28 server with nothing to
//!   listen for or that refuses `subscriptions/listen`) is probed every `PROBE_EVERY` instead
//!   (`ping`, or `server/discover` for 2026-07-28, which has no ping), so its death is noticed
//!   without a call.
//! - The handle dies when the server cannot be reached to reopen the stream (or to be probed),
//!   when the legacy stream ends, when the GET stream says the session is lost and a new one cannot
//!   be had, or when this thread panics (caught and logged; the pool replaces the handle).
//!
//! The thread starts with the first message queued and ends when the handle is dead and the queue
//! holds nothing more to do (a retired handle's `End` is queued before it is marked dead).

use super::conn::{Conn, ConnError, ResponseHead};
use super::flights::Taker;
use super::link::{error_body, refs, Out, Owner, RemoteLink, SIDE_LIMIT};
use super::lock;
use super::session::lost_session;
use crate::downstream::era;
use crate::downstream::message::Message;
use crate::downstream::Inbound;
use crate::downstream::Requester;
use crate::rpc;
use crossbeam_channel::Receiver;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bound on connecting and on the head of the GET stream.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// Longest wait between attempts to reopen the GET stream.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// How often a server without a GET stream is pinged.
const PROBE_EVERY: Duration = Duration::from_secs(15);
/// Failures in a row to reopen the GET stream or to ping (closed connections, timeouts, HTTP
/// 502–504) after which the server counts as unreachable.
const MAX_GET_FAILURES: u32 = 3;
/// A socket read that finds nothing within this long means the stream is drained for now.
const DRAIN_WAIT: Duration = Duration::from_millis(1);
const STREAM_STACK: usize = 256 * 1024;
/// Events read from the stream before the queue gets a turn.
const DRAIN_BUDGET: usize = 64;
const WAKE: Token = Token(0);
const STREAM: Token = Token(1);

impl RemoteLink {
    /// Queues `out` for the stream thread, starting the thread if the handle has none yet.
    pub(super) fn post(&self, out: Out) {
        let mut owner = lock(&self.outbox.owner);
        if owner.is_none() {
            match self.start_stream_thread() {
                Ok(started) => *owner = Some(started),
                Err(e) => {
                    drop(owner);
                    self.die(format!(
                        "server {}: cannot start its stream thread: {e}",
                        self.name
                    ));
                    return;
                }
            }
        }
        if let Some(owner) = owner.as_ref() {
            if owner.tx.send(out).is_ok() {
                let _ = owner.waker.wake();
            } else {
                log::debug!("{}: its stream thread is gone", self.label());
            }
        }
    }

    fn start_stream_thread(&self) -> std::io::Result<Owner> {
        let link = self
            .me
            .upgrade()
            .ok_or_else(|| std::io::Error::other("the handle is gone"))?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name(format!("rstream-{}", self.name))
            .stack_size(STREAM_STACK)
            .spawn(move || run(link, poll, rx))?;
        Ok(Owner { tx, waker })
    }
}

/// The thread's body: a panic is caught, logged, and kills the handle (never a silent death).
fn run(link: Arc<RemoteLink>, poll: Poll, rx: Receiver<Out>) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        Streamer {
            link: &link,
            poll,
            rx,
            held: None,
            listen: false,
            reopen_at: None,
            backoff: Duration::ZERO,
            renewed: false,
            last_event_id: None,
            failures: 0,
            more: false,
            probe_at: None,
            subscription: None,
            relisten: false,
        }
        .run()
    }));
    if let Err(panic) = outcome {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        log::error!("{}: its stream thread panicked: {what}", link.label());
        link.die(format!(
            "server {}: internal error in the gateway (its stream thread panicked; see the log)",
            link.name
        ));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    /// A 2026-07-28 `subscriptions/listen` response stream.
    Listen,
    Legacy,
}

struct Held {
    conn: Conn,
    head: ResponseHead,
    kind: Kind,
    /// The session generation it was opened under.
    generation: u64,
}

struct Streamer<'a> {
    link: &'a RemoteLink,
    poll: Poll,
    rx: Receiver<Out>,
    held: Option<Held>,
    /// Streamable HTTP: the GET stream (2026-07-28: the listen stream) is wanted.
    listen: bool,
    /// When to try opening it again.
    reopen_at: Option<Instant>,
    backoff: Duration,
    /// The last GET attempt renewed the session (a second loss in a row kills the handle).
    renewed: bool,
    /// From the last GET stream, to resume it.
    last_event_id: Option<String>,
    /// Attempts in a row to open the GET stream that failed for want of a server.
    failures: u32,
    /// The last drain stopped at its budget: the stream may have more (no new edge will tell).
    more: bool,
    /// A server without a GET stream: when to ping it next.
    probe_at: Option<Instant>,
    /// 2026-07-28: what the listen asks for (None: not that era).
    subscription: Option<era::Subscription>,
    /// The subscription changed while a listen stream is held: open a new one, then drop it.
    relisten: bool,
}

/// Whether the thread goes on.
enum Flow {
    Go,
    Stop,
}

impl Streamer<'_> {
    fn run(&mut self) {
        let mut events = Events::with_capacity(8);
        loop {
            while let Ok(out) = self.rx.try_recv() {
                if let Flow::Stop = self.carry(out) {
                    return;
                }
            }
            if !self.link.is_alive() {
                self.release();
                // A retired handle's `End` is queued before it is marked dead: look once more.
                while let Ok(out) = self.rx.try_recv() {
                    if let Flow::Stop = self.carry(out) {
                        return;
                    }
                }
                return;
            }
            let now = Instant::now();
            let due = self.held.is_none() || self.relisten;
            if self.listen && due && self.reopen_at.is_none_or(|at| at <= now) {
                self.open_stream();
                continue;
            }
            if self.probe_at.is_some_and(|at| at <= now) {
                self.probe();
                continue;
            }
            let wake_at = match (self.held.is_none() || self.relisten, self.listen) {
                (true, true) if self.reopen_at.is_some() => self.reopen_at,
                _ => self.probe_at,
            };
            let timeout = match wake_at {
                _ if self.more => Some(Duration::ZERO),
                Some(at) => Some(at.saturating_duration_since(now)),
                None => None,
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                self.link.die(format!(
                    "server {}: its stream thread cannot poll: {e}",
                    self.link.name
                ));
                return;
            }
            if self.more || events.iter().any(|e| e.token() == STREAM) {
                self.more = self.drain_stream();
            }
        }
    }

    /// Does what was queued.
    fn carry(&mut self, out: Out) -> Flow {
        let link = self.link;
        match out {
            Out::Message { body, what } => link.send_now(&body, what),
            Out::Request { method, params } if link.is_alive() => {
                link.request_detached(&method, params)
            }
            Out::Request { .. } => {}
            Out::Listen => {
                self.listen = true;
                self.reopen_at = None;
                // After a renewal, a GET stream of the old session carries nothing more for us.
                let current = link.generation().0;
                let stale = self
                    .held
                    .as_ref()
                    .is_some_and(|h| h.kind == Kind::Get && h.generation != current);
                if stale {
                    self.release();
                    self.last_event_id = None;
                }
            }
            Out::Subscribe(change) => self.subscribe(change),
            Out::Legacy(stream) => {
                let (conn, head) = *stream;
                self.release();
                self.adopt(conn, head, Kind::Legacy);
            }
            Out::End { session_id } => {
                self.release();
                link.end_session(&session_id);
                return Flow::Stop;
            }
        }
        Flow::Go
    }

    /// Starts reading `conn` as the handle's stream.
    fn adopt(&mut self, conn: Conn, head: ResponseHead, kind: Kind) {
        let fd = conn.as_raw_fd();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), STREAM, Interest::READABLE)
        {
            self.link.die(format!(
                "server {}: cannot watch its event stream: {e}",
                self.link.name
            ));
            return;
        }
        self.link.hold(conn.closer());
        let generation = self.link.generation().0;
        self.held = Some(Held {
            conn,
            head,
            kind,
            generation,
        });
        // Edge-triggered: what is already buffered raises no event.
        self.more = self.drain_stream();
    }

    /// Stops reading the stream (if any).
    fn release(&mut self) {
        self.more = false;
        if let Some(held) = self.held.take() {
            let fd = held.conn.as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
            if held.kind == Kind::Get {
                self.last_event_id = held.conn.last_event_id().map(str::to_string);
            }
            lock(&self.link.stream).take();
        }
    }

    /// Reads the events the stream has now, up to `DRAIN_BUDGET` (true: there may be more, so the
    /// queue gets its turn); handles the stream's end.
    fn drain_stream(&mut self) -> bool {
        let mut budget = DRAIN_BUDGET;
        let ended = loop {
            let Some(held) = self.held.as_mut() else {
                return false;
            };
            if budget == 0 {
                return true;
            }
            budget -= 1;
            match held
                .conn
                .next_event(&held.head, Instant::now() + DRAIN_WAIT)
            {
                Ok(Some(event)) => {
                    if event.event == "message" && !event.data.is_empty() {
                        self.backoff = Duration::ZERO;
                        self.dispatch(&event.data);
                    }
                }
                Err(ConnError::Timeout) => return false,
                Ok(None) => break "the server ended its event stream".to_string(),
                Err(e) => break format!("its event stream failed: {e}"),
            }
        };
        let Some(held) = self.held.as_ref() else {
            return false;
        };
        let kind = held.kind;
        let retry = held.conn.reconnection_time().map(Duration::from_millis);
        self.release();
        match kind {
            Kind::Legacy => self.link.die(format!("server {}: {ended}", self.link.name)),
            Kind::Get | Kind::Listen => {
                let what = if kind == Kind::Get {
                    "GET stream"
                } else {
                    "subscriptions/listen"
                };
                log::debug!("{}: {what}: {ended}; reopening", self.link.label());
                let wait = retry.unwrap_or(self.backoff).min(BACKOFF_MAX);
                self.reopen_at = Some(Instant::now() + wait);
                self.backoff = (self.backoff * 2).clamp(BACKOFF_FIRST, BACKOFF_MAX);
            }
        }
        false
    }

    /// 2026-07-28: what the listen asks for changed. Nothing left to ask for: the stream goes and
    /// the server is probed instead.
    fn subscribe(&mut self, change: era::Listen) {
        let subscription = self.subscription.get_or_insert_with(Default::default);
        if !subscription.apply(change) {
            return;
        }
        if subscription.params().is_some() {
            self.listen = true;
            self.relisten = self.held.is_some();
            self.reopen_at = None;
            self.probe_at = None;
        } else {
            self.without_stream("nothing to listen for");
        }
    }

    /// No server→client stream to hold: the server is probed every `PROBE_EVERY` instead.
    fn without_stream(&mut self, why: &str) {
        let probe = if self.link.modern() {
            "server/discover"
        } else {
            "ping"
        };
        log::debug!(
            "{}: {why}; probing it with {probe} every {} s instead",
            self.link.label(),
            PROBE_EVERY.as_secs()
        );
        self.listen = false;
        self.relisten = false;
        self.release();
        self.probe_at = Some(Instant::now() + PROBE_EVERY);
    }

    fn open_stream(&mut self) {
        match self
            .subscription
            .as_ref()
            .and_then(era::Subscription::params)
        {
            Some(params) => self.open_listen(params),
            None => self.open_get(),
        }
    }

    /// 2026-07-28: POSTs `subscriptions/listen` and holds its response stream. A server that
    /// answers it with an error (or at once, without a stream) is probed instead.
    fn open_listen(&mut self, params: serde_json::Map<String, Value>) {
        let link = self.link;
        let deadline = Instant::now() + CONNECT_LIMIT;
        let mut headers = link.headers(true);
        headers.extend(era::mirrored_headers("subscriptions/listen", None, false));
        let body = rpc::request(link.next_id(), "subscriptions/listen", Some(&params));
        // While the old stream holds, its closer stays the one the handle's death shuts.
        let replacing = self.held.is_some();
        let Some((mut conn, head)) = self.request_stream(
            "POST",
            &headers,
            &body,
            !replacing,
            deadline,
            "subscriptions/listen",
        ) else {
            return;
        };
        if head.status == 200 && head.content_type_is("text/event-stream") {
            log::debug!("{}: subscriptions/listen open", link.label());
            self.failures = 0;
            self.reopen_at = None;
            self.relisten = false;
            // The old stream (if any) goes only now that the new one holds: nothing falls between.
            self.release();
            self.adopt(conn, head, Kind::Listen);
            return;
        }
        // Not ours to keep: the closer would hold the socket open.
        if !replacing {
            lock(&link.stream).take();
        }
        let status = head.status;
        if matches!(status, 502..=504) {
            return self.get_failed(format!("subscriptions/listen: HTTP {status}"));
        }
        if matches!(status, 401 | 403) && link.target.auth.is_some() {
            return self.unauthorized(status, &head);
        }
        let answer = error_body(&mut conn, &head, deadline);
        log::warn!(
            "{}: answered subscriptions/listen with HTTP {status}{} instead of a stream; changes \
             to its lists and resources will not be seen",
            link.label(),
            super::link::error_preview(&answer)
        );
        self.without_stream("its subscriptions/listen was refused");
    }

    /// The stream was refused the handle's OAuth token: a new one (refreshed) is had for the next
    /// attempt, after the stream's backoff (so a server that refuses even that is not hammered).
    fn unauthorized(&mut self, status: u16, head: &ResponseHead) {
        let Some(auth) = &self.link.target.auth else {
            return;
        };
        let challenge = head.header("www-authenticate");
        let deadline = Instant::now() + SIDE_LIMIT;
        // (Built just before: the generation now is the one it was sent with, or a newer one.)
        match auth.refused(status, challenge, auth.generation(), deadline) {
            crate::oauth::Verdict::Retry => {}
            crate::oauth::Verdict::NeedsLogin(why) | crate::oauth::Verdict::Refused(why) => {
                log::debug!("{}: its stream: {why}", self.link.label())
            }
        }
    }

    /// Sends the request that opens a stream (the GET stream, a listen) on a new connection and
    /// reads its head; the next attempt is scheduled after the backoff either way. None: it could
    /// not be sent (a refused connection kills the handle; other failures count, `get_failed`).
    /// `hold`: the connection's closer is the one the handle's death shuts from now on.
    fn request_stream(
        &mut self,
        method: &str,
        headers: &[(String, String)],
        body: &[u8],
        hold: bool,
        deadline: Instant,
        what: &str,
    ) -> Option<(Conn, ResponseHead)> {
        let link = self.link;
        let url = &link.target.url;
        let opened = link.connect(url, deadline).and_then(|mut conn| {
            if hold {
                link.hold(conn.closer());
            }
            let head = conn.send(method, &url.path, &refs(headers), body, deadline)?;
            Ok((conn, head))
        });
        self.reopen_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).clamp(BACKOFF_FIRST, BACKOFF_MAX);
        match opened {
            Ok(opened) => Some(opened),
            Err(e @ (ConnError::Io(_) | ConnError::Tls(_))) => {
                let _ = link.failed(&e);
                None
            }
            Err(ConnError::Shutdown) => None,
            Err(e) => {
                self.get_failed(format!("{what}: {e}"));
                None
            }
        }
    }

    /// Streamable HTTP: opens the standalone GET stream (see the module docs for what each
    /// answer means).
    fn open_get(&mut self) {
        let link = self.link;
        let deadline = Instant::now() + CONNECT_LIMIT;
        let (generation, has_session) = link.generation();
        let mut headers = link.headers(false);
        if let Some(id) = &self.last_event_id {
            headers.push(("Last-Event-ID".into(), id.clone()));
        }
        let Some((mut conn, head)) =
            self.request_stream("GET", &headers, b"", true, deadline, "GET stream")
        else {
            return;
        };
        if head.status != 200 {
            // Not ours to keep: the closer would hold the socket open.
            lock(&link.stream).take();
        }
        match head.status {
            200 if head.content_type_is("text/event-stream") => {
                log::debug!("{}: GET stream open", link.label());
                self.failures = 0;
                self.renewed = false;
                self.reopen_at = None;
                self.adopt(conn, head, Kind::Get);
            }
            405 => self.without_stream("no server-initiated stream (405)"),
            status @ (401 | 403) if link.target.auth.is_some() => self.unauthorized(status, &head),
            status => {
                let body = error_body(&mut conn, &head, deadline);
                if has_session && lost_session(status, &body) {
                    if self.renewed {
                        link.die(format!(
                            "server {}: its GET stream keeps answering HTTP {status} for a new \
                             session",
                            link.name
                        ));
                        return;
                    }
                    self.renewed = true;
                    self.last_event_id = None;
                    if link.renew(generation, status, deadline).is_ok() {
                        self.reopen_at = None;
                    }
                    return;
                }
                if matches!(status, 502..=504) {
                    return self.get_failed(format!("GET stream: HTTP {status}"));
                }
                log::debug!("{}: its GET stream answered HTTP {status}", link.label());
            }
        }
    }

    /// A server without a stream to hold: `ping` (`server/discover` for 2026-07-28), so a dead
    /// server is noticed without a call. A refused connection kills the handle at once, a lost
    /// session is renewed, and other failures count like the GET stream's.
    fn probe(&mut self) {
        let link = self.link;
        self.probe_at = Some(Instant::now() + PROBE_EVERY);
        let deadline = Instant::now() + SIDE_LIMIT;
        let (method, params) = if link.modern() {
            let params = crate::rpc::Params::from_map(era::with_own_meta(None));
            ("server/discover", Some(params))
        } else {
            ("ping", None)
        };
        let outcome = link
            .begin(method, params, false, deadline, None)
            .and_then(|mut call| call.answer());
        match outcome {
            Ok(_) => self.failures = 0,
            Err(_) if !link.is_alive() => {}
            Err(e) => self.get_failed(format!("{method}: {e}")),
        }
    }

    /// Opening the GET stream (or a ping) failed in a way that says the server cannot be reached
    /// (through a proxy, say); `MAX_GET_FAILURES` in a row kill the handle, so `/health` tells
    /// the truth.
    fn get_failed(&mut self, why: String) {
        self.failures += 1;
        log::debug!("{}: {why} ({} in a row)", self.link.label(), self.failures);
        if self.failures >= MAX_GET_FAILURES {
            self.link.die(format!(
                "server {}: {} attempts in a row to reach it failed (last: {why}); the server is \
                 unreachable",
                self.link.name, self.failures
            ));
        }
    }

    /// One message from the stream.
    fn dispatch(&self, data: &str) {
        let link = self.link;
        let Some(message) = link.parse(data) else {
            return;
        };
        match message {
            Message::Response { id, outcome } => {
                match id.as_u64().and_then(|id| lock(&link.flights).inbox(id)) {
                    Some(inbox) => {
                        let _ = inbox.send(Inbound::Response(outcome));
                    }
                    None => log::debug!("{}: dropping a late answer to {id}", link.label()),
                }
            }
            Message::Notification { method, params } if method == "notifications/progress" => {
                let params = params.unwrap_or_default();
                let token = params.get("progressToken").and_then(Value::as_u64);
                if let Some(inbox) = token.and_then(|t| lock(&link.flights).inbox(t)) {
                    let _ = inbox.send(Inbound::Progress(params));
                }
            }
            Message::Notification { method, params } => link.notice(&method, params),
            Message::Request { id, method, .. } if method == "ping" => {
                link.answer_alone(&id, &method)
            }
            Message::Request { id, method, params } => {
                let taker = lock(&link.flights).route(&id);
                match taker {
                    Taker::Call(inbox) => {
                        log::debug!(
                            "{}: {method} on its own stream goes to the one client with calls here",
                            link.label()
                        );
                        let _ = inbox.send(Inbound::ChildRequest { id, method, params });
                    }
                    Taker::Nobody => link.answer_alone(&id, &method),
                    Taker::Ambiguous(clients) => {
                        log::info!(
                            "{}: refusing its {method}: calls of {clients} clients are in flight \
                             and the request names none of them",
                            link.label()
                        );
                        let error = json!({
                            "code": rpc::codes::INVALID_REQUEST,
                            "message": format!(
                                "the gateway cannot tell which of the {clients} clients with calls \
                                 in flight on this server {method} is for; send it on the stream \
                                 of the request it belongs to (relatedRequestId)"
                            ),
                        });
                        link.respond(&id, Err(&error));
                    }
                }
            }
        }
    }
}
