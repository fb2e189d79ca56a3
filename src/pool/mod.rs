//! One server's pool of handles: which handle takes a call, when handles are started and closed.
//!
//! A handle carries up to `maxConcurrency` calls at once (MCP is JSON-RPC with ids; the SDK servers
//! serve many requests in flight on one connection). Jobs, not threads, wait for room. A worker
//! `submit`s a job: it goes at once to the ready handle with the fewest calls in flight, or, when
//! every handle is full, it is parked in the pool's FIFO queue and the worker moves on (so one slow
//! server can never starve the rest). Room coming free is given to the oldest parked job first: by
//! whoever releases the call (no hand-off needed) or, for a freshly started handle, through the
//! worker channel.
//!
//! Invariants, all under one short-held mutex:
//! - handles alive or starting never exceed `max`, whatever the burst, and a new one is started only
//!   when every ready handle is at `maxConcurrency` (so a warm pool starts nothing for a burst its
//!   handles can carry);
//! - parked jobs are served first-come first-served and fail with 503 once `acquireTimeout` (counted
//!   from when the reactor created the job, so time in the worker queue counts) has passed;
//! - at least `min` handles are kept (once the server works); extra ones with no call in flight for
//!   `idleTimeout` are closed, least recently used first (ties in load go to the most recently used
//!   handle, so surplus handles really go idle);
//! - a dead handle is never handed out; it leaves the pool when its death notice (`died`) comes —
//!   after its owner has read how the process ended, so it cannot be reaped before — or at the
//!   latest `DEATH_NOTICE_GRACE` after it was seen dead; its loss counts once towards the backoff
//!   streak, however many calls it carried (each is released, and failed, by its own carrier);
//! - a handle past a recycling limit (`maxLifetime`, `maxCalls`, `maxRssBytes`) takes no new call,
//!   leaves when its last call is released, and is replaced; its replacement may overlap it (a
//!   draining handle does not count against `max`), so no call fails or waits for its end;
//! - the supervisor thread does all spawning and reaping (`tick`), so the pool itself never blocks.

mod backoff;
mod stats;

pub use stats::{HandleLoad, Stats, StatsView, Status};

impl Recycled {
    pub const ALL: [Recycled; 3] = [Recycled::Lifetime, Recycled::Calls, Recycled::Memory];

    /// The config key of the limit.
    pub fn key(self) -> &'static str {
        match self {
            Recycled::Lifetime => "maxLifetime",
            Recycled::Calls => "maxCalls",
            Recycled::Memory => "maxRssBytes",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Recycled::Lifetime => "past maxLifetime",
            Recycled::Calls => "past maxCalls",
            Recycled::Memory => "past maxRssBytes",
        }
    }
}

use crate::config::{PoolSettings, Share};
use crate::job::{Failure, Job, ReactorSink, Slot};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// What a pool needs to know about the things it pools.
pub trait Member: Clone + Send + 'static {
    fn is_alive(&self) -> bool;
    /// Unique per handle, for logs and for finding the handle a released call ran on.
    fn serial(&self) -> u64;
    /// Why a dead handle died, as its owner tells it (for `lastError`).
    fn death_note(&self) -> Option<String> {
        None
    }
    /// The process behind it, if it is one (for `/health`).
    fn pid(&self) -> Option<u32> {
        None
    }
    /// Its resident memory as last measured, in bytes (for `/health`).
    fn rss_bytes(&self) -> Option<u64> {
        None
    }
}

/// One call's claim on a pooled handle: given out by `submit`/`ready`, given back by `release`.
pub struct Handle<M> {
    pub member: M,
}

/// The answer to `submit`.
pub enum Submit<M: Member> {
    /// A handle has room: run the job on it now.
    Run(Job, Handle<M>),
    /// Every handle is full: the job waits in the pool's queue.
    Parked,
    /// No handle can come in time (server down, shutting down, or the job already timed out).
    Rejected(Job, Failure),
    /// A reload replaced this pool's server: offer the job to the pool of slot `.1` instead.
    Moved(Job, usize, Arc<Pool<M>>),
}

/// What the supervisor must do for a pool now.
pub struct Tick<M> {
    /// Handles to start.
    pub spawn: usize,
    /// Handles to stop and reap.
    pub retire: Vec<M>,
    /// When `tick` wants to run again (None: only when rung).
    pub next: Option<Instant>,
}

/// Rings the supervisor: something in a pool changed and `tick` should run.
pub type Doorbell = Arc<dyn Fn() + Send + Sync>;

/// What a handshake taught of the protocol era a server with `protocol: "auto"` speaks, so its
/// next handles skip what is known not to work (`Pool::era_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraHint {
    /// Nothing yet: probe with `server/discover`.
    Unknown = 0,
    /// It came up with `initialize`: later handles skip the probe (a 2025 server that ignores
    /// unknown methods would cost each of them the probe's timeout).
    Legacy = 1,
    /// It answered the probe naming 2026-07-28.
    Modern = 2,
    /// A start with the probe failed before any succeeded: the next goes without it (a 2025
    /// server may die of a method it does not know), and the one after that probes again.
    TryLegacy = 3,
}

impl EraHint {
    /// Whether a start goes straight to `initialize`.
    pub fn skips_probe(self) -> bool {
        matches!(self, EraHint::Legacy | EraHint::TryLegacy)
    }

    /// After a start that went by `self` failed; `modern`: the probe had named 2026-07-28 (the
    /// failure came after it, so it is no reason to skip it).
    pub fn after_failure(self, modern: bool) -> EraHint {
        match self {
            EraHint::Unknown if !modern => EraHint::TryLegacy,
            EraHint::TryLegacy => EraHint::Unknown,
            known => known,
        }
    }
}

pub struct Pool<M: Member> {
    pub name: Arc<str>,
    /// `EraHint` as a number: written by handshakes, read when a handle is started.
    era: std::sync::atomic::AtomicU8,
    settings: PoolSettings,
    /// Why this pool can never have handles (disabled, unsupported kind); None for a working pool.
    unusable: Option<(Status, String)>,
    state: Mutex<State<M>>,
    stats: Stats,
    sink: ReactorSink,
    doorbell: Doorbell,
}

struct State<M: Member> {
    /// Ready handles, alive as far as the pool knows.
    handles: Vec<Entry<M>>,
    starting: usize,
    waiting: VecDeque<Waiting>,
    /// Consecutive failures (see `backoff`).
    streak: u32,
    /// No start attempt before this.
    retry_at: Option<Instant>,
    ever_ready: bool,
    stopping: bool,
    /// A reload changed or removed the server (`retire`): where its jobs go now, or why none can.
    retired: Option<Retirement<M>>,
    retire: Vec<M>,
    /// When a failure was last logged at warn level.
    failure_logged: Option<Instant>,
    /// The server needs an OAuth login first (`needs_login`): why, for every call meanwhile.
    login: Option<String>,
}

/// A handle seen dead leaves the pool at the latest this long after, notice or not.
const DEATH_NOTICE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A crash loop is logged at most this often.
const FAILURE_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

struct Entry<M> {
    member: M,
    ready_at: Instant,
    in_flight: usize,
    /// When the last call ended (or the handle became ready): for idle reaping and tie-breaks.
    last_used: Instant,
    /// Calls it took, ever.
    calls: u64,
    /// Takes no new calls; leaves when its last one is released.
    draining: Option<Drain>,
    /// `share: "session"`: the client session the handle belongs to, once it took a call.
    owner: Option<Slot>,
    /// When the pool first saw it dead (its death notice not yet in).
    dead_seen: Option<Instant>,
}

/// Why a handle takes no new calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Past a recycling limit.
    Recycled(Recycled),
    /// Its one call is taken (`share: "call"`), or the session it belonged to ended.
    Done,
}

/// Why a handle was recycled (`/health` counts each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recycled {
    Lifetime = 0,
    Calls = 1,
    Memory = 2,
}

struct Waiting {
    job: Job,
    deadline: Instant,
}

/// What became of a pool's server in a reload.
struct Retirement<M: Member> {
    /// The new definition's slot and pool (the server was changed), or None (it was removed).
    successor: Option<(usize, Arc<Pool<M>>)>,
    /// Why calls fail when there is no successor.
    reason: String,
}

impl<M: Member> State<M> {
    fn live(&self) -> usize {
        self.handles.len()
    }

    /// Handles that take new calls.
    fn serving(&self) -> usize {
        self.handles.iter().filter(|e| e.draining.is_none()).count()
    }

    /// Fresh handles no session or call has taken yet (`share: "session"` / `"call"`).
    fn spares(&self) -> usize {
        self.handles.iter().filter(|e| e.is_spare()).count()
    }

    fn in_flight(&self) -> usize {
        self.handles.iter().map(|e| e.in_flight).sum()
    }

    fn position(&self, serial: u64) -> Option<usize> {
        self.handles
            .iter()
            .position(|e| e.member.serial() == serial)
    }
}

impl<M> Entry<M> {
    fn is_spare(&self) -> bool {
        self.owner.is_none() && self.calls == 0 && self.draining.is_none()
    }
}

/// The `Recycle` limits a handle has passed, if any (memory is reported by the supervisor).
fn past_limits(
    settings: &PoolSettings,
    entry_ready_at: Instant,
    calls: u64,
    now: Instant,
) -> Option<Recycled> {
    let limits = &settings.recycle;
    if limits.max_calls.is_some_and(|max| calls >= max) {
        return Some(Recycled::Calls);
    }
    if limits
        .max_lifetime
        .is_some_and(|max| now.saturating_duration_since(entry_ready_at) >= max)
    {
        return Some(Recycled::Lifetime);
    }
    None
}

impl<M: Member> Pool<M> {
    pub fn new(
        name: Arc<str>,
        settings: PoolSettings,
        sink: ReactorSink,
        doorbell: Doorbell,
    ) -> Self {
        let pool = Pool {
            name,
            era: Default::default(),
            settings,
            unusable: None,
            state: Mutex::new(State {
                handles: Vec::new(),
                starting: 0,
                waiting: VecDeque::new(),
                streak: 0,
                retry_at: None,
                ever_ready: false,
                stopping: false,
                retired: None,
                retire: Vec::new(),
                failure_logged: None,
                login: None,
            }),
            stats: Stats::default(),
            sink,
            doorbell,
        };
        pool.stats.set_status(Status::Starting);
        pool
    }

    /// A pool that never has handles: every call fails with `reason`.
    pub fn unusable(mut self, status: Status, reason: String) -> Self {
        self.stats.set_status(status);
        *self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
        self.unusable = Some((status, reason));
        self
    }

    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// The published counters plus each handle's load (a short lock: for `/health`, not the hot
    /// path).
    pub fn stats(&self) -> StatsView {
        let mut view = self.stats.view();
        let st = self.lock();
        view.next_retry_ms = st
            .retry_at
            .filter(|_| st.streak > 0)
            .map(|at| at.saturating_duration_since(Instant::now()).as_millis() as u64);
        view.handles = st
            .handles
            .iter()
            .map(|e| HandleLoad {
                serial: e.member.serial(),
                in_flight: e.in_flight,
                pid: e.member.pid(),
                rss_bytes: e.member.rss_bytes(),
                calls: e.calls,
            })
            .collect();
        view
    }

    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // A panic while holding the lock leaves consistent-enough state (every step is small).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers a job to the pool (see the module doc).
    pub fn submit(&self, job: Job, now: Instant) -> Submit<M> {
        let mut st = self.lock();
        if let Some(retired) = &st.retired {
            return match &retired.successor {
                Some((slot, pool)) => Submit::Moved(job, *slot, pool.clone()),
                None => Submit::Rejected(job, Failure::Unavailable(retired.reason.clone())),
            };
        }
        if let Some((_, reason)) = &self.unusable {
            return Submit::Rejected(job, Failure::Unavailable(reason.clone()));
        }
        let deadline = job.created + self.settings.acquire_timeout;
        if st.stopping {
            return Submit::Rejected(
                job,
                Failure::Unavailable("the gateway is shutting down".into()),
            );
        }
        if now >= deadline {
            drop(st);
            return Submit::Rejected(job, self.exhausted());
        }
        if st.waiting.is_empty() {
            if let Some(handle) = self.claim(&mut st, &job, now) {
                self.publish(&st);
                return Submit::Run(job, handle);
            }
        }
        if let Some(reason) = self.hopeless(&st, deadline, now) {
            return Submit::Rejected(job, Failure::Unavailable(reason));
        }
        st.waiting.push_back(Waiting { job, deadline });
        self.publish(&st);
        drop(st);
        (self.doorbell)();
        Submit::Parked
    }

    /// Gives back a call's claim. `answered`: the server answered (a sign of health). Returns the
    /// next parked job with a claim on the same handle when one is waiting and the handle lives:
    /// the caller runs it right away.
    pub fn release(
        &self,
        handle: Handle<M>,
        answered: bool,
        now: Instant,
    ) -> Option<(Job, Handle<M>)> {
        let mut st = self.lock();
        let Some(at) = st.position(handle.member.serial()) else {
            // Already gone from the pool (died, counted when that was noticed).
            return None;
        };
        if !handle.member.is_alive() {
            // Its notice (`died`) removes it; until then it takes nothing new.
            let entry = &mut st.handles[at];
            entry.in_flight = entry.in_flight.saturating_sub(1);
            entry.dead_seen.get_or_insert(now);
            self.publish(&st);
            return None;
        }
        if !answered {
            self.stats
                .failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let entry = &mut st.handles[at];
        entry.in_flight = entry.in_flight.saturating_sub(1);
        entry.last_used = now;
        if answered && st.streak > 0 {
            st.streak = 0;
            st.retry_at = None;
        }
        let next = if st.stopping {
            None
        } else {
            self.next_waiting(&mut st, at, now)
        };
        if next.is_none() {
            self.leave_if_done(&mut st, at);
        }
        self.publish(&st);
        next
    }

    /// A freshly started handle is ready. Returns the parked jobs it takes (up to
    /// `maxConcurrency`): the caller must pass each to a worker.
    pub fn ready(&self, member: M, now: Instant) -> Vec<(Job, Handle<M>)> {
        let mut st = self.lock();
        st.starting = st.starting.saturating_sub(1);
        st.ever_ready = true;
        let mut taken = Vec::new();
        if st.stopping {
            st.retire.push(member);
            self.publish(&st);
            drop(st);
            (self.doorbell)();
            return taken;
        }
        st.handles.push(Entry {
            member,
            ready_at: now,
            in_flight: 0,
            last_used: now,
            calls: 0,
            draining: None,
            owner: None,
            dead_seen: None,
        });
        let at = st.handles.len() - 1;
        while let Some(next) = self.next_waiting(&mut st, at, now) {
            taken.push(next);
        }
        self.publish(&st);
        taken
    }

    /// The server's lists are known without a handle (its manifest of the last run): with
    /// `minConnections: 0` nothing is started until a call needs it.
    pub fn listed_already(&self) {
        let mut st = self.lock();
        st.ever_ready = true;
        self.publish(&st);
    }

    /// A start attempt failed (spawn error, exit during the handshake, handshake timeout).
    pub fn start_failed(&self, error: String, now: Instant) {
        let mut st = self.lock();
        st.starting = st.starting.saturating_sub(1);
        self.failure(&mut st, error, now);
        if st.live() == 0 && st.starting == 0 {
            // Nothing can serve the parked jobs before the next attempt: tell those that cannot
            // wait that long now, rather than at their deadline.
            let retry_at = st.retry_at.unwrap_or(now);
            let message = self.down_message(&st, now);
            let (doomed, keep): (VecDeque<_>, VecDeque<_>) =
                st.waiting.drain(..).partition(|w| w.deadline <= retry_at);
            st.waiting = keep;
            for w in doomed {
                self.sink
                    .fail(&w.job.route(), &Failure::Unavailable(message.clone()));
            }
        }
        self.publish(&st);
        drop(st);
        (self.doorbell)();
    }

    /// A start failed because the server wants an OAuth login nobody has made: no start is
    /// attempted until `login_done`, and every call meanwhile fails at once with `message`.
    pub fn needs_login(&self, message: String) {
        let mut st = self.lock();
        st.starting = st.starting.saturating_sub(1);
        if st.login.is_none() {
            log::warn!("{message}");
        }
        st.login = Some(message.clone());
        st.retry_at = None;
        *self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
        if st.live() == 0 {
            for w in st.waiting.drain(..) {
                self.sink
                    .fail(&w.job.route(), &Failure::Unavailable(message.clone()));
            }
        }
        self.publish(&st);
        drop(st);
        (self.doorbell)();
    }

    /// What is known of the era its server speaks.
    pub fn era_hint(&self) -> EraHint {
        match self.era.load(std::sync::atomic::Ordering::Relaxed) {
            1 => EraHint::Legacy,
            2 => EraHint::Modern,
            3 => EraHint::TryLegacy,
            _ => EraHint::Unknown,
        }
    }

    pub fn set_era_hint(&self, hint: EraHint) {
        self.era
            .store(hint as u8, std::sync::atomic::Ordering::Relaxed);
    }

    /// What it says while it waits for a login.
    pub fn login_wait(&self) -> Option<String> {
        self.lock().login.clone()
    }

    /// Someone logged in: start again now.
    pub fn login_done(&self, now: Instant) {
        let mut st = self.lock();
        if st.login.take().is_none() {
            return;
        }
        st.streak = 0;
        st.retry_at = Some(now);
        self.publish(&st);
        drop(st);
        (self.doorbell)();
    }

    /// Takes back a member that never became ready (its handshake failed) for stopping.
    pub fn discard(&self, member: M) {
        self.lock().retire.push(member);
        (self.doorbell)();
    }

    /// A handle died (its process exited, its session could not be renewed): it leaves the pool
    /// now; its calls in flight are failed by whoever carries them and their releases are ignored.
    pub fn died(&self, serial: u64, now: Instant) {
        let mut st = self.lock();
        if let Some(at) = st.position(serial) {
            self.lost(&mut st, at, now);
            self.publish(&st);
            drop(st);
            (self.doorbell)();
        }
    }

    /// Housekeeping, run by the supervisor: expire parked jobs, close idle surplus, decide spawns.
    pub fn tick(&self, now: Instant) -> Tick<M> {
        let mut tick = Tick {
            spawn: 0,
            retire: Vec::new(),
            next: None,
        };
        if self.unusable.is_some() {
            return tick;
        }
        let mut st = self.lock();
        self.drop_dead(&mut st, now);
        self.drain_aged(&mut st, now, &mut tick);
        self.expire_waiting(&mut st, now);
        self.reap_idle(&mut st, now, &mut tick);
        if !st.stopping {
            self.plan_spawns(&mut st, now, &mut tick);
        }
        if let Some(first) = st.waiting.iter().map(|w| w.deadline).min() {
            tick.next = earliest(tick.next, first);
        }
        tick.retire.append(&mut st.retire);
        self.publish(&st);
        tick
    }

    /// Stops handing out handles: parked jobs fail, handles with no call in flight are retired at
    /// the next tick, busy ones when their last call is released.
    pub fn stop(&self) {
        let failure = Failure::Unavailable("the gateway is shutting down".into());
        for job in self.wind_down(None) {
            self.sink.fail(&job.route(), &failure);
        }
    }

    /// A reload changed (`successor`: the new definition's slot and pool) or removed (`reason`)
    /// this pool's server. From now on it takes no call: `submit` hands every job to the
    /// successor (`Submit::Moved`) or fails it with `reason`, and the jobs parked here are
    /// returned for the caller to offer again. Its handles leave as their last calls end (as when
    /// stopping); one still starting is stopped as soon as it is ready.
    pub fn retire(&self, successor: Option<(usize, Arc<Pool<M>>)>, reason: String) -> Vec<Job> {
        self.wind_down(Some(Retirement { successor, reason }))
    }

    /// Takes no new call from now on (`stop`, `retire`): idle handles go at the next tick, busy
    /// ones when their last call is released. Returns the parked jobs.
    fn wind_down(&self, retired: Option<Retirement<M>>) -> Vec<Job> {
        let mut st = self.lock();
        st.stopping = true;
        if retired.is_some() {
            st.retired = retired;
        }
        let parked = st.waiting.drain(..).map(|w| w.job).collect();
        let (idle, busy): (Vec<Entry<M>>, Vec<Entry<M>>) =
            st.handles.drain(..).partition(|e| e.in_flight == 0);
        st.handles = busy;
        st.retire.extend(idle.into_iter().map(|e| e.member));
        self.publish(&st);
        drop(st);
        (self.doorbell)();
        parked
    }

    /// True once stopped and no handle is busy or starting.
    pub fn is_drained(&self) -> bool {
        let st = self.lock();
        st.stopping && st.handles.is_empty() && st.starting == 0
    }

    /// A claim on the live handle with the fewest calls in flight and room for one more; among
    /// equals, the most recently used.
    fn claim(&self, st: &mut State<M>, job: &Job, now: Instant) -> Option<Handle<M>> {
        loop {
            let owned = self.owned_by(st, job);
            let best = st
                .handles
                .iter()
                .enumerate()
                .filter(|(_, e)| self.fits(e, job, owned))
                .min_by(|(_, a), (_, b)| {
                    a.in_flight
                        .cmp(&b.in_flight)
                        .then(b.last_used.cmp(&a.last_used))
                })
                .map(|(at, _)| at)?;
            if !st.handles[best].member.is_alive() {
                // Died a moment ago; its notice (`died`) is on its way: never hand it out, and
                // leave its removal to the notice, which comes once its owner has said why.
                st.handles[best].dead_seen.get_or_insert(now);
                continue;
            }
            return Some(self.take_room(st, best, job));
        }
    }

    /// Whether a handle may take `job` (`owned`: the job's session already has a handle).
    fn fits(&self, entry: &Entry<M>, job: &Job, owned: bool) -> bool {
        if entry.draining.is_some()
            || entry.dead_seen.is_some()
            || entry.in_flight >= self.settings.max_concurrency
        {
            return false;
        }
        match (self.settings.share, job.session) {
            (Share::Shared, _) => true,
            (Share::Session, Some(session)) if owned => entry.owner == Some(session),
            // A fresh process: a session's first call, or a call that gets one of its own.
            _ => entry.is_spare(),
        }
    }

    /// Whether `job`'s session already has a handle (`share: "session"`).
    fn owned_by(&self, st: &State<M>, job: &Job) -> bool {
        self.settings.share == Share::Session
            && job
                .session
                .is_some_and(|s| st.handles.iter().any(|e| e.owner == Some(s)))
    }

    fn take_room(&self, st: &mut State<M>, at: usize, job: &Job) -> Handle<M> {
        let now = Instant::now();
        let share = self.settings.share;
        let entry = &mut st.handles[at];
        entry.in_flight += 1;
        entry.calls += 1;
        match (share, job.session) {
            (Share::Shared, _) => {}
            (Share::Session, Some(session)) => entry.owner = Some(session),
            _ => entry.draining = Some(Drain::Done),
        }
        if entry.draining.is_none() {
            entry.draining =
                past_limits(&self.settings, entry.ready_at, entry.calls, now).map(Drain::Recycled);
        }
        if entry.draining.is_some() || share != Share::Shared {
            (self.doorbell)(); // a replacement or a new spare may be due
        }
        self.stats
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Handle {
            member: entry.member.clone(),
        }
    }

    /// The oldest parked job still in time, with a claim on handle `at` if it has room.
    fn next_waiting(&self, st: &mut State<M>, at: usize, now: Instant) -> Option<(Job, Handle<M>)> {
        let entry = &st.handles[at];
        if entry.in_flight >= self.settings.max_concurrency || entry.draining.is_some() {
            return None;
        }
        let mut i = 0;
        while i < st.waiting.len() {
            if st.waiting[i].deadline <= now {
                let w = st.waiting.remove(i).expect("in range");
                self.sink.fail(&w.job.route(), &self.exhausted());
                continue;
            }
            let owned = self.owned_by(st, &st.waiting[i].job);
            if self.fits(&st.handles[at], &st.waiting[i].job, owned) {
                let w = st.waiting.remove(i).expect("in range");
                let claim = self.take_room(st, at, &w.job);
                return Some((w.job, claim));
            }
            i += 1;
        }
        None
    }

    /// `share: "session"`: the session ended; its handle leaves once its calls (cancelled by
    /// now) are released, and its parked calls end.
    pub fn session_ended(&self, session: Slot) {
        if self.settings.share != Share::Session {
            return;
        }
        let mut st = self.lock();
        let (gone, keep): (VecDeque<_>, VecDeque<_>) = st
            .waiting
            .drain(..)
            .partition(|w| w.job.session == Some(session));
        st.waiting = keep;
        for w in gone {
            self.sink.cancelled(&w.job.route());
        }
        if let Some(at) = st.handles.iter().position(|e| e.owner == Some(session)) {
            st.handles[at].draining = Some(Drain::Done);
            self.leave_if_done(&mut st, at);
        }
        self.publish(&st);
        drop(st);
        (self.doorbell)();
    }

    /// A draining handle (recycled, or the pool stopping) leaves once its last call is released.
    fn leave_if_done(&self, st: &mut State<M>, at: usize) {
        let entry = &st.handles[at];
        if entry.in_flight > 0 || !(st.stopping || entry.draining.is_some()) {
            return;
        }
        let entry = st.handles.remove(at);
        if let (Some(Drain::Recycled(reason)), false) = (entry.draining, st.stopping) {
            self.stats.recycles[reason as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::info!(
                "server {}: recycled a handle ({}, after {} calls)",
                self.name,
                reason.describe(),
                entry.calls
            );
        }
        st.retire.push(entry.member);
        (self.doorbell)();
    }

    /// A handle whose process grew past `maxRssBytes` (measured by the supervisor) is recycled.
    pub fn over_memory(&self, serial: u64) {
        let mut st = self.lock();
        let Some(at) = st.position(serial) else {
            return;
        };
        if st.handles[at].draining.is_none() {
            st.handles[at].draining = Some(Drain::Recycled(Recycled::Memory));
            self.leave_if_done(&mut st, at);
            self.publish(&st);
            drop(st);
            (self.doorbell)();
        }
    }

    /// Marks handles past `maxLifetime` (or `maxCalls`) as draining; those with no call in flight
    /// leave now.
    fn drain_aged(&self, st: &mut State<M>, now: Instant, tick: &mut Tick<M>) {
        let mut at = 0;
        while at < st.handles.len() {
            let entry = &mut st.handles[at];
            if entry.draining.is_none() {
                entry.draining = past_limits(&self.settings, entry.ready_at, entry.calls, now)
                    .map(Drain::Recycled);
                if entry.draining.is_none() {
                    if let Some(max) = self.settings.recycle.max_lifetime {
                        tick.next = earliest(tick.next, entry.ready_at + max);
                    }
                }
            }
            let before = st.handles.len();
            self.leave_if_done(st, at);
            if st.handles.len() == before {
                at += 1;
            }
        }
    }

    /// Handles found dead (a notice may still be on its way) leave the pool.
    /// A safety net: a handle seen dead whose notice has not come within `DEATH_NOTICE_GRACE`
    /// leaves anyway. (The notice normally comes within a fraction of a second, once the owner has
    /// read how the process ended: retiring it earlier would let it be reaped before that.)
    fn drop_dead(&self, st: &mut State<M>, now: Instant) {
        for entry in &mut st.handles {
            if !entry.member.is_alive() {
                entry.dead_seen.get_or_insert(now);
            }
        }
        let overdue = |e: &Entry<M>| {
            e.dead_seen
                .is_some_and(|at| now.saturating_duration_since(at) >= DEATH_NOTICE_GRACE)
        };
        while let Some(at) = st.handles.iter().position(overdue) {
            self.lost(st, at, now);
        }
    }

    /// Accounts for handle `at`, which died: it is retired and its death extends the failure streak
    /// unless it had been healthy for a while.
    fn lost(&self, st: &mut State<M>, at: usize, now: Instant) {
        let entry = st.handles.remove(at);
        let lived = now.saturating_duration_since(entry.ready_at);
        if lived >= backoff::STABLE_AFTER {
            st.streak = 0;
        }
        let why = entry
            .member
            .death_note()
            .unwrap_or_else(|| format!("a handle died after {} ms", lived.as_millis()));
        st.retire.push(entry.member);
        self.failure(st, why, now);
    }
    fn failure(&self, st: &mut State<M>, error: String, now: Instant) {
        st.streak = st.streak.saturating_add(1);
        let delay = backoff::delay(st.streak);
        st.retry_at = Some(now + delay);
        // A crash loop is logged when it starts and then at most once a minute, not per retry.
        let due = st
            .failure_logged
            .is_none_or(|at| now.saturating_duration_since(at) >= FAILURE_LOG_EVERY);
        if st.streak == 1 || due {
            let again = if st.streak > 1 {
                format!(" ({} failures in a row)", st.streak)
            } else {
                String::new()
            };
            log::warn!(
                "server {}: {error}{again}; next start attempt in {} ms",
                self.name,
                delay.as_millis()
            );
            st.failure_logged = Some(now);
        } else {
            log::debug!("server {}: {error}", self.name);
        }
        self.stats
            .restarts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// Why a job with this deadline cannot be served, if that is already certain.
    fn hopeless(&self, st: &State<M>, deadline: Instant, now: Instant) -> Option<String> {
        if let (Some(login), 0) = (&st.login, st.live()) {
            return Some(login.clone());
        }
        let nothing_coming = st.live() == 0 && st.starting == 0;
        let retry_too_late = st.retry_at.is_some_and(|at| at > deadline);
        (nothing_coming && st.streak > 0 && retry_too_late).then(|| self.down_message(st, now))
    }

    fn down_message(&self, st: &State<M>, now: Instant) -> String {
        let last = self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| "it failed".into());
        let retry = st
            .retry_at
            .map(|at| at.saturating_duration_since(now).as_millis())
            .unwrap_or(0);
        format!(
            "server \"{}\" is down: {last}; next start attempt in {retry} ms",
            self.name
        )
    }

    fn exhausted(&self) -> Failure {
        if self.settings.share != Share::Shared {
            return Failure::Unavailable(format!(
                "server {}: every one of its {} processes is taken (share: \"{}\", poolSize {}), \
                 and none came free within acquireTimeout ({} ms)",
                self.name,
                self.settings.max,
                if self.settings.share == Share::Call {
                    "call"
                } else {
                    "session"
                },
                self.settings.max,
                self.settings.acquire_timeout.as_millis(),
            ));
        }
        Failure::Unavailable(format!(
            "server {}: no connection became free within acquireTimeout ({} ms); pool limit is {}",
            self.name,
            self.settings.acquire_timeout.as_millis(),
            self.settings.max
        ))
    }

    fn expire_waiting(&self, st: &mut State<M>, now: Instant) {
        if st.waiting.iter().all(|w| w.deadline > now) {
            return;
        }
        let (expired, keep): (VecDeque<_>, VecDeque<_>) =
            st.waiting.drain(..).partition(|w| w.deadline <= now);
        st.waiting = keep;
        let failure = if st.live() == 0 && st.streak > 0 {
            Failure::Unavailable(self.down_message(st, now))
        } else {
            self.exhausted()
        };
        for w in expired {
            self.sink.fail(&w.job.route(), &failure);
        }
    }

    fn reap_idle(&self, st: &mut State<M>, now: Instant, tick: &mut Tick<M>) {
        // Shared: any idle handle above `min`. Otherwise only spares: a session's handle lives as
        // long as its session, however idle.
        let shared = self.settings.share == Share::Shared;
        let count = |st: &State<M>| if shared { st.serving() } else { st.spares() };
        while count(st) > self.settings.min {
            let oldest = st
                .handles
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.in_flight == 0 && e.draining.is_none() && (shared || e.is_spare())
                })
                .min_by_key(|(_, e)| e.last_used)
                .map(|(at, e)| (at, e.last_used));
            let Some((at, since)) = oldest else { break };
            let expires = since + self.settings.idle_timeout;
            if expires > now {
                tick.next = earliest(tick.next, expires);
                break;
            }
            let entry = st.handles.remove(at);
            log::debug!(
                "server {}: closing a handle idle for {} ms",
                self.name,
                now.saturating_duration_since(since).as_millis()
            );
            st.retire.push(entry.member);
        }
    }

    /// Parked jobs that can only run on a fresh handle: with `share: "session"`, one per session
    /// without a handle (and each call without a session); with `"call"`, every one.
    fn needing_fresh(&self, st: &State<M>) -> usize {
        if self.settings.share == Share::Call {
            return st.waiting.len();
        }
        let mut sessions: Vec<Slot> = Vec::new();
        let mut sessionless = 0;
        for w in &st.waiting {
            match w.job.session {
                None => sessionless += 1,
                Some(s)
                    if !sessions.contains(&s) && !st.handles.iter().any(|e| e.owner == Some(s)) =>
                {
                    sessions.push(s)
                }
                Some(_) => {}
            }
        }
        sessions.len() + sessionless
    }

    fn plan_spawns(&self, st: &mut State<M>, now: Instant, tick: &mut Tick<M>) {
        // Draining handles are on their way out: their replacements may overlap them.
        let have = st.serving() + st.starting;
        let mut want = match self.settings.share {
            Share::Shared => {
                // Parked jobs exist only while every ready handle is full: each new handle takes
                // up to `maxConcurrency` of them.
                let for_waiting = st.waiting.len().div_ceil(self.settings.max_concurrency);
                self.settings
                    .min
                    .saturating_sub(have)
                    .max(for_waiting.saturating_sub(st.starting))
            }
            // `minConnections` fresh spares kept warm, plus one fresh handle per parked call that
            // needs one (a new session's first, or any call with `share: "call"`).
            Share::Session | Share::Call => {
                let fresh = st.spares() + st.starting;
                let needing = self.needing_fresh(st);
                (self.settings.min + needing).saturating_sub(fresh)
            }
        };
        if !st.ever_ready && have == 0 {
            want = want.max(1); // the registry needs one listing even when min is 0
        }
        if st.login.is_some() {
            return; // nothing starts before a login
        }
        let mut room = self.settings.max.saturating_sub(have);
        if st.streak > 0 {
            room = room.min(1usize.saturating_sub(st.starting)); // probe one at a time while failing
        }
        let n = want.min(room);
        if n == 0 {
            return;
        }
        if let Some(at) = st.retry_at.filter(|at| *at > now) {
            tick.next = earliest(tick.next, at);
            return;
        }
        st.starting += n;
        self.stats
            .spawns
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        tick.spawn = n;
    }

    fn publish(&self, st: &State<M>) {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.stats;
        let busy = st.handles.iter().filter(|e| e.in_flight > 0).count();
        s.total.store(st.live(), Relaxed);
        s.busy.store(busy, Relaxed);
        s.idle.store(st.live() - busy, Relaxed);
        s.in_flight.store(st.in_flight(), Relaxed);
        s.starting.store(st.starting, Relaxed);
        s.waiting.store(st.waiting.len(), Relaxed);
        s.set_status(if st.live() > 0 {
            Status::Up
        } else if st.login.is_some() {
            Status::NeedsLogin
        } else if st.streak > 0 {
            Status::Down
        } else if st.starting > 0 || !st.ever_ready {
            Status::Starting
        } else {
            Status::Up
        });
    }
}

fn earliest(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Answer, ReplyTo, Slot, ToReactor};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[derive(Clone)]
    struct Fake {
        serial: u64,
        alive: Arc<AtomicBool>,
    }

    impl Member for Fake {
        fn is_alive(&self) -> bool {
            self.alive.load(Ordering::Relaxed)
        }
        fn serial(&self) -> u64 {
            self.serial
        }
    }

    fn fake(serial: u64) -> Fake {
        Fake {
            serial,
            alive: Arc::new(AtomicBool::new(true)),
        }
    }

    struct Rig {
        pool: Pool<Fake>,
        replies: crossbeam_channel::Receiver<ToReactor>,
        _poll: mio::Poll,
    }

    fn rig(min: usize, max: usize, max_concurrency: usize) -> Rig {
        rig_with(min, max, max_concurrency, Default::default())
    }

    fn rig_with(
        min: usize,
        max: usize,
        max_concurrency: usize,
        recycle: crate::config::Recycle,
    ) -> Rig {
        rig_shared(min, max, max_concurrency, recycle, Share::Shared)
    }

    fn rig_shared(
        min: usize,
        max: usize,
        max_concurrency: usize,
        recycle: crate::config::Recycle,
        share: Share,
    ) -> Rig {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (tx, replies) = crossbeam_channel::unbounded();
        let settings = PoolSettings {
            min,
            max,
            acquire_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_concurrency,
            recycle,
            share,
        };
        let pool = Pool::new(
            "t".into(),
            settings,
            ReactorSink::new(tx, waker),
            Arc::new(|| {}),
        );
        Rig {
            pool,
            replies,
            _poll: poll,
        }
    }

    fn job(n: usize, created: Instant) -> Job {
        Job {
            to: ReplyTo::Conn(Slot { key: n, gen: 1 }),
            answer: Answer::Rest,
            server: 0,
            method: "tools/call",
            params: Default::default(),
            progress_token: None,
            created,
            session: None,
            control: Default::default(),
            meter: Default::default(),
            declared: None,
        }
    }

    fn key(job: &Job) -> usize {
        match job.to {
            ReplyTo::Conn(slot) | ReplyTo::Session(slot) => slot.key,
            ReplyTo::Nowhere => usize::MAX,
        }
    }

    fn settle(rig: &Rig, now: Instant) -> Vec<Handle<Fake>> {
        // Starts what the pool asks for and makes each ready; returns the claims handed out.
        let mut claims = Vec::new();
        let spawn = rig.pool.tick(now).spawn;
        for serial in 0..spawn {
            claims.extend(
                rig.pool
                    .ready(fake(100 + serial as u64), now)
                    .into_iter()
                    .map(|(_, h)| h),
            );
        }
        claims
    }

    #[test]
    fn a_warm_handle_takes_a_burst_up_to_max_concurrency_without_starting_anything() {
        let rig = rig(1, 5, 4);
        let now = Instant::now();
        assert!(settle(&rig, now).is_empty());
        let mut claims = Vec::new();
        for n in 0..4 {
            match rig.pool.submit(job(n, now), now) {
                Submit::Run(_, claim) => claims.push(claim),
                _ => panic!("call {n} fits on the warm handle"),
            }
        }
        assert_eq!(rig.pool.stats().in_flight, 4);
        assert_eq!(
            rig.pool.tick(now).spawn,
            0,
            "nothing to start while there is room"
        );
        assert!(matches!(rig.pool.submit(job(9, now), now), Submit::Parked));
        assert_eq!(
            rig.pool.tick(now).spawn,
            1,
            "full: one more handle for the parked call"
        );
        assert_eq!(rig.pool.stats().spawns, 2);
        let stats = rig.pool.stats();
        assert_eq!(stats.handles.len(), 1);
        assert_eq!(stats.handles[0].in_flight, 4);
    }

    #[test]
    fn calls_go_to_the_handle_with_the_fewest_in_flight() {
        let rig = rig(2, 2, 8);
        let now = Instant::now();
        settle(&rig, now);
        let mut on = std::collections::HashMap::new();
        for n in 0..6 {
            match rig.pool.submit(job(n, now), now) {
                Submit::Run(_, claim) => *on.entry(claim.member.serial).or_insert(0) += 1,
                _ => panic!("room on both handles"),
            }
        }
        assert_eq!(on.values().copied().collect::<Vec<_>>(), [3, 3], "{on:?}");
    }

    #[test]
    fn a_burst_never_starts_more_than_max_and_is_served_in_order() {
        let rig = rig(1, 3, 1);
        let now = Instant::now();
        assert_eq!(rig.pool.tick(now).spawn, 1, "min comes first");
        for n in 0..10 {
            assert!(matches!(rig.pool.submit(job(n, now), now), Submit::Parked));
        }
        assert_eq!(rig.pool.tick(now).spawn, 2, "grows to max, not beyond");
        assert_eq!(rig.pool.tick(now).spawn, 0);
        let mut taken = rig.pool.ready(fake(1), now);
        assert_eq!(taken.len(), 1, "one call at a time on this pool");
        let (first, claim) = taken.pop().unwrap();
        assert_eq!(key(&first), 0);
        let mut served = vec![key(&first)];
        let mut next = rig.pool.release(claim, true, now);
        while let Some((job, claim)) = next {
            served.push(key(&job));
            next = rig.pool.release(claim, true, now);
        }
        assert_eq!(
            served,
            (0..10).collect::<Vec<_>>(),
            "first come, first served"
        );
        assert_eq!(rig.pool.stats().idle, 1);
    }

    #[test]
    fn a_new_handle_takes_up_to_max_concurrency_parked_calls() {
        let rig = rig(0, 2, 3);
        let now = Instant::now();
        rig.pool.tick(now); // the first listing
        for n in 0..5 {
            assert!(matches!(rig.pool.submit(job(n, now), now), Submit::Parked));
        }
        let taken = rig.pool.ready(fake(1), now);
        assert_eq!(
            taken.iter().map(|(j, _)| key(j)).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(
            rig.pool.tick(now).spawn,
            1,
            "two still parked: one more handle"
        );
        let taken = rig.pool.ready(fake(2), now);
        assert_eq!(
            taken.iter().map(|(j, _)| key(j)).collect::<Vec<_>>(),
            [3, 4]
        );
        assert_eq!(rig.pool.stats().waiting, 0);
    }

    #[test]
    fn a_released_call_makes_room_before_anything_is_started() {
        let rig = rig(1, 4, 1);
        let now = Instant::now();
        settle(&rig, now);
        let claim = match rig.pool.submit(job(1, now), now) {
            Submit::Run(_, claim) => claim,
            _ => panic!("the idle handle serves the first call"),
        };
        // Released (as every carrier does) before the client hears the answer: the client's next
        // call finds the room free.
        assert!(rig.pool.release(claim, true, now).is_none());
        assert!(matches!(rig.pool.submit(job(2, now), now), Submit::Run(..)));
        assert_eq!(rig.pool.tick(now).spawn, 0);
        assert_eq!(rig.pool.stats().spawns, 1);
    }

    #[test]
    fn parked_jobs_expire_after_acquire_timeout() {
        let rig = rig(0, 1, 1);
        let now = Instant::now();
        rig.pool.tick(now);
        assert!(matches!(rig.pool.submit(job(1, now), now), Submit::Parked));
        let tick = rig.pool.tick(now + Duration::from_secs(11));
        assert_eq!(tick.spawn, 0);
        match rig.replies.try_recv().unwrap() {
            ToReactor::Reply { status, body, .. } => {
                assert_eq!(status, 503);
                assert!(String::from_utf8_lossy(&body).contains("acquireTimeout"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(rig.pool.stats().waiting, 0);
    }

    #[test]
    fn surplus_idle_handles_are_retired_least_recently_used_first() {
        let rig = rig(1, 3, 1);
        let t0 = Instant::now();
        assert_eq!(rig.pool.tick(t0).spawn, 1);
        for n in 0..3 {
            assert!(matches!(rig.pool.submit(job(n, t0), t0), Submit::Parked));
        }
        assert_eq!(rig.pool.tick(t0).spawn, 2);
        let claims: Vec<Handle<Fake>> = (1..=3)
            .map(|serial| rig.pool.ready(fake(serial), t0).pop().unwrap().1)
            .collect();
        // Released at 30 s, 31 s, 32 s: serial 1 is the least recently used.
        for (i, claim) in claims.into_iter().enumerate() {
            assert!(rig
                .pool
                .release(claim, true, t0 + Duration::from_secs(30 + i as u64))
                .is_none());
        }
        let tick = rig
            .pool
            .tick(t0 + Duration::from_secs(90) + Duration::from_millis(500));
        let retired: Vec<u64> = tick.retire.iter().map(|m| m.serial).collect();
        assert_eq!(retired, [1], "only the handle idle past idleTimeout goes");
        let tick = rig.pool.tick(t0 + Duration::from_secs(95));
        assert_eq!(tick.retire.len(), 1, "then the next, down to min");
        assert_eq!(rig.pool.stats().total, 1);
        assert_eq!(rig.pool.tick(t0 + Duration::from_secs(500)).retire.len(), 0);
    }

    #[test]
    fn a_busy_handle_is_never_reaped() {
        let rig = rig(0, 2, 4);
        let t0 = Instant::now();
        settle(&rig, t0);
        let _claim = match rig.pool.submit(job(1, t0), t0) {
            Submit::Run(_, claim) => claim,
            _ => panic!("room"),
        };
        let tick = rig.pool.tick(t0 + Duration::from_secs(3600));
        assert!(tick.retire.is_empty(), "a call is in flight on it");
    }

    #[test]
    fn a_failing_server_backs_off_and_fails_calls_fast() {
        let rig = rig(1, 2, 1);
        let now = Instant::now();
        assert_eq!(rig.pool.tick(now).spawn, 1);
        rig.pool.start_failed("exit 3".into(), now);
        assert_eq!(
            rig.pool.tick(now).spawn,
            1,
            "the first failure is retried at once"
        );
        rig.pool.start_failed("exit 3".into(), now);
        let tick = rig.pool.tick(now);
        assert_eq!(tick.spawn, 0, "then it waits");
        assert_eq!(tick.next, Some(now + Duration::from_millis(250)));
        assert_eq!(rig.pool.stats().status, Status::Down);
        for _ in 0..8 {
            rig.pool.tick(now + Duration::from_secs(3600));
            rig.pool.start_failed("exit 3".into(), now);
        }
        // The next attempt is 30 s away, after any call's acquireTimeout: refuse at once.
        match rig.pool.submit(job(1, now), now) {
            Submit::Rejected(_, Failure::Unavailable(message)) => {
                assert!(
                    message.contains("is down") && message.contains("exit 3"),
                    "{message}"
                )
            }
            _ => panic!("expected a fast refusal"),
        }
    }

    #[test]
    fn a_dead_handle_is_never_handed_out_and_its_calls_count_once() {
        let rig = rig(1, 1, 4);
        let now = Instant::now();
        rig.pool.tick(now);
        let member = fake(7);
        rig.pool.ready(member.clone(), now);
        let claims: Vec<Handle<Fake>> = (0..3)
            .map(|n| match rig.pool.submit(job(n, now), now) {
                Submit::Run(_, claim) => claim,
                _ => panic!("room"),
            })
            .collect();
        member.alive.store(false, Ordering::Relaxed);
        rig.pool.died(7, now);
        for claim in claims {
            assert!(rig.pool.release(claim, false, now).is_none());
        }
        assert_eq!(
            rig.pool.stats().restarts,
            1,
            "one death, however many calls"
        );
        assert!(matches!(rig.pool.submit(job(9, now), now), Submit::Parked));
        let tick = rig.pool.tick(now);
        assert_eq!(tick.retire.len(), 1);
        assert_eq!(
            tick.spawn, 1,
            "a replacement is started for the parked call"
        );
    }

    #[test]
    fn a_handle_past_max_calls_finishes_its_calls_and_is_replaced_without_refusing_any() {
        let recycle = crate::config::Recycle {
            max_calls: Some(3),
            ..Default::default()
        };
        let rig = rig_with(1, 1, 8, recycle);
        let now = Instant::now();
        settle(&rig, now);
        let claims: Vec<Handle<Fake>> = (0..3)
            .map(|n| match rig.pool.submit(job(n, now), now) {
                Submit::Run(_, claim) => claim,
                _ => panic!("room for call {n}"),
            })
            .collect();
        assert!(
            matches!(rig.pool.submit(job(3, now), now), Submit::Parked),
            "past maxCalls: no new call on it"
        );
        let tick = rig.pool.tick(now);
        assert_eq!(
            tick.spawn, 1,
            "a replacement, though the pool is at poolSize"
        );
        assert!(tick.retire.is_empty(), "its calls are still running");
        for claim in claims {
            assert!(rig.pool.release(claim, true, now).is_none());
        }
        let tick = rig.pool.tick(now);
        assert_eq!(tick.retire.len(), 1, "gone once its last call ended");
        let taken = rig.pool.ready(fake(2), now);
        assert_eq!(taken.len(), 1, "the parked call runs on the replacement");
        assert_eq!(rig.pool.stats().recycles, [0, 1, 0]);
        assert!(rig.replies.try_recv().is_err(), "no call was failed");
    }

    #[test]
    fn an_idle_handle_past_max_lifetime_is_replaced_at_once() {
        let recycle = crate::config::Recycle {
            max_lifetime: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        let rig = rig_with(1, 2, 8, recycle);
        let t0 = Instant::now();
        settle(&rig, t0);
        assert_eq!(rig.pool.tick(t0).next, Some(t0 + Duration::from_secs(60)));
        let tick = rig.pool.tick(t0 + Duration::from_secs(61));
        assert_eq!(tick.retire.len(), 1);
        assert_eq!(tick.spawn, 1, "min is kept");
        assert_eq!(rig.pool.stats().recycles, [1, 0, 0]);
    }

    fn session_job(n: usize, session: usize, created: Instant) -> Job {
        let mut job = job(n, created);
        job.session = Some(Slot {
            key: session,
            gen: 1,
        });
        job
    }

    #[test]
    fn with_share_session_each_session_gets_its_own_handle_and_it_ends_with_the_session() {
        let rig = rig_shared(1, 3, 8, Default::default(), Share::Session);
        let now = Instant::now();
        settle(&rig, now); // one warm spare
        let a1 = match rig.pool.submit(session_job(1, 10, now), now) {
            Submit::Run(_, claim) => claim,
            _ => panic!("the spare takes session 10"),
        };
        let a2 = match rig.pool.submit(session_job(2, 10, now), now) {
            Submit::Run(_, claim) => claim,
            _ => panic!("session 10 again, same handle"),
        };
        assert_eq!(a1.member.serial, a2.member.serial);
        assert!(
            matches!(
                rig.pool.submit(session_job(3, 11, now), now),
                Submit::Parked
            ),
            "session 11 never runs on session 10's handle"
        );
        let tick = rig.pool.tick(now);
        assert_eq!(tick.spawn, 2, "one for session 11, one new spare");
        let taken = rig.pool.ready(fake(2), now);
        assert_eq!(taken.iter().map(|(j, _)| key(j)).collect::<Vec<_>>(), [3]);
        rig.pool.ready(fake(3), now);
        rig.pool.release(a1, true, now);
        rig.pool.release(a2, true, now);
        let idle = rig.pool.tick(now + Duration::from_secs(3600));
        assert!(
            idle.retire.is_empty(),
            "a session's handle is not reaped while it lives"
        );
        rig.pool.session_ended(Slot { key: 10, gen: 1 });
        let tick = rig.pool.tick(now);
        assert_eq!(
            tick.retire.iter().map(|m| m.serial).collect::<Vec<_>>(),
            [100]
        );
    }

    #[test]
    fn with_share_call_every_call_gets_a_fresh_handle_stopped_after_it() {
        let rig = rig_shared(0, 4, 8, Default::default(), Share::Call);
        let now = Instant::now();
        rig.pool.tick(now);
        rig.pool.ready(fake(1), now); // the first listing's handle is a spare
        let first = match rig.pool.submit(job(1, now), now) {
            Submit::Run(_, claim) => claim,
            _ => panic!("the spare takes the call"),
        };
        assert!(matches!(rig.pool.submit(job(2, now), now), Submit::Parked));
        assert_eq!(rig.pool.tick(now).spawn, 1);
        assert!(rig.pool.release(first, true, now).is_none());
        let tick = rig.pool.tick(now);
        assert_eq!(tick.retire.len(), 1, "stopped after its call");
        assert_eq!(rig.pool.stats().recycles, [0, 0, 0], "not a recycle");
    }

    #[test]
    fn a_dead_handle_waits_for_its_notice_but_not_forever() {
        let rig = rig(1, 2, 4);
        let now = Instant::now();
        rig.pool.tick(now);
        let member = fake(5);
        rig.pool.ready(member.clone(), now);
        member.alive.store(false, Ordering::Relaxed);
        assert!(
            matches!(rig.pool.submit(job(1, now), now), Submit::Parked),
            "never handed out"
        );
        let tick = rig.pool.tick(now + Duration::from_secs(1));
        assert!(
            tick.retire.is_empty(),
            "not retired before its owner said why it died"
        );
        let tick = rig
            .pool
            .tick(now + DEATH_NOTICE_GRACE + Duration::from_secs(1));
        assert_eq!(
            tick.retire.len(),
            1,
            "the notice never came: it leaves anyway"
        );
        assert_eq!(rig.pool.stats().restarts, 1);
    }

    #[test]
    fn an_era_hint_follows_what_starts_found() {
        assert_eq!(EraHint::Unknown.after_failure(false), EraHint::TryLegacy);
        assert_eq!(
            EraHint::TryLegacy.after_failure(false),
            EraHint::Unknown,
            "then probes again"
        );
        assert_eq!(
            EraHint::Unknown.after_failure(true),
            EraHint::Unknown,
            "its probe was answered"
        );
        assert_eq!(
            EraHint::Legacy.after_failure(false),
            EraHint::Legacy,
            "learned by a success"
        );
        assert!(EraHint::TryLegacy.skips_probe() && !EraHint::Modern.skips_probe());
    }
}
