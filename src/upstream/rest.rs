//! The REST endpoints for scripts and humans: `GET /tools` (served from the registry snapshot) and
//! `POST /tools/call {name, arguments}` → `200 {"result": CallToolResult}` (an `isError` result is
//! still 200: the tool ran). Errors are `{"error": {code, message}}` with a status that says whose
//! fault it is: 400 bad body, 404 unknown tool, 502/503/504 from the server side.

use super::held::Held;
use super::{Outcome, Response, Router};
use crate::http::Request;
use crate::job::{Answer, Job, ReplyTo, Slot};
use crate::rpc::codes;
use serde_json::{Map, Value};
use std::time::Instant;

impl Router {
    /// `POST /tools/call`.
    pub(super) fn rest_call(&mut self, conn: Slot, req: &Request, now: Instant) -> Outcome {
        let body: Value = match serde_json::from_slice(&req.body) {
            Ok(body) => body,
            Err(e) => {
                return Outcome::Respond(Response::error(
                    400,
                    codes::PARSE_ERROR,
                    &format!("the body is not valid JSON: {e}"),
                ))
            }
        };
        let (name, arguments) = match parse_call(body) {
            Ok(call) => call,
            Err(message) => {
                return Outcome::Respond(Response::error(400, codes::INVALID_PARAMS, &message))
            }
        };
        match self.rest_dispatch(conn, name, arguments, now, now) {
            Some(refusal) => Outcome::Respond(refusal),
            None => Outcome::Await {
                headers: Vec::new(),
                sse: false,
            },
        }
    }

    /// Sends the call to its server, or holds it while a server that may offer the name is still
    /// starting. `Some` is the answer to send now.
    pub(super) fn rest_dispatch(
        &mut self,
        conn: Slot,
        name: String,
        arguments: Map<String, Value>,
        created: Instant,
        now: Instant,
    ) -> Option<Response> {
        let Some(tool) = self.registry.route(&name) else {
            if let Some(deadline) = self.hold_deadline(created, now) {
                self.hold(
                    Held::Rest {
                        conn,
                        name,
                        arguments,
                        created,
                    },
                    deadline,
                );
                return None;
            }
            return Some(Response::error(
                404,
                codes::INVALID_PARAMS,
                &format!("unknown tool: {name} (GET /tools lists them)"),
            ));
        };
        let mut params = crate::rpc::Params::default();
        params.set("name", &Value::String(tool.original.clone()));
        params.set("arguments", &Value::Object(arguments));
        let job = Job {
            to: ReplyTo::Conn(conn),
            session: None,
            answer: Answer::Rest,
            server: tool.server,
            method: "tools/call",
            params,
            progress_token: None,
            created,
            control: Default::default(),
        };
        self.dispatch(job);
        None
    }
}

/// `{"name": string, "arguments"?: object|null}` → (name, arguments).
fn parse_call(body: Value) -> Result<(String, Map<String, Value>), String> {
    let Value::Object(mut body) = body else {
        return Err("the body must be a JSON object: {\"name\": ..., \"arguments\": {...}}".into());
    };
    let name = match body.remove("name") {
        Some(Value::String(name)) => name,
        Some(_) => return Err("\"name\" must be a string".into()),
        None => return Err("missing \"name\" (the tool to call)".into()),
    };
    let arguments = match body.remove("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(arguments)) => arguments,
        Some(_) => return Err("\"arguments\" must be an object".into()),
    };
    if let Some(unknown) = body.keys().next() {
        return Err(format!(
            "unknown field \"{unknown}\"; the body takes \"name\" and \"arguments\""
        ));
    }
    Ok((name, arguments))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn call_bodies() {
        let (name, args) =
            parse_call(json!({"name": "echo", "arguments": {"text": "hi"}})).unwrap();
        assert_eq!(name, "echo");
        assert_eq!(args["text"], "hi");
        assert!(parse_call(json!({"name": "echo"})).unwrap().1.is_empty());
        assert!(parse_call(json!({"name": "echo", "arguments": null})).is_ok());
        assert!(parse_call(json!([])).unwrap_err().contains("object"));
        assert!(parse_call(json!({"name": 3}))
            .unwrap_err()
            .contains("string"));
        assert!(parse_call(json!({})).unwrap_err().contains("missing"));
        assert!(parse_call(json!({"name": "x", "arguments": [1]}))
            .unwrap_err()
            .contains("object"));
        assert!(parse_call(json!({"name": "x", "args": {}}))
            .unwrap_err()
            .contains("unknown field"));
    }
}
