//! The task queue (`mcp.md` §4.9–4.13, §5) over `/mcp` and `--stdio`: exactly-one-worker
//! claims, leases and fencing, retries and dead letters, waits, restarts.

use crate::support::{spawn_stdio, Relay};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One MCP session over Streamable HTTP on a keep-alive connection (JSON replies).
struct Mcp {
    conn: BufReader<TcpStream>,
    sid: String,
    next: u64,
}

impl Mcp {
    fn open(r: &Relay) -> Mcp {
        Mcp::open_at(r.addr)
    }

    fn open_at(addr: std::net::SocketAddr) -> Mcp {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(70))).unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut m = Mcp {
            conn: BufReader::new(tcp),
            sid: String::new(),
            next: 1,
        };
        let (head, _) = m.post(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"queue-test","version":"0"}}}));
        m.sid = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("mcp-session-id")
                    .then(|| value.trim().to_owned())
            })
            .expect("session id");
        m.post(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
        m
    }

    fn post(&mut self, msg: &Value) -> (String, Value) {
        let body = msg.to_string();
        let sid = if self.sid.is_empty() {
            String::new()
        } else {
            format!("Mcp-Session-Id: {}\r\n", self.sid)
        };
        // One write: a request split over several segments would wait on delayed ACKs.
        let request = format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json\r\n{sid}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.conn.get_mut().write_all(request.as_bytes()).unwrap();
        let mut head = String::new();
        let mut len = 0;
        loop {
            let mut line = String::new();
            self.conn.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut buf = vec![0; len];
        self.conn.read_exact(&mut buf).unwrap();
        (head, serde_json::from_slice(&buf).unwrap_or(Value::Null))
    }

    /// Call a tool; returns (isError, structuredContent, text).
    fn call(&mut self, tool: &str, args: Value) -> (bool, Value, String) {
        self.next += 1;
        let (_, v) = self.post(&json!({"jsonrpc":"2.0","id":self.next,"method":"tools/call","params":{"name":tool,"arguments":args}}));
        let r = &v["result"];
        (
            r["isError"].as_bool().unwrap_or(true),
            r["structuredContent"].clone(),
            r["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }

    fn ok(&mut self, tool: &str, args: Value) -> Value {
        let (err, v, text) = self.call(tool, args);
        assert!(!err, "{tool} failed: {text}");
        v
    }

    fn err(&mut self, tool: &str, args: Value) -> (String, String) {
        let (err, v, text) = self.call(tool, args);
        assert!(err, "{tool} should have failed: {v}");
        let code = v["code"].as_str().unwrap().to_owned();
        let field = v["field"].as_str().unwrap_or("null").to_owned();
        assert!(
            text.contains(&field) || field == "null",
            "the text names the field: {text}"
        );
        (code, field)
    }
}

fn enqueue(m: &mut Mcp, channel: &str, args: Value) -> String {
    let mut a = args;
    a["channel"] = json!(channel);
    let v = m.ok("bridge_enqueue", a);
    v["task_id"].as_str().unwrap().to_owned()
}

fn claim(m: &mut Mcp, channel: &str, extra: Value) -> Value {
    let mut a = json!({"channel": channel, "consumer": "w"});
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            a[k] = v.clone();
        }
    }
    m.ok("bridge_claim", a)["task"].clone()
}

#[test]
fn eight_workers_complete_a_thousand_tasks_exactly_once_even_when_some_abandon_claims() {
    let r = Relay::start(&[], &[]);
    let mut producer = Mcp::open(&r);
    for i in 0..1000 {
        enqueue(&mut producer, "jobs:bulk", json!({"payload": {"n": i}}));
    }
    let completed: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let abandoned: Arc<Mutex<Vec<String>>> = Arc::default();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (completed, abandoned) = (Arc::clone(&completed), Arc::clone(&abandoned));
            let addr = r.addr;
            std::thread::spawn(move || {
                let mut m = Mcp::open_at(addr);
                let mut claims = 0u32;
                loop {
                    let task = claim(
                        &mut m,
                        "jobs:bulk",
                        json!({"consumer": format!("w{w}"), "lease_seconds": 1, "wait_seconds": 2}),
                    );
                    if task.is_null() {
                        return; // nothing left, even after leases lapsed
                    }
                    claims += 1;
                    let id = task["task_id"].as_str().unwrap().to_owned();
                    if w == 0 && claims.is_multiple_of(10) {
                        // This worker "crashes": it walks away from the claim and its session.
                        abandoned.lock().unwrap().push(id);
                        m = Mcp::open_at(addr);
                        continue;
                    }
                    let done = m.call(
                        "bridge_complete",
                        json!({"channel":"jobs:bulk","task_id":id,"lease_token":task["lease_token"],"result":{"by":w}}),
                    );
                    if !done.0 {
                        *completed.lock().unwrap().entry(id).or_insert(0) += 1;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let completed = completed.lock().unwrap();
    assert_eq!(completed.len(), 1000, "every task completed");
    assert!(completed.values().all(|&n| n == 1), "none completed twice");
    let abandoned = abandoned.lock().unwrap();
    assert!(!abandoned.is_empty());
    let all = producer.ok("bridge_tasks", json!({"channel":"jobs:bulk","limit":500}));
    assert_eq!(
        all["counts"],
        json!({"pending":0,"claimed":0,"completed":1000,"failed":0,"dead":0})
    );
    // Each abandoned task came back after its lease and was completed by someone, later.
    let db = rusqlite::Connection::open(&r.db).unwrap();
    for id in abandoned.iter() {
        let (status, attempts): (String, i64) = db
            .query_row(
                "SELECT status, attempts FROM tasks WHERE id = ?1",
                [id],
                |x| Ok((x.get(0)?, x.get(1)?)),
            )
            .unwrap();
        assert_eq!(status, "completed");
        assert!(attempts >= 2, "{id} was completed on attempt {attempts}");
    }
}

#[test]
fn priority_then_fifo_delay_retry_then_dead_and_immediate_dead() {
    let r = Relay::start(&[], &[]);
    let mut m = Mcp::open(&r);
    let low1 = enqueue(&mut m, "q:order", json!({"content": "low 1"}));
    let high = enqueue(&mut m, "q:order", json!({"content": "high", "priority": 9}));
    let low2 = enqueue(&mut m, "q:order", json!({"content": "low 2"}));
    let later = enqueue(
        &mut m,
        "q:order",
        json!({"content": "later", "priority": 100, "delay_seconds": 1}),
    );
    let order: Vec<String> = (0..3)
        .map(|_| {
            claim(&mut m, "q:order", json!({}))["task_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        order,
        [high, low1, low2],
        "priority first, then enqueue order"
    );
    assert!(
        claim(&mut m, "q:order", json!({})).is_null(),
        "the delayed task is not due yet"
    );
    let t = Instant::now();
    let due = claim(&mut m, "q:order", json!({"wait_seconds": 5}));
    assert_eq!(due["task_id"], later.as_str());
    let waited = t.elapsed();
    assert!(
        waited < Duration::from_millis(1500),
        "a delayed task wakes a waiting claim: {waited:?}"
    );
    assert_eq!(due["payload"], "later");

    // Retry until the attempts are spent, then dead.
    let id = enqueue(
        &mut m,
        "q:retry",
        json!({"payload": {"k": [1, 2]}, "max_attempts": 2}),
    );
    let c1 = claim(&mut m, "q:retry", json!({}));
    assert_eq!(c1["payload"], r#"{"k":[1,2]}"#);
    let (err, v, text) = m.call(
        "bridge_fail",
        json!({"channel":"q:retry","task_id":id,"lease_token":c1["lease_token"],"error":"boom"}),
    );
    assert!(
        !err && v["status"] == "pending" && v["last_error"] == "boom",
        "{v}"
    );
    assert!(text.contains("requeued") && text.contains("1/2"), "{text}");
    let c2 = claim(&mut m, "q:retry", json!({}));
    assert_eq!(c2["attempts"], 2);
    let (_, v, text) = m.call(
        "bridge_fail",
        json!({"channel":"q:retry","task_id":id,"lease_token":c2["lease_token"]}),
    );
    assert_eq!(v["status"], "dead");
    assert_eq!(
        v["last_error"],
        Value::Null,
        "absent error replaces the earlier one"
    );
    assert!(text.contains("dead"), "{text}");
    assert!(claim(&mut m, "q:retry", json!({})).is_null());

    // Retry delay, and requeue:false is dead at once.
    let id = enqueue(
        &mut m,
        "q:delay",
        json!({"content": "x", "max_attempts": 5}),
    );
    let c = claim(&mut m, "q:delay", json!({}));
    let v = m.ok("bridge_fail", json!({"channel":"q:delay","task_id":id,"lease_token":c["lease_token"],"retry_delay_seconds":30}));
    assert!(v["available_at"].as_str().unwrap() > v["updated_at"].as_str().unwrap());
    assert!(
        claim(&mut m, "q:delay", json!({})).is_null(),
        "not before the retry delay"
    );
    let id = enqueue(&mut m, "q:now", json!({"content": "x", "max_attempts": 5}));
    let c = claim(&mut m, "q:now", json!({}));
    let v = m.ok(
        "bridge_fail",
        json!({"channel":"q:now","task_id":id,"lease_token":c["lease_token"],"requeue":false}),
    );
    assert_eq!(v["status"], "dead");
    assert_eq!(v["attempts"], 1);

    // Completing, with and without a result.
    let id = enqueue(&mut m, "q:done", json!({"payload": null}));
    let c = claim(&mut m, "q:done", json!({}));
    assert_eq!(c["payload"], "null", "a null payload is a real payload");
    let v = m.ok("bridge_complete", json!({"channel":"q:done","task_id":id,"lease_token":c["lease_token"],"result":{"ok":true}}));
    assert_eq!(v["status"], "completed");
    assert_eq!(v["result"], r#"{"ok":true}"#);
    assert_eq!(v["lease_owner"], Value::Null);
    let (code, field) = m.err(
        "bridge_complete",
        json!({"channel":"q:done","task_id":id,"lease_token":c["lease_token"]}),
    );
    assert_eq!(
        (code.as_str(), field.as_str()),
        ("lost", "lease_token"),
        "already finished"
    );
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "task_id",
            "channel",
            "status",
            "priority",
            "attempts",
            "max_attempts",
            "available_at",
            "lease_owner",
            "lease_expires_at",
            "result",
            "last_error",
            "idempotency_key",
            "enqueued_by",
            "created_at",
            "updated_at"
        ]
    );

    // bridge_tasks: counts of every status, newest first, filtered.
    let v = m.ok("bridge_tasks", json!({"channel":"q:order"}));
    assert_eq!(
        v["counts"],
        json!({"pending":0,"claimed":4,"completed":0,"failed":0,"dead":0})
    );
    let ids: Vec<&str> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], later, "newest first");
    let v = m.ok("bridge_tasks", json!({"channel":"q:retry","status":"dead"}));
    assert_eq!(v["tasks"].as_array().unwrap().len(), 1);
    let (_, _, text) = m.call("bridge_tasks", json!({"channel":"q:empty"}));
    assert!(text.contains("empty"), "{text}");
}

#[test]
fn leases_expire_and_fence_the_old_holder_out() {
    let r = Relay::start(&[], &[]);
    let mut m = Mcp::open(&r);
    let id = enqueue(
        &mut m,
        "q:lease",
        json!({"content": "job", "max_attempts": 2}),
    );
    let first = claim(
        &mut m,
        "q:lease",
        json!({"consumer": "slow", "lease_seconds": 1}),
    );
    assert_eq!(first["lease_owner"], "slow");
    assert!(claim(&mut m, "q:lease", json!({})).is_null(), "held");
    std::thread::sleep(Duration::from_millis(1100));
    // Until someone reclaims it, the old holder may still finish... but here another worker
    // claims first, and the old token is then lost.
    let second = claim(&mut m, "q:lease", json!({"consumer": "fast"}));
    assert_eq!(second["task_id"], id.as_str());
    assert_eq!(second["attempts"], 2);
    assert_ne!(second["lease_token"], first["lease_token"]);
    let (code, field) = m.err(
        "bridge_complete",
        json!({"channel":"q:lease","task_id":id,"lease_token":first["lease_token"]}),
    );
    assert_eq!((code.as_str(), field.as_str()), ("lost", "lease_token"));
    let (code, _) = m.err(
        "bridge_fail",
        json!({"channel":"q:lease","task_id":id,"lease_token":first["lease_token"]}),
    );
    assert_eq!(code, "lost");
    m.ok(
        "bridge_complete",
        json!({"channel":"q:lease","task_id":id,"lease_token":second["lease_token"]}),
    );

    // A lapsed lease on the last attempt makes the task dead, with a note.
    let id = enqueue(
        &mut m,
        "q:last",
        json!({"content": "job", "max_attempts": 1}),
    );
    let c = claim(&mut m, "q:last", json!({"lease_seconds": 1}));
    std::thread::sleep(Duration::from_millis(1100));
    // The expired holder can still finish while nobody has reclaimed (lazy expiry)...
    let v = m.ok("bridge_tasks", json!({"channel":"q:last"}));
    assert_eq!(v["counts"]["claimed"], 1, "expiry is lazy");
    assert!(claim(&mut m, "q:last", json!({})).is_null());
    let v = m.ok("bridge_tasks", json!({"channel":"q:last","status":"dead"}));
    let t = &v["tasks"][0];
    assert_eq!(t["task_id"], id.as_str());
    assert!(
        t["last_error"].as_str().unwrap().contains("lease expired"),
        "{t}"
    );
    let (code, _) = m.err(
        "bridge_complete",
        json!({"channel":"q:last","task_id":id,"lease_token":c["lease_token"]}),
    );
    assert_eq!(code, "lost");

    // Lease length: default, clamped at the maximum.
    enqueue(&mut m, "q:len", json!({"content": "a"}));
    enqueue(&mut m, "q:len", json!({"content": "b"}));
    let a = claim(&mut m, "q:len", json!({}));
    let b = claim(&mut m, "q:len", json!({"lease_seconds": 99_999_999_999i64}));
    let secs = |t: &Value| {
        let exp = t["lease_expires_at"].as_str().unwrap();
        let upd = t["updated_at"].as_str().unwrap();
        (parse(exp) - parse(upd)) / 1_000_000
    };
    assert_eq!(secs(&a), 300);
    assert_eq!(secs(&b), 3600);
}

fn parse(ts: &str) -> i64 {
    claude_bridge::clock::parse_rfc3339(ts).unwrap()
}

#[test]
fn idempotent_enqueue_and_every_error_case() {
    let r = Relay::start(&[], &[]);
    let mut m = Mcp::open(&r);
    let a = m.ok(
        "bridge_enqueue",
        json!({"channel":"q:idem","content":"one","idempotency_key":"k1","enqueued_by":"orch"}),
    );
    assert_eq!(a["created"], true);
    assert_eq!(a["enqueued_by"], "orch");
    assert!(
        a["task_id"].as_str().unwrap().starts_with("tsk_")
            && a["task_id"].as_str().unwrap().len() == 36
    );
    let (err, b, text) = m.call(
        "bridge_enqueue",
        json!({"channel":"q:idem","content":"another","idempotency_key":"k1"}),
    );
    assert!(!err);
    assert_eq!(b["created"], false);
    assert_eq!(b["task_id"], a["task_id"]);
    assert!(text.contains("deduplicated"), "{text}");
    let other = m.ok(
        "bridge_enqueue",
        json!({"channel":"q:idem2","content":"one","idempotency_key":"k1"}),
    );
    assert_eq!(other["created"], true, "keys are scoped to the channel");

    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "bridge_enqueue",
            json!({"channel":"q"}),
            "exclusive",
            "payload",
        ),
        (
            "bridge_enqueue",
            json!({"channel":"q","payload":1,"content":"x"}),
            "exclusive",
            "payload",
        ),
        (
            "bridge_enqueue",
            json!({"channel":"q","content":"x","priority":-1}),
            "out_of_range",
            "priority",
        ),
        (
            "bridge_enqueue",
            json!({"channel":"q","content":"x","priority":2147483648i64}),
            "out_of_range",
            "priority",
        ),
        (
            "bridge_enqueue",
            json!({"channel":"q","content":"x","priority":1.5}),
            "invalid_type",
            "priority",
        ),
        (
            "bridge_enqueue",
            json!({"channel":"q","content":"x","max_attempts":0}),
            "out_of_range",
            "max_attempts",
        ),
        (
            "bridge_enqueue",
            json!({"channel":"q","content":"x","delay_seconds":1000000001}),
            "out_of_range",
            "delay_seconds",
        ),
        (
            "bridge_enqueue",
            json!({"channel":"q","content":"x","extra":1}),
            "unknown_field",
            "extra",
        ),
        (
            "bridge_enqueue",
            json!({"channel":" q","content":"x"}),
            "surrounding_whitespace",
            "channel",
        ),
        (
            "bridge_enqueue",
            json!({"channel":"q","content":"a\u{0}b"}),
            "nul_byte",
            "payload",
        ),
        (
            "bridge_enqueue",
            json!({"channel":"q","content":"x".repeat(131_073)}),
            "too_large",
            "payload",
        ),
        (
            "bridge_enqueue",
            json!({"channel":"q","content":"x","idempotency_key":"k".repeat(257)}),
            "too_long",
            "idempotency_key",
        ),
        (
            "bridge_claim",
            json!({"channel":"q"}),
            "required",
            "consumer",
        ),
        (
            "bridge_claim",
            json!({"channel":"q","consumer":"w","lease_seconds":0}),
            "out_of_range",
            "lease_seconds",
        ),
        (
            "bridge_claim",
            json!({"channel":"q","consumer":"w","wait_seconds":56}),
            "out_of_range",
            "wait_seconds",
        ),
        (
            "bridge_claim",
            json!({"channel":"q","consumer":"c".repeat(129)}),
            "too_long",
            "consumer",
        ),
        (
            "bridge_complete",
            json!({"channel":"q","task_id":"tsk_nope","lease_token":"t"}),
            "not_found",
            "task_id",
        ),
        (
            "bridge_fail",
            json!({"channel":"q","task_id":"tsk_nope","lease_token":"t"}),
            "not_found",
            "task_id",
        ),
        (
            "bridge_fail",
            json!({"channel":"q","task_id":"x","lease_token":"t","requeue":"yes"}),
            "invalid_type",
            "requeue",
        ),
        (
            "bridge_fail",
            json!({"channel":"q","task_id":"x","lease_token":"t","retry_delay_seconds":-1}),
            "out_of_range",
            "retry_delay_seconds",
        ),
        (
            "bridge_tasks",
            json!({"channel":"q","status":"running"}),
            "invalid_value",
            "status",
        ),
        (
            "bridge_tasks",
            json!({"channel":"q","limit":501}),
            "out_of_range",
            "limit",
        ),
        ("bridge_tasks", json!({}), "required", "channel"),
    ];
    for (tool, args, code, field) in cases {
        let (c, f) = m.err(tool, args.clone());
        assert_eq!((c.as_str(), f.as_str()), (code, field), "{tool} {args}");
    }
    // Edges: exactly 131 072 bytes and depth 128 are fine; one more is not.
    m.ok(
        "bridge_enqueue",
        json!({"channel":"q:edge","content":"x".repeat(131_072)}),
    );
    let mut deep = json!(1);
    for _ in 0..128 {
        deep = json!([deep]);
    }
    m.ok(
        "bridge_enqueue",
        json!({"channel":"q:edge","payload":deep.clone()}),
    );
    let (c, f) = m.err(
        "bridge_enqueue",
        json!({"channel":"q:edge","payload":[deep]}),
    );
    assert_eq!((c.as_str(), f.as_str()), ("too_deep", "payload"));
    // A task of another channel is not found through this one.
    let id = enqueue(&mut m, "q:a", json!({"content":"x"}));
    let c = claim(&mut m, "q:a", json!({}));
    let (code, field) = m.err(
        "bridge_complete",
        json!({"channel":"q:b","task_id":id,"lease_token":c["lease_token"]}),
    );
    assert_eq!((code.as_str(), field.as_str()), ("not_found", "task_id"));
    let (code, _) = m.err(
        "bridge_complete",
        json!({"channel":"q:a","task_id":id,"lease_token":"wrong"}),
    );
    assert_eq!(code, "lost");
    // bridge_clear drops the channel's queue too.
    m.ok("bridge_clear", json!({"channel":"q:a"}));
    let v = m.ok("bridge_tasks", json!({"channel":"q:a"}));
    assert_eq!(v["counts"]["claimed"], 0);
    assert_eq!(v["tasks"], json!([]));
}

#[test]
fn a_waiting_claim_is_woken_by_an_enqueue_here_or_in_another_process_and_survives_sigkill() {
    let place = crate::support::Restartable::new();
    let db = &place.db;
    let r = place.start();
    // Same process.
    let waiter = {
        let addr = r.addr;
        std::thread::spawn(move || {
            let mut m = Mcp::open_at(addr);
            let t = Instant::now();
            let task = claim(&mut m, "q:wake", json!({"wait_seconds": 20}));
            (t.elapsed(), task)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let mut m = Mcp::open(&r);
    enqueue(&mut m, "q:wake", json!({"content": "here"}));
    let (took, task) = waiter.join().unwrap();
    assert_eq!(task["payload"], "here");
    assert!(took < Duration::from_millis(600), "{took:?}");

    // Another process (--stdio on the same db) enqueues: the HTTP waiter wakes within ~100 ms.
    let mut lags = Vec::new();
    let mut stdio = spawn_stdio(db.to_str().unwrap());
    let mut input = stdio.stdin.take().unwrap();
    let mut output = BufReader::new(stdio.stdout.take().unwrap());
    for i in 0..5 {
        let waiter = {
            let addr = r.addr;
            std::thread::spawn(move || {
                let mut m = Mcp::open_at(addr);
                let task = claim(&mut m, "q:cross", json!({"wait_seconds": 20}));
                (Instant::now(), task)
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        let call = json!({"jsonrpc":"2.0","id":i,"method":"tools/call","params":{"name":"bridge_enqueue","arguments":{"channel":"q:cross","content":format!("from stdio {i}")}}});
        writeln!(input, "{call}").unwrap();
        let mut line = String::new();
        output.read_line(&mut line).unwrap();
        let enqueued_at = Instant::now();
        let (woke, task) = waiter.join().unwrap();
        assert_eq!(task["payload"], format!("from stdio {i}"));
        lags.push(woke.saturating_duration_since(enqueued_at));
    }
    drop(input);
    let _ = stdio.wait();
    lags.sort();
    assert!(
        lags[2] <= Duration::from_millis(150),
        "median cross-process wake {:?}",
        lags[2]
    );

    // SIGKILL and restart: every task keeps its state.
    let p = enqueue(
        &mut m,
        "q:keep",
        json!({"content": "pending", "priority": 3}),
    );
    enqueue(&mut m, "q:keep", json!({"content": "claimed"}));
    let c = claim(
        &mut m,
        "q:keep",
        json!({"consumer": "holder", "lease_seconds": 3600}),
    );
    let before = m.ok("bridge_tasks", json!({"channel":"q:keep"}));
    drop(m);
    drop(r); // SIGKILL
    let r = place.start();
    let mut m = Mcp::open(&r);
    let after = m.ok("bridge_tasks", json!({"channel":"q:keep"}));
    assert_eq!(before, after);
    assert_eq!(c["task_id"], p.as_str(), "priority 3 was claimed first");
    m.ok(
        "bridge_complete",
        json!({"channel":"q:keep","task_id":p,"lease_token":c["lease_token"]}),
    );
}

/// `mcp.md` §4: each tool's `inputSchema` is the contract's, apart from the `description` keys.
#[test]
fn every_tool_schema_matches_the_contract() {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.remove("description");
                o.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    // The 13 schemas of the contract (mcp.md §4), copied into the project's own fixtures.
    let want: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/tool-schemas.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let r = Relay::start(&[], &[]);
    let mut m = Mcp::open(&r);
    let (_, list) = m.post(&json!({"jsonrpc":"2.0","id":9,"method":"tools/list"}));
    let tools = list["result"]["tools"].as_array().unwrap();
    // The 13 of the contract keep their schemas; the presence tools extend it (issue 18).
    assert_eq!(tools.len(), 15);
    assert_eq!(want.as_object().unwrap().len(), 13);
    for t in tools {
        let name = t["name"].as_str().unwrap();
        if ["bridge_agents", "bridge_card"].contains(&name) {
            continue;
        }
        let want = want
            .get(name)
            .unwrap_or_else(|| panic!("{name} has no schema in the fixture"));
        let mut got = t["inputSchema"].clone();
        strip(&mut got);
        assert_eq!(&got, want, "{name}");
    }
}
