//! Starting and stopping child processes the way a supervisor must.
//!
//! Spawn: no shell; a minimal inherited environment plus the configured `env`; the child leads its own
//! process group (so `npx`/`uvx` grandchildren can be signalled with it); `PR_SET_PDEATHSIG` so it dies
//! with the gateway even on `SIGKILL`; every gateway fd is close-on-exec (Rust opens everything with
//! `O_CLOEXEC`), so the child sees only its three pipes.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked exits, so spawning must happen on a thread
//! that lives as long as the gateway (the supervisor thread). Never call `spawn` from a short-lived one.
//!
//! Stop: `Exiting` walks close-stdin → wait → `SIGTERM` to the group → wait → `SIGKILL` to the group,
//! polled with `try_wait` so many children stop in parallel and every one is reaped.
//!
//! Nothing outlives the gateway: every child gets `MCP_GATEWAY_INSTANCE=<random id>` in its
//! environment, which its descendants inherit even when they leave its process group or session
//! (`setsid`). The guard — this same binary run as `mcp-gateway __guard <id>`, detached from the
//! gateway (its own session, reparented away) — waits on a pipe only the gateway holds open. When
//! the gateway is gone, however it ended (exit, crash, `SIGKILL`), the pipe reads end-of-file and
//! the guard stops, then kills, every process whose environment carries the id, then exits.

use crate::config::LocalServer;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The variable that marks every process of this gateway instance (see the module doc).
pub const INSTANCE_ENV: &str = "MCP_GATEWAY_INSTANCE";
/// This gateway's instance id, once its guard runs.
static INSTANCE: OnceLock<String> = OnceLock::new();
/// The argument that runs the binary as a guard.
pub const GUARD_ARG: &str = "__guard";

/// Variables children inherit from the gateway's environment (when set); everything else must be
/// configured in the server's `env`.
pub const INHERITED_ENV: &[&str] = &[
    "HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ",
];
const FALLBACK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long a child gets after its stdin closes, and again after `SIGTERM`.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Starts a local server's process with piped stdio.
pub fn spawn(local: &LocalServer) -> io::Result<Child> {
    let (program, args) = local
        .command
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for key in INHERITED_ENV {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    if std::env::var_os("PATH").is_none() {
        command.env("PATH", FALLBACK_PATH);
    }
    command.envs(local.env.iter().map(|(k, v)| (k, v)));
    if let Some(instance) = INSTANCE.get() {
        command.env(INSTANCE_ENV, instance);
    }
    if let Some(cwd) = &local.cwd {
        command.current_dir(cwd);
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe syscalls.
    unsafe {
        command.pre_exec(move || {
            // Linux only: elsewhere the guard process (and the process-group signals) must do.
            #[cfg(target_os = "linux")]
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The gateway may have died between fork and prctl: then nobody would ever signal us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            // Fds the gateway inherited from its own parent (or any opened without O_CLOEXEC) must
            // not reach the child: mark everything above 2 close-on-exec. std's exec-error pipe is
            // already close-on-exec, so it keeps working.
            #[cfg(target_os = "linux")]
            let marked = {
                const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
                libc::syscall(
                    libc::SYS_close_range,
                    3 as libc::c_uint,
                    libc::c_uint::MAX,
                    CLOSE_RANGE_CLOEXEC,
                ) == 0
            };
            #[cfg(not(target_os = "linux"))]
            let marked = false;
            if !marked {
                // Kernels before 5.11, and other systems: walk the fd table up to the soft limit.
                let max = libc::sysconf(libc::_SC_OPEN_MAX).clamp(0, 1 << 20) as libc::c_int;
                for fd in 3..max {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                        libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                    }
                }
            }
            // Signals the gateway blocks for its signal thread must not stay blocked in the child.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    command.spawn()
}

/// A pipe whose both ends are close-on-exec, so no child but the guard (which gets the read end
/// as its stdin) ever holds them.
fn cloexec_pipe() -> io::Result<[libc::c_int; 2]> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-element array.
    #[cfg(target_os = "linux")]
    let made = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0;
    // SAFETY: pipe fills the array; fcntl on the two fds it made. No other thread forks before
    // the guard starts (it is started first), so nothing can inherit them in between.
    #[cfg(not(target_os = "linux"))]
    let made = unsafe {
        libc::pipe(fds.as_mut_ptr()) == 0
            && fds
                .iter()
                .all(|&fd| libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0)
    };
    if made {
        Ok(fds)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The gateway's end of the guard's lifeline: held (open) as long as the gateway lives.
#[derive(Debug)]
pub struct Guard {
    _lifeline: std::fs::File,
}

/// Starts the guard that kills whatever this gateway started once the gateway is gone. Call it
/// before the first server is spawned (those spawned before are not marked).
pub fn start_guard() -> io::Result<Guard> {
    use std::os::fd::FromRawFd;
    #[cfg(not(target_os = "linux"))]
    log::warn!(
        "on this system (no /proc, no PR_SET_PDEATHSIG) server processes that outlive a killed gateway \
         are not found and stopped; a graceful stop still stops them all"
    );
    let instance = crate::upstream::session::random_id()?;
    let fds = cloexec_pipe()?;
    // SAFETY: the fds were just created and are owned by nobody else.
    let (read, write) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg(GUARD_ARG)
        .arg(&instance)
        .env_clear()
        .stdin(Stdio::from(read))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: between fork and exec only async-signal-safe calls (setsid, fork, _exit,
    // pthread_sigmask).
    unsafe {
        command.pre_exec(|| {
            // Its own session: a Ctrl-C or a signal to the gateway's group does not reach it.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // Detach: this process exits at once (the gateway reaps it); its child, reparented
            // away from the gateway, becomes the guard.
            match libc::fork() {
                -1 => return Err(io::Error::last_os_error()),
                0 => {}
                _ => libc::_exit(0),
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    command.spawn()?.wait()?;
    let _ = INSTANCE.set(instance);
    Ok(Guard { _lifeline: write })
}

/// `mcp-gateway __guard <id>`: waits until the gateway is gone, then kills every process marked
/// with `id`. Never returns.
pub fn run_guard(instance: &str) -> ! {
    // SAFETY: setting dispositions to SIG_IGN and reading fd 0 have no memory preconditions.
    unsafe {
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
            libc::signal(signal, libc::SIG_IGN);
        }
        let mut buf = [0u8; 64];
        loop {
            let n = libc::read(0, buf.as_mut_ptr().cast(), buf.len());
            if n == 0 || n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break; // the gateway is gone
            }
        }
    }
    let mark = format!("{INSTANCE_ENV}={instance}");
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() } as u32;
    // Stopped first, then killed: none can fork or restart another in between. Again, for any
    // that forked while the list was read.
    for _ in 0..5 {
        let marked = marked_processes(&mark, me);
        if marked.is_empty() {
            break;
        }
        for signal in [libc::SIGSTOP, libc::SIGKILL] {
            for pid in &marked {
                // SAFETY: plain kill(2) of a process that carries our mark.
                unsafe {
                    libc::kill(*pid as libc::pid_t, signal);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::process::exit(0)
}

/// Every process (but `me`) whose environment holds `mark` (`NAME=value`).
fn marked_processes(mark: &str, me: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == mark.as_bytes()))
        })
        .collect()
}

/// Sends `signal` to the child's whole process group.
pub fn signal_group(pid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions; a negative pid addresses the group.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

/// A child on its way out, advanced by `poll` until it is reaped.
#[derive(Debug)]
pub struct Exiting {
    pub label: String,
    child: Child,
    phase: Phase,
    next_step: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// stdin closed, waiting for a voluntary exit.
    StdinClosed,
    /// `SIGTERM` sent to the group.
    Terminated,
    /// `SIGKILL` sent to the group.
    Killed,
}

impl Exiting {
    /// Begins stopping `child` whose stdin the caller has already closed (or dropped).
    pub fn new(label: String, child: Child, now: Instant) -> Exiting {
        Exiting {
            label,
            child,
            phase: Phase::StdinClosed,
            next_step: now + STOP_GRACE,
        }
    }

    /// Skips the grace periods still ahead (second SIGTERM, grace over).
    pub fn hurry(&mut self, now: Instant) {
        self.next_step = self.next_step.min(now);
    }

    /// When `poll` next has something to do.
    pub fn deadline(&self) -> Instant {
        self.next_step
    }

    /// Reaps the child if it exited, escalating when its time is up. `Some` once it is gone.
    pub fn poll(&mut self, now: Instant) -> Option<io::Result<ExitStatus>> {
        let state = peek(self.child.id());
        if state != Peek::Running {
            if matches!(state, Peek::Exited(_)) {
                // The leader is a zombie: its pid (= the group id) stays reserved until we reap it,
                // so this cannot hit an unrelated group. No grandchild of the group may linger.
                signal_group(self.child.id(), libc::SIGKILL);
            }
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(Ok(status)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        if now >= self.next_step {
            match self.phase {
                Phase::StdinClosed => {
                    signal_group(self.child.id(), libc::SIGTERM);
                    self.phase = Phase::Terminated;
                    self.next_step = now + STOP_GRACE;
                }
                Phase::Terminated | Phase::Killed => {
                    signal_group(self.child.id(), libc::SIGKILL);
                    self.phase = Phase::Killed;
                    self.next_step = now + Duration::from_millis(100);
                }
            }
        }
        None
    }
}

/// What `waitid(WNOWAIT)` tells about a child without reaping it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek {
    Running,
    /// Exited (a zombie until reaped), with a description of how.
    Exited(String),
    /// Already reaped, or not our child.
    Gone,
}

/// Looks at the child's state without reaping it, so its pid stays reserved.
pub fn peek(pid: u32) -> Peek {
    // SAFETY: waitid writes only into the zeroed siginfo we pass.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        if rc == -1 {
            return Peek::Gone;
        }
        // With WNOHANG, si_pid stays 0 while the child is still running.
        if info.si_pid() == 0 {
            return Peek::Running;
        }
        let status = info.si_status();
        Peek::Exited(match info.si_code {
            libc::CLD_EXITED => format!("exited with status {status}"),
            libc::CLD_KILLED | libc::CLD_DUMPED => format!("was killed by signal {status}"),
            _ => "exited".to_string(),
        })
    }
}

/// Human description of how a child ended, for logs and errors.
pub fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "exited".to_string(),
    }
}

/// Resident memory of every process group on the machine, in bytes, by group id, from one pass over
/// /proc: a child is the leader of its own group (`npx`/`uvx` run the server as a grandchild), so
/// its group's total is what it costs. Empty where /proc cannot tell.
#[cfg(target_os = "linux")]
pub fn group_rss() -> std::collections::HashMap<u32, u64> {
    let page = page_size();
    let mut totals = std::collections::HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return totals;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command may hold spaces and parentheses: fields start after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After ')': state(0) ppid(1) pgrp(2) … rss (field 24 of stat) at index 21.
        let (Some(pgrp), Some(rss)) = (fields.get(2), fields.get(21)) else {
            continue;
        };
        if let (Ok(pgrp), Ok(rss)) = (pgrp.parse::<u32>(), rss.parse::<u64>()) {
            *totals.entry(pgrp).or_insert(0) += rss * page;
        }
    }
    totals
}

#[cfg(not(target_os = "linux"))]
pub fn group_rss() -> std::collections::HashMap<u32, u64> {
    std::collections::HashMap::new()
}

#[cfg(target_os = "linux")]
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}
