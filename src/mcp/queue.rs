//! The task-queue tools (`mcp.md` §4.9–4.13): schemas, argument rules beyond the schema, and
//! text renderings. The operations are in [`crate::queue`].

use super::tools::{annotations, present, tool, Outcome};
use crate::relay::Relay;
use crate::store::tasks::{Failed, NewTask, Task};
use crate::validate::{self, FieldError};
use serde_json::{json, Map, Value};
use std::fmt::Write;

/// Largest stored payload, result or error text, in UTF-8 bytes.
const MAX_TASK_TEXT: usize = 131_072;
/// Deepest payload or result (the value itself is depth 0).
const MAX_TASK_DEPTH: usize = 128;

/// The `tools/list` entry of a queue tool.
pub(super) fn definition(name: &str) -> Option<Value> {
    let channel = json!({"type": "string", "minLength": 1,
        "description": "The queue: a channel name, by convention <project>:<queue>."});
    let task_id = json!({"type": "string", "minLength": 1, "maxLength": 256,
        "description": "The task_id bridge_claim returned."});
    let lease_token = json!({"type": "string", "minLength": 1, "maxLength": 256,
        "description": "The lease_token bridge_claim returned; proves you still hold the task."});
    Some(match name {
        "bridge_enqueue" => tool(
            name,
            "Add a job to a channel's work queue, for exactly one worker to claim. Give `payload` \
             (any JSON) or `content` (text), not both. Higher `priority` is claimed first; \
             `delay_seconds` holds it back; with an `idempotency_key` a repeat returns the \
             existing task instead of adding another.",
            json!({"type": "object", "properties": {
                "channel": {"type": "string", "minLength": 1, "maxLength": 256,
                    "description": "The queue: a channel name, by convention <project>:<queue>."},
                "payload": {"description": "The job as any JSON value."},
                "content": {"type": "string", "description": "The job as text."},
                "priority": {"type": "integer", "minimum": 0, "maximum": 2147483647, "default": 0,
                    "description": "Higher is claimed first."},
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 2147483647,
                    "description": "Claims allowed before the task is dead (default 3)."},
                "delay_seconds": {"type": "integer", "minimum": 0, "maximum": 1000000000, "default": 0,
                    "description": "Not claimable until this many seconds from now."},
                "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 256,
                    "description": "One task per key in this channel: repeats return it."},
                "enqueued_by": {"type": "string", "minLength": 1, "maxLength": 256,
                    "description": "Who is asking, for the record."}},
             "required": ["channel"],
             "oneOf": [{"required": ["payload"], "not": {"required": ["content"]}},
                       {"required": ["content"], "not": {"required": ["payload"]}}],
             "additionalProperties": false}),
            annotations("Enqueue a task", false, false, Some(false)),
        ),
        "bridge_claim" => tool(
            name,
            "Take the next job from a channel's queue: it is yours alone until its lease runs \
             out. Finish with bridge_complete or bridge_fail, passing the lease_token. With \
             wait_seconds, waits for a job instead of returning task:null at once.",
            json!({"type": "object", "properties": {
                "channel": channel,
                "consumer": {"type": "string", "minLength": 1, "maxLength": 128,
                    "description": "Who you are, e.g. <project>:worker-1."},
                "lease_seconds": {"type": "integer", "minimum": 1,
                    "description": "How long the job is yours (default 300, at most 3600)."},
                "wait_seconds": {"type": "number", "minimum": 0, "maximum": 55, "default": 0,
                    "description": "Wait up to this long for a job (max 55)."}},
             "required": ["channel", "consumer"], "additionalProperties": false}),
            annotations("Claim a task", false, false, Some(false)),
        ),
        "bridge_complete" => tool(
            name,
            "Mark a claimed job done, with an optional JSON `result`. Fails with `lost` if your \
             lease ran out and someone else holds the job now.",
            json!({"type": "object", "properties": {
                "channel": channel, "task_id": task_id, "lease_token": lease_token,
                "result": {"description": "Any JSON to store with the finished task."}},
             "required": ["channel", "task_id", "lease_token"], "additionalProperties": false}),
            annotations("Complete a task", false, false, Some(false)),
        ),
        "bridge_fail" => tool(
            name,
            "Give a claimed job back as failed. By default it is retried (after \
             retry_delay_seconds) until its attempts are spent, then dead; requeue:false makes \
             it dead at once.",
            json!({"type": "object", "properties": {
                "channel": channel, "task_id": task_id, "lease_token": lease_token,
                "requeue": {"type": "boolean", "default": true,
                    "description": "Retry while attempts remain (default true)."},
                "error": {"type": "string", "description": "What went wrong."},
                "retry_delay_seconds": {"type": "integer", "minimum": 0, "maximum": 1000000000,
                    "default": 0, "description": "Wait before the retry may be claimed."}},
             "required": ["channel", "task_id", "lease_token"], "additionalProperties": false}),
            annotations("Fail a task", false, false, Some(false)),
        ),
        "bridge_tasks" => tool(
            name,
            "Look at a channel's queue: how many tasks are in each status, and the newest ones \
             (optionally of one status).",
            json!({"type": "object", "properties": {
                "channel": channel,
                "status": {"type": "string",
                    "enum": ["pending", "claimed", "completed", "failed", "dead"],
                    "description": "Only tasks in this status."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50,
                    "description": "At most this many tasks (newest first)."}},
             "required": ["channel"], "additionalProperties": false}),
            annotations("List tasks", true, false, None),
        ),
        _ => return None,
    })
}

/// Run a queue tool (its arguments already passed the schema check).
pub(super) fn run(
    relay: &Relay,
    name: &str,
    args: &Map<String, Value>,
    cancel: &std::sync::atomic::AtomicBool,
) -> Outcome {
    match name {
        "bridge_enqueue" => enqueue(relay, args),
        "bridge_claim" => claim(relay, args, cancel),
        "bridge_complete" => complete(relay, args),
        "bridge_fail" => fail(relay, args),
        "bridge_tasks" => tasks(relay, args),
        _ => unreachable!("definition() and run() list the same tools"),
    }
}

fn ident<'a>(args: &'a Map<String, Value>, key: &str, max: usize) -> Result<&'a str, FieldError> {
    validate::identity(key, args.get(key).unwrap_or(&Value::Null), max)
}

fn opt_ident<'a>(
    args: &'a Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<&'a str>, FieldError> {
    present(args, key)
        .map(|v| validate::identity(key, v, max))
        .transpose()
}

fn int(args: &Map<String, Value>, key: &str, default: i64) -> i64 {
    present(args, key)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// A JSON value stored as canonical text: depth ≤ 128, ≤ 128 KiB.
fn json_text(field: &str, v: &Value) -> Result<String, FieldError> {
    validate::json_value(field, v, MAX_TASK_DEPTH)?;
    let text = crate::json::canonical(v);
    check_text(field, &text)?;
    Ok(text)
}

fn check_text(field: &str, text: &str) -> Result<(), FieldError> {
    if text.len() > MAX_TASK_TEXT {
        return Err(FieldError::new(
            field,
            "too_large",
            format!("must be at most {MAX_TASK_TEXT} bytes"),
        ));
    }
    if text.contains('\0') {
        return Err(FieldError::new(
            field,
            "nul_byte",
            "must not contain NUL bytes",
        ));
    }
    Ok(())
}

fn channel_of(args: &Map<String, Value>) -> Result<&str, FieldError> {
    ident(args, "channel", validate::MAX_CHANNEL_CHARS)
}

fn enqueue(relay: &Relay, args: &Map<String, Value>) -> Outcome {
    // `payload: null` is a real payload, so presence is the key being there.
    let (has_payload, has_content) = (
        args.contains_key("payload"),
        present(args, "content").is_some(),
    );
    if has_payload == has_content {
        return Err(FieldError::new(
            "payload",
            "exclusive",
            "provide exactly one of payload or content",
        )
        .into());
    }
    let channel = channel_of(args)?;
    let payload = if has_payload {
        json_text("payload", &args["payload"])?
    } else {
        let text = args["content"].as_str().unwrap_or_default();
        check_text("payload", text)?;
        text.to_owned()
    };
    let idempotency_key = opt_ident(args, "idempotency_key", validate::MAX_REF_CHARS)?;
    let enqueued_by = opt_ident(args, "enqueued_by", validate::MAX_REF_CHARS)?;
    let t = NewTask {
        channel,
        payload: &payload,
        priority: int(args, "priority", 0),
        max_attempts: int(
            args,
            "max_attempts",
            relay.settings.default_max_attempts.into(),
        ),
        delay_seconds: int(args, "delay_seconds", 0),
        idempotency_key,
        enqueued_by,
    };
    let (created, task) = relay.enqueue(&t)?;
    let mut text = format!(
        "Task {} queued in {} ({}, priority {}, up to {} attempts).",
        task.id, task.channel, task.status, task.priority, task.max_attempts
    );
    if !created {
        text = format!(
            "deduplicated: task {} with this idempotency key already exists in {} ({}); \
             nothing new was queued.",
            task.id, task.channel, task.status
        );
    }
    let mut out = Map::new();
    out.insert("created".into(), json!(created));
    out.extend(task.view());
    Ok((Value::Object(out), text))
}

fn claim(
    relay: &Relay,
    args: &Map<String, Value>,
    cancel: &std::sync::atomic::AtomicBool,
) -> Outcome {
    let channel = channel_of(args)?;
    let consumer = ident(args, "consumer", validate::MAX_CONSUMER_CHARS)?;
    let max_lease = relay.settings.max_lease_seconds as i64;
    let default_lease = (relay.settings.default_lease_seconds as i64).min(max_lease);
    let lease = int(args, "lease_seconds", default_lease).clamp(1, max_lease);
    let wait = present(args, "wait_seconds")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
        .clamp(0.0, 55.0);
    let claimed = relay.claim(
        channel,
        consumer,
        lease,
        std::time::Duration::from_secs_f64(wait),
        cancel,
    )?;
    let Some(c) = claimed else {
        return Ok((
            json!({"channel": channel, "task": null}),
            format!("No task is available in {channel} right now."),
        ));
    };
    let t = &c.task;
    let expires = t
        .lease_expires_at
        .as_deref()
        .map(crate::clock::render)
        .unwrap_or_default();
    let mut text = format!(
        "Claimed task {} from {} (attempt {}/{}). Lease held by {} until {expires}; \
         lease_token {}. Finish with bridge_complete or bridge_fail.\npayload: ",
        t.id, t.channel, t.attempts, t.max_attempts, consumer, c.lease_token
    );
    text.push_str(&c.payload);
    let mut task = t.view();
    task.insert("payload".into(), json!(c.payload));
    task.insert("lease_token".into(), json!(c.lease_token));
    Ok((json!({"channel": channel, "task": task}), text))
}

/// The arguments complete and fail share.
fn fenced_args(args: &Map<String, Value>) -> Result<(&str, &str, &str), FieldError> {
    Ok((
        channel_of(args)?,
        ident(args, "task_id", validate::MAX_REF_CHARS)?,
        ident(args, "lease_token", validate::MAX_REF_CHARS)?,
    ))
}

fn complete(relay: &Relay, args: &Map<String, Value>) -> Outcome {
    let (channel, task_id, token) = fenced_args(args)?;
    let result = present(args, "result")
        .map(|v| json_text("result", v))
        .transpose()?;
    let task = relay.complete(channel, task_id, token, result.as_deref())?;
    let text = format!("Task {} in {} is completed.", task.id, task.channel);
    Ok((Value::Object(task.view()), text))
}

fn fail(relay: &Relay, args: &Map<String, Value>) -> Outcome {
    let (channel, task_id, token) = fenced_args(args)?;
    let error = present(args, "error").and_then(Value::as_str);
    if let Some(e) = error {
        check_text("error", e)?;
    }
    let requeue = present(args, "requeue")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let delay = int(args, "retry_delay_seconds", 0);
    let (outcome, task) = relay.fail(channel, task_id, token, requeue, error, delay)?;
    let text = match outcome {
        Failed::Requeued => format!(
            "Task {} in {} failed and was requeued (attempt {}/{}); it may be claimed again from {}.",
            task.id,
            task.channel,
            task.attempts,
            task.max_attempts,
            crate::clock::render(&task.available_at)
        ),
        Failed::Dead => format!(
            "Task {} in {} failed and is dead (attempt {}/{}); it will not be retried.",
            task.id, task.channel, task.attempts, task.max_attempts
        ),
    };
    Ok((Value::Object(task.view()), text))
}

fn tasks(relay: &Relay, args: &Map<String, Value>) -> Outcome {
    let channel = channel_of(args)?;
    let status = present(args, "status").and_then(Value::as_str);
    let limit = int(args, "limit", 50).clamp(1, 500) as usize;
    let (counts, list) = relay.store.tasks(channel, status, limit)?;
    let mut text = format!("Queue {channel}: ");
    let nonzero: Vec<String> = counts
        .iter()
        .filter(|(_, n)| n.as_i64().unwrap_or(0) > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    if nonzero.is_empty() {
        text.push_str("empty.");
    } else {
        text.push_str(&nonzero.join(", "));
        text.push('.');
    }
    for t in &list {
        let _ = write!(text, "\n- {}", line(t));
    }
    let views: Vec<Value> = list.iter().map(|t| Value::Object(t.view())).collect();
    Ok((
        json!({"channel": channel, "counts": counts, "tasks": views}),
        text,
    ))
}

fn line(t: &Task) -> String {
    format!(
        "{} {} (attempt {}/{}, priority {})",
        t.id, t.status, t.attempts, t.max_attempts, t.priority
    )
}
