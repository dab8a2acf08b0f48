//! MCP over stdio and legacy SSE, driven by the official Python SDK (`tests/clients/`) and by
//! raw HTTP for the transport's status codes.

use crate::support::{run_client, thread_count, Relay, TempDir, BIN};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The 13 tools of the 1.3 contract, then the two presence tools that extend it.
const TOOLS: [&str; 15] = [
    "bridge_send",
    "bridge_receive",
    "bridge_wait",
    "bridge_ack",
    "bridge_channels",
    "bridge_ping",
    "bridge_clear",
    "bridge_status",
    "bridge_enqueue",
    "bridge_claim",
    "bridge_complete",
    "bridge_fail",
    "bridge_tasks",
    "bridge_agents",
    "bridge_card",
];

/// Check one SDK session's output (`tests/clients/mcp_check.py`) field by field.
pub(crate) fn check_session(out: &Value) {
    assert_eq!(out["protocol_version"], "2025-11-25");
    assert_eq!(out["server_info"]["name"], "claude-bridge");
    assert_eq!(out["server_info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(out["instructions"].as_str().unwrap().contains("untrusted"));
    assert_eq!(out["capabilities"]["tools"]["listChanged"], false);
    let tools = out["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, TOOLS);
    for t in tools {
        assert!(!t["description"].as_str().unwrap().is_empty());
        assert_eq!(
            t["outputSchema"],
            json!({"type": "object", "additionalProperties": true})
        );
        assert_eq!(t["annotations"]["openWorldHint"], false);
        assert!(t["annotations"]["title"].is_string());
    }
    let send = &tools[0];
    assert_eq!(
        send["inputSchema"]["required"],
        json!(["channel", "sender"])
    );
    assert_eq!(
        send["inputSchema"]["properties"]["channel"]["maxLength"],
        256
    );
    assert_eq!(send["annotations"]["idempotentHint"], false);
    let by_name = |n: &str| tools.iter().find(|t| t["name"] == n).unwrap();
    assert_eq!(
        by_name("bridge_clear")["annotations"]["destructiveHint"],
        true
    );
    assert!(by_name("bridge_receive")["annotations"]
        .get("idempotentHint")
        .is_none());
    assert_eq!(
        by_name("bridge_receive")["inputSchema"]["properties"]["limit"]["maximum"],
        500
    );
    assert_eq!(by_name("bridge_ack")["annotations"]["idempotentHint"], true);
    assert_eq!(
        by_name("bridge_ack")["inputSchema"]["required"],
        json!(["channel", "consumer_id", "message_id"])
    );
    // Acks: see the "ack" section of session_run in tests/clients/mcp_check.py.
    let ack = &out["ack"];
    assert_eq!(ack["first"]["advanced"], true);
    assert_eq!(ack["first"]["last_message_id"], ack["ids"][1]);
    assert_eq!(ack["resume"]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(ack["resume"]["messages"][0]["id"], ack["ids"][2]);
    assert_eq!(ack["resume"]["consumer_id"], "worker-1");
    assert_eq!(ack["backward"]["advanced"], false);
    assert_eq!(ack["backward"]["last_seq"], ack["first"]["last_seq"]);
    assert_eq!(ack["unknown"]["code"], "not_found");
    assert_eq!(ack["unknown"]["field"], "message_id");
    // Waits: one with messages after the cursor, one that times out, one without a cursor.
    let wait = &out["wait"];
    assert_eq!(wait["ready"]["timed_out"], false);
    assert_eq!(wait["ready"]["messages"].as_array().unwrap().len(), 2);
    assert_eq!(
        wait["ready"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        [
            "channel",
            "messages",
            "next_cursor",
            "consumer_id",
            "warning",
            "timed_out"
        ]
    );
    assert_eq!(wait["empty"]["timed_out"], true);
    assert_eq!(wait["empty"]["messages"], json!([]));
    assert_eq!(wait["empty"]["next_cursor"], ack["ids"][2]);
    assert!(wait["empty_ms"].as_f64().unwrap() >= 250.0);
    assert_eq!(wait["no_cursor"]["code"], "required");
    assert_eq!(wait["no_cursor"]["field"], "cursor");
    assert_eq!(wait["too_long"]["code"], "out_of_range");
    assert_eq!(wait["too_long"]["field"], "timeout_seconds");
    assert_eq!(
        by_name("bridge_wait")["inputSchema"]["properties"]["timeout_seconds"]["maximum"],
        55
    );
    let calls = out["calls"].as_array().unwrap();
    let ok = |i: usize| {
        assert_eq!(calls[i]["is_error"], false, "call {i}: {}", calls[i]);
        assert_eq!(calls[i]["texts"].as_array().unwrap().len(), 1);
        &calls[i]["structured"]
    };
    let err = |i: usize, code: &str, field: Value| {
        let c = &calls[i];
        assert_eq!(c["is_error"], true, "call {i}: {c}");
        let s = &c["structured"];
        assert_eq!(
            (&s["code"], &s["field"]),
            (&json!(code), &field),
            "call {i}: {s}"
        );
        let text = c["texts"][0].as_str().unwrap();
        assert!(text.contains(s["message"].as_str().unwrap()), "{text}");
        if let Some(f) = field.as_str() {
            assert!(text.contains(f));
        }
        s.clone()
    };
    assert_eq!(ok(0)["messages"], 0);
    assert_eq!(ok(0)["service"], "claude-bridge");
    assert_eq!(*ok(1), json!({"channels": [], "total_messages": 0}));
    assert_eq!(*ok(2), json!({"channels": []}));
    assert!(calls[1]["texts"][0]
        .as_str()
        .unwrap()
        .contains("no channels"));
    let first = ok(3);
    assert_eq!(
        first.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "id",
            "seq",
            "channel",
            "sender",
            "timestamp",
            "deduplicated"
        ]
    );
    assert_eq!(
        (&first["channel"], &first["sender"], &first["deduplicated"]),
        (&json!("sdk:main"), &json!("py"), &json!(false))
    );
    let text = calls[3]["texts"][0].as_str().unwrap();
    assert!(
        text.contains(first["id"].as_str().unwrap())
            && text.contains(first["timestamp"].as_str().unwrap())
    );
    let keyed = ok(4);
    let replay = ok(5);
    assert_eq!(replay["deduplicated"], true);
    assert_eq!(
        (&replay["id"], &replay["seq"], &replay["timestamp"]),
        (&keyed["id"], &keyed["seq"], &keyed["timestamp"])
    );
    assert!(calls[5]["texts"][0]
        .as_str()
        .unwrap()
        .contains("deduplicated"));
    let envelope = ok(6);
    let all = ok(7);
    assert_eq!(
        all.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "channel",
            "messages",
            "next_cursor",
            "consumer_id",
            "warning"
        ]
    );
    let msgs = all["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["content"], "hello from python");
    assert_eq!(msgs[0]["encoding"], "legacy_text");
    assert_eq!(msgs[1]["encoding"], "legacy_json");
    assert_eq!(msgs[2]["encoding"], "structured");
    assert_eq!(
        msgs[2]["message"],
        json!({"schema_version": 1, "type": "note", "content": {"k": [1, 2]}})
    );
    assert_eq!(all["next_cursor"], envelope["id"]);
    assert_eq!(
        (&all["consumer_id"], &all["warning"]),
        (&Value::Null, &Value::Null)
    );
    let text = calls[7]["texts"][0].as_str().unwrap();
    assert!(text.contains("hello from python") && text.contains(msgs[0]["id"].as_str().unwrap()));
    let stale = ok(8);
    assert_eq!(
        *stale,
        json!({"channel":"sdk:main","messages":[],"next_cursor":"not-a-real-id","consumer_id":null,"warning":"since_id_not_found"})
    );
    assert!(calls[8]["texts"][0].as_str().unwrap().contains("not-a-re"));
    assert_eq!(ok(9)["messages"].as_array().unwrap().len(), 1);
    assert_eq!(ok(10)["total_messages"], 3);
    assert_eq!(ok(10)["channels"][0]["count"], 3);
    assert_eq!(
        (&ok(11)["channels"], &ok(11)["messages"]),
        (&json!(1), &json!(3))
    );
    let status = ok(12);
    assert_eq!(status["channels"][0]["total"], 3);
    assert_eq!(
        status["channels"][0]["messages"].as_array().unwrap().len(),
        2
    );
    err(13, "surrounding_whitespace", json!("channel"));
    err(14, "exclusive", json!("content"));
    err(15, "unknown_field", json!("extra"));
    let big = err(16, "too_large", json!("content"));
    assert_eq!(big["message"], "must be at most 131072 UTF-8 bytes");
    err(17, "conflict", json!("idempotency_key"));
    err(18, "out_of_range", json!("limit"));
    err(19, "invalid_type", json!("limit"));
    err(20, "required", json!("channel"));
    let unknown = err(21, "unknown_tool", json!("name"));
    assert!(
        calls[21]["texts"][0]
            .as_str()
            .unwrap()
            .contains("bridge_no_such_tool"),
        "{unknown}"
    );
    assert_eq!(*ok(22), json!({"channel": "sdk:main", "cleared": 3}));
    assert_eq!(*ok(23), json!({"channel": "sdk:never", "cleared": 0}));
    assert_eq!(*ok(24), json!({"channels": [], "total_messages": 0}));
    err(25, "unknown_field", json!("verbose"));
    err(26, "unknown_field", json!("channel"));
    err(27, "required", json!("channel"));
    err(28, "control_character", json!("channel"));
    err(29, "invalid_type", json!("per_channel"));
    assert_eq!(
        *ok(30),
        json!({"channels": []}),
        "per_channel is clamped, not an error"
    );
}

/// Replace values that differ between runs (ids, times) so two sessions can be compared.
fn normalise(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let volatile = matches!(
                        k.as_str(),
                        "id" | "timestamp" | "server_time" | "last_timestamp" | "next_cursor"
                    );
                    (
                        k.clone(),
                        if volatile && v.is_string() {
                            json!("<v>")
                        } else {
                            normalise(v)
                        },
                    )
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

#[test]
fn python_sdk_over_stdio_sse_and_streamable_http_give_the_same_results() {
    let dir = TempDir::new();
    let db = dir.path().join("stdio.db").display().to_string();
    let stdio = run_client("mcp_check.py", &["stdio", BIN, &db]);
    check_session(&stdio);
    let r = Relay::start(&[], &[]);
    let sse = run_client("mcp_check.py", &["sse", &format!("http://{}/sse", r.addr)]);
    check_session(&sse);
    let r2 = Relay::start(&[], &[]);
    let http = run_client(
        "mcp_check.py",
        &["http", &format!("http://{}/mcp", r2.addr)],
    );
    check_session(&http);
    let pick = |o: &Value| {
        normalise(&json!(o["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["structured"])
            .collect::<Vec<_>>()))
    };
    assert_eq!(pick(&stdio), pick(&sse));
    assert_eq!(pick(&stdio), pick(&http));
    assert_eq!(stdio["tools"], sse["tools"]);
    assert_eq!(stdio["tools"], http["tools"]);
}

#[test]
fn python_sdk_over_streamable_http_with_a_token() {
    let r = Relay::start(&["--auth-token", "sdk-token"], &[]);
    let url = format!("http://{}/mcp", r.addr);
    check_session(&run_client("mcp_check.py", &["http", &url, "sdk-token"]));
}

#[test]
fn python_sdk_over_sse_with_a_token() {
    let r = Relay::start(&["--auth-token", "sdk-token"], &[]);
    let out = run_client(
        "mcp_check.py",
        &["sse", &format!("http://{}/sse", r.addr), "sdk-token"],
    );
    check_session(&out);
}

fn open_stream(r: &Relay, extra: &str) -> (BufReader<TcpStream>, String) {
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{extra}\r\n"
    )
    .unwrap();
    let mut rd = BufReader::new(s);
    let head = read_head(&mut rd);
    assert!(head[0].starts_with("HTTP/1.1 200"), "{}", head[0]);
    assert!(is_event_stream(&head));
    // The body is chunked: skip chunk-size lines up to the endpoint event.
    let mut line = String::new();
    while line != "event: endpoint\n" {
        line.clear();
        assert!(rd.read_line(&mut line).unwrap() > 0, "stream ended");
    }
    line.clear();
    rd.read_line(&mut line).unwrap();
    let path = line.trim().strip_prefix("data: ").unwrap().to_string();
    let id = path.strip_prefix("/messages/?session_id=").unwrap();
    assert_eq!(id.len(), 32);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    line.clear();
    rd.read_line(&mut line).unwrap();
    (rd, path)
}

/// Read a response head: the status line, then each header line, up to the blank line.
fn read_head(rd: &mut BufReader<TcpStream>) -> Vec<String> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        rd.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            return head;
        }
        head.push(line.trim_end().to_string());
    }
}

/// POST one call to /mcp in session `sid`, accepting an event stream; returns the reader
/// positioned at the stream's body (after checking it is one).
fn post_streamed(r: &Relay, sid: &str, call: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {sid}\r\nContent-Length: {}\r\n\r\n{call}",
        call.len()
    )
    .unwrap();
    let mut rd = BufReader::new(s);
    assert!(is_event_stream(&read_head(&mut rd)));
    rd
}

fn is_event_stream(head: &[String]) -> bool {
    head.iter().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("content-type: text/event-stream")
    })
}

/// Read events until a `message` event arrives; return its data.
fn next_message(rd: &mut BufReader<TcpStream>) -> Value {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(rd.read_line(&mut line).unwrap() > 0, "stream ended");
        if let Some(data) = line.strip_prefix("data: ") {
            return serde_json::from_str(data).unwrap();
        }
    }
}

#[test]
fn sse_wire_status_codes() {
    let r = Relay::start(
        &["--auth-token", "tok"],
        &[("CLAUDE_BRIDGE_MAX_MCP_STREAMS", "2")],
    );
    let auth = ("Authorization", "Bearer tok");
    assert_eq!(r.get("/sse").status, 401);
    let (mut rd, path) = open_stream(&r, "Authorization: Bearer tok\r\n");
    let post =
        |p: &str, body: &[u8], headers: &[(&str, &str)]| r.request("POST", p, headers, Some(body));
    let json_hdr = ("Content-Type", "application/json");
    let ping = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let ok = post(&path, ping, &[auth, json_hdr]);
    assert_eq!(ok.status, 202);
    assert_eq!(
        next_message(&mut rd),
        json!({"jsonrpc":"2.0","id":1,"result":{}})
    );
    // Notifications get no reply; a bad JSON-RPC object gets an error reply on the stream.
    assert_eq!(
        post(
            &path,
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            &[auth, json_hdr]
        )
        .status,
        202
    );
    assert_eq!(
        post(
            &path,
            br#"{"jsonrpc":"2.0","id":2,"method":"server/discover"}"#,
            &[auth, json_hdr]
        )
        .status,
        202
    );
    assert_eq!(next_message(&mut rd)["error"]["code"], -32601);
    for (p, status) in [
        ("/messages/", 400),
        ("/messages/?session_id=", 400),
        ("/messages/?session_id=XYZ", 400),
        (
            "/messages/?session_id=0123456789ABCDEF0123456789ABCDEF",
            400,
        ),
        (
            "/messages/?session_id=0123456789abcdef0123456789abcdef",
            404,
        ),
    ] {
        let x = post(p, ping, &[auth, json_hdr]);
        assert_eq!(x.status, status, "{p}");
        assert!(x.json()["error"].is_string());
    }
    assert_eq!(post(&path, b"not json", &[auth, json_hdr]).status, 400);
    assert_eq!(post(&path, b"42", &[auth, json_hdr]).status, 400);
    assert_eq!(
        post(&path, ping, &[auth, ("Content-Type", "text/plain")]).status,
        415
    );
    assert_eq!(post(&path, ping, &[json_hdr]).status, 401);
    assert_eq!(
        post(
            &path,
            ping,
            &[auth, json_hdr, ("Origin", "http://evil.example")]
        )
        .status,
        403
    );
    assert_eq!(
        post(&path, ping, &[auth, json_hdr, ("Host", "evil.example")]).status,
        400
    );
    assert_eq!(
        r.get_with("/sse", &[auth, ("Host", "evil.example")]).status,
        400
    );
    // The stream cap (2): one open, a second fits, a third is refused.
    let (_rd2, _) = open_stream(&r, "Authorization: bearer tok\r\n");
    let over = r.get_with("/sse", &[auth]);
    assert_eq!(over.status, 503);
    assert!(over.header("Retry-After").is_some());
    assert!(over.json()["error"].is_string());
    // A case variant of the scheme is the same credential.
    assert_eq!(
        post(&path, ping, &[("Authorization", "BEARER tok"), json_hdr]).status,
        202
    );
    drop(rd);
}

#[test]
fn a_vanished_client_leaves_no_thread_and_frees_its_session() {
    let r = Relay::start(
        &[],
        &[
            ("CLAUDE_BRIDGE_KEEPALIVE_SECONDS", "1"),
            ("CLAUDE_BRIDGE_MAX_MCP_STREAMS", "20"),
        ],
    );
    let pid = r.child.id();
    assert_eq!(r.get("/status").status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let baseline = thread_count(pid);
    let streams: Vec<_> = (0..20).map(|_| open_stream(&r, "")).collect();
    let during = thread_count(pid);
    assert!(
        during >= baseline + 20,
        "baseline {baseline}, during {during}"
    );
    assert_eq!(r.get("/sse").status, 503, "the cap counts open sessions");
    let paths: Vec<String> = streams.iter().map(|(_, p)| p.clone()).collect();
    drop(streams);
    let deadline = Instant::now() + Duration::from_secs(20);
    while thread_count(pid) > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        thread_count(pid) <= baseline,
        "threads: baseline {baseline}, now {}",
        thread_count(pid)
    );
    // Their sessions are gone, and new streams can open.
    let x = r.post_raw(&paths[0], br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    assert_eq!(x.status, 404);
    let (_s, _) = open_stream(&r, "");
}

/// A `--stdio` relay as a child, with its stdin for writing and a reader of its stdout.
struct StdioRelay {
    child: std::process::Child,
    stdin: Arc<Mutex<std::process::ChildStdin>>,
    stdout: BufReader<std::process::ChildStdout>,
}

impl StdioRelay {
    fn start(db: &str) -> StdioRelay {
        let mut child = Command::new(BIN)
            .args(["--stdio", "--db", db])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = Arc::new(Mutex::new(child.stdin.take().unwrap()));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        StdioRelay {
            child,
            stdin,
            stdout,
        }
    }

    fn call(&mut self, id: u64, tool: &str, args: Value) -> Value {
        let line = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}});
        writeln!(self.stdin.lock().unwrap(), "{line}").unwrap();
        let mut out = String::new();
        self.stdout.read_line(&mut out).unwrap();
        serde_json::from_str(&out).unwrap()
    }
}

impl Drop for StdioRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn stdio_protocol_lines_bad_input_and_end_of_input() {
    let long = format!("{{\"pad\":\"{}\"}}", "x".repeat(3000));
    let input = format!(
        "{}\nnot json\n\n{long}\n{}\n{}\n",
        json!({"jsonrpc":"2.0","id":"d","method":"server/discover"}),
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"bridge_ping","arguments":{}}}),
    );
    // stdin is closed after the input: the process must exit 0 after answering.
    let (lines, _) = stdio_session(&[("CLAUDE_BRIDGE_MAX_REQUEST_BYTES", "2048")], &input);
    assert_eq!(lines.len(), 5);
    // server/discover is the 2026-07-28 revision's (tests/eras.rs); without its `_meta` it is
    // a malformed request.
    assert_eq!(
        (&lines[0]["id"], &lines[0]["error"]["code"]),
        (&json!("d"), &json!(-32602))
    );
    assert_eq!(
        (&lines[1]["id"], &lines[1]["error"]["code"]),
        (&Value::Null, &json!(-32700))
    );
    assert_eq!(lines[2]["error"]["code"], -32600);
    assert_eq!(lines[3]["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(lines[4]["result"]["isError"], false);
}

#[test]
fn stdio_and_http_processes_share_one_db() {
    let r = Relay::start(&[], &[]);
    let db = r.db.display().to_string();
    let mut s = StdioRelay::start(&db);
    // A send over stdio is read over /sse ...
    let sent = s.call(
        1,
        "bridge_send",
        json!({"channel":"x:shared","sender":"stdio","content":"from stdio"}),
    );
    assert_eq!(sent["result"]["isError"], false);
    let (mut rd, path) = open_stream(&r, "");
    r.post_raw(&path, br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bridge_receive","arguments":{"channel":"x:shared"}}}"#);
    let got = next_message(&mut rd);
    assert_eq!(
        got["result"]["structuredContent"]["messages"][0]["content"],
        "from stdio"
    );
    // ... and the other way round.
    r.post_raw(&path, br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"bridge_send","arguments":{"channel":"x:shared","sender":"sse","content":"from sse"}}}"#);
    assert_eq!(next_message(&mut rd)["result"]["isError"], false);
    let read = s.call(2, "bridge_receive", json!({"channel":"x:shared"}));
    let msgs = read["result"]["structuredContent"]["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        msgs.iter()
            .map(|m| m["content"].clone())
            .collect::<Vec<_>>(),
        [json!("from stdio"), json!("from sse")]
    );
    assert_eq!(r.get("/api/state").json()["total_messages"], 2);
}

#[test]
fn two_processes_four_threads_each_500_sends_no_lock_errors() {
    let r = Relay::start(&[], &[]);
    let db = r.db.display().to_string();
    let mut s = StdioRelay::start(&db);
    // Process 2 (stdio): 4 writer threads share its stdin; one reader counts the replies.
    let stdin = Arc::clone(&s.stdin);
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let stdin = Arc::clone(&stdin);
            std::thread::spawn(move || {
                for i in 0..500 {
                    let line = json!({"jsonrpc":"2.0","id":t * 1000 + i,"method":"tools/call","params":{"name":"bridge_send","arguments":{"channel":format!("two:{t}"),"sender":"stdio","content":format!("s{t}-{i}")}}});
                    writeln!(stdin.lock().unwrap(), "{line}").unwrap();
                }
            })
        })
        .collect();
    // Process 1 (HTTP): 4 threads × 500 keep-alive sends.
    let addr = r.addr;
    let http: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rd = BufReader::new(TcpStream::connect(addr).unwrap());
                for i in 0..500 {
                    let body = json!({"channel":format!("two:h{t}"),"sender":"http","content":format!("h{t}-{i}")}).to_string();
                    write!(rd.get_mut(), "POST /api/send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
                    let resp = crate::support::read_response(&mut rd, false).unwrap();
                    assert_eq!(resp.status, 200, "{}", resp.text());
                }
            })
        })
        .collect();
    let mut errors = 0;
    let mut line = String::new();
    for _ in 0..2000 {
        line.clear();
        s.stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["result"]["isError"] != false {
            errors += 1;
            eprintln!("stdio error: {v}");
        }
    }
    for w in writers.into_iter().chain(http) {
        w.join().unwrap();
    }
    assert_eq!(errors, 0);
    let conn = rusqlite::Connection::open(&r.db).unwrap();
    let (n, distinct): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT content) FROM messages",
            [],
            |x| Ok((x.get(0)?, x.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, distinct), (4000, 4000));
    assert_eq!(r.get("/api/state").json()["total_messages"], 4000);
    let mut sink = Vec::new();
    let _ = s.stdout.get_mut().take(0).read_to_end(&mut sink);
}

#[test]
fn claude_code_connects_over_sse_http_and_stdio_and_reports_a_wrong_token_as_401() {
    let r = Relay::start(&["--auth-token", "cc-token"], &[]);
    let home = TempDir::new();
    let db = home.path().join("stdio.db").display().to_string();
    let url = format!("http://{}/sse", r.addr);
    let run = |args: &[&str]| crate::support::claude(home.path(), &[], args);
    let http_url = format!("http://{}/mcp", r.addr);
    for (kind, name, target, token) in [
        ("sse", "good", &url, "cc-token"),
        ("sse", "bad", &url, "wrong"),
        ("http", "web", &http_url, "cc-token"),
        ("http", "webbad", &http_url, "nope"),
    ] {
        let header = format!("Authorization: Bearer {token}");
        run(&["mcp", "add", "-t", kind, name, target, "-H", &header]);
    }
    run(&["mcp", "add", "local", "--", BIN, "--stdio", "--db", &db]);
    let list = run(&["mcp", "list"]);
    let line = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{name} missing in: {list}"))
            .to_string()
    };
    assert!(
        line("good").contains("Connected") && !line("good").contains("Failed"),
        "{list}"
    );
    assert!(
        line("local").contains("Connected") && !line("local").contains("Failed"),
        "{list}"
    );
    assert!(line("bad").contains("Failed"), "{list}");
    assert!(
        line("web").contains("Connected") && !line("web").contains("Failed"),
        "{list}"
    );
    assert!(!line("webbad").contains("Connected"), "{list}");
    // Claude Code's own log for the bad server names the 401 rejection (not an OAuth attempt).
    let logs_of = |server: &str| {
        let mut logs = String::new();
        let cache = home.path().join(".cache/claude-cli-nodejs");
        for project in std::fs::read_dir(&cache).unwrap().flatten() {
            let dir = project.path().join(format!("mcp-logs-{server}"));
            for f in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                logs.push_str(&std::fs::read_to_string(f.path()).unwrap_or_default());
            }
        }
        logs
    };
    for server in ["bad", "webbad"] {
        let logs = logs_of(server);
        assert!(
            logs.contains("401"),
            "no 401 in Claude Code's log for {server}: {logs}"
        );
        assert!(
            logs.contains("rejected the configured Authorization header"),
            "{server}: {logs}"
        );
    }
}

/// POST a JSON-RPC body to /mcp with the usual headers plus `extra`.
fn mcp_post(r: &Relay, body: &str, extra: &[(&str, &str)]) -> crate::support::Resp {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    for (k, v) in extra {
        headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
        headers.push((k, v));
    }
    r.request("POST", "/mcp", &headers, Some(body.as_bytes()))
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
const PING: &str = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;

fn rpc_code(x: &crate::support::Resp) -> Value {
    let v = x.json();
    assert_eq!(v["id"], Value::Null, "transport errors carry id null: {v}");
    v["error"]["code"].clone()
}

#[test]
fn streamable_http_wire_status_codes() {
    let r = Relay::start(&["--auth-token", "t"], &[]);
    let auth = ("Authorization", "Bearer t");
    let init = mcp_post(&r, INIT, &[auth]);
    assert_eq!(init.status, 200);
    assert_eq!(init.header("Content-Type"), Some("application/json"));
    let sid = init.header("Mcp-Session-Id").unwrap().to_string();
    assert_eq!(sid.len(), 32);
    assert_eq!(init.json()["result"]["protocolVersion"], "2025-06-18");
    fn headers<'a>(sid: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut h = vec![("Authorization", "Bearer t"), ("Mcp-Session-Id", sid)];
        h.extend_from_slice(extra);
        h
    }
    let with = |extra: &[(&'static str, &'static str)]| headers(&sid, extra);
    // A request in the session; a notification → 202 with no body.
    let ping = mcp_post(&r, PING, &with(&[]));
    assert_eq!(
        (ping.status, ping.json()),
        (200, json!({"jsonrpc":"2.0","id":2,"result":{}}))
    );
    let note = mcp_post(
        &r,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        &with(&[]),
    );
    assert_eq!((note.status, note.body.len()), (202, 0));
    // Missing session → 400; unknown → 404; a discover probe without its `_meta` → 400 with a
    // JSON-RPC error (-32602; with it, see tests/eras.rs).
    let x = mcp_post(&r, PING, &[auth]);
    assert_eq!((x.status, rpc_code(&x)), (400, json!(-32600)));
    let x = mcp_post(
        &r,
        PING,
        &[auth, ("Mcp-Session-Id", "0123456789abcdef0123456789abcdef")],
    );
    assert_eq!((x.status, rpc_code(&x)), (404, json!(-32600)));
    let probe = mcp_post(
        &r,
        r#"{"jsonrpc":"2.0","id":0,"method":"server/discover"}"#,
        &[
            auth,
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "server/discover"),
        ],
    );
    assert_eq!(probe.status, 400);
    assert!(probe.json()["error"]["code"].is_i64());
    // Header checks.
    let x = mcp_post(&r, PING, &with(&[("Accept", "text/event-stream")]));
    assert_eq!((x.status, rpc_code(&x)), (406, json!(-32600)));
    let x = mcp_post(&r, PING, &with(&[("Accept", "*/*")]));
    assert_eq!(x.status, 406);
    let x = mcp_post(&r, PING, &with(&[("Accept", "application/json")]));
    assert_eq!(x.status, 200, "text/event-stream need not be listed");
    // A version we do not know: the 2026-07-28 revision's answer, naming ours.
    let x = mcp_post(&r, PING, &with(&[("MCP-Protocol-Version", "1999-01-01")]));
    assert_eq!(
        (x.status, x.json()["error"]["code"].clone()),
        (400, json!(-32022))
    );
    assert_eq!(x.json()["error"]["data"]["requested"], "1999-01-01");
    assert_eq!(
        mcp_post(&r, PING, &with(&[("MCP-Protocol-Version", "2025-06-18")])).status,
        200
    );
    let x = mcp_post(&r, "not json", &with(&[]));
    assert_eq!((x.status, rpc_code(&x)), (400, json!(-32700)));
    let x = mcp_post(&r, &format!("[{PING}]"), &with(&[]));
    assert_eq!(
        (x.status, rpc_code(&x)),
        (400, json!(-32600)),
        "no batches outside 2025-03-26"
    );
    assert_eq!(
        mcp_post(&r, PING, &with(&[("Content-Type", "text/plain")])).status,
        415
    );
    assert_eq!(
        mcp_post(&r, PING, &[("Mcp-Session-Id", sid.as_str())]).status,
        401
    );
    assert_eq!(
        mcp_post(&r, PING, &with(&[("Origin", "http://evil.example")])).status,
        403
    );
    assert_eq!(
        mcp_post(&r, PING, &with(&[("Host", "evil.example")])).status,
        400
    );
    // The Origin check covers GET on /mcp too.
    assert_eq!(
        r.get_with(
            "/mcp",
            &with(&[
                ("Origin", "http://evil.example"),
                ("Accept", "text/event-stream")
            ])
        )
        .status,
        403
    );
    // GET stream: one per session; without a session → 400.
    assert_eq!(
        r.get_with("/mcp", &[auth, ("Accept", "text/event-stream")])
            .status,
        400
    );
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t\r\nAccept: text/event-stream\r\nMcp-Session-Id: {sid}\r\n\r\n").unwrap();
    let mut first = String::new();
    BufReader::new(s.try_clone().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let second = r.get_with("/mcp", &with(&[("Accept", "text/event-stream")]));
    assert_eq!(second.status, 409);
    // Other methods → 405.
    let x = r.request(
        "PUT",
        "/mcp",
        &with(&[("Content-Type", "application/json")]),
        Some(b"{}"),
    );
    assert_eq!(
        (x.status, x.header("Allow")),
        (405, Some("GET, POST, DELETE"))
    );
    // DELETE ends the session; later use → 404; DELETE without a session → 400.
    assert_eq!(r.request("DELETE", "/mcp", &[auth], None).status, 400);
    assert_eq!(r.request("DELETE", "/mcp", &with(&[]), None).status, 200);
    assert_eq!(mcp_post(&r, PING, &with(&[])).status, 404);
    drop(s);
}

#[test]
fn streamable_http_batches_only_on_2025_03_26_and_stateless_mode() {
    let r = Relay::start(&[], &[]);
    let init = INIT.replace("2025-06-18", "2025-03-26");
    let sid = mcp_post(&r, &init, &[])
        .header("Mcp-Session-Id")
        .unwrap()
        .to_string();
    let batch = format!("[{PING},{}]", PING.replace("\"id\":2", "\"id\":3"));
    let x = mcp_post(&r, &batch, &[("Mcp-Session-Id", &sid)]);
    assert_eq!(x.status, 200);
    assert_eq!(x.json().as_array().unwrap().len(), 2);
    // Stateless: no session issued or checked; GET and DELETE are 405.
    let s = Relay::start(&[], &[("CLAUDE_BRIDGE_STATELESS_HTTP", "true")]);
    let x = mcp_post(&s, INIT, &[]);
    assert_eq!(x.status, 200);
    assert!(x.header("Mcp-Session-Id").is_none());
    let call = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"bridge_ping","arguments":{}}}"#;
    let x = mcp_post(&s, call, &[]);
    assert_eq!(
        (x.status, x.json()["result"]["isError"].clone()),
        (200, json!(false))
    );
    assert_eq!(
        s.get_with("/mcp", &[("Accept", "text/event-stream")])
            .status,
        405
    );
    assert_eq!(s.request("DELETE", "/mcp", &[], None).status, 405);
}

#[test]
fn streamable_http_streams_progress_while_a_call_runs() {
    let r = Relay::start(&[], &[("CLAUDE_BRIDGE_CONFORMANCE_FIXTURES", "1")]);
    let sid = mcp_post(&r, INIT, &[])
        .header("Mcp-Session-Id")
        .unwrap()
        .to_string();
    let call = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"p1"}}}"#;
    let mut rd = post_streamed(&r, &sid, call);
    let mut events = Vec::new();
    while events.len() < 4 {
        let v = next_message(&mut rd);
        events.push((Instant::now(), v));
    }
    for (i, (_, v)) in events.iter().take(3).enumerate() {
        assert_eq!(v["method"], "notifications/progress", "{v}");
        assert_eq!(v["params"]["progressToken"], "p1");
        assert_eq!(v["params"]["progress"], json!([0, 50, 100][i]));
    }
    assert_eq!(events[3].1["id"], 9);
    assert_eq!(events[3].1["result"]["isError"], false);
    // Written while the call ran: the first progress came well before the result.
    assert!(events[3].0 - events[0].0 >= Duration::from_millis(80));
    // A client that accepts only JSON gets one JSON body.
    let x = mcp_post(
        &r,
        call,
        &[("Mcp-Session-Id", &sid), ("Accept", "application/json")],
    );
    assert_eq!(x.header("Content-Type"), Some("application/json"));
    assert_eq!(x.json()["id"], 9);
}

#[test]
fn a_vanished_client_cancels_its_streamed_wait() {
    let r = Relay::start(&[], &[("CLAUDE_BRIDGE_KEEPALIVE_SECONDS", "1")]);
    let pid = r.child.id();
    let sid = mcp_post(&r, INIT, &[])
        .header("Mcp-Session-Id")
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(300));
    let baseline = thread_count(pid);
    let call = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"bridge_wait","arguments":{"channel":"gone:a","consumer_id":"c","timeout_seconds":30}}}"#;
    let rd = post_streamed(&r, &sid, call);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        thread_count(pid) > baseline,
        "the wait runs on its own threads"
    );
    drop(rd); // the client vanishes
    let t = Instant::now();
    while thread_count(pid) > baseline && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the wait was not cancelled: threads {} > {baseline} after {:?}",
        thread_count(pid),
        t.elapsed()
    );
}

/// A call that panics inside the relay (a hidden fixture tool, served only with
/// `CLAUDE_BRIDGE_CONFORMANCE_FIXTURES`) is answered with a JSON-RPC internal error, and the
/// process and the session go on: over `--stdio` (where nothing else would catch it) and `/mcp`.
#[test]
fn a_panicking_call_is_answered_with_an_error_on_every_transport() {
    let panic_call = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"test_panic_boundary","arguments":{}}});
    let ping = json!({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"bridge_ping","arguments":{}}});
    let input = format!("{panic_call}\n{ping}\n");
    let (lines, stderr) = stdio_session(&[("CLAUDE_BRIDGE_CONFORMANCE_FIXTURES", "1")], &input);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        (&lines[0]["id"], &lines[0]["error"]["code"]),
        (&json!(7), &json!(-32603))
    );
    assert_eq!(lines[1]["result"]["isError"], false, "the session goes on");
    assert!(stderr.contains("panicked"), "the bug is logged: {stderr}");

    let r = Relay::start(&[], &[("CLAUDE_BRIDGE_CONFORMANCE_FIXTURES", "1")]);
    let sid = mcp_post(&r, INIT, &[])
        .header("Mcp-Session-Id")
        .unwrap()
        .to_string();
    let x = mcp_post(&r, &panic_call.to_string(), &[("Mcp-Session-Id", &sid)]);
    assert_eq!(x.status, 200);
    assert_eq!(x.json()["error"]["code"], -32603);
    let x = mcp_post(&r, &ping.to_string(), &[("Mcp-Session-Id", &sid)]);
    assert_eq!(x.json()["result"]["isError"], false);
}

/// Run a `--stdio` relay on a fresh db with `env`, feed it `input` and close its stdin; it must
/// exit 0. Returns its stdout lines as JSON (stdout carries JSON-RPC only) and its stderr.
fn stdio_session(env: &[(&str, &str)], input: &str) -> (Vec<Value>, String) {
    let dir = TempDir::new();
    let db = dir.path().join("s.db").display().to_string();
    let mut child = Command::new(BIN)
        .args(["--stdio", "--db", &db])
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout carries JSON-RPC only"))
        .collect();
    (lines, stderr)
}
