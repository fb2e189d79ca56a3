//! The session table: every connected MCP client, in a slab, findable by its random public id.
//!
//! A session's slab key plus generation travels with its jobs; when the session ends, late answers for
//! it find a different generation (or nothing) and are dropped.

use crate::job::{CallControl, Inbox, Signal, Slot};
use crate::rpc::Id;
use serde_json::{json, Map, Value};
use slab::Slab;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// Which transport a session came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `GET /sse` + `POST /messages`: the session lives as long as its stream.
    LegacySse,
    /// `/mcp`: the session lives until `DELETE`, or until unused for `sessionTimeout`.
    Streamable,
    /// A 2026-07-28 `subscriptions/listen` stream: a session only the gateway knows, living as
    /// long as its stream, that receives what its filter lets through (`listen.rs`).
    Listen,
}

impl Transport {
    /// Its `transport` label in `/metrics` and the audit log.
    pub fn label(self) -> &'static str {
        match self {
            Transport::LegacySse => "legacy_sse",
            Transport::Streamable => "streamable_http",
            Transport::Listen => "listen",
        }
    }
}

/// One client session.
#[derive(Debug)]
pub struct Session {
    /// Public id (hex of 16 random bytes from the OS).
    pub id: String,
    pub gen: u64,
    pub transport: Transport,
    /// The connection carrying the session's server→client SSE stream, if one is open (always, for
    /// legacy SSE).
    pub stream: Option<Slot>,
    /// `initialize` was answered.
    pub initialized: bool,
    /// The negotiated protocol version.
    pub protocol_version: Option<String>,
    /// Last time the client used the session.
    pub last_seen: Instant,
    /// The client sent something after `initialize` (a request, a notification, a GET stream).
    pub used: bool,
    /// What the client said it can do in `initialize` (sampling, elicitation, roots).
    pub client_capabilities: Arc<Map<String, Value>>,
    /// `clientInfo.name` and `.version` from `initialize` (for the audit log).
    pub client_info: (Option<String>, Option<String>),
    /// The client's requests in flight, by its own id: how `notifications/cancelled` finds them.
    pub calls: HashMap<Id, Arc<CallControl>>,
    /// Requests of servers forwarded to this client, by the id the gateway gave them.
    pub asks: HashMap<String, Ask>,
    next_ask: u64,
    /// Resource URIs the client subscribed to.
    pub subscriptions: HashSet<String>,
    /// `logging/setLevel` of the client, as a rank in `mcp::LOG_LEVELS`; None: no log messages.
    pub log_level: Option<usize>,
    /// For a session with a signed id (`signed`): when it was opened (Unix seconds).
    pub opened: Option<u64>,
    /// The profile whose URL opened the session: the only one it may be used through.
    pub profile: String,
    /// The client's `clientInfo` names one that searches tools itself (`toolExposure: auto`).
    pub client_searches: bool,
    /// For a `subscriptions/listen` stream: what it was opened for.
    pub listen: Option<super::listen::Filter>,
    /// Whose session it is, under `gateway.oauth`: the tag of the token's subject that opened
    /// it (`oauth::subject_tag`); a request with another's token does not find it.
    pub owner: Option<String>,
}

/// A server's request waiting for this client's answer.
#[derive(Debug)]
pub struct Ask {
    /// The request's id as the server sent it.
    pub child_id: Value,
    /// The call that carries it.
    pub reply: Inbox,
}

impl Session {
    /// Registers a server's request to this client; returns the id to send it with.
    pub fn ask(&mut self, child_id: Value, reply: Inbox) -> String {
        self.next_ask += 1;
        let id = format!("gw-{}", self.next_ask);
        self.asks.insert(id.clone(), Ask { child_id, reply });
        id
    }

    /// The client answered (or will never answer) a forwarded request.
    pub fn answer_ask(&mut self, id: &str, outcome: Result<Value, Value>) -> bool {
        match self.asks.remove(id) {
            Some(ask) => {
                ask.reply.post(Signal::ClientAnswer {
                    child_id: ask.child_id,
                    outcome,
                });
                true
            }
            None => false,
        }
    }

    /// Whether a Streamable HTTP session is to be forgotten: nothing open or running, and unused
    /// for `timeout` — or for `unused_timeout` when the client never used it after `initialize`.
    /// Legacy sessions live as long as their stream.
    pub fn expired(
        &self,
        now: Instant,
        timeout: std::time::Duration,
        unused_timeout: std::time::Duration,
    ) -> bool {
        let idle = now.saturating_duration_since(self.last_seen);
        let never_used = !self.used && !self.initialized;
        self.transport == Transport::Streamable
            && self.stream.is_none()
            && self.calls.is_empty()
            && self.asks.is_empty()
            && (idle > timeout || (never_used && idle > unused_timeout))
    }

    /// The session is ending: cancel its calls and tell servers no answer will come.
    fn abandon(&mut self) {
        for control in self.calls.values() {
            control.cancel();
        }
        let ids: Vec<String> = self.asks.keys().cloned().collect();
        for id in ids {
            self.answer_ask(
                &id,
                Err(json!({"code": crate::rpc::codes::INTERNAL_ERROR, "message": "the client went away"})),
            );
        }
    }
}

#[derive(Debug, Default)]
pub struct Sessions {
    slab: Slab<Session>,
    by_id: HashMap<String, usize>,
    next_gen: u64,
    /// Signed ids of sessions that ended here (DELETE, expiry), with when they were opened: never
    /// restored from their id (`signed`) while this process runs.
    ended: HashMap<String, u64>,
}

/// Ended signed ids kept before the ones past `signed::MAX_AGE` are dropped.
const ENDED_PRUNE_AT: usize = 1 << 16;

impl Sessions {
    /// Opens a session; returns its slot.
    pub fn open(
        &mut self,
        transport: Transport,
        stream: Option<Slot>,
        now: Instant,
    ) -> std::io::Result<Slot> {
        let id = random_id()?;
        self.next_gen += 1;
        let gen = self.next_gen;
        let key = self.slab.insert(Session {
            id: id.clone(),
            gen,
            transport,
            stream,
            initialized: false,
            protocol_version: None,
            last_seen: now,
            used: false,
            client_capabilities: Default::default(),
            client_info: (None, None),
            calls: HashMap::new(),
            asks: HashMap::new(),
            next_ask: 0,
            subscriptions: HashSet::new(),
            log_level: None,
            opened: None,
            profile: super::profiles::DEFAULT_PROFILE.to_string(),
            client_searches: false,
            listen: None,
            owner: None,
        });
        self.by_id.insert(id, key);
        Ok(Slot { key, gen })
    }

    pub fn get(&self, slot: Slot) -> Option<&Session> {
        self.slab.get(slot.key).filter(|s| s.gen == slot.gen)
    }

    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut Session> {
        self.slab.get_mut(slot.key).filter(|s| s.gen == slot.gen)
    }

    /// Finds a session by its public id.
    pub fn find(&self, id: &str) -> Option<Slot> {
        let key = *self.by_id.get(id)?;
        Some(Slot {
            key,
            gen: self.slab[key].gen,
        })
    }

    /// Ends a session: its calls are cancelled and pending server requests refused.
    pub fn close(&mut self, slot: Slot) -> Option<Session> {
        self.get(slot)?;
        let mut session = self.slab.remove(slot.key);
        self.by_id.remove(&session.id);
        if let Some(opened) = session.opened {
            if self.ended.len() >= ENDED_PRUNE_AT {
                let oldest =
                    super::signed::unix_now().saturating_sub(super::signed::MAX_AGE.as_secs());
                self.ended.retain(|_, opened| *opened >= oldest);
            }
            self.ended.insert(session.id.clone(), opened);
        }
        session.abandon();
        Some(session)
    }

    /// Gives an open session a new public id (a signed one, once `initialize` told what goes
    /// into it); `opened` is when it was opened, for a signed id.
    pub fn rename(&mut self, slot: Slot, id: String, opened: Option<u64>) {
        let Some(session) = self.slab.get_mut(slot.key).filter(|s| s.gen == slot.gen) else {
            return;
        };
        self.by_id.remove(&session.id);
        session.id = id.clone();
        session.opened = opened;
        self.by_id.insert(id, slot.key);
    }

    /// Whether a session with this id ended here.
    pub fn ended_here(&self, id: &str) -> bool {
        self.ended.contains_key(id)
    }

    /// Serves a Streamable HTTP session this process has not seen, from its signed id: initialized
    /// with what its `initialize` negotiated.
    pub fn restore(
        &mut self,
        id: &str,
        claims: super::signed::Claims,
        now: Instant,
    ) -> std::io::Result<Slot> {
        let slot = self.open(Transport::Streamable, None, now)?;
        self.rename(slot, id.to_owned(), Some(claims.opened));
        let session = &mut self.slab[slot.key];
        session.initialized = true;
        session.used = true;
        session.protocol_version = Some(claims.protocol_version);
        session.client_capabilities = Arc::new(claims.capabilities);
        session.profile = claims.profile;
        session.owner = claims.owner;
        session.client_searches = claims.client_searches;
        Ok(slot)
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Slot, &Session)> {
        self.slab
            .iter()
            .map(|(key, s)| (Slot { key, gen: s.gen }, s))
    }
}

/// 128 random bits from the OS, as 32 hex digits.
pub fn random_id() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    random_bytes(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Fills `bytes` from the OS's random source (`getrandom`; `getentropy` where there is none).
pub fn random_bytes(bytes: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < bytes.len() {
        let want = bytes.len() - filled;
        // SAFETY: getrandom writes at most `want` bytes into the buffer we own.
        #[cfg(target_os = "linux")]
        let n = unsafe { libc::getrandom(bytes[filled..].as_mut_ptr().cast(), want, 0) };
        // SAFETY: getentropy fills exactly `len` (at most 256) bytes of the buffer we own.
        #[cfg(not(target_os = "linux"))]
        let n = {
            let len = want.min(256);
            match unsafe { libc::getentropy(bytes[filled..].as_mut_ptr().cast(), len) } {
                0 => len as isize,
                _ => -1,
            }
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        } else {
            filled += n as usize;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_hex() {
        let (a, b) = (random_id().unwrap(), random_id().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn sessions_never_used_expire_early() {
        use std::time::Duration;
        let mut sessions = Sessions::default();
        let t0 = Instant::now();
        let slot = sessions.open(Transport::Streamable, None, t0).unwrap();
        let (timeout, unused) = (Duration::from_secs(1800), Duration::from_secs(60));
        let at = |s: u64| t0 + Duration::from_secs(s);
        let session = sessions.get_mut(slot).unwrap();
        assert!(!session.expired(at(59), timeout, unused));
        assert!(session.expired(at(61), timeout, unused), "never used");
        session.used = true;
        assert!(
            !session.expired(at(61), timeout, unused),
            "used: sessionTimeout"
        );
        assert!(session.expired(at(1801), timeout, unused));
        session.used = false;
        session.initialized = true;
        assert!(
            !session.expired(at(61), timeout, unused),
            "initialized counts as use"
        );
        session.stream = Some(Slot { key: 1, gen: 1 });
        assert!(
            !session.expired(at(5000), timeout, unused),
            "a stream is open"
        );
        let legacy = sessions.open(Transport::LegacySse, None, t0).unwrap();
        assert!(!sessions
            .get(legacy)
            .unwrap()
            .expired(at(5000), timeout, unused));
    }

    #[test]
    fn reused_slots_get_new_generations() {
        let mut sessions = Sessions::default();
        let stream = Some(Slot { key: 0, gen: 1 });
        let now = Instant::now();
        let first = sessions.open(Transport::LegacySse, stream, now).unwrap();
        let id = sessions.get(first).unwrap().id.clone();
        assert_eq!(sessions.find(&id), Some(first));
        sessions.close(first).unwrap();
        assert!(sessions.find(&id).is_none());
        let second = sessions.open(Transport::Streamable, None, now).unwrap();
        assert_eq!(second.key, first.key);
        assert!(
            sessions.get(first).is_none(),
            "a stale slot must not see the new session"
        );
        assert!(sessions.get(second).is_some());
    }
}
