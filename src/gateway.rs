//! Wiring: builds the threads of the diagram in `lib.rs` from a `Config`, runs them, stops them.
//!
//! `Backend` is everything behind the reactor (pools, registry, child I/O, supervisor, workers); the
//! `serve` command puts a reactor in front of it, `check` only starts it and reads the registry.
//! `exposure` is the rule for where `serve` may listen: beyond loopback only with a token, or with
//! `gateway.allowUnauthenticated` (then with a warning, shown in `/health` too).

use crate::catalog::Catalog;
use crate::config::{Config, GatewayConfig, ServerConfig, ServerKind};
use crate::downstream::child_io::{ChildEvent, ChildIo, IoLoop};
use crate::downstream::flight::Carrier;
use crate::downstream::link::ServerPool;
use crate::downstream::remote::link::Events;
use crate::downstream::servers::{LiveServers, PoolMaker, Servers};
use crate::job::{ReactorSink, ToReactor};
use crate::pool::{Doorbell, Status};
use crate::reactor::{self, Reactor, Settings};
use crate::reload::{Overrides, PidFile, Watcher};
use crate::supervisor::{Control, Supervisor};
use crate::upstream::Router;
use crate::workers::{self, WorkerMsg};
use crossbeam_channel::{Receiver, Sender};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// How long a stop waits for the supervisor to have stopped and reaped every child.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(15);

/// Everything behind the reactor.
pub struct Backend {
    /// The newest server table (the supervisor publishes reloads here).
    pub servers: LiveServers,
    pub catalog: Arc<Catalog>,
    pub jobs: Sender<WorkerMsg>,
    /// Calls to local servers go here from the reactor (workers carry remote ones).
    pub child_io: ChildIo,
    pub control: Sender<Control>,
}

/// Where child I/O runs.
pub enum ChildIoOn<'a> {
    /// In the reactor's loop, on its poll (whose waker this is): `serve`.
    Reactor(&'a mio::Poll, Arc<mio::Waker>),
    /// On a thread and a poll of its own: `check`, which has no reactor.
    OwnThread,
}

impl Backend {
    /// Starts child I/O, the supervisor and the workers; servers begin starting at once. With
    /// `ChildIoOn::Reactor`, child I/O is returned for the reactor to drive.
    pub fn start(
        config: &Config,
        sink: ReactorSink,
        child_io_on: ChildIoOn,
    ) -> std::io::Result<(Backend, Option<IoLoop>)> {
        let (control, control_rx) = crossbeam_channel::unbounded();
        let doorbell: Doorbell = {
            let control = control.clone();
            Arc::new(move || {
                let _ = control.send(Control::Ring);
            })
        };
        let maker = PoolMaker {
            max_message: config.gateway.max_message_bytes,
            state_dir: config.gateway.state_dir.clone(),
            sink: sink.clone(),
            doorbell,
        };
        let (pools, targets): (Vec<_>, Vec<_>) =
            config.servers.iter().map(|s| maker.make(s)).unzip();
        let table = Servers::new(config.servers.clone(), pools);
        let catalog = Arc::new(Catalog::new(
            table.clone(),
            config.profiles.clone().into(),
            config.gateway.page_size,
            config.gateway.state_dir.clone(),
            sink.clone(),
        ));
        crate::catalog::watch_pins(catalog.clone());
        for (slot, _, pool) in table.in_force() {
            if catalog.listing(slot).is_some() {
                pool.listed_already();
            }
        }
        let events: Events = {
            let control = control.clone();
            let sink = sink.clone();
            Arc::new(move |event| match event {
                ChildEvent::ForClients {
                    server,
                    method,
                    params,
                } => sink.send(ToReactor::ServerNotification {
                    server,
                    method,
                    params,
                }),
                other => {
                    let _ = control.send(Control::Child(other));
                }
            })
        };
        let servers = LiveServers::new(table);
        let (jobs, jobs_rx) = crossbeam_channel::unbounded();
        let carrier = Carrier {
            servers: servers.clone(),
            sink: sink.clone(),
            workers: jobs.clone(),
        };
        let (child_io, io_loop) = {
            let events = events.clone();
            let on_event = Box::new(move |event| events(event));
            let max_message = config.gateway.max_message_bytes;
            match child_io_on {
                ChildIoOn::Reactor(poll, waker) => {
                    let (io, io_loop) = ChildIo::embedded(
                        poll.registry(),
                        waker,
                        max_message,
                        carrier.clone(),
                        on_event,
                    )?;
                    (io, Some(io_loop))
                }
                ChildIoOn::OwnThread => (
                    ChildIo::start(max_message, carrier.clone(), on_event)?,
                    None,
                ),
            }
        };
        Supervisor {
            servers: servers.clone(),
            maker,
            catalog: catalog.clone(),
            workers: jobs.clone(),
            child_io: child_io.clone(),
            targets,
            events,
            control: control_rx,
        }
        .start()?;
        let count = config
            .gateway
            .workers
            .unwrap_or_else(|| default_workers(&config.servers));
        workers::start(count, jobs_rx, carrier, child_io.clone())?;
        log::debug!("{count} workers");
        let backend = Backend {
            servers,
            catalog,
            jobs,
            child_io,
            control,
        };
        Ok((backend, io_loop))
    }

    /// Tells the supervisor to stop and reap every child (`hurry` skips the polite waits); the
    /// receiver gets word when that is done.
    pub fn stop(&self, hurry: bool) -> Receiver<()> {
        let (done, wait) = crossbeam_channel::bounded(1);
        let _ = self.control.send(Control::Shutdown { hurry, done });
        wait
    }

    /// `stop`, waiting at most `SHUTDOWN_WAIT` for it (child I/O on a thread of its own).
    pub fn shutdown(&self, hurry: bool) {
        let _ = self.stop(hurry).recv_timeout(SHUTDOWN_WAIT);
    }
}

/// Enough workers for every remote call that can be in flight at once (a worker carries a remote
/// call to its end; calls on children are carried by child I/O, in the reactor's loop), plus a couple for
/// dispatching.
pub(crate) fn default_workers(servers: &[ServerConfig]) -> usize {
    let remote_calls: usize = servers
        .iter()
        .filter(|s| s.enabled && matches!(s.kind, ServerKind::Remote(_)))
        .map(|s| s.pool.max.saturating_mul(s.pool.max_concurrency))
        .sum();
    remote_calls.saturating_add(2).clamp(2, 512)
}

/// `mcp-gateway serve`: runs until SIGTERM/SIGINT, then stops everything; reloads the config on
/// SIGHUP or when the file changes (`reload`), `overrides` applied to every new one. Errors are
/// for the user.
pub fn serve(config: Config, overrides: Overrides) -> Result<(), String> {
    crate::signals::block().map_err(|e| format!("cannot block signals: {e}"))?;
    raise_fd_limit();
    return_large_buffers();
    // Held until `serve` returns; when the process ends, however, the guard cleans up after it.
    let _guard = crate::downstream::process::start_guard()
        .map_err(|e| format!("cannot start the process guard: {e}"))?;
    #[cfg(not(target_os = "linux"))]
    if config
        .servers
        .iter()
        .any(|s| s.pool.recycle.max_rss_bytes.is_some())
    {
        log::warn!("maxRssBytes is not supported on this system (it reads /proc): it is ignored");
    }
    let socket_addr = listen_address(&config.gateway)?;
    let exposure_note = exposure(&config.gateway, socket_addr.ip())?;
    if let Some(note) = &exposure_note {
        log::warn!("{note}");
    }
    let listener = mio::net::TcpListener::bind(socket_addr).map_err(|e| {
        format!("cannot listen on {socket_addr}: {e} (is another gateway running? change gateway.port or pass --port)")
    })?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;

    let poll = mio::Poll::new().map_err(|e| e.to_string())?;
    let waker =
        Arc::new(mio::Waker::new(poll.registry(), reactor::WAKER).map_err(|e| e.to_string())?);
    let (tx, mailbox): (Sender<ToReactor>, Receiver<ToReactor>) = crossbeam_channel::unbounded();
    let sink = ReactorSink::new(tx, waker.clone());
    // The reactor drives child I/O on this thread: sends to its mailboxes from here ring no bell.
    crate::job::drive(&waker);
    let (backend, children) =
        Backend::start(&config, sink.clone(), ChildIoOn::Reactor(&poll, waker))
            .map_err(|e| format!("cannot start: {e}"))?;
    let children = children.expect("ChildIoOn::Reactor hands child I/O back to drive");
    let (hangups, hangups_rx) = crossbeam_channel::unbounded();
    crate::signals::watch(sink.clone(), hangups)
        .map_err(|e| format!("cannot watch signals: {e}"))?;
    Watcher {
        config: config.clone(),
        overrides,
        listening: local.ip(),
        control: backend.control.clone(),
        sink,
    }
    .start(hangups_rx)
    .map_err(|e| format!("cannot start the config watcher: {e}"))?;
    let _pid_file = PidFile::write(
        config.gateway.state_dir.as_deref(),
        &format!("http://{local}"),
    );

    let mut router = Router::new(
        backend.catalog.snapshot(),
        backend.jobs.clone(),
        backend.control.clone(),
        backend.servers.clone(),
        crate::upstream::Settings::from_gateway(
            &config.gateway,
            local.ip().is_loopback(),
            exposure_note
                .into_iter()
                .chain(config.notes.clone())
                .collect(),
        ),
    );
    router.carry_local_calls(backend.child_io.clone());
    if let Some(oauth) = &config.gateway.oauth {
        // Its thread fetches the key set now, so that it is normally there for the first token.
        let guard = crate::upstream::oauth::Guard::start(oauth)
            .map_err(|e| format!("cannot start the oauth-keys thread: {e}"))?;
        router.guard_with_oauth(guard);
    }
    let session_key = config.gateway.session_key_file.clone().or_else(|| {
        let dir = config.gateway.state_dir.as_ref()?;
        Some(dir.join(crate::upstream::signed::KEY_FILE))
    });
    if let Some(key) = &session_key {
        router.sign_sessions(key);
    }
    // Opened before the listener serves anyone: a path that cannot work fails the start.
    let audit_writer = match &config.gateway.audit {
        Some(audit) => {
            let (log, writer) = crate::audit::start(audit)?;
            router.set_audit(log);
            Some(writer)
        }
        None => None,
    };
    let settings = Settings::from_gateway(&config.gateway);
    let mut reactor = Reactor::new(poll, listener, mailbox, router, children, settings)
        .map_err(|e| e.to_string())?;
    log::info!(
        "mcp-gateway {} listening on http://{local} ({} servers{})",
        env!("CARGO_PKG_VERSION"),
        config.servers.iter().filter(|s| s.enabled).count(),
        config
            .source
            .as_ref()
            .map(|p| format!(", config {}", p.display()))
            .unwrap_or_default()
    );
    let result = reactor.run();
    let hurry = *result.as_ref().unwrap_or(&true);
    // The supervisor stops the children through child I/O, which the reactor's poll still drives.
    let stopped = backend.stop(hurry);
    reactor.serve_children_until(&stopped, std::time::Instant::now() + SHUTDOWN_WAIT);
    // The router (with the queue's only sender) goes with the reactor: the writer then writes
    // what is queued and ends.
    drop(reactor);
    if let Some(writer) = audit_writer {
        writer.finish();
    }
    log::info!("stopped");
    result
        .map(|_| ())
        .map_err(|e| format!("event loop failed: {e}"))
}

/// The address `gateway.host` and `gateway.port` name (the first one, when a name resolves to
/// several).
pub fn listen_address(gateway: &GatewayConfig) -> Result<SocketAddr, String> {
    let address = format!("{}:{}", gateway.host, gateway.port);
    address
        .to_socket_addrs()
        .map_err(|e| format!("gateway.host/port: cannot resolve {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("gateway.host/port: {address} resolves to nothing"))
}

/// Whether listening on `ip` is safe with these settings: `Err` refuses (a non-loopback address
/// and no token: anyone who reaches it may call every tool), `Ok(Some(note))` is the warning for
/// such a bind allowed by `gateway.allowUnauthenticated`, `Ok(None)` needs no word.
pub fn exposure(gateway: &GatewayConfig, ip: IpAddr) -> Result<Option<String>, String> {
    if ip.is_loopback() || gateway.auth_token.is_some() || gateway.oauth.is_some() {
        return Ok(None);
    }
    if gateway.allow_unauthenticated {
        return Ok(Some(format!(
            "listening on {ip} without gateway.authToken (gateway.allowUnauthenticated is true): anyone who can reach this address may call every tool"
        )));
    }
    Err(format!(
        "refusing to listen on {ip} without a token: anyone who can reach it could call every tool of every server. \
         Set gateway.authToken (or gateway.authTokenFile, a file only you can read) and send it as `Authorization: Bearer <token>`; \
         or listen on 127.0.0.1; or, to accept the risk (a network you fully trust), set gateway.allowUnauthenticated: true"
    ))
}

/// `mcp-gateway check`: starts every server, waits until each is up or has failed, prints the
/// registry (tools, collisions, notes). Returns whether every enabled server came up.
pub fn check(mut config: Config) -> Result<bool, String> {
    crate::signals::block().map_err(|e| format!("cannot block signals: {e}"))?;
    // Every server is started and listed live: a check must not take last run's word for it.
    config.gateway.state_dir = None;
    let _guard = crate::downstream::process::start_guard()
        .map_err(|e| format!("cannot start the process guard: {e}"))?;
    let poll = mio::Poll::new().map_err(|e| e.to_string())?;
    let waker =
        Arc::new(mio::Waker::new(poll.registry(), reactor::WAKER).map_err(|e| e.to_string())?);
    let (tx, _mailbox) = crossbeam_channel::unbounded();
    let (backend, _) = Backend::start(&config, ReactorSink::new(tx, waker), ChildIoOn::OwnThread)
        .map_err(|e| e.to_string())?;
    let longest_init = config
        .servers
        .iter()
        .map(|s| s.init_timeout)
        .max()
        .unwrap_or_default();
    let give_up = std::time::Instant::now() + longest_init + Duration::from_secs(1);
    let table = backend.servers.get();
    let settled = |pool: &Arc<ServerPool>| pool.stats().status != Status::Starting;
    while !table.pools.iter().all(settled) && std::time::Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(50));
    }
    let snapshot = backend.catalog.snapshot();
    let mut all_up = true;
    println!(
        "config: {}",
        config
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(built in)".into())
    );
    for (index, server, pool) in table.in_force() {
        let stats = pool.stats();
        if server.enabled && stats.status != Status::Up {
            all_up = false;
        }
        print!(
            "server {}: {} - {} tools",
            server.name,
            stats.status.as_str(),
            snapshot.tool_counts[index]
        );
        match (&stats.last_error, stats.status) {
            (Some(error), s) if s != Status::Up => println!(" ({error})"),
            _ => println!(),
        }
    }
    println!("tools:");
    for tool in &snapshot.tools.items {
        println!(
            "  {:<40} {}/{}",
            tool.name, table.configs[tool.server].name, tool.original
        );
    }
    println!("profiles (tokens estimated as definition bytes / 4):");
    for view in &snapshot.views {
        let figures = crate::upstream::profiles::summary(view);
        let listed = match figures["listed"].as_str() {
            Some("search") => format!(
                ", listed as 3 search tools, ~{} tokens",
                figures["listedTokens"]
            ),
            _ => String::new(),
        };
        println!(
            "  {:<20} {} tools, ~{} tokens (toolExposure {}{listed})",
            view.exposure.profile,
            figures["tools"],
            figures["estimatedTokens"],
            view.exposure.mode.as_str(),
        );
    }
    if !snapshot.collisions.is_empty() {
        println!("collisions:");
        for collision in &snapshot.collisions {
            println!("  {collision}");
        }
    }
    if !snapshot.notes.is_empty() {
        println!("notes:");
        for note in &snapshot.notes {
            println!("  {note}");
        }
    }
    backend.shutdown(true);
    Ok(all_up)
}

/// Makes every large allocation its own mapping, unmapped when freed: answers of many MiB held
/// for slow clients then give their memory back to the system once sent or dropped, instead of
/// staying in the allocator's heap (glibc otherwise raises its mmap threshold after the first
/// such free, and the process keeps its peak size).
fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Lifts the soft open-files limit to the hard one: every client and child pipe is an fd.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let wanted = limit.rlim_max.min(1 << 20);
            limit.rlim_cur = wanted;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                log::debug!("could not raise the open-files limit");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(json: &str) -> GatewayConfig {
        crate::config::parse_str(json, &|_| None).unwrap().gateway
    }

    #[test]
    fn a_bind_beyond_loopback_needs_a_token_or_an_explicit_yes() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let lan: IpAddr = "192.168.1.2".parse().unwrap();
        let open = gateway("{}");
        for ip in ["127.0.0.1", "::1", "127.0.0.2"] {
            assert_eq!(exposure(&open, ip.parse().unwrap()), Ok(None), "{ip}");
        }
        for ip in [any, lan, "::".parse().unwrap()] {
            let refusal = exposure(&open, ip).unwrap_err();
            assert!(
                refusal.contains("gateway.authToken")
                    && refusal.contains("gateway.authTokenFile")
                    && refusal.contains("gateway.allowUnauthenticated: true"),
                "{refusal}"
            );
        }
        let with_token = gateway(r#"{"gateway": {"authToken": "t"}}"#);
        assert_eq!(exposure(&with_token, any), Ok(None));
        let allowed = gateway(r#"{"gateway": {"allowUnauthenticated": true}}"#);
        let note = exposure(&allowed, any).unwrap().unwrap();
        assert!(note.contains("without gateway.authToken"), "{note}");
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let g = gateway(r#"{"gateway": {"host": "localhost", "port": 0}}"#);
        assert!(listen_address(&g).unwrap().ip().is_loopback());
    }
}
