//! The fault suite: the relay killed under load, and storage that fails. Nothing acknowledged is
//! lost or duplicated, and the database stays sound.

use crate::support::Relay;
use std::collections::HashSet;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One send on a keep-alive connection (opened on demand): `Some(status)`, or `None` when the
/// connection failed (the relay was killed mid-request, or is restarting).
fn send_on(
    conn: &mut Option<BufReader<TcpStream>>,
    addr: SocketAddr,
    content: &str,
) -> Option<u16> {
    if conn.is_none() {
        let s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        *conn = Some(BufReader::new(s));
    }
    let rd = conn.as_mut()?;
    let body = format!(r#"{{"channel":"crash","sender":"load","content":"{content}"}}"#);
    let req = format!(
        "POST /api/send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let status = (|| {
        rd.get_mut().write_all(req.as_bytes()).ok()?;
        let resp = crate::support::read_response(rd, false).ok()?;
        Some(resp.status)
    })();
    if status.is_none() {
        *conn = None;
    }
    status
}

/// `kills` SIGKILLs of a relay under continuous sends from four clients; after each, every send
/// that was answered 200 is stored exactly once, `seq` has no duplicates and the database passes
/// `PRAGMA integrity_check`. The suite runs 5; `CLAUDE_BRIDGE_TEST_KILLS=20` runs the full 20.
#[test]
fn sigkill_under_load_loses_and_duplicates_nothing() {
    let kills: usize = std::env::var("CLAUDE_BRIDGE_TEST_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let place = crate::support::Restartable::new();
    let db = &place.db;
    let mut relay = place.start();
    let addr = Arc::new(Mutex::new(relay.addr));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (addr, acked, stop) = (Arc::clone(&addr), Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut conn = None;
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let content = format!("c{c}-{n}");
                    let to = *addr.lock().unwrap();
                    match send_on(&mut conn, to, &content) {
                        Some(200) => acked.lock().unwrap().push(content),
                        Some(other) => panic!("send answered {other}"),
                        None => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        })
        .collect();
    let mut total_checked = 0;
    for round in 0..kills {
        std::thread::sleep(Duration::from_millis(300 + 97 * (round as u64 % 5)));
        drop(relay); // SIGKILL, then wait for the process
        let acked_now: Vec<String> = acked.lock().unwrap().clone();
        check_db(db, &acked_now);
        total_checked = acked_now.len();
        relay = place.start();
        *addr.lock().unwrap() = relay.addr;
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    drop(relay);
    let acked_now: Vec<String> = acked.lock().unwrap().clone();
    check_db(db, &acked_now);
    assert!(
        total_checked > 100 * kills,
        "too little load to mean anything: {total_checked} sends over {kills} kills"
    );
    eprintln!(
        "{kills} kills, {} acknowledged sends checked",
        acked_now.len()
    );
}

/// Every acknowledged content is stored exactly once; seq unique; integrity ok.
fn check_db(db: &std::path::Path, acked: &[String]) {
    let c = rusqlite::Connection::open(db).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let dup_seq: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM (SELECT seq FROM messages GROUP BY seq HAVING COUNT(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dup_seq, 0, "duplicate seq values");
    let mut stmt = c
        .prepare("SELECT content, COUNT(*) FROM messages WHERE channel = 'crash' GROUP BY content")
        .unwrap();
    let stored: std::collections::HashMap<String, i64> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        stored.values().all(|&n| n == 1),
        "a message was stored twice"
    );
    let missing: Vec<&String> = acked.iter().filter(|a| !stored.contains_key(*a)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged sends lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len());
}

/// The token never shows: not in the banner, the logs, or any reply, whatever the request.
#[test]
fn the_token_never_appears_in_banners_logs_or_replies() {
    const TOKEN: &str = "TOKEN-do-not-print-8f3a";
    let r = Relay::start(&["--auth-token", TOKEN, "--audit-log"], &[]);
    let mut bodies = String::new();
    let bearer = format!("Bearer {TOKEN}");
    let wrong = format!("Bearer {TOKEN}x");
    type Request<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Option<String>);
    let requests: Vec<Request> = vec![
        (
            "GET",
            "/api/state",
            vec![("Authorization", wrong.as_str())],
            None,
        ),
        (
            "GET",
            "/api/state",
            vec![("Authorization", bearer.as_str())],
            None,
        ),
        (
            "POST",
            "/api/send",
            vec![
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
            ],
            Some(format!(r#"{{"channel":"{TOKEN}","sender":"s"}}"#)),
        ),
        (
            "POST",
            "/api/send",
            vec![
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
            ],
            Some("{not json".into()),
        ),
        (
            "POST",
            "/api/session",
            vec![("Authorization", bearer.as_str())],
            None,
        ),
        (
            "GET",
            "/mcp",
            vec![("Authorization", bearer.as_str())],
            None,
        ),
        (
            "POST",
            "/mcp",
            vec![
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
            ],
            Some("[]".into()),
        ),
        (
            "GET",
            "/metrics",
            vec![("Authorization", bearer.as_str())],
            None,
        ),
        (
            "GET",
            "/nope",
            vec![("Authorization", bearer.as_str())],
            None,
        ),
        (
            "GET",
            "/status",
            vec![("Authorization", bearer.as_str())],
            None,
        ),
    ];
    for (method, path, headers, body) in &requests {
        let resp = r.request(method, path, headers, body.as_deref().map(str::as_bytes));
        bodies.push_str(&resp.text());
        for (k, v) in &resp.headers {
            bodies.push_str(&format!("{k}: {v}\n"));
        }
    }
    let audit = r.get_with("/api/audit", &[("Authorization", bearer.as_str())]);
    assert_eq!(audit.status, 200);
    bodies.push_str(&audit.text());
    for (what, text) in [
        ("banner", r.banner()),
        ("stderr", r.stderr()),
        ("replies", bodies),
    ] {
        assert!(
            !text.contains(TOKEN),
            "the token leaked into the {what}: {text}"
        );
    }
}

/// `mount`/`umount` as root: directly when the tests run as root, else through `sudo -n`
/// (never prompting). Whether it worked.
fn as_root(program: &str, args: &[&str]) -> bool {
    // SAFETY: getuid has no preconditions.
    let mut cmd = if unsafe { libc::getuid() } == 0 {
        std::process::Command::new(program)
    } else {
        let mut c = std::process::Command::new("sudo");
        c.arg("-n").arg(program);
        c
    };
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A full disk (a 2 MB tmpfs owned by the test's user, mounted as root or through passwordless
/// sudo; skipped, saying so, where neither is possible): sends fail with a clear 503 and
/// nothing else breaks; reads go on; the database stays sound; once there is space again,
/// sends work without a restart.
#[test]
fn a_full_disk_fails_sends_cleanly_keeps_reads_and_recovers() {
    let dir = crate::support::TempDir::new();
    let mnt = dir.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let mnt_s = mnt.to_str().unwrap().to_string();
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let options = format!("size=2m,uid={uid},gid={gid},mode=0700");
    if !as_root("mount", &["-t", "tmpfs", "-o", &options, "tmpfs", &mnt_s]) {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (not root, no passwordless sudo): \
             the full-disk test did not run"
        );
        return;
    }
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            as_root("umount", &["-l", &self.0]);
        }
    }
    let _unmount = Unmount(mnt_s.clone());
    let db = mnt.join("bridge.db");
    let mut r = Relay::start(&["--db", db.to_str().unwrap()], &[]);
    let big = "x".repeat(60_000);
    let mut stored = 0;
    let mut refused = None;
    for i in 0..200 {
        let s = r.post(
            "/api/send",
            &serde_json::json!({"channel":"disk","sender":"s","content":format!("{i}{big}")}),
        );
        match s.status {
            200 => stored += 1,
            other => {
                refused = Some((other, s.json()));
                break;
            }
        }
    }
    let (status, body) = refused.expect("the disk never filled up");
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );
    assert!(stored > 5);
    assert!(r.alive());
    // Reads keep working.
    let page = r.get("/api/messages?channel=disk&limit=500");
    assert_eq!(page.status, 200);
    assert_eq!(page.json()["messages"].as_array().unwrap().len(), stored);
    assert_eq!(r.get("/api/state").status, 200);
    assert_eq!(r.get("/status").status, 200);
    // Space returns: sends work again, and nothing was lost or corrupted.
    assert!(as_root("mount", &["-o", "remount,size=16m", &mnt_s]));
    let again = r.post(
        "/api/send",
        &serde_json::json!({"channel":"disk","sender":"s","content":"after"}),
    );
    assert_eq!(again.status, 200, "{}", again.text());
    let c = rusqlite::Connection::open(&db).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |x| x.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let n: i64 = c
        .query_row("SELECT COUNT(*) FROM messages", [], |x| x.get(0))
        .unwrap();
    assert_eq!(n as usize, stored + 1);
}
