//! Resolved configuration: flags > token file > environment > defaults (`cli.md` §2–§4), every
//! limit with its default and range, the start-up checks, and the banner (§6).
//!
//! The environment is passed in as a function, so tests never touch the process environment.

use crate::cli::RawArgs;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// Where the token came from (shown in the banner; the token itself never is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `--auth-token`.
    Flag,
    /// `--auth-token-file`.
    File(PathBuf),
    /// `CLAUDE_BRIDGE_AUTH_TOKEN`.
    Env,
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Flag => f.write_str("--auth-token"),
            TokenSource::File(p) => write!(f, "--auth-token-file {}", p.display()),
            TokenSource::Env => f.write_str("CLAUDE_BRIDGE_AUTH_TOKEN"),
        }
    }
}

/// TLS certificate and key paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Every limit and tunable, with the defaults of `cli.md` §2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body in bytes.
    pub max_request_bytes: usize,
    /// Largest message content (or encoded envelope) in UTF-8 bytes.
    pub max_message_bytes: usize,
    /// Open channel event streams in total.
    pub max_sse: usize,
    /// Open channel event streams per channel.
    pub max_sse_per_channel: usize,
    /// Messages replayed on an event-stream reconnect before `replay_truncated`.
    pub sse_replay_limit: usize,
    /// Seconds between housekeeping sweeps.
    pub retention_sweep_seconds: u64,
    /// Days audit rows are kept.
    pub audit_retention_days: u32,
    /// Lifetime of a dashboard session cookie.
    pub session_ttl_seconds: u64,
    /// How often the event outbox is tailed for other processes' changes.
    pub event_poll_ms: u64,
    /// Days event-outbox rows are kept.
    pub event_retention_days: u32,
    /// `/mcp` without sessions.
    pub stateless_http: bool,
    /// `synchronous=FULL` instead of `NORMAL`.
    pub synchronous_full: bool,
    /// Default task lease.
    pub default_lease_seconds: u64,
    /// Longest task lease.
    pub max_lease_seconds: u64,
    /// Default attempts of a task.
    pub default_max_attempts: u32,
    /// Open MCP streams (legacy SSE sessions and `/mcp` GET streams) in total.
    pub max_mcp_streams: usize,
    /// Connections read at once; one more is answered 503 with `Retry-After` and closed.
    pub max_connections: usize,
    /// Request worker threads.
    pub workers: usize,
    /// Seconds of silence after which an event stream gets a keep-alive comment (and a vanished
    /// client is noticed).
    pub keepalive_seconds: u64,
    /// A name seen this many seconds ago still counts as online in the roster.
    pub presence_seconds: u64,
    /// Serve the MCP conformance suite's fixture tools (`CLAUDE_BRIDGE_CONFORMANCE_FIXTURES`;
    /// for the test suite only).
    pub conformance_fixtures: bool,
    /// Seconds a new connection may stay silent (no byte sent since the accept) before it is
    /// closed.
    pub silent_seconds: u64,
    /// Seconds a request body may take to arrive once the relay starts reading it.
    pub body_timeout_seconds: u64,
    /// Largest request head (request line and headers) in bytes; 431 beyond.
    pub max_head_bytes: usize,
    /// Bytes of request heads all connections may hold at once; 503 beyond.
    pub head_memory_bytes: usize,
    /// Bytes of request bodies read ahead (before a worker sees the request) by all connections
    /// at once; past it, a worker reads the body.
    pub body_memory_bytes: usize,
    /// Live `/mcp` sessions; an `initialize` beyond gets 503.
    pub max_mcp_sessions: usize,
    /// Live dashboard logins; a login beyond gets 503.
    pub max_logins: usize,
    /// Calls and long-polls waiting off the request path at once (each on a thread of its
    /// own: `/api/wait`, waiting MCP calls on every transport); 503 or a JSON-RPC error beyond.
    pub max_waiting: usize,
    /// Longest request path stored in an audit row (a longer one is cut, marked with `…`).
    pub audit_detail_bytes: usize,
    /// Rejections of one kind from one address within this many seconds of the first are
    /// folded into its audit row (a count), not stored one by one.
    pub audit_fold_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 262_144,
            max_message_bytes: 131_072,
            max_sse: 100,
            max_sse_per_channel: 25,
            sse_replay_limit: 500,
            retention_sweep_seconds: 3600,
            audit_retention_days: 90,
            session_ttl_seconds: 28_800,
            event_poll_ms: 50,
            event_retention_days: 7,
            stateless_http: false,
            synchronous_full: false,
            default_lease_seconds: 300,
            max_lease_seconds: 3600,
            default_max_attempts: 3,
            max_mcp_streams: 4096,
            max_connections: 16_384,
            workers: 16,
            keepalive_seconds: 15,
            presence_seconds: 60,
            conformance_fixtures: false,
            silent_seconds: 5,
            body_timeout_seconds: 10,
            max_head_bytes: 65_536,
            head_memory_bytes: 64 * 1024 * 1024,
            body_memory_bytes: 64 * 1024 * 1024,
            max_mcp_sessions: 10_000,
            max_logins: 10_000,
            max_waiting: crate::relay::DEFAULT_MAX_WAITING,
            audit_detail_bytes: 256,
            audit_fold_seconds: 60,
        }
    }
}

/// The relay's configuration after resolution and checks.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind.
    pub listen: IpAddr,
    /// The host as the user wrote it (`localhost`, `0.0.0.0`, …).
    pub host: String,
    /// Port to bind (0 = any).
    pub port: u16,
    /// SQLite file.
    pub db_path: PathBuf,
    /// Serve the dashboard.
    pub dashboard: bool,
    /// Bearer token, when authentication is on.
    pub auth_token: Option<String>,
    /// Where the token came from.
    pub token_source: Option<TokenSource>,
    /// Browser origins allowed by CORS.
    pub cors_origins: Vec<String>,
    /// Extra accepted `Host` names.
    pub trusted_hosts: Vec<String>,
    /// Serve protected paths to non-loopback peers without a token.
    pub allow_unauthenticated_network: bool,
    /// HTTPS files.
    pub tls: Option<Tls>,
    /// Message retention in days (0 = forever).
    pub retention_days: u32,
    /// Audit log on.
    pub audit_log: bool,
    /// MCP over stdio instead of HTTP.
    pub stdio: bool,
    /// Channel push into the stdio session (`--push`).
    pub push: Option<crate::transport::push::Push>,
    /// Limits and tunables.
    pub limits: Limits,
    /// Problems worth a warning on stderr (not fatal).
    pub warnings: Vec<String>,
}

/// A configuration that cannot run (exit 2). Never contains a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Reads environment variables, treating empty values as unset.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, key: &str) -> Option<String> {
        (self.0)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => err(format!(
                    "{key}='{v}' is not a boolean; use 1/0, true/false, yes/no or on/off"
                )),
            },
        }
    }

    fn int(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ if max == u64::MAX => err(format!(
                    "{key}='{v}' is not allowed; use a whole number of at least {min}"
                )),
                _ => err(format!(
                    "{key}='{v}' is not allowed; use a whole number from {min} to {max}"
                )),
            },
        }
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn limits(env: &Env<'_>) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    let big = u64::MAX;
    let n = |k, def: usize, min, max| env.int(k, def as u64, min, max).map(|v| v as usize);
    let synchronous_full = match env.get("CLAUDE_BRIDGE_SYNCHRONOUS") {
        None => false,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "normal" => false,
            "full" => true,
            _ => {
                return err(format!(
                    "CLAUDE_BRIDGE_SYNCHRONOUS='{v}' is not allowed; use normal or full"
                ))
            }
        },
    };
    let max_lease_seconds = env.int(
        "CLAUDE_BRIDGE_MAX_LEASE_SECONDS",
        d.max_lease_seconds,
        1,
        big,
    )?;
    Ok(Limits {
        max_request_bytes: n(
            "CLAUDE_BRIDGE_MAX_REQUEST_BYTES",
            d.max_request_bytes,
            1024,
            big,
        )?,
        max_message_bytes: n(
            "CLAUDE_BRIDGE_MAX_MESSAGE_BYTES",
            d.max_message_bytes,
            1,
            131_072,
        )?,
        max_sse: n("CLAUDE_BRIDGE_MAX_SSE", d.max_sse, 1, big)?,
        max_sse_per_channel: n(
            "CLAUDE_BRIDGE_MAX_SSE_PER_CHANNEL",
            d.max_sse_per_channel,
            1,
            big,
        )?,
        sse_replay_limit: n(
            "CLAUDE_BRIDGE_SSE_REPLAY_LIMIT",
            d.sse_replay_limit,
            1,
            10_000,
        )?,
        retention_sweep_seconds: env.int(
            "CLAUDE_BRIDGE_RETENTION_SWEEP_SECONDS",
            d.retention_sweep_seconds,
            10,
            big,
        )?,
        audit_retention_days: env.int(
            "CLAUDE_BRIDGE_AUDIT_RETENTION_DAYS",
            d.audit_retention_days.into(),
            1,
            u32::MAX.into(),
        )? as u32,
        session_ttl_seconds: env.int(
            "CLAUDE_BRIDGE_SESSION_TTL_SECONDS",
            d.session_ttl_seconds,
            60,
            big,
        )?,
        event_poll_ms: env.int("CLAUDE_BRIDGE_EVENT_POLL_MS", d.event_poll_ms, 10, 10_000)?,
        event_retention_days: env.int(
            "CLAUDE_BRIDGE_EVENT_RETENTION_DAYS",
            d.event_retention_days.into(),
            1,
            u32::MAX.into(),
        )? as u32,
        stateless_http: env.bool("CLAUDE_BRIDGE_STATELESS_HTTP")?,
        synchronous_full,
        default_lease_seconds: env
            .int(
                "CLAUDE_BRIDGE_DEFAULT_LEASE_SECONDS",
                d.default_lease_seconds,
                1,
                big,
            )?
            .min(max_lease_seconds),
        max_lease_seconds,
        default_max_attempts: env.int(
            "CLAUDE_BRIDGE_DEFAULT_MAX_ATTEMPTS",
            d.default_max_attempts.into(),
            1,
            u32::MAX.into(),
        )? as u32,
        max_mcp_streams: n("CLAUDE_BRIDGE_MAX_MCP_STREAMS", d.max_mcp_streams, 1, big)?,
        max_connections: n(
            "CLAUDE_BRIDGE_MAX_CONNECTIONS",
            d.max_connections,
            1,
            1_000_000,
        )?,
        workers: n("CLAUDE_BRIDGE_WORKERS", d.workers, 1, 1024)?,
        keepalive_seconds: env.int(
            "CLAUDE_BRIDGE_KEEPALIVE_SECONDS",
            d.keepalive_seconds,
            1,
            60,
        )?,
        presence_seconds: env.int(
            "CLAUDE_BRIDGE_PRESENCE_SECONDS",
            d.presence_seconds,
            1,
            86_400,
        )?,
        conformance_fixtures: env.bool("CLAUDE_BRIDGE_CONFORMANCE_FIXTURES")?,
        // At most the head timeout (10 s), which also counts from the accept.
        silent_seconds: env.int("CLAUDE_BRIDGE_SILENT_SECONDS", d.silent_seconds, 1, 10)?,
        body_timeout_seconds: env.int(
            "CLAUDE_BRIDGE_BODY_TIMEOUT_SECONDS",
            d.body_timeout_seconds,
            1,
            600,
        )?,
        max_head_bytes: n(
            "CLAUDE_BRIDGE_MAX_HEAD_BYTES",
            d.max_head_bytes,
            1024,
            2 * 1024 * 1024,
        )?,
        head_memory_bytes: n(
            "CLAUDE_BRIDGE_HEAD_MEMORY_BYTES",
            d.head_memory_bytes,
            65_536,
            big,
        )?,
        body_memory_bytes: n(
            "CLAUDE_BRIDGE_BODY_MEMORY_BYTES",
            d.body_memory_bytes,
            0,
            big,
        )?,
        max_mcp_sessions: n("CLAUDE_BRIDGE_MAX_MCP_SESSIONS", d.max_mcp_sessions, 1, big)?,
        max_logins: n("CLAUDE_BRIDGE_MAX_LOGINS", d.max_logins, 1, big)?,
        max_waiting: n("CLAUDE_BRIDGE_MAX_WAITING", d.max_waiting, 1, big)?,
        audit_detail_bytes: n(
            "CLAUDE_BRIDGE_AUDIT_DETAIL_BYTES",
            d.audit_detail_bytes,
            16,
            16_384,
        )?,
        audit_fold_seconds: env.int(
            "CLAUDE_BRIDGE_AUDIT_FOLD_SECONDS",
            d.audit_fold_seconds,
            0,
            3600,
        )?,
    })
}

/// The kinds of listen address the checks care about.
#[derive(Debug, PartialEq, Eq)]
enum HostKind {
    Loopback,
    Wildcard,
    Concrete,
}

/// Parse `--host`: numeric addresses (brackets allowed for IPv6) and `localhost`.
fn parse_host(host: &str) -> Result<(IpAddr, HostKind), ConfigError> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok((IpAddr::V4(Ipv4Addr::LOCALHOST), HostKind::Loopback));
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = bare.parse().map_err(|_| {
        ConfigError(format!(
            "--host '{host}' is not a numeric IP address; use an address such as 127.0.0.1, \
             ::1 or 0.0.0.0 (or localhost)"
        ))
    })?;
    // Only the three names of `cli.md` §4 count as loopback; any other address (127.0.0.2
    // included) is a concrete network listener: it needs a token and is trusted automatically.
    let kind = if ip == IpAddr::V4(Ipv4Addr::LOCALHOST)
        || ip == IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
    {
        HostKind::Loopback
    } else if ip.is_unspecified() {
        HostKind::Wildcard
    } else {
        HostKind::Concrete
    };
    Ok((ip, kind))
}

/// `--push` / `--consumer` / `--self`: only together, and only with `--stdio`.
fn push_settings(raw: &RawArgs) -> Result<Option<crate::transport::push::Push>, ConfigError> {
    if raw.push.is_empty() {
        if raw.consumer.is_some() || raw.self_name.is_some() {
            return err("--consumer and --self go with --push CHANNEL");
        }
        return Ok(None);
    }
    if !raw.stdio {
        return err("--push needs --stdio (it pushes into a local session)");
    }
    let consumer = match raw.consumer.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => c.to_owned(),
        _ => return err("--push needs --consumer ID (whose cursor records delivery)"),
    };
    let mut channels = raw.push.clone();
    channels.dedup();
    let self_name = raw.self_name.clone().unwrap_or_else(|| consumer.clone());
    use crate::validate::{identity_str, MAX_CHANNEL_CHARS, MAX_CONSUMER_CHARS, MAX_SENDER_CHARS};
    let checks = channels
        .iter()
        .map(|c| ("--push", c, MAX_CHANNEL_CHARS))
        .chain([
            ("--consumer", &consumer, MAX_CONSUMER_CHARS),
            ("--self", &self_name, MAX_SENDER_CHARS),
        ]);
    for (flag, value, max) in checks {
        if let Err(e) = identity_str(flag, value, max) {
            return err(format!("{flag} '{value}': {}", e.message));
        }
    }
    Ok(Some(crate::transport::push::Push {
        channels,
        self_name,
        consumer,
    }))
}

/// Resolve flags and environment into a checked configuration.
pub fn resolve(raw: RawArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let env = Env(env);
    let limits = limits(&env)?;
    let mut warnings = Vec::new();
    let push = push_settings(&raw)?;

    let tls = match (raw.tls_cert, raw.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            for (flag, p) in [("--tls-cert", &cert), ("--tls-key", &key)] {
                if !p.exists() {
                    return err(format!("{flag} {}: no such file", p.display()));
                }
            }
            if let Some(w) = loose_permissions("TLS key", &key) {
                warnings.push(w);
            }
            Some(Tls { cert, key })
        }
        _ => return err("--tls-cert and --tls-key are needed together"),
    };

    let retention_days = match raw.retention_days {
        Some(n) if n < 0 => return err(format!("--retention-days must be >= 0 (got {n})")),
        Some(n) => u32::try_from(n)
            .map_err(|_| ConfigError(format!("--retention-days {n} is too large")))?,
        None => env.int("CLAUDE_BRIDGE_RETENTION_DAYS", 0, 0, u32::MAX.into())? as u32,
    };

    let host = raw.host.unwrap_or_else(|| "127.0.0.1".into());
    let (listen, kind) = parse_host(&host)?;

    let (auth_token, token_source) =
        if let Some(t) = raw.auth_token.filter(|t| !t.trim().is_empty()) {
            (Some(t), Some(TokenSource::Flag))
        } else if let Some(path) = raw.auth_token_file {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError(format!(
                    "--auth-token-file {}: cannot read it: {e}",
                    path.display()
                ))
            })?;
            let t = text.trim();
            if t.is_empty() {
                return err(format!(
                    "--auth-token-file {}: the file is empty",
                    path.display()
                ));
            }
            if let Some(w) = loose_permissions("token", &path) {
                warnings.push(w);
            }
            (Some(t.to_owned()), Some(TokenSource::File(path)))
        } else if let Some(t) = env.get("CLAUDE_BRIDGE_AUTH_TOKEN") {
            (Some(t), Some(TokenSource::Env))
        } else {
            (None, None)
        };

    let cors_origins = if raw.cors_origins.is_empty() {
        env.list("CLAUDE_BRIDGE_CORS_ORIGIN")
    } else {
        raw.cors_origins
    };
    let mut trusted_hosts = if raw.trusted_hosts.is_empty() {
        env.list("CLAUDE_BRIDGE_TRUSTED_HOSTS")
    } else {
        raw.trusted_hosts
    };
    let allow_unauthenticated_network = raw.allow_unauthenticated_network
        || env.bool("CLAUDE_BRIDGE_ALLOW_UNAUTHENTICATED_NETWORK")?;
    let no_dashboard = raw.no_dashboard || env.bool("CLAUDE_BRIDGE_NO_DASHBOARD")?;
    let audit_log = raw.audit_log || env.bool("CLAUDE_BRIDGE_AUDIT_LOG")?;

    match kind {
        HostKind::Wildcard if trusted_hosts.is_empty() => {
            return err(format!(
                "--host {host} listens on every interface; add --trusted-host with the name or IP \
                 clients will use to reach it"
            ))
        }
        HostKind::Concrete => {
            let name = listen.to_string();
            if !trusted_hosts.contains(&name) {
                trusted_hosts.push(name);
            }
        }
        _ => {}
    }
    if kind != HostKind::Loopback && auth_token.is_none() && !allow_unauthenticated_network {
        return err(format!(
            "refusing to listen on {host} without a token: set one with --auth-token-file PATH \
             (or CLAUDE_BRIDGE_AUTH_TOKEN), or pass --allow-unauthenticated-network to accept \
             the risk"
        ));
    }

    let db_path = raw
        .db
        .or_else(|| env.get("CLAUDE_BRIDGE_DB").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("./claude-bridge.db"));

    Ok(Config {
        listen,
        host,
        port: raw.port.unwrap_or(8765),
        db_path,
        dashboard: !no_dashboard,
        auth_token,
        token_source,
        cors_origins,
        trusted_hosts,
        allow_unauthenticated_network,
        tls,
        retention_days,
        audit_log,
        stdio: raw.stdio,
        push,
        limits,
        warnings,
    })
}

/// A warning when a secret file (`what`: token, TLS key) is open to group or others.
#[cfg(unix)]
fn loose_permissions(what: &str, path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{what} file {} is readable by group or others (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        )
    })
}

#[cfg(not(unix))]
fn loose_permissions(_what: &str, _path: &Path) -> Option<String> {
    None
}

/// `scheme://host:port` for a host name or IP (IPv6 in brackets).
fn base_url(scheme: &str, host: &str, port: u16) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.contains(':') {
        format!("{scheme}://[{bare}]:{port}")
    } else {
        format!("{scheme}://{bare}:{port}")
    }
}

/// The start-up banner (`cli.md` §6). Its first line is `claude-bridge <version> listening on
/// <base-url>`; the token is never included.
pub fn banner(cfg: &Config, bound_port: u16, db_abs: &Path) -> String {
    use std::fmt::Write;
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let wildcard = cfg.listen.is_unspecified();
    let hosts: Vec<String> = if wildcard {
        if cfg.trusted_hosts.is_empty() {
            vec![cfg.listen.to_string()]
        } else {
            cfg.trusted_hosts
                .iter()
                .map(|h| h.trim_start_matches("*.").to_owned())
                .collect()
        }
    } else {
        vec![cfg.listen.to_string()]
    };
    let mut s = String::new();
    let first = base_url(scheme, &hosts[0], bound_port);
    let _ = writeln!(
        s,
        "claude-bridge {} listening on {first}",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(s, "  database   {}", db_abs.display());
    if wildcard {
        let _ = writeln!(
            s,
            "  listening on every interface ({}); URLs per trusted host:",
            cfg.listen
        );
    }
    for h in &hosts {
        let base = base_url(scheme, h, bound_port);
        if cfg.dashboard {
            let _ = writeln!(s, "  dashboard  {base}/");
        } else {
            let _ = writeln!(s, "  dashboard  disabled (--no-dashboard)");
        }
        let _ = writeln!(
            s,
            "  MCP        {base}/mcp   (Streamable HTTP, recommended)"
        );
        let _ = writeln!(s, "  MCP (SSE)  {base}/sse   (legacy)");
        let _ = writeln!(s, "  state      {base}/api/state");
        let _ = writeln!(s, "  health     {base}/status");
        if cfg.audit_log {
            let _ = writeln!(s, "  audit      {base}/api/audit");
        }
    }
    match &cfg.token_source {
        Some(src) => {
            let _ = writeln!(s, "  auth       bearer token required (from {src})");
        }
        None => {
            let _ = writeln!(s, "  auth       none (loopback clients only)");
        }
    }
    if let Some(tls) = &cfg.tls {
        let _ = writeln!(s, "  TLS        on, certificate {}", tls.cert.display());
    }
    if cfg.retention_days > 0 {
        let _ = writeln!(
            s,
            "  WARNING    messages older than {} days are deleted (sweep every {} s)",
            cfg.retention_days, cfg.limits.retention_sweep_seconds
        );
    }
    s.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve_with(raw: RawArgs, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(raw, &move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = resolve_with(RawArgs::default(), &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1");
        assert_eq!(c.port, 8765);
        assert_eq!(c.db_path, PathBuf::from("./claude-bridge.db"));
        assert!(c.dashboard && c.auth_token.is_none());
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn env_ranges_at_their_edges() {
        let bad = |k: &str, v: &str| {
            let e = resolve_with(RawArgs::default(), &[(k, v)]).unwrap_err();
            assert!(e.0.contains(k), "{e}");
        };
        let ok = |k: &str, v: &str| resolve_with(RawArgs::default(), &[(k, v)]).unwrap().limits;
        bad("CLAUDE_BRIDGE_MAX_REQUEST_BYTES", "1023");
        assert_eq!(
            ok("CLAUDE_BRIDGE_MAX_REQUEST_BYTES", " 1024 ").max_request_bytes,
            1024
        );
        bad("CLAUDE_BRIDGE_MAX_MESSAGE_BYTES", "0");
        bad("CLAUDE_BRIDGE_MAX_MESSAGE_BYTES", "131073");
        assert_eq!(
            ok("CLAUDE_BRIDGE_MAX_MESSAGE_BYTES", "131072").max_message_bytes,
            131_072
        );
        bad("CLAUDE_BRIDGE_EVENT_POLL_MS", "9");
        bad("CLAUDE_BRIDGE_EVENT_POLL_MS", "10001");
        assert_eq!(ok("CLAUDE_BRIDGE_EVENT_POLL_MS", "10").event_poll_ms, 10);
        assert_eq!(
            ok("CLAUDE_BRIDGE_EVENT_POLL_MS", "10000").event_poll_ms,
            10_000
        );
        bad("CLAUDE_BRIDGE_SSE_REPLAY_LIMIT", "10001");
        bad("CLAUDE_BRIDGE_PRESENCE_SECONDS", "0");
        bad("CLAUDE_BRIDGE_PRESENCE_SECONDS", "86401");
        assert_eq!(
            ok("CLAUDE_BRIDGE_PRESENCE_SECONDS", "1").presence_seconds,
            1
        );
        assert_eq!(
            ok("CLAUDE_BRIDGE_PRESENCE_SECONDS", "86400").presence_seconds,
            86_400
        );
        bad("CLAUDE_BRIDGE_RETENTION_SWEEP_SECONDS", "9");
        bad("CLAUDE_BRIDGE_SESSION_TTL_SECONDS", "59");
        bad("CLAUDE_BRIDGE_MAX_SSE", "abc");
        bad("CLAUDE_BRIDGE_STATELESS_HTTP", "maybe");
        assert!(ok("CLAUDE_BRIDGE_STATELESS_HTTP", "ON").stateless_http);
        bad("CLAUDE_BRIDGE_SYNCHRONOUS", "extra");
        assert!(ok("CLAUDE_BRIDGE_SYNCHRONOUS", "FULL").synchronous_full);
        assert_eq!(ok("CLAUDE_BRIDGE_MAX_SSE", "").max_sse, 100); // empty = default
        let l = ok("CLAUDE_BRIDGE_DEFAULT_LEASE_SECONDS", "9000");
        assert_eq!(l.default_lease_seconds, 3600); // capped by the max lease
        bad("CLAUDE_BRIDGE_NO_DASHBOARD", "x");
        bad("CLAUDE_BRIDGE_RETENTION_DAYS", "-1");
    }

    /// The request-reading and map limits (issue 17): each refused one past its range and
    /// taken at both ends of it (`None`: no upper bound).
    #[test]
    fn hardening_limits_at_their_edges() {
        type Get = fn(&Limits) -> u64;
        let cases: [(&str, u64, Option<u64>, Get); 10] = [
            ("CLAUDE_BRIDGE_SILENT_SECONDS", 1, Some(10), |l| {
                l.silent_seconds
            }),
            ("CLAUDE_BRIDGE_BODY_TIMEOUT_SECONDS", 1, Some(600), |l| {
                l.body_timeout_seconds
            }),
            (
                "CLAUDE_BRIDGE_MAX_HEAD_BYTES",
                1024,
                Some(2 * 1024 * 1024),
                |l| l.max_head_bytes as u64,
            ),
            ("CLAUDE_BRIDGE_HEAD_MEMORY_BYTES", 65_536, None, |l| {
                l.head_memory_bytes as u64
            }),
            ("CLAUDE_BRIDGE_BODY_MEMORY_BYTES", 0, None, |l| {
                l.body_memory_bytes as u64
            }),
            ("CLAUDE_BRIDGE_MAX_MCP_SESSIONS", 1, None, |l| {
                l.max_mcp_sessions as u64
            }),
            ("CLAUDE_BRIDGE_MAX_LOGINS", 1, None, |l| l.max_logins as u64),
            ("CLAUDE_BRIDGE_MAX_WAITING", 1, None, |l| {
                l.max_waiting as u64
            }),
            ("CLAUDE_BRIDGE_AUDIT_DETAIL_BYTES", 16, Some(16_384), |l| {
                l.audit_detail_bytes as u64
            }),
            ("CLAUDE_BRIDGE_AUDIT_FOLD_SECONDS", 0, Some(3600), |l| {
                l.audit_fold_seconds
            }),
        ];
        let limits = |k: &str, v: String| resolve_with(RawArgs::default(), &[(k, &v)]);
        for (k, min, max, get) in cases {
            let at = |v: u64| get(&limits(k, v.to_string()).unwrap().limits);
            assert_eq!(at(min), min, "{k}");
            if min > 0 {
                assert!(limits(k, (min - 1).to_string()).is_err(), "{k} below");
            } else {
                assert!(limits(k, "-1".into()).is_err(), "{k} negative");
            }
            match max {
                Some(max) => {
                    assert_eq!(at(max), max, "{k}");
                    assert!(limits(k, (max + 1).to_string()).is_err(), "{k} above");
                }
                None => assert_eq!(at(1 << 40), 1 << 40, "{k}"),
            }
        }
    }

    #[test]
    fn precedence() {
        let dir = std::env::temp_dir().join(format!("cb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "  from-file\n").unwrap();
        let raw = RawArgs {
            auth_token: Some("from-flag".into()),
            auth_token_file: Some(file.clone()),
            ..RawArgs::default()
        };
        let env = [("CLAUDE_BRIDGE_AUTH_TOKEN", "from-env")];
        let c = resolve_with(raw, &env).unwrap();
        assert_eq!(
            (c.auth_token.as_deref(), c.token_source),
            (Some("from-flag"), Some(TokenSource::Flag))
        );
        let raw = RawArgs {
            auth_token_file: Some(file.clone()),
            ..RawArgs::default()
        };
        let c = resolve_with(raw, &env).unwrap();
        assert_eq!(c.auth_token.as_deref(), Some("from-file"));
        let c = resolve_with(RawArgs::default(), &env).unwrap();
        assert_eq!(
            (c.auth_token.as_deref(), c.token_source),
            (Some("from-env"), Some(TokenSource::Env))
        );

        let raw = RawArgs {
            db: Some("flag.db".into()),
            retention_days: Some(2),
            ..RawArgs::default()
        };
        let env = [
            ("CLAUDE_BRIDGE_DB", "env.db"),
            ("CLAUDE_BRIDGE_RETENTION_DAYS", "5"),
        ];
        let c = resolve_with(raw, &env).unwrap();
        assert_eq!((c.db_path, c.retention_days), (PathBuf::from("flag.db"), 2));
        let c = resolve_with(RawArgs::default(), &env).unwrap();
        assert_eq!((c.db_path, c.retention_days), (PathBuf::from("env.db"), 5));

        let env = [
            ("CLAUDE_BRIDGE_CORS_ORIGIN", "http://a, ,http://b"),
            ("CLAUDE_BRIDGE_TRUSTED_HOSTS", "x.lan"),
        ];
        let c = resolve_with(RawArgs::default(), &env).unwrap();
        assert_eq!(c.cors_origins, ["http://a", "http://b"]);
        let raw = RawArgs {
            cors_origins: vec!["http://c".into()],
            trusted_hosts: vec!["y.lan".into()],
            ..RawArgs::default()
        };
        let c = resolve_with(raw, &env).unwrap();
        assert_eq!(
            (c.cors_origins, c.trusted_hosts),
            (vec!["http://c".to_string()], vec!["y.lan".to_string()])
        );

        let c = resolve_with(
            RawArgs::default(),
            &[
                ("CLAUDE_BRIDGE_NO_DASHBOARD", "yes"),
                ("CLAUDE_BRIDGE_AUDIT_LOG", "1"),
            ],
        )
        .unwrap();
        assert!(!c.dashboard && c.audit_log);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn start_up_checks() {
        let e = |raw: RawArgs| resolve_with(raw, &[]).unwrap_err().0;
        assert!(e(RawArgs {
            tls_cert: Some("c".into()),
            ..RawArgs::default()
        })
        .contains("together"));
        assert!(e(RawArgs {
            tls_cert: Some("/nope/c".into()),
            tls_key: Some("/nope/k".into()),
            ..RawArgs::default()
        })
        .contains("/nope/c"));
        assert!(e(RawArgs {
            retention_days: Some(-1),
            ..RawArgs::default()
        })
        .contains(">= 0"));
        assert!(e(RawArgs {
            host: Some("0.0.0.0".into()),
            ..RawArgs::default()
        })
        .contains("--trusted-host"));
        assert!(e(RawArgs {
            host: Some("192.168.1.5".into()),
            ..RawArgs::default()
        })
        .contains("without a token"));
        assert!(e(RawArgs {
            host: Some("example.com".into()),
            ..RawArgs::default()
        })
        .contains("numeric"));
        assert!(e(RawArgs {
            auth_token_file: Some("/nonexistent/t".into()),
            ..RawArgs::default()
        })
        .contains("/nonexistent/t"));
        let c = resolve_with(
            RawArgs {
                host: Some("192.168.1.5".into()),
                allow_unauthenticated_network: true,
                ..RawArgs::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(c.trusted_hosts, ["192.168.1.5"]);
        let c = resolve_with(
            RawArgs {
                host: Some("[::1]".into()),
                ..RawArgs::default()
            },
            &[],
        )
        .unwrap();
        assert!(c.listen.is_loopback());
        let c = resolve_with(
            RawArgs {
                host: Some("localhost".into()),
                ..RawArgs::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1");
    }

    #[test]
    fn banner_contents() {
        let mut c = resolve_with(
            RawArgs {
                auth_token: Some("s3cret".into()),
                retention_days: Some(3),
                audit_log: true,
                ..RawArgs::default()
            },
            &[],
        )
        .unwrap();
        let b = banner(&c, 4321, Path::new("/data/x.db"));
        assert!(
            b.starts_with("claude-bridge 0.1.0 listening on http://127.0.0.1:4321\n"),
            "{b}"
        );
        for part in [
            "/data/x.db",
            "http://127.0.0.1:4321/mcp",
            "/sse",
            "/api/state",
            "/status",
            "/api/audit",
            "3 days",
            "--auth-token",
        ] {
            assert!(b.contains(part), "{part} missing in {b}");
        }
        assert!(!b.contains("s3cret"));
        c.listen = "::1".parse().unwrap();
        c.dashboard = false;
        let b = banner(&c, 1, Path::new("x"));
        assert!(
            b.starts_with("claude-bridge 0.1.0 listening on http://[::1]:1"),
            "{b}"
        );
        assert!(b.contains("disabled"));
        let c = resolve_with(
            RawArgs {
                host: Some("0.0.0.0".into()),
                trusted_hosts: vec!["a.lan".into(), "b.lan".into()],
                auth_token: Some("t".into()),
                ..RawArgs::default()
            },
            &[],
        )
        .unwrap();
        let b = banner(&c, 80, Path::new("x"));
        assert!(
            b.contains("http://a.lan:80/mcp") && b.contains("http://b.lan:80/mcp"),
            "{b}"
        );
    }
}
