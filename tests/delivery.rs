//! Durable delivery (`http-api.md` §3.8, `mcp.md` §4.4): consumer cursors that move only
//! forward and survive a crash.

use crate::support::{field_error, Relay, TempDir};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn ack(r: &Relay, body: Value) -> crate::support::Resp {
    r.post("/api/ack", &body)
}

#[test]
fn ack_moves_forward_only_and_replaces_metadata() {
    let r = Relay::start(&[], &[]);
    let ids: Vec<String> = (0..3)
        .map(|i| {
            r.say("demo:a", "s", &format!("m{i}"))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let other = r.say("demo:b", "s", "x")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":ids[1],"metadata":{"note":1}}),
    );
    assert_eq!(first.status, 200, "{}", first.text());
    let v = first.json();
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "consumer_id",
            "channel",
            "last_seq",
            "last_message_id",
            "updated_at",
            "advanced"
        ]
    );
    assert_eq!(
        (&v["last_message_id"], &v["advanced"]),
        (&json!(ids[1]), &json!(true))
    );
    assert_eq!(v["updated_at"].as_str().unwrap().len(), 27);
    // Behind or at the cursor: unchanged, advanced false, not an error.
    let back = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":ids[0]}),
    )
    .json();
    assert_eq!(
        (&back["last_seq"], &back["advanced"]),
        (&v["last_seq"], &json!(false))
    );
    let same = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":ids[1]}),
    )
    .json();
    assert_eq!(same["advanced"], false);
    // Listing with the consumer starts after its cursor and never moves it.
    let page = r.get("/api/messages?channel=demo:a&consumer_id=rc").json();
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["messages"][0]["id"], ids[2]);
    assert_eq!(
        r.get("/api/messages?channel=demo:a&consumer_id=rc").json()["messages"][0]["id"],
        ids[2]
    );
    // Cursors are per channel and per consumer.
    let b = ack(
        &r,
        json!({"channel":"demo:b","consumer_id":"rc","message_id":other}),
    )
    .json();
    assert_eq!(b["advanced"], true);
    let fresh = r
        .get("/api/messages?channel=demo:a&consumer_id=other")
        .json();
    assert_eq!(fresh["messages"].as_array().unwrap().len(), 3);
    // Metadata: replaced when given on an advancing ack, kept otherwise.
    ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":ids[2]}),
    );
    let c = rusqlite::Connection::open(&r.db).unwrap();
    let meta: String = c
        .query_row("SELECT metadata_json FROM bridge_consumer_cursors WHERE consumer_id='rc' AND channel='demo:a'", [], |x| x.get(0))
        .unwrap();
    assert_eq!(meta, r#"{"note":1}"#);
}

#[test]
fn ack_errors() {
    let r = Relay::start(&[], &[]);
    let id = r.say("demo:a", "s", "m")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let nf = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":"nope"}),
    );
    assert_eq!(nf.status, 404);
    assert_eq!(
        nf.json(),
        json!({"error":"message_id does not exist in this channel","field":"message_id","code":"not_found","message":"does not exist in this channel"})
    );
    // A message of another channel is not found in this one.
    let x = ack(
        &r,
        json!({"channel":"demo:b","consumer_id":"rc","message_id":id}),
    );
    assert!(x.status == 404 || x.status == 400, "{}", x.status);
    // Every field is validated before the lookup, in order.
    let x = ack(&r, json!({"consumer_id":"rc","message_id":"nope"}));
    assert_eq!(field_error(&x), ("invalid_type".into(), "channel".into()));
    let x = ack(&r, json!({"channel":"demo:a","message_id":"nope"}));
    assert_eq!(
        field_error(&x),
        ("invalid_type".into(), "consumer_id".into())
    );
    assert_eq!(x.json()["message"], "must be a string");
    let x = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"x".repeat(129),"message_id":"nope"}),
    );
    assert_eq!(field_error(&x), ("too_long".into(), "consumer_id".into()));
    let x = ack(&r, json!({"channel":"demo:a","consumer_id":"rc"}));
    assert_eq!(
        field_error(&x),
        ("invalid_type".into(), "message_id".into())
    );
    let x = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":id,"metadata":[1]}),
    );
    assert_eq!(field_error(&x), ("invalid_type".into(), "metadata".into()));
    let mut deep = json!(1);
    for _ in 0..17 {
        deep = json!([deep]);
    }
    let x = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":id,"metadata":{"d":deep}}),
    );
    assert_eq!(field_error(&x), ("too_deep".into(), "metadata".into()));
    let big = json!({"k": "x".repeat(16_400)});
    let x = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":id,"metadata":big}),
    );
    assert_eq!(field_error(&x), ("too_large".into(), "metadata".into()));
    assert_eq!(
        r.post_raw("/api/ack", b"[]").json(),
        json!({"error":"JSON body must be an object"})
    );
    assert_eq!(r.get("/api/ack").status, 405);
    let plain = r.request(
        "POST",
        "/api/ack",
        &[("Content-Type", "text/plain")],
        Some(b"{}"),
    );
    assert_eq!(plain.status, 415);
}

#[test]
fn a_consumer_resumes_at_message_11_after_a_sigkill() {
    let place = crate::support::Restartable::new();
    let r = place.start();
    let ids: Vec<String> = (1..=20)
        .map(|i| {
            r.say("jobs:in", "producer", &format!("message {i}"))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for id in &ids[..10] {
        assert_eq!(
            ack(
                &r,
                json!({"channel":"jobs:in","consumer_id":"worker","message_id":id})
            )
            .status,
            200
        );
    }
    drop(r); // SIGKILL (Child::kill) and wait
    let r = place.start();
    let page = r
        .get("/api/messages?channel=jobs:in&consumer_id=worker&limit=500")
        .json();
    let got: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["preview"].as_str().unwrap())
        .collect();
    assert_eq!(got.len(), 10);
    assert_eq!(got[0], "message 11");
    assert_eq!(page["messages"][0]["id"], ids[10]);
}

fn wait(r: &Relay, query: &str) -> crate::support::Resp {
    r.get(&format!("/api/wait?{query}"))
}

#[test]
fn wait_answers_at_once_times_out_and_wakes_on_a_send() {
    let r = Relay::start(&[], &[]);
    let a = r.say("w:a", "s", "one")["id"].as_str().unwrap().to_string();
    let b = r.say("w:a", "s", "two")["id"].as_str().unwrap().to_string();
    // Messages after the cursor: at once, six keys, records.
    let x = wait(&r, &format!("channel=w:a&since_id={a}")).json();
    assert_eq!(
        x.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "channel",
            "messages",
            "next_cursor",
            "consumer_id",
            "warning",
            "timed_out"
        ]
    );
    assert_eq!(
        (
            x["messages"][0]["content"].clone(),
            x["next_cursor"].clone(),
            x["timed_out"].clone()
        ),
        (json!("two"), json!(b), json!(false))
    );
    assert_eq!(x["messages"][0]["encoding"], "legacy_text");
    // A stale cursor: at once, with the warning.
    let x = wait(&r, "channel=w:a&since_id=nope&timeout_seconds=30").json();
    assert_eq!(
        (
            x["warning"].clone(),
            x["timed_out"].clone(),
            x["next_cursor"].clone()
        ),
        (json!("since_id_not_found"), json!(false), json!("nope"))
    );
    // Nothing: times out as a normal result.
    let t = std::time::Instant::now();
    let x = wait(&r, &format!("channel=w:a&since_id={b}&timeout_seconds=0.3")).json();
    assert!(t.elapsed() >= std::time::Duration::from_millis(290));
    assert_eq!(
        (x["timed_out"].clone(), x["messages"].clone()),
        (json!(true), json!([]))
    );
    let x = wait(&r, &format!("channel=w:a&since_id={b}&timeout_seconds=0")).json();
    assert_eq!(x["timed_out"], true);
    // A send wakes the waiter.
    let addr = r.addr;
    let b2 = b.clone();
    let waiter = std::thread::spawn(move || {
        let t = std::time::Instant::now();
        let resp = crate::support::raw(
            addr,
            format!("GET /api/wait?channel=w:a&since_id={b2}&timeout_seconds=20 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
            false,
        );
        (t.elapsed(), resp.json())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    r.say("w:a", "s", "three");
    let (took, x) = waiter.join().unwrap();
    assert_eq!(x["messages"][0]["content"], "three");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    // consumer_id as the cursor; waiting never moves it.
    let x = wait(&r, "channel=w:a&consumer_id=c1&timeout_seconds=1").json();
    assert_eq!(
        (
            x["messages"].as_array().unwrap().len(),
            x["consumer_id"].clone()
        ),
        (3, json!("c1"))
    );
    assert_eq!(
        wait(&r, "channel=w:a&consumer_id=c1&limit=1").json()["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn wait_errors() {
    let r = Relay::start(&[], &[]);
    let x = wait(&r, "since_id=x");
    assert_eq!(
        (x.status, x.json()),
        (
            400,
            json!({"error":"channel: must be provided","field":"channel","code":"required","message":"must be provided"})
        )
    );
    let x = wait(&r, "channel=c");
    assert_eq!(
        x.json(),
        json!({"error":"cursor: since_id or consumer_id is required","field":"cursor","code":"required","message":"since_id or consumer_id is required"})
    );
    for q in [
        "limit=abc",
        "timeout_seconds=nan",
        "timeout_seconds=inf",
        "timeout_seconds=x",
        "limit=1.5",
    ] {
        let x = wait(&r, &format!("channel=c&since_id=x&{q}"));
        assert_eq!(
            (x.status, x.json()),
            (
                400,
                json!({"error":"limit and timeout_seconds must be numeric"})
            ),
            "{q}"
        );
    }
    let x = wait(&r, "channel=%20c&since_id=x");
    assert_eq!(
        field_error(&x),
        ("surrounding_whitespace".into(), "channel".into())
    );
    // Clamps: a negative timeout is 0 (answers at once), a huge limit is 500.
    let t = std::time::Instant::now();
    assert_eq!(
        wait(&r, "channel=c&consumer_id=x&timeout_seconds=-5").json()["timed_out"],
        true
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(
        r.request(
            "POST",
            "/api/wait",
            &[("Content-Type", "application/json")],
            Some(b"{}")
        )
        .status,
        405
    );
}

#[test]
fn five_hundred_waits_and_a_steady_stream_of_sends_both_progress() {
    let r = Relay::start(&[], &[]);
    let addr = r.addr;
    // 500 waiters on one channel, each holding its own connection.
    let waiters: Vec<_> = (0..500)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
            std::io::Write::write_all(
                &mut s,
                b"GET /api/wait?channel=many:w&consumer_id=c&timeout_seconds=50 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // Sends to other channels keep flowing (the 16 workers are not held by the waits).
    let t = std::time::Instant::now();
    for i in 0..200 {
        r.say("many:other", "s", &format!("{i}"));
    }
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "sends stalled: {:?}",
        t.elapsed()
    );
    assert_eq!(r.get("/status").status, 200);
    // One send to the waited channel answers all 500.
    r.say("many:w", "s", "wake");
    let mut woken = 0;
    for s in waiters {
        let mut rd = std::io::BufReader::new(s);
        let resp = crate::support::read_response(&mut rd, false).unwrap();
        assert_eq!(resp.status, 200);
        if resp.json()["messages"][0]["content"] == "wake" {
            woken += 1;
        }
    }
    assert_eq!(woken, 500);
}

#[test]
fn three_thousand_waiting_agents_on_keep_alive_connections_hold_no_thread_each() {
    // A fleet: each agent waits on its own channel over a keep-alive connection. Neither the
    // wait (parked) nor the idle connection (parked in tiny_http's epoll set) holds a thread,
    // so the relay's threads settle far below one per agent; then one send per agent wakes
    // exactly its agent, and each connection is reused for the next request.
    use crate::support::thread_count;
    use std::io::Write;
    use std::time::{Duration, Instant};
    const AGENTS: usize = 3000;
    crate::limits::raise_nofile(4096);
    let r = Relay::start(&[], &[]);
    let pid = r.child.id();
    let mut conns: Vec<std::io::BufReader<std::net::TcpStream>> = (0..AGENTS)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(r.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            write!(
                s,
                "GET /api/wait?channel=fleet:a{i}&consumer_id=a{i}&timeout_seconds=50 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            )
            .unwrap();
            std::io::BufReader::new(s)
        })
        .collect();
    let waiters = || -> u64 {
        r.get("/metrics")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("claude_bridge_waiters "))
            .and_then(|n| n.trim().parse().ok())
            .expect("the waiter gauge")
    };
    let t = Instant::now();
    while waiters() < AGENTS as u64 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "waits never all parked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Connection threads that read the heads end after a few idle seconds.
    let t = Instant::now();
    while thread_count(pid) > 200 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let threads = thread_count(pid);
    assert!(
        threads <= 200,
        "{threads} threads for {AGENTS} waiting agents"
    );
    for i in 0..AGENTS {
        r.say(&format!("fleet:a{i}"), "s", &format!("for a{i}"));
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let resp = crate::support::read_response(c, false).unwrap();
        assert_eq!(resp.status, 200);
        let v = resp.json();
        assert_eq!(v["messages"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["messages"][0]["content"], format!("for a{i}"));
    }
    // The same connections carry the next request.
    for c in conns.iter_mut().take(100) {
        c.get_mut()
            .write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        assert_eq!(crate::support::read_response(c, false).unwrap().status, 200);
    }
}

#[test]
fn parked_waits_are_capped_at_the_connection_cap() {
    // A parked wait holds no thread, but a client may pipeline any number over one connection:
    // at most CLAUDE_BRIDGE_MAX_CONNECTIONS are parked at once. Nine waits pipelined on one
    // connection under a cap of 8: eight time out normally, one is refused (503).
    use std::io::Write;
    let r = Relay::start(&[], &[("CLAUDE_BRIDGE_MAX_CONNECTIONS", "8")]);
    let mut s = std::net::TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    for i in 0..9 {
        write!(
            s,
            "GET /api/wait?channel=cap:p&consumer_id=c{i}&timeout_seconds=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .unwrap();
    }
    let mut rd = std::io::BufReader::new(s);
    let statuses: Vec<u16> = (0..9)
        .map(|_| {
            crate::support::read_response(&mut rd, false)
                .unwrap()
                .status
        })
        .collect();
    // Pipelined requests run on the workers side by side, so which one finds the registry
    // full is not fixed; the answers still come in request order.
    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [200, 200, 200, 200, 200, 200, 200, 200, 503],
        "{statuses:?}"
    );
}

#[test]
fn a_long_poll_longer_than_the_idle_timeout_keeps_its_connection() {
    // The connection of a parked wait is parked too; its 30 s idle timeout counts from the end
    // of the wait, not its start: a 31 s wait is answered and the connection serves the next.
    use std::io::Write;
    let r = Relay::start(&[], &[]);
    let mut s = std::net::TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    s.write_all(b"GET /api/wait?channel=long:p&consumer_id=c&timeout_seconds=31 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut rd = std::io::BufReader::new(s);
    let first = crate::support::read_response(&mut rd, false).unwrap();
    assert_eq!(
        (first.status, first.json()["timed_out"].clone()),
        (200, json!(true))
    );
    rd.get_mut()
        .write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    assert_eq!(
        crate::support::read_response(&mut rd, false)
            .unwrap()
            .status,
        200
    );
}

#[test]
fn a_send_by_a_stdio_process_wakes_an_http_waiter_within_100_ms() {
    use std::io::{BufRead, Write};
    let r = Relay::start(&[], &[]);
    let mut child = crate::support::spawn_stdio(&r.db.display().to_string());
    let mut input = child.stdin.take().unwrap();
    let mut output = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut last = r.say("x:proc", "http", "start")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut lags = Vec::new();
    for i in 0..20 {
        let addr = r.addr;
        let since = last.clone();
        let waiter = std::thread::spawn(move || {
            let resp = crate::support::raw(
                addr,
                format!("GET /api/wait?channel=x:proc&since_id={since}&timeout_seconds=10 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
                false,
            );
            (std::time::Instant::now(), resp.json())
        });
        std::thread::sleep(std::time::Duration::from_millis(150));
        let call = json!({"jsonrpc":"2.0","id":i,"method":"tools/call","params":{"name":"bridge_send","arguments":{"channel":"x:proc","sender":"stdio","content":format!("n{i}")}}});
        writeln!(input, "{call}").unwrap();
        let mut line = String::new();
        output.read_line(&mut line).unwrap();
        let sent_at = std::time::Instant::now(); // the send is committed once stdio replies
        let (woke_at, v) = waiter.join().unwrap();
        assert_eq!(v["messages"][0]["content"], format!("n{i}"), "{v}");
        last = v["next_cursor"].as_str().unwrap().to_string();
        lags.push(woke_at.saturating_duration_since(sent_at));
    }
    lags.sort();
    let median = lags[lags.len() / 2];
    assert!(
        median <= std::time::Duration::from_millis(100),
        "median wake lag {median:?}: {lags:?}"
    );
    drop(input);
    let _ = child.wait();
}

#[test]
fn a_send_by_a_stdio_process_wakes_an_http_waiter_without_waiting_for_the_poll() {
    // The relay polls the db every 2 s here; inotify on the write-ahead log must wake it at
    // once, so the median lag of 20 rounds is far below the interval (a poll would make it
    // ~1 s). Each round waits until the waiter is parked (the waiter gauge), not for a time.
    use std::io::{BufRead, Write};
    use std::time::{Duration, Instant};
    let r = Relay::start(&[], &[("CLAUDE_BRIDGE_EVENT_POLL_MS", "2000")]);
    let waiters = || -> u64 {
        r.get("/metrics")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("claude_bridge_waiters "))
            .and_then(|n| n.trim().parse().ok())
            .expect("the waiter gauge")
    };
    let mut child = crate::support::spawn_stdio(&r.db.display().to_string());
    let mut input = child.stdin.take().unwrap();
    let mut output = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lags = Vec::new();
    for i in 0..20 {
        let addr = r.addr;
        let waiter = std::thread::spawn(move || {
            let resp = crate::support::raw(
                addr,
                b"GET /api/wait?channel=x:inotify&consumer_id=c&timeout_seconds=30 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                false,
            );
            (Instant::now(), resp.json())
        });
        let t = Instant::now();
        while waiters() == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the wait never parked"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let call = json!({"jsonrpc":"2.0","id":i,"method":"tools/call","params":{"name":"bridge_send","arguments":{"channel":"x:inotify","sender":"stdio","content":format!("n{i}")}}});
        writeln!(input, "{call}").unwrap();
        let mut line = String::new();
        output.read_line(&mut line).unwrap();
        let sent_at = Instant::now(); // the send is committed once stdio replies
        let (woke_at, v) = waiter.join().unwrap();
        assert_eq!(v["messages"][0]["content"], format!("n{i}"), "{v}");
        let id = v["next_cursor"].as_str().unwrap().to_string();
        let acked = r.post(
            "/api/ack",
            &json!({"channel":"x:inotify","consumer_id":"c","message_id":id}),
        );
        assert_eq!(acked.status, 200);
        lags.push(woke_at.saturating_duration_since(sent_at));
    }
    lags.sort();
    let median = lags[lags.len() / 2];
    assert!(
        median <= Duration::from_millis(200),
        "median wake lag {median:?} with a 2 s poll: {lags:?}"
    );
    drop(input);
    let _ = child.wait();
}

#[test]
fn a_pending_stdio_wait_does_not_block_the_session() {
    use std::io::{BufRead, Write};
    let dir = TempDir::new();
    let db = dir.path().join("s.db").display().to_string();
    let mut child = crate::support::spawn_stdio(&db);
    let mut input = child.stdin.take().unwrap();
    let mut output = std::io::BufReader::new(child.stdout.take().unwrap());
    let wait = json!({"jsonrpc":"2.0","id":"w","method":"tools/call","params":{"name":"bridge_wait","arguments":{"channel":"q:a","consumer_id":"c","timeout_seconds":3}}});
    let ping = json!({"jsonrpc":"2.0","id":"p","method":"ping"});
    writeln!(input, "{wait}\n{ping}").unwrap();
    let mut first = String::new();
    output.read_line(&mut first).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&first).unwrap()["id"],
        "p",
        "ping must not wait behind bridge_wait"
    );
    let mut second = String::new();
    output.read_line(&mut second).unwrap();
    let w: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(
        (
            w["id"].clone(),
            w["result"]["structuredContent"]["timed_out"].clone()
        ),
        (json!("w"), json!(true))
    );
    drop(input);
    assert!(child.wait().unwrap().success());
}

#[test]
fn retention_deletes_old_messages_keys_audit_and_events_but_keeps_the_rest() {
    let dir = Arc::new(TempDir::new());
    let db = dir.path().join("bridge.db");
    let base = vec![
        "--port".to_string(),
        "0".into(),
        "--db".into(),
        db.display().to_string(),
    ];
    {
        let r = Relay::start_raw(&base, &[], Arc::clone(&dir), db.clone());
        r.say("keep:a", "s", "recent");
        r.post(
            "/api/send",
            &json!({"channel":"old:a","sender":"s","content":"old","idempotency_key":"k"}),
        );
    }
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        let old = "2020-01-01T00:00:00.000000Z";
        c.execute(
            "UPDATE messages SET timestamp = ?1 WHERE channel = 'old:a'",
            [old],
        )
        .unwrap();
        c.execute(
            "UPDATE bridge_events SET timestamp = ?1 WHERE channel = 'old:a'",
            [old],
        )
        .unwrap();
        c.execute("INSERT INTO audit (timestamp, event, channel, detail, ip) VALUES (?1, 'channel_create', 'old:a', 'x', NULL)", [old]).unwrap();
        c.execute(
            "INSERT INTO bridge_idempotency (channel, sender, idempotency_key, payload_sha256, state, created_at, expires_at) \
             VALUES ('p', 's', 'stale', ?1, 'pending', ?2, ?2)",
            rusqlite::params!["0".repeat(64), old],
        )
        .unwrap();
    }
    let mut args = base.clone();
    args.extend(["--retention-days".into(), "1".into(), "--audit-log".into()]);
    let r = Relay::start_raw(
        &args,
        &[("CLAUDE_BRIDGE_AUDIT_RETENTION_DAYS", "1")],
        Arc::clone(&dir),
        db.clone(),
    );
    // The sweep logs its message count when the whole pass (keys, audit, outbox) is done.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !r.stderr().contains("deleted 1 message") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(r.stderr().contains("deleted 1 message"), "{}", r.stderr());
    let state = r.get("/api/state").json();
    assert_eq!(state["total_messages"], 1);
    assert_eq!(state["channels"][0]["id"], "keep:a");
    let c = rusqlite::Connection::open(&db).unwrap();
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |x| x.get(0)).unwrap() };
    assert_eq!(
        count("SELECT COUNT(*) FROM bridge_idempotency"),
        0,
        "the old message's key and the stale reservation go"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM audit WHERE channel = 'old:a'"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM bridge_events WHERE channel = 'old:a'"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM bridge_events WHERE channel = 'keep:a'"),
        1
    );
    // seq is never reused after retention.
    let seq = r.say("keep:a", "s", "new")["seq"].as_i64().unwrap();
    assert!(seq > 2);
}

#[test]
fn notifications_cancelled_ends_a_pending_wait_without_a_response() {
    use std::io::{Read, Write};
    let dir = TempDir::new();
    let db = dir.path().join("s.db").display().to_string();
    let mut child = crate::support::spawn_stdio(&db);
    let mut input = child.stdin.take().unwrap();
    let wait = json!({"jsonrpc":"2.0","id":77,"method":"tools/call","params":{"name":"bridge_wait","arguments":{"channel":"c:a","consumer_id":"c","timeout_seconds":30}}});
    let cancel = json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":77,"reason":"user"}});
    let ping = json!({"jsonrpc":"2.0","id":"p","method":"ping"});
    writeln!(input, "{wait}").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    writeln!(input, "{cancel}\n{ping}").unwrap();
    drop(input);
    // End of input waits for in-flight calls: the cancelled wait must end at once, not in 30 s.
    let t = std::time::Instant::now();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    let replies: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), 1, "only the ping is answered: {replies:?}");
    assert_eq!(replies[0]["id"], "p");
}

#[test]
fn deeply_nested_stored_content_is_read_safely_on_small_stack_threads() {
    // Content is text: any client may store 256-deep brackets. Reading it back classifies it,
    // and a waiting read runs on a small-stack thread: the parse must not recurse that deep.
    let r = Relay::start(&[], &[]);
    let first = r.say("deep:a", "s", "first")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let addr = r.addr;
    let waiter = std::thread::spawn(move || {
        crate::support::raw(
            addr,
            format!("GET /api/wait?channel=deep:a&since_id={first}&timeout_seconds=10 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
            false,
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    for depth in [256, 257, 2000] {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(
            r.post(
                "/api/send",
                &json!({"channel":"deep:a","sender":"s","content":deep})
            )
            .status,
            200
        );
    }
    let resp = waiter.join().unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["messages"][0]["sender"], "s");
    let mut r = r;
    assert!(r.alive(), "relay died: {}", r.stderr());
    let all = r.get("/api/messages?channel=deep:a&full=1").json();
    assert_eq!(all["messages"].as_array().unwrap().len(), 4);
}

#[test]
fn a_client_that_leaves_a_long_poll_ends_its_wait_at_once() {
    // A long-poll writes nothing until it ends, so only watching the socket tells that the
    // client has gone: its wait (parked, or on a thread of its own) must end within moments,
    // not at the 50 s timeout. The relay's waiter gauge shows it.
    use std::io::{Read, Write};
    let r = Relay::start(&[], &[]);
    let waiters = || -> u64 {
        r.get("/metrics")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("claude_bridge_waiters "))
            .and_then(|n| n.trim().parse().ok())
            .expect("the waiter gauge")
    };
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
    let sid = r
        .request(
            "POST",
            "/mcp",
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
            ],
            Some(init.as_bytes()),
        )
        .header("Mcp-Session-Id")
        .unwrap()
        .to_string();
    let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"bridge_wait","arguments":{"channel":"gone:b","consumer_id":"c","timeout_seconds":50}}}"#;
    let long_polls = [
        format!(
            "GET /api/wait?channel=gone:a&consumer_id=c&timeout_seconds=50 HTTP/1.1\r\nHost: {}\r\n\r\n",
            r.addr
        ),
        // A JSON-only client: the answer is one body written when the wait ends.
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json\r\nMcp-Session-Id: {sid}\r\nContent-Length: {}\r\n\r\n{call}",
            r.addr,
            call.len()
        ),
    ];
    std::thread::sleep(Duration::from_millis(300));
    let baseline = waiters();
    for request in long_polls {
        let mut s = std::net::TcpStream::connect(r.addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        s.set_nonblocking(true).unwrap();
        assert!(
            s.read(&mut [0u8; 1]).is_err(),
            "still waiting, nothing written yet"
        );
        assert!(waiters() > baseline, "the wait is counted");
        drop(s); // the client leaves
        let t = Instant::now();
        while waiters() > baseline && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{request}: the wait outlived its client by {took:?}"
        );
    }
    // The relay is none the worse: a wait still wakes on a send.
    let waiter = {
        let addr = r.addr;
        std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(s, "GET /api/wait?channel=gone:a&consumer_id=c&timeout_seconds=20 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let sent = r.post(
        "/api/send",
        &json!({"channel":"gone:a","sender":"s","content":"still here"}),
    );
    assert_eq!(sent.status, 200);
    let out = waiter.join().unwrap();
    assert!(out.contains("still here"), "{out}");
}
