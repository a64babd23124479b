//! The sans-IO server core: [`MockServer`].
//!
//! Inputs are `handle_*` calls that take `now`; outputs are drained with
//! [`MockServer::poll_output`] until it returns [`ServerOutput::Timeout`].
//! The core reads no clock, touches no socket, and given the same seed and
//! the same inputs produces the same outputs.
//!
//! Ordering: outputs come out in one queue, so a datagram for a client is
//! never ahead of websocket frames queued for that client before it (an
//! adapter must keep that order per client; see [`MockServer::conn_for_addr`]).

mod config;
mod dave;
mod faults;
mod gateway;
mod output;
mod room;
mod session;
mod sink;
mod stats;

pub use config::{DavePolicy, Limits, ServerConfig};
pub use dave::DaveRoomInfo;
pub use faults::{Fault, FaultParseError};
pub use output::{ConnId, JoinInfo, ServerEvent, ServerOutput};
pub(crate) use sink::SinkRoute;
pub use stats::{ReceivedFrame, ServerStats, UserStats};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use voice_proto::wire::{GatewayVersion, Snowflake, Token};

use faults::{FaultState, UdpImpairment};
use room::Rooms;
use session::{Conn, Grant, Session, SessionKey};

/// The offline Discord voice server, as a state machine.
///
/// ```
/// use std::time::Instant;
/// use voice_mock::{MockServer, ServerConfig, ServerOutput};
/// use voice_proto::wire::{GatewayVersion, Snowflake, WsMessage};
///
/// let now = Instant::now();
/// let mut server = MockServer::new(ServerConfig::default(), now);
/// let join = server.join(Snowflake(1), Snowflake(2), Snowflake(3));
/// let conn = server.accept(GatewayVersion::V8, now);
/// let identify = format!(
///     r#"{{"op":0,"d":{{"server_id":"1","user_id":"3","session_id":"{}","token":"{}","max_dave_protocol_version":1}}}}"#,
///     join.session_id,
///     join.token.expose()
/// );
/// server.handle_ws_message(conn, WsMessage::Text(&identify), now);
/// let mut texts = Vec::new();
/// loop {
///     match server.poll_output() {
///         ServerOutput::WsSend { frame, .. } => texts.push(format!("{:?}", frame)),
///         ServerOutput::Timeout(_) => break,
///         _ => {}
///     }
/// }
/// assert!(texts.len() >= 2); // Hello, Ready
/// ```
pub struct MockServer {
    pub(crate) config: ServerConfig,
    pub(crate) rng: fastrand::Rng,
    pub(crate) now: Instant,
    /// When the server started (its RTCP clock's zero).
    pub(crate) epoch: Instant,
    pub(crate) next_conn: u64,
    pub(crate) next_session: u64,
    pub(crate) next_ssrc: u32,
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    pub(crate) sessions: BTreeMap<SessionKey, Session>,
    pub(crate) grants: HashMap<String, Grant>,
    pub(crate) grant_order: VecDeque<String>,
    pub(crate) by_ssrc: HashMap<u32, SessionKey>,
    pub(crate) by_addr: HashMap<SocketAddr, SessionKey>,
    pub(crate) by_session_id: HashMap<String, SessionKey>,
    pub(crate) by_user: HashMap<(Snowflake, Snowflake), SessionKey>,
    pub(crate) rooms: Rooms,
    pub(crate) dave: dave::Dave,
    pub(crate) faults: FaultState,
    pub(crate) out: VecDeque<ServerOutput>,
    pub(crate) stats: ServerStats,
    pub(crate) received: HashMap<Snowflake, Vec<ReceivedFrame>>,
    /// SSRCs whose sink route may have changed since the runner last
    /// looked (`None`: no runner sink, nothing tracked).
    pub(crate) sink_dirty: Option<std::collections::BTreeSet<u32>>,
}

impl core::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MockServer")
            .field("conns", &self.conns.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// A server with `config`, starting at `now`.
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let next_ssrc = rng.u32(1..=0x3FFF_FFFF);
        let udp = UdpImpairment::new(config.seed, config.limits.max_delayed);
        MockServer {
            faults: FaultState { udp, ..FaultState::default() },
            config,
            rng,
            now,
            epoch: now,
            next_conn: 1,
            next_session: 1,
            next_ssrc,
            conns: BTreeMap::new(),
            sessions: BTreeMap::new(),
            grants: HashMap::new(),
            grant_order: VecDeque::new(),
            by_ssrc: HashMap::new(),
            by_addr: HashMap::new(),
            by_session_id: HashMap::new(),
            by_user: HashMap::new(),
            rooms: Rooms::default(),
            dave: dave::Dave::default(),
            out: VecDeque::new(),
            stats: ServerStats::default(),
            received: HashMap::new(),
            sink_dirty: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub(crate) fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// A fresh transport key from the seeded RNG.
    pub(crate) fn random_key(&mut self) -> voice_rtp::SecretKey {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes);
        let key = voice_rtp::SecretKey::new(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        key
    }

    /// Keeps the per-user statistics bounded: before a new user is added
    /// at the cap, users without a live session are forgotten.
    pub(crate) fn make_room_for_user_stats(&mut self, user: Snowflake) {
        let cap = self.config.limits.max_sessions.saturating_mul(4).max(16);
        if self.stats.users.len() < cap || self.stats.users.contains_key(&user) {
            return;
        }
        let live: std::collections::BTreeSet<Snowflake> = self.sessions.values().map(|s| s.user).collect();
        self.stats.users.retain(|u, _| live.contains(u));
    }

    pub(crate) fn random_hex(&mut self, bytes: usize) -> String {
        (0..bytes).map(|_| format!("{:02x}", self.rng.u8(..))).collect()
    }

    /// Issues voice credentials for `user` in `channel` of `guild`, as the
    /// main gateway's `VOICE_STATE_UPDATE` + `VOICE_SERVER_UPDATE` would.
    /// The token is `CHANNEL_ID.random`; the endpoint is the configured
    /// `ws_endpoint`.
    pub fn join(&mut self, guild: Snowflake, channel: Snowflake, user: Snowflake) -> JoinInfo {
        let session_id = self.random_hex(16);
        let endpoint = self.config.ws_endpoint.clone();
        self.grant(guild, channel, user, session_id, endpoint)
    }

    pub(crate) fn grant(
        &mut self,
        guild: Snowflake,
        channel: Snowflake,
        user: Snowflake,
        session_id: String,
        endpoint: String,
    ) -> JoinInfo {
        let token = format!("{}.{}", channel, self.random_hex(12));
        while self.grants.len() >= self.config.limits.max_grants.max(1) {
            match self.grant_order.pop_front() {
                Some(old) => {
                    self.grants.remove(&old);
                }
                None => break,
            }
        }
        self.grants.insert(token.clone(), Grant { guild, channel, user, session_id: session_id.clone() });
        self.grant_order.push_back(token.clone());
        JoinInfo { guild_id: guild, channel_id: channel, user_id: user, session_id, token: Token::new(token), endpoint }
    }

    /// Moves `user` as Discord does: new credentials (new token; the endpoint
    /// is `new_endpoint` or the configured one; the channel is `new_channel`
    /// or the current one), and the old websocket is closed with 4014 (same
    /// endpoint) or 4022 (voice server changed). The old session ends.
    /// `None` if the user has neither a session nor credentials in `guild`.
    pub fn move_client(
        &mut self,
        user: Snowflake,
        guild: Snowflake,
        new_channel: Option<Snowflake>,
        new_endpoint: Option<String>,
        now: Instant,
    ) -> Option<JoinInfo> {
        self.advance(now);
        let (channel, session_id) = match self.by_user.get(&(guild, user)).and_then(|k| self.sessions.get(k)) {
            Some(s) => (s.channel, s.session_id.clone()),
            None => {
                let g = self.grants.values().find(|g| g.guild == guild && g.user == user)?;
                (g.channel, g.session_id.clone())
            }
        };
        let endpoint = new_endpoint.unwrap_or_else(|| self.config.ws_endpoint.clone());
        let code = if endpoint == self.config.ws_endpoint { 4014 } else { 4022 };
        self.grants.retain(|_, g| !(g.guild == guild && g.user == user));
        if let Some(&key) = self.by_user.get(&(guild, user)) {
            self.end_session_with_close(key, code);
        }
        Some(self.grant(guild, new_channel.unwrap_or(channel), user, session_id, endpoint))
    }

    /// The media address that Readys announce from now on (a voice server
    /// that moved its UDP port, or the server a move sends a client to).
    /// Sessions already established keep talking to the old one; the
    /// caller routes datagrams sent to `addr` to this core as before.
    pub fn set_udp_addr(&mut self, addr: SocketAddr) {
        self.config.udp_addr = addr;
    }

    /// The main gateway saw `user` leave voice in `guild` (op 4 with no
    /// channel): their credentials and session end now, and the room hears
    /// op 13 (and, on a DAVE call, proposes their removal). This is how
    /// Discord's voice server learns of a leave; a websocket closed with
    /// 1000 alone stays resumable, as discord.js closes that way to resume.
    /// A websocket still open is closed with 4014.
    pub fn leave(&mut self, guild: Snowflake, user: Snowflake, now: Instant) {
        self.advance(now);
        self.grants.retain(|_, g| !(g.guild == guild && g.user == user));
        if let Some(&key) = self.by_user.get(&(guild, user)) {
            self.end_session_with_close(key, 4014);
        }
    }

    /// A websocket was opened with `?v=` giving `version`.
    pub fn accept(&mut self, version: GatewayVersion, now: Instant) -> ConnId {
        self.advance(now);
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.stats.conns_accepted += 1;
        if self.conns.len() >= self.config.limits.max_conns {
            self.stats.conns_refused += 1;
            *self.stats.closes_sent.entry(1013).or_default() += 1;
            self.emit(ServerOutput::WsClose { conn: id, code: 1013 });
            return id;
        }
        let deadline = self.now + self.config.heartbeat_timeout();
        self.conns.insert(id, Conn { version, session: None, user: None, deadline });
        id
    }

    /// The websocket closed (or failed) from the client's side. The session
    /// stays resumable for `resume_window`.
    pub fn handle_ws_close(&mut self, conn: ConnId, code: Option<u16>, now: Instant) {
        self.advance(now);
        let Some(c) = self.conns.remove(&conn) else { return };
        if let Some(key) = c.session {
            self.detach(key, conn);
        }
        self.emit(ServerOutput::Event(ServerEvent::Closed { conn, user: c.user, code, by_server: false }));
    }

    /// Time passed: heartbeat timeouts (4009), scheduled closes, expiry of
    /// detached sessions, DAVE commit and execute timeouts, and release of
    /// delayed datagrams.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let now = self.now;
        let late: Vec<ConnId> = self.conns.iter().filter(|(_, c)| c.deadline <= now).map(|(&id, _)| id).collect();
        for conn in late {
            tracing::debug!(?conn, "heartbeat timeout");
            self.close_conn(conn, 4009);
        }
        for (user, code) in self.faults.take_due(now) {
            self.close_user(user, code);
        }
        let conns = &self.conns;
        self.faults.stalled.retain(|&(conn, until)| until > now && conns.contains_key(&conn));
        let window = self.config.resume_window;
        let expired: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.conn.is_none() && s.detached_since.is_some_and(|t| t + window <= now))
            .map(|(&k, _)| k)
            .collect();
        for key in expired {
            self.destroy_session(key);
        }
        self.dave_timeouts(now);
        for (to, bytes) in self.faults.udp.release_due(now) {
            self.emit_transmit(to, bytes);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let window = self.config.resume_window;
        let conns = self.conns.values().map(|c| c.deadline);
        let expiry =
            self.sessions.values().filter(|s| s.conn.is_none()).filter_map(|s| s.detached_since.map(|t| t + window));
        conns
            .chain(expiry)
            .chain(self.faults.next_scheduled())
            .chain(self.faults.udp.next_deadline())
            .chain(self.dave_deadline())
            .min()
    }

    /// The next output. Drain until [`ServerOutput::Timeout`], which carries
    /// the next deadline.
    #[must_use]
    pub fn poll_output(&mut self) -> ServerOutput {
        match self.out.pop_front() {
            Some(o) => o,
            None => ServerOutput::Timeout(self.next_deadline()),
        }
    }

    pub(crate) fn emit(&mut self, o: ServerOutput) {
        if matches!(o, ServerOutput::Transmit { .. }) && self.out.len() >= self.config.limits.max_pending_outputs {
            self.stats.queue_drops += 1;
            return;
        }
        self.out.push_back(o);
        self.stats.pending_outputs_peak = self.stats.pending_outputs_peak.max(self.out.len());
    }

    /// Injects a fault.
    pub fn inject(&mut self, fault: Fault, now: Instant) {
        self.advance(now);
        match fault {
            Fault::CloseUser { user, code, after: None } => self.close_user(user, code),
            Fault::CloseUser { user, code, after: Some(d) } => self.faults.scheduled.push((self.now + d, user, code)),
            Fault::CloseEach { code, after } => self.faults.close_each = Some((code, after)),
            Fault::StopHeartbeatAcks { user: None } => self.faults.acks_stopped_all = true,
            Fault::StopHeartbeatAcks { user: Some(u) } => {
                self.faults.acks_stopped.insert(u);
            }
            Fault::ResumeHeartbeatAcks { user: None } => {
                self.faults.acks_stopped_all = false;
                self.faults.acks_stopped.clear();
            }
            Fault::ResumeHeartbeatAcks { user: Some(u) } => {
                self.faults.acks_stopped.remove(&u);
            }
            Fault::UdpLoss { drop, reorder, delay } => self.faults.udp.set(drop, reorder, delay),
            Fault::RefuseResumes(on) => self.faults.refuse_resumes = on,
            Fault::IgnoreDiscovery { count } => self.faults.ignore_discovery = count,
            Fault::CutUser { user } => self.cut_user(user),
            Fault::StallUser { user, duration } => {
                let until = self.now + duration;
                for conn in self.user_conns(user) {
                    if self.faults.stalled.len() < faults::MAX_STALLED {
                        self.faults.stalled.push((conn, until));
                    }
                }
            }
            dave @ (Fault::DaveCorruptWelcome { .. }
            | Fault::DaveCorruptCommit { .. }
            | Fault::DaveDelayExecute(_)
            | Fault::DaveDropTransitionReady { .. }) => self.faults.dave.inject(dave),
        }
    }

    /// Drops every websocket of `user` without a close frame; their
    /// sessions stay resumable.
    fn cut_user(&mut self, user: Snowflake) {
        for conn in self.user_conns(user) {
            let Some(c) = self.conns.remove(&conn) else { continue };
            if let Some(key) = c.session {
                self.detach(key, conn);
            }
            self.emit(ServerOutput::WsCut { conn });
            self.emit(ServerOutput::Event(ServerEvent::Closed { conn, user: c.user, code: None, by_server: true }));
        }
    }

    /// Closes every websocket of `user` (in any guild) with `code`.
    fn close_user(&mut self, user: Snowflake, code: u16) {
        for conn in self.user_conns(user) {
            self.close_conn(conn, code);
        }
    }

    /// Every websocket of `user` (in any guild).
    fn user_conns(&self, user: Snowflake) -> Vec<ConnId> {
        self.conns.iter().filter(|(_, c)| c.user == Some(user)).map(|(&id, _)| id).collect()
    }

    /// Counters and queue lengths.
    pub fn stats(&self) -> ServerStats {
        let mut s = self.stats.clone();
        s.conns = self.conns.len();
        s.sessions = self.sessions.len();
        s.pending_outputs = self.out.len();
        s.delayed_datagrams = self.faults.udp.queued();
        s.resume_buffer_max = self.sessions.values().map(|s| s.buffer.len()).max().unwrap_or(0);
        s.grants = self.grants.len();
        s.udp_fault_dropped = self.faults.udp.dropped;
        s.udp_fault_delayed = self.faults.udp.delayed_count;
        s.udp_fault_reordered = self.faults.udp.reordered;
        s.queue_drops += self.faults.udp.overflow;
        s
    }

    /// The frames `user` sent, oldest first (up to `limits.received_frames`).
    pub fn received_frames(&self, user: Snowflake) -> &[ReceivedFrame] {
        self.received.get(&user).map_or(&[], |v| v.as_slice())
    }

    /// The websocket of the session whose client uses UDP address `addr`:
    /// an adapter sends a datagram for `addr` in order with that websocket's
    /// frames.
    pub fn conn_for_addr(&self, addr: SocketAddr) -> Option<ConnId> {
        self.by_addr.get(&addr).and_then(|k| self.sessions.get(k)).and_then(|s| s.conn)
    }

    /// The user behind a websocket, once it has identified or resumed.
    pub fn conn_user(&self, conn: ConnId) -> Option<Snowflake> {
        self.conns.get(&conn).and_then(|c| c.user)
    }

    /// The SSRC of `user`'s session in `guild`.
    pub fn ssrc_of(&self, guild: Snowflake, user: Snowflake) -> Option<u32> {
        self.by_user.get(&(guild, user)).and_then(|k| self.sessions.get(k)).map(|s| s.ssrc)
    }
}
