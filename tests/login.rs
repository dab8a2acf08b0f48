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

#[test]
fn the_audit_log_records_rejections_and_channel_lifecycle() {
    let r = Relay::start(&["--audit-log", "--auth-token", "tok"], &[]);
    let bearer = ("Authorization", "Bearer tok");
    let send = br#"{"channel":"aud:a","sender":"alice","content":"x"}"#;
    let json_ct = ("Content-Type", "application/json");
    assert_eq!(
        r.request("POST", "/api/send", &[bearer, json_ct], Some(send))
            .status,
        200
    );
    assert_eq!(
        r.request("POST", "/api/send", &[bearer, json_ct], Some(send))
            .status,
        200
    );
    assert_eq!(
        r.request(
            "POST",
            "/api/clear",
            &[bearer, json_ct],
            Some(br#"{"channel":"aud:a"}"#)
        )
        .status,
        200
    );
    assert_eq!(r.get("/api/state").status, 401);
    assert_eq!(
        r.get_with("/status", &[("Host", "evil.example")]).status,
        400
    );
    let big = vec![b' '; 300_000];
    assert_eq!(
        r.request("POST", "/api/send", &[bearer, json_ct], Some(&big))
            .status,
        413
    );
    let v = r.get_with("/api/audit", &[bearer]).json();
    assert_eq!(v["enabled"], true);
    let events = v["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "oversize_reject",
            "policy_reject",
            "auth_failure",
            "channel_clear",
            "channel_create"
        ]
    );
    assert_eq!(
        events[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "timestamp", "event", "channel", "detail", "ip"]
    );
    assert_eq!(
        (
            events[2]["detail"].as_str(),
            events[2]["ip"].as_str(),
            &events[2]["channel"]
        ),
        (
            Some("/api/state"),
            Some("127.0.0.1"),
            &serde_json::Value::Null
        )
    );
    assert_eq!(
        (events[4]["channel"].as_str(), events[4]["ip"].is_null()),
        (Some("aud:a"), true)
    );
    assert!(events[4]["detail"].as_str().unwrap().contains("alice"));
    assert!(events[3]["detail"].as_str().unwrap().contains('2'));
    assert!(events[0]["id"].as_i64() > events[1]["id"].as_i64());
    assert_eq!(
        r.get_with("/api/audit?limit=2", &[bearer]).json()["events"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        r.get_with("/api/audit?limit=abc", &[bearer]).json()["events"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // Off: nothing recorded, nothing shown.
    let off = Relay::start(&[], &[]);
    off.say("c", "s", "x");
    assert_eq!(
        off.get("/api/audit").json(),
        json!({"enabled": false, "events": []})
    );
    let n: i64 = rusqlite::Connection::open(&off.db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM audit", [], |x| x.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn an_event_stream_opened_with_a_cookie_ends_when_the_session_does() {
    use std::io::{BufRead, Write};
    let r = Relay::start(&["--auth-token", "tok"], &[]);
    let x = r.request(
        "POST",
        "/api/session",
        &[("Authorization", "Bearer tok")],
        None,
    );
    let cookie = cookie_of(x.header("Set-Cookie").unwrap());
    let mut s = std::net::TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    write!(
        s,
        "GET /events/channel/sess:a HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n"
    )
    .unwrap();
    let mut rd = std::io::BufReader::new(s);
    let mut line = String::new();
    rd.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    r.request(
        "DELETE",
        "/api/session",
        &[("Cookie", cookie.as_str())],
        None,
    );
    let t = std::time::Instant::now();
    // Read until the final chunk (the stream ended) or the connection closes.
    loop {
        line.clear();
        let n = rd.read_line(&mut line).unwrap_or(0);
        if n == 0 || line == "0\r\n" {
            break;
        }
    }
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}
