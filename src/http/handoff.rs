//! Hand-offs: a reply that is a stream (legacy SSE, event streams, streamed MCP calls) or a
//! deferred computation (long-polls) leaves the request worker here, for a thread of its own
//! that writes the head and the body on the raw connection.

use super::Busy;
use crate::wire::Reply;
use std::io::Write;
use std::sync::Arc;
use std::thread;
use tiny_http::{Method, Request};

/// Stack size of stream and long-poll threads: they format and write small events or one reply
/// (and read a page of messages), so thousands of idle ones stay cheap.
const STREAM_STACK: usize = 256 * 1024;

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
pub(super) fn start_stream(rq: Request, reply: Reply, stream: crate::wire::Stream, busy: Busy) {
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
        // The closure (and with it an MCP session's registration, and the connection) is dropped.
        eprintln!("warning: cannot start a stream thread: {e}");
    }
}

/// Hand the connection to a thread that computes the reply (a long-poll) and then writes it
/// whole, with its length, so the connection stays usable. Never on the worker pool.
/// The connection is watched meanwhile: if the client leaves, `later` sees its flag raised (and
/// waiters are woken), and nothing is written.
pub(super) fn start_deferred(
    rq: Request,
    outer: Reply,
    later: crate::wire::Deferred,
    hangups: &Arc<crate::hangups::Hangups>,
    busy: (Busy, crate::relay::WaitSlot),
) {
    let head_only = *rq.method() == Method::Head;
    // A body left unread ends the connection after the answer (tiny_http closes it).
    let close = if rq.body_pending() {
        "Connection: close\r\n"
    } else {
        ""
    };
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
            let length = format!("Content-Length: {}\r\n{close}", inner.body.len());
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

/// Park a long-poll ([`crate::parked`]): no thread waits for it; when it can answer, a runner
/// builds the reply and a short-lived thread writes it whole, with its length, once the
/// request's writer has its turn (so replies to pipelined requests stay in order). Over TLS (where bytes go through the
/// TLS layer) the wait runs on a thread of its own instead, looking again at each publish.
pub(super) fn start_parked(
    ctx: &super::Ctx,
    rq: Request,
    outer: Reply,
    parked: crate::wire::ParkedReply,
    busy: Busy,
) {
    let crate::wire::ParkedReply {
        channel,
        ticket,
        deadline,
        mut check,
    } = parked;
    let connection = rq.connection();
    // A body left unread ends the connection after the answer: the thread path says so.
    let plain =
        !rq.secure() && !rq.body_pending() && connection.as_ref().and_then(|c| c.tcp()).is_some();
    let (Some(connection), true) = (connection, plain) else {
        // On a thread of its own, counted against the waiting cap like every such thread.
        let Some(slot) = ctx.relay.wait_slot() else {
            let busy =
                Reply::error(503, crate::mcp::TOO_MANY_WAITING).with_header("Retry-After", "1");
            let busy = super::policy::finish(&ctx.config, &rq, busy);
            super::write_whole(rq, busy);
            return;
        };
        let relay = Arc::clone(&ctx.relay);
        let later: crate::wire::Deferred = Box::new(move |gone| {
            let mut ticket = ticket;
            loop {
                let hub: &dyn crate::hub::Wakes = &*relay;
                let last = match hub.wait_publish(&channel, ticket, deadline) {
                    crate::hub::Wake::Published => false,
                    crate::hub::Wake::TimedOut | crate::hub::Wake::Shutdown => true,
                };
                if gone.load(std::sync::atomic::Ordering::SeqCst) {
                    return Reply::empty(200); // not written: the client has gone
                }
                ticket = hub.ticket();
                if let Some(reply) = check(last) {
                    return reply;
                }
            }
        });
        start_deferred(rq, outer, later, &ctx.hangups, (busy, slot));
        return;
    };
    let head_only = *rq.method() == Method::Head;
    let watch = ctx.hangups.watch(connection.clone());
    let gone = Arc::clone(&watch.gone);
    let mut writer = rq.into_writer();
    let answer: crate::parked::Answer = Box::new(move |inner: Reply| {
        let mut headers = outer.headers;
        headers.extend(inner.headers);
        let length = format!("Content-Length: {}\r\n", inner.body.len());
        let mut bytes = head(inner.status, &headers, &length).into_bytes();
        if !head_only {
            bytes.extend_from_slice(&inner.body);
        }
        drop(watch);
        // Written on a short thread of its own, never on a runner: the reply must follow any
        // earlier pipelined reply on the connection, and waiting for that turn on a runner
        // could stall every parked wait (two runners, each behind a wait the other must write).
        let spawned = thread::Builder::new()
            .name("parked-write".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                // Our turn on the connection: an earlier pipelined reply is written first.
                if writer.flush().is_err() {
                    return;
                }
                if let Some(tcp) = connection.tcp() {
                    let sent = send_now(tcp, &bytes);
                    if sent < bytes.len() {
                        // Bounded by the socket's write timeout.
                        let _ = (&*tcp).write_all(&bytes[sent..]);
                    }
                }
                drop((writer, busy));
            });
        if let Err(e) = spawned {
            eprintln!("warning: cannot start a thread to write a reply: {e}");
        }
    });
    let parked = ctx.parked.park(crate::parked::Wait {
        channel,
        ticket,
        deadline,
        gone,
        check,
        answer,
    });
    if let Err(wait) = parked {
        // As many waits are parked as the relay reads connections: busy, retry shortly.
        let busy = Reply::error(503, crate::mcp::TOO_MANY_WAITING).with_header("Retry-After", "1");
        (wait.answer)(busy);
    }
}

/// Write as much of `bytes` as the socket takes without waiting; returns how much that was.
fn send_now(tcp: &std::net::TcpStream, bytes: &[u8]) -> usize {
    use std::os::fd::AsRawFd;
    let mut sent = 0;
    while sent < bytes.len() {
        // SAFETY: a valid socket and an in-bounds buffer; MSG_DONTWAIT never blocks and
        // MSG_NOSIGNAL turns a closed peer into EPIPE instead of a signal.
        let n = unsafe {
            libc::send(
                tcp.as_raw_fd(),
                bytes[sent..].as_ptr().cast(),
                bytes.len() - sent,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n > 0 {
            sent += n as usize;
        } else if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {
            continue;
        } else {
            break;
        }
    }
    sent
}
