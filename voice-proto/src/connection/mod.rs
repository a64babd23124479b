//! [`VoiceConnection`]: the parent state machine. It routes each input to
//! the sub-machine that owns it and acts on their verdicts; each
//! sub-machine keeps its state private, in a file of its own:
//!
//! * `session.rs`: the voice websocket session (socket phase, heartbeat,
//!   sequence acknowledgement);
//! * `reconnect.rs`: the reconnect plan and its backoff; the close-code
//!   policy is `crate::close_code`;
//! * `udp_path.rs`: the UDP path (server address, SSRC, mode, IP
//!   discovery, keepalives);
//! * `send.rs`: the sending half (sealer, RTP sequence and timestamp,
//!   Speaking, the silence trailer's count);
//! * `ssrc_users.rs`, `unknown_ssrc.rs`, `rtcp.rs`: the receiving side's
//!   SSRC map, voice from SSRCs not named yet, reception statistics and
//!   reports;
//! * `crate::transform` and `crate::dave`: the frame transform (DAVE).
//!
//! The parent's own methods are split by input: `commands.rs` (what the
//! application asks), `main_gateway.rs` (voice state and server updates),
//! `ws.rs` (the voice websocket and the handshake), `udp.rs` (datagrams
//! in, discovery, keepalives, reports), `media.rs` (sending audio and the
//! trailer), `dave.rs` (what DAVE asks for), and `lifecycle.rs` (connect,
//! reconnect, disconnect).

mod commands;
mod dave;
mod lifecycle;
mod main_gateway;
mod media;
mod reconnect;
mod rtcp;
mod send;
mod session;
mod ssrc_users;
mod udp;
mod udp_path;
mod unknown_ssrc;
mod ws;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use voice_rtp::Mode;

use crate::close_code::ClosePolicy;
use crate::config::Config;
use crate::gateway::VoiceInfo;
use crate::output::{Event, Output};
use crate::stats::Stats;
use crate::timer::{Timer, Timers};
use crate::transform::FrameTransform;
use crate::wire::{Snowflake, WsFrame};

pub use self::media::Transmit;
pub use self::udp::{Datagram, OwnedVoicePacket, VoicePacket};

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Not in a channel; nothing asked.
    Idle,
    /// Op 4 sent; waiting for the session id, token and endpoint.
    AwaitingVoiceInfo,
    /// Websocket requested, not yet open.
    Connecting,
    /// Identify sent; waiting for Ready.
    Identifying,
    /// IP discovery in progress.
    Discovering,
    /// Select Protocol sent; waiting for Session Description.
    SelectingProtocol,
    /// Session established: audio flows.
    Connected,
    /// A resume is in progress (new websocket, op 7).
    Resuming,
    /// Waiting out a reconnect backoff.
    Reconnecting,
    /// After 4014/4022: waiting for the main gateway to tell of a move.
    AwaitingMove,
    /// Down for good (until the application joins again).
    Disconnected,
    /// `close()` was called; inert.
    Closed,
}

/// A Discord voice connection for one guild, without IO.
///
/// Feed it inputs (`handle_*`, commands), each with the current time, then
/// drain [`poll_output`](Self::poll_output) until it returns
/// [`Output::Timeout`]; call [`handle_timeout`](Self::handle_timeout) at that
/// deadline. See the crate documentation for the full loop.
pub struct VoiceConnection {
    config: Config,
    state: State,
    start: Instant,
    now: Instant,
    rng: fastrand::Rng,
    timers: Timers,
    outputs: VecDeque<Output>,
    stats: Stats,

    /// The channel the application wants to be in.
    channel: Option<Snowflake>,
    /// A channel reported at start-up that nobody asked for.
    ghost: Option<Snowflake>,
    info: VoiceInfo,
    /// Endpoint and token of the current voice server session, to spot
    /// duplicate server updates and to resume.
    connected_to: Option<(String, crate::wire::Token)>,
    leaving: bool,
    closing: bool,

    /// The voice websocket session.
    session: session::Session,
    /// The close-code policy's memory (the 4004 retry).
    policy: ClosePolicy,
    /// The reconnect plan and backoff.
    reconnect: reconnect::Reconnect,
    /// The UDP path, from Ready until a fresh connection.
    path: Option<udp_path::UdpPath>,
    /// The sending half, once Session Description gave the key.
    sender: Option<send::MediaSend>,
    transform: FrameTransform,
    users: ssrc_users::SsrcUsers,
    reception: rtcp::Reception,
    unnamed: unknown_ssrc::Unnamed,
}

impl core::fmt::Debug for VoiceConnection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VoiceConnection")
            .field("guild_id", &self.config.guild_id)
            .field("state", &self.state)
            .field("channel", &self.channel)
            .field("ssrc", &self.ssrc())
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

impl VoiceConnection {
    /// A new, idle connection.
    pub fn new(config: Config, now: Instant) -> Self {
        let rng = fastrand::Rng::with_seed(config.seed);
        let reconnect = reconnect::Reconnect::new(config.backoff_base, config.backoff_max);
        let transform = FrameTransform::new(&config);
        let users = ssrc_users::SsrcUsers::new(config.max_users);
        VoiceConnection {
            config,
            state: State::Idle,
            start: now,
            now,
            rng,
            timers: Timers::default(),
            outputs: VecDeque::new(),
            stats: Stats::default(),
            channel: None,
            ghost: None,
            info: VoiceInfo::default(),
            connected_to: None,
            leaving: false,
            closing: false,
            session: session::Session::new(),
            policy: ClosePolicy::default(),
            reconnect,
            path: None,
            sender: None,
            transform,
            users,
            reception: rtcp::Reception::default(),
            unnamed: unknown_ssrc::Unnamed::default(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Our SSRC, once Ready arrived.
    pub fn ssrc(&self) -> Option<u32> {
        self.path.as_ref().map(udp_path::UdpPath::ssrc)
    }

    /// The transport mode, once selected.
    pub fn mode(&self) -> Option<Mode> {
        self.path.as_ref().map(udp_path::UdpPath::mode)
    }

    /// The channel the connection is in or joining.
    pub fn channel(&self) -> Option<Snowflake> {
        self.channel
    }

    /// The voice server endpoint (`host:port`) of the current session, or
    /// the one being connected to.
    pub fn endpoint(&self) -> Option<&str> {
        self.connected_to.as_ref().map(|(e, _)| e.as_str()).or(self.info.endpoint.as_deref())
    }

    /// The voice session id from the main gateway (not a secret; the token
    /// is, and is never exposed here).
    pub fn session_id(&self) -> Option<&str> {
        self.info.session_id.as_deref()
    }

    /// Whether the websocket being opened (or open) resumes the session
    /// rather than identifying afresh.
    pub fn is_resuming(&self) -> bool {
        self.session.is_resuming()
    }

    /// The user behind an SSRC, as Speaking messages told.
    pub fn user_for_ssrc(&self, ssrc: u32) -> Option<Snowflake> {
        self.users.get(ssrc)
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether `close()` completed; nothing more will happen.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether audio can be sent now.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Connected | State::Resuming) && self.sender.is_some()
    }

    /// The next output. Drain until [`Output::Timeout`], which is always last.
    #[must_use]
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.outputs.pop_front() {
            return o;
        }
        let (at, reason) = self.timers.next();
        Output::Timeout { at, reason }
    }

    /// The earliest deadline but "speaking stops when nothing is sent":
    /// what a driver that keeps audio flowing from elsewhere must wake for,
    /// since each frame sent pushes that one back.
    pub fn deadline_while_speaking(&self) -> Option<Instant> {
        self.timers.next_except(Timer::SpeakingIdle)
    }

    /// Whether outputs are queued (drain them with [`VoiceConnection::poll_output`]).
    pub fn has_output(&self) -> bool {
        !self.outputs.is_empty()
    }

    /// Advances time: fires every timer due at `now`. Early calls do nothing;
    /// a `now` older than one seen before is treated as that one.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        // Firing a timer may arm another for `now` (a zero backoff); the
        // bound only guards against a logic error turning into a hang.
        for _ in 0..64 {
            let Some(t) = self.timers.pop_expired(now) else {
                break;
            };
            self.on_timer(t, now);
        }
    }

    pub(crate) fn advance(&mut self, now: Instant) -> Instant {
        if now > self.now {
            self.now = now;
        }
        self.now
    }

    fn on_timer(&mut self, t: Timer, now: Instant) {
        match t {
            Timer::VoiceInfo => self.on_voice_info_timeout(now),
            Timer::WsOpen => self.on_handshake_timeout(now, crate::ReconnectReason::WsOpenTimeout),
            Timer::Handshake => self.on_handshake_timeout(now, crate::ReconnectReason::HandshakeTimeout),
            Timer::Heartbeat => self.on_heartbeat_timer(now),
            Timer::Discovery => self.on_discovery_timer(now),
            Timer::Keepalive => self.send_keepalive(now),
            Timer::Silence => self.on_silence_timer(now),
            Timer::SpeakingIdle => self.on_speaking_idle(now),
            Timer::Reconnect => self.on_reconnect_timer(now),
            Timer::MoveWait => self.on_move_wait_timeout(now),
            Timer::DaveHold => self.expire_held(now),
            Timer::RtcpReport => self.on_rtcp_timer(now),
        }
    }

    /// Queues an output. When the driver is not draining, events and
    /// datagrams beyond the cap are dropped (counted); control outputs
    /// (websocket, op 4) are never dropped, and only inputs produce them.
    pub(crate) fn push(&mut self, o: Output) {
        let droppable = matches!(o, Output::Event(_) | Output::Transmit { .. } | Output::Voice(_));
        if droppable && self.outputs.len() >= self.config.max_queued_outputs {
            self.stats.outputs_dropped += 1;
            tracing::warn!("output queue full; dropping an output (is the driver draining?)");
            return;
        }
        if matches!(o, Output::WsSend(_)) {
            self.stats.ws_frames_sent += 1;
        }
        self.outputs.push_back(o);
    }

    pub(crate) fn event(&mut self, e: Event) {
        tracing::debug!(event = ?e, "voice event");
        self.push(Output::Event(e));
    }

    /// Queues a datagram for the driver to send.
    pub(crate) fn transmit(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        self.push(Output::Transmit { to, bytes });
    }

    pub(crate) fn send_message(&mut self, m: &crate::wire::Message) {
        let text = m.to_json(self.config.gateway_version, None);
        self.push(Output::WsSend(WsFrame::Text(text)));
    }

    /// Milliseconds of wall time for heartbeat nonces.
    pub(crate) fn unix_ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.start).as_millis();
        self.config.unix_ms_at_start.saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }

    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn queued_outputs(&self) -> usize {
        self.outputs.len()
    }
}
