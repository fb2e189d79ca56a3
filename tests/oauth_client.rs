//! The gateway as an OAuth 2.1 client of remote servers (`"auth"`), end to end: the real binary,
//! `mcp-gateway login` driven by the test following the URL it prints, and the OAuth fixture
//! (`tests/interop/oauth_server.py`: authorization servers and an MCP server they protect, built
//! on the official Python SDK) on loopback.
//!
//! Covered: a server that needs a login says so (`/health`, calls) and starts within a second of
//! one; dynamic client registration, a pre-registered confidential client (its auth method as
//! advertised) and a Client ID Metadata Document; PKCE, `state`, `iss`, `resource` (the fixture
//! refuses the flow without them); refresh with rotation after the tokens expire; `logout`;
//! client credentials with no login and their one step-up on `403 insufficient_scope`; a login's
//! step-up through a second login; a server that moves to another authorization server; tokens
//! kept 0600, never in the log or `/health`, and only ever sent to the server they are for.

mod util;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;
use util::oauth::{get, Fixture};
use util::{wait_for, Gateway};

const WAIT: Duration = Duration::from_secs(20);
const NEEDS_LOGIN: &str = "server \"linear\" needs login: run mcp-gateway login linear";

fn gateway(fx: &Fixture, auth: Value) -> Gateway {
    Gateway::start(json!({
        "servers": [{"name": "linear", "url": fx.mcp, "auth": auth, "initTimeout": 5000}],
    }))
}

fn status(gw: &Gateway) -> Value {
    gw.server_health("linear")
}

fn wait_status(gw: &Gateway, want: &str) -> Value {
    wait_for(WAIT, &format!("linear {want}"), || {
        let health = status(gw);
        (health["status"] == want).then_some(health)
    })
}

/// `mcp-gateway <args> --config <the gateway's>`, with the gateway's state directory, no stdin.
fn cli(gw: &Gateway, args: &[&str]) -> Command {
    let mut command = Command::new(util::gateway_binary());
    command
        .args(args)
        .arg("--config")
        .arg(&gw.config_path)
        .env("XDG_STATE_HOME", gw.dir.join("state"))
        .env_remove("MCP_GATEWAY_CONFIG")
        .stdin(Stdio::null());
    command
}

/// Runs `mcp-gateway login linear`, follows the URL it prints (the fixture approves at once) to
/// the redirect it takes; returns the URL and everything it printed.
fn login(gw: &Gateway) -> (String, String) {
    let mut child = cli(gw, &["login", "linear", "--no-browser", "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mcp-gateway login");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let url = loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let mut stderr = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            panic!("login printed no URL:\n{printed}\n{stderr}");
        }
        printed.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("http") {
            break format!("http{url}");
        }
    };
    let approved = get(&url);
    assert_eq!(approved.status, 302, "{}", approved.text());
    let location = approved.header("location").unwrap().to_string();
    assert!(
        location.starts_with("http://127.0.0.1:") && location.contains("/callback?"),
        "{location}"
    );
    let landed = get(&location);
    assert_eq!(landed.status, 200, "{}", landed.text());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    printed.push_str(&rest);
    let exit = child.wait().unwrap();
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    assert!(exit.success(), "login failed:\n{printed}\n{stderr}");
    (url, printed)
}

/// Runs `mcp-gateway login linear` expecting it to fail before any URL; what it said.
fn login_fails(gw: &Gateway) -> String {
    let out = cli(gw, &["login", "linear", "--no-browser", "--timeout", "5"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(!said.contains("open this URL"), "{said}");
    said
}

/// The gateway's `whoami` answer through REST: the fixture's view of the token it got.
fn whoami(gw: &Gateway) -> Value {
    let http = gw.call("whoami", json!({}));
    let text = http.json()["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("whoami failed: {}\n{}", http.text(), gw.logs()))
        .to_string();
    serde_json::from_str(&text).unwrap()
}

fn call_error(gw: &Gateway, tool: &str) -> (u16, Value) {
    let http = gw.call(tool, json!({}));
    (http.status, http.json()["error"].clone())
}

fn saved(gw: &Gateway) -> (Value, u32) {
    use std::os::unix::fs::PermissionsExt;
    let file = gw.dir.join("state/mcp-gateway/oauth/linear.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    let text = std::fs::read_to_string(&file).unwrap();
    (serde_json::from_str(&text).unwrap(), mode)
}

fn count(events: &[Value], kind: &str, grant: Option<&str>) -> usize {
    events
        .iter()
        .filter(|e| e["kind"] == kind && grant.is_none_or(|g| e["grant_type"] == g))
        .count()
}

#[test]
fn a_login_with_dynamic_registration_serves_every_client_and_logout_ends_it() {
    let fx = Fixture::start(&[]);
    let gw = gateway(&fx, json!({"type": "oauth"}));
    let waiting = wait_status(&gw, "needs login");
    assert_eq!(waiting["lastError"], NEEDS_LOGIN, "{waiting}");
    // Its tools are not known yet: a call for one is told what to do, on REST and MCP alike.
    let error = wait_for(WAIT, "the login hint", || {
        let (status, error) = call_error(&gw, "whoami");
        (status == 503).then_some(error)
    });
    assert_eq!(error["code"], -32000, "{error}");
    assert!(
        error["message"].as_str().unwrap().starts_with(NEEDS_LOGIN),
        "{error}"
    );
    let mut session = gw.mcp();
    let answer = session.request("tools/call", json!({"name": "whoami", "arguments": {}}));
    let error = &answer.response()["error"];
    assert_eq!(error["code"], -32000, "{error}");
    assert!(
        error["message"].as_str().unwrap().starts_with(NEEDS_LOGIN),
        "{error}"
    );
    let before = count(&fx.events(), "mcp", None);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        count(&fx.events(), "mcp", None),
        before,
        "a server that needs a login is not retried"
    );

    let (url, printed) = login(&gw);
    for part in [
        "response_type=code",
        "code_challenge_method=S256",
        "state=",
        "resource=",
    ] {
        assert!(url.contains(part), "{part} in {url}");
    }
    assert!(printed.contains("logged in to server linear"), "{printed}");
    wait_status(&gw, "up");
    let me = whoami(&gw);
    let events = fx.events();
    let registered: Vec<&Value> = events.iter().filter(|e| e["kind"] == "register").collect();
    assert_eq!(registered.len(), 1, "{events:?}");
    assert_eq!(me["client_id"], registered[0]["client_id"]);
    let code = events
        .iter()
        .find(|e| e["grant_type"] == "authorization_code")
        .unwrap();
    assert_eq!(code["status"], 200, "{code}");
    assert_eq!(code["resource"], fx.mcp.as_str());

    // Saved privately; the token never in the log or /health; sent to the MCP server only, on
    // every request of the gateway's there.
    let (file, mode) = saved(&gw);
    assert_eq!(mode, 0o600);
    let token = file["tokens"]["accessToken"].as_str().unwrap().to_string();
    assert!(token.ends_with(me["token_suffix"].as_str().unwrap()));
    assert!(!gw.logs().contains(&token), "the token is in the log");
    assert!(
        !gw.health().to_string().contains(&token),
        "the token is in /health"
    );
    let bearer = format!("Bearer {token}");
    let sent: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "mcp" && e["status"] == 200)
        .collect();
    assert!(!sent.is_empty());
    assert!(
        sent.iter().all(|e| e["authorization"] == bearer.as_str()),
        "{sent:?}"
    );

    // A 2025 session's call goes the same way.
    let answer = session.request(
        "tools/call",
        json!({"name": "add", "arguments": {"a": 2, "b": 3}}),
    );
    assert_eq!(answer.response()["result"]["content"][0]["text"], "5");

    // Logged out: the gateway stops sending the token, and says what to do.
    let out = cli(&gw, &["logout", "linear"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let error = wait_for(WAIT, "calls refused for a login", || {
        let (status, error) = call_error(&gw, "whoami");
        (status == 503).then_some(error)
    });
    assert_eq!(error["code"], -32000, "{error}");
    assert_eq!(error["message"], NEEDS_LOGIN, "{error}");
    let waiting = wait_status(&gw, "needs login");
    assert_eq!(waiting["lastError"], NEEDS_LOGIN, "{waiting}");
}

#[test]
fn expired_tokens_are_refreshed_and_rotated_without_a_login() {
    let fx = Fixture::start(&["--rotate-refresh"]);
    let gw = gateway(&fx, json!({"type": "oauth"}));
    wait_status(&gw, "needs login");
    login(&gw);
    wait_status(&gw, "up");
    let first = whoami(&gw);
    for round in 1..=2 {
        fx.control("expire");
        let again = whoami(&gw);
        assert_ne!(
            again["token_suffix"], first["token_suffix"],
            "round {round}"
        );
        assert_eq!(again["client_id"], first["client_id"]);
    }
    let events = fx.events();
    let refreshes: Vec<&Value> = events
        .iter()
        .filter(|e| e["grant_type"] == "refresh_token")
        .collect();
    assert_eq!(refreshes.len(), 2, "one refresh per expiry: {events:?}");
    assert!(
        refreshes.iter().all(|e| e["status"] == 200),
        "the rotated refresh token was used each time: {refreshes:?}"
    );
    let (file, _) = saved(&gw);
    assert!(file["tokens"]["refreshToken"].is_string());
}

#[test]
fn a_token_about_to_expire_is_refreshed_before_it_is_sent() {
    let fx = Fixture::start(&["--token-lifetime", "4"]);
    let gw = gateway(&fx, json!({"type": "oauth"}));
    wait_status(&gw, "needs login");
    login(&gw);
    wait_status(&gw, "up");
    let first = whoami(&gw);
    let refused = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["kind"] == "mcp" && e["status"] == 401)
            .count()
    };
    let refused_before = refused(&fx.events());
    // Past half its life (the lead for short-lived tokens) however late the first call came,
    // not yet expired.
    std::thread::sleep(Duration::from_millis(2500));
    let second = whoami(&gw);
    assert_ne!(second["token_suffix"], first["token_suffix"]);
    let events = fx.events();
    assert!(
        count(&events, "token", Some("refresh_token")) >= 1,
        "{events:?}"
    );
    assert_eq!(
        refused(&events),
        refused_before,
        "refreshed before, not after a 401"
    );
}

#[test]
fn a_preregistered_client_authenticates_as_the_server_advertises() {
    for method in ["basic", "post"] {
        let fx = Fixture::start(&["--no-dcr", "--client", "gw:s3cret", "--auth-method", method]);
        let gw = gateway(
            &fx,
            json!({"type": "oauth", "clientId": "gw", "clientSecret": "s3cret"}),
        );
        wait_status(&gw, "needs login");
        login(&gw);
        wait_status(&gw, "up");
        assert_eq!(whoami(&gw)["client_id"], "gw");
        // Refreshed with the same client authentication.
        fx.control("expire");
        assert_eq!(whoami(&gw)["client_id"], "gw");
        let events = fx.events();
        assert_eq!(count(&events, "register", None), 0, "{events:?}");
        let tokens: Vec<&Value> = events.iter().filter(|e| e["kind"] == "token").collect();
        assert_eq!(tokens.len(), 2, "{tokens:?}");
        assert!(
            tokens
                .iter()
                .all(|e| e["auth_method"] == method && e["status"] == 200),
            "{method}: {tokens:?}"
        );
        assert!(
            !gw.logs().contains("s3cret"),
            "the client secret is in the log"
        );
        let (file, _) = saved(&gw);
        assert!(
            !file.to_string().contains("s3cret"),
            "the config's secret stays in the config: {file}"
        );
        // The server moves to another authorization server: the configured client belongs to
        // the first one, and the login says so instead of offering its secret elsewhere.
        fx.control("move");
        let said = login_fails(&gw);
        assert!(
            said.contains("configured clientId \"gw\" was used with"),
            "{said}"
        );
        let events = fx.events();
        assert!(
            !events.iter().any(|e| e["kind"] == "token" && e["as"] == 2),
            "nothing was sent to the new server: {events:?}"
        );
    }
}

#[test]
fn a_client_id_metadata_document_is_the_client_where_the_server_accepts_one() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let fx = Fixture::start(&["--cimd", "--cimd-redirect", &redirect]);
    let document = format!("{}/client.json", fx.mcp.strip_suffix("/mcp").unwrap());
    let gw = gateway(
        &fx,
        json!({"type": "oauth", "clientMetadataUrl": document, "redirectPort": port}),
    );
    wait_status(&gw, "needs login");
    let (url, _) = login(&gw);
    assert!(url.contains(&format!(
        "redirect_uri=http%3A%2F%2F127.0.0.1%3A{port}%2Fcallback"
    )));
    wait_status(&gw, "up");
    assert_eq!(whoami(&gw)["client_id"], document.as_str());
    assert_eq!(count(&fx.events(), "register", None), 0);
}

#[test]
fn client_credentials_need_no_login_and_step_up_once_for_more_scope() {
    let fx = Fixture::start(&["--client-credentials", "--client", "m2m:secret"]);
    let gw = gateway(
        &fx,
        json!({"type": "client_credentials", "clientId": "m2m", "clientSecret": "secret"}),
    );
    wait_status(&gw, "up");
    assert_eq!(whoami(&gw)["client_id"], "m2m");
    let admin = gw.call("admin", json!({}));
    assert_eq!(
        admin.json()["result"]["content"][0]["text"],
        "admin ok",
        "{}",
        admin.text()
    );
    let events = fx.events();
    let grants: Vec<&Value> = events
        .iter()
        .filter(|e| e["grant_type"] == "client_credentials")
        .collect();
    assert_eq!(grants.len(), 2, "one at start, one step-up: {events:?}");
    assert_eq!(grants[1]["scope"], "mcp admin", "{:?}", grants[1]);
    let refused = events
        .iter()
        .filter(|e| e["kind"] == "mcp" && e["status"] == 403)
        .count();
    assert_eq!(refused, 1, "one 403, then the step-up: {events:?}");
    // Expired: a new grant, no login.
    fx.control("expire");
    assert_eq!(whoami(&gw)["client_id"], "m2m");
    assert_eq!(count(&fx.events(), "token", Some("client_credentials")), 3);
}

#[test]
fn a_login_steps_up_through_the_next_login_without_a_loop() {
    let fx = Fixture::start(&[]);
    let gw = gateway(&fx, json!({"type": "oauth"}));
    wait_status(&gw, "needs login");
    login(&gw);
    wait_status(&gw, "up");
    let (status, error) = call_error(&gw, "admin");
    assert_eq!(status, 503, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("more scope (mcp admin)") && message.contains("mcp-gateway login linear"),
        "{message}"
    );
    let admin_refusals = || {
        fx.events()
            .iter()
            .filter(|e| e["kind"] == "mcp" && e["tool"] == "admin")
            .count()
    };
    assert_eq!(admin_refusals(), 1, "one refusal, no retry loop");
    assert_eq!(whoami(&gw)["scopes"], json!(["mcp"]), "the server stays up");
    let (url, _) = login(&gw);
    assert!(url.contains("scope=mcp%20admin"), "{url}");
    let admin = wait_for(WAIT, "admin with the new login", || {
        let http = gw.call("admin", json!({}));
        (http.json()["result"]["content"][0]["text"] == "admin ok").then_some(http)
    });
    assert_eq!(admin.status, 200);
}

#[test]
fn a_server_moved_to_another_authorization_server_is_registered_there_at_the_next_login() {
    let fx = Fixture::start(&[]);
    let gw = gateway(&fx, json!({"type": "oauth"}));
    wait_status(&gw, "needs login");
    login(&gw);
    wait_status(&gw, "up");
    let before = whoami(&gw);
    fx.control("move");
    // The old tokens (and refresh token) are dead: a login is needed, and said.
    let error = wait_for(WAIT, "the login message", || {
        let (status, error) = call_error(&gw, "whoami");
        (status == 503).then_some(error)
    });
    assert_eq!(error["message"], NEEDS_LOGIN, "{error}");
    let (url, _) = login(&gw);
    assert!(url.starts_with(&fx.issuer2), "{url}");
    let after = wait_for(WAIT, "calls through the new login", || {
        let http = gw.call("whoami", json!({}));
        let text = http.json()["result"]["content"][0]["text"]
            .as_str()?
            .to_string();
        serde_json::from_str::<Value>(&text).ok()
    });
    assert_ne!(after["client_id"], before["client_id"]);
    let events = fx.events();
    let registered: Vec<&Value> = events.iter().filter(|e| e["kind"] == "register").collect();
    assert_eq!(registered.len(), 2, "{events:?}");
    assert_eq!(registered[1]["as"], 2);
}
