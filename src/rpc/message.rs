//! Classifying one message a client sent: request, notification or response — or why it is invalid.

use super::codes::{INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR};
use super::params::{NotParams, Params};
use serde_json::value::RawValue;
use serde_json::Value;

/// A request id exactly as the client wrote it (JSON text of a string or an integer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id(String);

impl Id {
    /// The JSON text to put back on the wire.
    pub fn json(&self) -> &str {
        &self.0
    }

    /// Checks that `value` is a legal MCP id (a string or an integer; never null) and keeps its text.
    pub fn from_value(value: &Value) -> Option<Id> {
        match value {
            Value::String(_) => Some(Id(value.to_string())),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(Id(n.to_string())),
            _ => None,
        }
    }

    /// The value form, for building JSON with serde.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

/// A valid message from a client.
#[derive(Debug, Clone)]
pub enum Incoming {
    Request {
        id: Id,
        method: String,
        params: Option<Params>,
    },
    Notification {
        method: String,
        params: Option<Params>,
    },
    /// An answer to a request the gateway sent the client.
    Response {
        id: Id,
        outcome: Result<Value, Value>,
    },
}

/// Why a message is not acceptable, ready to become a JSON-RPC error.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub code: i64,
    pub message: String,
    /// The id, when one could be recovered, so the error can be answered in the request's place.
    pub id: Option<Id>,
}

impl Invalid {
    fn new(code: i64, message: impl Into<String>, id: Option<Id>) -> Invalid {
        Invalid {
            code,
            message: message.into(),
            id,
        }
    }
}

/// Parses and validates one JSON-RPC 2.0 message. Only the envelope is parsed; `params` stay raw.
pub fn classify(body: &[u8]) -> Result<Incoming, Invalid> {
    let object = match Params::parse(body) {
        Ok(object) => object,
        Err(NotParams::Malformed(e)) => {
            return Err(Invalid::new(PARSE_ERROR, format!("Parse error: {e}"), None))
        }
        Err(NotParams::NotAnObject) if body.trim_ascii_start().starts_with(b"[") => {
            return Err(Invalid::new(
                INVALID_REQUEST,
                "Invalid Request: JSON-RPC batches are not supported; send one message per request",
                None,
            ))
        }
        Err(NotParams::NotAnObject) => {
            return Err(Invalid::new(
                INVALID_REQUEST,
                "Invalid Request: expected a JSON-RPC message object",
                None,
            ))
        }
    };
    let id = match object.get("id") {
        None if !object.contains("id") => None,
        raw => match raw.as_ref().and_then(Id::from_value) {
            Some(id) => Some(id),
            None => {
                let shown = object.raw("id").map(RawValue::get).unwrap_or("?");
                return Err(Invalid::new(
                    INVALID_REQUEST,
                    format!("Invalid Request: \"id\" must be a string or an integer, not {shown}"),
                    None,
                ));
            }
        },
    };
    if object.raw("jsonrpc").map(RawValue::get) != Some("\"2.0\"") {
        return Err(Invalid::new(
            INVALID_REQUEST,
            "Invalid Request: \"jsonrpc\" must be \"2.0\"",
            id,
        ));
    }
    match object.get("method") {
        Some(Value::String(method)) => {
            let params = match object.object("params") {
                None => None,
                Some(_) if object.raw("params").map(RawValue::get) == Some("null") => None,
                Some(Ok(params)) => Some(params),
                Some(Err(_)) => {
                    return Err(Invalid::new(
                        INVALID_PARAMS,
                        format!("Invalid params: \"params\" of {method} must be an object"),
                        id,
                    ))
                }
            };
            Ok(match id {
                Some(id) => Incoming::Request { id, method, params },
                None => Incoming::Notification { method, params },
            })
        }
        Some(_) => Err(Invalid::new(
            INVALID_REQUEST,
            "Invalid Request: \"method\" must be a string",
            id,
        )),
        None => {
            let id = id.ok_or_else(|| {
                Invalid::new(
                    INVALID_REQUEST,
                    "Invalid Request: a message needs a \"method\" (request or notification) or an \"id\" with \"result\"/\"error\" (response)",
                    None,
                )
            })?;
            let outcome =
                match (object.get("result"), object.get("error")) {
                    (Some(result), None) if object.contains("result") => Ok(result),
                    (None, Some(error)) => Err(error),
                    _ => return Err(Invalid::new(
                        INVALID_REQUEST,
                        "Invalid Request: a response needs exactly one of \"result\" and \"error\"",
                        Some(id),
                    )),
                };
            Ok(Incoming::Response { id, outcome })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keeps_id_text_and_type() {
        match classify(br#"{"jsonrpc":"2.0","id":"1","method":"ping"}"#).unwrap() {
            Incoming::Request { id, method, params } => {
                assert_eq!(id.json(), "\"1\"");
                assert_eq!(method, "ping");
                assert!(params.is_none());
            }
            other => panic!("{other:?}"),
        }
        match classify(br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}"#).unwrap() {
            Incoming::Request { id, .. } => assert_eq!(id.json(), "1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn notification_and_response() {
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap(),
            Incoming::Notification { .. }
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#).unwrap(),
            Incoming::Response { outcome: Ok(_), .. }
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"x"}}"#).unwrap(),
            Incoming::Response {
                outcome: Err(_),
                ..
            }
        ));
    }

    #[test]
    fn invalid_messages_have_the_right_codes() {
        assert_eq!(classify(b"{nope").unwrap_err().code, PARSE_ERROR);
        assert_eq!(classify(b"[]").unwrap_err().code, INVALID_REQUEST);
        assert_eq!(classify(b"42").unwrap_err().code, INVALID_REQUEST);
        let e = classify(br#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.id.map(|i| i.json().to_string())),
            (INVALID_REQUEST, Some("3".into()))
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#)
                .unwrap_err()
                .code,
            INVALID_REQUEST
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#)
                .unwrap_err()
                .code,
            INVALID_REQUEST
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":1,"method":5}"#)
                .unwrap_err()
                .code,
            INVALID_REQUEST
        );
        let e = classify(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1]}"#)
            .unwrap_err();
        assert_eq!(e.code, INVALID_PARAMS);
        assert!(e.id.is_some());
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0"}"#).unwrap_err().code,
            INVALID_REQUEST
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":2,"result":1,"error":{}}"#)
                .unwrap_err()
                .code,
            INVALID_REQUEST
        );
    }
}
