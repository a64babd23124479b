//! The runtime seam: what an adapter (voice-tokio, voice-async-std)
//! implements so that the driver layer can run on its executor. Shaped
//! like quinn's `Runtime`: object-safe, so that handles and calls are not
//! generic over the runtime.
//!
//! Four things only: a clock and timers, spawning, a UDP socket, and a TCP
//! byte stream (TLS and the websocket run above it, in this crate, the same
//! on every runtime).

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// A boxed future that the runtime runs to completion.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// An async runtime as the driver layer needs it.
pub trait Runtime: Send + Sync + Debug + 'static {
    /// The runtime's clock (so that a runtime's paused time drives calls too).
    fn now(&self) -> Instant;

    /// A timer that fires at `at`.
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>>;

    /// Runs `future` in the background.
    fn spawn(&self, future: BoxFuture<()>);

    /// A UDP socket bound to `addr` (port 0 picks one).
    fn bind_udp(&self, addr: SocketAddr) -> io::Result<Box<dyn AsyncUdpSocket>>;

    /// Opens a TCP connection to `host:port` (resolving the name), with
    /// Nagle off.
    fn connect_tcp(&self, host: String, port: u16) -> BoxFuture<io::Result<Box<dyn ByteStream>>>;
}

/// A resettable timer.
pub trait AsyncTimer: Send + Debug {
    /// Moves the deadline to `at`.
    fn reset(self: Pin<&mut Self>, at: Instant);
    /// Ready once the deadline has passed.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
}

/// A non-blocking UDP socket registered with the runtime's reactor.
pub trait AsyncUdpSocket: Send + Sync + Debug {
    /// Receives one datagram, or registers for readiness.
    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>>;
    /// Sends one datagram now, without waiting (a full send buffer is an
    /// error, `WouldBlock`, and the datagram is dropped: audio is never
    /// queued behind the kernel).
    fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;
    /// Sends one datagram to the connected peer now, without waiting.
    fn try_send(&self, buf: &[u8]) -> io::Result<usize>;
    /// Connects the socket to `to`: the kernel then drops datagrams from
    /// anyone else, and sends skip the per-datagram route lookup.
    fn connect(&self, to: SocketAddr) -> io::Result<()>;
    /// The socket's descriptor, if the driver may send on it directly:
    /// the send wheel then hands a tick's datagrams to the kernel in one
    /// batch (io_uring on Linux, see [`DriverConfig::batched_send`]). The
    /// descriptor must be the one `try_send` sends on, non-blocking, and
    /// stay open while the socket lives. `None`, the default, sends every
    /// datagram with [`try_send`](Self::try_send).
    ///
    /// [`DriverConfig::batched_send`]: crate::DriverConfig::batched_send
    #[cfg(unix)]
    fn as_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

/// A TCP stream as futures-io sees it.
pub trait ByteStream: futures_io::AsyncRead + futures_io::AsyncWrite + Send + Unpin + 'static {}

impl<T: futures_io::AsyncRead + futures_io::AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

/// Waits for `duration` on `runtime`'s clock.
pub async fn sleep(runtime: &dyn Runtime, duration: std::time::Duration) {
    let mut timer = runtime.new_timer(runtime.now() + duration);
    std::future::poll_fn(|cx| timer.as_mut().poll(cx)).await
}

/// Runs `future`, or gives up after `timeout` on `runtime`'s clock.
pub async fn timeout<F: Future>(
    runtime: &dyn Runtime,
    timeout: std::time::Duration,
    future: F,
) -> Result<F::Output, Elapsed> {
    let mut timer = runtime.new_timer(runtime.now() + timeout);
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        timer.as_mut().poll(cx).map(|()| Err(Elapsed))
    })
    .await
}

/// A [`timeout`] passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct Elapsed;
