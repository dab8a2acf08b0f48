//! Side by side with the Python original: `cargo bench --bench relay -- compare [SECONDS]`.
//!
//! Installs `claude-code-bridge==1.3.0` (with `mcp<2`) in a venv under `target/bench-original`
//! on first use, then starts each relay in turn on a free loopback port with a fresh db and
//! measures it through the same wire protocol: only URLs and process ids differ. Prints one
//! table with the ratio per measure, and writes it to `target/bench-compare.txt`.

use super::{exchange, pct, post, Outcome};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A relay under test: the process (for its RSS) and where it listens.
pub(super) struct Target {
    name: &'static str,
    pub(super) child: Child,
    pub(super) addr: SocketAddr,
    pub(super) dir: PathBuf,
    started_in: Duration,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One row of the table: what, how it reads, and whether higher is better.
struct Row {
    measure: String,
    unit: &'static str,
    higher_is_better: bool,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The original's entry point, installed on first use.
pub(super) fn original() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-original");
    let bin = venv.join("bin/claude-code-bridge");
    if !bin.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "claude-code-bridge==1.3.0", "mcp<2"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(ok, "could not install claude-code-bridge 1.3.0 from PyPI");
    }
    bin
}

pub(super) fn start(name: &'static str, program: &Path, env: &[(&str, &str)]) -> Target {
    let dir = super::bench_dir(name);
    let port = free_port();
    let t = Instant::now();
    let mut cmd = Command::new(program);
    cmd.args(["--port", &port.to_string(), "--db"])
        .arg(dir.join("bench.db"))
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(dir.join("stderr.log"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start relay");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    loop {
        if let Ok(s) = TcpStream::connect(addr) {
            let mut s = BufReader::new(s);
            if exchange(&mut s, b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").is_ok() {
                break;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{name} did not start"
        );
        thread::sleep(Duration::from_millis(1));
    }
    Target {
        name,
        child,
        addr,
        dir,
        started_in: t.elapsed(),
    }
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Read one whole response (Content-Length or chunked); returns (status, content type, body).
fn response(s: &mut BufReader<TcpStream>) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut line = String::new();
    s.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let (mut len, mut chunked, mut ctype) = (0usize, false, String::new());
    loop {
        line.clear();
        if s.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.to_ascii_lowercase();
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        } else if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true;
        } else if let Some(v) = l.strip_prefix("content-type:") {
            ctype = v.trim().to_owned();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            s.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)?;
            let mut chunk = vec![0; n + 2];
            s.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(len, 0);
        s.read_exact(&mut body)?;
    }
    Ok((status, ctype, body))
}

/// The JSON-RPC message of an MCP reply, whether sent as JSON or as an event stream.
fn rpc_body(ctype: &str, body: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(body);
    let json = if ctype.starts_with("text/event-stream") {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .find(|d| d.contains("\"id\""))
            .unwrap_or("null")
            .to_owned()
    } else {
        text.into_owned()
    };
    serde_json::from_str(&json).unwrap_or_default()
}

fn mcp_post(body: &str, session: Option<&str>) -> Vec<u8> {
    let sid = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\n\
         {sid}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// Open a Streamable HTTP session on a keep-alive connection; returns it and its id.
fn mcp_session(addr: SocketAddr) -> (BufReader<TcpStream>, String) {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let mut c = BufReader::new(tcp);
    c.get_mut().write_all(&mcp_post(INIT, None)).expect("init");
    let mut line = String::new();
    let mut sid = String::new();
    // Read the head by hand for the session id, then the rest of the reply.
    c.read_line(&mut line).expect("status");
    let (mut len, mut chunked) = (0usize, false);
    loop {
        line.clear();
        c.read_line(&mut line).expect("header");
        let l = line.to_ascii_lowercase();
        if let Some(v) = l.strip_prefix("mcp-session-id:") {
            sid = line[line.len() - v.len()..].trim().to_owned();
        } else if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        } else if l.starts_with("transfer-encoding:") {
            chunked = true;
        }
        if line == "\r\n" {
            break;
        }
    }
    if chunked {
        loop {
            line.clear();
            c.read_line(&mut line).expect("chunk");
            let n = usize::from_str_radix(line.trim(), 16).expect("chunk size");
            let mut chunk = vec![0; n + 2];
            c.read_exact(&mut chunk).expect("chunk");
            if n == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0; len];
        c.read_exact(&mut body).expect("body");
    }
    c.get_mut()
        .write_all(&mcp_post(INITIALIZED, Some(&sid)))
        .expect("initialized");
    response(&mut c).expect("initialized reply");
    (c, sid)
}

fn call(id: usize, tool: &str, args: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
    )
}

fn lat_ms(mut v: Vec<u64>) -> (f64, f64) {
    v.sort_unstable();
    (pct(&v, 0.5), pct(&v, 0.99))
}

fn throughput(o: &Outcome) -> f64 {
    o.requests as f64 / o.elapsed.as_secs_f64()
}

/// Every measure of one relay, in table order.
fn measure(t: &Target, secs: f64, sessions: &[usize]) -> Vec<(Row, f64)> {
    let mut out = Vec::new();
    let mut put = |measure: String, unit, higher_is_better, v: f64| {
        println!("  {:<8} {measure:<52} {v:>10.2} {unit}", t.name);
        out.push((
            Row {
                measure,
                unit,
                higher_is_better,
            },
            v,
        ));
    };
    let pid = t.child.id();
    put(
        "start -> first /status 200".into(),
        "ms",
        false,
        t.started_in.as_secs_f64() * 1000.0,
    );
    thread::sleep(Duration::from_secs(1));
    put("idle RSS".into(), "MB", false, rss_mb(pid));

    for clients in [1, 10, 50] {
        let o = super::drive(t.addr, clients, secs, |c, i| {
            post(
                "/api/send",
                &format!(
                    r#"{{"channel":"bench:c{}","sender":"client-{c}","content":"message {i} from a benchmark client"}}"#,
                    c % 8
                ),
            )
        });
        let (p50, p99) = (pct(&o.latencies_us, 0.5), pct(&o.latencies_us, 0.99));
        put(
            format!("POST /api/send, {clients} clients"),
            "req/s",
            true,
            throughput(&o),
        );
        if clients == 10 {
            put("POST /api/send, 10 clients, p50".into(), "ms", false, p50);
            put("POST /api/send, 10 clients, p99".into(), "ms", false, p99);
        }
        assert_eq!(o.errors, 0, "{}: send errors", t.name);
    }

    let mut s = BufReader::new(TcpStream::connect(t.addr).expect("connect"));
    let body = exchange(
        &mut s,
        &post(
            "/api/send",
            r#"{"channel":"bench:tail","sender":"b","content":"newest"}"#,
        ),
    )
    .expect("send");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let newest = v["id"].as_str().expect("id").to_owned();
    let o = super::drive(t.addr, 10, secs, move |_, _| {
        format!(
            "GET /api/messages?channel=bench:tail&since_id={newest} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .into_bytes()
    });
    put(
        "GET /api/messages tail, 10 clients".into(),
        "req/s",
        true,
        throughput(&o),
    );

    let state = super::drive(t.addr, 1, secs.min(3.0), |_, _| {
        b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec()
    });
    // Servers close idle keep-alive connections (the original after 5 s): a fresh one per phase.
    let mut s = BufReader::new(TcpStream::connect(t.addr).expect("connect"));
    let stored: serde_json::Value = serde_json::from_slice(
        &exchange(
            &mut s,
            b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        )
        .expect("state"),
    )
    .unwrap_or_default();
    put(
        format!(
            "GET /api/state p50 ({} msgs stored)",
            stored["total_messages"].as_u64().unwrap_or(0)
        ),
        "ms",
        false,
        pct(&state.latencies_us, 0.5),
    );

    // Send -> woken waiter, /api/wait.
    let mut last = newest_id(&mut s, "bench:wake");
    let mut lags = Vec::new();
    for i in 0..100 {
        let req = format!(
            "GET /api/wait?channel=bench:wake&since_id={last}&timeout_seconds=10 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        );
        let addr = t.addr;
        let waiter = thread::spawn(move || {
            let mut c = BufReader::new(TcpStream::connect(addr).expect("connect"));
            let body = exchange(&mut c, req.as_bytes()).expect("wait");
            (Instant::now(), body)
        });
        thread::sleep(Duration::from_millis(20));
        let body = format!(r#"{{"channel":"bench:wake","sender":"b","content":"w{i}"}}"#);
        let sent: serde_json::Value =
            serde_json::from_slice(&exchange(&mut s, &post("/api/send", &body)).expect("send"))
                .expect("json");
        let sent_at = Instant::now();
        last = sent["id"].as_str().expect("id").to_owned();
        let (woke_at, _) = waiter.join().expect("waiter");
        lags.push(woke_at.saturating_duration_since(sent_at).as_micros() as u64);
    }
    let (p50, p99) = lat_ms(lags);
    put("send -> woken /api/wait, p50".into(), "ms", false, p50);
    put("send -> woken /api/wait, p99".into(), "ms", false, p99);

    // Send -> woken bridge_wait over /mcp.
    let mut lags = Vec::new();
    for i in 0..50 {
        let since = last.clone();
        let addr = t.addr;
        let waiter = thread::spawn(move || {
            let (mut c, sid) = mcp_session(addr);
            let args =
                format!(r#"{{"channel":"bench:wake","since_id":"{since}","timeout_seconds":10}}"#);
            c.get_mut()
                .write_all(&mcp_post(&call(1, "bridge_wait", &args), Some(&sid)))
                .expect("call");
            let (_, ctype, body) = response(&mut c).expect("wait reply");
            (Instant::now(), rpc_body(&ctype, &body))
        });
        thread::sleep(Duration::from_millis(150));
        let body = format!(r#"{{"channel":"bench:wake","sender":"b","content":"m{i}"}}"#);
        let sent: serde_json::Value =
            serde_json::from_slice(&exchange(&mut s, &post("/api/send", &body)).expect("send"))
                .expect("json");
        let sent_at = Instant::now();
        last = sent["id"].as_str().expect("id").to_owned();
        let (woke_at, reply) = waiter.join().expect("waiter");
        assert!(reply["result"].is_object(), "{}: {reply}", t.name);
        lags.push(woke_at.saturating_duration_since(sent_at).as_micros() as u64);
    }
    let (p50, p99) = lat_ms(lags);
    put(
        "send -> woken bridge_wait over /mcp, p50".into(),
        "ms",
        false,
        p50,
    );
    put(
        "send -> woken bridge_wait over /mcp, p99".into(),
        "ms",
        false,
        p99,
    );

    // bridge_send round trips over /mcp.
    let (mut c, sid) = mcp_session(t.addr);
    let mut lat = Vec::new();
    for i in 0..300 {
        let args = format!(r#"{{"channel":"bench:mcp","sender":"b","content":"call {i}"}}"#);
        let req = mcp_post(&call(i + 10, "bridge_send", &args), Some(&sid));
        let tt = Instant::now();
        c.get_mut().write_all(&req).expect("call");
        let (status, ctype, body) = response(&mut c).expect("reply");
        assert_eq!(status, 200);
        assert!(rpc_body(&ctype, &body)["result"].is_object());
        lat.push(tt.elapsed().as_micros() as u64);
    }
    let (p50, p99) = lat_ms(lat);
    put(
        "bridge_send round trip over /mcp, p50".into(),
        "ms",
        false,
        p50,
    );
    put(
        "bridge_send round trip over /mcp, p99".into(),
        "ms",
        false,
        p99,
    );

    // bridge_send round trips over legacy SSE.
    let (p50, p99) = lat_ms(sse_round_trips(t.addr, 300));
    put(
        "bridge_send round trip over /sse, p50".into(),
        "ms",
        false,
        p50,
    );
    put(
        "bridge_send round trip over /sse, p99".into(),
        "ms",
        false,
        p99,
    );

    // Held /sse sessions: RSS, and /status while they are held.
    for &n in sessions {
        let held = hold_sse(t.addr, n);
        thread::sleep(Duration::from_millis(500));
        put(
            format!("RSS with {n} /sse sessions"),
            "MB",
            false,
            rss_mb(pid),
        );
        let mut lat = Vec::new();
        let mut c = BufReader::new(TcpStream::connect(t.addr).expect("connect"));
        for _ in 0..300 {
            let tt = Instant::now();
            exchange(&mut c, b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("status");
            lat.push(tt.elapsed().as_micros() as u64);
        }
        let (_, p99) = lat_ms(lat);
        if held.len() < n {
            println!(
                "  {:<8} only {} of {n} /sse sessions opened",
                t.name,
                held.len()
            );
        }
        put(
            format!("/status p99 with {n} /sse sessions"),
            "ms",
            false,
            p99,
        );
        drop(held);
        thread::sleep(Duration::from_millis(500));
    }
    out
}

fn newest_id(s: &mut BufReader<TcpStream>, channel: &str) -> String {
    let body = format!(r#"{{"channel":"{channel}","sender":"b","content":"start"}}"#);
    let v: serde_json::Value =
        serde_json::from_slice(&exchange(s, &post("/api/send", &body)).expect("send"))
            .expect("json");
    v["id"].as_str().expect("id").to_owned()
}

/// Open an /sse stream and read up to its `endpoint` event; returns the reader and the path.
fn open_sse(addr: SocketAddr) -> Option<(BufReader<TcpStream>, String)> {
    let tcp = TcpStream::connect(addr).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let mut stream = BufReader::new(tcp);
    stream
        .get_mut()
        .write_all(b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        .ok()?;
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(p) = line.strip_prefix("data: ") {
            return Some((stream, p.trim().to_owned()));
        }
    }
}

fn sse_round_trips(addr: SocketAddr, calls: usize) -> Vec<u64> {
    let (mut stream, path) = open_sse(addr).expect("sse");
    let mut posts = BufReader::new(TcpStream::connect(addr).expect("connect"));
    let mut line = String::new();
    let mut next_reply = |stream: &mut BufReader<TcpStream>| loop {
        line.clear();
        stream.read_line(&mut line).expect("event");
        if line.starts_with("data: ") && line.contains("\"id\"") {
            break;
        }
    };
    let mut post_ok = |body: &str| {
        posts.get_mut().write_all(&post(&path, body)).expect("post");
        let (status, _, _) = response(&mut posts).expect("post reply");
        assert!(status == 202 || status == 200, "POST {path}: {status}");
    };
    post_ok(INIT);
    next_reply(&mut stream);
    post_ok(INITIALIZED);
    let mut lat = Vec::with_capacity(calls);
    for i in 0..calls {
        let args = format!(r#"{{"channel":"bench:sse","sender":"b","content":"call {i}"}}"#);
        let body = call(i + 1, "bridge_send", &args);
        let t = Instant::now();
        post_ok(&body);
        next_reply(&mut stream);
        lat.push(t.elapsed().as_micros() as u64);
    }
    lat
}

/// Open `n` /sse sessions (from a few threads); returns those that opened.
fn hold_sse(addr: SocketAddr, n: usize) -> Vec<BufReader<TcpStream>> {
    let per = n.div_ceil(8);
    let handles: Vec<_> = (0..8)
        .map(|k| {
            thread::spawn(move || {
                (0..per.min(n.saturating_sub(k * per)))
                    .filter_map(|_| open_sse(addr).map(|(s, _)| s))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("opener"))
        .collect()
}

/// Raise this process's open-file limit as far as allowed (the relays inherit it).
pub(super) fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Run the comparison and print the table.
pub fn run(secs: f64) {
    raise_nofile();
    // The static `dist` build when it has been built (what a box runs), else the release one.
    let dist = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/static-check/x86_64-unknown-linux-gnu/dist/claude-bridge");
    let ours = if dist.exists() {
        dist
    } else {
        Path::new(env!("CARGO_BIN_EXE_claude-bridge")).to_path_buf()
    };
    println!("claude-bridge binary: {}", ours.display());
    let theirs = original();
    let ceiling = super::start_ceiling();
    let hello = super::drive(ceiling, 10, secs, |_, _| post("/hello", "{\"x\":1}"));
    let ceiling_rps = throughput(&hello);
    println!("hello-world tiny_http pool, 10 clients: {ceiling_rps:.0} req/s");

    println!("measuring the original (claude-code-bridge 1.3.0) …");
    let original = {
        let t = start("original", &theirs, &[]);
        measure(&t, secs, &[2000])
    };
    println!("measuring claude-bridge …");
    let mine = {
        let t = start("ours", &ours, &[("CLAUDE_BRIDGE_MAX_MCP_STREAMS", "20000")]);
        measure(&t, secs, &[2000, 10_000])
    };

    let mut table = String::new();
    table.push_str(&format!(
        "| measure | original 1.3.0 | claude-bridge | ratio |\n|---|---|---|---|\n| hello-world tiny_http pool, 10 clients (ceiling) | | {ceiling_rps:.0} req/s | |\n"
    ));
    for (row, ours_v) in &mine {
        let theirs_v = original
            .iter()
            .find(|(r, _)| r.measure.split(" (").next() == row.measure.split(" (").next())
            .map(|(_, v)| *v);
        let fmt = |v: f64| {
            if row.unit == "req/s" {
                format!("{v:.0} {}", row.unit)
            } else {
                format!("{v:.2} {}", row.unit)
            }
        };
        let (theirs_s, ratio) = match theirs_v {
            Some(tv) => {
                let r = if row.higher_is_better {
                    ours_v / tv
                } else {
                    tv / ours_v
                };
                let verdict = if r >= 1.0 {
                    format!("{r:.1}× better")
                } else {
                    format!("{:.1}× worse", 1.0 / r)
                };
                (fmt(tv), verdict)
            }
            None => ("—".into(), String::new()),
        };
        table.push_str(&format!(
            "| {} | {theirs_s} | {} | {ratio} |\n",
            row.measure,
            fmt(*ours_v)
        ));
        if row.measure == "POST /api/send, 10 clients" {
            table.push_str(&format!(
                "| send at 10 clients as a share of the ceiling | {:.1}% | {:.1}% | |\n",
                100.0 * theirs_v.unwrap_or(f64::NAN) / ceiling_rps,
                100.0 * ours_v / ceiling_rps
            ));
        }
    }
    println!("\n{table}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-compare.txt");
    let _ = std::fs::write(&out, &table);
    println!("(written to {})", out.display());
}
