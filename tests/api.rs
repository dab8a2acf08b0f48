//! Every JSON endpoint's success shapes and error bodies (`http-api.md` §3.1–3.6, §5, §6).

use crate::support::{field_error, Relay};
use serde_json::{json, Value};

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn is_ts(s: &str) -> bool {
    s.len() == 27
        && s.ends_with('Z')
        && &s[19..20] == "."
        && s[20..26].bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn status_has_exactly_four_keys_and_answers_head() {
    let r = Relay::start(&[], &[]);
    let s = r.get("/status");
    assert_eq!(s.status, 200);
    assert_eq!(s.header("Content-Type"), Some("application/json"));
    let v = s.json();
    assert_eq!(keys(&v), ["service", "status", "version", "server_time"]);
    assert_eq!(v["service"], "claude-bridge");
    assert_eq!(v["status"], "online");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(is_ts(v["server_time"].as_str().unwrap()));
    let h = r.send("HEAD /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    let p = r.request("PUT", "/status", &[], Some(b"{}"));
    assert_eq!(p.status, 405);
    assert_eq!(p.header("Allow"), Some("GET, HEAD"));
    assert_eq!(p.json(), json!({"error": "method not allowed"}));
}

#[test]
fn state_lists_channels_sorted_with_group_name_and_senders() {
    let r = Relay::start(&[], &[]);
    let empty = r.get("/api/state").json();
    assert_eq!(empty["channels"], json!([]));
    assert_eq!(empty["total_messages"], 0);
    r.say("demo:orchestrator", "windows", "a");
    r.say("demo:orchestrator", "mac", "b");
    r.say("nocolon", "agent", "c");
    r.say("a:x:y", "z", "d");
    let v = r.get("/api/state").json();
    assert_eq!(
        keys(&v),
        [
            "service",
            "status",
            "version",
            "uptime_seconds",
            "uptime_human",
            "total_messages",
            "channels",
            "sse_subscribers",
            "sse_dropped_events",
            "retention_days",
            "audit_enabled",
            "server_time"
        ]
    );
    assert_eq!(v["total_messages"], 4);
    let ch = v["channels"].as_array().unwrap();
    let ids: Vec<&str> = ch.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a:x:y", "demo:orchestrator", "nocolon"]);
    assert_eq!(
        (ch[0]["group"].as_str(), ch[0]["name"].as_str()),
        (Some("a"), Some("x:y"))
    );
    assert_eq!(
        (ch[2]["group"].as_str(), ch[2]["name"].as_str()),
        (Some(""), Some("nocolon"))
    );
    let orch = &ch[1];
    assert_eq!(
        keys(orch),
        [
            "id",
            "group",
            "name",
            "count",
            "last_ts",
            "last_ts_full",
            "senders"
        ]
    );
    assert_eq!(orch["count"], 2);
    assert_eq!(orch["senders"], json!(["mac", "windows"]));
    let full = orch["last_ts_full"].as_str().unwrap();
    assert!(is_ts(full));
    assert_eq!(orch["last_ts"].as_str().unwrap(), &full[11..19]);
    let human = v["uptime_human"].as_str().unwrap();
    assert_eq!(human.len(), 8);
    assert_eq!(&human[2..3], ":");
    assert_eq!(v["sse_subscribers"], 0);
    // clear removes it from the state
    assert_eq!(
        r.post("/api/clear", &json!({"channel": "nocolon"})).json()["cleared"],
        1
    );
    let v = r.get("/api/state").json();
    assert_eq!(v["total_messages"], 3);
    assert_eq!(v["channels"].as_array().unwrap().len(), 2);
}

#[test]
fn send_returns_id_seq_ts_and_stores_verbatim() {
    let r = Relay::start(&[], &[]);
    let a = r.say("demo:a", "agent-a", "  tabs\tand\nnewlines  ");
    assert_eq!(keys(&a), ["id", "seq", "channel", "ts", "deduplicated"]);
    assert_eq!(a["deduplicated"], false);
    assert_eq!(a["channel"], "demo:a");
    let id = a["id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4");
    assert!(is_ts(a["ts"].as_str().unwrap()));
    let b = r.say("demo:a", "agent-a", "second");
    assert!(b["seq"].as_i64().unwrap() > a["seq"].as_i64().unwrap());
    let d = r.get(&format!("/api/messages/{id}")).json();
    assert_eq!(d["content"], "  tabs\tand\nnewlines  ");
    assert_eq!(d["encoding"], "legacy_text");
    assert_eq!(d["bytes"], 21);
    // Unknown fields are ignored; application/*+json is JSON.
    let x = r.request(
        "POST",
        "/api/send",
        &[("Content-Type", "application/vnd.claude+json; charset=utf-8")],
        Some(br#"{"channel":"c","sender":"s","content":"x","extra":[1]}"#),
    );
    assert_eq!(x.status, 200, "{}", x.text());
}

#[test]
fn send_errors_follow_the_contract_order_and_bodies() {
    let r = Relay::start(&[], &[]);
    let e = |body: &str| r.post_raw("/api/send", body.as_bytes());
    let invalid = e("{not json");
    assert_eq!(
        (invalid.status, invalid.json()),
        (400, json!({"error": "invalid JSON body"}))
    );
    assert_eq!(e("").json(), json!({"error": "invalid JSON body"}));
    let arr = e("[1,2]");
    assert_eq!(
        (arr.status, arr.json()),
        (400, json!({"error": "JSON body must be an object"}))
    );
    assert_eq!(
        e("42").json(),
        json!({"error": "JSON body must be an object"})
    );
    // channel before sender before content
    let x = e(r#"{"sender":"","content":""}"#);
    assert_eq!(field_error(&x), ("invalid_type".into(), "channel".into()));
    assert_eq!(x.json()["error"], "channel: must be a string");
    let x = e(r#"{"channel":"","sender":5}"#);
    assert_eq!(
        x.json(),
        json!({"error":"channel: must not be empty","field":"channel","code":"required","message":"must not be empty"})
    );
    let x = e(r#"{"channel":"c","sender":5}"#);
    assert_eq!(field_error(&x), ("invalid_type".into(), "sender".into()));
    let x = e(r#"{"channel":"c","sender":"s"}"#);
    assert_eq!(x.status, 400);
    assert_eq!(
        x.json(),
        json!({"error":"content: provide exactly one of content or message","field":"content","code":"exclusive","message":"provide exactly one of content or message"})
    );
    let x = e(
        r#"{"channel":"c","sender":"s","content":"a","message":{"schema_version":1,"type":"t","content":1}}"#,
    );
    assert_eq!(field_error(&x).0, "exclusive");
    let x = e(r#"{"channel":"c","sender":"s","content":""}"#);
    assert_eq!(field_error(&x), ("required".into(), "content".into()));
    let x = e(r#"{"channel":"c","sender":"s","content":"a\u0000b"}"#);
    assert_eq!(field_error(&x), ("nul_byte".into(), "content".into()));
    let x = e(r#"{"channel":"c","sender":"s","content":7}"#);
    assert_eq!(field_error(&x), ("invalid_type".into(), "content".into()));
    let x = e(r#"{"channel":" c","sender":"s","content":"x"}"#);
    assert_eq!(field_error(&x).0, "surrounding_whitespace");
    let x = e(r#"{"channel":"c\u0085d","sender":"s","content":"x"}"#);
    assert_eq!(field_error(&x).0, "control_character");
    let x = e(r#"{"channel":"c","sender":"s","content":"x","idempotency_key":""}"#);
    assert_eq!(
        field_error(&x),
        ("required".into(), "idempotency_key".into())
    );
    // Format characters are allowed.
    let ok = e(r#"{"channel":"c\u200bd","sender":"s","content":"x"}"#);
    assert_eq!(ok.status, 200);
    // Nothing was stored by the failures.
    assert_eq!(r.get("/api/state").json()["total_messages"], 1);
}

#[test]
fn idempotency_replays_and_conflicts() {
    let r = Relay::start(&[], &[]);
    let send = |content: &str, key: &str| {
        r.post(
            "/api/send",
            &json!({"channel":"c","sender":"s","content":content,"idempotency_key":key}),
        )
    };
    let first = send("hello", "k1").json();
    let again = send("hello", "k1");
    assert_eq!(again.status, 200);
    let again = again.json();
    assert_eq!(again["deduplicated"], true);
    for k in ["id", "seq", "ts", "channel"] {
        assert_eq!(again[k], first[k], "{k}");
    }
    let conflict = send("other", "k1");
    assert_eq!(conflict.status, 409);
    assert_eq!(
        field_error(&conflict),
        ("conflict".into(), "idempotency_key".into())
    );
    // Scope is (channel, sender, key).
    let other_sender = r.post(
        "/api/send",
        &json!({"channel":"c","sender":"t","content":"other","idempotency_key":"k1"}),
    );
    assert_eq!(other_sender.json()["deduplicated"], false);
    // null key = absent
    let n = r.post(
        "/api/send",
        &json!({"channel":"c","sender":"s","content":"hello","idempotency_key":null}),
    );
    assert_eq!(n.json()["deduplicated"], false);
    // dedupe_key of an envelope is the fallback key.
    let env = json!({"channel":"c","sender":"s","message":{"schema_version":1,"type":"t","content":1,"dedupe_key":"d1"}});
    let a = r.post("/api/send", &env).json();
    let b = r.post("/api/send", &env).json();
    assert_eq!(
        (b["deduplicated"].clone(), b["id"].clone()),
        (json!(true), a["id"].clone())
    );
    assert_eq!(r.get("/api/state").json()["total_messages"], 4);
    // A clear deletes the keys with the messages.
    r.post("/api/clear", &json!({"channel":"c"}));
    assert_eq!(send("hello", "k1").json()["deduplicated"], false);
}

#[test]
fn envelopes_are_stored_canonically_and_decoded_on_read() {
    let r = Relay::start(&[], &[]);
    let sent = r
        .post(
            "/api/send",
            &json!({"channel":"demo:a","sender":"a","message":{"type":"task","schema_version":1,"content":{"k":1},"metadata":{}}}),
        )
        .json();
    let id = sent["id"].as_str().unwrap();
    let d = r.get(&format!("/api/messages/{id}")).json();
    assert_eq!(
        d["content"],
        r#"{"content":{"k":1},"schema_version":1,"type":"task"}"#
    );
    assert_eq!(d["encoding"], "structured");
    assert_eq!(
        d["message"],
        json!({"schema_version":1,"type":"task","content":{"k":1}})
    );
    assert_eq!(keys(&d["message"]), ["schema_version", "type", "content"]);
    assert_eq!(
        d["content_parsed"],
        json!({"content":{"k":1},"schema_version":1,"type":"task"})
    );
    assert_eq!(d["is_json"], true);
    let l = r.get("/api/messages?channel=demo:a").json();
    assert_eq!(l["messages"][0]["encoding"], "structured");
    // Legacy rows are classified too.
    r.say(
        "demo:a",
        "a",
        r#"{"schema_version":2,"type":"t","content":1}"#,
    );
    r.say(
        "demo:a",
        "a",
        r#"{"schema_version":"x","type":"t","content":1}"#,
    );
    r.say("demo:a", "a", "[NaN, Infinity]");
    let items = r.get("/api/messages?channel=demo:a&full=1").json();
    let ids: Vec<String> = items["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let unsupported = r.get(&format!("/api/messages/{}", ids[1])).json();
    assert_eq!(
        (
            unsupported["encoding"].as_str(),
            unsupported["parse_warning"].as_str()
        ),
        (Some("unsupported"), Some("unsupported schema_version 2"))
    );
    let invalid = r.get(&format!("/api/messages/{}", ids[2])).json();
    assert_eq!(
        invalid["parse_warning"],
        "schema_version must be an integer"
    );
    let nan = r.get(&format!("/api/messages/{}", ids[3]));
    assert_eq!(nan.status, 200);
    let nan = nan.json();
    assert_eq!(
        (
            nan["is_json"].clone(),
            nan["content_parsed"].clone(),
            nan["encoding"].clone()
        ),
        (json!(false), Value::Null, json!("legacy_text"))
    );
    // Envelope errors.
    let bad = r.post(
        "/api/send",
        &json!({"channel":"c","sender":"s","message":"x"}),
    );
    assert_eq!(bad.json()["error"], "message: must be an object");
    let bad = r.post("/api/send", &json!({"channel":"c","sender":"s","message":{"schema_version":1,"type":"t","content":1,"b":1,"a":2}}));
    assert_eq!(bad.json()["message"], "unknown field(s): a, b");
    let bad = r.post("/api/send", &json!({"channel":"c","sender":"s","message":{"schema_version":1,"type":"t","content":1,"created_at":"2026-01-01T00:00:00"}}));
    assert_eq!(
        field_error(&bad),
        ("timezone_required".into(), "created_at".into())
    );
}

#[test]
fn listing_limits_cursors_and_previews() {
    let r = Relay::start(&[], &[]);
    let missing = r.get("/api/messages");
    assert_eq!(
        (missing.status, missing.json()),
        (400, json!({"error": "channel parameter required"}))
    );
    assert_eq!(
        r.get("/api/messages?channel=").json(),
        json!({"error": "channel parameter required"})
    );
    assert_eq!(
        r.get("/api/messages?channel=nobody").json(),
        json!({"channel":"nobody","messages":[]})
    );
    let ids: Vec<String> = (0..7)
        .map(|i| {
            r.say("demo:l", "s", &format!("m{i}"))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let page = |q: &str| r.get(&format!("/api/messages?channel=demo:l{q}")).json();
    let newest = page("&limit=3");
    let got: Vec<&str> = newest["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["preview"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["m4", "m5", "m6"]);
    assert_eq!(newest["next_cursor"], ids[6]);
    assert_eq!(
        keys(&newest["messages"][0]),
        ["seq", "id", "ts", "ts_full", "sender", "is_json", "preview"]
    );
    assert_eq!(page("&limit=0")["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page("&limit=-9")["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page("&limit=abc")["messages"].as_array().unwrap().len(), 7);
    assert_eq!(page("&limit=1.5")["messages"].as_array().unwrap().len(), 7);
    assert_eq!(
        page("&limit=%201%20")["messages"].as_array().unwrap().len(),
        1
    );
    // since_id pages forward, ascending.
    let fwd = page(&format!("&since_id={}&limit=2", ids[1]));
    let got: Vec<&str> = fwd["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["preview"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["m2", "m3"]);
    assert_eq!(fwd["next_cursor"], ids[3]);
    let end = page(&format!("&since_id={}", ids[6]));
    assert_eq!(
        end,
        json!({"channel":"demo:l","messages":[],"next_cursor":ids[6]})
    );
    let stale = page("&since_id=nope");
    assert_eq!(
        stale,
        json!({"channel":"demo:l","messages":[],"next_cursor":"nope","warning":"since_id_not_found"})
    );
    // An id from another channel is stale here.
    let other = r.say("demo:other", "s", "x")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        page(&format!("&since_id={other}"))["warning"],
        "since_id_not_found"
    );
    let bad = r.get("/api/messages?channel=demo:l&since_id=%20x");
    assert_eq!(
        field_error(&bad),
        ("surrounding_whitespace".into(), "since_id".into())
    );
    assert_eq!(page("&since_id=")["messages"].as_array().unwrap().len(), 7);
    // consumer_id without a cursor starts at 0 and is echoed.
    let c = page("&consumer_id=worker-1&limit=2");
    assert_eq!(c["consumer_id"], "worker-1");
    assert_eq!(c["messages"][0]["preview"], "m0");
    let bad = r.get(&format!(
        "/api/messages?channel=demo:l&consumer_id={}",
        "x".repeat(129)
    ));
    assert_eq!(field_error(&bad), ("too_long".into(), "consumer_id".into()));
    // Previews cut at 200 code points; full=true gives content.
    let long = "é".repeat(201);
    r.say("demo:p", "s", &long);
    r.say("demo:p", "s", r#" {"type":"x"} "#);
    r.say("demo:p", "s", "42");
    let p = r.get("/api/messages?channel=demo:p").json();
    assert_eq!(p["messages"][0]["preview"], format!("{}…", "é".repeat(200)));
    assert_eq!(p["messages"][1]["is_json"], true);
    assert_eq!(p["messages"][2]["is_json"], false);
    let f = r.get("/api/messages?channel=demo:p&full=TRUE").json();
    assert_eq!(f["messages"][0]["content"], long);
    assert!(f["messages"][0].get("preview").is_none());
    let bad = r.get("/api/messages?channel=%20x");
    assert_eq!(
        field_error(&bad),
        ("surrounding_whitespace".into(), "channel".into())
    );
}

#[test]
fn limit_clamps_to_500() {
    let r = Relay::start(&[], &[]);
    let body: Vec<String> = (0..501).map(|i| format!("m{i}")).collect();
    for c in &body {
        r.say("big", "s", c);
    }
    let p = r.get("/api/messages?channel=big&limit=1000").json();
    assert_eq!(p["messages"].as_array().unwrap().len(), 500);
    assert_eq!(p["messages"][0]["preview"], "m1");
}

#[test]
fn detail_and_its_404s() {
    let r = Relay::start(&[], &[]);
    let id = r.say("c", "s", "[1, 2]")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = r.get(&format!("/api/messages/{id}")).json();
    assert_eq!(
        keys(&d),
        [
            "seq",
            "id",
            "channel",
            "sender",
            "ts",
            "is_json",
            "content",
            "content_parsed",
            "bytes",
            "encoding"
        ]
    );
    assert_eq!(d["content_parsed"], json!([1, 2]));
    assert_eq!(d["encoding"], "legacy_json");
    for p in ["/api/messages/nope", "/api/messages/", "/api/messages/a/b"] {
        let x = r.get(p);
        assert_eq!(
            (x.status, x.json()),
            (404, json!({"error": "not found"})),
            "{p}"
        );
    }
}

#[test]
fn clear_counts_and_never_reuses_seq() {
    let r = Relay::start(&[], &[]);
    r.say("c", "s", "1");
    let last = r.say("c", "s", "2")["seq"].as_i64().unwrap();
    let x = r.post("/api/clear", &json!({"channel": "c"}));
    assert_eq!(x.json(), json!({"channel": "c", "cleared": 2}));
    assert_eq!(
        r.post("/api/clear", &json!({"channel": "unknown"})).json()["cleared"],
        0
    );
    assert!(r.say("c", "s", "3")["seq"].as_i64().unwrap() > last);
    let bad = r.post("/api/clear", &json!({"channel": ""}));
    assert_eq!(field_error(&bad), ("required".into(), "channel".into()));
    assert_eq!(
        r.post_raw("/api/clear", b"[]").json(),
        json!({"error": "JSON body must be an object"})
    );
    assert_eq!(
        r.post_raw("/api/clear", b"nope").json(),
        json!({"error": "invalid JSON body"})
    );
}

#[test]
fn routing_errors_are_json() {
    let r = Relay::start(&[], &[]);
    for p in [
        "/api/nope",
        "/.well-known/oauth-authorization-server",
        "/register",
        "/nothing/here",
    ] {
        let x = r.get(p);
        assert_eq!(
            (x.status, x.json()),
            (404, json!({"error": "not found"})),
            "{p}"
        );
    }
    let g = r.get("/api/send");
    assert_eq!((g.status, g.header("Allow")), (405, Some("POST")));
    assert_eq!(g.json(), json!({"error": "method not allowed"}));
    assert_eq!(r.get("/api/clear").status, 405);
    let p = r.post("/api/messages", &json!({}));
    assert_eq!(p.status, 405);
    assert_eq!(p.header("Allow"), Some("GET, HEAD"));
    assert_eq!(p.json()["hint"], "POST /api/send");
    // The placeholder page and its stylesheet.
    let page = r.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text().contains("claude-bridge"));
    assert_eq!(r.get("/style.css").status, 200);
}

#[test]
fn no_dashboard_serves_no_page_but_the_api() {
    let r = Relay::start(&["--no-dashboard"], &[]);
    let x = r.get("/");
    assert_eq!((x.status, x.json()), (404, json!({"error": "not found"})));
    assert_eq!(r.get("/style.css").status, 404);
    assert_eq!(r.get("/status").status, 200);
}
