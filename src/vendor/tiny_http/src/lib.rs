//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use zeroize::Zeroizing;

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use client::ClientConnection;
use connection::Connection;
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use request::{ConnectionHandle, ReadWrite, Request};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;
pub use util::ReadLimits;

mod client;
mod common;
mod connection;
mod request;
mod response;
mod ssl;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,

    // claude-bridge patch: requests whose head has arrived and that are not dropped yet
    in_progress: Arc<std::sync::atomic::AtomicUsize>,

    // claude-bridge patch: the cap on open connections
    limit: Arc<ConnectionLimit>,
}

/// claude-bridge patch: at most `max` connections are read at once (0: no cap); one more is
/// answered with `refusal` and closed, by a thread of its own so the accept thread never waits.
struct ConnectionLimit {
    max: std::sync::atomic::AtomicUsize,
    open: std::sync::atomic::AtomicUsize,
    refusal: std::sync::Mutex<Arc<[u8]>>,
    /// claude-bridge patch: headers for the answers tiny_http writes itself (see
    /// `Server::set_own_headers`); kept here, beside the other per-server connection settings.
    own_headers: std::sync::Mutex<Arc<[Header]>>,
    /// claude-bridge patch: read deadlines and head sizes, and the head bytes held now.
    read_limits: std::sync::Mutex<util::ReadLimits>,
    head_memory: Arc<std::sync::atomic::AtomicUsize>,
    body_memory: Arc<std::sync::atomic::AtomicUsize>,
    prefetch: std::sync::Mutex<Option<Prefetch>>,
}

/// claude-bridge patch: which request bodies a connection reads whole before handing the
/// request out (see `Server::prefetch_bodies`).
#[derive(Clone, Copy)]
pub struct Prefetch {
    /// The largest body read so (a chunked one is read up to one byte past it).
    pub max: usize,
    /// Whether a request (method, URL) will have its body read by the server.
    pub wanted: fn(&Method, &str) -> bool,
}

/// claude-bridge patch: counts one open connection until dropped.
struct OpenConnection(Arc<ConnectionLimit>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// claude-bridge patch: write the refusal, stop writing, and read what the client sent (briefly)
/// so that closing sends a FIN rather than a reset that could destroy the refusal in flight.
fn refuse(mut sock: TcpStream, refusal: &[u8]) {
    use std::io::{Read, Write};
    let _ = sock.set_write_timeout(Some(Duration::from_millis(500)));
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    if sock.write_all(refusal).is_ok() {
        let _ = sock.shutdown(Shutdown::Write);
        let mut sink = [0u8; 4096];
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        while std::time::Instant::now() < deadline {
            match sock.read(&mut sink) {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
    }
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    pub ssl: Option<SslConfig>,
}

/// Configuration of the server for SSL.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    /// Shortcut for an HTTPS server on a specific address.
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    #[inline]
    pub fn https<A>(
        addr: A,
        config: SslConfig,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: Some(config),
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = listener.into();
        // building the "close" variable
        let close_trigger = Arc::new(AtomicBool::new(false));

        // building the TcpListener
        let (server, local_addr) = {
            let local_addr = listener.local_addr()?;
            log::debug!("Server listening on {}", local_addr);
            (listener, local_addr)
        };

        // building the SSL capabilities
        #[cfg(all(feature = "ssl-openssl", feature = "ssl-rustls"))]
        compile_error!(
            "Features 'ssl-openssl' and 'ssl-rustls' must not be enabled at the same time"
        );
        #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
        type SslContext = ();
        #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
        type SslContext = crate::ssl::SslContextImpl;
        let ssl: Option<SslContext> = {
            match ssl_config {
                #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                Some(config) => Some(SslContext::from_pem(
                    config.certificate,
                    Zeroizing::new(config.private_key),
                )?),
                #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                Some(_) => return Err(
                    "Building a server with SSL requires enabling the `ssl` feature in tiny-http"
                        .into(),
                ),
                None => None,
            }
        };

        // creating a task where server.accept() is continuously called
        // and ClientConnection objects are pushed in the messages queue
        let messages = MessagesQueue::with_capacity(8);

        let inside_close_trigger = close_trigger.clone();
        let in_progress = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inside_in_progress = Arc::clone(&in_progress);
        let limit = Arc::new(ConnectionLimit {
            max: std::sync::atomic::AtomicUsize::new(0),
            open: std::sync::atomic::AtomicUsize::new(0),
            refusal: std::sync::Mutex::new(Arc::from(&b""[..])),
            own_headers: std::sync::Mutex::new(Arc::from(Vec::new())),
            read_limits: std::sync::Mutex::new(util::ReadLimits::default()),
            head_memory: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            body_memory: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            prefetch: std::sync::Mutex::new(None),
        });
        let inside_limit = Arc::clone(&limit);
        let (refuse_tx, refuse_rx) = mpsc::sync_channel::<(TcpStream, Arc<[u8]>)>(64);
        thread::Builder::new()
            .name("refuse".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                for (sock, refusal) in refuse_rx {
                    refuse(sock, &refusal);
                }
            })?;
        let inside_messages = messages.clone();
        thread::spawn(move || {
            // a tasks pool is used to dispatch the connections into threads
            let tasks_pool = util::TaskPool::new();

            log::debug!("Running accept thread");
            let mut backoff = Duration::ZERO;
            let (mut failures, mut last_report) = (0u64, None);
            while !inside_close_trigger.load(Relaxed) {
                let new_client = match server.accept() {
                    Ok((sock, _)) => {
                        // claude-bridge patch: over the cap, refuse (never blocks this thread)
                        let max = inside_limit.max.load(Relaxed);
                        if max > 0 && inside_limit.open.load(Relaxed) >= max {
                            if let Connection::Tcp(tcp) = sock {
                                let refusal = inside_limit
                                    .refusal
                                    .lock()
                                    .map(|r| Arc::clone(&r))
                                    .unwrap_or_else(|p| Arc::clone(&p.into_inner()));
                                let _ = refuse_tx.try_send((tcp, refusal));
                            }
                            continue;
                        }
                        inside_limit.open.fetch_add(1, Relaxed);
                        let open = OpenConnection(Arc::clone(&inside_limit));
                        use util::RefinedTcpStream;
                        // claude-bridge patch: splitting the socket (dup) may fail like accept()
                        // itself (EMFILE); that error now takes the same path below.
                        let halves = match ssl {
                            None => RefinedTcpStream::new(sock),
                            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                            Some(ref ssl) => {
                                // trying to apply SSL over the connection
                                // if an error occurs, we just close the socket and resume listening
                                let sock = match ssl.accept(sock) {
                                    Ok(s) => s,
                                    Err(_) => continue,
                                };

                                RefinedTcpStream::new(sock)
                            }
                            #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                            Some(ref _ssl) => unreachable!(),
                        };

                        halves.map(|(read_closable, write_closable)| {
                            let own_headers = inside_limit
                                .own_headers
                                .lock()
                                .map(|h| Arc::clone(&h))
                                .unwrap_or_else(|p| Arc::clone(&p.into_inner()));
                            let read_limits = inside_limit
                                .read_limits
                                .lock()
                                .map(|l| *l)
                                .unwrap_or_else(|p| *p.into_inner());
                            let prefetch = inside_limit
                                .prefetch
                                .lock()
                                .map(|p| *p)
                                .unwrap_or_else(|p| *p.into_inner());
                            let client = ClientConnection::new(
                                write_closable,
                                read_closable,
                                read_limits,
                                [
                                    Arc::clone(&inside_limit.head_memory),
                                    Arc::clone(&inside_limit.body_memory),
                                ],
                                prefetch,
                            )
                                .counting_requests_in(Arc::clone(&inside_in_progress))
                                .with_own_headers(own_headers);
                            (client, open)
                        })
                    }
                    Err(e) => Err(e),
                };

                match new_client {
                    Ok((client, open)) => {
                        backoff = Duration::ZERO;
                        let messages = inside_messages.clone();
                        let mut client = Some((client, open));
                        tasks_pool.spawn(Box::new(move || {
                            if let Some((client, _open)) = client.take() {
                                // Synchronization is needed for HTTPS requests to avoid a deadlock
                                // claude-bridge patch: not with rustls, whose stream
                                // reads and writes at once (src/ssl/rustls.rs)
                                if client.secure() && cfg!(feature = "ssl-openssl") {
                                    let (sender, receiver) = mpsc::channel();
                                    for rq in client {
                                        messages.push(rq.with_notify_sender(sender.clone()).into());
                                        receiver.recv().unwrap();
                                    }
                                } else {
                                    for rq in client {
                                        messages.push(rq.into());
                                    }
                                }
                            }
                        }));
                    }

                    // claude-bridge patch: errors that concern one connection attempt, or a
                    // receive timeout set on the listening socket (which Linux applies to
                    // accept()), are not the listener's death: try again.
                    Err(ref e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                                | std::io::ErrorKind::ConnectionAborted
                        ) =>
                    {
                        continue;
                    }

                    // claude-bridge patch: only an error that says the listening socket itself
                    // is unusable ends the accept thread. Anything else (EMFILE and ENFILE when
                    // the descriptor table is full, ENOBUFS, ENOMEM, EPERM from a firewall, a
                    // protocol error on one handshake) passes: back off and try again, so
                    // service comes back by itself once the flood ends.
                    Err(e) if !listener_is_dead(&e) => {
                        failures += 1;
                        if last_report.map_or(true, |t: std::time::Instant| t.elapsed() >= REPORT_EVERY) {
                            eprintln!(
                                "tiny_http: accept() failed {failures} time(s) ({e}); retrying until it works"
                            );
                            last_report = Some(std::time::Instant::now());
                            failures = 0;
                        }
                        backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_BACKOFF);
                        thread::sleep(backoff);
                        continue;
                    }

                    Err(e) => {
                        log::error!("Error accepting new client: {}", e);
                        inside_messages.push(e.into());
                        break;
                    }
                }
            }
            log::debug!("Terminating accept thread");
        });

        // result
        Ok(Server {
            messages,
            close: close_trigger,
            in_progress,
            limit,
            listening_addr: local_addr,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    pub fn num_connections(&self) -> usize {
        unimplemented!()
        //self.requests_receiver.lock().len()
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_accepting();
    }
}

impl Server {
    /// claude-bridge patch: end the accept thread (and with it the listening socket) now, while
    /// requests already received, and further requests on connections already open, are still
    /// delivered by `recv`. Was the body of `Drop`, which does the same.
    /// claude-bridge patch: read at most `max` connections at once (0: no cap); a connection
    /// over the cap gets `refusal` (a whole HTTP response) and is closed.
    pub fn limit_connections(&self, max: usize, refusal: Vec<u8>) {
        if let Ok(mut r) = self.limit.refusal.lock() {
            *r = Arc::from(refusal);
        }
        self.limit.max.store(max, Relaxed);
    }

    /// claude-bridge patch: `headers` go on every answer tiny_http writes itself (400 for a
    /// malformed head, 408 for a slow one, 417, 505), on connections accepted from now on.
    pub fn set_own_headers(&self, headers: Vec<Header>) {
        if let Ok(mut h) = self.limit.own_headers.lock() {
            *h = Arc::from(headers);
        }
    }

    /// claude-bridge patch: how many connections are being read now.
    /// claude-bridge patch: the deadlines for reading requests and the bounds on their heads,
    /// for connections accepted from now on (see [`ReadLimits`]).
    pub fn set_read_limits(&self, limits: ReadLimits) {
        if let Ok(mut l) = self.limit.read_limits.lock() {
            *l = limits;
        }
    }

    /// claude-bridge patch: read the bodies `wanted` says the server will read, up to `max`
    /// bytes, whole on the connection's own thread (within the body deadline and the
    /// `ReadLimits::body_memory` budget) before the request is handed out, so that a slow body never holds a thread of the
    /// server's. For connections accepted from now on.
    pub fn prefetch_bodies(&self, max: usize, wanted: fn(&Method, &str) -> bool) {
        if let Ok(mut p) = self.limit.prefetch.lock() {
            *p = Some(Prefetch { max, wanted });
        }
    }

    /// claude-bridge patch: the bytes of request heads held now (being read, or in requests not
    /// yet dropped).
    pub fn head_memory(&self) -> usize {
        self.limit.head_memory.load(Relaxed)
    }

    pub fn open_connections(&self) -> usize {
        self.limit.open.load(Relaxed)
    }

    /// claude-bridge patch: how many requests are in progress: their head has arrived (a small
    /// body may still be arriving before `recv` hands them out) and they are not dropped yet.
    /// Answering or `into_writer` drops a request.
    pub fn requests_in_progress(&self) -> usize {
        self.in_progress.load(Relaxed)
    }

    pub fn stop_accepting(&self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// claude-bridge patch: the longest pause between two `accept()` attempts while they keep failing
/// for want of resources.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// claude-bridge patch: how often a run of failing `accept()` calls is reported on stderr.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// claude-bridge patch: whether an `accept()` error means the listening socket itself is gone
/// (closed, not a socket, not listening), so trying again can never succeed.
fn listener_is_dead(e: &IoError) -> bool {
    // EBADF, EFAULT, EINVAL, ENOTSOCK, EOPNOTSUPP on Linux; the kinds cover other systems.
    matches!(e.raw_os_error(), Some(9 | 14 | 22 | 88 | 95))
        || matches!(e.kind(), std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported)
}
