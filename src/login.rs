//! Dashboard login sessions (`http-api.md` §3.10): the bearer token is traded once for an
//! HttpOnly cookie, so the page never keeps the token. Sessions live in memory only (a restart
//! logs everyone out) and expire after `CLAUDE_BRIDGE_SESSION_TTL_SECONDS`; at most
//! `CLAUDE_BRIDGE_MAX_LOGIN_SESSIONS` live at once, expired ones swept in O(1) amortised
//! ([`crate::expiring`]).

use crate::expiring::{Expiring, Full};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie's name.
pub const COOKIE: &str = "claude_bridge_session";

/// The open login sessions of this process.
pub struct Logins {
    sessions: Mutex<Expiring<()>>,
    ttl: Duration,
}

impl Logins {
    /// No sessions yet; each lasts `ttl`, at most `max` at once.
    pub fn new(ttl: Duration, max: usize) -> Logins {
        Logins {
            sessions: Mutex::new(Expiring::new(max)),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Expiring<()>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a session; returns its cookie value (32 random bytes, URL-safe), or [`Full`] when
    /// the most sessions are live.
    pub fn start(&self) -> Result<String, Full> {
        let id = crate::ids::token_urlsafe(32);
        self.lock()
            .insert(id.clone(), (), Instant::now() + self.ttl)?;
        Ok(id)
    }

    /// Whether a cookie value names a live session.
    pub fn valid(&self, id: &str) -> bool {
        self.lock().get_mut(id).is_some()
    }

    /// End a session (no-op for an unknown one).
    pub fn revoke(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The `Set-Cookie` value that stores a session in the browser.
    pub fn set_cookie(&self, id: &str, secure: bool) -> String {
        let secure = if secure { "; Secure" } else { "" };
        format!(
            "{COOKIE}={id}; HttpOnly; Max-Age={}; Path=/; SameSite=Strict{secure}",
            self.ttl.as_secs()
        )
    }

    /// The `Set-Cookie` value that removes it.
    pub fn clear_cookie(secure: bool) -> String {
        let secure = if secure { "; Secure" } else { "" };
        format!("{COOKIE}=; HttpOnly; Max-Age=0; Path=/; SameSite=Strict{secure}")
    }
}

/// The session cookie's value among `Cookie` header values, if any.
pub fn cookie_value<'a>(cookie_headers: &[&'a str]) -> Option<&'a str> {
    cookie_headers
        .iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_check_expire_and_revoke() {
        let l = Logins::new(Duration::from_secs(60), 10);
        let id = l.start().unwrap();
        assert!(id.len() >= 43);
        assert!(l.valid(&id));
        assert!(!l.valid("other"));
        l.revoke(&id);
        assert!(!l.valid(&id));
        let short = Logins::new(Duration::from_millis(1), 10);
        let id = short.start().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!short.valid(&id));
        assert!(l.set_cookie("x", true).ends_with("SameSite=Strict; Secure"));
        assert!(Logins::clear_cookie(false).contains("Max-Age=0"));
    }

    #[test]
    fn cookie_parsing() {
        assert_eq!(
            cookie_value(&["a=1; claude_bridge_session=abc; b=2"]),
            Some("abc")
        );
        assert_eq!(cookie_value(&["a=1", "claude_bridge_session=z"]), Some("z"));
        assert_eq!(cookie_value(&["xclaude_bridge_session=abc"]), None);
        assert_eq!(cookie_value(&[]), None);
    }
}
