//! MCP Streamable HTTP at `/mcp` (`mcp.md` §1.3, `transports.md`): POST carries JSON-RPC
//! messages (answered with one JSON body), GET opens the session's server-to-client stream,
//! DELETE ends the session.
//!
//! Both eras share the endpoint, chosen per request ([`mcp::era::is_modern`]): a 2026-07-28
//! request is checked ([`mcp::era::check`]: headers against body, version, method) and served
//! with no session at all; its waiting calls stream on the POST's own event stream and
//! `subscriptions/listen` holds a stream of its own. GET or DELETE naming the modern version is
//! 405. Everything else is the handshake era, unchanged.
//!
//! Invariants:
//! - Session ids come from the OS CSPRNG; a missing id is 400, an unknown, deleted or expired one
//!   404 (which makes clients re-initialize). A session is bound to the credential that opened
//!   it. At most `CLAUDE_BRIDGE_MAX_MCP_SESSIONS` live at once (an `initialize` beyond gets
//!   503); idle ones are swept in O(1) amortised ([`crate::expiring`]).
//! - The registry lock is held only to look up, insert or remove; tool calls run unlocked, so
//!   requests of one session run concurrently.
//! - Transport-level JSON-RPC errors carry `"id": null`.

use crate::expiring::Expiring;
use crate::mcp::{self, code, era, Session};
use crate::relay::agents::Principal;
use crate::relay::presence::Hold;
use crate::relay::Relay;
use crate::wire::Reply;
use serde_json::Value;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Sessions idle this long are dropped.
const IDLE: Duration = Duration::from_secs(30 * 60);

struct Entry {
    credential: Option<String>,
    state: Session,
    /// Whether the session's GET stream is open (at most one).
    streaming: Arc<AtomicBool>,
    /// Keeps the session's agent online while the session lives.
    _online: Option<Hold>,
}

/// The `/mcp` sessions of this process.
pub struct Sessions {
    map: Mutex<Expiring<Entry>>,
    stateless: bool,
    max_streams: usize,
    keepalive: Duration,
    open_streams: Arc<std::sync::atomic::AtomicUsize>,
}

/// What the front tells us about a request.
pub struct Request<'a> {
    /// The HTTP method.
    pub method: &'a tiny_http::Method,
    /// `Mcp-Session-Id`, if sent.
    pub session_id: Option<&'a str>,
    /// `MCP-Protocol-Version`, if sent.
    pub protocol_version: Option<&'a str>,
    /// `Mcp-Method`, if sent (2026-07-28).
    pub mcp_method: Option<&'a str>,
    /// `Mcp-Name`, if sent (2026-07-28).
    pub mcp_name: Option<&'a str>,
    /// `Accept`, if sent.
    pub accept: Option<&'a str>,
    /// The request's credential (bearer token), if any.
    pub credential: Option<&'a str>,
    /// Who the request acts as.
    pub who: &'a Principal,
    /// The body.
    pub body: &'a [u8],
}

fn rpc_error(status: u16, code: i64, message: &str) -> Reply {
    Reply::json(status, &mcp::error(Value::Null, code, message))
}

fn accepts(accept: Option<&str>, media: &str) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            part.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
        })
    })
}

impl Sessions {
    /// A registry of at most `max_sessions`; `stateless` issues and checks no sessions.
    pub fn new(
        stateless: bool,
        max_streams: usize,
        max_sessions: usize,
        keepalive: Duration,
    ) -> Arc<Sessions> {
        Arc::new(Sessions {
            map: Mutex::new(Expiring::new(max_sessions)),
            stateless,
            max_streams,
            keepalive,
            open_streams: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Expiring<Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open GET streams.
    pub fn open_streams(&self) -> usize {
        self.open_streams.load(Ordering::SeqCst)
    }

    /// Answer one request to `/mcp`.
    pub fn serve(self: &Arc<Self>, relay: &Arc<Relay>, rq: &Request<'_>) -> Reply {
        use tiny_http::Method;
        let modern_header = rq
            .protocol_version
            .is_some_and(|v| !mcp::VERSIONS.contains(&v.trim()));
        if relay.settings.modern_era
            && modern_header
            && matches!(rq.method, Method::Get | Method::Delete)
        {
            // No GET stream and no session to end in the 2026-07-28 revision.
            return Reply::method_not_allowed("POST");
        }
        match rq.method {
            Method::Post => self.post(relay, rq),
            Method::Get if !self.stateless => self.get(relay, rq),
            Method::Delete if !self.stateless => self.delete(rq),
            _ if self.stateless => Reply::method_not_allowed("POST"),
            _ => Reply::method_not_allowed("GET, POST, DELETE"),
        }
    }

    /// Look a session up (touching it), or the 404 that makes a client re-initialize.
    fn find(&self, id: &str, credential: Option<&str>) -> Result<Session, Reply> {
        let mut map = self.lock();
        if let Some(e) = map.get_mut(id) {
            if e.credential.as_deref() == credential {
                let state = e.state.clone();
                map.touch(id, Instant::now() + IDLE);
                return Ok(state);
            }
        }
        Err(rpc_error(
            404,
            code::INVALID_REQUEST,
            "session not found; initialize a new one",
        ))
    }

    fn post(&self, relay: &Arc<Relay>, rq: &Request<'_>) -> Reply {
        if !accepts(rq.accept, "application/json") {
            return rpc_error(
                406,
                code::INVALID_REQUEST,
                "Accept must list application/json",
            );
        }
        let msg = match crate::json::parse_body(rq.body) {
            Ok(v) => v,
            Err(_) => return rpc_error(400, code::PARSE_ERROR, "Parse error: not JSON"),
        };
        let stream_ok = accepts(rq.accept, "text/event-stream");
        if relay.settings.modern_era && era::is_modern(&msg, rq.protocol_version) {
            return self.modern(relay, rq, msg, stream_ok);
        }
        if let Some(v) = rq.protocol_version {
            if !mcp::VERSIONS.contains(&v) {
                return rpc_error(
                    400,
                    code::INVALID_REQUEST,
                    "unsupported MCP-Protocol-Version",
                );
            }
        }
        if mcp::may_stream(relay, &msg) {
            // Session checks first, then the call runs on a stream thread that writes each
            // notification as it happens and the result last.
            let state = match (self.stateless, rq.session_id) {
                (true, _) => Session {
                    who: rq.who.clone(),
                    ..Session::default()
                },
                (false, None) => {
                    return rpc_error(
                        400,
                        code::INVALID_REQUEST,
                        "Mcp-Session-Id header is required; send initialize first",
                    )
                }
                (false, Some(id)) => match self.find(id, rq.credential) {
                    Ok(s) => s,
                    Err(r) => return r,
                },
            };
            return stream_call(Arc::clone(relay), state, msg, stream_ok, self.keepalive);
        }
        let is_initialize = msg.get("method").and_then(Value::as_str) == Some("initialize");
        if self.stateless {
            let mut state = Session {
                who: rq.who.clone(),
                ..Session::default()
            };
            return self.respond(relay, &mut state, &msg, None, stream_ok);
        }
        match rq.session_id {
            None if is_initialize => {
                let mut state = Session {
                    who: rq.who.clone(),
                    ..Session::default()
                };
                let id = crate::ids::random_hex(16);
                let reply = self.respond(relay, &mut state, &msg, Some(&id), stream_ok);
                let entry = Entry {
                    credential: rq.credential.map(str::to_owned),
                    state,
                    streaming: Arc::new(AtomicBool::new(false)),
                    _online: relay.hold_for(rq.who),
                };
                match self.lock().insert(id, entry, Instant::now() + IDLE) {
                    Ok(()) => reply,
                    Err(crate::expiring::Full) => rpc_error(
                        503,
                        code::INTERNAL_ERROR,
                        "too many MCP sessions are open; retry later",
                    )
                    .with_header("Retry-After", "5"),
                }
            }
            None => rpc_error(
                400,
                code::INVALID_REQUEST,
                "Mcp-Session-Id header is required; send initialize first",
            ),
            Some(id) => {
                let mut state = match self.find(id, rq.credential) {
                    Ok(s) => s,
                    Err(r) => return r,
                };
                let before = state.version.clone();
                let reply = self.respond(relay, &mut state, &msg, None, stream_ok);
                if state.version != before {
                    if let Some(e) = self.lock().get_mut(id) {
                        e.state = state;
                    }
                }
                reply
            }
        }
    }

    /// A 2026-07-28 request: checked, then served with no session. A notification needs
    /// nothing (the revision defines none over HTTP; closing a stream is the cancellation).
    fn modern(&self, relay: &Arc<Relay>, rq: &Request<'_>, msg: Value, stream_ok: bool) -> Reply {
        if msg.get("id").is_none() && msg.get("method").is_some() {
            return Reply::empty(202);
        }
        let mirrors = era::Mirrors {
            version: rq.protocol_version,
            method: rq.mcp_method,
            name: rq.mcp_name,
        };
        if let Err(r) = era::check(&msg, Some(&mirrors)) {
            return Reply::json(r.status, &r.response);
        }
        if msg.get("method").and_then(Value::as_str) == Some("subscriptions/listen") {
            return self.listen(relay, msg, stream_ok, rq.who);
        }
        let mut state = Session {
            modern: true,
            who: rq.who.clone(),
            ..Session::default()
        };
        if mcp::may_stream(relay, &msg) {
            return stream_call(Arc::clone(relay), state, msg, stream_ok, self.keepalive);
        }
        let mut notes = Vec::new();
        let reply = mcp::handle(relay, &mut state, &msg, &mut |n| notes.push(n));
        match reply {
            Some(v) if stream_ok && !notes.is_empty() => {
                let mut body = String::new();
                for m in notes.iter().chain(std::iter::once(&v)) {
                    body.push_str(&format!("event: message\ndata: {m}\n\n"));
                }
                let mut r = Reply::event_stream().with_header("X-Accel-Buffering", "no");
                r.body = body.into_bytes();
                r
            }
            Some(v) => {
                let status = v["error"]["code"].as_i64().map_or(200, era::status);
                Reply::json(status, &v)
            }
            None => Reply::empty(202),
        }
    }

    /// `subscriptions/listen`: an event stream on its own thread that acknowledges, then carries
    /// keep-alive comments (we have no list changes to announce) until the client leaves or the
    /// relay stops, which ends it with the graceful result. Counts against the stream cap.
    fn listen(&self, relay: &Arc<Relay>, msg: Value, stream_ok: bool, who: &Principal) -> Reply {
        let ack = match era::listen_ack(&msg) {
            Ok(a) => a,
            Err(e) => return Reply::json(400, &e),
        };
        if !stream_ok {
            let e = mcp::error(
                msg["id"].clone(),
                code::INVALID_REQUEST,
                "subscriptions/listen answers with an event stream: Accept must list text/event-stream",
            );
            return Reply::json(406, &e);
        }
        let open = Arc::clone(&self.open_streams);
        if open.fetch_add(1, Ordering::SeqCst) >= self.max_streams {
            open.fetch_sub(1, Ordering::SeqCst);
            return Reply::error(503, "too many MCP streams are open; retry later")
                .with_header("Retry-After", "5");
        }
        let guard = StreamGuard {
            streaming: Arc::new(AtomicBool::new(true)),
            open,
        };
        let keepalive = self.keepalive;
        let relay = Arc::clone(relay);
        let who = who.clone();
        // An agent's stream looks whether the agent was revoked four times a second.
        let tick = match who {
            Principal::Admin => keepalive,
            Principal::Agent(_) => keepalive.min(Duration::from_millis(250)),
        };
        let mut reply = Reply::event_stream().with_header("X-Accel-Buffering", "no");
        reply.stream = Some(Box::new(move |w: &mut dyn Write| {
            let _guard = guard;
            let _online = relay.hold_for(&who);
            if write!(w, "event: message\ndata: {ack}\n\n")
                .and_then(|()| w.flush())
                .is_err()
            {
                return;
            }
            let mut quiet_since = Instant::now();
            loop {
                if relay.sleep(Instant::now() + tick) {
                    let end = era::listen_end(&msg);
                    let _ = write!(w, "event: message\ndata: {end}\n\n").and_then(|()| w.flush());
                    return;
                }
                if who.revoked() {
                    return;
                }
                if quiet_since.elapsed() < keepalive {
                    continue;
                }
                quiet_since = Instant::now();
                if w.write_all(b": keep-alive\n\n")
                    .and_then(|()| w.flush())
                    .is_err()
                {
                    return;
                }
            }
        }));
        reply
    }

    /// Handle a message (or a 2025-03-26 batch) and shape the HTTP answer.
    fn respond(
        &self,
        relay: &Arc<Relay>,
        state: &mut Session,
        msg: &Value,
        new_id: Option<&str>,
        stream_ok: bool,
    ) -> Reply {
        let mut notes = Vec::new();
        let mut notify = |n: Value| notes.push(n);
        let reply = match msg {
            Value::Array(items) => {
                if state.version.as_deref() != Some("2025-03-26") || items.is_empty() {
                    return rpc_error(
                        400,
                        code::INVALID_REQUEST,
                        "batches are only accepted in sessions on protocol 2025-03-26",
                    );
                }
                if items.iter().any(|m| mcp::may_stream(relay, m)) {
                    return waiting_batch(
                        Arc::clone(relay),
                        state.clone(),
                        items.clone(),
                        stream_ok,
                    );
                }
                let out: Vec<Value> = items
                    .iter()
                    .filter_map(|m| mcp::handle(relay, state, m, &mut notify))
                    .collect();
                (!out.is_empty()).then_some(Value::Array(out))
            }
            Value::Object(_) => mcp::handle(relay, state, msg, &mut notify),
            _ => {
                return rpc_error(
                    400,
                    code::INVALID_REQUEST,
                    "a JSON-RPC message must be an object",
                )
            }
        };
        let mut r = shape(reply, &notes, stream_ok);
        if let Some(id) = new_id {
            r = r.with_header("Mcp-Session-Id", id);
        }
        r
    }

    fn get(&self, relay: &Arc<Relay>, rq: &Request<'_>) -> Reply {
        let Some(id) = rq.session_id else {
            return rpc_error(
                400,
                code::INVALID_REQUEST,
                "Mcp-Session-Id header is required",
            );
        };
        if !accepts(rq.accept, "text/event-stream") {
            return rpc_error(
                406,
                code::INVALID_REQUEST,
                "Accept must list text/event-stream",
            );
        }
        if let Err(r) = self.find(id, rq.credential) {
            return r;
        }
        let streaming = match self.lock().get_mut(id) {
            Some(e) => Arc::clone(&e.streaming),
            None => return rpc_error(404, code::INVALID_REQUEST, "session not found"),
        };
        if streaming.swap(true, Ordering::SeqCst) {
            return rpc_error(
                409,
                code::INVALID_REQUEST,
                "this session already has a GET stream",
            );
        }
        let open = Arc::clone(&self.open_streams);
        if open.fetch_add(1, Ordering::SeqCst) >= self.max_streams {
            open.fetch_sub(1, Ordering::SeqCst);
            streaming.store(false, Ordering::SeqCst);
            return Reply::error(503, "too many MCP streams are open; retry later")
                .with_header("Retry-After", "5");
        }
        let guard = StreamGuard { streaming, open };
        let keepalive = self.keepalive;
        let relay = Arc::clone(relay);
        let who = rq.who.clone();
        // An agent's stream looks whether the agent was revoked four times a second.
        let tick = match who {
            Principal::Admin => keepalive,
            Principal::Agent(_) => keepalive.min(Duration::from_millis(250)),
        };
        let mut reply = Reply::event_stream();
        reply.stream = Some(Box::new(move |w: &mut dyn Write| {
            let _guard = guard;
            // We send no server-initiated messages: keep-alive comments only, until the client
            // goes away, its agent is revoked, or the relay shuts down.
            let mut quiet_since = Instant::now();
            loop {
                if relay.sleep(Instant::now() + tick) || who.revoked() {
                    return;
                }
                if quiet_since.elapsed() < keepalive {
                    continue;
                }
                quiet_since = Instant::now();
                if w.write_all(b": keep-alive\n\n")
                    .and_then(|()| w.flush())
                    .is_err()
                {
                    return;
                }
            }
        }));
        reply
    }

    fn delete(&self, rq: &Request<'_>) -> Reply {
        let Some(id) = rq.session_id else {
            return rpc_error(
                400,
                code::INVALID_REQUEST,
                "Mcp-Session-Id header is required",
            );
        };
        if let Err(r) = self.find(id, rq.credential) {
            return r;
        }
        self.lock().remove(id);
        Reply::json(200, &serde_json::json!({}))
    }
}

/// The HTTP answer to a message or batch: its response, after the notifications the calls
/// emitted (as an SSE body, when the client takes one), or 202 when there is no response.
fn shape(reply: Option<Value>, notes: &[Value], stream_ok: bool) -> Reply {
    match reply {
        Some(v) if stream_ok && !notes.is_empty() => {
            let mut body = String::new();
            for m in notes.iter().chain(std::iter::once(&v)) {
                body.push_str(&format!("event: message\ndata: {m}\n\n"));
            }
            let mut r = Reply::event_stream();
            r.body = body.into_bytes();
            r
        }
        Some(v) => Reply::json(200, &v),
        None => Reply::empty(202),
    }
}

/// Answer a batch holding calls that may wait from a thread of its own, off the request
/// workers: each waiting call runs on its own thread ([`mcp::spawn`], counted against the
/// waiting cap), so they wait side by side; the others run here. A client that leaves cancels
/// every call of the batch. The responses come in the order of the batch.
fn waiting_batch(relay: Arc<Relay>, state: Session, items: Vec<Value>, stream_ok: bool) -> Reply {
    Reply::later(move |gone| {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, mcp::Out)>();
        let mut replies: Vec<Option<Value>> = vec![None; items.len()];
        let mut notes = Vec::new();
        let mut running = Vec::new();
        for (i, m) in items.into_iter().enumerate() {
            let mut session = state.clone();
            if !mcp::may_stream(&relay, &m) {
                replies[i] = mcp::handle(&relay, &mut session, &m, &mut |n| notes.push(n));
                continue;
            }
            session.hangup = Some(Arc::clone(&gone));
            let id = m.get("id").cloned().unwrap_or(Value::Null);
            let tx = tx.clone();
            match mcp::spawn(Arc::clone(&relay), session, m, move |o| {
                let _ = tx.send((i, o));
            }) {
                Ok(t) => running.push(t),
                Err(e) => {
                    let why = if e.kind() == std::io::ErrorKind::WouldBlock {
                        mcp::TOO_MANY_WAITING
                    } else {
                        "cannot start the call; retry later"
                    };
                    replies[i] = Some(mcp::error(id, code::INTERNAL_ERROR, why));
                }
            }
        }
        drop(tx);
        for (i, out) in rx {
            match out {
                mcp::Out::Note(n) => notes.push(n),
                mcp::Out::Reply(v) => replies[i] = Some(v),
            }
        }
        for t in running {
            let _ = t.join();
        }
        let out: Vec<Value> = replies.into_iter().flatten().collect();
        shape(
            (!out.is_empty()).then_some(Value::Array(out)),
            &notes,
            stream_ok,
        )
    })
}

/// Answer one call that may wait from a stream thread, off the request workers: as an event
/// stream written while it runs (notifications as they happen, the result last) when the client
/// accepts one, else as one JSON body written when the call ends.
fn stream_call(
    relay: Arc<Relay>,
    mut state: Session,
    msg: Value,
    events: bool,
    keepalive: Duration,
) -> Reply {
    if !events {
        return Reply::later(move |gone| {
            // A client that leaves cancels the call, as `notifications/cancelled` would.
            state.hangup = Some(gone);
            match mcp::handle(&relay, &mut state, &msg, &mut |_| {}) {
                Some(r) => Reply::json(200, &r),
                None => Reply::empty(202),
            }
        });
    }
    let mut reply = Reply::event_stream().with_header("X-Accel-Buffering", "no");
    reply.stream = Some(Box::new(move |w: &mut dyn Write| {
        // The call runs on its own thread and feeds this one; here we write what it sends, a
        // keep-alive comment when it is quiet, and cancel it if the client has gone away.
        let (tx, rx) = std::sync::mpsc::channel::<(Value, bool)>();
        let in_flight = state.clone();
        let key = msg.get("id").map(Value::to_string);
        let msg_id = msg.get("id").cloned();
        let spawned = mcp::spawn(Arc::clone(&relay), state, msg, move |o| {
            let _ = tx.send(match o {
                mcp::Out::Note(v) => (v, false),
                mcp::Out::Reply(v) => (v, true),
            });
        });
        if let Err(e) = spawned {
            let why = if e.kind() == std::io::ErrorKind::WouldBlock {
                mcp::TOO_MANY_WAITING
            } else {
                "cannot start the call; retry later"
            };
            let id = msg_id.unwrap_or(Value::Null);
            let error = mcp::error(id, code::INTERNAL_ERROR, why);
            let _ = write!(w, "event: message\ndata: {error}\n\n").and_then(|()| w.flush());
            return;
        }
        loop {
            let written = match rx.recv_timeout(keepalive) {
                Ok((v, last)) => {
                    let ok = write!(w, "event: message\ndata: {v}\n\n")
                        .and_then(|()| w.flush())
                        .is_ok();
                    if ok && last {
                        return;
                    }
                    ok
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => w
                    .write_all(b": keep-alive\n\n")
                    .and_then(|()| w.flush())
                    .is_ok(),
                // The call ended without a response (cancelled).
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            };
            if !written {
                // The client is gone: stop the call.
                if let Some(flag) = key.as_ref().and_then(|k| in_flight.cancel_flag(k)) {
                    flag.store(true, Ordering::SeqCst);
                    relay.wake_all();
                }
                return;
            }
        }
    }));
    reply
}

/// Frees a GET stream's slot when it ends.
struct StreamGuard {
    streaming: Arc<AtomicBool>,
    open: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.streaming.store(false, Ordering::SeqCst);
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}
