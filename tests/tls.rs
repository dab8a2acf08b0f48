//! HTTPS served by the relay itself (`--tls-cert`/`--tls-key`, cargo feature `tls`): curl,
//! Python's TLS stack, the official MCP SDK and Claude Code's CLI, each trusting only a
//! certificate made for the test by `openssl`.

use crate::support::{run_client_with, run_ok, Relay, TempDir, BIN};
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A self-signed certificate for `localhost` and 127.0.0.1, and its key (PKCS#8 PEM), in `dir`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run_ok(
        "openssl req (the TLS tests need the openssl command)",
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost", "-addext"])
            .arg("subjectAltName=DNS:localhost,IP:127.0.0.1")
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (cert, key)
}

/// Set a file's permission bits.
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A relay serving HTTPS with a fresh certificate (its key mode 0600); returns it, its port and
/// the certificate.
pub(crate) fn https_relay(args: &[&str]) -> (Relay, TempDir, u16, String) {
    let dir = TempDir::new();
    let (cert, key) = certificate(dir.path());
    chmod(&key, 0o600);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut all = vec!["--tls-cert", &cert, "--tls-key", &key];
    all.extend_from_slice(args);
    let r = Relay::start(&all, &[]);
    let port = r.addr.port();
    (r, dir, port, cert)
}

/// `curl` over HTTPS trusting only `ca`; returns (status line + headers, body).
fn curl(ca: &str, args: &[&str], url: &str) -> (String, String) {
    let out = run_ok(
        &format!("curl {url}"),
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "-D", "-", "--cacert", ca])
            .args(args)
            .arg(url),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

#[test]
fn https_serves_the_api_with_hsts_and_secure_cookies() {
    let (r, _dir, port, ca) = https_relay(&["--auth-token", "tls-token"]);
    assert!(
        r.banner()
            .contains(&format!("https://127.0.0.1:{port}/mcp")),
        "{}",
        r.banner()
    );
    assert!(r.banner().contains("TLS        on"), "{}", r.banner());
    let base = format!("https://localhost:{port}");
    let (head, body) = curl(&ca, &[], &format!("{base}/status"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("Strict-Transport-Security: max-age=31536000; includeSubDomains"),
        "{head}"
    );
    assert!(body.contains("\"online\""), "{body}");
    let bearer = ["-H", "Authorization: Bearer tls-token"];
    let (head, _) = curl(&ca, &[], &format!("{base}/api/state"));
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let send = [
        "-H",
        "Content-Type: application/json",
        "--data",
        r#"{"channel":"tls:api","sender":"curl","content":"over https"}"#,
    ];
    let (head, _) = curl(
        &ca,
        &[&bearer[..], &send[..]].concat(),
        &format!("{base}/api/send"),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (_, listed) = curl(
        &ca,
        &bearer,
        &format!("{base}/api/messages?channel=tls:api"),
    );
    assert!(listed.contains("over https"), "{listed}");
    // The dashboard cookie is marked Secure because the request came over TLS.
    let (head, _) = curl(
        &ca,
        &[&bearer[..], &["-X", "POST"][..]].concat(),
        &format!("{base}/api/session"),
    );
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    // A browser's POST is same-origin only with the https scheme and the relay's port.
    for (origin, status) in [
        (format!("Origin: https://localhost:{port}"), "HTTP/1.1 200"),
        (format!("Origin: http://localhost:{port}"), "HTTP/1.1 403"),
        ("Origin: https://localhost".to_string(), "HTTP/1.1 403"),
    ] {
        let (head, _) = curl(
            &ca,
            &[&bearer[..], &send[..], &["-H", &origin][..]].concat(),
            &format!("{base}/api/send"),
        );
        assert!(head.starts_with(status), "{origin}: {head}");
    }
}

#[test]
fn waits_streams_and_parallel_clients_work_over_tls_and_bad_clients_do_no_harm() {
    let (mut r, _dir, port, ca) = https_relay(&[]);
    let out = run_client_with("tls_probe.py", &[&port.to_string(), &ca], &[]);
    // Two long-polls in a row on one connection, each answered as soon as its send lands.
    for w in out["waits"].as_array().unwrap() {
        assert_eq!(w["status"], 200, "{out}");
        assert!(w["seconds"].as_f64().unwrap() < 2.0, "{out}");
    }
    assert_eq!(out["waits"][0]["contents"][0], "wake 0");
    assert_eq!(out["waits"][1]["contents"][0], "wake 1");
    assert_eq!(out["events"]["status_line"], "HTTP/1.1 200 OK", "{out}");
    assert_eq!(out["events"]["seen"].as_array().unwrap().len(), 3, "{out}");
    // Clear text to the TLS port: no clear-text reply, the socket ends at once.
    assert_eq!(out["plaintext"]["clear_text_reply"], false, "{out}");
    assert!(out["plaintext"]["seconds"].as_f64().unwrap() < 2.0, "{out}");
    let p = &out["parallel"];
    assert_eq!(p["errors"].as_array().unwrap().len(), 0, "{out}");
    assert_eq!(
        (p["listed"].clone(), p["distinct"].clone()),
        (400.into(), 400.into())
    );
    assert_eq!(out["versions"]["1.2"], "TLSv1.2");
    assert_eq!(out["versions"]["1.3"], "TLSv1.3");
    // A socket that never starts its handshake, and one that drips its hello a byte every
    // 2 s, are both dropped once the handshake has taken the head timeout (10 s).
    let addr = r.addr;
    let clients: Vec<_> = [false, true]
        .into_iter()
        .map(|drip| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(2000)))
                    .unwrap();
                let started = Instant::now();
                let hello = [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03];
                let mut byte = [0u8; 64];
                for i in 0.. {
                    if drip && std::io::Write::write_all(&mut s, &hello[i % 10..][..1]).is_err() {
                        break;
                    }
                    match s.read(&mut byte) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => break,
                    }
                    assert!(started.elapsed() < Duration::from_secs(20), "never dropped");
                }
                started.elapsed()
            })
        })
        .collect();
    for c in clients {
        let waited = c.join().unwrap();
        assert!(
            waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
            "{waited:?}"
        );
    }
    let (head, _) = curl(&ca, &[], &format!("https://localhost:{port}/status"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(r.alive(), "{}", r.stderr());
    assert!(!r.stderr().contains("panicked"), "{}", r.stderr());
}

#[test]
fn a_tls_client_that_leaves_a_long_poll_politely_ends_its_wait_at_once() {
    let (_r, _dir, port, ca) = https_relay(&[]);
    let waiters = || {
        let (_, body) = curl(&ca, &[], &format!("https://localhost:{port}/metrics"));
        body.lines()
            .find_map(|l| l.strip_prefix("claude_bridge_waiters "))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no waiters gauge: {body}"))
    };
    assert_eq!(waiters(), 0);
    // close_notify, then FIN, half a second after the request.
    let probe = {
        let ca = ca.clone();
        std::thread::spawn(move || {
            run_client_with("tls_probe.py", &[&port.to_string(), &ca, "leave"], &[])
        })
    };
    let mut seen = false;
    while !probe.is_finished() {
        seen |= waiters() == 1;
    }
    assert!(seen, "the long-poll was waiting");
    assert_eq!(probe.join().unwrap()["left"], true);
    let left = Instant::now();
    while waiters() > 0 && left.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        left.elapsed() < Duration::from_secs(2),
        "the wait outlived its client by {:?}",
        left.elapsed()
    );
}

#[test]
fn python_sdk_over_https_streamable_http_and_sse() {
    for (kind, path) in [("http", "mcp"), ("sse", "sse")] {
        let (_r, _dir, port, ca) = https_relay(&["--auth-token", "sdk-token"]);
        let env = [("SSL_CERT_FILE", ca.as_str())];
        let url = format!("https://localhost:{port}/{path}");
        let out = run_client_with("mcp_check.py", &[kind, &url, "sdk-token"], &env);
        crate::mcp::check_session(&out);
    }
}

#[test]
fn claude_code_connects_over_https() {
    let (_r, _dir, port, ca) = https_relay(&["--auth-token", "cc-token"]);
    let home = TempDir::new();
    let trust = [("NODE_EXTRA_CA_CERTS", ca.as_str())];
    let run = |args: &[&str]| crate::support::claude(home.path(), &trust, args);
    let header = "Authorization: Bearer cc-token";
    for (kind, name, path) in [("http", "web", "mcp"), ("sse", "legacy", "sse")] {
        let url = format!("https://localhost:{port}/{path}");
        run(&["mcp", "add", "-t", kind, name, &url, "-H", header]);
    }
    let list = run(&["mcp", "list"]);
    for name in ["web", "legacy"] {
        let line = list
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{name} missing in: {list}"));
        assert!(
            line.contains("Connected") && !line.contains("Failed"),
            "{list}"
        );
    }
}

#[test]
fn a_key_file_others_can_read_gets_a_warning() {
    let (r, _dir, _, _) = https_relay(&[]);
    assert!(!r.stderr().contains("warning"), "{}", r.stderr());
    let dir = TempDir::new();
    let (cert, key) = certificate(dir.path());
    chmod(&key, 0o644);
    let (cert, key_s) = (cert.display().to_string(), key.display().to_string());
    let r = Relay::start(&["--tls-cert", &cert, "--tls-key", &key_s], &[]);
    let warned = format!(
        "warning: TLS key file {key_s} is readable by group or others (mode 644); run chmod 600"
    );
    let t = Instant::now();
    while !r.stderr().contains(&warned) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(r.stderr().contains(&warned), "{}", r.stderr());
}

#[test]
fn unusable_tls_files_stop_the_relay_before_it_listens() {
    let dir = TempDir::new();
    let (cert, key) = certificate(dir.path());
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a pem file\n").unwrap();
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let (_, other_key) = certificate(&other);
    let db = dir.path().join("db").display().to_string();
    let cases: [(&Path, &Path, &str); 5] = [
        (&junk, &key, "certificate"),
        (&cert, &junk, "key"),
        (&key, &key, "certificate"),
        (&cert, &other_key, "do not make a usable pair"),
        (&cert, dir.path(), "--tls-key"),
    ];
    for (c, k, says) in cases {
        let out = Command::new(BIN)
            .args(["--port", "0", "--db", &db, "--tls-cert"])
            .arg(c)
            .arg("--tls-key")
            .arg(k)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{c:?} {k:?}: {err}");
        // (a warning about the key file's mode may come first)
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: ") && last.contains(says), "{err}");
        assert!(
            out.stdout.is_empty(),
            "no banner: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
