//! What the gateway keeps of one remote server's OAuth: its client registration and its tokens, in
//! `<stateDir>/oauth/<server>.json` (mode 0600 in a 0700 directory, written whole: a temp file,
//! then rename). `mcp-gateway login` writes it, the running gateway reads it (and writes it again
//! when it refreshes), `mcp-gateway logout` removes it.
//!
//! Secrets (tokens, a registered client secret) are never shown: this type has no `Debug` that
//! prints them, and nothing logs its fields.

use crate::downstream::remote::url::Url;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    /// The server URL it is for: a file for another URL (the config changed) is not used.
    pub server_url: String,
    /// The resource identifier tokens are asked for (RFC 8707), from the server's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Client>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    /// Scopes a server asked for beyond those of the tokens (`insufficient_scope`): the next
    /// login asks for them too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up_scope: Option<String>,
}

/// The client the gateway is to the authorization server.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// `client_secret_basic`, `client_secret_post` or `none`.
    pub auth_method: String,
    /// The issuer it is registered with: another one means registering again.
    pub issuer: String,
    /// How it came to be: `config`, `metadata-document` or `registered` (RFC 7591).
    pub origin: String,
    /// The redirect URI it was registered with (dynamic registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    pub access_token: String,
    /// Unix seconds when it was issued (what its lifetime counts from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<u64>,
    /// Unix seconds; None: the server said nothing about expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// `<stateDir>/oauth/<server>.json`.
pub fn path(state_dir: &Path, server: &str) -> PathBuf {
    state_dir.join("oauth").join(format!("{server}.json"))
}

impl Saved {
    /// Nothing saved yet, for `server`.
    pub fn for_server(server: &Url) -> Saved {
        Saved {
            server_url: server.to_string(),
            ..Saved::default()
        }
    }
}

/// The saved state; None when there is none (or it is for another URL: the config changed).
/// URLs compare in their normal form (`Url`'s), however the config spells them. Err: unreadable.
pub fn load(file: &Path, server: &Url) -> Result<Option<Saved>, String> {
    let server_url = server.to_string();
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    let saved: Saved = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not a saved login ({e})", file.display()))?;
    Ok((saved.server_url == server_url).then_some(saved))
}

/// Writes `saved` whole, 0600. A client secret from the config stays in the config: it is left
/// out (the gateway takes it from the config each time).
pub fn save(file: &Path, saved: &Saved) -> Result<(), String> {
    let mut saved = saved.clone();
    if let Some(client) = saved.client.as_mut().filter(|c| c.origin == "config") {
        client.client_secret = None;
    }
    let bytes = serde_json::to_vec_pretty(&saved).map_err(|e| e.to_string())?;
    crate::registry::manifest::write_private(file, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", file.display()))
}

/// When the file last changed (None: there is none), to notice a login made meanwhile.
pub fn stamp(file: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(file).and_then(|m| m.modified()).ok()
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_round_trips_privately_and_only_for_its_url() {
        let dir =
            std::env::temp_dir().join(format!("mcp-gateway-oauth-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = path(&dir, "linear");
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(load(&file, &url("https://mcp.linear.app/mcp"))
            .unwrap()
            .is_none());
        let saved = Saved {
            server_url: "https://mcp.linear.app/mcp".into(),
            tokens: Some(Tokens {
                access_token: "a".into(),
                issued_at: None,
                expires_at: Some(5),
                refresh_token: None,
                scope: None,
            }),
            ..Saved::default()
        };
        save(&file, &saved).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(load(&file, &url("https://mcp.linear.app/mcp")).unwrap() == Some(saved.clone()));
        assert!(
            load(&file, &url("https://MCP.linear.app:443/mcp")).unwrap() == Some(saved),
            "the same URL, spelled otherwise"
        );
        assert!(load(&file, &url("https://elsewhere.example/mcp"))
            .unwrap()
            .is_none());
        // A client secret from the config is not saved.
        let with_secret = Saved {
            server_url: "https://mcp.linear.app/mcp".into(),
            client: Some(Client {
                client_id: "gw".into(),
                client_secret: Some("s3cret".into()),
                auth_method: "client_secret_basic".into(),
                issuer: "https://as.example".into(),
                origin: "config".into(),
                redirect_uri: None,
            }),
            ..Saved::default()
        };
        save(&file, &with_secret).unwrap();
        assert!(!std::fs::read_to_string(&file).unwrap().contains("s3cret"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
