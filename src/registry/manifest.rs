//! A server's last listing kept on disk (`<stateDir>/manifests/`), so that the next run can list its
//! tools, prompts and resources before — or without — starting it.
//!
//! A manifest is keyed by a hash of what defines the server (kind, command and arguments, working
//! directory, environment names and values, URL, transport, headers): change any of it and the old
//! manifest no longer applies. The file holds the listing only, never an environment value or a
//! header. Invariants: files are written whole (temp file + rename) with mode 0600 in a 0700
//! directory; a manifest that cannot be read or parsed is ignored (the server is started to list);
//! nothing here runs on the reactor thread.

use super::{Def, Listing};
use crate::config::{ServerConfig, ServerKind};
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bumped when the file's shape changes: older files are then ignored.
const FORMAT: u64 = 1;

/// Where server `server`'s manifest lives under `state_dir`.
pub fn path(state_dir: &Path, server: &ServerConfig) -> PathBuf {
    state_dir.join("manifests").join(format!(
        "{}-{:016x}.json",
        server.name,
        definition_hash(server)
    ))
}

/// The listing of the last run, if there is a usable one.
pub fn load(state_dir: &Path, server: &ServerConfig) -> Option<Listing> {
    let text = std::fs::read(path(state_dir, server)).ok()?;
    let value: Value = serde_json::from_slice(&text).ok()?;
    if value.get("format").and_then(Value::as_u64) != Some(FORMAT) {
        return None;
    }
    let defs = |key: &str| -> Option<Vec<Def>> {
        value
            .get(key)?
            .as_array()?
            .iter()
            .map(|d| d.as_object().cloned())
            .collect()
    };
    Some(Listing {
        capabilities: value.get("capabilities")?.as_object()?.clone(),
        tools: defs("tools")?,
        prompts: defs("prompts")?,
        resources: defs("resources")?,
        templates: defs("templates")?,
        cache: Default::default(),
    })
}

/// Writes the listing; errors are for the log.
pub fn save(state_dir: &Path, server: &ServerConfig, listing: &Listing) -> std::io::Result<()> {
    let file = path(state_dir, server);
    let body = json!({
        "format": FORMAT,
        "server": server.name,
        "capabilities": listing.capabilities,
        "tools": listing.tools,
        "prompts": listing.prompts,
        "resources": listing.resources,
        "templates": listing.templates,
    });
    write_private(
        &file,
        &serde_json::to_vec(&body).map_err(std::io::Error::other)?,
    )
}

/// Writes `file` whole (a temp file beside it, then rename), mode 0600 in a 0700 directory: what
/// the state directory holds is never seen half-written or by others.
pub fn write_private(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().expect("state files live in a directory");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // Unique per write: two threads of this process (an old and a new handle of one server
    // across a reload, say) never share a temp file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = dir.join(format!(
        ".{}.{}.{n}.tmp",
        file.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    std::fs::rename(&temp, file)
}

/// A stable hash (FNV-1a, 64 bits) of what defines the server. Stable across runs and builds, which
/// `std`'s hasher does not promise.
pub fn definition_hash(server: &ServerConfig) -> u64 {
    let mut h = Fnv::default();
    match &server.kind {
        ServerKind::Local(local) => {
            h.field("local");
            for arg in &local.command {
                h.field(arg);
            }
            h.field(
                &local
                    .cwd
                    .as_ref()
                    .map(|c| c.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            for (key, value) in &local.env {
                h.field(key);
                h.field(value);
            }
        }
        ServerKind::Remote(remote) => {
            h.field("remote");
            h.field(&remote.url);
            h.field(&format!("{:?}", remote.transport));
            for (key, value) in &remote.headers {
                h.field(key);
                h.field(value);
            }
        }
    }
    h.0
}

struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// One field, length-prefixed so that ("ab", "c") and ("a", "bc") differ.
    fn field(&mut self, text: &str) {
        for byte in (text.len() as u64)
            .to_le_bytes()
            .iter()
            .chain(text.as_bytes())
        {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
fn listing(tool: &str) -> Listing {
    use serde_json::Map;
    let mut def = Map::new();
    def.insert("name".into(), Value::from(tool));
    Listing {
        capabilities: Map::from_iter([("tools".to_string(), json!({}))]),
        tools: vec![def],
        ..Listing::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn server(json: &str) -> ServerConfig {
        crate::config::parse_str(json, &|_| None)
            .unwrap()
            .servers
            .remove(0)
    }

    #[test]
    fn a_manifest_comes_back_as_written_and_only_for_the_same_definition() {
        let dir = std::env::temp_dir().join(format!("mcp-gateway-manifest-{}", std::process::id()));
        let a = server(
            r#"{"servers": [{"name": "a", "command": ["x", "--flag"], "env": {"K": "1"}}]}"#,
        );
        assert!(load(&dir, &a).is_none());
        save(&dir, &a, &listing("t")).unwrap();
        assert_eq!(load(&dir, &a), Some(listing("t")));
        let changed = server(
            r#"{"servers": [{"name": "a", "command": ["x", "--flag"], "env": {"K": "2"}}]}"#,
        );
        assert!(
            load(&dir, &changed).is_none(),
            "another env value is another server"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path(&dir, &a)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(path(&dir, &a)).unwrap();
        assert!(
            !text.contains("\"K\""),
            "no environment in the file: {text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_hash_is_stable_and_separates_fields() {
        let ab = server(r#"{"servers": [{"name": "a", "command": ["ab", "c"]}]}"#);
        let a_bc = server(r#"{"servers": [{"name": "a", "command": ["a", "bc"]}]}"#);
        assert_ne!(definition_hash(&ab), definition_hash(&a_bc));
        assert_eq!(definition_hash(&ab), definition_hash(&ab.clone()));
    }
}
