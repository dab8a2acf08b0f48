//! The words of `claude-bridge setup claude-code ...` and `claude-bridge auth-header ...` (run
//! by [`crate::client::setup`]).

use super::UsageError;
use std::ffi::OsString;
use std::path::PathBuf;

/// Where settings go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This project, this user only (not committed).
    Local,
    /// This project, shared through the repository.
    Project,
    /// Every project of this user.
    User,
}

/// A parsed `setup claude-code` command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    /// `--channel`, repeatable.
    pub channels: Vec<String>,
    /// `--consumer`.
    pub consumer: String,
    /// `--self`.
    pub self_name: Option<String>,
    /// `--url`.
    pub url: Option<String>,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `--scope`.
    pub scope: Scope,
    /// `--print`.
    pub print: bool,
}

/// What `setup` and `auth-header` command lines ask for.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// `--help`.
    Help(&'static str),
    /// Write (or print) the settings.
    ClaudeCode(Setup),
    /// `auth-header --token-file PATH`: print `{"Authorization":"Bearer …"}`.
    AuthHeader(PathBuf),
}

/// `setup`'s help.
pub const HELP: &str = "\
claude-bridge setup claude-code --channel CH [--channel CH...] --consumer ID [OPTIONS]
Make Claude Code sessions wakeable: a message from another agent on the channels reaches an idle
session within a second. Writes the SessionStart and Stop hooks that run `claude-bridge wake`
(\"asyncRewake\") and the relay's MCP server entry, merged into the scope's settings; running it
again changes nothing.

OPTIONS:
    --channel CH         A channel to wake on (repeatable)
    --consumer ID        This agent's consumer id: its cursor records what was delivered
    --self NAME          The sender name this agent uses; its own messages wake nothing
                         [default: the consumer id]
    --url URL            The relay [default: http://127.0.0.1:8765] [env: CLAUDE_BRIDGE_URL]
    --token-file PATH    The relay's token file; settings name the file, never the token
    --scope SCOPE        local (.claude/settings.local.json + ~/.claude.json, the default),
                         project (.claude/settings.json + .mcp.json) or user (~/.claude/...)
    --print              Print the settings JSON (for `claude --settings FILE`); write nothing
    -h, --help           This help
";

/// `auth-header`'s help.
pub const AUTH_HELP: &str = "\
claude-bridge auth-header --token-file PATH
Print {\"Authorization\":\"Bearer <token>\"} for Claude Code's headersHelper, reading the token
from the file, so settings never hold it.
";

/// Parse the words after `setup`.
pub fn parse(args: Vec<OsString>) -> Result<Parsed, UsageError> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut target = None;
    let mut s = Setup {
        channels: Vec::new(),
        consumer: String::new(),
        self_name: None,
        url: None,
        token_file: None,
        scope: Scope::Local,
        print: false,
    };
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help(HELP)),
            // `--channel a b` and `--channel a --channel b` alike.
            Long("channel") => {
                for v in p.values()? {
                    s.channels.push(v.into_string().map_err(|_| {
                        UsageError("--channel: the value is not valid UTF-8".into())
                    })?);
                }
            }
            Long("consumer") => s.consumer = text(&mut p, "--consumer")?,
            Long("self") => s.self_name = Some(text(&mut p, "--self")?),
            Long("url") => s.url = Some(text(&mut p, "--url")?),
            Long("token-file") => s.token_file = Some(PathBuf::from(p.value()?)),
            Long("scope") => {
                s.scope = match text(&mut p, "--scope")?.as_str() {
                    "local" => Scope::Local,
                    "project" => Scope::Project,
                    "user" => Scope::User,
                    other => {
                        return Err(UsageError(format!(
                            "--scope: '{other}' is not local, project or user"
                        )))
                    }
                }
            }
            Long("print") => s.print = true,
            Value(v) if target.is_none() => target = Some(v),
            other => return Err(UsageError(format!("setup: {}", other.unexpected()))),
        }
    }
    match target.as_ref().and_then(|t| t.to_str()) {
        Some("claude-code") => {}
        Some(other) => {
            return Err(UsageError(format!(
                "setup: unknown target '{other}' (known: claude-code)"
            )))
        }
        None => return Err(UsageError("setup: say what to set up: claude-code".into())),
    }
    if s.channels.is_empty() {
        return Err(UsageError("setup: give at least one --channel".into()));
    }
    if s.consumer.trim().is_empty() {
        return Err(UsageError("setup: --consumer ID is required".into()));
    }
    s.channels.dedup();
    let me = s.self_name.clone().unwrap_or_else(|| s.consumer.clone());
    check_names(&s.channels, &s.consumer, &me)?;
    Ok(Parsed::ClaudeCode(s))
}

/// Parse the words after `auth-header`.
pub fn parse_auth_header(args: Vec<OsString>) -> Result<Parsed, UsageError> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut file = None;
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help(AUTH_HELP)),
            Long("token-file") => file = Some(PathBuf::from(p.value()?)),
            other => return Err(UsageError(format!("auth-header: {}", other.unexpected()))),
        }
    }
    file.map(Parsed::AuthHeader)
        .ok_or_else(|| UsageError("auth-header: --token-file PATH is required".into()))
}

/// The relay's identity rule for the channel, consumer and sender names, checked here so that a
/// hook never runs with a name the relay would refuse.
pub(crate) fn check_names(channels: &[String], consumer: &str, me: &str) -> Result<(), UsageError> {
    use crate::validate::{identity_str, MAX_CHANNEL_CHARS, MAX_CONSUMER_CHARS, MAX_SENDER_CHARS};
    let all = channels
        .iter()
        .map(|c| ("channel", c.as_str(), MAX_CHANNEL_CHARS))
        .chain([
            ("--consumer", consumer, MAX_CONSUMER_CHARS),
            ("--self", me, MAX_SENDER_CHARS),
        ]);
    for (what, value, max) in all {
        identity_str(what, value, max)
            .map_err(|e| UsageError(format!("{what} '{value}': {}", e.message)))?;
    }
    Ok(())
}

fn text(p: &mut lexopt::Parser, flag: &str) -> Result<String, UsageError> {
    p.value()?
        .into_string()
        .map_err(|_| UsageError(format!("{flag}: the value is not valid UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let words = [
            "claude-code",
            "--channel",
            "a",
            "b",
            "--channel",
            "c",
            "--consumer",
            "me",
        ];
        let Parsed::ClaudeCode(s) = parse(words.iter().map(OsString::from).collect()).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.channels, ["a", "b", "c"]);
        assert_eq!(s.scope, Scope::Local);
        let bad = |w: &[&str]| parse(w.iter().map(OsString::from).collect()).unwrap_err().0;
        assert!(bad(&["claude-code", "--consumer", "me"]).contains("--channel"));
        assert!(bad(&["claude-code", "--channel", "a"]).contains("--consumer"));
        assert!(bad(&["vim", "--channel", "a", "--consumer", "m"]).contains("unknown target"));
        assert!(bad(&["claude-code", "--scope", "global"]).contains("--scope"));
    }
}
