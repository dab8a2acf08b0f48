//! Messages, consumer cursors and channel statistics: reads, acks and clears.

use super::{ChannelStat, ConsumerCursor, Inner, Store};
use crate::clock;
use crate::error::Error;
use crate::model::StoredMessage;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use std::collections::BTreeMap;

impl Store {
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
    /// One channel's statistics (`None` when it holds no message).
    pub fn channel_stat(&self, channel: &str) -> Result<Option<ChannelStat>, Error> {
        let mut guard = self.lock();
        let Inner { conn, stats } = &mut *guard;
        stats.sync(conn)?;
        Ok(stats.channels().get(channel).cloned())
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

/// A `messages` row (`seq, id, channel, sender, content, timestamp`) as a message.
pub(super) fn row_to_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        seq: r.get(0)?,
        id: r.get(1)?,
        channel: r.get(2)?,
        sender: r.get(3)?,
        content: r.get(4)?,
        timestamp: r.get(5)?,
    })
}
