//! Claude Code run for real against a stand-in model, shared by the wake tests (tests/wake.rs)
//! and the wake benchmark (tests/bench/wake.rs, which includes this file by path): a stand-in
//! for the Anthropic Messages API on loopback that records request bodies, a scratch HOME that
//! skips every first-run screen, and an interactive session in a private tmux server.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Poll `check` every 50 ms until it yields a value or `limit` passes (then panic with `what`).
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A stand-in for the Anthropic Messages API: answers `POST /v1/messages` with a short text
/// reply (streamed as SSE when asked), records each request body with its arrival time, and
/// can hold replies until released (to keep the agent inside a turn).
pub struct StandIn {
    pub addr: SocketAddr,
    state: Arc<(Mutex<StandInState>, Condvar)>,
    stop: Arc<AtomicBool>,
}

#[derive(Default)]
struct StandInState {
    bodies: Vec<(Instant, String)>,
    hold: bool,
}

impl StandIn {
    pub fn start() -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new((Mutex::new(StandInState::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, stp) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let st = Arc::clone(&st);
                std::thread::spawn(move || {
                    let _ = serve_api(conn, &st);
                });
            }
        });
        StandIn { addr, state, stop }
    }

    /// Every request body so far, in arrival order.
    pub fn bodies(&self) -> Vec<String> {
        let s = self.state.0.lock().unwrap();
        s.bodies.iter().map(|(_, b)| b.clone()).collect()
    }

    /// Hold (true) or release (false) replies.
    pub fn hold(&self, on: bool) {
        self.state.0.lock().unwrap().hold = on;
        self.state.1.notify_all();
    }

    /// Wait until a request body contains `marker`; returns its index and arrival time.
    pub fn wait_for_marker(&self, marker: &str, limit: Duration) -> (usize, Instant) {
        wait_for(limit, &format!("'{marker}' to reach the model"), || {
            self.find_marker(marker)
        })
    }

    /// The first request body holding `marker`: its index and arrival time.
    pub fn find_marker(&self, marker: &str) -> Option<(usize, Instant)> {
        let s = self.state.0.lock().unwrap();
        s.bodies
            .iter()
            .position(|(_, b)| b.contains(marker))
            .map(|i| (i, s.bodies[i].0))
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.hold(false);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_api(conn: TcpStream, st: &Arc<(Mutex<StandInState>, Condvar)>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut rd = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split(' ').nth(1).unwrap_or("").to_owned();
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut h = String::new();
            rd.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = v.to_ascii_lowercase().contains("chunked");
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                rd.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                rd.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(length, 0);
            rd.read_exact(&mut body)?;
        }
        if !path.starts_with("/v1/messages") || path.starts_with("/v1/messages/count_tokens") {
            let b = r#"{"type":"error","error":{"type":"not_found_error","message":"not here"}}"#;
            if path.starts_with("/v1/messages/count_tokens") {
                let b = r#"{"input_tokens":10}"#;
                write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}", b.len())?;
            } else {
                write!(out, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}", b.len())?;
            }
            continue;
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        let stream = serde_json::from_str::<Value>(&text)
            .map(|v| v["stream"] == true)
            .unwrap_or(false);
        {
            let (m, c) = &**st;
            let mut s = m.lock().unwrap();
            s.bodies.push((Instant::now(), text));
            while s.hold {
                s = c.wait(s).unwrap();
            }
        }
        let reply = "Noted.";
        if stream {
            let events = [
                (
                    "message_start",
                    json!({"type":"message_start","message":{"id":"msg_standin","type":"message","role":"assistant","model":"claude-standin","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}),
                ),
                (
                    "content_block_start",
                    json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
                ),
                (
                    "content_block_delta",
                    json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":reply}}),
                ),
                (
                    "content_block_stop",
                    json!({"type":"content_block_stop","index":0}),
                ),
                (
                    "message_delta",
                    json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}),
                ),
                ("message_stop", json!({"type":"message_stop"})),
            ];
            let mut sse = String::new();
            for (name, data) in events {
                sse.push_str(&format!("event: {name}\ndata: {data}\n\n"));
            }
            write!(out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nContent-Length: {}\r\n\r\n{sse}", sse.len())?;
        } else {
            let b = json!({"id":"msg_standin","type":"message","role":"assistant","model":"claude-standin","content":[{"type":"text","text":reply}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":2}}).to_string();
            write!(out, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}", b.len())?;
        }
        out.flush()?;
    }
}

/// The API key the scratch Claude Code uses (at most 20 characters: Claude Code approves keys
/// by their last 20).
pub const API_KEY: &str = "sk-ant-standin-0001";

/// A scratch HOME in which Claude Code skips every first-run screen for `project`.
pub fn scratch_home(home: &Path, project: &Path) {
    let cfg = json!({
        "hasCompletedOnboarding": true,
        "theme": "dark",
        "customApiKeyResponses": {"approved": [API_KEY], "rejected": []},
        "projects": {project.display().to_string(): {
            "hasTrustDialogAccepted": true,
            "hasCompletedProjectOnboarding": true,
            "allowedTools": []
        }}
    });
    std::fs::write(home.join(".claude.json"), cfg.to_string()).unwrap();
}

/// A unique name for this test run (tmux sockets, consumers).
pub fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{what}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An interactive Claude Code session in its own tmux server; the server is killed on drop.
pub struct Session {
    socket: String,
}

impl Session {
    pub fn start(
        cli: &Path,
        home: &Path,
        project: &Path,
        api: SocketAddr,
        settings: &Path,
    ) -> Session {
        let socket = unique("cbwake");
        let cmd = format!("{} --settings {}", cli.display(), settings.display());
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "50",
                "-c",
            ])
            .arg(project)
            .arg(&cmd)
            .env_clear()
            .env("HOME", home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("TERM", "xterm-256color")
            .env("XDG_RUNTIME_DIR", home)
            .env("ANTHROPIC_BASE_URL", format!("http://{api}"))
            .env("ANTHROPIC_API_KEY", API_KEY)
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("tmux");
        assert!(status.success(), "tmux new-session failed");
        Session { socket }
    }

    /// What the terminal shows now (for failure reports).
    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Type `text` into the prompt (without Enter), once the input box shows it: keys typed
    /// before the interface is up are lost, so it retries (clearing the line) until the screen
    /// shows the text.
    pub fn type_text(&self, text: &str) {
        wait_for(Duration::from_secs(60), "the prompt to take typing", || {
            self.keys(&["-l", text]);
            let end = Instant::now() + Duration::from_secs(2);
            while Instant::now() < end {
                if self.screen().contains(text) {
                    return Some(());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            self.keys(&["C-u"]);
            None
        });
    }

    /// Send tmux keys (`-l` for literal text).
    pub fn keys(&self, keys: &[&str]) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys"])
            .args(keys)
            .status();
    }

    /// Whether the session's program still runs (tmux ends the session when it exits).
    pub fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["-L", &self.socket, "has-session"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// End the session: kill the tmux server (Claude Code gets SIGHUP).
    pub fn close(&self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

/// The `claude-bridge` processes (not the hook's shell) among [`processes_with`].
pub fn bridge_processes_with(needle: &str) -> Vec<u32> {
    processes_with(needle)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "claude-bridge")
        })
        .collect()
}

/// Processes whose command line contains `needle` (the `wake` waiters of one consumer).
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && !cmd.contains("tmux") {
            out.push(pid);
        }
    }
    out
}
