//! Audit rows of rejected requests, bounded: the path cut to an excerpt, and repeats from one
//! address folded into one row while a window lasts (`Relay::audit_rejection`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most (kind, address) pairs being folded at once; past it, the oldest windows close.
const MAX_FOLDS: usize = 1024;

/// `path` cut to at most `max` bytes (at a character boundary), marked with `…` when cut.
pub fn excerpt(path: &str, max: usize) -> String {
    if path.len() <= max {
        return path.to_owned();
    }
    let mut end = max;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

struct Fold {
    /// The audit row the repeats are folded into.
    id: i64,
    /// Its first detail.
    detail: String,
    /// When the window opened.
    since: Instant,
    /// Repeats folded so far.
    repeats: u64,
}

/// Open folding windows by (kind, address).
#[derive(Default)]
pub struct Folds(Mutex<HashMap<(String, Option<String>), Fold>>);

impl Folds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Option<String>), Fold>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A repeat of `event` from `ip`: if a window is open for them, count it and return the
    /// row to rewrite and its new detail; `None` when a new row is due.
    pub fn repeat(&self, event: &str, ip: Option<&str>, window: Duration) -> Option<(i64, String)> {
        let mut folds = self.lock();
        let key = (event.to_owned(), ip.map(str::to_owned));
        let f = folds.get_mut(&key)?;
        if f.since.elapsed() >= window {
            folds.remove(&key);
            return None;
        }
        f.repeats += 1;
        let detail = format!(
            "{} (+{} more {event} from this address within {} s)",
            f.detail,
            f.repeats,
            window.as_secs()
        );
        Some((f.id, detail))
    }

    /// A new row `id` for `event` from `ip` opens a window.
    pub fn first(&self, event: &str, ip: Option<&str>, id: i64, detail: String, window: Duration) {
        if window.is_zero() {
            return;
        }
        let mut folds = self.lock();
        if folds.len() >= MAX_FOLDS {
            folds.retain(|_, f| f.since.elapsed() < window);
            if folds.len() >= MAX_FOLDS {
                folds.clear();
            }
        }
        folds.insert(
            (event.to_owned(), ip.map(str::to_owned)),
            Fold {
                id,
                detail,
                since: Instant::now(),
                repeats: 0,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_cut_at_a_character_boundary() {
        assert_eq!(excerpt("/api/x", 16), "/api/x");
        assert_eq!(excerpt(&"a".repeat(20), 16), format!("{}…", "a".repeat(16)));
        // "é" is two bytes: a cut inside it moves back.
        assert_eq!(
            excerpt(&format!("{}é", "a".repeat(15)), 16),
            format!("{}…", "a".repeat(15))
        );
    }

    #[test]
    fn repeats_fold_within_the_window_only() {
        let f = Folds::default();
        let w = Duration::from_secs(60);
        assert_eq!(f.repeat("auth_failure", Some("1.2.3.4"), w), None);
        f.first("auth_failure", Some("1.2.3.4"), 7, "/api/state".into(), w);
        let (id, detail) = f.repeat("auth_failure", Some("1.2.3.4"), w).unwrap();
        assert_eq!(id, 7);
        assert!(detail.starts_with("/api/state (+1 more"), "{detail}");
        assert_eq!(f.repeat("auth_failure", Some("5.6.7.8"), w), None);
        assert_eq!(f.repeat("policy_reject", Some("1.2.3.4"), w), None);
        let closed = Duration::ZERO;
        assert_eq!(f.repeat("auth_failure", Some("1.2.3.4"), closed), None);
    }
}
