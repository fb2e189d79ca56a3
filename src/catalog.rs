//! The latest listings of every server, and the one place that rebuilds and publishes the `Snapshot`.
//!
//! Handshake threads report each new handle's listings here; a rebuild happens only when a server's
//! list really changed, and the new snapshot goes to the reactor whole. New collisions and notes are
//! logged once, when they first appear. With a state directory, each server's listing starts from
//! its manifest of the last run (`manifest`) and every change is written back there.

use crate::config::{Profile, ServerConfig};
use crate::job::{ReactorSink, ToReactor};
use crate::registry::{manifest, Listing, Snapshot};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct Catalog {
    servers: Arc<[ServerConfig]>,
    /// Each snapshot carries every profile's view, built here with it (off the reactor).
    profiles: Arc<[Profile]>,
    page_size: usize,
    state_dir: Option<PathBuf>,
    state: Mutex<State>,
    sink: ReactorSink,
}

struct State {
    listings: Vec<Option<Arc<Listing>>>,
    snapshot: Arc<Snapshot>,
}

impl Catalog {
    /// Starts from the manifests in `state_dir`, for the servers that have one.
    pub fn new(
        servers: Arc<[ServerConfig]>,
        profiles: Arc<[Profile]>,
        page_size: usize,
        state_dir: Option<PathBuf>,
        sink: ReactorSink,
    ) -> Catalog {
        let listings: Vec<Option<Arc<Listing>>> = servers
            .iter()
            .map(|server| {
                let dir = state_dir.as_deref().filter(|_| server.enabled)?;
                let listing = manifest::load(dir, server)?;
                log::info!(
                    "server {}: {} tools listed from its manifest of the last run",
                    server.name,
                    listing.tools.len()
                );
                Some(Arc::new(listing))
            })
            .collect();
        let snapshot = Arc::new(Snapshot::build_for(
            &servers, &listings, page_size, &profiles,
        ));
        Catalog {
            servers,
            profiles,
            page_size,
            state_dir,
            state: Mutex::new(State { listings, snapshot }),
            sink,
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.lock().snapshot.clone()
    }

    /// The latest listing of a server, if it ever listed.
    pub fn listing(&self, server: usize) -> Option<Arc<Listing>> {
        self.lock().listings[server].clone()
    }

    /// Records what a server offers; rebuilds and publishes when it changed (returns whether it did).
    pub fn set_listing(&self, server: usize, listing: Listing) -> bool {
        let mut st = self.lock();
        if st.listings[server].as_deref() == Some(&listing) {
            return false;
        }
        log::info!(
            "server {}: {} tools, {} prompts, {} resources, {} resource templates",
            self.servers[server].name,
            listing.tools.len(),
            listing.prompts.len(),
            listing.resources.len(),
            listing.templates.len()
        );
        if let Some(dir) = &self.state_dir {
            if let Err(e) = manifest::save(dir, &self.servers[server], &listing) {
                log::warn!(
                    "server {}: cannot write its manifest under {}: {e}",
                    self.servers[server].name,
                    dir.display()
                );
            }
        }
        st.listings[server] = Some(Arc::new(listing));
        let snapshot = Arc::new(Snapshot::build_for(
            &self.servers,
            &st.listings,
            self.page_size,
            &self.profiles,
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
        // Sent under the lock so snapshots reach the reactor in the order they were built.
        self.sink.send(ToReactor::Registry(snapshot));
        true
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
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
