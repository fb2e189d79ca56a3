//! How the reactor answers: a worker's answer (or the messages before it) framed as a plain HTTP
//! response or as an SSE stream for the connection waiting on it, the caps on bytes queued for
//! clients (per connection and in total) with the answer a client gets when one is hit, and the
//! gateway's own error responses. The event loop (`mod.rs`) decides when; this file decides what
//! goes on the wire.

use super::conn::{Conn, State};
use super::*;

impl Reactor {
    /// A worker's message for a connection waiting on it: the answer (`last`), or a message before
    /// it, which turns the answer into an event stream when the client accepts one. Returns whether
    /// the message could be sent.
    pub(super) fn answer_conn(
        &mut self,
        slot: Slot,
        status: u16,
        body: Vec<u8>,
        last: bool,
        now: Instant,
    ) -> bool {
        let Some(conn) = self.conns.get_mut(slot.key).filter(|c| c.gen == slot.gen) else {
            return false; // the client left; nobody to tell
        };
        let State::Awaiting {
            keep_alive,
            head_only,
            ref mut headers,
            sse,
            ref mut streaming,
            ..
        } = conn.state
        else {
            return false;
        };
        if !last && !sse {
            return false; // a message for a client that only takes one JSON answer
        }
        let keep_alive = keep_alive && !conn.read_closed && self.shutdown_deadline.is_none();
        // An answer that comes alone is plain JSON; messages before it make it an event stream.
        if !last || *streaming {
            let mut out = Vec::with_capacity(body.len() + 64);
            if !*streaming {
                *streaming = true;
                let mut extra: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                extra.push(("Transfer-Encoding", "chunked"));
                http::response::write_sse_head(&mut out, &extra);
            }
            let mut event = Vec::with_capacity(body.len() + 24);
            http::sse::write_event(&mut event, Some("message"), None, &body);
            http::write_chunk(&mut out, &event);
            if !last {
                if !self.queue_capped(slot.key, &out) {
                    return false;
                }
                self.flush(slot.key, now);
                return true;
            }
            out.extend_from_slice(http::LAST_CHUNK);
            if !self.queue_capped(slot.key, &out) {
                return false;
            }
        } else {
            let response = Response {
                status,
                content_type: "application/json",
                headers: std::mem::take(headers),
                body,
                close: false,
            };
            if conn.pending() + response.body.len() > self.settings.max_queued_bytes {
                self.over_queue_cap(slot.key, response.body.len());
                return false;
            }
            write_response(conn, response, keep_alive, head_only);
        }
        let Some(conn) = self.conns.get_mut(slot.key) else {
            return false;
        };
        conn.state = if keep_alive {
            State::Reading
        } else {
            State::Closing
        };
        // Pipelined requests may be waiting, and reading may have paused for backpressure: that
        // is done on the next turn of the loop, not from here (no recursion).
        self.queue_resume(slot);
        self.flush(slot.key, now);
        true
    }

    /// Queues bytes unless that takes the connection past `maxQueuedBytes` (then it is closed and
    /// its call cancelled). Returns whether they were queued.
    pub(super) fn queue_capped(&mut self, key: usize, bytes: &[u8]) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        if conn.pending() + bytes.len() > self.settings.max_queued_bytes {
            self.over_queue_cap(key, bytes.len());
            return false;
        }
        conn.queue(bytes);
        true
    }

    pub(super) fn over_queue_cap(&mut self, key: usize, adding: usize) {
        if let Some(conn) = self.conns.get(key) {
            log::warn!(
                "closing a client that has not read {} bytes (adding {adding} would pass gateway.maxQueuedBytes = {})",
                conn.pending(),
                self.settings.max_queued_bytes
            );
        }
        self.close(key);
    }

    /// Bytes written for clients and not yet read by them, over all connections.
    pub(super) fn queued_total(&self) -> usize {
        self.conns.iter().map(|(_, c)| c.pending()).sum()
    }

    /// The answer that replaces one too large for the memory left (`gateway.maxMemoryBytes`).
    pub(super) fn memory_full(
        &self,
        size: usize,
        queued: usize,
        call: Option<&crate::job::CallKey>,
    ) -> (u16, Vec<u8>) {
        let message = format!(
            "the gateway is out of memory for answers: {queued} bytes wait to be read by clients and this answer has {size} (gateway.maxMemoryBytes is {}); try again later",
            self.settings.max_memory_bytes
        );
        log::warn!("{message}");
        let failure = crate::job::Failure::Unavailable(message);
        (503, failure.body(call.map(|key| &key.id)))
    }

    /// The answer that replaces one no connection may hold (`gateway.maxQueuedBytes`).
    pub(super) fn too_large(
        &self,
        size: usize,
        call: Option<&crate::job::CallKey>,
    ) -> (u16, Vec<u8>) {
        let message = format!(
            "the answer has {size} bytes, more than one client may be sent (gateway.maxQueuedBytes is {})",
            self.settings.max_queued_bytes
        );
        log::warn!("{message}");
        let failure = crate::job::Failure::BadGateway(message);
        (502, failure.body(call.map(|key| &key.id)))
    }

    /// The grace period is over: every call still running gets "gateway stopping" (503 / -32000).
    pub(super) fn answer_stopping(&mut self, now: Instant) {
        for (conn, status, body) in self.router.stop_calls() {
            self.answer_conn(conn, status, body, true, now);
        }
        self.deliver_outbox(now);
    }
}

/// Appends a full response (head + body unless `head_only`).
pub(super) fn write_response(
    conn: &mut Conn,
    response: Response,
    keep_alive: bool,
    head_only: bool,
) {
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(response.headers.len() + 1);
    headers.push(("Content-Type", response.content_type));
    headers.extend(
        response
            .headers
            .iter()
            // `write_head` says `Connection: close` itself when the connection ends.
            .filter(|(k, _)| keep_alive || !k.eq_ignore_ascii_case("connection"))
            .map(|(k, v)| (*k, v.as_str())),
    );
    let mut out = Vec::with_capacity(128 + response.body.len());
    http::response::write_head(
        &mut out,
        response.status,
        &headers,
        Some(response.body.len()),
        keep_alive,
    );
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    conn.queue(&out);
}

/// The JSON answer to a request that could not be parsed.
pub(super) fn http_error(error: HttpError, limits: &Limits) -> Response {
    let mut message = error.describe(limits);
    if error == HttpError::BodyTooLarge {
        message.push_str(" (gateway.maxBodyBytes)");
    }
    Response {
        close: true,
        ..Response::error(error.status(), crate::rpc::codes::INVALID_REQUEST, &message)
    }
}

/// The answer to a connection over `maxClients`.
pub(super) fn over_capacity(max: usize) -> Response {
    let mut response = Response::error(
        503,
        crate::rpc::codes::SERVER_UNAVAILABLE,
        &format!("too many connections (gateway.maxClients is {max}); try again later"),
    );
    response.headers.push(("Retry-After", "1".into()));
    response.close = true;
    response
}

/// Far over `maxClients` (even the connections being told 503 are too many): a best-effort 503
/// written straight to the socket, which is then dropped unregistered.
pub(super) fn reject_over_capacity(sock: mio::net::TcpStream, max: usize) {
    use std::io::Write;
    let response = over_capacity(max);
    let mut out = Vec::new();
    http::response::write_response(
        &mut out,
        503,
        response.content_type,
        &[("Retry-After", "1")],
        &response.body,
        false,
    );
    let mut sock = sock;
    let _ = sock.write(&out);
    log::warn!("dropped a connection: far over maxClients ({max})");
}
