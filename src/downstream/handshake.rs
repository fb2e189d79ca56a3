//! Bringing a fresh handle into service: the `server/discover` probe (protocol 2026-07-28) or
//! `initialize` and `notifications/initialized` (2025), and the listings the registry needs (every
//! page of each list the server's capabilities announce).

use super::era;
use super::{CallError, Requester};
use crate::config::Protocol;
use crate::registry::{ListKind, Listing};
use crate::rpc::stamp::Cache;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// The protocol version the gateway asks its servers for.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";
/// Every version the gateway speaks, newest first.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] =
    &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// How long `server/discover` may take before a server is taken for a 2025 one (as the Python
/// SDK's probe); `initialize` then gets what is left of `initTimeout`.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
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

/// Brings the handle up in the era `protocol` asks for: with `auto`, a server that answers
/// `server/discover` naming 2026-07-28 is spoken to statelessly and any other answer (an error, a
/// result naming only 2025 versions) falls back to `initialize`; with `2026-07-28` that fall-back is
/// an error. All of it is bounded by `deadline`.
pub fn handshake_with(
    child: &dyn Requester,
    protocol: Protocol,
    deadline: Instant,
) -> Result<Ready, String> {
    if protocol == Protocol::Legacy {
        return handshake_2025(child, deadline);
    }
    let probe = |deadline: Instant| {
        let params = json!({"_meta": era::own_meta()});
        request(child, "server/discover", params, deadline)
    };
    let probe_deadline = deadline.min(Instant::now() + PROBE_TIMEOUT);
    let timed_out = match probe(probe_deadline) {
        Ok(discovered) if era::speaks_modern(&discovered) => {
            return ready_modern(child, &discovered, deadline)
        }
        Ok(_) if protocol == Protocol::Modern => {
            return Err(format!(
                "its server/discover result does not name {} (its \"protocol\" is that)",
                era::MODERN_VERSION
            ))
        }
        Err(e) if protocol == Protocol::Modern => return Err(e),
        Ok(_) => {
            log::debug!(
                "{}: server/discover names no 2026-07-28; initializing",
                child.label()
            );
            false
        }
        Err(e) => {
            log::debug!("{}: {e}; initializing", child.label());
            Instant::now() >= probe_deadline
        }
    };
    match handshake_2025(child, deadline) {
        // A slow starter may have taken the probe after all and refuse initialize now: ask again.
        Err(e) if timed_out => match probe(deadline) {
            Ok(discovered) if era::speaks_modern(&discovered) => {
                ready_modern(child, &discovered, deadline)
            }
            _ => Err(e),
        },
        done => done,
    }
}

/// A 2026-07-28 server: what `server/discover` said, then its lists.
fn ready_modern(
    child: &dyn Requester,
    discovered: &Value,
    deadline: Instant,
) -> Result<Ready, String> {
    let info = ServerInfo {
        protocol_version: era::MODERN_VERSION.to_string(),
        capabilities: discovered
            .get("capabilities")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        server_info: discovered
            .pointer("/_meta/io.modelcontextprotocol~1serverInfo")
            .cloned()
            .unwrap_or(Value::Null),
        instructions: discovered
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    child.set_modern();
    let listing = listing(child, &info, deadline)?;
    // What replaces the 2025 server's unasked list_changed: a subscription held as long as the
    // handle lives (its answer would only come when the server ends it). Resources clients
    // subscribe to join it later (`wanted`).
    child.listen(era::Listen::Start(era::Subscription::new(
        &info.capabilities,
    )));
    Ok(Ready { info, listing })
}

/// The initialize handshake of the 2025 revisions (what remote handles speak).
pub fn handshake(child: &dyn Requester, deadline: Instant) -> Result<Ready, String> {
    handshake_2025(child, deadline)
}

fn handshake_2025(child: &dyn Requester, deadline: Instant) -> Result<Ready, String> {
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
    let listing = listing(child, &info, deadline)?;
    Ok(Ready { info, listing })
}

/// Every list the server's capabilities announce.
fn listing(child: &dyn Requester, info: &ServerInfo, deadline: Instant) -> Result<Listing, String> {
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
    Ok(listing)
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
    let (items, cache) = list_all(child, method, kind.key(), deadline)?;
    if kind != ListKind::Tools || !child.modern() {
        return Ok((items, cache));
    }
    let (items, headers) = era::offerable_tools(&child.label(), items);
    child.set_param_headers(headers);
    Ok((items, cache))
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
    // A 2026-07-28 server needs the protocol fields on every request.
    let params = if child.modern() {
        era::with_own_meta(Some(params))
    } else {
        params
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
        Err(CallError::Unauthorized(why)) => Err(why),
        Err(CallError::TooLarge(limit)) => Err(format!(
            "its {method} answer exceeds maxMessageBytes ({limit} bytes)"
        )),
    }
}
