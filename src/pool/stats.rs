//! A pool's numbers, published after every change so `/health` can read them without the pool lock.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

/// What `/health` says about a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// At least one handle is ready, or the pool is idle at zero handles after having worked.
    Up,
    /// The first handle is being started.
    Starting,
    /// Starts or handles keep failing; retrying with backoff.
    Down,
    /// `"enabled": false`.
    Disabled,
    /// A remote whose OAuth tokens are missing or refused: nothing starts until someone logs in.
    NeedsLogin,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Starting => "starting",
            Status::Down => "down",
            Status::Disabled => "disabled",
            Status::NeedsLogin => "needs login",
        }
    }

    fn from_u8(v: u8) -> Status {
        match v {
            0 => Status::Up,
            1 => Status::Starting,
            2 => Status::Down,
            4 => Status::NeedsLogin,
            _ => Status::Disabled,
        }
    }
}

/// Counters written under the pool lock and read lock-free.
#[derive(Debug, Default)]
pub struct Stats {
    status: AtomicU8,
    pub(super) total: AtomicUsize,
    pub(super) busy: AtomicUsize,
    pub(super) idle: AtomicUsize,
    pub(super) starting: AtomicUsize,
    pub(super) waiting: AtomicUsize,
    /// Calls in flight over all handles.
    pub(super) in_flight: AtomicUsize,
    /// Child processes started, ever.
    pub(super) spawns: AtomicU64,
    /// Failed starts plus handles lost unexpectedly.
    pub(super) restarts: AtomicU64,
    /// Calls that got a handle.
    pub(super) calls: AtomicU64,
    /// Calls that ended without an answer from the server (timeout, the server gone, too large).
    pub(super) failed: AtomicU64,
    /// Handles recycled, by `Recycled` reason.
    pub(super) recycles: [AtomicU64; 3],
    pub(super) last_error: Mutex<Option<String>>,
}

/// One ready handle's load, for `/health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleLoad {
    pub serial: u64,
    pub in_flight: usize,
    /// The process, for a local server.
    pub pid: Option<u32>,
    /// Its resident memory as last measured (once a second), for a local server.
    pub rss_bytes: Option<u64>,
    /// Calls it took.
    pub calls: u64,
}

/// A consistent-enough copy of the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsView {
    pub status: Status,
    pub total: usize,
    pub busy: usize,
    pub idle: usize,
    pub starting: usize,
    pub waiting: usize,
    pub in_flight: usize,
    /// Per ready handle: its calls in flight (filled by `Pool::stats`).
    pub handles: Vec<HandleLoad>,
    pub spawns: u64,
    pub restarts: u64,
    pub calls: u64,
    pub failed: u64,
    /// Handles recycled: past maxLifetime, maxCalls, maxRssBytes.
    pub recycles: [u64; 3],
    /// While failing: in how many ms the next start is attempted (filled by `Pool::stats`).
    pub next_retry_ms: Option<u64>,
    pub last_error: Option<String>,
}

impl Stats {
    pub(super) fn set_status(&self, status: Status) {
        self.status.store(status as u8, Ordering::Relaxed);
    }

    pub fn view(&self) -> StatsView {
        StatsView {
            status: Status::from_u8(self.status.load(Ordering::Relaxed)),
            total: self.total.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            idle: self.idle.load(Ordering::Relaxed),
            starting: self.starting.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            handles: Vec::new(),
            next_retry_ms: None,
            spawns: self.spawns.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            recycles: [0, 1, 2].map(|i| self.recycles[i].load(Ordering::Relaxed)),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}
