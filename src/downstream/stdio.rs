//! One stdio child as a pooled handle: writing requests to its stdin, routing its answers.
//!
//! The read side of the child's pipes belongs to the child-I/O thread (`child_io`), which parses every
//! stdout line and hands each message to the request it belongs to: answers and progress by id (our
//! ids double as progress tokens), the child's own requests to the exclusive call in progress (the
//! one that may involve the client), `Closed` to everyone when stdout ends. A `Call` is one request in
//! flight with its own channel, so several can share a child: the pooled call of the worker that
//! holds the handle, and the gateway's own out-of-band requests (re-listing after `list_changed`,
//! `logging/setLevel`, subscriptions). Late answers of abandoned calls find no entry and are dropped.
//! Writes go through a mutex: several threads write, each line whole.

use super::{Answer, CallError, Requester};
use crate::rpc;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Sends a call's answer and progress to the client straight from the child-I/O thread, so the
/// answer does not wait for the worker to wake first (one thread hop less on every call).
pub trait DirectReply: Send {
    fn progress(&self, params: Map<String, Value>);
    fn answer(self: Box<Self>, outcome: Result<&RawValue, &RawValue>);
}

/// A message for one request in flight.
#[derive(Debug)]
pub enum Inbound {
    /// The answer: `Ok(result)` or `Err(error object)`, both raw JSON.
    Response(Result<Box<RawValue>, Box<RawValue>>),
    /// The answer went straight to the client through the call's `DirectReply`.
    Answered,
    /// `notifications/progress` for this request.
    Progress(Map<String, Value>),
    /// The child asks the client something while this request runs (sampling, elicitation, roots).
    ChildRequest {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    /// The client's answer to a `ChildRequest` of this call (delivered by the reactor).
    ClientAnswer {
        child_id: Value,
        outcome: Result<Value, Value>,
    },
    /// The client cancelled the request.
    Cancelled,
    /// A message from the child exceeded `maxMessageBytes` and was discarded.
    TooLarge { limit: usize },
    /// stdout closed: the child is gone or going.
    Closed,
}

struct Pending {
    tx: Sender<Inbound>,
    /// The child's own requests go to this call (the exclusive call of the handle's holder).
    takes_requests: bool,
    /// Takes the answer and progress when set; whoever takes it out first answers the client.
    direct: Option<Box<dyn DirectReply>>,
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
    /// Requests in flight by id. `alive` only changes under this lock, so no call can start after
    /// everyone was told `Closed`.
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    alive: AtomicBool,
    /// The last lines the child wrote to stderr: the best clue when it dies.
    stderr_tail: Mutex<Vec<String>>,
}

const STDERR_TAIL_LINES: usize = 3;
const STDERR_TAIL_CHARS: usize = 300;

/// One request in flight on a child.
pub struct Call<'a> {
    child: &'a StdioChild,
    /// Our id for it downstream (also its progress token).
    pub id: u64,
    rx: Receiver<Inbound>,
    tx: Sender<Inbound>,
    deadline: Instant,
}

impl Call<'_> {
    /// Where others (the reactor) put messages for this call.
    pub fn sender(&self) -> Sender<Inbound> {
        self.tx.clone()
    }

    /// The next message; `Err(Timeout)` after the deadline (the child is told to stop).
    pub fn next(&self) -> Result<Inbound, CallError> {
        let timeout = self.deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(timeout) {
            Ok(Inbound::Closed) => Err(CallError::Closed(self.child.death_note())),
            Ok(Inbound::TooLarge { limit }) => Err(CallError::TooLarge(limit)),
            Ok(message) => Ok(message),
            Err(RecvTimeoutError::Timeout) => {
                self.cancel("timed out");
                Err(CallError::Timeout)
            }
            Err(RecvTimeoutError::Disconnected) => Err(CallError::Closed(self.child.death_note())),
        }
    }

    /// Tells the child to stop working on this request.
    pub fn cancel(&self, reason: &str) {
        self.child.cancel(self.id, reason);
    }

    /// Takes back the call's `DirectReply` to answer the client otherwise (timeout, cancellation,
    /// failure). None: the answer already went out.
    pub fn take_direct(&self) -> Option<Box<dyn DirectReply>> {
        self.child
            .pending()
            .get_mut(&self.id)
            .and_then(|p| p.direct.take())
    }

    /// Waits for the answer, answering any request of the child with an error: for the gateway's
    /// own requests, where no client is involved.
    pub fn answer(self) -> Result<Answer, CallError> {
        loop {
            match self.next()? {
                Inbound::Response(outcome) => return Ok(outcome),
                Inbound::ChildRequest { id, method, .. } => self.child.refuse(&id, &method),
                _ => {}
            }
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        self.child.pending().remove(&self.id);
    }
}

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
        Ok(StdioChild {
            server,
            name,
            serial,
            pid: child.id(),
            stdin: Mutex::new(Some(stdin)),
            process: Mutex::new(Some(child)),
            pending: Mutex::new(HashMap::new()),
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

    fn pending(&self) -> MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a request. With `progress`, `params` gets `_meta.progressToken` = the request's id (unique
    /// on this child, and how its progress finds its way back); `takes_requests` routes the child's
    /// own requests to this call while it runs.
    pub fn begin(
        &self,
        method: &str,
        mut params: Option<Map<String, Value>>,
        progress: bool,
        deadline: Instant,
        takes_requests: bool,
        direct: Option<Box<dyn DirectReply>>,
    ) -> Result<Call<'_>, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if progress {
            set_progress_token(params.get_or_insert_with(Map::new), Value::from(id));
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        {
            let mut pending = self.pending();
            if !self.is_alive() {
                drop(pending);
                return Err(CallError::Closed(self.death_note()));
            }
            pending.insert(
                id,
                Pending {
                    tx: tx.clone(),
                    takes_requests,
                    direct,
                },
            );
        }
        let call = Call {
            child: self,
            id,
            rx,
            tx,
            deadline,
        };
        let mut line = rpc::request(id, method, params.as_ref());
        line.push(b'\n');
        if let Err(e) = self.write_line(&line, deadline) {
            return Err(if e.kind() == io::ErrorKind::TimedOut {
                call.cancel("the server did not read its input in time");
                CallError::Timeout
            } else {
                CallError::Closed(format!("{} (writing the request: {e})", self.death_note()))
            });
        }
        Ok(call)
    }

    /// Child-I/O: the answer to request `id` (dropped when nobody waits any more).
    pub fn deliver_response(&self, id: u64, outcome: Result<Box<RawValue>, Box<RawValue>>) {
        let mut pending = self.pending();
        let Some(p) = pending.get_mut(&id) else {
            drop(pending);
            log::debug!("{}: dropping a late answer to request {id}", self.label());
            return;
        };
        match p.direct.take() {
            Some(direct) => {
                let tx = p.tx.clone();
                drop(pending);
                direct.answer(outcome.as_deref().map_err(|e| &**e));
                let _ = tx.send(Inbound::Answered);
            }
            None => {
                let _ = p.tx.send(Inbound::Response(outcome));
            }
        }
    }

    /// Child-I/O: progress whose token is our request id.
    pub fn deliver_progress(&self, token: u64, params: Map<String, Value>) {
        if let Some(p) = self.pending().get(&token) {
            match &p.direct {
                // Sent from this thread, so it cannot overtake the answer.
                Some(direct) => direct.progress(params),
                None => {
                    let _ = p.tx.send(Inbound::Progress(params));
                }
            }
        }
    }

    /// Child-I/O: the child's own request. Returns it when no call in progress takes requests.
    pub fn deliver_request(
        &self,
        id: Value,
        method: String,
        params: Option<Value>,
    ) -> Option<(Value, String)> {
        let pending = self.pending();
        match pending.values().find(|p| p.takes_requests) {
            Some(p) => {
                let _ = p.tx.send(Inbound::ChildRequest { id, method, params });
                None
            }
            None => Some((id, method)),
        }
    }

    /// Child-I/O: something every request in flight must hear (`Closed` marks the child dead).
    pub fn deliver_all(&self, message: impl Fn() -> Inbound) {
        let pending = self.pending();
        if matches!(message(), Inbound::Closed) {
            self.alive.store(false, Ordering::Release);
        }
        for p in pending.values() {
            let _ = p.tx.send(message());
        }
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

    /// Tells the child to stop working on request `id`; its late answer will be dropped.
    pub fn cancel(&self, id: u64, reason: &str) {
        let params = serde_json::json!({ "requestId": id, "reason": reason });
        self.notify("notifications/cancelled", Some(&params));
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
        self.deliver_all(|| Inbound::Closed);
        drop(self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take());
        self.process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl Requester for StdioChild {
    fn label(&self) -> String {
        StdioChild::label(self)
    }

    fn request(
        &self,
        method: &str,
        params: Option<Map<String, Value>>,
        deadline: Instant,
    ) -> Result<Answer, CallError> {
        self.begin(method, params, false, deadline, false, None)?
            .answer()
    }

    fn send_unawaited(&self, method: &str, params: Map<String, Value>) {
        // Dropping the call at once: its answer finds nobody waiting and is discarded.
        let deadline = Instant::now() + Duration::from_secs(1);
        if let Err(e) = self.begin(method, Some(params), false, deadline, false, None) {
            log::debug!("{}: could not send {method}: {e:?}", self.label());
        }
    }

    fn respond(&self, child_id: &Value, outcome: Result<&Value, &Value>) {
        let mut line = super::response_to(child_id, outcome);
        line.push(b'\n');
        if let Err(e) = self.write_line(&line, Instant::now() + Duration::from_secs(1)) {
            log::debug!("{}: could not answer its request: {e}", self.label());
        }
    }

    /// Best effort: a dead child is noticed elsewhere.
    fn notify(&self, method: &str, params: Option<&Value>) {
        let mut line = rpc::notification(method, params);
        line.push(b'\n');
        if let Err(e) = self.write_line(&line, Instant::now() + Duration::from_secs(1)) {
            log::debug!("{}: could not send {method}: {e}", self.label());
        }
    }
}

/// Sets `_meta.progressToken`, keeping any other `_meta` fields.
pub fn set_progress_token(params: &mut Map<String, Value>, token: Value) {
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        meta.insert("progressToken".into(), token);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_token_keeps_other_meta() {
        let mut params: Map<String, Value> =
            serde_json::from_str(r#"{"name":"x","_meta":{"progressToken":"abc","other":1}}"#)
                .unwrap();
        set_progress_token(&mut params, Value::from(42));
        assert_eq!(params["_meta"]["progressToken"], 42);
        assert_eq!(params["_meta"]["other"], 1);
        let mut bare = Map::new();
        set_progress_token(&mut bare, Value::from(1));
        assert_eq!(bare["_meta"]["progressToken"], 1);
    }
}
