//! Talking to an authorization server's endpoints: dynamic client registration (RFC 7591), the
//! token endpoint for each grant the gateway uses (authorization code with PKCE, refresh token,
//! client credentials), with the `resource` parameter (RFC 8707) on every token request and the
//! client authentication the server advertises (`client_secret_basic`, `client_secret_post`,
//! `none`).

use super::discovery::ServerMetadata;
use super::http;
use super::store::{self, Client, Tokens};
use crate::base64::{encode, Alphabet};
use crate::downstream::remote::url::Url;
use serde_json::{json, Value};
use std::time::Instant;

/// A grant the token endpoint is asked for.
pub enum Grant<'a> {
    Code {
        code: &'a str,
        redirect_uri: &'a str,
        verifier: &'a str,
    },
    Refresh {
        refresh_token: &'a str,
    },
    ClientCredentials {
        scope: Option<&'a str>,
    },
}

/// Why tokens could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantError {
    /// The server refused the grant or the client (`invalid_grant`, `invalid_client`, …): asking
    /// again the same way will not help.
    Refused(String),
    /// It could not be asked (unreachable, an unreadable answer): maybe later.
    Failed(String),
}

impl std::fmt::Display for GrantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrantError::Refused(why) | GrantError::Failed(why) => f.write_str(why),
        }
    }
}

/// Asks the token endpoint for tokens; a refresh keeps the old refresh token when the server
/// sends no new one.
pub fn tokens(
    token_endpoint: &str,
    client: &Client,
    grant: Grant<'_>,
    resource: &str,
    deadline: Instant,
) -> Result<Tokens, GrantError> {
    let endpoint = Url::parse(token_endpoint).map_err(GrantError::Failed)?;
    let mut form: Vec<(&str, &str)> = Vec::new();
    let old_refresh = match &grant {
        Grant::Code {
            code,
            redirect_uri,
            verifier,
        } => {
            form.extend([
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ]);
            None
        }
        Grant::Refresh { refresh_token } => {
            form.extend([
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ]);
            Some(refresh_token.to_string())
        }
        Grant::ClientCredentials { scope } => {
            form.push(("grant_type", "client_credentials"));
            if let Some(scope) = scope {
                form.push(("scope", scope));
            }
            None
        }
    };
    form.push(("resource", resource));
    let basic;
    let mut headers = Vec::new();
    let secret = client.client_secret.as_deref().unwrap_or("");
    match client.auth_method.as_str() {
        "client_secret_basic" => {
            // RFC 6749 §2.3.1: both parts form-encoded before Base64.
            let pair = format!(
                "{}:{}",
                http::encode_component(&client.client_id),
                http::encode_component(secret)
            );
            basic = format!("Basic {}", encode(pair.as_bytes(), Alphabet::Standard));
            headers.push(("Authorization", basic.as_str()));
        }
        "client_secret_post" => {
            form.push(("client_id", &client.client_id));
            form.push(("client_secret", secret));
        }
        _ => form.push(("client_id", &client.client_id)),
    }
    let response =
        http::post_form(&endpoint, &form, &headers, deadline).map_err(GrantError::Failed)?;
    let body = response.json().unwrap_or(Value::Null);
    if response.status() != 200 {
        let error = body.get("error").and_then(Value::as_str).unwrap_or("");
        let description = body
            .get("error_description")
            .and_then(Value::as_str)
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let why = format!(
            "the token endpoint answered HTTP {} {error}{description}",
            response.status()
        );
        return Err(if matches!(response.status(), 400 | 401 | 403) {
            GrantError::Refused(why)
        } else {
            GrantError::Failed(why)
        });
    }
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    let Some(access_token) = text("access_token") else {
        return Err(GrantError::Failed(
            "the token endpoint's answer has no access_token".into(),
        ));
    };
    let token_type = text("token_type").unwrap_or_default();
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(GrantError::Refused(format!(
            "the token endpoint issued a {token_type:?} token, not a Bearer token"
        )));
    }
    let expires_at = body
        .get("expires_in")
        .and_then(Value::as_u64)
        .map(|s| store::now() + s);
    Ok(Tokens {
        access_token,
        issued_at: Some(store::now()),
        expires_at,
        refresh_token: text("refresh_token").or(old_refresh),
        scope: text("scope"),
    })
}

/// The token endpoint authentication for a client with (or without) a secret, among those the
/// server supports (RFC 8414's default, when it lists none, is `client_secret_basic`).
pub fn auth_method(metadata: &ServerMetadata, has_secret: bool) -> String {
    let supported = |m: &str| {
        metadata.token_auth_methods.is_empty() && m == "client_secret_basic"
            || metadata.token_auth_methods.iter().any(|s| s == m)
    };
    if !has_secret {
        return "none".into();
    }
    if supported("client_secret_basic") || !supported("client_secret_post") {
        "client_secret_basic".into()
    } else {
        "client_secret_post".into()
    }
}

/// Registers the gateway with the server (RFC 7591) for `redirect_uri`: a public client when the
/// server takes `none`, else whatever secret-based method it offers.
pub fn register(
    metadata: &ServerMetadata,
    redirect_uri: &str,
    scope: Option<&str>,
    deadline: Instant,
) -> Result<Client, String> {
    let Some(endpoint) = &metadata.registration_endpoint else {
        return Err(format!(
            "authorization server {} offers no dynamic client registration; set \"clientId\" \
             (and \"clientSecret\") in the server's \"auth\", or \"clientMetadataUrl\"",
            metadata.issuer
        ));
    };
    let endpoint = Url::parse(endpoint)?;
    let public = metadata.token_auth_methods.iter().any(|m| m == "none");
    let method = if public {
        "none".to_string()
    } else {
        auth_method(metadata, true)
    };
    // A native application (its redirect is a loopback one): OIDC servers would take a missing
    // application_type for "web" and refuse the redirect URI.
    let mut body = json!({
        "application_type": "native",
        "client_name": "mcp-gateway",
        "software_id": "mcp-gateway",
        "software_version": env!("CARGO_PKG_VERSION"),
        "token_endpoint_auth_method": method,
    });
    body["redirect_uris"] = json!([redirect_uri]);
    body["grant_types"] = json!(["authorization_code", "refresh_token"]);
    body["response_types"] = json!(["code"]);
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    let response = http::post_json(&endpoint, &body, deadline)?;
    let answer = response.json().unwrap_or(Value::Null);
    if !matches!(response.status(), 200 | 201) {
        let error = answer.get("error").and_then(Value::as_str).unwrap_or("");
        let description = answer
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(format!(
            "registering with {} failed: HTTP {} {error} {description}",
            metadata.issuer,
            response.status()
        ));
    }
    let Some(client_id) = answer.get("client_id").and_then(Value::as_str) else {
        return Err(format!(
            "registering with {}: the answer has no client_id",
            metadata.issuer
        ));
    };
    let client_secret = answer
        .get("client_secret")
        .and_then(Value::as_str)
        .map(str::to_string);
    let auth_method = answer
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            if client_secret.is_some() {
                method
            } else {
                "none".into()
            }
        });
    Ok(Client {
        client_id: client_id.to_string(),
        client_secret,
        auth_method,
        issuer: metadata.issuer.clone(),
        origin: "registered".into(),
        redirect_uri: Some(redirect_uri.to_string()),
    })
}

/// A PKCE pair (RFC 7636, S256): the verifier kept, the challenge sent.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Result<Pkce, String> {
        let verifier = random_text(32)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        Ok(Pkce {
            challenge: encode(digest.as_ref(), Alphabet::Url),
            verifier,
        })
    }
}

/// `bytes` random bytes, Base64url: for PKCE verifiers and `state`.
pub fn random_text(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    crate::upstream::session::random_bytes(&mut buf)
        .map_err(|e| format!("the system has no randomness to give: {e}"))?;
    Ok(encode(&buf, Alphabet::Url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(methods: &[&str]) -> ServerMetadata {
        ServerMetadata {
            issuer: "https://as.example".into(),
            authorization_endpoint: None,
            token_endpoint: "https://as.example/token".into(),
            registration_endpoint: None,
            token_auth_methods: methods.iter().map(|m| m.to_string()).collect(),
            code_challenge_methods: vec!["S256".into()],
            iss_on_redirect: false,
            client_metadata_documents: false,
        }
    }

    #[test]
    fn the_auth_method_is_one_the_server_takes() {
        assert_eq!(auth_method(&metadata(&[]), true), "client_secret_basic");
        assert_eq!(
            auth_method(&metadata(&["client_secret_post"]), true),
            "client_secret_post"
        );
        assert_eq!(
            auth_method(
                &metadata(&["client_secret_post", "client_secret_basic"]),
                true
            ),
            "client_secret_basic"
        );
        assert_eq!(
            auth_method(&metadata(&["client_secret_basic"]), false),
            "none"
        );
    }

    #[test]
    fn pkce_follows_rfc_7636() {
        let pkce = Pkce::new().unwrap();
        assert_eq!(pkce.verifier.len(), 43);
        assert!(pkce
            .verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)));
        // RFC 7636 appendix B.
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        );
        assert_eq!(
            encode(digest.as_ref(), Alphabet::Url),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
