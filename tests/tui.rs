//! The terminal UI end to end (feature `tui`): the real `claude-bridge tui` in a tmux pane
//! against a real relay: a message sent through the API shows on the captured screen, keys
//! compose and send a message that reaches `/api/messages`, and `q` exits cleanly, leaving the
//! alternate screen.

use crate::support::{Relay, BIN};
use std::process::Command;
use std::time::{Duration, Instant};

/// A private tmux server, killed when dropped (also when the test fails).
struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.0, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux (apt-get install tmux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {what:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

#[test]
fn the_tui_shows_live_messages_sends_from_the_keyboard_and_quits_cleanly() {
    let r = Relay::start(&[], &[]);
    r.say("tui:main", "agent-a", "already here");
    let tmux = Tmux(format!("cb-tui-{}-{}", std::process::id(), r.addr.port()));
    let cmd = format!(
        "{BIN} tui --url http://{} --sender tmuxer; echo TUI-EXITED-$?; sleep 60",
        r.addr
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-x",
        "140",
        "-y",
        "40",
        "-s",
        "t",
        &cmd,
    ]);
    let s = tmux.wait_for("already here");
    assert!(s.contains("online") && s.contains("claude-bridge"), "{s}");
    assert!(
        s.contains("tui") && s.contains("main (1)"),
        "grouped sidebar: {s}"
    );

    // A message sent through the API appears live.
    r.say(
        "tui:main",
        "agent-b",
        "{\"type\":\"status\",\"text\":\"live from the API\"}",
    );
    let s = tmux.wait_for("live from the API");
    assert!(s.contains("[status]"), "the JSON type is shown: {s}");

    // Issue 18: a new channel and a new sender show live (the relay-wide stream, no polling),
    // and the roster panel shows who is there with their cards.
    r.say("tui:fresh", "agent-c", "new here");
    let s = tmux.wait_for("fresh (1)");
    assert!(
        s.contains("agents") && s.contains("agent-c"),
        "roster panel: {s}"
    );
    let card = r.post(
        "/api/card",
        &serde_json::json!({"name": "agent-c", "machine": "box-c", "task": "porting"}),
    );
    assert_eq!(card.status, 200);
    let s = tmux.wait_for("● agent-c box-c");
    assert!(s.contains("● agent-c"), "online dot: {s}");
    assert!(s.contains("2 channels  3 messages"), "totals: {s}");

    // Compose with the keyboard: s, text, Enter.
    tmux.run(&["send-keys", "-t", "t", "s"]);
    tmux.wait_for("message to tui:main as tmuxer");
    tmux.run(&["send-keys", "-t", "t", "-l", "typed in tmux"]);
    tmux.run(&["send-keys", "-t", "t", "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = r.get("/api/messages?channel=tui:main&full=true").json();
        let found = m["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["content"] == "typed in tmux" && x["sender"] == "tmuxer");
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the typed message never arrived: {m}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    tmux.wait_for("typed in tmux");

    // Help, filter, inspector render; q quits and restores the terminal.
    tmux.run(&["send-keys", "-t", "t", "?"]);
    tmux.wait_for("p pause/resume feed");
    tmux.run(&["send-keys", "-t", "t", "Escape"]);
    tmux.run(&["send-keys", "-t", "t", "i"]);
    tmux.wait_for("inspector");
    tmux.run(&["send-keys", "-t", "t", "q"]);
    let s = tmux.wait_for("TUI-EXITED-0");
    assert!(
        !s.contains("claude-bridge  online") && !s.contains("channels"),
        "the UI is gone: {s}"
    );
}

#[test]
fn the_tui_says_when_the_relay_is_unreachable_or_refuses_the_token() {
    let r = Relay::start(&["--auth-token", "tui-token"], &[]);
    let tmux = Tmux(format!("cb-tui-x-{}-{}", std::process::id(), r.addr.port()));
    // A session that outlives the cases: killing a case's session must not end the tmux server,
    // or the next case's `new-session` can race the server's exit and find no server at all.
    tmux.run(&["new-session", "-d", "-s", "keep", "sleep 600"]);
    let cases = [
        (
            format!("{BIN} tui --url http://127.0.0.1:1"),
            "offline: cannot reach the relay at http://127.0.0.1:1",
        ),
        (
            format!("{BIN} tui --url http://{} --token nope", r.addr),
            "token refused or missing",
        ),
        // The environment's token works.
        (
            format!(
                "CLAUDE_BRIDGE_AUTH_TOKEN=tui-token {BIN} tui --url http://{}",
                r.addr
            ),
            "online",
        ),
    ];
    // A session that outlives the cases: killing a case's session must not stop the tmux
    // server while the next case starts one.
    tmux.run(&["new-session", "-d", "-s", "keep", "sleep 600"]);
    for (cmd, shown) in cases {
        let cmd = format!("{cmd}; sleep 60");
        tmux.run(&[
            "new-session",
            "-d",
            "-x",
            "140",
            "-y",
            "20",
            "-s",
            "t",
            &cmd,
        ]);
        tmux.wait_for(shown);
        tmux.run(&["kill-session", "-t", "t"]);
    }
}
