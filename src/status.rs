//! `mcp-gateway status [URL]`: what a running gateway is doing, as a table, from its `/health`.
//!
//! The request goes through the same blocking HTTP client as remote servers (`downstream::remote`),
//! bounded by a deadline; the token comes from `--token` or `$MCP_GATEWAY_TOKEN` (without one, a
//! gateway that has `authToken` set tells only its status, and this says so). Rendering is a pure
//! function of the health document, tested without a gateway.

use crate::downstream::remote::conn::Conn;
use crate::downstream::remote::url::Url;
use serde_json::Value;
use std::fmt::Write;
use std::time::{Duration, Instant};

const DEFAULT_URL: &str = "http://127.0.0.1:4298";
const DEADLINE: Duration = Duration::from_secs(5);
const MAX_BODY: usize = 4 * 1024 * 1024;

/// What `status` was asked.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub url: String,
    pub token: Option<String>,
}

impl Options {
    pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Options, String> {
        let mut url = None;
        let mut token = env("MCP_GATEWAY_TOKEN").filter(|t| !t.is_empty());
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if let Some(value) = arg.strip_prefix("--token=") {
                token = Some(value.to_string());
            } else if arg == "--token" {
                token = Some(it.next().ok_or("--token needs a value")?.clone());
            } else if arg.starts_with('-') {
                return Err(format!("unknown option {arg}"));
            } else if url.is_none() {
                url = Some(arg.clone());
            } else {
                return Err(format!("unexpected argument {arg}"));
            }
        }
        let url = url
            .or_else(|| env("MCP_GATEWAY_URL").filter(|u| !u.is_empty()))
            .unwrap_or_else(|| DEFAULT_URL.to_string());
        Ok(Options { url, token })
    }
}

/// Fetches `/health` and prints the table. Errors are sentences for the user.
pub fn run(options: &Options) -> Result<String, String> {
    let health = fetch_health(options)?;
    Ok(render(&options.url, &health))
}

/// The gateway's `/health` document (the full one when the token is right).
pub fn fetch_health(options: &Options) -> Result<Value, String> {
    let base = Url::parse(&options.url).map_err(|e| format!("{}: {e}", options.url))?;
    let url = base
        .join("/health")
        .map_err(|e| format!("{}: {e}", options.url))?;
    if url.tls {
        return Err("status speaks plain http to the gateway (it serves no https)".into());
    }
    let deadline = Instant::now() + DEADLINE;
    let mut conn = Conn::connect(&url, None, deadline)
        .map_err(|e| format!("cannot reach the gateway at {}: {e}", options.url))?;
    let auth = options.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Accept", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    let head = conn
        .send("GET", &url.path, &headers, b"", deadline)
        .map_err(|e| format!("GET {}/health: {e}", options.url))?;
    let body = conn
        .read_body(&head, MAX_BODY, deadline)
        .map_err(|e| format!("GET {}/health: {e}", options.url))?;
    serde_json::from_slice(&body)
        .map_err(|e| format!("{}/health did not answer JSON: {e}", options.url))
}

/// The table for a health document.
pub fn render(url: &str, health: &Value) -> String {
    let mut out = String::new();
    let status = health["status"].as_str().unwrap_or("?");
    let Some(servers) = health["servers"].as_array() else {
        let _ = writeln!(
            out,
            "mcp-gateway at {url}: {status}\n(the gateway has authToken set: give --token or \
             $MCP_GATEWAY_TOKEN for the rest)"
        );
        return out;
    };
    let by = &health["sessionsByTransport"];
    let _ = writeln!(
        out,
        "mcp-gateway {} at {url}: {status}, up {}, {} sessions ({} Streamable HTTP, {} legacy SSE), \
         {} calls in flight, {} tools",
        health["version"].as_str().unwrap_or("?"),
        uptime(health["uptimeSeconds"].as_u64().unwrap_or(0)),
        health["sessions"].as_u64().unwrap_or(0),
        by["streamableHttp"].as_u64().unwrap_or(0),
        by["legacySse"].as_u64().unwrap_or(0),
        health["inFlight"].as_u64().unwrap_or(0),
        health["tools"].as_u64().unwrap_or(0),
    );
    let mut rows = vec![[
        "SERVER",
        "STATUS",
        "PROCESSES",
        "IN FLIGHT",
        "CALLS",
        "FAILED",
        "RESTARTS",
        "NEXT RETRY",
        "LAST ERROR",
    ]
    .map(String::from)
    .to_vec()];
    for server in servers {
        let pool = &server["pool"];
        let handles = pool["handles"].as_array().cloned().unwrap_or_default();
        let processes = if server["type"] == "remote" {
            format!("{} sessions", handles.len())
        } else if handles.is_empty() {
            "0".to_string()
        } else {
            handles
                .iter()
                .map(|h| match (h["pid"].as_u64(), h["rssBytes"].as_u64()) {
                    (Some(pid), Some(rss)) => format!("{pid} ({} MiB)", rss.div_ceil(1 << 20)),
                    (Some(pid), None) => pid.to_string(),
                    _ => "?".to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let next = server["nextRetryMs"]
            .as_u64()
            .map_or("-".to_string(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
        let error = server["lastError"].as_str().unwrap_or("-");
        rows.push(vec![
            server["name"].as_str().unwrap_or("?").to_string(),
            server["status"].as_str().unwrap_or("?").to_string(),
            processes,
            pool["inFlight"].as_u64().unwrap_or(0).to_string(),
            server["calls"].as_u64().unwrap_or(0).to_string(),
            server["failedCalls"].as_u64().unwrap_or(0).to_string(),
            server["restarts"].as_u64().unwrap_or(0).to_string(),
            next,
            error.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let profiles = health["profiles"].as_array().cloned().unwrap_or_default();
    if profiles.len() > 1 || profiles.iter().any(|p| p["name"] != "default") {
        let list: Vec<String> = profiles
            .iter()
            .map(|p| {
                format!(
                    "{} ({} tools, ~{} tokens listed{})",
                    p["name"].as_str().unwrap_or("?"),
                    p["tools"].as_u64().unwrap_or(0),
                    p["listedTokens"].as_u64().unwrap_or(0),
                    if p["listed"] == "search" {
                        ", search"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        let _ = writeln!(out, "profiles: {}", list.join(", "));
    }
    for change in health["changedTools"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "changed tool: {}/{} ({}{})",
            change["server"].as_str().unwrap_or("?"),
            change["tool"].as_str().unwrap_or("?"),
            change["change"].as_str().unwrap_or("changed"),
            if change["held"] == true {
                ", withheld until `mcp-gateway approve`"
            } else {
                ""
            }
        );
    }
    if let Some(last) = health["reloads"]["last"].as_str() {
        let _ = writeln!(
            out,
            "last reload ({} applied, {} refused): {last}",
            health["reloads"]["applied"].as_u64().unwrap_or(0),
            health["reloads"]["refused"].as_u64().unwrap_or(0)
        );
    }
    for note in health["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "note: {}", note.as_str().unwrap_or_default());
    }
    out
}

fn uptime(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_says_what_each_server_does() {
        let health = json!({"status": "degraded", "version": "0.1.0", "uptimeSeconds": 185,
            "sessions": 3, "sessionsByTransport": {"streamableHttp": 2, "legacySse": 1},
            "inFlight": 2, "tools": 20,
            "servers": [
                {"name": "demo", "type": "local", "status": "up", "calls": 40, "failedCalls": 1,
                 "restarts": 0, "lastError": null, "nextRetryMs": null,
                 "pool": {"inFlight": 2, "handles": [{"pid": 4242, "rssBytes": 3_000_000}]}},
                {"name": "fetch", "type": "local", "status": "down", "calls": 0, "failedCalls": 0,
                 "restarts": 6, "lastError": "server \"fetch\" (pid 9) exited with status 1",
                 "nextRetryMs": 4000, "pool": {"inFlight": 0, "handles": []}}
            ],
            "notes": ["mapping.demo.tools: server demo has no tool named \"x\""]});
        let table = render("http://127.0.0.1:4298", &health);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].contains("degraded, up 3 min, 3 sessions (2 Streamable HTTP, 1 legacy SSE)")
        );
        assert!(lines[1].starts_with("SERVER"));
        assert!(
            lines[2].starts_with("demo") && lines[2].contains("4242 (3 MiB)"),
            "{table}"
        );
        assert!(
            lines[3].contains("down") && lines[3].contains("4.0 s"),
            "{table}"
        );
        assert!(lines[3].contains("exited with status 1"));
        assert!(lines[4].starts_with("note: mapping.demo.tools"));
    }

    #[test]
    fn profiles_changed_tools_and_the_last_reload_are_told() {
        let health = json!({"status": "ok", "servers": [],
            "profiles": [{"name": "default", "tools": 40, "listedTokens": 9000, "listed": "all"},
                         {"name": "small", "tools": 300, "listedTokens": 250, "listed": "search"}],
            "changedTools": [{"server": "web", "tool": "fetch", "change": "changed", "held": true}],
            "reloads": {"applied": 2, "refused": 1, "last": "config reloaded from c.json: added x"}});
        let table = render("http://h", &health);
        assert!(
            table.contains("profiles: default (40 tools, ~9000 tokens listed), small (300 tools, ~250 tokens listed, search)"),
            "{table}"
        );
        assert!(
            table.contains(
                "changed tool: web/fetch (changed, withheld until `mcp-gateway approve`)"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "last reload (2 applied, 1 refused): config reloaded from c.json: added x"
            ),
            "{table}"
        );
        let plain = render(
            "http://h",
            &json!({"status": "ok", "servers": [],
            "profiles": [{"name": "default", "tools": 1}]}),
        );
        assert!(
            !plain.contains("profiles:"),
            "only the default profile: {plain}"
        );
    }

    #[test]
    fn without_the_token_it_says_how_to_see_more() {
        let table = render("http://h", &json!({"status": "ok"}));
        assert!(table.contains("ok") && table.contains("--token"), "{table}");
    }

    #[test]
    fn options() {
        let env = |k: &str| (k == "MCP_GATEWAY_TOKEN").then(|| "t".to_string());
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Options::parse(&args(&[]), &env).unwrap(),
            Options {
                url: DEFAULT_URL.into(),
                token: Some("t".into())
            }
        );
        assert_eq!(
            Options::parse(&args(&["http://h:1", "--token", "x"]), &env)
                .unwrap()
                .token
                .as_deref(),
            Some("x")
        );
        assert!(Options::parse(&args(&["--nope"]), &env).is_err());
        assert!(Options::parse(&args(&["a", "b"]), &env).is_err());
    }
}
