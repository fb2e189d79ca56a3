//! One stdio child as a pooled handle: writing requests to its stdin, waiting for its answers.
//!
//! The read side of the child's pipes belongs to the child-I/O thread (`child_io`), which parses every
//! stdout line and drops answers and progress into this handle's inbox. Whoever holds the handle (one
//! worker at a time, by pool contract) sends a request with a fresh id and reads the inbox until the
//! answer with that id arrives; anything else found there (a late answer to a timed-out call, progress
//! of an earlier call) is stale and dropped. Writes go through a mutex because the child-I/O thread
//! also writes (answers to the child's own `ping`/`roots/list`).

use crate::rpc;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the child-I/O thread puts in a handle's inbox.
#[derive(Debug)]
pub enum Inbound {
    /// A response to request `id`: `Ok(result)` or `Err(error object)`, both as raw JSON.
    Response {
        id: u64,
        outcome: Result<Box<RawValue>, Box<RawValue>>,
    },
    /// `notifications/progress` whose token is the numeric id of one of our requests.
    Progress {
        token: u64,
        params: Map<String, Value>,
    },
    /// A message from the child exceeded `maxMessageBytes` and was discarded.
    TooLarge { limit: usize },
    /// stdout closed: the child is gone or going.
    Closed,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No answer before the deadline (a `notifications/cancelled` was sent downstream).
    Timeout,
    /// The child exited or closed its pipes; the text says what is known.
    Closed(String),
    /// The child's answer was larger than the configured limit.
    TooLarge(usize),
}

/// A running, initialized (or initializing) stdio server process.
pub struct StdioChild {
    /// Index of the server in the config.
    pub server: usize,
    /// The server's name, for logs and errors.
    pub name: Arc<str>,
    /// Handle number within the gateway, for logs.
    pub serial: u64,
    pub pid: u32,
    stdin: Mutex<Option<ChildStdin>>,
    process: Mutex<Option<Child>>,
    inbox_tx: Sender<Inbound>,
    inbox_rx: Receiver<Inbound>,
    next_id: AtomicU64,
    alive: AtomicBool,
    /// The last lines the child wrote to stderr: the best clue when it dies.
    stderr_tail: Mutex<Vec<String>>,
}

const STDERR_TAIL_LINES: usize = 3;
const STDERR_TAIL_CHARS: usize = 300;

impl StdioChild {
    /// Wraps a freshly spawned child whose stdout/stderr the caller hands to the child-I/O thread.
    pub fn new(
        server: usize,
        name: Arc<str>,
        serial: u64,
        mut child: Child,
    ) -> io::Result<StdioChild> {
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("child has no stdin pipe"))?;
        set_nonblocking(&stdin)?;
        let (inbox_tx, inbox_rx) = crossbeam_channel::unbounded();
        Ok(StdioChild {
            server,
            name,
            serial,
            pid: child.id(),
            stdin: Mutex::new(Some(stdin)),
            process: Mutex::new(Some(child)),
            inbox_tx,
            inbox_rx,
            next_id: AtomicU64::new(1),
            alive: AtomicBool::new(true),
            stderr_tail: Mutex::new(Vec::new()),
        })
    }

    /// A label for log lines: `server#serial (pid N)`.
    pub fn label(&self) -> String {
        format!("{}#{} (pid {})", self.name, self.serial, self.pid)
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// The next request id on this handle. Ids double as progress tokens downstream.
    pub fn next_request_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Called by the child-I/O thread.
    pub fn deliver(&self, message: Inbound) {
        if matches!(message, Inbound::Closed) {
            self.alive.store(false, Ordering::Release);
        }
        let _ = self.inbox_tx.send(message);
    }

    /// Called by the child-I/O thread for each stderr line.
    pub fn remember_stderr(&self, line: &str) {
        let mut tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == STDERR_TAIL_LINES {
            tail.remove(0);
        }
        tail.push(line.chars().take(STDERR_TAIL_CHARS).collect());
    }

    /// Why the child is gone, as precisely as we can tell right now.
    pub fn death_note(&self) -> String {
        // stdout closes a moment before the process becomes a zombie: give it that moment, so the
        // error can say how it ended. Only failure paths get here.
        let mut state = super::process::peek(self.pid);
        let give_up = Instant::now() + Duration::from_millis(100);
        while state == super::process::Peek::Running && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(5));
            state = super::process::peek(self.pid);
        }
        let mut note = match state {
            super::process::Peek::Exited(how) => {
                format!("server {} (pid {}) {how}", self.name, self.pid)
            }
            _ => format!("server {} (pid {}) closed its output", self.name, self.pid),
        };
        let tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = tail.last() {
            note.push_str(&format!("; its last stderr line: {last}"));
        }
        note
    }

    /// Sends a request and waits for its answer; progress notifications for it go to `on_progress`.
    /// Returns the server's result or JSON-RPC error (both raw), or why there was no answer.
    pub fn call(
        &self,
        id: u64,
        method: &str,
        params: Option<&Map<String, Value>>,
        deadline: Instant,
        on_progress: &mut dyn FnMut(Map<String, Value>),
    ) -> Result<Result<Box<RawValue>, Box<RawValue>>, CallError> {
        self.discard_stale();
        if !self.is_alive() {
            return Err(CallError::Closed(self.death_note()));
        }
        let mut line = rpc::request(id, method, params);
        line.push(b'\n');
        if let Err(e) = self.write_line(&line, deadline) {
            return Err(if e.kind() == io::ErrorKind::TimedOut {
                self.cancel(id, "the server did not read its input in time");
                CallError::Timeout
            } else {
                CallError::Closed(format!("{} (writing the request: {e})", self.death_note()))
            });
        }
        loop {
            let timeout = deadline.saturating_duration_since(Instant::now());
            match self.inbox_rx.recv_timeout(timeout) {
                Ok(Inbound::Response { id: got, outcome }) if got == id => return Ok(outcome),
                Ok(Inbound::Progress { token, params }) if token == id => on_progress(params),
                Ok(Inbound::Closed) => {
                    // Keep the marker for anyone who looks later.
                    let _ = self.inbox_tx.send(Inbound::Closed);
                    return Err(CallError::Closed(self.death_note()));
                }
                Ok(Inbound::TooLarge { limit }) => return Err(CallError::TooLarge(limit)),
                Ok(stale) => log::debug!("{}: dropping stale {stale:?}", self.label()),
                Err(RecvTimeoutError::Timeout) => {
                    self.cancel(id, "timed out");
                    return Err(CallError::Timeout);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(CallError::Closed(self.death_note()))
                }
            }
        }
    }

    /// Tells the child to stop working on request `id`; its late answer will be dropped as stale.
    pub fn cancel(&self, id: u64, reason: &str) {
        let params = serde_json::json!({ "requestId": id, "reason": reason });
        self.notify("notifications/cancelled", Some(&params));
    }

    /// Sends a notification, best effort (a dead child is noticed elsewhere).
    pub fn notify(&self, method: &str, params: Option<&Value>) {
        let mut line = rpc::notification(method, params);
        line.push(b'\n');
        if let Err(e) = self.write_line(&line, Instant::now() + Duration::from_secs(1)) {
            log::debug!("{}: could not send {method}: {e}", self.label());
        }
    }

    /// Writes one whole line to the child's stdin, waiting for pipe space until `deadline`.
    pub fn write_line(&self, line: &[u8], deadline: Instant) -> io::Result<()> {
        let mut guard = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let stdin = guard
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "stdin already closed"))?;
        let mut rest = line;
        while !rest.is_empty() {
            match stdin.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_writable(stdin.as_raw_fd(), deadline)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Closes stdin (the polite way to ask a stdio server to exit) and hands over the process for
    /// reaping. Returns None if it was already taken.
    pub fn retire(&self) -> Option<Child> {
        self.alive.store(false, Ordering::Release);
        drop(self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take());
        self.process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn discard_stale(&self) {
        while let Ok(message) = self.inbox_rx.try_recv() {
            if matches!(message, Inbound::Closed) {
                let _ = self.inbox_tx.send(Inbound::Closed);
                return;
            }
        }
    }
}

fn set_nonblocking(stdin: &ChildStdin) -> io::Result<()> {
    let fd = stdin.as_raw_fd();
    // SAFETY: fcntl on a valid, owned fd.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Blocks until `fd` accepts writes or `deadline` passes (TimedOut).
fn wait_writable(fd: i32, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            return Ok(());
        }
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}
