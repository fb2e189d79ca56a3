//! The gateway over HTTP: POSTing one message (its answer as JSON or as an event stream), the
//! server→client stream, `DELETE`, and opening a session — Streamable HTTP first, the legacy
//! HTTP+SSE transport when the server only has that (the spec's backwards-compatibility rules).
//!
//! Built on the gateway's own blocking HTTP/1.1 client (`downstream::remote::conn`); nothing here
//! speaks HTTP by itself.
//!
//! Invariants:
//! - Every failure says whether the message could have reached the server: [`Failure::Unreachable`]
//!   and [`Failure::SessionGone`] mean it did not (safe to send again on a new session),
//!   [`Failure::Lost`] means nobody knows.
//! - Idle keep-alive connections are reused only if the server has not closed them meanwhile
//!   (`Conn::is_stale`), so a restarted gateway is seen as unreachable, not as a lost call.
//! - Waits are bounded by the caller's deadline, except a request's answer, which may take as
//!   long as the call does; such a connection can always be shut down through its [`Closer`].

use crate::downstream::remote::conn::{no_deadline, Closer, Conn, ConnError, ResponseHead};
use crate::downstream::remote::shared::{await_endpoint, EndpointError, IdleConns};
use crate::downstream::remote::tls::Tls;
use crate::downstream::remote::url::Url;
use crate::rpc::{codes, Id};
use std::time::{Duration, Instant};

use super::message::{self, Kind};

/// Bound on connecting (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on opening a session (the initialize exchange, or the legacy stream's endpoint event).
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest single answer read whole (an SSE event has the parser's own 16 MiB limit).
const MAX_ANSWER_BYTES: usize = 128 << 20;
/// Most of an error response's body read for its message.
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;
/// Idle connections kept for reuse.
const MAX_IDLE: usize = 8;

/// How the session's messages travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Streamable HTTP: POST to the URL with the session's headers.
    Streamable {
        session_id: Option<String>,
        /// The protocol version the initialize result named, sent as `MCP-Protocol-Version`.
        version: Option<String>,
    },
    /// Legacy HTTP+SSE: POST to the endpoint the stream named; answers come on the stream.
    Legacy { endpoint: Url },
}

/// Why a message did not get through.
#[derive(Debug)]
pub enum Failure {
    /// Connecting failed: nothing was sent.
    Unreachable(String),
    /// The server does not know the session (404): the message was not processed.
    SessionGone,
    /// The connection failed during the exchange: the message may or may not have been processed.
    Lost(String),
    /// The server answered with an HTTP error; `code` and `message` are for the client.
    Refused { code: i64, message: String },
    /// The bridge shut the connection down (the call was cancelled or its session lost).
    Shutdown,
}

impl Failure {
    fn from_conn(error: ConnError) -> Failure {
        match error {
            ConnError::Shutdown => Failure::Shutdown,
            other => Failure::Lost(other.to_string()),
        }
    }

    /// In words, for logs and errors.
    pub fn describe(&self) -> String {
        match self {
            Failure::Unreachable(why) | Failure::Lost(why) => why.clone(),
            Failure::SessionGone => "the gateway no longer knows the session (404)".into(),
            Failure::Refused { message, .. } => message.clone(),
            Failure::Shutdown => "the connection was shut down".into(),
        }
    }
}

/// What a POST produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Posted {
    /// `202`: taken, no answer on this request (notifications, responses, legacy transport).
    Accepted,
    /// The answer's messages were handed over.
    Answered,
}

/// The server→client stream of a session.
pub enum Stream {
    /// Open: read it with `Conn::next_event`.
    Open(Box<Conn>, ResponseHead),
    /// The server offers none (405), or refused it for a reason the session survives.
    Unavailable(String),
    /// The server is unreachable or forgot the session.
    Gone(String),
}

/// A session just opened: how to reach it, and the server's answer to initialize.
pub struct Opened {
    pub route: Route,
    /// The whole JSON-RPC response to initialize (result or error).
    pub answer: Vec<u8>,
    /// The answer is a result (a session exists), not an error.
    pub accepted: bool,
    /// Legacy transport: the session's stream, already past the initialize answer.
    pub stream: Option<(Box<Conn>, ResponseHead)>,
}

/// What a POST tells its caller about its connection: `on_conn` gets the connection's closer
/// before anything is sent (false: send nothing), `on_release` runs before the connection goes
/// back to the idle pool (after that, the closer must no longer be used).
pub struct Hooks<C, R> {
    pub on_conn: C,
    pub on_release: R,
}

impl Hooks<fn(Closer) -> bool, fn()> {
    /// For messages nobody needs to stop.
    pub fn none() -> Self {
        Hooks {
            on_conn: |_| true,
            on_release: || {},
        }
    }
}

/// The gateway's URL, credentials and idle connections.
pub struct Http {
    url: Url,
    authorization: Option<String>,
    tls: Option<Tls>,
    idle: IdleConns,
}

impl Http {
    /// `token` is sent as `Authorization: Bearer <token>` on every request.
    pub fn new(url: Url, token: Option<&str>) -> Result<Http, String> {
        let tls = match url.tls {
            true => Some(Tls::system()?),
            false => None,
        };
        Ok(Http {
            url,
            authorization: token.map(|t| format!("Bearer {t}")),
            tls,
            idle: IdleConns::new(MAX_IDLE),
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// POSTs one message on `route` (`None`: Streamable HTTP with no session yet). Each message
    /// of the answer goes to `on_message`, in order.
    pub fn post(
        &self,
        route: Option<&Route>,
        body: &[u8],
        deadline: Instant,
        hooks: Hooks<impl FnOnce(Closer) -> bool, impl FnOnce()>,
        mut on_message: impl FnMut(Vec<u8>),
    ) -> Result<Posted, Failure> {
        let legacy = matches!(route, Some(Route::Legacy { .. }));
        let (url, session_id, version) = match route {
            Some(Route::Legacy { endpoint }) => (endpoint, None, None),
            Some(Route::Streamable {
                session_id,
                version,
            }) => (&self.url, session_id.as_deref(), version.as_deref()),
            None => (&self.url, None, None),
        };
        let mut conn = self.conn(url, deadline)?;
        if !(hooks.on_conn)(conn.closer()) {
            return Err(Failure::Shutdown);
        }
        let headers = self.post_headers(session_id, version);
        let head = conn
            .send("POST", &url.path, &headers, body, deadline)
            .map_err(Failure::from_conn)?;
        let result = match head.status {
            202 | 204 => {
                let _ = conn.finish_body(&head, deadline);
                Ok(Posted::Accepted)
            }
            200..=299 => {
                read_answer(&mut conn, &head, deadline, &mut on_message)?;
                Ok(Posted::Answered)
            }
            404 if session_id.is_some() || legacy => {
                let _ = conn.finish_body(&head, deadline);
                Err(Failure::SessionGone)
            }
            status => {
                let answer = conn
                    .read_body(&head, MAX_ERROR_BODY_BYTES, deadline)
                    .unwrap_or_default();
                // The gateway's own JSON-RPC error for this request (what the 2026-07-28 era
                // answers with 4xx) is relayed as it is, `data` included; 401 gets the bridge's
                // advice about the token.
                if status != 401 && answers(body, &answer) {
                    on_message(answer);
                    Ok(Posted::Answered)
                } else {
                    Err(refusal(status, &answer))
                }
            }
        };
        (hooks.on_release)();
        self.keep(conn);
        result
    }

    /// `GET` the session's server→client stream (Streamable HTTP).
    pub fn open_stream(&self, session_id: Option<&str>, version: Option<&str>) -> Stream {
        let deadline = Instant::now() + OPEN_TIMEOUT;
        let mut conn = match self.conn(&self.url, deadline) {
            Ok(conn) => conn,
            Err(failure) => return Stream::Gone(failure.describe()),
        };
        let mut headers = vec![("Accept", "text/event-stream")];
        self.session_headers(&mut headers, session_id, version);
        let head = match conn.send("GET", &self.url.path, &headers, b"", deadline) {
            Ok(head) => head,
            Err(e) => return Stream::Gone(format!("opening the event stream failed: {e}")),
        };
        match head.status {
            200 if head.content_type_is("text/event-stream") => Stream::Open(Box::new(conn), head),
            404 if session_id.is_some() => Stream::Gone(Failure::SessionGone.describe()),
            status => {
                let why = refused(&mut conn, &head, deadline).describe();
                self.keep(conn);
                Stream::Unavailable(format!("no event stream ({status}): {why}"))
            }
        }
    }

    /// Ends a Streamable HTTP session (`DELETE`), best effort.
    pub fn delete(&self, session_id: &str, version: Option<&str>, deadline: Instant) {
        let Ok(mut conn) = self.conn(&self.url, deadline) else {
            return;
        };
        let mut headers = Vec::new();
        self.session_headers(&mut headers, Some(session_id), version);
        match conn.send("DELETE", &self.url.path, &headers, b"", deadline) {
            Ok(head) => log::debug!("DELETE {}: {}", self.url, head.status),
            Err(e) => log::debug!("DELETE {}: {e}", self.url),
        }
    }

    /// Opens a session with `init` (an initialize request whose id is `init_id`): Streamable
    /// HTTP, unless `legacy` or the server refuses the POST with 400, 404 or 405 — then the
    /// legacy transport (GET the URL, expect an `endpoint` event, POST there). Messages other
    /// than the answer that come meanwhile go to `others`.
    pub fn open_session(
        &self,
        init: &[u8],
        init_id: &Id,
        legacy: bool,
        mut others: impl FnMut(Vec<u8>),
    ) -> Result<Opened, Failure> {
        let deadline = Instant::now() + OPEN_TIMEOUT;
        if legacy {
            return self.open_legacy(init, init_id, deadline, others);
        }
        let mut conn = self.conn(&self.url, deadline)?;
        let headers = self.post_headers(None, None);
        let head = conn
            .send("POST", &self.url.path, &headers, init, deadline)
            .map_err(Failure::from_conn)?;
        match head.status {
            200..=299 => {}
            400 | 404 | 405 => {
                log::info!(
                    "{} answered POST with {}: trying the legacy HTTP+SSE transport",
                    self.url,
                    head.status
                );
                let _ = conn.finish_body(&head, deadline);
                self.keep(conn);
                return self.open_legacy(init, init_id, deadline, others);
            }
            _ => {
                return Err(refused(&mut conn, &head, deadline));
            }
        }
        let session_id = head.header("mcp-session-id").map(str::to_owned);
        let mut answer = None;
        read_answer(&mut conn, &head, deadline, &mut |m| match (
            answer.is_none(),
            is_response_to(&m, init_id),
        ) {
            (true, true) => answer = Some(m),
            _ => others(m),
        })?;
        self.keep(conn);
        let answer = answer.ok_or_else(|| {
            Failure::Lost("the server's answer to initialize has no response".into())
        })?;
        let version = negotiated_version(&answer);
        Ok(Opened {
            accepted: version.is_some(),
            route: Route::Streamable {
                session_id,
                version,
            },
            answer,
            stream: None,
        })
    }

    /// The legacy HTTP+SSE transport: the stream first, then initialize to its endpoint.
    fn open_legacy(
        &self,
        init: &[u8],
        init_id: &Id,
        deadline: Instant,
        mut others: impl FnMut(Vec<u8>),
    ) -> Result<Opened, Failure> {
        let mut conn = self.conn(&self.url, deadline)?;
        let mut headers = vec![("Accept", "text/event-stream")];
        self.session_headers(&mut headers, None, None);
        let head = conn
            .send("GET", &self.url.path, &headers, b"", deadline)
            .map_err(Failure::from_conn)?;
        if head.status != 200 || !head.content_type_is("text/event-stream") {
            return Err(refused(&mut conn, &head, deadline));
        }
        let endpoint =
            await_endpoint(&mut conn, &head, &self.url, deadline).map_err(|e| match e {
                EndpointError::Conn(e) => Failure::from_conn(e),
                EndpointError::Ended => Failure::Lost(e.to_string()),
                EndpointError::Unusable(words) => Failure::Refused {
                    code: codes::INTERNAL_ERROR,
                    message: format!("the server's endpoint event is unusable: {words}"),
                },
            })?;
        log::debug!("legacy HTTP+SSE session: POSTing to {endpoint}");
        let route = Route::Legacy { endpoint };
        self.post(Some(&route), init, deadline, Hooks::none(), &mut others)?;
        let answer = loop {
            match conn
                .next_event(&head, deadline)
                .map_err(Failure::from_conn)?
            {
                Some(event) if event.event == "message" => {
                    let message = event.data.into_bytes();
                    if is_response_to(&message, init_id) {
                        break message;
                    }
                    others(message);
                }
                Some(_) => {}
                None => {
                    return Err(Failure::Lost(
                        "the server's event stream ended before its answer to initialize".into(),
                    ))
                }
            }
        };
        Ok(Opened {
            accepted: negotiated_version(&answer).is_some(),
            route,
            answer,
            stream: Some((Box::new(conn), head)),
        })
    }

    /// An idle connection to `url`'s origin that the server has not closed, else a new one.
    fn conn(&self, url: &Url, deadline: Instant) -> Result<Conn, Failure> {
        let deadline = deadline.min(Instant::now() + CONNECT_TIMEOUT);
        self.idle
            .take(url, self.tls.as_ref(), deadline)
            .map(|(conn, _)| conn)
            .map_err(|e| Failure::Unreachable(format!("cannot connect to {url}: {e}")))
    }

    /// Keeps `conn` for reuse if it can take another request.
    fn keep(&self, conn: Conn) {
        self.idle.keep(conn);
    }

    /// The headers of a POST: JSON in, JSON or an event stream out.
    fn post_headers<'a>(
        &'a self,
        session_id: Option<&'a str>,
        version: Option<&'a str>,
    ) -> Vec<(&'a str, &'a str)> {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        self.session_headers(&mut headers, session_id, version);
        headers
    }

    /// Authorization, and the session's id and protocol version when there is a session.
    fn session_headers<'a>(
        &'a self,
        headers: &mut Vec<(&'a str, &'a str)>,
        session_id: Option<&'a str>,
        version: Option<&'a str>,
    ) {
        if let Some(authorization) = &self.authorization {
            headers.push(("Authorization", authorization));
        }
        if let Some(id) = session_id {
            headers.push(("Mcp-Session-Id", id));
        }
        if let Some(version) = version {
            headers.push(("MCP-Protocol-Version", version));
        }
    }
}

/// Hands each message of an answer to `on_message`: the body of a JSON answer, or every
/// `message` event of an event stream, until it ends.
fn read_answer(
    conn: &mut Conn,
    head: &ResponseHead,
    deadline: Instant,
    on_message: &mut dyn FnMut(Vec<u8>),
) -> Result<(), Failure> {
    if head.content_type_is("text/event-stream") {
        while let Some(event) = conn
            .next_event(head, deadline)
            .map_err(Failure::from_conn)?
        {
            if event.event == "message" && !event.data.trim().is_empty() {
                on_message(event.data.into_bytes());
            }
        }
        return Ok(());
    }
    let body = conn
        .read_body(head, MAX_ANSWER_BYTES, deadline)
        .map_err(Failure::from_conn)?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        on_message(body);
    }
    Ok(())
}

/// A deadline for a request's answer: none, the call takes as long as it takes.
pub fn call_deadline() -> Instant {
    no_deadline()
}

fn is_response_to(message: &[u8], id: &Id) -> bool {
    matches!(message::peek(message), Ok(p) if p.kind == Kind::Response { id: id.clone() })
}

/// `result.protocolVersion` of an initialize answer; `None` if it is an error.
fn negotiated_version(answer: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(answer).ok()?;
    Some(
        value
            .get("result")?
            .get("protocolVersion")?
            .as_str()?
            .to_owned(),
    )
}

/// The refusal an error response stands for (its body read, up to a limit, for the message).
fn refused(conn: &mut Conn, head: &ResponseHead, deadline: Instant) -> Failure {
    let body = conn
        .read_body(head, MAX_ERROR_BODY_BYTES, deadline)
        .unwrap_or_default();
    refusal(head.status, &body)
}

/// Whether `answer` is a JSON-RPC error response to the request `request`.
fn answers(request: &[u8], answer: &[u8]) -> bool {
    let Ok(message::Peeked {
        kind: Kind::Request { id, .. },
        ..
    }) = message::peek(request)
    else {
        return false;
    };
    is_response_to(answer, &id) && message::error_in_body(answer).is_some()
}

/// The JSON-RPC error the client gets for an HTTP error status: the gateway's own code and
/// message when its body has them.
fn refusal(status: u16, body: &[u8]) -> Failure {
    let theirs = message::error_in_body(body);
    let (code, message) = match (status, theirs) {
        (401, theirs) => (
            codes::SERVER_UNAVAILABLE,
            format!(
                "the gateway requires a valid bearer token (401{}): pass --token or set MCP_GATEWAY_TOKEN",
                theirs.map(|(_, m)| format!(": {m}")).unwrap_or_default()
            ),
        ),
        (_, Some((code, message))) => (code, format!("the gateway refused the request ({status}): {message}")),
        (403, None) => (codes::SERVER_UNAVAILABLE, "the gateway refused the request (403 Forbidden)".into()),
        (413, None) => (codes::INVALID_REQUEST, "the message is larger than the gateway accepts (413)".into()),
        (400..=499, None) => (codes::INVALID_REQUEST, format!("the gateway refused the request ({status})")),
        (_, None) => (codes::INTERNAL_ERROR, format!("the gateway failed to answer ({status})")),
    };
    Failure::Refused { code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_the_gateway_code_and_mention_the_token_on_401() {
        let Failure::Refused { code, message } = refusal(
            400,
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"bad"}}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (code, message.as_str()),
            (-32600, "the gateway refused the request (400): bad")
        );
        let Failure::Refused { message, .. } = refusal(401, b"") else {
            panic!()
        };
        assert!(message.contains("MCP_GATEWAY_TOKEN"), "{message}");
        let Failure::Refused { code, .. } = refusal(502, b"<html>") else {
            panic!()
        };
        assert_eq!(code, codes::INTERNAL_ERROR);
    }

    #[test]
    fn the_negotiated_version_comes_from_the_result() {
        assert_eq!(
            negotiated_version(
                br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18"}}"#
            )
            .as_deref(),
            Some("2025-06-18")
        );
        assert_eq!(
            negotiated_version(br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#),
            None
        );
    }
}
