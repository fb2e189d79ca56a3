//! `mcp-gateway bridge`: a stdio MCP server that relays everything to a running gateway, for
//! clients that can only launch stdio servers (Claude Desktop, many IDE plugins).
//!
//! A faithful relay, not a re-implementation: the client's own `initialize` goes to the gateway
//! and the gateway's answer comes back; every other message passes through with its id
//! untouched. The bridge only speaks for itself when a request cannot be served (an error with
//! the request's id) or a line is not JSON-RPC (an error with a null id).
//!
//! ```text
//!  client ──stdin──▶ [stdin thread] ─ request ──▶ [one thread per request] ── POST ──▶ gateway
//!                     lines → peek    notification/response: POST, in order      answer: JSON or SSE
//!  client ◀─stdout── Client (one writer, flights table) ◀── messages ─────────────────┘
//!                                 ▲
//!                     [keeper thread] ── GET stream (server→client), reconnect + re-initialize
//!  [main thread] waits for stdin EOF (or stdout closed), DELETEs the session, exits 0
//! ```
//!
//! Files:
//! - `lines`: sans-IO framing of stdin (split/merged reads, split UTF-8, blank lines, limits);
//! - `message`: reading a message's kind, id and params without copying it; errors;
//! - `client`: stdout and the client's requests in flight (one answer per request);
//! - `transport`: the gateway over HTTP (Streamable HTTP, legacy SSE fallback), on the
//!   gateway's own HTTP client (`downstream::remote::conn`);
//! - `link`: the session, its generations, reconnecting and re-initializing, the keeper thread.

mod client;
pub mod lines;
mod link;
mod message;
mod transport;

use crate::downstream::remote::url::Url;
use crate::rpc::codes;
use client::{Client, Stop};
use lines::{Line, Lines};
use link::Link;
use message::Kind;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// The gateway's MCP endpoint when neither the command line nor `MCP_GATEWAY_URL` names one.
pub const DEFAULT_URL: &str = "http://127.0.0.1:4298/mcp";
/// Largest message the client may send (the gateway's own limit is usually far lower).
const MAX_LINE_BYTES: usize = 128 << 20;
/// Stack of a request's thread: they only relay bytes.
const CALL_STACK_BYTES: usize = 512 << 10;
/// Default for `--reconnect-timeout`.
const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `mcp-gateway bridge` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub url: Url,
    pub token: Option<String>,
    /// How long a message waits for the gateway (at start, or after losing it).
    pub reconnect_timeout: Duration,
}

impl Options {
    /// `[URL] [--token TOKEN] [--reconnect-timeout MS]`, with `MCP_GATEWAY_URL` and
    /// `MCP_GATEWAY_TOKEN` as defaults. Errors are usage errors, in words.
    pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Options, String> {
        let mut url = None;
        let mut token = env("MCP_GATEWAY_TOKEN").filter(|t| !t.is_empty());
        let mut reconnect_timeout = DEFAULT_RECONNECT_TIMEOUT;
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
                _ => (arg.as_str(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| iter.next().cloned())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match flag {
                "--token" => token = Some(value("--token")?).filter(|t| !t.is_empty()),
                "--reconnect-timeout" => {
                    let raw = value("--reconnect-timeout")?;
                    let ms: u64 = raw.parse().map_err(|_| {
                        format!("--reconnect-timeout takes milliseconds, not {raw:?}")
                    })?;
                    reconnect_timeout = Duration::from_millis(ms);
                }
                flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
                _ if url.is_none() => url = Some(arg.clone()),
                _ => return Err(format!("unexpected argument {arg}")),
            }
        }
        let url = url
            .or_else(|| env("MCP_GATEWAY_URL").filter(|u| !u.is_empty()))
            .unwrap_or_else(|| DEFAULT_URL.to_string());
        Ok(Options {
            url: Url::parse(&url)?,
            token,
            reconnect_timeout,
        })
    }
}

/// Runs the bridge until the client closes stdin (or stdout); then ends the session.
pub fn run(options: Options) -> Result<(), String> {
    let http = transport::Http::new(options.url, options.token.as_deref())?;
    let (stop_tx, stop_rx) = crossbeam_channel::unbounded();
    let client = Arc::new(Client::new(Box::new(std::io::stdout()), stop_tx.clone()));
    let link = Arc::new(Link::new(http, client.clone(), options.reconnect_timeout));
    {
        let link = link.clone();
        spawn("bridge-keeper", move || link.keep_up())?;
    }
    {
        let link = link.clone();
        spawn("bridge-stdin", move || {
            read_stdin(&client, &link);
            let _ = stop_tx.send(Stop::StdinClosed);
        })?;
    }
    let why = stop_rx.recv().unwrap_or(Stop::StdinClosed);
    log::debug!("stopping: {why:?}");
    link.close();
    Ok(())
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<(), String> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(CALL_STACK_BYTES)
        .spawn(body)
        .map(drop)
        .map_err(|e| format!("cannot start a thread: {e}"))
}

/// Reads the client's messages until stdin ends.
fn read_stdin(client: &Arc<Client>, link: &Arc<Link>) {
    let mut lines = Lines::new(MAX_LINE_BYTES);
    let mut buf = vec![0u8; 64 << 10];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                for line in lines.feed(&buf[..n]) {
                    dispatch(line, client, link);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::warn!("stdin: {e}");
                break;
            }
        }
    }
    if let Some(line) = lines.finish() {
        dispatch(line, client, link);
    }
}

/// One message from the client: a request goes out on its own thread; notifications and
/// responses are posted now, in order.
fn dispatch(line: Line, client: &Arc<Client>, link: &Arc<Link>) {
    let bytes = match line {
        Line::Message(bytes) => bytes,
        Line::TooLong(n) => {
            let why = format!(
                "Invalid Request: a message of {n} bytes or more is larger than the bridge accepts ({MAX_LINE_BYTES} bytes)"
            );
            return client.refuse(codes::INVALID_REQUEST, &why);
        }
    };
    let peeked = match message::peek(&bytes) {
        Ok(peeked) => peeked,
        Err(unusable) => return client.refuse(unusable.code, &unusable.message),
    };
    match peeked.kind {
        Kind::Request { id, method } => {
            client.begin(id.clone());
            link.remember(&method, peeked.params.as_deref());
            let (task_link, task_id) = (link.clone(), id.clone());
            let started = spawn("bridge-call", move || {
                if method == "initialize" {
                    task_link.initialize(&task_id, &bytes, peeked.params);
                } else {
                    task_link.request(&task_id, &bytes);
                }
            });
            if let Err(why) = started {
                client.fail(&id, codes::INTERNAL_ERROR, &why);
            }
        }
        Kind::Notification { method } if method == "notifications/cancelled" => {
            // No answer may reach the client once it cancelled, not even the gateway's reaction
            // to the cancellation; the call's connection closes only after the gateway knows.
            let closer =
                message::cancelled_id(peeked.params.as_deref()).and_then(|id| client.cancel(&id));
            link.notify(&bytes);
            if let Some(closer) = closer {
                closer.shutdown();
            }
        }
        Kind::Notification { .. } => link.notify(&bytes),
        Kind::Response { .. } => link.notify(&bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Options, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env = |key: &str| {
            env.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        };
        Options::parse(&args, &env)
    }

    #[test]
    fn url_from_the_argument_else_the_environment_else_the_default() {
        assert_eq!(parse(&[], &[]).unwrap().url.to_string(), DEFAULT_URL);
        let env = [("MCP_GATEWAY_URL", "http://10.0.0.1:9/mcp")];
        assert_eq!(
            parse(&[], &env).unwrap().url.to_string(),
            "http://10.0.0.1:9/mcp"
        );
        assert_eq!(
            parse(&["https://gw.example/mcp"], &env)
                .unwrap()
                .url
                .to_string(),
            "https://gw.example/mcp"
        );
    }

    #[test]
    fn token_from_the_flag_else_the_environment() {
        let env = [("MCP_GATEWAY_TOKEN", "from-env")];
        assert_eq!(parse(&[], &env).unwrap().token.as_deref(), Some("from-env"));
        assert_eq!(
            parse(&["--token", "flag"], &env).unwrap().token.as_deref(),
            Some("flag")
        );
        assert_eq!(parse(&["--token="], &env).unwrap().token, None);
        assert_eq!(parse(&[], &[]).unwrap().token, None);
    }

    #[test]
    fn usage_errors() {
        assert!(parse(&["--nope"], &[]).is_err());
        assert!(parse(&["a", "b"], &[]).is_err());
        assert!(parse(&["ftp://x/"], &[]).unwrap_err().contains("scheme"));
        assert!(parse(&["--token"], &[]).is_err());
        assert!(parse(&["--reconnect-timeout", "soon"], &[]).is_err());
        assert_eq!(
            parse(&["--reconnect-timeout=250"], &[])
                .unwrap()
                .reconnect_timeout,
            Duration::from_millis(250)
        );
    }
}
