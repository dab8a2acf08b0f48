//! The terminal UI's network side: one thread carries out requests, one follows the
//! relay-wide stream `/events/relay` (on its `ready`, at start and after each reconnect, it
//! has `/api/state` and `/api/agents` read; then channel counts, clears and presence arrive as
//! events: no polling), and one thread per followed channel reads its event stream.
//! Everything comes back to the UI as [`Incoming`] over a channel.

use super::state::{Incoming, Message, Request};
use crate::client::{self, EventStream, Target};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

/// Start the network threads; returns where to send requests.
pub fn start(target: Target, token: Option<String>, to_ui: Sender<Incoming>) -> Sender<Request> {
    let (tx, rx) = std::sync::mpsc::channel::<Request>();
    let follow_gen = Arc::new(AtomicU64::new(0));
    {
        let (target, token, ui, tx) = (target.clone(), token.clone(), to_ui.clone(), tx.clone());
        std::thread::spawn(move || follow_relay(target, token, ui, tx));
    }
    std::thread::spawn(move || worker(target, token, to_ui, rx, follow_gen));
    tx
}

/// Follow `/events/relay` for as long as the UI runs, reconnecting after a second when it
/// drops (the UI shows the relay offline meanwhile).
fn follow_relay(
    target: Target,
    token: Option<String>,
    ui: Sender<Incoming>,
    requests: Sender<Request>,
) {
    loop {
        match EventStream::open(&target, "/events/relay", token.as_deref(), None) {
            Ok(Ok(mut s)) => {
                while let Ok(Some(ev)) = s.next_event() {
                    let data: Value = serde_json::from_str(&ev.data).unwrap_or_default();
                    let sent = match ev.event.as_str() {
                        "ready" => requests.send(Request::Refresh).is_ok(),
                        "channel" => ui.send(Incoming::Channel(data)).is_ok(),
                        "cleared" => ui
                            .send(Incoming::ChannelGone(
                                data["channel"].as_str().unwrap_or_default().to_owned(),
                            ))
                            .is_ok(),
                        "presence" => ui.send(Incoming::Presence(data)).is_ok(),
                        _ => true,
                    };
                    if !sent {
                        return; // the UI has gone
                    }
                }
            }
            Ok(Err(_)) => {
                // Refused (a bad token): a request shows why.
                if requests.send(Request::Refresh).is_err() {
                    return;
                }
            }
            Err(e) => {
                if ui.send(Incoming::Offline(e)).is_err() {
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn message_of(v: &Value, id: &str) -> Message {
    Message {
        id: id.to_owned(),
        seq: v["seq"].as_i64().unwrap_or(0),
        sender: v["sender"].as_str().unwrap_or_default().to_owned(),
        time: v["timestamp"]
            .as_str()
            .or(v["ts"].as_str())
            .unwrap_or_default()
            .to_owned(),
        content: v["content"].as_str().unwrap_or_default().to_owned(),
    }
}

fn worker(
    target: Target,
    token: Option<String>,
    ui: Sender<Incoming>,
    rx: Receiver<Request>,
    follow_gen: Arc<AtomicU64>,
) {
    let call = |method: &str, path: &str, body: Option<&Value>| {
        client::request(
            &target,
            method,
            path,
            token.as_deref(),
            body,
            Duration::from_secs(10),
        )
    };
    let report = |r: &Result<client::Reply, String>| -> Option<Value> {
        match r {
            Err(e) => {
                let _ = ui.send(Incoming::Offline(e.clone()));
                None
            }
            Ok(rep) if rep.status == 401 => {
                let _ = ui.send(Incoming::Unauthorized);
                None
            }
            Ok(rep) if rep.status != 200 => {
                let why = rep.json()["error"].as_str().unwrap_or("error").to_owned();
                let _ = ui.send(Incoming::Notice(format!(
                    "relay answered {}: {why}",
                    rep.status
                )));
                None
            }
            Ok(rep) => Some(rep.json()),
        }
    };
    // The relay-wide stream asks for the first refresh when it is ready.
    let mut next = match rx.recv() {
        Ok(r) => r,
        Err(_) => return,
    };
    let mut pending: Option<Request> = None;
    loop {
        match next {
            Request::Refresh => {
                if let Some(v) = report(&call("GET", "/api/state", None)) {
                    let _ = ui.send(Incoming::State(v));
                }
                if let Some(v) = report(&call("GET", "/api/agents", None)) {
                    let _ = ui.send(Incoming::Roster(v));
                }
            }
            Request::Follow(ch) => {
                let path = format!(
                    "/api/messages?channel={}&full=true&limit=200",
                    client::encode(&ch)
                );
                let mut last = None;
                if let Some(v) = report(&call("GET", &path, None)) {
                    let msgs: Vec<Message> = v["messages"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|m| message_of(m, m["id"].as_str().unwrap_or_default()))
                        .collect();
                    last = msgs.last().map(|m| m.id.clone());
                    let _ = ui.send(Incoming::History(ch.clone(), msgs));
                }
                let generation = follow_gen.fetch_add(1, Ordering::SeqCst) + 1;
                let (t, tok, ui2, gen2) = (
                    target.clone(),
                    token.clone(),
                    ui.clone(),
                    Arc::clone(&follow_gen),
                );
                std::thread::spawn(move || follow(t, tok, ch, last, ui2, gen2, generation));
            }
            Request::Send {
                channel,
                sender,
                content,
            } => {
                let body = json!({"channel": channel, "sender": sender, "content": content});
                if report(&call("POST", "/api/send", Some(&body))).is_some() {
                    let _ = ui.send(Incoming::Notice(format!("sent to {channel}")));
                }
            }
            Request::Clear(ch) => {
                let body = json!({"channel": ch});
                if let Some(v) = report(&call("POST", "/api/clear", Some(&body))) {
                    let _ = ui.send(Incoming::Notice(format!(
                        "cleared {ch} ({} messages)",
                        v["cleared"]
                    )));
                }
            }
        }
        next = match pending.take() {
            Some(r) => r,
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => return,
            },
        };
        // Refreshes asked for while busy collapse into one (what came after waits its turn).
        if next == Request::Refresh {
            while let Ok(r) = rx.try_recv() {
                if r != Request::Refresh {
                    pending = Some(r);
                    break;
                }
            }
        }
    }
}

/// Follow one channel's events until a newer follow replaces this one; reconnects after the
/// last message seen.
fn follow(
    target: Target,
    token: Option<String>,
    channel: String,
    mut last: Option<String>,
    ui: Sender<Incoming>,
    current: Arc<AtomicU64>,
    generation: u64,
) {
    let path = format!("/events/channel/{}", client::encode(&channel));
    while current.load(Ordering::SeqCst) == generation {
        let stream = EventStream::open(&target, &path, token.as_deref(), last.as_deref());
        let mut s = match stream {
            Ok(Ok(s)) => s,
            _ => {
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        while let Ok(Some(ev)) = s.next_event() {
            if current.load(Ordering::SeqCst) != generation {
                return;
            }
            let data: Value = serde_json::from_str(&ev.data).unwrap_or_default();
            match ev.event.as_str() {
                "message" => {
                    last = Some(ev.id.clone());
                    let _ = ui.send(Incoming::Message(
                        channel.clone(),
                        message_of(&data, &ev.id),
                    ));
                }
                "clear" => {
                    let _ = ui.send(Incoming::Cleared(channel.clone()));
                }
                _ => {}
            }
        }
    }
}
