//! Which protocol era a handle speaks, and what that changes in what the gateway sends it.
//!
//! A 2026-07-28 server has no handshake: the gateway probes it with `server/discover` (`protocol`
//! `auto` or `2026-07-28`), and every request it sends then carries `_meta` with the protocol
//! version and client capabilities. A call from a 2026-07-28 client keeps that client's own
//! `_meta` (its capabilities and clientInfo), so what the server decides from them is decided for
//! the right client; a 2025 client's call declares no capabilities (the gateway does not turn a
//! server's `input_required` results into requests to 2025 clients, so promising them would be
//! wrong). The log level is never passed on: log messages of a stdio server name no request, so
//! they could reach another client. A 2025 server gets none of the revision's `_meta` fields.
//! Its `list_changed` a 2026-07-28 server sends only on a `subscriptions/listen`: the handshake
//! opens one for the lists the server says can change (`listen_filter`).

use crate::rpc::Params;
use serde_json::{json, Map, Value};

/// The 2026-07-28 revision, as the gateway speaks it downstream.
pub const MODERN_VERSION: &str = "2026-07-28";

const PREFIX: &str = "io.modelcontextprotocol/";
const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
const CLIENT_INFO_KEY: &str = "io.modelcontextprotocol/clientInfo";

/// The `_meta` of a request the gateway makes itself (discover, listings).
pub fn own_meta() -> Value {
    json!({
        VERSION_KEY: MODERN_VERSION,
        CAPABILITIES_KEY: {},
        CLIENT_INFO_KEY: {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// Adds the gateway's own `_meta` to a request's params for a 2026-07-28 server.
pub fn with_own_meta(params: Option<Map<String, Value>>) -> Map<String, Value> {
    let mut params = params.unwrap_or_default();
    params.insert("_meta".into(), own_meta());
    params
}

/// A client's call made fit for the handle's era (see the module doc).
pub fn prepare(params: &mut Params, modern: bool) {
    let meta = match params.get("_meta") {
        Some(Value::Object(meta)) => Some(meta),
        _ => None,
    };
    if !modern {
        let Some(meta) = meta else {
            return;
        };
        if !meta.keys().any(|k| k.starts_with(PREFIX)) {
            return; // the common case: left byte for byte
        }
        let kept: Map<String, Value> = meta
            .into_iter()
            .filter(|(k, _)| !k.starts_with(PREFIX))
            .collect();
        if kept.is_empty() {
            params.remove("_meta");
        } else {
            params.set("_meta", &Value::Object(kept));
        }
        return;
    }
    let mut meta = meta.unwrap_or_default();
    meta.remove("io.modelcontextprotocol/logLevel");
    meta.insert(VERSION_KEY.into(), Value::from(MODERN_VERSION));
    if !meta.get(CAPABILITIES_KEY).is_some_and(Value::is_object) {
        meta.insert(CAPABILITIES_KEY.into(), json!({}));
    }
    meta.entry(CLIENT_INFO_KEY)
        .or_insert_with(|| json!({"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")}));
    params.set("_meta", &Value::Object(meta));
}

/// The log level a 2026-07-28 client's call asks for (`_meta["io.modelcontextprotocol/logLevel"]`),
/// as a rank in `mcp::LOG_LEVELS`.
pub fn log_level(params: &Params) -> Option<usize> {
    if !params.raw("_meta")?.get().contains("logLevel") {
        return None; // the common case: no parse
    }
    let meta = params.get("_meta")?;
    let level = meta.get("io.modelcontextprotocol/logLevel")?.as_str()?;
    crate::upstream::mcp::log_rank(level)
}

/// The `subscriptions/listen` filter for the lists a 2026-07-28 server says can change; None when
/// none can.
pub fn listen_filter(capabilities: &Map<String, Value>) -> Option<Value> {
    let changes = |capability: &str| {
        capabilities
            .get(capability)
            .and_then(|c| c.get("listChanged"))
            .and_then(Value::as_bool)
            == Some(true)
    };
    let mut filter = Map::new();
    for (capability, key) in [
        ("tools", "toolsListChanged"),
        ("prompts", "promptsListChanged"),
        ("resources", "resourcesListChanged"),
    ] {
        if changes(capability) {
            filter.insert(key.into(), Value::Bool(true));
        }
    }
    (!filter.is_empty()).then_some(Value::Object(filter))
}

/// Whether a `server/discover` result says the server speaks the gateway's stateless version.
pub fn speaks_modern(discovered: &Value) -> bool {
    discovered
        .get("supportedVersions")
        .and_then(Value::as_array)
        .is_some_and(|v| v.iter().any(|v| v == MODERN_VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Params {
        Params::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_2025_server_gets_none_of_the_revisions_fields() {
        let mut p =
            params(json!({"name": "t", "_meta": {VERSION_KEY: "2026-07-28", "progressToken": 1}}));
        prepare(&mut p, false);
        assert_eq!(p.get("_meta"), Some(json!({"progressToken": 1})));
        let text = r#"{"name":"t","_meta":{"progressToken":1.0}}"#;
        let mut p = Params::parse(text.as_bytes()).unwrap();
        prepare(&mut p, false);
        assert_eq!(serde_json::to_string(&p).unwrap(), text, "untouched");
    }

    #[test]
    fn a_2026_server_gets_the_clients_own_meta_without_its_log_level() {
        let mut p = params(json!({"name": "t", "_meta": {
            VERSION_KEY: "2026-07-28", CAPABILITIES_KEY: {"sampling": {}},
            CLIENT_INFO_KEY: {"name": "c", "version": "1"},
            "io.modelcontextprotocol/logLevel": "debug", "progressToken": "p"}}));
        prepare(&mut p, true);
        let meta = p.get("_meta").unwrap();
        assert_eq!(meta[CAPABILITIES_KEY], json!({"sampling": {}}));
        assert_eq!(meta[CLIENT_INFO_KEY]["name"], "c");
        assert_eq!(meta["progressToken"], "p");
        assert!(meta.get("io.modelcontextprotocol/logLevel").is_none());
        // A 2025 client's call: the version and no capabilities.
        let mut p = params(json!({"name": "t"}));
        prepare(&mut p, true);
        let meta = p.get("_meta").unwrap();
        assert_eq!(meta[VERSION_KEY], MODERN_VERSION);
        assert_eq!(meta[CAPABILITIES_KEY], json!({}));
    }

    #[test]
    fn the_listen_filter_asks_for_what_can_change() {
        let caps = json!({"tools": {"listChanged": true}, "prompts": {}, "resources": {"listChanged": true}});
        assert_eq!(
            listen_filter(caps.as_object().unwrap()),
            Some(json!({"toolsListChanged": true, "resourcesListChanged": true}))
        );
        assert_eq!(listen_filter(&Map::new()), None);
    }

    #[test]
    fn discover_results_are_read_for_the_version() {
        assert!(speaks_modern(&json!({"supportedVersions": ["2026-07-28"]})));
        assert!(!speaks_modern(
            &json!({"supportedVersions": ["2025-11-25"]})
        ));
        assert!(!speaks_modern(&json!({})));
    }
}
