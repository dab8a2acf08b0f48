//! Messages as stored, their four JSON representations (`http-api.md` §5), and protocol-v1
//! envelopes (§6): validation, canonical form, and how stored content is classified on read.
//!
//! Invariants: every representation lists its keys in the order the spec does; any stored
//! content, however malformed, deep or legacy, is answered as a value, never a panic (content
//! that is not strict JSON reads as `legacy_text`); reading stored content needs only a little
//! native stack, so the representations are safe on small stream threads.

use crate::validate::{self, FieldError};
use crate::{clock, json};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// A row of the `messages` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Global sequence number.
    pub seq: i64,
    /// Message id (a UUID for rows we write; any string in legacy rows).
    pub id: String,
    /// Channel name.
    pub channel: String,
    /// Sender name.
    pub sender: String,
    /// Content verbatim, or the canonical JSON of an envelope.
    pub content: String,
    /// Timestamp as stored (rendered with [`clock::render`] on output).
    pub timestamp: String,
}

/// Stored content read as JSON, once, for a representation.
struct Reading {
    /// `is_json` of §5.1.
    is_json: bool,
    /// `content_parsed` of §5.2: the parsed value when `is_json`.
    parsed: Option<Value>,
    /// §6.3.
    encoding: Encoding,
}

impl Reading {
    fn of(content: &str) -> Reading {
        let whole = json::parse_stored(content);
        let encoding = classify_parsed(whole.as_ref());
        let trimmed = content.trim_matches(validate::is_unicode_whitespace);
        let container = trimmed.starts_with('{') || trimmed.starts_with('[');
        let parsed = match whole {
            // The whole text parsed, so trimming removed only JSON whitespace and `trimmed`
            // is the value's own text.
            Some(v) if container => Some(v),
            Some(v) => {
                json::drop_flat(v);
                None
            }
            // Not JSON as a whole, but JSON once non-JSON whitespace (NBSP, U+3000, …) around
            // it is trimmed: `is_json` trims Unicode whitespace.
            None if container && trimmed.len() != content.trim_matches(is_json_ws).len() => {
                json::parse_stored(trimmed)
            }
            None => None,
        };
        Reading {
            is_json: parsed.is_some(),
            parsed,
            encoding,
        }
    }
}

/// RFC 8259 whitespace.
fn is_json_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

impl StoredMessage {
    /// Listing item of `/api/messages` (§5.1): `seq`, `id`, `ts`, `ts_full`, `sender`,
    /// `is_json`, `preview` (or `content` when `full`), then `encoding` and `message` only for
    /// structured envelopes.
    pub fn listing_item(&self, full: bool) -> Value {
        let ts = clock::render(&self.timestamp);
        let reading = Reading::of(&self.content);
        let mut m = Map::new();
        m.insert("seq".into(), json!(self.seq));
        m.insert("id".into(), json!(self.id));
        m.insert("ts".into(), json!(ts));
        m.insert("ts_full".into(), json!(ts));
        m.insert("sender".into(), json!(self.sender));
        m.insert("is_json".into(), json!(reading.is_json));
        if full {
            m.insert("content".into(), json!(self.content));
        } else {
            m.insert("preview".into(), json!(preview(&self.content)));
        }
        if let Encoding::Structured(message) = reading.encoding {
            m.insert("encoding".into(), json!("structured"));
            m.insert("message".into(), message);
        }
        if let Some(v) = reading.parsed {
            json::drop_flat(v);
        }
        Value::Object(m)
    }

    /// Record of `/api/wait` and the MCP tools (§5.3): `seq`, `id`, `channel`, `sender`,
    /// `content`, `timestamp`, `encoding`, then `message` (structured) or `parse_warning`
    /// (unsupported / invalid).
    pub fn record(&self) -> Value {
        let mut m = Map::new();
        m.insert("seq".into(), json!(self.seq));
        m.insert("id".into(), json!(self.id));
        m.insert("channel".into(), json!(self.channel));
        m.insert("sender".into(), json!(self.sender));
        m.insert("content".into(), json!(self.content));
        m.insert("timestamp".into(), json!(clock::render(&self.timestamp)));
        classify(&self.content).append_to(&mut m);
        Value::Object(m)
    }

    /// Detail of `/api/messages/{id}` (§5.2): `seq`, `id`, `channel`, `sender`, `ts`,
    /// `is_json`, `content`, `content_parsed`, `bytes`, `encoding`, then `message` or
    /// `parse_warning`.
    pub fn detail(&self) -> Value {
        let reading = Reading::of(&self.content);
        let mut m = Map::new();
        m.insert("seq".into(), json!(self.seq));
        m.insert("id".into(), json!(self.id));
        m.insert("channel".into(), json!(self.channel));
        m.insert("sender".into(), json!(self.sender));
        m.insert("ts".into(), json!(clock::render(&self.timestamp)));
        m.insert("is_json".into(), json!(reading.is_json));
        m.insert("content".into(), json!(self.content));
        m.insert(
            "content_parsed".into(),
            reading.parsed.unwrap_or(Value::Null),
        );
        m.insert("bytes".into(), json!(self.content.len()));
        reading.encoding.append_to(&mut m);
        Value::Object(m)
    }

    /// Data of a live `message` event (§5.4): `seq`, `id`, `sender`, `content`, `timestamp`.
    pub fn event_data(&self) -> Value {
        json!({
            "seq": self.seq,
            "id": self.id,
            "sender": self.sender,
            "content": self.content,
            "timestamp": clock::render(&self.timestamp),
        })
    }
}

/// Longest preview, in code points.
const PREVIEW_CHARS: usize = 200;

/// The listing `preview` (§5.1): the content if it has at most 200 code points, else its first
/// 200 code points and `…` (U+2026).
pub fn preview(content: &str) -> String {
    match content.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &content[..cut]),
        None => content.to_owned(),
    }
}

/// The idempotency fingerprint of stored content (`storage.md` §2.1): lowercase hex SHA-256
/// over the UTF-8 bytes of `"text"`, U+0000, then the content. The original's formula, so a
/// replay matches across versions.
pub fn fingerprint(content: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"text\0");
    h.update(content.as_bytes());
    crate::ids::hex(&h.finalize())
}

/// How stored content reads back (§6.3).
#[derive(Debug, Clone, PartialEq)]
pub enum Encoding {
    /// Not strict JSON.
    LegacyText,
    /// JSON, but not an object having all of `schema_version`, `type` and `content`.
    LegacyJson,
    /// A valid protocol-v1 envelope, decoded for responses: `schema_version`, `type`,
    /// `content`, then the optional keys present.
    Structured(Value),
    /// An envelope of another integer version; the `parse_warning` text.
    Unsupported(String),
    /// Looks like an envelope but breaks a rule; the `parse_warning` text.
    Invalid(String),
}

impl Encoding {
    /// The `encoding` value: `legacy_text`, `legacy_json`, `structured`, `unsupported` or
    /// `invalid`.
    pub fn name(&self) -> &'static str {
        match self {
            Encoding::LegacyText => "legacy_text",
            Encoding::LegacyJson => "legacy_json",
            Encoding::Structured(_) => "structured",
            Encoding::Unsupported(_) => "unsupported",
            Encoding::Invalid(_) => "invalid",
        }
    }

    /// Add `encoding`, then `message` (structured) or `parse_warning` (unsupported, invalid),
    /// to a representation being built.
    pub fn append_to(self, m: &mut Map<String, Value>) {
        m.insert("encoding".into(), json!(self.name()));
        match self {
            Encoding::Structured(v) => {
                m.insert("message".into(), v);
            }
            Encoding::Unsupported(w) | Encoding::Invalid(w) => {
                m.insert("parse_warning".into(), json!(w));
            }
            Encoding::LegacyText | Encoding::LegacyJson => {}
        }
    }
}

/// Classify stored content (§6.3). Applies to every row, legacy text that happens to look
/// like an envelope included.
pub fn classify(content: &str) -> Encoding {
    let parsed = json::parse_stored(content);
    let encoding = classify_parsed(parsed.as_ref());
    if let Some(v) = parsed {
        json::drop_flat(v);
    }
    encoding
}

/// §6.3 on content already parsed (`None`: not strict JSON).
fn classify_parsed(parsed: Option<&Value>) -> Encoding {
    let Some(v) = parsed else {
        return Encoding::LegacyText;
    };
    let Some(obj) = v.as_object() else {
        return Encoding::LegacyJson;
    };
    if !REQUIRED.iter().all(|k| obj.contains_key(*k)) {
        return Encoding::LegacyJson;
    }
    match obj.get("schema_version") {
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
            if n.as_u64() == Some(1) {
                match check(obj) {
                    Ok(decoded) => Encoding::Structured(Value::Object(decoded)),
                    Err(e) => Encoding::Invalid(e.error),
                }
            } else {
                Encoding::Unsupported(format!("unsupported schema_version {n}"))
            }
        }
        _ => Encoding::Invalid("schema_version must be an integer".into()),
    }
}

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
const REQUIRED: [&str; 3] = ["schema_version", "type", "content"];
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
fn check(obj: &Map<String, Value>) -> Result<Map<String, Value>, FieldError> {
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
mod tests {
    use super::*;

    const MAX: usize = validate::DEFAULT_MAX_MESSAGE_BYTES;

    fn msg(content: &str) -> StoredMessage {
        StoredMessage {
            seq: 3,
            id: "m".into(),
            channel: "demo:a".into(),
            sender: "s".into(),
            content: content.into(),
            timestamp: "2026-05-28T10:00:02Z".into(),
        }
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

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

    fn ok(v: Value) -> Envelope {
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

    #[test]
    fn classification_rows() {
        // not strict JSON
        for text in [
            "hello",
            "[NaN]",
            "[NaN, Infinity]",
            "{oops",
            "",
            " ",
            "{} {}",
            "\u{a0}{}",
        ] {
            assert_eq!(classify(text), Encoding::LegacyText, "{text:?}");
        }
        let deep = format!("{}{}", "[".repeat(257), "]".repeat(257));
        assert_eq!(classify(&deep), Encoding::LegacyText);
        // JSON, but not an envelope-shaped object
        for text in [
            "42",
            "\"x\"",
            "null",
            "[1]",
            "{}",
            r#"{"type":"x"}"#,
            r#"{"schema_version":1,"type":"t"}"#,
            r#"[{"schema_version":1,"type":"t","content":1}]"#,
        ] {
            assert_eq!(classify(text), Encoding::LegacyJson, "{text}");
        }
        // schema_version not an integer
        for v in ["\"1\"", "1.0", "1.5", "true", "null", "{}"] {
            let text = format!(r#"{{"schema_version":{v},"type":"t","content":1}}"#);
            assert_eq!(
                classify(&text),
                Encoding::Invalid("schema_version must be an integer".into()),
                "{text}"
            );
        }
        // another integer version
        for v in ["2", "0", "-3", "18446744073709551615"] {
            let text = format!(r#"{{"schema_version":{v},"type":"t","content":1}}"#);
            assert_eq!(
                classify(&text),
                Encoding::Unsupported(format!("unsupported schema_version {v}"))
            );
        }
        // version 1, failing §6.1
        for (text, warning) in [
            (r#"{"schema_version":1,"type":"BAD","content":1}"#, "type: must be 1-64 characters: a lowercase letter, then lowercase letters, digits, '.', '_' or '-'"),
            (r#"{"schema_version":1,"type":"t","content":1,"x":1}"#, "message: unknown field(s): x"),
            (r#"{"schema_version":1,"type":"t","content":null}"#, "message: missing field(s): content"),
            (r#"{"schema_version":1,"type":"t","content":1,"reply_to":""}"#, "reply_to: must not be empty"),
            (r#"{"schema_version":1,"type":"t","content":1,"created_at":"2026-01-01T00:00:00"}"#, "created_at: must include a UTC offset such as Z or +02:00"),
            (r#"{"schema_version":1,"type":"t","content":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}"#, "content: must be nested no more than 16 levels"),
        ] {
            assert_eq!(classify(text), Encoding::Invalid(warning.into()), "{text}");
            assert_eq!(classify(text).name(), "invalid");
        }
        // valid
        match classify(r#" {"thread_id":"t","content":{"k":1},"type":"task","schema_version":1} "#)
        {
            Encoding::Structured(v) => {
                assert_eq!(keys(&v), ["schema_version", "type", "content", "thread_id"]);
                assert_eq!(
                    v,
                    json!({"schema_version":1,"type":"task","content":{"k":1},"thread_id":"t"})
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Encoding::LegacyText.name(), "legacy_text");
        assert_eq!(Encoding::LegacyJson.name(), "legacy_json");
        assert_eq!(Encoding::Structured(json!({})).name(), "structured");
        assert_eq!(Encoding::Unsupported(String::new()).name(), "unsupported");
    }

    #[test]
    fn envelope_round_trip() {
        let sent = json!({
            "extensions": {"x": 1}, "metadata": {"m": [1]}, "artifacts": [{"uri": "u", "size_bytes": 3}],
            "created_at": "2026-01-01T00:00:00Z", "dedupe_key": "d", "recipient": "r",
            "causation_id": "c", "correlation_id": "o", "reply_to": "p", "thread_id": "t",
            "content": "hi", "type": "note", "schema_version": 1,
        });
        let e = ok(sent.clone());
        let Encoding::Structured(decoded) = classify(&e.canonical) else {
            panic!("not structured");
        };
        assert_eq!(
            keys(&decoded),
            [
                "schema_version",
                "type",
                "content",
                "thread_id",
                "reply_to",
                "correlation_id",
                "causation_id",
                "recipient",
                "dedupe_key",
                "created_at",
                "artifacts",
                "metadata",
                "extensions"
            ]
        );
        assert_eq!(decoded, sent);
        // Storing the decoded message again gives the same bytes.
        assert_eq!(ok(decoded).canonical, e.canonical);
    }

    #[test]
    fn representations() {
        let m = msg(r#"{"content":{"k":1},"schema_version":1,"type":"task"}"#);
        let d = m.detail();
        assert_eq!(
            d.to_string(),
            r#"{"seq":3,"id":"m","channel":"demo:a","sender":"s","ts":"2026-05-28T10:00:02.000000Z","is_json":true,"content":"{\"content\":{\"k\":1},\"schema_version\":1,\"type\":\"task\"}","content_parsed":{"content":{"k":1},"schema_version":1,"type":"task"},"bytes":52,"encoding":"structured","message":{"schema_version":1,"type":"task","content":{"k":1}}}"#
        );
        let l = m.listing_item(false);
        assert_eq!(
            l.to_string(),
            r#"{"seq":3,"id":"m","ts":"2026-05-28T10:00:02.000000Z","ts_full":"2026-05-28T10:00:02.000000Z","sender":"s","is_json":true,"preview":"{\"content\":{\"k\":1},\"schema_version\":1,\"type\":\"task\"}","encoding":"structured","message":{"schema_version":1,"type":"task","content":{"k":1}}}"#
        );
        assert_eq!(
            keys(&m.listing_item(true)),
            ["seq", "id", "ts", "ts_full", "sender", "is_json", "content", "encoding", "message"]
        );
        let r = m.record();
        assert_eq!(
            r.to_string(),
            r#"{"seq":3,"id":"m","channel":"demo:a","sender":"s","content":"{\"content\":{\"k\":1},\"schema_version\":1,\"type\":\"task\"}","timestamp":"2026-05-28T10:00:02.000000Z","encoding":"structured","message":{"schema_version":1,"type":"task","content":{"k":1}}}"#
        );
        assert_eq!(
            msg("five").event_data().to_string(),
            r#"{"seq":3,"id":"m","sender":"s","content":"five","timestamp":"2026-05-28T10:00:02.000000Z"}"#
        );
        // Legacy text: no encoding in the listing, legacy_text elsewhere.
        let plain = msg("[NaN, Infinity]");
        let d = plain.detail();
        assert_eq!(
            (&d["is_json"], &d["content_parsed"], &d["encoding"]),
            (&json!(false), &Value::Null, &json!("legacy_text"))
        );
        assert_eq!(d["bytes"], 15);
        assert_eq!(
            keys(&plain.listing_item(false)),
            ["seq", "id", "ts", "ts_full", "sender", "is_json", "preview"]
        );
        assert_eq!(
            keys(&plain.record()),
            [
                "seq",
                "id",
                "channel",
                "sender",
                "content",
                "timestamp",
                "encoding"
            ]
        );
        // Unsupported and invalid carry parse_warning.
        let other = msg(r#"{"schema_version":2,"type":"t","content":1}"#);
        assert_eq!(
            other.record()["parse_warning"],
            "unsupported schema_version 2"
        );
        assert_eq!(keys(&other.detail()).last(), Some(&"parse_warning"));
        assert_eq!(keys(&other.listing_item(false)).last(), Some(&"preview"));
        // Scalars are JSON for encoding, but not is_json.
        let d = msg("42").detail();
        assert_eq!(
            (&d["is_json"], &d["content_parsed"], &d["encoding"]),
            (&json!(false), &Value::Null, &json!("legacy_json"))
        );
        // Surrounding Unicode whitespace is trimmed for is_json only.
        let d = msg("\u{a0}[1, 2]\u{3000}").detail();
        assert_eq!(
            (&d["is_json"], &d["content_parsed"], &d["encoding"]),
            (&json!(true), &json!([1, 2]), &json!("legacy_text"))
        );
        let d = msg(" \n[1]\t").detail();
        assert_eq!(
            (&d["is_json"], &d["content_parsed"], &d["encoding"]),
            (&json!(true), &json!([1]), &json!("legacy_json"))
        );
        // Unrecognised timestamps and multi-byte content pass through.
        let mut odd = msg("é");
        odd.timestamp = "yesterday".into();
        assert_eq!(odd.detail()["ts"], "yesterday");
        assert_eq!(odd.detail()["bytes"], 2);
    }

    #[test]
    fn deep_stored_content_is_cheap_to_read() {
        // Representations run on 256 KiB stream threads; 256-level content must fit easily,
        // even in a debug build.
        let deep = format!("{}{}", "[".repeat(256), "]".repeat(256));
        let deeper = format!("{}{}", r#"{"a":"#.repeat(300), "}".repeat(300));
        let done = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let r = msg(&deep).record();
                let l = msg(&deep).listing_item(true);
                let x = msg(&deeper).record();
                (
                    r["encoding"].clone(),
                    l["is_json"].clone(),
                    x["encoding"].clone(),
                )
            })
            .map(|t| t.join());
        match done {
            Ok(Ok((r, l, x))) => {
                assert_eq!(
                    (r, l, x),
                    (json!("legacy_json"), json!(true), json!("legacy_text"))
                );
            }
            _ => panic!("thread failed"),
        }
    }

    #[test]
    fn preview_cut() {
        assert_eq!(preview(""), "");
        assert_eq!(preview(&"é".repeat(200)), "é".repeat(200));
        assert_eq!(preview(&"é".repeat(201)), format!("{}…", "é".repeat(200)));
        assert_eq!(
            preview(&"😀".repeat(5000)),
            format!("{}…", "😀".repeat(200))
        );
        // Code points, not grapheme clusters: a combining mark counts on its own.
        let s = "e\u{301}".repeat(101);
        assert_eq!(preview(&s).chars().count(), 201);
    }

    #[test]
    fn fingerprints_match_the_original() {
        // Reference values from Python: sha256(("text\0" + content).encode()).hexdigest().
        assert_eq!(
            fingerprint("hello"),
            "306f89347195cc05509ddca47462e259aac6fd01943d2557004ea6f26370cd58"
        );
        assert_eq!(
            fingerprint(r#"{"content":{"k":1},"schema_version":1,"type":"task"}"#),
            "32867fee92c644e0bd9d4948f20da1d4353a4d8887eaad311fe151c130a83736"
        );
        assert_eq!(
            fingerprint("é😀"),
            "abf5cae17688af9578fbe38fd44a543f6323a05295afe6358236631fb7cd3c86"
        );
    }
}
