//! Agents and presence (`bridge_agents`, `bridge_presence`): who may connect, with which
//! grants, and what the roster remembers about each name (last seen, card). Only a SHA-256 of
//! each agent token is stored.

use super::Store;
use crate::error::Error;
use rusqlite::{params, OptionalExtension};

/// One row of `bridge_agents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// The agent's name (its messages' `sender`).
    pub name: String,
    /// Hex SHA-256 of its token.
    pub token_sha256: String,
    /// Whether it is a relay admin.
    pub admin: bool,
    /// Its grants as a JSON array of `"PATTERN=MODE"` strings.
    pub grants: String,
    /// When it was added (stored form).
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// One row of `bridge_presence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceRow {
    /// The agent, sender or consumer name.
    pub name: String,
    /// When it was last seen (stored form).
    pub last_seen: String,
    /// Its card as a JSON object.
    pub card: String,
}

impl Store {
    /// Every agent, revoked ones included, by name.
    pub fn agents(&self) -> Result<Vec<AgentRow>, Error> {
        let g = self.lock();
        let mut stmt = g.conn.prepare_cached(
            "SELECT name, token_sha256, admin, grants, created_at, revoked_at \
             FROM bridge_agents ORDER BY name",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(AgentRow {
                name: r.get(0)?,
                token_sha256: r.get(1)?,
                admin: r.get::<_, i64>(2)? != 0,
                grants: r.get(3)?,
                created_at: r.get(4)?,
                revoked_at: r.get(5)?,
            });
        }
        Ok(out)
    }

    /// A cheap fingerprint of the agents table (row count and newest change): when it moves,
    /// the table changed.
    pub fn agents_version(&self) -> Result<(i64, String), Error> {
        let g = self.lock();
        let v = g
            .conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(MAX(updated_at), '') || '/' || \
                 COALESCE(SUM(length(grants) + admin + (revoked_at IS NULL)), 0) FROM bridge_agents",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(v)
    }

    /// Add an agent, or give a revoked one a new token. `false` when an agent of that name is
    /// active.
    pub fn agent_add(
        &self,
        name: &str,
        token_sha256: &str,
        admin: bool,
        grants: &str,
        now: &str,
    ) -> Result<bool, Error> {
        let g = self.lock();
        let n = g.conn.prepare_cached(
            "INSERT INTO bridge_agents (name, token_sha256, admin, grants, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
             ON CONFLICT(name) DO UPDATE SET token_sha256 = excluded.token_sha256, \
             admin = excluded.admin, grants = excluded.grants, created_at = excluded.created_at, \
             updated_at = excluded.updated_at, revoked_at = NULL WHERE revoked_at IS NOT NULL",
        )?
        .execute(params![name, token_sha256, i64::from(admin), grants, now])?;
        Ok(n == 1)
    }

    /// The grants of an active agent (`None` when there is none of that name).
    pub fn agent_grants(&self, name: &str) -> Result<Option<String>, Error> {
        let g = self.lock();
        let v = g
            .conn
            .prepare_cached(
                "SELECT grants FROM bridge_agents WHERE name = ?1 AND revoked_at IS NULL",
            )?
            .query_row([name], |r| r.get(0))
            .optional()?;
        Ok(v)
    }

    /// Replace an active agent's grants; `false` when there is none of that name.
    pub fn agent_set_grants(&self, name: &str, grants: &str, now: &str) -> Result<bool, Error> {
        let g = self.lock();
        let n = g
            .conn
            .prepare_cached(
                "UPDATE bridge_agents SET grants = ?2, updated_at = ?3 \
                 WHERE name = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![name, grants, now])?;
        Ok(n == 1)
    }

    /// Revoke an active agent; `false` when there is none of that name.
    pub fn agent_revoke(&self, name: &str, now: &str) -> Result<bool, Error> {
        let g = self.lock();
        let n = g
            .conn
            .prepare_cached(
                "UPDATE bridge_agents SET revoked_at = ?2, updated_at = ?2 \
                 WHERE name = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![name, now])?;
        Ok(n == 1)
    }

    /// Every presence row, by name.
    pub fn presence(&self) -> Result<Vec<PresenceRow>, Error> {
        let g = self.lock();
        let mut stmt = g
            .conn
            .prepare_cached("SELECT name, last_seen, card FROM bridge_presence ORDER BY name")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(PresenceRow {
                name: r.get(0)?,
                last_seen: r.get(1)?,
                card: r.get(2)?,
            });
        }
        Ok(out)
    }

    /// The card of `name` (a JSON object as text), if it has a presence row.
    pub fn card(&self, name: &str) -> Result<Option<String>, Error> {
        let g = self.lock();
        let v = g
            .conn
            .prepare_cached("SELECT card FROM bridge_presence WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        Ok(v)
    }

    /// Record that `name` was seen at `when` (kept when a later time is already stored), and
    /// set its card when `card` is given.
    #[inline(never)]
    pub fn touch(&self, name: &str, when: &str, card: Option<&str>) -> Result<(), Error> {
        let g = self.lock();
        g.conn
            .prepare_cached(
                "INSERT INTO bridge_presence (name, last_seen, card) VALUES (?1, ?2, COALESCE(?3, '{}')) \
                 ON CONFLICT(name) DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen), \
                 card = COALESCE(?3, card)",
            )?
            .execute(params![name, when, card])?;
        Ok(())
    }
}
