//! The words of `claude-bridge wake CHANNEL... --consumer ID` (run by [`crate::client::wake`]).

use super::UsageError;
use std::ffi::OsString;
use std::path::PathBuf;

/// Default byte budget of one delivery on stderr.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024;
/// The smallest budget accepted (room for the header, one framed message and the notes).
pub const MIN_MAX_BYTES: usize = 1024;
/// A parsed `wake` command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Wake {
    /// The channels to wait on (at least one).
    pub channels: Vec<String>,
    /// `--consumer`: whose cursor records delivery.
    pub consumer: String,
    /// `--self`: messages from this sender wake nothing (default: the consumer id).
    pub self_name: String,
    /// `--url`.
    pub url: Option<String>,
    /// `--token`.
    pub token: Option<String>,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `--max-wait` seconds; 0 = no limit.
    pub max_wait: f64,
    /// `--max-bytes`: the budget of one delivery.
    pub max_bytes: usize,
}

/// The help text.
pub const HELP: &str = "\
claude-bridge wake CHANNEL... --consumer ID [--self NAME] [--max-wait SECONDS]
Block until a message from another agent arrives on one of the channels, print it to stderr and
exit 2. Meant as a Claude Code hook with \"asyncRewake\": true (see `claude-bridge setup
claude-code`): exit 2 hands stderr to the model and wakes an idle session.

Each message is given once: delivery is recorded on the consumer's cursor, and messages that came
while no waiter ran are given to the next one. One waiter per consumer and relay on a machine; a
second one exits 0 at once.

OPTIONS:
    --consumer ID        Whose cursor records what was delivered (required)
    --self NAME          Messages sent as NAME wake nothing [default: the consumer id]
    --max-wait SECONDS   Exit 0 after this long with nothing new; 0 = no limit [default: 0]
    --max-bytes N        Print at most about N bytes; the rest comes with the next wake
                         [default: 16384, at least 1024]
    --url URL            The relay [default: http://127.0.0.1:8765] [env: CLAUDE_BRIDGE_URL]
    --token TOKEN        Bearer token [env: CLAUDE_BRIDGE_AUTH_TOKEN]
    --token-file PATH    Read the token from a file (surrounding whitespace trimmed)
    -h, --help           This help

EXIT CODES:
    2 messages printed to stderr, 0 nothing (deadline, another waiter, session gone), 1 error.
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// `--help`.
    Help,
    /// Wait.
    Run(Wake),
}

/// Parse the words after `wake`.
pub fn parse(args: Vec<OsString>) -> Result<Parsed, UsageError> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let (mut channels, mut consumer, mut self_name) = (Vec::new(), None, None);
    let (mut url, mut token, mut token_file) = (None, None, None);
    let (mut max_wait, mut max_bytes) = (0.0, DEFAULT_MAX_BYTES);
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Long("consumer") => consumer = Some(text(&mut p, "--consumer")?),
            Long("self") => self_name = Some(text(&mut p, "--self")?),
            Long("url") => url = Some(text(&mut p, "--url")?),
            Long("token") => token = Some(text(&mut p, "--token")?),
            Long("token-file") => token_file = Some(PathBuf::from(p.value()?)),
            Long("max-wait") => {
                let v = text(&mut p, "--max-wait")?;
                max_wait = v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|t| t.is_finite() && *t >= 0.0)
                    .ok_or_else(|| {
                        UsageError(format!("--max-wait: '{v}' is not a number of seconds"))
                    })?;
            }
            Long("max-bytes") => {
                let v = text(&mut p, "--max-bytes")?;
                max_bytes = v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= MIN_MAX_BYTES)
                    .ok_or_else(|| {
                        UsageError(format!(
                            "--max-bytes: '{v}' is not a whole number of at least {MIN_MAX_BYTES}"
                        ))
                    })?;
            }
            Value(v) => channels.push(
                v.into_string()
                    .map_err(|_| UsageError("wake: CHANNEL must be valid UTF-8".into()))?,
            ),
            other => return Err(UsageError(format!("wake: {}", other.unexpected()))),
        }
    }
    if channels.is_empty() {
        return Err(UsageError("wake: give at least one CHANNEL".into()));
    }
    let consumer = consumer
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| UsageError("wake: --consumer ID is required".into()))?;
    if token.is_some() && token_file.is_some() {
        return Err(UsageError(
            "wake: give --token or --token-file, not both".into(),
        ));
    }
    channels.dedup();
    super::setup::check_names(
        &channels,
        &consumer,
        self_name.as_deref().unwrap_or(&consumer),
    )?;
    Ok(Parsed::Run(Wake {
        channels,
        self_name: self_name.unwrap_or_else(|| consumer.clone()),
        consumer,
        url,
        token,
        token_file,
        max_wait,
        max_bytes,
    }))
}

fn text(p: &mut lexopt::Parser, flag: &str) -> Result<String, UsageError> {
    p.value()?
        .into_string()
        .map_err(|_| UsageError(format!("{flag}: the value is not valid UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(words: &[&str]) -> Result<Parsed, UsageError> {
        parse(words.iter().map(OsString::from).collect())
    }

    #[test]
    fn command_lines() {
        let Parsed::Run(w) = p(&["a", "b", "--consumer", "me", "--max-wait", "2.5"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(w.channels, ["a", "b"]);
        assert_eq!(w.self_name, "me");
        assert_eq!(w.max_wait, 2.5);
        assert_eq!(w.max_bytes, DEFAULT_MAX_BYTES);
        assert!(p(&["--consumer", "me"]).unwrap_err().0.contains("CHANNEL"));
        assert!(p(&["a"]).unwrap_err().0.contains("--consumer"));
        assert!(p(&["a", "--consumer", "me", "--max-wait", "-1"]).is_err());
        assert!(p(&["a", "--consumer", "me", "--max-bytes", "1023"]).is_err());
        assert!(p(&["a", "--consumer", "m", "--token", "t", "--token-file", "f"]).is_err());
        assert_eq!(p(&["--help"]).unwrap(), Parsed::Help);
        assert!(p(&["a ", "--consumer", "me"])
            .unwrap_err()
            .0
            .contains("whitespace"));
        assert!(p(&["a", "--consumer", "me", "--self", ""]).is_err());
    }
}
