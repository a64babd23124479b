//! [`AsyncIoRuntime`]: the driver layer's runtime seam on async-io.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use async_executor::Executor;
use async_io::{Async, Timer};
use voice_driver::runtime::{AsyncTimer, AsyncUdpSocket, BoxFuture, ByteStream, Runtime};

type Spawner = Arc<dyn Fn(BoxFuture<()>) + Send + Sync>;

/// async-io's reactor and timers, async-net's TCP, and an executor: by
/// default this crate's own (one thread per core, started on first use).
#[derive(Clone)]
pub struct AsyncIoRuntime {
    spawner: Option<Spawner>,
}

impl std::fmt::Debug for AsyncIoRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let executor = if self.spawner.is_some() { "application's" } else { "built-in" };
        f.debug_struct("AsyncIoRuntime").field("executor", &executor).finish()
    }
}

impl Default for AsyncIoRuntime {
    fn default() -> Self {
        AsyncIoRuntime::new()
    }
}

impl AsyncIoRuntime {
    /// Calls run on the built-in executor.
    pub fn new() -> Self {
        AsyncIoRuntime { spawner: None }
    }

    /// Calls run where `spawn` puts them, e.g.
    /// `|f| smol::spawn(f).detach()` or `|f| { async_std::task::spawn(f); }`.
    pub fn with_spawner(spawn: impl Fn(BoxFuture<()>) + Send + Sync + 'static) -> Self {
        AsyncIoRuntime { spawner: Some(Arc::new(spawn)) }
    }
}

/// The built-in executor, run by one thread per core.
fn executor() -> &'static Executor<'static> {
    static EXECUTOR: Executor<'static> = Executor::new();
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        for i in 0..threads {
            let spawned = std::thread::Builder::new()
                .name(format!("voice-driver-{i}"))
                .spawn(|| async_io::block_on(EXECUTOR.run(std::future::pending::<()>())));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a voice executor thread");
            }
        }
    });
    &EXECUTOR
}

impl Runtime for AsyncIoRuntime {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(IoTimer(Timer::at(at)))
    }

    fn spawn(&self, future: BoxFuture<()>) {
        match &self.spawner {
            Some(spawn) => spawn(future),
            None => executor().spawn(future).detach(),
        }
    }

    fn bind_udp(&self, addr: SocketAddr) -> io::Result<Box<dyn AsyncUdpSocket>> {
        Ok(Box::new(Udp { socket: Async::<std::net::UdpSocket>::bind(addr)?, hot: AtomicBool::new(false) }))
    }

    fn connect_tcp(&self, host: String, port: u16) -> BoxFuture<io::Result<Box<dyn ByteStream>>> {
        Box::pin(async move {
            let tcp = async_net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            Ok(Box::new(tcp) as Box<dyn ByteStream>)
        })
    }
}

#[derive(Debug)]
struct IoTimer(Timer);

impl AsyncTimer for IoTimer {
    fn reset(mut self: Pin<&mut Self>, at: Instant) {
        self.0.set_at(at);
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

/// A UDP socket on the reactor. `hot`: the last receive found a datagram,
/// so the next poll tries the socket first; otherwise the reactor is asked
/// first, so that a wake for something else costs no receive syscall.
#[derive(Debug)]
struct Udp {
    socket: Async<std::net::UdpSocket>,
    hot: AtomicBool,
}

impl AsyncUdpSocket for Udp {
    fn poll_recv_from(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<(usize, SocketAddr)>> {
        loop {
            if !self.hot.load(Ordering::Relaxed) {
                match self.socket.poll_readable(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            match self.socket.get_ref().recv_from(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !self.hot.swap(false, Ordering::Relaxed) {
                        // The reactor said readable, the socket said not:
                        // ask the reactor again (it registers the waker).
                        continue;
                    }
                }
                r => {
                    self.hot.store(r.is_ok(), Ordering::Relaxed);
                    return Poll::Ready(r);
                }
            }
        }
    }

    fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.socket.get_ref().send_to(buf, to)
    }

    fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.socket.get_ref().send(buf)
    }

    fn connect(&self, to: SocketAddr) -> io::Result<()> {
        self.socket.get_ref().connect(to)
    }

    #[cfg(unix)]
    fn as_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(std::os::fd::AsFd::as_fd(self.socket.get_ref()))
    }
}
