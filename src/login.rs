//! Dashboard logins (`/api/session`, `http-api.md` §3.10): the bearer token is traded once for
//! an HttpOnly cookie, so the page never keeps the token. Logins live in memory only (a restart
//! logs everyone out) and expire after `CLAUDE_BRIDGE_SESSION_TTL_SECONDS`; at most
//! `CLAUDE_BRIDGE_MAX_LOGINS` live at once, expired ones swept in O(1) amortised
//! ([`crate::expiring`]). ("Session" in this crate means an MCP session; a dashboard sign-in is
//! a login.)

use crate::expiring::{Expiring, Full};
use crate::relay::agents::Principal;
use crate::wire::{all, Reply};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tiny_http::{Header, Method};

/// The cookie's name.
pub const COOKIE: &str = "claude_bridge_session";

/// The live logins of this process.
pub struct Logins {
    /// Cookie value → who signed in.
    logins: Mutex<Expiring<Principal>>,
    ttl: Duration,
}

impl Logins {
    /// No logins yet; each lasts `ttl`, at most `max` at once.
    pub fn new(ttl: Duration, max: usize) -> Logins {
        Logins {
            logins: Mutex::new(Expiring::new(max)),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Expiring<Principal>> {
        self.logins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a login for `who` (the admin, or the agent whose token was traded); returns its
    /// cookie value (32 random bytes, URL-safe), or [`Full`] when the most logins are live.
    pub fn start(&self, who: Principal) -> Result<String, Full> {
        let id = crate::ids::token_urlsafe(32);
        self.lock()
            .insert(id.clone(), who, Instant::now() + self.ttl)?;
        Ok(id)
    }

    /// Who a cookie value signed in as, while the login lives (and its agent is not revoked).
    pub fn principal(&self, id: &str) -> Option<Principal> {
        self.lock()
            .get_mut(id)
            .filter(|who| !who.revoked())
            .map(|who| who.clone())
    }

    /// Whether a cookie value names a live login.
    pub fn valid(&self, id: &str) -> bool {
        self.principal(id).is_some()
    }

    /// End a login (no-op for an unknown one).
    pub fn revoke(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The `Set-Cookie` value that stores a login in the browser.
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

impl Logins {
    /// `/api/session`: trade the bearer token for a cookie (POST), check (GET), end (DELETE).
    /// The pipeline has already authenticated the request; `required` says whether the relay
    /// has a token at all, `secure` whether the cookie must be `Secure`.
    pub fn serve(
        &self,
        method: &Method,
        headers: &[Header],
        required: bool,
        secure: bool,
        who: &Principal,
    ) -> Reply {
        let cookie = cookie_value(&all(headers, "Cookie"));
        // An agent's login also says which agent (absent for the admin, as before).
        let agent = who.name().map(str::to_owned);
        let state = |authenticated: bool| {
            let mut v =
                serde_json::json!({"authenticated": authenticated, "auth_required": required});
            if let (true, Some(a)) = (authenticated, &agent) {
                v["agent"] = serde_json::json!(a);
            }
            Reply::json(200, &v)
        };
        match method {
            Method::Post if required => {
                if let Some(old) = cookie {
                    self.revoke(old);
                }
                match self.start(who.clone()) {
                    Ok(id) => state(true).with_header("Set-Cookie", self.set_cookie(&id, secure)),
                    Err(Full) => Reply::error(503, "too many dashboard logins; retry later")
                        .with_header("Retry-After", "5"),
                }
            }
            Method::Delete => {
                if let Some(old) = cookie {
                    self.revoke(old);
                }
                state(false).with_header("Set-Cookie", Logins::clear_cookie(secure))
            }
            _ => state(true),
        }
    }
}

/// The login cookie's value among `Cookie` header values, if any.
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
    fn logins_start_check_expire_and_revoke() {
        let l = Logins::new(Duration::from_secs(60), 10);
        let id = l.start(Principal::Admin).unwrap();
        assert!(id.len() >= 43);
        assert!(l.valid(&id));
        assert!(!l.valid("other"));
        l.revoke(&id);
        assert!(!l.valid(&id));
        let short = Logins::new(Duration::from_millis(1), 10);
        let id = short.start(Principal::Admin).unwrap();
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
