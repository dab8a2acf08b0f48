//! The field rules every entry point shares (`http-api.md` §4) and the validation error shape
//! (§4.1): `{"error": "<field>: <message>", "field", "code", "message"}`.

use serde_json::{json, Value};

/// Longest channel name, in code points.
pub const MAX_CHANNEL_CHARS: usize = 256;
/// Longest sender name.
pub const MAX_SENDER_CHARS: usize = 128;
/// Longest consumer id.
pub const MAX_CONSUMER_CHARS: usize = 128;
/// Longest message id, idempotency key, envelope reference.
pub const MAX_REF_CHARS: usize = 256;
/// Default and largest content size in UTF-8 bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 131_072;
/// Depth limit of envelope and metadata values.
pub const ENVELOPE_DEPTH: usize = 16;
/// Depth limit of task payloads and results.
pub const TASK_DEPTH: usize = 128;
/// Largest metadata object, as canonical JSON.
pub const MAX_METADATA_BYTES: usize = 16_384;

/// A field that broke a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The request's own field name (`channel`, `artifacts.uri`, …).
    pub field: String,
    /// Machine-readable code (`required`, `too_long`, …).
    pub code: &'static str,
    /// Human-readable reason, without the field name.
    pub message: String,
    /// The `error` value: `field + ": " + message`, except for oversize content.
    pub error: String,
}

impl FieldError {
    /// A rule failure with the usual `error` text.
    pub fn new(field: &str, code: &'static str, message: impl Into<String>) -> FieldError {
        let message = message.into();
        FieldError {
            error: format!("{field}: {message}"),
            field: field.to_owned(),
            code,
            message,
        }
    }

    /// Content (or an encoded envelope) over the size limit: the 413 body of §3.5.
    pub fn content_too_large(max: usize, envelope: bool) -> FieldError {
        let verb = if envelope { "encode to" } else { "be" };
        FieldError {
            field: "content".into(),
            code: "too_large",
            message: format!("must {verb} at most {max} UTF-8 bytes"),
            error: format!("content exceeds {max} bytes"),
        }
    }

    /// The §4.1 JSON body.
    pub fn to_json(&self) -> Value {
        json!({
            "error": self.error,
            "field": self.field,
            "code": self.code,
            "message": self.message,
        })
    }

    /// 413 for oversize content, 400 for every other rule.
    pub fn http_status(&self) -> u16 {
        if self.code == "too_large" && self.field == "content" {
            413
        } else {
            400
        }
    }
}

/// Unicode category Cc: U+0000–U+001F and U+007F–U+009F.
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// The identity rule on a JSON value: a string, non-empty, no surrounding whitespace, at most
/// `max_chars` code points, no control characters.
pub fn identity<'a>(field: &str, v: &'a Value, max_chars: usize) -> Result<&'a str, FieldError> {
    let s = v
        .as_str()
        .ok_or_else(|| FieldError::new(field, "invalid_type", "must be a string"))?;
    identity_str(field, s, max_chars)?;
    Ok(s)
}

/// The identity rule on a string (query parameters, path segments).
pub fn identity_str(field: &str, s: &str, max_chars: usize) -> Result<(), FieldError> {
    if s.is_empty() {
        return Err(FieldError::new(field, "required", "must not be empty"));
    }
    let first = s.chars().next().is_some_and(char::is_whitespace);
    let last = s.chars().next_back().is_some_and(char::is_whitespace);
    if first || last {
        return Err(FieldError::new(
            field,
            "surrounding_whitespace",
            "must not start or end with whitespace",
        ));
    }
    if s.chars().count() > max_chars {
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

/// The content rule: a string, at most `max_bytes` UTF-8 bytes, no NUL, non-empty.
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

/// The JSON-value rule: every number finite, no value deeper than `max_depth` (the value
/// itself is depth 0).
pub fn json_value(field: &str, v: &Value, max_depth: usize) -> Result<(), FieldError> {
    fn walk(v: &Value, depth: usize, max: usize) -> Result<(), &'static str> {
        if depth > max {
            return Err("too_deep");
        }
        match v {
            Value::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => Err("invalid_value"),
            Value::Array(a) => a.iter().try_for_each(|x| walk(x, depth + 1, max)),
            Value::Object(o) => o.values().try_for_each(|x| walk(x, depth + 1, max)),
            _ => Ok(()),
        }
    }
    walk(v, 0, max_depth).map_err(|code| match code {
        "too_deep" => FieldError::new(
            field,
            "too_deep",
            format!("must be nested no more than {max_depth} levels"),
        ),
        _ => FieldError::new(field, "invalid_value", "numbers must be finite"),
    })
}

/// The message-type rule: 1–64 chars matching `^[a-z][a-z0-9._-]*$`.
pub fn message_type<'a>(field: &str, v: &'a Value) -> Result<&'a str, FieldError> {
    let s = v
        .as_str()
        .ok_or_else(|| FieldError::new(field, "invalid_type", "must be a string"))?;
    let ok = (1..=64).contains(&s.len())
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes().all(|b| {
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

    #[test]
    fn identity_rules_in_order() {
        let code = |v: Value| identity("channel", &v, 8).err().map(|e| e.code);
        assert_eq!(code(json!(5)), Some("invalid_type"));
        assert_eq!(code(Value::Null), Some("invalid_type"));
        assert_eq!(code(s("")), Some("required"));
        assert_eq!(code(s(" a")), Some("surrounding_whitespace"));
        assert_eq!(code(s("a\u{a0}")), Some("surrounding_whitespace"));
        assert_eq!(code(s("\u{3000}a")), Some("surrounding_whitespace"));
        assert_eq!(code(s("a\t")), Some("surrounding_whitespace"));
        assert_eq!(code(s("ééééééééé")), Some("too_long"));
        assert_eq!(code(s("éééééééé")), None); // 8 code points, 16 bytes
        assert_eq!(code(s("a\u{85}b")), Some("control_character"));
        assert_eq!(code(s("a\u{9f}b")), Some("control_character"));
        assert_eq!(code(s("a\u{0}b")), Some("control_character"));
        assert_eq!(code(s("a\u{200b}b")), None);
        assert_eq!(code(s("a b")), None);
        let e = identity("channel", &s(""), 8).unwrap_err();
        assert_eq!(e.error, "channel: must not be empty");
    }

    #[test]
    fn content_edges() {
        let max = DEFAULT_MAX_MESSAGE_BYTES;
        let exact = "é".repeat(max / 2);
        assert!(content(&s(&exact), max).is_ok());
        let over = format!("{exact}a");
        let e = content(&s(&over), max).unwrap_err();
        assert_eq!(e.http_status(), 413);
        assert_eq!(e.error, "content exceeds 131072 bytes");
        assert_eq!(e.message, "must be at most 131072 UTF-8 bytes");
        assert_eq!(content(&s("a\0"), max).unwrap_err().code, "nul_byte");
        assert_eq!(content(&s(""), max).unwrap_err().code, "required");
        assert!(content(&s("   "), max).is_ok());
        assert_eq!(content(&json!(1), max).unwrap_err().code, "invalid_type");
    }

    #[test]
    fn depth_rule() {
        let mut v = json!(1);
        for _ in 0..16 {
            v = json!([v]);
        }
        assert!(json_value("content", &v, 16).is_ok());
        let v = json!([v]);
        let e = json_value("content", &v, 16).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("too_deep", "must be nested no more than 16 levels")
        );
    }

    #[test]
    fn message_types() {
        assert!(message_type("type", &s("task.request")).is_ok());
        assert!(message_type("type", &s("a")).is_ok());
        assert!(message_type("type", &s(&"a".repeat(64))).is_ok());
        for bad in ["", "A", "1a", "a b", &"a".repeat(65)] {
            assert_eq!(
                message_type("type", &s(bad)).unwrap_err().code,
                "invalid_format"
            );
        }
    }
}
