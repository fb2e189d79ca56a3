//! Child I/O: the one owner of every child's pipes, both directions, and of the calls in flight on
//! them. It is a loop (`IoLoop`) driven by a mio `Poll` it does not own: the reactor's, so that a
//! call on a child costs no wake-up between threads (the reactor hands it the call and takes the
//! answer on its own thread); or, for `mcp-gateway check` and the unit tests, a poll of its own on a
//! thread of its own (`ChildIo::start`).
//!
//! Other threads send it whole commands (`Command`) through a channel + the poll's waker: a
//! client's call (from a worker, or from the reactor), the gateway's own requests and
//! notifications (handshake, relist, supervisor), signals from the reactor (cancellation, a
//! client's answer to the server), retirement. Its driver drains them on every turn (and does not
//! block while any wait), so one sent on the driving thread itself needs no wake-up. It writes
//! each child's stdin from a bounded per-child queue on WRITABLE readiness, splits stdout into
//! messages (answers and progress go to their flight by id, the child's own requests to the one
//! client whose calls are in flight there, notifications to the supervisor and sessions), logs
//! stderr, and ends every flight: answered, timed out, cancelled, or failed when the child dies.
//! A log message that comes while a call is the child's only one is that call's too (for a call
//! that carried a log level); a 2026-07-28 child's log messages go nowhere else (they are
//! request-scoped), a 2025 child's also to every session that set a level. A 2025 client's call
//! that a 2026-07-28 child answers `input_required` waits under its id for that client's answers
//! and is sent again with them (`ask_for_input`). A 2026-07-28 child's `subscriptions/listen` is
//! held here too (`ChildState::relisten`): a new one for every change of what it asks for, then the
//! one it replaces cancelled.
//!
//! Invariants:
//! - it never blocks (its driver blocks in `poll` only); nobody else touches a child's pipe, so a
//!   child that stops reading its stdin fills only its own queue (its calls time out; a call whose
//!   line never left the queue is taken out of it instead of being sent late);
//! - every pipe gets a turn: one read turn takes at most `READ_TURN` bytes from a pipe, then the
//!   others are served, so one child flooding its stdout or stderr cannot starve the rest;
//! - what a child logs is rate-limited per child and never carries raw control bytes (`logs`);
//! - a call's flight ends exactly once; when stdout closes, every flight on the child fails at once
//!   (after at most `DEATH_WAIT`, to say how the process ended), and only then does the
//!   supervisor hear of the death (so it cannot reap the process before its status was read);
//! - its pipes' tokens carry `CHILD_TOKENS`, which no other source of the poll uses (`owns`);
//! - a panic in here is caught: every flight is failed, the loop's state is dropped (children
//!   lose their pipes and die, and the pools replace them) and the loop starts afresh; its driver
//!   (the reactor) is never unwound by it.

pub mod lines;
mod logs;

use super::era;
use super::flight::{sole_client, Carrier, Flight, Next};
use super::link::Link;
use super::message::{notification_event, Message};
use super::stdio::StdioChild;
use super::{Answer, CallError};
use crate::job::{Failure, Job, Mailbox, Signal};
use crate::pool::{Handle, Member};
use crossbeam_channel::{Receiver, Sender};
use lines::{leading_id, LineBuf, Piece};
use logs::{printable, thousands, LogBudget, Verdict};
use mio::event::Event;
use mio::unix::pipe;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{ChildStderr, ChildStdin, ChildStdout};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The top two bits of every token of a child's pipe (`01`), and of no other token of the poll:
/// connections' slab keys stay far below, the reactor's own tokens have the top bit set.
const CHILD_TOKENS: usize = 1 << (usize::BITS - 2);
/// The waker's token on a poll of child I/O's own (`ChildIo::start`).
const OWN_WAKER: Token = Token(0);
/// On a poll of its own, how often the loop looks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(10);
/// A stderr line longer than this is logged in pieces.
const MAX_STDERR_LINE: usize = 64 * 1024;
/// How much of a junk stdout line goes into the log.
const JUNK_PREVIEW: usize = 200;
/// Bytes read from one pipe before the other pipes get their turn.
const READ_TURN: usize = 256 * 1024;
/// A pipe whose child is being rate-limited in the log waits this long between read turns.
const FLOOD_PAUSE: Duration = Duration::from_millis(50);
/// Bytes waiting for one child's stdin beyond which new calls are refused at once.
const MAX_QUEUED: usize = 16 * 1024 * 1024;
/// After stdout closes, how long to wait for the process to exit before failing its calls.
const DEATH_WAIT: Duration = Duration::from_millis(100);
const DEATH_POLL: Duration = Duration::from_millis(5);
/// A retired child whose pipes stay open this long (a grandchild holds them) is let go.
const RETIRED_LIMIT: Duration = Duration::from_secs(10);
const STDERR_TAIL_LINES: usize = 20;
const STDERR_TAIL_CHARS: usize = 300;

/// Something a child did that the pools or the registry must know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEvent {
    /// stdout closed: the handle is dead.
    Closed { server: usize, serial: u64 },
    /// `notifications/<kind>/list_changed` (kind: tools, resources, prompts).
    ListChanged {
        server: usize,
        serial: u64,
        kind: String,
    },
    /// A remote server forgot the handle's session and a new one was initialized: what clients
    /// asked (log level, subscriptions) must be sent again.
    Renewed { server: usize, serial: u64 },
    /// A notification for clients: `notifications/message`, `notifications/resources/updated`.
    ForClients {
        server: usize,
        method: String,
        params: Map<String, Value>,
    },
}

/// What other threads (and the reactor) ask of child I/O.
pub enum Command {
    /// Watch a freshly spawned child.
    Attach {
        child: Arc<StdioChild>,
        stdin: ChildStdin,
        stdout: ChildStdout,
        stderr: ChildStderr,
    },
    /// A client's call, with its claim on a child's handle.
    Call { job: Job, claim: Handle<Link> },
    /// A client's call to a local server, straight from the reactor: offered to its pool here.
    Submit(Job),
    /// The gateway's own request; the outcome goes to `reply`.
    Request {
        serial: u64,
        method: String,
        params: Option<Map<String, Value>>,
        deadline: Instant,
        reply: Sender<Result<Answer, CallError>>,
    },
    /// A change of what a 2026-07-28 child's `subscriptions/listen` asks for.
    Listen { serial: u64, change: era::Listen },
    /// A request whose answer nobody awaits (dropped when it comes).
    Unawaited {
        serial: u64,
        method: String,
        params: Map<String, Value>,
    },
    /// One whole message (a notification, an answer to the child's request), without its newline.
    Write { serial: u64, line: Vec<u8> },
    /// The reactor's word for call `call` on child `serial`.
    Signal {
        serial: u64,
        call: u64,
        signal: Signal,
    },
    /// Close the child's stdin and fail its calls; the supervisor stops the process.
    Retire { serial: u64 },
}

/// The handle others use to reach child I/O (a channel and the driving poll's waker).
#[derive(Clone)]
pub struct ChildIo {
    tx: Sender<Command>,
    waker: Arc<Waker>,
}

impl ChildIo {
    /// Child I/O for the poll behind `registry` and `waker`: the handle other threads use, and
    /// the loop its driver runs (`IoLoop::ready` for its events, `IoLoop::turn` on every turn).
    /// `max_message` caps one stdout message; `on_event` is called on the driving thread.
    pub fn embedded(
        registry: &Registry,
        waker: Arc<Waker>,
        max_message: usize,
        carrier: Carrier,
        on_event: Box<dyn Fn(ChildEvent) + Send>,
    ) -> io::Result<(ChildIo, IoLoop)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let me = ChildIo { tx, waker };
        let io_loop = IoLoop {
            registry: registry.try_clone()?,
            rx,
            me: me.clone(),
            children: HashMap::new(),
            timers: BTreeSet::new(),
            turns: VecDeque::new(),
            max_message,
            carrier,
            on_event,
            scratch: vec![0; 64 * 1024],
            next: VecDeque::new(),
        };
        Ok((me, io_loop))
    }

    /// Child I/O on a thread and a poll of its own (`mcp-gateway check`, tests): nothing else
    /// drives it.
    pub fn start(
        max_message: usize,
        carrier: Carrier,
        on_event: Box<dyn Fn(ChildEvent) + Send>,
    ) -> io::Result<ChildIo> {
        let mut poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), OWN_WAKER)?);
        let (me, mut io_loop) =
            ChildIo::embedded(poll.registry(), waker, max_message, carrier, on_event)?;
        std::thread::Builder::new()
            .name("child-io".into())
            .spawn(move || io_loop.drive(&mut poll, None))?;
        Ok(me)
    }

    pub fn send(&self, command: Command) {
        if self.tx.send(command).is_ok() {
            crate::job::ring(&self.waker);
        }
    }

    /// Starts watching a freshly spawned child's pipes.
    pub fn attach(
        &self,
        child: Arc<StdioChild>,
        stdin: ChildStdin,
        stdout: ChildStdout,
        stderr: ChildStderr,
    ) {
        self.send(Command::Attach {
            child,
            stdin,
            stdout,
            stderr,
        });
    }

    /// Carries a client's call on a child.
    pub fn call(&self, job: Job, claim: Handle<Link>) {
        self.send(Command::Call { job, claim });
    }

    /// Offers a new job for a local server to its pool in the loop (not through a worker, which
    /// would have nothing to carry for a child; from the reactor, no wake-up at all).
    pub fn submit(&self, job: Job) {
        self.send(Command::Submit(job));
    }
}

/// Where the reactor's signals for one call on a child go.
struct ChildMailbox {
    io: ChildIo,
    serial: u64,
    call: u64,
}

impl Mailbox for ChildMailbox {
    fn post(&self, signal: Signal) {
        self.io.send(Command::Signal {
            serial: self.serial,
            call: self.call,
            signal,
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Stream {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
}

fn token(serial: u64, stream: Stream) -> Token {
    Token(CHILD_TOKENS | ((serial as usize) << 2) | stream as usize)
}

/// Whether an event of the poll is one of a child's pipes (for `IoLoop::ready`).
pub fn owns(token: Token) -> bool {
    token.0 & !(CHILD_TOKENS - 1) == CHILD_TOKENS
}

fn untoken(token: Token) -> Option<(u64, Stream)> {
    if !owns(token) {
        return None;
    }
    let token = Token(token.0 & (CHILD_TOKENS - 1));
    let stream = match token.0 & 3 {
        0 => Stream::Stdin,
        1 => Stream::Stdout,
        2 => Stream::Stderr,
        _ => return None,
    };
    Some(((token.0 >> 2) as u64, stream))
}

/// A request in flight on a child.
enum Pending {
    /// A client's call.
    Client(Box<Flight>),
    /// The gateway's own request.
    Own {
        reply: Sender<Result<Answer, CallError>>,
        deadline: Instant,
    },
}

impl Pending {
    fn deadline(&self) -> Instant {
        match self {
            Pending::Client(flight) => flight.deadline,
            Pending::Own { deadline, .. } => *deadline,
        }
    }
}

/// One line waiting for a child's stdin.
struct Out {
    bytes: Vec<u8>,
    /// The request it carries, so a call that ends before its line left can take it back.
    call: Option<u64>,
}

/// Everything about one running child.
struct ChildState {
    handle: Arc<StdioChild>,
    stdin: Option<pipe::Sender>,
    /// Lines to write; the first may be partly written (`written` bytes of it).
    queue: VecDeque<Out>,
    written: usize,
    queued_bytes: usize,
    stdout: Option<(pipe::Receiver, LineBuf)>,
    stderr: Option<(pipe::Receiver, LineBuf)>,
    calls: HashMap<u64, Pending>,
    next_id: u64,
    /// The last lines the child wrote to stderr: the best clue when it dies.
    tail: VecDeque<String>,
    budget: LogBudget,
    /// When stdout closed.
    closed_at: Option<Instant>,
    retired_at: Option<Instant>,
    /// A `LogReport` timer is set.
    report_scheduled: bool,
    /// How the process ended, once seen (before the supervisor reaps it).
    exit: Option<String>,
    /// A 2026-07-28 child: what its `subscriptions/listen` asks for, and the id of the one in
    /// force (a new one replaces it when the subscription changes).
    subscription: era::Subscription,
    listening: Option<u64>,
}

impl ChildState {
    fn label(&self) -> String {
        self.handle.label()
    }

    fn takes_calls(&self) -> bool {
        self.closed_at.is_none() && self.retired_at.is_none() && self.stdin.is_some()
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends the `subscriptions/listen` for what the subscription asks now, then cancels the one
    /// it replaces (so nothing falls between the two).
    fn relisten(&mut self) {
        let replaced = self.listening.take();
        if let Some(params) = self.subscription.params() {
            let id = self.next_id();
            self.enqueue(
                crate::rpc::request(id, "subscriptions/listen", Some(&params)),
                None,
            );
            self.listening = Some(id);
        }
        if let Some(old) = replaced {
            let params = serde_json::json!({
                "requestId": old,
                "reason": "replaced by a new subscriptions/listen",
            });
            self.enqueue(
                crate::rpc::notification("notifications/cancelled", Some(&params)),
                None,
            );
        }
    }

    fn enqueue(&mut self, mut bytes: Vec<u8>, call: Option<u64>) {
        if self.stdin.is_none() {
            return;
        }
        bytes.push(b'\n');
        self.queued_bytes += bytes.len();
        self.queue.push_back(Out { bytes, call });
        self.flush();
    }

    /// Writes queued lines until the pipe is full. A broken pipe drops the queue: the child is
    /// going, and its stdout closing will end its calls.
    fn flush(&mut self) {
        let Some(stdin) = self.stdin.as_mut() else {
            return;
        };
        while let Some(front) = self.queue.front() {
            match stdin.write(&front.bytes[self.written..]) {
                Ok(n) => {
                    self.written += n;
                    if self.written == front.bytes.len() {
                        self.queued_bytes -= front.bytes.len();
                        self.queue.pop_front();
                        self.written = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{}: writing its stdin failed: {e}", self.handle.label());
                    self.close_stdin();
                    return;
                }
            }
        }
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
        self.queue.clear();
        self.queued_bytes = 0;
        self.written = 0;
    }

    /// Takes call `id`'s line back out of the queue if none of it was written yet.
    fn unqueue(&mut self, id: u64) -> bool {
        let Some(at) = self.queue.iter().position(|o| o.call == Some(id)) else {
            return false;
        };
        if at == 0 && self.written > 0 {
            return false;
        }
        let out = self.queue.remove(at).expect("position is in range");
        self.queued_bytes -= out.bytes.len();
        true
    }

    fn remember_stderr(&mut self, line: &str) {
        if self.tail.len() == STDERR_TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail
            .push_back(line.chars().take(STDERR_TAIL_CHARS).collect());
    }

    /// Why the child is gone, as precisely as can be told now.
    fn death_note(&self) -> String {
        let (name, pid) = (&self.handle.name, self.handle.pid);
        let exit = match &self.exit {
            Some(how) => Some(how.clone()),
            None => match super::process::peek(pid) {
                super::process::Peek::Exited(how) => Some(how),
                _ => None,
            },
        };
        let mut note = match exit {
            Some(how) => format!("server {name} (pid {pid}) {how}"),
            _ if self.retired_at.is_some() && self.closed_at.is_none() => {
                format!("server {name} (pid {pid}) is being stopped")
            }
            _ => format!("server {name} (pid {pid}) closed its output"),
        };
        let tail: Vec<String> = self.tail.iter().cloned().collect();
        if let Some(clue) = logs::best_clue(&tail) {
            note.push_str(&format!("; its stderr said: {clue}"));
        }
        note
    }

    fn stream_mut(&mut self, stream: Stream) -> Option<&mut (pipe::Receiver, LineBuf)> {
        match stream {
            Stream::Stdout => self.stdout.as_mut(),
            Stream::Stderr => self.stderr.as_mut(),
            Stream::Stdin => None,
        }
    }

    /// Nothing is left to do for it: retired (so no command can name it any more, and its death
    /// note stayed available until then), its pipes closed, no call in flight.
    fn finished(&self) -> bool {
        self.retired_at.is_some()
            && self.stdout.is_none()
            && self.stderr.is_none()
            && self.calls.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A request's deadline.
    Deadline { serial: u64, call: u64 },
    /// A paused pipe's next read turn.
    Resume { serial: u64, stdout: bool },
    /// stdout closed: look whether the process has exited yet.
    Death { serial: u64 },
    /// The end of a log window with suppressed lines to report.
    LogReport { serial: u64 },
    /// A retired child's pipes are let go.
    Release { serial: u64 },
}

/// Child I/O's state and its steps; driven by the reactor (or `drive`, on a poll of its own).
pub struct IoLoop {
    registry: Registry,
    rx: Receiver<Command>,
    me: ChildIo,
    children: HashMap<u64, ChildState>,
    timers: BTreeSet<(Instant, Timer)>,
    /// Pipes with data left to read, in turn order.
    turns: VecDeque<(u64, Stream)>,
    max_message: usize,
    carrier: Carrier,
    on_event: Box<dyn Fn(ChildEvent) + Send>,
    scratch: Vec<u8>,
    /// Parked jobs handed back by releases, to start on their handle (no recursion).
    next: VecDeque<(Job, Handle<Link>)>,
}

impl IoLoop {
    /// One of the poll's events for a child's pipe (`owns` said so).
    pub fn ready(&mut self, event: &Event) {
        let Some((serial, stream)) = untoken(event.token()) else {
            return;
        };
        self.guarded(|io| match stream {
            Stream::Stdin => {
                if let Some(child) = io.children.get_mut(&serial) {
                    child.flush();
                }
            }
            _ => {
                if !io.turns.contains(&(serial, stream)) {
                    io.turns.push_back((serial, stream));
                }
            }
        });
    }

    /// Everything there is to do now: the commands sent, a read turn of every pipe with data,
    /// the timers due, the parked jobs handed back. Called on every turn of the driver's loop.
    pub fn turn(&mut self) {
        self.guarded(|io| {
            io.commands();
            io.read_turns();
            io.fire_timers(Instant::now());
            io.run_next();
        });
    }

    /// Whether `turn` has work already (commands waiting, pipes with data left): the driver must
    /// not block in `poll` then.
    pub fn has_work(&self) -> bool {
        !self.turns.is_empty() || !self.rx.is_empty()
    }

    /// When the next timer is due.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Drives the loop on `poll` (whose waker this loop's `ChildIo` rings) on the calling thread:
    /// for ever (`ChildIo::start`), or until `stop` gets word or its deadline passes (the
    /// reactor's poll after the reactor is done, while the supervisor stops the children).
    pub fn drive(&mut self, poll: &mut Poll, stop: Option<(&Receiver<()>, Instant)>) {
        crate::job::drive(&self.me.waker);
        let mut events = Events::with_capacity(256);
        loop {
            if let Some((done, deadline)) = stop {
                let over = !matches!(done.try_recv(), Err(crossbeam_channel::TryRecvError::Empty));
                if over || Instant::now() >= deadline {
                    return;
                }
            }
            let timeout = if self.has_work() {
                Some(Duration::ZERO)
            } else {
                let timer = self
                    .next_timer()
                    .map(|at| at.saturating_duration_since(Instant::now()));
                match stop {
                    Some(_) => Some(timer.map_or(STOP_CHECK, |t| t.min(STOP_CHECK))),
                    None => timer,
                }
            };
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("child-io: poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            for event in events.iter() {
                if owns(event.token()) {
                    self.ready(event);
                }
            }
            self.turn();
        }
    }

    /// Runs one step; a panic in it fails every call and starts the loop afresh (`reset`).
    fn guarded(&mut self, step: impl FnOnce(&mut IoLoop)) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| step(self))) {
            log::error!(
                "child-io: internal error ({}); failing its calls and starting afresh",
                crate::panics::describe(&*panic)
            );
            self.reset();
        }
    }

    /// After a panic: every flight fails, every child loses its pipes (and so dies and is
    /// replaced by its pool); the loop's state starts empty.
    fn reset(&mut self) {
        let children: Vec<ChildState> = self.children.drain().map(|(_, c)| c).collect();
        for mut child in children {
            child.handle.mark_dead();
            (self.on_event)(ChildEvent::Closed {
                server: child.handle.server,
                serial: child.handle.serial,
            });
            for (_, pending) in child.calls.drain() {
                let error = CallError::Closed("internal error in the gateway's child I/O".into());
                match pending {
                    Pending::Client(flight) => {
                        let _ = catch_unwind(AssertUnwindSafe(|| {
                            flight.fail(error, &child.handle.name)
                        }));
                    }
                    Pending::Own { reply, .. } => {
                        let _ = reply.send(Err(error));
                    }
                }
            }
        }
        self.timers.clear();
        self.turns.clear();
        self.next.clear();
    }

    fn commands(&mut self) {
        while let Ok(command) = self.rx.try_recv() {
            self.command(command);
            self.run_next();
        }
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Attach {
                child,
                stdin,
                stdout,
                stderr,
            } => self.attach(child, stdin, stdout, stderr, now),
            Command::Call { job, claim } => self.start_call(job, claim, now),
            Command::Submit(job) => self.submit(job, now),
            Command::Request {
                serial,
                method,
                params,
                deadline,
                reply,
            } => {
                let Some(child) = self.children.get_mut(&serial).filter(|c| c.takes_calls()) else {
                    let note = self.gone_note(serial);
                    let _ = reply.send(Err(CallError::Closed(note)));
                    return;
                };
                let id = child.next_id();
                child.calls.insert(id, Pending::Own { reply, deadline });
                let line = crate::rpc::request(id, &method, params.as_ref());
                child.enqueue(line, Some(id));
                self.timers
                    .insert((deadline, Timer::Deadline { serial, call: id }));
            }
            Command::Unawaited {
                serial,
                method,
                params,
            } => {
                if let Some(child) = self.children.get_mut(&serial).filter(|c| c.takes_calls()) {
                    let id = child.next_id();
                    let line = crate::rpc::request(id, &method, Some(&params));
                    child.enqueue(line, None);
                }
            }
            Command::Listen { serial, change } => {
                if let Some(child) = self.children.get_mut(&serial).filter(|c| c.takes_calls()) {
                    if child.subscription.apply(change) {
                        child.relisten();
                    }
                }
            }
            Command::Write { serial, line } => {
                if let Some(child) = self.children.get_mut(&serial) {
                    child.enqueue(line, None);
                }
            }
            Command::Signal {
                serial,
                call,
                signal,
            } => self.signal(serial, call, signal),
            Command::Retire { serial } => self.retire(serial, now),
        }
    }

    fn attach(
        &mut self,
        handle: Arc<StdioChild>,
        stdin: ChildStdin,
        stdout: ChildStdout,
        stderr: ChildStderr,
        now: Instant,
    ) {
        let serial = handle.serial;
        let registry = &self.registry;
        let mut stdin = pipe::Sender::from(stdin);
        let mut stdout = pipe::Receiver::from(stdout);
        let mut stderr = pipe::Receiver::from(stderr);
        let registered = stdin
            .set_nonblocking(true)
            .and_then(|_| stdout.set_nonblocking(true))
            .and_then(|_| stderr.set_nonblocking(true))
            .and_then(|_| {
                registry.register(&mut stdin, token(serial, Stream::Stdin), Interest::WRITABLE)
            })
            .and_then(|_| {
                registry.register(
                    &mut stdout,
                    token(serial, Stream::Stdout),
                    Interest::READABLE,
                )
            })
            .and_then(|_| {
                registry.register(
                    &mut stderr,
                    token(serial, Stream::Stderr),
                    Interest::READABLE,
                )
            });
        if let Err(e) = registered {
            log::error!("{}: cannot watch its pipes: {e}", handle.label());
            handle.mark_dead();
            (self.on_event)(ChildEvent::Closed {
                server: handle.server,
                serial,
            });
            return;
        }
        self.children.insert(
            serial,
            ChildState {
                handle,
                stdin: Some(stdin),
                queue: VecDeque::new(),
                written: 0,
                queued_bytes: 0,
                stdout: Some((stdout, LineBuf::default())),
                stderr: Some((stderr, LineBuf::default())),
                calls: HashMap::new(),
                next_id: 0,
                tail: VecDeque::new(),
                budget: LogBudget::new(now),
                closed_at: None,
                retired_at: None,
                report_scheduled: false,
                exit: None,
                subscription: era::Subscription::default(),
                listening: None,
            },
        );
        // Data may already be waiting; edge-triggered polling would not report it again.
        self.turns.push_back((serial, Stream::Stdout));
        self.turns.push_back((serial, Stream::Stderr));
    }

    /// Puts a client's call on its child: a fresh id (also its progress token), the line queued.
    fn start_call(&mut self, job: Job, claim: Handle<Link>, now: Instant) {
        let serial = claim.member.serial();
        let (flight, params) = Flight::new(job, claim, &self.carrier, now);
        // A child that is gone is `send_call`'s to tell; one whose queue is full is refused here.
        if let Some(child) = self
            .children
            .get(&serial)
            .filter(|c| c.takes_calls() && c.queued_bytes > MAX_QUEUED)
        {
            let failure = Failure::BadGateway(format!(
                "server {} is not reading its input ({} bytes wait to be written to it)",
                child.handle.name, child.queued_bytes
            ));
            let next = flight.fail_with(&failure);
            self.queue_next(next);
            return;
        }
        self.send_call(serial, Box::new(flight), params);
    }

    /// Sends a call to its child under a fresh id (also its progress token).
    fn send_call(&mut self, serial: u64, flight: Box<Flight>, mut params: crate::rpc::Params) {
        let Some(child) = self.children.get_mut(&serial).filter(|c| c.takes_calls()) else {
            let note = self.gone_note(serial);
            let name = flight.server_name().to_string();
            let next = flight.fail(CallError::Closed(note), &name);
            self.queue_next(next);
            return;
        };
        let id = child.next_id();
        let mailbox = Arc::new(ChildMailbox {
            io: self.me.clone(),
            serial,
            call: id,
        });
        if !flight.start(mailbox) {
            let next = flight.cancelled();
            self.queue_next(next);
            return;
        }
        if flight.wants_progress() {
            params.set_progress_token(Value::from(id));
        }
        let line = crate::rpc::request(id, flight.method, Some(&params));
        let deadline = flight.deadline;
        child.calls.insert(id, Pending::Client(flight));
        child.enqueue(line, Some(id));
        self.timers
            .insert((deadline, Timer::Deadline { serial, call: id }));
    }

    /// A new job for a local server: started at once when its pool has room (a parked one comes
    /// back through a release or a new handle).
    fn submit(&mut self, job: Job, now: Instant) {
        match self.carrier.submit(job, now) {
            Some((job, claim)) if matches!(claim.member, Link::Stdio(_)) => {
                self.start_call(job, claim, now)
            }
            // Moved to a server a reload made remote: a worker carries those.
            Some((job, claim)) => {
                let _ = self
                    .carrier
                    .workers
                    .send(super::flight::WorkerMsg::Run(job, claim));
            }
            None => {}
        }
    }

    /// A 2026-07-28 child answered a 2025 client's call `input_required`: each of its input
    /// requests goes to that client (as a 2025 server's own request would), and the call waits
    /// under its id for the answers.
    fn ask_for_input(&mut self, serial: u64, call: u64, mut flight: Box<Flight>, result: &str) {
        let Some(child) = self.children.get_mut(&serial) else {
            return;
        };
        let handle = child.handle.clone();
        let rounds = flight
            .rounds
            .as_mut()
            .expect("only flights with rounds get here");
        let round = match era::input_round(result, rounds) {
            Ok(round) => round,
            Err(why) => {
                let failure = Failure::BadGateway(format!("server {}: {why}", handle.name));
                let next = flight.fail_with(&failure);
                return self.queue_next(next);
            }
        };
        if round.requests.is_empty() {
            return self.send_again(serial, flight);
        }
        for (key, method, params) in round.requests {
            let mailbox = Arc::new(ChildMailbox {
                io: self.me.clone(),
                serial,
                call,
            });
            let id = era::input_id(&key);
            flight.ask_client(&*handle, mailbox, id, method, params);
        }
        let deadline = flight.deadline;
        child.calls.insert(call, Pending::Client(flight));
        self.timers
            .insert((deadline, Timer::Deadline { serial, call }));
    }

    /// The client answered one input request of a call waiting in `ask_for_input`.
    fn input_answered(
        &mut self,
        serial: u64,
        call: u64,
        key: String,
        outcome: Result<Value, Value>,
    ) {
        let Some(child) = self.children.get_mut(&serial) else {
            return;
        };
        let rounds = match child.calls.get_mut(&call) {
            Some(Pending::Client(flight)) => match flight.rounds.as_mut() {
                Some(rounds) if rounds.waits_for(&key) => rounds,
                _ => return,
            },
            _ => return, // the call ended meanwhile
        };
        match outcome {
            Ok(answer) => {
                if !rounds.answered(&key, answer) {
                    return;
                }
                let Some(pending) = child.calls.remove(&call) else {
                    return;
                };
                unschedule(&mut self.timers, serial, call, &pending);
                if let Pending::Client(flight) = pending {
                    self.send_again(serial, flight);
                }
            }
            // The client could not or would not answer: that is the call's answer.
            Err(error) => {
                let Some(pending) = child.calls.remove(&call) else {
                    return;
                };
                unschedule(&mut self.timers, serial, call, &pending);
                if let Pending::Client(flight) = pending {
                    let next = flight.answer_client_error(&error);
                    self.queue_next(next);
                }
            }
        }
    }

    /// The call again with the client's answers (`inputResponses`) and the server's state.
    fn send_again(&mut self, serial: u64, mut flight: Box<Flight>) {
        let params = flight.retry_params();
        self.send_call(serial, flight, params);
    }

    fn queue_next(&mut self, next: Next) {
        if let Some(next) = next {
            self.next.push_back(next);
        }
    }

    fn run_next(&mut self) {
        while let Some((job, claim)) = self.next.pop_front() {
            self.start_call(job, claim, Instant::now());
        }
    }

    fn signal(&mut self, serial: u64, call: u64, signal: Signal) {
        let Some(child) = self.children.get_mut(&serial) else {
            return;
        };
        match signal {
            Signal::Resume {
                to,
                answer,
                child_id,
                outcome,
            } => {
                if let Some(Pending::Client(flight)) = child.calls.get_mut(&call) {
                    flight.resume(to, answer);
                    let line = super::response_to(&child_id, outcome.as_ref());
                    child.enqueue(line, None);
                }
            }
            Signal::ClientAnswer { child_id, outcome } => {
                if let Some(key) = era::input_key(&child_id) {
                    return self.input_answered(serial, call, key.to_string(), outcome);
                }
                let line = super::response_to(&child_id, outcome.as_ref());
                child.enqueue(line, None);
            }
            Signal::Cancelled => {
                if !matches!(child.calls.get(&call), Some(Pending::Client(_))) {
                    return; // ended already
                }
                let Some(pending) = child.calls.remove(&call) else {
                    return;
                };
                unschedule(&mut self.timers, serial, call, &pending);
                let Pending::Client(flight) = pending else {
                    return;
                };
                if !child.unqueue(call) {
                    cancel_downstream(child, call, "cancelled by the client");
                }
                let next = flight.cancelled();
                self.queue_next(next);
            }
        }
    }

    fn retire(&mut self, serial: u64, now: Instant) {
        let Some(child) = self.children.get_mut(&serial) else {
            return;
        };
        child.handle.mark_dead();
        child.retired_at = Some(now);
        child.close_stdin();
        self.fail_all(serial, None);
        self.timers
            .insert((now + RETIRED_LIMIT, Timer::Release { serial }));
        self.forget_if_finished(serial);
    }

    /// Ends every call on a child with `error` (default: its death note).
    fn fail_all(&mut self, serial: u64, error: Option<CallError>) {
        let Some(child) = self.children.get_mut(&serial) else {
            return;
        };
        let error = error.unwrap_or_else(|| CallError::Closed(child.death_note()));
        let name = child.handle.name.clone();
        let calls: Vec<(u64, Pending)> = child.calls.drain().collect();
        for (call, pending) in calls {
            unschedule(&mut self.timers, serial, call, &pending);
            match pending {
                Pending::Client(flight) => {
                    let next = flight.fail(error.clone(), &name);
                    self.queue_next(next);
                }
                Pending::Own { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    fn gone_note(&self, serial: u64) -> String {
        match self.children.get(&serial) {
            Some(child) => child.death_note(),
            None => "the server process is gone".into(),
        }
    }

    /// Gives each pipe with data one turn of at most `READ_TURN` bytes.
    fn read_turns(&mut self) {
        let now = Instant::now();
        for _ in 0..self.turns.len() {
            let Some((serial, stream)) = self.turns.pop_front() else {
                break;
            };
            match self.read_turn(serial, stream, now) {
                TurnEnd::Drained | TurnEnd::Gone => {}
                TurnEnd::More => {
                    let flooding = self
                        .children
                        .get(&serial)
                        .is_some_and(|c| c.budget.report_due().is_some());
                    if flooding {
                        let stdout = stream == Stream::Stdout;
                        self.timers
                            .insert((now + FLOOD_PAUSE, Timer::Resume { serial, stdout }));
                    } else {
                        self.turns.push_back((serial, stream));
                    }
                }
            }
        }
    }

    fn read_turn(&mut self, serial: u64, stream: Stream, now: Instant) -> TurnEnd {
        let mut taken = 0;
        while taken < READ_TURN {
            let Some(child) = self.children.get_mut(&serial) else {
                return TurnEnd::Gone;
            };
            let Some((source, _)) = child.stream_mut(stream) else {
                return TurnEnd::Gone;
            };
            match source.read(&mut self.scratch) {
                Ok(0) => {
                    self.close_stream(serial, stream, now);
                    return TurnEnd::Gone;
                }
                Ok(n) => {
                    taken += n;
                    let chunk = std::mem::take(&mut self.scratch);
                    self.feed(serial, stream, &chunk[..n], now);
                    self.scratch = chunk;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return TurnEnd::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("{}: reading its {stream:?} failed: {e}", child.label());
                    self.close_stream(serial, stream, now);
                    return TurnEnd::Gone;
                }
            }
        }
        TurnEnd::More
    }

    fn feed(&mut self, serial: u64, stream: Stream, chunk: &[u8], now: Instant) {
        let limit = match stream {
            Stream::Stdout => self.max_message,
            _ => MAX_STDERR_LINE,
        };
        // Taken out while its lines are handled, so handling may touch everything else.
        let Some(mut buf) = self
            .children
            .get_mut(&serial)
            .and_then(|c| c.stream_mut(stream))
            .map(|(_, buf)| std::mem::take(buf))
        else {
            return;
        };
        buf.feed(chunk, limit, |piece| match piece {
            Piece::Line(line) => self.line(serial, stream, line, now),
            Piece::TooLong { head } => self.too_long(serial, stream, &head, limit, now),
        });
        if let Some((_, slot)) = self
            .children
            .get_mut(&serial)
            .and_then(|c| c.stream_mut(stream))
        {
            *slot = buf;
        }
    }

    fn close_stream(&mut self, serial: u64, stream: Stream, now: Instant) {
        let Some(child) = self.children.get_mut(&serial) else {
            return;
        };
        let taken = match stream {
            Stream::Stdout => child.stdout.take(),
            Stream::Stderr => child.stderr.take(),
            Stream::Stdin => None,
        };
        let Some((mut source, mut buf)) = taken else {
            return;
        };
        let _ = self.registry.deregister(&mut source);
        if let Some(last) = buf.rest() {
            self.line(serial, stream, &last, now);
        }
        if stream == Stream::Stdout {
            let Some(child) = self.children.get_mut(&serial) else {
                return;
            };
            log::debug!("{}: stdout closed", child.label());
            child.handle.mark_dead();
            child.closed_at = Some(now);
            if let Some(mut stdin) = child.stdin.take() {
                let _ = self.registry.deregister(&mut stdin);
            }
            child.close_stdin();
            // The supervisor hears of it once the exit status is known (or `DEATH_WAIT` passed):
            // it must not reap the process before the status went into the calls' errors.
            self.timers.insert((now, Timer::Death { serial }));
        }
        self.forget_if_finished(serial);
    }

    fn forget_if_finished(&mut self, serial: u64) {
        if self.children.get(&serial).is_some_and(ChildState::finished) {
            if let Some(mut child) = self.children.remove(&serial) {
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = self.registry.deregister(&mut stdin);
                }
                let n = child.budget.take_suppressed();
                report_suppressed(&child, n);
            }
        }
    }

    fn line(&mut self, serial: u64, stream: Stream, line: &[u8], now: Instant) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match stream {
            Stream::Stdout => {
                if !line.iter().all(u8::is_ascii_whitespace) {
                    self.message(serial, line, now);
                }
            }
            _ => self.stderr_line(serial, line, now),
        }
    }

    fn stderr_line(&mut self, serial: u64, line: &[u8], now: Instant) {
        let Some(child) = self.children.get_mut(&serial) else {
            return;
        };
        let text = printable(line);
        if text.is_empty() {
            return;
        }
        child.remember_stderr(&text);
        if let Some(label) = self.admit_log(serial, now) {
            log::info!(target: "mcp_gateway::child", "{label}: {text}");
        }
    }

    /// Whether a child's log line may go out now (the child's label if so); reports what was
    /// suppressed before it.
    fn admit_log(&mut self, serial: u64, now: Instant) -> Option<String> {
        let child = self.children.get_mut(&serial)?;
        match child.budget.judge(now) {
            Verdict::Log { suppressed_before } => {
                report_suppressed(child, suppressed_before);
                Some(child.label())
            }
            Verdict::Suppress => {
                if let Some(due) = child.budget.report_due() {
                    if !child.report_scheduled {
                        child.report_scheduled = true;
                        log::warn!(
                            "{}: writes more than {} log lines in {} s; further lines are counted, not logged",
                            child.label(),
                            logs::LINES_PER_WINDOW,
                            logs::WINDOW.as_secs()
                        );
                        self.timers.insert((due, Timer::LogReport { serial }));
                    }
                }
                None
            }
        }
    }

    fn message(&mut self, serial: u64, line: &[u8], now: Instant) {
        let Some(message) = Message::parse(line) else {
            if let Some(label) = self.admit_log(serial, now) {
                let preview = printable(&line[..line.len().min(JUNK_PREVIEW)]);
                log::warn!("{label}: ignoring a stdout line that is not JSON-RPC: {preview}");
            }
            return;
        };
        let Some(child) = self.children.get_mut(&serial) else {
            return;
        };
        match message {
            Message::Response { id, outcome } => {
                let pending = id.as_u64().and_then(|call| {
                    let pending = child.calls.remove(&call)?;
                    unschedule(&mut self.timers, serial, call, &pending);
                    Some((call, pending))
                });
                match pending {
                    Some((call, Pending::Client(flight)))
                        if flight.rounds.is_some()
                            && outcome
                                .as_ref()
                                .is_ok_and(|r| era::is_input_required(r.get())) =>
                    {
                        let result = outcome
                            .as_ref()
                            .map(|r| r.get().to_string())
                            .unwrap_or_default();
                        self.ask_for_input(serial, call, flight, &result);
                    }
                    Some((_, Pending::Client(flight))) => {
                        let next = flight.answer(outcome.as_deref().map_err(|e| &**e));
                        self.queue_next(next);
                    }
                    Some((_, Pending::Own { reply, .. })) => {
                        let _ = reply.send(Ok(outcome));
                    }
                    None if id.as_u64().is_some() && id.as_u64() == child.listening => {
                        // The server ended the subscription (or refused it): its lists and
                        // resources are no longer watched on this handle.
                        child.listening = None;
                        match &outcome {
                            Err(error) => log::warn!(
                                "{}: refused subscriptions/listen ({}); changes to its lists and \
                                 resources will not be seen",
                                child.label(),
                                error.get()
                            ),
                            // What a server shutting down does: its process ends next.
                            Ok(_) => {
                                log::info!("{}: ended its subscriptions/listen", child.label())
                            }
                        }
                    }
                    None => {
                        log::debug!("{}: dropping a late answer to request {id}", child.label())
                    }
                }
            }
            Message::Notification { method, params } => {
                if method == "notifications/progress" {
                    let params = params.unwrap_or_default();
                    let token = params.get("progressToken").and_then(Value::as_u64);
                    match token.and_then(|t| child.calls.get(&t)) {
                        Some(Pending::Client(flight)) => flight.progress(params),
                        _ => log::debug!("{}: progress for no call in flight", child.label()),
                    }
                    return;
                }
                if method == "notifications/message" {
                    // stdio names no request: a log message is a call's only while it is the
                    // child's one call in flight.
                    let mut flights = child.calls.values().filter_map(|p| match p {
                        Pending::Client(flight) => Some(flight),
                        Pending::Own { .. } => None,
                    });
                    if let (Some(flight), None, Some(params)) =
                        (flights.next(), flights.next(), params.as_ref())
                    {
                        flight.log(params);
                    }
                    // A 2026-07-28 server's log messages are request-scoped: never for every
                    // session that set a level (a 2025 server's are).
                    if crate::downstream::Requester::modern(&*child.handle) {
                        let params = params.unwrap_or_default();
                        crate::downstream::message::log_server_message(&child.label(), &params);
                        return;
                    }
                }
                let label = child.label();
                let server = child.handle.server;
                if let Some(event) = notification_event(server, serial, &label, &method, params) {
                    (self.on_event)(event);
                }
            }
            Message::Request { id, method, params } => {
                // The handle's own `Requester` queues the answer back here, like any other line.
                let handle = child.handle.clone();
                // To the one client with calls here (a 2026-07-28 client's call is suspended
                // instead: `ask_client`).
                let flights = child.calls.iter().filter_map(|(call, p)| match p {
                    Pending::Client(flight) => Some((*call, &**flight)),
                    Pending::Own { .. } => None,
                });
                match sole_client(flights).map(|(call, _)| call) {
                    Ok(call) => {
                        let mailbox = Arc::new(ChildMailbox {
                            io: self.me.clone(),
                            serial,
                            call,
                        });
                        if let Some(Pending::Client(flight)) = child.calls.get_mut(&call) {
                            flight.ask_client(&*handle, mailbox, id, method, params);
                        }
                    }
                    Err(why) => why.answer(&*handle, &id, &method),
                }
            }
        }
    }

    fn too_long(&mut self, serial: u64, stream: Stream, head: &[u8], limit: usize, now: Instant) {
        if stream != Stream::Stdout {
            // A huge stderr line is logged in part and otherwise ignored.
            self.stderr_line(serial, head, now);
            return;
        }
        let Some(child) = self.children.get_mut(&serial) else {
            return;
        };
        log::warn!(
            "{}: a message on stdout exceeds maxMessageBytes ({limit} bytes); discarded",
            child.label()
        );
        let error = CallError::TooLarge(limit);
        match leading_id(head).filter(|id| child.calls.contains_key(id)) {
            Some(id) => {
                let name = child.handle.name.clone();
                let pending = child.calls.remove(&id);
                if let Some(pending) = &pending {
                    unschedule(&mut self.timers, serial, id, pending);
                }
                match pending {
                    Some(Pending::Client(flight)) => {
                        let next = flight.fail(error, &name);
                        self.queue_next(next);
                    }
                    Some(Pending::Own { reply, .. }) => {
                        let _ = reply.send(Err(error));
                    }
                    None => {}
                }
            }
            // Whose it was cannot be told: every call on the child may be the one.
            None => self.fail_all(serial, Some(error)),
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&(at, _)) = self.timers.first() {
            if at > now {
                return;
            }
            let Some((_, timer)) = self.timers.pop_first() else {
                return;
            };
            match timer {
                Timer::Deadline { serial, call } => self.deadline(serial, call, now),
                Timer::Resume { serial, stdout } => {
                    let stream = if stdout {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    };
                    if !self.turns.contains(&(serial, stream)) {
                        self.turns.push_back((serial, stream));
                    }
                }
                Timer::Death { serial } => {
                    let Some(child) = self.children.get_mut(&serial) else {
                        continue;
                    };
                    let exited = match super::process::peek(child.handle.pid) {
                        super::process::Peek::Exited(how) => {
                            child.exit = Some(how);
                            true
                        }
                        super::process::Peek::Gone => true,
                        super::process::Peek::Running => false,
                    };
                    let waited = child
                        .closed_at
                        .is_some_and(|at| now.saturating_duration_since(at) >= DEATH_WAIT);
                    if exited || waited {
                        let server = child.handle.server;
                        child.handle.set_death_note(child.death_note());
                        self.fail_all(serial, None);
                        (self.on_event)(ChildEvent::Closed { server, serial });
                        self.forget_if_finished(serial);
                    } else {
                        self.timers
                            .insert((now + DEATH_POLL, Timer::Death { serial }));
                    }
                }
                Timer::LogReport { serial } => {
                    if let Some(child) = self.children.get_mut(&serial) {
                        child.report_scheduled = false;
                        let n = child.budget.flush(now);
                        report_suppressed(child, n);
                    }
                }
                Timer::Release { serial } => {
                    if let Some(child) = self.children.get_mut(&serial) {
                        for (mut source, _) in [child.stdout.take(), child.stderr.take()]
                            .into_iter()
                            .flatten()
                        {
                            let _ = self.registry.deregister(&mut source);
                        }
                        log::debug!("{}: letting go of its pipes", child.label());
                    }
                    self.forget_if_finished(serial);
                }
            }
        }
    }

    /// A request's deadline passed (if it is still in flight).
    fn deadline(&mut self, serial: u64, call: u64, now: Instant) {
        let Some(child) = self.children.get_mut(&serial) else {
            return;
        };
        if child.calls.get(&call).is_none_or(|p| p.deadline() > now) {
            return;
        }
        let Some(pending) = child.calls.remove(&call) else {
            return;
        };
        let error = if child.unqueue(call) {
            CallError::Stalled
        } else {
            cancel_downstream(child, call, "timed out");
            CallError::Timeout
        };
        match pending {
            Pending::Client(flight) => {
                let name = child.handle.name.clone();
                let next = flight.fail(error, &name);
                self.queue_next(next);
            }
            Pending::Own { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

enum TurnEnd {
    /// The pipe would block: wait for its next event.
    Drained,
    /// The turn's budget is used up with data left: take another turn later.
    More,
    /// The pipe closed or its child is gone.
    Gone,
}

/// Forgets the deadline of a request that ended otherwise.
fn unschedule(timers: &mut BTreeSet<(Instant, Timer)>, serial: u64, call: u64, pending: &Pending) {
    timers.remove(&(pending.deadline(), Timer::Deadline { serial, call }));
}

/// Tells the child to stop working on request `call`; its late answer will be dropped.
fn cancel_downstream(child: &mut ChildState, call: u64, reason: &str) {
    let params = serde_json::json!({ "requestId": call, "reason": reason });
    let line = crate::rpc::notification("notifications/cancelled", Some(&params));
    child.enqueue(line, None);
}

fn report_suppressed(child: &ChildState, n: u64) {
    if n > 0 {
        log::warn!(
            "server {}: {} lines suppressed",
            child.handle.name,
            thousands(n)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command as Process, Stdio};

    #[test]
    fn a_panic_in_a_step_fails_its_calls_and_the_loop_serves_on() {
        let rig = crate::downstream::flight::tests::rig();
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), OWN_WAKER).unwrap());
        let (events, heard) = crossbeam_channel::unbounded();
        let (io, mut io_loop) = ChildIo::embedded(
            poll.registry(),
            waker,
            1024,
            rig.carrier.clone(),
            Box::new(move |event| events.send(event).unwrap()),
        )
        .unwrap();
        let mut process = Process::new("sleep")
            .arg("30")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let child = Arc::new(StdioChild::new(0, "t".into(), 1, process.id(), io.clone()));
        io.attach(
            child.clone(),
            process.stdin.take().unwrap(),
            process.stdout.take().unwrap(),
            process.stderr.take().unwrap(),
        );
        let ask = || {
            let (reply, answer) = crossbeam_channel::bounded(1);
            io.send(Command::Request {
                serial: 1,
                method: "ping".into(),
                params: None,
                deadline: Instant::now() + Duration::from_secs(60),
                reply,
            });
            answer
        };
        let answer = ask();
        io_loop.turn();
        assert!(answer.try_recv().is_err(), "in flight on the child");
        assert!(io_loop.next_timer().is_some(), "its deadline is set");

        io_loop.guarded(|_| panic!("a bug in a step"));
        match answer.try_recv() {
            Ok(Err(CallError::Closed(why))) => assert!(why.contains("internal error"), "{why}"),
            other => panic!("the call must fail at once: {other:?}"),
        }
        assert_eq!(
            heard.try_recv().unwrap(),
            ChildEvent::Closed {
                server: 0,
                serial: 1
            }
        );
        assert!(!child.is_alive(), "the pool is told to replace it");
        assert!(!io_loop.has_work() && io_loop.next_timer().is_none());

        let again = ask();
        assert!(io_loop.has_work(), "the command waits for the next turn");
        io_loop.turn();
        assert!(
            matches!(again.try_recv(), Ok(Err(CallError::Closed(_)))),
            "the loop still answers commands (this child is gone from it)"
        );
        let _ = process.kill();
        let _ = process.wait();
    }
}
