//! Configuration: finding the config file, reading it, and turning it into a validated [`Config`].
//!
//! This module owns the file format: every key, default and limit, `${VAR}` expansion, the Claude
//! Desktop `mcpServers` import, and the messages users see when a file is wrong. Every problem in a
//! file is collected and reported with the JSON path it concerns, so one run shows everything to fix.
//! The rest of the gateway only sees the resolved types in [`types`].
//!
//! Inside: `syntax` reads the text (syntax errors, duplicate keys), `schema` is the toolkit of checked
//! reads, `resolve` applies it section by section (`profiles` the `profiles` section), `expand`
//! does `${VAR}`, `secret` reads `gateway.authTokenFile`, and `locate` finds the file and writes the example for `mcp-gateway init`.

mod clients;
mod expand;
pub use expand::PROCESS_DIR;
mod locate;
mod oauth;
mod profiles;
pub use profiles::MIN_TOOL_NAME_LENGTH;
mod resolve;
mod schema;
mod secret;
pub use secret::check_private;
mod syntax;
pub mod types;

use std::fmt;
use std::path::{Path, PathBuf};

pub use locate::{default_user_path, locate, write_atomically, write_example};

/// Where the gateway keeps its state when `gateway.stateDir` does not say.
pub fn default_state_dir() -> Option<PathBuf> {
    resolve::default_state_dir()
}
pub use types::*;

/// The example config written by `mcp-gateway init`.
pub const EXAMPLE_CONFIG: &str = include_str!("../../config/servers.example.json");

/// All problems found in one config file.
///
/// `Display` prints one problem per line, as `<file>: <path>: <reason>` (without the file when it is
/// not known, and without the path for problems with the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub problems: Vec<Problem>,
}

/// One problem, at a JSON path such as `servers[1].command[0]` or `gateway.port` (`""` for the whole
/// file). Keys that are not plain words are quoted: `mcpServers["my server"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl ConfigError {
    /// An error with a single problem about the file as a whole.
    fn whole_file(file: Option<PathBuf>, message: impl Into<String>) -> Self {
        ConfigError {
            file,
            problems: vec![Problem::new("", message)],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            if let Some(file) = &self.file {
                write!(f, "{}: ", file.display())?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Parses, validates and expands a config file's text. `env` looks up environment variables for
/// `${VAR}` (production passes the process environment, tests a closure).
pub fn parse_str(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let fail = |problems| ConfigError {
        file: None,
        problems,
    };
    let (tree, mut problems) = syntax::parse(text).map_err(|problem| fail(vec![problem]))?;
    match resolve::config(&tree, env) {
        Ok(config) if problems.is_empty() => Ok(config),
        Ok(_) => Err(fail(problems)),
        Err(more) => {
            problems.extend(more);
            Err(fail(problems))
        }
    }
}

/// Reads and parses the config file at `path` with the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::whole_file(
            Some(path.to_path_buf()),
            format!("cannot read the file: {e}"),
        )
    })?;
    let mut config =
        parse_str(&text, &|name| std::env::var(name).ok()).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            ..e
        })?;
    config.source = Some(path.to_path_buf());
    for note in &config.notes {
        log::warn!("{}: {note}", path.display());
    }
    log::debug!(
        "loaded {} with {} server(s)",
        path.display(),
        config.servers.len()
    );
    Ok(config)
}

/// The path of `key` inside the object at `parent`: `gateway.port`, or `mapping["my server"]` when
/// the key is not a plain word (so paths stay unambiguous).
fn key_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'));
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", serde_json::Value::from(key)),
    }
}

/// The path of item `index` of the array at `parent`: `servers[2]`.
fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// A directory under the system temp dir, removed on drop, for tests that touch the file system.
#[cfg(test)]
struct ScratchDir(PathBuf);

#[cfg(test)]
impl ScratchDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mcp-gateway-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn paths_quote_odd_keys() {
        assert_eq!(key_path("", "gateway"), "gateway");
        assert_eq!(key_path("gateway", "port"), "gateway.port");
        assert_eq!(key_path("", "$schema"), "$schema");
        assert_eq!(
            key_path("mcpServers", "my server"),
            "mcpServers[\"my server\"]"
        );
        assert_eq!(key_path("env", ""), "env[\"\"]");
        assert_eq!(key_path("", "a.b"), "[\"a.b\"]");
        assert_eq!(index_path("servers", 3), "servers[3]");
    }

    #[test]
    fn display_prints_one_problem_per_line() {
        let mut error = ConfigError {
            file: Some(PathBuf::from("/etc/gw.json")),
            problems: vec![
                Problem::new("gateway.port", "too big"),
                Problem::new("", "whole file"),
            ],
        };
        assert_eq!(
            error.to_string(),
            "/etc/gw.json: gateway.port: too big\n/etc/gw.json: whole file"
        );
        error.file = None;
        assert_eq!(error.to_string(), "gateway.port: too big\nwhole file");
        let _: &dyn std::error::Error = &error;
    }

    #[test]
    fn example_config_parses_without_any_variables() {
        let config = parse_str(EXAMPLE_CONFIG, &no_env).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["filesystem", "memory", "fetch", "github"]);
        assert!(config.servers[..3].iter().all(|s| s.enabled));
        let github = &config.servers[3];
        assert!(!github.enabled);
        let ServerKind::Remote(remote) = &github.kind else {
            panic!("github should be remote")
        };
        assert_eq!(
            remote.headers,
            [("Authorization".to_owned(), "Bearer ".to_owned())]
        );
        assert!(config.servers.iter().all(|s| !s.mapping.prefix.is_empty()));
    }

    #[test]
    fn example_config_uses_variables_when_set() {
        let env = |name: &str| (name == "GITHUB_TOKEN").then(|| "ghp_x".to_owned());
        let config = parse_str(EXAMPLE_CONFIG, &env).unwrap();
        let ServerKind::Remote(remote) = &config.servers[3].kind else {
            panic!()
        };
        assert_eq!(remote.headers[0].1, "Bearer ghp_x");
    }

    #[test]
    fn default_config_runs_the_demo_server() {
        let config = parse_str(include_str!("../../config/default.json"), &no_env)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (config.gateway.host.as_str(), config.gateway.port),
            ("127.0.0.1", 4298)
        );
        assert_eq!(config.servers.len(), 1);
        let demo = &config.servers[0];
        assert_eq!(demo.name, "demo");
        assert_eq!((demo.pool.min, demo.pool.max), (1, 4));
        assert_eq!(demo.mapping.prefix, "demo_");
        let ServerKind::Local(local) = &demo.kind else {
            panic!("demo should be local")
        };
        assert_eq!(local.command, ["./target/debug/mcp-demo-server"]);
    }

    #[test]
    fn load_sets_source_and_names_the_file_in_errors() {
        let dir = ScratchDir::new("load");
        let good = dir.path().join("good.json");
        std::fs::write(&good, r#"{"servers": [{"name": "a", "command": "prog"}]}"#).unwrap();
        let config = load(&good).unwrap();
        assert_eq!(config.source.as_deref(), Some(good.as_path()));

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"gateway": {"prot": 1}}"#).unwrap();
        let error = load(&bad).unwrap_err();
        assert_eq!(error.file.as_deref(), Some(bad.as_path()));
        assert_eq!(
            error.to_string(),
            format!(
                "{}: gateway.prot: unknown key (did you mean \"port\"?)",
                bad.display()
            )
        );

        let missing = dir.path().join("missing.json");
        let error = load(&missing).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: cannot read the file: ", missing.display())),
            "{error}"
        );
    }
}
