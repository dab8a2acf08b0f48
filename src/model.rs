//! Messages as stored, their four JSON representations (`http-api.md` §5), and protocol-v1
//! envelopes (§6): validation, canonical form, and how stored content is classified on read.

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
    /// Timestamp as stored (render with [`clock::render`]).
    pub timestamp: String,
}

impl StoredMessage {
    /// Listing item of `/api/messages` (§5.1).
    pub fn listing_item(&self, full: bool) -> Value {
        let ts = clock::render(&self.timestamp);
        let mut m = Map::new();
        m.insert("seq".into(), json!(self.seq));
        m.insert("id".into(), json!(self.id));
        m.insert("ts".into(), json!(ts));
        m.insert("ts_full".into(), json!(ts));
        m.insert("sender".into(), json!(self.sender));
        m.insert(
            "is_json".into(),
            json!(json::is_json_container(&self.content)),
        );
        if full {
            m.insert("content".into(), json!(self.content));
        } else {
            m.insert("preview".into(), json!(preview(&self.content)));
        }
        if let Encoding::Structured(message) = classify(&self.content) {
            m.insert("encoding".into(), json!("structured"));
            m.insert("message".into(), message);
        }
        Value::Object(m)
    }

    /// Record of `/api/wait` and the MCP tools (§5.3).
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

    /// Detail of `/api/messages/{id}` (§5.2).
    pub fn detail(&self) -> Value {
        let parsed = {
            let t = self.content.trim();
            if t.starts_with('{') || t.starts_with('[') {
                json::parse_stored(t)
            } else {
                None
            }
        };
        let mut m = Map::new();
        m.insert("seq".into(), json!(self.seq));
        m.insert("id".into(), json!(self.id));
        m.insert("channel".into(), json!(self.channel));
        m.insert("sender".into(), json!(self.sender));
        m.insert("ts".into(), json!(clock::render(&self.timestamp)));
        m.insert("is_json".into(), json!(parsed.is_some()));
        m.insert("content".into(), json!(self.content));
        m.insert("content_parsed".into(), parsed.unwrap_or(Value::Null));
        m.insert("bytes".into(), json!(self.content.len()));
        classify(&self.content).append_to(&mut m);
        Value::Object(m)
    }

    /// Data of a live `message` event (§5.4).
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

/// The first 200 code points, plus `…` when there was more.
pub fn preview(content: &str) -> String {
    match content.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &content[..cut]),
        None => content.to_owned(),
    }
}

/// The idempotency fingerprint of stored content: lowercase hex SHA-256 over `"text"`, U+0000,
/// then the content (the original's, so replays match across versions).
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
    /// JSON, but not an envelope.
    LegacyJson,
    /// A valid protocol-v1 envelope, decoded for responses.
    Structured(Value),
    /// An envelope of another integer version (the warning text).
    Unsupported(String),
    /// Looks like an envelope but breaks a rule (the warning text).
    Invalid(String),
}

impl Encoding {
    /// The `encoding` value.
    pub fn name(&self) -> &'static str {
        match self {
            Encoding::LegacyText => "legacy_text",
            Encoding::LegacyJson => "legacy_json",
            Encoding::Structured(_) => "structured",
            Encoding::Unsupported(_) => "unsupported",
            Encoding::Invalid(_) => "invalid",
        }
    }

    /// Add `encoding` and then `message` or `parse_warning` to a representation.
    fn append_to(self, m: &mut Map<String, Value>) {
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

/// Classify stored content (§6.3). Applies to every row, legacy ones included.
pub fn classify(content: &str) -> Encoding {
    let Some(v) = json::parse_stored(content) else {
        return Encoding::LegacyText;
    };
    let Some(obj) = v.as_object() else {
        return Encoding::LegacyJson;
    };
    if !REQUIRED.iter().all(|k| obj.contains_key(*k)) {
        return Encoding::LegacyJson;
    }
    match obj.get("schema_version").and_then(integer) {
        None => Encoding::Invalid("schema_version must be an integer".into()),
        Some(n) if n != 1 => Encoding::Unsupported(format!("unsupported schema_version {n}")),
        Some(_) => match check(&v) {
            Ok(decoded) => Encoding::Structured(Value::Object(decoded)),
            Err(e) => Encoding::Invalid(e.error),
        },
    }
}

/// A validated envelope, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Canonical JSON text (the stored content).
    pub canonical: String,
    /// The envelope's `dedupe_key`, used when the send has no `idempotency_key`.
    pub dedupe_key: Option<String>,
}

/// Validate a send's `message` (§6.1) and encode it canonically (§6.2); the encoding must fit
/// `max_bytes`.
pub fn parse_envelope(v: &Value, max_bytes: usize) -> Result<Envelope, FieldError> {
    let decoded = check(v)?;
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

const REQUIRED: [&str; 3] = ["schema_version", "type", "content"];
const REFS: [&str; 6] = [
    "thread_id",
    "reply_to",
    "correlation_id",
    "causation_id",
    "recipient",
    "dedupe_key",
];
const OPTIONAL_TAIL: [&str; 4] = ["created_at", "artifacts", "metadata", "extensions"];
const ARTIFACT_KEYS: [&str; 6] = [
    "uri",
    "name",
    "media_type",
    "size_bytes",
    "sha256",
    "metadata",
];
const MAX_ARTIFACTS: usize = 32;
const MAX_URI_CHARS: usize = 4096;

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) if n.is_i64() => n.as_i64(),
        Value::Number(n) if n.is_u64() => Some(i64::MAX),
        _ => None,
    }
}

fn set(v: Option<&Value>) -> Option<&Value> {
    v.filter(|x| !x.is_null())
}

/// Validate an envelope and return it reduced to the keys that are set, in response order
/// (schema_version, type, content, then the optional keys).
fn check(v: &Value) -> Result<Map<String, Value>, FieldError> {
    let obj = v
        .as_object()
        .ok_or_else(|| FieldError::new("message", "invalid_type", "must be an object"))?;
    let mut unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !REQUIRED.contains(k) && !REFS.contains(k) && !OPTIONAL_TAIL.contains(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(FieldError::new(
            "message",
            "unknown_field",
            format!("unknown field(s): {}", unknown.join(", ")),
        ));
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|k| set(obj.get(*k)).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(FieldError::new(
            "message",
            "required",
            format!("missing field(s): {}", missing.join(", ")),
        ));
    }
    let version = &obj["schema_version"];
    if integer(version) != Some(1) {
        return Err(FieldError::new(
            "message",
            "invalid_protocol",
            format!("unsupported message schema_version: {version}"),
        ));
    }
    let mut out = Map::new();
    out.insert("schema_version".into(), json!(1));
    let ty = validate::message_type("type", &obj["type"])?;
    out.insert("type".into(), json!(ty));
    validate::json_value("content", &obj["content"], validate::ENVELOPE_DEPTH)?;
    out.insert("content".into(), obj["content"].clone());
    for key in REFS {
        if let Some(r) = set(obj.get(key)) {
            let s = validate::identity(key, r, validate::MAX_REF_CHARS)?;
            out.insert(key.into(), json!(s));
        }
    }
    if let Some(c) = set(obj.get("created_at")) {
        let s = c
            .as_str()
            .ok_or_else(|| FieldError::new("created_at", "invalid_type", "must be a string"))?;
        match clock::parse_rfc3339(s) {
            Ok(_) => {}
            Err(clock::Rfc3339Error::NoOffset) => {
                return Err(FieldError::new(
                    "created_at",
                    "timezone_required",
                    "must include a UTC offset such as Z or +02:00",
                ))
            }
            Err(clock::Rfc3339Error::Invalid) => {
                return Err(FieldError::new(
                    "created_at",
                    "invalid_format",
                    "must be an RFC 3339 date-time",
                ))
            }
        }
        out.insert("created_at".into(), json!(s));
    }
    if let Some(a) = set(obj.get("artifacts")) {
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
        if let Some(m) = set(obj.get(key)) {
            if let Some(m) = check_metadata(key, m)? {
                out.insert(key.into(), m);
            }
        }
    }
    Ok(out)
}

/// An object of at most 16 KiB canonical JSON, depth ≤ 16; `None` when empty (dropped).
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

fn check_artifact(v: &Value) -> Result<Value, FieldError> {
    let obj = v
        .as_object()
        .ok_or_else(|| FieldError::new("artifacts", "invalid_type", "items must be objects"))?;
    let mut unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !ARTIFACT_KEYS.contains(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(FieldError::new(
            "artifacts",
            "unknown_field",
            format!("unknown field(s): {}", unknown.join(", ")),
        ));
    }
    let mut out = Map::new();
    let uri = set(obj.get("uri"))
        .ok_or_else(|| FieldError::new("artifacts.uri", "required", "must be provided"))?
        .as_str()
        .ok_or_else(|| FieldError::new("artifacts.uri", "invalid_type", "must be a string"))?;
    if uri.is_empty() {
        return Err(FieldError::new(
            "artifacts.uri",
            "required",
            "must not be empty",
        ));
    }
    if uri.starts_with(char::is_whitespace) || uri.ends_with(char::is_whitespace) {
        return Err(FieldError::new(
            "artifacts.uri",
            "surrounding_whitespace",
            "must not start or end with whitespace",
        ));
    }
    if uri.chars().count() > MAX_URI_CHARS {
        return Err(FieldError::new(
            "artifacts.uri",
            "too_long",
            format!("must be at most {MAX_URI_CHARS} characters"),
        ));
    }
    if uri.chars().any(|c| c < '\u{20}' || c == '\u{7f}') {
        return Err(FieldError::new(
            "artifacts.uri",
            "control_character",
            "must not contain control characters",
        ));
    }
    out.insert("uri".into(), json!(uri));
    for key in ["name", "media_type"] {
        if let Some(x) = set(obj.get(key)) {
            let field = format!("artifacts.{key}");
            let s = x
                .as_str()
                .ok_or_else(|| FieldError::new(&field, "invalid_type", "must be a string"))?;
            if s.trim().is_empty() {
                return Err(FieldError::new(&field, "required", "must not be blank"));
            }
            out.insert(key.into(), json!(s));
        }
    }
    if let Some(x) = set(obj.get("size_bytes")) {
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
    if let Some(x) = set(obj.get("sha256")) {
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
    if let Some(m) = set(obj.get("metadata")) {
        if let Some(m) = check_metadata("artifacts.metadata", m)? {
            out.insert("metadata".into(), m);
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn canonical_example_of_the_spec() {
        let e = parse_envelope(
            &json!({"schema_version":1,"type":"task","content":{"k":1},"metadata":{}}),
            131_072,
        )
        .unwrap();
        assert_eq!(
            e.canonical,
            r#"{"content":{"k":1},"schema_version":1,"type":"task"}"#
        );
        assert_eq!(e.dedupe_key, None);
    }

    #[test]
    fn envelope_errors() {
        let code = |v: Value| parse_envelope(&v, 131_072).unwrap_err();
        let e = code(json!("x"));
        assert_eq!((e.field.as_str(), e.code), ("message", "invalid_type"));
        let e = code(json!({"schema_version":1,"type":"t","content":1,"zz":1,"aa":2}));
        assert_eq!(e.message, "unknown field(s): aa, zz");
        let e = code(json!({"schema_version":1,"type":"t"}));
        assert_eq!(
            (e.code, e.message.as_str()),
            ("required", "missing field(s): content")
        );
        let e = code(json!({"schema_version":2,"type":"t","content":1}));
        assert_eq!(
            (e.code, e.message.as_str()),
            ("invalid_protocol", "unsupported message schema_version: 2")
        );
        assert_eq!(
            code(json!({"schema_version":true,"type":"t","content":1})).code,
            "invalid_protocol"
        );
        assert_eq!(
            code(json!({"schema_version":1,"type":"T","content":1})).code,
            "invalid_format"
        );
        let e = code(
            json!({"schema_version":1,"type":"t","content":1,"created_at":"2026-01-01T00:00:00"}),
        );
        assert_eq!(e.code, "timezone_required");
        let e = code(json!({"schema_version":1,"type":"t","content":1,"artifacts":[{"name":"x"}]}));
        assert_eq!((e.field.as_str(), e.code), ("artifacts.uri", "required"));
        let e = code(
            json!({"schema_version":1,"type":"t","content":1,"artifacts":[{"uri":"u","x":1}]}),
        );
        assert_eq!((e.field.as_str(), e.code), ("artifacts", "unknown_field"));
        let many: Vec<Value> = (0..33).map(|_| json!({"uri":"u"})).collect();
        assert_eq!(
            code(json!({"schema_version":1,"type":"t","content":1,"artifacts":many})).code,
            "too_many"
        );
        let e = code(json!({"schema_version":1,"type":"t","content":1,"reply_to":" x"}));
        assert_eq!(
            (e.field.as_str(), e.code),
            ("reply_to", "surrounding_whitespace")
        );
        let big = "x".repeat(200);
        let e =
            parse_envelope(&json!({"schema_version":1,"type":"t","content":big}), 100).unwrap_err();
        assert_eq!(
            (e.http_status(), e.message.as_str()),
            (413, "must encode to at most 100 UTF-8 bytes")
        );
    }

    #[test]
    fn dedupe_key_and_artifacts_normalised() {
        let e = parse_envelope(
            &json!({"schema_version":1,"type":"t","content":null,"dedupe_key":"k",
                    "artifacts":[{"uri":"file:///a","sha256":"AB".repeat(32),"metadata":{}}]}),
            131_072,
        );
        // content null counts as missing
        assert_eq!(e.unwrap_err().code, "required");
        let e = parse_envelope(
            &json!({"schema_version":1,"type":"t","content":0,"dedupe_key":"k",
                    "artifacts":[{"uri":"file:///a","sha256":"AB".repeat(32),"metadata":{}}]}),
            131_072,
        )
        .unwrap();
        assert_eq!(e.dedupe_key.as_deref(), Some("k"));
        assert!(e.canonical.contains(&"ab".repeat(32)));
        assert!(!e.canonical.contains("metadata"));
    }

    #[test]
    fn classification_rows() {
        assert_eq!(classify("hello"), Encoding::LegacyText);
        assert_eq!(classify("[NaN]"), Encoding::LegacyText);
        assert_eq!(classify("42"), Encoding::LegacyJson);
        assert_eq!(classify(r#"{"type":"x"}"#), Encoding::LegacyJson);
        assert_eq!(
            classify(r#"{"schema_version":"1","type":"t","content":1}"#),
            Encoding::Invalid("schema_version must be an integer".into())
        );
        assert_eq!(
            classify(r#"{"schema_version":2,"type":"t","content":1}"#),
            Encoding::Unsupported("unsupported schema_version 2".into())
        );
        assert_eq!(
            classify(r#"{"schema_version":1,"type":"BAD","content":1}"#).name(),
            "invalid"
        );
        match classify(r#"{"content":{"k":1},"schema_version":1,"type":"task","thread_id":"t"}"#) {
            Encoding::Structured(v) => {
                let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
                assert_eq!(keys, ["schema_version", "type", "content", "thread_id"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn representations() {
        let m = msg(r#"{"content":{"k":1},"schema_version":1,"type":"task"}"#);
        let d = m.detail();
        let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "seq",
                "id",
                "channel",
                "sender",
                "ts",
                "is_json",
                "content",
                "content_parsed",
                "bytes",
                "encoding",
                "message"
            ]
        );
        assert_eq!(d["ts"], "2026-05-28T10:00:02.000000Z");
        let l = m.listing_item(false);
        let keys: Vec<&String> = l.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["seq", "id", "ts", "ts_full", "sender", "is_json", "preview", "encoding", "message"]
        );
        let plain = msg("[NaN, Infinity]").detail();
        assert_eq!(plain["is_json"], false);
        assert_eq!(plain["content_parsed"], Value::Null);
        assert_eq!(plain["encoding"], "legacy_text");
        let r = msg("hi").record();
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
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
    }

    #[test]
    fn preview_cut() {
        assert_eq!(preview(&"é".repeat(200)), "é".repeat(200));
        assert_eq!(preview(&"é".repeat(201)), format!("{}…", "é".repeat(200)));
    }

    #[test]
    fn fingerprint_is_hex_sha256() {
        let f = fingerprint("hello");
        assert_eq!(f.len(), 64);
        assert!(f.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
