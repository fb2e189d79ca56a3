//! Turns the JSON tree into a [`Config`]: every section checked against its keys, defaults applied,
//! per-server settings merged with `pool` and `gateway`, Claude Desktop `mcpServers` entries imported,
//! and `mapping` / `toolFilters` attached to the servers they name.
//!
//! Nothing here stops at the first mistake: each part falls back to a default and carries on, and the
//! result is only returned when no problem at all was found.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::schema::{describe, quote, Checker, Env, Object};
use super::types::{
    AuditConfig, AuditTarget, AuthGrant, Config, Cors, GatewayConfig, LocalServer, Mapping, Pin,
    PoolSettings, Protocol, Recycle, RemoteAuth, RemoteServer, RemoteTransport, ServerConfig,
    ServerKind, Share, StripPrefix, ToolFilter, ToolOverride,
};
use super::{clients, key_path, secret, Problem};

const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 4298;
const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;
const DEFAULT_MAX_MESSAGE_BYTES: usize = 32 << 20;
const DEFAULT_MAX_CLIENTS: usize = 16_384;
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DEFAULT_PAGE_SIZE: usize = 500;
const DEFAULT_MAX_SESSIONS: usize = 10_000;
const DEFAULT_MAX_IN_FLIGHT_PER_SESSION: usize = 64;
const DEFAULT_MAX_QUEUED_BYTES: usize = 32 << 20;
const DEFAULT_MAX_MEMORY_BYTES: usize = 256 << 20;
/// `gateway.auditLogMaxBytes`: 10 MiB per audit file.
const DEFAULT_AUDIT_LOG_MAX_BYTES: u64 = 10 << 20;
const DEFAULT_MIN_CONNECTIONS: usize = 1;
const DEFAULT_MAX_CONNECTIONS: usize = 5;
const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_MAX_CONCURRENCY: usize = 16;
/// More calls in flight on one pipe than this is a typo, not a setting.
const MAX_CONCURRENCY_LIMIT: usize = 4096;
const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest server name and rename target; names show up in logs, `/health` and tool names.
const MAX_NAME_LEN: usize = 64;
const MAX_PREFIX_LEN: usize = 32;

const TOP_KEYS: &[&str] = &[
    "gateway",
    "pool",
    "servers",
    "mcpServers",
    "mapping",
    "toolFilters",
    "profiles",
    "$schema",
];
const GATEWAY_KEYS: &[&str] = &[
    "host",
    "port",
    "cors",
    "workers",
    "maxBodyBytes",
    "maxMessageBytes",
    "maxClients",
    "callTimeout",
    "keepaliveInterval",
    "shutdownTimeout",
    "sessionTimeout",
    "authToken",
    "authTokenFile",
    "allowUnauthenticated",
    "allowedOrigins",
    "pageSize",
    "stateDir",
    "maxSessions",
    "maxInFlightPerSession",
    "maxQueuedBytes",
    "maxMemoryBytes",
    "allowedHosts",
    "watchConfig",
    "sessionKeyFile",
    "auditLog",
    "auditLogMaxBytes",
    "auditArguments",
    "oauth",
];
const GATEWAY_HINTS: &[(&str, &str)] = &[
    ("bind", "did you mean \"host\"?"),
    ("address", "did you mean \"host\"?"),
    ("listen", "did you mean \"host\" and \"port\"?"),
];
const POOL_KEYS: &[&str] = &[
    "minConnections",
    "maxConnections",
    "acquireTimeout",
    "idleTimeout",
    "maxConcurrency",
    "maxLifetime",
    "maxCalls",
    "maxRssBytes",
];
const POOL_HINTS: &[(&str, &str)] = &[(
    "poolSize",
    "the default maximum is \"maxConnections\"; \"poolSize\" sets it for one server",
)];
/// Keys every server entry may have ("name" only in `servers`: in `mcpServers` the key is the name).
const COMMON_SERVER_KEYS: &[&str] = &[
    "name",
    "type",
    "enabled",
    "poolSize",
    "minConnections",
    "acquireTimeout",
    "idleTimeout",
    "maxConcurrency",
    "maxLifetime",
    "maxCalls",
    "maxRssBytes",
    "share",
    "callTimeout",
    "initTimeout",
    "pin",
    "pinNew",
    "protocol",
];
const PROTOCOLS: &[&str] = &["auto", "2025-11-25", "2026-07-28"];
const SHARES: &[&str] = &["shared", "session", "call"];
const SHARE_HINTS: &[(&str, &str)] = &[
    ("per-session", "write \"session\""),
    (
        "isolated",
        "write \"session\" (a process per client session) or \"call\"",
    ),
    ("none", "write \"call\" (a fresh process for every call)"),
    ("pooled", "write \"shared\""),
];
const LOCAL_KEYS: &[&str] = &["command", "args", "cwd", "env"];
const REMOTE_KEYS: &[&str] = &["url", "transport", "headers", "caFile", "auth"];
const AUTH_KEYS: &[&str] = &[
    "type",
    "clientId",
    "clientSecret",
    "clientMetadataUrl",
    "scopes",
    "redirectPort",
];
const AUTH_TYPES: &[&str] = &["oauth", "client_credentials"];
const SERVER_HINTS: &[(&str, &str)] = &[
    ("disabled", "write \"enabled\": false instead"),
    ("maxConnections", "a server's maximum is \"poolSize\""),
    ("timeout", "did you mean \"callTimeout\"?"),
];
const TRANSPORTS: &[&str] = &["auto", "streamable", "sse"];
const TRANSPORT_HINTS: &[(&str, &str)] = &[
    ("http", "write \"streamable\""),
    ("streamable-http", "write \"streamable\""),
];
const NATIVE_TYPES: &[&str] = &["local", "remote"];
const NATIVE_TYPE_HINTS: &[(&str, &str)] = &[
    ("stdio", "write \"local\""),
    ("sse", "write \"remote\", with \"transport\": \"sse\""),
    (
        "http",
        "write \"remote\", with \"transport\": \"streamable\"",
    ),
    (
        "streamable-http",
        "write \"remote\", with \"transport\": \"streamable\"",
    ),
];
/// Claude Desktop and similar clients spell the server type their own way.
const CLAUDE_TYPES: &[&str] = &[
    "stdio",
    "local",
    "sse",
    "http",
    "streamable-http",
    "streamableHttp",
    "remote",
];
const MAPPING_KEYS: &[&str] = &["prefix", "stripPrefix", "rename", "tools"];
const OVERRIDE_KEYS: &[&str] = &["name", "title", "description", "annotations", "hidden"];
const FILTER_KEYS: &[&str] = &["include", "exclude"];

/// Builds the configuration from the parsed file, or returns every problem found.
pub(super) fn config(root: &Value, env: Env) -> Result<Config, Vec<Problem>> {
    let mut c = Checker::new(env);
    let Some(top) = c.object(root, "", "a JSON object at the top level") else {
        return Err(c.into_problems());
    };
    let client_file = clients::is_client_file(top);
    let mut notes = Vec::new();
    let foreign: Vec<&str> = top
        .keys()
        .map(String::as_str)
        .filter(|k| !TOP_KEYS.contains(k))
        .collect();
    if client_file && !foreign.is_empty() {
        notes.push(format!(
            "a client's config: its other top-level keys are ignored ({})",
            foreign.join(", ")
        ));
    }
    for key in top
        .keys()
        .filter(|k| !TOP_KEYS.contains(&k.as_str()) && !client_file)
    {
        let hint = if GATEWAY_KEYS.contains(&key.as_str()) {
            Some("it belongs in the \"gateway\" section")
        } else if POOL_KEYS.contains(&key.as_str()) {
            Some("it belongs in the \"pool\" section")
        } else {
            None
        };
        c.unknown_key("", key, TOP_KEYS, hint);
    }
    c.field(top, "", "$schema", Checker::string);

    let mut gateway = gateway(&mut c, top.get("gateway"));
    let defaults = pool_defaults(&mut c, top.get("pool"), gateway.call_timeout);
    let mut servers = Servers::default();
    match top.get("servers") {
        // VS Code's `.vscode/mcp.json`: servers keyed by name.
        Some(map) if map.is_object() && client_file => {
            servers.read_claude_map(&mut c, map, "servers", &defaults)
        }
        Some(list) => servers.read_list(&mut c, list, &defaults),
        None => {}
    }
    if let Some(map) = top.get("mcpServers") {
        servers.read_claude_map(&mut c, map, "mcpServers", &defaults);
    }
    notes.extend(clients::ignored_note(&servers.ignored));
    if let Some(v) = top.get("mapping") {
        servers.attach(&mut c, v, "mapping", mapping, |server, m| {
            server.mapping = m
        });
    }
    if let Some(v) = top.get("toolFilters") {
        servers.attach(&mut c, v, "toolFilters", tool_filter, |server, f| {
            server.filters = f
        });
    }

    let names: Vec<&str> = servers
        .entries
        .iter()
        .filter_map(|e| e.name.as_deref())
        .collect();
    let profiles = super::profiles::read(&mut c, top.get("profiles"), &names);
    let scoped = profiles.iter().filter(|p| !p.required_scopes.is_empty());
    match gateway.oauth.as_mut() {
        Some(oauth) => {
            oauth.profile_scopes = scoped
                .map(|p| (p.name.clone(), p.required_scopes.clone()))
                .collect()
        }
        None if top.get("gateway").and_then(|g| g.get("oauth")).is_none() => {
            for p in scoped {
                c.report(
                    &format!("profiles.{}.requiredScopes", p.name),
                    "has no effect without gateway.oauth (scopes come from OAuth access tokens)",
                );
            }
        }
        None => {}
    }

    let problems = c.into_problems();
    if !problems.is_empty() {
        return Err(problems);
    }
    let servers = servers
        .entries
        .into_iter()
        .filter_map(|e| e.config)
        .collect();
    Ok(Config {
        gateway,
        servers,
        profiles,
        source: None,
        notes,
    })
}

fn gateway(c: &mut Checker, v: Option<&Value>) -> GatewayConfig {
    let mut g = GatewayConfig {
        host: DEFAULT_HOST.to_owned(),
        port: DEFAULT_PORT,
        cors: Cors::Off,
        workers: None,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        max_clients: DEFAULT_MAX_CLIENTS,
        call_timeout: DEFAULT_CALL_TIMEOUT,
        keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
        shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        session_timeout: DEFAULT_SESSION_TIMEOUT,
        auth_token: None,
        auth_token_file: None,
        allow_unauthenticated: false,
        allowed_origins: Vec::new(),
        page_size: DEFAULT_PAGE_SIZE,
        state_dir: default_state_dir(),
        max_sessions: DEFAULT_MAX_SESSIONS,
        max_in_flight_per_session: DEFAULT_MAX_IN_FLIGHT_PER_SESSION,
        max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
        max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
        allowed_hosts: Vec::new(),
        watch_config: true,
        session_key_file: None,
        audit: None,
        oauth: None,
    };
    const P: &str = "gateway";
    let Some(obj) = v.and_then(|v| c.object(v, P, "an object")) else {
        return g;
    };
    c.unknown_keys(obj, P, GATEWAY_KEYS, GATEWAY_HINTS);
    if let Some(host) = c.field(obj, P, "host", Checker::non_empty_string) {
        g.host = host.to_owned();
    }
    if let Some(port) = c.field(obj, P, "port", |c, v, p| {
        c.integer(v, p, 0, u16::MAX.into())
    }) {
        g.port = u16::try_from(port).unwrap_or(DEFAULT_PORT);
    }
    if let Some(cors) = c.field(obj, P, "cors", cors) {
        g.cors = cors;
    }
    g.workers = c.field(obj, P, "workers", |c, v, p| c.count(v, p, 1, 1024));
    let bytes = |c: &mut Checker, v: &Value, p: &str| c.count(v, p, 1024, usize::MAX);
    g.max_body_bytes = c
        .field(obj, P, "maxBodyBytes", bytes)
        .unwrap_or(g.max_body_bytes);
    g.max_message_bytes = c
        .field(obj, P, "maxMessageBytes", bytes)
        .unwrap_or(g.max_message_bytes);
    g.max_clients = c
        .field(obj, P, "maxClients", |c, v, p| c.count(v, p, 1, 1_000_000))
        .unwrap_or(g.max_clients);
    g.call_timeout = c
        .field(obj, P, "callTimeout", |c, v, p| c.millis(v, p, 1))
        .unwrap_or(g.call_timeout);
    g.keepalive_interval = c
        .field(obj, P, "keepaliveInterval", |c, v, p| c.millis(v, p, 100))
        .unwrap_or(g.keepalive_interval);
    g.shutdown_timeout = c
        .field(obj, P, "shutdownTimeout", |c, v, p| c.millis(v, p, 0))
        .unwrap_or(g.shutdown_timeout);
    g.session_timeout = c
        .field(obj, P, "sessionTimeout", |c, v, p| c.millis(v, p, 1000))
        .unwrap_or(g.session_timeout);
    g.auth_token = c
        .field(obj, P, "authToken", Checker::expanded)
        .filter(|token| !token.is_empty());
    if let Some(file) = c.field(obj, P, "authTokenFile", file_path) {
        if obj.contains_key("authToken") {
            c.report(
                "gateway.authTokenFile",
                "set gateway.authToken or gateway.authTokenFile, not both",
            );
        } else {
            match secret::read_token_file(&file) {
                Ok(token) => g.auth_token = Some(token),
                Err(message) => c.report("gateway.authTokenFile", message),
            }
        }
        g.auth_token_file = Some(file);
    }
    g.allow_unauthenticated = c
        .field(obj, P, "allowUnauthenticated", Checker::boolean)
        .unwrap_or(false);
    g.watch_config = c
        .field(obj, P, "watchConfig", Checker::boolean)
        .unwrap_or(true);
    g.session_key_file = c.field(obj, P, "sessionKeyFile", file_path);
    g.page_size = c
        .field(obj, P, "pageSize", |c, v, p| c.count(v, p, 1, 100_000))
        .unwrap_or(g.page_size);
    if let Some(origins) = c.field(obj, P, "allowedOrigins", |c, v, p| {
        c.list(v, p, "a list of origins", origin)
    }) {
        g.allowed_origins = origins;
    }
    if let Some(dir) = c.field(obj, P, "stateDir", file_path) {
        g.state_dir = Some(dir);
    }
    g.max_sessions = c
        .field(obj, P, "maxSessions", |c, v, p| {
            c.count(v, p, 1, 10_000_000)
        })
        .unwrap_or(g.max_sessions);
    g.max_in_flight_per_session = c
        .field(obj, P, "maxInFlightPerSession", |c, v, p| {
            c.count(v, p, 1, 100_000)
        })
        .unwrap_or(g.max_in_flight_per_session);
    let queued = c.field(obj, P, "maxQueuedBytes", |c, v, p| {
        c.count(v, p, 64 * 1024, usize::MAX)
    });
    let memory = c.field(obj, P, "maxMemoryBytes", |c, v, p| {
        c.count(v, p, 1 << 20, usize::MAX)
    });
    g.max_queued_bytes = queued.unwrap_or(g.max_queued_bytes);
    g.max_memory_bytes = memory.unwrap_or(g.max_memory_bytes);
    if g.max_memory_bytes < g.max_queued_bytes && (queued.is_some() || memory.is_some()) {
        let path = if memory.is_some() {
            "gateway.maxMemoryBytes"
        } else {
            "gateway.maxQueuedBytes"
        };
        c.report(
            path,
            format!(
                "gateway.maxMemoryBytes ({}) must be at least gateway.maxQueuedBytes ({}): the total queued for all clients cannot be less than what one may hold",
                g.max_memory_bytes, g.max_queued_bytes
            ),
        );
    }
    if let Some(hosts) = c.field(obj, P, "allowedHosts", |c, v, p| {
        c.list(v, p, "a list of host names", host)
    }) {
        g.allowed_hosts = hosts;
    }
    g.audit = audit(c, obj);
    g.oauth = super::oauth::oauth(c, obj);
    g
}

/// `gateway.auditLog` ("stderr" or a path), `auditLogMaxBytes`, `auditArguments`.
fn audit(c: &mut Checker, obj: &Object) -> Option<AuditConfig> {
    const P: &str = "gateway";
    let target = c.field(obj, P, "auditLog", |c, v, p| {
        if v.as_str() == Some("stderr") {
            return Some(AuditTarget::Stderr);
        }
        let path = file_path(c, v, p)?;
        if path.as_os_str().to_string_lossy().ends_with('/') {
            c.report(
                p,
                format!(
                    "{} names a directory; name the file to write",
                    path.display()
                ),
            );
            return None;
        }
        Some(AuditTarget::File(path))
    });
    let max_bytes = c.field(obj, P, "auditLogMaxBytes", |c, v, p| {
        c.integer(v, p, 4096, u64::MAX >> 1)
    });
    let arguments = c.field(obj, P, "auditArguments", Checker::boolean);
    if target.is_none() && !obj.contains_key("auditLog") {
        for key in ["auditLogMaxBytes", "auditArguments"] {
            if obj.contains_key(key) {
                c.report(
                    &format!("gateway.{key}"),
                    "has no effect without gateway.auditLog (a file path, or \"stderr\")",
                );
            }
        }
    }
    Some(AuditConfig {
        target: target?,
        max_bytes: max_bytes.unwrap_or(DEFAULT_AUDIT_LOG_MAX_BYTES),
        arguments: arguments.unwrap_or(false),
    })
}

/// `$XDG_STATE_HOME/mcp-gateway`, else `$HOME/.local/state/mcp-gateway` (relative values ignored,
/// as the XDG spec says).
pub(crate) fn default_state_dir() -> Option<PathBuf> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute("XDG_STATE_HOME")
        .map(|d| d.join("mcp-gateway"))
        .or_else(|| absolute("HOME").map(|h| h.join(".local/state/mcp-gateway")))
}

/// One `allowedHosts` entry: what a client sends as `Host`, e.g. `gw.internal` or `gw.internal:4298`.
fn host(c: &mut Checker, v: &Value, path: &str) -> Option<String> {
    let host = c.non_empty_string(v, path)?;
    if let Some((_, rest)) = host.split_once("://") {
        c.report(
            path,
            format!(
                "a host has no scheme; write {}",
                quote(rest.trim_end_matches('/'))
            ),
        );
        return None;
    }
    if host == "*" || host.contains(['/', ' ', '*', ',']) {
        c.report(
            path,
            format!(
                "expected a host name such as \"gw.example.com\" or \"gw.example.com:4298\", found {}",
                quote(host)
            ),
        );
        return None;
    }
    Some(host.to_owned())
}

fn cors(c: &mut Checker, v: &Value, path: &str) -> Option<Cors> {
    const EXPECTED: &str = "false, true or a list of origins";
    match v {
        Value::Bool(false) => Some(Cors::Off),
        Value::Bool(true) => Some(Cors::Any),
        Value::Array(_) => c.list(v, path, EXPECTED, origin).map(Cors::Origins),
        Value::String(s) => {
            c.report(
                path,
                format!(
                    "expected {EXPECTED}, found {} (a string); write [{}]",
                    quote(s),
                    quote(s)
                ),
            );
            None
        }
        other => {
            c.report(
                path,
                format!("expected {EXPECTED}, found {}", describe(other)),
            );
            None
        }
    }
}

/// One `gateway.cors` entry. Browsers send `Origin` as `scheme://host[:port]` exactly, so anything else
/// would silently never match.
fn origin(c: &mut Checker, v: &Value, path: &str) -> Option<String> {
    let origin = c.non_empty_string(v, path)?;
    if origin == "*" {
        c.report(
            path,
            "\"*\" is not an origin; write \"cors\": true to allow any origin",
        );
        return None;
    }
    if origin.ends_with('/') {
        let trimmed = origin.trim_end_matches('/');
        c.report(
            path,
            format!("an origin has no trailing \"/\"; write {}", quote(trimmed)),
        );
        return None;
    }
    Some(origin.to_owned())
}

/// The `pool` section plus the gateway-wide call timeout: what a server inherits.
struct Defaults {
    pool: PoolSettings,
    call_timeout: Duration,
}

fn pool_defaults(c: &mut Checker, v: Option<&Value>, call_timeout: Duration) -> Defaults {
    let mut pool = PoolSettings {
        min: DEFAULT_MIN_CONNECTIONS,
        max: DEFAULT_MAX_CONNECTIONS,
        acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        max_concurrency: DEFAULT_MAX_CONCURRENCY,
        recycle: Recycle::default(),
        share: Share::Shared,
    };
    const P: &str = "pool";
    if let Some(obj) = v.and_then(|v| c.object(v, P, "an object")) {
        c.unknown_keys(obj, P, POOL_KEYS, POOL_HINTS);
        pool.min = c
            .field(obj, P, "minConnections", |c, v, p| {
                c.count(v, p, 0, usize::MAX)
            })
            .unwrap_or(pool.min);
        pool.max = c
            .field(obj, P, "maxConnections", |c, v, p| {
                c.count(v, p, 1, usize::MAX)
            })
            .unwrap_or(pool.max);
        pool.acquire_timeout = c
            .field(obj, P, "acquireTimeout", |c, v, p| c.millis(v, p, 1))
            .unwrap_or(pool.acquire_timeout);
        pool.idle_timeout = c
            .field(obj, P, "idleTimeout", |c, v, p| c.millis(v, p, 1))
            .unwrap_or(pool.idle_timeout);
        pool.max_concurrency = c
            .field(obj, P, "maxConcurrency", |c, v, p| {
                c.count(v, p, 1, MAX_CONCURRENCY_LIMIT)
            })
            .unwrap_or(pool.max_concurrency);
        pool.recycle = recycle(c, obj, P, &pool.recycle);
        if pool.min > pool.max {
            c.report(
                "pool.minConnections",
                format!(
                    "{} is more than the pool's maximum of {} (pool.maxConnections)",
                    pool.min, pool.max
                ),
            );
        }
    }
    Defaults { pool, call_timeout }
}

/// One server entry as read so far: its name (kept even when the rest is wrong, so duplicates and
/// `mapping` keys can still be checked against it) and its configuration if it was clean.
struct Entry {
    name: Option<String>,
    config: Option<ServerConfig>,
}

#[derive(Default)]
struct Servers {
    entries: Vec<Entry>,
    /// Server name → path of the entry that first used it.
    first_use: HashMap<String, String>,
    /// Client-only keys of entries keyed by name, accepted and ignored (`clients`).
    ignored: Vec<(String, &'static str)>,
}

impl Servers {
    fn read_list(&mut self, c: &mut Checker, v: &Value, defaults: &Defaults) {
        if v.is_object() {
            c.report(
                "servers",
                "expected an array of servers, found an object; \
                 to key servers by name, call the section \"mcpServers\"",
            );
            return;
        }
        let Some(items) = c.list(v, "servers", "an array of servers", |_, v, p| {
            Some((p.to_owned(), v))
        }) else {
            return;
        };
        for (path, item) in items {
            let entry = server(c, item, &path, None, defaults);
            self.add(c, entry, &key_path(&path, "name"), &path);
        }
    }

    /// Servers keyed by name (`mcpServers`, or VS Code's `servers` object), as clients write
    /// them: their own keys are turned into the gateway's first (`clients::entry`).
    fn read_claude_map(&mut self, c: &mut Checker, v: &Value, section: &str, defaults: &Defaults) {
        const EXPECTED: &str = "an object mapping server names to servers";
        let Some(items) = c.entries(v, section, EXPECTED, |_, k, v, p| {
            Some((k, v, p.to_owned()))
        }) else {
            return;
        };
        for (name, item, path) in items {
            let entry = match item.as_object() {
                Some(obj) => {
                    let client = clients::entry(c, obj, &path);
                    self.ignored.extend(client.ignored);
                    let mut entry =
                        server(c, &Value::Object(client.obj), &path, Some(name), defaults);
                    if let Some(config) = &mut entry.config {
                        config.filters.exclude.extend(client.exclude);
                    }
                    entry
                }
                None => server(c, item, &path, Some(name), defaults),
            };
            self.add(c, entry, &path, &path);
        }
    }

    fn add(&mut self, c: &mut Checker, entry: Entry, name_path: &str, entry_path: &str) {
        if let Some(name) = &entry.name {
            match self.first_use.get(name) {
                Some(first) => c.report(
                    name_path,
                    format!("duplicate server name \"{name}\" (first used by {first})"),
                ),
                None => {
                    self.first_use.insert(name.clone(), entry_path.to_owned());
                }
            }
        }
        self.entries.push(entry);
    }

    /// Reads a section keyed by server name (`mapping`, `toolFilters`) with `read`, and stores each
    /// value into its server with `store`. Keys that name no server are errors.
    fn attach<T>(
        &mut self,
        c: &mut Checker,
        v: &Value,
        section: &str,
        read: fn(&mut Checker, &Value, &str) -> Option<T>,
        store: fn(&mut ServerConfig, T),
    ) {
        let expected = "an object keyed by server name";
        let Some(items) = c.entries(v, section, expected, |c, name, v, path| {
            Some((name, read(c, v, path), path.to_owned()))
        }) else {
            return;
        };
        for (name, value, path) in items {
            match self
                .entries
                .iter_mut()
                .find(|e| e.name.as_deref() == Some(name))
            {
                Some(entry) => {
                    if let (Some(config), Some(value)) = (&mut entry.config, value) {
                        store(config, value);
                    }
                }
                None => c.report(
                    &path,
                    format!("no server named \"{name}\" ({})", self.name_list()),
                ),
            }
        }
    }

    fn name_list(&self) -> String {
        const SHOWN: usize = 20;
        let names: Vec<&str> = self
            .entries
            .iter()
            .filter_map(|e| e.name.as_deref())
            .collect();
        match names.len() {
            0 => "there are no servers".to_owned(),
            n if n > SHOWN => format!("servers: {}, …", names[..SHOWN].join(", ")),
            _ => format!("servers: {}", names.join(", ")),
        }
    }
}

/// What kind of server an entry is, as far as its `type` (or its keys) tell.
#[derive(Clone, Copy)]
enum Kind {
    Local,
    /// `Some` when a Claude-style `type` ("sse", "http") already fixes the transport.
    Remote(Option<RemoteTransport>),
}

/// Reads one server entry at `path`; `claude_name` is its key when it comes from `mcpServers`.
fn server(
    c: &mut Checker,
    v: &Value,
    path: &str,
    claude_name: Option<&str>,
    defaults: &Defaults,
) -> Entry {
    let before = c.problem_count();
    let Some(obj) = c.object(v, path, "an object describing a server") else {
        return Entry {
            name: claude_name.map(str::to_owned),
            config: None,
        };
    };
    let name = match claude_name {
        Some(name) => {
            check_name(c, name, path, "server name");
            Some(name.to_owned())
        }
        None => {
            if !obj.contains_key("name") {
                c.report(
                    path,
                    "missing \"name\" (letters, digits, \"_\" or \"-\"; \
                     used in logs, /health and tool names)",
                );
            }
            c.field(obj, path, "name", |c, v, p| {
                let name = c.string(v, p)?;
                check_name(c, name, p, "server name");
                Some(name.to_owned())
            })
        }
    };
    let kind = kind(c, obj, path, claude_name.is_some());
    check_server_keys(c, obj, path, kind, claude_name);

    let enabled = c
        .field(obj, path, "enabled", Checker::boolean)
        .unwrap_or(true);
    let pool = pool_settings(c, obj, path, name.as_deref(), &defaults.pool);
    let call_timeout = c
        .field(obj, path, "callTimeout", |c, v, p| c.millis(v, p, 1))
        .unwrap_or(defaults.call_timeout);
    let init_timeout = c
        .field(obj, path, "initTimeout", |c, v, p| c.millis(v, p, 1))
        .unwrap_or(DEFAULT_INIT_TIMEOUT);
    let (pin, pin_new) = pin_settings(c, obj, path);
    let protocol = c
        .field(obj, path, "protocol", |c, v, p| {
            let protocol = match c.choice(v, p, PROTOCOLS, &[])? {
                "2025-11-25" => Protocol::Legacy,
                "2026-07-28" => Protocol::Modern,
                _ => Protocol::Auto,
            };
            Some(protocol)
        })
        .unwrap_or_default();
    let kind = match kind {
        Some(Kind::Local) => local(c, obj, path).map(ServerKind::Local),
        Some(Kind::Remote(implied)) => remote(c, obj, path, implied).map(ServerKind::Remote),
        None => None,
    };

    if let Some(ServerKind::Remote(remote)) = &kind {
        if protocol == Protocol::Modern && remote.transport == RemoteTransport::Sse {
            c.report(
                &key_path(path, "protocol"),
                "\"2026-07-28\" has no legacy SSE transport; use \"transport\": \"streamable\" or \"auto\"",
            );
        }
    }
    let config = match (&name, kind) {
        (Some(name), Some(kind)) if c.problem_count() == before => Some(ServerConfig {
            name: name.clone(),
            kind,
            enabled,
            pool,
            call_timeout,
            init_timeout,
            mapping: Mapping::default(),
            filters: ToolFilter::default(),
            pin,
            pin_new,
            protocol,
        }),
        _ => None,
    };
    Entry { name, config }
}

/// `pin` (default warn) and `pinNew` (default false, only with `pin: hold`).
fn pin_settings(c: &mut Checker, obj: &Object, path: &str) -> (Pin, bool) {
    let hints = [
        ("on", "write \"warn\" or \"hold\""),
        ("true", "write \"warn\" or \"hold\""),
        ("block", "write \"hold\""),
    ];
    let pin = c
        .field(obj, path, "pin", |c, v, p| {
            c.choice(v, p, &["off", "warn", "hold"], &hints)
        })
        .map(|choice| match choice {
            "off" => Pin::Off,
            "hold" => Pin::Hold,
            _ => Pin::Warn,
        })
        .unwrap_or_default();
    let pin_new = c
        .field(obj, path, "pinNew", Checker::boolean)
        .unwrap_or(false);
    if pin_new && pin != Pin::Hold && obj.contains_key("pin") {
        c.report(
            &key_path(path, "pinNew"),
            "new tools wait for approval only with \"pin\": \"hold\"; set it, or remove pinNew",
        );
    } else if pin_new && pin != Pin::Hold {
        c.report(
            &key_path(path, "pinNew"),
            "new tools wait for approval only with \"pin\": \"hold\" (the default is \"warn\"); add \"pin\": \"hold\"",
        );
    }
    (pin, pin_new)
}

/// Server names and rename targets: `^[A-Za-z0-9_-]{1,64}$`.
fn check_name(c: &mut Checker, name: &str, path: &str, what: &str) -> bool {
    let valid = !name.is_empty() && name.len() <= MAX_NAME_LEN && name.chars().all(is_name_char);
    if !valid {
        c.report(
            path,
            format!(
                "{} is not a valid {what}: use 1 to {MAX_NAME_LEN} letters, digits, \"_\" or \"-\"",
                quote(name)
            ),
        );
    }
    valid
}

fn is_name_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || ch == '_' || ch == '-'
}

/// The kind from `type`, or when absent from whether the entry has `command` or `url`.
fn kind(c: &mut Checker, obj: &Object, path: &str, claude: bool) -> Option<Kind> {
    if let Some(v) = obj.get("type") {
        let type_path = key_path(path, "type");
        return if claude {
            Some(match c.choice(v, &type_path, CLAUDE_TYPES, &[])? {
                "stdio" | "local" => Kind::Local,
                "sse" => Kind::Remote(Some(RemoteTransport::Sse)),
                "http" | "streamable-http" | "streamableHttp" => {
                    Kind::Remote(Some(RemoteTransport::Streamable))
                }
                _ => Kind::Remote(None),
            })
        } else {
            Some(
                match c.choice(v, &type_path, NATIVE_TYPES, NATIVE_TYPE_HINTS)? {
                    "local" => Kind::Local,
                    _ => Kind::Remote(None),
                },
            )
        };
    }
    match (obj.contains_key("command"), obj.contains_key("url")) {
        (true, false) => Some(Kind::Local),
        (false, true) => Some(Kind::Remote(None)),
        (true, true) => {
            c.report(
                path,
                "has both \"command\" (a local server) and \"url\" (a remote server): keep one",
            );
            None
        }
        (false, false) => {
            c.report(
                path,
                "missing \"command\" (to run a local server) or \"url\" (to reach a remote one)",
            );
            None
        }
    }
}

/// Unknown keys, keys of the other server type, and `name` inside `mcpServers` entries.
fn check_server_keys(
    c: &mut Checker,
    obj: &Object,
    path: &str,
    kind: Option<Kind>,
    claude_name: Option<&str>,
) {
    let all: Vec<&str> = [COMMON_SERVER_KEYS, LOCAL_KEYS, REMOTE_KEYS].concat();
    for key in obj.keys() {
        let key = key.as_str();
        let key_at = || key_path(path, key);
        let other_type = match kind {
            Some(Kind::Local) if REMOTE_KEYS.contains(&key) => Some(("remote", "local")),
            Some(Kind::Remote(_)) if LOCAL_KEYS.contains(&key) => Some(("local", "remote")),
            _ => None,
        };
        if let Some((valid_for, this)) = other_type {
            c.report(
                &key_at(),
                format!("only valid for a {valid_for} server (this one is {this})"),
            );
        } else if let (Some(name), "name") = (claude_name, key) {
            c.report(
                &key_at(),
                format!(
                    "not allowed here: the server's name is its key ({})",
                    quote(name)
                ),
            );
        } else if !all.contains(&key) {
            let hint = SERVER_HINTS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, h)| *h);
            c.unknown_key(path, key, &all, hint);
        }
    }
}

/// A server's pool: its own `poolSize` / `minConnections` / timeouts over the `pool` defaults.
fn pool_settings(
    c: &mut Checker,
    obj: &Object,
    path: &str,
    name: Option<&str>,
    defaults: &PoolSettings,
) -> PoolSettings {
    let own_max = c.field(obj, path, "poolSize", |c, v, p| {
        c.count(v, p, 1, usize::MAX)
    });
    let own_min = c.field(obj, path, "minConnections", |c, v, p| {
        c.count(v, p, 0, usize::MAX)
    });
    let pool = PoolSettings {
        min: own_min.unwrap_or(defaults.min),
        max: own_max.unwrap_or(defaults.max),
        acquire_timeout: c
            .field(obj, path, "acquireTimeout", |c, v, p| c.millis(v, p, 1))
            .unwrap_or(defaults.acquire_timeout),
        idle_timeout: c
            .field(obj, path, "idleTimeout", |c, v, p| c.millis(v, p, 1))
            .unwrap_or(defaults.idle_timeout),
        max_concurrency: c
            .field(obj, path, "maxConcurrency", |c, v, p| {
                c.count(v, p, 1, MAX_CONCURRENCY_LIMIT)
            })
            .unwrap_or(defaults.max_concurrency),
        recycle: recycle(c, obj, path, &defaults.recycle),
        share: c
            .field(obj, path, "share", |c, v, p| {
                Some(match c.choice(v, p, SHARES, SHARE_HINTS)? {
                    "session" => Share::Session,
                    "call" => Share::Call,
                    _ => Share::Shared,
                })
            })
            .unwrap_or_default(),
    };
    if pool.min > pool.max {
        let (min, max) = (pool.min, pool.max);
        match (own_min, own_max) {
            (Some(_), _) => {
                let source = if own_max.is_some() {
                    "poolSize"
                } else {
                    "pool.maxConnections"
                };
                c.report(
                    &key_path(path, "minConnections"),
                    format!("{min} is more than the pool's maximum of {max} ({source})"),
                );
            }
            (None, Some(_)) => c.report(
                "pool.minConnections",
                format!(
                    "{min} is more than the pool's maximum of {max} for server \"{}\" ({}); \
                     give that server its own \"minConnections\"",
                    name.unwrap_or("?"),
                    key_path(path, "poolSize"),
                ),
            ),
            // Both from the `pool` section: already reported there, once.
            (None, None) => {}
        }
    }
    pool
}

/// `maxLifetime`, `maxCalls`, `maxRssBytes` over `defaults`.
fn recycle(c: &mut Checker, obj: &Object, path: &str, defaults: &Recycle) -> Recycle {
    Recycle {
        max_lifetime: c
            .field(obj, path, "maxLifetime", |c, v, p| c.millis(v, p, 1000))
            .or(defaults.max_lifetime),
        max_calls: c
            .field(obj, path, "maxCalls", |c, v, p| {
                c.integer(v, p, 1, u64::MAX)
            })
            .or(defaults.max_calls),
        max_rss_bytes: c
            .field(obj, path, "maxRssBytes", |c, v, p| {
                c.integer(v, p, 1024 * 1024, u64::MAX)
            })
            .or(defaults.max_rss_bytes),
    }
}

fn local(c: &mut Checker, obj: &Object, path: &str) -> Option<LocalServer> {
    if !obj.contains_key("command") {
        c.report(
            path,
            "missing \"command\": a local server needs the program to run, e.g. [\"npx\", \"-y\", \"some-package\"]",
        );
    }
    let command = c.field(obj, path, "command", command);
    let args = c.field(obj, path, "args", |c, v, p| {
        c.list(v, p, "an array of strings", argument)
    });
    let cwd = c.field(obj, path, "cwd", file_path);
    let env = c.field(obj, path, "env", env_vars);
    let mut command = command?;
    command.extend(args.unwrap_or_default());
    Some(LocalServer {
        command,
        cwd,
        env: env.unwrap_or_default(),
    })
}

/// `command`: an array (program, then arguments), or a lone program name as a string. There is no
/// shell, so a string with spaces would run a program literally named "npx -y pkg": refuse it.
fn command(c: &mut Checker, v: &Value, path: &str) -> Option<Vec<String>> {
    let command = match v {
        Value::String(s) if s.contains(char::is_whitespace) => {
            let words: Vec<Value> = s.split_whitespace().map(Value::from).collect();
            c.report(
                path,
                format!(
                    "{} contains spaces, but no shell is used to split it: write an array, e.g. {}",
                    quote(s),
                    Value::Array(words)
                ),
            );
            return None;
        }
        Value::String(_) => vec![argument(c, v, path)?],
        Value::Array(items) if items.is_empty() => {
            c.report(path, "must not be empty: give at least the program to run");
            return None;
        }
        _ => c.list(
            v,
            path,
            "an array of strings (the program, then its arguments)",
            argument,
        )?,
    };
    if command[0].is_empty() {
        let at = if v.is_array() {
            format!("{path}[0]")
        } else {
            path.to_owned()
        };
        c.report(&at, "the program to run is empty");
        return None;
    }
    Some(command)
}

/// One element of `command` or `args`: `${VAR}`-expanded, and passable to `exec`.
fn argument(c: &mut Checker, v: &Value, path: &str) -> Option<String> {
    let arg = c.expanded(v, path)?;
    if arg.contains('\0') {
        c.report(
            path,
            "contains a NUL character, which no program argument can hold",
        );
        return None;
    }
    Some(arg)
}

/// `cwd` and `caFile`: a non-empty, `${VAR}`-expanded path.
fn file_path(c: &mut Checker, v: &Value, path: &str) -> Option<PathBuf> {
    let raw = c.non_empty_string(v, path)?;
    let expanded = c.expand(raw, path)?;
    if expanded.is_empty() {
        c.report(path, format!("{} expands to an empty path", quote(raw)));
        return None;
    }
    Some(PathBuf::from(expanded))
}

fn env_vars(c: &mut Checker, v: &Value, path: &str) -> Option<Vec<(String, String)>> {
    c.entries(
        v,
        path,
        "an object of environment variables (name: string value)",
        |c, name, v, p| {
            let name_ok = if name.is_empty() {
                c.report(p, "an environment variable name must not be empty");
                false
            } else if name.contains(['=', '\0']) {
                c.report(
                    p,
                    format!(
                        "{} is not a valid environment variable name (no \"=\" or NUL)",
                        quote(name)
                    ),
                );
                false
            } else {
                true
            };
            let value = argument(c, v, p)?;
            name_ok.then(|| (name.to_owned(), value))
        },
    )
}

fn remote(
    c: &mut Checker,
    obj: &Object,
    path: &str,
    implied: Option<RemoteTransport>,
) -> Option<RemoteServer> {
    if !obj.contains_key("url") {
        c.report(
            path,
            "missing \"url\": a remote server needs the address of its MCP endpoint, \
             e.g. \"https://example.com/mcp\"",
        );
    }
    let url = c.field(obj, path, "url", url);
    let transport = c.field(obj, path, "transport", |c, v, p| {
        let transport = match c.choice(v, p, TRANSPORTS, TRANSPORT_HINTS)? {
            "streamable" => RemoteTransport::Streamable,
            "sse" => RemoteTransport::Sse,
            _ => RemoteTransport::Auto,
        };
        if implied.is_some_and(|implied| implied != transport) {
            let ty = obj.get("type").and_then(Value::as_str).unwrap_or_default();
            c.report(
                p,
                format!("conflicts with \"type\": {}; remove one of them", quote(ty)),
            );
            return None;
        }
        Some(transport)
    });
    let headers = c.field(obj, path, "headers", headers);
    let ca_file = c.field(obj, path, "caFile", file_path);
    let auth = c.field(obj, path, "auth", remote_auth);
    // Tokens go in the clear over plain http: only to this machine.
    let plain = url
        .as_deref()
        .and_then(|u| crate::downstream::remote::url::Url::parse(u).ok())
        .is_some_and(|u| crate::oauth::http::allowed(&u).is_err());
    if auth.is_some() && plain {
        c.report(
            &key_path(path, "url"),
            "a server with \"auth\" must be https (or http on this machine's loopback): its \
             tokens would cross the network in the clear",
        );
    }
    if auth.is_some()
        && headers
            .iter()
            .flatten()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
    {
        c.report(
            &key_path(path, "headers"),
            "an \"Authorization\" header and \"auth\" cannot both be set: \"auth\" sends the \
             tokens it obtains; remove one of them",
        );
    }
    Some(RemoteServer {
        url: url?,
        transport: transport.or(implied).unwrap_or(RemoteTransport::Auto),
        headers: headers.unwrap_or_default(),
        ca_file,
        auth,
    })
}

/// `auth` of a remote server: `{"type": "oauth" | "client_credentials", …}`.
fn remote_auth(c: &mut Checker, v: &Value, path: &str) -> Option<RemoteAuth> {
    let obj = c.object(v, path, "an object like {\"type\": \"oauth\"}")?;
    c.unknown_keys(obj, path, AUTH_KEYS, &[]);
    let before = c.problem_count();
    let grant = match obj.get("type") {
        None => {
            c.report(
                path,
                "missing \"type\": \"oauth\" (log in once with mcp-gateway login) or \
                 \"client_credentials\" (machine to machine, with clientId and clientSecret)",
            );
            None
        }
        Some(v) => match c.choice(v, &key_path(path, "type"), AUTH_TYPES, &[])? {
            "client_credentials" => Some(AuthGrant::ClientCredentials),
            _ => Some(AuthGrant::AuthorizationCode),
        },
    };
    let client_id = c.field(obj, path, "clientId", Checker::expanded);
    let client_secret = c.field(obj, path, "clientSecret", Checker::expanded);
    let client_metadata_url = c.field(obj, path, "clientMetadataUrl", |c, v, p| {
        let url = c.expanded(v, p)?;
        let parsed = crate::downstream::remote::url::Url::parse(&url).ok();
        let loopback = parsed
            .as_ref()
            .is_some_and(|u| crate::oauth::http::is_loopback(&u.host));
        match parsed {
            Some(u) if (u.tls || loopback) && u.path.len() > 1 => Some(url),
            _ => {
                c.report(
                    p,
                    "a Client ID Metadata Document is at an https URL with a path, e.g. \
                     \"https://example.com/mcp-gateway.json\"",
                );
                None
            }
        }
    });
    let scopes = c.field(obj, path, "scopes", |c, v, p| {
        c.list(v, p, "an array of scope names", super::oauth::scope)
    });
    let redirect_port = c.field(obj, path, "redirectPort", |c, v, p| {
        c.integer(v, p, 0, 65535).map(|n| n as u16)
    });
    if client_secret.is_some() && client_id.is_none() {
        c.report(
            &key_path(path, "clientSecret"),
            "a client secret belongs to a \"clientId\"; set that too",
        );
    }
    if grant == Some(AuthGrant::ClientCredentials)
        && (client_id.is_none() || client_secret.is_none())
    {
        c.report(
            path,
            "\"client_credentials\" needs \"clientId\" and \"clientSecret\" (a client registered \
             with the authorization server)",
        );
    }
    if c.problem_count() != before {
        return None;
    }
    Some(RemoteAuth {
        grant: grant?,
        client_id,
        client_secret,
        client_metadata_url,
        scopes: scopes.unwrap_or_default(),
        redirect_port: redirect_port.unwrap_or(0),
    })
}

/// `url`: `${VAR}`-expanded, then checked. Messages show what the file says, never the expansion,
/// which may hold a token.
fn url(c: &mut Checker, v: &Value, path: &str) -> Option<String> {
    let raw = c.string(v, path)?;
    let url = c.expand(raw, path)?;
    let Err(reason) = check_url(&url) else {
        return Some(url);
    };
    let shown = if raw.contains("${") {
        format!("after expanding {}", quote(raw))
    } else {
        format!("found {}", quote(raw))
    };
    c.report(path, format!("{reason} ({shown})"));
    None
}

fn check_url(url: &str) -> Result<(), &'static str> {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err("expected an http:// or https:// URL");
    };
    if url.contains(char::is_whitespace) {
        return Err("a URL cannot contain spaces");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.strip_prefix('[') {
        // An IPv6 literal: [::1]:8080
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return Err("the URL has an unclosed \"[\" in its host"),
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err("the URL has no host");
    }
    if port.is_some_and(|p| !p.is_empty() && p.parse::<u16>().is_err()) {
        return Err("the URL's port is not a number from 0 to 65535");
    }
    Ok(())
}

fn headers(c: &mut Checker, v: &Value, path: &str) -> Option<Vec<(String, String)>> {
    let mut seen = HashSet::new();
    c.entries(
        v,
        path,
        "an object of HTTP headers (name: string value)",
        |c, name, v, p| {
            let name_ok = if name.is_empty() || !name.bytes().all(is_token_byte) {
                c.report(
                    p,
                    format!("{} is not a valid HTTP header name", quote(name)),
                );
                false
            } else if !seen.insert(name.to_ascii_lowercase()) {
                c.report(
                    p,
                    format!(
                        "header {} is given twice (header names ignore case)",
                        quote(name)
                    ),
                );
                false
            } else {
                true
            };
            let value = c.expanded(v, p)?;
            // A line break would let a value smuggle in extra headers.
            if value.contains(['\r', '\n', '\0']) {
                c.report(
                    p,
                    "the value contains a line break or NUL character, which a header cannot hold",
                );
                return None;
            }
            name_ok.then(|| (name.to_owned(), value))
        },
    )
}

/// RFC 9110 `tchar`: what a header name may be made of.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn mapping(c: &mut Checker, v: &Value, path: &str) -> Option<Mapping> {
    let obj = c.object(
        v,
        path,
        "an object with \"prefix\", \"stripPrefix\" and \"rename\"",
    )?;
    c.unknown_keys(obj, path, MAPPING_KEYS, &[]);
    let prefix = c.field(obj, path, "prefix", prefix);
    // Judged on the text as written, so an invalid prefix is not also reported as missing.
    let has_prefix = obj
        .get("prefix")
        .and_then(Value::as_str)
        .is_some_and(|p| !p.is_empty());
    let strip_prefix = c.field(obj, path, "stripPrefix", |c, v, p| match v {
        Value::Bool(false) => Some(StripPrefix::None),
        Value::Bool(true) if !has_prefix => {
            c.report(
                p,
                "true strips this server's \"prefix\", but it has none: \
                 set \"prefix\", or give the text to strip",
            );
            None
        }
        Value::Bool(true) => Some(StripPrefix::OwnPrefix),
        Value::String(s) if s.is_empty() => {
            c.report(p, "must not be empty (write false to strip nothing)");
            None
        }
        Value::String(s) => Some(StripPrefix::Literal(s.clone())),
        other => {
            let found = describe(other);
            c.report(
                p,
                format!("expected true, false or the text to strip, found {found}"),
            );
            None
        }
    });
    let mut rename = c.field(obj, path, "rename", rename).unwrap_or_default();
    let tools = c
        .field(obj, path, "tools", tool_overrides)
        .unwrap_or_default();
    let tools_path = key_path(path, "tools");
    for (original, (_, name)) in &tools {
        let Some(name) = name else { continue };
        let p = key_path(&tools_path, original);
        if rename.iter().any(|(from, _)| from == original) {
            c.report(
                &key_path(&p, "name"),
                format!(
                    "{} is renamed in \"rename\" too: give its new name once",
                    quote(original)
                ),
            );
        } else if let Some((first, _)) = rename.iter().find(|(_, to)| to == name) {
            c.report(
                &key_path(&p, "name"),
                format!(
                    "{} is already the new name of {}",
                    quote(name),
                    quote(first)
                ),
            );
        } else {
            rename.push((original.clone(), name.clone()));
        }
    }
    Some(Mapping {
        prefix: prefix.unwrap_or_default(),
        strip_prefix: strip_prefix.unwrap_or_default(),
        rename,
        tools: tools.into_iter().map(|(o, (t, _))| (o, t)).collect(),
    })
}

/// One `mapping.<server>.tools` entry: the original name, the override, and its new `name`.
type OverrideEntry = (String, (ToolOverride, Option<String>));

/// `mapping.<server>.tools`: original name → override (and its new `name`, if any).
fn tool_overrides(c: &mut Checker, v: &Value, path: &str) -> Option<Vec<OverrideEntry>> {
    c.entries(
        v,
        path,
        "an object of original tool name: {\"name\", \"title\", \"description\", \"annotations\", \"hidden\"}",
        |c, original, v, p| {
            if original.is_empty() {
                c.report(p, "the original tool name must not be empty");
                return None;
            }
            let obj = c.object(v, p, "an object with \"name\", \"title\", \"description\", \"annotations\" or \"hidden\"")?;
            c.unknown_keys(obj, p, OVERRIDE_KEYS, &[]);
            let name = c.field(obj, p, "name", |c, v, p| {
                let name = c.string(v, p)?;
                check_name(c, name, p, "tool name").then(|| name.to_owned())
            });
            let text = |c: &mut Checker, v: &Value, p: &str| c.string(v, p).map(str::to_owned);
            let annotations = c.field(obj, p, "annotations", |c, v, p| {
                c.object(v, p, "an object, e.g. {\"readOnlyHint\": true}").cloned()
            });
            let over = ToolOverride {
                title: c.field(obj, p, "title", text),
                description: c.field(obj, p, "description", text),
                annotations,
                hidden: c.field(obj, p, "hidden", Checker::boolean).unwrap_or(false),
            };
            Some((original.to_owned(), (over, name)))
        },
    )
}

fn prefix(c: &mut Checker, v: &Value, path: &str) -> Option<String> {
    let prefix = c.string(v, path)?;
    if let Some(bad) = prefix.chars().find(|ch| !is_name_char(*ch)) {
        c.report(
            path,
            format!(
                "may contain only letters, digits, \"_\" and \"-\" (found {})",
                quote(&bad.to_string())
            ),
        );
        return None;
    }
    if prefix.len() > MAX_PREFIX_LEN {
        c.report(
            path,
            format!(
                "is {} characters long; the limit is {MAX_PREFIX_LEN}",
                prefix.len()
            ),
        );
        return None;
    }
    Some(prefix.to_owned())
}

/// `rename`: original tool name → exposed name. Two originals may not share an exposed name.
fn rename(c: &mut Checker, v: &Value, path: &str) -> Option<Vec<(String, String)>> {
    let mut targets: HashMap<String, String> = HashMap::new();
    c.entries(
        v,
        path,
        "an object of original name: new name",
        |c, original, v, p| {
            if original.is_empty() {
                c.report(p, "the original tool name must not be empty");
                return None;
            }
            let new = c.string(v, p)?;
            if !check_name(c, new, p, "tool name") {
                return None;
            }
            if let Some(first) = targets.get(new) {
                c.report(
                    p,
                    format!("{} is already the new name of {}", quote(new), quote(first)),
                );
                return None;
            }
            targets.insert(new.to_owned(), original.to_owned());
            Some((original.to_owned(), new.to_owned()))
        },
    )
}

fn tool_filter(c: &mut Checker, v: &Value, path: &str) -> Option<ToolFilter> {
    let obj = c.object(v, path, "an object with \"include\" and \"exclude\"")?;
    c.unknown_keys(obj, path, FILTER_KEYS, &[]);
    let globs = |c: &mut Checker, v: &Value, p: &str| {
        c.list(
            v,
            p,
            "an array of tool names or patterns (\"*\" matches anything)",
            |c, v, p| c.non_empty_string(v, p).map(str::to_owned),
        )
    };
    let include = c.field(obj, path, "include", globs);
    let exclude = c.field(obj, path, "exclude", globs);
    Some(ToolFilter {
        include: include.unwrap_or_default(),
        exclude: exclude.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse_str;
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".into()),
            "TOKEN" => Some("s3cret".into()),
            "BAD_HEADER" => Some("s3cret\r\nX-Evil: 1".into()),
            "BAD_URL" => Some("ftp://s3cret@host".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Config {
        parse_str(text, &env).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
    }

    /// All problems of `text`, as "path: message" lines.
    fn problems(text: &str) -> Vec<String> {
        match parse_str(text, &env) {
            Ok(_) => panic!("expected errors in {text}"),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    /// The single problem of `text`.
    fn problem(text: &str) -> String {
        let all = problems(text);
        assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
        all.into_iter().next().unwrap()
    }

    fn local(server: &ServerConfig) -> &LocalServer {
        match &server.kind {
            ServerKind::Local(local) => local,
            ServerKind::Remote(_) => panic!("{} should be local", server.name),
        }
    }

    fn remote(server: &ServerConfig) -> &RemoteServer {
        match &server.kind {
            ServerKind::Remote(remote) => remote,
            ServerKind::Local(_) => panic!("{} should be remote", server.name),
        }
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn an_empty_file_is_an_empty_gateway() {
        let config = parse("{}");
        assert!(config.servers.is_empty());
        assert_eq!(config.source, None);
        let g = config.gateway;
        assert_eq!(
            (g.host.as_str(), g.port, g.cors, g.workers),
            ("127.0.0.1", 4298, Cors::Off, None)
        );
        assert_eq!(
            (g.max_body_bytes, g.max_message_bytes, g.max_clients),
            (4 << 20, 32 << 20, 16384)
        );
        assert_eq!(g.call_timeout, Duration::from_secs(60));
        assert_eq!(g.keepalive_interval, Duration::from_secs(15));
        assert_eq!(g.shutdown_timeout, Duration::from_secs(10));
    }

    #[test]
    fn audit_log_keys() {
        assert_eq!(parse("{}").gateway.audit, None);
        let g = parse(r#"{"gateway": {"auditLog": "stderr"}}"#).gateway;
        assert_eq!(
            g.audit,
            Some(AuditConfig {
                target: AuditTarget::Stderr,
                max_bytes: 10 << 20,
                arguments: false
            })
        );
        let g = parse(
            r#"{"gateway": {"auditLog": "/var/log/gw/audit.jsonl", "auditLogMaxBytes": 65536,
                "auditArguments": true}}"#,
        )
        .gateway;
        assert_eq!(
            g.audit,
            Some(AuditConfig {
                target: AuditTarget::File("/var/log/gw/audit.jsonl".into()),
                max_bytes: 65536,
                arguments: true
            })
        );
        assert_eq!(
            problem(r#"{"gateway": {"auditArguments": true}}"#),
            "gateway.auditArguments: has no effect without gateway.auditLog (a file path, or \"stderr\")"
        );
        assert_eq!(
            problem(r#"{"gateway": {"auditLog": "a.log", "auditLogMaxBytes": 10}}"#),
            "gateway.auditLogMaxBytes: expected an integer from 4096 to 9223372036854775807, found 10"
        );
        assert_eq!(
            problem(r#"{"gateway": {"auditLog": ""}}"#),
            "gateway.auditLog: must not be empty"
        );
        assert_eq!(
            problem(r#"{"gateway": {"auditLog": "/var/log/"}}"#),
            "gateway.auditLog: /var/log/ names a directory; name the file to write"
        );
        assert!(
            problem(r#"{"gateway": {"auditLog": true}}"#).starts_with("gateway.auditLog: expected")
        );
    }

    #[test]
    fn token_file_and_unauthenticated_keys() {
        let g = parse("{}").gateway;
        assert_eq!((g.auth_token_file, g.allow_unauthenticated), (None, false));
        let dir = super::super::ScratchDir::new("resolve-token-file");
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let text = serde_json::json!({"gateway": {
            "authTokenFile": file, "allowUnauthenticated": true
        }})
        .to_string();
        let g = parse(&text).gateway;
        assert_eq!(g.auth_token.as_deref(), Some("from-file"));
        assert_eq!(g.auth_token_file.as_deref(), Some(file.as_path()));
        assert!(g.allow_unauthenticated);
        let both = serde_json::json!({"gateway": {"authToken": "x", "authTokenFile": file}});
        assert_eq!(
            problem(&both.to_string()),
            "gateway.authTokenFile: set gateway.authToken or gateway.authTokenFile, not both"
        );
        let missing = dir.path().join("missing");
        let text = serde_json::json!({"gateway": {"authTokenFile": missing}}).to_string();
        assert!(problem(&text).starts_with(&format!(
            "gateway.authTokenFile: cannot read {}",
            missing.display()
        )));
        assert_eq!(
            problem(r#"{"gateway": {"allowUnauthenticated": "yes"}}"#),
            "gateway.allowUnauthenticated: expected true or false, found \"yes\" (a string)"
        );
    }

    #[test]
    fn hardening_keys() {
        let g = parse("{}").gateway;
        assert_eq!(
            (
                g.max_sessions,
                g.max_in_flight_per_session,
                g.max_queued_bytes,
                g.max_memory_bytes
            ),
            (10_000, 64, 32 << 20, 256 << 20)
        );
        assert!(g.allowed_hosts.is_empty());
        let g = parse(
            r#"{"gateway": {"maxSessions": 5, "maxInFlightPerSession": 2, "maxQueuedBytes": 65536,
                "maxMemoryBytes": 1048576, "allowedHosts": ["gw.internal", "box:8080"]}}"#,
        )
        .gateway;
        assert_eq!(
            (
                g.max_sessions,
                g.max_in_flight_per_session,
                g.max_queued_bytes,
                g.max_memory_bytes
            ),
            (5, 2, 65536, 1 << 20)
        );
        assert_eq!(g.allowed_hosts, ["gw.internal", "box:8080"]);
        assert_eq!(
            problem(r#"{"gateway": {"maxSessions": 0}}"#),
            "gateway.maxSessions: expected an integer from 1 to 10000000, found 0"
        );
        assert_eq!(
            problem(r#"{"gateway": {"maxMemoryBytes": 2097152}}"#),
            "gateway.maxMemoryBytes: gateway.maxMemoryBytes (2097152) must be at least gateway.maxQueuedBytes (33554432): the total queued for all clients cannot be less than what one may hold"
        );
        assert_eq!(
            problem(r#"{"gateway": {"allowedHosts": ["http://gw.internal/"]}}"#),
            "gateway.allowedHosts[0]: a host has no scheme; write \"gw.internal\""
        );
        assert_eq!(
            problem(r#"{"gateway": {"allowedHosts": "gw.internal"}}"#),
            "gateway.allowedHosts: expected a list of host names, found \"gw.internal\" (a string)"
        );
    }

    #[test]
    fn a_minimal_server_gets_the_defaults() {
        let config = parse(r#"{"servers": [{"name": "demo", "command": ["prog"]}]}"#);
        let demo = &config.servers[0];
        assert_eq!(demo.name, "demo");
        assert!(demo.enabled);
        let pool = PoolSettings {
            min: 1,
            max: 5,
            acquire_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_concurrency: 16,
            recycle: Default::default(),
            share: Default::default(),
        };
        assert_eq!(demo.pool, pool);
        assert_eq!(demo.call_timeout, Duration::from_secs(60));
        assert_eq!(demo.init_timeout, Duration::from_secs(60));
        assert_eq!(demo.mapping, Mapping::default());
        assert_eq!(demo.filters, ToolFilter::default());
        let local = local(demo);
        assert_eq!(local.command, ["prog"]);
        assert_eq!((local.cwd.as_ref(), local.env.is_empty()), (None, true));
    }

    #[test]
    fn every_field_is_parsed() {
        let config = parse(
            r#"{
              "$schema": "https://example.com/schema.json",
              "gateway": {"host": "0.0.0.0", "port": 0, "cors": ["http://localhost:6274", "https://a.example"],
                          "workers": 8, "maxBodyBytes": 2048, "maxMessageBytes": 4096, "maxClients": 10,
                          "callTimeout": 1000, "keepaliveInterval": 100, "shutdownTimeout": 0},
              "pool": {"minConnections": 2, "maxConnections": 7, "acquireTimeout": 3000, "idleTimeout": 4000},
              "servers": [
                {"name": "loc", "type": "local", "command": ["${HOME}/bin/srv", "--x"], "args": ["a", "${TOKEN}"],
                 "cwd": "${HOME}/work", "env": {"K": "V", "SECRET": "${TOKEN}"}, "enabled": false,
                 "poolSize": 3, "minConnections": 0, "acquireTimeout": 5000, "idleTimeout": 30000,
                 "callTimeout": 120000, "initTimeout": 90000},
                {"name": "rem", "type": "remote", "url": "https://mcp.example.com/mcp", "transport": "sse",
                 "headers": {"Authorization": "Bearer ${TOKEN}", "X-Trace": "1"}, "caFile": "/etc/ca.pem"},
                {"name": "inherits", "url": "http://[::1]:8080/mcp"}
              ],
              "mapping": {
                "loc": {"prefix": "l_", "stripPrefix": "loc_", "rename": {"search": "find", "get": "fetch-it"}},
                "rem": {"prefix": "r-", "stripPrefix": true},
                "inherits": {"stripPrefix": false}
              },
              "toolFilters": {"loc": {"include": ["echo", "a*"], "exclude": ["*_debug"]}, "rem": {"include": []}}
            }"#,
        );
        let g = &config.gateway;
        assert_eq!(
            (g.host.as_str(), g.port, g.workers),
            ("0.0.0.0", 0, Some(8))
        );
        assert_eq!(
            g.cors,
            Cors::Origins(vec![
                "http://localhost:6274".into(),
                "https://a.example".into()
            ])
        );
        assert_eq!(
            (g.max_body_bytes, g.max_message_bytes, g.max_clients),
            (2048, 4096, 10)
        );
        assert_eq!(
            (g.call_timeout, g.keepalive_interval, g.shutdown_timeout),
            (
                Duration::from_millis(1000),
                Duration::from_millis(100),
                Duration::ZERO
            )
        );

        let [loc, rem, inherits] = &config.servers[..] else {
            panic!("three servers")
        };
        assert!(!loc.enabled);
        assert_eq!(
            loc.pool,
            PoolSettings {
                min: 0,
                max: 3,
                acquire_timeout: Duration::from_millis(5000),
                idle_timeout: Duration::from_millis(30000),
                max_concurrency: 16,
                recycle: Default::default(),
                share: Default::default(),
            }
        );
        assert_eq!(
            (loc.call_timeout, loc.init_timeout),
            (Duration::from_secs(120), Duration::from_secs(90))
        );
        let l = local(loc);
        assert_eq!(l.command, ["/home/u/bin/srv", "--x", "a", "s3cret"]);
        assert_eq!(l.cwd, Some(PathBuf::from("/home/u/work")));
        assert_eq!(l.env, pairs(&[("K", "V"), ("SECRET", "s3cret")]));
        assert_eq!(
            loc.mapping,
            Mapping {
                prefix: "l_".into(),
                strip_prefix: StripPrefix::Literal("loc_".into()),
                rename: pairs(&[("search", "find"), ("get", "fetch-it")]),
                tools: Vec::new(),
            }
        );
        assert_eq!(
            loc.filters,
            ToolFilter {
                include: vec!["echo".into(), "a*".into()],
                exclude: vec!["*_debug".into()]
            }
        );

        assert!(rem.enabled);
        assert_eq!(
            rem.pool,
            PoolSettings {
                min: 2,
                max: 7,
                acquire_timeout: Duration::from_millis(3000),
                idle_timeout: Duration::from_millis(4000),
                max_concurrency: 16,
                recycle: Default::default(),
                share: Default::default(),
            }
        );
        assert_eq!(
            (rem.call_timeout, rem.init_timeout),
            (Duration::from_millis(1000), Duration::from_secs(60))
        );
        let r = remote(rem);
        assert_eq!(r.url, "https://mcp.example.com/mcp");
        assert_eq!(r.transport, RemoteTransport::Sse);
        assert_eq!(
            r.headers,
            pairs(&[("Authorization", "Bearer s3cret"), ("X-Trace", "1")])
        );
        assert_eq!(r.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            (rem.mapping.prefix.as_str(), &rem.mapping.strip_prefix),
            ("r-", &StripPrefix::OwnPrefix)
        );
        assert_eq!(rem.filters, ToolFilter::default());

        assert_eq!(remote(inherits).transport, RemoteTransport::Auto);
        assert_eq!(inherits.mapping, Mapping::default());
    }

    #[test]
    fn cors_forms() {
        assert_eq!(
            parse(r#"{"gateway": {"cors": true}}"#).gateway.cors,
            Cors::Any
        );
        assert_eq!(
            parse(r#"{"gateway": {"cors": false}}"#).gateway.cors,
            Cors::Off
        );
        assert_eq!(
            problems(r#"{"gateway": {"cors": ["http://a", "", 3, "*", "http://b/"]}}"#),
            [
                "gateway.cors[1]: must not be empty",
                "gateway.cors[2]: expected a string, found 3 (a number); write it in quotes: \"3\"",
                "gateway.cors[3]: \"*\" is not an origin; write \"cors\": true to allow any origin",
                "gateway.cors[4]: an origin has no trailing \"/\"; write \"http://b\"",
            ]
        );
        assert_eq!(
            problem(r#"{"gateway": {"cors": "http://a"}}"#),
            "gateway.cors: expected false, true or a list of origins, found \"http://a\" (a string); write [\"http://a\"]"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_suggestions() {
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "comand": ["x"], "command": ["x"]}]}"#),
            "servers[0].comand: unknown key (did you mean \"command\"?)"
        );
        assert_eq!(
            problem(r#"{"gateway": {"prot": 1}}"#),
            "gateway.prot: unknown key (did you mean \"port\"?)"
        );
        assert_eq!(
            problem(r#"{"pool": {"max_connections": 3}}"#),
            "pool.max_connections: unknown key (did you mean \"maxConnections\"?)"
        );
        assert_eq!(
            problem(r#"{"severs": []}"#),
            "severs: unknown key (did you mean \"servers\"?)"
        );
        assert_eq!(
            problem(r#"{"port": 1}"#),
            "port: unknown key (it belongs in the \"gateway\" section)"
        );
        assert_eq!(
            problem(
                r#"{"mapping": {"a": {"prefx": "p"}}, "servers": [{"name": "a", "command": "x"}]}"#
            ),
            "mapping.a.prefx: unknown key (did you mean \"prefix\"?)"
        );
        assert_eq!(
            problem(
                r#"{"toolFilters": {"a": {"includes": []}}, "servers": [{"name": "a", "command": "x"}]}"#
            ),
            "toolFilters.a.includes: unknown key (did you mean \"include\"?)"
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "command": "x", "disabled": true}]}"#),
            "servers[0].disabled: unknown key (write \"enabled\": false instead)"
        );
        assert_eq!(
            problem(r#"{"gateway": {"zzzz": 1}}"#),
            "gateway.zzzz: unknown key (allowed here: host, port, cors, workers, maxBodyBytes, maxMessageBytes, \
             maxClients, callTimeout, keepaliveInterval, shutdownTimeout, sessionTimeout, authToken, \
             authTokenFile, allowUnauthenticated, allowedOrigins, pageSize, stateDir, maxSessions, maxInFlightPerSession, maxQueuedBytes, \
             maxMemoryBytes, allowedHosts, watchConfig, sessionKeyFile, auditLog, auditLogMaxBytes, auditArguments, oauth)"
        );
    }

    #[test]
    fn keys_of_the_other_server_type_are_named_as_such() {
        assert_eq!(
            problems(
                r#"{"servers": [{"name": "a", "command": "x", "url": "http://h", "type": "local", "caFile": "c"}]}"#
            ),
            [
                "servers[0].url: only valid for a remote server (this one is local)",
                "servers[0].caFile: only valid for a remote server (this one is local)",
            ]
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "url": "http://h", "env": {}}]}"#),
            "servers[0].env: only valid for a local server (this one is remote)"
        );
    }

    #[test]
    fn wrong_types_name_what_was_expected_and_found() {
        assert_eq!(
            problem(r#"{"gateway": {"port": "4298"}}"#),
            "gateway.port: expected an integer from 0 to 65535, found \"4298\" (a string)"
        );
        assert_eq!(
            problem(r#"[]"#),
            "expected a JSON object at the top level, found an empty array"
        );
        assert_eq!(
            problem(r#"{"gateway": []}"#),
            "gateway: expected an object, found an empty array"
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "command": "x", "enabled": "yes"}]}"#),
            "servers[0].enabled: expected true or false, found \"yes\" (a string)"
        );
        assert_eq!(
            problem(r#"{"pool": {}, "servers": {"a": {"command": "x"}}}"#),
            "servers: expected an array of servers, found an object; to key servers by name, call the section \"mcpServers\""
        );
        assert_eq!(
            problem(r#"{"$schema": 1}"#),
            "$schema: expected a string, found 1 (a number); write it in quotes: \"1\""
        );
    }

    #[test]
    fn numbers_out_of_range_floats_and_negatives() {
        assert_eq!(
            problems(
                r#"{"gateway": {"port": 70000, "workers": 0, "maxBodyBytes": 10, "maxClients": 1.5,
                                "keepaliveInterval": 50, "shutdownTimeout": -1},
                    "servers": [{"name": "a", "command": "x", "poolSize": 0, "initTimeout": 2.0}]}"#
            ),
            [
                "gateway.port: expected an integer from 0 to 65535, found 70000",
                "gateway.workers: expected an integer from 1 to 1024, found 0",
                "gateway.maxBodyBytes: expected an integer of at least 1024, found 10",
                "gateway.maxClients: expected an integer from 1 to 1000000, found 1.5 (not a whole number)",
                "gateway.keepaliveInterval: expected a duration in milliseconds (an integer from 100 to 31536000000), found 50",
                "gateway.shutdownTimeout: expected a duration in milliseconds (an integer from 0 to 31536000000), found -1",
                "servers[0].poolSize: expected an integer of at least 1, found 0",
                "servers[0].initTimeout: expected a duration in milliseconds (an integer from 1 to 31536000000), \
                 found 2.0 (write it without a decimal point or exponent)",
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let all = problems(
            r#"{"gateway": {"port": -1}, "pool": {"idleTimeout": 0},
                "servers": [{"name": "bad name", "command": []}, {"name": "b", "url": "nope"}],
                "mapping": {"zzz": {}}}"#,
        );
        assert_eq!(all.len(), 6, "{all:#?}");
    }

    #[test]
    fn missing_command_url_or_both() {
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "type": "local"}]}"#),
            "servers[0]: missing \"command\": a local server needs the program to run, e.g. [\"npx\", \"-y\", \"some-package\"]"
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "type": "remote"}]}"#),
            "servers[0]: missing \"url\": a remote server needs the address of its MCP endpoint, e.g. \"https://example.com/mcp\""
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a"}]}"#),
            "servers[0]: missing \"command\" (to run a local server) or \"url\" (to reach a remote one)"
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "command": "x", "url": "http://h"}]}"#),
            "servers[0]: has both \"command\" (a local server) and \"url\" (a remote server): keep one"
        );
        assert_eq!(
            problem(r#"{"servers": [{"command": "x"}]}"#),
            "servers[0]: missing \"name\" (letters, digits, \"_\" or \"-\"; used in logs, /health and tool names)"
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "type": "stdio", "command": "x"}]}"#),
            "servers[0].type: expected \"local\" or \"remote\", found \"stdio\" (a string); write \"local\""
        );
    }

    #[test]
    fn commands() {
        let config =
            parse(r#"{"servers": [{"name": "a", "command": "prog", "args": ["-v", ""]}]}"#);
        assert_eq!(local(&config.servers[0]).command, ["prog", "-v", ""]);
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "command": "npx -y some-pkg"}]}"#),
            "servers[0].command: \"npx -y some-pkg\" contains spaces, but no shell is used to split it: \
             write an array, e.g. [\"npx\",\"-y\",\"some-pkg\"]"
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "command": " prog"}]}"#),
            "servers[0].command: \" prog\" contains spaces, but no shell is used to split it: \
             write an array, e.g. [\"prog\"]"
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "command": []}]}"#),
            "servers[0].command: must not be empty: give at least the program to run"
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "command": ["", "x"]}]}"#),
            "servers[0].command[0]: the program to run is empty"
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "command": ["${EMPTY}"]}]}"#),
            "servers[0].command[0]: the program to run is empty"
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "command": ["x", 1]}]}"#),
            "servers[0].command[1]: expected a string, found 1 (a number); write it in quotes: \"1\""
        );
    }

    #[test]
    fn env_values_must_be_strings() {
        assert_eq!(
            problems(r#"{"servers": [{"name": "a", "command": "x", "env": {"PORT": 8080, "A=B": "v", "": "v", "OK": "v"}}]}"#),
            [
                "servers[0].env.PORT: expected a string, found 8080 (a number); write it in quotes: \"8080\"",
                "servers[0].env[\"A=B\"]: \"A=B\" is not a valid environment variable name (no \"=\" or NUL)",
                "servers[0].env[\"\"]: an environment variable name must not be empty",
            ]
        );
    }

    #[test]
    fn remote_urls_and_headers() {
        let bad_url = |url: &str| {
            problem(&format!(
                r#"{{"servers": [{{"name": "a", "url": "{url}"}}]}}"#
            ))
        };
        assert_eq!(
            bad_url("ftp://h"),
            "servers[0].url: expected an http:// or https:// URL (found \"ftp://h\")"
        );
        assert_eq!(
            bad_url("https://"),
            "servers[0].url: the URL has no host (found \"https://\")"
        );
        assert_eq!(
            bad_url("http://:80/x"),
            "servers[0].url: the URL has no host (found \"http://:80/x\")"
        );
        assert_eq!(bad_url("http://h:99999"), "servers[0].url: the URL's port is not a number from 0 to 65535 (found \"http://h:99999\")");
        assert_eq!(
            bad_url("http://h/a b"),
            "servers[0].url: a URL cannot contain spaces (found \"http://h/a b\")"
        );
        assert_eq!(
            bad_url("${BAD_URL}"),
            "servers[0].url: expected an http:// or https:// URL (after expanding \"${BAD_URL}\")"
        );
        let config = parse(
            r#"{"servers": [{"name": "a", "url": "https://user:pw@h.example:8443/mcp?x=1"}]}"#,
        );
        assert_eq!(
            remote(&config.servers[0]).url,
            "https://user:pw@h.example:8443/mcp?x=1"
        );

        assert_eq!(
            problems(
                r#"{"servers": [{"name": "a", "url": "http://h",
                    "headers": {"Bad Name": "v", "X-A": "1", "x-a": "2", "X-Bad": "${BAD_HEADER}", "X-N": 1}}]}"#
            ),
            [
                "servers[0].headers[\"Bad Name\"]: \"Bad Name\" is not a valid HTTP header name",
                "servers[0].headers.x-a: header \"x-a\" is given twice (header names ignore case)",
                "servers[0].headers.X-Bad: the value contains a line break or NUL character, which a header cannot hold",
                "servers[0].headers.X-N: expected a string, found 1 (a number); write it in quotes: \"1\"",
            ]
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "url": "http://h", "transport": "http"}]}"#),
            "servers[0].transport: expected one of \"auto\", \"streamable\", \"sse\", found \"http\" (a string); write \"streamable\""
        );
    }

    #[test]
    fn secrets_never_appear_in_messages() {
        let all = problems(
            r#"{"servers": [{"name": "a", "url": "${BAD_URL}", "headers": {"X": "${BAD_HEADER}"}},
                            {"name": "b", "command": ["x", "${TOKEN}", "${NOPE}"]}]}"#,
        );
        assert_eq!(all.len(), 3, "{all:#?}");
        assert!(all.iter().all(|p| !p.contains("s3cret")), "{all:#?}");
    }

    #[test]
    fn variables_in_context() {
        let config = parse(
            r#"{"servers": [{"name": "a", "command": ["$$HOME", "${NOPE:-fallback}", "${EMPTY:-used}", "$5", "a$$b"],
                             "env": {"P": "${HOME:-x}/p"}}]}"#,
        );
        let l = local(&config.servers[0]);
        assert_eq!(l.command, ["$HOME", "fallback", "used", "$5", "a$b"]);
        assert_eq!(l.env, pairs(&[("P", "/home/u/p")]));
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "command": "x", "env": {"API_KEY": "${API_KEY}"}}]}"#),
            "servers[0].env.API_KEY: environment variable API_KEY is not set (write ${API_KEY:-default} to give a fallback)"
        );
        assert_eq!(
            problem(r#"{"servers": [{"name": "a", "command": "x", "cwd": "${HOME"}]}"#),
            "servers[0].cwd: unterminated \"${\": add the closing \"}\" (or write $$ for a literal $)"
        );
        assert!(
            problem(r#"{"servers": [{"name": "a", "url": "http://h", "caFile": "${9}"}]}"#)
                .starts_with("servers[0].caFile: \"${9}\" is not a valid variable reference")
        );
        // Only the listed fields expand.
        assert_eq!(
            parse(r#"{"gateway": {"host": "${HOST}"}}"#).gateway.host,
            "${HOST}"
        );
    }

    #[test]
    fn duplicate_server_names() {
        assert_eq!(
            problems(
                r#"{"servers": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}],
                    "mcpServers": {"a": {"command": "z"}}}"#
            ),
            [
                "servers[1].name: duplicate server name \"a\" (first used by servers[0])",
                "mcpServers.a: duplicate server name \"a\" (first used by servers[0])",
            ]
        );
    }

    #[test]
    fn server_names_are_checked() {
        assert_eq!(
            problem(r#"{"servers": [{"name": "my server", "command": "x"}]}"#),
            "servers[0].name: \"my server\" is not a valid server name: use 1 to 64 letters, digits, \"_\" or \"-\""
        );
        assert_eq!(
            problem(r#"{"mcpServers": {"": {"command": "x"}}}"#),
            "mcpServers[\"\"]: \"\" is not a valid server name: use 1 to 64 letters, digits, \"_\" or \"-\""
        );
        let long = "a".repeat(65);
        assert!(problem(&format!(
            r#"{{"servers": [{{"name": "{long}", "command": "x"}}]}}"#
        ))
        .contains("is not a valid server name"));
    }

    #[test]
    fn tool_overrides_are_checked() {
        assert_eq!(
            problem(
                r#"{"servers": [{"name": "a", "command": "x"}],
                        "mapping": {"a": {"tools": {"t": {"hidden": "yes"}}}}}"#
            ),
            "mapping.a.tools.t.hidden: expected true or false, found \"yes\" (a string)"
        );
        assert_eq!(
            problem(
                r#"{"servers": [{"name": "a", "command": "x"}],
                        "mapping": {"a": {"rename": {"t": "u"}, "tools": {"t": {"name": "v"}}}}}"#
            ),
            "mapping.a.tools.t.name: \"t\" is renamed in \"rename\" too: give its new name once"
        );
        assert!(problem(
            r#"{"servers": [{"name": "a", "command": "x"}],
                        "mapping": {"a": {"tools": {"t": {"descripton": "x"}}}}}"#
        )
        .starts_with("mapping.a.tools.t.descripton: unknown key"));
        let config = parse(
            r#"{"servers": [{"name": "a", "command": "x"}],
                "mapping": {"a": {"tools": {"t": {"name": "u", "annotations": {"readOnlyHint": true}}}}}}"#,
        );
        let mapping = &config.servers[0].mapping;
        assert_eq!(mapping.rename, [("t".to_string(), "u".to_string())]);
        assert_eq!(
            mapping.tools[0].1.annotations.as_ref().unwrap()["readOnlyHint"],
            true
        );
    }

    #[test]
    fn mapping_and_filters_must_name_servers() {
        let text = r#"{"servers": [{"name": "demo", "command": "x"}, {"name": "other", "command": "y"}],
                       "mapping": {"demoo": {"prefix": "d_"}}, "toolFilters": {"othr": {}}}"#;
        assert_eq!(
            problems(text),
            [
                "mapping.demoo: no server named \"demoo\" (servers: demo, other)",
                "toolFilters.othr: no server named \"othr\" (servers: demo, other)",
            ]
        );
        assert_eq!(
            problem(r#"{"mapping": {"x": {}}}"#),
            "mapping.x: no server named \"x\" (there are no servers)"
        );
        // Disabled servers and mcpServers entries can be mapped too.
        let config = parse(
            r#"{"servers": [{"name": "d", "command": "x", "enabled": false}], "mcpServers": {"m": {"command": "y"}},
                "mapping": {"d": {"prefix": "d_"}, "m": {"prefix": "m_"}}}"#,
        );
        assert_eq!(config.servers[0].mapping.prefix, "d_");
        assert_eq!(config.servers[1].mapping.prefix, "m_");
    }

    #[test]
    fn mapping_rules() {
        let with = |mapping: &str| {
            format!(
                r#"{{"servers": [{{"name": "demo", "command": "x"}}], "mapping": {{"demo": {mapping}}}}}"#
            )
        };
        assert_eq!(
            problem(&with(
                r#"{"rename": {"a": "same", "b": "other", "c": "same"}}"#
            )),
            "mapping.demo.rename.c: \"same\" is already the new name of \"a\""
        );
        assert_eq!(
            problem(&with(r#"{"rename": {"search": "web search"}}"#)),
            "mapping.demo.rename.search: \"web search\" is not a valid tool name: use 1 to 64 letters, digits, \"_\" or \"-\""
        );
        assert_eq!(
            problem(&with(r#"{"stripPrefix": true}"#)),
            "mapping.demo.stripPrefix: true strips this server's \"prefix\", but it has none: set \"prefix\", or give the text to strip"
        );
        assert_eq!(
            problem(&with(r#"{"prefix": "", "stripPrefix": ""}"#)),
            "mapping.demo.stripPrefix: must not be empty (write false to strip nothing)"
        );
        assert_eq!(
            problem(&with(r#"{"stripPrefix": 1}"#)),
            "mapping.demo.stripPrefix: expected true, false or the text to strip, found 1 (a number)"
        );
        assert_eq!(
            problem(&with(r#"{"prefix": "a.b"}"#)),
            "mapping.demo.prefix: may contain only letters, digits, \"_\" and \"-\" (found \".\")"
        );
        assert_eq!(
            problem(&with(&format!(r#"{{"prefix": "{}"}}"#, "p".repeat(33)))),
            "mapping.demo.prefix: is 33 characters long; the limit is 32"
        );
        // An invalid prefix is not also reported as missing for `stripPrefix: true`.
        assert_eq!(
            problems(&with(r#"{"prefix": "a b", "stripPrefix": true}"#)).len(),
            1
        );
        assert_eq!(
            problem(&with(r#"{"include": ["a"]}"#)),
            "mapping.demo.include: unknown key (allowed here: prefix, stripPrefix, rename, tools)"
        );
        assert_eq!(
            problems(&with(r#"{}"#).replace("\"mapping\"", "\"toolFilters\"").replace("{}", r#"{"include": ["", 1]}"#)),
            [
                "toolFilters.demo.include[0]: must not be empty",
                "toolFilters.demo.include[1]: expected a string, found 1 (a number); write it in quotes: \"1\"",
            ]
        );
    }

    #[test]
    fn min_connections_above_max() {
        assert_eq!(
            problem(
                r#"{"servers": [{"name": "a", "command": "x", "poolSize": 5, "minConnections": 6}]}"#
            ),
            "servers[0].minConnections: 6 is more than the pool's maximum of 5 (poolSize)"
        );
        assert_eq!(
            problem(r#"{"pool": {"maxConnections": 2}, "servers": [{"name": "a", "command": "x", "minConnections": 3}]}"#),
            "servers[0].minConnections: 3 is more than the pool's maximum of 2 (pool.maxConnections)"
        );
        assert_eq!(
            problem(r#"{"pool": {"minConnections": 3}, "servers": [{"name": "a", "command": "x", "poolSize": 2}]}"#),
            "pool.minConnections: 3 is more than the pool's maximum of 2 for server \"a\" (servers[0].poolSize); \
             give that server its own \"minConnections\""
        );
        // Reported once, in the pool section, however many servers inherit it.
        assert_eq!(
            problem(
                r#"{"pool": {"minConnections": 6, "maxConnections": 5},
                    "servers": [{"name": "a", "command": "x"}, {"name": "b", "command": "y"}]}"#
            ),
            "pool.minConnections: 6 is more than the pool's maximum of 5 (pool.maxConnections)"
        );
        let config = parse(
            r#"{"pool": {"minConnections": 3}, "servers": [{"name": "a", "command": "x", "poolSize": 2, "minConnections": 2}]}"#,
        );
        assert_eq!(
            (config.servers[0].pool.min, config.servers[0].pool.max),
            (2, 2)
        );
    }

    #[test]
    fn claude_desktop_mcp_servers_are_imported() {
        let config = parse(
            r#"{
              "servers": [{"name": "first", "command": "x"}],
              "mcpServers": {
                "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                           "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${TOKEN}"}},
                "stdio": {"type": "stdio", "command": "srv", "poolSize": 2},
                "sse": {"type": "sse", "url": "https://h/sse"},
                "http": {"type": "http", "url": "https://h/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}},
                "streamable": {"type": "streamable-http", "url": "https://h/mcp", "transport": "streamable"},
                "remote": {"type": "remote", "url": "https://h/mcp"},
                "bare-url": {"url": "https://h/mcp", "enabled": false}
              }
            }"#,
        );
        let names: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "first",
                "github",
                "stdio",
                "sse",
                "http",
                "streamable",
                "remote",
                "bare-url"
            ]
        );
        let github = local(&config.servers[1]);
        assert_eq!(
            github.command,
            ["npx", "-y", "@modelcontextprotocol/server-github"]
        );
        assert_eq!(
            github.env,
            pairs(&[("GITHUB_PERSONAL_ACCESS_TOKEN", "s3cret")])
        );
        assert_eq!(local(&config.servers[2]).command, ["srv"]);
        assert_eq!(config.servers[2].pool.max, 2);
        let transports: Vec<RemoteTransport> = config.servers[3..]
            .iter()
            .map(|s| remote(s).transport)
            .collect();
        use RemoteTransport::*;
        assert_eq!(transports, [Sse, Streamable, Streamable, Auto, Auto]);
        assert_eq!(
            remote(&config.servers[4]).headers,
            pairs(&[("Authorization", "Bearer s3cret")])
        );
        assert!(!config.servers[7].enabled);
    }

    #[test]
    fn claude_desktop_entry_errors() {
        assert_eq!(
            problem(r#"{"mcpServers": {"gh": {"name": "gh", "command": "x"}}}"#),
            "mcpServers.gh.name: not allowed here: the server's name is its key (\"gh\")"
        );
        assert_eq!(
            problem(
                r#"{"mcpServers": {"gh": {"type": "sse", "url": "http://h", "transport": "streamable"}}}"#
            ),
            "mcpServers.gh.transport: conflicts with \"type\": \"sse\"; remove one of them"
        );
        assert_eq!(
            problem(r#"{"mcpServers": {"gh": {"type": "websocket", "url": "ws://h"}}}"#),
            "mcpServers.gh.type: expected one of \"stdio\", \"local\", \"sse\", \"http\", \"streamable-http\", \"streamableHttp\", \
             \"remote\", found \"websocket\" (a string)"
        );
        assert_eq!(
            problem(r#"{"mcpServers": {"gh": {"command": "x", "bogus": []}}}"#),
            "mcpServers.gh.bogus: unknown key (allowed here: name, type, enabled, poolSize, minConnections, \
             acquireTimeout, idleTimeout, maxConcurrency, maxLifetime, maxCalls, maxRssBytes, share, callTimeout, initTimeout, pin, pinNew, protocol, command, args, cwd, env, url, transport, headers, caFile, auth)"
        );
        assert_eq!(
            problem(r#"{"mcpServers": ["x"]}"#),
            "mcpServers: expected an object mapping server names to servers, found an array"
        );
    }

    #[test]
    fn duplicate_json_keys_are_reported_with_schema_problems() {
        assert_eq!(
            problems(
                r#"{"servers": [{"name": "a", "command": "x", "command": "y", "poolSize": 0}]}"#
            ),
            [
                "servers[0].command: duplicate key: it appears more than once in this object",
                "servers[0].poolSize: expected an integer of at least 1, found 0",
            ]
        );
    }

    #[test]
    fn auth_names_how_a_remote_servers_tokens_are_had() {
        let config = parse(
            r#"{"servers": [
                {"name": "a", "url": "https://h/mcp", "auth": {"type": "oauth"}},
                {"name": "b", "url": "https://h/mcp", "auth": {"type": "client_credentials",
                 "clientId": "gw", "clientSecret": "s", "scopes": ["mcp", "read"]}},
                {"name": "c", "url": "https://h/mcp", "auth": {"type": "oauth",
                 "clientMetadataUrl": "https://me.example/gw.json", "redirectPort": 8976}}]}"#,
        );
        let auth: Vec<RemoteAuth> = config
            .servers
            .iter()
            .map(|s| remote(s).auth.clone().unwrap())
            .collect();
        assert_eq!(auth[0].grant, AuthGrant::AuthorizationCode);
        assert_eq!(auth[0].redirect_port, 0);
        assert_eq!(auth[1].grant, AuthGrant::ClientCredentials);
        assert_eq!(auth[1].scopes, ["mcp", "read"]);
        assert_eq!(auth[2].redirect_port, 8976);
        assert!(
            !format!("{:?}", auth[1]).contains("\"s\""),
            "no secret in Debug"
        );
        let bad = |auth: &str| {
            problem(&format!(
                r#"{{"servers": [{{"name": "a", "url": "https://h/mcp", "auth": {auth}}}]}}"#
            ))
        };
        assert!(bad(r#"{}"#).contains("missing \"type\""));
        assert!(bad(r#"{"type": "password"}"#).starts_with("servers[0].auth.type: "));
        assert!(bad(r#"{"type": "client_credentials", "clientId": "x"}"#)
            .contains("needs \"clientId\" and \"clientSecret\""));
        assert!(
            bad(r#"{"type": "oauth", "clientSecret": "x"}"#).contains("belongs to a \"clientId\"")
        );
        assert!(
            bad(r#"{"type": "oauth", "clientMetadataUrl": "http://me.example/x.json"}"#)
                .contains("https URL with a path")
        );
        assert!(bad(r#"{"type": "oauth", "scopes": ["a b"]}"#).contains("not a scope name"));
        assert!(bad(r#"{"type": "oauth", "clientid": "x"}"#).contains("did you mean \"clientId\""));
        let both = problem(
            r#"{"servers": [{"name": "a", "url": "https://h/mcp", "auth": {"type": "oauth"},
                             "headers": {"authorization": "Bearer x"}}]}"#,
        );
        assert!(both.starts_with("servers[0].headers: "), "{both}");
        let clear = problem(
            r#"{"servers": [{"name": "a", "url": "http://h.example/mcp", "auth": {"type": "oauth"}}]}"#,
        );
        assert!(
            clear.starts_with("servers[0].url: ") && clear.contains("in the clear"),
            "{clear}"
        );
        parse(
            r#"{"servers": [{"name": "a", "url": "http://127.0.0.1:9/mcp", "auth": {"type": "oauth"}}]}"#,
        );
    }

    #[test]
    fn protocol_names_the_era_spoken_to_a_server() {
        let config = parse(
            r#"{"servers": [{"name": "a", "command": "x"},
                            {"name": "b", "command": "x", "protocol": "auto"},
                            {"name": "c", "command": "x", "protocol": "2025-11-25"},
                            {"name": "d", "url": "http://h/mcp", "protocol": "2026-07-28"}]}"#,
        );
        let protocols: Vec<Protocol> = config.servers.iter().map(|s| s.protocol).collect();
        assert_eq!(
            protocols,
            [
                Protocol::Auto,
                Protocol::Auto,
                Protocol::Legacy,
                Protocol::Modern
            ]
        );
        assert!(
            problem(r#"{"servers": [{"name": "a", "command": "x", "protocol": "2026"}]}"#)
                .starts_with("servers[0].protocol: ")
        );
        assert!(problem(
            r#"{"servers": [{"name": "a", "url": "http://h/sse", "transport": "sse",
                             "protocol": "2026-07-28"}]}"#
        )
        .contains("has no legacy SSE transport"));
    }

    #[test]
    fn syntax_errors_are_one_problem_with_line_and_column() {
        let error =
            parse_str("{\n  \"servers\": [\n    {\"name\": \"a\",}\n  ]\n}", &env).unwrap_err();
        assert_eq!(
            error.problems,
            [Problem::new(
                "",
                "invalid JSON: trailing comma at line 3 column 18"
            )]
        );
    }
}
