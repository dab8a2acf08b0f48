//! The 2026-07-28 revision of MCP (the "modern era"), served beside the handshake era on the
//! same endpoints and chosen per request.
//!
//! A modern request carries everything in itself: `_meta` names its protocol version and the
//! client's capabilities, and (over HTTP) headers mirror the version, the method and the tool
//! name. There is no `initialize`, no session, no `ping` and no `logging/setLevel`;
//! `server/discover` tells a client what we serve, every result says `resultType`, cacheable
//! ones say `ttlMs` and `cacheScope`, and `subscriptions/listen` is the one long-lived request.
//!
//! This module decides the era ([`is_modern`]), checks a modern request before it runs
//! ([`check`], with the revision's error codes and HTTP statuses), and answers it (`respond`:
//! `server/discover`, `tools/list`, `tools/call`), reached through [`super::handle`] (so the
//! panic boundary and [`super::spawn`] serve both eras) when the transport marked the session
//! copy [`Session::modern`]. Tool calls run through the same dispatch as in the handshake era;
//! this module only dresses their results. Transports open and end `subscriptions/listen`
//! streams with [`listen_ack`] and [`listen_end`].

use super::{code, Session};
use crate::relay::Relay;
use serde_json::{json, Map, Value};

/// The one stateless revision we speak.
pub const MODERN: &str = "2026-07-28";

/// Revision-defined error codes.
pub mod codes {
    /// An HTTP header is missing, malformed, or disagrees with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// The requested protocol version is not one we serve.
    pub const UNSUPPORTED_VERSION: i64 = -32022;
}

const VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
const SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";
const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// How long a client may keep `server/discover` and `tools/list` results: the tool table is
/// fixed for the life of a process, so an hour only bounds how long an upgrade goes unseen.
pub const TTL_MS: u64 = 3_600_000;

/// Every revision this relay serves, newest first: the modern one statelessly, the others
/// after `initialize` ([`super::VERSIONS`], oldest first; a unit test keeps the two in step).
pub const SUPPORTED: [&str; 5] = [
    MODERN,
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
];

/// Whether a message asks for the modern era: its `_meta` names a protocol version, its method
/// exists only in that era (`server/discover`, `subscriptions/listen`), or (HTTP) its
/// `MCP-Protocol-Version` header names a version the handshake era does not know. Everything
/// else (`initialize` and the requests of a handshake session) is served as before.
pub fn is_modern(msg: &Value, header_version: Option<&str>) -> bool {
    let meta_version = msg
        .get("params")
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(VERSION))
        .is_some();
    let modern_method = matches!(
        msg.get("method").and_then(Value::as_str),
        Some("server/discover" | "subscriptions/listen")
    );
    let modern_header = header_version.is_some_and(|v| !super::VERSIONS.contains(&v.trim()));
    msg.is_object() && (meta_version || modern_method || modern_header)
}

/// The HTTP headers that mirror a modern request's body (absent on stdio).
#[derive(Debug, Default, Clone, Copy)]
pub struct Mirrors<'a> {
    /// `MCP-Protocol-Version`.
    pub version: Option<&'a str>,
    /// `Mcp-Method`.
    pub method: Option<&'a str>,
    /// `Mcp-Name` (possibly Base64-wrapped).
    pub name: Option<&'a str>,
}

/// A modern request refused before it ran: the HTTP status and the JSON-RPC error response.
#[derive(Debug)]
pub struct Refusal {
    /// 400 or 404 (HTTP only; stdio sends just the response).
    pub status: u16,
    /// The JSON-RPC error response, carrying the request's id.
    pub response: Value,
}

/// The HTTP status of a modern-era JSON-RPC error: 404 for an unknown method, 400 for a
/// malformed request or one the revision's checks refuse, 200 otherwise.
pub fn status(error_code: i64) -> u16 {
    match error_code {
        code::METHOD_NOT_FOUND => 404,
        code::PARSE_ERROR | code::INVALID_REQUEST | code::INVALID_PARAMS => 400,
        c if (-32099..=-32020).contains(&c) => 400,
        _ => 200,
    }
}

/// The request's id when it is a valid one (string or number), else null.
fn request_id(msg: &Value) -> Value {
    match msg.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    }
}

fn refuse(msg: &Value, error_code: i64, message: &str) -> Refusal {
    Refusal {
        status: status(error_code),
        response: super::error(request_id(msg), error_code, message),
    }
}

/// The methods served statelessly.
fn served(method: &str) -> bool {
    matches!(
        method,
        "server/discover" | "tools/list" | "tools/call" | "subscriptions/listen"
    )
}

/// Check a modern request (one with an id) before it runs, in this order: the JSON-RPC shape;
/// (HTTP) `MCP-Protocol-Version` present (-32020) and naming a revision we know (-32022);
/// `_meta` carries the protocol version and the client's
/// capabilities (-32602); (HTTP) the header equals `_meta`'s version (-32020); the version is
/// one we serve (-32022 naming ours); (HTTP) `Mcp-Method` equals the method and, for
/// `tools/call`, `Mcp-Name` equals the tool name (-32020); the method exists in this era
/// (-32601, 404).
pub fn check(msg: &Value, http: Option<&Mirrors<'_>>) -> Result<(), Refusal> {
    let method = match (
        msg.get("jsonrpc").and_then(Value::as_str),
        msg.get("method"),
        msg.get("id"),
    ) {
        (Some("2.0"), Some(Value::String(m)), Some(Value::String(_) | Value::Number(_))) => {
            m.as_str()
        }
        _ => {
            return Err(refuse(
                msg,
                code::INVALID_REQUEST,
                "not a JSON-RPC 2.0 request",
            ))
        }
    };
    if let Some(h) = http {
        match h.version.map(str::trim) {
            None => {
                return Err(refuse(
                    msg,
                    codes::HEADER_MISMATCH,
                    "Header mismatch: the MCP-Protocol-Version header is required",
                ))
            }
            Some(v) if !SUPPORTED.contains(&v) => return Err(unsupported(msg, v)),
            Some(_) => {}
        }
    }
    let meta = msg
        .get("params")
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object);
    let version = meta.and_then(|m| m.get(VERSION)).and_then(Value::as_str);
    let capabilities = meta
        .and_then(|m| m.get(CAPABILITIES))
        .filter(|c| c.is_object());
    let (Some(version), Some(_)) = (version, capabilities) else {
        return Err(refuse(
            msg,
            code::INVALID_PARAMS,
            "Invalid params: _meta must carry io.modelcontextprotocol/protocolVersion (a string) \
             and io.modelcontextprotocol/clientCapabilities (an object)",
        ));
    };
    if let Some(header) = http.and_then(|h| h.version) {
        if header.trim() != version {
            return Err(refuse(
                msg,
                codes::HEADER_MISMATCH,
                &format!(
                    "Header mismatch: MCP-Protocol-Version header value '{}' does not match \
                     _meta value '{version}'",
                    header.trim()
                ),
            ));
        }
    }
    if version != MODERN {
        return Err(unsupported(msg, version));
    }
    if let Some(h) = http {
        let header = h.method.map(str::trim);
        if header != Some(method) {
            let what = match header {
                None => "the Mcp-Method header is required".to_owned(),
                Some(v) => {
                    format!("Mcp-Method header value '{v}' does not match body value '{method}'")
                }
            };
            return Err(refuse(
                msg,
                codes::HEADER_MISMATCH,
                &format!("Header mismatch: {what}"),
            ));
        }
        if let Some(body) = named(msg, method) {
            match h.name.map(decode_header) {
                Some(Ok(v)) if v == body => {}
                None => {
                    return Err(refuse(
                        msg,
                        codes::HEADER_MISMATCH,
                        &format!("Header mismatch: the Mcp-Name header is required for {method}"),
                    ))
                }
                Some(Ok(v)) => {
                    return Err(refuse(
                        msg,
                        codes::HEADER_MISMATCH,
                        &format!(
                            "Header mismatch: Mcp-Name header value '{v}' does not match body \
                             value '{body}'"
                        ),
                    ))
                }
                Some(Err(why)) => {
                    return Err(refuse(
                        msg,
                        codes::HEADER_MISMATCH,
                        &format!("Header mismatch: Mcp-Name {why}"),
                    ))
                }
            }
        }
    }
    if !served(method) {
        return Err(refuse(
            msg,
            code::METHOD_NOT_FOUND,
            &format!("Method not found: {method}"),
        ));
    }
    Ok(())
}

/// -32022, naming the versions we serve and echoing the one asked for.
fn unsupported(msg: &Value, version: &str) -> Refusal {
    let mut r = refuse(
        msg,
        codes::UNSUPPORTED_VERSION,
        "Unsupported protocol version",
    );
    r.response["error"]["data"] = json!({"supported": SUPPORTED, "requested": version});
    r
}

/// The body value `Mcp-Name` mirrors, for the methods that have one.
fn named<'m>(msg: &'m Value, method: &str) -> Option<&'m str> {
    let field = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    msg.get("params")?.get(field)?.as_str()
}

/// A header value with surrounding whitespace removed and the revision's Base64 sentinel
/// (`=?base64?…?=`, standard alphabet, padded, UTF-8 inside) decoded.
fn decode_header(raw: &str) -> Result<String, &'static str> {
    let v = raw.trim();
    let Some(inner) = v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    else {
        return Ok(v.to_owned());
    };
    let bytes = base64_decode(inner).ok_or("value is not valid padded Base64")?;
    String::from_utf8(bytes).map_err(|_| "value does not decode to UTF-8")
}

/// Strict standard Base64 (RFC 4648 §4) with padding.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, quad) in b.chunks(4).enumerate() {
        let last = i == b.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

/// Severity rank of a log level (RFC 5424 order), `None` for an unknown name.
fn level_rank(level: &str) -> Option<usize> {
    [
        "debug",
        "info",
        "notice",
        "warning",
        "error",
        "critical",
        "alert",
        "emergency",
    ]
    .iter()
    .position(|l| *l == level)
}

/// Whether a notification may go to the client: log messages only when the request opted in
/// with `io.modelcontextprotocol/logLevel`, and only at or above that level.
fn may_send(note: &Value, min_level: Option<usize>) -> bool {
    if note.get("method").and_then(Value::as_str) != Some("notifications/message") {
        return true;
    }
    let level = note
        .get("params")
        .and_then(|p| p.get("level"))
        .and_then(Value::as_str)
        .and_then(level_rank);
    matches!((min_level, level), (Some(min), Some(l)) if l >= min)
}

fn server_info() -> Value {
    json!({"name": "claude-bridge", "version": env!("CARGO_PKG_VERSION")})
}

/// What `server/discover` answers.
fn discover(relay: &Relay) -> Value {
    let capabilities = if relay.settings.conformance_fixtures {
        json!({"tools": {"listChanged": false}, "logging": {}})
    } else {
        json!({"tools": {"listChanged": false}})
    };
    json!({
        "resultType": "complete",
        "supportedVersions": SUPPORTED,
        "capabilities": capabilities,
        "instructions": super::INSTRUCTIONS,
        "ttlMs": TTL_MS,
        "cacheScope": "public",
        "_meta": {SERVER_INFO: server_info()},
    })
}

/// Dress a handshake-era response for the modern era: results get `resultType` and our
/// identity in `_meta`; `tools/list` gets its caching hints.
fn complete(mut response: Value, method: &str) -> Value {
    if let Some(result) = response.get_mut("result").and_then(Value::as_object_mut) {
        result.insert("resultType".into(), json!("complete"));
        if method == "tools/list" {
            result.insert("ttlMs".into(), json!(TTL_MS));
            result.insert("cacheScope".into(), json!("public"));
        }
        let meta = result
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(SERVER_INFO.into(), server_info());
        }
    }
    response
}

/// Answer a checked modern request (`server/discover`, `tools/list`, `tools/call`;
/// `subscriptions/listen` belongs to the transport). Notifications the call emits go to
/// `notify`; log messages only when the request opted in. `None` for a notification, and when a
/// call was cancelled (it gets no response).
pub(super) fn respond(
    relay: &Relay,
    session: &mut Session,
    msg: &Value,
    notify: &mut dyn FnMut(Value),
) -> Option<Value> {
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    if method == "server/discover" {
        return Some(json!({"jsonrpc": "2.0", "id": request_id(msg), "result": discover(relay)}));
    }
    let min_level = msg
        .get("params")
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(LOG_LEVEL))
        .and_then(Value::as_str)
        .and_then(level_rank);
    let mut filtered = |n: Value| {
        if may_send(&n, min_level) {
            notify(n);
        }
    };
    super::dispatch(relay, session, msg, &mut filtered).map(|r| complete(r, method))
}

/// The first message of a `subscriptions/listen` stream, or the error response when the request
/// names no `notifications` filter. The acknowledged filter is the part we honour: none, since
/// the tool list is fixed for a process's life and we have no prompts or resources, so the
/// stream carries nothing until it ends.
pub fn listen_ack(msg: &Value) -> Result<Value, Value> {
    let id = request_id(msg);
    match msg
        .get("params")
        .and_then(|p| p.get("notifications"))
        .filter(|n| n.is_object())
    {
        Some(_) => Ok(json!({
            "jsonrpc": "2.0",
            "method": "notifications/subscriptions/acknowledged",
            "params": {"_meta": {SUBSCRIPTION: id}, "notifications": {}},
        })),
        None => Err(super::error(
            id,
            code::INVALID_PARAMS,
            "Invalid params: subscriptions/listen needs a 'notifications' filter object",
        )),
    }
}

/// The response that ends a `subscriptions/listen` stream gracefully (the relay is stopping).
pub fn listen_end(msg: &Value) -> Value {
    let id = request_id(msg);
    json!({"jsonrpc": "2.0", "id": id, "result": {
        "resultType": "complete",
        "_meta": {SUBSCRIPTION: id, SERVER_INFO: server_info()},
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, meta: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": {"_meta": meta}})
    }

    fn modern_meta() -> Value {
        json!({VERSION: MODERN, CAPABILITIES: {}})
    }

    fn refusal(r: Result<(), Refusal>) -> (u16, i64, Value) {
        let r = r.unwrap_err();
        assert_eq!(r.response["id"], 7, "{}", r.response);
        (
            r.status,
            r.response["error"]["code"].as_i64().unwrap(),
            r.response["error"]["data"].clone(),
        )
    }

    #[test]
    fn the_era_is_chosen_per_request() {
        assert!(is_modern(&req("tools/list", modern_meta()), None));
        assert!(is_modern(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover"}),
            None
        ));
        assert!(is_modern(
            &json!({"method": "tools/list"}),
            Some("2026-07-28")
        ));
        assert!(is_modern(&json!({"method": "tools/list"}), Some("v999")));
        assert!(!is_modern(
            &json!({"method": "initialize", "params": {}}),
            None
        ));
        assert!(!is_modern(
            &json!({"method": "tools/list"}),
            Some("2025-11-25")
        ));
        assert!(!is_modern(
            &json!({"method": "tools/call", "params": {"_meta": {"progressToken": 1}}}),
            None
        ));
        assert!(!is_modern(&json!([{"method": "server/discover"}]), None));
    }

    #[test]
    fn checks_follow_the_revision_in_order() {
        let http = |v, m, n| Mirrors {
            version: v,
            method: m,
            name: n,
        };
        let ok = http(Some(MODERN), Some("tools/list"), None);
        assert!(check(&req("tools/list", modern_meta()), Some(&ok)).is_ok());
        assert!(check(&req("tools/list", modern_meta()), None).is_ok());
        // Header missing, then _meta incomplete, then mismatch, then unsupported.
        let none = http(None, Some("tools/list"), None);
        assert_eq!(
            refusal(check(&req("tools/list", modern_meta()), Some(&none))).1,
            -32020
        );
        for meta in [
            json!({}),
            json!({VERSION: MODERN}),
            json!({CAPABILITIES: {}}),
        ] {
            let (s, c, _) = refusal(check(&req("tools/list", meta), Some(&ok)));
            assert_eq!((s, c), (400, -32602));
        }
        let v999 = json!({VERSION: "v999", CAPABILITIES: {}});
        assert_eq!(
            refusal(check(&req("tools/list", v999.clone()), Some(&ok))).1,
            -32020
        );
        let (s, c, data) = refusal(check(
            &req("tools/list", v999),
            Some(&http(Some("v999"), Some("tools/list"), None)),
        ));
        assert_eq!((s, c), (400, -32022));
        assert_eq!(data["requested"], "v999");
        assert_eq!(data["supported"][0], MODERN);
        assert!(data["supported"].as_array().unwrap().len() == 5);
        // Method and name mirrors.
        let wrong = http(Some(MODERN), Some("prompts/list"), None);
        assert_eq!(
            refusal(check(&req("tools/list", modern_meta()), Some(&wrong))).1,
            -32020
        );
        let upper = http(Some(MODERN), Some("TOOLS/LIST"), None);
        assert_eq!(
            refusal(check(&req("tools/list", modern_meta()), Some(&upper))).1,
            -32020
        );
        let mut call = req("tools/call", modern_meta());
        call["params"]["name"] = json!("bridge_ping");
        for (name, good) in [
            (None, false),
            (Some("bridge_send"), false),
            (Some("bridge_ping"), true),
            (Some("  bridge_ping  "), true),
            (Some("=?base64?YnJpZGdlX3Bpbmc=?="), true),
            (Some("=?base64?YnJpZGdlX3Bpbmc?="), false),
            (Some("=?base64?YnJp!!!Bpbmc=?="), false),
        ] {
            let h = http(Some(MODERN), Some("tools/call"), name);
            assert_eq!(check(&call, Some(&h)).is_ok(), good, "{name:?}");
        }
        // Methods of the handshake era are gone here.
        for m in [
            "initialize",
            "ping",
            "logging/setLevel",
            "resources/list",
            "x/y",
        ] {
            let (s, c, _) = refusal(check(&req(m, modern_meta()), None));
            assert_eq!((s, c), (404, -32601), "{m}");
        }
        let bad = json!({"jsonrpc": "2.0", "id": 7, "method": 5});
        assert_eq!(refusal(check(&bad, None)).0, 400);
    }

    #[test]
    fn supported_lists_every_handshake_version_newest_first() {
        let mut handshake: Vec<&str> = super::super::VERSIONS.to_vec();
        handshake.reverse();
        assert_eq!(SUPPORTED[0], MODERN);
        assert_eq!(&SUPPORTED[1..], &handshake[..]);
    }

    #[test]
    fn base64_is_strict() {
        assert_eq!(base64_decode("SGVsbG8=").unwrap(), b"Hello");
        assert_eq!(
            base64_decode("SGVsbG8sIOS4lueVjA==").unwrap(),
            "Hello, 世界".as_bytes()
        );
        assert_eq!(base64_decode("").unwrap(), b"");
        for bad in ["SGVsbG8", "SGVs!!!bG8=", "S===", "SG=sbG8=", "SGVsbG8=SGVs"] {
            assert!(base64_decode(bad).is_none(), "{bad}");
        }
        assert_eq!(decode_header(" plain ").unwrap(), "plain");
        assert_eq!(
            decode_header("=?base64?SGVsbG8=").unwrap(),
            "=?base64?SGVsbG8="
        );
    }

    #[test]
    fn log_messages_need_an_opt_in() {
        let note = |l: &str| json!({"method": "notifications/message", "params": {"level": l}});
        assert!(!may_send(&note("info"), None));
        assert!(may_send(&note("info"), level_rank("info")));
        assert!(!may_send(&note("info"), level_rank("warning")));
        assert!(may_send(&json!({"method": "notifications/progress"}), None));
    }

    #[test]
    fn listen_acknowledges_nothing_and_ends_with_a_result() {
        let mut m = req("subscriptions/listen", modern_meta());
        assert_eq!(listen_ack(&m).unwrap_err()["error"]["code"], -32602);
        m["params"]["notifications"] = json!({"toolsListChanged": true});
        let ack = listen_ack(&m).unwrap();
        assert_eq!(ack["params"]["_meta"][SUBSCRIPTION], 7);
        assert_eq!(ack["params"]["notifications"], json!({}));
        let end = listen_end(&m);
        assert_eq!(end["result"]["resultType"], "complete");
        assert_eq!(end["result"]["_meta"][SUBSCRIPTION], 7);
    }
}
