//! A JSON object kept as its writer wrote it: the top-level keys in order, each value as raw JSON
//! text. Used for requests' `params` (and to classify a message), so that what the gateway only
//! forwards — a tool's `arguments`, above all — reaches the server byte for byte (an integer of
//! 10^30 stays an integer, `1.10` stays `1.10`), and the gateway parses only the few small members
//! it routes on (`name`, `uri`, `cursor`, `_meta`, …), when it asks for them.
//!
//! Invariants: a member's raw text is valid JSON (serde_json checked it while splitting the object);
//! with duplicate keys, the last one counts (as for a parsed object); writing a `Params` emits every
//! member's text unchanged.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// serde_json's own recursion limit for parsed values.
const MAX_DEPTH: usize = 128;

/// How deeply arrays and objects nest in JSON text (strings skipped); meaningful for valid JSON.
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Why text is not a `Params`.
#[derive(Debug)]
pub enum NotParams {
    /// Not JSON (or nested deeper than a parsed value may be): a parse error.
    Malformed(serde_json::Error),
    /// Valid JSON, but not an object (an array, a number…).
    NotAnObject,
}

impl std::fmt::Display for NotParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotParams::Malformed(e) => write!(f, "{e}"),
            NotParams::NotAnObject => f.write_str("not a JSON object"),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Params {
    members: Vec<(String, Box<RawValue>)>,
}

impl Params {
    /// Splits a JSON object in one pass over the text (plus a byte scan for its nesting, bounded as
    /// serde_json bounds parsed values, though raw members are not parsed: what the gateway forwards
    /// must be something its servers' parsers can take).
    pub fn parse(json: &[u8]) -> Result<Params, NotParams> {
        if nesting_depth(json) > MAX_DEPTH {
            return Err(NotParams::Malformed(serde::de::Error::custom(
                "recursion limit exceeded",
            )));
        }
        Params::parse_shallow(json)
    }

    /// Member `key` split as an object itself (its nesting was checked with the whole).
    pub fn object(&self, key: &str) -> Option<Result<Params, NotParams>> {
        self.raw(key)
            .map(|raw| Params::parse_shallow(raw.get().as_bytes()))
    }

    fn parse_shallow(json: &[u8]) -> Result<Params, NotParams> {
        serde_json::from_slice(json).map_err(|e| match e.classify() {
            // A type error comes at the first token; whether the rest is JSON is told only on
            // this (rare) path.
            serde_json::error::Category::Data
                if serde_json::from_slice::<&RawValue>(json).is_ok() =>
            {
                NotParams::NotAnObject
            }
            _ => NotParams::Malformed(e),
        })
    }

    /// The raw text of member `key`.
    pub fn raw(&self, key: &str) -> Option<&RawValue> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| &**v)
    }

    /// Member `key`, parsed (for the small members the gateway routes on).
    pub fn get(&self, key: &str) -> Option<Value> {
        self.raw(key)
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
    }

    /// Member `key` if it is a string.
    pub fn str(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Whether member `key` is a JSON object (without parsing it).
    pub fn is_object(&self, key: &str) -> bool {
        self.raw(key)
            .is_some_and(|raw| raw.get().trim_start().starts_with('{'))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// Sets member `key` (replacing every earlier one of that name).
    pub fn set(&mut self, key: &str, value: &Value) {
        let raw = RawValue::from_string(value.to_string()).expect("a Value writes valid JSON");
        self.members.retain(|(k, _)| k != key);
        self.members.push((key.to_string(), raw));
    }

    /// Sets member `key` to raw JSON text (replacing every earlier one of that name).
    pub fn set_raw(&mut self, key: &str, raw: Box<RawValue>) {
        self.members.retain(|(k, _)| k != key);
        self.members.push((key.to_string(), raw));
    }

    /// Removes member `key` (every one of that name).
    pub fn remove(&mut self, key: &str) {
        self.members.retain(|(k, _)| k != key);
    }

    /// The member names, in order (a duplicate once per occurrence).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(k, _)| k.as_str())
    }

    /// Sets `_meta.progressToken`, keeping any other `_meta` members.
    pub fn set_progress_token(&mut self, token: Value) {
        let mut meta = match self.get("_meta") {
            Some(Value::Object(meta)) => meta,
            _ => Map::new(),
        };
        meta.insert("progressToken".into(), token);
        self.set("_meta", &Value::Object(meta));
    }

    /// The whole object parsed (for servers reached through an API that wants one).
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        for (key, raw) in &self.members {
            if let Ok(value) = serde_json::from_str(raw.get()) {
                map.insert(key.clone(), value);
            }
        }
        map
    }

    /// From a parsed object (REST builds its params this way).
    pub fn from_map(map: Map<String, Value>) -> Params {
        let mut params = Params::default();
        for (key, value) in &map {
            params.set(key, value);
        }
        params
    }
}

impl Serialize for Params {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (at, (key, raw)) in self.members.iter().enumerate() {
            // A duplicate key written twice would let a server pick another one than we did.
            if !self.members[at + 1..].iter().any(|(k, _)| k == key) {
                map.serialize_entry(key, &**raw)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Params, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Params;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Params, A::Error> {
                let mut members = Vec::with_capacity(access.size_hint().unwrap_or(4));
                while let Some((key, value)) = access.next_entry::<String, Box<RawValue>>()? {
                    members.push((key, value));
                }
                Ok(Params { members })
            }
        }
        deserializer.deserialize_map(Members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_only_forwarded_is_written_back_unchanged() {
        let text = r#"{"name":"t","arguments":{"big":1000000000000000000000000000000,"f":1.10,"u":"\u00e9","k":[1,  2]}}"#;
        let mut params = Params::parse(text.as_bytes()).unwrap();
        assert_eq!(params.str("name").as_deref(), Some("t"));
        assert!(params.is_object("arguments"));
        params.set("name", &Value::from("original"));
        params.set_progress_token(Value::from(7));
        let written = serde_json::to_string(&params).unwrap();
        assert_eq!(
            written,
            r#"{"arguments":{"big":1000000000000000000000000000000,"f":1.10,"u":"\u00e9","k":[1,  2]},"name":"original","_meta":{"progressToken":7}}"#
        );
    }

    #[test]
    fn progress_token_keeps_other_meta_and_the_last_duplicate_counts() {
        let mut params =
            Params::parse(br#"{"_meta":{"progressToken":"abc","other":1},"x":1,"x":2}"#).unwrap();
        assert_eq!(params.get("x"), Some(Value::from(2)));
        params.set_progress_token(Value::from(42));
        let meta = params.get("_meta").unwrap();
        assert_eq!(meta["progressToken"], 42);
        assert_eq!(meta["other"], 1);
        assert_eq!(
            serde_json::to_string(&params).unwrap(),
            r#"{"x":2,"_meta":{"progressToken":42,"other":1}}"#
        );
    }

    #[test]
    fn nesting_is_bounded_as_for_parsed_values() {
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(127), "]".repeat(127));
        assert!(Params::parse(ok.as_bytes()).is_ok());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(128), "]".repeat(128));
        assert!(Params::parse(deep.as_bytes()).is_err());
        let quoted = format!("{{\"a\":\"{}\\\"\"}}", "[".repeat(500));
        assert!(
            Params::parse(quoted.as_bytes()).is_ok(),
            "brackets in strings do not count"
        );
    }

    #[test]
    fn only_objects_are_params() {
        assert!(matches!(Params::parse(b"[1]"), Err(NotParams::NotAnObject)));
        assert!(matches!(
            Params::parse(b"{\"a\":"),
            Err(NotParams::Malformed(_))
        ));
        assert!(matches!(
            Params::parse(b"[1, nope"),
            Err(NotParams::Malformed(_))
        ));
        assert!(Params::parse(b"{}").unwrap().to_map().is_empty());
    }
}
