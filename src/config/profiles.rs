//! The `profiles` section: named views of the servers' tools, each served at its own URL.
//!
//! A profile names its `servers` (default: all), `include`/`exclude` globs over exposed tool names,
//! whether it offers `prompts` and `resources`, its `toolExposure` (`all`, `search`, `auto`) with the
//! `maxTools` threshold for `auto`, and `maxToolNameLength`. Every profile named here is checked
//! against the servers that exist; the resolved list always holds a `default` profile (everything,
//! unless the file defines one), which the plain endpoints serve.

use serde_json::Value;

use super::schema::Checker;
use super::types::{Profile, ToolExposure, ToolFilter};
use super::{index_path, key_path};

const PROFILE_KEYS: &[&str] = &[
    "servers",
    "include",
    "exclude",
    "prompts",
    "resources",
    "toolExposure",
    "maxTools",
    "maxToolNameLength",
    "requiredScopes",
];
const PROFILE_HINTS: &[(&str, &str)] = &[
    (
        "tools",
        "a profile selects tools with \"include\" and \"exclude\" globs",
    ),
    (
        "exposure",
        "did you mean \"toolExposure\" (\"all\", \"search\" or \"auto\")?",
    ),
];
const EXPOSURES: &[&str] = &["all", "search", "auto"];
const DEFAULT_MAX_TOOLS: usize = 128;
const DEFAULT_MAX_TOOL_NAME_LENGTH: usize = 64;
/// Shortened names keep at least 7 characters before their 9-character hash suffix.
pub const MIN_TOOL_NAME_LENGTH: usize = 16;
const MAX_PROFILE_NAME_LEN: usize = 64;

/// Reads `profiles` (absent: only `default`). `servers` are the names of every configured server.
pub(super) fn read(c: &mut Checker, v: Option<&Value>, servers: &[&str]) -> Vec<Profile> {
    let mut profiles = Vec::new();
    if let Some(v) = v {
        let expected = "an object of profile name: {\"servers\", \"include\", \"exclude\", ...}";
        if let Some(read) = c.entries(v, "profiles", expected, |c, name, v, path| {
            Some(profile(c, name, v, path, servers))
        }) {
            profiles.extend(read.into_iter().flatten());
        }
    }
    if !profiles.iter().any(|p| p.name == "default") {
        profiles.insert(0, Profile::everything("default"));
    }
    profiles
}

fn profile(
    c: &mut Checker,
    name: &str,
    v: &Value,
    path: &str,
    servers: &[&str],
) -> Option<Profile> {
    let valid = !name.is_empty()
        && name.len() <= MAX_PROFILE_NAME_LEN
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
    if !valid {
        c.report(
            path,
            format!(
                "\"{name}\" is not a valid profile name (it goes in the URL, /mcp/<name>): use 1 to {MAX_PROFILE_NAME_LEN} letters, digits, \"_\" or \"-\""
            ),
        );
    }
    let obj = c.object(
        v,
        path,
        "an object with \"servers\", \"include\", \"exclude\", \"toolExposure\", ...",
    )?;
    c.unknown_keys(obj, path, PROFILE_KEYS, PROFILE_HINTS);
    let mut profile = Profile::everything(name);
    profile.servers = c.field(obj, path, "servers", |c, v, p| {
        let list = c.list(v, p, "an array of server names", |c, v, p| {
            c.non_empty_string(v, p).map(str::to_owned)
        })?;
        let mut ok = true;
        for (i, server) in list.iter().enumerate() {
            if !servers.contains(&server.as_str()) {
                ok = false;
                let known = if servers.is_empty() {
                    "there are no servers".to_string()
                } else {
                    format!("servers: {}", servers.join(", "))
                };
                c.report(
                    &index_path(p, i),
                    format!("no server named \"{server}\" ({known})"),
                );
            }
        }
        ok.then_some(list)
    });
    let globs = |c: &mut Checker, v: &Value, p: &str| {
        c.list(
            v,
            p,
            "an array of exposed tool names or patterns (\"*\" matches anything)",
            |c, v, p| c.non_empty_string(v, p).map(str::to_owned),
        )
    };
    profile.tools = ToolFilter {
        include: c.field(obj, path, "include", globs).unwrap_or_default(),
        exclude: c.field(obj, path, "exclude", globs).unwrap_or_default(),
    };
    profile.prompts = c
        .field(obj, path, "prompts", Checker::boolean)
        .unwrap_or(true);
    profile.resources = c
        .field(obj, path, "resources", Checker::boolean)
        .unwrap_or(true);
    let hints = [("full", "write \"all\""), ("lazy", "write \"search\"")];
    profile.tool_exposure = c
        .field(obj, path, "toolExposure", |c, v, p| {
            c.choice(v, p, EXPOSURES, &hints)
        })
        .map(|choice| match choice {
            "search" => ToolExposure::Search,
            "auto" => ToolExposure::Auto,
            _ => ToolExposure::All,
        })
        .unwrap_or_default();
    profile.max_tools = c
        .field(obj, path, "maxTools", |c, v, p| c.count(v, p, 1, 100_000))
        .unwrap_or(DEFAULT_MAX_TOOLS);
    profile.max_tool_name_length = c
        .field(obj, path, "maxToolNameLength", |c, v, p| {
            c.count(v, p, MIN_TOOL_NAME_LENGTH, DEFAULT_MAX_TOOL_NAME_LENGTH)
        })
        .unwrap_or(DEFAULT_MAX_TOOL_NAME_LENGTH);
    if obj.contains_key("maxTools") && profile.tool_exposure != ToolExposure::Auto {
        c.report(
            &key_path(path, "maxTools"),
            "only \"toolExposure\": \"auto\" uses maxTools; set it, or remove maxTools",
        );
    }
    profile.required_scopes = c
        .field(obj, path, "requiredScopes", |c, v, p| {
            c.list(v, p, "a list of scope names", super::oauth::scope)
        })
        .unwrap_or_default();
    valid.then_some(profile)
}

#[cfg(test)]
mod tests {
    use super::super::parse_str;
    use super::*;
    use serde_json::json;

    fn servers() -> Value {
        json!([{"name": "a", "command": ["x"]}, {"name": "b", "command": ["x"]}])
    }

    fn profiles(v: Value) -> Result<Vec<Profile>, Vec<String>> {
        let config = json!({"servers": servers(), "profiles": v});
        parse_str(&config.to_string(), &|_| None)
            .map(|c| c.profiles)
            .map_err(|e| e.problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn without_profiles_there_is_the_default_one() {
        let config = parse_str(&json!({"servers": servers()}).to_string(), &|_| None).unwrap();
        assert_eq!(config.profiles, [Profile::everything("default")]);
    }

    #[test]
    fn every_key_is_read() {
        let read = profiles(json!({
            "small": {"servers": ["b"], "include": ["echo*"], "exclude": ["*_x"], "prompts": false,
                      "resources": false, "toolExposure": "auto", "maxTools": 5, "maxToolNameLength": 40},
            "default": {"toolExposure": "search"}
        }))
        .unwrap();
        assert_eq!(read.len(), 2, "a defined default is not added again");
        let small = &read[0];
        assert_eq!(small.name, "small");
        assert_eq!(small.servers.as_deref(), Some(&["b".to_string()][..]));
        assert_eq!(small.tools.include, ["echo*"]);
        assert_eq!(small.tools.exclude, ["*_x"]);
        assert!(!small.prompts && !small.resources);
        assert_eq!(small.tool_exposure, ToolExposure::Auto);
        assert_eq!((small.max_tools, small.max_tool_name_length), (5, 40));
        assert_eq!(read[1].tool_exposure, ToolExposure::Search);
        assert_eq!(read[1].max_tool_name_length, 64);
    }

    #[test]
    fn bad_values_are_named_with_their_path() {
        let problems = profiles(json!({
            "bad name": {},
            "x": {"servers": ["a", "zz"], "toolExposure": "lazy", "maxToolNameLength": 8,
                  "tools": ["a"], "prompts": "no"},
            "y": {"maxTools": 3},
            "z": []
        }))
        .unwrap_err();
        let expected = [
            "profiles[\"bad name\"]: \"bad name\" is not a valid profile name",
            "profiles.x.tools: unknown key (a profile selects tools",
            "profiles.x.servers[1]: no server named \"zz\" (servers: a, b)",
            "profiles.x.prompts: expected true or false",
            "profiles.x.toolExposure: expected one of \"all\", \"search\", \"auto\", found \"lazy\" (a string); write \"search\"",
            "profiles.x.maxToolNameLength: expected an integer from 16 to 64, found 8",
            "profiles.y.maxTools: only \"toolExposure\": \"auto\" uses maxTools",
            "profiles.z: expected an object",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for (problem, start) in problems.iter().zip(expected) {
            assert!(problem.starts_with(start), "{problem} / {start}");
        }
        assert!(profiles(json!([])).unwrap_err()[0].starts_with("profiles: expected an object"));
    }
}
