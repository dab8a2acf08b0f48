//! Hangups: noticing that a client left while its answer is still being prepared.
//!
//! A long-poll (`GET /api/wait`, a `bridge_wait` over `/mcp` answered as one JSON body) writes
//! nothing until it ends, so a failed write cannot tell it that the client has gone. One watcher
//! thread polls, without waiting, the socket of every such request a few times a second: a
//! hang-up (the peer shut its side, even behind unread data such as a TLS `close_notify`) or an
//! error means the client closed or reset the connection, and the request's `gone` flag is
//! raised and waiters are woken so the wait ends at once instead of at its timeout. Data waiting
//! to be read (a pipelined request) is not a hangup. The watcher sleeps while nothing is watched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use tiny_http::ConnectionHandle;

/// How often watched sockets are looked at: a vanished client's wait ends within this.
pub const CHECK_EVERY: Duration = Duration::from_millis(200);

/// The requests being watched, and the watcher thread's wake-up.
pub struct Hangups {
    watched: Mutex<HashMap<u64, Watched>>,
    not_empty: Condvar,
    next_id: AtomicU64,
}

#[derive(Clone)]
struct Watched {
    connection: ConnectionHandle,
    gone: Arc<AtomicBool>,
}

/// One watched request; stops the watching when dropped.
pub struct Watch {
    id: u64,
    hangups: Arc<Hangups>,
    /// Raised once the client has gone.
    pub gone: Arc<AtomicBool>,
}

impl Hangups {
    /// Start the watcher thread; `on_gone` runs (on that thread, with no lock held) after it has
    /// raised one or more flags, to wake whatever waits on them.
    pub fn start(on_gone: impl Fn() + Send + 'static) -> std::io::Result<Arc<Hangups>> {
        let hangups = Arc::new(Hangups {
            watched: Mutex::new(HashMap::new()),
            not_empty: Condvar::new(),
            next_id: AtomicU64::new(1),
        });
        let me = Arc::clone(&hangups);
        thread::Builder::new()
            .name("hangups".into())
            .stack_size(64 * 1024)
            .spawn(move || loop {
                if me.check() {
                    on_gone();
                }
                thread::sleep(CHECK_EVERY);
            })?;
        Ok(hangups)
    }

    /// Watch a request's connection until the returned guard is dropped.
    pub fn watch(self: &Arc<Self>, connection: ConnectionHandle) -> Watch {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let gone = Arc::new(AtomicBool::new(false));
        self.lock().insert(
            id,
            Watched {
                connection,
                gone: Arc::clone(&gone),
            },
        );
        self.not_empty.notify_one();
        Watch {
            id,
            hangups: Arc::clone(self),
            gone,
        }
    }

    /// How many requests are watched now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wait until something is watched, then look at every watched socket once (one `poll(2)`
    /// over all of them, outside the lock: thousands of parked waits cost one system call per
    /// look); raise the flag of (and stop watching) those whose client has gone. Returns whether
    /// any was raised.
    fn check(&self) -> bool {
        let snapshot: Vec<(u64, Watched)> = {
            let mut watched = self.lock();
            while watched.is_empty() {
                watched = self
                    .not_empty
                    .wait(watched)
                    .unwrap_or_else(|p| p.into_inner());
            }
            watched.iter().map(|(id, w)| (*id, w.clone())).collect()
        };
        let left = gone_peers(&snapshot);
        if left.is_empty() {
            return false;
        }
        let mut watched = self.lock();
        for i in &left {
            let (id, w) = &snapshot[*i];
            w.gone.store(true, Ordering::SeqCst);
            watched.remove(id);
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Watched>> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.hangups.lock().remove(&self.id);
    }
}

/// The indexes of the watched connections whose peer has left (see [`gone_fds`]). The handles
/// keep every socket open meanwhile.
fn gone_peers(watched: &[(u64, Watched)]) -> Vec<usize> {
    use std::os::fd::AsRawFd;
    let fds: Vec<std::os::fd::RawFd> = watched
        .iter()
        .map(|(_, w)| w.connection.tcp().map_or(-1, |t| t.as_raw_fd()))
        .collect();
    gone_fds(&fds)
}

/// The indexes of the sockets whose peer has closed or reset the connection, by one `poll(2)`
/// that does not wait: a hang-up (`POLLRDHUP`: the peer shut its sending side, seen even behind
/// unread data such as a TLS `close_notify`) or an error. Pending data or nothing to read yet
/// both mean it is still there. A negative fd (no TCP socket) is skipped.
fn gone_fds(fds: &[std::os::fd::RawFd]) -> Vec<usize> {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: *fd,
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        })
        .collect();
    // SAFETY: a valid array of `polled.len()` pollfds, no waiting.
    let ready = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, 0) };
    if ready <= 0 {
        return Vec::new();
    }
    polled
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn peer_left(s: &TcpStream) -> bool {
        // Beside a socket that is not there (skipped), as the watcher polls many at once.
        gone_fds(&[-1, s.as_raw_fd()]) == [1]
    }

    #[test]
    fn a_poll_tells_a_closed_peer_from_a_quiet_or_talking_one() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert!(!peer_left(&server), "a quiet peer is still there");
        std::io::Write::write_all(&mut client, b"GET / HTTP/1.1\r\n").unwrap();
        thread::sleep(Duration::from_millis(20));
        assert!(!peer_left(&server), "a pipelined request is not a hangup");
        drop(client);
        thread::sleep(Duration::from_millis(20));
        assert!(
            peer_left(&server),
            "a closed peer has left, unread data or not"
        );
        let mut buf = [0u8; 64];
        let _ = std::io::Read::read(&mut &server, &mut buf).unwrap();
        assert!(peer_left(&server), "and after the data is read");
    }
}
