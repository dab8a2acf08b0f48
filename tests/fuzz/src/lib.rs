//! What the fuzz targets share: one relay per fuzzing process on a database in a fresh
//! temporary directory, reached in process (the MCP core) or over loopback (HTTP), and the
//! checks every answer must pass.

use claude_bridge::mcp::{self, Session};
use claude_bridge::relay::Relay;
use serde_json::Value;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A configuration with defaults everywhere but the port and a db of this process's own.
fn config(port: u16) -> claude_bridge::config::Config {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("claude-bridge-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let raw = claude_bridge::cli::RawArgs {
        port: Some(port),
        db: Some(dir.join("fuzz.db")),
        ..Default::default()
    };
    claude_bridge::config::resolve(raw, &|_| None)
        .unwrap_or_else(|e| panic!("the default configuration: {e}"))
}

/// The relay core, opened once per process (watcher and housekeeping running, as in the relay).
pub fn relay() -> &'static Arc<Relay> {
    static RELAY: OnceLock<Arc<Relay>> = OnceLock::new();
    RELAY.get_or_init(|| claude_bridge::app::open_relay(&config(0)).expect("the relay"))
}

/// The whole relay (`app::run`) serving HTTP on a loopback port, started once per process.
pub fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cfg = config(port);
        std::thread::spawn(move || {
            let stopped = claude_bridge::app::run(cfg);
            panic!("the relay stopped: {stopped:?}");
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the relay did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        addr
    })
}

/// Waits and claims are bounded to stay quick (their waiting has its own tests).
pub fn keep_quick(msg: &mut Value) {
    if let Some(args) = msg
        .get_mut("params")
        .and_then(|p| p.get_mut("arguments"))
        .and_then(Value::as_object_mut)
    {
        for k in ["timeout_seconds", "wait_seconds"] {
            if args.contains_key(k) {
                args.insert(k.into(), 0.into());
            }
        }
    }
}

/// Handle one message in `session`; panics unless the answer is well formed and quick.
pub fn handle(session: &mut Session, msg: &Value) {
    let started = Instant::now();
    let reply = mcp::handle(relay(), session, msg, &mut |n| {
        assert_eq!(n["jsonrpc"], "2.0", "notification {n}");
    });
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}: {msg}",
        started.elapsed()
    );
    if let Some(reply) = reply {
        well_formed(&reply, msg);
    }
}

/// A JSON-RPC response: `result` xor `error`; an error has a code and a message; a tool error
/// has a text and is never "internal".
pub fn well_formed(reply: &Value, msg: &Value) {
    assert_eq!(reply["jsonrpc"], "2.0", "{reply}\nfor {msg}");
    let (result, error) = (reply.get("result"), reply.get("error"));
    assert!(result.is_some() != error.is_some(), "{reply}\nfor {msg}");
    if let Some(e) = error {
        assert!(e["code"].is_i64() && e["message"].is_string(), "{reply}");
        // -32603 is what the core answers when a call panicked.
        assert_ne!(e["code"], -32603, "a call panicked: {reply}\nfor {msg}");
    }
    if let Some(r) = result {
        if r.get("isError").is_some() {
            assert!(r["content"][0]["text"].is_string(), "{reply}");
            let code = r["structuredContent"]["code"].as_str().unwrap_or_default();
            assert_ne!(code, "internal", "{reply}\nfor {msg}");
        }
    }
}
