//! claude-bridge patch: TLS over rustls 0.23, full duplex.
//!
//! Upstream kept a rustls 0.20 `StreamOwned` behind one mutex, and a read held that mutex while
//! it blocked on the socket: nothing could be written while the connection waited for its next
//! request, so upstream stopped reading until each response was done, and a long-lived response
//! (a server-sent event stream written from another thread) could not coexist with the reader.
//!
//! Here the socket is shared and the TLS state machine is locked only to move bytes in or out of
//! it, never across socket I/O: a read blocks on the raw socket with no lock held, then feeds what
//! arrived to rustls; a write encrypts under the lock and sends after. `send` is held while
//! records are made and written, so they reach the socket in the order rustls numbered them
//! (always taken before `tls`). The handshake is driven by the connection's first read, on the
//! connection's own thread, and must end within `HEAD_TIMEOUT` of the accept: each read of it
//! is given only the time left (a client dripping its hello cannot hold the thread).

use crate::connection::Connection;
use crate::util::refined_tcp_stream::Stream as RefinedStream;
use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Bytes read from the socket at a time; their plaintext always fits rustls's receive buffer
/// (the socket is read only once that buffer is empty).
const READ_CHUNK: usize = 8 * 1024;

struct Shared {
    sock: Arc<Connection>,
    tls: Mutex<rustls::ServerConnection>,
    send: Mutex<()>,
    /// When the handshake must be over.
    handshake_deadline: Instant,
    /// The socket's own read timeout, put back once the handshake is over.
    idle_timeout: Option<Duration>,
}

/// One TLS connection; the read and write halves of a client connection are clones.
pub(crate) struct RustlsStream(Arc<Shared>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a guard leaves nothing half-done that a later caller could misread:
    // rustls reports its own broken state as errors.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The records rustls has ready to send.
fn pending(tls: &mut rustls::ServerConnection) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut out)?;
    }
    Ok(out)
}

impl RustlsStream {
    pub(crate) fn peer_addr(&mut self) -> io::Result<Option<SocketAddr>> {
        self.0.sock.peer_addr()
    }

    /// Shutting down the write side sends a `close_notify` alert first.
    pub(crate) fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            let _send = lock(&self.0.send);
            let out = {
                let mut tls = lock(&self.0.tls);
                tls.send_close_notify();
                pending(&mut tls)
            };
            if let Ok(out) = out {
                let _ = (&*self.0.sock).write_all(&out);
            }
        }
        self.0.sock.shutdown(how)
    }

    /// The socket under the TLS layer (timeouts, peeking for a departed peer, shutting down).
    pub(crate) fn connection(&self) -> Arc<Connection> {
        Arc::clone(&self.0.sock)
    }
}

impl Clone for RustlsStream {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl Read for RustlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let handshaking = {
                let mut tls = lock(&self.0.tls);
                // Ok(0) after the peer's close_notify; UnexpectedEof if the socket ended without.
                match tls.reader().read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    done => return done,
                }
                tls.is_handshaking()
            };
            if handshaking {
                let left = self
                    .0
                    .handshake_deadline
                    .saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the TLS handshake took too long",
                    ));
                }
                let bound = self.0.idle_timeout.map_or(left, |idle| idle.min(left));
                self.0.sock.set_read_timeout(Some(bound))?;
            }
            // Only now, with no plaintext left: most reads find some and never touch the socket.
            let mut raw = [0u8; READ_CHUNK];
            let n = (&*self.0.sock).read(&mut raw)?;
            let _send = lock(&self.0.send);
            let (out, fed) = {
                let mut tls = lock(&self.0.tls);
                let mut input = &raw[..n];
                let fed = loop {
                    // An empty input records the end of the stream.
                    if let Err(e) = tls.read_tls(&mut input) {
                        break Err(e);
                    }
                    if let Err(e) = tls.process_new_packets() {
                        break Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                    if input.is_empty() {
                        break Ok(());
                    }
                };
                // Handshake messages, or the alert that tells the peer why we are giving up.
                (pending(&mut tls)?, fed)
            };
            if !out.is_empty() {
                (&*self.0.sock).write_all(&out)?;
            }
            fed?;
            if handshaking && !lock(&self.0.tls).is_handshaking() {
                self.0.sock.set_read_timeout(self.0.idle_timeout)?;
            }
        }
    }
}

impl Write for RustlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _send = lock(&self.0.send);
        let (n, out) = {
            let mut tls = lock(&self.0.tls);
            let n = tls.writer().write(buf)?;
            (n, pending(&mut tls)?)
        };
        (&*self.0.sock).write_all(&out)?;
        Ok(n)
    }

    /// Every write has reached the socket already.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) struct RustlsContext(Arc<rustls::ServerConfig>);

impl RustlsContext {
    /// A server configuration from a PEM certificate chain and a PEM private key (PKCS#8,
    /// PKCS#1 or SEC1, unencrypted); TLS 1.2 and 1.3 with rustls's safe defaults (ring).
    pub(crate) fn from_pem(
        certificates: Vec<u8>,
        private_key: Zeroizing<Vec<u8>>,
    ) -> Result<Self, Box<dyn Error + Send + Sync>> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(&certificates)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the certificate file is not valid PEM: {e}"))?;
        if chain.is_empty() {
            return Err("the certificate file holds no PEM certificate".into());
        }
        let key = PrivateKeyDer::from_pem_slice(&private_key).map_err(|e| {
            format!("the key file holds no usable private key (unencrypted PEM expected): {e}")
        })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("the certificate and key do not make a usable pair: {e}"))?;
        Ok(Self(Arc::new(config)))
    }

    pub(crate) fn accept(
        &self,
        stream: Connection,
    ) -> Result<RustlsStream, Box<dyn Error + Send + Sync + 'static>> {
        let tls = rustls::ServerConnection::new(Arc::clone(&self.0))?;
        let idle_timeout = stream.read_timeout()?;
        Ok(RustlsStream(Arc::new(Shared {
            sock: Arc::new(stream),
            tls: Mutex::new(tls),
            send: Mutex::new(()),
            handshake_deadline: Instant::now() + crate::util::HEAD_TIMEOUT,
            idle_timeout,
        })))
    }
}

impl From<RustlsStream> for RefinedStream {
    fn from(stream: RustlsStream) -> Self {
        Self::Https(stream)
    }
}
