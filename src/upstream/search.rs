//! The three tools a profile in search mode lists instead of its catalog (`toolExposure`):
//! `search_tools` and `describe_tools` are answered here from the view's index (on the reactor: a
//! query over 1,000 tools takes microseconds, see `benches/search.rs`), and `call_tool` is unwrapped
//! into the call it carries, which then goes exactly the way a direct call would (same routing,
//! same errors, progress and result passed through).
//!
//! Wrong arguments to `search_tools` and `describe_tools` are tool errors (`isError: true` with
//! the reason), so a model can correct itself; `call_tool` naming an unknown tool gets the
//! −32602 "Unknown tool" a direct call gets.

use crate::registry::search::one_line;
use crate::registry::Snapshot;
use crate::rpc::{codes, Params};
use serde_json::{json, Value};

/// Matches returned when `limit` is not given.
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 50;
/// Length of the one-line descriptions in search results.
const LINE: usize = 160;

/// The `tools/call` result of `search_tools`.
pub fn find(view: &Snapshot, params: &Params) -> String {
    let arguments = arguments(params);
    let Some(query) = arguments.get("query").and_then(Value::as_str) else {
        return tool_error("search_tools needs a string \"query\": words describing the task");
    };
    let limit = match arguments.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(limit) => match limit.as_u64() {
            Some(n @ 1..) => (n as usize).min(MAX_LIMIT),
            _ => return tool_error("\"limit\" must be a whole number from 1 to 50"),
        },
    };
    let tools: Vec<Value> = view
        .exposure
        .index
        .search(query, limit)
        .iter()
        .filter_map(|hit| view.tools.items.get(hit.tool))
        .map(|tool| {
            let description = tool
                .definition
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            json!({"name": tool.name, "description": one_line(description, LINE)})
        })
        .collect();
    let found = json!({ "tools": tools });
    let text = if tools.is_empty() {
        format!(
            "No tool matches \"{query}\" among {} tools; try other words.",
            view.tools.items.len()
        )
    } else {
        found.to_string()
    };
    result(text, found)
}

/// The `tools/call` result of `describe_tools`: the full definitions, as `tools/list` would give.
pub fn describe(view: &Snapshot, params: &Params) -> String {
    let arguments = arguments(params);
    let names: Option<Vec<&str>> = arguments
        .get("names")
        .and_then(Value::as_array)
        .and_then(|names| names.iter().map(Value::as_str).collect());
    let Some(names) = names.filter(|n| !n.is_empty()) else {
        return tool_error(
            "describe_tools needs \"names\": an array of tool names, as search_tools gave them",
        );
    };
    let (mut tools, mut unknown) = (Vec::new(), Vec::new());
    for name in names {
        match view.route(name) {
            Some(tool) => tools.push(Value::Object(tool.definition.clone())),
            None => unknown.push(name),
        }
    }
    if tools.is_empty() {
        return tool_error(&format!(
            "no tool named {}; search_tools finds them",
            unknown.join(", ")
        ));
    }
    let mut described = json!({ "tools": tools });
    if !unknown.is_empty() {
        described["unknown"] = json!(unknown);
    }
    result(described.to_string(), described)
}

/// `call_tool {name, arguments}`: the params become those of a direct call to `name` (the call's
/// `_meta`, with its progress token, stays). Returns the tool's name.
pub fn unwrap_call(params: &mut Params) -> Result<String, (i64, String)> {
    let invalid = |message: &str| (codes::INVALID_PARAMS, format!("Invalid params: {message}"));
    let inner = match params.object("arguments") {
        Some(Ok(inner)) => inner,
        _ => {
            return Err(invalid(
                "call_tool needs arguments {\"name\": ..., \"arguments\": {...}}",
            ))
        }
    };
    let Some(name) = inner.str("name") else {
        return Err(invalid(
            "call_tool needs a string \"name\": the tool to run",
        ));
    };
    match inner.raw("arguments") {
        None => params.set("arguments", &json!({})),
        Some(raw) if raw.get() == "null" => params.set("arguments", &json!({})),
        Some(raw) if inner.is_object("arguments") => params.set_raw("arguments", raw.to_owned()),
        Some(_) => return Err(invalid("call_tool's \"arguments\" must be an object")),
    }
    params.set("name", &Value::String(name.clone()));
    Ok(name)
}

fn arguments(params: &Params) -> Value {
    params.get("arguments").unwrap_or(Value::Null)
}

fn result(text: String, structured: Value) -> String {
    json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
    })
    .to_string()
}

fn tool_error(message: &str) -> String {
    json!({"content": [{"type": "text", "text": message}], "isError": true}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Params {
        Params::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn call_tool_becomes_the_direct_call() {
        let mut p = params(
            json!({"name": "call_tool", "arguments": {"name": "echo", "arguments": {"text": "hi"}},
                                  "_meta": {"progressToken": 7}}),
        );
        assert_eq!(unwrap_call(&mut p).unwrap(), "echo");
        assert_eq!(p.str("name").as_deref(), Some("echo"));
        assert_eq!(p.get("arguments"), Some(json!({"text": "hi"})));
        assert_eq!(p.get("_meta"), Some(json!({"progressToken": 7})));
        let mut bare = params(json!({"name": "call_tool", "arguments": {"name": "echo"}}));
        unwrap_call(&mut bare).unwrap();
        assert_eq!(bare.get("arguments"), Some(json!({})));
        for bad in [
            json!({}),
            json!({"arguments": {"name": 3}}),
            json!({"arguments": {"name": "x", "arguments": [1]}}),
        ] {
            let (code, message) = unwrap_call(&mut params(bad.clone())).unwrap_err();
            assert_eq!(code, codes::INVALID_PARAMS, "{bad}: {message}");
        }
    }

    #[test]
    fn bad_search_arguments_are_tool_errors() {
        let view = Snapshot::default();
        for bad in [json!({}), json!({"arguments": {"query": "x", "limit": 0}})] {
            let out: Value = serde_json::from_str(&find(&view, &params(bad))).unwrap();
            assert_eq!(out["isError"], true);
        }
        let none: Value =
            serde_json::from_str(&find(&view, &params(json!({"arguments": {"query": "x"}}))))
                .unwrap();
        assert_eq!(none["structuredContent"]["tools"], json!([]));
        let out: Value = serde_json::from_str(&describe(
            &view,
            &params(json!({"arguments": {"names": ["x"]}})),
        ))
        .unwrap();
        assert_eq!(out["isError"], true);
    }
}
