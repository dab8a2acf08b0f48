//! Who is who: agents with their own tokens, their channel grants, and the principal a request
//! acts as.
//!
//! Invariants:
//! - Only a SHA-256 of an agent token is stored or kept in memory; the token is shown once, by
//!   the operation that made it.
//! - A relay with no agents behaves as before: every authenticated caller is [`Principal::Admin`]
//!   and no check refuses anything.
//! - The registry follows the `bridge_agents` table: this process's own changes at once, other
//!   processes' (`agent add --db` beside a running relay) at the db watcher's next look. An
//!   agent whose token stops being valid (revoked, re-issued) gets its `revoked` flag raised and
//!   every waiter woken, so the streams it holds end at once; a grant change applies in place.

use super::Relay;
use crate::error::Error;
use crate::validate::{self, FieldError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// What a grant allows on the channels it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Receive, wait, ack, follow events, see it in listings.
    Read,
    /// Send, enqueue, claim, complete, fail.
    Write,
    /// Both, and clear.
    Admin,
}

impl Mode {
    /// `read`, `write` or `admin`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "read" => Some(Mode::Read),
            "write" => Some(Mode::Write),
            "admin" => Some(Mode::Admin),
            _ => None,
        }
    }

    /// Its word.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Read => "read",
            Mode::Write => "write",
            Mode::Admin => "admin",
        }
    }

    /// Whether a grant of this mode allows `need`.
    pub fn covers(self, need: Mode) -> bool {
        self == Mode::Admin || self == need
    }
}

/// `PATTERN=MODE`: a channel name, or a prefix ending in `*` (`proj:*`, `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The channel or prefix pattern.
    pub pattern: String,
    /// What it allows.
    pub mode: Mode,
}

impl Grant {
    /// Parse `PATTERN=MODE` (the last `=` splits; a channel name may not hold one anyway).
    pub fn parse(s: &str) -> Result<Grant, FieldError> {
        let bad = |m: &str| FieldError::new("grant", "invalid", m.to_owned());
        let (pattern, mode) = s
            .rsplit_once('=')
            .ok_or_else(|| bad("must be PATTERN=MODE, e.g. proj:*=write"))?;
        let mode = Mode::parse(mode).ok_or_else(|| bad("MODE must be read, write or admin"))?;
        let stem = pattern.strip_suffix('*').unwrap_or(pattern);
        if stem.contains('*') {
            return Err(bad("'*' may only end a pattern"));
        }
        if !stem.is_empty() {
            validate::identity(
                "grant",
                &Value::String(stem.to_owned()),
                validate::MAX_CHANNEL_CHARS,
            )?;
        } else if pattern.is_empty() {
            return Err(bad("PATTERN must not be empty (use * for every channel)"));
        }
        Ok(Grant {
            pattern: pattern.to_owned(),
            mode,
        })
    }

    /// Whether the pattern matches `channel`.
    pub fn matches(&self, channel: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => channel.starts_with(prefix),
            None => channel == self.pattern,
        }
    }

    /// `PATTERN=MODE`.
    pub fn text(&self) -> String {
        format!("{}={}", self.pattern, self.mode.as_str())
    }
}

/// The grants of an agent as stored (a JSON array of `PATTERN=MODE`); unreadable entries are
/// skipped.
fn grants_from_json(text: &str) -> Vec<Grant> {
    let v: Value = serde_json::from_str(text).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| Grant::parse(g.as_str()?).ok())
        .collect()
}

fn grants_to_json(grants: &[Grant]) -> String {
    Value::from(grants.iter().map(Grant::text).collect::<Vec<_>>()).to_string()
}

/// An agent known to this process.
#[derive(Debug)]
pub struct Agent {
    /// Its name: the `sender` of its messages and its key in the roster.
    pub name: String,
    /// A relay admin: may do anything, send as anyone, manage agents.
    pub admin: bool,
    grants: RwLock<Vec<Grant>>,
    revoked: AtomicBool,
}

impl Agent {
    /// Whether its grants allow `mode` on `channel`.
    pub fn may(&self, mode: Mode, channel: &str) -> bool {
        self.admin
            || self
                .grants
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|g| g.mode.covers(mode) && g.matches(channel))
    }

    /// Its grants now.
    pub fn grants(&self) -> Vec<Grant> {
        self.grants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether its token stopped being valid.
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::SeqCst)
    }
}

/// Who a request acts as.
#[derive(Debug, Clone, Default)]
pub enum Principal {
    /// The admin token (flag, file or environment), a dashboard login made with it, a
    /// loopback caller of a relay without a token, or `--stdio` without an agent token.
    #[default]
    Admin,
    /// An agent, by its own token.
    Agent(Arc<Agent>),
}

impl Principal {
    /// Whether it may do `mode` on `channel`.
    pub fn may(&self, mode: Mode, channel: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Agent(a) => a.may(mode, channel),
        }
    }

    /// Whether it is a relay admin (the admin token or an admin agent).
    pub fn is_admin(&self) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Agent(a) => a.admin,
        }
    }

    /// The agent's name, if it is one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Principal::Admin => None,
            Principal::Agent(a) => Some(&a.name),
        }
    }

    /// Whether its credential stopped being valid (never for the admin).
    pub fn revoked(&self) -> bool {
        match self {
            Principal::Admin => false,
            Principal::Agent(a) => a.revoked(),
        }
    }
}

/// The hex SHA-256 of a token: what is stored and looked up.
pub fn hash_token(token: &str) -> String {
    crate::ids::hex(&Sha256::digest(token.as_bytes()))
}

/// A new agent token: `cb_` and 256 bits from the OS CSPRNG, base64url.
pub fn new_token() -> String {
    format!("cb_{}", crate::ids::token_urlsafe(32))
}

/// The agents of this process with their token hashes (few: a list is enough).
#[derive(Default)]
pub struct Registry {
    by_hash: RwLock<Vec<(String, Arc<Agent>)>>,
    /// The table fingerprint the map was loaded at.
    version: Mutex<Option<(i64, String)>>,
    any: AtomicBool,
}

impl Registry {
    fn find(&self, token: &str) -> Option<Arc<Agent>> {
        if !self.any.load(Ordering::SeqCst) {
            return None;
        }
        let hash = hash_token(token);
        self.by_hash
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(h, _)| *h == hash)
            .map(|(_, a)| Arc::clone(a))
    }

    /// Follow the table: keep agents whose token is unchanged (grants updated in place),
    /// add new ones, raise the flag of those gone. Returns whether any was revoked.
    fn load(&self, rows: &[crate::store::AgentRow]) -> bool {
        let mut list = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
        let mut next = Vec::new();
        for row in rows.iter().filter(|r| r.revoked_at.is_none()) {
            let grants = grants_from_json(&row.grants);
            let old = list
                .iter()
                .position(|(h, _)| *h == row.token_sha256)
                .map(|i| list.swap_remove(i).1);
            let agent = match old {
                Some(a) if a.name == row.name && a.admin == row.admin => {
                    *a.grants.write().unwrap_or_else(|p| p.into_inner()) = grants;
                    a
                }
                old => {
                    if let Some(a) = old {
                        a.revoked.store(true, Ordering::SeqCst);
                    }
                    Arc::new(Agent {
                        name: row.name.clone(),
                        admin: row.admin,
                        grants: RwLock::new(grants),
                        revoked: AtomicBool::new(false),
                    })
                }
            };
            next.push((row.token_sha256.clone(), agent));
        }
        let revoked = !list.is_empty();
        for (_, a) in list.iter() {
            a.revoked.store(true, Ordering::SeqCst);
        }
        self.any.store(!next.is_empty(), Ordering::SeqCst);
        *list = next;
        revoked
    }
}

/// The denial of `mode` on `channel` (`403`, field `channel`, code `forbidden`).
pub fn forbidden_channel(who: &str, mode: Mode, channel: &str) -> Error {
    FieldError::new(
        "channel",
        "forbidden",
        format!(
            "agent '{who}' has no {} grant for channel '{channel}'",
            mode.as_str()
        ),
    )
    .into()
}

impl Relay {
    /// Whether any active agent is defined.
    pub fn has_agents(&self) -> bool {
        self.agents.any.load(Ordering::SeqCst)
    }

    /// The agent a bearer token names, if any.
    #[inline(never)]
    pub fn agent_by_token(&self, token: &str) -> Option<Principal> {
        self.agents.find(token).map(Principal::Agent)
    }

    /// Re-read the agents table if it changed (another process, or this one); an agent whose
    /// token stopped being valid has its streams ended at once.
    #[inline(never)]
    pub fn refresh_agents(&self) -> Result<(), Error> {
        let version = self.store.agents_version()?;
        let mut seen = self
            .agents
            .version
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if seen.as_ref() == Some(&version) {
            return Ok(());
        }
        let rows = self.store.agents()?;
        *seen = Some(version);
        drop(seen);
        // Revoked agents' streams end, and streams re-check changed grants.
        self.agents.load(&rows);
        self.hub.wake_all();
        Ok(())
    }

    /// Check that `who` may do `mode` on `channel`; a denial is audited and is the 403 /
    /// `isError` with field `channel`, code `forbidden`.
    #[inline(never)]
    pub fn check(&self, who: &Principal, mode: Mode, channel: &str) -> Result<(), Error> {
        if who.may(mode, channel) {
            return Ok(());
        }
        let name = who.name().unwrap_or("admin");
        let detail = format!("agent {name} denied {}", mode.as_str());
        self.audit("forbidden", Some(channel), &detail, None);
        Err(forbidden_channel(name, mode, channel))
    }

    /// Check that `who` is a relay admin (managing agents, the audit log).
    #[inline(never)]
    pub fn check_admin(&self, who: &Principal) -> Result<(), Error> {
        if who.is_admin() {
            return Ok(());
        }
        let name = who.name().unwrap_or("admin");
        self.audit(
            "forbidden",
            None,
            &format!("agent {name} denied admin"),
            None,
        );
        Err(FieldError::new(
            "authorization",
            "forbidden",
            format!("agent '{name}' is not an admin; this needs the admin token"),
        )
        .into())
    }

    /// Check a send's `sender` against who sends: an agent sends as itself, an admin as anyone.
    #[inline(never)]
    pub fn check_sender(&self, who: &Principal, sender: &str, channel: &str) -> Result<(), Error> {
        match who {
            Principal::Agent(a) if !a.admin && a.name != sender => {
                let detail = format!("agent {} denied sending as {sender}", a.name);
                self.audit("forbidden", Some(channel), &detail, None);
                Err(FieldError::new(
                    "sender",
                    "forbidden",
                    format!("agent '{}' may only send as '{}'", a.name, a.name),
                )
                .into())
            }
            _ => Ok(()),
        }
    }

    /// Add an agent (or give a revoked one a new token); returns its token, shown only now.
    pub fn add_agent(&self, name: &Value, grants: &[Grant], admin: bool) -> Result<Value, Error> {
        let name = validate::identity("name", name, validate::MAX_SENDER_CHARS)?;
        let token = new_token();
        let grants = dedup(grants.to_vec());
        let added = self.store.agent_add(
            name,
            &hash_token(&token),
            admin,
            &grants_to_json(&grants),
            &crate::clock::now(),
        )?;
        if !added {
            return Err(FieldError::new(
                "name",
                "conflict",
                format!("agent '{name}' exists; revoke it first to issue a new token"),
            )
            .into());
        }
        self.refresh_agents()?;
        self.audit("agent_add", None, name, None);
        self.presence_changed(name);
        Ok(json!({"name": name, "token": token, "admin": admin,
                  "grants": grants.iter().map(Grant::text).collect::<Vec<_>>()}))
    }

    /// Add one grant to an active agent (grants are a set: read and write on one pattern are
    /// two grants; admin covers both); returns its grants.
    pub fn grant_agent(&self, name: &str, grant: Grant) -> Result<Value, Error> {
        let not_found = || -> Error {
            FieldError::new(
                "name",
                "not_found",
                format!("no active agent is named '{name}'"),
            )
            .into()
        };
        let current = self.store.agent_grants(name)?.ok_or_else(not_found)?;
        let mut grants = grants_from_json(&current);
        grants.push(grant);
        let grants = dedup(grants);
        if !self
            .store
            .agent_set_grants(name, &grants_to_json(&grants), &crate::clock::now())?
        {
            return Err(not_found());
        }
        self.refresh_agents()?;
        self.audit("agent_grant", None, name, None);
        Ok(json!({"name": name, "grants": grants.iter().map(Grant::text).collect::<Vec<_>>()}))
    }

    /// Revoke an agent: its token is refused from now on and its streams end.
    pub fn revoke_agent(&self, name: &str) -> Result<Value, Error> {
        if !self.store.agent_revoke(name, &crate::clock::now())? {
            return Err(FieldError::new(
                "name",
                "not_found",
                format!("no active agent is named '{name}'"),
            )
            .into());
        }
        self.refresh_agents()?;
        self.audit("agent_revoke", None, name, None);
        self.presence_removed(name);
        Ok(json!({"name": name, "revoked": true}))
    }

    /// Every agent (revoked ones too) with its grants; never a token or its hash.
    pub fn list_agents(&self) -> Result<Vec<Value>, Error> {
        Ok(self
            .store
            .agents()?
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "admin": r.admin,
                    "grants": grants_from_json(&r.grants).iter().map(Grant::text).collect::<Vec<_>>(),
                    "created_at": crate::clock::render(&r.created_at),
                    "revoked": r.revoked_at.is_some(),
                })
            })
            .collect())
    }
}

/// The grants as a set, in pattern order: one of each (pattern, mode), and none beside an
/// `admin` grant of the same pattern (it covers them).
fn dedup(grants: Vec<Grant>) -> Vec<Grant> {
    // Few grants: inserted in order, duplicates dropped (no sort needed).
    let mut out: Vec<Grant> = Vec::with_capacity(grants.len());
    for g in grants {
        let key = |x: &Grant| (x.pattern.clone(), x.mode);
        if let Err(i) = out.binary_search_by(|x| key(x).cmp(&key(&g))) {
            out.insert(i, g);
        }
    }
    let admin: Vec<String> = out
        .iter()
        .filter(|g| g.mode == Mode::Admin)
        .map(|g| g.pattern.clone())
        .collect();
    out.retain(|g| g.mode == Mode::Admin || !admin.contains(&g.pattern));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_and_match() {
        let g = Grant::parse("proj:*=write").unwrap();
        assert!(g.matches("proj:a") && g.matches("proj:") && !g.matches("pro"));
        assert_eq!(g.mode, Mode::Write);
        let all = Grant::parse("*=read").unwrap();
        assert!(all.matches("anything"));
        let one = Grant::parse("a:b=admin").unwrap();
        assert!(one.matches("a:b") && !one.matches("a:bc"));
        for bad in [
            "", "x", "=read", "a=owner", "a*b=read", "**=read", " a=read",
        ] {
            assert!(Grant::parse(bad).is_err(), "{bad}");
        }
        assert!(Mode::Admin.covers(Mode::Read) && Mode::Admin.covers(Mode::Write));
        assert!(!Mode::Read.covers(Mode::Write) && !Mode::Write.covers(Mode::Read));
    }

    #[test]
    fn tokens_are_long_and_hashes_hex() {
        let t = new_token();
        assert!(t.starts_with("cb_") && t.len() == 46, "{t}");
        let h = hash_token(&t);
        assert_eq!(h.len(), 64);
        assert_ne!(new_token(), t);
    }
}
