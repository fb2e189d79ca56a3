//! Tool search: a BM25 index over the tools of one profile, built with the registry snapshot (on the
//! thread that builds it, never the reactor) and queried by `search_tools`.
//!
//! A tool's document is the words of its exposed name, title, description and the names of its
//! input parameters; name words count three times, title words twice, so a query naming what the
//! tool is called ranks it above tools that merely mention the word. Words are split at anything
//! that is not a letter or digit and at camelCase humps, lowercased, and a plural `s` is dropped
//! (`files` finds `file`). Scores are Okapi BM25 (k1 = 1.2, b = 0.75); ties keep catalog order, so
//! the same query over the same catalog always answers the same list.

use super::Def;
use serde_json::Value;
use std::collections::HashMap;

const K1: f32 = 1.2;
const B: f32 = 0.75;
const NAME_WEIGHT: u32 = 3;
const TITLE_WEIGHT: u32 = 2;

/// The index of one catalog: postings per term, each document's length.
#[derive(Debug, Default)]
pub struct Index {
    /// term → (document, weighted term frequency), documents ascending.
    postings: HashMap<String, Vec<(u32, u32)>>,
    lengths: Vec<u32>,
    average_length: f32,
}

/// One match: the tool's position in the catalog and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub tool: usize,
    pub score: f32,
}

impl Index {
    /// Indexes `tools` in order (a hit's `tool` is its position here).
    pub fn build<'a>(tools: impl IntoIterator<Item = &'a Def>) -> Index {
        let mut index = Index::default();
        let mut counts: HashMap<String, u32> = HashMap::new();
        for (doc, def) in tools.into_iter().enumerate() {
            counts.clear();
            let mut add = |text: &str, weight: u32| {
                for_each_term(text, |term| *counts.entry(term).or_insert(0) += weight);
            };
            let text = |key: &str| def.get(key).and_then(Value::as_str).unwrap_or("");
            add(text("name"), NAME_WEIGHT);
            add(text("title"), TITLE_WEIGHT);
            add(text("description"), 1);
            if let Some(Value::Object(properties)) = def
                .get("inputSchema")
                .and_then(|schema| schema.get("properties"))
            {
                for parameter in properties.keys() {
                    add(parameter, 1);
                }
            }
            index.lengths.push(counts.values().sum());
            for (term, count) in counts.drain() {
                index
                    .postings
                    .entry(term)
                    .or_default()
                    .push((doc as u32, count));
            }
        }
        let total: u64 = index.lengths.iter().map(|&l| u64::from(l)).sum();
        index.average_length = (total as f32 / index.lengths.len().max(1) as f32).max(1.0);
        index
    }

    /// Tools indexed.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// The best `limit` matches for `query`, best first; nothing when no word of it occurs.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Hit> {
        let mut terms = Vec::new();
        for_each_term(query, |term| {
            if !terms.contains(&term) {
                terms.push(term);
            }
        });
        let documents = self.lengths.len() as f32;
        let mut scores = vec![0f32; self.lengths.len()];
        for term in &terms {
            let Some(postings) = self.postings.get(term) else {
                continue;
            };
            let n = postings.len() as f32;
            let idf = (1.0 + (documents - n + 0.5) / (n + 0.5)).ln();
            for &(doc, tf) in postings {
                let tf = tf as f32;
                let length = self.lengths[doc as usize] as f32 / self.average_length;
                scores[doc as usize] += idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * length));
            }
        }
        let mut hits: Vec<Hit> = scores
            .into_iter()
            .enumerate()
            .filter(|(_, score)| *score > 0.0)
            .map(|(tool, score)| Hit { tool, score })
            .collect();
        // Stable: equal scores keep catalog order.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(limit);
        hits
    }
}

/// Calls `f` with each normalized word of `text`.
fn for_each_term(text: &str, mut f: impl FnMut(String)) {
    let mut word = String::new();
    let mut previous_lower = false;
    let mut flush = |word: &mut String| {
        if !word.is_empty() {
            f(normalize(word));
            word.clear();
        }
    };
    for ch in text.chars() {
        if !ch.is_alphanumeric() {
            flush(&mut word);
            previous_lower = false;
            continue;
        }
        if ch.is_uppercase() && previous_lower {
            flush(&mut word);
        }
        previous_lower = ch.is_lowercase() || ch.is_ascii_digit();
        word.extend(ch.to_lowercase());
    }
    flush(&mut word);
}

/// Plural `s` dropped from longer words ("files" → "file", "class" stays).
fn normalize(word: &str) -> String {
    if word.len() > 3 && word.ends_with('s') && !word.ends_with("ss") {
        return word[..word.len() - 1].to_string();
    }
    word.to_string()
}

/// The first line of a description, at most `max` characters (cut at a word, with "…").
pub fn one_line(description: &str, max: usize) -> String {
    let line = description.lines().map(str::trim).find(|l| !l.is_empty());
    let line = line.unwrap_or("");
    if line.chars().count() <= max {
        return line.to_string();
    }
    let cut: String = line.chars().take(max).collect();
    let cut = match cut.rfind(' ') {
        Some(space) if space > max / 2 => &cut[..space],
        _ => cut.as_str(),
    };
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(v: Value) -> Def {
        v.as_object().unwrap().clone()
    }

    fn catalog() -> Vec<Def> {
        vec![
            def(
                json!({"name": "read_file", "description": "Read the contents of a file from disk",
                       "inputSchema": {"type": "object", "properties": {"path": {}}}}),
            ),
            def(
                json!({"name": "write_file", "description": "Write text to a file",
                       "inputSchema": {"type": "object", "properties": {"path": {}, "content": {}}}}),
            ),
            def(json!({"name": "getWeather", "title": "Weather forecast",
                       "description": "Forecast for a city", "inputSchema": {"properties": {"city": {}}}})),
            def(json!({"name": "echo", "description": "Echoes back the input"})),
        ]
    }

    fn names(index: &Index, tools: &[Def], query: &str) -> Vec<String> {
        index
            .search(query, 10)
            .iter()
            .map(|h| tools[h.tool]["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn words_of_names_descriptions_and_parameters_are_found() {
        let tools = catalog();
        let index = Index::build(&tools);
        assert_eq!(index.len(), 4);
        assert_eq!(names(&index, &tools, "forecast")[0], "getWeather");
        assert_eq!(
            names(&index, &tools, "weather")[0],
            "getWeather",
            "camelCase split"
        );
        assert_eq!(
            names(&index, &tools, "city")[0],
            "getWeather",
            "a parameter name"
        );
        let files = names(&index, &tools, "read files");
        assert_eq!(files[0], "read_file", "plural and name words: {files:?}");
        assert!(files.contains(&"write_file".to_string()));
        assert!(names(&index, &tools, "zebra").is_empty());
        assert!(names(&index, &tools, "").is_empty());
        assert_eq!(index.search("file", 1).len(), 1, "limit");
    }

    #[test]
    fn name_words_weigh_more_than_a_mention() {
        let tools = vec![
            def(json!({"name": "notes", "description": "Keeps echo of things"})),
            def(json!({"name": "echo", "description": "Says it back"})),
        ];
        let index = Index::build(&tools);
        assert_eq!(names(&index, &tools, "echo"), ["echo", "notes"]);
    }

    #[test]
    fn one_line_descriptions() {
        assert_eq!(one_line("\n  First line.\nSecond", 80), "First line.");
        assert_eq!(one_line("", 80), "");
        let long = "word ".repeat(40);
        let short = one_line(&long, 30);
        assert!(
            short.ends_with('…') && short.chars().count() <= 31,
            "{short}"
        );
    }
}
