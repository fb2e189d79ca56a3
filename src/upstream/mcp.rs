//! The gateway as an MCP server: what each method means, whatever transport carried it.
//!
//! Cheap methods are answered right here on the reactor thread from the registry snapshot
//! (`initialize`, `ping`, `tools/list`); `tools/call` becomes a `Job` for the server that owns the
//! tool, with the exposed name mapped back to the server's own. Nothing here does I/O.

use super::session::Session;
use crate::downstream::handshake::{LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS};
use crate::job::{Answer, Job, ReplyTo, Slot};
use crate::registry::Snapshot;
use crate::rpc::{self, codes, Id, Incoming, Invalid};
use serde_json::{json, Map, Value};
use std::time::Instant;

/// What to do with one client message.
#[derive(Debug)]
pub enum Action {
    /// Send this JSON-RPC message back to the client.
    Reply(Vec<u8>),
    /// Send the job to the workers; its answer comes later.
    Dispatch(Box<Job>),
    /// Nothing to send (notifications, responses).
    Nothing,
}

/// Where a session's message came from and where its answers go.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub session: Slot,
    pub to: ReplyTo,
    pub now: Instant,
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

fn notification(session: &mut Session, method: &str, params: Map<String, Value>) {
    match method {
        "notifications/initialized" => session.initialized = true,
        "notifications/cancelled" => {
            let control = params
                .get("requestId")
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
    params: Map<String, Value>,
    origin: Origin,
) -> Action {
    let reply = match method {
        "initialize" => initialize(session, &params),
        "ping" => Ok("{}".to_string()),
        "tools/list" => list_tools(registry, &params),
        "tools/call" => return call_tool(registry, id, params, origin),
        _ => Err((
            codes::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        )),
    };
    Action::Reply(match reply {
        Ok(result) => rpc::result_response(id.json(), &result),
        Err((code, message)) => rpc::error_response(Some(id.json()), code, &message),
    })
}

type Outcome = Result<String, (i64, String)>;

fn initialize(session: &mut Session, params: &Map<String, Value>) -> Outcome {
    let Some(requested) = params.get("protocolVersion").and_then(Value::as_str) else {
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
    session.client_capabilities = params
        .get("capabilities")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Ok(json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": true}},
        "serverInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
        "instructions": "mcp-gateway: tools of several MCP servers behind one endpoint.",
    })
    .to_string())
}

fn list_tools(registry: &Snapshot, params: &Map<String, Value>) -> Outcome {
    // The whole merged list is one page: any cursor is one we never issued.
    if let Some(cursor) = params.get("cursor") {
        return Err((
            codes::INVALID_PARAMS,
            format!("Invalid params: unknown cursor {cursor}"),
        ));
    }
    Ok(registry.list_result.clone())
}

fn call_tool(
    registry: &Snapshot,
    id: Id,
    mut params: Map<String, Value>,
    origin: Origin,
) -> Action {
    let fail =
        |code, message: String| Action::Reply(rpc::error_response(Some(id.json()), code, &message));
    let name = match params.get("name") {
        Some(Value::String(name)) => name.clone(),
        _ => {
            return fail(
                codes::INVALID_PARAMS,
                "Invalid params: tools/call needs a string \"name\"".into(),
            )
        }
    };
    if !matches!(params.get("arguments"), None | Some(Value::Object(_))) {
        return fail(
            codes::INVALID_PARAMS,
            "Invalid params: \"arguments\" must be an object".into(),
        );
    }
    let Some(tool) = registry.route(&name) else {
        return fail(codes::INVALID_PARAMS, format!("Unknown tool: {name}"));
    };
    let progress_token = params
        .get("_meta")
        .and_then(|m| m.get("progressToken"))
        .filter(|t| t.is_string() || t.is_i64() || t.is_u64())
        .cloned();
    params.insert("name".into(), Value::String(tool.original.clone()));
    Action::Dispatch(Box::new(Job {
        to: origin.to,
        session: Some(origin.session),
        answer: Answer::JsonRpc(id),
        server: tool.server,
        method: "tools/call",
        params,
        progress_token,
        created: origin.now,
        control: Default::default(),
    }))
}
