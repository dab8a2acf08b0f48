//! The 1.3 schema, and the forward migration that runs on every open (`storage.md` §2–§3).
//!
//! Invariant: migration only ever adds (tables, indexes, one column; identity adds
//! `bridge_agents` and `bridge_presence`, which the original never reads) and normalises two
//! redundant values; it never drops, renames or rewrites tables, never touches `messages` rows,
//! never resets `sqlite_sequence` and never changes `user_version`. So a file written by the
//! original 0.7.3 or 1.3.0 keeps every row, and a file written by us stays readable by 1.3.0.

use rusqlite::{Connection, OptionalExtension};

/// Every table and index of the 1.3 layout, with the original's DDL (`IF NOT EXISTS`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT    NOT NULL UNIQUE,
    channel   TEXT    NOT NULL,
    sender    TEXT    NOT NULL,
    content   TEXT    NOT NULL,
    timestamp TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_messages_channel ON messages(channel);
CREATE INDEX IF NOT EXISTS idx_messages_timestamp ON messages(timestamp);

CREATE TABLE IF NOT EXISTS audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TEXT    NOT NULL,
    event     TEXT    NOT NULL,
    channel   TEXT,
    detail    TEXT,
    ip        TEXT
);

CREATE TABLE IF NOT EXISTS bridge_events (
    event_seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type TEXT NOT NULL CHECK (event_type IN ('message', 'clear')),
    channel    TEXT NOT NULL,
    message_id TEXT,
    source_instance TEXT NOT NULL,
    payload    TEXT NOT NULL,
    timestamp  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_bridge_events_timestamp ON bridge_events(timestamp);

CREATE TABLE IF NOT EXISTS bridge_schema_components (
    component  TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS bridge_idempotency (
    channel          TEXT NOT NULL,
    sender           TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    payload_sha256   TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'committed')),
    message_id       TEXT,
    message_seq      INTEGER,
    created_at       TEXT NOT NULL,
    expires_at       TEXT,
    PRIMARY KEY (channel, sender, idempotency_key),
    CHECK (
        (state = 'pending' AND message_id IS NULL AND message_seq IS NULL)
        OR
        (state = 'committed' AND message_id IS NOT NULL AND message_seq IS NOT NULL)
    ),
    CHECK (message_seq IS NULL OR message_seq > 0),
    CHECK (length(payload_sha256) = 64)
);
CREATE INDEX IF NOT EXISTS idx_bridge_idempotency_expiry ON bridge_idempotency(expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS bridge_consumer_cursors (
    consumer_id     TEXT NOT NULL,
    channel         TEXT NOT NULL,
    last_seq        INTEGER NOT NULL CHECK (last_seq >= 0),
    last_message_id TEXT,
    updated_at      TEXT NOT NULL,
    metadata_json   TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (consumer_id, channel)
);
CREATE INDEX IF NOT EXISTS idx_bridge_cursors_channel ON bridge_consumer_cursors(channel, last_seq);

CREATE TABLE IF NOT EXISTS tasks (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    channel          TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (
        status IN ('pending','claimed','completed','failed','dead')),
    priority         INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    available_at     TEXT    NOT NULL,
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_expires_at TEXT,
    result           TEXT,
    last_error       TEXT,
    idempotency_key  TEXT,
    enqueued_by      TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    CHECK (
        (status = 'claimed'
            AND lease_owner IS NOT NULL
            AND lease_token IS NOT NULL
            AND lease_expires_at IS NOT NULL)
        OR
        (status != 'claimed'
            AND lease_owner IS NULL
            AND lease_token IS NULL
            AND lease_expires_at IS NULL)
    )
);
CREATE INDEX IF NOT EXISTS idx_tasks_ready ON tasks(channel, priority DESC, available_at, seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_tasks_lease ON tasks(lease_expires_at) WHERE status = 'claimed';
CREATE UNIQUE INDEX IF NOT EXISTS idx_tasks_idempotency ON tasks(channel, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_tasks_channel_status ON tasks(channel, status);

CREATE TABLE IF NOT EXISTS bridge_agents (
    name         TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL CHECK (length(token_sha256) = 64),
    admin        INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    grants       TEXT NOT NULL DEFAULT '[]',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    revoked_at   TEXT
);

CREATE TABLE IF NOT EXISTS bridge_presence (
    name      TEXT PRIMARY KEY,
    last_seen TEXT NOT NULL,
    card      TEXT NOT NULL DEFAULT '{}'
);
";

/// The component versions this build writes and understands.
const COMPONENTS: [(&str, i64); 2] = [("reliability", 1), ("taskqueue", 1)];

/// Why a migration did not happen.
#[derive(Debug)]
pub enum MigrateError {
    /// The file was written by a newer version of the relay (component, version found).
    TooNew(String, i64),
    /// SQLite failed.
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sql(e)
    }
}

/// Bring the schema to the 1.3 layout in one `BEGIN IMMEDIATE` transaction (`storage.md` §3.3).
/// Idempotent, and safe to run concurrently from several processes. Returns `MAX(event_seq)`,
/// where this process's live event delivery starts.
pub fn migrate(conn: &mut Connection, now: &str) -> Result<i64, MigrateError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;

    let has_source: bool = tx
        .prepare("SELECT 1 FROM pragma_table_info('bridge_events') WHERE name = 'source_instance'")?
        .exists([])?;
    if !has_source {
        tx.execute_batch(
            "ALTER TABLE bridge_events ADD COLUMN source_instance TEXT NOT NULL DEFAULT ''",
        )?;
    }

    for (component, ours) in COMPONENTS {
        let found: Option<i64> = tx
            .query_row(
                "SELECT version FROM bridge_schema_components WHERE component = ?1",
                [component],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(v) = found {
            if v > ours {
                // Dropping `tx` rolls back.
                return Err(MigrateError::TooNew(component.to_owned(), v));
            }
        }
    }

    tx.execute(
        "UPDATE bridge_events SET payload = '{}' WHERE event_type = 'message' AND payload <> '{}'",
        [],
    )?;
    tx.execute(
        "UPDATE bridge_idempotency SET expires_at = NULL WHERE state = 'committed' \
         AND message_id IN (SELECT id FROM messages)",
        [],
    )?;
    for (component, ours) in COMPONENTS {
        tx.execute(
            "INSERT INTO bridge_schema_components (component, version, updated_at) \
             VALUES (?1, ?2, ?3) \
             ON CONFLICT(component) DO UPDATE SET version = excluded.version, \
             updated_at = excluded.updated_at WHERE excluded.version > version",
            rusqlite::params![component, ours, now],
        )?;
    }
    let max_event: i64 = tx.query_row(
        "SELECT COALESCE(MAX(event_seq), 0) FROM bridge_events",
        [],
        |r| r.get(0),
    )?;
    tx.commit()?;
    Ok(max_event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op_and_keeps_versions() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, "2026-01-01T00:00:00.000000Z").unwrap();
        migrate(&mut c, "2026-02-01T00:00:00.000000Z").unwrap();
        let rows: Vec<(String, i64, String)> = c
            .prepare(
                "SELECT component, version, updated_at FROM bridge_schema_components ORDER BY 1",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, "reliability");
        // Same version: the row is not rewritten.
        assert_eq!(rows[0].2, "2026-01-01T00:00:00.000000Z");
    }

    #[test]
    fn a_newer_component_refuses_and_rolls_back() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, "t").unwrap();
        c.execute(
            "UPDATE bridge_schema_components SET version = 2 WHERE component = 'taskqueue'",
            [],
        )
        .unwrap();
        match migrate(&mut c, "t") {
            Err(MigrateError::TooNew(name, 2)) => assert_eq!(name, "taskqueue"),
            other => panic!("expected TooNew, got {other:?}"),
        }
    }

    #[test]
    fn adds_source_instance_to_early_event_tables() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE bridge_events (event_seq INTEGER PRIMARY KEY AUTOINCREMENT, \
             event_type TEXT NOT NULL, channel TEXT NOT NULL, message_id TEXT, \
             payload TEXT NOT NULL, timestamp TEXT NOT NULL); \
             INSERT INTO bridge_events (event_type, channel, message_id, payload, timestamp) \
             VALUES ('message', 'a', 'm1', '{\"copy\":1}', 't');",
        )
        .unwrap();
        assert_eq!(migrate(&mut c, "t").unwrap(), 1);
        let (src, payload): (String, String) = c
            .query_row(
                "SELECT source_instance, payload FROM bridge_events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(src, "");
        assert_eq!(payload, "{}");
    }
}
