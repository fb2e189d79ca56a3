//! What every handle of a server must be told beyond its handshake, because clients asked for it:
//! the log level (the most verbose any session set) and the resources sessions subscribe to.
//!
//! Subscriptions live in a server process (or remote session), and the pool's handles are
//! interchangeable, so every live handle of the server is subscribed (and each new one right after
//! its handshake); the router folds the duplicate updates. These requests go out of band: sent on a
//! handle whatever call it is serving, their answers dropped. A 2026-07-28 handle is told the same
//! differently (`send`): its subscriptions become part of its `subscriptions/listen`.

use super::Requester;
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[derive(Debug, Default)]
pub struct Wanted {
    pub level: Option<&'static str>,
    /// Per server index.
    pub subscriptions: Vec<BTreeSet<String>>,
}

impl Wanted {
    pub fn new(servers: usize) -> Wanted {
        Wanted {
            level: None,
            subscriptions: vec![BTreeSet::new(); servers],
        }
    }

    /// Brings a freshly initialized handle of server `server` up to date; `logging`: the server
    /// offers the logging capability.
    pub fn apply(&self, handle: &dyn Requester, server: usize, logging: bool) {
        if let (Some(level), true) = (self.level, logging) {
            send_level(handle, level);
        }
        for uri in &self.subscriptions[server] {
            send_subscription(handle, uri, true);
        }
    }
}

/// `logging/setLevel`, answer ignored.
pub fn send_level(handle: &dyn Requester, level: &str) {
    send(handle, "logging/setLevel", json!({ "level": level }));
}

/// `resources/subscribe` or `resources/unsubscribe`, answer ignored.
pub fn send_subscription(handle: &dyn Requester, uri: &str, subscribe: bool) {
    let method = if subscribe {
        "resources/subscribe"
    } else {
        "resources/unsubscribe"
    };
    send(handle, method, json!({ "uri": uri }));
}

/// A 2026-07-28 handle has no `logging/setLevel` (the level travels with each call) and no
/// `resources/subscribe` (its `subscriptions/listen` carries the resources instead).
fn send(handle: &dyn Requester, method: &str, params: Value) {
    let Value::Object(params) = params else {
        return;
    };
    if !handle.modern() {
        handle.send_unawaited(method, params);
    } else if let Some(change) = super::era::listen_change(method, &params) {
        handle.listen(change);
    }
}
