//! MCP over stdin/stdout (`claude-bridge --stdio`): one JSON-RPC message per line. stdout carries
//! protocol lines only; diagnostics go to stderr. A bad line gets an error reply and the session
//! goes on; end of input ends the session.
//!
//! The session acts as the agent whose token the process was given (`--auth-token`, its
//! file or environment), else as the admin.
//!
//! Requests are handled in order on the reading thread, except calls that may wait
//! (`mcp::may_stream`), which run on their own threads ([`mcp::spawn`]) so the session's other
//! requests go on; every line is written whole under one lock. At end of input, calls still
//! running finish first. A call that panics is answered with an error and the session goes on.

use crate::mcp::{self, code, Session};
use crate::relay::Relay;
use serde_json::Value;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

/// Write one message as a line, whole.
fn send_line(output: &Mutex<dyn Write + Send>, v: &Value) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    let mut out = output.lock().unwrap_or_else(|p| p.into_inner());
    out.write_all(&bytes)?;
    out.flush()
}

/// Serve one session until `input` ends. Lines longer than `max_line` bytes are discarded with
/// a -32600 reply.
pub fn serve(
    relay: Arc<Relay>,
    mut input: impl BufRead,
    output: impl Write + Send + 'static,
    max_line: usize,
    who: crate::relay::agents::Principal,
) -> std::io::Result<()> {
    let output: Arc<Mutex<dyn Write + Send>> = Arc::new(Mutex::new(output));
    let mut session = Session {
        who,
        ..Session::default()
    };
    let mut line = Vec::new();
    let mut running = Vec::new();
    loop {
        let (ended, too_long) = read_line(&mut input, &mut line, max_line)?;
        if ended && line.is_empty() && !too_long {
            break;
        }
        let reply = if too_long {
            Some(mcp::error(
                Value::Null,
                code::INVALID_REQUEST,
                &format!("message longer than {max_line} bytes"),
            ))
        } else {
            let text = trim(&line);
            if text.is_empty() {
                None
            } else {
                match crate::json::parse_body(text) {
                    Ok(msg) if mcp::may_stream(&relay, &msg) => {
                        let out = Arc::clone(&output);
                        let id = msg.get("id").cloned().unwrap_or(Value::Null);
                        match mcp::spawn(Arc::clone(&relay), session.clone(), msg, move |o| {
                            let (mcp::Out::Note(v) | mcp::Out::Reply(v)) = o;
                            let _ = send_line(&*out, &v);
                        }) {
                            Ok(t) => {
                                running.push(t);
                                None
                            }
                            Err(_) => Some(mcp::error(
                                id,
                                code::INTERNAL_ERROR,
                                "cannot start the call; retry later",
                            )),
                        }
                    }
                    Ok(msg) => {
                        let out = Arc::clone(&output);
                        mcp::handle(&relay, &mut session, &msg, &mut |n| {
                            let _ = send_line(&*out, &n);
                        })
                    }
                    Err(_) => Some(mcp::error(
                        Value::Null,
                        code::PARSE_ERROR,
                        "Parse error: not JSON",
                    )),
                }
            }
        };
        if let Some(r) = reply {
            send_line(&*output, &r)?;
        }
        running.retain(|t: &std::thread::JoinHandle<()>| !t.is_finished());
        if ended {
            break;
        }
    }
    for t in running {
        let _ = t.join();
    }
    Ok(())
}

/// Read one line (without its newline) into `line`, keeping at most `max` bytes. Returns
/// (input ended, line was longer than `max`).
fn read_line(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<(bool, bool)> {
    line.clear();
    let mut too_long = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((true, too_long));
        }
        let (chunk, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > max {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = found.map_or(chunk.len(), |i| i + 1);
        input.consume(used);
        if found.is_some() {
            return Ok((false, too_long));
        }
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_within_the_limit() {
        let mut input: &[u8] = b"short\nthis one is too long\n\nlast";
        let mut line = Vec::new();
        assert_eq!(
            read_line(&mut input, &mut line, 10).unwrap(),
            (false, false)
        );
        assert_eq!(line, b"short");
        assert_eq!(read_line(&mut input, &mut line, 10).unwrap(), (false, true));
        assert_eq!(
            read_line(&mut input, &mut line, 10).unwrap(),
            (false, false)
        );
        assert!(line.is_empty());
        assert_eq!(read_line(&mut input, &mut line, 10).unwrap(), (true, false));
        assert_eq!(line, b"last");
    }
}
