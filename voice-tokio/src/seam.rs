//! [`TokioRuntime`]: the driver layer's runtime seam on tokio.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use voice_driver::runtime::{AsyncTimer, AsyncUdpSocket, BoxFuture, ByteStream, Runtime};

/// Tokio as the driver layer's runtime: tokio's clock (so paused-time tests
/// drive calls too), timers, sockets, and `tokio::spawn` (call it from
/// within a runtime).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(Timer(Box::pin(tokio::time::sleep_until(at.into()))))
    }

    fn spawn(&self, future: BoxFuture<()>) {
        tokio::spawn(future);
    }

    fn bind_udp(&self, addr: SocketAddr) -> io::Result<Box<dyn AsyncUdpSocket>> {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        Ok(Box::new(Udp::new(socket)?))
    }

    fn connect_tcp(&self, host: String, port: u16) -> BoxFuture<io::Result<Box<dyn ByteStream>>> {
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            Ok(Box::new(Tcp(tcp)) as Box<dyn ByteStream>)
        })
    }
}

#[derive(Debug)]
struct Timer(Pin<Box<tokio::time::Sleep>>);

impl AsyncTimer for Timer {
    fn reset(mut self: Pin<&mut Self>, at: Instant) {
        self.0.as_mut().reset(at.into());
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

/// A UDP socket on tokio's reactor, registered for reading only (on
/// Unix). Sends never wait (a full buffer drops the datagram), so nothing
/// needs write readiness; registered for it, every datagram sent would
/// come back as a reactor event when the kernel frees its buffer: at a
/// thousand calls, a tenth of the process's CPU spent on wake-ups nobody
/// waits for.
#[cfg(unix)]
#[derive(Debug)]
struct Udp(tokio::io::unix::AsyncFd<std::net::UdpSocket>);

#[cfg(unix)]
impl Udp {
    #[allow(unsafe_code)]
    fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        // SAFETY: the descriptor belongs to `socket`, which the `AsyncFd`
        // owns: it stays open while registered and is closed only after
        // the `AsyncFd` deregisters it on drop.
        unsafe { tokio::io::unix::AsyncFd::register_with_interest(socket, tokio::io::Interest::READABLE) }
            .map(Udp)
            .map_err(io::Error::from)
    }
}

#[cfg(unix)]
impl AsyncUdpSocket for Udp {
    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>> {
        loop {
            let mut ready = std::task::ready!(self.0.poll_read_ready(cx))?;
            match ready.try_io(|s| s.get_ref().recv_from(buf)) {
                Ok(r) => return Poll::Ready(r),
                // Not readable after all: readiness was cleared; ask again
                // (which registers the waker).
                Err(_would_block) => {}
            }
        }
    }

    fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.get_ref().send_to(buf, to)
    }

    fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.get_ref().send(buf)
    }

    fn connect(&self, to: SocketAddr) -> io::Result<()> {
        self.0.get_ref().connect(to)
    }

    fn as_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(std::os::fd::AsFd::as_fd(self.0.get_ref()))
    }
}

/// Elsewhere, tokio's own UDP socket.
#[cfg(not(unix))]
#[derive(Debug)]
struct Udp(tokio::net::UdpSocket);

#[cfg(not(unix))]
impl Udp {
    fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        tokio::net::UdpSocket::from_std(socket).map(Udp)
    }
}

#[cfg(not(unix))]
impl AsyncUdpSocket for Udp {
    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>> {
        let mut buf = tokio::io::ReadBuf::new(buf);
        self.0.poll_recv_from(cx, &mut buf).map_ok(|from| (buf.filled().len(), from))
    }

    fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.try_send_to(buf, to)
    }

    fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_send(buf)
    }

    fn connect(&self, to: SocketAddr) -> io::Result<()> {
        socket2::SockRef::from(&self.0).connect(&to.into())
    }
}

/// A tokio TCP stream as a futures-io stream.
#[derive(Debug)]
struct Tcp(tokio::net::TcpStream);

impl futures_io::AsyncRead for Tcp {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut buf = tokio::io::ReadBuf::new(buf);
        tokio::io::AsyncRead::poll_read(Pin::new(&mut self.0), cx, &mut buf).map_ok(|()| buf.filled().len())
    }
}

impl futures_io::AsyncWrite for Tcp {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut self.0), cx)
    }
}
