//! Each flag and environment variable takes effect on the running binary, each precedence row
//! of `cli.md` §3 holds, and bad configuration exits 2 with one clear line.

use crate::support::{run, Relay, TempDir};
use serde_json::json;
use std::sync::Arc;

fn token_status(r: &Relay, token: &str) -> u16 {
    r.get_with(
        "/api/state",
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .status
}

#[test]
fn help_and_version() {
    let d = TempDir::new();
    let h = run(&["--help"], &[], d.path());
    assert_eq!(h.status.code(), Some(0));
    let text = String::from_utf8_lossy(&h.stdout);
    for part in [
        "--db",
        "--auth-token-file",
        "CLAUDE_BRIDGE_DB",
        "--trusted-host",
        "EXAMPLES",
    ] {
        assert!(text.contains(part), "{part}");
    }
    let v = run(&["--version"], &[], d.path());
    assert_eq!(v.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("claude-bridge {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn configuration_errors_exit_2_with_one_line() {
    let d = TempDir::new();
    let empty = d.path().join("empty-token");
    std::fs::write(&empty, "  \n").unwrap();
    let empty = empty.display().to_string();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--host", "192.0.2.1"], vec![], "token"),
        (
            vec!["--host", "0.0.0.0", "--auth-token", "t"],
            vec![],
            "--trusted-host",
        ),
        (vec!["--host", "relay.example"], vec![], "numeric"),
        (vec!["--bogus"], vec![], "--bogus"),
        (vec!["--db"], vec![], "--db"),
        (vec!["--port", "http"], vec![], "--port"),
        (vec!["--retention-days", "-1"], vec![], ">= 0"),
        (vec!["--retention-days", "many"], vec![], "--retention-days"),
        (vec!["--tls-cert", "c.pem"], vec![], "together"),
        (
            vec!["--tls-cert", "/nope/c.pem", "--tls-key", "/nope/k.pem"],
            vec![],
            "/nope/c.pem",
        ),
        (
            vec!["--auth-token-file", "/nonexistent/token"],
            vec![],
            "/nonexistent/token",
        ),
        (vec!["--auth-token-file", &empty], vec![], "empty"),
        (
            vec![],
            vec![("CLAUDE_BRIDGE_MAX_REQUEST_BYTES", "1023")],
            "CLAUDE_BRIDGE_MAX_REQUEST_BYTES",
        ),
        (
            vec![],
            vec![("CLAUDE_BRIDGE_NO_DASHBOARD", "maybe")],
            "CLAUDE_BRIDGE_NO_DASHBOARD",
        ),
        (
            vec![],
            vec![("CLAUDE_BRIDGE_RETENTION_DAYS", "x")],
            "CLAUDE_BRIDGE_RETENTION_DAYS",
        ),
        (
            vec![],
            vec![("CLAUDE_BRIDGE_EVENT_POLL_MS", "5")],
            "CLAUDE_BRIDGE_EVENT_POLL_MS",
        ),
        (
            vec![],
            vec![("CLAUDE_BRIDGE_SYNCHRONOUS", "fast")],
            "CLAUDE_BRIDGE_SYNCHRONOUS",
        ),
    ];
    for (args, env, needle) in cases {
        let o = run(&args, &env, d.path());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}: stdout must stay empty");
        assert!(err.starts_with("error: "), "{err}");
        assert!(
            err.contains(needle),
            "{args:?}: {err:?} should mention {needle}"
        );
        assert!(err.lines().count() <= 2, "{err}");
    }
    // Nothing was created.
    assert!(!d.path().join("claude-bridge.db").exists());
}

#[test]
fn runtime_failures_exit_1() {
    let d = TempDir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = run(&["--port", &port], &[], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: "));
    let o = run(
        &["--port", "0", "--db", "/nonexistent-dir/x.db"],
        &[],
        d.path(),
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn default_db_is_created_in_the_working_directory_with_mode_0600() {
    let dir = Arc::new(TempDir::new());
    let db = dir.path().join("claude-bridge.db");
    let r = Relay::start_raw(
        &["--port".into(), "0".into()],
        &[],
        Arc::clone(&dir),
        db.clone(),
    );
    r.say("c", "s", "x");
    assert!(db.exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&db).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(r.banner().contains(&db.display().to_string()));
}

#[test]
fn db_flag_beats_env() {
    let dir = Arc::new(TempDir::new());
    let flag = dir.path().join("flag.db");
    let env_db = dir.path().join("env.db").display().to_string();
    let r = Relay::start_raw(
        &[
            "--port".into(),
            "0".into(),
            "--db".into(),
            flag.display().to_string(),
        ],
        &[("CLAUDE_BRIDGE_DB", &env_db)],
        Arc::clone(&dir),
        flag.clone(),
    );
    r.say("c", "s", "x");
    assert!(flag.exists());
    assert!(!dir.path().join("env.db").exists());
    drop(r);
    let r = Relay::start_raw(
        &["--port".into(), "0".into()],
        &[("CLAUDE_BRIDGE_DB", &env_db)],
        Arc::clone(&dir),
        flag,
    );
    r.say("c", "s", "x");
    assert!(dir.path().join("env.db").exists());
}

#[test]
fn token_precedence_flag_file_env() {
    let d = TempDir::new();
    let file = d.path().join("token");
    std::fs::write(&file, "\n  tok-file \n").unwrap();
    let f = file.display().to_string();
    let env = [("CLAUDE_BRIDGE_AUTH_TOKEN", "tok-env")];
    let r = Relay::start(&["--auth-token", "tok-flag", "--auth-token-file", &f], &env);
    assert_eq!(token_status(&r, "tok-flag"), 200);
    assert_eq!(token_status(&r, "tok-file"), 401);
    assert_eq!(token_status(&r, "tok-env"), 401);
    assert!(r.banner().contains("--auth-token"));
    let r = Relay::start(&["--auth-token-file", &f], &env);
    assert_eq!(token_status(&r, "tok-file"), 200);
    assert_eq!(token_status(&r, "tok-env"), 401);
    assert!(!r.banner().contains("tok-file"));
    let r = Relay::start(&[], &env);
    assert_eq!(token_status(&r, "tok-env"), 200);
    assert_eq!(r.get("/api/state").status, 401);
    assert!(r.banner().contains("CLAUDE_BRIDGE_AUTH_TOKEN"));
    // An empty env token means no token.
    let r = Relay::start(&[], &[("CLAUDE_BRIDGE_AUTH_TOKEN", "  ")]);
    assert_eq!(r.get("/api/state").status, 200);
}

#[test]
fn cors_and_trusted_host_flag_lists_replace_env_lists() {
    let env = [
        (
            "CLAUDE_BRIDGE_CORS_ORIGIN",
            "https://env.example, https://env2.example",
        ),
        ("CLAUDE_BRIDGE_TRUSTED_HOSTS", "env.lan,,"),
    ];
    let preflight = |r: &Relay, o: &str| {
        r.request(
            "OPTIONS",
            "/api/send",
            &[("Origin", o), ("Access-Control-Request-Method", "POST")],
            None,
        )
        .status
    };
    let host = |r: &Relay, h: &str| r.get_with("/status", &[("Host", h)]).status;
    let r = Relay::start(&[], &env);
    assert_eq!(preflight(&r, "https://env2.example"), 200);
    assert_eq!(host(&r, "env.lan"), 200);
    let r = Relay::start(
        &[
            "--cors-origin",
            "https://flag.example",
            "--trusted-host",
            "flag.lan",
        ],
        &env,
    );
    assert_eq!(preflight(&r, "https://flag.example"), 200);
    assert_eq!(preflight(&r, "https://env.example"), 400);
    assert_eq!(host(&r, "flag.lan"), 200);
    assert_eq!(host(&r, "env.lan"), 400);
}

#[test]
fn switches_from_flag_or_env() {
    let r = Relay::start(&["--retention-days", "3", "--audit-log"], &[]);
    let s = r.get("/api/state").json();
    assert_eq!(
        (s["retention_days"].clone(), s["audit_enabled"].clone()),
        (json!(3), json!(true))
    );
    let b = r.banner();
    assert!(b.contains("3 days"), "{b}");
    assert!(b.contains("/api/audit"), "{b}");
    let r = Relay::start(
        &[],
        &[
            ("CLAUDE_BRIDGE_RETENTION_DAYS", "5"),
            ("CLAUDE_BRIDGE_AUDIT_LOG", "yes"),
            ("CLAUDE_BRIDGE_NO_DASHBOARD", "on"),
        ],
    );
    let s = r.get("/api/state").json();
    assert_eq!(
        (s["retention_days"].clone(), s["audit_enabled"].clone()),
        (json!(5), json!(true))
    );
    assert_eq!(r.get("/").status, 404);
    let r = Relay::start(
        &["--retention-days", "2"],
        &[
            ("CLAUDE_BRIDGE_RETENTION_DAYS", "5"),
            ("CLAUDE_BRIDGE_AUDIT_LOG", "off"),
        ],
    );
    let s = r.get("/api/state").json();
    assert_eq!(
        (s["retention_days"].clone(), s["audit_enabled"].clone()),
        (json!(2), json!(false))
    );
}

#[test]
fn port_flag_and_banner_urls() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = Arc::new(TempDir::new());
    let db = dir.path().join("x.db");
    let r = Relay::start_raw(
        &[
            "--port".into(),
            free.to_string(),
            "--db".into(),
            db.display().to_string(),
        ],
        &[],
        dir,
        db,
    );
    assert_eq!(r.addr.port(), free);
    let b = r.banner();
    for path in ["/mcp", "/sse", "/api/state", "/status"] {
        assert!(
            b.contains(&format!("http://127.0.0.1:{free}{path}")),
            "{path}: {b}"
        );
    }
    assert!(b.contains(&format!("http://127.0.0.1:{free}/")));
    assert!(b.contains("auth       none"));
}

#[test]
fn network_host_with_token_auto_trusts_itself() {
    // 127.0.0.2 is loopback-routable on Linux but not in the default allow-list.
    let r = Relay::start(&["--host", "127.0.0.2", "--auth-token", "t"], &[]);
    assert_eq!(r.get_with("/status", &[("Host", "127.0.0.2")]).status, 200);
}

#[test]
fn sigterm_exits_0() {
    let mut r = Relay::start(&[], &[]);
    r.say("c", "s", "x");
    assert_eq!(r.terminate(), Some(0));
}

#[test]
fn sigterm_finishes_what_is_in_progress_closes_streams_and_exits_0_within_5_s() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let mut r = Relay::start(&[], &[]);
    let raw = |request: &str| {
        let mut s = TcpStream::connect(r.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        s
    };
    let host = r.addr.to_string();
    let mut events = raw(&format!(
        "GET /events/channel/bye HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
    ));
    let mut sse = raw(&format!(
        "GET /sse HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
    ));
    let mut wait = raw(&format!(
        "GET /api/wait?channel=bye&consumer_id=c&timeout_seconds=50 HTTP/1.1\r\nHost: {host}\r\n\r\n"
    ));
    // A send whose body is still arriving when the signal comes.
    let body = json!({"channel":"late","sender":"s","content":"in flight"}).to_string();
    let (first, rest) = body.split_at(10);
    let mut send = raw(&format!(
        "POST /api/send HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    ));
    std::thread::sleep(Duration::from_millis(300));

    let t0 = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &r.child.id().to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        TcpStream::connect(r.addr).is_err(),
        "still accepting after SIGTERM"
    );
    send.write_all(rest.as_bytes()).unwrap();
    let read_all = |s: &mut TcpStream| {
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let sent = read_all(&mut send);
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    let waited = read_all(&mut wait);
    assert!(waited.starts_with("HTTP/1.1 200"), "{waited}");
    assert!(waited.contains("\"timed_out\":true"), "{waited}");
    for (name, s) in [("event stream", &mut events), ("/sse", &mut sse)] {
        let text = read_all(s);
        assert!(text.ends_with("0\r\n\r\n"), "{name} was not closed: {text}");
    }
    let code = loop {
        if let Ok(Some(s)) = r.child.try_wait() {
            break s.code();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "still running after 5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(code, Some(0));
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The log was folded into the database file, which holds the late send.
    let wal = r.db.with_extension("db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "the write-ahead log was not checkpointed");
    let c = rusqlite::Connection::open(&r.db).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE content = 'in flight'",
            [],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}
