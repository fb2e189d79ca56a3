//! One request in flight on a remote session (`RemoteLink::begin` sends it), stepped by the thread
//! that made it.
//!
//! With Streamable HTTP the answer comes on the call's own connection, as JSON or as an SSE stream
//! that may carry progress, notifications and the server's requests first. The calling thread
//! reads it in short slices (`SLICE`), so a cancellation or a client's answer waiting in the
//! call's inbox is acted on at once. With the legacy transport everything arrives through the
//! inbox, put there by the handle's stream thread.
//!
//! - A lost session (see `session`) is renewed and the request sent again, once.
//! - Resumption (spec 2025-11-25, "Resumability and Redelivery"): when the server ends the answer
//!   stream (or the connection drops) before the answer, and the stream had event ids, the call
//!   waits the stream's `retry` time and GETs the endpoint with `Last-Event-ID`, reading the
//!   answer from there; at most `MAX_RESUMES` times per call.
//! - The call's entry in the handle's flights lives exactly as long as the call (removed on drop,
//!   refusing the server's requests that were routed to it and are still unanswered).

use super::conn::{Conn, ConnError, ResponseHead};
use super::flights::Flight;
use super::link::{error_body, error_preview, Mode, RemoteLink};
use super::lock;
use super::session::lost_session;
use crate::downstream::message::Message;
use crate::downstream::Inbound;
use crate::downstream::{Answer, CallError, Requester};
use crate::job::Slot;
use crate::rpc::{self, Params};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long a call waits on its connection before looking at its inbox (cancellation, client
/// answers) again.
const SLICE: Duration = Duration::from_millis(50);
/// Most times one call resumes an answer stream the server closed early.
const MAX_RESUMES: u32 = 5;
/// Wait before resuming when the server named no `retry` time.
const DEFAULT_RETRY: Duration = Duration::from_millis(500);
/// Longest `retry` time honoured (a server cannot park a call for longer than this per resume).
const MAX_RETRY: Duration = Duration::from_secs(10);

pub(super) enum Wire {
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
    /// The server closed the stream early: resume with `Last-Event-ID` at `at`.
    Resume {
        at: Instant,
        last_event_id: String,
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
    pub(super) request: Vec<u8>,
    rx: Receiver<Inbound>,
    tx: Sender<Inbound>,
    deadline: Instant,
    pub(super) wire: Wire,
    /// Sent a second time already (after a new session, or a keep-alive race).
    resent: bool,
    /// Times the answer stream was resumed.
    resumes: u32,
    /// The session generation it was last sent under.
    pub(super) generation: u64,
    /// `Mcp-Session-Id` of the response (for `initialize`).
    pub(super) session_id: Option<String>,
    /// The HTTP status of a response that was not a success.
    pub(super) status: Option<u16>,
    /// That response's body was a JSON-RPC error: the server speaks MCP over this transport
    /// (what a 2026-07-28 server does with a request it refuses), whatever the status.
    pub(super) jsonrpc_error: bool,
    /// `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` for a 2026-07-28 server.
    pub(super) mirrored: Vec<(String, String)>,
    /// Sent again with a new OAuth token already (a second refusal is the answer).
    auth_retried: bool,
    /// The OAuth token generation the request was last sent with (`oauth::Auth::refused`).
    auth_generation: u64,
}

impl RemoteLink {
    /// Sends a request. With `progress`, `params` gets `_meta.progressToken` = the request's id.
    /// `client` is the MCP session the call is made for (None for REST and the gateway's own
    /// requests): requests the server sends outside the call's own stream may go to it (see
    /// `flights`).
    pub fn begin(
        &self,
        method: &str,
        mut params: Option<Params>,
        progress: bool,
        deadline: Instant,
        client: Option<Slot>,
    ) -> Result<RemoteCall<'_>, CallError> {
        if !self.is_alive() {
            return Err(CallError::Closed(self.death_note()));
        }
        let id = self.next_id();
        if progress {
            params
                .get_or_insert_with(Params::default)
                .set_progress_token(Value::from(id));
        }
        let mut call = RemoteCall::new(
            self,
            id,
            method,
            rpc::request(id, method, params.as_ref()),
            deadline,
        );
        // 2026-07-28 (and the probe for it): headers mirroring the body.
        if self.modern() || method == "server/discover" {
            let version = !self.modern();
            call.mirrored =
                crate::downstream::era::mirrored_headers(method, params.as_ref(), version);
            if method == "tools/call" {
                let tool = params.as_ref().and_then(|p| p.str("name"));
                let annotated = tool.and_then(|t| lock(&self.param_headers).get(&t).cloned());
                if let Some(annotated) = annotated {
                    let arguments = params.as_ref().and_then(|p| p.get("arguments"));
                    call.mirrored
                        .extend(crate::downstream::era::param_header_values(
                            &annotated,
                            arguments.as_ref(),
                        ));
                }
            }
        }
        let flight = Flight {
            tx: call.sender(),
            client,
        };
        lock(&self.flights).insert(id, flight);
        let (mode, generation) = {
            let session = lock(&self.session);
            (session.mode.clone(), session.generation)
        };
        call.generation = generation;
        call.auth_generation = self.target.auth.as_ref().map_or(0, |a| a.generation());
        match mode {
            Mode::Legacy { endpoint } => {
                self.post_whole(&endpoint, &call.request, deadline)
                    .map_err(|e| self.failed(&e))?;
                call.wire = Wire::Inbox;
            }
            Mode::New | Mode::Streamable => {
                let in_session = method != "initialize";
                let (conn, reused) =
                    self.start_post(&call.request, in_session, &call.mirrored, deadline)?;
                call.wire = Wire::Head { conn, reused };
            }
        }
        Ok(call)
    }
}

impl<'a> RemoteCall<'a> {
    pub(super) fn new(
        link: &'a RemoteLink,
        id: u64,
        method: &str,
        request: Vec<u8>,
        deadline: Instant,
    ) -> RemoteCall<'a> {
        let (tx, rx) = crossbeam_channel::unbounded();
        RemoteCall {
            link,
            id,
            method: method.to_string(),
            request,
            rx,
            tx,
            deadline,
            wire: Wire::Over,
            resent: false,
            resumes: 0,
            generation: 0,
            session_id: None,
            status: None,
            jsonrpc_error: false,
            mirrored: Vec::new(),
            auth_retried: false,
            auth_generation: 0,
        }
    }

    /// Where others (the reactor, the stream thread) put messages for this call.
    pub fn sender(&self) -> Sender<Inbound> {
        self.tx.clone()
    }

    /// Times this call resumed its answer stream.
    pub fn resumes(&self) -> u32 {
        self.resumes
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
                    if let Some(step) = self.wait_inbox(self.deadline)? {
                        return Ok(step);
                    }
                }
                Wire::Resume { at, last_event_id } if now < at => {
                    self.wire = Wire::Resume { at, last_event_id };
                    if let Some(step) = self.wait_inbox(at.min(self.deadline))? {
                        return Ok(step);
                    }
                }
                Wire::Resume { last_event_id, .. } => {
                    self.resumes += 1;
                    log::debug!(
                        "{}: resuming the answer to {} after event {last_event_id}",
                        self.link.label(),
                        self.method
                    );
                    let conn = self.link.start_resume(&last_event_id, self.deadline)?;
                    self.wire = Wire::Head {
                        conn,
                        reused: false,
                    };
                }
                Wire::Head { mut conn, reused } => match conn.response_head(slice) {
                    Ok(head) => {
                        if let Some(step) = self.on_head(conn, head)? {
                            return Ok(step);
                        }
                    }
                    Err(ConnError::Timeout) => self.wire = Wire::Head { conn, reused },
                    // The server closed an idle keep-alive connection as we used it.
                    Err(ConnError::Closed) if reused && !self.resent && self.resumes == 0 => {
                        self.resend()?
                    }
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
                    Err(ConnError::Timeout) => self.wire = Wire::Stream { conn, head },
                    Ok(None) | Err(ConnError::Closed) => self.stream_ended(&conn)?,
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

    /// Waits for a message in the inbox until `until`.
    fn wait_inbox(&mut self, until: Instant) -> Result<Option<Inbound>, CallError> {
        match self.rx.recv_deadline(until) {
            Ok(message) => self.inbound(message),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(CallError::Closed(self.link.death_note())),
        }
    }

    /// The answer stream ended without the answer: resume it if the server made that possible.
    fn stream_ended(&mut self, conn: &Conn) -> Result<(), CallError> {
        let link = self.link;
        match conn.last_event_id() {
            Some(last_event_id) if self.resumes < MAX_RESUMES && link.is_alive() => {
                let retry = conn
                    .reconnection_time()
                    .map_or(DEFAULT_RETRY, Duration::from_millis)
                    .min(MAX_RETRY);
                self.wire = Wire::Resume {
                    at: Instant::now() + retry,
                    last_event_id: last_event_id.to_string(),
                };
                Ok(())
            }
            Some(_) => Err(CallError::Closed(format!(
                "server {}: it closed the event stream of {} before answering, {} times",
                link.name, self.method, self.resumes
            ))),
            None => Err(CallError::Closed(format!(
                "server {}: its event stream ended without an answer to {} (and without event \
                 ids, so it cannot be resumed)",
                link.name, self.method
            ))),
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
        match head.status {
            200..=299 if head.content_type_is("text/event-stream") => {
                self.wire = Wire::Stream { conn, head };
                Ok(None)
            }
            200..=299 if head.content_type_is("application/json") && self.resumes == 0 => {
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
            status => {
                self.status = Some(status);
                let body = error_body(&mut conn, &head, self.deadline);
                self.jsonrpc_error = matches!(
                    Message::parse(&body),
                    Some(Message::Response {
                        outcome: Err(_),
                        ..
                    })
                );
                if let (Some(auth), 401 | 403) = (&link.target.auth, status) {
                    use crate::oauth::Verdict;
                    let challenge = head.header("www-authenticate");
                    let verdict = match (status, self.auth_retried) {
                        (401, true) => auth.refused_again(),
                        (403, true) => Verdict::Refused(format!(
                            "server \"{}\" refused {} even with a token of the scope it asked \
                             for (HTTP 403{})",
                            link.name,
                            self.method,
                            error_preview(&body)
                        )),
                        _ => auth.refused(status, challenge, self.auth_generation, self.deadline),
                    };
                    return match verdict {
                        Verdict::Retry => {
                            self.auth_retried = true;
                            let resent = self.resent;
                            self.resend()?;
                            self.resent = resent;
                            Ok(None)
                        }
                        // Nothing this handle sends will pass until someone logs in: it goes,
                        // so the pool says `needs login` (its replacement's handshake finds so).
                        Verdict::NeedsLogin(why) => {
                            link.die(why.clone());
                            Err(CallError::Unauthorized(why))
                        }
                        Verdict::Refused(why) => Err(CallError::Unauthorized(why)),
                    };
                }
                // (`initialize` is sent outside the session: its errors are never a lost session.)
                let (_, has_session) = link.generation();
                let in_session = has_session && self.method != "initialize";
                if in_session && lost_session(status, &body) && self.resumes == 0 {
                    if self.resent {
                        link.die(format!(
                            "server {}: it lost our session again at once (HTTP {status})",
                            link.name
                        ));
                        return Err(CallError::Closed(link.death_note()));
                    }
                    link.renew(self.generation, status, self.deadline)?;
                    self.resend()?;
                    return Ok(None);
                }
                let preview = error_preview(&body);
                let resuming = match self.resumes {
                    0 => "",
                    _ => " (resuming its answer stream)",
                };
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
                    "server {} answered {}{resuming} with {what}",
                    link.name, self.method
                )))
            }
        }
    }

    /// A message on the call's stream: the answer, progress, a request for the client, or
    /// something for everyone.
    fn on_event(&self, kind: &str, data: &str) -> Result<Option<Inbound>, CallError> {
        if kind != "message" || data.is_empty() {
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
            // A log message on the call's own stream is the call's (the only place a 2026-07-28
            // server sends one); a 2025 server's also goes to every session that set a level.
            Message::Notification { method, params } if method == "notifications/message" => {
                let params = params.unwrap_or_default();
                if self.link.modern() {
                    crate::downstream::message::log_server_message(&self.link.label(), &params);
                } else {
                    self.link.notice(&method, Some(params.clone()));
                }
                Some(Inbound::Log(params))
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
        self.auth_generation = self.link.target.auth.as_ref().map_or(0, |a| a.generation());
        let in_session = self.method != "initialize";
        let (conn, reused) =
            self.link
                .start_post(&self.request, in_session, &self.mirrored, self.deadline)?;
        self.wire = Wire::Head { conn, reused };
        Ok(())
    }
}

impl Drop for RemoteCall<'_> {
    /// The call's entry goes; a server request routed to it and still unanswered is refused, so
    /// the server does not wait for an answer that can no longer come.
    fn drop(&mut self) {
        let orphans = lock(&self.link.flights).remove(self.id);
        for request in orphans {
            let error = json!({
                "code": rpc::codes::INTERNAL_ERROR,
                "message": format!(
                    "the gateway's call {} that this request was given to ended before its \
                     client answered",
                    self.method
                ),
            });
            self.link.respond_to(&request, Err(&error));
        }
    }
}
