//! The composition root: turn a resolved [`Config`] into a running relay (open the store, bind,
//! print the banner, serve until a signal).

use crate::config::Config;
use crate::http::{self, Ctx, Stop};
use crate::relay::{Relay, Settings};
use crate::store::Store;
use std::io::Write;
use std::sync::Arc;

/// Run the HTTP relay until SIGINT/SIGTERM (`Ok`) or a fatal error (`Err`, one line for
/// `error: …`; exit code 1).
pub fn run(config: Config) -> Result<(), String> {
    if config.stdio {
        return run_stdio(&config);
    }
    let tls = match &config.tls {
        Some(tls) => Some(tls_files(tls)?),
        None => None,
    };
    raise_open_file_limit();
    let relay = open_relay(&config)?;
    let db_abs = std::fs::canonicalize(&config.db_path).unwrap_or_else(|_| config.db_path.clone());
    let listener = http::bind(config.listen, config.port)
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.port))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let banner = crate::config::banner(&config, bound.port(), &db_abs);
    let sse = crate::transport::sse::Sessions::new(
        config.limits.max_mcp_streams,
        std::time::Duration::from_secs(config.limits.keepalive_seconds),
    );
    let mcp = crate::transport::streamable::Sessions::new(
        config.limits.stateless_http,
        config.limits.max_mcp_streams,
        config.limits.max_mcp_sessions,
        std::time::Duration::from_secs(config.limits.keepalive_seconds),
    );
    let events = crate::events::Subscribers::new(
        config.limits.max_sse,
        config.limits.max_sse_per_channel,
        config.limits.sse_replay_limit,
        std::time::Duration::from_secs(config.limits.keepalive_seconds),
    );
    let logins = Arc::new(crate::login::Logins::new(
        std::time::Duration::from_secs(config.limits.session_ttl_seconds),
        config.limits.max_logins,
    ));
    // At most one parked wait per connection the relay reads at once (one each for a fleet of
    // agents; a pipelining client cannot park more than that).
    let parked = crate::parked::Parked::start(relay.clone(), config.limits.max_connections)
        .map_err(|e| format!("cannot start the wait runners: {e}"))?;
    let waking = Arc::clone(&relay);
    let hangups = crate::hangups::Hangups::start(move || waking.wake_all())
        .map_err(|e| format!("cannot start the hangup watcher: {e}"))?;
    let ctx = Arc::new(Ctx {
        relay,
        sse,
        mcp,
        events,
        logins,
        hangups,
        parked,
        busy: Default::default(),
        metrics: Default::default(),
        config,
        bound,
    });
    // Descriptors first: once the server exists, a connection flood may take them all.
    let signals = http::signals()?;
    let server = http::server(listener, tls, &ctx.config.limits)?;
    // Printed after binding, so a reader may connect as soon as it sees it.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{banner}");
    let _ = out.flush();
    drop(out);
    match http::serve(ctx, server, signals) {
        Stop::Signal => Ok(()),
        Stop::Fatal(msg) => Err(msg),
    }
}

/// Raise this process's soft limit on open descriptors to its hard limit: every agent holds a
/// connection (a descriptor), and a default soft limit of 1024 would stop a relay near a
/// thousand agents that the hard limit allows. Failure changes nothing (the limit stays).
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The certificate chain and key, read before the db is opened (exit 1 names the file); they
/// are parsed when the server is created, before the banner.
fn tls_files(tls: &crate::config::Tls) -> Result<tiny_http::SslConfig, String> {
    if !cfg!(feature = "tls") {
        return Err(
            "this build has no TLS support: rebuild with `--features tls`, or put the \
                    relay behind a TLS-terminating proxy"
                .into(),
        );
    }
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
    };
    Ok(tiny_http::SslConfig {
        certificate: read("--tls-cert", &tls.cert)?,
        private_key: read("--tls-key", &tls.key)?,
    })
}

/// Open the store of `config` and start what runs beside the requests: the watcher that wakes
/// this process on other processes' commits, and the housekeeping sweep. Used by both
/// transports (and by the fuzz targets in `tests/fuzz`).
pub fn open_relay(config: &Config) -> Result<Arc<Relay>, String> {
    let (store, warnings) =
        Store::open(&config.db_path, config.limits.synchronous_full).map_err(|e| e.to_string())?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let relay = Arc::new(Relay::new(
        store,
        Settings {
            max_message_bytes: config.limits.max_message_bytes,
            retention_days: config.retention_days,
            audit_enabled: config.audit_log,
            conformance_fixtures: config.limits.conformance_fixtures,
            modern_era: true,
            default_lease_seconds: config.limits.default_lease_seconds,
            max_lease_seconds: config.limits.max_lease_seconds,
            default_max_attempts: config.limits.default_max_attempts,
            presence_window: std::time::Duration::from_secs(config.limits.presence_seconds),
        },
    ));
    relay.limit_waiting(config.limits.max_waiting);
    relay.limit_audit(
        config.limits.audit_detail_bytes,
        config.limits.audit_fold_seconds,
    );
    // Messages and clears committed by other processes on the same file wake this process's
    // waiters and event subscribers on those channels.
    relay
        .watch(
            &config.db_path,
            std::time::Duration::from_millis(config.limits.event_poll_ms),
        )
        .map_err(|e| format!("cannot watch the database: {e}"))?;
    start_housekeeping(config, &relay);
    Ok(relay)
}

/// One sweep at start-up, then one every `CLAUDE_BRIDGE_RETENTION_SWEEP_SECONDS`
/// (`storage.md` §6). A failing sweep logs a warning and is tried again at the next tick.
fn start_housekeeping(config: &Config, relay: &Arc<Relay>) {
    let days_ago = |days: u32| {
        crate::clock::format_micros(crate::clock::now_micros() - i64::from(days) * 86_400_000_000)
    };
    let (retention, audit, audit_days, event_days) = (
        config.retention_days,
        config.audit_log,
        config.limits.audit_retention_days,
        config.limits.event_retention_days,
    );
    let every = std::time::Duration::from_secs(config.limits.retention_sweep_seconds);
    let weak = Arc::downgrade(relay);
    let spawned = std::thread::Builder::new()
        .name("housekeeping".into())
        .stack_size(256 * 1024)
        .spawn(move || loop {
            let Some(relay) = weak.upgrade() else { return };
            let what = crate::store::Sweep {
                messages_before: (retention > 0).then(|| days_ago(retention)),
                audit_before: audit.then(|| days_ago(audit_days)),
                events_before: Some(days_ago(event_days)),
            };
            match relay.sweep(&what) {
                Ok(s) if s.messages > 0 => eprintln!(
                    "retention: deleted {} message(s) older than {retention} day(s)",
                    s.messages
                ),
                Ok(_) => {}
                Err(e) => eprintln!("warning: housekeeping failed (will retry): {e}"),
            }
            if let Err(e) = relay.expire_leases() {
                eprintln!("warning: expiring task leases failed (will retry): {e}");
            }
            drop(relay);
            std::thread::sleep(every);
        });
    if let Err(e) = spawned {
        eprintln!("warning: cannot start housekeeping: {e}");
    }
}

/// MCP over stdin/stdout until stdin ends: nothing but protocol lines on stdout.
fn run_stdio(config: &Config) -> Result<(), String> {
    let relay = open_relay(config)?;
    // The token given to a `--stdio` relay (flag, file or environment) makes the session that
    // agent when it is an agent's; otherwise the session is the admin, as before.
    let who = config
        .auth_token
        .as_deref()
        .and_then(|t| relay.agent_by_token(t))
        .unwrap_or_default();
    let _online = relay.hold_for(&who);
    if let Some(name) = who.name() {
        relay.heartbeat(name);
    }
    let stdin = std::io::stdin();
    crate::transport::stdio::serve(
        relay,
        stdin.lock(),
        std::io::stdout(),
        config.limits.max_request_bytes,
        config.push.clone(),
        who,
    )
    .map_err(|e| format!("stdio: {e}"))
}
