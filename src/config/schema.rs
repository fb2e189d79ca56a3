//! The checking toolkit the resolver is built from.
//!
//! A [`Checker`] reads JSON values as the types the config needs. A value of the wrong type or out of
//! range is recorded as a [`Problem`] at its JSON path and the read returns `None`, so the caller can
//! carry on (usually with a default) and one run reports every mistake in the file. It also owns the
//! unknown-key check with its "did you mean" suggestions, and `${VAR}` expansion of string values.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{expand, index_path, key_path, Problem};

pub(super) type Env<'e> = &'e dyn Fn(&str) -> Option<String>;
pub(super) type Object = Map<String, Value>;

/// Longest duration accepted anywhere (365 days): far beyond any sane timeout, and far enough from
/// the limits of `Instant + Duration` that no later arithmetic on it can panic.
pub(super) const MAX_MILLIS: u64 = 365 * 24 * 60 * 60 * 1000;

pub(super) struct Checker<'e> {
    env: Env<'e>,
    problems: Vec<Problem>,
}

impl<'e> Checker<'e> {
    pub(super) fn new(env: Env<'e>) -> Self {
        Checker {
            env,
            problems: Vec::new(),
        }
    }

    pub(super) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// Problems so far: comparing before and after tells whether one part of the file was clean.
    pub(super) fn problem_count(&self) -> usize {
        self.problems.len()
    }

    pub(super) fn report(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    fn wrong(&mut self, path: &str, expected: &str, found: &Value) {
        self.report(
            path,
            format!("expected {expected}, found {}", describe(found)),
        );
    }

    /// Reads `obj[key]` with `read` when present; `None` when absent or invalid (the latter reported).
    pub(super) fn field<'v, T>(
        &mut self,
        obj: &'v Object,
        parent: &str,
        key: &str,
        read: impl FnOnce(&mut Self, &'v Value, &str) -> Option<T>,
    ) -> Option<T> {
        let value = obj.get(key)?;
        read(self, value, &key_path(parent, key))
    }

    pub(super) fn object<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        expected: &str,
    ) -> Option<&'v Object> {
        match v {
            Value::Object(obj) => Some(obj),
            other => {
                self.wrong(path, expected, other);
                None
            }
        }
    }

    /// An array whose items are all read with `item`; `None` if any item (or the array) is wrong.
    /// Every item is checked, so all bad items are reported.
    pub(super) fn list<'v, T>(
        &mut self,
        v: &'v Value,
        path: &str,
        expected: &str,
        mut item: impl FnMut(&mut Self, &'v Value, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Value::Array(items) = v else {
            self.wrong(path, expected, v);
            return None;
        };
        let read: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, v)| item(self, v, &index_path(path, i)))
            .collect();
        read.into_iter().collect()
    }

    /// An object whose entries are all read with `entry(checker, key, value, path)`; `None` if any is
    /// wrong. Entries stay in file order.
    pub(super) fn entries<'v, T>(
        &mut self,
        v: &'v Value,
        path: &str,
        expected: &str,
        mut entry: impl FnMut(&mut Self, &'v str, &'v Value, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let obj = self.object(v, path, expected)?;
        let read: Vec<Option<T>> = obj
            .iter()
            .map(|(k, v)| entry(self, k, v, &key_path(path, k)))
            .collect();
        read.into_iter().collect()
    }

    /// Reports every key of `obj` not in `allowed`.
    pub(super) fn unknown_keys(
        &mut self,
        obj: &Object,
        path: &str,
        allowed: &[&str],
        hints: &[(&str, &str)],
    ) {
        for key in obj.keys().filter(|k| !allowed.contains(&k.as_str())) {
            let hint = hints.iter().find(|(k, _)| k == key).map(|(_, hint)| *hint);
            self.unknown_key(path, key, allowed, hint);
        }
    }

    /// Reports `key` of the object at `parent` as unknown: with `hint` if given, else with the closest
    /// allowed key, else with the list of allowed keys.
    pub(super) fn unknown_key(
        &mut self,
        parent: &str,
        key: &str,
        allowed: &[&str],
        hint: Option<&str>,
    ) {
        let why = match (hint, suggest(key, allowed)) {
            (Some(hint), _) => hint.to_owned(),
            (None, Some(close)) => format!("did you mean \"{close}\"?"),
            (None, None) => format!("allowed here: {}", allowed.join(", ")),
        };
        self.report(&key_path(parent, key), format!("unknown key ({why})"));
    }

    /// An integer in `min..=max`; floats, negatives, strings and out-of-range values are reported
    /// with the allowed range.
    pub(super) fn integer(&mut self, v: &Value, path: &str, min: u64, max: u64) -> Option<u64> {
        self.integer_as(v, path, min, max, &range_text(min, max), "")
    }

    /// Like [`Self::integer`] for counts and sizes held in a `usize`.
    pub(super) fn count(&mut self, v: &Value, path: &str, min: usize, max: usize) -> Option<usize> {
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let n = self.integer(v, path, wide(min), wide(max))?;
        usize::try_from(n).ok()
    }

    /// A duration written as whole milliseconds, at least `min` and at most [`MAX_MILLIS`].
    pub(super) fn millis(&mut self, v: &Value, path: &str, min: u64) -> Option<Duration> {
        let expected = format!(
            "a duration in milliseconds ({})",
            range_text(min, MAX_MILLIS)
        );
        let hint = if v.is_string() {
            "; durations are whole milliseconds, e.g. 30000 for 30 s"
        } else {
            ""
        };
        self.integer_as(v, path, min, MAX_MILLIS, &expected, hint)
            .map(Duration::from_millis)
    }

    fn integer_as(
        &mut self,
        v: &Value,
        path: &str,
        min: u64,
        max: u64,
        expected: &str,
        hint: &str,
    ) -> Option<u64> {
        let found = match v {
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(n), _) if (min..=max).contains(&n) => return Some(n),
                (Some(n), _) => n.to_string(),
                (None, Some(negative)) => negative.to_string(),
                (None, None) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                    format!("{n} (write it without a decimal point or exponent)")
                }
                (None, None) => format!("{n} (not a whole number)"),
            },
            other => describe(other),
        };
        self.report(path, format!("expected {expected}, found {found}{hint}"));
        None
    }

    pub(super) fn boolean(&mut self, v: &Value, path: &str) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong(path, "true or false", other);
                None
            }
        }
    }

    pub(super) fn string<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v str> {
        match v {
            Value::String(s) => Some(s),
            // Unquoted numbers and booleans in `env` and `headers` are a classic slip.
            Value::Number(_) | Value::Bool(_) => {
                self.report(
                    path,
                    format!(
                        "expected a string, found {}; write it in quotes: \"{v}\"",
                        describe(v)
                    ),
                );
                None
            }
            other => {
                self.wrong(path, "a string", other);
                None
            }
        }
    }

    pub(super) fn non_empty_string<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v str> {
        let s = self.string(v, path)?;
        if s.is_empty() {
            self.report(path, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// A string with `${VAR}` expanded.
    pub(super) fn expanded(&mut self, v: &Value, path: &str) -> Option<String> {
        let raw = self.string(v, path)?;
        self.expand(raw, path)
    }

    /// Expands `${VAR}` in `raw`, reporting each bad reference at `path`.
    pub(super) fn expand(&mut self, raw: &str, path: &str) -> Option<String> {
        match expand::expand(raw, self.env) {
            Ok(text) => Some(text),
            Err(messages) => {
                for message in messages {
                    self.report(path, message);
                }
                None
            }
        }
    }

    /// One of the strings in `options`. `hints` gives advice for known wrong values; other near
    /// misses get a "did you mean".
    pub(super) fn choice<'o>(
        &mut self,
        v: &Value,
        path: &str,
        options: &[&'o str],
        hints: &[(&str, &str)],
    ) -> Option<&'o str> {
        if let Some(found) = v.as_str().and_then(|s| options.iter().find(|o| **o == s)) {
            return Some(found);
        }
        let quoted: Vec<String> = options.iter().map(|o| format!("\"{o}\"")).collect();
        let expected = match quoted.split_last() {
            Some((last, [first])) => format!("{first} or {last}"),
            _ => format!("one of {}", quoted.join(", ")),
        };
        let text = v.as_str().unwrap_or_default();
        let advice = match (
            hints.iter().find(|(k, _)| *k == text),
            suggest(text, options),
        ) {
            (Some((_, hint)), _) => format!("; {hint}"),
            (None, Some(close)) if v.is_string() => format!(" (did you mean \"{close}\"?)"),
            _ => String::new(),
        };
        self.report(
            path,
            format!("expected {expected}, found {}{advice}", describe(v)),
        );
        None
    }
}

fn range_text(min: u64, max: u64) -> String {
    match (min, max) {
        (0, u64::MAX) => "an integer, 0 or more".to_owned(),
        (min, u64::MAX) => format!("an integer of at least {min}"),
        (min, max) => format!("an integer from {min} to {max}"),
    }
}

/// A short description of a JSON value for "found ..." in messages.
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("{b} (a boolean)"),
        Value::Number(n) => format!("{n} (a number)"),
        Value::String(s) => format!("{} (a string)", quote(s)),
        Value::Array(a) if a.is_empty() => "an empty array".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// `s` as a JSON string literal, shortened to keep messages on one readable line.
pub(super) fn quote(s: &str) -> String {
    const LIMIT: usize = 60;
    match s.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", Value::from(&s[..cut])),
        None => Value::from(s).to_string(),
    }
}

/// The allowed word closest to `word`, if it is a plausible typo: at most two edits apart once case,
/// `_` and `-` are ignored (so `pool_size` finds `poolSize`), and fewer edits than `word` is long.
pub(super) fn suggest<'a>(word: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let fold = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let word = fold(word);
    allowed
        .iter()
        .map(|candidate| (edit_distance(&word, &fold(candidate)), *candidate))
        .filter(|(d, _)| *d <= 2 && *d < word.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions ("hsot" → "host" is 1).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// Runs `read` on a fresh checker and returns its result and messages ("path: message").
    fn check<T>(read: impl FnOnce(&mut Checker) -> Option<T>) -> (Option<T>, Vec<String>) {
        let mut c = Checker::new(&no_env);
        let out = read(&mut c);
        (
            out,
            c.into_problems().iter().map(ToString::to_string).collect(),
        )
    }

    #[test]
    fn suggestions_tolerate_case_separators_and_typos() {
        let keys = [
            "command",
            "args",
            "poolSize",
            "host",
            "port",
            "minConnections",
        ];
        assert_eq!(suggest("comand", &keys), Some("command"));
        assert_eq!(suggest("Command", &keys), Some("command"));
        assert_eq!(suggest("pool_size", &keys), Some("poolSize"));
        assert_eq!(suggest("min-connections", &keys), Some("minConnections"));
        assert_eq!(suggest("hsot", &keys), Some("host"));
        assert_eq!(suggest("argz", &keys), Some("args"));
        assert_eq!(suggest("xyz", &keys), None);
        assert_eq!(suggest("ab", &keys), None);
    }

    #[test]
    fn integers_report_range_and_what_was_found() {
        let (n, problems) = check(|c| c.integer(&json!("4298"), "gateway.port", 0, 65535));
        assert_eq!(n, None);
        assert_eq!(
            problems,
            ["gateway.port: expected an integer from 0 to 65535, found \"4298\" (a string)"]
        );
        let cases = [
            (json!(70000), "expected an integer from 0 to 65535, found 70000"),
            (json!(-1), "expected an integer from 0 to 65535, found -1"),
            (json!(1.5), "expected an integer from 0 to 65535, found 1.5 (not a whole number)"),
            (json!(80.0), "expected an integer from 0 to 65535, found 80.0 (write it without a decimal point or exponent)"),
            (json!(null), "expected an integer from 0 to 65535, found null"),
        ];
        for (value, message) in cases {
            let (_, problems) = check(|c| c.integer(&value, "p", 0, 65535));
            assert_eq!(problems, [format!("p: {message}")]);
        }
        let (_, problems) = check(|c| c.integer(&json!(0), "p", 1, u64::MAX));
        assert_eq!(problems, ["p: expected an integer of at least 1, found 0"]);
        assert_eq!(
            check(|c| c.integer(&json!(65535), "p", 0, 65535)).0,
            Some(65535)
        );
    }

    #[test]
    fn durations_are_milliseconds() {
        assert_eq!(
            check(|c| c.millis(&json!(1500), "t", 1)).0,
            Some(Duration::from_millis(1500))
        );
        let (_, problems) = check(|c| c.millis(&json!("30s"), "t", 100));
        assert_eq!(
            problems,
            ["t: expected a duration in milliseconds (an integer from 100 to 31536000000), found \"30s\" (a string); \
              durations are whole milliseconds, e.g. 30000 for 30 s"]
        );
        assert!(check(|c| c.millis(&json!(MAX_MILLIS + 1), "t", 0))
            .0
            .is_none());
    }

    #[test]
    fn strings_hint_at_missing_quotes() {
        let (_, problems) = check(|c| {
            c.string(&json!(8080), "servers[0].env.PORT")
                .map(str::to_owned)
        });
        assert_eq!(problems, ["servers[0].env.PORT: expected a string, found 8080 (a number); write it in quotes: \"8080\""]);
        let (_, problems) = check(|c| {
            c.non_empty_string(&json!(""), "gateway.host")
                .map(str::to_owned)
        });
        assert_eq!(problems, ["gateway.host: must not be empty"]);
    }

    #[test]
    fn lists_report_every_bad_item() {
        let (out, problems) = check(|c| {
            c.list(
                &json!(["a", 1, "b", false]),
                "x",
                "an array",
                Checker::expanded,
            )
        });
        assert_eq!(out, None);
        assert_eq!(problems.len(), 2);
        assert!(
            problems[0].starts_with("x[1]: expected a string"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("x[3]: expected a string"),
            "{problems:?}"
        );
    }

    #[test]
    fn choices_suggest() {
        let options = ["auto", "streamable", "sse"];
        let (_, problems) = check(|c| c.choice(&json!("stremable"), "t", &options, &[]));
        assert_eq!(
            problems,
            ["t: expected one of \"auto\", \"streamable\", \"sse\", found \"stremable\" (a string) (did you mean \"streamable\"?)"]
        );
        let (_, problems) = check(|c| {
            c.choice(
                &json!("http"),
                "t",
                &options,
                &[("http", "write \"streamable\"")],
            )
        });
        assert!(
            problems[0].ends_with("found \"http\" (a string); write \"streamable\""),
            "{problems:?}"
        );
        let (_, problems) = check(|c| c.choice(&json!(1), "t", &["local", "remote"], &[]));
        assert_eq!(
            problems,
            ["t: expected \"local\" or \"remote\", found 1 (a number)"]
        );
    }

    #[test]
    fn long_strings_are_shortened() {
        let long = "x".repeat(100);
        assert_eq!(quote(&long), format!("\"{}\"…", "x".repeat(60)));
        assert_eq!(quote("a\"b"), r#""a\"b""#);
    }
}
