//! Call metrics for `GET /metrics`: the histogram of forwarded calls by method, tool, error type
//! and server, the labels it may use, and the Prometheus text format it is written in.
//!
//! Who owns what:
//! - a call's end is classified by whoever carries it (`job::ReactorSink`, on a worker or in child I/O):
//!   that is where the answer's bytes are, so the reactor never scans an answer;
//! - the reactor owns `CallMetrics` and records every end it receives (`Router::answered`), plus
//!   the calls it refuses itself (an unknown tool): plain memory, no lock, no atomic, no allocation
//!   once a series exists;
//! - what other threads count (pools' spawns, restarts, recycles, handles; reloads; audit lines)
//!   stays with its owner and is only read when `/metrics` is rendered.
//!
//! Invariants: every label value is bounded. Methods come from `Method` (else `other`), error types
//! from `ErrorType`, servers from the configuration, tool names only from names the registry routed
//! when the call was made, at most `MAX_TOOL_LABELS` of them (an unknown or surplus name is `other`).

use crate::rpc::codes;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Distinct tool names the histogram labels calls with; calls to further names count as `other`.
pub const MAX_TOOL_LABELS: usize = 4096;

/// Upper bounds of the histogram's buckets, in seconds: the OpenTelemetry MCP conventions'
/// advice (10 ms … 300 s) with 1 ms and 5 ms in front, where a gateway's own answers fall.
pub const BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The `le` label of each bucket, `+Inf` last, as the text format writes it.
const BUCKET_LABELS: [&str; 17] = [
    ",le=\"0.001\"} ",
    ",le=\"0.005\"} ",
    ",le=\"0.01\"} ",
    ",le=\"0.02\"} ",
    ",le=\"0.05\"} ",
    ",le=\"0.1\"} ",
    ",le=\"0.2\"} ",
    ",le=\"0.5\"} ",
    ",le=\"1\"} ",
    ",le=\"2\"} ",
    ",le=\"5\"} ",
    ",le=\"10\"} ",
    ",le=\"30\"} ",
    ",le=\"60\"} ",
    ",le=\"120\"} ",
    ",le=\"300\"} ",
    ",le=\"+Inf\"} ",
];

/// The same bounds in microseconds, for recording without floating point.
const BUCKET_MICROS: [u64; 16] = [
    1_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
];

/// `mcp_method_name`: the methods the gateway forwards to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    ToolsCall,
    PromptsGet,
    ResourcesRead,
    CompletionComplete,
    Other,
}

impl Method {
    pub fn of(method: &str) -> Method {
        match method {
            "tools/call" => Method::ToolsCall,
            "prompts/get" => Method::PromptsGet,
            "resources/read" => Method::ResourcesRead,
            "completion/complete" => Method::CompletionComplete,
            _ => Method::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Method::ToolsCall => "tools/call",
            Method::PromptsGet => "prompts/get",
            Method::ResourcesRead => "resources/read",
            Method::CompletionComplete => "completion/complete",
            Method::Other => "other",
        }
    }
}

/// `error_type`: how a call ended, from a fixed set. A server's JSON-RPC error is its code when the
/// code is a standard one, else `other`; the gateway's own failures have names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorType {
    /// An answer (`error_type=""`: Prometheus reads an empty label as absent).
    None,
    /// A `tools/call` result with `isError: true`: the tool ran and failed.
    ToolError,
    /// The client cancelled the call.
    Cancelled,
    /// No answer within `callTimeout` (the gateway's 504).
    Timeout,
    /// The server is down, or no handle was free in time (the gateway's 503).
    Unavailable,
    /// The server died or broke the protocol during the call (the gateway's 502).
    BadGateway,
    /// The gateway itself failed (500).
    Internal,
    /// A JSON-RPC error code from the standard set, as a string (`"-32602"`).
    Code(i64),
    /// A JSON-RPC error code outside that set.
    Other,
}

/// The JSON-RPC codes that are their own `error_type` value.
const KNOWN_CODES: [i64; 9] = [
    codes::PARSE_ERROR,
    codes::INVALID_REQUEST,
    codes::METHOD_NOT_FOUND,
    codes::INVALID_PARAMS,
    codes::INTERNAL_ERROR,
    codes::SERVER_UNAVAILABLE,
    codes::REQUEST_TIMEOUT,
    codes::RESOURCE_NOT_FOUND,
    codes::REQUEST_CANCELLED,
];

impl ErrorType {
    /// A JSON-RPC error with `code`.
    pub fn of_code(code: i64) -> ErrorType {
        if KNOWN_CODES.contains(&code) {
            ErrorType::Code(code)
        } else {
            ErrorType::Other
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ErrorType::None => "",
            ErrorType::ToolError => "tool_error",
            ErrorType::Cancelled => "cancelled",
            ErrorType::Timeout => "timeout",
            ErrorType::Unavailable => "unavailable",
            ErrorType::BadGateway => "bad_gateway",
            ErrorType::Internal => "internal",
            ErrorType::Code(code) => match code {
                codes::PARSE_ERROR => "-32700",
                codes::INVALID_REQUEST => "-32600",
                codes::METHOD_NOT_FOUND => "-32601",
                codes::INVALID_PARAMS => "-32602",
                codes::INTERNAL_ERROR => "-32603",
                codes::SERVER_UNAVAILABLE => "-32000",
                codes::REQUEST_TIMEOUT => "-32001",
                codes::RESOURCE_NOT_FOUND => "-32002",
                codes::REQUEST_CANCELLED => "-32800",
                _ => "other",
            },
            ErrorType::Other => "other",
        }
    }
}

/// What an answer says about the call: a JSON-RPC error's code, or a tool's `isError`.
pub fn classify(outcome: Result<&str, &str>) -> (ErrorType, Option<i64>) {
    match outcome {
        Ok(result) => {
            // Only a result that mentions the member at all is parsed (its top level only).
            if result.contains("\"isError\"") && is_error_result(result) {
                (ErrorType::ToolError, None)
            } else {
                (ErrorType::None, None)
            }
        }
        Err(error) => {
            #[derive(serde::Deserialize)]
            struct Code {
                code: i64,
            }
            match serde_json::from_str::<Code>(error) {
                Ok(Code { code }) => (ErrorType::of_code(code), Some(code)),
                Err(_) => (ErrorType::Other, None),
            }
        }
    }
}

fn is_error_result(result: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Flag {
        #[serde(rename = "isError", default)]
        is_error: bool,
    }
    serde_json::from_str::<Flag>(result).is_ok_and(|f| f.is_error)
}

/// `gen_ai_tool_name` of a call: an index into the tool names seen, or one of two markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ToolLabel(u32);

impl ToolLabel {
    /// Not a `tools/call` (the label is empty).
    pub const NONE: ToolLabel = ToolLabel(u32::MAX);
    /// A name the registry does not route, or one past `MAX_TOOL_LABELS`.
    pub const OTHER: ToolLabel = ToolLabel(u32::MAX - 1);
}

impl Default for ToolLabel {
    fn default() -> ToolLabel {
        ToolLabel::NONE
    }
}

/// How a forwarded call ended, as its carrier saw it; comes to the reactor with the final answer.
#[derive(Debug, Clone)]
pub struct Ended {
    pub method: Method,
    pub tool: ToolLabel,
    /// Index of the server (and its pool); `usize::MAX` for a call no server saw.
    pub server: usize,
    /// From the reactor's creating the job to its final answer.
    pub elapsed: Duration,
    pub error: ErrorType,
    /// The JSON-RPC error code the client got, if any.
    pub code: Option<i64>,
    /// Bytes of the result or error as the server sent it (0 for the gateway's own failures).
    pub answer_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    server: u32,
    method: Method,
    tool: ToolLabel,
    error: ErrorType,
}

/// One histogram series: per-bucket (not cumulative) counts, the last one for `+Inf`.
#[derive(Debug, Clone, Default)]
struct Series {
    buckets: [u64; BUCKETS.len() + 1],
    sum_micros: u64,
}

/// The reactor's call histogram and its label tables (see the module doc).
#[derive(Debug, Default)]
pub struct CallMetrics {
    tools: HashMap<Box<str>, u32>,
    tool_names: Vec<Box<str>>,
    /// Server names by label: series are kept by name, so a reload that moves servers around
    /// keeps each one's history.
    servers: HashMap<Box<str>, u32>,
    server_names: Vec<Box<str>>,
    series: BTreeMap<SeriesKey, Series>,
}

impl CallMetrics {
    /// The label of a tool the registry routed; `OTHER` once `MAX_TOOL_LABELS` names are known.
    pub fn tool_label(&mut self, name: &str) -> ToolLabel {
        if let Some(&index) = self.tools.get(name) {
            return ToolLabel(index);
        }
        if self.tool_names.len() >= MAX_TOOL_LABELS {
            return ToolLabel::OTHER;
        }
        let index = self.tool_names.len() as u32;
        self.tool_names.push(name.into());
        self.tools.insert(name.into(), index);
        ToolLabel(index)
    }

    /// Counts one call's end on `server` (its name; empty for calls no server saw).
    pub fn record(&mut self, ended: &Ended, server: &str) {
        let server = match self.servers.get(server) {
            Some(&label) => label,
            None => {
                let label = self.server_names.len() as u32;
                self.server_names.push(server.into());
                self.servers.insert(server.into(), label);
                label
            }
        };
        let key = SeriesKey {
            server,
            method: ended.method,
            tool: ended.tool,
            error: ended.error,
        };
        let micros = u64::try_from(ended.elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(BUCKETS.len());
        let series = self.series.entry(key).or_default();
        series.buckets[bucket] += 1;
        series.sum_micros = series.sum_micros.saturating_add(micros);
    }

    fn tool_name(&self, label: ToolLabel) -> &str {
        match label {
            ToolLabel::NONE => "",
            ToolLabel::OTHER => "other",
            ToolLabel(index) => self.tool_names.get(index as usize).map_or("other", |n| n),
        }
    }

    /// Writes the histogram, and the error counter derived from it.
    pub fn write(&self, out: &mut Exposition) {
        let server = |label: usize| self.server_names.get(label).map_or("", |n| n);
        out.family(
            "mcp_server_operation_duration_seconds",
            "histogram",
            "Duration of the MCP requests the gateway forwarded to a server, from arrival to answer.",
        );
        let mut errors: BTreeMap<(u32, ErrorType), u64> = BTreeMap::new();
        let mut labels = String::new();
        for (key, series) in &self.series {
            // The labels are escaped once per series, not once per line: a scrape of a few
            // hundred series is mostly this loop.
            labels.clear();
            write_labels(
                &mut labels,
                &[
                    ("mcp_method_name", key.method.label()),
                    ("gen_ai_tool_name", self.tool_name(key.tool)),
                    ("error_type", key.error.label()),
                    ("server", server(key.server as usize)),
                ],
            );
            let mut cumulative = 0;
            for (i, count) in series.buckets.iter().enumerate() {
                cumulative += count;
                out.histogram_line("_bucket{", &labels, Some(BUCKET_LABELS[i]), cumulative);
            }
            let _ = writeln!(
                out.out,
                "mcp_server_operation_duration_seconds_sum{{{labels}}} {}.{:06}",
                series.sum_micros / 1_000_000,
                series.sum_micros % 1_000_000
            );
            out.histogram_line("_count{", &labels, None, cumulative);
            if key.error != ErrorType::None {
                *errors.entry((key.server, key.error)).or_default() += cumulative;
            }
        }
        out.family(
            "mcp_gateway_call_errors_total",
            "counter",
            "Forwarded calls that did not end in a plain answer, by server and error type.",
        );
        for ((index, error), count) in errors {
            out.sample(
                "mcp_gateway_call_errors_total",
                &[
                    ("server", server(index as usize)),
                    ("error_type", error.label()),
                ],
                count as f64,
            );
        }
    }
}

/// Configuration reloads, bumped by whoever applies one (`record_reload`); read by `/metrics`.
static RELOADS_APPLIED: AtomicU64 = AtomicU64::new(0);
static RELOADS_REJECTED: AtomicU64 = AtomicU64::new(0);

/// Counts one configuration reload: applied, or refused (the old configuration kept).
pub fn record_reload(applied: bool) {
    let counter = if applied {
        &RELOADS_APPLIED
    } else {
        &RELOADS_REJECTED
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// (applied, rejected) reloads so far.
pub fn reloads() -> (u64, u64) {
    (
        RELOADS_APPLIED.load(Ordering::Relaxed),
        RELOADS_REJECTED.load(Ordering::Relaxed),
    )
}

/// The Prometheus text exposition format (version 0.0.4), written sample by sample.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// What `/metrics` answers with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    /// `# HELP` and `# TYPE` of a metric family; its samples follow.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.write_sample(name, labels, value);
    }

    /// One line of the call histogram: `suffix` is `_bucket{` or `_count{`, `labels` already
    /// written by `write_labels`, `le` the bucket's closing part (else `} `).
    fn histogram_line(&mut self, suffix: &str, labels: &str, le: Option<&str>, value: u64) {
        self.out.push_str("mcp_server_operation_duration_seconds");
        self.out.push_str(suffix);
        self.out.push_str(labels);
        self.out.push_str(le.unwrap_or("} "));
        let _ = writeln!(self.out, "{value}");
    }

    fn write_sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            write_labels(&mut self.out, labels);
            self.out.push('}');
        }
        self.out.push(' ');
        if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = write!(self.out, "{}", value as i64);
        } else {
            let _ = write!(self.out, "{value}");
        }
        self.out.push('\n');
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// `key="value",…` with the values escaped.
fn write_labels(out: &mut String, labels: &[(&str, &str)]) {
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        escape_label(out, value);
        out.push('"');
    }
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
fn escape_label(out: &mut String, value: &str) {
    if !value.contains(['\\', '"', '\n']) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(tool: ToolLabel, error: ErrorType, millis: u64) -> Ended {
        Ended {
            method: Method::ToolsCall,
            tool,
            server: 0,
            elapsed: Duration::from_millis(millis),
            error,
            code: None,
            answer_bytes: 0,
        }
    }

    #[test]
    fn answers_are_classified_by_their_error_code_or_is_error() {
        assert_eq!(classify(Ok(r#"{"content":[]}"#)), (ErrorType::None, None));
        assert_eq!(
            classify(Ok(r#"{"content":[],"isError":true}"#)),
            (ErrorType::ToolError, None)
        );
        assert_eq!(
            classify(Ok(
                r#"{"content":[{"type":"text","text":"\"isError\": true"}]}"#
            )),
            (ErrorType::None, None),
            "only the result's own member counts"
        );
        assert_eq!(
            classify(Ok(r#"{"isError":false}"#)),
            (ErrorType::None, None)
        );
        assert_eq!(
            classify(Err(r#"{"code":-32602,"message":"bad"}"#)),
            (ErrorType::Code(-32602), Some(-32602))
        );
        let odd = classify(Err(r#"{"code":42,"message":"odd"}"#));
        assert_eq!(odd, (ErrorType::Other, Some(42)));
        assert_eq!(odd.0.label(), "other");
        assert_eq!(classify(Err("{}")).0, ErrorType::Other);
    }

    #[test]
    fn tool_labels_stop_growing_at_the_cap() {
        let mut m = CallMetrics::default();
        let a = m.tool_label("a");
        assert_eq!(m.tool_label("a"), a);
        for i in 1..MAX_TOOL_LABELS {
            assert_ne!(m.tool_label(&format!("t{i}")), ToolLabel::OTHER);
        }
        assert_eq!(m.tool_label("one-too-many"), ToolLabel::OTHER);
        assert_eq!(m.tool_label("a"), a, "known names keep their label");
    }

    #[test]
    fn the_histogram_is_cumulative_and_errors_are_summed_per_type() {
        let mut m = CallMetrics::default();
        let echo = m.tool_label("echo");
        m.record(&ended(echo, ErrorType::None, 0), "srv0");
        m.record(&ended(echo, ErrorType::None, 15), "srv0");
        m.record(&ended(echo, ErrorType::None, 400_000), "srv0");
        m.record(&ended(echo, ErrorType::ToolError, 2), "srv0");
        m.record(&ended(ToolLabel::OTHER, ErrorType::Code(-32602), 0), "srv0");
        let mut out = Exposition::default();
        m.write(&mut out);
        let text = out.finish();
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
                .to_string()
        };
        let ok =
            r#"mcp_method_name="tools/call",gen_ai_tool_name="echo",error_type="",server="srv0""#;
        assert_eq!(
            line(&format!(
                "mcp_server_operation_duration_seconds_bucket{{{ok},le=\"0.001\"}}"
            )),
            format!("mcp_server_operation_duration_seconds_bucket{{{ok},le=\"0.001\"}} 1")
        );
        assert!(line(&format!(
            "mcp_server_operation_duration_seconds_bucket{{{ok},le=\"0.02\"}}"
        ))
        .ends_with(" 2"));
        assert!(line(&format!(
            "mcp_server_operation_duration_seconds_bucket{{{ok},le=\"300\"}}"
        ))
        .ends_with(" 2"));
        assert!(line(&format!(
            "mcp_server_operation_duration_seconds_bucket{{{ok},le=\"+Inf\"}}"
        ))
        .ends_with(" 3"));
        assert!(line(&format!(
            "mcp_server_operation_duration_seconds_count{{{ok}}}"
        ))
        .ends_with(" 3"));
        assert!(line(&format!(
            "mcp_server_operation_duration_seconds_sum{{{ok}}}"
        ))
        .ends_with(" 400.015000"));
        assert!(
            line(r#"mcp_gateway_call_errors_total{server="srv0",error_type="tool_error"}"#)
                .ends_with(" 1")
        );
        assert!(
            line(r#"mcp_gateway_call_errors_total{server="srv0",error_type="-32602"}"#)
                .ends_with(" 1")
        );
        assert!(text.contains(r#"gen_ai_tool_name="other",error_type="-32602""#));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::default();
        out.sample("m", &[("a", "x\"y\\z\nw")], 1.5);
        out.sample("n", &[], 3.0);
        assert_eq!(out.finish(), "m{a=\"x\\\"y\\\\z\\nw\"} 1.5\nn 3\n");
    }
}
