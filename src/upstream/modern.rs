//! The stateless era (protocol 2026-07-28) on `POST /mcp` (and `POST /sse`), beside 2025 sessions.
//!
//! A POST without `Mcp-Session-Id` whose `MCP-Protocol-Version` header, or whose
//! `params._meta["io.modelcontextprotocol/protocolVersion"]`, names a version that is not one of
//! the handshake (2025) versions is served here: one self-contained request, no session, the
//! answer on its own response (JSON, or an SSE stream when progress comes first). Anything else
//! (an `initialize`, a request with a session) is the 2025 transport's, unchanged.
//!
//! A request passes a ladder before it is served (`check`, pure): `_meta` must carry the protocol
//! version and the client's capabilities (−32602); the `MCP-Protocol-Version`, `Mcp-Method` and
//! `Mcp-Name` headers, where present, must agree with the body (−32020); the version must be one
//! the gateway serves statelessly (−32022, with `data.supported` and `data.requested`); a
//! `tools/call` of a tool with `x-mcp-header` parameters must send the matching `Mcp-Param-*`
//! headers (−32020). Every error
//! echoes the request's id when it has one, with the HTTP status the revision gives its code
//! (`codes::modern_http_status`): 400 for bad input and refused versions, 404 for methods this
//! revision removed or never had.
//!
//! Served: `server/discover` (the versions, the merged capabilities, serverInfo); the four lists
//! from the registry snapshot, with `resultType` and the merged caching hints spliced in; the
//! calls (`tools/call`, `prompts/get`, `resources/read`, `completion/complete`) as jobs whose
//! answer is stamped (`Answer::Modern`), held while a server that may offer its name is still
//! starting (as a session's are, `held.rs`), suspended when a 2025 server asks its client
//! something (`suspend`, continued by the retry that brings the `requestState` it was given:
//! `resume`); `subscriptions/listen` (`listen.rs`). A call's progress
//! rides its response stream, and closing that stream cancels the call downstream (the
//! connection's call is cancelled when it closes, as for every transport).

use super::{mcp, Outcome, Response, Router};
use crate::downstream::handshake::SUPPORTED_PROTOCOL_VERSIONS;
use crate::http::Request;
use crate::job::{Answer, ReplyTo, Slot};
use crate::registry::ListKind;
use crate::rpc::{self, codes, stamp, Id, Incoming, Params};
use serde_json::{json, Value};
use std::time::Instant;

/// The stateless revisions the gateway serves, newest first.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];

pub const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
pub const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";

/// Methods 2025 had and 2026-07-28 removed.
const REMOVED: &[&str] = &[
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// Every version the gateway speaks, stateless ones first: what `server/discover` and a −32022 list.
pub fn supported_versions() -> Vec<&'static str> {
    MODERN_VERSIONS
        .iter()
        .chain(SUPPORTED_PROTOCOL_VERSIONS)
        .copied()
        .collect()
}

/// Whether a POST without a session belongs to the stateless era.
pub fn selected(req: &Request) -> bool {
    let is_modern = |v: &str| !SUPPORTED_PROTOCOL_VERSIONS.contains(&v);
    if req.header("mcp-protocol-version").is_some_and(is_modern) {
        return true;
    }
    meta_version(&req.body).is_some_and(|v| is_modern(&v))
}

/// `params._meta["io.modelcontextprotocol/protocolVersion"]` of a body, when it is a string.
fn meta_version(body: &[u8]) -> Option<String> {
    let message = Params::parse(body).ok()?;
    let params = message.object("params")?.ok()?;
    let meta = params.object("_meta")?.ok()?;
    meta.str(VERSION_KEY)
}

/// A refused request: its JSON-RPC error (the HTTP status follows from the code).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl Refusal {
    fn new(code: i64, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn unsupported(requested: &str) -> Refusal {
        Refusal {
            code: codes::UNSUPPORTED_PROTOCOL_VERSION,
            message: format!(
                "Unsupported protocol version {requested}; the gateway speaks {}",
                supported_versions().join(", ")
            ),
            data: Some(json!({"supported": supported_versions(), "requested": requested})),
        }
    }

    /// The error response, echoing `id` (null only when the request had none).
    pub fn response(&self, id: Option<&Id>) -> Response {
        let body = rpc::error_response_with_data(
            id.map(Id::json),
            self.code,
            &self.message,
            self.data.as_ref(),
        );
        Response::json(codes::modern_http_status(self.code), body)
    }
}

/// `response` with the id of the request in `body` in place of a null one: the gateway's refusals
/// are written before the body is read, but the client must get its id back when it sent one.
pub fn echo_id(mut response: Response, body: &[u8]) -> Response {
    const NULL_ID: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":null,";
    if !response.body.starts_with(NULL_ID) {
        return response;
    }
    let id = match rpc::classify(body) {
        Ok(Incoming::Request { id, .. } | Incoming::Response { id, .. }) => Some(id),
        Ok(Incoming::Notification { .. }) => None,
        Err(invalid) => invalid.id,
    };
    if let Some(id) = id {
        let rest = response.body.split_off(NULL_ID.len());
        response.body.truncate(NULL_ID.len() - "null,".len());
        response.body.extend_from_slice(id.json().as_bytes());
        response.body.push(b',');
        response.body.extend_from_slice(&rest);
    }
    response
}

/// The request headers that mirror the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mirrored<'a> {
    pub version: Option<&'a str>,
    pub method: Option<&'a str>,
    pub name: Option<&'a str>,
}

impl<'a> Mirrored<'a> {
    pub fn of(req: &'a Request) -> Mirrored<'a> {
        Mirrored {
            version: req.header("mcp-protocol-version"),
            method: req.header("mcp-method"),
            name: req.header("mcp-name"),
        }
    }
}

/// The validation ladder of a stateless request; first failure wins.
pub fn check(headers: Mirrored, method: &str, params: Option<&Params>) -> Result<(), Refusal> {
    // A header naming a version nobody speaks is answered as such, whatever the body lacks.
    if let Some(version) = headers.version {
        if !supported_versions().contains(&version) {
            return Err(Refusal::unsupported(version));
        }
    }
    let meta = params
        .and_then(|p| p.object("_meta"))
        .and_then(Result::ok)
        .ok_or_else(|| {
            Refusal::new(
                codes::INVALID_PARAMS,
                format!("Invalid params: params._meta must be an object carrying {VERSION_KEY:?} and {CAPABILITIES_KEY:?}"),
            )
        })?;
    let missing: Vec<&str> = [VERSION_KEY, CAPABILITIES_KEY]
        .into_iter()
        .filter(|key| !meta.contains(key))
        .collect();
    if !missing.is_empty() {
        return Err(Refusal::new(
            codes::INVALID_PARAMS,
            format!(
                "Invalid params: params._meta lacks the required {}",
                missing.join(" and ")
            ),
        ));
    }
    let Some(version) = meta.str(VERSION_KEY) else {
        return Err(Refusal::new(
            codes::INVALID_PARAMS,
            format!("Invalid params: {VERSION_KEY} must be a string"),
        ));
    };
    if !meta.is_object(CAPABILITIES_KEY) {
        return Err(Refusal::new(
            codes::INVALID_PARAMS,
            format!("Invalid params: {CAPABILITIES_KEY} must be an object"),
        ));
    }
    if let Some(header) = headers.version.filter(|h| *h != version) {
        return Err(Refusal::new(
            codes::HEADER_MISMATCH,
            format!(
                "Header mismatch: MCP-Protocol-Version is {header} but params._meta says {version}"
            ),
        ));
    }
    if let Some(header) = headers.method.filter(|h| *h != method) {
        return Err(Refusal::new(
            codes::HEADER_MISMATCH,
            format!(
                "Header mismatch: Mcp-Method is {header:?} but the body's method is {method:?}"
            ),
        ));
    }
    let name_key = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let (Some(key), Some(header)) = (name_key, headers.name) {
        let body = params.and_then(|p| p.str(key));
        let Some(decoded) = decode_header(header) else {
            return Err(Refusal::new(
                codes::HEADER_MISMATCH,
                "Header mismatch: Mcp-Name is not valid =?base64?…?= text",
            ));
        };
        if body.as_deref() != Some(decoded.as_str()) {
            return Err(Refusal::new(
                codes::HEADER_MISMATCH,
                format!(
                    "Header mismatch: Mcp-Name is {decoded:?} but the body's {key} is {}",
                    body.map_or("missing".to_string(), |b| format!("{b:?}"))
                ),
            ));
        }
    }
    if !MODERN_VERSIONS.contains(&version.as_str()) {
        return Err(Refusal::unsupported(&version));
    }
    Ok(())
}

/// A header value, decoded when it uses the `=?base64?…?=` form; None when that form is broken.
pub fn decode_header(value: &str) -> Option<String> {
    let Some(encoded) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(value.to_string());
    };
    String::from_utf8(crate::base64::decode(
        encoded,
        crate::base64::Alphabet::Standard,
    )?)
    .ok()
}

/// `server/discover`'s result.
fn discover(registry: &crate::registry::Snapshot) -> String {
    json!({
        "resultType": "complete",
        "supportedVersions": supported_versions(),
        "capabilities": mcp::capabilities(registry),
        "instructions": mcp::INSTRUCTIONS,
        "_meta": {"io.modelcontextprotocol/serverInfo": mcp::server_info()},
        // What is served changes with the servers behind the gateway: never fresh for long.
        "ttlMs": 0,
        "cacheScope": "public",
    })
    .to_string()
}

/// A call of a 2026-07-28 client on a 2025 server that asked the client something: it waits on
/// its server for the client's retry (multi round-trip requests, from the server's side).
#[derive(Debug)]
pub struct Suspended {
    pub control: std::sync::Arc<crate::job::CallControl>,
    /// The server's own id for its request.
    pub child_id: Value,
    /// The call's deadline: a retry after it finds nothing.
    pub deadline: Instant,
}

/// The key of the one input request a suspended call asks for.
const INPUT_KEY: &str = "input";
/// What the `requestState` the gateway issues starts with (then 128 random bits), so that one it
/// did not issue, or no longer holds, is refused rather than taken for a server's own.
const STATE_PREFIX: &str = "mcp-gateway.";

impl Router {
    /// A 2025 server asked a 2026-07-28 client something during its call: the client is answered
    /// `input_required` (the server's request as its input request, a fresh `requestState`), and
    /// the call waits, unanswered but running, for the retry that carries the input.
    pub fn suspend(
        &mut self,
        to: ReplyTo,
        id: &Id,
        suspended: Suspended,
        method: &str,
        params: Option<Value>,
        now: Instant,
    ) {
        let ReplyTo::Conn(conn) = to else {
            return;
        };
        self.suspended
            .retain(|_, s| s.deadline > now && !s.control.is_cancelled());
        let Ok(random) = super::session::random_id() else {
            suspended.control.cancel();
            return;
        };
        // Signed (HMAC, the session key of `stateDir`) with its expiry, where there is a key: one
        // the gateway did not issue, or altered, is refused before anything is looked up.
        let mut state = format!("{STATE_PREFIX}{random}");
        if let Some(signer) = &self.signer {
            let left = suspended.deadline.saturating_duration_since(now).as_secs() + 1;
            state = format!("{state}.{}", super::signed::unix_now() + left);
            state = format!("{state}.{}", signer.tag(&state));
        }
        let mut request = serde_json::Map::new();
        request.insert("method".into(), Value::from(method));
        if let Some(params) = params {
            request.insert("params".into(), params);
        }
        let result = json!({
            "resultType": "input_required",
            "inputRequests": {INPUT_KEY: request},
            "requestState": state,
        });
        // The connection got its answer; closing it no longer cancels the call (its retry might).
        self.conn_calls.remove(&conn);
        self.suspended.insert(state, suspended);
        self.outbox.push(super::Outgoing::Answer {
            conn,
            status: 200,
            body: rpc::result_response(id.json(), &result.to_string()),
        });
    }

    /// A retry carrying the `requestState` of a suspended call: the call goes on with the client's
    /// input, answering this request. None: the state is not one of these (the server's own).
    fn resume(
        &mut self,
        conn: Slot,
        id: &Id,
        method: &str,
        params: &Params,
        now: Instant,
    ) -> Option<Result<(), Refusal>> {
        let state = params.str("requestState")?;
        if !state.starts_with(STATE_PREFIX) {
            return None; // a server's own state: its to check
        }
        if let Some(signer) = &self.signer {
            let Some((body, _)) = state.rsplit_once('.').filter(|(b, t)| signer.check(b, t)) else {
                return Some(Err(Refusal::new(
                    codes::INVALID_PARAMS,
                    "Invalid params: requestState was not issued by this gateway (its signature does not verify: altered?); call again without it",
                )));
            };
            let expires = body
                .rsplit_once('.')
                .and_then(|(_, e)| e.parse::<u64>().ok());
            if expires.is_none_or(|at| super::signed::unix_now() > at) {
                return Some(Err(Refusal::new(
                    codes::INVALID_PARAMS,
                    "Invalid params: requestState has expired (the call it continues timed out); call again without it",
                )));
            }
        }
        let Some(suspended) = self.suspended.remove(&state) else {
            return Some(Err(Refusal::new(
                codes::INVALID_PARAMS,
                "Invalid params: requestState is not one the gateway holds (altered, used already, or from before a restart); call again without it",
            )));
        };
        if suspended.deadline <= now || suspended.control.is_cancelled() {
            return Some(Err(Refusal::new(
                codes::INVALID_PARAMS,
                "Invalid params: requestState has expired (the call it continues timed out); call again without it",
            )));
        }
        let Some(input) = params
            .get("inputResponses")
            .and_then(|mut r| r.get_mut(INPUT_KEY).map(Value::take))
        else {
            self.suspended.insert(state, suspended);
            return Some(Err(Refusal::new(
                codes::INVALID_PARAMS,
                format!("Invalid params: inputResponses.{INPUT_KEY} is missing"),
            )));
        };
        let read = (method == "resources/read")
            .then(|| params.str("uri"))
            .flatten();
        let resumed = crate::job::Signal::Resume {
            to: ReplyTo::Conn(conn),
            answer: Answer::Modern {
                id: id.clone(),
                read,
            },
            child_id: suspended.child_id,
            outcome: Ok(input),
        };
        if !suspended.control.post(resumed) {
            return Some(Err(Refusal::new(
                codes::INVALID_PARAMS,
                "Invalid params: the call this requestState continues is over; call again without it",
            )));
        }
        self.conn_calls.insert(
            conn,
            super::ConnCall {
                control: suspended.control,
                id: Some(id.clone()),
            },
        );
        Some(Ok(()))
    }

    /// The `Mcp-Param-*` headers of a `tools/call`, against the arguments, for a tool whose
    /// `inputSchema` marks parameters with `x-mcp-header`: a value in the body needs its header,
    /// a header needs its value, and they must be the same (−32020 otherwise). The tool is looked
    /// up in the view the request is served from (a profile may rename it); `call_tool` (tool
    /// search) names no annotated tool, and what it wraps is mirrored downstream by the gateway.
    fn check_param_headers(
        registry: &crate::registry::Snapshot,
        req: &Request,
        params: Option<&Params>,
    ) -> Result<(), Refusal> {
        let tool = params
            .and_then(|p| p.str("name"))
            .and_then(|name| registry.route(&name));
        let Some(schema) = tool.and_then(|t| t.definition.get("inputSchema")) else {
            return Ok(());
        };
        let Ok(annotated) = crate::downstream::era::param_headers(schema) else {
            return Ok(()); // not offered to 2026 clients' servers anyway; nothing to hold it to
        };
        let arguments = params.and_then(|p| p.get("arguments"));
        let expected = crate::downstream::era::param_header_values(&annotated, arguments.as_ref());
        for (name, _) in &annotated {
            let header = format!("Mcp-Param-{name}");
            let sent = req.header(&header.to_ascii_lowercase());
            let wanted = expected.iter().find(|(h, _)| *h == header).map(|(_, v)| v);
            let mismatch = |why: String| {
                Refusal::new(
                    codes::HEADER_MISMATCH,
                    format!("Header mismatch: {header} {why}"),
                )
            };
            match (sent, wanted) {
                (None, None) => {}
                (None, Some(_)) => {
                    return Err(mismatch(
                        "is missing but the argument is in the body".into(),
                    ))
                }
                (Some(_), None) => {
                    return Err(mismatch("is sent but the body has no such argument".into()))
                }
                (Some(sent), Some(wanted)) => {
                    let decoded = decode_header(sent)
                        .ok_or_else(|| mismatch("is not valid =?base64?…?= text".into()))?;
                    let plain = decode_header(wanted).unwrap_or_default();
                    let numeric = |v: &str| v.parse::<f64>().ok();
                    let same = decoded == plain
                        || (numeric(&decoded).is_some() && numeric(&decoded) == numeric(&plain));
                    if !same {
                        return Err(mismatch(format!(
                            "is {decoded:?} but the body says {plain:?}"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// A stateless call (first time or again): its answer now, or None when it was dispatched (or
    /// held, when it names what a server that is still starting may offer).
    pub(super) fn stateless_call(
        &mut self,
        call: StatelessCall,
        created: Instant,
        now: Instant,
    ) -> Option<Response> {
        let StatelessCall {
            conn,
            id,
            method,
            params,
            profile,
        } = call;
        let deadline = self.hold_deadline(created, now);
        let read = (method == "resources/read")
            .then(|| params.str("uri"))
            .flatten();
        let origin = mcp::Origin {
            session: None,
            to: ReplyTo::Conn(conn),
            now: created,
            may_hold: deadline.is_some(),
        };
        // Keep a copy only when holding is possible: the common case pays nothing.
        let copy = deadline.map(|_| params.clone());
        let registry = self.view(&profile);
        // A client that searches tools itself (by its `_meta` clientInfo) gets the whole catalog.
        let searching = registry.searching(client_searches(&params));
        match mcp::stateless_call(&registry, id.clone(), &method, params, origin, searching) {
            mcp::Action::Dispatch(mut job) => {
                job.answer = Answer::Modern { id, read };
                self.dispatch(*job);
                None
            }
            mcp::Action::Reply(body) => Some(gateway_error(&id, body)),
            // Refused by the gateway itself (an unknown tool): counted like a forwarded call.
            mcp::Action::Refused {
                reply,
                method,
                target,
                code,
            } => {
                let error = crate::metrics::ErrorType::of_code(code);
                self.refused(method, target, None, code, error);
                Some(gateway_error(&id, reply))
            }
            mcp::Action::Hold => {
                if let (Some(params), Some(deadline)) = (copy, deadline) {
                    let held = super::held::Held::Modern {
                        conn,
                        id,
                        method,
                        params,
                        created,
                        profile,
                    };
                    self.hold(held, deadline);
                }
                None
            }
            // stateless_call answers only the four calls; anything else would be a bug here, and
            // the reactor must not die of it.
            other => {
                log::error!("internal error: a stateless call came to {other:?}");
                let body = rpc::error_response(
                    Some(id.json()),
                    codes::INTERNAL_ERROR,
                    "internal error in the gateway",
                );
                Some(gateway_error(&id, body))
            }
        }
    }

    /// A POST of the stateless era.
    pub(super) fn modern_post(&mut self, conn: Slot, req: &Request, now: Instant) -> Outcome {
        let respond = Outcome::Respond;
        if let Some(refusal) = super::streamable::media_types(req) {
            return respond(refusal);
        }
        let (id, method, params) = match rpc::classify(&req.body) {
            Ok(Incoming::Request { id, method, params }) => (id, method, params),
            Ok(Incoming::Notification { .. }) => {
                // No client notification means anything here (cancelling is closing the stream);
                // it is accepted and dropped, unless its version is one nobody speaks.
                if let Some(version) = req.header("mcp-protocol-version") {
                    if !supported_versions().contains(&version) {
                        return respond(Refusal::unsupported(version).response(None));
                    }
                }
                return respond(Response::json(202, Vec::new()));
            }
            Ok(Incoming::Response { id, .. }) => {
                let refusal = Refusal::new(
                    codes::INVALID_REQUEST,
                    "Invalid Request: a client sends no responses in protocol 2026-07-28 (the server asks nothing)",
                );
                return respond(refusal.response(Some(&id)));
            }
            Err(invalid) => {
                let refusal = Refusal::new(invalid.code, invalid.message);
                return respond(refusal.response(invalid.id.as_ref()));
            }
        };
        if let Err(refusal) = check(Mirrored::of(req), &method, params.as_ref()) {
            return respond(refusal.response(Some(&id)));
        }
        let profile = super::profiles::requested(req);
        let registry = self.view(&profile);
        if method == "tools/call" {
            if let Err(refusal) = Self::check_param_headers(&registry, req, params.as_ref()) {
                return respond(refusal.response(Some(&id)));
            }
        }
        let params = params.unwrap_or_default();
        // With tool search (a profile's, or `auto` for a client that searches itself), the tools
        // listed are the three search tools, as for a session.
        let searching = registry.searching(client_searches(&params));
        let list = |kind: ListKind| {
            let page = match kind {
                ListKind::Tools if searching => Ok(registry.exposure.search_page.as_str()),
                kind => registry.page(kind, params.get("cursor").as_ref()),
            };
            match page {
                Ok(page) => {
                    let cache = registry.cache[kind as usize];
                    let result = stamp::complete(page, Some(cache));
                    Response::json(200, rpc::result_response(id.json(), &result))
                }
                Err(message) => Refusal::new(codes::INVALID_PARAMS, message).response(Some(&id)),
            }
        };
        match method.as_str() {
            "server/discover" => respond(Response::json(
                200,
                rpc::result_response(id.json(), &discover(&registry)),
            )),
            "tools/list" => respond(list(ListKind::Tools)),
            "prompts/list" => respond(list(ListKind::Prompts)),
            "resources/list" => respond(list(ListKind::Resources)),
            "resources/templates/list" => respond(list(ListKind::Templates)),
            "subscriptions/listen" => self.listen(conn, req, (id, &params), &registry, now),
            "tools/call" | "prompts/get" | "resources/read" | "completion/complete" => {
                // The retry of a call the gateway suspended goes on where it waits.
                match self.resume(conn, &id, &method, &params, now) {
                    Some(Ok(())) => {
                        return Outcome::Await {
                            headers: Vec::new(),
                            sse: req.accepts("text/event-stream") && req.minor_version == 1,
                        }
                    }
                    Some(Err(refusal)) => return respond(refusal.response(Some(&id))),
                    None => {}
                }
                let call = StatelessCall {
                    conn,
                    id,
                    method,
                    params,
                    profile,
                };
                match self.stateless_call(call, now, now) {
                    Some(response) => respond(response),
                    None => Outcome::Await {
                        headers: Vec::new(),
                        sse: req.accepts("text/event-stream") && req.minor_version == 1,
                    },
                }
            }
            removed if REMOVED.contains(&removed) => respond(
                Refusal::new(
                    codes::METHOD_NOT_FOUND,
                    format!("Method not found: {removed} was removed in protocol 2026-07-28 (it needs a session: send initialize without _meta for 2025-11-25)"),
                )
                .response(Some(&id)),
            ),
            other => respond(
                Refusal::new(codes::METHOD_NOT_FOUND, format!("Method not found: {other}"))
                    .response(Some(&id)),
            ),
        }
    }
}

/// One stateless call: where it came from and what it asks.
pub(super) struct StatelessCall {
    pub conn: Slot,
    pub id: Id,
    pub method: String,
    pub params: Params,
    /// The profile of the URL it came to.
    pub profile: String,
}

/// Whether the `_meta` clientInfo of a stateless request names a client that searches tools
/// itself (`toolExposure: auto` then shows it every tool).
fn client_searches(params: &Params) -> bool {
    let meta = params.get("_meta");
    let info = meta.as_ref().and_then(|meta| {
        meta.get("io.modelcontextprotocol/clientInfo")
            .or(meta.get("clientInfo"))
    });
    crate::registry::profile::client_info_searches(info)
}

/// An error the gateway answered a stateless call with, in the revision's terms: the status of its
/// code, and resource-not-found as −32602 (its `data.uri` kept).
fn gateway_error(id: &Id, body: Vec<u8>) -> Response {
    let error = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|mut v| v.get_mut("error").map(Value::take));
    let Some(error) = error else {
        return Response::json(200, body);
    };
    let mut code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
    if code == codes::RESOURCE_NOT_FOUND {
        code = codes::INVALID_PARAMS;
    }
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    Refusal {
        code,
        message: message.to_string(),
        data: error.get("data").cloned(),
    }
    .response(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: Value) -> Params {
        Params::parse(json.to_string().as_bytes()).unwrap()
    }

    fn meta() -> Value {
        json!({VERSION_KEY: "2026-07-28", CAPABILITIES_KEY: {}})
    }

    #[test]
    fn the_ladder_refuses_in_order() {
        let none = Mirrored::default();
        let ok = params(json!({"name": "echo", "_meta": meta()}));
        assert_eq!(check(none, "tools/call", Some(&ok)), Ok(()));
        // Missing _meta or one of its required fields: -32602.
        assert_eq!(
            check(none, "tools/list", None).unwrap_err().code,
            codes::INVALID_PARAMS
        );
        let no_caps = params(json!({"_meta": {VERSION_KEY: "2026-07-28"}}));
        let refusal = check(none, "tools/list", Some(&no_caps)).unwrap_err();
        assert_eq!(refusal.code, codes::INVALID_PARAMS);
        assert!(refusal.message.contains(CAPABILITIES_KEY), "{refusal:?}");
        // Headers that disagree with the body: -32020.
        let mismatch = |h: Mirrored| check(h, "tools/call", Some(&ok)).unwrap_err().code;
        let version = Mirrored {
            version: Some("2025-11-25"),
            ..none
        };
        assert_eq!(mismatch(version), codes::HEADER_MISMATCH);
        let method = Mirrored {
            method: Some("tools/list"),
            ..none
        };
        assert_eq!(mismatch(method), codes::HEADER_MISMATCH);
        let name = Mirrored {
            name: Some("add"),
            ..none
        };
        assert_eq!(mismatch(name), codes::HEADER_MISMATCH);
        let encoded = Mirrored {
            name: Some("=?base64?ZWNobw==?="),
            method: Some("tools/call"),
            version: Some("2026-07-28"),
        };
        assert_eq!(check(encoded, "tools/call", Some(&ok)), Ok(()));
        // An unsupported version: -32022 naming what is supported and what was asked.
        let old = params(json!({"_meta": {VERSION_KEY: "1900-01-01", CAPABILITIES_KEY: {}}}));
        let refusal = check(none, "tools/list", Some(&old)).unwrap_err();
        assert_eq!(refusal.code, codes::UNSUPPORTED_PROTOCOL_VERSION);
        let data = refusal.data.unwrap();
        assert_eq!(data["requested"], "1900-01-01");
        assert_eq!(data["supported"][0], "2026-07-28");
        let header = Mirrored {
            version: Some("1900-01-01"),
            ..none
        };
        assert_eq!(
            check(header, "tools/list", None).unwrap_err().code,
            codes::UNSUPPORTED_PROTOCOL_VERSION
        );
    }

    #[test]
    fn base64_header_values() {
        assert_eq!(decode_header("plain").as_deref(), Some("plain"));
        assert_eq!(
            decode_header("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(
            decode_header("=?base64?IHBhZGRlZCA=?=").as_deref(),
            Some(" padded ")
        );
        assert_eq!(decode_header("=?base64?!!?="), None);
    }
}
