//! Concurrency and failure behaviour: many writers, a db locked by another process, a listener
//! that can no longer accept.

use crate::support::{read_response, Relay};
use rusqlite::Connection;
use serde_json::json;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn sixteen_threads_times_a_thousand_sends_each_stored_once_in_order() {
    let r = Relay::start(&[], &[]);
    let addr = r.addr;
    let threads: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut rd = BufReader::new(s);
                let mut seqs = Vec::with_capacity(1000);
                for i in 0..1000 {
                    let body = json!({"channel": format!("load:{}", t % 4), "sender": format!("t{t}"), "content": format!("{t}-{i}")}).to_string();
                    let req = format!(
                        "POST /api/send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    rd.get_mut().write_all(req.as_bytes()).unwrap();
                    let resp = read_response(&mut rd, false).unwrap();
                    assert_eq!(resp.status, 200, "{}", resp.text());
                    seqs.push(resp.json()["seq"].as_i64().unwrap());
                }
                seqs
            })
        })
        .collect();
    let mut all: Vec<i64> = Vec::new();
    for t in threads {
        let seqs = t.join().unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "seq must increase within a client"
        );
        all.extend(seqs);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 16_000);
    assert_eq!(r.get("/api/state").json()["total_messages"], 16_000);
    let c = Connection::open(&r.db).unwrap();
    let (n, distinct, distinct_content): (i64, i64, i64) = c
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT seq), COUNT(DISTINCT content) FROM messages",
            [],
            |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?)),
        )
        .unwrap();
    assert_eq!((n, distinct, distinct_content), (16_000, 16_000, 16_000));
}

#[test]
fn a_db_locked_by_another_process_answers_503_with_retry_after() {
    let r = Relay::start(&[], &[]);
    r.say("c", "s", "before");
    let c = Connection::open(&r.db).unwrap();
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    let t = Instant::now();
    let x = r.post(
        "/api/send",
        &json!({"channel":"c","sender":"s","content":"blocked"}),
    );
    assert_eq!(x.status, 503, "{}", x.text());
    assert_eq!(x.header("Retry-After"), Some("1"));
    assert_eq!(
        x.json(),
        json!({"error": "bridge database is busy; retry the operation"})
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    // Reads keep working while the writer holds its lock (WAL).
    assert_eq!(r.get("/api/messages?channel=c").status, 200);
    c.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        r.post(
            "/api/send",
            &json!({"channel":"c","sender":"s","content":"after"})
        )
        .status,
        200
    );
    let n: i64 = c
        .query_row("SELECT COUNT(*) FROM messages", [], |x| x.get(0))
        .unwrap();
    assert_eq!(n, 2, "the refused send must not be stored");
}

#[test]
fn the_relay_raises_its_open_file_soft_limit_to_the_hard_limit() {
    // A fleet of agents holds a connection each: a default soft limit of 1024 descriptors would
    // cap a relay near a thousand agents while the hard limit allows more. The relay raises its
    // soft limit to the hard one at start; here 256 → 2048, then 1,000 idle connections are
    // held (four times the old soft limit) and the relay still answers.
    let have_prlimit = std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_prlimit {
        assert!(
            std::env::var_os("CI").is_none(),
            "prlimit (util-linux) is missing"
        );
        eprintln!("prlimit not available; skipping");
        return;
    }
    let r = Relay::start_with_nofile_limits(256, 2048, &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", r.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((fields[3], fields[4]), ("2048", "2048"), "{line}");
    let held: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(r.addr).unwrap())
        .collect();
    let t = Instant::now();
    let mut ok = false;
    while !ok && t.elapsed() < Duration::from_secs(20) {
        ok = r.get("/status").status == 200;
    }
    assert!(ok, "no answer with 1,000 connections held: {}", r.stderr());
    assert!(
        !r.stderr().contains("accept() failed"),
        "ran out of descriptors: {}",
        r.stderr()
    );
    drop(held);
}

#[test]
fn running_out_of_file_descriptors_pauses_service_and_it_comes_back() {
    // With a tiny open-file limit, accept() fails with EMFILE while a flood of idle connections
    // holds every descriptor. Unpatched, tiny_http's accept thread ends on that first error and the
    // relay serves nothing ever again; it must instead keep trying and serve once the flood ends.
    let have_prlimit = std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_prlimit {
        assert!(
            std::env::var_os("CI").is_none(),
            "prlimit (util-linux) is missing"
        );
        eprintln!("prlimit not available; skipping");
        return;
    }
    let mut r = Relay::start_with_nofile(40, &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", r.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(line.split_whitespace().nth(3) == Some("40"), "{line}");

    // Flood: far more idle connections than the relay has descriptors for.
    let mut held = Vec::new();
    for _ in 0..200 {
        if let Ok(s) = TcpStream::connect_timeout(&r.addr, Duration::from_millis(200)) {
            held.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(r.alive(), "the relay died under the flood: {}", r.stderr());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !r.stderr().contains("accept() failed") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(r.stderr().contains("accept() failed"), "{}", r.stderr());

    // The flood ends: service must come back by itself, and stay whole.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    // While descriptors are still short a connection may be accepted and closed at once; that is
    // "not yet", so these probes use raw sockets that tolerate resets.
    let probe = || -> Option<String> {
        let mut s = TcpStream::connect_timeout(&r.addr, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let req = format!(
            "GET /status HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            r.addr
        );
        s.write_all(req.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    };
    let mut answer = None;
    while answer.is_none() && Instant::now() < deadline {
        answer = probe().filter(|a| a.starts_with("HTTP/1.1 200"));
        if answer.is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(
        answer.is_some(),
        "service did not come back: {}",
        r.stderr()
    );
    let sent = r.post(
        "/api/send",
        &json!({"channel":"c","sender":"s","content":"after the flood"}),
    );
    assert_eq!(sent.status, 200);
    assert!(r.alive());
}

#[test]
fn an_idle_relay_keeps_accepting() {
    // Connections inherit a 30 s receive timeout from the listening socket, and Linux applies
    // it to accept() too: an idle listener sees EAGAIN every 30 s, which must not stop it.
    let mut r = Relay::start(&[], &[]);
    std::thread::sleep(Duration::from_secs(33));
    assert!(r.alive(), "relay exited while idle: {}", r.stderr());
    assert_eq!(r.get("/status").status, 200);
}
