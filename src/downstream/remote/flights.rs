//! The calls in flight on one remote handle, by the request id the handle gave them: where each
//! call's messages go and which MCP client made it.
//!
//! A message from the server that arrives outside a call's own answer stream (an answer or progress
//! on the legacy stream, progress or a request on the standalone GET stream) finds its call here.
//! A server's request names no call, so it goes to a call only when that is unambiguous: exactly
//! one distinct client has calls in flight on the handle (calls without a client — REST, the
//! gateway's own — never take one). Otherwise it is refused, never guessed.
//!
//! A request routed to a call stays noted until it is answered: if the call ends first (the
//! client's answer would land in an inbox nobody reads), removing the call hands back those
//! requests so the server can be told, instead of waiting for an answer that never comes.
//!
//! Invariant: an entry lives exactly as long as its call (`RemoteCall` removes it on drop), so a
//! late answer finds nothing and is dropped. Pure bookkeeping: no I/O, no threads.

use crate::downstream::Inbound;
use crate::job::Slot;
use crossbeam_channel::Sender;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// One call in flight.
pub struct Flight {
    /// The call's inbox.
    pub tx: Sender<Inbound>,
    /// The MCP session that made the call; `None` for REST and the gateway's own requests.
    pub client: Option<Slot>,
}

/// Where a request from the server that names no call should go.
#[derive(Debug)]
pub enum Taker {
    /// Into this call's inbox (the oldest call of the one client with calls in flight).
    Call(Sender<Inbound>),
    /// No client has a call in flight here.
    Nobody,
    /// Calls of this many distinct clients are in flight: the request cannot be attributed.
    Ambiguous(usize),
}

#[derive(Default)]
pub struct Flights {
    /// By request id; ids grow, so the first entry of a client is its oldest call.
    calls: BTreeMap<u64, Flight>,
    /// Server requests routed to a call and not answered yet: by the request's id (as JSON
    /// text, since `1` and `"1"` differ), the id itself and the call's.
    routed: HashMap<String, (Value, u64)>,
}

impl Flights {
    pub fn insert(&mut self, id: u64, flight: Flight) {
        self.calls.insert(id, flight);
    }

    /// Forgets call `id`; returns the ids of server requests routed to it and still unanswered.
    pub fn remove(&mut self, id: u64) -> Vec<Value> {
        self.calls.remove(&id);
        let mut orphans = Vec::new();
        self.routed.retain(|_, (request, call)| {
            if *call == id {
                orphans.push(request.clone());
            }
            *call != id
        });
        orphans
    }

    /// The server's request `request` was answered (by whoever).
    pub fn answered(&mut self, request: &Value) {
        if !self.routed.is_empty() {
            self.routed.remove(&request.to_string());
        }
    }

    /// The inbox of call `id`, if it is still in flight.
    pub fn inbox(&self, id: u64) -> Option<Sender<Inbound>> {
        self.calls.get(&id).map(|f| f.tx.clone())
    }

    /// Who takes the server's request `request`, which names no call (see the module docs); a
    /// call that takes it is noted as owing its answer.
    pub fn route(&mut self, request: &Value) -> Taker {
        let mut first: Option<(u64, &Flight)> = None;
        let mut clients: Vec<Slot> = Vec::new();
        for (id, flight) in &self.calls {
            let Some(client) = flight.client else {
                continue;
            };
            if !clients.contains(&client) {
                clients.push(client);
            }
            if first.is_none() {
                first = Some((*id, flight));
            }
        }
        match (clients.len(), first) {
            (1, Some((call, flight))) => {
                let tx = flight.tx.clone();
                self.routed
                    .insert(request.to_string(), (request.clone(), call));
                Taker::Call(tx)
            }
            (0, _) | (_, None) => Taker::Nobody,
            (n, _) => Taker::Ambiguous(n),
        }
    }

    /// Tells every call the handle is gone and forgets them.
    pub fn close_all(&mut self) {
        self.routed.clear();
        for (_, flight) in std::mem::take(&mut self.calls) {
            let _ = flight.tx.send(Inbound::Closed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{unbounded, Receiver};

    fn flight(client: Option<usize>) -> (Flight, Receiver<Inbound>) {
        let (tx, rx) = unbounded();
        let client = client.map(|key| Slot { key, gen: 1 });
        (Flight { tx, client }, rx)
    }

    #[test]
    fn a_request_goes_to_the_oldest_call_of_the_only_client() {
        let mut flights = Flights::default();
        let (rest, _rest_rx) = flight(None);
        let (older, older_rx) = flight(Some(4));
        let (newer, newer_rx) = flight(Some(4));
        flights.insert(1, rest);
        flights.insert(2, older);
        flights.insert(3, newer);
        let Taker::Call(tx) = flights.route(&Value::from(1)) else {
            panic!("one client: unambiguous")
        };
        tx.send(Inbound::Cancelled).unwrap();
        assert!(older_rx.try_recv().is_ok());
        assert!(newer_rx.try_recv().is_err());
    }

    #[test]
    fn no_client_or_two_clients_take_nothing() {
        let mut flights = Flights::default();
        let request = Value::from("r");
        assert!(matches!(flights.route(&request), Taker::Nobody));
        let (rest, _r) = flight(None);
        flights.insert(1, rest);
        assert!(matches!(flights.route(&request), Taker::Nobody));
        let (a, _a) = flight(Some(1));
        let (b, _b) = flight(Some(2));
        flights.insert(2, a);
        flights.insert(3, b);
        assert!(matches!(flights.route(&request), Taker::Ambiguous(2)));
        assert!(flights.remove(2).is_empty());
        assert!(matches!(flights.route(&request), Taker::Call(_)));
    }

    #[test]
    fn a_routed_request_still_unanswered_is_handed_back_when_its_call_ends() {
        let mut flights = Flights::default();
        let (a, _a) = flight(Some(1));
        flights.insert(5, a);
        let (one, text_one) = (Value::from(1), Value::from("1"));
        assert!(matches!(flights.route(&one), Taker::Call(_)));
        assert!(matches!(flights.route(&text_one), Taker::Call(_)));
        // `1` is answered; `"1"` (another id) is not.
        flights.answered(&one);
        assert_eq!(flights.remove(5), vec![text_one.clone()]);
        // Gone with its call: nothing is handed back twice.
        assert!(flights.remove(5).is_empty());
    }

    #[test]
    fn closing_tells_every_call() {
        let mut flights = Flights::default();
        let (a, a_rx) = flight(Some(1));
        flights.insert(7, a);
        assert!(flights.inbox(7).is_some());
        flights.close_all();
        assert!(flights.calls.is_empty());
        assert!(matches!(a_rx.try_recv(), Ok(Inbound::Closed)));
        assert!(flights.inbox(7).is_none());
    }
}
