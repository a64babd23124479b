//! When a datagram reached the server's socket, by the kernel's clock
//! (`SO_TIMESTAMPNS`), for the sink's send-gap figures; and a receive
//! buffer past the system's cap, for a sink that takes many calls.
//!
//! The sink measures the gaps between a sender's packets. Timed when the
//! server's task reads them, the gaps include the server's own delays: on
//! a machine the clients keep busy, a read that waits 10 ms for a core
//! turns two 20 ms gaps into 30 and 10. The kernel stamps each datagram as
//! it is queued on the socket, which on loopback is the moment it was
//! sent, so the gaps are the sender's own. Elsewhere than 64-bit Linux with
//! glibc (whose `cmsghdr` layout the parser knows), or
//! when the option is refused, datagrams are timed as they are read.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Maps the kernel's wall-clock stamps onto `Instant`s: only differences
/// between stamps matter, and these keep them.
#[derive(Debug)]
pub(crate) struct Arrivals {
    stamped: bool,
    anchor: (Instant, SystemTime),
}

impl Arrivals {
    /// Asks the kernel to stamp `udp`'s datagrams; reads are timed by the
    /// clock instead if it will not.
    pub(crate) fn new(udp: &UdpSocket) -> Self {
        let stamped = sys::enable(udp).inspect_err(|e| tracing::debug!(error = %e, "no kernel timestamps")).is_ok();
        Arrivals { stamped, anchor: (now(), SystemTime::now()) }
    }

    /// Reads one datagram without waiting: its length, its source and when
    /// it arrived.
    pub(crate) fn try_recv(&self, udp: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Instant)> {
        if !self.stamped {
            let (n, from) = udp.try_recv_from(buf)?;
            return Ok((n, from, now()));
        }
        let (n, from, stamp) = udp.try_io(Interest::READABLE, || sys::recv(udp, buf))?;
        let at = match stamp {
            Some(t) => self.instant_of(t),
            None => now(),
        };
        Ok((n, from, at))
    }

    fn instant_of(&self, t: SystemTime) -> Instant {
        let (i, s) = self.anchor;
        match t.duration_since(s) {
            Ok(after) => i.checked_add(after).unwrap_or(i),
            Err(e) => i.checked_sub(e.duration()).unwrap_or(i),
        }
    }
}

/// Sets `socket`'s receive buffer past `net.core.rmem_max`, which needs
/// `CAP_NET_ADMIN` (Linux only): a sink taking a machine's worth of calls
/// on one socket rides out its own scheduling stalls instead of dropping.
pub(crate) fn force_recv_buffer(socket: &socket2::Socket, bytes: usize) -> io::Result<()> {
    sys::force_recv_buffer(socket, bytes)
}

/// The runner's clock (tokio's, which tests may pause).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
mod sys {
    use super::*;
    use std::os::fd::AsRawFd;

    /// `struct cmsghdr` on 64-bit Linux: length (8 bytes), level, type,
    /// then the data, 8-byte aligned.
    const CMSG_HEADER: usize = 16;
    /// `struct timespec`: seconds and nanoseconds, 8 bytes each.
    const TIMESPEC: usize = 16;

    pub(super) fn enable(udp: &UdpSocket) -> io::Result<()> {
        set_int(udp.as_raw_fd(), libc::SO_TIMESTAMPNS, 1)
    }

    pub(super) fn force_recv_buffer(socket: &socket2::Socket, bytes: usize) -> io::Result<()> {
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        set_int(socket.as_raw_fd(), libc::SO_RCVBUFFORCE, bytes)
    }

    /// Sets an `int` socket option at `SOL_SOCKET`.
    fn set_int(fd: std::os::fd::RawFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
        // SAFETY: a descriptor the caller holds open, and a pointer to an
        // int that lives across the call, with its size.
        #[allow(unsafe_code, reason = "setsockopt has no safe wrapper for these options")]
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    pub(super) fn recv(udp: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<SystemTime>)> {
        let mut control = [0u64; 8]; // 64 bytes, aligned as cmsghdr needs
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut controllen = 0usize;
        #[allow(unsafe_code, reason = "recvmsg with a control buffer has no safe wrapper")]
        // SAFETY: `try_init` hands a sockaddr_storage and its length, which
        // recvmsg fills (msg_namelen is set to what it wrote); the iovec
        // points at `buf` and the control pointer at `control`, both
        // borrowed mutably for the call and large as given.
        let (n, from) = unsafe {
            socket2::SockAddr::try_init(|storage, len| {
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_name = storage.cast();
                msg.msg_namelen = *len;
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = std::mem::size_of_val(&control);
                let n = libc::recvmsg(udp.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT);
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                *len = msg.msg_namelen;
                controllen = msg.msg_controllen;
                Ok(n as usize)
            })?
        };
        let from = from.as_socket().ok_or_else(|| io::Error::other("datagram from a non-IP address"))?;
        let mut bytes = [0u8; 64];
        for (chunk, w) in bytes.chunks_exact_mut(8).zip(control) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        Ok((n, from, stamp(&bytes[..controllen.min(bytes.len())])))
    }

    /// The `SCM_TIMESTAMPNS` message among the control messages, if any.
    fn stamp(mut c: &[u8]) -> Option<SystemTime> {
        let word =
            |b: &[u8], at: usize| -> Option<u64> { Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?)) };
        let int =
            |b: &[u8], at: usize| -> Option<i32> { Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?)) };
        while c.len() >= CMSG_HEADER {
            let len = usize::try_from(word(c, 0)?).ok()?;
            if len < CMSG_HEADER || len > c.len() {
                return None;
            }
            if int(c, 8)? == libc::SOL_SOCKET && int(c, 12)? == libc::SCM_TIMESTAMPNS && len >= CMSG_HEADER + TIMESPEC {
                let secs = word(c, CMSG_HEADER)?;
                let nanos = u32::try_from(word(c, CMSG_HEADER + 8)?).ok()?;
                return SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos));
            }
            c = c.get(len.next_multiple_of(8).min(c.len())..)?;
        }
        None
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[tokio::test]
        async fn datagrams_carry_the_kernels_arrival_time() {
            let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let arrivals = Arrivals::new(&rx);
            assert!(arrivals.stamped, "SO_TIMESTAMPNS is on");
            let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut buf = [0u8; 16];
            // The kernel turns stamping on for the system a moment after the
            // first socket asks (a deferred static key); until then a
            // datagram is stamped when it is read. Bounded tries.
            let mut stamped_on_arrival = false;
            for _ in 0..40 {
                let sent_at = Instant::now();
                tx.send_to(b"one", rx.local_addr().unwrap()).unwrap();
                // Read well after arrival: the stamp is the arrival, not the read.
                tokio::time::sleep(Duration::from_millis(50)).await;
                rx.readable().await.unwrap();
                let (n, from, at) = arrivals.try_recv(&rx, &mut buf).unwrap();
                assert_eq!(&buf[..n], b"one");
                assert_eq!(from, tx.local_addr().unwrap());
                if Instant::now().duration_since(at) >= Duration::from_millis(40) {
                    // The wall clock mapped back lands near the send (a
                    // clock step between anchor and stamp aside).
                    let off = if at > sent_at { at - sent_at } else { sent_at - at };
                    assert!(off < Duration::from_millis(20), "{off:?}");
                    stamped_on_arrival = true;
                    break;
                }
            }
            assert!(stamped_on_arrival, "datagrams stamped on arrival");
            // Nothing more: WouldBlock, not a hang.
            let e = arrivals.try_recv(&rx, &mut buf).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        }

        #[test]
        fn control_messages_are_parsed_without_trusting_their_lengths() {
            assert_eq!(stamp(&[]), None);
            // A header claiming less than itself: stop, do not loop.
            let mut bad = [0u8; 32];
            bad[..8].copy_from_slice(&4u64.to_ne_bytes());
            assert_eq!(stamp(&bad), None);
            // A header claiming more than there is: stop.
            let mut long = [0u8; 32];
            long[..8].copy_from_slice(&1000u64.to_ne_bytes());
            long[8..12].copy_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
            long[12..16].copy_from_slice(&libc::SCM_TIMESTAMPNS.to_ne_bytes());
            assert_eq!(stamp(&long[..20]), None);
            // A good one after another kind.
            let mut two = Vec::new();
            two.extend_from_slice(&20u64.to_ne_bytes());
            two.extend_from_slice(&0i32.to_ne_bytes());
            two.extend_from_slice(&7i32.to_ne_bytes());
            two.extend_from_slice(&[0u8; 8]); // 4 data bytes, padded to 8
            two.extend_from_slice(&32u64.to_ne_bytes());
            two.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
            two.extend_from_slice(&libc::SCM_TIMESTAMPNS.to_ne_bytes());
            two.extend_from_slice(&5u64.to_ne_bytes());
            two.extend_from_slice(&6u64.to_ne_bytes());
            assert_eq!(stamp(&two), Some(SystemTime::UNIX_EPOCH + Duration::new(5, 6)));
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")))]
mod sys {
    use super::*;

    pub(super) fn enable(_udp: &UdpSocket) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "kernel timestamps on 64-bit Linux only"))
    }

    pub(super) fn force_recv_buffer(_socket: &socket2::Socket, _bytes: usize) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "SO_RCVBUFFORCE on Linux only"))
    }

    pub(super) fn recv(udp: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<SystemTime>)> {
        udp.try_recv_from(buf).map(|(n, from)| (n, from, None))
    }
}
