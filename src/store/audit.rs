//! The audit log (`storage.md` `audit_log`): rows written beside the request they describe,
//! never changing its outcome.

use super::Store;
use crate::clock;
use crate::error::Error;
use rusqlite::params;

impl Store {
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
}
