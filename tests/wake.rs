//! Waking idle agents (issue 16): the real Claude Code CLI, run interactively in a private tmux
//! server with a scratch HOME and the settings `claude-bridge setup claude-code --print` prints,
//! talks to a stand-in for the Anthropic Messages API on loopback that records every request
//! body. Another agent sends through the relay; what reached "the model" is in those bodies.
//! Also `wake` and `setup` on their own, and channel push (`--stdio --push`) on the wire.

use crate::support::claude_code::{
    bridge_processes_with, processes_with, scratch_home, unique, wait_for, Session, StandIn,
};
use crate::support::{claude_cli, Relay, TempDir, BIN};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One wakeable agent: a project folder, a scratch HOME, settings from `setup --print`.
struct Agent {
    home: TempDir,
    project: PathBuf,
    settings: PathBuf,
    consumer: String,
}

impl Agent {
    fn new(relay: SocketAddr, channel: &str) -> Agent {
        let home = TempDir::new();
        let project = home.path().join("project");
        std::fs::create_dir_all(&project).unwrap();
        let project = std::fs::canonicalize(project).unwrap();
        scratch_home(home.path(), &project);
        let consumer = unique("agent");
        let out = Command::new(BIN)
            .args([
                "setup",
                "claude-code",
                "--print",
                "--channel",
                channel,
                "--consumer",
            ])
            .arg(&consumer)
            .arg("--url")
            .arg(format!("http://{relay}"))
            .env_clear()
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let settings = home.path().join("wake-settings.json");
        std::fs::write(&settings, &out.stdout).unwrap();
        Agent {
            home,
            project,
            settings,
            consumer,
        }
    }

    fn session(&self, api: &StandIn) -> Session {
        let s = Session::start(
            &claude_cli(),
            self.home.path(),
            &self.project,
            api.addr,
            &self.settings,
        );
        // Ready when a waiter for this consumer runs (the SessionStart hook started it).
        wait_for(Duration::from_secs(60), "the SessionStart waiter", || {
            (!self.wake_processes().is_empty()).then_some(())
        });
        s
    }

    /// Wait until `marker` reaches the model; on failure, report what the relay still holds for
    /// this consumer, its waiters, the stand-in's requests and the session's screen.
    fn expect(
        &self,
        api: &StandIn,
        relay: &Relay,
        session: &Session,
        marker: &str,
        limit: Duration,
    ) -> (usize, Instant) {
        let end = Instant::now() + limit;
        loop {
            if let Some(found) = api.find_marker(marker) {
                return found;
            }
            if Instant::now() > end {
                let pending = relay
                    .get(&format!(
                        "/api/messages?channel=team:dev&consumer_id={}",
                        self.consumer
                    ))
                    .text();
                panic!(
                    "'{marker}' did not reach the model in {limit:?}\npending: {pending}\nwaiters: {:?}\nrequests: {}\nscreen:\n{}",
                    self.waiters(),
                    api.bodies().len(),
                    session.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `claude-bridge wake` processes of this consumer (not their hook shells).
    fn wake_processes(&self) -> Vec<u32> {
        bridge_processes_with(&format!("--consumer {} ", self.consumer))
    }

    /// Every process of this consumer's waiters, hook shells included.
    fn waiters(&self) -> Vec<u32> {
        processes_with(&format!("--consumer {} ", self.consumer))
    }
}

/// How many times `marker` occurs in the newest request body (the whole conversation so far).
fn times_in_latest(api: &StandIn, marker: &str) -> usize {
    api.bodies().last().map_or(0, |b| b.matches(marker).count())
}

/// The issue's bound on send → the model, checked where it asks for it (one message at a time).
const ARRIVAL: Duration = Duration::from_secs(5);
/// The limit of the scenarios that check what arrives rather than how fast (a busy shared box
/// must not fail them).
const SOON: Duration = Duration::from_secs(30);

#[test]
fn an_idle_claude_code_session_is_woken_by_each_message_once_and_in_order() {
    let relay = Relay::start(&[], &[]);
    let api = StandIn::start();
    let agent = Agent::new(relay.addr, "team:dev");
    let session = agent.session(&api);
    let mut markers = Vec::new();
    for i in 0..3 {
        // Idle: the waiter runs again (the Stop hook of the previous turn started it).
        wait_for(Duration::from_secs(30), "a waiter", || {
            (!agent.waiters().is_empty()).then_some(())
        });
        let marker = format!("one-by-one-{i}-{}", unique("m"));
        let sent = Instant::now();
        relay.say("team:dev", "alice", &marker);
        let (_, at) = agent.expect(&api, &relay, &session, &marker, ARRIVAL);
        assert!(at.duration_since(sent) < ARRIVAL);
        markers.push(marker);
    }
    // Each exactly once in the conversation, in the order sent.
    wait_for(Duration::from_secs(10), "the last turn's request", || {
        (times_in_latest(&api, &markers[2]) == 1).then_some(())
    });
    let last = api.bodies().last().cloned().unwrap();
    let mut at = 0;
    for m in &markers {
        assert_eq!(last.matches(m.as_str()).count(), 1, "{m} not exactly once");
        let pos = last.find(m.as_str()).unwrap();
        assert!(pos > at, "out of order");
        at = pos;
    }
    // Framed as data from another agent, with its channel and sender, inside Claude Code's
    // notice that this is an automated event and not the user speaking.
    assert!(last.contains("data written by another agent"));
    assert!(last.contains("NOT a message from the user"));
    // The person quits with /exit: no waiter is left behind.
    session.type_text("/exit");
    session.keys(&["Enter"]);
    wait_for(Duration::from_secs(30), "Claude Code to exit", || {
        (!session.alive()).then_some(())
    });
    wait_for(Duration::from_secs(10), "no waiter left", || {
        agent.waiters().is_empty().then_some(())
    });
    assert!(
        last.contains(r#"channel=\"team:dev\" from=\"alice\""#),
        "{last}"
    );
    drop(session);
}

#[test]
fn a_message_sent_during_a_turn_arrives_after_that_turn() {
    let relay = Relay::start(&[], &[]);
    let api = StandIn::start();
    let agent = Agent::new(relay.addr, "team:dev");
    let session = agent.session(&api);
    let first = unique("turn-first-");
    let during = unique("turn-during-");
    api.hold(true);
    relay.say("team:dev", "alice", &first);
    // The reply to the turn `first` started is held: the agent is busy.
    let (held, _) = agent.expect(&api, &relay, &session, &first, SOON);
    relay.say("team:dev", "bob", &during);
    api.hold(false);
    let (later, _) = agent.expect(&api, &relay, &session, &during, Duration::from_secs(30));
    assert!(later > held, "arrived inside the busy turn");
    assert!(!api.bodies()[held].contains(&during));
    wait_for(Duration::from_secs(10), "the turn's request", || {
        (times_in_latest(&api, &during) == 1).then_some(())
    });
    let last = api.bodies().last().cloned().unwrap();
    assert_eq!(last.matches(&first).count(), 1);
    assert!(last.find(&first) < last.find(&during));
}

#[test]
fn a_message_that_comes_while_the_user_has_the_agent_busy_arrives_once_after_that_turn() {
    let relay = Relay::start(&[], &[]);
    let api = StandIn::start();
    let agent = Agent::new(relay.addr, "team:dev");
    let session = agent.session(&api);
    // The person asks something; the reply is held, so the turn goes on while the
    // SessionStart waiter is still waiting.
    let prompt = unique("user-prompt-");
    api.hold(true);
    session.type_text(&prompt);
    session.keys(&["Enter"]);
    api.wait_for_marker(&prompt, Duration::from_secs(30));
    let (held, _) = api.find_marker(&prompt).unwrap();
    let during = unique("busy-during-");
    relay.say("team:dev", "bob", &during);
    // The waiter takes it now (exit 2 mid-turn); Claude Code gives it to the model next.
    wait_for(Duration::from_secs(10), "the waiter to take it", || {
        let pending = relay
            .get(&format!(
                "/api/messages?channel=team:dev&consumer_id={}",
                agent.consumer
            ))
            .json();
        (pending["messages"] == json!([])).then_some(())
    });
    api.hold(false);
    let (later, _) = agent.expect(&api, &relay, &session, &during, Duration::from_secs(30));
    assert!(later > held);
    wait_for(Duration::from_secs(10), "the turn's request", || {
        (times_in_latest(&api, &during) == 1).then_some(())
    });
}

#[test]
fn the_agents_own_messages_wake_nothing() {
    let relay = Relay::start(&[], &[]);
    let api = StandIn::start();
    let agent = Agent::new(relay.addr, "team:dev");
    let session = agent.session(&api);
    let own = unique("own-");
    relay.say("team:dev", &agent.consumer, &own);
    let other = unique("other-");
    relay.say("team:dev", "alice", &other);
    agent.expect(&api, &relay, &session, &other, SOON);
    assert!(
        api.bodies().iter().all(|b| !b.contains(&own)),
        "the agent's own message reached the model"
    );
    // Its own message counts as delivered too: nothing is pending for the consumer.
    let pending = relay.get(&format!(
        "/api/messages?channel=team:dev&consumer_id={}",
        agent.consumer
    ));
    assert_eq!(pending.json()["messages"], json!([]));
}

/// A free loopback port (bound, then released for a relay to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_relay_restarted_while_the_waiter_waits_still_wakes_the_agent() {
    let dir = Arc::new(TempDir::new());
    let db = dir.path().join("bridge.db");
    let port = free_port().to_string();
    let args: Vec<String> = ["--port", &port, "--db", &db.display().to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut relay = Relay::start_raw(&args, &[], Arc::clone(&dir), db.clone());
    let api = StandIn::start();
    let agent = Agent::new(relay.addr, "team:dev");
    let session = agent.session(&api);
    let waiter = agent.wake_processes();
    assert_eq!(relay.terminate(), Some(0));
    drop(relay);
    // The relay is down; the waiter keeps trying (a transient error never ends it): the same
    // process is still there when the relay comes back.
    let relay = Relay::start_raw(&args, &[], Arc::clone(&dir), db);
    assert_eq!(agent.wake_processes(), waiter);
    let marker = unique("after-restart-");
    relay.say("team:dev", "alice", &marker);
    agent.expect(&api, &relay, &session, &marker, SOON);
}

#[test]
fn messages_sent_while_no_session_runs_reach_the_next_session_and_no_waiter_outlives_one() {
    let relay = Relay::start(&[], &[]);
    let agent = Agent::new(relay.addr, "team:dev");
    {
        let api = StandIn::start();
        let session = agent.session(&api);
        let warm = unique("warm-");
        relay.say("team:dev", "alice", &warm);
        agent.expect(&api, &relay, &session, &warm, SOON);
        wait_for(Duration::from_secs(30), "the Stop hook's waiter", || {
            (!agent.waiters().is_empty()).then_some(())
        });
        session.close();
        wait_for(Duration::from_secs(10), "no waiter left", || {
            agent.waiters().is_empty().then_some(())
        });
    }
    let (one, two) = (unique("closed-one-"), unique("closed-two-"));
    relay.say("team:dev", "alice", &one);
    relay.say("team:dev", "bob", &two);
    let api = StandIn::start();
    let session = agent.session(&api);
    agent.expect(&api, &relay, &session, &one, SOON);
    agent.expect(&api, &relay, &session, &two, SOON);
    wait_for(Duration::from_secs(10), "the turn's request", || {
        (times_in_latest(&api, &two) == 1 && times_in_latest(&api, &one) == 1).then_some(())
    });
    session.close();
    wait_for(Duration::from_secs(10), "no waiter left", || {
        agent.waiters().is_empty().then_some(())
    });
}

/// `claude-bridge wake ...` as a child with piped stderr and only `env`.
fn wake_child(args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    Command::new(BIN)
        .arg("wake")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for a child to exit; (code, stderr).
fn finish(mut child: std::process::Child, limit: Duration) -> (Option<i32>, String) {
    let status = wait_for(limit, "wake to exit", || child.try_wait().unwrap());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

#[test]
fn wake_gives_each_message_once_holds_one_waiter_per_consumer_and_exits_by_its_codes() {
    let relay = Relay::start(&["--auth-token", "wake-token"], &[]);
    let dir = TempDir::new();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "wake-token\n").unwrap();
    let url = format!("http://{}", relay.addr);
    let runtime = dir.path().display().to_string();
    let env = [("XDG_RUNTIME_DIR", runtime.as_str())];
    let tf = token_file.display().to_string();
    let base = ["--consumer", "w1", "--url", &url, "--token-file", &tf];
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = vec!["c:a".into(), "c:b".into()];
        a.extend(base.iter().map(|s| s.to_string()));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let strs = |v: &Vec<String>| {
        v.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\u{1}")
    };
    let run = |extra: &[&'static str]| {
        let a = args(extra);
        let joined = strs(&a);
        let parts: Vec<&str> = joined.split('\u{1}').collect();
        wake_child(&parts, &env)
    };
    // Nothing new: exits 0 at --max-wait, printing nothing.
    let (code, err) = finish(run(&["--max-wait", "0.3"]), Duration::from_secs(20));
    assert_eq!((code, err.as_str()), (Some(0), ""));
    // One waiter per consumer: a second exits 0 at once while the first waits.
    let first = run(&[]);
    let lock = wake_lock(&url, "w1", dir.path());
    wait_for(Duration::from_secs(10), "the first waiter's lock", || {
        lock_held(&lock).then_some(())
    });
    let (code, _) = finish(run(&[]), Duration::from_secs(5));
    assert_eq!(code, Some(0));
    // Its own messages wake nothing; a message from another agent does (exit 2, on stderr).
    let auth = [
        ("Authorization", "Bearer wake-token"),
        ("Content-Type", "application/json"),
    ];
    let send = |ch: &str, sender: &str, content: &str| {
        let body = json!({"channel": ch, "sender": sender, "content": content}).to_string();
        let r = relay.request("POST", "/api/send", &auth, Some(body.as_bytes()));
        assert_eq!(r.status, 200);
        r.json()["id"].as_str().unwrap().to_owned()
    };
    send("c:a", "w1", "my own words");
    send("c:b", "peer", "line one\nline two");
    let (code, err) = finish(first, Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("line one\nline two"), "{err}");
    assert!(err.contains(r#"channel="c:b" from="peer""#), "{err}");
    assert!(!err.contains("my own words"), "{err}");
    // Given once: the next waiter does not see it again.
    let (code, _) = finish(run(&["--max-wait", "0.5"]), Duration::from_secs(20));
    assert_eq!(code, Some(0));
    // Sent while no waiter ran: the next one gets all of it, in order across channels.
    send("c:a", "peer", "first while away");
    send("c:b", "other", "second while away");
    let (code, err) = finish(run(&[]), Duration::from_secs(10));
    assert_eq!(code, Some(2));
    assert!(err.contains("2 new messages"), "{err}");
    assert!(err.find("first while away") < err.find("second while away"));
    // A refused token ends it with 1 (not 2: that would wake the model with an error).
    std::fs::write(&token_file, "wrong").unwrap();
    let (code, err) = finish(run(&[]), Duration::from_secs(10));
    assert_eq!(code, Some(1), "{err}");
    assert!(!err.contains("wrong"), "the token is never printed: {err}");
    // So do usage errors; --help is 0.
    let (code, _) = finish(wake_child(&["c:a"], &env), Duration::from_secs(5));
    assert_eq!(code, Some(1));
    let help = Command::new(BIN).args(["wake", "--help"]).output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("asyncRewake"));
}

/// The lock file a `wake` for (url, consumer) takes under `runtime`.
fn wake_lock(url: &str, consumer: &str, runtime: &Path) -> PathBuf {
    let env = |k: &str| (k == "XDG_RUNTIME_DIR").then(|| runtime.display().to_string());
    claude_bridge::client::wake::lock_path(url, consumer, &env)
}

/// Whether someone holds an exclusive lock on `path`.
fn lock_held(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    match f.try_lock() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn wake_outlasts_the_relays_wait_cap_and_a_lost_relay() {
    // The relay answers a long-poll after 55 s at most; the waiter asks again, and keeps asking
    // while the relay is gone.
    let dir = Arc::new(TempDir::new());
    let db = dir.path().join("bridge.db");
    let port = free_port().to_string();
    let args: Vec<String> = ["--port", &port, "--db", &db.display().to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let relay = Relay::start_raw(&args, &[], Arc::clone(&dir), db.clone());
    let url = format!("http://{}", relay.addr);
    let runtime = dir.path().display().to_string();
    let child = wake_child(
        &["cap:a", "--consumer", "capper", "--url", &url],
        &[("XDG_RUNTIME_DIR", runtime.as_str())],
    );
    let started = Instant::now();
    let lock = wake_lock(&url, "capper", dir.path());
    wait_for(Duration::from_secs(10), "the waiter", || {
        lock_held(&lock).then_some(())
    });
    // Past one whole capped wait (this is the condition under test, not a pause).
    wait_for(
        Duration::from_secs(70),
        "the relay's 55 s cap to pass",
        || (started.elapsed() > Duration::from_secs(57)).then_some(()),
    );
    drop(relay);
    wait_for(Duration::from_secs(5), "the waiter to notice", || {
        TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
            .is_err()
            .then_some(())
    });
    let relay = Relay::start_raw(&args, &[], Arc::clone(&dir), db);
    relay.say("cap:a", "peer", "still here");
    let (code, err) = finish(child, Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("still here"));
}

#[test]
fn wake_keeps_to_its_byte_budget_and_the_rest_comes_next_time() {
    let relay = Relay::start(&[], &[]);
    let url = format!("http://{}", relay.addr);
    let dir = TempDir::new();
    let runtime = dir.path().display().to_string();
    let env = [("XDG_RUNTIME_DIR", runtime.as_str())];
    let big = "b".repeat(900);
    for i in 0..3 {
        relay.say("budget", "peer", &format!("msg{i} {big}"));
    }
    let args = [
        "budget",
        "--consumer",
        "bud",
        "--url",
        &url,
        "--max-bytes",
        "2048",
    ];
    let (code, err) = finish(wake_child(&args, &env), Duration::from_secs(10));
    assert_eq!(code, Some(2));
    assert!(err.len() <= 2048, "{} bytes", err.len());
    assert!(err.contains("msg0") && !err.contains("msg1"), "{err}");
    assert!(
        err.contains("2 more messages did not fit here; they are delivered right after this turn")
    );
    // The rest comes with the next waiters, each once, in order.
    for (i, held) in [(1, "1 more message did not fit"), (2, "")] {
        let (code, err) = finish(wake_child(&args, &env), Duration::from_secs(10));
        assert_eq!(code, Some(2));
        assert!(err.contains(&format!("msg{i}")), "{err}");
        assert!(
            !err.contains(&format!("msg{}", i - 1)),
            "given twice: {err}"
        );
        assert_eq!(err.contains("did not fit"), !held.is_empty(), "{err}");
        assert!(err.contains(held));
    }
    // A message over the whole budget is cut, and says how to read all of it.
    relay.say("budget", "peer", &"z".repeat(5000));
    let (code, err) = finish(wake_child(&args, &env), Duration::from_secs(10));
    assert_eq!(code, Some(2));
    assert!(
        err.len() <= 2048 && err.contains("more bytes not shown"),
        "{err}"
    );
}

/// Run `claude-bridge ARGS` in `cwd` with HOME = `home`; (code, stdout, stderr).
fn run_in(cwd: &Path, home: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("HOME", home)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn setup_merges_hooks_and_the_server_into_each_scope_idempotently_and_never_writes_the_token() {
    let relay = Relay::start(&["--auth-token", "setup-secret-token"], &[]);
    let home = TempDir::new();
    let project = home.path().join("proj");
    std::fs::create_dir_all(project.join(".claude")).unwrap();
    let project = std::fs::canonicalize(project).unwrap();
    let token_file = home.path().join("token");
    std::fs::write(&token_file, "setup-secret-token\n").unwrap();
    let url = format!("http://{}", relay.addr);
    let tf = token_file.display().to_string();
    // Settings already there are kept (Claude Code runs a project's header helper only in a
    // trusted folder).
    scratch_home(home.path(), &project);
    std::fs::write(
        project.join(".claude/settings.json"),
        r#"{"model":"sonnet","hooks":{"Stop":[{"hooks":[{"type":"command","command":"echo done"}]}]}}"#,
    )
    .unwrap();
    let setup = |scope: &str| {
        let (code, _, err) = run_in(
            &project,
            home.path(),
            &[
                "setup",
                "claude-code",
                "--channel",
                "team:dev",
                "--channel",
                "team:ops",
                "--consumer",
                "me",
                "--url",
                &url,
                "--token-file",
                &tf,
                "--scope",
                scope,
            ],
        );
        assert_eq!(code, Some(0), "{err}");
    };
    let files = [
        project.join(".claude/settings.json"),
        project.join(".mcp.json"),
        project.join(".claude/settings.local.json"),
        home.path().join(".claude.json"),
        home.path().join(".claude/settings.json"),
    ];
    let snapshot = || -> Vec<String> {
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .collect()
    };
    for scope in ["project", "local", "user"] {
        setup(scope);
    }
    let once = snapshot();
    for scope in ["project", "local", "user"] {
        setup(scope);
    }
    assert_eq!(snapshot(), once, "a second run changed something");
    for text in &once {
        assert!(
            !text.contains("setup-secret-token"),
            "the token was written: {text}"
        );
    }
    let project_settings = read_json(&files[0]);
    assert_eq!(project_settings["model"], "sonnet");
    let stop = project_settings["hooks"]["Stop"].as_array().unwrap();
    assert_eq!(stop.len(), 2, "{stop:?}");
    assert_eq!(stop[0]["hooks"][0]["command"], "echo done");
    let hook = &stop[1]["hooks"][0];
    assert_eq!(hook["asyncRewake"], true);
    assert_eq!(hook["timeout"], 86400);
    let cmd = hook["command"].as_str().unwrap();
    assert!(
        cmd.contains(" wake team:dev team:ops --consumer me --url "),
        "{cmd}"
    );
    assert!(cmd.contains(&format!("--token-file {tf}")), "{cmd}");
    assert_eq!(project_settings["hooks"]["SessionStart"][0], stop[1]);
    let server = &read_json(&files[1])["mcpServers"]["claude-bridge"];
    assert_eq!(server["url"], format!("{url}/mcp"));
    assert!(server["headersHelper"]
        .as_str()
        .unwrap()
        .contains("auth-header --token-file"));
    assert_eq!(read_json(&files[2])["hooks"]["Stop"][0], stop[1]);
    let claude_json = read_json(&files[3]);
    assert_eq!(claude_json["hasCompletedOnboarding"], true);
    assert_eq!(claude_json["mcpServers"]["claude-bridge"], *server);
    assert_eq!(
        claude_json["projects"][project.display().to_string()]["mcpServers"]["claude-bridge"],
        *server
    );
    assert_eq!(read_json(&files[4])["hooks"]["SessionStart"][0], stop[1]);
    // The header helper prints the header from the file, and Claude Code connects with it.
    let (code, out, _) = run_in(&project, home.path(), &["auth-header", "--token-file", &tf]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"Authorization": "Bearer setup-secret-token"})
    );
    let list = Command::new(claude_cli())
        .args(["mcp", "list"])
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .current_dir(&project)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let line = list
        .lines()
        .find(|l| l.starts_with("claude-bridge:"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        line.contains("Connected") && !line.contains("Failed"),
        "{list}"
    );
    // --print writes nothing and prints the hooks for --settings.
    let before = snapshot();
    let (code, out, err) = run_in(
        &project,
        home.path(),
        &[
            "setup",
            "claude-code",
            "--print",
            "--channel",
            "x",
            "--consumer",
            "me",
            "--url",
            &url,
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(snapshot(), before);
    let printed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed["hooks"]["Stop"][0]["hooks"][0]["asyncRewake"], true);
    assert!(err.contains("claude mcp add-json claude-bridge"), "{err}");
    // Usage errors exit 2.
    let (code, _, _) = run_in(
        &project,
        home.path(),
        &["setup", "claude-code", "--consumer", "me"],
    );
    assert_eq!(code, Some(2));
}

/// A `--stdio --push` session on `db` as a raw JSON-RPC client: lines in, lines out.
struct PushSession {
    child: std::process::Child,
    out: std::sync::mpsc::Receiver<Value>,
}

impl PushSession {
    fn start(db: &Path, extra: &[&str]) -> PushSession {
        let mut child = Command::new(BIN)
            .args(["--stdio", "--db"])
            .arg(db)
            .args(extra)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, out) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                    return;
                }
            }
        });
        PushSession { child, out }
    }

    fn send(&mut self, v: Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{v}").unwrap();
        stdin.flush().unwrap();
    }

    fn next(&self) -> Value {
        self.out
            .recv_timeout(Duration::from_secs(10))
            .expect("a line from the stdio server")
    }

    /// The next line that is not a response to a request (a notification).
    fn notification(&self) -> Value {
        loop {
            let v = self.next();
            if v.get("id").is_none() {
                return v;
            }
        }
    }
}

impl Drop for PushSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 2026-07-28 `server/discover` request, with the revision's per-request `_meta`.
fn modern_discover(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "server/discover", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }}})
}

#[test]
fn stdio_push_declares_the_channel_capability_and_pushes_each_message_from_others_once() {
    let relay = Relay::start(&[], &[]);
    relay.say("push:a", "peer", "sent before the session");
    // Both spellings: `--push a b` and `--push a --push b`.
    let args = [
        "--push",
        "push:a",
        "push:b",
        "--push",
        "push:c",
        "--consumer",
        "pc",
        "--self",
        "me",
    ];
    let mut s = PushSession::start(&relay.db, &args);
    s.send(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}));
    let init = s.next();
    assert_eq!(
        init["result"]["capabilities"]["experimental"],
        json!({"claude/channel": {}})
    );
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    // The handshake era: no discovery of the 2026-07-28 revision.
    s.send(modern_discover(2));
    assert_eq!(s.next()["error"]["code"], -32601);
    s.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    let n = s.notification();
    assert_eq!(n["method"], "notifications/claude/channel");
    assert_eq!(n["params"]["content"], "sent before the session");
    assert_eq!(n["params"]["meta"]["channel"], "push:a");
    assert_eq!(n["params"]["meta"]["sender"], "peer");
    assert!(n["params"]["meta"]["message_id"].is_string());
    // Its own messages are not pushed; others' are, from another process on the same db.
    relay.say("push:b", "me", "my own");
    let id = relay.say("push:b", "peer2", "live one")["id"].clone();
    let n = s.notification();
    assert_eq!(n["params"]["content"], "live one");
    assert_eq!(n["params"]["meta"]["message_id"], id);
    // Delivery is recorded on the consumer's cursor, like wake's (just after the write).
    for ch in ["push:a", "push:b"] {
        wait_for(Duration::from_secs(10), "delivery to be recorded", || {
            let pending = relay.get(&format!("/api/messages?channel={ch}&consumer_id=pc"));
            (pending.json()["messages"] == json!([])).then_some(())
        });
    }
    drop(s);
    // A new session gets only what is new.
    relay.say("push:a", "peer", "third");
    let mut s = PushSession::start(&relay.db, &args);
    s.send(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}));
    s.next();
    s.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    assert_eq!(s.notification()["params"]["content"], "third");
    // Without --push there is no capability.
    let mut plain = PushSession::start(&relay.db, &[]);
    plain.send(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}));
    assert!(plain.next()["result"]["capabilities"]
        .get("experimental")
        .is_none());
    // ... and such a session serves the 2026-07-28 era too, which a --push one refuses above.
    plain.send(modern_discover(2));
    assert!(plain.next().get("result").is_some());
    // --push needs --consumer, and --stdio.
    let dir = TempDir::new();
    let out = crate::support::run(&["--stdio", "--push", "x"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let out = crate::support::run(&["--push", "x", "--consumer", "c"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let out = crate::support::run(
        &["--stdio", "--push", " padded", "--consumer", "c"],
        &[],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("whitespace"));
}
