//! Restart-proof sessions: a Streamable HTTP session id that is a signed token of what the gateway
//! needs to serve the session, so a gateway that restarted — or another replica holding the same
//! key — serves it without the client seeing 404.
//!
//! The id is `g1.<payload>.<mac>`: the payload (base64url JSON) holds the negotiated protocol
//! version, the client's capabilities (what decides whether servers may ask it things), the
//! profile whose URL opened it (and whether its client searches tools itself), and when the
//! session was opened; the mac is HMAC-SHA256 over `g1.<payload>` with the key, cut to 128
//! bits. The key is 32 random bytes, hex, in `gateway.sessionKeyFile` (default
//! `<stateDir>/session-key`; 0600, made on first start; a key others may read is refused, like
//! `authTokenFile`). Replicas that share it share sessions.
//!
//! Invariants: a restored session is exactly as trusted as a new one (the token only carries what
//! the client itself said in `initialize`; `authToken` is still checked on every request); an id
//! whose mac does not verify, or older than `MAX_AGE`, is unknown (404) like any other; a session
//! that ended here (DELETE, expiry) is not restored from its id while this process runs. What a
//! client set after `initialize` (its log level, resource subscriptions) is not in the id: after a
//! restart it sets them again or goes without.
//!
//! The same key signs the `requestState` the gateway gives a 2026-07-28 client whose call it
//! suspended (`modern`): `tag` and `check`.

use ring::hmac;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A restored session must have been opened within this long.
pub const MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The key file's name in `stateDir`.
pub const KEY_FILE: &str = "session-key";
const PREFIX: &str = "g1.";
const MAC_BYTES: usize = 16;
/// Capabilities beyond this (as JSON) keep only the members the gateway acts on.
const MAX_CAPABILITIES_BYTES: usize = 1024;
const USED_CAPABILITIES: &[&str] = &["sampling", "elicitation", "roots"];

/// What a signed id says about its session.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub protocol_version: String,
    pub capabilities: Map<String, Value>,
    /// The profile whose URL opened the session (the only one it may be used through).
    pub profile: String,
    /// Its client searches tools itself (`toolExposure: auto` shows it every tool).
    pub client_searches: bool,
    /// Seconds since the Unix epoch when the session was opened.
    pub opened: u64,
    /// Whose it is (`Session::owner`: a tag, never the subject itself).
    pub owner: Option<String>,
}

/// Issues and checks signed session ids.
#[derive(Debug, Clone)]
pub struct Signer {
    key: hmac::Key,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Signer {
        Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The key in the file at `path`, made (32 random bytes, 0600) when there is none. Errors
    /// are sentences for the log.
    pub fn load_or_create(path: &Path) -> Result<Signer, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let metadata = std::fs::metadata(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                crate::config::check_private(path, &metadata)?;
                let secret = from_hex(text.trim()).filter(|s| s.len() >= 32).ok_or_else(|| {
                    format!(
                        "{} is not a session key (64 or more hex digits); delete it to have a new one made",
                        path.display()
                    )
                })?;
                Ok(Signer::new(&secret))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = [0u8; 32];
                super::session::random_bytes(&mut secret)
                    .map_err(|e| format!("cannot make a session key: {e}"))?;
                match write_private(path, &to_hex(&secret)) {
                    Ok(()) => {
                        log::info!("made a new session key in {}", path.display());
                        Ok(Signer::new(&secret))
                    }
                    // Another replica made it at the same moment: use theirs.
                    Err(_) if path.exists() => Signer::load_or_create(path),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// The mac of `text` (base64url, 128 bits): for other tokens the gateway issues and must know
    /// again (a suspended call's `requestState`).
    pub fn tag(&self, text: &str) -> String {
        let tag = hmac::sign(&self.key, text.as_bytes());
        base64url(&tag.as_ref()[..MAC_BYTES])
    }

    /// Whether `tag` is `text`'s mac (compared in constant time).
    pub fn check(&self, text: &str, tag: &str) -> bool {
        let Some(given) = from_base64url(tag).filter(|t| t.len() == MAC_BYTES) else {
            return false;
        };
        let ours = hmac::sign(&self.key, text.as_bytes());
        super::gate::constant_time_eq(&ours.as_ref()[..MAC_BYTES], &given)
    }

    /// A session id carrying `claims` (plus a random nonce: two sessions never share an id).
    pub fn issue(&self, claims: &Claims) -> std::io::Result<String> {
        let mut capabilities = Value::Object(claims.capabilities.clone());
        if capabilities.to_string().len() > MAX_CAPABILITIES_BYTES {
            let kept: Map<String, Value> = claims
                .capabilities
                .iter()
                .filter(|(k, _)| USED_CAPABILITIES.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            capabilities = Value::Object(kept);
        }
        let mut nonce = [0u8; 8];
        super::session::random_bytes(&mut nonce)?;
        let payload = json!({
            "v": claims.protocol_version,
            "c": capabilities,
            "p": claims.profile,
            "s": claims.client_searches,
            "t": claims.opened,
            "u": claims.owner,
            "n": to_hex(&nonce),
        });
        let signed = format!("{PREFIX}{}", base64url(payload.to_string().as_bytes()));
        Ok(format!("{signed}.{}", self.tag(&signed)))
    }

    /// The claims of a valid id of ours (verified, not too old), else None.
    pub fn verify(&self, id: &str, now: SystemTime) -> Option<Claims> {
        let (signed, mac) = id.strip_prefix(PREFIX).and(id.rsplit_once('.'))?;
        // Constant time: ring's verify on the full tag would not take a cut one.
        if !self.check(signed, mac) {
            return None;
        }
        let payload: Value =
            serde_json::from_slice(&from_base64url(&signed[PREFIX.len()..])?).ok()?;
        let opened = payload["t"].as_u64()?;
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        if now.saturating_sub(opened) > MAX_AGE.as_secs() {
            return None;
        }
        Some(Claims {
            protocol_version: payload["v"].as_str()?.to_owned(),
            capabilities: payload["c"].as_object()?.clone(),
            profile: payload["p"].as_str()?.to_owned(),
            client_searches: payload["s"].as_bool().unwrap_or(false),
            opened,
            owner: payload["u"].as_str().map(str::to_owned),
        })
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn base64url(bytes: &[u8]) -> String {
    crate::base64::encode(bytes, crate::base64::Alphabet::Url)
}

fn from_base64url(text: &str) -> Option<Vec<u8>> {
    crate::base64::decode(text, crate::base64::Alphabet::Url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            protocol_version: "2025-11-25".into(),
            capabilities: json!({"sampling": {}, "roots": {"listChanged": true}})
                .as_object()
                .unwrap()
                .clone(),
            profile: "default".into(),
            client_searches: false,
            opened: unix_now(),
            owner: Some("dGFn".into()),
        }
    }

    #[test]
    fn an_id_verifies_with_its_key_only_and_never_when_touched() {
        let signer = Signer::new(&[7; 32]);
        let id = signer.issue(&claims()).unwrap();
        assert!(
            id.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "visible ASCII: {id}"
        );
        assert_eq!(signer.verify(&id, SystemTime::now()), Some(claims()));
        assert_ne!(signer.issue(&claims()).unwrap(), id, "a nonce per session");
        assert_eq!(Signer::new(&[8; 32]).verify(&id, SystemTime::now()), None);
        let mut tampered = id.clone().into_bytes();
        tampered[5] ^= 1;
        assert_eq!(
            signer.verify(&String::from_utf8(tampered).unwrap(), SystemTime::now()),
            None
        );
        assert_eq!(
            signer.verify("3f2a9c", SystemTime::now()),
            None,
            "a random id"
        );
        let later = SystemTime::now() + MAX_AGE + Duration::from_secs(60);
        assert_eq!(signer.verify(&id, later), None, "too old");
    }

    #[test]
    fn the_key_is_made_once_private_and_refused_when_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mcp-gw-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join(KEY_FILE);
        let first = Signer::load_or_create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let id = first.issue(&claims()).unwrap();
        let again = Signer::load_or_create(&path).unwrap();
        assert!(
            again.verify(&id, SystemTime::now()).is_some(),
            "the same key"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Signer::load_or_create(&path)
            .unwrap_err()
            .contains("chmod 600"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
