//! Writing HTTP/1.1 responses and JSON error bodies into a caller-owned output buffer.
//!
//! Everything appends to a `Vec<u8>` (the connection's write buffer), so a response costs no
//! allocation beyond that buffer's growth and nothing here can fail.
//!
//! Invariants:
//! - A head written here is well-formed whatever the caller passes: CR, LF and NUL are stripped
//!   from header names and values (after a `debug_assert!`, since passing them is a bug), which
//!   rules out response splitting through a reflected value.
//! - The status line is always `HTTP/1.1`, the highest version we speak (RFC 9110 §2.5), also
//!   towards HTTP/1.0 clients.
//! - Statuses that forbid a body (1xx, 204, 304) never get one, and 1xx/204 never get a
//!   `Content-Length` (RFC 9110 §8.6), so the framing of the connection stays intact.
//! - JSON produced here is valid: strings are escaped per RFC 8259 §7.

/// The interim response owed to a client that sent `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The standard reason phrase for `status` (RFC 9110 §15), or "Unknown".
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Appends a complete response head: status line, `headers` in order, `Content-Length` when
/// `content_length` is `Some` (omitted for 1xx and 204, which must not carry it),
/// `Connection: close` when `!keep_alive`, then the blank line. Header names and values must not
/// contain CR, LF or NUL; they are stripped if they do.
pub fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    content_length: Option<usize>,
    keep_alive: bool,
) {
    push_status_line(out, status);
    push_headers(out, headers);
    finish_head(out, status, content_length, keep_alive);
}

/// Appends a whole response: head with `Content-Type`, `extra_headers` and `Content-Length`,
/// then `body`. For statuses that forbid a body (1xx, 204, 304) the body is not written.
/// (For a HEAD request, call [`write_head`] with the length instead.)
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
) {
    push_status_line(out, status);
    push_header(out, "Content-Type", content_type);
    push_headers(out, extra_headers);
    finish_head(out, status, Some(body.len()), keep_alive);
    if allows_body(status) {
        out.extend_from_slice(body);
    } else {
        debug_assert!(body.is_empty(), "status {status} cannot carry a body");
    }
}

/// Appends the head of a Server-Sent Events stream: 200, `Content-Type: text/event-stream`,
/// `Cache-Control: no-cache`, `X-Accel-Buffering: no` (stops nginx-style proxies from buffering
/// events), then `extra_headers`. No `Content-Length`: the stream is delimited by the connection
/// closing, so the connection is never reused afterwards.
pub fn write_sse_head(out: &mut Vec<u8>, extra_headers: &[(&str, &str)]) {
    push_status_line(out, 200);
    push_headers(
        out,
        &[
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
        ],
    );
    push_headers(out, extra_headers);
    out.extend_from_slice(b"\r\n");
}

/// Appends one chunk of a `Transfer-Encoding: chunked` body (nothing for empty data: an empty chunk
/// would end the body).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// `{"error":{"code":<code>,"message":"<message>"}}`
pub fn json_error_body(code: i64, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + message.len());
    out.extend_from_slice(b"{\"error\":");
    push_error_object(&mut out, code, message);
    out.push(b'}');
    out
}

/// `{"jsonrpc":"2.0","id":null,"error":{"code":<code>,"message":"<message>"}}`: a JSON-RPC error
/// response for when the request's id is unknown (e.g. it did not parse).
pub fn jsonrpc_error_body(code: i64, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":");
    push_error_object(&mut out, code, message);
    out.push(b'}');
    out
}

/// Appends `s` as a quoted JSON string: `"` and `\` escaped, control characters as their short
/// escapes or `\u00XX`. Everything else, non-ASCII included, is copied as UTF-8, which JSON allows.
pub fn escape_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    // Copy unescaped runs in bulk. Splitting at ASCII bytes never cuts a UTF-8 sequence, whose
    // bytes are all >= 0x80.
    let mut run_start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let short: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(run_start..i).unwrap_or_default());
        if short.is_empty() {
            let hex = |nibble: u8| HEX[usize::from(nibble & 0x0f)];
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(byte >> 4), hex(byte)]);
        } else {
            out.extend_from_slice(short);
        }
        run_start = i + 1;
    }
    out.extend_from_slice(bytes.get(run_start..).unwrap_or_default());
    out.push(b'"');
}

/// `{"code":<code>,"message":"<message>"}`
fn push_error_object(out: &mut Vec<u8>, code: i64, message: &str) {
    out.extend_from_slice(b"{\"code\":");
    if code < 0 {
        out.push(b'-');
    }
    push_decimal(out, code.unsigned_abs());
    out.extend_from_slice(b",\"message\":");
    escape_json_str(out, message);
    out.push(b'}');
}

fn push_status_line(out: &mut Vec<u8>, status: u16) {
    debug_assert!(
        (100..=999).contains(&status),
        "status {status} is not three digits"
    );
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_headers(out: &mut Vec<u8>, headers: &[(&str, &str)]) {
    for (name, value) in headers {
        push_header(out, name, value);
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    push_field_text(out, name);
    out.extend_from_slice(b": ");
    push_field_text(out, value);
    out.extend_from_slice(b"\r\n");
}

/// `Content-Length` and `Connection` as requested, then the blank line ending the head.
fn finish_head(out: &mut Vec<u8>, status: u16, content_length: Option<usize>, keep_alive: bool) {
    if let Some(length) = content_length.filter(|_| allows_content_length(status)) {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, length as u64);
        out.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Copies header text, dropping the bytes that could end the field early.
fn push_field_text(out: &mut Vec<u8>, text: &str) {
    let forbidden = |b: &u8| matches!(b, b'\r' | b'\n' | b'\0');
    debug_assert!(
        !text.as_bytes().iter().any(forbidden),
        "header text contains CR, LF or NUL: {text:?}"
    );
    out.extend(text.bytes().filter(|b| !forbidden(b)));
}

/// RFC 9110 §8.6: no `Content-Length` in 1xx and 204 responses.
fn allows_content_length(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204
}

/// RFC 9110 §6.4.1: 1xx, 204 and 304 responses end with their head.
fn allows_body(status: u16) -> bool {
    allows_content_length(status) && status != 304
}

/// Appends `n` in decimal without going through `fmt` (which would need an `io::Write` detour).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).expect("responses are ASCII/UTF-8")
    }

    #[test]
    fn reason_phrases() {
        let used = [
            100, 200, 202, 204, 400, 401, 403, 404, 405, 406, 409, 411, 413, 415, 417, 429, 431,
            500, 501, 502, 503, 504, 505,
        ];
        for status in used {
            assert_ne!(reason(status), "Unknown", "{status}");
        }
        assert_eq!(reason(200), "OK");
        assert_eq!(reason(431), "Request Header Fields Too Large");
        assert_eq!(reason(599), "Unknown");
    }

    #[test]
    fn head_formatting() {
        let mut out = Vec::new();
        write_head(
            &mut out,
            200,
            &[("Content-Type", "text/plain"), ("X-A", "b")],
            Some(5),
            true,
        );
        assert_eq!(
            text(&out),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: b\r\nContent-Length: 5\r\n\r\n"
        );
        out.clear();
        write_head(&mut out, 404, &[], Some(0), false);
        assert_eq!(
            text(&out),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        out.clear();
        write_head(&mut out, 202, &[], None, true);
        assert_eq!(text(&out), "HTTP/1.1 202 Accepted\r\n\r\n");
    }

    #[test]
    fn no_content_length_on_1xx_and_204() {
        let mut out = Vec::new();
        write_head(&mut out, 100, &[], Some(0), true);
        assert_eq!(out, CONTINUE);
        out.clear();
        write_head(&mut out, 204, &[], Some(0), true);
        assert_eq!(text(&out), "HTTP/1.1 204 No Content\r\n\r\n");
        out.clear();
        write_response(&mut out, 304, "application/json", &[], b"", true);
        assert_eq!(
            text(&out),
            "HTTP/1.1 304 Not Modified\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn response_with_body() {
        let mut out = b"previous".to_vec();
        write_response(
            &mut out,
            200,
            "application/json",
            &[("Mcp-Session-Id", "abc")],
            b"{\"ok\":true}",
            true,
        );
        assert_eq!(
            text(&out),
            "previousHTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: abc\r\n\
             Content-Length: 11\r\n\r\n{\"ok\":true}"
        );
    }

    #[test]
    fn sse_head() {
        let mut out = Vec::new();
        write_sse_head(&mut out, &[("Mcp-Session-Id", "s1")]);
        assert_eq!(
            text(&out),
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
             X-Accel-Buffering: no\r\nMcp-Session-Id: s1\r\n\r\n"
        );
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "CR, LF or NUL")]
    fn header_injection_is_a_bug_in_debug() {
        write_head(
            &mut Vec::new(),
            200,
            &[("X", "a\r\nSet-Cookie: x")],
            None,
            true,
        );
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn header_injection_is_stripped_in_release() {
        let mut out = Vec::new();
        write_head(
            &mut out,
            200,
            &[("X\n", "a\r\nSet-Cookie: x\0")],
            None,
            true,
        );
        assert_eq!(text(&out), "HTTP/1.1 200 OK\r\nX: aSet-Cookie: x\r\n\r\n");
    }

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        escape_json_str(&mut out, s);
        String::from_utf8(out).expect("escaping keeps UTF-8")
    }

    #[test]
    fn json_escaping() {
        assert_eq!(escaped(""), r#""""#);
        assert_eq!(escaped("plain"), r#""plain""#);
        assert_eq!(escaped(r#"say "hi" \ bye"#), r#""say \"hi\" \\ bye""#);
        assert_eq!(escaped("a\nb\rc\td\u{8}e\u{c}f"), r#""a\nb\rc\td\be\ff""#);
        assert_eq!(
            escaped("\0\u{1}\u{1f}\u{7f}"),
            "\"\\u0000\\u0001\\u001f\u{7f}\""
        );
        assert_eq!(escaped("héllo ✓ 🦀"), "\"héllo ✓ 🦀\"");
        // Whatever goes in comes back out of a real JSON parser.
        let nasty: String = (0u32..0x80)
            .filter_map(char::from_u32)
            .chain("é✓🦀\u{2028}".chars())
            .collect();
        let parsed: String = serde_json::from_str(&escaped(&nasty)).expect("valid JSON string");
        assert_eq!(parsed, nasty);
    }

    #[test]
    fn chunks() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"");
        assert!(out.is_empty());
        write_chunk(&mut out, &[b'x'; 26]);
        out.extend_from_slice(LAST_CHUNK);
        assert_eq!(
            out,
            [&b"1a\r\n"[..], &[b'x'; 26], b"\r\n0\r\n\r\n"].concat()
        );
    }

    #[test]
    fn error_bodies() {
        let body = json_error_body(-32600, "bad \"request\"\n");
        assert_eq!(
            text(&body),
            r#"{"error":{"code":-32600,"message":"bad \"request\"\n"}}"#
        );
        let body = jsonrpc_error_body(-32700, "parse error");
        assert_eq!(
            text(&body),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#
        );
        for code in [0, 42, -1, i64::MIN, i64::MAX] {
            let value: serde_json::Value =
                serde_json::from_slice(&json_error_body(code, "m")).expect("valid JSON");
            assert_eq!(value["error"]["code"].to_string(), code.to_string());
        }
    }
}
