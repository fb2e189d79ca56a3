//! What a child writes that is not protocol (stderr, junk on stdout) on its way into the log:
//! bounded in rate per child and made safe to print (sans-IO).
//!
//! Invariants: per child at most `LINES_PER_WINDOW` lines are logged per `WINDOW`; the rest are
//! counted and the count is logged once when the window ends ("12,345 lines suppressed"); a logged
//! line never carries a raw control byte (ESC and friends are written as `\x1b`) and never more
//! than `MAX_LOGGED` bytes of text.

use std::borrow::Cow;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(10);
pub const LINES_PER_WINDOW: u32 = 200;
/// Longest text logged from one line.
pub const MAX_LOGGED: usize = 2048;

/// One child's log budget.
#[derive(Debug)]
pub struct LogBudget {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

/// What to do with one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; first log that this many lines were suppressed in the window before, if any.
    Log { suppressed_before: u64 },
    /// Count it, do not log it.
    Suppress,
}

impl LogBudget {
    pub fn new(now: Instant) -> LogBudget {
        LogBudget {
            window_start: now,
            logged: 0,
            suppressed: 0,
        }
    }

    pub fn judge(&mut self, now: Instant) -> Verdict {
        let mut suppressed_before = 0;
        if now.saturating_duration_since(self.window_start) >= WINDOW {
            suppressed_before = self.close_window(now);
        }
        if self.logged < LINES_PER_WINDOW {
            self.logged += 1;
            Verdict::Log { suppressed_before }
        } else {
            self.suppressed += 1;
            Verdict::Suppress
        }
    }

    /// When the current window's suppressed count is due to be reported, if any is pending.
    pub fn report_due(&self) -> Option<Instant> {
        (self.suppressed > 0).then_some(self.window_start + WINDOW)
    }

    /// Ends the window if it is over; returns how many lines it suppressed (to log now).
    pub fn flush(&mut self, now: Instant) -> u64 {
        if now.saturating_duration_since(self.window_start) >= WINDOW {
            self.close_window(now)
        } else {
            0
        }
    }

    /// What was suppressed and not yet reported (the child is gone: report it now).
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }

    fn close_window(&mut self, now: Instant) -> u64 {
        self.window_start = now;
        self.logged = 0;
        std::mem::take(&mut self.suppressed)
    }
}

/// `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A child's line as it may go into the log: invalid UTF-8 replaced, control characters escaped,
/// trailing white space dropped, cut at `MAX_LOGGED` bytes with a note of what was cut.
pub fn printable(line: &[u8]) -> Cow<'_, str> {
    let text = String::from_utf8_lossy(line);
    let trimmed_len = text.trim_end().len();
    let clean = trimmed_len <= MAX_LOGGED
        && !text[..trimmed_len]
            .chars()
            .any(|c| c.is_control() && c != '\t');
    if clean {
        return match text {
            Cow::Borrowed(s) => Cow::Borrowed(&s[..trimmed_len]),
            Cow::Owned(mut s) => {
                s.truncate(trimmed_len);
                Cow::Owned(s)
            }
        };
    }
    let text = &text[..trimmed_len];
    let mut out = String::with_capacity(trimmed_len.min(MAX_LOGGED) + 32);
    let mut written = 0;
    for (at, c) in text.char_indices() {
        if out.len() >= MAX_LOGGED {
            out.push_str(&format!(" … ({} more bytes)", text.len() - at));
            return Cow::Owned(out);
        }
        if c.is_control() && c != '\t' {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
        written = at + c.len_utf8();
    }
    debug_assert_eq!(written, text.len());
    Cow::Owned(out)
}

/// Lines that say nothing about what went wrong (npm's footer, npx's advice).
const NOISE: &[&str] = &[
    "a complete log of this run can be found in",
    "npm notice",
    "run `npm audit`",
    "to address all issues",
];
/// Words of a line that says what went wrong.
const TELLING: &[&str] = &[
    "error",
    "fail",
    "fatal",
    "exception",
    "traceback",
    "panic",
    "not found",
    "no such",
    "cannot",
    "can't",
    "unable",
    "denied",
    "refused",
    "enoent",
    "eacces",
    "eaddrinuse",
    "invalid",
    "missing",
    "unknown",
    "e404",
    "not installed",
];

/// The most informative of a dead child's last stderr lines (oldest first): the last one that
/// says what went wrong, else the last one that is not noise.
pub fn best_clue(lines: &[String]) -> Option<&str> {
    let useful = |l: &&String| {
        let lower = l.to_ascii_lowercase();
        !l.trim().is_empty() && !NOISE.iter().any(|n| lower.contains(n))
    };
    let telling = |l: &&String| {
        let lower = l.to_ascii_lowercase();
        TELLING.iter().any(|w| lower.contains(w))
    };
    lines
        .iter()
        .rev()
        .filter(useful)
        .find(telling)
        .or_else(|| lines.iter().rev().find(useful))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_logged_up_to_the_budget_then_counted() {
        let t0 = Instant::now();
        let mut budget = LogBudget::new(t0);
        for _ in 0..LINES_PER_WINDOW {
            assert_eq!(
                budget.judge(t0),
                Verdict::Log {
                    suppressed_before: 0
                }
            );
        }
        for _ in 0..12_345 {
            assert_eq!(budget.judge(t0), Verdict::Suppress);
        }
        assert_eq!(budget.report_due(), Some(t0 + WINDOW));
        assert_eq!(budget.flush(t0 + Duration::from_secs(1)), 0, "not yet");
        assert_eq!(budget.flush(t0 + WINDOW), 12_345);
        assert_eq!(budget.report_due(), None);
        assert_eq!(
            budget.judge(t0 + WINDOW),
            Verdict::Log {
                suppressed_before: 0
            }
        );
    }

    #[test]
    fn the_count_is_reported_with_the_first_line_of_the_next_window() {
        let t0 = Instant::now();
        let mut budget = LogBudget::new(t0);
        for _ in 0..LINES_PER_WINDOW + 5 {
            budget.judge(t0);
        }
        assert_eq!(
            budget.judge(t0 + WINDOW + Duration::from_secs(1)),
            Verdict::Log {
                suppressed_before: 5
            }
        );
    }

    #[test]
    fn control_bytes_never_reach_the_log() {
        assert_eq!(printable(b"plain text  \r"), "plain text");
        assert_eq!(printable(b"\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(printable(b"bell\x07 nul\x00"), "bell\\x07 nul\\x00");
        assert_eq!(printable("c1 \u{9b}x".as_bytes()), "c1 \\x9bx");
        assert_eq!(printable(b"tab\tkept"), "tab\tkept");
        let long = vec![b'a'; MAX_LOGGED + 100];
        let logged = printable(&long);
        assert!(logged.ends_with(" … (100 more bytes)"), "{logged}");
        assert_eq!(thousands(12_345), "12,345");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn the_telling_line_beats_npm_s_footer() {
        let lines: Vec<String> = [
            "npm error code E404",
            "npm error 404 Not Found - GET https://registry/@x%2fnope - Not found",
            "npm error A complete log of this run can be found in: /root/.npm/_logs/x.log",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            best_clue(&lines),
            Some("npm error 404 Not Found - GET https://registry/@x%2fnope - Not found")
        );
        let calm: Vec<String> = ["starting", "listening on stdio"]
            .map(String::from)
            .to_vec();
        assert_eq!(best_clue(&calm), Some("listening on stdio"));
        assert_eq!(best_clue(&[]), None);
    }
}
