//! Log output on stderr: env_logger's text lines (the default) or, with `--log-format json` /
//! `MCP_GATEWAY_LOG_FORMAT=json`, one JSON object per line for a log collector:
//! `{"time", "level", "target", "server"?, "message"}`.
//!
//! `server` is there when the line is about one server. Log lines name it in one of two ways, both
//! at the start of the message: `server NAME: …` / `server NAME …`, or a handle's label
//! `NAME#SERIAL (…)` (a process or a remote session of that server). Nothing else is guessed.
//! The message is the whole text as the text format shows it, newlines included (JSON-escaped),
//! so a line is always exactly one object.

use std::io::Write;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `text` or `json` (any case); anything else is a usage error naming the choices.
    pub fn parse(raw: &str) -> Result<LogFormat, String> {
        match raw.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "--log-format (or MCP_GATEWAY_LOG_FORMAT) takes text or json, not {raw:?}"
            )),
        }
    }
}

/// Installs the logger: `RUST_LOG` sets the level, else `default_level`.
pub fn init(format: LogFormat, default_level: &str) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = json_line(
                &buf.timestamp().to_string(),
                record.level().as_str(),
                record.target(),
                &record.args().to_string(),
            );
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

/// One JSON log line (without its newline).
pub fn json_line(time: &str, level: &str, target: &str, message: &str) -> String {
    let mut line = serde_json::Map::new();
    line.insert("time".into(), time.into());
    line.insert("level".into(), level.into());
    line.insert("target".into(), target.into());
    if let Some(server) = server_of(message) {
        line.insert("server".into(), server.into());
    }
    line.insert("message".into(), message.into());
    serde_json::Value::Object(line).to_string()
}

/// The server a message is about, when it starts by naming one (see the module doc).
pub fn server_of(message: &str) -> Option<&str> {
    if let Some(rest) = message.strip_prefix("server ") {
        let name = rest.split([' ', ':']).next()?;
        let name = name.trim_matches('"');
        return (!name.is_empty()).then_some(name);
    }
    let first = message.split(' ').next()?;
    let (name, serial) = first.split_once('#')?;
    let serial = serial.trim_end_matches(':');
    let numbered = !serial.is_empty() && serial.bytes().all(|b| b.is_ascii_digit());
    (!name.is_empty() && numbered).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn formats_parse_in_any_case_and_others_are_refused() {
        assert_eq!(LogFormat::parse("JSON"), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), Ok(LogFormat::Text));
        assert!(LogFormat::parse("yaml")
            .unwrap_err()
            .contains("text or json"));
    }

    #[test]
    fn the_server_is_found_where_log_lines_name_it() {
        assert_eq!(
            server_of("server demo: started demo#1 (pid 7)"),
            Some("demo")
        );
        assert_eq!(
            server_of("server fetch connecting https://x"),
            Some("fetch")
        );
        assert_eq!(server_of("server \"odd\": down"), Some("odd"));
        assert_eq!(
            server_of("demo#3 (pid 12): hello from stderr"),
            Some("demo")
        );
        assert_eq!(server_of("git#12: reading its Stdout failed"), Some("git"));
        assert_eq!(server_of("stopping 3 server processes"), None);
        assert_eq!(
            server_of("refused a connection: maxClients (5) reached"),
            None
        );
        assert_eq!(server_of("issue #12 is open"), None);
        assert_eq!(server_of("a#b c"), None);
        assert_eq!(server_of("server "), None);
    }

    #[test]
    fn a_line_is_one_object_whatever_the_message_holds() {
        let line = json_line(
            "2026-12-01T10:00:00Z",
            "WARN",
            "mcp_gateway::child",
            "demo#1 (pid 9): two\nlines \"quoted\"",
        );
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "mcp_gateway::child");
        assert_eq!(v["server"], "demo");
        assert_eq!(v["message"], "demo#1 (pid 9): two\nlines \"quoted\"");
        assert_eq!(v["time"], "2026-12-01T10:00:00Z");
        let v: Value = serde_json::from_str(&json_line("t", "INFO", "x", "stopped")).unwrap();
        assert!(v.get("server").is_none());
    }
}
