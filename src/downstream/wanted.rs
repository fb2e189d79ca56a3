//! What every child of a server must be told beyond its handshake, because clients asked for it:
//! the log level (the most verbose any session set) and the resources sessions subscribe to.
//!
//! Subscriptions live in a server process, and the pool's processes are interchangeable, so every
//! live child of the server is subscribed (and each new one right after its handshake); the router
//! folds the duplicate updates. These requests go out of band: sent on a child whatever call it is
//! serving, their answers dropped.

use super::stdio::StdioChild;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long one of these requests may wait for pipe space.
const SEND_LIMIT: Duration = Duration::from_secs(1);

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

    /// Brings a freshly initialized child up to date.
    pub fn apply(&self, child: &StdioChild, capabilities: &Map<String, Value>) {
        if let Some(level) = self.level {
            if capabilities.contains_key("logging") {
                send_level(child, level);
            }
        }
        for uri in &self.subscriptions[child.server] {
            send_subscription(child, uri, true);
        }
    }
}

/// `logging/setLevel`, answer ignored.
pub fn send_level(child: &StdioChild, level: &str) {
    send(child, "logging/setLevel", json!({ "level": level }));
}

/// `resources/subscribe` or `resources/unsubscribe`, answer ignored.
pub fn send_subscription(child: &StdioChild, uri: &str, subscribe: bool) {
    let method = if subscribe {
        "resources/subscribe"
    } else {
        "resources/unsubscribe"
    };
    send(child, method, json!({ "uri": uri }));
}

fn send(child: &StdioChild, method: &str, params: Value) {
    let Value::Object(params) = params else {
        return;
    };
    // Dropping the call at once: its answer finds nobody waiting and is discarded.
    let deadline = Instant::now() + SEND_LIMIT;
    if let Err(e) = child.begin(method, Some(params), false, deadline, false, None) {
        log::debug!("{}: could not send {method}: {e:?}", child.label());
    }
}
