//! The relay's operations: store and hub together, and the only way to either. The JSON API,
//! the MCP tools, the event streams and the front all call these, so a message sent over
//! `/api/send` and one sent with `bridge_send` go through the same validation and the same
//! insert. The task queue's operations are in [`tasks`].
//!
//! Invariants:
//! - The hub is told about a change only after the store committed it, and a failure to wake
//!   anyone never turns a committed write into an error.
//! - `store` and `hub` are private: everything outside asks the relay.

pub mod agents;
mod audit;
pub mod live;
pub mod presence;
pub mod tasks;

use crate::error::Error;
use crate::hub::Hub;
use crate::hub::Wake;
use crate::model::{self, StoredMessage};
use crate::store::{ChannelEvent, ChannelStat, ConsumerCursor, IdempotencyKey, Inserted, Store};
use crate::validate::{self, FieldError};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest any wait may block: `/api/wait`, `bridge_wait`, a waiting `bridge_claim`.
pub const MAX_WAIT: Duration = Duration::from_secs(55);

/// Settings the operations need (a slice of the configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest content (or encoded envelope) in UTF-8 bytes.
    pub max_message_bytes: usize,
    /// Messages older than this many days are swept (0 = keep forever).
    pub retention_days: u32,
    /// Whether the audit log is on.
    pub audit_enabled: bool,
    /// Serve the MCP conformance-suite fixture tools (tests only; off by default).
    pub conformance_fixtures: bool,
    /// Serve the stateless 2026-07-28 revision beside the handshake era (`mcp::era`). Off for a
    /// process that must stay on the handshake era (one that pushes into Claude Code, which
    /// refuses pushes on 2026-07-28 connections): modern requests then get the handshake era's
    /// answers, so clients fall back to `initialize`.
    pub modern_era: bool,
    /// Task lease when a claim names none (already capped at `max_lease_seconds`).
    pub default_lease_seconds: u64,
    /// Longest task lease; longer requests are clamped.
    pub max_lease_seconds: u64,
    /// Attempts of a task enqueued without `max_attempts`.
    pub default_max_attempts: u32,
    /// A name seen this recently counts as online (`CLAUDE_BRIDGE_PRESENCE_SECONDS`, 60 s).
    pub presence_window: Duration,
}

/// A validated send, ready for the store.
#[derive(Debug, Clone)]
pub struct Send {
    /// Target channel.
    pub channel: String,
    /// Who sends.
    pub sender: String,
    /// What is stored: the content verbatim, or the canonical JSON of an envelope.
    pub content: String,
    /// The idempotency key (`idempotency_key`, else the envelope's `dedupe_key`).
    pub key: Option<String>,
}

/// Where a read starts.
#[derive(Debug, Clone, Copy)]
pub enum Cursor<'a> {
    /// The newest messages.
    Newest,
    /// After this message id (must be a message of the channel).
    After(&'a str),
    /// After the position this durable consumer acknowledged in the channel (the start when it
    /// has none).
    Consumer(&'a str),
}

impl<'a> Cursor<'a> {
    /// The cursor a read asks for: `since_id` wins over `consumer_id`; neither means newest.
    pub fn from_parts(since_id: Option<&'a str>, consumer_id: Option<&'a str>) -> Cursor<'a> {
        match (since_id, consumer_id) {
            (Some(id), _) => Cursor::After(id),
            (None, Some(c)) => Cursor::Consumer(c),
            (None, None) => Cursor::Newest,
        }
    }
}

/// A page of a channel.
#[derive(Debug, Clone)]
pub struct Page {
    /// Messages in ascending `seq`.
    pub messages: Vec<StoredMessage>,
    /// True when the cursor named no message of this channel (`since_id_not_found`).
    pub stale_cursor: bool,
}

/// The relay: one per process.
pub struct Relay {
    store: Store,
    hub: Hub,
    /// Operation settings.
    pub settings: Settings,
    /// Channels with claims waiting.
    claim_waiters: tasks::ClaimWaiters,
    /// The agents of `bridge_agents`, by token hash.
    agents: agents::Registry,
    /// Who is there.
    presence: Arc<presence::Board>,
    /// The relay-wide event feed.
    feed: live::Feed,
    started: Instant,
    /// Calls and long-polls running off the request path now, each on a thread of its own.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// The most of them at once (`CLAUDE_BRIDGE_MAX_WAITING`).
    max_waiting: std::sync::atomic::AtomicUsize,
    /// Rejections being folded into their audit rows.
    folds: audit::Folds,
    /// Longest request path stored in an audit row of a rejection.
    audit_detail_bytes: std::sync::atomic::AtomicUsize,
    /// Window in which repeated rejections from one address are folded into one audit row
    /// (0: never folded).
    audit_fold_seconds: std::sync::atomic::AtomicU64,
}

/// The most calls and long-polls waiting off the request path at once, by default.
pub const DEFAULT_MAX_WAITING: usize = 1024;

/// One call or long-poll counted as waiting off the request path, until dropped.
pub struct WaitSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for WaitSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What [`Relay::next_events`] found.
pub enum Events {
    /// Outbox rows after the position, oldest first.
    Some(Vec<ChannelEvent>),
    /// Nothing before the deadline.
    Quiet,
    /// The relay is shutting down.
    Shutdown,
}

impl crate::hub::Wakes for Relay {
    fn ticket(&self) -> crate::hub::Ticket {
        self.hub.ticket()
    }
    fn published_since(&self, channel: &str, ticket: crate::hub::Ticket) -> bool {
        self.hub.published_since(channel, ticket)
    }
    fn listen(&self, listener: crate::hub::Listener) {
        self.hub.listen(listener)
    }
    fn wait_publish(&self, channel: &str, ticket: crate::hub::Ticket, deadline: Instant) -> Wake {
        self.hub.wait(channel, ticket, deadline)
    }
}

impl Relay {
    /// Put a store and settings together.
    pub fn new(store: Store, settings: Settings) -> Relay {
        let window = settings.presence_window;
        let relay = Relay {
            store,
            hub: Hub::new(),
            settings,
            claim_waiters: Default::default(),
            agents: Default::default(),
            presence: presence::Board::new(window),
            feed: Default::default(),
            started: Instant::now(),
            waiting: Default::default(),
            max_waiting: DEFAULT_MAX_WAITING.into(),
            folds: Default::default(),
            audit_detail_bytes: 256.into(),
            audit_fold_seconds: 60.into(),
        };
        if let Err(e) = relay.refresh_agents() {
            eprintln!("warning: cannot read the agents: {e}");
        }
        relay
    }

    /// Cut request paths in audit rows of rejections to `detail_bytes`, and fold repeats within
    /// `fold_seconds` (see [`Relay::audit_rejection`]).
    pub fn limit_audit(&self, detail_bytes: usize, fold_seconds: u64) {
        self.audit_detail_bytes
            .store(detail_bytes, Ordering::SeqCst);
        self.audit_fold_seconds
            .store(fold_seconds, Ordering::SeqCst);
    }

    /// Allow at most `max` calls and long-polls waiting off the request path at once.
    pub fn limit_waiting(&self, max: usize) {
        self.max_waiting.store(max, Ordering::SeqCst);
    }

    /// A slot for one more call or long-poll to wait off the request path (each costs a
    /// thread), or `None` when the most are waiting already: the caller answers "busy".
    pub fn wait_slot(&self) -> Option<WaitSlot> {
        let max = self.max_waiting.load(Ordering::SeqCst);
        let mut now = self.waiting.load(Ordering::SeqCst);
        loop {
            if now >= max {
                return None;
            }
            match self
                .waiting
                .compare_exchange(now, now + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Some(WaitSlot(Arc::clone(&self.waiting))),
                Err(actual) => now = actual,
            }
        }
    }

    /// Seconds since this process started.
    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Validate a send's arguments in the contract's order (`http-api.md` §3.5): channel →
    /// sender → exactly one of content/message → content or envelope → idempotency_key.
    pub fn parse_send(&self, args: &Map<String, Value>) -> Result<Send, Error> {
        let channel = validate::identity(
            "channel",
            args.get("channel").unwrap_or(&Value::Null),
            validate::MAX_CHANNEL_CHARS,
        )?;
        let sender = validate::identity(
            "sender",
            args.get("sender").unwrap_or(&Value::Null),
            validate::MAX_SENDER_CHARS,
        )?;
        let present = |k: &str| args.get(k).is_some_and(|v| !v.is_null());
        let (content, dedupe_key) = match (present("content"), present("message")) {
            (true, false) => {
                let c = validate::content(&args["content"], self.settings.max_message_bytes)?;
                (c.to_owned(), None)
            }
            (false, true) => {
                let env = model::parse_envelope(&args["message"], self.settings.max_message_bytes)?;
                (env.canonical, env.dedupe_key)
            }
            _ => {
                return Err(FieldError::new(
                    "content",
                    "exclusive",
                    "provide exactly one of content or message",
                )
                .into())
            }
        };
        let key = match args.get("idempotency_key") {
            None | Some(Value::Null) => dedupe_key,
            Some(v) => {
                Some(validate::identity("idempotency_key", v, validate::MAX_REF_CHARS)?.to_owned())
            }
        };
        Ok(Send {
            channel: channel.to_owned(),
            sender: sender.to_owned(),
            content,
            key,
        })
    }

    /// Store a validated send (or find its idempotent twin) and wake the channel's waiters.
    pub fn send(&self, send: &Send) -> Result<Inserted, Error> {
        let fingerprint = send.key.as_ref().map(|_| model::fingerprint(&send.content));
        let key = match (&send.key, &fingerprint) {
            (Some(key), Some(fp)) => Some(IdempotencyKey {
                key,
                fingerprint: fp,
            }),
            _ => None,
        };
        let inserted = self
            .store
            .insert(&send.channel, &send.sender, &send.content, key)?;
        if !inserted.deduplicated {
            self.hub.publish(&send.channel);
            crate::metrics::SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.announce_channel(&send.channel, inserted.first_in_channel);
        }
        self.seen(&send.sender);
        if inserted.first_in_channel {
            let detail = format!("first message by {}", send.sender);
            self.audit("channel_create", Some(&send.channel), &detail, None);
        }
        Ok(inserted)
    }

    /// Delete a channel (messages, keys, tasks) and wake its waiters. Returns the count.
    pub fn clear(&self, channel: &str) -> Result<u64, Error> {
        let cleared = self.store.clear(channel)?;
        self.hub.publish(channel);
        self.announce(
            serde_json::json!({"type": "cleared", "channel": channel, "cleared": cleared}),
        );
        let detail = format!("cleared {cleared} message(s)");
        self.audit("channel_clear", Some(channel), &detail, None);
        Ok(cleared)
    }

    /// Validate a channel named by an operation that reads or clears: the identity rule, except
    /// that a name some stored message already has is accepted (legacy rows, `http-api.md`
    /// §4.2).
    pub fn existing_channel<'a>(&self, field: &str, value: &'a Value) -> Result<&'a str, Error> {
        match validate::identity(field, value, validate::MAX_CHANNEL_CHARS) {
            Ok(c) => Ok(c),
            Err(e) => match value.as_str() {
                Some(s) if !s.is_empty() && self.store.has_channel(s)? => Ok(s),
                _ => Err(e.into()),
            },
        }
    }

    /// Read a page of a channel from a cursor.
    pub fn read(&self, channel: &str, cursor: Cursor<'_>, limit: usize) -> Result<Page, Error> {
        match cursor {
            Cursor::Newest => Ok(Page {
                messages: self.store.newest(channel, limit)?,
                stale_cursor: false,
            }),
            Cursor::After(id) => match self.store.seq_in_channel(id, channel)? {
                Some(seq) => Ok(Page {
                    messages: self.store.after(channel, seq, limit)?,
                    stale_cursor: false,
                }),
                None => Ok(Page {
                    messages: Vec::new(),
                    stale_cursor: true,
                }),
            },
            Cursor::Consumer(consumer) => {
                self.seen(consumer);
                let after = self.store.consumer_seq(consumer, channel)?;
                Ok(Page {
                    messages: self.store.after(channel, after, limit)?,
                    stale_cursor: false,
                })
            }
        }
    }

    /// Validate an ack's arguments (all of them, before any lookup) and move the consumer's
    /// cursor (`http-api.md` §3.8). A message not in the channel is `not_found`.
    pub fn ack(&self, args: &Map<String, Value>) -> Result<ConsumerCursor, Error> {
        let arg = |k: &str| args.get(k).unwrap_or(&Value::Null);
        let channel = self.existing_channel("channel", arg("channel"))?;
        let consumer = validate::identity(
            "consumer_id",
            arg("consumer_id"),
            validate::MAX_CONSUMER_CHARS,
        )?;
        let message_id =
            validate::identity("message_id", arg("message_id"), validate::MAX_REF_CHARS)?;
        let metadata = match args.get("metadata") {
            None | Some(Value::Null) => None,
            Some(m @ Value::Object(_)) => {
                validate::json_value("metadata", m, validate::ENVELOPE_DEPTH)?;
                let text = crate::json::canonical(m);
                if text.len() > validate::MAX_METADATA_BYTES {
                    return Err(FieldError::new(
                        "metadata",
                        "too_large",
                        format!(
                            "must encode to at most {} bytes of JSON",
                            validate::MAX_METADATA_BYTES
                        ),
                    )
                    .into());
                }
                Some(text)
            }
            Some(_) => {
                return Err(FieldError::new("metadata", "invalid_type", "must be an object").into())
            }
        };
        self.seen(consumer);
        self.store
            .ack(consumer, channel, message_id, metadata.as_deref())?
            .ok_or_else(|| {
                let mut e =
                    FieldError::new("message_id", "not_found", "does not exist in this channel");
                e.error = "message_id does not exist in this channel".into();
                e.into()
            })
    }

    /// Read like [`Relay::read`], but when there is nothing yet (and the cursor is not stale),
    /// block until a message arrives in the channel, `timeout` passes, or `cancel` is set (the
    /// canceller wakes the hub). Returns the page and
    /// whether it timed out. Same-process sends wake it at once; other processes' within the
    /// watcher's poll interval.
    pub fn wait(
        &self,
        channel: &str,
        cursor: Cursor<'_>,
        limit: usize,
        timeout: Duration,
        cancel: Option<&AtomicBool>,
    ) -> Result<(Page, bool), Error> {
        let deadline = Instant::now() + timeout;
        let _counted = crate::metrics::Waiting::start();
        loop {
            // The ticket is taken before the read: a send landing in between still wakes us.
            let ticket = self.hub.ticket();
            let page = self.read(channel, cursor, limit)?;
            if !page.messages.is_empty() || page.stale_cursor {
                return Ok((page, false));
            }
            if cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                return Ok((page, true));
            }
            match self.hub.wait(channel, ticket, deadline) {
                Wake::Published => continue,
                Wake::TimedOut | Wake::Shutdown => return Ok((page, true)),
            }
        }
    }

    /// One message by id.
    pub fn message(&self, id: &str) -> Result<Option<StoredMessage>, Error> {
        self.store.message(id)
    }

    /// Statistics of every channel holding a message, in byte order of the name.
    pub fn channels(&self) -> Result<BTreeMap<String, ChannelStat>, Error> {
        self.store.channel_stats()
    }

    /// The position of the newest row of the event outbox (0 when empty): a live event stream
    /// delivers what comes after it.
    pub fn event_position(&self) -> Result<i64, Error> {
        self.store.max_event_seq()
    }

    /// The channel's outbox rows after `after` (at most `limit`), waiting until `deadline` for
    /// the first when there are none yet. A commit landing between the read and the wait still
    /// wakes it (the hub ticket is taken first). Returns [`Events::Quiet`] early when `stop`
    /// holds (checked before each wait: a revoked reader is woken by the revocation).
    pub fn next_events(
        &self,
        channel: &str,
        after: i64,
        limit: usize,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<Events, Error> {
        loop {
            let ticket = self.hub.ticket();
            let pending = self.store.events_after(channel, after, limit)?;
            if !pending.is_empty() {
                return Ok(Events::Some(pending));
            }
            if stop() {
                return Ok(Events::Quiet);
            }
            match self.hub.wait(channel, ticket, deadline) {
                Wake::Published => {}
                Wake::TimedOut => return Ok(Events::Quiet),
                Wake::Shutdown => return Ok(Events::Shutdown),
            }
        }
    }

    /// Record an audit row when the audit log is on (`storage.md` `audit_log`); a failure is
    /// logged and never changes the caller's outcome.
    pub fn audit(&self, event: &str, channel: Option<&str>, detail: &str, ip: Option<&str>) {
        if self.settings.audit_enabled {
            self.store.audit(event, channel, detail, ip);
        }
    }

    /// Record a rejected request (when the audit log is on): its path cut to
    /// `audit_detail_bytes`, and repeats of the same kind from the same address within
    /// `audit_fold_seconds` folded into the first one's row as a count, so a flood of
    /// rejections cannot grow the database faster than one row per address and minute.
    pub fn audit_rejection(&self, event: &str, path: &str, ip: Option<&str>) {
        if !self.settings.audit_enabled {
            return;
        }
        let excerpt = audit::excerpt(path, self.audit_detail_bytes.load(Ordering::SeqCst));
        let window = Duration::from_secs(self.audit_fold_seconds.load(Ordering::SeqCst));
        match self.folds.repeat(event, ip, window) {
            Some((id, detail)) => self.store.audit_fold(id, &detail),
            None => {
                if let Some(id) = self.store.audit(event, None, &excerpt, ip) {
                    self.folds.first(event, ip, id, excerpt, window);
                }
            }
        }
    }

    /// The newest audit rows first.
    pub fn audit_events(&self, limit: usize) -> Result<Vec<Value>, Error> {
        self.store.audit_events(limit)
    }

    /// Readiness: can the database take a write now (a write transaction opened and rolled
    /// back)?
    pub fn ready(&self) -> Result<(), Error> {
        self.store.writable()
    }

    /// Fold the write-ahead log into the database file (at shutdown).
    pub fn checkpoint(&self) -> Result<(), Error> {
        self.store.checkpoint()
    }

    /// Wake every waiter so it re-checks its cancel flag (a call was cancelled, a client left).
    pub fn wake_all(&self) {
        self.hub.wake_all();
    }

    /// End every wait and stream: they return their normal result (at shutdown).
    pub fn shutdown(&self) {
        self.hub.shutdown();
    }

    /// Sleep until `deadline`; `true` when the relay is shutting down (return at once then).
    pub fn sleep(&self, deadline: Instant) -> bool {
        self.hub.sleep(deadline)
    }

    /// Run one housekeeping sweep: retention, audit and outbox age (`storage.md` §6).
    pub fn sweep(&self, what: &crate::store::Sweep) -> Result<crate::store::Swept, Error> {
        self.store.sweep(what)
    }

    /// Start the thread that wakes this process's waiters on other processes' commits to the
    /// same db file (messages and clears by channel; any commit for waiting claims, since
    /// tasks write no outbox row). It holds only a weak reference: it ends with the relay.
    pub fn watch(self: &Arc<Self>, path: &std::path::Path, poll: Duration) -> std::io::Result<()> {
        let weak = Arc::downgrade(self);
        crate::store::watch(
            path,
            poll,
            self.store.instance().to_owned(),
            move |changed| match (weak.upgrade(), changed) {
                (Some(r), crate::store::Changed::Channel(channel)) => {
                    r.hub.publish(channel);
                    r.announce_channel(channel, false);
                }
                (Some(r), crate::store::Changed::Tick) => r.presence_tick(),
                (Some(r), crate::store::Changed::Anything) => {
                    r.wake_claims();
                    if let Err(e) = r.refresh_agents() {
                        eprintln!("warning: cannot read the agents: {e}");
                    }
                }
                (None, _) => {}
            },
        )
    }
}

/// A consumer cursor as the API and the tools show it (`http-api.md` §3.8).
pub fn cursor_json(c: &ConsumerCursor) -> Value {
    serde_json::json!({
        "consumer_id": c.consumer_id,
        "channel": c.channel,
        "last_seq": c.last_seq,
        "last_message_id": c.last_message_id,
        "updated_at": crate::clock::render(&c.updated_at),
        "advanced": c.advanced,
    })
}

/// A relay on a fresh db in a scratch folder, with the default settings (the modern MCP era on
/// or off), for unit tests. Returns the folder too, for the caller to remove.
#[cfg(test)]
pub(crate) fn scratch(modern_era: bool) -> (Relay, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "cb-unit-{}-{}",
        std::process::id(),
        crate::ids::random_hex(4)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (store, _) = Store::open(&dir.join("t.db"), false).unwrap();
    let settings = Settings {
        max_message_bytes: 131_072,
        retention_days: 0,
        audit_enabled: false,
        conformance_fixtures: false,
        modern_era,
        default_lease_seconds: 300,
        max_lease_seconds: 3600,
        default_max_attempts: 3,
        presence_window: std::time::Duration::from_secs(60),
    };
    (Relay::new(store, settings), dir)
}
