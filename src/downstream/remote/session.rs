//! The MCP session of a remote handle: which transport it speaks, `initialize`, and renewing a
//! session the server lost.
//!
//! - `transport: auto` POSTs `initialize` first and falls back to the legacy HTTP+SSE transport on
//!   400 (unless its body is a JSON-RPC error: an MCP server refusing, as a 2026-07-28 one does),
//!   404 or 405, as the spec's backwards-compatibility section says. The legacy stream, once
//!   its `endpoint` event came, is handed to the handle's stream thread.
//! - A server says it lost our session in more than one way: HTTP 404 (the spec), or HTTP 400 with
//!   a JSON-RPC error about the session id (TypeScript-SDK servers after a restart answer
//!   `"Bad Request: No valid session ID provided"`), on a POST or on the GET stream
//!   ([`lost_session`]). Then the handle initializes a new session with the same parameters, once
//!   per lost session whichever call or stream sees it first (`generation` tells), and the request
//!   is sent again once. If that fails, the handle dies.

use super::conn::Url;
use super::link::{error_body, error_preview, refs, Mode, Out, RemoteLink};
use super::lock;
use super::shared::await_endpoint;
use crate::config::RemoteTransport;
use crate::downstream::child_io::ChildEvent;
use crate::downstream::{Answer, CallError, Requester};
use crate::rpc::Params;
use serde_json::{Map, Value};
use std::time::Instant;

/// Whether an error response to a request that carried our `Mcp-Session-Id` says the server no
/// longer has that session: 404, or 400 whose JSON-RPC error message speaks of the session.
pub fn lost_session(status: u16, body: &[u8]) -> bool {
    match status {
        404 => true,
        400 => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| {
                Some(
                    v.get("error")?
                        .get("message")?
                        .as_str()?
                        .to_ascii_lowercase(),
                )
            })
            .is_some_and(|message| message.contains("session")),
        _ => false,
    }
}

impl RemoteLink {
    /// `initialize`: negotiates the transport (see the module docs) and records the session.
    pub(super) fn initialize(
        &self,
        params: Option<Map<String, Value>>,
        deadline: Instant,
    ) -> Result<Answer, CallError> {
        let params = params.unwrap_or_default();
        lock(&self.session).init = Some(params.clone());
        if self.target.transport != RemoteTransport::Sse {
            let mut call = self.begin(
                "initialize",
                Some(Params::from_map(params.clone())),
                false,
                deadline,
                None,
            )?;
            match call.answer() {
                Ok(answer) => {
                    self.adopt(Mode::Streamable, call.session_id.take(), &answer);
                    return Ok(answer);
                }
                Err(e) => {
                    // A 400 carrying a JSON-RPC error is an MCP server refusing the request
                    // (as a 2026-07-28 one does), not a server without Streamable HTTP.
                    let legacy = match call.status {
                        Some(400) => !call.jsonrpc_error,
                        Some(404 | 405) => true,
                        _ => false,
                    };
                    if self.target.transport == RemoteTransport::Streamable || !legacy {
                        return Err(e);
                    }
                    log::info!(
                        "{}: no Streamable HTTP here ({e}); trying the legacy SSE transport",
                        self.label()
                    );
                }
            }
        }
        let endpoint = self.open_legacy(deadline)?;
        lock(&self.session).mode = Mode::Legacy {
            endpoint: endpoint.clone(),
        };
        let answer = self
            .begin(
                "initialize",
                Some(Params::from_map(params)),
                false,
                deadline,
                None,
            )?
            .answer()?;
        self.adopt(Mode::Legacy { endpoint }, None, &answer);
        Ok(answer)
    }

    /// Records a successful `initialize`.
    fn adopt(&self, mode: Mode, id: Option<String>, answer: &Answer) {
        let Ok(result) = answer else {
            return;
        };
        let version = serde_json::from_str::<Value>(result.get())
            .ok()
            .and_then(|v| v.get("protocolVersion")?.as_str().map(str::to_string));
        let mut session = lock(&self.session);
        session.mode = mode;
        session.id = id;
        session.protocol = version;
        session.generation += 1;
    }

    /// The current session generation, and whether the server gave us a session id at all.
    pub(super) fn generation(&self) -> (u64, bool) {
        let session = lock(&self.session);
        (session.generation, session.id.is_some())
    }

    /// The server lost session `generation` (it answered `status`): opens a new one with the same
    /// `initialize` parameters, unless another call already did. A failure kills the handle.
    pub(super) fn renew(
        &self,
        generation: u64,
        status: u16,
        deadline: Instant,
    ) -> Result<(), CallError> {
        let _one_at_a_time = lock(&self.renewing);
        let init = {
            let session = lock(&self.session);
            if session.generation != generation {
                return Ok(());
            }
            // The old id stays until the new one replaces it: requests sent meanwhile carry it,
            // are refused the same way, and come here to wait for the new session.
            session.init.clone()
        };
        log::info!(
            "{}: the server no longer knows our session (HTTP {status}); starting a new one",
            self.label()
        );
        let outcome = self
            .begin(
                "initialize",
                init.map(Params::from_map),
                false,
                deadline,
                None,
            )
            .and_then(|mut call| {
                let answer = call.answer()?;
                Ok((answer, call.session_id.take()))
            });
        let failure = match outcome {
            Ok((answer @ Ok(_), id)) => {
                self.adopt(Mode::Streamable, id, &answer);
                self.initialized();
                (self.events)(ChildEvent::Renewed {
                    server: self.server,
                    serial: self.serial,
                });
                return Ok(());
            }
            Ok((Err(error), _)) => error.get().to_string(),
            Err(e) => e.to_string(),
        };
        self.die(format!(
            "server {}: its session was lost and initializing a new one failed: {failure}",
            self.name
        ));
        Err(CallError::Closed(self.death_note()))
    }

    /// Legacy transport: opens the GET stream, waits for its `endpoint` event, and hands the
    /// stream to the handle's stream thread. Returns the endpoint.
    fn open_legacy(&self, deadline: Instant) -> Result<Url, CallError> {
        let url = &self.target.url;
        let fail = |words: String| {
            CallError::Closed(format!(
                "server {} ({}): {words}",
                self.name,
                url.redacted()
            ))
        };
        let mut conn = self
            .connect(url, deadline)
            .map_err(|e| fail(e.to_string()))?;
        let headers = self.headers(false);
        let head = conn
            .send("GET", &url.path, &refs(&headers), b"", deadline)
            .map_err(|e| fail(e.to_string()))?;
        if head.status != 200 || !head.content_type_is("text/event-stream") {
            let preview = error_preview(&error_body(&mut conn, &head, deadline));
            return Err(fail(format!(
                "neither Streamable HTTP nor the legacy SSE transport answers here \
                 (GET: HTTP {}{preview})",
                head.status
            )));
        }
        let endpoint =
            await_endpoint(&mut conn, &head, url, deadline).map_err(|e| fail(e.to_string()))?;
        self.hold(conn.closer());
        self.post(Out::Legacy(Box::new((conn, head))));
        Ok(endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::lost_session;

    #[test]
    fn every_way_a_server_says_it_lost_the_session_is_recognized() {
        assert!(lost_session(404, b""));
        assert!(lost_session(404, b"Not Found"));
        // The TypeScript SDK's example servers (server-everything) after a restart.
        let ts = br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":null}"#;
        assert!(lost_session(400, ts));
        let header_required = br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: Mcp-Session-Id header is required"},"id":null}"#;
        assert!(lost_session(400, header_required));
    }

    #[test]
    fn other_errors_are_not_a_lost_session() {
        assert!(!lost_session(400, b"Bad Request"));
        let parse =
            br#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#;
        assert!(!lost_session(400, parse));
        let ts = br#"{"error":{"code":-32000,"message":"No valid session ID provided"}}"#;
        assert!(!lost_session(401, ts));
        assert!(!lost_session(500, ts));
    }
}
