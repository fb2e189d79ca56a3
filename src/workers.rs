//! The fixed worker pool: threads that carry jobs to servers and answers back.
//!
//! A worker takes a message from the shared channel: a new job (offered to its server's pool, which
//! either hands over a handle or parks the job) or a job already paired with a freshly started handle.
//! It then makes the call — rewriting the id, mapping the progress token, bounded by the server's
//! call timeout — sends the answer to the reactor, and releases the handle, which may come straight
//! back paired with the next parked job. A worker only ever blocks on a call in progress, never on a
//! busy pool, so there are as many workers as handles can be busy at once.
//!
//! A panic while serving a call is caught: the client gets −32603 and the worker lives on.

use crate::downstream::link::Link;
use crate::downstream::remote::link::RemoteLink;
use crate::downstream::stdio::{DirectReply, Inbound, StdioChild};
use crate::downstream::{CallError, Requester};
use crate::job::{Failure, Job, ReactorSink, Route, ToReactor};
use crate::pool::{Handle, Submit};
use crate::rpc;
use crate::supervisor::ServerPool;
use crossbeam_channel::Receiver;
use crossbeam_channel::Sender;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages to the workers.
pub enum WorkerMsg {
    /// A new job from the reactor.
    Submit(Job),
    /// A parked job and the newly started handle that will serve it.
    Run(Job, Handle<Link>),
}

const WORKER_STACK: usize = 512 * 1024;

/// Starts `count` workers.
pub fn start(
    count: usize,
    jobs: Receiver<WorkerMsg>,
    pools: Arc<[ServerPool]>,
    call_timeouts: Arc<[Duration]>,
    sink: ReactorSink,
) -> std::io::Result<()> {
    for n in 0..count {
        let worker = Worker {
            jobs: jobs.clone(),
            pools: pools.clone(),
            call_timeouts: call_timeouts.clone(),
            sink: sink.clone(),
        };
        std::thread::Builder::new()
            .name(format!("worker-{n}"))
            .stack_size(WORKER_STACK)
            .spawn(move || worker.run())?;
    }
    Ok(())
}

struct Worker {
    jobs: Receiver<WorkerMsg>,
    pools: Arc<[ServerPool]>,
    call_timeouts: Arc<[Duration]>,
    sink: ReactorSink,
}

impl Worker {
    fn run(&self) {
        for message in self.jobs.iter() {
            match message {
                WorkerMsg::Submit(job) => {
                    let pool = &self.pools[job.server];
                    match pool.submit(job, Instant::now()) {
                        Submit::Run(job, handle) => self.serve(job, handle),
                        Submit::Parked => {}
                        Submit::Rejected(job, failure) => self.sink.fail(&job.route(), &failure),
                    }
                }
                WorkerMsg::Run(job, handle) => self.serve(job, handle),
            }
        }
    }

    /// Runs the job, then every parked job the released handle is handed back with.
    fn serve(&self, mut job: Job, mut handle: Handle<Link>) {
        loop {
            let served = guarded(&self.sink, &job, || self.call_on(&job, &handle.member));
            let pool = &self.pools[job.server];
            match pool.release(handle, served.answered, served.returning, Instant::now()) {
                Some((next_job, next_handle)) => {
                    job = next_job;
                    handle = next_handle;
                }
                None => return,
            }
        }
    }

    /// Makes the call on either kind of handle, unless the client cancelled it meanwhile.
    fn call_on(&self, job: &Job, link: &Link) -> Served {
        let route = job.route();
        if job.control.is_cancelled() {
            self.sink.cancelled(&route);
            return Served::ANSWERED;
        }
        let timeout = self.call_timeouts[job.server];
        match link {
            Link::Stdio(child) => self.call(job, child, route, timeout),
            Link::Remote(remote) => self.call_remote(job, remote, route, timeout),
        }
    }

    /// Makes the call on a child and sends the outcome.
    ///
    /// The answer (and progress) normally goes to the client straight from the child-I/O thread
    /// through a `Direct` reply; this worker hears `Answered` afterwards. On a timeout, a failure or a
    /// cancellation, the worker takes the `Direct` back to answer itself — unless the answer already
    /// went out, which the `Direct` being gone tells.
    fn call(&self, job: &Job, child: &StdioChild, route: Route, timeout: Duration) -> Served {
        let deadline = Instant::now() + timeout;
        let direct = Direct {
            sink: self.sink.clone(),
            route: route.clone(),
            progress_token: job.progress_token.clone(),
            pools: self.pools.clone(),
            server: job.server,
        };
        let call = match child.begin(
            job.method,
            Some(job.params.clone()),
            job.progress_token.is_some(),
            deadline,
            job.session.is_some(),
            Some(Box::new(direct)),
        ) {
            Ok(call) => call,
            Err(error) => {
                self.sink
                    .fail(&route, &failure_of(error, &child.name, job, timeout));
                return Served::FAILED;
            }
        };
        if !job.control.start(call.sender()) {
            if call.take_direct().is_some() {
                call.cancel("cancelled by the client");
                self.sink.cancelled(&route);
                return Served::ANSWERED;
            }
            return Served::RETURNING;
        }
        loop {
            match call.next() {
                Ok(Inbound::Answered) => return Served::RETURNING,
                Ok(Inbound::ChildRequest { id, method, params }) => {
                    self.child_request(job, child, call.sender(), id, method, params)
                }
                Ok(Inbound::ClientAnswer { child_id, outcome }) => {
                    child.respond(&child_id, outcome.as_ref())
                }
                Ok(Inbound::Cancelled) => {
                    if call.take_direct().is_some() {
                        call.cancel("cancelled by the client");
                        self.sink.cancelled(&route);
                        return Served::ANSWERED;
                    }
                    return Served::RETURNING;
                }
                // With a `Direct` these come through it; `next` turns the rest into errors.
                Ok(
                    Inbound::Response(_)
                    | Inbound::Progress(_)
                    | Inbound::Closed
                    | Inbound::TooLarge { .. },
                ) => {}
                Err(error) => {
                    return match call.take_direct() {
                        Some(_) => {
                            self.sink
                                .fail(&route, &failure_of(error, &child.name, job, timeout));
                            Served::FAILED
                        }
                        None => Served::RETURNING, // answered just before: the outcome stands
                    };
                }
            }
        }
    }

    /// A call on a remote server: the same protocol as `call`, its steps read by this worker
    /// (the answer arrives on this thread's own connection).
    fn call_remote(
        &self,
        job: &Job,
        remote: &RemoteLink,
        route: Route,
        timeout: Duration,
    ) -> Served {
        let deadline = Instant::now() + timeout;
        let progress = job.progress_token.is_some();
        let client = job.session;
        let params = Some(job.params.clone());
        let mut call = match remote.begin(job.method, params, progress, deadline, client) {
            Ok(call) => call,
            Err(error) => {
                let failure = failure_of(error, &remote.name, job, timeout);
                self.sink.fail(&route, &failure);
                return Served::FAILED;
            }
        };
        if !job.control.start(call.sender()) {
            call.cancel("cancelled by the client");
            self.sink.cancelled(&route);
            return Served::ANSWERED;
        }
        loop {
            match call.step() {
                Ok(Inbound::Response(outcome)) => {
                    // As in `Direct::answer`: the pool hears first that the handle is coming back.
                    self.pools[job.server].returning();
                    let outcome = match &outcome {
                        Ok(result) => Ok(result.get()),
                        Err(error) => Err(error.get()),
                    };
                    self.sink.answer(&route, outcome);
                    return Served::RETURNING;
                }
                Ok(Inbound::Progress(params)) => {
                    if let Some(note) = progress_note(job.progress_token.as_ref(), params) {
                        self.sink.before_answer(&route, note);
                    }
                }
                Ok(Inbound::ChildRequest { id, method, params }) => {
                    self.child_request(job, remote, call.sender(), id, method, params)
                }
                Ok(Inbound::ClientAnswer { child_id, outcome }) => {
                    remote.respond(&child_id, outcome.as_ref())
                }
                Ok(Inbound::Cancelled) => {
                    call.cancel("cancelled by the client");
                    self.sink.cancelled(&route);
                    return Served::ANSWERED;
                }
                // `step` turns these into errors, or skips them.
                Ok(Inbound::Answered | Inbound::Closed | Inbound::TooLarge { .. }) => {}
                Err(error) => {
                    let failure = failure_of(error, &remote.name, job, timeout);
                    self.sink.fail(&route, &failure);
                    return Served::FAILED;
                }
            }
        }
    }

    /// The server asks something while serving this call: `ping` is answered here; what only the
    /// client can answer goes to the session that made the call (the reactor checks that the client
    /// declared the capability); anything else is refused.
    fn child_request(
        &self,
        job: &Job,
        server: &dyn Requester,
        reply: Sender<Inbound>,
        id: Value,
        method: String,
        params: Option<Value>,
    ) {
        match (method.as_str(), job.session) {
            ("ping", _) => server.respond(&id, Ok(&Value::Object(Map::new()))),
            ("sampling/createMessage" | "elicitation/create" | "roots/list", Some(session)) => {
                self.sink.send(ToReactor::ClientRequest {
                    to: job.to,
                    session,
                    child_id: id,
                    method,
                    params,
                    reply,
                });
            }
            _ => server.refuse(&id, &method),
        }
    }
}

/// `notifications/progress` for the client, with its own token back in place.
fn progress_note(token: Option<&Value>, mut params: Map<String, Value>) -> Option<Vec<u8>> {
    params.insert("progressToken".into(), token?.clone());
    Some(rpc::notification("notifications/progress", Some(&params)))
}

fn failure_of(error: CallError, server: &str, job: &Job, timeout: Duration) -> Failure {
    match error {
        CallError::Timeout => Failure::Timeout(format!(
            "server {} did not answer {} within {} ms; the call was cancelled",
            server,
            job.method,
            timeout.as_millis()
        )),
        CallError::Closed(note) => Failure::BadGateway(format!("{note}; the call was lost")),
        CallError::TooLarge(limit) => Failure::BadGateway(format!(
            "server {}'s answer exceeds maxMessageBytes ({limit} bytes)",
            server
        )),
    }
}

/// How a call ended, for the release of its handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Served {
    /// The server answered (a sign of health).
    answered: bool,
    /// The answer went out through `Direct`, which told the pool the handle is returning.
    returning: bool,
}

impl Served {
    const ANSWERED: Served = Served {
        answered: true,
        returning: false,
    };
    const RETURNING: Served = Served {
        answered: true,
        returning: true,
    };
    const FAILED: Served = Served {
        answered: false,
        returning: false,
    };
}

/// A call's reply path from the child-I/O thread straight to the reactor.
struct Direct {
    sink: ReactorSink,
    route: Route,
    progress_token: Option<Value>,
    pools: Arc<[ServerPool]>,
    server: usize,
}

impl DirectReply for Direct {
    fn progress(&self, params: Map<String, Value>) {
        if let Some(note) = progress_note(self.progress_token.as_ref(), params) {
            self.sink.before_answer(&self.route, note);
        }
    }

    fn answer(self: Box<Self>, outcome: Result<&RawValue, &RawValue>) {
        // Before the client can hear the answer, the pool must know the handle is coming back.
        self.pools[self.server].returning();
        let outcome = outcome.map(RawValue::get).map_err(RawValue::get);
        self.sink.answer(&self.route, outcome);
    }
}

/// Runs `serve`; if it panics, the client still gets an answer (−32603) and the worker survives.
fn guarded(sink: &ReactorSink, job: &Job, serve: impl FnOnce() -> Served) -> Served {
    match catch_unwind(AssertUnwindSafe(serve)) {
        Ok(served) => served,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            log::error!(
                "a worker panicked serving {} on server #{}: {what}",
                job.method,
                job.server
            );
            sink.fail(
                &job.route(),
                &Failure::Internal(format!(
                    "internal error in the gateway while serving {}; see its log",
                    job.method
                )),
            );
            Served::FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Answer, ReplyTo, Slot};
    use crate::rpc::Id;

    fn sink() -> (
        ReactorSink,
        crossbeam_channel::Receiver<ToReactor>,
        mio::Poll,
    ) {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (tx, rx) = crossbeam_channel::unbounded();
        (ReactorSink::new(tx, waker), rx, poll)
    }

    fn job() -> Job {
        Job {
            to: ReplyTo::Session(Slot { key: 1, gen: 2 }),
            answer: Answer::JsonRpc(Id::from_value(&Value::from(7)).unwrap()),
            server: 0,
            method: "tools/call",
            params: Map::new(),
            progress_token: None,
            created: Instant::now(),
            session: None,
            control: Default::default(),
        }
    }

    #[test]
    fn a_panic_is_answered_with_internal_error() {
        let (sink, rx, _poll) = sink();
        let served = guarded(&sink, &job(), || panic!("boom"));
        assert_eq!(served, Served::FAILED);
        match rx.try_recv().unwrap() {
            ToReactor::Reply { body, last, .. } => {
                assert!(last);
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["id"], 7);
                assert_eq!(v["error"]["code"], rpc::codes::INTERNAL_ERROR);
            }
            other => panic!("{other:?}"),
        }
    }
}
