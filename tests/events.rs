//! Live channel events, `GET /events/channel/{channel}` (`http-api.md` §3.9).

use crate::support::{field_error, Relay};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One parsed event: (id, event, data).
type Event = (Option<String>, String, Value);

/// Open a stream; `extra` are extra header lines. Returns the reader positioned at the body.
fn subscribe(r: &Relay, path: &str, extra: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{extra}\r\n"
    )
    .unwrap();
    let mut rd = BufReader::new(s);
    let mut line = String::new();
    rd.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        rd.read_line(&mut line).unwrap();
        if line == "\r\n" {
            return rd;
        }
    }
}

/// The next event, skipping chunk framing and keep-alive comments; `None` when the stream ends.
fn next_event(rd: &mut BufReader<TcpStream>) -> Option<Event> {
    let (mut id, mut event, mut data) = (None, String::new(), None);
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if let Some(v) = l.strip_prefix("id: ") {
            id = Some(v.to_string());
        } else if let Some(v) = l.strip_prefix("event: ") {
            event = v.to_string();
        } else if let Some(v) = l.strip_prefix("data: ") {
            data = Some(serde_json::from_str(v).unwrap());
        } else if l.is_empty() && line == "\n" {
            if let Some(d) = data.take() {
                return Some((id, event, d));
            }
        } else if l == "0" {
            // The final chunk: the stream ended.
            return None;
        }
    }
}

#[test]
fn live_messages_and_clears_in_order_with_ids() {
    let r = Relay::start(&[], &[]);
    let mut rd = subscribe(&r, "/events/channel/ev:main", "");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(r.get("/api/state").json()["sse_subscribers"], 1);
    let a = r.say("ev:main", "s", "one");
    r.say("ev:other", "s", "elsewhere");
    let b = r.say("ev:main", "s", "two");
    let e1 = next_event(&mut rd).unwrap();
    assert_eq!(
        (e1.0.as_deref(), e1.1.as_str()),
        (a["id"].as_str(), "message")
    );
    assert_eq!(
        e1.2.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["seq", "id", "sender", "content", "timestamp"]
    );
    assert_eq!(e1.2["content"], "one");
    let e2 = next_event(&mut rd).unwrap();
    assert_eq!(e2.2["id"], b["id"]);
    // Cleared only now: a message event read after its message was cleared is skipped (spec).
    r.post("/api/clear", &json!({"channel": "ev:main"}));
    let e3 = next_event(&mut rd).unwrap();
    assert_eq!(
        (e3.0, e3.1.as_str(), e3.2),
        (None, "clear", json!({"channel": "ev:main", "cleared": 2}))
    );
    drop(rd);
}

#[test]
fn reconnecting_with_last_event_id_gets_exactly_what_was_missed() {
    let r = Relay::start(&[], &[]);
    let ids: Vec<String> = (1..=5)
        .map(|i| {
            r.say("ev:r", "s", &format!("m{i}"))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut rd = subscribe(
        &r,
        "/events/channel/ev:r",
        &format!("Last-Event-ID: {}\r\n", ids[1]),
    );
    let got: Vec<String> = (0..3)
        .map(|_| {
            next_event(&mut rd).unwrap().2["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(got, ["m3", "m4", "m5"]);
    // Then live, with no duplicate of the replay.
    r.say("ev:r", "s", "m6");
    assert_eq!(next_event(&mut rd).unwrap().2["content"], "m6");
    // since_id in the query works the same; Last-Event-ID wins over it.
    let mut rd2 = subscribe(&r, &format!("/events/channel/ev:r?since_id={}", ids[3]), "");
    assert_eq!(next_event(&mut rd2).unwrap().2["content"], "m5");
    let mut rd3 = subscribe(
        &r,
        &format!("/events/channel/ev:r?since_id={}", ids[0]),
        &format!("Last-Event-ID: {}\r\n", ids[3]),
    );
    assert_eq!(next_event(&mut rd3).unwrap().2["content"], "m5");
    // A stale cursor: one cursor_stale event, then live.
    let mut rd4 = subscribe(&r, "/events/channel/ev:r?since_id=bogus", "");
    let e = next_event(&mut rd4).unwrap();
    assert_eq!(
        (e.1.as_str(), e.2),
        ("cursor_stale", json!({"since_id": "bogus"}))
    );
    r.say("ev:r", "s", "m7");
    assert_eq!(next_event(&mut rd4).unwrap().2["content"], "m7");
}

#[test]
fn a_long_backlog_is_replayed_in_pages() {
    let r = Relay::start(&[], &[("CLAUDE_BRIDGE_SSE_REPLAY_LIMIT", "2")]);
    let first = r.say("ev:p", "s", "m0")["id"].as_str().unwrap().to_string();
    for i in 1..=5 {
        r.say("ev:p", "s", &format!("m{i}"));
    }
    let mut rd = subscribe(
        &r,
        "/events/channel/ev:p",
        &format!("Last-Event-ID: {first}\r\n"),
    );
    let a = next_event(&mut rd).unwrap();
    let b = next_event(&mut rd).unwrap();
    assert_eq!(
        (a.2["content"].clone(), b.2["content"].clone()),
        (json!("m1"), json!("m2"))
    );
    let t = next_event(&mut rd).unwrap();
    assert_eq!(
        (t.1.as_str(), t.2),
        ("replay_truncated", json!({"limit": 2}))
    );
    assert!(
        next_event(&mut rd).is_none(),
        "the stream ends after replay_truncated"
    );
    // The next page, from the last id received.
    let mut rd = subscribe(
        &r,
        "/events/channel/ev:p",
        &format!("Last-Event-ID: {}\r\n", b.0.unwrap()),
    );
    assert_eq!(next_event(&mut rd).unwrap().2["content"], "m3");
}

#[test]
fn subscriber_caps_and_bad_channels() {
    let r = Relay::start(
        &[],
        &[
            ("CLAUDE_BRIDGE_MAX_SSE_PER_CHANNEL", "1"),
            ("CLAUDE_BRIDGE_MAX_SSE", "2"),
        ],
    );
    let _a = subscribe(&r, "/events/channel/cap:a", "");
    let x = r.get("/events/channel/cap:a");
    assert_eq!(
        (x.status, x.json()),
        (
            503,
            json!({"error": "channel 'cap:a' has reached its subscriber cap"})
        )
    );
    let _b = subscribe(&r, "/events/channel/cap:b", "");
    let x = r.get("/events/channel/cap:c");
    assert_eq!(
        (x.status, x.json()),
        (503, json!({"error": "server subscriber cap reached"}))
    );
    assert!(x.header("Retry-After").is_some());
    let x = r.get("/events/channel/%20bad");
    assert_eq!(
        field_error(&x),
        ("surrounding_whitespace".into(), "channel".into())
    );
    let x = r.get("/events/channel/");
    assert_eq!(field_error(&x), ("required".into(), "channel".into()));
    assert_eq!(
        r.request(
            "POST",
            "/events/channel/x",
            &[("Content-Type", "application/json")],
            Some(b"{}")
        )
        .status,
        405
    );
}

#[test]
fn slashes_in_the_channel_and_events_from_another_process() {
    use std::io::Read as _;
    let r = Relay::start(&[], &[]);
    let mut rd = subscribe(&r, "/events/channel/team/a%3Ab", "");
    let mut child = crate::support::spawn_stdio(&r.db.display().to_string());
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bridge_send","arguments":{"channel":"team/a:b","sender":"stdio","content":"from afar"}}});
    let mut input = child.stdin.take().unwrap();
    writeln!(input, "{call}").unwrap();
    drop(input);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let e = next_event(&mut rd).unwrap();
    assert_eq!(
        (e.1.as_str(), e.2["content"].clone(), e.2["sender"].clone()),
        ("message", json!("from afar"), json!("stdio"))
    );
    let _ = child.wait();
}

#[test]
fn a_message_sent_right_after_subscribing_is_delivered() {
    let r = Relay::start(&[], &[]);
    for i in 0..20 {
        let mut rd = subscribe(&r, &format!("/events/channel/ev:now{i}"), "");
        r.say(&format!("ev:now{i}"), "s", "right away");
        assert_eq!(
            next_event(&mut rd).unwrap().2["content"],
            "right away",
            "round {i}"
        );
    }
}

#[test]
fn a_subscriber_that_falls_100_events_behind_is_dropped_and_can_replay() {
    // The reader stops reading while big messages fill the socket buffers, then 150 more events
    // come; when it drains what was written, the relay finds it more than 100 events behind and
    // ends the stream (counted), and a reconnect with the last id it saw replays the rest.
    let r = Relay::start(&[], &[]);
    let mut rd = subscribe(&r, "/events/channel/slow", "");
    let big = "x".repeat(120_000);
    let mut ids = Vec::new();
    for i in 0..80 {
        let body = json!({"channel":"slow","sender":"s","content":format!("{i}{big}")});
        ids.push(
            r.post("/api/send", &body).json()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for i in 0..150 {
        let body = json!({"channel":"slow","sender":"s","content":format!("small {i}")});
        ids.push(
            r.post("/api/send", &body).json()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut got = Vec::new();
    while let Some((id, event, _)) = next_event(&mut rd) {
        assert_eq!(event, "message");
        got.push(id.unwrap());
    }
    assert!(got.len() < ids.len(), "the slow reader was not dropped");
    assert_eq!(got[..], ids[..got.len()], "what it got came in order");
    let state = r.get("/api/state").json();
    assert_eq!(state["sse_dropped_events"], 1, "{state}");
    // Reconnecting where it left off replays the rest, in order.
    let last = got.last().unwrap().clone();
    let mut rd = subscribe(
        &r,
        "/events/channel/slow",
        &format!("Last-Event-ID: {last}\r\n"),
    );
    let mut rest = Vec::new();
    while rest.len() < ids.len() - got.len() {
        let (id, event, _) = next_event(&mut rd).expect("replay");
        assert_eq!(event, "message");
        rest.push(id.unwrap());
    }
    assert_eq!(rest[..], ids[got.len()..]);
}
