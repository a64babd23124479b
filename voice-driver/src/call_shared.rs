//! One call as its task and the send wheel share it: the call's core
//! behind a lock, its UDP socket (on the runtime's reactor, or the
//! driver's own that the wheel receives on), and what the wheel does with
//! a call in its turn: send the frame of its slot ([`CallShared::send_due`])
//! and read the datagrams waiting on its socket
//! ([`CallShared::receive_due`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;

use crate::core::CallCore;
use crate::recv_poll::{self, RecvBufs};
use crate::runtime::AsyncUdpSocket;
use crate::send_batch::{Fd, SendBatch};

/// Where a call's UDP socket binds: any local IPv4 address, a port the
/// system picks (IP discovery tells the call its public address).
pub(crate) const UDP_BIND: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0));

/// A call's UDP socket.
#[derive(Debug)]
pub(crate) enum Udp {
    /// On the runtime's reactor: the call's task receives.
    Runtime(Box<dyn AsyncUdpSocket>),
    /// The driver's own (non-blocking, on no reactor): the wheel receives
    /// ([`recv_poll`](crate::recv_poll)).
    Wheel(std::net::UdpSocket),
}

impl Udp {
    /// The socket the call's task receives from, if it does.
    pub(crate) fn runtime(&self) -> Option<&dyn AsyncUdpSocket> {
        match self {
            Udp::Runtime(u) => Some(&**u),
            Udp::Wheel(_) => None,
        }
    }

    fn try_send(&self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Udp::Runtime(u) => u.try_send(bytes),
            Udp::Wheel(u) => u.send(bytes),
        }
    }

    fn try_send_to(&self, bytes: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        match self {
            Udp::Runtime(u) => u.try_send_to(bytes, to),
            Udp::Wheel(u) => u.send_to(bytes, to),
        }
    }

    fn connect(&self, to: SocketAddr) -> std::io::Result<()> {
        match self {
            Udp::Runtime(u) => u.connect(to),
            Udp::Wheel(u) => u.connect(to),
        }
    }

    fn fd(&self) -> Option<Fd> {
        match self {
            #[cfg(unix)]
            Udp::Runtime(u) => u.as_fd().map(|fd| std::os::fd::AsRawFd::as_raw_fd(&fd)),
            #[cfg(not(unix))]
            Udp::Runtime(_) => None,
            Udp::Wheel(u) => std_fd(u),
        }
    }
}

/// A std socket's descriptor (none off Unix).
pub(crate) fn std_fd(socket: &std::net::UdpSocket) -> Option<Fd> {
    #[cfg(unix)]
    return Some(std::os::fd::AsRawFd::as_raw_fd(socket));
    #[cfg(not(unix))]
    {
        let _ = socket;
        None
    }
}

thread_local! {
    /// Where a call's task reads the datagrams waiting for the wheel
    /// ([`CallShared::receive_waiting`]), one set per thread.
    static TASK_BUFS: std::cell::RefCell<RecvBufs> = std::cell::RefCell::new(RecvBufs::new());
}

/// Hands up to `bursts` bursts of the datagrams waiting on `fd` to
/// `core`, stopping at the first burst that is not full.
fn read_bursts(fd: Fd, bufs: &mut RecvBufs, core: &mut CallCore, now: Instant, bursts: usize) {
    for _ in 0..bursts {
        match recv_poll::recv_burst(fd, bufs, |from, d| core.handle_datagram(from, d, now)) {
            Ok(n) if n == recv_poll::BURST => {}
            Ok(_) => break,
            Err(e) => {
                tracing::debug!(error = %e, "udp receive error");
                break;
            }
        }
    }
}

/// No key in the wheel's receive poller.
pub(crate) const NO_KEY: usize = usize::MAX;

/// One call as its task and the wheel share it.
#[derive(Debug)]
pub(crate) struct CallShared {
    locked: Mutex<Locked>,
    pub(crate) udp: Udp,
    /// `udp`'s descriptor, for batched sends and the receive poller.
    pub(crate) fd: Option<Fd>,
    /// The call's key in its wheel's receive poller ([`NO_KEY`]: none).
    pub(crate) rx_key: AtomicUsize,

    task: Mutex<Option<Waker>>,
    pub(crate) in_wheel: AtomicBool,
    /// Batched sends that failed, not yet counted in the core's stats (the
    /// wheel does not wait for a busy lock to count them).
    pub(crate) send_errors: AtomicUsize,
}

/// What is behind the call's lock.
#[derive(Debug)]
pub(crate) struct Locked {
    pub(crate) core: CallCore,
    /// Where the UDP socket is connected.
    pub(crate) peer: Option<SocketAddr>,
    /// The deadline the call's task has its timer set for.
    pub(crate) armed: Option<Instant>,
}

impl CallShared {
    pub(crate) fn new(core: CallCore, udp: Udp) -> Self {
        let fd = udp.fd();
        CallShared {
            locked: Mutex::new(Locked { core, peer: None, armed: None }),
            udp,
            fd,
            rx_key: AtomicUsize::new(NO_KEY),

            task: Mutex::new(None),
            in_wheel: AtomicBool::new(false),
            send_errors: AtomicUsize::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Locked> {
        // A panic while locked leaves counters half-updated at worst.
        self.locked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the wheel sends this call's frames now.
    pub(crate) fn in_wheel(&self) -> bool {
        self.in_wheel.load(Ordering::Acquire)
    }

    /// The call's task registers its waker, for the wheel to hand back.
    pub(crate) fn set_task(&self, waker: &Waker) {
        let mut t = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if !t.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *t = Some(waker.clone());
        }
    }

    pub(crate) fn wake_task(&self) {
        if let Some(w) = self.task.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            w.wake_by_ref();
        }
    }

    /// Sends one datagram, connecting the socket to a new peer first so
    /// that the kernel filters every other source.
    pub(crate) fn transmit(&self, peer: &mut Option<SocketAddr>, bytes: &[u8], to: SocketAddr) -> std::io::Result<()> {
        let sent = if self.connect_to(peer, to) { self.udp.try_send(bytes) } else { self.udp.try_send_to(bytes, to) };
        sent.map(drop).inspect_err(|e| tracing::debug!(error = %e, "udp send failed"))
    }

    /// Connects the socket to `to` unless it is already: whether it is.
    fn connect_to(&self, peer: &mut Option<SocketAddr>, to: SocketAddr) -> bool {
        if *peer != Some(to) {
            match self.udp.connect(to) {
                Ok(()) => *peer = Some(to),
                Err(e) => tracing::debug!(error = %e, "udp connect failed"),
            }
        }
        *peer == Some(to)
    }

    /// Asks the CPU to start loading what [`send_due`](Self::send_due)
    /// reads first: the call's shared state (lock, core, connection) and,
    /// unless the datagram goes into the batch by descriptor, its socket.
    /// The wheel asks for the next call's while it sends the current
    /// one's, so that a thousand calls' state, far larger than the caches,
    /// is not read one cache miss at a time.
    pub(crate) fn prefetch(&self, batching: bool) {
        prefetch((self as *const Self).cast(), std::mem::size_of::<Self>());
        if let (false, Udp::Runtime(udp)) = (batching && self.fd.is_some(), &self.udp) {
            prefetch((&**udp as *const dyn AsyncUdpSocket).cast(), 64);
        }
    }

    /// Sends the frame of a due slot (queued in `batch` as `tag` when the
    /// batch takes it); says where the call goes next.
    pub(crate) fn send_due(&self, now: Instant, batch: &mut SendBatch, tag: usize) -> Outcome {
        // The call's task may hold the lock for a while (a TLS read, an MLS
        // commit): look again next tick rather than hold up every call.
        let mut g = match self.locked.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::WouldBlock) => return Outcome::Busy,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let Locked { core, peer, armed } = &mut *g;
        for _ in 0..self.send_errors.swap(0, Ordering::Relaxed) {
            core.send_failed();
        }
        core.pull_frame(now);
        let Some(slot) = core.next_slot(now) else { return Outcome::Leave };
        if slot > now {
            return Outcome::Keep(slot);
        }
        if !core.connection().is_speaking() || core.connection().is_closed() {
            return Outcome::Leave;
        }
        let Some(to) = core.send_slot(now) else { return Outcome::Leave };
        let queued = self.connect_to(peer, to) && self.fd.is_some_and(|fd| batch.push(tag, fd, core.datagram()));
        if !queued && self.transmit(peer, core.datagram(), to).is_err() {
            core.send_failed();
        }
        // The frame pushed "speaking stops" back; anything else (a
        // heartbeat now nearer than that, an output) needs the task.
        if core.has_io() || core.deadline_while_flowing() != *armed {
            self.wake_task();
        }
        // A producer feeding in real time has its next frame in by the next
        // slot: look again then, and leave only if there is none.
        core.pull_frame(now);
        match core.next_slot(now).or_else(|| core.upcoming_slot()) {
            Some(slot) => Outcome::Keep(slot),
            None => Outcome::Leave,
        }
    }

    /// Hands the datagrams waiting on the call's socket to its core (the
    /// wheel's poller said there are some), and wakes the call's task if
    /// that gave it something to do.
    pub(crate) fn receive_due(&self, now: Instant, bufs: &mut RecvBufs) {
        let Some(fd) = self.fd else { return };
        // Busy: the poller reports the socket again next tick.
        let mut g = match self.locked.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::WouldBlock) => return,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let Locked { core, armed, .. } = &mut *g;
        // One burst: what is left the poller reports again next tick.
        read_bursts(fd, bufs, core, now, 1);
        // The task's timer is set for `armed`: it must hear of outputs and
        // of any deadline now nearer than that (one later costs it an early
        // wake-up only).
        let nearer = match (core.deadline_while_flowing(), *armed) {
            (Some(d), Some(a)) => d < a,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if core.has_io() || nearer {
            drop(g);
            self.wake_task();
        }
    }

    /// Hands the datagrams waiting on a socket the wheel reads to `core`
    /// now, from the call's task (which holds the lock), so that they are
    /// handled before the websocket message it is about to handle.
    pub(crate) fn receive_waiting(&self, core: &mut CallCore, now: Instant) {
        let (Udp::Wheel(_), Some(fd)) = (&self.udp, self.fd) else { return };
        // Bounded: a socket flooded faster than it is read cannot hold the
        // task here.
        TASK_BUFS.with_borrow_mut(|bufs| read_bursts(fd, bufs, core, now, 4));
    }

    /// Hands the call back to its task.
    pub(crate) fn leave_wheel(&self) {
        self.in_wheel.store(false, Ordering::Release);
        self.wake_task();
    }
}

/// A hint to the CPU to bring the `len` bytes at `p` into its caches. It
/// reads nothing in the language's sense and cannot fault, whatever `p`
/// is; elsewhere than x86-64 it does nothing.
#[inline]
#[allow(unsafe_code, reason = "the prefetch intrinsic is unsafe only for its target-feature requirement")]
fn prefetch(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for offset in (0..len).step_by(64) {
        // SAFETY: `_mm_prefetch` needs SSE, which every x86-64 CPU has
        // (it is in the target's baseline); a prefetch never dereferences
        // its address and never faults, so any pointer is fine (and
        // `wrapping_add` keeps computing it defined).
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.wrapping_add(offset).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

/// Where a call goes after its turn in the wheel.
pub(crate) enum Outcome {
    /// Stays, next due at this slot.
    Keep(Instant),
    /// Its lock was busy: the next tick.
    Busy,
    /// Back to its task.
    Leave,
}
