//! `mcp-gateway login SERVER` and `mcp-gateway logout SERVER`: the one step of OAuth a person
//! takes, headless.
//!
//! Login: the server's `401` challenge and metadata say which authorization server to use
//! (`discovery`); the gateway's client there is the configured one (`clientId`), else the user's
//! Client ID Metadata Document (`clientMetadataUrl`, when the server accepts those), else one it
//! registers (RFC 7591, again when the authorization server changed); then the authorization code
//! flow with PKCE S256, `state`, `resource`, and `iss` checked on the redirect (RFC 9207). The
//! authorization URL is printed (and opened where a browser exists); the redirect comes to a
//! loopback port this command listens on (`redirectPort`, else any free one). The tokens go to
//! the state directory of the config, where the running gateway picks them up within a second.

use super::discovery::{self, Challenge};
use super::grant::{self, Grant, Pkce};
use super::http;
use super::store::{self, Client, Saved};
use crate::config::{AuthGrant, Config, RemoteAuth, RemoteServer, ServerKind};
use crate::downstream::remote::url::Url;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Bound on each discovery and token exchange.
const STEP_LIMIT: Duration = Duration::from_secs(30);

pub struct Options {
    /// Open the authorization URL in a browser where one exists.
    pub browser: bool,
    /// How long to wait for the redirect.
    pub timeout: Duration,
}

/// The server `name` of `config`, which must be a remote with `"auth": {"type": "oauth"}`.
fn oauth_server<'c>(
    config: &'c Config,
    name: &str,
) -> Result<(&'c RemoteServer, &'c RemoteAuth), String> {
    let Some(server) = config.servers.iter().find(|s| s.name == name) else {
        let with_auth: Vec<&str> = config
            .servers
            .iter()
            .filter(|s| matches!(&s.kind, ServerKind::Remote(r) if r.auth.is_some()))
            .map(|s| s.name.as_str())
            .collect();
        let known = if with_auth.is_empty() {
            "no server of this config has \"auth\"".to_string()
        } else {
            format!("servers with \"auth\": {}", with_auth.join(", "))
        };
        return Err(format!("no server named {name:?} ({known})"));
    };
    let ServerKind::Remote(remote) = &server.kind else {
        return Err(format!(
            "server {name:?} is a local process: there is nothing to log in to"
        ));
    };
    let Some(auth) = &remote.auth else {
        return Err(format!(
            "server {name:?} has no \"auth\" in the config; add \"auth\": {{\"type\": \"oauth\"}} to it first"
        ));
    };
    if auth.grant == AuthGrant::ClientCredentials {
        return Err(format!(
            "server {name:?} uses \"client_credentials\": the gateway obtains its tokens itself, \
             no login needed"
        ));
    }
    Ok((remote, auth))
}

fn state_file(config: &Config, name: &str) -> Result<PathBuf, String> {
    let dir = config
        .gateway
        .state_dir
        .as_deref()
        .ok_or("the gateway has no state directory to keep tokens in: set gateway.stateDir")?;
    Ok(store::path(dir, name))
}

/// `mcp-gateway logout SERVER`: the saved tokens go (the registration stays, to be used again).
pub fn logout(config: &Config, name: &str) -> Result<String, String> {
    let (remote, _) = oauth_server(config, name)?;
    let file = state_file(config, name)?;
    let Some(mut saved) = store::load(&file, &Url::parse(&remote.url)?)? else {
        return Ok(format!("server {name} was not logged in\n"));
    };
    if saved.tokens.take().is_none() {
        return Ok(format!("server {name} was not logged in\n"));
    }
    store::save(&file, &saved)?;
    Ok(format!(
        "logged out of server {name}: its tokens are deleted (a running gateway stops using them \
         within a second)\n"
    ))
}

/// `mcp-gateway login SERVER`: see the module docs. `say` gets what the user must read at once
/// (the URL); the result is the closing message.
pub fn login(
    config: &Config,
    name: &str,
    options: &Options,
    say: &mut dyn Write,
) -> Result<String, String> {
    let (remote, settings) = oauth_server(config, name)?;
    let file = state_file(config, name)?;
    let url = Url::parse(&remote.url)?;
    let saved = store::load(&file, &url)?.unwrap_or_else(|| Saved::for_server(&url));

    let challenge = challenge(&url, remote)?;
    let deadline = Instant::now() + STEP_LIMIT;
    let resource = discovery::resource_metadata(&url, challenge.as_ref(), deadline)
        .map_err(|e| format!("server {name}: {e}"))?;
    let issuer = resource.authorization_servers[0].clone();
    let metadata = discovery::server_metadata(&issuer, deadline)?;
    let Some(authorization_endpoint) = metadata.authorization_endpoint.clone() else {
        return Err(format!(
            "authorization server {issuer} has no authorization_endpoint"
        ));
    };
    if !metadata.code_challenge_methods.iter().any(|m| m == "S256") {
        return Err(format!(
            "authorization server {issuer} does not say it supports PKCE with S256 \
             (code_challenge_methods_supported), which MCP requires; not logging in"
        ));
    }

    let listener = TcpListener::bind(("127.0.0.1", settings.redirect_port)).map_err(|e| {
        format!(
            "cannot listen on 127.0.0.1:{} for the redirect: {e}",
            settings.redirect_port
        )
    })?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");

    let scope = match settings.scopes.as_slice() {
        [] => {
            let asked = saved
                .step_up_scope
                .as_deref()
                .or(challenge.as_ref().and_then(|c| c.scope.as_deref()));
            let scopes = super::union(asked, None);
            if scopes.is_empty() {
                super::union(Some(&resource.scopes_supported.join(" ")), None)
            } else {
                scopes
            }
        }
        // The config's scopes, and what a server asked more for (`insufficient_scope`).
        scopes => super::union(Some(&scopes.join(" ")), saved.step_up_scope.as_deref()),
    };
    let scope = Some(scope).filter(|s| !s.is_empty());

    let client = client(
        settings,
        &metadata,
        &saved,
        &redirect_uri,
        scope.as_deref(),
        deadline,
    )?;
    let pkce = Pkce::new()?;
    let state = grant::random_text(24)?;
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("state", state.as_str()),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("resource", resource.resource.as_str()),
    ];
    if let Some(scope) = &scope {
        query.push(("scope", scope));
    }
    let authorization_url = http::with_query(&Url::parse(&authorization_endpoint)?, &query);
    let _ = writeln!(
        say,
        "To log in to server {name}, open this URL in a browser:\n\n  {authorization_url}\n\n\
         Waiting for the redirect to {redirect_uri} (up to {} s)…",
        options.timeout.as_secs()
    );
    let _ = say.flush();
    if options.browser {
        open_browser(&authorization_url);
    }

    let code = wait_for_code(&listener, &state, &metadata, options.timeout)?;
    let tokens = grant::tokens(
        &metadata.token_endpoint,
        &client,
        Grant::Code {
            code: &code,
            redirect_uri: &redirect_uri,
            verifier: &pkce.verifier,
        },
        &resource.resource,
        Instant::now() + STEP_LIMIT,
    )
    .map_err(|e| format!("exchanging the authorization code failed: {e}"))?;
    let summary = super::describe_tokens(&tokens);
    let granted = tokens.scope.clone().or(scope).unwrap_or_default();
    store::save(
        &file,
        &Saved {
            server_url: url.to_string(),
            resource: Some(resource.resource),
            token_endpoint: Some(metadata.token_endpoint.clone()),
            client: Some(client),
            tokens: Some(tokens),
            step_up_scope: None,
        },
    )?;
    let scopes = if granted.is_empty() {
        String::new()
    } else {
        format!(", scope {granted}")
    };
    Ok(format!(
        "logged in to server {name} ({summary}{scopes}); a running gateway uses the tokens \
         within a second, no restart needed\n"
    ))
}

/// The server's `401` challenge to a request without a token (None: it asked for none, or named
/// no Bearer challenge; discovery then uses the well-known URIs).
fn challenge(url: &Url, remote: &RemoteServer) -> Result<Option<Challenge>, String> {
    let deadline = Instant::now() + STEP_LIMIT;
    let tls = match (url.tls, &remote.ca_file) {
        (false, _) => None,
        (true, ca) => Some(crate::downstream::remote::tls::Tls::new(ca.as_deref())?),
    };
    let mut conn = crate::downstream::remote::conn::Conn::connect(url, tls.as_ref(), deadline)
        .map_err(|e| format!("cannot reach {}: {e}", url.redacted()))?;
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": crate::downstream::handshake::LATEST_PROTOCOL_VERSION, "capabilities": {},
        "clientInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")}}})
    .to_string();
    let mut headers: Vec<(&str, &str)> = remote
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    headers.push(("Content-Type", "application/json"));
    headers.push(("Accept", "application/json, text/event-stream"));
    let head = conn
        .send("POST", &url.path, &headers, body.as_bytes(), deadline)
        .map_err(|e| format!("{}: {e}", url.redacted()))?;
    Ok(match head.status {
        401 => head.header("www-authenticate").and_then(Challenge::parse),
        _ => None,
    })
}

/// The client to log in as (see the module docs).
fn client(
    settings: &RemoteAuth,
    metadata: &discovery::ServerMetadata,
    saved: &Saved,
    redirect_uri: &str,
    scope: Option<&str>,
    deadline: Instant,
) -> Result<Client, String> {
    if let Some(client_id) = &settings.client_id {
        bound_to_issuer(saved, client_id, &metadata.issuer)?;
        return Ok(Client {
            client_id: client_id.clone(),
            auth_method: grant::auth_method(metadata, settings.client_secret.is_some()),
            client_secret: settings.client_secret.clone(),
            issuer: metadata.issuer.clone(),
            origin: "config".into(),
            redirect_uri: None,
        });
    }
    if let Some(url) = &settings.client_metadata_url {
        if metadata.client_metadata_documents {
            return Ok(Client {
                client_id: url.clone(),
                client_secret: None,
                auth_method: "none".into(),
                issuer: metadata.issuer.clone(),
                origin: "metadata-document".into(),
                redirect_uri: None,
            });
        }
        log::info!(
            "authorization server {} does not accept Client ID Metadata Documents; registering",
            metadata.issuer
        );
    }
    // A registration of before, with this very server and redirect URI, is used again.
    if let Some(client) = &saved.client {
        if client.origin == "registered"
            && client.issuer == metadata.issuer
            && client.redirect_uri.as_deref() == Some(redirect_uri)
        {
            return Ok(client.clone());
        }
    }
    grant::register(metadata, redirect_uri, scope, deadline)
}

/// A configured client is registered with one authorization server: when the server's metadata
/// now names another one than the client was last used with, that is said rather than the
/// client's credentials offered to a stranger.
pub fn bound_to_issuer(saved: &Saved, client_id: &str, issuer: &str) -> Result<(), String> {
    match &saved.client {
        Some(client)
            if client.origin == "config" && client.client_id == client_id && client.issuer != issuer =>
        {
            Err(format!(
                "the server now names authorization server {issuer}, but its configured clientId \
                 {client_id:?} was used with {}: update auth.clientId and auth.clientSecret for the \
                 new server (or remove them to register there)",
                client.issuer
            ))
        }
        _ => Ok(()),
    }
}

/// Waits for the authorization server's redirect on `listener`; the code, once `state` and `iss`
/// check out.
fn wait_for_code(
    listener: &TcpListener,
    state: &str,
    metadata: &discovery::ServerMetadata,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "no redirect came within {} s; run mcp-gateway login again",
                        timeout.as_secs()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(format!("waiting for the redirect: {e}")),
        };
        let Some((path, query)) = read_request_target(&stream) else {
            continue;
        };
        if path != "/callback" {
            answer(stream, 404, "Not the login redirect.");
            continue;
        }
        let params = http::decode_form(&query);
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if get("state") != Some(state) {
            answer(
                stream,
                400,
                "This redirect is not for the login in progress.",
            );
            // A stale tab of an earlier attempt, a prefetch, another local process: not this
            // login's redirect, which may still come.
            log::warn!("ignoring a redirect whose state is not this login's");
            continue;
        }
        match get("iss") {
            Some(iss) if iss != metadata.issuer => {
                answer(
                    stream,
                    400,
                    "The redirect came from another authorization server.",
                );
                return Err(format!(
                    "the redirect names issuer {iss:?}, not {:?} (RFC 9207): refused",
                    metadata.issuer
                ));
            }
            None if metadata.iss_on_redirect => {
                answer(
                    stream,
                    400,
                    "The redirect does not say which server it is from.",
                );
                return Err(
                    "the authorization server promises iss on the redirect, and it has none".into(),
                );
            }
            _ => {}
        }
        if let Some(error) = get("error") {
            let description = get("error_description").unwrap_or("");
            answer(stream, 400, "The login was refused.");
            return Err(format!(
                "the authorization server refused the login: {error} {description}"
            ));
        }
        let Some(code) = get("code") else {
            answer(stream, 400, "The redirect carries no code.");
            return Err("the redirect carries no authorization code".into());
        };
        answer(stream, 200, "Logged in. You can close this window.");
        return Ok(code.to_string());
    }
}

/// The path and query of one HTTP request on `stream` (its head read within 5 s).
fn read_request_target(mut stream: &TcpStream) -> Option<(String, String)> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next()?.split(' ');
    let (method, target) = (words.next()?, words.next()?);
    if method != "GET" {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Some((path.to_string(), query.to_string()))
}

fn answer(mut stream: TcpStream, status: u16, text: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body =
        format!("<!doctype html><meta charset=utf-8><title>mcp-gateway</title><p>{text}</p>\n");
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Opens `url` in the user's browser, where there is one (a desktop session on Linux, macOS);
/// never fails the login.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        Some("open")
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        Some("xdg-open")
    } else {
        None
    };
    if let Some(opener) = opener {
        let _ = std::process::Command::new(opener)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}
