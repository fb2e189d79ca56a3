//! `http://` and `https://` URLs of remote MCP servers: parsing, and resolving references against
//! them (the legacy SSE transport's `endpoint` event names the POST URL relative to the stream's).
//!
//! Invariants:
//! - A parsed [`Url`] is always usable as-is: `host` is non-empty and lower-case (an IPv6 literal
//!   is kept without its brackets), `port` is non-zero, and `path` starts with `/` and contains
//!   only bytes allowed in an HTTP request target (anything else is percent-encoded, as browsers
//!   do), so it can be written into a request line without further checks.
//! - The fragment (`#...`) never reaches `path`: it is not sent over HTTP.
//! - Errors are sentences a user can act on; nothing here panics on any input.

use std::fmt;
use std::net::Ipv6Addr;

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Url {
    /// `https`.
    pub tls: bool,
    /// Lower-case host name or IP literal, without brackets.
    pub host: String,
    /// The explicit port, or 80/443.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses an absolute `http` or `https` URL.
    pub fn parse(s: &str) -> Result<Url, String> {
        let s = s.trim();
        let Some((scheme, rest)) = split_scheme(s) else {
            return Err(format!(
                "'{s}' is not an absolute URL (expected http://... or https://...)"
            ));
        };
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            other => {
                return Err(format!(
                    "unsupported URL scheme '{other}' in '{s}' (expected http or https)"
                ))
            }
        };
        let Some(rest) = rest.strip_prefix("//") else {
            return Err(format!("'{s}' has no host (expected {scheme}://host/...)"));
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        let (host, port) =
            parse_authority(authority, tls).map_err(|why| format!("'{s}': {why}"))?;
        Ok(Url {
            tls,
            host,
            port,
            path: normalize_target(target),
        })
    }

    /// `scheme://host:port`, the port always explicit.
    pub fn origin(&self) -> String {
        format!("{}://{}:{}", self.scheme(), self.host_for_uri(), self.port)
    }

    /// The `Host` header value: the host, with the port only when it is not the scheme's default.
    pub fn authority(&self) -> String {
        if self.port == default_port(self.tls) {
            self.host_for_uri().into_owned()
        } else {
            format!("{}:{}", self.host_for_uri(), self.port)
        }
    }

    /// Resolves `reference` against this URL the way a browser resolves a link: an absolute URL,
    /// a scheme-relative `//host/...`, an absolute path `/p?q`, a query `?q`, or a relative path
    /// (dot segments removed). The result must still be `http` or `https`.
    pub fn join(&self, reference: &str) -> Result<Url, String> {
        let reference = reference.trim();
        let reference = reference
            .find('#')
            .map_or(reference, |hash| &reference[..hash]);
        if split_scheme(reference).is_some() {
            return Url::parse(reference);
        }
        if reference.starts_with("//") {
            return Url::parse(&format!("{}:{reference}", self.scheme()));
        }
        let (base_path, _) = split_query(&self.path);
        let target = if reference.is_empty() {
            self.path.clone()
        } else if reference.starts_with('?') {
            format!("{base_path}{reference}")
        } else if reference.starts_with('/') {
            reference.to_owned()
        } else {
            // Merge: the base path up to and including its last '/', then the reference.
            let dir_end = base_path.rfind('/').map_or(0, |slash| slash + 1);
            format!("{}{reference}", &base_path[..dir_end])
        };
        let (path, query) = split_query(&target);
        let mut joined = remove_dot_segments(path);
        joined.push_str(query);
        Ok(Url {
            path: normalize_target(&joined),
            ..self.clone()
        })
    }

    /// The URL for logs and error messages: the query (often an API key) shown as `?…`.
    pub fn redacted(&self) -> String {
        match self.path.split_once('?') {
            Some((path, _)) => format!("{}://{}{path}?…", self.scheme(), self.authority()),
            None => self.to_string(),
        }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The host as written in a URI: IPv6 literals in brackets.
    fn host_for_uri(&self) -> std::borrow::Cow<'_, str> {
        if self.host.contains(':') {
            format!("[{}]", self.host).into()
        } else {
            self.host.as_str().into()
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme(), self.authority(), self.path)
    }
}

fn default_port(tls: bool) -> u16 {
    if tls {
        443
    } else {
        80
    }
}

/// `scheme:rest` when `s` starts with a syntactically valid scheme (RFC 3986 §3.1).
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let colon = s.find(':')?;
    let scheme = &s[..colon];
    let mut chars = scheme.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let valid = starts_with_letter
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| (scheme, &s[colon + 1..]))
}

/// `(path, "?query")` — the query part keeps its `?` and is empty when there is none.
fn split_query(target: &str) -> (&str, &str) {
    target.split_at(target.find('?').unwrap_or(target.len()))
}

/// Host and port from `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_authority(authority: &str, tls: bool) -> Result<(String, u16), String> {
    if authority.contains('@') {
        return Err(
            "credentials in the URL are not supported; send them in a header instead".to_owned(),
        );
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((v6, after)) = bracketed.split_once(']') else {
            return Err("the IPv6 address has no closing ']'".to_owned());
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err(format!("'{v6}' is not a valid IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("unexpected text after ']'")?),
        };
        (v6.to_ascii_lowercase(), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err("the host is empty".to_owned());
        }
        if let Some(bad) = host
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
        {
            return Err(format!("the host '{host}' contains '{bad}'"));
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None | Some("") => default_port(tls),
        Some(digits) => parse_port(digits)?,
    };
    Ok((host, port))
}

fn parse_port(digits: &str) -> Result<u16, String> {
    let invalid = || format!("'{digits}' is not a valid port (1-65535)");
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match digits.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(invalid()),
    }
}

/// Turns what follows the authority into a request target: fragment dropped, `/` ensured, and
/// bytes that may not appear in a request line percent-encoded.
fn normalize_target(target: &str) -> String {
    let target = target.find('#').map_or(target, |hash| &target[..hash]);
    let mut out = String::with_capacity(target.len() + 1);
    if !target.starts_with('/') {
        out.push('/');
    }
    for byte in target.bytes() {
        if needs_encoding(byte) {
            out.push_str(&format!("%{byte:02X}"));
        } else {
            out.push(char::from(byte));
        }
    }
    out
}

/// Controls, space, non-ASCII and the characters WHATWG's path/query encode sets name.
fn needs_encoding(byte: u8) -> bool {
    byte <= b' ' || byte >= 0x7F || b"\"<>\\^`{|}".contains(&byte)
}

/// RFC 3986 §5.2.4 on a path that starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                // A trailing dot segment still names a directory: keep the slash.
                if last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_hides_the_query_only() {
        let url = Url::parse("https://h.example:8443/mcp?api_key=secret").unwrap();
        assert_eq!(url.redacted(), "https://h.example:8443/mcp?…");
        let url = Url::parse("http://h/mcp").unwrap();
        assert_eq!(url.redacted(), "http://h/mcp");
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_the_usual_shapes() {
        assert_eq!(
            url("https://Example.COM/mcp?x=1#frag"),
            Url {
                tls: true,
                host: "example.com".into(),
                port: 443,
                path: "/mcp?x=1".into()
            }
        );
        let plain = url("http://127.0.0.1:8080");
        assert_eq!(
            (plain.tls, plain.port, plain.path.as_str()),
            (false, 8080, "/")
        );
        let v6 = url("HTTP://[::1]:9000?q");
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.path.as_str()),
            ("::1", 9000, "/?q")
        );
        assert_eq!(
            url("http://h:/p").port,
            80,
            "an empty port means the default"
        );
        assert_eq!(url("  https://h/a b  ").path, "/a%20b");
        assert_eq!(url("https://h/ü\"").path, "/%C3%BC%22");
    }

    #[test]
    fn origin_authority_and_display() {
        let u = url("https://h/x");
        assert_eq!(u.origin(), "https://h:443");
        assert_eq!(u.authority(), "h");
        assert_eq!(u.to_string(), "https://h/x");
        let v6 = url("http://[::1]:81/");
        assert_eq!(v6.origin(), "http://[::1]:81");
        assert_eq!(v6.authority(), "[::1]:81");
    }

    #[test]
    fn bad_urls_are_explained() {
        for (input, words) in [
            ("example.com/mcp", "not an absolute URL"),
            ("ftp://h/", "unsupported URL scheme 'ftp'"),
            ("http:/h", "has no host"),
            ("http:///p", "host is empty"),
            ("http://u:p@h/", "credentials"),
            ("http://h:0/", "not a valid port"),
            ("http://h:65536/", "not a valid port"),
            ("http://h:+1/", "not a valid port"),
            ("http://[::1/", "closing ']'"),
            ("http://[zz]/", "not a valid IPv6"),
            ("http://[::1]x/", "unexpected text"),
            ("http://a b/", "contains ' '"),
            ("http://a:1:2/", "contains ':'"),
        ] {
            let err = Url::parse(input).expect_err(input);
            assert!(err.contains(words), "{input}: {err}");
        }
    }

    #[test]
    fn join_like_a_browser() {
        let base = url("http://h:8000/a/b/sse?x=1");
        let cases = [
            (
                "/messages?sessionId=abc",
                "http://h:8000/messages?sessionId=abc",
            ),
            ("messages?s=1", "http://h:8000/a/b/messages?s=1"),
            ("../m", "http://h:8000/a/m"),
            ("../../../../m", "http://h:8000/m"),
            ("./", "http://h:8000/a/b/"),
            ("..", "http://h:8000/a/"),
            ("?y=2", "http://h:8000/a/b/sse?y=2"),
            ("", "http://h:8000/a/b/sse?x=1"),
            ("#top", "http://h:8000/a/b/sse?x=1"),
            ("//other:1/p", "http://other:1/p"),
            ("https://x.example/p#f", "https://x.example/p"),
            ("/a/./b/../c", "http://h:8000/a/c"),
            ("/q?a=../b", "http://h:8000/q?a=../b"),
        ];
        for (reference, expected) in cases {
            let joined = base
                .join(reference)
                .unwrap_or_else(|e| panic!("{reference}: {e}"));
            assert_eq!(joined.to_string(), expected, "{reference}");
        }
        assert!(base.join("mailto:x@y").is_err());
        assert_eq!(
            url("http://h").join("m").map(|u| u.path),
            Ok("/m".to_owned())
        );
    }
}
