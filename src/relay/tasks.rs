//! The task queue's operations, argument rules and wake-ups (`mcp.md` §4.9–4.13, §5), on the
//! store and hub. The tools in `mcp/tools/tasks.rs` only render what these return.
//!
//! Waiting claims are woken on the hub under a key of their own per channel ([`task_key`]):
//! at once by an enqueue or a requeue in this process; by the db watcher (every change another
//! process commits, within `CLAUDE_BRIDGE_EVENT_POLL_MS`) for the channels that have a waiting
//! claim; and by their own deadline, which is the sooner of the wait's end and the next moment a
//! delayed task comes due or a lease lapses in the channel. A waiting claim sleeps on the hub;
//! it never holds a request worker (the transports run it like `bridge_wait`).

use super::{Relay, MAX_WAIT};
use crate::clock;
use crate::error::Error;
use crate::hub::Wake;
use crate::store::tasks::{Claimed, Failed, NewTask, Task};
use crate::validate::{self, FieldError};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The hub key waiting claims of `channel` sleep on (a NUL prefix keeps it apart from message
/// channels, whose names cannot hold control characters).
pub fn task_key(channel: &str) -> String {
    format!("\u{0}tasks:{channel}")
}

/// Channels with claims waiting now, and how many.
#[derive(Default)]
pub struct ClaimWaiters(Mutex<HashMap<String, usize>>);

impl ClaimWaiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The channels that have a waiting claim.
    pub fn channels(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

/// Counts one waiting claim on a channel while alive.
struct Waiting<'a> {
    waiters: &'a ClaimWaiters,
    channel: &'a str,
}

impl<'a> Waiting<'a> {
    fn new(waiters: &'a ClaimWaiters, channel: &'a str) -> Self {
        *waiters.lock().entry(channel.to_owned()).or_insert(0) += 1;
        Waiting { waiters, channel }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.lock();
        if let Some(n) = map.get_mut(self.channel) {
            *n -= 1;
            if *n == 0 {
                map.remove(self.channel);
            }
        }
    }
}

/// The instant a stored timestamp names (`None` if it does not parse).
fn instant_of(stored: &str) -> Option<Instant> {
    let at = clock::parse_rfc3339(stored).ok()?;
    let now = clock::now_micros();
    let from_now = Duration::from_micros(at.saturating_sub(now).max(0) as u64);
    Some(Instant::now() + from_now)
}

/// Largest stored payload, result or error text, in UTF-8 bytes.
pub const MAX_TASK_TEXT: usize = 131_072;
/// Deepest payload or result (the value itself is depth 0).
pub const MAX_TASK_DEPTH: usize = 128;
/// Largest page of `bridge_tasks`.
pub const MAX_TASK_LIST: usize = 500;

/// A validated enqueue.
#[derive(Debug, Clone)]
pub struct Enqueue {
    /// The queue.
    pub channel: String,
    /// Stored text: canonical JSON of `payload`, or `content` verbatim.
    pub payload: String,
    /// Higher first.
    pub priority: i64,
    /// Claims allowed.
    pub max_attempts: i64,
    /// Seconds before it may be claimed.
    pub delay_seconds: i64,
    /// Channel-scoped de-duplication key.
    pub idempotency_key: Option<String>,
    /// Who asked, for the record.
    pub enqueued_by: Option<String>,
}

/// A validated claim.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The queue.
    pub channel: String,
    /// Who claims.
    pub consumer: String,
    /// The lease, clamped to `1..=max_lease_seconds`.
    pub lease_seconds: i64,
    /// How long to wait for a task, at most [`MAX_WAIT`].
    pub wait: Duration,
}

/// The arguments complete and fail share: which task, proven by which lease.
#[derive(Debug, Clone)]
pub struct Fence {
    /// The queue.
    pub channel: String,
    /// The task.
    pub task_id: String,
    /// The lease token its claim returned.
    pub lease_token: String,
}

fn present<'a>(args: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    args.get(key).filter(|v| !v.is_null())
}

fn ident(args: &Map<String, Value>, key: &str, max: usize) -> Result<String, FieldError> {
    validate::identity(key, args.get(key).unwrap_or(&Value::Null), max).map(str::to_owned)
}

fn opt_ident(
    args: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<String>, FieldError> {
    present(args, key)
        .map(|v| validate::identity(key, v, max).map(str::to_owned))
        .transpose()
}

fn int(args: &Map<String, Value>, key: &str, default: i64) -> i64 {
    present(args, key)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// A JSON value stored as canonical text: depth ≤ [`MAX_TASK_DEPTH`], ≤ [`MAX_TASK_TEXT`].
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

fn channel_of(args: &Map<String, Value>) -> Result<String, FieldError> {
    ident(args, "channel", validate::MAX_CHANNEL_CHARS)
}

impl Relay {
    /// Validate `bridge_enqueue`'s arguments (after the schema check): exactly one of
    /// `payload` (any JSON, `null` included) or `content`, then each field's rule.
    pub fn parse_enqueue(&self, args: &Map<String, Value>) -> Result<Enqueue, Error> {
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
        Ok(Enqueue {
            channel,
            payload,
            priority: int(args, "priority", 0),
            max_attempts: int(
                args,
                "max_attempts",
                self.settings.default_max_attempts.into(),
            ),
            delay_seconds: int(args, "delay_seconds", 0),
            idempotency_key: opt_ident(args, "idempotency_key", validate::MAX_REF_CHARS)?,
            enqueued_by: opt_ident(args, "enqueued_by", validate::MAX_REF_CHARS)?,
        })
    }

    /// Validate `bridge_claim`'s arguments; the lease and the wait are clamped, not refused.
    pub fn parse_claim(&self, args: &Map<String, Value>) -> Result<Claim, Error> {
        let channel = channel_of(args)?;
        let consumer = ident(args, "consumer", validate::MAX_CONSUMER_CHARS)?;
        let max_lease = self.settings.max_lease_seconds as i64;
        let default_lease = (self.settings.default_lease_seconds as i64).min(max_lease);
        let wait = present(args, "wait_seconds")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            .clamp(0.0, MAX_WAIT.as_secs_f64());
        Ok(Claim {
            channel,
            consumer,
            lease_seconds: int(args, "lease_seconds", default_lease).clamp(1, max_lease),
            wait: Duration::from_secs_f64(wait),
        })
    }

    /// Validate the task, lease and optional JSON `result` of `bridge_complete`.
    pub fn parse_complete(
        &self,
        args: &Map<String, Value>,
    ) -> Result<(Fence, Option<String>), Error> {
        let fence = fence(args)?;
        let result = present(args, "result")
            .map(|v| json_text("result", v))
            .transpose()?;
        Ok((fence, result))
    }

    /// Validate `bridge_fail`'s arguments: the fence, `error` text, `requeue` (default true)
    /// and `retry_delay_seconds`.
    pub fn parse_fail(
        &self,
        args: &Map<String, Value>,
    ) -> Result<(Fence, Option<String>, bool, i64), Error> {
        let fence = fence(args)?;
        let error = present(args, "error").and_then(Value::as_str);
        if let Some(e) = error {
            check_text("error", e)?;
        }
        let requeue = present(args, "requeue")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let delay = int(args, "retry_delay_seconds", 0);
        Ok((fence, error.map(str::to_owned), requeue, delay))
    }

    /// Counts per status and the newest tasks of a channel (`bridge_tasks`), optionally of one
    /// status; `limit` is clamped to `1..=MAX_TASK_LIST` (default 50).
    #[allow(clippy::type_complexity)]
    pub fn tasks(
        &self,
        args: &Map<String, Value>,
    ) -> Result<(String, Map<String, Value>, Vec<Task>), Error> {
        let channel = channel_of(args)?;
        let status = present(args, "status").and_then(Value::as_str);
        let limit = int(args, "limit", 50).clamp(1, MAX_TASK_LIST as i64) as usize;
        let (counts, list) = self.store.tasks(&channel, status, limit)?;
        Ok((channel, counts, list))
    }
}

fn fence(args: &Map<String, Value>) -> Result<Fence, FieldError> {
    Ok(Fence {
        channel: channel_of(args)?,
        task_id: ident(args, "task_id", validate::MAX_REF_CHARS)?,
        lease_token: ident(args, "lease_token", validate::MAX_REF_CHARS)?,
    })
}

impl Relay {
    /// Enqueue a task; wakes this channel's waiting claims when a new task is claimable now.
    pub fn enqueue(&self, e: &Enqueue) -> Result<(bool, Task), Error> {
        let t = NewTask {
            channel: &e.channel,
            payload: &e.payload,
            priority: e.priority,
            max_attempts: e.max_attempts,
            delay_seconds: e.delay_seconds,
            idempotency_key: e.idempotency_key.as_deref(),
            enqueued_by: e.enqueued_by.as_deref(),
        };
        let (created, task) = self.store.enqueue(&t)?;
        if created {
            // A delayed task too: waiting claims recompute their deadline from it.
            self.hub.publish(&task_key(t.channel));
        }
        Ok((created, task))
    }

    /// Claim the next eligible task, waiting up to the claim's `wait` for one (woken as the
    /// module docs say). `None` when nothing became claimable in time, or the call was
    /// cancelled.
    pub fn claim(&self, c: &Claim, cancel: &AtomicBool) -> Result<Option<Claimed>, Error> {
        let (channel, consumer, lease_seconds, wait) = (
            c.channel.as_str(),
            c.consumer.as_str(),
            c.lease_seconds,
            c.wait,
        );
        self.seen(consumer);
        let deadline = Instant::now() + wait;
        let key = task_key(channel);
        let _waiting = (!wait.is_zero()).then(|| {
            (
                Waiting::new(&self.claim_waiters, channel),
                crate::metrics::Waiting::start(),
            )
        });
        loop {
            // The ticket comes before the attempt: an enqueue landing in between still wakes us.
            let ticket = self.hub.ticket();
            if let Some(claimed) = self.store.claim(channel, consumer, lease_seconds)? {
                return Ok(Some(claimed));
            }
            if cancel.load(Ordering::SeqCst) || Instant::now() >= deadline {
                return Ok(None);
            }
            let until = match self.store.next_task_change(channel)? {
                Some(ts) => instant_of(&ts).map_or(deadline, |at| at.min(deadline)),
                None => deadline,
            };
            // A due time in the past (clock granularity): look again shortly, not in a spin.
            let until = until.max(Instant::now() + Duration::from_millis(1));
            if self.hub.wait(&key, ticket, until) == Wake::Shutdown {
                return Ok(None);
            }
        }
    }

    /// Complete a claimed task (fenced by its lease token).
    pub fn complete(&self, f: &Fence, result: Option<&str>) -> Result<Task, Error> {
        self.store
            .complete(&f.channel, &f.task_id, &f.lease_token, result)
    }

    /// Fail a claimed task (fenced); a requeue wakes the channel's waiting claims.
    pub fn fail(
        &self,
        f: &Fence,
        requeue: bool,
        error: Option<&str>,
        retry_delay_seconds: i64,
    ) -> Result<(Failed, Task), Error> {
        let out = self.store.fail(
            &f.channel,
            &f.task_id,
            &f.lease_token,
            requeue,
            error,
            retry_delay_seconds,
        )?;
        if out.0 == Failed::Requeued {
            self.hub.publish(&task_key(&f.channel));
        }
        Ok(out)
    }

    /// Wake the waiting claims of every channel that has one (another process changed the db,
    /// or the sweep expired leases).
    pub fn wake_claims(&self) {
        for channel in self.claim_waiters.channels() {
            self.hub.publish(&task_key(&channel));
        }
    }

    /// Expire lapsed leases in every channel (housekeeping) and wake waiting claims if any
    /// task became claimable.
    pub fn expire_leases(&self) -> Result<u64, Error> {
        let n = self.store.expire_all_leases()?;
        if n > 0 {
            self.wake_claims();
        }
        Ok(n)
    }
}
