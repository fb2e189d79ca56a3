//! The reactor thread: one mio `Poll` for the listener, every client connection and the waker.
//!
//! It accepts, reads, parses HTTP (sans-IO, `crate::http`), hands each request to the `Router`, and
//! writes responses and SSE events. Worker answers arrive through the mailbox (`ToReactor`) and the
//! waker; each carries `(slab key, generation)` and is dropped if that connection or session is gone.
//! It never blocks: no locks on the request path, no DNS, no spawning, no waiting on workers.
//!
//! Timers are coarse: a housekeeping pass once a second sends SSE keepalives and closes connections
//! that are idle too long, too slow sending a request, or not reading what we write.

pub mod conn;

use crate::http::{self, HttpError, Limits, Method, Progress, Request};
use crate::job::{ReplyTo, Slot, ToReactor};
use crate::upstream::{Outcome, Outgoing, Response, Router};
use conn::{Conn, ReadOutcome, State};
use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io;
use std::time::{Duration, Instant};

pub const LISTENER: Token = Token(usize::MAX - 1);
pub const WAKER: Token = Token(usize::MAX - 2);

/// A connection that has not finished sending its request by then gets 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// An idle keep-alive connection is closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A client that reads none of its pending output for this long is dropped.
const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// An SSE stream with more than this unread is a consumer too slow to keep: it is dropped.
const MAX_STREAM_BACKLOG: usize = 32 * 1024 * 1024;
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// Mailbox messages handled per loop turn, so sockets are never starved.
const MAILBOX_BUDGET: usize = 4096;
/// After a failed accept (out of fds), wait this long before trying again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// After the grace period, how long pending output may still be flushed.
const FINAL_FLUSH: Duration = Duration::from_millis(500);

/// Settings of the reactor.
pub struct Settings {
    pub limits: Limits,
    pub max_clients: usize,
    pub keepalive_interval: Duration,
    pub shutdown_timeout: Duration,
}

pub struct Reactor {
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    next_gen: u64,
    mailbox: Receiver<ToReactor>,
    router: Router,
    settings: Settings,
    scratch: Vec<u8>,
    accept_paused_until: Option<Instant>,
    next_housekeeping: Instant,
    /// Set on the first SIGTERM/SIGINT: when the grace period ends.
    shutdown_deadline: Option<Instant>,
    /// A second stop signal came: no more waiting anywhere.
    hurried: bool,
}

impl Reactor {
    pub fn new(
        poll: Poll,
        mut listener: TcpListener,
        mailbox: Receiver<ToReactor>,
        router: Router,
        settings: Settings,
    ) -> io::Result<Reactor> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Reactor {
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            next_gen: 0,
            mailbox,
            router,
            settings,
            scratch: vec![0; 64 * 1024],
            accept_paused_until: None,
            next_housekeeping: Instant::now() + HOUSEKEEPING,
            shutdown_deadline: None,
            hurried: false,
        })
    }

    /// Runs until a shutdown completes. Returns true when it was hurried (a second stop signal).
    pub fn run(&mut self) -> io::Result<bool> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = self.poll_timeout(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => {} // the mailbox is drained below on every turn
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(key, now);
                        }
                        if event.is_writable() {
                            self.on_writable(key, now);
                        }
                    }
                }
            }
            self.drain_mailbox(now);
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
                self.accept(now);
            }
            if now >= self.next_housekeeping {
                self.housekeeping(now);
                self.next_housekeeping = now + HOUSEKEEPING;
            } else if self.router.next_held_deadline().is_some_and(|t| t <= now) {
                self.router.retry_held(now);
                self.deliver_outbox(now);
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.router.in_flight == 0 || now >= deadline {
                    if self.router.in_flight > 0 {
                        log::warn!(
                            "grace period over with {} calls still running; they are abandoned",
                            self.router.in_flight
                        );
                    }
                    let hurried = self.hurried;
                    self.final_flush();
                    return Ok(hurried);
                }
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        let mut until = self.next_housekeeping;
        if let Some(t) = self.accept_paused_until {
            until = until.min(t);
        }
        if let Some(t) = self.shutdown_deadline {
            until = until.min(t);
        }
        if let Some(t) = self.router.next_held_deadline() {
            until = until.min(t);
        }
        if !self.mailbox.is_empty() {
            return Duration::ZERO; // the budget left messages behind
        }
        until.saturating_duration_since(now)
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            if self.accept_paused_until.is_some() {
                return;
            }
            match listener.accept() {
                Ok((sock, _addr)) => self.add_conn(sock, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_transient_accept_error(&e) => {}
                Err(e) => {
                    // Most likely out of file descriptors: pause instead of spinning.
                    log::error!("accept failed: {e}; pausing new connections briefly");
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    fn add_conn(&mut self, sock: mio::net::TcpStream, now: Instant) {
        if self.conns.len() >= self.settings.max_clients {
            reject_over_capacity(sock, self.settings.max_clients);
            return;
        }
        let _ = sock.set_nodelay(true);
        self.next_gen += 1;
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let conn = entry.insert(Conn::new(sock, self.next_gen, self.settings.limits, now));
        if let Err(e) = conn.update_interest(self.poll.registry(), Token(key)) {
            log::warn!("cannot register a connection: {e}");
            self.conns.remove(key);
            return;
        }
        // Data may have arrived with the connection; edge-triggered readiness would not repeat it.
        self.on_readable(key, now);
    }

    fn on_readable(&mut self, key: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return; // sporadic events for closed connections happen
        };
        let outcome = conn.read(&mut self.scratch, now);
        match (&conn.state, outcome) {
            (State::Streaming { .. }, ReadOutcome::Closed) => return self.close(key),
            (State::Streaming { .. }, ReadOutcome::Open) => return,
            _ => {}
        }
        self.process_requests(key, now);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.read_closed && matches!(conn.state, State::Reading) {
            // Nothing more can arrive (a half-read request never completes): finish writing, close.
            conn.state = State::Closing;
            self.flush(key, now);
        }
        // Otherwise keep the connection: we still owe it an answer (Awaiting) or are writing one.
    }

    fn on_writable(&mut self, key: usize, now: Instant) {
        self.flush(key, now);
    }

    /// Parses and handles every complete request in the input buffer.
    fn process_requests(&mut self, key: usize, now: Instant) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if !matches!(conn.state, State::Reading) {
                break;
            }
            match conn.reader.advance(&mut conn.inbuf) {
                Ok(Progress::Incomplete) => {
                    if conn.reader.is_idle() && conn.inbuf.is_empty() {
                        // Only blank lines were left after the last request: nothing is arriving.
                        conn.request_started = None;
                    }
                    break;
                }
                Ok(Progress::ContinueWanted) => conn.queue(http::CONTINUE),
                Ok(Progress::Complete(request)) => {
                    conn.request_started = if conn.inbuf.is_empty() {
                        None
                    } else {
                        Some(now)
                    };
                    self.on_request(key, request, now);
                }
                Err(error) => {
                    let response = http_error(error, &self.settings.limits);
                    let conn = &mut self.conns[key];
                    write_response(conn, response, false, false);
                    conn.state = State::Closing;
                    conn.inbuf.clear();
                    break;
                }
            }
        }
        if let Some(conn) = self.conns.get_mut(key) {
            conn.trim_input();
        }
        self.flush(key, now);
    }

    fn on_request(&mut self, key: usize, request: Request, now: Instant) {
        let slot = self.conns[key].slot(key);
        let keep_alive = request.keep_alive() && self.shutdown_deadline.is_none();
        let head_only = request.method == Method::Head;
        let mut outcome = self.router.handle(slot, &request, now);
        if keep_alive && request.minor_version == 0 {
            // HTTP/1.0 closes by default: keeping the connection must be said explicitly.
            let keep = ("Connection", "keep-alive".to_string());
            match &mut outcome {
                Outcome::Respond(response) => response.headers.push(keep),
                Outcome::Await { headers, .. } => headers.push(keep),
                Outcome::Stream { .. } => {}
            }
        }
        let conn = &mut self.conns[key];
        match outcome {
            Outcome::Respond(response) => {
                let keep_alive = keep_alive && !response.close;
                write_response(conn, response, keep_alive, head_only);
                if !keep_alive {
                    conn.state = State::Closing;
                }
            }
            Outcome::Await { headers, sse } => {
                conn.state = State::Awaiting {
                    keep_alive,
                    head_only,
                    headers,
                    sse: sse && !head_only,
                    streaming: false,
                };
            }
            Outcome::Stream { head, session } => {
                conn.queue(&head);
                conn.state = State::Streaming { session };
                conn.inbuf = Vec::new();
            }
        }
        self.deliver_outbox(now);
    }

    /// Writes pending output and re-registers interest; closes the connection when it is done.
    fn flush(&mut self, key: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.flush(now).is_err() {
            return self.close(key);
        }
        let done = matches!(conn.state, State::Closing) && conn.pending() == 0;
        if done {
            return self.close(key);
        }
        if let Err(e) = conn.update_interest(self.poll.registry(), Token(key)) {
            log::warn!("cannot update a connection's interest: {e}");
            self.close(key);
        }
    }

    fn close(&mut self, key: usize) {
        if !self.conns.contains(key) {
            return;
        }
        let mut conn = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut conn.sock);
        if let State::Streaming { session } = conn.state {
            self.router.stream_closed(session, Instant::now());
        }
    }

    fn drain_mailbox(&mut self, now: Instant) {
        for _ in 0..MAILBOX_BUDGET {
            let Ok(message) = self.mailbox.try_recv() else {
                return;
            };
            match message {
                ToReactor::Reply {
                    to,
                    status,
                    body,
                    last,
                    done,
                } => {
                    if last {
                        self.router.answered(done);
                    }
                    match to {
                        ReplyTo::Conn(slot) => {
                            self.answer_conn(slot, status, body, last, now);
                        }
                        ReplyTo::Session(slot) if !body.is_empty() => {
                            self.router.to_session(slot, &body);
                            self.deliver_outbox(now);
                        }
                        ReplyTo::Session(_) => {}
                    }
                }
                ToReactor::ClientRequest {
                    to,
                    session,
                    child_id,
                    method,
                    params,
                    reply,
                } => {
                    let Some(request) = self
                        .router
                        .client_request(session, child_id, &method, params, reply)
                    else {
                        continue;
                    };
                    match to {
                        ReplyTo::Session(slot) => {
                            self.router.to_session(slot, &request);
                            self.deliver_outbox(now);
                        }
                        ReplyTo::Conn(slot) => {
                            if !self.answer_conn(slot, 200, request.clone(), false, now) {
                                self.router.client_request_failed(
                                    session,
                                    &request,
                                    "the client's request cannot carry server requests (it does not accept text/event-stream)",
                                );
                            }
                        }
                    }
                }
                ToReactor::Registry(snapshot) => {
                    self.router.set_registry(snapshot, now);
                    self.deliver_outbox(now);
                }
                ToReactor::ServerNotification {
                    server,
                    method,
                    params,
                } => {
                    self.router
                        .server_notification(server, &method, params, now);
                    self.deliver_outbox(now);
                }
                ToReactor::Shutdown => self.begin_shutdown(now),
            }
        }
    }

    /// A worker's message for a connection waiting on it: the answer (`last`), or a message before
    /// it, which turns the answer into an event stream when the client accepts one. Returns whether
    /// the message could be sent.
    fn answer_conn(
        &mut self,
        slot: Slot,
        status: u16,
        body: Vec<u8>,
        last: bool,
        now: Instant,
    ) -> bool {
        let Some(conn) = self.conns.get_mut(slot.key).filter(|c| c.gen == slot.gen) else {
            return false; // the client left; nobody to tell
        };
        let State::Awaiting {
            keep_alive,
            head_only,
            ref mut headers,
            sse,
            ref mut streaming,
        } = conn.state
        else {
            return false;
        };
        if !last && !sse {
            return false; // a message for a client that only takes one JSON answer
        }
        let keep_alive = keep_alive && !conn.read_closed && self.shutdown_deadline.is_none();
        // An answer that comes alone is plain JSON; messages before it make it an event stream.
        if !last || *streaming {
            let mut out = Vec::with_capacity(body.len() + 64);
            if !*streaming {
                *streaming = true;
                let mut extra: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                extra.push(("Transfer-Encoding", "chunked"));
                http::response::write_sse_head(&mut out, &extra);
            }
            let mut event = Vec::with_capacity(body.len() + 24);
            http::sse::write_event(&mut event, Some("message"), None, &body);
            http::write_chunk(&mut out, &event);
            if !last {
                conn.queue(&out);
                self.flush(slot.key, now);
                return true;
            }
            out.extend_from_slice(http::LAST_CHUNK);
            conn.queue(&out);
        } else {
            let response = Response {
                status,
                content_type: "application/json",
                headers: std::mem::take(headers),
                body,
                close: false,
            };
            write_response(conn, response, keep_alive, head_only);
        }
        conn.state = if keep_alive {
            State::Reading
        } else {
            State::Closing
        };
        // Pipelined requests may be waiting, and reading may have paused for backpressure.
        self.on_readable(slot.key, now);
        self.flush(slot.key, now);
        true
    }

    /// Does the router's work on other connections: stream bytes, streams to end.
    fn deliver_outbox(&mut self, now: Instant) {
        for outgoing in self.router.take_outbox() {
            let (slot, bytes) = match outgoing {
                Outgoing::Send(slot, bytes) => (slot, bytes),
                Outgoing::Answer { conn, status, body } => {
                    self.answer_conn(conn, status, body, true, now);
                    continue;
                }
                Outgoing::Close(slot) => {
                    if self.conns.get(slot.key).is_some_and(|c| c.gen == slot.gen) {
                        self.close(slot.key);
                    }
                    continue;
                }
            };
            let Some(conn) = self.conns.get_mut(slot.key).filter(|c| c.gen == slot.gen) else {
                continue;
            };
            if conn.pending() + bytes.len() > MAX_STREAM_BACKLOG {
                log::warn!(
                    "dropping an SSE client that has not read {} bytes",
                    conn.pending()
                );
                self.close(slot.key);
                continue;
            }
            conn.queue(&bytes);
            self.flush(slot.key, now);
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        self.router.reap_sessions(now);
        self.router.retry_held(now);
        self.deliver_outbox(now);
        let keepalive = self.settings.keepalive_interval;
        let mut to_close = Vec::new();
        let mut to_flush = Vec::new();
        for (key, conn) in self.conns.iter_mut() {
            if conn.pending() > 0 && now.duration_since(conn.last_write) > WRITE_STALL_TIMEOUT {
                to_close.push(key);
                continue;
            }
            match conn.state {
                State::Streaming { .. } => {
                    if conn.pending() == 0 && now.duration_since(conn.last_write) >= keepalive {
                        let mut comment = Vec::new();
                        http::sse::write_comment(&mut comment, "keepalive");
                        conn.queue(&comment);
                        to_flush.push(key);
                    }
                }
                State::Reading => match conn.request_started {
                    Some(started) if now.duration_since(started) > REQUEST_TIMEOUT => {
                        write_response(
                            conn,
                            Response::error(
                                408,
                                crate::rpc::codes::INVALID_REQUEST,
                                "the request took too long to arrive",
                            ),
                            false,
                            false,
                        );
                        conn.state = State::Closing;
                        to_flush.push(key);
                    }
                    None if now.duration_since(conn.last_active) > IDLE_TIMEOUT => {
                        to_close.push(key)
                    }
                    _ => {}
                },
                State::Awaiting { .. } | State::Closing => {}
            }
        }
        for key in to_close {
            self.close(key);
        }
        for key in to_flush {
            self.flush(key, now);
        }
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            log::info!("second stop signal: not waiting for running calls");
            self.shutdown_deadline = Some(now);
            self.hurried = true;
            return;
        }
        log::info!(
            "stopping: no new connections; waiting up to {} ms for {} running calls",
            self.settings.shutdown_timeout.as_millis(),
            self.router.in_flight
        );
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_deadline = Some(now + self.settings.shutdown_timeout);
        self.router.shutting_down = true;
        self.router.refuse_held();
        self.deliver_outbox(now);
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(c.state, State::Reading) && c.inbuf.is_empty() && c.pending() == 0
            })
            .map(|(key, _)| key)
            .collect();
        for key in idle {
            self.close(key);
        }
    }

    /// Gives pending output a last, short chance to go out.
    fn final_flush(&mut self) {
        let until = Instant::now() + FINAL_FLUSH;
        let mut events = Events::with_capacity(256);
        loop {
            let now = Instant::now();
            let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
            for key in keys {
                self.flush(key, now);
            }
            let waiting = self.conns.iter().any(|(_, c)| c.pending() > 0);
            if !waiting || now >= until {
                return;
            }
            let _ = self.poll.poll(&mut events, Some(until - now));
        }
    }
}

/// Appends a full response (head + body unless `head_only`).
fn write_response(conn: &mut Conn, response: Response, keep_alive: bool, head_only: bool) {
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(response.headers.len() + 1);
    headers.push(("Content-Type", response.content_type));
    headers.extend(
        response
            .headers
            .iter()
            // `write_head` says `Connection: close` itself when the connection ends.
            .filter(|(k, _)| keep_alive || !k.eq_ignore_ascii_case("connection"))
            .map(|(k, v)| (*k, v.as_str())),
    );
    let mut out = Vec::with_capacity(128 + response.body.len());
    http::response::write_head(
        &mut out,
        response.status,
        &headers,
        Some(response.body.len()),
        keep_alive,
    );
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    conn.queue(&out);
}

/// The JSON answer to a request that could not be parsed.
fn http_error(error: HttpError, limits: &Limits) -> Response {
    let mut message = error.describe(limits);
    if error == HttpError::BodyTooLarge {
        message.push_str(" (gateway.maxBodyBytes)");
    }
    Response {
        close: true,
        ..Response::error(error.status(), crate::rpc::codes::INVALID_REQUEST, &message)
    }
}

/// Tells a client over `maxClients` why it is refused, best effort, without registering it.
fn reject_over_capacity(sock: mio::net::TcpStream, max: usize) {
    use std::io::Write;
    let mut out = Vec::new();
    http::response::write_response(
        &mut out,
        503,
        "application/json",
        &[("Retry-After", "1")],
        &crate::job::rest_error(
            crate::rpc::codes::SERVER_UNAVAILABLE,
            &format!("too many connections (gateway.maxClients is {max})"),
        ),
        false,
    );
    let mut sock = sock;
    let _ = sock.write(&out);
    log::warn!("refused a connection: maxClients ({max}) reached");
}

/// Errors of one connection attempt that say nothing about the listener.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::PermissionDenied
    )
}
