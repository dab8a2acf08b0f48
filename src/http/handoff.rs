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
