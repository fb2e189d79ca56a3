//! The OAuth 2.1 fixture (`tests/interop/oauth_server.py`: two authorization servers and an MCP
//! server they protect, one Python process built on the official SDK) checked from Rust with
//! plain HTTP over loopback, so the gateway's OAuth client tests can trust what it does.
//!
//! Covered: the 401 challenge (no token, a bad token) and its scope; the protected resource
//! metadata at both well-known URLs; the authorization server metadata (and OpenID discovery),
//! with and without DCR, for either client auth method; the authorization code flow done by hand
//! (register → authorize → token → initialize → `whoami` over Streamable HTTP) with PKCE S256,
//! `state`, `iss`, `resource` and loopback redirect URIs on any port, and each of its refusals;
//! confidential clients held to the advertised auth method; refresh with and without rotation;
//! client credentials; the 403 `insufficient_scope` step-up for `admin`; `/control/move` to the
//! second authorization server (sessions tied to the credential that opened them); Client ID
//! Metadata Documents; and the SDK's own OAuth clients (`tests/interop/oauth_selftest.py`:
//! DCR, a pre-registered client, client credentials, each with its step-up) passing against it.
//! Every fixture is killed on drop.

mod util;

use mcp_gateway::base64::{encode, Alphabet};
use mcp_gateway::http::percent_decode;
use serde_json::{json, Value};
use std::process::Command;
use util::oauth::{get, request, Fixture};
use util::HttpResponse;

fn post_json(url: &str, body: &Value) -> HttpResponse {
    request(
        "POST",
        url,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// `application/x-www-form-urlencoded` / query-string encoding.
fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The query parameter `name` of `url`, decoded.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k, true)? == name).then(|| percent_decode(v, true))?
    })
}

/// A PKCE pair: a random verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    let verifier = encode(&bytes, Alphabet::Url);
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    (verifier, encode(digest.as_ref(), Alphabet::Url))
}

/// How a client authenticates at the token endpoint.
#[derive(Clone)]
enum ClientAuth {
    Basic(String, String),
    Post(String, String),
    Public(String),
}

impl ClientAuth {
    fn id(&self) -> &str {
        match self {
            ClientAuth::Basic(id, _) | ClientAuth::Post(id, _) | ClientAuth::Public(id) => id,
        }
    }
}

/// A token request: `fields` plus the client's authentication.
fn token(issuer: &str, auth: &ClientAuth, fields: &[(&str, &str)]) -> HttpResponse {
    let mut fields = fields.to_vec();
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    let basic;
    match auth {
        ClientAuth::Basic(id, secret) => {
            basic = format!(
                "Basic {}",
                encode(
                    format!("{}:{}", escape(id), escape(secret)).as_bytes(),
                    Alphabet::Standard
                )
            );
            headers.push(("Authorization", &basic));
        }
        ClientAuth::Post(id, secret) => {
            fields.push(("client_id", id));
            fields.push(("client_secret", secret));
        }
        ClientAuth::Public(id) => fields.push(("client_id", id)),
    }
    request(
        "POST",
        &format!("{issuer}/token"),
        &headers,
        form(&fields).as_bytes(),
    )
}

/// Asserts an RFC 6749 §5.2 error answer.
fn assert_oauth_error(answer: &HttpResponse, status: u16, error: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    assert_eq!(answer.json()["error"], error, "{}", answer.text());
    assert!(answer.json()["error_description"].is_string());
}

const REDIRECT: &str = "http://127.0.0.1:49152/callback";

/// Registers a client (DCR) and returns the registration answer.
fn register(issuer: &str, body: Value) -> Value {
    let answer = post_json(&format!("{issuer}/register"), &body);
    assert_eq!(answer.status, 201, "{}", answer.text());
    answer.json()
}

fn register_public(issuer: &str) -> ClientAuth {
    let answer = register(
        issuer,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
               "client_name": "rust test"}),
    );
    assert_eq!(answer["token_endpoint_auth_method"], "none");
    assert!(answer.get("client_secret").is_none());
    ClientAuth::Public(answer["client_id"].as_str().unwrap().to_string())
}

/// The authorization request's answer (not followed).
fn authorize(issuer: &str, params: &[(&str, &str)]) -> HttpResponse {
    get(&format!("{issuer}/authorize?{}", form(params)))
}

/// The standard authorization parameters for `client` (PKCE S256, state, resource, scope).
fn authorize_params<'a>(
    fx: &'a Fixture,
    client_id: &'a str,
    redirect: &'a str,
    challenge: &'a str,
    scope: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("state", "st-123"),
        ("resource", &fx.mcp),
        ("scope", scope),
    ]
}

/// Authorizes `client` at `issuer` for `scope` through `redirect` and returns (code, verifier),
/// checking the redirect's code, state and iss.
fn get_code(
    fx: &Fixture,
    issuer: &str,
    client: &ClientAuth,
    redirect: &str,
    scope: &str,
) -> (String, String) {
    let (verifier, challenge) = pkce();
    let answer = authorize(
        issuer,
        &authorize_params(fx, client.id(), redirect, &challenge, scope),
    );
    assert_eq!(answer.status, 302, "{}", answer.text());
    let location = answer.header("location").unwrap();
    assert!(location.starts_with(redirect), "{location}");
    assert_eq!(query_param(location, "state").as_deref(), Some("st-123"));
    assert_eq!(query_param(location, "iss").as_deref(), Some(issuer));
    assert_eq!(query_param(location, "error"), None, "{location}");
    (query_param(location, "code").unwrap(), verifier)
}

/// The whole authorization code flow; returns the token answer.
fn code_flow(fx: &Fixture, issuer: &str, client: &ClientAuth, scope: &str) -> Value {
    let (code, verifier) = get_code(fx, issuer, client, REDIRECT, scope);
    let answer = token(
        issuer,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("resource", &fx.mcp),
        ],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let tokens = answer.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], scope);
    tokens
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

/// An MCP Streamable HTTP session carrying a bearer token.
struct Mcp<'a> {
    url: &'a str,
    token: String,
    session: Option<String>,
    next_id: u64,
}

impl<'a> Mcp<'a> {
    fn new(fx: &'a Fixture, token: &str) -> Mcp<'a> {
        Mcp {
            url: &fx.mcp,
            token: token.to_string(),
            session: None,
            next_id: 1,
        }
    }

    fn post(&self, message: &Value) -> HttpResponse {
        let bearer = format!("Bearer {}", self.token);
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Authorization", bearer.as_str()),
        ];
        if let Some(session) = &self.session {
            headers.push(("Mcp-Session-Id", session));
            headers.push(("MCP-Protocol-Version", "2025-11-25"));
        }
        request("POST", self.url, &headers, message.to_string().as_bytes())
    }

    /// Sends a request; returns the HTTP answer and the JSON-RPC response in it (if any).
    fn call(&mut self, method: &str, params: Value) -> (HttpResponse, Option<Value>) {
        let id = self.next_id;
        self.next_id += 1;
        let answer = self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method,
                                       "params": params}));
        let reply = if answer.status == 200 {
            util::mcp_messages(&answer)
                .into_iter()
                .find(|m| m["id"] == id)
        } else {
            None
        };
        (answer, reply)
    }

    /// initialize + notifications/initialized.
    fn initialize(&mut self) {
        let (answer, reply) = self.call(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "oauth-fixture-test", "version": "1"}}),
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(reply.unwrap()["result"]["serverInfo"].is_object());
        self.session = Some(answer.header("mcp-session-id").unwrap().to_string());
        let note = self.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert_eq!(note.status, 202, "{}", note.text());
    }

    /// tools/call `name`: the HTTP answer and the first text content when it succeeded.
    fn tool(&mut self, name: &str, arguments: Value) -> (HttpResponse, Option<String>) {
        let (answer, reply) =
            self.call("tools/call", json!({"name": name, "arguments": arguments}));
        let text = reply.map(|r| {
            assert_eq!(r["result"]["isError"], false, "{r}");
            r["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        });
        (answer, text)
    }
}

/// initialize + `whoami` with `token`: its JSON answer.
fn whoami(fx: &Fixture, token: &str) -> Value {
    let mut mcp = Mcp::new(fx, token);
    mcp.initialize();
    let (answer, text) = mcp.tool("whoami", json!({}));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let who: Value = serde_json::from_str(&text.unwrap()).unwrap();
    assert_eq!(who["token_suffix"], token[token.len() - 6..]);
    who
}

/// A POST of initialize with `authorization` (or none): the HTTP answer.
fn bare_initialize(fx: &Fixture, authorization: Option<&str>) -> HttpResponse {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    if let Some(value) = authorization {
        headers.push(("Authorization", value));
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                      "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                 "clientInfo": {"name": "t", "version": "1"}}});
    request("POST", &fx.mcp, &headers, body.to_string().as_bytes())
}

#[test]
fn challenge_and_metadata_documents() {
    let fx = Fixture::start(&["--client", "c1:s1"]);
    let metadata_url = fx.metadata_url();

    let none = bare_initialize(&fx, None);
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("www-authenticate").unwrap(),
        format!(r#"Bearer resource_metadata="{metadata_url}", scope="mcp""#)
    );
    let bad = bare_initialize(&fx, Some("Bearer not-a-token"));
    assert_eq!(bad.status, 401);
    let challenge = bad.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with(r#"Bearer error="invalid_token""#),
        "{challenge}"
    );
    assert!(challenge.contains(&format!(r#"resource_metadata="{metadata_url}""#)));
    assert!(challenge.ends_with(r#"scope="mcp""#), "{challenge}");

    for url in [
        metadata_url.clone(),
        format!("{}/.well-known/oauth-protected-resource", fx.base()),
    ] {
        let prm = get(&url);
        assert_eq!(prm.status, 200, "{url}");
        let prm = prm.json();
        assert_eq!(prm["resource"], fx.mcp);
        assert_eq!(prm["authorization_servers"], json!([fx.issuer]));
        assert_eq!(prm["scopes_supported"], json!(["mcp"]));
    }

    let asm = get(&format!(
        "{}/.well-known/oauth-authorization-server",
        fx.issuer
    ));
    assert_eq!(asm.status, 200);
    let asm = asm.json();
    assert_eq!(asm["issuer"], fx.issuer);
    assert_eq!(
        asm["authorization_endpoint"],
        format!("{}/authorize", fx.issuer)
    );
    assert_eq!(asm["token_endpoint"], format!("{}/token", fx.issuer));
    assert_eq!(
        asm["registration_endpoint"],
        format!("{}/register", fx.issuer)
    );
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(asm["response_types_supported"], json!(["code"]));
    assert_eq!(
        asm["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        asm["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "none"])
    );
    assert_eq!(asm["authorization_response_iss_parameter_supported"], true);
    assert_eq!(asm["scopes_supported"], json!(["mcp", "admin"]));
    assert!(asm.get("client_id_metadata_document_supported").is_none());
    let oidc = get(&format!("{}/.well-known/openid-configuration", fx.issuer));
    assert_eq!(oidc.json(), asm);
    let asm2 = get(&format!(
        "{}/.well-known/oauth-authorization-server",
        fx.issuer2
    ))
    .json();
    assert_eq!(asm2["issuer"], fx.issuer2);
    assert_ne!(fx.issuer, fx.issuer2);

    // Both refusals were logged with the header the server saw.
    let seen: Vec<Value> = fx
        .events_of("mcp")
        .iter()
        .map(|e| json!([e["authorization"], e["status"], e["method"]]))
        .collect();
    assert_eq!(
        seen,
        vec![
            json!([null, 401, "initialize"]),
            json!(["Bearer not-a-token", 401, "initialize"])
        ]
    );
}

#[test]
fn metadata_without_dcr_with_post_and_more_scopes() {
    let fx = Fixture::start(&[
        "--no-dcr",
        "--auth-method",
        "post",
        "--scopes",
        "mcp files",
        "--client",
        "c1:s1",
    ]);
    let asm = get(&format!(
        "{}/.well-known/oauth-authorization-server",
        fx.issuer
    ))
    .json();
    assert!(asm.get("registration_endpoint").is_none(), "{asm}");
    assert_eq!(
        asm["token_endpoint_auth_methods_supported"],
        json!(["client_secret_post", "none"])
    );
    assert_eq!(asm["scopes_supported"], json!(["mcp", "files", "admin"]));
    let refused = post_json(
        &format!("{}/register", fx.issuer),
        &json!({"redirect_uris": [REDIRECT]}),
    );
    assert_eq!(refused.status, 404);
    // The second authorization server always registers.
    let asm2 = get(&format!(
        "{}/.well-known/oauth-authorization-server",
        fx.issuer2
    ))
    .json();
    assert_eq!(
        asm2["registration_endpoint"],
        format!("{}/register", fx.issuer2)
    );

    let none = bare_initialize(&fx, None);
    assert_eq!(
        none.header("www-authenticate").unwrap(),
        format!(
            r#"Bearer resource_metadata="{}", scope="mcp files""#,
            fx.metadata_url()
        )
    );
    let prm = get(&fx.metadata_url()).json();
    assert_eq!(prm["scopes_supported"], json!(["mcp", "files"]));

    // A token with only part of the required scopes is refused with 403.
    let c1 = ClientAuth::Post("c1".into(), "s1".into());
    let partial = code_flow(&fx, &fx.issuer, &c1, "mcp");
    let refused = bare_initialize(&fx, Some(&format!("Bearer {}", access(&partial))));
    assert_eq!(refused.status, 403);
    assert!(refused
        .header("www-authenticate")
        .unwrap()
        .starts_with(r#"Bearer error="insufficient_scope", scope="mcp files""#));
    let full = code_flow(&fx, &fx.issuer, &c1, "mcp files");
    assert_eq!(
        whoami(&fx, access(&full))["scopes"],
        json!(["mcp", "files"])
    );
}

#[test]
fn authorization_code_flow_by_hand() {
    let fx = Fixture::start(&[]);
    let client = register_public(&fx.issuer);

    // A loopback redirect URI matches on any port (RFC 8252), and the code is bound to it.
    let other_port = "http://127.0.0.1:50001/callback";
    let (code, verifier) = get_code(&fx, &fx.issuer, &client, other_port, "mcp");
    let exchange = |code: &str, redirect: &str, verifier: &str, resource: &str| {
        token(
            &fx.issuer,
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
                ("resource", resource),
            ],
        )
    };
    assert_oauth_error(
        &exchange(&code, REDIRECT, &verifier, &fx.mcp),
        400,
        "invalid_grant",
    );
    // A code is single use: refused once, it is gone.
    assert_oauth_error(
        &exchange(&code, other_port, &verifier, &fx.mcp),
        400,
        "invalid_grant",
    );

    let (code, _) = get_code(&fx, &fx.issuer, &client, REDIRECT, "mcp");
    let (wrong_verifier, _) = pkce();
    assert_oauth_error(
        &exchange(&code, REDIRECT, &wrong_verifier, &fx.mcp),
        400,
        "invalid_grant",
    );
    let (code, verifier) = get_code(&fx, &fx.issuer, &client, REDIRECT, "mcp");
    assert_oauth_error(
        &exchange(&code, REDIRECT, &verifier, "http://127.0.0.1:1/other"),
        400,
        "invalid_target",
    );

    let tokens = code_flow(&fx, &fx.issuer, &client, "mcp");
    assert_eq!(tokens["expires_in"], 3600);
    assert!(tokens["refresh_token"].is_string());
    let who = whoami(&fx, access(&tokens));
    assert_eq!(who["client_id"], client.id());
    assert_eq!(who["scopes"], json!(["mcp"]));
    let mut mcp = Mcp::new(&fx, access(&tokens));
    mcp.initialize();
    assert_eq!(mcp.tool("add", json!({"a": 2, "b": 40})).1.unwrap(), "42");

    // The authorization endpoint's refusals: redirected with error, state and iss when the
    // client and redirect URI are good, a 400 page otherwise.
    let (_, challenge) = pkce();
    let good = authorize_params(&fx, client.id(), REDIRECT, &challenge, "mcp");
    let without = |name: &str| -> Vec<(&str, &str)> {
        good.iter().copied().filter(|(k, _)| *k != name).collect()
    };
    let with = |name: &'static str, value: &'static str| -> Vec<(&str, &str)> {
        let mut params = without(name);
        params.push((name, value));
        params
    };
    for (params, error) in [
        (without("code_challenge"), "invalid_request"),
        (without("code_challenge_method"), "invalid_request"),
        (with("code_challenge_method", "plain"), "invalid_request"),
        (without("resource"), "invalid_request"),
        (with("resource", "http://127.0.0.1:1/mcp"), "invalid_target"),
        (with("response_type", "token"), "unsupported_response_type"),
        (with("scope", "mcp nonsense"), "invalid_scope"),
    ] {
        let answer = authorize(&fx.issuer, &params);
        assert_eq!(answer.status, 302, "{params:?}: {}", answer.text());
        let location = answer.header("location").unwrap();
        assert!(location.starts_with(REDIRECT), "{location}");
        assert_eq!(
            query_param(location, "error").as_deref(),
            Some(error),
            "{params:?}"
        );
        assert_eq!(query_param(location, "state").as_deref(), Some("st-123"));
        assert_eq!(
            query_param(location, "iss").as_deref(),
            Some(fx.issuer.as_str())
        );
        assert_eq!(query_param(location, "code"), None);
    }
    for params in [
        with("redirect_uri", "http://127.0.0.1:49152/elsewhere"),
        with("redirect_uri", "https://attacker.example/callback"),
        without("redirect_uri"),
        with("client_id", "nobody"),
    ] {
        let answer = authorize(&fx.issuer, &params);
        assert_eq!(answer.status, 400, "{params:?}");
        assert!(answer.header("location").is_none());
        assert_eq!(answer.json()["error"], "invalid_request");
    }

    // Unknown grant types and bad registrations are refused with the RFC codes.
    assert_oauth_error(
        &token(&fx.issuer, &client, &[("grant_type", "password")]),
        400,
        "unsupported_grant_type",
    );
    assert_oauth_error(
        &token(&fx.issuer, &client, &[("grant_type", "client_credentials")]),
        400,
        "unsupported_grant_type",
    );
    assert_oauth_error(
        &token(
            &fx.issuer,
            &ClientAuth::Public("nobody".into()),
            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
        ),
        401,
        "invalid_client",
    );
    let bad = post_json(
        &format!("{}/register", fx.issuer),
        &json!({"client_name": "x"}),
    );
    assert_eq!(bad.status, 400);

    let events = fx.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| e["kind"] == "register")
            .map(|e| e["status"].clone())
            .collect::<Vec<_>>(),
        vec![json!(201), json!(400)]
    );
    let tokens_ok: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "token" && e["status"] == 200)
        .collect();
    assert_eq!(tokens_ok.len(), 1);
    assert_eq!(tokens_ok[0]["grant_type"], "authorization_code");
    assert_eq!(tokens_ok[0]["auth_method"], "none");
    assert_eq!(tokens_ok[0]["as"], 1);
    let bearer = format!("Bearer {}", access(&tokens));
    let whoami_event = events
        .iter()
        .find(|e| e["kind"] == "mcp" && e["tool"] == "whoami")
        .unwrap();
    assert_eq!(whoami_event["authorization"], bearer);
    assert_eq!(whoami_event["client_id"], client.id());
    assert_eq!(whoami_event["status"], 200);
}

#[test]
fn confidential_clients_use_the_advertised_method() {
    let fx = Fixture::start(&["--client", "c1:s1"]);
    let basic = ClientAuth::Basic("c1".into(), "s1".into());
    let tokens = code_flow(&fx, &fx.issuer, &basic, "mcp");
    assert_eq!(whoami(&fx, access(&tokens))["client_id"], "c1");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let refresh_with = |auth: &ClientAuth| {
        token(
            &fx.issuer,
            auth,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
    };
    let post = refresh_with(&ClientAuth::Post("c1".into(), "s1".into()));
    assert_oauth_error(&post, 401, "invalid_client");
    let wrong = refresh_with(&ClientAuth::Basic("c1".into(), "nope".into()));
    assert_oauth_error(&wrong, 401, "invalid_client");
    assert!(wrong
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic"));
    assert_oauth_error(
        &refresh_with(&ClientAuth::Public("c1".into())),
        401,
        "invalid_client",
    );
    assert_eq!(refresh_with(&basic).status, 200);

    // A DCR client asking for client_secret_post is registered for the advertised method.
    let registered = register(
        &fx.issuer,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post"}),
    );
    assert_eq!(
        registered["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    let dcr = ClientAuth::Basic(
        registered["client_id"].as_str().unwrap().into(),
        registered["client_secret"].as_str().unwrap().into(),
    );
    let tokens = code_flow(&fx, &fx.issuer, &dcr, "mcp");
    assert_eq!(whoami(&fx, access(&tokens))["client_id"], dcr.id());
    let methods: Vec<Value> = fx
        .events_of("token")
        .iter()
        .map(|e| json!([e["auth_method"], e["status"]]))
        .collect();
    assert_eq!(
        methods,
        vec![
            json!(["basic", 200]),
            json!(["post", 401]),
            json!(["basic", 401]),
            json!(["none", 401]),
            json!(["basic", 200]),
            json!(["basic", 200]),
        ]
    );

    let fx = Fixture::start(&["--client", "c1:s1", "--auth-method", "post"]);
    let post = ClientAuth::Post("c1".into(), "s1".into());
    let (code, verifier) = get_code(&fx, &fx.issuer, &post, REDIRECT, "mcp");
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("resource", fx.mcp.as_str()),
    ];
    assert_oauth_error(&token(&fx.issuer, &basic, &fields), 401, "invalid_client");
    // The refusal did not spend the code.
    let answer = token(&fx.issuer, &post, &fields);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(whoami(&fx, access(&answer.json()))["client_id"], "c1");
}

#[test]
fn refresh_rotates_and_the_old_token_is_refused() {
    let fx = Fixture::start(&[
        "--client",
        "c1:s1",
        "--rotate-refresh",
        "--token-lifetime",
        "120",
    ]);
    let c1 = ClientAuth::Basic("c1".into(), "s1".into());
    let first = code_flow(&fx, &fx.issuer, &c1, "mcp");
    assert_eq!(first["expires_in"], 120);
    let mut session = Mcp::new(&fx, access(&first));
    session.initialize();
    assert_eq!(fx.control("expire"), json!({"expired": 1}));
    let (answer, _) = session.tool("add", json!({"a": 1, "b": 2}));
    assert_eq!(answer.status, 401);
    let expired = bare_initialize(&fx, Some(&format!("Bearer {}", access(&first))));
    assert_eq!(expired.status, 401);
    assert!(expired
        .header("www-authenticate")
        .unwrap()
        .starts_with(r#"Bearer error="invalid_token""#));

    let old = first["refresh_token"].as_str().unwrap();
    let refresh = |refresh_token: &str| {
        token(
            &fx.issuer,
            &c1,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("resource", &fx.mcp),
            ],
        )
    };
    let second = refresh(old);
    assert_eq!(second.status, 200, "{}", second.text());
    let second = second.json();
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_ne!(access(&second), access(&first));
    assert_eq!(whoami(&fx, access(&second))["client_id"], "c1");
    // The refreshed token carries on the session the expired one opened.
    session.token = access(&second).to_string();
    assert_eq!(session.tool("add", json!({"a": 1, "b": 2})).1.unwrap(), "3");
    assert_oauth_error(&refresh(old), 400, "invalid_grant");
    let third = refresh(new);
    assert_eq!(third.status, 200);
    assert_oauth_error(&refresh(new), 400, "invalid_grant");
    // A refresh may narrow the scopes, never widen them.
    let narrowed = token(
        &fx.issuer,
        &c1,
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                third.json()["refresh_token"].as_str().unwrap(),
            ),
            ("scope", "mcp admin"),
        ],
    );
    assert_oauth_error(&narrowed, 400, "invalid_scope");

    let refreshes: Vec<Value> = fx
        .events_of("token")
        .iter()
        .filter(|e| e["grant_type"] == "refresh_token")
        .map(|e| json!([e["status"], e["error"]]))
        .collect();
    assert_eq!(
        refreshes,
        vec![
            json!([200, null]),
            json!([400, "invalid_grant"]),
            json!([200, null]),
            json!([400, "invalid_grant"]),
            json!([400, "invalid_scope"]),
        ]
    );

    // Without --rotate-refresh the same refresh token comes back and stays good.
    let fx = Fixture::start(&["--client", "c1:s1"]);
    let first = code_flow(&fx, &fx.issuer, &c1, "mcp");
    let old = first["refresh_token"].as_str().unwrap();
    for _ in 0..2 {
        let again = token(
            &fx.issuer,
            &c1,
            &[("grant_type", "refresh_token"), ("refresh_token", old)],
        );
        assert_eq!(again.status, 200);
        assert_eq!(again.json()["refresh_token"], old);
        assert_eq!(whoami(&fx, access(&again.json()))["client_id"], "c1");
    }
}

#[test]
fn client_credentials_for_confidential_clients() {
    let fx = Fixture::start(&["--client-credentials", "--client", "m2m:sec"]);
    let asm = get(&format!(
        "{}/.well-known/oauth-authorization-server",
        fx.issuer
    ))
    .json();
    assert_eq!(
        asm["grant_types_supported"],
        json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    let m2m = ClientAuth::Basic("m2m".into(), "sec".into());
    let answer = token(
        &fx.issuer,
        &m2m,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "mcp"),
            ("resource", &fx.mcp),
        ],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let tokens = answer.json();
    assert!(tokens.get("refresh_token").is_none());
    assert_eq!(tokens["scope"], "mcp");
    assert_eq!(whoami(&fx, access(&tokens))["client_id"], "m2m");

    assert_oauth_error(
        &token(
            &fx.issuer,
            &m2m,
            &[("grant_type", "client_credentials"), ("scope", "mcp")],
        ),
        400,
        "invalid_request",
    );
    assert_oauth_error(
        &token(
            &fx.issuer,
            &ClientAuth::Basic("m2m".into(), "wrong".into()),
            &[("grant_type", "client_credentials"), ("resource", &fx.mcp)],
        ),
        401,
        "invalid_client",
    );
    // A public client is not allowed the grant.
    let public = register(
        &fx.issuer,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
               "grant_types": ["authorization_code", "client_credentials"]}),
    );
    assert_oauth_error(
        &token(
            &fx.issuer,
            &ClientAuth::Public(public["client_id"].as_str().unwrap().into()),
            &[("grant_type", "client_credentials"), ("resource", &fx.mcp)],
        ),
        400,
        "unauthorized_client",
    );
    let grants: Vec<Value> = fx
        .events_of("token")
        .iter()
        .map(|e| json!([e["grant_type"], e["client_id"], e["status"]]))
        .collect();
    assert_eq!(grants[0], json!(["client_credentials", "m2m", 200]));
    assert_eq!(grants.len(), 4);
}

#[test]
fn admin_needs_a_step_up_to_scope_admin() {
    let fx = Fixture::start(&["--client", "c1:s1"]);
    let c1 = ClientAuth::Basic("c1".into(), "s1".into());
    let plain = code_flow(&fx, &fx.issuer, &c1, "mcp");
    let mut mcp = Mcp::new(&fx, access(&plain));
    mcp.initialize();
    let (refused, text) = mcp.tool("admin", json!({}));
    assert_eq!(refused.status, 403);
    assert!(text.is_none());
    assert_eq!(
        refused.header("www-authenticate").unwrap(),
        format!(
            r#"Bearer error="insufficient_scope", scope="mcp admin", resource_metadata="{}""#,
            fx.metadata_url()
        )
    );
    // Other tools still work with that token.
    assert_eq!(mcp.tool("add", json!({"a": 1, "b": 1})).1.unwrap(), "2");

    let stepped = code_flow(&fx, &fx.issuer, &c1, "mcp admin");
    let mut mcp = Mcp::new(&fx, access(&stepped));
    mcp.initialize();
    let (answer, text) = mcp.tool("admin", json!({}));
    assert_eq!(answer.status, 200);
    assert_eq!(text.unwrap(), "admin ok");
    let admin_calls: Vec<Value> = fx
        .events_of("mcp")
        .iter()
        .filter(|e| e["tool"] == "admin")
        .map(|e| json!([e["status"], e["scope"]]))
        .collect();
    assert_eq!(
        admin_calls,
        vec![json!([403, "mcp"]), json!([200, "mcp admin"])]
    );
}

#[test]
fn move_to_the_second_authorization_server() {
    let fx = Fixture::start(&[]);
    let client = register_public(&fx.issuer);
    let tokens = code_flow(&fx, &fx.issuer, &client, "mcp");
    assert_eq!(whoami(&fx, access(&tokens))["client_id"], client.id());
    let mut session = Mcp::new(&fx, access(&tokens));
    session.initialize();

    assert_eq!(fx.control("move"), json!({"issuer": fx.issuer2}));
    let refused = bare_initialize(&fx, Some(&format!("Bearer {}", access(&tokens))));
    assert_eq!(refused.status, 401);
    let challenge = refused.header("www-authenticate").unwrap();
    assert!(challenge.starts_with(r#"Bearer error="invalid_token""#));
    let metadata_url = fx.metadata_url();
    assert!(challenge.contains(&format!(r#"resource_metadata="{metadata_url}""#)));
    let prm = get(&metadata_url).json();
    assert_eq!(prm["authorization_servers"], json!([fx.issuer2]));
    assert_eq!(prm["resource"], fx.mcp);

    // The first server's grants are gone, and the second does not know its clients.
    assert_oauth_error(
        &token(
            &fx.issuer,
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        ),
        400,
        "invalid_grant",
    );
    let (_, challenge) = pkce();
    let unknown = authorize(
        &fx.issuer2,
        &authorize_params(&fx, client.id(), REDIRECT, &challenge, "mcp"),
    );
    assert_eq!(unknown.status, 400);

    let client2 = register_public(&fx.issuer2);
    let tokens2 = code_flow(&fx, &fx.issuer2, &client2, "mcp");
    assert_eq!(whoami(&fx, access(&tokens2))["client_id"], client2.id());
    // The session the first server's token opened is not the new credential's.
    session.token = access(&tokens2).to_string();
    assert_eq!(session.tool("whoami", json!({})).0.status, 404);
    let registrations: Vec<Value> = fx
        .events_of("register")
        .iter()
        .map(|e| json!([e["as"], e["client_id"]]))
        .collect();
    assert_eq!(
        registrations,
        vec![json!([1, client.id()]), json!([2, client2.id()])]
    );
    let whoamis: Vec<Value> = fx
        .events_of("mcp")
        .iter()
        .filter(|e| e["tool"] == "whoami")
        .map(|e| json!([e["as"], e["status"]]))
        .collect();
    assert_eq!(
        whoamis,
        vec![json!([1, 200]), json!([2, 200]), json!([2, 404])]
    );
}

#[test]
fn client_id_metadata_documents() {
    let fx = Fixture::start(&[
        "--cimd",
        "--cimd-redirect",
        "http://127.0.0.1:49152/callback",
        "--no-dcr",
    ]);
    let asm = get(&format!(
        "{}/.well-known/oauth-authorization-server",
        fx.issuer
    ))
    .json();
    assert_eq!(asm["client_id_metadata_document_supported"], true);
    let document_url = format!("{}/client.json", fx.base());
    let document = get(&document_url).json();
    assert_eq!(document["client_id"], document_url);
    assert_eq!(document["redirect_uris"], json!([REDIRECT]));
    assert_eq!(document["token_endpoint_auth_method"], "none");

    let client = ClientAuth::Public(document_url.clone());
    // Any port of the loopback redirect URI the document lists.
    let (code, verifier) = get_code(
        &fx,
        &fx.issuer,
        &client,
        "http://127.0.0.1:50123/callback",
        "mcp",
    );
    let answer = token(
        &fx.issuer,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:50123/callback"),
            ("code_verifier", &verifier),
            ("resource", &fx.mcp),
        ],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        whoami(&fx, access(&answer.json()))["client_id"],
        document_url
    );

    // A redirect URI the document does not list, a document that names another client, and a
    // URL with no document are all refused without a redirect.
    let (_, challenge) = pkce();
    let other_path = authorize(
        &fx.issuer,
        &authorize_params(
            &fx,
            &document_url,
            "http://127.0.0.1:49152/x",
            &challenge,
            "mcp",
        ),
    );
    assert_eq!(other_path.status, 400);
    let mismatched = format!("{}/.well-known/oauth-protected-resource", fx.base());
    let nowhere = format!("{}/nothing.json", fx.base());
    for client_id in [&mismatched, &nowhere] {
        let answer = authorize(
            &fx.issuer,
            &authorize_params(&fx, client_id, REDIRECT, &challenge, "mcp"),
        );
        assert_eq!(answer.status, 400, "{client_id}");
    }

    // Without --cimd a URL is just an unknown client id.
    let plain = Fixture::start(&["--cimd-redirect", REDIRECT]);
    let asm = get(&format!(
        "{}/.well-known/oauth-authorization-server",
        plain.issuer
    ))
    .json();
    assert!(asm.get("client_id_metadata_document_supported").is_none());
    let url = format!("{}/client.json", plain.base());
    let answer = authorize(
        &plain.issuer,
        &authorize_params(&plain, &url, REDIRECT, &challenge, "mcp"),
    );
    assert_eq!(answer.status, 400);
}

/// Runs oauth_selftest.py (the SDK's own OAuth client) against `fx`; returns its check names.
fn selftest(fx: &Fixture, args: &[&str]) -> Vec<Value> {
    let output = Command::new(util::python())
        .arg(util::interop_script("oauth_selftest.py"))
        .arg(&fx.mcp)
        .args(args)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .expect("run oauth_selftest.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "oauth_selftest.py {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_sdk_oauth_client_passes() {
    for method in ["basic", "post"] {
        let fx = Fixture::start(&[
            "--client",
            "c1:s1",
            "--auth-method",
            method,
            "--client-credentials",
        ]);
        let dcr = selftest(&fx, &["dcr"]);
        assert_eq!(dcr[0]["check"], "whoami");
        assert_eq!(dcr[0]["registered"], true);
        assert_eq!(dcr[2]["check"], "admin");
        assert_eq!(dcr[2]["scope"], "mcp admin");
        let pre = selftest(&fx, &["preregistered", "c1:s1", method]);
        assert_eq!(pre[0]["client_id"], "c1");
        assert_eq!(pre[2]["result"], "admin ok");
        let machine = selftest(&fx, &["client_credentials", "c1:s1", method, &fx.issuer]);
        assert_eq!(machine[0]["client_id"], "c1");
        assert_eq!(machine[2]["scope"], "mcp admin");
        // One registration (the DCR run), and every token request used the method asked for:
        // a code and a step-up code per code run, two client credentials grants.
        assert_eq!(fx.events_of("register").len(), 1);
        let tokens = fx.events_of("token");
        assert!(tokens
            .iter()
            .all(|e| e["auth_method"] == method && e["status"] == 200));
        let grants: Vec<&Value> = tokens.iter().map(|e| &e["grant_type"]).collect();
        assert_eq!(
            grants,
            [
                "authorization_code",
                "authorization_code",
                "authorization_code",
                "authorization_code",
                "client_credentials",
                "client_credentials"
            ]
        );
    }
}
