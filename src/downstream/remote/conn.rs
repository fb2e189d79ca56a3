//! A blocking HTTP/1.1 client connection to one origin, for the threads that talk to remote MCP
//! servers (Streamable HTTP and the legacy SSE transport) and for the stdio bridge: the HTTP
//! exchange (requests, response heads, bodies, SSE events) over a `socket::Transport` (TCP, or
//! TLS over TCP).
//!
//! One [`Conn`] carries one request at a time: [`Conn::send`] writes the request and returns the
//! response head; the body is then read whole ([`Conn::read_body`]), as SSE events
//! ([`Conn::next_event`]), or discarded ([`Conn::finish_body`]). After that the connection can take
//! another request if [`Conn::reusable`] says so.
//!
//! Invariants:
//! - Every blocking wait is bounded by the caller's deadline: each socket read or write runs with
//!   the socket timeout set to the time left (`wait::with_deadline`), the TLS handshake included;
//!   so is name resolution when the caller resolves through `target` and [`Conn::connect_to`].
//! - A connection is reused only when the previous response was read to its exact end, the server
//!   allowed keep-alive, nothing unexpected is buffered, and no error occurred. Any error other
//!   than a [`ConnError::Timeout`] while waiting for an SSE event makes it unusable for good,
//!   so a half-read response can never be mistaken for the next one.
//! - No server input panics or grows memory without bound: heads are limited to 64 KiB and 100
//!   fields, whole bodies to the caller's `max`, SSE events to the parser's per-event limit.
//! - A [`Closer`] (cloneable, `Send + Sync`) shuts the socket down from another thread, waking a
//!   reader blocked in `next_event` with [`ConnError::Shutdown`].

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

pub use super::framing::Framing;
use super::framing::{self, ChunkedDecoder, MAX_HEAD_BYTES};
pub use super::socket::Closer;
use super::socket::Transport;
use super::tls::Tls;
pub use super::url::Url;
pub use super::wait::{no_deadline, ConnError};
pub use crate::http::SseEvent;
use crate::http::SseParser;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Most informational (1xx) responses skipped before the real one.
const MAX_INTERIM_RESPONSES: usize = 16;
/// Most body bytes [`Conn::finish_body`] reads to save a connection; past that, closing it and
/// opening a new one is cheaper.
const DRAIN_LIMIT: usize = 256 * 1024;
/// Where reading the current response body stands.
#[derive(Debug)]
enum Body {
    /// Read to its end (or there was none).
    Done,
    /// The request (with this method) went out; its response head has not been read yet.
    Head(String),
    /// `Content-Length` bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Until the server closes the connection.
    UntilClose,
}

/// The head of a response: status and header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Names lower-cased, values trimmed, in the order received.
    pub headers: Vec<(String, String)>,
    framing: Framing,
    /// Which response on its connection this is, so a stale head is refused.
    serial: u64,
}

impl ResponseHead {
    /// The first value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether `Content-Type` is the media type `media` (parameters such as charset ignored).
    pub fn content_type_is(&self, media: &str) -> bool {
        self.header("content-type").is_some_and(|value| {
            let essence = value.split(';').next().unwrap_or_default();
            essence.trim().eq_ignore_ascii_case(media)
        })
    }

    /// How the body is delimited.
    pub fn framing(&self) -> Framing {
        self.framing
    }
}

/// One keep-alive HTTP/1.1 connection to an origin. `Send`: it can move to a reader thread.
pub struct Conn {
    io: Transport,
    /// `Host` header value.
    authority: String,
    origin: String,
    /// Bytes read but not consumed: `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// Serial of the current response (0 before the first request).
    serial: u64,
    body: Body,
    /// The server allows another request after the current response.
    keep_alive: bool,
    /// An error left the connection in an unknown state.
    broken: bool,
    sse: SseParser,
    events: VecDeque<SseEvent>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("origin", &self.origin)
            .field("serial", &self.serial)
            .field("body", &self.body)
            .field("reusable", &self.reusable())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Connects to `url`'s origin (TCP, then the TLS handshake for `https`) before `deadline`.
    /// `tls` is the server's trust settings, used for `https` only; `None` means the system
    /// roots. Name resolution here blocks without regard to the deadline (std has no other
    /// resolver): for hosts that may be slow to resolve, use [`Conn::connect_to`].
    pub fn connect(url: &Url, tls: Option<&Tls>, deadline: Instant) -> Result<Conn, ConnError> {
        let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| {
                let host = &url.host;
                ConnError::Io(io::Error::new(
                    e.kind(),
                    format!("cannot resolve {host}: {e}"),
                ))
            })?
            .collect();
        Conn::connect_to(url, &addrs, tls, deadline)
    }

    /// Connects to `url`'s origin at one of `addrs` (tried in turn) before `deadline`.
    pub fn connect_to(
        url: &Url,
        addrs: &[SocketAddr],
        tls: Option<&Tls>,
        deadline: Instant,
    ) -> Result<Conn, ConnError> {
        Ok(Conn {
            io: Transport::connect(url, addrs, tls, deadline)?,
            authority: url.authority(),
            origin: url.origin(),
            buf: Vec::new(),
            pos: 0,
            serial: 0,
            body: Body::Done,
            keep_alive: true,
            broken: false,
            sse: SseParser::new(),
            events: VecDeque::new(),
        })
    }

    /// `scheme://host:port` of the server.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Sends a request and reads the response head (interim 1xx responses are skipped). `Host`,
    /// `Content-Length` (when there is a body, or for POST, PUT and PATCH) and
    /// `Connection: keep-alive` are added here; the caller must not pass them. Fails with
    /// [`ConnError::Closed`] at once if the connection is not [`reusable`](Conn::reusable).
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<ResponseHead, ConnError> {
        self.start(method, path, headers, body, deadline)?;
        let result = self.response_head(deadline);
        self.guard(result)
    }

    /// Writes a request without waiting for its response: [`Conn::response_head`] reads that,
    /// in as many bounded waits as the caller likes. Same rules as [`Conn::send`].
    pub fn start(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<(), ConnError> {
        if !matches!(self.body, Body::Done) && !self.broken {
            return Err(ConnError::InvalidRequest(
                "the previous response's body was not read to its end (call finish_body)".into(),
            ));
        }
        if !self.reusable() {
            return Err(ConnError::Closed);
        }
        let request = build_request(&self.authority, method, path, headers, body)?;
        self.serial += 1;
        self.sse = SseParser::new();
        self.events.clear();
        self.body = Body::Head(method.to_string());
        let result = self.io.write_all(&request, deadline);
        self.guard(result)
    }

    /// The head of the response to the request [`start`](Conn::start)ed (interim 1xx responses
    /// skipped). A [`ConnError::Timeout`] leaves the connection intact: the caller may wait again.
    pub fn response_head(&mut self, deadline: Instant) -> Result<ResponseHead, ConnError> {
        let Body::Head(method) = &self.body else {
            return Err(ConnError::InvalidRequest(
                "no request is waiting for its response head".into(),
            ));
        };
        let method = method.clone();
        match self.read_response_head(&method, deadline) {
            Err(ConnError::Timeout) => Err(ConnError::Timeout),
            other => self.guard(other),
        }
    }

    /// Reads the rest of the body of the response `head` (at most `max` bytes, else
    /// [`ConnError::TooLarge`]), leaving the connection reusable if the server allows.
    pub fn read_body(
        &mut self,
        head: &ResponseHead,
        max: usize,
        deadline: Instant,
    ) -> Result<Vec<u8>, ConnError> {
        self.check_current(head)?;
        let mut body = Vec::new();
        let result = self.read_all(&mut body, max, deadline);
        self.guard(result).map(|()| body)
    }

    /// The next SSE event of the body of `head`, or `None` at the end of the body. Waits until
    /// `deadline` for it; a [`ConnError::Timeout`] leaves the stream intact, so the caller may
    /// call again (with [`no_deadline`] to block until an event or a [`Closer`]).
    pub fn next_event(
        &mut self,
        head: &ResponseHead,
        deadline: Instant,
    ) -> Result<Option<SseEvent>, ConnError> {
        self.check_current(head)?;
        let mut bytes = Vec::new();
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            bytes.clear();
            match self.read_some(&mut bytes, deadline) {
                Ok(true) => self.events.extend(self.sse.feed(&bytes)),
                Ok(false) => return Ok(None),
                // No byte was lost: the parser still holds any partial event.
                Err(ConnError::Timeout) => return Err(ConnError::Timeout),
                Err(e) => return self.guard(Err(e)),
            }
        }
    }

    /// Discards the rest of the body of `head` so the connection can be reused. A body that
    /// only ends when the server closes, or more than a few hundred KiB of it, is not worth
    /// reading: the connection is marked unusable instead and `Ok` returned. An error while
    /// draining also marks it unusable; a caller that already has its answer may ignore it.
    pub fn finish_body(&mut self, head: &ResponseHead, deadline: Instant) -> Result<(), ConnError> {
        self.check_current(head)?;
        self.events.clear();
        let worth_draining = match &self.body {
            Body::Done => return Ok(()),
            Body::Head(_) => false,
            Body::Length(left) => *left <= DRAIN_LIMIT as u64,
            Body::Chunked(_) => true,
            Body::UntilClose => false,
        };
        if !worth_draining {
            self.broken = true;
            return Ok(());
        }
        let mut sink = Vec::new();
        let mut drained = 0;
        loop {
            sink.clear();
            match self.read_some(&mut sink, deadline) {
                Ok(true) if drained + sink.len() <= DRAIN_LIMIT => drained += sink.len(),
                Ok(true) => {
                    self.broken = true;
                    return Ok(());
                }
                Ok(false) => return Ok(()),
                Err(e) => return self.guard(Err(e)),
            }
        }
    }

    /// Whether the connection can take another request: the last body was read to its end, the
    /// server did not ask to close, nothing unexpected is buffered, and no error occurred.
    pub fn reusable(&self) -> bool {
        matches!(self.body, Body::Done)
            && self.keep_alive
            && !self.broken
            && self.pos == self.buf.len()
            && !self.io.shut_down()
    }

    /// Whether an idle, [`reusable`](Conn::reusable) connection has since been closed by the
    /// server (or received something unasked). Never blocks; check it before reusing a pooled
    /// connection to avoid most [`ConnError::Closed`] retries.
    pub fn is_stale(&mut self) -> bool {
        if !self.reusable() {
            return true;
        }
        let stale = self.io.idle_closed();
        if stale {
            self.broken = true;
        }
        stale
    }

    /// A handle that shuts this connection down from any thread.
    pub fn closer(&self) -> Closer {
        self.io.closer()
    }

    /// The SSE `id` in effect on the current response's stream (what resuming it sends as
    /// `Last-Event-ID`), even from an event without data such as a priming event.
    pub fn last_event_id(&self) -> Option<&str> {
        self.sse.last_event_id()
    }

    /// The reconnection time in milliseconds the current response's stream asked for (`retry`).
    pub fn reconnection_time(&self) -> Option<u64> {
        self.sse.reconnection_time()
    }

    /// Shuts the connection down (see [`Closer::shutdown`]).
    pub fn shutdown(&self) {
        self.closer().shutdown();
    }

    /// Reads the head of the response to the request in flight.
    fn read_response_head(
        &mut self,
        method: &str,
        deadline: Instant,
    ) -> Result<ResponseHead, ConnError> {
        let mut interim = 0;
        let head = loop {
            let head = self.read_head(method, deadline)?;
            match head.status {
                101 => {
                    return Err(ConnError::Protocol(
                        "the server switched protocols unasked (101)".into(),
                    ))
                }
                // 100 Continue, 103 Early Hints...: informational, the answer follows.
                100..=199 if interim < MAX_INTERIM_RESPONSES => interim += 1,
                100..=199 => {
                    return Err(ConnError::Protocol(
                        "the server sent informational (1xx) responses without end".into(),
                    ))
                }
                _ => break head,
            }
        };
        self.keep_alive = head.keep_alive;
        self.body = match head.framing {
            Framing::Empty | Framing::Length(0) => Body::Done,
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(framing::chunked_decoder()),
            Framing::UntilClose => Body::UntilClose,
        };
        Ok(ResponseHead {
            status: head.status,
            headers: head.headers,
            framing: head.framing,
            serial: self.serial,
        })
    }

    /// Reads and parses one response head.
    fn read_head(&mut self, method: &str, deadline: Instant) -> Result<framing::Head, ConnError> {
        let too_large = || {
            let kib = MAX_HEAD_BYTES / 1024;
            ConnError::Protocol(format!("the response head is larger than {kib} KiB"))
        };
        let mut scanned = 0;
        let end = loop {
            let unread = self.buf.get(self.pos..).unwrap_or_default();
            if let Some(end) = framing::find_head_end(unread, &mut scanned) {
                break end;
            }
            if unread.len() >= MAX_HEAD_BYTES {
                return Err(too_large());
            }
            if self.fill(deadline)? == 0 {
                return Err(ConnError::Closed);
            }
        };
        if end > MAX_HEAD_BYTES {
            return Err(too_large());
        }
        let bytes = self.buf.get(self.pos..self.pos + end).unwrap_or_default();
        let head = framing::parse_head(bytes, method).map_err(ConnError::Protocol)?;
        self.pos += end;
        Ok(head)
    }

    /// Reads from the transport into the buffer; returns the count, 0 at the end of the stream.
    fn fill(&mut self, deadline: Instant) -> Result<usize, ConnError> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        let result = self
            .io
            .read(self.buf.get_mut(start..).unwrap_or_default(), deadline);
        self.buf.truncate(start + *result.as_ref().unwrap_or(&0));
        result
    }

    /// Appends decoded body bytes to `out`: what is buffered, or else what one socket read
    /// brings. `Ok(false)` once the body has ended (nothing appended then).
    fn read_some(&mut self, out: &mut Vec<u8>, deadline: Instant) -> Result<bool, ConnError> {
        loop {
            let before = out.len();
            self.decode_buffered(out)?;
            if out.len() > before {
                return Ok(true);
            }
            if matches!(self.body, Body::Done) {
                return Ok(false);
            }
            if self.fill(deadline)? == 0 {
                return match self.body {
                    Body::UntilClose => {
                        self.body = Body::Done;
                        Ok(false)
                    }
                    _ => Err(ConnError::Closed),
                };
            }
        }
    }

    /// Moves the buffered bytes that belong to the body, decoded, into `out`.
    fn decode_buffered(&mut self, out: &mut Vec<u8>) -> Result<(), ConnError> {
        let input = self.buf.get(self.pos..).unwrap_or_default();
        let consumed = match &mut self.body {
            Body::Done | Body::Head(_) => 0,
            Body::Length(left) => {
                let take = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                out.extend_from_slice(input.get(..take).unwrap_or_default());
                *left -= take as u64;
                take
            }
            Body::Chunked(decoder) => decoder
                .decode(input, out)
                .map_err(|e| ConnError::Protocol(framing::describe_chunk_error(e)))?,
            Body::UntilClose => {
                out.extend_from_slice(input);
                input.len()
            }
        };
        self.pos += consumed;
        let ended = match &self.body {
            Body::Length(left) => *left == 0,
            Body::Chunked(decoder) => decoder.is_done(),
            Body::Done | Body::Head(_) | Body::UntilClose => false,
        };
        if ended {
            self.body = Body::Done;
        }
        Ok(())
    }

    /// Reads the whole rest of the body into `out`, failing past `max` bytes.
    fn read_all(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        deadline: Instant,
    ) -> Result<(), ConnError> {
        if let Body::Length(declared) = self.body {
            if declared > max as u64 {
                return Err(ConnError::TooLarge(max));
            }
            // Declared, not received: reserve no more than a read's worth on its word.
            out.reserve(usize::try_from(declared).map_or(READ_CHUNK, |n| n.min(1 << 20)));
        }
        while self.read_some(out, deadline)? {
            if out.len() > max {
                return Err(ConnError::TooLarge(max));
            }
        }
        Ok(())
    }

    /// Refuses a head from an earlier request: its body is gone.
    fn check_current(&self, head: &ResponseHead) -> Result<(), ConnError> {
        if head.serial != self.serial {
            return Err(ConnError::InvalidRequest(
                "that response head belongs to an earlier request on this connection".into(),
            ));
        }
        Ok(())
    }

    /// Marks the connection unusable if `result` is an error.
    fn guard<T>(&mut self, result: Result<T, ConnError>) -> Result<T, ConnError> {
        if result.is_err() {
            self.broken = true;
        }
        result
    }
}

impl AsRawFd for Conn {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

/// Header fields the connection writes itself.
const OWN_HEADERS: [&str; 4] = ["host", "content-length", "connection", "transfer-encoding"];

/// The request's bytes, after checking that nothing in it can break the framing.
fn build_request(
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<u8>, ConnError> {
    let invalid = |words: String| Err(ConnError::InvalidRequest(words));
    if !is_token(method) {
        return invalid(format!("'{method}' is not a valid method"));
    }
    if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b >= 0x7F) {
        return invalid(format!("'{path}' is not a valid request target"));
    }
    for (name, value) in headers {
        if !is_token(name) {
            return invalid(format!("'{name}' is not a valid header name"));
        }
        if OWN_HEADERS.iter().any(|own| own.eq_ignore_ascii_case(name)) {
            return invalid(format!("the {name} header is set by the connection"));
        }
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
            return invalid(format!("the {name} header's value contains CR, LF or NUL"));
        }
    }
    let mut out = Vec::with_capacity(256 + body.len());
    let mut line = |text: &str| {
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    line(&format!("{method} {path} HTTP/1.1"));
    line(&format!("Host: {authority}"));
    for (name, value) in headers {
        line(&format!("{name}: {value}"));
    }
    let has_body = !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH");
    if has_body {
        line(&format!("Content-Length: {}", body.len()));
    }
    line("Connection: keep-alive");
    line("");
    out.extend_from_slice(body);
    Ok(out)
}

/// An RFC 9110 token (methods and header names).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    //! Unit tests of request building, then a real client against scripted servers on
    //! 127.0.0.1 (std `TcpListener`, one thread per test server; rustls `ServerConnection` with a
    //! certificate minted here for TLS).

    use super::*;
    use std::io::{BufRead, ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    // ---- request building ----

    #[test]
    fn requests_are_framed_by_the_connection() {
        let bytes = build_request(
            "h:8080",
            "POST",
            "/mcp?x=1",
            &[("Accept", "application/json, text/event-stream")],
            b"{}",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "POST /mcp?x=1 HTTP/1.1\r\nHost: h:8080\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: 2\r\n\
             Connection: keep-alive\r\n\r\n{}"
        );
        let get = build_request("h", "GET", "/sse", &[], b"").unwrap();
        assert!(!String::from_utf8(get).unwrap().contains("Content-Length"));
        let empty_post = build_request("h", "POST", "/", &[], b"").unwrap();
        assert!(String::from_utf8(empty_post)
            .unwrap()
            .contains("Content-Length: 0\r\n"));
    }

    #[test]
    fn requests_that_could_break_framing_are_refused() {
        let cases: [(&str, &str, (&str, &str)); 7] = [
            ("GET", "/", ("X-Evil", "a\r\nInjected: 1")),
            ("GET", "/", ("Bad Name", "v")),
            ("GET", "/", ("host", "other")),
            ("GET", "/", ("Content-Length", "3")),
            ("GET", "/a b", ("X", "v")),
            ("GET", "mcp", ("X", "v")),
            ("G T", "/", ("X", "v")),
        ];
        for (method, path, header) in cases {
            let result = build_request("h", method, path, &[header], b"");
            assert!(
                matches!(result, Err(ConnError::InvalidRequest(_))),
                "{method} {path} {header:?}"
            );
        }
    }

    #[test]
    fn errors_read_as_sentences() {
        let tls = ConnError::Tls("certificate verification failed for h: x".into());
        assert_eq!(
            tls.to_string(),
            "TLS: certificate verification failed for h: x"
        );
        assert_eq!(
            ConnError::TooLarge(10).to_string(),
            "the server's response is larger than the limit of 10 bytes"
        );
        assert!(matches!(
            ConnError::from_io(io::Error::from(ErrorKind::ConnectionReset)),
            ConnError::Closed
        ));
    }

    #[test]
    fn conns_move_between_threads_and_closers_are_shared() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync + Clone>() {}
        send::<Conn>();
        send_sync::<Closer>();
        send_sync::<Tls>();
    }

    #[test]
    fn response_head_lookups() {
        let head = ResponseHead {
            status: 200,
            headers: vec![
                (
                    "content-type".into(),
                    "Text/Event-Stream; charset=utf-8".into(),
                ),
                ("mcp-session-id".into(), "s1".into()),
            ],
            framing: Framing::Chunked,
            serial: 1,
        };
        assert!(head.content_type_is("text/event-stream"));
        assert!(!head.content_type_is("application/json"));
        assert_eq!(head.header("Mcp-Session-Id"), Some("s1"));
        assert_eq!(head.header("x"), None);
    }

    // ---- scripted servers ----

    trait Stream: Read + Write {}
    impl<T: Read + Write> Stream for T {}

    /// What one accepted connection does, given its stream.
    type Script = Box<dyn FnOnce(&mut dyn Stream) + Send>;

    fn script(f: impl FnOnce(&mut dyn Stream) + Send + 'static) -> Script {
        Box::new(f)
    }

    /// Serves one connection per script, in order, then ends. Joining the handle re-raises a
    /// failed server-side assertion.
    fn serve(scripts: Vec<Script>) -> (Url, thread::JoinHandle<()>) {
        serve_with(scripts, |tcp| Box::new(tcp))
    }

    fn serve_with(
        scripts: Vec<Script>,
        wrap: impl Fn(TcpStream) -> Box<dyn Stream> + Send + 'static,
    ) -> (Url, thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = thread::spawn(move || {
            for script in scripts {
                let (tcp, _) = listener.accept().unwrap();
                // A test that goes wrong must not hang the suite.
                tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut stream = wrap(tcp);
                script(&mut *stream);
            }
        });
        (
            Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            handle,
        )
    }

    /// Reads one request: its head as text and its Content-Length body. `None` at EOF.
    fn read_request(stream: &mut dyn Stream) -> Option<(String, Vec<u8>)> {
        let mut reader = io::BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_owned)
            })
            .map_or(0, |n| n.trim().parse().unwrap());
        let mut body = vec![0; length];
        // The client never pipelines, so the BufReader holds nothing past this request.
        reader.read_exact(&mut body).ok()?;
        Some((head, body))
    }

    fn write(stream: &mut dyn Stream, bytes: &str) {
        stream.write_all(bytes.as_bytes()).unwrap();
        stream.flush().unwrap();
    }

    fn pause() {
        thread::sleep(Duration::from_millis(20));
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn connect(url: &Url) -> Conn {
        Conn::connect(url, None, soon()).unwrap()
    }

    fn get(conn: &mut Conn, path: &str) -> Result<ResponseHead, ConnError> {
        conn.send("GET", path, &[], b"", soon())
    }

    fn event(data: &str) -> SseEvent {
        SseEvent {
            event: "message".into(),
            data: data.into(),
            id: None,
            retry: None,
        }
    }

    const SSE_HEAD: &str =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

    /// Writes `text` as one chunk.
    fn chunk(stream: &mut dyn Stream, text: &str) {
        write(stream, &format!("{:x}\r\n{text}\r\n", text.len()));
    }

    // ---- plain HTTP ----

    #[test]
    fn keep_alive_reuses_one_connection() {
        let (seen_tx, seen_rx) = mpsc::channel();
        let (url, server) = serve(vec![script(move |s| {
            let (head, body) = read_request(s).unwrap();
            seen_tx.send((head, body)).unwrap();
            write(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
            read_request(s).unwrap();
            write(
                s,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            );
            read_request(s).unwrap();
            write(s, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
            read_request(s).unwrap();
            write(s, "HTTP/1.1 204 No Content\r\n\r\n");
            assert!(read_request(s).is_none(), "the client closes at the end");
        })]);
        let mut conn = connect(&url);
        let headers = [("Accept", "application/json"), ("Mcp-Session-Id", "s-1")];
        let head = conn.send("POST", "/mcp", &headers, b"{}", soon()).unwrap();
        assert_eq!(head.status, 200);
        assert!(head.content_type_is("application/json"));
        assert_eq!(conn.read_body(&head, 1024, soon()).unwrap(), b"{\"a\":1}");
        assert!(conn.reusable());

        let (request, body) = seen_rx.recv().unwrap();
        let port = url.port;
        assert_eq!(
            request,
            format!(
                "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\
                 Mcp-Session-Id: s-1\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n"
            )
        );
        assert_eq!(body, b"{}");

        let second = get(&mut conn, "/b").unwrap();
        assert_eq!(conn.read_body(&second, 1024, soon()).unwrap(), b"abc");
        let stale = conn.read_body(&head, 1024, soon());
        assert!(
            matches!(stale, Err(ConnError::InvalidRequest(_))),
            "{stale:?}"
        );
        let third = get(&mut conn, "/c").unwrap();
        assert_eq!((third.status, third.framing()), (202, Framing::Length(0)));
        assert!(conn.reusable(), "an empty body needs no reading");
        let fourth = get(&mut conn, "/d").unwrap();
        assert_eq!(fourth.status, 204);
        assert!(conn.read_body(&fourth, 0, soon()).unwrap().is_empty());
        assert!(conn.reusable());
        drop(conn);
        server.join().unwrap();
    }

    #[test]
    fn chunked_bodies_split_anywhere() {
        let (url, server) = serve(vec![script(|s| {
            read_request(s).unwrap();
            let pieces = [
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
                "\r\n1",
                "0\r\n0123456789abcdef\r",
                "\n5;name=value\r\nhel",
                "lo\r\n0\r\nTrailer: yes\r\n",
                "\r\n",
            ];
            for piece in pieces {
                write(s, piece);
                pause();
            }
            read_request(s);
        })]);
        let mut conn = connect(&url);
        let head = get(&mut conn, "/").unwrap();
        let body = conn.read_body(&head, 1024, soon()).unwrap();
        assert_eq!(body, b"0123456789abcdefhello");
        assert!(conn.reusable());
        drop(conn);
        server.join().unwrap();
    }

    #[test]
    fn bodies_that_end_at_close() {
        let (url, server) = serve(vec![
            script(|s| {
                read_request(s).unwrap();
                write(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ",
                );
                pause();
                write(s, "this");
            }),
            script(|s| {
                read_request(s).unwrap();
                write(s, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }),
        ]);
        let mut conn = connect(&url);
        let head = get(&mut conn, "/").unwrap();
        assert_eq!(head.framing(), Framing::UntilClose);
        assert_eq!(conn.read_body(&head, 1024, soon()).unwrap(), b"all of this");
        assert!(!conn.reusable());
        assert!(matches!(get(&mut conn, "/"), Err(ConnError::Closed)));

        let mut conn = connect(&url);
        let head = get(&mut conn, "/").unwrap();
        assert_eq!(conn.read_body(&head, 1024, soon()).unwrap(), b"ok");
        assert!(!conn.reusable(), "HTTP/1.0 without keep-alive closes");
        server.join().unwrap();
    }

    #[test]
    fn sse_events_are_read_as_they_arrive() {
        let (url, server) = serve(vec![script(|s| {
            read_request(s).unwrap();
            write(s, SSE_HEAD);
            // Two events and a comment in one chunk, then one event split across three.
            chunk(s, "event: endpoint\ndata: /messages?id=1\n\n: keepalive\n\nid: 7\ndata: {\"a\":1}\n\n");
            pause();
            chunk(s, "data: spl");
            pause();
            chunk(s, "it\r\n");
            pause();
            chunk(s, "\r\n");
            write(s, "0\r\n\r\n");
            read_request(s).unwrap();
            write(s, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext");
            read_request(s);
        })]);
        let mut conn = connect(&url);
        let head = conn
            .send(
                "GET",
                "/sse",
                &[("Accept", "text/event-stream")],
                b"",
                soon(),
            )
            .unwrap();
        assert!(head.content_type_is("text/event-stream"));
        let first = conn.next_event(&head, soon()).unwrap().unwrap();
        assert_eq!(
            (first.event.as_str(), first.data.as_str()),
            ("endpoint", "/messages?id=1")
        );
        let second = conn.next_event(&head, soon()).unwrap().unwrap();
        assert_eq!(
            (second.id.as_deref(), second.data.as_str()),
            (Some("7"), "{\"a\":1}")
        );
        let third = conn.next_event(&head, soon()).unwrap().unwrap();
        assert_eq!(third.data, "split");
        assert_eq!(conn.next_event(&head, soon()).unwrap(), None);
        assert_eq!(
            conn.next_event(&head, soon()).unwrap(),
            None,
            "the end stays the end"
        );
        assert!(conn.reusable());
        let head = get(&mut conn, "/next").unwrap();
        assert_eq!(conn.read_body(&head, 16, soon()).unwrap(), b"next");
        drop(conn);
        server.join().unwrap();
    }

    #[test]
    fn sse_with_content_length_and_until_close() {
        let stream = "data: a\n\ndata: b\n\n";
        let (url, server) = serve(vec![script(move |s| {
            read_request(s).unwrap();
            write(s, &format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n{stream}",
                stream.len()
            ));
            read_request(s).unwrap();
            write(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: c\n\n",
            );
            pause();
            write(s, "data: d\n\ndata: never dispatched");
        })]);
        let mut conn = connect(&url);
        let head = get(&mut conn, "/").unwrap();
        assert_eq!(conn.next_event(&head, soon()).unwrap(), Some(event("a")));
        assert_eq!(conn.next_event(&head, soon()).unwrap(), Some(event("b")));
        assert_eq!(conn.next_event(&head, soon()).unwrap(), None);
        let head = get(&mut conn, "/").unwrap();
        assert_eq!(conn.next_event(&head, soon()).unwrap(), Some(event("c")));
        assert_eq!(conn.next_event(&head, soon()).unwrap(), Some(event("d")));
        assert_eq!(conn.next_event(&head, soon()).unwrap(), None);
        assert!(!conn.reusable());
        server.join().unwrap();
    }

    #[test]
    fn a_timeout_while_waiting_for_an_event_keeps_the_stream() {
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (url, server) = serve(vec![script(move |s| {
            read_request(s).unwrap();
            write(s, SSE_HEAD);
            chunk(s, "data: fir");
            go_rx.recv().unwrap();
            chunk(s, "st\n\n");
            write(s, "0\r\n\r\n");
            read_request(s);
        })]);
        let mut conn = connect(&url);
        let head = get(&mut conn, "/").unwrap();
        let started = Instant::now();
        let waited = conn.next_event(&head, started + Duration::from_millis(150));
        assert!(matches!(waited, Err(ConnError::Timeout)), "{waited:?}");
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(150) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
        go_tx.send(()).unwrap();
        assert_eq!(
            conn.next_event(&head, soon()).unwrap(),
            Some(event("first"))
        );
        assert_eq!(conn.next_event(&head, soon()).unwrap(), None);
        assert!(conn.reusable());
        drop(conn);
        server.join().unwrap();
    }

    #[test]
    fn a_silent_server_times_out() {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let (url, server) = serve(vec![script(move |s| {
            read_request(s).unwrap();
            let _ = done_rx.recv();
        })]);
        let mut conn = connect(&url);
        let started = Instant::now();
        let result = conn.send("GET", "/", &[], b"", started + Duration::from_millis(200));
        assert!(matches!(result, Err(ConnError::Timeout)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            !conn.reusable(),
            "a late answer must not be read as the next one"
        );
        done_tx.send(()).unwrap();
        server.join().unwrap();
    }

    #[test]
    fn a_server_that_closes_an_idle_connection() {
        let (close_tx, close_rx) = mpsc::channel::<()>();
        let answer_then_close = |close: Option<mpsc::Receiver<()>>| {
            script(move |s| {
                read_request(s).unwrap();
                write(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                if let Some(close) = close {
                    let _ = close.recv();
                }
            })
        };
        let (url, server) = serve(vec![
            answer_then_close(None),
            answer_then_close(Some(close_rx)),
        ]);
        let mut conn = connect(&url);
        let head = get(&mut conn, "/").unwrap();
        conn.read_body(&head, 16, soon()).unwrap();
        assert!(conn.reusable(), "the server did not announce the close");
        thread::sleep(Duration::from_millis(100));
        let result = get(&mut conn, "/");
        assert!(matches!(result, Err(ConnError::Closed)), "{result:?}");

        let mut conn = connect(&url);
        let head = get(&mut conn, "/").unwrap();
        conn.read_body(&head, 16, soon()).unwrap();
        assert!(!conn.is_stale(), "still open after the answer");
        assert!(conn.reusable());
        close_tx.send(()).unwrap();
        let deadline = soon();
        while !conn.is_stale() {
            assert!(Instant::now() < deadline, "the close was never noticed");
            thread::sleep(Duration::from_millis(10));
        }
        assert!(!conn.reusable());
        server.join().unwrap();
    }

    #[test]
    fn truncated_responses_are_closed_errors() {
        let (url, server) = serve(vec![
            script(|s| {
                read_request(s).unwrap();
                write(s, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
            }),
            script(|s| {
                read_request(s).unwrap();
                write(
                    s,
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                );
            }),
            script(|s| {
                read_request(s).unwrap();
                write(s, "HTTP/1.1 200 OK\r\nContent-Le");
            }),
            script(|s| {
                read_request(s).unwrap();
                write(s, SSE_HEAD);
                chunk(s, "data: half");
            }),
        ]);
        for _ in 0..3 {
            let mut conn = connect(&url);
            let result = get(&mut conn, "/").and_then(|head| conn.read_body(&head, 100, soon()));
            assert!(matches!(result, Err(ConnError::Closed)), "{result:?}");
            assert!(!conn.reusable());
        }
        let mut conn = connect(&url);
        let head = get(&mut conn, "/").unwrap();
        let result = conn.next_event(&head, soon());
        assert!(matches!(result, Err(ConnError::Closed)), "{result:?}");
        server.join().unwrap();
    }

    #[test]
    fn bodies_over_the_limit() {
        let (url, server) = serve(vec![
            script(|s| {
                read_request(s).unwrap();
                write(s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
            }),
            script(|s| {
                read_request(s).unwrap();
                write(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                chunk(s, "0123456789");
                chunk(s, "x");
                write(s, "0\r\n\r\n");
            }),
        ]);
        for _ in 0..2 {
            let mut conn = connect(&url);
            let head = get(&mut conn, "/").unwrap();
            let result = conn.read_body(&head, 10, soon());
            assert!(matches!(result, Err(ConnError::TooLarge(10))), "{result:?}");
            assert!(!conn.reusable());
        }
        server.join().unwrap();
    }

    #[test]
    fn finish_body_drains_or_gives_up() {
        let (url, server) = serve(vec![script(|s| {
            read_request(s).unwrap();
            write(s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
            pause();
            write(s, "12345");
            read_request(s).unwrap();
            write(s, SSE_HEAD);
            chunk(s, "data: answer\n\n");
            pause();
            chunk(s, "data: unwanted\n\n");
            write(s, "0\r\n\r\n");
            read_request(s).unwrap();
            write(s, "HTTP/1.1 200 OK\r\n\r\nendless");
            let _ = read_request(s);
        })]);
        let mut conn = connect(&url);
        let head = get(&mut conn, "/").unwrap();
        let refused = get(&mut conn, "/");
        assert!(
            matches!(refused, Err(ConnError::InvalidRequest(_))),
            "{refused:?}"
        );
        conn.finish_body(&head, soon()).unwrap();
        assert!(conn.reusable());
        let head = get(&mut conn, "/sse").unwrap();
        assert_eq!(
            conn.next_event(&head, soon()).unwrap(),
            Some(event("answer"))
        );
        conn.finish_body(&head, soon()).unwrap();
        assert!(conn.reusable());
        let head = get(&mut conn, "/").unwrap();
        conn.finish_body(&head, soon()).unwrap();
        assert!(
            !conn.reusable(),
            "a close-delimited body is not worth draining"
        );
        drop(conn);
        server.join().unwrap();
    }

    #[test]
    fn a_closer_stops_a_reader_on_another_thread() {
        let (url, server) = serve(vec![script(|s| {
            read_request(s).unwrap();
            write(s, SSE_HEAD);
            chunk(s, "data: hello\n\n");
            // Hold the stream open until the client goes away.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        })]);
        let mut conn = connect(&url);
        let head = get(&mut conn, "/sse").unwrap();
        let closer = conn.closer();
        let (events_tx, events_rx) = mpsc::channel();
        let reader = thread::spawn(move || loop {
            match conn.next_event(&head, no_deadline()) {
                Ok(Some(event)) => events_tx.send(event).unwrap(),
                other => return other,
            }
        });
        let first = events_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(first, event("hello"));
        thread::sleep(Duration::from_millis(50));
        let stopped_at = Instant::now();
        closer.clone().shutdown();
        let ended = reader.join().unwrap();
        assert!(matches!(ended, Err(ConnError::Shutdown)), "{ended:?}");
        assert!(stopped_at.elapsed() < Duration::from_secs(2));
        server.join().unwrap();
    }

    #[test]
    fn interim_responses_are_skipped() {
        let (url, server) = serve(vec![script(|s| {
            read_request(s).unwrap();
            write(
                s,
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n",
            );
            pause();
            write(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            read_request(s);
        })]);
        let mut conn = connect(&url);
        let head = get(&mut conn, "/").unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(conn.read_body(&head, 16, soon()).unwrap(), b"ok");
        drop(conn);
        server.join().unwrap();
    }

    #[test]
    fn malformed_responses_are_protocol_errors() {
        let huge_field = format!("X-Big: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        let many_fields: String = (0..=100).map(|i| format!("X-{i}: v\r\n")).collect();
        let responses = [
            format!("HTTP/1.1 200 OK\r\n{huge_field}\r\n"),
            format!("HTTP/1.1 200 OK\r\n{many_fields}\r\n"),
            "garbage\r\n\r\n".to_owned(),
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_owned(),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_owned(),
            "HTTP/1.1 101 Switching Protocols\r\n\r\n".to_owned(),
            "HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM_RESPONSES + 1),
        ];
        let scripts = responses
            .iter()
            .cloned()
            .map(|response| {
                script(move |s| {
                    read_request(s).unwrap();
                    let _ = s.write_all(response.as_bytes());
                })
            })
            .collect();
        let (url, server) = serve(scripts);
        for response in &responses {
            let mut conn = connect(&url);
            let result = get(&mut conn, "/").and_then(|head| conn.read_body(&head, 100, soon()));
            let shown = response.get(..40).unwrap_or(response);
            assert!(
                matches!(result, Err(ConnError::Protocol(_))),
                "{shown:?}: {result:?}"
            );
            assert!(!conn.reusable());
        }
        server.join().unwrap();
    }

    #[test]
    fn refused_connections_name_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let err = Conn::connect(&url, None, soon()).unwrap_err();
        let words = err.to_string();
        assert!(
            words.starts_with(&format!(
                "network error: cannot connect to 127.0.0.1:{port}"
            )),
            "{words}"
        );
        let unresolvable = Url::parse("http://no-such-host.invalid/").unwrap();
        let err = Conn::connect(&unresolvable, None, soon()).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot resolve no-such-host.invalid"),
            "{err}"
        );
    }

    // ---- TLS ----

    /// A private CA, and the PEM file a server's `caFile` would name.
    struct TestCa {
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
        pem_file: PathBuf,
    }

    fn test_ca(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mcp-gateway test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = std::env::temp_dir().join(format!("mcp-gateway-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem_file = dir.join(format!("{name}.pem"));
        std::fs::write(&pem_file, cert.pem()).unwrap();
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            pem_file,
        }
    }

    /// A server config whose certificate, for `names`, is signed by `ca`.
    fn server_config(ca: &TestCa, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        let key_der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der.into())
            .unwrap();
        Arc::new(config)
    }

    fn serve_tls(
        config: Arc<rustls::ServerConfig>,
        scripts: Vec<Script>,
    ) -> (Url, thread::JoinHandle<()>) {
        let (url, handle) = serve_with(scripts, move |tcp| {
            let session = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            Box::new(rustls::StreamOwned::new(session, tcp))
        });
        let https = Url::parse(&format!("https://localhost:{}/", url.port)).unwrap();
        (https, handle)
    }

    /// A connection whose handshake the client will refuse: the server just sees it fail.
    fn refused() -> Script {
        script(|s| assert!(read_request(s).is_none()))
    }

    #[test]
    fn tls_with_the_ca_file_works() {
        let ca = test_ca("good");
        let config = server_config(&ca, &["localhost"]);
        let (url, server) = serve_tls(
            config,
            vec![script(|s| {
                let (head, _) = read_request(s).unwrap();
                assert!(
                    head.starts_with("GET /one HTTP/1.1\r\nHost: localhost:"),
                    "{head}"
                );
                write(s, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure");
                read_request(s).unwrap();
                write(s, SSE_HEAD);
                chunk(s, "data: over\n\nda");
                pause();
                chunk(s, "ta: tls\n\n");
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
            })],
        );
        let tls = Tls::new(Some(&ca.pem_file)).unwrap();
        let mut conn = Conn::connect(&url, Some(&tls), soon()).unwrap();
        let head = get(&mut conn, "/one").unwrap();
        assert_eq!(conn.read_body(&head, 64, soon()).unwrap(), b"secure");
        assert!(conn.reusable());
        assert!(!conn.is_stale(), "an open TLS connection is not stale");
        let head = get(&mut conn, "/sse").unwrap();
        assert_eq!(conn.next_event(&head, soon()).unwrap(), Some(event("over")));
        assert_eq!(conn.next_event(&head, soon()).unwrap(), Some(event("tls")));
        let waited = conn.next_event(&head, Instant::now() + Duration::from_millis(50));
        assert!(matches!(waited, Err(ConnError::Timeout)), "{waited:?}");
        let closer = conn.closer();
        let reader = thread::spawn(move || conn.next_event(&head, no_deadline()));
        thread::sleep(Duration::from_millis(50));
        closer.shutdown();
        let ended = reader.join().unwrap();
        assert!(matches!(ended, Err(ConnError::Shutdown)), "{ended:?}");
        server.join().unwrap();
    }

    #[test]
    fn tls_without_the_ca_is_rejected() {
        let ca = test_ca("unknown");
        let (url, server) = serve_tls(server_config(&ca, &["localhost"]), vec![refused()]);
        let err = Conn::connect(&url, Some(&Tls::new(None).unwrap()), soon()).unwrap_err();
        let words = err.to_string();
        assert!(matches!(err, ConnError::Tls(_)), "{err:?}");
        assert!(
            words.starts_with("TLS: certificate verification failed for localhost:"),
            "{words}"
        );
        assert!(
            words.contains("not trusted (UnknownIssuer); set caFile"),
            "{words}"
        );
        server.join().unwrap();
    }

    #[test]
    fn tls_for_another_host_is_rejected() {
        let ca = test_ca("wrong-host");
        let config = server_config(&ca, &["wrong.example"]);
        let (url, server) = serve_tls(config, vec![refused()]);
        let tls = Tls::new(Some(&ca.pem_file)).unwrap();
        let err = Conn::connect(&url, Some(&tls), soon()).unwrap_err();
        let words = err.to_string();
        assert!(words.contains("certificate verification failed"), "{words}");
        assert!(words.contains("not valid for this host name"), "{words}");
        assert!(
            words.contains("wrong.example"),
            "rustls names what the certificate is for: {words}"
        );
        server.join().unwrap();
    }

    #[test]
    fn tls_handshake_respects_the_deadline() {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let (url, server) = serve(vec![script(move |_| {
            let _ = done_rx.recv();
        })]);
        let https = Url::parse(&format!("https://localhost:{}/", url.port)).unwrap();
        let started = Instant::now();
        let result = Conn::connect(&https, None, started + Duration::from_millis(200));
        assert!(matches!(result, Err(ConnError::Timeout)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        done_tx.send(()).unwrap();
        server.join().unwrap();
    }

    #[test]
    fn https_to_a_plain_http_server_is_explained() {
        let (url, server) = serve(vec![script(|s| {
            let mut hello = [0u8; 64];
            let _ = s.read(&mut hello);
            write(s, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        })]);
        let https = Url::parse(&format!("https://localhost:{}/", url.port)).unwrap();
        let err = Conn::connect(&https, None, soon()).unwrap_err();
        assert!(err.to_string().contains("is it an https server?"), "{err}");
        server.join().unwrap();
    }
}
