//! The validated configuration: what the rest of the gateway reads.
//!
//! Everything here is resolved: defaults applied, `${VAR}` expanded, per-server pool settings merged
//! with the global `pool` section. Nothing downstream of `config::load` ever sees raw JSON.

use std::path::PathBuf;
use std::time::Duration;

/// The whole configuration file, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub gateway: GatewayConfig,
    /// Every server in file order, disabled ones included (`enabled == false`): `/health` lists them.
    pub servers: Vec<ServerConfig>,
    /// `profiles` in file order, always with one named `default` (everything, unless the file
    /// defines it).
    pub profiles: Vec<Profile>,
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
    /// What is worth a word but not an error (a client's config pasted whole: keys ignored).
    pub notes: Vec<String>,
}

/// The `gateway` section: how clients reach us and how hard we protect ourselves.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// `gateway.host`, default `127.0.0.1`.
    pub host: String,
    /// `gateway.port`, default 4298; 0 picks a free port.
    pub port: u16,
    /// `gateway.cors`, default off.
    pub cors: Cors,
    /// `gateway.workers`: worker threads; `None` = sized from the pools.
    pub workers: Option<usize>,
    /// `gateway.maxBodyBytes`, default 4 MiB: largest HTTP request body accepted (413 above).
    pub max_body_bytes: usize,
    /// `gateway.maxMessageBytes`, default 32 MiB: largest single message a server may send us.
    pub max_message_bytes: usize,
    /// `gateway.maxClients`, default 16384: open client connections (503 above).
    pub max_clients: usize,
    /// `gateway.callTimeout`, default 60 s: default bound on one downstream call.
    pub call_timeout: Duration,
    /// `gateway.keepaliveInterval`, default 15 s: SSE keepalive comment period.
    pub keepalive_interval: Duration,
    /// `gateway.shutdownTimeout`, default 10 s: grace for in-flight calls on SIGTERM.
    pub shutdown_timeout: Duration,
    /// `gateway.sessionTimeout`, default 30 min: a Streamable HTTP session unused this long (and with
    /// no open stream) is forgotten.
    pub session_timeout: Duration,
    /// `gateway.authToken` (`${VAR}` expanded): when set, every endpoint but `/health` requires
    /// `Authorization: Bearer <token>`. An empty expansion means no token.
    pub auth_token: Option<String>,
    /// `gateway.authTokenFile`: where `auth_token` was read from (the file's content, trimmed).
    /// Never set together with `gateway.authToken`; the file must not be readable by group or others.
    pub auth_token_file: Option<PathBuf>,
    /// `gateway.allowUnauthenticated`, default false: listen on a non-loopback address without a
    /// token anyway (a warning at start and a note in `/health`); without it such a bind is refused.
    pub allow_unauthenticated: bool,
    /// `gateway.allowedOrigins`: browser origins allowed besides loopback ones and the `cors` list.
    pub allowed_origins: Vec<String>,
    /// `gateway.pageSize`, default 500: items per page of the merged lists.
    pub page_size: usize,
    /// `gateway.stateDir`, default `$XDG_STATE_HOME/mcp-gateway`, else
    /// `~/.local/state/mcp-gateway`: what the gateway keeps between runs (servers' manifests).
    /// None when neither can be told (no `HOME`): nothing is kept.
    pub state_dir: Option<PathBuf>,
    /// `gateway.maxSessions`, default 10,000: open MCP sessions (503 on `initialize` / `GET /sse`
    /// above).
    pub max_sessions: usize,
    /// `gateway.maxInFlightPerSession`, default 64: calls one session may have running (-32000
    /// above).
    pub max_in_flight_per_session: usize,
    /// `gateway.maxQueuedBytes`, default 32 MiB: unread output one connection may hold (closed,
    /// its call cancelled, above).
    pub max_queued_bytes: usize,
    /// `gateway.maxMemoryBytes`, default 256 MiB: unread output all clients together may hold
    /// (new large answers get 503 above).
    pub max_memory_bytes: usize,
    /// `gateway.allowedHosts`: `Host` names (optionally with `:port`) accepted besides loopback ones.
    pub allowed_hosts: Vec<String>,
    /// `gateway.sessionKeyFile`: the key that signs session ids (default `<stateDir>/session-key`);
    /// replicas given one file share sessions. Made (0600) when missing.
    pub session_key_file: Option<PathBuf>,
    /// `gateway.watchConfig`, default true: reload when the config file changes (checked once a
    /// second). SIGHUP and `mcp-gateway reload` reload whatever it says.
    pub watch_config: bool,
    /// `gateway.auditLog` with `auditLogMaxBytes` and `auditArguments`; default None: no audit log.
    pub audit: Option<AuditConfig>,
    /// `gateway.oauth`: accept JWT access tokens from this authorization server (besides
    /// `authToken`, when both are set); default None.
    pub oauth: Option<OAuthConfig>,
}

/// `gateway.oauth`: the gateway as an OAuth 2.1 resource server (`upstream::oauth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// `issuer`: the authorization server's issuer URL; tokens' `iss` must equal it.
    pub issuer: String,
    /// `audience`: what tokens' `aud` must contain.
    pub audience: String,
    /// `jwksUri`; default: the `jwks_uri` of the issuer's metadata (RFC 8414, else OpenID).
    pub jwks_uri: Option<String>,
    /// `requiredScopes`, default none: every one must be in a token's scopes (else 403).
    pub required_scopes: Vec<String>,
    /// `resource`: the gateway's public origin (`https://host[:port]`), for deployments behind
    /// a proxy; default: `http://` and the request's `Host`.
    pub resource: Option<String>,
    /// Every profile's own `requiredScopes` (those that have some), by profile name: kept here so
    /// that a reload hands them to the guard with the `gateway` section.
    pub profile_scopes: Vec<(String, Vec<String>)>,
}

impl OAuthConfig {
    /// Whether `other` names the same authorization server and audience (what the running
    /// guard's key-set thread was started for).
    pub fn same_issuer(&self, other: &OAuthConfig) -> bool {
        (&self.issuer, &self.audience, &self.jwks_uri)
            == (&other.issuer, &other.audience, &other.jwks_uri)
    }

    /// The scopes a token needs for `profile`: the gateway's, then the profile's.
    pub fn required_scopes(&self, profile: &str) -> Vec<String> {
        let mut all = self.required_scopes.clone();
        if let Some((_, own)) = self.profile_scopes.iter().find(|(p, _)| p == profile) {
            all.extend(
                own.iter()
                    .filter(|s| !self.required_scopes.contains(s))
                    .cloned(),
            );
        }
        all
    }
}

/// The audit log: one JSON line per forwarded call (`audit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// `gateway.auditLog`: a file path, or `"stderr"`.
    pub target: AuditTarget,
    /// `gateway.auditLogMaxBytes`, default 10 MiB: a file is rotated before it would grow past
    /// this (`PATH.1` … `PATH.3` kept).
    pub max_bytes: u64,
    /// `gateway.auditArguments`, default false: write argument values, not only their hash.
    pub arguments: bool,
}

/// Where audit lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    /// `"stderr"`: beside the log lines.
    Stderr,
    /// A file, appended to (created 0600).
    File(PathBuf),
}

/// Cross-origin policy for browser clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// `false` or absent: no CORS headers.
    Off,
    /// `true`: any origin (`Access-Control-Allow-Origin: *`).
    Any,
    /// A list of exact origins, e.g. `["http://localhost:6274"]`.
    Origins(Vec<String>),
}

/// One entry of `servers` (or of a Claude-Desktop style `mcpServers` map).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub name: String,
    pub kind: ServerKind,
    /// `enabled`, default true.
    pub enabled: bool,
    pub pool: PoolSettings,
    /// `callTimeout` of the server, else `gateway.callTimeout`.
    pub call_timeout: Duration,
    /// `initTimeout`, default 60 s: spawn + initialize handshake (slow `npx`/`uvx` first starts).
    pub init_timeout: Duration,
    /// From `mapping.<name>`; default: no prefix, nothing stripped, no renames.
    pub mapping: Mapping,
    /// From `toolFilters.<name>`; default: everything included.
    pub filters: ToolFilter,
    /// `pin`, default warn: what a tool definition that changed since it was first seen does.
    pub pin: Pin,
    /// `pinNew`, default false: with `pin: hold`, tools never seen before wait for approval too.
    pub pin_new: bool,
    /// `protocol`, default `auto`: which protocol era the gateway speaks to the server.
    pub protocol: Protocol,
}

/// `protocol` of a server: the era the gateway speaks to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// Probe with `server/discover`; a server that does not answer it gets `initialize`.
    #[default]
    Auto,
    /// The initialize handshake only (2025-11-25 and the versions before it).
    Legacy,
    /// 2026-07-28 only: no handshake, every request carries its own `_meta`.
    Modern,
}

/// `pin` of a server: the guard against tool definitions that change under the clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pin {
    /// `"off"`: definitions are not recorded.
    Off,
    /// `"warn"` (default): a changed definition is logged and listed in `/health`.
    #[default]
    Warn,
    /// `"hold"`: and the changed tool is withheld from every client until approved.
    Hold,
}

impl Pin {
    pub fn as_str(self) -> &'static str {
        match self {
            Pin::Off => "off",
            Pin::Warn => "warn",
            Pin::Hold => "hold",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServerKind {
    /// `"type": "local"`: a stdio child process.
    Local(LocalServer),
    /// `"type": "remote"`: an MCP server reached over HTTP(S).
    Remote(RemoteServer),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalServer {
    /// `command`: program and arguments, no shell. Never empty.
    pub command: Vec<String>,
    /// `cwd`: working directory of the child, default the gateway's.
    pub cwd: Option<PathBuf>,
    /// `env`: extra variables, in file order, on top of the minimal inherited set.
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoteServer {
    /// `url`: `http://` or `https://`.
    pub url: String,
    /// `transport`, default auto.
    pub transport: RemoteTransport,
    /// `headers`: sent on every request to the remote, values `${VAR}`-expanded.
    pub headers: Vec<(String, String)>,
    /// `caFile`: extra PEM trust anchors for https.
    pub ca_file: Option<PathBuf>,
    /// `auth`: OAuth 2.1 tokens the gateway obtains for this server (`oauth`).
    pub auth: Option<RemoteAuth>,
}

/// `auth` of a remote server.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteAuth {
    /// `type`: `oauth` (authorization code, after `mcp-gateway login`) or `client_credentials`.
    pub grant: AuthGrant,
    /// `clientId`: a client registered with the authorization server beforehand.
    pub client_id: Option<String>,
    /// `clientSecret` (with `clientId`), `${VAR}`-expanded.
    pub client_secret: Option<String>,
    /// `clientMetadataUrl`: the https URL of a Client ID Metadata Document the user hosts.
    pub client_metadata_url: Option<String>,
    /// `scopes`; empty: those the server's challenge or metadata name.
    pub scopes: Vec<String>,
    /// `redirectPort`: the loopback port of `mcp-gateway login`'s redirect URI (0: any free one).
    pub redirect_port: u16,
}

impl std::fmt::Debug for RemoteAuth {
    /// Without the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAuth")
            .field("grant", &self.grant)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("client_metadata_url", &self.client_metadata_url)
            .field("scopes", &self.scopes)
            .field("redirect_port", &self.redirect_port)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthGrant {
    /// `"oauth"`: a user logs in once (`mcp-gateway login`); tokens are refreshed from then on.
    AuthorizationCode,
    /// `"client_credentials"`: machine to machine, no login.
    ClientCredentials,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteTransport {
    Auto,
    Streamable,
    Sse,
}

/// Pool limits of one server, already merged with the global `pool` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Handles kept warm (`minConnections`, default 1).
    pub min: usize,
    /// Ceiling (`poolSize` of the server, else `maxConnections`, default 5). Always >= 1 and >= min.
    pub max: usize,
    /// `acquireTimeout`, default 10 s: bound on waiting for a handle, spawn and handshake included.
    pub acquire_timeout: Duration,
    /// `idleTimeout`, default 60 s: handles idle longer are closed down to `min`.
    pub idle_timeout: Duration,
    /// `maxConcurrency`, default 16: calls in flight on one handle at once; 1 serves one call at a
    /// time (for servers that cannot take concurrent requests).
    pub max_concurrency: usize,
    /// When a handle is replaced (`maxLifetime`, `maxCalls`, `maxRssBytes`); default never.
    pub recycle: Recycle,
    /// `share` of the server: who may use one handle.
    pub share: Share,
}

/// Who shares one server process (`share`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Share {
    /// `"shared"` (default): one pool for every client, calls multiplexed.
    #[default]
    Shared,
    /// `"session"`: each client session its own process, started on its first call and stopped
    /// when the session ends; calls without a session (REST) a process each.
    Session,
    /// `"call"`: a fresh process for every call, stopped after it.
    Call,
}

/// Limits past which a handle takes no new calls, finishes those in flight and is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recycle {
    /// `maxLifetime` (ms): age since the handle became ready.
    pub max_lifetime: Option<Duration>,
    /// `maxCalls`: calls the handle took.
    pub max_calls: Option<u64>,
    /// `maxRssBytes`: resident memory of the process (local servers; read from /proc).
    pub max_rss_bytes: Option<u64>,
}

/// How a server's names are exposed (`mapping.<server>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    /// `prefix`, default "": prepended to every exposed name not given by `rename`.
    pub prefix: String,
    /// `stripPrefix`: removed from the start of original names before `prefix` is added.
    pub strip_prefix: StripPrefix,
    /// `rename`: original name -> exact exposed name (no prefix added), in file order. A
    /// `tools.<original>.name` override lands here too.
    pub rename: Vec<(String, String)>,
    /// `tools`: original name -> what clients see of the tool instead of what the server says.
    pub tools: Vec<(String, ToolOverride)>,
}

/// `mapping.<server>.tools.<original>`: a tool's metadata fixed without forking its server. Calls
/// still reach the original tool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolOverride {
    pub title: Option<String>,
    pub description: Option<String>,
    /// Merged over the server's own `annotations` (e.g. `{"readOnlyHint": true}`).
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
    /// `hidden: true`: not listed, and calls to it are refused as for an unknown tool.
    pub hidden: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StripPrefix {
    /// Absent or `false`.
    #[default]
    None,
    /// `true`: strip the server's own `prefix` when an original name already starts with it.
    OwnPrefix,
    /// A string: strip exactly this from names that start with it.
    Literal(String),
}

/// `toolFilters.<server>`: applied to original names, `include` first, then `exclude`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolFilter {
    /// Globs (`*` matches any run of characters); empty = include everything.
    pub include: Vec<String>,
    /// Globs removed after `include`.
    pub exclude: Vec<String>,
}

/// One entry of `profiles`: a client-facing view of the servers' tools, served at `/mcp/<name>`,
/// `/sse/<name>` and REST with `?profile=<name>`. The plain endpoints serve the profile `default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    /// `servers`: the servers whose tools, prompts and resources it offers; None = every server.
    pub servers: Option<Vec<String>>,
    /// `include` / `exclude`: globs over exposed tool names (as `GET /tools` shows them).
    pub tools: ToolFilter,
    /// `prompts`, default true.
    pub prompts: bool,
    /// `resources`, default true.
    pub resources: bool,
    /// `toolExposure`, default all.
    pub tool_exposure: ToolExposure,
    /// `maxTools`, default 128: above this many tools, `auto` exposure switches to search.
    pub max_tools: usize,
    /// `maxToolNameLength`, default 64: longer exposed names are shortened with a stable hash.
    pub max_tool_name_length: usize,
    /// `requiredScopes`, default none: OAuth scopes a token needs for this profile's endpoints,
    /// besides `gateway.oauth.requiredScopes` (only with `gateway.oauth`).
    pub required_scopes: Vec<String>,
}

impl Profile {
    /// The profile the plain endpoints serve when the config defines no `default`: everything.
    pub fn everything(name: &str) -> Profile {
        Profile {
            name: name.to_string(),
            servers: None,
            tools: ToolFilter::default(),
            prompts: true,
            resources: true,
            tool_exposure: ToolExposure::All,
            max_tools: 128,
            max_tool_name_length: 64,
            required_scopes: Vec::new(),
        }
    }
}

/// `toolExposure` of a profile: how its tools are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolExposure {
    /// `"all"`: every tool in `tools/list`.
    #[default]
    All,
    /// `"search"`: `search_tools`, `describe_tools` and `call_tool` instead of the catalog.
    Search,
    /// `"auto"`: all while the profile has at most `maxTools` tools, search above (except for
    /// clients that search tools themselves).
    Auto,
}

impl ToolExposure {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolExposure::All => "all",
            ToolExposure::Search => "search",
            ToolExposure::Auto => "auto",
        }
    }
}
