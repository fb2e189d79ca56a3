//! `mcp-demo-server`: a small MCP (Model Context Protocol) server that follows the spec
//! and speaks the **stdio transport**. It is the test companion of `mcp-gateway`: the
//! gateway's default config, its end-to-end tests and its benchmarks use it as a
//! child process.
//!
//! # Transport
//!
//! One JSON-RPC 2.0 message per line on stdin and stdout (compact JSON, each line ending
//! in `\n`; on input, `\r\n` and blank lines are accepted). stdout carries only protocol
//! messages; the one exception is the junk that `--banner` and `--junk-every` print on
//! purpose. Diagnostics go to stderr. Every message goes out with one write and a flush
//! while a single lock is held, so messages from different threads never interleave.
//! Batches (JSON arrays) are accepted too, for 2025-03-26 clients.
//!
//! Protocol versions: `2025-11-25` (latest), `2025-06-18`, `2025-03-26` and `2024-11-05`.
//! `initialize` echoes the client's `protocolVersion` if it is one of these, and otherwise
//! answers `2025-11-25`. It advertises `tools`, `resources` (subscribe + listChanged),
//! `prompts`, `logging` and `completions`, and it remembers the client's capabilities
//! (`roots`, `sampling`, `elicitation`) for the tools that send requests to the client.
//!
//! Requests:
//! `initialize`, `ping` (allowed before initialize too), `tools/list`, `tools/call`,
//! `resources/list`, `resources/templates/list`, `resources/read`,
//! `resources/subscribe`, `resources/unsubscribe`, `prompts/list`, `prompts/get`,
//! `completion/complete` and `logging/setLevel`. Any other method gets -32601. Invalid
//! JSON gets -32700 (id null). Valid JSON that is not a JSON-RPC message gets -32600.
//! Notifications: `notifications/initialized`, `notifications/cancelled` (the cancelled
//! request is stopped and gets no response; `demo: cancelled request <id>` goes to stderr), and
//! any others are ignored.
//!
//! Concurrency: tools that answer at once (echo, add, fail, env, pid, log,
//! notify_changed, touch, crash and `--extra-tool` aliases) run on the reader thread.
//! Those that block or take time (sleep, progress, big, roots, sample, elicit) run on a
//! bounded pool of worker threads, at most 256 of them. Beyond that the server answers
//! -32603 "Server too busy". So a `sleep` never holds up `ping` or other calls. When the
//! server needs the client (roots/sample/elicit), it sends its own requests with ids
//! `"s-1"`, `"s-2"`, … and passes each client response to the thread that is waiting for it.
//!
//! # Tools
//!
//! | tool | arguments | result |
//! |------|-----------|--------|
//! | `echo` | `text: string` | text content `text` |
//! | `add` | `a: number, b: number` | text `"<sum>"` + structuredContent `{sum}` (integers stay integers); has an outputSchema and annotations `{readOnlyHint: true}` |
//! | `sleep` | `ms: integer 0..=600000` | `"slept <ms> ms"` after `ms`; can be cancelled |
//! | `fail` | `message?: string` | `isError: true` with `message` (default "this tool always fails") |
//! | `crash` | `code?: integer 0..=255` (default 1) | writes a note to stderr and exits with `code` without answering |
//! | `progress` | `steps?: 1..=1000` (5), `intervalMs?: 0..=60000` (10) | each step waits `intervalMs`, then sends `notifications/progress` (only if the request has `_meta.progressToken`); then `"done <steps> steps"`; can be cancelled |
//! | `big` | `bytes: integer 0..=67108864` | one text content of exactly `bytes` ASCII bytes |
//! | `env` | `name: string` | the variable's value, or `isError` "not set" |
//! | `pid` | – | the process id as text + structuredContent `{pid}` |
//! | `log` | `message: string, level?: string` ("info") | writes `demo: <message>` to stderr and sends `notifications/message` if `level` is at or above the threshold; `"logged"` |
//! | `roots` | – | asks the client `roots/list` and returns its result as JSON text |
//! | `sample` | `prompt: string` | asks the client `sampling/createMessage` and returns the reply's text |
//! | `elicit` | `message: string` | asks the client `elicitation/create` and returns the result as JSON text |
//! | `notify_changed` | – | sends the tools/resources/prompts `list_changed` notifications; `"notified"` |
//! | `touch` | `uri: string` | sends `notifications/resources/updated` if `uri` is subscribed; `"touched"` |
//!
//! roots/sample/elicit answer `isError` if the client did not declare the capability, if
//! the client answers with an error, or if it does not answer within the request
//! timeout (30 s). An unknown tool gets -32602 "Unknown tool: <name>". Arguments that fail
//! validation (missing, wrong type, out of range, or not in the schema) get -32602 with a
//! message that names the argument.
//!
//! # Resources, prompts, completion
//!
//! Resources: `demo://readme` (text/markdown), `demo://data.json` (application/json) and
//! `demo://logo.png` (image/png, sent as a base64 blob). Template: `demo://echo/{text}`,
//! whose content is the percent-decoded `{text}`. An unknown URI gets -32002
//! "Resource not found" with data `{uri}`. Subscriptions are remembered (see `touch`).
//! Prompts: `greet {name}` and `summarize {text, style?: short|long}`. Completion:
//! `greet`'s `name` (alice, bob, carol, dave), `summarize`'s `style`, and the template's
//! `text` (hello, world), filtered by prefix (case-sensitive).
//!
//! # Flags
//!
//! * `--banner TEXT`: print TEXT as a raw line to stdout at start (repeatable).
//! * `--junk-every N`: print `junk line <n>` to stdout before every Nth response.
//! * `--init-delay MS`: wait MS before answering `initialize` (ping is still answered meanwhile).
//! * `--exit-at-start CODE`: write a note to stderr and exit with CODE at once.
//! * `--exit-after-init`: exit (code 0) right after answering `initialize`.
//! * `--stderr-lines N`: write `demo: starting line <i>` to stderr N times at start.
//! * `--page-size N`: page size of the list methods (0 = no pagination). `nextCursor` is
//!   a decimal offset. Any cursor this server did not issue gets -32602.
//! * `--extra-tool NAME`: add a tool NAME that behaves like `echo` (repeatable; it has
//!   no title and no annotations). NAME may not duplicate another offered tool.
//! * `--tools LIST`: comma-separated built-in tools to offer (default: all).
//! * `--describe TOOL=TEXT`: list tool TOOL with the description TEXT (repeatable): a server
//!   whose definitions change between starts, for the gateway's pinning tests.
//! * `--name NAME`: `serverInfo.name` (default: env `DEMO_SERVER_NAME`, else `mcp-demo-server`).
//! * `--request-timeout MS`: how long roots/sample/elicit wait for the client (default 30000).
//! * `--exit-on-probe`: exit with status 3 on `server/discover` (a 2025 server that dies of a
//!   method it does not know, for the gateway's `protocol: "auto"`).
//! * `--protocol legacy|dual|modern` (default legacy): `dual` also answers `server/discover`
//!   (2026-07-28 and the 2025 versions); `modern` speaks only 2026-07-28: it refuses `initialize`
//!   and every request without `_meta` naming that version and client capabilities (-32602), and
//!   writes `demo: <method> with the 2026-07-28 _meta` to stderr for each one it serves. It takes
//!   `subscriptions/listen` (acknowledged, never answered), and `notify_changed` then sends only
//!   the `list_changed` kinds the listen asked for, tagged with its id — nothing without one.
//!   `elicit` answers `resultType: "input_required"` (one `elicitation/create` under
//!   `inputRequests.answer`, `requestState` "demo-elicit-state"); the retry with
//!   `inputResponses.answer` and that state gets the answer as JSON text, another state -32602.
//!   Its `tools/list` also names `misannotated`, whose `x-mcp-header` sits on a `number` property
//!   (invalid: a 2026-07-28 client must not offer it; calling it is an unknown tool).
//! * `--cache-ttl MS`: put `ttlMs: MS` on list results (the caching hints of MCP 2026-07-28).
//! * `--cache-private`: put `cacheScope: "private"` on list results.
//! * `-h/--help`, `-V/--version`.
//!
//! Values can be given as `--flag VALUE` or `--flag=VALUE`. An unknown or malformed flag
//! prints usage to stderr and exits with code 2. On stdin EOF the server waits for
//! in-flight requests to finish (at most about 1 s) and exits 0. If stdout is closed
//! (EPIPE), it exits 0 without a message.

use serde_json::{json, Map, Number, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, BufRead, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Writes one line to stderr, ignoring errors (a closed stderr must not kill the server).
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

const LATEST_VERSION: &str = "2025-11-25";
/// The stateless revision `--protocol dual|modern` speaks.
const MODERN_VERSION: &str = "2026-07-28";
const MODERN_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
const DEFAULT_NAME: &str = "mcp-demo-server";

const BUILTIN_TOOLS: [&str; 15] = [
    "echo",
    "add",
    "sleep",
    "fail",
    "crash",
    "progress",
    "big",
    "env",
    "pid",
    "log",
    "roots",
    "sample",
    "elicit",
    "notify_changed",
    "touch",
];

/// RFC 5424 levels, least severe first, as MCP logging uses them.
const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];
const DEFAULT_LEVEL: u8 = 1; // info

const MAX_WORKERS: usize = 256;
const WORKER_IDLE: Duration = Duration::from_secs(5);
const WORKER_STACK: usize = 512 * 1024;
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

const MAX_SLEEP_MS: i64 = 600_000;
const MAX_BIG_BYTES: i64 = 64 * 1024 * 1024;
const MAX_STEPS: i64 = 1000;
const MAX_INTERVAL_MS: i64 = 60_000;
const BIG_PATTERN: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const DEFAULT_FAIL_MESSAGE: &str = "this tool always fails";

const NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];
const STYLES: [&str; 2] = ["short", "long"];
const ECHO_WORDS: [&str; 2] = ["hello", "world"];

const README_URI: &str = "demo://readme";
const DATA_URI: &str = "demo://data.json";
const LOGO_URI: &str = "demo://logo.png";
const ECHO_PREFIX: &str = "demo://echo/";
const ECHO_TEMPLATE: &str = "demo://echo/{text}";

const README_TEXT: &str = "# mcp-demo-server\n\nA small MCP server for testing clients and \
gateways.\nIt offers demo tools, resources, prompts and completions.\n";
const DATA_JSON: &str = r#"{"name":"mcp-demo-server","numbers":[1,2,3],"nested":{"ok":true}}"#;

/// A 4x4 RGBA PNG (blue/white checkerboard).
const LOGO_PNG: [u8; 81] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x08, 0x06, 0x00, 0x00, 0x00, 0xa9, 0xf1, 0x9e,
    0x7e, 0x00, 0x00, 0x00, 0x18, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x90, 0xeb, 0x78, 0xfa,
    0x1f, 0x04, 0x60, 0x34, 0x03, 0x32, 0x07, 0x44, 0x33, 0x10, 0x54, 0x01, 0x00, 0xe2, 0xfe, 0x34,
    0x31, 0xae, 0x45, 0xf2, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60,
    0x82,
];

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;
const RESOURCE_NOT_FOUND: i64 = -32002;

const USAGE: &str = "\
Usage: mcp-demo-server [FLAGS]

A demo MCP server speaking JSON-RPC 2.0 over stdio (one message per line).

Flags:
  --banner TEXT          print TEXT as a raw (non-JSON) line to stdout at start; repeatable
  --junk-every N         print \"junk line <n>\" to stdout before every Nth response
  --init-delay MS        wait MS milliseconds before answering initialize
  --exit-at-start CODE   exit with CODE immediately at start
  --exit-after-init      exit (code 0) right after answering initialize
  --stderr-lines N       write N lines \"demo: starting line <i>\" to stderr at start
  --page-size N          list results are paginated N items per page (0 = no pagination)
  --extra-tool NAME      add a tool NAME that behaves like echo; repeatable
  --tools LIST           comma-separated built-in tools to offer (default: all)
  --describe TOOL=TEXT   list TOOL with the description TEXT instead of its own; repeatable
  --name NAME            serverInfo.name (default: $DEMO_SERVER_NAME or mcp-demo-server)
  --request-timeout MS   how long roots/sample/elicit wait for the client (default 30000)
  --protocol ERA         legacy (default), dual (also server/discover) or modern (2026-07-28 only)
  --exit-on-probe        exit with status 3 when asked server/discover
  --cache-ttl MS         put ttlMs: MS on list results (MCP 2026-07-28 caching hints)
  --cache-private        put cacheScope: \"private\" on list results
  -h, --help             print this help and exit
  -V, --version          print the version and exit

Built-in tools: echo, add, sleep, fail, crash, progress, big, env, pid, log, roots,
sample, elicit, notify_changed, touch.
";

/// Locks a mutex, ignoring poisoning (a panicking worker must not wedge the server).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Default)]
struct Config {
    banners: Vec<String>,
    junk_every: u64,
    init_delay_ms: u64,
    exit_at_start: Option<i32>,
    exit_after_init: bool,
    exit_on_probe: bool,
    stderr_lines: u64,
    page_size: usize,
    extra_tools: Vec<String>,
    tools: Option<Vec<String>>,
    name: Option<String>,
    request_timeout_ms: u64,
    /// `--describe TOOL=TEXT`: descriptions listed instead of the tools' own.
    descriptions: Vec<(String, String)>,
    /// `--cache-ttl`: `ttlMs` on list results (caching hints, MCP 2026-07-28).
    cache_ttl_ms: Option<u64>,
    /// `--cache-private`: `cacheScope: "private"` on list results.
    cache_private: bool,
    /// `--protocol`: which eras the server speaks.
    protocol: Era,
}

/// `--protocol legacy|dual|modern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Era {
    /// 2025 only: `server/discover` is an unknown method.
    #[default]
    Legacy,
    /// Both: `server/discover` and `initialize`.
    Dual,
    /// 2026-07-28 only: no `initialize`; every request must carry the protocol `_meta`.
    Modern,
}

impl Config {
    fn new() -> Self {
        Config {
            request_timeout_ms: 30_000,
            ..Config::default()
        }
    }

    /// The built-in tools offered, in their fixed order.
    fn offered_builtins(&self) -> Vec<&'static str> {
        BUILTIN_TOOLS
            .iter()
            .copied()
            .filter(|t| self.tools.as_ref().is_none_or(|l| l.iter().any(|x| x == t)))
            .collect()
    }
}

#[derive(Debug, PartialEq)]
enum Cli {
    Run(Config),
    Help,
    Version,
}

fn take_value(
    flag: &str,
    inline: Option<String>,
    it: &mut impl Iterator<Item = String>,
) -> Result<String, String> {
    match inline {
        Some(v) => Ok(v),
        None => it.next().ok_or_else(|| format!("{flag} needs a value")),
    }
}

fn parse_num<T: std::str::FromStr>(flag: &str, s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{flag}: invalid number '{s}'"))
}

fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Cli, String> {
    let mut cfg = Config::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Cli::Help),
            "-V" | "--version" => return Ok(Cli::Version),
            "--banner" => cfg.banners.push(take_value(&flag, inline, &mut it)?),
            "--junk-every" => {
                cfg.junk_every = parse_num(&flag, &take_value(&flag, inline, &mut it)?)?
            }
            "--init-delay" => {
                cfg.init_delay_ms = parse_num(&flag, &take_value(&flag, inline, &mut it)?)?
            }
            "--exit-at-start" => {
                cfg.exit_at_start = Some(parse_num(&flag, &take_value(&flag, inline, &mut it)?)?)
            }
            "--exit-after-init" => {
                if inline.is_some() {
                    return Err(format!("{flag} takes no value"));
                }
                cfg.exit_after_init = true;
            }
            "--exit-on-probe" => {
                if inline.is_some() {
                    return Err(format!("{flag} takes no value"));
                }
                cfg.exit_on_probe = true;
            }
            "--stderr-lines" => {
                cfg.stderr_lines = parse_num(&flag, &take_value(&flag, inline, &mut it)?)?
            }
            "--page-size" => {
                cfg.page_size = parse_num(&flag, &take_value(&flag, inline, &mut it)?)?
            }
            "--request-timeout" => {
                cfg.request_timeout_ms = parse_num(&flag, &take_value(&flag, inline, &mut it)?)?
            }
            "--extra-tool" => {
                let name = take_value(&flag, inline, &mut it)?;
                if name.is_empty() {
                    return Err(format!("{flag} needs a non-empty name"));
                }
                cfg.extra_tools.push(name);
            }
            "--describe" => {
                let value = take_value(&flag, inline, &mut it)?;
                match value.split_once('=') {
                    Some((tool, text)) if !tool.is_empty() => {
                        cfg.descriptions.push((tool.to_string(), text.to_string()))
                    }
                    _ => return Err(format!("{flag} takes TOOL=TEXT, not {value:?}")),
                }
            }
            "--tools" => {
                let list = take_value(&flag, inline, &mut it)?;
                let mut tools: Vec<String> = Vec::new();
                for t in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !BUILTIN_TOOLS.contains(&t) {
                        return Err(format!("{flag}: unknown built-in tool '{t}'"));
                    }
                    if !tools.iter().any(|x| x == t) {
                        tools.push(t.to_string());
                    }
                }
                cfg.tools = Some(tools);
            }
            "--name" => cfg.name = Some(take_value(&flag, inline, &mut it)?),
            "--cache-ttl" => {
                cfg.cache_ttl_ms = Some(parse_num(&flag, &take_value(&flag, inline, &mut it)?)?)
            }
            "--protocol" => {
                cfg.protocol = match take_value(&flag, inline, &mut it)?.as_str() {
                    "legacy" => Era::Legacy,
                    "dual" => Era::Dual,
                    "modern" => Era::Modern,
                    other => {
                        return Err(format!(
                            "{flag}: '{other}' is not one of legacy, dual, modern"
                        ))
                    }
                }
            }
            "--cache-private" => {
                if inline.is_some() {
                    return Err(format!("{flag} takes no value"));
                }
                cfg.cache_private = true;
            }
            _ => return Err(format!("unknown flag: {flag}")),
        }
    }
    let offered = cfg.offered_builtins();
    for (i, extra) in cfg.extra_tools.iter().enumerate() {
        if offered.contains(&extra.as_str()) || cfg.extra_tools[..i].contains(extra) {
            return Err(format!(
                "--extra-tool {extra}: a tool with that name is already offered"
            ));
        }
    }
    Ok(Cli::Run(cfg))
}

// ---------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------

fn level_index(level: &str) -> Option<u8> {
    LEVELS.iter().position(|l| *l == level).map(|i| i as u8)
}

/// Page bounds for a list of `len` items: `(start, end, nextCursor)`.
fn page_bounds(
    len: usize,
    page_size: usize,
    cursor: Option<&str>,
) -> Result<(usize, usize, Option<String>), String> {
    let start = match cursor {
        None => 0,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if page_size > 0 && n > 0 && n < len && n.to_string() == c => n,
            _ => return Err(format!("Invalid params: invalid cursor '{c}'")),
        },
    };
    if page_size == 0 {
        return Ok((0, len, None));
    }
    let end = start.saturating_add(page_size).min(len);
    Ok((start, end, (end < len).then(|| end.to_string())))
}

/// Completion candidates for a reference/argument pair, filtered by prefix.
fn completion_values(
    ref_type: &str,
    ident: &str,
    argument: &str,
    prefix: &str,
) -> Result<Vec<&'static str>, String> {
    let candidates: &[&'static str] = match (ref_type, ident, argument) {
        ("ref/prompt", "greet", "name") => &NAMES,
        ("ref/prompt", "summarize", "style") => &STYLES,
        ("ref/resource", ECHO_TEMPLATE, "text") => &ECHO_WORDS,
        ("ref/prompt", "greet" | "summarize", _) | ("ref/resource", ECHO_TEMPLATE, _) => &[],
        _ => {
            return Err(format!(
                "Invalid params: unknown completion reference {ref_type} '{ident}'"
            ))
        }
    };
    Ok(candidates
        .iter()
        .copied()
        .filter(|c| c.starts_with(prefix))
        .collect())
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are and invalid UTF-8 is
/// replaced with U+FFFD.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

fn int_of(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// `a + b`; integers stay integers (as long as the sum fits in i64/u64).
fn add_numbers(a: &Number, b: &Number) -> Option<Number> {
    if let (Some(x), Some(y)) = (int_of(a), int_of(b)) {
        let s = x + y;
        if let Ok(v) = i64::try_from(s) {
            return Some(v.into());
        }
        if let Ok(v) = u64::try_from(s) {
            return Some(v.into());
        }
        return Number::from_f64(s as f64);
    }
    Number::from_f64(a.as_f64()? + b.as_f64()?)
}

/// Appends the JSON of a CallToolResult with one text block of exactly `n` ASCII bytes.
fn write_big_result(buf: &mut Vec<u8>, n: usize) {
    buf.reserve(n + 48);
    buf.extend_from_slice(br#"{"content":[{"type":"text","text":""#);
    let start = buf.len();
    buf.extend_from_slice(&BIG_PATTERN[..n.min(BIG_PATTERN.len())]);
    // Double the written run; every copy starts at a multiple of the pattern length.
    while buf.len() - start < n {
        let have = buf.len() - start;
        let take = have.min(n - have);
        buf.extend_from_within(start..start + take);
    }
    buf.extend_from_slice(br#""}]}"#);
}

/// The text of a sampling result: `content` may be one block or (2025-11-25) an array.
fn sampled_text(result: &Value) -> Option<String> {
    let content = result.get("content")?;
    let blocks: Vec<&Value> = match content {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let texts: Vec<&str> = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    (!texts.is_empty()).then(|| texts.join("\n"))
}

fn text_result(text: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": text.into()}]})
}

fn error_result(text: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": text.into()}], "isError": true})
}

fn write_json(buf: &mut Vec<u8>, v: &Value) {
    // Serializing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, v);
}

// ---------------------------------------------------------------------------------------
// JSON-RPC errors and messages
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }
}

fn invalid_params(message: impl Into<String>) -> RpcError {
    RpcError::new(INVALID_PARAMS, message)
}

fn busy() -> RpcError {
    RpcError::new(
        INTERNAL_ERROR,
        format!("Server too busy: {MAX_WORKERS} requests are already running"),
    )
}

fn error_message(id: &Value, e: &RpcError) -> Vec<u8> {
    let mut err = Map::new();
    err.insert("code".into(), e.code.into());
    err.insert("message".into(), e.message.clone().into());
    if let Some(d) = &e.data {
        err.insert("data".into(), d.clone());
    }
    let mut buf = Vec::with_capacity(96);
    buf.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    write_json(&mut buf, id);
    buf.extend_from_slice(br#","error":"#);
    write_json(&mut buf, &Value::Object(err));
    buf.push(b'}');
    buf
}

fn notification_message(method: &str, params: Option<Value>) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("jsonrpc".into(), "2.0".into());
    m.insert("method".into(), method.into());
    if let Some(p) = params {
        m.insert("params".into(), p);
    }
    serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
}

fn request_message(id: &str, method: &str, params: Option<Value>) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("jsonrpc".into(), "2.0".into());
    m.insert("id".into(), id.into());
    m.insert("method".into(), method.into());
    if let Some(p) = params {
        m.insert("params".into(), p);
    }
    serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

struct OutState {
    responses: u64,
    junk: u64,
}

/// stdout, shared by all threads: one lock around each write + flush.
struct Output {
    st: Mutex<OutState>,
    junk_every: u64,
}

fn check_write(r: io::Result<()>) {
    if let Err(e) = r {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        note!("demo: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

impl Output {
    fn new(junk_every: u64) -> Self {
        Output {
            st: Mutex::new(OutState {
                responses: 0,
                junk: 0,
            }),
            junk_every,
        }
    }

    /// Writes one message (without its newline) as a line. `response` counts it for
    /// `--junk-every`; `exit_after` ends the process once it is written.
    fn write(&self, mut msg: Vec<u8>, response: bool, exit_after: bool) {
        msg.push(b'\n');
        let mut st = lock(&self.st);
        let mut out = io::stdout().lock();
        if response {
            st.responses += 1;
            if self.junk_every > 0 && st.responses.is_multiple_of(self.junk_every) {
                st.junk += 1;
                check_write(out.write_all(format!("junk line {}\n", st.junk).as_bytes()));
            }
        }
        check_write(out.write_all(&msg).and_then(|()| out.flush()));
        if exit_after {
            std::process::exit(0);
        }
    }

    fn write_raw_line(&self, text: &str) {
        let _st = lock(&self.st);
        let mut out = io::stdout().lock();
        check_write(
            out.write_all(text.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush()),
        );
    }

    /// Exits once no other thread is in the middle of a message (waits at most `wait`).
    fn exit_now(&self, code: i32, wait: Duration) -> ! {
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(_g) = self.st.try_lock() {
                let _ = io::stdout().lock().flush();
                std::process::exit(code);
            }
            if Instant::now() >= deadline {
                std::process::exit(code);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Replies (and batches)
// ---------------------------------------------------------------------------------------

struct BatchState {
    parts: Vec<Vec<u8>>,
    remaining: usize,
    exit_after: bool,
}

/// Collects the responses of one JSON-RPC batch and writes them as one array.
struct Batch {
    st: Mutex<BatchState>,
}

impl Batch {
    fn new(len: usize) -> Self {
        Batch {
            st: Mutex::new(BatchState {
                parts: Vec::new(),
                remaining: len,
                exit_after: false,
            }),
        }
    }

    fn complete(&self, out: &Output, msg: Option<Vec<u8>>, exit_after: bool) {
        let mut st = lock(&self.st);
        if let Some(m) = msg {
            st.parts.push(m);
        }
        st.exit_after |= exit_after;
        st.remaining = st.remaining.saturating_sub(1);
        if st.remaining > 0 {
            return;
        }
        let parts = std::mem::take(&mut st.parts);
        let exit = st.exit_after;
        drop(st);
        if parts.is_empty() {
            if exit {
                out.exit_now(0, SHUTDOWN_GRACE);
            }
            return;
        }
        let mut buf = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>() + 2);
        buf.push(b'[');
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(p);
        }
        buf.push(b']');
        out.write(buf, true, exit);
    }
}

/// Hands a finished element (response bytes or nothing) to stdout or to its batch.
fn finish_element(out: &Output, batch: Option<&Arc<Batch>>, msg: Option<Vec<u8>>) {
    match batch {
        Some(b) => b.complete(out, msg, false),
        None => {
            if let Some(m) = msg {
                out.write(m, true, false);
            }
        }
    }
}

/// The obligation to answer one request. Dropping it unanswered (a bug or a panic)
/// sends -32603, so that a client never waits forever.
struct Reply {
    srv: Arc<Server>,
    id: Value,
    batch: Option<Arc<Batch>>,
    done: bool,
}

impl Reply {
    fn ok(self, result: &Value) {
        self.ok_with(|buf| write_json(buf, result), false);
    }

    fn ok_with(mut self, f: impl FnOnce(&mut Vec<u8>), exit_after: bool) {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        write_json(&mut buf, &self.id);
        buf.extend_from_slice(br#","result":"#);
        f(&mut buf);
        buf.push(b'}');
        self.deliver(Some(buf), exit_after);
    }

    fn err(mut self, e: RpcError) {
        let msg = error_message(&self.id, &e);
        self.deliver(Some(msg), false);
    }

    fn answer(self, r: Result<Value, RpcError>) {
        match r {
            Ok(v) => self.ok(&v),
            Err(e) => self.err(e),
        }
    }

    /// No response at all (the request was cancelled).
    fn silent(mut self) {
        self.deliver(None, false);
    }

    fn deliver(&mut self, msg: Option<Vec<u8>>, exit_after: bool) {
        self.done = true;
        match &self.batch {
            Some(b) => b.complete(&self.srv.out, msg, exit_after),
            None => {
                if let Some(m) = msg {
                    self.srv.out.write(m, true, exit_after);
                }
            }
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.done {
            let e = RpcError::new(INTERNAL_ERROR, "Internal error: the request was abandoned");
            let msg = error_message(&self.id, &e);
            self.deliver(Some(msg), false);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Worker pool
// ---------------------------------------------------------------------------------------

struct Job {
    reply: Reply,
    work: Box<dyn FnOnce(Reply) + Send>,
}

struct PoolState {
    queue: VecDeque<Job>,
    idle: usize,
    total: usize,
}

/// Grows on demand up to `max` threads; idle threads exit after `WORKER_IDLE`.
struct Pool {
    st: Mutex<PoolState>,
    cv: Condvar,
    max: usize,
}

impl Pool {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Pool {
            st: Mutex::new(PoolState {
                queue: VecDeque::new(),
                idle: 0,
                total: 0,
            }),
            cv: Condvar::new(),
            max,
        })
    }

    /// Queues `job`; gives it back if all `max` workers are busy.
    fn submit(self: &Arc<Self>, job: Job) -> Result<(), Job> {
        let mut st = lock(&self.st);
        if st.idle > st.queue.len() {
            st.queue.push_back(job);
            drop(st);
            self.cv.notify_one();
            return Ok(());
        }
        if st.total >= self.max {
            return Err(job);
        }
        // A new worker, counted as idle and reserved for this job.
        st.total += 1;
        st.idle += 1;
        st.queue.push_back(job);
        drop(st);
        let pool = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("demo-worker".into())
            .stack_size(WORKER_STACK)
            .spawn(move || pool.work());
        if spawned.is_err() {
            let mut st = lock(&self.st);
            st.total -= 1;
            st.idle -= 1;
            if st.queue.len() > st.idle {
                if let Some(job) = st.queue.pop_back() {
                    return Err(job);
                }
            }
        }
        Ok(())
    }

    fn work(&self) {
        let mut st = lock(&self.st);
        loop {
            if let Some(job) = st.queue.pop_front() {
                st.idle -= 1;
                drop(st);
                let Job { reply, work } = job;
                // A panic drops the Reply, which answers -32603.
                let _ = catch_unwind(AssertUnwindSafe(move || work(reply)));
                st = lock(&self.st);
                st.idle += 1;
                continue;
            }
            let (g, timeout) = self
                .cv
                .wait_timeout(st, WORKER_IDLE)
                .unwrap_or_else(|e| e.into_inner());
            st = g;
            if timeout.timed_out() && st.queue.is_empty() {
                st.idle -= 1;
                st.total -= 1;
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tasks: cancellation and replies from the client
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct TaskState {
    cancelled: bool,
    finished: bool,
    closed: bool,
    reply: Option<Map<String, Value>>,
}

/// One running request that can be cancelled and can wait for a client's response.
#[derive(Default)]
struct Task {
    st: Mutex<TaskState>,
    cv: Condvar,
}

enum Wait {
    Reply(Map<String, Value>),
    Cancelled,
    TimedOut,
    Closed,
}

impl Task {
    fn cancel(&self) {
        let mut st = lock(&self.st);
        if !st.finished {
            st.cancelled = true;
            self.cv.notify_all();
        }
    }

    /// Waits `d`; false if cancelled meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut st = lock(&self.st);
        loop {
            if st.cancelled {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            st = self
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Marks the task answered; false if it was cancelled first.
    fn finish(&self) -> bool {
        let mut st = lock(&self.st);
        if st.cancelled {
            return false;
        }
        st.finished = true;
        true
    }

    fn deliver(&self, msg: Map<String, Value>) {
        lock(&self.st).reply = Some(msg);
        self.cv.notify_all();
    }

    fn close(&self) {
        lock(&self.st).closed = true;
        self.cv.notify_all();
    }

    fn clear_reply(&self) {
        lock(&self.st).reply = None;
    }

    fn wait_reply(&self, deadline: Instant) -> Wait {
        let mut st = lock(&self.st);
        loop {
            if st.cancelled {
                return Wait::Cancelled;
            }
            if let Some(r) = st.reply.take() {
                return Wait::Reply(r);
            }
            if st.closed {
                return Wait::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Wait::TimedOut;
            }
            st = self
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Counts work that must finish (and write its response) before exiting on EOF.
struct ActiveGuard {
    srv: Arc<Server>,
}

impl ActiveGuard {
    fn new(srv: &Arc<Server>) -> Self {
        *lock(&srv.active) += 1;
        ActiveGuard {
            srv: Arc::clone(srv),
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut n = lock(&self.srv.active);
        *n = n.saturating_sub(1);
        self.srv.active_cv.notify_all();
    }
}

/// A tools/call running on a worker, registered under its id for cancellation.
struct Running {
    srv: Arc<Server>,
    key: String,
    task: Arc<Task>,
    _active: ActiveGuard,
}

impl Running {
    /// Claims the right to answer; false if the request was cancelled.
    fn begin_reply(&self) -> bool {
        let ok = self.task.finish();
        self.unregister();
        ok
    }

    fn unregister(&self) {
        let mut m = lock(&self.srv.inflight);
        if m.get(&self.key).is_some_and(|t| Arc::ptr_eq(t, &self.task)) {
            m.remove(&self.key);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.unregister();
    }
}

// ---------------------------------------------------------------------------------------
// Tool calls: argument validation
// ---------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Call {
    Echo(String),
    Add(Number, Number),
    Sleep(u64),
    Fail(String),
    Crash(i32),
    Progress { steps: u64, interval_ms: u64 },
    Big(usize),
    Env(String),
    Pid,
    Log { message: String, level: u8 },
    Roots,
    Sample(String),
    Elicit(String),
    NotifyChanged,
    Touch(String),
}

impl Call {
    /// Calls that wait or take time run on a worker thread.
    fn is_blocking(&self) -> bool {
        matches!(
            self,
            Call::Sleep(_)
                | Call::Progress { .. }
                | Call::Big(_)
                | Call::Roots
                | Call::Sample(_)
                | Call::Elicit(_)
        )
    }
}

struct Args<'a> {
    tool: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    fn bad(&self, msg: String) -> RpcError {
        invalid_params(format!("Invalid arguments for tool '{}': {msg}", self.tool))
    }

    fn only(&self, allowed: &[&str]) -> Result<(), RpcError> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(self.bad(format!("unknown argument '{k}'"))),
            None => Ok(()),
        }
    }

    /// The value of `name`; `null` counts as absent.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn missing(&self, name: &str) -> RpcError {
        self.bad(format!("missing required argument '{name}'"))
    }

    fn opt_str(&self, name: &str) -> Result<Option<&'a str>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.bad(format!("'{name}' must be a string"))),
        }
    }

    fn req_str(&self, name: &str) -> Result<&'a str, RpcError> {
        self.opt_str(name)?.ok_or_else(|| self.missing(name))
    }

    fn req_num(&self, name: &str) -> Result<&'a Number, RpcError> {
        match self.get(name) {
            None => Err(self.missing(name)),
            Some(Value::Number(n)) => Ok(n),
            Some(_) => Err(self.bad(format!("'{name}' must be a number"))),
        }
    }

    fn opt_int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, RpcError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let n = match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_u64().map(|_| i64::MAX))
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                }),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(self.bad(format!(
                "'{name}' must be an integer between {min} and {max}"
            ))),
        }
    }

    fn req_int(&self, name: &str, min: i64, max: i64) -> Result<i64, RpcError> {
        self.opt_int(name, min, max)?
            .ok_or_else(|| self.missing(name))
    }
}

/// Validates the arguments of a built-in tool.
fn parse_builtin(tool: &str, map: &Map<String, Value>) -> Result<Call, RpcError> {
    let a = Args { tool, map };
    let call = match tool {
        "echo" => {
            a.only(&["text"])?;
            Call::Echo(a.req_str("text")?.to_owned())
        }
        "add" => {
            a.only(&["a", "b"])?;
            Call::Add(a.req_num("a")?.clone(), a.req_num("b")?.clone())
        }
        "sleep" => {
            a.only(&["ms"])?;
            Call::Sleep(a.req_int("ms", 0, MAX_SLEEP_MS)? as u64)
        }
        "fail" => {
            a.only(&["message"])?;
            Call::Fail(
                a.opt_str("message")?
                    .unwrap_or(DEFAULT_FAIL_MESSAGE)
                    .to_owned(),
            )
        }
        "crash" => {
            a.only(&["code"])?;
            Call::Crash(a.opt_int("code", 0, 255)?.unwrap_or(1) as i32)
        }
        "progress" => {
            a.only(&["steps", "intervalMs"])?;
            Call::Progress {
                steps: a.opt_int("steps", 1, MAX_STEPS)?.unwrap_or(5) as u64,
                interval_ms: a.opt_int("intervalMs", 0, MAX_INTERVAL_MS)?.unwrap_or(10) as u64,
            }
        }
        "big" => {
            a.only(&["bytes"])?;
            Call::Big(a.req_int("bytes", 0, MAX_BIG_BYTES)? as usize)
        }
        "env" => {
            a.only(&["name"])?;
            Call::Env(a.req_str("name")?.to_owned())
        }
        "pid" => {
            a.only(&[])?;
            Call::Pid
        }
        "log" => {
            a.only(&["message", "level"])?;
            let message = a.req_str("message")?.to_owned();
            let level = match a.opt_str("level")? {
                None => DEFAULT_LEVEL,
                Some(l) => level_index(l).ok_or_else(|| {
                    a.bad(format!("'level' must be one of {}", LEVELS.join(", ")))
                })?,
            };
            Call::Log { message, level }
        }
        "roots" => {
            a.only(&[])?;
            Call::Roots
        }
        "sample" => {
            a.only(&["prompt"])?;
            Call::Sample(a.req_str("prompt")?.to_owned())
        }
        "elicit" => {
            a.only(&["message"])?;
            Call::Elicit(a.req_str("message")?.to_owned())
        }
        "notify_changed" => {
            a.only(&[])?;
            Call::NotifyChanged
        }
        "touch" => {
            a.only(&["uri"])?;
            Call::Touch(a.req_str("uri")?.to_owned())
        }
        _ => return Err(invalid_params(format!("Unknown tool: {tool}"))),
    };
    Ok(call)
}

// ---------------------------------------------------------------------------------------
// Definitions (tools, resources, prompts)
// ---------------------------------------------------------------------------------------

fn object_schema(properties: Value, required: &[&str]) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), "object".into());
    m.insert("properties".into(), properties);
    if !required.is_empty() {
        m.insert("required".into(), json!(required));
    }
    m.insert("additionalProperties".into(), false.into());
    Value::Object(m)
}

fn tool_def(
    name: &str,
    title: Option<&str>,
    description: &str,
    input: Value,
    output: Option<Value>,
    annotations: Option<Value>,
) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), name.into());
    if let Some(t) = title {
        m.insert("title".into(), t.into());
    }
    m.insert("description".into(), description.into());
    m.insert("inputSchema".into(), input);
    if let Some(o) = output {
        m.insert("outputSchema".into(), o);
    }
    if let Some(a) = annotations {
        m.insert("annotations".into(), a);
    }
    Value::Object(m)
}

fn echo_schema() -> Value {
    object_schema(
        json!({"text": {"type": "string", "description": "Text to send back"}}),
        &["text"],
    )
}

fn builtin_tool_def(name: &str) -> Value {
    let no_args = || object_schema(json!({}), &[]);
    let read_only = || Some(json!({"readOnlyHint": true}));
    match name {
        "echo" => tool_def(
            name,
            Some("Echo"),
            "Returns the given text unchanged as one text content block.",
            echo_schema(),
            None,
            None,
        ),
        "add" => tool_def(
            name,
            Some("Add two numbers"),
            "Adds a and b. The sum is returned as text and as structuredContent {sum}; \
             the sum of two integers is an integer.",
            object_schema(
                json!({
                    "a": {"type": "number", "description": "First addend"},
                    "b": {"type": "number", "description": "Second addend"}
                }),
                &["a", "b"],
            ),
            Some(object_schema(
                json!({"sum": {"type": "number", "description": "a + b"}}),
                &["sum"],
            )),
            read_only(),
        ),
        "sleep" => tool_def(
            name,
            Some("Sleep"),
            "Waits ms milliseconds, then answers \"slept <ms> ms\". Can be cancelled with \
             notifications/cancelled.",
            object_schema(
                json!({"ms": {"type": "integer", "minimum": 0, "maximum": MAX_SLEEP_MS,
                              "description": "Milliseconds to wait"}}),
                &["ms"],
            ),
            None,
            Some(json!({"readOnlyHint": true, "idempotentHint": true})),
        ),
        "fail" => tool_def(
            name,
            Some("Always fail"),
            "Always returns a tool error (isError: true) with the given message.",
            object_schema(
                json!({"message": {"type": "string", "default": DEFAULT_FAIL_MESSAGE,
                                   "description": "Error text to return"}}),
                &[],
            ),
            None,
            read_only(),
        ),
        "crash" => tool_def(
            name,
            Some("Crash the server"),
            "Exits the server process immediately with the given exit code, without \
             answering the call.",
            object_schema(
                json!({"code": {"type": "integer", "minimum": 0, "maximum": 255, "default": 1,
                                "description": "Process exit code"}}),
                &[],
            ),
            None,
            Some(json!({"readOnlyHint": false, "destructiveHint": true})),
        ),
        "progress" => tool_def(
            name,
            Some("Report progress"),
            "Runs `steps` steps of `intervalMs` each. After each step it sends \
             notifications/progress if the request carries _meta.progressToken. Answers \
             \"done <steps> steps\". Can be cancelled.",
            object_schema(
                json!({
                    "steps": {"type": "integer", "minimum": 1, "maximum": MAX_STEPS, "default": 5,
                              "description": "Number of steps"},
                    "intervalMs": {"type": "integer", "minimum": 0, "maximum": MAX_INTERVAL_MS,
                                   "default": 10, "description": "Milliseconds per step"}
                }),
                &[],
            ),
            None,
            None,
        ),
        "big" => tool_def(
            name,
            Some("Big output"),
            "Returns one text content block of exactly `bytes` ASCII bytes.",
            object_schema(
                json!({"bytes": {"type": "integer", "minimum": 0, "maximum": MAX_BIG_BYTES,
                                 "description": "Size of the text in bytes"}}),
                &["bytes"],
            ),
            None,
            read_only(),
        ),
        "env" => tool_def(
            name,
            Some("Read an environment variable"),
            "Returns the value of the server's environment variable `name`, or a tool \
             error \"not set\".",
            object_schema(
                json!({"name": {"type": "string", "description": "Variable name"}}),
                &["name"],
            ),
            None,
            read_only(),
        ),
        "pid" => tool_def(
            name,
            Some("Process id"),
            "Returns the server's process id as text and as structuredContent {pid}.",
            no_args(),
            None,
            read_only(),
        ),
        "log" => tool_def(
            name,
            Some("Log a message"),
            "Writes \"demo: <message>\" to stderr and sends notifications/message if \
             `level` is at or above the level set with logging/setLevel.",
            object_schema(
                json!({
                    "message": {"type": "string", "description": "Text to log"},
                    "level": {"type": "string", "enum": LEVELS, "default": "info",
                              "description": "Log level"}
                }),
                &["message"],
            ),
            None,
            None,
        ),
        "roots" => tool_def(
            name,
            Some("List client roots"),
            "Sends roots/list to the client and returns its answer as JSON text.",
            no_args(),
            None,
            None,
        ),
        "sample" => tool_def(
            name,
            Some("Sample via the client"),
            "Sends sampling/createMessage with the prompt to the client and returns the \
             text of its reply.",
            object_schema(
                json!({"prompt": {"type": "string", "description": "User message to sample"}}),
                &["prompt"],
            ),
            None,
            None,
        ),
        "elicit" => tool_def(
            name,
            Some("Elicit user input"),
            "Sends elicitation/create with the message to the client and returns its \
             result as JSON text.",
            object_schema(
                json!({"message": {"type": "string", "description": "Question for the user"}}),
                &["message"],
            ),
            None,
            None,
        ),
        "notify_changed" => tool_def(
            name,
            Some("Notify list changes"),
            "Sends notifications/tools/list_changed, notifications/resources/list_changed \
             and notifications/prompts/list_changed.",
            no_args(),
            None,
            None,
        ),
        "touch" => tool_def(
            name,
            Some("Touch a resource"),
            "Sends notifications/resources/updated for `uri` if the client subscribed to it.",
            object_schema(
                json!({"uri": {"type": "string", "description": "Resource URI"}}),
                &["uri"],
            ),
            None,
            None,
        ),
        _ => unreachable!("not a built-in tool: {name}"),
    }
}

fn extra_tool_def(name: &str) -> Value {
    tool_def(
        name,
        None,
        "Alias of echo: returns the given text unchanged as one text content block.",
        echo_schema(),
        None,
        None,
    )
}

fn resource_defs() -> Vec<Value> {
    vec![
        json!({"uri": README_URI, "name": "readme", "title": "Demo README",
               "description": "A short markdown text", "mimeType": "text/markdown"}),
        json!({"uri": DATA_URI, "name": "data.json", "title": "Demo data",
               "description": "A small JSON document", "mimeType": "application/json"}),
        json!({"uri": LOGO_URI, "name": "logo.png", "title": "Demo logo",
               "description": "A tiny PNG image", "mimeType": "image/png"}),
    ]
}

fn template_defs() -> Vec<Value> {
    vec![
        json!({"uriTemplate": ECHO_TEMPLATE, "name": "echo", "title": "Echo resource",
                "description": "Its content is the percent-decoded {text} part of the URI",
                "mimeType": "text/plain"}),
    ]
}

fn prompt_defs() -> Vec<Value> {
    vec![
        json!({"name": "greet", "title": "Greeting", "description": "Asks for a warm greeting",
               "arguments": [{"name": "name", "description": "Who to greet", "required": true}]}),
        json!({"name": "summarize", "title": "Summarize",
        "description": "Asks for a summary of a text",
        "arguments": [
            {"name": "text", "description": "Text to summarize", "required": true},
            {"name": "style", "description": "short or long", "required": false}
        ]}),
    ]
}

// ---------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------

struct Server {
    cfg: Config,
    name: String,
    offered: Vec<&'static str>,
    tools: Vec<Value>,
    resources: Vec<Value>,
    templates: Vec<Value>,
    prompts: Vec<Value>,
    out: Output,
    client_caps: Mutex<Map<String, Value>>,
    subscriptions: Mutex<HashSet<String>>,
    /// `--protocol modern`: the id of the open `subscriptions/listen`, if any, and what it asked for.
    listen: Mutex<Option<(Value, Value)>>,
    log_level: AtomicU8,
    /// tools/call requests running on workers, by JSON text of their id.
    inflight: Mutex<HashMap<String, Arc<Task>>>,
    /// Our own requests to the client, by id, and the task waiting for each.
    pending: Mutex<HashMap<String, Arc<Task>>>,
    next_request: AtomicU64,
    pool: Arc<Pool>,
    active: Mutex<usize>,
    active_cv: Condvar,
    closed: AtomicBool,
}

impl Server {
    fn new(cfg: Config) -> Arc<Self> {
        let name = cfg
            .name
            .clone()
            .or_else(|| {
                std::env::var("DEMO_SERVER_NAME")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_NAME.to_string());
        let offered = cfg.offered_builtins();
        let mut tools: Vec<Value> = offered.iter().map(|n| builtin_tool_def(n)).collect();
        tools.extend(cfg.extra_tools.iter().map(|n| extra_tool_def(n)));
        for tool in &mut tools {
            let name = tool["name"].as_str().unwrap_or_default().to_string();
            if let Some((_, text)) = cfg.descriptions.iter().find(|(t, _)| *t == name) {
                tool["description"] = Value::String(text.clone());
            }
        }
        Arc::new(Server {
            out: Output::new(cfg.junk_every),
            cfg,
            name,
            offered,
            tools,
            resources: resource_defs(),
            templates: template_defs(),
            prompts: prompt_defs(),
            client_caps: Mutex::new(Map::new()),
            subscriptions: Mutex::new(HashSet::new()),
            listen: Mutex::new(None),
            log_level: AtomicU8::new(DEFAULT_LEVEL),
            inflight: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(0),
            pool: Pool::new(MAX_WORKERS),
            active: Mutex::new(0),
            active_cv: Condvar::new(),
            closed: AtomicBool::new(false),
        })
    }

    fn notify(&self, method: &str, params: Option<Value>) {
        self.out
            .write(notification_message(method, params), false, false);
    }

    // --- input -------------------------------------------------------------------------

    fn handle_line(self: &Arc<Self>, line: &[u8]) {
        let v: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => {
                let err = RpcError::new(PARSE_ERROR, format!("Parse error: {e}"));
                self.out
                    .write(error_message(&Value::Null, &err), true, false);
                return;
            }
        };
        match v {
            Value::Array(items) if items.is_empty() => {
                let err = RpcError::new(INVALID_REQUEST, "Invalid Request: empty batch");
                self.out
                    .write(error_message(&Value::Null, &err), true, false);
            }
            Value::Array(items) => {
                let batch = Arc::new(Batch::new(items.len()));
                for item in items {
                    self.handle_message(item, Some(&batch));
                }
            }
            other => self.handle_message(other, None),
        }
    }

    fn handle_message(self: &Arc<Self>, v: Value, batch: Option<&Arc<Batch>>) {
        let invalid = |id: Option<Value>, why: &str| {
            let err = RpcError::new(INVALID_REQUEST, format!("Invalid Request: {why}"));
            let id = id.unwrap_or(Value::Null);
            finish_element(&self.out, batch, Some(error_message(&id, &err)));
        };
        let Value::Object(mut m) = v else {
            return invalid(None, "a message must be a JSON object");
        };
        let id = m.remove("id");
        let usable_id = id
            .as_ref()
            .filter(|i| i.is_string() || i.is_number())
            .cloned();
        if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return invalid(usable_id, "jsonrpc must be \"2.0\"");
        }
        match m.remove("method") {
            Some(Value::String(method)) => {
                let params = m.remove("params");
                match id {
                    None => {
                        if let Some(Value::Object(p)) = &params {
                            self.handle_notification(&method, p);
                        } else if params.is_none() || params == Some(Value::Null) {
                            self.handle_notification(&method, &Map::new());
                        }
                        finish_element(&self.out, batch, None);
                    }
                    Some(id @ (Value::String(_) | Value::Number(_))) => {
                        let reply = Reply {
                            srv: Arc::clone(self),
                            id,
                            batch: batch.cloned(),
                            done: false,
                        };
                        match params {
                            None | Some(Value::Null) => {
                                self.handle_request(reply, &method, Map::new())
                            }
                            Some(Value::Object(p)) => self.handle_request(reply, &method, p),
                            Some(Value::Array(_)) => reply
                                .err(invalid_params("Invalid params: params must be an object")),
                            Some(_) => reply.err(RpcError::new(
                                INVALID_REQUEST,
                                "Invalid Request: params must be an object",
                            )),
                        }
                    }
                    Some(_) => invalid(None, "id must be a string or a number"),
                }
            }
            Some(_) => invalid(usable_id, "method must be a string"),
            None if m.contains_key("result") || m.contains_key("error") => {
                self.handle_response(id, m);
                finish_element(&self.out, batch, None);
            }
            None => invalid(usable_id, "missing method"),
        }
    }

    /// A response from the client to one of our requests.
    fn handle_response(&self, id: Option<Value>, msg: Map<String, Value>) {
        let task = match &id {
            Some(Value::String(s)) => lock(&self.pending).remove(s),
            _ => None,
        };
        match task {
            Some(t) => t.deliver(msg),
            None => {
                let shown = id.map_or_else(|| "none".to_string(), |i| i.to_string());
                note!("demo: ignoring a response with unknown id {shown}");
            }
        }
    }

    fn handle_notification(&self, method: &str, params: &Map<String, Value>) {
        if method == "notifications/cancelled" {
            if let Some(id @ (Value::String(_) | Value::Number(_))) = params.get("requestId") {
                let task = lock(&self.inflight).get(&id.to_string()).cloned();
                if let Some(t) = task {
                    note!("demo: cancelled request {id}");
                    t.cancel();
                }
            }
        }
        // notifications/initialized, notifications/roots/list_changed and any other
        // notification need no action.
    }

    fn handle_request(self: &Arc<Self>, reply: Reply, method: &str, p: Map<String, Value>) {
        if self.cfg.exit_on_probe && method == "server/discover" {
            note!("demo: exiting on server/discover (--exit-on-probe)");
            std::process::exit(3);
        }
        if self.cfg.protocol != Era::Legacy && method == "server/discover" {
            return reply.ok(&self.discover());
        }
        if self.cfg.protocol == Era::Modern {
            if method == "initialize" {
                return reply.err(RpcError::new(
                    METHOD_NOT_FOUND,
                    "Method not found: initialize (this server speaks only 2026-07-28)",
                ));
            }
            let meta = p.get("_meta");
            let version = meta
                .and_then(|m| m.get(MODERN_VERSION_KEY))
                .and_then(Value::as_str);
            let caps = meta.and_then(|m| m.get("io.modelcontextprotocol/clientCapabilities"));
            if version != Some(MODERN_VERSION) || !caps.is_some_and(Value::is_object) {
                note!("demo: refused {method} without the 2026-07-28 _meta");
                return reply.err(invalid_params(
                    "Invalid params: params._meta must carry io.modelcontextprotocol/protocolVersion 2026-07-28 and clientCapabilities",
                ));
            }
            note!("demo: {method} with the 2026-07-28 _meta");
            if method == "subscriptions/listen" {
                let asked = p.get("notifications").cloned().unwrap_or(json!({}));
                let ack = json!({"_meta": {"io.modelcontextprotocol/subscriptionId": reply.id},
                                 "notifications": asked});
                *lock(&self.listen) = Some((reply.id.clone(), asked));
                self.notify("notifications/subscriptions/acknowledged", Some(ack));
                // The listen request is answered only when the stream ends (never, here).
                return reply.silent();
            }
        }
        match method {
            "ping" => reply.ok(&json!({})),
            "initialize" => self.initialize(reply, &p),
            "tools/list" if self.cfg.protocol == Era::Modern => {
                // One more tool, whose x-mcp-header (on a number) 2026-07-28 clients must refuse.
                let mut tools = self.tools.clone();
                tools.push(
                    json!({"name": "misannotated", "inputSchema": {"type": "object",
                    "properties": {"ratio": {"type": "number", "x-mcp-header": "Ratio"}}}}),
                );
                reply.answer(self.list(&tools, "tools", &p))
            }
            "tools/list" => reply.answer(self.list(&self.tools, "tools", &p)),
            "tools/call" => self.tools_call(reply, &p),
            "resources/list" => reply.answer(self.list(&self.resources, "resources", &p)),
            "resources/templates/list" => {
                reply.answer(self.list(&self.templates, "resourceTemplates", &p))
            }
            "resources/read" => reply.answer(self.read_resource(&p)),
            "resources/subscribe" | "resources/unsubscribe" => {
                reply.answer(self.subscribe(&p, method == "resources/subscribe"))
            }
            "prompts/list" => reply.answer(self.list(&self.prompts, "prompts", &p)),
            "prompts/get" => reply.answer(get_prompt(&p)),
            "completion/complete" => reply.answer(complete(&p)),
            "logging/setLevel" => reply.answer(self.set_level(&p)),
            _ => reply.err(RpcError::new(
                METHOD_NOT_FOUND,
                format!("Method not found: {method}"),
            )),
        }
    }

    // --- lifecycle ---------------------------------------------------------------------

    fn discover(&self) -> Value {
        let mut versions = vec![MODERN_VERSION];
        if self.cfg.protocol == Era::Dual {
            versions.extend(SUPPORTED_VERSIONS);
        }
        json!({
            "resultType": "complete",
            "supportedVersions": versions,
            "capabilities": {
                "tools": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
                "prompts": {"listChanged": true},
                "completions": {}
            },
            "_meta": {"io.modelcontextprotocol/serverInfo":
                {"name": self.name, "version": env!("CARGO_PKG_VERSION")}},
            "ttlMs": 0,
            "cacheScope": "public"
        })
    }

    fn initialize(self: &Arc<Self>, reply: Reply, p: &Map<String, Value>) {
        let Some(requested) = p.get("protocolVersion").and_then(Value::as_str) else {
            return reply.err(invalid_params(
                "Invalid params: protocolVersion must be a string",
            ));
        };
        let version = SUPPORTED_VERSIONS
            .iter()
            .find(|v| **v == requested)
            .copied()
            .unwrap_or(LATEST_VERSION);
        let caps = match p.get("capabilities") {
            Some(Value::Object(c)) => c.clone(),
            _ => Map::new(),
        };
        *lock(&self.client_caps) = caps;
        let result = json!({
            "protocolVersion": version,
            "capabilities": {
                "tools": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
                "prompts": {"listChanged": true},
                "logging": {},
                "completions": {}
            },
            "serverInfo": {"name": self.name, "version": env!("CARGO_PKG_VERSION")},
            "instructions": "Demo MCP server for testing clients and gateways. Tools: echo, \
                add, sleep, fail, crash, progress, big, env, pid, log, roots, sample, elicit, \
                notify_changed, touch (see tools/list). Resources under demo://, prompts \
                greet and summarize."
        });
        let exit = self.cfg.exit_after_init;
        let delay = self.cfg.init_delay_ms;
        if delay == 0 {
            return reply.ok_with(|b| write_json(b, &result), exit);
        }
        let guard = ActiveGuard::new(self);
        let job = Job {
            reply,
            work: Box::new(move |reply| {
                let _guard = guard;
                std::thread::sleep(Duration::from_millis(delay));
                reply.ok_with(|b| write_json(b, &result), exit);
            }),
        };
        if let Err(Job { reply, work }) = self.pool.submit(job) {
            drop(work);
            reply.err(busy());
        }
    }

    /// Stdin reached EOF: fail waits on the client, let running work finish (≤ ~1 s), exit.
    fn shutdown(&self) -> ! {
        self.closed.store(true, Ordering::SeqCst);
        let waiting: Vec<Arc<Task>> = lock(&self.pending).drain().map(|(_, t)| t).collect();
        for t in waiting {
            t.close();
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut n = lock(&self.active);
        while *n > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            n = self
                .active_cv
                .wait_timeout(n, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(n);
        self.out.exit_now(0, SHUTDOWN_GRACE)
    }

    fn set_level(&self, p: &Map<String, Value>) -> Result<Value, RpcError> {
        let level = p
            .get("level")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_params("Invalid params: level must be a string"))?;
        let idx = level_index(level).ok_or_else(|| {
            invalid_params(format!(
                "Invalid params: unknown log level '{level}' (expected one of {})",
                LEVELS.join(", ")
            ))
        })?;
        self.log_level.store(idx, Ordering::Relaxed);
        Ok(json!({}))
    }

    // --- lists -------------------------------------------------------------------------

    fn list(&self, items: &[Value], key: &str, p: &Map<String, Value>) -> Result<Value, RpcError> {
        let cursor = match p.get("cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(invalid_params("Invalid params: cursor must be a string")),
        };
        let (start, end, next) =
            page_bounds(items.len(), self.cfg.page_size, cursor).map_err(invalid_params)?;
        let mut m = Map::new();
        m.insert(key.into(), Value::Array(items[start..end].to_vec()));
        if let Some(n) = next {
            m.insert("nextCursor".into(), n.into());
        }
        if let Some(ttl) = self.cfg.cache_ttl_ms {
            m.insert("ttlMs".into(), ttl.into());
        }
        if self.cfg.cache_private {
            m.insert("cacheScope".into(), "private".into());
        }
        Ok(Value::Object(m))
    }

    // --- resources ---------------------------------------------------------------------

    fn read_resource(&self, p: &Map<String, Value>) -> Result<Value, RpcError> {
        let uri = p
            .get("uri")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_params("Invalid params: uri must be a string"))?;
        let content = match uri {
            README_URI => json!({"uri": uri, "mimeType": "text/markdown", "text": README_TEXT}),
            DATA_URI => json!({"uri": uri, "mimeType": "application/json", "text": DATA_JSON}),
            LOGO_URI => {
                json!({"uri": uri, "mimeType": "image/png", "blob": base64_encode(&LOGO_PNG)})
            }
            _ => match uri.strip_prefix(ECHO_PREFIX) {
                Some(rest) => {
                    json!({"uri": uri, "mimeType": "text/plain", "text": percent_decode(rest)})
                }
                None => {
                    return Err(RpcError {
                        code: RESOURCE_NOT_FOUND,
                        message: "Resource not found".into(),
                        data: Some(json!({"uri": uri})),
                    })
                }
            },
        };
        Ok(json!({"contents": [content]}))
    }

    fn subscribe(&self, p: &Map<String, Value>, on: bool) -> Result<Value, RpcError> {
        let uri = p
            .get("uri")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_params("Invalid params: uri must be a string"))?;
        let mut subs = lock(&self.subscriptions);
        if on {
            subs.insert(uri.to_string());
        } else {
            subs.remove(uri);
        }
        Ok(json!({}))
    }

    // --- tools -------------------------------------------------------------------------

    fn parse_call(&self, name: &str, args: &Map<String, Value>) -> Result<Call, RpcError> {
        if self.offered.contains(&name) {
            parse_builtin(name, args)
        } else if self.cfg.extra_tools.iter().any(|t| t == name) {
            Args {
                tool: name,
                map: args,
            }
            .only(&["text"])?;
            Ok(Call::Echo(
                Args {
                    tool: name,
                    map: args,
                }
                .req_str("text")?
                .to_owned(),
            ))
        } else {
            Err(invalid_params(format!("Unknown tool: {name}")))
        }
    }

    fn tools_call(self: &Arc<Self>, reply: Reply, p: &Map<String, Value>) {
        let Some(name) = p.get("name").and_then(Value::as_str) else {
            return reply.err(invalid_params("Invalid params: name must be a string"));
        };
        let empty = Map::new();
        let args = match p.get("arguments") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(a)) => a,
            Some(_) => {
                return reply.err(invalid_params(format!(
                    "Invalid arguments for tool '{name}': arguments must be an object"
                )))
            }
        };
        let call = match self.parse_call(name, args) {
            Ok(c) => c,
            Err(e) => return reply.err(e),
        };
        if let (Era::Modern, Call::Elicit(message)) = (self.cfg.protocol, &call) {
            return reply.answer(elicit_by_round_trip(message, p));
        }
        let token = p
            .get("_meta")
            .and_then(|m| m.get("progressToken"))
            .filter(|t| t.is_string() || t.is_number())
            .cloned();
        if call.is_blocking() {
            self.spawn_call(reply, call, token);
        } else {
            let result = self.run_instant(call);
            reply.ok(&result);
        }
    }

    fn spawn_call(self: &Arc<Self>, reply: Reply, call: Call, token: Option<Value>) {
        let key = reply.id.to_string();
        let task = Arc::new(Task::default());
        {
            let mut inflight = lock(&self.inflight);
            if inflight.contains_key(&key) {
                drop(inflight);
                return reply.err(RpcError::new(
                    INVALID_REQUEST,
                    format!("Invalid Request: id {key} is already in use by a running request"),
                ));
            }
            inflight.insert(key.clone(), Arc::clone(&task));
        }
        let running = Running {
            srv: Arc::clone(self),
            key,
            task,
            _active: ActiveGuard::new(self),
        };
        let srv = Arc::clone(self);
        let job = Job {
            reply,
            work: Box::new(move |reply| srv.run_blocking(running, reply, call, token)),
        };
        if let Err(Job { reply, work }) = self.pool.submit(job) {
            drop(work); // unregisters the task
            reply.err(busy());
        }
    }

    fn run_instant(&self, call: Call) -> Value {
        match call {
            Call::Echo(text) => text_result(text),
            Call::Add(a, b) => match add_numbers(&a, &b) {
                Some(sum) => json!({
                    "content": [{"type": "text", "text": sum.to_string()}],
                    "structuredContent": {"sum": sum}
                }),
                None => error_result("the sum is not a finite number"),
            },
            Call::Fail(message) => error_result(message),
            Call::Crash(code) => {
                note!("demo: crash tool called; exiting with code {code} without answering");
                self.out.exit_now(code, SHUTDOWN_GRACE)
            }
            Call::Env(name) => {
                let valid = !name.is_empty() && !name.contains(['=', '\0']);
                match std::env::var_os(&name).filter(|_| valid) {
                    Some(v) => text_result(v.to_string_lossy()),
                    None => error_result("not set"),
                }
            }
            Call::Pid => {
                let pid = std::process::id();
                json!({"content": [{"type": "text", "text": pid.to_string()}],
                       "structuredContent": {"pid": pid}})
            }
            Call::Log { message, level } => {
                note!("demo: {message}");
                if level >= self.log_level.load(Ordering::Relaxed) {
                    self.notify(
                        "notifications/message",
                        Some(json!({"level": LEVELS[level as usize], "logger": "demo",
                                    "data": message})),
                    );
                }
                text_result("logged")
            }
            Call::NotifyChanged => {
                if self.cfg.protocol == Era::Modern {
                    // 2026-07-28: only on a subscriptions/listen, only what it asked for.
                    let listen = lock(&self.listen).clone();
                    if let Some((id, asked)) = listen {
                        for (kind, key) in [
                            ("tools", "toolsListChanged"),
                            ("resources", "resourcesListChanged"),
                            ("prompts", "promptsListChanged"),
                        ] {
                            if asked.get(key) == Some(&Value::Bool(true)) {
                                let params = json!({"_meta": {"io.modelcontextprotocol/subscriptionId": id}});
                                self.notify(
                                    &format!("notifications/{kind}/list_changed"),
                                    Some(params),
                                );
                            }
                        }
                    }
                    return text_result("notified");
                }
                for kind in ["tools", "resources", "prompts"] {
                    self.notify(&format!("notifications/{kind}/list_changed"), None);
                }
                text_result("notified")
            }
            Call::Touch(uri) => {
                if lock(&self.subscriptions).contains(&uri) {
                    self.notify("notifications/resources/updated", Some(json!({"uri": uri})));
                }
                text_result("touched")
            }
            // Blocking calls never reach here on the reader thread; run them inline
            // (without cancellation) if they ever do.
            other => self
                .run_waiting(&Arc::new(Task::default()), other, None)
                .unwrap_or_else(|| error_result("cancelled")),
        }
    }

    fn run_blocking(&self, running: Running, reply: Reply, call: Call, token: Option<Value>) {
        if let Call::Big(n) = call {
            if running.begin_reply() {
                reply.ok_with(|b| write_big_result(b, n), false);
            } else {
                reply.silent();
            }
            return;
        }
        match self.run_waiting(&running.task, call, token.as_ref()) {
            Some(v) if running.begin_reply() => reply.ok(&v),
            _ => reply.silent(),
        }
    }

    /// Runs a call that waits; `None` means it was cancelled.
    fn run_waiting(&self, task: &Arc<Task>, call: Call, token: Option<&Value>) -> Option<Value> {
        match call {
            Call::Sleep(ms) => task
                .sleep(Duration::from_millis(ms))
                .then(|| text_result(format!("slept {ms} ms"))),
            Call::Progress { steps, interval_ms } => {
                for i in 1..=steps {
                    if !task.sleep(Duration::from_millis(interval_ms)) {
                        return None;
                    }
                    if let Some(t) = token {
                        self.notify(
                            "notifications/progress",
                            Some(json!({"progressToken": t, "progress": i, "total": steps,
                                        "message": format!("step {i} of {steps}")})),
                        );
                    }
                }
                Some(text_result(format!("done {steps} steps")))
            }
            Call::Big(n) => {
                let mut buf = Vec::new();
                write_big_result(&mut buf, n);
                serde_json::from_slice(&buf).ok()
            }
            Call::Roots => {
                if !self.client_supports("roots") {
                    return Some(error_result("client does not support roots"));
                }
                self.ask_client(task, "roots/list", None)
                    .map(|r| r.map_or_else(error_result, |v| text_result(v.to_string())))
            }
            Call::Sample(prompt) => {
                if !self.client_supports("sampling") {
                    return Some(error_result("client does not support sampling"));
                }
                let params = json!({
                    "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
                    "maxTokens": 100
                });
                self.ask_client(task, "sampling/createMessage", Some(params))
                    .map(|r| match r {
                        Ok(v) => text_result(sampled_text(&v).unwrap_or_else(|| v.to_string())),
                        Err(e) => error_result(e),
                    })
            }
            Call::Elicit(message) => {
                if !self.client_supports("elicitation") {
                    return Some(error_result("client does not support elicitation"));
                }
                let params = json!({
                    "message": message,
                    "requestedSchema": {"type": "object",
                                        "properties": {"answer": {"type": "string"}}}
                });
                self.ask_client(task, "elicitation/create", Some(params))
                    .map(|r| r.map_or_else(error_result, |v| text_result(v.to_string())))
            }
            other => Some(self.run_instant(other)),
        }
    }

    /// Did the client declare this capability in initialize? For elicitation, form mode
    /// is needed (an empty object means form mode).
    fn client_supports(&self, cap: &str) -> bool {
        let caps = lock(&self.client_caps);
        match caps.get(cap) {
            Some(Value::Object(o)) if cap == "elicitation" => {
                o.is_empty() || o.contains_key("form")
            }
            Some(Value::Object(_)) => true,
            _ => false,
        }
    }

    /// Sends a request to the client and waits for its response. `None`: cancelled.
    fn ask_client(
        &self,
        task: &Arc<Task>,
        method: &str,
        params: Option<Value>,
    ) -> Option<Result<Value, String>> {
        let id = format!("s-{}", self.next_request.fetch_add(1, Ordering::SeqCst) + 1);
        task.clear_reply();
        lock(&self.pending).insert(id.clone(), Arc::clone(task));
        if self.closed.load(Ordering::SeqCst) {
            lock(&self.pending).remove(&id);
            return Some(Err(format!(
                "the client closed its input; {method} not sent"
            )));
        }
        self.out
            .write(request_message(&id, method, params), false, false);
        let timeout = Duration::from_millis(self.cfg.request_timeout_ms);
        let outcome = task.wait_reply(Instant::now() + timeout);
        lock(&self.pending).remove(&id);
        let tell_client = |reason: &str| {
            self.notify(
                "notifications/cancelled",
                Some(json!({"requestId": id, "reason": reason})),
            );
        };
        match outcome {
            Wait::Reply(msg) => Some(match (msg.get("error"), msg.get("result")) {
                (Some(e), _) => Err(format!("the client answered {method} with an error: {e}")),
                (None, Some(r)) => Ok(r.clone()),
                (None, None) => Err(format!("the client's answer to {method} has no result")),
            }),
            Wait::Cancelled => {
                tell_client("the tools/call that needed it was cancelled");
                None
            }
            Wait::TimedOut => {
                tell_client("timed out");
                Some(Err(format!(
                    "timed out after {} ms waiting for the client to answer {method}",
                    timeout.as_millis()
                )))
            }
            Wait::Closed => Some(Err(format!(
                "the client closed its input before answering {method}"
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Prompts and completion
// ---------------------------------------------------------------------------------------

/// `elicit` in the 2026-07-28 era (`--protocol modern`): the server cannot ask, so it answers
/// `input_required` with its request and a state, and the client's retry carries the answer.
fn elicit_by_round_trip(message: &str, p: &Map<String, Value>) -> Result<Value, RpcError> {
    const STATE: &str = "demo-elicit-state";
    let Some(answer) = p.get("inputResponses").and_then(|r| r.get("answer")) else {
        return Ok(json!({
            "resultType": "input_required",
            "inputRequests": {"answer": {"method": "elicitation/create", "params": {
                "message": message,
                "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}}
            }}},
            "requestState": STATE
        }));
    };
    if p.get("requestState").and_then(Value::as_str) != Some(STATE) {
        return Err(invalid_params(
            "Invalid params: requestState was not issued by this server",
        ));
    }
    Ok(text_result(answer.to_string()))
}

fn get_prompt(p: &Map<String, Value>) -> Result<Value, RpcError> {
    let name = p
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params("Invalid params: name must be a string"))?;
    let empty = Map::new();
    let args = match p.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(a)) => a,
        Some(_) => {
            return Err(invalid_params(
                "Invalid params: arguments must be an object",
            ))
        }
    };
    let allowed: &[&str] = match name {
        "greet" => &["name"],
        "summarize" => &["text", "style"],
        _ => return Err(invalid_params(format!("Unknown prompt: {name}"))),
    };
    for (k, v) in args {
        if !allowed.contains(&k.as_str()) {
            return Err(invalid_params(format!(
                "Invalid arguments for prompt '{name}': unknown argument '{k}'"
            )));
        }
        if !v.is_string() {
            return Err(invalid_params(format!(
                "Invalid arguments for prompt '{name}': '{k}' must be a string"
            )));
        }
    }
    let arg = |k: &str| args.get(k).and_then(Value::as_str);
    let required = |k: &str| {
        arg(k).ok_or_else(|| {
            invalid_params(format!(
                "Invalid arguments for prompt '{name}': missing required argument '{k}'"
            ))
        })
    };
    let (description, text) = match name {
        "greet" => {
            let who = required("name")?;
            (
                format!("A warm greeting for {who}"),
                format!("Please greet {who} warmly."),
            )
        }
        _ => {
            let text = required("text")?;
            let body = match arg("style") {
                None => format!("Please summarize the following text:\n\n{text}"),
                Some(s) if STYLES.contains(&s) => {
                    format!("Please write a {s} summary of the following text:\n\n{text}")
                }
                Some(_) => {
                    let why = "'style' must be \"short\" or \"long\"";
                    return Err(invalid_params(format!(
                        "Invalid arguments for prompt '{name}': {why}"
                    )));
                }
            };
            ("A request to summarize a text".to_string(), body)
        }
    };
    Ok(json!({
        "description": description,
        "messages": [{"role": "user", "content": {"type": "text", "text": text}}]
    }))
}

fn complete(p: &Map<String, Value>) -> Result<Value, RpcError> {
    let r = p
        .get("ref")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid_params("Invalid params: ref must be an object"))?;
    let arg = p
        .get("argument")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid_params("Invalid params: argument must be an object"))?;
    let ref_type = r.get("type").and_then(Value::as_str).unwrap_or("");
    let ident_key = if ref_type == "ref/resource" {
        "uri"
    } else {
        "name"
    };
    let ident = r.get(ident_key).and_then(Value::as_str).unwrap_or("");
    let arg_name = arg
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params("Invalid params: argument.name must be a string"))?;
    let value = arg
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_params("Invalid params: argument.value must be a string"))?;
    let values = completion_values(ref_type, ident, arg_name, value).map_err(invalid_params)?;
    Ok(json!({"completion": {"values": values, "total": values.len(), "hasMore": false}}))
}

// ---------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------

fn main() {
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(a) => {
                note!("mcp-demo-server: argument is not valid UTF-8: {a:?}\n\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let cfg = match parse_args(args) {
        Ok(Cli::Run(cfg)) => cfg,
        Ok(Cli::Help) => {
            print!("{USAGE}");
            return;
        }
        Ok(Cli::Version) => {
            println!("mcp-demo-server {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        Err(msg) => {
            note!("mcp-demo-server: {msg}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Some(code) = cfg.exit_at_start {
        note!("demo: --exit-at-start given; exiting with code {code}");
        std::process::exit(code);
    }
    for i in 1..=cfg.stderr_lines {
        note!("demo: starting line {i}");
    }
    let srv = Server::new(cfg);
    for banner in &srv.cfg.banners {
        srv.out.write_raw_line(banner);
    }

    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut buf = Vec::with_capacity(8192);
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                note!("demo: cannot read stdin: {e}");
                break;
            }
        }
        let line = buf.trim_ascii();
        if !line.is_empty() {
            srv.handle_line(line);
        }
        if buf.capacity() > 1 << 20 {
            buf = Vec::with_capacity(8192);
        }
    }
    srv.shutdown();
}

// ---------------------------------------------------------------------------------------
// Unit tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Cli, String> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    fn run_cfg(v: &[&str]) -> Config {
        match args(v) {
            Ok(Cli::Run(c)) => c,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parses_defaults_and_flags() {
        let c = run_cfg(&[]);
        assert_eq!(c, Config::new());
        assert_eq!(c.request_timeout_ms, 30_000);
        assert_eq!(c.offered_builtins().len(), BUILTIN_TOOLS.len());

        let c = run_cfg(&[
            "--banner",
            "hello",
            "--banner=two words",
            "--junk-every",
            "3",
            "--init-delay=50",
            "--exit-at-start",
            "7",
            "--exit-after-init",
            "--stderr-lines",
            "4",
            "--page-size",
            "2",
            "--extra-tool",
            "a.b",
            "--extra-tool=echo2",
            "--tools",
            "echo, add,,echo",
            "--name",
            "x",
            "--request-timeout",
            "100",
        ]);
        assert_eq!(c.banners, vec!["hello", "two words"]);
        assert_eq!(c.junk_every, 3);
        assert_eq!(c.init_delay_ms, 50);
        assert_eq!(c.exit_at_start, Some(7));
        assert!(c.exit_after_init);
        assert_eq!(c.stderr_lines, 4);
        assert_eq!(c.page_size, 2);
        assert_eq!(c.extra_tools, vec!["a.b", "echo2"]);
        assert_eq!(c.tools, Some(vec!["echo".to_string(), "add".to_string()]));
        assert_eq!(c.offered_builtins(), vec!["echo", "add"]);
        assert_eq!(c.name.as_deref(), Some("x"));
        assert_eq!(c.request_timeout_ms, 100);
    }

    #[test]
    fn rejects_bad_flags() {
        assert!(args(&["--nope"]).is_err());
        assert!(args(&["positional"]).is_err());
        assert!(args(&["--page-size"]).is_err());
        assert!(args(&["--page-size", "x"]).is_err());
        assert!(args(&["--junk-every", "-1"]).is_err());
        assert!(args(&["--exit-after-init=1"]).is_err());
        assert!(args(&["--tools", "echo,nope"]).is_err());
        assert!(args(&["--extra-tool", ""]).is_err());
        assert!(args(&["--extra-tool", "echo"]).is_err());
        assert!(args(&["--extra-tool", "x", "--extra-tool", "x"]).is_err());
        // No collision once echo is not offered.
        assert!(args(&["--tools", "add", "--extra-tool", "echo"]).is_ok());
        assert_eq!(args(&["--help"]), Ok(Cli::Help));
        assert_eq!(args(&["-V"]), Ok(Cli::Version));
    }

    #[test]
    fn pagination() {
        assert_eq!(page_bounds(5, 0, None), Ok((0, 5, None)));
        assert_eq!(page_bounds(5, 2, None), Ok((0, 2, Some("2".into()))));
        assert_eq!(page_bounds(5, 2, Some("2")), Ok((2, 4, Some("4".into()))));
        assert_eq!(page_bounds(5, 2, Some("4")), Ok((4, 5, None)));
        assert_eq!(page_bounds(4, 2, Some("2")), Ok((2, 4, None)));
        assert_eq!(page_bounds(0, 2, None), Ok((0, 0, None)));
        assert_eq!(page_bounds(5, 10, None), Ok((0, 5, None)));
        for bad in ["", "0", "5", "9", "-1", "+2", "02", "x", "2.0"] {
            assert!(page_bounds(5, 2, Some(bad)).is_err(), "{bad}");
        }
        assert!(page_bounds(5, 0, Some("2")).is_err());
    }

    #[test]
    fn completion_filtering() {
        let c = |t, i, a, p| completion_values(t, i, a, p);
        assert_eq!(c("ref/prompt", "greet", "name", ""), Ok(NAMES.to_vec()));
        assert_eq!(c("ref/prompt", "greet", "name", "c"), Ok(vec!["carol"]));
        assert_eq!(c("ref/prompt", "greet", "name", "C"), Ok(vec![]));
        assert_eq!(c("ref/prompt", "greet", "name", "zz"), Ok(vec![]));
        assert_eq!(c("ref/prompt", "greet", "other", ""), Ok(vec![]));
        assert_eq!(c("ref/prompt", "summarize", "style", "l"), Ok(vec!["long"]));
        assert_eq!(
            c("ref/resource", ECHO_TEMPLATE, "text", "w"),
            Ok(vec!["world"])
        );
        assert_eq!(
            c("ref/resource", ECHO_TEMPLATE, "text", ""),
            Ok(vec!["hello", "world"])
        );
        assert!(c("ref/prompt", "nope", "name", "").is_err());
        assert!(c("ref/resource", README_URI, "text", "").is_err());
        assert!(c("ref/other", "greet", "name", "").is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("hello"), "hello");
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("%E2%82%AC%2f"), "€/");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
        assert_eq!(percent_decode(""), "");
    }

    #[test]
    fn base64() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
        assert_eq!(base64_encode(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(&[0xff, 0xfe, 0xfd]), "//79");
        assert_eq!(
            base64_encode(&LOGO_PNG),
            "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAYAAACp8Z5+AAAAGElEQVR42mOQ63j6HwRgNAMyB0QzEFQBAOL+NDGuRfIKAAAAAElFTkSuQmCC"
        );
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn logo_is_a_valid_png() {
        assert_eq!(&LOGO_PNG[..8], b"\x89PNG\r\n\x1a\n");
        let mut pos = 8;
        let mut kinds = Vec::new();
        while pos < LOGO_PNG.len() {
            let len = u32::from_be_bytes(LOGO_PNG[pos..pos + 4].try_into().unwrap()) as usize;
            let body = &LOGO_PNG[pos + 4..pos + 8 + len];
            let crc =
                u32::from_be_bytes(LOGO_PNG[pos + 8 + len..pos + 12 + len].try_into().unwrap());
            assert_eq!(crc32(body), crc);
            kinds.push(String::from_utf8(body[..4].to_vec()).unwrap());
            pos += 12 + len;
        }
        assert_eq!(pos, LOGO_PNG.len());
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
    }

    #[test]
    fn adding() {
        let n = |v: Value| match v {
            Value::Number(n) => n,
            _ => unreachable!(),
        };
        let sum = |a: Value, b: Value| add_numbers(&n(a), &n(b)).map(Value::Number);
        assert_eq!(sum(json!(2), json!(3)), Some(json!(5)));
        assert_eq!(sum(json!(-2), json!(3)), Some(json!(1)));
        assert_eq!(sum(json!(1.5), json!(2)), Some(json!(3.5)));
        assert_eq!(sum(json!(u64::MAX), json!(-1)), Some(json!(u64::MAX - 1)));
        assert_eq!(
            sum(json!(i64::MIN), json!(-1)),
            Some(json!(-9.223372036854776e18))
        );
        assert_eq!(sum(json!(1.7e308), json!(1.7e308)), None);
        assert_eq!(
            serde_json::to_string(&sum(json!(2), json!(3))).unwrap(),
            "5"
        );
    }

    #[test]
    fn big_output() {
        for n in [0usize, 1, 35, 36, 37, 72, 100, 1000, 65_537] {
            let mut buf = Vec::new();
            write_big_result(&mut buf, n);
            let v: Value = serde_json::from_slice(&buf).unwrap();
            let text = v["content"][0]["text"].as_str().unwrap();
            assert_eq!(text.len(), n);
            for (i, b) in text.bytes().enumerate() {
                assert_eq!(b, BIG_PATTERN[i % BIG_PATTERN.len()]);
            }
        }
    }

    #[test]
    fn tool_arguments() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            parse_builtin("echo", &m(json!({"text": "hi"}))),
            Ok(Call::Echo("hi".into()))
        );
        let e = parse_builtin("echo", &m(json!({}))).unwrap_err();
        assert_eq!(e.code, INVALID_PARAMS);
        assert!(e.message.contains("'text'"), "{}", e.message);
        let e = parse_builtin("echo", &m(json!({"text": 1}))).unwrap_err();
        assert!(e.message.contains("'text'"));
        let e = parse_builtin("echo", &m(json!({"text": "x", "more": 1}))).unwrap_err();
        assert!(e.message.contains("'more'"));
        assert_eq!(
            parse_builtin("sleep", &m(json!({"ms": 5}))),
            Ok(Call::Sleep(5))
        );
        assert_eq!(
            parse_builtin("sleep", &m(json!({"ms": 5.0}))),
            Ok(Call::Sleep(5))
        );
        for bad in [
            json!(-1),
            json!(600_001),
            json!(1.5),
            json!("5"),
            json!(u64::MAX),
        ] {
            let e = parse_builtin("sleep", &m(json!({ "ms": bad }))).unwrap_err();
            assert!(e.message.contains("'ms'"), "{}", e.message);
        }
        assert_eq!(
            parse_builtin("progress", &m(json!({}))),
            Ok(Call::Progress {
                steps: 5,
                interval_ms: 10
            })
        );
        assert!(parse_builtin("progress", &m(json!({"steps": 0}))).is_err());
        assert_eq!(
            parse_builtin("fail", &m(json!({"message": null}))),
            Ok(Call::Fail(DEFAULT_FAIL_MESSAGE.into()))
        );
        assert_eq!(parse_builtin("crash", &m(json!({}))), Ok(Call::Crash(1)));
        assert!(parse_builtin("crash", &m(json!({"code": 256}))).is_err());
        assert_eq!(
            parse_builtin("log", &m(json!({"message": "m", "level": "error"}))),
            Ok(Call::Log {
                message: "m".into(),
                level: 4
            })
        );
        let e = parse_builtin("log", &m(json!({"message": "m", "level": "loud"}))).unwrap_err();
        assert!(e.message.contains("'level'"));
        assert!(parse_builtin("big", &m(json!({"bytes": MAX_BIG_BYTES + 1}))).is_err());
        assert!(parse_builtin("add", &m(json!({"a": 1, "b": "2"}))).is_err());
        assert!(parse_builtin("pid", &m(json!({"x": 1}))).is_err());
        let e = parse_builtin("nope", &m(json!({}))).unwrap_err();
        assert_eq!(e.message, "Unknown tool: nope");
    }

    #[test]
    fn tool_definitions_are_well_formed() {
        for name in BUILTIN_TOOLS {
            let d = builtin_tool_def(name);
            assert_eq!(d["name"], name);
            assert!(d["description"].is_string());
            assert_eq!(d["inputSchema"]["type"], "object");
            assert!(d["inputSchema"]["properties"].is_object());
            assert_eq!(d.get("outputSchema").is_some(), name == "add");
        }
        let e = extra_tool_def("x.y");
        assert!(e.get("title").is_none() && e.get("annotations").is_none());
    }

    #[test]
    fn prompts_and_completion_requests() {
        let m = |v: Value| v.as_object().unwrap().clone();
        let r = get_prompt(&m(json!({"name": "greet", "arguments": {"name": "Ann"}}))).unwrap();
        assert_eq!(
            r["messages"][0]["content"]["text"],
            "Please greet Ann warmly."
        );
        let e = get_prompt(&m(json!({"name": "greet"}))).unwrap_err();
        assert!(e.message.contains("'name'"));
        let e = get_prompt(&m(
            json!({"name": "summarize", "arguments": {"text": "t", "style": "x"}}),
        ))
        .unwrap_err();
        assert!(e.message.contains("'style'"));
        assert!(get_prompt(&m(json!({"name": "nope"}))).is_err());
        let r = complete(&m(json!({"ref": {"type": "ref/prompt", "name": "greet"},
                                    "argument": {"name": "name", "value": "b"}})))
        .unwrap();
        assert_eq!(
            r,
            json!({"completion": {"values": ["bob"], "total": 1, "hasMore": false}})
        );
    }

    #[test]
    fn sampling_text() {
        assert_eq!(
            sampled_text(&json!({"content": {"type": "text", "text": "hi"}})),
            Some("hi".into())
        );
        assert_eq!(
            sampled_text(&json!({"content": [{"type": "text", "text": "a"},
                                             {"type": "image", "data": ""},
                                             {"type": "text", "text": "b"}]})),
            Some("a\nb".into())
        );
        assert_eq!(sampled_text(&json!({"content": {"type": "image"}})), None);
    }

    #[test]
    fn error_and_notification_shapes() {
        let e = RpcError {
            code: RESOURCE_NOT_FOUND,
            message: "Resource not found".into(),
            data: Some(json!({"uri": "x"})),
        };
        let v: Value = serde_json::from_slice(&error_message(&json!("1"), &e)).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc": "2.0", "id": "1",
                   "error": {"code": -32002, "message": "Resource not found", "data": {"uri": "x"}}})
        );
        let n: Value = serde_json::from_slice(&notification_message("a/b", None)).unwrap();
        assert_eq!(n, json!({"jsonrpc": "2.0", "method": "a/b"}));
    }
}
