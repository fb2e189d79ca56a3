//! How an original name becomes the name clients see, and the rules every exposed name obeys.
//!
//! Order of the rules, for one server's item with original name `n`:
//! 1. filters (tools only) test `n` itself: kept if it matches an `include` glob (or `include` is empty)
//!    and no `exclude` glob;
//! 2. `rename[n]`, when present, is the exposed name, exactly;
//! 3. otherwise `stripPrefix` is removed from the front of `n` (when `n` starts with it and something is
//!    left), then `prefix` is prepended;
//! 4. the result is made valid for the strictest clients: `^[a-zA-Z0-9_-]{1,64}$`. Other characters
//!    become `_`; a name longer than 64 keeps its first 55 characters plus `_` and 8 hex digits of a
//!    stable hash of the full name, so two long names that share a beginning stay distinct.
//!
//! Every exposed name maps back to exactly one (server, original name): the registry routes by it.

use crate::config::{Mapping, StripPrefix, ToolFilter};

/// Longest name the strictest clients accept.
pub const MAX_NAME_LEN: usize = 64;
/// Characters kept before the hash suffix of a shortened name.
const SHORTENED_HEAD: usize = MAX_NAME_LEN - 9;

/// True when `name` is already acceptable to every client.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.bytes().all(is_name_byte)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Whether a server's tool with this original name is exposed at all.
pub fn passes(filter: &ToolFilter, original: &str) -> bool {
    let included =
        filter.include.is_empty() || filter.include.iter().any(|g| glob_match(g, original));
    included && !filter.exclude.iter().any(|g| glob_match(g, original))
}

/// The exposed name of a tool before collision handling (rules 2–4 above).
pub fn exposed_name(mapping: &Mapping, original: &str) -> String {
    if let Some((_, renamed)) = mapping.rename.iter().find(|(from, _)| from == original) {
        return sanitize(renamed);
    }
    prefixed_name(mapping, original)
}

/// Rules 3–4 only: how prompt names are exposed (`rename` and filters are for tools).
pub fn prefixed_name(mapping: &Mapping, original: &str) -> String {
    sanitize(&format!("{}{}", mapping.prefix, strip(mapping, original)))
}

/// The name a collision's loser gets: its server's name in front of its (stripped) original name.
pub fn qualified_name(server: &str, mapping: &Mapping, original: &str) -> String {
    sanitize(&format!("{server}_{}", strip(mapping, original)))
}

/// A last-resort distinct name: `base` shortened, with the hash of `key` appended.
pub fn hashed_name(base: &str, key: &str) -> String {
    let head: String = sanitize(base).chars().take(SHORTENED_HEAD).collect();
    format!("{head}_{:08x}", fnv1a(key.as_bytes()))
}

/// `name` fitted into `max` characters (a profile's `maxToolNameLength`) by the same rule as
/// rule 4: when longer, its first `max - 9` characters, `_`, and 8 hex digits of a stable hash of
/// `key` (the full name, unless that result is taken). `name` is valid (ASCII), `max` at least 10.
pub fn shorten(name: &str, max: usize, key: &str) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let head = &name[..max.saturating_sub(9).min(name.len())];
    format!("{head}_{:08x}", fnv1a(key.as_bytes()))
}

fn strip<'a>(mapping: &Mapping, original: &'a str) -> &'a str {
    let prefix = match &mapping.strip_prefix {
        StripPrefix::None => return original,
        StripPrefix::OwnPrefix => mapping.prefix.as_str(),
        StripPrefix::Literal(prefix) => prefix.as_str(),
    };
    match original.strip_prefix(prefix) {
        Some(rest) if !rest.is_empty() && !prefix.is_empty() => rest,
        _ => original,
    }
}

/// Makes any string a valid exposed name (see the module doc, rule 4). Idempotent on valid names.
pub fn sanitize(desired: &str) -> String {
    let mut name: String = desired
        .chars()
        .map(|c| {
            if c.is_ascii() && is_name_byte(c as u8) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        name.push('_');
    }
    if name.len() > MAX_NAME_LEN {
        name.truncate(SHORTENED_HEAD);
        name.push_str(&format!("_{:08x}", fnv1a(desired.as_bytes())));
    }
    name
}

/// FNV-1a, 32 bits: tiny, stable across runs and platforms, good enough to tell names apart.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `*` matches any run of characters (also none); everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` seen and the text position it was tried at: classic backtracking
    // wildcard match, linear in practice and never recursive.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(prefix: &str, strip: StripPrefix, rename: &[(&str, &str)]) -> Mapping {
        Mapping {
            prefix: prefix.into(),
            strip_prefix: strip,
            rename: rename
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            tools: Vec::new(),
        }
    }

    #[test]
    fn prefix_strip_and_rename() {
        let m = mapping(
            "mm_",
            StripPrefix::Literal("minimax_".into()),
            &[("search", "web_search")],
        );
        assert_eq!(exposed_name(&m, "minimax_tts"), "mm_tts");
        assert_eq!(exposed_name(&m, "other"), "mm_other");
        assert_eq!(exposed_name(&m, "search"), "web_search");
        // Stripping never leaves an empty name.
        assert_eq!(exposed_name(&m, "minimax_"), "mm_minimax_");
        let own = mapping("gh_", StripPrefix::OwnPrefix, &[]);
        assert_eq!(exposed_name(&own, "gh_issues"), "gh_issues");
        assert_eq!(exposed_name(&own, "pulls"), "gh_pulls");
        assert_eq!(exposed_name(&Mapping::default(), "echo"), "echo");
    }

    #[test]
    fn sanitizing_and_shortening() {
        assert_eq!(sanitize("files.read"), "files_read");
        assert_eq!(sanitize("ünï"), "_n_");
        assert_eq!(sanitize(""), "_");
        let long_a = format!("{}a", "x".repeat(70));
        let long_b = format!("{}b", "x".repeat(70));
        let (a, b) = (sanitize(&long_a), sanitize(&long_b));
        assert_eq!(a.len(), MAX_NAME_LEN);
        assert!(is_valid_name(&a) && is_valid_name(&b));
        assert_ne!(a, b, "names sharing 64+ characters must stay distinct");
        assert_eq!(a, sanitize(&long_a), "shortening is deterministic");
        assert_eq!(sanitize(&a), a, "idempotent on valid names");
        assert_eq!(sanitize(&"y".repeat(64)), "y".repeat(64));
    }

    #[test]
    fn shortening_to_a_budget() {
        assert_eq!(shorten("echo", 16, "echo"), "echo");
        let long = "a_rather_long_tool_name_indeed";
        let short = shorten(long, 16, long);
        assert_eq!(short.len(), 16);
        assert!(
            short.starts_with("a_rathe_") && is_valid_name(&short),
            "{short}"
        );
        assert_eq!(short, shorten(long, 16, long), "stable");
        assert_ne!(
            short,
            shorten(long, 16, "srv/other"),
            "another key, another hash"
        );
    }

    #[test]
    fn filters_include_then_exclude() {
        let f = ToolFilter {
            include: vec!["read_*".into(), "echo".into()],
            exclude: vec!["*_secret".into()],
        };
        assert!(passes(&f, "echo"));
        assert!(passes(&f, "read_file"));
        assert!(!passes(&f, "read_secret"));
        assert!(!passes(&f, "write_file"));
        assert!(passes(&ToolFilter::default(), "anything"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("*.md", "x.md"));
        assert!(!glob_match("abc", "abcd"));
        assert!(glob_match("**x", "x"));
    }

    #[test]
    fn qualified_and_hashed_names_are_valid() {
        let m = Mapping::default();
        assert_eq!(qualified_name("srv-2", &m, "echo"), "srv-2_echo");
        let h = hashed_name("srv-2_echo", "srv-2/echo");
        assert!(is_valid_name(&h));
        assert!(h.starts_with("srv-2_echo_"));
    }
}
