//! Counters for `GET /metrics` (Prometheus text format 0.0.4): requests by route label (the
//! route table's, `http::routes`, which also turns the text into the reply) and status,
//! sends, database busy answers, and gauges read at scrape time (messages stored, open streams
//! by kind, waiters, uptime). Counting a request takes one short lock on a small map.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Operations that answered "busy" after the retry budget (any operation, any transport).
pub static DB_BUSY: AtomicU64 = AtomicU64::new(0);
/// Messages stored by sends in this process (deduplicated replays not counted).
pub static SENT: AtomicU64 = AtomicU64::new(0);
/// Long-polls and waiting tool calls (message waits and task claims) in progress.
pub static WAITERS: AtomicU64 = AtomicU64::new(0);

/// Counts one waiter in [`WAITERS`] while alive.
pub struct Waiting(());

impl Waiting {
    /// Start counting.
    pub fn start() -> Waiting {
        WAITERS.fetch_add(1, Ordering::Relaxed);
        Waiting(())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The process's request counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

/// What the scrape reads from the rest of the relay.
pub struct Gauges {
    /// Messages stored.
    pub messages: u64,
    /// Channels with messages.
    pub channels: u64,
    /// Open streams by kind.
    pub streams: Vec<(&'static str, u64)>,
    /// Requests being answered.
    pub in_flight: u64,
    /// Seconds since start.
    pub uptime_seconds: u64,
}

impl Metrics {
    /// Count one answered request.
    pub fn request(&self, route: &'static str, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((route, status)).or_insert(0) += 1;
    }

    /// The exposition text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP claude_bridge_http_requests_total HTTP requests answered, by route and \
             status.\n# TYPE claude_bridge_http_requests_total counter\n",
        );
        {
            let m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "claude_bridge_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let scalar = |out: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        scalar(
            &mut out,
            "claude_bridge_messages_sent_total",
            "counter",
            "Messages stored by sends through this process (rate() gives sends per second).",
            SENT.load(Ordering::Relaxed),
        );
        scalar(
            &mut out,
            "claude_bridge_messages_stored",
            "gauge",
            "Messages in the database.",
            g.messages,
        );
        scalar(
            &mut out,
            "claude_bridge_channels",
            "gauge",
            "Channels holding messages.",
            g.channels,
        );
        let _ = writeln!(
            out,
            "# HELP claude_bridge_open_streams Open streams, by kind.\n# TYPE claude_bridge_open_streams gauge"
        );
        for (kind, n) in &g.streams {
            let _ = writeln!(out, "claude_bridge_open_streams{{kind=\"{kind}\"}} {n}");
        }
        scalar(
            &mut out,
            "claude_bridge_waiters",
            "gauge",
            "Long-polls and waiting tool calls in progress.",
            WAITERS.load(Ordering::Relaxed),
        );
        scalar(
            &mut out,
            "claude_bridge_requests_in_flight",
            "gauge",
            "Requests being answered (streams included).",
            g.in_flight,
        );
        scalar(
            &mut out,
            "claude_bridge_db_busy_total",
            "counter",
            "Operations answered busy after the database stayed locked past the retry budget.",
            DB_BUSY.load(Ordering::Relaxed),
        );
        scalar(
            &mut out,
            "claude_bridge_uptime_seconds",
            "gauge",
            "Seconds since the relay started.",
            g.uptime_seconds,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::default();
        m.request("/api/send", 200);
        m.request("/api/send", 200);
        m.request("/events/channel/{channel}", 200);
        m.request("/other", 404);
        let text = m.render(&Gauges {
            messages: 2,
            channels: 1,
            streams: vec![("sse", 1)],
            in_flight: 1,
            uptime_seconds: 5,
        });
        assert!(text
            .contains("claude_bridge_http_requests_total{route=\"/api/send\",status=\"200\"} 2\n"));
        assert!(text.contains("route=\"/events/channel/{channel}\""));
        assert!(
            text.contains("claude_bridge_http_requests_total{route=\"/other\",status=\"404\"} 1\n")
        );
        assert!(text.contains("claude_bridge_open_streams{kind=\"sse\"} 1\n"));
        assert!(text.contains(
            "# TYPE claude_bridge_uptime_seconds gauge\nclaude_bridge_uptime_seconds 5\n"
        ));
    }
}
