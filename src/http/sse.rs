//! Server-Sent Events: framing events onto a stream, and an incremental parser for reading one.
//!
//! The writer serves the gateway's SSE responses; the parser is for the client side (remote MCP
//! servers, tests). Both follow the WHATWG HTML "Server-sent events" section.
//!
//! Invariants:
//! - The writer cannot be tricked into emitting extra fields or events: payloads are split into
//!   one `data:` (or comment) line per line of input, and CR/LF are stripped from event names
//!   and ids, so the only blank line written is the one that ends the event.
//! - The parser accepts any bytes without panicking. Lines may end in CRLF, LF or CR, split
//!   anywhere across `feed` calls (including between the CR and LF of one CRLF, and inside a
//!   leading BOM). Invalid UTF-8 is replaced with U+FFFD, as the spec's decoder does.
//! - The parser's memory is bounded: an event whose pending bytes exceed its limit is dropped
//!   whole (counted in [`SseParser::dropped_events`]) rather than buffered without end.
//! - Parsing is O(input): each byte is scanned once to find line ends.

use std::mem;

/// Appends one event: `event:` and `id:` lines when given, one `data:` line per line of `data`
/// (split on CRLF, LF and CR, so multi-line payloads survive; a reader rejoins them with LF), then
/// the blank line that dispatches it. Event names and ids must not contain CR or LF (they are
/// stripped if they do).
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, id: Option<&str>, data: &[u8]) {
    for (name, value) in [("event", event), ("id", id)] {
        if let Some(value) = value {
            debug_assert!(
                !value.contains(['\r', '\n']),
                "SSE {name} contains CR or LF"
            );
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend(value.bytes().filter(|b| !matches!(b, b'\r' | b'\n')));
            out.push(b'\n');
        }
    }
    push_lines(out, b"data: ", data);
    out.push(b'\n');
}

/// Appends a comment (`: text`, one comment line per line of `text`) and a blank line. Readers
/// ignore comments; they keep idle connections and proxies from timing out.
pub fn write_comment(out: &mut Vec<u8>, text: &str) {
    push_lines(out, b": ", text.as_bytes());
    out.push(b'\n');
}

/// Appends `prefix` + line + LF for each line of `text` (at least one, possibly empty).
fn push_lines(out: &mut Vec<u8>, prefix: &[u8], text: &[u8]) {
    let mut rest = text;
    loop {
        let end = rest.iter().position(|&b| b == b'\r' || b == b'\n');
        let line = rest.get(..end.unwrap_or(rest.len())).unwrap_or_default();
        out.extend_from_slice(prefix);
        out.extend_from_slice(line);
        out.push(b'\n');
        let Some(end) = end else { return };
        let terminator = match rest.get(end..) {
            Some([b'\r', b'\n', ..]) => 2,
            _ => 1,
        };
        rest = rest.get(end + terminator..).unwrap_or_default();
    }
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, or "message" when absent or empty.
    pub event: String,
    /// The `data:` lines joined with LF.
    pub data: String,
    /// The last event id in effect (it carries over from earlier events, per the spec), or
    /// `None` when no id was ever set or it was reset with an empty `id:`.
    pub id: Option<String>,
    /// A valid `retry:` field seen within this event's lines.
    pub retry: Option<u64>,
}

/// Default for [`SseParser::with_max_event_bytes`]: 16 MiB.
const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Incremental SSE parser; feed it bytes as they arrive.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of the current, unterminated line.
    line: Vec<u8>,
    /// The last byte fed was a CR: an LF right after it belongs to the same line end.
    after_cr: bool,
    /// How much of a UTF-8 BOM has been matched at the stream start; `None` once past it.
    bom_matched: Option<usize>,
    /// Data buffer: each `data` value followed by LF.
    data: String,
    /// Event type buffer.
    event: String,
    /// `retry` seen since the last dispatch.
    retry: Option<u64>,
    /// Last event ID buffer; survives dispatches.
    last_id: String,
    /// Last valid `retry`, which the spec makes the stream's reconnection time.
    reconnection_time: Option<u64>,
    max_event_bytes: usize,
    /// Skipping the rest of an oversized event, up to its blank line.
    discarding: bool,
    /// While `discarding`: the current line had bytes (so it is not the blank line).
    discarded_line_bytes: bool,
    dropped_events: u64,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A parser that drops any event whose pending line and data exceed `max_event_bytes`.
    pub fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        SseParser {
            line: Vec::new(),
            after_cr: false,
            bom_matched: Some(0),
            data: String::new(),
            event: String::new(),
            retry: None,
            last_id: String::new(),
            reconnection_time: None,
            max_event_bytes,
            discarding: false,
            discarded_line_bytes: false,
            dropped_events: 0,
        }
    }

    /// Parses `bytes` and returns the events they complete. Partial lines and events are kept
    /// for the next call; an event still incomplete when the stream ends is never dispatched.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let mut rest = self.skip_bom(bytes);
        while !rest.is_empty() {
            if mem::take(&mut self.after_cr) {
                if let [b'\n', tail @ ..] = rest {
                    rest = tail;
                    continue;
                }
            }
            let Some(end) = rest.iter().position(|&b| b == b'\r' || b == b'\n') else {
                self.push_line_bytes(rest);
                break;
            };
            let (line, tail) = rest.split_at(end);
            self.push_line_bytes(line);
            self.after_cr = tail.first() == Some(&b'\r');
            rest = tail.get(1..).unwrap_or_default();
            self.end_line(&mut events);
        }
        events
    }

    /// The last event ID buffer (what a reconnecting client sends as `Last-Event-ID`).
    pub fn last_event_id(&self) -> Option<&str> {
        Some(self.last_id.as_str()).filter(|id| !id.is_empty())
    }

    /// The reconnection time in milliseconds from the last valid `retry:` field, if any.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.reconnection_time
    }

    /// How many events were dropped for exceeding the size limit.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Strips a UTF-8 BOM at the very start of the stream, even when split across feeds.
    fn skip_bom<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let Some(matched) = self.bom_matched else {
            return bytes;
        };
        let expected = BOM.get(matched..).unwrap_or_default();
        let n = expected.len().min(bytes.len());
        if bytes.get(..n) == expected.get(..n) {
            self.bom_matched = Some(matched + n).filter(|&m| m < BOM.len());
            bytes.get(n..).unwrap_or_default()
        } else {
            // Not a BOM after all: the bytes held back so far are ordinary line content.
            self.bom_matched = None;
            self.push_line_bytes(BOM.get(..matched).unwrap_or_default());
            bytes
        }
    }

    /// Adds bytes (free of CR/LF) to the current line, enforcing the event size limit.
    fn push_line_bytes(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if !self.discarding
            && (self.line.len() + self.data.len()).saturating_add(bytes.len())
                > self.max_event_bytes
        {
            self.discarding = true;
            self.dropped_events += 1;
            self.line = Vec::new();
            self.data = String::new();
            self.event.clear();
            self.retry = None;
        }
        if self.discarding {
            self.discarded_line_bytes = true;
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    /// Handles the line that just ended.
    fn end_line(&mut self, events: &mut Vec<SseEvent>) {
        if self.discarding {
            // Only the blank line that ends the oversized event brings the parser back.
            if !mem::take(&mut self.discarded_line_bytes) {
                self.discarding = false;
            }
            return;
        }
        if self.line.is_empty() {
            self.dispatch(events);
            return;
        }
        let line = mem::take(&mut self.line);
        self.process_field(&String::from_utf8_lossy(&line));
        // Give the allocation back for the next line.
        self.line = line;
        self.line.clear();
    }

    /// Applies one non-blank line.
    fn process_field(&mut self, line: &str) {
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // An id containing NUL is ignored, per the spec.
            "id" if !value.contains('\0') => value.clone_into(&mut self.last_id),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // Too many digits for u64: no sane reconnection time, ignore like other junk.
                if let Ok(ms) = value.parse() {
                    self.retry = Some(ms);
                    self.reconnection_time = Some(ms);
                }
            }
            // Comments (empty name) and unknown fields are ignored.
            _ => {}
        }
    }

    /// The blank line: emit the buffered event, if it has any data.
    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        let retry = self.retry.take();
        let event = mem::take(&mut self.event);
        if self.data.is_empty() {
            return;
        }
        let mut data = mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        events.push(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.last_event_id().map(str::to_owned),
            retry,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event: Option<&str>, id: Option<&str>, data: &[u8]) -> String {
        let mut out = Vec::new();
        write_event(&mut out, event, id, data);
        String::from_utf8(out).expect("UTF-8 in, UTF-8 out")
    }

    fn message(data: &str) -> SseEvent {
        SseEvent {
            event: "message".to_owned(),
            data: data.to_owned(),
            id: None,
            retry: None,
        }
    }

    /// Parses `input` whole, split in two at every boundary, and byte by byte; all must agree.
    fn parse_every_way(input: &[u8]) -> Vec<SseEvent> {
        let expected = SseParser::new().feed(input);
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            let mut parser = SseParser::new();
            let mut events = parser.feed(a);
            events.extend(parser.feed(b));
            assert_eq!(events, expected, "split at {split}");
        }
        let mut parser = SseParser::new();
        let events: Vec<_> = input.chunks(1).flat_map(|byte| parser.feed(byte)).collect();
        assert_eq!(events, expected, "byte by byte");
        expected
    }

    #[test]
    fn writing_events() {
        assert_eq!(event(None, None, b"{}"), "data: {}\n\n");
        assert_eq!(
            event(Some("message"), Some("7"), b"a\nb\r\nc\rd"),
            "event: message\nid: 7\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(event(None, None, b""), "data: \n\n");
        assert_eq!(event(None, None, b"x\n"), "data: x\ndata: \n\n");
        assert_eq!(event(None, None, b"\r\n\r\n"), "data: \ndata: \ndata: \n\n");
    }

    #[test]
    fn writing_comments() {
        let mut out = Vec::new();
        write_comment(&mut out, "keepalive");
        assert_eq!(out, b": keepalive\n\n");
        out.clear();
        write_comment(&mut out, "two\nlines");
        assert_eq!(out, b": two\n: lines\n\n");
        assert!(SseParser::new().feed(&out).is_empty());
    }

    #[test]
    fn round_trip() {
        let payloads: [&[u8]; 7] = [
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}",
            b"line one\nline two\n\nline four",
            b"",
            b"\n",
            b" leading space and trailing \n",
            b"data: looks like a field\n\nand a blank line",
            "unicode ✓ 🦀".as_bytes(),
        ];
        let mut stream = Vec::new();
        write_comment(&mut stream, "hello");
        for (i, payload) in payloads.iter().enumerate() {
            let id = i.to_string();
            write_event(&mut stream, Some("update"), Some(&id), payload);
        }
        let events = parse_every_way(&stream);
        assert_eq!(events.len(), payloads.len());
        for (i, (got, payload)) in events.iter().zip(payloads).enumerate() {
            assert_eq!(got.event, "update");
            assert_eq!(got.data.as_bytes(), payload);
            assert_eq!(got.id.as_deref(), Some(i.to_string().as_str()));
        }
    }

    #[test]
    fn crlf_and_cr_line_ends_normalise_to_lf() {
        let mut stream = Vec::new();
        write_event(&mut stream, None, None, b"a\r\nb\rc");
        assert_eq!(parse_every_way(&stream), vec![message("a\nb\nc")]);
        let input = b"data: one\r\ndata: two\r\rdata: three\r\n\r\ndata: four\n\n";
        assert_eq!(
            parse_every_way(input),
            vec![message("one\ntwo"), message("three"), message("four")]
        );
    }

    #[test]
    fn cr_then_lf_in_the_next_feed_is_one_line_end() {
        let mut parser = SseParser::new();
        assert!(parser.feed(b"data: x\r").is_empty());
        // The LF completes the CRLF; only the second CRLF is the blank line.
        assert!(parser.feed(b"\n").is_empty());
        assert_eq!(parser.feed(b"\r\n"), vec![message("x")]);
    }

    #[test]
    fn field_parsing_rules() {
        let input = b": comment\n\
            data\n\n\
            data:no space\n\n\
            data:  two spaces\n\n\
            event:\ndata: x\n\n\
            event: custom\nunknown: field\ndata: y\n\n\
            event: lonely\n\n\
            data: z\n";
        assert_eq!(
            parse_every_way(input),
            vec![
                message(""),
                message("no space"),
                message(" two spaces"),
                message("x"),
                SseEvent {
                    event: "custom".to_owned(),
                    ..message("y")
                },
            ],
            "the event without data and the unterminated one are not dispatched"
        );
    }

    #[test]
    fn ids_persist_and_reset() {
        let input = b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: x\0y\ndata: d\n\n";
        let ids: Vec<_> = parse_every_way(input).into_iter().map(|e| e.id).collect();
        assert_eq!(
            ids,
            vec![Some("1".to_owned()), Some("1".to_owned()), None, None]
        );
        let mut parser = SseParser::new();
        parser.feed(b"id: 42\n\n");
        assert_eq!(
            parser.last_event_id(),
            Some("42"),
            "an id-only block still sets the id"
        );
    }

    #[test]
    fn retry_field() {
        let input = b"retry: 3000\ndata: a\n\nretry: 1x\ndata: b\n\nretry: 99999999999999999999999\ndata: c\n\n";
        let retries: Vec<_> = parse_every_way(input)
            .into_iter()
            .map(|e| e.retry)
            .collect();
        assert_eq!(retries, vec![Some(3000), None, None]);
        let mut parser = SseParser::new();
        parser.feed(b"retry: 500\n\n");
        assert_eq!(parser.reconnection_time(), Some(500));
    }

    #[test]
    fn bom_at_stream_start_is_skipped() {
        let input = b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n";
        let events = parse_every_way(input);
        assert_eq!(events[0], message("a"));
        // Only the first BOM is special; later ones are content (here a field name).
        assert_eq!(events.len(), 1);
        // A partial BOM that turns out not to be one is kept as content.
        let mut parser = SseParser::new();
        assert!(parser.feed(b"\xEF").is_empty());
        assert!(
            parser.feed(b"data: q\n\n").is_empty(),
            "a stray 0xEF turns the field name into an unknown one"
        );
        assert_eq!(parser.feed(b"data: r\n\n"), vec![message("r")]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(
            parse_every_way(b"data: a\xffb\n\n"),
            vec![message("a\u{FFFD}b")]
        );
    }

    #[test]
    fn oversized_events_are_dropped_whole() {
        let mut parser = SseParser::with_max_event_bytes(16);
        let mut input = Vec::new();
        write_event(&mut input, None, None, b"short");
        write_event(
            &mut input,
            None,
            None,
            b"this line is far too long\nand more",
        );
        write_event(&mut input, None, None, b"ok\nagain");
        let events: Vec<_> = input
            .chunks(3)
            .flat_map(|piece| parser.feed(piece))
            .collect();
        assert_eq!(events, vec![message("short"), message("ok\nagain")]);
        assert_eq!(parser.dropped_events(), 1);
    }

    #[test]
    fn random_input_never_panics() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"data:event:id:retry: 0123\r\n\xEF\xBB\xBF\xff\0";
        for _ in 0..500 {
            let mut parser = SseParser::with_max_event_bytes(64);
            let len = (next() % 200) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let mut rest = input.as_slice();
            while !rest.is_empty() {
                let take = 1 + (next() % 17) as usize;
                let (piece, tail) = rest.split_at(take.min(rest.len()));
                for event in parser.feed(piece) {
                    assert!(event.data.len() <= 64);
                }
                rest = tail;
            }
        }
    }
}
