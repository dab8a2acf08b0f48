//! The HTTP front: listener, worker pool, and the request pipeline every request passes
//! (`http-api.md` §2). Its parts: [`routes`] (the route table: each path's rule and handler),
//! `policy` (CORS, Host, Origin, authentication, body framing, the headers on every reply)
//! and `handoff` (streams and deferred replies, written on their own threads).
//!
//! Invariants:
//! - Requests are handled by a fixed pool of workers pulling from `Server::recv()`; no thread per
//!   request. A handler panic becomes a JSON 500 for that request only.
//! - A body is read only where its handler uses it (`takes_body`; tiny_http has read it whole
//!   on the connection's thread, within the body deadline, unless the body-memory budget was
//!   spent), through a `take(max + 1)` reader, so an oversize body (declared or chunked) is refused as soon as the limit is
//!   crossed, never buffered whole. A body left unread is never drained: tiny_http closes the
//!   connection after the answer (`Connection: close`).
//! - tiny_http's accept loop survives accept errors (patched, see the codemap); if the
//!   listening socket itself is gone, a worker sees `recv()` fail and the process exits
//!   non-zero so a supervisor restarts it, instead of silently serving nothing.
//! - No lock is held while a reply is written: handlers return a [`Reply`] value first.

mod handoff;
mod policy;
pub mod routes;

use crate::config::Config;
use crate::relay::Relay;
use crate::wire::{all, header, Reply, Req};
use routes::Route;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use tiny_http::{Header, Method, Request, Response, Server};

/// How long a connection may sit silent mid-request (or idle between keep-alive requests)
/// before the socket read fails. A request that waits (long-poll) does not read meanwhile, so
/// this does not bound waits.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a write may block on a client that stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Stack size of request worker threads: room for 256-deep JSON in a debug build (the memory
/// is committed only as it is touched).
const WORKER_STACK: usize = 2 * 1024 * 1024;

/// Everything the pipeline needs, shared by every worker.
pub struct Ctx {
    /// The operations.
    pub relay: Arc<Relay>,
    /// Open legacy-SSE MCP sessions.
    pub sse: Arc<crate::transport::sse::Sessions>,
    /// Streamable-HTTP MCP sessions (`/mcp`).
    pub mcp: Arc<crate::transport::streamable::Sessions>,
    /// Open live channel event streams.
    pub events: Arc<crate::events::Subscribers>,
    /// Dashboard logins.
    pub logins: Arc<crate::login::Logins>,
    /// Long-polls whose client may leave before the answer is ready.
    pub hangups: Arc<crate::hangups::Hangups>,
    /// Long-polls waiting without a thread of their own.
    pub parked: Arc<crate::parked::Parked>,
    /// Request counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Requests being answered (on a worker, a stream thread or a deferred thread); shutdown
    /// waits for it to reach zero.
    pub busy: Arc<AtomicUsize>,
    /// The resolved configuration.
    pub config: Config,
    /// The bound address (for the banner and the dashboard).
    pub bound: SocketAddr,
}

/// Bind the listener: numeric address, `SO_REUSEADDR`, `TCP_NODELAY` and socket timeouts set on
/// the listening socket so that every accepted connection inherits them (tiny_http never sets
/// `TCP_NODELAY`, and without it a keep-alive reply over ~1 KiB stalls on delayed ACKs).
pub fn bind(ip: IpAddr, port: u16) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr = SocketAddr::new(ip, port);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if ip.is_ipv6() {
        // `::` serves IPv4 clients too where the system allows it.
        let _ = socket.set_only_v6(false);
    }
    socket.set_tcp_nodelay(true)?;
    socket.set_read_timeout(Some(READ_TIMEOUT))?;
    socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Why serving stopped.
#[derive(Debug)]
pub enum Stop {
    /// SIGINT or SIGTERM: exit 0.
    Signal,
    /// The listener failed for good: exit non-zero.
    Fatal(String),
}

/// SIGINT and SIGTERM, caught from now on. Installed before [`server`]: it needs descriptors,
/// and once the server accepts, a connection flood may hold them all.
pub fn signals() -> Result<signal_hook::iterator::Signals, String> {
    signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))
}

/// The HTTP server on `listener`, serving HTTPS when `tls` is given (a build without the `tls`
/// feature refuses it), reading at most `limits.max_connections` connections at once, within
/// the read deadlines and head bounds of `limits`. It accepts from
/// now on (accept() survives EMFILE); requests wait for [`serve`]'s workers. Everything else
/// that needs a descriptor must be set up before.
pub fn server(
    listener: TcpListener,
    tls: Option<tiny_http::SslConfig>,
    limits: &crate::config::Limits,
) -> Result<Server, String> {
    let tls_given = tls.is_some();
    let server = Server::from_listener(listener, tls).map_err(|e| {
        let what = if tls_given {
            "serve TLS"
        } else {
            "start the HTTP server"
        };
        format!("cannot {what}: {e}")
    })?;
    server.limit_connections(limits.max_connections, connection_refusal());
    server.set_read_limits(tiny_http::ReadLimits {
        silent: Duration::from_secs(limits.silent_seconds),
        head: tiny_http::ReadLimits::default().head,
        body: Duration::from_secs(limits.body_timeout_seconds),
        max_head_bytes: limits.max_head_bytes,
        head_memory: limits.head_memory_bytes,
        body_memory: limits.body_memory_bytes,
    });
    // Bodies a handler will read arrive whole before a worker sees the request.
    server.prefetch_bodies(limits.max_request_bytes, takes_body);
    server.set_own_headers(
        policy::EVERY_RESPONSE
            .iter()
            .filter_map(|(k, v)| Header::from_bytes(k.as_bytes(), v.as_bytes()).ok())
            .collect(),
    );
    Ok(server)
}

/// Whether a request's body will be read by its handler (a POST to a route taking JSON): such
/// bodies are read whole on the connection's own thread before a worker takes the request.
fn takes_body(method: &Method, url: &str) -> bool {
    let path = url.split('?').next().unwrap_or_default();
    *method == Method::Post && Route::parse(path).rule().json_body
}

/// Serve requests with a pool of workers until a signal arrives or the listener fails.
/// Returns why it stopped.
pub fn serve(ctx: Arc<Ctx>, server: Server, mut signals: signal_hook::iterator::Signals) -> Stop {
    let (tx, rx) = mpsc::channel::<Stop>();
    {
        let tx = tx.clone();
        thread::spawn(move || {
            if signals.forever().next().is_some() {
                let _ = tx.send(Stop::Signal);
            }
        });
    }
    let server = Arc::new(server);
    for i in 0..ctx.config.limits.workers.max(1) {
        let (ctx, server, tx) = (Arc::clone(&ctx), Arc::clone(&server), tx.clone());
        let spawned = thread::Builder::new()
            .name(format!("worker-{i}"))
            .stack_size(WORKER_STACK)
            .spawn(move || loop {
                match server.recv() {
                    Ok(rq) => handle(&ctx, rq, Busy::enter(&ctx.busy)),
                    Err(e) => {
                        let _ = tx.send(Stop::Fatal(format!(
                            "the listener stopped accepting connections: {e}"
                        )));
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            return Stop::Fatal(format!("cannot start worker threads: {e}"));
        }
    }
    drop(tx);
    let stop = rx
        .recv()
        .unwrap_or_else(|_| Stop::Fatal("all workers stopped".into()));
    if let Stop::Signal = stop {
        drain_and_close(&ctx, &server);
    }
    ctx.relay.shutdown();
    stop
}

/// The whole response a connection over `CLAUDE_BRIDGE_MAX_CONNECTIONS` gets before it is
/// closed (written by tiny_http's refusal thread, so its head is spelled out here).
fn connection_refusal() -> Vec<u8> {
    let body = br#"{"error":"too many connections; retry later"}"#;
    let mut out = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in policy::EVERY_RESPONSE {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// How long a graceful shutdown waits for requests in progress (the whole stop stays under 5 s).
const DRAIN_BUDGET: Duration = Duration::from_secs(4);

/// Graceful shutdown: stop accepting, end every wait and stream (each writes its last words:
/// a wait its result, a stream its final chunk), let requests in progress finish within
/// [`DRAIN_BUDGET`], then fold the write-ahead log into the database file.
fn drain_and_close(ctx: &Ctx, server: &Server) {
    server.stop_accepting();
    ctx.relay.shutdown();
    ctx.sse.close_all();
    let deadline = Instant::now() + DRAIN_BUDGET;
    // A request is counted by tiny_http from the arrival of its head (a small body may still be
    // coming) until a worker has taken it, and by `busy` from then until it is answered.
    let in_progress = || ctx.busy.load(Ordering::SeqCst) + server.requests_in_progress();
    while in_progress() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let left = in_progress();
    if left > 0 {
        eprintln!("shutdown: {left} request(s) still in progress were cut off");
    }
    if let Err(e) = ctx.relay.checkpoint() {
        eprintln!("warning: shutdown: cannot checkpoint the write-ahead log: {e}");
    }
}

/// One request in progress, counted in [`Ctx::busy`] until dropped (it moves with the request
/// to a stream or deferred thread).
pub(crate) struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::SeqCst);
        Busy(Arc::clone(count))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Run a handler; a panic becomes a JSON 500 for this request only (the bug is logged, the
/// process and every other request go on).
fn guarded(handler: impl FnOnce() -> Reply) -> Reply {
    catch_unwind(AssertUnwindSafe(handler)).unwrap_or_else(|_| {
        eprintln!("error: a request handler panicked; answered 500");
        Reply::error(500, "internal error")
    })
}

/// Run one request through the pipeline and write the reply.
fn handle(ctx: &Ctx, mut rq: Request, busy: Busy) {
    let reply = guarded(|| pipeline(ctx, &mut rq));
    let path = rq.url().split('?').next().unwrap_or_default();
    ctx.metrics
        .request(Route::parse(path).rule().label, reply.status);
    let mut reply = policy::finish(&ctx.config, &rq, reply);
    if let Some(stream) = reply.stream.take() {
        handoff::start_stream(rq, reply, stream, busy);
        return;
    }
    if let Some(later) = reply.deferred.take() {
        // Each waits on a thread of its own: counted against the waiting cap, since a client
        // may pipeline any number of them over one connection.
        match ctx.relay.wait_slot() {
            Some(slot) => {
                handoff::start_deferred(rq, reply, later, &ctx.hangups, (busy, slot));
                return;
            }
            None => {
                let busy =
                    Reply::error(503, crate::mcp::TOO_MANY_WAITING).with_header("Retry-After", "1");
                reply = policy::finish(&ctx.config, &rq, busy);
            }
        }
    }
    if let Some(parked) = reply.parked.take() {
        handoff::start_parked(ctx, rq, reply, *parked, busy);
        return;
    }
    write_whole(rq, reply);
}

/// Answer with a reply whose body is in hand (security headers already added).
fn write_whole(rq: Request, reply: Reply) {
    // The whole body is in hand: always send Content-Length (tiny_http would switch replies of
    // 32 KiB and more to chunked encoding through an 8 KiB buffer).
    let mut response = Response::from_data(reply.body)
        .with_status_code(reply.status)
        .with_chunked_threshold(usize::MAX);
    for (name, value) in reply.headers {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    // A body left unread (refused, or not needed) is never drained: tiny_http answers with
    // `Connection: close` and closes the connection on its own thread. A client that went away
    // is not an error worth reporting.
    let _ = rq.respond(response);
}

/// The stages of `http-api.md` §2, first failure answers: CORS preflight → Host allow-list →
/// Origin check → JSON media type → authentication → body size and framing → the route.
fn pipeline(ctx: &Ctx, rq: &mut Request) -> Reply {
    let cfg = &ctx.config;
    let url = rq.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let route = Route::parse(path);
    let rule = route.rule();
    let method = rq.method().clone();
    let headers = rq.headers().to_vec();
    let secure = rq.secure();

    // 1. CORS preflight.
    if method == Method::Options
        && header(&headers, "Origin").is_some()
        && header(&headers, "Access-Control-Request-Method").is_some()
    {
        return policy::preflight(cfg, &headers);
    }
    // Rejections are recorded in the audit log when it is on (never changing the answer).
    let peer = rq.remote_addr().map(|a| a.ip().to_string());
    let reject = |kind: &str, reply: Reply| {
        ctx.relay.audit_rejection(kind, path, peer.as_deref());
        reply
    };
    // 3. Host allow-list.
    let host = match policy::host_of(&headers) {
        Ok(h) => h,
        Err(r) => return reject("policy_reject", r),
    };
    if !policy::host_allowed(cfg, &host.name) {
        return reject("policy_reject", Reply::error(400, "invalid host header"));
    }
    // 4. Origin check for mutations; on /mcp for every method (`mcp.md` §1.3).
    let mutation = matches!(
        method,
        Method::Post | Method::Put | Method::Patch | Method::Delete
    );
    if mutation || route == Route::Mcp {
        let origins = all(&headers, "Origin");
        if origins.len() > 1 {
            return reject(
                "policy_reject",
                Reply::error(400, "duplicate origin header"),
            );
        }
        if let Some(origin) = origins.first() {
            if !policy::origin_allowed(cfg, origin, &host, secure) {
                return reject("policy_reject", Reply::error(403, "origin not allowed"));
            }
        }
    }
    // 5. JSON media type.
    if matches!(method, Method::Post | Method::Put | Method::Patch) && rule.json_body {
        let ok = header(&headers, "Content-Type").is_some_and(policy::is_json_media_type);
        if !ok {
            return reject(
                "policy_reject",
                Reply::error(415, "content-type must be application/json"),
            );
        }
    }
    // 6. Authentication: who the request acts as.
    let who = if rule.protected {
        let login_route = route == Route::Login;
        let peer = rq.remote_addr();
        match policy::authenticate(ctx, &headers, peer, login_route, &method) {
            Ok(who) => who,
            Err(r) => return reject("auth_failure", r),
        }
    } else {
        crate::relay::agents::Principal::Admin
    };
    if let Some(name) = who.name() {
        ctx.relay.seen(name);
    }
    // 7. Body size and framing, checked on every mutation; the body itself is read (within
    // the body deadline) only where a handler uses it (a POST to a route taking JSON). Any
    // other is left unread, and the connection closed after the answer.
    if mutation {
        if let Err(r) = policy::check_framing(&headers, cfg.limits.max_request_bytes) {
            return reject("oversize_reject", r);
        }
    }
    let body = if method == Method::Post && rule.json_body {
        match policy::read_body(rq, cfg.limits.max_request_bytes) {
            Ok(b) => b,
            Err(r) => return reject("oversize_reject", r),
        }
    } else {
        Vec::new()
    };
    // 8. The route.
    let req = Req {
        method: &method,
        path,
        query,
        headers: &headers,
        body,
        who,
    };
    routes::dispatch(ctx, route, &req, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_becomes_a_json_500() {
        let r = guarded(|| panic!("bug"));
        assert_eq!(r.status, 500);
        assert_eq!(r.body, br#"{"error":"internal error"}"#);
        assert_eq!(guarded(|| Reply::error(404, "not found")).status, 404);
    }
}
