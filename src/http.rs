//! The HTTP front: listener, worker pool, and the request pipeline every request passes
//! (`http-api.md` §2), in this order: CORS preflight → Host allow-list → Origin check → JSON media
//! type → authentication → body size and framing → routing. Security and CORS headers are added
//! to every reply in one place (`finish`).
//!
//! Invariants:
//! - Requests are handled by a fixed pool of workers pulling from `Server::recv()`; no thread per
//!   request. A handler panic becomes a JSON 500 for that request only.
//! - A body is read through a `take(max + 1)` reader, so an oversize body (declared or chunked)
//!   is refused as soon as the limit is crossed, never buffered whole.
//! - If tiny_http's accept thread dies (it stops at the first `accept()` error, e.g. `EMFILE`),
//!   a worker sees `recv()` fail and the process exits non-zero so a supervisor restarts it,
//!   instead of silently serving nothing.
//! - No lock is held while a reply is written: handlers return a [`Reply`] value first.

use crate::api;
use crate::config::Config;
use crate::relay::Relay;
use crate::wire::{all, header, Reply, Req};
use constant_time_eq::constant_time_eq;
use std::io::{Read, Write};
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
/// Threads that answer requests refused before their body was read: dropping such a request
/// drains the body from the socket, which a silent client can stretch to `READ_TIMEOUT`.
const DRAIN_THREADS: usize = 2;
/// Stack size of stream and long-poll threads: they format and write small events or one reply
/// (and read a page of messages), so thousands of idle ones stay cheap.
const STREAM_STACK: usize = 256 * 1024;
/// How long a write may block on a client that stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Stack size of request worker threads: room for 256-deep JSON in a debug build (the memory
/// is committed only as it is touched).
const WORKER_STACK: usize = 2 * 1024 * 1024;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
font-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
frame-ancestors 'none'; form-action 'self'";

/// The headers on every response (`http-api.md` §2.4 and `Vary: Origin`, §2.3): added to each
/// reply by `finish`, spelled into the connection-cap refusal, and given to tiny_http for the
/// answers it writes itself (a malformed or slow head, another HTTP version).
const EVERY_RESPONSE: [(&str, &str); 6] = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Permissions-Policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    ),
    ("Content-Security-Policy", CSP),
    ("Vary", "Origin"),
];

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
    /// Dashboard login sessions.
    pub logins: Arc<crate::login::Logins>,
    /// Long-polls whose client may leave before the answer is ready.
    pub hangups: Arc<crate::hangups::Hangups>,
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
/// feature refuses it), reading at most `max_connections` connections at once. It accepts from
/// now on (accept() survives EMFILE); requests wait for [`serve`]'s workers. Everything else
/// that needs a descriptor must be set up before.
pub fn server(
    listener: TcpListener,
    tls: Option<tiny_http::SslConfig>,
    max_connections: usize,
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
    server.limit_connections(max_connections, connection_refusal());
    server.set_own_headers(
        EVERY_RESPONSE
            .iter()
            .filter_map(|(k, v)| Header::from_bytes(k.as_bytes(), v.as_bytes()).ok())
            .collect(),
    );
    Ok(server)
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
    let drain = match drain_pool() {
        Ok(d) => d,
        Err(e) => return Stop::Fatal(format!("cannot start drain threads: {e}")),
    };
    for i in 0..ctx.config.limits.workers.max(1) {
        let (ctx, server, tx) = (Arc::clone(&ctx), Arc::clone(&server), tx.clone());
        let drain = drain.clone();
        let spawned = thread::Builder::new()
            .name(format!("worker-{i}"))
            .stack_size(WORKER_STACK)
            .spawn(move || loop {
                match server.recv() {
                    Ok(rq) => handle(&ctx, rq, &drain, Busy::enter(&ctx.busy)),
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
    for (k, v) in EVERY_RESPONSE {
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
struct Busy(Arc<AtomicUsize>);

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

/// A request refused before its body was read, with its answer.
type Refused = (Request, Response<std::io::Cursor<Vec<u8>>>);

/// Start the threads that answer (and so drain) refused requests; returns their queue.
fn drain_pool() -> std::io::Result<mpsc::Sender<Refused>> {
    let (tx, rx) = mpsc::channel::<Refused>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    for i in 0..DRAIN_THREADS {
        let rx = Arc::clone(&rx);
        thread::Builder::new()
            .name(format!("drain-{i}"))
            .stack_size(64 * 1024)
            .spawn(move || loop {
                // Take one job and release the lock before the (possibly slow) drain.
                let job = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(p) => p.into_inner().recv(),
                };
                match job {
                    Ok((rq, response)) => {
                        let _ = rq.respond(response);
                    }
                    Err(_) => return,
                }
            })?;
    }
    Ok(tx)
}

/// Whether the request carries a body that tiny_http has not buffered for us (it pre-reads
/// bodies of up to 1 KiB).
fn has_large_body(rq: &Request) -> bool {
    rq.body_length().is_none_or(|n| n > 1024)
        && (rq.body_length().is_some() || header(rq.headers(), "Transfer-Encoding").is_some())
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
fn handle(ctx: &Ctx, mut rq: Request, drain: &mpsc::Sender<Refused>, busy: Busy) {
    let mut body_read = false;
    let reply = guarded(|| pipeline(ctx, &mut rq, &mut body_read));
    let path = rq.url().split('?').next().unwrap_or_default();
    ctx.metrics
        .request(crate::metrics::route_label(path), reply.status);
    let mut reply = finish(ctx, &rq, reply);
    if let Some(stream) = reply.stream.take() {
        start_stream(rq, reply, stream, busy);
        return;
    }
    if let Some(later) = reply.deferred.take() {
        start_deferred(rq, reply, later, &ctx.hangups, busy);
        return;
    }
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
    if !body_read && has_large_body(&rq) {
        // Answering drops the request, which drains the unread body from the socket; keep
        // that off the workers.
        if let Err(mpsc::SendError((rq, response))) = drain.send((rq, response)) {
            let _ = rq.respond(response);
        }
        return;
    }
    // A client that went away is not an error worth reporting.
    let _ = rq.respond(response);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// The status line and headers of a reply written on the raw connection.
fn head(status: u16, headers: &[(&'static str, String)], extra: &str) -> String {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(extra);
    head.push_str("\r\n");
    head
}

/// Frames a stream as HTTP/1.1 chunks, one chunk per flush (streams flush once per event), so
/// a stream's end is marked and the connection can go on (keep-alive) afterwards.
struct Chunked<'w> {
    out: &'w mut (dyn Write + Send),
    pending: Vec<u8>,
}

impl Write for Chunked<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            let mut chunk = format!("{:x}\r\n", self.pending.len()).into_bytes();
            chunk.append(&mut self.pending);
            chunk.extend_from_slice(b"\r\n");
            self.out.write_all(&chunk)?;
        }
        self.out.flush()
    }
}

/// Hand the connection to a stream thread: it writes the head, runs the stream with its output
/// framed as chunks, and ends the body when the stream returns. Streams never run on the worker
/// pool.
fn start_stream(rq: Request, reply: Reply, stream: crate::wire::Stream, busy: Busy) {
    let head_only = *rq.method() == Method::Head;
    let head = head(
        reply.status,
        &reply.headers,
        "Transfer-Encoding: chunked\r\n",
    );
    // A stream is the connection's last exchange: stop reading it, so tiny_http's thread for
    // the connection (blocked waiting for a next request) ends now instead of after the read
    // timeout. Held streams then cost one thread each, not two. The client sees the connection
    // close after the stream's final chunk.
    if let Some(tcp) = rq.connection().as_ref().and_then(|c| c.tcp()) {
        let _ = tcp.shutdown(std::net::Shutdown::Read);
    }
    let mut writer = rq.into_writer();
    let spawned = thread::Builder::new()
        .name("stream".into())
        .stack_size(STREAM_STACK)
        .spawn(move || {
            let _busy = busy;
            if writer
                .write_all(head.as_bytes())
                .and_then(|()| writer.flush())
                .is_err()
            {
                return;
            }
            if !head_only {
                let mut chunked = Chunked {
                    out: &mut *writer,
                    pending: Vec::new(),
                };
                stream(&mut chunked);
                let _ = chunked.flush();
            }
            let _ = writer.write_all(b"0\r\n\r\n").and_then(|()| writer.flush());
        });
    if let Err(e) = spawned {
        // The closure (and with it the session's registration and the connection) is dropped.
        eprintln!("warning: cannot start a stream thread: {e}");
    }
}

/// Hand the connection to a thread that computes the reply (a long-poll) and then writes it
/// whole, with its length, so the connection stays usable. Never on the worker pool.
/// The connection is watched meanwhile: if the client leaves, `later` sees its flag raised (and
/// waiters are woken), and nothing is written.
fn start_deferred(
    rq: Request,
    outer: Reply,
    later: crate::wire::Deferred,
    hangups: &Arc<crate::hangups::Hangups>,
    busy: Busy,
) {
    let head_only = *rq.method() == Method::Head;
    let watch = rq.connection().map(|c| hangups.watch(c));
    let mut writer = rq.into_writer();
    let spawned = thread::Builder::new()
        .name("deferred".into())
        .stack_size(STREAM_STACK)
        .spawn(move || {
            let _busy = busy;
            let gone = match &watch {
                Some(w) => Arc::clone(&w.gone),
                None => Arc::new(std::sync::atomic::AtomicBool::new(false)),
            };
            let inner = later(Arc::clone(&gone));
            drop(watch);
            if gone.load(std::sync::atomic::Ordering::SeqCst) {
                return; // nobody to answer
            }
            let mut headers = outer.headers;
            headers.extend(inner.headers);
            let length = format!("Content-Length: {}\r\n", inner.body.len());
            let mut bytes = head(inner.status, &headers, &length).into_bytes();
            if !head_only {
                bytes.extend_from_slice(&inner.body);
            }
            let _ = writer.write_all(&bytes).and_then(|()| writer.flush());
        });
    if let Err(e) = spawned {
        eprintln!("warning: cannot start a waiting thread: {e}");
    }
}

/// The stages of `http-api.md` §2, first failure answers.
fn pipeline(ctx: &Ctx, rq: &mut Request, body_read: &mut bool) -> Reply {
    let cfg = &ctx.config;
    let url = rq.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let method = rq.method().clone();
    let headers = rq.headers().to_vec();
    let secure = rq.secure();

    // 1. CORS preflight.
    if method == Method::Options
        && header(&headers, "Origin").is_some()
        && header(&headers, "Access-Control-Request-Method").is_some()
    {
        return preflight(cfg, &headers);
    }
    // Rejections are recorded in the audit log when it is on (never changing the answer).
    let peer = rq.remote_addr().map(|a| a.ip().to_string());
    let reject = |kind: &str, reply: Reply| {
        ctx.relay.audit(kind, None, path, peer.as_deref());
        reply
    };
    // 3. Host allow-list.
    let host = match host_of(&headers) {
        Ok(h) => h,
        Err(r) => return reject("policy_reject", r),
    };
    if !host_allowed(cfg, &host.name) {
        return reject("policy_reject", Reply::error(400, "invalid host header"));
    }
    // 4. Origin check for mutations.
    let mutation = matches!(
        method,
        Method::Post | Method::Put | Method::Patch | Method::Delete
    );
    // On /mcp the Origin check applies to every method (`mcp.md` §1.3).
    if mutation || path == "/mcp" {
        let origins = all(&headers, "Origin");
        if origins.len() > 1 {
            return reject(
                "policy_reject",
                Reply::error(400, "duplicate origin header"),
            );
        }
        if let Some(origin) = origins.first() {
            if !origin_allowed(cfg, origin, &host, rq.secure()) {
                return reject("policy_reject", Reply::error(403, "origin not allowed"));
            }
        }
    }
    // 5. JSON media type.
    if matches!(method, Method::Post | Method::Put | Method::Patch) && wants_json_body(path) {
        let ok = header(&headers, "Content-Type").is_some_and(is_json_media_type);
        if !ok {
            return reject(
                "policy_reject",
                Reply::error(415, "content-type must be application/json"),
            );
        }
    }
    // 6. Authentication.
    if is_protected(path) {
        if let Some(r) = authenticate(ctx, &headers, rq.remote_addr(), path, &method) {
            return reject("auth_failure", r);
        }
    }
    // 7. Body size and framing.
    let body = if mutation {
        match read_body(rq, &headers, cfg.limits.max_request_bytes) {
            Ok(b) => {
                *body_read = true;
                b
            }
            Err(r) => return reject("oversize_reject", r),
        }
    } else {
        Vec::new()
    };
    // 8. Routing.
    let req = Req {
        method: &method,
        path,
        query,
        headers: &headers,
        body,
    };
    match req.path {
        "/mcp" => ctx.mcp.serve(
            &ctx.relay,
            &crate::transport::streamable::Request {
                method: &method,
                session_id: header(&headers, "Mcp-Session-Id"),
                protocol_version: header(&headers, "MCP-Protocol-Version"),
                accept: header(&headers, "Accept"),
                credential: authorization(&headers),
                body: &req.body,
            },
        ),
        "/api/session" => {
            let forwarded_https = header(&headers, "X-Forwarded-Proto")
                .and_then(|v| v.split(',').next())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
            login(ctx, &method, &headers, secure || forwarded_https)
        }
        p if p.starts_with("/events/channel/") => {
            if get_like(&method) {
                let cursor = header(&headers, "Last-Event-ID")
                    .map(str::to_owned)
                    .or_else(|| req.query_param("since_id"));
                // A stream opened with a session cookie (not a bearer) ends when the session does.
                let bound = (ctx.config.auth_token.is_some()
                    && header(&headers, "Authorization").is_none())
                .then(|| crate::login::cookie_value(&all(&headers, "Cookie")))
                .flatten()
                .map(|c| (Arc::clone(&ctx.logins), c.to_owned()));
                ctx.events
                    .open(&ctx.relay, &p["/events/channel/".len()..], cursor, bound)
            } else {
                Reply::method_not_allowed("GET, HEAD")
            }
        }
        "/sse" if get_like(&method) => ctx.sse.open(authorization(&headers)),
        "/sse" => Reply::method_not_allowed("GET, HEAD"),
        p if p.starts_with("/messages/") => {
            if method == Method::Post {
                ctx.sse
                    .post(&ctx.relay, query, authorization(&headers), &req.body)
            } else {
                Reply::method_not_allowed("POST")
            }
        }
        "/metrics" if get_like(&method) => metrics_reply(ctx),
        "/metrics" => Reply::method_not_allowed("GET, HEAD"),
        _ => api::route(&ctx.relay, &ctx.config, &ctx.events, &req),
    }
}

/// `GET /metrics`: the Prometheus exposition (protected like the API).
fn metrics_reply(ctx: &Ctx) -> Reply {
    let (messages, channels) = match ctx.relay.channels() {
        Ok(c) => (c.values().map(|s| s.count).sum(), c.len() as u64),
        Err(e) => return api::handled(Err(e)),
    };
    let text = ctx.metrics.render(&crate::metrics::Gauges {
        messages,
        channels,
        streams: vec![
            ("sse", ctx.sse.open_count() as u64),
            ("mcp_get", ctx.mcp.open_streams() as u64),
            ("events", ctx.events.total() as u64),
        ],
        in_flight: ctx.busy.load(Ordering::SeqCst) as u64,
        uptime_seconds: ctx.relay.uptime_seconds(),
    });
    Reply {
        status: 200,
        headers: vec![(
            "Content-Type",
            "text/plain; version=0.0.4; charset=utf-8".into(),
        )],
        body: text.into_bytes(),
        stream: None,
        deferred: None,
    }
}

fn get_like(m: &Method) -> bool {
    matches!(m, Method::Get | Method::Head)
}

/// The credential a request carries (the part of `Authorization` after the scheme, which is
/// matched case-insensitively), which MCP sessions are bound to.
fn authorization(headers: &[Header]) -> Option<&str> {
    header(headers, "Authorization").map(|v| v.split_once(' ').map_or(v, |(_, cred)| cred))
}

/// Add the headers every reply carries: security headers, `Vary: Origin`, CORS headers for
/// allow-listed origins, HSTS over TLS.
fn finish(ctx: &Ctx, rq: &Request, mut reply: Reply) -> Reply {
    let h = &mut reply.headers;
    h.extend(EVERY_RESPONSE.iter().map(|&(k, v)| (k, v.to_owned())));
    let forwarded_https = header(rq.headers(), "X-Forwarded-Proto")
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    if rq.secure() || forwarded_https {
        h.push((
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains".into(),
        ));
    }
    let preflight = *rq.method() == Method::Options;
    if !preflight {
        if let Some(origin) = header(rq.headers(), "Origin") {
            if cors_allowed(&ctx.config, origin) {
                h.push(("Access-Control-Allow-Origin", origin.to_owned()));
                h.push(("Access-Control-Allow-Credentials", "true".into()));
                h.push(("Access-Control-Expose-Headers", "Mcp-Session-Id".into()));
            }
        }
    }
    reply
}

fn preflight(cfg: &Config, headers: &[Header]) -> Reply {
    let origin = header(headers, "Origin").unwrap_or_default();
    if !cors_allowed(cfg, origin) {
        return Reply::error(400, "disallowed CORS origin");
    }
    Reply::empty(200)
        .with_header("Access-Control-Allow-Origin", origin)
        .with_header("Access-Control-Allow-Credentials", "true")
        .with_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
        .with_header(
            "Access-Control-Allow-Headers",
            "Authorization, Content-Type, Last-Event-ID, Mcp-Session-Id, MCP-Protocol-Version, \
         Accept, Accept-Language, Content-Language",
        )
        .with_header("Access-Control-Max-Age", "600")
}

fn cors_allowed(cfg: &Config, origin: &str) -> bool {
    let o = origin.strip_suffix('/').unwrap_or(origin);
    cfg.cors_origins
        .iter()
        .any(|a| a.strip_suffix('/').unwrap_or(a) == o)
}

/// The `Host` header, split into a lowercased hostname (IPv6 without brackets) and a port.
struct Host {
    name: String,
    port: Option<u16>,
}

fn host_of(headers: &[Header]) -> Result<Host, Reply> {
    let hosts = all(headers, "Host");
    match hosts.as_slice() {
        [] => Err(Reply::error(400, "invalid host header")),
        [one] => parse_host(one).ok_or_else(|| Reply::error(400, "invalid host header")),
        _ => Err(Reply::error(400, "duplicate host header")),
    }
}

fn parse_host(value: &str) -> Option<Host> {
    let v = value.trim();
    let (name, port) = if let Some(rest) = v.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        (inside.to_ascii_lowercase(), port)
    } else {
        let (name, port) = match v.rsplit_once(':') {
            Some((n, p)) => (n, Some(p.parse::<u16>().ok()?)),
            None => (v, None),
        };
        let ok = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
        if !ok {
            return None;
        }
        (name.to_ascii_lowercase(), port)
    };
    Some(Host { name, port })
}

fn host_allowed(cfg: &Config, name: &str) -> bool {
    if matches!(name, "localhost" | "127.0.0.1" | "::1") {
        return true;
    }
    cfg.trusted_hosts.iter().any(|entry| {
        let e = normalise_trusted(entry);
        match e.strip_prefix("*.") {
            Some(suffix) => name.len() > suffix.len() + 1 && name.ends_with(&format!(".{suffix}")),
            None => e == name,
        }
    })
}

/// A trusted-host entry without port or brackets, lowercased.
fn normalise_trusted(entry: &str) -> String {
    let e = entry.trim();
    if e.parse::<std::net::Ipv6Addr>().is_ok() {
        return e.to_ascii_lowercase();
    }
    match parse_host(e) {
        Some(h) => h.name,
        None => e.to_ascii_lowercase(), // e.g. a wildcard entry
    }
}

fn origin_allowed(cfg: &Config, origin: &str, host: &Host, secure: bool) -> bool {
    if cors_allowed(cfg, origin) {
        return true;
    }
    let scheme = if secure { "https" } else { "http" };
    let Some(rest) = origin
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
    else {
        return false;
    };
    let Some(o) = parse_host(rest) else {
        return false;
    };
    let default = if secure { 443 } else { 80 };
    o.name == host.name && o.port.unwrap_or(default) == host.port.unwrap_or(default)
}

fn wants_json_body(path: &str) -> bool {
    matches!(path, "/api/send" | "/api/ack" | "/api/clear" | "/mcp")
        || path.starts_with("/messages/")
}

/// `application/json` or `application/*+json`, parameters allowed.
fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Paths behind authentication (`http-api.md` §2.5).
pub fn is_protected(path: &str) -> bool {
    matches!(path, "/sse" | "/mcp" | "/metrics")
        || ["/api/", "/messages/", "/events/"]
            .iter()
            .any(|p| path.starts_with(p))
}

/// `None` when the request may proceed, else the refusal.
/// Who may pass (`http-api.md` §2.5): with a token, a bearer credential or a live dashboard
/// session cookie (a wrong bearer is refused even with a valid cookie; only a bearer can start a
/// session; ending one needs nothing). Without a token, loopback peers that are not proxied.
fn authenticate(
    ctx: &Ctx,
    headers: &[Header],
    peer: Option<&SocketAddr>,
    path: &str,
    method: &Method,
) -> Option<Reply> {
    let cfg = &ctx.config;
    let session_path = path == "/api/session";
    match &cfg.auth_token {
        Some(_) if session_path && *method == Method::Delete => None,
        Some(token) => {
            let auths = all(headers, "Authorization");
            let ok = match auths.as_slice() {
                [] if session_path && *method == Method::Post => false,
                [] => crate::login::cookie_value(&all(headers, "Cookie"))
                    .is_some_and(|c| ctx.logins.valid(c)),
                [one] => match one.split_once(' ') {
                    Some((scheme, cred)) => {
                        scheme.eq_ignore_ascii_case("bearer")
                            && constant_time_eq(cred.as_bytes(), token.as_bytes())
                    }
                    None => false,
                },
                _ => false,
            };
            (!ok).then(|| Reply::error(401, "unauthorized"))
        }
        None => {
            let loopback = peer.is_some_and(|p| p.ip().is_loopback());
            let proxied = ["X-Forwarded-For", "X-Real-IP", "Forwarded"]
                .iter()
                .any(|h| header(headers, h).is_some());
            let refused = (!loopback || proxied) && !cfg.allow_unauthenticated_network;
            refused.then(|| Reply::error(403, "unauthenticated network access is disabled"))
        }
    }
}

/// `/api/session`: trade the bearer token for a cookie (POST), check (GET), end (DELETE).
fn login(ctx: &Ctx, method: &Method, headers: &[Header], secure: bool) -> Reply {
    let required = ctx.config.auth_token.is_some();
    let cookie = crate::login::cookie_value(&all(headers, "Cookie"));
    let state = |authenticated: bool| {
        Reply::json(
            200,
            &serde_json::json!({"authenticated": authenticated, "auth_required": required}),
        )
    };
    match method {
        Method::Get | Method::Head => state(true),
        Method::Post if required => {
            if let Some(old) = cookie {
                ctx.logins.revoke(old);
            }
            let id = ctx.logins.start();
            state(true).with_header("Set-Cookie", ctx.logins.set_cookie(&id, secure))
        }
        Method::Post => state(true),
        Method::Delete => {
            if let Some(old) = cookie {
                ctx.logins.revoke(old);
            }
            state(false).with_header("Set-Cookie", crate::login::Logins::clear_cookie(secure))
        }
        _ => Reply::method_not_allowed("GET, POST, DELETE"),
    }
}

/// Read the body within `max` bytes, checking the framing headers first (`http-api.md` §2.6).
fn read_body(rq: &mut Request, headers: &[Header], max: usize) -> Result<Vec<u8>, Reply> {
    let lengths = all(headers, "Content-Length");
    let encodings = all(headers, "Transfer-Encoding");
    if lengths.len() > 1 {
        return Err(Reply::error(400, "invalid content-length"));
    }
    if !lengths.is_empty() && !encodings.is_empty() {
        return Err(Reply::error(400, "ambiguous request framing"));
    }
    if encodings.len() > 1
        || encodings
            .first()
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("chunked"))
    {
        return Err(Reply::error(400, "invalid transfer-encoding"));
    }
    if let Some(l) = lengths.first() {
        let l = l.trim();
        if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Reply::error(400, "invalid content-length"));
        }
        // More digits than usize holds is "too large", not "invalid".
        if l.parse::<usize>().map_or(true, |n| n > max) {
            return Err(Reply::error(413, "request body too large"));
        }
    }
    let mut body = Vec::new();
    match rq.as_reader().take(max as u64 + 1).read_to_end(&mut body) {
        Ok(_) if body.len() > max => Err(Reply::error(413, "request body too large")),
        Ok(_) => Ok(body),
        Err(_) => Err(Reply::error(400, "content-length mismatch")),
    }
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

    #[test]
    fn host_parsing() {
        let h = parse_host("LocalHost:8765").unwrap();
        assert_eq!((h.name.as_str(), h.port), ("localhost", Some(8765)));
        let h = parse_host("[::1]:80").unwrap();
        assert_eq!((h.name.as_str(), h.port), ("::1", Some(80)));
        assert!(parse_host("[::1").is_none());
        assert!(parse_host("a b").is_none());
        assert!(parse_host("host:99999").is_none());
        assert!(parse_host("").is_none());
    }

    #[test]
    fn media_types() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(is_json_media_type("application/vnd.api+json"));
        assert!(!is_json_media_type("text/plain"));
        assert!(!is_json_media_type("application/jsonx"));
    }

    #[test]
    fn protected_paths() {
        for p in [
            "/api/state",
            "/api/nope",
            "/sse",
            "/mcp",
            "/messages/",
            "/events/channel/a",
        ] {
            assert!(is_protected(p), "{p}");
        }
        for p in ["/status", "/", "/app.js", "/mcp/x", "/ssex", "/api"] {
            assert!(!is_protected(p), "{p}");
        }
    }
}
