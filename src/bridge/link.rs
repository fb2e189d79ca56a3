//! The bridge's session with the gateway, and keeping it up.
//!
//! The client's own `initialize` opens the first session and its answer goes back to the client.
//! After that a session is identified by a *generation*. When the gateway goes away (connecting
//! fails) or forgets the session (404), that generation is invalidated: every call sent on it is
//! answered with an error at once, and the keeper thread opens a new session with the client's
//! original initialize params — sending `notifications/initialized` and replaying the client's
//! log level and resource subscriptions — without telling the client anything. Calls made
//! meanwhile wait for the new session, at most the reconnect timeout.
//!
//! Threads: the keeper (one) opens sessions again with backoff and reads the session's
//! server→client stream (the Streamable HTTP `GET` stream, or the legacy transport's only
//! stream); each client request runs on its own short-lived thread; notifications and responses
//! from the client are posted in order from the stdin thread.
//!
//! Invariants:
//! - One lock (`state`) guards the session; no I/O is done while it is held.
//! - A generation is invalidated once; only the holder of the current generation can end it, so
//!   a late failure from an older session cannot tear down a newer one.
//! - Nothing is sent to the client that the gateway did not send, except errors for requests
//!   that cannot be served; the re-initialize answer is never forwarded.

use super::client::Client;
use super::message;
use super::transport::{self, Failure, Hooks, Http, Posted, Route, Stream};
use crate::downstream::remote::conn::{no_deadline, Closer, Conn, ResponseHead};
use crate::rpc::{codes, Id};
use serde_json::value::RawValue;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// First wait before trying the gateway again; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Bound on posting a notification or a response (the gateway answers these at once).
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the `DELETE` when the client leaves.
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);
/// A stream that lasted this long was healthy, even without events.
const HEALTHY_STREAM: Duration = Duration::from_secs(5);
/// Times a call is sent again after its session turned out to be gone.
const MAX_RESENDS: usize = 3;

/// The current session.
#[derive(Debug, Clone)]
pub struct Session {
    pub generation: u64,
    pub route: Route,
}

#[derive(Default)]
struct State {
    /// The params of the client's initialize, once it succeeded: what re-initializing sends.
    init: Option<Box<RawValue>>,
    /// The server only speaks the legacy transport.
    legacy: bool,
    session: Option<Session>,
    generation: u64,
    /// Why there is no session, for the errors of calls that cannot wait longer.
    down: Option<String>,
    /// A legacy session's stream, for the keeper to read.
    stream: Option<(u64, Box<Conn>, ResponseHead)>,
    /// The stream the keeper reads, so a lost or replaced session's reader is woken.
    watched: Option<(u64, Closer)>,
    /// What the client asked that a new session must be told again.
    level: Option<Box<RawValue>>,
    subscriptions: BTreeSet<String>,
    closing: bool,
}

/// The session with the gateway, shared by every thread.
pub struct Link {
    http: Http,
    client: Arc<Client>,
    state: Mutex<State>,
    changed: Condvar,
    reconnect_timeout: Duration,
    next_id: AtomicU64,
}

impl Link {
    pub fn new(http: Http, client: Arc<Client>, reconnect_timeout: Duration) -> Link {
        Link {
            http,
            client,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            reconnect_timeout,
            next_id: AtomicU64::new(1),
        }
    }

    /// The client's `initialize` (`bytes`, with `params`): sent as is, and its answer relayed.
    /// While the gateway cannot be reached it is tried again with backoff, up to the reconnect
    /// timeout (the client may start before the gateway).
    pub fn initialize(&self, id: &Id, bytes: &[u8], params: Option<Box<RawValue>>) {
        let deadline = Instant::now() + self.reconnect_timeout;
        let mut backoff = Backoff::default();
        let legacy = self.lock().legacy;
        loop {
            if !self.client.in_flight(id) {
                return;
            }
            match self
                .http
                .open_session(bytes, id, legacy, |m| self.client.relay(m))
            {
                Ok(opened) => {
                    if opened.accepted {
                        self.install(opened.route, opened.stream, params);
                    }
                    self.client.answer(id, opened.answer);
                    return;
                }
                Err(Failure::Unreachable(why)) if Instant::now() + backoff.peek() < deadline => {
                    log::info!("{why}; trying again");
                    std::thread::sleep(backoff.next());
                }
                Err(failure) => {
                    let why = format!(
                        "cannot open a session with the gateway at {}: {}",
                        self.http.url(),
                        failure.describe()
                    );
                    return self.client.fail(id, code(&failure), &why);
                }
            }
        }
    }

    /// A client request other than initialize; its answer (and whatever the gateway sends
    /// before it) is relayed. Runs on the request's own thread.
    pub fn request(&self, id: &Id, bytes: &[u8]) {
        let deadline = Instant::now() + self.reconnect_timeout;
        for resend in 0..=MAX_RESENDS {
            let session = match self.session(deadline) {
                Ok(session) => session,
                Err(why) => return self.client.fail(id, codes::SERVER_UNAVAILABLE, &why),
            };
            let generation = session.as_ref().map(|s| s.generation);
            let route = session.as_ref().map(|s| &s.route);
            let hooks = Hooks {
                on_conn: |closer| self.client.sending(id, generation, Some(closer)),
                on_release: || {
                    self.client.sending(id, generation, None);
                },
            };
            let result = self
                .http
                .post(route, bytes, transport::call_deadline(), hooks, |m| {
                    self.client.relay(m)
                });
            let why = match result {
                // The legacy transport answers on the stream.
                Ok(_) if matches!(route, Some(Route::Legacy { .. })) => return,
                Ok(Posted::Accepted) => {
                    "the gateway accepted the request (202) without answering it".to_string()
                }
                Ok(Posted::Answered) => "the gateway's answer ended without a response".into(),
                Err(failure @ (Failure::Unreachable(_) | Failure::SessionGone))
                    if generation.is_some() && resend < MAX_RESENDS =>
                {
                    self.client.unsent(id);
                    self.invalidate(generation.unwrap_or_default(), &failure.describe());
                    continue;
                }
                Err(Failure::Lost(why)) => format!(
                    "the connection to the gateway was lost during the call ({why}); it may or may not have run"
                ),
                Err(failure) => {
                    return self
                        .client
                        .fail(id, code(&failure), &failure.describe())
                }
            };
            // A no-op when the answer came.
            return self.client.fail(id, codes::INTERNAL_ERROR, &why);
        }
    }

    /// A notification, or a response to a request the gateway sent, posted in order. Dropped
    /// while there is no session to post it to: it belonged to the lost one.
    pub fn notify(&self, bytes: &[u8]) {
        let session = {
            let state = self.lock();
            match (&state.session, &state.init) {
                (Some(session), _) => Some(session.clone()),
                (None, None) => None,
                (None, Some(_)) => {
                    log::info!("no session with the gateway (reconnecting): a notification or response from the client was dropped");
                    return;
                }
            }
        };
        let route = session.as_ref().map(|s| &s.route);
        let deadline = Instant::now() + NOTIFY_TIMEOUT;
        match self.http.post(route, bytes, deadline, Hooks::none(), |m| {
            self.client.relay(m)
        }) {
            Ok(_) => {}
            Err(failure @ (Failure::Unreachable(_) | Failure::SessionGone)) => {
                log::info!(
                    "a notification or response from the client was dropped: {}",
                    failure.describe()
                );
                if let Some(session) = session {
                    self.invalidate(session.generation, &failure.describe());
                }
            }
            Err(failure) => log::warn!(
                "a notification or response from the client did not reach the gateway: {}",
                failure.describe()
            ),
        }
    }

    /// Notes what a new session must be told again: the log level, the subscriptions.
    pub fn remember(&self, method: &str, params: Option<&RawValue>) {
        let mut state = self.lock();
        match method {
            "logging/setLevel" => state.level = params.map(ToOwned::to_owned),
            "resources/subscribe" => {
                if let Some(uri) = message::param_str(params, "uri") {
                    state.subscriptions.insert(uri);
                }
            }
            "resources/unsubscribe" => {
                if let Some(uri) = message::param_str(params, "uri") {
                    state.subscriptions.remove(&uri);
                }
            }
            _ => {}
        }
    }

    /// The client left: ends the session (`DELETE`, best effort) and stops the keeper.
    pub fn close(&self) {
        let session = {
            let mut state = self.lock();
            state.closing = true;
            if let Some((_, closer)) = state.watched.take() {
                closer.shutdown();
            }
            self.changed.notify_all();
            state.session.take()
        };
        if let Some(Session {
            route:
                Route::Streamable {
                    session_id: Some(id),
                    version,
                },
            ..
        }) = session
        {
            self.http
                .delete(&id, version.as_deref(), Instant::now() + DELETE_TIMEOUT);
        }
    }

    /// The keeper thread: reads the session's stream, and opens a new session whenever the
    /// current one is lost. Returns when the bridge closes.
    pub fn keep_up(&self) {
        let mut backoff = Backoff::default();
        loop {
            let (session, stream) = {
                let mut state = self.lock();
                loop {
                    if state.closing {
                        return;
                    }
                    if let Some(session) = state.session.clone() {
                        let stream = state
                            .stream
                            .take()
                            .filter(|(g, ..)| *g == session.generation);
                        break (Some(session), stream);
                    }
                    if state.init.is_some() {
                        break (None, None);
                    }
                    state = self.wait(state);
                }
            };
            let Some(session) = session else {
                match self.reopen() {
                    true => backoff.reset(),
                    false => std::thread::sleep(backoff.next()),
                }
                continue;
            };
            let generation = session.generation;
            match (session.route, stream) {
                (_, Some((_, conn, head))) => {
                    self.read_stream(generation, conn, head);
                    self.invalidate(generation, "the gateway closed the session's event stream");
                }
                (Route::Legacy { .. }, None) => {
                    self.invalidate(generation, "the legacy session has no event stream")
                }
                (
                    Route::Streamable {
                        session_id,
                        version,
                    },
                    None,
                ) => match self
                    .http
                    .open_stream(session_id.as_deref(), version.as_deref())
                {
                    Stream::Open(conn, head) => match self.read_stream(generation, conn, head) {
                        true => backoff.reset(),
                        false => std::thread::sleep(backoff.next()),
                    },
                    Stream::Unavailable(why) => {
                        log::debug!("{why}");
                        self.wait_while_current(generation);
                    }
                    Stream::Gone(why) => self.invalidate(generation, &why),
                },
            }
        }
    }

    /// Relays the messages of a server→client stream until it ends (or is shut down). True if
    /// it looked healthy: it brought messages or lasted a while.
    fn read_stream(&self, generation: u64, mut conn: Box<Conn>, head: ResponseHead) -> bool {
        {
            let mut state = self.lock();
            if state.session.as_ref().map(|s| s.generation) != Some(generation) {
                return false;
            }
            state.watched = Some((generation, conn.closer()));
        }
        let started = Instant::now();
        let mut messages = 0;
        loop {
            match conn.next_event(&head, no_deadline()) {
                Ok(Some(event)) if event.event == "message" => {
                    messages += 1;
                    self.client.relay(event.data.into_bytes());
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    log::debug!("the gateway ended the event stream");
                    break;
                }
                Err(e) => {
                    log::debug!("event stream: {e}");
                    break;
                }
            }
        }
        let mut state = self.lock();
        if state
            .watched
            .as_ref()
            .is_some_and(|(g, _)| *g == generation)
        {
            state.watched = None;
        }
        messages > 0 || started.elapsed() >= HEALTHY_STREAM
    }

    /// Opens a new session with the client's original initialize params; true on success.
    fn reopen(&self) -> bool {
        let (params, legacy, level, subscriptions) = {
            let state = self.lock();
            (
                state.init.clone(),
                state.legacy,
                state.level.clone(),
                state.subscriptions.clone(),
            )
        };
        let id = self.internal_id();
        let init = request_bytes(&id, "initialize", params.as_deref());
        let dropped = |m: Vec<u8>| log::debug!("while re-initializing: dropped {} bytes", m.len());
        let opened = match self.http.open_session(&init, &id, legacy, dropped) {
            Ok(opened) if opened.accepted => opened,
            Ok(opened) => {
                let answer = String::from_utf8_lossy(&opened.answer).into_owned();
                log::warn!("the gateway refused to initialize again: {answer}");
                self.lock().down =
                    Some(format!("the gateway refused to initialize again: {answer}"));
                return false;
            }
            Err(failure) => {
                log::debug!("re-initializing: {}", failure.describe());
                self.lock().down = Some(failure.describe());
                return false;
            }
        };
        // Before anyone else uses the session: what a client does after initialize.
        let mut replay =
            vec![br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec()];
        if let Some(level) = &level {
            replay.push(request_bytes(
                &self.internal_id(),
                "logging/setLevel",
                Some(level),
            ));
        }
        for uri in &subscriptions {
            let params = serde_json::json!({ "uri": uri });
            let params = RawValue::from_string(params.to_string()).ok();
            replay.push(request_bytes(
                &self.internal_id(),
                "resources/subscribe",
                params.as_deref(),
            ));
        }
        let deadline = Instant::now() + NOTIFY_TIMEOUT;
        for message in replay {
            let answer = |_| {}; // the answers are the bridge's own, not the client's
            if let Err(failure) = self.http.post(
                Some(&opened.route),
                &message,
                deadline,
                Hooks::none(),
                answer,
            ) {
                log::warn!("re-initializing: {}", failure.describe());
            }
        }
        log::info!("re-initialized with the gateway at {}", self.http.url());
        self.install(opened.route, opened.stream, None);
        true
    }

    /// Makes `route` the current session (a new generation). `init` is the client's initialize
    /// params, when the client opened it.
    fn install(
        &self,
        route: Route,
        stream: Option<(Box<Conn>, ResponseHead)>,
        init: Option<Box<RawValue>>,
    ) {
        let mut state = self.lock();
        state.generation += 1;
        let generation = state.generation;
        if let Some(params) = init {
            state.init = Some(params);
        }
        state.legacy = matches!(route, Route::Legacy { .. });
        state.session = Some(Session { generation, route });
        state.stream = stream.map(|(conn, head)| (generation, conn, head));
        state.down = None;
        if let Some((_, closer)) = state.watched.take() {
            // The client initialized again: the old session's stream is not read any more.
            closer.shutdown();
        }
        self.changed.notify_all();
    }

    /// Session `generation` is lost: its calls fail now, and the keeper opens a new one.
    fn invalidate(&self, generation: u64, why: &str) {
        {
            let mut state = self.lock();
            if state.session.as_ref().map(|s| s.generation) != Some(generation) {
                return;
            }
            log::warn!("lost the session with the gateway: {why}; reconnecting");
            state.session = None;
            state.stream = None;
            state.down = Some(why.to_owned());
            if let Some((_, closer)) = state.watched.take() {
                closer.shutdown();
            }
            self.changed.notify_all();
        }
        self.client.fail_generation(
            generation,
            codes::INTERNAL_ERROR,
            &format!(
                "the connection to the gateway was lost during the call ({why}); it may or may not have run"
            ),
        );
    }

    /// The current session; `None` before the client initialized (messages then go without
    /// one). Waits for a new session while there is none, until `deadline`.
    fn session(&self, deadline: Instant) -> Result<Option<Session>, String> {
        let mut state = self.lock();
        loop {
            if let Some(session) = &state.session {
                return Ok(Some(session.clone()));
            }
            if state.init.is_none() {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.closing || left.is_zero() {
                return Err(format!(
                    "the gateway at {} is unreachable ({}); the bridge keeps trying to reconnect",
                    self.http.url(),
                    state.down.as_deref().unwrap_or("reconnecting")
                ));
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until session `generation` is no longer the current one (or the bridge closes).
    fn wait_while_current(&self, generation: u64) {
        let mut state = self.lock();
        while !state.closing && state.session.as_ref().map(|s| s.generation) == Some(generation) {
            state = self.wait(state);
        }
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(state).unwrap_or_else(|e| e.into_inner())
    }

    /// A request id of the bridge's own (its answers are never relayed).
    fn internal_id(&self) -> Id {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let value = serde_json::Value::String(format!("mcp-gateway-bridge-{n}"));
        Id::from_value(&value).expect("a string is an id")
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The JSON-RPC error code a failure gets.
fn code(failure: &Failure) -> i64 {
    match failure {
        Failure::Refused { code, .. } => *code,
        Failure::Lost(_) | Failure::Shutdown => codes::INTERNAL_ERROR,
        Failure::Unreachable(_) | Failure::SessionGone => codes::SERVER_UNAVAILABLE,
    }
}

/// A request of the bridge's own.
fn request_bytes(id: &Id, method: &str, params: Option<&RawValue>) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Request<'a> {
        jsonrpc: &'static str,
        id: serde_json::Value,
        method: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        params: Option<&'a RawValue>,
    }
    serde_json::to_vec(&Request {
        jsonrpc: "2.0",
        id: id.to_value(),
        method,
        params,
    })
    .expect("serializing to a Vec cannot fail")
}

/// Waits between attempts: 100 ms doubling to 2 s.
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: FIRST_BACKOFF,
        }
    }
}

impl Backoff {
    fn peek(&self) -> Duration {
        self.next
    }

    fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        now
    }

    fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..7).map(|_| backoff.next().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 2000, 2000]);
        backoff.reset();
        assert_eq!(backoff.peek(), FIRST_BACKOFF);
    }

    #[test]
    fn the_bridge_builds_its_own_requests_with_raw_params() {
        let params = RawValue::from_string(r#"{"level":"debug"}"#.into()).unwrap();
        let id = Id::from_value(&serde_json::json!("mcp-gateway-bridge-3")).unwrap();
        assert_eq!(
            request_bytes(&id, "logging/setLevel", Some(&params)),
            br#"{"jsonrpc":"2.0","id":"mcp-gateway-bridge-3","method":"logging/setLevel","params":{"level":"debug"}}"#
        );
    }
}
