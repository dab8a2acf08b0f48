//! A capped map of sessions that expire, swept in O(1) amortised: the shape of the `/mcp`
//! sessions and the dashboard login sessions.
//!
//! Every entry has one place in a queue ordered by expiry. An insert first pops the entries at
//! the front whose time has come: gone ones are dropped, expired ones removed, and one that was
//! touched since (its expiry moved later) goes to the back with its new expiry. Each entry is
//! popped at most once per expiry period, so the work is constant per operation on average and
//! no operation scans the whole map under the lock. A lookup never returns an expired entry,
//! whether swept yet or not.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// The map is full: no entry could be swept to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

struct Slot<V> {
    value: V,
    expires: Instant,
}

/// Entries by id, each with an expiry; at most `cap` at once.
pub struct Expiring<V> {
    map: HashMap<String, Slot<V>>,
    queue: VecDeque<(Instant, String)>,
    cap: usize,
    #[cfg(test)]
    popped: usize,
}

impl<V> Expiring<V> {
    /// An empty map holding at most `cap` entries.
    pub fn new(cap: usize) -> Expiring<V> {
        Expiring {
            map: HashMap::new(),
            queue: VecDeque::new(),
            cap,
            #[cfg(test)]
            popped: 0,
        }
    }

    /// Live entries (some may have expired and not been swept yet).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drop the entries whose time has come (see the module docs).
    fn sweep(&mut self, now: Instant) {
        while let Some((at, _)) = self.queue.front() {
            if *at > now {
                break;
            }
            let Some((_, id)) = self.queue.pop_front() else {
                break;
            };
            #[cfg(test)]
            {
                self.popped += 1;
            }
            match self.map.get(&id).map(|s| s.expires) {
                Some(e) if e <= now => {
                    self.map.remove(&id);
                }
                // Touched since: back of the queue, keeping it ordered.
                Some(e) => {
                    let at = self.queue.back().map_or(e, |(b, _)| e.max(*b));
                    self.queue.push_back((at, id));
                }
                None => {}
            }
        }
    }

    /// Add `value` under `id`, expiring at `expires`; [`Full`] when `cap` live entries remain
    /// after the sweep.
    pub fn insert(&mut self, id: String, value: V, expires: Instant) -> Result<(), Full> {
        self.sweep(Instant::now());
        if self.map.len() >= self.cap {
            return Err(Full);
        }
        let at = self.queue.back().map_or(expires, |(b, _)| expires.max(*b));
        self.queue.push_back((at, id.clone()));
        self.map.insert(id, Slot { value, expires });
        Ok(())
    }

    /// The live entry under `id` (an expired one is removed and not returned).
    pub fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        let expired = self.map.get(id)?.expires <= Instant::now();
        if expired {
            self.map.remove(id);
            return None;
        }
        self.map.get_mut(id).map(|s| &mut s.value)
    }

    /// Move the expiry of a live entry (to later: it was used).
    pub fn touch(&mut self, id: &str, expires: Instant) {
        if let Some(s) = self.map.get_mut(id) {
            s.expires = s.expires.max(expires);
        }
    }

    /// Remove an entry; returns it if it was there.
    pub fn remove(&mut self, id: &str) -> Option<V> {
        self.map.remove(id).map(|s| s.value)
    }

    /// Remove everything.
    pub fn clear(&mut self) {
        self.map.clear();
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn capped_expiring_and_touched() {
        let now = Instant::now();
        let mut m = Expiring::new(3);
        let soon = now + Duration::from_millis(30);
        let later = now + Duration::from_secs(60);
        m.insert("a".into(), 1, soon).unwrap();
        m.insert("b".into(), 2, soon).unwrap();
        m.insert("c".into(), 3, later).unwrap();
        assert_eq!(m.insert("d".into(), 4, later), Err(Full));
        m.touch("b", later);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(m.get_mut("a"), None, "expired");
        assert_eq!(m.get_mut("b"), Some(&mut 2), "touched, so alive");
        // "a" is gone: room for one.
        m.insert("d".into(), 4, later).unwrap();
        assert_eq!(m.insert("e".into(), 5, later), Err(Full));
        assert_eq!(m.remove("c"), Some(3));
        m.insert("e".into(), 5, later).unwrap();
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn an_insert_does_constant_work_however_many_entries_live() {
        let later = Instant::now() + Duration::from_secs(3600);
        let mut m = Expiring::new(100_000);
        for i in 0..50_000 {
            m.insert(format!("s{i}"), (), later).unwrap();
        }
        // Nothing is due: an insert looks at the front of the queue and nothing else.
        m.popped = 0;
        m.insert("one more".into(), (), later).unwrap();
        assert_eq!(m.popped, 0);
        // Expired entries are swept as they come due, each popped once.
        let mut m = Expiring::new(100_000);
        let soon = Instant::now() + Duration::from_millis(20);
        for i in 0..1000 {
            m.insert(format!("s{i}"), (), soon).unwrap();
        }
        std::thread::sleep(Duration::from_millis(30));
        m.popped = 0;
        m.insert("x".into(), (), later).unwrap();
        assert_eq!((m.popped, m.len()), (1000, 1));
    }
}
