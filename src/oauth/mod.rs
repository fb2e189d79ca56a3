//! OAuth 2.1 for remote servers that want tokens (`"auth"` of a remote server), as the MCP
//! authorization spec describes the client's part.
//!
//! - `discovery`: the `401` challenge → protected-resource metadata (RFC 9728) → the authorization
//!   server's metadata (RFC 8414 / OpenID discovery), each checked against what was asked.
//! - `grant`: registration (RFC 7591), the token endpoint (authorization code with PKCE, refresh,
//!   client credentials) with `resource` (RFC 8707).
//! - `store`: the registration and tokens of each server in `<stateDir>/oauth/<server>.json`, 0600.
//! - `login`: `mcp-gateway login` / `logout`, the one interactive step (`type: "oauth"`).
//! - `http`: the plain HTTP those take, on the gateway's own client.
//!
//! [`Auth`] is one server's token source, shared by its remote handles: what `Authorization`
//! header each request carries (refreshed shortly before expiry, or on a `401`), and whether the
//! server needs a login. It never blocks the reactor: only workers, handshakes and stream threads
//! ask it for a header, and a refresh runs on whichever of them needs it first (the others wait
//! for the same answer on its lock).
//!
//! Invariants: a token is only ever sent to the server it was issued for (its handles, for its own
//! URL), never logged, never in `/health`, never to a client; a client's own token never reaches a
//! server (handles send only what this gives them and the configured headers).

pub mod discovery;
pub mod grant;
pub mod http;
pub mod login;
pub mod store;

use crate::config::{AuthGrant, RemoteAuth};
use crate::downstream::remote::url::Url;
use discovery::Challenge;
use grant::{Grant, GrantError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};
use store::{Client, Saved, Tokens};

/// A token this close to its expiry is refreshed before it is used (or half its lifetime, for
/// short-lived ones).
const REFRESH_AHEAD: u64 = 60;
/// Bound on the token exchanges one request waits for under the `Auth` lock (others asking for
/// the same server's header wait on it meanwhile): a call's own deadline may be minutes.
const EXCHANGE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often requests look whether the saved login changed on disk (a login, a logout).
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What a request refused with 401 or 403 should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// There is a new token (or scope): send it again, once.
    Retry,
    /// A login is needed first; the message says so (for the call and `/health`).
    NeedsLogin(String),
    /// Not a matter of logging in (the token endpoint is unreachable, a 403 with no scope named):
    /// the message says why.
    Refused(String),
}

/// One remote server's token source (see the module docs).
pub struct Auth {
    name: String,
    url: Url,
    settings: RemoteAuth,
    /// `<stateDir>/oauth/<name>.json`; None without a state directory (tokens live in memory
    /// only: client credentials still work, a login cannot reach the gateway).
    file: Option<PathBuf>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    saved: Saved,
    /// The file's modification time when last read.
    stamp: Option<SystemTime>,
    /// When a request last looked at it (`authorization` looks at most once a second).
    looked: Option<Instant>,
    /// Bumped whenever the tokens in hand change: a request refused with an older one is simply
    /// sent again (another request got the new one already).
    generation: u64,
    /// Why no request can be authorized until someone logs in.
    needs_login: Option<String>,
}

impl Auth {
    pub fn new(name: &str, url: &Url, settings: &RemoteAuth, state_dir: Option<&Path>) -> Auth {
        let auth = Auth {
            name: name.to_string(),
            url: url.clone(),
            settings: settings.clone(),
            file: state_dir.map(|dir| store::path(dir, name)),
            state: Mutex::new(State {
                saved: Saved::for_server(url),
                ..State::default()
            }),
        };
        auth.reload_if_changed();
        {
            let mut state = auth.lock();
            if settings.grant == AuthGrant::AuthorizationCode && state.saved.tokens.is_none() {
                state.needs_login = Some(auth.login_message());
            }
        }
        auth
    }

    /// The message for calls and `/health` while nobody has logged in.
    pub fn login_message(&self) -> String {
        format!(
            "server \"{}\" needs login: run mcp-gateway login {}",
            self.name, self.name
        )
    }

    /// Why the server needs a login now, if it does.
    pub fn needs_login(&self) -> Option<String> {
        self.lock().needs_login.clone()
    }

    /// Reads the saved login again if its file changed (a login or logout meanwhile); true when
    /// that brought a token to try.
    pub fn reload_if_changed(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        let stamp = store::stamp(file);
        let mut state = self.lock();
        if stamp == state.stamp {
            return false;
        }
        state.stamp = stamp;
        let loaded = match store::load(file, &self.url) {
            Ok(loaded) => loaded,
            Err(e) => {
                log::warn!("server {}: {e}; its login is not used", self.name);
                None
            }
        };
        let fresh = loaded.as_ref().is_some_and(|s| s.tokens.is_some());
        state.saved = loaded.unwrap_or_else(|| Saved::for_server(&self.url));
        state.generation += 1;
        if fresh {
            state.needs_login = None;
        } else if self.settings.grant == AuthGrant::AuthorizationCode {
            state.needs_login = Some(self.login_message());
        }
        fresh
    }

    /// The `Authorization` value for a request now, refreshing a token about to expire; None
    /// when there is none (the request goes without, and its `401` says what to do).
    pub fn authorization(&self, deadline: Instant) -> Option<String> {
        // A login or logout meanwhile: looked for at most once a second, not per request.
        let due = {
            let mut state = self.lock();
            let due = state.looked.is_none_or(|at| at.elapsed() >= LOOK_EVERY);
            if due {
                state.looked = Some(Instant::now());
            }
            due
        };
        if due {
            self.reload_if_changed();
        }
        let mut state = self.lock();
        // Only with a way to renew it: a token without one is used until it expires.
        let renewable = self.settings.grant == AuthGrant::ClientCredentials
            || state
                .saved
                .tokens
                .as_ref()
                .is_some_and(|t| t.refresh_token.is_some());
        let expiring = renewable
            && state.saved.tokens.as_ref().is_some_and(|t| {
                let Some(expires) = t.expires_at else {
                    return false;
                };
                let lifetime = t
                    .issued_at
                    .map_or(u64::MAX, |at| expires.saturating_sub(at));
                expires <= store::now() + REFRESH_AHEAD.min(lifetime / 2)
            });
        if expiring {
            match self.renew(&mut state, None, deadline) {
                Ok(()) => {}
                Err(Verdict::NeedsLogin(_)) => return None,
                // Unreachable for now: the token goes while it is still valid.
                Err(_) => {}
            }
        }
        let tokens = state.saved.tokens.as_ref()?;
        if tokens.expires_at.is_some_and(|at| at <= store::now()) {
            return None;
        }
        Some(format!("Bearer {}", tokens.access_token))
    }

    /// Which tokens requests get now (see `refused`).
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The server refused a request with `status` (401 or 403) and this `WWW-Authenticate`; `sent`
    /// is the `generation` the request was built under.
    pub fn refused(
        &self,
        status: u16,
        challenge: Option<&str>,
        sent: u64,
        deadline: Instant,
    ) -> Verdict {
        let challenge = challenge.and_then(Challenge::parse).unwrap_or_default();
        let deadline = deadline.min(Instant::now() + EXCHANGE_LIMIT);
        // A login saved since the last look: try that first (what is in hand may be older).
        if self.reload_if_changed() {
            return Verdict::Retry;
        }
        let mut state = self.lock();
        if status == 403 {
            if !challenge.insufficient_scope() {
                return Verdict::Refused(format!(
                    "server \"{}\" refused the gateway's token (HTTP 403{})",
                    self.name,
                    describe(&challenge)
                ));
            }
            let wanted = union(
                state.saved.tokens.as_ref().and_then(|t| t.scope.as_deref()),
                challenge.scope.as_deref(),
            );
            return match self.settings.grant {
                // Machine to machine: ask for the wider scope at once (the call is sent again
                // once; a second 403 is its answer, no loop).
                AuthGrant::ClientCredentials => {
                    match self.renew(&mut state, Some((&challenge, Some(&wanted))), deadline) {
                        Ok(()) => Verdict::Retry,
                        Err(verdict) => verdict,
                    }
                }
                // A person must agree to more: the next login asks for it.
                AuthGrant::AuthorizationCode => {
                    state.saved.step_up_scope = Some(wanted.clone());
                    self.save(&mut state);
                    Verdict::Refused(format!(
                        "server \"{}\" needs a login with more scope ({wanted}) for this: run \
                         mcp-gateway login {}",
                        self.name, self.name
                    ))
                }
            };
        }
        // 401: the token is missing, expired or revoked; unless another request replaced it
        // meanwhile.
        if state.generation != sent && state.saved.tokens.is_some() {
            return Verdict::Retry;
        }
        match self.renew(&mut state, Some((&challenge, None)), deadline) {
            Ok(()) => Verdict::Retry,
            Err(verdict) => verdict,
        }
    }

    /// The new token was refused as well: it is dropped, and a login is needed (client
    /// credentials: a new one is asked for next time).
    pub fn refused_again(&self) -> Verdict {
        let mut state = self.lock();
        state.saved.tokens = None;
        state.generation += 1;
        self.save(&mut state);
        match self.settings.grant {
            AuthGrant::AuthorizationCode => {
                let message = self.login_message();
                state.needs_login = Some(message.clone());
                Verdict::NeedsLogin(message)
            }
            AuthGrant::ClientCredentials => Verdict::Refused(format!(
                "server \"{}\" refused a token just issued for it by its authorization server",
                self.name
            )),
        }
    }

    /// New tokens: a refresh (or, for client credentials, a new grant, after discovery when the
    /// endpoints are not known yet or `challenge` says to look again).
    fn renew(
        &self,
        state: &mut State,
        challenge: Option<(&Challenge, Option<&str>)>,
        deadline: Instant,
    ) -> Result<(), Verdict> {
        let refresh = state
            .saved
            .tokens
            .as_ref()
            .and_then(|t| t.refresh_token.clone());
        let tokens = match (self.settings.grant, refresh) {
            (AuthGrant::AuthorizationCode, None) => {
                state.saved.tokens = None;
                let message = self.login_message();
                state.needs_login = Some(message.clone());
                self.save(state);
                log::warn!("{message}");
                return Err(Verdict::NeedsLogin(message));
            }
            (AuthGrant::AuthorizationCode, Some(refresh_token)) => {
                let (endpoint, client, resource) = match self.known_endpoints(&state.saved) {
                    Some(known) => known,
                    None => return Err(self.login_needed(state, "its saved login is incomplete")),
                };
                match grant::tokens(
                    &endpoint,
                    &client,
                    Grant::Refresh {
                        refresh_token: &refresh_token,
                    },
                    &resource,
                    deadline,
                ) {
                    Ok(tokens) => tokens,
                    Err(GrantError::Refused(why)) => {
                        return Err(self.login_needed(state, &format!("refreshing failed: {why}")))
                    }
                    Err(GrantError::Failed(why)) => {
                        return Err(Verdict::Refused(format!(
                            "server \"{}\": refreshing its token failed: {why}",
                            self.name
                        )))
                    }
                }
            }
            (AuthGrant::ClientCredentials, _) => {
                let rediscover = challenge.is_some_and(|(c, _)| c.resource_metadata.is_some());
                if rediscover || self.known_endpoints(&state.saved).is_none() {
                    self.discover(state, challenge.map(|(c, _)| c), deadline)
                        .map_err(Verdict::Refused)?;
                }
                let (endpoint, client, resource) =
                    self.known_endpoints(&state.saved).expect("discovered");
                let scope = challenge
                    .and_then(|(_, wanted)| wanted.map(str::to_string))
                    .or_else(|| self.requested_scope(challenge.and_then(|(c, _)| c.scope.clone())));
                grant::tokens(
                    &endpoint,
                    &client,
                    Grant::ClientCredentials {
                        scope: scope.as_deref(),
                    },
                    &resource,
                    deadline,
                )
                .map_err(|e| {
                    Verdict::Refused(format!(
                        "server \"{}\": its authorization server gave no token: {e}",
                        self.name
                    ))
                })?
            }
        };
        state.saved.tokens = Some(tokens);
        state.generation += 1;
        state.needs_login = None;
        self.save(state);
        Ok(())
    }

    /// Client credentials: where the tokens come from (the challenge or the well-known URIs, then
    /// the authorization server's metadata), and the configured client.
    fn discover(
        &self,
        state: &mut State,
        challenge: Option<&Challenge>,
        deadline: Instant,
    ) -> Result<(), String> {
        let resource = discovery::resource_metadata(&self.url, challenge, deadline)
            .map_err(|e| format!("server \"{}\": {e}", self.name))?;
        let issuer = resource.authorization_servers[0].clone();
        let metadata = discovery::server_metadata(&issuer, deadline)?;
        let client_id = self.settings.client_id.clone().unwrap_or_default();
        login::bound_to_issuer(&state.saved, &client_id, &metadata.issuer)
            .map_err(|e| format!("server \"{}\": {e}", self.name))?;
        let secret = self.settings.client_secret.clone();
        state.saved.client = Some(Client {
            auth_method: grant::auth_method(&metadata, secret.is_some()),
            client_id,
            client_secret: secret,
            issuer: metadata.issuer.clone(),
            origin: "config".into(),
            redirect_uri: None,
        });
        state.saved.resource = Some(resource.resource);
        state.saved.token_endpoint = Some(metadata.token_endpoint);
        Ok(())
    }

    /// The scopes to ask for: the config's, else the challenge's.
    fn requested_scope(&self, challenged: Option<String>) -> Option<String> {
        if !self.settings.scopes.is_empty() {
            return Some(self.settings.scopes.join(" "));
        }
        challenged
    }

    /// Token endpoint, client and resource of a saved login, when all are there. A client from
    /// the config is the config's: its id and secret as they are now (a secret is never saved,
    /// and a rotated one is used at once).
    fn known_endpoints(&self, saved: &Saved) -> Option<(String, Client, String)> {
        let mut client = saved.client.clone()?;
        if let (true, Some(id)) = (client.origin == "config", &self.settings.client_id) {
            client.client_id = id.clone();
            client.client_secret = self.settings.client_secret.clone();
        }
        Some((
            saved.token_endpoint.clone()?,
            client,
            saved
                .resource
                .clone()
                .unwrap_or_else(|| saved.server_url.clone()),
        ))
    }

    fn login_needed(&self, state: &mut State, why: &str) -> Verdict {
        state.saved.tokens = None;
        state.generation += 1;
        let message = self.login_message();
        log::warn!("server {}: {why}; {message}", self.name);
        state.needs_login = Some(message.clone());
        self.save(state);
        Verdict::NeedsLogin(message)
    }

    /// Writes what is in hand, unless the file changed on disk since it was read (a login
    /// meanwhile): that is newer, and the next look takes it.
    fn save(&self, state: &mut State) {
        let Some(file) = &self.file else {
            return;
        };
        if store::stamp(file) != state.stamp {
            log::debug!(
                "server {}: its saved login changed meanwhile; not overwriting it",
                self.name
            );
            return;
        }
        match store::save(file, &state.saved) {
            Ok(()) => state.stamp = store::stamp(file),
            Err(e) => log::warn!("server {}: {e}", self.name),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The scopes of `had` and `more`, each once, in order.
fn union(had: Option<&str>, more: Option<&str>) -> String {
    let mut scopes: Vec<&str> = Vec::new();
    for scope in had
        .unwrap_or("")
        .split_whitespace()
        .chain(more.unwrap_or("").split_whitespace())
    {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes.join(" ")
}

/// `: error (description)` of a challenge, for messages.
fn describe(challenge: &Challenge) -> String {
    match (&challenge.error, &challenge.error_description) {
        (Some(e), Some(d)) => format!(": {e} ({d})"),
        (Some(e), None) => format!(": {e}"),
        _ => String::new(),
    }
}

/// The tokens of a saved login, for `mcp-gateway status` (never their values).
pub fn describe_tokens(tokens: &Tokens) -> String {
    let expiry = match tokens.expires_at {
        Some(at) if at > store::now() => format!("expires in {} s", at - store::now()),
        Some(_) => "expired".into(),
        None => "no expiry given".into(),
    };
    let refresh = if tokens.refresh_token.is_some() {
        ", refreshable"
    } else {
        ""
    };
    format!("{expiry}{refresh}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn scopes_are_joined_once_each() {
        assert_eq!(
            union(Some("mcp read"), Some("read admin")),
            "mcp read admin"
        );
        assert_eq!(union(None, Some("admin")), "admin");
        assert_eq!(union(None, None), "");
    }

    #[test]
    fn without_a_login_an_oauth_server_needs_one() {
        let dir = std::env::temp_dir().join(format!("mcp-gateway-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let settings = RemoteAuth {
            grant: AuthGrant::AuthorizationCode,
            client_id: None,
            client_secret: None,
            client_metadata_url: None,
            scopes: vec![],
            redirect_port: 0,
        };
        let url = Url::parse("http://127.0.0.1:9/mcp").unwrap();
        let auth = Auth::new("linear", &url, &settings, Some(&dir));
        assert_eq!(
            auth.needs_login().as_deref(),
            Some("server \"linear\" needs login: run mcp-gateway login linear")
        );
        assert_eq!(auth.authorization(Instant::now()), None);
        let verdict = auth.refused(401, Some("Bearer scope=\"mcp\""), 0, Instant::now());
        assert!(matches!(verdict, Verdict::NeedsLogin(_)), "{verdict:?}");
        // A login written by `mcp-gateway login` is picked up.
        let saved = Saved {
            server_url: url.to_string(),
            tokens: Some(Tokens {
                access_token: "t0k3n".into(),
                issued_at: None,
                expires_at: Some(store::now() + 3600),
                refresh_token: None,
                scope: Some("mcp".into()),
            }),
            ..Saved::default()
        };
        std::thread::sleep(Duration::from_millis(20));
        store::save(&store::path(&dir, "linear"), &saved).unwrap();
        assert!(auth.reload_if_changed());
        assert_eq!(auth.needs_login(), None);
        assert_eq!(
            auth.authorization(Instant::now()).as_deref(),
            Some("Bearer t0k3n")
        );
        // A 403 for more scope records it for the next login, and says so.
        let verdict = auth.refused(
            403,
            Some("Bearer error=\"insufficient_scope\", scope=\"mcp admin\""),
            auth.generation(),
            Instant::now(),
        );
        let Verdict::Refused(message) = verdict else {
            panic!("{verdict:?}");
        };
        assert!(message.contains("more scope (mcp admin)"), "{message}");
        let file = store::load(&store::path(&dir, "linear"), &url)
            .unwrap()
            .unwrap();
        assert_eq!(file.step_up_scope.as_deref(), Some("mcp admin"));
        // A token with no way to renew it is used to its end, not dropped early.
        let short = Saved {
            server_url: url.to_string(),
            tokens: Some(Tokens {
                access_token: "last".into(),
                issued_at: Some(store::now() - 3600),
                expires_at: Some(store::now() + 10),
                refresh_token: None,
                scope: None,
            }),
            ..Saved::default()
        };
        std::thread::sleep(Duration::from_millis(20));
        store::save(&store::path(&dir, "linear"), &short).unwrap();
        // (Requests look at the file once a second; this looks now.)
        assert!(auth.reload_if_changed());
        assert_eq!(
            auth.authorization(Instant::now()).as_deref(),
            Some("Bearer last")
        );
        assert_eq!(auth.needs_login(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
