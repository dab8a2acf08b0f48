//! Messages as stored, their four JSON representations (`http-api.md` §5), and how stored
//! content is classified on read. Protocol-v1 envelopes (§6: validation, canonical form) are in
//! `envelope`.
//!
//! Invariants: every representation lists its keys in the order the spec does; any stored
//! content, however malformed, deep or legacy, is answered as a value, never a panic (content
//! that is not strict JSON reads as `legacy_text`); reading stored content needs only a little
//! native stack, so the representations are safe on small stream threads.

mod envelope;
use envelope::{check, REQUIRED};
pub use envelope::{parse_envelope, Envelope};

use crate::validate;
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

#[cfg(test)]
mod tests {
    use super::envelope::tests::ok;
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

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default()
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
