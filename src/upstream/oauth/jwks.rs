//! The `oauth-keys` thread: finds the issuer's key set (RFC 8414 or OpenID discovery, unless
//! `jwksUri` is set), fetches it, and hands every result to the reactor through a channel, again
//! when it expires and whenever the reactor asks (a token named a key it does not know).
//!
//! The reactor never waits for it: it takes what arrived (`try_recv`) when it checks a token, and
//! asks for a fetch with a `try_send` on a channel of one, so asks made while one is pending fold
//! into it. Rate-limiting those asks is the reactor's (`Guard`); this thread only bounds its own
//! pace: a key set is kept for its `Cache-Control: max-age` within [`MIN_FRESH`]..[`MAX_FRESH`]
//! ([`DEFAULT_FRESH`] without one), and failures are retried after 1 s doubling to 60 s.
//!
//! HTTP is the remote servers' blocking client (`downstream::remote::conn`), every exchange bounded
//! by [`FETCH_TIMEOUT`]; the thread blocks only itself.

use super::jwt::KeySet;
use crate::config::OAuthConfig;
use crate::downstream::remote::url::Url;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Kept this long when the key set's response says nothing.
pub const DEFAULT_FRESH: Duration = Duration::from_secs(300);
/// Bounds on a `max-age`: not refetched more often than this by expiry…
pub const MIN_FRESH: Duration = Duration::from_secs(30);
/// …and never kept longer than this without looking again.
pub const MAX_FRESH: Duration = Duration::from_secs(24 * 3600);
/// Each discovery or key-set exchange, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);

/// What the thread hands the reactor after each attempt.
#[derive(Debug)]
pub enum Update {
    Keys { set: KeySet, from: String },
    Failed(String),
}

/// The reactor's ends of the thread's channels.
pub struct Fetcher {
    pub updates: Receiver<Update>,
    asks: Sender<()>,
}

impl Fetcher {
    /// Asks for a fetch now; false when one is already asked for (or the thread is gone).
    pub fn ask(&self) -> bool {
        match self.asks.try_send(()) {
            Ok(()) => true,
            Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => false,
        }
    }

    /// A fetcher fed by hand (tests of the guard).
    #[cfg(test)]
    pub fn fake() -> (Fetcher, Sender<Update>, Receiver<()>) {
        let (updates_tx, updates) = crossbeam_channel::unbounded();
        let (asks, asks_rx) = crossbeam_channel::bounded(1);
        (Fetcher { updates, asks }, updates_tx, asks_rx)
    }
}

/// Starts the thread; it ends when the `Fetcher` is dropped.
pub fn start(config: &OAuthConfig) -> std::io::Result<Fetcher> {
    let (updates_tx, updates) = crossbeam_channel::unbounded();
    let (asks, asks_rx) = crossbeam_channel::bounded(1);
    let config = config.clone();
    std::thread::Builder::new()
        .name("oauth-keys".into())
        .spawn(move || {
            crate::panics::restart_on_panic("oauth-keys", || run(&config, &updates_tx, &asks_rx))
        })?;
    Ok(Fetcher { updates, asks })
}

fn run(config: &OAuthConfig, updates: &Sender<Update>, asks: &Receiver<()>) {
    let mut discovered: Option<String> = None;
    let mut retry = FIRST_RETRY;
    loop {
        let uri = match (&config.jwks_uri, &discovered) {
            (Some(uri), _) | (None, Some(uri)) => Ok(uri.clone()),
            (None, None) => discover(&config.issuer),
        };
        let attempt = uri.and_then(|uri| {
            let (body, fresh) = fetch(&uri)?;
            let set = KeySet::parse(&body).map_err(|e| format!("{uri}: {e}"))?;
            Ok((uri, set, fresh))
        });
        let wait = match attempt {
            Ok((uri, set, fresh)) => {
                log::debug!(
                    "oauth: {} keys from {uri} ({} skipped), kept {} s",
                    set.keys.len(),
                    set.skipped,
                    fresh.as_secs()
                );
                if config.jwks_uri.is_none() {
                    discovered = Some(uri.clone());
                }
                retry = FIRST_RETRY;
                if updates.send(Update::Keys { set, from: uri }).is_err() {
                    return;
                }
                fresh
            }
            Err(why) => {
                log::warn!("oauth: cannot load the key set of {}: {why}", config.issuer);
                // The metadata may have moved the key set: look again next time.
                discovered = None;
                if updates.send(Update::Failed(why)).is_err() {
                    return;
                }
                let wait = retry;
                retry = (retry * 2).min(LAST_RETRY);
                wait
            }
        };
        match asks.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The `jwks_uri` of the issuer's metadata (`oauth::discovery::server_document`, which checks that
/// it names the configured issuer, or a document elsewhere could hand out its own keys).
fn discover(issuer: &str) -> Result<String, String> {
    let deadline = Instant::now() + FETCH_TIMEOUT;
    let (url, doc) = crate::oauth::discovery::server_document(issuer, deadline)
        .map_err(|e| format!("{e} (gateway.oauth.issuer must be identical to it)"))?;
    let url = url.redacted();
    let Some(jwks) = doc.get("jwks_uri").and_then(Value::as_str) else {
        return Err(format!("{url} has no jwks_uri: set gateway.oauth.jwksUri"));
    };
    match Url::parse(jwks) {
        Err(e) => Err(format!("{url}: jwks_uri: {e}")),
        // Keys fetched in the clear could be anyone's: the same rule as for `jwksUri`.
        Ok(parsed) if crate::oauth::http::allowed(&parsed).is_err() => Err(format!(
            "{url}: jwks_uri {jwks} is plain http to another machine; it must be https"
        )),
        Ok(_) => Ok(jwks.to_string()),
    }
}

/// The body of a 200 answer to `GET uri` (through `oauth::http`, whose rules it follows), and
/// how long it may be kept.
fn fetch(uri: &str) -> Result<(Vec<u8>, Duration), String> {
    let url = Url::parse(uri)?;
    let response = crate::oauth::http::get(&url, Instant::now() + FETCH_TIMEOUT)?;
    if response.status() != 200 {
        return Err(format!(
            "{} answered HTTP {}",
            url.redacted(),
            response.status()
        ));
    }
    let fresh = freshness(response.header("cache-control"));
    Ok((response.body, fresh))
}

/// How long a response may be kept, from its `Cache-Control` (bounded).
pub fn freshness(cache_control: Option<&str>) -> Duration {
    let Some(value) = cache_control else {
        return DEFAULT_FRESH;
    };
    let mut fresh = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_FRESH;
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            fresh = secs.trim_matches('"').parse::<u64>().ok();
        }
    }
    fresh
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_FRESH)
        .clamp(MIN_FRESH, MAX_FRESH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_is_bounded() {
        assert_eq!(freshness(None), DEFAULT_FRESH);
        assert_eq!(
            freshness(Some("public, max-age=600")),
            Duration::from_secs(600)
        );
        assert_eq!(freshness(Some("max-age=1")), MIN_FRESH);
        assert_eq!(freshness(Some("max-age=99999999")), MAX_FRESH);
        assert_eq!(freshness(Some("no-store")), MIN_FRESH);
        assert_eq!(freshness(Some("max-age=x")), DEFAULT_FRESH);
    }
}
