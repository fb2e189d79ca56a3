//! The latest listings of every server, and the one place that rebuilds and publishes the `Snapshot`.
//!
//! Handshake threads report each new handle's listings here; a rebuild happens only when a server's
//! list really changed, and the new snapshot goes to the reactor whole. New collisions and notes are
//! logged once, when they first appear.

use super::{Snapshot, ToolDef};
use crate::config::ServerConfig;
use crate::job::{ReactorSink, ToReactor};
use std::sync::{Arc, Mutex};

pub struct Catalog {
    servers: Arc<[ServerConfig]>,
    state: Mutex<State>,
    sink: ReactorSink,
}

struct State {
    tools: Vec<Option<Arc<Vec<ToolDef>>>>,
    snapshot: Arc<Snapshot>,
}

impl Catalog {
    pub fn new(servers: Arc<[ServerConfig]>, sink: ReactorSink) -> Catalog {
        let tools = vec![None; servers.len()];
        let snapshot = Arc::new(Snapshot::build(&servers, &tools));
        Catalog {
            servers,
            state: Mutex::new(State { tools, snapshot }),
            sink,
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.lock().snapshot.clone()
    }

    /// Records a server's tool list; rebuilds and publishes when it changed.
    pub fn set_tools(&self, server: usize, tools: Vec<ToolDef>) {
        let mut st = self.lock();
        if st.tools[server].as_deref() == Some(&tools) {
            return;
        }
        log::info!(
            "server {}: {} tools listed",
            self.servers[server].name,
            tools.len()
        );
        st.tools[server] = Some(Arc::new(tools));
        let snapshot = Arc::new(Snapshot::build(&self.servers, &st.tools));
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
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
