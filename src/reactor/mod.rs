//! The reactor thread: one mio `Poll` for the listener, every client connection, every child's
//! pipes and the waker.
//!
//! It accepts, reads, parses HTTP (sans-IO, `crate::http`), hands each request to the `Router`, and
//! writes responses and SSE events. It also drives child I/O (`downstream::child_io::IoLoop`): the
//! pipes' events go to it and it takes a turn on every turn of the loop, so a call on a child goes
//! from the client's socket to the child's stdin and back on this one thread, with no wake-up of
//! another. Answers from elsewhere (workers) arrive through the mailbox (`ToReactor`) and the
//! waker; each carries `(slab key, generation)` and is dropped if that connection or session is
//! gone. It never blocks: no DNS, no spawning, no waiting on workers; the only locks it takes are
//! held by everyone for bookkeeping only (a server pool's, when child I/O claims or releases room;
//! the server table's read lock; a call's control state).
//!
//! Timers are coarse: a housekeeping pass once a second sends SSE keepalives and closes connections
//! that are idle too long, too slow sending a request, or not reading what we write.
//!
//! No handler calls back into the loop: work that has to happen again on a connection (read the
//! next pipelined request once an answer is written, read more once the input buffer has room)
//! goes on the resume queue as `(slab key, generation)` and is done on the next turn, so the stack
//! depth never depends on what a client sends.
//!
//! Bytes queued for clients are capped twice: per connection (`gateway.maxQueuedBytes`; past it the
//! connection is closed and its call cancelled, and one answer larger than it is replaced by a 502)
//! and in total (`gateway.maxMemoryBytes`; a large answer that would pass it is replaced by a 503).
//! A connection that closes cancels the call it waits on.

pub mod conn;
mod respond;

use respond::{http_error, over_capacity, reject_over_capacity, write_response};

use crate::downstream::child_io::{self, IoLoop};
use crate::http::{self, HttpError, Limits, Method, Progress, Request};
use crate::job::{ReplyTo, Slot, ToReactor};
use crate::upstream::{Outcome, Outgoing, Response, Router};
use conn::{Conn, ReadOutcome, State};
use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::collections::VecDeque;
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
/// Pipelined requests wait while this much output is unread (the client must read first).
const OUTPUT_HIGH_WATER: usize = 1024 * 1024;
/// An answer at least this large is refused (503) when it would take the total queued for all
/// clients past `maxMemoryBytes`; smaller ones always pass, so errors and pings still get through.
const LARGE_ANSWER: usize = 64 * 1024;
/// A connection we are done with waits this long for the client to close before we do.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections over `maxClients` still accepted to be told 503 (beyond that they are dropped).
const REJECT_ROOM: usize = 1024;
/// Connections resumed per loop turn.
const RESUME_BUDGET: usize = 4096;
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
    /// `gateway.maxQueuedBytes`: unread output one connection may hold.
    pub max_queued_bytes: usize,
    /// `gateway.maxMemoryBytes`: unread output all connections together may hold.
    pub max_memory_bytes: usize,
}

impl Settings {
    /// From the `gateway` section (all of it may change on a reload: limits apply to connections
    /// accepted after it).
    pub fn from_gateway(gateway: &crate::config::GatewayConfig) -> Settings {
        Settings {
            limits: Limits {
                max_head_bytes: 16 * 1024,
                max_body_bytes: gateway.max_body_bytes,
                max_headers: 64,
            },
            max_clients: gateway.max_clients,
            keepalive_interval: gateway.keepalive_interval,
            shutdown_timeout: gateway.shutdown_timeout,
            max_queued_bytes: gateway.max_queued_bytes,
            max_memory_bytes: gateway.max_memory_bytes,
        }
    }
}

pub struct Reactor {
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    /// Connections accepted over `maxClients` only to be told 503.
    rejecting: usize,
    /// Connections with work to do again, handled in the loop (never by recursion).
    resume: VecDeque<Slot>,
    next_gen: u64,
    mailbox: Receiver<ToReactor>,
    router: Router,
    /// Child I/O, driven on this thread.
    children: IoLoop,
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
        children: IoLoop,
        settings: Settings,
    ) -> io::Result<Reactor> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Reactor {
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            rejecting: 0,
            resume: VecDeque::new(),
            next_gen: 0,
            mailbox,
            router,
            children,
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
                    WAKER => {} // the mailboxes are drained below on every turn
                    token if child_io::owns(token) => self.children.ready(event),
                    Token(key) => {
                        if event.is_error() || event.is_write_closed() {
                            // Reset, or both sides shut: nothing more can be said either way.
                            self.close(key);
                            continue;
                        }
                        if event.is_readable() || event.is_read_closed() {
                            self.on_readable(key, now);
                        }
                        if event.is_writable() {
                            self.on_writable(key, now);
                        }
                    }
                }
            }
            // Before the mailbox: an answer a child gave in this turn is written in this turn.
            self.children.turn();
            self.drain_mailbox(now);
            self.run_resumes(now);
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
                            "grace period over with {} calls still running; they are answered \"gateway stopping\"",
                            self.router.in_flight
                        );
                        self.answer_stopping(now);
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
        if self.children.has_work() {
            return Duration::ZERO; // commands sent on this thread, or pipes with data left
        }
        if let Some(t) = self.children.next_timer() {
            until = until.min(t);
        }
        if !self.mailbox.is_empty() || !self.resume.is_empty() {
            return Duration::ZERO; // the budget left work behind
        }
        until.saturating_duration_since(now)
    }

    /// After `run`: keeps driving child I/O (nothing else) until `done` gets word or `deadline`
    /// passes, so the supervisor can stop the children politely (their stdin closed by child
    /// I/O, their last words read).
    pub fn serve_children_until(&mut self, done: &Receiver<()>, deadline: Instant) {
        self.children.drive(&mut self.poll, Some((done, deadline)));
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
        let max = self.settings.max_clients;
        let over = self.conns.len() - self.rejecting >= max;
        if over && self.rejecting >= REJECT_ROOM {
            reject_over_capacity(sock, max);
            return;
        }
        let _ = sock.set_nodelay(true);
        self.next_gen += 1;
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let conn = entry.insert(Conn::new(sock, self.next_gen, self.settings.limits, now));
        if over {
            // Told why and closed gracefully (lingering), so the client reads the 503, not a reset.
            log::warn!("refused a connection: maxClients ({max}) reached");
            conn.rejected = true;
            self.rejecting += 1;
            write_response(conn, over_capacity(max), false, false);
            conn.state = State::Closing;
        }
        if let Err(e) = conn.update_interest(self.poll.registry(), Token(key)) {
            log::warn!("cannot register a connection: {e}");
            self.forget(key);
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
            (State::Streaming { .. } | State::Lingering { .. }, ReadOutcome::Closed) => {
                return self.close(key)
            }
            (State::Streaming { .. } | State::Lingering { .. }, ReadOutcome::Open) => return,
            (State::Awaiting { .. }, ReadOutcome::Closed) => return self.probe(key, now),
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
        } else if conn.read_closed && matches!(conn.state, State::Awaiting { .. }) {
            // The request came with the client's end of stream: is it still there to read?
            self.probe(key, now);
        }
        // Otherwise keep the connection: we still owe it an answer (Awaiting) or are writing one.
    }

    fn on_writable(&mut self, key: usize, now: Instant) {
        self.flush(key, now);
    }

    /// The client closed its sending side while we owe it an answer: a client that only half
    /// closed still reads, one that is gone answers our next bytes with a reset (then its call is
    /// cancelled in `close`). So send something harmless: an interim `100 Continue` (HTTP/1.1
    /// clients must skip it) or, on an event stream already begun, an SSE comment.
    fn probe(&mut self, key: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let State::Awaiting {
            streaming,
            may_probe,
            ..
        } = conn.state
        else {
            return;
        };
        if conn.probed {
            return;
        }
        conn.probed = true;
        if streaming {
            let mut comment = Vec::new();
            http::sse::write_comment(&mut comment, "still working");
            let mut chunk = Vec::new();
            http::write_chunk(&mut chunk, &comment);
            conn.queue(&chunk);
        } else if may_probe {
            conn.queue(http::CONTINUE);
        } else {
            return; // HTTP/1.0: nothing may precede the answer; wait for it
        }
        self.flush(key, now);
    }

    /// Puts a connection on the resume queue (once): it is read and served again on the next turn.
    fn queue_resume(&mut self, slot: Slot) {
        if let Some(conn) = self.conns.get_mut(slot.key).filter(|c| c.gen == slot.gen) {
            if !conn.resume_queued {
                conn.resume_queued = true;
                self.resume.push_back(slot);
            }
        }
    }

    /// Serves the connections queued for another pass (within a budget; the rest next turn).
    fn run_resumes(&mut self, now: Instant) {
        for _ in 0..RESUME_BUDGET {
            let Some(slot) = self.resume.pop_front() else {
                return;
            };
            let Some(conn) = self.conns.get_mut(slot.key).filter(|c| c.gen == slot.gen) else {
                continue;
            };
            conn.resume_queued = false;
            self.on_readable(slot.key, now);
        }
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
            if conn.pending() > OUTPUT_HIGH_WATER {
                conn.output_paused = true; // resumed by `flush` once the client has read
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
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.trim_input();
        let more = conn.read_paused
            && !conn.output_paused
            && matches!(conn.state, State::Reading)
            && conn.inbuf.len() < conn::READ_AHEAD;
        if more {
            let slot = conn.slot(key);
            self.queue_resume(slot); // the kernel still holds input: read it next turn
        }
        self.flush(key, now);
    }

    fn on_request(&mut self, key: usize, request: Request, now: Instant) {
        let slot = self.conns[key].slot(key);
        let keep_alive = request.keep_alive() && self.shutdown_deadline.is_none();
        let head_only = request.method == Method::Head;
        let may_probe = request.minor_version >= 1;
        // A bug in handling one request must not end the gateway for every client: it is answered
        // 500 on a connection that then closes, and logged (the router's state is small steps,
        // consistent enough to go on, as the pools' is).
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.router.handle(slot, &request, now)
        }));
        let mut outcome = handled.unwrap_or_else(|panic| {
            log::error!(
                "internal error while handling {} {} ({}); answered 500, the gateway goes on",
                request.method.as_str(),
                request.path,
                crate::panics::describe(&*panic)
            );
            let mut response = crate::upstream::Response::rpc_error(
                500,
                crate::rpc::codes::INTERNAL_ERROR,
                "internal error in the gateway",
            );
            response.close = true;
            Outcome::Respond(response)
        });
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
                    may_probe,
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
        if conn.output_paused && conn.pending() < OUTPUT_HIGH_WATER / 2 {
            conn.output_paused = false;
            let slot = conn.slot(key);
            self.queue_resume(slot);
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if matches!(conn.state, State::Closing) && conn.pending() == 0 {
            if conn.read_closed {
                return self.close(key); // nothing unread on either side: a plain close is clean
            }
            conn.linger(now);
        }
        if let Err(e) = conn.update_interest(self.poll.registry(), Token(key)) {
            log::warn!("cannot update a connection's interest: {e}");
            self.close(key);
        }
    }

    /// Closes a connection; whatever it was waiting for is cancelled.
    fn close(&mut self, key: usize) {
        let Some(conn) = self.forget(key) else {
            return;
        };
        match conn.state {
            State::Streaming { session } => self.router.stream_closed(session, Instant::now()),
            State::Awaiting { .. } => {
                log::debug!("a client left while its request was being served; cancelling it");
                self.router.conn_closed(conn.slot(key));
            }
            _ => {}
        }
    }

    /// Removes a connection from the slab and the poll, nothing more.
    fn forget(&mut self, key: usize) -> Option<Conn> {
        let mut conn = self.conns.try_remove(key)?;
        let _ = self.poll.registry().deregister(&mut conn.sock);
        if conn.rejected {
            self.rejecting -= 1;
        }
        Some(conn)
    }

    fn drain_mailbox(&mut self, now: Instant) {
        for _ in 0..MAILBOX_BUDGET {
            let Ok(message) = self.mailbox.try_recv() else {
                return;
            };
            match message {
                ToReactor::Reply {
                    to,
                    mut status,
                    mut body,
                    last,
                    done,
                    finished,
                } => {
                    if last && body.len() > self.settings.max_queued_bytes {
                        (status, body) = self.too_large(body.len(), done.as_ref());
                    } else if last && body.len() >= LARGE_ANSWER {
                        let queued = self.queued_total();
                        if queued + body.len() > self.settings.max_memory_bytes {
                            (status, body) = self.memory_full(body.len(), queued, done.as_ref());
                        }
                    }
                    if last {
                        self.router.answered(done, to, finished);
                    }
                    match to {
                        ReplyTo::Conn(slot) => {
                            self.answer_conn(slot, status, body, last, now);
                        }
                        ReplyTo::Session(slot) if !body.is_empty() => {
                            self.router.to_session(slot, &body);
                            self.deliver_outbox(now);
                        }
                        ReplyTo::Session(_) | ReplyTo::Nowhere => {}
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
                        ReplyTo::Nowhere => self.router.client_request_failed(
                            session,
                            &request,
                            "the call it belongs to waits for its client's retry",
                        ),
                    }
                }
                ToReactor::Suspend {
                    to,
                    id,
                    control,
                    child_id,
                    method,
                    params,
                    deadline,
                } => {
                    let suspended = crate::upstream::modern::Suspended {
                        control,
                        child_id,
                        deadline,
                    };
                    self.router
                        .suspend(to, &id, suspended, &method, params, now);
                    self.deliver_outbox(now);
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
                ToReactor::Reloaded {
                    gateway,
                    notes,
                    summary,
                } => {
                    if let Some(gateway) = &gateway {
                        self.settings = Settings::from_gateway(gateway);
                    }
                    self.router.reloaded(gateway.as_deref(), notes, summary);
                }
                ToReactor::Shutdown => self.begin_shutdown(now),
            }
        }
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
            if self.conns.get(slot.key).is_none_or(|c| c.gen != slot.gen) {
                continue;
            }
            if self.queue_capped(slot.key, &bytes) {
                self.flush(slot.key, now);
            }
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
            if let State::Lingering { since } = conn.state {
                if now.duration_since(since) > LINGER_TIMEOUT {
                    to_close.push(key);
                }
                continue;
            }
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
                State::Awaiting { .. } | State::Closing | State::Lingering { .. } => {}
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

/// Errors of one connection attempt that say nothing about the listener.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::PermissionDenied
    )
}
