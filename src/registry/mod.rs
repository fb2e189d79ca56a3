//! The merged view of every server's offerings: one immutable `Snapshot`, rebuilt whole and swapped.
//!
//! Inputs are each server's `Listing` (all pages of its tools, prompts, resources and templates, and
//! its capabilities) in config order; the output routes every exposed tool and prompt name to exactly
//! one (server, original name), every resource URI to a server, and carries the list results
//! pre-serialized in pages, so the reactor answers listings without touching JSON.
//!
//! Collisions are resolved deterministically and reported, never silent: the server listed first in
//! the config keeps the name; a later one gets `<server>_<name>` (or, if that is taken too, a hashed
//! name). Two servers listing the same resource URI: the first serves it. The reports appear in the
//! log, `/health` and `mcp-gateway check`.
//!
//! A snapshot also carries every profile's view of itself (`profile`: a filtered `Snapshot` with its
//! own pages, routes and search index, `search`), and the tools whose definitions differ from their
//! pins (`pin`; the held ones are already absent from the listings it was built from, and keep a
//! refusal that says why).

pub mod manifest;
mod namespace;
pub mod naming;
pub mod pin;
pub mod profile;
pub mod search;
mod uri;

pub use namespace::{Collision, Named, Namespace};

use crate::config::{ServerConfig, ServerKind};
use crate::rpc::stamp::Cache;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use uri::UriTemplate;

/// One definition (tool, prompt, resource or template) as a server sent it.
pub type Def = Map<String, Value>;

/// A tool's definition with the config's override applied: `title` and `description` replaced,
/// `annotations` merged over the server's.
fn overridden(def: &Def, over: &crate::config::ToolOverride) -> Def {
    let mut def = def.clone();
    if let Some(title) = &over.title {
        def.insert("title".into(), Value::String(title.clone()));
    }
    if let Some(description) = &over.description {
        def.insert("description".into(), Value::String(description.clone()));
    }
    if let Some(annotations) = &over.annotations {
        let mut merged = match def.get("annotations") {
            Some(Value::Object(own)) => own.clone(),
            _ => Map::new(),
        };
        for (key, value) in annotations {
            merged.insert(key.clone(), value.clone());
        }
        def.insert("annotations".into(), Value::Object(merged));
    }
    def
}

/// What one server offers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// The `capabilities` of its `initialize` result.
    pub capabilities: Map<String, Value>,
    pub tools: Vec<Def>,
    pub prompts: Vec<Def>,
    pub resources: Vec<Def>,
    pub templates: Vec<Def>,
    /// The caching hints of each list as the server gave them (`ListKind::ALL` order; None: not
    /// listed), for the 2026-07-28 era's merged lists.
    pub cache: [Option<Cache>; 4],
}

/// The paginated lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    pub const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::Templates,
    ];

    /// The result key of the list method.
    pub fn key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::Templates => "resourceTemplates",
        }
    }
}

/// A resource or template with the server that offers it.
#[derive(Debug, Clone)]
pub struct Located {
    pub server: usize,
    pub definition: Def,
}

/// What the gateway can offer clients, from what its servers offer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub resources: bool,
    pub subscribe: bool,
    pub prompts: bool,
    pub logging: bool,
    pub completions: bool,
}

/// The merged, routable view at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub tools: Namespace,
    pub prompts: Namespace,
    pub resources: Vec<Located>,
    pub templates: Vec<Located>,
    uri_routes: HashMap<String, usize>,
    template_routes: Vec<(usize, UriTemplate, String)>,
    /// On a profile's view: the servers whose resources it offers (routes stay those of the full
    /// snapshot, so a URI another server lists is never guessed to be one of these).
    uri_servers: Option<Vec<bool>>,
    pub collisions: Vec<Collision>,
    /// Problems that are not collisions (renames of missing tools, malformed definitions).
    pub notes: Vec<String>,
    /// Tools exposed per server index.
    pub tool_counts: Vec<usize>,
    pub capabilities: Capabilities,
    /// Each server's own capabilities, once known.
    pub server_capabilities: Vec<Option<Map<String, Value>>>,
    /// The caching hints of each merged list (`ListKind::ALL` order): the smallest ttl of the
    /// servers listed in it, private if any of them is.
    pub cache: [Cache; 4],
    /// Pre-serialized pages of each list, in `ListKind::ALL` order.
    pages: [Vec<String>; 4],
    /// `{"tools":[{name, description, inputSchema, server, ...}]}`: the `GET /tools` body.
    pub rest_body: String,
    /// On a profile's view: its name, how it lists tools, its search index (`profile`).
    pub exposure: profile::Exposure,
    /// Every profile's view, in config order; empty on the views themselves.
    pub views: Vec<Arc<Snapshot>>,
    /// Tools whose definition is not the pinned one (`pin`), for `/health`.
    pub changed_tools: Vec<pin::Changed>,
    /// Exposed names of tools withheld until approved (`pin: hold`): (server, why).
    withheld: HashMap<String, (usize, String)>,
    /// Why servers in force wait for an OAuth login (their tools are not known until then): what
    /// a call to a tool nobody lists is told (`Catalog::logins_changed`).
    pub logins: Vec<String>,
}

impl Snapshot {
    /// For a tool `name` no server lists, while servers wait for an OAuth login: what to do
    /// (their tools are not known before a first login). None: nobody waits.
    pub fn login_hint(&self, name: &str) -> Option<String> {
        (!self.logins.is_empty()).then(|| {
            format!(
                "{} (no server listed so far offers tool {name}; a server waiting for a login \
                 lists its tools once logged in)",
                self.logins.join("; ")
            )
        })
    }

    /// Where a call to the tool `name` goes.
    pub fn route(&self, name: &str) -> Option<&Named> {
        self.tools.route(name)
    }

    /// Why a tool name is refused while its definition awaits approval (`pin: hold`).
    pub fn withheld(&self, name: &str) -> Option<&str> {
        self.withheld.get(name).map(|(_, why)| why.as_str())
    }

    pub fn route_prompt(&self, name: &str) -> Option<&Named> {
        self.prompts.route(name)
    }

    /// The server that serves a resource URI: the one that listed it, else the first whose template
    /// matches, else the only server offering resources at all.
    pub fn route_uri(&self, uri: &str) -> Option<usize> {
        self.route_any_uri(uri)
            .filter(|&server| self.serves_uris_of(server))
    }

    /// Whether this snapshot (a profile's view) offers the resources of `server`.
    fn serves_uris_of(&self, server: usize) -> bool {
        self.uri_servers
            .as_ref()
            .is_none_or(|mask| mask.get(server).copied().unwrap_or(false))
    }

    fn route_any_uri(&self, uri: &str) -> Option<usize> {
        if let Some(&server) = self.uri_routes.get(uri) {
            return Some(server);
        }
        if let Some((server, _, _)) = self.template_routes.iter().find(|(_, t, _)| t.matches(uri)) {
            return Some(*server);
        }
        let mut offering = self
            .server_capabilities
            .iter()
            .enumerate()
            .filter(|(_, caps)| caps.as_ref().is_some_and(|c| c.contains_key("resources")));
        match (offering.next(), offering.next()) {
            (Some((server, _)), None) => Some(server),
            _ => None,
        }
    }

    /// The server of a resource template (for completions), by its exact template text or as a URI.
    pub fn route_template(&self, template: &str) -> Option<usize> {
        self.template_routes
            .iter()
            .find(|(_, _, raw)| raw == template)
            .map(|(server, _, _)| *server)
            .filter(|&server| self.serves_uris_of(server))
            .or_else(|| self.route_uri(template))
    }

    /// Whether server `index` declared `capability` (optionally a sub-flag set to true).
    pub fn server_supports(&self, index: usize, capability: &str, flag: Option<&str>) -> bool {
        let Some(Some(caps)) = self.server_capabilities.get(index) else {
            return false;
        };
        match (caps.get(capability), flag) {
            (Some(_), None) => true,
            (Some(c), Some(flag)) => c.get(flag).and_then(Value::as_bool) == Some(true),
            (None, _) => false,
        }
    }

    /// One page of a list: `cursor` is None for the first page, else a `nextCursor` we issued.
    pub fn page(&self, kind: ListKind, cursor: Option<&Value>) -> Result<&str, String> {
        let pages = &self.pages[kind as usize];
        let index = match cursor {
            None => 0,
            Some(cursor) => cursor
                .as_str()
                .and_then(|c| c.strip_prefix(&format!("{}-", kind.key())))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n > 0 && n < pages.len())
                .ok_or_else(|| {
                    format!("Invalid params: unknown cursor {cursor} (list again without one)")
                })?,
        };
        Ok(pages[index].as_str())
    }

    /// Which lists differ from `older`'s: what `list_changed` notifications to send.
    pub fn changed_lists(&self, older: &Snapshot) -> Vec<ListKind> {
        ListKind::ALL
            .into_iter()
            .filter(|&kind| self.pages[kind as usize] != older.pages[kind as usize])
            .collect()
    }

    /// Builds the merged view and every profile's view of it.
    /// (Every server of `servers` in force, in order: a table without reloads.)
    pub fn build_for(
        servers: &[ServerConfig],
        listings: &[Option<Arc<Listing>>],
        page_size: usize,
        profiles: &[crate::config::Profile],
    ) -> Snapshot {
        let current: Vec<usize> = (0..servers.len()).collect();
        Snapshot::build_reviewed(servers, listings, &current, page_size, profiles, Vec::new())
    }

    /// Like `build_for`, with the tools whose definitions changed since they were pinned (the
    /// held ones already left out of `listings`).
    pub fn build_reviewed(
        servers: &[ServerConfig],
        listings: &[Option<Arc<Listing>>],
        current: &[usize],
        page_size: usize,
        profiles: &[crate::config::Profile],
        changed: Vec<pin::Changed>,
    ) -> Snapshot {
        let mut snap = Snapshot::build(servers, listings, current, page_size);
        for change in changed.iter().filter(|c| c.held) {
            let server = &servers[change.server];
            let hidden = server
                .mapping
                .tools
                .iter()
                .any(|(name, over)| *name == change.tool && over.hidden);
            if hidden || !naming::passes(&server.filters, &change.tool) {
                continue;
            }
            let name = naming::exposed_name(&server.mapping, &change.tool);
            let why = if change.new {
                "is new and awaits approval"
            } else {
                "changed its definition since it was pinned and awaits approval"
            };
            let message = format!(
                "Tool {name} (\"{}\" of server {}) {why}: see `mcp-gateway diff {}`, then `mcp-gateway approve {} {}`",
                change.tool, server.name, server.name, server.name, change.tool
            );
            snap.withheld.insert(name, (change.server, message));
        }
        snap.changed_tools = changed;
        snap.views = snap.build_views(servers, profiles, page_size.max(1));
        let notes: Vec<String> = snap.views.iter().flat_map(|v| v.notes.clone()).collect();
        snap.notes.extend(notes);
        snap
    }

    /// Builds the merged view of the servers in force: `current` are their slots in config order
    /// (the first to claim a name keeps it); `servers[slot]` and `listings[slot]` are indexed by
    /// slot, retired ones included. A listing is None when the server never listed (disabled, not
    /// started yet, or failing). Lists are cut into pages of `page_size` items.
    pub fn build(
        servers: &[ServerConfig],
        listings: &[Option<Arc<Listing>>],
        current: &[usize],
        page_size: usize,
    ) -> Snapshot {
        let mut snap = Snapshot {
            tool_counts: vec![0; servers.len()],
            server_capabilities: listings
                .iter()
                .map(|l| l.as_ref().map(|l| l.capabilities.clone()))
                .collect(),
            ..Snapshot::default()
        };
        for &index in current {
            let Some(listing) = listings.get(index).and_then(Option::as_ref) else {
                continue;
            };
            snap.add_tools(servers, index, &listing.tools);
            snap.add_prompts(servers, index, &listing.prompts);
            snap.add_resources(servers, index, listing);
        }
        snap.capabilities = capabilities(servers, listings, current);
        for kind in ListKind::ALL {
            let parts = current
                .iter()
                .filter_map(|&slot| listings[slot].as_ref())
                .filter_map(|l| l.cache[kind as usize]);
            snap.cache[kind as usize] = parts.reduce(Cache::merge).unwrap_or(Cache::LIST_DEFAULT);
        }
        snap.serialize(servers, page_size.max(1));
        snap
    }

    fn add_tools(&mut self, servers: &[ServerConfig], index: usize, tools: &[Def]) {
        let server = &servers[index];
        let mut seen = std::collections::HashSet::new();
        for def in tools {
            let Some(original) = self.named(server, "tool", def, &mut seen) else {
                continue;
            };
            let over = server
                .mapping
                .tools
                .iter()
                .find(|(name, _)| name == original)
                .map(|(_, over)| over);
            if over.is_some_and(|o| o.hidden) || !naming::passes(&server.filters, original) {
                continue;
            }
            let wanted = naming::exposed_name(&server.mapping, original);
            let def = match over {
                Some(over) => std::borrow::Cow::Owned(overridden(def, over)),
                None => std::borrow::Cow::Borrowed(def),
            };
            let before = self.tools.items.len();
            self.tools.add(
                "tool",
                servers,
                index,
                original,
                wanted,
                &def,
                &mut self.collisions,
            );
            self.tool_counts[index] += self.tools.items.len() - before;
        }
        for (from, _) in &server.mapping.rename {
            if !seen.contains(from.as_str()) {
                self.notes.push(format!(
                    "mapping.{}.rename: server {} has no tool named \"{from}\"",
                    server.name, server.name
                ));
            }
        }
        for (name, _) in &server.mapping.tools {
            if !seen.contains(name.as_str()) {
                self.notes.push(format!(
                    "mapping.{}.tools: server {} has no tool named \"{name}\"",
                    server.name, server.name
                ));
            }
        }
    }

    fn add_prompts(&mut self, servers: &[ServerConfig], index: usize, prompts: &[Def]) {
        let server = &servers[index];
        let mut seen = std::collections::HashSet::new();
        for def in prompts {
            if let Some(original) = self.named(server, "prompt", def, &mut seen) {
                let wanted = naming::prefixed_name(&server.mapping, original);
                self.prompts.add(
                    "prompt",
                    servers,
                    index,
                    original,
                    wanted,
                    def,
                    &mut self.collisions,
                );
            }
        }
    }

    /// The definition's `name`, unless it is missing or a duplicate (both noted).
    fn named<'d>(
        &mut self,
        server: &ServerConfig,
        kind: &str,
        def: &'d Def,
        seen: &mut std::collections::HashSet<&'d str>,
    ) -> Option<&'d str> {
        let Some(original) = def.get("name").and_then(Value::as_str) else {
            self.notes.push(format!(
                "server {}: skipped a {kind} without a string \"name\"",
                server.name
            ));
            return None;
        };
        if !seen.insert(original) {
            self.notes.push(format!(
                "server {}: lists {kind} \"{original}\" twice; the first is used",
                server.name
            ));
            return None;
        }
        Some(original)
    }

    fn add_resources(&mut self, servers: &[ServerConfig], index: usize, listing: &Listing) {
        let server = &servers[index];
        for def in &listing.resources {
            let Some(uri) = def.get("uri").and_then(Value::as_str) else {
                self.notes.push(format!(
                    "server {}: skipped a resource without a string \"uri\"",
                    server.name
                ));
                continue;
            };
            if let Some(&holder) = self.uri_routes.get(uri) {
                self.collisions.push(Collision {
                    kind: "resource",
                    name: uri.to_string(),
                    kept_server: servers[holder].name.clone(),
                    kept_original: uri.to_string(),
                    other_server: server.name.clone(),
                    other_original: uri.to_string(),
                    other_exposed_as: None,
                });
                continue;
            }
            self.uri_routes.insert(uri.to_string(), index);
            self.resources.push(Located {
                server: index,
                definition: def.clone(),
            });
        }
        for def in &listing.templates {
            let Some(raw) = def.get("uriTemplate").and_then(Value::as_str) else {
                self.notes.push(format!(
                    "server {}: skipped a resource template without a string \"uriTemplate\"",
                    server.name
                ));
                continue;
            };
            self.template_routes
                .push((index, UriTemplate::parse(raw), raw.to_string()));
            self.templates.push(Located {
                server: index,
                definition: def.clone(),
            });
        }
    }

    fn serialize(&mut self, servers: &[ServerConfig], page_size: usize) {
        let lists: [Vec<&Def>; 4] = [
            self.tools.definitions().collect(),
            self.prompts.definitions().collect(),
            self.resources.iter().map(|r| &r.definition).collect(),
            self.templates.iter().map(|t| &t.definition).collect(),
        ];
        for (kind, items) in ListKind::ALL.into_iter().zip(lists) {
            self.pages[kind as usize] = paginate(kind, &items, page_size);
        }
        let rest: Vec<Value> = self
            .tools
            .items
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

/// `{"<key>":[...],"nextCursor":"<key>-<n>"}` pages; at least one, even when empty.
fn paginate(kind: ListKind, items: &[&Def], page_size: usize) -> Vec<String> {
    let chunks: Vec<&[&Def]> = if items.is_empty() {
        vec![&[]]
    } else {
        items.chunks(page_size).collect()
    };
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(n, chunk)| {
            // Serialized from the definitions in place (no copy into a `Value` first).
            let items = serde_json::to_string(chunk).expect("JSON values serialize");
            let mut page = format!("{{\"{}\":{items}", kind.key());
            if n < last {
                page.push_str(&format!(",\"nextCursor\":\"{}-{}\"", kind.key(), n + 1));
            }
            page.push('}');
            page
        })
        .collect()
}

/// What to advertise: a capability is on when a server that listed offers it, or while an enabled
/// local server has not listed yet (it may offer it; its lists appear when it comes up).
fn capabilities(
    servers: &[ServerConfig],
    listings: &[Option<Arc<Listing>>],
    current: &[usize],
) -> Capabilities {
    let pending = current.iter().any(|&slot| {
        let server = &servers[slot];
        server.enabled && matches!(server.kind, ServerKind::Local(_)) && listings[slot].is_none()
    });
    let listed = || current.iter().filter_map(|&slot| listings[slot].as_ref());
    let any =
        |capability: &str| pending || listed().any(|l| l.capabilities.contains_key(capability));
    Capabilities {
        resources: any("resources"),
        subscribe: listed().any(|l| {
            l.capabilities
                .get("resources")
                .and_then(|r| r.get("subscribe"))
                .and_then(Value::as_bool)
                == Some(true)
        }),
        prompts: any("prompts"),
        logging: any("logging"),
        completions: any("completions"),
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

    fn tools(names: &[&str]) -> Option<Arc<Listing>> {
        with_tools(
            names
                .iter()
                .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
                .map(|v| v.as_object().unwrap().clone())
                .collect(),
        )
    }

    fn with_tools(tools: Vec<Def>) -> Option<Arc<Listing>> {
        Some(Arc::new(Listing {
            tools,
            ..Listing::default()
        }))
    }

    fn build(servers: &[ServerConfig], listings: &[Option<Arc<Listing>>]) -> Snapshot {
        Snapshot::build(
            servers,
            listings,
            &(0..servers.len()).collect::<Vec<_>>(),
            100,
        )
    }

    fn first_page(snap: &Snapshot, kind: ListKind) -> Value {
        serde_json::from_str(snap.page(kind, None).unwrap()).unwrap()
    }

    fn route(snap: &Snapshot, name: &str) -> Option<(usize, String)> {
        snap.route(name).map(|t| (t.server, t.original.clone()))
    }

    #[test]
    fn tool_overrides_change_what_clients_see_and_calls_still_reach_the_original() {
        let servers = servers(json!({
            "servers": [{"name": "a", "command": ["x"]}],
            "mapping": {"a": {"prefix": "p_", "tools": {
                "echo": {"name": "say", "description": "Says it back", "title": "Say",
                         "annotations": {"readOnlyHint": true}},
                "sleep": {"hidden": true},
                "gone": {"description": "x"}
            }}}
        }));
        let mut listing = (*tools(&["echo", "add", "sleep"]).unwrap()).clone();
        listing.tools[0].insert("annotations".into(), json!({"openWorldHint": false}));
        let snap = build(&servers, &[Some(Arc::new(listing))]);
        assert_eq!(route(&snap, "say"), Some((0, "echo".into())));
        assert_eq!(route(&snap, "p_add"), Some((0, "add".into())));
        assert!(
            route(&snap, "p_sleep").is_none(),
            "hidden: as if it did not exist"
        );
        let page = first_page(&snap, ListKind::Tools);
        let say = page["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "say")
            .unwrap();
        assert_eq!(say["description"], "Says it back");
        assert_eq!(say["title"], "Say");
        assert_eq!(
            say["annotations"],
            json!({"openWorldHint": false, "readOnlyHint": true}),
            "merged over the server's"
        );
        assert_eq!(page["tools"].as_array().unwrap().len(), 2);
        assert_eq!(
            snap.notes,
            ["mapping.a.tools: server a has no tool named \"gone\""]
        );
    }

    #[test]
    fn first_server_keeps_a_colliding_name_and_the_other_is_qualified() {
        let servers = servers(json!({"servers": [
            {"name": "a", "command": ["x"]}, {"name": "b", "command": ["x"]}
        ]}));
        let snap = build(&servers, &[tools(&["echo"]), tools(&["echo", "add"])]);
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
        let again = build(&servers, &[tools(&["echo"]), tools(&["echo", "add"])]);
        assert_eq!(
            first_page(&again, ListKind::Tools),
            first_page(&snap, ListKind::Tools)
        );
    }

    #[test]
    fn a_taken_qualified_name_falls_back_to_a_hashed_one() {
        let servers = servers(json!({"servers": [
            {"name": "a", "command": ["x"]}, {"name": "b", "command": ["x"]}
        ]}));
        let snap = build(&servers, &[tools(&["echo", "b_echo"]), tools(&["echo"])]);
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
        let snap = build(&servers, &[tools(&["echo", "add", "sleep"])]);
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
        let snap = build(
            &servers,
            &[tools(&["read_a", "read_secret", "echo", "write"])],
        );
        let names: Vec<&str> = snap.tools.items.iter().map(|t| t.name.as_str()).collect();
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
        let snap = build(
            &servers,
            &[with_tools(vec![def.as_object().unwrap().clone()])],
        );
        let listed = first_page(&snap, ListKind::Tools);
        let text = snap.page(ListKind::Tools, None).unwrap();
        let mut expected = def.clone();
        expected["name"] = json!("p_t");
        assert_eq!(listed["tools"][0], expected);
        assert!(
            listed["tools"][0].get("outputSchema").is_none(),
            "absent stays absent"
        );
        // Key order of schemas is kept, so clients see exactly what the server wrote.
        assert!(text.find("\"z\"").unwrap() < text.find("\"a\":{}").unwrap());
        let rest: Value = serde_json::from_str(&snap.rest_body).unwrap();
        assert_eq!(rest["tools"][0]["server"], "a");
        assert_eq!(rest["tools"][0]["originalName"], "t");
    }

    #[test]
    fn malformed_and_duplicate_definitions_are_skipped_with_a_note() {
        let servers = servers(json!({"servers": [{"name": "a", "command": ["x"]}]}));
        let mut list = tools(&["echo", "echo"]).unwrap().tools.clone();
        list.push(
            json!({"description": "no name"})
                .as_object()
                .unwrap()
                .clone(),
        );
        let snap = build(&servers, &[with_tools(list)]);
        assert_eq!(snap.tools.items.len(), 1);
        assert_eq!(snap.notes.len(), 2, "{:?}", snap.notes);
    }
}

#[cfg(test)]
mod listing_tests {
    use super::*;
    use serde_json::json;

    fn servers(n: usize) -> Vec<ServerConfig> {
        let list: Vec<Value> = (0..n)
            .map(|i| json!({"name": format!("s{i}"), "command": ["x"]}))
            .collect();
        let mut config = json!({"servers": list});
        if n > 1 {
            config["mapping"] = json!({"s1": {"prefix": "b_"}});
        }
        crate::config::parse_str(&config.to_string(), &|_| None)
            .unwrap()
            .servers
    }

    fn defs(values: Value) -> Vec<Def> {
        values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect()
    }

    fn listing(
        caps: Value,
        prompts: Value,
        resources: Value,
        templates: Value,
    ) -> Option<Arc<Listing>> {
        Some(Arc::new(Listing {
            capabilities: caps.as_object().unwrap().clone(),
            tools: Vec::new(),
            prompts: defs(prompts),
            resources: defs(resources),
            templates: defs(templates),
            cache: Default::default(),
        }))
    }

    #[test]
    fn prompts_take_prefixes_and_resources_route_by_uri_then_template() {
        let servers = servers(2);
        let a = listing(
            json!({"prompts": {}, "resources": {"subscribe": true}}),
            json!([{"name": "greet"}]),
            json!([{"uri": "a://one", "name": "one"}, {"uri": "shared://x", "name": "x"}]),
            json!([{"uriTemplate": "a://item/{id}", "name": "item"}]),
        );
        let b = listing(
            json!({"prompts": {}, "resources": {}}),
            json!([{"name": "greet"}]),
            json!([{"uri": "shared://x", "name": "x"}]),
            json!([{"uriTemplate": "b://{+path}", "name": "any"}]),
        );
        let snap = Snapshot::build(&servers, &[a, b], &[0, 1], 100);
        assert_eq!(snap.route_prompt("greet").map(|p| p.server), Some(0));
        assert_eq!(
            snap.route_prompt("b_greet").map(|p| p.original.as_str()),
            Some("greet")
        );
        assert!(
            !snap.collisions.iter().any(|c| c.kind == "prompt"),
            "b's prompt is prefixed: no collision"
        );
        assert_eq!(snap.route_uri("a://one"), Some(0));
        assert_eq!(
            snap.route_uri("shared://x"),
            Some(0),
            "the first server listing a URI serves it"
        );
        assert_eq!(snap.route_uri("a://item/7"), Some(0));
        assert_eq!(snap.route_uri("b://deep/path"), Some(1));
        assert_eq!(
            snap.route_uri("c://nothing"),
            None,
            "two servers offer resources: no guess"
        );
        assert_eq!(snap.route_template("b://{+path}"), Some(1));
        assert_eq!(snap.resources.len(), 2);
        assert!(snap
            .collisions
            .iter()
            .any(|c| c.kind == "resource" && c.name == "shared://x"));
        assert!(snap.capabilities.subscribe && snap.capabilities.prompts);
        assert!(!snap.capabilities.completions);
        assert!(snap.server_supports(0, "resources", Some("subscribe")));
        assert!(!snap.server_supports(1, "resources", Some("subscribe")));
    }

    #[test]
    fn lists_are_paged_with_our_own_cursors() {
        let servers = servers(1);
        let prompts = json!([{"name": "p1"}, {"name": "p2"}, {"name": "p3"}]);
        let snap = Snapshot::build(
            &servers,
            &[listing(
                json!({"prompts": {}}),
                prompts,
                json!([]),
                json!([]),
            )],
            &[0],
            2,
        );
        let first: Value =
            serde_json::from_str(snap.page(ListKind::Prompts, None).unwrap()).unwrap();
        assert_eq!(first["prompts"].as_array().unwrap().len(), 2);
        let cursor = first["nextCursor"].clone();
        let second: Value =
            serde_json::from_str(snap.page(ListKind::Prompts, Some(&cursor)).unwrap()).unwrap();
        assert_eq!(second["prompts"][0]["name"], "p3");
        assert!(second.get("nextCursor").is_none());
        for bad in [
            json!("prompts-9"),
            json!("tools-1"),
            json!(3),
            json!("prompts-0"),
        ] {
            assert!(snap.page(ListKind::Prompts, Some(&bad)).is_err(), "{bad}");
        }
        let empty: Value = serde_json::from_str(snap.page(ListKind::Tools, None).unwrap()).unwrap();
        assert_eq!(empty, json!({"tools": []}));
    }

    #[test]
    fn capabilities_are_optimistic_while_a_server_has_not_listed_yet() {
        let servers = servers(2);
        let known = listing(json!({"tools": {}}), json!([]), json!([]), json!([]));
        let snap = Snapshot::build(&servers, &[known.clone(), None], &[0, 1], 100);
        assert!(snap.capabilities.prompts && snap.capabilities.resources);
        let snap = Snapshot::build(&servers, &[known.clone(), known], &[0, 1], 100);
        assert!(!snap.capabilities.prompts && !snap.capabilities.resources);
    }
}
