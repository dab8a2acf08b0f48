//! Load benchmark (not a test): `cargo bench --bench relay [-- SECONDS]`.
//!
//! Starts the real relay binary on a free loopback port with a fresh db, and a tiny_http
//! "hello world" pool in this process as the ceiling, then drives each with keep-alive clients
//! written with plain std networking. Prints requests/s and latency percentiles per scenario;
//! run it three times and quote the medians (the box is noisy).
//!
//! `cargo bench --bench relay -- compare [SECONDS]` runs the side-by-side comparison with the
//! Python original instead (see `compare.rs`); `-- soak [MINUTES]` the soak run (`soak.rs`);
//! `--features tls -- tls [SECONDS]` HTTPS beside plain HTTP (`tls.rs`); `-- eras [ROUNDS]` the
//! `bridge_send` round trip in the handshake era and in 2026-07-28 side by side (`eras.rs`);
//! `-- wake [N]` an idle Claude Code session woken N times through the relay (`wake.rs`).
//!
//! Scenarios: `POST /api/send` at 1, 10 and 50 clients; `GET /api/messages?since_id=<newest>`
//! (tail read) at 10 clients; the hello-world ceiling at 10 clients.

mod compare;
mod eras;
mod soak;
#[cfg(feature = "tls")]
mod tls;
mod wake;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

struct Relay {
    child: Child,
    dir: std::path::PathBuf,
    addr: SocketAddr,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bench_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cb-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn start_relay(dir: std::path::PathBuf) -> Relay {
    start_relay_with(dir, &[])
}

/// [`start_relay`] with more arguments.
fn start_relay_with(dir: std::path::PathBuf, args: &[&str]) -> Relay {
    let mut child = Command::new(env!("CARGO_BIN_EXE_claude-bridge"))
        .args(["--port", "0", "--db"])
        .arg(dir.join("bench.db"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start relay");
    let mut first = String::new();
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout);
    lines.read_line(&mut first).expect("banner");
    // Keep draining the banner so the relay never blocks on a full pipe.
    thread::spawn(move || for _ in lines.lines() {});
    let url = first.rsplit(' ').next().expect("url").trim();
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .parse()
        .expect("address in banner");
    Relay { child, dir, addr }
}

fn start_ceiling() -> SocketAddr {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
    let addr = server.server_addr().to_ip().expect("ip");
    for _ in 0..16 {
        let s = Arc::clone(&server);
        thread::spawn(move || {
            while let Ok(mut rq) = s.recv() {
                let mut sink = Vec::new();
                let _ = rq.as_reader().read_to_end(&mut sink);
                let h = tiny_http::Header::from_bytes("Content-Type", "application/json")
                    .expect("header");
                let _ =
                    rq.respond(tiny_http::Response::from_string("{\"ok\":true}").with_header(h));
            }
        });
    }
    addr
}

/// One exchange that returns the `Mcp-Session-Id` the server set.
fn exchange_with_session(
    stream: &mut BufReader<TcpStream>,
    request: &[u8],
) -> std::io::Result<String> {
    let mut session = String::new();
    exchange_inner(stream, request, &mut |line| {
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("mcp-session-id:") {
            session = v.trim().to_owned();
        }
    })?;
    Ok(session)
}

/// One keep-alive request/response exchange; returns the body.
fn exchange<S: Read + Write>(
    stream: &mut BufReader<S>,
    request: &[u8],
) -> std::io::Result<Vec<u8>> {
    exchange_inner(stream, request, &mut |_| {})
}

fn exchange_inner<S: Read + Write>(
    stream: &mut BufReader<S>,
    request: &[u8],
    on_header: &mut dyn FnMut(&str),
) -> std::io::Result<Vec<u8>> {
    stream.get_mut().write_all(request)?;
    let mut len = 0usize;
    let mut line = String::new();
    let mut status_ok = false;
    loop {
        line.clear();
        if stream.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line.starts_with("HTTP/1.1 2") {
            status_ok = true;
        }
        on_header(&line);
        let l = line.to_ascii_lowercase();
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body)?;
    if !status_ok {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&body).into_owned(),
        ));
    }
    Ok(body)
}

struct Outcome {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

/// Drive `clients` keep-alive connections for `secs`, each sending what `make` builds.
fn drive(
    addr: SocketAddr,
    clients: usize,
    secs: f64,
    make: impl Fn(usize, usize) -> Vec<u8> + Send + Sync + 'static,
) -> Outcome {
    drive_on(move || tcp(addr), clients, secs, make)
}

/// A loopback connection with Nagle off, as the clients use.
fn tcp(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    tcp
}

/// [`drive`] over connections that `connect` opens (plain TCP, or TLS over it).
fn drive_on<S: Read + Write + 'static>(
    connect: impl Fn() -> S + Send + Sync + 'static,
    clients: usize,
    secs: f64,
    make: impl Fn(usize, usize) -> Vec<u8> + Send + Sync + 'static,
) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let make = Arc::new(make);
    let connect = Arc::new(connect);
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, make, connect) =
                (Arc::clone(&stop), Arc::clone(&make), Arc::clone(&connect));
            thread::spawn(move || {
                let mut s = BufReader::new(connect());
                let (mut lat, mut errors, mut i) = (Vec::new(), 0usize, 0usize);
                while !stop.load(Ordering::Relaxed) {
                    let req = make(c, i);
                    let t = Instant::now();
                    match exchange(&mut s, &req) {
                        Ok(_) => lat.push(t.elapsed().as_micros() as u64),
                        Err(_) => errors += 1,
                    }
                    i += 1;
                }
                (lat, errors)
            })
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut out = Outcome {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for h in handles {
        let (lat, errors) = h.join().expect("client thread");
        out.requests += lat.len();
        out.errors += errors;
        out.latencies_us.extend(lat);
    }
    out.elapsed = start.elapsed();
    out.latencies_us.sort_unstable();
    out
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn report(name: &str, o: &Outcome) -> f64 {
    let rps = o.requests as f64 / o.elapsed.as_secs_f64();
    println!(
        "{name:<38} {rps:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   errors {}",
        pct(&o.latencies_us, 0.5),
        pct(&o.latencies_us, 0.99),
        o.errors
    );
    rps
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn main() {
    // `cargo bench` passes `--bench`; a bare number is the seconds per scenario.
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5.0);
    if std::env::args().any(|a| a == "compare") {
        compare::run(secs);
        return;
    }
    if std::env::args().any(|a| a == "tls") {
        #[cfg(feature = "tls")]
        tls::run(secs);
        #[cfg(not(feature = "tls"))]
        println!(
            "the TLS bench needs the feature: cargo bench --bench relay --features tls -- tls"
        );
        return;
    }
    if std::env::args().any(|a| a == "wake") {
        let rounds = std::env::args()
            .skip(1)
            .find_map(|a| a.parse().ok())
            .unwrap_or(20);
        wake::run(rounds);
        return;
    }
    if std::env::args().any(|a| a == "eras") {
        eras::run(secs as usize);
        return;
    }
    if std::env::args().any(|a| a == "soak") {
        let minutes = std::env::args()
            .skip(1)
            .find_map(|a| a.parse().ok())
            .unwrap_or(30.0);
        soak::run(minutes);
        return;
    }
    let relay = start_relay(bench_dir("main"));
    let ceiling = start_ceiling();
    println!(
        "claude-bridge bench: {secs} s per scenario, relay at {}",
        relay.addr
    );

    let hello = drive(ceiling, 10, secs, |_, _| post("/hello", "{\"x\":1}"));
    let ceiling_rps = report("hello-world tiny_http pool, 10 clients", &hello);

    let mut send10 = 0.0;
    for clients in [1, 10, 50] {
        let o = drive(relay.addr, clients, secs, |c, i| {
            post(
                "/api/send",
                &format!(
                    "{{\"channel\":\"bench:c{}\",\"sender\":\"client-{c}\",\"content\":\"message {i} from a benchmark client\"}}",
                    c % 8
                ),
            )
        });
        let rps = report(&format!("POST /api/send, {clients} clients"), &o);
        if clients == 10 {
            send10 = rps;
        }
    }

    // Tail read: the newest id in a channel, so each read returns an empty page.
    let mut s = BufReader::new(TcpStream::connect(relay.addr).expect("connect"));
    let body = exchange(
        &mut s,
        &post(
            "/api/send",
            "{\"channel\":\"bench:tail\",\"sender\":\"b\",\"content\":\"newest\"}",
        ),
    )
    .expect("send");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let newest = v["id"].as_str().expect("id").to_owned();
    let tail = drive(relay.addr, 10, secs, move |_, _| {
        format!(
            "GET /api/messages?channel=bench:tail&since_id={newest} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .into_bytes()
    });
    report("GET /api/messages tail, 10 clients", &tail);

    // A large keep-alive reply (~42 KB): would stall ~40 ms per reply without TCP_NODELAY.
    for i in 0..90 {
        let body = format!(
            "{{\"channel\":\"bench:big\",\"sender\":\"b\",\"content\":\"{}{i}\"}}",
            "x".repeat(300)
        );
        exchange(&mut s, &post("/api/send", &body)).expect("send");
    }
    let big = drive(relay.addr, 1, secs, |_, _| {
        b"GET /api/messages?channel=bench:big&full=1&limit=90 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            .to_vec()
    });
    report("GET /api/messages 42 KB reply, 1 client", &big);

    println!(
        "send at 10 clients = {:.0}% of the hello-world ceiling",
        100.0 * send10 / ceiling_rps
    );
    mcp_round_trips(&relay);
    wake_latency(&relay);
    queue(&relay, secs);
    drop(relay);
    large_db(secs);
}

fn report_latencies(name: &str, mut lat: Vec<u64>) {
    lat.sort_unstable();
    println!(
        "{name:<38} p50 {:>6.3} ms   p99 {:>6.3} ms   ({} calls)",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.len()
    );
}

fn send_call(id: usize) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"bridge_send\",\"arguments\":{{\"channel\":\"bench:mcp\",\"sender\":\"b\",\"content\":\"call {id}\"}}}}}}"
    )
}

/// `bridge_send` round trips, 1,000 calls each: over legacy SSE (POST to the session, reply read
/// from the event stream) and over a `--stdio` process (one line out, one line back).
fn mcp_round_trips(relay: &Relay) {
    const CALLS: usize = 1000;
    // SSE: one stream, one keep-alive connection for the POSTs.
    let mut stream = BufReader::new(TcpStream::connect(relay.addr).expect("connect"));
    stream
        .get_mut()
        .write_all(b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("write");
    let mut line = String::new();
    let mut path = String::new();
    while path.is_empty() {
        line.clear();
        stream.read_line(&mut line).expect("read");
        if let Some(p) = line.strip_prefix("data: ") {
            path = p.trim().to_owned();
        }
    }
    let mut posts = BufReader::new(TcpStream::connect(relay.addr).expect("connect"));
    let mut lat = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let body = send_call(i);
        let req = post(&path, &body);
        let t = Instant::now();
        exchange(&mut posts, &req).expect("post");
        loop {
            line.clear();
            stream.read_line(&mut line).expect("event");
            if line.starts_with("data: ") {
                break;
            }
        }
        lat.push(t.elapsed().as_micros() as u64);
    }
    report_latencies("bridge_send over /sse", lat);

    // Streamable HTTP: initialize once, then POST calls on one keep-alive connection.

    let init = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"0\"}}}";
    let mut first_results = Vec::new();
    let mut session = String::new();
    for _ in 0..50 {
        // A fresh connection and session each time: initialize, then the first tool result.
        let mut c = BufReader::new(TcpStream::connect(relay.addr).expect("connect"));
        let t = Instant::now();
        session = exchange_with_session(&mut c, &mcp_request(init, None)).expect("initialize");
        exchange(&mut c, &mcp_request(&send_call(0), Some(&session))).expect("first call");
        first_results.push(t.elapsed().as_micros() as u64);
    }
    report_latencies("initialize -> first result (/mcp)", first_results);
    let mut c = BufReader::new(TcpStream::connect(relay.addr).expect("connect"));
    let mut lat = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let req = mcp_request(&send_call(i), Some(&session));
        let t = Instant::now();
        exchange(&mut c, &req).expect("call");
        lat.push(t.elapsed().as_micros() as u64);
    }
    report_latencies("bridge_send over /mcp", lat);

    // stdio: a second process on its own db.
    let dir = bench_dir("stdio");
    let mut child = Command::new(env!("CARGO_BIN_EXE_claude-bridge"))
        .arg("--stdio")
        .arg("--db")
        .arg(dir.join("bench.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start --stdio");
    let mut input = child.stdin.take().expect("stdin");
    let mut output = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lat = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let t = Instant::now();
        writeln!(input, "{}", send_call(i)).expect("write");
        line.clear();
        output.read_line(&mut line).expect("read");
        lat.push(t.elapsed().as_micros() as u64);
    }
    report_latencies("bridge_send over stdio", lat);
    drop(input);
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// Send → woken waiter: a waiter blocks in `/api/wait` (or `bridge_wait` over `/mcp`), the
/// bench sends, and the lag from the send's reply to the waiter's reply is recorded. Then the
/// same with the send made by a separate `--stdio` process on the same db (cross-process).
fn wake_latency(relay: &Relay) {
    const ROUNDS: usize = 200;
    let mut sender = BufReader::new(TcpStream::connect(relay.addr).expect("connect"));
    let send = |s: &mut BufReader<TcpStream>, i: usize| {
        let body = format!("{{\"channel\":\"bench:wake\",\"sender\":\"b\",\"content\":\"w{i}\"}}");
        let v: serde_json::Value =
            serde_json::from_slice(&exchange(s, &post("/api/send", &body)).expect("send"))
                .expect("json");
        v["id"].as_str().expect("id").to_owned()
    };
    let mut last = send(&mut sender, 0);
    let addr = relay.addr;
    let mut measure = |name: &str,
                       request: &dyn Fn(&str) -> Vec<u8>,
                       via_stdio: Option<&mut (
        std::process::ChildStdin,
        BufReader<std::process::ChildStdout>,
    )>| {
        let mut lags = Vec::with_capacity(ROUNDS);
        let mut stdio = via_stdio;
        for i in 0..ROUNDS {
            let req = request(&last);
            let waiter = thread::spawn(move || {
                let mut c = BufReader::new(TcpStream::connect(addr).expect("connect"));
                let body = exchange(&mut c, &req).expect("wait");
                (Instant::now(), body)
            });
            thread::sleep(Duration::from_millis(5));
            let sent_at;
            match stdio.as_mut() {
                None => {
                    last = send(&mut sender, i + 1);
                    sent_at = Instant::now();
                }
                Some((input, output)) => {
                    writeln!(input, "{}", send_call_to("bench:wake", i)).expect("write");
                    let mut line = String::new();
                    output.read_line(&mut line).expect("read");
                    sent_at = Instant::now();
                }
            }
            let (woke_at, body) = waiter.join().expect("waiter");
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let newest = v["next_cursor"]
                .as_str()
                .or_else(|| v["result"]["structuredContent"]["next_cursor"].as_str())
                .unwrap_or(&last)
                .to_owned();
            last = newest;
            lags.push(woke_at.saturating_duration_since(sent_at).as_micros() as u64);
        }
        report_latencies(name, lags);
    };
    measure(
        "send -> woken /api/wait",
        &|since| {
            format!("GET /api/wait?channel=bench:wake&since_id={since}&timeout_seconds=10 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
        },
        None,
    );
    let init = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"0\"}}}";
    let mut c = BufReader::new(TcpStream::connect(relay.addr).expect("connect"));
    let sid = exchange_with_session(&mut c, &mcp_request(init, None)).expect("initialize");
    measure(
        "send -> woken bridge_wait (/mcp)",
        &|since| {
            let call = format!("{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"bridge_wait\",\"arguments\":{{\"channel\":\"bench:wake\",\"since_id\":\"{since}\",\"timeout_seconds\":10}}}}}}");
            let mut r = mcp_request(&call, Some(&sid));
            // JSON only: the reply is one body.
            let text = String::from_utf8_lossy(&r).replace(
                "Accept: application/json, text/event-stream",
                "Accept: application/json",
            );
            r = text.into_bytes();
            r
        },
        None,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_claude-bridge"))
        .arg("--stdio")
        .arg("--db")
        .arg(relay.dir.join("bench.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start --stdio");
    let mut pipes = (
        child.stdin.take().expect("stdin"),
        BufReader::new(child.stdout.take().expect("stdout")),
    );
    measure(
        "send by another process -> woken /api/wait",
        &|since| {
            format!("GET /api/wait?channel=bench:wake&since_id={since}&timeout_seconds=10 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
        },
        Some(&mut pipes),
    );
    drop(pipes);
    let _ = child.wait();

    // The live event stream: one subscriber, from issuing a send to reading its event (the
    // event often arrives before the send's own reply is read, so this includes the send).
    let mut sub = BufReader::new(TcpStream::connect(relay.addr).expect("connect"));
    sub.get_mut()
        .write_all(b"GET /events/channel/bench:events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("subscribe");
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        sub.read_line(&mut line).expect("head");
    }
    let mut lags = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        let body =
            format!("{{\"channel\":\"bench:events\",\"sender\":\"b\",\"content\":\"e{i}\"}}");
        let sent_at = Instant::now();
        exchange(&mut sender, &post("/api/send", &body)).expect("send");
        loop {
            line.clear();
            sub.read_line(&mut line).expect("event");
            if line.starts_with("data: ") {
                break;
            }
        }
        lags.push(
            Instant::now()
                .saturating_duration_since(sent_at)
                .as_micros() as u64,
        );
    }
    report_latencies("send issued -> event (incl. the send)", lags);
}

fn send_call_to(channel: &str, id: usize) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"bridge_send\",\"arguments\":{{\"channel\":\"{channel}\",\"sender\":\"b\",\"content\":\"call {id}\"}}}}}}"
    )
}

fn mcp_request(body: &str, session: Option<&str>) -> Vec<u8> {
    let sid = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{sid}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `/api/state` and start-up on a db holding 1M messages in 100 channels.
fn large_db(secs: f64) {
    let dir = bench_dir("large");
    let db = dir.join("bench.db");
    {
        let mut c = rusqlite::Connection::open(&db).expect("db");
        c.execute_batch(
            "CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, \
             channel TEXT NOT NULL, sender TEXT NOT NULL, content TEXT NOT NULL, timestamp TEXT NOT NULL); \
             CREATE INDEX idx_messages_channel ON messages(channel); PRAGMA journal_mode=WAL;",
        )
        .expect("schema");
        let tx = c.transaction().expect("tx");
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO messages (id, channel, sender, content, timestamp) \
                     VALUES (?1, ?2, ?3, 'prefilled message', '2026-11-24T00:00:00.000000Z')",
                )
                .expect("prepare");
            for i in 0..1_000_000u32 {
                ins.execute(rusqlite::params![
                    format!("m{i}"),
                    format!("bulk:c{}", i % 100),
                    format!("s{}", i % 7)
                ])
                .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let t = Instant::now();
    let relay = start_relay(dir);
    let mut s = BufReader::new(TcpStream::connect(relay.addr).expect("connect"));
    let status = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    exchange(&mut s, status).expect("status");
    println!(
        "{:<38} {:>9.1} ms (migration + statistics of 1M rows)",
        "start -> first /status 200, 1M msgs",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let state = drive(relay.addr, 1, secs, |_, _| {
        b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec()
    });
    report("GET /api/state, 1M msgs, 1 client", &state);
}

/// A JSON-only `/mcp` request (a waiting call answers with one body).
fn mcp_json(body: &str, session: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(&mcp_request(body, Some(session))).replace(
        "Accept: application/json, text/event-stream",
        "Accept: application/json",
    );
    text.into_bytes()
}

fn tool_call(name: &str, args: &serde_json::Value) -> String {
    serde_json::json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":args}})
        .to_string()
}

/// The task queue: claim+complete cycles per second with 8 workers (each its own `/mcp`
/// session) draining a backlog, and enqueue -> woken waiting claim latency.
fn queue(relay: &Relay, secs: f64) {
    let init = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"0\"}}}";
    let session = |addr| {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let mut c = BufReader::new(tcp);
        let sid = exchange_with_session(&mut c, &mcp_request(init, None)).expect("initialize");
        (c, sid)
    };
    let (mut producer, psid) = session(relay.addr);
    let backlog = (8000.0 * secs) as usize;
    for i in 0..backlog {
        let call = tool_call(
            "bridge_enqueue",
            &serde_json::json!({"channel":"bench:q","payload":{"n":i}}),
        );
        exchange(&mut producer, &mcp_json(&call, &psid)).expect("enqueue");
    }
    let addr = relay.addr;
    let start = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            thread::spawn(move || {
                let (mut c, sid) = session(addr);
                let mut cycles = 0usize;
                loop {
                    let call = tool_call("bridge_claim", &serde_json::json!({"channel":"bench:q","consumer":format!("w{w}")}));
                    let body = exchange(&mut c, &mcp_json(&call, &sid)).expect("claim");
                    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                    let task = &v["result"]["structuredContent"]["task"];
                    if task.is_null() {
                        return cycles;
                    }
                    let done = tool_call("bridge_complete", &serde_json::json!({"channel":"bench:q","task_id":task["task_id"],"lease_token":task["lease_token"]}));
                    exchange(&mut c, &mcp_json(&done, &sid)).expect("complete");
                    cycles += 1;
                }
            })
        })
        .collect();
    let cycles: usize = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{:<38} {:>9.0} cycles/s   ({cycles} tasks, 8 workers)",
        "claim+complete over /mcp",
        cycles as f64 / elapsed
    );
    // Enqueue -> a claim waiting on an empty queue wakes with the task (a fresh producer
    // connection: the first may have idled past the relay's read timeout meanwhile).
    let (mut producer, psid) = session(relay.addr);
    let mut lags = Vec::with_capacity(200);
    for i in 0..200 {
        let waiter = thread::spawn(move || {
            let (mut c, sid) = session(addr);
            let call = tool_call(
                "bridge_claim",
                &serde_json::json!({"channel":"bench:qw","consumer":"w","wait_seconds":10}),
            );
            exchange(&mut c, &mcp_json(&call, &sid)).expect("claim");
            Instant::now()
        });
        thread::sleep(Duration::from_millis(5));
        let call = tool_call(
            "bridge_enqueue",
            &serde_json::json!({"channel":"bench:qw","content":format!("t{i}")}),
        );
        exchange(&mut producer, &mcp_json(&call, &psid)).expect("enqueue");
        let enqueued = Instant::now();
        let woke = waiter.join().expect("waiter");
        lags.push(woke.saturating_duration_since(enqueued).as_micros() as u64);
    }
    report_latencies("enqueue -> woken waiting claim", lags);
}
