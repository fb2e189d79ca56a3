//! `gateway.oauth`: the gateway as an OAuth 2.1 resource server (clients present JWT access tokens
//! an authorization server issued for it).
//!
//! Every URL is checked here so the guard never has to: the issuer and `jwksUri` are `https`, or
//! `http` to a loopback host (a test issuer, or one on the same machine), with no query or
//! fragment; `resource` is an origin only. Scopes are RFC 6749 scope tokens, so that they can be
//! written into a `WWW-Authenticate` header as they are.

use serde_json::Value;

use super::schema::{quote, Checker, Object};
use super::types::OAuthConfig;
use crate::downstream::remote::url::Url;

const KEYS: &[&str] = &[
    "issuer",
    "audience",
    "jwksUri",
    "requiredScopes",
    "resource",
];
const HINTS: &[(&str, &str)] = &[
    ("aud", "did you mean \"audience\"?"),
    ("iss", "did you mean \"issuer\"?"),
    ("scopes", "did you mean \"requiredScopes\"?"),
    ("jwks_uri", "did you mean \"jwksUri\"?"),
];

/// `gateway.oauth`, when present and valid (every problem reported).
pub(super) fn oauth(c: &mut Checker, gateway: &Object) -> Option<OAuthConfig> {
    const P: &str = "gateway.oauth";
    let v = gateway.get("oauth")?;
    let obj = c.object(v, P, "an object with issuer and audience")?;
    let before = c.problem_count();
    c.unknown_keys(obj, P, KEYS, HINTS);
    let issuer = c.field(obj, P, "issuer", |c, v, p| {
        let url = c.expanded(v, p)?;
        server_url(c, &url, p).then_some(url)
    });
    if !obj.contains_key("issuer") {
        c.report(
            "gateway.oauth.issuer",
            "is required: the authorization server's issuer URL, e.g. \"https://auth.example.com\"",
        );
    }
    let audience = c
        .field(obj, P, "audience", |c, v, p| {
            let text = c.expanded(v, p)?;
            if text.is_empty() {
                c.report(p, "must not be empty");
                return None;
            }
            Some(text)
        })
        .filter(|a| !a.is_empty());
    if !obj.contains_key("audience") {
        c.report(
            "gateway.oauth.audience",
            "is required: the `aud` value the authorization server puts in tokens for this gateway (often its URL)",
        );
    }
    let jwks_uri = c.field(obj, P, "jwksUri", |c, v, p| {
        let url = c.expanded(v, p)?;
        server_url(c, &url, p).then_some(url)
    });
    let required_scopes = c
        .field(obj, P, "requiredScopes", |c, v, p| {
            c.list(v, p, "a list of scope names", scope)
        })
        .unwrap_or_default();
    let resource = c.field(obj, P, "resource", |c, v, p| {
        let text = c.expanded(v, p)?;
        origin(c, &text, p)
    });
    if c.problem_count() != before {
        return None;
    }
    Some(OAuthConfig {
        issuer: issuer?,
        audience: audience?,
        jwks_uri,
        required_scopes,
        resource,
        profile_scopes: Vec::new(),
    })
}

/// An authorization server's URL: https, or http on loopback; no query, no fragment.
fn server_url(c: &mut Checker, text: &str, path: &str) -> bool {
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            c.report(path, e);
            return false;
        }
    };
    if text.contains(['?', '#']) {
        c.report(
            path,
            format!("{} must have no query or fragment", quote(text)),
        );
        return false;
    }
    if crate::oauth::http::allowed(&url).is_err() {
        c.report(
            path,
            format!(
                "{} must be https (plain http is accepted only for localhost or a loopback address)",
                quote(text)
            ),
        );
        return false;
    }
    true
}

/// `gateway.oauth.resource`: the gateway's public origin, e.g. `https://mcp.example.com`.
fn origin(c: &mut Checker, text: &str, path: &str) -> Option<String> {
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            c.report(path, e);
            return None;
        }
    };
    if url.path != "/" || text.contains(['?', '#']) {
        c.report(
            path,
            format!(
                "{} must be an origin only (scheme, host and port, e.g. \"https://mcp.example.com\"): the endpoint paths are added to it",
                quote(text)
            ),
        );
        return None;
    }
    Some(text.trim().trim_end_matches('/').to_string())
}

/// One scope token (RFC 6749 §3.3: printable ASCII but space, `"` and `\`).
pub(super) fn scope(c: &mut Checker, v: &Value, path: &str) -> Option<String> {
    let s = c.non_empty_string(v, path)?;
    if !s
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
    {
        c.report(
            path,
            format!(
                "{} is not a scope name (printable ASCII without spaces, quotes or backslashes)",
                quote(s)
            ),
        );
        return None;
    }
    Some(s.to_string())
}

#[cfg(test)]
mod tests {
    use crate::config::parse_str;

    fn problems(oauth: serde_json::Value) -> Vec<String> {
        let text = serde_json::json!({"gateway": {"oauth": oauth}}).to_string();
        match parse_str(&text, &|_| None) {
            Ok(_) => panic!("expected errors in {text}"),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_full_section_is_read_with_its_defaults() {
        let text = r#"{"gateway": {"oauth": {"issuer": "https://auth.example.com/t1", "audience": "https://mcp.example.com"}}}"#;
        let o = parse_str(text, &|_| None).unwrap().gateway.oauth.unwrap();
        assert_eq!(o.issuer, "https://auth.example.com/t1");
        assert_eq!(o.audience, "https://mcp.example.com");
        assert_eq!(
            (o.jwks_uri, o.required_scopes, o.resource),
            (None, vec![], None)
        );
        let text = r#"{"gateway": {"oauth": {"issuer": "http://127.0.0.1:9000", "audience": "gw",
            "jwksUri": "http://localhost:9000/keys", "requiredScopes": ["mcp:tools", "read"],
            "resource": "https://mcp.example.com/"}}}"#;
        let o = parse_str(text, &|_| None).unwrap().gateway.oauth.unwrap();
        assert_eq!(o.jwks_uri.as_deref(), Some("http://localhost:9000/keys"));
        assert_eq!(o.required_scopes, ["mcp:tools", "read"]);
        assert_eq!(o.resource.as_deref(), Some("https://mcp.example.com"));
        assert!(parse_str("{}", &|_| None).unwrap().gateway.oauth.is_none());
    }

    #[test]
    fn profiles_may_require_scopes_of_their_own() {
        let text = r#"{"gateway": {"oauth": {"issuer": "https://a.example", "audience": "gw", "requiredScopes": ["mcp"]}},
            "servers": [{"name": "s", "command": ["x"]}],
            "profiles": {"admin": {"requiredScopes": ["admin", "mcp"]}, "open": {}}}"#;
        let o = parse_str(text, &|_| None).unwrap().gateway.oauth.unwrap();
        assert_eq!(o.required_scopes("admin"), ["mcp", "admin"]);
        assert_eq!(o.required_scopes("open"), ["mcp"]);
        assert_eq!(o.required_scopes("default"), ["mcp"]);
        let text = r#"{"servers": [{"name": "s", "command": ["x"]}], "profiles": {"admin": {"requiredScopes": ["admin"]}}}"#;
        let e = parse_str(text, &|_| None).unwrap_err();
        assert_eq!(
            e.problems[0].to_string(),
            "profiles.admin.requiredScopes: has no effect without gateway.oauth (scopes come from OAuth access tokens)"
        );
    }

    #[test]
    fn mistakes_are_named_by_path() {
        use serde_json::json;
        assert_eq!(
            problems(json!({})),
            [
                "gateway.oauth.issuer: is required: the authorization server's issuer URL, e.g. \"https://auth.example.com\"",
                "gateway.oauth.audience: is required: the `aud` value the authorization server puts in tokens for this gateway (often its URL)"
            ]
        );
        assert_eq!(
            problems(json!({"issuer": "http://auth.example.com", "audience": "a"})),
            ["gateway.oauth.issuer: \"http://auth.example.com\" must be https (plain http is accepted only for localhost or a loopback address)"]
        );
        assert_eq!(
            problems(json!({"issuer": "https://a.example/?x=1", "audience": "a"})),
            ["gateway.oauth.issuer: \"https://a.example/?x=1\" must have no query or fragment"]
        );
        assert_eq!(
            problems(json!({"issuer": "https://a.example", "audience": 5, "aud": "x"})),
            [
                "gateway.oauth.aud: unknown key (did you mean \"audience\"?)",
                "gateway.oauth.audience: expected a string, found 5 (a number); write it in quotes: \"5\""
            ]
        );
        assert_eq!(
            problems(json!({"issuer": "https://a.example", "audience": "a", "requiredScopes": ["ok", "two words"]})),
            ["gateway.oauth.requiredScopes[1]: \"two words\" is not a scope name (printable ASCII without spaces, quotes or backslashes)"]
        );
        assert_eq!(
            problems(json!({"issuer": "https://a.example", "audience": "a", "resource": "https://gw.example/mcp"})),
            ["gateway.oauth.resource: \"https://gw.example/mcp\" must be an origin only (scheme, host and port, e.g. \"https://mcp.example.com\"): the endpoint paths are added to it"]
        );
        assert_eq!(
            problems(json!("https://a.example")),
            ["gateway.oauth: expected an object with issuer and audience, found \"https://a.example\" (a string)"]
        );
    }
}
