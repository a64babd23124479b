//! Received datagrams of many calls, collected by the send wheel once a
//! tick instead of a reactor event, a task wake-up and two receive system
//! calls per datagram.
//!
//! On Linux the wheel keeps its calls' UDP sockets in an epoll set of its
//! own (level-triggered, never waited on: asked with a zero timeout once a
//! wake-up), and reads each ready socket's datagrams with one `recvmmsg`.
//! The sockets are not on the runtime's reactor, so a datagram arriving
//! wakes no thread: at a thousand receiving calls that was most of the
//! receive cost. Elsewhere [`Poller::new`] fails and every call receives
//! from its own task, on the runtime's reactor, as before.

/// Datagrams read from one socket per system call, at most.
pub(crate) const BURST: usize = 8;
/// Longest datagram read (Discord's are under 1,500 bytes).
pub(crate) const DATAGRAM_LEN: usize = 2048;

/// The receive buffers one wheel reuses: [`BURST`] datagrams.
pub(crate) struct RecvBufs {
    bufs: Box<[[u8; DATAGRAM_LEN]; BURST]>,
}

impl std::fmt::Debug for RecvBufs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBufs").finish_non_exhaustive()
    }
}

impl RecvBufs {
    pub(crate) fn new() -> Self {
        RecvBufs { bufs: Box::new([[0; DATAGRAM_LEN]; BURST]) }
    }
}

#[cfg(target_os = "linux")]
pub(crate) use linux::Poller;

#[cfg(not(target_os = "linux"))]
pub(crate) use other::Poller;

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    use super::{BURST, DATAGRAM_LEN, RecvBufs};

    /// Ready sockets one look reports at most; the rest are reported at the
    /// next (the set is level-triggered).
    const EVENTS: usize = 512;

    /// An epoll set of UDP sockets, each with a key.
    #[derive(Debug)]
    pub(crate) struct Poller {
        epoll: OwnedFd,
    }

    impl Poller {
        #[allow(unsafe_code, reason = "epoll_create1 has no safe wrapper in std")]
        pub(crate) fn new() -> io::Result<Poller> {
            // SAFETY: no pointer arguments; the result is checked.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just returned by epoll_create1 and nothing
            // else owns it.
            Ok(Poller { epoll: unsafe { OwnedFd::from_raw_fd(fd) } })
        }

        /// Watches `fd` for datagrams, reported under `key`. The socket
        /// must stay open until [`remove`](Self::remove)d.
        #[allow(unsafe_code, reason = "epoll_ctl has no safe wrapper in std")]
        pub(crate) fn add(&self, fd: RawFd, key: u64) -> io::Result<()> {
            let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: key };
            // SAFETY: `event` is a valid epoll_event for the duration of
            // the call; the descriptors are plain integers to the kernel.
            let r = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
            if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
        }

        /// Stops watching `fd` (before it is closed).
        #[allow(unsafe_code, reason = "epoll_ctl has no safe wrapper in std")]
        pub(crate) fn remove(&self, fd: RawFd) {
            let mut event = libc::epoll_event { events: 0, u64: 0 };
            // SAFETY: as in `add` (old kernels want a non-null event).
            let r = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut event) };
            if r < 0 {
                tracing::debug!(error = %io::Error::last_os_error(), "epoll_ctl del failed");
            }
        }

        /// The keys of the sockets that hold datagrams now, without waiting.
        #[allow(unsafe_code, reason = "epoll_wait has no safe wrapper in std")]
        pub(crate) fn ready(&self, keys: &mut Vec<u64>) -> io::Result<()> {
            keys.clear();
            let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
            loop {
                // SAFETY: `events` holds EVENTS entries, which the kernel
                // fills up to the count it returns.
                let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), EVENTS as i32, 0) };
                if n >= 0 {
                    let n = usize::try_from(n).unwrap_or(0).min(EVENTS);
                    keys.extend(events[..n].iter().map(|e| e.u64));
                    return Ok(());
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }

    /// Reads up to [`BURST`] datagrams from the non-blocking socket `fd`
    /// in one system call and hands each to `each` with its source.
    /// `Ok(0)` when none was waiting.
    #[allow(unsafe_code, reason = "recvmmsg has no safe wrapper in std")]
    pub(crate) fn recv_burst(
        fd: RawFd,
        bufs: &mut RecvBufs,
        mut each: impl FnMut(SocketAddr, &mut [u8]),
    ) -> io::Result<usize> {
        // SAFETY (zeroed): all-zero is a valid value of these C structs.
        let mut addrs: [libc::sockaddr_storage; BURST] = unsafe { std::mem::zeroed() };
        let mut iovs: [libc::iovec; BURST] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BURST] = unsafe { std::mem::zeroed() };
        for i in 0..BURST {
            iovs[i] = libc::iovec { iov_base: bufs.bufs[i].as_mut_ptr().cast(), iov_len: DATAGRAM_LEN };
            msgs[i].msg_hdr.msg_name = (&raw mut addrs[i]).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msgs[i].msg_hdr.msg_iov = &raw mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        let n = loop {
            // SAFETY: each header points at its own iovec (one buffer of
            // DATAGRAM_LEN bytes in `bufs`) and its own sockaddr_storage,
            // all alive and unaliased for the call; the kernel writes at
            // most those lengths. MSG_DONTWAIT: it never blocks.
            let n = unsafe {
                libc::recvmmsg(fd, msgs.as_mut_ptr(), BURST as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
            };
            if n >= 0 {
                break usize::try_from(n).unwrap_or(0).min(BURST);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(e),
            }
        };
        for i in 0..n {
            let len = (msgs[i].msg_len as usize).min(DATAGRAM_LEN);
            // A truncated datagram is not one we sent for: skip it.
            if msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                continue;
            }
            if let Some(from) = to_socket_addr(&addrs[i], msgs[i].msg_hdr.msg_namelen) {
                each(from, &mut bufs.bufs[i][..len]);
            }
        }
        Ok(n)
    }

    /// The address the kernel wrote, if it is IPv4 or IPv6.
    #[allow(unsafe_code, reason = "reading a sockaddr_storage as the family it holds")]
    fn to_socket_addr(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = len as usize;
        match i32::from(s.ss_family) {
            libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in,
                // which fits in it and needs no more alignment than it has.
                let a: &libc::sockaddr_in = unsafe { &*(s as *const libc::sockaddr_storage).cast() };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6.
                let a: &libc::sockaddr_in6 = unsafe { &*(s as *const libc::sockaddr_storage).cast() };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id)))
            }
            _ => None,
        }
    }
}

#[cfg(target_os = "linux")]
pub(crate) use linux::recv_burst;

#[cfg(not(target_os = "linux"))]
mod other {
    use std::io;

    /// No receive polling here: calls receive from their tasks.
    #[derive(Debug)]
    pub(crate) struct Poller {
        never: std::convert::Infallible,
    }

    impl Poller {
        pub(crate) fn new() -> io::Result<Poller> {
            Err(io::Error::new(io::ErrorKind::Unsupported, "no receive polling on this platform"))
        }

        pub(crate) fn add(&self, _fd: crate::send_batch::Fd, _key: u64) -> io::Result<()> {
            match self.never {}
        }

        pub(crate) fn remove(&self, _fd: crate::send_batch::Fd) {
            match self.never {}
        }

        pub(crate) fn ready(&self, _keys: &mut Vec<u64>) -> io::Result<()> {
            match self.never {}
        }
    }
}

/// Elsewhere there is nothing to read this way (no [`Poller`] exists).
#[cfg(not(target_os = "linux"))]
pub(crate) fn recv_burst(
    fd: crate::send_batch::Fd,
    _bufs: &mut RecvBufs,
    _each: impl FnMut(std::net::SocketAddr, &mut [u8]),
) -> std::io::Result<usize> {
    let _ = fd;
    Ok(0)
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    fn socket() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    /// A ready socket is reported under its key until it is drained; its
    /// datagrams come whole, in order, with their source, a burst at a
    /// time; a removed socket is not reported.
    #[test]
    fn the_poller_reports_ready_sockets_and_a_burst_reads_them() {
        let poller = Poller::new().unwrap();
        let (a, b) = (socket(), socket());
        poller.add(a.as_raw_fd(), 7).unwrap();
        poller.add(b.as_raw_fd(), 9).unwrap();
        let mut keys = Vec::new();
        poller.ready(&mut keys).unwrap();
        assert!(keys.is_empty());
        let peer = socket();
        let count = BURST + 3;
        for i in 0..count {
            peer.send_to(&[i as u8; 3], a.local_addr().unwrap()).unwrap();
        }
        peer.send_to(b"b", b.local_addr().unwrap()).unwrap();
        // Loopback delivers at once as a rule; allow for a moment.
        for _ in 0..200 {
            poller.ready(&mut keys).unwrap();
            if keys.len() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        keys.sort();
        assert_eq!(keys, vec![7, 9]);
        let mut bufs = RecvBufs::new();
        let mut got = Vec::new();
        let n = recv_burst(a.as_raw_fd(), &mut bufs, |from, d| got.push((from, d.to_vec()))).unwrap();
        assert_eq!(n, BURST);
        // Still ready: level-triggered.
        poller.ready(&mut keys).unwrap();
        assert!(keys.contains(&7));
        let n = recv_burst(a.as_raw_fd(), &mut bufs, |from, d| got.push((from, d.to_vec()))).unwrap();
        assert_eq!(n, 3);
        assert_eq!(recv_burst(a.as_raw_fd(), &mut bufs, |_, _| panic!("nothing is left")).unwrap(), 0);
        let want: Vec<_> = (0..count).map(|i| (peer.local_addr().unwrap(), vec![i as u8; 3])).collect();
        assert_eq!(got, want);
        poller.remove(b.as_raw_fd());
        poller.ready(&mut keys).unwrap();
        assert!(keys.is_empty(), "{keys:?}");
    }

    /// A datagram longer than the buffer is dropped, not handed on cut.
    #[test]
    fn a_truncated_datagram_is_skipped() {
        let a = socket();
        let peer = socket();
        peer.send_to(&vec![1u8; DATAGRAM_LEN + 10], a.local_addr().unwrap()).unwrap();
        peer.send_to(b"ok", a.local_addr().unwrap()).unwrap();
        let mut bufs = RecvBufs::new();
        let mut got = Vec::new();
        let n = recv_burst(a.as_raw_fd(), &mut bufs, |_, d| got.push(d.to_vec())).unwrap();
        assert_eq!(n, 2);
        assert_eq!(got, vec![b"ok".to_vec()]);
    }

    /// IPv6 sources come back as they were.
    #[test]
    fn ipv6_sources_are_read() {
        let Ok(a) = UdpSocket::bind("[::1]:0") else { return }; // no IPv6 loopback here
        a.set_nonblocking(true).unwrap();
        let peer = UdpSocket::bind("[::1]:0").unwrap();
        peer.send_to(b"six", a.local_addr().unwrap()).unwrap();
        let mut bufs = RecvBufs::new();
        let mut got = Vec::new();
        for _ in 0..100 {
            if recv_burst(a.as_raw_fd(), &mut bufs, |from, d| got.push((from, d.to_vec()))).unwrap() > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got, vec![(peer.local_addr().unwrap(), b"six".to_vec())]);
    }
}
