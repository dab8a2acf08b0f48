//! Durable delivery (`http-api.md` §3.8, `mcp.md` §4.4): consumer cursors that move only
//! forward and survive a crash.

use crate::support::{field_error, Relay, TempDir};
use serde_json::{json, Value};
use std::sync::Arc;

fn ack(r: &Relay, body: Value) -> crate::support::Resp {
    r.post("/api/ack", &body)
}

#[test]
fn ack_moves_forward_only_and_replaces_metadata() {
    let r = Relay::start(&[], &[]);
    let ids: Vec<String> = (0..3)
        .map(|i| {
            r.say("demo:a", "s", &format!("m{i}"))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let other = r.say("demo:b", "s", "x")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":ids[1],"metadata":{"note":1}}),
    );
    assert_eq!(first.status, 200, "{}", first.text());
    let v = first.json();
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "consumer_id",
            "channel",
            "last_seq",
            "last_message_id",
            "updated_at",
            "advanced"
        ]
    );
    assert_eq!(
        (&v["last_message_id"], &v["advanced"]),
        (&json!(ids[1]), &json!(true))
    );
    assert_eq!(v["updated_at"].as_str().unwrap().len(), 27);
    // Behind or at the cursor: unchanged, advanced false, not an error.
    let back = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":ids[0]}),
    )
    .json();
    assert_eq!(
        (&back["last_seq"], &back["advanced"]),
        (&v["last_seq"], &json!(false))
    );
    let same = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":ids[1]}),
    )
    .json();
    assert_eq!(same["advanced"], false);
    // Listing with the consumer starts after its cursor and never moves it.
    let page = r.get("/api/messages?channel=demo:a&consumer_id=rc").json();
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["messages"][0]["id"], ids[2]);
    assert_eq!(
        r.get("/api/messages?channel=demo:a&consumer_id=rc").json()["messages"][0]["id"],
        ids[2]
    );
    // Cursors are per channel and per consumer.
    let b = ack(
        &r,
        json!({"channel":"demo:b","consumer_id":"rc","message_id":other}),
    )
    .json();
    assert_eq!(b["advanced"], true);
    let fresh = r
        .get("/api/messages?channel=demo:a&consumer_id=other")
        .json();
    assert_eq!(fresh["messages"].as_array().unwrap().len(), 3);
    // Metadata: replaced when given on an advancing ack, kept otherwise.
    ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":ids[2]}),
    );
    let c = rusqlite::Connection::open(&r.db).unwrap();
    let meta: String = c
        .query_row("SELECT metadata_json FROM bridge_consumer_cursors WHERE consumer_id='rc' AND channel='demo:a'", [], |x| x.get(0))
        .unwrap();
    assert_eq!(meta, r#"{"note":1}"#);
}

#[test]
fn ack_errors() {
    let r = Relay::start(&[], &[]);
    let id = r.say("demo:a", "s", "m")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let nf = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":"nope"}),
    );
    assert_eq!(nf.status, 404);
    assert_eq!(
        nf.json(),
        json!({"error":"message_id does not exist in this channel","field":"message_id","code":"not_found","message":"does not exist in this channel"})
    );
    // A message of another channel is not found in this one.
    let x = ack(
        &r,
        json!({"channel":"demo:b","consumer_id":"rc","message_id":id}),
    );
    assert!(x.status == 404 || x.status == 400, "{}", x.status);
    // Every field is validated before the lookup, in order.
    let x = ack(&r, json!({"consumer_id":"rc","message_id":"nope"}));
    assert_eq!(field_error(&x), ("invalid_type".into(), "channel".into()));
    let x = ack(&r, json!({"channel":"demo:a","message_id":"nope"}));
    assert_eq!(
        field_error(&x),
        ("invalid_type".into(), "consumer_id".into())
    );
    assert_eq!(x.json()["message"], "must be a string");
    let x = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"x".repeat(129),"message_id":"nope"}),
    );
    assert_eq!(field_error(&x), ("too_long".into(), "consumer_id".into()));
    let x = ack(&r, json!({"channel":"demo:a","consumer_id":"rc"}));
    assert_eq!(
        field_error(&x),
        ("invalid_type".into(), "message_id".into())
    );
    let x = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":id,"metadata":[1]}),
    );
    assert_eq!(field_error(&x), ("invalid_type".into(), "metadata".into()));
    let mut deep = json!(1);
    for _ in 0..17 {
        deep = json!([deep]);
    }
    let x = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":id,"metadata":{"d":deep}}),
    );
    assert_eq!(field_error(&x), ("too_deep".into(), "metadata".into()));
    let big = json!({"k": "x".repeat(16_400)});
    let x = ack(
        &r,
        json!({"channel":"demo:a","consumer_id":"rc","message_id":id,"metadata":big}),
    );
    assert_eq!(field_error(&x), ("too_large".into(), "metadata".into()));
    assert_eq!(
        r.post_raw("/api/ack", b"[]").json(),
        json!({"error":"JSON body must be an object"})
    );
    assert_eq!(r.get("/api/ack").status, 405);
    let plain = r.request(
        "POST",
        "/api/ack",
        &[("Content-Type", "text/plain")],
        Some(b"{}"),
    );
    assert_eq!(plain.status, 415);
}

#[test]
fn a_consumer_resumes_at_message_11_after_a_sigkill() {
    let dir = Arc::new(TempDir::new());
    let db = dir.path().join("bridge.db");
    let args = vec![
        "--port".to_string(),
        "0".into(),
        "--db".into(),
        db.display().to_string(),
    ];
    let r = Relay::start_raw(&args, &[], Arc::clone(&dir), db.clone());
    let ids: Vec<String> = (1..=20)
        .map(|i| {
            r.say("jobs:in", "producer", &format!("message {i}"))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for id in &ids[..10] {
        assert_eq!(
            ack(
                &r,
                json!({"channel":"jobs:in","consumer_id":"worker","message_id":id})
            )
            .status,
            200
        );
    }
    drop(r); // SIGKILL (Child::kill) and wait
    let r = Relay::start_raw(&args, &[], Arc::clone(&dir), db);
    let page = r
        .get("/api/messages?channel=jobs:in&consumer_id=worker&limit=500")
        .json();
    let got: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["preview"].as_str().unwrap())
        .collect();
    assert_eq!(got.len(), 10);
    assert_eq!(got[0], "message 11");
    assert_eq!(page["messages"][0]["id"], ids[10]);
}
