//! The gateway as an OAuth resource server (`gateway.oauth`), end to end: the real binary on port
//! 0 in front of the demo server, a real authorization server on loopback
//! (`tests/interop/oauth_issuer.py`: RFC 8414 / OpenID metadata, a JWK Set, RS256 and ES256 keys
//! and tokens from PyJWT + cryptography), and the official Python SDK as a client.
//!
//! Covered: the RFC 9728 metadata documents (root, per endpoint, per profile, behind a proxy with
//! `resource`), the exact 401 challenge without a token on every kind of endpoint, RS256 and ES256
//! tokens reaching a tool over Streamable HTTP, REST and a stateless 2026-07-28 request, every
//! kind of bad token refused with `invalid_token`, 403 `insufficient_scope` (gateway and profile
//! scopes), the static `authToken` beside OAuth, a rotated key fetched once on its unknown `kid`
//! while made-up kids cost the issuer nothing, OpenID discovery under an issuer path, metadata
//! naming another issuer refused, the SDK client with and without its token, a remote server
//! never seeing a client's token, CORS for browser clients, and a reload applying new scopes at
//! once while the issuer in force stays until a restart.

mod util;

use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use util::{demo, http_request, mcp_messages, wait_for, Gateway, HttpResponse};

const AUDIENCE: &str = "mcp-gateway-test";
const MODERN: &str = "2026-07-28";

/// `tests/interop/oauth_issuer.py`, killed on drop.
struct Issuer {
    process: util::PyProcess,
    path: String,
}

impl Issuer {
    fn start() -> Issuer {
        Issuer::start_at("")
    }

    /// With an issuer URL that has a path (`http://127.0.0.1:PORT/tenant`).
    fn start_at(path: &str) -> Issuer {
        let args = ["--issuer-path", path].map(std::ffi::OsStr::new);
        Issuer {
            process: util::PyProcess::start("oauth_issuer.py", &args),
            path: path.to_string(),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.process.port, self.path)
    }

    fn post(&self, path: &str, body: &Value) -> Value {
        let response = http_request(
            &format!("127.0.0.1:{}", self.process.port),
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(
            response.status,
            200,
            "{} {}",
            response.text(),
            self.process.stderr()
        );
        response.json()
    }

    /// A token as `/mint` makes it (see the script for the fields).
    fn mint(&self, request: Value) -> String {
        self.post("/mint", &request)["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A good token of `key` with `scope`.
    fn token(&self, key: &str, scope: &str) -> String {
        self.mint(json!({"key": key, "claims": {"scope": scope}}))
    }

    /// How often the key set was fetched.
    fn jwks_fetches(&self) -> u64 {
        http_request(
            &format!("127.0.0.1:{}", self.process.port),
            "GET",
            "/stats",
            &[],
            b"",
        )
        .json()["jwks"]
            .as_u64()
            .unwrap()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A gateway in front of the demo server (tools `demo_*`), guarded by `issuer`; `oauth` and
/// `gateway` are merged into the `gateway.oauth` and `gateway` sections.
fn guarded(issuer: &Issuer, oauth: Value, gateway: Value, profiles: Value) -> Gateway {
    let mut section =
        json!({"issuer": issuer.url(), "audience": AUDIENCE, "requiredScopes": ["mcp"]});
    for (k, v) in oauth.as_object().unwrap() {
        section[k] = v.clone();
    }
    let mut gateway_section = json!({"oauth": section});
    for (k, v) in gateway.as_object().unwrap() {
        gateway_section[k] = v.clone();
    }
    let mut config = json!({
        "gateway": gateway_section,
        "servers": [demo("demo", &[])],
        "mapping": {"demo": {"prefix": "demo_"}},
    });
    if !profiles.is_null() {
        config["profiles"] = profiles;
    }
    Gateway::start(config)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Waits until `token` passes (the key set is loaded) and the demo server is up.
fn wait_ready(gw: &Gateway, token: &str) {
    let auth = bearer(token);
    wait_for(
        Duration::from_secs(20),
        "the key set and the demo server",
        || {
            let health = gw.request("GET", "/health", &[("Authorization", &auth)], b"");
            let body = health.json();
            let up = body["servers"]
                .as_array()
                .is_some_and(|s| s.iter().all(|s| s["status"] == "up"));
            (health.status == 200 && up).then_some(())
        },
    );
}

/// `POST path` with a JSON-RPC body, the MCP Accept header and `headers`.
fn post_mcp(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &Value) -> HttpResponse {
    let mut all = vec![
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
    ];
    all.extend_from_slice(headers);
    gw.request("POST", path, &all, body.to_string().as_bytes())
}

fn initialize(id: i64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "oauth-test", "version": "1"}}})
}

/// A session opened on `path` with `token`, then `demo_echo` called in it: the call's answer.
fn echo_through(gw: &Gateway, path: &str, token: &str, text: &str) -> Value {
    let auth = bearer(token);
    let opened = post_mcp(gw, path, &[("Authorization", &auth)], &initialize(1));
    assert_eq!(opened.status, 200, "{}", opened.text());
    let session = opened.header("mcp-session-id").unwrap().to_string();
    let headers = [
        ("Authorization", auth.as_str()),
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let note = post_mcp(
        gw,
        path,
        &headers,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(note.status, 202, "{}", note.text());
    let call = post_mcp(
        gw,
        path,
        &headers,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "demo_echo", "arguments": {"text": text}}}),
    );
    assert_eq!(call.status, 200, "{}", call.text());
    mcp_messages(&call).pop().unwrap()
}

/// The refusal's `WWW-Authenticate`, with its status checked.
fn challenge(response: &HttpResponse, status: u16) -> String {
    assert_eq!(response.status, status, "{}", response.text());
    response
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate: {:?}", response.headers))
        .to_string()
}

#[test]
fn metadata_documents_and_the_challenge_without_a_token() {
    let issuer = Issuer::start();
    let gw = guarded(
        &issuer,
        json!({}),
        json!({"cors": true}),
        json!({"admin": {"requiredScopes": ["admin"]}}),
    );
    let origin = format!("http://127.0.0.1:{}", gw.port);
    // A browser client (the MCP Inspector) may read both the document and the challenge.
    let page = [("Origin", "https://inspector.example")];
    let doc = gw.request(
        "GET",
        "/.well-known/oauth-protected-resource/mcp",
        &page,
        b"",
    );
    assert_eq!(doc.header("access-control-allow-origin"), Some("*"));
    let refused = gw.request("POST", "/mcp", &page, initialize(1).to_string().as_bytes());
    challenge(&refused, 401);
    assert!(refused
        .header("access-control-expose-headers")
        .unwrap()
        .contains("WWW-Authenticate"));
    let doc = gw.get("/.well-known/oauth-protected-resource/mcp");
    assert_eq!(doc.status, 200, "{}", doc.text());
    assert_eq!(
        doc.json(),
        json!({
            "resource": format!("{origin}/mcp"),
            "authorization_servers": [issuer.url()],
            "scopes_supported": ["mcp"],
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-gateway",
        })
    );
    let root = gw.get("/.well-known/oauth-protected-resource").json();
    assert_eq!(root["resource"], origin);
    let admin = gw
        .get("/.well-known/oauth-protected-resource/mcp/admin")
        .json();
    assert_eq!(admin["resource"], format!("{origin}/mcp/admin"));
    assert_eq!(admin["scopes_supported"], json!(["mcp", "admin"]));
    let post = gw.request("POST", "/.well-known/oauth-protected-resource", &[], b"");
    assert_eq!(post.status, 405, "{}", post.text());

    // No token: 401 with the challenge naming the endpoint's metadata, the id echoed.
    let refused = post_mcp(&gw, "/mcp", &[], &initialize(7));
    assert_eq!(
        challenge(&refused, 401),
        format!(
            "Bearer resource_metadata=\"{origin}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp\""
        )
    );
    let body = refused.json();
    assert_eq!(
        (body["jsonrpc"].clone(), body["id"].clone()),
        (json!("2.0"), json!(7))
    );
    assert_eq!(body["error"]["code"], -32600);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("requires an OAuth access token"));
    let admin = post_mcp(&gw, "/mcp/admin", &[], &initialize(8));
    assert_eq!(
        challenge(&admin, 401),
        format!(
            "Bearer resource_metadata=\"{origin}/.well-known/oauth-protected-resource/mcp/admin\", scope=\"mcp admin\""
        )
    );
    let sse = gw.get("/sse");
    assert!(challenge(&sse, 401).starts_with(&format!(
        "Bearer resource_metadata=\"{origin}/.well-known/oauth-protected-resource/sse\""
    )));
    // REST endpoints answer in their own shape.
    let tools = gw.get("/tools");
    challenge(&tools, 401);
    assert!(
        tools.json()["error"]["message"].is_string(),
        "{}",
        tools.text()
    );
    // /health tells only its status.
    assert_eq!(gw.get("/health").json().as_object().unwrap().len(), 1);

    // Behind a proxy: `resource` names the public origin.
    let proxied = guarded(
        &issuer,
        json!({"resource": "https://mcp.example.com"}),
        json!({}),
        Value::Null,
    );
    let doc = proxied
        .get("/.well-known/oauth-protected-resource/mcp")
        .json();
    assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
    assert!(challenge(&post_mcp(&proxied, "/mcp", &[], &initialize(1)), 401).starts_with(
        "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
    ));
}

#[test]
fn rs256_and_es256_tokens_reach_the_server_in_every_era() {
    let issuer = Issuer::start();
    let gw = guarded(&issuer, json!({}), json!({}), Value::Null);
    let rsa = issuer.token("rsa-1", "mcp");
    let ec = issuer.token("ec-1", "openid mcp");
    wait_ready(&gw, &rsa);
    for (token, text) in [(&rsa, "rs256"), (&ec, "es256")] {
        let answer = echo_through(&gw, "/mcp", token, text);
        assert_eq!(answer["result"]["content"][0]["text"], text, "{answer}");
        let rest = gw.request(
            "POST",
            "/tools/call",
            &[
                ("Authorization", &bearer(token)),
                ("Content-Type", "application/json"),
            ],
            json!({"name": "demo_echo", "arguments": {"text": text}})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(rest.status, 200, "{}", rest.text());
    }
    // A stateless 2026-07-28 request is guarded the same way.
    let modern = |headers: &[(&str, &str)]| {
        let mut all = vec![
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "demo_echo"),
        ];
        all.extend_from_slice(headers);
        post_mcp(
            &gw,
            "/mcp",
            &all,
            &json!({"jsonrpc": "2.0", "id": "m-1", "method": "tools/call", "params": {
            "name": "demo_echo", "arguments": {"text": "stateless"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            }}}),
        )
    };
    let refused = modern(&[]);
    challenge(&refused, 401);
    assert_eq!(refused.json()["id"], "m-1");
    let passed = modern(&[("Authorization", &bearer(&ec))]);
    assert_eq!(passed.status, 200, "{}", passed.text());
    let answer = mcp_messages(&passed).pop().unwrap();
    assert_eq!(
        answer["result"]["content"][0]["text"], "stateless",
        "{answer}"
    );

    // /health in full for a token holder, with the guard's counters.
    let health = gw
        .request("GET", "/health", &[("Authorization", &bearer(&rsa))], b"")
        .json();
    let oauth = &health["oauth"];
    assert_eq!(oauth["issuer"], issuer.url());
    assert_eq!(oauth["keys"], 2, "{oauth}");
    assert_eq!(
        oauth["keySet"],
        format!("http://127.0.0.1:{}/jwks", issuer.process.port)
    );
    assert_eq!(oauth["keySetFetches"], 1, "{oauth}");
    assert!(
        oauth["cacheHits"].as_u64().unwrap() > 0,
        "the same tokens were reused: {oauth}"
    );
    assert_eq!(oauth["tokensCached"], 2, "{oauth}");
    // Tokens are never logged, even at debug level.
    let logs = gw.logs();
    for token in [&rsa, &ec] {
        assert!(!logs.contains(token.rsplit('.').next().unwrap()), "{logs}");
    }
}

#[test]
fn bad_tokens_are_refused_and_scopes_are_required() {
    let issuer = Issuer::start();
    let gw = guarded(
        &issuer,
        json!({}),
        json!({"authToken": "static-secret"}),
        json!({"admin": {"requiredScopes": ["admin"]}}),
    );
    let good = issuer.token("rsa-1", "mcp");
    wait_ready(&gw, &good);
    let origin = format!("http://127.0.0.1:{}", gw.port);
    let now = unix_now();
    let cases = [
        (
            json!({"key": "rsa-1", "sign_with": "rsa-2"}),
            "signature does not verify",
        ),
        (
            json!({"key": "ec-1", "sign_with": "ec-2"}),
            "signature does not verify",
        ),
        (
            json!({"claims": {"aud": "someone-else"}}),
            "audience (aud) does not include mcp-gateway-test",
        ),
        (
            json!({"claims": {"exp": now - 3600}}),
            "the token has expired (exp)",
        ),
        (json!({"claims": {"exp": null}}), "no expiry (exp)"),
        (
            json!({"claims": {"nbf": now + 3600}}),
            "the token is not valid yet (nbf)",
        ),
        (
            json!({"claims": {"iss": "http://127.0.0.1:1"}}),
            "was not issued by",
        ),
        (
            json!({"alg": "HS256"}),
            "signed with HS256; only RS256 and ES256 are accepted",
        ),
        (
            json!({"alg": "none"}),
            "signed with none; only RS256 and ES256 are accepted",
        ),
    ];
    for (request, expected) in cases {
        let token = issuer.mint(request.clone());
        let refused = post_mcp(
            &gw,
            "/mcp",
            &[("Authorization", &bearer(&token))],
            &initialize(3),
        );
        let value = challenge(&refused, 401);
        let prefix = format!(
            "Bearer resource_metadata=\"{origin}/.well-known/oauth-protected-resource/mcp\", error=\"invalid_token\", error_description=\""
        );
        assert!(value.starts_with(&prefix), "{request}: {value}");
        assert!(value.contains(expected), "{request}: {value}");
        assert!(value.ends_with(", scope=\"mcp\""), "{value}");
        let body = refused.json();
        assert_eq!(body["id"], 3, "{request}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{body}"
        );
    }
    let garbage = post_mcp(
        &gw,
        "/mcp",
        &[("Authorization", "Bearer not-a-jwt")],
        &initialize(4),
    );
    assert!(challenge(&garbage, 401).contains("the token is not a valid JWT"));

    // Valid but without the scope: 403 insufficient_scope.
    let unscoped = issuer.token("ec-1", "profile");
    let refused = post_mcp(
        &gw,
        "/mcp",
        &[("Authorization", &bearer(&unscoped))],
        &initialize(5),
    );
    assert_eq!(
        challenge(&refused, 403),
        format!(
            "Bearer resource_metadata=\"{origin}/.well-known/oauth-protected-resource/mcp\", error=\"insufficient_scope\", error_description=\"the token lacks the scope mcp that this endpoint requires\", scope=\"mcp\""
        )
    );
    assert_eq!(refused.json()["id"], 5);
    // A profile's own scope on top of the gateway's.
    let refused = post_mcp(
        &gw,
        "/mcp/admin",
        &[("Authorization", &bearer(&good))],
        &initialize(6),
    );
    assert!(challenge(&refused, 403).ends_with("error_description=\"the token lacks the scope admin that this endpoint requires\", scope=\"mcp admin\""));
    let admin = issuer.token("rsa-1", "mcp admin");
    let answer = echo_through(&gw, "/mcp/admin", &admin, "admin");
    assert_eq!(answer["result"]["content"][0]["text"], "admin", "{answer}");
    // The static token passes beside OAuth, needing no scope; a wrong one is a bad JWT.
    let tools = gw.request(
        "GET",
        "/tools",
        &[("Authorization", "Bearer static-secret")],
        b"",
    );
    assert_eq!(tools.status, 200, "{}", tools.text());
    let wrong = gw.request(
        "GET",
        "/tools",
        &[("Authorization", "Bearer static-secreT")],
        b"",
    );
    assert!(challenge(&wrong, 401).contains("error=\"invalid_token\""));
}

#[test]
fn a_rotated_key_is_fetched_once_and_made_up_key_ids_cost_the_issuer_nothing() {
    let issuer = Issuer::start();
    let gw = guarded(&issuer, json!({}), json!({}), Value::Null);
    wait_ready(&gw, &issuer.token("rsa-1", "mcp"));
    let before = issuer.jwks_fetches();
    assert_eq!(before, 1, "fetched once at start");
    issuer.post("/publish", &json!({"keys": ["rsa-1", "ec-1", "rsa-2"]}));
    let rotated = issuer.token("rsa-2", "mcp");
    let auth = bearer(&rotated);
    let first = post_mcp(&gw, "/mcp", &[("Authorization", &auth)], &initialize(9));
    assert_eq!(first.status, 503, "{}", first.text());
    assert_eq!(first.header("retry-after"), Some("1"));
    let body = first.json();
    assert_eq!(
        (body["id"].clone(), body["error"]["code"].clone()),
        (json!(9), json!(-32000))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fetching the key set"),
        "{body}"
    );
    wait_for(
        Duration::from_secs(10),
        "the rotated key to be accepted",
        || {
            let again = post_mcp(&gw, "/mcp", &[("Authorization", &auth)], &initialize(10));
            (again.status == 200).then_some(())
        },
    );
    assert_eq!(
        issuer.jwks_fetches(),
        before + 1,
        "one refetch for the new kid"
    );
    // A flood of made-up key ids right after: refused, and the issuer is not asked again.
    for i in 0..10 {
        let bogus = issuer.mint(json!({"key": "rsa-1", "kid": format!("bogus-{i}")}));
        let refused = post_mcp(
            &gw,
            "/mcp",
            &[("Authorization", &bearer(&bogus))],
            &initialize(i),
        );
        assert!(
            challenge(&refused, 401).contains(&format!(
                "key id 'bogus-{i}' is not in the issuer's key set"
            )),
            "{:?}",
            refused.header("www-authenticate")
        );
    }
    assert_eq!(issuer.jwks_fetches(), before + 1);
}

#[test]
fn discovery_under_an_issuer_path_and_metadata_naming_another_issuer() {
    // Only the OpenID document, under an issuer with a path.
    let issuer = Issuer::start_at("/tenant");
    issuer.post("/metadata", &json!({"oauth": false}));
    let gw = guarded(&issuer, json!({}), json!({}), Value::Null);
    let token = issuer.token("ec-1", "mcp");
    wait_ready(&gw, &token);
    assert!(issuer
        .process
        .stderr()
        .contains("GET /.well-known/openid-configuration/tenant"));

    // Metadata that names another issuer is not trusted with keys.
    let liar = Issuer::start();
    liar.post("/metadata", &json!({"issuer": "http://127.0.0.1:1"}));
    let gw = guarded(&liar, json!({}), json!({}), Value::Null);
    let token = liar.token("rsa-1", "mcp");
    let refused = wait_for(Duration::from_secs(10), "the discovery error", || {
        let r = gw.request("GET", "/tools", &[("Authorization", &bearer(&token))], b"");
        (r.status == 503 && r.text().contains("must be identical")).then_some(r)
    });
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(liar.jwks_fetches(), 0);

    // Nor is a key set it would have fetched in the clear from another machine.
    let careless = Issuer::start();
    careless.post(
        "/metadata",
        &json!({"jwks_uri": "http://keys.example.com/jwks"}),
    );
    let gw = guarded(&careless, json!({}), json!({}), Value::Null);
    let token = careless.token("rsa-1", "mcp");
    wait_for(Duration::from_secs(10), "the discovery error", || {
        let r = gw.request("GET", "/tools", &[("Authorization", &bearer(&token))], b"");
        (r.status == 503 && r.text().contains("must be https")).then_some(r)
    });
}

#[test]
fn the_python_sdk_client_connects_with_its_token_and_is_refused_without() {
    let issuer = Issuer::start();
    let gw = guarded(&issuer, json!({}), json!({}), Value::Null);
    let token = issuer.token("ec-1", "mcp");
    wait_ready(&gw, &token);
    let url = format!("http://127.0.0.1:{}/mcp", gw.port);
    let checks = util::run_interop_script(&gw, "oauth_client.py", &[&url, &token]);
    let names: Vec<&str> = checks.iter().filter_map(|c| c["check"].as_str()).collect();
    assert_eq!(
        names,
        ["initialize", "list_tools", "call_tool"],
        "{checks:?}"
    );
    let refused = util::run_interop_script(&gw, "oauth_client.py", &[&url, "-"]);
    assert_eq!(refused[0]["check"], "refused", "{refused:?}");
    // The SDK saw the 401 with its challenge, and surfaced the gateway's message.
    let metadata = format!(
        "Bearer resource_metadata=\"http://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp\"",
        gw.port
    );
    assert_eq!(
        refused[0]["responses"],
        json!([[401, metadata]]),
        "{refused:?}"
    );
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .contains("requires an OAuth access token"),
        "{refused:?}"
    );
}

#[test]
fn a_remote_server_never_sees_the_clients_token() {
    let mut server = util::PyProcess::start(
        "remote_server.py",
        &["streamable", "--port", "0"].map(std::ffi::OsStr::new),
    );
    let port = server.port;
    let issuer = Issuer::start();
    let gw = Gateway::start_with(
        json!({
            "gateway": {"oauth": {"issuer": issuer.url(), "audience": AUDIENCE}},
            "servers": [{
                "name": "py", "type": "remote", "url": format!("http://127.0.0.1:{port}/mcp"),
                "headers": {"Authorization": "Bearer ${REMOTE_KEY}"},
            }],
        }),
        &[("REMOTE_KEY", "remote-key-1")],
        &[],
    );
    let token = issuer.token("rsa-1", "mcp");
    wait_ready(&gw, &token);
    let response = gw.request(
        "POST",
        "/tools/call",
        &[
            ("Authorization", &bearer(&token)),
            ("Content-Type", "application/json"),
        ],
        br#"{"name": "echo", "arguments": {"text": "auth"}}"#,
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let _ = server.child.kill();
    let _ = server.child.wait();
    let seen = server.stderr();
    assert!(seen.contains("AUTH Bearer remote-key-1"), "{seen}");
    assert!(
        !seen.contains(&token),
        "the client's token reached the server: {seen}"
    );
    let signature = token.rsplit('.').next().unwrap();
    assert!(!seen.contains(signature), "{seen}");
}

#[test]
fn a_reload_applies_scopes_at_once_and_keeps_the_issuer_until_a_restart() {
    let issuer = Issuer::start();
    let gw = guarded(&issuer, json!({}), json!({}), Value::Null);
    let token = issuer.token("rsa-1", "mcp");
    wait_ready(&gw, &token);
    let auth = bearer(&token);
    assert_eq!(
        gw.request("GET", "/tools", &[("Authorization", &auth)], b"")
            .status,
        200
    );
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(&gw.config_path).unwrap()).unwrap();
    config["gateway"]["oauth"]["requiredScopes"] = json!(["mcp", "extra"]);
    config["gateway"]["oauth"]["issuer"] = json!("https://elsewhere.example.com");
    std::fs::write(&gw.config_path, config.to_string()).unwrap();
    gw.signal(libc::SIGHUP);
    let refused = wait_for(Duration::from_secs(10), "the new scopes", || {
        let r = gw.request("GET", "/tools", &[("Authorization", &auth)], b"");
        (r.status == 403).then_some(r)
    });
    assert!(challenge(&refused, 403).ends_with("scope=\"mcp extra\""));
    gw.wait_log(
        "gateway.oauth issuer/audience/jwksUri changed: needs a restart",
        Duration::from_secs(5),
    );
    // The issuer in force is still the one tokens come from.
    let both = issuer.token("rsa-1", "mcp extra");
    let passed = gw.request("GET", "/tools", &[("Authorization", &bearer(&both))], b"");
    assert_eq!(passed.status, 200, "{}", passed.text());
}

#[test]
fn a_session_is_its_openers_and_another_subjects_token_does_not_find_it() {
    let issuer = Issuer::start();
    let gw = guarded(&issuer, json!({}), json!({}), Value::Null);
    let alice = issuer.mint(json!({"claims": {"sub": "alice", "scope": "mcp"}}));
    let bob = issuer.mint(json!({"claims": {"sub": "bob", "scope": "mcp"}}));
    wait_ready(&gw, &alice);
    let opened = post_mcp(
        &gw,
        "/mcp",
        &[("Authorization", &bearer(&alice))],
        &initialize(1),
    );
    assert_eq!(opened.status, 200, "{}", opened.text());
    let session = opened.header("mcp-session-id").unwrap().to_string();
    assert!(
        !session.contains("alice")
            && !String::from_utf8_lossy(
                &mcp_gateway::base64::decode(
                    session.split('.').nth(1).unwrap_or(""),
                    mcp_gateway::base64::Alphabet::Url,
                )
                .unwrap_or_default()
            )
            .contains("alice"),
        "the id names no subject: {session}"
    );
    let list = |token: &str| {
        let auth = bearer(token);
        post_mcp(
            &gw,
            "/mcp",
            &[
                ("Authorization", auth.as_str()),
                ("Mcp-Session-Id", session.as_str()),
                ("MCP-Protocol-Version", "2025-11-25"),
            ],
            &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}),
        )
    };
    assert_eq!(list(&alice).status, 200, "the opener keeps using it");
    let stolen = list(&bob);
    assert_eq!(stolen.status, 404, "{}", stolen.text());
    assert_eq!(stolen.json()["id"], 7, "{}", stolen.text());
    // A new token of the same subject (a refresh) keeps the session.
    let again = issuer.mint(json!({"claims": {"sub": "alice", "scope": "mcp", "jti": "2"}}));
    assert_ne!(again, alice);
    assert_eq!(list(&again).status, 200);
}
