//! Profiles: each one a view of the merged snapshot, built with it (off the reactor) and swapped
//! with it, so a request to `/mcp/<profile>` costs a lookup, never a filter.
//!
//! A view is itself a `Snapshot`: the tools of the profile's servers whose exposed names (as in the
//! full catalog, so a glob means the same in every profile) pass its `include`/`exclude` globs, the
//! prompts and resources of its servers unless turned off, with its own pages, routes and
//! `GET /tools` body. Names longer than the profile's `maxToolNameLength` are shortened with the
//! stable-hash rule of `naming`; a shortened name that is taken already gets a hash of its
//! (server, original) instead, and if that is taken too the tool is left out with a note. A view
//! also carries its `Exposure`: whether clients get the catalog or the three search tools, and the
//! search index over its tools.

use super::naming;
use super::search::Index;
use super::{Def, ListKind, Named, Snapshot};
use crate::config::{Profile, ServerConfig, ToolExposure};
use serde_json::{json, Value};
use std::sync::Arc;

/// The three tools a profile in search mode lists instead of its catalog.
pub const SEARCH_TOOLS: [&str; 3] = ["search_tools", "describe_tools", "call_tool"];

/// Clients that search tools themselves (by their `clientInfo.name`): `auto` never hides the
/// catalog from them.
const SELF_SEARCHING_CLIENTS: &[&str] = &["claude-code", "claude code"];

/// How a view lists its tools, with what it needs for search.
#[derive(Debug, Default)]
pub struct Exposure {
    /// The profile's name.
    pub profile: String,
    pub mode: ToolExposure,
    /// `maxTools`: the `auto` threshold.
    pub max_tools: usize,
    /// BM25 over the view's tools, in `tools.items` order (empty with `toolExposure: all`).
    pub index: Index,
    /// The `tools/list` result in search mode: the three search tools.
    pub search_page: String,
    /// Bytes of the catalog as `tools/list` sends it (its pages).
    pub catalog_bytes: usize,
    /// Bytes of the three search tools' definitions.
    pub search_bytes: usize,
}

/// Whether a client of this name searches tools itself (Claude Code does).
/// Whether a client's `clientInfo` names one that searches tools itself.
pub fn client_info_searches(client_info: Option<&serde_json::Value>) -> bool {
    client_info
        .and_then(|info| info.get("name"))
        .and_then(serde_json::Value::as_str)
        .is_some_and(searches_tools_itself)
}

pub fn searches_tools_itself(client_name: &str) -> bool {
    let name = client_name.to_ascii_lowercase();
    SELF_SEARCHING_CLIENTS.iter().any(|c| name.starts_with(c))
}

impl Snapshot {
    /// The view of a profile, by name.
    pub fn view(&self, profile: &str) -> Option<&Arc<Snapshot>> {
        self.views.iter().find(|v| v.exposure.profile == profile)
    }

    /// The profiles' names, in config order.
    pub fn profile_names(&self) -> Vec<&str> {
        self.views
            .iter()
            .map(|v| v.exposure.profile.as_str())
            .collect()
    }

    /// Whether a client is shown the search tools instead of the catalog: always with
    /// `"search"`; with `"auto"` when the view has more than `maxTools` tools and the client does
    /// not search tools itself.
    pub fn searching(&self, client_searches_itself: bool) -> bool {
        match self.exposure.mode {
            ToolExposure::All => false,
            ToolExposure::Search => true,
            ToolExposure::Auto => {
                self.tools.items.len() > self.exposure.max_tools && !client_searches_itself
            }
        }
    }

    /// Every profile's view of this (full) snapshot.
    pub(super) fn build_views(
        &self,
        servers: &[ServerConfig],
        profiles: &[Profile],
        page_size: usize,
    ) -> Vec<Arc<Snapshot>> {
        profiles
            .iter()
            .map(|profile| Arc::new(self.view_of(servers, profile, page_size)))
            .collect()
    }

    fn view_of(&self, servers: &[ServerConfig], profile: &Profile, page_size: usize) -> Snapshot {
        let member: Vec<bool> = servers
            .iter()
            .map(|s| {
                profile
                    .servers
                    .as_ref()
                    .is_none_or(|list| list.contains(&s.name))
            })
            .collect();
        let within = |server: usize| member.get(server).copied().unwrap_or(false);
        let mut view = Snapshot {
            tool_counts: vec![0; servers.len()],
            ..Snapshot::default()
        };
        let max = profile.max_tool_name_length;
        for tool in &self.tools.items {
            if !within(tool.server) || !naming::passes(&profile.tools, &tool.name) {
                continue;
            }
            let key = format!("{}/{}", servers[tool.server].name, tool.original);
            let name = [
                naming::shorten(&tool.name, max, &tool.name),
                naming::shorten(&tool.name, max, &key),
            ]
            .into_iter()
            .find(|name| view.tools.route(name).is_none());
            let Some(name) = name else {
                view.notes.push(format!(
                    "profile {}: tool \"{}\" does not fit maxToolNameLength {max} without taking another tool's name; it is left out",
                    profile.name, tool.name
                ));
                continue;
            };
            view.tool_counts[tool.server] += 1;
            view.tools.insert(renamed(tool, name));
        }
        for (name, (server, why)) in &self.withheld {
            if within(*server) {
                let name = naming::shorten(name, max, name);
                view.withheld.insert(name, (*server, why.clone()));
            }
        }
        if profile.prompts {
            for prompt in self.prompts.items.iter().filter(|p| within(p.server)) {
                view.prompts.insert(renamed(prompt, prompt.name.clone()));
            }
        }
        // Routes are the full snapshot's, filtered by server: a URI listed by a server outside
        // the profile is not found, rather than guessed to belong to one inside.
        view.uri_routes = self.uri_routes.clone();
        view.template_routes = self.template_routes.clone();
        view.uri_servers = Some(
            (0..servers.len())
                .map(|index| profile.resources && within(index))
                .collect(),
        );
        if profile.resources {
            let located = |items: &[super::Located]| -> Vec<super::Located> {
                items
                    .iter()
                    .filter(|r| within(r.server))
                    .map(|r| super::Located {
                        server: r.server,
                        definition: r.definition.clone(),
                    })
                    .collect()
            };
            view.resources = located(&self.resources);
            view.templates = located(&self.templates);
        }
        view.server_capabilities = self
            .server_capabilities
            .iter()
            .enumerate()
            .map(|(index, caps)| {
                let mut caps = caps.clone().filter(|_| within(index))?;
                if !profile.prompts {
                    caps.remove("prompts");
                }
                if !profile.resources {
                    caps.remove("resources");
                }
                Some(caps)
            })
            .collect();
        // The merged lists' caching hints: the whole catalog's, at least as strict as the view's own.
        view.cache = self.cache;
        view.capabilities = super::Capabilities {
            resources: self.capabilities.resources && profile.resources,
            subscribe: self.capabilities.subscribe && profile.resources,
            prompts: self.capabilities.prompts && profile.prompts,
            ..self.capabilities
        };
        if self.lists_same_as(&view) {
            // Every list as the full catalog's, item for item (the default profile, usually):
            // its pages and `GET /tools` body are the catalog's, not serialized again.
            view.pages = self.pages.clone();
            view.rest_body = self.rest_body.clone();
        } else {
            view.serialize(servers, page_size);
        }
        let catalog_bytes = view.pages_of(ListKind::Tools).iter().map(String::len).sum();
        let search_tools = search_tools(view.tools.items.len());
        view.exposure = Exposure {
            profile: profile.name.clone(),
            mode: profile.tool_exposure,
            max_tools: profile.max_tools,
            // A profile that never searches needs no index.
            index: match profile.tool_exposure {
                ToolExposure::All => Index::default(),
                _ => Index::build(view.tools.definitions()),
            },
            search_page: json!({ "tools": search_tools }).to_string(),
            catalog_bytes,
            search_bytes: search_tools.iter().map(|t| t.to_string().len()).sum(),
        };
        view
    }

    /// Whether `view` (built from this snapshot) lists exactly what this one does. Its lists are
    /// this one's, filtered in order, and a tool renamed or left out changes a name or the count;
    /// so equal counts (and equal tool names) mean equal lists.
    fn lists_same_as(&self, view: &Snapshot) -> bool {
        view.tools.items.len() == self.tools.items.len()
            && view.prompts.items.len() == self.prompts.items.len()
            && view.resources.len() == self.resources.len()
            && view.templates.len() == self.templates.len()
            && view
                .tools
                .items
                .iter()
                .zip(&self.tools.items)
                .all(|(mine, theirs)| mine.name == theirs.name)
    }

    /// The pages of a list.
    pub fn pages_of(&self, kind: ListKind) -> &[String] {
        &self.pages[kind as usize]
    }
}

fn renamed(item: &Named, name: String) -> Named {
    let mut definition: Def = item.definition.clone();
    definition.insert("name".into(), Value::String(name.clone()));
    Named {
        name,
        server: item.server,
        original: item.original.clone(),
        definition,
    }
}

/// The definitions of `search_tools`, `describe_tools` and `call_tool`.
fn search_tools(count: usize) -> [Value; 3] {
    [
        json!({
            "name": SEARCH_TOOLS[0],
            "title": "Search tools",
            "description": format!(
                "Find the tools for a task among the {count} tools of this gateway: describe what you want to do in a few words; returns the best matches, each with its name and a one-line description. Then get their input schemas with describe_tools and run one with call_tool."
            ),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Words describing the task, e.g. \"read a file\""},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10, "description": "At most this many matches (default 10)"}
                },
                "required": ["query"]
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        }),
        json!({
            "name": SEARCH_TOOLS[1],
            "title": "Describe tools",
            "description": "Full definitions (description and input schema) of tools found with search_tools, by name.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "names": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "Tool names, as search_tools gave them"}
                },
                "required": ["names"]
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        }),
        json!({
            "name": SEARCH_TOOLS[2],
            "title": "Call a tool",
            "description": "Runs a tool found with search_tools with the given arguments (matching the input schema describe_tools gave) and returns that tool's own result.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The tool's name"},
                    "arguments": {"type": "object", "description": "The tool's arguments"}
                },
                "required": ["name"]
            }
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Listing;
    use serde_json::json;

    fn config(v: Value) -> crate::config::Config {
        crate::config::parse_str(&v.to_string(), &|_| None).unwrap()
    }

    fn listing(tools: &[&str], prompts: &[&str], resources: &[&str]) -> Option<Arc<Listing>> {
        let defs = |items: &[&str], key: &str| {
            items
                .iter()
                .map(|n| json!({key: n, "name": n, "description": format!("does {n}")}))
                .map(|v| v.as_object().unwrap().clone())
                .collect()
        };
        Some(Arc::new(Listing {
            capabilities: json!({"tools": {}, "prompts": {}, "resources": {}})
                .as_object()
                .unwrap()
                .clone(),
            tools: defs(tools, "name"),
            prompts: defs(prompts, "name"),
            resources: defs(resources, "uri"),
            templates: Vec::new(),
            ..Listing::default()
        }))
    }

    fn names(view: &Snapshot) -> Vec<&str> {
        view.tools.items.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn views_filter_by_server_glob_and_kind() {
        let config = config(json!({
            "servers": [{"name": "a", "command": ["x"]}, {"name": "b", "command": ["x"]}],
            "mapping": {"b": {"prefix": "b_"}},
            "profiles": {
                "only-b": {"servers": ["b"], "exclude": ["*_secret"], "prompts": false},
                "echoes": {"include": ["echo", "b_echo"], "resources": false}
            }
        }));
        let listings = [
            listing(&["echo", "add"], &["greet"], &["a://one"]),
            listing(&["echo", "secret"], &["hello"], &["b://two"]),
        ];
        let snap = Snapshot::build_for(&config.servers, &listings, 100, &config.profiles);
        assert_eq!(snap.profile_names(), ["default", "only-b", "echoes"]);
        let everything = snap.view("default").unwrap();
        assert_eq!(names(everything), names(&snap));
        let only_b = snap.view("only-b").unwrap();
        assert_eq!(names(only_b), ["b_echo"]);
        assert_eq!(
            only_b.route("b_echo").map(|t| t.original.as_str()),
            Some("echo")
        );
        assert!(
            only_b.route("echo").is_none(),
            "outside the profile: unknown"
        );
        assert!(only_b.route_prompt("b_hello").is_none() && !only_b.capabilities.prompts);
        assert_eq!(only_b.route_uri("b://two"), Some(1));
        assert_eq!(only_b.route_uri("a://one"), None, "resources by server");
        assert_eq!(only_b.tool_counts, [0, 1]);
        let echoes = snap.view("echoes").unwrap();
        assert_eq!(names(echoes), ["echo", "b_echo"]);
        assert!(echoes.resources.is_empty() && echoes.route_uri("a://one").is_none());
        assert_eq!(echoes.route_prompt("greet").map(|p| p.server), Some(0));
        let rest: Value = serde_json::from_str(&echoes.rest_body).unwrap();
        assert_eq!(rest["tools"].as_array().unwrap().len(), 2);
        assert!(snap.view("nope").is_none());
        assert!(echoes.exposure.catalog_bytes > 0 && echoes.exposure.index.is_empty());
    }

    #[test]
    fn a_view_shares_the_catalogs_pages_only_when_it_lists_the_same() {
        let long = "a_tool_with_a_name_far_longer_than_the_budget";
        let config = config(json!({
            "servers": [{"name": "a", "command": ["x"]}, {"name": "b", "command": ["x"]}],
            "mapping": {"b": {"prefix": "b_"}},
            "profiles": {
                "both": {"servers": ["a", "b"]},
                "short": {"maxToolNameLength": 20},
                "no-prompts": {"prompts": false},
                "no-echo": {"exclude": ["echo"]}
            }
        }));
        let listings = [
            listing(&["echo", long], &["greet"], &["a://one"]),
            listing(&["echo"], &["hello"], &["b://two"]),
        ];
        let snap = Snapshot::build_for(&config.servers, &listings, 1, &config.profiles);
        for view in &snap.views {
            let mut again = Snapshot {
                tools: view.tools.clone(),
                prompts: view.prompts.clone(),
                resources: view.resources.clone(),
                templates: view.templates.clone(),
                ..Snapshot::default()
            };
            again.serialize(&config.servers, 1);
            let profile = &view.exposure.profile;
            assert_eq!(again.pages, view.pages, "profile {profile}");
            assert_eq!(again.rest_body, view.rest_body, "profile {profile}");
            let shared = matches!(profile.as_str(), "default" | "both");
            assert_eq!(view.pages == snap.pages, shared, "profile {profile}");
        }
    }

    #[test]
    fn names_fit_the_budget_and_still_route() {
        let long = "a_tool_with_a_name_far_longer_than_the_budget";
        let config = config(json!({
            "servers": [{"name": "a", "command": ["x"]}],
            "profiles": {"short": {"maxToolNameLength": 20}}
        }));
        let snap = Snapshot::build_for(
            &config.servers,
            &[listing(&[long, "echo"], &[], &[])],
            100,
            &config.profiles,
        );
        let short = snap.view("short").unwrap();
        let exposed = names(short);
        assert_eq!(exposed[1], "echo");
        assert!(
            exposed[0].len() <= 20 && naming::is_valid_name(exposed[0]),
            "{exposed:?}"
        );
        assert_eq!(
            short.route(exposed[0]).map(|t| t.original.as_str()),
            Some(long)
        );
        let page: Value = serde_json::from_str(short.page(ListKind::Tools, None).unwrap()).unwrap();
        assert_eq!(page["tools"][0]["name"], exposed[0]);
        assert!(snap.view("default").unwrap().route(long).is_some());
    }

    #[test]
    fn search_mode_follows_exposure_count_and_client() {
        let config = config(json!({
            "servers": [{"name": "a", "command": ["x"]}],
            "profiles": {"s": {"toolExposure": "search"}, "auto": {"toolExposure": "auto", "maxTools": 2}}
        }));
        let build = |tools: &[&str]| {
            Snapshot::build_for(
                &config.servers,
                &[listing(tools, &[], &[])],
                100,
                &config.profiles,
            )
        };
        let two = build(&["x", "y"]);
        assert!(!two.view("default").unwrap().searching(false));
        assert!(two.view("s").unwrap().searching(true));
        assert!(
            !two.view("auto").unwrap().searching(false),
            "within maxTools"
        );
        let three = build(&["x", "y", "z"]);
        assert!(
            three.view("auto").unwrap().searching(false),
            "above maxTools"
        );
        assert!(
            !three.view("auto").unwrap().searching(true),
            "a client that searches itself"
        );
        let page: Value =
            serde_json::from_str(&three.view("s").unwrap().exposure.search_page).unwrap();
        let listed: Vec<&str> = page["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(listed, SEARCH_TOOLS);
        assert!(searches_tools_itself("claude-code") && searches_tools_itself("Claude Code"));
        assert!(!searches_tools_itself("cursor"));
    }
}
