//! Cross-process wake-ups without waiting for the poll: inotify on the db's directory, for
//! writes to the write-ahead log (`<db>-wal`, where every commit of every process lands) or the
//! db file itself.
//!
//! The db watcher (`outbox::watch`) still looks at `PRAGMA data_version` on its poll interval;
//! this only ends its sleep as soon as another process has written, so a send by a `--stdio`
//! process reaches this process's waiters in a millisecond or two instead of up to the interval.
//! Where inotify is missing (not Linux, no instances left, a network file system that reports
//! nothing) the poll alone carries on. A commit's last WAL write may precede the update of the
//! shared WAL index that `data_version` reads, so after a write that showed no change the
//! watcher looks again a few times within milliseconds ([`Notify::RECHECKS`]).

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// An inotify watch on the db's directory, filtered to the db and its WAL.
pub struct Notify {
    fd: RawFd,
    names: [Vec<u8>; 2],
}

impl Notify {
    /// Quick looks after a write that showed no change yet (0.2, 0.5, 1, 2 and 4 ms apart).
    pub const RECHECKS: [Duration; 5] = [
        Duration::from_micros(200),
        Duration::from_micros(500),
        Duration::from_millis(1),
        Duration::from_millis(2),
        Duration::from_millis(4),
    ];

    /// Watch the directory of `db`; `None` where inotify cannot be set up (the poll carries on).
    pub fn new(db: &Path) -> Option<Notify> {
        let db = std::fs::canonicalize(db).ok()?;
        let dir = db.parent()?;
        let name = db.file_name()?.to_string_lossy().into_owned().into_bytes();
        let mut wal = name.clone();
        wal.extend_from_slice(b"-wal");
        let dir = CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: plain inotify_init1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        let mask = libc::IN_MODIFY | libc::IN_CREATE | libc::IN_MOVED_TO;
        // SAFETY: a valid inotify fd and a NUL-terminated path.
        if unsafe { libc::inotify_add_watch(fd, dir.as_ptr(), mask) } < 0 {
            // SAFETY: closing the fd we opened.
            unsafe { libc::close(fd) };
            return None;
        }
        Some(Notify {
            fd,
            names: [name, wal],
        })
    }

    /// Block until the db or its WAL is written (`true`) or `timeout` passes (`false`).
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut p = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut p, 1, ms) };
            if ready > 0 {
                if self.drain() {
                    return true;
                }
            } else if ready < 0
                && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
            {
                // Something is wrong with the descriptor: sleep out the interval (the poll).
                std::thread::sleep(left);
                return false;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// Read every queued event; whether one concerned the db or its WAL (an overflow counts:
    /// events were lost).
    fn drain(&self) -> bool {
        let mut buf = [0u8; 4096];
        let mut hit = false;
        loop {
            // SAFETY: reading into a buffer of the given length.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return hit;
            }
            let n = n as usize;
            let mut at = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= n {
                // SAFETY: the kernel wrote whole events; read_unaligned copes with the offset.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                let len = ev.len as usize;
                let name = &buf[at + header..(at + header + len).min(n)];
                let name = name.split(|b| *b == 0).next().unwrap_or_default();
                if ev.mask & libc::IN_Q_OVERFLOW != 0 || self.names.iter().any(|w| w == name) {
                    hit = true;
                }
                at += header + len;
            }
        }
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        // SAFETY: closing the fd we own.
        unsafe { libc::close(self.fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_to_the_wal_wakes_other_files_do_not() {
        let dir = std::env::temp_dir().join(format!("cb-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("x.db");
        std::fs::write(&db, b"").unwrap();
        let n = Notify::new(&db).expect("inotify on Linux");
        std::fs::write(dir.join("other.txt"), b"noise").unwrap();
        assert!(
            !n.wait(Duration::from_millis(50)),
            "another file is not the db"
        );
        let writer = std::thread::spawn({
            let wal = dir.join("x.db-wal");
            move || std::fs::write(wal, b"frame").unwrap()
        });
        assert!(
            n.wait(Duration::from_secs(10)),
            "a WAL write wakes the watcher"
        );
        writer.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
