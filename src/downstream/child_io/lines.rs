//! Splitting a pipe's bytes into lines under a length limit (sans-IO).
//!
//! Invariants: a line is handed out whole, without its `\n` (a trailing `\r` is the caller's to
//! strip); a line longer than the limit is never buffered past the limit: its start is kept (so the
//! request id of an oversized answer can still be read) and the rest is skipped up to its `\n`.

/// How much of an oversized line is kept to find its id.
const HEAD_KEPT: usize = 4096;

/// What `LineBuf::feed` found in a chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// One whole line.
    Line(&'a [u8]),
    /// A line went over the limit and is being skipped; `head` is its first bytes.
    TooLong { head: Vec<u8> },
}

/// The unfinished line of one pipe.
#[derive(Debug, Default)]
pub struct LineBuf {
    line: Vec<u8>,
    /// Skipping the rest of a line that went over the limit.
    discarding: bool,
}

impl LineBuf {
    /// Feeds a chunk; `each` sees every whole line (or overflow) in order.
    pub fn feed(&mut self, mut chunk: &[u8], limit: usize, mut each: impl FnMut(Piece<'_>)) {
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    if self.discarding {
                        self.discarding = false;
                    } else if self.line.is_empty() {
                        if end > limit {
                            each(Piece::TooLong {
                                head: chunk[..end.min(HEAD_KEPT)].to_vec(),
                            });
                        } else {
                            each(Piece::Line(&chunk[..end]));
                        }
                    } else if self.line.len() + end > limit {
                        let head = self.take_head();
                        each(Piece::TooLong { head });
                    } else {
                        self.line.extend_from_slice(&chunk[..end]);
                        let line = std::mem::take(&mut self.line);
                        each(Piece::Line(&line));
                        self.line = line;
                        self.line.clear();
                        shrink(&mut self.line);
                    }
                    chunk = &chunk[end + 1..];
                }
                None => {
                    if !self.discarding {
                        self.line.extend_from_slice(chunk);
                        if self.line.len() > limit {
                            let head = self.take_head();
                            self.discarding = true;
                            each(Piece::TooLong { head });
                        }
                    }
                    return;
                }
            }
        }
    }

    /// What is left when the pipe closes: an unterminated last line.
    pub fn rest(&mut self) -> Option<Vec<u8>> {
        if self.discarding || self.line.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.line))
    }

    fn take_head(&mut self) -> Vec<u8> {
        let mut head = std::mem::take(&mut self.line);
        head.truncate(HEAD_KEPT);
        head
    }
}

/// Gives back memory after an unusually large message.
fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() > 1024 * 1024 {
        *buf = Vec::new();
    }
}

/// The numeric top-level `"id"` of a JSON-RPC message from its first bytes, if it can be told:
/// how an oversized answer still fails only the call it belongs to.
pub fn leading_id(head: &[u8]) -> Option<u64> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < head.len() {
        match head[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let end = string_end(head, i)?;
                if depth == 1 && &head[i..=end] == b"\"id\"" {
                    return number_after_colon(&head[end + 1..]);
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the closing quote of the string opening at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn number_after_colon(rest: &[u8]) -> Option<u64> {
    let rest = rest
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let after = rest.get(digits).copied();
    if digits == 0 || !matches!(after, Some(b',' | b'}' | b' ' | b'\t' | b'\r' | b'\n')) {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(buf: &mut LineBuf, chunk: &[u8], limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        buf.feed(chunk, limit, |piece| match piece {
            Piece::Line(line) => out.push(String::from_utf8_lossy(line).into_owned()),
            Piece::TooLong { head } => out.push(format!("TOO LONG {}", head.len())),
        });
        out
    }

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        let mut buf = LineBuf::default();
        assert_eq!(run(&mut buf, b"ab", 100), Vec::<String>::new());
        assert_eq!(run(&mut buf, b"c\nde\nf", 100), ["abc", "de"]);
        assert_eq!(run(&mut buf, b"\n", 100), ["f"]);
        assert_eq!(buf.rest(), None);
        run(&mut buf, b"tail", 100);
        assert_eq!(buf.rest(), Some(b"tail".to_vec()));
    }

    #[test]
    fn an_oversized_line_is_reported_once_and_skipped_to_its_end() {
        let mut buf = LineBuf::default();
        assert_eq!(run(&mut buf, b"0123456789", 5), ["TOO LONG 10"]);
        assert_eq!(run(&mut buf, b"more of it", 5), Vec::<String>::new());
        assert_eq!(run(&mut buf, b"end\nok\n", 5), ["ok"]);
        // Whole in one chunk, too.
        assert_eq!(run(&mut buf, b"0123456789\nok\n", 5), ["TOO LONG 10", "ok"]);
    }

    #[test]
    fn the_id_of_an_oversized_answer_is_read_from_its_head() {
        assert_eq!(
            leading_id(br#"{"jsonrpc":"2.0","id":42,"result":{"x":"#),
            Some(42)
        );
        assert_eq!(
            leading_id(br#"{"result":{"id":7,"content":[]},"id":9}"#),
            Some(9)
        );
        assert_eq!(
            leading_id(br#"{"result":{"text":"\"id\":5"},"id" : 3 }"#),
            Some(3)
        );
        assert_eq!(
            leading_id(br#"{"jsonrpc":"2.0","result":{"text":"aaaa"#),
            None
        );
        assert_eq!(leading_id(br#"{"id":"abc","result":1}"#), None);
        assert_eq!(leading_id(br#"{"id":12"#), None, "maybe cut mid-number");
    }
}
