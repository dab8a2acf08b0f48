//! JSON API handlers (`http-api.md` §3): each turns a [`Req`] into a [`Reply`] by calling
//! [`crate::relay`]. Which path reaches which handler is the route table's (`http::routes`).

use crate::dashboard;
use crate::error::Error;
use crate::events::Subscribers;
use crate::relay::agents::{Grant, Mode, Principal};
use crate::relay::{Cursor, MAX_WAIT};
use crate::relay::{Page, Relay};
use crate::validate::FieldError;
use crate::wire::{percent_decode, Reply, Req};
use crate::{clock, json, validate};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tiny_http::Method;

/// Largest page of `/api/messages`.
const MAX_LIMIT: i64 = 500;
/// Page size of `/api/messages` when `limit` is absent or not an integer.
const DEFAULT_LIMIT: i64 = 50;

/// `POST /api/messages`: a 405 that says where sending is (`http-api.md` §3.3).
pub fn messages_post() -> Reply {
    Reply::json(
        405,
        &json!({
            "error": "POST is not supported on /api/messages; it is the read listing. \
                      Send with POST /api/send.",
            "hint": "POST /api/send",
        }),
    )
    .with_header("Allow", "GET, HEAD")
}

/// A dashboard asset (`static/`), or 404; an asset answers GET and HEAD only.
pub fn asset(req: &Req<'_>) -> Reply {
    let get = matches!(req.method, Method::Get | Method::Head);
    match dashboard::asset(req.path) {
        Some(_) if !get => Reply::method_not_allowed("GET, HEAD"),
        Some((content_type, body)) => {
            let mut r = Reply::empty(200)
                .with_header("Content-Type", content_type)
                .with_header("Cache-Control", "no-cache");
            r.body = body.to_vec();
            r
        }
        None => not_found(),
    }
}

/// `GET /api/ready`: readiness for authenticated callers: can the database take a write now?
/// 200 when it can, 503 with the reason when it cannot (locked past the budget, read-only, …).
pub fn ready(relay: &Relay) -> Reply {
    match relay.ready() {
        Ok(()) => Reply::json(
            200,
            &json!({"ready": true, "db_writable": true, "uptime_seconds": relay.uptime_seconds()}),
        ),
        Err(e) => Reply::json(
            503,
            &json!({"ready": false, "db_writable": false, "error": e.to_string()}),
        )
        .with_header("Retry-After", "1"),
    }
}

pub fn not_found() -> Reply {
    Reply::error(404, "not found")
}

/// Turn an operation result into a reply; errors get their status and JSON body, and busy
/// replies a `Retry-After`.
pub fn handled(result: Result<Reply, Error>) -> Reply {
    match result {
        Ok(r) => r,
        Err(e) => {
            if let Error::Storage(msg) = &e {
                eprintln!("warning: database error: {msg}");
            }
            let (status, body) = e.to_http();
            let reply = Reply::json(status, &body);
            if status == 503 {
                reply.with_header("Retry-After", "1")
            } else {
                reply
            }
        }
    }
}

pub fn status() -> Reply {
    Reply::json(
        200,
        &json!({
            "service": "claude-bridge",
            "status": "online",
            "version": env!("CARGO_PKG_VERSION"),
            "server_time": clock::now(),
        }),
    )
}

pub fn state(relay: &Relay, events: &Subscribers, who: &Principal) -> Result<Reply, Error> {
    let stats = relay.channels()?;
    let mut total = 0u64;
    let channels: Vec<Value> = stats
        .iter()
        .filter(|(id, _)| who.may(Mode::Read, id))
        .map(|(id, s)| {
            total += s.count;
            crate::relay::live::channel_json(id, s)
        })
        .collect();
    let up = relay.uptime_seconds();
    Ok(Reply::json(
        200,
        &json!({
            "service": "claude-bridge",
            "status": "online",
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": up,
            "uptime_human": format!("{:02}:{:02}:{:02}", up / 3600, up / 60 % 60, up % 60),
            "total_messages": total,
            "channels": channels,
            "sse_subscribers": events.total(),
            "sse_dropped_events": events.dropped(),
            "retention_days": relay.settings.retention_days,
            "audit_enabled": relay.settings.audit_enabled,
            "server_time": clock::now(),
        }),
    ))
}

/// `limit` syntax of `http-api.md` §3.3: optional sign and decimal digits after trimming ASCII
/// whitespace; anything else is the default. Clamped to 1..=max.
pub fn parse_limit(raw: Option<&str>, default: i64, max: i64) -> i64 {
    let n = raw.and_then(parse_int).unwrap_or(default);
    n.clamp(1, max)
}

/// An integer with optional sign; saturates instead of overflowing. `None` if not an integer.
pub fn parse_int(raw: &str) -> Option<i64> {
    let t = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = digits.bytes().fold(0i64, |acc, b| {
        acc.saturating_mul(10).saturating_add(i64::from(b - b'0'))
    });
    Some(if neg { -n } else { n })
}

pub fn messages(relay: &Relay, req: &Req<'_>) -> Result<Reply, Error> {
    let channel_raw = req.query_param("channel").unwrap_or_default();
    if channel_raw.is_empty() {
        return Ok(Reply::error(400, "channel parameter required"));
    }
    let channel_value = Value::String(channel_raw);
    let channel = relay.existing_channel("channel", &channel_value)?;
    let limit = parse_limit(
        req.query_param("limit").as_deref(),
        DEFAULT_LIMIT,
        MAX_LIMIT,
    ) as usize;
    let (since_id, consumer_id) = cursor_params(req)?;
    let full = req
        .query_param("full")
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    let cursor = Cursor::from_parts(since_id.as_deref(), consumer_id.as_deref());
    let page = relay.read(channel, cursor, limit)?;
    let mut out = Map::new();
    out.insert("channel".into(), json!(channel));
    out.insert(
        "messages".into(),
        Value::Array(page.messages.iter().map(|m| m.listing_item(full)).collect()),
    );
    let plain = page.messages.is_empty()
        && since_id.is_none()
        && consumer_id.is_none()
        && !page.stale_cursor;
    if !plain {
        let next = match page.messages.last() {
            Some(m) => json!(m.id),
            None => json!(since_id),
        };
        out.insert("next_cursor".into(), next);
    }
    if let Some(c) = consumer_id {
        out.insert("consumer_id".into(), json!(c));
    }
    if page.stale_cursor {
        out.insert("warning".into(), json!("since_id_not_found"));
    }
    Ok(Reply::json(200, &Value::Object(out)))
}

/// The `since_id` and `consumer_id` query parameters (empty = absent), validated.
fn cursor_params(req: &Req<'_>) -> Result<(Option<String>, Option<String>), Error> {
    let since_id = req.query_param("since_id").filter(|s| !s.is_empty());
    if let Some(s) = &since_id {
        validate::identity_str("since_id", s, validate::MAX_REF_CHARS)?;
    }
    let consumer_id = req.query_param("consumer_id").filter(|s| !s.is_empty());
    if let Some(c) = &consumer_id {
        validate::identity_str("consumer_id", c, validate::MAX_CONSUMER_CHARS)?;
    }
    Ok((since_id, consumer_id))
}

pub fn message(relay: &Relay, raw_id: &str, who: &Principal) -> Result<Reply, Error> {
    let Some(id) = percent_decode(raw_id, false) else {
        return Ok(not_found());
    };
    Ok(match relay.message(&id)? {
        Some(m) if who.may(Mode::Read, &m.channel) => Reply::json(200, &m.detail()),
        _ => not_found(),
    })
}

/// Parse the body as a JSON object (`http-api.md` §3.5 error rows).
fn body_object(req: &Req<'_>) -> Result<Map<String, Value>, Error> {
    match json::parse_body(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::NotObject),
        Err(json::BodyError::TooDeep) => Err(Error::TooDeep),
        Err(json::BodyError::Invalid) => Err(Error::InvalidJson),
    }
}

pub fn send(relay: &Relay, req: &Req<'_>) -> Result<Reply, Error> {
    let mut args = body_object(req)?;
    // An agent's messages carry its name: it may leave `sender` out.
    if let (Some(name), None) = (req.who.name(), args.get("sender")) {
        args.insert("sender".into(), json!(name));
    }
    let send = relay.parse_send(&args)?;
    relay.check_sender(&req.who, &send.sender, &send.channel)?;
    let done = relay.send(&send)?;
    let m = &done.message;
    Ok(Reply::json(
        200,
        &json!({
            "id": m.id,
            "seq": m.seq,
            "channel": m.channel,
            "ts": clock::render(&m.timestamp),
            "deduplicated": done.deduplicated,
        }),
    ))
}

/// `GET /api/audit`: the newest audit rows first (`http-api.md` §3.11).
pub fn audit(relay: &Relay, req: &Req<'_>) -> Result<Reply, Error> {
    if !relay.settings.audit_enabled {
        return Ok(Reply::json(200, &json!({"enabled": false, "events": []})));
    }
    let limit = parse_limit(req.query_param("limit").as_deref(), 100, 1000) as usize;
    let events = relay.audit_events(limit)?;
    Ok(Reply::json(
        200,
        &json!({"enabled": true, "events": events}),
    ))
}

/// The six keys of a wait result (`http-api.md` §3.7).
fn wait_json(
    channel: &str,
    page: &Page,
    since_id: Option<&str>,
    consumer_id: Option<&str>,
    timed_out: bool,
) -> Value {
    json!({
        "channel": channel,
        "messages": page.messages.iter().map(|m| m.record()).collect::<Vec<_>>(),
        "next_cursor": page.messages.last().map(|m| m.id.as_str()).or(since_id),
        "consumer_id": consumer_id,
        "warning": page.stale_cursor.then_some("since_id_not_found"),
        "timed_out": timed_out,
    })
}

/// `GET /api/wait`: answer at once when there is something (or the cursor is stale); otherwise
/// hand the connection to a thread that waits, so no request worker is held.
pub fn wait(relay: &Arc<Relay>, req: &Req<'_>) -> Result<Reply, Error> {
    let channel_raw = req.query_param("channel").unwrap_or_default();
    if channel_raw.is_empty() {
        return Err(FieldError::new("channel", "required", "must be provided").into());
    }
    let channel_value = Value::String(channel_raw);
    let channel = relay
        .existing_channel("channel", &channel_value)?
        .to_owned();
    let (since_id, consumer_id) = cursor_params(req)?;
    if since_id.is_none() && consumer_id.is_none() {
        return Err(
            FieldError::new("cursor", "required", "since_id or consumer_id is required").into(),
        );
    }
    let numeric = || Reply::error(400, "limit and timeout_seconds must be numeric");
    let limit = match req.query_param("limit") {
        None => 20,
        Some(raw) => match parse_int(&raw) {
            Some(n) => n.clamp(1, MAX_LIMIT),
            None => return Ok(numeric()),
        },
    } as usize;
    let timeout = match req.query_param("timeout_seconds") {
        None => 20.0,
        Some(raw) => match raw.trim().parse::<f64>() {
            Ok(t) if t.is_finite() => t.clamp(0.0, MAX_WAIT.as_secs_f64()),
            _ => return Ok(numeric()),
        },
    };
    let cursor = Cursor::from_parts(since_id.as_deref(), consumer_id.as_deref());
    // The ticket before the read: a send landing after it wakes the parked wait.
    let ticket = crate::hub::Wakes::ticket(&**relay);
    let page = relay.read(&channel, cursor, limit)?;
    if !page.messages.is_empty() || page.stale_cursor || timeout == 0.0 {
        let timed_out = page.messages.is_empty() && !page.stale_cursor;
        let body = wait_json(
            &channel,
            &page,
            since_id.as_deref(),
            consumer_id.as_deref(),
            timed_out,
        );
        return Ok(Reply::json(200, &body));
    }
    // Nothing yet: park the wait (no thread of its own); each publish on the channel, and the
    // deadline, give it another look.
    let relay = Arc::clone(relay);
    let counted = crate::metrics::Waiting::start();
    let who = req.who.clone();
    // A waiting agent is online while it waits.
    let online = relay.hold_for(&who);
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(timeout);
    Ok(Reply::parked(
        channel.clone(),
        ticket,
        deadline,
        move |last| {
            let _held = (&counted, &online);
            // An agent revoked while it waited gets nothing more.
            if who.revoked() {
                return Some(Reply::error(401, "unauthorized"));
            }
            let cursor = Cursor::from_parts(since_id.as_deref(), consumer_id.as_deref());
            match relay.read(&channel, cursor, limit) {
                Ok(page) if !page.messages.is_empty() || page.stale_cursor || last => {
                    let timed_out = page.messages.is_empty() && !page.stale_cursor;
                    Some(Reply::json(
                        200,
                        &wait_json(
                            &channel,
                            &page,
                            since_id.as_deref(),
                            consumer_id.as_deref(),
                            timed_out,
                        ),
                    ))
                }
                Ok(_) => None,
                Err(e) => Some(handled(Err(e))),
            }
        },
    ))
}

/// `GET /api/agents`: the roster; `POST /api/agents` `{"name","grants":["P=M",…],"admin"}`:
/// add an agent and show its token once (the route needs a relay admin for POST).
pub fn agents(relay: &Relay, req: &Req<'_>) -> Result<Reply, Error> {
    if GET_OR_HEAD.contains(req.method) {
        return Ok(Reply::json(200, &relay.roster_json(&req.who)?));
    }
    let args = body_object(req)?;
    let grants = grants_arg(args.get("grants"))?;
    let admin = match args.get("admin") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(FieldError::new("admin", "invalid_type", "must be a boolean").into())
        }
    };
    let name = args.get("name").cloned().unwrap_or(Value::Null);
    Ok(Reply::json(200, &relay.add_agent(&name, &grants, admin)?))
}

const GET_OR_HEAD: &[Method] = &[Method::Get, Method::Head];

/// `grants`: an array of `PATTERN=MODE` strings (absent = none).
fn grants_arg(v: Option<&Value>) -> Result<Vec<Grant>, Error> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for g in items {
                match g.as_str() {
                    Some(s) => out.push(Grant::parse(s)?),
                    None => {
                        let e = FieldError::new("grants", "invalid_type", "must hold strings");
                        return Err(e.into());
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(FieldError::new(
            "grants",
            "invalid_type",
            "must be an array of PATTERN=MODE strings",
        )
        .into()),
    }
}

/// `DELETE /api/agents/{name}`: revoke; `POST /api/agents/{name}/grants` `{"grant":"P=M"}`:
/// add or change one grant. The route needs a relay admin.
pub fn agent(relay: &Relay, req: &Req<'_>, raw: &str) -> Result<Reply, Error> {
    let (raw_name, grants) = match raw.strip_suffix("/grants") {
        Some(n) => (n, true),
        None => (raw, false),
    };
    let Some(name) = percent_decode(raw_name, false).filter(|n| !n.is_empty() && !n.contains('/'))
    else {
        return Ok(not_found());
    };
    match (req.method, grants) {
        (Method::Delete, false) => Ok(Reply::json(200, &relay.revoke_agent(&name)?)),
        (Method::Post, true) => {
            let args = body_object(req)?;
            let grant = match args.get("grant").and_then(Value::as_str) {
                Some(g) => Grant::parse(g)?,
                None => {
                    return Err(
                        FieldError::new("grant", "required", "PATTERN=MODE is required").into(),
                    )
                }
            };
            Ok(Reply::json(200, &relay.grant_agent(&name, grant)?))
        }
        (_, true) => Ok(Reply::method_not_allowed("POST")),
        (_, false) => Ok(Reply::method_not_allowed("DELETE")),
    }
}

/// `POST /api/card` `{"name"?, "machine"?, "directory"?, "repo"?, "task"?}`: set a roster
/// card. An agent sets its own (a `name` must be its own); the admin names whose.
pub fn card(relay: &Relay, req: &Req<'_>) -> Result<Reply, Error> {
    let args = body_object(req)?;
    let card = relay.set_card(&req.who, &args)?;
    Ok(Reply::json(200, &card))
}

pub fn ack(relay: &Relay, req: &Req<'_>) -> Result<Reply, Error> {
    let args = body_object(req)?;
    let cursor = relay.ack(&args)?;
    Ok(Reply::json(200, &crate::relay::cursor_json(&cursor)))
}

pub fn clear(relay: &Relay, req: &Req<'_>) -> Result<Reply, Error> {
    let args = body_object(req)?;
    let channel = relay.existing_channel("channel", args.get("channel").unwrap_or(&Value::Null))?;
    let cleared = relay.clear(channel)?;
    Ok(Reply::json(
        200,
        &json!({"channel": channel, "cleared": cleared}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_syntax_and_clamp() {
        assert_eq!(parse_limit(None, 50, 500), 50);
        assert_eq!(parse_limit(Some("abc"), 50, 500), 50);
        assert_eq!(parse_limit(Some("1.5"), 50, 500), 50);
        assert_eq!(parse_limit(Some(""), 50, 500), 50);
        assert_eq!(parse_limit(Some(" 7 "), 50, 500), 7);
        assert_eq!(parse_limit(Some("+7"), 50, 500), 7);
        assert_eq!(parse_limit(Some("0"), 50, 500), 1);
        assert_eq!(parse_limit(Some("-5"), 50, 500), 1);
        assert_eq!(parse_limit(Some("1000"), 50, 500), 500);
        assert_eq!(parse_limit(Some("99999999999999999999999"), 50, 500), 500);
        assert_eq!(parse_limit(Some("-99999999999999999999999"), 50, 500), 1);
        assert_eq!(parse_limit(Some("-"), 50, 500), 50);
    }
}
