//! The fixed worker pool: threads that take jobs to their server's pool and carry remote calls.
//!
//! A worker takes a message from the shared channel: a new job (offered to its server's pool,
//! which either gives it a claim on a handle with room or parks it) or a job already paired with a
//! claim (a freshly started handle's first calls). A call on a child goes to child I/O (in the
//! reactor's loop), which owns the child's pipes and carries the call from there: the worker is
//! free at once. A call
//! on a remote server is carried by the worker itself (the answer comes on the worker's own
//! connection), as a `Flight` like any other, and the release may hand it the next parked job for
//! the same handle. A worker only ever blocks on a remote call in progress, never on a busy pool.
//!
//! A panic while serving a call is caught: the client gets −32603 and the worker lives on.

use crate::downstream::child_io::ChildIo;
use crate::downstream::flight::{Carrier, Flight, Next};
use crate::downstream::link::Link;
use crate::downstream::remote::link::RemoteLink;
use crate::downstream::{Inbound, Requester};
use crate::job::{Failure, Inbox, Job};
use crate::pool::Handle;
use crossbeam_channel::Receiver;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

pub use crate::downstream::flight::WorkerMsg;

const WORKER_STACK: usize = 512 * 1024;

/// Starts `count` workers.
pub fn start(
    count: usize,
    jobs: Receiver<WorkerMsg>,
    carrier: Carrier,
    child_io: ChildIo,
) -> std::io::Result<()> {
    for n in 0..count {
        let worker = Worker {
            jobs: jobs.clone(),
            carrier: carrier.clone(),
            child_io: child_io.clone(),
        };
        std::thread::Builder::new()
            .name(format!("worker-{n}"))
            .stack_size(WORKER_STACK)
            .spawn(move || crate::panics::restart_on_panic("worker", || worker.run()))?;
    }
    Ok(())
}

struct Worker {
    jobs: Receiver<WorkerMsg>,
    carrier: Carrier,
    child_io: ChildIo,
}

impl Worker {
    fn run(&self) {
        for message in self.jobs.iter() {
            match message {
                WorkerMsg::Submit(job) => self.submit(job),
                WorkerMsg::Run(job, claim) => self.serve(job, claim),
            }
        }
    }

    /// Offers a new job to its server's pool and serves it if a handle has room.
    fn submit(&self, job: Job) {
        if let Some((job, claim)) = self.carrier.submit(job, Instant::now()) {
            self.serve(job, claim);
        }
    }

    /// Runs the job, then every parked job its release hands back.
    fn serve(&self, job: Job, claim: Handle<Link>) {
        let mut next = Some((job, claim));
        while let Some((job, claim)) = next.take() {
            let remote = match &claim.member {
                Link::Stdio(_) => {
                    self.child_io.call(job, claim);
                    return;
                }
                Link::Remote(remote) => remote.clone(),
            };
            let (flight, params) = Flight::new(job, claim, &self.carrier, Instant::now());
            next = guarded(flight, |flight| self.call_remote(flight, &remote, params));
        }
    }

    /// Carries one call on a remote server to its end (through every `input_required` round a
    /// 2026-07-28 server asks a 2025 client for, `gather_input`).
    fn call_remote(
        &self,
        mut flight: Flight,
        remote: &RemoteLink,
        mut params: crate::rpc::Params,
    ) -> Next {
        let name = &remote.name;
        loop {
            if flight.control.is_cancelled() {
                return flight.cancelled();
            }
            let progress = flight.wants_progress();
            let begun = remote.begin(
                flight.method,
                Some(params),
                progress,
                flight.deadline,
                flight.client,
            );
            let mut call = match begun {
                Ok(call) => call,
                Err(error) => return flight.fail(error, name),
            };
            let inbox: Inbox = Arc::new(call.sender());
            if !flight.start(inbox.clone()) {
                call.cancel("cancelled by the client");
                return flight.cancelled();
            }
            let outcome = loop {
                match call.step() {
                    Ok(Inbound::Response(outcome)) => break outcome,
                    Ok(Inbound::Progress(params)) => flight.progress(params),
                    Ok(Inbound::Log(params)) => flight.log(&params),
                    // The link already chose this call for it (`remote::flights`).
                    Ok(Inbound::ChildRequest { id, method, params }) => {
                        flight.ask_client(remote, inbox.clone(), id, method, params)
                    }
                    Ok(Inbound::ClientAnswer { child_id, outcome }) => {
                        remote.respond(&child_id, outcome.as_ref())
                    }
                    // The 2026-07-28 client's retry of the call it was asked input for.
                    Ok(Inbound::Resume {
                        to,
                        answer,
                        child_id,
                        outcome,
                    }) => {
                        flight.resume(to, answer);
                        remote.respond(&child_id, outcome.as_ref());
                    }
                    Ok(Inbound::Cancelled) => {
                        call.cancel("cancelled by the client");
                        return flight.cancelled();
                    }
                    // `step` turns these into errors.
                    Ok(Inbound::Closed | Inbound::TooLarge { .. }) => {}
                    Err(error) => return flight.fail(error, name),
                }
            };
            drop(call);
            match outcome {
                Ok(result)
                    if flight.rounds.is_some()
                        && crate::downstream::era::is_input_required(result.get()) =>
                {
                    match gather_input(flight, remote, result.get()) {
                        Ok((again, retry)) => (flight, params) = (again, retry),
                        Err(next) => return *next,
                    }
                }
                outcome => return flight.answer(outcome.as_deref().map_err(|e| &**e)),
            }
        }
    }
}

/// A 2026-07-28 remote answered a 2025 client's call `input_required`: each input request goes
/// to the client (as a 2025 server's own request would), and with every answer in, the params to
/// send the call again with. Err: the flight ended (refused, cancelled, timed out, too many rounds).
fn gather_input(
    mut flight: Flight,
    remote: &RemoteLink,
    result: &str,
) -> Result<(Flight, crate::rpc::Params), Box<Next>> {
    use crate::downstream::era::{self, InputRound};
    let round = match era::input_round(result, flight.rounds.as_mut().expect("checked")) {
        Ok(round) => round,
        Err(why) => {
            let failure = Failure::BadGateway(format!("server {}: {why}", remote.name));
            return Err(Box::new(flight.fail_with(&failure)));
        }
    };
    let (tx, rx) = crossbeam_channel::unbounded::<Inbound>();
    let inbox: Inbox = Arc::new(tx);
    if !flight.start(inbox.clone()) {
        return Err(Box::new(flight.cancelled()));
    }
    let InputRound { requests } = round;
    for (key, method, params) in requests {
        let id = era::input_id(&key);
        flight.ask_client(remote, inbox.clone(), id, method, params);
    }
    loop {
        if flight.rounds.as_ref().is_some_and(|r| r.waiting.is_empty()) {
            let params = flight.retry_params();
            return Ok((flight, params));
        }
        let deadline = flight.deadline;
        let rounds = flight.rounds.as_mut().expect("checked");
        match rx.recv_deadline(deadline) {
            Ok(Inbound::ClientAnswer { child_id, outcome }) => {
                let Some(key) = era::input_key(&child_id).filter(|k| rounds.waits_for(k)) else {
                    continue;
                };
                match outcome {
                    Ok(answer) => {
                        rounds.answered(key, answer);
                    }
                    Err(error) => return Err(Box::new(flight.answer_client_error(&error))),
                }
            }
            Ok(Inbound::Cancelled) => return Err(Box::new(flight.cancelled())),
            Ok(_) => {}
            Err(_) => {
                let name = remote.name.to_string();
                return Err(Box::new(
                    flight.fail(crate::downstream::CallError::Timeout, &name),
                ));
            }
        }
    }
}

/// Runs `carry`; if it panics, the worker survives, and the unwound flight answers its client
/// with −32603 and releases its claim (`Flight`'s drop).
fn guarded(flight: Flight, carry: impl FnOnce(Flight) -> Next) -> Next {
    let (method, server) = (flight.method, flight.server);
    match catch_unwind(AssertUnwindSafe(|| carry(flight))) {
        Ok(next) => next,
        Err(panic) => {
            let what = crate::panics::describe(&*panic);
            log::error!("a worker panicked serving {method} on server #{server}: {what}");
            None
        }
    }
}
