//! Reading what a server sends, whatever carried it (a child's stdout line, an SSE event, an HTTP
//! body): which kind of JSON-RPC message it is, and what a notification means for the gateway.

use super::child_io::ChildEvent;
use super::Answer;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One message from a server, routed by its kind; payloads stay raw where they are only relayed.
#[derive(Debug)]
pub enum Message {
    /// The server asks something (`ping`, `roots/list`, sampling…).
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    Notification {
        method: String,
        params: Option<Map<String, Value>>,
    },
    /// The answer to one of our requests.
    Response { id: Value, outcome: Answer },
}

/// The parts of a JSON-RPC message we need to route it.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<Value>,
    method: Option<String>,
    params: Option<Map<String, Value>>,
    result: Option<Box<RawValue>>,
    error: Option<Box<RawValue>>,
}

impl Message {
    /// Parses one message; `None` for anything that is not a JSON-RPC request, notification or
    /// response (the caller logs it with its own context).
    pub fn parse(bytes: &[u8]) -> Option<Message> {
        let envelope: Envelope = serde_json::from_slice(bytes).ok()?;
        match (envelope.method, envelope.id) {
            (Some(method), Some(id)) => Some(Message::Request {
                id,
                method,
                params: envelope.params.map(Value::Object),
            }),
            (Some(method), None) => Some(Message::Notification {
                method,
                params: envelope.params,
            }),
            (None, Some(id)) => {
                let outcome = match (envelope.result, envelope.error) {
                    (_, Some(error)) => Err(error),
                    (Some(result), None) => Ok(result),
                    (None, None) => Ok(RawValue::from_string("null".into()).expect("valid JSON")),
                };
                Some(Message::Response { id, outcome })
            }
            (None, None) => None,
        }
    }
}

/// What a server's notification (other than progress, which belongs to a call) means for the
/// gateway. `notifications/message` is also logged under the handle's `label`.
pub fn notification_event(
    server: usize,
    serial: u64,
    label: &str,
    method: &str,
    params: Option<Map<String, Value>>,
) -> Option<ChildEvent> {
    match method {
        "notifications/message" | "notifications/resources/updated" => {
            let mut params = params.unwrap_or_default();
            // A 2026-07-28 server's subscription id names the gateway's own listen: no client's.
            if let Some(Value::Object(meta)) = params.get_mut("_meta") {
                meta.remove("io.modelcontextprotocol/subscriptionId");
                if meta.is_empty() {
                    params.remove("_meta");
                }
            }
            if method == "notifications/message" {
                log_server_message(label, &params);
            }
            Some(ChildEvent::ForClients {
                server,
                method: method.to_string(),
                params,
            })
        }
        "notifications/tools/list_changed"
        | "notifications/resources/list_changed"
        | "notifications/prompts/list_changed" => {
            let kind = method
                .trim_start_matches("notifications/")
                .trim_end_matches("/list_changed");
            Some(ChildEvent::ListChanged {
                server,
                serial,
                kind: kind.to_string(),
            })
        }
        _ => {
            log::debug!("{label}: notification {method}");
            None
        }
    }
}

/// A server's `notifications/message` in the gateway's own log, under the handle's `label`.
pub fn log_server_message(label: &str, params: &Map<String, Value>) {
    let level = match params.get("level").and_then(Value::as_str) {
        Some("debug") => log::Level::Debug,
        Some("info" | "notice") => log::Level::Info,
        Some("warning") => log::Level::Warn,
        _ => log::Level::Error,
    };
    let data = params.get("data").map(|d| match d {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let logger = params.get("logger").and_then(Value::as_str).unwrap_or("-");
    log::log!(target: "mcp_gateway::child", level, "{label} [{logger}]: {}", data.unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_apart() {
        let parse = |s: &str| Message::parse(s.as_bytes());
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Some(Message::Request { .. })
        ));
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#),
            Some(Message::Notification { .. })
        ));
        match parse(r#"{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"x"}}"#) {
            Some(Message::Response {
                id,
                outcome: Err(e),
            }) => {
                assert_eq!(id, "a");
                assert_eq!(e.get(), r#"{"code":1,"message":"x"}"#);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(r#"{"jsonrpc":"2.0"}"#).is_none());
        assert!(parse("not json").is_none());
    }

    #[test]
    fn list_changed_names_its_kind() {
        let event = notification_event(2, 7, "s#7", "notifications/prompts/list_changed", None);
        assert_eq!(
            event,
            Some(ChildEvent::ListChanged {
                server: 2,
                serial: 7,
                kind: "prompts".into()
            })
        );
        assert_eq!(
            notification_event(0, 1, "s#1", "notifications/other", None),
            None
        );
    }
}
