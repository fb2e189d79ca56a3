//! The server table: every server the gateway has had since it started, by slot, and what a
//! reload does to it.
//!
//! A slot is one server *definition* (its kind, command or URL, environment, pool settings,
//! timeouts, `enabled`), and its index never changes meaning: jobs, child events, listings and
//! subscriptions name servers by slot, so every one of them stays true across reloads. A reload
//! appends slots for new and changed servers and retires the slots of changed and removed ones;
//! `current` lists the slots in force, in config order. Only a server's surface (`mapping`,
//! `toolFilters`, `pin`, `pinNew`) may change inside its slot: it never reaches a process.
//!
//! A `Servers` is a value: whoever holds one has a consistent view, and a newer table only adds to
//! an older one (same slots, same pools, more after them). `LiveServers` is the one shared cell the
//! threads that carry calls read the newest table from; the supervisor, which applies reloads,
//! is its only writer, and writes it before anything can name a new slot.

use super::link::ServerPool;
use super::remote::link::Target;
use crate::config::{ServerConfig, ServerKind};
use crate::job::ReactorSink;
use crate::pool::{Doorbell, Pool, Status};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Makes a slot's pool, at start and on every reload.
#[derive(Clone)]
pub struct PoolMaker {
    /// `gateway.maxMessageBytes` (fixed until a restart).
    pub max_message: usize,
    /// `gateway.stateDir` (fixed until a restart): where remote servers' OAuth logins live.
    pub state_dir: Option<std::path::PathBuf>,
    pub sink: ReactorSink,
    pub doorbell: Doorbell,
}

impl PoolMaker {
    /// A server's pool and, for a remote server, where it is and how to trust it. A disabled
    /// server gets a pool that says so; a remote whose settings cannot work (a bad `caFile`) one
    /// that says why.
    pub fn make(&self, server: &ServerConfig) -> (Arc<ServerPool>, Option<Arc<Target>>) {
        let pool = Pool::new(
            server.name.as_str().into(),
            server.pool,
            self.sink.clone(),
            self.doorbell.clone(),
        );
        if !server.enabled {
            let reason = format!("server {} is disabled", server.name);
            return (Arc::new(pool.unusable(Status::Disabled, reason)), None);
        }
        match &server.kind {
            ServerKind::Remote(remote) => match Target::new(remote, self.max_message) {
                Ok(target) => {
                    let auth = remote.auth.as_ref().map(|settings| {
                        let auth = crate::oauth::Auth::new(
                            &server.name,
                            &target.url,
                            settings,
                            self.state_dir.as_deref(),
                        );
                        Arc::new(auth)
                    });
                    (Arc::new(pool), Some(Arc::new(target.with_auth(auth))))
                }
                Err(problem) => {
                    let reason = format!("server {}: {problem}", server.name);
                    (Arc::new(pool.unusable(Status::Down, reason)), None)
                }
            },
            ServerKind::Local(_) => (Arc::new(pool), None),
        }
    }
}

/// Every slot's definition and pool, and which slots are in force.
#[derive(Clone)]
pub struct Servers {
    /// By slot, retired ones included.
    pub configs: Arc<[ServerConfig]>,
    /// By slot: each slot's pool, for as long as the gateway runs.
    pub pools: Arc<[Arc<ServerPool>]>,
    /// The slots of the servers in the config now, in file order.
    pub current: Arc<[usize]>,
}

/// What a reload does to one server of the new config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Same definition and surface: keeps its slot, processes and calls.
    Kept(usize),
    /// Same definition, new `mapping`/`toolFilters`: keeps its slot and processes; the registry
    /// is rebuilt.
    Resurfaced(usize),
    /// A new definition: a new slot; the old one (`was`) is drained and stopped.
    Changed { was: usize },
    /// Not in the old config: a new slot.
    Added,
}

/// The difference between the table in force and a new config's servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One per server of the new config, in its order.
    pub fates: Vec<Fate>,
    /// Slots in force whose server is not in the new config.
    pub removed: Vec<usize>,
}

impl Plan {
    /// Whether the reload changes anything about the servers at all.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.fates.iter().all(|f| matches!(f, Fate::Kept(_)))
    }
}

/// Whether two configs of the same server start the same processes the same way.
fn same_definition(a: &ServerConfig, b: &ServerConfig) -> bool {
    a.name == b.name
        && a.kind == b.kind
        && a.enabled == b.enabled
        && a.pool == b.pool
        && a.call_timeout == b.call_timeout
        && a.init_timeout == b.init_timeout
        && a.protocol == b.protocol
}

fn same_surface(a: &ServerConfig, b: &ServerConfig) -> bool {
    a.mapping == b.mapping && a.filters == b.filters && a.pin == b.pin && a.pin_new == b.pin_new
}

impl Servers {
    /// The table of the first config: slot `i` is server `i`.
    pub fn new(configs: Vec<ServerConfig>, pools: Vec<Arc<ServerPool>>) -> Servers {
        debug_assert_eq!(configs.len(), pools.len());
        Servers {
            current: (0..configs.len()).collect(),
            configs: configs.into(),
            pools: pools.into(),
        }
    }

    /// How many slots there are, retired ones included.
    pub fn slots(&self) -> usize {
        self.configs.len()
    }

    /// The servers in force, in config order: (slot, config, pool).
    pub fn in_force(&self) -> impl Iterator<Item = (usize, &ServerConfig, &Arc<ServerPool>)> + '_ {
        self.current
            .iter()
            .map(move |&slot| (slot, &self.configs[slot], &self.pools[slot]))
    }

    /// Whether `slot` is in force (not retired by a reload).
    pub fn is_current(&self, slot: usize) -> bool {
        self.current.contains(&slot)
    }

    /// What applying `servers` (a new config's, validated) would do, server by server.
    pub fn plan(&self, servers: &[ServerConfig]) -> Plan {
        let fates = servers
            .iter()
            .map(|new| {
                let old = self
                    .current
                    .iter()
                    .copied()
                    .find(|&slot| self.configs[slot].name == new.name);
                match old {
                    None => Fate::Added,
                    Some(slot) if !same_definition(&self.configs[slot], new) => {
                        Fate::Changed { was: slot }
                    }
                    Some(slot) if same_surface(&self.configs[slot], new) => Fate::Kept(slot),
                    Some(slot) => Fate::Resurfaced(slot),
                }
            })
            .collect();
        let removed = self
            .current
            .iter()
            .copied()
            .filter(|&slot| !servers.iter().any(|s| s.name == self.configs[slot].name))
            .collect();
        Plan { fates, removed }
    }

    /// The table after `plan` (made from `servers`): kept slots as they were (resurfaced ones with
    /// their new surface), a new slot for each changed or added server with a pool from
    /// `new_pool(config, slot)`. Returns the table and, per server of `servers`, its slot.
    pub fn apply(
        &self,
        plan: &Plan,
        servers: &[ServerConfig],
        mut new_pool: impl FnMut(&ServerConfig, usize) -> Arc<ServerPool>,
    ) -> Servers {
        let mut configs: Vec<ServerConfig> = self.configs.to_vec();
        let mut pools: Vec<Arc<ServerPool>> = self.pools.to_vec();
        let mut current = Vec::with_capacity(servers.len());
        for (server, fate) in servers.iter().zip(&plan.fates) {
            match *fate {
                Fate::Kept(slot) => current.push(slot),
                Fate::Resurfaced(slot) => {
                    configs[slot].mapping = server.mapping.clone();
                    configs[slot].filters = server.filters.clone();
                    configs[slot].pin = server.pin;
                    configs[slot].pin_new = server.pin_new;
                    current.push(slot);
                }
                Fate::Changed { .. } | Fate::Added => {
                    let slot = configs.len();
                    pools.push(new_pool(server, slot));
                    configs.push(server.clone());
                    current.push(slot);
                }
            }
        }
        Servers {
            configs: configs.into(),
            pools: pools.into(),
            current: current.into(),
        }
    }
}

/// The newest table, shared by the threads that carry calls (workers, child I/O): they find a
/// job's pool and `callTimeout` here by its slot. Reads take an uncontended read lock (a reload
/// is the only writer).
#[derive(Clone)]
pub struct LiveServers(Arc<RwLock<Servers>>);

impl LiveServers {
    pub fn new(servers: Servers) -> LiveServers {
        LiveServers(Arc::new(RwLock::new(servers)))
    }

    /// The newest table.
    pub fn get(&self) -> Servers {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Slot `slot`'s pool and `callTimeout`. Every slot a job can name is in the table: it is
    /// published before any job names it.
    pub fn pool(&self, slot: usize) -> (Arc<ServerPool>, Duration) {
        let table = self.0.read().unwrap_or_else(|e| e.into_inner());
        (table.pools[slot].clone(), table.configs[slot].call_timeout)
    }

    /// Publishes a newer table (one that only adds to the current one).
    pub fn publish(&self, servers: Servers) {
        let mut table = self.0.write().unwrap_or_else(|e| e.into_inner());
        debug_assert!(servers.slots() >= table.slots());
        *table = servers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::ReactorSink;
    use crate::pool::Pool;
    use serde_json::json;

    fn configs(servers: serde_json::Value) -> Vec<ServerConfig> {
        crate::config::parse_str(&json!({ "mcpServers": servers }).to_string(), &|_| None)
            .unwrap()
            .servers
    }

    fn pool(config: &ServerConfig) -> Arc<ServerPool> {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (tx, _rx) = crossbeam_channel::unbounded();
        Arc::new(Pool::new(
            config.name.as_str().into(),
            config.pool,
            ReactorSink::new(tx, waker),
            Arc::new(|| {}),
        ))
    }

    fn table(servers: &[ServerConfig]) -> Servers {
        Servers::new(servers.to_vec(), servers.iter().map(pool).collect())
    }

    #[test]
    fn a_reload_keeps_unchanged_slots_and_appends_the_rest() {
        let before = configs(json!({
            "a": {"command": "a"},
            "b": {"command": "b"},
            "c": {"command": "c"},
            "d": {"command": "d"},
        }));
        let old = table(&before);
        let after = configs(json!({
            "d": {"command": "d", "args": ["--new"]},
            "a": {"command": "a"},
            "e": {"command": "e"},
            "b": {"command": "b"},
        }));
        let mut after = after;
        after[3].mapping.prefix = "b_".into();
        let plan = old.plan(&after);
        assert_eq!(
            plan.fates,
            [
                Fate::Changed { was: 3 },
                Fate::Kept(0),
                Fate::Added,
                Fate::Resurfaced(1)
            ]
        );
        assert_eq!(plan.removed, [2]);
        let new = old.apply(&plan, &after, |c, _| pool(c));
        assert_eq!(new.slots(), 6, "slots are never reused");
        assert_eq!(&*new.current, [4, 0, 5, 1], "config order, by slot");
        assert!(Arc::ptr_eq(&new.pools[0], &old.pools[0]), "a kept pool");
        assert!(Arc::ptr_eq(&new.pools[1], &old.pools[1]));
        assert_eq!(new.configs[1].mapping.prefix, "b_");
        assert_eq!(new.configs[4].name, "d");
        assert!(!new.is_current(3) && !new.is_current(2));
        let names: Vec<&str> = new.in_force().map(|(_, c, _)| c.name.as_str()).collect();
        assert_eq!(names, ["d", "a", "e", "b"]);
    }

    #[test]
    fn the_same_config_plans_nothing_and_pool_settings_count_as_a_new_definition() {
        let servers = configs(json!({"a": {"command": "a"}}));
        let old = table(&servers);
        assert!(old.plan(&servers).is_empty());
        let bigger = configs(json!({"a": {"command": "a", "poolSize": 9}}));
        assert_eq!(old.plan(&bigger).fates, [Fate::Changed { was: 0 }]);
        let disabled = configs(json!({"a": {"command": "a", "enabled": false}}));
        assert_eq!(old.plan(&disabled).fates, [Fate::Changed { was: 0 }]);
    }
}
