//! The checks every request passes before it is routed: the `Host` (DNS rebinding), the `Origin`,
//! the bearer token (`gateway.authToken`, or a JWT access token `gateway.oauth` accepts, with the
//! RFC 6750 / RFC 9728 challenges of a refusal), the protected-resource metadata document, and
//! the CORS headers and preflights that go with them. Functions of the request and the settings,
//! but for the OAuth guard's own state (its key set and the tokens it verified).

use super::oauth;
use super::*;

impl Router {
    /// `Host` must be present (HTTP/1.1) and, on a loopback gateway, name loopback or an allowed
    /// host: a page whose DNS name was rebound to 127.0.0.1 still sends its own name. `Some` is the
    /// refusal.
    pub(super) fn check_host(&self, req: &Request) -> Option<Response> {
        let Some(host) = req.header("host") else {
            if req.minor_version >= 1 {
                return Some(Response {
                    close: true,
                    ..Response::error(
                        400,
                        rpc::codes::INVALID_REQUEST,
                        "an HTTP/1.1 request must carry a Host header",
                    )
                });
            }
            return None; // HTTP/1.0 may omit it; browsers never do
        };
        if !self.settings.loopback_only && self.settings.allowed_hosts.is_empty() {
            return None;
        }
        if host_allowed(host, &self.settings.allowed_hosts) {
            return None;
        }
        Some(Response::error(
            403,
            rpc::codes::INVALID_REQUEST,
            &format!(
                "Host {host} is not allowed: this gateway answers requests for localhost, loopback addresses and gateway.allowedHosts only (a protection against DNS rebinding)"
            ),
        ))
    }

    /// Whether the request may see everything (`/health` in full): no guard is configured, or
    /// it carries a token that passes one.
    pub(super) fn authorized(&mut self, req: &Request) -> bool {
        if self.settings.auth_token.is_none() && self.oauth.is_none() {
            return true;
        }
        bearer_token(req.header("authorization")).is_some() && self.authenticate(req).is_ok()
    }

    /// The bearer-token checks; `Err` is the refusal. A request passes with `gateway.authToken`
    /// (compared in constant time) or with a JWT access token that `gateway.oauth` accepts and
    /// that holds every required scope; the static token, an operator's credential, needs no
    /// scope.
    pub(super) fn authenticate(&mut self, req: &Request) -> Result<(), Response> {
        self.principal = None;
        let presented = bearer_token(req.header("authorization"));
        if let Some(token) = self.settings.auth_token.as_deref() {
            if presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes())) {
                return Ok(());
            }
            if self.oauth.is_none() {
                return Err(self
                    .refusal(
                        req,
                        401,
                        rpc::codes::INVALID_REQUEST,
                        "missing or wrong bearer token: send Authorization: Bearer <gateway.authToken>",
                    )
                    .header("WWW-Authenticate", "Bearer realm=\"mcp-gateway\""));
            }
        }
        if self.oauth.is_none() {
            return Ok(()); // the common case: nothing to check (nor to build the challenge of)
        }
        let profile = profiles::requested(req);
        let Some(guard) = self.oauth.as_mut() else {
            return Ok(());
        };
        let required = guard.required_scopes(&profile);
        // The challenge (its metadata URL) is built only for a refusal.
        let (status, message, error) = match guard.check(presented, Instant::now()) {
            Ok(granted) => {
                let missing = granted.missing(&required);
                if missing.is_empty() {
                    self.principal = granted.subject.as_deref().map(oauth::subject_tag);
                    return Ok(());
                }
                let message = format!(
                    "the token lacks the scope{} {} that this endpoint requires",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join(", ")
                );
                (403, message, Some("insufficient_scope"))
            }
            Err(oauth::Refusal::Missing) => {
                let message = "this gateway requires an OAuth access token: send Authorization: Bearer <token> (the authorization server is named in the resource metadata)";
                (401, message.to_string(), None)
            }
            Err(oauth::Refusal::Invalid(why)) => (401, why, Some("invalid_token")),
            Err(oauth::Refusal::Unavailable(why)) => {
                return Err(self
                    .refusal(req, 503, rpc::codes::SERVER_UNAVAILABLE, &why)
                    .header("Retry-After", oauth::RETRY_AFTER_SECS.to_string()));
            }
        };
        let wanted: Vec<&str> = required.iter().map(String::as_str).collect();
        let metadata = self.metadata_url(req);
        let value = oauth::challenge(&metadata, error.map(|e| (e, message.as_str())), &wanted);
        Err(self
            .refusal(req, status, rpc::codes::INVALID_REQUEST, &message)
            .header("WWW-Authenticate", value))
    }

    /// An error in the shape of the endpoint: JSON-RPC (with the request's id when its body has
    /// one) for the MCP endpoints, `{"error": …}` for the others.
    fn refusal(&self, req: &Request, status: u16, code: i64, message: &str) -> Response {
        match profiles::split_path(&req.path).0 {
            "/mcp" | "/sse" | "/messages" => {
                super::modern::echo_id(Response::rpc_error(status, code, message), &req.body)
            }
            _ => Response::error(status, code, message),
        }
    }

    /// The gateway's origin as clients see it: `gateway.oauth.resource`, else `http://` and the
    /// request's `Host` (when it is a plain host name or address, else `localhost`).
    fn public_origin(&self, req: &Request) -> String {
        if let Some(origin) = self
            .oauth
            .as_ref()
            .and_then(|g| g.config().resource.clone())
        {
            return origin;
        }
        let host = req
            .header("host")
            .map(str::trim)
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            })
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    /// Where the protected-resource metadata of the request's endpoint is (RFC 9728 §3.1: the
    /// well-known path, then the resource's own path).
    fn metadata_url(&self, req: &Request) -> String {
        let path = req.path.split('?').next().unwrap_or_default();
        let path = if path == "/" { "" } else { path };
        format!("{}{}{path}", self.public_origin(req), oauth::METADATA_PATH)
    }

    /// `GET /.well-known/oauth-protected-resource[/<endpoint path>]` (RFC 9728), when
    /// `gateway.oauth` is set; no token needed. None: not such a request.
    pub(super) fn protected_resource(&self, req: &Request) -> Option<Response> {
        let guard = self.oauth.as_ref()?;
        let path = req.path.split('?').next().unwrap_or_default();
        let suffix = path.strip_prefix(oauth::METADATA_PATH)?;
        if !suffix.is_empty() && !suffix.starts_with('/') {
            return None;
        }
        if !matches!(req.method, Method::Get | Method::Head) {
            return Some(
                Response::error(
                    405,
                    rpc::codes::INVALID_REQUEST,
                    &format!("{path} accepts only GET"),
                )
                .header("Allow", "GET, HEAD"),
            );
        }
        let resource = format!("{}{suffix}", self.public_origin(req));
        let profile = profiles::split_path(suffix)
            .1
            .unwrap_or(profiles::DEFAULT_PROFILE);
        let doc = serde_json::json!({
            "resource": resource,
            "authorization_servers": [guard.config().issuer],
            "scopes_supported": guard.required_scopes(profile),
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-gateway",
        });
        Some(Response::json(200, doc.to_string().into_bytes()))
    }

    /// Origin and bearer-token checks; `Some` is the refusal.
    pub(super) fn gate(&mut self, req: &Request) -> Option<Response> {
        if req.path == "/health" {
            return None; // tells only its status without the token (see `health`)
        }
        if let Some(origin) = req.header("origin") {
            if !self.origin_allowed(origin) {
                return Some(Response::error(
                    403,
                    rpc::codes::INVALID_REQUEST,
                    &format!(
                        "origin {origin} is not allowed; add it to gateway.allowedOrigins (or gateway.cors)"
                    ),
                ));
            }
        }
        self.authenticate(req).err()
    }

    /// Loopback origins are always allowed (DNS rebinding cannot produce them), plus configured ones.
    pub(super) fn origin_allowed(&self, origin: &str) -> bool {
        match &self.settings.cors {
            Cors::Any => return true,
            Cors::Origins(list) if list.iter().any(|o| o == origin) => return true,
            _ => {}
        }
        self.settings.allowed_origins.iter().any(|o| o == origin) || is_loopback_origin(origin)
    }

    pub(super) fn cors_headers(&self, req: &Request) -> Vec<(&'static str, String)> {
        let Some(origin) = req.header("origin") else {
            return Vec::new();
        };
        let allow = match &self.settings.cors {
            Cors::Off => return Vec::new(),
            Cors::Any => "*".to_string(),
            Cors::Origins(list) if list.iter().any(|o| o == origin) => origin.to_string(),
            Cors::Origins(_) => return Vec::new(),
        };
        vec![
            ("Access-Control-Allow-Origin", allow),
            // A browser client reads the challenge to find the authorization server.
            (
                "Access-Control-Expose-Headers",
                "Mcp-Session-Id, WWW-Authenticate".into(),
            ),
            ("Vary", "Origin".into()),
        ]
    }

    pub(super) fn preflight(&self, req: &Request) -> Response {
        let cors = self.cors_headers(req);
        let mut response = Response {
            status: 204,
            content_type: "application/json",
            headers: vec![("Allow", "GET, HEAD, POST, DELETE, OPTIONS".into())],
            body: Vec::new(),
            close: false,
        };
        if !cors.is_empty() {
            response.headers.extend(cors);
            response.headers.extend([
                (
                    "Access-Control-Allow-Methods",
                    "GET, POST, DELETE, OPTIONS".into(),
                ),
                (
                    "Access-Control-Allow-Headers",
                    "Authorization, Content-Type, Mcp-Session-Id, MCP-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID"
                        .into(),
                ),
                ("Access-Control-Max-Age", "86400".into()),
            ]);
        }
        response
    }
}

/// The credentials of `Authorization: Bearer <token>`; the scheme name is case-insensitive.
pub(super) fn bearer_token(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether a `Host` value names loopback (`localhost`, `127.x.x.x`, `[::1]`, any port) or is listed
/// in `allowed` (compared with and without its port, case-insensitively).
pub(super) fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim();
    let name = if let Some(v6) = host.strip_prefix('[') {
        match v6.split_once(']') {
            Some((name, rest)) if rest.is_empty() || rest.starts_with(':') => name,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            Some(_) => return false,
            None => host,
        }
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback
        || allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(name))
}

/// `http(s)://localhost`, `127.x.x.x`, `[::1]`, with any port.
pub(super) fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((host, _)) => return host == "::1",
            None => return false,
        }
    } else {
        rest.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Compares secrets without a timing side channel on their content.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins() {
        for ok in [
            "http://localhost",
            "http://localhost:6274",
            "https://127.0.0.1:8080",
            "http://127.5.0.1",
            "http://[::1]:3000",
            "http://LOCALHOST",
        ] {
            assert!(is_loopback_origin(ok), "{ok}");
        }
        for bad in [
            "http://localhost.evil.com",
            "http://evil.com",
            "null",
            "file://",
            "http://[::2]",
            "http://10.0.0.1",
            "ws://localhost",
        ] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
    }

    #[test]
    fn hosts() {
        let none: Vec<String> = Vec::new();
        for ok in [
            "localhost",
            "LocalHost:4298",
            "127.0.0.1",
            "127.0.0.1:80",
            "127.9.9.9:1",
            "[::1]",
            "[::1]:4298",
        ] {
            assert!(host_allowed(ok, &none), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "evil.example.com:4298",
            "localhost.evil.com",
            "10.0.0.1",
            "[::2]:80",
            "[::1]x",
            "localhost:80x",
            "",
        ] {
            assert!(!host_allowed(bad, &none), "{bad}");
        }
        let allowed = vec!["gw.internal".to_string(), "box:8080".to_string()];
        assert!(host_allowed("GW.internal:4298", &allowed));
        assert!(host_allowed("box:8080", &allowed));
        assert!(!host_allowed("box:9090", &allowed));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("BEARER abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
