//! Pinned tool definitions: the guard against a server whose tools change under the clients (a
//! "rug pull").
//!
//! The first time the gateway sees a tool of a server with `pin` on (`warn`, the default, or
//! `hold`), it records the tool's canonical definition — `name`, `title`, `description`,
//! `inputSchema`, `outputSchema` and `annotations` as the server sent them (before the config's
//! overrides), object keys sorted — in `<stateDir>/pins/<server>.json`, with a short fingerprint
//! (FNV-1a, 64 bits) for people to read. Later listings are compared with the recorded definition
//! itself, not the fingerprint, so no crafted collision can pass a change off as the original.
//!
//! A definition that differs is *changed*: with `warn` it is logged and listed in `/health`
//! (`changedTools`); with `hold` the tool is also withheld from every client (listed nowhere,
//! calls refused with −32602 saying it awaits approval). With `hold` and `pinNew`, a tool never
//! recorded is withheld too, and not recorded, until approved. `mcp-gateway approve` records the
//! current definitions; the running gateway notices the file changed (`catalog`) and lists the
//! tools again. Files are written whole (temp file + rename), 0600 in a 0700 directory; nothing
//! here runs on the reactor thread.

use super::{Def, Listing};
use crate::config::{Pin, ServerConfig};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The fields of a definition that are pinned.
pub const PINNED_FIELDS: [&str; 6] = [
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
];

const FORMAT: u64 = 1;

/// The recorded definitions of one server's tools, by original name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pins {
    pub tools: BTreeMap<String, Value>,
}

/// A tool whose current definition is not the recorded one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub server: usize,
    /// The server's own name for the tool.
    pub tool: String,
    /// Never recorded (with `pinNew`), rather than recorded and different.
    pub new: bool,
    /// Withheld from clients until approved (`pin: hold`).
    pub held: bool,
}

/// What comparing one server's listing with its pins found.
#[derive(Debug, Default)]
pub struct Review {
    /// The listing without the withheld tools, when any is withheld.
    pub listing: Option<Listing>,
    pub changed: Vec<Changed>,
    /// Tools seen for the first time, to record.
    pub record: Vec<(String, Value)>,
}

/// The pinned part of a definition, keys sorted at every level.
pub fn canonical(def: &Def) -> Value {
    let mut out = Map::new();
    let mut fields = PINNED_FIELDS;
    fields.sort_unstable();
    for key in fields {
        if let Some(value) = def.get(key) {
            out.insert(key.to_string(), sorted(value));
        }
    }
    Value::Object(out)
}

/// Whether `def` is what `recorded` (a `canonical` form) pinned: the same pinned fields with equal
/// values, whatever the order of keys (`Map` equality ignores it), without building the canonical
/// form of a definition that did not change.
fn matches(def: &Def, recorded: &Value) -> bool {
    let Some(recorded) = recorded.as_object() else {
        return false;
    };
    let mut present = 0;
    for key in PINNED_FIELDS {
        if let Some(value) = def.get(key) {
            present += 1;
            if recorded.get(key) != Some(value) {
                return false;
            }
        }
    }
    present == recorded.len()
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// A short fingerprint of a canonical definition, for people (never used to compare).
pub fn fingerprint(canonical: &Value) -> String {
    let hash = canonical
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{hash:016x}")
}

/// Compares server `index`'s listing with its pins.
pub fn review(index: usize, server: &ServerConfig, pins: &Pins, listing: &Listing) -> Review {
    let mut review = Review::default();
    if server.pin == Pin::Off {
        return review;
    }
    let hold = server.pin == Pin::Hold;
    let mut withheld = Vec::new();
    for def in &listing.tools {
        let Some(name) = def.get("name").and_then(Value::as_str) else {
            continue;
        };
        let new = match pins.tools.get(name) {
            Some(recorded) if matches(def, recorded) => continue,
            Some(_) => false,
            None if hold && server.pin_new => true,
            None => {
                review.record.push((name.to_string(), canonical(def)));
                continue;
            }
        };
        review.changed.push(Changed {
            server: index,
            tool: name.to_string(),
            new,
            held: hold,
        });
        if hold {
            withheld.push(name);
        }
    }
    if !withheld.is_empty() {
        let mut kept = listing.clone();
        kept.tools.retain(|def| {
            def.get("name")
                .and_then(Value::as_str)
                .is_none_or(|name| !withheld.contains(&name))
        });
        review.listing = Some(kept);
    }
    review
}

/// Where server `server`'s pins live.
pub fn path(state_dir: &Path, server: &str) -> PathBuf {
    state_dir.join("pins").join(format!("{server}.json"))
}

/// The recorded pins of a server (none yet: empty). A file that cannot be parsed is an error:
/// starting over would silently accept whatever the server sends now.
pub fn load(state_dir: &Path, server: &str) -> Result<Pins, String> {
    let file = path(state_dir, server);
    let text = match std::fs::read(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Pins::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    let value: Value = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", file.display()))?;
    let tools = value
        .get("tools")
        .and_then(Value::as_object)
        .filter(|_| value.get("format").and_then(Value::as_u64) == Some(FORMAT))
        .ok_or_else(|| format!("{} is not a pins file of this gateway", file.display()))?;
    Ok(Pins {
        tools: tools
            .iter()
            .filter_map(|(name, entry)| Some((name.clone(), entry.get("definition")?.clone())))
            .collect(),
    })
}

/// Writes a server's pins whole.
pub fn save(state_dir: &Path, server: &str, pins: &Pins) -> std::io::Result<()> {
    let tools: Map<String, Value> = pins
        .tools
        .iter()
        .map(|(name, definition)| {
            let entry = serde_json::json!({"fingerprint": fingerprint(definition), "definition": definition});
            (name.clone(), entry)
        })
        .collect();
    let body = serde_json::json!({"format": FORMAT, "server": server, "tools": tools});
    let bytes = serde_json::to_vec_pretty(&body).map_err(std::io::Error::other)?;
    super::manifest::write_private(&path(state_dir, server), &bytes)
}

/// What changed between a recorded and a current definition, field by field, for people.
pub fn diff(recorded: Option<&Value>, current: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for field in PINNED_FIELDS {
        let old = recorded.and_then(|r| r.get(field));
        let new = current.get(field);
        if old == new {
            continue;
        }
        lines.push(format!("  {field}:"));
        let show = |value: Option<&Value>| match value {
            None => "(absent)".to_string(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        };
        if recorded.is_some() {
            lines.push(format!("    - {}", show(old)));
        }
        lines.push(format!("    + {}", show(new)));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(v: Value) -> Def {
        v.as_object().unwrap().clone()
    }

    fn server(pin: &str, pin_new: bool) -> ServerConfig {
        let entry = json!({"name": "s", "command": ["x"], "pin": pin, "pinNew": pin_new});
        let entry = if pin_new {
            entry
        } else {
            json!({"name": "s", "command": ["x"], "pin": pin})
        };
        crate::config::parse_str(&json!({"servers": [entry]}).to_string(), &|_| None)
            .unwrap()
            .servers
            .remove(0)
    }

    fn listing(description: &str) -> Listing {
        Listing {
            tools: vec![
                def(
                    json!({"name": "echo", "description": description, "inputSchema": {"type": "object", "properties": {"b": {}, "a": {}}}}),
                ),
                def(json!({"name": "add", "description": "adds"})),
            ],
            ..Listing::default()
        }
    }

    #[test]
    fn canonical_form_ignores_key_order_and_unpinned_fields() {
        let a = def(json!({"name": "x", "inputSchema": {"b": 1, "a": 2}, "_meta": {"z": 1}}));
        let b = def(json!({"inputSchema": {"a": 2, "b": 1}, "name": "x"}));
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(
            canonical(&a).to_string(),
            r#"{"inputSchema":{"a":2,"b":1},"name":"x"}"#
        );
        assert_eq!(fingerprint(&canonical(&a)).len(), 16);
        let pinned = canonical(&a);
        assert!(
            matches(&a, &pinned) && matches(&b, &pinned),
            "order and _meta aside"
        );
        let nested = def(json!({"name": "x", "inputSchema": {"b": 1, "a": 3}}));
        assert!(!matches(&nested, &pinned), "a nested value changed");
        let more = def(json!({"name": "x", "description": "d", "inputSchema": {"a": 2, "b": 1}}));
        assert!(!matches(&more, &pinned), "a pinned field appeared");
        let fewer = def(json!({"name": "x"}));
        assert!(!matches(&fewer, &pinned), "a pinned field went away");
    }

    #[test]
    fn first_sight_records_and_a_change_is_reported_or_held() {
        let warn = server("warn", false);
        let first = review(0, &warn, &Pins::default(), &listing("echoes"));
        assert_eq!(first.record.len(), 2);
        assert!(first.changed.is_empty() && first.listing.is_none());
        let pins = Pins {
            tools: first.record.into_iter().collect(),
        };
        assert!(review(0, &warn, &pins, &listing("echoes"))
            .changed
            .is_empty());

        let changed = review(0, &warn, &pins, &listing("now sends your files away"));
        assert_eq!(
            changed.changed,
            [Changed {
                server: 0,
                tool: "echo".into(),
                new: false,
                held: false
            }]
        );
        assert!(changed.listing.is_none(), "warn withholds nothing");
        assert!(
            changed.record.is_empty(),
            "a change is never recorded by itself"
        );

        let hold = server("hold", false);
        let held = review(0, &hold, &pins, &listing("now sends your files away"));
        assert!(held.changed[0].held);
        let kept: Vec<&str> = held
            .listing
            .as_ref()
            .unwrap()
            .tools
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(kept, ["add"]);

        let recorded = canonical(&listing("echoes").tools[0]);
        let current = canonical(&listing("now sends your files away").tools[0]);
        assert_eq!(
            diff(Some(&recorded), &current),
            [
                "  description:",
                "    - echoes",
                "    + now sends your files away"
            ]
        );
        assert!(
            review(0, &server("off", false), &Pins::default(), &listing("x"))
                .record
                .is_empty()
        );
    }

    #[test]
    fn pin_new_holds_tools_never_seen() {
        let strict = server("hold", true);
        let pins = Pins {
            tools: [("add".to_string(), canonical(&listing("").tools[1]))].into(),
        };
        let review = review(0, &strict, &pins, &listing("echoes"));
        assert_eq!(
            review.changed,
            [Changed {
                server: 0,
                tool: "echo".into(),
                new: true,
                held: true
            }]
        );
        assert!(review.record.is_empty(), "not recorded until approved");
    }

    #[test]
    fn pins_round_trip_through_the_file() {
        let dir = std::env::temp_dir().join(format!("mcp-gateway-pins-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load(&dir, "s").unwrap(), Pins::default());
        let pins = Pins {
            tools: [("echo".to_string(), canonical(&listing("e").tools[0]))].into(),
        };
        save(&dir, "s", &pins).unwrap();
        assert_eq!(load(&dir, "s").unwrap(), pins);
        std::fs::write(path(&dir, "s"), "nope").unwrap();
        assert!(load(&dir, "s").unwrap_err().contains("not valid JSON"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
