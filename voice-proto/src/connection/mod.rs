//! [`VoiceConnection`]: the state machine that ties the pieces together.
//!
//! The methods are split by input across this module's files:
//! `commands.rs` (what the application asks), `main_gateway.rs` (voice state
//! and server updates), `ws.rs` (voice websocket), `udp.rs` (datagrams,
//! discovery, keepalive), `media.rs` (sending audio, silence), and
//! `lifecycle.rs` (connect, resume, reconnect, disconnect).

mod commands;
mod dave;
mod lifecycle;
mod main_gateway;
mod media;
mod rtcp;
mod ssrc_users;
mod udp;
mod unknown_ssrc;
mod ws;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use voice_rtp::Mode;

use crate::backoff::Backoff;
use crate::config::Config;
use crate::gateway::VoiceInfo;
use crate::heartbeat::Heartbeat;
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

/// How the websocket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ws {
    Closed,
    Opening { resume: bool },
    Open { resume: bool },
}

/// What a pending reconnect will do when its backoff ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pending {
    /// Resume the established session.
    Resume,
    /// Identify again with the credentials in hand.
    Reidentify,
    /// Send op 4 again for fresh credentials.
    Fresh,
}

/// State of one voice server session (from Ready until a fresh connection).
pub(crate) struct Link {
    pub(crate) ssrc: u32,
    pub(crate) server: SocketAddr,
    pub(crate) mode: Mode,
    pub(crate) discovery_attempts: u32,
    pub(crate) keepalive_counter: u32,
    /// Present once Session Description gave the key.
    pub(crate) sender: Option<media::Sender>,
}

/// A Discord voice connection for one guild, without IO.
///
/// Feed it inputs (`handle_*`, commands), each with the current time, then
/// drain [`poll_output`](Self::poll_output) until it returns
/// [`Output::Timeout`]; call [`handle_timeout`](Self::handle_timeout) at that
/// deadline. See the crate documentation for the full loop.
pub struct VoiceConnection {
    pub(crate) config: Config,
    pub(crate) state: State,
    pub(crate) start: Instant,
    pub(crate) now: Instant,
    pub(crate) rng: fastrand::Rng,
    pub(crate) timers: Timers,
    pub(crate) outputs: VecDeque<Output>,
    pub(crate) stats: Stats,

    /// The channel the application wants to be in.
    pub(crate) channel: Option<Snowflake>,
    /// A channel reported at start-up that nobody asked for.
    pub(crate) ghost: Option<Snowflake>,
    pub(crate) info: VoiceInfo,
    /// Endpoint and token of the current voice server session, to spot
    /// duplicate server updates and to resume.
    pub(crate) connected_to: Option<(String, crate::wire::Token)>,
    pub(crate) leaving: bool,
    pub(crate) closing: bool,

    pub(crate) ws: Ws,
    pub(crate) heartbeat: Option<Heartbeat>,
    pub(crate) last_seq: Option<i64>,
    pub(crate) backoff: Backoff,
    pub(crate) pending: Option<Pending>,
    /// The close code that led to AwaitingMove.
    pub(crate) move_code: u16,
    /// 4004 closes since the last established session.
    pub(crate) auth_failures: u32,

    pub(crate) link: Option<Link>,
    pub(crate) transform: FrameTransform,
    pub(crate) users: ssrc_users::SsrcUsers,
    pub(crate) reception: rtcp::Reception,
    pub(crate) unnamed: unknown_ssrc::Unnamed,
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
        let backoff = Backoff::new(config.backoff_base, config.backoff_max);
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
            ws: Ws::Closed,
            heartbeat: None,
            last_seq: None,
            backoff,
            pending: None,
            move_code: 0,
            auth_failures: 0,
            link: None,
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
        self.link.as_ref().map(|l| l.ssrc)
    }

    /// The transport mode, once selected.
    pub fn mode(&self) -> Option<Mode> {
        self.link.as_ref().map(|l| l.mode)
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
        matches!(self.ws, Ws::Opening { resume: true } | Ws::Open { resume: true })
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
        matches!(self.state, State::Connected | State::Resuming)
            && self.link.as_ref().is_some_and(|l| l.sender.is_some())
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
            let Some(t) = self.expired_timer(now) else {
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

    fn expired_timer(&mut self, now: Instant) -> Option<Timer> {
        crate::timer::ALL.into_iter().find(|&t| self.timers.expired(t, now))
    }

    fn on_timer(&mut self, t: Timer, now: Instant) {
        match t {
            Timer::VoiceInfo => self.on_voice_info_timeout(now),
            Timer::WsOpen => self.on_handshake_timeout(now, crate::ReconnectReason::WsOpenTimeout),
            Timer::Handshake => self.on_handshake_timeout(now, crate::ReconnectReason::HandshakeTimeout),
            Timer::Heartbeat => self.on_heartbeat_timer(now),
            Timer::Discovery => self.on_discovery_timer(now),
            Timer::Keepalive => self.on_keepalive_timer(now),
            Timer::Silence => self.on_silence_timer(now),
            Timer::SpeakingIdle => self.on_speaking_idle(now),
            Timer::Reconnect => self.on_reconnect_timer(now),
            Timer::MoveWait => self.on_move_wait_timeout(now),
            Timer::DaveHold => self.expire_held(now),
            Timer::RtcpReport => self.on_rtcp_timer(now),
            _ => {}
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
