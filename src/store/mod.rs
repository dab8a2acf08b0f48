//! The SQLite store: one mutex-guarded connection, the schema, and every query.
//!
//! No HTTP, no JSON-RPC here: callers hand in validated values and get rows back.
//!
//! Invariants:
//! - Every write is one `BEGIN IMMEDIATE` transaction holding all its rows (message + event row
//!   + idempotency row; clear = idempotency rows + tasks + messages + event row).
//! - The mutex is held only for the SQL work; callers render and write to sockets after it is
//!   released.
//! - A write that another process keeps locked past the busy budget fails with
//!   [`Error::Busy`]; nothing is half-written.
//! - `seq` comes from `AUTOINCREMENT`, so it is global, strictly increasing across processes,
//!   and never reused after a clear.

mod schema;
mod stats;

mod sends;
pub mod tasks;
pub use schema::MigrateError;
pub use stats::ChannelStat;

use crate::error::Error;
use crate::model::StoredMessage;
use crate::{clock, ids};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use stats::Stats;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How long a statement waits for another process's lock before the operation reports busy
/// (`storage.md` §4: about 1.5 s in total).
const RUNTIME_BUSY: Duration = Duration::from_millis(1500);
/// How long start-up waits for another process's lock (`storage.md` §3).
const STARTUP_BUSY: Duration = Duration::from_secs(5);

/// An idempotency key with the fingerprint of the content it guards.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyKey<'a> {
    /// The client's key (`idempotency_key`, or the envelope's `dedupe_key`).
    pub key: &'a str,
    /// `model::fingerprint` of the stored content.
    pub fingerprint: &'a str,
}

/// A durable consumer's position in a channel, as stored after an ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerCursor {
    /// The consumer.
    pub consumer_id: String,
    /// The channel.
    pub channel: String,
    /// The `seq` of the newest acknowledged message.
    pub last_seq: i64,
    /// Its id.
    pub last_message_id: Option<String>,
    /// When the cursor last moved (stored form).
    pub updated_at: String,
    /// Whether this ack moved it.
    pub advanced: bool,
}

/// An entry of the event outbox for one channel, with its message re-read.
#[derive(Debug, Clone)]
pub enum ChannelEvent {
    /// A message was stored (and still exists).
    Message(i64, StoredMessage),
    /// The channel was cleared; the payload is the stored JSON (`{"channel","cleared"}`).
    Clear(i64, String),
    /// A message event whose message is gone (cleared since): skipped, but its `event_seq`
    /// still advances the reader.
    Gone(i64),
}

impl ChannelEvent {
    /// The event's position in the outbox.
    pub fn event_seq(&self) -> i64 {
        match self {
            ChannelEvent::Message(e, _) | ChannelEvent::Clear(e, _) | ChannelEvent::Gone(e) => *e,
        }
    }
}

/// What an insert did.
#[derive(Debug, Clone)]
pub struct Inserted {
    /// The stored message (the original one when `deduplicated`).
    pub message: StoredMessage,
    /// True when an earlier send with the same key and content was found; nothing was stored.
    pub deduplicated: bool,
    /// True when this message is the first one of its channel.
    pub first_in_channel: bool,
}

struct Inner {
    conn: Connection,
    stats: Stats,
}

/// The database. One per process, shared by every request thread.
pub struct Store {
    inner: Mutex<Inner>,
    /// Sends waiting for the next group commit (`sends`).
    pending: sends::Queue,
    /// Random id of this process in `bridge_events.source_instance`.
    instance: String,
}

impl Store {
    /// Open (creating with mode 0600 if missing) and migrate the db at `path`
    /// (`storage.md` §3). `synchronous_full` selects `synchronous=FULL` instead of `NORMAL`.
    /// Returns the store and any warnings to print (e.g. a group-readable file).
    pub fn open(path: &Path, synchronous_full: bool) -> Result<(Store, Vec<String>), OpenError> {
        let mut warnings = Vec::new();
        if !path.exists() {
            create_private(path).map_err(|e| OpenError::Io(path.display().to_string(), e))?;
        } else if let Some(w) = loose_permissions(path) {
            warnings.push(w);
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(STARTUP_BUSY)?;
        set_wal(&conn)?;
        conn.pragma_update(
            None,
            "synchronous",
            if synchronous_full { "FULL" } else { "NORMAL" },
        )?;
        conn.set_prepared_statement_cache_capacity(64);
        schema::migrate(&mut conn, &clock::now())?;
        conn.busy_timeout(RUNTIME_BUSY)?;
        let stats = Stats::rebuild(&conn)?;
        Ok((
            Store {
                inner: Mutex::new(Inner { conn, stats }),
                pending: Default::default(),
                instance: ids::uuid_v4(),
            },
            warnings,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic inside a transaction drops the Transaction, which rolls back; the
        // connection itself stays usable, so a poisoned lock is safe to take over.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delete a channel's messages, idempotency keys and task queue, and record a `clear`
    /// event, in one transaction. Returns how many messages were deleted.
    pub fn clear(&self, channel: &str) -> Result<u64, Error> {
        let mut guard = self.lock();
        let Inner { conn, stats } = &mut *guard;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        stats.sync(&tx)?;
        tx.execute(
            "DELETE FROM bridge_idempotency WHERE channel = ?1",
            [channel],
        )?;
        tx.execute("DELETE FROM tasks WHERE channel = ?1", [channel])?;
        let cleared = tx.execute("DELETE FROM messages WHERE channel = ?1", [channel])? as u64;
        let payload = serde_json::json!({"channel": channel, "cleared": cleared}).to_string();
        tx.execute(
            "INSERT INTO bridge_events \
             (event_type, channel, message_id, source_instance, payload, timestamp) \
             VALUES ('clear', ?1, NULL, ?2, ?3, ?4)",
            params![channel, self.instance, payload, clock::now()],
        )?;
        let event_seq = tx.last_insert_rowid();
        tx.commit()?;
        stats.record_clear(channel, event_seq);
        Ok(cleared)
    }

    /// The newest `limit` messages of a channel, oldest first.
    pub fn newest(&self, channel: &str, limit: usize) -> Result<Vec<StoredMessage>, Error> {
        let g = self.lock();
        let mut stmt = g.conn.prepare_cached(
            "SELECT seq, id, channel, sender, content, timestamp FROM messages \
             WHERE channel = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let mut out = stmt
            .query_map(params![channel, limit as i64], row_to_message)?
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }

    /// Up to `limit` messages of a channel with `seq` above `after`, oldest first.
    pub fn after(
        &self,
        channel: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, Error> {
        let g = self.lock();
        let mut stmt = g.conn.prepare_cached(
            "SELECT seq, id, channel, sender, content, timestamp FROM messages \
             WHERE channel = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let out = stmt
            .query_map(params![channel, after, limit as i64], row_to_message)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(out)
    }

    /// The `seq` of message `id` if it exists in `channel` (a cursor check).
    pub fn seq_in_channel(&self, id: &str, channel: &str) -> Result<Option<i64>, Error> {
        let g = self.lock();
        let mut stmt = g
            .conn
            .prepare_cached("SELECT seq FROM messages WHERE id = ?1 AND channel = ?2")?;
        Ok(stmt
            .query_row(params![id, channel], |r| r.get(0))
            .optional()?)
    }

    /// Move a consumer's cursor forward to `message_id` (a message of `channel`), replacing its
    /// metadata when given; a message at or behind the cursor changes nothing. `None` when the
    /// message is not in the channel. One transaction.
    pub fn ack(
        &self,
        consumer: &str,
        channel: &str,
        message_id: &str,
        metadata: Option<&str>,
    ) -> Result<Option<ConsumerCursor>, Error> {
        let mut guard = self.lock();
        let tx = guard
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seq: Option<i64> = tx
            .prepare_cached("SELECT seq FROM messages WHERE id = ?1 AND channel = ?2")?
            .query_row(params![message_id, channel], |r| r.get(0))
            .optional()?;
        let Some(seq) = seq else {
            return Ok(None);
        };
        let stored: Option<(i64, Option<String>, String)> = tx
            .prepare_cached(
                "SELECT last_seq, last_message_id, updated_at FROM bridge_consumer_cursors \
                 WHERE consumer_id = ?1 AND channel = ?2",
            )?
            .query_row(params![consumer, channel], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let cursor = match stored {
            Some((last_seq, last_message_id, updated_at)) if last_seq >= seq => ConsumerCursor {
                consumer_id: consumer.to_owned(),
                channel: channel.to_owned(),
                last_seq,
                last_message_id,
                updated_at,
                advanced: false,
            },
            _ => {
                let now = clock::now();
                tx.prepare_cached(
                    "INSERT INTO bridge_consumer_cursors \
                     (consumer_id, channel, last_seq, last_message_id, updated_at, metadata_json) \
                     VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, '{}')) \
                     ON CONFLICT(consumer_id, channel) DO UPDATE SET last_seq = excluded.last_seq, \
                     last_message_id = excluded.last_message_id, updated_at = excluded.updated_at, \
                     metadata_json = COALESCE(?6, metadata_json)",
                )?
                .execute(params![consumer, channel, seq, message_id, now, metadata])?;
                ConsumerCursor {
                    consumer_id: consumer.to_owned(),
                    channel: channel.to_owned(),
                    last_seq: seq,
                    last_message_id: Some(message_id.to_owned()),
                    updated_at: now,
                    advanced: true,
                }
            }
        };
        tx.commit()?;
        Ok(Some(cursor))
    }

    /// Record an audit row; returns its id. Failures are logged and swallowed: an audit row
    /// never changes the outcome of the request it describes.
    pub fn audit(
        &self,
        event: &str,
        channel: Option<&str>,
        detail: &str,
        ip: Option<&str>,
    ) -> Option<i64> {
        let g = self.lock();
        let done = g
            .conn
            .prepare_cached(
                "INSERT INTO audit (timestamp, event, channel, detail, ip) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![clock::now(), event, channel, detail, ip]));
        match done {
            Ok(_) => Some(g.conn.last_insert_rowid()),
            Err(e) => {
                eprintln!("warning: cannot write an audit row: {e}");
                None
            }
        }
    }

    /// Rewrite the detail of audit row `id` (repeats folded into it). Failures are logged and
    /// swallowed, as for [`Store::audit`].
    pub fn audit_fold(&self, id: i64, detail: &str) {
        let g = self.lock();
        let done = g
            .conn
            .prepare_cached("UPDATE audit SET detail = ?2 WHERE id = ?1")
            .and_then(|mut st| st.execute(params![id, detail]));
        if let Err(e) = done {
            eprintln!("warning: cannot write an audit row: {e}");
        }
    }

    /// The newest `limit` audit rows, newest first.
    pub fn audit_events(&self, limit: usize) -> Result<Vec<serde_json::Value>, Error> {
        let g = self.lock();
        let mut stmt = g.conn.prepare_cached(
            "SELECT id, timestamp, event, channel, detail, ip FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(serde_json::json!({
                "id": r.get::<_, i64>(0)?,
                "timestamp": clock::render(&r.get::<_, String>(1)?),
                "event": r.get::<_, String>(2)?,
                "channel": r.get::<_, Option<String>>(3)?,
                "detail": r.get::<_, Option<String>>(4)?,
                "ip": r.get::<_, Option<String>>(5)?,
            }))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Whether a write transaction can be opened now (taken and rolled back at once).
    pub fn writable(&self) -> Result<(), Error> {
        let mut g = self.lock();
        let tx = g
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.rollback()?;
        Ok(())
    }

    /// Move the write-ahead log into the database file and truncate it (at shutdown, so the file
    /// stands alone). Readers in other processes may keep part of it; that is not an error.
    pub fn checkpoint(&self) -> Result<(), Error> {
        let g = self.lock();
        g.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(Error::from)
    }

    /// The random id this process writes into `bridge_events.source_instance`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The newest `event_seq` of the outbox (0 when empty): live delivery starts after it.
    pub fn max_event_seq(&self) -> Result<i64, Error> {
        let g = self.lock();
        let v = g
            .conn
            .prepare_cached("SELECT COALESCE(MAX(event_seq), 0) FROM bridge_events")?
            .query_row([], |r| r.get(0))?;
        Ok(v)
    }

    /// Up to `limit` outbox entries of `channel` after `after` (in `event_seq` order), each
    /// message re-read from `messages`.
    pub fn events_after(
        &self,
        channel: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ChannelEvent>, Error> {
        let g = self.lock();
        let mut stmt = g.conn.prepare_cached(
            "SELECT e.event_seq, e.event_type, e.payload, \
                    m.seq, m.id, m.channel, m.sender, m.content, m.timestamp \
             FROM bridge_events e LEFT JOIN messages m ON m.id = e.message_id \
             WHERE e.event_seq > ?1 AND e.channel = ?2 ORDER BY e.event_seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![after, channel, limit as i64], |r| {
            let event_seq: i64 = r.get(0)?;
            let kind: String = r.get(1)?;
            Ok(match (kind.as_str(), r.get::<_, Option<i64>>(3)?) {
                ("clear", _) => ChannelEvent::Clear(event_seq, r.get(2)?),
                (_, Some(seq)) => ChannelEvent::Message(
                    event_seq,
                    StoredMessage {
                        seq,
                        id: r.get(4)?,
                        channel: r.get(5)?,
                        sender: r.get(6)?,
                        content: r.get(7)?,
                        timestamp: r.get(8)?,
                    },
                ),
                _ => ChannelEvent::Gone(event_seq),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The `seq` a durable consumer acknowledged in a channel (0 when it has none).
    pub fn consumer_seq(&self, consumer: &str, channel: &str) -> Result<i64, Error> {
        let g = self.lock();
        let mut stmt = g.conn.prepare_cached(
            "SELECT last_seq FROM bridge_consumer_cursors WHERE consumer_id = ?1 AND channel = ?2",
        )?;
        Ok(stmt
            .query_row(params![consumer, channel], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    /// One message by id.
    pub fn message(&self, id: &str) -> Result<Option<StoredMessage>, Error> {
        let g = self.lock();
        let mut stmt = g.conn.prepare_cached(
            "SELECT seq, id, channel, sender, content, timestamp FROM messages WHERE id = ?1",
        )?;
        Ok(stmt.query_row([id], row_to_message).optional()?)
    }

    /// Statistics of every channel holding a message, in byte order (synced with other
    /// processes first).
    pub fn channel_stats(&self) -> Result<BTreeMap<String, ChannelStat>, Error> {
        let mut guard = self.lock();
        let Inner { conn, stats } = &mut *guard;
        stats.sync(conn)?;
        Ok(stats.channels().clone())
    }

    /// Whether at least one stored message has exactly this channel name (lets legacy names
    /// that break today's rules be read and cleared, `http-api.md` §4.2).
    pub fn has_channel(&self, channel: &str) -> Result<bool, Error> {
        let mut guard = self.lock();
        let Inner { conn, stats } = &mut *guard;
        stats.sync(conn)?;
        Ok(stats.has_channel(channel))
    }
}

/// Look up an idempotency key inside the insert transaction. `Some` means answer with the
/// earlier message; `None` means go ahead and insert.
fn find_key(
    tx: &Connection,
    channel: &str,
    sender: &str,
    k: IdempotencyKey<'_>,
    now: &str,
) -> Result<Option<Inserted>, Error> {
    let row: Option<(String, String, Option<String>, Option<String>)> = tx
        .prepare_cached(
            "SELECT payload_sha256, state, message_id, expires_at FROM bridge_idempotency \
             WHERE channel = ?1 AND sender = ?2 AND idempotency_key = ?3",
        )?
        .query_row(params![channel, sender, k.key], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((fingerprint, state, message_id, expires_at)) = row else {
        return Ok(None);
    };
    if state == "pending" {
        // Written by the original while its send was in flight. Expired reservations are
        // dead; live ones belong to a send still running elsewhere.
        if expires_at.as_deref().is_some_and(|e| e > now) {
            return Err(crate::validate::FieldError::new(
                "idempotency_key",
                "in_progress",
                "a send with this key is still in progress; retry shortly",
            )
            .into());
        }
        return Ok(None); // the insert replaces the stale reservation
    }
    if fingerprint != k.fingerprint {
        return Err(crate::validate::FieldError::new(
            "idempotency_key",
            "conflict",
            "was already used for different content",
        )
        .into());
    }
    let message = match message_id {
        Some(id) => tx
            .prepare_cached(
                "SELECT seq, id, channel, sender, content, timestamp FROM messages WHERE id = ?1",
            )?
            .query_row([id], row_to_message)
            .optional()?,
        None => None,
    };
    match message {
        Some(message) => Ok(Some(Inserted {
            message,
            deduplicated: true,
            first_in_channel: false,
        })),
        // The message is gone (cleared or expired) but its key was not: treat as new.
        None => Ok(None),
    }
}

fn row_to_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        seq: r.get(0)?,
        id: r.get(1)?,
        channel: r.get(2)?,
        sender: r.get(3)?,
        content: r.get(4)?,
        timestamp: r.get(5)?,
    })
}

/// `journal_mode=WAL`, retried for up to 5 s while another process holds the lock.
fn set_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + STARTUP_BUSY;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_) => return Ok(()),
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .or_else(|e| {
            // Another process created it between our check and our create: fine.
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn loose_permissions(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "database {} is readable by group or others (mode {:o}); consider chmod 600",
            path.display(),
            mode & 0o777
        )
    })
}

#[cfg(not(unix))]
fn loose_permissions(_path: &Path) -> Option<String> {
    None
}

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

/// Watch the db file for what other processes commit, checking `PRAGMA data_version` every
/// `every` on its own read connection and thread. When it changed, the event outbox rows since
/// the last look that another instance wrote (`source_instance` other than `instance`) name the
/// channels that changed, and `changed` is called once per such channel. This process's own
/// commits also move `data_version` but wake no one here: their waiters were woken at commit.
/// Changes that write no outbox row (acks, retention) need no wake-up.
pub fn watch(
    path: &Path,
    every: Duration,
    instance: String,
    changed: impl Fn(Changed<'_>) + Send + 'static,
) -> std::io::Result<()> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(std::io::Error::other)?;
    let max_event = |c: &Connection| {
        c.query_row(
            "SELECT COALESCE(MAX(event_seq), 0) FROM bridge_events",
            [],
            |r| r.get::<_, i64>(0),
        )
    };
    let mut seen = max_event(&conn).map_err(std::io::Error::other)?;
    std::thread::Builder::new()
        .name("db-watch".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            let version = |c: &Connection| {
                c.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
                    .ok()
            };
            let mut last = version(&conn);
            loop {
                std::thread::sleep(every);
                let now = version(&conn);
                if now.is_none() || now == last {
                    continue;
                }
                last = now;
                changed(Changed::Anything);
                match foreign_channels(&conn, seen, &instance) {
                    Ok((upto, channels)) => {
                        seen = upto;
                        for c in &channels {
                            changed(Changed::Channel(c));
                        }
                    }
                    Err(e) => eprintln!("warning: cannot read the event outbox: {e}"),
                }
            }
        })?;
    Ok(())
}

/// What the db watcher noticed.
#[derive(Debug, Clone, Copy)]
pub enum Changed<'a> {
    /// Some connection committed something (this process's own commits included).
    Anything,
    /// Another process wrote a message or clear event on this channel.
    Channel(&'a str),
}

/// Channels with outbox rows after `after` written by another instance, and the newest
/// `event_seq` seen (one snapshot: a single statement).
fn foreign_channels(
    conn: &Connection,
    after: i64,
    instance: &str,
) -> rusqlite::Result<(i64, BTreeSet<String>)> {
    let mut stmt = conn.prepare_cached(
        "SELECT event_seq, channel, source_instance FROM bridge_events \
         WHERE event_seq > ?1 ORDER BY event_seq",
    )?;
    let mut rows = stmt.query([after])?;
    let (mut upto, mut channels) = (after, BTreeSet::new());
    while let Some(r) = rows.next()? {
        upto = r.get(0)?;
        let source: String = r.get(2)?;
        if source != instance {
            channels.insert(r.get(1)?);
        }
    }
    Ok((upto, channels))
}

/// Why the store could not be opened (exit code 1 at start-up).
#[derive(Debug)]
pub enum OpenError {
    /// The file could not be created (path, OS error).
    Io(String, std::io::Error),
    /// SQLite refused the file or a statement.
    Sql(rusqlite::Error),
    /// The schema was written by a newer version.
    TooNew(String, i64),
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> Self {
        OpenError::Sql(e)
    }
}

impl From<MigrateError> for OpenError {
    fn from(e: MigrateError) -> Self {
        match e {
            MigrateError::TooNew(c, v) => OpenError::TooNew(c, v),
            MigrateError::Sql(e) => OpenError::Sql(e),
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(p, e) => write!(f, "cannot create database {p}: {e}"),
            OpenError::Sql(e) => write!(f, "cannot open database: {e}"),
            OpenError::TooNew(c, v) => write!(
                f,
                "database was written by a newer version of claude-bridge \
                 (component '{c}' is at version {v}); upgrade claude-bridge to open it"
            ),
        }
    }
}
