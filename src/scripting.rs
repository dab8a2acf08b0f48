//! The scripting subcommands (`claude-bridge send|receive|wait|tail|channels|status`): talk to
//! any relay by URL and token from cron jobs and agent hooks, through the JSON API and the
//! channel event stream ([`crate::client`]).
//!
//! Exit codes: 0 success; 1 the relay could not be reached or refused the request (the reason on
//! stderr, never the token); 2 usage error; 3 `wait` timed out with nothing new.

use crate::cli::UsageError;
use crate::client::{self, Target};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::time::Duration;

/// The subcommand names.
pub const COMMANDS: [&str; 6] = ["send", "receive", "wait", "tail", "channels", "status"];

/// The relay to talk to now when neither `--url` nor `CLAUDE_BRIDGE_URL` says.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8765";

/// A parsed subcommand line.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// `--url`.
    pub url: Option<String>,
    /// `--token`.
    pub token: Option<String>,
    /// `--json`: print the relay's JSON instead of lines.
    pub json: bool,
    /// What to do.
    pub action: Action,
}

/// What a subcommand does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `--help` of a subcommand.
    Help(&'static str),
    /// Publish a message; `content` `None` or `-` reads stdin.
    Send {
        /// Channel.
        channel: String,
        /// `--sender` (default `cli`).
        sender: String,
        /// The text.
        content: Option<String>,
        /// `--idempotency-key`.
        key: Option<String>,
    },
    /// Read a channel.
    Receive {
        /// Channel.
        channel: String,
        /// `--since-id`.
        since_id: Option<String>,
        /// `--consumer`.
        consumer: Option<String>,
        /// `--limit`.
        limit: Option<u32>,
    },
    /// Wait for messages after a cursor.
    Wait {
        /// Channel.
        channel: String,
        /// `--since-id`.
        since_id: Option<String>,
        /// `--consumer`.
        consumer: Option<String>,
        /// `--timeout` seconds (default 20, at most 55 per request).
        timeout: f64,
    },
    /// Follow the channel's event stream.
    Tail {
        /// Channel.
        channel: String,
        /// `--since-id`: replay what came after it first.
        since_id: Option<String>,
    },
    /// List channels.
    Channels,
    /// Relay health and totals.
    Status,
}

const COMMON: &str = "\
    --url URL        The relay [default: http://127.0.0.1:8765] [env: CLAUDE_BRIDGE_URL]
    --token TOKEN    Bearer token, if the relay needs one [env: CLAUDE_BRIDGE_AUTH_TOKEN]
    --json           Print the relay's JSON reply instead of lines
    -h, --help       This help
";

fn help(name: &str) -> &'static str {
    match name {
        "send" => concat!(
            "claude-bridge send CHANNEL [CONTENT|-] [--sender NAME] [--idempotency-key KEY]\n",
            "Publish a message. Without CONTENT (or with -) the message is read from stdin.\n",
            "Prints the new message's id.\n\nOPTIONS:\n",
            "    --sender NAME    Who is sending [default: cli]\n",
            "    --idempotency-key KEY   Retrying with the same key stores one message\n"
        ),
        "receive" => concat!(
            "claude-bridge receive CHANNEL [--since-id ID | --consumer NAME] [--limit N]\n",
            "Print a channel's messages, oldest first: the newest N (default 50), or those after\n",
            "ID, or those after the consumer's acknowledged position.\n\nOPTIONS:\n",
            "    --since-id ID    Only messages after this one\n",
            "    --consumer NAME  Only messages after this consumer's position\n",
            "    --limit N        At most N messages (1-500)\n"
        ),
        "wait" => concat!(
            "claude-bridge wait CHANNEL (--since-id ID | --consumer NAME) [--timeout SECONDS]\n",
            "Block until messages arrive after the cursor, then print them. Exit 0 when something\n",
            "arrived, 3 when the timeout passed with nothing new.\n\nOPTIONS:\n",
            "    --since-id ID    Wait for messages after this one\n",
            "    --consumer NAME  Wait for messages after this consumer's position\n",
            "    --timeout SECONDS  How long to wait [default: 20]\n"
        ),
        "tail" => concat!(
            "claude-bridge tail CHANNEL [--since-id ID]\n",
            "Follow a channel live: print each message as it is sent (Ctrl+C to stop).\n",
            "Reconnects by itself, resuming after the last message printed.\n\nOPTIONS:\n",
            "    --since-id ID    First print what came after this message\n"
        ),
        "channels" => concat!(
            "claude-bridge channels\n",
            "List the relay's channels with message counts and last activity.\n\nOPTIONS:\n"
        ),
        _ => concat!(
            "claude-bridge status\n",
            "Show whether the relay is up, its version, uptime and totals.\n\nOPTIONS:\n"
        ),
    }
}

/// Parse the words after the subcommand `name` (one of [`COMMANDS`]).
pub fn parse(name: &str, args: Vec<OsString>) -> Result<Script, UsageError> {
    use lexopt::prelude::*;
    let name: &'static str = COMMANDS
        .iter()
        .find(|c| **c == name)
        .ok_or_else(|| UsageError(format!("unknown command '{name}'")))?;
    let mut s = Script {
        url: None,
        token: None,
        json: false,
        action: Action::Status,
    };
    let (mut words, mut sender, mut key) = (Vec::new(), None, None);
    let (mut since_id, mut consumer, mut limit, mut timeout) = (None, None, None, None);
    let mut p = lexopt::Parser::from_args(args);
    let text = |p: &mut lexopt::Parser, flag: &str| -> Result<String, UsageError> {
        p.value()?
            .into_string()
            .map_err(|_| UsageError(format!("{flag}: the value is not valid UTF-8")))
    };
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => {
                return Ok(Script {
                    action: Action::Help(help(name)),
                    ..s
                })
            }
            Long("url") => s.url = Some(text(&mut p, "--url")?),
            Long("token") => s.token = Some(text(&mut p, "--token")?),
            Long("json") => s.json = true,
            Long("sender") if name == "send" => sender = Some(text(&mut p, "--sender")?),
            Long("idempotency-key") if name == "send" => {
                key = Some(text(&mut p, "--idempotency-key")?)
            }
            Long("since-id") if matches!(name, "receive" | "wait" | "tail") => {
                since_id = Some(text(&mut p, "--since-id")?)
            }
            Long("consumer") if matches!(name, "receive" | "wait") => {
                consumer = Some(text(&mut p, "--consumer")?)
            }
            Long("limit") if name == "receive" => {
                let v = text(&mut p, "--limit")?;
                limit = Some(
                    v.parse()
                        .ok()
                        .filter(|n| (1..=500).contains(n))
                        .ok_or_else(|| {
                            UsageError(format!("--limit: '{v}' is not a number from 1 to 500"))
                        })?,
                );
            }
            Long("timeout") if name == "wait" => {
                let v = text(&mut p, "--timeout")?;
                timeout = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|t| t.is_finite() && *t >= 0.0)
                        .ok_or_else(|| {
                            UsageError(format!("--timeout: '{v}' is not a number of seconds"))
                        })?,
                );
            }
            Value(v) => words.push(
                v.into_string()
                    .map_err(|_| UsageError("arguments must be valid UTF-8".into()))?,
            ),
            Short('-') => words.push("-".into()),
            other => return Err(UsageError(format!("{name}: {}", other.unexpected()))),
        }
    }
    let channel_then = |words: &mut Vec<String>, max: usize| -> Result<String, UsageError> {
        if words.is_empty() {
            return Err(UsageError(format!("{name}: CHANNEL is required")));
        }
        if words.len() > max {
            return Err(UsageError(format!(
                "{name}: unexpected argument '{}'",
                words[max]
            )));
        }
        Ok(words.remove(0))
    };
    s.action = match name {
        "send" => Action::Send {
            channel: channel_then(&mut words, 2)?,
            sender: sender.unwrap_or_else(|| "cli".into()),
            content: words.pop(),
            key,
        },
        "receive" => Action::Receive {
            channel: channel_then(&mut words, 1)?,
            since_id,
            consumer,
            limit,
        },
        "wait" => {
            let channel = channel_then(&mut words, 1)?;
            if since_id.is_none() && consumer.is_none() {
                return Err(UsageError(
                    "wait: give --since-id ID or --consumer NAME (where to wait from)".into(),
                ));
            }
            Action::Wait {
                channel,
                since_id,
                consumer,
                timeout: timeout.unwrap_or(20.0),
            }
        }
        "tail" => Action::Tail {
            channel: channel_then(&mut words, 1)?,
            since_id,
        },
        _ if !words.is_empty() => {
            return Err(UsageError(format!(
                "{name}: unexpected argument '{}'",
                words[0]
            )))
        }
        "channels" => Action::Channels,
        _ => Action::Status,
    };
    Ok(s)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(words: &[&str]) -> Result<Script, UsageError> {
        parse(words[0], words[1..].iter().map(OsString::from).collect())
    }

    #[test]
    fn subcommand_lines() {
        let s = p(&[
            "send",
            "demo:main",
            "hello",
            "--sender",
            "cron",
            "--url",
            "http://h:1",
        ])
        .unwrap();
        assert_eq!(s.url.as_deref(), Some("http://h:1"));
        assert_eq!(
            s.action,
            Action::Send {
                channel: "demo:main".into(),
                sender: "cron".into(),
                content: Some("hello".into()),
                key: None
            }
        );
        let s = p(&["send", "c", "-"]).unwrap();
        assert!(matches!(s.action, Action::Send { content: Some(ref c), .. } if c == "-"));
        assert!(p(&["send"]).unwrap_err().0.contains("CHANNEL"));
        assert!(p(&["send", "c", "a", "b"]).is_err());
        assert!(p(&["wait", "c"]).unwrap_err().0.contains("--since-id"));
        assert!(matches!(
            p(&["wait", "c", "--consumer", "me", "--timeout", "1.5"]).unwrap().action,
            Action::Wait { timeout, .. } if timeout == 1.5
        ));
        assert!(p(&["wait", "c", "--consumer", "me", "--timeout", "-1"]).is_err());
        assert!(p(&["receive", "c", "--limit", "0"]).is_err());
        assert!(
            p(&["receive", "c", "--sender", "x"]).is_err(),
            "send's flag"
        );
        assert!(p(&["channels", "extra"]).is_err());
        assert!(matches!(
            p(&["tail", "c", "--help"]).unwrap().action,
            Action::Help(_)
        ));
        assert_eq!(p(&["status", "--json"]).unwrap().action, Action::Status);
    }
}
