//! Presence: who is there. Each name (an agent, or without agent tokens a sender or consumer
//! name seen) has a last-seen time and a card (machine, directory or repo, current task). A
//! name is online while it holds a wait, a stream or an MCP session here, or was seen within
//! the presence window (60 s by default).
//!
//! Invariants:
//! - Holds and the in-process last-seen live in memory under one short lock; `last_seen` is
//!   written to `bridge_presence` at most once per `Board::persist_every` per name, and a card
//!   at once, so other processes on the same file (`--stdio`) show in the roster.
//! - Every online/offline change and card change is announced on the relay feed once: by the
//!   call that caused it, or by the presence sweep (time passing, other processes).

use super::agents::Principal;
use super::Relay;
use crate::error::Error;
use crate::validate::FieldError;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest value of a card field, in characters.
pub const MAX_CARD_CHARS: usize = 512;
/// The card's fields.
pub const CARD_FIELDS: [&str; 4] = ["machine", "directory", "repo", "task"];

#[derive(Debug, Default)]
struct Seen {
    /// What was last announced about the name: (online, card).
    announced: Option<(bool, String)>,
    /// Waits, streams and sessions held now.
    holds: usize,
    /// Last seen here (`None`: only known from the db).
    last: Option<Instant>,
    /// When `last_seen` was last written to the db.
    persisted: Option<Instant>,
}

/// Presence of this process.
pub struct Board {
    seen: Mutex<HashMap<String, Seen>>,
    window: Duration,
    /// When the last sweep ran, and the name this process keeps fresh (a `--stdio` agent).
    clock: Mutex<(Option<Instant>, Option<String>)>,
}

impl Board {
    /// A board with this presence window.
    pub fn new(window: Duration) -> Arc<Board> {
        Arc::new(Board {
            seen: Mutex::new(HashMap::new()),
            window,
            clock: Mutex::new((None, None)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How often a name's `last_seen` reaches the db while it is active.
    fn persist_every(&self) -> Duration {
        (self.window / 3).min(Duration::from_secs(15))
    }
}

/// A wait, stream or session held by a name: it is online until this is dropped.
pub struct Hold {
    board: Arc<Board>,
    name: String,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut map = self.board.lock();
        if let Some(s) = map.get_mut(&self.name) {
            s.holds = s.holds.saturating_sub(1);
            s.last = Some(Instant::now());
        }
    }
}

/// One roster entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name.
    pub name: String,
    /// Whether an agent of this name exists (active).
    pub agent: bool,
    /// Online now.
    pub online: bool,
    /// Last seen (rendered), if ever.
    pub last_seen: Option<String>,
    /// The card (a JSON object as text).
    pub card: String,
}

impl Entry {
    /// Its JSON form.
    pub fn json(&self) -> Value {
        json!({
            "name": self.name,
            "agent": self.agent,
            "online": self.online,
            "last_seen": self.last_seen,
            "card": serde_json::from_str::<Value>(&self.card).unwrap_or_else(|_| json!({})),
        })
    }
}

impl Relay {
    /// Note that `name` was seen now (it made a request, sent, read as a consumer).
    #[inline(never)]
    pub fn seen(&self, name: &str) {
        let now = Instant::now();
        let (persist, came) = {
            let mut map = self.presence.lock();
            // The name is copied only the first time it is seen (this runs on every send).
            if !map.contains_key(name) {
                map.insert(name.to_owned(), Seen::default());
            }
            let Some(s) = map.get_mut(name) else {
                return;
            };
            let was_online =
                s.holds > 0 || s.last.is_some_and(|l| l.elapsed() < self.presence.window);
            s.last = Some(now);
            let persist = s
                .persisted
                .is_none_or(|p| p.elapsed() >= self.presence.persist_every());
            if persist {
                s.persisted = Some(now);
            }
            (persist, !was_online)
        };
        if persist {
            if let Err(e) = self.store.touch(name, &crate::clock::now(), None) {
                eprintln!("warning: cannot record presence: {e}");
            }
        }
        if came {
            self.presence_changed(name);
        }
    }

    /// Hold `name` online until the returned guard is dropped (a wait, stream or session).
    #[inline(never)]
    pub fn hold(&self, name: &str) -> Hold {
        self.seen(name);
        self.presence
            .lock()
            .entry(name.to_owned())
            .or_default()
            .holds += 1;
        Hold {
            board: Arc::clone(&self.presence),
            name: name.to_owned(),
        }
    }

    /// The hold of an agent principal (none for the admin).
    pub fn hold_for(&self, who: &Principal) -> Option<Hold> {
        who.name().map(|n| self.hold(n))
    }

    /// Set a card: an agent its own, the admin anyone's (`name` required then). Fields not
    /// given keep their value; an empty string removes one. Returns the roster entry.
    pub fn set_card(&self, who: &Principal, args: &Map<String, Value>) -> Result<Value, Error> {
        for k in args.keys() {
            if k != "name" && !CARD_FIELDS.contains(&k.as_str()) {
                return Err(FieldError::new(k, "unknown", "is not a card field").into());
            }
        }
        let name = match (who.name(), args.get("name")) {
            (Some(me), None) => me.to_owned(),
            (Some(me), Some(v)) if v.as_str() == Some(me) => me.to_owned(),
            (Some(me), Some(_)) if !who.is_admin() => {
                return Err(FieldError::new(
                    "name",
                    "forbidden",
                    format!("agent '{me}' may only set its own card"),
                )
                .into())
            }
            (_, v) => crate::validate::identity(
                "name",
                v.unwrap_or(&Value::Null),
                crate::validate::MAX_SENDER_CHARS,
            )?
            .to_owned(),
        };
        let mut card: Map<String, Value> = self
            .store
            .card(&name)?
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default();
        for field in CARD_FIELDS {
            let v = match args.get(field) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => s,
                Some(_) => {
                    return Err(FieldError::new(field, "invalid_type", "must be a string").into())
                }
            };
            if v.chars().count() > MAX_CARD_CHARS {
                let why = format!("must be at most {MAX_CARD_CHARS} characters");
                return Err(FieldError::new(field, "too_long", why).into());
            }
            if v.is_empty() {
                card.remove(field);
            } else {
                card.insert(field.into(), Value::String(v.clone()));
            }
        }
        let card = Value::Object(card);
        self.store
            .touch(&name, &crate::clock::now(), Some(&card.to_string()))?;
        self.seen(&name);
        self.presence_changed(&name);
        Ok(json!({"name": name, "card": card}))
    }

    /// Everyone known, by name: active agents, names in `bridge_presence`, names seen here.
    #[inline(never)]
    pub fn roster(&self) -> Result<Vec<Entry>, Error> {
        let now_us = crate::clock::now_micros();
        let window_us = self.presence.window.as_micros() as i64;
        // Few names: a list, searched by name.
        let mut out: Vec<Entry> = Vec::new();
        // Kept in name order as it is filled (no sort needed afterwards).
        fn slot<'e>(out: &'e mut Vec<Entry>, name: &str) -> &'e mut Entry {
            let i = match out.binary_search_by(|e| e.name.as_str().cmp(name)) {
                Ok(i) => i,
                Err(i) => {
                    let e = Entry {
                        name: name.to_owned(),
                        agent: false,
                        online: false,
                        last_seen: None,
                        card: "{}".into(),
                    };
                    out.insert(i, e);
                    i
                }
            };
            &mut out[i]
        }
        let agents = self.store.agents()?;
        let revoked: Vec<&str> = agents
            .iter()
            .filter(|a| a.revoked_at.is_some())
            .map(|a| a.name.as_str())
            .collect();
        for a in agents.iter().filter(|a| a.revoked_at.is_none()) {
            slot(&mut out, &a.name).agent = true;
        }
        for r in self.store.presence()? {
            let recent =
                crate::clock::parse_rfc3339(&r.last_seen).is_ok_and(|t| now_us - t < window_us);
            let e = slot(&mut out, &r.name);
            e.online |= recent;
            e.last_seen = Some(crate::clock::render(&r.last_seen));
            e.card = r.card;
        }
        let map = self.presence.lock();
        for (name, s) in map.iter() {
            // A name only announced (never seen here) adds nothing.
            if s.last.is_none() && s.holds == 0 {
                continue;
            }
            let e = slot(&mut out, name);
            if let Some(l) = s.last {
                let us = now_us - l.elapsed().as_micros() as i64;
                let here = crate::clock::format_micros(us);
                let newer = e
                    .last_seen
                    .as_deref()
                    .and_then(|t| crate::clock::parse_rfc3339(t).ok())
                    .is_none_or(|t| t < us);
                if newer {
                    e.last_seen = Some(crate::clock::render(&here));
                }
            }
            e.online |= s.holds > 0 || s.last.is_some_and(|l| l.elapsed() < self.presence.window);
        }
        drop(map);
        // A revoked agent is offline, whatever it still holds.
        for e in out.iter_mut() {
            if !e.agent && revoked.contains(&e.name.as_str()) {
                e.online = false;
            }
        }
        // With agents defined, the roster is the agents; without, every name seen.
        let agents_only = out.iter().any(|e| e.agent);
        out.retain(|e| e.agent || !agents_only);
        Ok(out)
    }

    /// `GET /api/agents` and `bridge_agents`: the roster, and for a relay admin every agent
    /// with its grants.
    pub fn roster_json(&self, who: &Principal) -> Result<Value, Error> {
        let roster: Vec<Value> = self.roster()?.iter().map(Entry::json).collect();
        let mut out = json!({"roster": roster, "window_seconds": self.presence.window.as_secs()});
        if who.is_admin() {
            out["agents"] = Value::from(self.list_agents()?);
        }
        Ok(out)
    }

    /// Announce what changed about `name` (online, card) if it differs from what was last
    /// announced.
    #[inline(never)]
    pub(super) fn presence_changed(&self, name: &str) {
        if !self.feed_read() {
            return;
        }
        match self.roster() {
            Ok(r) => {
                if let Some(e) = r.into_iter().find(|e| e.name == name) {
                    self.announce_if_changed(&e);
                }
            }
            Err(e) => eprintln!("warning: cannot read the roster: {e}"),
        }
    }

    /// Announce that `name` left the roster (a revoked agent).
    pub(super) fn presence_removed(&self, name: &str) {
        if let Some(s) = self.presence.lock().get_mut(name) {
            s.announced = None;
        }
        self.announce(json!({"type": "presence", "name": name, "online": false, "removed": true}));
    }

    #[inline(never)]
    fn announce_if_changed(&self, e: &Entry) {
        let now = (e.online, e.card.clone());
        let changed = {
            let mut map = self.presence.lock();
            if !map.contains_key(&e.name) {
                map.insert(e.name.clone(), Seen::default());
            }
            match map.get_mut(&e.name) {
                Some(s) if s.announced.as_ref() != Some(&now) => {
                    s.announced = Some(now);
                    true
                }
                _ => false,
            }
        };
        if changed {
            let mut v = e.json();
            v["type"] = json!("presence");
            self.announce(v);
        }
    }

    /// Keep `name` fresh in `bridge_presence` while this process runs (a `--stdio` agent,
    /// so a relay on the same file shows it online): seen at every presence tick.
    pub fn heartbeat(&self, name: &str) {
        self.presence
            .clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1 = Some(name.to_owned());
        self.seen(name);
    }

    /// Called at every poll of the db watcher: once a second, the heartbeat and the sweep.
    pub fn presence_tick(&self) {
        let beat = {
            let mut c = self
                .presence
                .clock
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if c.0.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            c.0 = Some(Instant::now());
            c.1.clone()
        };
        if let Some(name) = beat {
            self.seen(&name);
        }
        self.sweep_presence();
    }

    /// One presence sweep: announce names that went offline (time passed, a hold ended) or
    /// changed in another process.
    pub fn sweep_presence(&self) {
        if !self.feed_read() {
            return;
        }
        match self.roster() {
            Ok(r) => r.iter().for_each(|e| self.announce_if_changed(e)),
            Err(e) => eprintln!("warning: cannot read the roster: {e}"),
        }
    }
}
