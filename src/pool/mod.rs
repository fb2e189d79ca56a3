//! One server's pool of handles: who gets a handle, when handles are started and when they are closed.
//!
//! Jobs, not threads, wait for handles. A worker `submit`s a job: it either gets an idle handle at
//! once, or the job is parked in the pool's FIFO queue and the worker moves on to other servers' work
//! (so one slow server can never starve the rest). A handle coming free is given to the oldest parked
//! job first: by the worker that releases it (no hand-off needed) or, for a freshly started handle,
//! through the worker channel.
//!
//! Invariants, all under one short-held mutex:
//! - handles alive or starting never exceed `max`, whatever the burst;
//! - parked jobs are served first-come first-served and fail with 503 once `acquireTimeout` (counted
//!   from when the reactor created the job, so time in the worker queue counts) has passed;
//! - at least `min` handles are kept (once the server works), extra ones idle past `idleTimeout` are
//!   closed, least recently used first (the idle stack is LIFO so surplus handles really go idle);
//! - a dead handle is never handed out; its loss counts towards the backoff streak;
//! - the supervisor thread does all spawning and reaping (`tick`), so the pool itself never blocks.

mod backoff;
mod stats;

pub use stats::{Stats, StatsView, Status};

use crate::config::PoolSettings;
use crate::job::{Failure, Job, ReactorSink};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// What a pool needs to know about the things it pools.
pub trait Member: Clone + Send + 'static {
    fn is_alive(&self) -> bool;
    /// Unique per handle, for logs and for finding a handle that died while idle.
    fn serial(&self) -> u64;
}

/// A pooled handle plus what the pool remembers about it.
#[derive(Clone)]
pub struct Handle<M> {
    pub member: M,
    ready_at: Instant,
}

/// The answer to `submit`.
pub enum Submit<M> {
    /// A handle is free: run the job on it now.
    Run(Job, Handle<M>),
    /// No handle free: the job waits in the pool's queue.
    Parked,
    /// No handle can come in time (server down, shutting down, or the job already timed out).
    Rejected(Job, Failure),
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

pub struct Pool<M: Member> {
    pub name: Arc<str>,
    settings: PoolSettings,
    /// Why this pool can never have handles (disabled, unsupported kind); None for a working pool.
    unusable: Option<(Status, String)>,
    state: Mutex<State<M>>,
    stats: Stats,
    sink: ReactorSink,
    doorbell: Doorbell,
}

struct State<M> {
    idle: Vec<Idle<M>>,
    busy: usize,
    starting: usize,
    waiting: VecDeque<Waiting>,
    /// Consecutive failures (see `backoff`).
    streak: u32,
    /// No start attempt before this.
    retry_at: Option<Instant>,
    ever_ready: bool,
    stopping: bool,
    retire: Vec<M>,
    /// Busy handles whose call is already answered: they come back in a moment, so parked jobs
    /// should wait for them rather than start processes.
    returning: usize,
}

struct Idle<M> {
    handle: Handle<M>,
    since: Instant,
}

struct Waiting {
    job: Job,
    deadline: Instant,
}

impl<M: Member> State<M> {
    fn live(&self) -> usize {
        self.idle.len() + self.busy
    }
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
            settings,
            unusable: None,
            state: Mutex::new(State {
                idle: Vec::new(),
                busy: 0,
                starting: 0,
                waiting: VecDeque::new(),
                streak: 0,
                retry_at: None,
                ever_ready: false,
                stopping: false,
                retire: Vec::new(),
                returning: 0,
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

    pub fn stats(&self) -> StatsView {
        self.stats.view()
    }

    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // A panic while holding the lock leaves consistent-enough state (every step is small).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers a job to the pool (see the module doc).
    pub fn submit(&self, job: Job, now: Instant) -> Submit<M> {
        if let Some((_, reason)) = &self.unusable {
            return Submit::Rejected(job, Failure::Unavailable(reason.clone()));
        }
        let deadline = job.created + self.settings.acquire_timeout;
        let mut st = self.lock();
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
            if let Some(handle) = self.pop_idle(&mut st, now) {
                st.busy += 1;
                self.publish(&st);
                self.stats
                    .calls
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

    /// Takes a handle back after a call. `answered`: the server answered (a sign of health). Returns
    /// the next parked job with the handle when one is waiting: the caller runs it right away.
    pub fn release(
        &self,
        handle: Handle<M>,
        answered: bool,
        returning: bool,
        now: Instant,
    ) -> Option<(Job, Handle<M>)> {
        let mut st = self.lock();
        st.busy -= 1;
        if returning {
            st.returning = st.returning.saturating_sub(1);
        }
        if !handle.member.is_alive() {
            self.lost(&mut st, handle, now);
            self.publish(&st);
            drop(st);
            (self.doorbell)();
            return None;
        }
        if answered && st.streak > 0 {
            st.streak = 0;
            st.retry_at = None;
        }
        let next = self.hand_out(&mut st, handle, now);
        self.publish(&st);
        next
    }

    /// A busy handle's call was just answered and the handle will be released right after: a client
    /// quick to send its next call must not make the pool grow meanwhile. Pair with
    /// `release(.., returning: true, ..)`.
    pub fn returning(&self) {
        self.lock().returning += 1;
    }

    /// A freshly started handle is ready. Returns the parked job it should serve, if any: the caller
    /// must pass both to a worker.
    pub fn ready(&self, member: M, now: Instant) -> Option<(Job, Handle<M>)> {
        let mut st = self.lock();
        st.starting -= 1;
        st.ever_ready = true;
        let handle = Handle {
            member,
            ready_at: now,
        };
        let next = self.hand_out(&mut st, handle, now);
        self.publish(&st);
        next
    }

    /// A start attempt failed (spawn error, exit during the handshake, handshake timeout).
    pub fn start_failed(&self, error: String, now: Instant) {
        log::warn!("server {}: {error}", self.name);
        let mut st = self.lock();
        st.starting -= 1;
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

    /// Takes back a member that never became ready (its handshake failed) for stopping.
    pub fn discard(&self, member: M) {
        self.lock().retire.push(member);
        (self.doorbell)();
    }

    /// A handle's process died; if it was idle it leaves the pool now (a busy one leaves on release).
    pub fn died(&self, serial: u64, now: Instant) {
        let mut st = self.lock();
        if let Some(pos) = st
            .idle
            .iter()
            .position(|i| i.handle.member.serial() == serial)
        {
            let idle = st.idle.remove(pos);
            self.lost(&mut st, idle.handle, now);
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

    /// Stops handing out handles: parked jobs fail, idle handles are retired at the next tick, busy
    /// ones when released.
    pub fn stop(&self) {
        let mut st = self.lock();
        st.stopping = true;
        for w in st.waiting.drain(..) {
            self.sink.fail(
                &w.job.route(),
                &Failure::Unavailable("the gateway is shutting down".into()),
            );
        }
        let idle: Vec<Idle<M>> = st.idle.drain(..).collect();
        st.retire.extend(idle.into_iter().map(|i| i.handle.member));
        self.publish(&st);
        drop(st);
        (self.doorbell)();
    }

    /// True once stopped and no handle is busy or starting.
    pub fn is_drained(&self) -> bool {
        let st = self.lock();
        st.stopping && st.busy == 0 && st.starting == 0 && st.idle.is_empty()
    }

    fn pop_idle(&self, st: &mut State<M>, now: Instant) -> Option<Handle<M>> {
        while let Some(idle) = st.idle.pop() {
            if idle.handle.member.is_alive() {
                return Some(idle.handle);
            }
            // Died a moment ago; the child-I/O thread's notice is on its way.
            self.lost(st, idle.handle, now);
        }
        None
    }

    /// Gives a free handle to the oldest parked job still in time, else makes it idle.
    fn hand_out(
        &self,
        st: &mut State<M>,
        handle: Handle<M>,
        now: Instant,
    ) -> Option<(Job, Handle<M>)> {
        if st.stopping {
            st.retire.push(handle.member);
            (self.doorbell)();
            return None;
        }
        while let Some(w) = st.waiting.pop_front() {
            if w.deadline <= now {
                self.sink.fail(&w.job.route(), &self.exhausted());
                continue;
            }
            st.busy += 1;
            self.stats
                .calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Some((w.job, handle));
        }
        st.idle.push(Idle { handle, since: now });
        None
    }

    /// Accounts for a handle that died: it is retired and its death extends the failure streak
    /// unless it had been healthy for a while.
    fn lost(&self, st: &mut State<M>, handle: Handle<M>, now: Instant) {
        let lived = now.saturating_duration_since(handle.ready_at);
        if lived >= backoff::STABLE_AFTER {
            st.streak = 0;
        }
        st.retire.push(handle.member);
        self.failure(
            st,
            format!("a handle died after {} ms", lived.as_millis()),
            now,
        );
    }

    fn failure(&self, st: &mut State<M>, error: String, now: Instant) {
        st.streak = st.streak.saturating_add(1);
        st.retry_at = Some(now + backoff::delay(st.streak));
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
            "server {} is down ({last}); next start attempt in {retry} ms",
            self.name
        )
    }

    fn exhausted(&self) -> Failure {
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
        // idle[0] is the least recently used.
        while st.live() > self.settings.min {
            let Some(oldest) = st.idle.first() else { break };
            let expires = oldest.since + self.settings.idle_timeout;
            if expires > now {
                tick.next = earliest(tick.next, expires);
                break;
            }
            let idle = st.idle.remove(0);
            log::debug!(
                "server {}: closing a handle idle for {} ms",
                self.name,
                now.saturating_duration_since(idle.since).as_millis()
            );
            st.retire.push(idle.handle.member);
        }
    }

    fn plan_spawns(&self, st: &mut State<M>, now: Instant, tick: &mut Tick<M>) {
        let have = st.live() + st.starting;
        let mut want = self
            .settings
            .min
            .saturating_sub(have)
            .max(st.waiting.len().saturating_sub(st.starting + st.returning));
        if !st.ever_ready && have == 0 {
            want = want.max(1); // the registry needs one listing even when min is 0
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
        s.total.store(st.live(), Relaxed);
        s.busy.store(st.busy, Relaxed);
        s.idle.store(st.idle.len(), Relaxed);
        s.starting.store(st.starting, Relaxed);
        s.waiting.store(st.waiting.len(), Relaxed);
        s.set_status(if st.live() > 0 {
            Status::Up
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

    fn rig(min: usize, max: usize) -> Rig {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (tx, replies) = crossbeam_channel::unbounded();
        let settings = PoolSettings {
            min,
            max,
            acquire_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
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
        }
    }

    fn key(job: &Job) -> usize {
        match job.to {
            ReplyTo::Conn(slot) | ReplyTo::Session(slot) => slot.key,
        }
    }

    #[test]
    fn a_burst_never_starts_more_than_max_and_is_served_in_order() {
        let rig = rig(1, 3);
        let now = Instant::now();
        assert_eq!(rig.pool.tick(now).spawn, 1, "min comes first");
        for n in 0..10 {
            assert!(matches!(rig.pool.submit(job(n, now), now), Submit::Parked));
        }
        assert_eq!(rig.pool.tick(now).spawn, 2, "grows to max, not beyond");
        assert_eq!(rig.pool.tick(now).spawn, 0);
        let (first, handle) = rig.pool.ready(fake(1), now).unwrap();
        assert_eq!(key(&first), 0);
        let mut served = vec![key(&first)];
        let mut next = rig.pool.release(handle, true, false, now);
        while let Some((job, handle)) = next {
            served.push(key(&job));
            next = rig.pool.release(handle, true, false, now);
        }
        assert_eq!(
            served,
            (0..10).collect::<Vec<_>>(),
            "first come, first served"
        );
        assert_eq!(rig.pool.stats().idle, 1);
    }

    #[test]
    fn a_returning_handle_keeps_a_quick_next_call_from_growing_the_pool() {
        let rig = rig(1, 4);
        let now = Instant::now();
        rig.pool.tick(now);
        rig.pool.ready(fake(1), now);
        let handle = match rig.pool.submit(job(1, now), now) {
            Submit::Run(_, h) => h,
            _ => panic!("the idle handle serves the first call"),
        };
        // Answered, not yet released: the client's next call arrives in between.
        rig.pool.returning();
        assert!(matches!(rig.pool.submit(job(2, now), now), Submit::Parked));
        assert_eq!(
            rig.pool.tick(now).spawn,
            0,
            "no process for a call a handle is returning for"
        );
        let (next, _) = rig
            .pool
            .release(handle, true, true, now)
            .expect("handed over");
        assert_eq!(key(&next), 2);
        assert_eq!(rig.pool.stats().spawns, 1);
    }

    #[test]
    fn parked_jobs_expire_after_acquire_timeout() {
        let rig = rig(0, 1);
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
        let rig = rig(1, 3);
        let t0 = Instant::now();
        assert_eq!(rig.pool.tick(t0).spawn, 1);
        for n in 0..3 {
            assert!(matches!(rig.pool.submit(job(n, t0), t0), Submit::Parked));
        }
        assert_eq!(rig.pool.tick(t0).spawn, 2);
        let handles: Vec<Handle<Fake>> = (1..=3)
            .map(|serial| rig.pool.ready(fake(serial), t0).unwrap().1)
            .collect();
        // Released at 30 s, 31 s, 32 s: serial 1 is the least recently used.
        for (i, handle) in handles.into_iter().enumerate() {
            assert!(rig
                .pool
                .release(handle, true, false, t0 + Duration::from_secs(30 + i as u64))
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
    fn a_failing_server_backs_off_and_fails_calls_fast() {
        let rig = rig(1, 2);
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
    fn a_dead_idle_handle_is_never_handed_out() {
        let rig = rig(1, 1);
        let now = Instant::now();
        rig.pool.tick(now);
        let member = fake(7);
        rig.pool.ready(member.clone(), now);
        member.alive.store(false, Ordering::Relaxed);
        assert!(matches!(rig.pool.submit(job(1, now), now), Submit::Parked));
        let tick = rig.pool.tick(now);
        assert_eq!(tick.retire.len(), 1);
        assert_eq!(
            tick.spawn, 1,
            "a replacement is started for the parked call"
        );
    }
}
