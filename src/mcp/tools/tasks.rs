//! The task-queue tools (`mcp.md` §4.9–4.13): schemas and text renderings. Their argument
//! rules and operations are in [`crate::relay::tasks`].

use crate::mcp::schema::{annotations, tool, Outcome};
use crate::relay::Relay;
use crate::store::tasks::{Failed, Task};
use serde_json::{json, Map, Value};
use std::fmt::Write;

/// The queue argument every task tool takes.
fn channel() -> Value {
    json!({"type": "string", "minLength": 1,
        "description": "The queue: a channel name, by convention <project>:<queue>."})
}

/// The task a lease names.
fn task_id() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 256,
        "description": "The task_id bridge_claim returned."})
}

/// The fencing token of a claim.
fn lease_token() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 256,
        "description": "The lease_token bridge_claim returned; proves you still hold the task."})
}

/// `bridge_enqueue`'s `tools/list` entry.
pub(super) fn enqueue_def(name: &str) -> Value {
    tool(
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
    )
}

/// `bridge_claim`'s `tools/list` entry.
pub(super) fn claim_def(name: &str) -> Value {
    tool(
        name,
        "Take the next job from a channel's queue: it is yours alone until its lease runs \
         out. Finish with bridge_complete or bridge_fail, passing the lease_token. With \
         wait_seconds, waits for a job instead of returning task:null at once.",
        json!({"type": "object", "properties": {
            "channel": channel(),
            "consumer": {"type": "string", "minLength": 1, "maxLength": 128,
                "description": "Who you are, e.g. <project>:worker-1."},
            "lease_seconds": {"type": "integer", "minimum": 1,
                "description": "How long the job is yours (default 300, at most 3600)."},
            "wait_seconds": {"type": "number", "minimum": 0, "maximum": crate::relay::MAX_WAIT.as_secs(), "default": 0,
                "description": "Wait up to this long for a job (max 55)."}},
         "required": ["channel", "consumer"], "additionalProperties": false}),
        annotations("Claim a task", false, false, Some(false)),
    )
}

/// `bridge_complete`'s `tools/list` entry.
pub(super) fn complete_def(name: &str) -> Value {
    tool(
        name,
        "Mark a claimed job done, with an optional JSON `result`. Fails with `lost` if your \
         lease ran out and someone else holds the job now.",
        json!({"type": "object", "properties": {
            "channel": channel(), "task_id": task_id(), "lease_token": lease_token(),
            "result": {"description": "Any JSON to store with the finished task."}},
         "required": ["channel", "task_id", "lease_token"], "additionalProperties": false}),
        annotations("Complete a task", false, false, Some(false)),
    )
}

/// `bridge_fail`'s `tools/list` entry.
pub(super) fn fail_def(name: &str) -> Value {
    tool(
        name,
        "Give a claimed job back as failed. By default it is retried (after \
         retry_delay_seconds) until its attempts are spent, then dead; requeue:false makes \
         it dead at once.",
        json!({"type": "object", "properties": {
            "channel": channel(), "task_id": task_id(), "lease_token": lease_token(),
            "requeue": {"type": "boolean", "default": true,
                "description": "Retry while attempts remain (default true)."},
            "error": {"type": "string", "description": "What went wrong."},
            "retry_delay_seconds": {"type": "integer", "minimum": 0, "maximum": 1000000000,
                "default": 0, "description": "Wait before the retry may be claimed."}},
         "required": ["channel", "task_id", "lease_token"], "additionalProperties": false}),
        annotations("Fail a task", false, false, Some(false)),
    )
}

/// `bridge_tasks`'s `tools/list` entry.
pub(super) fn tasks_def(name: &str) -> Value {
    tool(
        name,
        "Look at a channel's queue: how many tasks are in each status, and the newest ones \
         (optionally of one status).",
        json!({"type": "object", "properties": {
            "channel": channel(),
            "status": {"type": "string",
                "enum": ["pending", "claimed", "completed", "failed", "dead"],
                "description": "Only tasks in this status."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50,
                "description": "At most this many tasks (newest first)."}},
         "required": ["channel"], "additionalProperties": false}),
        annotations("List tasks", true, false, None),
    )
}

pub(super) fn enqueue(relay: &Relay, args: &Map<String, Value>) -> Outcome {
    let (created, task) = relay.enqueue(&relay.parse_enqueue(args)?)?;
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

/// `bridge_claim`. A waiting claim whose request carries a progress token reports progress
/// every [`super::messages::PROGRESS_EVERY`] while it waits, as `bridge_wait` does.
pub(super) fn claim(
    relay: &Relay,
    args: &Map<String, Value>,
    progress_token: Option<&Value>,
    notify: &mut dyn FnMut(Value),
    cancel: &std::sync::atomic::AtomicBool,
) -> Outcome {
    let mut claim = relay.parse_claim(args)?;
    let total = claim.wait;
    let started = std::time::Instant::now();
    let claimed = loop {
        let left = total.saturating_sub(started.elapsed());
        let slice = match progress_token {
            Some(_) => left.min(super::messages::PROGRESS_EVERY),
            None => left,
        };
        claim.wait = slice;
        let got = relay.claim(&claim, cancel)?;
        let stopping = relay.sleep(std::time::Instant::now());
        if got.is_some()
            || slice == left
            || stopping
            || cancel.load(std::sync::atomic::Ordering::SeqCst)
        {
            break got;
        }
        if let Some(token) = progress_token {
            notify(json!({"jsonrpc": "2.0", "method": "notifications/progress",
                          "params": {"progressToken": token,
                                     "progress": started.elapsed().as_secs(),
                                     "total": total.as_secs(),
                                     "message": format!("waiting for a task in {}", claim.channel)}}));
        }
    };
    let channel = &claim.channel;
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
        t.id, t.channel, t.attempts, t.max_attempts, claim.consumer, c.lease_token
    );
    text.push_str(&c.payload);
    let mut task = t.view();
    task.insert("payload".into(), json!(c.payload));
    task.insert("lease_token".into(), json!(c.lease_token));
    Ok((json!({"channel": channel, "task": task}), text))
}

pub(super) fn complete(relay: &Relay, args: &Map<String, Value>) -> Outcome {
    let (fence, result) = relay.parse_complete(args)?;
    let task = relay.complete(&fence, result.as_deref())?;
    let text = format!("Task {} in {} is completed.", task.id, task.channel);
    Ok((Value::Object(task.view()), text))
}

pub(super) fn fail(relay: &Relay, args: &Map<String, Value>) -> Outcome {
    let (fence, error, requeue, delay) = relay.parse_fail(args)?;
    let (outcome, task) = relay.fail(&fence, requeue, error.as_deref(), delay)?;
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

pub(super) fn tasks(relay: &Relay, args: &Map<String, Value>) -> Outcome {
    let (channel, counts, list) = relay.tasks(args)?;
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
