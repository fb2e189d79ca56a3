//! `mcp-gateway diff [SERVER]` and `mcp-gateway approve SERVER [TOOL…]`: what changed in the pinned
//! tool definitions, and accepting the current ones.
//!
//! Both read the state directory of the config (`gateway.stateDir`): the pins
//! (`registry::pin`) and the manifests the gateway writes whenever a server's listing changes
//! (`registry::manifest`), which hold the definitions the server sends now. Nothing is started
//! and the running gateway is not asked; it notices an approval by itself within a second
//! (`catalog::watch_pins`) and its sessions get `list_changed`.

use crate::config::{Config, Pin, ServerConfig};
use crate::registry::{manifest, pin, Listing};
use serde_json::Value;
use std::path::Path;

/// What `diff` found.
pub struct Diff {
    pub text: String,
    /// Some definition differs from its pin (or is not pinned yet).
    pub differs: bool,
}

fn state_dir(config: &Config) -> Result<&Path, String> {
    config
        .gateway
        .state_dir
        .as_deref()
        .ok_or_else(|| "no state directory: set gateway.stateDir (pins are kept there)".to_string())
}

fn pinned_servers<'c>(
    config: &'c Config,
    only: Option<&str>,
) -> Result<Vec<&'c ServerConfig>, String> {
    match only {
        Some(name) => {
            let server = config
                .servers
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
                    format!("no server named \"{name}\" (servers: {})", names.join(", "))
                })?;
            if server.pin == Pin::Off {
                return Err(format!(
                    "server {name} has \"pin\": \"off\": nothing is pinned"
                ));
            }
            Ok(vec![server])
        }
        None => Ok(config
            .servers
            .iter()
            .filter(|s| s.pin != Pin::Off)
            .collect()),
    }
}

fn current(dir: &Path, server: &ServerConfig) -> Result<Listing, String> {
    manifest::load(dir, server).ok_or_else(|| {
        format!(
            "no listing of server {} under {}: the gateway has not listed it with this config yet (start it once)",
            server.name,
            dir.display()
        )
    })
}

fn tool_name(def: &crate::registry::Def) -> Option<&str> {
    def.get("name").and_then(Value::as_str)
}

/// The differences between each pinned server's (or `only`'s) current definitions and its pins.
pub fn diff(config: &Config, only: Option<&str>) -> Result<Diff, String> {
    let dir = state_dir(config)?;
    let mut text = String::new();
    let mut differs = false;
    for server in pinned_servers(config, only)? {
        let listing = match current(dir, server) {
            Ok(listing) => listing,
            Err(e) if only.is_none() => {
                text.push_str(&format!("server {}: {e}\n", server.name));
                continue;
            }
            Err(e) => return Err(e),
        };
        let pins = pin::load(dir, &server.name)?;
        let mut lines = Vec::new();
        for def in &listing.tools {
            let Some(name) = tool_name(def) else { continue };
            let now = pin::canonical(def);
            match pins.tools.get(name) {
                Some(recorded) if *recorded == now => {}
                Some(recorded) => {
                    lines.push(format!(
                        "tool {name}: changed (pinned {}, now {})",
                        pin::fingerprint(recorded),
                        pin::fingerprint(&now)
                    ));
                    lines.extend(pin::diff(Some(recorded), &now));
                }
                None => {
                    lines.push(format!("tool {name}: new, not pinned yet"));
                    lines.extend(pin::diff(None, &now));
                }
            }
        }
        for name in pins.tools.keys() {
            if !listing.tools.iter().any(|d| tool_name(d) == Some(name)) {
                lines.push(format!("tool {name}: pinned, no longer listed"));
            }
        }
        if lines.is_empty() {
            text.push_str(&format!(
                "server {} (pin: {}): every definition is the pinned one\n",
                server.name,
                server.pin.as_str()
            ));
        } else {
            differs = true;
            text.push_str(&format!(
                "server {} (pin: {}):\n",
                server.name,
                server.pin.as_str()
            ));
            for line in lines {
                text.push_str(&format!("  {line}\n"));
            }
        }
    }
    Ok(Diff { text, differs })
}

/// Records the current definitions of `server`'s tools (all, or those named) as its pins.
/// Returns what it did, for the user.
pub fn approve(config: &Config, server: &str, tools: &[String]) -> Result<String, String> {
    let dir = state_dir(config)?;
    let server = pinned_servers(config, Some(server))?[0];
    let listing = current(dir, server)?;
    let mut pins = pin::load(dir, &server.name)?;
    for wanted in tools {
        if !listing.tools.iter().any(|d| tool_name(d) == Some(wanted)) {
            return Err(format!(
                "server {} lists no tool named \"{wanted}\" now",
                server.name
            ));
        }
    }
    let mut approved = Vec::new();
    for def in &listing.tools {
        let Some(name) = tool_name(def) else { continue };
        if !tools.is_empty() && !tools.iter().any(|t| t == name) {
            continue;
        }
        let now = pin::canonical(def);
        if pins.tools.get(name) != Some(&now) {
            pins.tools.insert(name.to_string(), now);
            approved.push(name.to_string());
        }
    }
    if approved.is_empty() {
        return Ok(format!(
            "server {}: nothing to approve, the definitions are the pinned ones\n",
            server.name
        ));
    }
    pin::save(dir, &server.name, &pins).map_err(|e| {
        format!(
            "cannot write {}: {e}",
            pin::path(dir, &server.name).display()
        )
    })?;
    Ok(format!(
        "server {}: approved {} (a running gateway lists them again within a second)\n",
        server.name,
        approved.join(", ")
    ))
}
