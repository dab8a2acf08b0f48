//! Parked long-polls: waits that hold no thread.
//!
//! A `GET /api/wait` that finds nothing is parked here under its channel with a `check` (look at
//! the store again; answer if there is something, or always when it is the last look) and an
//! `answer` (write the reply). Two runner threads serve every parked wait: a publish on the hub
//! queues the waits of that channel only (no wake-up of unrelated waiters), a deadline queues
//! its wait for a last look, a hang-up (`hangups`) queues the wait to be dropped unanswered,
//! and shutdown gives every wait its last look. So ten thousand waiting agents cost ten
//! thousand small entries, not ten thousand threads.
//!
//! Invariant (no lost wake-up): a wait is parked with the hub ticket taken *before* the read
//! that found nothing. Parking looks at the hub under this registry's lock: a publish on the
//! channel after the ticket queues the wait at once; a later publish reaches the hub listener,
//! which takes this lock after the entry is in place and queues it.

#[cfg(test)]
use crate::hub::Hub;
use crate::hub::{Note, Ticket, Wakes};
use crate::wire::Reply;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// Runner threads: checks are store reads behind one connection mutex, so more would queue.
const RUNNERS: usize = 2;
/// Runner stack: a store read and a small JSON reply.
const RUNNER_STACK: usize = 256 * 1024;

pub use crate::wire::Check;
/// Write the reply (runs on a runner thread; must not block for long).
pub type Answer = Box<dyn FnOnce(Reply) + Send>;

/// One parked wait.
pub struct Wait {
    /// The channel whose publishes wake it.
    pub channel: String,
    /// Taken before the read that found nothing.
    pub ticket: Ticket,
    /// When it gets its last look.
    pub deadline: Instant,
    /// Raised when the client has gone: the wait is dropped unanswered.
    pub gone: Arc<AtomicBool>,
    /// See [`Check`].
    pub check: Check,
    /// See [`Answer`].
    pub answer: Answer,
}

#[derive(Default)]
struct State {
    waits: HashMap<u64, Wait>,
    by_channel: HashMap<String, HashSet<u64>>,
    /// Waits to look at now because something happened to them (a publish on their channel,
    /// their client left, shutdown), served before `expired`: a burst of deadlines (thousands
    /// of waits armed together time out together) must not delay a delivery.
    ready: VecDeque<u64>,
    /// Waits whose deadline passed: their last look.
    expired: VecDeque<u64>,
    /// Waits in a queue, and whether in `ready` (a wait in `expired` may be moved up: it is
    /// then in both, and the later pop finds it gone).
    queued: HashMap<u64, bool>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next: u64,
    shutdown: bool,
}

/// The registry of parked waits and its runners.
pub struct Parked {
    hub: Arc<dyn Wakes>,
    /// The most waits parked at once (the relay's connection cap): a parked wait holds no
    /// thread, but a client may pipeline any number of them over one connection.
    max: usize,
    state: Mutex<State>,
    cond: Condvar,
}

impl Parked {
    /// Start the runners and listen to `hub`.
    /// `hub` is anything that holds the hub (the relay, or a hub alone); at most `max` waits
    /// are parked at once.
    pub fn start(hub: Arc<dyn Wakes>, max: usize) -> std::io::Result<Arc<Parked>> {
        let parked = Arc::new(Parked {
            hub: Arc::clone(&hub),
            max,
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        });
        for i in 0..RUNNERS {
            let me = Arc::clone(&parked);
            std::thread::Builder::new()
                .name(format!("parked-{i}"))
                .stack_size(RUNNER_STACK)
                .spawn(move || me.run())?;
        }
        let weak = Arc::downgrade(&parked);
        hub.listen(Box::new(move |note| {
            if let Some(p) = weak.upgrade() {
                p.note(note);
            }
        }));
        Ok(parked)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many waits are parked (or being looked at).
    pub fn len(&self) -> usize {
        self.lock().waits.len()
    }

    /// Whether nothing is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Park a wait (see the module invariant); `Err` gives it back when `max` are parked
    /// already (the caller answers "busy").
    pub fn park(&self, wait: Wait) -> Result<(), Box<Wait>> {
        let mut s = self.lock();
        if s.waits.len() >= self.max {
            return Err(Box::new(wait));
        }
        self.insert(&mut s, wait);
        drop(s);
        self.cond.notify_one();
        Ok(())
    }

    /// Park again a wait that was parked (it keeps its place in the count).
    fn repark(&self, wait: Wait) {
        let mut s = self.lock();
        self.insert(&mut s, wait);
        drop(s);
        self.cond.notify_one();
    }

    fn insert(&self, s: &mut State, wait: Wait) {
        let id = s.next;
        s.next += 1;
        let due = s.shutdown
            || wait.deadline <= Instant::now()
            || wait.gone.load(Ordering::SeqCst)
            || self.hub.published_since(&wait.channel, wait.ticket);
        s.by_channel
            .entry(wait.channel.clone())
            .or_default()
            .insert(id);
        s.deadlines.push(Reverse((wait.deadline, id)));
        s.waits.insert(id, wait);
        if due {
            Self::queue(s, id);
        }
    }

    fn queue(s: &mut State, id: u64) {
        if s.queued.insert(id, true) != Some(true) {
            s.ready.push_back(id);
        }
    }

    fn queue_expired(s: &mut State, id: u64) {
        if let std::collections::hash_map::Entry::Vacant(e) = s.queued.entry(id) {
            e.insert(false);
            s.expired.push_back(id);
        }
    }

    /// What the hub announced.
    fn note(&self, note: Note<'_>) {
        let mut s = self.lock();
        match note {
            Note::Channel(c) => {
                let ids: Vec<u64> = s
                    .by_channel
                    .get(c)
                    .map(|set| set.iter().copied().collect())
                    .unwrap_or_default();
                for id in ids {
                    Self::queue(&mut s, id);
                }
            }
            // A cancellation or a hang-up: only waits whose client left need a look.
            Note::Everyone => {
                let gone: Vec<u64> = s
                    .waits
                    .iter()
                    .filter(|(_, w)| w.gone.load(Ordering::SeqCst))
                    .map(|(id, _)| *id)
                    .collect();
                for id in gone {
                    Self::queue(&mut s, id);
                }
            }
            Note::Shutdown => {
                s.shutdown = true;
                let all: Vec<u64> = s.waits.keys().copied().collect();
                for id in all {
                    Self::queue(&mut s, id);
                }
            }
        }
        let any = !s.ready.is_empty();
        drop(s);
        if any {
            self.cond.notify_all();
        }
    }

    /// Take the next wait to look at, blocking until there is one.
    fn next(&self) -> (Wait, bool) {
        let mut s = self.lock();
        loop {
            let now = Instant::now();
            while let Some(Reverse((at, id))) = s.deadlines.peek().copied() {
                if at > now {
                    break;
                }
                s.deadlines.pop();
                if s.waits.contains_key(&id) {
                    Self::queue_expired(&mut s, id);
                }
            }
            if let Some(id) = s.ready.pop_front().or_else(|| s.expired.pop_front()) {
                s.queued.remove(&id);
                if let Some(w) = s.waits.remove(&id) {
                    if let Some(set) = s.by_channel.get_mut(&w.channel) {
                        set.remove(&id);
                        if set.is_empty() {
                            s.by_channel.remove(&w.channel);
                        }
                    }
                    let last = s.shutdown || w.deadline <= now;
                    return (w, last);
                }
                continue;
            }
            let until = s.deadlines.peek().map(|Reverse((at, _))| *at);
            s = match until {
                Some(at) => {
                    self.cond
                        .wait_timeout(s, at.saturating_duration_since(now))
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.cond.wait(s).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    fn run(&self) {
        loop {
            let (mut wait, last) = self.next();
            if wait.gone.load(Ordering::SeqCst) {
                continue; // nobody to answer; dropping it releases the connection
            }
            // The ticket before the look: a publish during it queues the wait again.
            let ticket = self.hub.ticket();
            let checked =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (wait.check)(last)))
                    .unwrap_or_else(|_| {
                        eprintln!("error: a parked wait panicked; answered 500");
                        Some(Reply::error(500, "internal error"))
                    });
            match checked {
                Some(reply) => (wait.answer)(reply),
                None => {
                    wait.ticket = ticket;
                    self.repark(wait);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn wait(
        hub: &Hub,
        channel: &str,
        ms: u64,
        has: Arc<AtomicBool>,
        tx: mpsc::Sender<(String, bool)>,
    ) -> Wait {
        let name = channel.to_owned();
        Wait {
            channel: channel.into(),
            ticket: hub.ticket(),
            deadline: Instant::now() + Duration::from_millis(ms),
            gone: Arc::new(AtomicBool::new(false)),
            check: Box::new(move |last| {
                let found = has.load(Ordering::SeqCst);
                (found || last).then(|| Reply::error(200, if found { "found" } else { "timeout" }))
            }),
            answer: Box::new(move |r| {
                let _ = tx.send((name, String::from_utf8_lossy(&r.body).contains("found")));
            }),
        }
    }

    #[test]
    fn a_publish_answers_only_its_channel_and_deadlines_answer_the_rest() {
        let hub = Arc::new(Hub::new());
        let parked = Parked::start(hub.clone(), 100_000).unwrap();
        let (tx, rx) = mpsc::channel();
        let has_a = Arc::new(AtomicBool::new(false));
        let has_b = Arc::new(AtomicBool::new(false));
        assert!(parked
            .park(wait(&hub, "a", 60_000, Arc::clone(&has_a), tx.clone()))
            .is_ok());
        assert!(parked
            .park(wait(&hub, "b", 300, Arc::clone(&has_b), tx.clone()))
            .is_ok());
        has_a.store(true, Ordering::SeqCst);
        hub.publish("a");
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            ("a".into(), true)
        );
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            ("b".into(), false),
            "the deadline gives the last look"
        );
        assert!(parked.is_empty());
    }

    #[test]
    fn a_publish_between_the_ticket_and_parking_is_not_missed() {
        let hub = Arc::new(Hub::new());
        let parked = Parked::start(hub.clone(), 100_000).unwrap();
        let (tx, rx) = mpsc::channel();
        let has = Arc::new(AtomicBool::new(false));
        let w = wait(&hub, "x", 60_000, Arc::clone(&has), tx);
        // The "read" found nothing; then a message lands and is published before parking.
        has.store(true, Ordering::SeqCst);
        hub.publish("x");
        assert!(parked.park(w).is_ok());
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            ("x".into(), true)
        );
    }

    #[test]
    fn a_delivery_goes_before_a_burst_of_expired_deadlines() {
        // 2,000 waits armed together time out together, each last look slow (1 ms); a publish
        // meanwhile is looked at next, not after the whole burst.
        let hub = Arc::new(Hub::new());
        let parked = Parked::start(hub.clone(), 100_000).unwrap();
        let (tx, rx) = mpsc::channel();
        let never = Arc::new(AtomicBool::new(false));
        for _ in 0..2000 {
            let mut w = wait(&hub, "cold", 20, Arc::clone(&never), tx.clone());
            let mut inner = w.check;
            w.check = Box::new(move |last| {
                std::thread::sleep(Duration::from_millis(1));
                inner(last)
            });
            assert!(parked.park(w).is_ok());
        }
        let hot = Arc::new(AtomicBool::new(false));
        assert!(parked
            .park(wait(&hub, "hot", 60_000, Arc::clone(&hot), tx))
            .is_ok());
        // The burst has begun: publish on the hot channel.
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap().0, "cold");
        hot.store(true, Ordering::SeqCst);
        hub.publish("hot");
        let order: Vec<String> = (0..2000)
            .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap().0)
            .collect();
        let at = order.iter().position(|c| c == "hot").expect("answered");
        assert!(at < 1000, "the delivery waited behind {at} expired waits");
    }

    #[test]
    fn at_most_max_waits_are_parked() {
        let hub = Arc::new(Hub::new());
        let parked = Parked::start(hub.clone(), 3).unwrap();
        let (tx, rx) = mpsc::channel();
        let never = Arc::new(AtomicBool::new(false));
        for _ in 0..3 {
            assert!(parked
                .park(wait(&hub, "m", 60_000, Arc::clone(&never), tx.clone()))
                .is_ok());
        }
        let refused = parked.park(wait(&hub, "m", 60_000, Arc::clone(&never), tx.clone()));
        assert!(refused.is_err(), "the fourth is refused");
        // One ends (a publish with news): there is room again.
        never.store(true, Ordering::SeqCst);
        hub.publish("m");
        for _ in 0..3 {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        assert!(parked.park(wait(&hub, "m", 60_000, never, tx)).is_ok());
    }

    #[test]
    fn a_gone_client_is_dropped_unanswered_and_shutdown_answers_everyone() {
        let hub = Arc::new(Hub::new());
        let parked = Parked::start(hub.clone(), 100_000).unwrap();
        let (tx, rx) = mpsc::channel();
        let never = Arc::new(AtomicBool::new(false));
        let w = wait(&hub, "g", 60_000, Arc::clone(&never), tx.clone());
        let gone = Arc::clone(&w.gone);
        assert!(parked.park(w).is_ok());
        for _ in 0..100 {
            assert!(parked
                .park(wait(&hub, "s", 60_000, Arc::clone(&never), tx.clone()))
                .is_ok());
        }
        gone.store(true, Ordering::SeqCst);
        hub.wake_all();
        hub.shutdown();
        let answers: Vec<_> = (0..100)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert!(answers.iter().all(|(c, found)| c == "s" && !found));
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        assert!(parked.is_empty());
    }
}
