//! The field rules every entry point shares (`http-api.md` §4) and the validation error shape
//! (§4.1): `{"error": "<field>: <message>", "field", "code", "message"}`.
//!
//! Everything here is a pure function of its input: no I/O, no panics, and every rule answers
//! the first failing check in the order §4 lists, so REST and MCP report the same error for the
//! same input.

use serde_json::{json, Value};

/// Longest channel name, in code points.
pub const MAX_CHANNEL_CHARS: usize = 256;
/// Longest sender name, in code points.
pub const MAX_SENDER_CHARS: usize = 128;
/// Longest consumer id, in code points.
pub const MAX_CONSUMER_CHARS: usize = 128;
/// Longest message id, idempotency key, envelope reference, in code points.
pub const MAX_REF_CHARS: usize = 256;
/// Default (and largest) content size, in UTF-8 bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 131_072;
/// Depth limit of envelope content, metadata and extensions (the value itself is depth 0).
pub const ENVELOPE_DEPTH: usize = 16;
/// Depth limit of task payloads and results.
pub const TASK_DEPTH: usize = 128;
/// Largest metadata object, in bytes of canonical JSON.
pub const MAX_METADATA_BYTES: usize = 16_384;

/// A field that broke a rule: the §4.1 error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The request's own field name (`channel`, `artifacts.uri`, …).
    pub field: String,
    /// Machine-readable code (`required`, `too_long`, …).
    pub code: &'static str,
    /// Human-readable reason, without the field name.
    pub message: String,
    /// The `error` value: `field + ": " + message`, except for oversize content
    /// (`content exceeds N bytes`).
    pub error: String,
}

impl FieldError {
    /// A rule failure whose `error` is `field + ": " + message`.
    pub fn new(field: &str, code: &'static str, message: impl Into<String>) -> FieldError {
        let message = message.into();
        FieldError {
            error: format!("{field}: {message}"),
            field: field.to_owned(),
            code,
            message,
        }
    }

    /// Content (or, with `envelope`, an encoded envelope) over the size limit `max`: the exact
    /// 413 body of `http-api.md` §3.5.
    pub fn content_too_large(max: usize, envelope: bool) -> FieldError {
        let verb = if envelope { "encode to" } else { "be" };
        FieldError {
            field: "content".into(),
            code: "too_large",
            message: format!("must {verb} at most {max} UTF-8 bytes"),
            error: format!("content exceeds {max} bytes"),
        }
    }

    /// The §4.1 JSON body, keys in the order `error`, `field`, `code`, `message`.
    pub fn to_json(&self) -> Value {
        json!({
            "error": self.error,
            "field": self.field,
            "code": self.code,
            "message": self.message,
        })
    }

    /// 413 for oversize content (field `content`, code `too_large`), 400 for every other rule.
    pub fn http_status(&self) -> u16 {
        if self.field == "content" && self.code == "too_large" {
            413
        } else {
            400
        }
    }
}

/// Unicode whitespace as §4 means it: the `White_Space` property (which covers tab, LF, CR,
/// U+0085 and the line/paragraph separators) plus every character of category Zs. Zs is a
/// subset of `White_Space`, so the explicit list only states the intent (a test checks it).
pub fn is_unicode_whitespace(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
                ..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
        )
}

/// Unicode category Cc: U+0000–U+001F and U+007F–U+009F.
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// The identity rule on a JSON value: a string (`invalid_type`), then the checks of
/// [`identity_str`]. Returns the string.
pub fn identity<'a>(field: &str, v: &'a Value, max_chars: usize) -> Result<&'a str, FieldError> {
    let s = v
        .as_str()
        .ok_or_else(|| FieldError::new(field, "invalid_type", "must be a string"))?;
    identity_str(field, s, max_chars)?;
    Ok(s)
}

/// The identity rule on a string (query parameters, path segments), in the order of §4:
/// non-empty → no surrounding Unicode whitespace → at most `max_chars` code points → no
/// control character (category Cc).
pub fn identity_str(field: &str, s: &str, max_chars: usize) -> Result<(), FieldError> {
    if s.is_empty() {
        return Err(FieldError::new(field, "required", "must not be empty"));
    }
    if s.starts_with(is_unicode_whitespace) || s.ends_with(is_unicode_whitespace) {
        return Err(FieldError::new(
            field,
            "surrounding_whitespace",
            "must not start or end with whitespace",
        ));
    }
    // Counting stops one past the limit, so a huge value costs no more than a long one.
    if s.chars().nth(max_chars).is_some() {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("must be at most {max_chars} characters"),
        ));
    }
    if s.chars().any(is_control) {
        return Err(FieldError::new(
            field,
            "control_character",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// The content rule for the `content` field of a send: a string (`invalid_type`) → at most
/// `max_bytes` UTF-8 bytes (413 `too_large`, [`FieldError::content_too_large`]) → no U+0000
/// (`nul_byte`) → non-empty (`required`). Whitespace-only content is allowed.
pub fn content(v: &Value, max_bytes: usize) -> Result<&str, FieldError> {
    let s = v
        .as_str()
        .ok_or_else(|| FieldError::new("content", "invalid_type", "must be a string"))?;
    if s.len() > max_bytes {
        return Err(FieldError::content_too_large(max_bytes, false));
    }
    if s.contains('\0') {
        return Err(FieldError::new(
            "content",
            "nul_byte",
            "must not contain NUL bytes",
        ));
    }
    if s.is_empty() {
        return Err(FieldError::new("content", "required", "must not be empty"));
    }
    Ok(s)
}

/// The JSON-value rule: every number finite (`invalid_value`), and no value deeper than
/// `max_depth` (`too_deep`), where the value itself is depth 0 and each element or member is
/// one deeper. The walk never descends past `max_depth + 1`, so it is safe on any input.
pub fn json_value(field: &str, v: &Value, max_depth: usize) -> Result<(), FieldError> {
    enum Broken {
        TooDeep,
        NotFinite,
    }
    fn walk(v: &Value, depth: usize, max: usize) -> Result<(), Broken> {
        if depth > max {
            return Err(Broken::TooDeep);
        }
        match v {
            // serde_json cannot hold NaN or infinities today; the check keeps the rule true
            // should a value ever be built some other way.
            Value::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => {
                Err(Broken::NotFinite)
            }
            Value::Array(a) => a.iter().try_for_each(|x| walk(x, depth + 1, max)),
            Value::Object(o) => o.values().try_for_each(|x| walk(x, depth + 1, max)),
            _ => Ok(()),
        }
    }
    walk(v, 0, max_depth).map_err(|broken| match broken {
        Broken::TooDeep => FieldError::new(
            field,
            "too_deep",
            format!("must be nested no more than {max_depth} levels"),
        ),
        Broken::NotFinite => FieldError::new(field, "invalid_value", "numbers must be finite"),
    })
}

/// Longest message type, in characters (all ASCII).
const MAX_TYPE_CHARS: usize = 64;

/// The message-type rule (envelope `type`): a string (`invalid_type`) of 1–64 characters
/// matching `^[a-z][a-z0-9._-]*$` (`invalid_format`). Returns the string.
pub fn message_type<'a>(field: &str, v: &'a Value) -> Result<&'a str, FieldError> {
    let s = v
        .as_str()
        .ok_or_else(|| FieldError::new(field, "invalid_type", "must be a string"))?;
    let mut bytes = s.bytes();
    let ok = s.len() <= MAX_TYPE_CHARS
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(s)
    } else {
        Err(FieldError::new(
            field,
            "invalid_format",
            "must be 1-64 characters: a lowercase letter, then lowercase letters, digits, '.', '_' or '-'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    fn code(v: &Value, max: usize) -> Option<&'static str> {
        identity("channel", v, max).err().map(|e| e.code)
    }

    #[test]
    fn error_shape() {
        let e = FieldError::new("channel", "required", "must not be empty");
        assert_eq!(
            e.to_json().to_string(),
            r#"{"error":"channel: must not be empty","field":"channel","code":"required","message":"must not be empty"}"#
        );
        assert_eq!(e.http_status(), 400);
        let big = FieldError::content_too_large(131_072, false);
        assert_eq!(
            big.to_json().to_string(),
            r#"{"error":"content exceeds 131072 bytes","field":"content","code":"too_large","message":"must be at most 131072 UTF-8 bytes"}"#
        );
        assert_eq!(big.http_status(), 413);
        let env = FieldError::content_too_large(1000, true);
        assert_eq!(env.message, "must encode to at most 1000 UTF-8 bytes");
        assert_eq!(env.error, "content exceeds 1000 bytes");
        assert_eq!(env.http_status(), 413);
        // too_large on another field (metadata) is a plain 400.
        assert_eq!(
            FieldError::new("metadata", "too_large", "x").http_status(),
            400
        );
    }

    #[test]
    fn identity_checks_in_order() {
        assert_eq!(code(&json!(5), 8), Some("invalid_type"));
        assert_eq!(code(&Value::Null, 8), Some("invalid_type"));
        assert_eq!(code(&json!(["a"]), 8), Some("invalid_type"));
        assert_eq!(code(&s(""), 8), Some("required"));
        // Whitespace wins over length and control characters.
        assert_eq!(code(&s(" aaaaaaaaaaaa"), 8), Some("surrounding_whitespace"));
        assert_eq!(code(&s("\ta"), 8), Some("surrounding_whitespace"));
        // Length wins over control characters.
        assert_eq!(code(&s("a\u{1}aaaaaaaa"), 8), Some("too_long"));
        let e = identity("sender", &s(" x"), 8).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str(), e.error.as_str()),
            (
                "sender",
                "must not start or end with whitespace",
                "sender: must not start or end with whitespace"
            )
        );
        assert_eq!(identity("channel", &s("demo:a"), 8), Ok("demo:a"));
    }

    #[test]
    fn identity_lengths_count_code_points() {
        for max in [MAX_CHANNEL_CHARS, MAX_SENDER_CHARS] {
            // Two-byte and four-byte characters: the limit is in code points, not bytes.
            for unit in ["a", "é", "😀"] {
                assert_eq!(code(&s(&unit.repeat(max)), max), None, "{unit} x {max}");
                assert_eq!(
                    code(&s(&unit.repeat(max + 1)), max),
                    Some("too_long"),
                    "{unit} x {max}+1"
                );
            }
        }
        let e = identity("channel", &s(&"a".repeat(257)), MAX_CHANNEL_CHARS).unwrap_err();
        assert_eq!(e.message, "must be at most 256 characters");
        assert_eq!(e.error, "channel: must be at most 256 characters");
    }

    #[test]
    fn surrounding_whitespace_is_unicode() {
        let zs = [
            ' ', '\u{a0}', '\u{1680}', '\u{2000}', '\u{2001}', '\u{2002}', '\u{2003}', '\u{2004}',
            '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}', '\u{2009}', '\u{200a}', '\u{202f}',
            '\u{205f}', '\u{3000}',
        ];
        let others = [
            '\t', '\n', '\u{b}', '\u{c}', '\r', '\u{85}', '\u{2028}', '\u{2029}',
        ];
        for c in zs.into_iter().chain(others) {
            // The std predicate already covers Zs: the explicit list only documents it.
            assert!(c.is_whitespace(), "U+{:04X}", c as u32);
            assert!(is_unicode_whitespace(c));
            for v in [format!("{c}a"), format!("a{c}")] {
                assert_eq!(
                    code(&s(&v), 8),
                    Some("surrounding_whitespace"),
                    "U+{:04X}",
                    c as u32
                );
            }
        }
        // Inside, space-like characters are fine; a tab inside is a control character.
        assert_eq!(code(&s("a b\u{3000}c\u{a0}d"), 16), None);
        assert_eq!(code(&s("a\tb"), 8), Some("control_character"));
        // Format characters are not whitespace: allowed even at the edges.
        for c in ['\u{200b}', '\u{200d}', '\u{feff}', '\u{180e}'] {
            assert!(!is_unicode_whitespace(c));
            assert_eq!(code(&s(&format!("{c}a{c}")), 8), None);
        }
    }

    #[test]
    fn control_characters() {
        for c in ('\u{0}'..='\u{1f}').chain('\u{7f}'..='\u{9f}') {
            // Some of these are whitespace (and then reported as such at an edge); inside a
            // value every one of them is a control character.
            let v = format!("a{c}b");
            assert_eq!(
                code(&s(&v), 8),
                Some("control_character"),
                "U+{:04X}",
                c as u32
            );
        }
        assert_eq!(code(&s("a\u{85}b"), 8), Some("control_character"));
        assert_eq!(code(&s("a\u{9f}b"), 8), Some("control_character"));
        assert_eq!(code(&s("\u{1}a"), 8), Some("control_character"));
        for ok in ["a\u{a0}b", "a\u{a1}b", "a\u{200b}b", "a\u{2028}b", "Ω:日本"] {
            assert_eq!(code(&s(ok), 8), None, "{ok:?}");
        }
        let e = identity_str("consumer_id", "a\u{7f}b", 8).unwrap_err();
        assert_eq!(e.message, "must not contain control characters");
    }

    #[test]
    fn identity_str_matches_identity() {
        assert_eq!(identity_str("since_id", "abc", 256), Ok(()));
        assert_eq!(
            identity_str("since_id", "", 256).unwrap_err().code,
            "required"
        );
        assert_eq!(
            identity_str("since_id", &"x".repeat(257), 256)
                .unwrap_err()
                .field,
            "since_id"
        );
    }

    #[test]
    fn content_edges() {
        let max = DEFAULT_MAX_MESSAGE_BYTES;
        let exact = "a".repeat(max);
        assert_eq!(content(&s(&exact), max).map(str::len), Ok(max));
        let e = content(&s(&"a".repeat(max + 1)), max).unwrap_err();
        assert_eq!(e, FieldError::content_too_large(max, false));
        assert_eq!(e.http_status(), 413);
        // Bytes, not code points: 65 536 two-byte characters are exactly the limit.
        let wide = "é".repeat(max / 2);
        assert!(content(&s(&wide), max).is_ok());
        assert_eq!(
            content(&s(&format!("{wide}a")), max).unwrap_err().code,
            "too_large"
        );
        // A lowered limit is reported with its own number.
        let e = content(&s("abcdef"), 5).unwrap_err();
        assert_eq!(e.error, "content exceeds 5 bytes");
        // Order: type → size → NUL → empty.
        assert_eq!(content(&json!(1), max).unwrap_err().code, "invalid_type");
        assert_eq!(content(&Value::Null, max).unwrap_err().code, "invalid_type");
        let e = content(&s("a\0"), max).unwrap_err();
        assert_eq!(
            (e.code, e.error.as_str()),
            ("nul_byte", "content: must not contain NUL bytes")
        );
        assert_eq!(
            content(&s("\0\0\0\0\0\0"), 5).unwrap_err().code,
            "too_large"
        );
        let e = content(&s(""), max).unwrap_err();
        assert_eq!(
            (e.code, e.error.as_str()),
            ("required", "content: must not be empty")
        );
        for ok in ["   ", "\t\n", "a\u{1}b", " padded "] {
            assert!(content(&s(ok), max).is_ok(), "{ok:?}");
        }
    }

    fn nest(levels: usize, array: bool) -> Value {
        let mut v = json!(1);
        for _ in 0..levels {
            v = if array { json!([v]) } else { json!({ "k": v }) };
        }
        v
    }

    #[test]
    fn depth_rule() {
        for array in [true, false] {
            // 16 containers around a scalar: the scalar is at depth 16.
            assert!(json_value("content", &nest(16, array), ENVELOPE_DEPTH).is_ok());
            let e = json_value("content", &nest(17, array), ENVELOPE_DEPTH).unwrap_err();
            assert_eq!(
                (e.code, e.message.as_str(), e.error.as_str()),
                (
                    "too_deep",
                    "must be nested no more than 16 levels",
                    "content: must be nested no more than 16 levels"
                )
            );
            assert!(json_value("payload", &nest(128, array), TASK_DEPTH).is_ok());
            assert_eq!(
                json_value("payload", &nest(129, array), TASK_DEPTH)
                    .unwrap_err()
                    .message,
                "must be nested no more than 128 levels"
            );
        }
        // An empty container counts at its own depth.
        let mut v = json!([]);
        for _ in 0..16 {
            v = json!([v]);
        }
        assert!(json_value("content", &v, 16).is_ok());
        assert!(json_value("content", &json!([v]), 16).is_err());
        // Scalars are depth 0, fine even with a limit of 0.
        assert!(json_value("content", &json!("x"), 0).is_ok());
        assert!(json_value("content", &json!([]), 0).is_ok());
        assert!(json_value("content", &json!([1]), 0).is_err());
        // A very deep value is refused without walking all of it.
        assert!(json_value("content", &nest(200, true), 16).is_err());
    }

    #[test]
    fn message_types() {
        for ok in ["task.request", "a", "a1-b_c.d", &"a".repeat(64)] {
            assert_eq!(message_type("type", &s(ok)), Ok(ok));
        }
        for bad in [
            "",
            "A",
            "1a",
            ".a",
            "a b",
            "aB",
            "é",
            "a\u{0}",
            &"a".repeat(65),
        ] {
            let e = message_type("type", &s(bad)).unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.code),
                ("type", "invalid_format"),
                "{bad:?}"
            );
        }
        assert_eq!(
            message_type("type", &json!(1)).unwrap_err().code,
            "invalid_type"
        );
    }
}
