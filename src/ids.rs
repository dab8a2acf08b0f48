//! Random identifiers from the OS CSPRNG: message UUIDs, hex session ids and lease tokens,
//! URL-safe cookie values.
//!
//! The OS random source failing is treated as a broken machine: these functions panic with a
//! clear message rather than hand out guessable ids (a request panic becomes a 500).

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    if let Err(e) = getrandom::fill(&mut buf) {
        panic!("the operating system's random source failed: {e}");
    }
    buf
}

/// A random UUID v4, lowercase and hyphenated.
pub fn uuid_v4() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `bytes` random bytes as lowercase hex (32 hex digits for 16 bytes).
pub fn random_hex(bytes: usize) -> String {
    hex(&random_bytes(bytes))
}

/// `bytes` random bytes as base64url without padding.
pub fn token_urlsafe(bytes: usize) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = random_bytes(bytes);
    let mut out = String::with_capacity(bytes * 4 / 3 + 2);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | (u32::from(*x) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert!(u
            .chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(uuid_v4(), uuid_v4());
    }

    #[test]
    fn hex_and_urlsafe() {
        assert_eq!(random_hex(16).len(), 32);
        let t = token_urlsafe(32);
        assert_eq!(t.len(), 43);
        assert!(t
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
