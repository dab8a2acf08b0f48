//! Who is who (issue 18): agents with their own tokens and channel grants, senders bound to
//! identity, revocation, presence and the roster, over the JSON API, the event streams and MCP
//! on all three transports (the official Python SDK), with the `agent` subcommand on `--db`
//! and over HTTP.

use crate::support::{field_error, run, run_client, Relay, Resp, BIN};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-token-for-tests";

/// `claude-bridge agent add NAME --grant …` on the relay's db file (the relay keeps running);
/// returns the token it printed.
fn add_on_db(db: &Path, name: &str, grants: &[&str]) -> String {
    let mut args = vec!["agent", "add", name, "--db", db.to_str().unwrap()];
    for g in grants {
        args.extend(["--grant", g]);
    }
    let out = run(&args, &[], db.parent().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("cb_") && token.len() == 46, "{token}");
    token
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn get(r: &Relay, token: &str, path: &str) -> Resp {
    r.get_with(path, &[("Authorization", &bearer(token))])
}

fn post(r: &Relay, token: &str, path: &str, body: &Value) -> Resp {
    r.request(
        "POST",
        path,
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "application/json"),
        ],
        Some(body.to_string().as_bytes()),
    )
}

/// A 403 with the §4.1 shape naming `field` and code `forbidden`.
fn forbidden(r: &Resp, field: &str) {
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(field_error(r), ("forbidden".into(), field.into()));
}

/// Every byte of the db and its write-ahead log.
fn db_bytes(db: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", db.display());
        if let Ok(b) = std::fs::read(&p) {
            all.extend(b);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A relay with the admin token and the audit log, and two agents with disjoint grants:
/// alice (`alice:*` read+write, added over HTTP) and bob (`bob:*` read+write, added with the
/// subcommand on the db file while the relay runs).
fn two_agents(env: &[(&str, &str)]) -> (Relay, String, String) {
    let r = Relay::start(&["--auth-token", ADMIN, "--audit-log"], env);
    let added = post(
        &r,
        ADMIN,
        "/api/agents",
        &json!({"name": "alice", "grants": ["alice:*=read", "alice:*=write"]}),
    );
    assert_eq!(added.status, 200, "{}", added.text());
    let alice = added.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        added.json()["grants"],
        json!(["alice:*=read", "alice:*=write"])
    );
    let bob = add_on_db(&r.db, "bob", &["bob:*=read", "bob:*=write"]);
    // The relay follows the table at its watcher's next look.
    wait_until("bob's token is accepted", Duration::from_secs(5), || {
        get(&r, &bob, "/api/state").status == 200
    });
    (r, alice, bob)
}

#[test]
fn two_agents_read_and_write_only_their_grants_over_the_json_api() {
    let (r, alice, bob) = two_agents(&[]);
    // Each writes its own channels; the sender is its name whether given or not.
    let a = post(
        &r,
        &alice,
        "/api/send",
        &json!({"channel": "alice:x", "content": "a1"}),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let a_id = a.json()["id"].as_str().unwrap().to_owned();
    let b = post(
        &r,
        &bob,
        "/api/send",
        &json!({"channel": "bob:x", "sender": "bob", "content": "b1"}),
    );
    assert_eq!(b.status, 200, "{}", b.text());
    let b_id = b.json()["id"].as_str().unwrap().to_owned();
    let listed = get(&r, &alice, "/api/messages?channel=alice:x").json();
    assert_eq!(listed["messages"][0]["sender"], "alice");

    // Neither writes, reads, waits on, acks or follows the other's channels.
    let other = json!({"channel": "bob:x", "sender": "alice", "content": "intrude"});
    forbidden(&post(&r, &alice, "/api/send", &other), "channel");
    forbidden(&get(&r, &alice, "/api/messages?channel=bob:x"), "channel");
    forbidden(
        &get(
            &r,
            &alice,
            "/api/wait?channel=bob:x&consumer_id=alice&timeout_seconds=1",
        ),
        "channel",
    );
    let ack = json!({"channel": "bob:x", "consumer_id": "alice", "message_id": b_id});
    forbidden(&post(&r, &alice, "/api/ack", &ack), "channel");
    forbidden(&get(&r, &alice, "/events/channel/bob:x"), "channel");
    forbidden(&get(&r, &bob, "/api/messages?channel=alice:x"), "channel");
    // A message of a channel it may not read is not found (its channel is not revealed).
    assert_eq!(get(&r, &bob, &format!("/api/messages/{a_id}")).status, 404);
    assert_eq!(
        get(&r, &alice, &format!("/api/messages/{a_id}")).status,
        200
    );

    // Neither sends as the other.
    let spoof = json!({"channel": "alice:x", "sender": "bob", "content": "spoof"});
    forbidden(&post(&r, &alice, "/api/send", &spoof), "sender");

    // Neither clears without an admin grant; the admin token may, and may send as anyone.
    forbidden(
        &post(&r, &alice, "/api/clear", &json!({"channel": "alice:x"})),
        "channel",
    );
    let as_bob = post(
        &r,
        ADMIN,
        "/api/send",
        &json!({"channel": "bob:x", "sender": "bob", "content": "by admin"}),
    );
    assert_eq!(as_bob.status, 200);

    // Listings show only what each may read; the admin sees everything.
    let names = |token: &str| -> Vec<String> {
        get(&r, token, "/api/state").json()["channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&alice), ["alice:x"]);
    assert_eq!(names(&bob), ["bob:x"]);
    assert_eq!(names(ADMIN), ["alice:x", "bob:x"]);

    // Managing agents and the audit log need the admin.
    forbidden(
        &post(&r, &alice, "/api/agents", &json!({"name": "mallory"})),
        "authorization",
    );
    forbidden(&get(&r, &alice, "/api/audit"), "authorization");
    // An admin grant on a pattern allows clear there.
    let g = post(
        &r,
        ADMIN,
        "/api/agents/alice/grants",
        &json!({"grant": "alice:*=admin"}),
    );
    assert_eq!(g.json()["grants"], json!(["alice:*=admin"]), "{}", g.text());
    let c = post(&r, &alice, "/api/clear", &json!({"channel": "alice:x"}));
    assert_eq!(c.status, 200, "{}", c.text());

    // Denials are audited.
    let audit = get(&r, ADMIN, "/api/audit?limit=1000").json();
    let denials = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "forbidden")
        .count();
    assert!(denials >= 8, "{audit}");

    // A wrong token is still 401; the listing of agents shows no token.
    assert_eq!(get(&r, "cb_not-a-token", "/api/state").status, 401);
    let list = run(
        &["agent", "list", "--db", r.db.to_str().unwrap()],
        &[],
        r.db.parent().unwrap(),
    );
    let text = String::from_utf8(list.stdout).unwrap();
    assert!(
        text.contains("alice\talice:*=admin") && text.contains("bob\tbob:*=read bob:*=write"),
        "{text}"
    );
    assert!(!text.contains(&alice) && !text.contains(&bob));
    let roster = get(&r, ADMIN, "/api/agents").json();
    assert!(!roster.to_string().contains(&alice));

    // The db file's bytes hold no token, only their hashes.
    let bytes = db_bytes(&r.db);
    assert!(contains(&bytes, "alice") && contains(&bytes, "bob:*=read"));
    for t in [&alice, &bob] {
        assert!(!contains(&bytes, t), "a token is in the db file");
        assert!(!contains(&bytes, &t[3..20]));
    }
}

/// Open a live channel event stream with `token`; returns the reader after the head.
fn open_stream(r: &Relay, token: &str, path: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut rd = BufReader::new(s);
    let mut status = String::new();
    rd.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    loop {
        let mut line = String::new();
        rd.read_line(&mut line).unwrap();
        if line == "\r\n" {
            return rd;
        }
    }
}

/// Read until the stream ends (its last chunk or the connection closing); returns when.
fn read_to_end(mut rd: BufReader<TcpStream>) -> Instant {
    let mut buf = [0u8; 4096];
    let mut tail = Vec::new();
    loop {
        match rd.read(&mut buf) {
            Ok(0) => return Instant::now(),
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.windows(5).any(|w| w == b"0\r\n\r\n") {
                    return Instant::now();
                }
            }
            Err(e) => panic!("the stream did not end: {e}"),
        }
    }
}

#[test]
fn revoking_an_agent_ends_its_open_event_stream_within_a_second() {
    let (r, alice, bob) = two_agents(&[]);
    post(
        &r,
        &alice,
        "/api/send",
        &json!({"channel": "alice:x", "content": "a1"}),
    );
    post(
        &r,
        &bob,
        "/api/send",
        &json!({"channel": "bob:x", "content": "b1"}),
    );

    // Revoked over HTTP by the admin.
    let stream = open_stream(&r, &alice, "/events/channel/alice:x");
    let ender = std::thread::spawn(move || read_to_end(stream));
    std::thread::sleep(Duration::from_millis(200));
    let revoked_at = Instant::now();
    let rv = r.request(
        "DELETE",
        "/api/agents/alice",
        &[("Authorization", &bearer(ADMIN))],
        None,
    );
    assert_eq!(rv.status, 200, "{}", rv.text());
    let ended = ender.join().unwrap();
    assert!(ended.duration_since(revoked_at) < Duration::from_secs(1));
    assert_eq!(get(&r, &alice, "/api/state").status, 401);

    // Revoked with the subcommand on the db file, from another process.
    let stream = open_stream(&r, &bob, "/events/channel/bob:x");
    let ender = std::thread::spawn(move || read_to_end(stream));
    std::thread::sleep(Duration::from_millis(200));
    let revoked_at = Instant::now();
    let out = run(
        &["agent", "revoke", "bob", "--db", r.db.to_str().unwrap()],
        &[],
        r.db.parent().unwrap(),
    );
    assert!(out.status.success());
    let ended = ender.join().unwrap();
    // The subcommand's own start-up is part of the measured time.
    assert!(ended.duration_since(revoked_at) < Duration::from_secs(2));
    wait_until("bob is refused", Duration::from_secs(2), || {
        get(&r, &bob, "/api/state").status == 401
    });
    // A revoked name can be issued a new token; the old one stays refused.
    let again = add_on_db(&r.db, "bob", &["bob:*=read"]);
    wait_until("the new token works", Duration::from_secs(5), || {
        get(&r, &again, "/api/state").status == 200
    });
    assert_eq!(get(&r, &bob, "/api/state").status, 401);
}

#[test]
fn revoking_an_agent_ends_its_mcp_sessions_and_streams() {
    let (r, alice, _) = two_agents(&[]);
    // A legacy-SSE session: its stream ends.
    let sse = open_stream(&r, &alice, "/sse");
    let ender = std::thread::spawn(move || read_to_end(sse));
    // A /mcp session: its GET stream ends and the session is refused.
    let init = r.request(
        "POST",
        "/mcp",
        &[
            ("Authorization", &bearer(&alice)),
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        Some(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#),
    );
    assert_eq!(init.status, 200);
    let sid = init.header("Mcp-Session-Id").unwrap().to_owned();
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {alice}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {sid}\r\nConnection: close\r\n\r\n").unwrap();
    let mut rd = BufReader::new(s);
    let mut status = String::new();
    rd.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    let get_ender = std::thread::spawn(move || read_to_end(rd));
    std::thread::sleep(Duration::from_millis(200));
    let revoked_at = Instant::now();
    let rv = r.request(
        "DELETE",
        "/api/agents/alice",
        &[("Authorization", &bearer(ADMIN))],
        None,
    );
    assert_eq!(rv.status, 200);
    for ended in [ender.join().unwrap(), get_ender.join().unwrap()] {
        assert!(ended.duration_since(revoked_at) < Duration::from_secs(1));
    }
    let after = r.request(
        "POST",
        "/mcp",
        &[
            ("Authorization", &bearer(&alice)),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            ("Mcp-Session-Id", &sid),
        ],
        Some(br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#),
    );
    assert_eq!(after.status, 401);
}

/// Check one agent's SDK session (`tests/clients/agent_check.py`).
fn check_agent_session(out: &Value, me: &str, other: &str, kind: &str) {
    let ok = |label: &str| {
        assert_eq!(out[label]["is_error"], false, "{label}: {}", out[label]);
        &out[label]["structured"]
    };
    let denied = |label: &str, field: &str| {
        assert_eq!(out[label]["is_error"], true, "{label}: {}", out[label]);
        let e = &out[label]["structured"];
        assert_eq!(
            (e["field"].as_str(), e["code"].as_str()),
            (Some(field), Some("forbidden")),
            "{label}: {e}"
        );
    };
    assert_eq!(ok("send_own")["sender"], me);
    assert_eq!(ok("send_own_named")["sender"], me);
    denied("send_as_other", "sender");
    denied("send_theirs", "channel");
    assert_eq!(ok("receive_own")["messages"][0]["sender"], me);
    denied("receive_theirs", "channel");
    denied("wait_theirs", "channel");
    denied("ack_theirs", "channel");
    denied("enqueue_theirs", "channel");
    denied("clear_own", "channel");
    let channels: Vec<&str> = ok("channels")["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel"].as_str().unwrap())
        .collect();
    assert!(
        channels.iter().all(|c| c.starts_with(&format!("{me}:"))),
        "{channels:?}"
    );
    assert!(channels.contains(&format!("{me}:{kind}").as_str()));
    let status = ok("status")["channels"].to_string();
    assert!(!status.contains(&format!("{other}:")), "{status}");
    let card = ok("card");
    assert_eq!(card["name"], me);
    assert_eq!(
        card["card"],
        json!({"machine": format!("{me}-box"), "task": format!("testing {kind}")})
    );
    denied("card_of_other", "name");
    let roster = ok("agents")["roster"].as_array().unwrap().clone();
    let mine = roster.iter().find(|e| e["name"] == me).unwrap();
    assert_eq!(mine["online"], true);
    assert_eq!(mine["card"]["machine"], format!("{me}-box"));
    assert!(
        ok("agents").get("agents").is_none(),
        "grants are the admin's to see"
    );
}

#[test]
fn two_agents_keep_to_their_grants_over_mcp_on_all_three_transports() {
    let (r, alice, bob) = two_agents(&[]);
    let db = r.db.to_str().unwrap().to_owned();
    for (token, me, other) in [(&alice, "alice", "bob"), (&bob, "bob", "alice")] {
        let url = format!("http://{}/mcp", r.addr);
        check_agent_session(
            &run_client("agent_check.py", &["http", &url, token, me, other]),
            me,
            other,
            "http",
        );
        let url = format!("http://{}/sse", r.addr);
        check_agent_session(
            &run_client("agent_check.py", &["sse", &url, token, me, other]),
            me,
            other,
            "sse",
        );
        check_agent_session(
            &run_client("agent_check.py", &["stdio", BIN, &db, token, me, other]),
            me,
            other,
            "stdio",
        );
    }
    // What each stored carries its own name, whatever the transport.
    let all = get(&r, ADMIN, "/api/state").json();
    for c in all["channels"].as_array().unwrap() {
        let owner = c["group"].as_str().unwrap();
        assert_eq!(c["senders"], json!([owner]), "{c}");
    }
}

#[test]
fn the_roster_shows_agents_online_with_their_cards_and_offline_after_they_leave() {
    let (r, alice, bob) = two_agents(&[("CLAUDE_BRIDGE_PRESENCE_SECONDS", "2")]);
    // Alice holds an MCP session and sets her card with the tool; bob sets his over HTTP.
    let init = r.request(
        "POST",
        "/mcp",
        &[
            ("Authorization", &bearer(&alice)),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ],
        Some(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#),
    );
    let sid = init.header("Mcp-Session-Id").unwrap().to_owned();
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"bridge_card",
        "arguments":{"machine":"laptop","directory":"/src/alice","task":"reviewing"}}});
    let mcp_headers = [
        ("Authorization", bearer(&alice)),
        ("Content-Type", "application/json".into()),
        ("Accept", "application/json".into()),
        ("Mcp-Session-Id", sid.clone()),
    ];
    let h: Vec<(&str, &str)> = mcp_headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let set = r.request("POST", "/mcp", &h, Some(call.to_string().as_bytes()));
    assert_eq!(set.json()["result"]["isError"], false, "{}", set.text());
    let b = post(
        &r,
        &bob,
        "/api/card",
        &json!({"machine": "server", "repo": "github.com/x/y"}),
    );
    assert_eq!(b.status, 200, "{}", b.text());
    forbidden(
        &post(
            &r,
            &bob,
            "/api/card",
            &json!({"name": "alice", "task": "x"}),
        ),
        "name",
    );

    let entry = |name: &str| -> Value {
        let roster = get(&r, ADMIN, "/api/agents").json();
        roster["roster"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let a = entry("alice");
    assert_eq!(
        (a["online"].clone(), a["agent"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(
        a["card"],
        json!({"machine": "laptop", "directory": "/src/alice", "task": "reviewing"})
    );
    assert!(a["last_seen"].as_str().unwrap().ends_with('Z'));
    let b = entry("bob");
    assert_eq!(b["online"], true);
    assert_eq!(
        b["card"],
        json!({"machine": "server", "repo": "github.com/x/y"})
    );

    // Bob holds nothing: after the presence window he is offline; alice's session keeps her on.
    wait_until("bob goes offline", Duration::from_secs(10), || {
        entry("bob")["online"] == false
    });
    assert_eq!(entry("alice")["online"], true);
    // Alice leaves (ends her session): offline once the window passes; her card stays.
    let h: Vec<(&str, &str)> = mcp_headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(r.request("DELETE", "/mcp", &h, None).status, 200);
    wait_until("alice goes offline", Duration::from_secs(10), || {
        entry("alice")["online"] == false
    });
    assert_eq!(entry("alice")["card"]["machine"], "laptop");
}

#[test]
fn without_agents_the_roster_is_keyed_by_the_sender_and_consumer_names_seen() {
    let r = Relay::start(&[], &[]);
    r.say("p:a", "builder", "hi");
    let ack_target = r.say("p:a", "reviewer", "ok")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ack = r.post(
        "/api/ack",
        &json!({"channel": "p:a", "consumer_id": "watcher", "message_id": ack_target}),
    );
    assert_eq!(ack.status, 200);
    let roster = r.get("/api/agents").json();
    let names: Vec<&str> = roster["roster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["builder", "reviewer", "watcher"], "{roster}");
    assert!(roster["roster"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["online"] == true && e["agent"] == false));
    // The admin (here: any loopback caller) sets a card by name; without a name it is refused.
    let c = r.post(
        "/api/card",
        &json!({"name": "builder", "task": "compiling"}),
    );
    assert_eq!(
        c.json()["card"],
        json!({"task": "compiling"}),
        "{}",
        c.text()
    );
    assert_eq!(r.post("/api/card", &json!({"task": "x"})).status, 400);
    assert_eq!(
        r.post("/api/card", &json!({"name": "builder", "mood": "x"}))
            .status,
        400
    );
    let long = "x".repeat(513);
    assert_eq!(
        r.post("/api/card", &json!({"name": "builder", "task": long}))
            .status,
        400
    );
    let edge = "x".repeat(512);
    assert_eq!(
        r.post("/api/card", &json!({"name": "builder", "task": edge}))
            .status,
        200
    );
}

/// Read SSE events (name, data) from a stream until `want` says stop, within `limit`.
fn events_until(
    rd: &mut BufReader<TcpStream>,
    limit: Duration,
    mut want: impl FnMut(&str, &Value) -> bool,
) -> Vec<(String, Value)> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    let (mut name, mut data) = (String::new(), String::new());
    loop {
        assert!(Instant::now() < deadline, "timed out; saw {seen:?}");
        let mut line = String::new();
        if rd.read_line(&mut line).unwrap() == 0 {
            panic!("the stream ended; saw {seen:?}");
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(n) = line.strip_prefix("event: ") {
            name = n.to_owned();
        } else if let Some(d) = line.strip_prefix("data: ") {
            data = d.to_owned();
        } else if line.is_empty() && !name.is_empty() {
            let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            let stop = want(&name, &v);
            seen.push((std::mem::take(&mut name), v));
            if stop {
                return seen;
            }
        }
    }
}

#[test]
fn the_relay_wide_stream_carries_channels_clears_and_presence_within_grants() {
    let (r, alice, bob) = two_agents(&[]);
    let mut admin = open_stream(&r, ADMIN, "/events/relay");
    let mut a = open_stream(&r, &alice, "/events/relay");
    for rd in [&mut admin, &mut a] {
        events_until(rd, Duration::from_secs(5), |n, _| n == "ready");
    }
    // Bob's new channel reaches the admin (created, with its count) but not alice.
    post(
        &r,
        &bob,
        "/api/send",
        &json!({"channel": "bob:new", "content": "b1"}),
    );
    post(
        &r,
        &alice,
        "/api/send",
        &json!({"channel": "alice:new", "content": "a1"}),
    );
    let seen = events_until(&mut admin, Duration::from_secs(5), |n, v| {
        n == "channel" && v["channel"] == "alice:new"
    });
    let bob_new = seen
        .iter()
        .find(|(n, v)| n == "channel" && v["channel"] == "bob:new")
        .expect("bob's channel");
    assert_eq!(
        (bob_new.1["count"].clone(), bob_new.1["created"].clone()),
        (json!(1), json!(true))
    );
    assert_eq!(bob_new.1["senders"], json!(["bob"]));
    let seen = events_until(&mut a, Duration::from_secs(5), |n, v| {
        n == "channel" && v["channel"] == "alice:new"
    });
    assert!(
        !seen.iter().any(|(_, v)| v["channel"] == "bob:new"),
        "alice saw bob's channel: {seen:?}"
    );
    // Presence: bob's new card reaches alice (the roster is everyone's).
    post(&r, &bob, "/api/card", &json!({"task": "streaming"}));
    events_until(&mut a, Duration::from_secs(5), |n, v| {
        n == "presence"
            && v["name"] == "bob"
            && v["card"]["task"] == "streaming"
            && v["online"] == true
    });
    // A message from another process (a --stdio session on the same file) shows too.
    let mut child = crate::support::spawn_stdio(r.db.to_str().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-11-25","capabilities":{{}},"clientInfo":{{"name":"t","version":"0"}}}}}}"#).unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"bridge_send","arguments":{{"channel":"far:away","sender":"stdio-agent","content":"hi"}}}}}}"#).unwrap();
    stdin.flush().unwrap();
    events_until(&mut admin, Duration::from_secs(5), |n, v| {
        n == "channel" && v["channel"] == "far:away" && v["count"] == 1
    });
    drop(stdin);
    let _ = child.wait();
    // A clear.
    post(&r, ADMIN, "/api/clear", &json!({"channel": "bob:new"}));
    events_until(&mut admin, Duration::from_secs(5), |n, v| {
        n == "cleared" && v["channel"] == "bob:new"
    });
    // Revoking alice ends her relay stream.
    let ender = std::thread::spawn(move || read_to_end(a));
    std::thread::sleep(Duration::from_millis(100));
    let at = Instant::now();
    r.request(
        "DELETE",
        "/api/agents/alice",
        &[("Authorization", &bearer(ADMIN))],
        None,
    );
    assert!(ender.join().unwrap().duration_since(at) < Duration::from_secs(1));
}

#[test]
fn an_agent_signs_in_to_the_dashboard_as_itself_and_a_revoked_wait_gets_nothing() {
    let (r, alice, bob) = two_agents(&[]);
    post(
        &r,
        &bob,
        "/api/send",
        &json!({"channel": "bob:x", "content": "b1"}),
    );
    let first = post(
        &r,
        &alice,
        "/api/send",
        &json!({"channel": "alice:x", "content": "a1"}),
    );
    let first_id = first.json()["id"].as_str().unwrap().to_owned();
    // The token traded for a login cookie: the login is alice, with alice's grants.
    let login = r.request(
        "POST",
        "/api/session",
        &[("Authorization", &bearer(&alice))],
        None,
    );
    assert_eq!(login.json()["agent"], "alice", "{}", login.text());
    let cookie = login
        .header("Set-Cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let with_cookie = |path: &str| r.get_with(path, &[("Cookie", &cookie)]);
    assert_eq!(with_cookie("/api/session").json()["agent"], "alice");
    let ids: Vec<Value> = with_cookie("/api/state").json()["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, [json!("alice:x")]);
    forbidden(&with_cookie("/api/messages?channel=bob:x"), "channel");
    // The admin's login says no agent (as before).
    let admin = r.request(
        "POST",
        "/api/session",
        &[("Authorization", &bearer(ADMIN))],
        None,
    );
    assert!(admin.json().get("agent").is_none(), "{}", admin.text());

    // A wait in progress when its agent is revoked answers 401, not the message that came.
    let addr = r.addr;
    let (a2, id2) = (alice.clone(), first_id.clone());
    let waiter = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(s, "GET /api/wait?channel=alice:x&since_id={id2}&timeout_seconds=30 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {a2}\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    wait_until("the wait is held", Duration::from_secs(5), || {
        get(&r, ADMIN, "/api/agents").json()["roster"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "alice" && e["online"] == true)
    });
    std::thread::sleep(Duration::from_millis(200));
    r.request(
        "DELETE",
        "/api/agents/alice",
        &[("Authorization", &bearer(ADMIN))],
        None,
    );
    post(
        &r,
        ADMIN,
        "/api/send",
        &json!({"channel": "alice:x", "sender": "x", "content": "after"}),
    );
    let out = waiter.join().unwrap();
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    assert!(!out.contains("after"));
    // Its login ended with it.
    assert_eq!(with_cookie("/api/state").status, 401);
}

#[test]
fn the_agent_subcommand_and_route_refuse_bad_input_with_clear_errors() {
    let dir = crate::support::TempDir::new();
    let db = dir.path().join("bridge.db");
    let dbs = db.to_str().unwrap();
    let cli = |args: &[&str]| run(args, &[], dir.path());
    // On a db file with no relay running.
    let t = add_on_db(&db, "ci", &["ci:*=write"]);
    let again = cli(&["agent", "add", "ci", "--db", dbs]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    let bad = cli(&["agent", "add", "x", "--grant", "a*b=read", "--db", dbs]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let bad = cli(&["agent", "add", "x", "--grant", "a=owner", "--db", dbs]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        cli(&["agent", "revoke", "nobody", "--db", dbs])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        cli(&["agent", "frobnicate", "--db", dbs]).status.code(),
        Some(2)
    );
    let list = cli(&["agent", "list", "--json", "--db", dbs]);
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v["agents"][0]["name"], "ci");
    assert_eq!(v["agents"][0]["grants"], json!(["ci:*=write"]));
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&t));
    // Names follow the sender rule: 128 characters at most.
    let name128 = "n".repeat(128);
    let name129 = "n".repeat(129);
    assert!(cli(&["agent", "add", &name128, "--db", dbs])
        .status
        .success());
    assert_eq!(
        cli(&["agent", "add", &name129, "--db", dbs]).status.code(),
        Some(1)
    );

    // Over HTTP with the admin token; a wrong token is refused.
    let r = Relay::start(&["--auth-token", ADMIN], &[]);
    let url = format!("http://{}", r.addr);
    let out = cli(&[
        "agent", "add", "web", "--grant", "w:*=read", "--url", &url, "--token", ADMIN,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(get(&r, &token, "/api/state").status, 200);
    let out = cli(&[
        "agent",
        "grant",
        "web",
        "w:*=write",
        "--url",
        &url,
        "--token",
        ADMIN,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "web\tw:*=read w:*=write"
    );
    let refused = cli(&["agent", "list", "--url", &url, "--token", "wrong"]);
    assert_eq!(refused.status.code(), Some(1));
    let refused = cli(&["agent", "revoke", "web", "--url", &url, "--token", &token]);
    assert_eq!(refused.status.code(), Some(1), "an agent is not the admin");
    assert!(
        cli(&["agent", "revoke", "web", "--url", &url, "--token", ADMIN])
            .status
            .success()
    );
    assert_eq!(get(&r, &token, "/api/state").status, 401);

    // The route's own errors.
    let e = post(
        &r,
        ADMIN,
        "/api/agents",
        &json!({"name": "x", "grants": "w=read"}),
    );
    assert_eq!(field_error(&e), ("invalid_type".into(), "grants".into()));
    let e = post(
        &r,
        ADMIN,
        "/api/agents",
        &json!({"name": "x", "grants": ["w"]}),
    );
    assert_eq!(field_error(&e), ("invalid".into(), "grant".into()));
    // A missing name is what a missing sender is on /api/send.
    let e = post(&r, ADMIN, "/api/agents", &json!({"grants": []}));
    assert_eq!(field_error(&e), ("invalid_type".into(), "name".into()));
    let e = post(
        &r,
        ADMIN,
        "/api/agents",
        &json!({"name": "x", "admin": "yes"}),
    );
    assert_eq!(field_error(&e), ("invalid_type".into(), "admin".into()));
    let e = post(
        &r,
        ADMIN,
        "/api/agents/nobody/grants",
        &json!({"grant": "a=read"}),
    );
    assert_eq!((e.status, field_error(&e).0), (404, "not_found".into()));
    let e = r.request(
        "DELETE",
        "/api/agents/nobody",
        &[("Authorization", &bearer(ADMIN))],
        None,
    );
    assert_eq!(e.status, 404);
    let e = r.request(
        "GET",
        "/api/agents/x",
        &[("Authorization", &bearer(ADMIN))],
        None,
    );
    assert_eq!(e.status, 405);
    // An admin agent may manage agents and send as anyone.
    let boss = post(
        &r,
        ADMIN,
        "/api/agents",
        &json!({"name": "boss", "admin": true}),
    );
    let boss = boss.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        post(&r, &boss, "/api/agents", &json!({"name": "minion"})).status,
        200
    );
    let as_other = post(
        &r,
        &boss,
        "/api/send",
        &json!({"channel": "any:x", "sender": "minion", "content": "hi"}),
    );
    assert_eq!(as_other.status, 200, "{}", as_other.text());
}

#[test]
fn wake_fills_in_the_agents_card_with_its_machine_and_directory() {
    let r = Relay::start(&["--auth-token", ADMIN], &[]);
    let added = post(
        &r,
        ADMIN,
        "/api/agents",
        &json!({"name": "waker", "grants": ["ag:*=read"]}),
    );
    let token = added.json()["token"].as_str().unwrap().to_owned();
    let dir = crate::support::TempDir::new();
    let runtime = dir.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let url = format!("http://{}", r.addr);
    let mut child = std::process::Command::new(BIN)
        .args([
            "wake",
            "ag:x",
            "--consumer",
            "waker",
            "--url",
            &url,
            "--token",
            &token,
            "--max-wait",
            "30",
        ])
        .env_clear()
        .env("XDG_RUNTIME_DIR", &runtime)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let want_dir = std::fs::canonicalize(dir.path())
        .unwrap()
        .display()
        .to_string();
    let card = || -> Value {
        get(&r, ADMIN, "/api/agents").json()["roster"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "waker")
            .map(|e| e["card"].clone())
            .unwrap_or(Value::Null)
    };
    wait_until("wake sets the card", Duration::from_secs(10), || {
        card()["directory"].as_str() == Some(want_dir.as_str())
    });
    assert_eq!(card()["machine"], hostname.trim());
    let online = get(&r, ADMIN, "/api/agents").json()["roster"][0]["online"].clone();
    assert_eq!(online, true, "waiting, the agent is online");
    let _ = child.kill();
    let _ = child.wait();
}

/// A 2026-07-28 (stateless) `tools/call` body.
fn modern_call(id: u64, name: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": name, "arguments": args, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "agents-test", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}}})
}

#[test]
fn grants_hold_on_the_stateless_2026_07_28_era_too() {
    let (r, alice, _bob) = two_agents(&[]);
    let call = |token: &str, body: &Value| -> Value {
        let name = body["params"]["name"].as_str().unwrap().to_owned();
        r.request(
            "POST",
            "/mcp",
            &[
                ("Authorization", &bearer(token)),
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", &name),
            ],
            Some(body.to_string().as_bytes()),
        )
        .json()["result"]
            .clone()
    };
    let own = call(
        &alice,
        &modern_call(
            1,
            "bridge_send",
            json!({"channel": "alice:m", "content": "x"}),
        ),
    );
    assert_eq!(
        (
            own["isError"].clone(),
            own["structuredContent"]["sender"].clone()
        ),
        (json!(false), json!("alice")),
        "{own}"
    );
    let theirs = call(
        &alice,
        &modern_call(2, "bridge_receive", json!({"channel": "bob:m"})),
    );
    assert_eq!(theirs["isError"], true, "{theirs}");
    assert_eq!(theirs["structuredContent"]["code"], "forbidden");
    let spoof = call(
        &alice,
        &modern_call(
            3,
            "bridge_send",
            json!({"channel": "alice:m", "sender": "bob", "content": "x"}),
        ),
    );
    assert_eq!(spoof["structuredContent"]["field"], "sender", "{spoof}");

    // --stdio given alice's token, a modern line: the same refusal.
    let mut child = std::process::Command::new(BIN)
        .args(["--stdio", "--db", r.db.to_str().unwrap()])
        .env_clear()
        .env("CLAUDE_BRIDGE_AUTH_TOKEN", &alice)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        "{}",
        modern_call(4, "bridge_clear", json!({"channel": "alice:m"}))
    )
    .unwrap();
    writeln!(
        stdin,
        "{}",
        modern_call(
            5,
            "bridge_send",
            json!({"channel": "bob:m", "content": "x"})
        )
    )
    .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        assert_eq!(l["result"]["isError"], true, "{l}");
        assert_eq!(l["result"]["structuredContent"]["code"], "forbidden", "{l}");
    }
}
