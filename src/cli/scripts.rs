//! The scripting subcommands' words (`claude-bridge send|receive|wait|tail|channels|status`):
//! argv → [`Script`], syntax only. They run in [`crate::client::scripting`].

use super::UsageError;
use std::ffi::OsString;

/// The subcommand names.
pub const COMMANDS: [&str; 6] = ["send", "receive", "wait", "tail", "channels", "status"];

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

/// The options every scripting subcommand takes, for its help.
pub const COMMON: &str = "\
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
