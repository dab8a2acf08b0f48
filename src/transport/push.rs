//! Channel push, the second way to wake a session: `claude-bridge --stdio --push CHANNEL...
//! --consumer ID`. The stdio server then declares `capabilities.experimental["claude/channel"]`
//! and, once the client has sent `notifications/initialized`, sends each new message from
//! another sender as `notifications/claude/channel` with `content` and `meta` (`channel`,
//! `sender`, `message_id`, `ts`). Delivery is recorded on the consumer's cursor like
//! [`crate::client::wake`] does, so the two paths never give one message twice to the same consumer,
//! and messages that came while no session ran are pushed when the next one starts.
//!
//! Claude Code keeps channel notifications behind a flag and refuses them on connections that
//! negotiated the 2026-07-28 revision; a `--push` session therefore serves the handshake era
//! only ([`crate::transport::stdio`] treats every request as handshake-era, so
//! `server/discover` is -32601), and a client that has the flag on takes them.

use crate::relay::{Cursor, Relay};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The channel-push settings of a `--stdio` session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// `--push`, repeatable.
    pub channels: Vec<String>,
    /// `--consumer`: whose cursor records delivery.
    pub consumer: String,
    /// `--self`: messages from this sender are not pushed (default: the consumer id).
    pub self_name: String,
}

/// The capability key Claude Code looks for.
pub const CAPABILITY: &str = "claude/channel";
/// The notification method.
pub const METHOD: &str = "notifications/claude/channel";

/// Add the channel capability to an `initialize` response.
pub fn declare(reply: &mut Value) {
    if let Some(caps) = reply
        .get_mut("result")
        .and_then(|r| r.get_mut("capabilities"))
        .and_then(Value::as_object_mut)
    {
        caps.insert("experimental".into(), json!({ CAPABILITY: {} }));
    }
}

/// The notification for one message.
pub fn notification(m: &crate::model::StoredMessage) -> Value {
    json!({
        "jsonrpc": "2.0",
        "method": METHOD,
        "params": {
            "content": m.content,
            "meta": {
                "channel": m.channel,
                "sender": m.sender,
                "message_id": m.id,
                "ts": crate::clock::render(&m.timestamp),
            }
        }
    })
}

impl Push {
    /// Start one thread per channel that pushes through `emit` (which returns false once the
    /// client is gone) until the relay shuts down or the client leaves.
    pub fn start(&self, relay: &Arc<Relay>, emit: Arc<dyn Fn(&Value) -> bool + Send + Sync>) {
        for name in &self.channels {
            let (relay, emit, channel) = (Arc::clone(relay), Arc::clone(&emit), name.clone());
            let (consumer, me) = (self.consumer.clone(), self.self_name.clone());
            let spawned = std::thread::Builder::new()
                .name("push".into())
                .stack_size(256 * 1024)
                .spawn(move || pump(&relay, &channel, &consumer, &me, &*emit));
            if let Err(e) = spawned {
                eprintln!("warning: cannot start pushing {name}: {e}");
            }
        }
    }
}

fn pump(relay: &Relay, channel: &str, consumer: &str, me: &str, emit: &dyn Fn(&Value) -> bool) {
    loop {
        let waited = relay.wait(
            channel,
            Cursor::Consumer(consumer),
            100,
            Duration::from_secs(30),
            None,
        );
        match waited {
            Ok((page, timed_out)) => {
                for m in &page.messages {
                    // Written first, recorded after: a message the client never got stays.
                    if m.sender != me && !emit(&notification(m)) {
                        return;
                    }
                    let ack =
                        json!({"channel": channel, "consumer_id": consumer, "message_id": m.id});
                    let args = ack.as_object().cloned().unwrap_or_default();
                    if let Err(e) = relay.ack(&args) {
                        eprintln!("warning: push: recording delivery on {channel}: {e}");
                    }
                }
                if timed_out && relay.sleep(std::time::Instant::now()) {
                    return; // shutting down
                }
            }
            Err(e) => {
                eprintln!("warning: push: reading {channel}: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}
