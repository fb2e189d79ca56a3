//! The Streamable HTTP transport (protocol 2025-03-26 and later) on `/mcp`.
//!
//! - `POST`: one JSON-RPC message. A notification or response is answered `202` with no body; a
//!   request with its JSON-RPC response as `application/json`, or — when the call sends progress (or
//!   the server asks the client something) before its result and the client accepts it — as a
//!   `text/event-stream` that ends after the result.
//! - `initialize` opens a session: the answer carries `Mcp-Session-Id`, which every later request
//!   must send (missing: 400; unknown or expired: 404, so the client knows to initialize again).
//! - `GET` opens the session's server→client stream (one at a time: a second gets 409).
//! - `DELETE` ends the session.
//! - `MCP-Protocol-Version`, when sent, must be a version the gateway speaks (400 −32022 otherwise,
//!   listing them); without it 2025-03-26 is assumed, as the spec says.
//! - A POST without a session that names 2026-07-28 (header or `_meta`) is not a session's: it goes
//!   to `modern`. Errors answered here echo the request's id whenever the body has one.

use super::session::Transport;
use super::{mcp, modern, Outcome, Outgoing, Response, Router};
use crate::downstream::handshake::SUPPORTED_PROTOCOL_VERSIONS;
use crate::http::{self, Request};
use crate::job::{ReplyTo, Slot};
use crate::rpc::{self, codes, Incoming};
use std::time::Instant;

const SESSION_HEADER: &str = "Mcp-Session-Id";

impl Router {
    /// `POST /mcp` (and `POST /sse`): a 2026-07-28 request (`modern`), or one of a 2025 session.
    /// Every refusal echoes the request's id when the body has one.
    pub(super) fn mcp_post(&mut self, conn: Slot, req: &Request, now: Instant) -> Outcome {
        if req.header("mcp-session-id").is_none() && modern::selected(req) {
            return self.modern_post(conn, req, now);
        }
        match self.session_post(conn, req, now) {
            Outcome::Respond(response) => Outcome::Respond(modern::echo_id(response, &req.body)),
            other => other,
        }
    }

    /// `POST /mcp` in the 2025 era.
    fn session_post(&mut self, conn: Slot, req: &Request, now: Instant) -> Outcome {
        if let Some(refusal) = media_types(req) {
            return respond(refusal);
        }
        if let Some(refusal) = check_protocol_version(req) {
            return respond(refusal);
        }
        if req.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return respond(Response::rpc_error(
                400,
                codes::INVALID_REQUEST,
                "Invalid Request: JSON-RPC batches are not supported (they were removed after protocol 2025-03-26); send one message per request",
            ));
        }
        let message = match rpc::classify(&req.body) {
            Ok(message) => message,
            // With an id the error is the request's answer; without one the message is unusable.
            Err(invalid) => {
                let status = if invalid.id.is_some() { 200 } else { 400 };
                return respond(Response::json(status, mcp::invalid(&invalid)));
            }
        };
        let initialize =
            matches!(&message, Incoming::Request { method, .. } if method == "initialize");
        let session = if initialize {
            if let Some(refusal) = self.session_cap() {
                return respond(refusal);
            }
            match self.sessions.open(Transport::Streamable, None, now) {
                Ok(session) => session,
                Err(e) => {
                    log::error!("cannot create a session id: {e}");
                    return respond(Response::rpc_error(
                        500,
                        codes::INTERNAL_ERROR,
                        "cannot create a session id",
                    ));
                }
            }
        } else {
            match self.session_of(req) {
                Ok(session) => session,
                Err(refusal) => return respond(refusal),
            }
        };
        let view = self.view(&super::profiles::requested(req));
        let state = self
            .sessions
            .get_mut(session)
            .expect("found or opened above");
        if initialize {
            state.profile = view.exposure.profile.clone();
            state.owner = self.principal.clone();
        }
        state.last_seen = now;
        state.used |= !initialize;
        let id_header = vec![(SESSION_HEADER, state.id.clone())];
        if !initialize {
            let request = matches!(message, Incoming::Request { .. });
            self.run_mcp(session, ReplyTo::Conn(conn), message, now, now);
            return if request {
                // The answer comes through the outbox now (or later: dispatched or held).
                Outcome::Await {
                    headers: id_header,
                    sse: req.accepts("text/event-stream") && req.minor_version == 1,
                }
            } else {
                respond(Response {
                    status: 202,
                    headers: id_header,
                    ..Response::json(202, Vec::new())
                })
            };
        }
        let registry = view;
        let origin = mcp::Origin {
            session: Some(session),
            to: ReplyTo::Conn(conn),
            now,
            may_hold: false,
        };
        let action = mcp::handle(&registry, state, message, origin);
        let accepted = state.protocol_version.is_some();
        let mut id_header = id_header;
        if accepted {
            if let Some(id) = self.signed_id(session) {
                id_header[0].1 = id;
            }
        }
        match action {
            mcp::Action::Reply(json) if accepted => {
                log::debug!("session {} opened (Streamable HTTP)", id_header[0].1);
                respond(Response {
                    headers: id_header,
                    ..Response::json(200, json)
                })
            }
            mcp::Action::Reply(json) => {
                // initialize was refused (bad params): no session came of it.
                self.close_session(session);
                respond(Response::json(200, json))
            }
            other => unreachable!("initialize is answered at once, not {other:?}"),
        }
    }

    /// `GET /mcp`: the session's server→client stream.
    pub(super) fn mcp_get(&mut self, conn: Slot, req: &Request, now: Instant) -> Outcome {
        // The spec requires the client to list text/event-stream; a missing Accept does not.
        if req.header("accept").is_none() || !req.accepts("text/event-stream") {
            return respond(Response::rpc_error(
                406,
                codes::INVALID_REQUEST,
                "GET /mcp opens an event stream: send Accept: text/event-stream",
            ));
        }
        if let Some(refusal) = check_protocol_version(req) {
            return respond(refusal);
        }
        let session = match self.session_of(req) {
            Ok(session) => session,
            Err(refusal) => return respond(refusal),
        };
        let state = self.sessions.get_mut(session).expect("found above");
        if state.stream.is_some() {
            return respond(Response::rpc_error(
                409,
                codes::INVALID_REQUEST,
                "this session already has its stream open; only one GET stream per session",
            ));
        }
        state.stream = Some(conn);
        state.last_seen = now;
        state.used = true;
        let id = state.id.clone();
        let mut headers = self.cors_headers(req);
        headers.push((SESSION_HEADER, id));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut head = Vec::with_capacity(256);
        http::response::write_sse_head(&mut head, &headers);
        Outcome::Stream { head, session }
    }

    /// `DELETE /mcp`: the client ends its session.
    pub(super) fn mcp_delete(&mut self, req: &Request) -> Response {
        let session = match self.session_of(req) {
            Ok(session) => session,
            Err(refusal) => return refusal,
        };
        if let Some(closed) = self.close_session(session) {
            log::debug!("session {} deleted by the client", closed.id);
            if let Some(stream) = closed.stream {
                self.outbox.push(Outgoing::Close(stream));
            }
        }
        Response::json(200, Vec::new())
    }

    /// 503 when `gateway.maxSessions` sessions are open already.
    pub(super) fn session_cap(&self) -> Option<Response> {
        let max = self.settings.max_sessions;
        if self.sessions.len() < max {
            return None;
        }
        log::warn!("refused a new session: gateway.maxSessions ({max}) reached");
        Some(
            Response::rpc_error(
                503,
                codes::SERVER_UNAVAILABLE,
                &format!(
                    "too many sessions (gateway.maxSessions is {max}); end unused ones (DELETE /mcp) or try again later"
                ),
            )
            .header("Retry-After", "5"),
        )
    }

    /// The Streamable HTTP session a request names.
    fn session_of(&mut self, req: &Request) -> Result<Slot, Response> {
        let Some(id) = req.header("mcp-session-id") else {
            return Err(Response::rpc_error(
                400,
                codes::INVALID_REQUEST,
                "missing the Mcp-Session-Id header; send initialize first to get one",
            ));
        };
        let found = self.sessions.find(id).filter(|slot| {
            self.sessions
                .get(*slot)
                .is_some_and(|s| s.transport == Transport::Streamable)
        });
        let slot = found.or_else(|| self.restore(id)).ok_or_else(|| {
            Response::rpc_error(
                404,
                codes::INVALID_REQUEST,
                "unknown or expired session: initialize again to get a new one",
            )
        })?;
        if let Some(refusal) = self.owner_mismatch(slot) {
            return Err(refusal);
        }
        match self.profile_mismatch(slot, req) {
            Some(refusal) => Err(refusal),
            None => Ok(slot),
        }
    }

    /// A session opened before this process started (or on a replica with the same key), from
    /// its signed id (`signed`).
    fn restore(&mut self, id: &str) -> Option<Slot> {
        let claims = self
            .signer
            .as_ref()?
            .verify(id, std::time::SystemTime::now())?;
        if self.sessions.ended_here(id) || self.session_cap().is_some() {
            return None;
        }
        let slot = self.sessions.restore(id, claims, Instant::now()).ok()?;
        log::info!(
            "session {}… restored from its signed id",
            &id[..id.len().min(12)]
        );
        Some(slot)
    }

    /// Gives a session that just initialized its signed id; None without a key.
    fn signed_id(&mut self, session: Slot) -> Option<String> {
        let state = self.sessions.get(session)?;
        let claims = super::signed::Claims {
            protocol_version: state.protocol_version.clone()?,
            capabilities: (*state.client_capabilities).clone(),
            profile: state.profile.clone(),
            client_searches: state.client_searches,
            opened: super::signed::unix_now(),
            owner: state.owner.clone(),
        };
        let id = match self.signer.as_ref()?.issue(&claims) {
            Ok(id) => id,
            Err(e) => {
                log::warn!("cannot sign a session id ({e}): this session ends with the process");
                return None;
            }
        };
        self.sessions
            .rename(session, id.clone(), Some(claims.opened));
        Some(id)
    }
}

/// A POST to `/mcp` must send JSON (415) and accept JSON or an event stream (406), in both eras.
pub(super) fn media_types(req: &Request) -> Option<Response> {
    if req.header("content-type").is_some() && !req.content_type_is("application/json") {
        return Some(Response::rpc_error(
            415,
            codes::INVALID_REQUEST,
            "the body must be one JSON-RPC message sent as Content-Type: application/json",
        ));
    }
    if !req.accepts("application/json") && !req.accepts("text/event-stream") {
        return Some(Response::rpc_error(
            406,
            codes::INVALID_REQUEST,
            "the client must accept application/json or text/event-stream",
        ));
    }
    None
}

fn respond(response: Response) -> Outcome {
    Outcome::Respond(response)
}

/// A version header a session's request may not carry: 400 −32022 (as 2026-07-28 says; the 2025
/// revisions give only the status), listing what the gateway speaks.
fn check_protocol_version(req: &Request) -> Option<Response> {
    let version = req.header("mcp-protocol-version")?;
    if SUPPORTED_PROTOCOL_VERSIONS.contains(&version) {
        return None;
    }
    let mut refusal = modern::Refusal::unsupported(version);
    if modern::MODERN_VERSIONS.contains(&version) {
        refusal.message = format!(
            "MCP-Protocol-Version {version} is stateless: its requests carry no Mcp-Session-Id (a session speaks {})",
            SUPPORTED_PROTOCOL_VERSIONS.join(", ")
        );
    }
    Some(refusal.response(None))
}
