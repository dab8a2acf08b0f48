//! Strict JSON: request bodies (RFC 8259, UTF-8 only, no BOM, no NaN/Infinity, no lone
//! surrogates, at most 256 levels deep; `http-api.md` §1), stored content read back as JSON
//! (`is_json`, `content_parsed`, envelope classification; §5, §6.3), and the canonical
//! serialisation used for envelopes and metadata (§6.2).
//!
//! Invariant: nothing here recurses on the nesting of its input without a bound. A body's depth
//! is checked by a byte scan *before* serde parses it (request workers have large stacks);
//! stored content, which any thread may classify, goes through a parser that keeps its own
//! stack on the heap and hands only strings and numbers to serde_json, so both parsers agree
//! on what a string or a number is. [`canonical`] is iterative too.

use crate::validate::is_unicode_whitespace;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Deepest a request body may nest (the outermost array/object is level 1). Stored content
/// nested deeper is treated as not JSON.
pub const MAX_BODY_DEPTH: usize = 256;

/// Why a body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Not strict JSON: empty, a byte-order mark, invalid UTF-8, a lone surrogate escape,
    /// `NaN`/`Infinity`, trailing bytes, any syntax error. Answered `invalid JSON body`.
    Invalid,
    /// Nested deeper than [`MAX_BODY_DEPTH`]; found before any parsing.
    TooDeep,
}

/// Whether the array/object nesting of `bytes` goes past `limit`. Brackets inside strings
/// (escaped quotes included) do not count. On malformed input the answer is still an upper
/// bound of the depth serde reaches before it gives up, which is all the caller needs.
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

/// Parse a request body strictly (`http-api.md` §1): [`BodyError::TooDeep`] past 256 levels,
/// [`BodyError::Invalid`] for anything that is not one strict RFC 8259 document.
pub fn parse_body(bytes: &[u8]) -> Result<Value, BodyError> {
    if depth_exceeds(bytes, MAX_BODY_DEPTH) {
        return Err(BodyError::TooDeep);
    }
    // serde_json rejects a BOM, invalid UTF-8, lone surrogates, NaN/Infinity and trailing
    // bytes by itself; the tests pin each of these down. Its recursion limit (128) is lifted
    // because the scan above already bounds the depth at 256.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let v = serde::Deserialize::deserialize(&mut de).map_err(|_| BodyError::Invalid)?;
    de.end().map_err(|_| BodyError::Invalid)?;
    Ok(v)
}

/// Parse stored text as one strict JSON document (the same strictness as [`parse_body`]),
/// or `None`. Text nested deeper than [`MAX_BODY_DEPTH`] counts as not JSON. Uses a few
/// hundred bytes of native stack whatever the input, so it is safe on small stream threads.
pub fn parse_stored(text: &str) -> Option<Value> {
    parse_flat(text.as_bytes(), MAX_BODY_DEPTH).ok()
}

/// `is_json` of `http-api.md` §5.1: the text, with surrounding Unicode whitespace trimmed,
/// starts with `{` or `[` and parses as strict JSON. Scalars (`42`, `"x"`) are not JSON here,
/// and neither is `[NaN, Infinity]` or anything nested deeper than 256 levels.
pub fn is_strict_json_container(s: &str) -> bool {
    parse_container(s).map(drop_flat).is_some()
}

/// The parsed value behind [`is_strict_json_container`] (`content_parsed` of §5.2).
pub fn parse_container(s: &str) -> Option<Value> {
    let t = s.trim_matches(is_unicode_whitespace);
    if t.starts_with('{') || t.starts_with('[') {
        parse_stored(t)
    } else {
        None
    }
}

/// Drop a value without recursion. The derived drop of a 256-level value needs ~90 KiB of
/// stack in a debug build; threads with small stacks that parse stored content use this.
pub fn drop_flat(v: Value) {
    let mut pending = vec![v];
    while let Some(v) = pending.pop() {
        match v {
            Value::Array(items) => pending.extend(items),
            Value::Object(members) => pending.extend(members.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// JSON insignificant whitespace (RFC 8259 `ws`).
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// A string token starting at `b[i] == '"'`: decoded by serde_json (escapes, UTF-8, control
/// characters, surrogate pairs), and the index just past its closing quote.
fn string_at(b: &[u8], i: usize) -> Result<(String, usize), BodyError> {
    if b.get(i) != Some(&b'"') {
        return Err(BodyError::Invalid);
    }
    let mut j = i + 1;
    loop {
        match b.get(j) {
            None => return Err(BodyError::Invalid),
            Some(b'\\') => j += 2,
            Some(b'"') => break,
            Some(_) => j += 1,
        }
    }
    let token = b.get(i..=j).ok_or(BodyError::Invalid)?;
    let s = serde_json::from_slice::<String>(token).map_err(|_| BodyError::Invalid)?;
    Ok((s, j + 1))
}

/// An object member's key at `i` (after whitespace), its `:`, and the index of its value.
fn key_at(b: &[u8], i: usize) -> Result<(String, usize), BodyError> {
    let (key, end) = string_at(b, i)?;
    let colon = skip_ws(b, end);
    if b.get(colon) != Some(&b':') {
        return Err(BodyError::Invalid);
    }
    Ok((key, skip_ws(b, colon + 1)))
}

/// A number token at `i`, read by serde_json so it is the same number [`parse_body`] yields.
fn number_at(b: &[u8], i: usize) -> Result<(Value, usize), BodyError> {
    let mut j = i;
    while matches!(
        b.get(j),
        Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
    ) {
        j += 1;
    }
    let token = b.get(i..j).ok_or(BodyError::Invalid)?;
    match serde_json::from_slice::<Value>(token) {
        Ok(n @ Value::Number(_)) => Ok((n, j)),
        _ => Err(BodyError::Invalid),
    }
}

/// A strict JSON parser whose container stack lives on the heap. Containers past `max_depth`
/// (the outermost is level 1) → [`BodyError::TooDeep`]. Duplicate keys keep the first
/// position and the last value, as serde_json does.
fn parse_flat(b: &[u8], max_depth: usize) -> Result<Value, BodyError> {
    enum Frame {
        Array(Vec<Value>),
        /// The members so far and the key of the value being parsed.
        Object(Map<String, Value>, String),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = skip_ws(b, 0);
    'value: loop {
        // A value starts at `i`.
        let mut value = match b.get(i) {
            Some(&open @ (b'[' | b'{')) => {
                if stack.len() >= max_depth {
                    return Err(BodyError::TooDeep);
                }
                i = skip_ws(b, i + 1);
                match (open, b.get(i)) {
                    (b'[', Some(b']')) => {
                        i += 1;
                        Value::Array(Vec::new())
                    }
                    (b'{', Some(b'}')) => {
                        i += 1;
                        Value::Object(Map::new())
                    }
                    (b'[', _) => {
                        stack.push(Frame::Array(Vec::new()));
                        continue 'value;
                    }
                    _ => {
                        let (key, next) = key_at(b, i)?;
                        stack.push(Frame::Object(Map::new(), key));
                        i = next;
                        continue 'value;
                    }
                }
            }
            Some(b'"') => {
                let (s, end) = string_at(b, i)?;
                i = end;
                Value::String(s)
            }
            Some(b'-' | b'0'..=b'9') => {
                let (n, end) = number_at(b, i)?;
                i = end;
                n
            }
            Some(b't' | b'f' | b'n') => {
                let rest = b.get(i..).unwrap_or_default();
                let (v, len) = if rest.starts_with(b"true") {
                    (Value::Bool(true), 4)
                } else if rest.starts_with(b"false") {
                    (Value::Bool(false), 5)
                } else if rest.starts_with(b"null") {
                    (Value::Null, 4)
                } else {
                    return Err(BodyError::Invalid);
                };
                i += len;
                v
            }
            _ => return Err(BodyError::Invalid),
        };
        // Attach the finished value to its container; close containers that end here.
        loop {
            i = skip_ws(b, i);
            let Some(top) = stack.last_mut() else {
                return if i == b.len() {
                    Ok(value)
                } else {
                    Err(BodyError::Invalid)
                };
            };
            match top {
                Frame::Array(items) => {
                    items.push(value);
                    match b.get(i) {
                        Some(b',') => {
                            i = skip_ws(b, i + 1);
                            continue 'value;
                        }
                        Some(b']') => i += 1,
                        _ => return Err(BodyError::Invalid),
                    }
                }
                Frame::Object(members, key) => {
                    members.insert(std::mem::take(key), value);
                    match b.get(i) {
                        Some(b',') => {
                            let (next_key, next) = key_at(b, skip_ws(b, i + 1))?;
                            *key = next_key;
                            i = next;
                            continue 'value;
                        }
                        Some(b'}') => i += 1,
                        _ => return Err(BodyError::Invalid),
                    }
                }
            }
            value = match stack.pop() {
                Some(Frame::Array(items)) => Value::Array(items),
                Some(Frame::Object(members, _)) => Value::Object(members),
                None => return Err(BodyError::Invalid), // `top` existed: not reached
            };
        }
    }
}

/// Canonical JSON text (`http-api.md` §6.2): object keys sorted by code point at every level
/// (byte order of UTF-8 is code point order), no whitespace, `,` and `:` separators,
/// non-ASCII written raw, strings escaped as serde_json escapes them, numbers as serde_json
/// prints them (shortest round trip). Iterative, so any depth is safe.
pub fn canonical(v: &Value) -> String {
    enum Members<'a> {
        Array(std::slice::Iter<'a, Value>),
        Object(std::vec::IntoIter<(&'a String, &'a Value)>),
    }
    struct Frame<'a> {
        members: Members<'a>,
        first: bool,
    }
    let mut out = String::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut pending = Some(v);
    loop {
        if let Some(v) = pending.take() {
            match v {
                Value::Array(items) => {
                    out.push('[');
                    stack.push(Frame {
                        members: Members::Array(items.iter()),
                        first: true,
                    });
                }
                Value::Object(map) => {
                    out.push('{');
                    let mut members: Vec<(&String, &Value)> = map.iter().collect();
                    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
                    stack.push(Frame {
                        members: Members::Object(members.into_iter()),
                        first: true,
                    });
                }
                Value::String(s) => write_string(&mut out, s),
                // Numbers, booleans and null: serde_json's own text. Writing to a String
                // cannot fail.
                scalar => {
                    let _ = write!(out, "{scalar}");
                }
            }
        }
        let Some(top) = stack.last_mut() else {
            return out;
        };
        let next = match &mut top.members {
            Members::Array(it) => it.next().map(|v| (None, v)),
            Members::Object(it) => it.next().map(|(k, v)| (Some(k), v)),
        };
        match next {
            Some((key, v)) => {
                if !top.first {
                    out.push(',');
                }
                top.first = false;
                if let Some(k) = key {
                    write_string(&mut out, k);
                    out.push(':');
                }
                pending = Some(v);
            }
            None => {
                out.push(match top.members {
                    Members::Array(_) => ']',
                    Members::Object(_) => '}',
                });
                stack.pop();
            }
        }
    }
}

/// A JSON string literal, escaped exactly as serde_json (and Python's `json.dumps`) escape:
/// `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other characters below U+0020 as `\u00xx`
/// (lowercase hex); everything else, DEL and non-ASCII included, raw.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < '\u{20}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize) -> String {
        format!("{}{}", "[".repeat(n), "]".repeat(n))
    }

    fn nested_objects(n: usize) -> String {
        format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n))
    }

    /// Inputs both parsers must refuse as invalid.
    const INVALID: &[&[u8]] = &[
        b"",
        b"   ",
        b"\n\t\r ",
        b"\xEF\xBB\xBF{}",
        b"\xEF\xBB\xBF[1]",
        b"{\"a\":NaN}",
        b"NaN",
        b"[Infinity]",
        b"[-Infinity]",
        b"[+1]",
        b"\"\\ud800\"",
        b"\"\\udc00\"",
        b"{\"a\":\"\\udc00x\"}",
        b"{\"\\ud800\":1}",
        b"\"\\ud800\\u0041\"",
        b"\"\\ud800\\ud800\"",
        b"\"\\udc00\\ud800\"",
        b"\"\\ud83d\"",
        b"{\"a\":\"\xff\"}",
        b"\"\xc3\"",
        b"\"\xc0\xaf\"",         // overlong '/'
        b"\"\xed\xa0\x80\"",     // a surrogate encoded as UTF-8
        b"\"\xf4\x90\x80\x80\"", // beyond U+10FFFF
        b"[\xff]",
        b"{} x",
        b"{}{}",
        b"[1] [2]",
        b"1 2",
        b"{'a':1}",
        b"{a:1}",
        b"[1,]",
        b"{\"a\":1,}",
        b"[,1]",
        b"{\"a\"}",
        b"{\"a\" 1}",
        b"{1:1}",
        b"[01]",
        b"[1.]",
        b"[.5]",
        b"[1e]",
        b"[-]",
        b"1e400",
        b"-1e400",
        b"[tru]",
        b"[truex]",
        b"[nul]",
        b"[True]",
        b"\"a\tb\"",
        b"\"a\nb\"",
        b"\"a\x00b\"",
        b"\"\\x\"",
        b"\"\\u12\"",
        b"\"abc",
        b"[1",
        b"{\"a\":1",
        b"]",
        b"}",
        b"[}",
        b"{]",
        b"\x00",
        b"[1]\x00",
        b"\x0c[1]",     // form feed is not JSON whitespace
        b"\xc2\xa0[1]", // nor is NBSP
    ];

    #[test]
    fn strictness() {
        for bad in INVALID {
            let shown = String::from_utf8_lossy(bad);
            assert_eq!(parse_body(bad), Err(BodyError::Invalid), "body {shown:?}");
            assert_eq!(
                parse_flat(bad, MAX_BODY_DEPTH),
                Err(BodyError::Invalid),
                "flat {shown:?}"
            );
        }
        let ok: &[(&[u8], Value)] = &[
            (br#"{"a":1}"#, serde_json::json!({"a": 1})),
            (
                b" \t\r\n[1, 2.5, -0, 1e2, true, false, null] \n",
                serde_json::json!([1, 2.5, -0.0, 100.0, true, false, null]),
            ),
            (br#""\ud83d\ude00""#, Value::String("😀".into())),
            (br#""\u00e9\n\/\"""#, Value::String("é\n/\"".into())),
            (
                "\"é😀\u{7f}\"".as_bytes(),
                Value::String("é😀\u{7f}".into()),
            ),
            (b"42", serde_json::json!(42)),
            (b"18446744073709551615", serde_json::json!(u64::MAX)),
            (b"-9223372036854775808", serde_json::json!(i64::MIN)),
            (
                br#"{"a":1,"a":2,"b":3}"#,
                serde_json::json!({"a": 2, "b": 3}),
            ),
        ];
        for (text, want) in ok {
            assert_eq!(parse_body(text).as_ref(), Ok(want));
            assert_eq!(parse_flat(text, MAX_BODY_DEPTH).as_ref(), Ok(want));
        }
    }

    #[test]
    fn depth_edge() {
        for doc in [nested(256), nested_objects(256)] {
            assert!(parse_body(doc.as_bytes()).is_ok());
            assert!(parse_stored(&doc).is_some());
        }
        for doc in [nested(257), nested_objects(257)] {
            assert_eq!(parse_body(doc.as_bytes()), Err(BodyError::TooDeep));
            assert_eq!(parse_flat(doc.as_bytes(), 256), Err(BodyError::TooDeep));
            assert_eq!(parse_stored(&doc), None);
        }
        // Depth is refused before parsing: even an unterminated or garbage body.
        let open = "[".repeat(100_000);
        assert_eq!(parse_body(open.as_bytes()), Err(BodyError::TooDeep));
        assert_eq!(parse_stored(&open), None);
        // Brackets inside strings do not count, nor do escaped quotes end a string.
        let s = format!("[\"{}\"]", "[".repeat(1000));
        assert!(parse_body(s.as_bytes()).is_ok());
        let s = format!("[\"\\\"{}\"]", "[{".repeat(1000));
        assert!(parse_body(s.as_bytes()).is_ok());
        let s = format!("[\"\\\\\"{}]", "[".repeat(300));
        assert_eq!(parse_body(s.as_bytes()), Err(BodyError::TooDeep));
        // Siblings do not add up.
        let wide = format!("[{}]", vec![nested(255); 50].join(","));
        assert!(parse_body(wide.as_bytes()).is_ok());
        assert!(parse_stored(&wide).is_some());
    }

    #[test]
    fn stored_parsing_uses_little_stack() {
        // 256 levels on a 64 KiB stack, debug build included (serde's recursive parse needs
        // several hundred KiB there).
        let doc = nested(256);
        let objects = nested_objects(256);
        let done = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let a = parse_stored(&doc).map(drop_flat).is_some();
                let b = is_strict_json_container(&objects);
                let v = parse_stored(&objects).unwrap_or_default();
                let c = canonical(&v) == objects;
                drop_flat(v);
                a && b && c
            })
            .map(|t| t.join());
        assert!(matches!(done, Ok(Ok(true))));
    }

    /// A small deterministic generator (xorshift), so the test needs no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn agree(doc: &[u8]) {
        let a = parse_body(doc).map(|v| v.to_string());
        let b = parse_flat(doc, MAX_BODY_DEPTH).map(|v| v.to_string());
        assert_eq!(a, b, "{:?}", String::from_utf8_lossy(doc));
    }

    #[test]
    fn both_parsers_agree() {
        const PIECES: &[&[u8]] = &[
            b"[",
            b"]",
            b"{",
            b"}",
            b",",
            b":",
            b" ",
            b"\n",
            b"\"a\"",
            b"\"k\"",
            b"\"",
            b"\\",
            b"\"\\ud800\"",
            b"\"\\ud83d\\ude00\"",
            b"\"\\u00e9\"",
            b"\"\\n\"",
            b"1",
            b"-0",
            b"0",
            b"01",
            b"1.5",
            b"2e3",
            b"1e400",
            b"-",
            b"+",
            b".",
            b"e",
            b"true",
            b"false",
            b"null",
            b"nul",
            b"NaN",
            b"\xff",
            b"\xef\xbb\xbf",
            "é".as_bytes(),
            b"\t",
            b"\x01",
            b"\x00",
            b"x",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut valid = 0;
        for _ in 0..200_000 {
            let mut doc = Vec::new();
            for _ in 0..1 + rng.below(10) {
                doc.extend_from_slice(PIECES[rng.below(PIECES.len())]);
            }
            agree(&doc);
            valid += usize::from(parse_body(&doc).is_ok());
        }
        // Valid documents with one byte changed, dropped or inserted.
        let seeds = [
            r#"{"a":[1,2.5,{"b":null}],"c":"\u00e9x","d":true,"e":-0.5e-3}"#,
            r#"[[],{},[{}],"\ud83d\ude00",18446744073709551616]"#,
        ];
        const BYTES: &[u8] = b"[]{},:\"\\ 01-+.eEtrufalsn\xff\x00";
        for seed in seeds {
            agree(seed.as_bytes());
            for _ in 0..50_000 {
                let mut doc = seed.as_bytes().to_vec();
                let at = rng.below(doc.len());
                match rng.below(3) {
                    0 => doc[at] = BYTES[rng.below(BYTES.len())],
                    1 => {
                        doc.remove(at);
                    }
                    _ => doc.insert(at, BYTES[rng.below(BYTES.len())]),
                }
                agree(&doc);
                valid += usize::from(parse_body(&doc).is_ok());
            }
        }
        assert!(
            valid > 1000,
            "the generator should produce valid documents too"
        );
    }

    #[test]
    fn canonical_form() {
        let v: Value = serde_json::from_str(
            r#"{"type":"task","schema_version":1,"content":{"z":[1,2.5,"é"],"a":null,"":{}}}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            canonical(&v),
            r#"{"content":{"":{},"a":null,"z":[1,2.5,"é"]},"schema_version":1,"type":"task"}"#
        );
        // The example of §6.2 (dropping the empty metadata is the envelope's job).
        let v: Value =
            serde_json::from_str(r#"{"schema_version":1,"type":"task","content":{"k":1}}"#)
                .unwrap_or_default();
        assert_eq!(
            canonical(&v),
            r#"{"content":{"k":1},"schema_version":1,"type":"task"}"#
        );
        assert_eq!(canonical(&serde_json::json!([])), "[]");
        assert_eq!(canonical(&serde_json::json!({})), "{}");
        assert_eq!(
            canonical(&serde_json::json!([[], {}, [[1]]])),
            "[[],{},[[1]]]"
        );
        assert_eq!(canonical(&serde_json::json!("x")), r#""x""#);
    }

    #[test]
    fn canonical_key_order_is_code_point_order() {
        // U+FF61 sorts after U+1F600 in UTF-16 order but before it by code point.
        let v = serde_json::json!({"😀": 1, "｡": 2, "é": 3, "Z": 4, "a": 5, "aa": 6, "": 7});
        assert_eq!(
            canonical(&v),
            r#"{"":7,"Z":4,"a":5,"aa":6,"é":3,"｡":2,"😀":1}"#
        );
    }

    #[test]
    fn canonical_numbers_and_strings_match_serde() {
        for text in [
            "0",
            "-0",
            "1",
            "-1",
            "1.0",
            "1.5",
            "0.1",
            "1e16",
            "1e-7",
            "123456789012345678",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "2.5e300",
            "5e-324",
            "1.7976931348623157e308",
        ] {
            let v: Value = serde_json::from_str(text).unwrap_or_default();
            assert_eq!(canonical(&v), v.to_string(), "{text}");
        }
        for c in (0u32..0x100).chain([0x2028, 0x2029, 0xfeff, 0x1f600]) {
            let Some(c) = char::from_u32(c) else { continue };
            let v = Value::String(format!("a{c}b"));
            assert_eq!(canonical(&v), v.to_string(), "U+{:04X}", c as u32);
            let k = serde_json::json!({ format!("{c}"): 1 });
            assert_eq!(canonical(&k), k.to_string(), "key U+{:04X}", c as u32);
        }
    }

    #[test]
    fn canonical_of_deep_values_is_safe() {
        let v = parse_stored(&nested(256)).unwrap_or_default();
        assert_eq!(canonical(&v), nested(256));
    }

    #[test]
    fn json_container_rule() {
        assert!(is_strict_json_container(" {\"a\":1} "));
        assert!(is_strict_json_container("[1]"));
        assert!(is_strict_json_container("[]"));
        assert!(is_strict_json_container("\u{a0}\u{3000}{}\n"));
        assert!(!is_strict_json_container("42"));
        assert!(!is_strict_json_container("\"x\""));
        assert!(!is_strict_json_container("null"));
        assert!(!is_strict_json_container("[NaN, Infinity]"));
        assert!(!is_strict_json_container("[1e400]"));
        assert!(!is_strict_json_container("{oops"));
        assert!(!is_strict_json_container("{} {}"));
        assert!(!is_strict_json_container("\u{feff}{}"));
        assert!(!is_strict_json_container(r#"["\ud800"]"#));
        assert!(!is_strict_json_container(""));
        assert!(is_strict_json_container(&nested(256)));
        assert!(!is_strict_json_container(&nested(257)));
        assert_eq!(
            parse_container(" [1, {\"b\":2}] "),
            Some(serde_json::json!([1, {"b": 2}]))
        );
        assert_eq!(parse_container("7"), None);
    }
}
