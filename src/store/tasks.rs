//! The task queue's SQL (`mcp.md` §5, `storage.md` `tasks`): every operation is one `BEGIN
//! IMMEDIATE` transaction, so a claim has one winner across threads and processes.

use super::Store;
use crate::clock;
use crate::error::Error;
use crate::ids;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde_json::{json, Value};

/// The `last_error` a task gets when its lease expires after its last attempt.
pub const EXPIRED_NOTE: &str = "lease expired after the maximum number of attempts";

/// One task as stored (payload and lease token aside).
#[derive(Debug, Clone)]
pub struct Task {
    /// `tsk_` + 32 hex.
    pub id: String,
    /// The queue (a channel name).
    pub channel: String,
    /// `pending`, `claimed`, `completed`, `failed` or `dead`.
    pub status: String,
    /// Higher is claimed first.
    pub priority: i64,
    /// Claims so far.
    pub attempts: i64,
    /// Claims allowed.
    pub max_attempts: i64,
    /// Not claimable before.
    pub available_at: String,
    /// The claiming consumer while claimed.
    pub lease_owner: Option<String>,
    /// When the claim lapses.
    pub lease_expires_at: Option<String>,
    /// Canonical JSON text given to complete.
    pub result: Option<String>,
    /// From fail, or the expiry note.
    pub last_error: Option<String>,
    /// From enqueue.
    pub idempotency_key: Option<String>,
    /// From enqueue.
    pub enqueued_by: Option<String>,
    /// When enqueued.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl Task {
    /// The task view of `mcp.md` §5.1, keys in the documented order.
    pub fn view(&self) -> serde_json::Map<String, Value> {
        let ts = |s: &str| Value::String(clock::render(s));
        let opt_ts = |s: &Option<String>| s.as_deref().map_or(Value::Null, ts);
        let mut m = serde_json::Map::new();
        m.insert("task_id".into(), json!(self.id));
        m.insert("channel".into(), json!(self.channel));
        m.insert("status".into(), json!(self.status));
        m.insert("priority".into(), json!(self.priority));
        m.insert("attempts".into(), json!(self.attempts));
        m.insert("max_attempts".into(), json!(self.max_attempts));
        m.insert("available_at".into(), ts(&self.available_at));
        m.insert("lease_owner".into(), json!(self.lease_owner));
        m.insert("lease_expires_at".into(), opt_ts(&self.lease_expires_at));
        m.insert("result".into(), json!(self.result));
        m.insert("last_error".into(), json!(self.last_error));
        m.insert("idempotency_key".into(), json!(self.idempotency_key));
        m.insert("enqueued_by".into(), json!(self.enqueued_by));
        m.insert("created_at".into(), ts(&self.created_at));
        m.insert("updated_at".into(), ts(&self.updated_at));
        m
    }
}

/// What `enqueue` stores.
#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    /// The queue.
    pub channel: &'a str,
    /// Stored text (canonical JSON of `payload`, or `content` verbatim).
    pub payload: &'a str,
    /// Higher first.
    pub priority: i64,
    /// At least 1.
    pub max_attempts: i64,
    /// Seconds before the task may be claimed.
    pub delay_seconds: i64,
    /// Channel-scoped de-duplication key.
    pub idempotency_key: Option<&'a str>,
    /// Informational.
    pub enqueued_by: Option<&'a str>,
}

/// A successful claim: the task, its payload and the lease token.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The task, now `claimed`.
    pub task: Task,
    /// The stored payload text.
    pub payload: String,
    /// The fencing token (returned only here).
    pub lease_token: String,
}

/// How `fail` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Back to `pending`.
    Requeued,
    /// `dead`.
    Dead,
}

const COLUMNS: &str = "id, channel, status, priority, attempts, max_attempts, available_at, \
    lease_owner, lease_expires_at, result, last_error, idempotency_key, enqueued_by, created_at, \
    updated_at";

fn row_to_task(r: &Row<'_>) -> rusqlite::Result<Task> {
    Ok(Task {
        id: r.get(0)?,
        channel: r.get(1)?,
        status: r.get(2)?,
        priority: r.get(3)?,
        attempts: r.get(4)?,
        max_attempts: r.get(5)?,
        available_at: r.get(6)?,
        lease_owner: r.get(7)?,
        lease_expires_at: r.get(8)?,
        result: r.get(9)?,
        last_error: r.get(10)?,
        idempotency_key: r.get(11)?,
        enqueued_by: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
    })
}

fn task_by_id(c: &Connection, channel: &str, id: &str) -> rusqlite::Result<Option<Task>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE id = ?1 AND channel = ?2"
    ))?
    .query_row(params![id, channel], row_to_task)
    .optional()
}

/// Expired leases of `channel` (or of every channel) go back to `pending`, or to `dead` when
/// their attempts are spent (`mcp.md` §5.2). Returns how many tasks became claimable.
fn expire_leases(
    c: &Connection,
    channel: Option<&str>,
    now: &str,
    limit: i64,
) -> rusqlite::Result<u64> {
    let scope = if channel.is_some() {
        "AND channel = ?3"
    } else {
        "AND ?3 IS NULL"
    };
    let requeued = c
        .prepare_cached(&format!(
            "UPDATE tasks SET status = 'pending', lease_owner = NULL, lease_token = NULL, \
             lease_expires_at = NULL, updated_at = ?1 \
             WHERE seq IN (SELECT seq FROM tasks WHERE status = 'claimed' \
             AND lease_expires_at <= ?1 AND attempts < max_attempts {scope} LIMIT ?2)"
        ))?
        .execute(params![now, limit, channel])?;
    c.prepare_cached(&format!(
        "UPDATE tasks SET status = 'dead', lease_owner = NULL, lease_token = NULL, \
         lease_expires_at = NULL, last_error = ?4, updated_at = ?1 \
         WHERE seq IN (SELECT seq FROM tasks WHERE status = 'claimed' \
         AND lease_expires_at <= ?1 AND attempts >= max_attempts {scope} LIMIT ?2)"
    ))?
    .execute(params![now, limit, channel, EXPIRED_NOTE])?;
    Ok(requeued as u64)
}

impl Store {
    /// Enqueue a task, or return the channel's task with the same idempotency key unchanged
    /// (`created: false`).
    pub fn enqueue(&self, t: &NewTask<'_>) -> Result<(bool, Task), Error> {
        let mut g = self.lock();
        let tx = g
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(key) = t.idempotency_key {
            let found = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM tasks WHERE channel = ?1 AND idempotency_key = ?2"
                ))?
                .query_row(params![t.channel, key], row_to_task)
                .optional()?;
            if let Some(task) = found {
                return Ok((false, task));
            }
        }
        let micros = clock::now_micros();
        let now = clock::format_micros(micros);
        let available =
            clock::format_micros(micros.saturating_add(t.delay_seconds.saturating_mul(1_000_000)));
        let id = format!("tsk_{}", ids::random_hex(16));
        tx.prepare_cached(
            "INSERT INTO tasks (id, channel, payload, status, priority, attempts, max_attempts, \
             available_at, idempotency_key, enqueued_by, created_at, updated_at) \
             VALUES (?1, ?2, ?3, 'pending', ?4, 0, ?5, ?6, ?7, ?8, ?9, ?9)",
        )?
        .execute(params![
            id,
            t.channel,
            t.payload,
            t.priority,
            t.max_attempts,
            available,
            t.idempotency_key,
            t.enqueued_by,
            now
        ])?;
        let task = task_by_id(&tx, t.channel, &id)?
            .ok_or_else(|| Error::Storage("an enqueued task vanished".into()))?;
        tx.commit()?;
        Ok((true, task))
    }

    /// Claim the next eligible task of `channel` for `consumer` for `lease_seconds`, after
    /// expiring the channel's lapsed leases. `None` when nothing is eligible.
    pub fn claim(
        &self,
        channel: &str,
        consumer: &str,
        lease_seconds: i64,
    ) -> Result<Option<Claimed>, Error> {
        let mut g = self.lock();
        let micros = clock::now_micros();
        let now = clock::format_micros(micros);
        // A read first: waiting claims re-check on every commit the db watcher sees, and a
        // write transaction for each of those would take the write lock for nothing.
        let claimable: bool = g
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM tasks INDEXED BY idx_tasks_ready \
                 WHERE channel = ?1 AND status = 'pending' AND available_at <= ?2) \
                 OR EXISTS (SELECT 1 FROM tasks INDEXED BY idx_tasks_lease \
                 WHERE status = 'claimed' AND lease_expires_at <= ?2 AND channel = ?1)",
            )?
            .query_row(params![channel, now], |r| r.get(0))?;
        if !claimable {
            return Ok(None);
        }
        let tx = g
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        expire_leases(&tx, Some(channel), &now, i64::MAX)?;
        // Two index walks instead of one sort of the whole backlog: the highest priority that
        // has a due task (idx_tasks_ready is ordered by priority), then that priority's oldest
        // due task (idx_tasks_channel_status ends in the rowid, i.e. in enqueue order).
        let top: Option<i64> = tx
            .prepare_cached(
                "SELECT priority FROM tasks INDEXED BY idx_tasks_ready \
                 WHERE channel = ?1 AND status = 'pending' AND available_at <= ?2 \
                 ORDER BY priority DESC LIMIT 1",
            )?
            .query_row(params![channel, now], |r| r.get(0))
            .optional()?;
        let next: Option<(i64, String)> = match top {
            None => None,
            Some(priority) => tx
                .prepare_cached(
                    "SELECT seq, payload FROM tasks INDEXED BY idx_tasks_channel_status \
                     WHERE channel = ?1 AND status = 'pending' AND priority = ?3 \
                     AND available_at <= ?2 ORDER BY seq ASC LIMIT 1",
                )?
                .query_row(params![channel, now, priority], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?,
        };
        let Some((seq, payload)) = next else {
            tx.commit()?; // keep what the lease expiry did
            return Ok(None);
        };
        let token = ids::random_hex(16);
        let expires =
            clock::format_micros(micros.saturating_add(lease_seconds.saturating_mul(1_000_000)));
        tx.prepare_cached(
            "UPDATE tasks SET status = 'claimed', lease_owner = ?2, lease_token = ?3, \
             lease_expires_at = ?4, attempts = attempts + 1, updated_at = ?5 WHERE seq = ?1",
        )?
        .execute(params![seq, consumer, token, expires, now])?;
        let task = tx
            .prepare_cached(&format!("SELECT {COLUMNS} FROM tasks WHERE seq = ?1"))?
            .query_row([seq], row_to_task)?;
        tx.commit()?;
        Ok(Some(Claimed {
            task,
            payload,
            lease_token: token,
        }))
    }

    /// Check the fencing of `mcp.md` §5.2 inside `tx`: the task exists in the channel
    /// (`not_found`) and is claimed with this token (`lost`).
    fn fenced(tx: &Connection, channel: &str, id: &str, token: &str) -> Result<(), Error> {
        let row: Option<(String, Option<String>)> = tx
            .prepare_cached("SELECT status, lease_token FROM tasks WHERE id = ?1 AND channel = ?2")?
            .query_row(params![id, channel], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match row {
            None => Err(crate::validate::FieldError::new(
                "task_id",
                "not_found",
                "does not exist in this channel",
            )
            .into()),
            Some((status, held)) if status == "claimed" && held.as_deref() == Some(token) => Ok(()),
            Some(_) => {
                Err(
                    crate::validate::FieldError::new("lease_token", "lost", "lease no longer held")
                        .into(),
                )
            }
        }
    }

    /// Complete a claimed task with an optional result (canonical JSON text).
    pub fn complete(
        &self,
        channel: &str,
        id: &str,
        token: &str,
        result: Option<&str>,
    ) -> Result<Task, Error> {
        let mut g = self.lock();
        let tx = g
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::fenced(&tx, channel, id, token)?;
        tx.prepare_cached(
            "UPDATE tasks SET status = 'completed', lease_owner = NULL, lease_token = NULL, \
             lease_expires_at = NULL, result = ?2, updated_at = ?3 WHERE id = ?1",
        )?
        .execute(params![id, result, clock::now()])?;
        let task = task_by_id(&tx, channel, id)?
            .ok_or_else(|| Error::Storage("a completed task vanished".into()))?;
        tx.commit()?;
        Ok(task)
    }

    /// Fail a claimed task: back to `pending` after `retry_delay_seconds` while attempts remain
    /// and `requeue` is set, else `dead`.
    pub fn fail(
        &self,
        channel: &str,
        id: &str,
        token: &str,
        requeue: bool,
        error: Option<&str>,
        retry_delay_seconds: i64,
    ) -> Result<(Failed, Task), Error> {
        let mut g = self.lock();
        let tx = g
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::fenced(&tx, channel, id, token)?;
        let (attempts, max): (i64, i64) = tx
            .prepare_cached("SELECT attempts, max_attempts FROM tasks WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let micros = clock::now_micros();
        let now = clock::format_micros(micros);
        let outcome = if requeue && attempts < max {
            let available = clock::format_micros(
                micros.saturating_add(retry_delay_seconds.saturating_mul(1_000_000)),
            );
            tx.prepare_cached(
                "UPDATE tasks SET status = 'pending', lease_owner = NULL, lease_token = NULL, \
                 lease_expires_at = NULL, available_at = ?2, last_error = ?3, updated_at = ?4 \
                 WHERE id = ?1",
            )?
            .execute(params![id, available, error, now])?;
            Failed::Requeued
        } else {
            tx.prepare_cached(
                "UPDATE tasks SET status = 'dead', lease_owner = NULL, lease_token = NULL, \
                 lease_expires_at = NULL, last_error = ?2, updated_at = ?3 WHERE id = ?1",
            )?
            .execute(params![id, error, now])?;
            Failed::Dead
        };
        let task = task_by_id(&tx, channel, id)?
            .ok_or_else(|| Error::Storage("a failed task vanished".into()))?;
        tx.commit()?;
        Ok((outcome, task))
    }

    /// Counts per status (all five) and the newest `limit` tasks, optionally of one status.
    pub fn tasks(
        &self,
        channel: &str,
        status: Option<&str>,
        limit: usize,
    ) -> Result<(serde_json::Map<String, Value>, Vec<Task>), Error> {
        let g = self.lock();
        let mut counts = serde_json::Map::new();
        for s in ["pending", "claimed", "completed", "failed", "dead"] {
            counts.insert(s.into(), json!(0));
        }
        let mut stmt = g.conn.prepare_cached(
            "SELECT status, COUNT(*) FROM tasks WHERE channel = ?1 GROUP BY status",
        )?;
        let rows = stmt.query_map([channel], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (s, n) = row?;
            counts.insert(s, json!(n));
        }
        let mut stmt = g.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE channel = ?1 AND (?2 IS NULL OR status = ?2) \
             ORDER BY seq DESC LIMIT ?3"
        ))?;
        let list = stmt
            .query_map(params![channel, status, limit as i64], row_to_task)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((counts, list))
    }

    /// The soonest moment something in `channel` may become claimable without anyone acting:
    /// a delayed task coming due, or a lease lapsing (stored timestamps; `None`: nothing).
    pub fn next_task_change(&self, channel: &str) -> Result<Option<String>, Error> {
        let g = self.lock();
        let due: Option<String> = g
            .conn
            .prepare_cached(
                "SELECT MIN(available_at) FROM tasks WHERE channel = ?1 AND status = 'pending'",
            )?
            .query_row([channel], |r| r.get(0))?;
        let lapse: Option<String> = g
            .conn
            .prepare_cached(
                "SELECT MIN(lease_expires_at) FROM tasks WHERE channel = ?1 AND status = 'claimed'",
            )?
            .query_row([channel], |r| r.get(0))?;
        Ok(match (due, lapse) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Expire lapsed leases in every channel (the housekeeping step of `storage.md` §6).
    /// Returns how many tasks became claimable again.
    pub fn expire_all_leases(&self) -> Result<u64, Error> {
        let mut g = self.lock();
        let tx = g
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = expire_leases(&tx, None, &clock::now(), 10_000)?;
        tx.commit()?;
        Ok(n)
    }
}
