//! MCP 2026-07-28 (stateless, per-request `_meta`) beside the handshake era on `/mcp` and
//! `--stdio`: raw wire checks of the revision's headers, errors and streams, and the official
//! Python SDK 2.x (`tests/clients/mcp2_check.py`, `venv-mcp2`) in its default `auto` mode, in
//! `legacy` mode and over `/sse`.

use crate::support::{read_response, spawn_stdio, test_tools, Relay, Resp, TempDir, BIN};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const V: &str = "2026-07-28";

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientInfo": {"name": "eras-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    })
}

/// A modern request body: `params` plus the per-request `_meta`.
fn modern(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = meta();
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// POST to /mcp with the revision's headers for `body` (overridable by `extra`).
fn post(r: &Relay, body: &Value, extra: &[(&str, &str)]) -> Resp {
    let method = body["method"].as_str().unwrap_or("").to_owned();
    let name = body["params"]["name"].as_str().map(str::to_owned);
    let mut headers: Vec<(&str, &str)> = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", V),
        ("Mcp-Method", &method),
    ];
    if let Some(n) = &name {
        headers.push(("Mcp-Name", n));
    }
    for (k, v) in extra {
        headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
        if !v.is_empty() {
            headers.push((k, v));
        }
    }
    r.request("POST", "/mcp", &headers, Some(body.to_string().as_bytes()))
}

/// The JSON-RPC messages of an event-stream body, in order.
fn events(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn error_of(resp: &Resp) -> (u16, i64, Value) {
    let v = resp.json();
    (resp.status, v["error"]["code"].as_i64().unwrap_or(0), v)
}

#[test]
fn modern_requests_are_served_statelessly_on_mcp_beside_handshake_sessions() {
    let r = Relay::start(&[], &[]);
    // server/discover: versions, capabilities, identity, caching hints.
    let d = post(&r, &modern(1, "server/discover", json!({})), &[]);
    assert_eq!(d.status, 200, "{}", d.text());
    assert!(
        d.header("Mcp-Session-Id").is_none(),
        "no session in this era"
    );
    let d = d.json()["result"].clone();
    assert_eq!(d["resultType"], "complete");
    assert_eq!(
        d["supportedVersions"],
        json!([V, "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"])
    );
    assert_eq!(d["capabilities"], json!({"tools": {"listChanged": false}}));
    assert_eq!(d["ttlMs"], 3_600_000);
    assert_eq!(d["cacheScope"], "public");
    assert_eq!(
        d["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "claude-bridge"
    );
    assert!(d["instructions"].as_str().unwrap().contains("bridge_send"));

    // tools/list: the same table, with resultType and caching hints.
    let l = post(&r, &modern(2, "tools/list", json!({})), &[]).json()["result"].clone();
    assert_eq!(l["resultType"], "complete");
    assert_eq!(
        (l["ttlMs"].clone(), l["cacheScope"].clone()),
        (json!(3_600_000), json!("public"))
    );
    // The 13 of the contract and the two presence tools (issue 18).
    assert_eq!(l["tools"].as_array().unwrap().len(), 15);

    // tools/call: the contract's results, dressed for the era.
    let send = modern(
        3,
        "tools/call",
        json!({"name": "bridge_send",
        "arguments": {"channel": "eras:a", "sender": "t", "content": "modern hello"}}),
    );
    let s = post(&r, &send, &[]);
    assert_eq!(s.status, 200, "{}", s.text());
    let s = s.json();
    assert_eq!(s["id"], 3);
    assert_eq!(s["result"]["resultType"], "complete");
    assert_eq!(s["result"]["isError"], false);
    assert_eq!(
        s["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "claude-bridge"
    );
    // A handshake session on the same endpoint reads it: both eras, one relay.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "old", "version": "1"}}});
    let i = r.request(
        "POST",
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        Some(init.to_string().as_bytes()),
    );
    assert_eq!(i.status, 200);
    assert_eq!(i.json()["result"]["protocolVersion"], "2025-11-25");
    assert!(
        i.json()["result"].get("resultType").is_none(),
        "the handshake era is unchanged"
    );
    let sid = i.header("Mcp-Session-Id").unwrap().to_owned();
    let recv = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "bridge_receive", "arguments": {"channel": "eras:a"}}});
    let got = r.request(
        "POST",
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Session-Id", &sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        Some(recv.to_string().as_bytes()),
    );
    assert_eq!(
        got.json()["result"]["structuredContent"]["messages"][0]["content"],
        "modern hello"
    );
    // A session id on a modern request is ignored, not required.
    let again = post(
        &r,
        &modern(4, "tools/list", json!({})),
        &[("Mcp-Session-Id", "nope")],
    );
    assert_eq!(again.status, 200);
}

#[test]
fn modern_refusals_carry_the_revisions_codes_statuses_and_the_request_id() {
    let r = Relay::start(&[], &[]);
    let list = modern(9, "tools/list", json!({}));
    // Header checks (-32020, 400).
    for extra in [
        vec![("MCP-Protocol-Version", "")],
        vec![("MCP-Protocol-Version", "2025-11-25")],
        vec![("Mcp-Method", "")],
        vec![("Mcp-Method", "prompts/list")],
        vec![("Mcp-Method", "TOOLS/LIST")],
    ] {
        let (status, code, v) = error_of(&post(&r, &list, &extra));
        assert_eq!((status, code), (400, -32020), "{extra:?}: {v}");
        assert_eq!(v["id"], 9);
    }
    let call = modern(
        10,
        "tools/call",
        json!({"name": "bridge_ping", "arguments": {}}),
    );
    for (name, ok) in [
        ("", false),
        ("bridge_send", false),
        ("  bridge_ping  ", true),
        ("=?base64?YnJpZGdlX3Bpbmc=?=", true),
        ("=?base64?YnJpZGdlX3Bpbmc?=", false),
    ] {
        let resp = post(&r, &call, &[("Mcp-Name", name)]);
        assert_eq!(resp.status == 200, ok, "Mcp-Name {name:?}: {}", resp.text());
        if !ok {
            assert_eq!(error_of(&resp).1, -32020);
        }
    }
    // Missing per-request _meta fields (-32602, 400).
    for drop in [
        "io.modelcontextprotocol/protocolVersion",
        "io.modelcontextprotocol/clientCapabilities",
    ] {
        let mut b = list.clone();
        b["params"]["_meta"].as_object_mut().unwrap().remove(drop);
        let (status, code, _) = error_of(&post(&r, &b, &[]));
        assert_eq!((status, code), (400, -32602), "without {drop}");
    }
    // clientInfo is only a SHOULD.
    let mut b = list.clone();
    b["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientInfo");
    assert_eq!(post(&r, &b, &[]).status, 200);
    // A version we do not serve (-32022, 400, naming ours and echoing theirs).
    let mut b = list.clone();
    b["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let (status, code, v) = error_of(&post(&r, &b, &[("MCP-Protocol-Version", "2099-01-01")]));
    assert_eq!((status, code), (400, -32022));
    assert_eq!(v["error"]["data"]["requested"], "2099-01-01");
    assert_eq!(v["error"]["data"]["supported"][0], V);
    // Methods gone from this era, and unknown ones (-32601, 404).
    for m in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "nope/nope",
    ] {
        let (status, code, v) = error_of(&post(&r, &modern(11, m, json!({})), &[]));
        assert_eq!(
            (status, code, v["id"].clone()),
            (404, -32601, json!(11)),
            "{m}"
        );
    }
    // No GET stream and no DELETE in this era.
    for method in ["GET", "DELETE"] {
        let resp = r.request(
            method,
            "/mcp",
            &[("MCP-Protocol-Version", V), ("Accept", "text/event-stream")],
            None,
        );
        assert_eq!(resp.status, 405, "{method}");
        assert_eq!(resp.header("Allow"), Some("POST"));
    }
    // A notification needs nothing.
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 1, "_meta": meta()}});
    assert_eq!(post(&r, &note, &[]).status, 202);
}

/// Read an event stream's chunks from `conn` until `done` says the body so far is complete.
fn read_stream_until(conn: &mut BufReader<TcpStream>, done: impl Fn(&str) -> bool) -> String {
    let mut body = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&body) {
        assert!(Instant::now() < deadline, "stream stalled: {body}");
        let mut size = String::new();
        conn.read_line(&mut size).unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        let mut chunk = vec![0; n + 2];
        std::io::Read::read_exact(conn, &mut chunk).unwrap();
        body.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    body
}

fn open_post(r: &Relay, body: &Value) -> BufReader<TcpStream> {
    let text = body.to_string();
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let name = body["params"]["name"]
        .as_str()
        .map(|n| format!("Mcp-Name: {n}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {V}\r\n\
         Mcp-Method: {}\r\n{name}Content-Length: {}\r\n\r\n{text}",
        body["method"].as_str().unwrap(),
        text.len()
    )
    .unwrap();
    let mut conn = BufReader::new(s);
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    assert!(line.contains(" 200 "), "{line}");
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
    }
    conn
}

#[test]
fn modern_waits_stream_on_their_post_and_listen_acks_then_ends_when_the_relay_stops() {
    let mut r = Relay::start(&[], &[]);
    let first = r.say("eras:w", "t", "one")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A waiting call answers on its own POST's event stream when the message comes.
    let wait = modern(
        20,
        "tools/call",
        json!({"name": "bridge_wait",
        "arguments": {"channel": "eras:w", "since_id": first, "timeout_seconds": 30}}),
    );
    let mut conn = open_post(&r, &wait);
    r.say("eras:w", "t", "two");
    let body = read_stream_until(&mut conn, |b| b.contains("\"id\":20"));
    let result = events(&body).pop().unwrap();
    assert_eq!(result["result"]["resultType"], "complete");
    assert_eq!(
        result["result"]["structuredContent"]["messages"][0]["content"],
        "two"
    );

    // subscriptions/listen: acknowledged first (honouring nothing: our tool list never
    // changes), then quiet until the relay stops, which ends it with the graceful result.
    let bad = post(&r, &modern(30, "subscriptions/listen", json!({})), &[]);
    assert_eq!(error_of(&bad).1, -32602);
    let listen = modern(
        31,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let mut conn = open_post(&r, &listen);
    let ack = read_stream_until(&mut conn, |b| b.contains("acknowledged"));
    let ack = &events(&ack)[0];
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        31
    );
    assert_eq!(ack["params"]["notifications"], json!({}));
    assert_eq!(r.terminate(), Some(0));
    let rest = read_stream_until(&mut conn, |_| false);
    let end = events(&rest).pop().expect("a graceful end");
    assert_eq!(end["id"], 31);
    assert_eq!(
        end["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        31
    );
}

struct Pipe {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Pipe {
    fn send(&mut self, v: &Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{v}").unwrap();
        stdin.flush().unwrap();
    }

    fn next(&mut self) -> Value {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }
}

#[test]
fn stdio_serves_both_eras_per_message_and_cancels_a_modern_wait() {
    let dir = TempDir::new();
    let db = dir.path().join("s.db").display().to_string();
    let mut child = spawn_stdio(&db);
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut p = Pipe { child, out };
    p.send(&modern(1, "server/discover", json!({})));
    assert_eq!(p.next()["result"]["supportedVersions"][0], V);
    p.send(&modern(
        2,
        "tools/call",
        json!({"name": "bridge_send",
        "arguments": {"channel": "eras:s", "sender": "t", "content": "over stdio"}}),
    ));
    let sent = p.next();
    assert_eq!(sent["result"]["resultType"], "complete");
    // Errors without HTTP: the same codes.
    let mut b = modern(3, "tools/list", json!({}));
    b["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("1999-01-01");
    p.send(&b);
    assert_eq!(p.next()["error"]["code"], -32022);
    p.send(&modern(4, "ping", json!({})));
    assert_eq!(p.next()["error"]["code"], -32601);
    // The handshake era in the same process.
    p.send(&json!({"jsonrpc": "2.0", "id": 5, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "old", "version": "1"}}}));
    assert_eq!(p.next()["result"]["protocolVersion"], "2025-06-18");
    p.send(&json!({"jsonrpc": "2.0", "id": 6, "method": "ping"}));
    assert_eq!(p.next(), json!({"jsonrpc": "2.0", "id": 6, "result": {}}));
    // subscriptions/listen is acknowledged.
    p.send(&modern(
        7,
        "subscriptions/listen",
        json!({"notifications": {}}),
    ));
    let ack = p.next();
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        7
    );
    // A modern wait runs beside the pipe and is cancelled by notifications/cancelled: it gets
    // no response, and the next request is answered.
    let after = sent["result"]["structuredContent"]["id"].clone();
    p.send(&modern(
        8,
        "tools/call",
        json!({"name": "bridge_wait",
        "arguments": {"channel": "eras:s", "since_id": after, "timeout_seconds": 50}}),
    ));
    p.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 8}}),
    );
    p.send(&modern(9, "tools/list", json!({})));
    assert_eq!(p.next()["id"], 9);
    drop(p.child.stdin.take());
    let started = Instant::now();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut p.out, &mut rest).unwrap();
    assert!(
        !rest.contains("\"id\":8"),
        "a cancelled wait answered: {rest}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the cancelled wait held the exit"
    );
    assert!(p.child.wait().unwrap().success());
}

/// Run `tests/clients/mcp2_check.py` with the SDK 2.x venv; its stdout as JSON.
fn sdk2(args: &[&str]) -> Value {
    let python = test_tools().join("venv-mcp2/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/mcp2_check.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "mcp2_check.py {args:?} did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "mcp2_check.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every tool was listed and called once; all succeeded but the two deliberate refusals.
fn check_run(out: &Value, modern: bool) {
    let version = if modern { V } else { "2025-11-25" };
    assert_eq!(out["protocol_version"], version, "{out}");
    assert_eq!(out["discovered"], modern);
    assert_eq!(out["initialized"], !modern);
    assert_eq!(out["server_name"], "claude-bridge");
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let calls = out["calls"].as_array().unwrap();
    for t in &tools {
        assert!(calls.iter().any(|c| c["name"] == *t), "{t} was not called");
    }
    assert_eq!(tools.len(), 15);
    let (ok, refused) = calls.split_at(calls.len() - 2);
    for c in ok {
        assert_eq!(c["is_error"], false, "{c}");
    }
    for c in refused {
        assert_eq!(c["is_error"], true, "{c}");
        assert!(c["structured"]["error"].is_string());
    }
    let claim = ok
        .iter()
        .filter(|c| c["name"] == "bridge_claim")
        .nth(1)
        .unwrap();
    assert!(
        claim["structured"]["task"]["task_id"].is_string(),
        "{claim}"
    );
}

#[test]
fn python_sdk_2_auto_mode_reaches_2026_07_28_on_mcp_and_stdio() {
    let r = Relay::start(&["--auth-token", "sdk2-token"], &[]);
    let url = format!("http://{}/mcp", r.addr);
    let out = sdk2(&["auto", &url, "sdk2-token"]);
    check_run(&out, true);
    assert_eq!(out["supported_versions"][0], V);
    assert_eq!(
        (out["ttl_ms"].clone(), out["cache_scope"].clone()),
        (json!(3_600_000), json!("public"))
    );
    let dir = TempDir::new();
    let db = dir.path().join("s.db").display().to_string();
    check_run(&sdk2(&["stdio", BIN, &db]), true);
}

#[test]
fn python_sdk_2_legacy_mode_and_sse_client_stay_on_the_handshake_era() {
    let r = Relay::start(&[], &[]);
    check_run(&sdk2(&["legacy", &format!("http://{}/mcp", r.addr)]), false);
    check_run(&sdk2(&["sse", &format!("http://{}/sse", r.addr)]), false);
}

#[test]
fn streamed_modern_calls_share_the_connection_cap_with_other_streams() {
    // A listen stream takes a slot of CLAUDE_BRIDGE_MAX_MCP_STREAMS; one more is refused.
    let r = Relay::start(
        &[],
        &[
            ("CLAUDE_BRIDGE_MAX_MCP_STREAMS", "1"),
            ("CLAUDE_BRIDGE_KEEPALIVE_SECONDS", "1"),
        ],
    );
    let listen = modern(1, "subscriptions/listen", json!({"notifications": {}}));
    let mut first = open_post(&r, &listen);
    read_stream_until(&mut first, |b| b.contains("acknowledged"));
    let second = post(
        &r,
        &modern(2, "subscriptions/listen", json!({"notifications": {}})),
        &[],
    );
    assert_eq!(second.status, 503);
    drop(first);
    // The slot comes back when the client leaves (seen at the next keep-alive write at the
    // latest); wait for the condition, not for a time.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = TcpStream::connect(r.addr).unwrap();
        let text = listen.to_string();
        let mut w = s.try_clone().unwrap();
        write!(
            w,
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {V}\r\n\
             Mcp-Method: subscriptions/listen\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut conn = BufReader::new(s);
        let head = read_response(&mut conn, true).unwrap();
        if head.status == 200 {
            break;
        }
        assert_eq!(head.status, 503);
        assert!(Instant::now() < deadline, "the stream slot never came back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn modern_waiting_tools_report_progress_on_their_post_until_they_are_answered() {
    let r = Relay::start(&[], &[]);
    let first = r.say("eras:p", "t", "one")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = |mut call: Value, t: &str| {
        call["params"]["_meta"]["progressToken"] = json!(t);
        call
    };
    let wait = token(
        modern(
            40,
            "tools/call",
            json!({"name": "bridge_wait",
            "arguments": {"channel": "eras:p", "since_id": first, "timeout_seconds": 50}}),
        ),
        "w",
    );
    let claim = token(
        modern(
            41,
            "tools/call",
            json!({"name": "bridge_claim",
            "arguments": {"channel": "eras:jobs", "consumer": "c", "wait_seconds": 50}}),
        ),
        "c",
    );
    let mut waiting = open_post(&r, &wait);
    let mut claiming = open_post(&r, &claim);
    // Both report progress (every 15 s) while nothing comes.
    for (conn, t) in [(&mut waiting, "w"), (&mut claiming, "c")] {
        let body = read_stream_until(conn, |b| b.contains("notifications/progress"));
        let note = events(&body).pop().unwrap();
        assert_eq!(note["params"]["progressToken"], t, "{note}");
        assert_eq!(note["params"]["total"], 50);
    }
    r.say("eras:p", "t", "two");
    let enqueue = modern(
        42,
        "tools/call",
        json!({"name": "bridge_enqueue",
        "arguments": {"channel": "eras:jobs", "payload": 1}}),
    );
    assert_eq!(post(&r, &enqueue, &[]).status, 200);
    let body = read_stream_until(&mut waiting, |b| b.contains("\"id\":40"));
    let done = events(&body).pop().unwrap();
    assert_eq!(
        done["result"]["structuredContent"]["messages"][0]["content"],
        "two"
    );
    let body = read_stream_until(&mut claiming, |b| b.contains("\"id\":41"));
    let done = events(&body).pop().unwrap();
    assert_eq!(done["result"]["resultType"], "complete");
    assert!(
        done["result"]["structuredContent"]["task"]["task_id"].is_string(),
        "{done}"
    );
}
