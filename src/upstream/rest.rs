//! The REST endpoints for scripts and humans: `GET /tools` (served from the registry snapshot) and
//! `POST /tools/call {name, arguments}` → `200 {"result": CallToolResult}` (an `isError` result is
//! still 200: the tool ran). Errors are `{"error": {code, message}}` with a status that says whose
//! fault it is: 400 bad body, 404 unknown tool, 502/503/504 from the server side.

use super::held::Held;
use super::{Outcome, Response, Router};
use crate::http::Request;
use crate::job::{Answer, Job, ReplyTo, Slot};
use crate::rpc::{codes, NotParams, Params};
use serde_json::value::RawValue;
use serde_json::Value;
use std::time::Instant;

impl Router {
    /// `POST /tools/call`.
    pub(super) fn rest_call(&mut self, conn: Slot, req: &Request, now: Instant) -> Outcome {
        let body = match Params::parse(&req.body) {
            Ok(body) => body,
            Err(NotParams::Malformed(e)) => {
                return Outcome::Respond(Response::error(
                    400,
                    codes::PARSE_ERROR,
                    &format!("the body is not valid JSON: {e}"),
                ))
            }
            Err(NotParams::NotAnObject) => {
                return Outcome::Respond(Response::error(
                    400,
                    codes::INVALID_PARAMS,
                    "the body must be a JSON object: {\"name\": ..., \"arguments\": {...}}",
                ))
            }
        };
        let (name, arguments) = match parse_call(&body) {
            Ok(call) => call,
            Err(message) => {
                return Outcome::Respond(Response::error(400, codes::INVALID_PARAMS, &message))
            }
        };
        let profile = super::profiles::requested(req);
        let call = RestCall {
            conn,
            profile,
            name,
            arguments,
        };
        match self.rest_dispatch(call, now, now) {
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
        call: RestCall,
        created: Instant,
        now: Instant,
    ) -> Option<Response> {
        let RestCall {
            conn,
            profile,
            name,
            arguments,
        } = call;
        let view = self.view(&profile);
        let Some(tool) = view.route(&name) else {
            if let Some(why) = view.withheld(&name) {
                return Some(Response::error(404, codes::INVALID_PARAMS, why));
            }
            if let Some(deadline) = self.hold_deadline(created, now) {
                self.hold(
                    Held::Rest {
                        conn,
                        profile,
                        name,
                        arguments,
                        created,
                    },
                    deadline,
                );
                return None;
            }
            // Maybe a tool of a server nobody has logged in to yet: say what to do.
            let (status, code, message) = match view.login_hint(&name) {
                None => (
                    404,
                    codes::INVALID_PARAMS,
                    format!("unknown tool: {name} (GET /tools lists them)"),
                ),
                Some(hint) => (503, codes::SERVER_UNAVAILABLE, hint),
            };
            let error = crate::metrics::ErrorType::of_code(code);
            self.refused("tools/call", Some(name), None, code, error);
            return Some(Response::error(status, code, &message));
        };
        let mut params = Params::default();
        params.set("name", &Value::String(tool.original.clone()));
        params.set_raw("arguments", arguments);
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
            meter: crate::job::Meter {
                target: Some(name),
                ..Default::default()
            },
            declared: None,
        };
        self.dispatch(job);
        None
    }
}

/// One `POST /tools/call`.
pub(super) struct RestCall {
    /// The connection waiting for the answer.
    pub conn: Slot,
    /// The profile whose tools it may call (`?profile=`).
    pub profile: String,
    pub name: String,
    /// Exactly as the client wrote them.
    pub arguments: Box<RawValue>,
}

/// `{"name": string, "arguments"?: object|null}` → (name, arguments exactly as written).
fn parse_call(body: &Params) -> Result<(String, Box<RawValue>), String> {
    let name = match body.get("name") {
        Some(Value::String(name)) => name,
        Some(_) => return Err("\"name\" must be a string".into()),
        None => return Err("missing \"name\" (the tool to call)".into()),
    };
    let arguments = match body.raw("arguments") {
        None => empty_object(),
        Some(raw) if raw.get() == "null" => empty_object(),
        Some(raw) if body.is_object("arguments") => raw.to_owned(),
        Some(_) => return Err("\"arguments\" must be an object".into()),
    };
    if let Some(unknown) = body.keys().find(|k| *k != "name" && *k != "arguments") {
        return Err(format!(
            "unknown field \"{unknown}\"; the body takes \"name\" and \"arguments\""
        ));
    }
    Ok((name, arguments))
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".into()).expect("valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<(String, String), String> {
        let body = Params::parse(body.as_bytes()).map_err(|e| e.to_string())?;
        parse_call(&body).map(|(name, args)| (name, args.get().to_string()))
    }

    #[test]
    fn call_bodies() {
        let (name, args) =
            parse(r#"{"name": "echo", "arguments": {"text": "hi", "n": 1.10}}"#).unwrap();
        assert_eq!(name, "echo");
        assert_eq!(args, r#"{"text": "hi", "n": 1.10}"#, "as written");
        assert_eq!(parse(r#"{"name": "echo"}"#).unwrap().1, "{}");
        assert_eq!(
            parse(r#"{"name": "echo", "arguments": null}"#).unwrap().1,
            "{}"
        );
        assert!(parse("[]").unwrap_err().contains("object"));
        assert!(parse(r#"{"name": 3}"#).unwrap_err().contains("string"));
        assert!(parse("{}").unwrap_err().contains("missing"));
        assert!(parse(r#"{"name": "x", "arguments": [1]}"#)
            .unwrap_err()
            .contains("object"));
        assert!(parse(r#"{"name": "x", "args": {}}"#)
            .unwrap_err()
            .contains("unknown field"));
    }
}
