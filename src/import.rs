//! `mcp-gateway import FILE`: the servers of a client's MCP config, moved behind the gateway.
//!
//! Reads a client's file (Claude Desktop, Claude Code, Cursor, Cline, Roo, VS Code — comments and
//! trailing commas allowed, as editors write them), checks it the way the gateway would load it,
//! and prints the servers as they go into the gateway's config (`mcpServers`, values as written:
//! `${VAR}`s stay unexpanded, so no secret is copied) and the one entry that client needs instead
//! to reach the gateway. With `--write` the servers are merged into the gateway's config file
//! (servers of a name it already has are left alone and said so); the merged file is validated
//! before it replaces the old one, atomically, and a running gateway with `watchConfig` picks it
//! up by itself.

use crate::config;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// The clients whose files are recognized, by what each needs to reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    Cline,
    Roo,
    VsCode,
    /// An `mcpServers` file of a client not recognized: the most common remote entry shape.
    Other,
}

impl Client {
    pub fn name(self) -> &'static str {
        match self {
            Client::ClaudeDesktop => "Claude Desktop",
            Client::ClaudeCode => "Claude Code",
            Client::Cursor => "Cursor",
            Client::Cline => "Cline",
            Client::Roo => "Roo Code",
            Client::VsCode => "VS Code",
            Client::Other => "your client",
        }
    }

    /// Which client wrote `path` with top level `top`.
    pub fn of(path: &Path, top: &Map<String, Value>) -> Client {
        let text = path.to_string_lossy().replace('\\', "/");
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let entries = || {
            top.get("mcpServers")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|m| m.values())
        };
        let has = |key: &str| entries().any(|e| e.get(key).is_some());
        if file == "claude_desktop_config.json" {
            Client::ClaudeDesktop
        } else if file == "cline_mcp_settings.json" {
            Client::Cline
        } else if text.contains("roo-cline") || text.contains("/.roo/") {
            Client::Roo
        } else if text.contains("/.vscode/") || top.get("servers").is_some_and(Value::is_object) {
            Client::VsCode
        } else if text.contains("/.cursor/") {
            Client::Cursor
        } else if file == ".mcp.json" || file == ".claude.json" {
            Client::ClaudeCode
        } else if has("autoApprove") {
            Client::Cline
        } else if has("alwaysAllow") || has("watchPaths") {
            Client::Roo
        } else {
            Client::Other
        }
    }

    /// The entry (a whole file's worth, to merge into it) that makes this client use the gateway
    /// at `url`; `token`: the gateway wants one.
    pub fn gateway_entry(self, url: &str, token: bool, bridge: &str) -> Value {
        let auth = "Bearer <your gateway.authToken>";
        let http = |kind: Option<&str>| {
            let mut entry = Map::new();
            if let Some(kind) = kind {
                entry.insert("type".into(), kind.into());
            }
            entry.insert("url".into(), url.into());
            if token {
                entry.insert("headers".into(), json!({ "Authorization": auth }));
            }
            Value::Object(entry)
        };
        match self {
            // Claude Desktop's file starts only stdio servers: the bridge relays to the gateway.
            Client::ClaudeDesktop => {
                let mut entry = json!({ "command": bridge, "args": [url] });
                if token {
                    entry["env"] = json!({ "MCP_GATEWAY_TOKEN": "<your gateway.authToken>" });
                }
                json!({ "mcpServers": { "mcp-gateway": entry } })
            }
            Client::VsCode => json!({ "servers": { "mcp-gateway": http(Some("http")) } }),
            Client::Cursor => json!({ "mcpServers": { "mcp-gateway": http(None) } }),
            Client::Cline => {
                json!({ "mcpServers": { "mcp-gateway": http(Some("streamableHttp")) } })
            }
            Client::Roo => {
                json!({ "mcpServers": { "mcp-gateway": http(Some("streamable-http")) } })
            }
            Client::ClaudeCode | Client::Other => {
                json!({ "mcpServers": { "mcp-gateway": http(Some("http")) } })
            }
        }
    }
}

/// Keys of a client's entry that stay in the client (they would only be noted and ignored).
const CLIENT_ONLY: &[&str] = &[
    "autoApprove",
    "alwaysAllow",
    "watchPaths",
    "dev",
    "gallery",
    "version",
];

/// What `import` found in a client's file.
pub struct Found {
    pub client: Client,
    /// The servers, keyed by name, as they go into the gateway's `mcpServers`.
    pub servers: Map<String, Value>,
    /// What the gateway would say about them (keys ignored...).
    pub notes: Vec<String>,
}

/// Reads a client's file: its servers, checked as the gateway would load them.
pub fn read(path: &Path) -> Result<Found, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let plain = strip_jsonc(&text);
    let tree: Value = serde_json::from_str(&plain)
        .map_err(|e| format!("{}: invalid JSON: {e}", path.display()))?;
    let Value::Object(top) = &tree else {
        return Err(format!(
            "{}: expected a JSON object at the top level",
            path.display()
        ));
    };
    let client = Client::of(path, top);
    let section = match (top.get("mcpServers"), top.get("servers")) {
        (Some(Value::Object(map)), _) => map,
        (_, Some(Value::Object(map))) => map,
        _ => {
            return Err(format!(
                "{}: no servers found (expected an \"mcpServers\" object, or VS Code's \"servers\" object)",
                path.display()
            ))
        }
    };
    let mut servers = Map::new();
    let mut left_out = Vec::new();
    for (name, entry) in section {
        let mut entry = entry.clone();
        if let Value::Object(fields) = &mut entry {
            for key in CLIENT_ONLY {
                if fields.remove(*key).is_some() {
                    left_out.push(format!("{name}.{key}"));
                }
            }
        }
        servers.insert(name.clone(), entry);
    }
    // Checked as the gateway will read them. A variable this shell lacks may well be set where
    // the gateway runs: it is said, not refused.
    let check = json!({ "mcpServers": servers }).to_string();
    let unset = std::cell::RefCell::new(Vec::new());
    let config = config::parse_str(&check, &|name| lenient_env(name, &unset)).map_err(|e| {
        format!(
            "{}: the gateway could not load these servers as they are:\n{e}",
            path.display()
        )
    })?;
    let mut notes = config.notes;
    if !left_out.is_empty() {
        notes.push(format!(
            "left out, only {} uses them: {}",
            client.name(),
            left_out.join(", ")
        ));
    }
    let mut unset = unset.into_inner();
    unset.sort();
    unset.dedup();
    if !unset.is_empty() {
        notes.push(format!(
            "not set in this shell, needed in the gateway's environment: {}",
            unset.join(", ")
        ));
    }
    Ok(Found {
        client,
        servers,
        notes,
    })
}

/// Merges `found` into the gateway's config at `target` (created when missing). Returns the
/// names added and the names skipped (already configured).
pub fn merge_into(target: &Path, found: &Found) -> Result<(Vec<String>, Vec<String>), String> {
    let mut tree = match std::fs::read_to_string(target) {
        Ok(text) => {
            if strip_jsonc(&text) != text {
                return Err(format!(
                    "{} has comments, which rewriting it would lose: paste the servers printed above into it instead",
                    target.display()
                ));
            }
            serde_json::from_str::<Value>(&text)
                .map_err(|e| format!("{}: invalid JSON: {e}", target.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(format!("cannot read {}: {e}", target.display())),
    };
    let Value::Object(top) = &mut tree else {
        return Err(format!(
            "{}: expected a JSON object at the top level",
            target.display()
        ));
    };
    let mut known: Vec<String> = top
        .get("servers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if let Some(Value::Object(map)) = top.get("mcpServers") {
        known.extend(map.keys().cloned());
    }
    let section = top
        .entry("mcpServers")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(section) = section else {
        return Err(format!(
            "{}: \"mcpServers\" is not an object",
            target.display()
        ));
    };
    let (mut added, mut skipped) = (Vec::new(), Vec::new());
    for (name, entry) in &found.servers {
        if known.contains(name) {
            skipped.push(name.clone());
        } else {
            section.insert(name.clone(), entry.clone());
            added.push(name.clone());
        }
    }
    if added.is_empty() {
        return Ok((added, skipped));
    }
    let text = serde_json::to_string_pretty(&tree).expect("a JSON tree serializes") + "\n";
    let unset = std::cell::RefCell::new(Vec::new());
    config::parse_str(&text, &|name| lenient_env(name, &unset)).map_err(|e| {
        format!(
            "{} would not validate with these servers, so it was left as it is:\n{e}",
            target.display()
        )
    })?;
    config::write_atomically(target, text.as_bytes())?;
    Ok((added, skipped))
}

/// The environment, with a stand-in for what is not set (noted in `unset`).
fn lenient_env(name: &str, unset: &std::cell::RefCell<Vec<String>>) -> Option<String> {
    std::env::var(name).ok().or_else(|| {
        unset.borrow_mut().push(name.to_owned());
        Some("unset".to_owned())
    })
}

/// `text` with `//` and `/* */` comments blanked and trailing commas removed (outside strings),
/// line and column of everything else unchanged.
pub fn strip_jsonc(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            if b == b'\\' && i + 1 < bytes.len() {
                out.push(bytes[i + 1]);
                i += 1;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
        } else if b == b'"' {
            in_string = true;
            out.push(b);
            i += 1;
        } else if bytes[i..].starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if bytes[i..].starts_with(b"/*") {
            let end = text[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |e| i + 2 + e + 2);
            out.extend(
                bytes[i..end]
                    .iter()
                    .map(|&c| if c == b'\n' { b'\n' } else { b' ' }),
            );
            i = end;
        } else {
            out.push(b);
            i += 1;
        }
    }
    // Trailing commas: a comma followed only by whitespace before `}` or `]`.
    let mut in_string = false;
    let mut escaped = false;
    for at in 0..out.len() {
        let b = out[at];
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' => {
                let next = out[at + 1..].iter().find(|c| !c.is_ascii_whitespace());
                if matches!(next, Some(b'}' | b']')) {
                    out[at] = b' ';
                }
            }
            _ => {}
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// The command line's part: prints what was found and the entry for the client; with `write`,
/// merges into `target`. Returns the text to print.
pub fn run(file: &Path, target: Option<&Path>, url: &str, token: bool) -> Result<String, String> {
    let found = read(file)?;
    let mut out = String::new();
    let names: Vec<&str> = found.servers.keys().map(String::as_str).collect();
    out.push_str(&format!(
        "{} servers from {} ({}'s config): {}\n",
        names.len(),
        file.display(),
        found.client.name(),
        names.join(", ")
    ));
    for note in &found.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    match target {
        Some(target) => {
            let (added, skipped) = merge_into(target, &found)?;
            if !added.is_empty() {
                out.push_str(&format!(
                    "added to {}: {} (a running gateway with watchConfig reloads it by itself; else `mcp-gateway reload`)\n",
                    target.display(),
                    added.join(", ")
                ));
            }
            if !skipped.is_empty() {
                out.push_str(&format!(
                    "left alone, {} already has them: {}\n",
                    target.display(),
                    skipped.join(", ")
                ));
            }
        }
        None => {
            out.push_str(
                "\nfor the gateway's config (or run again with --write to merge them in):\n",
            );
            let servers = json!({ "mcpServers": found.servers });
            out.push_str(&serde_json::to_string_pretty(&servers).expect("JSON serializes"));
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\nthen, in {}'s config, instead of those servers (they run in the gateway now):\n",
        found.client.name()
    ));
    let entry = found.client.gateway_entry(url, token, &bridge_path());
    out.push_str(&serde_json::to_string_pretty(&entry).expect("JSON serializes"));
    out.push('\n');
    Ok(out)
}

/// Where the bridge is: next to this binary when installed there, else this binary's `bridge`.
fn bridge_path() -> String {
    let exe = std::env::current_exe().ok();
    let beside = exe
        .as_ref()
        .and_then(|e| e.parent())
        .map(|dir| dir.join("mcp-gateway-bridge"));
    match beside {
        Some(path) if path.exists() => path.display().to_string(),
        _ => PathBuf::from("mcp-gateway-bridge").display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_trailing_commas_go_strings_stay() {
        let text = "{\n  // a comment\n  \"a\": \"http://x//y\", /* b */\n  \"c\": [1, 2,],\n}";
        let plain = strip_jsonc(text);
        let v: Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(v, json!({"a": "http://x//y", "c": [1, 2]}));
        assert_eq!(plain.lines().count(), text.lines().count(), "lines kept");
        assert_eq!(strip_jsonc("{\"a\": \"x\\\",}\"}"), "{\"a\": \"x\\\",}\"}");
    }

    #[test]
    fn each_client_gets_the_entry_it_understands() {
        let top = Map::new();
        let of = |p: &str| Client::of(Path::new(p), &top);
        assert_eq!(
            of("/home/u/.config/Claude/claude_desktop_config.json"),
            Client::ClaudeDesktop
        );
        assert_eq!(of("/w/.vscode/mcp.json"), Client::VsCode);
        assert_eq!(of("/home/u/.cursor/mcp.json"), Client::Cursor);
        assert_eq!(of("/w/.mcp.json"), Client::ClaudeCode);
        assert_eq!(
            of("/x/saoudrizwan.claude-dev/settings/cline_mcp_settings.json"),
            Client::Cline
        );
        let url = "http://127.0.0.1:4298/mcp";
        let desktop =
            Client::ClaudeDesktop.gateway_entry(url, true, "/usr/local/bin/mcp-gateway-bridge");
        assert_eq!(desktop["mcpServers"]["mcp-gateway"]["args"][0], url);
        assert!(desktop["mcpServers"]["mcp-gateway"]["env"]["MCP_GATEWAY_TOKEN"].is_string());
        assert_eq!(
            Client::VsCode.gateway_entry(url, false, "")["servers"]["mcp-gateway"]["type"],
            "http"
        );
        assert_eq!(
            Client::Cline.gateway_entry(url, false, "")["mcpServers"]["mcp-gateway"]["type"],
            "streamableHttp"
        );
    }
}
