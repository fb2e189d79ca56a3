//! Which protocol era a handle speaks, and what that changes in what the gateway sends it.
//!
//! A 2026-07-28 server has no handshake: the gateway probes it with `server/discover` (`protocol`
//! `auto` or `2026-07-28`), and every request it sends then carries `_meta` with the protocol
//! version and client capabilities. A call from a 2026-07-28 client keeps that client's own
//! `_meta` (its capabilities, log level and clientInfo), so what the server decides from them is
//! decided for the right client; a 2025 client's call declares what that client declared in
//! `initialize` and the level it set with `logging/setLevel` (`declare`): the gateway turns the
//! server's `input_required` results into requests to it, and the call's log messages (which such
//! a server sends only on the call's own stream) go to that client alone. A 2025 server gets none
//! of the revision's `_meta` fields.
//!
//! Its `list_changed` and resource updates a 2026-07-28 server sends only on a
//! `subscriptions/listen`: each handle holds one (`Subscription`) for the lists the server says
//! can change plus every resource a 2025 client subscribed to, and opens a new one (ending the old)
//! when that set changes. Over HTTP each request mirrors its version, method and name into headers
//! (`mirrored_headers`). When such a server answers a 2025 client's call `input_required`, the
//! carrier of the call (child I/O, or the worker for a remote) does the round trip for the client:
//! `input_round` reads what to ask, and the call is sent again with the answers
//! (`Flight::retry_params`), at most `MAX_INPUT_ROUNDS` times.

use crate::rpc::Params;
use serde_json::{json, Map, Value};

/// The 2026-07-28 revision, as the gateway speaks it downstream.
pub const MODERN_VERSION: &str = "2026-07-28";

const PREFIX: &str = "io.modelcontextprotocol/";
const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
const CLIENT_INFO_KEY: &str = "io.modelcontextprotocol/clientInfo";
const LOG_LEVEL_KEY: &str = "io.modelcontextprotocol/logLevel";

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

/// Puts what a 2025 session declared (its `initialize` capabilities, its `logging/setLevel`) into
/// a call's `_meta`, where a 2026-07-28 server reads them. Only for such a server: a 2025 one
/// would not know these fields (and its calls pay nothing for them).
pub fn declare(params: &mut Params, declared: &crate::job::Declared) {
    if declared.capabilities.is_empty() && declared.log_level.is_none() {
        return;
    }
    let mut meta = match params.get("_meta") {
        Some(Value::Object(meta)) => meta,
        _ => Map::new(),
    };
    if !declared.capabilities.is_empty() {
        meta.insert(
            CAPABILITIES_KEY.into(),
            Value::Object((*declared.capabilities).clone()),
        );
    }
    let level = declared
        .log_level
        .and_then(|rank| crate::upstream::mcp::LOG_LEVELS.get(rank));
    if let Some(level) = level {
        meta.insert(LOG_LEVEL_KEY.into(), Value::from(*level));
    }
    params.set("_meta", &Value::Object(meta));
}

/// A client's call made fit for the handle's era (see the module doc).
pub fn prepare(params: &mut Params, modern: bool) {
    if !modern
        && !params
            .raw("_meta")
            .is_some_and(|raw| raw.get().contains(PREFIX))
    {
        return; // the common case (no `_meta`, or only a progress token): left byte for byte
    }
    let meta = match params.get("_meta") {
        Some(Value::Object(meta)) => Some(meta),
        _ => None,
    };
    if !modern {
        let Some(meta) = meta else {
            return;
        };
        if !meta.keys().any(|k| k.starts_with(PREFIX)) {
            return; // the prefix was in a value, not a key
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
    let level = meta.get(LOG_LEVEL_KEY)?.as_str()?;
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

/// What one 2026-07-28 handle listens for on its `subscriptions/listen`: the lists its server says
/// can change, and the resources 2025 clients subscribed to (their `resources/subscribe`, which
/// this revision replaced). Owned by whoever holds the handle's listen (child I/O for a child, the
/// stream thread for a remote).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Subscription {
    lists: Map<String, Value>,
    resources: std::collections::BTreeSet<String>,
}

/// A change to a handle's `Subscription`.
#[derive(Debug, Clone)]
pub enum Listen {
    /// After the handshake: the lists that can change, from the server's capabilities.
    Start(Subscription),
    /// A client subscribed to (`true`) or unsubscribed from a resource.
    Resource { uri: String, subscribe: bool },
}

impl Subscription {
    /// The lists `capabilities` say can change, no resources yet.
    pub fn new(capabilities: &Map<String, Value>) -> Subscription {
        let lists = match listen_filter(capabilities) {
            Some(Value::Object(lists)) => lists,
            _ => Map::new(),
        };
        Subscription {
            lists,
            resources: Default::default(),
        }
    }

    /// Applies `change`; true when what is listened for changed (a new listen is due).
    pub fn apply(&mut self, change: Listen) -> bool {
        match change {
            Listen::Start(subscription) => {
                // Resources asked for before the handshake ended stay asked for.
                let resources = std::mem::take(&mut self.resources);
                *self = subscription;
                self.resources.extend(resources);
                true
            }
            Listen::Resource {
                uri,
                subscribe: true,
            } => self.resources.insert(uri),
            Listen::Resource {
                uri,
                subscribe: false,
            } => self.resources.remove(&uri),
        }
    }

    /// The `subscriptions/listen` params for it; None when there is nothing to listen for.
    pub fn params(&self) -> Option<Map<String, Value>> {
        if self.lists.is_empty() && self.resources.is_empty() {
            return None;
        }
        let mut filter = self.lists.clone();
        if !self.resources.is_empty() {
            filter.insert(
                "resourceSubscriptions".into(),
                self.resources.iter().cloned().collect(),
            );
        }
        Some(with_own_meta(Some(Map::from_iter([(
            "notifications".to_string(),
            Value::Object(filter),
        )]))))
    }
}

/// What a 2025-era out-of-band request (`wanted`) means for a 2026-07-28 handle: a change of its
/// listen, or nothing (`logging/setLevel`: the level travels with each call instead).
pub fn listen_change(method: &str, params: &Map<String, Value>) -> Option<Listen> {
    let uri = || {
        params
            .get("uri")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match method {
        "resources/subscribe" => Some(Listen::Resource {
            uri: uri()?,
            subscribe: true,
        }),
        "resources/unsubscribe" => Some(Listen::Resource {
            uri: uri()?,
            subscribe: false,
        }),
        _ => None,
    }
}

/// The headers a 2026-07-28 request mirrors from its body over Streamable HTTP: the version (when
/// `version`: a handle that speaks it already sends it on every POST), the method, and for calls
/// the name (or URI), Base64-wrapped when it is not plain header text.
pub fn mirrored_headers(
    method: &str,
    params: Option<&Params>,
    version: bool,
) -> Vec<(String, String)> {
    let mut headers = Vec::with_capacity(3);
    if version {
        headers.push((
            "MCP-Protocol-Version".to_string(),
            MODERN_VERSION.to_string(),
        ));
    }
    headers.push(("Mcp-Method".to_string(), method.to_string()));
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return headers,
    };
    if let Some(name) = params.and_then(|p| p.str(key)) {
        headers.push(("Mcp-Name".to_string(), header_value(&name)));
    }
    headers
}

/// `value` as a header value: as is when it is visible ASCII (inner spaces allowed), else (or when
/// it looks like the sentinel itself) `=?base64?…?=`.
fn header_value(value: &str) -> String {
    let sentinel = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain = !value.is_empty()
        && value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !sentinel;
    if plain {
        return value.to_string();
    }
    format!(
        "=?base64?{}?=",
        crate::base64::encode(value.as_bytes(), crate::base64::Alphabet::Standard)
    )
}

/// How many `input_required` rounds one call may take before it is failed (a server that never
/// settles must not keep a client answering forever).
pub const MAX_INPUT_ROUNDS: u32 = 8;
/// The id prefix under which a server's input request is put to a 2025 client.
const INPUT_KEY: &str = "input:";

/// The id under which the input request `key` of a round is put to a 2025 client.
pub fn input_id(key: &str) -> Value {
    Value::String(format!("{INPUT_KEY}{key}"))
}

/// The round's key of a client's answer to `child_id`, when it answers an input request (not a
/// server's own request).
pub fn input_key(child_id: &Value) -> Option<&str> {
    child_id.as_str()?.strip_prefix(INPUT_KEY)
}

/// Whether a server's request to its client is one the gateway can put to a client (during a
/// call, to the client that made it).
pub fn relayable(method: &str) -> bool {
    matches!(
        method,
        "sampling/createMessage" | "elicitation/create" | "roots/list"
    )
}

/// Whether a result is an `InputRequiredResult` (a cheap look first: most results are not).
pub fn is_input_required(result: &str) -> bool {
    result.contains("input_required")
        && serde_json::from_str::<Value>(result)
            .is_ok_and(|r| r.get("resultType").and_then(Value::as_str) == Some("input_required"))
}

/// The input requests of one `input_required` round, to put to a 2025 client.
pub struct InputRound {
    /// (key, method, params) of each.
    pub requests: Vec<(String, String, Option<Value>)>,
}

/// Starts a round of `rounds` from an `input_required` result; Err says why it cannot be done.
pub fn input_round(
    result: &str,
    rounds: &mut crate::downstream::flight::Rounds,
) -> Result<InputRound, String> {
    let parsed: Value = serde_json::from_str(result).unwrap_or_default();
    rounds.count += 1;
    if rounds.count > MAX_INPUT_ROUNDS {
        return Err(format!(
            "it asked for input more than {MAX_INPUT_ROUNDS} times in one call"
        ));
    }
    let mut requests = Vec::new();
    for (key, request) in parsed
        .get("inputRequests")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let method = request.get("method").and_then(Value::as_str).unwrap_or("");
        if !relayable(method) {
            return Err(format!(
                "it asked for input {key:?} of a kind the gateway cannot relay ({method:?})"
            ));
        }
        requests.push((
            key.clone(),
            method.to_string(),
            request.get("params").cloned(),
        ));
    }
    rounds.state = parsed.get("requestState").cloned();
    rounds.responses = Map::new();
    rounds.waiting = requests.iter().map(|(key, _, _)| key.clone()).collect();
    Ok(InputRound { requests })
}

/// The `x-mcp-header` annotations of a tool's `inputSchema`: (header name after `Mcp-Param-`,
/// property path). Err: an annotation breaks the revision's rules (not a token, a duplicate, on a
/// non-primitive or `number` property, or not reachable through `properties` alone), and the
/// tool is not to be offered.
pub fn param_headers(schema: &Value) -> Result<Vec<(String, Vec<String>)>, String> {
    fn all(v: &Value) -> usize {
        match v {
            Value::Object(m) => {
                usize::from(m.contains_key(X_MCP_HEADER)) + m.values().map(all).sum::<usize>()
            }
            Value::Array(a) => a.iter().map(all).sum(),
            _ => 0,
        }
    }
    fn walk(
        schema: &Value,
        path: &mut Vec<String>,
        found: &mut Vec<(String, Vec<String>)>,
    ) -> Result<(), String> {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return Ok(());
        };
        for (key, property) in properties {
            path.push(key.clone());
            if let Some(header) = property.get(X_MCP_HEADER) {
                let header = header.as_str().unwrap_or_default();
                let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
                if header.is_empty() || !header.bytes().all(token) {
                    return Err(format!("x-mcp-header {header:?} is not a header name"));
                }
                let kind = property.get("type").and_then(Value::as_str);
                if !matches!(kind, Some("string" | "integer" | "boolean")) {
                    return Err(format!(
                        "x-mcp-header {header:?} is on a property of type {kind:?} (only string, integer, boolean)"
                    ));
                }
                if found.iter().any(|(h, _)| h.eq_ignore_ascii_case(header)) {
                    return Err(format!("x-mcp-header {header:?} is used twice"));
                }
                found.push((header.to_string(), path.clone()));
            }
            walk(property, path, found)?;
            path.pop();
        }
        Ok(())
    }
    let mut found = Vec::new();
    walk(schema, &mut Vec::new(), &mut found)?;
    if found.len() != all(schema) {
        return Err("an x-mcp-header is not reachable through \"properties\" alone".into());
    }
    Ok(found)
}

const X_MCP_HEADER: &str = "x-mcp-header";

/// Each tool's `x-mcp-header` annotations, by tool name (only tools that have any).
pub type ParamHeaders = std::collections::HashMap<String, Vec<(String, Vec<String>)>>;

/// A 2026-07-28 server's tools as the gateway offers them: those whose `x-mcp-header`
/// annotations are invalid are left out (with a warning naming why), and the annotations of the
/// others are returned.
pub fn offerable_tools(
    label: &str,
    tools: Vec<Map<String, Value>>,
) -> (Vec<Map<String, Value>>, ParamHeaders) {
    let mut headers = ParamHeaders::new();
    let mut kept = Vec::with_capacity(tools.len());
    for tool in tools {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
        match param_headers(tool.get("inputSchema").unwrap_or(&Value::Null)) {
            Ok(found) => {
                if !found.is_empty() {
                    headers.insert(name.to_string(), found);
                }
                kept.push(tool);
            }
            Err(why) => log::warn!("{label}: its tool {name:?} is not offered: {why}"),
        }
    }
    (kept, headers)
}

/// The `Mcp-Param-*` headers of a call to a tool with these annotations: each argument present at
/// its path (and not null), as the revision renders it.
pub fn param_header_values(
    headers: &[(String, Vec<String>)],
    arguments: Option<&Value>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, path) in headers {
        let mut value = arguments;
        for key in path {
            value = value.and_then(|v| v.get(key));
        }
        let rendered = match value {
            Some(Value::String(s)) => header_value(s),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            _ => continue,
        };
        out.push((format!("Mcp-Param-{name}"), rendered));
    }
    out
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
    fn a_2026_server_gets_the_clients_own_meta() {
        let mut p = params(json!({"name": "t", "_meta": {
            VERSION_KEY: "2026-07-28", CAPABILITIES_KEY: {"sampling": {}},
            CLIENT_INFO_KEY: {"name": "c", "version": "1"},
            "io.modelcontextprotocol/logLevel": "debug", "progressToken": "p"}}));
        prepare(&mut p, true);
        let meta = p.get("_meta").unwrap();
        assert_eq!(meta[CAPABILITIES_KEY], json!({"sampling": {}}));
        assert_eq!(meta[CLIENT_INFO_KEY]["name"], "c");
        assert_eq!(meta["progressToken"], "p");
        assert_eq!(
            meta[LOG_LEVEL_KEY], "debug",
            "its log messages ride the call's stream"
        );
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
    fn a_2025_sessions_declarations_reach_a_2026_server() {
        let declared = crate::job::Declared {
            capabilities: std::sync::Arc::new(json!({"sampling": {}}).as_object().unwrap().clone()),
            log_level: crate::upstream::mcp::log_rank("warning"),
        };
        let mut p = params(json!({"name": "t", "_meta": {"progressToken": 3}}));
        declare(&mut p, &declared);
        prepare(&mut p, true);
        let meta = p.get("_meta").unwrap();
        assert_eq!(meta[CAPABILITIES_KEY], json!({"sampling": {}}));
        assert_eq!(meta[LOG_LEVEL_KEY], "warning");
        assert_eq!(meta["progressToken"], 3);
        assert_eq!(log_level(&p), crate::upstream::mcp::log_rank("warning"));
        let mut p = params(json!({"name": "t"}));
        declare(&mut p, &crate::job::Declared::default());
        assert_eq!(p.get("_meta"), None, "nothing declared, nothing added");
    }

    #[test]
    fn a_subscription_holds_the_lists_and_the_resources_asked_for() {
        let caps = json!({"tools": {"listChanged": true}});
        let mut sub = Subscription::default();
        assert!(sub.apply(
            listen_change(
                "resources/subscribe",
                json!({"uri": "a://1"}).as_object().unwrap()
            )
            .unwrap()
        ));
        assert!(sub.apply(Listen::Start(Subscription::new(caps.as_object().unwrap()))));
        let filter = |sub: &Subscription| sub.params().unwrap()["notifications"].clone();
        assert_eq!(
            filter(&sub),
            json!({"toolsListChanged": true, "resourceSubscriptions": ["a://1"]}),
            "a resource asked for before the handshake ended is kept"
        );
        assert_eq!(sub.params().unwrap()["_meta"][VERSION_KEY], MODERN_VERSION);
        let again = Listen::Resource {
            uri: "a://1".into(),
            subscribe: true,
        };
        assert!(!sub.apply(again), "no change, no new listen");
        assert!(sub.apply(Listen::Resource {
            uri: "a://1".into(),
            subscribe: false
        }));
        assert_eq!(filter(&sub), json!({"toolsListChanged": true}));
        assert_eq!(Subscription::default().params(), None);
        assert!(listen_change("logging/setLevel", &Map::new()).is_none());
    }

    #[test]
    fn mirrored_headers_name_the_call() {
        let p = params(json!({"name": "get weather", "arguments": {}}));
        let headers = mirrored_headers("tools/call", Some(&p), true);
        assert_eq!(
            headers[0],
            ("MCP-Protocol-Version".into(), MODERN_VERSION.into())
        );
        assert_eq!(headers[1], ("Mcp-Method".into(), "tools/call".into()));
        assert_eq!(headers[2], ("Mcp-Name".into(), "get weather".into()));
        assert_eq!(
            header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(
            header_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        assert_eq!(mirrored_headers("tools/list", None, true).len(), 2);
        assert_eq!(mirrored_headers("tools/list", None, false).len(), 1);
    }

    #[test]
    fn x_mcp_header_annotations_are_checked_and_rendered() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "opts": {"type": "object", "properties": {
                "n": {"type": "integer", "x-mcp-header": "N"},
                "on": {"type": "boolean", "x-mcp-header": "On"}}},
            "query": {"type": "string"}}});
        let headers = param_headers(&schema).unwrap();
        assert_eq!(headers.len(), 3);
        let args = json!({"region": "us-west1", "opts": {"n": 42, "on": false}, "query": "x"});
        let mut values = param_header_values(&headers, Some(&args));
        values.sort();
        assert_eq!(
            values,
            [
                ("Mcp-Param-N".to_string(), "42".to_string()),
                ("Mcp-Param-On".to_string(), "false".to_string()),
                ("Mcp-Param-Region".to_string(), "us-west1".to_string()),
            ]
        );
        let absent = param_header_values(&headers, Some(&json!({"region": null})));
        assert!(absent.is_empty(), "null and absent values send no header");
        let bad = |schema: Value| param_headers(&schema).unwrap_err();
        bad(json!({"properties": {"x": {"type": "number", "x-mcp-header": "X"}}}));
        bad(json!({"properties": {"x": {"type": "string", "x-mcp-header": "X Y"}}}));
        bad(
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "X"},
                                  "b": {"type": "string", "x-mcp-header": "x"}}}),
        );
        bad(json!({"properties": {"a": {"type": "array",
                                        "items": {"type": "string", "x-mcp-header": "X"}}}}));
        bad(json!({"oneOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "X"}}}]}));
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
