//! The gateway as an OAuth 2.1 resource server (`gateway.oauth`): JWT access tokens checked on
//! the reactor against the issuer's key set, which the `oauth-keys` thread fetches (`jwks`).
//!
//! The [`Guard`] lives on the reactor and owns the key set in force, the tokens already verified
//! and the pacing of refetches. It never blocks: key sets arrive on a channel it drains when it
//! looks at a token; it asks for a refetch with a `try_send`.
//!
//! Invariants:
//! - A token is accepted only if it verifies (`jwt::verify`) with the key set in force; a
//!   verified token is remembered by its SHA-256 until its `exp` (plus leeway), at most
//!   [`MAX_VERIFIED`] of them, and forgotten all at once when the key set changes (a key the
//!   issuer withdrew no longer vouches for anything).
//! - Before the first key set arrives, and while a refetch asked for an unknown `kid` is under
//!   way, the answer is "unavailable" (503 with `Retry-After`), never a wrong 401 that would send
//!   a client into a new login. A refetch for an unknown `kid` is asked at most once per
//!   [`REFETCH_EVERY`]: a flood of made-up key ids costs the issuer at most that.
//! - A key set that expired and could not be fetched again stays in force (with the error
//!   reported in `/health`): an issuer that is briefly down does not lock every client out.

pub mod jwks;
pub mod jwt;

use crate::config::OAuthConfig;
use jwks::{Fetcher, Update};
use jwt::{Expect, KeySet, TokenError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Most verified tokens remembered; past it, the expired ones go, then all of them.
pub const MAX_VERIFIED: usize = 4096;
/// An unknown `kid` asks for a refetch at most this often.
pub const REFETCH_EVERY: Duration = Duration::from_secs(10);
/// A refetch not answered in this long no longer holds tokens back.
const REFETCH_PATIENCE: Duration = Duration::from_secs(30);
/// What 503 answers tell clients to wait.
pub const RETRY_AFTER_SECS: u64 = 1;
/// The path of RFC 9728's protected-resource metadata (the resource's path follows it).
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// A token that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub scopes: Arc<[String]>,
    /// Whom the token is for (`jwt::Claims::subject`): sessions it opens are theirs alone.
    pub subject: Option<Arc<str>>,
}

impl Granted {
    /// The scopes of `required` this grant lacks.
    pub fn missing<'a>(&self, required: &'a [String]) -> Vec<&'a str> {
        required
            .iter()
            .filter(|s| !self.scopes.contains(s))
            .map(String::as_str)
            .collect()
    }
}

/// A token subject as sessions keep it: 128 bits of its SHA-256, base64url (a session id carries
/// it, and must not carry who the user is).
pub fn subject_tag(subject: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, subject.as_bytes());
    crate::base64::encode(&digest.as_ref()[..16], crate::base64::Alphabet::Url)
}

/// Why a request does not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No bearer token at all (401 without an error code, RFC 6750 §3.1).
    Missing,
    /// A token that is not valid (401 `invalid_token`).
    Invalid(String),
    /// The key set to check it with is not there yet (503).
    Unavailable(String),
}

#[derive(Debug, Clone)]
struct Verified {
    /// Seconds since the epoch, leeway included.
    until: u64,
    scopes: Arc<[String]>,
    subject: Option<Arc<str>>,
}

/// Counters for `/health`.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub accepted: u64,
    pub refused: u64,
    /// Answers served from the verified-token cache.
    pub cached_hits: u64,
    /// Key-set fetches that succeeded and that failed (every attempt of the thread).
    pub fetched: u64,
    pub failed: u64,
    /// Refetches asked for unknown key ids.
    pub refetches_asked: u64,
}

/// The reactor's side of `gateway.oauth`.
pub struct Guard {
    config: OAuthConfig,
    fetcher: Fetcher,
    keys: Option<Arc<KeySet>>,
    /// Where the key set in force came from.
    keys_from: Option<String>,
    last_error: Option<String>,
    /// When the last refetch was asked, and whether its answer is still to come.
    asked: Option<Instant>,
    pending: bool,
    verified: HashMap<[u8; 32], Verified>,
    pub stats: Stats,
}

impl Guard {
    /// Starts the `oauth-keys` thread (which fetches at once).
    pub fn start(config: &OAuthConfig) -> std::io::Result<Guard> {
        Ok(Guard::with_fetcher(config, jwks::start(config)?))
    }

    pub fn with_fetcher(config: &OAuthConfig, fetcher: Fetcher) -> Guard {
        Guard {
            config: config.clone(),
            fetcher,
            keys: None,
            keys_from: None,
            last_error: None,
            asked: None,
            pending: false,
            verified: HashMap::new(),
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// The scopes a token needs for `profile`'s endpoints.
    pub fn required_scopes(&self, profile: &str) -> Vec<String> {
        self.config.required_scopes(profile)
    }

    /// A reload's `gateway.oauth`: scopes and `resource` apply at once; another issuer or
    /// audience needs a restart (the reload keeps the running ones, see `reload`).
    pub fn update(&mut self, config: &OAuthConfig) {
        if self.config.same_issuer(config) {
            self.config = config.clone();
        }
    }

    /// Takes what the fetcher sent since the last look.
    pub fn drain(&mut self, now: Instant) {
        while let Ok(update) = self.fetcher.updates.try_recv() {
            self.pending = false;
            match update {
                Update::Keys { set, from } => {
                    self.stats.fetched += 1;
                    self.last_error = None;
                    if self.keys.as_deref() != Some(&set) {
                        self.verified.clear();
                        self.keys = Some(Arc::new(set));
                    }
                    self.keys_from = Some(from);
                }
                Update::Failed(why) => {
                    self.stats.failed += 1;
                    self.last_error = Some(why);
                }
            }
        }
        if self.pending && self.asked.is_some_and(|t| now - t >= REFETCH_PATIENCE) {
            self.pending = false;
        }
    }

    /// Checks the bearer token of a request (None: it sent none).
    pub fn check(&mut self, token: Option<&str>, now: Instant) -> Result<Granted, Refusal> {
        let result = self.check_at(token, now, unix_now());
        match &result {
            Ok(_) => self.stats.accepted += 1,
            Err(Refusal::Missing | Refusal::Invalid(_)) => self.stats.refused += 1,
            Err(Refusal::Unavailable(_)) => {}
        }
        result
    }

    fn check_at(
        &mut self,
        token: Option<&str>,
        now: Instant,
        unix: u64,
    ) -> Result<Granted, Refusal> {
        self.drain(now);
        let token = token.ok_or(Refusal::Missing)?;
        let hash: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        if let Some(known) = self.verified.get(&hash) {
            if known.until > unix {
                self.stats.cached_hits += 1;
                return Ok(Granted {
                    scopes: known.scopes.clone(),
                    subject: known.subject.clone(),
                });
            }
            self.verified.remove(&hash);
            return Err(Refusal::Invalid("the token has expired (exp)".into()));
        }
        let parsed = jwt::parse(token).map_err(|e| Refusal::Invalid(e.to_string()))?;
        let Some(keys) = self.keys.clone() else {
            return Err(Refusal::Unavailable(self.not_loaded()));
        };
        let expect = Expect {
            issuer: &self.config.issuer,
            audience: &self.config.audience,
        };
        match jwt::verify_parsed(&parsed, &keys, expect, unix) {
            Ok(claims) => {
                let granted = Granted {
                    scopes: claims.scopes.into(),
                    subject: claims.subject.map(Arc::from),
                };
                self.remember(hash, claims.exp, &granted, unix);
                Ok(granted)
            }
            Err(TokenError::UnknownKey(kid)) => {
                if self.pending {
                    return Err(Refusal::Unavailable(format!(
                        "the gateway is fetching the key set of {} again (the token's key id {kid:?} is new to it); retry in a moment",
                        self.config.issuer
                    )));
                }
                if self.asked.is_none_or(|t| now - t >= REFETCH_EVERY) {
                    self.asked = Some(now);
                    self.stats.refetches_asked += 1;
                    if self.fetcher.ask() {
                        self.pending = true;
                        return Err(Refusal::Unavailable(format!(
                            "the gateway is fetching the key set of {} again (the token's key id {kid:?} is new to it); retry in a moment",
                            self.config.issuer
                        )));
                    }
                }
                Err(Refusal::Invalid(TokenError::UnknownKey(kid).to_string()))
            }
            Err(e) => Err(Refusal::Invalid(e.to_string())),
        }
    }

    fn not_loaded(&self) -> String {
        match &self.last_error {
            Some(why) => format!(
                "the gateway cannot check tokens yet: it has not loaded the key set of {} ({why})",
                self.config.issuer
            ),
            None => format!(
                "the gateway cannot check tokens yet: it is loading the key set of {}; retry in a moment",
                self.config.issuer
            ),
        }
    }

    fn remember(&mut self, hash: [u8; 32], until: u64, granted: &Granted, unix: u64) {
        if self.verified.len() >= MAX_VERIFIED {
            self.verified.retain(|_, v| v.until > unix);
            if self.verified.len() >= MAX_VERIFIED {
                self.verified.clear();
            }
        }
        self.verified.insert(
            hash,
            Verified {
                until,
                scopes: granted.scopes.clone(),
                subject: granted.subject.clone(),
            },
        );
    }

    /// For `/health`.
    pub fn describe(&mut self, now: Instant) -> serde_json::Value {
        self.drain(now);
        serde_json::json!({
            "issuer": self.config.issuer,
            "audience": self.config.audience,
            "requiredScopes": self.config.required_scopes,
            "keySet": self.keys_from,
            "keys": self.keys.as_ref().map_or(0, |k| k.keys.len()),
            "lastError": self.last_error,
            "keySetFetches": self.stats.fetched,
            "keySetFailures": self.stats.failed,
            "refetchesAsked": self.stats.refetches_asked,
            "tokensAccepted": self.stats.accepted,
            "tokensRefused": self.stats.refused,
            "cacheHits": self.stats.cached_hits,
            "tokensCached": self.verified.len(),
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The value of a `WWW-Authenticate` challenge (RFC 6750 §3, RFC 9728 §5.1): `resource_metadata`
/// first, then `error`, `error_description` (quotes and backslashes replaced, as the header
/// grammar wants) and `scope`.
pub fn challenge(metadata: &str, error: Option<(&str, &str)>, scope: &[&str]) -> String {
    let mut value = format!("Bearer resource_metadata=\"{metadata}\"");
    if let Some((code, description)) = error {
        let clean: String = description
            .chars()
            .map(|c| match c {
                '"' => '\'',
                '\\' => '/',
                c if c.is_ascii() && !c.is_ascii_control() => c,
                _ => '?',
            })
            .collect();
        value.push_str(&format!(
            ", error=\"{code}\", error_description=\"{clean}\""
        ));
    }
    if !scope.is_empty() {
        value.push_str(&format!(", scope=\"{}\"", scope.join(" ")));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::jwt::tests::{good_claims, set_of, TestKey, AUD, ISS, NOW};
    use super::*;

    fn guard() -> (
        Guard,
        crossbeam_channel::Sender<Update>,
        crossbeam_channel::Receiver<()>,
    ) {
        let config = OAuthConfig {
            issuer: ISS.into(),
            audience: AUD.into(),
            jwks_uri: None,
            required_scopes: vec!["a".into()],
            resource: None,
            profile_scopes: Vec::new(),
        };
        let (fetcher, updates, asks) = Fetcher::fake();
        (Guard::with_fetcher(&config, fetcher), updates, asks)
    }

    fn keys(set: KeySet) -> Update {
        Update::Keys {
            set,
            from: "https://auth.example.com/jwks".into(),
        }
    }

    fn unavailable(r: Result<Granted, Refusal>) -> String {
        match r {
            Err(Refusal::Unavailable(why)) => why,
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    #[test]
    fn tokens_wait_for_the_first_key_set_then_are_remembered() {
        let (mut g, updates, _asks) = guard();
        let key = TestKey::new("k1");
        let token = key.token(&good_claims());
        let t0 = Instant::now();
        assert_eq!(g.check_at(None, t0, NOW), Err(Refusal::Missing));
        assert!(unavailable(g.check_at(Some(&token), t0, NOW)).contains("loading the key set"));
        updates
            .send(Update::Failed("connection refused".into()))
            .unwrap();
        assert!(unavailable(g.check_at(Some(&token), t0, NOW)).contains("connection refused"));
        updates.send(keys(set_of(&[&key]))).unwrap();
        let granted = g.check_at(Some(&token), t0, NOW).unwrap();
        assert_eq!(&*granted.scopes, ["a", "b"]);
        assert_eq!(granted.missing(&["a".into(), "c".into()]), ["c"]);
        assert_eq!(g.check_at(Some(&token), t0, NOW).unwrap(), granted);
        assert_eq!(g.stats.cached_hits, 1);
        // Remembered only until its expiry.
        assert!(matches!(
            g.check_at(Some(&token), t0, NOW + 3600),
            Err(Refusal::Invalid(why)) if why.contains("expired")
        ));
        // A garbage token is refused before any key is looked at.
        assert!(matches!(
            g.check_at(Some("nope"), t0, NOW),
            Err(Refusal::Invalid(why)) if why.contains("not a valid JWT")
        ));
    }

    #[test]
    fn an_unknown_kid_refetches_at_most_once_per_interval() {
        let (mut g, updates, asks) = guard();
        let old = TestKey::new("old");
        let new = TestKey::new("new");
        let t0 = Instant::now();
        updates.send(keys(set_of(&[&old]))).unwrap();
        let remembered = old.token(&good_claims());
        g.check_at(Some(&remembered), t0, NOW).unwrap();
        let rotated = new.token(&good_claims());
        assert!(unavailable(g.check_at(Some(&rotated), t0, NOW)).contains("fetching"));
        assert_eq!(asks.try_recv(), Ok(()));
        // Still pending: held back, nothing asked again.
        assert!(unavailable(g.check_at(Some(&rotated), t0, NOW)).contains("fetching"));
        assert!(asks.try_recv().is_err());
        updates.send(keys(set_of(&[&new]))).unwrap();
        assert!(g.check_at(Some(&rotated), t0, NOW).is_ok());
        // The key set changed: what the withdrawn key signed is checked afresh, and refused.
        assert!(matches!(
            g.check_at(Some(&remembered), t0, NOW),
            Err(Refusal::Invalid(why)) if why.contains("not in the issuer's key set")
        ));
        // Within the interval, made-up key ids are refused without asking the issuer.
        for i in 0..50 {
            let bogus = TestKey::new(&format!("bogus-{i}")).token(&good_claims());
            assert!(matches!(
                g.check_at(Some(&bogus), t0 + Duration::from_secs(1), NOW),
                Err(Refusal::Invalid(_))
            ));
        }
        assert!(asks.try_recv().is_err());
        assert_eq!(g.stats.refetches_asked, 1);
        // After it, one more ask.
        let later = t0 + REFETCH_EVERY;
        let bogus = TestKey::new("bogus").token(&good_claims());
        assert!(unavailable(g.check_at(Some(&bogus), later, NOW)).contains("fetching"));
        assert_eq!(asks.try_recv(), Ok(()));
        // An answer that never comes stops holding tokens back after a while.
        let much_later = later + REFETCH_PATIENCE;
        assert!(matches!(
            g.check_at(Some(&bogus), much_later, NOW),
            Err(Refusal::Unavailable(_))
        ));
    }

    #[test]
    fn challenges_have_the_rfc_shape() {
        assert_eq!(
            challenge(
                "http://h/.well-known/oauth-protected-resource/mcp",
                None,
                &[]
            ),
            "Bearer resource_metadata=\"http://h/.well-known/oauth-protected-resource/mcp\""
        );
        assert_eq!(
            challenge(
                "http://h/m",
                Some(("invalid_token", "key id \"x\" unknown\\é")),
                &["a", "b"]
            ),
            "Bearer resource_metadata=\"http://h/m\", error=\"invalid_token\", error_description=\"key id 'x' unknown/?\", scope=\"a b\""
        );
    }
}
