//! The latest listings of every server, and the one place that rebuilds and publishes the `Snapshot`.
//!
//! Handshake threads report each new handle's listings here; a rebuild happens only when a server's
//! list really changed, and the new snapshot goes to the reactor whole. New collisions and notes are
//! logged once, when they first appear. With a state directory, each server's listing starts from
//! its manifest of the last run (`manifest`) and every change is written back there.
//!
//! A reload gives the catalog the new server table (`reload`), after the supervisor published it
//! (`LiveServers`): the reactor, which takes the table from there whenever a snapshot arrives,
//! always knows every slot its snapshot routes to.

use crate::config::ServerConfig;
use crate::downstream::servers::Servers;
use crate::job::{ReactorSink, ToReactor};
use crate::registry::{manifest, Listing, Snapshot};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct Catalog {
    state_dir: Option<PathBuf>,
    state: Mutex<State>,
    sink: ReactorSink,
}

struct State {
    servers: Servers,
    /// `gateway.pageSize`.
    page_size: usize,
    /// By slot.
    listings: Vec<Option<Arc<Listing>>>,
    snapshot: Arc<Snapshot>,
}

impl Catalog {
    /// Starts from the manifests in `state_dir`, for the servers that have one.
    pub fn new(
        servers: Servers,
        page_size: usize,
        state_dir: Option<PathBuf>,
        sink: ReactorSink,
    ) -> Catalog {
        let listings: Vec<Option<Arc<Listing>>> = servers
            .configs
            .iter()
            .map(|server| from_manifest(state_dir.as_ref(), server))
            .collect();
        let snapshot = Arc::new(Snapshot::build(
            &servers.configs,
            &listings,
            &servers.current,
            page_size,
        ));
        Catalog {
            state_dir,
            state: Mutex::new(State {
                servers,
                page_size,
                listings,
                snapshot,
            }),
            sink,
        }
    }

    /// A reload: `servers` is the new table, `moved` pairs each changed server's old slot with its
    /// new one, `page_size` is the new `gateway.pageSize`. A new slot starts from its manifest, else (a changed server) from its old slot's
    /// listing, so its tools stay listed while it restarts; retired slots drop out of the registry.
    /// Publishes the new snapshot. Returns the new slots listed from a manifest (their pools need
    /// not start a process to list).
    pub fn reload(
        &self,
        servers: Servers,
        moved: &[(usize, usize)],
        page_size: usize,
    ) -> Vec<usize> {
        let mut st = self.lock();
        st.page_size = page_size;
        let mut from_manifests = Vec::new();
        for slot in st.listings.len()..servers.slots() {
            let listing = from_manifest(self.state_dir.as_ref(), &servers.configs[slot]);
            let listing = match listing {
                Some(listing) => {
                    from_manifests.push(slot);
                    Some(listing)
                }
                None => moved
                    .iter()
                    .find(|&&(_, new)| new == slot)
                    .and_then(|&(old, _)| st.listings[old].clone()),
            };
            st.listings.push(listing);
        }
        for slot in 0..st.listings.len() {
            if !servers.is_current(slot) {
                st.listings[slot] = None;
            }
        }
        st.servers = servers;
        self.publish(&mut st);
        from_manifests
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.lock().snapshot.clone()
    }

    /// The latest listing of a server, if it ever listed.
    pub fn listing(&self, server: usize) -> Option<Arc<Listing>> {
        self.lock().listings[server].clone()
    }

    /// Records what a server offers; rebuilds and publishes when it changed (returns whether it
    /// did). A retired slot's late listing is ignored.
    pub fn set_listing(&self, server: usize, listing: Listing) -> bool {
        let mut st = self.lock();
        if st.listings[server].as_deref() == Some(&listing) || !st.servers.is_current(server) {
            return false;
        }
        let config = &st.servers.configs[server];
        log::info!(
            "server {}: {} tools, {} prompts, {} resources, {} resource templates",
            config.name,
            listing.tools.len(),
            listing.prompts.len(),
            listing.resources.len(),
            listing.templates.len()
        );
        if let Some(dir) = &self.state_dir {
            if let Err(e) = manifest::save(dir, config, &listing) {
                log::warn!(
                    "server {}: cannot write its manifest under {}: {e}",
                    config.name,
                    dir.display()
                );
            }
        }
        st.listings[server] = Some(Arc::new(listing));
        self.publish(&mut st);
        true
    }

    /// Rebuilds the snapshot and sends it to the reactor (under the lock, so snapshots arrive in
    /// the order they were built); new collisions and notes are logged.
    fn publish(&self, st: &mut State) {
        let servers = &st.servers;
        let snapshot = Arc::new(Snapshot::build(
            &servers.configs,
            &st.listings,
            &servers.current,
            st.page_size,
        ));
        for collision in &snapshot.collisions {
            if !st.snapshot.collisions.contains(collision) {
                log::warn!("name collision: {collision}");
            }
        }
        for note in &snapshot.notes {
            if !st.snapshot.notes.contains(note) {
                log::warn!("{note}");
            }
        }
        st.snapshot = snapshot.clone();
        self.sink.send(ToReactor::Registry(snapshot));
    }

    /// A server said its `kind` list changed but listing again showed no difference: clients are
    /// still told (they may cache more than the gateway compares).
    pub fn announce(&self, server: usize, kind: &str) {
        self.sink.send(ToReactor::ServerNotification {
            server,
            method: format!("notifications/{kind}/list_changed"),
            params: Default::default(),
        });
    }

    /// A final answer for a client, from the supervisor thread.
    pub fn reply(&self, to: crate::job::ReplyTo, body: Vec<u8>) {
        self.sink.send(ToReactor::Reply {
            to,
            status: 200,
            body,
            last: true,
            done: None,
            finished: None,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A server's listing from its manifest of the last run, if it has one (and is enabled).
fn from_manifest(state_dir: Option<&PathBuf>, server: &ServerConfig) -> Option<Arc<Listing>> {
    let dir = state_dir.filter(|_| server.enabled)?;
    let listing = manifest::load(dir, server)?;
    log::info!(
        "server {}: {} tools listed from its manifest of the last run",
        server.name,
        listing.tools.len()
    );
    Some(Arc::new(listing))
}
