//! MCP over stdin/stdout (`claude-bridge --stdio`): one JSON-RPC message per line. stdout carries
//! protocol lines only; diagnostics go to stderr. A bad line gets an error reply and the session
//! goes on; end of input ends the session.
//!
//! Requests are handled one at a time, in order: none of the tools served here waits.

use crate::mcp::{self, code, Session};
use crate::relay::Relay;
use serde_json::Value;
use std::io::{BufRead, Write};

/// Serve one session until `input` ends. Lines longer than `max_line` bytes are discarded with
/// a -32600 reply.
pub fn serve(
    relay: &Relay,
    mut input: impl BufRead,
    mut output: impl Write,
    max_line: usize,
) -> std::io::Result<()> {
    let mut session = Session::default();
    let mut line = Vec::new();
    loop {
        let (ended, too_long) = read_line(&mut input, &mut line, max_line)?;
        if ended && line.is_empty() && !too_long {
            return Ok(());
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
                    Ok(msg) => {
                        let mut notes = Vec::new();
                        let reply = mcp::handle(relay, &mut session, &msg, &mut |n| notes.push(n));
                        for n in notes {
                            let mut bytes = serde_json::to_vec(&n).unwrap_or_default();
                            bytes.push(b'\n');
                            output.write_all(&bytes)?;
                        }
                        reply
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
            let mut bytes = serde_json::to_vec(&r).unwrap_or_default();
            bytes.push(b'\n');
            output.write_all(&bytes)?;
            output.flush()?;
        }
        if ended {
            return Ok(());
        }
    }
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
