//! Reloading the config without a restart: the `config-watch` thread, the pid file, and
//! `mcp-gateway reload`.
//!
//! What starts a reload: SIGHUP (the signals thread passes it on), `mcp-gateway reload` (which
//! sends that SIGHUP to the gateway named by the pid file in `stateDir`, or `--pid`), and, while
//! `gateway.watchConfig` is true (the default), a change to the config file — looked at once a
//! second, and reloaded once it has stayed the same for one more look, so an editor's several
//! writes make one reload.
//!
//! Reading and validating the file happen on this thread, never on the reactor. A file that does
//! not validate is logged with every problem and the config in force stays (`/health` says the
//! last reload was refused). A valid one goes to the supervisor (`Control::Reload`), which applies
//! it as a diff. `--host`/`--port` given on the command line are applied to every new config as
//! to the first; settings that need a new socket or a new thread (`host`, `port`, `workers`,
//! `maxMessageBytes`, `stateDir`, `sessionKeyFile`, the audit log's) are reported as needing a
//! restart and keep their running values.
//!
//! This thread owns the config in force (as far as reloads are concerned) and the file's last
//! seen state; nothing else reads the file after startup.

use crate::config::{self, Config, GatewayConfig};
use crate::job::{ReactorSink, ToReactor};
use crate::supervisor::{Control, Reload};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How often the config file is looked at while `watchConfig` is on.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The pid file's name inside `stateDir`.
pub const PID_FILE: &str = "mcp-gateway.pid";

/// `--host` / `--port` from the command line: they win over the file, at start and on reloads.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
}

impl Overrides {
    pub fn apply(&self, config: &mut Config) {
        if let Some(host) = &self.host {
            config.gateway.host = host.clone();
        }
        if let Some(port) = self.port {
            config.gateway.port = port;
        }
    }
}

/// What the watcher needs to know of the running gateway.
pub struct Watcher {
    pub config: Config,
    pub overrides: Overrides,
    /// The address the gateway listens on (for the exposure rule).
    pub listening: IpAddr,
    pub control: Sender<Control>,
    pub sink: ReactorSink,
}

/// What a look at the file sees: a changed modification time, size or inode is a change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

impl Watcher {
    /// Starts the thread; `hangups` carries one message per SIGHUP.
    pub fn start(self, hangups: Receiver<()>) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("config-watch".into())
            .stack_size(256 * 1024)
            .spawn(move || crate::panics::restart_on_panic("config-watch", || self.run(&hangups)))
            .map(|_| ())
    }

    fn run(&self, hangups: &Receiver<()>) {
        let Some(path) = self.config.source.clone() else {
            // Only a config read from a file can be read again.
            for () in hangups.iter() {
                log::warn!(
                    "SIGHUP received, but the config was not read from a file: nothing to reload"
                );
            }
            return;
        };
        let mut state = State {
            config: self.config.clone(),
            seen: stamp(&path),
            pending: None,
        };
        loop {
            match hangups.recv_timeout(WATCH_EVERY) {
                Ok(()) => {
                    log::info!("SIGHUP received: reloading {}", path.display());
                    self.reload(&path, &mut state);
                    state.seen = stamp(&path);
                    state.pending = None;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if state.config.gateway.watch_config {
                        self.look(&path, &mut state);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// One look at the file: a change is reloaded once it has held still for one more look.
    fn look(&self, path: &Path, state: &mut State) {
        let now = stamp(path);
        if now == state.seen {
            state.pending = None;
            return;
        }
        if state.pending.as_ref() == Some(&now) {
            log::info!("{} changed: reloading", path.display());
            self.reload(path, state);
            state.seen = now;
            state.pending = None;
        } else {
            state.pending = Some(now);
        }
    }

    /// Reads, validates and hands a new config to the supervisor, or says why not.
    fn reload(&self, path: &Path, state: &mut State) {
        match self.load(path, &state.config) {
            Ok((config, reload)) => {
                let _ = self.control.send(Control::Reload(Box::new(reload)));
                state.config = config;
            }
            Err(problems) => {
                let summary = format!(
                    "config reload refused: {} is not valid, the config in force stays: {}",
                    path.display(),
                    problems.replace('\n', "; ")
                );
                log::error!("{summary}");
                self.sink.send(ToReactor::Reloaded {
                    gateway: None,
                    notes: Vec::new(),
                    summary,
                });
            }
        }
    }

    /// The new config (as it will be in force) and the supervisor's part of it.
    fn load(&self, path: &Path, running: &Config) -> Result<(Config, Reload), String> {
        let mut config = config::load(path).map_err(|e| e.to_string())?;
        self.overrides.apply(&mut config);
        let mut changes = Vec::new();
        keep_running(&running.gateway, &mut config.gateway, &mut changes);
        if config.gateway.workers.is_none() {
            let (sized, wanted) = (
                crate::gateway::default_workers(&self.config.servers),
                crate::gateway::default_workers(&config.servers),
            );
            if wanted > sized {
                changes.push(format!(
                    "the remote servers may now carry {wanted} calls at once, but the {sized} workers were sized at start: a restart (or gateway.workers) sizes them anew"
                ));
            }
        }
        let notes = crate::gateway::exposure(&config.gateway, self.listening)?
            .into_iter()
            .chain(config.notes.clone())
            .collect();
        changes.extend(applied_changes(&running.gateway, &config.gateway));
        if config.profiles != running.profiles {
            changes.push("profiles changed".into());
        }
        let reload = Reload {
            servers: config.servers.clone(),
            profiles: config.profiles.clone(),
            gateway: config.gateway.clone(),
            gateway_changes: changes,
            notes,
            source: path.display().to_string(),
        };
        Ok((config, reload))
    }
}

struct State {
    /// The config in force.
    config: Config,
    /// The file as last reloaded (or at start).
    seen: Option<Stamp>,
    /// A change seen at the last look, reloaded if the next look sees the same.
    pending: Option<Option<Stamp>>,
}

/// Settings that cannot change without a restart keep their running values; each one the new
/// file changes is reported.
fn keep_running(running: &GatewayConfig, new: &mut GatewayConfig, changes: &mut Vec<String>) {
    let mut restart = |key: &str, was: String, now: String| {
        if was != now {
            changes.push(format!(
                "gateway.{key} changed to {now}: needs a restart (still {was})"
            ));
        }
    };
    restart("host", running.host.clone(), new.host.clone());
    restart("port", running.port.to_string(), new.port.to_string());
    let workers = |w: Option<usize>| w.map_or("sized from the pools".into(), |n| n.to_string());
    restart("workers", workers(running.workers), workers(new.workers));
    restart(
        "maxMessageBytes",
        running.max_message_bytes.to_string(),
        new.max_message_bytes.to_string(),
    );
    let dir = |d: &Option<PathBuf>| {
        d.as_ref()
            .map_or("none".into(), |d| d.display().to_string())
    };
    restart("stateDir", dir(&running.state_dir), dir(&new.state_dir));
    new.host = running.host.clone();
    new.port = running.port;
    new.workers = running.workers;
    new.max_message_bytes = running.max_message_bytes;
    if running.audit != new.audit {
        changes.push(
            "gateway.auditLog/auditLogMaxBytes/auditArguments changed: needs a restart (the audit log in force stays)"
                .into(),
        );
    }
    // The key set is fetched by a thread started with the gateway, for its issuer: scopes and
    // `resource` apply at once, the rest needs a restart.
    match (&running.oauth, &mut new.oauth) {
        (Some(was), Some(now)) if !was.same_issuer(now) => {
            changes.push(
                "gateway.oauth issuer/audience/jwksUri changed: needs a restart (the ones in force stay)"
                    .into(),
            );
            now.issuer = was.issuer.clone();
            now.audience = was.audience.clone();
            now.jwks_uri = was.jwks_uri.clone();
        }
        (Some(_), None) => changes
            .push("gateway.oauth removed: needs a restart (tokens are still required)".into()),
        (None, Some(_)) => changes.push(
            "gateway.oauth added: needs a restart (until then tokens are not checked)".into(),
        ),
        _ => {}
    }
    if running.oauth.is_none() || new.oauth.is_none() {
        new.oauth = running.oauth.clone();
    }
    new.state_dir = running.state_dir.clone();
    new.session_key_file = running.session_key_file.clone();
    new.audit = running.audit.clone();
}

/// The `gateway` keys a reload changes and applies (tokens never printed).
fn applied_changes(running: &GatewayConfig, new: &GatewayConfig) -> Vec<String> {
    let checks: [(&str, bool); 18] = [
        ("oauth", running.oauth != new.oauth),
        ("cors", running.cors != new.cors),
        ("maxBodyBytes", running.max_body_bytes != new.max_body_bytes),
        ("maxClients", running.max_clients != new.max_clients),
        ("callTimeout", running.call_timeout != new.call_timeout),
        (
            "keepaliveInterval",
            running.keepalive_interval != new.keepalive_interval,
        ),
        (
            "shutdownTimeout",
            running.shutdown_timeout != new.shutdown_timeout,
        ),
        (
            "sessionTimeout",
            running.session_timeout != new.session_timeout,
        ),
        ("authToken", running.auth_token != new.auth_token),
        (
            "allowUnauthenticated",
            running.allow_unauthenticated != new.allow_unauthenticated,
        ),
        (
            "allowedOrigins",
            running.allowed_origins != new.allowed_origins,
        ),
        ("pageSize", running.page_size != new.page_size),
        ("maxSessions", running.max_sessions != new.max_sessions),
        (
            "maxInFlightPerSession",
            running.max_in_flight_per_session != new.max_in_flight_per_session,
        ),
        (
            "maxQueuedBytes",
            running.max_queued_bytes != new.max_queued_bytes,
        ),
        (
            "maxMemoryBytes",
            running.max_memory_bytes != new.max_memory_bytes,
        ),
        ("allowedHosts", running.allowed_hosts != new.allowed_hosts),
        ("watchConfig", running.watch_config != new.watch_config),
    ];
    checks
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| format!("gateway.{key} changed"))
        .collect()
}

/// The pid file in `stateDir`, for `mcp-gateway reload`: the pid on its first line, the URL the
/// gateway listens on on its second. Written at start, removed at stop (if it still names this
/// process: another gateway on the same state dir may have taken it over).
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes the file; a problem is logged, not fatal (only `reload` without `--pid` needs it).
    pub fn write(state_dir: Option<&Path>, url: &str) -> Option<PidFile> {
        let dir = state_dir?;
        let path = dir.join(PID_FILE);
        if let Some(other) = read_pid(&path).filter(|&pid| pid != std::process::id()) {
            if is_gateway(other) {
                log::warn!(
                    "{} names another running gateway (pid {other}) using the same state dir; it is now this one's (pid {})",
                    path.display(),
                    std::process::id()
                );
            }
        }
        let written = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&path, format!("{}\n{url}\n", std::process::id())));
        match written {
            Ok(()) => Some(PidFile { path }),
            Err(e) => {
                log::warn!(
                    "cannot write the pid file {}: {e} (`mcp-gateway reload` will need --pid)",
                    path.display()
                );
                None
            }
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if read_pid(&self.path) == Some(std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The URL the gateway of the pid file in `state_dir` listens on, if that gateway is `pid`.
pub fn listening_url(state_dir: Option<&Path>, pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(state_dir?.join(PID_FILE)).ok()?;
    let mut lines = text.lines();
    let named: u32 = lines.next()?.trim().parse().ok()?;
    (named == pid).then(|| lines.next().map(|l| l.trim().to_string()))?
}

/// Whether `pid` is a running mcp-gateway (not a stale pid file's number reused by another
/// program).
fn is_gateway(pid: u32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => cmdline
            .split(|&b| b == 0)
            .next()
            .is_some_and(|arg0| String::from_utf8_lossy(arg0).contains("mcp-gateway")),
        // Without /proc (not Linux), trust that the process exists.
        // SAFETY: signal 0 only checks that the process exists.
        Err(_) => unsafe { libc::kill(pid as libc::pid_t, 0) == 0 },
    }
}

/// `mcp-gateway reload`: which gateway to signal. `pid` wins; else the pid file in `state_dir`.
pub fn find_gateway(pid: Option<u32>, state_dir: Option<&Path>) -> Result<u32, String> {
    if let Some(pid) = pid {
        return Ok(pid);
    }
    let dir = state_dir.ok_or(
        "cannot tell the state dir (no HOME, no gateway.stateDir): give the gateway's --pid",
    )?;
    let path = dir.join(PID_FILE);
    let pid = read_pid(&path).ok_or_else(|| {
        format!(
            "no running gateway found: {} does not exist or names no pid (is the gateway running with this config? else give --pid)",
            path.display()
        )
    })?;
    if !is_gateway(pid) {
        return Err(format!(
            "{} names pid {pid}, which is not a running mcp-gateway (a stale file; give --pid)",
            path.display()
        ));
    }
    Ok(pid)
}

/// Sends SIGHUP to `pid`.
pub fn signal(pid: u32) -> Result<(), String> {
    // SAFETY: kill with a plain pid and signal number.
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) } != 0 {
        return Err(format!(
            "cannot signal pid {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(json: &str) -> GatewayConfig {
        config::parse_str(json, &|_| None).unwrap().gateway
    }

    #[test]
    fn socket_settings_keep_their_running_values_and_say_so() {
        let running = gateway(r#"{"gateway": {"port": 4000}}"#);
        let mut new =
            gateway(r#"{"gateway": {"port": 4001, "maxClients": 5, "authToken": "s3cret"}}"#);
        let mut changes = Vec::new();
        keep_running(&running, &mut new, &mut changes);
        assert_eq!(new.port, 4000);
        assert_eq!(
            changes,
            ["gateway.port changed to 4001: needs a restart (still 4000)"]
        );
        let applied = applied_changes(&running, &new);
        assert_eq!(
            applied,
            ["gateway.maxClients changed", "gateway.authToken changed"]
        );
        assert!(
            !applied.concat().contains("s3cret"),
            "never the token itself"
        );
    }

    #[test]
    fn an_oauth_change_needs_a_restart() {
        let running =
            gateway(r#"{"gateway": {"oauth": {"issuer": "https://a.example", "audience": "gw"}}}"#);
        let mut new =
            gateway(r#"{"gateway": {"oauth": {"issuer": "https://b.example", "audience": "gw"}}}"#);
        let mut changes = Vec::new();
        keep_running(&running, &mut new, &mut changes);
        assert_eq!(new.oauth, running.oauth);
        assert_eq!(
            changes,
            ["gateway.oauth issuer/audience/jwksUri changed: needs a restart (the ones in force stay)"]
        );
        assert!(applied_changes(&running, &new).is_empty());
        // Scopes apply at once.
        let mut new = gateway(
            r#"{"gateway": {"oauth": {"issuer": "https://a.example", "audience": "gw", "requiredScopes": ["x"]}}}"#,
        );
        let mut changes = Vec::new();
        keep_running(&running, &mut new, &mut changes);
        assert!(changes.is_empty());
        assert_eq!(new.oauth.as_ref().unwrap().required_scopes, ["x"]);
        assert_eq!(applied_changes(&running, &new), ["gateway.oauth changed"]);
        // Added by a reload: refused until a restart, and said so.
        let mut new = running.clone();
        let mut changes = Vec::new();
        keep_running(&gateway("{}"), &mut new, &mut changes);
        assert_eq!(new.oauth, None);
        assert_eq!(
            changes,
            ["gateway.oauth added: needs a restart (until then tokens are not checked)"]
        );
    }

    #[test]
    fn a_stale_pid_file_is_not_trusted() {
        let dir = std::env::temp_dir().join(format!("mcp-gw-pid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(find_gateway(None, Some(&dir))
            .unwrap_err()
            .contains("no running gateway found"));
        // pid 1 exists but is not a gateway.
        std::fs::write(dir.join(PID_FILE), "1\n").unwrap();
        assert!(find_gateway(None, Some(&dir))
            .unwrap_err()
            .contains("not a running mcp-gateway"));
        assert_eq!(find_gateway(Some(42), Some(&dir)), Ok(42));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
