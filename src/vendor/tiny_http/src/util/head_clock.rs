//! claude-bridge patch: deadlines for reading a connection's requests.
//!
//! Upstream only had the socket's read timeout, which bounds one `read()`: a client that sends
//! a byte of its head every few seconds (slow-loris) held its connection thread forever, one
//! that never sent a byte held it for the whole read timeout, and a body could drip forever.
//! The clock of a connection is:
//!
//! - `Fresh` from the accept: the first byte must come within the silent limit, and the first
//!   head must be complete within the head limit, both counted from the accept;
//! - `Armed` while waiting for a later request on a kept-alive connection (governed by the
//!   socket's read timeout alone), and `Running` from that request's first byte until its head
//!   (and a small body read with it) has arrived;
//! - `BodyPending` once the head is read and a body remains, `Body` from the moment the server
//!   starts reading that body until it has arrived;
//! - `Linger` while a connection being closed discards what the client still sends.
//!
//! While a deadline runs, each read of the connection is given only the time left (see
//! `RefinedTcpStream`); a head that arrives in one read costs nothing extra.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a client may take from the first byte of a request to the end of its head (the
/// default of [`ReadLimits::head`], and the TLS handshake's bound).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// claude-bridge patch: the limits on reading requests (see `Server::set_read_limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// A new connection that has sent nothing for this long is closed without an answer.
    pub silent: Duration,
    /// A request head must arrive within this long of its first byte (of the accept, for a
    /// connection's first request); 408 beyond.
    pub head: Duration,
    /// A request body must arrive within this long of the server starting to read it.
    pub body: Duration,
    /// The largest request head (request line and header lines, with their line ends); 431
    /// beyond.
    pub max_head_bytes: usize,
    /// The most bytes of request heads that all connections may hold at once (heads being read
    /// and heads of requests not yet answered); a head that would go beyond gets 503.
    pub head_memory: usize,
    /// The most bytes of bodies read ahead (see `Server::prefetch_bodies`) that all connections
    /// may hold at once; past it, a body is left for the server to read.
    pub body_memory: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            silent: Duration::from_secs(5),
            head: HEAD_TIMEOUT,
            body: Duration::from_secs(10),
            max_head_bytes: 64 * 1024,
            head_memory: 64 * 1024 * 1024,
            body_memory: 64 * 1024 * 1024,
        }
    }
}

/// Which deadline ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Nothing at all was sent since the accept.
    Silent,
    /// A head (or a small body read with it) was too slow.
    Head,
    /// A body was too slow.
    Body,
    /// A closing connection's discarding ended.
    Linger,
}

#[derive(Clone, Copy)]
enum State {
    Off,
    Fresh { silent_by: Instant, head_by: Instant },
    Armed,
    Running(Instant),
    BodyPending,
    Deadline(Instant, Phase),
}

/// The read deadlines of one connection, shared by its reader, its request parser and its
/// requests (which start the body clock).
pub struct HeadClock {
    state: Mutex<State>,
    limits: ReadLimits,
}

impl HeadClock {
    /// A clock for a connection accepted now.
    pub fn new(limits: ReadLimits) -> HeadClock {
        let now = Instant::now();
        HeadClock {
            state: Mutex::new(State::Fresh {
                silent_by: now + limits.silent,
                head_by: now + limits.head,
            }),
            limits,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The limits this clock runs with.
    pub fn limits(&self) -> ReadLimits {
        self.limits
    }

    /// Waiting for the next request: the clock starts at its first byte (a fresh connection
    /// keeps the deadlines counted from its accept).
    pub fn arm(&self) {
        self.with(|s| {
            if !matches!(s, State::Fresh { .. }) {
                *s = State::Armed;
            }
        });
    }

    /// The head has been read; `body_left` says whether a body remains to be read.
    pub fn head_done(&self, body_left: bool) {
        self.with(|s| {
            *s = if body_left {
                State::BodyPending
            } else {
                State::Off
            }
        });
    }

    /// The server starts reading a pending body: its deadline starts now.
    pub fn body_started(&self) {
        let by = Instant::now() + self.limits.body;
        self.with(|s| {
            if let State::BodyPending = s {
                *s = State::Deadline(by, Phase::Body);
            }
        });
    }

    /// A connection being closed discards input until `by`.
    pub fn linger_until(&self, by: Instant) {
        self.with(|s| *s = State::Deadline(by, Phase::Linger));
    }

    /// Before a read: the deadline, if one runs, and what it bounds.
    pub fn deadline(&self) -> Option<(Instant, Phase)> {
        self.with(|s| match *s {
            State::Fresh { silent_by, .. } => Some((silent_by, Phase::Silent)),
            State::Running(d) => Some((d, Phase::Head)),
            State::Deadline(d, p) => Some((d, p)),
            _ => None,
        })
    }

    /// After a read that returned data: an armed clock starts, a fresh one moves on to its
    /// head deadline.
    pub fn data_arrived(&self) {
        let head = self.limits.head;
        self.with(|s| match *s {
            State::Armed => *s = State::Running(Instant::now() + head),
            State::Fresh { head_by, .. } => *s = State::Running(head_by),
            _ => {}
        });
    }
}
