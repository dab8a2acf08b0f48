//! The relay-wide event feed behind `GET /events/relay`: channel created, counts, cleared, and
//! presence changes, for the dashboard and the TUI.
//!
//! Invariants:
//! - The feed is a bounded ring in memory (the newest [`RING`] events, numbered from 1); it is
//!   a notification of change, not a history: a reader that fell out of the ring is told so and
//!   re-reads `/api/state` and `/api/agents`. Nothing here is persisted.
//! - Readers wait on the hub under a key no channel can have (`FEED_KEY`), with a ticket
//!   taken before they look, so no event is missed between a look and a wait.
//! - Events about other processes' commits are announced when the db watcher notices them.

use super::Relay;
use crate::hub::Wake;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How many events the ring keeps.
pub const RING: usize = 1024;
/// The hub key of the feed: a control character, which the channel rule forbids.
const FEED_KEY: &str = "\u{1}relay";

/// The ring, and how many read it.
#[derive(Default)]
pub struct Feed {
    state: Mutex<(u64, VecDeque<(u64, Value)>)>,
    readers: Arc<AtomicUsize>,
}

/// A reader of the feed, counted while it lives: with none, changes are not even described
/// (a send costs nothing extra), and a reader that comes starts from `ready` anyway.
pub struct FeedReader(Arc<AtomicUsize>);

impl Drop for FeedReader {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What [`Relay::feed_after`] found.
pub enum FeedWait {
    /// Events after the position, oldest first, with their numbers.
    Some(Vec<(u64, Value)>),
    /// Nothing before the deadline (or the stop condition held).
    Quiet,
    /// The reader's position fell out of the ring: it must re-read the whole state.
    Lost,
    /// The relay is shutting down.
    Shutdown,
}

impl Feed {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, VecDeque<(u64, Value)>)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Relay {
    /// Count a reader of the feed in until the guard is dropped.
    pub fn feed_reader(&self) -> FeedReader {
        self.feed.readers.fetch_add(1, Ordering::SeqCst);
        FeedReader(Arc::clone(&self.feed.readers))
    }

    /// Whether anyone reads the feed now.
    pub fn feed_read(&self) -> bool {
        self.feed.readers.load(Ordering::SeqCst) > 0
    }

    /// Put an event on the feed and wake its readers.
    #[inline(never)]
    pub fn announce(&self, event: Value) {
        {
            let mut s = self.feed.lock();
            s.0 += 1;
            let n = s.0;
            s.1.push_back((n, event));
            if s.1.len() > RING {
                s.1.pop_front();
            }
        }
        self.hub.publish(FEED_KEY);
    }

    /// The number of the newest event (0 before any): a reader starts after it.
    pub fn feed_position(&self) -> u64 {
        self.feed.lock().0
    }

    /// The events after `after`, waiting until `deadline` for the first; returns early as
    /// [`FeedWait::Quiet`] when `stop` holds after a wake-up (a revoked reader).
    pub fn feed_after(&self, after: u64, deadline: Instant, stop: &dyn Fn() -> bool) -> FeedWait {
        loop {
            let ticket = self.hub.ticket();
            {
                let s = self.feed.lock();
                if s.0 > after {
                    let oldest = s.1.front().map_or(s.0 + 1, |e| e.0);
                    if after + 1 < oldest {
                        return FeedWait::Lost;
                    }
                    let out = s.1.iter().filter(|e| e.0 > after).cloned().collect();
                    return FeedWait::Some(out);
                }
            }
            if stop() {
                return FeedWait::Quiet;
            }
            match self.hub.wait(FEED_KEY, ticket, deadline) {
                Wake::Published => {}
                Wake::TimedOut => return FeedWait::Quiet,
                Wake::Shutdown => return FeedWait::Shutdown,
            }
        }
    }

    /// Announce a channel's counts as they are now (its `/api/state` entry with `type`,
    /// `channel` and `created` added) (after a send, or another process's
    /// commit): `{"type":"channel","channel","count","last_ts","created"}`, or a `cleared`
    /// event when it holds nothing any more.
    #[inline(never)]
    pub fn announce_channel(&self, channel: &str, created: bool) {
        if !self.feed_read() {
            return;
        }
        match self.store.channel_stat(channel) {
            Ok(Some(s)) => {
                let mut v = channel_json(channel, &s);
                v["type"] = "channel".into();
                v["channel"] = channel.into();
                v["created"] = created.into();
                self.announce(v);
            }
            Ok(None) => self.announce(serde_json::json!({"type": "cleared", "channel": channel})),
            Err(e) => eprintln!("warning: cannot read channel statistics: {e}"),
        }
    }
}

/// A channel as `/api/state` lists it: `id`, `group`, `name`, `count`, `last_ts`,
/// `last_ts_full`, `senders` (also the body of a feed `channel` event).
pub fn channel_json(id: &str, s: &crate::store::ChannelStat) -> Value {
    let (group, name) = id.split_once(':').unwrap_or(("", id));
    let last = crate::clock::render(&s.last_timestamp);
    serde_json::json!({
        "id": id,
        "group": group,
        "name": name,
        "count": s.count,
        "last_ts": crate::clock::hms(&last),
        "last_ts_full": last,
        "senders": s.senders,
    })
}
