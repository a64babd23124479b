//! [`CallCore`]: one call's driver as a state machine over
//! [`VoiceConnection`], with time as input: the frame and flush policy, the
//! pacer, the hand-off of received audio and events, and the counters. It
//! owns no socket and no timer; the task in `task.rs` (or a test under fake
//! time) carries out what it asks for.
//!
//! The frame policy: one frame per 20 ms slot on an absolute schedule
//! ([`Pacer`]); frames that fall behind it go late, half a slot apart,
//! until it is met again; after a stall of more than three slots as many
//! queued frames are dropped as slots were missed, so that latency does
//! not grow; frames wait (never
//! plaintext) while a DAVE call has no send key; frames offered while the
//! session is down are dropped and counted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::{oneshot, watch};
use voice_proto::wire::{WsFrame, WsMessage};
use voice_proto::{
    Datagram, Event, GatewayEvent, Output, ReconnectReason, State, UpdateVoiceState, VoiceConnection, VoicePacket,
    WsTarget,
};

use crate::call::{CallState, CallStats, Command, ReceivedAudio};
use crate::error::ConnectFailure;
use crate::pacing::Pacer;
use crate::queue;
use crate::snapshot::{CallSnapshot, History};
use crate::source::FrameSource;

/// Received Opus is copied into this arena and handed out as `Bytes`
/// slices: one allocation per block, not per packet. Small, so that a call
/// that hears little holds little.
const ARENA_BLOCK: usize = 4 * 1024;

/// The channels between a call's driver and its [`Call`](crate::Call)
/// handles: the driver's [`queue`]s and a `tokio::sync` watch, which run
/// on any executor.
#[derive(Debug)]
pub struct Channels {
    pub(crate) frames: queue::Receiver<Bytes>,
    pub(crate) events: queue::Sender<Event>,
    pub(crate) audio: Arc<AudioOut>,
    pub(crate) state: watch::Sender<CallState>,
}

impl Channels {
    /// The driver's ends: the frame queue it reads, where events and
    /// received audio go, and the state it publishes.
    pub fn new(
        frames: queue::Receiver<Bytes>,
        events: queue::Sender<Event>,
        audio: Arc<AudioOut>,
        state: watch::Sender<CallState>,
    ) -> Self {
        Channels { frames, events, audio, state }
    }
}

/// Where a call's received audio goes: a bounded [`queue`], made when the
/// application first asks for it. A call nobody listens to holds no
/// queue, and its audio is dropped as it arrives, counted in
/// [`CallStats::audio_dropped`] as audio a full channel drops is.
#[derive(Debug)]
pub struct AudioOut {
    capacity: usize,
    tx: std::sync::OnceLock<queue::Sender<ReceivedAudio>>,
}

impl AudioOut {
    /// No listener yet; the channel, once made, holds `capacity` packets.
    pub fn new(capacity: usize) -> Self {
        AudioOut { capacity: capacity.max(1), tx: std::sync::OnceLock::new() }
    }

    /// Makes the channel and gives its receiving end, once; `None` after.
    pub fn take_receiver(&self) -> Option<queue::Receiver<ReceivedAudio>> {
        let mut rx = None;
        self.tx.get_or_init(|| {
            let (tx, r) = queue::bounded(self.capacity);
            rx = Some(r);
            tx
        });
        rx
    }

    /// Whether anybody takes the audio (else it is dropped unread).
    fn is_listened(&self) -> bool {
        self.tx.get().is_some()
    }

    /// Hands one packet on; false when nobody listens or the channel is
    /// full.
    fn send(&self, audio: ReceivedAudio) -> bool {
        self.tx.get().is_some_and(|tx| tx.try_send(audio).is_ok())
    }
}

/// What the call asks its runtime to do, drained with [`CallCore::poll_io`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Io {
    /// Send this op 4 payload on the main gateway.
    Gateway(UpdateVoiceState),
    /// Open a websocket (any previous one was closed first).
    ConnectWs(WsTarget),
    /// Send this frame on the open websocket.
    WsSend(WsFrame),
    /// Close the websocket with this code and drop it.
    CloseWs(u16),
    /// Send this datagram (IP discovery, keepalive, silence).
    Transmit {
        /// Destination.
        to: SocketAddr,
        /// The datagram.
        bytes: Vec<u8>,
    },
}

/// One call's driver, without IO.
#[derive(Debug)]
pub struct CallCore {
    conn: VoiceConnection,
    ch: Channels,
    pacer: Pacer,
    /// The frame that has the next slot.
    pending: Option<Bytes>,
    /// A source the driver pulls frames from, ahead of the queue.
    source: Option<Box<dyn FrameSource>>,
    frames_open: bool,
    /// The pending frame waits for end-to-end encryption to be ready: no
    /// pacing slot until then.
    awaiting_e2ee: bool,
    deadline: Option<Instant>,
    /// What was last published to the handles (cheap to compare).
    published: Option<(Published, Option<String>)>,
    /// The last reconnections, for snapshots.
    history: History,
    flush_waiters: Vec<oneshot::Sender<()>>,
    out: Vec<u8>,
    out_len: usize,
    arena: BytesMut,
    stats: CallStats,
}

impl CallCore {
    /// A driver for `conn`, talking to its handles over `ch`.
    pub fn new(conn: VoiceConnection, ch: Channels) -> Self {
        CallCore {
            conn,
            ch,
            pacer: Pacer::default(),
            pending: None,
            source: None,
            frames_open: true,
            awaiting_e2ee: false,
            deadline: None,
            published: None,
            history: History::default(),
            flush_waiters: Vec::new(),
            // Grows to the largest datagram once; an audio packet is ~200 B.
            out: Vec::with_capacity(256),
            out_len: 0,
            arena: BytesMut::new(),
            stats: CallStats::default(),
        }
    }

    /// The state machine.
    pub fn connection(&self) -> &VoiceConnection {
        &self.conn
    }

    /// Whether the call has ended (the driver stops).
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// The machine's next deadline (call [`CallCore::handle_timeout`] then).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The deadline a task must wake for while another context keeps the
    /// audio flowing: every deadline but "speaking stops if nothing is
    /// sent", which each frame pushes back.
    pub fn deadline_while_flowing(&self) -> Option<Instant> {
        self.conn.deadline_while_speaking()
    }

    /// Whether the machine has outputs for the task (after a frame went out
    /// from a context that carries out datagrams only).
    pub fn has_io(&self) -> bool {
        self.conn.has_output()
    }

    /// Whether the driver wants the next frame from the queue.
    pub fn wants_frame(&self) -> bool {
        self.pending.is_none() && self.source.is_none() && self.frames_open
    }

    /// The queue's receiver, for the runtime to wait on while
    /// [`CallCore::wants_frame`].
    pub fn poll_frame(&mut self, cx: &mut std::task::Context<'_>, now: Instant) -> std::task::Poll<()> {
        match self.ch.frames.poll_recv(cx) {
            std::task::Poll::Ready(f) => {
                self.offer_frame(f, now);
                std::task::Poll::Ready(())
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    /// Takes a frame from the queue if one is there and one is wanted.
    pub fn pull_frame(&mut self, now: Instant) -> bool {
        if !self.wants_frame() {
            return false;
        }
        match self.ch.frames.try_recv() {
            Ok(f) => self.offer_frame(Some(f), now),
            Err(queue::TryRecvError::Empty) => return false,
            Err(queue::TryRecvError::Disconnected) => self.offer_frame(None, now),
        }
        true
    }

    fn offer_frame(&mut self, frame: Option<Bytes>, now: Instant) {
        match frame {
            Some(f) => {
                self.pacer.resume_after_idle(now);
                self.pending = Some(f);
            }
            None => self.frames_open = false,
        }
    }

    /// The next frame from the pull source, if it is its turn.
    fn pull_source(&mut self, now: Instant) {
        if self.pending.is_some() {
            return;
        }
        let Some(source) = self.source.as_mut() else { return };
        match source.next_frame() {
            Some(f) => {
                self.pacer.resume_after_idle(now);
                self.pending = Some(f);
            }
            None => self.source = None,
        }
    }

    /// When the pending frame's slot comes, if there is one to send now
    /// (none while a DAVE call waits for its key).
    pub fn next_slot(&mut self, now: Instant) -> Option<Instant> {
        self.pull_source(now);
        if self.awaiting_e2ee {
            return None;
        }
        self.pending.as_ref()?;
        Some(self.pacer.slot(now))
    }

    /// The next slot of a running stream even with no frame at hand yet
    /// (a producer feeding in real time): where a sender looks again.
    pub fn upcoming_slot(&self) -> Option<Instant> {
        if self.awaiting_e2ee { None } else { self.pacer.upcoming() }
    }

    /// The slot came: sends the pending frame. Returns where the datagram
    /// ([`CallCore::datagram`]) goes; drain [`CallCore::poll_io`] before
    /// sending it, so that speaking (op 5) goes before the first datagram.
    pub fn send_slot(&mut self, now: Instant) -> Option<SocketAddr> {
        let frame = self.pending.take()?;
        if self.conn.is_ready() && !self.conn.can_send_audio() && !self.conn.is_leaving() {
            // A DAVE call whose first transition has not executed: the
            // frame waits (the queue behind it is bounded), never plaintext.
            self.pending = Some(frame);
            self.awaiting_e2ee = true;
            self.stats.e2ee_waits += 1;
            return None;
        }
        self.pacer.sent(now);
        // After a stall of more than three slots, skip as many queued frames
        // as slots were missed, so that latency does not grow with every
        // stall (PROTOCOL.md §5.2).
        let (source, frames) = (&mut self.source, &mut self.ch.frames);
        self.stats.frames_dropped_late += self.pacer.drop_missed(|| match source.as_mut() {
            Some(s) => {
                let more = s.next_frame().is_some();
                if !more {
                    // Ended: not asked again.
                    *source = None;
                }
                more
            }
            None => frames.try_recv().is_ok(),
        });
        self.pull_source(now);
        match self.conn.send_opus(&frame, now, &mut self.out) {
            Ok(t) => {
                self.stats.frames_sent += 1;
                self.out_len = t.len;
                Some(t.to)
            }
            Err(_) => {
                self.stats.frames_dropped_not_ready += 1;
                None
            }
        }
    }

    /// The datagram of the last [`CallCore::send_slot`].
    pub fn datagram(&self) -> &[u8] {
        &self.out[..self.out_len.min(self.out.len())]
    }

    /// Carries out a command from a handle.
    pub(crate) fn command(&mut self, c: Command, now: Instant) {
        match c {
            Command::Join(channel) => self.conn.join(channel, now),
            Command::Leave => self.conn.leave(now),
            Command::MuteDeaf(m, d) => self.conn.set_mute_deaf(m, d, now),
            Command::Gateway(e) => self.handle_gateway_event(*e, now),
            Command::StopSpeaking => {
                self.pending = None;
                self.source = None;
                self.conn.stop_speaking(now);
            }
            Command::SpeakingFlags(f) => self.conn.set_speaking_flags(f, now),
            Command::Play(source) => self.play_source(source),
            Command::VerificationCode(user, tx) => {
                let _ = tx.send(self.conn.verification_code(user));
            }
            Command::Stats(tx) => {
                let _ = tx.send(self.stats());
            }
            Command::Snapshot(tx) => {
                let _ = tx.send(self.snapshot());
            }
            Command::Flush(tx) => self.add_flush_waiter(tx),
            Command::Close => self.conn.close(now),
        }
    }

    /// `tx` is answered once no frame is queued, pending or left in a
    /// source (every frame went out, or was dropped and counted).
    pub fn add_flush_waiter(&mut self, tx: oneshot::Sender<()>) {
        self.flush_waiters.push(tx);
    }

    /// Plays `source`: the driver pulls one frame per slot from it, ahead
    /// of the queue.
    pub fn play_source(&mut self, source: Box<dyn FrameSource>) {
        self.pending = None;
        self.source = Some(source);
    }

    /// The counters: the machine's and the driver's.
    pub fn stats(&self) -> CallStats {
        let mut s = self.stats.clone();
        s.proto = self.conn.stats().clone();
        s.slots_skipped = self.pacer.skipped();
        s
    }

    /// Everything a dashboard shows about the call, now.
    pub fn snapshot(&self) -> CallSnapshot {
        CallSnapshot {
            guild_id: self.conn.config().guild_id,
            state: self.ch.state.borrow().clone(),
            endpoint: self.conn.endpoint().map(str::to_owned),
            heartbeat_rtt: self.conn.stats().heartbeat_rtt,
            stats: self.stats(),
            users: self.conn.sources().collect(),
            reconnections: self.history.to_vec(),
        }
    }

    /// Feeds a main-gateway voice dispatch.
    pub fn handle_gateway_event(&mut self, e: GatewayEvent, now: Instant) {
        self.conn.handle_gateway_event(e, now);
    }

    /// Every handle is gone: the call shuts down.
    pub fn handles_dropped(&mut self, now: Instant) {
        self.conn.close(now);
    }

    /// The machine's deadline came.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.conn.handle_timeout(now);
    }

    /// The websocket asked for opened.
    pub fn handle_ws_open(&mut self, now: Instant) {
        // Reached: an earlier failure no longer explains a slow join.
        if self.ch.state.borrow().last_connect_failure.is_some() {
            self.ch.state.send_modify(|s| s.last_connect_failure = None);
        }
        self.conn.handle_ws_open(now);
    }

    /// The websocket did not open, for `why` (published in
    /// [`CallState::last_connect_failure`]).
    pub fn handle_ws_failed(&mut self, why: ConnectFailure, now: Instant) {
        self.stats.ws_connect_failures += 1;
        self.connect_failed(why);
        self.conn.handle_ws_close(None, now);
    }

    /// The websocket closed (with the server's code, if any) or broke.
    pub fn handle_ws_close(&mut self, code: Option<u16>, now: Instant) {
        if matches!(
            self.conn.state(),
            State::Connecting | State::Identifying | State::Discovering | State::SelectingProtocol | State::Resuming
        ) {
            // Closed before the session was established: a failed attempt.
            self.connect_failed(ConnectFailure::Closed(code));
        }
        self.conn.handle_ws_close(code, now);
    }

    fn connect_failed(&mut self, why: ConnectFailure) {
        self.ch.state.send_modify(|s| {
            s.connect_failures += 1;
            s.last_connect_failure = Some(why);
        });
    }

    /// A websocket message arrived.
    pub fn handle_ws_message(&mut self, m: WsMessage<'_>, now: Instant) {
        if let Err(e) = self.conn.handle_ws_message(m, now) {
            tracing::debug!(error = %e, "ignored a voice gateway message");
        }
    }

    /// A datagram arrived (decrypted in place); its audio goes to the
    /// application.
    pub fn handle_datagram(&mut self, from: SocketAddr, buf: &mut [u8], now: Instant) {
        let CallCore { conn, arena, ch, stats, .. } = self;
        if let Ok(Datagram::Voice(p)) = conn.handle_datagram(from, buf, now) {
            deliver(arena, ch, stats, &p);
        }
    }

    /// A datagram could not be sent.
    pub fn send_failed(&mut self) {
        self.stats.udp_send_errors += 1;
    }

    /// The next thing to do; events and audio go to the handles on the way.
    /// `None` when everything is done (the deadline is then current).
    pub fn poll_io(&mut self) -> Option<Io> {
        loop {
            match self.conn.poll_output() {
                Output::Timeout { at, .. } => {
                    self.deadline = at;
                    self.after_outputs();
                    return None;
                }
                Output::GatewaySend(p) => return Some(Io::Gateway(p)),
                Output::ConnectWs(t) => return Some(Io::ConnectWs(t)),
                Output::WsSend(f) => return Some(Io::WsSend(f)),
                Output::CloseWs { code } => return Some(Io::CloseWs(code)),
                Output::Transmit { to, bytes } => return Some(Io::Transmit { to, bytes }),
                Output::Event(e) => self.event(e),
                Output::Voice(p) => deliver(&mut self.arena, &self.ch, &mut self.stats, &p.as_packet()),
                _ => {}
            }
        }
    }

    /// After each drain: end-to-end encryption readiness, flush callers,
    /// and the state the handles see.
    fn after_outputs(&mut self) {
        if self.awaiting_e2ee && (self.conn.can_send_audio() || !self.conn.is_ready()) {
            // Sending may go on: encryption became ready (or the session
            // went away, and the frame meets the usual not-ready rule).
            self.awaiting_e2ee = false;
            self.pacer.reset();
        }
        if !self.flush_waiters.is_empty()
            && self.pending.is_none()
            && self.source.is_none()
            && self.ch.frames.is_empty()
        {
            for tx in self.flush_waiters.drain(..) {
                let _ = tx.send(());
            }
        }
        self.publish();
    }

    fn event(&mut self, e: Event) {
        self.history.on_event(&e);
        if let Event::Reconnecting { reason: ReconnectReason::WsOpenTimeout | ReconnectReason::HandshakeTimeout } = e {
            // The machine's own limit ran out before the server answered.
            self.connect_failed(ConnectFailure::Timeout);
        }
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
        let c = &self.conn;
        let key = Published {
            state: c.state(),
            channel: c.channel(),
            dave: c.dave_protocol_version(),
            can_send: c.can_send_audio(),
            mode: c.mode(),
            ssrc: c.ssrc(),
        };
        let code = c.voice_privacy_code();
        // Most drains change none of it: skip the watch's lock then.
        if self.published.as_ref().is_some_and(|(k, c)| *k == key && c.as_deref() == code) {
            return;
        }
        self.published = Some((key, code.map(str::to_owned)));
        self.ch.state.send_if_modified(|s| {
            let changed = s.state != key.state
                || s.channel != key.channel
                || s.dave_protocol_version != key.dave
                || s.can_send_audio != key.can_send
                || s.mode != key.mode
                || s.ssrc != key.ssrc
                || s.privacy_code.as_deref() != code;
            s.state = key.state;
            s.channel = key.channel;
            s.dave_protocol_version = key.dave;
            s.can_send_audio = key.can_send;
            s.mode = key.mode;
            s.ssrc = key.ssrc;
            if s.privacy_code.as_deref() != code {
                s.privacy_code = code.map(str::to_owned);
            }
            changed
        });
    }
}

/// The published state, compared before the watch is touched (the privacy
/// code beside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Published {
    state: State,
    channel: Option<voice_proto::wire::Snowflake>,
    dave: u16,
    can_send: bool,
    mode: Option<voice_proto::Mode>,
    ssrc: Option<u32>,
}

/// Hands a received packet to the application: its Opus is copied into the
/// arena (one allocation per arena block, not per packet).
fn deliver(arena: &mut BytesMut, ch: &Channels, stats: &mut CallStats, p: &VoicePacket<'_>) {
    if !ch.audio.is_listened() {
        // Nobody listens: not even the copy.
        stats.audio_dropped += 1;
        return;
    }
    if arena.capacity() < p.opus.len() {
        arena.reserve(ARENA_BLOCK.max(p.opus.len()));
    }
    arena.extend_from_slice(p.opus);
    let audio = ReceivedAudio {
        user_id: p.user_id,
        ssrc: p.ssrc,
        sequence: p.sequence,
        timestamp: p.timestamp,
        opus: arena.split().freeze(),
    };
    if !ch.audio.send(audio) {
        stats.audio_dropped += 1;
    }
}
