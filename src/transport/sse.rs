//! Legacy MCP over HTTP+SSE: `GET /sse` opens a session whose replies flow down an event
//! stream; `POST /messages/?session_id=…` delivers one JSON-RPC message to it (`mcp.md` §1.2).
//!
//! Invariants:
//! - Each stream runs on its own small-stack thread (never a request worker) and owns only a
//!   channel receiver; the registry lock is held just to insert, look up or remove a session.
//! - A session lives exactly as long as its stream: when a write fails (the client vanished,
//!   noticed at the latest by the next keep-alive) the thread ends and the session is removed.
//! - A session is bound to the credential (the `Authorization` header) that opened it; a POST
//!   with another one is treated as naming an unknown session.

use crate::mcp::{self, Session};
use crate::relay::agents::Principal;
use crate::relay::Relay;
use crate::wire::Reply;
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

struct Entry {
    /// Replies to write on the stream.
    tx: mpsc::Sender<String>,
    /// The `Authorization` value that opened the session.
    credential: Option<String>,
    /// Protocol state (negotiated version).
    state: Arc<Mutex<Session>>,
}

/// The open legacy-SSE sessions of this process.
pub struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
    max: usize,
    keepalive: Duration,
}

impl Sessions {
    /// A registry allowing at most `max` open streams, each sending a keep-alive comment after
    /// `keepalive` of silence.
    pub fn new(max: usize, keepalive: Duration) -> Arc<Sessions> {
        Arc::new(Sessions {
            map: Mutex::new(HashMap::new()),
            max,
            keepalive,
        })
    }

    /// Open sessions (each holds a stream).
    pub fn open_count(&self) -> usize {
        self.lock().len()
    }

    /// End every session's stream (at shutdown): dropping a session's sender ends its stream.
    pub fn close_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Plain map operations cannot leave it torn.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `GET /sse`: register a session acting as `who` and answer with its event stream (or 503
    /// at the cap). The session holds `who` online while its stream lasts; a revoked agent's
    /// stream ends at once.
    pub fn open(
        self: &Arc<Self>,
        relay: &Arc<Relay>,
        credential: Option<&str>,
        who: &Principal,
    ) -> Reply {
        let id = crate::ids::random_hex(16);
        let (tx, rx) = mpsc::channel();
        {
            let mut map = self.lock();
            if map.len() >= self.max {
                return Reply::error(503, "too many MCP streams are open; retry later")
                    .with_header("Retry-After", "5");
            }
            map.insert(
                id.clone(),
                Entry {
                    tx,
                    credential: credential.map(str::to_owned),
                    state: Arc::new(Mutex::new(Session {
                        who: who.clone(),
                        ..Session::default()
                    })),
                },
            );
        }
        let guard = Registration {
            sessions: Arc::clone(self),
            id: id.clone(),
        };
        let keepalive = self.keepalive;
        let (relay, who) = (Arc::clone(relay), who.clone());
        let mut reply = Reply::event_stream();
        reply.stream = Some(Box::new(move |w: &mut dyn Write| {
            let _guard = guard;
            let _online = relay.hold_for(&who);
            let _ = run(w, &id, &rx, keepalive, &who);
        }));
        reply
    }

    /// `POST /messages/?session_id=…`: hand one JSON-RPC message to the session; its reply (if
    /// any) goes out on the stream. 202 on acceptance.
    pub fn post(
        &self,
        relay: &Arc<Relay>,
        query: &str,
        credential: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let id = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("session_id="))
            .unwrap_or_default();
        if id.is_empty() {
            return Reply::error(400, "session_id query parameter is required");
        }
        if id.len() != 32
            || !id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Reply::error(400, "session_id must be 32 lowercase hex digits");
        }
        let (tx, state) = {
            let map = self.lock();
            match map.get(id) {
                Some(e) if e.credential.as_deref() == credential => {
                    (e.tx.clone(), Arc::clone(&e.state))
                }
                _ => return Reply::error(404, "unknown or closed session"),
            }
        };
        let msg = match crate::json::parse_body(body) {
            Ok(v) if v.is_object() || v.is_array() => v,
            _ => return Reply::error(400, "the body is not a JSON-RPC message"),
        };
        // Requests of one session run concurrently: the state is copied out, and written back
        // only if this message changed it (initialize). A call that may wait runs on its own
        // thread, so it holds no request worker.
        let before = state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if mcp::may_stream(relay, &msg) {
            let spawned = mcp::spawn(Arc::clone(relay), before, msg, move |o| {
                let (mcp::Out::Note(v) | mcp::Out::Reply(v)) = o;
                let _ = tx.send(v.to_string());
            });
            if let Err(e) = spawned {
                let why = if e.kind() == std::io::ErrorKind::WouldBlock {
                    mcp::TOO_MANY_WAITING
                } else {
                    "cannot start the call; retry later"
                };
                return Reply::error(503, why).with_header("Retry-After", "1");
            }
            return Reply::json(202, &json!({"status": "accepted"}));
        }
        let mut session = before.clone();
        let notes = tx.clone();
        let reply = mcp::handle(relay, &mut session, &msg, &mut |n| {
            let _ = notes.send(n.to_string());
        });
        if session.version != before.version {
            *state.lock().unwrap_or_else(|p| p.into_inner()) = session;
        }
        if let Some(r) = reply {
            if tx.send(r.to_string()).is_err() {
                return Reply::error(404, "unknown or closed session");
            }
        }
        Reply::json(202, &json!({"status": "accepted"}))
    }
}

/// Removes the session when its stream ends, however it ends.
struct Registration {
    sessions: Arc<Sessions>,
    id: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.id);
    }
}

/// How often an agent's stream looks whether the agent was revoked.
const REVOKE_CHECK: Duration = Duration::from_millis(250);

/// Write the stream: the `endpoint` event, then each reply as a `message` event, with a
/// keep-alive comment after each quiet `keepalive`. Returns when a write fails, or when the
/// agent it acts as is revoked.
fn run(
    w: &mut dyn Write,
    id: &str,
    rx: &mpsc::Receiver<String>,
    keepalive: Duration,
    who: &Principal,
) -> std::io::Result<()> {
    write!(w, "event: endpoint\ndata: /messages/?session_id={id}\n\n")?;
    w.flush()?;
    let tick = match who {
        Principal::Admin => keepalive,
        Principal::Agent(_) => keepalive.min(REVOKE_CHECK),
    };
    let mut quiet_since = std::time::Instant::now();
    loop {
        match rx.recv_timeout(tick) {
            Ok(msg) => write!(w, "event: message\ndata: {msg}\n\n")?,
            Err(RecvTimeoutError::Timeout) if who.revoked() => return Ok(()),
            Err(RecvTimeoutError::Timeout) if quiet_since.elapsed() >= keepalive => {
                w.write_all(b": keep-alive\n\n")?
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        w.flush()?;
        quiet_since = std::time::Instant::now();
    }
}
