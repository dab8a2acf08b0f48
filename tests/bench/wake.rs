//! `cargo bench --bench relay -- wake [N]`: how fast a message wakes an idle Claude Code
//! session, and what the waiter costs while it waits.
//!
//! The real Claude Code CLI (pinned in tests/tools, installed by `bash tests/tools/install`)
//! runs interactively in a private tmux server with the hooks `claude-bridge setup claude-code
//! --print` prints, against a stand-in Messages API on loopback. Each round waits until the
//! session is idle with its waiter in a long-poll on the relay (`claude_bridge_waiters` = 1),
//! sends one message with `POST /api/send`, and takes the time from just before the send to the
//! arrival of the stand-in request whose body holds it. N rounds (default 20): p50, p99, max.
//! Then the waiter's resident memory (VmRSS, VmHWM) while it waits.

#[path = "../support/claude_code.rs"]
mod claude_code;

use super::Relay;
use claude_code::{bridge_processes_with, scratch_home, unique, wait_for, Session, StandIn};
use std::process::Command;
use std::time::{Duration, Instant};

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One request on a new connection; the body (empty on failure).
fn http(relay: &Relay, request: &[u8]) -> Vec<u8> {
    let mut s = std::io::BufReader::new(super::tcp(relay.addr));
    super::exchange(&mut s, request).unwrap_or_default()
}

fn waiters_on_relay(relay: &Relay) -> Option<u64> {
    let text = String::from_utf8_lossy(&http(
        relay,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ))
    .into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("claude_bridge_waiters "))
        .and_then(|v| v.trim().parse().ok())
}

/// Run the wake benchmark with `rounds` messages.
pub fn run(rounds: usize) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cli = root.join("target/test-tools/node/node_modules/.bin/claude");
    if !cli.exists() {
        println!("the wake bench needs Claude Code: bash tests/tools/install");
        return;
    }
    let relay = super::start_relay(super::bench_dir("wake"));
    let api = StandIn::start();
    let home = super::bench_dir("wake-home");
    let project = home.join("project");
    std::fs::create_dir_all(&project).expect("project dir");
    scratch_home(&home, &project);
    let consumer = unique("benchagent");
    let out = Command::new(env!("CARGO_BIN_EXE_claude-bridge"))
        .args(["setup", "claude-code", "--print", "--channel", "bench:wake"])
        .args(["--consumer", &consumer, "--url"])
        .arg(format!("http://{}", relay.addr))
        .output()
        .expect("setup");
    let settings = home.join("settings.json");
    std::fs::write(&settings, &out.stdout).expect("settings");
    let session = Session::start(&cli, &home, &project, api.addr, &settings);
    let needle = format!("--consumer {consumer} ");
    println!(
        "wake bench: {rounds} messages, relay at {}, Claude Code {}",
        relay.addr,
        String::from_utf8_lossy(
            &Command::new(&cli)
                .arg("--version")
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default()
        )
        .trim()
    );
    let mut lat_ms = Vec::new();
    let mut rss = Vec::new();
    for i in 0..rounds {
        // Idle: exactly one waiter, in a long-poll on the relay.
        let pid = wait_for(Duration::from_secs(60), "an idle waiter", || {
            let pids = bridge_processes_with(&needle);
            (pids.len() == 1 && waiters_on_relay(&relay) == Some(1)).then(|| pids[0])
        });
        if let (Some(now), Some(peak)) = (status_kb(pid, "VmRSS:"), status_kb(pid, "VmHWM:")) {
            rss.push((now, peak));
        }
        let marker = format!("bench-wake-{i}-{}", unique("m"));
        let body =
            format!("{{\"channel\":\"bench:wake\",\"sender\":\"peer\",\"content\":\"{marker}\"}}");
        let sent = Instant::now();
        http(&relay, &super::post("/api/send", &body));
        let (_, at) = api.wait_for_marker(&marker, Duration::from_secs(30));
        lat_ms.push(at.duration_since(sent).as_secs_f64() * 1000.0);
    }
    drop(session);
    let _ = std::fs::remove_dir_all(&home);
    lat_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| lat_ms[((lat_ms.len() - 1) as f64 * p).round() as usize];
    println!(
        "send -> message in the model's request: p50 {:.0} ms, p99 {:.0} ms, min {:.0} ms, max {:.0} ms ({} rounds)",
        pct(0.5),
        pct(0.99),
        lat_ms[0],
        lat_ms[lat_ms.len() - 1],
        lat_ms.len()
    );
    if let Some(&(now, peak)) = rss.iter().max_by_key(|r| r.1) {
        let mut nows: Vec<u64> = rss.iter().map(|r| r.0).collect();
        nows.sort_unstable();
        println!(
            "wake while waiting: VmRSS median {} KiB (largest {now} KiB), VmHWM at most {peak} KiB",
            nows[nows.len() / 2]
        );
    }
}
