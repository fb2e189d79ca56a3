//! The plain HTTP exchanges of OAuth: metadata documents fetched with `GET`, form posts to the
//! token and registration endpoints, on the gateway's own blocking HTTP client
//! (`downstream::remote::conn`), from whichever thread needs them (never the reactor).
//!
//! Only `https` URLs are used, except on a loopback host (`127.0.0.1`, `::1`, `localhost`), where
//! `http` is allowed as OAuth 2.1 allows it for native apps and tests. Every exchange is bounded by
//! a deadline and a body limit; redirects are not followed (OAuth endpoints do not redirect, and a
//! redirect could carry a secret elsewhere).

use crate::downstream::remote::conn::{Conn, ResponseHead};
use crate::downstream::remote::tls::Tls;
use crate::downstream::remote::url::Url;
use std::time::Instant;

/// Largest OAuth response read (metadata documents and token responses are small).
const MAX_BODY: usize = 1 << 20;

/// A response: its head (status, headers) and body.
#[derive(Debug)]
pub struct Response {
    pub head: ResponseHead,
    pub body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Whether `url` may be used for OAuth: https, or http on a loopback host.
pub fn allowed(url: &Url) -> Result<(), String> {
    if url.tls || is_loopback(&url.host) {
        return Ok(());
    }
    Err(format!(
        "{} is not https (OAuth allows plain http only on a loopback address)",
        url.redacted()
    ))
}

pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `GET url` with `Accept: application/json`.
pub fn get(url: &Url, deadline: Instant) -> Result<Response, String> {
    exchange(url, "GET", &[("Accept", "application/json")], b"", deadline)
}

/// `POST url` with a form body (`application/x-www-form-urlencoded`) and extra headers.
pub fn post_form(
    url: &Url,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
    deadline: Instant,
) -> Result<Response, String> {
    let body = encode_form(form);
    let mut all = vec![
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Accept", "application/json"),
    ];
    all.extend_from_slice(headers);
    exchange(url, "POST", &all, body.as_bytes(), deadline)
}

/// `POST url` with a JSON body.
pub fn post_json(
    url: &Url,
    body: &serde_json::Value,
    deadline: Instant,
) -> Result<Response, String> {
    let body = body.to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ];
    exchange(url, "POST", &headers, body.as_bytes(), deadline)
}

fn exchange(
    url: &Url,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    deadline: Instant,
) -> Result<Response, String> {
    allowed(url)?;
    let tls = if url.tls { Some(Tls::system()?) } else { None };
    let place = url.redacted();
    let mut conn = Conn::connect(url, tls.as_ref(), deadline)
        .map_err(|e| format!("cannot reach {place}: {e}"))?;
    let head = conn
        .send(method, &url.path, headers, body, deadline)
        .map_err(|e| format!("{method} {place}: {e}"))?;
    let body = conn
        .read_body(&head, MAX_BODY, deadline)
        .map_err(|e| format!("{method} {place}: reading the answer: {e}"))?;
    Ok(Response { head, body })
}

/// `application/x-www-form-urlencoded` (also a URL's query).
pub fn encode_form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&encode_component(key));
        out.push('=');
        out.push_str(&encode_component(value));
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The pairs of a query string or form body, decoded (`+` is a space); pairs that do not decode
/// are left out.
pub fn decode_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((
                crate::http::percent_decode(key, true)?,
                crate::http::percent_decode(value, true)?,
            ))
        })
        .collect()
}

/// `url` with `pairs` added to its query.
pub fn with_query(url: &Url, pairs: &[(&str, &str)]) -> String {
    let separator = if url.path.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{}", encode_form(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_round_trip_and_encode_what_must_be() {
        let form = encode_form(&[
            ("redirect_uri", "http://127.0.0.1:8/cb?x=1"),
            ("scope", "a b"),
        ]);
        assert_eq!(
            form,
            "redirect_uri=http%3A%2F%2F127.0.0.1%3A8%2Fcb%3Fx%3D1&scope=a%20b"
        );
        assert_eq!(
            decode_form(&form),
            [
                (
                    "redirect_uri".to_string(),
                    "http://127.0.0.1:8/cb?x=1".to_string()
                ),
                ("scope".to_string(), "a b".to_string())
            ]
        );
        assert_eq!(
            decode_form("a=1+2&b&c=%zz"),
            [("a".into(), "1 2".into()), ("b".into(), String::new())]
        );
    }

    #[test]
    fn only_https_or_loopback_http() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(allowed(&url("https://auth.example.com/token")).is_ok());
        assert!(allowed(&url("http://127.0.0.1:9/token")).is_ok());
        assert!(allowed(&url("http://localhost/token")).is_ok());
        assert!(allowed(&url("http://[::1]:9/token")).is_ok());
        assert!(allowed(&url("http://auth.example.com/token")).is_err());
        assert_eq!(
            with_query(&url("https://a.example/authorize"), &[("state", "s&t")]),
            "https://a.example/authorize?state=s%26t"
        );
        assert_eq!(
            with_query(&url("https://a.example/authorize?tenant=1"), &[("x", "y")]),
            "https://a.example/authorize?tenant=1&x=y"
        );
    }
}
