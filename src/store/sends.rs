//! Group commit of sends: concurrent inserts share one transaction.
//!
//! Each send puts its request in a queue and then takes the connection lock. Whoever gets the
//! lock first (the leader) takes every queued request, stores them all in one `BEGIN
//! IMMEDIATE` … `COMMIT`, and hands each its result; a send whose request was taken by a
//! leader finds its result when it gets the lock and returns at once. A result is handed out
//! only after the `COMMIT` succeeded, so a reply still means "committed". Requests and results
//! move under the connection lock, so each request is stored by exactly one leader.
//!
//! Within a batch each request runs in a savepoint (when there is more than one), so a request
//! that fails (an idempotency conflict) leaves the others alone. When the `COMMIT` itself fails
//! (busy, disk full), every request of the batch gets that error and nothing was stored.

use super::messages::row_to_message;
use super::{IdempotencyKey, Inner, Inserted, Store};
use crate::error::Error;
use crate::model::StoredMessage;
use crate::{clock, ids};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// One send waiting to be stored.
pub(super) struct Slot {
    channel: String,
    sender: String,
    content: String,
    /// (key, fingerprint)
    key: Option<(String, String)>,
    result: Mutex<Option<Result<Inserted, Error>>>,
}

impl Slot {
    fn take(&self) -> Option<Result<Inserted, Error>> {
        self.result.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn put(&self, r: Result<Inserted, Error>) {
        *self.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }
}

/// Sends queued for the next leader.
pub(super) type Queue = Mutex<Vec<Arc<Slot>>>;

impl Store {
    /// Store one message, or find the earlier one its idempotency key names. Concurrent calls
    /// are committed together (see the module docs).
    ///
    /// Errors: `conflict` when the key was used for other content, `in_progress` when another
    /// process holds an unexpired reservation for it, busy, storage.
    pub fn insert(
        &self,
        channel: &str,
        sender: &str,
        content: &str,
        key: Option<IdempotencyKey<'_>>,
    ) -> Result<Inserted, Error> {
        let slot = Arc::new(Slot {
            channel: channel.to_owned(),
            sender: sender.to_owned(),
            content: content.to_owned(),
            key: key.map(|k| (k.key.to_owned(), k.fingerprint.to_owned())),
            result: Mutex::new(None),
        });
        self.queue().push(Arc::clone(&slot));
        let mut guard = self.lock();
        if let Some(done) = slot.take() {
            return done; // a leader stored it while we waited for the lock
        }
        let batch = std::mem::take(&mut *self.queue());
        let results = self.commit_batch(&mut guard, &batch);
        for (s, r) in batch.iter().zip(results) {
            s.put(r);
        }
        drop(guard);
        slot.take()
            .unwrap_or_else(|| Err(Error::Storage("a send was not stored".into())))
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Slot>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store `batch` in one transaction; one result per request, in order.
    fn commit_batch(&self, inner: &mut Inner, batch: &[Arc<Slot>]) -> Vec<Result<Inserted, Error>> {
        let Inner { conn, stats } = inner;
        let all_fail = |e: &Error| batch.iter().map(|_| Err(duplicate(e))).collect();
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => return all_fail(&e.into()),
        };
        if let Err(e) = stats.sync(&tx) {
            return all_fail(&e.into());
        }
        let guarded = batch.len() > 1;
        let mut new_channels = HashSet::new();
        let mut results = Vec::with_capacity(batch.len());
        for slot in batch {
            let first_in_channel =
                !stats.has_channel(&slot.channel) && !new_channels.contains(slot.channel.as_str());
            let one = if guarded {
                savepoint(&tx, |c| self.insert_one(c, slot, first_in_channel))
            } else {
                self.insert_one(&tx, slot, first_in_channel)
            };
            if let Ok(done) = &one {
                if !done.deduplicated {
                    new_channels.insert(slot.channel.as_str());
                }
            }
            results.push(one);
        }
        if let Err(e) = tx.commit() {
            return all_fail(&e.into());
        }
        for r in results.iter().flatten() {
            if !r.deduplicated {
                let m = &r.message;
                stats.record_insert(&m.channel, &m.sender, m.seq, &m.timestamp);
            }
        }
        results
    }

    /// The statements of one send, inside the batch's transaction.
    fn insert_one(
        &self,
        tx: &Connection,
        slot: &Slot,
        first_in_channel: bool,
    ) -> Result<Inserted, Error> {
        let (channel, sender) = (slot.channel.as_str(), slot.sender.as_str());
        let now = clock::now();
        let key = slot
            .key
            .as_ref()
            .map(|(key, fingerprint)| IdempotencyKey { key, fingerprint });
        if let Some(k) = key {
            if let Some(found) = find_key(tx, channel, sender, k, &now)? {
                return Ok(found);
            }
        }
        let id = ids::uuid_v4();
        tx.prepare_cached(
            "INSERT INTO messages (id, channel, sender, content, timestamp) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![id, channel, sender, slot.content, now])?;
        let seq = tx.last_insert_rowid();
        tx.prepare_cached(
            "INSERT INTO bridge_events \
             (event_type, channel, message_id, source_instance, payload, timestamp) \
             VALUES ('message', ?1, ?2, ?3, '{}', ?4)",
        )?
        .execute(params![channel, id, self.instance, now])?;
        if let Some(k) = key {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO bridge_idempotency (channel, sender, idempotency_key, \
                 payload_sha256, state, message_id, message_seq, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, 'committed', ?5, ?6, ?7, NULL)",
            )?
            .execute(params![channel, sender, k.key, k.fingerprint, id, seq, now])?;
        }
        Ok(Inserted {
            message: StoredMessage {
                seq,
                id,
                channel: channel.to_owned(),
                sender: sender.to_owned(),
                content: slot.content.clone(),
                timestamp: now,
            },
            deduplicated: false,
            first_in_channel,
        })
    }
}

/// Run `f` in a savepoint: kept when it succeeds, undone when it fails.
fn savepoint<T>(
    tx: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, Error>,
) -> Result<T, Error> {
    // Cached statements: a batch runs these once per send.
    tx.prepare_cached("SAVEPOINT one_send")?.execute([])?;
    let out = f(tx);
    if out.is_err() {
        tx.prepare_cached("ROLLBACK TO one_send")?.execute([])?;
    }
    tx.prepare_cached("RELEASE one_send")?.execute([])?;
    out
}

/// The same error again, for every send of a batch whose transaction failed.
fn duplicate(e: &Error) -> Error {
    match e {
        Error::Busy => Error::Busy,
        Error::Storage(s) => Error::Storage(s.clone()),
        other => Error::Storage(other.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_sends_are_each_stored_once_in_shared_transactions() {
        let dir = std::env::temp_dir().join(format!("cb-sends-{}", ids::uuid_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (store, _) = Store::open(&dir.join("b.db"), false).unwrap();
        let store = Arc::new(store);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let mut seqs = Vec::new();
                    for i in 0..200 {
                        let content = format!("{t}-{i}");
                        let fingerprint = "f".repeat(64);
                        let key = IdempotencyKey {
                            key: &content,
                            fingerprint: &fingerprint,
                        };
                        let key = (i % 2 == 0).then_some(key);
                        let r = store.insert("c", "s", &content, key).unwrap();
                        assert_eq!(r.message.content, content);
                        seqs.push(r.message.seq);
                        // A replay of a keyed send is found, not stored again.
                        if let Some(k) = key {
                            let again = store.insert("c", "s", &content, Some(k)).unwrap();
                            assert!(again.deduplicated);
                            assert_eq!(again.message.seq, r.message.seq);
                        }
                    }
                    seqs
                })
            })
            .collect();
        let mut all: Vec<i64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 1600, "every send has its own seq");
        let stats = store.channel_stats().unwrap();
        assert_eq!(stats["c"].count, 1600);
        // A conflicting key fails alone.
        let other = "e".repeat(64);
        let k = IdempotencyKey {
            key: "0-0",
            fingerprint: &other,
        };
        assert!(store.insert("c", "s", "x", Some(k)).is_err());
        assert_eq!(store.channel_stats().unwrap()["c"].count, 1600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
