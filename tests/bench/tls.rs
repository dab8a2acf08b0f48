//! HTTPS beside plain HTTP: `cargo bench --bench relay --features tls -- tls [SECONDS]`.
//!
//! Two relays on loopback, one with a fresh self-signed certificate (made by `openssl`), driven
//! by the same keep-alive clients (rustls with the aws-lc-rs provider, TLS 1.3, on the TLS
//! side): sends and tail reads at 10 clients, a new connection per request at 4 clients (the
//! handshake's cost), and the memory an idle connection holds.

use super::{bench_dir, drive, drive_on, exchange, post, report, start_relay_with, tcp, Relay};
use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

type Tls = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// A self-signed certificate for `localhost` in `dir`: (certificate, key).
fn certificate(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            // webpki refuses a CA certificate as the server's own
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "the TLS bench needs the openssl command");
    (cert.display().to_string(), key.display().to_string())
}

/// A client configuration trusting only `cert`.
fn client_config(cert: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::CertificateDer::from_pem_file(cert).expect("certificate");
    roots.add(der).expect("trust anchor");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS connection to `addr` with its handshake done.
fn tls(config: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> Tls {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::clone(config), name).expect("client");
    let mut s = rustls::StreamOwned::new(conn, tcp(addr));
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("handshake");
    }
    s
}

fn rss_kib(relay: &Relay) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", relay.child.id()))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn send_request(c: usize, i: usize) -> Vec<u8> {
    post(
        "/api/send",
        &format!(
            "{{\"channel\":\"bench:c{}\",\"sender\":\"client-{c}\",\"content\":\"message {i} from a benchmark client\"}}",
            c % 8
        ),
    )
}

fn newest_id<S: Read + Write>(s: &mut BufReader<S>) -> String {
    let body = exchange(
        s,
        &post(
            "/api/send",
            "{\"channel\":\"bench:tail\",\"sender\":\"b\",\"content\":\"newest\"}",
        ),
    )
    .expect("send");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    v["id"].as_str().expect("id").to_owned()
}

fn tail_request(newest: &str) -> Vec<u8> {
    format!(
        "GET /api/messages?channel=bench:tail&since_id={newest} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .into_bytes()
}

/// One request per connection, `clients` at a time, for `secs`: connections per second.
fn connections_per_second<S: Read + Write>(
    connect: impl Fn() -> S + Send + Sync + 'static,
    clients: usize,
    secs: f64,
) -> f64 {
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let connect = Arc::new(connect);
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, done, connect) =
                (Arc::clone(&stop), Arc::clone(&done), Arc::clone(&connect));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut s = BufReader::new(connect());
                    let req =
                        b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
                    if exchange(&mut s, req).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("client");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Extra resident memory of `relay` per idle connection, with `n` of them open.
fn idle_cost_kib<S>(relay: &Relay, n: usize, connect: impl Fn() -> S) -> f64 {
    thread::sleep(Duration::from_millis(300));
    let before = rss_kib(relay);
    let held: Vec<S> = (0..n).map(|_| connect()).collect();
    thread::sleep(Duration::from_millis(500));
    let after = rss_kib(relay);
    drop(held);
    (after.saturating_sub(before)) as f64 / n as f64
}

/// The whole comparison.
pub fn run(secs: f64) {
    let dir = bench_dir("tls");
    let (cert, key) = certificate(&dir);
    let https = start_relay_with(dir, &["--tls-cert", &cert, "--tls-key", &key]);
    let plain = start_relay_with(bench_dir("plain"), &[]);
    let config = client_config(&cert);
    println!(
        "claude-bridge TLS bench: {secs} s per scenario; https at {}, http at {}",
        https.addr, plain.addr
    );
    let (a, cfg) = (https.addr, Arc::clone(&config));
    let connect_tls = move || tls(&cfg, a);

    let p = report(
        "http  POST /api/send, 10 clients",
        &drive(plain.addr, 10, secs, send_request),
    );
    let t = report(
        "https POST /api/send, 10 clients",
        &drive_on(connect_tls.clone(), 10, secs, send_request),
    );
    println!("  https/http = {:.2}", t / p);

    let newest = newest_id(&mut BufReader::new(tcp(plain.addr)));
    let p = report(
        "http  GET tail, 10 clients",
        &drive(plain.addr, 10, secs, move |_, _| tail_request(&newest)),
    );
    let newest = newest_id(&mut BufReader::new(connect_tls()));
    let t = report(
        "https GET tail, 10 clients",
        &drive_on(connect_tls.clone(), 10, secs, move |_, _| {
            tail_request(&newest)
        }),
    );
    println!("  https/http = {:.2}", t / p);

    let pa = plain.addr;
    let p = connections_per_second(move || tcp(pa), 4, secs);
    let t = connections_per_second(connect_tls.clone(), 4, secs);
    println!(
        "{:<38} {p:>9.0} conn/s\n{:<38} {t:>9.0} conn/s\n  https/http = {:.2}",
        "http  new connection per request, 4",
        "https new connection per request, 4",
        t / p
    );

    let p = idle_cost_kib(&plain, 500, || tcp(pa));
    let t = idle_cost_kib(&https, 500, connect_tls);
    println!(
        "idle connection, resident memory       http {p:.1} KiB   https {t:.1} KiB (500 open)"
    );
}
