//! Results as the 2026-07-28 revision wants them, spliced into the server's raw result text: every
//! result carries `resultType` (`"complete"` when the server left it out), and list and read
//! results carry the caching hints `ttlMs` and `cacheScope`.
//!
//! Invariants: a result is never re-encoded. Its top-level member names are found by one scan of
//! the bytes (no tree is built, no string is allocated), and the missing members are written in
//! front of the existing ones; what a server did say is never overwritten. Text that is not a JSON
//! object is returned unchanged (the caller forwards what the server said).

use serde_json::Value;

/// The caching hints of a result (SEP-2549).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cache {
    /// How long the result may be considered fresh; 0 is "immediately stale", which is also what
    /// the revision tells clients to assume when a server says nothing.
    pub ttl_ms: u64,
    /// `cacheScope: "private"`: not to be shared across authorization contexts.
    pub private: bool,
}

impl Cache {
    /// What a list says when its server gave no hints: stale at once, the same for everyone.
    pub const LIST_DEFAULT: Cache = Cache {
        ttl_ms: 0,
        private: false,
    };
    /// What a read says when its server gave no hints: stale at once, and possibly per user.
    pub const READ_DEFAULT: Cache = Cache {
        ttl_ms: 0,
        private: true,
    };

    /// The hints of a merged result: the smallest ttl, and private if any part is.
    pub fn merge(self, other: Cache) -> Cache {
        Cache {
            ttl_ms: self.ttl_ms.min(other.ttl_ms),
            private: self.private || other.private,
        }
    }

    /// The hints a parsed result carries (absent: `ttlMs` 0; a negative one counts as 0, as the
    /// revision tells clients; `cacheScope` other than "private" is public).
    pub fn of(result: &Value) -> Cache {
        let ttl_ms = match result.get("ttlMs") {
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f > 0.0).map(|f| f as u64))
                .unwrap_or(0),
            _ => 0,
        };
        Cache {
            ttl_ms,
            private: result.get("cacheScope").and_then(Value::as_str) == Some("private"),
        }
    }

    fn scope(self) -> &'static str {
        if self.private {
            "private"
        } else {
            "public"
        }
    }
}

/// `result` with `resultType: "complete"` when it has no `resultType`, and then with `cache`'s
/// hints for whichever of `ttlMs` / `cacheScope` it lacks.
pub fn complete(result: &str, cache: Option<Cache>) -> String {
    let Some(found) = top_level(result, &["resultType", "ttlMs", "cacheScope"]) else {
        return result.to_string();
    };
    let mut front = String::new();
    let mut add = |member: String| {
        front.push_str(&member);
        front.push(',');
    };
    if !found[0] {
        add("\"resultType\":\"complete\"".into());
    }
    // A result that names its own type is a 2026-07-28 server's: its complete results carry their
    // own hints, and an `input_required` one must carry none.
    if let Some(cache) = cache.filter(|_| !found[0]) {
        if !found[1] {
            add(format!("\"ttlMs\":{}", cache.ttl_ms));
        }
        if !found[2] {
            add(format!("\"cacheScope\":\"{}\"", cache.scope()));
        }
    }
    if front.is_empty() {
        return result.to_string();
    }
    let open = result.find('{').expect("top_level saw an object");
    let rest = &result[open + 1..];
    if rest.trim_start().starts_with('}') {
        front.pop(); // an empty object: no member follows
    }
    let mut out = String::with_capacity(result.len() + front.len());
    out.push_str(&result[..=open]);
    out.push_str(&front);
    out.push_str(rest);
    out
}

/// Which of `keys` are members of the JSON object `text` (not of objects nested in it); None when
/// `text` is not an object. Keys are compared as written (an escaped key does not match).
fn top_level<const N: usize>(text: &str, keys: &[&str; N]) -> Option<[bool; N]> {
    let bytes = text.as_bytes();
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    if bytes[start] != b'{' {
        return None;
    }
    let mut found = [false; N];
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    // At depth 1, a string right after `{` or `,` is a member name.
    let mut expect_key = false;
    let mut key_start = 0;
    for (at, &b) in bytes.iter().enumerate().skip(start) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => {
                    in_string = false;
                    if key_start > 0 {
                        let key = &text[key_start..at];
                        if let Some(i) = keys.iter().position(|k| *k == key) {
                            found[i] = true;
                        }
                        key_start = 0;
                    }
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                if depth == 1 && expect_key {
                    key_start = at + 1;
                }
                expect_key = false;
            }
            b'{' | b'[' => {
                depth += 1;
                expect_key = depth == 1;
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' => expect_key = depth == 1,
            _ if b.is_ascii_whitespace() => {}
            _ => expect_key = false,
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_type_is_stamped_only_when_missing() {
        assert_eq!(
            complete(r#"{"content":[]}"#, None),
            r#"{"resultType":"complete","content":[]}"#
        );
        assert_eq!(complete("{}", None), r#"{"resultType":"complete"}"#);
        assert_eq!(complete(" { } ", None), r#" {"resultType":"complete" } "#);
        let given = r#"{"content":[],"resultType":"input_required"}"#;
        assert_eq!(complete(given, None), given);
        // Nested members of that name are not the result's own.
        assert_eq!(
            complete(r#"{"a":{"resultType":"x"},"b":["resultType"]}"#, None),
            r#"{"resultType":"complete","a":{"resultType":"x"},"b":["resultType"]}"#
        );
        // A string value that looks like a key is not one.
        assert_eq!(
            complete(r#"{"a":"resultType"}"#, None),
            r#"{"resultType":"complete","a":"resultType"}"#
        );
        assert_eq!(complete("[1]", None), "[1]");
        assert_eq!(complete("null", None), "null");
    }

    #[test]
    fn the_rest_is_written_back_byte_for_byte() {
        let text = r#"{"n":1000000000000000000000000000001,"f":1.10,"s":"\u00e9\"}{,"}"#;
        let out = complete(text, None);
        assert_eq!(&out[out.find(',').unwrap() + 1..], &text[1..]);
    }

    #[test]
    fn cache_hints_fill_only_what_the_server_left_out() {
        let read = Some(Cache::READ_DEFAULT);
        assert_eq!(
            complete(r#"{"contents":[]}"#, read),
            r#"{"resultType":"complete","ttlMs":0,"cacheScope":"private","contents":[]}"#
        );
        assert_eq!(
            complete(r#"{"contents":[],"ttlMs":500}"#, read),
            r#"{"resultType":"complete","cacheScope":"private","contents":[],"ttlMs":500}"#
        );
        let interim = r#"{"resultType":"input_required","inputRequests":{}}"#;
        assert_eq!(
            complete(interim, read),
            interim,
            "no hints on an interim result"
        );
    }

    #[test]
    fn merged_hints_take_the_smallest_ttl_and_private_if_any() {
        let a = Cache::of(&serde_json::json!({"ttlMs": 60000, "cacheScope": "public"}));
        let b = Cache::of(&serde_json::json!({"ttlMs": 5000, "cacheScope": "private"}));
        assert_eq!(
            a.merge(b),
            Cache {
                ttl_ms: 5000,
                private: true
            }
        );
        assert_eq!(Cache::of(&serde_json::json!({"ttlMs": -4})).ttl_ms, 0);
        assert_eq!(Cache::of(&serde_json::json!({})), Cache::LIST_DEFAULT);
    }
}
