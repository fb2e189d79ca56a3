//! One client's call in flight on a handle, whichever kind of handle carries it: child I/O
//! for a child, a worker for a remote server. Both drive the same `Flight`, so what a call does
//! with progress, with the server's requests, and at its end is decided once, here.
//!
//! Invariants:
//! - a flight ends exactly once (`answer`, `fail` or `cancelled` consume it), and that is the only
//!   way its outcome reaches the client: one path for every answer;
//! - the claim on the handle is released *before* the outcome is sent, so a client quick to send
//!   its next call finds the room already free and the pool never starts a process for it;
//! - the next parked job the release hands back is returned to the carrier, which runs it on the
//!   same handle (iteratively: nothing here recurses);
//! - a flight dropped without an end (a panic unwound its carrier) still releases its claim and
//!   answers its client with an internal error.

use super::link::{Link, ServerPool};
use super::servers::LiveServers;
use super::{CallError, Requester};
use crate::job::{Failure, Inbox, Job, ReactorSink, Route, Slot, ToReactor};
use crate::pool::{Handle, Submit};
use crate::rpc::{self, Params};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every carrier of flights needs: the servers' pools (to release claims) and
/// `callTimeout`s, the reactor's mailbox, and the workers (who carry remote calls).
#[derive(Clone)]
pub struct Carrier {
    pub servers: LiveServers,
    pub sink: ReactorSink,
    pub workers: crossbeam_channel::Sender<WorkerMsg>,
}

/// Messages to the workers.
pub enum WorkerMsg {
    /// A new job for a remote server, from the reactor.
    Submit(Job),
    /// A job and its claim on a handle: a parked job on a newly started one, or a call child
    /// I/O took for a server a reload made remote.
    Run(Job, Handle<Link>),
}

/// The next parked job and its claim, handed back by a release.
pub type Next = Option<(Job, Handle<Link>)>;

impl Carrier {
    /// Offers a new job to its server's pool (to the pool that replaced it, after a reload):
    /// returns the job with its claim when a handle has room; a parked job waits in the pool, a
    /// refused one is answered here.
    pub fn submit(&self, mut job: Job, now: Instant) -> Next {
        if let Some(audit) = &job.meter.audit {
            // Hashing the arguments is O(their size): on the carrier, never on the reactor.
            audit.measure(&job.params);
        }
        let (mut pool, _) = self.servers.pool(job.server);
        loop {
            match pool.submit(job, now) {
                Submit::Run(job, claim) => return Some((job, claim)),
                Submit::Parked => return None,
                Submit::Rejected(job, failure) => {
                    self.sink.fail(&job.route(), &failure);
                    return None;
                }
                Submit::Moved(moved, slot, successor) => {
                    job = moved;
                    job.server = slot;
                    pool = successor;
                }
            }
        }
    }
}

/// One call in flight.
pub struct Flight {
    pub route: Route,
    /// The client's progress token, if it asked for progress.
    progress_token: Option<Value>,
    /// The log level the call carries (a rank in `mcp::LOG_LEVELS`): a 2026-07-28 client's own, or
    /// on a 2026-07-28 handle the level its 2025 session set. Log messages of the call go to its
    /// client (`log`).
    log_level: Option<usize>,
    /// The MCP session that made the call (None for REST): who may be asked things.
    pub client: Option<Slot>,
    pub method: &'static str,
    pub server: usize,
    pub control: Arc<crate::job::CallControl>,
    pub deadline: Instant,
    timeout: Duration,
    /// The pool the claim is on.
    pool: Arc<ServerPool>,
    /// A 2025 client's call on a 2026-07-28 stdio server: its `input_required` rounds, turned into
    /// requests to the client (`child_io`).
    pub rounds: Option<Box<Rounds>>,
    /// Taken when the flight ends.
    claim: Option<Handle<Link>>,
    carrier: Carrier,
}

/// The `input_required` rounds of one call (SEP-2322, on behalf of a 2025 client).
#[derive(Debug, Default)]
pub struct Rounds {
    /// The params the call was first sent with (its progress token aside), to send again.
    pub params: Params,
    /// Rounds so far.
    pub count: u32,
    /// Keys of the server's input requests the client has not answered yet.
    pub waiting: Vec<String>,
    /// The client's answers, by key: the retry's `inputResponses`.
    pub responses: Map<String, Value>,
    /// The server's `requestState`, sent back as it came.
    pub state: Option<Value>,
}

impl Rounds {
    /// Records the client's answer to the input request `key`; true when it was the round's
    /// last. An answer to nothing this round waits for changes nothing (false).
    pub fn answered(&mut self, key: &str, answer: Value) -> bool {
        let Some(at) = self.waiting.iter().position(|k| k == key) else {
            return false;
        };
        let key = self.waiting.remove(at);
        self.responses.insert(key, answer);
        self.waiting.is_empty()
    }

    /// Whether the round waits for an answer to `key`.
    pub fn waits_for(&self, key: &str) -> bool {
        self.waiting.iter().any(|k| k == key)
    }
}

impl Flight {
    /// Takes a job off to its handle; returns the flight and the params to send.
    pub fn new(job: Job, claim: Handle<Link>, carrier: &Carrier, now: Instant) -> (Flight, Params) {
        let (pool, timeout) = carrier.servers.pool(job.server);
        let route = job.route();
        let mut params = job.params;
        let modern = claim.member.requester().modern();
        if let (true, Some(declared)) = (modern, &job.declared) {
            super::era::declare(&mut params, declared);
        }
        let log_level = super::era::log_level(&params);
        super::era::prepare(&mut params, modern);
        // Only a 2025 session can be asked things on its stream; a 2026 client gets the
        // input_required result itself.
        let asks_a_session =
            job.session.is_some() && matches!(job.answer, crate::job::Answer::JsonRpc(_));
        let rounds = (modern && asks_a_session).then(|| {
            Box::new(Rounds {
                params: params.clone(),
                ..Rounds::default()
            })
        });
        let flight = Flight {
            route,
            progress_token: job.progress_token,
            log_level,
            rounds,
            client: job.session,
            method: job.method,
            server: job.server,
            control: job.control,
            deadline: now + timeout,
            timeout,
            pool,
            claim: Some(claim),
            carrier: carrier.clone(),
        };
        (flight, params)
    }

    /// The name of the server the call is on.
    pub fn server_name(&self) -> &str {
        &self.pool.name
    }

    /// Whether the client asked for progress.
    pub fn wants_progress(&self) -> bool {
        self.progress_token.is_some()
    }

    /// The call reached its server: the reactor can now signal it. False: the client cancelled
    /// before; end the flight with `cancelled`.
    pub fn start(&self, inbox: Inbox) -> bool {
        self.control.start(inbox)
    }

    /// `notifications/progress` from the server, for the client with its own token back in place.
    pub fn progress(&self, mut params: Map<String, Value>) {
        let Some(token) = &self.progress_token else {
            return;
        };
        params.insert("progressToken".into(), token.clone());
        let note = rpc::notification("notifications/progress", Some(&params));
        self.carrier.sink.before_answer(&self.route, note);
    }

    /// A log message that belongs to this call (it came on the call's own stream, or while this
    /// was its stdio server's only call): to the call's client if the call carried a level and the
    /// message is at or above it (nothing for anyone else). Its logger names the server, as for
    /// every log message a client gets through the gateway.
    pub fn log(&self, params: &Map<String, Value>) {
        let Some(wanted) = self.log_level else {
            return;
        };
        let rank = params
            .get("level")
            .and_then(Value::as_str)
            .and_then(crate::upstream::mcp::log_rank)
            .unwrap_or(0);
        if rank >= wanted {
            let mut params = params.clone();
            crate::upstream::mcp::attribute_log(&self.pool.name, &mut params);
            let note = rpc::notification("notifications/message", Some(&params));
            self.carrier.sink.before_answer(&self.route, note);
        }
    }

    /// Whether the call is a 2026-07-28 client's (answered on its own response, no session).
    pub fn for_a_modern_client(&self) -> bool {
        matches!(self.route.answer, crate::job::Answer::Modern { .. })
    }

    /// A 2025 server asks this flight's 2026-07-28 client something: the client gets an
    /// `input_required` answer now, and the call waits for its retry (`resume`). Until then what
    /// the call says goes nowhere: the client's connection has its answer, and may carry another
    /// request by the time this call ends (times out, say).
    pub fn suspend(&mut self, child_id: Value, method: String, params: Option<Value>) {
        let Some(id) = self.route.answer.id().cloned() else {
            return;
        };
        self.carrier.sink.send(ToReactor::Suspend {
            to: self.route.to,
            id,
            control: self.control.clone(),
            child_id,
            method,
            params,
            deadline: self.deadline,
        });
        self.route.to = crate::job::ReplyTo::Nowhere;
    }

    /// The client's retry of a suspended call: its answer goes there now.
    pub fn resume(&mut self, to: crate::job::ReplyTo, answer: crate::job::Answer) {
        self.route.to = to;
        self.route.answer = answer;
    }

    /// The params to send the call again with after an `input_required` round: as first sent,
    /// with the client's answers (`inputResponses`) and the server's `requestState`.
    pub fn retry_params(&mut self) -> Params {
        let rounds = self
            .rounds
            .as_mut()
            .expect("only a call with rounds is sent again");
        let mut params = rounds.params.clone();
        let responses = std::mem::take(&mut rounds.responses);
        params.set("inputResponses", &Value::Object(responses));
        if let Some(state) = &rounds.state {
            params.set("requestState", state);
        }
        params
    }

    /// The client refused an input request of the call's round (`error`, its JSON-RPC error):
    /// that is the call's answer.
    pub fn answer_client_error(self, error: &Value) -> Next {
        let error = serde_json::value::to_raw_value(error).expect("a Value serializes");
        self.answer(Err(&error))
    }

    /// The server's answer.
    pub fn answer(mut self, outcome: Result<&RawValue, &RawValue>) -> Next {
        let next = self.release(true);
        let outcome = outcome.map(RawValue::get).map_err(RawValue::get);
        self.carrier.sink.answer(&self.route, outcome);
        next
    }

    /// No answer came (timeout, the server went away, an answer too large).
    pub fn fail(self, error: CallError, server_name: &str) -> Next {
        let failure = failure_of(&error, server_name, self.method, self.timeout);
        self.fail_with(&failure)
    }

    /// Ends the flight with a failure of the gateway's own wording.
    pub fn fail_with(mut self, failure: &Failure) -> Next {
        let next = self.release(false);
        self.carrier.sink.fail(&self.route, failure);
        next
    }

    /// The client cancelled: no answer on a session stream, an error for a waiting HTTP request.
    pub fn cancelled(mut self) -> Next {
        let next = self.release(true);
        self.carrier.sink.cancelled(&self.route);
        next
    }

    fn release(&mut self, answered: bool) -> Next {
        let claim = self.claim.take()?;
        self.pool.release(claim, answered, Instant::now())
    }

    /// The server asks this flight's client something (sampling, elicitation, roots): sent to the
    /// reactor, which checks that the client declared the capability; the answer comes back
    /// through `reply`. A 2026-07-28 client's call is suspended instead (`suspend`); without a
    /// client (REST) it is answered as if no call were in flight.
    pub fn ask_client(
        &mut self,
        server: &dyn Requester,
        reply: Inbox,
        id: Value,
        method: String,
        params: Option<Value>,
    ) {
        match (method.as_str(), self.client) {
            ("ping", _) => server.respond(&id, Ok(&Value::Object(Map::new()))),
            (method, Some(session)) if super::era::relayable(method) => {
                self.carrier.sink.send(ToReactor::ClientRequest {
                    to: self.route.to,
                    session,
                    child_id: id,
                    method: method.to_string(),
                    params,
                    reply,
                });
            }
            // A 2026-07-28 client cannot be sent a request: the call waits for its retry.
            (method, None) if super::era::relayable(method) && self.for_a_modern_client() => {
                self.suspend(id, method.to_string(), params)
            }
            _ => server.answer_alone(&id, &method),
        }
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if self.claim.is_none() {
            return; // ended
        }
        log::error!(
            "a call of {} on server #{} was dropped without an answer",
            self.method,
            self.server
        );
        let _ = self.release(false);
        let failure = Failure::Internal(format!(
            "internal error in the gateway while serving {}; see its log",
            self.method
        ));
        self.carrier.sink.fail(&self.route, &failure);
    }
}

/// Which of the calls in flight on one handle a request from the server belongs to, when the
/// server did not say (stdio has no way to; Streamable HTTP servers may send it on the GET
/// stream): the one client with calls in flight there, if there is exactly one.
pub fn sole_client<'a, K>(
    flights: impl Iterator<Item = (K, &'a Flight)>,
) -> Result<(K, &'a Flight), Ambiguity> {
    // A 2025 session is one client however many calls it has; each 2026-07-28 client's call is
    // a client of its own (no session ties two of them together). REST calls ask nobody.
    let mut found: Option<(K, &Flight)> = None;
    for (key, flight) in flights {
        if flight.client.is_none() && !flight.for_a_modern_client() {
            continue;
        }
        match &found {
            None => found = Some((key, flight)),
            Some((_, first)) if flight.client.is_some() && first.client == flight.client => {}
            Some(_) => return Err(Ambiguity::Several),
        }
    }
    found.ok_or(Ambiguity::None)
}

/// Why no call could take a server's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguity {
    /// No client session has a call in flight on the handle.
    None,
    /// Calls of several clients are in flight: asking any one of them could leak another's data.
    Several,
}

impl Ambiguity {
    /// Answers the server's request accordingly: as if no call were in flight, or refused.
    pub fn answer(self, server: &dyn Requester, id: &Value, method: &str) {
        match (self, method) {
            (Ambiguity::Several, "sampling/createMessage" | "elicitation/create") => {
                let error = serde_json::json!({
                    "code": rpc::codes::METHOD_NOT_FOUND,
                    "message": format!(
                        "the gateway cannot forward {method}: calls of several clients are in flight \
                         on this server process, so it cannot tell which client to ask \
                         (set \"maxConcurrency\": 1 for this server if it asks clients things)"
                    ),
                });
                server.respond(id, Err(&error));
            }
            _ => server.answer_alone(id, method),
        }
    }
}

/// A call's failure in words for the client.
pub fn failure_of(error: &CallError, server: &str, method: &str, timeout: Duration) -> Failure {
    match error {
        CallError::Timeout => Failure::Timeout(format!(
            "server {server} did not answer {method} within {} ms; the call was cancelled",
            timeout.as_millis()
        )),
        CallError::Stalled => Failure::Timeout(format!(
            "server {server} did not read its input within {} ms (its stdin is full); the call was \
             cancelled",
            timeout.as_millis()
        )),
        CallError::Closed(note) => Failure::BadGateway(format!("{note}; the call was lost")),
        CallError::TooLarge(limit) => Failure::BadGateway(format!(
            "server {server}'s answer exceeds maxMessageBytes ({limit} bytes)"
        )),
        CallError::Unauthorized(why) => Failure::Unavailable(why.clone()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::PoolSettings;
    use crate::downstream::child_io::ChildIo;
    use crate::downstream::servers::Servers;
    use crate::downstream::stdio::StdioChild;
    use crate::job::{Answer, ReplyTo, Slot, ToReactor};
    use crate::pool::{Pool, Submit};
    use crate::rpc::Id;
    use serde_json::json;

    /// A pid no process has: these handles have no process behind them.
    const NO_PROCESS: u32 = 999_999_999;

    pub(crate) struct Rig {
        pub(crate) carrier: Carrier,
        replies: crossbeam_channel::Receiver<ToReactor>,
        _poll: mio::Poll,
    }

    pub(crate) fn rig() -> Rig {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (tx, replies) = crossbeam_channel::unbounded();
        let sink = ReactorSink::new(tx, waker);
        let settings = PoolSettings {
            min: 1,
            max: 1,
            acquire_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_concurrency: 4,
            recycle: Default::default(),
            share: Default::default(),
        };
        let pool = Pool::new("t".into(), settings, sink.clone(), Arc::new(|| {}));
        let config = crate::config::parse_str(
            r#"{"mcpServers": {"t": {"command": "t", "callTimeout": 5000}}}"#,
            &|_| None,
        )
        .unwrap()
        .servers;
        let carrier = Carrier {
            servers: LiveServers::new(Servers::new(config, vec![Arc::new(pool)])),
            sink,
            workers: crossbeam_channel::unbounded().0,
        };
        Rig {
            carrier,
            replies,
            _poll: poll,
        }
    }

    fn job() -> Job {
        Job {
            to: ReplyTo::Session(Slot { key: 1, gen: 2 }),
            answer: Answer::JsonRpc(Id::from_value(&Value::from(7)).unwrap()),
            server: 0,
            method: "tools/call",
            params: Default::default(),
            progress_token: None,
            created: Instant::now(),
            session: None,
            control: Default::default(),
            meter: Default::default(),
            declared: None,
        }
    }

    #[test]
    fn a_round_ends_with_the_answer_to_its_last_request() {
        let mut rounds = Rounds {
            waiting: vec!["a".into(), "b".into()],
            ..Rounds::default()
        };
        assert!(
            !rounds.answered("nope", json!(1)),
            "not asked: nothing changes"
        );
        assert!(rounds.waits_for("a") && !rounds.waits_for("nope"));
        assert!(!rounds.answered("a", json!({"x": 1})));
        assert!(!rounds.answered("a", json!(2)), "answered once only");
        assert!(rounds.answered("b", json!(3)));
        assert_eq!(rounds.responses["a"], json!({"x": 1}));
        assert_eq!(
            crate::downstream::era::input_key(&crate::downstream::era::input_id("k")),
            Some("k")
        );
        assert_eq!(crate::downstream::era::input_key(&json!("other")), None);
    }

    #[test]
    fn a_flight_dropped_by_a_panic_answers_its_client_and_frees_its_room() {
        let rig = rig();
        let io = ChildIo::start(1024, rig.carrier.clone(), Box::new(|_| {})).unwrap();
        let child = Arc::new(StdioChild::new(0, "t".into(), 1, NO_PROCESS, io));
        let pool = &rig.carrier.servers.pool(0).0;
        pool.tick(Instant::now());
        assert!(pool.ready(Link::Stdio(child), Instant::now()).is_empty());
        let claim = match pool.submit(job(), Instant::now()) {
            Submit::Run(_, claim) => claim,
            _ => panic!("room on the ready handle"),
        };
        assert_eq!(pool.stats().in_flight, 1);
        let (flight, _) = Flight::new(job(), claim, &rig.carrier, Instant::now());
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _carried = flight;
            panic!("a bug while carrying the call");
        }));
        assert!(unwound.is_err());
        assert_eq!(pool.stats().in_flight, 0, "the claim was released");
        match rig.replies.try_recv().unwrap() {
            ToReactor::Reply { body, last, .. } => {
                assert!(last);
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["id"], 7);
                assert_eq!(v["error"]["code"], rpc::codes::INTERNAL_ERROR);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_one_client_in_flight_is_asked_and_several_are_refused() {
        let rig = rig();
        let io = ChildIo::start(1024, rig.carrier.clone(), Box::new(|_| {})).unwrap();
        let child = Arc::new(StdioChild::new(0, "t".into(), 1, NO_PROCESS, io));
        let pool = &rig.carrier.servers.pool(0).0;
        pool.tick(Instant::now());
        pool.ready(Link::Stdio(child), Instant::now());
        let flight_of = |session: Option<usize>| {
            let mut job = job();
            job.session = session.map(|key| Slot { key, gen: 1 });
            let claim = match pool.submit(job, Instant::now()) {
                Submit::Run(_, claim) => claim,
                _ => panic!("room"),
            };
            let mut job = self::job();
            job.session = session.map(|key| Slot { key, gen: 1 });
            Flight::new(job, claim, &rig.carrier, Instant::now()).0
        };
        let (a1, a2, rest) = (flight_of(Some(1)), flight_of(Some(1)), flight_of(None));
        let one = [(1, &a1), (2, &a2), (3, &rest)];
        assert_eq!(
            sole_client(one.into_iter()).unwrap().0,
            1,
            "the oldest of the one client's calls"
        );
        let b = flight_of(Some(2));
        let two = [(1, &a1), (4, &b)];
        assert_eq!(sole_client(two.into_iter()).err(), Some(Ambiguity::Several));
        assert_eq!(
            sole_client([(3, &rest)].into_iter()).err(),
            Some(Ambiguity::None)
        );
        // Each 2026-07-28 client's call is a client of its own.
        for flight in [a2, b] {
            flight.cancelled(); // room for two more
        }
        let modern = |n: i64| {
            let claim = match pool.submit(job(), Instant::now()) {
                Submit::Run(_, claim) => claim,
                _ => panic!("room"),
            };
            let mut job = self::job();
            job.answer = Answer::Modern {
                id: Id::from_value(&Value::from(n)).unwrap(),
                read: None,
            };
            Flight::new(job, claim, &rig.carrier, Instant::now()).0
        };
        let (m1, m2) = (modern(1), modern(2));
        assert_eq!(
            sole_client([(5, &m1), (3, &rest)].into_iter()).unwrap().0,
            5
        );
        assert_eq!(
            sole_client([(5, &m1), (6, &m2)].into_iter()).err(),
            Some(Ambiguity::Several)
        );
        assert_eq!(
            sole_client([(5, &m1), (1, &a1)].into_iter()).err(),
            Some(Ambiguity::Several)
        );
        for flight in [a1, rest, m1, m2] {
            flight.cancelled();
        }
    }
}
