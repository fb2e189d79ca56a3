//! `make bench-search`: tool search (`search_tools`) over a catalog of 1,000 tools, the way the
//! reactor answers it: BM25 over the profile's index, then the result's JSON. Also the cost of
//! building the profile views and index, which happens with every registry snapshot (off the
//! reactor). The catalog is synthetic but shaped like real ones: 40 servers of 25 tools, names
//! like `srv07_create_issue_comment`, two-sentence descriptions over a 300-word vocabulary, 1–4
//! parameters each.
//!
//! Prints the figures (median, p99 and mean per query, in microseconds) and writes
//! `target/bench/search.json`. Nothing here asserts a time; the issue's bar is < 1 ms per query.

use mcp_gateway::registry::{Listing, Snapshot};
use mcp_gateway::rpc::Params;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SERVERS: usize = 40;
const TOOLS_PER_SERVER: usize = 25;
const QUERIES: usize = 5_000;

const VERBS: [&str; 20] = [
    "create", "list", "get", "update", "delete", "search", "read", "write", "send", "fetch",
    "archive", "merge", "close", "open", "sync", "export", "import", "render", "schedule", "tag",
];
const NOUNS: [&str; 25] = [
    "issue", "comment", "file", "folder", "message", "channel", "user", "team", "project", "task",
    "event", "calendar", "invoice", "payment", "order", "ticket", "page", "document", "image",
    "branch", "commit", "release", "alert", "metric", "record",
];

/// A deterministic pseudo-random sequence (xorshift), so every run measures the same catalog.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as usize
    }

    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.next() % words.len()]
    }
}

fn vocabulary() -> Vec<String> {
    let syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "ve", "so", "di", "pa"];
    let mut words: Vec<String> = Vec::new();
    for a in syllables {
        for b in syllables {
            for c in ["n", "r", "s"] {
                words.push(format!("{a}{b}{c}"));
            }
        }
    }
    words.extend(VERBS.iter().chain(NOUNS.iter()).map(|w| w.to_string()));
    words
}

fn catalog(rng: &mut Rng) -> Vec<Option<Arc<Listing>>> {
    let words = vocabulary();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    (0..SERVERS)
        .map(|_| {
            let tools = (0..TOOLS_PER_SERVER)
                .map(|t| {
                    let (verb, noun, other) =
                        (rng.pick(&VERBS), rng.pick(&NOUNS), rng.pick(&NOUNS));
                    let sentence = |rng: &mut Rng| -> String {
                        (0..12)
                            .map(|_| rng.pick(&words))
                            .collect::<Vec<_>>()
                            .join(" ")
                    };
                    let description = format!(
                        "{verb} a {noun} of the {other}. {}. {}.",
                        sentence(rng),
                        sentence(rng)
                    );
                    let properties: serde_json::Map<String, Value> = (0..1 + rng.next() % 4)
                        .map(|_| {
                            (
                                format!("{}_{}", rng.pick(&NOUNS), rng.pick(&words)),
                                json!({"type": "string"}),
                            )
                        })
                        .collect();
                    json!({"name": format!("{verb}_{noun}_{other}_{t}"), "description": description,
                           "inputSchema": {"type": "object", "properties": properties}})
                    .as_object()
                    .unwrap()
                    .clone()
                })
                .collect();
            Some(Arc::new(Listing {
                tools,
                ..Listing::default()
            }))
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6
}

fn main() {
    let servers: Vec<Value> = (0..SERVERS)
        .map(|i| json!({"name": format!("srv{i:02}"), "command": ["x"]}))
        .collect();
    let mapping: serde_json::Map<String, Value> = (0..SERVERS)
        .map(|i| {
            (
                format!("srv{i:02}"),
                json!({"prefix": format!("srv{i:02}_")}),
            )
        })
        .collect();
    let config = json!({"servers": servers, "mapping": mapping,
                        "profiles": {"find": {"toolExposure": "search"}}});
    let config = mcp_gateway::config::parse_str(&config.to_string(), &|_| None).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let listings = catalog(&mut rng);

    let builds = 20;
    let started = Instant::now();
    let mut snapshot = None;
    for _ in 0..builds {
        snapshot = Some(Snapshot::build_for(
            &config.servers,
            &listings,
            500,
            &config.profiles,
        ));
    }
    let build_ms = started.elapsed().as_secs_f64() * 1e3 / builds as f64;
    let started = Instant::now();
    for _ in 0..builds {
        let all: Vec<usize> = (0..config.servers.len()).collect();
        std::hint::black_box(Snapshot::build(&config.servers, &listings, &all, 500));
    }
    let merge_ms = started.elapsed().as_secs_f64() * 1e3 / builds as f64;
    let one_view = |profile: usize| {
        let started = Instant::now();
        for _ in 0..builds {
            std::hint::black_box(Snapshot::build_for(
                &config.servers,
                &listings,
                500,
                &config.profiles[profile..=profile],
            ));
        }
        started.elapsed().as_secs_f64() * 1e3 / builds as f64 - merge_ms
    };
    let (all_view_ms, search_view_ms) = (one_view(0), one_view(1));
    let snapshot = snapshot.unwrap();
    let view = snapshot.view("find").unwrap();
    let tools = view.tools.items.len();
    assert_eq!(tools, SERVERS * TOOLS_PER_SERVER);

    let words = vocabulary();
    let queries: Vec<Params> = (0..QUERIES)
        .map(|_| {
            let n = 1 + rng.next() % 4;
            let query: Vec<&str> = (0..n)
                .map(|_| words[rng.next() % words.len()].as_str())
                .collect();
            let body = json!({"name": "search_tools", "arguments": {"query": query.join(" ")}});
            Params::parse(body.to_string().as_bytes()).unwrap()
        })
        .collect();
    // Warm-up, then each query timed alone.
    let mut matched = 0usize;
    for params in queries.iter().take(200) {
        matched += mcp_gateway::upstream::search::find(view, params).len();
    }
    let mut times = Vec::with_capacity(QUERIES);
    for params in &queries {
        let t = Instant::now();
        let answer = mcp_gateway::upstream::search::find(view, params);
        times.push(t.elapsed());
        matched += answer.len();
    }
    times.sort();
    let mean = times.iter().sum::<Duration>().as_secs_f64() * 1e6 / times.len() as f64;
    let (p50, p99, max) = (
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
    );
    println!(
        "search_tools over {tools} tools, {QUERIES} queries of 1-4 words (answer JSON included):"
    );
    println!("  p50 {p50:.1} us   p99 {p99:.1} us   max {max:.1} us   mean {mean:.1} us");
    println!(
        "snapshot build for {tools} tools: {build_ms:.2} ms with 2 profile views and the index, {merge_ms:.2} ms without (off the reactor)"
    );
    println!(
        "  of which a view: {all_view_ms:.2} ms (toolExposure all), {search_view_ms:.2} ms (search, with its index)"
    );
    let results = json!({"tools": tools, "queries": QUERIES,
        "search_us": {"p50": p50, "p99": p99, "max": max, "mean": mean},
        "build_ms": build_ms, "merge_only_ms": merge_ms, "view_all_ms": all_view_ms, "view_search_ms": search_view_ms, "answer_bytes_total": matched});
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("search.json"), results.to_string());
}
