//! The legacy HTTP+SSE transport (protocol 2024-11-05): `GET /sse` opens a session stream and names
//! the endpoint; `POST /messages?sessionId=` carries one client message and is answered `202`, the
//! JSON-RPC answer travelling as `event: message` on the stream.
//!
//! A body that cannot be read as a message is answered on the POST itself (400 with a JSON-RPC error).
//! A message that is readable enough to have an id but is otherwise invalid is answered on the stream
//! instead, in the request's place, so the client's pending request resolves instead of hanging.

use super::session::Transport;
use super::{mcp, Outcome, Response, Router};
use crate::http::{self, Request};
use crate::job::{ReplyTo, Slot};
use crate::rpc::{self, codes};
use std::time::Instant;

impl Router {
    /// `GET /sse`.
    pub(super) fn open_sse(&mut self, conn: Slot, req: &Request, now: Instant) -> Outcome {
        if let Some(refusal) = self.session_cap() {
            return Outcome::Respond(refusal);
        }
        let session = match self.sessions.open(Transport::LegacySse, Some(conn), now) {
            Ok(session) => session,
            Err(e) => {
                log::error!("cannot create a session id: {e}");
                return Outcome::Respond(Response::error(
                    500,
                    codes::INTERNAL_ERROR,
                    "cannot create a session id",
                ));
            }
        };
        let profile = super::profiles::requested(req);
        let state = self.sessions.get_mut(session).expect("just opened");
        state.profile = profile.clone();
        state.owner = self.principal.clone();
        let id = state.id.clone();
        log::debug!("session {id} opened (legacy SSE, profile {profile})");
        let cors = self.cors_headers(req);
        let cors: Vec<(&str, &str)> = cors.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut head = Vec::with_capacity(256);
        http::response::write_sse_head(&mut head, &cors);
        let messages = super::profiles::path_for("/messages", &profile);
        let endpoint = format!("{messages}?sessionId={id}");
        http::sse::write_event(&mut head, Some("endpoint"), None, endpoint.as_bytes());
        Outcome::Stream { head, session }
    }

    /// `POST /messages?sessionId=...`.
    pub(super) fn post_message(&mut self, req: &Request, now: Instant) -> Response {
        let Some(id) = req.query_param("sessionId") else {
            return Response::rpc_error(
                400,
                codes::INVALID_REQUEST,
                "missing the sessionId query parameter; use the endpoint sent by GET /sse",
            );
        };
        // Only legacy sessions: a Streamable HTTP session's answers would go nowhere from here.
        let legacy = |slot: &Slot| {
            self.sessions
                .get(*slot)
                .is_some_and(|s| s.transport == Transport::LegacySse)
        };
        let Some(session) = self.sessions.find(&id).filter(legacy) else {
            return Response::rpc_error(
                404,
                codes::INVALID_REQUEST,
                "unknown session: it ended or never existed; open a new one with GET /sse",
            );
        };
        if let Some(refusal) = self.owner_mismatch(session) {
            return refusal;
        }
        if let Some(refusal) = self.profile_mismatch(session, req) {
            return refusal;
        }
        let message = match rpc::classify(&req.body) {
            Ok(message) => message,
            Err(invalid) if invalid.id.is_some() => {
                self.to_session(session, &mcp::invalid(&invalid));
                return accepted();
            }
            Err(invalid) => return Response::json(400, mcp::invalid(&invalid)),
        };
        self.run_mcp(session, ReplyTo::Session(session), message, now, now);
        accepted()
    }
}

fn accepted() -> Response {
    Response {
        status: 202,
        content_type: "text/plain; charset=utf-8",
        headers: Vec::new(),
        body: b"Accepted".to_vec(),
        close: false,
    }
}
