//! The client wing: what talks to a relay from outside, by URL. [`scripting`] runs the
//! scripting subcommands, `tui` (feature `tui`) the terminal UI; both use the small blocking
//! HTTP/1.1 client here, over `std::net`: any relay by URL (`http://host:port`), with an
//! optional bearer token. One request per connection
//! (`Connection: close`), replies read whole (Content-Length, chunked or to end of stream), and
//! event streams read event by event.

pub mod agents;
pub mod scripting;
pub mod setup;
#[cfg(feature = "tui")]
pub mod tui;
pub mod wake;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Where a relay is: host and port from an `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address, as written (IPv6 in brackets).
    pub host: String,
    /// Port (80 when the URL names none).
    pub port: u16,
}

impl Target {
    /// Parse `http://host[:port][/]`. HTTPS is not spoken here.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("'{url}' is not an http:// URL"))?;
        let hostport = rest.trim_end_matches('/');
        if hostport.is_empty() || hostport.contains('/') {
            return Err(format!("'{url}' must be http://host:port with no path"));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            // A bare IPv6 address has colons but no port.
            Some((h, _)) if !h.ends_with(']') && h.contains(':') => (hostport, "80"),
            Some((h, p)) => (h, p),
            None => (hostport, "80"),
        };
        let port = port
            .parse()
            .map_err(|_| format!("'{url}': '{port}' is not a port number"))?;
        Ok(Target {
            host: host.to_owned(),
            port,
        })
    }

    fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn connect(&self, read_timeout: Option<Duration>) -> Result<TcpStream, String> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<_> = (host, self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .collect();
        let mut last = String::from("no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let _ = s.set_read_timeout(read_timeout);
                    let _ = s.set_write_timeout(Some(Duration::from_secs(30)));
                    return Ok(s);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!(
            "cannot reach the relay at http://{}: {last}",
            self.authority()
        ))
    }
}

/// A whole reply.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// The request head, with the token when there is one.
fn head(t: &Target, method: &str, path: &str, token: Option<&str>, extra: &str) -> String {
    let mut h = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: claude-bridge/{}\r\n{extra}",
        t.authority(),
        env!("CARGO_PKG_VERSION")
    );
    if let Some(tok) = token {
        h.push_str(&format!("Authorization: Bearer {tok}\r\n"));
    }
    h
}

/// One request; `body` is sent as JSON. Waits up to `timeout` for the reply.
pub fn request(
    t: &Target,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> Result<Reply, String> {
    let mut s = t.connect(Some(timeout))?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = head(t, method, path, token, "Connection: close\r\n");
    if body.is_some() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            payload.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&payload);
    s.write_all(req.as_bytes())
        .map_err(|e| format!("sending to the relay failed: {e}"))?;
    let mut rd = BufReader::new(s);
    let (status, length, chunked) = read_head(&mut rd)?;
    let mut body = Vec::new();
    let read = if chunked {
        read_chunked(&mut rd, &mut body)
    } else if let Some(n) = length {
        body.resize(n, 0);
        rd.read_exact(&mut body)
    } else {
        rd.read_to_end(&mut body).map(|_| ())
    };
    read.map_err(|e| format!("reading the relay's reply failed: {e}"))?;
    Ok(Reply { status, body })
}

/// Status, Content-Length and whether the body is chunked.
fn read_head(rd: &mut impl BufRead) -> Result<(u16, Option<usize>, bool), String> {
    let fail = |e: std::io::Error| format!("reading the relay's reply failed: {e}");
    let mut line = String::new();
    rd.read_line(&mut line).map_err(fail)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "the relay's reply is not HTTP".to_owned())?;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        if rd.read_line(&mut line).map_err(fail)? == 0 {
            return Err("the relay closed the connection mid-reply".into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((status, length, chunked));
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            }
        }
    }
}

fn read_chunked(rd: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        let mut size = String::new();
        rd.read_line(&mut size)?;
        let n = usize::from_str_radix(size.trim(), 16)
            .map_err(|_| std::io::Error::other("bad chunk size"))?;
        let mut chunk = vec![0; n + 2];
        rd.read_exact(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// `id:` (empty when none).
    pub id: String,
    /// `event:` (`message` when none).
    pub event: String,
    /// `data:` lines joined with newlines.
    pub data: String,
}

/// An open event stream (`GET` with `Accept: text/event-stream`).
pub struct EventStream {
    rd: BufReader<TcpStream>,
    chunked: bool,
    /// Bytes of the current chunk not yet read (chunked streams).
    left: usize,
}

impl EventStream {
    /// Open `path`, resuming after `last_event_id` when given. A non-200 reply is returned as
    /// `Err((status, body))` in the `Ok` side's place: `Ok(Err(..))`.
    pub fn open(
        t: &Target,
        path: &str,
        token: Option<&str>,
        last_event_id: Option<&str>,
    ) -> Result<Result<EventStream, Reply>, String> {
        // Reads block until an event or a keep-alive comment (at least every 15 s) arrives.
        let mut s = t.connect(Some(Duration::from_secs(60)))?;
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        let mut req = head(
            t,
            "GET",
            path,
            token,
            &format!("Accept: text/event-stream\r\n{resume}"),
        );
        req.push_str("\r\n");
        s.write_all(req.as_bytes())
            .map_err(|e| format!("sending to the relay failed: {e}"))?;
        let mut rd = BufReader::new(s);
        let (status, length, chunked) = read_head(&mut rd)?;
        if status != 200 {
            let mut body = vec![0; length.unwrap_or(0)];
            let _ = rd.read_exact(&mut body);
            return Ok(Err(Reply { status, body }));
        }
        Ok(Ok(EventStream {
            rd,
            chunked,
            left: 0,
        }))
    }

    /// One line of the event stream (chunk framing removed); `None` at its end.
    fn line(&mut self) -> std::io::Result<Option<String>> {
        let mut out = Vec::new();
        loop {
            if self.chunked && self.left == 0 {
                let mut size = String::new();
                if self.rd.read_line(&mut size)? == 0 {
                    return Ok(None);
                }
                if size.trim().is_empty() {
                    continue; // the CRLF after a chunk
                }
                self.left = usize::from_str_radix(size.trim(), 16)
                    .map_err(|_| std::io::Error::other("bad chunk size"))?;
                if self.left == 0 {
                    return Ok(None);
                }
            }
            let mut byte = [0u8; 1];
            if self.rd.read(&mut byte)? == 0 {
                return Ok(None);
            }
            self.left = self.left.saturating_sub(1);
            if byte[0] == b'\n' {
                return Ok(Some(String::from_utf8_lossy(&out).into_owned()));
            }
            out.push(byte[0]);
        }
    }

    /// The next event (comments skipped); `Ok(None)` when the stream ends.
    pub fn next_event(&mut self) -> std::io::Result<Option<Event>> {
        let mut ev = Event::default();
        let mut has_data = false;
        loop {
            let Some(line) = self.line()? else {
                return Ok(None);
            };
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                if has_data {
                    if ev.event.is_empty() {
                        ev.event = "message".into();
                    }
                    return Ok(Some(ev));
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => ev.id = value.to_owned(),
                "event" => ev.event = value.to_owned(),
                "data" => {
                    if has_data {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(value);
                    has_data = true;
                }
                _ => {}
            }
        }
    }
}

/// Percent-encode a query value or path segment (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:8765").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8765));
        let t = Target::parse("http://relay.lan:9000/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("relay.lan", 9000));
        let t = Target::parse("http://[::1]:8765").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("[::1]", 8765));
        assert_eq!(Target::parse("http://box").unwrap().port, 80);
        assert!(Target::parse("https://box:1").is_err());
        assert!(Target::parse("http://box:x").is_err());
        assert!(Target::parse("http://box:1/api").is_err());
        assert!(Target::parse("http://").is_err());
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("demo:main"), "demo%3Amain");
        assert_eq!(encode("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(encode("plain-1.2_~"), "plain-1.2_~");
    }
}
