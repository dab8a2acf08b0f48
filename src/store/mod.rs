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

mod agents;
mod audit;
mod housekeeping;
mod messages;
mod notify;
mod outbox;
mod schema;
mod stats;

mod sends;
pub mod tasks;
pub use agents::{AgentRow, PresenceRow};
pub use housekeeping::{Sweep, Swept};
pub use outbox::{watch, Changed};
pub use schema::MigrateError;
pub use stats::ChannelStat;

use crate::error::Error;
use crate::model::StoredMessage;
use crate::{clock, ids};
use rusqlite::{Connection, TransactionBehavior};
use stats::Stats;
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
