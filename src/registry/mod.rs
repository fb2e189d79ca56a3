//! The merged view of every server's tools: one immutable `Snapshot`, rebuilt whole and swapped.
//!
//! Inputs are each server's raw `tools/list` entries (all pages) in config order; the output maps every
//! exposed name to exactly one (server, original name) and carries the `tools/list` and `GET /tools`
//! bodies pre-serialized, so the reactor answers listings without touching JSON.
//!
//! Collisions are resolved deterministically and reported, never silent: the server listed first in
//! the config keeps the name; a later one gets `<server>_<name>` (or, if that is taken too, a hashed
//! name). The reports appear in the log, `/health` and `mcp-gateway check`.

pub mod catalog;
pub mod naming;

pub use catalog::Catalog;

use crate::config::ServerConfig;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// One tool definition as a server sent it.
pub type ToolDef = Map<String, Value>;

/// A tool as clients see it.
#[derive(Debug)]
pub struct Tool {
    /// Exposed name (valid for every client).
    pub name: String,
    /// Index of the server in the config.
    pub server: usize,
    /// The server's own name for it: what goes downstream.
    pub original: String,
    /// The definition with `name` replaced; every other field untouched (absent stays absent).
    pub definition: ToolDef,
}

/// Two tools wanted the same exposed name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub name: String,
    pub kept_server: String,
    pub kept_original: String,
    pub other_server: String,
    pub other_original: String,
    /// What the other tool is exposed as instead (None: not exposed).
    pub other_exposed_as: Option<String>,
}

impl fmt::Display for Collision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tool name \"{}\" is wanted by \"{}\" of server {} and \"{}\" of server {}; {} keeps it",
            self.name, self.kept_original, self.kept_server, self.other_original, self.other_server,
            self.kept_server
        )?;
        match &self.other_exposed_as {
            Some(name) => write!(f, ", the other is exposed as \"{name}\""),
            None => write!(f, ", the other is not exposed"),
        }
    }
}

/// The merged, routable tool set at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub tools: Vec<Tool>,
    by_name: HashMap<String, usize>,
    pub collisions: Vec<Collision>,
    /// Problems that are not collisions (renames of missing tools, malformed definitions).
    pub notes: Vec<String>,
    /// Tools exposed per server index.
    pub tool_counts: Vec<usize>,
    /// `{"tools":[...]}`: the `tools/list` result.
    pub list_result: String,
    /// `{"tools":[{name, description, inputSchema, server}...]}`: the `GET /tools` body.
    pub rest_body: String,
}

impl Snapshot {
    /// Where a call to `name` goes.
    pub fn route(&self, name: &str) -> Option<&Tool> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }

    /// Builds the merged view. `lists[i]` is server `i`'s tools, or None when it never listed any
    /// (disabled, not started yet, or failing).
    pub fn build(servers: &[ServerConfig], lists: &[Option<Arc<Vec<ToolDef>>>]) -> Snapshot {
        let mut snap = Snapshot {
            tool_counts: vec![0; servers.len()],
            ..Snapshot::default()
        };
        for (index, server) in servers.iter().enumerate() {
            let Some(list) = lists.get(index).and_then(Option::as_ref) else {
                continue;
            };
            let mut seen_originals = std::collections::HashSet::new();
            for def in list.iter() {
                let Some(original) = def.get("name").and_then(Value::as_str) else {
                    snap.notes.push(format!(
                        "server {}: skipped a tool without a string \"name\"",
                        server.name
                    ));
                    continue;
                };
                if !seen_originals.insert(original.to_string()) {
                    snap.notes.push(format!(
                        "server {}: lists tool \"{original}\" twice; the first is used",
                        server.name
                    ));
                    continue;
                }
                if naming::passes(&server.filters, original) {
                    snap.add(servers, index, original, def);
                }
            }
            for (from, _) in &server.mapping.rename {
                if !seen_originals.contains(from) {
                    snap.notes.push(format!(
                        "mapping.{}.rename: server {} has no tool named \"{from}\"",
                        server.name, server.name
                    ));
                }
            }
        }
        snap.serialize(servers);
        snap
    }

    fn add(&mut self, servers: &[ServerConfig], index: usize, original: &str, def: &ToolDef) {
        let server = &servers[index];
        let wanted = naming::exposed_name(&server.mapping, original);
        let name = match self.by_name.get(&wanted) {
            None => wanted,
            Some(&holder) => {
                let alternatives = [
                    naming::qualified_name(&server.name, &server.mapping, original),
                    naming::hashed_name(
                        &naming::qualified_name(&server.name, &server.mapping, original),
                        &format!("{}/{original}", server.name),
                    ),
                ];
                let free = alternatives
                    .into_iter()
                    .find(|n| !self.by_name.contains_key(n));
                let holder = &self.tools[holder];
                self.collisions.push(Collision {
                    name: wanted,
                    kept_server: servers[holder.server].name.clone(),
                    kept_original: holder.original.clone(),
                    other_server: server.name.clone(),
                    other_original: original.to_string(),
                    other_exposed_as: free.clone(),
                });
                match free {
                    Some(name) => name,
                    None => return,
                }
            }
        };
        let mut definition = def.clone();
        definition.insert("name".into(), Value::String(name.clone()));
        self.by_name.insert(name.clone(), self.tools.len());
        self.tool_counts[index] += 1;
        self.tools.push(Tool {
            name,
            server: index,
            original: original.to_string(),
            definition,
        });
    }

    fn serialize(&mut self, servers: &[ServerConfig]) {
        let list: Vec<&ToolDef> = self.tools.iter().map(|t| &t.definition).collect();
        self.list_result = serde_json::json!({ "tools": list }).to_string();
        let rest: Vec<Value> = self
            .tools
            .iter()
            .map(|t| {
                let mut entry = Map::new();
                entry.insert("name".into(), Value::String(t.name.clone()));
                for key in [
                    "title",
                    "description",
                    "inputSchema",
                    "outputSchema",
                    "annotations",
                ] {
                    if let Some(v) = t.definition.get(key) {
                        entry.insert(key.into(), v.clone());
                    }
                }
                entry.insert(
                    "server".into(),
                    Value::String(servers[t.server].name.clone()),
                );
                entry.insert("originalName".into(), Value::String(t.original.clone()));
                Value::Object(entry)
            })
            .collect();
        self.rest_body = serde_json::json!({ "tools": rest }).to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn servers(config: Value) -> Vec<ServerConfig> {
        crate::config::parse_str(&config.to_string(), &|_| None)
            .unwrap()
            .servers
    }

    fn tools(names: &[&str]) -> Option<Arc<Vec<ToolDef>>> {
        Some(Arc::new(
            names
                .iter()
                .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
                .map(|v| v.as_object().unwrap().clone())
                .collect(),
        ))
    }

    fn route(snap: &Snapshot, name: &str) -> Option<(usize, String)> {
        snap.route(name).map(|t| (t.server, t.original.clone()))
    }

    #[test]
    fn first_server_keeps_a_colliding_name_and_the_other_is_qualified() {
        let servers = servers(json!({"servers": [
            {"name": "a", "command": ["x"]}, {"name": "b", "command": ["x"]}
        ]}));
        let snap = Snapshot::build(&servers, &[tools(&["echo"]), tools(&["echo", "add"])]);
        assert_eq!(route(&snap, "echo"), Some((0, "echo".into())));
        assert_eq!(route(&snap, "b_echo"), Some((1, "echo".into())));
        assert_eq!(route(&snap, "add"), Some((1, "add".into())));
        assert_eq!(snap.collisions.len(), 1);
        let report = snap.collisions[0].to_string();
        assert!(
            report.contains("\"echo\"") && report.contains("b_echo"),
            "{report}"
        );
        // The order of the lists' arrival never matters: only config order does.
        let again = Snapshot::build(&servers, &[tools(&["echo"]), tools(&["echo", "add"])]);
        assert_eq!(again.list_result, snap.list_result);
    }

    #[test]
    fn a_taken_qualified_name_falls_back_to_a_hashed_one() {
        let servers = servers(json!({"servers": [
            {"name": "a", "command": ["x"]}, {"name": "b", "command": ["x"]}
        ]}));
        let snap = Snapshot::build(&servers, &[tools(&["echo", "b_echo"]), tools(&["echo"])]);
        let moved = snap.collisions[0].other_exposed_as.clone().unwrap();
        assert!(
            moved.starts_with("b_echo_") && naming::is_valid_name(&moved),
            "{moved}"
        );
        assert_eq!(route(&snap, &moved), Some((1, "echo".into())));
        assert_eq!(route(&snap, "b_echo"), Some((0, "b_echo".into())));
    }

    #[test]
    fn renames_round_trip_even_onto_another_tools_name() {
        let servers = servers(json!({
            "servers": [{"name": "a", "command": ["x"]}],
            "mapping": {"a": {"prefix": "p_", "rename": {"echo": "say", "add": "echo"}}}
        }));
        let snap = Snapshot::build(&servers, &[tools(&["echo", "add", "sleep"])]);
        assert_eq!(route(&snap, "say"), Some((0, "echo".into())));
        assert_eq!(route(&snap, "echo"), Some((0, "add".into())));
        assert_eq!(route(&snap, "p_sleep"), Some((0, "sleep".into())));
        assert!(route(&snap, "p_echo").is_none());
        assert!(snap.collisions.is_empty());
    }

    #[test]
    fn filters_test_original_names_and_missing_renames_are_noted() {
        let servers = servers(json!({
            "servers": [{"name": "a", "command": ["x"]}],
            "mapping": {"a": {"prefix": "p_", "rename": {"gone": "g"}}},
            "toolFilters": {"a": {"include": ["read_*", "echo"], "exclude": ["*_secret"]}}
        }));
        let snap = Snapshot::build(
            &servers,
            &[tools(&["read_a", "read_secret", "echo", "write"])],
        );
        let names: Vec<&str> = snap.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["p_read_a", "p_echo"]);
        assert_eq!(snap.tool_counts, [2]);
        assert!(
            snap.notes.iter().any(|n| n.contains("\"gone\"")),
            "{:?}",
            snap.notes
        );
    }

    #[test]
    fn definitions_pass_through_with_only_the_name_changed() {
        let servers = servers(json!({
            "servers": [{"name": "a", "command": ["x"]}],
            "mapping": {"a": {"prefix": "p_"}}
        }));
        let def = json!({"name": "t", "description": "d", "inputSchema": {"type": "object", "properties": {"z": {}, "a": {}}},
                         "annotations": {"readOnlyHint": true}});
        let list = Some(Arc::new(vec![def.as_object().unwrap().clone()]));
        let snap = Snapshot::build(&servers, &[list]);
        let listed: Value = serde_json::from_str(&snap.list_result).unwrap();
        let mut expected = def.clone();
        expected["name"] = json!("p_t");
        assert_eq!(listed["tools"][0], expected);
        assert!(
            listed["tools"][0].get("outputSchema").is_none(),
            "absent stays absent"
        );
        // Key order of schemas is kept, so clients see exactly what the server wrote.
        assert!(
            snap.list_result.find("\"z\"").unwrap() < snap.list_result.find("\"a\":{}").unwrap()
        );
        let rest: Value = serde_json::from_str(&snap.rest_body).unwrap();
        assert_eq!(rest["tools"][0]["server"], "a");
        assert_eq!(rest["tools"][0]["originalName"], "t");
    }

    #[test]
    fn malformed_and_duplicate_definitions_are_skipped_with_a_note() {
        let servers = servers(json!({"servers": [{"name": "a", "command": ["x"]}]}));
        let mut list = tools(&["echo", "echo"]).unwrap().as_ref().clone();
        list.push(
            json!({"description": "no name"})
                .as_object()
                .unwrap()
                .clone(),
        );
        let snap = Snapshot::build(&servers, &[Some(Arc::new(list))]);
        assert_eq!(snap.tools.len(), 1);
        assert_eq!(snap.notes.len(), 2, "{:?}", snap.notes);
    }
}
