//! `cargo bench --bench relay -- eras [ROUNDS]`: the `bridge_send` round trip in the two MCP
//! eras side by side, on one relay: over `/mcp` with a handshake-era session (`initialize`
//! once, then `Mcp-Session-Id` on every call) and with 2026-07-28 requests (no session; the
//! version, method and tool name in headers and `_meta` on every call), and the same over one
//! `--stdio` process. Each round runs 1,000 calls per era, alternating eras round by round so
//! both see the same noise; the percentiles pool every round.

use super::{bench_dir, exchange, exchange_with_session, mcp_request, start_relay};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Instant;

const CALLS: usize = 1000;

fn meta() -> &'static str {
    "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\
     \"io.modelcontextprotocol/clientInfo\":{\"name\":\"bench\",\"version\":\"0\"},\
     \"io.modelcontextprotocol/clientCapabilities\":{}}"
}

fn call(id: usize, modern: bool) -> String {
    let meta = if modern {
        format!(",{}", meta())
    } else {
        String::new()
    };
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"bridge_send\",\
         \"arguments\":{{\"channel\":\"bench:eras\",\"sender\":\"b\",\"content\":\"call {id}\"}}{meta}}}}}"
    )
}

fn modern_request(body: &str) -> Vec<u8> {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
         Mcp-Method: tools/call\r\nMcp-Name: bridge_send\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn pct(lat: &mut [u64], p: f64) -> f64 {
    lat.sort_unstable();
    super::pct(lat, p)
}

fn row(what: &str, handshake: &mut [u64], modern: &mut [u64]) {
    let (h50, h99) = (pct(handshake, 0.5), pct(handshake, 0.99));
    let (m50, m99) = (pct(modern, 0.5), pct(modern, 0.99));
    println!(
        "| {what} | {h50:.3} / {h99:.3} ms | {m50:.3} / {m99:.3} ms | {:.2} / {:.2} |",
        m50 / h50,
        m99 / h99
    );
}

/// Run the comparison: `rounds` rounds of 1,000 calls per era and transport.
pub fn run(rounds: usize) {
    let relay = start_relay(bench_dir("eras"));
    let init = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"0\"}}}";
    let mut old = BufReader::new(TcpStream::connect(relay.addr).expect("connect"));
    old.get_mut().set_nodelay(true).expect("nodelay");
    let session = exchange_with_session(&mut old, &mcp_request(init, None)).expect("initialize");
    let mut new = BufReader::new(TcpStream::connect(relay.addr).expect("connect"));
    new.get_mut().set_nodelay(true).expect("nodelay");

    let dir = bench_dir("eras-stdio");
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
    let mut line = String::new();
    writeln!(input, "{init}").expect("write");
    output.read_line(&mut line).expect("initialize");

    let (mut http_old, mut http_new) = (Vec::new(), Vec::new());
    let (mut stdio_old, mut stdio_new) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which era goes first, so neither always follows the other.
        for modern in [round % 2 == 0, round % 2 == 1] {
            for i in 0..CALLS {
                let id = round * CALLS + i + 1;
                let body = call(id, modern);
                let (req, conn, lat) = if modern {
                    (modern_request(&body), &mut new, &mut http_new)
                } else {
                    (mcp_request(&body, Some(&session)), &mut old, &mut http_old)
                };
                let t = Instant::now();
                let reply = exchange(conn, &req).expect("call");
                lat.push(t.elapsed().as_micros() as u64);
                assert!(reply.starts_with(b"{\"jsonrpc\""), "not a JSON-RPC reply");
            }
            for i in 0..CALLS {
                let id = round * CALLS + i + 1;
                let t = Instant::now();
                writeln!(input, "{}", call(id, modern)).expect("write");
                line.clear();
                output.read_line(&mut line).expect("read");
                let lat = if modern {
                    &mut stdio_new
                } else {
                    &mut stdio_old
                };
                lat.push(t.elapsed().as_micros() as u64);
                assert!(!line.contains("\"error\""), "{line}");
            }
        }
    }
    println!(
        "bridge_send round trip, {rounds} rounds x {CALLS} calls per era (p50 / p99):\n\n\
         | transport | handshake era (2025-11-25) | 2026-07-28 | 2026/handshake |\n|---|---|---|---|"
    );
    row("`/mcp`", &mut http_old, &mut http_new);
    row("`--stdio`", &mut stdio_old, &mut stdio_new);
    drop(input);
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}
