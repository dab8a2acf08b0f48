//! The message tools (`mcp.md` §4.1–4.8): schemas, and each tool as a call into
//! [`crate::relay`] plus a text rendering for the agent.

use crate::clock;
use crate::error::Error;
use crate::mcp::schema::{annotations, integer, no_args, present, tool, Outcome};
use crate::model::StoredMessage;
use crate::relay::agents::{Mode, Principal};
use crate::relay::{Cursor, Relay};
use crate::validate::{self, FieldError};
use serde_json::{json, Map, Value};
use std::fmt::Write;

/// The arguments `bridge_receive` and `bridge_wait` share, in schema order.
fn read_properties() -> Map<String, Value> {
    let props = json!({
        "channel": {"type": "string", "minLength": 1, "description": "Channel to read."},
        "since_id": {"type": "string", "minLength": 1,
            "description": "Return only messages after this message id."},
        "consumer_id": {"type": "string", "minLength": 1,
            "description": "Start after this consumer's acknowledged position (when no since_id)."},
        "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 20,
            "description": "At most this many messages."},
    });
    match props {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object literal"),
    }
}

/// `bridge_wait`'s arguments: `bridge_receive`'s plus the timeout.
fn wait_properties() -> Map<String, Value> {
    let mut p = read_properties();
    p.insert(
        "timeout_seconds".into(),
        json!({"type": "number", "minimum": 0, "maximum": crate::relay::MAX_WAIT.as_secs(), "default": 20,
               "description": "How long to wait when nothing is there yet."}),
    );
    p
}

/// `bridge_send`'s `tools/list` entry.
pub(super) fn send_def(name: &str) -> Value {
    tool(
        name,
        "Publish a message to a channel. Give `content` (text; a JSON object with a \"type\" \
         field is best) or a structured `message` envelope, not both. Add an \
         `idempotency_key` if you might retry: a repeat returns the first result instead of \
         a copy.",
        json!({"type": "object", "properties": {
            "channel": {"type": "string", "minLength": 1, "maxLength": 256,
                "description": "Channel name, by convention <project>:<role>."},
            "sender": {"type": "string", "minLength": 1, "maxLength": 128,
                "description": "Who you are, e.g. your machine or role."},
            "content": {"type": "string", "description": "The message text, up to 128 KiB."},
            "message": {"type": "object", "required": ["schema_version", "type", "content"],
                "properties": {"schema_version": {"const": 1}, "type": {"type": "string"}, "content": {}},
                "additionalProperties": true,
                "description": "A protocol-v1 envelope instead of content."},
            "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 256,
                "description": "Makes retries safe: the same key and content store one message."}},
         "required": ["channel", "sender"],
         "oneOf": [{"required": ["content"], "not": {"required": ["message"]}},
                   {"required": ["message"], "not": {"required": ["content"]}}],
         "additionalProperties": false}),
        annotations("Send a message", false, false, Some(false)),
    )
}

/// `bridge_receive`'s `tools/list` entry.
pub(super) fn receive_def(name: &str) -> Value {
    tool(
        name,
        "Read a channel's messages, oldest first. Pass the id of the last message you handled \
         as `since_id` to get only newer ones; without a cursor you get the newest `limit`. \
         Reading never moves anything.",
        json!({"type": "object", "properties": read_properties(),
         "required": ["channel"], "additionalProperties": false}),
        annotations("Read messages", true, false, None),
    )
}

/// `bridge_wait`'s `tools/list` entry.
pub(super) fn wait_def(name: &str) -> Value {
    tool(
        name,
        "Wait for new messages in a channel instead of polling: returns at once if there are \
         messages after your cursor (since_id or consumer_id), otherwise as soon as one \
         arrives, or empty with timed_out:true after timeout_seconds (default 20, max 55). \
         Call it again with the returned next_cursor to keep listening.",
        json!({"type": "object", "properties": wait_properties(),
         "required": ["channel"],
         "anyOf": [{"required": ["since_id"]}, {"required": ["consumer_id"]}],
         "additionalProperties": false}),
        annotations("Wait for messages", true, false, None),
    )
}

/// `bridge_ack`'s `tools/list` entry.
pub(super) fn ack_def(name: &str) -> Value {
    tool(
        name,
        "Record that a consumer has handled a channel up to a message, so it (or a restarted \
         copy of it) can resume with bridge_receive and consumer_id. The position only moves \
         forward; acking an older message changes nothing.",
        json!({"type": "object", "properties": {
            "channel": {"type": "string", "minLength": 1, "description": "Channel of the message."},
            "consumer_id": {"type": "string", "minLength": 1,
                "description": "A stable name for the reader, e.g. <project>:<role>:worker-1."},
            "message_id": {"type": "string", "minLength": 1,
                "description": "The last message handled."},
            "metadata": {"type": "object", "description": "Optional notes stored with the position."}},
         "required": ["channel", "consumer_id", "message_id"], "additionalProperties": false}),
        annotations("Acknowledge messages", false, false, Some(true)),
    )
}

/// `bridge_channels`'s `tools/list` entry.
pub(super) fn channels_def(name: &str) -> Value {
    tool(
        name,
        "List the channels that hold messages, with their message counts and last activity.",
        no_args(),
        annotations("List channels", true, false, None),
    )
}

/// `bridge_ping`'s `tools/list` entry.
pub(super) fn ping_def(name: &str) -> Value {
    tool(
        name,
        "Check that the bridge is up; returns its version and how many channels and messages \
         it holds.",
        no_args(),
        annotations("Ping the bridge", true, false, None),
    )
}

/// `bridge_clear`'s `tools/list` entry.
pub(super) fn clear_def(name: &str) -> Value {
    tool(
        name,
        "Delete every message of a channel (and its queued tasks). Cannot be undone.",
        json!({"type": "object", "properties": {
            "channel": {"type": "string", "minLength": 1, "description": "Channel to delete."}},
         "required": ["channel"], "additionalProperties": false}),
        annotations("Clear a channel", false, true, Some(true)),
    )
}

/// `bridge_status`'s `tools/list` entry.
pub(super) fn status_def(name: &str) -> Value {
    tool(
        name,
        "Overview of every channel with its newest messages (per_channel of them, 1-50).",
        json!({"type": "object", "properties": {
            "per_channel": {"type": "integer", "default": 5,
                "description": "Newest messages to show per channel (clamped to 1-50)."}},
         "additionalProperties": false}),
        annotations("Bridge status", true, false, None),
    )
}

pub(super) fn send(relay: &Relay, args: &Map<String, Value>, who: &Principal) -> Outcome {
    if present(args, "content").is_some() == present(args, "message").is_some() {
        return Err(FieldError::new(
            "content",
            "exclusive",
            "provide exactly one of content or message",
        )
        .into());
    }
    let send = relay.parse_send(args)?;
    relay.check_sender(who, &send.sender, &send.channel)?;
    let done = relay.send(&send)?;
    let m = &done.message;
    let ts = clock::render(&m.timestamp);
    let mut text = format!(
        "Sent to {} as message {} (seq {}, {ts}).",
        m.channel, m.id, m.seq
    );
    if done.deduplicated {
        text.push_str(" deduplicated: this idempotency key was already used for this content, so the first send's result is returned and nothing new was stored.");
    }
    Ok((
        json!({"id": m.id, "seq": m.seq, "channel": m.channel, "sender": send.sender,
               "timestamp": ts, "deduplicated": done.deduplicated}),
        text,
    ))
}

/// How long a wait may block before it reports progress (when asked to).
pub(super) const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

pub(super) fn wait(
    relay: &Relay,
    args: &Map<String, Value>,
    progress_token: Option<&Value>,
    notify: &mut dyn FnMut(Value),
    cancel: &std::sync::atomic::AtomicBool,
) -> Outcome {
    if present(args, "since_id").is_none() && present(args, "consumer_id").is_none() {
        return Err(
            FieldError::new("cursor", "required", "since_id or consumer_id is required").into(),
        );
    }
    let secs = present(args, "timeout_seconds")
        .and_then(Value::as_f64)
        .unwrap_or(20.0);
    let total =
        std::time::Duration::from_secs_f64(secs.clamp(0.0, crate::relay::MAX_WAIT.as_secs_f64()));
    let started = std::time::Instant::now();
    let mut waited = |channel: &str, cursor: Cursor<'_>, limit: usize| loop {
        let left = total.saturating_sub(started.elapsed());
        let slice = if progress_token.is_some() {
            left.min(PROGRESS_EVERY)
        } else {
            left
        };
        let (page, timed_out) = relay.wait(channel, cursor, limit, slice, Some(cancel))?;
        if !timed_out || slice == left || cancel.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok((page, timed_out));
        }
        if let Some(token) = progress_token {
            notify(json!({"jsonrpc": "2.0", "method": "notifications/progress",
                              "params": {"progressToken": token,
                                         "progress": started.elapsed().as_secs(),
                                         "total": total.as_secs(),
                                         "message": format!("waiting for messages in {channel}")}}));
        }
    };
    receive(relay, args, Some(&mut waited))
}

type Waiter<'w> =
    dyn FnMut(&str, Cursor<'_>, usize) -> Result<(crate::relay::Page, bool), Error> + 'w;

/// `bridge_receive`, or with `waiter` set `bridge_wait`: one selection, one rendering.
pub(super) fn receive(
    relay: &Relay,
    args: &Map<String, Value>,
    waiter: Option<&mut Waiter<'_>>,
) -> Outcome {
    let channel = relay.existing_channel("channel", &args["channel"])?;
    let since_id = match present(args, "since_id") {
        Some(v) => Some(validate::identity("since_id", v, validate::MAX_REF_CHARS)?),
        None => None,
    };
    let consumer_id = match present(args, "consumer_id") {
        Some(v) => Some(validate::identity(
            "consumer_id",
            v,
            validate::MAX_CONSUMER_CHARS,
        )?),
        None => None,
    };
    let limit = present(args, "limit").and_then(integer).unwrap_or(20) as usize;
    let cursor = Cursor::from_parts(since_id, consumer_id);
    let waiting = waiter.is_some();
    let (page, timed_out) = match waiter {
        Some(w) => w(channel, cursor, limit)?,
        None => (relay.read(channel, cursor, limit)?, false),
    };
    let next = page
        .messages
        .last()
        .map(|m| json!(m.id))
        .unwrap_or_else(|| json!(since_id));
    let warning = page.stale_cursor.then_some("since_id_not_found");
    let mut text = String::new();
    if page.stale_cursor {
        let _ = write!(
            text,
            "since_id {} is not a message of {channel} (the channel may have been cleared). \
             Call bridge_receive without since_id to read the newest messages.",
            since_id.unwrap_or_default()
        );
    } else if page.messages.is_empty() && timed_out {
        let _ = write!(text, "Nothing arrived in {channel} before the timeout. Call bridge_wait again to keep waiting.");
    } else if page.messages.is_empty() {
        let _ = write!(text, "No new messages in {channel}.");
    } else {
        let _ = writeln!(
            text,
            "{} message(s) in {channel}, oldest first:",
            page.messages.len()
        );
        for m in &page.messages {
            render_full(&mut text, m);
        }
        if let Some(last) = page.messages.last() {
            let _ = write!(
                text,
                "\nNext time pass since_id={} to get only newer messages.",
                last.id
            );
        }
    }
    let mut out = json!({
        "channel": channel,
        "messages": page.messages.iter().map(StoredMessage::record).collect::<Vec<_>>(),
        "next_cursor": next,
        "consumer_id": consumer_id,
        "warning": warning,
    });
    if waiting {
        out["timed_out"] = json!(timed_out);
    }
    Ok((out, text))
}

fn render_full(text: &mut String, m: &StoredMessage) {
    let _ = writeln!(
        text,
        "\n[seq {}] from {} at {} (id {}):\n{}",
        m.seq,
        m.sender,
        clock::render(&m.timestamp),
        m.id,
        m.content
    );
}

pub(super) fn ack(relay: &Relay, args: &Map<String, Value>) -> Outcome {
    let c = relay.ack(args)?;
    let text = if c.advanced {
        format!(
            "{} is now at message {} (seq {}) in {}.",
            c.consumer_id,
            c.last_message_id.as_deref().unwrap_or("-"),
            c.last_seq,
            c.channel
        )
    } else {
        format!(
            "{} is already at message {} (seq {}) in {}; nothing changed.",
            c.consumer_id,
            c.last_message_id.as_deref().unwrap_or("-"),
            c.last_seq,
            c.channel
        )
    };
    Ok((crate::relay::cursor_json(&c), text))
}

/// The channels `who` may read, with their statistics.
fn readable(
    relay: &Relay,
    who: &Principal,
) -> Result<std::collections::BTreeMap<String, crate::store::ChannelStat>, Error> {
    let mut stats = relay.channels()?;
    stats.retain(|c, _| who.may(Mode::Read, c));
    Ok(stats)
}

pub(super) fn channels(relay: &Relay, who: &Principal) -> Outcome {
    let stats = readable(relay, who)?;
    let total: u64 = stats.values().map(|s| s.count).sum();
    let list: Vec<Value> = stats
        .iter()
        .map(|(c, s)| json!({"channel": c, "count": s.count, "last_timestamp": clock::render(&s.last_timestamp)}))
        .collect();
    let mut text = String::new();
    if stats.is_empty() {
        text.push_str("There are no channels yet (none holds a message).");
    } else {
        let _ = writeln!(text, "{} channel(s), {total} message(s):", stats.len());
        for (c, s) in &stats {
            let _ = writeln!(
                text,
                "- {c}: {} message(s), last at {}",
                s.count,
                clock::render(&s.last_timestamp)
            );
        }
    }
    Ok((json!({"channels": list, "total_messages": total}), text))
}

pub(super) fn ping(relay: &Relay, who: &Principal) -> Outcome {
    let stats = readable(relay, who)?;
    let total: u64 = stats.values().map(|s| s.count).sum();
    let now = clock::now();
    Ok((
        json!({"service": "claude-bridge", "version": env!("CARGO_PKG_VERSION"),
               "channels": stats.len(), "messages": total, "server_time": now}),
        format!(
            "claude-bridge {} is online: {} channel(s), {total} message(s); server time {now}.",
            env!("CARGO_PKG_VERSION"),
            stats.len()
        ),
    ))
}

pub(super) fn clear(relay: &Relay, args: &Map<String, Value>) -> Outcome {
    let channel = relay.existing_channel("channel", &args["channel"])?;
    let cleared = relay.clear(channel)?;
    Ok((
        json!({"channel": channel, "cleared": cleared}),
        format!("Cleared {channel}: deleted {cleared} message(s)."),
    ))
}

pub(super) fn status(relay: &Relay, args: &Map<String, Value>, who: &Principal) -> Outcome {
    let per = present(args, "per_channel")
        .and_then(integer)
        .unwrap_or(5)
        .clamp(1, 50) as usize;
    let stats = readable(relay, who)?;
    let mut list = Vec::with_capacity(stats.len());
    let mut text = String::new();
    if stats.is_empty() {
        text.push_str("There are no channels yet (none holds a message).");
    }
    for (c, s) in &stats {
        let newest = relay.read(c, Cursor::Newest, per)?.messages;
        let _ = writeln!(text, "{c}: {} message(s)", s.count);
        for m in &newest {
            let flat: String = m
                .content
                .chars()
                .take(160)
                .collect::<String>()
                .replace('\n', " ");
            let more = if m.content.chars().count() > 160 {
                "…"
            } else {
                ""
            };
            let _ = writeln!(
                text,
                "  [seq {}] {} at {}: {flat}{more}",
                m.seq,
                m.sender,
                clock::render(&m.timestamp)
            );
        }
        list.push(json!({"channel": c, "total": s.count,
                         "messages": newest.iter().map(StoredMessage::record).collect::<Vec<_>>()}));
    }
    Ok((json!({"channels": list}), text))
}
