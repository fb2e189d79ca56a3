//! Sans-IO framing of the client's stdin: newline-delimited JSON-RPC messages.
//!
//! Invariants:
//! - Bytes are split on `\n` only, so a message split across reads — even inside a multi-byte
//!   UTF-8 sequence — is put back together whole, and several messages in one read come out one
//!   by one, in order.
//! - A trailing `\r` is dropped (`\r\n` line ends); lines holding only whitespace are skipped.
//! - Memory is bounded: a line longer than the limit is discarded up to its end and reported once
//!   as [`Line::TooLong`], never buffered whole.
//! - Each byte is scanned once, however many reads a very large message takes.

/// One framed line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A message's bytes, without the line end.
    Message(Vec<u8>),
    /// A line over the limit was dropped; its length so far is given.
    TooLong(usize),
}

/// Splits a byte stream into lines.
#[derive(Debug)]
pub struct Lines {
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no `\n`.
    scanned: usize,
    max: usize,
    /// Skipping the rest of an over-long line; counts its bytes.
    discarding: Option<usize>,
}

impl Lines {
    /// A splitter that drops lines longer than `max` bytes.
    pub fn new(max: usize) -> Lines {
        Lines {
            buf: Vec::new(),
            scanned: 0,
            max,
            discarding: None,
        }
    }

    /// Feeds bytes just read; returns the lines they complete.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<Line> {
        let mut lines = Vec::new();
        while !bytes.is_empty() {
            if let Some(dropped) = self.discarding.as_mut() {
                match bytes.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        lines.push(Line::TooLong(*dropped + end));
                        self.discarding = None;
                        bytes = &bytes[end + 1..];
                    }
                    None => {
                        *dropped += bytes.len();
                        return lines;
                    }
                }
                continue;
            }
            self.buf.extend_from_slice(bytes);
            bytes = &[];
            let mut start = 0;
            while let Some(found) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + found;
                let line = &self.buf[start..end];
                if line.len() > self.max {
                    lines.push(Line::TooLong(line.len()));
                } else if let Some(message) = message(line) {
                    lines.push(Line::Message(message.to_vec()));
                }
                start = end + 1;
                self.scanned = start;
            }
            self.buf.drain(..start);
            self.scanned = self.buf.len();
            if self.buf.len() > self.max {
                self.discarding = Some(self.buf.len());
                self.buf = Vec::new();
                self.scanned = 0;
            }
        }
        lines
    }

    /// What is left at the end of the input: an unterminated last line is still a message.
    pub fn finish(&mut self) -> Option<Line> {
        if let Some(dropped) = self.discarding.take() {
            return Some(Line::TooLong(dropped));
        }
        self.scanned = 0;
        let rest = std::mem::take(&mut self.buf);
        message(&rest).map(|m| Line::Message(m.to_vec()))
    }
}

/// The line without its `\r`, or `None` for a blank line.
fn message(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    (!line.iter().all(u8::is_ascii_whitespace)).then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(lines: Vec<Line>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| match l {
                Line::Message(m) => String::from_utf8(m).unwrap(),
                Line::TooLong(n) => format!("<too long: {n}>"),
            })
            .collect()
    }

    #[test]
    fn several_messages_in_one_read() {
        let mut lines = Lines::new(100);
        assert_eq!(
            messages(lines.feed(b"{\"a\":1}\n{\"b\":2}\r\n\n  \r\n{\"c\":3}\n")),
            ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]
        );
        assert_eq!(lines.finish(), None);
    }

    #[test]
    fn a_message_split_across_reads_even_inside_a_character() {
        let text = "{\"t\":\"h\u{e9}llo \u{2603} \u{1f600}\"}\n";
        let bytes = text.as_bytes();
        // Every split point, including those inside the 2-, 3- and 4-byte characters.
        for split in 1..bytes.len() {
            let mut lines = Lines::new(100);
            let mut out = lines.feed(&bytes[..split]);
            out.extend(lines.feed(&bytes[split..]));
            assert_eq!(messages(out), [text.trim_end()], "split at {split}");
        }
        // One byte at a time.
        let mut lines = Lines::new(100);
        let out: Vec<Line> = bytes.iter().flat_map(|b| lines.feed(&[*b])).collect();
        assert_eq!(messages(out), [text.trim_end()]);
    }

    #[test]
    fn an_unterminated_last_line_is_a_message_at_the_end() {
        let mut lines = Lines::new(100);
        assert!(lines.feed(b"{\"a\":1}").is_empty());
        assert_eq!(lines.finish(), Some(Line::Message(b"{\"a\":1}".to_vec())));
        assert_eq!(lines.finish(), None);
    }

    #[test]
    fn over_long_lines_are_dropped_and_reported_without_buffering_them() {
        let mut lines = Lines::new(8);
        let mut out = lines.feed(b"0123456789");
        assert!(lines.buf.is_empty(), "nothing of the long line is kept");
        out.extend(lines.feed(b"abc\n{\"ok\":1}\n"));
        out.extend(lines.feed(b"0123456789ab\nxy\n"));
        assert_eq!(
            messages(out),
            ["<too long: 13>", "{\"ok\":1}", "<too long: 12>", "xy"]
        );
    }

    #[test]
    fn large_messages_in_many_reads() {
        let big = format!("{{\"x\":\"{}\"}}", "y".repeat(3 << 20));
        let mut input = big.clone().into_bytes();
        input.push(b'\n');
        let mut lines = Lines::new(64 << 20);
        let out: Vec<Line> = input.chunks(65536).flat_map(|c| lines.feed(c)).collect();
        assert_eq!(out, [Line::Message(big.into_bytes())]);
    }
}
