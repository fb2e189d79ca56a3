//! The client's side of the bridge: its stdout, and its requests in flight.
//!
//! Invariants:
//! - stdout carries only protocol messages, one per line, each written whole while one lock is
//!   held and flushed at once, so messages from different threads never interleave.
//! - Every request the client sent gets exactly one response: the gateway's, or the bridge's
//!   error when the call cannot be made or was lost. A response goes out only if its id is still
//!   in flight, and taking it out of the table is what decides who answers; a late or duplicate
//!   answer (after a failure or a cancellation) is dropped.
//! - A flight knows the session generation it was sent on and how to shut its connection down,
//!   so when a session is lost every call on it is answered with an error at once, and none can
//!   hang on a connection that will never speak again.

use super::message::{self, Kind};
use crate::downstream::remote::conn::Closer;
use crate::rpc::Id;
use crossbeam_channel::Sender;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

/// Why the bridge stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The client closed stdin.
    StdinClosed,
    /// stdout is gone: nobody reads the answers any more.
    StdoutClosed,
}

/// A client request the gateway has not answered yet.
#[derive(Default)]
struct Flight {
    /// The session generation it was sent on; `None` while it is not sent (or known not taken).
    generation: Option<u64>,
    closer: Option<Closer>,
}

/// stdout and the flights table; shared by every thread.
pub struct Client {
    out: Mutex<Box<dyn Write + Send>>,
    flights: Mutex<HashMap<Id, Flight>>,
    stop: Sender<Stop>,
}

impl Client {
    pub fn new(out: Box<dyn Write + Send>, stop: Sender<Stop>) -> Client {
        Client {
            out: Mutex::new(out),
            flights: Mutex::new(HashMap::new()),
            stop,
        }
    }

    /// Writes one message as one line.
    fn write(&self, message: &[u8]) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let written = out
            .write_all(message)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if let Err(e) = written {
            log::debug!("stdout: {e}");
            let _ = self.stop.send(Stop::StdoutClosed);
        }
    }

    /// Relays one message from the gateway: a response only while its request is in flight,
    /// anything else (notifications, the gateway's own requests) always.
    pub fn relay(&self, message: Vec<u8>) {
        match message::peek(&message) {
            Ok(peeked) => match peeked.kind {
                Kind::Response { id } => {
                    if !self.answer(&id, message) {
                        log::debug!("dropped an answer to {} (not in flight)", id.json());
                    }
                }
                Kind::Request { .. } | Kind::Notification { .. } => {
                    self.write(&message::one_line(message));
                }
            },
            Err(why) => log::warn!(
                "dropped a message from the gateway that is not JSON-RPC: {}",
                why.message
            ),
        }
    }

    /// Writes `response` if `id` is still in flight (it no longer is afterwards).
    pub fn answer(&self, id: &Id, response: Vec<u8>) -> bool {
        let taken = self.lock().remove(id).is_some();
        if taken {
            self.write(&message::one_line(response));
        }
        taken
    }

    /// Answers `id` with an error, if it is still in flight.
    pub fn fail(&self, id: &Id, code: i64, why: &str) {
        if self.answer(id, message::error(id, code, why)) {
            log::warn!("request {} failed: {why}", id.json());
        }
    }

    /// Writes an error about a message that has no usable id (`id: null`).
    pub fn refuse(&self, code: i64, why: &str) {
        log::warn!("refused a message from the client: {why}");
        self.write(&crate::rpc::error_response(None, code, why));
    }

    /// The client sent request `id`.
    pub fn begin(&self, id: Id) {
        self.lock().insert(id, Flight::default());
    }

    /// Whether `id` still awaits its answer.
    pub fn in_flight(&self, id: &Id) -> bool {
        self.lock().contains_key(id)
    }

    /// `id` is about to go out on session `generation` over the connection `closer` stops.
    /// False if it is no longer in flight (cancelled, or failed meanwhile): do not send it.
    /// `closer` is `None` once the connection is no longer the request's own.
    pub fn sending(&self, id: &Id, generation: Option<u64>, closer: Option<Closer>) -> bool {
        match self.lock().get_mut(id) {
            Some(flight) => {
                flight.generation = generation;
                flight.closer = closer;
                true
            }
            None => false,
        }
    }

    /// `id` was not taken by the gateway (it was never sent, or its session was unknown): it
    /// belongs to no session until it is sent again.
    pub fn unsent(&self, id: &Id) {
        if let Some(flight) = self.lock().get_mut(id) {
            *flight = Flight::default();
        }
    }

    /// The client cancelled `id`: no answer is expected any more, so none is relayed from now on
    /// (the gateway may still answer it, with an error). Returns the closer of the request's
    /// own connection, to shut down once the cancellation has reached the gateway, so nothing
    /// waits for an answer that may never come.
    pub fn cancel(&self, id: &Id) -> Option<Closer> {
        self.lock().remove(id).and_then(|flight| flight.closer)
    }

    /// Session `generation` is lost: every call sent on it is answered with an error now.
    pub fn fail_generation(&self, generation: u64, code: i64, why: &str) {
        let lost: Vec<(Id, Flight)> = {
            let mut flights = self.lock();
            let ids: Vec<Id> = flights
                .iter()
                .filter(|(_, f)| f.generation == Some(generation))
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| flights.remove(&id).map(|f| (id, f)))
                .collect()
        };
        for (id, flight) in lost {
            log::warn!("request {} failed: {why}", id.json());
            self.write(&message::error(&id, code, why));
            if let Some(closer) = flight.closer {
                closer.shutdown();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Id, Flight>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn client() -> (Client, Sink) {
        let sink = Sink::default();
        let (tx, _rx) = crossbeam_channel::unbounded();
        (Client::new(Box::new(sink.clone()), tx), sink)
    }

    fn id(n: i64) -> Id {
        Id::from_value(&serde_json::json!(n)).unwrap()
    }

    fn text(sink: &Sink) -> String {
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn each_request_is_answered_once() {
        let (client, sink) = client();
        client.begin(id(1));
        client
            .relay(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#.to_vec());
        client.relay(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_vec());
        client.relay(br#"{"jsonrpc":"2.0","id":1,"result":{"again":true}}"#.to_vec());
        client.fail(&id(1), -32603, "late");
        client.relay(br#"{"jsonrpc":"2.0","id":"1","result":{}}"#.to_vec());
        assert_eq!(
            text(&sink),
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\
             {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n"
        );
    }

    #[test]
    fn a_lost_session_fails_only_its_own_calls() {
        let (client, sink) = client();
        for n in 1..=3 {
            client.begin(id(n));
        }
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = crate::downstream::remote::url::Url::parse(&format!(
            "http://{}/",
            socket.local_addr().unwrap()
        ))
        .unwrap();
        let conn = crate::downstream::remote::conn::Conn::connect(
            &url,
            None,
            crate::downstream::remote::conn::no_deadline(),
        )
        .unwrap();
        assert!(client.sending(&id(1), Some(7), Some(conn.closer())));
        assert!(client.sending(&id(2), Some(8), Some(conn.closer())));
        client.fail_generation(7, -32603, "lost");
        assert!(!client.in_flight(&id(1)));
        assert!(client.in_flight(&id(2)) && client.in_flight(&id(3)));
        assert!(!conn.reusable(), "the lost call's connection was shut down");
        assert_eq!(
            text(&sink),
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32603,\"message\":\"lost\"}}\n"
        );
        assert!(client.cancel(&id(3)).is_none(), "not sent yet");
        assert!(!client.sending(&id(3), Some(8), Some(conn.closer())));
    }
}
