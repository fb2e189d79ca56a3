//! A set of named items (tools, or prompts) merged from all servers under one namespace: exposed
//! names are unique, each routes back to one (server, original name), and every collision is
//! recorded.

use super::naming;
use crate::config::ServerConfig;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;

/// An item as clients see it.
#[derive(Debug, Clone)]
pub struct Named {
    /// Exposed name (valid for every client).
    pub name: String,
    /// Index of the server in the config.
    pub server: usize,
    /// The server's own name for it: what goes downstream.
    pub original: String,
    /// The definition with `name` replaced; every other field untouched (absent stays absent).
    pub definition: Map<String, Value>,
}

/// Two items wanted the same exposed name (or two resources the same URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// "tool", "prompt" or "resource".
    pub kind: &'static str,
    pub name: String,
    pub kept_server: String,
    pub kept_original: String,
    pub other_server: String,
    pub other_original: String,
    /// What the other item is exposed as instead (None: not exposed).
    pub other_exposed_as: Option<String>,
}

impl fmt::Display for Collision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == "resource" {
            return write!(
                f,
                "resource {} is listed by servers {} and {}; {} serves it",
                self.name, self.kept_server, self.other_server, self.kept_server
            );
        }
        write!(
            f,
            "{} name \"{}\" is wanted by \"{}\" of server {} and \"{}\" of server {}; {} keeps it",
            self.kind,
            self.name,
            self.kept_original,
            self.kept_server,
            self.other_original,
            self.other_server,
            self.kept_server
        )?;
        match &self.other_exposed_as {
            Some(name) => write!(f, ", the other is exposed as \"{name}\""),
            None => write!(f, ", the other is not exposed"),
        }
    }
}

/// Items by exposed name, in exposure order.
#[derive(Debug, Default, Clone)]
pub struct Namespace {
    pub items: Vec<Named>,
    by_name: HashMap<String, usize>,
}

impl Namespace {
    pub fn route(&self, name: &str) -> Option<&Named> {
        self.by_name.get(name).map(|&i| &self.items[i])
    }

    /// Adds server `index`'s item `original` under the name it `wanted`. On a collision the holder
    /// (an earlier server in config order, or an earlier item) keeps the name and this one gets
    /// `<server>_<name>`, or a hashed name if that is taken too.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        kind: &'static str,
        servers: &[ServerConfig],
        index: usize,
        original: &str,
        wanted: String,
        definition: &Map<String, Value>,
        collisions: &mut Vec<Collision>,
    ) {
        let server = &servers[index];
        let name = match self.by_name.get(&wanted) {
            None => wanted,
            Some(&holder) => {
                let qualified = naming::qualified_name(&server.name, &server.mapping, original);
                let hashed =
                    naming::hashed_name(&qualified, &format!("{}/{original}", server.name));
                let free = [qualified, hashed]
                    .into_iter()
                    .find(|n| !self.by_name.contains_key(n));
                let holder = &self.items[holder];
                collisions.push(Collision {
                    kind,
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
        let mut definition = definition.clone();
        definition.insert("name".into(), Value::String(name.clone()));
        self.by_name.insert(name.clone(), self.items.len());
        self.items.push(Named {
            name,
            server: index,
            original: original.to_string(),
            definition,
        });
    }

    /// Adds an item whose exposed name is known to be free (a profile's view of a namespace).
    pub(super) fn insert(&mut self, item: Named) {
        self.by_name.insert(item.name.clone(), self.items.len());
        self.items.push(item);
    }

    /// The definitions, for listing.
    pub fn definitions(&self) -> impl Iterator<Item = &Map<String, Value>> {
        self.items.iter().map(|item| &item.definition)
    }
}
