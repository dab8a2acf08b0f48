//! The terminal UI's network side: one thread polls `/api/state` and carries out requests, and
//! one thread per followed channel reads its event stream. Everything comes back to the UI as
//! [`Incoming`] over a channel.

use super::state::{Incoming, Message, Request};
use crate::client::{self, EventStream, Target};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

/// How often the channel list and status are refreshed.
const POLL: Duration = Duration::from_secs(2);

/// Start the network threads; returns where to send requests.
pub fn start(target: Target, token: Option<String>, to_ui: Sender<Incoming>) -> Sender<Request> {
    let (tx, rx) = std::sync::mpsc::channel::<Request>();
    let follow_gen = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || worker(target, token, to_ui, rx, follow_gen));
    tx
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
    let mut next = Request::Refresh;
    loop {
        match next {
            Request::Refresh => {
                if let Some(v) = report(&call("GET", "/api/state", None)) {
                    let _ = ui.send(Incoming::State(v));
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
                    if let Some(v) = report(&call("GET", "/api/state", None)) {
                        let _ = ui.send(Incoming::State(v));
                    }
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
        next = match rx.recv_timeout(POLL) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Request::Refresh,
            Err(RecvTimeoutError::Disconnected) => return,
        };
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
