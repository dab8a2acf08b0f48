//! Dashboard login sessions, `/api/session` (`http-api.md` §3.10, §2.5).

use crate::support::Relay;
use serde_json::json;

fn cookie_of(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

#[test]
fn a_token_is_traded_for_a_cookie_that_works_until_revoked() {
    let r = Relay::start(
        &["--auth-token", "tok"],
        &[("CLAUDE_BRIDGE_SESSION_TTL_SECONDS", "120")],
    );
    let bearer = ("Authorization", "Bearer tok");
    let x = r.request("POST", "/api/session", &[bearer], None);
    assert_eq!(
        (x.status, x.json()),
        (200, json!({"authenticated": true, "auth_required": true}))
    );
    let set = x.header("Set-Cookie").unwrap().to_string();
    assert!(set.starts_with("claude_bridge_session="), "{set}");
    for part in ["HttpOnly", "Max-Age=120", "Path=/", "SameSite=Strict"] {
        assert!(set.contains(part), "{part} missing: {set}");
    }
    assert!(!set.contains("Secure"));
    let value = cookie_of(&set);
    assert!(value.len() > "claude_bridge_session=".len() + 40);
    let cookie = ("Cookie", value.as_str());
    // The cookie authenticates API calls and GET /api/session.
    assert_eq!(r.get_with("/api/state", &[cookie]).status, 200);
    assert_eq!(
        r.get_with("/api/session", &[cookie]).json(),
        json!({"authenticated": true, "auth_required": true})
    );
    assert_eq!(
        r.get_with("/api/state", &[("Cookie", "claude_bridge_session=forged")])
            .status,
        401
    );
    // A cookie cannot mint a session; a wrong bearer is refused even with a valid cookie.
    assert_eq!(
        r.request("POST", "/api/session", &[cookie], None).status,
        401
    );
    assert_eq!(
        r.get_with("/api/state", &[cookie, ("Authorization", "Bearer wrong")])
            .status,
        401
    );
    // POST with a cookie along replaces that session.
    let x = r.request("POST", "/api/session", &[bearer, cookie], None);
    let second = cookie_of(x.header("Set-Cookie").unwrap());
    assert_eq!(
        r.get_with("/api/state", &[cookie]).status,
        401,
        "the old session was revoked"
    );
    assert_eq!(
        r.get_with("/api/state", &[("Cookie", second.as_str())])
            .status,
        200
    );
    // DELETE needs nothing, revokes, and clears the cookie.
    let x = r.request(
        "DELETE",
        "/api/session",
        &[("Cookie", second.as_str())],
        None,
    );
    assert_eq!(
        (x.status, x.json()),
        (200, json!({"authenticated": false, "auth_required": true}))
    );
    let clear = x.header("Set-Cookie").unwrap();
    assert!(
        clear.contains("Max-Age=0")
            && clear.contains("Path=/")
            && clear.contains("SameSite=Strict")
    );
    assert_eq!(
        r.get_with("/api/state", &[("Cookie", second.as_str())])
            .status,
        401
    );
    assert_eq!(r.request("DELETE", "/api/session", &[], None).status, 200);
    // Behind a TLS-terminating proxy the cookie is Secure.
    let x = r.request(
        "POST",
        "/api/session",
        &[bearer, ("X-Forwarded-Proto", "https")],
        None,
    );
    assert!(x.header("Set-Cookie").unwrap().contains("; Secure"));
    assert_eq!(
        r.request(
            "PUT",
            "/api/session",
            &[bearer, ("Content-Type", "application/json")],
            Some(b"{}")
        )
        .status,
        405
    );
}

#[test]
fn without_a_token_no_cookie_is_set() {
    let r = Relay::start(&[], &[]);
    let x = r.request("POST", "/api/session", &[], None);
    assert_eq!(
        (x.status, x.json()),
        (200, json!({"authenticated": true, "auth_required": false}))
    );
    assert!(x.header("Set-Cookie").is_none());
    assert_eq!(
        r.get("/api/session").json(),
        json!({"authenticated": true, "auth_required": false})
    );
    let d = r.request("DELETE", "/api/session", &[], None);
    assert_eq!(
        d.json(),
        json!({"authenticated": false, "auth_required": false})
    );
}
