//! The tokio runner: real sockets on 127.0.0.1 around the core.
//!
//! Tasks: one driver that feeds the core and keeps its timer (`driver.rs`),
//! one UDP receiver (`udp.rs`), a listener for ws and one for wss, and one
//! task per websocket (`ws.rs`). Socket tasks feed the driver over bounded
//! channels. The core sits behind a mutex so that the API ([`Server::join`],
//! [`Server::inject`], ...) can be synchronous; after an API call the driver
//! is woken to drain what the call produced.
//!
//! In sink mode ([`RunnerConfig::sink`]) the UDP receiver opens and counts
//! the RTP of sessions alone in their room itself and drops it, so that a
//! load of thousands of senders costs no channel hop, no copy and no core
//! lock per packet ([`SinkStats`]).

mod arrival;
mod driver;
mod log;
mod sink;
mod tls;
mod udp;
mod ws;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use voice_proto::wire::{GatewayVersion, Snowflake, WsFrame};

use crate::{ConnId, Fault, JoinInfo, MockServer, ReceivedFrame, ServerConfig, ServerStats};
use sink::SinkTable;
pub use sink::{GapHistogram, SinkCounters, SinkStats};

/// Errors of the runner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket could not be bound or used.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The certificate could not be made.
    #[error("certificate: {0}")]
    Certificate(String),
    /// TLS could not be set up.
    #[error("tls: {0}")]
    Tls(String),
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}

/// Configuration of [`Server`].
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The core's configuration. `udp_addr` and `ws_endpoint` are replaced
    /// by the addresses actually bound.
    pub server: ServerConfig,
    /// Address to bind (default 127.0.0.1).
    pub bind: IpAddr,
    /// Websocket port (0 picks a free one).
    pub ws_port: u16,
    /// TLS websocket port (0 picks a free one).
    pub wss_port: u16,
    /// UDP port (0 picks a free one).
    pub udp_port: u16,
    /// Whether to serve wss at all.
    pub tls: bool,
    /// Faults injected at start.
    pub faults: Vec<Fault>,
    /// JSON-lines log of every frame, close, event, and RTP counts.
    pub log: Option<PathBuf>,
    /// Per-connection queue (frames and datagrams to write). A frame that
    /// finds it full closes the connection; a datagram is dropped.
    pub conn_queue: usize,
    /// Queue of websocket inputs to the driver.
    pub input_queue: usize,
    /// Queue of datagrams to the driver; a full queue drops datagrams.
    pub datagram_queue: usize,
    /// A frame not written within this time closes the connection.
    pub write_timeout: Duration,
    /// Sink mode, for load tests: RTP from a session that is alone in its
    /// room (nobody to forward it to) is opened with the session's key,
    /// counted per SSRC ([`Server::sink_stats`]) and dropped in the UDP
    /// receiver, without reaching the core. Such packets are then missing
    /// from [`ServerStats`] (`datagrams_in`, `rtp_in`, the DAVE payload
    /// counts) and do not update the client's address; RTP whose SSRC has no
    /// session is dropped too (counted in [`SinkStats::unknown_ssrc`]). RTP
    /// of a session with company is counted the same way and then forwarded
    /// as usual. Off by default.
    pub sink: bool,
    /// Receive buffer of the UDP socket in bytes. On Linux with
    /// `CAP_NET_ADMIN` it is set past `net.core.rmem_max`
    /// (`SO_RCVBUFFORCE`); otherwise `SO_RCVBUF`, which the kernel caps
    /// there. 0 keeps the system default.
    pub udp_recv_buffer: usize,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            server: ServerConfig::default(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ws_port: 0,
            wss_port: 0,
            udp_port: 0,
            tls: true,
            faults: Vec::new(),
            log: None,
            conn_queue: 512,
            input_queue: 256,
            datagram_queue: 1024,
            write_timeout: Duration::from_secs(5),
            sink: false,
            udp_recv_buffer: 0,
        }
    }
}

/// Counters of the runner (beyond the core's [`ServerStats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunnerStats {
    /// Datagrams dropped because the driver's queue was full.
    pub datagrams_dropped: u64,
    /// Connections closed because their queue was full.
    pub ws_queue_full: u64,
    /// Datagrams dropped because their client's queue was full.
    pub udp_queue_drops: u64,
    /// Datagrams the socket refused.
    pub udp_send_errors: u64,
    /// Connections closed because a write timed out.
    pub slow_clients_closed: u64,
    /// Longest per-connection queue seen.
    pub conn_queue_peak: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) datagrams_dropped: AtomicU64,
    pub(crate) ws_queue_full: AtomicU64,
    pub(crate) udp_queue_drops: AtomicU64,
    pub(crate) udp_send_errors: AtomicU64,
    pub(crate) slow_clients_closed: AtomicU64,
    pub(crate) conn_queue_peak: AtomicUsize,
}

/// Input from a connection task to the driver.
pub(crate) enum ConnInput {
    Open { version: GatewayVersion, tx: mpsc::Sender<Out>, kill: Arc<Notify>, reply: oneshot::Sender<ConnId> },
    Frame { conn: ConnId, frame: WsFrame },
    Closed { conn: ConnId, code: Option<u16> },
}

/// A datagram received.
pub(crate) struct Datagram {
    pub(crate) from: SocketAddr,
    pub(crate) bytes: Vec<u8>,
}

/// What a connection task writes, in order.
pub(crate) enum Out {
    Ws(WsFrame),
    Udp(SocketAddr, Vec<u8>),
    Close(u16),
}

pub(crate) struct Shared {
    core: Mutex<MockServer>,
    pub(crate) notify: Notify,
    pub(crate) counters: Arc<Counters>,
    pub(crate) udp: Arc<UdpSocket>,
    /// The UDP receiver's table in sink mode. Lock order: core, then sink.
    pub(crate) sink: Option<Arc<Mutex<SinkTable>>>,
}

impl Shared {
    pub(crate) fn core(&self) -> MutexGuard<'_, MockServer> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Locks the sink table (a panic elsewhere leaves its counters usable).
pub(crate) fn lock_sink(sink: &Mutex<SinkTable>) -> MutexGuard<'_, SinkTable> {
    sink.lock().unwrap_or_else(|e| e.into_inner())
}

/// Binds the UDP socket, with a receive buffer of `recv_buffer` bytes if
/// not 0.
fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> io::Result<UdpSocket> {
    let socket =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if recv_buffer > 0 && arrival::force_recv_buffer(&socket, recv_buffer).is_err() {
        socket.set_recv_buffer_size(recv_buffer)?;
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// A running mock voice server.
pub struct Server {
    shared: Arc<Shared>,
    ws_port: u16,
    wss_port: u16,
    udp_port: u16,
    cert_pem: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("ws_port", &self.ws_port)
            .field("wss_port", &self.wss_port)
            .field("udp_port", &self.udp_port)
            .finish_non_exhaustive()
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Server {
    /// Binds the sockets, makes the certificate and starts the tasks.
    pub async fn start(config: RunnerConfig) -> io::Result<Server> {
        let udp = Arc::new(bind_udp(SocketAddr::new(config.bind, config.udp_port), config.udp_recv_buffer)?);
        let ws = TcpListener::bind((config.bind, config.ws_port)).await?;
        let (wss, tls) = if config.tls {
            let tls = tls::self_signed()?;
            (Some(TcpListener::bind((config.bind, config.wss_port)).await?), Some(tls))
        } else {
            (None, None)
        };
        let udp_addr = udp.local_addr()?;
        let ws_port = ws.local_addr()?.port();
        let wss_port = match &wss {
            Some(l) => l.local_addr()?.port(),
            None => 0,
        };
        let mut server = config.server.clone();
        server.udp_addr = udp_addr;
        server.ws_endpoint = format!("{}:{ws_port}", config.bind);
        let max_datagram = server.limits.max_datagram_bytes;
        let max_frame = server.limits.max_frame_bytes;
        let start = now();
        let mut core = MockServer::new(server, start);
        let sink = config.sink.then(|| {
            core.track_sink_routes();
            Arc::new(Mutex::new(SinkTable::new(start, max_datagram)))
        });
        for f in config.faults.iter().cloned() {
            core.inject(f, start);
        }
        let log = match &config.log {
            Some(p) => Some(log::Log::create(p, start)?),
            None => None,
        };
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            notify: Notify::new(),
            counters: counters.clone(),
            udp: udp.clone(),
            sink: sink.clone(),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (conn_tx, conn_rx) = mpsc::channel(config.input_queue.max(1));
        let (udp_tx, udp_rx) = mpsc::channel(config.datagram_queue.max(1));
        let ctx = ws::ConnCtx {
            input: conn_tx,
            udp: udp.clone(),
            counters: counters.clone(),
            shutdown: shutdown_rx.clone(),
            queue: config.conn_queue,
            max_frame,
            write_timeout: config.write_timeout,
        };
        let driver = driver::Driver::new(shared.clone(), conn_rx, udp_rx, shutdown_rx.clone(), log);
        let mut tasks = vec![
            tokio::spawn(driver.run()),
            tokio::spawn(udp::recv_loop(udp, udp_tx, counters, shutdown_rx, max_datagram, sink)),
            tokio::spawn(ws::listen(ws, None, ctx.clone())),
        ];
        let cert_pem = match (wss, tls) {
            (Some(l), Some(tls)) => {
                tasks.push(tokio::spawn(ws::listen(l, Some(tls.acceptor), ctx)));
                tls.cert_pem
            }
            _ => String::new(),
        };
        tracing::info!(ws_port, wss_port, udp_port = udp_addr.port(), "voice-mock listening");
        Ok(Server { shared, ws_port, wss_port, udp_port: udp_addr.port(), cert_pem, shutdown, tasks })
    }

    /// The websocket port.
    pub fn ws_port(&self) -> u16 {
        self.ws_port
    }

    /// The TLS websocket port (0 when TLS is off).
    pub fn wss_port(&self) -> u16 {
        self.wss_port
    }

    /// The UDP port.
    pub fn udp_port(&self) -> u16 {
        self.udp_port
    }

    /// The PEM of the self-signed certificate (empty when TLS is off).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// `127.0.0.1:WS_PORT`.
    pub fn ws_endpoint(&self) -> String {
        self.shared.core().config().ws_endpoint.clone()
    }

    /// `127.0.0.1:WSS_PORT` (connect with `wss://`, trusting [`Server::cert_pem`]).
    pub fn wss_endpoint(&self) -> String {
        let ws = self.ws_endpoint();
        let host = ws.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h).to_owned();
        format!("{host}:{}", self.wss_port)
    }

    /// Runs `f` on the core, then wakes the driver to drain its outputs.
    pub fn with_core<R>(&self, f: impl FnOnce(&mut MockServer) -> R) -> R {
        let r = f(&mut self.shared.core());
        self.shared.notify.notify_one();
        r
    }

    /// Credentials for a voice join (endpoint: the ws port). They work on
    /// the wss port too.
    pub fn join(&self, guild: Snowflake, channel: Snowflake, user: Snowflake) -> JoinInfo {
        self.with_core(|c| c.join(guild, channel, user))
    }

    /// As [`Server::join`], with the wss endpoint.
    pub fn join_wss(&self, guild: Snowflake, channel: Snowflake, user: Snowflake) -> JoinInfo {
        let mut info = self.join(guild, channel, user);
        info.endpoint = self.wss_endpoint();
        info
    }

    /// Moves a client (see [`MockServer::move_client`]).
    pub fn move_client(
        &self,
        user: Snowflake,
        guild: Snowflake,
        new_channel: Option<Snowflake>,
        new_endpoint: Option<String>,
    ) -> Option<JoinInfo> {
        self.with_core(|c| c.move_client(user, guild, new_channel, new_endpoint, now()))
    }

    /// The main gateway saw `user` leave voice in `guild` (see
    /// [`MockServer::leave`]).
    pub fn leave(&self, guild: Snowflake, user: Snowflake) {
        self.with_core(|c| c.leave(guild, user, now()));
    }

    /// Injects a fault.
    pub fn inject(&self, fault: Fault) {
        self.with_core(|c| c.inject(fault, now()));
    }

    /// The core's counters.
    pub fn stats(&self) -> ServerStats {
        self.shared.core().stats()
    }

    /// The runner's counters.
    pub fn runner_stats(&self) -> RunnerStats {
        let c = &self.shared.counters;
        RunnerStats {
            datagrams_dropped: c.datagrams_dropped.load(Ordering::Relaxed),
            ws_queue_full: c.ws_queue_full.load(Ordering::Relaxed),
            udp_queue_drops: c.udp_queue_drops.load(Ordering::Relaxed),
            udp_send_errors: c.udp_send_errors.load(Ordering::Relaxed),
            slow_clients_closed: c.slow_clients_closed.load(Ordering::Relaxed),
            conn_queue_peak: c.conn_queue_peak.load(Ordering::Relaxed),
        }
    }

    /// The sink's counters over the current window (see
    /// [`RunnerConfig::sink`]); `None` when sink mode is off.
    pub fn sink_stats(&self) -> Option<SinkStats> {
        self.shared.sink.as_deref().map(|s| lock_sink(s).snapshot(now()))
    }

    /// As [`Server::sink_stats`], and starts a new window: every counter
    /// starts again from zero. Call it at the start of a measurement, and
    /// again at its end.
    pub fn take_sink_stats(&self) -> Option<SinkStats> {
        self.shared.sink.as_deref().map(|s| lock_sink(s).take(now()))
    }

    /// What `user` sent (copies).
    pub fn received_frames(&self, user: Snowflake) -> Vec<ReceivedFrame> {
        self.shared.core().received_frames(user).to_vec()
    }

    /// Stops every task and closes every socket.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}
