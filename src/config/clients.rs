//! Client config files, pasted whole: what Claude Desktop (`claude_desktop_config.json`), Claude
//! Code and Cursor (`mcp.json`), Cline and Roo (their MCP settings) and VS Code (`.vscode/mcp.json`,
//! a `servers` object) write that the gateway's own format does not say the same way.
//!
//! - A file that is a client's (it has `mcpServers` or a `servers` object, and none of the
//!   gateway's own sections) may have other top-level keys (Claude Desktop's preferences, VS Code's
//!   `inputs`): they are ignored with one note (`is_client_file`).
//! - In a server entry keyed by name, the clients' own keys are turned into the gateway's
//!   (`entry`): `disabled` → `enabled`, `timeout` (seconds, Cline/Roo) and `networkTimeout` (ms) →
//!   `callTimeout`, `transportType` → `type`, `envFile` → `env` (read now), `disabledTools` (Roo) →
//!   excluded tools; approval lists and editor-only keys are accepted and ignored with a note.
//!
//! `${env:VAR}`, `${userHome}` and the like are `expand`'s. Nothing here is lenient about what the
//! gateway itself reads: a wrong value of a key it uses is an error, as anywhere.

use super::schema::{quote, Checker, Object};
use serde_json::{Map, Value};

/// Top-level sections only the gateway's own format has.
const OWN_SECTIONS: &[&str] = &["gateway", "pool", "mapping", "toolFilters", "profiles"];

/// Entry keys that only mean something to the client that wrote them, and what they do there.
const IGNORED_ENTRY_KEYS: &[(&str, &str)] = &[
    (
        "autoApprove",
        "tools the client runs without asking (the gateway asks nothing; your client still may)",
    ),
    (
        "alwaysAllow",
        "tools the client runs without asking (the gateway asks nothing; your client still may)",
    ),
    (
        "watchPaths",
        "files whose change makes Roo restart the server (reload the gateway's config instead)",
    ),
    ("dev", "VS Code's watch-and-debug mode"),
    ("gallery", "where VS Code installed the server from"),
    ("version", "the version VS Code installed"),
];

/// Cline and Roo give `timeout` in seconds; more than this is a typo (or milliseconds).
const MAX_TIMEOUT_SECONDS: u64 = 3600;

/// Whether `top` is a client's file rather than a gateway config.
pub(super) fn is_client_file(top: &Object) -> bool {
    let servers_map = top.get("servers").is_some_and(Value::is_object);
    (top.contains_key("mcpServers") || servers_map)
        && !top.keys().any(|k| OWN_SECTIONS.contains(&k.as_str()))
}

/// A client-style server entry in the gateway's own terms.
pub(super) struct ClientEntry {
    pub obj: Map<String, Value>,
    /// Keys accepted and ignored (for the note), as JSON paths.
    pub ignored: Vec<(String, &'static str)>,
    /// `disabledTools`: tool names never exposed.
    pub exclude: Vec<String>,
}

/// Turns the clients' own keys of the entry at `path` into the gateway's (module doc).
pub(super) fn entry(c: &mut Checker, obj: &Object, path: &str) -> ClientEntry {
    let mut out = obj.clone();
    let mut ignored = Vec::new();
    let mut exclude = Vec::new();
    let at = |key: &str| super::key_path(path, key);
    for (key, what) in IGNORED_ENTRY_KEYS {
        if out.remove(*key).is_some() {
            ignored.push((at(key), *what));
        }
    }
    if let Some(disabled) = out.remove("disabled") {
        match (
            c.boolean(&disabled, &at("disabled")),
            out.contains_key("enabled"),
        ) {
            (Some(_), true) => c.report(
                &at("disabled"),
                "give \"enabled\" or \"disabled\", not both",
            ),
            (Some(disabled), false) => {
                out.insert("enabled".into(), Value::Bool(!disabled));
            }
            (None, _) => {}
        }
    }
    if let Some(transport) = out.remove("transportType") {
        if out.contains_key("type") {
            c.report(
                &at("transportType"),
                "give \"type\" or \"transportType\", not both",
            );
        } else {
            out.insert("type".into(), transport);
        }
    }
    for (key, unit_ms) in [("timeout", 1000), ("networkTimeout", 1)] {
        let Some(value) = out.remove(key) else {
            continue;
        };
        if out.contains_key("callTimeout") {
            c.report(
                &at(key),
                format!("give \"callTimeout\" or \"{key}\", not both"),
            );
            continue;
        }
        let (min, max) = match unit_ms {
            1000 => (1, MAX_TIMEOUT_SECONDS),
            _ => (1, MAX_TIMEOUT_SECONDS * 1000),
        };
        let Some(n) = value.as_u64().filter(|n| (min..=max).contains(n)) else {
            let unit = if unit_ms == 1000 {
                "seconds"
            } else {
                "milliseconds"
            };
            c.report(
                &at(key),
                format!(
                    "{} is not a timeout: Cline and Roo give \"{key}\" in {unit}, from {min} to {max} \
                     (the gateway's own is \"callTimeout\", in milliseconds)",
                    super::schema::describe(&value)
                ),
            );
            continue;
        };
        out.insert("callTimeout".into(), Value::from(n * unit_ms));
    }
    if let Some(file) = out.remove("envFile") {
        if let Some(vars) = env_file(c, &file, &at("envFile")) {
            let env = out
                .entry("env")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(env) = env {
                for (name, value) in vars {
                    // What the entry's own `env` says wins, as in VS Code.
                    env.entry(name).or_insert(Value::String(value));
                }
            }
        }
    }
    if let Some(tools) = out.remove("disabledTools") {
        if let Some(names) = c.list(
            &tools,
            &at("disabledTools"),
            "an array of tool names",
            |c, v, p| c.string(v, p).map(str::to_owned),
        ) {
            exclude = names;
        }
    }
    ClientEntry {
        obj: out,
        ignored,
        exclude,
    }
}

/// The variables of a dotenv file (`NAME=value` lines; `#` comments, `export `, quotes).
fn env_file(c: &mut Checker, v: &Value, path: &str) -> Option<Vec<(String, String)>> {
    let name = c.expanded(v, path)?;
    let text = match std::fs::read_to_string(&name) {
        Ok(text) => text,
        Err(e) => {
            c.report(path, format!("cannot read {}: {e}", quote(&name)));
            return None;
        }
    };
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            c.report(
                path,
                format!("{}: line {} is not NAME=value", quote(&name), n + 1),
            );
            return None;
        };
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        vars.push((key.trim().to_owned(), unquoted.to_owned()));
    }
    Some(vars)
}

/// The note for the keys a file's entries have that only their client uses.
pub(super) fn ignored_note(ignored: &[(String, &'static str)]) -> Option<String> {
    if ignored.is_empty() {
        return None;
    }
    let mut by_meaning: Vec<(&str, Vec<&str>)> = Vec::new();
    for (path, what) in ignored {
        match by_meaning.iter_mut().find(|(w, _)| w == what) {
            Some((_, paths)) => paths.push(path),
            None => by_meaning.push((what, vec![path])),
        }
    }
    let parts: Vec<String> = by_meaning
        .iter()
        .map(|(what, paths)| format!("{} ({what})", paths.join(", ")))
        .collect();
    Some(format!(
        "accepted and ignored, only the client uses them: {}",
        parts.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use crate::config::{parse_str, Config, RemoteTransport, ServerKind};
    use serde_json::json;
    use std::time::Duration;

    fn parse(v: serde_json::Value) -> Config {
        parse_str(&v.to_string(), &|name| {
            (name == "HOME").then(|| "/home/u".into())
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn problems(v: serde_json::Value) -> String {
        parse_str(&v.to_string(), &|_| None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn claude_desktops_whole_file_loads_with_one_note() {
        let config = parse(json!({
            "globalShortcut": "Ctrl+Space",
            "preferences": {"quickEntry": true},
            "mcpServers": {"fs": {"command": "npx", "args": ["-y", "server-filesystem", "${userHome}"]}},
        }));
        assert_eq!(config.servers.len(), 1);
        assert_eq!(
            config.notes,
            ["a client's config: its other top-level keys are ignored (globalShortcut, preferences)"]
        );
        let ServerKind::Local(local) = &config.servers[0].kind else {
            panic!()
        };
        assert_eq!(local.command[3], "/home/u");
    }

    #[test]
    fn cline_and_roo_entries_keep_their_meaning() {
        let config = parse(json!({"mcpServers": {
            "git": {"command": "uvx", "args": ["mcp-server-git"], "disabled": true,
                    "autoApprove": ["git_status"], "timeout": 30},
            "web": {"type": "streamableHttp", "url": "http://127.0.0.1:1/mcp", "alwaysAllow": [],
                    "networkTimeout": 90000, "disabledTools": ["delete_all"]},
            "roo": {"command": "x", "watchPaths": ["a"], "transportType": "stdio"},
        }}));
        let [git, web, roo] = &config.servers[..] else {
            panic!()
        };
        assert!(!git.enabled);
        assert_eq!(git.call_timeout, Duration::from_secs(30));
        assert_eq!(web.call_timeout, Duration::from_secs(90));
        assert_eq!(web.filters.exclude, ["delete_all"]);
        let ServerKind::Remote(remote) = &web.kind else {
            panic!()
        };
        assert_eq!(remote.transport, RemoteTransport::Streamable);
        assert!(roo.enabled);
        let note = &config.notes[0];
        assert!(
            note.contains("mcpServers.git.autoApprove, mcpServers.web.alwaysAllow")
                && note.contains("mcpServers.roo.watchPaths"),
            "{note}"
        );
    }

    #[test]
    fn vs_code_servers_load_with_their_env_file() {
        let dir = std::env::temp_dir().join(format!("mcp-gw-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let env_file = dir.join(".env");
        std::fs::write(&env_file, "# keys\nexport API_KEY=\"abc\"\nREGION=eu\n").unwrap();
        let config = parse(json!({
            "inputs": [{"type": "promptString", "id": "key"}],
            "servers": {
                "local": {"type": "stdio", "command": "node", "args": ["s.js"],
                          "envFile": env_file, "env": {"REGION": "us"}},
                "remote": {"type": "http", "url": "https://example.com/mcp",
                           "headers": {"Authorization": "Bearer ${env:HOME}"}},
            },
        }));
        std::fs::remove_dir_all(&dir).unwrap();
        let [local, remote] = &config.servers[..] else {
            panic!()
        };
        assert_eq!(local.name, "local");
        let ServerKind::Local(l) = &local.kind else {
            panic!()
        };
        let env: Vec<(&str, &str)> = l
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert!(
            env.contains(&("API_KEY", "abc")) && env.contains(&("REGION", "us")),
            "{env:?}"
        );
        let ServerKind::Remote(r) = &remote.kind else {
            panic!()
        };
        assert_eq!(r.headers[0].1, "Bearer /home/u");
        assert!(config.notes[0].contains("(inputs)"), "{:?}", config.notes);
    }

    #[test]
    fn what_only_an_editor_can_fill_in_is_an_error_that_says_what_to_do() {
        let text = problems(
            json!({"servers": {"gh": {"type": "http", "url": "https://x/mcp",
            "headers": {"Authorization": "Bearer ${input:token}"}}}}),
        );
        assert!(text.contains("put it in an environment variable"), "{text}");
        let text = problems(json!({"mcpServers": {"a": {"command": "x", "timeout": 60000}}}));
        assert!(text.contains("in seconds, from 1 to 3600"), "{text}");
        let text = problems(
            json!({"mcpServers": {"a": {"command": "x", "disabled": true, "enabled": true}}}),
        );
        assert!(text.contains("not both"), "{text}");
    }

    #[test]
    fn a_gateway_config_stays_strict() {
        let text = problems(json!({"gateway": {}, "globalShortcut": "x",
            "mcpServers": {"a": {"command": "x"}}}));
        assert!(text.contains("globalShortcut: unknown key"), "{text}");
        let text = problems(json!({"gateway": {}, "servers": {"a": {"command": "x"}}}));
        assert!(text.contains("expected an array of servers"), "{text}");
    }
}
