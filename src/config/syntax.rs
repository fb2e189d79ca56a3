//! Reading the config text into a JSON tree: syntax errors with line and column, and duplicate keys.
//!
//! `serde_json` silently keeps the last of two equal keys in one object, which would hide mistakes such
//! as a server entry with two `"command"`s. So the tree is built by a small visitor of our own that
//! notes every duplicate with its JSON path, instead of by `serde_json::from_str::<Value>`.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::{index_path, key_path, Problem};

/// Parses `text`. A syntax error is the single `Err` problem; duplicate keys come back next to the tree.
pub(super) fn parse(text: &str) -> Result<(Value, Vec<Problem>), Problem> {
    if text.trim().is_empty() {
        return Err(Problem::new(
            "",
            "the file is empty: expected a JSON object (`mcp-gateway init` writes an example)",
        ));
    }
    let mut duplicates = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let tree = TreeSeed {
        path: String::new(),
        duplicates: &mut duplicates,
    }
    .deserialize(&mut de)
    .and_then(|tree| de.end().map(|()| tree))
    .map_err(|e| syntax_problem(text, &e))?;
    Ok((tree, duplicates))
}

fn syntax_problem(text: &str, error: &serde_json::Error) -> Problem {
    // serde_json's message already ends in "at line L column C". Comments are the most common
    // non-JSON people write into config files, and serde_json only says "expected value" there.
    let at_comment = text
        .lines()
        .nth(error.line().saturating_sub(1))
        .and_then(|line| line.get(error.column().saturating_sub(1)..))
        .is_some_and(|rest| rest.starts_with("//") || rest.starts_with("/*"));
    let hint = if at_comment {
        " (JSON does not allow comments)"
    } else {
        ""
    };
    Problem::new("", format!("invalid JSON: {error}{hint}"))
}

/// Builds one JSON value at `path`, recording duplicate keys found anywhere inside it.
struct TreeSeed<'a> {
    path: String,
    duplicates: &'a mut Vec<Problem>,
}

impl<'de> DeserializeSeed<'de> for TreeSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TreeSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json never produces a non-finite float, so `Null` is unreachable in practice.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = TreeSeed {
                path: index_path(&self.path, items.len()),
                duplicates: &mut *self.duplicates,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = key_path(&self.path, &key);
            let value = map.next_value_seed(TreeSeed {
                path: path.clone(),
                duplicates: &mut *self.duplicates,
            })?;
            if object.insert(key, value).is_some() {
                self.duplicates.push(Problem::new(
                    path,
                    "duplicate key: it appears more than once in this object",
                ));
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn builds_the_same_tree_as_serde_json() {
        let text = r#"{"b": [1, -2, 3.5, "x", null, true], "a": {"z": {}, "y": []}}"#;
        let (tree, duplicates) = parse(text).unwrap();
        assert!(duplicates.is_empty());
        assert_eq!(
            tree,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        // Key order is the file's (preserve_order).
        assert_eq!(
            tree.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(tree["a"], json!({"z": {}, "y": []}));
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let problem = parse("{\n  \"gateway\": {\n    \"port\": 1,\n  }\n}").unwrap_err();
        assert_eq!(problem.path, "");
        assert_eq!(
            problem.message,
            "invalid JSON: trailing comma at line 4 column 3"
        );
        let problem = parse("{\"a\": 1} x").unwrap_err();
        assert_eq!(
            problem.message,
            "invalid JSON: trailing characters at line 1 column 10"
        );
    }

    #[test]
    fn comments_get_a_hint() {
        let problem = parse("{\n  // the gateway\n  \"gateway\": {}\n}").unwrap_err();
        assert_eq!(
            problem.message,
            "invalid JSON: key must be a string at line 2 column 3 (JSON does not allow comments)"
        );
        let problem = parse("{\"a\": /* one */ 1}").unwrap_err();
        assert_eq!(
            problem.message,
            "invalid JSON: expected value at line 1 column 7 (JSON does not allow comments)"
        );
        // Other errors get no hint.
        let problem = parse("{\"a\": 1 / 2}").unwrap_err();
        assert!(!problem.message.contains("comments"), "{problem:?}");
    }

    #[test]
    fn empty_file_is_one_problem() {
        let problem = parse(" \n").unwrap_err();
        assert!(
            problem.message.starts_with("the file is empty"),
            "{problem:?}"
        );
    }

    #[test]
    fn duplicate_keys_are_reported_with_paths() {
        let text = r#"{"servers": [{"name": "a", "command": "x", "command": "y"}],
                       "mapping": {"my server": {"prefix": "p", "prefix": "q"}},
                       "pool": {}, "pool": {}}"#;
        let (tree, duplicates) = parse(text).unwrap();
        let paths: Vec<_> = duplicates.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "servers[0].command",
                "mapping[\"my server\"].prefix",
                "pool"
            ]
        );
        assert_eq!(
            duplicates[0].message,
            "duplicate key: it appears more than once in this object"
        );
        // The tree still holds the last value, like serde_json.
        assert_eq!(tree["servers"][0]["command"], "y");
    }
}
