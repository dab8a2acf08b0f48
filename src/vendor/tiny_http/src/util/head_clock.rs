//! claude-bridge patch: a deadline for reading a request's head.
//!
//! Upstream only had the socket's read timeout, which bounds one `read()`: a client that sends
//! a byte of its head every few seconds (slow-loris) held its connection thread forever. The
//! clock is armed when the server starts waiting for a request, starts at the first byte that
//! arrives (an idle keep-alive connection is governed by the read timeout alone), and stops once
//! the head, and a small body read with it, has been read. While it runs, each read of the
//! connection is given only the time left (see `RefinedTcpStream`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a client may take from the first byte of a request to the end of its head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
enum State {
    Off,
    Armed,
    Running(Instant),
}

/// The head deadline of one connection, shared by its reader and its request parser.
pub struct HeadClock(Mutex<State>);

impl HeadClock {
    pub fn new() -> HeadClock {
        HeadClock(Mutex::new(State::Off))
    }

    fn set(&self, state: State) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// Waiting for the next request: the clock starts at its first byte.
    pub fn arm(&self) {
        self.set(State::Armed);
    }

    /// The head has been read.
    pub fn stop(&self) {
        self.set(State::Off);
    }

    /// Before a read: the deadline, if the clock runs.
    pub fn deadline(&self) -> Option<Instant> {
        match *self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Running(d) => Some(d),
            _ => None,
        }
    }

    /// After a read that returned data: an armed clock starts.
    pub fn data_arrived(&self) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let State::Armed = *s {
            *s = State::Running(Instant::now() + HEAD_TIMEOUT);
        }
    }
}
