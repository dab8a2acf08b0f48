//! A fleet on one box: `cargo bench --bench relay -- fleet [OPTIONS]`.
//!
//! N simulated agents on loopback, as one relay sees a fleet of mostly idle coding agents. Each
//! agent holds a waiting consumer on its own channel (`GET /api/wait?consumer_id=…` on its own
//! keep-alive connection; after each delivery it acks the last message with `POST /api/ack` and
//! re-arms the wait, as a wake-up loop does) and an initialized `/mcp` session that then stays
//! idle (initialize + `notifications/initialized`, nothing more; its connection is not held,
//! like an MCP client whose keep-alive lapsed). The fleet sends one message per agent every
//! `--interval` seconds (10) to a random other agent, through a small pool of keep-alive
//! sender connections, spread evenly over the interval.
//!
//! Measured per size and relay: send → woken (from writing the send to reading the waiter's
//! reply holding it) p50/p99, messages lost (sent, 200, never delivered within the drain) and
//! duplicated (delivered twice), the relay's RSS (peak sampled) and threads, its CPU share and
//! the client's own (both in % of one core) over the measured window, errors (non-2xx answers,
//! connections closed under an agent, connect failures), and the box's load.
//!
//! The client is one thread: non-blocking sockets, `epoll(7)` through libc over every socket,
//! one state machine per connection. `RLIMIT_NOFILE` is raised to the hard limit (the relays
//! inherit it). Everything stays on 127.0.0.1 and stops by itself.
//!
//! The original (claude-code-bridge 1.3.0, installed like `compare`) runs the same fleet in the
//! same run at `--original-sizes`; a size it cannot carry (setup not done within
//! `--setup-secs`) is reported as such and bigger ones are skipped.
//!
//! Options: `--sizes 100,1000,10000` · `--secs 30` (measured window) · `--interval 10` ·
//! `--senders 32` · `--runs 1` (repeat each size; medians printed) · `--original-sizes
//! 100,1000,10000` (`none` to skip) · `--setup-secs 120` · `--wait-timeout 20` ·
//! `--env K=V` (extra relay environment, repeatable).

use super::compare;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

struct Options {
    sizes: Vec<usize>,
    secs: f64,
    interval: f64,
    senders: usize,
    runs: usize,
    original_sizes: Vec<usize>,
    setup_secs: f64,
    wait_timeout: u32,
    env: Vec<(String, String)>,
}

fn list(v: &str) -> Vec<usize> {
    if v == "none" {
        return Vec::new();
    }
    v.split(',')
        .filter_map(|s| s.trim().replace('_', "").parse().ok())
        .collect()
}

fn options() -> Options {
    let mut o = Options {
        sizes: vec![100, 1000, 10_000],
        secs: 30.0,
        interval: 10.0,
        senders: 32,
        runs: 1,
        original_sizes: vec![100, 1000, 10_000],
        setup_secs: 120.0,
        wait_timeout: 20,
        env: Vec::new(),
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let mut took = true;
        match args[i].as_str() {
            "--sizes" => o.sizes = list(&value),
            "--secs" => o.secs = value.parse().expect("--secs SECONDS"),
            "--interval" => o.interval = value.parse().expect("--interval SECONDS"),
            "--senders" => o.senders = value.parse().expect("--senders N"),
            "--runs" => o.runs = value.parse().expect("--runs N"),
            "--original-sizes" => o.original_sizes = list(&value),
            "--setup-secs" => o.setup_secs = value.parse().expect("--setup-secs SECONDS"),
            "--wait-timeout" => o.wait_timeout = value.parse().expect("--wait-timeout SECONDS"),
            "--env" => {
                let (k, v) = value.split_once('=').expect("--env K=V");
                o.env.push((k.to_owned(), v.to_owned()));
            }
            _ => took = false,
        }
        i += if took { 2 } else { 1 };
    }
    o
}

/// One measured fleet.
#[derive(Clone, Default)]
struct Result {
    agents: usize,
    setup_done: bool,
    setup_secs: f64,
    sent: usize,
    delivered: usize,
    lost: usize,
    duplicated: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    rss_mb: f64,
    threads: usize,
    relay_cpu: f64,
    client_cpu: f64,
    errors: usize,
    error_kinds: String,
    load: String,
}

/// Clock ticks of user + system time of a process (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // After the name: state is field 3, so utime (14) is index 11 here.
    n(11) + n(12)
}

/// User + system ticks of a process and all its descendants still running.
fn tree_ticks(pid: u32) -> u64 {
    tree(pid).iter().map(|p| cpu_ticks(&p.to_string())).sum()
}

fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let children =
                    std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                    if !out.contains(&c) {
                        out.push(c);
                    }
                }
            }
        }
        i += 1;
    }
    out
}

fn status_field(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// RSS (MB) and threads of a process tree.
fn footprint(pid: u32) -> (f64, usize) {
    let procs = tree(pid);
    let rss = procs
        .iter()
        .map(|p| status_field(*p, "VmRSS:"))
        .sum::<f64>()
        / 1024.0;
    let threads = procs
        .iter()
        .map(|p| status_field(*p, "Threads:") as usize)
        .sum();
    (rss, threads)
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Busy and total jiffies of the whole box (`/proc/stat`), for how loaded it was.
fn box_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = cpu.iter().sum();
    let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// What a connection is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// Agent `n`'s waiting consumer.
    Waiter(usize),
    /// A pooled sender connection (MCP session setup, then sends).
    Sender,
}

/// What the reply the connection expects next answers.
#[derive(Clone, Debug)]
enum Pending {
    Wait,
    Ack,
    Init,
    Initialized,
    Send(u64),
}

struct Conn {
    stream: TcpStream,
    role: Role,
    out: Vec<u8>,
    input: Vec<u8>,
    pending: Option<Pending>,
    /// Interest includes writability (output is queued).
    writing: bool,
}

/// One parsed HTTP response.
struct Response {
    status: u16,
    session: Option<String>,
    body: Vec<u8>,
    close: bool,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A whole response at the start of `buf` (Content-Length or chunked), and its length.
fn parse_response(buf: &[u8]) -> Option<(Response, usize)> {
    let head_end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut len, mut chunked, mut session, mut close) = (0usize, false, None, false);
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "content-length" => len = v.parse().unwrap_or(0),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            "mcp-session-id" => session = Some(v.to_owned()),
            "connection" => close = v.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    if !chunked {
        if buf.len() < head_end + len {
            return None;
        }
        let body = buf[head_end..head_end + len].to_vec();
        return Some((
            Response {
                status,
                session,
                body,
                close,
            },
            head_end + len,
        ));
    }
    let (mut at, mut body) = (head_end, Vec::new());
    loop {
        let line_end = find(&buf[at..], b"\r\n")? + at;
        let size_text = String::from_utf8_lossy(&buf[at..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        let data = line_end + 2;
        if buf.len() < data + size + 2 {
            return None;
        }
        if size == 0 {
            return Some((
                Response {
                    status,
                    session,
                    body,
                    close,
                },
                data + 2,
            ));
        }
        body.extend_from_slice(&buf[data..data + size]);
        at = data + size + 2;
    }
}

/// A tiny xorshift: the fleet's choices need no quality, only no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"fleet","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

fn mcp_post(body: &str, session: Option<&str>) -> Vec<u8> {
    let sid = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\n\
         {sid}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

struct Fleet {
    epoll: i32,
    addr: SocketAddr,
    conns: Vec<Option<Conn>>,
    /// The waiter connection slot of each agent.
    waiter_slot: Vec<Option<usize>>,
    sender_slots: Vec<usize>,
    jobs: VecDeque<Pending>,
    /// Message number → when its send was written.
    in_flight: HashMap<u64, Instant>,
    /// Message numbers delivered (for duplicates).
    delivered: std::collections::HashSet<u64>,
    /// Messages whose send was answered 200.
    confirmed: std::collections::HashSet<u64>,
    latencies_us: Vec<u64>,
    duplicated: usize,
    errors: HashMap<&'static str, usize>,
    agents: usize,
    armed: usize,
    sessions: usize,
    wait_timeout: u32,
    /// Agents whose waiter must be reconnected (and when, at the earliest).
    reconnect: VecDeque<(Instant, usize)>,
    bodies: HashMap<u64, Vec<u8>>,
}

impl Fleet {
    fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }

    fn connect(&mut self, role: Role) -> Option<usize> {
        let stream = match TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)) {
            Ok(s) => s,
            Err(_) => {
                self.error("connect failed");
                return None;
            }
        };
        let _ = stream.set_nodelay(true);
        stream.set_nonblocking(true).expect("nonblocking");
        let slot = match self.conns.iter().position(Option::is_none) {
            Some(s) => s,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: slot as u64,
        };
        // SAFETY: a valid epoll fd and socket fd, a valid event.
        let r = unsafe {
            libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_ADD, stream.as_raw_fd(), &mut ev)
        };
        assert_eq!(r, 0, "epoll_ctl add");
        self.conns[slot] = Some(Conn {
            stream,
            role,
            out: Vec::new(),
            input: Vec::new(),
            pending: None,
            writing: false,
        });
        Some(slot)
    }

    fn close(&mut self, slot: usize) {
        if let Some(c) = self.conns[slot].take() {
            // SAFETY: removing a registered fd; the event argument is ignored.
            unsafe {
                libc::epoll_ctl(
                    self.epoll,
                    libc::EPOLL_CTL_DEL,
                    c.stream.as_raw_fd(),
                    std::ptr::null_mut(),
                );
            }
            match c.role {
                Role::Waiter(a) => {
                    self.waiter_slot[a] = None;
                    self.reconnect
                        .push_back((Instant::now() + Duration::from_millis(50), a));
                }
                Role::Sender => {
                    self.sender_slots.retain(|s| *s != slot);
                    if let Some(p) = c.pending {
                        // Retry what was in flight on another sender.
                        if let Pending::Send(n) = p {
                            self.jobs.push_front(Pending::Send(n));
                        } else {
                            self.jobs.push_front(p);
                        }
                    }
                }
            }
        }
    }

    fn write(&mut self, slot: usize, bytes: &[u8], pending: Pending) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        c.out.extend_from_slice(bytes);
        c.pending = Some(pending);
        self.flush(slot);
    }

    fn flush(&mut self, slot: usize) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        while !c.out.is_empty() {
            match c.stream.write(&c.out) {
                Ok(0) => break,
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.error("write failed");
                    self.close(slot);
                    return;
                }
            }
        }
        let want = !c.out.is_empty();
        if want != c.writing {
            c.writing = want;
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | if want { libc::EPOLLOUT } else { 0 }) as u32,
                u64: slot as u64,
            };
            // SAFETY: a registered fd, a valid event.
            unsafe {
                libc::epoll_ctl(
                    self.epoll,
                    libc::EPOLL_CTL_MOD,
                    c.stream.as_raw_fd(),
                    &mut ev,
                )
            };
        }
    }

    fn arm(&mut self, agent: usize) {
        let Some(slot) = self.waiter_slot[agent] else {
            return;
        };
        let req = format!(
            "GET /api/wait?channel=fleet:a{agent}&consumer_id=a{agent}&timeout_seconds={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            self.wait_timeout
        );
        self.write(slot, req.as_bytes(), Pending::Wait);
    }

    fn new_waiter(&mut self, agent: usize) {
        if let Some(slot) = self.connect(Role::Waiter(agent)) {
            self.waiter_slot[agent] = Some(slot);
            self.arm(agent);
        } else {
            self.reconnect
                .push_back((Instant::now() + Duration::from_millis(200), agent));
        }
    }

    /// Give idle senders the next jobs.
    fn dispatch(&mut self) {
        let senders = self.sender_slots.clone();
        for slot in senders {
            if self.jobs.is_empty() {
                return;
            }
            let idle = self.conns[slot]
                .as_ref()
                .is_some_and(|c| c.pending.is_none());
            if !idle {
                continue;
            }
            let job = self.jobs.pop_front().expect("a job");
            let bytes = match &job {
                Pending::Init => mcp_post(INIT, None),
                Pending::Send(n) => {
                    self.in_flight.entry(*n).or_insert_with(Instant::now);
                    self.bodies.get(n).cloned().unwrap_or_default()
                }
                Pending::Initialized | Pending::Wait | Pending::Ack => unreachable!(),
            };
            self.write(slot, &bytes, job);
        }
    }

    fn readable(&mut self, slot: usize) {
        let mut buf = [0u8; 16 * 1024];
        let mut closed = false;
        loop {
            let Some(c) = self.conns[slot].as_mut() else {
                return;
            };
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => c.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        loop {
            let Some(c) = self.conns[slot].as_mut() else {
                return;
            };
            let Some((resp, used)) = parse_response(&c.input) else {
                break;
            };
            c.input.drain(..used);
            let pending = c.pending.take();
            let role = c.role;
            self.answered(slot, role, pending, resp);
        }
        if closed && self.conns[slot].is_some() {
            let busy = self.conns[slot]
                .as_ref()
                .is_some_and(|c| c.pending.is_some());
            let waiter = matches!(
                self.conns[slot].as_ref().map(|c| c.role),
                Some(Role::Waiter(_))
            );
            if busy || waiter {
                self.error("connection closed under a request");
            }
            self.close(slot);
            if !waiter && self.sender_slots.len() < 4 {
                if let Some(s) = self.connect(Role::Sender) {
                    self.sender_slots.push(s);
                }
            }
        }
    }

    fn answered(&mut self, slot: usize, role: Role, pending: Option<Pending>, r: Response) {
        if r.close {
            // Handled as a close after this reply.
        }
        match (role, pending) {
            (Role::Waiter(agent), Some(Pending::Wait)) => {
                if r.status != 200 {
                    self.error("wait not 200");
                    self.reconnect
                        .push_back((Instant::now() + Duration::from_millis(100), agent));
                    self.close_quietly(slot);
                    return;
                }
                let now = Instant::now();
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                let mut last = None;
                for m in v["messages"].as_array().into_iter().flatten() {
                    let n = m["content"]
                        .as_str()
                        .and_then(|c| c.split(' ').next())
                        .and_then(|c| c.strip_prefix('m'))
                        .and_then(|c| c.parse::<u64>().ok());
                    if let Some(n) = n {
                        if !self.delivered.insert(n) {
                            self.duplicated += 1;
                        } else if let Some(t) = self.in_flight.get(&n) {
                            self.latencies_us
                                .push(now.saturating_duration_since(*t).as_micros() as u64);
                        }
                    }
                    last = m["id"].as_str().map(str::to_owned);
                }
                match last {
                    Some(id) => {
                        let body = format!(
                            "{{\"channel\":\"fleet:a{agent}\",\"consumer_id\":\"a{agent}\",\"message_id\":\"{id}\"}}"
                        );
                        self.write(slot, &super::post("/api/ack", &body), Pending::Ack);
                    }
                    None => {
                        if !v["timed_out"].as_bool().unwrap_or(false) {
                            self.error("wait answered without messages or timeout");
                        }
                        self.arm(agent);
                    }
                }
            }
            (Role::Waiter(agent), Some(Pending::Ack)) => {
                if r.status != 200 {
                    self.error("ack not 200");
                }
                self.arm(agent);
            }
            (Role::Sender, Some(Pending::Init)) => match (r.status, r.session) {
                (200, Some(sid)) => {
                    self.write(
                        slot,
                        &mcp_post(INITIALIZED, Some(&sid)),
                        Pending::Initialized,
                    );
                }
                _ => self.error("initialize failed"),
            },
            (Role::Sender, Some(Pending::Initialized)) => {
                if r.status == 202 || r.status == 200 {
                    self.sessions += 1;
                } else {
                    self.error("initialized not 202");
                }
            }
            (Role::Sender, Some(Pending::Send(n))) => {
                if r.status == 200 {
                    self.confirmed.insert(n);
                } else {
                    self.error("send not 200");
                }
            }
            _ => self.error("unexpected reply"),
        }
        if r.close {
            self.close_quietly(slot);
        }
    }

    /// Close a connection the peer announced it closes (no error of its own).
    fn close_quietly(&mut self, slot: usize) {
        self.close(slot);
    }

    /// Run the loop until `until`, sending per `schedule`; returns when `done` says so.
    fn turn(&mut self, timeout_ms: i32) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        // SAFETY: a valid epoll fd and a buffer of the given length.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll,
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        for ev in events.iter().take(n.max(0) as usize) {
            let slot = ev.u64 as usize;
            let flags = ev.events;
            if flags & libc::EPOLLOUT as u32 != 0 {
                self.flush(slot);
            }
            if flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                self.readable(slot);
            }
        }
        let now = Instant::now();
        while self.reconnect.front().is_some_and(|(t, _)| *t <= now) {
            let (_, agent) = self.reconnect.pop_front().expect("front");
            if self.waiter_slot[agent].is_none() {
                self.new_waiter(agent);
            }
        }
        self.dispatch();
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    super::pct(sorted, p)
}

/// Run one fleet of `agents` against the relay at `addr` (process `pid`).
fn fleet(addr: SocketAddr, pid: u32, agents: usize, o: &Options) -> Result {
    // SAFETY: plain epoll_create1.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(epoll >= 0, "epoll_create1");
    let mut f = Fleet {
        epoll,
        addr,
        conns: Vec::new(),
        waiter_slot: vec![None; agents],
        sender_slots: Vec::new(),
        jobs: VecDeque::new(),
        in_flight: HashMap::new(),
        delivered: Default::default(),
        confirmed: Default::default(),
        latencies_us: Vec::new(),
        duplicated: 0,
        errors: HashMap::new(),
        agents,
        armed: 0,
        sessions: 0,
        wait_timeout: o.wait_timeout,
        reconnect: VecDeque::new(),
        bodies: HashMap::new(),
    };
    let mut out = Result {
        agents,
        ..Default::default()
    };
    let setup_start = Instant::now();
    let setup_deadline = setup_start + Duration::from_secs_f64(o.setup_secs);
    for _ in 0..o.senders {
        if let Some(s) = f.connect(Role::Sender) {
            f.sender_slots.push(s);
        }
    }
    // MCP sessions first (initialize + initialized each), then the waiters, a batch per turn
    // so the loop keeps answering while connections are opened.
    f.jobs.extend((0..agents).map(|_| Pending::Init));
    let mut next_waiter = 0;
    while Instant::now() < setup_deadline {
        if next_waiter < agents {
            let batch = (next_waiter + 200).min(agents);
            for a in next_waiter..batch {
                f.new_waiter(a);
            }
            next_waiter = batch;
            f.armed = next_waiter;
        }
        f.turn(5);
        let idle_senders = f
            .sender_slots
            .iter()
            .all(|s| f.conns[*s].as_ref().is_some_and(|c| c.pending.is_none()));
        if next_waiter == agents && f.jobs.is_empty() && idle_senders {
            break;
        }
    }
    // Let the armed waits reach the relay and block there.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        f.turn(5);
    }
    out.setup_secs = setup_start.elapsed().as_secs_f64();
    let sessions_ok = f.sessions == agents;
    out.setup_done = sessions_ok && f.armed == agents && Instant::now() < setup_deadline;
    if !out.setup_done {
        out.errors = f.errors.values().sum();
        out.error_kinds = format!(
            "setup not done in {:.0} s ({} of {agents} sessions); {:?}",
            o.setup_secs, f.sessions, f.errors
        );
        let (rss, threads) = footprint(pid);
        out.rss_mb = rss;
        out.threads = threads;
        for slot in 0..f.conns.len() {
            f.close(slot);
        }
        // SAFETY: closing our epoll fd.
        unsafe { libc::close(epoll) };
        return out;
    }
    f.errors.clear();

    // The measured window: send k is due at start + k * interval / agents.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ agents as u64);
    let start = Instant::now();
    let window = Duration::from_secs_f64(o.secs);
    let (cpu0, me0, box0) = (tree_ticks(pid), cpu_ticks("self"), box_jiffies());
    let mut k: u64 = 0;
    let (mut peak_rss, mut peak_threads) = footprint(pid);
    let mut last_sample = Instant::now();
    loop {
        let now = Instant::now();
        if now >= start + window {
            break;
        }
        let elapsed = now - start;
        let due = (elapsed.as_secs_f64() * agents as f64 / o.interval) as u64;
        while k < due {
            let from = (k as usize) % agents;
            let mut to = rng.below(agents);
            if to == from {
                to = (to + 1) % agents;
            }
            let body = format!(
                "{{\"channel\":\"fleet:a{to}\",\"sender\":\"a{from}\",\"content\":\"m{k} from a{from}\"}}"
            );
            f.bodies.insert(k, super::post("/api/send", &body));
            f.jobs.push_back(Pending::Send(k));
            k += 1;
        }
        f.turn(1);
        if last_sample.elapsed() >= Duration::from_millis(500) {
            let (rss, threads) = footprint(pid);
            peak_rss = peak_rss.max(rss);
            peak_threads = peak_threads.max(threads);
            last_sample = Instant::now();
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let (cpu1, me1, box1) = (tree_ticks(pid), cpu_ticks("self"), box_jiffies());
    let tps = ticks_per_sec();
    out.relay_cpu = 100.0 * (cpu1 - cpu0) as f64 / tps / wall;
    out.client_cpu = 100.0 * (me1 - me0) as f64 / tps / wall;
    let busy = 100.0 * (box1.0 - box0.0) as f64 / (box1.1 - box0.1).max(1) as f64;
    let (rss, threads) = footprint(pid);
    out.rss_mb = peak_rss.max(rss);
    out.threads = peak_threads.max(threads);
    // Drain: what was sent arrives, or is lost after 10 s.
    let drain = Instant::now() + Duration::from_secs(10);
    while Instant::now() < drain {
        f.turn(5);
        let all = f.confirmed.iter().all(|n| f.delivered.contains(n));
        let idle = f
            .sender_slots
            .iter()
            .all(|s| f.conns[*s].as_ref().is_some_and(|c| c.pending.is_none()));
        if all && f.jobs.is_empty() && idle {
            break;
        }
    }
    // SAFETY: reading /proc/loadavg has no preconditions; plain file read.
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    out.load = format!(
        "box {busy:.0}% busy, loadavg {}",
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    out.sent = k as usize;
    out.delivered = f.delivered.len();
    out.lost = f
        .confirmed
        .iter()
        .filter(|n| !f.delivered.contains(n))
        .count();
    out.duplicated = f.duplicated;
    f.latencies_us.sort_unstable();
    out.p50_ms = percentile(&f.latencies_us, 0.5);
    out.p99_ms = percentile(&f.latencies_us, 0.99);
    out.max_ms = f.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0;
    // A send the relay never answered (within the window and the drain) is an error too.
    let unconfirmed = out.sent - f.confirmed.len();
    out.errors = f.errors.values().sum::<usize>() + unconfirmed;
    let mut kinds: Vec<_> = f.errors.iter().filter(|(_, n)| **n > 0).collect();
    kinds.sort();
    out.error_kinds = kinds
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    if unconfirmed > 0 {
        if !out.error_kinds.is_empty() {
            out.error_kinds.push_str(", ");
        }
        out.error_kinds
            .push_str(&format!("{unconfirmed} sends never answered"));
    }
    for slot in 0..f.conns.len() {
        if let Some(c) = f.conns[slot].take() {
            drop(c);
        }
    }
    // SAFETY: closing our epoll fd.
    unsafe { libc::close(epoll) };
    let _ = f.agents;
    out
}

/// The relay's stderr, shortened: each distinct line once, with its count.
fn relay_log(dir: &Path) {
    let text = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for l in text.lines() {
        let key: String = l.chars().take(120).collect();
        match seen.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => seen.push((key, 1)),
        }
    }
    for (l, n) in seen.iter().take(8) {
        println!("  relay stderr ({n}×): {l}");
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn row(name: &str, r: &Result) -> String {
    if !r.setup_done {
        return format!(
            "| {name} | {} | did not carry it: {} | | | | | | |\n",
            r.agents, r.error_kinds
        );
    }
    format!(
        "| {name} | {} | {:.2} / {:.2} ms | {} / {} of {} | {:.0} MB | {} | {:.0}% | {:.0}% | {}{} |\n",
        r.agents,
        r.p50_ms,
        r.p99_ms,
        r.lost,
        r.duplicated,
        r.sent,
        r.rss_mb,
        r.threads,
        r.relay_cpu,
        r.client_cpu,
        r.errors,
        if r.error_kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.error_kinds)
        }
    )
}

fn median_result(runs: &[Result]) -> Result {
    let ok: Vec<&Result> = runs.iter().filter(|r| r.setup_done).collect();
    if ok.is_empty() {
        return runs.last().cloned().unwrap_or_default();
    }
    let m = |f: &dyn Fn(&Result) -> f64| median(&mut ok.iter().map(|r| f(r)).collect::<Vec<_>>());
    let mut r = ok[ok.len() / 2].clone();
    r.p50_ms = m(&|r| r.p50_ms);
    r.p99_ms = m(&|r| r.p99_ms);
    r.rss_mb = m(&|r| r.rss_mb);
    r.threads = m(&|r| r.threads as f64) as usize;
    r.relay_cpu = m(&|r| r.relay_cpu);
    r.client_cpu = m(&|r| r.client_cpu);
    r.lost = ok.iter().map(|r| r.lost).sum();
    r.duplicated = ok.iter().map(|r| r.duplicated).sum();
    r.sent = ok.iter().map(|r| r.sent).sum();
    r.errors = ok.iter().map(|r| r.errors).sum();
    r
}

/// Run the fleet benchmark and print the table.
pub fn run() {
    let o = options();
    compare::raise_nofile();
    let ours = Path::new(env!("CARGO_BIN_EXE_claude-bridge")).to_path_buf();
    let theirs = if o.original_sizes.is_empty() {
        None
    } else {
        Some(compare::original())
    };
    let mut nofile = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit on a valid struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut nofile) };
    println!(
        "fleet: sizes {:?}, {} s measured each, one send per agent every {} s, {} sender connections, {} run(s); open-file limit {}",
        o.sizes, o.secs, o.interval, o.senders, o.runs, nofile.rlim_cur
    );
    let mut table = String::from(
        "| relay | agents | send → woken p50 / p99 | lost / duplicated of sent | relay RSS (peak) | relay threads | relay CPU | client CPU | errors |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut loads = Vec::new();
    let mut original_gave_up = false;
    for &n in &o.sizes {
        let mut mine = Vec::new();
        let mut theirs_runs = Vec::new();
        for run in 0..o.runs {
            if let Some(bin) = &theirs {
                if o.original_sizes.contains(&n) && !original_gave_up {
                    let t = compare::start("fleet-original", bin, &[]);
                    let r = fleet(t.addr, t.child.id(), n, &o);
                    relay_log(&t.dir);
                    println!(
                        "original 1.3.0, run {}: {}",
                        run + 1,
                        row("original", &r).trim()
                    );
                    loads.push(r.load.clone());
                    if !r.setup_done {
                        original_gave_up = true;
                    }
                    theirs_runs.push(r);
                }
            }
            let env: Vec<(&str, &str)> = o
                .env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let t = compare::start("fleet-ours", &ours, &env);
            let r = fleet(t.addr, t.child.id(), n, &o);
            relay_log(&t.dir);
            println!(
                "claude-bridge, run {}: {}",
                run + 1,
                row("claude-bridge", &r).trim()
            );
            loads.push(r.load.clone());
            mine.push(r);
        }
        if !theirs_runs.is_empty() {
            table.push_str(&row("original 1.3.0", &median_result(&theirs_runs)));
        }
        table.push_str(&row("claude-bridge", &median_result(&mine)));
    }
    println!("\n{table}");
    println!("load during the measured windows: {}", loads.join("; "));
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-fleet.txt");
    let _ = std::fs::write(&out, &table);
    println!("(written to {})", out.display());
}
