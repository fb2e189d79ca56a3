//! Base64 (RFC 4648), both alphabets: the standard one with padding for `Mcp-Param-*` header
//! values (`=?base64?…?=`, MCP 2026-07-28), the URL-safe one without padding for the tokens the
//! gateway signs (session ids, `requestState`). Decoding takes either padding and refuses any
//! character outside the alphabet.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// `A–Z a–z 0–9 + /`, padded with `=`.
    Standard,
    /// `A–Z a–z 0–9 - _`, unpadded (what a header value or a URL may carry as it is).
    Url,
}

impl Alphabet {
    fn table(self) -> &'static [u8; 64] {
        match self {
            Alphabet::Standard => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
            }
            Alphabet::Url => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        }
    }
}

pub fn encode(bytes: &[u8], alphabet: Alphabet) -> String {
    let table = alphabet.table();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(table[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if alphabet == Alphabet::Standard {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

/// The bytes of `text`, or None when it is not base64 of `alphabet` (padding optional).
pub fn decode(text: &str, alphabet: Alphabet) -> Option<Vec<u8>> {
    let table = alphabet.table();
    let text = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 == 1 {
        return None; // six bits cannot end a byte
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in text {
        let v = table.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6 | v) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4648_vectors_in_both_alphabets() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode(plain.as_bytes(), Alphabet::Standard), encoded);
            assert_eq!(
                decode(encoded, Alphabet::Standard).unwrap(),
                plain.as_bytes()
            );
            let url = encode(plain.as_bytes(), Alphabet::Url);
            assert_eq!(url, encoded.trim_end_matches('='));
            assert_eq!(decode(&url, Alphabet::Url).unwrap(), plain.as_bytes());
        }
        assert_eq!(encode(&[0xfb, 0xff], Alphabet::Url), "-_8");
        assert_eq!(encode(&[0xfb, 0xff], Alphabet::Standard), "+/8=");
        assert_eq!(
            decode("-_8", Alphabet::Standard),
            None,
            "the other alphabet"
        );
        assert_eq!(decode("Zm9vY", Alphabet::Standard), None, "a lone sextet");
    }
}
