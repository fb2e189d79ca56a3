//! The child-I/O thread: owns the read side of every child's stdout and stderr in one mio `Poll`.
//!
//! Because one thread watches every pipe all the time, a crash is seen the moment stdout closes (even
//! for an idle child), notifications from idle children are not missed, and stderr never fills up and
//! blocks a child. stdout is split into lines: answers and progress go to the owning handle's inbox,
//! the child's own requests (`ping`, `roots/list`) are answered here, junk lines are logged and
//! skipped, and a line over `maxMessageBytes` is discarded with an error to the waiting caller.
//! stderr lines are logged with the server's name.
//!
//! Invariant: this thread never blocks on anything but `poll`, except for writing a short answer to a
//! child's request, which waits at most a second for pipe space.

use super::message::{notification_event, Message};
use super::stdio::{Inbound, StdioChild};
use super::Requester;
use crossbeam_channel::{Receiver, Sender};
use mio::unix::pipe;
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::{Map, Value};
use slab::Slab;
use std::io::{self, Read};
use std::process::{ChildStderr, ChildStdout};
use std::sync::Arc;
use std::time::Duration;

const WAKER: Token = Token(usize::MAX);
/// A stderr line longer than this is logged in pieces.
const MAX_STDERR_LINE: usize = 64 * 1024;
/// How much of a junk stdout line goes into the log.
const JUNK_PREVIEW: usize = 200;

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

/// The handle other threads use to give the child-I/O thread new pipes.
pub struct ChildIo {
    tx: Sender<Attach>,
    waker: Arc<Waker>,
}

struct Attach {
    child: Arc<StdioChild>,
    stdout: ChildStdout,
    stderr: ChildStderr,
}

impl ChildIo {
    /// Starts the thread. `max_message` caps one stdout message; `on_event` is called on the thread.
    pub fn start(
        max_message: usize,
        on_event: Box<dyn Fn(ChildEvent) + Send>,
    ) -> io::Result<ChildIo> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut io_loop = IoLoop {
            poll,
            rx,
            pipes: Slab::new(),
            max_message,
            on_event,
            scratch: vec![0; 64 * 1024],
        };
        std::thread::Builder::new()
            .name("child-io".into())
            .spawn(move || io_loop.run())?;
        Ok(ChildIo { tx, waker })
    }

    /// Starts watching a freshly spawned child's output.
    pub fn attach(&self, child: Arc<StdioChild>, stdout: ChildStdout, stderr: ChildStderr) {
        if self
            .tx
            .send(Attach {
                child,
                stdout,
                stderr,
            })
            .is_ok()
        {
            let _ = self.waker.wake();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

struct Pipe {
    child: Arc<StdioChild>,
    stream: Stream,
    source: pipe::Receiver,
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// Skipping the rest of a line that went over the limit.
    discarding: bool,
}

struct IoLoop {
    poll: Poll,
    rx: Receiver<Attach>,
    pipes: Slab<Pipe>,
    max_message: usize,
    on_event: Box<dyn Fn(ChildEvent) + Send>,
    scratch: Vec<u8>,
}

impl IoLoop {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("child-io: poll failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => self.attach_new(),
                    Token(key) => self.read(key),
                }
            }
        }
    }

    fn attach_new(&mut self) {
        while let Ok(Attach {
            child,
            stdout,
            stderr,
        }) = self.rx.try_recv()
        {
            self.add(child.clone(), Stream::Stdout, pipe::Receiver::from(stdout));
            self.add(child, Stream::Stderr, pipe::Receiver::from(stderr));
        }
    }

    fn add(&mut self, child: Arc<StdioChild>, stream: Stream, mut source: pipe::Receiver) {
        let entry = self.pipes.vacant_entry();
        let token = Token(entry.key());
        let registered = source.set_nonblocking(true).and_then(|_| {
            self.poll
                .registry()
                .register(&mut source, token, Interest::READABLE)
        });
        if let Err(e) = registered {
            log::error!("{}: cannot watch its {stream:?}: {e}", child.label());
            if stream == Stream::Stdout {
                child.deliver_all(|| Inbound::Closed);
            }
            return;
        }
        entry.insert(Pipe {
            child,
            stream,
            source,
            line: Vec::new(),
            discarding: false,
        });
        // Data may already be waiting; edge-triggered polling would not report it again.
        self.read(token.0);
    }

    /// Reads until the pipe would block, handling every complete line.
    fn read(&mut self, key: usize) {
        loop {
            let Some(pipe) = self.pipes.get_mut(key) else {
                return; // a sporadic event for a pipe already closed
            };
            match pipe.source.read(&mut self.scratch) {
                Ok(0) => return self.close(key),
                Ok(n) => {
                    let chunk = &self.scratch[..n];
                    feed(pipe, chunk, self.max_message, &*self.on_event);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!(
                        "{}: reading its {:?} failed: {e}",
                        pipe.child.label(),
                        pipe.stream
                    );
                    return self.close(key);
                }
            }
        }
    }

    fn close(&mut self, key: usize) {
        let mut pipe = self.pipes.remove(key);
        let _ = self.poll.registry().deregister(&mut pipe.source);
        if !pipe.line.is_empty() && !pipe.discarding {
            let last = std::mem::take(&mut pipe.line);
            handle_line(&pipe, &last, &*self.on_event);
        }
        if pipe.stream == Stream::Stdout {
            log::debug!("{}: stdout closed", pipe.child.label());
            pipe.child.deliver_all(|| Inbound::Closed);
            (self.on_event)(ChildEvent::Closed {
                server: pipe.child.server,
                serial: pipe.child.serial,
            });
        }
    }
}

/// Splits a chunk into lines, enforcing the per-message limit.
fn feed(pipe: &mut Pipe, mut chunk: &[u8], max_message: usize, on_event: &dyn Fn(ChildEvent)) {
    let limit = match pipe.stream {
        Stream::Stdout => max_message,
        Stream::Stderr => MAX_STDERR_LINE,
    };
    while !chunk.is_empty() {
        match chunk.iter().position(|&b| b == b'\n') {
            Some(end) => {
                if pipe.discarding {
                    pipe.discarding = false;
                } else if pipe.line.is_empty() {
                    handle_line(pipe, &chunk[..end], on_event);
                } else {
                    let mut line = std::mem::take(&mut pipe.line);
                    line.extend_from_slice(&chunk[..end]);
                    handle_line(pipe, &line, on_event);
                    line.clear();
                    pipe.line = line; // keep the allocation for the next long line
                    shrink(&mut pipe.line);
                }
                chunk = &chunk[end + 1..];
            }
            None => {
                if !pipe.discarding {
                    pipe.line.extend_from_slice(chunk);
                    if pipe.line.len() > limit {
                        over_limit(pipe, limit);
                    }
                }
                return;
            }
        }
    }
}

fn over_limit(pipe: &mut Pipe, limit: usize) {
    match pipe.stream {
        Stream::Stdout => {
            log::warn!(
                "{}: a message on stdout exceeds maxMessageBytes ({limit} bytes); discarded",
                pipe.child.label()
            );
            pipe.discarding = true;
            pipe.line = Vec::new();
            pipe.child.deliver_all(|| Inbound::TooLarge { limit });
        }
        Stream::Stderr => {
            let line = std::mem::take(&mut pipe.line);
            log_stderr(&pipe.child, &line);
        }
    }
}

/// Gives back memory after an unusually large message.
fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() > 1024 * 1024 {
        *buf = Vec::new();
    }
}

fn handle_line(pipe: &Pipe, line: &[u8], on_event: &dyn Fn(ChildEvent)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match pipe.stream {
        Stream::Stderr => log_stderr(&pipe.child, line),
        Stream::Stdout => {
            if line.iter().all(u8::is_ascii_whitespace) {
                return;
            }
            handle_message(&pipe.child, line, on_event);
        }
    }
}

fn log_stderr(child: &StdioChild, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    if text.is_empty() {
        return;
    }
    log::info!(target: "mcp_gateway::child", "{}: {text}", child.label());
    child.remember_stderr(text);
}

fn handle_message(child: &StdioChild, line: &[u8], on_event: &dyn Fn(ChildEvent)) {
    let Some(message) = Message::parse(line) else {
        let preview = String::from_utf8_lossy(&line[..line.len().min(JUNK_PREVIEW)]);
        log::warn!(
            "{}: ignoring a stdout line that is not JSON-RPC: {preview}",
            child.label()
        );
        return;
    };
    match message {
        Message::Request { id, method, params } => {
            if let Some((id, method)) = child.deliver_request(id, method, params) {
                child.answer_alone(&id, &method);
            }
        }
        Message::Notification { method, params } => {
            handle_notification(child, &method, params, on_event)
        }
        Message::Response { id, outcome } => match id.as_u64() {
            Some(id) => child.deliver_response(id, outcome),
            None => log::warn!(
                "{}: ignoring a response with an id we never sent: {id}",
                child.label()
            ),
        },
    }
}

fn handle_notification(
    child: &StdioChild,
    method: &str,
    params: Option<Map<String, Value>>,
    on_event: &dyn Fn(ChildEvent),
) {
    if method == "notifications/progress" {
        let params = params.unwrap_or_default();
        match params.get("progressToken").and_then(Value::as_u64) {
            Some(token) => child.deliver_progress(token, params),
            None => log::debug!("{}: progress with a token we never sent", child.label()),
        }
        return;
    }
    let label = child.label();
    if let Some(event) = notification_event(child.server, child.serial, &label, method, params) {
        on_event(event);
    }
}
