//! JWT access tokens (RFC 7519, RFC 9068) checked against a key set (RFC 7517): sans-IO, a pure
//! function of the token, the keys, what is expected and the time.
//!
//! Invariants:
//! - Only RS256 (RSASSA-PKCS1-v1_5 with SHA-256, 2048–8192-bit keys) and ES256 (ECDSA P-256 with
//!   SHA-256, the 64-byte `r‖s` signature of JWS) are accepted; `none`, HMAC and every other
//!   algorithm are refused before any key is looked at, so a token cannot choose a weaker check.
//! - The signature is checked before any claim is trusted; the key must be of the algorithm's
//!   type (and, when the key says, of that `alg` and for `use: sig`).
//! - `iss` must equal the issuer exactly, `aud` (a string or an array) must contain the audience,
//!   `exp` is required; `exp` and `nbf` are allowed [`LEEWAY_SECS`] of clock difference.
//! - Nothing here panics on any input; errors are sentences safe to send back to the client (they
//!   never quote the token).

use crate::base64::{decode, Alphabet};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

/// Clock difference allowed between the issuer and the gateway, on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;
/// A token longer than this is refused unread (a header cannot carry much more anyway).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The signature algorithms accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

/// A public key of the issuer's key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The key's own `alg`, when it names one.
    alg: Option<String>,
    key: PublicKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PublicKey {
    /// Big-endian modulus (no leading zeros) and exponent.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point `0x04 ‖ x ‖ y`.
    P256(Vec<u8>),
}

/// The keys a token may be signed with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
    /// Keys left out (another type, curve or use), for the log.
    pub skipped: usize,
}

impl KeySet {
    /// A JWK Set document (`{"keys": [...]}`). Keys of other types, curves or uses are skipped
    /// (an issuer may publish encryption keys too); a set with no usable key is an error.
    pub fn parse(json: &[u8]) -> Result<KeySet, String> {
        let doc: Value =
            serde_json::from_slice(json).map_err(|e| format!("the key set is not JSON: {e}"))?;
        let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
            return Err("the key set has no \"keys\" array".into());
        };
        let mut set = KeySet::default();
        for key in keys {
            match Jwk::parse(key) {
                Some(jwk) => set.keys.push(jwk),
                None => set.skipped += 1,
            }
        }
        if set.keys.is_empty() {
            return Err(format!(
                "the key set has no RSA or P-256 signing key ({} keys of other kinds)",
                set.skipped
            ));
        }
        Ok(set)
    }

    /// Whether a key with this `kid` is in the set.
    pub fn has(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys a token with this header may be checked with.
    fn candidates<'a>(&'a self, header: &'a Header) -> impl Iterator<Item = &'a Jwk> + 'a {
        self.keys.iter().filter(move |k| {
            let kind = matches!(
                (&k.key, header.alg),
                (PublicKey::Rsa { .. }, Alg::Rs256) | (PublicKey::P256(_), Alg::Es256)
            );
            let alg = k.alg.as_deref().is_none_or(|a| a == header.alg_name());
            let kid = match &header.kid {
                Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
                None => true,
            };
            kind && alg && kid
        })
    }
}

impl Jwk {
    fn parse(v: &Value) -> Option<Jwk> {
        let field = |name: &str| v.get(name).and_then(Value::as_str);
        let bytes = |name: &str| field(name).and_then(|s| decode(s, Alphabet::Url));
        if field("use").is_some_and(|u| u != "sig") {
            return None;
        }
        let key = match field("kty")? {
            "RSA" => {
                let n = bytes("n")?;
                let e = bytes("e")?;
                let first = n.iter().position(|&b| b != 0)?;
                PublicKey::Rsa {
                    n: n[first..].to_vec(),
                    e,
                }
            }
            "EC" if field("crv") == Some("P-256") => {
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                PublicKey::P256(point)
            }
            _ => return None,
        };
        Some(Jwk {
            kid: field("kid").map(str::to_string),
            alg: field("alg").map(str::to_string),
            key,
        })
    }

    fn verifies(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        match (&self.key, alg) {
            (PublicKey::Rsa { n, e }, Alg::Rs256) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
            (PublicKey::P256(point), Alg::Es256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            _ => false,
        }
    }
}

/// The JOSE header's parts that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Alg,
    pub kid: Option<String>,
}

impl Header {
    fn alg_name(&self) -> &'static str {
        match self.alg {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

/// What a token must say to be accepted.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `exp`, seconds since the epoch.
    pub exp: u64,
    pub scopes: Vec<String>,
    /// Whom the token is for: `sub`, else `client_id`, else `azp` (None: it names nobody).
    pub subject: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWS compact serialization, or its parts are not what they must be.
    Malformed(String),
    /// The algorithm is not RS256 or ES256.
    Algorithm(String),
    /// No key of the set has the token's `kid` (the set may be out of date).
    UnknownKey(String),
    /// No key of the set verifies the signature.
    Signature,
    /// A claim is wrong (issuer, audience, expired, not yet valid).
    Claim(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Malformed(why) => write!(f, "the token is not a valid JWT: {why}"),
            TokenError::Algorithm(alg) => write!(
                f,
                "the token is signed with {alg}; only RS256 and ES256 are accepted"
            ),
            TokenError::UnknownKey(kid) => write!(
                f,
                "the token's key id {kid:?} is not in the issuer's key set"
            ),
            TokenError::Signature => write!(f, "the token's signature does not verify"),
            TokenError::Claim(why) => write!(f, "{why}"),
        }
    }
}

/// The three parts of a compact JWS, the header decoded.
pub struct Parsed<'t> {
    pub header: Header,
    signed: &'t str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// Splits and decodes a token without checking it.
pub fn parse(token: &str) -> Result<Parsed<'_>, TokenError> {
    let malformed = |why: &str| TokenError::Malformed(why.into());
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed("longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected three dot-separated parts"));
    };
    let part = |text: &str, what: &str| {
        decode(text, Alphabet::Url)
            .ok_or_else(|| malformed(&format!("its {what} is not base64url")))
    };
    let header: Value = serde_json::from_slice(&part(h, "header")?)
        .map_err(|_| malformed("its header is not JSON"))?;
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => Alg::Rs256,
        Some("ES256") => Alg::Es256,
        Some(other) => return Err(TokenError::Algorithm(other.chars().take(16).collect())),
        None => return Err(malformed("its header has no \"alg\"")),
    };
    if header.get("crit").is_some() {
        return Err(malformed("its header has critical extensions (\"crit\")"));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .map(|k| k.chars().take(128).collect());
    Ok(Parsed {
        header: Header { alg, kid },
        signed: &token[..h.len() + 1 + p.len()],
        payload: part(p, "payload")?,
        signature: part(s, "signature")?,
    })
}

/// Checks `token` against `keys` and `expect` at `now` (seconds since the epoch).
pub fn verify(token: &str, keys: &KeySet, expect: Expect, now: u64) -> Result<Claims, TokenError> {
    let parsed = parse(token)?;
    verify_parsed(&parsed, keys, expect, now)
}

pub fn verify_parsed(
    parsed: &Parsed,
    keys: &KeySet,
    expect: Expect,
    now: u64,
) -> Result<Claims, TokenError> {
    let header = &parsed.header;
    if let Some(kid) = &header.kid {
        if !keys.has(kid) {
            return Err(TokenError::UnknownKey(kid.clone()));
        }
    }
    let verified = keys
        .candidates(header)
        .any(|k| k.verifies(header.alg, parsed.signed.as_bytes(), &parsed.signature));
    if !verified {
        return Err(TokenError::Signature);
    }
    let claims: Value = serde_json::from_slice(&parsed.payload)
        .map_err(|_| TokenError::Malformed("its payload is not a JSON object".into()))?;
    check_claims(&claims, expect, now)
}

fn check_claims(claims: &Value, expect: Expect, now: u64) -> Result<Claims, TokenError> {
    let claim = |why: String| Err(TokenError::Claim(why));
    if !claims.is_object() {
        return Err(TokenError::Malformed(
            "its payload is not a JSON object".into(),
        ));
    }
    if claims.get("iss").and_then(Value::as_str) != Some(expect.issuer) {
        return claim(format!(
            "the token was not issued by {} (iss)",
            expect.issuer
        ));
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == expect.audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expect.audience)),
        _ => false,
    };
    if !audience_ok {
        return claim(format!(
            "the token is not meant for this gateway: its audience (aud) does not include {}",
            expect.audience
        ));
    }
    let time = |name: &str| claims.get(name).and_then(Value::as_f64);
    let Some(exp) = time("exp") else {
        return claim("the token has no expiry (exp)".into());
    };
    if exp + (LEEWAY_SECS as f64) <= now as f64 {
        return claim("the token has expired (exp)".into());
    }
    if time("nbf").is_some_and(|nbf| nbf > (now + LEEWAY_SECS) as f64) {
        return claim("the token is not valid yet (nbf)".into());
    }
    let mut scopes: Vec<String> = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) => s.split_whitespace().map(str::to_string).collect(),
        (_, Some(Value::Array(list))) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        (_, Some(Value::String(s))) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    scopes.sort();
    scopes.dedup();
    let subject = ["sub", "client_id", "azp"]
        .iter()
        .find_map(|key| claims.get(*key).and_then(Value::as_str))
        .map(|s| s.to_string());
    Ok(Claims {
        exp: exp.clamp(0.0, u64::MAX as f64) as u64 + LEEWAY_SECS,
        scopes,
        subject,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::base64::encode;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    pub(crate) const NOW: u64 = 1_800_000_000;
    pub(crate) const ISS: &str = "https://auth.example.com";
    pub(crate) const AUD: &str = "https://gw.example.com/mcp";

    /// An ES256 signing key and its JWK.
    pub(crate) struct TestKey {
        pair: EcdsaKeyPair,
        pub kid: String,
    }

    impl TestKey {
        pub(crate) fn new(kid: &str) -> TestKey {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            TestKey {
                pair,
                kid: kid.into(),
            }
        }

        pub(crate) fn jwk(&self) -> Value {
            let point = self.pair.public_key().as_ref();
            json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig",
                "x": encode(&point[1..33], Alphabet::Url), "y": encode(&point[33..], Alphabet::Url)})
        }

        pub(crate) fn sign(&self, header: &Value, claims: &Value) -> String {
            let signed = format!(
                "{}.{}",
                encode(header.to_string().as_bytes(), Alphabet::Url),
                encode(claims.to_string().as_bytes(), Alphabet::Url)
            );
            let sig = self
                .pair
                .sign(&SystemRandom::new(), signed.as_bytes())
                .unwrap();
            format!("{signed}.{}", encode(sig.as_ref(), Alphabet::Url))
        }

        pub(crate) fn token(&self, claims: &Value) -> String {
            self.sign(&json!({"alg": "ES256", "kid": self.kid}), claims)
        }
    }

    pub(crate) fn good_claims() -> Value {
        json!({"iss": ISS, "aud": AUD, "exp": NOW + 300, "nbf": NOW - 10, "scope": "b a"})
    }

    pub(crate) fn set_of(keys: &[&TestKey]) -> KeySet {
        let doc = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
        KeySet::parse(doc.to_string().as_bytes()).unwrap()
    }

    const EXPECT: Expect = Expect {
        issuer: ISS,
        audience: AUD,
    };

    fn check(token: &str, keys: &KeySet) -> Result<Claims, TokenError> {
        verify(token, keys, EXPECT, NOW)
    }

    #[test]
    fn a_good_token_gives_its_scopes_and_expiry() {
        let key = TestKey::new("k1");
        let claims = check(&key.token(&good_claims()), &set_of(&[&key])).unwrap();
        assert_eq!(claims.scopes, ["a", "b"]);
        assert_eq!(claims.exp, NOW + 300 + LEEWAY_SECS);
        let mut scp = good_claims();
        scp["scope"] = Value::Null;
        scp["scp"] = json!(["x", "y"]);
        scp["aud"] = json!(["other", AUD]);
        assert_eq!(
            check(&key.token(&scp), &set_of(&[&key])).unwrap().scopes,
            ["x", "y"]
        );
        // No kid: every key of the algorithm's type is tried.
        let other = TestKey::new("k0");
        let no_kid = key.sign(&json!({"alg": "ES256"}), &good_claims());
        assert!(check(&no_kid, &set_of(&[&other, &key])).is_ok());
    }

    #[test]
    fn signatures_keys_and_algorithms() {
        let key = TestKey::new("k1");
        let keys = set_of(&[&key]);
        let token = key.token(&good_claims());
        // Another key under the same kid: the signature does not verify.
        let impostor = TestKey::new("k1");
        assert_eq!(
            check(&impostor.token(&good_claims()), &keys),
            Err(TokenError::Signature)
        );
        // A payload changed after signing.
        let (head, rest) = token.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let mut claims = good_claims();
        claims["scope"] = json!("admin");
        let forged = format!(
            "{head}.{}.{sig}",
            encode(claims.to_string().as_bytes(), Alphabet::Url)
        );
        assert_eq!(check(&forged, &keys), Err(TokenError::Signature));
        assert_eq!(
            check(&TestKey::new("k9").token(&good_claims()), &keys),
            Err(TokenError::UnknownKey("k9".into()))
        );
        for alg in ["none", "HS256", "RS512", "PS256"] {
            let t = key.sign(&json!({"alg": alg, "kid": "k1"}), &good_claims());
            assert_eq!(check(&t, &keys), Err(TokenError::Algorithm(alg.into())));
        }
        // alg none with an empty signature, as an attacker writes it.
        let none = format!(
            "{}.{}.",
            encode(br#"{"alg":"none"}"#, Alphabet::Url),
            encode(good_claims().to_string().as_bytes(), Alphabet::Url)
        );
        assert_eq!(
            check(&none, &keys),
            Err(TokenError::Algorithm("none".into()))
        );
        // An ES256 token cannot be checked with an RSA key and the other way round.
        let rs = key.sign(&json!({"alg": "RS256", "kid": "k1"}), &good_claims());
        assert_eq!(check(&rs, &keys), Err(TokenError::Signature));
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.", "e30.e30.e30"] {
            assert!(
                matches!(check(bad, &keys), Err(TokenError::Malformed(_))),
                "{bad}"
            );
        }
        let crit = key.sign(
            &json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]}),
            &good_claims(),
        );
        assert!(matches!(check(&crit, &keys), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn claims_are_checked_with_leeway() {
        let key = TestKey::new("k1");
        let keys = set_of(&[&key]);
        let with = |name: &str, value: Value| {
            let mut claims = good_claims();
            claims[name] = value;
            check(&key.token(&claims), &keys)
        };
        let refused = |r: Result<Claims, TokenError>| match r {
            Err(TokenError::Claim(why)) => why,
            other => panic!("expected a claim error, got {other:?}"),
        };
        assert!(refused(with("iss", json!("https://evil.example.com"))).contains("(iss)"));
        assert!(refused(with("iss", json!(format!("{ISS}/")))).contains("(iss)"));
        assert!(refused(with("aud", json!("https://other.example.com"))).contains("(aud)"));
        assert!(refused(with("aud", json!(["a", "b"]))).contains("(aud)"));
        assert!(refused(with("exp", Value::Null)).contains("no expiry"));
        assert!(refused(with("exp", json!(NOW - LEEWAY_SECS))).contains("expired"));
        assert!(with("exp", json!(NOW - LEEWAY_SECS + 1)).is_ok());
        assert!(refused(with("nbf", json!(NOW + LEEWAY_SECS + 1))).contains("not valid yet"));
        assert!(with("nbf", json!(NOW + LEEWAY_SECS)).is_ok());
    }

    #[test]
    fn key_sets_keep_only_signing_keys_they_can_use() {
        let key = TestKey::new("ec");
        let doc = json!({"keys": [
            key.jwk(),
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p384"},
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB", "kid": "enc"},
            {"kty": "RSA", "n": "AAEC", "e": "AQAB", "kid": "rsa", "alg": "RS256"},
        ]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 2);
        assert_eq!(set.skipped, 3);
        assert!(set.has("ec") && set.has("rsa") && !set.has("hmac"));
        assert_eq!(
            set.keys[1].key,
            PublicKey::Rsa {
                n: vec![1, 2],
                e: vec![1, 0, 1]
            },
            "leading zeros of n dropped"
        );
        assert!(KeySet::parse(br#"{"keys": []}"#)
            .unwrap_err()
            .contains("no RSA or P-256"));
        assert!(KeySet::parse(b"{}").unwrap_err().contains("\"keys\""));
        assert!(KeySet::parse(b"<html>").unwrap_err().contains("not JSON"));
    }
}
