//! Requests for names no server offers yet, held while a server that may offer them is still
//! starting.
//!
//! At startup, and while a server's first process is coming up, its tools, prompts and resources
//! are not listed yet. A call to one of them would wrongly be "unknown"; instead the request waits
//! (within `acquireTimeout`, as a call to a known tool waiting for a process would) and is tried
//! again whenever the registry changes. It is refused as unknown once no server is starting any
//! more, or when its time is up.

use super::{mcp, Outgoing, Response, Router};
use crate::config::ServerKind;
use crate::job::{ReplyTo, Slot};
use crate::pool::Status;
use crate::rpc::{codes, Id, Incoming, Params};
use serde_json::value::RawValue;
use std::time::Instant;

/// A held request, ready to be tried again.
#[derive(Debug)]
pub enum Held {
    /// `POST /tools/call` waiting on connection `conn`.
    Rest {
        conn: Slot,
        /// The profile whose tools it may call.
        profile: String,
        name: String,
        /// Exactly as the client wrote them.
        arguments: Box<RawValue>,
        created: Instant,
    },
    /// An MCP request of `session`, answered to `to`.
    Mcp {
        session: Slot,
        to: ReplyTo,
        message: Incoming,
        created: Instant,
    },
    /// A 2026-07-28 call waiting on connection `conn` (no session).
    Modern {
        conn: Slot,
        id: Id,
        method: String,
        params: Params,
        created: Instant,
        /// The profile of the URL it came to.
        profile: String,
    },
}

impl Router {
    /// Until when a request that arrived at `created` may be held: None when no enabled local
    /// server is still to list (starting its first process, or ready with its listing on the way).
    pub(super) fn hold_deadline(&self, created: Instant, now: Instant) -> Option<Instant> {
        let wait = self
            .servers
            .in_force()
            .filter(|(index, server, pool)| {
                server.enabled
                    && matches!(server.kind, ServerKind::Local(_))
                    && matches!(
                        self.registry.server_capabilities.get(*index),
                        Some(None) | None
                    )
                    // Up but not listed here yet: its listing is on its way to the reactor (the
                    // pool says ready first), so the call is held for it, not refused.
                    && matches!(pool.stats().status, Status::Starting | Status::Up)
            })
            .map(|(_, _, pool)| pool.settings().acquire_timeout)
            .max()?;
        Some(created + wait).filter(|deadline| *deadline > now)
    }

    pub(super) fn hold(&mut self, held: Held, deadline: Instant) {
        self.held.push((held, deadline));
    }

    /// When the next held request runs out of time.
    pub fn next_held_deadline(&self) -> Option<Instant> {
        self.held.iter().map(|(_, deadline)| *deadline).min()
    }

    /// Tries every held request again (after a registry change, and on housekeeping).
    pub fn retry_held(&mut self, now: Instant) {
        for (held, _) in std::mem::take(&mut self.held) {
            match held {
                Held::Rest {
                    conn,
                    profile,
                    name,
                    arguments,
                    created,
                } => {
                    let call = super::rest::RestCall {
                        conn,
                        profile,
                        name,
                        arguments,
                    };
                    if let Some(refusal) = self.rest_dispatch(call, created, now) {
                        self.outbox.push(Outgoing::Answer {
                            conn,
                            status: refusal.status,
                            body: refusal.body,
                        });
                    }
                }
                Held::Mcp {
                    session,
                    to,
                    message,
                    created,
                } => self.run_mcp(session, to, message, created, now),
                Held::Modern {
                    conn,
                    id,
                    method,
                    params,
                    created,
                    profile,
                } => {
                    let call = super::modern::StatelessCall {
                        conn,
                        id,
                        method,
                        params,
                        profile,
                    };
                    if let Some(answer) = self.stateless_call(call, created, now) {
                        self.outbox.push(Outgoing::Answer {
                            conn,
                            status: answer.status,
                            body: answer.body,
                        });
                    }
                }
            }
        }
    }

    /// Handles an MCP message of a session (first time or again), holding it if it names something
    /// a starting server may offer. Answers go to `to`.
    pub(super) fn run_mcp(
        &mut self,
        session: Slot,
        to: ReplyTo,
        message: Incoming,
        created: Instant,
        now: Instant,
    ) {
        let deadline = self.hold_deadline(created, now);
        let registry = self.session_view(session);
        let origin = mcp::Origin {
            session: Some(session),
            to,
            now: created,
            may_hold: deadline.is_some(),
        };
        // Keep a copy only when holding is possible: the common case pays nothing.
        let copy = deadline.map(|_| message.clone());
        let Some(state) = self.sessions.get_mut(session) else {
            return; // the session ended while its request was held
        };
        match mcp::handle(&registry, state, message, origin) {
            mcp::Action::Reply(json) => self.answer(to, json),
            mcp::Action::Refused {
                reply,
                method,
                target,
                code,
            } => {
                let error = crate::metrics::ErrorType::of_code(code);
                self.refused(method, target, Some(session), code, error);
                self.answer(to, reply);
            }
            mcp::Action::Dispatch(mut job) => {
                // What a 2026-07-28 server decides from the client's capabilities (whether it
                // may ask for sampling, elicitation, roots) and log level is decided for this
                // client: the handle's carrier puts them into the call if it speaks that era.
                job.declared = Some(crate::job::Declared {
                    capabilities: state.client_capabilities.clone(),
                    log_level: state.log_level,
                });
                let running = state.calls.len();
                let max = self.settings.max_in_flight_per_session;
                if running < max {
                    self.dispatch(*job);
                } else if let Some(id) = job.answer.id() {
                    let message = format!(
                        "too many requests in flight: this session already has {running} running (gateway.maxInFlightPerSession is {max}); wait for some to finish"
                    );
                    let json = crate::rpc::error_response(
                        Some(id.json()),
                        codes::SERVER_UNAVAILABLE,
                        &message,
                    );
                    let target = job.meter.target.take();
                    let unavailable = crate::metrics::ErrorType::Unavailable;
                    let code = codes::SERVER_UNAVAILABLE;
                    self.refused(job.method, target, Some(session), code, unavailable);
                    self.answer(to, json);
                }
            }
            mcp::Action::Subscription {
                server,
                uri,
                subscribe,
                reply,
            } => {
                self.count_subscription(server, uri, subscribe);
                self.answer_after_control(to, reply);
            }
            mcp::Action::LogLevel { reply } => {
                self.update_log_level();
                self.answer_after_control(to, reply);
            }
            mcp::Action::Hold => {
                if let (Some(message), Some(deadline)) = (copy, deadline) {
                    let held = Held::Mcp {
                        session,
                        to,
                        message,
                        created,
                    };
                    self.hold(held, deadline);
                }
            }
            mcp::Action::Nothing => {}
        }
    }

    /// Answers through the supervisor, after the downstream requests queued before it went out.
    fn answer_after_control(&mut self, to: ReplyTo, body: Vec<u8>) {
        self.in_flight += 1; // answered (and counted down) like a job
        if let Err(e) = self
            .control
            .send(crate::supervisor::Control::After { to, body })
        {
            if let crate::supervisor::Control::After { to, body } = e.into_inner() {
                self.in_flight -= 1;
                self.answer(to, body);
            }
        }
    }

    /// Sends an MCP answer the router produced itself to where the request waits.
    pub(super) fn answer(&mut self, to: ReplyTo, json: Vec<u8>) {
        match to {
            ReplyTo::Session(session) => self.to_session(session, &json),
            ReplyTo::Conn(conn) => self.outbox.push(Outgoing::Answer {
                conn,
                status: 200,
                body: json,
            }),
            ReplyTo::Nowhere => {}
        }
    }

    /// The connection a held request would be answered on closed: nobody waits for it any more.
    pub(super) fn drop_held_for(&mut self, conn: Slot) {
        self.held.retain(|(held, _)| match held {
            Held::Rest { conn: c, .. } => *c != conn,
            Held::Mcp { to, .. } => *to != ReplyTo::Conn(conn),
            Held::Modern { conn: c, .. } => *c != conn,
        });
    }

    /// Shutting down: nothing held will be served.
    pub fn refuse_held(&mut self) {
        for (held, _) in std::mem::take(&mut self.held) {
            let message = "the gateway is shutting down";
            match held {
                Held::Rest { conn, .. } => {
                    let refusal = Response::error(503, codes::SERVER_UNAVAILABLE, message);
                    self.outbox.push(Outgoing::Answer {
                        conn,
                        status: 503,
                        body: refusal.body,
                    });
                }
                Held::Mcp {
                    to,
                    message: request,
                    ..
                } => {
                    if let Incoming::Request { id, .. } = request {
                        let json = crate::rpc::error_response(
                            Some(id.json()),
                            codes::SERVER_UNAVAILABLE,
                            message,
                        );
                        self.answer(to, json);
                    }
                }
                Held::Modern { conn, id, .. } => {
                    let body = crate::rpc::error_response(
                        Some(id.json()),
                        codes::SERVER_UNAVAILABLE,
                        message,
                    );
                    self.outbox.push(Outgoing::Answer {
                        conn,
                        status: 503,
                        body,
                    });
                }
            }
        }
    }
}
