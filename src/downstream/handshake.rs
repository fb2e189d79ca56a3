//! Bringing a fresh handle into service: `initialize`, `notifications/initialized`, and the listings
//! the registry needs (every page of each list the server's capabilities announce).

use super::{CallError, Requester};
use crate::registry::{ListKind, Listing};
use crate::rpc::stamp::Cache;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// The protocol version the gateway asks its servers for.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";
/// Every version the gateway speaks, newest first.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] =
    &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// A server answering more pages than this is looping.
const MAX_PAGES: usize = 1000;

/// What a server said about itself in `initialize`.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    pub protocol_version: String,
    pub capabilities: Map<String, Value>,
    pub server_info: Value,
    pub instructions: Option<String>,
}

/// The outcome of a successful handshake.
#[derive(Debug)]
pub struct Ready {
    pub info: ServerInfo,
    pub listing: Listing,
}

/// Runs the handshake, all of it bounded by `deadline`. Errors are sentences for logs and `/health`.
pub fn handshake(child: &dyn Requester, deadline: Instant) -> Result<Ready, String> {
    // What a server may ask during a call goes to the client that made it (refused when that client
    // cannot answer); asked outside a call, roots/list gets an empty list.
    let params = json!({
        "protocolVersion": LATEST_PROTOCOL_VERSION,
        "capabilities": {"roots": {}, "sampling": {}, "elicitation": {}},
        "clientInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
    });
    let result = request(child, "initialize", params, deadline)?;
    let info = parse_initialize(&result)?;
    child.initialized();
    let mut listing = Listing {
        capabilities: info.capabilities.clone(),
        ..Listing::default()
    };
    for kind in ListKind::ALL {
        if !offers(&info.capabilities, kind) {
            continue;
        }
        match list(child, kind, deadline) {
            Ok((items, cache)) => {
                *slot(&mut listing, kind) = items;
                listing.cache[kind as usize] = Some(cache);
            }
            // A server without tools is no use; missing extras only lose the extras.
            Err(e) if kind == ListKind::Tools => return Err(e),
            Err(e) => log::warn!("{}: {e}; its {} are not listed", child.label(), kind.key()),
        }
    }
    Ok(Ready { info, listing })
}

/// Whether the capabilities announce a list.
pub fn offers(capabilities: &Map<String, Value>, kind: ListKind) -> bool {
    let capability = match kind {
        ListKind::Tools => "tools",
        ListKind::Prompts => "prompts",
        ListKind::Resources | ListKind::Templates => "resources",
    };
    capabilities.contains_key(capability)
}

/// The part of a listing that holds `kind`.
pub fn slot(listing: &mut Listing, kind: ListKind) -> &mut Vec<Map<String, Value>> {
    match kind {
        ListKind::Tools => &mut listing.tools,
        ListKind::Prompts => &mut listing.prompts,
        ListKind::Resources => &mut listing.resources,
        ListKind::Templates => &mut listing.templates,
    }
}

/// Every page of one list, and the caching hints of all of them together.
pub fn list(
    child: &dyn Requester,
    kind: ListKind,
    deadline: Instant,
) -> Result<(Vec<Map<String, Value>>, Cache), String> {
    let method = match kind {
        ListKind::Tools => "tools/list",
        ListKind::Prompts => "prompts/list",
        ListKind::Resources => "resources/list",
        ListKind::Templates => "resources/templates/list",
    };
    list_all(child, method, kind.key(), deadline)
}

fn parse_initialize(result: &Value) -> Result<ServerInfo, String> {
    let version = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .ok_or("its initialize result has no protocolVersion")?;
    if !SUPPORTED_PROTOCOL_VERSIONS.contains(&version) {
        return Err(format!(
            "it speaks protocol version {version}, which the gateway does not (it speaks {})",
            SUPPORTED_PROTOCOL_VERSIONS.join(", ")
        ));
    }
    Ok(ServerInfo {
        protocol_version: version.to_string(),
        capabilities: result
            .get("capabilities")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        server_info: result.get("serverInfo").cloned().unwrap_or(Value::Null),
        instructions: result
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Fetches every page of a list method and returns the items under `key`, with the pages' caching
/// hints merged (a server that gives none gets the revision's default: stale at once).
fn list_all(
    child: &dyn Requester,
    method: &str,
    key: &str,
    deadline: Instant,
) -> Result<(Vec<Map<String, Value>>, Cache), String> {
    let mut items = Vec::new();
    let mut cache: Option<Cache> = None;
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let page = request(child, method, params, deadline)?;
        let entries = page
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("its {method} result has no \"{key}\" array"))?;
        items.extend(entries.iter().filter_map(|v| v.as_object().cloned()));
        let hints = Cache::of(&page);
        cache = Some(cache.map_or(hints, |c| c.merge(hints)));
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(next) if !next.is_empty() => {
                if cursor.as_deref() == Some(next) {
                    return Err(format!("its {method} returned the same cursor twice"));
                }
                cursor = Some(next.to_string());
            }
            _ => return Ok((items, cache.unwrap_or_default())),
        }
    }
    Err(format!("its {method} returned more than {MAX_PAGES} pages"))
}

/// One request whose result we need as a value.
fn request(
    child: &dyn Requester,
    method: &str,
    params: Value,
    deadline: Instant,
) -> Result<Value, String> {
    let params = match params {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    match child.request(method, Some(params), deadline) {
        Ok(Ok(result)) => serde_json::from_str(result.get())
            .map_err(|e| format!("its {method} result is not valid JSON: {e}")),
        Ok(Err(error)) => Err(format!(
            "it answered {method} with an error: {}",
            error.get()
        )),
        Err(CallError::Timeout) => Err(format!(
            "it did not answer {method} before initTimeout ran out"
        )),
        Err(CallError::Stalled) => Err(format!(
            "it did not read its input (the {method} request) before initTimeout ran out"
        )),
        Err(CallError::Closed(note)) => Err(format!("{note} during {method}")),
        Err(CallError::TooLarge(limit)) => Err(format!(
            "its {method} answer exceeds maxMessageBytes ({limit} bytes)"
        )),
    }
}
