//! One stdio child as a pooled handle: who it is, and the address of its owner.
//!
//! A `StdioChild` holds no pipe and no lock. Everything about a running child (both directions of
//! its pipes, its calls in flight, its stderr tail) belongs to child I/O; this handle
//! only sends it whole commands through its channel + waker: a client's call (`ChildIo::call`),
//! the gateway's own requests (`Requester`), the end (`retire`). So nothing ever blocks on a
//! child's pipe, and one child that stops reading its stdin can only fill its own write queue.
//!
//! Invariant: `alive` and the death note are written only by child I/O (stdout closed, or
//! retired); the note is set before the death is reported.

use super::child_io::{ChildIo, Command};
use super::{Answer, CallError, Requester};
use crossbeam_channel::RecvTimeoutError;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long past a request's own deadline its caller waits for child I/O to report the timeout.
const REPORT_SLACK: Duration = Duration::from_secs(1);

/// A running, initialized (or initializing) stdio server process.
pub struct StdioChild {
    /// Index of the server in the config.
    pub server: usize,
    /// The server's name, for logs and errors.
    pub name: Arc<str>,
    /// Handle number within the gateway, for logs; the child's key in child I/O.
    pub serial: u64,
    pub pid: u32,
    alive: AtomicBool,
    /// Why it died, set once by child I/O before it reports the death.
    death: OnceLock<String>,
    /// Resident memory of its process group in bytes, measured by the supervisor once a second
    /// (0: not yet).
    rss: AtomicU64,
    /// The handshake chose protocol 2026-07-28 (`era`).
    modern: AtomicBool,
    io: ChildIo,
}

impl StdioChild {
    pub fn new(server: usize, name: Arc<str>, serial: u64, pid: u32, io: ChildIo) -> StdioChild {
        StdioChild {
            server,
            name,
            serial,
            pid,
            alive: AtomicBool::new(true),
            death: OnceLock::new(),
            rss: AtomicU64::new(0),
            modern: AtomicBool::new(false),
            io,
        }
    }

    /// A label for log lines: `server#serial (pid N)`.
    pub fn label(&self) -> String {
        format!("{}#{} (pid {})", self.name, self.serial, self.pid)
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Child-I/O: the child is gone or going; no new call may start on it.
    pub(super) fn mark_dead(&self) {
        self.alive.store(false, Ordering::Release);
    }

    /// Child-I/O: why it died (the first word on it stays).
    pub(super) fn set_death_note(&self, note: String) {
        let _ = self.death.set(note);
    }

    /// Supervisor: the process's resident memory now.
    pub fn set_rss(&self, bytes: u64) {
        self.rss.store(bytes, Ordering::Relaxed);
    }

    /// Its resident memory as last measured.
    pub fn rss_bytes(&self) -> Option<u64> {
        Some(self.rss.load(Ordering::Relaxed)).filter(|&b| b > 0)
    }

    /// Why it died, once child I/O knows.
    pub fn death_note(&self) -> Option<String> {
        self.death.get().cloned()
    }

    /// Closes the child's stdin (the polite way to ask a stdio server to exit); its calls in
    /// flight fail. The supervisor stops and reaps the process.
    pub fn retire(&self) {
        self.io.send(Command::Retire {
            serial: self.serial,
        });
    }
}

impl Requester for StdioChild {
    fn label(&self) -> String {
        StdioChild::label(self)
    }

    fn modern(&self) -> bool {
        self.modern.load(Ordering::Acquire)
    }

    fn set_modern(&self) {
        self.modern.store(true, Ordering::Release);
    }

    fn request(
        &self,
        method: &str,
        params: Option<Map<String, Value>>,
        deadline: Instant,
    ) -> Result<Answer, CallError> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.io.send(Command::Request {
            serial: self.serial,
            method: method.to_string(),
            params,
            deadline,
            reply,
        });
        match answer.recv_deadline(deadline + REPORT_SLACK) {
            Ok(outcome) => outcome,
            Err(RecvTimeoutError::Timeout) => Err(CallError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(CallError::Closed(format!(
                "server {} (pid {}) is gone",
                self.name, self.pid
            ))),
        }
    }

    fn send_unawaited(&self, method: &str, params: Map<String, Value>) {
        self.io.send(Command::Unawaited {
            serial: self.serial,
            method: method.to_string(),
            params,
        });
    }

    fn listen(&self, change: super::era::Listen) {
        self.io.send(Command::Listen {
            serial: self.serial,
            change,
        });
    }

    fn respond(&self, child_id: &Value, outcome: Result<&Value, &Value>) {
        let line = super::response_to(child_id, outcome);
        self.io.send(Command::Write {
            serial: self.serial,
            line,
        });
    }

    /// Best effort: a dead child is noticed elsewhere.
    fn notify(&self, method: &str, params: Option<&Value>) {
        let line = crate::rpc::notification(method, params);
        self.io.send(Command::Write {
            serial: self.serial,
            line,
        });
    }
}
