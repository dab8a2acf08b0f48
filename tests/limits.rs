//! Every limit at its edge: content bytes, request body bytes (declared and chunked), identity
//! lengths, body nesting; and the framing errors of `http-api.md` §2.6.

use crate::support::{field_error, raw, Relay};
use serde_json::json;

fn send_content(r: &Relay, content: &str) -> crate::support::Resp {
    r.post(
        "/api/send",
        &json!({"channel":"c","sender":"s","content":content}),
    )
}

#[test]
fn content_of_exactly_131072_bytes_is_accepted_one_more_is_413() {
    let r = Relay::start(&[], &[]);
    // Multi-byte characters: 43690 × 3 bytes + 2 ASCII = 131072.
    let exact = format!("{}ab", "€".repeat(43_690));
    assert_eq!(exact.len(), 131_072);
    let ok = send_content(&r, &exact);
    assert_eq!(ok.status, 200);
    let id = ok.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.get(&format!("/api/messages/{id}")).json()["bytes"],
        131_072
    );
    let over = send_content(&r, &format!("{exact}x"));
    assert_eq!(over.status, 413);
    assert_eq!(
        over.json(),
        json!({"error":"content exceeds 131072 bytes","field":"content","code":"too_large","message":"must be at most 131072 UTF-8 bytes"})
    );
    // An envelope whose canonical form is too big.
    let env = json!({"channel":"c","sender":"s","message":{"schema_version":1,"type":"t","content":"x".repeat(131_072)}});
    let e = r.post("/api/send", &env);
    assert_eq!(e.status, 413);
    assert_eq!(
        e.json()["message"],
        "must encode to at most 131072 UTF-8 bytes"
    );
}

#[test]
fn lowered_message_limit_is_reported() {
    let r = Relay::start(&[], &[("CLAUDE_BRIDGE_MAX_MESSAGE_BYTES", "10")]);
    assert_eq!(send_content(&r, &"x".repeat(10)).status, 200);
    let x = send_content(&r, &"x".repeat(11));
    assert_eq!(
        (x.status, x.json()["error"].as_str()),
        (413, Some("content exceeds 10 bytes"))
    );
}

fn padded_body(total: usize) -> Vec<u8> {
    let core = r#"{"channel":"c","sender":"s","content":"x"}"#;
    let mut b = core.as_bytes().to_vec();
    b.truncate(b.len() - 1);
    b.resize(total - 1, b' ');
    b.push(b'}');
    assert_eq!(b.len(), total);
    b
}

fn chunked(r: &Relay, body: &[u8]) -> crate::support::Resp {
    let mut req = b"POST /api/send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for part in body.chunks(10_000) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    raw(r.addr, &req, false)
}

#[test]
fn request_body_of_256_kib_is_read_one_more_byte_is_413() {
    let r = Relay::start(&[], &[]);
    assert_eq!(r.post_raw("/api/send", &padded_body(262_144)).status, 200);
    let over = r.post_raw("/api/send", &padded_body(262_145));
    assert_eq!(
        (over.status, over.json()),
        (413, json!({"error": "request body too large"}))
    );
    // Chunked: the same edge, counted as it arrives.
    assert_eq!(chunked(&r, &padded_body(262_144)).status, 200);
    let over = chunked(&r, &padded_body(262_145));
    assert_eq!(
        (over.status, over.json()),
        (413, json!({"error": "request body too large"}))
    );
    // The relay is still serving.
    assert_eq!(r.get("/status").status, 200);
}

#[test]
fn lowered_request_limit() {
    let r = Relay::start(&[], &[("CLAUDE_BRIDGE_MAX_REQUEST_BYTES", "1024")]);
    assert_eq!(r.post_raw("/api/send", &padded_body(1024)).status, 200);
    assert_eq!(r.post_raw("/api/send", &padded_body(1025)).status, 413);
    assert_eq!(chunked(&r, &padded_body(1025)).status, 413);
}

#[test]
fn framing_errors() {
    let r = Relay::start(&[], &[]);
    let body = r#"{"channel":"c","sender":"s","content":"x"}"#;
    let send = |extra: &str| {
        r.send(&format!(
            "POST /api/send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}Connection: close\r\n\r\n{body}"
        ))
    };
    let n = body.len();
    let x = send(&format!("Content-Length: {n}\r\nContent-Length: {n}\r\n"));
    assert_eq!(
        (x.status, x.json()["error"].as_str()),
        (400, Some("invalid content-length"))
    );
    let x = send(&format!(
        "Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n"
    ));
    assert_eq!(
        (x.status, x.json()["error"].as_str()),
        (400, Some("ambiguous request framing"))
    );
    let x = send("Content-Length: 12abc\r\n");
    assert_eq!(
        (x.status, x.json()["error"].as_str()),
        (400, Some("invalid content-length"))
    );
    let x = send("Transfer-Encoding: gzip\r\n");
    assert_eq!(x.status, 400);
    // A declared length far beyond the limit is refused without reading.
    let x = r.send("POST /api/send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 99999999999999999999999\r\nConnection: close\r\n\r\n");
    assert_eq!(x.status, 413);
    assert_eq!(r.get("/status").status, 200);
}

#[test]
fn identity_lengths_at_their_edges() {
    let r = Relay::start(&[], &[]);
    let send = |channel: String, sender: String, key: String| {
        r.post(
            "/api/send",
            &json!({"channel":channel,"sender":sender,"content":"x","idempotency_key":key}),
        )
    };
    let ok = send("é".repeat(256), "s".repeat(128), "k".repeat(256));
    assert_eq!(ok.status, 200, "{}", ok.text());
    let e = send("é".repeat(257), "s".into(), "k".into());
    assert_eq!(field_error(&e), ("too_long".into(), "channel".into()));
    assert_eq!(e.json()["message"], "must be at most 256 characters");
    let e = send("c".into(), "s".repeat(129), "k".into());
    assert_eq!(field_error(&e), ("too_long".into(), "sender".into()));
    let e = send("c".into(), "s".into(), "k".repeat(257));
    assert_eq!(
        field_error(&e),
        ("too_long".into(), "idempotency_key".into())
    );
}

#[test]
fn body_nesting_256_parses_257_is_refused() {
    let r = Relay::start(&[], &[]);
    let nest = |n: usize| {
        // {"channel":"c","sender":"s","content":"x","extra":[[...]]} — the object is level 1.
        format!(
            r#"{{"channel":"c","sender":"s","content":"x","extra":{}{}}}"#,
            "[".repeat(n - 1),
            "]".repeat(n - 1)
        )
    };
    assert_eq!(r.post_raw("/api/send", nest(256).as_bytes()).status, 200);
    let x = r.post_raw("/api/send", nest(257).as_bytes());
    assert_eq!(
        (x.status, x.json()),
        (
            400,
            json!({"error": "JSON body must be nested no more than 256 levels"})
        )
    );
    // Envelope content depth: 16 ok, 17 too_deep.
    let deep = |n: usize| {
        let mut v = json!(1);
        for _ in 0..n {
            v = json!([v]);
        }
        json!({"channel":"c","sender":"s","message":{"schema_version":1,"type":"t","content":v}})
    };
    assert_eq!(r.post("/api/send", &deep(16)).status, 200);
    let x = r.post("/api/send", &deep(17));
    assert_eq!(field_error(&x), ("too_deep".into(), "content".into()));
}

#[test]
fn a_huge_declared_length_refused_unread_does_not_kill_the_relay() {
    // tiny_http 0.12.0 drained an unread body into a buffer of the declared size: this request
    // made it try to allocate 100 GB and abort. Refused both before (auth) and at the size
    // check, with the client then closing its side.
    for args in [&[][..], &["--auth-token", "t"][..]] {
        let mut r = Relay::start(args, &[]);
        for declared in ["100000000000", "18000000000000000000"] {
            let x = r.send(&format!(
                "POST /api/send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n{{}}"
            ));
            assert!(x.status == 413 || x.status == 401, "{}", x.status);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(r.alive(), "relay died: {}", r.stderr());
        assert_eq!(r.get("/status").status, 200);
    }
}

#[test]
fn silent_clients_with_declared_bodies_do_not_starve_the_workers() {
    // Each of these is refused (401) before its body is read, and then sends nothing: draining
    // it waits for the read timeout. That must happen off the request workers (16 by default).
    let r = Relay::start(&["--auth-token", "t"], &[]);
    let held: Vec<std::net::TcpStream> = (0..40)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(r.addr).unwrap();
            std::io::Write::write_all(
                &mut s,
                b"POST /api/send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..20 {
        let t = std::time::Instant::now();
        assert_eq!(r.get("/status").status, 200);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }
    drop(held);
}

/// Raise this process's open-file limit to `want` (children inherit it), within the hard limit.
pub fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
        assert!(
            lim.rlim_cur >= want,
            "need {want} open files, the hard limit is {}",
            lim.rlim_max
        );
    }
}

#[test]
fn a_thousand_slow_loris_sockets_neither_slow_status_nor_stay_past_the_head_timeout() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    raise_nofile(4096);
    let r = Relay::start(&[], &[]);
    // Each starts a request and then drips one header line now and then, never finishing.
    let mut loris: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut s = TcpStream::connect(r.addr).unwrap();
            s.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    // /status on a fresh keep-alive connection stays fast meanwhile.
    let mut times = Vec::new();
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut rd = std::io::BufReader::new(s.try_clone().unwrap());
    for i in 0..300 {
        let t = Instant::now();
        write!(s, "GET /status HTTP/1.1\r\nHost: {}\r\n\r\n", r.addr).unwrap();
        let resp = crate::support::read_response(&mut rd, false).unwrap();
        assert_eq!(resp.status, 200);
        times.push(t.elapsed());
        if i % 50 == 0 {
            for l in &mut loris {
                let _ = l.write_all(b"X-Drip: 1\r\n");
            }
        }
    }
    times.sort();
    let p99 = times[times.len() * 99 / 100];
    assert!(
        p99 <= Duration::from_millis(50),
        "/status p99 {p99:?} with 1000 slow clients"
    );
    // Every slow client is cut off (408) once its head has taken 10 s (the bound leaves room for
    // a loaded machine; without the head timeout they would stay until the 30 s read timeout
    // after their last byte, and a connection queued behind another in tiny_http's thread pool
    // was only read, and so cut off, once that one ended: 20 s).
    let mut cut = 0;
    for l in &mut loris {
        l.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut out = Vec::new();
        let _ = l.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        // tiny_http writes the 408 itself; it carries the headers of every response too.
        if text.starts_with("HTTP/1.1 408") && text.contains("X-Content-Type-Options: nosniff") {
            cut += 1;
        }
    }
    let took = started.elapsed();
    assert_eq!(cut, 1000);
    assert!(
        took < Duration::from_secs(15),
        "the slow clients were held {took:?}"
    );
    assert!(r.get("/status").status == 200);
}

#[test]
fn an_endless_head_line_or_too_many_headers_is_a_400() {
    let r = Relay::start(&[], &[]);
    let long = format!(
        "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: {}\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    assert!(raw(r.addr, long.as_bytes(), false).status == 400);
    let endless = format!("GET /{} HTTP/1.1\r\n", "a".repeat(20 * 1024));
    assert!(raw(r.addr, endless.as_bytes(), false).status == 400);
    let many: String = (0..127).map(|i| format!("X-H{i}: v\r\n")).collect();
    let ok = format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}\r\n");
    assert!(raw(r.addr, ok.as_bytes(), false).status == 200);
    let too_many = format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}X-Last: v\r\n\r\n");
    assert!(raw(r.addr, too_many.as_bytes(), false).status == 400);
}

#[test]
fn connections_over_the_cap_get_503_with_retry_after_until_one_closes() {
    use std::io::Read;
    use std::net::TcpStream;
    use std::time::Duration;
    let r = Relay::start(&[], &[("CLAUDE_BRIDGE_MAX_CONNECTIONS", "20")]);
    let held: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(r.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let over = raw(
        r.addr,
        format!("GET /status HTTP/1.1\r\nHost: {}\r\n\r\n", r.addr).as_bytes(),
        false,
    );
    assert_eq!(over.status, 503);
    assert_eq!(over.header("Retry-After"), Some("1"));
    assert_eq!(over.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(over.header("Vary"), Some("Origin"));
    assert!(over.header("Permissions-Policy").is_some());
    assert!(over.json()["error"]
        .as_str()
        .unwrap()
        .contains("too many connections"));
    // A refused client that sent a body still reads the whole refusal (no reset).
    let mut s = TcpStream::connect(r.addr).unwrap();
    std::io::Write::write_all(
        &mut s,
        format!(
            "POST /api/send HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}",
            r.addr
        )
        .as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    assert!(out.ends_with("retry later\"}"), "{out}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(r.get("/status").status, 200);
}
