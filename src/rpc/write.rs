//! Writing JSON-RPC messages as bytes. Results are spliced in as raw JSON text, never re-encoded.

use serde::Serialize;
use serde_json::Value;

/// `{"jsonrpc":"2.0","id":<id>,"result":<result>}` with both parts given as JSON text.
pub fn result_response(id_json: &str, result_json: &str) -> Vec<u8> {
    splice(id_json, "result", result_json)
}

/// `{"jsonrpc":"2.0","id":<id>,"error":<error>}` with an error object a server sent, as JSON text.
pub fn raw_error_response(id_json: &str, error_json: &str) -> Vec<u8> {
    splice(id_json, "error", error_json)
}

fn splice(id_json: &str, key: &str, raw: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + id_json.len() + key.len() + raw.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id_json.as_bytes());
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(raw.as_bytes());
    out.push(b'}');
    out
}

/// An error response; `id_json` None writes `"id":null` (the request's id could not be read).
pub fn error_response(id_json: Option<&str>, code: i64, message: &str) -> Vec<u8> {
    error_response_with_data(id_json, code, message, None)
}

/// An error response carrying `error.data`.
pub fn error_response_with_data(
    id_json: Option<&str>,
    code: i64,
    message: &str,
    data: Option<&Value>,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct ErrorObject<'a> {
        code: i64,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a Value>,
    }
    let mut out = Vec::with_capacity(80 + message.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id_json.unwrap_or("null").as_bytes());
    out.extend_from_slice(b",\"error\":");
    serde_json::to_writer(
        &mut out,
        &ErrorObject {
            code,
            message,
            data,
        },
    )
    .expect("serializing to a Vec cannot fail");
    out.push(b'}');
    out
}

/// A request the gateway sends downstream, with its own numeric id.
pub fn request<P: Serialize + ?Sized>(id: u64, method: &str, params: Option<&P>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Request<'a, P: Serialize + ?Sized> {
        jsonrpc: &'static str,
        id: u64,
        method: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        params: Option<&'a P>,
    }
    serde_json::to_vec(&Request {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
    .expect("serializing to a Vec cannot fail")
}

/// A notification (no id).
pub fn notification<P: Serialize + ?Sized>(method: &str, params: Option<&P>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Notification<'a, P: Serialize + ?Sized> {
        jsonrpc: &'static str,
        method: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        params: Option<&'a P>,
    }
    serde_json::to_vec(&Notification {
        jsonrpc: "2.0",
        method,
        params,
    })
    .expect("serializing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_splice_raw_json() {
        assert_eq!(
            result_response("\"a\"", "{\"x\":1}"),
            br#"{"jsonrpc":"2.0","id":"a","result":{"x":1}}"#
        );
        assert_eq!(
            error_response(None, -32700, "Parse \"error\""),
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse \"error\""}}"#
        );
        let data = serde_json::json!({"uri": "x"});
        assert_eq!(
            error_response_with_data(Some("3"), -32002, "nf", Some(&data)),
            br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32002,"message":"nf","data":{"uri":"x"}}}"#
        );
    }

    #[test]
    fn requests_and_notifications() {
        assert_eq!(
            request::<Value>(5, "ping", None),
            br#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#
        );
        assert_eq!(
            notification("notifications/initialized", Some(&serde_json::json!({}))),
            br#"{"jsonrpc":"2.0","method":"notifications/initialized","params":{}}"#
        );
    }
}
