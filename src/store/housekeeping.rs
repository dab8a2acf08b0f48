//! Housekeeping: retention, audit and outbox age, deleted in short batches (`storage.md` §6).

use super::stats::Stats;
use super::{Inner, Store};
use crate::clock;
use crate::error::Error;
use rusqlite::{params, TransactionBehavior};

/// What to sweep (`storage.md` §6); cut-offs are stored-form timestamps, `None` = keep.
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    /// Delete messages (and their idempotency keys) and finished tasks older than this.
    pub messages_before: Option<String>,
    /// Delete audit rows older than this.
    pub audit_before: Option<String>,
    /// Delete event-outbox rows older than this.
    pub events_before: Option<String>,
}

/// How many rows a sweep deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Messages.
    pub messages: u64,
    /// Audit rows.
    pub audit: u64,
    /// Expired idempotency reservations.
    pub idempotency: u64,
    /// Event-outbox rows.
    pub events: u64,
    /// Finished tasks.
    pub tasks: u64,
}

/// Rows deleted per transaction, so a sweep never holds the lock for long.
const SWEEP_BATCH: i64 = 10_000;

impl Store {
    /// One housekeeping pass. Each batch is its own short transaction.
    pub fn sweep(&self, what: &Sweep) -> Result<Swept, Error> {
        let mut out = Swept::default();
        let batched = |sql: &str, arg: &str| -> Result<u64, Error> {
            let mut total = 0;
            loop {
                let mut g = self.lock();
                let tx = g
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)?;
                let n = tx.execute(sql, params![arg, SWEEP_BATCH])? as u64;
                tx.commit()?;
                total += n;
                if n < SWEEP_BATCH as u64 {
                    return Ok(total);
                }
            }
        };
        if let Some(cut) = &what.messages_before {
            let mut total = 0;
            loop {
                let mut guard = self.lock();
                let Inner { conn, stats } = &mut *guard;
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute(
                    "DELETE FROM bridge_idempotency WHERE message_seq IN \
                     (SELECT seq FROM messages WHERE timestamp < ?1 ORDER BY seq LIMIT ?2)",
                    params![cut, SWEEP_BATCH],
                )?;
                let n = tx.execute(
                    "DELETE FROM messages WHERE seq IN \
                     (SELECT seq FROM messages WHERE timestamp < ?1 ORDER BY seq LIMIT ?2)",
                    params![cut, SWEEP_BATCH],
                )? as u64;
                tx.commit()?;
                if n > 0 {
                    *stats = Stats::rebuild(conn)?;
                }
                total += n;
                if n < SWEEP_BATCH as u64 {
                    break;
                }
            }
            out.messages = total;
            out.tasks = batched(
                "DELETE FROM tasks WHERE seq IN (SELECT seq FROM tasks WHERE status IN \
                 ('completed','failed','dead') AND updated_at < ?1 LIMIT ?2)",
                cut,
            )?;
        }
        if let Some(cut) = &what.audit_before {
            out.audit = batched(
                "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE timestamp < ?1 LIMIT ?2)",
                cut,
            )?;
        }
        out.idempotency = batched(
            "DELETE FROM bridge_idempotency WHERE rowid IN (SELECT rowid FROM bridge_idempotency \
             WHERE expires_at IS NOT NULL AND expires_at < ?1 LIMIT ?2)",
            &clock::now(),
        )?;
        if let Some(cut) = &what.events_before {
            out.events = batched(
                "DELETE FROM bridge_events WHERE event_seq IN \
                 (SELECT event_seq FROM bridge_events WHERE timestamp < ?1 LIMIT ?2)",
                cut,
            )?;
        }
        Ok(out)
    }
}
