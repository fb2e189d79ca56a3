//! What the bridge needs to know about a message it relays, read without copying it: its kind,
//! its id in a canonical form, its method, and its raw params. Payloads are never rebuilt; a
//! message is only re-serialized when it spans several lines (pretty-printed JSON from a server),
//! because on stdio one message must be one line.

use crate::rpc::{self, Id};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// A JSON-RPC message, as far as relaying goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Request {
        id: Id,
        method: String,
    },
    Notification {
        method: String,
    },
    /// A response (anything with an id and no method).
    Response {
        id: Id,
    },
}

/// A message with its kind and, for the few methods the bridge looks into, its params.
#[derive(Debug)]
pub struct Peeked {
    pub kind: Kind,
    /// The raw `params`, if any.
    pub params: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
}

/// Why a message cannot be relayed.
#[derive(Debug, PartialEq, Eq)]
pub struct Unusable {
    pub code: i64,
    pub message: String,
}

/// Reads what the bridge needs from one message. Ids come out canonical (`rpc::Id`), so the
/// same id written differently (`"\u0061"` and `"a"`) matches, and `1` never matches `"1"`.
pub fn peek(bytes: &[u8]) -> Result<Peeked, Unusable> {
    // serde would read a struct from an array too; a message is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Unusable {
            code: rpc::codes::INVALID_REQUEST,
            message:
                "Invalid Request: JSON-RPC batches are not supported; send one message per line"
                    .to_string(),
        });
    }
    let fields: Fields = serde_json::from_slice(bytes).map_err(|e| Unusable {
        code: if e.is_data() {
            rpc::codes::INVALID_REQUEST
        } else {
            rpc::codes::PARSE_ERROR
        },
        message: if e.is_data() {
            "Invalid Request: expected one JSON-RPC message object (batches are not supported)"
                .to_string()
        } else {
            format!("Parse error: {e}")
        },
    })?;
    let id = match fields.id {
        None => None,
        Some(raw) => {
            let value: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
            match Id::from_value(&value) {
                Some(id) => Some(id),
                None if value.is_null() && fields.method.is_none() => None,
                None => {
                    return Err(Unusable {
                        code: rpc::codes::INVALID_REQUEST,
                        message: format!(
                            "Invalid Request: \"id\" must be a string or an integer, not {}",
                            raw.get()
                        ),
                    })
                }
            }
        }
    };
    let kind = match (id, fields.method) {
        (Some(id), Some(method)) => Kind::Request { id, method },
        (None, Some(method)) => Kind::Notification { method },
        (Some(id), None) => Kind::Response { id },
        (None, None) => {
            return Err(Unusable {
                code: rpc::codes::INVALID_REQUEST,
                message: "Invalid Request: neither a method nor a response id".to_string(),
            })
        }
    };
    Ok(Peeked {
        kind,
        params: fields.params.map(ToOwned::to_owned),
    })
}

/// The message as one line: unchanged when it already is one, else re-serialized compactly.
pub fn one_line(bytes: Vec<u8>) -> Vec<u8> {
    if !bytes.iter().any(|&b| b == b'\n' || b == b'\r') {
        return bytes;
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) => serde_json::to_vec(&value).unwrap_or(bytes),
        // Not JSON: the caller already refused it; never reached for relayed messages.
        Err(_) => bytes,
    }
}

/// The `requestId` of a `notifications/cancelled`, canonical.
pub fn cancelled_id(params: Option<&RawValue>) -> Option<Id> {
    let params: Value = serde_json::from_str(params?.get()).ok()?;
    Id::from_value(params.get("requestId")?)
}

/// A `params.<key>` string (the URI of a subscription).
pub fn param_str(params: Option<&RawValue>, key: &str) -> Option<String> {
    let params: Value = serde_json::from_str(params?.get()).ok()?;
    params.get(key)?.as_str().map(str::to_owned)
}

/// An error response with the request's own id.
pub fn error(id: &Id, code: i64, message: &str) -> Vec<u8> {
    rpc::error_response(Some(id.json()), code, message)
}

/// The `{code, message}` of a JSON-RPC error in a gateway's error body, if it has one (either
/// `{"error": {...}}` at the top, as both JSON-RPC and REST errors are).
pub fn error_in_body(body: &[u8]) -> Option<(i64, String)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    let code = error.get("code")?.as_i64()?;
    let message = error.get("message")?.as_str()?.to_owned();
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> Id {
        Id::from_value(&serde_json::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn kinds_and_canonical_ids() {
        let p = peek(br#"{"jsonrpc":"2.0","id": "\u0061","method":"tools/call","params":{"x":1}}"#)
            .unwrap();
        assert_eq!(
            p.kind,
            Kind::Request {
                id: id("\"a\""),
                method: "tools/call".into()
            }
        );
        assert_eq!(p.params.unwrap().get(), r#"{"x":1}"#);
        let p = peek(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(
            p.kind,
            Kind::Notification {
                method: "notifications/initialized".into()
            }
        );
        let p = peek(br#"{"jsonrpc":"2.0","id":1,"result":{"big":[1,2,3]}}"#).unwrap();
        assert_eq!(p.kind, Kind::Response { id: id("1") });
        assert_ne!(id("1"), id("\"1\""));
    }

    #[test]
    fn unusable_messages_say_why() {
        assert_eq!(peek(b"{nope").unwrap_err().code, rpc::codes::PARSE_ERROR);
        assert_eq!(peek(b"[1]").unwrap_err().code, rpc::codes::INVALID_REQUEST);
        assert_eq!(
            peek(br#"{"id":1.5,"method":"x"}"#).unwrap_err().code,
            rpc::codes::INVALID_REQUEST
        );
        assert_eq!(
            peek(br#"{"jsonrpc":"2.0"}"#).unwrap_err().code,
            rpc::codes::INVALID_REQUEST
        );
        // An error response about an unreadable request has a null id: still a response to relay
        // nowhere, so it is refused here rather than matched.
        assert!(peek(br#"{"jsonrpc":"2.0","id":null,"error":{}}"#).is_err());
    }

    #[test]
    fn one_line_only_rewrites_multi_line_messages() {
        let compact = br#"{"a":"x\ny"}"#.to_vec();
        assert_eq!(one_line(compact.clone()), compact);
        assert_eq!(
            one_line(b"{\n  \"b\": 1,\r\n  \"a\": 2\n}".to_vec()),
            br#"{"b":1,"a":2}"#
        );
    }

    #[test]
    fn params_the_bridge_reads() {
        let p = peek(
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"r7"}}"#,
        )
        .unwrap();
        assert_eq!(cancelled_id(p.params.as_deref()), Some(id("\"r7\"")));
        let p = peek(br#"{"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"demo://x"}}"#)
            .unwrap();
        assert_eq!(
            param_str(p.params.as_deref(), "uri").as_deref(),
            Some("demo://x")
        );
        assert_eq!(
            error_in_body(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"no"}}"#),
            Some((-32600, "no".into()))
        );
    }
}
