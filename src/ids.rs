//! Random identifiers from the OS CSPRNG (`getrandom`): message UUIDs, hex session ids and
//! lease tokens, URL-safe cookie values; plus the lowercase-hex encoding they and the content
//! fingerprint share.
//!
//! The OS random source failing is the one panic of this layer, and a deliberate one: it means
//! the machine cannot produce secrets, and handing out guessable ids or session tokens would be
//! worse than failing the request (the request boundary turns the panic into a 500).

/// `n` bytes from the OS random source.
///
/// # Panics
/// If the OS random source fails (a broken machine, not bad input).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    if let Err(e) = getrandom::fill(&mut buf) {
        panic!("the operating system's random source failed: {e}");
    }
    buf
}

/// A random UUID version 4 (RFC 9562), lowercase and hyphenated:
/// `5b1f0c9e-2d7a-4e3b-9c61-0a8f4d2e7b13`.
///
/// # Panics
/// If the OS random source fails.
pub fn uuid_v4() -> String {
    let mut b = random_bytes(16);
    uuid_from_bytes(&mut b)
}

/// Set the version (4) and variant (RFC 4122/9562) bits of 16 bytes and format them.
fn uuid_from_bytes(b: &mut [u8]) -> String {
    if let Some(x) = b.get_mut(6) {
        *x = (*x & 0x0f) | 0x40;
    }
    if let Some(x) = b.get_mut(8) {
        *x = (*x & 0x3f) | 0x80;
    }
    let h = hex(b);
    match (
        h.get(0..8),
        h.get(8..12),
        h.get(12..16),
        h.get(16..20),
        h.get(20..32),
    ) {
        (Some(a), Some(b), Some(c), Some(d), Some(e)) => format!("{a}-{b}-{c}-{d}-{e}"),
        _ => h, // fewer than 16 bytes: never called so
    }
}

/// `bytes` random bytes as lowercase hex: `random_hex(16)` is the 32-hex-digit form of
/// session ids and lease tokens.
///
/// # Panics
/// If the OS random source fails.
pub fn random_hex(bytes: usize) -> String {
    hex(&random_bytes(bytes))
}

/// `bytes` random bytes as base64url without padding (RFC 4648 §5), for cookie values:
/// `token_urlsafe(32)` is 43 characters carrying 256 bits.
///
/// # Panics
/// If the OS random source fails.
pub fn token_urlsafe(bytes: usize) -> String {
    base64url(&random_bytes(bytes))
}

/// Base64url without padding.
fn base64url(b: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        // Up to three bytes, left-aligned in 24 bits.
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | (u32::from(*x) << (16 - 8 * i)));
        // k bytes make k + 1 characters once the padding is left off.
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        for _ in 0..1000 {
            let u = uuid_v4();
            assert_eq!(u.len(), 36);
            let dashes: Vec<usize> = u.match_indices('-').map(|(i, _)| i).collect();
            assert_eq!(dashes, [8, 13, 18, 23]);
            assert_eq!(&u[14..15], "4", "{u}");
            assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
            assert!(u
                .bytes()
                .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        }
        assert_ne!(uuid_v4(), uuid_v4());
    }

    #[test]
    fn uuid_bits_are_forced() {
        assert_eq!(
            uuid_from_bytes(&mut [0xff; 16]),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
        assert_eq!(
            uuid_from_bytes(&mut [0; 16]),
            "00000000-0000-4000-8000-000000000000"
        );
    }

    #[test]
    fn hex_encoding() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        let h = random_hex(16);
        assert_eq!(h.len(), 32);
        assert!(h
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_ne!(random_hex(16), random_hex(16));
    }

    #[test]
    fn base64url_vectors() {
        // RFC 4648 §10, without padding.
        for (input, want) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(input.as_bytes()), want);
        }
        // The two URL-safe characters.
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url(&[0xff; 3]), "____");
    }

    #[test]
    fn urlsafe_tokens() {
        let t = token_urlsafe(32);
        assert_eq!(t.len(), 43);
        assert!(t
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(token_urlsafe(32), token_urlsafe(32));
        assert_eq!(token_urlsafe(0), "");
    }
}
