//! Batched sends: the datagrams of one send-wheel tick handed to the
//! kernel in one system call instead of one call each.
//!
//! On Linux the batch is an io_uring submission: every datagram of the
//! tick (a hundred calls' frames, say, each on its own socket) is one send
//! entry, and one `io_uring_enter` sends them all. What a datagram then
//! costs is the kernel's UDP path without the system call around it.
//! Elsewhere, or where io_uring is unavailable (an older kernel, a seccomp
//! profile that forbids it, `kernel.io_uring_disabled`), or when it is
//! turned off ([`DriverConfig::batched_send`](crate::DriverConfig)), the
//! batch takes nothing and each datagram is sent on its own, as before.
//!
//! Sends never wait: each entry carries `MSG_DONTWAIT`, so a full socket
//! buffer fails that datagram (`WouldBlock`, counted like any send error)
//! instead of queueing audio behind the kernel, and the submission
//! completes within the system call.

use std::io;

/// The datagrams queued since the last [`flush`](Self::flush).
#[derive(Debug)]
pub(crate) struct SendBatch {
    #[cfg(target_os = "linux")]
    ring: Option<ring::Ring>,
}

/// A descriptor to send on (the raw value: a stale one can only make a
/// send fail or go out on the wrong socket, never touch memory).
#[cfg(unix)]
pub(crate) type Fd = std::os::fd::RawFd;
/// Elsewhere there is no descriptor to batch on.
#[cfg(not(unix))]
pub(crate) type Fd = std::convert::Infallible;

impl SendBatch {
    /// A batch; with `enabled` on Linux it sets up an io_uring, and
    /// without one (disabled, unsupported, refused) it takes nothing.
    pub(crate) fn new(enabled: bool) -> Self {
        #[cfg(target_os = "linux")]
        {
            let ring = if enabled {
                ring::Ring::new()
                    .inspect_err(|e| tracing::debug!(error = %e, "no io_uring: one send per datagram"))
                    .ok()
            } else {
                None
            };
            SendBatch { ring }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = enabled;
            SendBatch {}
        }
    }

    /// Whether datagrams are batched at all.
    pub(crate) fn is_batching(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.ring.is_some();
        #[cfg(not(target_os = "linux"))]
        return false;
    }

    /// Queues a copy of `bytes` for the connected socket `fd`, on behalf of
    /// `tag` (what [`flush`](Self::flush) reports a failure against).
    /// False when the batch takes nothing: the caller sends it itself. The
    /// socket must stay open until the next flush.
    pub(crate) fn push(&mut self, tag: usize, fd: Fd, bytes: &[u8]) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring {
            ring.push(tag, fd, bytes);
            return true;
        }
        let _ = (tag, fd, bytes);
        false
    }

    /// Whether the batch should be flushed before it takes more.
    pub(crate) fn is_full(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &self.ring {
            return ring.is_full();
        }
        false
    }

    /// Sends everything queued, calling `failed` with the tag of each
    /// datagram the kernel refused. Returns once every datagram has been
    /// sent or has failed.
    pub(crate) fn flush(&mut self, failed: impl FnMut(usize, io::Error)) {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring
            && !ring.flush(failed)
        {
            // The ring itself broke (not one send): stop batching.
            self.ring = None;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = failed;
    }
}

#[cfg(target_os = "linux")]
mod ring {
    use std::io;
    use std::os::fd::RawFd;

    use io_uring::{IoUring, opcode, types};

    /// Entries per submission: a tick's calls of one wheel are a few hundred
    /// at most; more are sent in further submissions.
    const DEPTH: u32 = 256;
    /// Times `io_uring_enter` may fail in a row (signals aside) before the
    /// ring is given up.
    const ENTER_RETRIES: usize = 8;

    /// One datagram waiting in [`Ring::arena`].
    #[derive(Debug)]
    struct Queued {
        tag: usize,
        fd: RawFd,
        start: usize,
        len: u32,
    }

    /// An io_uring and the datagrams for its next submission.
    pub(super) struct Ring {
        ring: IoUring,
        /// The queued datagrams' bytes, end to end. Entries point into it
        /// only while [`flush`](Self::flush) runs, after the last push.
        arena: Vec<u8>,
        queued: Vec<Queued>,
        /// Per entry of the round being completed: submitted and not yet
        /// completed.
        open: Vec<bool>,
        /// Failures of the flush so far, reported once nothing is in the
        /// kernel's hands (the report is the caller's code, which may
        /// panic: the arena must not be freed under the kernel then).
        failures: Vec<(usize, io::Error)>,
    }

    impl std::fmt::Debug for Ring {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Ring").field("queued", &self.queued.len()).finish_non_exhaustive()
        }
    }

    impl Ring {
        pub(super) fn new() -> io::Result<Ring> {
            // Keep submitting past an entry that fails (5.18) and complete
            // without interrupting the thread (5.19); what the kernel has of
            // these, or neither.
            let ring = IoUring::builder()
                .setup_submit_all()
                .setup_coop_taskrun()
                .build(DEPTH)
                .or_else(|_| IoUring::builder().setup_submit_all().build(DEPTH))
                .or_else(|_| IoUring::new(DEPTH))?;
            // Send (5.6) arrived with the probe: a kernel that cannot be
            // probed cannot send either, and would fail every datagram.
            let mut probe = io_uring::Probe::new();
            ring.submitter().register_probe(&mut probe)?;
            if !probe.is_supported(opcode::Send::CODE) {
                return Err(io::Error::new(io::ErrorKind::Unsupported, "io_uring without IORING_OP_SEND"));
            }
            Ok(Ring { ring, arena: Vec::new(), queued: Vec::new(), open: Vec::new(), failures: Vec::new() })
        }

        pub(super) fn push(&mut self, tag: usize, fd: RawFd, bytes: &[u8]) {
            // Datagrams are far below 4 GiB; a longer slice is cut, and the
            // kernel would refuse it anyway.
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            self.queued.push(Queued { tag, fd, start: self.arena.len(), len });
            self.arena.extend_from_slice(bytes);
        }

        pub(super) fn is_full(&self) -> bool {
            self.queued.len() >= DEPTH as usize
        }

        /// Submits the queue in rounds of at most [`DEPTH`] and waits for
        /// every completion. False if the ring failed as a whole; then the
        /// arena is leaked (the kernel may still read it) and every datagram
        /// not known to be sent is reported failed.
        #[allow(unsafe_code, reason = "io_uring entries point at the arena, which outlives them")]
        pub(super) fn flush(&mut self, mut failed: impl FnMut(usize, io::Error)) -> bool {
            let mut ok = true;
            let base = self.arena.as_ptr();
            let queued = std::mem::take(&mut self.queued);
            for chunk in queued.chunks(DEPTH as usize) {
                if !ok {
                    self.failures.extend(chunk.iter().map(|q| (q.tag, io::Error::other("io_uring failed"))));
                    continue;
                }
                self.open.clear();
                {
                    let mut sq = self.ring.submission();
                    for (i, q) in chunk.iter().enumerate() {
                        let entry = opcode::Send::new(types::Fd(q.fd), base.wrapping_add(q.start), q.len)
                            .flags(libc::MSG_DONTWAIT)
                            .build()
                            .user_data(i as u64);
                        // SAFETY: the entry points at `len` bytes of the
                        // arena, which is neither written nor freed until
                        // every entry of this round has completed (the
                        // round below waits for each completion, runs no
                        // caller code meanwhile, and on a broken ring the
                        // arena is leaked instead). The queue has room: it
                        // is empty when a round starts (every earlier entry
                        // was submitted and completed) and a round is at
                        // most DEPTH entries.
                        let pushed = unsafe { sq.push(&entry) }.is_ok();
                        self.open.push(pushed);
                        if !pushed {
                            self.failures.push((q.tag, io::Error::other("io_uring queue full")));
                        }
                    }
                }
                ok = self.complete_round(chunk);
            }
            self.queued = queued;
            self.queued.clear();
            if ok {
                self.arena.clear();
            } else {
                // Entries may still be in the kernel's hands: their bytes
                // must stay where they are for good.
                std::mem::forget(std::mem::take(&mut self.arena));
            }
            // Nothing is in flight now: the caller's code may run.
            for (tag, e) in self.failures.drain(..) {
                failed(tag, e);
            }
            ok
        }

        /// Submits the round and reaps its completions, marking each entry
        /// done in [`open`](Self::open) and noting failures. False when
        /// `io_uring_enter` keeps failing; the entries still open are then
        /// noted failed.
        fn complete_round(&mut self, chunk: &[Queued]) -> bool {
            let mut pending = self.open.iter().filter(|o| **o).count();
            let mut errors = 0;
            while pending > 0 {
                match self.ring.submit_and_wait(pending) {
                    Ok(_) => errors = 0,
                    // A signal: not the ring's fault.
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // Short of kernel memory for a moment, say.
                    Err(e) => {
                        errors += 1;
                        if errors >= ENTER_RETRIES {
                            tracing::warn!(error = %e, "io_uring_enter keeps failing: batched sends off");
                            for (q, _) in chunk.iter().zip(&self.open).filter(|(_, o)| **o) {
                                self.failures.push((q.tag, io::Error::other("io_uring failed")));
                            }
                            return false;
                        }
                    }
                }
                for cqe in self.ring.completion() {
                    let Some(i) = usize::try_from(cqe.user_data()).ok().filter(|i| self.open.get(*i) == Some(&true))
                    else {
                        continue;
                    };
                    self.open[i] = false;
                    pending -= 1;
                    if cqe.result() < 0 {
                        self.failures.push((chunk[i].tag, io::Error::from_raw_os_error(-cqe.result())));
                    }
                }
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    #[cfg(unix)]
    use std::os::fd::AsRawFd;

    fn receiver() -> UdpSocket {
        let r = UdpSocket::bind("127.0.0.1:0").unwrap();
        r.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        r
    }

    #[cfg(unix)]
    fn sender_to(r: &UdpSocket) -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.connect(r.local_addr().unwrap()).unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    /// Every queued datagram arrives whole, each from its own socket, in
    /// the order queued per socket, across more than one round.
    #[cfg(unix)]
    #[test]
    fn a_batch_delivers_every_datagram_on_its_own_socket() {
        let mut batch = SendBatch::new(true);
        let receivers: Vec<UdpSocket> = (0..3).map(|_| receiver()).collect();
        let senders: Vec<UdpSocket> = receivers.iter().map(sender_to).collect();
        let rounds = 300; // with three sockets: 900 datagrams, several rounds
        let mut pushed = 0;
        for n in 0..rounds {
            for (i, s) in senders.iter().enumerate() {
                let bytes = [i as u8, (n % 256) as u8, (n / 256) as u8];
                if batch.push(i, s.as_raw_fd(), &bytes) {
                    pushed += 1;
                } else {
                    s.send(&bytes).unwrap();
                }
                if batch.is_full() {
                    batch.flush(|tag, e| panic!("datagram of {tag} failed: {e}"));
                }
            }
            if n % 100 == 99 {
                batch.flush(|tag, e| panic!("datagram of {tag} failed: {e}"));
                // Drain as we go: a receive buffer holds a few hundred.
                for (i, r) in receivers.iter().enumerate() {
                    for m in n - 99..=n {
                        let mut buf = [0u8; 16];
                        let len = r.recv(&mut buf).unwrap();
                        assert_eq!(&buf[..len], &[i as u8, (m % 256) as u8, (m / 256) as u8]);
                    }
                }
            }
        }
        if cfg!(target_os = "linux") && batch.is_batching() {
            assert_eq!(pushed, rounds * 3);
        } else {
            assert_eq!(pushed, 0);
        }
    }

    /// A datagram the kernel refuses fails alone, reported against its own
    /// tag; the rest of the batch goes out and the batch keeps working.
    #[cfg(unix)]
    #[test]
    fn a_refused_datagram_fails_alone() {
        let mut batch = SendBatch::new(true);
        if !batch.is_batching() {
            return; // nothing batched here: the caller's own sends apply
        }
        let r = receiver();
        let good = sender_to(&r);
        // Not a socket: the send fails (ENOTSOCK) in the kernel.
        let not_a_socket = std::fs::File::open("/dev/null").unwrap();
        // An unconnected socket: no destination (EDESTADDRREQ).
        let unconnected = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(batch.push(0, good.as_raw_fd(), b"one"));
        assert!(batch.push(1, not_a_socket.as_raw_fd(), b"bad"));
        assert!(batch.push(2, unconnected.as_raw_fd(), b"bad"));
        assert!(batch.push(3, good.as_raw_fd(), b"two"));
        let mut failures = Vec::new();
        batch.flush(|tag, e| failures.push((tag, e.raw_os_error())));
        failures.sort();
        assert_eq!(failures, vec![(1, Some(libc::ENOTSOCK)), (2, Some(libc::EDESTADDRREQ))]);
        let mut buf = [0u8; 8];
        let mut next = || {
            let len = r.recv(&mut buf).unwrap();
            buf[..len].to_vec()
        };
        assert_eq!(next(), b"one");
        assert_eq!(next(), b"two");
        // Still batching after failures.
        assert!(batch.push(0, good.as_raw_fd(), b"three"));
        batch.flush(|tag, e| panic!("datagram of {tag} failed: {e}"));
        assert_eq!(next(), b"three");
        assert!(batch.is_batching());
    }

    /// Turned off, the batch takes nothing.
    #[test]
    fn disabled_takes_nothing() {
        let mut batch = SendBatch::new(false);
        #[cfg(unix)]
        {
            let r = receiver();
            let s = sender_to(&r);
            assert!(!batch.push(0, s.as_raw_fd(), b"x"));
        }
        assert!(!batch.is_full());
        batch.flush(|_, _| panic!("nothing was queued"));
    }
}
