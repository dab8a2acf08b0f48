//! A deterministic generated corpus (a fixed-seed generator, so a failure names a case that
//! reproduces): 100,000 JSON-RPC messages, mutated from a valid call of every tool, through the
//! MCP core in process, and 10,000 mutated HTTP requests against the real binary. No panic, no
//! 5xx, no hang; every JSON-RPC answer well formed; the relay alive and sound afterwards.

use crate::support::{run_ok, Relay, TempDir};
use claude_bridge::mcp::{self, era, Session};
use claude_bridge::relay::{Relay as Core, Settings};
use claude_bridge::store::Store;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// xorshift64*: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// Valid calls of every tool: the seeds.
fn seeds() -> Vec<Value> {
    let call = |name: &str, args: Value| json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":args}});
    vec![
        call(
            "bridge_send",
            json!({"channel":"fz:a","sender":"s","content":"hello"}),
        ),
        call(
            "bridge_send",
            json!({"channel":"fz:a","sender":"s","message":{"schema_version":1,"type":"t","content":{"k":[1,2]}},"idempotency_key":"k"}),
        ),
        call("bridge_receive", json!({"channel":"fz:a","limit":5})),
        call(
            "bridge_wait",
            json!({"channel":"fz:a","since_id":"x","timeout_seconds":0}),
        ),
        call(
            "bridge_ack",
            json!({"channel":"fz:a","consumer_id":"c","message_id":"m"}),
        ),
        call("bridge_channels", json!({})),
        call("bridge_ping", json!({})),
        call("bridge_clear", json!({"channel":"fz:b"})),
        call("bridge_status", json!({"per_channel":2})),
        call(
            "bridge_enqueue",
            json!({"channel":"fz:q","payload":{"n":1},"priority":1}),
        ),
        call(
            "bridge_claim",
            json!({"channel":"fz:q","consumer":"w","lease_seconds":5}),
        ),
        call(
            "bridge_complete",
            json!({"channel":"fz:q","task_id":"tsk_x","lease_token":"t"}),
        ),
        call(
            "bridge_fail",
            json!({"channel":"fz:q","task_id":"tsk_x","lease_token":"t","requeue":false}),
        ),
        call("bridge_tasks", json!({"channel":"fz:q","status":"pending"})),
        json!({"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"f","version":"1"}}}),
        json!({"jsonrpc":"2.0","id":3,"method":"tools/list"}),
        json!({"jsonrpc":"2.0","id":4,"method":"ping"}),
        json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}),
    ]
}

/// A value of a random JSON type, sometimes at the edges (huge, deep, long, odd characters).
fn wild(r: &mut Rng) -> Value {
    match r.below(14) {
        0 => Value::Null,
        1 => json!(r.below(2) == 0),
        2 => json!(r.next() as i64),
        3 => json!(-1),
        4 => json!(1e308),
        5 => json!(0.5),
        6 => json!(""),
        7 => json!(" padded "),
        8 => json!("x".repeat(r.below(140_000))),
        9 => json!("tab\there\u{0}nul\u{202e}bidi€"),
        10 => json!([1, "a", null, {"k": []}]),
        11 => {
            let mut v = json!(1);
            for _ in 0..r.below(200) {
                v = json!([v]);
            }
            v
        }
        12 => json!({"type": "x", "schema_version": 1, "content": {}}),
        _ => json!(u64::MAX),
    }
}

/// Mutate a JSON value in place: replace, drop or add a member somewhere in it.
fn mutate(v: &mut Value, r: &mut Rng, depth: usize) {
    match v {
        Value::Object(o) if !o.is_empty() && depth < 4 => {
            let keys: Vec<String> = o.keys().cloned().collect();
            let k = r.pick(&keys).clone();
            match r.below(5) {
                0 => {
                    o.remove(&k);
                }
                1 => {
                    o.insert(k, wild(r));
                }
                2 => {
                    let name = [
                        "extra",
                        "channel",
                        "id",
                        "params",
                        "arguments",
                        "name",
                        "jsonrpc",
                        "method",
                    ];
                    o.insert(r.pick(&name).to_string(), wild(r));
                }
                _ => mutate(o.get_mut(&k).expect("key"), r, depth + 1),
            }
        }
        Value::Array(a) if !a.is_empty() && depth < 4 => {
            let i = r.below(a.len());
            mutate(&mut a[i], r, depth + 1);
        }
        other => *other = wild(r),
    }
}

/// Waits and claims are bounded to stay quick (their waiting has its own tests).
fn keep_quick(v: &mut Value) {
    if let Some(args) = v
        .get_mut("params")
        .and_then(|p| p.get_mut("arguments"))
        .and_then(Value::as_object_mut)
    {
        for k in ["timeout_seconds", "wait_seconds"] {
            if args.get(k).and_then(Value::as_f64).is_some_and(|t| t > 0.0) {
                args.insert(k.into(), json!(0));
            }
        }
    }
}

/// Byte-level damage to a serialized message.
fn damage(text: &str, r: &mut Rng) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    match r.below(5) {
        0 => b.truncate(r.below(b.len() + 1)),
        1 => {
            let i = r.below(b.len());
            b[i] ^= 1 << r.below(8);
        }
        2 => {
            let i = r.below(b.len() + 1);
            let junk: &[&[u8]] = &[
                b"\xff\xfe",
                b"\\ud800",
                b"NaN",
                b"}}}",
                b"\"",
                b"\x00",
                b"[{",
                b",,",
            ];
            b.splice(i..i, r.pick(junk).iter().copied());
        }
        3 => b = format!("[{text},{text}]").into_bytes(),
        _ => b.reverse(),
    }
    b
}

fn well_formed(resp: &Value, case: usize, input: &str) {
    assert_eq!(resp["jsonrpc"], "2.0", "case {case}: {resp}\n{input}");
    let has_result = resp.get("result").is_some();
    let has_error = resp.get("error").is_some();
    assert!(has_result != has_error, "case {case}: {resp}\n{input}");
    if has_error {
        assert!(resp["error"]["code"].is_i64(), "case {case}: {resp}");
        assert!(resp["error"]["message"].is_string(), "case {case}: {resp}");
    }
    if let Some(r) = resp.get("result") {
        if r.get("isError").is_some() {
            assert!(r["content"][0]["text"].is_string(), "case {case}: {resp}");
            if r["isError"] == true {
                let code = r["structuredContent"]["code"].as_str().unwrap_or_default();
                assert_ne!(code, "internal", "case {case}: {resp}\n{input}");
            }
        }
    }
}

#[test]
fn a_hundred_thousand_mutated_jsonrpc_messages_through_the_mcp_core() {
    let dir = TempDir::new();
    let (store, _) = Store::open(&dir.path().join("c.db"), false).unwrap();
    let relay = Core::new(
        store,
        Settings {
            max_message_bytes: 131_072,
            retention_days: 0,
            audit_enabled: true,
            conformance_fixtures: false,
            modern_era: true,
            default_lease_seconds: 300,
            max_lease_seconds: 3600,
            default_max_attempts: 3,
            presence_window: std::time::Duration::from_secs(60),
        },
    );
    let seeds = seeds();
    let mut r = Rng(0x5eed_c0de_2026_1124);
    let started = Instant::now();
    let mut session = Session::default();
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"f","version":"1"}}});
    mcp::handle(&relay, &mut session, &init, &mut |_| {});
    for case in 0..100_000 {
        let mut v = r.pick(&seeds).clone();
        for _ in 0..1 + r.below(3) {
            mutate(&mut v, &mut r, 0);
        }
        keep_quick(&mut v);
        let text = v.to_string();
        // One in four is also damaged at the byte level, as a transport would receive it.
        let msg = if r.below(4) == 0 {
            match claude_bridge::json::parse_body(&damage(&text, &mut r)) {
                Ok(mut m) => {
                    keep_quick(&mut m);
                    m
                }
                Err(_) => continue, // the transports answer -32700 before the core
            }
        } else {
            v
        };
        let t = Instant::now();
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            mcp::handle(&relay, &mut session, &msg, &mut |_| {})
        }));
        let out = out.unwrap_or_else(|_| panic!("case {case} panicked: {msg}"));
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "case {case} took {:?}: {msg}",
            t.elapsed()
        );
        if let Some(resp) = out {
            well_formed(&resp, case, &msg.to_string());
        }
        // One case in four also as a 2026-07-28 request: the era's checks, then its answers.
        if case % 4 == 1 {
            let mut modern = msg.clone();
            if let Some(params) = modern
                .as_object_mut()
                .map(|o| o.entry("params").or_insert_with(|| json!({})))
            {
                if let Some(p) = params.as_object_mut() {
                    p.insert(
                        "_meta".into(),
                        json!({"io.modelcontextprotocol/protocolVersion": era::MODERN,
                               "io.modelcontextprotocol/clientCapabilities": {}}),
                    );
                }
            }
            let t = Instant::now();
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                match era::check(&modern, None) {
                    Err(refusal) => Some(refusal.response),
                    Ok(()) => {
                        let mut copy = Session {
                            modern: true,
                            ..session.clone()
                        };
                        mcp::handle(&relay, &mut copy, &modern, &mut |_| {})
                    }
                }
            }));
            let out = out.unwrap_or_else(|_| panic!("case {case} (2026-07-28) panicked: {modern}"));
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "case {case} (2026-07-28): {modern}"
            );
            if let Some(resp) = out {
                well_formed(&resp, case, &modern.to_string());
            }
        }
    }
    eprintln!("100,000 JSON-RPC cases in {:?}", started.elapsed());
}

#[test]
fn ten_thousand_mutated_http_requests_never_get_a_5xx() {
    let r = Relay::start(&[], &[]);
    let host = r.addr.to_string();
    let bodies = [
        json!({"channel":"fz:h","sender":"s","content":"x"}).to_string(),
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bridge_send","arguments":{"channel":"fz:h","sender":"s","content":"y"}}}).to_string(),
        json!({"channel":"fz:h","consumer_id":"c","message_id":"m"}).to_string(),
    ];
    let lines = [
        "POST /api/send",
        "POST /mcp",
        "POST /api/ack",
        "GET /api/messages?channel=fz:h",
        "GET /api/wait?channel=fz:h&since_id=x&timeout_seconds=0",
        "POST /api/clear",
        "GET /api/state",
        "DELETE /mcp",
        "GET /events/channel/fz%3Ah?since_id=zz",
        "POST /messages/?session_id=nope",
        "OPTIONS /api/send",
        "GET /api/messages/%00",
    ];
    let headers = [
        "Content-Type: application/json",
        "Content-Type: text/plain",
        "Accept: application/json, text/event-stream",
        "Origin: http://evil.example",
        "Transfer-Encoding: chunked",
        "Content-Length: 99999999999",
        "Content-Length: -1",
        "Expect: 100-continue",
        "Mcp-Session-Id: 00",
        "MCP-Protocol-Version: 1999-01-01",
        "Authorization: Bearer x",
        "Host: evil.example",
        "X-Forwarded-For: 10.0.0.1",
        "Cookie: claude_bridge_session=x",
    ];
    let mut g = Rng(0x0b5e_55ed_1234_5678);
    let mut statuses = std::collections::BTreeMap::new();
    for case in 0..10_000 {
        let line = *g.pick(&lines[..]);
        let mut body = g.pick(&bodies).clone().into_bytes();
        if g.below(2) == 0 {
            body = damage(&String::from_utf8_lossy(&body), &mut g);
        }
        let mut req = format!("{line} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for _ in 0..g.below(4) {
            let h: &&str = g.pick(&headers[..]);
            req.push_str(h);
            req.push_str("\r\n");
        }
        if !req.contains("Content-Length") && !req.contains("Transfer-Encoding") {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(&body);
        if g.below(5) == 0 {
            bytes = damage(&String::from_utf8_lossy(&bytes), &mut g);
        }
        let mut s = std::net::TcpStream::connect(r.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        // The status line is enough (event streams never end by themselves); then hang up.
        let mut out = Vec::new();
        let t = Instant::now();
        let mut buf = [0u8; 512];
        while !out.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        assert!(t.elapsed() < Duration::from_secs(12), "case {case} hung");
        let head = String::from_utf8_lossy(&out[..out.len().min(12)]).into_owned();
        let status: u16 = head.get(9..12).and_then(|x| x.parse().ok()).unwrap_or(0);
        // A cap (event subscribers held by earlier cases until their next keep-alive) answers
        // 503 with Retry-After by design; any other 5xx is a bug.
        let text = String::from_utf8_lossy(&out).into_owned();
        let capped = status == 503 && text.contains("Retry-After");
        assert!(
            status < 500 || capped,
            "case {case}: {text}\n{}",
            String::from_utf8_lossy(&bytes)
        );
        *statuses.entry(status).or_insert(0) += 1;
    }
    eprintln!("10,000 HTTP cases, statuses {statuses:?}");
    let mut r = r;
    assert!(r.alive());
    assert_eq!(r.get("/status").status, 200);
}

/// The fuzz targets of `tests/fuzz` (run with `cargo fuzz`, see README) still build against the
/// crate, and each replays its seed inputs, regressions included, without a finding. `.ci/run`
/// builds them before the suite; here they are built when missing.
#[test]
fn the_fuzz_targets_build_and_replay_their_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target/fuzz-check");
    let built = std::process::Command::new("cargo")
        .args([
            "build",
            "--manifest-path",
            "tests/fuzz/Cargo.toml",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(root)
        .status()
        .is_ok_and(|s| s.success());
    assert!(built, "the fuzz targets do not build");
    for name in ["http_request", "json_rpc", "tool_arguments"] {
        let seeds: Vec<_> = std::fs::read_dir(root.join("tests/fuzz/seeds").join(name))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(seeds.len() >= 10, "{name}: {} seeds", seeds.len());
        // Given files rather than a directory, libFuzzer runs each once and exits 0.
        run_ok(
            &format!("fuzz target {name} on its seeds"),
            std::process::Command::new(target.join("debug").join(name)).args(&seeds),
        );
    }
}
