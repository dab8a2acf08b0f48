//! Protocol-v1 envelopes (`http-api.md` §6): the checks a send's `message` passes, and its
//! canonical encoding (what is stored and fingerprinted).

use crate::validate::{self, FieldError};
use crate::{clock, json};
use serde_json::{json, Map, Value};

/// A validated envelope, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Canonical JSON text (§6.2): the stored content, and what the fingerprint covers.
    pub canonical: String,
    /// The envelope's `dedupe_key`, the idempotency key when the send names none.
    pub dedupe_key: Option<String>,
}

/// Validate a send's `message` (§6.1) and encode it canonically (§6.2). Checks run in this
/// order, the first failure answering: an object → no unknown keys → the required keys present
/// → `schema_version` → `type` → `content` → the references → `created_at` → `artifacts` →
/// `metadata` → `extensions` → the canonical text fits `max_bytes` (else the 413 of
/// [`FieldError::content_too_large`]). A key whose value is `null` counts as absent.
pub fn parse_envelope(v: &Value, max_bytes: usize) -> Result<Envelope, FieldError> {
    let obj = v
        .as_object()
        .ok_or_else(|| FieldError::new("message", "invalid_type", "must be an object"))?;
    let decoded = check(obj)?;
    let dedupe_key = decoded
        .get("dedupe_key")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let canonical = json::canonical(&Value::Object(decoded));
    if canonical.len() > max_bytes {
        return Err(FieldError::content_too_large(max_bytes, true));
    }
    Ok(Envelope {
        canonical,
        dedupe_key,
    })
}

/// The required envelope keys, in the order of the spec and of the decoded message.
pub(super) const REQUIRED: [&str; 3] = ["schema_version", "type", "content"];
/// Optional references (identity rule, ≤ 256), in decoded order.
const REFS: [&str; 6] = [
    "thread_id",
    "reply_to",
    "correlation_id",
    "causation_id",
    "recipient",
    "dedupe_key",
];
/// The other optional keys, in decoded order after the references.
const OPTIONAL_TAIL: [&str; 4] = ["created_at", "artifacts", "metadata", "extensions"];
/// The keys of one artifact, in decoded order.
const ARTIFACT_KEYS: [&str; 6] = [
    "uri",
    "name",
    "media_type",
    "size_bytes",
    "sha256",
    "metadata",
];
/// Most artifacts in one envelope.
const MAX_ARTIFACTS: usize = 32;
/// Longest artifact URI, in code points.
const MAX_URI_CHARS: usize = 4096;

/// The member `key` unless it is absent or `null`.
fn set<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|x| !x.is_null())
}

/// `unknown_field` for the keys of `obj` outside `known`, sorted, or `Ok`.
fn no_unknown_keys(
    field: &str,
    obj: &Map<String, Value>,
    known: &[&str],
) -> Result<(), FieldError> {
    let mut unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    Err(FieldError::new(
        field,
        "unknown_field",
        format!("unknown field(s): {}", unknown.join(", ")),
    ))
}

/// Validate an envelope object (§6.1, all but the size) and return it reduced to the keys that
/// are set, in response order (`schema_version`, `type`, `content`, then the optional keys).
pub(super) fn check(obj: &Map<String, Value>) -> Result<Map<String, Value>, FieldError> {
    let known: Vec<&str> = REQUIRED
        .iter()
        .chain(&REFS)
        .chain(&OPTIONAL_TAIL)
        .copied()
        .collect();
    no_unknown_keys("message", obj, &known)?;
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|k| set(obj, k).is_none())
        .collect();
    let (Some(version), Some(ty), Some(content)) = (
        set(obj, "schema_version"),
        set(obj, "type"),
        set(obj, "content"),
    ) else {
        return Err(FieldError::new(
            "message",
            "required",
            format!("missing field(s): {}", missing.join(", ")),
        ));
    };
    // An integer (not a boolean, not 1.0) equal to 1.
    if version.as_u64() != Some(1) {
        return Err(FieldError::new(
            "message",
            "invalid_protocol",
            format!("unsupported message schema_version: {version}"),
        ));
    }
    let mut out = Map::new();
    out.insert("schema_version".into(), json!(1));
    let ty = validate::message_type("type", ty)?;
    out.insert("type".into(), json!(ty));
    validate::json_value("content", content, validate::ENVELOPE_DEPTH)?;
    out.insert("content".into(), content.clone());
    for key in REFS {
        if let Some(r) = set(obj, key) {
            let s = validate::identity(key, r, validate::MAX_REF_CHARS)?;
            out.insert(key.into(), json!(s));
        }
    }
    if let Some(c) = set(obj, "created_at") {
        out.insert("created_at".into(), json!(check_created_at(c)?));
    }
    if let Some(a) = set(obj, "artifacts") {
        let items = a
            .as_array()
            .ok_or_else(|| FieldError::new("artifacts", "invalid_type", "must be an array"))?;
        if items.len() > MAX_ARTIFACTS {
            return Err(FieldError::new(
                "artifacts",
                "too_many",
                format!("must have at most {MAX_ARTIFACTS} items"),
            ));
        }
        let checked = items
            .iter()
            .map(check_artifact)
            .collect::<Result<Vec<_>, _>>()?;
        if !checked.is_empty() {
            out.insert("artifacts".into(), Value::Array(checked));
        }
    }
    for key in ["metadata", "extensions"] {
        if let Some(m) = set(obj, key) {
            if let Some(m) = check_metadata(key, m)? {
                out.insert(key.into(), m);
            }
        }
    }
    Ok(out)
}

/// `created_at`: an RFC 3339 string with an offset; kept as given.
fn check_created_at(v: &Value) -> Result<&str, FieldError> {
    let s = v
        .as_str()
        .ok_or_else(|| FieldError::new("created_at", "invalid_type", "must be a string"))?;
    match clock::parse_rfc3339(s) {
        Ok(_) => Ok(s),
        Err(clock::Rfc3339Error::NoOffset) => Err(FieldError::new(
            "created_at",
            "timezone_required",
            "must include a UTC offset such as Z or +02:00",
        )),
        Err(clock::Rfc3339Error::Invalid) => Err(FieldError::new(
            "created_at",
            "invalid_format",
            "must be an RFC 3339 date-time such as 2026-11-23T23:10:24Z",
        )),
    }
}

/// An object of at most [`validate::MAX_METADATA_BYTES`] of canonical JSON, obeying the
/// JSON-value rule at depth 16; `None` when empty (dropped from the canonical form).
fn check_metadata(field: &str, v: &Value) -> Result<Option<Value>, FieldError> {
    let obj = v
        .as_object()
        .ok_or_else(|| FieldError::new(field, "invalid_type", "must be an object"))?;
    validate::json_value(field, v, validate::ENVELOPE_DEPTH)?;
    if json::canonical(v).len() > validate::MAX_METADATA_BYTES {
        return Err(FieldError::new(
            field,
            "too_large",
            format!(
                "must encode to at most {} bytes of JSON",
                validate::MAX_METADATA_BYTES
            ),
        ));
    }
    Ok((!obj.is_empty()).then(|| v.clone()))
}

/// One artifact, reduced to its keys that are set, in decoded order.
fn check_artifact(v: &Value) -> Result<Value, FieldError> {
    let obj = v.as_object().ok_or_else(|| {
        FieldError::new("artifacts", "invalid_type", "must be an array of objects")
    })?;
    no_unknown_keys("artifacts", obj, &ARTIFACT_KEYS)?;
    let mut out = Map::new();
    let uri = set(obj, "uri")
        .ok_or_else(|| FieldError::new("artifacts.uri", "required", "must be provided"))?;
    out.insert("uri".into(), json!(check_uri(uri)?));
    for key in ["name", "media_type"] {
        if let Some(x) = set(obj, key) {
            let field = format!("artifacts.{key}");
            let s = x
                .as_str()
                .ok_or_else(|| FieldError::new(&field, "invalid_type", "must be a string"))?;
            if s.chars().all(validate::is_unicode_whitespace) {
                return Err(FieldError::new(&field, "required", "must not be blank"));
            }
            out.insert(key.into(), json!(s));
        }
    }
    if let Some(x) = set(obj, "size_bytes") {
        match x {
            Value::Number(n) if n.is_u64() => {
                out.insert("size_bytes".into(), x.clone());
            }
            Value::Number(n) if n.is_i64() => {
                return Err(FieldError::new(
                    "artifacts.size_bytes",
                    "out_of_range",
                    "must be at least 0",
                ))
            }
            _ => {
                return Err(FieldError::new(
                    "artifacts.size_bytes",
                    "invalid_type",
                    "must be an integer",
                ))
            }
        }
    }
    if let Some(x) = set(obj, "sha256") {
        let s = x.as_str().ok_or_else(|| {
            FieldError::new("artifacts.sha256", "invalid_type", "must be a string")
        })?;
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FieldError::new(
                "artifacts.sha256",
                "invalid_format",
                "must be 64 hexadecimal digits",
            ));
        }
        out.insert("sha256".into(), json!(s.to_ascii_lowercase()));
    }
    if let Some(m) = set(obj, "metadata") {
        if let Some(m) = check_metadata("artifacts.metadata", m)? {
            out.insert("metadata".into(), m);
        }
    }
    Ok(Value::Object(out))
}

/// An artifact `uri`: a string, non-empty, no surrounding whitespace, at most 4096 code points,
/// no character below U+0020 and no U+007F (in that order, like the identity rule).
fn check_uri(v: &Value) -> Result<&str, FieldError> {
    const FIELD: &str = "artifacts.uri";
    let s = v
        .as_str()
        .ok_or_else(|| FieldError::new(FIELD, "invalid_type", "must be a string"))?;
    if s.is_empty() {
        return Err(FieldError::new(FIELD, "required", "must not be empty"));
    }
    if s.starts_with(validate::is_unicode_whitespace)
        || s.ends_with(validate::is_unicode_whitespace)
    {
        return Err(FieldError::new(
            FIELD,
            "surrounding_whitespace",
            "must not start or end with whitespace",
        ));
    }
    if s.chars().nth(MAX_URI_CHARS).is_some() {
        return Err(FieldError::new(
            FIELD,
            "too_long",
            format!("must be at most {MAX_URI_CHARS} characters"),
        ));
    }
    if s.chars().any(|c| c < '\u{20}' || c == '\u{7f}') {
        return Err(FieldError::new(
            FIELD,
            "control_character",
            "must not contain control characters",
        ));
    }
    Ok(s)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::validate;

    const MAX: usize = validate::DEFAULT_MAX_MESSAGE_BYTES;

    fn err(v: Value) -> FieldError {
        match parse_envelope(&v, MAX) {
            Err(e) => e,
            Ok(e) => panic!("accepted: {}", e.canonical),
        }
    }

    /// Field, code and message of the error for an envelope that is valid except for `extra`.
    fn err_with(extra: Value) -> (String, &'static str, String) {
        let mut base = json!({"schema_version": 1, "type": "t", "content": 1});
        if let (Some(b), Some(x)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(x.clone());
        }
        let e = err(base);
        (e.field, e.code, e.message)
    }

    pub(in crate::model) fn ok(v: Value) -> Envelope {
        match parse_envelope(&v, MAX) {
            Ok(e) => e,
            Err(e) => panic!("refused: {}", e.error),
        }
    }

    #[test]
    fn canonical_example_of_the_spec() {
        let e = ok(json!({"schema_version":1,"type":"task","content":{"k":1},"metadata":{}}));
        assert_eq!(
            e.canonical,
            r#"{"content":{"k":1},"schema_version":1,"type":"task"}"#
        );
        assert_eq!(e.dedupe_key, None);
    }

    #[test]
    fn canonical_drops_unset_keys_and_sorts() {
        let e = ok(json!({
            "type": "task.request", "schema_version": 1,
            "content": {"z": [1, {"b": 2, "a": "é"}], "a": null},
            "thread_id": null, "reply_to": "m-1", "artifacts": [], "extensions": null,
            "metadata": {"y": 1, "x": {}},
            "created_at": "2026-11-23T23:10:24.952505+01:00",
        }));
        assert_eq!(
            e.canonical,
            r#"{"content":{"a":null,"z":[1,{"a":"é","b":2}]},"created_at":"2026-11-23T23:10:24.952505+01:00","metadata":{"x":{},"y":1},"reply_to":"m-1","schema_version":1,"type":"task.request"}"#
        );
    }

    #[test]
    fn envelope_shape_errors() {
        for not_object in [json!("x"), json!([]), json!(null), json!(1)] {
            let e = err(not_object);
            assert_eq!(
                e.to_json().to_string(),
                r#"{"error":"message: must be an object","field":"message","code":"invalid_type","message":"must be an object"}"#
            );
        }
        let e = err(json!({"schema_version":1,"type":"t","content":1,"zz":1,"aa":2,"Ab":3}));
        assert_eq!(
            (e.field.as_str(), e.code, e.message.as_str()),
            ("message", "unknown_field", "unknown field(s): Ab, aa, zz")
        );
        // Unknown keys are reported before missing ones.
        assert_eq!(err(json!({"x": 1})).code, "unknown_field");
        let e = err(json!({"schema_version":1,"type":"t"}));
        assert_eq!(
            (e.field.as_str(), e.code, e.message.as_str()),
            ("message", "required", "missing field(s): content")
        );
        assert_eq!(
            err(json!({})).message,
            "missing field(s): schema_version, type, content"
        );
        assert_eq!(
            err(json!({"schema_version":1,"type":null,"content":null})).message,
            "missing field(s): type, content"
        );
    }

    #[test]
    fn schema_version_rule() {
        for (v, shown) in [
            (json!(2), "2"),
            (json!(0), "0"),
            (json!(-1), "-1"),
            (json!(true), "true"),
            (json!(1.0), "1.0"),
            (json!("1"), "\"1\""),
            (json!(u64::MAX), "18446744073709551615"),
        ] {
            let e = err(json!({"schema_version": v, "type": "t", "content": 1}));
            assert_eq!(
                (e.field.as_str(), e.code, e.message),
                (
                    "message",
                    "invalid_protocol",
                    format!("unsupported message schema_version: {shown}")
                )
            );
        }
    }

    #[test]
    fn type_and_content_rules() {
        assert_eq!(
            err_with(json!({"type": "Task"})),
            ("type".into(), "invalid_format", "must be 1-64 characters: a lowercase letter, then lowercase letters, digits, '.', '_' or '-'".into())
        );
        assert_eq!(err_with(json!({"type": 5})).1, "invalid_type");
        let mut deep = json!(1);
        for _ in 0..16 {
            deep = json!([deep]);
        }
        assert!(parse_envelope(
            &json!({"schema_version":1,"type":"t","content":deep.clone()}),
            MAX
        )
        .is_ok());
        let (field, code, message) = err_with(json!({"content": [deep]}));
        assert_eq!(
            (field.as_str(), code, message.as_str()),
            (
                "content",
                "too_deep",
                "must be nested no more than 16 levels"
            )
        );
        // Any JSON value is content, a string or false included.
        for c in [json!(""), json!(false), json!(0), json!([]), json!({})] {
            assert!(
                parse_envelope(&json!({"schema_version":1,"type":"t","content":c}), MAX).is_ok()
            );
        }
    }

    #[test]
    fn reference_rules() {
        for key in REFS {
            let (field, code, _) = err_with(json!({ key: " x" }));
            assert_eq!((field.as_str(), code), (key, "surrounding_whitespace"));
            assert_eq!(err_with(json!({ key: 1 })).1, "invalid_type");
            assert_eq!(err_with(json!({ key: "" })).1, "required");
            assert_eq!(err_with(json!({ key: "a".repeat(257) })).1, "too_long");
            assert_eq!(err_with(json!({ key: "a\u{85}b" })).1, "control_character");
            let e = ok(json!({"schema_version":1,"type":"t","content":1, key: "a".repeat(256)}));
            assert!(e.canonical.contains(key));
        }
        let e = ok(json!({"schema_version":1,"type":"t","content":1,"dedupe_key":"k-1"}));
        assert_eq!(e.dedupe_key.as_deref(), Some("k-1"));
    }

    #[test]
    fn created_at_rule() {
        for good in ["2026-01-01T00:00:00Z", "2024-02-29t23:59:59.1234567-05:30"] {
            assert!(parse_envelope(
                &json!({"schema_version":1,"type":"t","content":1,"created_at":good}),
                MAX
            )
            .is_ok());
        }
        let (field, code, _) = err_with(json!({"created_at": "2026-01-01T00:00:00"}));
        assert_eq!((field.as_str(), code), ("created_at", "timezone_required"));
        for bad in ["yesterday", "2023-02-29T00:00:00Z", "2026-01-01", ""] {
            assert_eq!(
                err_with(json!({"created_at": bad})).1,
                "invalid_format",
                "{bad}"
            );
        }
        assert_eq!(err_with(json!({"created_at": 0})).1, "invalid_type");
    }

    #[test]
    fn artifact_rules() {
        let art = |a: Value| err_with(json!({"artifacts": [a]}));
        assert_eq!(err_with(json!({"artifacts": {}})).1, "invalid_type");
        assert_eq!(
            err_with(json!({"artifacts": ["x"]})),
            (
                "artifacts".into(),
                "invalid_type",
                "must be an array of objects".into()
            )
        );
        let many: Vec<Value> = (0..33).map(|_| json!({"uri": "u"})).collect();
        assert_eq!(err_with(json!({"artifacts": many})).1, "too_many");
        let fine: Vec<Value> = (0..32).map(|_| json!({"uri": "u"})).collect();
        assert!(parse_envelope(
            &json!({"schema_version":1,"type":"t","content":1,"artifacts":fine}),
            MAX
        )
        .is_ok());
        assert_eq!(
            art(json!({"uri": "u", "z": 1, "b": 2})),
            (
                "artifacts".into(),
                "unknown_field",
                "unknown field(s): b, z".into()
            )
        );
        assert_eq!(
            art(json!({"name": "x"})),
            (
                "artifacts.uri".into(),
                "required",
                "must be provided".into()
            )
        );
        assert_eq!(art(json!({"uri": null})).1, "required");
        assert_eq!(art(json!({"uri": ""})).1, "required");
        assert_eq!(art(json!({"uri": 1})).1, "invalid_type");
        assert_eq!(art(json!({"uri": " u"})).1, "surrounding_whitespace");
        assert_eq!(art(json!({"uri": "u\u{3000}"})).1, "surrounding_whitespace");
        assert_eq!(art(json!({"uri": "u".repeat(4097)})).1, "too_long");
        assert_eq!(art(json!({"uri": "a\u{1f}b"})).1, "control_character");
        assert_eq!(art(json!({"uri": "a\u{7f}b"})).1, "control_character");
        // U+0080–U+009F are not refused in a URI (the rule names only < U+0020 and U+007F).
        assert!(parse_envelope(
            &json!({"schema_version":1,"type":"t","content":1,"artifacts":[{"uri":"a\u{85}b"}]}),
            MAX
        )
        .is_ok());
        assert!(parse_envelope(&json!({"schema_version":1,"type":"t","content":1,"artifacts":[{"uri":"é".repeat(4096)}]}), MAX).is_ok());
        for key in ["name", "media_type"] {
            let (field, code, _) = art(json!({"uri": "u", key: " \u{a0}"}));
            assert_eq!((field, code), (format!("artifacts.{key}"), "required"));
            assert_eq!(art(json!({"uri": "u", key: ""})).1, "required");
            assert_eq!(art(json!({"uri": "u", key: 1})).1, "invalid_type");
        }
        assert_eq!(art(json!({"uri": "u", "size_bytes": -1})).1, "out_of_range");
        assert_eq!(
            art(json!({"uri": "u", "size_bytes": 1.5})).1,
            "invalid_type"
        );
        assert_eq!(
            art(json!({"uri": "u", "size_bytes": "1"})).1,
            "invalid_type"
        );
        assert_eq!(art(json!({"uri": "u", "sha256": "ab"})).1, "invalid_format");
        assert_eq!(
            art(json!({"uri": "u", "sha256": "g".repeat(64)})).1,
            "invalid_format"
        );
        assert_eq!(art(json!({"uri": "u", "sha256": 1})).1, "invalid_type");
        assert_eq!(
            art(json!({"uri": "u", "metadata": []})).0,
            "artifacts.metadata"
        );
        let e = ok(
            json!({"schema_version":1,"type":"t","content":1,"artifacts":[
            {"metadata": {"k": 1}, "sha256": "AB".repeat(32), "size_bytes": 0, "media_type": "text/plain",
             "name": null, "uri": "file:///a"},
            {"uri": "u", "metadata": {}}]}),
        );
        let expected_sha = "ab".repeat(32);
        assert_eq!(
            e.canonical,
            format!(
                r#"{{"artifacts":[{{"media_type":"text/plain","metadata":{{"k":1}},"sha256":"{expected_sha}","size_bytes":0,"uri":"file:///a"}},{{"uri":"u"}}],"content":1,"schema_version":1,"type":"t"}}"#
            )
        );
    }

    #[test]
    fn metadata_rules() {
        for key in ["metadata", "extensions"] {
            assert_eq!(
                err_with(json!({ key: [] })),
                (key.into(), "invalid_type", "must be an object".into())
            );
            assert_eq!(err_with(json!({ key: "x" })).1, "invalid_type");
            // {"k":"…"} is 8 bytes of framing.
            let exact = json!({ key: {"k": "a".repeat(validate::MAX_METADATA_BYTES - 8)} });
            assert!(parse_envelope(
                &json!({"schema_version":1,"type":"t","content":1, key: exact[key].clone()}),
                MAX
            )
            .is_ok());
            let over = json!({ key: {"k": "a".repeat(validate::MAX_METADATA_BYTES - 7)} });
            let e = err(json!({"schema_version":1,"type":"t","content":1, key: over[key].clone()}));
            assert_eq!(
                (e.field.as_str(), e.code, e.http_status()),
                (key, "too_large", 400)
            );
            let mut deep = json!(1);
            for _ in 0..17 {
                deep = json!({ "d": deep });
            }
            assert_eq!(err_with(json!({ key: deep })).1, "too_deep");
        }
    }

    #[test]
    fn envelope_size_limit() {
        // {"content":"…","schema_version":1,"type":"t"} is 41 bytes of framing.
        let framing = r#"{"content":"","schema_version":1,"type":"t"}"#.len();
        let fits = json!({"schema_version":1,"type":"t","content":"a".repeat(MAX - framing)});
        assert_eq!(ok(fits).canonical.len(), MAX);
        let e = err(json!({"schema_version":1,"type":"t","content":"a".repeat(MAX - framing + 1)}));
        assert_eq!(
            e.to_json().to_string(),
            r#"{"error":"content exceeds 131072 bytes","field":"content","code":"too_large","message":"must encode to at most 131072 UTF-8 bytes"}"#
        );
        assert_eq!(e.http_status(), 413);
        let e = parse_envelope(
            &json!({"schema_version":1,"type":"t","content":"x".repeat(200)}),
            100,
        );
        assert_eq!(
            e.map_err(|e| e.message),
            Err("must encode to at most 100 UTF-8 bytes".into())
        );
    }
}
