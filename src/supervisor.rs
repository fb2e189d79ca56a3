//! The supervisor thread: the only place children are started and reaped.
//!
//! It runs every pool's `tick` (parked-job deadlines, idle reaping, spawn decisions) whenever a pool
//! rings its doorbell, a timer is due, or at least once a second. Spawning happens here because
//! `PR_SET_PDEATHSIG` is tied to the forking thread, and this thread lives as long as the gateway. The
//! slow part of a start, the handshake, runs on a short-lived thread per start, so a server that takes
//! seconds to initialize delays nobody. Stopping children (stdin close → SIGTERM → SIGKILL) is a set of
//! small state machines polled here, so any number stop in parallel and every one is reaped.

use crate::catalog::Catalog;
use crate::config::{GatewayConfig, LocalServer, ServerConfig, ServerKind};
use crate::downstream::child_io::{ChildEvent, ChildIo};
use crate::downstream::handshake;
use crate::downstream::link::Link;
use crate::downstream::process::{self, Exiting};
use crate::downstream::remote::link::{Events, RemoteLink, Target};
use crate::downstream::servers::{Fate, LiveServers, Plan, PoolMaker, Servers};
use crate::downstream::stdio::StdioChild;
use crate::downstream::wanted::{self, Wanted};
use crate::downstream::Requester;
use crate::job::{ReplyTo, ToReactor};
use crate::pool::Member;
use crate::registry::ListKind;
use crate::workers::WorkerMsg;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

fn lock(wanted: &Mutex<Wanted>) -> MutexGuard<'_, Wanted> {
    wanted.lock().unwrap_or_else(|e| e.into_inner())
}

/// Messages to the supervisor thread.
pub enum Control {
    /// A pool changed: run the ticks.
    Ring,
    /// From child I/O.
    Child(ChildEvent),
    /// Stop every child; `hurry` skips the polite waits. `done` is signalled when all are reaped.
    Shutdown { hurry: bool, done: Sender<()> },
    /// Sessions now want (or no longer want) updates of a resource of a server.
    Subscription {
        server: usize,
        uri: String,
        subscribe: bool,
    },
    /// A client session ended: handles that belong to it (`share: "session"`) are stopped.
    SessionEnded(crate::job::Slot),
    /// The most verbose log level any session wants (None: no session asked).
    LogLevel(Option<&'static str>),
    /// Send `body` to `to` once every earlier control message has reached the children: a client
    /// told "subscribed" (or "level set") cannot act before the servers know.
    After { to: ReplyTo, body: Vec<u8> },
    /// Apply a new, validated config (`reload`).
    Reload(Box<Reload>),
}

/// A validated config to apply, from the reload thread.
pub struct Reload {
    pub servers: Vec<ServerConfig>,
    pub profiles: Vec<crate::config::Profile>,
    pub gateway: GatewayConfig,
    /// What changed in the `gateway` section (and what of it needs a restart), for the log line.
    pub gateway_changes: Vec<String>,
    /// The gateway's own notes for `/health` under the new config.
    pub notes: Vec<String>,
    /// Where it came from, for the log line.
    pub source: String,
}

/// At least this often the ticks run, whatever happens.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// While children are exiting, how often to look whether they are gone.
const REAP_POLL: Duration = Duration::from_millis(20);
/// After this, children that ignore even SIGKILL (stuck in the kernel) are abandoned.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(8);
const HANDSHAKE_STACK: usize = 512 * 1024;

/// Everything the supervisor thread needs.
pub struct Supervisor {
    /// The server table it keeps (and publishes on a reload: it is its only writer).
    pub servers: LiveServers,
    /// Makes the pools of the slots a reload adds.
    pub maker: PoolMaker,
    pub catalog: Arc<Catalog>,
    pub workers: Sender<WorkerMsg>,
    pub child_io: ChildIo,
    /// Per slot: where a remote server is and how to trust it (None for local servers and
    /// for remote ones whose settings are unusable; their pools say why).
    pub targets: Vec<Option<Arc<Target>>>,
    /// Where remote handles report what child I/O reports for children.
    pub events: Events,
    pub control: Receiver<Control>,
}

impl Supervisor {
    /// Starts the thread.
    pub fn start(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || {
                let table = self.servers.get();
                let wanted = Arc::new(Mutex::new(Wanted::new(table.slots())));
                let running = Running {
                    table,
                    sup: self,
                    wanted,
                    live: HashMap::new(),
                    processes: HashMap::new(),
                    exiting: Vec::new(),
                    process_dirs: HashMap::new(),
                    next_serial: 0,
                    shutdown: None,
                    memory_checked: Instant::now(),
                };
                // Every child was forked by this thread (PDEATHSIG): it cannot be restarted.
                crate::panics::exit_on_panic("supervisor", || running.run())
            })
    }
}

struct Running {
    sup: Supervisor,
    /// The server table in force (the newest `sup.servers` holds).
    table: Servers,
    /// Shared with handshake threads, which bring new children up to date.
    wanted: Arc<Mutex<Wanted>>,
    /// Every handle started and not yet retired, by serial.
    live: HashMap<u64, Link>,
    /// The process of every child handle in `live`, to stop and reap when it is retired.
    processes: HashMap<u64, std::process::Child>,
    /// Children being stopped, with the private directory to remove once each is reaped.
    exiting: Vec<(Exiting, Option<PathBuf>)>,
    /// Private directories (`${MCP_GATEWAY_PROCESS_DIR}`) of live children, by serial.
    process_dirs: HashMap<u64, PathBuf>,
    next_serial: u64,
    shutdown: Option<(Instant, Sender<()>)>,
    /// When children's memory was last measured against `maxRssBytes`.
    memory_checked: Instant,
}

impl Running {
    fn run(mut self) {
        loop {
            let now = Instant::now();
            let next = self.tick(now);
            if let Some((since, done)) = &self.shutdown {
                let all_gone = self.exiting.is_empty() && self.live.is_empty();
                if all_gone || now.duration_since(*since) > SHUTDOWN_LIMIT {
                    for (e, _) in &self.exiting {
                        log::error!("{}: still not reaped after SIGKILL; giving up", e.label);
                    }
                    let _ = done.send(());
                    return;
                }
            }
            let message = self.sup.control.recv_deadline(next);
            match message {
                Ok(message) => {
                    self.handle(message);
                    while let Ok(more) = self.sup.control.try_recv() {
                        self.handle(more);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn handle(&mut self, message: Control) {
        let now = Instant::now();
        match message {
            Control::Ring => {}
            Control::Child(ChildEvent::Closed { server, serial }) => {
                self.table.pools[server].died(serial, now);
            }
            Control::Child(ChildEvent::ListChanged {
                server,
                serial,
                kind,
            }) => self.relist(server, serial, &kind),
            Control::Child(ChildEvent::ForClients { .. }) => {}
            Control::Child(ChildEvent::Renewed { server, serial }) => {
                if let Some(link) = self.live.get(&serial) {
                    let logging = self
                        .sup
                        .catalog
                        .snapshot()
                        .server_supports(server, "logging", None);
                    lock(&self.wanted).apply(link.requester(), server, logging);
                }
            }
            Control::Subscription {
                server,
                uri,
                subscribe,
            } => {
                let mut wanted = lock(&self.wanted);
                let set = &mut wanted.subscriptions[server];
                if subscribe {
                    set.insert(uri.clone());
                } else {
                    set.remove(&uri);
                }
                drop(wanted);
                for link in self.live.values().filter(|l| l.server() == server) {
                    wanted::send_subscription(link.requester(), &uri, subscribe);
                }
            }
            Control::LogLevel(level) => {
                lock(&self.wanted).level = level;
                if let Some(level) = level {
                    let snapshot = self.sup.catalog.snapshot();
                    for link in self.live.values() {
                        if snapshot.server_supports(link.server(), "logging", None) {
                            wanted::send_level(link.requester(), level);
                        }
                    }
                }
            }
            Control::After { to, body } => self.sup.catalog.reply(to, body),
            Control::Reload(reload) => self.reload(*reload),
            Control::SessionEnded(session) => {
                for pool in self.table.pools.iter() {
                    pool.session_ended(session);
                }
            }
            Control::Shutdown { hurry, done } => {
                log::info!("stopping {} server processes", self.live.len());
                for pool in self.table.pools.iter() {
                    pool.stop();
                }
                let children: Vec<_> = self.live.drain().map(|(_, c)| c).collect();
                for child in children {
                    self.retire(&child, now);
                }
                if hurry {
                    self.exiting.iter_mut().for_each(|(e, _)| e.hurry(now));
                }
                self.shutdown = Some((now, done));
            }
        }
    }

    /// Applies a new config as a diff (`servers::Plan`): unchanged servers keep their slots,
    /// processes and calls in flight; a changed server gets a new slot, and its old one takes no
    /// new call (what was parked or arrives later moves to the new one) and stops each process
    /// as its last call ends; a removed server's slot drains the same way, its new calls refused;
    /// new servers start like at startup. The table is published before anything can name a new
    /// slot: `LiveServers` first (workers, child I/O, the reactor), then the catalog's snapshot.
    fn reload(&mut self, reload: Reload) {
        if self.shutdown.is_some() {
            log::info!("config reload ignored: the gateway is stopping");
            return;
        }
        let old = self.table.clone();
        let plan = old.plan(&reload.servers);
        let mut targets = Vec::new();
        let table = old.apply(&plan, &reload.servers, |config, _| {
            let (pool, target) = self.sup.maker.make(config);
            targets.push(target);
            pool
        });
        self.sup.targets.extend(targets);
        let moved: Vec<(usize, usize)> = plan
            .fates
            .iter()
            .zip(table.current.iter())
            .filter_map(|(fate, &now)| match fate {
                Fate::Changed { was } => Some((*was, now)),
                _ => None,
            })
            .collect();
        {
            let mut wanted = lock(&self.wanted);
            wanted
                .subscriptions
                .resize(table.slots(), Default::default());
            for &(was, now) in &moved {
                wanted.subscriptions[now] = std::mem::take(&mut wanted.subscriptions[was]);
            }
        }
        self.sup.servers.publish(table.clone());
        self.table = table.clone();
        let mut parked = Vec::new();
        for &(was, now) in &moved {
            let successor = Some((now, table.pools[now].clone()));
            parked.extend(table.pools[was].retire(successor, String::new()));
        }
        for &was in &plan.removed {
            let reason = format!(
                "server {} was removed from the config (reloaded)",
                table.configs[was].name
            );
            parked.extend(table.pools[was].retire(None, reason));
        }
        // Offered again: each finds the pool that serves its server now, or its refusal.
        for job in parked {
            let _ = self.sup.workers.send(WorkerMsg::Submit(job));
        }
        let page_size = reload.gateway.page_size;
        let profiles = reload.profiles.clone().into();
        for slot in self
            .sup
            .catalog
            .reload(table.clone(), &moved, page_size, profiles)
        {
            table.pools[slot].listed_already();
        }
        let summary = describe(&reload, &plan, &old, &table);
        log::info!("{summary}");
        self.sup.maker.sink.send(ToReactor::Reloaded {
            gateway: Some(Box::new(reload.gateway)),
            notes: reload.notes,
            summary,
        });
    }

    /// A server waiting for an OAuth login starts again as soon as one is saved (`mcp-gateway
    /// login` writes its state file, whose modification time is looked at every tick).
    fn check_logins(&mut self, now: Instant) {
        for (slot, target) in self.sup.targets.iter().enumerate() {
            let Some(auth) = target.as_ref().and_then(|t| t.auth.as_ref()) else {
                continue;
            };
            let Some(pool) = self.table.pools.get(slot) else {
                continue;
            };
            if pool.login_wait().is_some()
                && (auth.reload_if_changed() || auth.needs_login().is_none())
            {
                log::info!("server {}: a login was saved; starting it", pool.name);
                pool.login_done(now);
                self.sup.catalog.logins_changed();
            }
        }
    }

    /// Every child's memory — its whole process group's, from one pass over /proc — is measured
    /// for `/health`, and children past their server's `maxRssBytes` are recycled (once a second).
    fn check_memory(&mut self, now: Instant) {
        if now.saturating_duration_since(self.memory_checked) < HOUSEKEEPING {
            return;
        }
        self.memory_checked = now;
        let groups = process::group_rss();
        for link in self.live.values() {
            let Link::Stdio(child) = link else { continue };
            let Some(&rss) = groups.get(&child.pid) else {
                continue;
            };
            child.set_rss(rss);
            let pool = &self.table.pools[child.server];
            if let Some(max) = pool
                .settings()
                .recycle
                .max_rss_bytes
                .filter(|&max| rss > max)
            {
                log::info!(
                    "{}: {} MiB resident, over maxRssBytes ({} MiB)",
                    child.label(),
                    rss / (1024 * 1024),
                    max / (1024 * 1024)
                );
                pool.over_memory(child.serial);
            }
        }
    }

    /// Runs every pool's tick and advances exiting children; returns when to run again.
    fn tick(&mut self, now: Instant) -> Instant {
        self.check_memory(now);
        self.check_logins(now);
        let mut next = now + HOUSEKEEPING;
        let pools = self.table.pools.clone();
        for (index, pool) in pools.iter().enumerate() {
            let tick = pool.tick(now);
            for member in tick.retire {
                self.retire(&member, now);
            }
            for _ in 0..tick.spawn {
                self.start_handle(index, now);
            }
            if let Some(at) = tick.next {
                next = next.min(at);
            }
        }
        self.exiting.retain_mut(|(exiting, dir)| {
            let done = match exiting.poll(now) {
                Some(Ok(status)) => {
                    log::debug!("{} {}", exiting.label, process::describe_exit(&status));
                    true
                }
                Some(Err(e)) => {
                    log::warn!("{}: waiting for it failed: {e}", exiting.label);
                    true
                }
                None => false,
            };
            if done {
                if let Some(dir) = dir.take() {
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        log::warn!("cannot remove {}: {e}", dir.display());
                    }
                }
            }
            !done
        });
        if !self.exiting.is_empty() {
            next = next.min(now + REAP_POLL);
        }
        next.max(now)
    }

    /// A child said a list changed: list it again on a helper thread (out of band, on that same
    /// child, whatever it is serving) and publish the new registry.
    fn relist(&self, server: usize, serial: u64, kind: &str) {
        let kinds: &[ListKind] = match kind {
            "tools" => &[ListKind::Tools],
            "prompts" => &[ListKind::Prompts],
            _ => &[ListKind::Resources, ListKind::Templates],
        };
        let Some(link) = self.live.get(&serial).cloned() else {
            return;
        };
        let catalog = self.sup.catalog.clone();
        let kind = kind.to_string();
        let config = &self.table.configs[server];
        let deadline = Instant::now() + config.init_timeout;
        let spawned = std::thread::Builder::new()
            .name(format!("relist-{}", config.name))
            .stack_size(HANDSHAKE_STACK)
            .spawn(move || {
                let Some(current) = catalog.listing(server) else {
                    return; // never listed: the handshake will
                };
                let mut listing = (*current).clone();
                for &kind in kinds {
                    match handshake::list(link.requester(), kind, deadline) {
                        Ok((items, cache)) => {
                            *handshake::slot(&mut listing, kind) = items;
                            listing.cache[kind as usize] = Some(cache);
                        }
                        Err(e) => {
                            let label = link.requester().label();
                            log::warn!("{label}: listing its {} again: {e}", kind.key());
                            return;
                        }
                    }
                }
                if !catalog.set_listing(server, listing) {
                    catalog.announce(server, &kind);
                }
            });
        if let Err(e) = spawned {
            log::warn!("cannot start a thread to list server {server} again: {e}");
        }
    }

    fn retire(&mut self, link: &Link, now: Instant) {
        self.live.remove(&link.serial());
        match link {
            Link::Stdio(child) => {
                child.retire();
                if let Some(process) = self.processes.remove(&child.serial) {
                    let dir = self.process_dirs.remove(&child.serial);
                    self.exiting
                        .push((Exiting::new(child.label(), process, now), dir));
                }
            }
            Link::Remote(remote) => remote.retire(),
        }
    }

    /// Starts one handle for server `index` (spawns a child, or prepares a remote session) and
    /// runs its handshake on a helper thread.
    fn start_handle(&mut self, index: usize, now: Instant) {
        let table = self.table.clone();
        let server = &table.configs[index];
        let pool = &table.pools[index];
        if self.shutdown.is_some() {
            pool.start_failed("the gateway is shutting down".into(), now);
            return;
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        let link = match &server.kind {
            ServerKind::Local(local) => match self.spawn_child(index, local, serial) {
                Ok(child) => Link::Stdio(child),
                Err(e) => {
                    if let Some(dir) = self.process_dirs.remove(&serial) {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                    pool.start_failed(e, now);
                    return;
                }
            },
            ServerKind::Remote(_) => {
                let Some(target) = self.sup.targets[index].clone() else {
                    pool.start_failed("its settings are unusable".into(), now);
                    return;
                };
                let events = self.sup.events.clone();
                let remote = RemoteLink::new(index, pool.name.clone(), serial, target, events);
                log::info!("server {}: connecting {}", server.name, remote.label());
                Link::Remote(remote)
            }
        };
        self.live.insert(serial, link.clone());

        let thread_pool = pool.clone();
        let catalog = self.sup.catalog.clone();
        let workers = self.sup.workers.clone();
        let wanted = self.wanted.clone();
        let deadline = now + server.init_timeout;
        // The legacy SSE transport has no stateless era; with `auto`, what earlier handshakes
        // taught (`EraHint`) spares the probe.
        use crate::config::Protocol;
        use crate::pool::EraHint;
        let configured = server.protocol;
        // What this start goes by: what it ends in updates it (not what another start left).
        let hint = pool.era_hint();
        let protocol = match &server.kind {
            ServerKind::Remote(remote)
                if remote.transport == crate::config::RemoteTransport::Sse =>
            {
                Protocol::Legacy
            }
            _ if configured == Protocol::Auto && hint.skips_probe() => Protocol::Legacy,
            _ => configured,
        };
        let thread_link = link.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("init-{}", server.name))
            .stack_size(HANDSHAKE_STACK)
            .spawn(move || {
                let (link, pool) = (thread_link, thread_pool);
                let server = link.server();
                let shaken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handshake::handshake_with(link.requester(), protocol, deadline)
                }))
                .unwrap_or_else(|panic| {
                    Err(format!(
                        "internal error in the gateway's handshake ({})",
                        crate::panics::describe(&*panic)
                    ))
                });
                match shaken {
                    Ok(ready) => {
                        log::info!(
                            "{}: ready (protocol {})",
                            link.requester().label(),
                            ready.info.protocol_version
                        );
                        if configured == Protocol::Auto {
                            let modern = ready.info.protocol_version
                                == crate::downstream::era::MODERN_VERSION;
                            pool.set_era_hint(if modern {
                                EraHint::Modern
                            } else {
                                EraHint::Legacy
                            });
                        }
                        let logging = ready.info.capabilities.contains_key("logging");
                        lock(&wanted).apply(link.requester(), server, logging);
                        // Ready in the pool before the listing is published: a client told of
                        // new tools (list_changed) finds the server up and its handle usable.
                        for (job, claim) in pool.ready(link, Instant::now()) {
                            let _ = workers.send(WorkerMsg::Run(job, claim));
                        }
                        catalog.set_listing(server, ready.listing);
                    }
                    Err(e) => {
                        match link.needs_login() {
                            Some(message) => {
                                pool.needs_login(message);
                                catalog.logins_changed();
                            }
                            None => {
                                if configured == Protocol::Auto {
                                    let next = hint.after_failure(link.requester().modern());
                                    if next == EraHint::TryLegacy && hint != next {
                                        log::info!(
                                            "server {}: its next start goes without the \
                                             server/discover probe (initialize only)",
                                            pool.name
                                        );
                                    }
                                    pool.set_era_hint(next);
                                }
                                pool.start_failed(format!("failed to start: {e}"), Instant::now())
                            }
                        }
                        pool.discard(link);
                    }
                }
            });
        if let Err(e) = spawned {
            pool.start_failed(format!("cannot start its handshake thread: {e}"), now);
            self.retire(&link, now);
        }
    }

    /// `local` with `${MCP_GATEWAY_PROCESS_DIR}` filled in: a fresh private directory (0700) for
    /// this process alone, removed once it is reaped (so, with `share: "session"`, a server that
    /// keeps its state in a file keeps it per session).
    fn with_process_dir(
        &mut self,
        local: &LocalServer,
        serial: u64,
    ) -> Result<LocalServer, String> {
        let uses = |s: &str| s.contains(crate::config::PROCESS_DIR);
        let wanted = local.command.iter().any(|a| uses(a))
            || local.env.iter().any(|(_, v)| uses(v))
            || local
                .cwd
                .as_ref()
                .is_some_and(|c| uses(&c.to_string_lossy()));
        if !wanted {
            return Ok(local.clone());
        }
        let dir = std::env::temp_dir().join(format!(
            "mcp-gateway-{}-process-{serial}",
            std::process::id()
        ));
        let made = std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => std::fs::remove_dir_all(&dir)
                    .and_then(|_| std::fs::DirBuilder::new().mode(0o700).create(&dir)),
                _ => Err(e),
            });
        made.map_err(|e| format!("cannot make its directory {}: {e}", dir.display()))?;
        let text = dir.to_string_lossy().into_owned();
        let fill = |s: &str| s.replace(crate::config::PROCESS_DIR, &text);
        let mut local = local.clone();
        local.command = local.command.iter().map(|a| fill(a)).collect();
        local.env = local
            .env
            .iter()
            .map(|(k, v)| (k.clone(), fill(v)))
            .collect();
        local.cwd = local.cwd.map(|c| PathBuf::from(fill(&c.to_string_lossy())));
        self.process_dirs.insert(serial, dir);
        Ok(local)
    }

    /// Spawns a child and gives its pipes to child I/O. Errors are for `/health`.
    fn spawn_child(
        &mut self,
        index: usize,
        local: &LocalServer,
        serial: u64,
    ) -> Result<Arc<StdioChild>, String> {
        let local = &self.with_process_dir(local, serial)?;
        let mut process = process::spawn(local).map_err(|e| {
            let program = local.command.first().map(String::as_str).unwrap_or("");
            format!("cannot start `{program}`: {e}")
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            unreachable!("spawn pipes all three streams");
        };
        let name = self.table.pools[index].name.clone();
        let io = self.sup.child_io.clone();
        let child = Arc::new(StdioChild::new(
            index,
            name.clone(),
            serial,
            process.id(),
            io,
        ));
        log::info!("server {name}: started {}", child.label());
        self.sup
            .child_io
            .attach(child.clone(), stdin, stdout, stderr);
        self.processes.insert(serial, process);
        Ok(child)
    }
}

/// The one log line a reload writes: what changed, server by server, and in the `gateway` section.
fn describe(reload: &Reload, plan: &Plan, old: &Servers, new: &Servers) -> String {
    let mut added = Vec::new();
    let mut changed = Vec::new();
    let mut resurfaced = Vec::new();
    let mut kept = 0;
    for (config, fate) in reload.servers.iter().zip(&plan.fates) {
        match fate {
            Fate::Added => added.push(config.name.as_str()),
            Fate::Changed { .. } => changed.push(config.name.as_str()),
            Fate::Resurfaced(_) => resurfaced.push(config.name.as_str()),
            Fate::Kept(_) => kept += 1,
        }
    }
    let removed: Vec<&str> = plan
        .removed
        .iter()
        .map(|&slot| old.configs[slot].name.as_str())
        .collect();
    let mut parts = Vec::new();
    let mut list = |what: &str, names: &[&str]| {
        if !names.is_empty() {
            parts.push(format!("{what} {}", names.join(", ")));
        }
    };
    list("added", &added);
    list("restarted (changed)", &changed);
    list("removed", &removed);
    list("names/filters changed for", &resurfaced);
    if parts.is_empty() && reload.gateway_changes.is_empty() {
        return format!(
            "config reloaded from {}: nothing changed ({} servers)",
            reload.source,
            new.current.len()
        );
    }
    if kept > 0 {
        parts.push(format!("{kept} unchanged"));
    }
    parts.extend(reload.gateway_changes.iter().cloned());
    format!(
        "config reloaded from {}: {}",
        reload.source,
        parts.join("; ")
    )
}
