//! The scripting subcommands (`claude-bridge send|receive|wait|tail|channels|status`): talk to
//! any relay by URL and token from cron jobs and agent hooks, through the JSON API and the
//! channel event stream ([`crate::client`]). Their words are parsed in [`crate::cli::scripts`].
//!
//! Exit codes: 0 success; 1 the relay could not be reached or refused the request (the reason on
//! stderr, never the token); 2 usage error; 3 `wait` timed out with nothing new.

use crate::cli::scripts::{Action, Script, COMMON};
use crate::client::{self, Target};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;

/// The relay to talk to now when neither `--url` nor `CLAUDE_BRIDGE_URL` says.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8765";

/// How a subcommand ended: the exit code to use.
pub type Code = u8;

/// Run a parsed subcommand; `env` reads the environment. Prints results to stdout and one
/// `error: …` line to stderr on failure.
pub fn run(s: Script, env: &dyn Fn(&str) -> Option<String>) -> Code {
    if let Action::Help(text) = s.action {
        print!("{text}{COMMON}");
        return 0;
    }
    let url = s
        .url
        .clone()
        .or_else(|| env("CLAUDE_BRIDGE_URL"))
        .unwrap_or_else(|| DEFAULT_URL.into());
    let target = match Target::parse(&url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --url: {e}");
            return 2;
        }
    };
    let token = s
        .token
        .clone()
        .or_else(|| env("CLAUDE_BRIDGE_AUTH_TOKEN"))
        .filter(|t| !t.trim().is_empty());
    let ctx = Ctx {
        target,
        token,
        json: s.json,
    };
    match ctx.act(&s.action) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            1
        }
    }
}

struct Ctx {
    target: Target,
    token: Option<String>,
    json: bool,
}

impl Ctx {
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        wait: Duration,
    ) -> Result<Value, String> {
        let r = client::request(
            &self.target,
            method,
            path,
            self.token.as_deref(),
            body,
            wait,
        )?;
        if r.status == 401 {
            return Err(match self.token {
                Some(_) => "the relay refused the token (401)".into(),
                None => {
                    "the relay needs a token: pass --token or set CLAUDE_BRIDGE_AUTH_TOKEN".into()
                }
            });
        }
        let v = r.json();
        if !(200..300).contains(&r.status) {
            let why = v["error"].as_str().map_or_else(
                || String::from_utf8_lossy(&r.body).trim().to_owned(),
                str::to_owned,
            );
            return Err(format!("the relay answered {}: {why}", r.status));
        }
        Ok(v)
    }

    fn print_json(&self, v: &Value) {
        println!("{v}");
    }

    fn act(&self, action: &Action) -> Result<Code, String> {
        let quick = Duration::from_secs(30);
        match action {
            Action::Help(_) => Ok(0),
            Action::Send {
                channel,
                sender,
                content,
                key,
            } => {
                let content = match content.as_deref() {
                    None | Some("-") => {
                        let mut buf = String::new();
                        std::io::stdin()
                            .read_to_string(&mut buf)
                            .map_err(|e| format!("cannot read the message from stdin: {e}"))?;
                        buf
                    }
                    Some(c) => c.to_owned(),
                };
                let mut body = json!({"channel": channel, "sender": sender, "content": content});
                if let Some(k) = key {
                    body["idempotency_key"] = json!(k);
                }
                let v = self.call("POST", "/api/send", Some(&body), quick)?;
                if self.json {
                    self.print_json(&v);
                } else {
                    println!("{}", v["id"].as_str().unwrap_or_default());
                }
                Ok(0)
            }
            Action::Receive {
                channel,
                since_id,
                consumer,
                limit,
            } => {
                let mut path = format!("/api/messages?channel={}&full=1", client::encode(channel));
                cursor_query(&mut path, since_id, consumer);
                if let Some(n) = limit {
                    path.push_str(&format!("&limit={n}"));
                }
                let v = self.call("GET", &path, None, quick)?;
                self.print_messages(&v);
                Ok(0)
            }
            Action::Wait {
                channel,
                since_id,
                consumer,
                timeout,
            } => {
                // One request waits at most 55 s; longer waits are several in a row.
                let deadline = std::time::Instant::now() + Duration::from_secs_f64(*timeout);
                let mut since = since_id.clone();
                loop {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    let chunk = left.as_secs_f64().min(55.0);
                    let mut path = format!(
                        "/api/wait?channel={}&timeout_seconds={chunk:.3}",
                        client::encode(channel)
                    );
                    cursor_query(&mut path, &since, consumer);
                    let v = self.call("GET", &path, None, left + Duration::from_secs(30))?;
                    let got = v["messages"].as_array().is_some_and(|m| !m.is_empty());
                    if got || left <= Duration::from_secs(55) {
                        self.print_messages(&v);
                        return Ok(if got { 0 } else { 3 });
                    }
                    if since.is_none() && consumer.is_none() {
                        since = v["next_cursor"].as_str().map(str::to_owned);
                    }
                }
            }
            Action::Tail { channel, since_id } => self.tail(channel, since_id.clone()),
            Action::Channels => {
                let v = self.call("GET", "/api/state", None, quick)?;
                if self.json {
                    self.print_json(&v["channels"]);
                } else {
                    for c in v["channels"].as_array().into_iter().flatten() {
                        println!(
                            "{}\t{}\t{}",
                            c["id"].as_str().unwrap_or_default(),
                            c["count"],
                            c["last_ts_full"].as_str().unwrap_or_default()
                        );
                    }
                }
                Ok(0)
            }
            Action::Status => {
                let st = self.call("GET", "/status", None, quick)?;
                let state = self.call("GET", "/api/state", None, quick)?;
                if self.json {
                    self.print_json(&json!({"status": st, "state": state}));
                } else {
                    println!(
                        "{} {} at http://{}:{}: {}, up {}; {} messages in {} channels",
                        st["service"].as_str().unwrap_or("claude-bridge"),
                        st["version"].as_str().unwrap_or("?"),
                        self.target.host,
                        self.target.port,
                        st["status"].as_str().unwrap_or("?"),
                        state["uptime_human"].as_str().unwrap_or("?"),
                        state["total_messages"],
                        state["channels"].as_array().map_or(0, Vec::len)
                    );
                }
                Ok(0)
            }
        }
    }

    fn print_messages(&self, v: &Value) {
        if self.json {
            self.print_json(v);
            return;
        }
        let mut out = std::io::stdout().lock();
        for m in v["messages"].as_array().into_iter().flatten() {
            let text = m["content"]
                .as_str()
                .or(m["preview"].as_str())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}",
                m["id"].as_str().unwrap_or_default(),
                m["ts_full"]
                    .as_str()
                    .or(m["ts"].as_str())
                    .unwrap_or_default(),
                m["sender"].as_str().unwrap_or_default(),
                text.replace('\n', " ")
            );
        }
    }

    /// Follow the event stream, reconnecting after the last message printed.
    fn tail(&self, channel: &str, since_id: Option<String>) -> Result<Code, String> {
        let path = format!("/events/channel/{}", client::encode(channel));
        let mut last = since_id;
        let mut failures = 0u32;
        loop {
            let opened = client::EventStream::open(
                &self.target,
                &path,
                self.token.as_deref(),
                last.as_deref(),
            );
            let mut stream =
                match opened {
                    Ok(Ok(s)) => s,
                    Ok(Err(reply)) if reply.status == 401 => return Err(match self.token {
                        Some(_) => "the relay refused the token (401)".into(),
                        None => {
                            "the relay needs a token: pass --token or set CLAUDE_BRIDGE_AUTH_TOKEN"
                                .into()
                        }
                    }),
                    Ok(Err(reply)) => {
                        let v = reply.json();
                        return Err(format!(
                            "the relay answered {}: {}",
                            reply.status,
                            v["error"].as_str().unwrap_or("no reason given")
                        ));
                    }
                    // The relay went away: keep trying (it may be restarting), quietly at first.
                    Err(e) if failures < 3 || last.is_some() => {
                        failures += 1;
                        if failures == 3 {
                            eprintln!("warning: {e}; retrying");
                        }
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
            failures = 0;
            while let Ok(Some(ev)) = stream.next_event() {
                let data: Value = serde_json::from_str(&ev.data).unwrap_or_default();
                let mut out = std::io::stdout().lock();
                if self.json {
                    let _ = writeln!(
                        out,
                        "{}",
                        json!({"event": ev.event, "id": ev.id, "data": data})
                    );
                } else if ev.event == "message" {
                    let _ = writeln!(
                        out,
                        "{}\t{}\t{}\t{}",
                        ev.id,
                        data["timestamp"].as_str().unwrap_or_default(),
                        data["sender"].as_str().unwrap_or_default(),
                        data["content"]
                            .as_str()
                            .unwrap_or_default()
                            .replace('\n', " ")
                    );
                } else if ev.event == "clear" {
                    let _ = writeln!(out, "-- channel cleared ({} messages)", data["cleared"]);
                }
                let _ = out.flush();
                if ev.event == "message" && !ev.id.is_empty() {
                    last = Some(ev.id);
                }
            }
        }
    }
}

fn cursor_query(path: &mut String, since_id: &Option<String>, consumer: &Option<String>) {
    if let Some(id) = since_id {
        path.push_str(&format!("&since_id={}", client::encode(id)));
    }
    if let Some(c) = consumer {
        path.push_str(&format!("&consumer_id={}", client::encode(c)));
    }
}
