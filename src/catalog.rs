//! The latest listings of every server, and the one place that rebuilds and publishes the `Snapshot`.
//!
//! Handshake threads report each new handle's listings here; a rebuild happens only when a server's
//! list really changed, and the new snapshot goes to the reactor whole. New collisions and notes are
//! logged once, when they first appear. With a state directory, each server's listing starts from
//! its manifest of the last run (`manifest`) and every change is written back there, and tool
//! definitions are pinned (`registry::pin`): every build compares them with the recorded ones,
//! records tools seen for the first time and leaves out the held ones. The `pins` thread rereads
//! a pins file that changed on disk (`mcp-gateway approve`) and publishes the new snapshot.
//!
//! Servers are known by slot (`downstream::servers`). A reload gives the catalog the new server
//! table (`reload`), after the supervisor published it (`LiveServers`): the reactor, which takes
//! the table from there whenever a snapshot arrives, always knows every slot its snapshot routes
//! to.

use crate::config::{Pin, Profile, ServerConfig};
use crate::downstream::servers::Servers;
use crate::job::{ReactorSink, ToReactor};
use crate::registry::{manifest, pin, Listing, Snapshot};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub struct Catalog {
    state_dir: Option<PathBuf>,
    state: Mutex<State>,
    sink: ReactorSink,
}

struct State {
    servers: Servers,
    /// Each snapshot carries every profile's view, built here with it (off the reactor).
    profiles: Arc<[Profile]>,
    /// `gateway.pageSize`.
    page_size: usize,
    /// By slot.
    listings: Vec<Option<Arc<Listing>>>,
    snapshot: Arc<Snapshot>,
    /// By slot: the server's pins as last read (None: not read yet).
    pins: Vec<Option<pin::Pins>>,
    /// By slot: its pins file's modification time and length when last read or written.
    pin_stamps: Vec<Option<(SystemTime, u64)>>,
}

impl Catalog {
    /// Starts from the manifests in `state_dir`, for the servers that have one.
    pub fn new(
        servers: Servers,
        profiles: Arc<[Profile]>,
        page_size: usize,
        state_dir: Option<PathBuf>,
        sink: ReactorSink,
    ) -> Catalog {
        let listings: Vec<Option<Arc<Listing>>> = servers
            .configs
            .iter()
            .map(|server| from_manifest(state_dir.as_ref(), server))
            .collect();
        let count = servers.slots();
        let catalog = Catalog {
            state_dir,
            state: Mutex::new(State {
                servers,
                profiles,
                page_size,
                listings,
                snapshot: Arc::default(),
                pins: vec![None; count],
                pin_stamps: vec![None; count],
            }),
            sink,
        };
        {
            let mut st = catalog.lock();
            st.snapshot = catalog.build(&mut st);
        }
        catalog
    }

    /// A reload: `servers` is the new table, `moved` pairs each changed server's old slot with its
    /// new one, `page_size` and `profiles` are the new config's. A new slot starts from its manifest,
    /// else (a changed server) from its old slot's listing, so its tools stay listed while it
    /// restarts; retired slots drop out of the registry. Pins are read again (an approval made
    /// meanwhile counts). Publishes the new snapshot. Returns the new slots listed from a manifest
    /// (their pools need not start a process to list).
    pub fn reload(
        &self,
        servers: Servers,
        moved: &[(usize, usize)],
        page_size: usize,
        profiles: Arc<[Profile]>,
    ) -> Vec<usize> {
        let mut st = self.lock();
        st.page_size = page_size;
        st.profiles = profiles;
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
        let slots = servers.slots();
        st.pins = vec![None; slots];
        st.pin_stamps = vec![None; slots];
        st.servers = servers;
        let snapshot = self.build(&mut st);
        st.snapshot = snapshot.clone();
        self.sink.send(ToReactor::Registry(snapshot));
        from_manifests
    }

    /// Builds the snapshot of the current listings with their pins applied, logging what is new
    /// (collisions, notes, changed definitions) against the current snapshot.
    fn build(&self, st: &mut State) -> Arc<Snapshot> {
        let mut listings = st.listings.clone();
        let mut changed = Vec::new();
        if let Some(dir) = &self.state_dir {
            let table = st.servers.clone();
            for (index, server, _) in table.in_force() {
                let Some(listing) = st.listings[index].clone() else {
                    continue;
                };
                if server.pin == Pin::Off {
                    continue;
                }
                let pins = match &mut st.pins[index] {
                    Some(pins) => pins,
                    slot @ None => match pin::load(dir, &server.name) {
                        Ok(pins) => {
                            st.pin_stamps[index] = stamp(dir, &server.name);
                            slot.insert(pins)
                        }
                        Err(e) => {
                            // Not read again until the file changes (`reread_pins`).
                            st.pin_stamps[index] = stamp(dir, &server.name);
                            log::error!("server {}: pinning is off until its pins file is fixed or removed: {e}", server.name);
                            continue;
                        }
                    },
                };
                let review = pin::review(index, server, pins, &listing);
                if !review.record.is_empty() {
                    pins.tools.extend(review.record);
                    match pin::save(dir, &server.name, pins) {
                        Ok(()) => st.pin_stamps[index] = stamp(dir, &server.name),
                        Err(e) => log::warn!(
                            "server {}: cannot record its tool definitions under {}: {e}",
                            server.name,
                            dir.display()
                        ),
                    }
                }
                if let Some(kept) = review.listing {
                    listings[index] = Some(Arc::new(kept));
                }
                changed.extend(review.changed);
            }
        }
        let servers = &st.servers;
        let mut snapshot = Snapshot::build_reviewed(
            &servers.configs,
            &listings,
            &servers.current,
            st.page_size,
            &st.profiles,
            changed,
        );
        let logins = waiting_for_login(servers);
        if !logins.is_empty() {
            for view in &mut snapshot.views {
                if let Some(view) = Arc::get_mut(view) {
                    view.logins = logins.clone();
                }
            }
            snapshot.logins = logins;
        }
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
        for change in &snapshot.changed_tools {
            if !st.snapshot.changed_tools.contains(change) {
                let server = &servers.configs[change.server].name;
                let what = if change.new {
                    "is new"
                } else {
                    "changed its definition since it was pinned"
                };
                let held = if change.held {
                    format!(
                        "; withheld from clients until `mcp-gateway approve {server} {}`",
                        change.tool
                    )
                } else {
                    String::new()
                };
                log::warn!(
                    "server {server}: tool \"{}\" {what} (`mcp-gateway diff {server}` shows how){held}",
                    change.tool
                );
            }
        }
        Arc::new(snapshot)
    }

    /// Rereads the pins files that changed on disk; publishes a new snapshot when that changes
    /// what awaits approval (`mcp-gateway approve`).
    pub fn reread_pins(&self) {
        let Some(dir) = &self.state_dir else {
            return;
        };
        let mut st = self.lock();
        let mut stale = false;
        let table = st.servers.clone();
        for (index, server, _) in table.in_force() {
            let now = stamp(dir, &server.name);
            if server.pin != Pin::Off && now != st.pin_stamps[index] {
                st.pins[index] = None;
                st.pin_stamps[index] = now;
                stale = true;
            }
        }
        if !stale {
            return;
        }
        let snapshot = self.build(&mut st);
        if snapshot.changed_tools == st.snapshot.changed_tools {
            st.snapshot = snapshot;
            return;
        }
        log::info!(
            "pinned definitions changed on disk: {} tools differ from their pins now",
            snapshot.changed_tools.len()
        );
        st.snapshot = snapshot.clone();
        self.sink.send(ToReactor::Registry(snapshot));
    }

    /// Whether any server in force pins its tools (and there is a state directory to keep pins).
    fn pins_anything(&self) -> bool {
        self.state_dir.is_some()
            && self
                .lock()
                .servers
                .in_force()
                .any(|(_, s, _)| s.pin != Pin::Off)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.lock().snapshot.clone()
    }

    /// The latest listing of a server, if it ever listed.
    pub fn listing(&self, server: usize) -> Option<Arc<Listing>> {
        self.lock().listings[server].clone()
    }

    /// Records what a server offers; rebuilds and publishes when it changed (returns whether
    /// it did). A retired slot's late listing is ignored.
    pub fn set_listing(&self, server: usize, listing: Listing) -> bool {
        let mut st = self.lock();
        if st.listings[server].as_deref() == Some(&listing) || !st.servers.is_current(server) {
            return false;
        }
        let config = st.servers.configs[server].clone();
        log::info!(
            "server {}: {} tools, {} prompts, {} resources, {} resource templates",
            config.name,
            listing.tools.len(),
            listing.prompts.len(),
            listing.resources.len(),
            listing.templates.len()
        );
        if let Some(dir) = &self.state_dir {
            if let Err(e) = manifest::save(dir, &config, &listing) {
                log::warn!(
                    "server {}: cannot write its manifest under {}: {e}",
                    config.name,
                    dir.display()
                );
            }
        }
        st.listings[server] = Some(Arc::new(listing));
        let snapshot = self.build(&mut st);
        st.snapshot = snapshot.clone();
        // Sent under the lock so snapshots reach the reactor in the order they were built.
        self.sink.send(ToReactor::Registry(snapshot));
        true
    }

    /// A server started or stopped waiting for an OAuth login: a new snapshot says so to calls
    /// for tools nobody lists (when that changed).
    pub fn logins_changed(&self) {
        let mut st = self.lock();
        if waiting_for_login(&st.servers) == st.snapshot.logins {
            return; // the snapshot in force says it already
        }
        let snapshot = self.build(&mut st);
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

/// A pins file's modification time and length (None: no file).
fn stamp(dir: &Path, server: &str) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(pin::path(dir, server)).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Starts the `pins` thread, which looks for pins files changed on disk once a second (a stat per
/// pinned server), when there is a state directory. With no server pinning now it looks only
/// for that to change (a reload may turn pinning on).
pub fn watch_pins(catalog: Arc<Catalog>) {
    if catalog.state_dir.is_none() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("pins".into())
        .spawn(move || {
            crate::panics::restart_on_panic("pins", || loop {
                std::thread::sleep(Duration::from_secs(1));
                if catalog.pins_anything() {
                    catalog.reread_pins();
                }
            })
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the pins thread (approvals need a restart): {e}");
    }
}

/// What each server in force that waits for an OAuth login says, in config order.
fn waiting_for_login(servers: &Servers) -> Vec<String> {
    servers
        .in_force()
        .filter_map(|(_, _, pool)| pool.login_wait())
        .collect()
}
