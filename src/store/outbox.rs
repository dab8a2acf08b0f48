//! The event outbox (`bridge_events`): what live event streams tail, and what the watcher
//! reads to wake this process on other processes' commits.

use super::{ChannelEvent, Store};
use crate::error::Error;
use crate::model::StoredMessage;
use rusqlite::{params, Connection};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

impl Store {
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
}

/// Watch the db file for what other processes commit, checking `PRAGMA data_version` on its own
/// read connection and thread as soon as inotify reports a write to the db or its WAL
/// (`notify.rs`), and every `every` in any case (the fallback where inotify reports nothing). When it changed, the event outbox rows since
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
    // Other processes' writes end the wait at once; the poll stays the fallback.
    let notify = super::notify::Notify::new(path);
    std::thread::Builder::new()
        .name("db-watch".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            let version = |c: &Connection| {
                c.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
                    .ok()
            };
            let mut last = version(&conn);
            // Quick looks still due after a write that showed no change yet.
            let mut rechecks: &[Duration] = &[];
            let mut last_tick = std::time::Instant::now();
            loop {
                match (&notify, rechecks.split_first()) {
                    (Some(_), Some((pause, rest))) => {
                        std::thread::sleep(*pause);
                        rechecks = rest;
                    }
                    (Some(n), None) => {
                        if n.wait(every) {
                            rechecks = &super::notify::Notify::RECHECKS;
                        }
                    }
                    (None, _) => std::thread::sleep(every),
                }
                // The tick (presence) keeps its period whatever wakes the loop early.
                if last_tick.elapsed() >= every {
                    last_tick = std::time::Instant::now();
                    changed(Changed::Tick);
                }
                let now = version(&conn);
                if now.is_none() || now == last {
                    continue;
                }
                rechecks = &[];
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
    /// Another poll interval passed (whether or not anything changed): for work that runs
    /// on a clock, without a thread of its own (the presence sweep and heartbeat).
    Tick,
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
