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
//!
//! Both eras share the pipe, chosen per message ([`mcp::era::is_modern`]): a 2026-07-28 request
//! is checked and answered statelessly (on a copy of the session marked modern, sharing only the
//! in-flight table, for cancellation); `initialize` starts the handshake era as before. A
//! `subscriptions/listen` is acknowledged and then stays open, with nothing to carry (see
//! [`mcp::era::listen_ack`]), until `notifications/cancelled` names it (no response) or input
//! ends; it holds no state here.

use crate::mcp::{self, code, era, Session};
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
    mut push: Option<crate::transport::push::Push>,
    who: crate::relay::agents::Principal,
) -> std::io::Result<()> {
    let output: Arc<Mutex<dyn Write + Send>> = Arc::new(Mutex::new(output));
    let handshake_only = push.is_some();
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
                let parsed = crate::json::parse_body(text);
                // A `--push` session stays on the handshake era: Claude Code refuses channel
                // notifications on a 2026-07-28 connection.
                let modern = parsed.as_ref().is_ok_and(|m| {
                    relay.settings.modern_era
                        && !handshake_only
                        && m.get("id").is_some()
                        && era::is_modern(m, None)
                });
                let method = parsed
                    .as_ref()
                    .ok()
                    .and_then(|m| m.get("method"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let refused = match &parsed {
                    Ok(m) if modern => era::check(m, None).err(),
                    _ => None,
                };
                // A modern request runs on a copy of the session (stateless); a handshake
                // request on the session itself.
                let mut copy = session.clone();
                copy.modern = modern;
                match parsed {
                    _ if refused.is_some() => refused.map(|r| r.response),
                    Ok(msg) if modern && method.as_deref() == Some("subscriptions/listen") => {
                        Some(era::listen_ack(&msg).unwrap_or_else(|e| e))
                    }
                    Ok(msg) if mcp::may_stream(&relay, &msg) => {
                        let out = Arc::clone(&output);
                        let id = msg.get("id").cloned().unwrap_or(Value::Null);
                        // Register the call's cancel flag before its thread starts, so a
                        // `notifications/cancelled` read next always finds it; it leaves the
                        // table when the call answers (or, cancelled, when the call ends).
                        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
                        let (flights, key) = (Arc::clone(&copy.in_flight), id.to_string());
                        flights
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(key.clone(), Arc::clone(&cancel));
                        copy.hangup = Some(cancel);
                        match mcp::spawn(Arc::clone(&relay), copy, msg, move |o| {
                            let v = match o {
                                mcp::Out::Note(v) => v,
                                mcp::Out::Reply(v) => {
                                    flights
                                        .lock()
                                        .unwrap_or_else(|p| p.into_inner())
                                        .remove(&key);
                                    v
                                }
                            };
                            let _ = send_line(&*out, &v);
                        }) {
                            Ok(t) => {
                                running.push(t);
                                None
                            }
                            Err(_) => {
                                session
                                    .in_flight
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .remove(&id.to_string());
                                Some(mcp::error(
                                    id,
                                    code::INTERNAL_ERROR,
                                    "cannot start the call; retry later",
                                ))
                            }
                        }
                    }
                    Ok(msg) => {
                        let out = Arc::clone(&output);
                        let state = if modern { &mut copy } else { &mut session };
                        let mut reply = mcp::handle(&relay, state, &msg, &mut |n| {
                            let _ = send_line(&*out, &n);
                        });
                        if push.is_some() {
                            push_step(&relay, &output, &msg, reply.as_mut(), &mut push);
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

/// Channel push (`--push`): declare the capability in the `initialize` reply, and start
/// pushing once the client says `notifications/initialized` (taking `push`, so only once).
fn push_step(
    relay: &Arc<Relay>,
    output: &Arc<Mutex<dyn Write + Send>>,
    msg: &Value,
    reply: Option<&mut Value>,
    push: &mut Option<crate::transport::push::Push>,
) {
    match msg.get("method").and_then(Value::as_str) {
        Some("initialize") => {
            if let Some(r) = reply {
                crate::transport::push::declare(r);
            }
        }
        Some("notifications/initialized") => {
            if let Some(p) = push.take() {
                let out = Arc::clone(output);
                p.start(
                    relay,
                    Arc::new(move |n: &Value| send_line(&*out, n).is_ok()),
                );
            }
        }
        _ => {}
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
    use serde_json::json;

    /// The replies of a relay (modern era on or off) to `lines`, in order.
    fn replies(modern_era: bool, lines: &[Value]) -> Vec<Value> {
        let (relay, dir) = crate::relay::scratch(modern_era);
        let relay = Arc::new(relay);
        let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let out = Arc::new(Mutex::new(Vec::new()));
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        serve(
            relay,
            input.as_bytes(),
            Sink(Arc::clone(&out)),
            1 << 20,
            None,
            crate::relay::agents::Principal::Admin,
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(dir);
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn the_modern_era_can_be_switched_off_per_process() {
        let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {}});
        let lines = [
            json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}),
            json!({"jsonrpc": "2.0", "id": 2, "method": "initialize",
                   "params": {"protocolVersion": "2025-11-25"}}),
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": meta}}),
        ];
        let on = replies(true, &lines);
        assert_eq!(on[0]["result"]["supportedVersions"][0], "2026-07-28");
        assert_eq!(on[1]["result"]["protocolVersion"], "2025-11-25");
        assert_eq!(on[2]["result"]["resultType"], "complete");
        // Off (a process that pushes into Claude Code): the probe fails as on a relay that
        // predates the revision, so clients fall back to initialize; nothing is dressed.
        let off = replies(false, &lines);
        assert_eq!(off[0]["error"]["code"], code::METHOD_NOT_FOUND);
        assert_eq!(off[1]["result"]["protocolVersion"], "2025-11-25");
        assert!(off[2]["result"].get("resultType").is_none());
        assert!(off[2]["result"]["tools"].is_array());
    }

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
