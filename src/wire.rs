//! The request view and reply value shared by the HTTP front ([`crate::http`]) and the handlers
//! behind it ([`crate::api`], [`crate::transport`]): handlers take a [`Req`] and return a
//! [`Reply`] value; only the front writes to sockets.

use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tiny_http::{Header, Method};

/// A reply value: what a handler decided, before security headers are added and it is written.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers besides the security and CORS headers the HTTP front adds to every reply.
    pub headers: Vec<(&'static str, String)>,
    /// The whole body.
    pub body: Vec<u8>,
    /// When set, the connection is handed over after the head is written: the function runs on
    /// its own thread and writes the body (an event stream) for as long as it likes; the front
    /// frames what it writes as HTTP chunks and ends the body when it returns.
    pub stream: Option<Stream>,
    /// When set, the reply is not ready yet: the function runs on its own thread (a long-poll)
    /// and returns the reply to write then, whole, with its length. Its status and headers are
    /// added to this reply's headers.
    pub deferred: Option<Deferred>,
    /// When set, the reply is not ready yet and waits without a thread of its own
    /// ([`crate::parked`]): its reply's status and headers are added to this reply's headers.
    pub parked: Option<Box<ParkedReply>>,
}

/// Look again at a parked long-poll: `Some(reply)` to answer now; told it is the last look
/// (deadline or shutdown), it must answer.
pub type Check = Box<dyn FnMut(bool) -> Option<Reply> + Send>;

/// A long-poll to park: woken by publishes on `channel` after `ticket` (taken before the read
/// that found nothing), looked at a last time at `deadline`.
pub struct ParkedReply {
    /// The channel whose publishes wake it.
    pub channel: String,
    /// The hub ticket taken before the read that found nothing.
    pub ticket: crate::hub::Ticket,
    /// When it gets its last look.
    pub deadline: std::time::Instant,
    /// Look again; must answer when told it is the last look.
    pub check: Check,
}

/// A reply computed later, off the request workers.
/// It is given a flag that is raised if the client leaves meanwhile (the reply is then dropped).
pub type Deferred = Box<dyn FnOnce(Arc<AtomicBool>) -> Reply + Send>;

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("stream", &self.stream.is_some())
            .field("deferred", &self.deferred.is_some())
            .field("parked", &self.parked.is_some())
            .finish()
    }
}

/// A long-lived response body writer; it owns the connection's writer until it returns.
pub type Stream = Box<dyn FnOnce(&mut dyn Write) + Send>;

impl Reply {
    /// A JSON reply (`Content-Type: application/json`).
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            // Serialising a Value cannot fail.
            body: serde_json::to_vec(value).unwrap_or_default(),
            stream: None,
            deferred: None,
            parked: None,
        }
    }

    /// A JSON error reply `{"error": msg}`.
    pub fn error(status: u16, msg: &str) -> Reply {
        Reply::json(status, &json!({ "error": msg }))
    }

    /// A reply that will be computed by `f` on its own thread (see [`Reply::deferred`]).
    pub fn later(f: impl FnOnce(Arc<AtomicBool>) -> Reply + Send + 'static) -> Reply {
        let mut r = Reply::empty(200);
        r.deferred = Some(Box::new(f));
        r
    }

    /// A long-poll that waits without a thread (see [`Reply::parked`]).
    pub fn parked(
        channel: String,
        ticket: crate::hub::Ticket,
        deadline: std::time::Instant,
        check: impl FnMut(bool) -> Option<Reply> + Send + 'static,
    ) -> Reply {
        let mut r = Reply::empty(200);
        r.parked = Some(Box::new(ParkedReply {
            channel,
            ticket,
            deadline,
            check: Box::new(check),
        }));
        r
    }

    /// A reply with a status and no body.
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            stream: None,
            deferred: None,
            parked: None,
        }
    }

    /// The head of a server-sent event stream; the caller sets `stream` (or a complete body).
    pub fn event_stream() -> Reply {
        Reply::empty(200)
            .with_header("Content-Type", "text/event-stream; charset=utf-8")
            .with_header("Cache-Control", "no-store")
            .with_header("X-Accel-Buffering", "no")
    }

    /// A 405 naming the allowed methods.
    pub fn method_not_allowed(allow: &str) -> Reply {
        Reply::error(405, "method not allowed").with_header("Allow", allow)
    }

    /// Add a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// A request as the handlers see it: parsed target, headers, peer, and the body (read by the
/// pipeline, within the limit).
pub struct Req<'a> {
    /// The method (HEAD is answered like GET).
    pub method: &'a Method,
    /// The path, still percent-encoded, without the query.
    pub path: &'a str,
    /// The raw query string (without `?`), empty when absent.
    pub query: &'a str,
    /// All request headers, duplicates included.
    pub headers: &'a [Header],
    /// The body bytes (empty for bodiless methods).
    pub body: Vec<u8>,
    /// Who the request acts as (the admin on a relay without agents).
    pub who: crate::relay::agents::Principal,
}

impl Req<'_> {
    /// The first value of a header, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(self.headers, name)
    }

    /// The first value of a query parameter, percent-decoded (`+` as space). `None` when absent
    /// or not valid UTF-8 after decoding.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true)? == name).then(|| percent_decode(v, true))?
        })
    }
}

/// The first value of a header, if present (names compare case-insensitively).
pub fn header<'h>(headers: &'h [Header], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Every value of a header, duplicates included.
pub fn all<'h>(headers: &'h [Header], name: &str) -> Vec<&'h str> {
    headers
        .iter()
        .filter(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
        .collect()
}

/// Percent-decode `s` (and `+` as space when `plus_as_space`). Malformed `%` escapes are kept
/// as written; `None` when the result is not UTF-8.
pub fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_as_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c", true).unwrap(), "a b c");
        assert_eq!(percent_decode("a%20b+c", false).unwrap(), "a b+c");
        assert_eq!(percent_decode("100%", false).unwrap(), "100%");
        assert_eq!(percent_decode("%zz%4", false).unwrap(), "%zz%4");
        assert_eq!(percent_decode("%41", false).unwrap(), "A");
        assert_eq!(percent_decode("%C3%A9", false).unwrap(), "é");
        assert!(percent_decode("%FF", false).is_none());
    }
}
