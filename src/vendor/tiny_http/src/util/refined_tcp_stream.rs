use std::io::Result as IoResult;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

use crate::connection::Connection;
#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use crate::ssl::SslStream;

pub(crate) enum Stream {
    // claude-bridge patch: shared by the read and write halves (was one dup() each)
    Http(Arc<Connection>),
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    Https(SslStream),
}

impl Stream {
    // claude-bridge patch: was `impl Clone` with `try_clone().unwrap()`, a dup() that panicked
    // the accept thread (closing the listener for good) when it failed with EMFILE. The halves of
    // a plain connection now share one socket, so only TLS can fail here.
    fn try_clone(&self) -> IoResult<Self> {
        Ok(match self {
            Stream::Http(tcp_stream) => Stream::Http(Arc::clone(tcp_stream)),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => Stream::Https(ssl_stream.clone()),
        })
    }
}

impl From<Connection> for Stream {
    fn from(tcp_stream: Connection) -> Self {
        Stream::Http(Arc::new(tcp_stream))
    }
}

impl Stream {
    fn secure(&self) -> bool {
        match self {
            Stream::Http(_) => false,
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => true,
        }
    }

    fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.peer_addr(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.peer_addr(),
        }
    }

    fn shutdown(&mut self, how: Shutdown) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.shutdown(how),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.shutdown(how),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => (&**tcp_stream).read(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => (&**tcp_stream).write(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.write(buf),
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => (&**tcp_stream).flush(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.flush(),
        }
    }
}

pub struct RefinedTcpStream {
    stream: Stream,
    close_read: bool,
    close_write: bool,
    // claude-bridge patch: the head deadline of the connection (read half only), and the
    // socket's own read timeout while a shorter one is set for the head
    head_clock: Option<std::sync::Arc<crate::util::HeadClock>>,
    idle_timeout: Option<Option<std::time::Duration>>,
}

impl RefinedTcpStream {
    pub(crate) fn new<S>(stream: S) -> IoResult<(RefinedTcpStream, RefinedTcpStream)>
    where
        S: Into<Stream>,
    {
        let stream: Stream = stream.into();

        let (read, write) = (stream.try_clone()?, stream);

        let read = RefinedTcpStream {
            stream: read,
            close_read: true,
            close_write: false,
            head_clock: None,
            idle_timeout: None,
        };

        let write = RefinedTcpStream {
            stream: write,
            close_read: false,
            close_write: true,
            head_clock: None,
            idle_timeout: None,
        };

        Ok((read, write))
    }

    /// Returns true if this struct wraps around a secure connection.
    #[inline]
    pub(crate) fn secure(&self) -> bool {
        self.stream.secure()
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }

    /// claude-bridge patch: a shared handle on the connection's socket (under TLS with
    /// rustls, the socket beneath it).
    pub(crate) fn connection(&self) -> Option<Arc<Connection>> {
        match &self.stream {
            Stream::Http(c) => Some(Arc::clone(c)),
            #[cfg(feature = "ssl-rustls")]
            Stream::Https(s) => Some(s.connection()),
            #[cfg(feature = "ssl-openssl")]
            Stream::Https(_) => None,
        }
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        // claude-bridge patch: no shutdown(Read) when the read half goes. It tells the peer
        // nothing, and on the socket the write half still shares it would make a peek (the
        // only way to see that a client left while its answer is prepared) read end of stream.
        if self.close_read && self.stream.secure() && cfg!(feature = "ssl-openssl") {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl RefinedTcpStream {
    /// claude-bridge patch: bound reads by `clock`'s deadline while it runs.
    pub(crate) fn set_head_clock(&mut self, clock: std::sync::Arc<crate::util::HeadClock>) {
        self.head_clock = Some(clock);
    }

    fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> IoResult<()> {
        match self.connection() {
            Some(c) => c.set_read_timeout(timeout),
            None => Ok(()),
        }
    }

    /// claude-bridge patch: end the sending direction now (a TLS stream sends `close_notify`),
    /// for a connection being closed while it still discards what the client sends.
    pub(crate) fn shutdown_write(&mut self) {
        self.stream.shutdown(Shutdown::Write).ok();
    }

    fn read_timeout(&self) -> IoResult<Option<std::time::Duration>> {
        match self.connection() {
            Some(c) => c.read_timeout(),
            None => Ok(None),
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        // claude-bridge patch: the read deadlines (see `HeadClock`). Costs nothing extra when a
        // head arrives in one read, which is the usual case.
        let Some(clock) = self.head_clock.clone() else {
            return self.stream.read(buf);
        };
        let n = match clock.deadline() {
            None => {
                if let Some(idle) = self.idle_timeout.take() {
                    self.set_read_timeout(idle)?;
                }
                self.stream.read(buf)?
            }
            Some((deadline, phase)) => {
                let ran_out = || {
                    use crate::util::head_clock::Phase;
                    let (kind, what) = match phase {
                        // closed without an answer: nothing was asked
                        Phase::Silent => (
                            std::io::ErrorKind::ConnectionAborted,
                            "the connection sent nothing",
                        ),
                        Phase::Head => (
                            std::io::ErrorKind::TimedOut,
                            "the request head took too long",
                        ),
                        Phase::Body => (
                            std::io::ErrorKind::TimedOut,
                            "the request body took too long",
                        ),
                        Phase::Linger => (std::io::ErrorKind::TimedOut, "done discarding"),
                    };
                    std::io::Error::new(kind, what)
                };
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(ran_out());
                }
                if self.idle_timeout.is_none() {
                    self.idle_timeout = Some(self.read_timeout()?);
                }
                self.set_read_timeout(Some(left))?;
                match self.stream.read(buf) {
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        return Err(ran_out())
                    }
                    other => other?,
                }
            }
        };
        if n > 0 {
            clock.data_arrived();
        }
        Ok(n)
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
