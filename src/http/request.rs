//! Incremental HTTP/1.0 and HTTP/1.1 request reader: one [`RequestReader`] per connection.
//!
//! The reactor appends whatever the socket yields to a per-connection `Vec<u8>` and calls
//! [`RequestReader::advance`] with it. The reader consumes framed bytes from the front of that
//! buffer and reports [`Progress`]; once a request is `Complete`, the buffer holds only bytes of
//! the next (pipelined) request and the reader is ready for it.
//!
//! Invariants:
//! - The caller only ever appends to the buffer between calls; the reader is the only one that
//!   removes bytes from its front. (Should a caller break this, the reader still cannot panic; it
//!   may merely mis-frame.)
//! - Nothing a peer sends can panic the reader or overflow an integer: slicing is bounded by the
//!   buffer length and every number read off the wire goes through checked arithmetic.
//! - The head is held to `max_head_bytes` and `max_headers`, the body to `max_body_bytes`, and
//!   each limit fires as soon as it is knowable: a too-large `Content-Length` is refused from the
//!   head alone, before any body byte arrives (so `Expect: 100-continue` clients are never told
//!   to send it).
//! - Work is O(new bytes) per call: the head is searched incrementally and handed to httparse
//!   only O(log n) times plus a fixed few, the head is parsed to an owned [`Request`] exactly
//!   once, and body bytes are touched once each.
//! - After an error the reader is poisoned and keeps returning that error: framing is lost, so the
//!   caller must write the error response (with [`HttpError::describe`] as the message) and close.
//! - Framing follows RFC 9112 with request-smuggling defences: `Transfer-Encoding` together with
//!   `Content-Length` is refused, conflicting `Content-Length` values are refused, only a lone
//!   `chunked` coding is accepted, and chunked framing requires strict CRLF line ends.

use std::fmt;
use std::mem;

use super::chunked::ChunkedDecoder;

/// Size limits applied while reading one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request head (request line + header lines + blank line), in bytes. Also bounds the
    /// chunk extensions and trailers of a chunked body, which are head-like metadata.
    pub max_head_bytes: usize,
    /// Largest request body, in bytes, after chunked decoding.
    pub max_body_bytes: usize,
    /// Most header fields in one request head.
    pub max_headers: usize,
}

impl Limits {
    /// Default for [`Limits::max_head_bytes`]: 16 KiB.
    pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
    /// Default for [`Limits::max_body_bytes`]: 4 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
    /// Default for [`Limits::max_headers`]: 64.
    pub const DEFAULT_MAX_HEADERS: usize = 64;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: Self::DEFAULT_MAX_HEAD_BYTES,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_headers: Self::DEFAULT_MAX_HEADERS,
        }
    }
}

/// Request method. Methods are case-sensitive (RFC 9110 §9.1), so `get` is `Other("get")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Other(String),
}

impl Method {
    /// The method token as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Other(token) => token,
        }
    }
}

impl From<&str> for Method {
    fn from(token: &str) -> Self {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request could not be read. Every variant maps to the status to answer with; after any of
/// them the connection's framing is unknown, so the caller answers and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed request; the reason is a short, static, client-presentable phrase.
    BadRequest(&'static str),
    /// Head longer than `max_head_bytes`, more than `max_headers` fields, or oversized trailers.
    HeadersTooLarge,
    /// Declared or decoded body longer than `max_body_bytes`.
    BodyTooLarge,
    /// An HTTP version other than 1.0 or 1.1.
    UnsupportedVersion,
    /// A feature we deliberately do not implement (e.g. a transfer-coding other than chunked).
    NotImplemented(&'static str),
    /// An `Expect` value other than `100-continue`.
    ExpectationFailed,
}

impl HttpError {
    /// The HTTP status code to answer with.
    pub fn status(self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::HeadersTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::UnsupportedVersion => 505,
            HttpError::NotImplemented(_) => 501,
            HttpError::ExpectationFailed => 417,
        }
    }

    /// A short human-readable sentence, without the configured limits (see [`HttpError::describe`]).
    pub fn message(self) -> &'static str {
        match self {
            HttpError::BadRequest(reason) | HttpError::NotImplemented(reason) => reason,
            HttpError::HeadersTooLarge => "request headers too large",
            HttpError::BodyTooLarge => "request body too large",
            HttpError::UnsupportedVersion => "only HTTP/1.0 and HTTP/1.1 are supported",
            HttpError::ExpectationFailed => "only the 100-continue expectation is supported",
        }
    }

    /// Like [`HttpError::message`], but naming the limit that was exceeded, e.g.
    /// "request headers exceed 16384 bytes or 64 fields".
    pub fn describe(self, limits: &Limits) -> String {
        match self {
            HttpError::HeadersTooLarge => format!(
                "request headers exceed {} bytes or {} fields",
                limits.max_head_bytes, limits.max_headers
            ),
            HttpError::BodyTooLarge => {
                format!("request body exceeds {} bytes", limits.max_body_bytes)
            }
            other => other.message().to_owned(),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.message())
    }
}

impl std::error::Error for HttpError {}

/// A fully read request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Percent-decoded path without the query, e.g. `/messages`; `*` only for `OPTIONS *`.
    /// Dot-segments are not resolved: routes must match it exactly.
    pub path: String,
    /// Raw (still percent-encoded) query without the `?`; empty if there is none.
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in arrival order; names lowercased, values trimmed of SP/HTAB.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when it was sent chunked.
    pub body: Vec<u8>,
}

impl Request {
    /// Value of the first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).next()
    }

    /// Values of every header field called `name` (case-insensitive), in order.
    pub fn headers_named<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Elements of the comma-separated list formed by every `name` field (RFC 9110 §5.6.1):
    /// trimmed, empty elements skipped. Quoted commas are not special-cased: none of the lists we
    /// read (Connection, Transfer-Encoding, Content-Length, Expect, Accept) needs them.
    pub fn header_list<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers_named(name)
            .flat_map(|value| value.split(','))
            .map(trim_ows)
            .filter(|element| !element.is_empty())
    }

    /// First value of query parameter `name`, percent-decoded with `+` as space. `None` when the
    /// parameter is absent or its first occurrence is not valid percent-encoded UTF-8.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .find(|(key, _)| percent_decode(key, true).as_deref() == Some(name))
            .and_then(|(_, value)| percent_decode(value, true))
    }

    /// Whether the connection may be reused after this request (RFC 9112 §9.3): HTTP/1.1 unless
    /// `Connection` lists `close`; HTTP/1.0 only when it lists `keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let lists = |token: &str| {
            self.header_list("connection")
                .any(|t| t.eq_ignore_ascii_case(token))
        };
        if lists("close") {
            false
        } else {
            self.minor_version >= 1 || lists("keep-alive")
        }
    }

    /// Whether `media_type` (parameters ignored) is acceptable per the `Accept` header. The most
    /// specific matching range decides (`type/subtype` over `type/*` over `*/*`), so
    /// `text/event-stream;q=0, */*` refuses event streams. `q=0` means not acceptable. A missing
    /// or blank `Accept` accepts everything (RFC 9110 §12.5.1).
    pub fn accepts(&self, media_type: &str) -> bool {
        let wanted = media_essence(media_type);
        let (want_type, want_sub) = wanted.split_once('/').unwrap_or((wanted, ""));
        let mut any_range = false;
        // (specificity, acceptable) of the best match so far; the first wins among equals.
        let mut best: Option<(u8, bool)> = None;
        for range in self.header_list("accept") {
            any_range = true;
            let Some((range_type, range_sub)) = media_essence(range).split_once('/') else {
                continue; // not a media range; ignore it rather than fail the request
            };
            let specificity = if range_type == "*" && range_sub == "*" {
                0
            } else if !range_type.eq_ignore_ascii_case(want_type) {
                continue;
            } else if range_sub == "*" {
                1
            } else if range_sub.eq_ignore_ascii_case(want_sub) {
                2
            } else {
                continue;
            };
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, quality(range) > 0));
            }
        }
        !any_range || best.is_some_and(|(_, acceptable)| acceptable)
    }

    /// Whether `Content-Type` is `media_type`, ignoring parameters and case.
    pub fn content_type_is(&self, media_type: &str) -> bool {
        self.header("content-type")
            .is_some_and(|ct| media_essence(ct).eq_ignore_ascii_case(media_essence(media_type)))
    }
}

/// Trims optional whitespace (SP / HTAB, RFC 9110 §5.6.3) from both ends.
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// The `type/subtype` part of a media type, without parameters or surrounding whitespace.
fn media_essence(media_type: &str) -> &str {
    trim_ows(media_type.split(';').next().unwrap_or(""))
}

/// The `q` weight of one Accept element in thousandths (RFC 9110 §12.4.2); 1000 when absent.
/// A malformed weight is ignored (treated as absent) rather than failing the whole request.
fn quality(range: &str) -> u16 {
    range
        .split(';')
        .skip(1)
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| trim_ows(name).eq_ignore_ascii_case("q"))
        .and_then(|(_, value)| parse_qvalue(trim_ows(value)))
        .unwrap_or(1000)
}

/// Parses `0`, `0.5`, `1.000`, … into thousandths, capped at 1000. Extra fraction digits beyond
/// three are tolerated and ignored.
fn parse_qvalue(value: &str) -> Option<u16> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let thousandths = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, digit| acc * 10 + u16::from(digit - b'0'));
    Some((whole + thousandths).min(1000))
}

/// Percent-decodes `input` (`%XX` escapes; `+` becomes a space when `plus_as_space`, as in
/// `application/x-www-form-urlencoded` queries). `None` on a malformed escape or when the
/// decoded bytes are not UTF-8.
pub fn percent_decode(input: &str, plus_as_space: bool) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|&b| char::from(b).to_digit(16));
                let (hi, lo) = (hex(i + 1)?, hex(i + 2)?);
                // Both digits are < 16, so the value fits a byte.
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Upper bound on the body capacity reserved from `Content-Length` before the bytes arrive.
const INITIAL_BODY_RESERVE: usize = 64 * 1024;

/// What one call to [`RequestReader::advance`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// More bytes are needed.
    Incomplete,
    /// The head asked for `Expect: 100-continue` and the body has not fully arrived: write
    /// [`super::response::CONTINUE`], then keep reading. Returned at most once per request.
    ContinueWanted,
    /// A whole request; the buffer now starts at the next request's first byte.
    Complete(Request),
}

/// How the body of the request being read is delimited.
#[derive(Debug)]
enum Framing {
    /// `Content-Length` (or no body at all): this many bytes are still to come.
    Length(usize),
    Chunked(ChunkedDecoder),
}

/// Incremental search state for the head, relative to the front of the caller's buffer (which
/// nobody drains while the head is incomplete).
#[derive(Debug, Default)]
struct HeadScan {
    /// Bytes at the front of the buffer already searched for the blank line ending the head.
    searched: usize,
    /// Buffer length at the last httparse attempt; 0 = none yet. Re-parsing waits for the buffer
    /// to double, so a head arriving byte by byte costs O(n) in httparse, not O(n²).
    parsed_len: usize,
    /// The request line's LF has been seen (and parsed once, to fail fast on garbage).
    line_seen: bool,
    /// Some byte of a request (beyond ignorable blank lines) is in the buffer.
    started: bool,
}

#[derive(Debug)]
enum State {
    Head(HeadScan),
    /// Head parsed; reading the body into `request.body`.
    Body {
        request: Request,
        framing: Framing,
        /// `ContinueWanted` is still to be reported for this request.
        continue_pending: bool,
    },
    Failed(HttpError),
}

/// Reads requests off one connection's byte stream. See the module docs for the contract.
#[derive(Debug)]
pub struct RequestReader {
    limits: Limits,
    state: State,
    /// Bytes examined so far (searched, parsed or copied), kept so tests can prove the work is
    /// linear in the input without timing anything.
    examined: u64,
}

impl RequestReader {
    pub fn new(limits: Limits) -> Self {
        RequestReader {
            limits,
            state: State::Head(HeadScan::default()),
            examined: 0,
        }
    }

    /// The limits this reader enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Drives the state machine over `buf`, consuming framed bytes from its front. After
    /// `Complete`, `buf` holds only bytes of the next (pipelined) request and the reader is reset
    /// for it; call again to read that one. `ContinueWanted` is returned at most once per request:
    /// when the head carries `Expect: 100-continue` and the body is not complete in `buf`.
    pub fn advance(&mut self, buf: &mut Vec<u8>) -> Result<Progress, HttpError> {
        if let State::Failed(err) = self.state {
            return Err(err);
        }
        let result = self.step(buf);
        if let Err(err) = result {
            self.state = State::Failed(err);
        }
        result
    }

    /// True when no byte of a request has arrived yet: an idle keep-alive connection rather than
    /// a slow request. Blank lines between requests do not count.
    pub fn is_idle(&self) -> bool {
        matches!(&self.state, State::Head(scan) if !scan.started)
    }

    fn step(&mut self, buf: &mut Vec<u8>) -> Result<Progress, HttpError> {
        if let State::Head(scan) = &mut self.state {
            let Some((mut request, head_len)) =
                scan_head(scan, buf, &self.limits, &mut self.examined)?
            else {
                return Ok(Progress::Incomplete);
            };
            buf.drain(..head_len.min(buf.len()));
            let (framing, continue_wanted) = body_framing(&request, &self.limits)?;
            if let Framing::Length(length) = framing {
                // Reserve what the head announces, but not all of it up front: a peer may claim
                // megabytes and send nothing, and idle claims must not pin memory.
                request.body.reserve(length.min(INITIAL_BODY_RESERVE));
            }
            self.state = State::Body {
                request,
                framing,
                continue_pending: continue_wanted,
            };
        }
        let State::Body {
            request,
            framing,
            continue_pending,
        } = &mut self.state
        else {
            // Unreachable: `Head` either returned above or became `Body`, and `advance` never
            // steps a `Failed` reader. Answering "need more" keeps even a logic slip panic-free.
            return Ok(Progress::Incomplete);
        };
        let consumed = match framing {
            Framing::Length(remaining) => {
                let take = (*remaining).min(buf.len());
                request
                    .body
                    .extend_from_slice(buf.get(..take).unwrap_or_default());
                *remaining -= take;
                take
            }
            Framing::Chunked(decoder) => decoder
                .decode(buf, &mut request.body)
                .map_err(HttpError::from)?,
        };
        // `consumed <= buf.len()` by construction; `min` keeps a logic slip from panicking.
        buf.drain(..consumed.min(buf.len()));
        self.examined += consumed as u64;
        let done = match framing {
            Framing::Length(remaining) => *remaining == 0,
            Framing::Chunked(decoder) => decoder.is_done(),
        };
        if !done {
            return Ok(if mem::take(continue_pending) {
                Progress::ContinueWanted
            } else {
                Progress::Incomplete
            });
        }
        let next = State::Head(HeadScan {
            // Pipelined bytes already start the next request, unless they are only blank lines.
            started: leading_blank_lines(buf) < buf.len(),
            ..HeadScan::default()
        });
        match mem::replace(&mut self.state, next) {
            State::Body { request, .. } => Ok(Progress::Complete(request)),
            _ => Ok(Progress::Incomplete), // unreachable: matched `Body` above
        }
    }
}

/// Looks for a complete head at the front of `buf`. Returns the parsed request (body still
/// empty) and the head's length, or `None` when more bytes are needed.
fn scan_head(
    scan: &mut HeadScan,
    buf: &mut Vec<u8>,
    limits: &Limits,
    examined: &mut u64,
) -> Result<Option<(Request, usize)>, HttpError> {
    // RFC 9112 §2.2: ignore empty lines received before the request line. They are dropped for
    // good (rather than left to httparse) so they never count against the head limit nor make an
    // idle keep-alive connection look busy. Nothing of a request precedes them, so any scan
    // state is stale once they go.
    let blank = leading_blank_lines(buf);
    if blank > 0 {
        buf.drain(..blank);
        *scan = HeadScan::default();
    }
    if buf.is_empty() {
        return Ok(None);
    }
    scan.started = true;

    // Only the first `max_head_bytes` can hold an acceptable head; a head that does not end
    // inside this window is too large, whatever follows.
    let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let window_full = window.len() >= limits.max_head_bytes;
    // Resume the search two bytes back: the end marker ("\n\n" or "\n\r\n") may straddle reads.
    let from = scan.searched.saturating_sub(2).min(window.len());
    let fresh = window.get(from..).unwrap_or_default();
    *examined += fresh.len() as u64;
    let head_ended = contains_blank_line(fresh);
    let line_ended = !scan.line_seen && fresh.contains(&b'\n');
    scan.searched = window.len();

    let doubled = window.len() >= scan.parsed_len.saturating_mul(2);
    if !(head_ended || line_ended || window_full || doubled) {
        return Ok(None);
    }
    scan.parsed_len = window.len();
    scan.line_seen |= line_ended;
    *examined += window.len() as u64;

    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(window) {
        Ok(httparse::Status::Complete(head_len)) => Ok(Some((build_request(&parsed)?, head_len))),
        Ok(httparse::Status::Partial) if window_full => Err(HttpError::HeadersTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::HeadersTooLarge),
        Err(httparse::Error::Version) => Err(version_error(window)),
        Err(httparse::Error::Token) => Err(HttpError::BadRequest("malformed request line")),
        Err(httparse::Error::HeaderName) => Err(HttpError::BadRequest("malformed header name")),
        Err(httparse::Error::HeaderValue) => Err(HttpError::BadRequest("malformed header value")),
        Err(_) => Err(HttpError::BadRequest("malformed request head")),
    }
}

/// Length of the run of empty lines (CRLF or bare LF) at the front of `buf`.
fn leading_blank_lines(buf: &[u8]) -> usize {
    let mut len = 0;
    loop {
        match buf.get(len..) {
            Some([b'\n', ..]) => len += 1,
            Some([b'\r', b'\n', ..]) => len += 2,
            _ => return len,
        }
    }
}

/// Whether `bytes` contains the empty line that ends a head: LF followed by LF or CRLF
/// (httparse accepts bare LF line ends, so the search must too).
fn contains_blank_line(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| {
        b == b'\n' && matches!(bytes.get(i + 1..), Some([b'\n', ..] | [b'\r', b'\n', ..]))
    })
}

/// httparse reports any bad version as `Version`. A well-formed `HTTP/<digit>` that is simply
/// not 1.0/1.1 (HTTP/2.0, HTTP/1.2) deserves 505; anything else is plain garbage (400).
fn version_error(head: &[u8]) -> HttpError {
    let line = head
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    // The third part must start like a version: `HTTP/<digit>` other than 1, or `HTTP/1.<digit>`;
    // a stray space (e.g. in the target) shifts what httparse took for the version. Only the bytes
    // httparse must have seen to refuse the version decide, never what follows them, so the
    // answer does not depend on how much of the line has arrived (found by fuzzing).
    match line.split(|&b| b == b' ').nth(2) {
        Some([b'H', b'T', b'T', b'P', b'/', major, ..])
            if major.is_ascii_digit() && *major != b'1' =>
        {
            HttpError::UnsupportedVersion
        }
        Some([b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor, ..]) if minor.is_ascii_digit() => {
            HttpError::UnsupportedVersion
        }
        _ => HttpError::BadRequest("malformed request line"),
    }
}

/// Converts httparse's borrowed view into an owned [`Request`] with an empty body.
fn build_request(parsed: &httparse::Request<'_, '_>) -> Result<Request, HttpError> {
    let malformed = HttpError::BadRequest("malformed request line");
    let method = Method::from(parsed.method.ok_or(malformed)?);
    let target = parsed.path.ok_or(malformed)?;
    let minor_version = parsed.version.ok_or(malformed)?;
    if minor_version > 1 {
        return Err(HttpError::UnsupportedVersion);
    }
    let (path, query) = split_target(&method, target)?;
    let headers = parsed
        .headers
        .iter()
        .map(|h| {
            let value = std::str::from_utf8(h.value)
                .map_err(|_| HttpError::BadRequest("header value is not UTF-8"))?;
            Ok((h.name.to_ascii_lowercase(), trim_ows(value).to_owned()))
        })
        .collect::<Result<Vec<_>, HttpError>>()?;
    Ok(Request {
        method,
        path,
        query,
        minor_version,
        headers,
        body: Vec::new(),
    })
}

/// Splits a request target into (decoded path, raw query). Accepts origin-form (`/p?q`),
/// absolute-form (`http://host/p?q`, RFC 9112 §3.2.2: servers must accept it) and, for OPTIONS
/// only, asterisk-form (`*`).
fn split_target(method: &Method, target: &str) -> Result<(String, String), HttpError> {
    if target == "*" {
        return if *method == Method::Options {
            Ok(("*".to_owned(), String::new()))
        } else {
            Err(HttpError::BadRequest(
                "asterisk-form target is only valid for OPTIONS",
            ))
        };
    }
    let path_and_query = if target.starts_with('/') {
        target
    } else {
        absolute_form_rest(target)?
    };
    if path_and_query.contains('#') {
        return Err(HttpError::BadRequest("request target contains a fragment"));
    }
    let (raw_path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    // Only absolute-form can leave the path empty ("http://host?x"); its path is then "/".
    let raw_path = if raw_path.is_empty() { "/" } else { raw_path };
    let path = percent_decode(raw_path, false)
        .ok_or(HttpError::BadRequest("invalid percent-encoding in path"))?;
    if path.contains('\0') {
        return Err(HttpError::BadRequest("path contains NUL"));
    }
    Ok((path, query.to_owned()))
}

/// For `http://authority/rest` or `https://…` returns `/rest` (possibly empty or starting with
/// `?`). Other forms, including CONNECT's authority-form, are refused.
fn absolute_form_rest(target: &str) -> Result<&str, HttpError> {
    let strip_scheme = |scheme: &str| {
        target
            .get(..scheme.len())
            .filter(|prefix| prefix.eq_ignore_ascii_case(scheme))
            .and_then(|_| target.get(scheme.len()..))
    };
    let rest = strip_scheme("http://")
        .or_else(|| strip_scheme("https://"))
        .ok_or(HttpError::BadRequest("request target must start with '/'"))?;
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if authority_len == 0 {
        return Err(HttpError::BadRequest("absolute-form target has no host"));
    }
    Ok(rest.get(authority_len..).unwrap_or_default())
}

/// Decides how the body is framed (RFC 9112 §6.3) and whether a 100 Continue is owed.
fn body_framing(request: &Request, limits: &Limits) -> Result<(Framing, bool), HttpError> {
    let has_te = request.headers_named("transfer-encoding").next().is_some();
    let has_cl = request.headers_named("content-length").next().is_some();
    let framing = if has_te {
        // Two framings at once is the classic request-smuggling setup: refuse instead of picking.
        if has_cl {
            return Err(HttpError::BadRequest(
                "both Transfer-Encoding and Content-Length present",
            ));
        }
        // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
        if request.minor_version == 0 {
            return Err(HttpError::BadRequest(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        let mut chunked = 0usize;
        for coding in request.header_list("transfer-encoding") {
            if !coding.eq_ignore_ascii_case("chunked") {
                return Err(HttpError::NotImplemented(
                    "only the chunked transfer-coding is supported",
                ));
            }
            chunked += 1;
        }
        if chunked != 1 {
            return Err(HttpError::BadRequest(
                "Transfer-Encoding must be exactly 'chunked'",
            ));
        }
        Framing::Chunked(ChunkedDecoder::new(
            limits.max_body_bytes,
            limits.max_head_bytes,
        ))
    } else if has_cl {
        Framing::Length(content_length(request, limits)?)
    } else {
        // A request without framing headers has no body (RFC 9112 §6.3, rule 7).
        Framing::Length(0)
    };

    let mut continue_wanted = false;
    for expectation in request.header_list("expect") {
        if !expectation.eq_ignore_ascii_case("100-continue") {
            return Err(HttpError::ExpectationFailed);
        }
        // RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request must be ignored.
        continue_wanted = request.minor_version >= 1;
    }
    let body_expected = !matches!(framing, Framing::Length(0));
    Ok((framing, continue_wanted && body_expected))
}

/// The body length from `Content-Length`. Several fields or list elements are allowed only when
/// they all agree (RFC 9112 §6.3, rule 5); each must be plain decimal digits.
fn content_length(request: &Request, limits: &Limits) -> Result<usize, HttpError> {
    let mut agreed: Option<&str> = None;
    for element in request.header_list("content-length") {
        if !element.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::BadRequest("invalid Content-Length"));
        }
        // Compare digit strings, not parsed numbers, so that values too large to parse still
        // cannot disagree unnoticed.
        let significant = element.trim_start_matches('0');
        match agreed {
            None => agreed = Some(significant),
            Some(previous) if previous == significant => {}
            Some(_) => return Err(HttpError::BadRequest("conflicting Content-Length values")),
        }
    }
    let digits = agreed.ok_or(HttpError::BadRequest("empty Content-Length"))?;
    let length = digits.bytes().try_fold(0usize, |acc, digit| {
        acc.checked_mul(10)?.checked_add(usize::from(digit - b'0'))
    });
    // A length too large for usize is, a fortiori, over the limit.
    match length {
        Some(length) if length <= limits.max_body_bytes => Ok(length),
        _ => Err(HttpError::BodyTooLarge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything one reader produced from a byte stream delivered in the given pieces.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        requests: Vec<Request>,
        continues: usize,
        error: Option<HttpError>,
        /// Bytes left in the buffer at the end (not recorded after an error).
        leftover: Vec<u8>,
    }

    fn run(limits: Limits, pieces: &[&[u8]]) -> Outcome {
        let mut reader = RequestReader::new(limits);
        let mut buf = Vec::new();
        let mut outcome = Outcome {
            requests: Vec::new(),
            continues: 0,
            error: None,
            leftover: Vec::new(),
        };
        for piece in pieces {
            buf.extend_from_slice(piece);
            loop {
                match reader.advance(&mut buf) {
                    Ok(Progress::Incomplete) => break,
                    Ok(Progress::ContinueWanted) => outcome.continues += 1,
                    Ok(Progress::Complete(request)) => outcome.requests.push(request),
                    Err(err) => {
                        outcome.error = Some(err);
                        return outcome;
                    }
                }
            }
        }
        outcome.leftover = buf;
        outcome
    }

    fn whole(input: &[u8]) -> Outcome {
        run(Limits::default(), &[input])
    }

    fn bytewise(limits: Limits, input: &[u8]) -> Outcome {
        let pieces: Vec<&[u8]> = input.chunks(1).collect();
        run(limits, &pieces)
    }

    fn only_request(input: &[u8]) -> Request {
        let mut outcome = whole(input);
        assert_eq!(
            outcome.error,
            None,
            "input: {:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(outcome.requests.len(), 1, "{outcome:?}");
        outcome.requests.remove(0)
    }

    fn error_of(input: &[u8]) -> Option<HttpError> {
        whole(input).error
    }

    /// Feeds `input` whole, split in two at every boundary, and byte by byte, and checks that all
    /// deliveries give the same outcome. Returns that outcome.
    fn same_for_every_split(limits: Limits, input: &[u8]) -> Outcome {
        let expected = run(limits, &[input]);
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(run(limits, &[a, b]), expected, "split at {split}");
        }
        assert_eq!(bytewise(limits, input), expected, "byte by byte");
        expected
    }

    fn with_header_lines(lines: &str) -> Vec<u8> {
        format!("GET / HTTP/1.1\r\nHost: h\r\n{lines}\r\n").into_bytes()
    }

    #[test]
    fn simple_get() {
        let mut reader = RequestReader::new(Limits::default());
        assert!(reader.is_idle());
        let mut buf =
            b"GET /mcp?x=1 HTTP/1.1\r\nHost: localhost\r\nX-Custom:  spaced value \t\r\n\r\n"
                .to_vec();
        let Ok(Progress::Complete(request)) = reader.advance(&mut buf) else {
            panic!("expected a complete request");
        };
        assert_eq!(request.method, Method::Get);
        assert_eq!(request.path, "/mcp");
        assert_eq!(request.query, "x=1");
        assert_eq!(request.minor_version, 1);
        assert_eq!(
            request.headers,
            vec![
                ("host".to_owned(), "localhost".to_owned()),
                ("x-custom".to_owned(), "spaced value".to_owned()),
            ]
        );
        assert_eq!(request.header("HOST"), Some("localhost"));
        assert_eq!(request.header("missing"), None);
        assert!(request.body.is_empty());
        assert!(request.keep_alive());
        assert!(buf.is_empty());
        assert!(reader.is_idle());
        assert_eq!(reader.advance(&mut buf), Ok(Progress::Incomplete));
    }

    #[test]
    fn post_with_content_length() {
        let input = b"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n\
                      Content-Length: 7\r\n\r\n{\"a\":1}";
        let outcome = same_for_every_split(Limits::default(), input);
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.continues, 0);
        assert_eq!(outcome.requests.len(), 1);
        assert_eq!(outcome.requests[0].method, Method::Post);
        assert_eq!(outcome.requests[0].body, b"{\"a\":1}");
        assert!(outcome.leftover.is_empty());
    }

    #[test]
    fn head_is_parsed_once_and_body_waits() {
        let mut reader = RequestReader::new(Limits::default());
        let mut buf = b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab".to_vec();
        assert_eq!(reader.advance(&mut buf), Ok(Progress::Incomplete));
        // The head and the two body bytes are consumed and held by the reader.
        assert!(buf.is_empty());
        assert!(!reader.is_idle());
        buf.extend_from_slice(b"cdGET");
        let Ok(Progress::Complete(request)) = reader.advance(&mut buf) else {
            panic!("expected the request");
        };
        assert_eq!(request.body, b"abcd");
        assert_eq!(buf, b"GET");
        assert!(!reader.is_idle(), "a pipelined request has started");
    }

    #[test]
    fn pipelined_requests_in_one_buffer() {
        let first = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz".as_slice();
        let second = b"GET /b HTTP/1.1\r\n\r\n".as_slice();
        let mut buf = [first, second].concat();
        let mut reader = RequestReader::new(Limits::default());
        let Ok(Progress::Complete(a)) = reader.advance(&mut buf) else {
            panic!("first request");
        };
        assert_eq!(
            (a.path.as_str(), a.body.as_slice()),
            ("/a", b"xyz".as_slice())
        );
        assert_eq!(buf, second, "only the next request's bytes remain");
        let Ok(Progress::Complete(b)) = reader.advance(&mut buf) else {
            panic!("second request");
        };
        assert_eq!(b.path, "/b");
        assert!(buf.is_empty());
        assert!(reader.is_idle());

        let outcome = same_for_every_split(Limits::default(), &[first, second, b"GET /c"].concat());
        assert_eq!(outcome.requests.len(), 2);
        assert_eq!(outcome.leftover, b"GET /c");
    }

    const CHUNKED: &[u8] = b"POST /mcp HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n\
        4;name=value\r\nWiki\r\n\
        5 ; a=b;c=\"q\"\r\npedia\r\n\
        E\r\n in\r\n\r\nchunks.\r\n\
        000;last\r\n\
        X-Trailer: 1\r\nOther: two\r\n\r\n\
        GET /next HTTP/1.1\r\n\r\n";

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let outcome = same_for_every_split(Limits::default(), CHUNKED);
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.requests.len(), 2);
        assert_eq!(outcome.requests[0].body, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(outcome.requests[1].path, "/next");
        assert!(outcome.leftover.is_empty());
    }

    #[test]
    fn chunked_without_trailers() {
        let request = only_request(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        );
        assert_eq!(request.body, b"abc");
    }

    #[test]
    fn malformed_chunked_bodies_are_400() {
        let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        for body in [
            "\r\n",                       // missing size
            "g\r\n",                      // not hex
            "4\nWiki\r\n0\r\n\r\n",       // bare LF after size
            "4\r\nWikiX\r\n0\r\n\r\n",    // data longer than its size
            "4\r\nWiki\n0\r\n\r\n",       // bare LF after data
            "00000000000000001\r\na\r\n", // 17 size digits
            "1;ext\nA\r\n",               // bare LF ending an extension
            "0\r\nTrailer: x\n\r\n",      // bare LF ending a trailer
            "0\r\n\n",                    // bare LF as the final line
            "-1\r\n",                     // sign
        ] {
            let input = format!("{head}{body}");
            assert!(
                matches!(error_of(input.as_bytes()), Some(HttpError::BadRequest(_))),
                "{body:?} gave {:?}",
                error_of(input.as_bytes())
            );
        }
    }

    #[test]
    fn chunked_over_the_limit_is_413() {
        let limits = Limits {
            max_body_bytes: 10,
            ..Limits::default()
        };
        let head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice();
        // One chunk too big: refused from its size line, before any data arrives.
        let outcome = run(limits, &[head, b"b\r\n"]);
        assert_eq!(outcome.error, Some(HttpError::BodyTooLarge));
        // Chunks that only add up to too much, split byte by byte.
        let input = [head, b"6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n"].concat();
        assert_eq!(
            bytewise(limits, &input).error,
            Some(HttpError::BodyTooLarge)
        );
        // A size that would overflow usize is still 413, not a panic.
        let input = [head, b"ffffffffffffffff\r\n"].concat();
        assert_eq!(run(limits, &[&input]).error, Some(HttpError::BodyTooLarge));
        // Exactly at the limit is fine.
        let input = [head, b"6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n"].concat();
        assert_eq!(run(limits, &[&input]).requests[0].body, b"abcdefghij");
    }

    #[test]
    fn chunked_metadata_is_bounded() {
        let limits = Limits {
            max_head_bytes: 256,
            ..Limits::default()
        };
        let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let long_ext = format!("{head}1;{}\r\na\r\n0\r\n\r\n", "x".repeat(300));
        assert_eq!(
            run(limits, &[long_ext.as_bytes()]).error,
            Some(HttpError::BadRequest("chunk extensions too long"))
        );
        let long_trailer = format!("{head}0\r\nX: {}\r\n\r\n", "y".repeat(300));
        assert_eq!(
            run(limits, &[long_trailer.as_bytes()]).error,
            Some(HttpError::HeadersTooLarge)
        );
    }

    #[test]
    fn content_length_over_the_limit_is_413_before_the_body() {
        let too_big = Limits::DEFAULT_MAX_BODY_BYTES + 1;
        let head = format!("POST / HTTP/1.1\r\nContent-Length: {too_big}\r\n\r\n");
        let mut reader = RequestReader::new(Limits::default());
        let mut buf = head.into_bytes();
        assert_eq!(reader.advance(&mut buf), Err(HttpError::BodyTooLarge));
        // The reader stays failed: the stream's framing is lost.
        let mut fresh = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        assert_eq!(reader.advance(&mut fresh), Err(HttpError::BodyTooLarge));

        // With 100-continue the client must be refused, not invited to send.
        let head =
            format!("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {too_big}\r\n\r\n");
        assert_eq!(error_of(head.as_bytes()), Some(HttpError::BodyTooLarge));
        let overflowing = b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n";
        assert_eq!(error_of(overflowing), Some(HttpError::BodyTooLarge));
        let at_limit = Limits::DEFAULT_MAX_BODY_BYTES;
        let head = format!("POST / HTTP/1.1\r\nContent-Length: {at_limit}\r\n\r\n");
        assert_eq!(error_of(head.as_bytes()), None);
    }

    #[test]
    fn content_length_forms() {
        let body_of = |lines: &str| {
            let input = format!("POST / HTTP/1.1\r\n{lines}\r\nhello");
            let outcome = whole(input.as_bytes());
            outcome.error.map(Err).unwrap_or_else(|| {
                Ok(outcome
                    .requests
                    .first()
                    .map(|r| r.body.clone())
                    .unwrap_or_default())
            })
        };
        assert_eq!(body_of("Content-Length: 5\r\n"), Ok(b"hello".to_vec()));
        assert_eq!(body_of("Content-Length: 5, 5\r\n"), Ok(b"hello".to_vec()));
        assert_eq!(
            body_of("Content-Length: 5\r\nContent-Length: 005\r\n"),
            Ok(b"hello".to_vec())
        );
        assert_eq!(body_of("Content-Length: 0\r\n"), Ok(Vec::new()));
        for bad in ["5, 6", "+5", "-1", "5 5", "0x5", "", "5;x", "٥"] {
            let lines = format!("Content-Length: {bad}\r\n");
            assert!(
                matches!(body_of(&lines), Err(HttpError::BadRequest(_))),
                "Content-Length {bad:?}"
            );
        }
        let split = "Content-Length: 5\r\nContent-Length: 4\r\n";
        assert!(matches!(body_of(split), Err(HttpError::BadRequest(_))));
    }

    #[test]
    fn transfer_encoding_rules() {
        let cl_and_te =
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            error_of(cl_and_te),
            Some(HttpError::BadRequest(_))
        ));
        let te_and_cl =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
        assert!(matches!(
            error_of(te_and_cl),
            Some(HttpError::BadRequest(_))
        ));
        for coding in ["gzip", "gzip, chunked", "identity", "chunked;x=1"] {
            let input = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {coding}\r\n\r\n");
            assert!(
                matches!(
                    error_of(input.as_bytes()),
                    Some(HttpError::NotImplemented(_))
                ),
                "{coding}"
            );
        }
        let twice =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(error_of(twice), Some(HttpError::BadRequest(_))));
        let empty = b"POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n";
        assert!(matches!(error_of(empty), Some(HttpError::BadRequest(_))));
        let http10 = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(matches!(error_of(http10), Some(HttpError::BadRequest(_))));
    }

    #[test]
    fn head_over_16k_is_431_without_terminator() {
        let mut reader = RequestReader::new(Limits::default());
        let mut buf = b"GET /".to_vec();
        buf.resize(Limits::DEFAULT_MAX_HEAD_BYTES - 1, b'a');
        assert_eq!(reader.advance(&mut buf), Ok(Progress::Incomplete));
        // The byte that fills the window without a blank line decides it, even with no more input.
        buf.push(b'a');
        assert_eq!(reader.advance(&mut buf), Err(HttpError::HeadersTooLarge));

        let mut long = b"GET /".to_vec();
        long.resize(20_000, b'a');
        assert_eq!(
            bytewise(Limits::default(), &long).error,
            Some(HttpError::HeadersTooLarge)
        );
    }

    /// A head of exactly `len` bytes.
    fn head_of_len(len: usize) -> Vec<u8> {
        let fixed = "GET / HTTP/1.1\r\nX-Pad: \r\n\r\n".len();
        let pad = "p".repeat(len - fixed);
        format!("GET / HTTP/1.1\r\nX-Pad: {pad}\r\n\r\n").into_bytes()
    }

    #[test]
    fn head_over_16k_is_431_with_terminator() {
        let max = Limits::DEFAULT_MAX_HEAD_BYTES;
        assert_eq!(head_of_len(max).len(), max);
        assert_eq!(error_of(&head_of_len(max)), None);
        assert_eq!(
            error_of(&head_of_len(max + 1)),
            Some(HttpError::HeadersTooLarge)
        );
        assert_eq!(
            error_of(&head_of_len(3 * max)),
            Some(HttpError::HeadersTooLarge)
        );
        assert_eq!(
            bytewise(Limits::default(), &head_of_len(max + 1)).error,
            Some(HttpError::HeadersTooLarge)
        );
    }

    #[test]
    fn small_head_followed_by_a_large_buffered_body_is_fine() {
        let body = vec![b'z'; 3 * Limits::DEFAULT_MAX_HEAD_BYTES];
        let mut input =
            format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        input.extend_from_slice(&body);
        assert_eq!(only_request(&input).body, body);
    }

    #[test]
    fn too_many_headers_is_431() {
        let lines = |n: usize| (0..n).map(|i| format!("X-{i}: v\r\n")).collect::<String>();
        let at_limit = format!("GET / HTTP/1.1\r\n{}\r\n", lines(64));
        assert_eq!(only_request(at_limit.as_bytes()).headers.len(), 64);
        let over = format!("GET / HTTP/1.1\r\n{}\r\n", lines(65));
        assert_eq!(error_of(over.as_bytes()), Some(HttpError::HeadersTooLarge));
        assert_eq!(
            bytewise(Limits::default(), over.as_bytes()).error,
            Some(HttpError::HeadersTooLarge)
        );
    }

    #[test]
    fn garbage_is_400() {
        for garbage in [
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".as_slice(), // a TLS ClientHello
            b"HELLO\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
            b"GET / HTTP/1.1\r\nX : v\r\n\r\n",
            b"GET /a b HTTP/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTX/1.1\r\n\r\n",
            b"\rGET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \xff\xfe\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        ] {
            assert!(
                matches!(error_of(garbage), Some(HttpError::BadRequest(_))),
                "{:?} gave {:?}",
                String::from_utf8_lossy(garbage),
                error_of(garbage)
            );
        }
    }

    #[test]
    fn garbage_is_refused_without_waiting_for_more() {
        // A short garbage line must not sit waiting for 16 KiB: the request line is checked
        // as soon as it ends, even when it arrives byte by byte.
        for garbage in [b"HELLO\r\n".as_slice(), b"\x16\x03\x01"] {
            assert!(matches!(
                bytewise(Limits::default(), garbage).error,
                Some(HttpError::BadRequest(_))
            ));
        }
    }

    #[test]
    fn a_bad_version_gets_the_same_answer_however_much_of_the_line_arrived() {
        // Found by fuzzing: a version that is not one, then more words on the line.
        let input = b"OR ! HTTP/1\x130IIIII more words\r\n\r\n";
        let whole = error_of(input);
        assert_eq!(whole, Some(HttpError::BadRequest("malformed request line")));
        for at in 1..input.len() {
            let mut reader = RequestReader::new(Limits::default());
            let mut buf = input[..at].to_vec();
            let first = reader.advance(&mut buf);
            let outcome = match first {
                Err(e) => Some(e),
                Ok(_) => {
                    buf.extend_from_slice(&input[at..]);
                    reader.advance(&mut buf).err()
                }
            };
            assert_eq!(outcome, whole, "split at {at}");
        }
    }

    #[test]
    fn unsupported_versions_are_505() {
        for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/3"] {
            let input = format!("GET / {version}\r\n\r\n");
            assert_eq!(
                error_of(input.as_bytes()),
                Some(HttpError::UnsupportedVersion),
                "{version}"
            );
        }
        let request = only_request(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(request.minor_version, 0);
    }

    #[test]
    fn leading_blank_lines_are_ignored() {
        let input = b"\r\n\n\r\nGET / HTTP/1.1\r\n\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
        let outcome = same_for_every_split(Limits::default(), input);
        assert_eq!(outcome.requests.len(), 2);
        assert!(outcome.leftover.is_empty());

        let mut reader = RequestReader::new(Limits::default());
        let mut buf = b"\r\n\r\n".to_vec();
        assert_eq!(reader.advance(&mut buf), Ok(Progress::Incomplete));
        assert!(buf.is_empty());
        assert!(reader.is_idle(), "blank lines do not start a request");
        buf.push(b'G');
        assert_eq!(reader.advance(&mut buf), Ok(Progress::Incomplete));
        assert!(!reader.is_idle());

        // A CRLF trailing a request (old clients send one after POST bodies) is no new request.
        let mut reader = RequestReader::new(Limits::default());
        let mut buf = b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\n".to_vec();
        assert!(matches!(
            reader.advance(&mut buf),
            Ok(Progress::Complete(_))
        ));
        assert_eq!(buf, b"\r\n");
        assert!(reader.is_idle());
        assert_eq!(reader.advance(&mut buf), Ok(Progress::Incomplete));
        assert!(buf.is_empty());
    }

    #[test]
    fn expect_100_continue_is_reported_once() {
        let head = b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n";
        let mut reader = RequestReader::new(Limits::default());
        let mut buf = head.to_vec();
        assert_eq!(reader.advance(&mut buf), Ok(Progress::ContinueWanted));
        assert_eq!(reader.advance(&mut buf), Ok(Progress::Incomplete));
        buf.extend_from_slice(b"he");
        assert_eq!(reader.advance(&mut buf), Ok(Progress::Incomplete));
        buf.extend_from_slice(b"llo");
        let Ok(Progress::Complete(request)) = reader.advance(&mut buf) else {
            panic!("expected the request");
        };
        assert_eq!(request.body, b"hello");

        // Byte by byte, still exactly once; with the body already there, not at all.
        let input = [head.as_slice(), b"hello"].concat();
        assert_eq!(bytewise(Limits::default(), &input).continues, 1);
        assert_eq!(whole(&input).continues, 0);
        assert_eq!(whole(&input).requests.len(), 1);
        // Two pipelined requests each get their own.
        let two = [input.as_slice(), input.as_slice()].concat();
        let outcome = bytewise(Limits::default(), &two);
        assert_eq!((outcome.continues, outcome.requests.len()), (2, 2));
        // Chunked bodies too.
        let chunked =
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n";
        let outcome = bytewise(Limits::default(), chunked);
        assert_eq!((outcome.continues, outcome.requests.len()), (1, 1));
    }

    #[test]
    fn expect_100_continue_without_a_body_or_over_http10_is_not_reported() {
        let no_body = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            (whole(no_body).continues, whole(no_body).requests.len()),
            (0, 1)
        );
        let get = b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n";
        assert_eq!((whole(get).continues, whole(get).requests.len()), (0, 1));
        let http10 = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
        assert_eq!(whole(http10).continues, 0);
    }

    #[test]
    fn other_expectations_are_417() {
        for value in ["200-ok", "100-continue, foo", "100-continue;x=1"] {
            let input = format!("POST / HTTP/1.1\r\nExpect: {value}\r\nContent-Length: 1\r\n\r\n");
            assert_eq!(
                error_of(input.as_bytes()),
                Some(HttpError::ExpectationFailed),
                "{value}"
            );
        }
    }

    #[test]
    fn keep_alive_rules() {
        let keep_alive = |version: &str, lines: &str| {
            let input = format!("GET / HTTP/{version}\r\n{lines}\r\n");
            only_request(input.as_bytes()).keep_alive()
        };
        assert!(keep_alive("1.1", ""));
        assert!(!keep_alive("1.1", "Connection: close\r\n"));
        assert!(!keep_alive("1.1", "Connection: Upgrade, CLOSE\r\n"));
        assert!(!keep_alive(
            "1.1",
            "Connection: keep-alive\r\nConnection: close\r\n"
        ));
        assert!(keep_alive("1.1", "Connection: closed, keep-alive\r\n"));
        assert!(!keep_alive("1.0", ""));
        assert!(keep_alive("1.0", "Connection: Keep-Alive\r\n"));
        assert!(keep_alive("1.0", "Connection: foo , keep-alive\r\n"));
        assert!(!keep_alive("1.0", "Connection: keep-alive, close\r\n"));
    }

    #[test]
    fn query_params_are_decoded() {
        let request = only_request(
            b"GET /messages?a=1&b=hello+world&c=%E2%9C%93&a=2&&d&e=%zz&name%20x=y&sessionId=abc-123 HTTP/1.1\r\n\r\n",
        );
        assert_eq!(request.path, "/messages");
        assert_eq!(request.query_param("a").as_deref(), Some("1"));
        assert_eq!(request.query_param("b").as_deref(), Some("hello world"));
        assert_eq!(request.query_param("c").as_deref(), Some("✓"));
        assert_eq!(request.query_param("d").as_deref(), Some(""));
        assert_eq!(request.query_param("e"), None, "malformed escape");
        assert_eq!(request.query_param("name x").as_deref(), Some("y"));
        assert_eq!(request.query_param("sessionId").as_deref(), Some("abc-123"));
        assert_eq!(request.query_param("missing"), None);
        assert_eq!(
            only_request(b"GET / HTTP/1.1\r\n\r\n").query_param("a"),
            None
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c", false).as_deref(), Some("a b+c"));
        assert_eq!(percent_decode("a%20b+c", true).as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%e2%9c%93", false).as_deref(), Some("✓"));
        for bad in ["%", "%4", "%zz", "%4g", "%ff", "%C3"] {
            assert_eq!(percent_decode(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn accept_negotiation() {
        let accepts = |accept: Option<&str>, media_type: &str| {
            let line = accept
                .map(|a| format!("Accept: {a}\r\n"))
                .unwrap_or_default();
            only_request(&with_header_lines(&line)).accepts(media_type)
        };
        let sse = "text/event-stream";
        let json = "application/json";
        assert!(accepts(None, sse));
        assert!(accepts(Some(""), json), "blank Accept is like none");
        assert!(accepts(Some("application/json, text/event-stream"), sse));
        assert!(accepts(Some("application/json, text/event-stream"), json));
        assert!(!accepts(Some("application/json"), sse));
        assert!(accepts(Some("*/*"), sse));
        assert!(accepts(Some("text/*"), sse));
        assert!(!accepts(Some("text/*"), json));
        assert!(!accepts(Some("text/event-stream;q=0, */*"), sse));
        assert!(accepts(Some("text/event-stream;q=0, */*"), json));
        assert!(!accepts(Some("*/*;q=0"), json));
        assert!(accepts(Some("*/*;q=0, application/json"), json));
        assert!(!accepts(Some("application/json; q=0.000"), json));
        assert!(accepts(Some("application/json; q=0.001"), json));
        assert!(accepts(Some("application/json;q=0.5"), json));
        assert!(
            accepts(Some("application/json;q=bogus"), json),
            "bad weights are ignored"
        );
        assert!(accepts(Some("Application/JSON; charset=utf-8"), json));
        assert!(accepts(Some("text/html"), "TEXT/HTML; level=1"));
        assert!(!accepts(Some("text/html, garbage"), json));
        assert!(!accepts(Some("application/json-seq"), json));

        let two_fields =
            with_header_lines("Accept: application/json\r\nAccept: text/event-stream\r\n");
        assert!(only_request(&two_fields).accepts(sse));
    }

    #[test]
    fn content_type_matching() {
        let is_json =
            |line: &str| only_request(&with_header_lines(line)).content_type_is("application/json");
        assert!(is_json("Content-Type: application/json\r\n"));
        assert!(is_json(
            "Content-Type: Application/JSON ; charset=UTF-8\r\n"
        ));
        assert!(!is_json("Content-Type: application/jsonx\r\n"));
        assert!(!is_json("Content-Type: text/plain\r\n"));
        assert!(!is_json(""));
    }

    #[test]
    fn request_targets() {
        let target = |method: &str, target: &str| {
            let input = format!("{method} {target} HTTP/1.1\r\n\r\n");
            let outcome = whole(input.as_bytes());
            match outcome.error {
                Some(err) => Err(err),
                None => Ok((
                    outcome.requests[0].path.clone(),
                    outcome.requests[0].query.clone(),
                )),
            }
        };
        let ok = |path: &str, query: &str| Ok((path.to_owned(), query.to_owned()));
        assert_eq!(
            target("GET", "/a%20b/caf%C3%A9?q=%20x"),
            ok("/a b/café", "q=%20x")
        );
        assert_eq!(target("GET", "/a+b"), ok("/a+b", ""));
        assert_eq!(target("GET", "/?"), ok("/", ""));
        assert_eq!(target("OPTIONS", "*"), ok("*", ""));
        assert_eq!(
            target("GET", "http://example.com:8080/mcp?x=1"),
            ok("/mcp", "x=1")
        );
        assert_eq!(target("GET", "HTTPS://example.com"), ok("/", ""));
        assert_eq!(target("GET", "http://example.com?x=1"), ok("/", "x=1"));
        for bad in [
            "*",
            "/%zz",
            "/%4",
            "/%00",
            "/%ff",
            "/a#frag",
            "example.com:443",
            "ftp://h/x",
            "http:///x",
            "mcp",
        ] {
            assert!(
                matches!(target("GET", bad), Err(HttpError::BadRequest(_))),
                "{bad} gave {:?}",
                target("GET", bad)
            );
        }
    }

    #[test]
    fn methods() {
        let method_of = |m: &str| only_request(format!("{m} / HTTP/1.1\r\n\r\n").as_bytes()).method;
        assert_eq!(method_of("GET"), Method::Get);
        assert_eq!(method_of("HEAD"), Method::Head);
        assert_eq!(method_of("POST"), Method::Post);
        assert_eq!(method_of("PUT"), Method::Put);
        assert_eq!(method_of("DELETE"), Method::Delete);
        assert_eq!(method_of("OPTIONS"), Method::Options);
        assert_eq!(method_of("PATCH"), Method::Patch);
        assert_eq!(method_of("get"), Method::Other("get".to_owned()));
        assert_eq!(Method::Other("PURGE".to_owned()).to_string(), "PURGE");
        assert_eq!(Method::Delete.to_string(), "DELETE");
    }

    #[test]
    fn error_statuses_and_messages() {
        let limits = Limits::default();
        let cases = [
            (HttpError::BadRequest("bad"), 400),
            (HttpError::HeadersTooLarge, 431),
            (HttpError::BodyTooLarge, 413),
            (HttpError::UnsupportedVersion, 505),
            (HttpError::NotImplemented("nope"), 501),
            (HttpError::ExpectationFailed, 417),
        ];
        for (err, status) in cases {
            assert_eq!(err.status(), status);
            assert!(!err.message().is_empty());
        }
        assert_eq!(HttpError::BadRequest("bad").message(), "bad");
        assert_eq!(
            HttpError::HeadersTooLarge.describe(&limits),
            "request headers exceed 16384 bytes or 64 fields"
        );
        assert_eq!(
            HttpError::BodyTooLarge.describe(&limits),
            "request body exceeds 4194304 bytes"
        );
        assert_eq!(HttpError::BadRequest("bad").to_string(), "400 bad");
    }

    // The work counter makes the linearity claims testable without clocks: a reader that
    // re-parsed the head or re-scanned the body on every call would examine O(n²) bytes here.

    #[test]
    fn body_in_one_byte_reads_is_linear() {
        let body_len = 4 * 1024 * 1024;
        let mut input =
            format!("POST / HTTP/1.1\r\nContent-Length: {body_len}\r\n\r\n").into_bytes();
        input.resize(input.len() + body_len, b'b');
        let mut reader = RequestReader::new(Limits::default());
        let mut buf = Vec::new();
        let mut completed = None;
        for &byte in &input {
            buf.push(byte);
            if let Ok(Progress::Complete(request)) = reader.advance(&mut buf) {
                completed = Some(request);
            }
        }
        assert_eq!(completed.map(|r| r.body.len()), Some(body_len));
        assert!(
            reader.examined <= 2 * input.len() as u64,
            "examined {}",
            reader.examined
        );
    }

    #[test]
    fn chunked_body_in_one_byte_reads_is_linear() {
        let mut input = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..256 {
            input.extend_from_slice(b"1000\r\n");
            input.resize(input.len() + 0x1000, b'c');
            input.extend_from_slice(b"\r\n");
        }
        input.extend_from_slice(b"0\r\n\r\n");
        let mut reader = RequestReader::new(Limits::default());
        let mut buf = Vec::new();
        let mut completed = None;
        for &byte in &input {
            buf.push(byte);
            if let Ok(Progress::Complete(request)) = reader.advance(&mut buf) {
                completed = Some(request);
            }
        }
        assert_eq!(completed.map(|r| r.body.len()), Some(256 * 0x1000));
        assert!(
            reader.examined <= 2 * input.len() as u64,
            "examined {}",
            reader.examined
        );
    }

    #[test]
    fn head_in_one_byte_reads_is_linear() {
        let lines: String = (0..60)
            .map(|i| format!("X-{i}: {}\r\n", "v".repeat(250)))
            .collect();
        let input = format!("GET / HTTP/1.1\r\n{lines}\r\n").into_bytes();
        assert!(input.len() > 15_000 && input.len() <= Limits::DEFAULT_MAX_HEAD_BYTES);
        let mut reader = RequestReader::new(Limits::default());
        let mut buf = Vec::new();
        let mut completed = 0;
        for &byte in &input {
            buf.push(byte);
            if let Ok(Progress::Complete(_)) = reader.advance(&mut buf) {
                completed += 1;
            }
        }
        assert_eq!(completed, 1);
        assert!(
            reader.examined <= 8 * input.len() as u64,
            "examined {}",
            reader.examined
        );
    }

    /// Deterministic xorshift, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn mutated_and_random_input_never_panics() {
        let limits = Limits {
            max_head_bytes: 512,
            max_body_bytes: 64,
            max_headers: 8,
        };
        let seeds: [&[u8]; 4] = [
            CHUNKED,
            b"POST /m?a=%20 HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n",
            b"\r\nOPTIONS * HTTP/1.1\r\nAccept: */*;q=0.5\r\nConnection: close\r\n\r\n",
            b"GET http://h/p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nA;x\r\n0123456789\r\n0\r\nT: v\r\n\r\n",
        ];
        let alphabet = b"\r\n :;%0aAfF9-\t,=?/*\x00\xff";
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..3000 {
            let mut input = seeds[round % seeds.len()].to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(input.len() + 1);
                let byte = alphabet[rng.below(alphabet.len())];
                match rng.below(3) {
                    0 if at < input.len() => input[at] = byte,
                    1 if at < input.len() => {
                        input.remove(at);
                    }
                    _ => input.insert(at, byte),
                }
            }
            if round % 10 == 0 {
                input = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
            }
            let mut pieces = Vec::new();
            let mut rest = input.as_slice();
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at(1 + rng.below(rest.len().min(40)));
                pieces.push(piece);
                rest = tail;
            }
            let outcome = run(limits, &pieces);
            for request in &outcome.requests {
                assert!(request.body.len() <= limits.max_body_bytes);
            }
            if outcome.error.is_none() {
                assert!(outcome.leftover.len() <= input.len());
            }
        }
    }
}
