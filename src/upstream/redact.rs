//! Masks what looks like a secret in text the gateway shows but did not write (a server's last
//! stderr line in `/health`'s `lastError`).
//!
//! Pure and conservative: it masks too much rather than too little. Masked are the values of
//! `key=…` / `key: …` pairs whose key names a secret (`key`, `token`, `secret`, `password`, `auth`,
//! … anywhere in the key, any case), whatever follows `Bearer` / `Basic`, and any run of 24 or more
//! characters that could be hex, base64 or base64url (API keys, JWTs). Each masked value becomes
//! `***`; the text around it is kept so the line still says what went wrong.

/// Longest run of token characters left as it is.
const LONG_RUN: usize = 24;
/// Words that make a key name a secret's.
const SECRET_WORDS: [&str; 9] = [
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "auth",
    "credential",
    "cookie",
];
const MASK: &str = "***";

/// `text` with anything that looks like a secret replaced by `***`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Set after a secret key's separator, or after `Bearer `: the next value is masked.
    let mut mask_next = false;
    while !rest.is_empty() {
        let run = rest
            .char_indices()
            .find(|(_, c)| !is_value_char(*c))
            .map_or(rest.len(), |(i, _)| i);
        if run == 0 {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
            if !(c == ' ' || c == '"' || c == '\'' || c == '=' || c == ':') {
                mask_next = false;
            }
            continue;
        }
        let word = &rest[..run];
        let mut after = &rest[run..];
        let scheme = word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("basic");
        if scheme && after.starts_with(' ') {
            out.push_str(word); // `Authorization: Bearer x`: the credentials follow the scheme
            mask_next = true;
        } else if mask_next || word.len() >= LONG_RUN && looks_encoded(word) {
            out.push_str(MASK);
            after = after.trim_start_matches('='); // base64 padding is part of the value
            mask_next = false;
        } else {
            out.push_str(word);
            let separator = after.trim_start_matches([' ', '"', '\'']);
            let names_secret =
                is_secret_key(word) && (separator.starts_with('=') || separator.starts_with(':'));
            mask_next = names_secret;
        }
        rest = after;
    }
    out
}

/// Characters of a value: a key, a token, a word.
fn is_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '/' | '~')
}

/// A key naming a secret: `API_KEY`, `auth_token`, `db.password`, `X-Api-Key`.
fn is_secret_key(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// A long run that is not a plain word or path: it mixes digits with letters, or is all hex.
fn looks_encoded(word: &str) -> bool {
    let word = word.trim_end_matches('=');
    if word.contains('/') && word.split('/').all(|part| part.len() < LONG_RUN) {
        return false; // a path: /usr/local/lib/...
    }
    let digits = word.bytes().filter(u8::is_ascii_digit).count();
    let letters = word.bytes().filter(u8::is_ascii_alphabetic).count();
    digits > 0 && letters > 0 || word.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn key_value_pairs_are_masked() {
        assert_eq!(
            redact("error: API_KEY=sk-live-abc123 rejected"),
            "error: API_KEY=*** rejected"
        );
        assert_eq!(redact("token: hunter2, retrying"), "token: ***, retrying");
        assert_eq!(redact("password = \"pw\""), "password = \"***\"");
        assert_eq!(redact("{\"apiKey\": \"x1\"}"), "{\"apiKey\": \"***\"}");
        assert_eq!(redact("db.password=s3cret"), "db.password=***");
    }

    #[test]
    fn bearer_credentials_are_masked() {
        assert_eq!(
            redact("sent Authorization: Bearer abc.def.ghi"),
            "sent Authorization: Bearer ***"
        );
        assert_eq!(redact("bearer xyz failed"), "bearer *** failed");
        assert_eq!(redact("Basic dXNlcjpwdw=="), "Basic ***");
    }

    #[test]
    fn long_encoded_runs_are_masked() {
        let hex = "0123456789abcdef0123456789abcdef";
        assert_eq!(redact(&format!("id {hex} bad")), "id *** bad");
        let b64 = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(redact(&format!("jwt={b64}")), "jwt=***");
        assert_eq!(redact("sk_live_4eC39HqLyjWDarjtT1zdp7dc"), "***");
    }

    #[test]
    fn ordinary_text_is_kept() {
        for text in [
            "server exited with status 1",
            "cannot open /usr/local/lib/node_modules/some-package/index.js",
            "keyboard layout unknown",
            "Error: ECONNREFUSED 127.0.0.1:5432",
            "internationalization_configuration_failed",
            "",
            "é ü — unicode stays",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn a_secret_key_without_a_value_masks_nothing_else() {
        assert_eq!(redact("missing token"), "missing token");
        assert_eq!(redact("token= "), "token= ");
    }
}
