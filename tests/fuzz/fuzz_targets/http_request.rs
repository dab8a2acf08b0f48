//! Raw bytes to the relay over loopback, as a client would send them (the connection is
//! half-closed after them): the answer, if any, is HTTP with a status below 500 (503 with
//! `Retry-After` and 505 for another HTTP version are allowed), and its head comes within 5 s.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    // A long-poll answers when it ends (up to 55 s later): not a hang, and tested elsewhere.
    if data.windows(4).any(|w| w.eq_ignore_ascii_case(b"wait")) {
        return;
    }
    let mut s = TcpStream::connect(claude_bridge_fuzz::server()).expect("the relay accepts");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a timeout");
    let _ = s.write_all(data);
    let _ = s.shutdown(Shutdown::Write);
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            // libFuzzer's own timer (SIGALRM) interrupts reads
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "no answer within 5 s ({e}) to {:?}",
                String::from_utf8_lossy(data)
            ),
        }
    }
    if head.is_empty() {
        return; // closed without an answer (an incomplete request)
    }
    let text = String::from_utf8_lossy(&head);
    assert!(text.starts_with("HTTP/1."), "not HTTP: {text:?}");
    let status: u16 = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let retry = text.to_ascii_lowercase().contains("\r\nretry-after:");
    assert!(
        status < 500 || status == 505 || (status == 503 && retry),
        "{status} for {:?}:\n{text}",
        String::from_utf8_lossy(data)
    );
});
