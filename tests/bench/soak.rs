//! Soak: `cargo bench --bench relay -- soak [MINUTES]` (30 by default).
//!
//! Runs the release relay under a steady mixed load for the given time: keep-alive senders, tail
//! readers, long-polls woken by the sends, event-stream subscribers and `/sse` sessions that
//! come and go, and MCP calls over `/mcp`. Samples the relay's RSS and thread count every 10 s.
//! Reports the RSS drift from the end of a warm-up (a tenth of the run, at least a minute) to the
//! end, and whether the thread count is back to its idle baseline once the clients have left.

use super::{exchange, post};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn status_field(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(f64::NAN)
}

/// Run one kind of client in a loop until `stop`, counting operations; errors reconnect.
fn client(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    mut step: impl FnMut(SocketAddr, &mut Option<BufReader<TcpStream>>, u64) -> bool + Send + 'static,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut conn = None;
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            if step(addr, &mut conn, i) {
                ops.fetch_add(1, Ordering::Relaxed);
            } else {
                conn = None;
                thread::sleep(Duration::from_millis(50));
            }
        }
    })
}

fn keepalive(
    addr: SocketAddr,
    conn: &mut Option<BufReader<TcpStream>>,
) -> Option<&mut BufReader<TcpStream>> {
    if conn.is_none() {
        *conn = Some(BufReader::new(TcpStream::connect(addr).ok()?));
    }
    conn.as_mut()
}

/// Run the soak and print the result.
pub fn run(minutes: f64) {
    let relay = super::start_relay(super::bench_dir("soak"));
    let (addr, pid) = (relay.addr, relay.child.id());
    thread::sleep(Duration::from_secs(1));
    let idle_threads = status_field(pid, "Threads:");
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    // Senders, paced to a steady few hundred sends a second in all.
    for c in 0..4 {
        clients.push(client(
            addr,
            stop.clone(),
            ops.clone(),
            move |addr, conn, i| {
                thread::sleep(Duration::from_millis(10));
                let Some(s) = keepalive(addr, conn) else {
                    return false;
                };
                let body = format!(
                    r#"{{"channel":"soak:c{}","sender":"s{c}","content":"soak message {i} {}"}}"#,
                    i % 20,
                    "x".repeat((i % 50) as usize * 20)
                );
                exchange(s, &post("/api/send", &body)).is_ok()
            },
        ));
    }
    // Tail readers.
    for _ in 0..2 {
        clients.push(client(addr, stop.clone(), ops.clone(), |addr, conn, i| {
            thread::sleep(Duration::from_millis(5));
            let Some(s) = keepalive(addr, conn) else {
                return false;
            };
            let req = format!(
                "GET /api/messages?channel=soak:c{}&limit=20 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                i % 20
            );
            exchange(s, req.as_bytes()).is_ok()
        }));
    }
    // Long-polls (woken by the senders), on fresh connections now and then.
    for _ in 0..4 {
        clients.push(client(addr, stop.clone(), ops.clone(), |addr, conn, i| {
            if i % 10 == 0 {
                *conn = None;
            }
            let Some(s) = keepalive(addr, conn) else { return false };
            let req = format!(
                "GET /api/wait?channel=soak:c{}&consumer_id=w{}&timeout_seconds=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                i % 20,
                i % 3
            );
            exchange(s, req.as_bytes()).is_ok()
        }));
    }
    // Event subscribers and /sse sessions that stay a while and leave.
    for k in 0..4 {
        clients.push(client(
            addr,
            stop.clone(),
            ops.clone(),
            move |addr, _, i| {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    return false;
                };
                let path = if k % 2 == 0 {
                    format!("/events/channel/soak:c{}", i % 20)
                } else {
                    "/sse".to_owned()
                };
                let req = format!(
                    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
                );
                if s.write_all(req.as_bytes()).is_err() {
                    return false;
                }
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                let mut rd = BufReader::new(s);
                let until = Instant::now() + Duration::from_millis(500 + (i % 7) * 300);
                let mut line = String::new();
                while Instant::now() < until {
                    line.clear();
                    let _ = rd.read_line(&mut line);
                }
                true // dropped: the client leaves mid-stream
            },
        ));
    }
    // MCP over /mcp: a session, a few calls, gone.
    clients.push(client(addr, stop.clone(), ops.clone(), |addr, _, i| {
        let Ok(tcp) = TcpStream::connect(addr) else { return false };
        let mut c = BufReader::new(tcp);
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"soak","version":"0"}}}"#;
        let Ok(sid) = super::exchange_with_session(&mut c, &super::mcp_request(init, None)) else {
            return false;
        };
        for j in 0..5 {
            let call = super::send_call_to(&format!("soak:mcp{}", i % 5), j);
            if exchange(&mut c, &super::mcp_request(&call, Some(&sid))).is_err() {
                return false;
            }
        }
        let del = format!("DELETE /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nMcp-Session-Id: {sid}\r\n\r\n");
        exchange(&mut c, del.as_bytes()).is_ok()
    }));

    let total = Duration::from_secs_f64(minutes * 60.0);
    let warmup = (total / 10).max(Duration::from_secs(60)).min(total / 2);
    let start = Instant::now();
    let mut after_warmup = f64::NAN;
    let mut samples = Vec::new();
    while start.elapsed() < total {
        thread::sleep(Duration::from_secs(10));
        let rss = status_field(pid, "VmRSS:") / 1024.0;
        let threads = status_field(pid, "Threads:");
        samples.push(rss);
        if after_warmup.is_nan() && start.elapsed() >= warmup {
            after_warmup = rss;
        }
        println!(
            "{:>6.0} s  RSS {rss:>6.1} MB  threads {threads:>4}  ops {}",
            start.elapsed().as_secs_f64(),
            ops.load(Ordering::Relaxed)
        );
    }
    let end_rss = status_field(pid, "VmRSS:") / 1024.0;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    // Connections and streams end; tiny_http's idle threads leave after 5 s, reads after 30 s.
    let left = Instant::now();
    let mut threads = status_field(pid, "Threads:");
    while threads > idle_threads && left.elapsed() < Duration::from_secs(60) {
        thread::sleep(Duration::from_secs(1));
        threads = status_field(pid, "Threads:");
    }
    let peak = samples.iter().cloned().fold(f64::NAN, f64::max);
    println!(
        "soak {minutes} min: {} operations; RSS after warm-up {after_warmup:.1} MB, at the end \
         {end_rss:.1} MB (drift {:+.1} MB), peak {peak:.1} MB; threads idle {idle_threads}, \
         {threads} {:.0} s after the clients left",
        ops.load(Ordering::Relaxed),
        end_rss - after_warmup,
        left.elapsed().as_secs_f64()
    );
}
