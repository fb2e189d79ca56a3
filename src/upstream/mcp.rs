//! The gateway as an MCP server: what each method means, whatever transport carried it.
//!
//! Cheap methods are answered right here on the reactor thread from the registry snapshot
//! (`initialize`, `ping`, the four lists with the gateway's own cursors); calls become a `Job` for
//! the server that owns the tool, prompt or resource, with exposed names mapped back to the server's
//! own (`tools/call`, `prompts/get`, `resources/read`, `completion/complete`). Subscriptions and the
//! log level are session state the router turns into downstream requests. Nothing here does I/O.

use super::session::Session;
use crate::downstream::handshake::{LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS};
use crate::job::{Answer, Job, ReplyTo, Slot};
use crate::registry::{ListKind, Snapshot};
use crate::rpc::{self, codes, Id, Incoming, Invalid, Params};
use serde_json::{json, Map, Value};
use std::time::Instant;

/// What to do with one client message.
#[derive(Debug)]
pub enum Action {
    /// Send this JSON-RPC message back to the client.
    Reply(Vec<u8>),
    /// Send this error back: a call the gateway refused itself before any server saw it (an
    /// unknown tool, bad arguments). Counted in `/metrics` and the audit log like a forwarded call.
    Refused {
        reply: Vec<u8>,
        method: &'static str,
        /// The tool name as the client wrote it.
        target: Option<String>,
        code: i64,
    },
    /// Send the job to the workers; its answer comes later.
    Dispatch(Box<Job>),
    /// The session (un)subscribed `uri` of `server` (already recorded in the session); answer with
    /// `reply` once the router has updated the downstream subscriptions.
    Subscription {
        server: usize,
        uri: String,
        subscribe: bool,
        reply: Vec<u8>,
    },
    /// The session's log level changed; answer with `reply`.
    LogLevel { reply: Vec<u8> },
    /// The name is unknown but a server still starting may offer it: keep the request and try
    /// again when the registry changes (only when `Origin::may_hold`).
    Hold,
    /// Nothing to send (notifications, responses).
    Nothing,
}

/// MCP log levels, least severe first.
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// The rank of a level name in `LOG_LEVELS`.
pub fn log_rank(level: &str) -> Option<usize> {
    LOG_LEVELS.iter().position(|l| *l == level)
}

/// A server's log message as clients get it: its logger names the server first (`server/logger`),
/// so messages from a merged namespace say where they came from.
pub fn attribute_log(server: &str, params: &mut Map<String, Value>) {
    let logger = match params.get("logger").and_then(Value::as_str) {
        Some(logger) => format!("{server}/{logger}"),
        None => server.to_string(),
    };
    params.insert("logger".into(), Value::String(logger));
}

/// Where a session's message came from and where its answers go.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// None for a request of the stateless (2026-07-28) era.
    pub session: Option<Slot>,
    pub to: ReplyTo,
    /// When the request arrived (`acquireTimeout` counts from here, also for held requests).
    pub now: Instant,
    /// A server that may offer unknown names is still starting: unknown names are held, not refused.
    pub may_hold: bool,
}

/// Handles one valid message of a session.
pub fn handle(
    registry: &Snapshot,
    session: &mut Session,
    message: Incoming,
    origin: Origin,
) -> Action {
    match message {
        Incoming::Request { id, method, params } => request(
            registry,
            session,
            id,
            &method,
            params.unwrap_or_default(),
            origin,
        ),
        Incoming::Notification { method, params } => {
            notification(session, &method, params.unwrap_or_default());
            Action::Nothing
        }
        Incoming::Response { id, outcome } => {
            let answered = id
                .to_value()
                .as_str()
                .is_some_and(|ask| session.answer_ask(ask, outcome));
            if !answered {
                log::debug!(
                    "session {}: an answer to unknown request {}",
                    session.id,
                    id.json()
                );
            }
            Action::Nothing
        }
    }
}

fn notification(session: &mut Session, method: &str, params: Params) {
    match method {
        "notifications/initialized" => session.initialized = true,
        "notifications/cancelled" => {
            let control = params
                .get("requestId")
                .as_ref()
                .and_then(Id::from_value)
                .and_then(|id| session.calls.get(&id));
            // Unknown ids are normal: the call may have finished already.
            if let Some(control) = control {
                control.cancel();
            }
        }
        _ => {}
    }
}

/// The error answer for a message that failed validation.
pub fn invalid(invalid: &Invalid) -> Vec<u8> {
    rpc::error_response(
        invalid.id.as_ref().map(Id::json),
        invalid.code,
        &invalid.message,
    )
}

fn request(
    registry: &Snapshot,
    session: &mut Session,
    id: Id,
    method: &str,
    params: Params,
    origin: Origin,
) -> Action {
    let call = Call {
        registry,
        id,
        params,
        origin,
    };
    let reply = match method {
        "initialize" => initialize(registry, session, &call.params),
        "ping" => Ok("{}".to_string()),
        "tools/list" if registry.searching(session.client_searches) => {
            Ok(registry.exposure.search_page.clone())
        }
        "tools/list" => call.list(ListKind::Tools),
        "prompts/list" => call.list(ListKind::Prompts),
        "resources/list" => call.list(ListKind::Resources),
        "resources/templates/list" => call.list(ListKind::Templates),
        "tools/call" => return call.tool(registry.searching(session.client_searches)),
        "prompts/get" => return call.prompt(),
        "resources/read" => return call.read_resource(),
        "completion/complete" => return call.complete(),
        "resources/subscribe" => return call.subscription(session, true),
        "resources/unsubscribe" => return call.subscription(session, false),
        "logging/setLevel" => return call.set_level(session),
        _ => Err((
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        )),
    };
    call.reply(reply)
}

type Outcome = Result<String, (i64, String)>;

fn initialize(registry: &Snapshot, session: &mut Session, params: &Params) -> Outcome {
    let requested = params.str("protocolVersion");
    let Some(requested) = requested.as_deref() else {
        return Err((
            codes::INVALID_PARAMS,
            "Invalid params: initialize needs a string \"protocolVersion\"".into(),
        ));
    };
    let version = if SUPPORTED_PROTOCOL_VERSIONS.contains(&requested) {
        requested
    } else {
        LATEST_PROTOCOL_VERSION
    };
    session.protocol_version = Some(version.to_string());
    let client_info = params.get("clientInfo");
    session.client_searches = crate::registry::profile::client_info_searches(client_info.as_ref());
    session.client_capabilities = match params.get("capabilities") {
        Some(Value::Object(capabilities)) => std::sync::Arc::new(capabilities),
        _ => Default::default(),
    };
    if let Some(info) = client_info {
        // Bounded: an audit line is no place for a client's essay.
        let field = |key: &str| {
            info.get(key)
                .and_then(Value::as_str)
                .map(|s| s.chars().take(128).collect::<String>())
        };
        session.client_info = (field("name"), field("version"));
    }
    let instructions = if registry.searching(session.client_searches) {
        SEARCH_INSTRUCTIONS
    } else {
        INSTRUCTIONS
    };
    Ok(json!({
        "protocolVersion": version,
        "capabilities": capabilities(registry),
        "serverInfo": server_info(),
        "instructions": instructions,
    })
    .to_string())
}

/// What the gateway tells clients about itself.
pub const INSTRUCTIONS: &str =
    "mcp-gateway: the tools, prompts and resources of several MCP servers behind one endpoint.";

/// The same, for a client shown the search tools instead of the catalog.
pub const SEARCH_INSTRUCTIONS: &str = "mcp-gateway: the tools of several MCP servers behind one endpoint. Find the ones for a task with search_tools, get their input schemas with describe_tools, and run one with call_tool.";

/// The gateway's `serverInfo`.
pub fn server_info() -> Value {
    json!({"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")})
}

/// The capabilities the gateway offers: what its servers offer, merged.
pub fn capabilities(registry: &Snapshot) -> Map<String, Value> {
    let offered = registry.capabilities;
    let mut capabilities = Map::new();
    capabilities.insert("tools".into(), json!({"listChanged": true}));
    if offered.prompts {
        capabilities.insert("prompts".into(), json!({"listChanged": true}));
    }
    if offered.resources {
        capabilities.insert(
            "resources".into(),
            json!({"listChanged": true, "subscribe": offered.subscribe}),
        );
    }
    if offered.logging {
        capabilities.insert("logging".into(), json!({}));
    }
    if offered.completions {
        capabilities.insert("completions".into(), json!({}));
    }
    capabilities
}

/// A call of the stateless (2026-07-28) era, which has no session: routed as a session's would
/// be (`origin.session` is None). Methods other than the four calls are the caller's to answer.
pub fn stateless_call(
    registry: &Snapshot,
    id: Id,
    method: &str,
    params: Params,
    origin: Origin,
    searching: bool,
) -> Action {
    let call = Call {
        registry,
        id,
        params,
        origin,
    };
    match method {
        "tools/call" => call.tool(searching),
        "prompts/get" => call.prompt(),
        "resources/read" => call.read_resource(),
        "completion/complete" => call.complete(),
        _ => call.fail(
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        ),
    }
}

/// One request being turned into an answer or a job.
struct Call<'a> {
    registry: &'a Snapshot,
    id: Id,
    params: Params,
    origin: Origin,
}

impl Call<'_> {
    fn reply(&self, outcome: Outcome) -> Action {
        Action::Reply(match outcome {
            Ok(result) => rpc::result_response(self.id.json(), &result),
            Err((code, message)) => rpc::error_response(Some(self.id.json()), code, &message),
        })
    }

    fn fail(&self, code: i64, message: String) -> Action {
        self.reply(Err((code, message)))
    }

    /// Like `fail`, for a call the gateway counts although no server saw it.
    fn refuse(&self, method: &'static str, target: String, code: i64, message: String) -> Action {
        Action::Refused {
            reply: rpc::error_response(Some(self.id.json()), code, &message),
            method,
            target: Some(target),
            code,
        }
    }

    fn list(&self, kind: ListKind) -> Outcome {
        self.registry
            .page(kind, self.params.get("cursor").as_ref())
            .map(str::to_string)
            .map_err(|message| (codes::INVALID_PARAMS, message))
    }

    /// A required string parameter.
    fn string(&self, key: &str, method: &str) -> Result<String, Action> {
        match self.params.str(key) {
            Some(value) => Ok(value),
            None => Err(self.fail(
                codes::INVALID_PARAMS,
                format!("Invalid params: {method} needs a string \"{key}\""),
            )),
        }
    }

    fn resource_not_found(&self, uri: &str) -> Action {
        Action::Reply(rpc::error_response_with_data(
            Some(self.id.json()),
            codes::RESOURCE_NOT_FOUND,
            &format!("Resource not found: no server offers {uri}"),
            Some(&json!({ "uri": uri })),
        ))
    }

    /// A job for `server`, carrying the (rewritten) params.
    fn forward(
        self,
        server: usize,
        method: &'static str,
        params: Params,
        target: Option<String>,
    ) -> Action {
        let progress_token = params
            .get("_meta")
            .and_then(|mut m| m.get_mut("progressToken").map(Value::take))
            .filter(|t| t.is_string() || t.is_i64() || t.is_u64());
        Action::Dispatch(Box::new(Job {
            to: self.origin.to,
            session: self.origin.session,
            answer: Answer::JsonRpc(self.id),
            server,
            method,
            params,
            progress_token,
            created: self.origin.now,
            control: Default::default(),
            meter: crate::job::Meter {
                target,
                ..Default::default()
            },
            declared: None,
        }))
    }

    /// `tools/call`; with `searching`, the three search tools are answered too (`search`).
    fn tool(mut self, searching: bool) -> Action {
        let mut name = match self.string("name", "tools/call") {
            Ok(name) => name,
            Err(refusal) => return refusal,
        };
        if searching {
            match name.as_str() {
                "search_tools" => {
                    return self.reply(Ok(super::search::find(self.registry, &self.params)))
                }
                "describe_tools" => {
                    return self.reply(Ok(super::search::describe(self.registry, &self.params)))
                }
                "call_tool" => match super::search::unwrap_call(&mut self.params) {
                    Ok(inner) => name = inner,
                    Err(refusal) => return self.reply(Err(refusal)),
                },
                _ => {}
            }
        }
        let arguments = self.params.raw("arguments").map(|raw| raw.get());
        if !matches!(arguments, None | Some("null")) && !self.params.is_object("arguments") {
            let message = "Invalid params: \"arguments\" must be an object".to_string();
            return self.refuse("tools/call", name, codes::INVALID_PARAMS, message);
        }
        let Some(tool) = self.registry.route(&name) else {
            if let Some(why) = self.registry.withheld(&name) {
                return self.fail(codes::INVALID_PARAMS, why.to_string());
            }
            if self.origin.may_hold {
                return Action::Hold;
            }
            // Maybe a tool of a server nobody has logged in to yet: say what to do.
            if let Some(message) = self.registry.login_hint(&name) {
                return self.refuse("tools/call", name, codes::SERVER_UNAVAILABLE, message);
            }
            let message = format!("Unknown tool: {name}");
            return self.refuse("tools/call", name, codes::INVALID_PARAMS, message);
        };
        let (server, original) = (tool.server, tool.original.clone());
        let mut params = std::mem::take(&mut self.params);
        params.set("name", &Value::String(original));
        self.forward(server, "tools/call", params, Some(name))
    }

    fn prompt(mut self) -> Action {
        let name = match self.string("name", "prompts/get") {
            Ok(name) => name,
            Err(refusal) => return refusal,
        };
        let Some(prompt) = self.registry.route_prompt(&name) else {
            if self.origin.may_hold {
                return Action::Hold;
            }
            return self.fail(codes::INVALID_PARAMS, format!("Unknown prompt: {name}"));
        };
        let (server, original) = (prompt.server, prompt.original.clone());
        let mut params = std::mem::take(&mut self.params);
        params.set("name", &Value::String(original));
        self.forward(server, "prompts/get", params, Some(name))
    }

    fn read_resource(mut self) -> Action {
        let uri = match self.string("uri", "resources/read") {
            Ok(uri) => uri,
            Err(refusal) => return refusal,
        };
        match self.registry.route_uri(&uri) {
            Some(server) => {
                let params = std::mem::take(&mut self.params);
                self.forward(server, "resources/read", params, Some(uri))
            }
            None if self.origin.may_hold => Action::Hold,
            None => self.resource_not_found(&uri),
        }
    }

    /// `completion/complete`: routed by the prompt name or resource template it completes for.
    fn complete(mut self) -> Action {
        let reference = self.params.get("ref").unwrap_or(Value::Null);
        let kind = reference.get("type").and_then(Value::as_str);
        let target = match kind {
            Some("ref/prompt") => {
                let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
                match self.registry.route_prompt(name) {
                    Some(prompt) => {
                        let mut reference = reference.clone();
                        reference["name"] = Value::String(prompt.original.clone());
                        self.params.set("ref", &reference);
                        Some(prompt.server)
                    }
                    None => {
                        return self.fail(codes::INVALID_PARAMS, format!("Unknown prompt: {name}"))
                    }
                }
            }
            Some("ref/resource") => {
                let uri = reference.get("uri").and_then(Value::as_str).unwrap_or("");
                match self.registry.route_template(uri) {
                    Some(server) => Some(server),
                    None => return self.resource_not_found(uri),
                }
            }
            _ => None,
        };
        match target {
            Some(server) => {
                let params = std::mem::take(&mut self.params);
                self.forward(server, "completion/complete", params, None)
            }
            None => self.fail(
                codes::INVALID_PARAMS,
                "Invalid params: \"ref\" must be {\"type\": \"ref/prompt\", \"name\"} or {\"type\": \"ref/resource\", \"uri\"}".into(),
            ),
        }
    }

    fn subscription(self, session: &mut Session, subscribe: bool) -> Action {
        let method = if subscribe {
            "resources/subscribe"
        } else {
            "resources/unsubscribe"
        };
        let uri = match self.string("uri", method) {
            Ok(uri) => uri,
            Err(refusal) => return refusal,
        };
        let Some(server) = self.registry.route_uri(&uri) else {
            return self.resource_not_found(&uri);
        };
        if subscribe
            && !self
                .registry
                .server_supports(server, "resources", Some("subscribe"))
        {
            return self.fail(
                codes::METHOD_NOT_FOUND,
                format!("the server offering {uri} does not support subscriptions"),
            );
        }
        let changed = if subscribe {
            session.subscriptions.insert(uri.clone())
        } else {
            session.subscriptions.remove(&uri)
        };
        let reply = rpc::result_response(self.id.json(), "{}");
        if !changed {
            return Action::Reply(reply);
        }
        Action::Subscription {
            server,
            uri,
            subscribe,
            reply,
        }
    }

    fn set_level(self, session: &mut Session) -> Action {
        let level = match self.string("level", "logging/setLevel") {
            Ok(level) => level,
            Err(refusal) => return refusal,
        };
        let Some(rank) = log_rank(&level) else {
            return self.fail(
                codes::INVALID_PARAMS,
                format!(
                    "Invalid params: unknown level {level}; use one of {}",
                    LOG_LEVELS.join(", ")
                ),
            );
        };
        session.log_level = Some(rank);
        Action::LogLevel {
            reply: rpc::result_response(self.id.json(), "{}"),
        }
    }
}
