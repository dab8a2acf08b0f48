//! Channel statistics kept in memory, so `/api/state` costs O(channels), not O(messages).
//!
//! Invariant: after [`Stats::sync`] every row with `seq <= synced_seq` is counted, and every
//! clear event with `event_seq <= synced_event` is applied. The store calls `sync` at the start
//! of each of its own write transactions (while it holds SQLite's write lock, so nothing can
//! slip in between) and before answering a statistics read; changes by other processes are found
//! incrementally: new rows by `seq`, clears by the event outbox, and deletions from the bottom
//! (retention) by a change of `MIN(seq)`, which triggers a full rebuild.

use rusqlite::{Connection, OptionalExtension};
use std::collections::{BTreeMap, BTreeSet};

/// What `/api/state` shows for one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelStat {
    /// Messages in the channel.
    pub count: u64,
    /// The channel's lowest `seq`.
    pub first_seq: i64,
    /// The channel's highest `seq`.
    pub last_seq: i64,
    /// The stored timestamp of that message (as stored; render with `clock::render`).
    pub last_timestamp: String,
    /// Distinct senders, in byte order.
    pub senders: BTreeSet<String>,
}

/// The statistics of every channel holding at least one message.
#[derive(Debug, Default)]
pub struct Stats {
    channels: BTreeMap<String, ChannelStat>,
    synced_seq: i64,
    synced_event: i64,
    data_version: i64,
}

impl Stats {
    /// Build from scratch by reading the whole table (start-up, and after an unexplained delete).
    pub fn rebuild(conn: &Connection) -> rusqlite::Result<Stats> {
        let mut s = Stats::default();
        s.reload(conn)?;
        Ok(s)
    }

    fn reload(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        self.channels.clear();
        let mut stmt = conn.prepare(
            "SELECT channel, sender, COUNT(*), MIN(seq), MAX(seq) FROM messages \
             GROUP BY channel, sender",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let channel: String = r.get(0)?;
            let sender: String = r.get(1)?;
            let count: i64 = r.get(2)?;
            let min: i64 = r.get(3)?;
            let max: i64 = r.get(4)?;
            let c = self.channels.entry(channel).or_default();
            if c.count == 0 || min < c.first_seq {
                c.first_seq = min;
            }
            c.count += count as u64;
            c.senders.insert(sender);
            c.last_seq = c.last_seq.max(max);
        }
        let mut ts = conn.prepare_cached("SELECT timestamp FROM messages WHERE seq = ?1")?;
        for c in self.channels.values_mut() {
            c.last_timestamp = ts.query_row([c.last_seq], |r| r.get(0))?;
        }
        self.synced_seq =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM messages", [], |r| {
                r.get(0)
            })?;
        self.synced_event = max_event(conn)?;
        self.data_version = data_version(conn)?;
        Ok(())
    }

    /// Catch up with changes made by other processes since the last sync. Cheap when nothing
    /// changed (one pragma read). All reads happen in one snapshot, so a clear and the inserts
    /// around it are seen consistently.
    pub fn sync(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let v = data_version(conn)?;
        if v == self.data_version {
            return Ok(());
        }
        let own_snapshot = conn.is_autocommit();
        if own_snapshot {
            conn.execute_batch("BEGIN")?;
        }
        let result = self.catch_up(conn);
        if own_snapshot {
            // A read-only transaction: ending it cannot lose anything.
            let _ = conn.execute_batch("COMMIT");
        }
        self.data_version = v;
        result
    }

    fn catch_up(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        // Clears first: each recount reads the channel as it is now, including newer rows.
        let mut clears = conn.prepare_cached(
            "SELECT event_seq, channel FROM bridge_events \
             WHERE event_seq > ?1 AND event_type = 'clear' ORDER BY event_seq",
        )?;
        let cleared: Vec<(i64, String)> = clears
            .query_map([self.synced_event], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let recounted: BTreeSet<String> = cleared.into_iter().map(|(_, c)| c).collect();
        for channel in &recounted {
            self.recount(conn, channel)?;
        }
        let mut new_rows = conn.prepare_cached(
            "SELECT seq, channel, sender, timestamp FROM messages WHERE seq > ?1 ORDER BY seq",
        )?;
        let mut rows = new_rows.query([self.synced_seq])?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let channel: String = r.get(1)?;
            self.synced_seq = self.synced_seq.max(seq);
            if !recounted.contains(&channel) {
                self.add(&channel, r.get(2)?, seq, r.get(3)?);
            }
        }
        self.synced_event = max_event(conn)?;
        // Rows that vanished without a clear event (retention run by another process) show
        // as a MIN(seq) that no longer matches ours. Rare; start over.
        if min_seq(conn)? != self.channels.values().map(|c| c.first_seq).min() {
            self.reload(conn)?;
        }
        Ok(())
    }

    /// Count a message this process just committed (the caller synced inside the same
    /// transaction, so `seq` is the newest row).
    pub fn record_insert(&mut self, channel: &str, sender: &str, seq: i64, timestamp: &str) {
        self.add(channel, sender.to_owned(), seq, timestamp.to_owned());
        self.synced_seq = self.synced_seq.max(seq);
    }

    /// Forget a channel this process just cleared (recording its clear event).
    pub fn record_clear(&mut self, channel: &str, event_seq: i64) {
        self.channels.remove(channel);
        self.synced_event = self.synced_event.max(event_seq);
    }

    /// Recount one channel from the table (after a clear or a retention delete).
    pub fn recount(&mut self, conn: &Connection, channel: &str) -> rusqlite::Result<()> {
        self.channels.remove(channel);
        let mut stmt = conn.prepare_cached(
            "SELECT sender, COUNT(*), MIN(seq), MAX(seq) FROM messages WHERE channel = ?1 \
             GROUP BY sender",
        )?;
        let mut rows = stmt.query([channel])?;
        let mut stat = ChannelStat::default();
        while let Some(r) = rows.next()? {
            let min: i64 = r.get(2)?;
            if stat.count == 0 || min < stat.first_seq {
                stat.first_seq = min;
            }
            stat.senders.insert(r.get(0)?);
            stat.count += r.get::<_, i64>(1)? as u64;
            stat.last_seq = stat.last_seq.max(r.get(3)?);
        }
        if stat.count > 0 {
            stat.last_timestamp = conn.query_row(
                "SELECT timestamp FROM messages WHERE seq = ?1",
                [stat.last_seq],
                |r| r.get(0),
            )?;
            self.channels.insert(channel.to_owned(), stat);
        }
        Ok(())
    }

    fn add(&mut self, channel: &str, sender: String, seq: i64, timestamp: String) {
        let c = match self.channels.get_mut(channel) {
            Some(c) => c,
            None => self.channels.entry(channel.to_owned()).or_default(),
        };
        if c.count == 0 {
            c.first_seq = seq;
        }
        c.count += 1;
        if seq > c.last_seq {
            c.last_seq = seq;
            c.last_timestamp = timestamp;
        }
        if !c.senders.contains(&sender) {
            c.senders.insert(sender);
        }
    }

    /// Every channel with its statistics, in byte order of the name.
    pub fn channels(&self) -> &BTreeMap<String, ChannelStat> {
        &self.channels
    }

    /// Whether at least one stored message has exactly this channel name.
    pub fn has_channel(&self, channel: &str) -> bool {
        self.channels.contains_key(channel)
    }
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    // Asked before every operation: keep the statement prepared.
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}

fn max_event(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COALESCE(MAX(event_seq), 0) FROM bridge_events",
        [],
        |r| r.get(0),
    )
}

fn min_seq(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT MIN(seq) FROM messages", [], |r| r.get(0))
        .optional()
        .map(Option::flatten)
}
