//! Operating the relay: the scripting subcommands against a real relay, `/metrics`,
//! `/api/ready`, the static `dist` build, and the systemd unit in the README.

use crate::support::{Relay, BIN};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run `claude-bridge ARGS` with only `env` set (and `stdin` fed); returns the output.
fn cli<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn each_subcommand_against_a_real_relay() {
    let r = Relay::start(&[], &[]);
    let url = format!("http://{}", r.addr);
    let with = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--url".to_string(), url.clone()]);
        v
    };

    let sent = cli(
        &with(&["send", "ops:main", "hello from cli", "--sender", "cron"]),
        &[],
        "",
    );
    assert_eq!(sent.status.code(), Some(0), "{}", err(&sent));
    let id = out(&sent).trim().to_owned();
    assert_eq!(id.len(), 36, "prints the id: {id}");
    let piped = cli(
        &with(&["send", "ops:main", "-"]),
        &[],
        "line one\nline two\n",
    );
    assert_eq!(piped.status.code(), Some(0), "{}", err(&piped));
    let m = r.get("/api/messages?channel=ops:main&full=1").json();
    assert_eq!(m["messages"][0]["content"], "hello from cli");
    assert_eq!(m["messages"][0]["sender"], "cron");
    assert_eq!(m["messages"][1]["content"], "line one\nline two\n");
    assert_eq!(m["messages"][1]["sender"], "cli");
    // The URL may also come from the environment.
    let env_url = cli(
        &["send", "ops:main", "via env"],
        &[("CLAUDE_BRIDGE_URL", &url)],
        "",
    );
    assert_eq!(env_url.status.code(), Some(0), "{}", err(&env_url));

    let recv = cli(&with(&["receive", "ops:main"]), &[], "");
    assert_eq!(recv.status.code(), Some(0));
    let text = out(&recv);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with(&id) && lines[0].ends_with("\tcron\thello from cli"),
        "{}",
        lines[0]
    );
    let after = cli(
        &with(&["receive", "ops:main", "--since-id", &id, "--json"]),
        &[],
        "",
    );
    let v: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(v["messages"].as_array().unwrap().len(), 2);

    // wait: exit 3 when nothing comes, 0 with the message when something does.
    let newest = v["messages"][1]["id"].as_str().unwrap().to_owned();
    let t = Instant::now();
    let none = cli(
        &with(&[
            "wait",
            "ops:main",
            "--since-id",
            &newest,
            "--timeout",
            "0.5",
        ]),
        &[],
        "",
    );
    assert_eq!(none.status.code(), Some(3), "{}", err(&none));
    assert!(t.elapsed() >= Duration::from_millis(450));
    let addr = r.addr;
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        let body = json!({"channel":"ops:main","sender":"x","content":"woke"}).to_string();
        let req = format!(
            "POST /api/send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let r2 = crate::support::raw(addr, req.as_bytes(), false);
        assert_eq!(r2.status, 200);
    });
    let woke = cli(
        &with(&["wait", "ops:main", "--since-id", &newest, "--timeout", "20"]),
        &[],
        "",
    );
    sender.join().unwrap();
    assert_eq!(woke.status.code(), Some(0), "{}", err(&woke));
    assert!(
        out(&woke).trim_end().ends_with("\tx\twoke"),
        "{}",
        out(&woke)
    );

    let ch = cli(&with(&["channels"]), &[], "");
    assert!(out(&ch).starts_with("ops:main\t4\t"), "{}", out(&ch));
    let st = cli(&with(&["status"]), &[], "");
    assert_eq!(st.status.code(), Some(0));
    assert!(
        out(&st).contains("online") && out(&st).contains("4 messages in 1 channels"),
        "{}",
        out(&st)
    );

    // tail follows live.
    let mut tail = Command::new(BIN)
        .args(["tail", "ops:live", "--url", &url])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    std::thread::sleep(Duration::from_millis(300));
    r.say("ops:live", "a", "first live");
    r.say("ops:live", "b", "second\nlive");
    let l1 = lines.next().unwrap().unwrap();
    let l2 = lines.next().unwrap().unwrap();
    assert!(l1.ends_with("\ta\tfirst live"), "{l1}");
    assert!(l2.ends_with("\tb\tsecond live"), "{l2}");
    let _ = tail.kill();
    let _ = tail.wait();

    // --help for each, and usage errors.
    for c in ["send", "receive", "wait", "tail", "channels", "status"] {
        let h = cli(&[c, "--help"], &[], "");
        assert_eq!(h.status.code(), Some(0));
        assert!(
            out(&h).starts_with(&format!("claude-bridge {c}")),
            "{}",
            out(&h)
        );
        assert!(out(&h).contains("--url"));
    }
    for bad in [
        &["wait", "c"][..],
        &["send"],
        &["receive", "c", "--limit", "0"],
        &["channels", "x"],
    ] {
        let o = cli(bad, &[], "");
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(err(&o).starts_with("error: "), "{}", err(&o));
    }
}

#[test]
fn subcommands_report_an_unreachable_relay_and_a_rejected_token() {
    // Nothing listens on port 1.
    for args in [
        &["send", "c", "x", "--url", "http://127.0.0.1:1"][..],
        &["receive", "c", "--url", "http://127.0.0.1:1"],
        &[
            "wait",
            "c",
            "--since-id",
            "x",
            "--url",
            "http://127.0.0.1:1",
        ],
        &["channels", "--url", "http://127.0.0.1:1"],
        &["status", "--url", "http://127.0.0.1:1"],
        &["tail", "c", "--url", "http://127.0.0.1:1"],
    ] {
        let o = cli(args, &[], "");
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            err(&o).contains("cannot reach the relay at http://127.0.0.1:1"),
            "{}",
            err(&o)
        );
    }
    let r = Relay::start(&["--auth-token", "s3cret-token"], &[]);
    let url = format!("http://{}", r.addr);
    for args in [
        &["send", "c", "x"][..],
        &["receive", "c"],
        &["wait", "c", "--since-id", "x", "--timeout", "1"],
        &["tail", "c"],
        &["channels"],
        &["status"],
    ] {
        let all = [
            args,
            &["--url", url.as_str(), "--token", "nope-token-value"][..],
        ]
        .concat();
        let wrong = cli(&all, &[], "");
        assert_eq!(wrong.status.code(), Some(1), "{args:?}");
        assert!(
            err(&wrong).contains("refused the token"),
            "{args:?}: {}",
            err(&wrong)
        );
        assert!(
            !err(&wrong).contains("nope-token-value"),
            "the token is never printed"
        );
    }
    let missing = cli(&["channels", "--url", &url], &[], "");
    assert_eq!(missing.status.code(), Some(1));
    assert!(err(&missing).contains("needs a token"), "{}", err(&missing));
    let tail = cli(&["tail", "c", "--url", &url, "--token", "nope"], &[], "");
    assert_eq!(tail.status.code(), Some(1));
    assert!(err(&tail).contains("refused the token"), "{}", err(&tail));
    // The environment's token works; the flag wins over it.
    let env = [("CLAUDE_BRIDGE_AUTH_TOKEN", "s3cret-token")];
    let ok = cli(&["send", "c", "x", "--url", &url], &env, "");
    assert_eq!(ok.status.code(), Some(0), "{}", err(&ok));
    let flag = cli(&["channels", "--url", &url, "--token", "nope"], &env, "");
    assert_eq!(flag.status.code(), Some(1));
    let bad_url = cli(&["status", "--url", "https://x:1"], &[], "");
    assert_eq!(bad_url.status.code(), Some(2));
}

/// Parse Prometheus text: every non-comment line is `name{labels} value`.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            if let Some(c) = l.strip_prefix('#') {
                let c = c.trim_start();
                assert!(
                    c.starts_with("HELP ") || c.starts_with("TYPE "),
                    "bad comment {l}"
                );
                if let Some(t) = c.strip_prefix("TYPE ") {
                    let kind = t.split_whitespace().nth(1).unwrap();
                    assert!(["counter", "gauge"].contains(&kind), "{l}");
                }
                return None;
            }
            let (series, value) = l.rsplit_once(' ').expect("name value");
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "metric name {name}"
            );
            if name_end < series.len() {
                assert!(series.ends_with('}'), "{l}");
            }
            Some((series.to_owned(), value.parse().expect("numeric value")))
        })
        .collect()
}

fn sample(all: &[(String, f64)], series: &str) -> f64 {
    all.iter()
        .find(|(s, _)| s == series)
        .map_or(0.0, |(_, v)| *v)
}

#[test]
fn metrics_parse_as_prometheus_text_and_move_with_traffic() {
    let r = Relay::start(&["--auth-token", "t"], &[]);
    let auth = [("Authorization", "Bearer t")];
    assert_eq!(r.get("/metrics").status, 401, "protected like the API");
    let before = r.get_with("/metrics", &auth);
    assert_eq!(before.status, 200);
    assert!(before
        .header("Content-Type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let a = samples(&before.text());
    for i in 0..5 {
        let s = r.request(
            "POST",
            "/api/send",
            &[("Content-Type", "application/json"), auth[0]],
            Some(
                json!({"channel":"m","sender":"s","content":format!("x{i}")})
                    .to_string()
                    .as_bytes(),
            ),
        );
        assert_eq!(s.status, 200);
    }
    let _ = r.get_with("/api/messages?channel=nope%20", &auth);
    let b = samples(&r.get_with("/metrics", &auth).text());
    let sends = r#"claude_bridge_http_requests_total{route="/api/send",status="200"}"#;
    assert_eq!(sample(&b, sends) - sample(&a, sends), 5.0);
    assert_eq!(
        sample(&b, "claude_bridge_messages_sent_total")
            - sample(&a, "claude_bridge_messages_sent_total"),
        5.0
    );
    assert_eq!(sample(&b, "claude_bridge_messages_stored"), 5.0);
    assert_eq!(
        sample(
            &b,
            r#"claude_bridge_http_requests_total{route="/api/messages",status="400"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &b,
            r#"claude_bridge_http_requests_total{route="/metrics",status="401"}"#
        ),
        1.0
    );
    assert!(sample(&b, "claude_bridge_uptime_seconds") >= 0.0);
    for kind in ["sse", "mcp_get", "events"] {
        let s = format!("claude_bridge_open_streams{{kind=\"{kind}\"}}");
        assert!(b.iter().any(|(x, _)| *x == s), "{s}");
    }
    // An open event stream and a waiting long-poll show up.
    let mut sub = std::net::TcpStream::connect(r.addr).unwrap();
    write!(
        sub,
        "GET /events/channel/m HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t\r\n\r\n"
    )
    .unwrap();
    let mut waiter = std::net::TcpStream::connect(r.addr).unwrap();
    write!(waiter, "GET /api/wait?channel=m&consumer_id=new&timeout_seconds=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let c = samples(&r.get_with("/metrics", &auth).text());
    assert_eq!(
        sample(&c, r#"claude_bridge_open_streams{kind="events"}"#),
        1.0
    );
    // (The consumer has no position, so its wait returns the backlog at once.)
    assert!(sample(&c, "claude_bridge_waiters") >= 0.0);

    // Readiness: for authenticated callers, checks the db takes a write.
    assert_eq!(r.get("/api/ready").status, 401);
    let ready = r.get_with("/api/ready", &auth);
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["db_writable"], true);
    assert_eq!(r.get("/status").status, 200, "/status stays public");
}

/// The static `dist` build: `.ci/run` builds it before the suite (a long LTO build that would
/// otherwise compete with the timing tests); built here when missing.
fn static_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("target/static-check/x86_64-unknown-linux-gnu/dist/claude-bridge");
    let ok = Command::new("cargo")
        .args([
            "build",
            "--profile",
            "dist",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", root.join("target/static-check"))
        .current_dir(root)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok && bin.exists(), "the static dist build failed");
    bin
}

/// Whether an ELF file asks for a dynamic loader (a `PT_INTERP` program header).
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 2, "64-bit");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let p = phoff + i * phentsize;
        u32::from_le_bytes(elf[p..p + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

#[test]
fn the_static_dist_binary_is_self_contained_small_and_runs() {
    let bin = static_binary();
    let elf = std::fs::read(&bin).unwrap();
    assert!(
        !has_interpreter(&elf),
        "statically linked: no dynamic loader"
    );
    assert!(
        has_interpreter(&std::fs::read(BIN).unwrap()),
        "the check can tell"
    );
    assert!(elf.len() <= 5 * 1024 * 1024, "{} bytes > 5 MB", elf.len());
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("claude-bridge {}", env!("CARGO_PKG_VERSION"))
    );
    // Built without the `tls` feature (tests/tls.rs covers the build with it), it refuses the
    // TLS flags with exit 1, says how to get them, and creates nothing first.
    let d = crate::support::TempDir::new();
    for f in ["c.pem", "k.pem"] {
        std::fs::write(d.path().join(f), "x").unwrap();
    }
    let o = Command::new(&bin)
        .args(["--port", "0", "--tls-cert", "c.pem", "--tls-key", "k.pem"])
        .current_dir(d.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("--features tls"), "{err}");
    assert!(!d.path().join("claude-bridge.db").exists());
    // It serves: start it like the test relays and ask /status.
    let place = crate::support::Restartable::new();
    let r = Relay::launch_program(
        &bin,
        &place.args,
        std::sync::Arc::clone(&place.dir),
        place.db.clone(),
    );
    assert_eq!(r.get("/status").status, 200);
    r.say("static:check", "s", "works");
}

/// The unit file in the README, with its binary path pointed at `bin`.
fn readme_unit(bin: &Path) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let at = readme
        .find("<!-- systemd-unit")
        .expect("README marks its unit");
    let start = at + readme[at..].find("```ini\n").unwrap() + 7;
    let end = start + readme[start..].find("```").unwrap();
    readme[start..end].replace("/usr/local/bin/claude-bridge", &bin.display().to_string())
}

#[test]
fn the_readme_systemd_unit_has_what_a_small_service_needs_and_verifies() {
    let unit = readme_unit(Path::new(BIN));
    for key in [
        "Restart=on-failure",
        "LimitNOFILE=",
        "StateDirectory=claude-bridge",
        "--db /var/lib/claude-bridge/",
        "--auth-token-file ${CREDENTIALS_DIRECTORY}/token",
        "LoadCredential=token:",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "DynamicUser=yes",
        "CapabilityBoundingSet=",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.contains(key), "the unit lacks {key}");
    }
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.is_err() {
        assert!(std::env::var_os("CI").is_none() || Path::new("/usr/bin/systemd-analyze").exists());
        eprintln!("systemd-analyze not installed: checked the keys only");
        return;
    }
    let dir = crate::support::TempDir::new();
    let path = dir.path().join("claude-bridge.service");
    std::fs::write(&path, &unit).unwrap();
    let v = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    // Outside a booted systemd (containers, CI) verify also reports the missing bus; only
    // complaints about our unit count.
    let ours: Vec<&str> = msg
        .lines()
        .filter(|l| l.contains("claude-bridge.service"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze verify: {msg}");
}
