//! The in-memory wake-up: a `Mutex` + `Condvar` pair that tells waiters "something was published
//! on your channel since you last looked".
//!
//! Invariant: the hub carries no messages. The store is the truth; a waiter takes a [`Ticket`]
//! *before* it reads the store, and [`Hub::wait`] returns at once if anything was published on its
//! channel after that ticket. So a publish that lands between the reader's query and its wait is
//! never missed (the lost-wake-up race), and a reader that wakes catches up from the store by
//! cursor.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// A point in the hub's publish history, taken before reading the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something was published on the channel (or everyone was woken) after the ticket.
    Published,
    /// The deadline passed first.
    TimedOut,
    /// The relay is shutting down.
    Shutdown,
}

#[derive(Default)]
struct State {
    /// Counts every publish; tickets are values of it.
    counter: u64,
    /// The counter value of the newest publish per channel.
    channels: HashMap<String, u64>,
    /// The counter value of the newest wake-all.
    everyone: u64,
    shutdown: bool,
}

/// What the hub tells its listener (see [`Hub::listen`]).
#[derive(Debug, Clone, Copy)]
pub enum Note<'a> {
    /// Something was published on this channel.
    Channel(&'a str),
    /// Everyone should look at their state (a cancellation or a hang-up).
    Everyone,
    /// The hub shut down.
    Shutdown,
}

/// A listener told of every publish, wake-all and the shutdown, after the hub's lock is released.
pub type Listener = Box<dyn Fn(Note<'_>) + Send + Sync>;

/// Wake-ups for waiters on channels. One per process, shared by every transport.
#[derive(Default)]
pub struct Hub {
    state: Mutex<State>,
    cond: Condvar,
    /// Parked waits (`crate::parked`) hear of publishes here, by channel, instead of through
    /// the condition variable that wakes every blocked waiter.
    listener: std::sync::OnceLock<Listener>,
}

/// What parked waits (`crate::parked`) need of a hub: the hub itself, or whatever owns one
/// (the relay, which keeps its hub private).
pub trait Wakes: Send + Sync {
    /// See [`Hub::ticket`].
    fn ticket(&self) -> Ticket;
    /// See [`Hub::published_since`].
    fn published_since(&self, channel: &str, ticket: Ticket) -> bool;
    /// See [`Hub::listen`].
    fn listen(&self, listener: Listener);
    /// See [`Hub::wait`].
    fn wait_publish(&self, channel: &str, ticket: Ticket, deadline: Instant) -> Wake;
}

impl Wakes for Hub {
    fn ticket(&self) -> Ticket {
        Hub::ticket(self)
    }
    fn published_since(&self, channel: &str, ticket: Ticket) -> bool {
        Hub::published_since(self, channel, ticket)
    }
    fn listen(&self, listener: Listener) {
        Hub::listen(self, listener)
    }
    fn wait_publish(&self, channel: &str, ticket: Ticket, deadline: Instant) -> Wake {
        Hub::wait(self, channel, ticket, deadline)
    }
}

impl Hub {
    /// A new hub with nothing published.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few counters; a panic while holding the lock cannot leave it torn.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Set the listener (once; later calls are ignored).
    pub fn listen(&self, listener: Listener) {
        let _ = self.listener.set(listener);
    }

    fn tell(&self, note: Note<'_>) {
        if let Some(l) = self.listener.get() {
            l(note);
        }
    }

    /// Whether anything was published on `channel` (or everyone was woken) after `ticket`.
    pub fn published_since(&self, channel: &str, ticket: Ticket) -> bool {
        let s = self.lock();
        s.channels
            .get(channel)
            .copied()
            .unwrap_or(0)
            .max(s.everyone)
            > ticket.0
    }

    /// Take a ticket: call before reading the store, pass to [`Hub::wait`] after.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.lock().counter)
    }

    /// Announce that `channel` changed (a message was stored, or the channel was cleared).
    pub fn publish(&self, channel: &str) {
        let mut s = self.lock();
        s.counter += 1;
        let c = s.counter;
        match s.channels.get_mut(channel) {
            Some(v) => *v = c,
            None => {
                s.channels.insert(channel.to_owned(), c);
            }
        }
        drop(s);
        self.cond.notify_all();
        self.tell(Note::Channel(channel));
    }

    /// Wake every waiter to re-check its state and the store (used to deliver a cancellation:
    /// the cancelled waiter sees its flag and returns).
    pub fn wake_all(&self) {
        let mut s = self.lock();
        s.counter += 1;
        s.everyone = s.counter;
        drop(s);
        self.cond.notify_all();
        self.tell(Note::Everyone);
    }

    /// Block until something is published on `channel` after `ticket`, the deadline passes, or
    /// the hub shuts down. Returns at once if that already happened.
    pub fn wait(&self, channel: &str, ticket: Ticket, deadline: Instant) -> Wake {
        let mut s = self.lock();
        loop {
            if s.shutdown {
                return Wake::Shutdown;
            }
            let last = s
                .channels
                .get(channel)
                .copied()
                .unwrap_or(0)
                .max(s.everyone);
            if last > ticket.0 {
                return Wake::Published;
            }
            let now = Instant::now();
            if now >= deadline {
                return Wake::TimedOut;
            }
            s = match self.cond.wait_timeout(s, deadline - now) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Wake every waiter for good; later waits return [`Wake::Shutdown`] at once.
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.cond.notify_all();
        self.tell(Note::Shutdown);
    }

    /// Sleep until `deadline` or until the hub shuts down, whichever comes first; returns whether
    /// it has shut down (for streams that have nothing to wait for but the end).
    pub fn sleep(&self, deadline: Instant) -> bool {
        let mut s = self.lock();
        loop {
            let now = Instant::now();
            if s.shutdown || now >= deadline {
                return s.shutdown;
            }
            s = match self.cond.wait_timeout(s, deadline - now) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn publish_between_ticket_and_wait_is_not_missed() {
        let hub = Hub::new();
        let t = hub.ticket();
        // The "reader" queried the store here and found nothing; then a publish lands.
        hub.publish("a");
        assert_eq!(hub.wait("a", t, soon(5_000)), Wake::Published);
    }

    #[test]
    fn other_channels_do_not_wake() {
        let hub = Hub::new();
        let t = hub.ticket();
        hub.publish("b");
        assert_eq!(hub.wait("a", t, soon(30)), Wake::TimedOut);
    }

    #[test]
    fn wake_all_wakes_everyone() {
        let hub = Hub::new();
        let t = hub.ticket();
        hub.wake_all();
        assert_eq!(hub.wait("anything", t, soon(5_000)), Wake::Published);
    }

    #[test]
    fn old_publishes_do_not_wake_a_newer_ticket() {
        let hub = Hub::new();
        hub.publish("a");
        let t = hub.ticket();
        assert_eq!(hub.wait("a", t, soon(30)), Wake::TimedOut);
    }

    #[test]
    fn wakes_a_blocked_waiter_from_another_thread() {
        let hub = Arc::new(Hub::new());
        let t = hub.ticket();
        let h = Arc::clone(&hub);
        let waiter = thread::spawn(move || h.wait("a", t, soon(10_000)));
        thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        hub.publish("a");
        assert_eq!(waiter.join().unwrap(), Wake::Published);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn racing_publishers_and_waiters_never_lose_a_wake_up() {
        // Each round: a waiter takes a ticket, "reads", then waits; the publisher publishes at
        // a random point. The waiter must always see it long before its generous deadline.
        let hub = Arc::new(Hub::new());
        for round in 0..500u64 {
            let t = hub.ticket();
            let h = Arc::clone(&hub);
            let publisher = thread::spawn(move || {
                if round % 3 == 0 {
                    thread::yield_now();
                }
                h.publish("race");
            });
            if round % 2 == 0 {
                thread::yield_now();
            }
            assert_eq!(hub.wait("race", t, soon(10_000)), Wake::Published);
            publisher.join().unwrap();
        }
    }

    #[test]
    fn sleep_ends_at_its_deadline_or_at_shutdown() {
        let hub = Arc::new(Hub::new());
        assert!(!hub.sleep(soon(10)), "a deadline is not a shutdown");
        let h = Arc::clone(&hub);
        let sleeper = thread::spawn(move || h.sleep(soon(60_000)));
        thread::sleep(Duration::from_millis(20));
        hub.publish("x");
        hub.wake_all();
        thread::sleep(Duration::from_millis(20));
        assert!(
            !sleeper.is_finished(),
            "only a shutdown ends the sleep early"
        );
        hub.shutdown();
        assert!(sleeper.join().unwrap());
    }

    #[test]
    fn shutdown_wakes_everyone() {
        let hub = Arc::new(Hub::new());
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let h = Arc::clone(&hub);
                let t = h.ticket();
                thread::spawn(move || h.wait("x", t, soon(60_000)))
            })
            .collect();
        thread::sleep(Duration::from_millis(20));
        hub.shutdown();
        for w in waiters {
            assert_eq!(w.join().unwrap(), Wake::Shutdown);
        }
        assert_eq!(hub.wait("x", hub.ticket(), soon(60_000)), Wake::Shutdown);
    }
}
