//! The task that drives one [`VoiceConnection`]: it owns the websocket, the
//! UDP socket and one timer, feeds one input at a time, drains the outputs,
//! and paces outgoing frames (DESIGN.md "Adapters").

use std::future::{Future, pending};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use voice_proto::wire::{WsFrame, WsMessage};
use voice_proto::{Datagram, Event, Output, VoiceConnection, VoicePacket};

use crate::call::{CallState, CallStats, Command, ReceivedAudio};
use crate::error::ConnectError;
use crate::manager::MainGateway;
use crate::pacing::Pacer;
use crate::ws::{self, WsStream};

type Connecting = Pin<Box<dyn Future<Output = Result<WsStream, ConnectError>> + Send>>;

/// Longest a websocket write may block the driver before the socket is
/// treated as dead.
const WS_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Received Opus is copied into this arena and handed out as `Bytes`
/// slices: one allocation per arena block, not per packet.
const ARENA_BLOCK: usize = 64 * 1024;

/// The driver's channels to and from the [`Call`](crate::Call) handles.
pub(crate) struct Channels {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) frames: mpsc::Receiver<Bytes>,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) audio: mpsc::Sender<ReceivedAudio>,
    pub(crate) state: watch::Sender<CallState>,
}

pub(crate) struct Driver {
    conn: VoiceConnection,
    ch: Channels,
    gateway: Arc<dyn MainGateway>,
    tls: Arc<ClientConfig>,
    ws_timeout: Duration,
    udp: UdpSocket,
    ws: Option<WsStream>,
    connecting: Option<Connecting>,
    deadline: Option<std::time::Instant>,
    pacer: Pacer,
    pending_frame: Option<Bytes>,
    out: Vec<u8>,
    recv: Box<[u8; 2048]>,
    arena: BytesMut,
    stats: CallStats,
    commands_open: bool,
    frames_open: bool,
    flush_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    /// The pending frame waits for end-to-end encryption to be ready: no
    /// pacing slot until then.
    awaiting_e2ee: bool,
    /// Where the UDP socket is connected (the voice server), so the kernel
    /// drops datagrams from anyone else.
    peer: Option<SocketAddr>,
}

enum Wake {
    Command(Option<Command>),
    WsOpened(Box<Result<WsStream, ConnectError>>),
    Ws(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Udp(std::io::Result<(usize, SocketAddr)>),
    Frame(Option<Bytes>),
    FrameSlot,
    Timer,
}

fn now() -> std::time::Instant {
    // tokio's clock, so that paused-time tests drive the machine too.
    Instant::now().into_std()
}

impl Driver {
    pub(crate) fn new(
        conn: VoiceConnection,
        ch: Channels,
        gateway: Arc<dyn MainGateway>,
        tls: Arc<ClientConfig>,
        ws_timeout: Duration,
        udp: UdpSocket,
    ) -> Self {
        Driver {
            conn,
            ch,
            gateway,
            tls,
            ws_timeout,
            udp,
            ws: None,
            connecting: None,
            deadline: None,
            pacer: Pacer::default(),
            pending_frame: None,
            out: Vec::with_capacity(1500),
            recv: Box::new([0; 2048]),
            arena: BytesMut::with_capacity(ARENA_BLOCK),
            stats: CallStats::default(),
            commands_open: true,
            frames_open: true,
            flush_waiters: Vec::new(),
            awaiting_e2ee: false,
            peer: None,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            self.drain().await;
            self.publish();
            if self.conn.is_closed() {
                break;
            }
            let wake = self.wait().await;
            self.handle(wake).await;
            self.resume_after_e2ee();
            self.notify_flushed();
        }
        if let Some(ws) = self.ws.take() {
            close_in_background(ws, 1000);
        }
        tracing::debug!(guild = %self.conn.config().guild_id, "voice driver stopped");
    }

    /// Waits for one input. Borrows fields separately so every source can
    /// be awaited at once.
    async fn wait(&mut self) -> Wake {
        let slot = self.pending_frame.as_ref().filter(|_| !self.awaiting_e2ee).map(|_| self.pacer.slot(Instant::now()));
        let deadline = self.deadline.map(Instant::from_std);
        let Driver { ch, connecting, ws, udp, recv, commands_open, frames_open, pending_frame, .. } = self;
        let want_frame = pending_frame.is_none() && *frames_open;
        // Biased, with time first: a flood of datagrams or frames cannot
        // starve heartbeats or pacing.
        tokio::select! {
            biased;
            c = ch.commands.recv(), if *commands_open => Wake::Command(c),
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => pending().await } } => Wake::Timer,
            _ = async { match slot { Some(s) => tokio::time::sleep_until(s).await, None => pending().await } } => Wake::FrameSlot,
            r = async { match connecting.as_mut() { Some(f) => f.await, None => pending().await } } => Wake::WsOpened(Box::new(r)),
            m = async { match ws.as_mut() { Some(w) => w.next().await, None => pending().await } } => Wake::Ws(m),
            r = udp.recv_from(&mut recv[..]) => Wake::Udp(r),
            f = ch.frames.recv(), if want_frame => Wake::Frame(f),
        }
    }

    async fn handle(&mut self, wake: Wake) {
        let now = now();
        match wake {
            Wake::Command(None) => {
                // Every handle is gone: shut down.
                self.commands_open = false;
                self.conn.close(now);
            }
            Wake::Command(Some(c)) => self.command(c, now),
            Wake::WsOpened(r) => {
                self.connecting = None;
                match *r {
                    Ok(ws) => {
                        self.ws = Some(ws);
                        self.conn.handle_ws_open(now);
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "voice websocket did not open");
                        self.stats.ws_connect_failures += 1;
                        self.conn.handle_ws_close(None, now);
                    }
                }
            }
            Wake::Ws(m) => self.ws_message(m, now),
            Wake::Udp(Ok((n, from))) => self.datagram(n, from, now),
            Wake::Udp(Err(e)) => tracing::debug!(error = %e, "udp receive error"),
            Wake::Frame(Some(f)) => {
                self.pacer.resume_after_idle(Instant::now());
                self.pending_frame = Some(f);
            }
            Wake::Frame(None) => self.frames_open = false,
            Wake::FrameSlot => self.send_frame(now).await,
            Wake::Timer => self.conn.handle_timeout(now),
        }
    }

    fn command(&mut self, c: Command, now: std::time::Instant) {
        match c {
            Command::Join(channel) => self.conn.join(channel, now),
            Command::Leave => self.conn.leave(now),
            Command::MuteDeaf(m, d) => self.conn.set_mute_deaf(m, d, now),
            Command::Gateway(e) => self.conn.handle_gateway_event(e, now),
            Command::StopSpeaking => {
                self.pending_frame = None;
                self.conn.stop_speaking(now);
            }
            Command::VerificationCode(user, tx) => {
                let _ = tx.send(self.conn.verification_code(user));
            }
            Command::Stats(tx) => {
                let mut s = self.stats.clone();
                s.proto = self.conn.stats().clone();
                s.slots_skipped = self.pacer.skipped();
                let _ = tx.send(s);
            }
            Command::Flush(tx) => self.flush_waiters.push(tx),
            Command::Close => self.conn.close(now),
        }
    }

    /// Answers `flush` callers once no frame is queued or pending.
    fn notify_flushed(&mut self) {
        if self.flush_waiters.is_empty() || self.pending_frame.is_some() || !self.ch.frames.is_empty() {
            return;
        }
        for tx in self.flush_waiters.drain(..) {
            let _ = tx.send(());
        }
    }

    fn ws_message(
        &mut self,
        m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        now: std::time::Instant,
    ) {
        let result = match m {
            Some(Ok(Message::Text(t))) => self.conn.handle_ws_message(WsMessage::Text(t.as_str()), now),
            Some(Ok(Message::Binary(b))) => self.conn.handle_ws_message(WsMessage::Binary(&b), now),
            Some(Ok(Message::Close(frame))) => {
                self.ws = None;
                self.conn.handle_ws_close(frame.map(|f| u16::from(f.code)), now);
                Ok(())
            }
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => {
                tracing::info!(error = %e, "voice websocket error");
                self.ws = None;
                self.conn.handle_ws_close(None, now);
                Ok(())
            }
            None => {
                self.ws = None;
                self.conn.handle_ws_close(None, now);
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "ignored a voice gateway message");
        }
    }

    fn datagram(&mut self, n: usize, from: SocketAddr, now: std::time::Instant) {
        let Driver { conn, recv, arena, ch, stats, .. } = self;
        if let Ok(Datagram::Voice(p)) = conn.handle_datagram(from, &mut recv[..n], now) {
            deliver(arena, ch, stats, &p);
        }
    }

    /// Sending may go on: end-to-end encryption became ready (or the
    /// session went away, and the frame meets the usual not-ready rule).
    fn resume_after_e2ee(&mut self) {
        if self.awaiting_e2ee && (self.conn.can_send_audio() || !self.conn.is_ready()) {
            self.awaiting_e2ee = false;
            self.pacer.reset();
        }
    }

    async fn send_frame(&mut self, now: std::time::Instant) {
        let Some(frame) = self.pending_frame.take() else { return };
        if self.conn.is_ready() && !self.conn.can_send_audio() {
            // A DAVE call whose first transition has not executed: the
            // frame waits (the queue behind it is bounded), never plaintext.
            self.pending_frame = Some(frame);
            self.awaiting_e2ee = true;
            self.stats.e2ee_waits += 1;
            return;
        }
        self.pacer.sent();
        // After a stall, skip as many queued frames as slots were missed, so
        // that latency does not grow with every stall (PROTOCOL.md §5.2).
        for _ in 0..self.pacer.take_missed() {
            if self.ch.frames.try_recv().is_err() {
                break;
            }
            self.stats.frames_dropped_late += 1;
        }
        match self.conn.send_opus(&frame, now, &mut self.out) {
            Ok(t) => {
                // Speaking (op 5) goes out before the first datagram.
                self.drain().await;
                let out = std::mem::take(&mut self.out);
                self.transmit(&out[..t.len], t.to).await;
                self.out = out;
                self.stats.frames_sent += 1;
            }
            Err(_) => self.stats.frames_dropped_not_ready += 1,
        }
    }

    /// Carries out every queued output, then reads the next deadline.
    async fn drain(&mut self) {
        for _ in 0..16 {
            let mut ws_broke = false;
            loop {
                match self.conn.poll_output() {
                    Output::Timeout { at, .. } => {
                        self.deadline = at;
                        break;
                    }
                    Output::GatewaySend(p) => self.gateway.update_voice_state(p),
                    Output::ConnectWs(target) => {
                        let url = target.url();
                        let (tls, timeout) = (self.tls.clone(), self.ws_timeout);
                        self.connecting = Some(Box::pin(async move { ws::connect(&url, &tls, timeout).await }));
                    }
                    Output::WsSend(frame) => {
                        let Some(ws) = self.ws.as_mut() else { continue };
                        let msg = match frame {
                            WsFrame::Binary(b) => Message::Binary(b.into()),
                            other => Message::Text(other.as_text().unwrap_or_default().to_owned().into()),
                        };
                        let sent = tokio::time::timeout(WS_SEND_TIMEOUT, ws.send(msg)).await;
                        if !matches!(sent, Ok(Ok(()))) {
                            tracing::info!("voice websocket send failed or stalled");
                            self.ws = None;
                            ws_broke = true;
                        }
                    }
                    Output::CloseWs { code } => {
                        self.connecting = None;
                        if let Some(ws) = self.ws.take() {
                            close_in_background(ws, code);
                        }
                    }
                    Output::Transmit { to, bytes } => self.transmit(&bytes, to).await,
                    Output::Event(e) => self.event(e),
                    Output::Voice(p) => deliver(&mut self.arena, &self.ch, &mut self.stats, &p.as_packet()),
                    _ => {}
                }
            }
            if !ws_broke {
                return;
            }
            self.conn.handle_ws_close(None, now());
        }
    }

    async fn transmit(&mut self, bytes: &[u8], to: SocketAddr) {
        if self.peer != Some(to) {
            // Connect to the voice server so the kernel filters every other
            // source; a new server (fresh connection) connects again.
            match self.udp.connect(to).await {
                Ok(()) => self.peer = Some(to),
                Err(e) => tracing::debug!(error = %e, "udp connect failed"),
            }
        }
        let sent = if self.peer == Some(to) { self.udp.send(bytes).await } else { self.udp.send_to(bytes, to).await };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "udp send failed");
            self.stats.udp_send_errors += 1;
        }
    }

    fn event(&mut self, e: Event) {
        self.ch.state.send_modify(|s| match &e {
            Event::Connected { .. } => s.connects += 1,
            Event::Disconnected { reason } => {
                s.disconnects += 1;
                s.last_disconnect = Some(*reason);
            }
            _ => {}
        });
        if self.ch.events.try_send(e).is_err() {
            self.stats.events_dropped += 1;
        }
    }

    fn publish(&mut self) {
        let (state, channel) = (self.conn.state(), self.conn.channel());
        let (dave, can_send) = (self.conn.dave_protocol_version(), self.conn.can_send_audio());
        let code = self.conn.voice_privacy_code();
        self.ch.state.send_if_modified(|s| {
            let changed = s.state != state
                || s.channel != channel
                || s.dave_protocol_version != dave
                || s.can_send_audio != can_send
                || s.privacy_code.as_deref() != code;
            s.state = state;
            s.channel = channel;
            s.dave_protocol_version = dave;
            s.can_send_audio = can_send;
            if s.privacy_code.as_deref() != code {
                s.privacy_code = code.map(str::to_owned);
            }
            changed
        });
    }
}

/// Hands a received packet to the application: its Opus is copied into the
/// arena (one allocation per arena block, not per packet).
fn deliver(arena: &mut BytesMut, ch: &Channels, stats: &mut CallStats, p: &VoicePacket<'_>) {
    if arena.capacity() < p.opus.len() {
        arena.reserve(ARENA_BLOCK);
    }
    arena.extend_from_slice(p.opus);
    let audio = ReceivedAudio {
        user_id: p.user_id,
        ssrc: p.ssrc,
        sequence: p.sequence,
        timestamp: p.timestamp,
        opus: arena.split().freeze(),
    };
    if ch.audio.try_send(audio).is_err() {
        stats.audio_dropped += 1;
    }
}

/// Sends a close frame and lets the socket go, without holding up the driver.
fn close_in_background(mut ws: WsStream, code: u16) {
    tokio::spawn(async move {
        let frame = CloseFrame { code: code.into(), reason: "".into() };
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
    });
}
