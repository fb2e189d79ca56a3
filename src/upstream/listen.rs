//! `subscriptions/listen` (protocol 2026-07-28): a held response stream that replaces the 2025
//! GET stream and `resources/subscribe`.
//!
//! The stream is a session of its own (`Transport::Listen`) that no client can name: it lives as
//! long as its connection, and what the router sends every session (`list_changed` when the
//! registry changes, `resources/updated` for the URIs it subscribed, from every server) reaches it
//! through `to_session`, which lets through only what its `Filter` honoured and tags every frame
//! with the subscription id (the listen request's JSON-RPC id). The first frame is
//! `notifications/subscriptions/acknowledged` with the honoured filter; nothing comes before it.
//! Closing the stream ends the subscription (and its downstream resource subscriptions).

use super::session::Transport;
use super::{modern::Refusal, Outcome, Response, Router};
use crate::http::{self, Request};
use crate::job::Slot;
use crate::rpc::{self, codes, Id, Params};
use serde_json::{json, Value};
use std::time::Instant;

/// What a listen stream was opened for, as the gateway honours it.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The listen request's id: every frame's `io.modelcontextprotocol/subscriptionId`.
    pub id: Value,
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
    /// The resource URIs subscribed (only those a server that supports subscriptions offers).
    pub uris: Vec<String>,
}

const SUBSCRIPTION_KEY: &str = "io.modelcontextprotocol/subscriptionId";

impl Filter {
    /// The acknowledgement: the honoured filter (types the gateway cannot deliver left out).
    fn acknowledgement(&self) -> Vec<u8> {
        let mut honoured = serde_json::Map::new();
        for (key, on) in [
            ("toolsListChanged", self.tools),
            ("promptsListChanged", self.prompts),
            ("resourcesListChanged", self.resources),
        ] {
            if on {
                honoured.insert(key.into(), Value::Bool(true));
            }
        }
        if !self.uris.is_empty() {
            honoured.insert("resourceSubscriptions".into(), json!(self.uris));
        }
        let params = json!({"_meta": {SUBSCRIPTION_KEY: self.id}, "notifications": honoured});
        rpc::notification("notifications/subscriptions/acknowledged", Some(&params))
    }

    /// `message` as this stream carries it (tagged), or None when the filter keeps it out.
    pub fn frame(&self, message: &[u8]) -> Option<Vec<u8>> {
        let mut message: Value = serde_json::from_slice(message).ok()?;
        let wanted = match message.get("method").and_then(Value::as_str)? {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            // Sent only to the sessions subscribed to its URI.
            "notifications/resources/updated" => true,
            // Log messages and progress belong to a request's own stream, never here.
            _ => false,
        };
        if !wanted {
            return None;
        }
        let object = message.as_object_mut()?;
        let params = object
            .entry("params")
            .or_insert_with(|| Value::Object(Default::default()));
        let params = params.as_object_mut()?;
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Default::default()));
        meta.as_object_mut()?
            .insert(SUBSCRIPTION_KEY.into(), self.id.clone());
        Some(message.to_string().into_bytes())
    }
}

impl Router {
    /// `subscriptions/listen`: the connection becomes the subscription's stream.
    pub(super) fn listen(
        &mut self,
        conn: Slot,
        req: &Request,
        call: (Id, &Params),
        registry: &crate::registry::Snapshot,
        now: Instant,
    ) -> Outcome {
        let (id, params) = call;
        if !req.accepts("text/event-stream") {
            let refusal = Response::json(
                406,
                rpc::error_response(
                    Some(id.json()),
                    codes::INVALID_REQUEST,
                    "subscriptions/listen answers with an event stream: send Accept: text/event-stream",
                ),
            );
            return Outcome::Respond(refusal);
        }
        let asked = match params.get("notifications") {
            None => Value::Object(Default::default()),
            Some(asked @ Value::Object(_)) => asked,
            Some(_) => {
                return Outcome::Respond(
                    Refusal {
                        code: codes::INVALID_PARAMS,
                        message: "Invalid params: \"notifications\" must be an object".into(),
                        data: None,
                    }
                    .response(Some(&id)),
                )
            }
        };
        let on = |key: &str| asked.get(key).and_then(Value::as_bool) == Some(true);
        // What the profile the request came through offers (its view), not the whole catalog.
        let offered = registry.capabilities;
        let mut uris: Vec<String> = Vec::new();
        let mut routes = Vec::new();
        for uri in asked
            .get("resourceSubscriptions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let server = registry
                .route_uri(uri)
                .filter(|&server| registry.server_supports(server, "resources", Some("subscribe")));
            if let (Some(server), false) = (server, uris.iter().any(|u| u == uri)) {
                uris.push(uri.to_string());
                routes.push((server, uri.to_string()));
            }
        }
        let filter = Filter {
            id: id.to_value(),
            tools: on("toolsListChanged"),
            prompts: on("promptsListChanged") && offered.prompts,
            resources: on("resourcesListChanged") && offered.resources,
            uris,
        };
        if let Some(refusal) = self.session_cap() {
            return Outcome::Respond(refusal);
        }
        let session = match self.sessions.open(Transport::Listen, Some(conn), now) {
            Ok(session) => session,
            Err(e) => {
                log::error!("cannot create a session id: {e}");
                return Outcome::Respond(Response::rpc_error(
                    500,
                    codes::INTERNAL_ERROR,
                    "cannot open the subscription",
                ));
            }
        };
        let mut head = Vec::with_capacity(512);
        let cors = self.cors_headers(req);
        let cors: Vec<(&str, &str)> = cors.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http::response::write_sse_head(&mut head, &cors);
        http::sse::write_event(&mut head, Some("message"), None, &filter.acknowledgement());
        let state = self.sessions.get_mut(session).expect("just opened");
        state.initialized = true;
        state.used = true;
        state.subscriptions = filter.uris.iter().cloned().collect();
        state.listen = Some(filter);
        for (server, uri) in routes {
            self.count_subscription(server, uri, true);
        }
        Outcome::Stream { head, session }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> Filter {
        Filter {
            id: json!(7),
            tools: true,
            prompts: false,
            resources: false,
            uris: vec!["demo://readme".into()],
        }
    }

    #[test]
    fn the_acknowledgement_names_what_is_honoured() {
        let ack: Value = serde_json::from_slice(&filter().acknowledgement()).unwrap();
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
        assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_KEY], 7);
        assert_eq!(
            ack["params"]["notifications"],
            json!({"toolsListChanged": true, "resourceSubscriptions": ["demo://readme"]})
        );
    }

    #[test]
    fn frames_are_filtered_and_tagged() {
        let f = filter();
        let tools = rpc::notification::<()>("notifications/tools/list_changed", None);
        let framed: Value = serde_json::from_slice(&f.frame(&tools).unwrap()).unwrap();
        assert_eq!(framed["params"]["_meta"][SUBSCRIPTION_KEY], 7);
        let prompts = rpc::notification::<()>("notifications/prompts/list_changed", None);
        assert!(f.frame(&prompts).is_none(), "not asked for");
        let log = rpc::notification("notifications/message", Some(&json!({"level": "info"})));
        assert!(f.frame(&log).is_none(), "logs ride their request's stream");
        let updated = rpc::notification(
            "notifications/resources/updated",
            Some(&json!({"uri": "demo://readme", "_meta": {"x": 1}})),
        );
        let framed: Value = serde_json::from_slice(&f.frame(&updated).unwrap()).unwrap();
        assert_eq!(framed["params"]["uri"], "demo://readme");
        assert_eq!(
            framed["params"]["_meta"],
            json!({"x": 1, SUBSCRIPTION_KEY: 7})
        );
    }
}
