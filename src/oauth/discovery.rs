//! Finding who issues a remote server's tokens, as the MCP authorization spec says: the server's
//! `401` challenge (`WWW-Authenticate: Bearer resource_metadata=…, scope=…`), else the RFC 9728
//! well-known URIs, gives the protected-resource metadata; its `authorization_servers` name the
//! issuer, whose RFC 8414 (or OpenID Connect discovery) metadata gives the endpoints.
//!
//! Checked on the way (a document that fails a check is not used): the metadata's `resource` is
//! the server's URL (or an origin or path prefix of it), and the authorization server's `issuer`
//! is exactly the one asked for.

use super::http;
use crate::downstream::remote::url::Url;
use serde_json::Value;
use std::time::Instant;

/// A `Bearer` challenge of `WWW-Authenticate`, its parameters as sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub resource_metadata: Option<String>,
    pub scope: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl Challenge {
    /// The `Bearer` challenge among those of a `WWW-Authenticate` value; None without one.
    pub fn parse(header: &str) -> Option<Challenge> {
        let mut rest = header.trim();
        // Challenges are `scheme params`, separated by commas: find the Bearer one.
        loop {
            let scheme_end = rest.find([' ', ',']).unwrap_or(rest.len());
            let (scheme, after) = rest.split_at(scheme_end);
            let (params, next) = parameters(after);
            if scheme.eq_ignore_ascii_case("bearer") {
                let get = |name: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.clone())
                };
                return Some(Challenge {
                    resource_metadata: get("resource_metadata"),
                    scope: get("scope"),
                    error: get("error"),
                    error_description: get("error_description"),
                });
            }
            rest = next.trim_start_matches([' ', ',']);
            if rest.is_empty() {
                return None;
            }
        }
    }

    /// The server says the token lacks a scope (RFC 6750 `insufficient_scope`).
    pub fn insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// The `name=value` parameters at the start of `text` (values plain or quoted, with `\` escapes),
/// and what follows them (the next challenge).
fn parameters(text: &str) -> (Vec<(String, String)>, &str) {
    let mut params = Vec::new();
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start_matches([' ', ',']);
        let Some(eq) = trimmed.find('=') else {
            return (params, trimmed);
        };
        let name = &trimmed[..eq];
        if name.is_empty() || name.contains([' ', ',', '"']) {
            // Not a parameter: the next challenge's scheme.
            return (params, trimmed);
        }
        let after = &trimmed[eq + 1..];
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find([',', ' ']).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        params.push((name.to_string(), value));
        rest = next;
    }
}

/// RFC 9728 protected-resource metadata, the parts the gateway uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMetadata {
    /// The resource identifier: what tokens are asked for (`resource`, RFC 8707).
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
}

/// The server's protected-resource metadata: from the challenge's `resource_metadata` when there
/// is one, else from the well-known URIs (at the endpoint's path, then at the root).
pub fn resource_metadata(
    server: &Url,
    challenge: Option<&Challenge>,
    deadline: Instant,
) -> Result<ResourceMetadata, String> {
    let mut candidates = Vec::new();
    if let Some(url) = challenge.and_then(|c| c.resource_metadata.as_deref()) {
        candidates.push(server.join(url)?);
    } else {
        let (path, _) = server.path.split_once('?').unwrap_or((&server.path, ""));
        let path = path.trim_end_matches('/');
        if !path.is_empty() {
            candidates.push(server.join(&format!("/.well-known/oauth-protected-resource{path}"))?);
        }
        candidates.push(server.join("/.well-known/oauth-protected-resource")?);
    }
    let (url, doc) = first_document(&candidates, deadline).map_err(|tried| {
        format!(
            "no protected-resource metadata found (tried {})",
            tried.join(", ")
        )
    })?;
    let resource = doc.get("resource").and_then(Value::as_str).unwrap_or("");
    if !names_server(resource, server) {
        return Err(format!(
            "its protected-resource metadata ({}) is for {resource:?}, not for {}",
            url.redacted(),
            server.redacted()
        ));
    }
    let authorization_servers = strings(&doc, "authorization_servers");
    if authorization_servers.is_empty() {
        return Err(format!(
            "its protected-resource metadata ({}) names no authorization_servers",
            url.redacted()
        ));
    }
    Ok(ResourceMetadata {
        resource: resource.to_string(),
        authorization_servers,
        scopes_supported: strings(&doc, "scopes_supported"),
    })
}

/// Whether a metadata `resource` names `server`: the same URL (scheme and host in any case, a
/// trailing slash aside), or its origin or a path prefix of it.
fn names_server(resource: &str, server: &Url) -> bool {
    let Ok(resource) = Url::parse(resource) else {
        return false;
    };
    if resource.origin() != server.origin() {
        return false;
    }
    let strip = |p: &str| {
        p.split('?')
            .next()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string()
    };
    let (want, have) = (strip(&resource.path), strip(&server.path));
    want.is_empty() || have == want || have.starts_with(&format!("{want}/"))
}

/// RFC 8414 authorization-server metadata, the parts the gateway uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: String,
    pub registration_endpoint: Option<String>,
    pub token_auth_methods: Vec<String>,
    pub code_challenge_methods: Vec<String>,
    /// RFC 9207: the redirect carries `iss`, which must then be checked.
    pub iss_on_redirect: bool,
    /// Client ID Metadata Documents are accepted as `client_id`.
    pub client_metadata_documents: bool,
}

/// The metadata of `issuer`, from the well-known URIs in the order the MCP spec gives.
pub fn server_metadata(issuer: &str, deadline: Instant) -> Result<ServerMetadata, String> {
    let (url, doc) = server_document(issuer, deadline)?;
    let field = |key: &str| doc.get(key).and_then(Value::as_str).map(str::to_string);
    let Some(token_endpoint) = field("token_endpoint") else {
        return Err(format!(
            "the authorization server metadata at {} has no token_endpoint",
            url.redacted()
        ));
    };
    let flag = |key: &str| doc.get(key).and_then(Value::as_bool) == Some(true);
    Ok(ServerMetadata {
        issuer: issuer.to_string(),
        authorization_endpoint: field("authorization_endpoint"),
        token_endpoint,
        registration_endpoint: field("registration_endpoint"),
        token_auth_methods: strings(&doc, "token_endpoint_auth_methods_supported"),
        code_challenge_methods: strings(&doc, "code_challenge_methods_supported"),
        iss_on_redirect: flag("authorization_response_iss_parameter_supported"),
        client_metadata_documents: flag("client_id_metadata_document_supported"),
    })
}

/// The metadata document of `issuer` (RFC 8414, else OpenID Connect discovery, at the
/// well-known URIs in the order the MCP spec gives) and where it was found; its `issuer` is
/// checked to be exactly the one asked for (RFC 8414 §3.3), or another server could speak for it.
pub fn server_document(issuer: &str, deadline: Instant) -> Result<(Url, Value), String> {
    let base = Url::parse(issuer).map_err(|e| format!("authorization server: {e}"))?;
    let path = base
        .path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_end_matches('/');
    let candidates: Vec<String> = if path.is_empty() {
        vec![
            "/.well-known/oauth-authorization-server".into(),
            "/.well-known/openid-configuration".into(),
        ]
    } else {
        vec![
            format!("/.well-known/oauth-authorization-server{path}"),
            format!("/.well-known/openid-configuration{path}"),
            format!("{path}/.well-known/openid-configuration"),
        ]
    };
    let candidates = candidates
        .iter()
        .map(|c| base.join(c))
        .collect::<Result<Vec<Url>, String>>()?;
    let (url, doc) = first_document(&candidates, deadline).map_err(|tried| {
        format!(
            "no metadata for authorization server {issuer} (tried {})",
            tried.join(", ")
        )
    })?;
    let found = doc
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if found != issuer {
        return Err(format!(
            "the authorization server metadata at {} is for issuer {found:?}, not {issuer:?}",
            url.redacted()
        ));
    }
    Ok((url, doc))
}

/// The first of `candidates` that answers 200 with a JSON object; Err: what each answered.
fn first_document(candidates: &[Url], deadline: Instant) -> Result<(Url, Value), Vec<String>> {
    let mut tried = Vec::new();
    for url in candidates {
        match http::get(url, deadline) {
            Ok(response) if response.status() == 200 => match response.json() {
                Some(doc) if doc.is_object() => return Ok((url.clone(), doc)),
                _ => tried.push(format!("{} (not a JSON object)", url.redacted())),
            },
            Ok(response) => tried.push(format!("{} (HTTP {})", url.redacted(), response.status())),
            Err(e) => tried.push(e),
        }
    }
    Err(tried)
}

fn strings(doc: &Value, key: &str) -> Vec<String> {
    doc.get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_read_among_others() {
        let c = Challenge::parse(
            r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", scope="files:read files:write""#,
        )
        .unwrap();
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("https://mcp.example.com/.well-known/oauth-protected-resource")
        );
        assert_eq!(c.scope.as_deref(), Some("files:read files:write"));
        let c = Challenge::parse(
            r#"Basic realm="x", Bearer error="insufficient_scope", scope="a \"b\"", error_description=Need_more"#,
        )
        .unwrap();
        assert!(c.insufficient_scope());
        assert_eq!(c.scope.as_deref(), Some(r#"a "b""#));
        assert_eq!(c.error_description.as_deref(), Some("Need_more"));
        assert_eq!(Challenge::parse(r#"Basic realm="x""#), None);
        assert_eq!(Challenge::parse("bearer"), Some(Challenge::default()));
    }

    #[test]
    fn a_resource_names_its_server_exactly_or_as_a_prefix() {
        let server = Url::parse("https://MCP.example.com/v1/mcp").unwrap();
        assert!(names_server("https://mcp.example.com/v1/mcp", &server));
        assert!(names_server("https://mcp.example.com/v1/mcp/", &server));
        assert!(names_server("https://mcp.example.com", &server));
        assert!(names_server("https://mcp.example.com/v1", &server));
        assert!(!names_server("https://mcp.example.com/v", &server));
        assert!(!names_server("https://other.example.com/v1/mcp", &server));
        assert!(!names_server("http://mcp.example.com/v1/mcp", &server));
        assert!(!names_server("", &server));
    }
}
