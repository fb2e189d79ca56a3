//! Sans-IO HTTP/1.1 response framing for the client side: finding and parsing a response head,
//! deciding how its body is delimited (RFC 9112 §6.3), and decoding chunked bodies.
//!
//! Like `crate::http` (whose request-side chunked decoder is private to it and speaks in server
//! statuses), nothing here touches a socket: [`super::conn`] feeds it bytes.
//!
//! Invariants:
//! - No server input makes this code panic: slicing is bounds-checked, numbers off the wire use
//!   checked arithmetic, malformed input is an error in words.
//! - Every byte is scanned once: the head-end search resumes where it stopped, the chunked decoder
//!   copies data runs in bulk and walks framing bytes through a one-byte state machine.
//! - Memory is bounded: heads by [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`], chunk extensions and
//!   trailers by [`MAX_CHUNK_META_BYTES`]; body size limits are the caller's (it sees every byte).

/// Largest response head accepted (status line + fields + blank line).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields accepted in one response head.
pub const MAX_HEADERS: usize = 100;
/// Budget for chunk extensions plus trailer fields in one chunked body.
pub const MAX_CHUNK_META_BYTES: usize = 64 * 1024;

/// How the body of a response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all: a response to HEAD, 1xx, 204 or 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Names lower-cased, values trimmed (non-UTF-8 bytes replaced).
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    /// The server allows another request on this connection after this response.
    pub keep_alive: bool,
}

/// Where the head that starts `buf` ends (the index just past its blank line), scanning from
/// `*scanned` and remembering how far it got so repeated calls on a growing buffer stay linear.
/// Bare LF line ends are accepted, as httparse accepts them.
pub fn find_head_end(buf: &[u8], scanned: &mut usize) -> Option<usize> {
    // Resume two bytes back: the terminator may straddle the previous end of the buffer.
    let from = scanned.saturating_sub(2);
    let window = buf.get(from..).unwrap_or_default();
    for (i, &byte) in window.iter().enumerate() {
        if byte != b'\n' {
            continue;
        }
        match (window.get(i + 1), window.get(i + 2)) {
            (Some(b'\n'), _) => return Some(from + i + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(from + i + 3),
            _ => {}
        }
    }
    *scanned = buf.len();
    None
}

/// Parses the complete head `bytes` (as delimited by [`find_head_end`]) of the response to a
/// request made with `method`.
pub fn parse_head(bytes: &[u8], method: &str) -> Result<Head, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("the response head is incomplete".into()),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(format!(
                "the response has more than {MAX_HEADERS} header fields"
            ))
        }
        Err(e) => return Err(format!("the response head is malformed ({e})")),
    }
    let status = response.code.unwrap_or(0);
    let http11 = response.version == Some(1);
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|field| {
            let value = String::from_utf8_lossy(field.value);
            (field.name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let framing = framing(status, method, &headers)?;
    let keep_alive = keep_alive(http11, &headers) && framing != Framing::UntilClose;
    Ok(Head {
        status,
        headers,
        framing,
        keep_alive,
    })
}

/// RFC 9112 §6.3, in order.
fn framing(status: u16, method: &str, headers: &[(String, String)]) -> Result<Framing, String> {
    if method.eq_ignore_ascii_case("HEAD") || matches!(status, 100..=199 | 204 | 304) {
        return Ok(Framing::Empty);
    }
    let mut codings = values(headers, "transfer-encoding").flat_map(|v| v.split(','));
    if let Some(first) = codings.next() {
        // Only a lone `chunked` is decodable; the gateway sends no TE header, so a server has no
        // business applying other codings.
        let others = codings.count();
        return match first.trim().eq_ignore_ascii_case("chunked") && others == 0 {
            true => Ok(Framing::Chunked),
            false => Err("the response uses a transfer coding other than chunked".into()),
        };
    }
    let mut length = None;
    for value in values(headers, "content-length").flat_map(|v| v.split(',')) {
        let value = value.trim();
        let parsed = value
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| value.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| format!("the response has an invalid Content-Length '{value}'"))?;
        if length.is_some_and(|seen| seen != parsed) {
            return Err("the response has conflicting Content-Length values".into());
        }
        length = Some(parsed);
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// HTTP/1.1 stays open unless told `close`; HTTP/1.0 closes unless told `keep-alive`.
fn keep_alive(http11: bool, headers: &[(String, String)]) -> bool {
    let has = |token: &str| {
        values(headers, "connection")
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if http11 {
        !has("close")
    } else {
        has("keep-alive")
    }
}

fn values<'a>(headers: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

pub use crate::http::{ChunkError, ChunkedDecoder};

/// A decoder for a response body: no size limit of its own (the caller counts what it keeps),
/// extensions and trailers bounded by [`MAX_CHUNK_META_BYTES`].
pub fn chunked_decoder() -> ChunkedDecoder {
    ChunkedDecoder::new(usize::MAX, MAX_CHUNK_META_BYTES)
}

/// A chunked-framing error as words about the server's response.
pub fn describe_chunk_error(error: ChunkError) -> String {
    match error {
        ChunkError::Malformed(words) => format!("the chunked response body is malformed: {words}"),
        ChunkError::BodyTooLarge => "a chunk size in the response overflows".into(),
        ChunkError::ExtensionsTooLarge | ChunkError::TrailersTooLarge => format!(
            "the response's chunk extensions and trailers exceed {MAX_CHUNK_META_BYTES} bytes"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, method: &str) -> Result<Head, String> {
        parse_head(text.as_bytes(), method)
    }

    fn framing_of(fields: &str) -> Result<Framing, String> {
        head(&format!("HTTP/1.1 200 OK\r\n{fields}\r\n"), "POST").map(|h| h.framing)
    }

    #[test]
    fn finds_the_head_end_however_it_arrives() {
        let text = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody";
        for split in 0..=text.len() {
            let mut scanned = 0;
            let first = find_head_end(&text[..split], &mut scanned);
            let end = first.or_else(|| find_head_end(text, &mut scanned));
            assert_eq!(end, Some(25), "split at {split}");
        }
        let mut scanned = 0;
        assert_eq!(
            find_head_end(b"HTTP/1.1 200 OK\nA: b\n\nx", &mut scanned),
            Some(22)
        );
        let mut scanned = 0;
        assert_eq!(
            find_head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n", &mut scanned),
            None
        );
        assert_eq!(scanned, 23);
    }

    #[test]
    fn parses_status_and_fields() {
        let h = head(
            "HTTP/1.1 202 Accepted\r\nContent-Type: text/event-stream \r\nMcp-Session-Id: abc\r\nX: é\r\n\r\n",
            "POST",
        )
        .unwrap();
        assert_eq!(h.status, 202);
        assert_eq!(
            h.headers[0],
            ("content-type".into(), "text/event-stream".into())
        );
        assert_eq!(h.headers[1], ("mcp-session-id".into(), "abc".into()));
        assert_eq!(h.headers[2].1, "é");
        let lossy = parse_head(b"HTTP/1.1 200 OK\r\nX: a\xFFb\r\n\r\n", "GET").unwrap();
        assert_eq!(lossy.headers[0].1, "a\u{FFFD}b");
        assert_eq!(h.framing, Framing::UntilClose);
        assert!(!h.keep_alive, "a close-delimited body ends the connection");
    }

    #[test]
    fn framing_rules() {
        assert_eq!(framing_of("Content-Length: 5\r\n"), Ok(Framing::Length(5)));
        assert_eq!(
            framing_of("Content-Length: 5, 5\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing_of("Transfer-Encoding: Chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing_of("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"),
            Ok(Framing::Chunked),
            "Transfer-Encoding wins over Content-Length"
        );
        assert_eq!(framing_of(""), Ok(Framing::UntilClose));
        for bad in [
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: +1\r\n",
            "Content-Length: 99999999999999999999999\r\n",
            "Content-Length: \r\n",
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: gzip\r\n",
        ] {
            assert!(framing_of(bad).is_err(), "{bad:?}");
        }
        let empty = "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n";
        assert_eq!(head(empty, "GET").unwrap().framing, Framing::Empty);
        let to_head = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
        assert_eq!(head(to_head, "HEAD").unwrap().framing, Framing::Empty);
        let not_modified = "HTTP/1.1 304 Not Modified\r\n\r\n";
        assert_eq!(head(not_modified, "GET").unwrap().framing, Framing::Empty);
    }

    #[test]
    fn keep_alive_rules() {
        let alive = |text: &str| head(text, "GET").unwrap().keep_alive;
        assert!(alive("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!alive(
            "HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!alive("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(alive(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
        ));
    }

    #[test]
    fn bad_heads_are_errors() {
        assert!(head("HTTP/1.1 200 OK\r\n", "GET").is_err());
        assert!(head("HTTP/2 200 OK\r\n\r\n", "GET").is_err());
        assert!(head("SSH-2.0-OpenSSH\r\n\r\n", "GET").is_err());
        assert!(head("HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "GET").is_err());
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let err = head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"), "GET").unwrap_err();
        assert!(err.contains("more than 100 header fields"), "{err}");
    }

    /// Decodes `input` whole, split in two everywhere, and byte by byte; all must agree.
    fn decode_every_way(input: &[u8]) -> Result<(Vec<u8>, usize), String> {
        let whole = decode_pieces(&[input]);
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(decode_pieces(&[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_pieces(&bytes), whole, "byte by byte");
        whole
    }

    fn decode_pieces(pieces: &[&[u8]]) -> Result<(Vec<u8>, usize), String> {
        let mut decoder = chunked_decoder();
        let (mut body, mut consumed) = (Vec::new(), 0);
        for piece in pieces {
            if decoder.is_done() {
                break;
            }
            consumed += decoder
                .decode(piece, &mut body)
                .map_err(describe_chunk_error)?;
        }
        assert!(decoder.is_done(), "incomplete");
        Ok((body, consumed))
    }

    #[test]
    fn chunked_bodies_decode() {
        let input = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let (body, consumed) = decode_every_way(input).unwrap();
        assert_eq!(body, b"hello, world");
        assert_eq!(
            consumed,
            input.len() - 4,
            "bytes after the body are left alone"
        );
        let (body, _) = decode_every_way(b"000A \r\n0123456789\r\n0\r\n\r\n").unwrap();
        assert_eq!(body, b"0123456789");
    }

    #[test]
    fn chunked_framing_errors() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"5;ext\n",
            b"11111111111111111\r\n",
            b"0\r\nTrailer\n",
        ] {
            let mut decoder = chunked_decoder();
            assert!(decoder.decode(bad, &mut Vec::new()).is_err(), "{bad:?}");
        }
        let mut decoder = chunked_decoder();
        let huge = b"FFFFFFFFFFFFFFFF\r\n";
        assert_eq!(decoder.decode(huge, &mut Vec::new()), Ok(huge.len()));
        let mut decoder = chunked_decoder();
        let endless_trailer = vec![b'a'; MAX_CHUNK_META_BYTES + 10];
        let mut input = b"0\r\n".to_vec();
        input.extend_from_slice(&endless_trailer);
        assert!(decoder.decode(&input, &mut Vec::new()).is_err());
    }
}
