//! A corpus of malformed requests: never a 5xx, never a hang, the process alive afterwards.

use crate::support::{raw, Relay};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

fn bodies() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"}".to_vec(),
        b"null".to_vec(),
        b"\"str\"".to_vec(),
        b"[]".to_vec(),
        b"\xEF\xBB\xBF{}".to_vec(),
        b"\xff\xfe{\x00}\x00".to_vec(),
        br#"{"channel":"\ud800","sender":"s","content":"x"}"#.to_vec(),
        br#"{"channel":"c","sender":"s","content":"\udfff"}"#.to_vec(),
        br#"{"channel":"c","sender":"s","content":NaN}"#.to_vec(),
        br#"{"channel":"c","sender":"s","content":Infinity}"#.to_vec(),
        br#"{"channel":"c","sender":"s","content":"x","n":1e999}"#.to_vec(),
        br#"{"channel":"c","sender":"s","content":"x","n":123456789012345678901234567890}"#
            .to_vec(),
        b"{\"channel\":\"c\xff\",\"sender\":\"s\",\"content\":\"x\"}".to_vec(),
        br#"{"channel":"c","channel":"d","sender":"s","content":"x"}"#.to_vec(),
        format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes(),
        "[".repeat(100_000).into_bytes(),
        format!("{{\"a\":{}}}", "{\"a\":".repeat(300)).into_bytes(),
    ];
    let values = [
        "null",
        "true",
        "1",
        "-1",
        "1.5",
        "[]",
        "{}",
        "\"\"",
        "\" \"",
        "\"\\u0000\"",
        "\"\\t\"",
        "1e308",
        "[\"x\"]",
    ];
    for field in ["channel", "sender", "content", "message", "idempotency_key"] {
        for val in values {
            let mut obj = serde_json::Map::new();
            obj.insert("channel".into(), "c".into());
            obj.insert("sender".into(), "s".into());
            obj.insert("content".into(), "x".into());
            let mut text = serde_json::Value::Object(obj).to_string();
            text.pop();
            text.push_str(&format!(",\"{field}\":{val}}}"));
            v.push(text.into_bytes());
        }
    }
    for val in values {
        v.push(format!(r#"{{"channel":"c","sender":"s","message":{{"schema_version":{val},"type":{val},"content":{val},"artifacts":{val},"metadata":{val},"created_at":{val}}}}}"#).into_bytes());
        v.push(format!(r#"{{"channel":"c","sender":"s","message":{{"schema_version":1,"type":"t","content":1,"artifacts":[{{"uri":{val},"size_bytes":{val},"sha256":{val}}}]}}}}"#).into_bytes());
    }
    v
}

#[test]
fn malformed_bodies_never_produce_a_5xx() {
    let r = Relay::start(&[], &[]);
    let mut n = 0;
    for path in ["/api/send", "/api/clear"] {
        for body in bodies() {
            let x = r.post_raw(path, &body);
            assert!(
                x.status < 500,
                "{path} {:?} → {} {}",
                String::from_utf8_lossy(&body),
                x.status,
                x.text()
            );
            assert!(x.status == 200 || x.json().get("error").is_some());
            n += 1;
        }
    }
    assert!(n > 100);
    assert_eq!(r.get("/status").status, 200);
}

#[test]
fn malformed_request_lines_paths_and_headers() {
    let mut r = Relay::start(&[], &[]);
    let cases: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\nHost: localhost\r\n\r\n".to_vec(),
        b"GET /api/messages?channel=%ff%fe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /api/messages/%ff HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /api/messages?channel=a&limit=99999999999999999999999999&since_id=%00 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /api/messages?channel=%E2%80%8B%20 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /\xff\xfe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /status HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n".to_vec(),
        b"GET /status HTTP/1.1\r\nHost: \xff\r\nConnection: close\r\n\r\n".to_vec(),
        b"DELETE /api/send HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
        b"BREW /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
        b"POST /api/send HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
        b"POST /api/send HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: teapot\r\nConnection: close\r\n\r\n".to_vec(),
        // Found by the http_request fuzz target: a bad head in another HTTP version was
        // answered `HTTP/2.0 400`.
        b"GET /app.js HTTP/2.0\r\nHost: \n\r\n /app.js HTTP/2.0\r\nH".to_vec(),
        b"GET /status HTTP/0.9\r\nBad Header\r\n\r\n".to_vec(),
        b"GET /status HTTP/3.0\r\nHost: localhost\r\nExpect: teapot\r\n\r\n".to_vec(),
    ];
    for c in &cases {
        let mut s = TcpStream::connect(r.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(c);
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut buf);
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 ") || text.starts_with("HTTP/1.0 "),
            "{:?} → {text}",
            String::from_utf8_lossy(c)
        );
        // Answers tiny_http writes itself (a malformed head) carry the security headers too.
        for h in [
            "X-Content-Type-Options: nosniff",
            "Content-Security-Policy: ",
            "Vary: Origin",
        ] {
            assert!(
                text.is_empty() || text.contains(h),
                "{h} missing: {:?} → {text}",
                String::from_utf8_lossy(c)
            );
        }
        if let Some(code) = text.split(' ').nth(1) {
            let code: u16 = code.parse().unwrap_or(0);
            assert!(
                code < 500 || code == 505,
                "{:?} → {text}",
                String::from_utf8_lossy(c)
            );
        }
    }
    // A header flood: many headers, still an answer.
    let mut flood = b"GET /status HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..2000 {
        flood.extend_from_slice(format!("X-H{i}: {}\r\n", "v".repeat(20)).as_bytes());
    }
    flood.extend_from_slice(b"Connection: close\r\n\r\n");
    let x = raw(r.addr, &flood, false);
    assert!(x.status < 500);
    assert!(r.alive());
    assert_eq!(r.get("/status").status, 200);
}

/// Found by the http_request fuzz target: a request line in HTTP/2.0 or 3.0 was never answered
/// and its connection thread hung for good (tiny_http patch 11).
#[test]
fn a_request_in_another_http_version_gets_505_at_once_and_holds_no_thread() {
    let r = Relay::start(&[], &[]);
    // The baseline: as many HTTP/1.1 connections (the pool keeps idle threads for a while).
    for _ in 0..20 {
        crate::support::raw(
            r.addr,
            b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            false,
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = crate::support::thread_count(r.child.id());
    let requests: [&[u8]; 2] = [
        b"GET /status HTTP/2.0\r\nHost: localhost\r\n\r\n",
        b"POST /api/send HTTP/3.0\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n{\"a\":",
    ];
    for _ in 0..10 {
        for req in requests {
            let mut s = TcpStream::connect(r.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(req).unwrap();
            let started = std::time::Instant::now();
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut s, &mut buf);
            let text = String::from_utf8_lossy(&buf);
            assert!(text.starts_with("HTTP/1.1 505 "), "{text}");
            assert!(text.contains("X-Frame-Options: DENY"), "{text}");
            assert!(started.elapsed() < Duration::from_secs(2));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = crate::support::thread_count(r.child.id());
    assert!(after <= before + 2, "threads {before} -> {after}");
    assert_eq!(r.get("/status").status, 200);
}
