//! Live channel events, `GET /events/channel/{channel}` (`http-api.md` §3.9): an SSE stream of
//! the channel's `message` and `clear` events, with replay from `Last-Event-ID` / `since_id`.
//!
//! Invariants:
//! - Each subscriber is a stream thread that tails the event outbox (`bridge_events`) for its
//!   channel by `event_seq`, woken by the hub: at once for this process's commits, within the
//!   watcher's poll interval for other processes'. Events therefore arrive in commit order, a
//!   message/clear pair is never seen reversed, and no message is held in memory.
//! - Live delivery starts after the outbox position read before the response head is written
//!   (so a message sent as soon as the client sees the 200 is delivered), and message events at
//!   or below the highest `seq` already sent are skipped: a message committed during the replay
//!   is sent once.
//! - The registry lock is held only to count subscribers in and out.

use crate::error::Error;
use crate::relay::agents::{Mode, Principal};
use crate::relay::{Cursor, Events, Relay};
use crate::store::ChannelEvent;
use crate::wire::Reply;
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a stream opened with a login cookie re-checks that login.
const LOGIN_CHECK: Duration = Duration::from_secs(4);

/// The dashboard login a stream was opened with (the registry and the cookie value): the
/// stream ends when that login does.
pub type Login = (Arc<crate::login::Logins>, String);

/// Open event streams of this process, with their caps.
pub struct Subscribers {
    per_channel: Mutex<HashMap<String, usize>>,
    max_total: usize,
    max_per_channel: usize,
    replay_limit: usize,
    keepalive: Duration,
    dropped: AtomicU64,
}

impl Subscribers {
    /// A registry with the configured caps.
    pub fn new(
        max_total: usize,
        max_per_channel: usize,
        replay_limit: usize,
        keepalive: Duration,
    ) -> Arc<Subscribers> {
        Arc::new(Subscribers {
            per_channel: Mutex::new(HashMap::new()),
            max_total,
            max_per_channel,
            replay_limit,
            keepalive,
            dropped: AtomicU64::new(0),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.per_channel.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open event streams (for `/api/state`).
    pub fn total(&self) -> usize {
        self.counts().values().sum()
    }

    /// Subscribers disconnected because they stopped reading (for `/api/state`).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Open a stream for `raw_channel` (the percent-encoded rest of the path), resuming after
    /// `cursor` (the `Last-Event-ID` header, else `since_id`) when given.
    pub fn open(
        self: &Arc<Self>,
        relay: &Arc<Relay>,
        raw_channel: &str,
        cursor: Option<String>,
        login: Option<Login>,
        who: Principal,
    ) -> Reply {
        let Some(decoded) = crate::wire::percent_decode(raw_channel, false) else {
            let e = crate::validate::FieldError::new("channel", "invalid_type", "must be UTF-8");
            return error_reply(e.into());
        };
        if decoded.is_empty() {
            let e = crate::validate::FieldError::new("channel", "required", "must not be empty");
            return error_reply(e.into());
        }
        let value = serde_json::Value::String(decoded);
        let channel = match relay.existing_channel("channel", &value) {
            Ok(c) => c.to_owned(),
            Err(e) => return error_reply(e),
        };
        {
            let mut counts = self.counts();
            let here = counts.get(&channel).copied().unwrap_or(0);
            if here >= self.max_per_channel {
                return Reply::error(
                    503,
                    &format!("channel '{channel}' has reached its subscriber cap"),
                )
                .with_header("Retry-After", "5");
            }
            if counts.values().sum::<usize>() >= self.max_total {
                return Reply::error(503, "server subscriber cap reached")
                    .with_header("Retry-After", "5");
            }
            *counts.entry(channel.clone()).or_insert(0) += 1;
        }
        let guard = Subscription {
            subscribers: Arc::clone(self),
            channel: channel.clone(),
        };
        // Live delivery starts here, read before the head goes out: whatever a client sends
        // after it sees the 200 is after this position.
        let start = match relay.event_position() {
            Ok(s) => s,
            Err(e) => return error_reply(e),
        };
        let (relay, me) = (Arc::clone(relay), Arc::clone(self));
        let mut reply = Reply::event_stream();
        reply.stream = Some(Box::new(move |w: &mut dyn Write| {
            let _guard = guard;
            let _online = relay.hold_for(&who);
            let reader = Reader {
                channel: &channel,
                cursor: cursor.as_deref(),
                login,
                who,
                start,
            };
            if let Err(Failure::Slow) = me.run(&relay, reader, w) {
                me.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }));
        reply
    }

    /// Replay, then tail the outbox until the client goes away (or the replay was truncated,
    /// or the reader's agent was revoked or lost its read grant).
    fn run(&self, relay: &Relay, reader: Reader<'_>, w: &mut dyn Write) -> Result<(), Failure> {
        let Reader {
            channel,
            cursor,
            login,
            who,
            start,
        } = reader;
        let stop = || who.revoked() || !who.may(Mode::Read, channel);
        // A cookie-authenticated stream checks its login at least this often.
        let tick = match &login {
            Some(_) => self.keepalive.min(LOGIN_CHECK),
            None => self.keepalive,
        };
        let mut after_event = start;
        let mut sent_seq = 0i64;
        if let Some(c) = cursor.filter(|c| !c.is_empty()) {
            let page = relay.read(channel, Cursor::After(c), self.replay_limit + 1)?;
            if page.stale_cursor {
                send(w, None, "cursor_stale", &json!({"since_id": c}).to_string())?;
            } else {
                let truncated = page.messages.len() > self.replay_limit;
                for m in page.messages.iter().take(self.replay_limit) {
                    send(w, Some(&m.id), "message", &m.event_data().to_string())?;
                    sent_seq = m.seq;
                }
                if truncated {
                    // The client reconnects with the last id it got for the next page.
                    send(
                        w,
                        None,
                        "replay_truncated",
                        &json!({"limit": self.replay_limit}).to_string(),
                    )?;
                    return Ok(());
                }
            }
        }
        loop {
            // Live events come from the outbox, which keeps them however far behind a reader
            // is; one that has fallen more than MAX_BEHIND behind is dropped so that it
            // reconnects and replays (`http-api.md` §3.9).
            let deadline = Instant::now() + tick;
            match relay.next_events(channel, after_event, MAX_BEHIND + 1, deadline, &stop)? {
                Events::Some(pending) if pending.len() > MAX_BEHIND => return Err(Failure::Slow),
                Events::Some(pending) => {
                    for event in pending {
                        after_event = event.event_seq();
                        match event {
                            ChannelEvent::Message(_, m) if m.seq > sent_seq => {
                                send(w, Some(&m.id), "message", &m.event_data().to_string())?;
                                sent_seq = m.seq;
                            }
                            ChannelEvent::Clear(_, payload) => send(w, None, "clear", &payload)?,
                            _ => {}
                        }
                    }
                }
                Events::Quiet => {
                    w.write_all(b": keep-alive\n\n").map_err(Failure::from)?;
                    w.flush().map_err(Failure::from)?;
                }
                Events::Shutdown => return Ok(()),
            }
            if stop() {
                return Ok(());
            }
            if let Some((logins, cookie)) = &login {
                if !logins.valid(cookie) {
                    return Ok(());
                }
            }
        }
    }
}

/// The registry key the relay-wide streams are counted under (no channel can have it).
const RELAY_KEY: &str = "\u{1}relay";

impl Subscribers {
    /// `GET /events/relay`: the relay-wide stream. It starts with a `ready` event (the client
    /// then reads `/api/state` and `/api/agents`, on every reconnect too), then carries each
    /// change as it happens: `channel` (a channel's counts after a message; `created` on its
    /// first), `cleared`, `presence` (a roster entry whose online state or card changed).
    /// Channel events reach only readers that may read the channel; a reader that falls out
    /// of the feed's ring gets `ready` again. Counts against the total subscriber cap; ends
    /// when its agent is revoked.
    pub fn open_relay(
        self: &Arc<Self>,
        relay: &Arc<Relay>,
        who: Principal,
        login: Option<Login>,
    ) -> Reply {
        {
            let mut counts = self.counts();
            if counts.values().sum::<usize>() >= self.max_total {
                return Reply::error(503, "server subscriber cap reached")
                    .with_header("Retry-After", "5");
            }
            *counts.entry(RELAY_KEY.to_owned()).or_insert(0) += 1;
        }
        let guard = Subscription {
            subscribers: Arc::clone(self),
            channel: RELAY_KEY.to_owned(),
        };
        let reading = relay.feed_reader();
        let start = relay.feed_position();
        let (relay, me) = (Arc::clone(relay), Arc::clone(self));
        let mut reply = Reply::event_stream();
        reply.stream = Some(Box::new(move |w: &mut dyn Write| {
            let (_guard, _reading) = (guard, reading);
            let _online = relay.hold_for(&who);
            if let Err(Failure::Slow) = me.run_relay(&relay, &who, login, start, w) {
                me.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }));
        reply
    }

    fn run_relay(
        &self,
        relay: &Relay,
        who: &Principal,
        login: Option<Login>,
        start: u64,
        w: &mut dyn Write,
    ) -> Result<(), Failure> {
        use crate::relay::live::FeedWait;
        let tick = match &login {
            Some(_) => self.keepalive.min(LOGIN_CHECK),
            None => self.keepalive,
        };
        let mut after = start;
        send(w, None, "ready", &json!({"position": after}).to_string())?;
        let stop = || who.revoked();
        loop {
            match relay.feed_after(after, Instant::now() + tick, &stop) {
                FeedWait::Some(events) => {
                    for (n, e) in events {
                        after = n;
                        let kind = e["type"].as_str().unwrap_or("change");
                        let visible = match e["channel"].as_str() {
                            Some(c) => who.may(Mode::Read, c),
                            None => true,
                        };
                        if visible {
                            send(w, Some(&n.to_string()), kind, &e.to_string())?;
                        }
                    }
                }
                FeedWait::Lost => {
                    after = relay.feed_position();
                    send(w, None, "ready", &json!({"position": after}).to_string())?;
                }
                FeedWait::Quiet => {
                    w.write_all(b": keep-alive\n\n").map_err(Failure::from)?;
                    w.flush().map_err(Failure::from)?;
                }
                FeedWait::Shutdown => return Ok(()),
            }
            if stop() {
                return Ok(());
            }
            if let Some((logins, cookie)) = &login {
                if !logins.valid(cookie) {
                    return Ok(());
                }
            }
        }
    }
}

/// One reader of a channel stream: what it asked for and who it is.
struct Reader<'a> {
    channel: &'a str,
    cursor: Option<&'a str>,
    login: Option<Login>,
    who: Principal,
    start: i64,
}

/// How many live events a subscriber may have waiting for it before it is dropped.
pub const MAX_BEHIND: usize = 100;

/// Why a stream ended early.
enum Failure {
    /// The client stopped reading (a write timed out) or fell more than [`MAX_BEHIND`] events
    /// behind: counted as dropped.
    Slow,
    /// The client went away, or the store failed.
    Gone,
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Failure::Slow,
            _ => Failure::Gone,
        }
    }
}

impl From<Error> for Failure {
    fn from(_: Error) -> Self {
        Failure::Gone
    }
}

fn send(w: &mut dyn Write, id: Option<&str>, event: &str, data: &str) -> Result<(), Failure> {
    let mut text = String::with_capacity(data.len() + 64);
    if let Some(id) = id {
        text.push_str("id: ");
        text.push_str(id);
        text.push('\n');
    }
    text.push_str("event: ");
    text.push_str(event);
    text.push_str("\ndata: ");
    text.push_str(data);
    text.push_str("\n\n");
    w.write_all(text.as_bytes())?;
    w.flush()?;
    Ok(())
}

fn error_reply(e: Error) -> Reply {
    let (status, body) = e.to_http();
    Reply::json(status, &body)
}

/// Counts a subscriber out when its stream ends, however it ends.
struct Subscription {
    subscribers: Arc<Subscribers>,
    channel: String,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut counts = self.subscribers.counts();
        if let Some(n) = counts.get_mut(&self.channel) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.channel);
            }
        }
    }
}
