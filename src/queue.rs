//! The task queue's operations and wake-ups (`mcp.md` §4.9–4.13, §5), on the store and hub.
//!
//! Waiting claims are woken on the hub under a key of their own per channel ([`task_key`]):
//! at once by an enqueue or a requeue in this process; by the db watcher (every change another
//! process commits, within `CLAUDE_BRIDGE_EVENT_POLL_MS`) for the channels that have a waiting
//! claim; and by their own deadline, which is the sooner of the wait's end and the next moment a
//! delayed task comes due or a lease lapses in the channel. A waiting claim sleeps on the hub;
//! it never holds a request worker (the transports run it like `bridge_wait`).

use crate::clock;
use crate::error::Error;
use crate::hub::Wake;
use crate::relay::Relay;
use crate::store::tasks::{Claimed, Failed, NewTask, Task};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The hub key waiting claims of `channel` sleep on (a NUL prefix keeps it apart from message
/// channels, whose names cannot hold control characters).
pub fn task_key(channel: &str) -> String {
    format!("\u{0}tasks:{channel}")
}

/// Channels with claims waiting now, and how many.
#[derive(Default)]
pub struct ClaimWaiters(Mutex<HashMap<String, usize>>);

impl ClaimWaiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The channels that have a waiting claim.
    pub fn channels(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

/// Counts one waiting claim on a channel while alive.
struct Waiting<'a> {
    waiters: &'a ClaimWaiters,
    channel: &'a str,
}

impl<'a> Waiting<'a> {
    fn new(waiters: &'a ClaimWaiters, channel: &'a str) -> Self {
        *waiters.lock().entry(channel.to_owned()).or_insert(0) += 1;
        Waiting { waiters, channel }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.lock();
        if let Some(n) = map.get_mut(self.channel) {
            *n -= 1;
            if *n == 0 {
                map.remove(self.channel);
            }
        }
    }
}

/// The instant a stored timestamp names (`None` if it does not parse).
fn instant_of(stored: &str) -> Option<Instant> {
    let at = clock::parse_rfc3339(stored).ok()?;
    let now = clock::now_micros();
    let from_now = Duration::from_micros(at.saturating_sub(now).max(0) as u64);
    Some(Instant::now() + from_now)
}

impl Relay {
    /// Enqueue a task; wakes this channel's waiting claims when a new task is claimable now.
    pub fn enqueue(&self, t: &NewTask<'_>) -> Result<(bool, Task), Error> {
        let (created, task) = self.store.enqueue(t)?;
        if created {
            // A delayed task too: waiting claims recompute their deadline from it.
            self.hub.publish(&task_key(t.channel));
        }
        Ok((created, task))
    }

    /// Claim the next eligible task, waiting up to `wait` for one (woken as the module docs
    /// say). `None` when nothing became claimable in time, or the call was cancelled.
    pub fn claim(
        &self,
        channel: &str,
        consumer: &str,
        lease_seconds: i64,
        wait: Duration,
        cancel: &AtomicBool,
    ) -> Result<Option<Claimed>, Error> {
        let deadline = Instant::now() + wait;
        let key = task_key(channel);
        let _waiting = (!wait.is_zero()).then(|| {
            (
                Waiting::new(&self.claim_waiters, channel),
                crate::metrics::Waiting::start(),
            )
        });
        loop {
            // The ticket comes before the attempt: an enqueue landing in between still wakes us.
            let ticket = self.hub.ticket();
            if let Some(claimed) = self.store.claim(channel, consumer, lease_seconds)? {
                return Ok(Some(claimed));
            }
            if cancel.load(Ordering::SeqCst) || Instant::now() >= deadline {
                return Ok(None);
            }
            let until = match self.store.next_task_change(channel)? {
                Some(ts) => instant_of(&ts).map_or(deadline, |at| at.min(deadline)),
                None => deadline,
            };
            // A due time in the past (clock granularity): look again shortly, not in a spin.
            let until = until.max(Instant::now() + Duration::from_millis(1));
            if self.hub.wait(&key, ticket, until) == Wake::Shutdown {
                return Ok(None);
            }
        }
    }

    /// Complete a claimed task (fenced by its lease token).
    pub fn complete(
        &self,
        channel: &str,
        task_id: &str,
        token: &str,
        result: Option<&str>,
    ) -> Result<Task, Error> {
        self.store.complete(channel, task_id, token, result)
    }

    /// Fail a claimed task (fenced); a requeue wakes the channel's waiting claims.
    pub fn fail(
        &self,
        channel: &str,
        task_id: &str,
        token: &str,
        requeue: bool,
        error: Option<&str>,
        retry_delay_seconds: i64,
    ) -> Result<(Failed, Task), Error> {
        let out = self
            .store
            .fail(channel, task_id, token, requeue, error, retry_delay_seconds)?;
        if out.0 == Failed::Requeued {
            self.hub.publish(&task_key(channel));
        }
        Ok(out)
    }

    /// Wake the waiting claims of every channel that has one (another process changed the db,
    /// or the sweep expired leases).
    pub fn wake_claims(&self) {
        for channel in self.claim_waiters.channels() {
            self.hub.publish(&task_key(&channel));
        }
    }

    /// Expire lapsed leases in every channel (housekeeping) and wake waiting claims if any
    /// task became claimable.
    pub fn expire_leases(&self) -> Result<u64, Error> {
        let n = self.store.expire_all_leases()?;
        if n > 0 {
            self.wake_claims();
        }
        Ok(n)
    }
}
