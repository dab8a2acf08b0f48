//! The request pipeline's policies (`http-api.md` §2): Host allow-list, Origin check, CORS,
//! security headers, media type, authentication.

use crate::support::{raw, Relay};
use serde_json::json;

const SEND: &[u8] = br#"{"channel":"c","sender":"s","content":"x"}"#;

#[test]
fn host_allow_list() {
    let r = Relay::start(
        &[
            "--trusted-host",
            "relay.lan:9000",
            "--trusted-host",
            "*.example.com",
            "--trusted-host",
            "fd00::1",
        ],
        &[],
    );
    let host = |h: &str| {
        r.send(&format!(
            "GET /status HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n"
        ))
    };
    for ok in [
        "localhost",
        "LOCALHOST:1",
        "127.0.0.1:8765",
        "[::1]:5",
        "relay.lan",
        "Relay.Lan:80",
        "a.example.com",
        "x.y.example.com",
        "[fd00::1]",
    ] {
        assert_eq!(host(ok).status, 200, "{ok}");
    }
    for bad in [
        "evil.com",
        "example.com",
        "127.0.0.2",
        "relay.lan.evil.com",
        "a b",
        "[::1",
    ] {
        let x = host(bad);
        assert_eq!(
            (x.status, x.json()),
            (400, json!({"error": "invalid host header"})),
            "{bad}"
        );
    }
    // A bad host is refused even on /status and even for the API with a valid body.
    let x = r.request(
        "POST",
        "/api/send",
        &[("Host", "evil.com"), ("Content-Type", "application/json")],
        Some(SEND),
    );
    assert_eq!(x.status, 400);
    let dup = r.send(
        "GET /status HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        (dup.status, dup.json()),
        (400, json!({"error": "duplicate host header"}))
    );
    let none = r.send("GET /status HTTP/1.0\r\n\r\n");
    assert_eq!(none.status, 400);
}

#[test]
fn origin_check_on_mutations() {
    let r = Relay::start(&["--cors-origin", "https://app.example/"], &[]);
    let port = r.addr.port();
    let host = format!("127.0.0.1:{port}");
    let post = |origin: &str| {
        r.request(
            "POST",
            "/api/send",
            &[
                ("Host", &host),
                ("Origin", origin),
                ("Content-Type", "application/json"),
            ],
            Some(SEND),
        )
    };
    assert_eq!(post(&format!("http://127.0.0.1:{port}")).status, 200);
    assert_eq!(post("https://app.example").status, 200);
    for bad in [
        "null".to_string(),
        format!("http://127.0.0.1:{}", port + 1),
        "http://localhost".into(),
        format!("https://127.0.0.1:{port}"),
        "http://evil.com".into(),
    ] {
        let x = post(&bad);
        assert_eq!(
            (x.status, x.json()),
            (403, json!({"error": "origin not allowed"})),
            "{bad}"
        );
    }
    // GETs are not origin-checked.
    let g = r.get_with("/api/state", &[("Origin", "http://evil.com")]);
    assert_eq!(g.status, 200);
    assert!(g.header("Access-Control-Allow-Origin").is_none());
    // Two Origin headers.
    let two = r.send(&format!(
        "POST /api/send HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        SEND.len(), std::str::from_utf8(SEND).unwrap()
    ));
    assert_eq!(
        (two.status, two.json()),
        (400, json!({"error": "duplicate origin header"}))
    );
    // A cross-site "simple" POST (text/plain) is refused before it is read.
    let csrf = r.request(
        "POST",
        "/api/send",
        &[("Content-Type", "text/plain")],
        Some(SEND),
    );
    assert_eq!(
        (csrf.status, csrf.json()),
        (
            415,
            json!({"error": "content-type must be application/json"})
        )
    );
    let put = r.request("PUT", "/api/send", &[], Some(SEND));
    assert_eq!(put.status, 415);
}

#[test]
fn cors_preflight_and_actual_requests() {
    let r = Relay::start(&["--cors-origin", "https://app.example"], &[]);
    let pre = |origin: &str| {
        r.request(
            "OPTIONS",
            "/api/send",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
            ],
            None,
        )
    };
    let ok = pre("https://app.example");
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("Access-Control-Allow-Origin"),
        Some("https://app.example")
    );
    assert_eq!(ok.header("Access-Control-Allow-Credentials"), Some("true"));
    assert_eq!(
        ok.header("Access-Control-Allow-Methods"),
        Some("GET, POST, DELETE, OPTIONS")
    );
    assert_eq!(ok.header("Access-Control-Max-Age"), Some("600"));
    let allowed = ok
        .header("Access-Control-Allow-Headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "content-type",
        "last-event-id",
        "mcp-session-id",
        "mcp-protocol-version",
    ] {
        assert!(allowed.contains(h), "{h}");
    }
    let bad = pre("https://evil.example");
    assert_eq!(bad.status, 400);
    assert!(bad.header("Access-Control-Allow-Origin").is_none());
    assert_eq!(bad.json(), json!({"error": "disallowed CORS origin"}));
    let actual = r.get_with("/api/state", &[("Origin", "https://app.example")]);
    assert_eq!(
        actual.header("Access-Control-Allow-Origin"),
        Some("https://app.example")
    );
    assert_eq!(
        actual.header("Access-Control-Expose-Headers"),
        Some("Mcp-Session-Id")
    );
    // Default: no cross origin at all, not even other localhost ports.
    let d = Relay::start(&[], &[]);
    let x = d.request(
        "OPTIONS",
        "/api/send",
        &[
            ("Origin", "http://localhost:3000"),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    );
    assert_eq!(x.status, 400);
}

#[test]
fn security_headers_on_every_response() {
    let r = Relay::start(&[], &[]);
    let responses = [
        r.get("/status"),
        r.get("/"),
        r.get("/nope"),
        r.post_raw("/api/send", b"junk"),
        r.get_with("/status", &[("Host", "evil.com")]),
    ];
    for x in &responses {
        assert_eq!(x.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(x.header("X-Frame-Options"), Some("DENY"));
        assert_eq!(x.header("Referrer-Policy"), Some("no-referrer"));
        assert_eq!(
            x.header("Permissions-Policy"),
            Some("camera=(), microphone=(), geolocation=(), payment=()")
        );
        assert!(x
            .header("Content-Security-Policy")
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert_eq!(x.header("Vary"), Some("Origin"));
        assert!(x.header("Strict-Transport-Security").is_none());
    }
    let https = r.get_with("/status", &[("X-Forwarded-Proto", "https, http")]);
    assert_eq!(
        https.header("Strict-Transport-Security"),
        Some("max-age=31536000; includeSubDomains")
    );
}

#[test]
fn bearer_auth() {
    let r = Relay::start(&["--auth-token", "s3cret-token"], &[]);
    let with = |auth: &str| r.get_with("/api/state", &[("Authorization", auth)]);
    assert_eq!(with("Bearer s3cret-token").status, 200);
    assert_eq!(with("bearer s3cret-token").status, 200);
    assert_eq!(with("BEARER s3cret-token").status, 200);
    for bad in [
        "Bearer wrong",
        "Basic s3cret-token",
        "s3cret-token",
        "Bearer",
        "Bearer  s3cret-token",
        "Bearer s3cret-token2",
        "Token s3cret-token",
    ] {
        let x = with(bad);
        assert_eq!(
            (x.status, x.json()),
            (401, json!({"error": "unauthorized"})),
            "{bad}"
        );
        assert!(x.header("WWW-Authenticate").is_none());
    }
    let none = r.get("/api/state");
    assert_eq!(none.status, 401);
    assert_eq!(r.get("/api/state?token=s3cret-token").status, 401);
    // Public paths.
    assert_eq!(r.get("/status").status, 200);
    assert_eq!(r.get("/").status, 200);
    // Auth runs before routing and before the body limit.
    assert_eq!(r.get("/api/nope").status, 401);
    assert_eq!(r.get("/nope").status, 404);
    let big = vec![b'x'; 300_000];
    assert_eq!(
        r.request(
            "POST",
            "/api/send",
            &[("Content-Type", "application/json")],
            Some(&big)
        )
        .status,
        401
    );
    for p in ["/sse", "/mcp", "/messages/", "/events/channel/x"] {
        assert_eq!(r.get(p).status, 401, "{p}");
    }
    let ok = r.request(
        "POST",
        "/api/send",
        &[
            ("Authorization", "Bearer s3cret-token"),
            ("Content-Type", "application/json"),
        ],
        Some(SEND),
    );
    assert_eq!(ok.status, 200);
    // The token never shows in the banner or logs.
    assert!(!r.banner().contains("s3cret-token"));
    assert!(!r.stderr().contains("s3cret-token"));
}

#[test]
fn no_token_refuses_proxied_and_remote_peers() {
    let r = Relay::start(&[], &[]);
    for h in ["X-Forwarded-For", "X-Real-IP", "Forwarded"] {
        let x = r.get_with("/api/state", &[(h, "203.0.113.9")]);
        assert_eq!(
            (x.status, x.json()),
            (
                403,
                json!({"error": "unauthenticated network access is disabled"})
            ),
            "{h}"
        );
    }
    // Public paths stay public.
    assert_eq!(
        r.get_with("/status", &[("X-Forwarded-For", "1.2.3.4")])
            .status,
        200
    );
    let open = Relay::start(&["--allow-unauthenticated-network"], &[]);
    assert_eq!(
        open.get_with("/api/state", &[("X-Forwarded-For", "1.2.3.4")])
            .status,
        200
    );
    let env = Relay::start(
        &[],
        &[("CLAUDE_BRIDGE_ALLOW_UNAUTHENTICATED_NETWORK", "true")],
    );
    assert_eq!(
        env.get_with("/api/state", &[("X-Real-IP", "1.2.3.4")])
            .status,
        200
    );
}

#[test]
fn ipv6_loopback_listener() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    }
    let r = Relay::start(&["--host", "::1"], &[]);
    assert!(r.addr.is_ipv6());
    let x = raw(
        r.addr,
        b"GET /status HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n",
        false,
    );
    assert_eq!(x.status, 200);
}
