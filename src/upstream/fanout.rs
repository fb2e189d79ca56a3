//! What reaches sessions without their asking: a server's own notifications (log messages to the
//! sessions that asked for that level, resource updates to their subscribers), `list_changed` when
//! the registry changes, and a server's requests to the client whose call is in flight.

use super::*;

impl Router {
    /// A notification a server sent on its own: log messages go to sessions that asked for that
    /// level, resource updates to the sessions subscribed to the URI.
    pub fn server_notification(
        &mut self,
        server: usize,
        method: &str,
        mut params: Map<String, Value>,
        now: Instant,
    ) {
        let targets: Vec<Slot> = match method {
            "notifications/message" => {
                let rank = params
                    .get("level")
                    .and_then(Value::as_str)
                    .and_then(mcp::log_rank)
                    .unwrap_or(0);
                mcp::attribute_log(&self.servers.configs[server].name, &mut params);
                self.sessions
                    .iter()
                    .filter(|(_, s)| s.log_level.is_some_and(|level| level <= rank))
                    .map(|(slot, _)| slot)
                    .collect()
            }
            "notifications/resources/updated" => {
                let Some(uri) = params.get("uri").and_then(Value::as_str) else {
                    return;
                };
                let recent = self
                    .last_update
                    .get(uri)
                    .is_some_and(|at| now.saturating_duration_since(*at) < UPDATE_FOLD);
                if recent {
                    return;
                }
                self.last_update
                    .retain(|_, at| now.saturating_duration_since(*at) < UPDATE_FOLD);
                self.last_update.insert(uri.to_string(), now);
                self.sessions
                    .iter()
                    .filter(|(_, s)| s.subscriptions.contains(uri))
                    .map(|(slot, _)| slot)
                    .collect()
            }
            "notifications/tools/list_changed"
            | "notifications/prompts/list_changed"
            | "notifications/resources/list_changed" => return self.tell_all(&[method]),
            _ => return,
        };
        let json = rpc::notification(method, Some(&params));
        for session in targets {
            self.to_session(session, &json);
        }
    }

    /// A message for a session's stream, as an SSE `message` event. Dropped when the session has no
    /// stream open (a Streamable HTTP client that never opened its GET stream).
    pub fn to_session(&mut self, session: Slot, json: &[u8]) {
        let Some(state) = self.sessions.get(session) else {
            return;
        };
        let tagged;
        let json = match &state.listen {
            // A listen stream gets only what it asked for, tagged with its subscription id.
            Some(filter) => match filter.frame(json) {
                Some(frame) => {
                    tagged = frame;
                    &tagged[..]
                }
                None => return,
            },
            None => json,
        };
        if let Some(stream) = state.stream {
            let mut event = Vec::with_capacity(json.len() + 24);
            crate::http::sse::write_event(&mut event, Some("message"), None, json);
            self.outbox.push(Outgoing::Send(stream, event));
        }
    }

    /// A server asks the client something during a call. Returns the request to send, or None when
    /// the client cannot answer (the server has been told why).
    pub fn client_request(
        &mut self,
        session: Slot,
        child_id: Value,
        method: &str,
        params: Option<Value>,
        reply: Inbox,
    ) -> Option<Vec<u8>> {
        let refuse = |reply: &Inbox, child_id: Value, why: String| {
            let error = serde_json::json!({"code": rpc::codes::METHOD_NOT_FOUND, "message": why});
            reply.post(Signal::ClientAnswer {
                child_id,
                outcome: Err(error),
            });
        };
        let Some(state) = self.sessions.get_mut(session) else {
            refuse(&reply, child_id, "the client went away".into());
            return None;
        };
        let capability = match method {
            "sampling/createMessage" => "sampling",
            "elicitation/create" => "elicitation",
            _ => "roots",
        };
        if !state.client_capabilities.contains_key(capability) {
            refuse(
                &reply,
                child_id,
                format!("the client did not declare the {capability} capability, so it cannot answer {method}"),
            );
            return None;
        }
        let id = state.ask(child_id, reply);
        let mut request = serde_json::Map::new();
        request.insert("jsonrpc".into(), "2.0".into());
        request.insert("id".into(), Value::String(id));
        request.insert("method".into(), method.into());
        if let Some(params) = params {
            request.insert("params".into(), params);
        }
        Some(Value::Object(request).to_string().into_bytes())
    }

    /// A forwarded request could not be delivered (the HTTP request it rode on cannot stream).
    pub fn client_request_failed(&mut self, session: Slot, request: &[u8], why: &str) {
        let id = serde_json::from_slice::<Value>(request)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_string));
        if let (Some(state), Some(id)) = (self.sessions.get_mut(session), id) {
            let error = serde_json::json!({"code": rpc::codes::INTERNAL_ERROR, "message": why});
            state.answer_ask(&id, Err(error));
        }
    }

    /// Installs a new registry; sessions hear which lists changed, held requests are tried again.
    pub fn set_registry(&mut self, registry: Arc<Snapshot>, now: Instant) {
        let mut methods: Vec<&str> = registry
            .changed_lists(&self.registry)
            .into_iter()
            .map(|kind| match kind {
                ListKind::Tools => "notifications/tools/list_changed",
                ListKind::Prompts => "notifications/prompts/list_changed",
                ListKind::Resources | ListKind::Templates => "notifications/resources/list_changed",
            })
            .collect();
        methods.dedup();
        self.registry = registry;
        self.take_servers();
        self.tell_all(&methods);
        self.retry_held(now);
    }

    /// Takes the newest server table (a reload may have published one before this snapshot).
    /// Subscriptions counted on a slot a reload retired move to the slot that now serves the
    /// server of that name (the supervisor moved them downstream the same way), or are forgotten
    /// with the server.
    fn take_servers(&mut self) {
        let servers = self.live.get();
        if servers.slots() == self.servers.slots() && servers.current == self.servers.current {
            self.servers = servers;
            return;
        }
        let moved: Vec<((usize, String), usize)> = self
            .subscribers
            .iter()
            .filter(|((slot, _), _)| !servers.is_current(*slot))
            .map(|(key, &count)| (key.clone(), count))
            .collect();
        for ((slot, uri), count) in moved {
            self.subscribers.remove(&(slot, uri.clone()));
            let name = &servers.configs[slot].name;
            if let Some((now, _, _)) = servers.in_force().find(|(_, c, _)| &c.name == name) {
                *self.subscribers.entry((now, uri)).or_insert(0) += count;
            }
        }
        self.servers = servers;
    }

    /// Sends parameterless notifications to every initialized session.
    fn tell_all(&mut self, methods: &[&str]) {
        let targets: Vec<Slot> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.initialized)
            .map(|(slot, _)| slot)
            .collect();
        for method in methods {
            let note = rpc::notification::<()>(method, None);
            for &session in &targets {
                self.to_session(session, &note);
            }
        }
    }
}
