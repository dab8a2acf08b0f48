//! Strict JSON: request bodies (RFC 8259, UTF-8 only, no BOM, no NaN/Infinity, no lone
//! surrogates, at most 256 levels deep) and the canonical serialisation used for envelopes
//! (keys sorted by code point, no whitespace).
//!
//! The depth is checked by a byte scan *before* serde parses, so a hostile body can neither
//! exhaust the stack nor make us parse 100 MB of brackets.

use serde_json::Value;

/// Deepest a request body may nest (the outermost array/object is level 1).
pub const MAX_BODY_DEPTH: usize = 256;

/// Why a body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Not strict JSON (empty, BOM, invalid UTF-8, lone surrogate, NaN, trailing bytes…).
    Invalid,
    /// Nested deeper than [`MAX_BODY_DEPTH`].
    TooDeep,
}

/// The deepest array/object nesting of `bytes`, stopping early past `limit`. Brackets inside
/// strings do not count.
fn depth_exceeds(bytes: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &c in bytes {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parse a request body strictly.
pub fn parse_body(bytes: &[u8]) -> Result<Value, BodyError> {
    if depth_exceeds(bytes, MAX_BODY_DEPTH) {
        return Err(BodyError::TooDeep);
    }
    parse_bounded(bytes)
}

/// Parse text whose depth is already known to be bounded.
fn parse_bounded(bytes: &[u8]) -> Result<Value, BodyError> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(BodyError::Invalid);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let v = serde::Deserialize::deserialize(&mut de).map_err(|_| BodyError::Invalid)?;
    de.end().map_err(|_| BodyError::Invalid)?;
    Ok(v)
}

/// Parse stored text as strict JSON, whatever its nesting (stored content may be deeper than
/// a body allows; past 512 levels it is treated as not JSON, which keeps the parse within a
/// worker stack).
pub fn parse_stored(s: &str) -> Option<Value> {
    if depth_exceeds(s.as_bytes(), 512) {
        return None;
    }
    parse_bounded(s.as_bytes()).ok()
}

/// `is_json` of `http-api.md` §5.1: after trimming whitespace, starts with `{` or `[` and parses
/// strictly.
pub fn is_json_container(s: &str) -> bool {
    let t = s.trim();
    (t.starts_with('{') || t.starts_with('[')) && parse_stored(t).is_some()
}

/// Canonical JSON text: object keys sorted by code point at every level, no whitespace,
/// non-ASCII written raw, numbers as serde_json prints them (shortest round trip).
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            // Byte order of UTF-8 equals code point order.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize) -> String {
        format!("{}{}", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn strictness() {
        assert!(parse_body(br#"{"a":1}"#).is_ok());
        for bad in [
            &b""[..],
            b"   ",
            b"\xEF\xBB\xBF{}",
            br#"{"a":NaN}"#,
            br#"[Infinity]"#,
            br#"[-Infinity]"#,
            br#""\ud800""#,
            br#"{"a":"\udc00x"}"#,
            b"{\"a\":\"\xff\"}",
            b"{} x",
            b"{'a':1}",
            b"[1,]",
        ] {
            assert_eq!(
                parse_body(bad),
                Err(BodyError::Invalid),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_body(br#""\ud83d\ude00""#).is_ok()); // a proper pair
        assert!(parse_body(b"1e400").is_err());
    }

    #[test]
    fn depth_edge() {
        assert!(parse_body(nested(256).as_bytes()).is_ok());
        assert_eq!(parse_body(nested(257).as_bytes()), Err(BodyError::TooDeep));
        // Brackets inside strings do not count.
        let s = format!("[\"{}\"]", "[".repeat(1000));
        assert!(parse_body(s.as_bytes()).is_ok());
        let s = format!("[\"\\\"{}\"]", "[".repeat(1000));
        assert!(parse_body(s.as_bytes()).is_ok());
    }

    #[test]
    fn canonical_form() {
        let v: Value = serde_json::from_str(
            r#"{"type":"task","schema_version":1,"content":{"z":[1,2.5,"é"],"a":null}}"#,
        )
        .unwrap();
        assert_eq!(
            canonical(&v),
            r#"{"content":{"a":null,"z":[1,2.5,"é"]},"schema_version":1,"type":"task"}"#
        );
    }

    #[test]
    fn json_container_rule() {
        assert!(is_json_container(" {\"a\":1} "));
        assert!(is_json_container("[1]"));
        assert!(!is_json_container("42"));
        assert!(!is_json_container("\"x\""));
        assert!(!is_json_container("[NaN, Infinity]"));
        assert!(!is_json_container("{oops"));
        assert!(is_json_container(&nested(512)));
        assert!(!is_json_container(&nested(513)));
    }
}
