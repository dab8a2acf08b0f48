//! Command-line parsing with lexopt: argv → [`Command`]. Validation of syntax only; no I/O and
//! no environment (that is [`crate::config`]'s job).

pub mod agents;
pub mod scripts;
pub mod setup;
pub mod wake;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// `-h` / `--help`.
    Help,
    /// `--version`.
    Version,
    /// Run the relay with these flags.
    Run(Box<RawArgs>),
    /// A scripting subcommand (`send`, `receive`, …) for a relay by URL.
    Script(Box<scripts::Script>),
    /// `claude-bridge agent add|list|grant|revoke …`.
    Agent(Box<agents::AgentCommand>),
    /// `claude-bridge wake CHANNEL... --consumer ID`: the hook that wakes an idle agent.
    Wake(Box<wake::Parsed>),
    /// `claude-bridge setup claude-code ...` and `claude-bridge auth-header ...`.
    Setup(Box<setup::Parsed>),
    /// `claude-bridge tui [--url URL] [--sender NAME] [--token T]`.
    Tui {
        /// `--url`.
        url: Option<String>,
        /// `--sender`.
        sender: Option<String>,
        /// `--token`.
        token: Option<String>,
    },
}

/// Every flag as given; `None` / empty / `false` when absent.
#[derive(Debug, Default, Clone)]
pub struct RawArgs {
    /// `--host`.
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--db`.
    pub db: Option<PathBuf>,
    /// `--no-dashboard`.
    pub no_dashboard: bool,
    /// `--auth-token`.
    pub auth_token: Option<String>,
    /// `--auth-token-file`.
    pub auth_token_file: Option<PathBuf>,
    /// `--cors-origin`, repeatable.
    pub cors_origins: Vec<String>,
    /// `--trusted-host`, repeatable.
    pub trusted_hosts: Vec<String>,
    /// `--allow-unauthenticated-network`.
    pub allow_unauthenticated_network: bool,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--retention-days` (sign checked by config).
    pub retention_days: Option<i64>,
    /// `--audit-log`.
    pub audit_log: bool,
    /// `--stdio`.
    pub stdio: bool,
    /// `--push`, repeatable (with `--stdio`).
    pub push: Vec<String>,
    /// `--consumer` (with `--push`).
    pub consumer: Option<String>,
    /// `--self` (with `--push`).
    pub self_name: Option<String>,
}

/// A command line that cannot be understood (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError(e.to_string())
    }
}

/// Parse the arguments after the program name.
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Command, UsageError> {
    use lexopt::prelude::*;
    let mut args: Vec<OsString> = args.into_iter().collect();
    if let Some(word) = args.first().and_then(|a| a.to_str()) {
        if word == "tui" {
            return parse_tui(args.split_off(1));
        }
        if word == "agent" {
            return agents::parse(args.split_off(1)).map(|a| Command::Agent(Box::new(a)));
        }
        if word == "wake" {
            return wake::parse(args.split_off(1)).map(|w| Command::Wake(Box::new(w)));
        }
        if word == "setup" {
            return setup::parse(args.split_off(1)).map(|s| Command::Setup(Box::new(s)));
        }
        if word == "auth-header" {
            return setup::parse_auth_header(args.split_off(1))
                .map(|s| Command::Setup(Box::new(s)));
        }
        if scripts::COMMANDS.contains(&word) {
            let word = word.to_owned();
            let rest = args.split_off(1);
            return scripts::parse(&word, rest).map(|s| Command::Script(Box::new(s)));
        }
    }
    let mut raw = RawArgs::default();
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("version") => return Ok(Command::Version),
            Long("host") => raw.host = Some(string(&mut p, "--host")?),
            Long("port") => {
                let v = string(&mut p, "--port")?;
                raw.port = Some(v.trim().parse().map_err(|_| {
                    UsageError(format!("--port: '{v}' is not a port number (0-65535)"))
                })?);
            }
            Long("db") => raw.db = Some(p.value()?.into()),
            Long("no-dashboard") => raw.no_dashboard = true,
            Long("auth-token") => raw.auth_token = Some(string(&mut p, "--auth-token")?),
            Long("auth-token-file") => raw.auth_token_file = Some(p.value()?.into()),
            Long("cors-origin") => raw.cors_origins.push(string(&mut p, "--cors-origin")?),
            Long("trusted-host") => raw.trusted_hosts.push(string(&mut p, "--trusted-host")?),
            Long("allow-unauthenticated-network") => raw.allow_unauthenticated_network = true,
            Long("tls-cert") => raw.tls_cert = Some(p.value()?.into()),
            Long("tls-key") => raw.tls_key = Some(p.value()?.into()),
            Long("retention-days") => {
                let v = string(&mut p, "--retention-days")?;
                raw.retention_days = Some(v.trim().parse().map_err(|_| {
                    UsageError(format!("--retention-days: '{v}' is not a whole number"))
                })?);
            }
            Long("audit-log") => raw.audit_log = true,
            Long("stdio") => raw.stdio = true,
            // `--push a b` and `--push a --push b` alike.
            Long("push") => {
                for v in p.values()? {
                    let v = v.into_string().map_err(|_| {
                        UsageError("--push: the value is not valid UTF-8".to_owned())
                    })?;
                    raw.push.push(v);
                }
            }
            Long("consumer") => raw.consumer = Some(string(&mut p, "--consumer")?),
            Long("self") => raw.self_name = Some(string(&mut p, "--self")?),
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(Command::Run(Box::new(raw)))
}

/// The `tui` subcommand's flags.
fn parse_tui(args: Vec<OsString>) -> Result<Command, UsageError> {
    use lexopt::prelude::*;
    let (mut url, mut sender, mut token) = (None, None, None);
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("url") => url = Some(string(&mut p, "--url")?),
            Long("sender") => sender = Some(string(&mut p, "--sender")?),
            Long("token") => token = Some(string(&mut p, "--token")?),
            other => return Err(UsageError(format!("tui: {}", other.unexpected()))),
        }
    }
    Ok(Command::Tui { url, sender, token })
}

fn string(p: &mut lexopt::Parser, flag: &str) -> Result<String, UsageError> {
    p.value()?
        .into_string()
        .map_err(|_| UsageError(format!("{flag}: the value is not valid UTF-8")))
}

/// The `--help` text.
pub const HELP: &str = "\
claude-bridge: a relay that lets AI coding agents talk to each other over named channels.
Agents connect over MCP (/mcp, /sse, or --stdio); people use the dashboard; scripts use the
JSON API. Messages are kept in one SQLite file.

USAGE:
    claude-bridge [OPTIONS]                 run the relay
    claude-bridge COMMAND [ARGS] [--url URL] [--token TOKEN]
                                            script a relay (each has --help):
        send CHANNEL [CONTENT|-]            publish (stdin with -), prints the id
        receive CHANNEL [--since-id ID]     print messages
        wait CHANNEL --since-id ID|--consumer NAME [--timeout S]
                                            block until messages arrive (exit 3: none)
        tail CHANNEL                        follow a channel live
        channels                            list channels
        status                              is the relay up; totals
    claude-bridge tui [--url URL] [--sender NAME] [--token TOKEN]
                                            terminal UI (builds with --features tui)
    claude-bridge agent add|list|grant|revoke ...
                                            agents with their own tokens and grants
    claude-bridge setup claude-code --channel CH --consumer ID [--print]
                                            make Claude Code sessions wake on messages
    claude-bridge wake CHANNEL... --consumer ID
                                            the hook: wait, print messages, exit 2

OPTIONS:
    --host ADDR                  Address to listen on: 127.0.0.1 (default), ::1, localhost, a
                                 numeric IP, or 0.0.0.0 / :: for every interface (needs
                                 --trusted-host). Anything but loopback needs a token.
    --port N                     Port, 0 = any free port [default: 8765]
    --db PATH                    SQLite file [default: ./claude-bridge.db] [env: CLAUDE_BRIDGE_DB]
    --auth-token TOKEN           Require `Authorization: Bearer TOKEN` on the API and MCP paths.
                                 Visible in the process list: prefer the file or the env var.
                                 [env: CLAUDE_BRIDGE_AUTH_TOKEN]
    --auth-token-file PATH       Read the token from a file (surrounding whitespace trimmed)
    --trusted-host HOST          Also accept this Host header (repeatable; `*.example.com`
                                 matches subdomains) [env: CLAUDE_BRIDGE_TRUSTED_HOSTS, comma list]
    --cors-origin ORIGIN         Let this browser origin call the API (repeatable)
                                 [env: CLAUDE_BRIDGE_CORS_ORIGIN, comma list]
    --allow-unauthenticated-network
                                 Serve a non-loopback address without a token (not advised)
                                 [env: CLAUDE_BRIDGE_ALLOW_UNAUTHENTICATED_NETWORK]
    --no-dashboard               Serve no web page; the API stays [env: CLAUDE_BRIDGE_NO_DASHBOARD]
    --retention-days N           Delete messages older than N days, 0 = keep forever
                                 [default: 0] [env: CLAUDE_BRIDGE_RETENTION_DAYS]
    --audit-log                  Record auth failures, rejections, channel creation and clears
                                 [env: CLAUDE_BRIDGE_AUDIT_LOG]
    --tls-cert PATH, --tls-key PATH
                                 Serve HTTPS with these PEM files (both or neither)
    --stdio                      Speak MCP on stdin/stdout instead of listening (for a local agent)
    --push CHANNEL --consumer ID [--self NAME]
                                 With --stdio: push new messages on CHANNEL (repeatable) into
                                 the session as Claude Code channel notifications
    -h, --help                   Show this help
    --version                    Show the version

Flags win over the token file, which wins over the environment. Flag lists (--cors-origin,
--trusted-host) replace the environment's list. Switches are on if the flag is given or the
variable is true (1/0, true/false, yes/no, on/off).

ENVIRONMENT-ONLY LIMITS (defaults in brackets):
    CLAUDE_BRIDGE_MAX_REQUEST_BYTES [262144]   CLAUDE_BRIDGE_MAX_MESSAGE_BYTES [131072]
    CLAUDE_BRIDGE_MAX_SSE [100]                CLAUDE_BRIDGE_MAX_SSE_PER_CHANNEL [25]
    CLAUDE_BRIDGE_SSE_REPLAY_LIMIT [500]       CLAUDE_BRIDGE_MAX_MCP_STREAMS [4096]
    CLAUDE_BRIDGE_SESSION_TTL_SECONDS [28800]  CLAUDE_BRIDGE_EVENT_POLL_MS [50]
    CLAUDE_BRIDGE_RETENTION_SWEEP_SECONDS [3600]  CLAUDE_BRIDGE_AUDIT_RETENTION_DAYS [90]
    CLAUDE_BRIDGE_EVENT_RETENTION_DAYS [7]     CLAUDE_BRIDGE_STATELESS_HTTP [false]
    CLAUDE_BRIDGE_SYNCHRONOUS [normal|full]    CLAUDE_BRIDGE_WORKERS [16]
    CLAUDE_BRIDGE_DEFAULT_LEASE_SECONDS [300]  CLAUDE_BRIDGE_MAX_LEASE_SECONDS [3600]
    CLAUDE_BRIDGE_MAX_CONNECTIONS [16384]
    CLAUDE_BRIDGE_DEFAULT_MAX_ATTEMPTS [3]    CLAUDE_BRIDGE_KEEPALIVE_SECONDS [15]
    CLAUDE_BRIDGE_PRESENCE_SECONDS [60]

EXAMPLES:
    claude-bridge                                        # local relay on 127.0.0.1:8765
    claude-bridge --host 0.0.0.0 --trusted-host relay.lan --auth-token-file /etc/claude-bridge/token
    claude-bridge --stdio --db ~/bridge.db               # for `claude mcp add NAME -- claude-bridge --stdio`

EXIT CODES:
    0 normal stop (SIGINT/SIGTERM, end of stdin with --stdio), 1 runtime failure at start
    (port taken, db unusable), 2 bad command line or configuration.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<RawArgs, UsageError> {
        match parse(args.iter().map(OsString::from))? {
            Command::Run(r) => Ok(*r),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_flag_both_syntaxes() {
        let r = run(&[
            "--host",
            "::1",
            "--port=9",
            "--db",
            "x.db",
            "--no-dashboard",
            "--auth-token=t",
            "--auth-token-file",
            "f",
            "--cors-origin",
            "http://a",
            "--cors-origin=http://b",
            "--trusted-host",
            "h",
            "--allow-unauthenticated-network",
            "--tls-cert",
            "c",
            "--tls-key=k",
            "--retention-days",
            "-1",
            "--audit-log",
            "--stdio",
        ])
        .unwrap();
        assert_eq!(r.host.as_deref(), Some("::1"));
        assert_eq!(r.port, Some(9));
        assert_eq!(r.db, Some(PathBuf::from("x.db")));
        assert!(r.no_dashboard && r.allow_unauthenticated_network && r.audit_log && r.stdio);
        assert_eq!(r.auth_token.as_deref(), Some("t"));
        assert_eq!(r.cors_origins, ["http://a", "http://b"]);
        assert_eq!(r.trusted_hosts, ["h"]);
        assert_eq!(r.retention_days, Some(-1));
        assert_eq!(r.tls_key, Some(PathBuf::from("k")));
    }

    #[test]
    fn usage_errors() {
        assert!(run(&["--port", "http"]).unwrap_err().0.contains("--port"));
        assert!(run(&["--port", "70000"]).is_err());
        assert!(run(&["--retention-days", "x"])
            .unwrap_err()
            .0
            .contains("--retention-days"));
        assert!(run(&["--bogus"]).unwrap_err().0.contains("--bogus"));
        assert!(run(&["--db"]).is_err());
        assert!(run(&["stray"]).is_err());
        assert!(matches!(parse([OsString::from("-h")]), Ok(Command::Help)));
        assert!(matches!(
            parse([OsString::from("--version")]),
            Ok(Command::Version)
        ));
    }
}
