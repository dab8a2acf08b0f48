//! claude-bridge patch: idle keep-alive connections wait without a thread.
//!
//! Upstream gives every connection a thread for its whole life, blocked in `read()` between
//! requests. A relay holding thousands of mostly idle agents (each with a waiting long-poll on a
//! keep-alive connection) then needs thousands of threads, and every thread costs memory,
//! a process id and four memory mappings (stack, guard, signal stack, guard): on a default
//! Linux (`vm.max_map_count` 65530) thread creation fails near 16,000 threads.
//!
//! Here a plain-TCP connection whose next request has not begun to arrive (nothing buffered,
//! nothing readable) is *parked*: its thread returns to the pool and the connection waits in
//! one `epoll` set watched by one thread. When the socket turns readable (a request, or the
//! peer closing) the connection is handed back to the pool and read as before. A connection
//! parked for longer than its socket's read timeout is closed, as the blocked `read()` would
//! have timed out, except while its last request is still being answered (a long-poll): then
//! its idle time starts over (a new connection that has sent nothing is closed at its silent
//! deadline). TLS connections are not parked (the TLS layer may hold decrypted bytes the
//! socket does not show).

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::TaskPool;

/// How often parked connections are checked against their idle timeout.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

type Resume = Box<dyn FnOnce() + Send>;

struct Parked {
    fd: RawFd,
    idle: Option<Duration>,
    until: Option<Instant>,
    /// Whether a request of the connection is still being answered (a long-poll): its idle
    /// time starts when that is done.
    busy: Box<dyn Fn() -> bool + Send>,
    resume: Resume,
}

/// The parked connections and the thread that watches them.
pub struct Parking {
    epoll: RawFd,
    parked: Mutex<HashMap<u64, Parked>>,
    next: std::sync::atomic::AtomicU64,
    pool: Arc<TaskPool>,
}

impl Parking {
    /// Start the watcher; resumed connections run on `pool`.
    pub fn start(pool: Arc<TaskPool>) -> std::io::Result<Arc<Parking>> {
        // SAFETY: plain epoll_create1.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let parking = Arc::new(Parking {
            epoll,
            parked: Mutex::new(HashMap::new()),
            next: std::sync::atomic::AtomicU64::new(1),
            pool,
        });
        let me = Arc::clone(&parking);
        thread::Builder::new()
            .name("parking".into())
            .stack_size(128 * 1024)
            .spawn(move || me.watch())?;
        Ok(parking)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Parked>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many connections are parked now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Park the connection on `fd` until it is readable (then `resume` runs on the pool) or
    /// `idle` has passed (then `resume` is dropped, closing it). `resume` owns the connection,
    /// so `fd` stays open while it is parked.
    pub fn park(
        &self,
        fd: RawFd,
        idle: Option<Duration>,
        busy: Box<dyn Fn() -> bool + Send>,
        resume: Resume,
    ) {
        let token = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut parked = self.lock();
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
            u64: token,
        };
        // SAFETY: a valid epoll fd; `fd` is open (owned by `resume`); a valid event.
        let added = unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if added != 0 {
            // Cannot watch it (out of memory): read it on a thread, as upstream does.
            drop(parked);
            self.pool.spawn(once(resume));
            return;
        }
        parked.insert(
            token,
            Parked {
                fd,
                idle,
                until: idle.map(|d| Instant::now() + d),
                busy,
                resume,
            },
        );
    }

    fn forget(&self, p: &Parked) {
        // SAFETY: removing a registered fd (still open: its owner is `p.resume`).
        unsafe {
            libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_DEL, p.fd, std::ptr::null_mut());
        }
    }

    fn watch(&self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut last_sweep = Instant::now();
        loop {
            // SAFETY: a valid epoll fd and a buffer of the given length.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll,
                    events.as_mut_ptr(),
                    events.len() as i32,
                    SWEEP_EVERY.as_millis() as i32,
                )
            };
            let mut ready = Vec::new();
            if n > 0 {
                let mut parked = self.lock();
                for ev in &events[..n as usize] {
                    let token = ev.u64;
                    if let Some(p) = parked.remove(&token) {
                        self.forget(&p);
                        ready.push(p.resume);
                    }
                }
            }
            for resume in ready {
                self.pool.spawn(once(resume));
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = Instant::now();
                let now = Instant::now();
                let expired: Vec<Parked> = {
                    let mut parked = self.lock();
                    let mut tokens = Vec::new();
                    for (t, p) in parked.iter_mut() {
                        if p.until.is_some_and(|u| u <= now) {
                            if (p.busy)() {
                                // Still answering its last request: idle from when it is done.
                                p.until = p.idle.map(|d| now + d);
                            } else {
                                tokens.push(*t);
                            }
                        }
                    }
                    tokens
                        .into_iter()
                        .filter_map(|t| parked.remove(&t))
                        .inspect(|p| self.forget(p))
                        .collect()
                };
                // Dropped outside the lock: closing may write nothing but takes time.
                drop(expired);
            }
        }
    }
}

/// A run-once task as the pool's `FnMut`.
fn once(f: Resume) -> Box<dyn FnMut() + Send> {
    let mut f = Some(f);
    Box::new(move || {
        if let Some(f) = f.take() {
            f()
        }
    })
}

/// Whether `fd` has something to read (or a hang-up) right now.
pub fn readable_now(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    unsafe { libc::poll(&mut p, 1, 0) > 0 }
}
